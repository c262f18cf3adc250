package main

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
	"time"
)

// runCLI runs "sessiond args..." with env and returns what it printed.
func runCLI(t *testing.T, env map[string]string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	getenv := func(k string) string { return env[k] }
	var out, errb bytes.Buffer
	err = run(t.Context(), args, getenv, strings.NewReader(""), &out, &errb)
	return out.String(), errb.String(), err
}

func TestVersionCommand(t *testing.T) {
	for _, args := range [][]string{{"version"}, {"--version"}, {"-version"}} {
		out, errOut, err := runCLI(t, nil, args...)
		if err != nil || errOut != "" {
			t.Fatalf("%q: got error %v, stderr %q; want success", args, err, errOut)
		}
		if !strings.HasPrefix(out, "sessiond ") || !strings.Contains(out, " commit ") || !strings.HasSuffix(out, " "+runtime.Version()+"\n") {
			t.Fatalf("%q: got %q, want sessiond VERSION commit COMMIT %s", args, out, runtime.Version())
		}
	}
	if _, _, err := runCLI(t, nil, "version", "extra"); err == nil {
		t.Fatal("version extra: got success, want an error")
	}
}

func TestFormatVersion(t *testing.T) {
	vcs := func(kv ...string) []debug.BuildSetting {
		var s []debug.BuildSetting
		for i := 0; i < len(kv); i += 2 {
			s = append(s, debug.BuildSetting{Key: kv[i], Value: kv[i+1]})
		}
		return s
	}
	for _, tt := range []struct {
		name string
		bi   *debug.BuildInfo
		want string
	}{
		{"release", &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "v1.2.3"},
			Settings: vcs("vcs.revision", "0123abcd", "vcs.modified", "false")},
			"sessiond v1.2.3 commit 0123abcd go1.26.0"},
		{"dirty tree", &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "(devel)"},
			Settings: vcs("vcs.revision", "0123abcd", "vcs.modified", "true")},
			"sessiond (devel) commit 0123abcd-dirty go1.26.0"},
		{"go run, no vcs", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}},
			"sessiond (devel) commit unknown go1.99"},
		{"no build info", nil, "sessiond unknown commit unknown go1.99"},
	} {
		if got := formatVersion(tt.bi, "go1.99"); got != tt.want {
			t.Errorf("%s: got %q, want %q", tt.name, got, tt.want)
		}
	}
}

// TestHelpExitsZero: help that was asked for is printed to stdout and
// the command succeeds (exit status 0), on every command.
func TestHelpExitsZero(t *testing.T) {
	env := map[string]string{"SESSIOND_DATA_DIR": filepath.Join(t.TempDir(), "data")}
	cmds := [][]string{{}, {"serve"}, {"user"}, {"sessions"}, {"admin-key"}, {"version"}, {"healthcheck"}}
	for _, c := range commands {
		cmds = append(cmds, strings.Fields(c.name))
	}
	for _, cmd := range cmds {
		for _, h := range []string{"-h", "--help"} {
			args := append(append([]string(nil), cmd...), h)
			out, errOut, err := runCLI(t, env, args...)
			if err != nil || errOut != "" {
				t.Errorf("%q: got error %v, stderr %q; want success", args, err, errOut)
				continue
			}
			if !strings.Contains(out, "Usage") || !strings.Contains(out, "sessiond "+strings.Join(cmd, " ")) {
				t.Errorf("%q: got stdout %q, want the usage of the command", args, out)
			}
		}
	}
	// The data directory is not created by asking for help.
	if _, err := os.Stat(env["SESSIOND_DATA_DIR"]); !os.IsNotExist(err) {
		t.Fatalf("data directory after help: got %v, want none", err)
	}
	// A wrong flag is still an error, on stderr.
	_, errOut, err := runCLI(t, env, "serve", "--no-such-flag")
	if err == nil || !strings.Contains(errOut, "flag provided but not defined") {
		t.Fatalf("serve --no-such-flag: got %v, stderr %q; want a usage error", err, errOut)
	}
}

