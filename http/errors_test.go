package http

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"testing"
	"time"

	yaml "github.com/oasdiff/yaml3"

	"github.com/sessiond/sessiond"
)

// TestErrorTable checks the one error table: every error the API answers
// gets its status and code, wrapped or not, and unknown errors are 503
// unavailable.
func TestErrorTable(t *testing.T) {
	tests := []struct {
		err    error
		status int
		code   string
		field  string
	}{
		{&sessiond.InputError{Field: "password", Message: "is required"}, 400, codeInvalidField, "password"},
		{&sessiond.InputError{Message: "request body is not valid JSON"}, 400, codeInvalidRequest, ""},
		{&http.MaxBytesError{Limit: MaxBodyBytes}, 413, codeBodyTooLarge, ""},
		{sessiond.ErrInvalidCredentials, 401, codeInvalidCredentials, ""},
		{sessiond.ErrAccountLocked, 401, codeAccountLocked, ""},
		{sessiond.ErrInvalidToken, 401, codeInvalidToken, ""},
		{errAdminKey, 401, codeAdminKeyInvalid, ""},
		{errUserLocked, 403, codeAccountLocked, ""},
		{errUserNotFound, 404, codeNotFound, ""},
		{errNoEndpoint, 404, codeNotFound, ""},
		{sessiond.ErrNotFound, 404, codeNotFound, ""},
		{&methodError{method: "PUT"}, 405, codeMethodNotAllowed, ""},
		{sessiond.ErrUsernameTaken, 409, codeUsernameTaken, ""},
		{sessiond.ErrEmailTaken, 409, codeEmailTaken, ""},
		{sessiond.ErrSessionLimit, 409, codeSessionLimit, ""},
		{sessiond.ErrSignupClosed, 403, codeSignupClosed, ""},
		{&sessiond.ThrottledError{RetryAfter: 1500 * time.Millisecond, What: "failed logins"}, 429, codeRateLimited, ""},
		{errTooManyStreams, 429, codeTooManyStreams, ""},
		{errCSRF, 403, codeCSRFFailed, ""},
		{fmt.Errorf("%w: Content-Type must be application/json", errMediaType), 415, codeUnsupportedMedia, ""},
		{sessiond.ErrUnavailable, 503, codeUnavailable, ""},
		{fmt.Errorf("redis: revoke: %w: 0 of 1 replicas confirmed", sessiond.ErrNotAcknowledged), 503, codeUnavailable, ""},
		{errors.New("something nobody expected"), 503, codeUnavailable, ""},
	}
	for _, tt := range tests {
		for _, err := range []error{tt.err, fmt.Errorf("context: %w", tt.err)} {
			e := errorStatus(err)
			if e.status != tt.status || e.code != tt.code || e.field != tt.field || e.msg == "" {
				t.Errorf("errorStatus(%v): got %d %q field %q message %q, want %d %q field %q", err, e.status, e.code, e.field, e.msg, tt.status, tt.code, tt.field)
			}
		}
	}
}

// TestErrorCodesDocumented fails when the table answers a code that the
// OpenAPI description's ErrorData does not list, or the description lists
// one the table never answers.
func TestErrorCodesDocumented(t *testing.T) {
	var doc struct {
		Components struct {
			Schemas map[string]struct {
				Properties map[string]struct {
					Enum []string `json:"enum"`
				} `json:"properties"`
			} `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(OpenAPIJSON, &doc); err != nil {
		t.Fatal(err)
	}
	documented := doc.Components.Schemas["ErrorData"].Properties["code"].Enum
	// The admin listener's codes are in its own document.
	admin, err := os.ReadFile("../docs/openapi-admin.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var adminDoc struct {
		Components struct {
			Schemas map[string]struct {
				Properties map[string]struct {
					Enum []string `yaml:"enum"`
				} `yaml:"properties"`
			} `yaml:"schemas"`
		} `yaml:"components"`
	}
	if err := yaml.Unmarshal(admin, &adminDoc); err != nil {
		t.Fatal(err)
	}
	for _, c := range adminDoc.Components.Schemas["ErrorData"].Properties["code"].Enum {
		if !slices.Contains(documented, c) {
			documented = append(documented, c)
		}
	}
	answered := []string{
		codeInvalidRequest, codeInvalidField, codeInvalidCredentials, codeAccountLocked, codeInvalidToken,
		codeCSRFFailed, codeNotFound, codeMethodNotAllowed, codeUsernameTaken, codeEmailTaken, codeSessionLimit,
		codeBodyTooLarge, codeUnsupportedMedia, codeRateLimited, codeTooManyStreams, codeUnavailable, codeSignupClosed,
		codeAdminKeyInvalid, codeHandoffInvalid,
	}
	slices.Sort(documented)
	slices.Sort(answered)
	if !slices.Equal(documented, answered) {
		t.Fatalf("ErrorData code enum: got %v, want %v", documented, answered)
	}
}
