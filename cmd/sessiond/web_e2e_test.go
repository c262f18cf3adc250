package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/sessiond/sessiond/geoip/geoiptest"
	"github.com/sessiond/sessiond/internal/sessiondtest"
	"github.com/sessiond/sessiond/web/webtest"
)

// End-to-end tests of the devices page: the whole program, started by run,
// and Debian's Chromium with one fresh profile per device.

const (
	uaChromeWindows = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
	uaFirefoxMac    = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:133.0) Gecko/20100101 Firefox/133.0"
	uaChromeMac     = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
	uaSafariIPhone  = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1"
	uaFirefoxWin    = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0"
	uaChromeAndroid = "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36"
	uaCurl          = "curl/8.5.0"
)

// revokeDeadline is how soon a signed-out device's open page must return
// to the sign-in form.
const revokeDeadline = 2 * time.Second

// replay sends a request that carries only the given cookies, as a stolen
// copy of them would; extra holds more headers. It returns the status.
func replay(t *testing.T, method, url string, cookies []*network.Cookie, extra map[string]string) int {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cookies {
		req.AddCookie(&http.Cookie{Name: c.Name, Value: c.Value})
	}
	for k, v := range extra {
		req.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	res.Body.Close()
	return res.StatusCode
}

// sameOrigin are the headers the page's own fetches carry; a replay with
// them passes the CSRF check, so only the cookies decide.
func sameOrigin(base string) map[string]string {
	return map[string]string{"Origin": base, "Sec-Fetch-Site": "same-origin", "X-Sessiond-Cookies": "1"}
}

func waitTitleOf(t *testing.T, b *webtest.Browser, who, id, want string) {
	t.Helper()
	deadline := time.Now().Add(revokeDeadline)
	for {
		got := webtest.Eval[string](b, `(document.querySelector('#devices li[data-id="`+id+`"] .device-name') || {}).textContent || ''`)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: name of %s: got %q, want %q within %v", who, id, got, want, revokeDeadline)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func currentOf(t *testing.T, b *webtest.Browser) webtest.Device {
	t.Helper()
	for _, d := range webtest.Devices(b) {
		if d.Current {
			return d
		}
	}
	t.Fatal("no device is marked as this device")
	return webtest.Device{}
}

// byID clicks a button of one device's row.
func byID(id, sel string) chromedp.CSS {
	return chromedp.CSS(`#devices li[data-id="` + id + `"] ` + sel)
}

func TestWebTwoDevices(t *testing.T) {
	srv := startServer(t, nil)
	sessiondtest.NewClient(t, srv.URL).Register("ada")
	a := webtest.New(t, chromedp.UserAgent(uaChromeWindows))
	b := webtest.New(t, chromedp.UserAgent(uaFirefoxMac))

	// Sign in on both; A sees B arrive without a reload.
	a.Do(chromedp.Navigate(srv.URL+"/"), webtest.SignIn("ada", sessiondtest.Password), webtest.WaitSessions(1), webtest.WaitLive())
	b.Do(chromedp.Navigate(srv.URL+"/"), webtest.SignIn("ada", sessiondtest.Password), webtest.WaitSessions(2), webtest.WaitLive())
	if err := a.DoWithin(revokeDeadline, webtest.WaitSessions(2)); err != nil {
		t.Fatalf("A did not see B sign in: %v", err)
	}
	aSelf, bSelf := currentOf(t, a), currentOf(t, b)
	if aSelf.Title != "Chrome on Windows" || bSelf.Title != "Firefox on macOS" {
		t.Errorf("devices: got %q and %q, want Chrome on Windows and Firefox on macOS", aSelf.Title, bSelf.Title)
	}
	if aSelf.ID == bSelf.ID {
		t.Fatal("both browsers show the same session as their own")
	}
	var seen bool
	for _, d := range webtest.Devices(a) {
		if d.ID == bSelf.ID {
			seen = !d.Current && d.Title == "Firefox on macOS" && d.IP == "127.0.0.1" && d.Icon == "#icon-desktop"
		}
	}
	if !seen {
		t.Errorf("A's list does not show B as another desktop: %+v", webtest.Devices(a))
	}

	// B renames itself; the name shows on both pages.
	b.Do(chromedp.Click(byID(bSelf.ID, ".rename-btn")), chromedp.WaitVisible(byID(bSelf.ID, ".rename-input")),
		chromedp.SendKeys(byID(bSelf.ID, ".rename-input"), "Bob's laptop\r"))
	waitTitleOf(t, b, "B", bSelf.ID, "Bob's laptop")
	waitTitleOf(t, a, "A", bSelf.ID, "Bob's laptop")

	// The cookies B holds work until A signs B out.
	bCookies := webtest.Cookies(b, srv.URL)
	at, rt := bCookies["__Host-sessiond_at"], bCookies["__Host-sessiond_rt"]
	if at == nil || rt == nil {
		t.Fatalf("B holds no token cookies: %v", bCookies)
	}
	if got := replay(t, "GET", srv.URL+"/api/v1/sessions", []*network.Cookie{at}, nil); got != http.StatusOK {
		t.Fatalf("B's access cookie before the sign-out: got %d, want 200", got)
	}

	start := time.Now()
	a.Do(chromedp.Click(byID(bSelf.ID, ".revoke-btn")))
	if err := b.DoWithin(time.Until(start.Add(revokeDeadline)), webtest.WaitView("signin")); err != nil {
		t.Fatalf("B did not return to the sign-in form within %v of A signing it out: %v", revokeDeadline, err)
	}
	t.Logf("B back at the sign-in form %v after A's click", time.Since(start).Round(time.Millisecond))
	if got := webtest.Eval[string](b, `document.getElementById('status').textContent`); got != "This device was signed out from another device." {
		t.Errorf("B's status: got %q", got)
	}
	if err := a.DoWithin(revokeDeadline, webtest.WaitSessions(1)); err != nil {
		t.Errorf("A's list still shows B: %v", err)
	}
	// Replayed, not merely deleted from the browser: B's cookies are dead.
	if got := replay(t, "GET", srv.URL+"/api/v1/sessions", []*network.Cookie{at}, nil); got != http.StatusUnauthorized {
		t.Errorf("B's access cookie after the sign-out: got %d, want 401", got)
	}
	if got := replay(t, "POST", srv.URL+"/api/v1/auth/refresh", []*network.Cookie{rt}, sameOrigin(srv.URL)); got != http.StatusUnauthorized {
		t.Errorf("B's refresh cookie after the sign-out: got %d, want 401", got)
	}
	// A reload of B finds no session either.
	b.Do(chromedp.Reload(), webtest.WaitView("signin"))

	// B signs in again and a command-line client too; A's list follows.
	b.Do(webtest.SignIn("ada", sessiondtest.Password), webtest.WaitSessions(2))
	cli := sessiondtest.NewClient(t, srv.URL)
	cli.UA = uaCurl
	g := cli.Login("ada", nil)
	if err := a.DoWithin(revokeDeadline, webtest.WaitSessions(3)); err != nil {
		t.Fatalf("A's list did not grow to 3 devices: %v", err)
	}

	// "Sign out all other devices", after the confirmation, leaves only A.
	a.Do(chromedp.Click(chromedp.CSS("#signout-others")), chromedp.WaitVisible(chromedp.CSS("#confirm-dialog")))
	start = time.Now()
	a.Do(chromedp.Click(chromedp.CSS("#confirm-ok")), webtest.WaitSessions(1))
	if err := b.DoWithin(time.Until(start.Add(revokeDeadline)), webtest.WaitView("signin")); err != nil {
		t.Fatalf("B did not return to the sign-in form within %v of sign out all others: %v", revokeDeadline, err)
	}
	cli.Do("GET", "/api/v1/me", g.AccessToken, nil).Expect(t, http.StatusUnauthorized)
	if d := webtest.Devices(a); len(d) != 1 || d[0].ID != aSelf.ID || !d[0].Current {
		t.Errorf("A's list after sign out all others: %+v", d)
	}
	// The server agrees: A's cookie lists A alone.
	aCookie := webtest.Cookies(a, srv.URL)["__Host-sessiond_at"]
	if aCookie == nil {
		t.Fatal("A holds no access cookie")
	}
	viaCookie := sessiondtest.NewClient(t, srv.URL)
	viaCookie.Headers = map[string]string{"Cookie": aCookie.Name + "=" + aCookie.Value}
	var list []sessiondtest.Session
	viaCookie.Do("GET", "/api/v1/sessions", "", nil).Expect(t, http.StatusOK).Decode(t, &list)
	if len(list) != 1 || list[0].ID != aSelf.ID {
		t.Errorf("sessions left on the server: %+v, want only A", list)
	}

	// B signs in once more and signs itself out; A's list follows live.
	b.Do(webtest.SignIn("ada", sessiondtest.Password), webtest.WaitSessions(2))
	if err := a.DoWithin(revokeDeadline, webtest.WaitSessions(2)); err != nil {
		t.Fatal(err)
	}
	b.Do(chromedp.Click(chromedp.CSS("#signout")), webtest.WaitView("signin"))
	if err := a.DoWithin(revokeDeadline, webtest.WaitSessions(1)); err != nil {
		t.Errorf("A's list did not drop B's sign-out: %v", err)
	}
	// Logout cleared B's token cookies and kept its device id. The page
	// may show the sign-in form on its own stream's revoked event a moment
	// before the logout answer (which clears the cookies) arrives.
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		bCookies = webtest.Cookies(b, srv.URL)
		if bCookies["__Host-sessiond_at"] == nil && bCookies["__Host-sessiond_rt"] == nil || time.Now().After(deadline) {
			break
		}
	}
	if bCookies["__Host-sessiond_at"] != nil || bCookies["__Host-sessiond_rt"] != nil {
		t.Errorf("B still holds token cookies after signing out: %v", bCookies)
	}
	if bCookies["__Host-sessiond_device"] == nil {
		t.Error("signing out dropped B's device id")
	}

	// A signed-out page fails a few requests with 401 on its way back to the
	// sign-in form; anything else is a bug.
	a.CheckNoProblems("401")
	b.CheckNoProblems("401")
}

// TestWebCookiesAndCSRF checks the cookies of a page sign-in and that a
// state-changing cookie request from another site is refused.
func TestWebCookiesAndCSRF(t *testing.T) {
	srv := startServer(t, nil)
	sessiondtest.NewClient(t, srv.URL).Register("ada")
	b := webtest.New(t, chromedp.UserAgent(uaChromeMac))
	b.Do(chromedp.Navigate(srv.URL+"/"), webtest.SignIn("ada", sessiondtest.Password), webtest.WaitSessions(1))

	cookies := webtest.Cookies(b, srv.URL)
	now := float64(time.Now().Unix())
	for _, name := range []string{"__Host-sessiond_at", "__Host-sessiond_rt", "__Host-sessiond_device"} {
		c := cookies[name]
		if c == nil {
			t.Errorf("no %s cookie", name)
			continue
		}
		if !c.Secure || !c.HTTPOnly || c.SameSite != network.CookieSameSiteLax || c.Path != "/" || c.Session {
			t.Errorf("%s: secure %v, httponly %v, samesite %q, path %q, session %v; want Secure, HttpOnly, Lax, /, persistent",
				name, c.Secure, c.HTTPOnly, c.SameSite, c.Path, c.Session)
		}
	}
	if c := cookies["__Host-sessiond_at"]; c != nil {
		// The access cookie lives as long as the token (15 minutes).
		if left := c.Expires - now; left < 14*60 || left > 15*60+5 {
			t.Errorf("access cookie expires in %.0f s, want about 900", left)
		}
	}
	if c := cookies["__Host-sessiond_rt"]; c != nil {
		// The refresh cookie lives until the session's absolute expiry.
		if left := c.Expires - now; left < 29*24*3600 || left > 30*24*3600+5 {
			t.Errorf("refresh cookie expires in %.0f s, want about 30 days", left)
		}
	}
	if c := cookies["__Host-sessiond_device"]; c != nil {
		if left := c.Expires - now; left < 364*24*3600 {
			t.Errorf("device cookie expires in %.0f s, want a year", left)
		}
	}
	at := cookies["__Host-sessiond_at"]
	if at == nil {
		t.FailNow()
	}

	// Replayed with cross-site headers, a state change is refused with 403.
	for _, h := range []map[string]string{
		{"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"},
		{"Sec-Fetch-Site": "same-site", "Origin": "https://sub.example"},
		{"Origin": "https://evil.example"},
		{"Origin": "null"},
		{},
	} {
		for _, req := range []struct{ method, path string }{{"POST", "/api/v1/auth/logout"}, {"DELETE", "/api/v1/sessions"}} {
			if got := replay(t, req.method, srv.URL+req.path, []*network.Cookie{at}, h); got != http.StatusForbidden {
				t.Errorf("%s %s with %v: got %d, want 403", req.method, req.path, h, got)
			}
		}
	}

	// A real cross-site page in the browser cannot sign the user out: its
	// request is refused (SameSite keeps the cookies home, and the CSRF
	// check would refuse them anyway).
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.Write([]byte("<!doctype html><title>elsewhere</title>"))
	}))
	defer evil.Close()
	evilURL := strings.Replace(evil.URL, "127.0.0.1", "localhost", 1)
	b.Do(chromedp.Navigate(evilURL + "/"))
	webtest.Eval[int](b, `fetch('`+srv.URL+`/api/v1/auth/logout', {method: 'POST', credentials: 'include', mode: 'no-cors'}).then(() => 1, () => 0)`)
	if got := replay(t, "GET", srv.URL+"/api/v1/me", []*network.Cookie{at}, nil); got != http.StatusOK {
		t.Errorf("after a cross-site logout attempt, the session answers %d, want 200", got)
	}
	b.Do(chromedp.Navigate(srv.URL+"/"), webtest.WaitView("devices"), webtest.WaitSessions(1))
	b.CheckNoProblems("401")
}

