// Package fastapi tests app.py, a FastAPI service with its own users that
// keeps their sessions in sessiond, against a real sessiond process.
package fastapi

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sessiond/sessiond/geoip/geoiptest"
	"github.com/sessiond/sessiond/internal/freeport"
)

const (
	chromeOnWindows = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
	safariOnIPhone  = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1"
)

// TestStory plays a user's whole story through the FastAPI app: sign up,
// sign in on two devices, see both, sign one out, change the password.
func TestStory(t *testing.T) {
	python := findPython(t)
	sd := startSessiond(t)
	app := startApp(t, python, sd)

	// The proxy in front of the app says where each device connects from;
	// the test GeoIP file places 81.2.69.142 in London and 102.89.1.1 in Lagos.
	a := &device{t: t, base: app, userAgent: chromeOnWindows, ip: "81.2.69.142"}
	b := &device{t: t, base: app, userAgent: safariOnIPhone, ip: "102.89.1.1"}

	if code, body := a.do("POST", "/signup", `{"username":"alice","password":"correct horse"}`); code != 201 {
		t.Fatalf("signup: got %d, want 201: %s", code, body)
	}
	if code, body := a.do("POST", "/signup", `{"username":"alice","password":"another one"}`); code != 409 {
		t.Fatalf("signup with a taken username: got %d, want 409: %s", code, body)
	}
	if code, body := b.do("POST", "/login", `{"username":"alice","password":"wrong horse"}`); code != 401 {
		t.Fatalf("login with a wrong password: got %d, want 401: %s", code, body)
	}
	a.login("correct horse", "Work laptop")
	b.login("correct horse", "")

	var me struct {
		ID, Username string
		SessionID    string `json:"session_id"`
	}
	a.mustDo("GET", "/me", "", 200, &me)
	if me.ID != "user:1" || me.Username != "alice" || me.SessionID != a.sessionID {
		t.Fatalf("me: got %+v, want user:1, alice and session %s", me, a.sessionID)
	}

	var devices []struct {
		ID, Device, Name, Location string
		Current                    bool
	}
	a.mustDo("GET", "/devices", "", 200, &devices)
	if len(devices) != 2 {
		t.Fatalf("devices: got %d, want 2: %+v", len(devices), devices)
	}
	got := fmt.Sprintf("%+v", devices)
	for _, want := range []string{"Chrome on Windows", "Work laptop", "London, United Kingdom", "Safari on iPhone", "Lagos, Nigeria", b.sessionID} {
		if !strings.Contains(got, want) {
			t.Errorf("devices: %q is missing from %s", want, got)
		}
	}
	if !devices[0].Current || devices[0].ID != a.sessionID || devices[1].Current {
		t.Errorf("devices: got %s, want A's session first and the only current one", got)
	}

	// A signs B out: B is refused on its very next request.
	a.mustDo("DELETE", "/devices/"+b.sessionID, "", 200, nil)
	if code, body := b.do("GET", "/me", ""); code != 401 {
		t.Fatalf("B after being signed out: got %d, want 401: %s", code, body)
	}
	if code, body := b.do("DELETE", "/devices/"+a.sessionID, ""); code != 401 {
		t.Fatalf("B signing A out after being signed out: got %d, want 401: %s", code, body)
	}
	a.mustDo("GET", "/me", "", 200, nil)
	b.login("correct horse", "")

	if code, body := a.do("POST", "/password", `{"current_password":"wrong horse","new_password":"battery staple"}`); code != 400 {
		t.Fatalf("password change with a wrong current password: got %d, want 400: %s", code, body)
	}
	b.mustDo("GET", "/me", "", 200, nil)

	// A changes the password: every session ends, and A goes on with the
	// fresh tokens of a new session on the same device.
	oldA, oldRefresh := a.accessToken, a.refreshToken
	var grant loginGrant
	a.mustDo("POST", "/password", `{"current_password":"correct horse","new_password":"battery staple"}`, 200, &grant)
	if code, body := b.do("GET", "/me", ""); code != 401 {
		t.Fatalf("B after the password change: got %d, want 401: %s", code, body)
	}
	if got := sd.endReason(b.sessionID); got != "password_changed" {
		t.Errorf("B's session ended with reason %q, want password_changed", got)
	}
	if code, body := a.doWith(oldA, "GET", "/me", ""); code != 401 {
		t.Fatalf("A's old token after the password change: got %d, want 401: %s", code, body)
	}
	if grant.AccessToken == "" || grant.RefreshToken == "" || grant.Session.ID == a.sessionID {
		t.Fatalf("password change: got %+v, want new tokens of a new session", grant)
	}
	a.accessToken, a.sessionID = grant.AccessToken, grant.Session.ID
	// The client refreshes at sessiond itself: the old refresh token is
	// dead with its session, the new one works.
	if code := sd.refresh(t, oldRefresh); code != 401 {
		t.Errorf("refresh with A's old refresh token: got %d, want 401", code)
	}
	if code := sd.refresh(t, grant.RefreshToken); code != 200 {
		t.Errorf("refresh with A's new refresh token: got %d, want 200", code)
	}
	a.mustDo("GET", "/devices", "", 200, &devices)
	if len(devices) != 1 || devices[0].ID != a.sessionID || devices[0].Device != "Chrome on Windows" ||
		devices[0].Name != "Work laptop" || devices[0].Location != "London, United Kingdom" {
		t.Fatalf("devices after the password change: got %+v, want only A's new session: Work laptop, Chrome on Windows in London", devices)
	}

	if code, body := b.do("POST", "/login", `{"username":"alice","password":"correct horse"}`); code != 401 {
		t.Fatalf("login with the old password: got %d, want 401: %s", code, body)
	}
	b.login("battery staple", "")
}

