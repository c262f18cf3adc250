package main

import (
	"bufio"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/sessiond/sessiond/internal/sessiondtest"
)

// scrape returns the samples of /metrics (on the admin listener at base), keyed by series as exposed
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

	before := scrape(t, ts.AdminURL)
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

	got := scrape(t, ts.AdminURL)
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
