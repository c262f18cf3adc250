package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/sessiond/sessiond/internal/freeport"
	"github.com/sessiond/sessiond/web/webtest"
)

// TestBrowserHandoff: an app that signs its users in itself (a tiny
// backend here) starts a session through the real program's admin API
// with handoff: true and sends the browser to the handoff URL; Chromium
// comes back to the app's page signed in, sessiond's devices page shows
// the session as this device, and forward-auth accepts the browser's
// cookie. The same URL opened again is refused and ends the session.
func TestBrowserHandoff(t *testing.T) {
	port, err := freeport.Port()
	if err != nil {
		t.Fatal(err)
	}
	sessiondURL := fmt.Sprintf("http://127.0.0.1:%d", port)
	dataDir := filepath.Join(t.TempDir(), "data")
	key := newAdminKey(t, map[string]string{"SESSIOND_DATA_DIR": dataDir}, "app")

	// The app: /login stands for its own sign-in (it knows the user is
	// "auth0|e2e-1"), /home is the page the user lands on.
	var adminURL string
	var mu sync.Mutex
	var handoffURLs []string
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/login":
			ip, _, _ := net.SplitHostPort(r.RemoteAddr)
			body, _ := json.Marshal(map[string]any{"user_id": "auth0|e2e-1", "handoff": true, "user_agent": r.UserAgent(), "ip_address": ip})
			req, _ := http.NewRequest("POST", adminURL+"/admin/v1/sessions", bytes.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+key)
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadGateway)
				return
			}
			defer resp.Body.Close()
			var out struct {
				Data struct {
					HandoffURL string `json:"handoff_url"`
				} `json:"data"`
			}
			raw, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusCreated || json.Unmarshal(raw, &out) != nil || out.Data.HandoffURL == "" {
				http.Error(w, fmt.Sprintf("admin API: %d %s", resp.StatusCode, raw), http.StatusBadGateway)
				return
			}
			mu.Lock()
			handoffURLs = append(handoffURLs, out.Data.HandoffURL)
			mu.Unlock()
			http.Redirect(w, r, out.Data.HandoffURL+"&return_to="+url.QueryEscape("http://"+r.Host+"/home"), http.StatusFound)
		case "/home":
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			fmt.Fprint(w, `<!doctype html><title>App</title><h1 id="home">Welcome back</h1>`)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(app.Close)

	ts := startServer(t, map[string]string{
		"SESSIOND_ADDR":        fmt.Sprintf("127.0.0.1:%d", port),
		"SESSIOND_DATA_DIR":    dataDir,
		"SESSIOND_USERS":       "external",
		"SESSIOND_PUBLIC_URL":  sessiondURL,
		"SESSIOND_RETURN_URLS": app.URL,
	})
	if ts.URL != sessiondURL {
		t.Fatalf("sessiond listens at %s, want %s", ts.URL, sessiondURL)
	}
	adminURL = ts.AdminURL

	b := webtest.New(t, chromedp.UserAgent(uaChromeWindows))
	b.Do(chromedp.Navigate(app.URL+"/login"), chromedp.WaitVisible(chromedp.CSS("#home")))
	location := webtest.Eval[string](b, "location.href")
	if location != app.URL+"/home" {
		t.Fatalf("after the handoff the browser is at %q, want the app's %s/home", location, app.URL)
	}
	mu.Lock()
	handoff := handoffURLs[0]
	mu.Unlock()
	if !strings.HasPrefix(handoff, sessiondURL+"/auth/handoff?code=") {
		t.Fatalf("handoff_url: got %q, want it on %s (SESSIOND_PUBLIC_URL)", handoff, sessiondURL)
	}

	// sessiond's page in the same browser: signed in, this device listed.
	b.Do(chromedp.Navigate(sessiondURL+"/"), webtest.WaitView("devices"), webtest.WaitSessions(1))
	d := currentOf(t, b)
	if d.Title != "Chrome on Windows" || d.IP != "127.0.0.1" {
		t.Errorf("the handed-over session on the devices page: got %+v", d)
	}

	cookies := webtest.Cookies(b, sessiondURL)
	at := cookies["__Host-sessiond_at"]
	if at == nil || cookies["__Host-sessiond_rt"] == nil || !at.Secure || !at.HTTPOnly || at.SameSite != network.CookieSameSiteLax || at.Path != "/" {
		t.Fatalf("the browser's token cookies: got %v", cookies)
	}
	check := sessiondURL + "/api/v1/auth/check"
	if got := replay(t, "GET", check, []*network.Cookie{at}, nil); got != http.StatusOK {
		t.Fatalf("forward-auth with the browser's cookie: got %d, want 200", got)
	}

	// The URL a second time (a leaked copy): refused with a page, and the
	// session is over.
	b.Do(chromedp.Navigate(handoff), chromedp.WaitVisible(chromedp.CSS("h1")))
	text := webtest.Eval[string](b, "document.querySelector('h1').textContent")
	if text != "This sign-in link does not work" {
		t.Fatalf("the handoff URL opened again: got heading %q", text)
	}
	if got := replay(t, "GET", check, []*network.Cookie{at}, nil); got != http.StatusUnauthorized {
		t.Fatalf("forward-auth after the replay: got %d, want 401 (the session is ended)", got)
	}
	if logs := ts.Logs.String(); strings.Contains(logs, strings.TrimPrefix(handoff, sessiondURL+"/auth/handoff?code=")) {
		t.Fatal("the handoff code is in sessiond's log")
	}
}
