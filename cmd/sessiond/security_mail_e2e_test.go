package main

import (
	"fmt"
	"html"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sessiond/sessiond/internal/freeport"
	"github.com/sessiond/sessiond/internal/sessiondtest"
	"github.com/sessiond/sessiond/internal/smtptest"
	"github.com/sessiond/sessiond/internal/webhooktest"
)

// browserGet fetches u as a browser (or a mail scanner) following a link
// does, and returns the status and the page.
func browserGet(t *testing.T, u string) (int, string) {
	t.Helper()
	req, err := http.NewRequest("GET", u, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("User-Agent", uaFirefoxMac)
	req.Header.Set("Accept", "text/html")
	return send(t, req)
}

// browserPost submits the report page's form as a browser does, with
// headers (Origin, Sec-Fetch-Site) as given.
func browserPost(t *testing.T, action string, form url.Values, headers map[string]string) (int, string) {
	t.Helper()
	req, err := http.NewRequest("POST", action, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("User-Agent", uaFirefoxMac)
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	return send(t, req)
}

func send(t *testing.T, req *http.Request) (int, string) {
	t.Helper()
	c := &http.Client{
		Timeout:       30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
		t.Fatalf("%s %s: got Content-Type %q, want text/html", req.Method, req.URL.Path, ct)
	}
	return resp.StatusCode, string(body)
}

var (
	hiddenToken = regexp.MustCompile(`<input type="hidden" name="t" value="([^"]+)">`)
	formAction  = regexp.MustCompile(`<form id="report-form"[^>]* action="([^"]+)"`)
)

// testNewSignInMail: with SESSIOND_SMTP_URL at a server that offers
// STARTTLS (its CA trusted through SSL_CERT_FILE, which the binary's system
// roots read), the first sign-in of an account sends nothing, a sign-in
// from a new device sends one e-mail, text and HTML, with the device and
// the "not me" link; the link's GET changes nothing, a cross-site POST is
// refused, the page's own POST ends that session, and the link then works
// no more.
func testNewSignInMail(t *testing.T, bin string) {
	srv := smtptest.Start(t, smtptest.Options{Security: smtptest.StartTLS})
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, srv.CACertPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	r := webhooktest.Start(t)
	port, err := freeport.Port()
	if err != nil {
		t.Fatal(err)
	}
	public := fmt.Sprintf("http://127.0.0.1:%d", port)
	p := startProc(t, bin, withReceiver(t, map[string]string{
		"SESSIOND_ADDR":       fmt.Sprintf("127.0.0.1:%d", port),
		"SESSIOND_PUBLIC_URL": public,
		"SESSIOND_BASE_PATH":  "/auth/",
		"SESSIOND_SMTP_URL":   srv.URL(),
		"SESSIOND_MAIL_FROM":  "Sessiond <noreply@example.com>",
		"SSL_CERT_FILE":       ca,
	}, r))
	api := p.URL + "/auth"
	laptopC, phoneC := device(t, api, uaFirefoxMac), device(t, api, uaSafariIPhone)
	user := laptopC.Register("nina")
	laptop := laptopC.Login("nina", map[string]string{"device_id": "nina-mac"})
	phone := phoneC.Login("nina", map[string]string{"device_id": "nina-iphone"})
	// The laptop again (its new session replaces the old one, as the same
	// device_id does): known, no e-mail.
	laptop2 := laptopC.Login("nina", map[string]string{"device_id": "nina-mac"})
	signIns := []string{created(laptop), created(phone), ended(laptop, "replaced"), created(laptop2)}
	srv.Wait(t, 1, deliveryWait)
	// The webhooks of all four sign-ins are out, so the e-mails,
	// recorded with them and woken with them, have had their chance
	// too; a second more for a slow one.
	waitHooks(t, r, map[string][]string{user.ID: signIns}, deliveryWait)
	time.Sleep(time.Second)
	msgs := srv.Messages()
	if len(msgs) != 1 {
		t.Fatalf("got %d e-mails, want 1 (the first sign-in and known devices send none)", len(msgs))
	}
	msg := msgs[0]
	if msg.TLS == nil {
		t.Error("the e-mail came in the clear, want STARTTLS (the server offers it)")
	}
	if msg.From != "noreply@example.com" || len(msg.To) != 1 || msg.To[0] != "nina@example.com" {
		t.Errorf("envelope: got from %q to %q, want noreply@example.com to nina@example.com", msg.From, msg.To)
	}
	secrets := map[string]string{"the password": sessiondtest.Password}
	grantSecrets(secrets, "nina", laptop, phone, laptop2)
	noSecrets(t, "the e-mail", string(msg.Data), secrets)
	m := smtptest.ParseMail(t, msg.Data)
	if got := m.Header.Get("Subject"); got != "New sign-in to your account" {
		t.Errorf("Subject: got %q", got)
	}
	link := regexp.MustCompile(regexp.QuoteMeta(public) + `/auth/report\?t=sdn1\.[A-Za-z0-9._~-]+`).FindString(m.Text)
	if link == "" {
		t.Fatalf("the text part has no report link under %s:\n%s", public, m.Text)
	}
	if !strings.Contains(m.HTML, link) && !strings.Contains(m.HTML, html.EscapeString(link)) {
		t.Errorf("the HTML part lacks the link %s:\n%s", link, m.HTML)
	}
	for part, body := range map[string]string{"text": m.Text, "HTML": m.HTML} {
		if !strings.Contains(body, phone.Session.Device) || strings.Contains(body, laptop.Session.Device) {
			t.Errorf("the %s part: want the new device %q and not the laptop %q:\n%s", part, phone.Session.Device, laptop.Session.Device, body)
		}
	}

	me := func(g sessiondtest.Grant) int {
		return phoneC.Do("GET", "/api/v1/me", g.AccessToken, nil).StatusCode
	}
	// GET, twice (a mail scanner, then the user): a page, nothing ends.
	var page string
	for range 2 {
		var status int
		status, page = browserGet(t, link)
		if status != http.StatusOK || !strings.Contains(page, "Was this you?") || !strings.Contains(page, html.EscapeString(phone.Session.Device)) {
			t.Fatalf("GET of the report link: got %d\n%s", status, page)
		}
		if got := me(phone); got != http.StatusOK {
			t.Fatalf("after GET of the report link the phone's token gets %d, want 200 (GET changes nothing)", got)
		}
	}
	sub := hiddenToken.FindStringSubmatch(page)
	if sub == nil {
		t.Fatalf("the report page has no form token:\n%s", page)
	}
	form := url.Values{"t": {html.UnescapeString(sub[1])}}
	// The form posts where the page says, as a browser resolves it.
	act := formAction.FindStringSubmatch(page)
	if act == nil {
		t.Fatalf("the report page has no form action:\n%s", page)
	}
	base, err := url.Parse(link)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := url.Parse(html.UnescapeString(act[1]))
	if err != nil {
		t.Fatal(err)
	}
	action := base.ResolveReference(ref).String()
	if action != public+"/auth/report" {
		t.Errorf("the form posts to %s, want %s/auth/report", action, public)
	}
	// Another site's form: refused, nothing ends.
	if status, body := browserPost(t, action, form, map[string]string{"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}); status != http.StatusForbidden {
		t.Fatalf("cross-site POST: got %d, want 403\n%s", status, body)
	}
	if status, body := browserPost(t, action, form, nil); status != http.StatusForbidden {
		t.Fatalf("POST without Origin or Sec-Fetch-Site: got %d, want 403\n%s", status, body)
	}
	if got := me(phone); got != http.StatusOK {
		t.Fatalf("after refused POSTs the phone's token gets %d, want 200", got)
	}
	// The page's own form, as a browser sends it.
	status, body := browserPost(t, action, form, map[string]string{"Origin": public, "Sec-Fetch-Site": "same-origin"})
	if status != http.StatusOK || !strings.Contains(body, "That sign-in was signed out.") {
		t.Fatalf("the page's POST: got %d\n%s", status, body)
	}
	if got := me(phone); got != http.StatusUnauthorized {
		t.Errorf("the reported session's token gets %d, want 401", got)
	}
	if got := me(laptop2); got != http.StatusOK {
		t.Errorf("the laptop's token gets %d after the report, want 200 (only the reported session ends)", got)
	}
	// Used: the link shows an error and changes nothing, on either method.
	if status, body := browserGet(t, link); status != http.StatusBadRequest || !strings.Contains(body, "This link does not work") {
		t.Errorf("the used link's GET: got %d\n%s", status, body)
	}
	if status, body := browserPost(t, action, url.Values{"t": form["t"], "everywhere": {"1"}}, map[string]string{"Origin": public}); status != http.StatusBadRequest {
		t.Errorf("the used link's POST with everywhere=1: got %d, want 400\n%s", status, body)
	}
	if got := me(laptop2); got != http.StatusOK {
		t.Errorf("the laptop's token gets %d after the used link was posted again, want 200", got)
	}
	h := waitHooks(t, r, map[string][]string{user.ID: append(signIns, ended(phone, "reported"))}, deliveryWait)
	if by := string(h.events[user.ID][4].Data.By); by != `"system"` {
		t.Errorf("the reported session's end: got by %s, want \"system\"", by)
	}
	if rep := h.events[user.ID][1].Data.ReportURL; !strings.HasPrefix(link, public) || rep != link {
		t.Errorf("the webhook's report_url %q differs from the e-mail's link %q", rep, link)
	}
	wantHistory := []string{
		"signed_out " + phone.Session.ID + " reported", "signed_in " + laptop2.Session.ID,
		"signed_out " + laptop.Session.ID + " replaced", "signed_in " + phone.Session.ID, "signed_in " + laptop.Session.ID,
	}
	if got := history(t, api, laptop2.AccessToken); !slices.Equal(got, wantHistory) {
		t.Errorf("history: got %q, want %q", got, wantHistory)
	}
	noSecrets(t, "sessiond's log", p.Logs.String(), secrets)
	n, _ := sample(parseMetrics(t, p.AdminURL), "sessiond_outbox_delivered_total", map[string]string{"queue": "mail"})
	if n != 1 {
		t.Errorf("sessiond_outbox_delivered_total{queue=\"mail\"}: got %v, want 1", n)
	}
}

// testUnreachableSMTP: a mail server that refuses connections, or one that
// accepts and never answers, never fails or slows a sign-in, new device
// or not.
func testUnreachableSMTP(t *testing.T, bin string) {
	closed, err := freeport.Port()
	if err != nil {
		t.Fatal(err)
	}
	hanging := smtptest.Start(t, smtptest.Options{Hang: true})
	for name, u := range map[string]string{
		"refused": fmt.Sprintf("smtp://127.0.0.1:%d", closed),
		"hanging": hanging.URL(),
	} {
		p := startProc(t, bin, map[string]string{
			"SESSIOND_SMTP_URL": u, "SESSIOND_MAIL_FROM": "noreply@example.com",
			// Required with SMTP: the e-mails' links are absolute. The
			// sign-ins below send Bearer tokens, which no origin check
			// concerns.
			"SESSIOND_PUBLIC_URL": "https://auth.example.com",
		})
		device(t, p.URL, uaFirefoxWin).Register("olga")
		for i, ua := range []string{uaFirefoxWin, uaSafariIPhone, uaChromeAndroid, uaChromeMac} {
			start := time.Now()
			device(t, p.URL, ua).Login("olga", nil)
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("%s mail server: sign-in %d took %v, want under 2 s", name, i+1, d)
			}
		}
		// The e-mails were tried and wait for their retry.
		deadline := time.Now().Add(30 * time.Second)
		for {
			n, _ := sample(parseMetrics(t, p.AdminURL), "sessiond_outbox_retries_total", map[string]string{"queue": "mail"})
			if n >= 1 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s mail server: no failed delivery counted after 30 s", name)
			}
			time.Sleep(200 * time.Millisecond)
		}
		p.stop()
	}
}