func TestHealthcheck(t *testing.T) {
	ts := startServer(t, nil)
	u, err := url.Parse(ts.URL)
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(u.Host)
	// The server listens on 127.0.0.1: the forms that mean every interface
	// reach it on the loopback.
	for _, addr := range []string{u.Host, ":" + port, "0.0.0.0:" + port} {
		if _, errOut, err := runCLI(t, map[string]string{"SESSIOND_ADDR": addr}, "healthcheck"); err != nil {
			t.Fatalf("SESSIOND_ADDR=%s: got %v (stderr %q), want healthy", addr, err, errOut)
		}
	}
	if _, _, err := runCLI(t, nil, "healthcheck", "--addr", u.Host); err != nil {
		t.Fatalf("--addr %s: got %v, want healthy", u.Host, err)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	_, _, err = runCLI(t, map[string]string{"SESSIOND_ADDR": closed}, "healthcheck")
	if err == nil || !strings.Contains(err.Error(), closed) || strings.Contains(err.Error(), "\n") {
		t.Fatalf("closed port: got %v, want one line naming %s", err, closed)
	}

	notReady := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer notReady.Close()
	_, _, err = runCLI(t, map[string]string{"SESSIOND_ADDR": strings.TrimPrefix(notReady.URL, "http://")}, "healthcheck")
	if err == nil || !strings.Contains(err.Error(), "503") {
		t.Fatalf("503 from /readyz: got %v, want an error saying 503", err)
	}

	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer slow.Close()
	defer close(release)
	start := time.Now()
	_, _, err = runCLI(t, map[string]string{"SESSIOND_ADDR": strings.TrimPrefix(slow.URL, "http://")}, "healthcheck")
	if took := time.Since(start); err == nil || took > 5*time.Second {
		t.Fatalf("silent server: got %v after %v, want an error after about 2 s", err, took)
	}
}

// TestSecretVariablesFromFiles: SESSIOND_REDIS_URL and SESSIOND_DATABASE_URL
// may be read from the files their _FILE variables name.
func TestSecretVariablesFromFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	parse := func(env map[string]string) (*config, error) {
		fs, c, check := newFlagSet("test", func(k string) string { return env[k] }, io.Discard)
		if err := fs.Parse(nil); err != nil {
			t.Fatal(err)
		}
		return c, check()
	}
	c, err := parse(map[string]string{
		"SESSIOND_REDIS_URL_FILE":    write("redis", "redis://sessiond:s3cret@10.0.0.5:6379/0\n"),
		"SESSIOND_DATABASE_URL_FILE": write("pg", "postgres://sessiond:pg-s3cret@db/sessiond\r\n"),
	})
	if err != nil {
		t.Fatal(err)
	}
	if c.RedisURL != "redis://sessiond:s3cret@10.0.0.5:6379/0" || c.DatabaseURL != "postgres://sessiond:pg-s3cret@db/sessiond" {
		t.Fatalf("got %q and %q, want the files' contents without their line end", c.RedisURL, c.DatabaseURL)
	}
	// Only one line end is trimmed: the value is the file's, not a guess.
	c, err = parse(map[string]string{"SESSIOND_REDIS_URL_FILE": write("two", "redis://a:1\n\n")})
	if err != nil || c.RedisURL != "redis://a:1\n" {
		t.Fatalf("two newlines: got %q, %v; want one trimmed", c.RedisURL, err)
	}

	secretFile := write("secret", "redis://sessiond:s3cret@10.0.0.5:6379/0\n")
	for _, tt := range []struct {
		env  map[string]string
		want []string
	}{
		{map[string]string{"SESSIOND_REDIS_URL": "redis://sessiond:env-s3cret@h:1", "SESSIOND_REDIS_URL_FILE": secretFile},
			[]string{"SESSIOND_REDIS_URL and SESSIOND_REDIS_URL_FILE"}},
		{map[string]string{"SESSIOND_DATABASE_URL": "postgres://u:env-s3cret@h/db", "SESSIOND_DATABASE_URL_FILE": secretFile},
			[]string{"SESSIOND_DATABASE_URL and SESSIOND_DATABASE_URL_FILE"}},
		{map[string]string{"SESSIOND_REDIS_URL_FILE": filepath.Join(dir, "missing")},
			[]string{"SESSIOND_REDIS_URL_FILE", "missing"}},
		{map[string]string{"SESSIOND_DATABASE_URL_FILE": dir}, // a directory cannot be read as a file
			[]string{"SESSIOND_DATABASE_URL_FILE"}},
	} {
		_, err := parse(tt.env)
		if err == nil {
			t.Fatalf("%v: got no error", tt.env)
		}
		for _, w := range tt.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%v: error %q does not say %q", tt.env, err, w)
			}
		}
		if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("%v: error %q shows the secret", tt.env, err)
		}
	}

	// The whole program uses the file's value (here a Redis that is not
	// there, so it stops at start), and its help never shows it.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	env := map[string]string{
		"SESSIOND_ADDR":           "127.0.0.1:0",
		"SESSIOND_ADMIN_ADDR":     "127.0.0.1:0",
		"SESSIOND_DATA_DIR":       filepath.Join(dir, "data"),
		"SESSIOND_REDIS_URL_FILE": write("closed", "redis://sessiond:s3cret@"+closed+"\n"),
	}
	_, errOut, err := runCLI(t, env, "serve")
	if err == nil || !strings.Contains(err.Error(), "SESSIOND_REDIS_URL") || strings.Contains(err.Error()+errOut, "s3cret") {
		t.Fatalf("serve with a Redis URL file naming a closed port: got %v, want a Redis error without the password", err)
	}
	out, _, err := runCLI(t, env, "serve", "-h")
	if err != nil || !strings.Contains(out, "SESSIOND_REDIS_URL_FILE") || strings.Contains(out, "s3cret") {
		t.Fatalf("serve -h: got %v, %q; want the usage naming the _FILE variable without the secret", err, out)
	}
}
