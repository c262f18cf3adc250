package http

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzLoneSurrogate checks hasLoneSurrogate against encoding/json itself:
// for a valid JSON text in valid UTF-8 (decodeJSON checks that first) that
// holds no U+FFFD of its own, the decoder puts
// U+FFFD into a string or key exactly where a lone surrogate escape was.
func FuzzLoneSurrogate(f *testing.F) {
	for _, s := range []string{
		`{"a":"\ud800"}`, `{"a":"\udc00"}`, `{"a":"\ud83d\ude00"}`, `{"a":"\\ud800"}`, `{"a":"\\\ud800"}`,
		`{"a":"x\"\ud800"}`, `["\ud800\u0041"]`, `{"\udfff":1}`, `"\uD800\uDC00"`, `"\ud800\\udc00"`,
		`{"a":"\ud800"`, `"\ud800\ud800\udc00"`, `"\u00e9\u0000"`, `"\ud800\udbff"`, `1`, `"\uZZZZ"`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got := hasLoneSurrogate(b)
		if !utf8.Valid(b) || !json.Valid(b) || bytes.Contains(b, []byte("\ufffd")) || bytes.Contains(bytes.ToLower(b), []byte(`\ufffd`)) {
			return
		}
		var v any
		if err := json.Unmarshal(b, &v); err != nil {
			t.Fatalf("valid JSON %q: %v", b, err)
		}
		if want := holdsFFFD(v); got != want {
			t.Fatalf("hasLoneSurrogate(%q) = %v, but the decoder's U+FFFD says %v", b, got, want)
		}
	})
}

func holdsFFFD(v any) bool {
	switch v := v.(type) {
	case string:
		return strings.ContainsRune(v, '\ufffd')
	case []any:
		for _, x := range v {
			if holdsFFFD(x) {
				return true
			}
		}
	case map[string]any:
		for k, x := range v {
			if strings.ContainsRune(k, '\ufffd') || holdsFFFD(x) {
				return true
			}
		}
	}
	return false
}
