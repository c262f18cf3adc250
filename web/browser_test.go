package web

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/sessiond/sessiond/web/webtest"
)

// These tests load the page in Chromium against a small stand-in of the API
// that follows docs/design.md ("HTTP API") closely enough to drive the page: the
// cookies, the envelope, the event stream. The tests of the page against
// the real server are in cmd/sessiond/web_e2e_test.go.

// fakeAPI is an in-memory stand-in of /api/v1 for one user.
type fakeAPI struct {
	mu       sync.Mutex
	sessions map[string]map[string]any
	order    []string
	seq      int
	streams  map[chan string]bool
	ttl      int // expires_in, seconds
	refresh  int // refreshes answered with 200
}

func newFakeAPI() *fakeAPI {
	return &fakeAPI{sessions: map[string]map[string]any{}, streams: map[chan string]bool{}, ttl: 900}
}

// add stores a session and returns its id.
func (f *fakeAPI) add(s map[string]any) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.seq++
	id := fmt.Sprintf("s%d", f.seq)
	s["id"] = id
	for _, k := range []string{"device", "device_class", "name", "ip_address", "location"} {
		if _, ok := s[k]; !ok {
			s[k] = ""
		}
	}
	now := time.Now().UTC()
	if _, ok := s["login_time"]; !ok {
		s["login_time"] = now.Format(time.RFC3339Nano)
	}
	if _, ok := s["last_active"]; !ok {
		s["last_active"] = now.Format(time.RFC3339Nano)
	}
	s["expires_at"] = now.Add(14 * 24 * time.Hour).Format(time.RFC3339Nano)
	f.sessions[id] = s
	f.order = append(f.order, id)
	return id
}

// publish sends an event to every open stream.
func (f *fakeAPI) publish(typ, id, reason string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ev := map[string]any{"type": typ, "session_id": id}
	if reason != "" {
		ev["reason"] = reason
	}
	if s, ok := f.sessions[id]; ok && typ != "revoked" {
		ev["session"] = s
	}
	b, _ := json.Marshal(ev)
	msg := "event: " + typ + "\ndata: " + string(b) + "\n\n"
	for ch := range f.streams {
		select {
		case ch <- msg:
		default:
		}
	}
}

func (f *fakeAPI) revoke(id, reason string) {
	f.mu.Lock()
	delete(f.sessions, id)
	f.mu.Unlock()
	f.publish("revoked", id, reason)
}

func (f *fakeAPI) sessionCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.sessions)
}

