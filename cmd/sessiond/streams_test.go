package main

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sessiond/sessiond/internal/sessiondtest"
)

// TestMaxStreamsIsWired: SESSIOND_MAX_STREAMS caps the streams of the
// instance, whoever opens them; a bad value is refused at start.
func TestMaxStreamsIsWired(t *testing.T) {
	ts := startServer(t, map[string]string{"SESSIOND_MAX_STREAMS": "1"})
	c := sessiondtest.NewClient(t, ts.URL)
	c.Register("ann")
	c.Register("bea")
	a, b := c.Login("ann", nil), c.Login("bea", nil)
	sessiondtest.Subscribe(t, ts.URL, a.AccessToken)
	r := c.Do("GET", "/api/v1/sessions/events", b.AccessToken, nil).Expect(t, 429)
	if !strings.Contains(string(r.Env.Data), `"code":"too_many_streams"`) {
		t.Fatalf("second stream: data %s, want too_many_streams", r.Env.Data)
	}
	for _, v := range []string{"0", "-1", "many"} {
		fs, _, check := newFlagSet("sessiond serve", func(k string) string {
			if k == "SESSIOND_MAX_STREAMS" {
				return v
			}
			return ""
		}, &strings.Builder{})
		fs.Parse(nil)
		if err := check(); err == nil || !strings.Contains(err.Error(), "SESSIOND_MAX_STREAMS") {
			t.Errorf("SESSIOND_MAX_STREAMS=%s: got %v, want it refused", v, err)
		}
	}
	fs, c2, check := newFlagSet("sessiond serve", func(string) string { return "" }, &strings.Builder{})
	if err := fs.Parse([]string{"--max-streams", "42"}); err != nil || check() != nil || c2.MaxStreams != 42 {
		t.Errorf("--max-streams 42: got %d (%v)", c2.MaxStreams, check())
	}
}

func TestStreamsWithinOpenFileLimit(t *testing.T) {
	for _, tt := range []struct {
		configured int
		limit      uint64
		want       int
		lowered    bool
	}{
		{10_000, 0, 10_000, false},          // unknown limit
		{10_000, 1 << 20, 10_000, false},    // plenty
		{10_000, 20_000, 10_000, false},     // 15,000 allowed
		{10_000, 1024, 768, true},           // the common default soft limit
		{10_000, 600, 344, true},            // 256 kept back
		{10_000, 800, 544, true},            // the figure the docs give
		{10_000, 512, 256, true},            // half at 512 or less
		{100, 600, 100, false},              // below the bound
		{10_000, 300, 150, true},            // tiny limit: half
		{10_000, ^uint64(0), 10_000, false}, // RLIM_INFINITY
	} {
		got, lowered := streamsWithin(tt.configured, tt.limit)
		if got != tt.want || lowered != tt.lowered {
			t.Errorf("streamsWithin(%d, %d): got %d %v, want %d %v", tt.configured, tt.limit, got, lowered, tt.want, tt.lowered)
		}
	}
}

// TestServeWarnsWhenOpenFileLimitIsLow runs the real binary under a limit
// of 600 open files (set by the shell, soft and hard, so the Go runtime
// cannot raise it): it starts, caps streams at 344 and says so in its log.
func TestServeWarnsWhenOpenFileLimitIsLow(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "sessiond")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	cmd := exec.Command("sh", "-c", `ulimit -n 600 && exec "$0"`, bin)
	cmd.Dir = t.TempDir()
	cmd.Env = append(os.Environ(), "SESSIOND_ADDR=127.0.0.1:0", "SESSIOND_ADMIN_ADDR=127.0.0.1:0")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	var log []string
	timeout := time.After(30 * time.Second)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("the binary exited before listening:\n%s", strings.Join(log, "\n"))
			}
			log = append(log, l)
			if strings.Contains(l, `"msg":"sessiond listening"`) {
				for _, l := range log {
					if strings.Contains(l, `"level":"WARN"`) && strings.Contains(l, `"open_file_limit":600`) && strings.Contains(l, `"streams_cap":344`) {
						go func() {
							for range lines {
							}
						}()
						return
					}
				}
				t.Fatalf("no warning about the open file limit before listening:\n%s", strings.Join(log, "\n"))
			}
		case <-timeout:
			t.Fatalf("the binary did not report listening within 30 s:\n%s", strings.Join(log, "\n"))
		}
	}
}
