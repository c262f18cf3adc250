package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sessiond/sessiond/internal/apitest"
)

// logSink collects the JSON log lines of a running server and reports the
// address it listens on.
type logSink struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	addr  chan string
	found bool
}

func (s *logSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.buf.Write(p)
	if !s.found {
		for _, line := range strings.Split(s.buf.String(), "\n") {
			var l struct {
				Msg  string `json:"msg"`
				Addr string `json:"addr"`
			}
			if json.Unmarshal([]byte(line), &l) == nil && l.Msg == "sessiond listening" {
				s.found = true
				s.addr <- l.Addr
				break
			}
		}
	}
	return len(p), nil
}

func (s *logSink) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

// testServer is the real program, started by run on a random port.
type testServer struct {
	URL     string
	DataDir string
	Logs    *logSink
	stop    func() error
}

// startServer runs sessiond with env on 127.0.0.1:0 in a temporary data
// directory (unless env names one) and stops it at cleanup.
func startServer(t testing.TB, env map[string]string) *testServer {
	t.Helper()
	vars := map[string]string{
		"SESSIOND_ADDR":     "127.0.0.1:0",
		"SESSIOND_DATA_DIR": filepath.Join(t.TempDir(), "data"),
		// Tests share two busy cores: a generous Redis deadline keeps
		// them about what they test. Tests of the deadline set their own.
		"SESSIOND_REDIS_TIMEOUT": "2s",
	}
	for k, v := range env {
		vars[k] = v
	}
	getenv := func(k string) string { return vars[k] }
	ctx, cancel := context.WithCancel(context.Background())
	sink := &logSink{addr: make(chan string, 1)}
	done := make(chan error, 1)
	go func() { done <- run(ctx, nil, getenv, strings.NewReader(""), sink, sink) }()
	ts := &testServer{DataDir: vars["SESSIOND_DATA_DIR"], Logs: sink}
	select {
	case addr := <-sink.addr:
		ts.URL = "http://" + addr
	case err := <-done:
		cancel()
		t.Fatalf("sessiond exited before listening: %v\n%s", err, sink.String())
	case <-time.After(20 * time.Second):
		cancel()
		t.Fatalf("sessiond did not start listening within 20 s\n%s", sink.String())
	}
	var once sync.Once
	var stopErr error
	ts.stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case stopErr = <-done:
			case <-time.After(15 * time.Second):
				stopErr = errors.New("sessiond did not stop within 15 s")
			}
		})
		return stopErr
	}
	t.Cleanup(func() {
		if err := ts.stop(); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
	return ts
}

// envelope is the API's response shape.
type envelope struct {
	Status     string          `json:"status"`
	StatusCode int             `json:"status_code"`
	Message    string          `json:"message"`
	Data       json.RawMessage `json:"data"`
}

// response is one answer of the API.
type response struct {
	*http.Response
	Body []byte
	Env  envelope
}

func (r *response) decode(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Env.Data, v); err != nil {
		t.Fatalf("decode data %s: %v", r.Env.Data, err)
	}
}

// client talks to a test server.
type client struct {
	t       testing.TB
	base    string
	http    *http.Client
	UA      string
	Headers map[string]string
}

// newClient returns a client whose every response is validated against
// docs/openapi.yaml, so the description cannot drift from the server.
func newClient(t testing.TB, base string) *client {
	v := apitest.NewValidator(t)
	hc := &http.Client{Timeout: 60 * time.Second, Transport: v.Transport(t, nil)}
	return &client{t: t, base: base, http: hc, UA: "sessiond-test/1.0"}
}

// do sends a request; body may be nil, a []byte (sent as is) or a value
// (sent as JSON). It checks the envelope of every /api/v1 JSON answer.
func (c *client) do(method, path, token string, body any) *response {
	c.t.Helper()
	var rd io.Reader
	ct := ""
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	case url.Values:
		rd = strings.NewReader(b.Encode())
		ct = "application/x-www-form-urlencoded"
	default:
		j, err := json.Marshal(b)
		if err != nil {
			c.t.Fatal(err)
		}
		rd = bytes.NewReader(j)
		ct = "application/json"
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		c.t.Fatal(err)
	}
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("User-Agent", c.UA)
	for k, v := range c.Headers {
		req.Header.Set(k, v)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	r := &response{Response: resp, Body: raw}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") && strings.HasPrefix(path, "/api/v1/") && path != "/api/v1/openapi.json" {
		checkEnvelope(c.t, method+" "+path, resp, raw, &r.Env)
	}
	return r
}

