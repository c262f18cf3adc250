package http_test

import (
	"log/slog"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	sessiondhttp "github.com/sessiond/sessiond/http"
	"github.com/sessiond/sessiond/internal/adminkey"
)

// BenchmarkIntrospect and BenchmarkAuthCheck run the whole handler chain of
// POST /admin/v1/introspect (admin key, form body, token and session
// checks, the RFC 7662 answer) and of GET /api/v1/auth/check for the same
// token on the same Manager, without a network, so that
//
//	go test ./http -run '^$' -bench 'Introspect|AuthCheck' -count 5
//
// gives the cost of introspection as a ratio to forward auth, measured in
// one run.
func BenchmarkIntrospect(b *testing.B) {
	m, g, _ := signedIn(b)
	path := filepath.Join(b.TempDir(), "admin-keys")
	key, err := adminkey.New(path, "bench")
	if err != nil {
		b.Fatal(err)
	}
	keys, err := adminkey.Open(path, nil)
	if err != nil {
		b.Fatal(err)
	}
	admin := sessiondhttp.NewAdminServer(m, keys)
	admin.Logger = slog.New(slog.DiscardHandler)
	h := admin.Handler()
	body := url.Values{"token": {g.AccessToken}}.Encode()
	b.ReportAllocs()
	for b.Loop() {
		req, err := http.NewRequest(http.MethodPost, "http://sessiond.test/admin/v1/introspect", strings.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.RemoteAddr = "192.0.2.1:40000"
		w := &discardWriter{h: make(http.Header, 4)}
		h.ServeHTTP(w, req)
		if w.status != http.StatusOK {
			b.Fatalf("POST /admin/v1/introspect: %d", w.status)
		}
	}
}

func BenchmarkAuthCheck(b *testing.B) {
	m, g, _ := signedIn(b)
	srv := sessiondhttp.NewServer(m)
	srv.Logger = slog.New(slog.DiscardHandler)
	h := srv.Handler()
	b.ReportAllocs()
	for b.Loop() {
		// A new request each time, as for introspection, so that the two
		// differ only in what the handlers do.
		req, err := http.NewRequest(http.MethodGet, "http://sessiond.test/api/v1/auth/check", nil)
		if err != nil {
			b.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+g.AccessToken)
		req.RemoteAddr = "192.0.2.1:40000"
		w := &discardWriter{h: make(http.Header, 4)}
		h.ServeHTTP(w, req)
		if w.status != http.StatusOK {
			b.Fatalf("GET /api/v1/auth/check: %d", w.status)
		}
	}
}
