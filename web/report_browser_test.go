package web_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/sessiond/sessiond"
	"github.com/sessiond/sessiond/internal/sessiondtest"
	"github.com/sessiond/sessiond/sqlite"
	"github.com/sessiond/sessiond/web/webtest"
)

// parked is the webhook Sender of a Manager whose deliveries never run:
// its events wait in the outbox, where the test reads the report link.
type parked struct{}

func (parked) Send(context.Context, string, sessiond.OutboxMessage) error {
	return errors.New("deliveries do not run in this test")
}

// The "not me" page in Chromium, opened from the link of a sign-in's
// webhook: it shows the sign-in, its form's POST passes the server's CSRF
// check as a real browser sends it and signs everything out with "Sign out
// everywhere", and the used link then shows why it no longer works.
func TestBrowserReportPage(t *testing.T) {
	db := sessiondtest.OpenSQLite(t)
	act := sqlite.NewActivityStore(db)
	srv := sessiondtest.StartServer(t, sessiondtest.Options{DB: db, Activity: true, Webhooks: parked{}, CheapHashing: true}, nil)
	c := sessiondtest.NewClient(t, srv.URL)
	u := c.Register("zoe")
	c.UA = windowsChrome
	c.Login("zoe", nil)
	c.UA = iPhoneSafari
	phone := c.Login("zoe", map[string]string{"device_name": "Work phone"})
	msgs, err := act.Pending(context.Background(), sessiond.QueueWebhook, u.ID, 100)
	if err != nil {
		t.Fatal(err)
	}
	var link string
	for _, m := range msgs {
		var h struct {
			Data struct {
				Session struct {
					ID string `json:"id"`
				} `json:"session"`
				ReportURL string `json:"report_url"`
			} `json:"data"`
		}
		if err := json.Unmarshal(m.Body, &h); err != nil {
			t.Fatal(err)
		}
		if h.Data.Session.ID == phone.Session.ID && h.Data.ReportURL != "" {
			link = h.Data.ReportURL
		}
	}
	if !strings.HasPrefix(link, "/report?t=") {
		t.Fatalf("report link of the phone: got %q", link)
	}

	b := webtest.New(t)
	b.Do(chromedp.Navigate(srv.URL+link), chromedp.WaitVisible(chromedp.CSS("#report-form")))
	for sel, want := range map[string]string{
		"#report-device":      "Safari on iPhone",
		"#report-name":        "Work phone",
		"#report-ip":          "127.0.0.1",
		"#report-form button": "This wasn't me — sign it out",
	} {
		if got := webtest.Eval[string](b, `document.querySelector('`+sel+`').textContent`); got != want {
			t.Errorf("%s: got %q, want %q", sel, got, want)
		}
	}
	c.Do("GET", "/api/v1/me", phone.AccessToken, nil).Expect(t, 200)

	b.Do(chromedp.Click(chromedp.CSS("#report-everywhere")), chromedp.Click(chromedp.CSS("#report-form button")),
		chromedp.WaitVisible(chromedp.CSS("#report-result")))
	if got := webtest.Eval[string](b, `document.getElementById('report-result').textContent`); !strings.HasPrefix(got, "Signed out 2 devices") {
		t.Errorf("result: got %q, want Signed out 2 devices", got)
	}
	if got := webtest.Eval[string](b, `document.getElementById('report-password').getAttribute('href')`); got != "/" {
		t.Errorf("password link: got %q, want the devices page /", got)
	}
	list, err := srv.Manager.List(context.Background(), u.ID, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 0 {
		t.Errorf("sessions left after signing out everywhere: %d", len(list))
	}

	b.Do(chromedp.Navigate(srv.URL+link), chromedp.WaitVisible(chromedp.CSS("#report-error")))
	if got := webtest.Eval[string](b, `document.getElementById('report-error').textContent`); !strings.Contains(got, "already ended") {
		t.Errorf("used link: got %q, want it to say the sign-in has already ended", got)
	}
	// The used link's page is a 400, which the browser logs.
	b.CheckNoProblems("400 (Bad Request)")
}
