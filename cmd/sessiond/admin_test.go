package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sessiond/sessiond/internal/sessiondtest"
)

// adminResult is what one admin command printed and returned.
type adminResult struct {
	Stdout, Stderr string
	Err            error
}

// runAdmin runs "sessiond args..." with stdin against the data directory
// of the running server ts, as an operator would on the same machine.
func runAdmin(t *testing.T, ts *testServer, stdin string, args ...string) adminResult {
	t.Helper()
	getenv := func(k string) string {
		if k == "SESSIOND_DATA_DIR" {
			return ts.DataDir
		}
		return ""
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out, errb bytes.Buffer
	err := run(ctx, args, getenv, strings.NewReader(stdin), &out, &errb)
	return adminResult{out.String(), errb.String(), err}
}

// ok fails the test unless the command succeeded.
func (r adminResult) ok(t *testing.T) adminResult {
	t.Helper()
	if r.Err != nil {
		t.Fatalf("admin command failed: %v\nstdout: %s\nstderr: %s", r.Err, r.Stdout, r.Stderr)
	}
	return r
}

// refusedWithin1s asserts that the server refuses token within 1 s: the
// admin command wrote through another connection to the SQLite file, and
// docs/design.md ("Revocation across instances") bounds how long the
// server may still accept it.
func refusedWithin1s(t *testing.T, c *sessiondtest.Client, token string) {
	t.Helper()
	start := time.Now()
	for {
		r := c.Do("GET", "/api/v1/me", token, nil)
		if r.StatusCode == http.StatusUnauthorized {
			return
		}
		if r.StatusCode != http.StatusOK {
			t.Fatalf("GET /api/v1/me: got %d, want 200 or 401: %s", r.StatusCode, r.Body)
		}
		if time.Since(start) > time.Second {
			t.Fatalf("token still accepted %v after the admin command, want refused within 1 s", time.Since(start))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

const newPassword = "a brand new passphrase"

// loginStatus tries a login and returns the status.
func loginStatus(c *sessiondtest.Client, login, password string) *sessiondtest.Response {
	return c.Do("POST", "/api/v1/auth/login", "", map[string]string{"username": login, "password": password})
}

func TestAdminUserAdd(t *testing.T) {
	ts := startServer(t, nil)
	c := sessiondtest.NewClient(t, ts.URL)

	r := runAdmin(t, ts, sessiondtest.Password+"\n", "user", "add", "judy", "judy@example.com").ok(t)
	if !regexp.MustCompile(`^added user judy \(id [A-Za-z0-9_-]+\)\n$`).MatchString(r.Stdout) {
		t.Fatalf("stdout: got %q, want \"added user judy (id ...)\"", r.Stdout)
	}
	g := c.Login("judy", nil)
	var me struct {
		User sessiondtest.User `json:"user"`
	}
	c.Do("GET", "/api/v1/me", g.AccessToken, nil).Expect(t, 200).Decode(t, &me)
	if me.User.Username != "judy" || me.User.Email != "judy@example.com" || !strings.Contains(r.Stdout, me.User.ID) {
		t.Fatalf("me: got %+v, want judy with the id the CLI printed (%s)", me.User, r.Stdout)
	}
	// A password without a line end (printf %s) works too.
	runAdmin(t, ts, "no line end here", "user", "add", "kim", "kim@example.com").ok(t)
	loginStatus(c, "kim@example.com", "no line end here").Expect(t, 200)

	tests := []struct {
		name, stdin string
		args        []string
		wantErr     string
	}{
		{"taken username", sessiondtest.Password, []string{"user", "add", "JUDY", "other@example.com"}, "username is already taken"},
		{"taken email", sessiondtest.Password, []string{"user", "add", "judith", "Judy@Example.com"}, "email is already registered"},
		{"no password", "", []string{"user", "add", "leo", "leo@example.com"}, "password: give it on standard input"},
		{"short password", "short\n", []string{"user", "add", "leo", "leo@example.com"}, "password"},
		{"bad username", sessiondtest.Password, []string{"user", "add", "leo smith", "leo@example.com"}, "username"},
		{"bad email", sessiondtest.Password, []string{"user", "add", "leo", "not-an-email"}, "email"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runAdmin(t, ts, tt.stdin, tt.args...)
			if r.Err == nil || !strings.Contains(r.Err.Error(), tt.wantErr) {
				t.Fatalf("got error %v, want one that says %q", r.Err, tt.wantErr)
			}
		})
	}
	loginStatus(c, "leo", sessiondtest.Password).Expect(t, 401)
}

func TestAdminSessionsListAndRevoke(t *testing.T) {
	ts := startServer(t, nil)
	c := sessiondtest.NewClient(t, ts.URL)
	runAdmin(t, ts, sessiondtest.Password, "user", "add", "mallory", "mallory@example.com").ok(t)
	c.UA = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
	laptop := c.Login("mallory", map[string]string{"device_name": "Work laptop"})
	c.UA = "curl/8.5.0"
	phone := c.Login("mallory", nil)
	tablet := c.Login("mallory", nil)

	r := runAdmin(t, ts, "", "sessions", "list", "mallory").ok(t)
	lines := strings.Split(strings.TrimSuffix(r.Stdout, "\n"), "\n")
	if len(lines) != 4 || !strings.HasPrefix(lines[0], "ID") {
		t.Fatalf("sessions list: got %d lines, want a header and 3 sessions:\n%s", len(lines), r.Stdout)
	}
	stamp := regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$`)
	for _, s := range []struct {
		id, device string
	}{{laptop.Session.ID, "Work laptop (Chrome on Windows)"}, {phone.Session.ID, "curl"}, {tablet.Session.ID, "curl"}} {
		var line string
		for _, l := range lines[1:] {
			if strings.HasPrefix(l, s.id+" ") {
				line = l
			}
		}
		if line == "" {
			t.Fatalf("sessions list: no line for %s:\n%s", s.id, r.Stdout)
		}
		fields := regexp.MustCompile(`\s{2,}`).Split(line, -1)
		if len(fields) != 5 || fields[1] != s.device || fields[2] != "127.0.0.1" || fields[3] != "-" || !stamp.MatchString(fields[4]) {
			t.Fatalf("sessions list line: got %q (fields %q), want id, %q, 127.0.0.1, -, last active", line, fields, s.device)
		}
	}

	r = runAdmin(t, ts, "", "sessions", "revoke", "mallory", phone.Session.ID).ok(t)
	if r.Stdout != "mallory: session "+phone.Session.ID+" ended\n" {
		t.Fatalf("revoke one: got %q", r.Stdout)
	}
	if !strings.Contains(r.Stderr, `"reason":"admin"`) || !strings.Contains(r.Stderr, phone.Session.ID) {
		t.Errorf("revoke one: the audit line on stderr should name the session and reason admin, got %q", r.Stderr)
	}
	refusedWithin1s(t, c, phone.AccessToken)
	c.Do("GET", "/api/v1/me", laptop.AccessToken, nil).Expect(t, 200)
	c.Do("POST", "/api/v1/auth/refresh", "", map[string]string{"refresh_token": phone.RefreshToken}).Expect(t, 401)

	r = runAdmin(t, ts, "", "sessions", "revoke", "mallory", phone.Session.ID)
	if r.Err == nil || !strings.Contains(r.Err.Error(), `mallory has no session "`+phone.Session.ID+`"`) {
		t.Fatalf("revoke a revoked session: got %v, want no such session", r.Err)
	}

	r = runAdmin(t, ts, "", "sessions", "revoke", "mallory").ok(t)
	if r.Stdout != "mallory: 2 sessions ended\n" {
		t.Fatalf("revoke all: got %q", r.Stdout)
	}
	refusedWithin1s(t, c, laptop.AccessToken)
	refusedWithin1s(t, c, tablet.AccessToken)
	r = runAdmin(t, ts, "", "sessions", "list", "mallory").ok(t)
	if r.Stdout != "mallory has no sessions\n" {
		t.Fatalf("list after revoke all: got %q", r.Stdout)
	}
	// The account itself still works.
	loginStatus(c, "mallory", sessiondtest.Password).Expect(t, 200)
}

func TestAdminLockAndUnlock(t *testing.T) {
	ts := startServer(t, nil)
	c := sessiondtest.NewClient(t, ts.URL)
	runAdmin(t, ts, sessiondtest.Password, "user", "add", "nina", "nina@example.com").ok(t)
	g1, g2 := c.Login("nina", nil), c.Login("nina", nil)

	r := runAdmin(t, ts, "", "user", "lock", "nina").ok(t)
	if r.Stdout != "nina: 2 sessions ended\n" || !strings.Contains(r.Stderr, `"reason":"account_locked"`) {
		t.Fatalf("lock: got stdout %q stderr %q", r.Stdout, r.Stderr)
	}
	refusedWithin1s(t, c, g1.AccessToken)
	refusedWithin1s(t, c, g2.AccessToken)
	if r := loginStatus(c, "nina", sessiondtest.Password).Expect(t, 401); r.Env.Message != "this account is locked" {
		t.Fatalf("login while locked: got message %q", r.Env.Message)
	}
	c.Do("POST", "/api/v1/auth/refresh", "", map[string]string{"refresh_token": g1.RefreshToken}).Expect(t, 401)

	r = runAdmin(t, ts, "", "user", "unlock", "nina").ok(t)
	if r.Stdout != "nina: unlocked\n" {
		t.Fatalf("unlock: got %q", r.Stdout)
	}
	g := c.Login("nina", nil)
	c.Do("GET", "/api/v1/me", g.AccessToken, nil).Expect(t, 200)
}

func TestAdminResetPassword(t *testing.T) {
	ts := startServer(t, nil)
	c := sessiondtest.NewClient(t, ts.URL)
	runAdmin(t, ts, sessiondtest.Password, "user", "add", "oscar", "oscar@example.com").ok(t)
	g := c.Login("oscar", nil)

	if r := runAdmin(t, ts, "short\n", "user", "reset-password", "oscar"); r.Err == nil {
		t.Fatalf("reset to a short password: got success %q, want an error", r.Stdout)
	}
	c.Do("GET", "/api/v1/me", g.AccessToken, nil).Expect(t, 200) // a refused reset ends nothing

	r := runAdmin(t, ts, newPassword+"\n", "user", "reset-password", "oscar").ok(t)
	if r.Stdout != "oscar: 1 session ended\n" || !strings.Contains(r.Stderr, `"reason":"password_reset"`) {
		t.Fatalf("reset-password: got stdout %q stderr %q", r.Stdout, r.Stderr)
	}
	refusedWithin1s(t, c, g.AccessToken)
	loginStatus(c, "oscar", sessiondtest.Password).Expect(t, 401)
	loginStatus(c, "oscar", newPassword).Expect(t, 200)
}

func TestAdminDeleteUser(t *testing.T) {
	ts := startServer(t, nil)
	c := sessiondtest.NewClient(t, ts.URL)
	runAdmin(t, ts, sessiondtest.Password, "user", "add", "peggy", "peggy@example.com").ok(t)
	g := c.Login("peggy", nil)

	r := runAdmin(t, ts, "", "user", "delete", "peggy").ok(t)
	if r.Stdout != "peggy: 1 session ended\n" || !strings.Contains(r.Stderr, `"reason":"account_deleted"`) {
		t.Fatalf("delete: got stdout %q stderr %q", r.Stdout, r.Stderr)
	}
	refusedWithin1s(t, c, g.AccessToken)
	loginStatus(c, "peggy", sessiondtest.Password).Expect(t, 401)
	if r := runAdmin(t, ts, "", "sessions", "list", "peggy"); r.Err == nil || r.Err.Error() != `no user "peggy"` {
		t.Fatalf("list a deleted user: got %v, want no user", r.Err)
	}
	// The name is free again.
	runAdmin(t, ts, sessiondtest.Password, "user", "add", "peggy", "peggy@example.com").ok(t)
}

func TestAdminErrors(t *testing.T) {
	ts := startServer(t, nil)
	runAdmin(t, ts, sessiondtest.Password, "user", "add", "quinn", "quinn@example.com").ok(t)

	for _, args := range [][]string{
		{"user", "lock", "nobody"}, {"user", "unlock", "nobody"}, {"user", "delete", "nobody"},
		{"sessions", "list", "nobody"}, {"sessions", "revoke", "nobody"}, {"sessions", "revoke", "nobody", "abc"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			r := runAdmin(t, ts, "", args...)
			if r.Err == nil || r.Err.Error() != `no user "nobody"` {
				t.Fatalf("got %v, want no user \"nobody\"", r.Err)
			}
		})
	}
	if r := runAdmin(t, ts, newPassword, "user", "reset-password", "nobody"); r.Err == nil || r.Err.Error() != `no user "nobody"` {
		t.Fatalf("reset-password of nobody: got %v, want no user \"nobody\"", r.Err)
	}

	usage := []struct {
		args    []string
		wantErr string
	}{
		{[]string{"user"}, "Usage:"},
		{[]string{"user", "add", "rita"}, "user add takes 2 arguments, got 1"},
		{[]string{"user", "add", "rita", "rita@example.com", "extra"}, "user add takes 2 arguments, got 3"},
		{[]string{"user", "lock"}, "user lock takes 1 argument, got 0"},
		{[]string{"user", "unlock", "a", "b"}, "user unlock takes 1 argument, got 2"},
		{[]string{"user", "delete"}, "user delete takes 1 argument, got 0"},
		{[]string{"user", "reset-password"}, "user reset-password takes 1 argument, got 0"},
		{[]string{"sessions", "list"}, "sessions list takes 1 argument, got 0"},
		{[]string{"sessions", "revoke"}, "sessions revoke takes 1 or 2 arguments, got 0"},
		{[]string{"sessions", "revoke", "quinn", "a", "b"}, "sessions revoke takes 1 or 2 arguments, got 3"},
		{[]string{"user", "rename", "quinn"}, `unknown command "user rename"`},
		{[]string{"sessions", "list", "quinn", "--no-such-flag"}, "flag provided but not defined"},
	}
	for _, tt := range usage {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			r := runAdmin(t, ts, "", tt.args...)
			if !errors.Is(r.Err, errUsage) || !strings.Contains(r.Stderr, tt.wantErr) {
				t.Fatalf("got error %v, stderr %q; want the usage error and %q", r.Err, r.Stderr, tt.wantErr)
			}
		})
	}

	// Flags may follow the arguments, and help goes to stdout.
	other := t.TempDir()
	r := runAdmin(t, ts, "", "sessions", "list", "quinn", "--data-dir", other)
	if r.Err == nil || r.Err.Error() != `no user "quinn"` {
		t.Fatalf("--data-dir after the arguments: got %v, want the other (empty) data directory used", r.Err)
	}
	r = runAdmin(t, ts, "", "user", "--help").ok(t)
	if !strings.Contains(r.Stdout, "sessiond sessions revoke USER [SESSION]") {
		t.Fatalf("user --help: got %q, want the usage", r.Stdout)
	}
}

// TestAdminTakesSessionIDsThatLookLikeFlags: base64url session ids may
// start with "-"; they are arguments, not flags.
func TestAdminTakesSessionIDsThatLookLikeFlags(t *testing.T) {
	fs, _, _ := newFlagSet("test", func(string) string { return "" }, io.Discard)
	pos, err := parseInterleaved(fs, []string{"alice", "-AbC_def-123456789012345", "--data-dir", "/x", "--", "-z"})
	if err != nil || len(pos) != 3 || pos[1] != "-AbC_def-123456789012345" || pos[2] != "-z" {
		t.Fatalf("got %q, %v", pos, err)
	}
	if v := fs.Lookup("data-dir").Value.String(); v != "/x" {
		t.Fatalf("--data-dir: got %q", v)
	}
}
