package main

import (
	"io"
	"net/http"
	"testing"
)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestPprofOnlyOnAdminWhenAsked: the profiles are served on the admin
// listener with SESSIOND_PPROF=true, never on the public listener, and not
// at all by default; the admin listener's own routes stay as they were.
func TestPprofOnlyOnAdminWhenAsked(t *testing.T) {
	on := startServer(t, map[string]string{"SESSIOND_PPROF": "true"})
	if code, body := get(t, on.AdminURL+"/debug/pprof/cmdline"); code != http.StatusOK || body == "" {
		t.Errorf("admin /debug/pprof/cmdline with SESSIOND_PPROF=true: %d %q, want 200", code, body)
	}
	if code, _ := get(t, on.AdminURL+"/debug/pprof/"); code != http.StatusOK {
		t.Errorf("admin /debug/pprof/ with SESSIOND_PPROF=true: %d, want 200", code)
	}
	if code, _ := get(t, on.AdminURL+"/metrics"); code != http.StatusOK {
		t.Errorf("admin /metrics with SESSIOND_PPROF=true: %d, want 200", code)
	}
	if code, _ := get(t, on.URL+"/debug/pprof/cmdline"); code == http.StatusOK {
		t.Errorf("public /debug/pprof/cmdline with SESSIOND_PPROF=true: 200, want it absent")
	}
	off := startServer(t, nil)
	if code, _ := get(t, off.AdminURL+"/debug/pprof/cmdline"); code == http.StatusOK {
		t.Errorf("admin /debug/pprof/cmdline without SESSIOND_PPROF: 200, want it absent")
	}
}
