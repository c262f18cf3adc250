// Package prometheus exports sessiond's measurements in the Prometheus
// text format.
package prometheus

import (
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sessiond/sessiond"
	sessiondhttp "github.com/sessiond/sessiond/http"
)

// Metrics counts logins, refreshes, reuse detections, ended sessions by
// reason, store errors and validation latency. It is a sessiond.Observer
// and a sessiondhttp.Metrics.
type Metrics struct {
	reg        *prometheus.Registry
	logins     *prometheus.CounterVec
	refreshes  *prometheus.CounterVec
	reuse      prometheus.Counter
	ended      *prometheus.CounterVec
	storeErrs  prometheus.Counter
	validation *prometheus.HistogramVec
	hash       prometheus.Histogram
	// valid and invalid are validation's two series, resolved once: every
	// authenticated request observes one, and looking a series up by its
	// label costs more than the observation.
	valid, invalid prometheus.Observer
	requests       *prometheus.CounterVec
	latency        *prometheus.HistogramVec
	throttled      *prometheus.CounterVec
	buildInfo      *prometheus.GaugeVec
	outbox         *outbox
	// routes caches the request series of each route (a *routeSeries).
	routes sync.Map
}

var (
	_ sessiond.Observer    = (*Metrics)(nil)
	_ sessiondhttp.Metrics = (*Metrics)(nil)
)

// New returns Metrics registered on a new registry, with the Go runtime
// and process collectors.
func New() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		logins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sessiond_logins_total", Help: "Sign-in attempts by result (success or failure).",
		}, []string{"result"}),
		refreshes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sessiond_refreshes_total", Help: "Refresh token exchanges by result (success or failure).",
		}, []string{"result"}),
		reuse: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sessiond_refresh_reuse_detected_total", Help: "Sessions revoked because an old refresh token was replayed.",
		}),
		ended: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sessiond_sessions_ended_total", Help: "Sessions ended, by reason.",
		}, []string{"reason"}),
		storeErrs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sessiond_store_errors_total", Help: "Requests answered 503 because a store failed or did not answer.",
		}),
		validation: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "sessiond_validation_duration_seconds",
			Help:    "Time to validate an access token and its session, by result (valid or invalid).",
			Buckets: []float64{5e-6, 10e-6, 25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 100e-3},
		}, []string{"result"}),
	}
	m.hash = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "sessiond_password_verify_duration_seconds",
		Help:    "Time a login (or the current password of a password change) spent verifying its password (argon2id, with any wait for a free hashing slot), failed logins and unknown users included.",
		Buckets: []float64{5e-3, 10e-3, 15e-3, 20e-3, 25e-3, 30e-3, 40e-3, 50e-3, 75e-3, 100e-3, 250e-3, 500e-3, 1},
	})
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sessiond_http_requests_total",
		Help: "HTTP requests answered, by route pattern (\"\" when none matched) and status class (2xx, 3xx, 4xx, 5xx).",
	}, []string{"route", "code"})
	m.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "sessiond_http_request_duration_seconds",
		Help:    "Time to answer an HTTP request, by route pattern; event streams count until they end.",
		Buckets: []float64{50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 100e-3, 250e-3, 500e-3, 1, 2.5},
	}, []string{"route"})
	m.throttled = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sessiond_throttled_requests_total",
		Help: "Requests answered 429, by throttle rule (login_account_address, login_account, login_address, register, failed_refresh, session_refresh, unknown_revoke, admin_auth) or too_many_streams.",
	}, []string{"rule"})
	m.buildInfo = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "sessiond_build_info",
		Help: "Always 1; its labels say which build is running.",
	}, []string{"version", "revision", "goversion"})
	for _, rule := range append(sessiond.ThrottleRules, "too_many_streams") {
		m.throttled.WithLabelValues(rule)
	}
	m.reg.MustRegister(m.requests, m.latency, m.throttled, m.buildInfo)
	m.outbox = newOutbox()
	m.reg.MustRegister(m.outbox.delivered, m.outbox.retried, m.outbox.dropped, m.outbox.age)
	m.reg.MustRegister(m.logins, m.refreshes, m.reuse, m.ended, m.storeErrs, m.validation, m.hash,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.valid = m.validation.WithLabelValues("valid")
	m.invalid = m.validation.WithLabelValues("invalid")
	for _, r := range []string{"success", "failure"} {
		m.logins.WithLabelValues(r)
		m.refreshes.WithLabelValues(r)
	}
	return m
}

