package mail_test

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"mime"
	netmail "net/mail"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	gomailsmtp "github.com/wneessen/go-mail/smtp"

	"github.com/sessiond/sessiond"
	"github.com/sessiond/sessiond/internal/freeport"
	"github.com/sessiond/sessiond/internal/smtptest"
	"github.com/sessiond/sessiond/mail"
)

const (
	from      = "Sessiond <noreply@example.com>"
	password  = "s3cr3t-pw:/?#@"
	reportURL = "https://accounts.example.com/auth/report?t=v1.AbC-dEf_123~xyz&lang=en"
)

// signIn is the body of a new-sign-in message as the Manager records it.
func signIn() sessiond.NewSignInMail {
	return sessiond.NewSignInMail{
		To:        "alice@example.com",
		Username:  "alice",
		Device:    "Chrome on Windows",
		Name:      "Work laptop",
		Location:  "Berlin, Germany",
		IPAddress: "203.0.113.7",
		At:        time.Date(2026, 12, 7, 21, 52, 0, 0, time.FixedZone("CET", 3600)),
		ReportURL: reportURL,
	}
}

func outboxMessage(t *testing.T, body sessiond.NewSignInMail) sessiond.OutboxMessage {
	t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	return sessiond.OutboxMessage{ID: "msg-1", Queue: sessiond.QueueMail, Body: b, CreatedAt: time.Now()}
}

// newMailer returns a Mailer for s that trusts its test CA.
func newMailer(t *testing.T, s *smtptest.Server) *mail.Mailer {
	t.Helper()
	m, err := mail.New(s.URL(), from)
	if err != nil {
		t.Fatal(err)
	}
	m.TLSConfig = s.TLSConfig()
	return m
}

// one returns the only message s received.
func one(t *testing.T, s *smtptest.Server) smtptest.Message {
	t.Helper()
	msgs := s.Messages()
	if len(msgs) != 1 {
		t.Fatalf("got %d messages, want 1", len(msgs))
	}
	return msgs[0]
}

func TestSendDeliversTheNewSignInMail(t *testing.T) {
	s := smtptest.Start(t, smtptest.Options{})
	m := newMailer(t, s)
	if err := m.Send(context.Background(), "u1", outboxMessage(t, signIn())); err != nil {
		t.Fatal(err)
	}
	got := one(t, s)
	if got.From != "noreply@example.com" || len(got.To) != 1 || got.To[0] != "alice@example.com" {
		t.Errorf("got envelope %q -> %q, want noreply@example.com -> [alice@example.com]", got.From, got.To)
	}
	if got.TLS != nil {
		t.Error("got TLS from a server that offers none")
	}
	r := smtptest.ParseMail(t, got.Data)

	if a, err := netmail.ParseAddress(r.Header.Get("From")); err != nil || a.Name != "Sessiond" || a.Address != "noreply@example.com" {
		t.Errorf("got From %q (%v), want %q", r.Header.Get("From"), err, from)
	}
	if a, err := netmail.ParseAddress(r.Header.Get("To")); err != nil || a.Address != "alice@example.com" {
		t.Errorf("got To %q (%v), want alice@example.com", r.Header.Get("To"), err)
	}
	subject, err := new(mime.WordDecoder).DecodeHeader(r.Header.Get("Subject"))
	if err != nil || subject != "New sign-in to your account" {
		t.Errorf("got Subject %q (%v), want %q", subject, err, "New sign-in to your account")
	}
	if _, err := r.Header.Date(); err != nil {
		t.Errorf("got Date %q: %v", r.Header.Get("Date"), err)
	}
	if id := r.Header.Get("Message-Id"); !strings.HasPrefix(id, "<") || !strings.Contains(id, "@") {
		t.Errorf("got Message-ID %q, want <…@…>", id)
	}

	for _, part := range []struct{ name, body string }{{"text", r.Text}, {"HTML", r.HTML}} {
		for _, want := range []string{
			"Hi alice,",
			"Work laptop (Chrome on Windows)",
			"Berlin, Germany",
			"Monday, 7 December 2026 at 20:52 UTC",
			"203.0.113.7",
			"If this was not you",
		} {
			if !strings.Contains(part.body, want) {
				t.Errorf("%s part: %q missing from\n%s", part.name, want, part.body)
			}
		}
	}
	// The link, exactly: a line of its own in the text, the target of the
	// button in the HTML (HTML-escaped there, as an attribute must be).
	if !strings.Contains(r.Text, "\n"+reportURL+"\n") {
		t.Errorf("text part: the report link %q is not a line of its own in\n%s", reportURL, r.Text)
	}
	href := `href="` + html.EscapeString(reportURL) + `"`
	if n := strings.Count(r.HTML, href); n < 1 {
		t.Errorf("HTML part: no link %s in\n%s", href, r.HTML)
	}
	if !strings.Contains(r.HTML, ">This was not me</a>") {
		t.Errorf("HTML part: no \"This was not me\" button in\n%s", r.HTML)
	}
}

