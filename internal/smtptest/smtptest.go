// Package smtptest runs a real SMTP server on loopback for tests: plain,
// with STARTTLS or with implicit TLS under a certificate of a CA made for
// the test, with or without AUTH PLAIN, and records every message it
// accepts with its envelope and how it came (docs/design.md, "Testing":
// a real server, never a fake sender).
package smtptest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/url"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Security says how a Server offers TLS.
type Security int

const (
	// Plain offers no TLS at all.
	Plain Security = iota
	// StartTLS offers STARTTLS on a plain connection (URL scheme smtp).
	StartTLS
	// ImplicitTLS speaks TLS from the first byte (URL scheme smtps).
	ImplicitTLS
)

// Options configure a Server; the zero value is a plain server on
// 127.0.0.1 without AUTH that accepts every message.
type Options struct {
	// Security is how the server offers TLS.
	Security Security
	// Host is the loopback address to listen on; default 127.0.0.1.
	Host string
	// Username and Password, when Username is set, make the server offer
	// AUTH PLAIN, accept only these credentials and refuse mail without
	// them.
	Username, Password string
	// AllowInsecureAuth offers AUTH on a connection without TLS too (the
	// server otherwise offers it only over TLS, as real servers do).
	AllowInsecureAuth bool
	// RejectRecipients refuses every RCPT TO with 550.
	RejectRecipients bool
	// Hang makes the server accept connections and never answer, not even
	// with its greeting: a server that hangs.
	Hang bool
	// HangOnData makes the server take the message and never answer the
	// end of DATA: a server that hangs mid-session.
	HangOnData bool
}

// Message is a message the server accepted.
type Message struct {
	// From and To are the envelope: MAIL FROM and every RCPT TO.
	From string
	To   []string
	// Data is the message as received (headers and body, CRLF line ends).
	Data []byte
	// TLS is the state of the connection's TLS, nil when the message came
	// in the clear.
	TLS *tls.ConnectionState
	// Username is who authenticated with AUTH, "" when nobody did.
	Username string
}

// Server is a running SMTP server. Its methods are safe for concurrent
// use.
type Server struct {
	opts   Options
	host   string
	port   int
	srv    *smtp.Server
	ln     net.Listener
	caPEM  []byte
	client *tls.Config
	hang   chan struct{} // closed when the server stops, to free hung handlers

	mu        sync.Mutex
	msgs      []Message
	authTried int
	changed   chan struct{} // closed and replaced whenever a message arrives
	closed    bool
}

// Start starts a server with opts on a port of the loopback interface
// and stops it when the test ends.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	host := opts.Host
	if host == "" {
		host = "127.0.0.1"
	}
	s := &Server{opts: opts, host: host, hang: make(chan struct{}), changed: make(chan struct{})}
	var serverTLS *tls.Config
	if opts.Security != Plain {
		var err error
		serverTLS, s.client, s.caPEM, err = newCA(host)
		if err != nil {
			t.Fatalf("smtptest: make a test CA: %v", err)
		}
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatalf("smtptest: listen on %s: %v", host, err)
	}
	s.port = ln.Addr().(*net.TCPAddr).Port
	if opts.Security == ImplicitTLS {
		ln = tls.NewListener(ln, serverTLS)
	}
	s.ln = ln
	t.Cleanup(s.Close)

	if opts.Hang {
		go s.hangAll(ln)
		return s
	}

	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		return &session{s: s, conn: c}, nil
	}))
	srv.Domain = "smtptest.localhost"
	srv.ReadTimeout = time.Minute
	srv.WriteTimeout = time.Minute
	srv.MaxMessageBytes = 10 << 20
	srv.AllowInsecureAuth = opts.AllowInsecureAuth
	srv.ErrorLog = log.New(io.Discard, "", 0)
	if opts.Security == StartTLS {
		srv.TLSConfig = serverTLS
	}
	s.srv = srv
	go func() { _ = srv.Serve(ln) }()
	return s
}

// hangAll accepts connections and holds them open, silent, until the
// server stops.
func (s *Server) hangAll(ln net.Listener) {
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		if tc, ok := c.(*tls.Conn); ok {
			c = tc.NetConn() // no handshake either: silence from the first byte
		}
		conns = append(conns, c)
	}
}

// Close stops the server: it refuses connections from then on and drops
// the open ones. Idempotent; Start calls it when the test ends.
func (s *Server) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	close(s.hang)
	s.mu.Unlock()
	_ = s.ln.Close() // the server may not have taken it into its list yet
	if s.srv != nil {
		_ = s.srv.Close()
	}
}

