package http_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/sessiond/sessiond/internal/sessiondtest"
	"github.com/sessiond/sessiond/web/webtest"
)

// pageServer serves one empty HTML page, as a single-page app on an origin
// of its own would.
func pageServer(t *testing.T) *httptest.Server {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, "<!doctype html><title>app</title><p>app")
	}))
	t.Cleanup(ts.Close)
	return ts
}

func preflight(t *testing.T, url, origin string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodOptions, url, nil)
	req.Header.Set("Origin", origin)
	req.Header.Set("Access-Control-Request-Method", "DELETE")
	req.Header.Set("Access-Control-Request-Headers", "authorization,content-type")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

func TestCORSHeaders(t *testing.T) {
	const allowed, other = "https://app.example.com", "https://evil.example"
	ts := startServer(t, func(s *sessiondtest.Server) { s.HTTP.CORSOrigins = []string{allowed} })

	resp := preflight(t, ts.URL+"/api/v1/sessions/abc", allowed)
	h := resp.Header
	if resp.StatusCode/100 != 2 || h.Get("Access-Control-Allow-Origin") != allowed ||
		!strings.Contains(h.Get("Access-Control-Allow-Methods"), "DELETE") ||
		!strings.Contains(strings.ToLower(h.Get("Access-Control-Allow-Headers")), "authorization") ||
		h.Get("Access-Control-Allow-Credentials") != "" || !strings.Contains(strings.Join(h.Values("Vary"), ","), "Origin") {
		t.Fatalf("preflight from an allowed origin: got %d %v", resp.StatusCode, h)
	}
	if resp := preflight(t, ts.URL+"/api/v1/sessions/abc", other); resp.Header.Get("Access-Control-Allow-Origin") != "" || resp.Header.Get("Access-Control-Allow-Methods") != "" {
		t.Fatalf("preflight from another origin: got CORS headers %v", resp.Header)
	}

	c := sessiondtest.NewClient(t, ts.URL)
	c.Register("cora")
	g := c.Login("cora", nil)
	for origin, want := range map[string]string{allowed: allowed, other: ""} {
		req, _ := http.NewRequest("GET", ts.URL+"/api/v1/me", nil)
		req.Header.Set("Origin", origin)
		req.Header.Set("Authorization", "Bearer "+g.AccessToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("Access-Control-Allow-Origin") != want {
			t.Fatalf("GET /api/v1/me from %s: got %d, Access-Control-Allow-Origin %q, want 200 and %q", origin, resp.StatusCode, resp.Header.Get("Access-Control-Allow-Origin"), want)
		}
	}
	resp, err := http.Get(ts.URL + "/.well-known/jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Fatalf("JWKS: got Access-Control-Allow-Origin %q, want *", resp.Header.Get("Access-Control-Allow-Origin"))
	}

	// Without CORS origins, a preflight is just a method the API does not
	// have.
	plain := startServer(t, nil)
	if resp := preflight(t, plain.URL+"/api/v1/me", allowed); resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("preflight without CORS origins: got %d %v, want 405 without CORS headers", resp.StatusCode, resp.Header)
	}
}

// TestCORSInABrowser: a page on an allowed origin calls the API with a
// Bearer token and reads the answer; the same page on another origin is
// stopped by the browser itself.
func TestCORSInABrowser(t *testing.T) {
	app, evil := pageServer(t), pageServer(t)
	ts := startServer(t, func(s *sessiondtest.Server) { s.HTTP.CORSOrigins = []string{app.URL} })
	c := sessiondtest.NewClient(t, ts.URL)
	c.Register("cory")
	g := c.Login("cory", nil)

	b := webtest.New(t)
	call := fmt.Sprintf(`fetch(%q, {method: "PATCH", headers: {"Authorization": "Bearer %s", "Content-Type": "application/json"}, body: JSON.stringify({name: "from the app"})})
		.then(r => r.json()).then(j => "ok:" + j.data.name).catch(e => "blocked:" + e.name)`, ts.URL+"/api/v1/sessions/"+g.Session.ID, g.AccessToken)
	b.Do(chromedp.Navigate(app.URL))
	if got := webtest.Eval[string](b, call); got != "ok:from the app" {
		t.Fatalf("fetch from the allowed origin: got %q", got)
	}
	b.Do(chromedp.Navigate(evil.URL))
	if got := webtest.Eval[string](b, strings.Replace(call, "from the app", "from elsewhere", 1)); got != "blocked:TypeError" {
		t.Fatalf("fetch from another origin: got %q, want the browser to block it", got)
	}
	// The browser blocked the preflight, so the rename never happened.
	var me struct {
		Session struct{ Name string } `json:"session"`
	}
	c.Do("GET", "/api/v1/me", g.AccessToken, nil).Expect(t, 200).Decode(t, &me)
	if me.Session.Name != "from the app" {
		t.Fatalf("session name: got %q, want the allowed origin's rename only", me.Session.Name)
	}
	b.CheckNoProblems("Access-Control-Allow-Origin", "Failed to load resource", "net::ERR_FAILED")
}
