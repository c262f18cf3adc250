package http_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/sessiond/sessiond"
	sessiondhttp "github.com/sessiond/sessiond/http"
	"github.com/sessiond/sessiond/internal/sessiondtest"
)

// reportFixture is a user signed in on a laptop and a phone, with the
// phone's "not me" link.
type reportFixture struct {
	ts            *recordingServer
	c             *sessiondtest.Client
	userID        string
	laptop, phone sessiondtest.Grant
	token         string // the phone's report token
}

func newReportFixture(t *testing.T, basePath string) *reportFixture {
	t.Helper()
	ts := startRecording(t, func(s *sessiondtest.Server) { s.HTTP.BasePath = basePath })
	c := sessiondtest.NewClient(t, ts.URL+strings.TrimSuffix(basePath, "/"))
	u := c.Register("nora")
	c.UA = chromeWindows
	laptop := c.Login("nora", nil)
	c.UA = safariIPhone
	phone := c.Login("nora", map[string]string{"device_name": "Work phone"})
	c.UA = chromeWindows
	link := ts.reportLink(t, u.ID, phone.Session.ID)
	q, err := url.ParseQuery(link[strings.Index(link, "?")+1:])
	if err != nil {
		t.Fatal(err)
	}
	return &reportFixture{ts: ts, c: c, userID: u.ID, laptop: laptop, phone: phone, token: q.Get("t")}
}

// live returns the ids of the user's live sessions, read through the
// Manager rather than with a token that may have expired on its clock.
func (f *reportFixture) live(t *testing.T) map[string]bool {
	t.Helper()
	list, err := f.ts.Manager.List(context.Background(), f.userID, "")
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	for _, s := range list {
		ids[s.ID] = true
	}
	return ids
}

// get opens the report page with query t, as a browser following the
// link.
func (f *reportFixture) get(t *testing.T, query string) *sessiondtest.Response {
	t.Helper()
	return f.c.Do("GET", "/report"+query, "", nil)
}

// post sends the page's form; headers are the browser's (Sec-Fetch-Site,
// Origin) or an attacker's.
func (f *reportFixture) post(t *testing.T, form url.Values, headers map[string]string) *sessiondtest.Response {
	t.Helper()
	f.c.Headers = headers
	defer func() { f.c.Headers = nil }()
	return f.c.Do("POST", "/report", "", form)
}

var sameOrigin = map[string]string{"Sec-Fetch-Site": "same-origin"}

func wantPage(t *testing.T, r *sessiondtest.Response, status int, texts ...string) {
	t.Helper()
	if r.StatusCode != status {
		t.Fatalf("%s %s: got %d, want %d; body:\n%s", r.Request.Method, r.Request.URL.Path, r.StatusCode, status, r.Body)
	}
	if ct := r.Header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
		t.Errorf("Content-Type: got %q, want text/html; charset=utf-8", ct)
	}
	for h, want := range map[string]string{
		"Cache-Control":          "no-store",
		"X-Content-Type-Options": "nosniff",
		"X-Frame-Options":        "DENY",
		"Referrer-Policy":        "strict-origin",
	} {
		if got := r.Header.Get(h); got != want {
			t.Errorf("%s: got %q, want %q", h, got, want)
		}
	}
	if csp := r.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "frame-ancestors 'none'") || strings.Contains(csp, "script-src") {
		t.Errorf("Content-Security-Policy: got %q, want default-src 'none', frame-ancestors 'none' and no script", csp)
	}
	for _, s := range texts {
		if !strings.Contains(string(r.Body), s) {
			t.Errorf("the page does not say %q:\n%s", s, r.Body)
		}
	}
}

