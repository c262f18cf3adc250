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