func reply(w http.ResponseWriter, status int, data any) {
	if data == nil {
		data = map[string]any{}
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	st := "success"
	if status >= 400 {
		st = "error"
	}
	json.NewEncoder(w).Encode(map[string]any{"status": st, "status_code": status, "message": http.StatusText(status), "data": data})
}

func (f *fakeAPI) setCookies(w http.ResponseWriter, id string, maxAge int) {
	for _, c := range []struct{ name, value string }{{"__Host-sessiond_at", "at-" + id}, {"__Host-sessiond_rt", "rt-" + id}} {
		http.SetCookie(w, &http.Cookie{Name: c.name, Value: c.value, Path: "/", Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode, MaxAge: maxAge})
	}
}

// current returns the session the request's cookie names, or "".
func (f *fakeAPI) current(r *http.Request, name, prefix string) string {
	c, err := r.Cookie(name)
	if err != nil || !strings.HasPrefix(c.Value, prefix) {
		return ""
	}
	id := strings.TrimPrefix(c.Value, prefix)
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.sessions[id]; !ok {
		return ""
	}
	return id
}

func (f *fakeAPI) view(id, current string) map[string]any {
	v := map[string]any{}
	for k, x := range f.sessions[id] {
		v[k] = x
	}
	v["current"] = id == current
	return v
}

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := strings.TrimPrefix(r.URL.Path, "/api/v1")
	if r.Method != "GET" && r.Header.Get("Sec-Fetch-Site") != "same-origin" {
		reply(w, http.StatusForbidden, nil)
		return
	}
	switch {
	case r.Method == "POST" && path == "/auth/login":
		var body struct{ Username, Password string }
		json.NewDecoder(r.Body).Decode(&body)
		if body.Username != "ada" || body.Password != "correct horse" || r.Header.Get("X-Sessiond-Cookies") != "1" {
			reply(w, http.StatusUnauthorized, nil)
			return
		}
		id := f.add(map[string]any{"device": "Chrome on Linux", "device_class": "desktop", "ip_address": "127.0.0.1"})
		f.setCookies(w, id, 3600)
		f.mu.Lock()
		v := f.view(id, id)
		f.mu.Unlock()
		reply(w, http.StatusOK, map[string]any{"token_type": "Bearer", "expires_in": f.ttl, "session": v})
		f.publish("created", id, "")
		return
	case r.Method == "POST" && path == "/auth/refresh":
		id := f.current(r, "__Host-sessiond_rt", "rt-")
		if id == "" {
			reply(w, http.StatusUnauthorized, nil)
			return
		}
		f.setCookies(w, id, 3600)
		f.mu.Lock()
		f.refresh++
		v := f.view(id, id)
		f.mu.Unlock()
		reply(w, http.StatusOK, map[string]any{"token_type": "Bearer", "expires_in": f.ttl, "session": v})
		return
	}
	id := f.current(r, "__Host-sessiond_at", "at-")
	if id == "" {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		reply(w, http.StatusUnauthorized, nil)
		return
	}
	switch {
	case r.Method == "GET" && path == "/me":
		f.mu.Lock()
		v := f.view(id, id)
		f.mu.Unlock()
		reply(w, http.StatusOK, map[string]any{"user": map[string]any{"id": "u1", "username": "ada", "email": "ada@example.com"}, "session": v})
	case r.Method == "GET" && path == "/sessions":
		f.mu.Lock()
		list := []any{}
		for _, s := range f.order {
			if _, ok := f.sessions[s]; ok {
				list = append(list, f.view(s, id))
			}
		}
		f.mu.Unlock()
		reply(w, http.StatusOK, list)
	case r.Method == "GET" && path == "/activity":
		// A server that keeps no security activity answers none.
		reply(w, http.StatusOK, []any{})
	case r.Method == "POST" && path == "/auth/logout":
		f.setCookies(w, "", -1)
		f.revoke(id, "logout")
		reply(w, http.StatusOK, nil)
	case r.Method == "DELETE" && path == "/sessions":
		f.mu.Lock()
		var others []string
		for s := range f.sessions {
			if s != id {
				others = append(others, s)
			}
		}
		f.mu.Unlock()
		for _, s := range others {
			f.revoke(s, "revoked_others")
		}
		reply(w, http.StatusOK, map[string]any{"revoked": len(others)})
	case r.Method == "DELETE" && strings.HasPrefix(path, "/sessions/"):
		target := strings.TrimPrefix(path, "/sessions/")
		f.mu.Lock()
		_, ok := f.sessions[target]
		f.mu.Unlock()
		if !ok {
			reply(w, http.StatusNotFound, nil)
			return
		}
		f.revoke(target, "revoked")
		reply(w, http.StatusOK, nil)
	case r.Method == "PATCH" && strings.HasPrefix(path, "/sessions/"):
		target := strings.TrimPrefix(path, "/sessions/")
		var body struct{ Name string }
		json.NewDecoder(r.Body).Decode(&body)
		f.mu.Lock()
		s, ok := f.sessions[target]
		if ok {
			s["name"] = body.Name
		}
		v := f.view(target, id)
		f.mu.Unlock()
		if !ok {
			reply(w, http.StatusNotFound, nil)
			return
		}
		f.publish("renamed", target, "")
		reply(w, http.StatusOK, v)
	case r.Method == "GET" && path == "/sessions/events":
		ch := make(chan string, 16)
		f.mu.Lock()
		f.streams[ch] = true
		f.mu.Unlock()
		defer func() {
			f.mu.Lock()
			delete(f.streams, ch)
			f.mu.Unlock()
		}()
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusOK)
		fmt.Fprint(w, ": hello\n\n")
		w.(http.Flusher).Flush()
		for {
			select {
			case <-r.Context().Done():
				return
			case msg := <-ch:
				fmt.Fprint(w, msg)
				w.(http.Flusher).Flush()
				if strings.Contains(msg, `"session_id":"`+id+`"`) && strings.HasPrefix(msg, "event: revoked") {
					return
				}
			}
		}
	default:
		reply(w, http.StatusNotFound, nil)
	}
}

