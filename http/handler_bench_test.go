package http_test

import (
	"io"
	"log/slog"
	"net/http"
	"testing"

	sessiondhttp "github.com/sessiond/sessiond/http"
	"github.com/sessiond/sessiond/prometheus"
)

// discardWriter is the cheapest http.ResponseWriter: the benchmark below
// measures the handlers, not a recorder.
type discardWriter struct {
	h      http.Header
	status int
}

func (w *discardWriter) Header() http.Header { return w.h }
func (w *discardWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return len(b), nil
}
func (w *discardWriter) WriteHeader(status int) { w.status = status }

// benchPath is a GET a handler benchmark sends, with its Bearer token
// ("" for none).
type benchPath struct{ name, path, token string }

// benchPaths runs one sub-benchmark per path: GET it from h, answered 200.
func benchPaths(b *testing.B, h http.Handler, paths []benchPath) {
	for _, tc := range paths {
		b.Run("path="+tc.name, func(b *testing.B) {
			req, err := http.NewRequest(http.MethodGet, "http://sessiond.test"+tc.path, nil)
			if err != nil {
				b.Fatal(err)
			}
			if tc.token != "" {
				req.Header.Set("Authorization", "Bearer "+tc.token)
			}
			req.RemoteAddr = "192.0.2.1:40000"
			b.ReportAllocs()
			for b.Loop() {
				w := &discardWriter{h: make(http.Header, 4)}
				h.ServeHTTP(w, req)
				if w.status != http.StatusOK {
					b.Fatalf("GET %s: %d", tc.path, w.status)
				}
			}
		})
	}
}

// BenchmarkHandler runs the whole handler chain of GET /api/v1/me (token,
// session and user checks, the answer) and of the public JWKS, without a
// network, so that
//
//	go test ./http -run '^$' -bench Handler -count 6 | benchstat -col /path -
//
// shows what /me costs beyond the JWKS on the server, the part of the
// throughput ratio of bench/ that the handlers decide.
func BenchmarkHandler(b *testing.B) {
	m, g, _ := signedIn(b)
	srv := sessiondhttp.NewServer(m)
	srv.Logger = slog.New(slog.DiscardHandler)
	benchPaths(b, srv.Handler(), []benchPath{
		{"me", "/api/v1/me", g.AccessToken},
		{"jwks", "/.well-known/jwks.json", ""},
	})
}

// BenchmarkServerChain is BenchmarkHandler with what the binary adds to
// every request: Prometheus metrics and a JSON access log line (written to
// io.Discard: the cost of the line, not of the disk). Paths: /me, the
// forward-auth check and the JWKS, so that
//
//	go test ./http -run '^$' -bench ServerChain -count 6 | benchstat -
//
// shows the binary's per-request work without a network.
func BenchmarkServerChain(b *testing.B) {
	m, g, _ := signedIn(b)
	srv := sessiondhttp.NewServer(m)
	srv.Logger = slog.New(slog.NewJSONHandler(io.Discard, nil))
	srv.Metrics = prometheus.New()
	benchPaths(b, srv.Handler(), []benchPath{
		{"me", "/api/v1/me", g.AccessToken},
		{"check", "/api/v1/auth/check", g.AccessToken},
		{"jwks", "/.well-known/jwks.json", ""},
	})
}
