package main

import (
	"bufio"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/sessiond/sessiond"
	sessiondhttp "github.com/sessiond/sessiond/http"
	"github.com/sessiond/sessiond/internal/sessiondtest"
	"github.com/sessiond/sessiond/sqlite"
)

// scrape returns the samples of /metrics, keyed by series as exposed
// (name{label="value",...}).
func scrape(t *testing.T, base string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("/metrics: got %d %q, want 200 text/plain", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	samples := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("/metrics line %q: %v", line, err)
		}
		samples[line[:i]] = v
	}
	return samples
}

// TestMetricsCountWhatHappened drives a login, a failed login, refreshes, a
// refresh token reuse, a revocation and validations through the API, and
// checks each counter of /metrics.
func TestMetricsCountWhatHappened(t *testing.T) {
	ts := startServer(t, nil)
	c := sessiondtest.NewClient(t, ts.URL)
	c.Register("heidi")

	before := scrape(t, ts.URL)
	for _, series := range []string{`sessiond_logins_total{result="success"}`, `sessiond_logins_total{result="failure"}`, `sessiond_refreshes_total{result="success"}`, `sessiond_refresh_reuse_detected_total`} {
		if v, ok := before[series]; !ok || v != 0 {
			t.Fatalf("fresh server: %s got %v (present %v), want 0", series, v, ok)
		}
	}

	laptop := c.Login("heidi", nil)
	phone := c.Login("heidi", nil)
	c.Do("POST", "/api/v1/auth/login", "", map[string]string{"username": "heidi", "password": "wrong password"}).Expect(t, 401)
	c.Do("POST", "/api/v1/auth/refresh", "", map[string]string{"refresh_token": "sdr1.garbage"}).Expect(t, 401)

	// Two rotations, then the first token again: outside the grace of the
	// previous generation, so it is reuse and ends the session.
	var g2, g3 sessiondtest.Grant
	c.Do("POST", "/api/v1/auth/refresh", "", map[string]string{"refresh_token": laptop.RefreshToken}).Expect(t, 200).Decode(t, &g2)
	c.Do("POST", "/api/v1/auth/refresh", "", map[string]string{"refresh_token": g2.RefreshToken}).Expect(t, 200).Decode(t, &g3)
	c.Do("POST", "/api/v1/auth/refresh", "", map[string]string{"refresh_token": laptop.RefreshToken}).Expect(t, 401)

	tablet := c.Login("heidi", nil)
	c.Do("DELETE", "/api/v1/sessions/"+phone.Session.ID, tablet.AccessToken, nil).Expect(t, 200)
	c.Do("GET", "/api/v1/me", phone.AccessToken, nil).Expect(t, 401)

	got := scrape(t, ts.URL)
	want := map[string]float64{
		`sessiond_logins_total{result="success"}`:                      3,
		`sessiond_logins_total{result="failure"}`:                      1,
		`sessiond_refreshes_total{result="success"}`:                   2,
		`sessiond_refreshes_total{result="failure"}`:                   1,
		`sessiond_refresh_reuse_detected_total`:                        1,
		`sessiond_sessions_ended_total{reason="revoked"}`:              1,
		`sessiond_sessions_ended_total{reason="reuse_detected"}`:       1,
		`sessiond_validation_duration_seconds_count{result="valid"}`:   1,
		`sessiond_validation_duration_seconds_count{result="invalid"}`: 1,
		`sessiond_store_errors_total`:                                  0,
		// Every login verifies a password, the failed one too.
		`sessiond_password_verify_duration_seconds_count`: 4,
	}
	for series, w := range want {
		if v, ok := got[series]; !ok || v != w {
			t.Errorf("%s: got %v (present %v), want %v", series, v, ok, w)
		}
	}
	if got[`sessiond_validation_duration_seconds_sum{result="valid"}`] <= 0 {
		t.Errorf("validation latency sum: got %v, want > 0", got[`sessiond_validation_duration_seconds_sum{result="valid"}`])
	}
	if got[`sessiond_password_verify_duration_seconds_sum`] <= 0 {
		t.Errorf("password verification time sum: got %v, want > 0", got[`sessiond_password_verify_duration_seconds_sum`])
	}
	if _, ok := got["go_goroutines"]; !ok {
		t.Errorf("go_goroutines missing: the runtime collector is not registered")
	}
}

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
// uses the HTTP layer on the real stores rather than the binary, since a
// running server's open SQLite file cannot be taken away cheaply.
func TestReadyzFailsWhenSQLiteIsClosed(t *testing.T) {
	db, err := sqlite.Open(filepath.Join(t.TempDir(), "sessiond.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	sk, err := sessiond.GenerateSigningKey()
	if err != nil {
		t.Fatal(err)
	}
	rk, err := sessiond.GenerateRefreshKey()
	if err != nil {
		t.Fatal(err)
	}
	m := sessiond.NewManager(sqlite.NewSessionStore(db), sqlite.NewUserStore(db), sessiond.NewAccessTokens("sessiond", sk), sessiond.NewRefreshTokens(rk))
	m.Logger = slog.New(slog.DiscardHandler)
	srv := sessiondhttp.NewServer(m)
	srv.Logger = m.Logger
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)

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
