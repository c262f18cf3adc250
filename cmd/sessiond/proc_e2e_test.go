package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// buildSessiond builds the real binary into a directory of t, which must
// outlive every process started from it.
func buildSessiond(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "sessiond")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// sessiondProc is the real binary running as a process of its own, so that
// a test can kill it as a crash would (SIGKILL: no deferred code, no
// shutdown).
type sessiondProc struct {
	URL      string
	AdminURL string
	DataDir  string
	// Logs is everything the process wrote, standard output and error.
	Logs *logSink

	cmd    *exec.Cmd
	exited chan struct{}
	once   sync.Once
}

// startProc runs bin with env on 127.0.0.1:0 (admin listener on another
// 127.0.0.1:0), in a temporary data directory unless env names one, and
// waits until it listens. The environment is the test's without any
// SESSIOND_ variable, plus env. The process is stopped when t ends.
func startProc(t *testing.T, bin string, env map[string]string) *sessiondProc {
	t.Helper()
	vars := map[string]string{
		"SESSIOND_ADDR":          "127.0.0.1:0",
		"SESSIOND_ADMIN_ADDR":    "127.0.0.1:0",
		"SESSIOND_DATA_DIR":      filepath.Join(t.TempDir(), "data"),
		"SESSIOND_REDIS_TIMEOUT": "2s",
	}
	for k, v := range env {
		vars[k] = v
	}
	var environ []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SESSIOND_") {
			environ = append(environ, kv)
		}
	}
	for k, v := range vars {
		environ = append(environ, k+"="+v)
	}
	sink := &logSink{addr: make(chan string, 1)}
	cmd := exec.Command(bin)
	cmd.Env = environ
	cmd.Dir = t.TempDir()
	cmd.Stdout, cmd.Stderr = sink, sink
	if err := cmd.Start(); err != nil {
		t.Fatalf("start sessiond: %v", err)
	}
	p := &sessiondProc{DataDir: vars["SESSIOND_DATA_DIR"], Logs: sink, cmd: cmd, exited: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(p.stop)
	select {
	case addr := <-sink.addr:
		p.URL = "http://" + addr
		sink.mu.Lock()
		if sink.adminAddr != "" {
			p.AdminURL = "http://" + sink.adminAddr
		}
		sink.mu.Unlock()
	case <-p.exited:
		t.Fatalf("sessiond exited before listening:\n%s", sink.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("sessiond did not listen within 30 s:\n%s", sink.String())
	}
	return p
}

// kill ends the process with SIGKILL and waits until it is gone.
func (p *sessiondProc) kill() {
	p.once.Do(func() {
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
		<-p.exited
	})
}

// stop ends the process with SIGTERM, as a deployment does, and with
// SIGKILL when it has not exited 15 s later.
func (p *sessiondProc) stop() {
	p.once.Do(func() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(15 * time.Second):
			_ = p.cmd.Process.Signal(syscall.SIGKILL)
			<-p.exited
		}
	})
}
