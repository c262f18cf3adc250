package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/sessiond/sessiond/internal/sessiondtest"
	"github.com/sessiond/sessiond/web/webtest"
)

// nginxBrowsers is the recipe of docs/forward-auth.md for browsers: the
// app and sessiond on one origin, sessiond under /auth/, and nginx sending
// a browser that fails the check to the sign-in page with return_to.
const nginxBrowsers = `
        # sessiond: its page, API and files, under /auth/.
        location /auth/ {
            proxy_pass %[4]s;
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_buffering off; # the page's event stream
        }

        location = /_sessiond_check {
            internal;
            proxy_pass %[4]s/auth/api/v1/auth/check;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header Host $http_host;
        }

        # The app, for signed-in users only.
        location /app/ {
            auth_request /_sessiond_check;
            auth_request_set $user $upstream_http_x_sessiond_user;
            proxy_set_header X-Sessiond-User $user;
            proxy_pass %[5]s;
            error_page 401 = @signin;
        }

        location @signin {
            return 302 /auth/?return_to=$request_uri;
        }
`

// TestBrowserSignsInBehindNginx: a browser asking for the app behind nginx
// is sent to sessiond's sign-in page under /auth/, signs in, comes back to
// the page it asked for, and the app sees who it is; once another device
// signs it out, its next navigation is sent to sign in again.
func TestBrowserSignsInBehindNginx(t *testing.T) {
	ts := startServer(t, map[string]string{"SESSIOND_BASE_PATH": "/auth/", "SESSIOND_TRUSTED_PROXIES": "127.0.0.1"})
	var mu sync.Mutex
	var seen []string
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Header.Get("X-Sessiond-User"))
		mu.Unlock()
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, "<!doctype html><title>app</title><p id=app>app page %s for user %s</p>", r.URL.RequestURI(), r.Header.Get("X-Sessiond-User"))
	}))
	t.Cleanup(upstream.Close)
	proxy := startNginxConf(t, nginxBrowsers, ts.URL, upstream.URL)

	c := sessiondtest.NewClient(t, proxy+"/auth")
	u := c.Register("nina")
	phone := c.Login("nina", nil)

	b := webtest.New(t)
	b.Do(
		chromedp.Navigate(proxy+"/app/page?tab=2"),
		webtest.WaitView("signin"),
		chromedp.SetValue(chromedp.CSS("#signin-username"), "nina"),
		chromedp.SetValue(chromedp.CSS("#signin-password"), sessiondtest.Password),
		chromedp.Click(chromedp.CSS(`#signin-form button[type="submit"]`)),
	)
	b.Do(chromedp.WaitVisible(chromedp.CSS("#app")))
	text := webtest.Eval[string](b, `document.getElementById('app').textContent + '|' + location.pathname + location.search`)
	want := "app page /app/page?tab=2 for user " + u.ID + "|/app/page?tab=2"
	if text != want {
		t.Fatalf("after signing in: got %q, want %q", text, want)
	}
	mu.Lock()
	if len(seen) != 1 || seen[0] != u.ID {
		t.Fatalf("upstream saw X-Sessiond-User %q, want %q once", seen, u.ID)
	}
	mu.Unlock()

	// The phone signs the browser out; the browser's next navigation goes
	// to sign in again, and comes back after it.
	var list []sessiondtest.Session
	c.Do("GET", "/api/v1/sessions", phone.AccessToken, nil).Expect(t, 200).Decode(t, &list)
	var browserID string
	for _, s := range list {
		if s.ID != phone.Session.ID {
			browserID = s.ID
		}
	}
	if len(list) != 2 || browserID == "" {
		t.Fatalf("sessions: got %d, want the phone and the browser", len(list))
	}
	c.Do("DELETE", "/api/v1/sessions/"+browserID, phone.AccessToken, nil).Expect(t, 200)
	b.Do(chromedp.Navigate(proxy+"/app/other"), webtest.WaitView("signin"))
	if got := webtest.Eval[string](b, `location.pathname + location.search`); got != "/auth/?return_to=/app/other" {
		t.Fatalf("after being signed out: got %q, want the sign-in page with return_to", got)
	}
	mu.Lock()
	if len(seen) != 1 {
		t.Fatalf("upstream saw a request of a signed-out browser: %q", seen)
	}
	mu.Unlock()
	b.Do(
		chromedp.SetValue(chromedp.CSS("#signin-username"), "nina"),
		chromedp.SetValue(chromedp.CSS("#signin-password"), sessiondtest.Password),
		chromedp.Click(chromedp.CSS(`#signin-form button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS("#app")),
	)
	if got := webtest.Eval[string](b, `location.pathname`); got != "/app/other" {
		t.Fatalf("after signing in again: got %q, want /app/other", got)
	}
	b.CheckNoProblems("401", "Failed to load resource")
	if strings.Contains(ts.Logs.String(), sessiondtest.Password) {
		t.Fatal("the log contains the password")
	}
}
