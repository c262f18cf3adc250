// Package redistest starts real redis-server processes for tests: a single
// node (Start) or a three-master Redis Cluster (StartCluster), each on
// random loopback ports, stopped when the test ends.
//
// It never touches a Redis that it did not start (in particular not the one
// a developer may run on port 6379). It needs redis-server and redis-cli in
// PATH; on Debian: apt-get install -y redis-server.
package redistest

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sessiond/sessiond/internal/freeport"
)

// startTimeout bounds how long a server may take to answer PING.
const startTimeout = 10 * time.Second

// Option configures a Server.
type Option func(*config)

type config struct {
	port int
	args []string
}

// WithPort makes the server listen on port instead of a random free one.
func WithPort(port int) Option {
	return func(c *config) { c.port = port }
}

// WithConfig passes extra redis-server configuration as name, value pairs,
// as on its command line without the leading dashes:
// WithConfig("appendonly", "yes", "appendfsync", "always"). They come after
// the defaults (--save "" --appendonly no), so they override them.
func WithConfig(nameValues ...string) Option {
	return func(c *config) {
		for i := 0; i+1 < len(nameValues); i += 2 {
			c.args = append(c.args, "--"+nameValues[i], nameValues[i+1])
		}
	}
}

// Server is one redis-server process owned by a test. Its data directory
// and port survive Stop, Kill and Restart, so a restarted server finds its
// AOF or RDB files again.
type Server struct {
	t    testing.TB
	port int
	dir  string
	args []string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// Start starts a redis-server on a random free loopback port with no
// persistence (unless opts say otherwise) and stops it when t ends.
func Start(t testing.TB, opts ...Option) *Server {
	t.Helper()
	requireBinaries(t)
	var c config
	for _, o := range opts {
		o(&c)
	}
	s := &Server{t: t, dir: t.TempDir(), args: c.args}
	t.Cleanup(s.Kill)
	if c.port != 0 {
		s.port = c.port
		if err := s.start(); err != nil {
			t.Fatalf("redistest: %v", err)
		}
		return s
	}
	var err error
	for range 5 {
		s.port = freePort(t, false)
		if err = s.start(); err == nil {
			return s
		}
	}
	t.Fatalf("redistest: %v", err)
	return nil
}

// Addr returns host:port of the server.
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// Port returns the server's port.
func (s *Server) Port() int { return s.port }

// URL returns redis://host:port for the server.
func (s *Server) URL() string { return "redis://" + s.Addr() }

// Dir returns the server's data directory.
func (s *Server) Dir() string { return s.dir }

// Kill ends the server at once with SIGKILL, as a crash would, and waits
// for it to exit. It does nothing when the server is not running.
func (s *Server) Kill() { s.signal(syscall.SIGKILL) }

// Stop shuts the server down cleanly with SIGTERM (it flushes its AOF and,
// if configured, writes a snapshot) and waits for it to exit.
func (s *Server) Stop() { s.signal(syscall.SIGTERM) }

// Freeze suspends the process (SIGSTOP): connections stay open but
// nothing answers, as in a network partition. Thaw resumes it.
func (s *Server) Freeze() { s.sendSignal(syscall.SIGSTOP) }

// Thaw resumes a frozen server (SIGCONT).
func (s *Server) Thaw() { s.sendSignal(syscall.SIGCONT) }

func (s *Server) sendSignal(sig syscall.Signal) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		_ = s.cmd.Process.Signal(sig)
	}
}

// Start starts a stopped or killed server again on the same port and data
// directory. It fails the test if the server does not come up.
func (s *Server) Start() {
	s.t.Helper()
	var err error
	// The port may linger briefly after a kill; retry for a moment.
	for range 20 {
		if err = s.start(); err == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.t.Fatalf("redistest: restart: %v", err)
}

// Restart stops the server cleanly and starts it again.
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	s.Start()
}

// Running reports whether the process is up.
func (s *Server) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cmd != nil
}