func TestSendEscapesTheDeviceNameInHTML(t *testing.T) {
	s := smtptest.Start(t, smtptest.Options{})
	body := signIn()
	body.Name = "<script>alert(1)</script>\r\nIf this was not you, go to https://evil.example"
	body.Device = `Firefox on "Linux" & <b>more</b>`
	body.Username = "<i>alice</i>"
	if err := newMailer(t, s).Send(context.Background(), "u1", outboxMessage(t, body)); err != nil {
		t.Fatal(err)
	}
	r := smtptest.ParseMail(t, one(t, s).Data)
	for _, bad := range []string{"<script>", "<b>more", "<i>alice"} {
		if strings.Contains(r.HTML, bad) {
			t.Errorf("HTML part: %q unescaped in\n%s", bad, r.HTML)
		}
	}
	for _, want := range []string{
		"&lt;script&gt;alert(1)&lt;/script&gt;",
		"Firefox on &#34;Linux&#34; &amp; &lt;b&gt;more&lt;/b&gt;",
		"Hi &lt;i&gt;alice&lt;/i&gt;,",
	} {
		if !strings.Contains(r.HTML, want) {
			t.Errorf("HTML part: %q missing from\n%s", want, r.HTML)
		}
	}
	// In the text the name stays on the device's line: it cannot start a
	// line of its own that would pass for the message's.
	want := "<script>alert(1)</script>  If this was not you, go to https://evil.example (Firefox on \"Linux\" & <b>more</b>)"
	if !strings.Contains(r.Text, "Device:      "+want+"\n") {
		t.Errorf("text part: want the device line %q in\n%s", want, r.Text)
	}
}

func TestSendSaysUnknownLocation(t *testing.T) {
	s := smtptest.Start(t, smtptest.Options{})
	body := signIn()
	body.Location, body.Name = "", ""
	if err := newMailer(t, s).Send(context.Background(), "u1", outboxMessage(t, body)); err != nil {
		t.Fatal(err)
	}
	r := smtptest.ParseMail(t, one(t, s).Data)
	for _, part := range []string{r.Text, r.HTML} {
		if !strings.Contains(part, "an unknown location") {
			t.Errorf("want \"an unknown location\" in\n%s", part)
		}
		if strings.Contains(part, "(Chrome on Windows)") || !strings.Contains(part, "Chrome on Windows") {
			t.Errorf("want the device without a name in\n%s", part)
		}
	}
}

func TestSendUsesSTARTTLSWhenOffered(t *testing.T) {
	s := smtptest.Start(t, smtptest.Options{Security: smtptest.StartTLS})
	if !strings.HasPrefix(s.URL(), "smtp://") {
		t.Fatalf("got URL %q, want smtp://", s.URL())
	}
	if err := newMailer(t, s).Send(context.Background(), "u1", outboxMessage(t, signIn())); err != nil {
		t.Fatal(err)
	}
	got := one(t, s)
	if got.TLS == nil || !got.TLS.HandshakeComplete {
		t.Fatalf("got the message over TLS: %v, want STARTTLS used", got.TLS != nil)
	}
	smtptest.ParseMail(t, got.Data)
}

func TestSendWithAuth(t *testing.T) {
	for _, sec := range []struct {
		name string
		s    smtptest.Security
	}{{"STARTTLS", smtptest.StartTLS}, {"smtps", smtptest.ImplicitTLS}} {
		t.Run(sec.name, func(t *testing.T) {
			s := smtptest.Start(t, smtptest.Options{Security: sec.s, Username: "mailer", Password: password})
			if err := newMailer(t, s).Send(context.Background(), "u1", outboxMessage(t, signIn())); err != nil {
				t.Fatal(err)
			}
			got := one(t, s)
			if got.TLS == nil || got.Username != "mailer" {
				t.Fatalf("got TLS %v, user %q; want TLS and mailer", got.TLS != nil, got.Username)
			}
			smtptest.ParseMail(t, got.Data)
		})
	}
}

