package http_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/sessiond/sessiond"
	sessiondhttp "github.com/sessiond/sessiond/http"
)

// TestAmbiguousCredentials: a request with two Authorization headers or
// two access cookies is refused with 400 invalid_request on every
// authenticated route, the forward-auth check and the event stream
// included, even when both copies hold the same valid token, and nothing
// behind the check runs; a single header with a bad value stays 401.
func TestAmbiguousCredentials(t *testing.T) {
	m, g, _ := signedIn(t)
	other, err := m.Login(context.Background(), sessiond.LoginRequest{Login: "erin", Password: "correct horse battery staple", UserAgent: "curl/8.5.0"})
	if err != nil {
		t.Fatal(err)
	}
	srv := sessiondhttp.NewServer(m)
	h := srv.Handler()
	routes := []struct{ method, path string }{
		{"GET", "/api/v1/me"},
		{"GET", "/api/v1/auth/check"},
		{"GET", "/api/v1/sessions"},
		{"GET", "/api/v1/sessions/events"},
		{"DELETE", "/api/v1/sessions"},
		{"DELETE", "/api/v1/sessions/" + other.Session.ID},
		{"PATCH", "/api/v1/sessions/" + other.Session.ID},
		{"POST", "/api/v1/auth/password"},
		{"POST", "/api/v1/auth/logout"},
	}
	bearer := "Bearer " + g.AccessToken
	cookie := sessiondhttp.AccessCookie + "=" + g.AccessToken
	cases := []struct {
		name   string
		header http.Header
		want   int
		code   string
	}{
		{"two equal Authorization headers", http.Header{"Authorization": {bearer, bearer}}, 400, "invalid_request"},
		{"a valid and a bad Authorization header", http.Header{"Authorization": {bearer, "Bearer x"}}, 400, "invalid_request"},
		{"a bad and a valid Authorization header", http.Header{"Authorization": {"Bearer x", bearer}}, 400, "invalid_request"},
		{"two access cookies in one header", http.Header{"Cookie": {cookie + "; " + cookie}, "Sec-Fetch-Site": {"same-origin"}}, 400, "invalid_request"},
		{"two access cookies in two headers", http.Header{"Cookie": {cookie, sessiondhttp.AccessCookie + "=x"}, "Sec-Fetch-Site": {"same-origin"}}, 400, "invalid_request"},
		{"a header and two cookies", http.Header{"Authorization": {bearer}, "Cookie": {cookie + "; " + cookie}}, 400, "invalid_request"},
		{"two tokens in one header", http.Header{"Authorization": {bearer + ", " + bearer}}, 401, "invalid_token"},
	}
	for _, c := range cases {
		for _, rt := range routes {
			r := httptest.NewRequest(rt.method, "http://example.com"+rt.path, nil)
			for k, v := range c.header {
				r.Header[k] = v
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			what := c.name + ": " + rt.method + " " + rt.path
			if w.Code != c.want {
				t.Fatalf("%s: got %d, want %d: %s", what, w.Code, c.want, w.Body)
			}
			var env struct{ Data json.RawMessage }
			json.Unmarshal(w.Body.Bytes(), &env)
			if d := checkErrorData(t, what, w.Code, w.Header(), env.Data); d.Code != c.code {
				t.Fatalf("%s: code %q, want %q", what, d.Code, c.code)
			}
		}
	}
	// Nothing was changed by the refused requests.
	list, err := m.List(context.Background(), g.Session.UserID, g.Session.ID)
	if err != nil || len(list) != 2 {
		t.Fatalf("sessions after the refused requests: got %d (%v), want both", len(list), err)
	}
	// One header, one cookie, each alone, still pass.
	for _, hd := range []http.Header{{"Authorization": {bearer}}, {"Cookie": {cookie}}} {
		r := httptest.NewRequest("GET", "http://example.com/api/v1/auth/check", nil)
		for k, v := range hd {
			r.Header[k] = v
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != 200 {
			t.Fatalf("%v: got %d, want 200: %s", hd, w.Code, w.Body)
		}
	}
}

// TestMiddlewareRefusesAmbiguousCredentials: the library's Middleware
// applies the same rule before its handler runs.
func TestMiddlewareRefusesAmbiguousCredentials(t *testing.T) {
	m, g, _ := signedIn(t)
	called := false
	h := sessiondhttp.Middleware(m)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { called = true }))
	for _, hd := range []http.Header{
		{"Authorization": {"Bearer " + g.AccessToken, "Bearer " + g.AccessToken}},
		{"Cookie": {strings.Repeat(sessiondhttp.AccessCookie+"="+g.AccessToken+"; ", 2)}},
	} {
		r := httptest.NewRequest("GET", "/private", nil)
		for k, v := range hd {
			r.Header[k] = v
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if called {
			t.Fatalf("%v: the protected handler ran", hd)
		}
		checkErrorEnvelope(t, w, 400, "invalid_request")
	}
}

// TestTwoRefreshCookiesAreRefused: a cookie refresh that carries two
// refresh cookies is refused with 400 invalid_request and rotates nothing,
// whichever of the two is the session's own; one cookie still refreshes.
func TestTwoRefreshCookiesAreRefused(t *testing.T) {
	m, g, _ := signedIn(t)
	h := sessiondhttp.NewServer(m).Handler()
	refresh := func(cookies ...string) *httptest.ResponseRecorder {
		r := httptest.NewRequest("POST", "http://example.com/api/v1/auth/refresh", nil)
		r.Header.Set(sessiondhttp.CookiesHeader, "1")
		r.Header.Set("Sec-Fetch-Site", "same-origin")
		for _, c := range cookies {
			r.Header.Add("Cookie", sessiondhttp.RefreshCookie+"="+c)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	for _, pair := range [][]string{{g.RefreshToken, "x"}, {"x", g.RefreshToken}, {g.RefreshToken, g.RefreshToken}} {
		w := refresh(pair...)
		if w.Code != 400 {
			t.Fatalf("two refresh cookies: got %d, want 400: %s", w.Code, w.Body)
		}
		var env struct{ Data json.RawMessage }
		json.Unmarshal(w.Body.Bytes(), &env)
		if d := checkErrorData(t, "two refresh cookies", w.Code, w.Header(), env.Data); d.Code != "invalid_request" {
			t.Fatalf("two refresh cookies: code %q, want invalid_request", d.Code)
		}
	}
	s, _, err := m.Authenticate(context.Background(), g.AccessToken)
	if err != nil || s.Generation != 1 {
		t.Fatalf("after the refused refreshes: session %+v, %v; want generation 1", s, err)
	}
	if w := refresh(g.RefreshToken); w.Code != 200 {
		t.Fatalf("one refresh cookie: got %d, want 200: %s", w.Code, w.Body)
	}
}
