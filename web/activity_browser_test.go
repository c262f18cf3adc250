package web_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/sessiond/sessiond"
	sessiondhttp "github.com/sessiond/sessiond/http"
	"github.com/sessiond/sessiond/internal/sessiondtest"
	"github.com/sessiond/sessiond/web/webtest"
)

const (
	windowsChrome = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
	iPhoneSafari  = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1"
)

// activityTexts reads the "Recent security activity" list as rendered.
func activityTexts(b *webtest.Browser) []string {
	return webtest.Eval[[]string](b, `Array.from(document.querySelectorAll('#activity .activity-text')).map((e) => e.textContent)`)
}

// waitActivity waits until the list holds a line containing each of
// phrases, and fails the test with the list it saw otherwise.
func waitActivity(t *testing.T, b *webtest.Browser, phrases ...string) []string {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		lines := activityTexts(b)
		missing := ""
		for _, p := range phrases {
			found := false
			for _, l := range lines {
				if strings.Contains(l, p) {
					found = true
					break
				}
			}
			if !found {
				missing = p
				break
			}
		}
		if missing == "" {
			return lines
		}
		if time.Now().After(deadline) {
			t.Fatalf("recent security activity has no line with %q; it shows:\n%s", missing, strings.Join(lines, "\n"))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// newBadge reports whether the row of session id shows "New sign-in".
func newBadge(b *webtest.Browser, id string) bool {
	return webtest.Eval[bool](b, `(() => {
		const li = document.querySelector('#devices li[data-id="`+id+`"]');
		const badge = li && li.querySelector('.new-sign-in');
		return !!badge && !badge.hidden && badge.textContent === 'New sign-in';
	})()`)
}

// The devices page against the real server with a real SQLite activity
// store, in Chromium: a second device's sign-in is marked "New sign-in",
// and "Recent security activity" tells, in words, of throttled sign-ins,
// a new device, a device signed out by another, an administrator's
// sign-out, a reused refresh token and a password change that ended a
// session, updating as the event stream reports changes.
func TestBrowserSecurityActivity(t *testing.T) {
	db := sessiondtest.OpenSQLite(t)
	srv := sessiondtest.StartServer(t, sessiondtest.Options{DB: db, Activity: true, CheapHashing: true}, func(s *sessiondtest.Server) {
		// The API client below signs in "from" another address, so that
		// its wrong passwords do not throttle the browsers' sign-ins.
		p, err := sessiondhttp.ParseTrustedProxies("127.0.0.1/32")
		if err != nil {
			t.Fatal(err)
		}
		s.HTTP.TrustedProxies = p
		s.Manager.Throttles.LoginAccountIP = sessiond.Rate{N: 3, Window: 15 * time.Minute}
	})
	ctx := context.Background()
	c := sessiondtest.NewClient(t, srv.URL)
	u := c.Register("pia")

	// Wrong passwords from elsewhere until the account is throttled there.
	c.Headers = map[string]string{"X-Forwarded-For": "203.0.113.9"}
	for i := 0; ; i++ {
		if r := c.Attempt("pia", "not the password"); r.StatusCode == http.StatusTooManyRequests {
			break
		}
		if i == 10 {
			t.Fatal("no 429 after 10 wrong passwords")
		}
	}
	c.Headers = nil

	laptop := webtest.New(t, chromedp.UserAgent(windowsChrome))
	laptop.Do(chromedp.Navigate(srv.URL+"/"), webtest.SignIn("pia", sessiondtest.Password), webtest.WaitSessions(1), webtest.WaitLive())
	waitActivity(t, laptop, "sign-in attempts were throttled", "Signed in on Chrome on Windows")
	if got := webtest.Eval[string](laptop, `document.getElementById('activity-title').textContent`); got != "Recent security activity" {
		t.Errorf("section title: got %q, want Recent security activity", got)
	}
	laptopID := webtest.Devices(laptop)[0].ID

	// A second browser is a new device: both pages mark its row.
	phone := webtest.New(t, chromedp.UserAgent(iPhoneSafari))
	phone.Do(chromedp.Navigate(srv.URL+"/"), webtest.SignIn("pia", sessiondtest.Password), webtest.WaitSessions(2))
	var phoneID string
	for _, d := range webtest.Devices(phone) {
		if d.Current {
			phoneID = d.ID
		}
	}
	laptop.Do(webtest.WaitSessions(2))
	waitActivity(t, laptop, "Signed in on Safari on iPhone — new device")
	if !newBadge(laptop, phoneID) {
		t.Error(`the laptop's page does not mark the phone's row "New sign-in"`)
	}
	if newBadge(laptop, laptopID) {
		t.Error(`the laptop's own row, the first sign-in, is marked "New sign-in"`)
	}
	waitActivity(t, phone, "Signed in on Safari on iPhone — new device")
	if !newBadge(phone, phoneID) {
		t.Error(`the phone's page does not mark its own row "New sign-in"`)
	}

	// The laptop signs the phone out.
	laptop.Do(chromedp.Click(chromedp.CSS(`#devices li[data-id="`+phoneID+`"] .revoke-btn`)), webtest.WaitSessions(1))
	phone.Do(webtest.WaitView("signin"))
	waitActivity(t, laptop, "Signed out from Safari on iPhone by Chrome on Windows")

	// An administrator ends one session; a replayed refresh token ends
	// another; each arrives through the event stream.
	c.UA = "curl/8.5.0"
	cli := c.Login("pia", nil)
	if err := srv.Manager.Revoke(ctx, u.ID, cli.Session.ID, sessiond.ReasonAdmin); err != nil {
		t.Fatal(err)
	}
	waitActivity(t, laptop, "Session on curl signed out by an administrator")
	c.UA = "Wget/1.21.4"
	g1 := c.Login("pia", nil)
	var g2 sessiondtest.Grant
	c.PostRefresh(g1.RefreshToken).Expect(t, 200).Decode(t, &g2)
	c.PostRefresh(g2.RefreshToken).Expect(t, 200)
	c.PostRefresh(g1.RefreshToken).Expect(t, 401)
	waitActivity(t, laptop, "a reused refresh token was detected")

	// A password change on the page ends the other device still signed in.
	c.UA = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"
	c.Login("pia", nil)
	laptop.Do(webtest.WaitSessions(2),
		chromedp.Click(chromedp.CSS("#password-box summary")),
		chromedp.SetValue(chromedp.CSS("#password-current"), sessiondtest.Password),
		chromedp.SetValue(chromedp.CSS("#password-new"), "a brand new passphrase"),
		chromedp.SetValue(chromedp.CSS("#password-confirm"), "a brand new passphrase"),
		chromedp.Click(chromedp.CSS(`#password-form button[type="submit"]`)),
		webtest.WaitSessions(1))
	lines := waitActivity(t, laptop,
		"Session on Firefox on Linux ended after a password change",
		"Password changed on Chrome on Windows",
		"sign-in attempts were throttled",
		"signed out by an administrator",
		"a reused refresh token was detected",
		"Signed out from Safari on iPhone by Chrome on Windows",
		"Signed in on Safari on iPhone — new device")
	if !strings.Contains(lines[0], "ended after a password change") && !strings.Contains(lines[0], "Password changed") {
		t.Errorf("newest line: got %q, want the password change first", lines[0])
	}
	if n := webtest.Eval[int](laptop, `document.querySelectorAll('#activity .activity-time[datetime]').length`); n != len(lines) {
		t.Errorf("lines with a time: %d of %d", n, len(lines))
	}
	// Both pages asked for a refresh before signing in: a 401 each.
	laptop.CheckNoProblems("401")
	phone.CheckNoProblems("401")
}
