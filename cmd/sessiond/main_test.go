package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// logSink collects the JSON log lines of a running server and reports the
// addresses it listens on: the admin listener's line comes first, so it is
// known when the public one's is.
type logSink struct {
	mu        sync.Mutex
	buf       bytes.Buffer
	addr      chan string
	adminAddr string
	found     bool
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
			if json.Unmarshal([]byte(line), &l) != nil {
				continue
			}
			switch l.Msg {
			case "sessiond admin listening":
				s.adminAddr = l.Addr
			case "sessiond listening":
				s.found = true
				s.addr <- l.Addr
			}
			if s.found {
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
	URL string
	// AdminURL is the admin listener's; "" when SESSIOND_ADMIN_ADDR is off.
	AdminURL string
	DataDir  string
	Logs     *logSink
	stop     func() error
}

// startServer runs sessiond with env on 127.0.0.1:0, its admin listener
// on another 127.0.0.1:0, in a temporary data directory (unless env names
// one) and stops it at cleanup.
func startServer(t testing.TB, env map[string]string) *testServer {
	t.Helper()
	vars := map[string]string{
		"SESSIOND_ADDR":       "127.0.0.1:0",
		"SESSIOND_ADMIN_ADDR": "127.0.0.1:0",
		"SESSIOND_DATA_DIR":   filepath.Join(t.TempDir(), "data"),
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
		sink.mu.Lock()
		if sink.adminAddr != "" {
			ts.AdminURL = "http://" + sink.adminAddr
		}
		sink.mu.Unlock()
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

func mustReadFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
