package http_test

import (
	"bytes"
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

// FuzzDecodeRequest drives the real handlers of every endpoint that reads a
// body (login, register, refresh, password change, rename) with arbitrary
// bodies and Content-Types. Whatever comes in, the answer is a valid
// envelope and never a 5xx: a panic would be recovered into a 503, so it
// fails here too.
func FuzzDecodeRequest(f *testing.F) {
	// Cheap hashes keep the fuzzer fast; throttles and the session cap
	// would only make most inputs answer the same.
	m := sessiondtest.NewManager(f, sessiondtest.Options{Issuer: "example", NoLimiter: true, CheapHashing: true}).Manager
	m.MaxSessions = 0
	ctx := context.Background()
	const pw = "correct horse battery staple"
	if _, err := m.Register(ctx, sessiond.RegisterRequest{Username: "fuzz", Email: "fuzz@example.com", Password: pw}); err != nil {
		f.Fatal(err)
	}
	g, err := m.Login(ctx, sessiond.LoginRequest{Login: "fuzz", Password: pw, UserAgent: "curl/8.5.0"})
	if err != nil {
		f.Fatal(err)
	}
	srv := sessiondhttp.NewServer(m)
	srv.Logger = slog.New(slog.DiscardHandler)
	h := srv.Handler()

	type endpoint struct{ method, path string }
	endpoints := []endpoint{
		{"POST", "/api/v1/auth/login"},
		{"POST", "/api/v1/auth/register"},
		{"POST", "/api/v1/auth/refresh"},
		{"POST", "/api/v1/auth/password"},
		{"PATCH", "/api/v1/sessions/" + g.Session.ID},
	}
	const jsonCT, formCT = "application/json", "application/x-www-form-urlencoded"
	for _, seed := range []struct {
		ep   uint8
		ct   string
		body string
	}{
		{0, jsonCT, `{"username":"fuzz","password":"` + pw + `"}`},
		{0, jsonCT, `{"username":"fuzz","password":"wrong","device_id":"d","device_name":"n"}`},
		{0, formCT, "username=fuzz&password=" + strings.ReplaceAll(pw, " ", "+")},
		{0, formCT, "username=%zz&username=a"},
		{0, "application/json; charset=utf-8", `{"username":1}`},
		{0, "text/plain", `{}`},
		{0, "", `{}`},
		{1, jsonCT, `{"username":"new","email":"new@example.com","password":"` + pw + `"}`},
		{1, jsonCT, `{"username":"fuzz","email":"x@example.com","password":"short"}`},
		{2, jsonCT, `{"refresh_token":"` + g.RefreshToken + `"}`},
		{2, jsonCT, `{"refresh_token":"sdr1.a.b.c.1.d"}`},
		{2 | 8, jsonCT, ``},
		{3, jsonCT, `{"current_password":"wrong","new_password":"another password","revoke_other_sessions":false}`},
		{4, jsonCT, `{"name":"Work laptop"}`},
		{4, jsonCT, `{"name":null}`},
		{4, jsonCT, `[[[[[[[[[[]]]]]]]]]]`},
		{0, jsonCT, "{\"username\":\"\xff\"}"},
		{0, jsonCT, `{"username":"a"} {}`},
	} {
		f.Add(seed.ep, seed.ct, []byte(seed.body))
	}
	f.Fuzz(func(t *testing.T, ep uint8, ct string, body []byte) {
		e := endpoints[int(ep&7)%len(endpoints)]
		r := httptest.NewRequest(e.method, e.path, bytes.NewReader(body))
		if ct != "" {
			r.Header["Content-Type"] = []string{ct}
		}
		r.Header.Set("Authorization", "Bearer "+g.AccessToken)
		if ep&8 != 0 {
			// The page's way: cookies, with the CSRF proof.
			r.Header.Set(sessiondhttp.CookiesHeader, "1")
			r.Header.Set("Sec-Fetch-Site", "same-origin")
			r.AddCookie(&http.Cookie{Name: sessiondhttp.RefreshCookie, Value: g.RefreshToken})
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		checkFuzzEnvelope(t, w, e.method+" "+e.path)
	})
}

// checkFuzzEnvelope fails t unless w holds a 2xx or 4xx answer in the
// envelope (docs/design.md, "Envelope").
func checkFuzzEnvelope(t *testing.T, w *httptest.ResponseRecorder, what string) {
	t.Helper()
	if w.Code >= 500 || w.Code < 200 {
		t.Fatalf("%s: status %d: %s", what, w.Code, w.Body)
	}
	if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("%s: Content-Type %q", what, ct)
	}
	if w.Header().Get("X-Request-Id") == "" {
		t.Fatalf("%s: no X-Request-Id", what)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(w.Body.Bytes(), &fields); err != nil {
		t.Fatalf("%s: body is not a JSON object: %v: %q", what, err, w.Body)
	}
	if len(fields) != 4 || fields["status"] == nil || fields["status_code"] == nil || fields["message"] == nil || fields["data"] == nil {
		t.Fatalf("%s: envelope fields: %s", what, w.Body)
	}
	var env struct {
		Status     string          `json:"status"`
		StatusCode int             `json:"status_code"`
		Message    string          `json:"message"`
		Data       json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &env); err != nil {
		t.Fatalf("%s: %v: %s", what, err, w.Body)
	}
	want := "success"
	if w.Code >= 400 {
		want = "error"
		checkErrorData(t, what, w.Code, w.Header(), env.Data)
	}
	if env.Status != want || env.StatusCode != w.Code || env.Message == "" {
		t.Fatalf("%s: envelope %+v for HTTP %d", what, env, w.Code)
	}
}