// TestReportPageShowsAndChangesNothing: the link shows the reported
// sign-in and the form, holds the token only in the form's hidden field,
// and ends nothing however often it is opened.
func TestReportPageShowsAndChangesNothing(t *testing.T) {
	f := newReportFixture(t, "/")
	for range 2 {
		r := f.get(t, "?t="+url.QueryEscape(f.token))
		wantPage(t, r, 200, "Was this you?", f.phone.Session.Device, "Work phone", "127.0.0.1",
			`<form id="report-form" class="form" method="post" action="/report">`,
			`<input type="hidden" name="t" value="`+f.token+`">`,
			`<input id="report-everywhere" type="checkbox" name="everywhere" value="1"> Sign out everywhere`,
			"This wasn't me — sign it out",
			time.Now().UTC().Format("2 January 2006"))
		if n := strings.Count(string(r.Body), f.token); n != 1 {
			t.Errorf("the token appears %d times in the page, want once (the hidden field)", n)
		}
	}
	f.c.Do("GET", "/api/v1/me", f.phone.AccessToken, nil).Expect(t, 200)
	if live := f.live(t); !live[f.phone.Session.ID] || !live[f.laptop.Session.ID] {
		t.Fatalf("after GET: live sessions %v, want both", live)
	}
	// HEAD (a link checker) changes nothing either.
	f.c.Do("HEAD", "/report?t="+url.QueryEscape(f.token), "", nil)
	f.c.Do("GET", "/api/v1/me", f.phone.AccessToken, nil).Expect(t, 200)
}

// TestReportPostEndsTheSession: the form's POST ends the reported session
// only; its access token is refused from then on, the page urges a
// password change, and the link is used up.
func TestReportPostEndsTheSession(t *testing.T) {
	f := newReportFixture(t, "/")
	r := f.post(t, url.Values{"t": {f.token}}, sameOrigin)
	wantPage(t, r, 200, "Signed out", "That sign-in was signed out.", "Change your password now", `href="/"`)
	if strings.Contains(string(r.Body), f.token) {
		t.Error("the result page holds the token")
	}
	f.c.Do("GET", "/api/v1/me", f.phone.AccessToken, nil).Expect(t, 401)
	f.c.PostRefresh(f.phone.RefreshToken).Expect(t, 401)
	f.c.Do("GET", "/api/v1/me", f.laptop.AccessToken, nil).Expect(t, 200)

	// The history says it was reported.
	var found bool
	for _, e := range activity(t, f.c, f.laptop.AccessToken) {
		if e.Type == "signed_out" && e.Session.ID == f.phone.Session.ID {
			found = e.Reason == "reported"
		}
	}
	if !found {
		t.Error("no signed_out entry with reason reported for the phone")
	}

	// Used: the link works no more, on either method.
	wantPage(t, f.get(t, "?t="+url.QueryEscape(f.token)), 400, "This link does not work", "already ended", "Nothing was changed")
	wantPage(t, f.post(t, url.Values{"t": {f.token}, "everywhere": {"1"}}, sameOrigin), 400, "already ended")
	if live := f.live(t); len(live) != 1 || !live[f.laptop.Session.ID] {
		t.Fatalf("after a used link's POST with everywhere: live %v, want the laptop still", live)
	}
}

// TestReportEverywhereEndsAll: with everywhere=1 every session of the user
// ends, and the page says how many.
func TestReportEverywhereEndsAll(t *testing.T) {
	f := newReportFixture(t, "/")
	f.c.UA = firefoxLinux
	f.c.Login("nora", nil)
	other := sessiondtest.NewClient(t, f.ts.URL)
	other.Register("olga")
	olga := other.Login("olga", nil)

	r := f.post(t, url.Values{"t": {f.token}, "everywhere": {"1"}}, sameOrigin)
	wantPage(t, r, 200, "Signed out 3 devices", "Change your password now")
	if live := f.live(t); len(live) != 0 {
		t.Fatalf("after everywhere: %d sessions live, want 0", len(live))
	}
	f.c.Do("GET", "/api/v1/me", f.laptop.AccessToken, nil).Expect(t, 401)
	other.Do("GET", "/api/v1/me", olga.AccessToken, nil).Expect(t, 200)
}

