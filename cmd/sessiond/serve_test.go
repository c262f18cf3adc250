package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/sessiond/sessiond/internal/sessiondtest"
)

// TestRestartKeepsTokens shows the signing and refresh keys persist in the
// data directory.
func TestRestartKeepsTokens(t *testing.T) {
	dir := t.TempDir()
	env := map[string]string{"SESSIOND_DATA_DIR": dir}
	ts := startServer(t, env)
	c := sessiondtest.NewClient(t, ts.URL)
	c.Register("mia")
	g := c.Login("mia", nil)
	if err := ts.stop(); err != nil {
		t.Fatalf("graceful stop: %v", err)
	}
	ts2 := startServer(t, env)
	c2 := sessiondtest.NewClient(t, ts2.URL)
	c2.Do("GET", "/api/v1/me", g.AccessToken, nil).Expect(t, 200)
	c2.Do("POST", "/api/v1/auth/refresh", "", map[string]string{"refresh_token": g.RefreshToken}).Expect(t, 200)
	for _, name := range []string{"signing-key.pem", "refresh-key"} {
		if b := mustReadFile(t, dir+"/"+name); len(b) == 0 {
			t.Fatalf("%s is empty", name)
		}
	}
}

func TestBadConfigurationIsRefused(t *testing.T) {
	for _, env := range []map[string]string{
		{"SESSIOND_ACCESS_TTL": "fifteen"},
		{"SESSIOND_SESSION_LIMIT_POLICY": "maybe"},
		{"SESSIOND_MAX_SESSIONS": "-1"},
		{"SESSIOND_MAX_SESSIONS": "0"},
		{"SESSIOND_MAX_SESSIONS": "10001"},
		{"SESSIOND_TRUSTED_PROXIES": "10.0.0.0/99"},
		{"SESSIOND_ISSUER": " "},
		{"SESSIOND_REFRESH_GRACE": "-1s"},
		{"SESSIOND_REDIS_TIMEOUT": "0s"},
		{"SESSIOND_REDIS_REPLICA_ACKS": "-1"},
		{"SESSIOND_REDIS_REPLICA_ACKS": "one"},
		{"SESSIOND_PUBLIC_URL": "auth.example.com"},
		{"SESSIOND_ADMIN_ADDR": "8081"},
		{"SESSIOND_ADMIN_ADDR": "no-such-host.invalid:8081"},
		{"SESSIOND_PUBLIC_URL": "https://auth.example.com/login"},
	} {
		getenv := func(k string) string {
			if k == "SESSIOND_DATA_DIR" {
				return t.TempDir()
			}
			if v, ok := env[k]; ok {
				return v
			}
			if k == "SESSIOND_ADDR" || k == "SESSIOND_ADMIN_ADDR" {
				return "127.0.0.1:0"
			}
			return env[k]
		}
		var out bytes.Buffer
		err := run(t.Context(), nil, getenv, strings.NewReader(""), &out, &out)
		if err == nil {
			t.Fatalf("%v: started", env)
		}
		for k := range env {
			if !strings.Contains(err.Error(), k) {
				t.Fatalf("%v: error %q does not name the variable", env, err)
			}
		}
	}
}
