package http_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	sessiondhttp "github.com/sessiond/sessiond/http"
	"github.com/sessiond/sessiond/internal/adminkey"
	"github.com/sessiond/sessiond/internal/apitest"
	"github.com/sessiond/sessiond/internal/sessiondtest"
	"github.com/sessiond/sessiond/web"
)

// handoffEnv is a Manager of the app's own users on both listeners, the
// public one under basePath and with publicURL, and an admin key.
type handoffEnv struct {
	*sessiondtest.Server
	Admin *httptest.Server
	AC    *sessiondtest.Client
	Key   string
	// Browser asks the public listener as a browser does, but reports
	// redirects instead of following them; its answers are checked
	// against docs/openapi.yaml.
	Browser *http.Client
}

// manualClock is a Manager clock a test moves.
type manualClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *manualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *manualClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func startHandoff(t *testing.T, o sessiondtest.Options, publicURL, basePath string) *handoffEnv {
	t.Helper()
	o.ExternalUsers = true
	e := &handoffEnv{Server: sessiondtest.StartServer(t, o, func(s *sessiondtest.Server) {
		s.HTTP.BasePath = basePath
		s.HTTP.PublicURL = publicURL
		rules, err := sessiondhttp.ParseReturnRules("https://app.example.com", publicURL)
		if err != nil {
			t.Fatal(err)
		}
		s.HTTP.ReturnTo = rules
		s.HTTP.Page = web.Handler(web.Options{External: true, BasePath: basePath})
	})}
	file := filepath.Join(t.TempDir(), "admin-keys")
	var err error
	if e.Key, err = adminkey.New(file, "app"); err != nil {
		t.Fatal(err)
	}
	keys, err := adminkey.Open(file, nil)
	if err != nil {
		t.Fatal(err)
	}
	e.Admin = e.StartAdmin(t, keys, func(a *sessiondhttp.AdminServer) {
		a.PublicURL, a.BasePath = publicURL, basePath
	})
	e.AC = sessiondtest.NewAdminClient(t, e.Admin.URL)
	var rt http.RoundTripper = http.DefaultTransport
	if basePath == "" || basePath == "/" {
		rt = apitest.NewValidator(t).Transport(t, nil)
	}
	e.Browser = &http.Client{
		Transport:     rt,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return e
}

// handoffAnswer is the data of a start with handoff: true, every member.
type handoffAnswer struct {
	HandoffURL string       `json:"handoff_url"`
	ExpiresIn  int          `json:"expires_in"`
	Session    adminSession `json:"session"`
}

// start starts a session for userID with handoff: true and checks the
// answer has no tokens.
func (e *handoffEnv) start(t *testing.T, userID string) handoffAnswer {
	t.Helper()
	r := e.AC.Do("POST", "/admin/v1/sessions", e.Key, map[string]any{
		"user_id": userID, "handoff": true, "device_name": "Handed over",
		"user_agent": "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
	}).Expect(t, http.StatusCreated)
	var members map[string]json.RawMessage
	if err := json.Unmarshal(r.Env.Data, &members); err != nil {
		t.Fatal(err)
	}
	if len(members) != 3 || members["access_token"] != nil || members["refresh_token"] != nil {
		t.Fatalf("handoff start: got data %s, want exactly handoff_url, expires_in and session", r.Env.Data)
	}
	var a handoffAnswer
	r.Decode(t, &a)
	if a.ExpiresIn != 60 || a.Session.ID == "" || !a.Session.Current || a.Session.Name != "Handed over" || a.Session.Device != "Firefox on Linux" {
		t.Fatalf("handoff start: got %+v", a)
	}
	return a
}

// redeem GETs the handoff URL (relative ones on the public listener),
// with return_to added when it is not "", as a browser that accepts
// accept; it returns the answer and its body.
func (e *handoffEnv) redeem(t *testing.T, handoffURL, returnTo, accept string) (*http.Response, string) {
	t.Helper()
	u := handoffURL
	if strings.HasPrefix(u, "/") {
		u = e.URL + u
	}
	if returnTo != "" {
		u += "&return_to=" + url.QueryEscape(returnTo)
	}
	req, err := http.NewRequest("GET", u, nil)
	if err != nil {
		t.Fatal(err)
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := e.Browser.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for k, v := range map[string]string{"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"} {
		if got := resp.Header.Get(k); got != v {
			t.Errorf("GET handoff URL: %s: got %q, want %q", k, got, v)
		}
	}
	return resp, string(b)
}

// wantSignedIn checks resp is a 303 to location that sets the two token
// cookies as a cookie login does, and returns the access cookie's value.
func wantSignedIn(t *testing.T, resp *http.Response, location string) string {
	t.Helper()
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != location {
		t.Fatalf("GET handoff URL: got %d to %q, want 303 to %q", resp.StatusCode, resp.Header.Get("Location"), location)
	}
	got := map[string]*http.Cookie{}
	for _, c := range resp.Cookies() {
		got[c.Name] = c
	}
	for _, name := range []string{sessiondhttp.AccessCookie, sessiondhttp.RefreshCookie} {
		c := got[name]
		if c == nil || c.Value == "" || !c.Secure || !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Path != "/" || c.MaxAge <= 0 {
			t.Fatalf("cookie %s: got %+v, want a Secure, HttpOnly, SameSite=Lax cookie with Path=/", name, c)
		}
	}
	if len(got) != 2 {
		t.Fatalf("GET handoff URL: got cookies %v, want the two token cookies only", resp.Header.Values("Set-Cookie"))
	}
	return got[sessiondhttp.AccessCookie].Value
}

// me asks /api/v1/me with the access cookie and returns the status.
func (e *handoffEnv) me(t *testing.T, basePath, accessCookie string) int {
	t.Helper()
	req, _ := http.NewRequest("GET", e.URL+strings.TrimSuffix(basePath, "/")+"/api/v1/me", nil)
	req.AddCookie(&http.Cookie{Name: sessiondhttp.AccessCookie, Value: accessCookie})
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func wantHandoffInvalid(t *testing.T, what string, resp *http.Response, body string) {
	t.Helper()
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, `"code":"handoff_invalid"`) {
		t.Fatalf("%s: got %d %s, want 400 handoff_invalid", what, resp.StatusCode, body)
	}
	if len(resp.Cookies()) != 0 {
		t.Fatalf("%s: got cookies %v, want none", what, resp.Header.Values("Set-Cookie"))
	}
}

// TestHandoff: a session the app starts with handoff: true reaches the
// browser once, as cookies, on every store; a second use of the code ends
// it.
func TestHandoff(t *testing.T) {
	for _, b := range storeBackends() {
		t.Run(b.name, func(t *testing.T) {
			e := startHandoff(t, b.opts(t, sessiondtest.Options{}), "", "")
			a := e.start(t, "auth0|ann")
			if !regexp.MustCompile(`^/auth/handoff\?code=[A-Za-z0-9_-]{43}$`).MatchString(a.HandoffURL) {
				t.Fatalf("handoff_url: got %q, want /auth/handoff?code=<43 base64url characters>", a.HandoffURL)
			}
			resp, _ := e.redeem(t, a.HandoffURL, "", "text/html")
			at := wantSignedIn(t, resp, "/")
			if got := e.me(t, "/", at); got != 200 {
				t.Fatalf("/api/v1/me with the handed-over cookie: got %d, want 200", got)
			}
			check, _ := http.NewRequest("GET", e.URL+"/api/v1/auth/check", nil)
			check.AddCookie(&http.Cookie{Name: sessiondhttp.AccessCookie, Value: at})
			cr, err := http.DefaultClient.Do(check)
			if err != nil {
				t.Fatal(err)
			}
			cr.Body.Close()
			if cr.StatusCode != 200 || cr.Header.Get("X-Sessiond-Session") != a.Session.ID || cr.Header.Get("X-Sessiond-User") != "auth0|ann" {
				t.Fatalf("forward auth with the handed-over cookie: got %d %v", cr.StatusCode, cr.Header)
			}

			// A second use: refused, and the session is ended.
			resp, body := e.redeem(t, a.HandoffURL, "", "")
			wantHandoffInvalid(t, "second use", resp, body)
			if got := e.me(t, "/", at); got != 401 {
				t.Fatalf("/api/v1/me after the code's replay: got %d, want 401 (the session is ended)", got)
			}
			if !strings.Contains(e.Logs.String(), `"reason":"handoff_replayed"`) {
				t.Fatalf("no session end with reason handoff_replayed logged:\n%s", e.Logs.String())
			}
			if m := regexp.MustCompile(`code=([A-Za-z0-9_-]{43})`).FindStringSubmatch(a.HandoffURL); strings.Contains(e.Logs.String(), m[1]) {
				t.Fatalf("the handoff code is in the logs:\n%s", e.Logs.String())
			}
		})
	}
}

// TestHandoffReturnTo: the browser lands on an allowed return_to, and on
// the page for anything else (never an open redirect).
func TestHandoffReturnTo(t *testing.T) {
	e := startHandoff(t, sessiondtest.Options{}, "", "")
	for _, tc := range []struct{ returnTo, want string }{
		{"https://app.example.com/welcome?x=1", "https://app.example.com/welcome?x=1"},
		{"/settings", "/settings"},
		{"https://evil.example/", "/"},
		{"//evil.example/", "/"},
		{"https://app.example.com.evil.example/", "/"},
	} {
		a := e.start(t, "bob")
		resp, _ := e.redeem(t, a.HandoffURL, tc.returnTo, "")
		wantSignedIn(t, resp, tc.want)
	}
}

// TestHandoffRefused: unknown, malformed and expired codes are refused
// without a cookie, as JSON for programs and as a page for browsers; HEAD
// does not use a code up.
func TestHandoffRefused(t *testing.T) {
	clock := &manualClock{t: time.Now()}
	e := startHandoff(t, sessiondtest.Options{Now: clock.Now}, "", "")

	for _, code := range []string{"", "short", strings.Repeat("A", 43), strings.Repeat("A", 42) + "=", strings.Repeat("A", 44)} {
		resp, body := e.redeem(t, "/auth/handoff?code="+url.QueryEscape(code), "", "application/json")
		wantHandoffInvalid(t, "code "+code, resp, body)
	}
	resp, body := e.redeem(t, "/auth/handoff?code="+strings.Repeat("A", 43), "", "text/html,application/xhtml+xml,*/*;q=0.8")
	if resp.StatusCode != 400 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") ||
		!strings.Contains(body, "<h1>This sign-in link does not work</h1>") || !strings.Contains(body, "handoff_invalid") {
		t.Fatalf("a browser's unknown code: got %d %q %s, want a 400 HTML page", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
		t.Fatalf("error page Content-Security-Policy: got %q", csp)
	}

	// HEAD is refused and leaves the code unused.
	a := e.start(t, "cat")
	req, _ := http.NewRequest("HEAD", e.URL+a.HandoffURL, nil)
	hr, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	hr.Body.Close()
	if hr.StatusCode != http.StatusMethodNotAllowed || len(hr.Cookies()) != 0 {
		t.Fatalf("HEAD handoff URL: got %d, want 405 without cookies", hr.StatusCode)
	}
	resp, _ = e.redeem(t, a.HandoffURL, "", "")
	wantSignedIn(t, resp, "/")

	// Expired: the Manager's clock decides.
	a = e.start(t, "cat")
	clock.Add(61 * time.Second)
	resp, body = e.redeem(t, a.HandoffURL, "", "")
	wantHandoffInvalid(t, "expired code", resp, body)

	// A code whose session ended meanwhile.
	a = e.start(t, "dan")
	e.AC.Do("DELETE", userPath("dan", "/"+a.Session.ID), e.Key, nil).Expect(t, 200)
	resp, body = e.redeem(t, a.HandoffURL, "", "")
	wantHandoffInvalid(t, "code of an ended session", resp, body)

	// A store that does not answer: 503, for programs and browsers, never
	// a refusal of the code.
	a = e.start(t, "eli")
	e.DB.Close()
	resp, body = e.redeem(t, a.HandoffURL, "", "")
	if resp.StatusCode != 503 || !strings.Contains(body, `"code":"unavailable"`) {
		t.Fatalf("store down: got %d %s, want 503 unavailable", resp.StatusCode, body)
	}
	resp, body = e.redeem(t, a.HandoffURL, "", "text/html")
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" || !strings.Contains(body, "<h1>Sign-in failed</h1>") {
		t.Fatalf("store down, a browser: got %d %v %s, want a 503 page with Retry-After", resp.StatusCode, resp.Header, body)
	}
}

// TestHandoffURL: with a public URL and a base path, the handoff URL is
// absolute and under the base path, and the browser lands on the page
// there.
func TestHandoffURL(t *testing.T) {
	e := startHandoff(t, sessiondtest.Options{}, "https://Auth.Example.com:443/ignored", "/auth/")
	a := e.start(t, "eve")
	const prefix = "https://auth.example.com/auth/auth/handoff?code="
	if !strings.HasPrefix(a.HandoffURL, prefix) {
		t.Fatalf("handoff_url: got %q, want it to start with %q", a.HandoffURL, prefix)
	}
	resp, _ := e.redeem(t, "/auth/auth/handoff?code="+strings.TrimPrefix(a.HandoffURL, prefix), "https://auth.example.com/auth/devices", "")
	at := wantSignedIn(t, resp, "https://auth.example.com/auth/devices")
	if got := e.me(t, "/auth/", at); got != 200 {
		t.Fatalf("/auth/api/v1/me with the handed-over cookie: got %d, want 200", got)
	}
	a = e.start(t, "eve")
	resp, _ = e.redeem(t, "/auth/auth/handoff?code="+strings.TrimPrefix(a.HandoffURL, prefix), "", "")
	wantSignedIn(t, resp, "/auth/")
}

// TestHandoffConcurrentRedeems: of many browsers redeeming one code at
// once, at most one is signed in, and the session is ended.
func TestHandoffConcurrentRedeems(t *testing.T) {
	e := startHandoff(t, sessiondtest.Options{}, "", "")
	a := e.start(t, "fay")
	const n = 8
	var wg sync.WaitGroup
	statuses := make([]int, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := http.Get(e.URL + a.HandoffURL)
			if err == nil {
				resp.Body.Close()
				statuses[i] = resp.StatusCode
			}
		}()
	}
	wg.Wait()
	ok := 0
	for _, s := range statuses {
		switch s {
		case http.StatusOK: // followed the 303 to the page
			ok++
		case http.StatusBadRequest:
		default:
			t.Fatalf("concurrent redeems: got statuses %v, want 200 (after the redirect) or 400", statuses)
		}
	}
	if ok != 1 {
		t.Fatalf("concurrent redeems: got %d signed in (%v), want exactly 1", ok, statuses)
	}
	list, err := e.Manager.List(context.Background(), "fay", "")
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 0 {
		t.Fatalf("after replays: got %d sessions, want 0 (the replay ended it)", len(list))
	}
}