func TestSendSMTPSWithoutAuth(t *testing.T) {
	s := smtptest.Start(t, smtptest.Options{Security: smtptest.ImplicitTLS})
	if !strings.HasPrefix(s.URL(), "smtps://") {
		t.Fatalf("got URL %q, want smtps://", s.URL())
	}
	if err := newMailer(t, s).Send(context.Background(), "u1", outboxMessage(t, signIn())); err != nil {
		t.Fatal(err)
	}
	if got := one(t, s); got.TLS == nil {
		t.Fatal("got the message in the clear, want TLS")
	}
}

func TestSendAuthInTheClearToLoopback(t *testing.T) {
	s := smtptest.Start(t, smtptest.Options{Username: "mailer", Password: password, AllowInsecureAuth: true})
	if err := newMailer(t, s).Send(context.Background(), "u1", outboxMessage(t, signIn())); err != nil {
		t.Fatal(err)
	}
	if got := one(t, s); got.Username != "mailer" || got.TLS != nil {
		t.Fatalf("got user %q, TLS %v; want mailer in the clear", got.Username, got.TLS != nil)
	}
}

// go-mail lets PLAIN go in the clear only to localhost, 127.0.0.1 and ::1;
// 127.0.0.2 stands here for a remote host.
func TestSendKeepsThePasswordOffPlainConnectionsToOtherHosts(t *testing.T) {
	s := smtptest.Start(t, smtptest.Options{Host: "127.0.0.2", Username: "mailer", Password: password, AllowInsecureAuth: true})
	err := newMailer(t, s).Send(context.Background(), "u1", outboxMessage(t, signIn()))
	if !errors.Is(err, gomailsmtp.ErrUnencrypted) {
		t.Fatalf("got %v, want go-mail's refusal of an unencrypted connection", err)
	}
	if n := s.AuthAttempts(); n != 0 {
		t.Errorf("got %d AUTH attempts, want none", n)
	}
	if n := len(s.Messages()); n != 0 {
		t.Errorf("got %d messages, want none", n)
	}
}

func TestSendWithWrongCredentialsFails(t *testing.T) {
	s := smtptest.Start(t, smtptest.Options{Security: smtptest.StartTLS, Username: "mailer", Password: "right"})
	u, err := url.Parse(s.URL())
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword("mailer", password)
	m, err := mail.New(u.String(), from)
	if err != nil {
		t.Fatal(err)
	}
	m.TLSConfig = s.TLSConfig()
	err = m.Send(context.Background(), "u1", outboxMessage(t, signIn()))
	if err == nil {
		t.Fatal("got the message sent with a wrong password, want an error")
	}
	if strings.Contains(err.Error(), "s3cr3t") {
		t.Errorf("the error shows the password: %v", err)
	}
	if s.AuthAttempts() != 1 || len(s.Messages()) != 0 {
		t.Errorf("got %d AUTH attempts and %d messages, want 1 and 0", s.AuthAttempts(), len(s.Messages()))
	}
}

func TestSendToAnUntrustedCertificateFails(t *testing.T) {
	s := smtptest.Start(t, smtptest.Options{Security: smtptest.StartTLS})
	m := newMailer(t, s)
	m.TLSConfig = nil // the system's roots, which do not hold the test CA
	err := m.Send(context.Background(), "u1", outboxMessage(t, signIn()))
	var unknown x509.UnknownAuthorityError
	if !errors.As(err, &unknown) {
		t.Fatalf("got %v, want an unknown authority and no fallback to plain SMTP", err)
	}
	if n := len(s.Messages()); n != 0 {
		t.Fatalf("got %d messages, want none", n)
	}
}

func TestSendToARefusedRecipientFails(t *testing.T) {
	s := smtptest.Start(t, smtptest.Options{RejectRecipients: true})
	err := newMailer(t, s).Send(context.Background(), "u1", outboxMessage(t, signIn()))
	if err == nil || !strings.Contains(err.Error(), "550") {
		t.Fatalf("got %v, want the server's 550", err)
	}
}

