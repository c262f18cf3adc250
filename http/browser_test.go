package http_test

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	sessiondhttp "github.com/sessiond/sessiond/http"
	"github.com/sessiond/sessiond/internal/sessiondtest"
	"github.com/sessiond/sessiond/web"
)

// noRedirect is a client that reports redirects instead of following them.
var noRedirect = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

func get(t *testing.T, url string, h map[string]string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range h {
		req.Header.Set(k, v)
	}
	resp, err := noRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b)
}

func TestBasePath(t *testing.T) {
	ts := startServer(t, func(s *sessiondtest.Server) {
		s.HTTP.BasePath = "/auth/"
		s.HTTP.Page = web.Handler(web.Options{Signup: true, BasePath: "/auth/"})
	})
	resp, page := get(t, ts.URL+"/auth/", nil)
	if resp.StatusCode != 200 || !strings.Contains(page, `href="/auth/static/app.css?v=`) || !strings.Contains(page, `src="/auth/static/app.js?v=`) || !strings.Contains(page, `data-base="/auth/"`) {
		t.Fatalf("GET /auth/: got %d, want the page with every link under /auth/:\n%.600s", resp.StatusCode, page)
	}
	if resp, _ := get(t, ts.URL+"/auth/static/app.js", nil); resp.StatusCode != 200 {
		t.Fatalf("GET /auth/static/app.js: got %d", resp.StatusCode)
	}
	if resp, _ := get(t, ts.URL+"/auth", nil); resp.StatusCode != http.StatusMovedPermanently || resp.Header.Get("Location") != "/auth/" {
		t.Fatalf("GET /auth: got %d %q, want 301 to /auth/", resp.StatusCode, resp.Header.Get("Location"))
	}
	for _, p := range []string{"/auth/.well-known/jwks.json", "/auth/healthz", "/auth/readyz", "/healthz", "/readyz", "/auth/api/v1/openapi.json"} {
		if resp, _ := get(t, ts.URL+p, nil); resp.StatusCode != 200 {
			t.Fatalf("GET %s: got %d, want 200", p, resp.StatusCode)
		}
	}
	for _, p := range []string{"/", "/api/v1/me", "/static/app.js", "/.well-known/jwks.json", "/authx/", "/other/auth/"} {
		resp, body := get(t, ts.URL+p, nil)
		if resp.StatusCode != 404 || !strings.Contains(body, `"code":"not_found"`) {
			t.Fatalf("GET %s outside the base path: got %d %s, want 404 not_found", p, resp.StatusCode, body)
		}
	}

	c := sessiondtest.NewClient(t, ts.URL+"/auth")
	c.Register("bea")
	g := c.Login("bea", nil)
	c.Login("bea", nil)
	r := c.Do("GET", "/api/v1/sessions?limit=1", g.AccessToken, nil).Expect(t, 200)
	if link := r.Header.Get("Link"); !strings.HasPrefix(link, "</auth/api/v1/sessions?") {
		t.Fatalf("Link: got %q, want the next page under /auth/", link)
	}
	// Cookies keep Path=/ (the __Host- prefix requires it).
	req, _ := http.NewRequest("POST", ts.URL+"/auth/api/v1/auth/login", strings.NewReader(`{"username":"bea","password":"`+sessiondtest.Password+`"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(sessiondhttp.CookiesHeader, "1")
	req.Header.Set("Origin", ts.URL)
	resp2, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp2.Body.Close()
	if resp2.StatusCode != 200 {
		t.Fatalf("cookie login under /auth/: got %d", resp2.StatusCode)
	}
	for _, ck := range resp2.Cookies() {
		if ck.Path != "/" {
			t.Fatalf("cookie %s: got Path %q, want /", ck.Name, ck.Path)
		}
	}
	if len(resp2.Cookies()) == 0 {
		t.Fatal("cookie login under /auth/ set no cookie")
	}

	for _, bad := range []string{"auth", "/a b/", "/../", "//", "/a//b/"} {
		if _, err := sessiondhttp.ParseBasePath(bad); err == nil {
			t.Errorf("ParseBasePath(%q): got nil error", bad)
		}
	}
	if p, err := sessiondhttp.ParseBasePath("/auth"); err != nil || p != "/auth/" {
		t.Errorf("ParseBasePath(/auth): got (%q, %v), want /auth/", p, err)
	}
}

func TestLoginAnswersReturnTo(t *testing.T) {
	rules, err := sessiondhttp.ParseReturnRules("https://app.example.com", "")
	if err != nil {
		t.Fatal(err)
	}
	ts := startServer(t, func(s *sessiondtest.Server) { s.HTTP.ReturnTo = rules })
	c := sessiondtest.NewClient(t, ts.URL)
	c.Register("rita")
	for raw, want := range map[string]string{
		"/app/page?x=1":                  "/app/page?x=1",
		"https://app.example.com/orders": "https://app.example.com/orders",
		"//evil.example":                 "",
		"https://evil.example/":          "",
		"javascript:alert(1)":            "",
	} {
		var out struct {
			Redirect *string `json:"redirect"`
		}
		c.Do("POST", "/api/v1/auth/login", "", map[string]string{"username": "rita", "password": sessiondtest.Password, "return_to": raw}).Expect(t, 200).Decode(t, &out)
		got := ""
		if out.Redirect != nil {
			got = *out.Redirect
		}
		if got != want {
			t.Errorf("login with return_to %q: got redirect %q, want %q", raw, got, want)
		}
	}
}

func TestCheckSendsBrowsersToSignIn(t *testing.T) {
	rules, err := sessiondhttp.ParseReturnRules("", "https://app.example.com")
	if err != nil {
		t.Fatal(err)
	}
	configure := func(trusted string) func(s *sessiondtest.Server) {
		return func(s *sessiondtest.Server) {
			s.HTTP.BasePath, s.HTTP.ReturnTo, s.HTTP.PublicURL = "/auth/", rules, "https://app.example.com"
			s.HTTP.TrustedProxies = proxies(t, trusted)
		}
	}
	ts := startServer(t, configure("127.0.0.1"))
	untrusted := startServer(t, configure("10.0.0.0/8"))
	html := "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
	fwd := map[string]string{"Accept": html, "X-Forwarded-Proto": "https", "X-Forwarded-Host": "app.example.com", "X-Forwarded-Uri": "/app/page?x=1"}
	want := "https://app.example.com/auth/?return_to=" + url.QueryEscape("https://app.example.com/app/page?x=1")

	resp, _ := get(t, ts.URL+"/auth/api/v1/auth/check", fwd)
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != want {
		t.Fatalf("browser, trusted proxy: got %d %q, want 302 to %q", resp.StatusCode, resp.Header.Get("Location"), want)
	}
	resp, _ = get(t, ts.URL+"/auth/api/v1/auth/check?rd="+url.QueryEscape("https://app.example.com/x"), map[string]string{"Accept": html})
	if resp.StatusCode != http.StatusFound || !strings.HasSuffix(resp.Header.Get("Location"), url.QueryEscape("https://app.example.com/x")) {
		t.Fatalf("browser with rd: got %d %q, want 302", resp.StatusCode, resp.Header.Get("Location"))
	}
	for name, tc := range map[string]struct {
		srv *sessiondtest.Server
		h   map[string]string
		q   string
	}{
		"an API client":                {ts, map[string]string{"Accept": "application/json", "X-Forwarded-Proto": "https", "X-Forwarded-Host": "app.example.com", "X-Forwarded-Uri": "/app"}, ""},
		"an untrusted peer's headers":  {untrusted, fwd, ""},
		"another host":                 {ts, map[string]string{"Accept": html, "X-Forwarded-Proto": "https", "X-Forwarded-Host": "evil.example", "X-Forwarded-Uri": "/"}, ""},
		"an rd to another host":        {ts, map[string]string{"Accept": html}, "?rd=" + url.QueryEscape("https://evil.example/")},
		"an rd with userinfo":          {ts, map[string]string{"Accept": html}, "?rd=" + url.QueryEscape("https://app.example.com@evil.example/")},
		"no original URL":              {ts, map[string]string{"Accept": html}, ""},
		"a protocol-relative original": {ts, map[string]string{"Accept": html}, "?rd=" + url.QueryEscape("//evil.example")},
	} {
		resp, body := get(t, tc.srv.URL+"/auth/api/v1/auth/check"+tc.q, tc.h)
		if resp.StatusCode != 401 || resp.Header.Get("Location") != "" || !strings.Contains(body, `"code":"invalid_token"`) {
			t.Errorf("%s: got %d Location %q, want a plain 401", name, resp.StatusCode, resp.Header.Get("Location"))
		}
	}
	// A signed-in browser passes as before.
	c := sessiondtest.NewClient(t, ts.URL+"/auth")
	c.Register("bo")
	g := c.Login("bo", nil)
	resp, _ = get(t, ts.URL+"/auth/api/v1/auth/check", map[string]string{"Accept": html, "Authorization": "Bearer " + g.AccessToken})
	if resp.StatusCode != 200 || resp.Header.Get("X-Sessiond-User") == "" {
		t.Fatalf("signed-in browser: got %d, want 200 with X-Sessiond-User", resp.StatusCode)
	}
}