// SetBuildInfo sets sessiond_build_info's labels.
func (m *Metrics) SetBuildInfo(version, revision, goVersion string) {
	m.buildInfo.Reset()
	m.buildInfo.WithLabelValues(version, revision, goVersion).Set(1)
}

// statusClasses are the values of the code label, by status / 100 - 1.
var statusClasses = [5]string{"1xx", "2xx", "3xx", "4xx", "5xx"}

// routeSeries are the request series of one route, resolved once: looking
// a series up by its labels (hashing them, a locked map) cost more than
// the observation itself on every request (a CPU profile of the binary
// under load). The counters of each class are made when first used, so a
// scrape shows the same series as before.
type routeSeries struct {
	latency prometheus.Observer
	codes   [len(statusClasses)]atomic.Pointer[prometheus.Counter]
}

// series returns route's series, made on its first request. Routes are the
// mux's patterns (and ""), a fixed set.
func (m *Metrics) series(route string) *routeSeries {
	if v, ok := m.routes.Load(route); ok {
		return v.(*routeSeries)
	}
	v, _ := m.routes.LoadOrStore(route, &routeSeries{latency: m.latency.WithLabelValues(route)})
	return v.(*routeSeries)
}

// Request implements sessiondhttp.Metrics.
func (m *Metrics) Request(route string, status int, d time.Duration) {
	class := len(statusClasses) - 1
	if status >= 100 && status < 500 {
		class = status/100 - 1
	}
	rs := m.series(route)
	c := rs.codes[class].Load()
	if c == nil {
		n := m.requests.WithLabelValues(route, statusClasses[class])
		rs.codes[class].CompareAndSwap(nil, &n)
		c = rs.codes[class].Load()
	}
	(*c).Inc()
	rs.latency.Observe(d.Seconds())
}

// Throttled implements sessiondhttp.Metrics.
func (m *Metrics) Throttled(rule string) { m.throttled.WithLabelValues(rule).Inc() }

// Registry returns the registry, to add collectors of one's own.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the metrics.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

func result(ok bool, yes, no string) string {
	if ok {
		return yes
	}
	return no
}

// Login implements sessiond.Observer.
func (m *Metrics) Login(ok bool) { m.logins.WithLabelValues(result(ok, "success", "failure")).Inc() }

// Refresh implements sessiond.Observer.
func (m *Metrics) Refresh(ok bool) {
	m.refreshes.WithLabelValues(result(ok, "success", "failure")).Inc()
}

// ReuseDetected implements sessiond.Observer.
func (m *Metrics) ReuseDetected() { m.reuse.Inc() }

// Ended implements sessiond.Observer.
func (m *Metrics) Ended(reason sessiond.Reason, n int) {
	m.ended.WithLabelValues(string(reason)).Add(float64(n))
}

// Validation implements sessiondhttp.Metrics.
func (m *Metrics) Validation(d time.Duration, ok bool) {
	if ok {
		m.valid.Observe(d.Seconds())
	} else {
		m.invalid.Observe(d.Seconds())
	}
}

// PasswordVerified implements sessiond.Observer.
func (m *Metrics) PasswordVerified(d time.Duration) { m.hash.Observe(d.Seconds()) }

// StoreError implements sessiondhttp.Metrics.
func (m *Metrics) StoreError() { m.storeErrs.Inc() }

// GaugeFunc exports a gauge whose value f returns when scraped, such as
// the open event streams of an HTTP server.
func (m *Metrics) GaugeFunc(name, help string, f func() float64) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f))
}
