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
		Duration  float64 `json:"duration"`
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
