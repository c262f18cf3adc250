package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/sessiond/sessiond/internal/freeport"
	"github.com/sessiond/sessiond/redis/redistest"
)

// moduleRoot returns the directory of the sessiond go.mod.
func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", fmt.Errorf("run the benchmark from the sessiond module (go run ./bench)")
	}
	return filepath.Dir(mod), nil
}

// buildSessiond builds the sessiond binary of the working tree into dir.
func buildSessiond(root, dir string) (string, error) {
	bin := filepath.Join(dir, "sessiond")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/sessiond")
	cmd.Dir = root
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go build ./cmd/sessiond: %w", err)
	}
	return bin, nil
}

// tailBuffer keeps the last few KiB written to it, for error messages.
type tailBuffer struct {
	mu sync.Mutex
	b  []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > 8<<10 {
		t.b = append(t.b[:0], t.b[len(t.b)-4<<10:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}

// instance is one running sessiond process.
type instance struct {
	URL      string
	AdminURL string // its admin listener (/metrics)
	DataDir  string
	cmd      *exec.Cmd
	logPath  string
	done     chan struct{}
}

// startSessiond runs bin serve with env (SESSIOND_* variables) on a
// random loopback port and waits until it listens. Its log (one JSON line
// per request) goes to a file next to its data directory, as a deployment
// writes it to disk: reading it through a pipe would put the parsing of
// every line on the benchmark's CPU, which it shares with the server.
func startSessiond(bin string, env map[string]string) (*instance, error) {
	cmd := exec.Command(bin, "serve")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "SESSIOND_ADDR=127.0.0.1:0", "SESSIOND_ADMIN_ADDR=127.0.0.1:0"}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	logPath := filepath.Clean(env["SESSIOND_DATA_DIR"]) + ".log"
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start sessiond: %w", err)
	}
	in := &instance{DataDir: env["SESSIOND_DATA_DIR"], cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() { cmd.Wait(); close(in.done) }()
	deadline := time.After(30 * time.Second)
	// An instance whose log level hides the "listening" lines is given
	// its addresses, and is ready when it answers /healthz.
	fixed, fixedAdmin := env["SESSIOND_ADDR"], env["SESSIOND_ADMIN_ADDR"]
	for {
		if fixed != "" {
			if resp, err := http.Get("http://" + fixed + "/healthz"); err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					in.URL, in.AdminURL = "http://"+fixed, "http://"+fixedAdmin
					return in, nil
				}
			}
		} else if addr, admin := listenAddr(logPath); addr != "" {
			in.URL, in.AdminURL = "http://"+addr, "http://"+admin
			return in, nil
		}
		select {
		case <-in.done:
			return nil, fmt.Errorf("sessiond exited before listening:\n%s", in.logTail())
		case <-deadline:
			in.Stop()
			return nil, fmt.Errorf("sessiond did not listen within 30 s:\n%s", in.logTail())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// listenAddr returns the address of the "sessiond listening" log line, or
// "" while there is none, and the admin listener's, which is logged before
// it.
func listenAddr(logPath string) (addr, admin string) {
	f, err := os.Open(logPath)
	if err != nil {
		return "", ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var l struct {
			Msg  string `json:"msg"`
			Addr string `json:"addr"`
		}
		if json.Unmarshal(sc.Bytes(), &l) != nil {
			continue
		}
		switch l.Msg {
		case "sessiond admin listening":
			admin = l.Addr
		case "sessiond listening":
			return l.Addr, admin
		}
	}
	return "", ""
}

// logTail returns the end of the instance's log.
func (in *instance) logTail() string {
	b, _ := os.ReadFile(in.logPath)
	if len(b) > 4<<10 {
		b = b[len(b)-4<<10:]
	}
	return string(b)
}

// Stop ends the process (SIGTERM, then SIGKILL after 10 s).
func (in *instance) Stop() {
	_ = in.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-in.done:
	case <-time.After(10 * time.Second):
		_ = in.cmd.Process.Kill()
		<-in.done
	}
}

// redisServer is a redis-server process started for the benchmark, with
// the same settings as redis/redistest (no persistence, loopback only).
type redisServer struct {
	Addr string
	cmd  *exec.Cmd
	done chan struct{}
}

// URL is redis://host:port.
func (r *redisServer) URL() string { return "redis://" + r.Addr }

// Do sends one command and returns its reply as text.
func (r *redisServer) Do(args ...string) (string, error) { return redistest.Do(r.Addr, args...) }

// startRedis starts redis-server on a free loopback port with its data in
// dir. The benchmark is no test, so it cannot use redistest.Start, which
// wants a testing.TB; it runs the server the same way.
func startRedis(dir string) (*redisServer, error) {
	if _, err := exec.LookPath("redis-server"); err != nil {
		return nil, fmt.Errorf("redis-server not found in PATH; on Debian: apt-get install -y redis-server")
	}
	var lastErr error
	for range 5 {
		port, err := freeport.Port()
		if err != nil {
			return nil, err
		}
		r, err := tryRedis(dir, port)
		if err == nil {
			return r, nil
		}
		lastErr = err
	}
	return nil, lastErr
}

func tryRedis(dir string, port int) (*redisServer, error) {
	cmd := exec.Command("redis-server",
		"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", dir,
		"--save", "", "--appendonly", "no", "--daemonize", "no", "--loglevel", "warning")
	logs := &tailBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start redis-server: %w", err)
	}
	r := &redisServer{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), cmd: cmd, done: make(chan struct{})}
	go func() { cmd.Wait(); close(r.done) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if reply, err := r.Do("PING"); err == nil && reply == "PONG" {
			return r, nil
		}
		select {
		case <-r.done:
			return nil, fmt.Errorf("redis-server on port %d exited: %s", port, logs.String())
		case <-time.After(5 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			r.Stop()
			return nil, fmt.Errorf("redis-server on port %d did not answer PING", port)
		}
	}
}

// Stop kills the server.
func (r *redisServer) Stop() {
	_ = r.cmd.Process.Kill()
	<-r.done
}

// info returns one field of INFO section.
func (r *redisServer) info(section, field string) (string, error) {
	out, err := r.Do("INFO", section)
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), field+":"); ok {
			return v, nil
		}
	}
	return "", fmt.Errorf("INFO %s has no %s", section, field)
}