// startServer serves the page and api on a loopback address.
func startServer(t *testing.T, opts Options, api http.Handler) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	mux.Handle("/api/v1/", api)
	mux.Handle("/", Handler(opts))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func TestBrowserSignInPage(t *testing.T) {
	srv := startServer(t, Options{Signup: true, PublicURL: "https://auth.example.com"}, newFakeAPI())
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(srv.URL, "http://"))
	b := webtest.New(t, chromedp.Flag("host-resolver-rules", "MAP devices.test 127.0.0.1"))

	t.Run("loopback: no warning", func(t *testing.T) {
		b.Do(chromedp.Navigate(srv.URL+"/"), webtest.WaitView("signin"))
		if webtest.Eval[bool](b, `!document.getElementById('insecure').hidden`) {
			t.Error("the plain-HTTP warning shows on 127.0.0.1")
		}
		if webtest.Eval[bool](b, `document.getElementById('signin-fields').disabled`) {
			t.Error("the sign-in form is disabled on 127.0.0.1")
		}
		if got := webtest.Eval[string](b, `document.activeElement.tagName`); got != "BODY" {
			t.Errorf("focus on load: got %s, want the document", got)
		}
		// The sign-up form is one click away, and back.
		b.Do(chromedp.Click(chromedp.CSS("#to-signup")), webtest.WaitView("signup"))
		if got := webtest.Eval[string](b, `document.activeElement.id`); got != "signup-title" {
			t.Errorf("focus after switching to sign-up: got %q, want the heading", got)
		}
		b.Do(chromedp.Click(chromedp.CSS("#to-signin")), webtest.WaitView("signin"))
		b.CheckNoProblems("401")
	})

	t.Run("plain HTTP elsewhere: warning", func(t *testing.T) {
		b.Do(chromedp.Navigate("http://devices.test:"+port+"/"), webtest.WaitView("signin"),
			chromedp.WaitVisible(chromedp.CSS("#insecure")))
		text := webtest.Eval[string](b, `document.getElementById('insecure-text').textContent`)
		want := "This page is served over plain HTTP at http://devices.test:" + port + "; browsers refuse secure cookies here, so you cannot stay signed in. Use HTTPS or localhost."
		if text != want {
			t.Errorf("warning: got %q, want %q", text, want)
		}
		if !webtest.Eval[bool](b, `document.getElementById('signin-fields').disabled`) {
			t.Error("the sign-in form is enabled where cookies are refused")
		}
		if got := webtest.Eval[string](b, `document.getElementById('insecure-link').href`); got != "https://auth.example.com/" {
			t.Errorf("link to the public URL: got %q", got)
		}
		// Chromium notes that it ignores COOP on an untrustworthy origin,
		// which is the point of the warning.
		b.CheckNoProblems("Cross-Origin-Opener-Policy")
	})
}