// TestReportRefusesBadLinks: a forged, cut, foreign-format, expired (on
// the Manager's clock) or ended session's link shows the error page with
// 400 on GET and POST and ends nothing.
func TestReportRefusesBadLinks(t *testing.T) {
	f := newReportFixture(t, "/")
	flip := func(s string) string {
		last := s[len(s)-2]
		c := byte('A')
		if last == 'A' {
			c = 'B'
		}
		return s[:len(s)-2] + string(c) + s[len(s)-1:]
	}
	cases := []struct{ name, token, why string }{
		{"forged", flip(f.token), "not genuine"},
		{"cut", f.token[:len(f.token)/2], "not genuine"},
		{"refresh token", f.phone.RefreshToken, "not genuine"},
		{"garbage", "<script>alert(1)</script>", "not genuine"},
	}
	both := map[string]bool{f.laptop.Session.ID: true, f.phone.Session.ID: true}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := f.get(t, "?t="+url.QueryEscape(tc.token))
			wantPage(t, r, 400, "This link does not work", tc.why)
			if strings.Contains(string(r.Body), "<script>") {
				t.Error("the page echoes markup")
			}
			wantPage(t, f.post(t, url.Values{"t": {tc.token}, "everywhere": {"1"}}, sameOrigin), 400, tc.why)
			if live := f.live(t); len(live) != 2 || !live[f.phone.Session.ID] {
				t.Fatalf("live sessions %v, want %v", live, both)
			}
		})
	}

	t.Run("ended session", func(t *testing.T) {
		g := f.c.Login("nora", nil)
		link := f.ts.reportLink(t, f.userID, g.Session.ID)
		tok, _ := url.ParseQuery(link[strings.Index(link, "?")+1:])
		f.c.Do("POST", "/api/v1/auth/logout", g.AccessToken, nil).Expect(t, 200)
		wantPage(t, f.get(t, "?t="+url.QueryEscape(tok.Get("t"))), 400, "already ended")
		wantPage(t, f.post(t, url.Values{"t": {tok.Get("t")}, "everywhere": {"1"}}, sameOrigin), 400, "already ended")
		if live := f.live(t); len(live) != 2 {
			t.Fatalf("live sessions %v, want %v", live, both)
		}
	})

	t.Run("expired", func(t *testing.T) {
		f.ts.Clock.Advance(sessiond.ReportLinkTTL + time.Minute)
		wantPage(t, f.get(t, "?t="+url.QueryEscape(f.token)), 400, "expired")
		wantPage(t, f.post(t, url.Values{"t": {f.token}, "everywhere": {"1"}}, sameOrigin), 400, "expired")
		if live := f.live(t); len(live) != 2 || !live[f.phone.Session.ID] {
			t.Fatalf("live sessions %v, want %v", live, both)
		}
	})
}

// TestReportRefusesCrossSitePosts: a POST that does not come from the
// server's own page (the CSRF rule of cookie requests) is 403 and ends
// nothing; one whose Origin is the server's own passes.
func TestReportRefusesCrossSitePosts(t *testing.T) {
	f := newReportFixture(t, "/")
	form := url.Values{"t": {f.token}, "everywhere": {"1"}}
	for name, h := range map[string]map[string]string{
		"cross-site":         {"Sec-Fetch-Site": "cross-site", "Origin": f.ts.URL},
		"same-site":          {"Sec-Fetch-Site": "same-site"},
		"foreign origin":     {"Origin": "https://evil.example"},
		"null origin":        {"Origin": "null"},
		"no origin, no site": nil,
	} {
		t.Run(name, func(t *testing.T) {
			wantPage(t, f.post(t, form, h), 403, "Request refused", "nothing was signed out")
			if live := f.live(t); len(live) != 2 {
				t.Fatalf("live sessions %v, want both", live)
			}
		})
	}
	// A browser without Sec-Fetch-Site sends its Origin.
	wantPage(t, f.post(t, url.Values{"t": {f.token}}, map[string]string{"Origin": f.ts.URL}), 200, "Signed out")
	if live := f.live(t); live[f.phone.Session.ID] || !live[f.laptop.Session.ID] {
		t.Fatalf("after a same-origin POST: live %v, want the laptop only", live)
	}
}

