package web

import (
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

// get sends one request to h and returns the response with its body read.
func get(t *testing.T, h http.Handler, method, target string, header http.Header) (*http.Response, string) {
	t.Helper()
	req := httptest.NewRequest(method, target, nil)
	for k, v := range header {
		req.Header[k] = v
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	res := rec.Result()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res, string(body)
}

func checkSecurityHeaders(t *testing.T, res *http.Response) {
	t.Helper()
	want := map[string]string{
		"X-Content-Type-Options": "nosniff",
		"Referrer-Policy":        "no-referrer",
		"X-Frame-Options":        "DENY",
	}
	for k, v := range want {
		if got := res.Header.Get(k); got != v {
			t.Errorf("%s: got %q, want %q", k, got, v)
		}
	}
	csp := parseCSP(res.Header.Get("Content-Security-Policy"))
	for directive, want := range map[string]string{
		"default-src":     "'self'",
		"script-src":      "'self'",
		"style-src":       "'self'",
		"connect-src":     "'self'",
		"object-src":      "'none'",
		"base-uri":        "'none'",
		"frame-ancestors": "'none'",
	} {
		if got := csp[directive]; got != want {
			t.Errorf("CSP %s: got %q, want %q", directive, got, want)
		}
	}
	if got := csp["require-trusted-types-for"]; got != "'script'" {
		t.Errorf("CSP require-trusted-types-for: got %q, want 'script'", got)
	}
}

func parseCSP(s string) map[string]string {
	m := make(map[string]string)
	for _, d := range strings.Split(s, ";") {
		f := strings.Fields(d)
		if len(f) > 0 {
			m[f[0]] = strings.Join(f[1:], " ")
		}
	}
	return m
}

func TestPageHeaders(t *testing.T) {
	res, body := get(t, Handler(Options{}), "GET", "/", nil)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("status: got %d, want 200", res.StatusCode)
	}
	if got := res.Header.Get("Content-Type"); got != "text/html; charset=utf-8" {
		t.Errorf("Content-Type: got %q", got)
	}
	if got := res.Header.Get("Cache-Control"); got != "no-store" {
		t.Errorf("Cache-Control: got %q, want no-store", got)
	}
	checkSecurityHeaders(t, res)
	if !strings.Contains(body, `id="signin-form"`) {
		t.Error("the page has no sign-in form")
	}
}

func TestHeadPage(t *testing.T) {
	res, body := get(t, Handler(Options{}), "HEAD", "/", nil)
	if res.StatusCode != http.StatusOK || body != "" {
		t.Errorf("HEAD /: got %d with %d bytes, want 200 with none", res.StatusCode, len(body))
	}
}

// The CSP forbids inline script, inline style and event-handler attributes;
// the page must not need them, or it would break silently in the browser.
func TestPageNeedsNothingInline(t *testing.T) {
	_, body := get(t, Handler(Options{Signup: true}), "GET", "/", nil)
	scripts := regexp.MustCompile(`(?is)<script([^>]*)>(.*?)</script>`).FindAllStringSubmatch(body, -1)
	if len(scripts) == 0 {
		t.Fatal("the page loads no script")
	}
	for _, m := range scripts {
		if !strings.Contains(m[1], `src="/static/`) || strings.TrimSpace(m[2]) != "" {
			t.Errorf("inline script: %q", m[0])
		}
	}
	for _, re := range []string{`(?i)<style`, `(?i)\sstyle=`, `(?i)\son[a-z]+=`, `(?i)javascript:`} {
		if loc := regexp.MustCompile(re).FindStringIndex(body); loc != nil {
			t.Errorf("the page has %q at %q", re, body[loc[0]:min(len(body), loc[1]+40)])
		}
	}
}

func TestSignupOption(t *testing.T) {
	for _, signup := range []bool{false, true} {
		_, body := get(t, Handler(Options{Signup: signup}), "GET", "/", nil)
		if got := strings.Contains(body, `id="signup-form"`); got != signup {
			t.Errorf("Signup %v: sign-up form shown %v", signup, got)
		}
		if got := strings.Contains(body, `id="to-signup"`); got != signup {
			t.Errorf("Signup %v: link to sign-up shown %v", signup, got)
		}
	}
}

// With the app's own users the page has no form of sessiond's accounts:
// a link to the app's sign-in, or a sentence when there is none.
func TestExternalOption(t *testing.T) {
	forms := []string{`id="signin-form"`, `id="signup-form"`, `id="to-signup"`, `id="password-form"`, `type="password"`}
	for _, tc := range []struct {
		opts     Options
		want     []string
		wantNone []string
	}{
		{Options{External: true, Signup: true, LoginURL: "https://app.example.com/login?next=%2F&x=1"},
			[]string{`<a id="signin-link" class="btn primary wide" href="https://app.example.com/login?next=%2F&amp;x=1">Sign in</a>`, `data-external="true"`, `data-signup="false"`},
			append(forms, `id="signin-in-app"`)},
		{Options{External: true, LoginURL: "/login"},
			[]string{`href="/login">Sign in</a>`},
			append(forms, `id="signin-in-app"`)},
		{Options{External: true},
			[]string{`id="signin-in-app"`, "Sign-in happens in the app"},
			append(forms, `id="signin-link"`)},
		{Options{Signup: true, LoginURL: "/login"},
			[]string{`id="signin-form"`, `id="signup-form"`, `id="password-form"`, `data-external="false"`},
			[]string{`id="signin-link"`, `id="signin-in-app"`}},
	} {
		_, body := get(t, Handler(tc.opts), "GET", "/", nil)
		for _, w := range tc.want {
			if !strings.Contains(body, w) {
				t.Errorf("%+v: the page lacks %s", tc.opts, w)
			}
		}
		for _, w := range tc.wantNone {
			if strings.Contains(body, w) {
				t.Errorf("%+v: the page has %s", tc.opts, w)
			}
		}
	}
	_, body := get(t, Handler(Options{External: true, LoginURL: `javascript:alert(1)`}), "GET", "/", nil)
	if strings.Contains(body, "javascript:") {
		t.Errorf("a javascript: LoginURL reached the page")
	}
}

func TestPublicURLIsEscaped(t *testing.T) {
	hostile := `https://x.example/"><script>alert(1)</script>`
	_, body := get(t, Handler(Options{PublicURL: hostile}), "GET", "/", nil)
	if strings.Contains(body, "<script>alert") {
		t.Fatalf("PublicURL reached the page unescaped")
	}
	m := regexp.MustCompile(`data-public-url="([^"]*)"`).FindStringSubmatch(body)
	if m == nil || m[1] != "https://x.example/%22%3e%3cscript%3ealert%281%29%3c/script%3e" {
		t.Errorf("data-public-url: got %q, want the URL escaped", m)
	}
	_, body = get(t, Handler(Options{PublicURL: "javascript:alert(1)"}), "GET", "/", nil)
	if strings.Contains(body, "javascript:") {
		t.Errorf("a javascript: PublicURL reached the page")
	}
}

// The script renders API data (device names, User-Agent derived strings)
// with textContent only; Trusted Types would make an HTML sink throw, and
// this test keeps one from being written in the first place.
func TestScriptHasNoHTMLSinks(t *testing.T) {
	js := string(assets["app.js"].body)
	for _, sink := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function", "createContextualFragment", "srcdoc", "setHTML"} {
		if strings.Contains(js, sink) {
			t.Errorf("app.js uses %s", sink)
		}
	}
}

