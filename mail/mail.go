// Package mail sends the "New sign-in to your account" e-mail through an
// SMTP server with github.com/wneessen/go-mail (docs/design.md, "Security
// activity": E-mail; "Configuration": SESSIOND_SMTP_URL and
// SESSIOND_MAIL_FROM).
package mail

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	netmail "net/mail"
	"net/url"
	"strconv"
	"time"

	gomail "github.com/wneessen/go-mail"

	"github.com/sessiond/sessiond"
)

// DefaultTimeout is how long one Send may take when Mailer.Timeout is
// zero.
const DefaultTimeout = 10 * time.Second

// Mailer sends the messages of sessiond.QueueMail through one SMTP server.
// It implements sessiond.Sender and is safe for concurrent use once its
// fields are set; every Send opens its own connection.
//
// An smtp:// server gets STARTTLS when it offers it and plain SMTP when it
// does not; an smtps:// server gets TLS from the first byte. Credentials
// go only over TLS, or in the clear to localhost, 127.0.0.1 or ::1 (go-mail
// refuses PLAIN and LOGIN elsewhere): a server that offers no TLS and no
// challenge-response mechanism gets no password and every Send fails.
//
// A Mailer prints (fmt, String) without its password.
type Mailer struct {
	// TLSConfig is the TLS configuration for STARTTLS and smtps; nil means
	// the system's roots. Its ServerName, when empty, is the URL's host.
	TLSConfig *tls.Config
	// Timeout bounds one Send, from the dial to the server's answer to
	// the message; default DefaultTimeout. A shorter context deadline
	// wins.
	Timeout time.Duration

	implicitTLS bool
	host        string
	port        int
	username    string
	password    string
	from        string
}

var _ sessiond.Sender = (*Mailer)(nil)

// New returns a Mailer for smtpURL, smtp://[user:pass@]host:port or
// smtps://[user:pass@]host:port (special characters of user and pass
// percent-encoded), sending from the address from ("noreply@example.com"
// or "Example <noreply@example.com>"). Its errors never include the
// password.
func New(smtpURL, from string) (*Mailer, error) {
	m := &Mailer{}
	if err := m.parseURL(smtpURL); err != nil {
		return nil, err
	}
	if from == "" {
		return nil, errors.New("mail: the From address is missing")
	}
	if _, err := netmail.ParseAddress(from); err != nil {
		return nil, fmt.Errorf("mail: the From address %q is not an e-mail address: %w", from, err)
	}
	if err := gomail.NewMsg().From(from); err != nil {
		return nil, fmt.Errorf("mail: the From address %q is not an e-mail address: %w", from, err)
	}
	m.from = from
	return m, nil
}

// urlForm is what every URL error says the URL should look like.
const urlForm = "want smtp://[user:pass@]host:port or smtps://[user:pass@]host:port, special characters percent-encoded"

// parseURL fills m from smtpURL. Its errors quote nothing of the URL but
// the scheme: a password with an unescaped '/', '?' or '#' ends the
// authority early, and url.Parse's messages would then show part of it.
func (m *Mailer) parseURL(smtpURL string) error {
	if smtpURL == "" {
		return errors.New("mail: the SMTP URL is missing")
	}
	u, err := url.Parse(smtpURL)
	if err != nil {
		return fmt.Errorf("mail: the SMTP URL is not a valid URL (%s)", urlForm)
	}
	switch u.Scheme {
	case "smtp":
	case "smtps":
		m.implicitTLS = true
	case "":
		return fmt.Errorf("mail: the SMTP URL has no scheme (%s)", urlForm)
	default:
		return fmt.Errorf("mail: the SMTP URL's scheme %q is neither smtp nor smtps (%s)", u.Scheme, urlForm)
	}
	switch {
	case u.Opaque != "":
		return fmt.Errorf("mail: the SMTP URL has no //host (%s)", urlForm)
	case u.Path != "" && u.Path != "/":
		return fmt.Errorf("mail: the SMTP URL has a path; it takes none (%s)", urlForm)
	case u.RawQuery != "" || u.ForceQuery:
		return fmt.Errorf("mail: the SMTP URL has a query; it takes none (%s)", urlForm)
	case u.Fragment != "":
		return fmt.Errorf("mail: the SMTP URL has a fragment; it takes none (%s)", urlForm)
	case u.Hostname() == "":
		return fmt.Errorf("mail: the SMTP URL has no host (%s)", urlForm)
	case u.Port() == "":
		return fmt.Errorf("mail: the SMTP URL has no port (%s)", urlForm)
	}
	port, err := strconv.Atoi(u.Port())
	if err != nil || port < 1 || port > 65535 {
		return fmt.Errorf("mail: the SMTP URL's port is not a number from 1 to 65535 (%s)", urlForm)
	}
	m.host, m.port = u.Hostname(), port
	if u.User != nil {
		pass, ok := u.User.Password()
		switch {
		case u.User.Username() == "":
			return fmt.Errorf("mail: the SMTP URL has a password but no user (%s)", urlForm)
		case !ok || pass == "":
			return fmt.Errorf("mail: the SMTP URL has a user but no password (%s)", urlForm)
		}
		m.username, m.password = u.User.Username(), pass
	}
	return nil
}

