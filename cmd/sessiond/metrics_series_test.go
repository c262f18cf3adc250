package main

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/sessiond/sessiond/internal/sessiondtest"
)

// parseMetrics scrapes the admin listener's /metrics with the Prometheus
// text parser.
func parseMetrics(t *testing.T, base string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("/metrics does not parse: %v", err)
	}
	return fams
}

// sample returns the value of the series of family name whose labels
// include want (a counter's or gauge's value, a histogram's count), and
// whether it exists.
func sample(fams map[string]*dto.MetricFamily, name string, want map[string]string) (float64, bool) {
	f, ok := fams[name]
	if !ok {
		return 0, false
	}
next:
	for _, m := range f.Metric {
		labels := map[string]string{}
		for _, l := range m.Label {
			labels[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if labels[k] != v {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		}
	}
	return 0, false
}

// TestEveryMetricMovesWithItsEvent scrapes the new series with the
// Prometheus text parser and checks each one moves when its event happens:
// requests by route and status class with their latency, 429s by rule,
// open event streams, live sessions, sessions ended by reason, and the
// build.
func TestEveryMetricMovesWithItsEvent(t *testing.T) {
	ts := startServer(t, nil)
	c := sessiondtest.NewClient(t, ts.URL)
	c.Register("mia")
	g := c.Login("mia", nil)

	before := parseMetrics(t, ts.AdminURL)
	if v, ok := sample(before, "sessiond_build_info", map[string]string{}); !ok || v != 1 {
		t.Fatalf("sessiond_build_info: got %v (present %v), want 1", v, ok)
	}
	if f := before["sessiond_build_info"]; f == nil || len(f.Metric[0].Label) != 3 {
		t.Fatalf("sessiond_build_info labels: got %v, want version, revision, goversion", f)
	}
	me := map[string]string{"route": "GET /api/v1/me", "code": "2xx"}
	meBad := map[string]string{"route": "GET /api/v1/me", "code": "4xx"}
	rule := map[string]string{"rule": "login_account_address"}
	v0 := func(name string, l map[string]string) float64 { v, _ := sample(before, name, l); return v }
	live0, ok := sample(before, "sessiond_sessions_live", nil)
	if !ok || live0 != 1 {
		t.Fatalf("sessiond_sessions_live: got %v (present %v), want 1", live0, ok)
	}
	if v, ok := sample(before, "sessiond_event_streams_open", nil); !ok || v != 0 {
		t.Fatalf("sessiond_event_streams_open: got %v (present %v), want 0", v, ok)
	}
	if _, ok := sample(before, "sessiond_throttled_requests_total", rule); !ok {
		t.Fatal("sessiond_throttled_requests_total: no series for login_account_address before any 429")
	}

	second := c.Login("mia", map[string]string{"device_name": "phone"})
	c.Do("GET", "/api/v1/me", g.AccessToken, nil).Expect(t, 200)
	c.Do("GET", "/api/v1/me", g.AccessToken, nil).Expect(t, 200)
	c.Do("GET", "/api/v1/me", "forged", nil).Expect(t, 401)
	for range 10 {
		c.Attempt("mia", "wrong password")
	}
	c.Attempt("mia", "wrong password").Expect(t, 429)
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", ts.URL+"/api/v1/sessions/events", nil)
	req.Header.Set("Authorization", "Bearer "+g.AccessToken)
	stream, err := http.DefaultClient.Do(req)
	if err != nil || stream.StatusCode != 200 {
		t.Fatalf("event stream: %v %v", err, stream)
	}

	after := parseMetrics(t, ts.AdminURL)
	v1 := func(name string, l map[string]string) float64 { v, _ := sample(after, name, l); return v }
	for _, tc := range []struct {
		name   string
		labels map[string]string
		delta  float64
	}{
		{"sessiond_http_requests_total", me, 2},
		{"sessiond_http_requests_total", meBad, 1},
		{"sessiond_http_request_duration_seconds", map[string]string{"route": "GET /api/v1/me"}, 3},
		{"sessiond_throttled_requests_total", rule, 1},
		{"sessiond_event_streams_open", nil, 1},
		{"sessiond_sessions_live", nil, 1},
	} {
		if d := v1(tc.name, tc.labels) - v0(tc.name, tc.labels); d != tc.delta {
			t.Errorf("%s%v: moved by %v, want %v", tc.name, tc.labels, d, tc.delta)
		}
	}

	// The stream closes; a logout ends a session by its reason.
	cancel()
	stream.Body.Close()
	c.Do("POST", "/api/v1/auth/logout", second.AccessToken, nil).Expect(t, 200)
	deadline := time.Now().Add(5 * time.Second)
	for {
		now := parseMetrics(t, ts.AdminURL)
		open, _ := sample(now, "sessiond_event_streams_open", nil)
		ended, _ := sample(now, "sessiond_sessions_ended_total", map[string]string{"reason": "logout"})
		live, _ := sample(now, "sessiond_sessions_live", nil)
		if open == 0 && ended == 1 && live == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the stream closed and a logout: open streams %v, ended by logout %v, live %v; want 0, 1, 1", open, ended, live)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Names follow the Prometheus conventions: counters end in _total,
	// durations are in seconds.
	for name, f := range after {
		if !strings.HasPrefix(name, "sessiond_") {
			continue
		}
		switch f.GetType() {
		case dto.MetricType_COUNTER:
			if !strings.HasSuffix(name, "_total") {
				t.Errorf("counter %s does not end in _total", name)
			}
		case dto.MetricType_HISTOGRAM:
			if !strings.HasSuffix(name, "_seconds") {
				t.Errorf("histogram %s is not in seconds", name)
			}
		}
	}
}