func TestStaticAssets(t *testing.T) {
	h := Handler(Options{})
	_, page := get(t, h, "GET", "/", nil)
	urls := regexp.MustCompile(`(?:href|src)="(/static/[^"]+)"`).FindAllStringSubmatch(page, -1)
	if len(urls) < 3 {
		t.Fatalf("the page links %d static files, want the script, the style sheet and the icon", len(urls))
	}
	for _, m := range urls {
		url := strings.ReplaceAll(m[1], "&amp;", "&")
		res, body := get(t, h, "GET", url, nil)
		if res.StatusCode != http.StatusOK || body == "" {
			t.Errorf("GET %s: got %d with %d bytes", url, res.StatusCode, len(body))
			continue
		}
		checkSecurityHeaders(t, res)
		if got := res.Header.Get("Cache-Control"); got != "public, max-age=31536000, immutable" {
			t.Errorf("GET %s: Cache-Control %q, want a year, immutable", url, got)
		}
		etag := res.Header.Get("ETag")
		if etag == "" {
			t.Errorf("GET %s: no ETag", url)
		}
		ct := res.Header.Get("Content-Type")
		switch {
		case strings.Contains(url, ".js?"):
			if ct != "text/javascript; charset=utf-8" {
				t.Errorf("GET %s: Content-Type %q", url, ct)
			}
		case strings.Contains(url, ".css?"):
			if ct != "text/css; charset=utf-8" {
				t.Errorf("GET %s: Content-Type %q", url, ct)
			}
		case strings.Contains(url, ".svg?"):
			if ct != "image/svg+xml" {
				t.Errorf("GET %s: Content-Type %q", url, ct)
			}
		}
		res, _ = get(t, h, "GET", url, http.Header{"If-None-Match": {etag}})
		if res.StatusCode != http.StatusNotModified {
			t.Errorf("GET %s with If-None-Match: got %d, want 304", url, res.StatusCode)
		}
		// An unversioned or stale link still works, but is revalidated.
		bare := url[:strings.Index(url, "?")]
		for _, u := range []string{bare, bare + "?v=0000"} {
			res, body = get(t, h, "GET", u, nil)
			if res.StatusCode != http.StatusOK || body == "" {
				t.Errorf("GET %s: got %d", u, res.StatusCode)
			}
			if got := res.Header.Get("Cache-Control"); got != "no-cache" {
				t.Errorf("GET %s: Cache-Control %q, want no-cache", u, got)
			}
		}
	}
}

