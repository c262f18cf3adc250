// Package webhooktest starts a real webhook receiver for tests: the Node.js
// program interop/webhooks/receiver.mjs, which verifies every delivery with
// the Standard Webhooks reference library for JavaScript (the npm package
// standardwebhooks, pinned in interop/webhooks/package-lock.json) and
// records what it received.
package webhooktest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sessiond/sessiond/internal/freeport"
	"github.com/sessiond/sessiond/webhook"
)

const installHint = "apt-get install -y nodejs npm (bash scripts/test.sh installs them)"

// Delivery is one POST the receiver got, as it recorded it.
type Delivery struct {
	// ID is the webhook-id header.
	ID string `json:"id"`
	// Attempt counts the deliveries of ID so far, this one included.
	Attempt int `json:"attempt"`
	// Verified says whether the reference library accepted the signature
	// (and the timestamp); Error is its complaint when it did not.
	Verified bool   `json:"verified"`
	Error    string `json:"error"`
	// Status is what the receiver answered: 400 when not verified, 500
	// when told to fail, else 204.
	Status      int    `json:"status"`
	Body        string `json:"body"`
	Timestamp   string `json:"timestamp"`
	ContentType string `json:"content_type"`
	UserAgent   string `json:"user_agent"`
	Path        string `json:"path"`
}

// Receiver is a running receiver.mjs. Its record of deliveries is kept in a
// file, so it survives Stop and Restart.
type Receiver struct {
	t      testing.TB
	node   string
	secret string
	log    string

	mu     sync.Mutex
	port   int
	cmd    *exec.Cmd
	stdin  io.Closer
	stderr *syncBuffer
	exited chan struct{}
}

// Start installs the receiver's npm dependencies when they are missing or
// stale, starts it with a new secret (webhook.NewSecret) on a free port of
// 127.0.0.1, and stops it when the test ends. It fails the test, saying
// how to install them, when node or npm is missing.
func Start(t testing.TB) *Receiver {
	t.Helper()
	dir := receiverDir(t)
	node := install(t, dir)
	r := &Receiver{
		t:      t,
		node:   node,
		secret: webhook.NewSecret(),
		log:    filepath.Join(t.TempDir(), "deliveries.jsonl"),
	}
	t.Cleanup(r.Stop)
	// A port picked below the ephemeral range, where no client socket
	// takes it between Stop and Restart; another test may bind it first,
	// so a few are tried.
	var err error
	for range 5 {
		var port int
		if port, err = freeport.Port(); err != nil {
			t.Fatalf("webhook receiver: %v", err)
		}
		if err = r.start(port); err == nil {
			return r
		}
	}
	t.Fatalf("webhook receiver: %v", err)
	return nil
}

// URL is where to deliver: any path but /control and /deliveries.
func (r *Receiver) URL() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return fmt.Sprintf("http://127.0.0.1:%d/hooks", r.port)
}

// Secret is the secret the receiver verifies with.
func (r *Receiver) Secret() string { return r.secret }

// Fail makes the receiver answer 500 to its next n verified deliveries.
func (r *Receiver) Fail(n int) {
	r.t.Helper()
	resp, err := http.Post(r.base()+"/control", "application/json", strings.NewReader(fmt.Sprintf(`{"fail":%d}`, n)))
	if err != nil {
		r.t.Fatalf("webhook receiver: control: %v%s", err, r.output())
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		r.t.Fatalf("webhook receiver: control: got status %d, want 204", resp.StatusCode)
	}
}

// Deliveries returns every delivery received so far, in order, across
// restarts. While the receiver is stopped it reads its record from disk.
func (r *Receiver) Deliveries() []Delivery {
	r.t.Helper()
	var out []Delivery
	if !r.running() {
		b, err := os.ReadFile(r.log)
		if err != nil && !os.IsNotExist(err) {
			r.t.Fatal(err)
		}
		for _, line := range bytes.Split(b, []byte("\n")) {
			if len(line) == 0 {
				continue
			}
			var d Delivery
			if err := json.Unmarshal(line, &d); err != nil {
				r.t.Fatalf("webhook receiver: record: %v", err)
			}
			out = append(out, d)
		}
		return out
	}
	resp, err := http.Get(r.base() + "/deliveries")
	if err != nil {
		r.t.Fatalf("webhook receiver: deliveries: %v%s", err, r.output())
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		r.t.Fatalf("webhook receiver: deliveries: %v", err)
	}
	return out
}

