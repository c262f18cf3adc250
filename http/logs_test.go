package http_test

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/sessiond/sessiond/internal/sessiondtest"
)

// TestRequestLogCarriesRequestID checks that the JSON log line of a request
// carries the X-Request-Id its response had, and that no token reaches the
// log.
func TestRequestLogCarriesRequestID(t *testing.T) {
	ts := startServer(t, nil)
	c := sessiondtest.NewClient(t, ts.URL)
	c.Register("ivan")
	g := c.Login("ivan", nil)
	r := c.Do("GET", "/api/v1/me", g.AccessToken, nil).Expect(t, 200)
	id := r.Header.Get("X-Request-Id")
	bad := c.Do("GET", "/api/v1/sessions", "forged", nil).Expect(t, 401)
	badID := bad.Header.Get("X-Request-Id")
	if id == "" || badID == "" || id == badID {
		t.Fatalf("X-Request-Id: got %q and %q, want two different ids", id, badID)
	}

	type line struct {
		Level     string  `json:"level"`
		Msg       string  `json:"msg"`
		RequestID string  `json:"request_id"`
		Method    string  `json:"method"`
		Path      string  `json:"path"`
		Status    int     `json:"status"`
		Duration  float64 `json:"duration_ms"`
	}
	found := map[string]line{}
	for _, raw := range strings.Split(strings.TrimSpace(ts.Logs.String()), "\n") {
		var l line
		if err := json.Unmarshal([]byte(raw), &l); err != nil {
			t.Fatalf("log line is not JSON: %q: %v", raw, err)
		}
		if l.Msg == "request" {
			found[l.RequestID] = l
		}
	}
	if l, ok := found[id]; !ok || l.Method != "GET" || l.Path != "/api/v1/me" || l.Status != 200 || l.Level != "INFO" {
		t.Errorf("log line of request %s: got %+v (found %v), want GET /api/v1/me 200", id, l, ok)
	}
	// Milliseconds: a request over loopback takes well under 10 s, and a
	// value in nanoseconds or microseconds would be far larger than that.
	if l := found[id]; l.Duration <= 0 || l.Duration > 10_000 {
		t.Errorf("duration_ms of request %s: got %v, want milliseconds", id, l.Duration)
	}
	if l, ok := found[badID]; !ok || l.Path != "/api/v1/sessions" || l.Status != 401 {
		t.Errorf("log line of request %s: got %+v (found %v), want GET /api/v1/sessions 401", badID, l, ok)
	}
	logs := ts.Logs.String()
	for what, secret := range map[string]string{"access token": g.AccessToken, "refresh token": g.RefreshToken, "password": sessiondtest.Password} {
		if strings.Contains(logs, secret) {
			t.Errorf("the log contains the %s", what)
		}
	}
}

// TestReadyzFailsWhenSQLiteIsClosed checks /readyz over the SQLite stores:
// 200 while the file answers, 503 with Retry-After once it does not. It
// closes the SQLite file under the running server.
func TestReadyzFailsWhenSQLiteIsClosed(t *testing.T) {
	ts := sessiondtest.StartServer(t, sessiondtest.Options{NoLimiter: true, Logger: slog.New(slog.DiscardHandler)}, nil)
	db := ts.DB

	readyz := func() (int, string, string) {
		resp, err := http.Get(ts.URL + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get("Retry-After"), string(b)
	}
	if code, _, body := readyz(); code != 200 {
		t.Fatalf("open store: got %d %s, want 200", code, body)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	code, retry, body := readyz()
	if code != 503 || retry == "" || !strings.Contains(body, `"status_code":503`) {
		t.Fatalf("closed store: got %d (Retry-After %q) %s, want 503 with Retry-After in the envelope", code, retry, body)
	}
}

// logLines returns the JSON lines of logs whose msg is msg.
func logLines(t *testing.T, logs, msg string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, raw := range strings.Split(strings.TrimSpace(logs), "\n") {
		var l map[string]any
		if err := json.Unmarshal([]byte(raw), &l); err != nil {
			t.Fatalf("log line is not JSON: %q: %v", raw, err)
		}
		if l["msg"] == msg {
			out = append(out, l)
		}
	}
	return out
}

// TestSecurityEventsAreLogged checks the lines an operator alerts on and
// fail2ban-style tools act on: failed sign-ins, every 429 with its rule,
// and refresh token reuse at WARN, each with the client address and the
// user when known, never a password or token.
func TestSecurityEventsAreLogged(t *testing.T) {
	ts := startServer(t, nil)
	c := sessiondtest.NewClient(t, ts.URL)
	u := c.Register("wendy")
	for range 10 {
		c.Attempt("wendy", "wrong password 1").Expect(t, 401)
	}
	c.Attempt("wendy", "wrong password 1").Expect(t, 429)
	c.Attempt("nobody-at-all", "wrong password 2").Expect(t, 401)

	failed := logLines(t, ts.Logs.String(), "sign-in failed")
	if len(failed) != 11 {
		t.Fatalf("sign-in failed lines: got %d, want 11 (10 for wendy, 1 for an unknown name)", len(failed))
	}
	for i, l := range failed {
		wantUser := u.ID
		if i == 10 {
			wantUser = ""
		}
		if l["level"] != "WARN" || l["client_ip"] != "127.0.0.1" || (l["user_id"] != nil && l["user_id"] != wantUser) || (wantUser != "" && l["user_id"] != wantUser) {
			t.Fatalf("sign-in failed line %d: got %v, want WARN, client_ip 127.0.0.1, user_id %q", i, l, wantUser)
		}
	}
	th := logLines(t, ts.Logs.String(), "throttled")
	if len(th) != 1 || th[0]["level"] != "WARN" || th[0]["rule"] != "login_account_address" || th[0]["client_ip"] != "127.0.0.1" || th[0]["user_id"] != u.ID {
		t.Fatalf("throttled lines: got %v, want one WARN line with rule login_account_address, client_ip and user_id", th)
	}

	// Reuse: a refresh token two generations old.
	v := c.Register("vera")
	g := c.Login("vera", nil)
	var g2 sessiondtest.Grant
	c.PostRefresh(g.RefreshToken).Expect(t, 200).Decode(t, &g2)
	c.PostRefresh(g2.RefreshToken).Expect(t, 200)
	c.PostRefresh(g.RefreshToken).Expect(t, 401)
	reuse := logLines(t, ts.Logs.String(), "refresh token reuse detected: ending the session")
	if len(reuse) != 1 || reuse[0]["level"] != "WARN" || reuse[0]["session_id"] != g.Session.ID || reuse[0]["user_id"] != v.ID || reuse[0]["client_ip"] != "127.0.0.1" {
		t.Fatalf("reuse lines: got %v, want one WARN line naming the session, user and address", reuse)
	}
	logs := ts.Logs.String()
	for what, secret := range map[string]string{"password": "wrong password", "refresh token": g.RefreshToken, "unknown login": "nobody-at-all"} {
		if strings.Contains(logs, secret) {
			t.Errorf("the log contains the %s", what)
		}
	}
}