// checkEnvelope asserts the envelope has exactly its four fields and that
// status_code equals the HTTP status.
func checkEnvelope(t testing.TB, what string, resp *http.Response, raw []byte, env *envelope) {
	t.Helper()
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil {
		t.Fatalf("%s: body is not a JSON object: %v: %q", what, err, raw)
	}
	if len(fields) != 4 || fields["status"] == nil || fields["status_code"] == nil || fields["message"] == nil || fields["data"] == nil {
		t.Fatalf("%s: envelope fields: got %s", what, raw)
	}
	if err := json.Unmarshal(raw, env); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if env.StatusCode != resp.StatusCode {
		t.Fatalf("%s: status_code %d, HTTP status %d", what, env.StatusCode, resp.StatusCode)
	}
	wantStatus := "success"
	if resp.StatusCode >= 400 {
		wantStatus = "error"
		var d struct {
			Code       string `json:"code"`
			RetryAfter int    `json:"retry_after"`
		}
		if err := json.Unmarshal(env.Data, &d); err != nil || d.Code == "" {
			t.Fatalf("%s: error data: got %s, want a code", what, env.Data)
		}
		if ra := resp.Header.Get("Retry-After"); resp.StatusCode == http.StatusTooManyRequests && ra != strconv.Itoa(d.RetryAfter) {
			t.Fatalf("%s: error data %s: retry_after differs from Retry-After %q", what, env.Data, ra)
		}
	}
	if env.Status != wantStatus {
		t.Fatalf("%s: status: got %q, want %q", what, env.Status, wantStatus)
	}
	if resp.Header.Get("X-Request-Id") == "" {
		t.Fatalf("%s: no X-Request-Id header", what)
	}
}

// expect asserts the HTTP status of r.
func (r *response) expect(t testing.TB, status int) *response {
	t.Helper()
	if r.StatusCode != status {
		t.Fatalf("%s %s: got status %d, want %d: %s", r.Request.Method, r.Request.URL.Path, r.StatusCode, status, r.Body)
	}
	return r
}

type userData struct {
	ID        string `json:"id"`
	Username  string `json:"username"`
	Email     string `json:"email"`
	CreatedAt string `json:"created_at"`
}

type sessionData struct {
	ID          string `json:"id"`
	Device      string `json:"device"`
	DeviceClass string `json:"device_class"`
	Name        string `json:"name"`
	IPAddress   string `json:"ip_address"`
	Location    string `json:"location"`
	LoginTime   string `json:"login_time"`
	LastActive  string `json:"last_active"`
	ExpiresAt   string `json:"expires_at"`
	Current     bool   `json:"current"`
}

type grantData struct {
	AccessToken  string      `json:"access_token"`
	TokenType    string      `json:"token_type"`
	ExpiresIn    int         `json:"expires_in"`
	RefreshToken string      `json:"refresh_token"`
	Session      sessionData `json:"session"`
}

const testPassword = "correct horse battery staple"

func (c *client) register(name string) userData {
	c.t.Helper()
	var u userData
	c.do("POST", "/api/v1/auth/register", "", map[string]string{
		"username": name, "email": name + "@example.com", "password": testPassword,
	}).expect(c.t, http.StatusCreated).decode(c.t, &u)
	return u
}

func (c *client) login(name string, extra map[string]string) grantData {
	c.t.Helper()
	body := map[string]string{"username": name, "password": testPassword}
	for k, v := range extra {
		body[k] = v
	}
	var g grantData
	c.do("POST", "/api/v1/auth/login", "", body).expect(c.t, http.StatusOK).decode(c.t, &g)
	return g
}

func mustReadFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var _ = fmt.Sprintf