// loginGrant is what /login and /password answer: sessiond's grant.
type loginGrant struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	Session      struct{ ID string }
}

// device is one of the user's devices talking to the app through its proxy.
type device struct {
	t             testing.TB
	base          string
	userAgent, ip string
	accessToken   string
	refreshToken  string
	sessionID     string
}

func (d *device) login(password, name string) {
	d.t.Helper()
	body, _ := json.Marshal(map[string]string{"username": "alice", "password": password, "device_name": name})
	var g loginGrant
	d.mustDo("POST", "/login", string(body), 200, &g)
	if g.AccessToken == "" || g.RefreshToken == "" || g.Session.ID == "" {
		d.t.Fatalf("login: got %+v, want tokens and a session", g)
	}
	d.accessToken, d.refreshToken, d.sessionID = g.AccessToken, g.RefreshToken, g.Session.ID
}

func (d *device) do(method, path, body string) (int, string) {
	d.t.Helper()
	return d.doWith(d.accessToken, method, path, body)
}

func (d *device) doWith(token, method, path, body string) (int, string) {
	d.t.Helper()
	req, err := http.NewRequest(method, d.base+path, strings.NewReader(body))
	if err != nil {
		d.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("User-Agent", d.userAgent)
	req.Header.Set("X-Forwarded-For", d.ip)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		d.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// mustDo fails the test unless the answer has status want, and decodes
// its JSON body into v when v is not nil.
func (d *device) mustDo(method, path, body string, want int, v any) {
	d.t.Helper()
	code, got := d.do(method, path, body)
	if code != want {
		d.t.Fatalf("%s %s: got %d, want %d: %s", method, path, code, want, got)
	}
	if v != nil {
		if err := json.Unmarshal([]byte(got), v); err != nil {
			d.t.Fatalf("%s %s: %v: %s", method, path, err, got)
		}
	}
}

// findPython returns a python3 that has FastAPI, uvicorn and httpx: the
// system's own first, since that is where Debian's packages go.
func findPython(t *testing.T) string {
	t.Helper()
	candidates := []string{"/usr/bin/python3"}
	if p, err := exec.LookPath("python3"); err == nil {
		candidates = append(candidates, p)
	}
	for _, p := range candidates {
		if exec.Command(p, "-c", "import fastapi, uvicorn, httpx").Run() == nil {
			return p
		}
	}
	t.Fatal("no python3 with FastAPI: apt-get install python3-fastapi python3-uvicorn python3-httpx (scripts/test.sh installs them)")
	return ""
}

// sessiond is a running sessiond process and an admin key for it.
type sessiond struct {
	URL, AdminURL, AdminKeyFile string
	logs                        *output
}

// refresh posts a refresh token to sessiond's public API and returns the
// status.
func (s sessiond) refresh(t *testing.T, token string) int {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"refresh_token": token})
	resp, err := http.Post(s.URL+"/api/v1/auth/refresh", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// endReason returns the reason sessiond logged when session id ended, or "".
func (s sessiond) endReason(id string) string {
	sc := bufio.NewScanner(strings.NewReader(s.logs.String()))
	for sc.Scan() {
		var l struct {
			Msg, Reason string
			SessionID   string `json:"session_id"`
		}
		if json.Unmarshal(sc.Bytes(), &l) == nil && l.Msg == "session ended" && l.SessionID == id {
			return l.Reason
		}
	}
	return ""
}

// startSessiond builds sessiond and starts it with external users, SQLite
// in a temporary directory and the test GeoIP file.
func startSessiond(t *testing.T) sessiond {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "sessiond")
	if out, err := exec.Command("go", "build", "-o", bin, "../../cmd/sessiond").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	env := []string{
		"PATH=" + os.Getenv("PATH"),
		"SESSIOND_DATA_DIR=" + filepath.Join(dir, "data"),
		"SESSIOND_USERS=external",
		"SESSIOND_ADDR=127.0.0.1:0",
		"SESSIOND_ADMIN_ADDR=127.0.0.1:0",
		"SESSIOND_GEOIP_DB=" + geoiptest.WriteSample(t),
	}

	newKey := exec.Command(bin, "admin-key", "new", "fastapi-example")
	newKey.Env = env
	key, err := newKey.Output()
	if err != nil {
		t.Fatalf("sessiond admin-key new: %v", err)
	}
	keyFile := filepath.Join(dir, "admin-key")
	if err := os.WriteFile(keyFile, key, 0o600); err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(bin)
	cmd.Env = env
	logs := start(t, cmd)
	// sessiond logs one "... listening" line with the address of each listener.
	addrs := map[string]string{}
	waitFor(t, "sessiond to listen", logs, func() bool {
		sc := bufio.NewScanner(strings.NewReader(logs.String()))
		for sc.Scan() {
			var l struct{ Msg, Addr string }
			if json.Unmarshal(sc.Bytes(), &l) == nil && strings.HasSuffix(l.Msg, "listening") && l.Addr != "" {
				addrs[l.Msg] = l.Addr
			}
		}
		return len(addrs) == 2
	})
	s := sessiond{AdminKeyFile: keyFile, logs: logs}
	for msg, addr := range addrs {
		if strings.Contains(msg, "admin") {
			s.AdminURL = "http://" + addr
		} else {
			s.URL = "http://" + addr
		}
	}
	if s.URL == "" || s.AdminURL == "" {
		t.Fatalf("listening lines %v: want the public and the admin listener", addrs)
	}
	return s
}

// startApp starts app.py under uvicorn on a free port and returns its URL.
// uvicorn believes the X-Forwarded-For of 127.0.0.1, where the test's
// requests come from, as it would the app's own proxy.
func startApp(t *testing.T, python string, s sessiond) string {
	t.Helper()
	port, err := freeport.Port()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(python, "-m", "uvicorn", "app:app",
		"--host", "127.0.0.1", "--port", strconv.Itoa(port), "--forwarded-allow-ips", "127.0.0.1")
	cmd.Env = append(os.Environ(),
		"SESSIOND_URL="+s.URL,
		"SESSIOND_ADMIN_URL="+s.AdminURL,
		"SESSIOND_ADMIN_KEY_FILE="+s.AdminKeyFile,
		"APP_DB="+filepath.Join(t.TempDir(), "app.db"),
	)
	logs := start(t, cmd)
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	waitFor(t, "the app to answer", logs, func() bool {
		resp, err := http.Get(base + "/openapi.json")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	return base
}

// start starts cmd, collecting its output, and kills it at cleanup.
func start(t *testing.T, cmd *exec.Cmd) *output {
	t.Helper()
	out := &output{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	out.exited = exited
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("%s:\n%s", filepath.Base(cmd.Path), out.String())
		}
	})
	return out
}

// waitFor polls ready for up to 30 s, failing early if the process exits.
// A failed test shows the output of its processes at cleanup.
func waitFor(t *testing.T, what string, logs *output, ready func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !ready() {
		select {
		case <-logs.exited:
			t.Fatalf("exited while waiting for %s", what) // its output follows
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited 30 s for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// output is a process's combined output, safe to read while it runs.
type output struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	exited <-chan struct{}
}

func (o *output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.Write(p)
}

func (o *output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}
