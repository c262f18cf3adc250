package http_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	"github.com/sessiond/sessiond"
	sessiondhttp "github.com/sessiond/sessiond/http"
	"github.com/sessiond/sessiond/internal/sessiondtest"
)

// signedIn returns a Manager over SQLite in a temp dir and the grant of a
// fresh login; the database closes at cleanup.
func signedIn(t testing.TB, adjust ...func(*sessiond.Parts)) (*sessiond.Manager, *sessiond.Grant, func() error) {
	t.Helper()
	env, g := signedInOn(t, sessiondtest.Options{})
	return env.Manager, g, env.DB.Close
}

// signedInOn is signedIn on a Manager built as o says (issuer "example").
func signedInOn(t testing.TB, o sessiondtest.Options) (*sessiondtest.Env, *sessiond.Grant) {
	t.Helper()
	o.Issuer = "example"
	env := sessiondtest.NewManager(t, o)
	m := env.Manager
	ctx := context.Background()
	if _, err := m.Register(ctx, sessiond.RegisterRequest{Username: "erin", Email: "erin@example.com", Password: "correct horse battery staple"}); err != nil {
		t.Fatal(err)
	}
	g, err := m.Login(ctx, sessiond.LoginRequest{Login: "erin", Password: "correct horse battery staple", UserAgent: "curl/8.5.0"})
	if err != nil {
		t.Fatal(err)
	}
	return env, g
}

// sessionEcho answers 200 with the id of the context's session.
var sessionEcho = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	s, ok := sessiond.FromContext(r.Context())
	if !ok {
		http.Error(w, "no session in context", http.StatusInternalServerError)
		return
	}
	w.Write([]byte(s.ID))
})

func TestMiddleware(t *testing.T) {
	m, g, _ := signedIn(t)
	h := sessiondhttp.Middleware(m)(sessionEcho)
	cookie := &http.Cookie{Name: sessiondhttp.AccessCookie, Value: g.AccessToken}
	tests := []struct {
		name    string
		method  string
		header  map[string]string
		cookie  bool
		want    int
		wantWWW bool
	}{
		{name: "no token is refused", method: "GET", want: 401, wantWWW: true},
		{name: "forged token is refused", method: "GET", header: map[string]string{"Authorization": "Bearer " + g.AccessToken + "x"}, want: 401, wantWWW: true},
		{name: "basic auth is refused", method: "GET", header: map[string]string{"Authorization": "Basic ZXJpbjpwdw=="}, want: 401, wantWWW: true},
		{name: "bearer token passes", method: "GET", header: map[string]string{"Authorization": "Bearer " + g.AccessToken}, want: 200},
		{name: "bearer state change needs no origin", method: "POST", header: map[string]string{"Authorization": "Bearer " + g.AccessToken}, want: 200},
		{name: "cookie read passes", method: "GET", cookie: true, want: 200},
		{name: "cookie state change without origin is refused", method: "POST", cookie: true, want: 403},
		{name: "cookie state change from another site is refused", method: "DELETE", cookie: true, header: map[string]string{"Origin": "https://evil.example"}, want: 403},
		{name: "cookie state change cross-site fetch is refused", method: "POST", cookie: true, header: map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": "http://example.com"}, want: 403},
		{name: "cookie state change from the same origin passes", method: "POST", cookie: true, header: map[string]string{"Origin": "http://example.com"}, want: 200},
		{name: "cookie state change same-origin fetch passes", method: "PUT", cookie: true, header: map[string]string{"Sec-Fetch-Site": "same-origin"}, want: 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(tt.method, "http://example.com/private", nil)
			for k, v := range tt.header {
				r.Header.Set(k, v)
			}
			if tt.cookie {
				r.AddCookie(cookie)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != tt.want {
				t.Fatalf("status: got %d, want %d: %s", w.Code, tt.want, w.Body)
			}
			if got := w.Header().Get("WWW-Authenticate"); (got == `Bearer error="invalid_token"`) != tt.wantWWW {
				t.Fatalf("WWW-Authenticate: got %q, want it set: %v", got, tt.wantWWW)
			}
			if tt.want == 200 {
				if got := w.Body.String(); got != g.Session.ID {
					t.Fatalf("session in context: got %q, want %q", got, g.Session.ID)
				}
				return
			}
			code := map[int]string{401: "invalid_token", 403: "csrf_failed"}[tt.want]
			checkErrorEnvelope(t, w, tt.want, code)
		})
	}
}

func TestMiddlewareRefusesARevokedSession(t *testing.T) {
	m, g, _ := signedIn(t)
	h := sessiondhttp.Middleware(m)(sessionEcho)
	get := func() int {
		r := httptest.NewRequest("GET", "/private", nil)
		r.Header.Set("Authorization", "Bearer "+g.AccessToken)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w.Code
	}
	if got := get(); got != 200 {
		t.Fatalf("before revocation: got %d, want 200", got)
	}
	if err := m.Revoke(context.Background(), g.Session.UserID, g.Session.ID, sessiond.ReasonRevoked); err != nil {
		t.Fatal(err)
	}
	if got := get(); got != 401 {
		t.Fatalf("after revocation: got %d, want 401", got)
	}
}

func TestMiddlewareAnswers503WhenTheStoreIsDown(t *testing.T) {
	m, g, closeDB := signedIn(t)
	if err := closeDB(); err != nil {
		t.Fatal(err)
	}
	called := false
	h := sessiondhttp.Middleware(m)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { called = true }))
	r := httptest.NewRequest("GET", "/private", nil)
	r.Header.Set("Authorization", "Bearer "+g.AccessToken)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != 503 || called {
		t.Fatalf("got status %d (handler called: %v), want 503 and the handler not called", w.Code, called)
	}
	if w.Header().Get("Retry-After") == "" || w.Header().Get("WWW-Authenticate") != "" {
		t.Fatalf("headers: got %v, want Retry-After and no WWW-Authenticate", w.Header())
	}
	checkErrorEnvelope(t, w, 503, "unavailable")
}

func TestServerMiddlewareChecksOriginAgainstPublicURL(t *testing.T) {
	m, g, _ := signedIn(t)
	srv := sessiondhttp.NewServer(m)
	srv.PublicURL = "https://app.example.com"
	h := srv.Middleware(sessionEcho)
	for origin, want := range map[string]int{"https://app.example.com": 200, "http://internal:8080": 403} {
		r := httptest.NewRequest("POST", "http://internal:8080/private", nil)
		r.AddCookie(&http.Cookie{Name: sessiondhttp.AccessCookie, Value: g.AccessToken})
		r.Header.Set("Origin", origin)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != want {
			t.Errorf("Origin %s: got %d, want %d", origin, w.Code, want)
		}
	}
}

// checkErrorEnvelope asserts an error answer in the API's envelope with
// code in its data.
func checkErrorEnvelope(t *testing.T, w *httptest.ResponseRecorder, status int, code string) {
	t.Helper()
	var env map[string]json.RawMessage
	if err := json.Unmarshal(w.Body.Bytes(), &env); err != nil {
		t.Fatalf("body is not JSON: %v: %q", err, w.Body)
	}
	if len(env) != 4 || string(env["status"]) != `"error"` || string(env["status_code"]) != strconv.Itoa(status) || len(env["message"]) < 3 {
		t.Fatalf("envelope: got %s", w.Body)
	}
	if d := checkErrorData(t, "envelope", status, w.Header(), env["data"]); d.Code != code {
		t.Fatalf("envelope data: got %s, want code %q", env["data"], code)
	}
}
