package main

import (
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// The login scenario reads the server's request log, which slog's JSON
// handler writes, as cmd/sessiond configures it.
func TestLoginLogLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sessiond.log")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	log := slog.New(slog.NewJSONHandler(f, nil))
	line := func(method, path string, status int, d time.Duration) {
		// As the server writes it: milliseconds, to the microsecond.
		log.Info("request", "request_id", "x", "method", method, "path", path, "status", status, "duration_ms", float64(d.Microseconds())/1000)
	}
	line(http.MethodPost, "/api/v1/auth/login", 200, 40*time.Millisecond) // the warm-up
	_, start, err := loginLogLines(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	line(http.MethodPost, "/api/v1/auth/login", 200, 31*time.Millisecond)
	line(http.MethodGet, "/api/v1/me", 200, time.Millisecond)
	log.Info("sessiond listening", "addr", "127.0.0.1:1")
	line(http.MethodPost, "/api/v1/auth/login", 200, 33500*time.Microsecond)
	ds, _, err := loginLogLines(path, start)
	if err != nil {
		t.Fatal(err)
	}
	if want := []time.Duration{31 * time.Millisecond, 33500 * time.Microsecond}; !slices.Equal(ds, want) {
		t.Errorf("got %v, want %v", ds, want)
	}
	line(http.MethodPost, "/api/v1/auth/login", 429, time.Millisecond)
	if _, _, err := loginLogLines(path, start); err == nil {
		t.Error("a refused login was counted")
	}
}

func TestLoginReportedWithoutTarget(t *testing.T) {
	rep := fakeReport([]string{"login"}, "-scenarios", "login")
	md := rep.markdown("", "")
	for _, want := range []string{
		"| login: server time beyond the argon2id hash, sessions in SQLite (share of the login in the server / as the client saw it) | 2.00 ms (6.5% / 12.1%) | (reported) | |",
		"| SQLite | 31.00 ms | 29.00 ms | **2.00 ms** | 6.5% |",
		"`/metrics` on each server's own address",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("the report has no %q:\n%s", want, md)
		}
	}
	if strings.Contains(md, "missed") {
		t.Errorf("the login figure has a target:\n%s", md)
	}
}
