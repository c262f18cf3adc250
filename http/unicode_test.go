package http_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/sessiond/sessiond"
	sessiondhttp "github.com/sessiond/sessiond/http"
	"github.com/sessiond/sessiond/internal/sessiondtest"
)

// TestUnicodeOverHTTP: the Unicode rules as clients meet them. A Kelvin
// sign does not sign in as "k"; device names and emails with bidi
// overrides, zero-width or other invisible characters get 400
// invalid_field naming the field; a JSON string with a lone surrogate
// escape gets 400 invalid_request wherever it is (passwords included),
// never a U+FFFD in its place; a form value with the UTF-8 bytes of a
// surrogate (invalid UTF-8) gets 400 invalid_field naming it.
func TestUnicodeOverHTTP(t *testing.T) {
	// erin, "correct horse battery staple"; every case below answers
	// before a throttle would matter.
	env, g := signedInOn(t, sessiondtest.Options{NoLimiter: true})
	m := env.Manager
	ctx := context.Background()
	// A user whose password holds U+FFFD: a lone surrogate in its place must
	// not sign in.
	if _, err := m.Register(ctx, sessiond.RegisterRequest{Username: "kate", Email: "kate@example.com", Password: "pass\ufffdword"}); err != nil {
		t.Fatal(err)
	}
	srv := sessiondhttp.NewServer(m)
	srv.Logger = slog.New(slog.DiscardHandler)
	h := srv.Handler()
	do := func(method, path, ct, body string) (int, errorData) {
		t.Helper()
		r := httptest.NewRequest(method, "http://example.com"+path, strings.NewReader(body))
		r.Header.Set("Content-Type", ct)
		r.Header.Set("Authorization", "Bearer "+g.AccessToken)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		var env struct{ Data json.RawMessage }
		json.Unmarshal(w.Body.Bytes(), &env)
		if w.Code < 400 {
			return w.Code, errorData{}
		}
		return w.Code, checkErrorData(t, method+" "+path+" "+body, w.Code, w.Header(), env.Data)
	}
	const js, form = "application/json", "application/x-www-form-urlencoded"
	login := "/api/v1/auth/login"
	rename := "/api/v1/sessions/" + g.Session.ID

	type want struct {
		status int
		code   string
		field  string
	}
	cases := []struct {
		name             string
		method, path, ct string
		body             string
		want             want
	}{
		{"Kelvin sign as a username", "POST", login, js, `{"username":"\u212Aate","password":"pass\ufffdword"}`, want{401, "invalid_credentials", ""}},
		{"Kelvin sign raw in a form", "POST", login, form, "username=%E2%84%AAate&password=pass%EF%BF%BDword", want{401, "invalid_credentials", ""}},
		{"Kelvin sign in an email", "POST", login, js, `{"username":"\u212Aate@example.com","password":"pass\ufffdword"}`, want{401, "invalid_credentials", ""}},
		{"ASCII capitals still fold", "POST", login, js, `{"username":"KATE","password":"pass\ufffdword"}`, want{200, "", ""}},
		{"U+FFFD written out is a character like any", "POST", login, js, `{"username":"kate","password":"pass\ufffdword"}`, want{200, "", ""}},
		{"bidi override in a device name", "POST", login, js, `{"username":"kate","password":"pass\ufffdword","device_name":"\u202eexe.evil"}`, want{400, "invalid_field", "device_name"}},
		{"zero-width joiner in a device name", "POST", login, js, `{"username":"kate","password":"pass\ufffdword","device_name":"a\u200db"}`, want{400, "invalid_field", "device_name"}},
		{"bidi isolate in a form's device name", "POST", login, form, "username=kate&password=pass%EF%BF%BDword&device_name=%E2%81%A6x", want{400, "invalid_field", "device_name"}},
		{"BOM in a new name", "PATCH", rename, js, `{"name":"\ufeffPhone"}`, want{400, "invalid_field", "name"}},
		{"right-to-left override in a new name", "PATCH", rename, js, `{"name":"\u202eexe.evil"}`, want{400, "invalid_field", "name"}},
		{"zero-width space in an email", "POST", "/api/v1/auth/register", js, `{"username":"zed","email":"zed\u200b@example.com","password":"correct horse"}`, want{400, "invalid_field", "email"}},
		{"bidi override in an email", "POST", "/api/v1/auth/register", js, `{"username":"zed","email":"\u202ezed@example.com","password":"correct horse"}`, want{400, "invalid_field", "email"}},
		{"lone high surrogate in a password", "POST", login, js, `{"username":"kate","password":"pass\ud800word"}`, want{400, "invalid_request", ""}},
		{"lone low surrogate in a password", "POST", login, js, `{"username":"kate","password":"pass\udc00word"}`, want{400, "invalid_request", ""}},
		{"high surrogate at the end", "POST", login, js, `{"username":"kate","password":"password\uD800"}`, want{400, "invalid_request", ""}},
		{"two high surrogates", "POST", login, js, `{"username":"kate","password":"pass\ud800\ud800word"}`, want{400, "invalid_request", ""}},
		{"high surrogate then an ASCII escape", "POST", login, js, `{"username":"kate","password":"pass\ud800\u0041word"}`, want{400, "invalid_request", ""}},
		{"reversed pair", "POST", login, js, `{"username":"kate","password":"pass\ude00\ud83dword"}`, want{400, "invalid_request", ""}},
		{"lone surrogate in a username", "POST", login, js, `{"username":"\ud800","password":"x"}`, want{400, "invalid_request", ""}},
		{"lone surrogate in a key", "POST", login, js, `{"username":"kate","password":"pass\ufffdword","\udc00":1}`, want{400, "invalid_request", ""}},
		{"lone surrogate in a new password", "POST", "/api/v1/auth/password", js, `{"current_password":"correct horse battery staple","new_password":"new\ud800password"}`, want{400, "invalid_request", ""}},
		{"lone surrogate in a registration", "POST", "/api/v1/auth/register", js, `{"username":"zed","email":"zed@example.com","password":"\udfffcorrect horse"}`, want{400, "invalid_request", ""}},
		{"lone surrogate in a refresh token", "POST", "/api/v1/auth/refresh", js, `{"refresh_token":"\ud800"}`, want{400, "invalid_request", ""}},
		{"lone surrogate in a new name", "PATCH", rename, js, `{"name":"\udbff"}`, want{400, "invalid_request", ""}},
		{"surrogate bytes in a form password", "POST", login, form, "username=kate&password=pass%ED%A0%80word", want{400, "invalid_field", "password"}},
		{"a surrogate pair is a character", "PATCH", rename, js, `{"name":"Phone \ud83d\udcf1"}`, want{200, "", ""}},
		{"an escaped backslash before u is text", "PATCH", rename, js, `{"name":"\\ud800"}`, want{200, "", ""}},
		{"an escaped quote does not end the string", "PATCH", rename, js, `{"name":"say \"\\ud800\""}`, want{200, "", ""}},
	}
	for _, c := range cases {
		status, d := do(c.method, c.path, c.ct, c.body)
		if status != c.want.status || d.Code != c.want.code || d.Field != c.want.field {
			t.Errorf("%s: got %d %q field %q, want %d %q field %q", c.name, status, d.Code, d.Field, c.want.status, c.want.code, c.want.field)
		}
	}
	// The names that passed are stored as sent.
	s, err := env.Sessions.Get(ctx, g.Session.UserID, g.Session.ID, m.Now())
	if err != nil || s.Name != `say "\ud800"` {
		t.Fatalf("name after the renames: got %q (%v)", s.Name, err)
	}
	// The right password with the FFFD as sent still works; the lone
	// surrogate never reached the password check.
	if status, _ := do("POST", login, js, `{"username":"kate","password":"pass`+"\ufffd"+`word"}`); status != http.StatusOK {
		t.Fatalf("raw U+FFFD password: got %d, want 200", status)
	}
}
