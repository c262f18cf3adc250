package adminkey_test

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sessiond/sessiond/internal/adminkey"
)

// logBuffer collects JSON log lines; it is safe for concurrent use.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(b, nil))
}

// watched opens path and watches it every 5 ms until the test ends.
func watched(t *testing.T, path string, logs *logBuffer) *adminkey.Set {
	t.Helper()
	s, err := adminkey.Open(path, logs.logger())
	if err != nil {
		t.Fatal(err)
	}
	s.Interval = 5 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		s.Watch(ctx)
		close(done)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return s
}

// eventually fails the test unless cond holds within 5 s (the promise to
// operators), polling it; the set itself polls every 5 ms here.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 5 s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func accepted(s *adminkey.Set, key, want string) func() bool {
	return func() bool { name, ok := s.Lookup(key); return ok && name == want }
}

func refused(s *adminkey.Set, key string) func() bool {
	return func() bool { _, ok := s.Lookup(key); return !ok }
}

// TestWatch: keys made and revoked by the commands take effect in a
// running set without reopening it, and a file that goes away or becomes
// unreadable leaves no keys.
func TestWatch(t *testing.T) {
	path := keysFile(t)
	logs := &logBuffer{}
	s := watched(t, path, logs) // no file yet
	app := newKey(t, path, "app")
	eventually(t, "a new key accepted", accepted(s, app, "app"))
	ops := newKey(t, path, "ops")
	eventually(t, "a second key accepted", accepted(s, ops, "ops"))
	if err := adminkey.Revoke(path, "app"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a revoked key refused", refused(s, app))
	if _, ok := s.Lookup(ops); !ok {
		t.Fatal("the other key was refused after a revoke")
	}

	// Gone: no keys.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	eventually(t, "keys refused once the file is gone", refused(s, ops))
	// Back: its keys again.
	writeFile(t, path, "ops "+hashOf(ops)+"\n")
	eventually(t, "keys accepted once the file is back", accepted(s, ops, "ops"))
	// Unreadable (a directory in its place, which even root cannot read as
	// a file): no keys, rather than the keys read before.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(path, 0o700); err != nil {
		t.Fatal(err)
	}
	eventually(t, "keys refused while the file is unreadable", refused(s, ops))
	if !strings.Contains(logs.String(), "unreadable") {
		t.Fatalf("no warning about the unreadable file in the log:\n%s", logs)
	}
	for _, k := range []string{app, ops, strings.TrimPrefix(ops, "sdk_")} {
		if strings.Contains(logs.String(), k) {
			t.Fatalf("the log shows a key:\n%s", logs)
		}
	}
}

// TestWatchSeesRewriteWithSameTime: a rewrite that keeps the size and the
// modification time (a rewrite within the file system's timestamp
// granularity) is still noticed.
func TestWatchSeesRewriteWithSameTime(t *testing.T) {
	path := keysFile(t)
	one := newKey(t, keysFile(t), "k")
	two := newKey(t, keysFile(t), "k")
	mtime := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	writeFile(t, path, "k "+hashOf(one)+"\n")
	if err := os.Chtimes(path, mtime, mtime); err != nil {
		t.Fatal(err)
	}
	s := watched(t, path, &logBuffer{})
	if _, ok := s.Lookup(one); !ok {
		t.Fatal("the first key is refused")
	}
	writeFile(t, path, "k "+hashOf(two)+"\n")
	if err := os.Chtimes(path, mtime, mtime); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the rewritten key accepted", accepted(s, two, "k"))
	if _, ok := s.Lookup(one); ok {
		t.Fatal("the replaced key is still accepted")
	}
}

// TestLookupDuringReloads: lookups run while the file changes under a
// watching set (run with -race).
func TestLookupDuringReloads(t *testing.T) {
	path := keysFile(t)
	keep := newKey(t, path, "keep")
	s := watched(t, path, &logBuffer{})
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, ok := s.Lookup(keep); !ok {
					t.Error("a key that stays in the file was refused during a reload")
					return
				}
			}
		})
	}
	for range 20 {
		newKey(t, path, "temp")
		if err := adminkey.Revoke(path, "temp"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond)
	}
	close(stop)
	wg.Wait()
}
