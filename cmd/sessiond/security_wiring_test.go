package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"mime/quotedprintable"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/sessiond/sessiond/internal/sessiondtest"
	"github.com/sessiond/sessiond/internal/smtptest"
)

// TestWebhookAndReportLinkEndToEnd runs the binary with a webhook endpoint:
// a sign-in's session.created arrives signed under the secret the binary
// wrote to its data directory, its report_url is an absolute link to this
// server, the link's page changes nothing, and its form ends the session.
func TestWebhookAndReportLinkEndToEnd(t *testing.T) {
	type delivery struct {
		hdr  http.Header
		body []byte
	}
	got := make(chan delivery, 64)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- delivery{r.Header.Clone(), b}
	}))
	t.Cleanup(hook.Close)
	dir := filepath.Join(t.TempDir(), "data")
	ts := startServer(t, map[string]string{
		"SESSIOND_DATA_DIR":    dir,
		"SESSIOND_WEBHOOK_URL": hook.URL + "/hooks",
		"SESSIOND_PUBLIC_URL":  "http://auth.example.test",
	})
	c := sessiondtest.NewClient(t, ts.URL)
	c.Register("nia")
	g := c.Login("nia", nil)

	secret := strings.TrimSpace(string(mustReadFile(t, filepath.Join(dir, "webhook-secret"))))
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	var reportURL string
	deadline := time.After(30 * time.Second)
	for reportURL == "" {
		select {
		case d := <-got:
			if err := wh.Verify(d.body, d.hdr); err != nil {
				t.Fatalf("webhook signature does not verify: %v", err)
			}
			var ev struct {
				Type string `json:"type"`
				Data struct {
					ReportURL string `json:"report_url"`
				} `json:"data"`
			}
			if err := json.Unmarshal(d.body, &ev); err != nil {
				t.Fatal(err)
			}
			if ev.Type == "session.created" {
				reportURL = ev.Data.ReportURL
			}
		case <-deadline:
			t.Fatalf("no session.created webhook within 30 s\n%s", ts.Logs.String())
		}
	}
	if !strings.HasPrefix(reportURL, "http://auth.example.test/report?t=sdn1.") {
		t.Fatalf("report_url %q, want the public origin's /report?t=sdn1.…", reportURL)
	}
	if strings.Contains(ts.Logs.String(), "sdn1.") {
		t.Fatalf("a report token is in the log:\n%s", ts.Logs.String())
	}
	u, _ := url.Parse(reportURL)
	page := ts.URL + u.RequestURI()
	for range 2 {
		resp, err := http.Get(page)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("GET report page: got %d, want 200", resp.StatusCode)
		}
	}
	c.Do("GET", "/api/v1/me", g.AccessToken, nil).Expect(t, 200)
	form := url.Values{"t": {u.Query().Get("t")}}.Encode()
	req, _ := http.NewRequest("POST", ts.URL+"/report", strings.NewReader(form))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", "http://auth.example.test")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("POST report: got %d, want 200", resp.StatusCode)
	}
	c.Do("POST", "/api/v1/auth/refresh", "", map[string]string{"refresh_token": g.RefreshToken}).Expect(t, 401)
}

// TestWebhookURLErrorHidesItsSecrets starts the binary with a malformed
// webhook URL that carries credentials and a token in its query: the
// error names the variable but quotes neither.
func TestWebhookURLErrorHidesItsSecrets(t *testing.T) {
	for _, raw := range []string{
		"ftp://hookuser:hunter2pass@app.example.com/hooks?token=tok3nvalue",
		"https://hookuser:hunter2pass@/hooks?token=tok3nvalue",
		"https://hookuser:hunter2pass@app.example.com:badport/hooks?token=tok3nvalue",
	} {
		env := map[string]string{"SESSIOND_WEBHOOK_URL": raw, "SESSIOND_ADDR": "127.0.0.1:0", "SESSIOND_ADMIN_ADDR": "off", "SESSIOND_DATA_DIR": t.TempDir()}
		var out strings.Builder
		err := run(t.Context(), nil, func(k string) string { return env[k] }, strings.NewReader(""), &out, &out)
		if err == nil {
			t.Fatalf("%s: started", raw)
		}
		if !strings.Contains(err.Error(), "SESSIOND_WEBHOOK_URL") {
			t.Fatalf("error %q does not name the variable", err)
		}
		for _, secret := range []string{"hunter2pass", "tok3nvalue"} {
			if strings.Contains(err.Error(), secret) || strings.Contains(out.String(), secret) {
				t.Fatalf("%s: the error or the output shows %q:\n%v\n%s", raw, secret, err, out.String())
			}
		}
	}
}

