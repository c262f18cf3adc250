package smtptest

import (
	"crypto/tls"
	"errors"
	"net"
	"net/smtp"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
)

const body = "From: a@example.com\r\nTo: b@example.com\r\nSubject: hi\r\n\r\nhello\r\n"

// send delivers body from a@example.com to b@example.com with the standard
// library's client, which stands apart from the mailer under test.
func send(t *testing.T, s *Server, startTLS bool, user, pass string) error {
	t.Helper()
	addr := net.JoinHostPort(s.Host(), strconv.Itoa(s.Port()))
	var conn net.Conn
	var err error
	if strings.HasPrefix(s.URL(), "smtps:") {
		cfg := s.TLSConfig()
		cfg.ServerName = s.Host()
		conn, err = tls.Dial("tcp", addr, cfg)
	} else {
		conn, err = net.Dial("tcp", addr)
	}
	if err != nil {
		return err
	}
	c, err := smtp.NewClient(conn, s.Host())
	if err != nil {
		return err
	}
	defer c.Close()
	if startTLS {
		cfg := s.TLSConfig()
		cfg.ServerName = s.Host()
		if err := c.StartTLS(cfg); err != nil {
			return err
		}
	}
	if user != "" {
		if err := c.Auth(smtp.PlainAuth("", user, pass, s.Host())); err != nil {
			return err
		}
	}
	if err := c.Mail("a@example.com"); err != nil {
		return err
	}
	if err := c.Rcpt("b@example.com"); err != nil {
		return err
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write([]byte(body)); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return c.Quit()
}

func TestPlainServerRecordsEnvelopeAndData(t *testing.T) {
	s := Start(t, Options{})
	if err := send(t, s, false, "", ""); err != nil {
		t.Fatal(err)
	}
	msgs := s.Messages()
	if len(msgs) != 1 {
		t.Fatalf("got %d messages, want 1", len(msgs))
	}
	m := msgs[0]
	if m.From != "a@example.com" || len(m.To) != 1 || m.To[0] != "b@example.com" {
		t.Errorf("got envelope %q -> %q, want a@example.com -> [b@example.com]", m.From, m.To)
	}
	if string(m.Data) != body {
		t.Errorf("got data %q, want %q", m.Data, body)
	}
	if m.TLS != nil || m.Username != "" {
		t.Errorf("got TLS %v, user %q; want neither", m.TLS != nil, m.Username)
	}
	if s.TLSConfig() != nil || s.CACertPEM() != nil {
		t.Error("a plain server has a TLS configuration")
	}
}

func TestStartTLSServerRecordsTheTLSState(t *testing.T) {
	s := Start(t, Options{Security: StartTLS})
	if err := send(t, s, true, "", ""); err != nil {
		t.Fatal(err)
	}
	m := s.Messages()[0]
	if m.TLS == nil || !m.TLS.HandshakeComplete {
		t.Fatalf("got TLS state %v, want a completed handshake", m.TLS)
	}
	if !strings.HasPrefix(string(s.CACertPEM()), "-----BEGIN CERTIFICATE-----") {
		t.Errorf("got CA PEM %q, want a certificate", s.CACertPEM())
	}
}

func TestImplicitTLSServerSpeaksTLSFirst(t *testing.T) {
	s := Start(t, Options{Security: ImplicitTLS})
	if !strings.HasPrefix(s.URL(), "smtps://") {
		t.Fatalf("got URL %q, want smtps://", s.URL())
	}
	if err := send(t, s, false, "", ""); err != nil {
		t.Fatal(err)
	}
	if m := s.Messages()[0]; m.TLS == nil {
		t.Fatal("got a message in the clear, want over TLS")
	}
}

func TestAuthPlainChecksTheCredentials(t *testing.T) {
	s := Start(t, Options{Security: StartTLS, Username: "alice", Password: "p@ss:word"})
	u, err := url.Parse(s.URL())
	if err != nil {
		t.Fatal(err)
	}
	if p, _ := u.User.Password(); u.User.Username() != "alice" || p != "p@ss:word" {
		t.Fatalf("got URL %q, want the credentials in it", s.URL())
	}
	err = send(t, s, true, "alice", "wrong")
	var te *textproto.Error
	if !errors.As(err, &te) || te.Code != 535 {
		t.Fatalf("wrong password: got %v, want a 535", err)
	}
	if err := send(t, s, true, "", ""); err == nil {
		t.Fatal("no AUTH: got a message accepted, want it refused")
	}
	if err := send(t, s, true, "alice", "p@ss:word"); err != nil {
		t.Fatal(err)
	}
	msgs := s.Messages()
	if len(msgs) != 1 || msgs[0].Username != "alice" {
		t.Fatalf("got %d messages (%+v), want 1 from alice", len(msgs), msgs)
	}
	if got := s.AuthAttempts(); got != 2 {
		t.Errorf("got %d AUTH attempts, want 2", got)
	}
}

func TestRejectRecipientsAnswers550(t *testing.T) {
	s := Start(t, Options{RejectRecipients: true})
	err := send(t, s, false, "", "")
	var te *textproto.Error
	if !errors.As(err, &te) || te.Code != 550 {
		t.Fatalf("got %v, want a 550", err)
	}
	if n := len(s.Messages()); n != 0 {
		t.Fatalf("got %d messages, want 0", n)
	}
}

func TestHangingServerSaysNothing(t *testing.T) {
	s := Start(t, Options{Hang: true})
	c, err := net.Dial("tcp", net.JoinHostPort(s.Host(), strconv.Itoa(s.Port())))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	n, err := c.Read(make([]byte, 1))
	var ne net.Error
	if n != 0 || !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("got %d bytes, %v; want a read timeout", n, err)
	}
}

func TestClosedServerRefusesConnections(t *testing.T) {
	s := Start(t, Options{})
	s.Close()
	s.Close() // idempotent
	if err := send(t, s, false, "", ""); err == nil {
		t.Fatal("got a message delivered to a closed server")
	}
}

func TestWaitReturnsOnceTheMessagesArrive(t *testing.T) {
	s := Start(t, Options{})
	errc := make(chan error, 1)
	go func() {
		time.Sleep(100 * time.Millisecond)
		errc <- send(t, s, false, "", "")
	}()
	msgs := s.Wait(t, 1, 30*time.Second)
	if len(msgs) != 1 {
		t.Fatalf("got %d messages, want 1", len(msgs))
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}
