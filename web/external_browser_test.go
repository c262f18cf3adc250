package web_test

import (
	"context"
	"testing"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/sessiond/sessiond"
	sessiondhttp "github.com/sessiond/sessiond/http"
	"github.com/sessiond/sessiond/internal/sessiondtest"
	"github.com/sessiond/sessiond/web"
	"github.com/sessiond/sessiond/web/webtest"
)

// With the app's own users, the page against the real server in Chromium:
// a visitor without a session gets the link to the app's sign-in; one who
// arrives with the cookies of a session the app started sees that device
// and can sign devices out.
func TestBrowserAppUsers(t *testing.T) {
	const loginURL = "https://app.example.com/login"
	srv := sessiondtest.StartServer(t, sessiondtest.Options{ExternalUsers: true}, func(s *sessiondtest.Server) {
		s.HTTP.Page = web.Handler(web.Options{External: true, LoginURL: loginURL})
	})
	ctx := context.Background()
	start := func(ua string) *sessiond.Grant {
		t.Helper()
		g, err := srv.Manager.StartSession(ctx, sessiond.StartRequest{UserID: "auth0|abc", UserAgent: ua, ClientIP: "203.0.113.7"})
		if err != nil {
			t.Fatal(err)
		}
		return g
	}
	here := start("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36")
	phone := start("Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1")

	b := webtest.New(t)

	// No cookies: the sign-in link, and no form of sessiond's own.
	b.Do(chromedp.Navigate(srv.URL+"/"), webtest.WaitView("signin"), chromedp.WaitVisible(chromedp.CSS("#signin-link")))
	if got := webtest.Eval[string](b, `document.getElementById('signin-link').href`); got != loginURL {
		t.Errorf("sign-in link: got %q, want %q", got, loginURL)
	}
	if got := webtest.Eval[string](b, `document.getElementById('signin-link').textContent`); got != "Sign in" {
		t.Errorf("sign-in link text: got %q, want Sign in", got)
	}
	if webtest.Eval[bool](b, `!!document.querySelector('form#signin-form, form#signup-form, input[type="password"]')`) {
		t.Error("the page offers a sign-in, sign-up or password form")
	}

	// The cookies the app's handoff would set (docs/design.md, "Cookies
	// and CSRF"): the page finds the session behind them.
	for name, value := range map[string]string{sessiondhttp.AccessCookie: here.AccessToken, sessiondhttp.RefreshCookie: here.RefreshToken} {
		yes := true
		if _, err := chromedp.Call(b.Ctx, network.SetCookie, network.SetCookieParams{
			Name: name, Value: value, URL: srv.URL + "/", Path: "/",
			Secure: &yes, HTTPOnly: &yes, SameSite: network.CookieSameSiteLax,
		}); err != nil {
			t.Fatalf("set cookie %s: %v", name, err)
		}
	}
	b.Do(chromedp.Navigate(srv.URL+"/"), webtest.WaitView("devices"), webtest.WaitSessions(2), webtest.WaitLive())
	devices := webtest.Devices(b)
	if !devices[0].Current || devices[0].ID != here.Session.ID || devices[0].Title != "Chrome on Linux" {
		t.Errorf("this device: got %+v, want the started session %s first as Chrome on Linux", devices[0], here.Session.ID)
	}
	if devices[1].ID != phone.Session.ID || devices[1].Current || devices[1].Icon != "#icon-mobile" {
		t.Errorf("other device: got %+v, want the phone %s", devices[1], phone.Session.ID)
	}
	if webtest.Eval[bool](b, `!!document.getElementById('password-form')`) {
		t.Error("the devices view offers a password change")
	}

	// Sign the phone out from here: it is gone from the store.
	b.Do(chromedp.Click(chromedp.CSS(`#devices li[data-id="`+phone.Session.ID+`"] .revoke-btn`)), webtest.WaitSessions(1))
	if _, _, err := srv.Manager.Authenticate(ctx, phone.AccessToken); err == nil {
		t.Error("the phone's session still authenticates after it was signed out on the page")
	}

	// Sign out here: back to the link.
	b.Do(chromedp.Click(chromedp.CSS("#signout")), webtest.WaitView("signin"), chromedp.WaitVisible(chromedp.CSS("#signin-link")))
	list, err := srv.Manager.List(ctx, "auth0|abc", "")
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 0 {
		t.Errorf("sessions left after signing out: %d, want 0", len(list))
	}
	b.CheckNoProblems("401")
}

// Without a login URL, the page says where sign-in happens.
func TestBrowserAppUsersNoLoginURL(t *testing.T) {
	srv := sessiondtest.StartServer(t, sessiondtest.Options{ExternalUsers: true}, func(s *sessiondtest.Server) {
		s.HTTP.Page = web.Handler(web.Options{External: true})
	})
	b := webtest.New(t)
	b.Do(chromedp.Navigate(srv.URL+"/"), webtest.WaitView("signin"), chromedp.WaitVisible(chromedp.CSS("#signin-in-app")))
	if got := webtest.Eval[string](b, `document.getElementById('signin-in-app').textContent`); got != "Sign-in happens in the app: sign in there, then come back to this page." {
		t.Errorf("sign-in sentence: got %q", got)
	}
	if webtest.Eval[bool](b, `!!document.querySelector('#signin-link, #signin-form, #signup-form, input[type="password"]')`) {
		t.Error("the page offers a link or a form")
	}
	b.CheckNoProblems("401")
}
