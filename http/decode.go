package http

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"unicode/utf8"

	"github.com/sessiond/sessiond"
)

// decodeJSON decodes a JSON object body into v, turning every failure into
// an *sessiond.InputError that names what was wrong.
func decodeJSON(body []byte, v any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return &sessiond.InputError{Message: "request body is required"}
	}
	if !utf8.Valid(body) {
		return &sessiond.InputError{Message: "request body must be valid UTF-8"}
	}
	if hasLoneSurrogate(body) {
		return &sessiond.InputError{Message: "request body holds a lone UTF-16 surrogate escape (such as \\ud800 without its pair)"}
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(v); err != nil {
		var typeErr *json.UnmarshalTypeError
		var syntaxErr *json.SyntaxError
		switch {
		case errors.As(err, &typeErr) && typeErr.Field != "":
			return &sessiond.InputError{Field: typeErr.Field, Message: "must be a " + jsonKind(typeErr.Type.Kind().String())}
		case errors.As(err, &typeErr):
			return &sessiond.InputError{Message: "request body must be a JSON object"}
		case errors.As(err, &syntaxErr):
			return &sessiond.InputError{Message: fmt.Sprintf("request body is not valid JSON (at byte %d)", syntaxErr.Offset)}
		case errors.Is(err, io.ErrUnexpectedEOF):
			return &sessiond.InputError{Message: "request body is not valid JSON (truncated)"}
		}
		return &sessiond.InputError{Message: "request body is not valid JSON"}
	}
	if _, err := dec.Token(); err != io.EOF {
		return &sessiond.InputError{Message: "request body has data after the JSON object"}
	}
	return nil
}

// hasLoneSurrogate reports whether a JSON text holds a \u escape of a
// UTF-16 surrogate that is not half of a pair: a high surrogate
// (\ud800-\udbff) not followed by a low one's escape, or a low one
// (\udc00-\udfff) not preceded by a high one. encoding/json turns each into
// U+FFFD, so two different passwords would become one. Text outside
// strings is skipped; malformed escapes are left to the decoder.
func hasLoneSurrogate(b []byte) bool {
	if !bytes.Contains(b, []byte(`\u`)) {
		return false
	}
	inString := false
	for i := 0; i < len(b); i++ {
		switch c := b[i]; {
		case c == '"':
			inString = !inString
		case c == '\\' && inString && i+1 < len(b):
			if b[i+1] != 'u' {
				i++ // the escaped character, which may be a quote
				continue
			}
			r, ok := hex4(b, i+2)
			if !ok {
				return false // a syntax error the decoder reports
			}
			switch {
			case r >= 0xdc00 && r <= 0xdfff:
				return true
			case r >= 0xd800 && r <= 0xdbff:
				if i+12 > len(b) || b[i+6] != '\\' || b[i+7] != 'u' {
					return true
				}
				if lo, ok := hex4(b, i+8); !ok || lo < 0xdc00 || lo > 0xdfff {
					return true
				}
				i += 6 // the low half, checked
			}
			i += 5
		}
	}
	return false
}

// hex4 decodes the four hex digits at b[i:].
func hex4(b []byte, i int) (rune, bool) {
	if i+4 > len(b) {
		return 0, false
	}
	var r rune
	for _, c := range b[i : i+4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

func jsonKind(k string) string {
	switch k {
	case "bool":
		return "boolean"
	case "ptr", "string":
		return "string"
	}
	return k
}

// decodeForm decodes an application/x-www-form-urlencoded body into the
// named fields; a field given twice is refused.
func decodeForm(body []byte, fields map[string]*string) error {
	if !utf8.Valid(body) {
		return &sessiond.InputError{Message: "request body must be valid UTF-8"}
	}
	vals, err := url.ParseQuery(string(body))
	if err != nil {
		return &sessiond.InputError{Message: "request body is not a valid form"}
	}
	for name, dst := range fields {
		v := vals[name]
		if len(v) > 1 {
			return &sessiond.InputError{Field: name, Message: "must be given once"}
		}
		if len(v) == 1 {
			if !utf8.ValidString(v[0]) {
				return &sessiond.InputError{Field: name, Message: "must be valid UTF-8"}
			}
			*dst = v[0]
		}
	}
	return nil
}

// HasLoneSurrogate reports whether the JSON text b holds a lone UTF-16
// surrogate escape, which the API refuses wherever it appears; the import
// command refuses such a line the same way.
func HasLoneSurrogate(b []byte) bool { return hasLoneSurrogate(b) }