// The page renders device names and User-Agent derived strings as text:
// markup in them shows up literally and runs nothing.
func TestBrowserRendersHostileNamesAsText(t *testing.T) {
	api := newFakeAPI()
	srv := startServer(t, Options{}, api)
	b := webtest.New(t)
	b.Do(chromedp.Navigate(srv.URL+"/"), webtest.SignIn("ada", "correct horse"), webtest.WaitSessions(1))

	hostileName := `<img src=x onerror="window.pwned=1">`
	hostileDevice := `</span><script>window.pwned=2</script>Chrome on "Linux"`
	api.add(map[string]any{"device": hostileDevice, "device_class": `"><svg onload=alert(1)>`, "name": hostileName,
		"ip_address": "<b>198.51.100.7</b>", "location": "<i>Lagos</i>, Nigeria",
		"last_active": time.Now().Add(-3 * time.Minute).UTC().Format(time.RFC3339Nano)})
	b.Do(chromedp.Reload(), webtest.WaitSessions(2))

	devices := webtest.Devices(b)
	var d webtest.Device
	for _, x := range devices {
		if !x.Current {
			d = x
		}
	}
	if d.Title != hostileName {
		t.Errorf("title: got %q, want %q", d.Title, hostileName)
	}
	if d.Kind != "Unknown device type · "+hostileDevice {
		t.Errorf("kind: got %q", d.Kind)
	}
	if d.Icon != "#icon-unknown" {
		t.Errorf("icon of an unknown class: got %q", d.Icon)
	}
	if d.IP != "<b>198.51.100.7</b>" || d.Location != "<i>Lagos</i>, Nigeria" {
		t.Errorf("ip, location: got %q, %q", d.IP, d.Location)
	}
	if d.LastActive != "3 minutes ago" || d.LastActiveTitle == "" {
		t.Errorf("last active: got %q (title %q), want 3 minutes ago with the exact time on hover", d.LastActive, d.LastActiveTitle)
	}
	if n := webtest.Eval[int](b, `document.querySelectorAll('#devices img, #devices script, #devices b, #devices i').length`); n != 0 {
		t.Errorf("the list has %d elements made from data", n)
	}
	if webtest.Eval[bool](b, `'pwned' in window`) {
		t.Error("a device name ran script")
	}
	b.CheckNoProblems("401")
}

// The page follows the event stream: new sign-ins appear, renames show,
// revoked devices disappear, and when its own session is revoked it goes
// back to the sign-in form.
func TestBrowserFollowsEvents(t *testing.T) {
	api := newFakeAPI()
	srv := startServer(t, Options{}, api)
	b := webtest.New(t)
	b.Do(chromedp.Navigate(srv.URL+"/"), webtest.SignIn("ada", "correct horse"), webtest.WaitSessions(1), webtest.WaitLive())

	phone := api.add(map[string]any{"device": "Safari on iPhone", "device_class": "mobile", "ip_address": "203.0.113.9"})
	api.publish("created", phone, "")
	if err := b.DoWithin(2*time.Second, webtest.WaitSessions(2)); err != nil {
		t.Fatalf("a new sign-in did not appear: %v", err)
	}
	api.mu.Lock()
	api.sessions[phone]["name"] = "Ada's phone"
	api.mu.Unlock()
	api.publish("renamed", phone, "")
	if err := b.DoWithin(2*time.Second, chromedp.WaitVisible(chromedp.CSS(`#devices li[data-id="`+phone+`"]`))); err != nil {
		t.Fatal(err)
	}
	waitTitle(t, b, phone, "Ada's phone")

	api.revoke(phone, "revoked")
	if err := b.DoWithin(2*time.Second, webtest.WaitSessions(1)); err != nil {
		t.Fatalf("a revoked device stayed in the list: %v", err)
	}

	// Rename this device through the form, by keyboard.
	current := webtest.Devices(b)[0].ID
	b.Do(chromedp.Click(chromedp.CSS(`#devices li[data-id="`+current+`"] .rename-btn`)),
		chromedp.WaitVisible(chromedp.CSS(`#devices li[data-id="`+current+`"] .rename-input`)))
	if got := webtest.Eval[string](b, `document.activeElement.className`); got != "rename-input" {
		t.Errorf("focus after Rename: got %q, want the name field", got)
	}
	b.Do(chromedp.SendKeys(chromedp.CSS(`#devices li[data-id="`+current+`"] .rename-input`), "Work laptop\r"))
	waitTitle(t, b, current, "Work laptop")

	start := time.Now()
	api.revoke(current, "revoked")
	if err := b.DoWithin(2*time.Second, webtest.WaitView("signin")); err != nil {
		t.Fatalf("the page did not return to the sign-in form within 2 s of its session's revocation: %v", err)
	}
	t.Logf("back at the sign-in form %v after the revocation", time.Since(start).Round(time.Millisecond))
	if got := webtest.Eval[string](b, `document.getElementById('status').textContent`); got != "This device was signed out from another device." {
		t.Errorf("status: got %q", got)
	}
	b.CheckNoProblems("401")
}