// Host returns the address the server listens on.
func (s *Server) Host() string { return s.host }

// Port returns the port the server listens on.
func (s *Server) Port() int { return s.port }

// URL returns the server's address as SESSIOND_SMTP_URL takes it: smtp://
// (smtps:// with ImplicitTLS), with the credentials of Options when set.
func (s *Server) URL() string {
	u := url.URL{Scheme: "smtp", Host: net.JoinHostPort(s.host, strconv.Itoa(s.port))}
	if s.opts.Security == ImplicitTLS {
		u.Scheme = "smtps"
	}
	if s.opts.Username != "" {
		u.User = url.UserPassword(s.opts.Username, s.opts.Password)
	}
	return u.String()
}

// TLSConfig returns a client configuration that trusts the server's
// certificate (and nothing else); nil for a Plain server.
func (s *Server) TLSConfig() *tls.Config {
	if s.client == nil {
		return nil
	}
	return s.client.Clone()
}

// CACertPEM returns the PEM of the CA that signed the server's
// certificate, for a process that reads its roots from a file
// (SSL_CERT_FILE); nil for a Plain server.
func (s *Server) CACertPEM() []byte { return s.caPEM }

// Messages returns the messages accepted so far, oldest first.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.msgs...)
}

// AuthAttempts returns how many AUTH exchanges clients started, whether
// they succeeded or not.
func (s *Server) AuthAttempts() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.authTried
}

// Wait returns the messages accepted so far once there are at least n,
// and fails the test when there are fewer after timeout.
func (s *Server) Wait(t testing.TB, n int, timeout time.Duration) []Message {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		msgs, changed := append([]Message(nil), s.msgs...), s.changed
		s.mu.Unlock()
		if len(msgs) >= n {
			return msgs
		}
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatalf("smtptest: %d messages after %v, want %d", len(msgs), timeout, n)
			return nil
		}
	}
}

func (s *Server) record(m Message) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.msgs = append(s.msgs, m)
	close(s.changed)
	s.changed = make(chan struct{})
}

// session is one SMTP session: its envelope so far and who authenticated.
type session struct {
	s        *Server
	conn     *smtp.Conn
	username string
	from     string
	to       []string
}

var _ smtp.AuthSession = (*session)(nil)

func (ss *session) AuthMechanisms() []string {
	if ss.s.opts.Username == "" {
		return nil
	}
	return []string{sasl.Plain}
}

func (ss *session) Auth(mech string) (sasl.Server, error) {
	ss.s.mu.Lock()
	ss.s.authTried++
	ss.s.mu.Unlock()
	return sasl.NewPlainServer(func(identity, username, password string) error {
		if identity != "" && identity != username {
			return smtp.ErrAuthFailed
		}
		if username != ss.s.opts.Username || password != ss.s.opts.Password {
			return smtp.ErrAuthFailed
		}
		ss.username = username
		return nil
	}), nil
}

func (ss *session) Mail(from string, _ *smtp.MailOptions) error {
	if ss.s.opts.Username != "" && ss.username == "" {
		return smtp.ErrAuthRequired
	}
	ss.from = from
	return nil
}

func (ss *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	if ss.s.opts.RejectRecipients {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "No such user here"}
	}
	ss.to = append(ss.to, to)
	return nil
}

func (ss *session) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if ss.s.opts.HangOnData {
		<-ss.s.hang
		return errors.New("smtptest: server stopped")
	}
	m := Message{From: ss.from, To: append([]string(nil), ss.to...), Data: data, Username: ss.username}
	if st, ok := ss.conn.TLSConnectionState(); ok {
		m.TLS = &st
	}
	ss.s.record(m)
	return nil
}

func (ss *session) Reset() { ss.from, ss.to = "", nil }

func (ss *session) Logout() error { return nil }

// newCA makes a CA and a certificate it signs for host, localhost, 127.0.0.1
// and ::1; it returns the server's configuration, a client configuration
// trusting only that CA, and the CA's PEM.
func newCA(host string) (server, client *tls.Config, caPEM []byte, err error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "smtptest CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, nil, nil, err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, nil, nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: host},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	if ip := net.ParseIP(host); ip != nil {
		tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
	} else if host != "localhost" {
		tmpl.DNSNames = append(tmpl.DNSNames, host)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, nil, nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	server = &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}},
		MinVersion:   tls.VersionTLS12,
	}
	client = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	caPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	if caPEM == nil {
		return nil, nil, nil, fmt.Errorf("encode the CA certificate")
	}
	return server, client, caPEM, nil
}