// Device names and User-Agent derived strings are hostile input: the page
// shows them as text.
func TestWebHostileNamesAreText(t *testing.T) {
	srv := startServer(t, nil)
	c := sessiondtest.NewClient(t, srv.URL)
	c.Register("ada")
	hostileName := `<img src=x onerror="window.pwned=1">`
	c.UA = `<script>window.pwned=2</script> Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 "><svg onload=alert(1)>`
	g := c.Login("ada", map[string]string{"device_name": hostileName})

	b := webtest.New(t)
	b.Do(chromedp.Navigate(srv.URL+"/"), webtest.SignIn("ada", sessiondtest.Password), webtest.WaitSessions(2))
	var found bool
	for _, d := range webtest.Devices(b) {
		if d.ID == g.Session.ID {
			found = true
			if d.Title != hostileName {
				t.Errorf("hostile name: got %q, want it verbatim as text", d.Title)
			}
			if !strings.HasSuffix(d.Kind, g.Session.Device) {
				t.Errorf("device: got %q, want it to end with %q", d.Kind, g.Session.Device)
			}
		}
	}
	if !found {
		t.Fatalf("the hostile session is not in the list")
	}
	if n := webtest.Eval[int](b, `document.querySelectorAll('#devices img, #devices script, #devices svg:not(.device-icon)').length`); n != 0 {
		t.Errorf("the list holds %d elements made from data", n)
	}
	if webtest.Eval[bool](b, `'pwned' in window`) {
		t.Error("a device name ran script")
	}
	b.CheckNoProblems("401")
}