// Stop kills the receiver, as a crash would: deliveries fail until
// Restart. Stopping a stopped receiver does nothing.
func (r *Receiver) Stop() {
	r.mu.Lock()
	cmd, stdin, exited := r.cmd, r.stdin, r.exited
	r.cmd = nil
	r.mu.Unlock()
	if cmd == nil {
		return
	}
	stdin.Close()
	_ = cmd.Process.Kill()
	<-exited
}

// Restart starts the stopped receiver again on the same port, with the
// same secret and its record of deliveries; failures asked for by Fail are
// forgotten. It fails the test when the port has been taken meanwhile.
func (r *Receiver) Restart() {
	r.t.Helper()
	r.Stop()
	r.mu.Lock()
	port := r.port
	r.mu.Unlock()
	if err := r.start(port); err != nil {
		r.t.Fatalf("webhook receiver: restart: %v", err)
	}
}

func (r *Receiver) base() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return "http://127.0.0.1:" + strconv.Itoa(r.port)
}

func (r *Receiver) running() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cmd != nil
}

// output returns what the receiver wrote to standard error, for failure
// messages.
func (r *Receiver) output() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stderr == nil {
		return ""
	}
	if out := r.stderr.String(); out != "" {
		return "\nreceiver stderr:\n" + out
	}
	return ""
}

// start runs node on port and waits for it to say it listens.
func (r *Receiver) start(port int) error {
	r.t.Helper()
	cmd := exec.Command(r.node, "receiver.mjs")
	cmd.Dir = receiverDir(r.t)
	cmd.Env = append(os.Environ(),
		"WEBHOOK_SECRET="+r.secret,
		"RECEIVER_PORT="+strconv.Itoa(port),
		"RECEIVER_LOG="+r.log,
	)
	// The receiver exits when its standard input closes, so it does not
	// outlive a test process that dies without cleaning up.
	stdin, err := cmd.StdinPipe()
	if err != nil {
		r.t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		r.t.Fatal(err)
	}
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		r.t.Fatalf("webhook receiver: start node: %v", err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	r.mu.Lock()
	r.cmd, r.stdin, r.stderr, r.exited, r.port = cmd, stdin, stderr, exited, port
	r.mu.Unlock()

	ports := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		ports <- strings.TrimSpace(line)
		_, _ = io.Copy(io.Discard, stdout)
	}()
	var got string
	select {
	case got = <-ports:
	case <-time.After(30 * time.Second):
	}
	if got != strconv.Itoa(port) {
		r.Stop()
		return fmt.Errorf("did not listen on port %d (printed %q)\nreceiver stderr:\n%s", port, got, stderr.String())
	}
	return nil
}

// syncBuffer is a bytes.Buffer the receiver's stderr copier and the test
// may use at once.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// receiverDir is interop/webhooks, found from this file's place in the
// module, whichever package's test calls Start.
func receiverDir(t testing.TB) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("webhooktest: cannot locate its source file")
	}
	return filepath.Join(filepath.Dir(file), "..", "..", "interop", "webhooks")
}

// install returns the node binary, after running npm ci in dir when
// node_modules is missing or holds another version than package-lock.json
// pins. Tests of several packages may call it at once: a lock file keeps
// one npm ci at a time.
func install(t testing.TB, dir string) string {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatal("webhook receiver: node is not installed: " + installHint)
	}
	// Checked under the lock too: npm ci of another test process empties
	// node_modules before filling it.
	unlock := lock(t, filepath.Join(os.TempDir(), "sessiond-interop-webhooks-npm-ci.lock"))
	defer unlock()
	if installed(t, dir) {
		return node
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		t.Fatal("webhook receiver: npm is not installed: " + installHint)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, npm, "ci", "--no-audit", "--no-fund", "--loglevel=error")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("npm ci in interop/webhooks (needs the npm registry or its cache; bash scripts/test.sh runs it): %v\n%s", err, out)
	}
	return node
}

// installed reports whether node_modules holds the standardwebhooks version
// package-lock.json pins.
func installed(t testing.TB, dir string) bool {
	t.Helper()
	var lock struct {
		Packages map[string]struct {
			Version string `json:"version"`
		} `json:"packages"`
	}
	b, err := os.ReadFile(filepath.Join(dir, "package-lock.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &lock); err != nil {
		t.Fatalf("interop/webhooks/package-lock.json: %v", err)
	}
	want := lock.Packages["node_modules/standardwebhooks"].Version
	if want == "" {
		t.Fatal("interop/webhooks/package-lock.json does not pin standardwebhooks")
	}
	var got struct {
		Version string `json:"version"`
	}
	if b, err := os.ReadFile(filepath.Join(dir, "node_modules", "standardwebhooks", "package.json")); err == nil {
		_ = json.Unmarshal(b, &got)
	}
	return got.Version == want
}
