package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sessiond/sessiond/internal/freeport"
	"github.com/sessiond/sessiond/internal/sessiondtest"
)

// nginxBinary returns the path of Debian's nginx, or fails the test with
// how to install it.
func nginxBinary(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("nginx"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/sbin/nginx"); err == nil {
		return "/usr/sbin/nginx"
	}
	t.Fatal("nginx is not installed: apt-get install -y nginx (the README's test command installs it)")
	return ""
}

// nginxForwardAuth is the configuration under test (the locations of
// nginxServer): every request to the upstream first asks sessiond's
// /api/v1/auth/check, and the user id it answers replaces whatever
// X-Sessiond-User the client sent.
const nginxForwardAuth = `
        location = /_sessiond_check {
            internal;
            proxy_pass %[4]s/api/v1/auth/check;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header X-Original-URI $request_uri;
        }

        location / {
            auth_request /_sessiond_check;
            auth_request_set $user $upstream_http_x_sessiond_user;
            auth_request_set $session $upstream_http_x_sessiond_session;
            proxy_set_header X-Sessiond-User $user;
            proxy_set_header X-Sessiond-Session $session;
            proxy_pass %[5]s;
        }
`

// startNginx runs nginx in the foreground with conf on a random loopback
// port and returns its base URL; it stops at cleanup.
func startNginx(t *testing.T, sessiondURL, upstreamURL string) string {
	t.Helper()
	return startNginxConf(t, nginxForwardAuth, sessiondURL, upstreamURL)
}

// nginxServer wraps the locations of a test's server block: nginx in the
// foreground of a temporary directory, listening on one loopback port.
const nginxServer = `
%[1]s
worker_processes 1;
pid %[2]s/nginx.pid;
error_log %[2]s/error.log info;
events { worker_connections 64; }
http {
    access_log %[2]s/access.log;
    client_body_temp_path %[2]s/client_body;
    proxy_temp_path %[2]s/proxy;
    fastcgi_temp_path %[2]s/fastcgi;
    uwsgi_temp_path %[2]s/uwsgi;
    scgi_temp_path %[2]s/scgi;

    server {
        listen 127.0.0.1:%[3]d;
%[6]s
    }
}
`

// startNginxConf is startNginx with locations of its own: a format whose
// arguments are the user line, the temporary directory, the port,
// sessiond's URL and the upstream's.
func startNginxConf(t *testing.T, nginxConf, sessiondURL, upstreamURL string) string {
	t.Helper()
	bin := nginxBinary(t)
	var lastErr string
	for attempt := 0; attempt < 3; attempt++ {
		dir := t.TempDir()
		port, err := freeport.Port()
		if err != nil {
			t.Fatal(err)
		}
		user := ""
		if os.Geteuid() == 0 {
			user = "user root;" // workers otherwise run as nobody and cannot use the temp dir
		}
		conf := filepath.Join(dir, "nginx.conf")
		if err := os.WriteFile(conf, fmt.Appendf(nil, nginxServer, user, dir, port, sessiondURL, upstreamURL, fmt.Sprintf(nginxConf, user, dir, port, sessiondURL, upstreamURL)), 0o600); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin, "-p", dir, "-c", conf, "-e", filepath.Join(dir, "error.log"), "-g", "daemon off;")
		out := &lockedBuffer{}
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatalf("start nginx: %v", err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		if waitListening(addr, exited, 10*time.Second) {
			t.Cleanup(func() {
				cmd.Process.Signal(syscall.SIGQUIT)
				select {
				case <-exited:
				case <-time.After(5 * time.Second):
					cmd.Process.Kill()
					<-exited
				}
			})
			return "http://" + addr
		}
		cmd.Process.Kill()
		<-exited
		log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
		lastErr = out.String() + string(log)
		if !strings.Contains(lastErr, "Address already in use") {
			break
		}
	}
	t.Fatalf("nginx did not start:\n%s", lastErr)
	return ""
}

// waitListening reports whether addr accepts connections before d passes
// or the process exits.
func waitListening(addr string, exited <-chan error, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			_ = err
			return false
		default:
		}
		if c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
			c.Close()
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestNginxForwardAuth puts a real nginx with auth_request in front of an
// upstream: no token is refused at nginx, a valid token reaches the
// upstream with the user id nginx got from sessiond (a forged header from
// the client is replaced), and a session revoked through sessiond's API is
// refused at nginx on its next request.
func TestNginxForwardAuth(t *testing.T) {
	ts := startServer(t, nil)
	c := sessiondtest.NewClient(t, ts.URL)
	u := c.Register("frank")
	laptop := c.Login("frank", nil)
	phone := c.Login("frank", nil)

	var mu sync.Mutex
	var seen []string
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Header.Get("X-Sessiond-User"))
		mu.Unlock()
		fmt.Fprintf(w, "upstream: user=%s session=%s path=%s", r.Header.Get("X-Sessiond-User"), r.Header.Get("X-Sessiond-Session"), r.URL.Path)
	}))
	t.Cleanup(upstream.Close)
	proxy := startNginx(t, ts.URL, upstream.URL)

	send := func(method, token string, header map[string]string) (int, http.Header, string) {
		t.Helper()
		req, err := http.NewRequest(method, proxy+"/app/page", strings.NewReader("x=1"))
		if err != nil {
			t.Fatal(err)
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		for k, v := range header {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header, string(b)
	}
	get := func(token string, header map[string]string) (int, http.Header, string) {
		t.Helper()
		return send("GET", token, header)
	}

	code, h, body := get("", map[string]string{"X-Sessiond-User": u.ID})
	if code != http.StatusUnauthorized {
		t.Fatalf("no token: got %d %s, want 401 at nginx", code, body)
	}
	if got := h.Get("WWW-Authenticate"); got != `Bearer error="invalid_token"` {
		t.Errorf("no token: WWW-Authenticate: got %q, want sessiond's", got)
	}
	code, _, body = get("not-a-token", nil)
	if code != http.StatusUnauthorized {
		t.Fatalf("garbage token: got %d %s, want 401", code, body)
	}

	code, _, body = get(phone.AccessToken, map[string]string{"X-Sessiond-User": "someone-else"})
	want := "upstream: user=" + u.ID + " session=" + phone.Session.ID + " path=/app/page"
	if code != http.StatusOK || body != want {
		t.Fatalf("valid token: got %d %q, want 200 %q", code, body, want)
	}

	// nginx's auth subrequest is a GET whatever the client's method.
	code, _, body = send("POST", phone.AccessToken, nil)
	if code != http.StatusOK || body != want {
		t.Fatalf("valid token, POST: got %d %q, want 200 %q", code, body, want)
	}

	c.Do("DELETE", "/api/v1/sessions/"+phone.Session.ID, laptop.AccessToken, nil).Expect(t, http.StatusOK)
	code, _, body = get(phone.AccessToken, nil)
	if code != http.StatusUnauthorized {
		t.Fatalf("revoked session: got %d %s, want 401 at nginx", code, body)
	}
	code, _, _ = get(laptop.AccessToken, nil)
	if code != http.StatusOK {
		t.Fatalf("the other session: got %d, want 200", code)
	}

	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 3 || seen[0] != u.ID || seen[1] != u.ID || seen[2] != u.ID {
		t.Fatalf("upstream saw X-Sessiond-User %q, want %q three times and no refused request", seen, u.ID)
	}
}