func TestSendOfABadBodyFails(t *testing.T) {
	s := smtptest.Start(t, smtptest.Options{})
	m := newMailer(t, s)
	msg := outboxMessage(t, signIn())
	msg.Body = json.RawMessage(`"not a mail"`)
	if err := m.Send(context.Background(), "u1", msg); err == nil {
		t.Error("bad JSON: got nil, want an error")
	}
	body := signIn()
	body.To = "not an address"
	err := m.Send(context.Background(), "u1", outboxMessage(t, body))
	if err == nil {
		t.Error("bad To: got nil, want an error")
	} else if strings.Contains(err.Error(), "not an address") {
		t.Errorf("the error shows the user's address: %v", err)
	}
	if n := len(s.Messages()); n != 0 {
		t.Errorf("got %d messages, want none", n)
	}
}

func TestSendToAServerThatIsDownFails(t *testing.T) {
	port, err := freeport.Port()
	if err != nil {
		t.Fatal(err)
	}
	m, err := mail.New("smtp://127.0.0.1:"+strconv.Itoa(port), from)
	if err != nil {
		t.Fatal(err)
	}
	m.Timeout = 5 * time.Second
	start := time.Now()
	if err := m.Send(context.Background(), "u1", outboxMessage(t, signIn())); err == nil {
		t.Fatal("got nil, want an error")
	}
	if d := time.Since(start); d > m.Timeout {
		t.Errorf("took %v, want within the timeout %v", d, m.Timeout)
	}
}

// wantTimeout sends through s and wants an error after about timeout:
// not much sooner (the server was waited for), and well within the slack.
func wantTimeout(t *testing.T, m *mail.Mailer, ctx context.Context, timeout time.Duration) {
	t.Helper()
	start := time.Now()
	err := m.Send(ctx, "u1", outboxMessage(t, signIn()))
	d := time.Since(start)
	if err == nil {
		t.Fatal("got nil, want an error")
	}
	if d < timeout*8/10 || d > timeout+3*time.Second {
		t.Errorf("took %v, want about %v (%v)", d, timeout, err)
	}
}

func TestSendToAHangingServerTimesOut(t *testing.T) {
	for _, sec := range []struct {
		name string
		s    smtptest.Security
	}{{"smtp", smtptest.Plain}, {"smtps", smtptest.ImplicitTLS}} {
		t.Run(sec.name, func(t *testing.T) {
			t.Parallel()
			s := smtptest.Start(t, smtptest.Options{Security: sec.s, Hang: true})
			m := newMailer(t, s)
			m.Timeout = time.Second
			wantTimeout(t, m, context.Background(), m.Timeout)
		})
	}
}

// A server that stalls mid-session, after it took the message, is given up
// on too.
func TestSendToAServerHangingOnDataTimesOut(t *testing.T) {
	s := smtptest.Start(t, smtptest.Options{HangOnData: true})
	m := newMailer(t, s)
	m.Timeout = 2 * time.Second
	wantTimeout(t, m, context.Background(), m.Timeout)
	if n := len(s.Messages()); n != 0 {
		t.Fatalf("got %d messages, want none", n)
	}
}

func TestSendEndsWithItsContext(t *testing.T) {
	s := smtptest.Start(t, smtptest.Options{HangOnData: true})
	m := newMailer(t, s) // default timeout, far longer than the context's
	t.Run("deadline", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		wantTimeout(t, m, ctx, time.Second)
	})
	t.Run("cancel", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(time.Second, cancel)
		wantTimeout(t, m, ctx, time.Second)
	})
	t.Run("done before", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := m.Send(ctx, "u1", outboxMessage(t, signIn())); err == nil {
			t.Fatal("got nil, want an error")
		}
	})
}

func TestSendConcurrently(t *testing.T) {
	s := smtptest.Start(t, smtptest.Options{Security: smtptest.StartTLS, Username: "mailer", Password: password})
	m := newMailer(t, s)
	const n = 5
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			body := signIn()
			body.To = fmt.Sprintf("user%d@example.com", i)
			errs <- m.Send(context.Background(), "u1", outboxMessage(t, body))
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	seen := map[string]bool{}
	for _, msg := range s.Messages() {
		seen[msg.To[0]] = true
	}
	if len(seen) != n {
		t.Fatalf("got recipients %v, want %d distinct", seen, n)
	}
}