func TestVersionChangesWithContent(t *testing.T) {
	seen := map[string]string{}
	for name, a := range assets {
		if len(a.version) != 16 {
			t.Errorf("%s: version %q", name, a.version)
		}
		if other, ok := seen[a.version]; ok {
			t.Errorf("%s and %s share version %s", name, other, a.version)
		}
		seen[a.version] = name
	}
}

func TestNotFound(t *testing.T) {
	h := Handler(Options{})
	for _, path := range []string{
		"/nope",
		"/index.html",
		"/favicon.ico",
		"/static/",
		"/static/nope.js",
		"/static/../web.go",
		"/static/%2e%2e/web.go",
		"/templates/index.html",
		"/api/v2/sessions",
		"/static/app.js/x",
	} {
		res, body := get(t, h, "GET", path, nil)
		if res.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: got %d, want 404", path, res.StatusCode)
			continue
		}
		if got := res.Header.Get("Content-Type"); got != "text/html; charset=utf-8" {
			t.Errorf("GET %s: Content-Type %q", path, got)
		}
		if got := res.Header.Get("Cache-Control"); got != "no-store" {
			t.Errorf("GET %s: Cache-Control %q, want no-store", path, got)
		}
		checkSecurityHeaders(t, res)
		if !strings.Contains(body, "Not found") || strings.Contains(body, "package web") {
			t.Errorf("GET %s: body %q", path, body)
		}
	}
}

func TestMethodNotAllowed(t *testing.T) {
	h := Handler(Options{})
	for _, target := range []string{"/", "/static/app.js"} {
		for _, method := range []string{"POST", "PUT", "DELETE", "PATCH"} {
			res, _ := get(t, h, method, target, nil)
			if res.StatusCode != http.StatusMethodNotAllowed {
				t.Errorf("%s %s: got %d, want 405", method, target, res.StatusCode)
			}
			if got := res.Header.Get("Allow"); got != "GET, HEAD" {
				t.Errorf("%s %s: Allow %q", method, target, got)
			}
			checkSecurityHeaders(t, res)
		}
	}
}