// TestWebScreenshot renders a realistic devices page and saves it: to
// docs/devices.png with SESSIOND_UPDATE_SCREENSHOT=1, else to a temporary
// directory, so the test runs either way.
func TestWebScreenshot(t *testing.T) {
	srv := startServer(t, map[string]string{
		"SESSIOND_GEOIP_DB":             geoiptest.WriteSample(t),
		"SESSIOND_TRUSTED_PROXIES":      "127.0.0.1",
		"SESSIOND_SESSION_LIMIT_POLICY": "evict",
	})
	c := sessiondtest.NewClient(t, srv.URL)
	c.Register("ada")
	for _, d := range []struct{ ua, ip, name string }{
		{uaCurl, "175.16.199.1", ""},
		{uaFirefoxWin, "2a02:c7f::1", ""},
		{uaChromeAndroid, "89.160.20.112", ""},
		{uaSafariIPhone, "102.89.1.1", "Ada's iPhone"},
	} {
		c.UA = d.ua
		c.Headers = map[string]string{"X-Forwarded-For": d.ip}
		var extra map[string]string
		if d.name != "" {
			extra = map[string]string{"device_name": d.name}
		}
		c.Login("ada", extra)
	}

	b := webtest.New(t, chromedp.UserAgent(uaChromeMac), chromedp.WindowSize(960, 1200))
	b.Do(chromedp.Navigate("about:blank"))
	webtest.SetHeaders(b, map[string]string{"X-Forwarded-For": "81.2.69.142"})
	b.Do(chromedp.Navigate(srv.URL+"/"), webtest.SignIn("ada", sessiondtest.Password), webtest.WaitSessions(5), webtest.WaitLive())
	self := currentOf(t, b)
	if self.Title != "Chrome on macOS" || self.Location != "London, United Kingdom" {
		t.Errorf("this device: got %q in %q", self.Title, self.Location)
	}
	png, err := chromedp.Run(b.Ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	if len(png) < 1000 || string(png[1:4]) != "PNG" {
		t.Fatalf("screenshot: got %d bytes, not a PNG", len(png))
	}
	path := filepath.Join(t.TempDir(), "devices.png")
	if os.Getenv("SESSIOND_UPDATE_SCREENSHOT") == "1" {
		path = filepath.Join("..", "..", "docs", "devices.png")
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)
	b.CheckNoProblems("401")
}

// The event stream ends when its access token expires; the page refreshes
// its tokens before that and reconnects, so it stays signed in and live.
func TestWebSurvivesTokenExpiry(t *testing.T) {
	srv := startServer(t, map[string]string{"SESSIOND_ACCESS_TTL": "3s"})
	c := sessiondtest.NewClient(t, srv.URL)
	c.Register("ada")
	b := webtest.New(t, chromedp.UserAgent(uaChromeWindows))
	b.Do(chromedp.Navigate(srv.URL+"/"), webtest.SignIn("ada", sessiondtest.Password), webtest.WaitSessions(1), webtest.WaitLive())
	first := webtest.Cookies(b, srv.URL)["__Host-sessiond_at"]

	time.Sleep(7 * time.Second) // two access token lifetimes
	if got := webtest.Eval[string](b, `document.body.dataset.view`); got != "devices" {
		t.Fatalf("after two token lifetimes the page shows %q, want devices", got)
	}
	if now := webtest.Cookies(b, srv.URL)["__Host-sessiond_at"]; now == nil || first == nil || now.Value == first.Value {
		t.Fatal("the page did not refresh its access token")
	}
	// Still live: a new sign-in elsewhere shows up.
	c.UA = uaCurl
	c.Login("ada", nil)
	if err := b.DoWithin(revokeDeadline, webtest.WaitSessions(2)); err != nil {
		t.Fatalf("the page stopped following events after its token expired: %v", err)
	}
	b.CheckNoProblems("401")
}

func TestWebSignUpAndPasswordChange(t *testing.T) {
	srv := startServer(t, nil)
	a := webtest.New(t, chromedp.UserAgent(uaChromeWindows))
	b := webtest.New(t, chromedp.UserAgent(uaFirefoxMac))

	// Sign up on A; the page signs in right after.
	a.Do(chromedp.Navigate(srv.URL+"/"), webtest.WaitView("signin"),
		chromedp.Click(chromedp.CSS("#to-signup")), webtest.WaitView("signup"),
		chromedp.SetValue(chromedp.CSS("#signup-username"), "grace"),
		chromedp.SetValue(chromedp.CSS("#signup-email"), "grace@example.com"),
		chromedp.SetValue(chromedp.CSS("#signup-password"), sessiondtest.Password),
		chromedp.Click(chromedp.CSS(`#signup-form button[type="submit"]`)),
		webtest.WaitView("devices"), webtest.WaitSessions(1), webtest.WaitLive())
	if got := webtest.Eval[string](a, `document.getElementById('account-name').textContent`); got != "grace" {
		t.Errorf("signed in as %q, want grace", got)
	}
	b.Do(chromedp.Navigate(srv.URL+"/"), webtest.SignIn("grace@example.com", sessiondtest.Password), webtest.WaitSessions(2))

	// A changes the password and signs the other devices out.
	const newPassword = "a much longer passphrase"
	start := time.Now()
	a.Do(chromedp.Click(chromedp.CSS("#password-box summary")),
		chromedp.SetValue(chromedp.CSS("#password-current"), sessiondtest.Password),
		chromedp.SetValue(chromedp.CSS("#password-new"), newPassword),
		chromedp.SetValue(chromedp.CSS("#password-confirm"), newPassword),
		chromedp.Click(chromedp.CSS(`#password-form button[type="submit"]`)))
	if err := b.DoWithin(time.Until(start.Add(revokeDeadline)), webtest.WaitView("signin")); err != nil {
		t.Fatalf("B did not return to the sign-in form after the password change: %v", err)
	}
	if got := webtest.Eval[string](b, `document.getElementById('status').textContent`); got != "Your password was changed, so this device was signed out." {
		t.Errorf("B's status: got %q", got)
	}
	if err := a.DoWithin(revokeDeadline, webtest.WaitSessions(1)); err != nil {
		t.Errorf("A still lists B: %v", err)
	}
	if got := webtest.Eval[string](a, `document.body.dataset.view`); got != "devices" {
		t.Errorf("A shows %q after changing the password, want devices", got)
	}
	b.Do(webtest.SignIn("grace", newPassword), webtest.WaitSessions(2))
	a.CheckNoProblems("401")
	b.CheckNoProblems("401")
}

// With sign-up closed, the page shows no sign-up form.
func TestWebSignupClosed(t *testing.T) {
	for _, open := range []string{"true", "false"} {
		srv := startServer(t, map[string]string{"SESSIOND_SIGNUP": open})
		res, err := http.Get(srv.URL + "/")
		if err != nil {
			t.Fatal(err)
		}
		var body strings.Builder
		if _, err := io.Copy(&body, res.Body); err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if got := strings.Contains(body.String(), `id="signup-form"`); got != (open == "true") {
			t.Errorf("SESSIOND_SIGNUP=%s: sign-up form shown %v", open, got)
		}
		if got := res.Header.Get("Cache-Control"); got != "no-store" {
			t.Errorf("page Cache-Control: got %q, want no-store", got)
		}
	}
}