// TestReportRefusesIncompleteRequests: no token, an empty one, a bad
// everywhere value and a body of the wrong type are 4xx pages that end
// nothing.
func TestReportRefusesIncompleteRequests(t *testing.T) {
	f := newReportFixture(t, "/")
	wantPage(t, f.get(t, ""), 400, "incomplete")
	wantPage(t, f.get(t, "?t="), 400, "incomplete")
	wantPage(t, f.post(t, url.Values{}, sameOrigin), 400, "incomplete")
	wantPage(t, f.post(t, url.Values{"t": {f.token}, "everywhere": {"yes"}}, sameOrigin), 400, "everywhere")
	wantPage(t, f.post(t, url.Values{"t": {f.token, f.token}}, sameOrigin), 400)
	f.c.Headers = sameOrigin
	r := f.c.Do("POST", "/report", "", map[string]string{"t": f.token})
	f.c.Headers = nil
	wantPage(t, r, http.StatusUnsupportedMediaType)
	if live := f.live(t); len(live) != 2 {
		t.Fatalf("live sessions %v, want both", live)
	}
	r = f.c.Do("PUT", "/report", "", nil).Expect(t, 405)
	if got := r.Header.Get("Allow"); got != "GET, POST" {
		t.Errorf("Allow: got %q, want GET, POST", got)
	}
}

// TestReportTokenIsNotLogged: neither the request log nor any other line
// holds the token, whatever the answer.
func TestReportTokenIsNotLogged(t *testing.T) {
	f := newReportFixture(t, "/")
	f.get(t, "?t="+url.QueryEscape(f.token))
	f.post(t, url.Values{"t": {f.token}}, map[string]string{"Sec-Fetch-Site": "cross-site"})
	f.post(t, url.Values{"t": {f.token}}, sameOrigin)
	f.get(t, "?t="+url.QueryEscape(f.token))
	logs := f.ts.Logs.String()
	if !strings.Contains(logs, `"path":"/report"`) {
		t.Fatalf("no request line of /report in the log:\n%s", logs)
	}
	mac := f.token[strings.LastIndex(f.token, ".")+1:]
	if strings.Contains(logs, mac) || strings.Contains(logs, "t=") {
		t.Errorf("the log holds the token or the query:\n%s", logs)
	}
}

// TestReportUnderBasePath: under a base path the page, its form and its
// links live there too.
func TestReportUnderBasePath(t *testing.T) {
	f := newReportFixture(t, "/auth/")
	r := f.get(t, "?t="+url.QueryEscape(f.token)) // the client's paths are under /auth
	wantPage(t, r, 200, `action="/auth/report"`, `href="/auth/static/app.css"`)
	resp, err := http.Get(f.ts.URL + "/report?t=" + url.QueryEscape(f.token))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Errorf("/report outside the base path: got %d, want 404", resp.StatusCode)
	}
	r = f.post(t, url.Values{"t": {f.token}}, sameOrigin)
	wantPage(t, r, 200, `href="/auth/"`)
	if live := f.live(t); live[f.phone.Session.ID] {
		t.Fatal("the phone's session is still live")
	}
}

// TestReportStoreDown: a store that does not answer is a 503 page with
// Retry-After, never a page that says the link is bad.
func TestReportStoreDown(t *testing.T) {
	f := newReportFixture(t, "/")
	if err := f.ts.DB.Close(); err != nil {
		t.Fatal(err)
	}
	r := f.get(t, "?t="+url.QueryEscape(f.token))
	wantPage(t, r, 503, "Try again in a moment")
	if r.Header.Get("Retry-After") == "" {
		t.Error("no Retry-After on the 503 page")
	}
	wantPage(t, f.post(t, url.Values{"t": {f.token}}, sameOrigin), 503, "Try again in a moment")
}

// TestReportURL: the page's address as links carry it, on the public
// URL's origin when there is one.
func TestReportURL(t *testing.T) {
	for _, tc := range []struct{ public, base, want string }{
		{"", "", "/report"},
		{"", "/auth/", "/auth/report"},
		{"https://Auth.Example.com:443/ignored", "/", "https://auth.example.com/report"},
		{"http://localhost:8080", "/auth/", "http://localhost:8080/auth/report"},
	} {
		if got := sessiondhttp.ReportURL(tc.public, tc.base); got != tc.want {
			t.Errorf("ReportURL(%q, %q): got %q, want %q", tc.public, tc.base, got, tc.want)
		}
	}
}
