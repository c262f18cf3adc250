package http_test

import (
	"encoding/json"
	"net/http"
	"strconv"
	"testing"
)

// codesByStatus lists the error codes each status may carry.
var codesByStatus = map[int][]string{
	400: {"invalid_request", "invalid_field"},
	401: {"invalid_credentials", "account_locked", "invalid_token", "admin_key_invalid"},
	403: {"csrf_failed", "signup_closed", "account_locked"},
	404: {"not_found"},
	405: {"method_not_allowed"},
	409: {"username_taken", "email_taken", "session_limit"},
	413: {"body_too_large"},
	415: {"unsupported_media_type"},
	429: {"rate_limited", "too_many_streams"},
	503: {"unavailable"},
}

// errorData is the data of an error envelope.
type errorData struct {
	Code       string `json:"code"`
	Field      string `json:"field"`
	RetryAfter int    `json:"retry_after"`
}

// checkErrorData fails t unless data is an error's data that fits status:
// a code of that status, a field exactly when the code is invalid_field,
// and on 429 a retry_after equal to the Retry-After header.
func checkErrorData(t testing.TB, what string, status int, h http.Header, data []byte) errorData {
	t.Helper()
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(data, &fields); err != nil {
		t.Fatalf("%s: error data is not an object: %s", what, data)
	}
	var d errorData
	json.Unmarshal(data, &d)
	known := false
	for _, c := range codesByStatus[status] {
		known = known || c == d.Code
	}
	if !known {
		t.Fatalf("%s: error data %s: code %q is not one of %v for status %d", what, data, d.Code, codesByStatus[status], status)
	}
	want := 1
	if (d.Code == "invalid_field") != (d.Field != "") {
		t.Fatalf("%s: error data %s: field must be set exactly for invalid_field", what, data)
	}
	if d.Field != "" {
		want++
	}
	if status == http.StatusTooManyRequests {
		if ra := h.Get("Retry-After"); ra != strconv.Itoa(d.RetryAfter) || d.RetryAfter < 1 {
			t.Fatalf("%s: error data %s: retry_after must equal Retry-After (%q) and be at least 1", what, data, ra)
		}
		want++
	}
	if len(fields) != want {
		t.Fatalf("%s: error data %s: unexpected members", what, data)
	}
	return d
}