// TestSMTPNeedsPublicURL shows the binary refuses to send new-sign-in
// e-mails whose "not me" link would be a bare path: SESSIOND_SMTP_URL
// without SESSIOND_PUBLIC_URL is a configuration error that names the
// missing variable, and with it the link is absolute.
func TestSMTPNeedsPublicURL(t *testing.T) {
	env := map[string]string{
		"SESSIOND_SMTP_URL": "smtp://127.0.0.1:2525", "SESSIOND_MAIL_FROM": "noreply@example.com",
		"SESSIOND_ADDR": "127.0.0.1:0", "SESSIOND_ADMIN_ADDR": "off", "SESSIOND_DATA_DIR": t.TempDir(),
	}
	var out strings.Builder
	// Started anyway, it runs until the context ends and returns nil.
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	err := run(ctx, nil, func(k string) string { return env[k] }, strings.NewReader(""), &out, &out)
	if err == nil || !strings.Contains(err.Error(), "SESSIOND_PUBLIC_URL") {
		t.Fatalf("SMTP without a public URL: got %v, want an error naming SESSIOND_PUBLIC_URL", err)
	}
	env["SESSIOND_PUBLIC_URL"] = "https://auth.example.com"
	startServer(t, env)
}

// TestNewSignInMailEndToEnd runs the binary with an SMTP server: the
// first sign-in of an account sends nothing, a sign-in from another
// device sends the user one e-mail whose link is absolute and opens the
// "not me" page of that sign-in.
func TestNewSignInMailEndToEnd(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{Security: smtptest.Plain})
	ts := startServer(t, map[string]string{
		"SESSIOND_SMTP_URL":   srv.URL(),
		"SESSIOND_MAIL_FROM":  "noreply@example.com",
		"SESSIOND_PUBLIC_URL": "http://auth.example.test",
	})
	c := sessiondtest.NewClient(t, ts.URL)
	c.Register("ola")
	c.Login("ola", nil)
	c.UA = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1"
	c.Login("ola", nil)
	msgs := srv.Wait(t, 1, 30*time.Second)
	time.Sleep(200 * time.Millisecond)
	if n := len(srv.Messages()); n != 1 {
		t.Fatalf("got %d e-mails, want 1 (none for the first sign-in)", n)
	}
	if len(msgs[0].To) != 1 || msgs[0].To[0] != "ola@example.com" {
		t.Fatalf("e-mail to %v, want ola@example.com", msgs[0].To)
	}
	// The parts are quoted-printable: undo it, as a mail reader does.
	decoded, _ := io.ReadAll(quotedprintable.NewReader(bytes.NewReader(msgs[0].Data)))
	data := string(decoded)
	i := strings.Index(data, "http://auth.example.test/report?t=sdn1.")
	if i < 0 {
		t.Fatalf("no absolute report link in the e-mail:\n%s", data)
	}
	link := data[i:]
	if j := strings.IndexAny(link, "\r\n\" <"); j >= 0 {
		link = link[:j]
	}
	u, err := url.Parse(link)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(ts.URL + u.RequestURI())
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "iPhone") {
		t.Fatalf("the e-mail's link: got %d\n%s", resp.StatusCode, body)
	}
}