func TestBrowserActions(t *testing.T) {
	api := newFakeAPI()
	srv := startServer(t, Options{}, api)
	b := webtest.New(t)
	for _, ua := range []string{"Firefox on Windows", "Safari on iPad", "curl"} {
		api.add(map[string]any{"device": ua, "device_class": "desktop"})
	}
	b.Do(chromedp.Navigate(srv.URL+"/"), webtest.WaitView("signin"),
		chromedp.SetValue(chromedp.CSS("#signin-username"), "ada"),
		chromedp.SetValue(chromedp.CSS("#signin-password"), "wrong"),
		chromedp.Click(chromedp.CSS(`#signin-form button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS("#signin-error")))
	if got := webtest.Eval[string](b, `document.getElementById('signin-error').textContent`); got != "Wrong username or password." {
		t.Errorf("error of a failed sign-in: got %q", got)
	}
	if got := webtest.Eval[string](b, `document.activeElement.id`); got != "signin-password" {
		t.Errorf("focus after a failed sign-in: got %q, want the password field", got)
	}
	b.Do(webtest.SignIn("ada", "correct horse"), webtest.WaitSessions(4), webtest.WaitLive())

	devices := webtest.Devices(b)
	if !devices[0].Current {
		t.Fatalf("the current device is not first: %+v", devices)
	}
	// Sign out one other device.
	other := devices[1].ID
	b.Do(chromedp.Click(chromedp.CSS(`#devices li[data-id="`+other+`"] .revoke-btn`)), webtest.WaitSessions(3))
	if api.sessionCount() != 3 {
		t.Errorf("sessions left: got %d, want 3", api.sessionCount())
	}

	// Sign out all others: cancelling the confirmation changes nothing.
	b.Do(chromedp.Click(chromedp.CSS("#signout-others")), chromedp.WaitVisible(chromedp.CSS("#confirm-dialog")))
	if got := webtest.Eval[string](b, `document.activeElement.textContent`); got != "Cancel" {
		t.Errorf("focus in the confirmation: got %q, want Cancel", got)
	}
	b.Do(chromedp.Click(chromedp.CSS(`#confirm-dialog button[value="cancel"]`)), chromedp.WaitNotVisible(chromedp.CSS("#confirm-dialog")))
	if api.sessionCount() != 3 {
		t.Fatalf("cancel signed devices out")
	}
	b.Do(chromedp.Click(chromedp.CSS("#signout-others")), chromedp.WaitVisible(chromedp.CSS("#confirm-dialog")),
		chromedp.Click(chromedp.CSS("#confirm-ok")), webtest.WaitSessions(1))
	if api.sessionCount() != 1 {
		t.Errorf("sessions left: got %d, want 1", api.sessionCount())
	}
	if !webtest.Eval[bool](b, `document.getElementById('signout-others').disabled`) {
		t.Error("sign out all other devices is enabled with no other device")
	}

	// Sign out this device.
	b.Do(chromedp.Click(chromedp.CSS("#signout")), webtest.WaitView("signin"))
	if api.sessionCount() != 0 {
		t.Errorf("sessions left after sign-out: got %d, want 0", api.sessionCount())
	}
	// A reload finds no session.
	b.Do(chromedp.Reload(), webtest.WaitView("signin"))
	b.CheckNoProblems("401")
}

// The page refreshes its tokens before they expire.
func TestBrowserRefreshesBeforeExpiry(t *testing.T) {
	api := newFakeAPI()
	api.ttl = 1
	srv := startServer(t, Options{}, api)
	b := webtest.New(t)
	b.Do(chromedp.Navigate(srv.URL+"/"), webtest.SignIn("ada", "correct horse"), webtest.WaitSessions(1))
	deadline := time.Now().Add(5 * time.Second)
	for {
		api.mu.Lock()
		n := api.refresh
		api.mu.Unlock()
		if n >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("refreshes in 5 s with a 1 s token: got %d, want at least 2", n)
		}
		time.Sleep(100 * time.Millisecond)
	}
	b.CheckNoProblems("401")
}

func waitTitle(t *testing.T, b *webtest.Browser, id, want string) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for {
		got := webtest.Eval[string](b, `(document.querySelector('#devices li[data-id="`+id+`"] .device-name') || {}).textContent || ''`)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("title of %s: got %q, want %q", id, got, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