// String returns the server's address and the From address, with the
// user but never the password. Its receiver is a value so that fmt uses it
// for a Mailer as well as for a *Mailer, never printing the fields.
func (m Mailer) String() string {
	u := url.URL{Scheme: "smtp", Host: net.JoinHostPort(m.host, strconv.Itoa(m.port))}
	if m.implicitTLS {
		u.Scheme = "smtps"
	}
	if m.username != "" {
		u.User = url.User(m.username)
	}
	return fmt.Sprintf("mail.Mailer{%s from %s}", u.String(), m.from)
}

// GoString is String, so that %#v shows no password either.
func (m Mailer) GoString() string { return m.String() }

// Send delivers msg, whose Body is a sessiond.NewSignInMail, to its To
// address; userID names the user only in errors. It returns nil once the
// server accepted the message, and an error (for a retry) for a body that
// does not decode, an address the message cannot go to, and every failure
// of the server: refused connection, TLS, authentication, a refused
// recipient or message, silence past the timeout.
func (m *Mailer) Send(ctx context.Context, userID string, msg sessiond.OutboxMessage) error {
	var body sessiond.NewSignInMail
	if err := json.Unmarshal(msg.Body, &body); err != nil {
		return fmt.Errorf("mail: message %s of user %s: body: %w", msg.ID, userID, err)
	}
	text, html, err := render(body)
	if err != nil {
		return fmt.Errorf("mail: message %s of user %s: %w", msg.ID, userID, err)
	}
	mm := gomail.NewMsg(gomail.WithNoDefaultUserAgent())
	if err := mm.From(m.from); err != nil {
		return fmt.Errorf("mail: message %s of user %s: from: %w", msg.ID, userID, err)
	}
	if err := mm.To(body.To); err != nil {
		// The address is the user's: it stays out of the error, which is
		// logged.
		return fmt.Errorf("mail: message %s of user %s: the recipient is not an e-mail address", msg.ID, userID)
	}
	mm.Subject(Subject)
	mm.SetBodyString(gomail.TypeTextPlain, text)
	mm.AddAlternativeString(gomail.TypeTextHTML, html)

	timeout := m.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if d, ok := ctx.Deadline(); ok {
		timeout = time.Until(d)
	}
	if timeout <= 0 || ctx.Err() != nil {
		return fmt.Errorf("mail: message %s of user %s: %w", msg.ID, userID, context.Cause(ctx))
	}

	c, err := m.client(ctx, timeout)
	if err != nil {
		return fmt.Errorf("mail: message %s of user %s: %w", msg.ID, userID, err)
	}
	if err := c.DialAndSendWithContext(ctx, mm); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("mail: message %s of user %s: send through %s: %w: %w", msg.ID, userID, m.addr(), ctx.Err(), err)
		}
		return fmt.Errorf("mail: message %s of user %s: send through %s: %w", msg.ID, userID, m.addr(), err)
	}
	return nil
}

func (m *Mailer) addr() string { return net.JoinHostPort(m.host, strconv.Itoa(m.port)) }

// client returns a go-mail client for one Send under ctx. It dials
// itself: go-mail knows ctx only while dialing, and after that bounds the
// session by a connection deadline that it renews before the message; the
// dialer closes the connection when ctx ends, so that a cancelled Send (a
// shutdown) or one past its deadline ends at once.
func (m *Mailer) client(ctx context.Context, timeout time.Duration) (*gomail.Client, error) {
	tlsConfig := &tls.Config{MinVersion: tls.VersionTLS12}
	if m.TLSConfig != nil {
		tlsConfig = m.TLSConfig.Clone()
	}
	if tlsConfig.ServerName == "" {
		tlsConfig.ServerName = m.host
	}
	dial := func(dctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		var conn net.Conn
		var err error
		if m.implicitTLS {
			conn, err = (&tls.Dialer{NetDialer: &d, Config: tlsConfig}).DialContext(dctx, "tcp", m.addr())
		} else {
			conn, err = d.DialContext(dctx, "tcp", m.addr())
		}
		if err != nil {
			return nil, err
		}
		// The connection itself goes back, unwrapped: go-mail tells TLS
		// from its type.
		context.AfterFunc(ctx, func() { conn.Close() })
		return conn, nil
	}
	opts := []gomail.Option{
		gomail.WithPort(m.port),
		gomail.WithTimeout(timeout),
		gomail.WithDialContextFunc(dial),
		// Over implicit TLS a server does not offer STARTTLS (RFC 3207),
		// so the opportunistic policy only reads the TLS state there.
		gomail.WithTLSPolicy(gomail.TLSOpportunistic),
		gomail.WithTLSConfig(tlsConfig),
	}
	if m.username != "" {
		opts = append(opts,
			gomail.WithUsername(m.username),
			gomail.WithPassword(m.password),
			// PLAIN or LOGIN when offered: go-mail sends them only over TLS
			// or to localhost. Otherwise it discovers the strongest
			// mechanism the server offers that fits the connection.
			gomail.WithOpportunisticSMTPAuth(gomail.SMTPAuthPlain, gomail.SMTPAuthLogin),
		)
	}
	return gomail.NewClient(m.host, opts...)
}
