package main

import (
	"bufio"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sessiond/sessiond/internal/sessiondtest"
)

// TestBinaryStopsGracefullyOnSignals builds the real binary, starts it with
// zero configuration in an empty directory, and stops it with SIGTERM and
// SIGINT: it exits 0 after a clean shutdown.
func TestBinaryStopsGracefullyOnSignals(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "sessiond")
	build := exec.Command("go", "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			dir := t.TempDir()
			cmd := exec.Command(bin)
			cmd.Dir = dir
			cmd.Env = append(os.Environ(), "SESSIOND_ADDR=127.0.0.1:0", "SESSIOND_ADMIN_ADDR=127.0.0.1:0")
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { cmd.Process.Kill() })
			sc := bufio.NewScanner(out)
			listening := false
			for !listening && sc.Scan() {
				listening = strings.Contains(sc.Text(), `"msg":"sessiond listening"`)
			}
			if !listening {
				t.Fatal("the binary did not report listening")
			}
			// Zero configuration: the data directory is ./data.
			if _, err := os.Stat(filepath.Join(dir, "data", "sessiond.db")); err != nil {
				t.Fatalf("no ./data/sessiond.db: %v", err)
			}
			go func() {
				for sc.Scan() {
				}
			}()
			cmd.Process.Signal(sig)
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("exit after %v: %v", sig, err)
				}
			case <-time.After(15 * time.Second):
				t.Fatalf("still running 15 s after %v", sig)
			}
		})
	}
}

// TestShutdownLetsRequestsFinish: requests in flight when shutdown starts
// complete; none is cut off with a 503.
func TestShutdownLetsRequestsFinish(t *testing.T) {
	ts := startServer(t, nil)
	c := sessiondtest.NewClient(t, ts.URL)
	c.Register("will")
	var wg sync.WaitGroup
	statuses := make(chan int, 20)
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := strings.NewReader(`{"username":"will","password":"` + sessiondtest.Password + `"}`)
			resp, err := http.Post(ts.URL+"/api/v1/auth/login", "application/json", body)
			if err != nil {
				return // refused once the listener closed: fine
			}
			resp.Body.Close()
			statuses <- resp.StatusCode
		}()
	}
	time.Sleep(30 * time.Millisecond)
	if err := ts.stop(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	close(statuses)
	for s := range statuses {
		if s != http.StatusOK {
			t.Fatalf("a login in flight during shutdown got %d", s)
		}
	}
}