// Do sends one command over a new connection and returns its reply as
// text (see Do at package level).
func (s *Server) Do(args ...string) (string, error) { return Do(s.Addr(), args...) }

// MustDo is Do that fails the test on an error or an error reply.
func (s *Server) MustDo(args ...string) string {
	s.t.Helper()
	r, err := s.Do(args...)
	if err != nil {
		s.t.Fatalf("redistest: %s: %v", strings.Join(args, " "), err)
	}
	return r
}

func (s *Server) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return errors.New("already running")
	}
	args := []string{
		"--port", strconv.Itoa(s.port),
		"--bind", "127.0.0.1",
		"--dir", s.dir,
		"--save", "",
		"--appendonly", "no",
		"--daemonize", "no",
		"--logfile", "",
		"--loglevel", "warning",
	}
	args = append(args, s.args...)
	cmd := exec.Command("redis-server", args...)
	logf, err := os.OpenFile(filepath.Join(s.dir, "redis.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd.Stdout = logf
	cmd.Stderr = logf
	// Take the server down with the test binary if it dies without
	// running its cleanups.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start redis-server: %w", err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	deadline := time.Now().Add(startTimeout)
	for {
		r, err := Do(s.Addr(), "PING")
		if err == nil && r == "PONG" {
			break
		}
		select {
		case <-done:
			return fmt.Errorf("redis-server on port %d exited: %s", s.port, tail(filepath.Join(s.dir, "redis.log")))
		default:
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-done
			return fmt.Errorf("redis-server on port %d did not answer PING: %v", s.port, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	s.cmd = cmd
	s.done = done
	return nil
}

func (s *Server) signal(sig syscall.Signal) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(sig)
	_ = s.cmd.Process.Signal(syscall.SIGCONT) // a frozen server must see it
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
	s.cmd = nil
	s.done = nil
}

// requireBinaries fails the test when redis-server or redis-cli is missing.
func requireBinaries(t testing.TB) {
	t.Helper()
	for _, bin := range []string{"redis-server", "redis-cli"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Fatalf("redistest: %s not found in PATH; install it with: apt-get install -y redis-server", bin)
		}
	}
}

// freePort returns a loopback port that is free now (and, for cluster
// nodes, whose cluster bus port, port+10000, is free too).
func freePort(t testing.TB, bus bool) int {
	t.Helper()
	pick := freeport.Port
	if bus {
		pick = freeport.WithBus
	}
	p, err := pick()
	if err != nil {
		t.Fatalf("redistest: %v", err)
	}
	return p
}

func tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return strings.TrimSpace(string(b))
}

// Do sends one command to addr over a new connection (RESP2) and returns
// the reply as text: a simple or bulk string as is, an integer in decimal,
// a nil as "", an array as its elements joined by newlines. An error reply
// is returned as an error.
func Do(addr string, args ...string) (string, error) {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := conn.Write([]byte(b.String())); err != nil {
		return "", err
	}
	return readReply(bufio.NewReader(conn))
}

func readReply(r *bufio.Reader) (string, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimSuffix(line, "\r\n")
	if line == "" {
		return "", errors.New("empty reply")
	}
	switch line[0] {
	case '+', ':':
		return line[1:], nil
	case '-':
		return "", errors.New(line[1:])
	case '$':
		n, err := strconv.Atoi(line[1:])
		if err != nil {
			return "", err
		}
		if n < 0 {
			return "", nil
		}
		buf := make([]byte, n+2)
		if _, err := readFull(r, buf); err != nil {
			return "", err
		}
		return string(buf[:n]), nil
	case '*':
		n, err := strconv.Atoi(line[1:])
		if err != nil {
			return "", err
		}
		parts := make([]string, 0, max(n, 0))
		for range n {
			p, err := readReply(r)
			if err != nil {
				return "", err
			}
			parts = append(parts, p)
		}
		return strings.Join(parts, "\n"), nil
	}
	return "", fmt.Errorf("unexpected reply %q", line)
}

func readFull(r *bufio.Reader, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := r.Read(buf[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}
