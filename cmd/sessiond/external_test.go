package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sessiond/sessiond"
	"github.com/sessiond/sessiond/internal/sessiondtest"
)

// TestUsersAndLoginURLSettings: SESSIOND_USERS takes internal or external,
// SESSIOND_LOGIN_URL an http(s) URL or a path on this origin; the flags
// mirror them.
func TestUsersAndLoginURLSettings(t *testing.T) {
	for _, tc := range []struct {
		env   map[string]string
		args  []string
		users string
		login string
		bad   string // the variable the error names; "" when accepted
	}{
		{env: nil, users: "internal"},
		{env: map[string]string{"SESSIOND_USERS": "external"}, users: "external"},
		{args: []string{"--users", "external", "--login-url", "/login"}, users: "external", login: "/login"},
		{env: map[string]string{"SESSIOND_USERS": "external"}, args: []string{"--users", "internal"}, users: "internal"},
		{env: map[string]string{"SESSIOND_LOGIN_URL": "https://app.example.com/login?next=/devices"}, users: "internal", login: "https://app.example.com/login?next=/devices"},
		{env: map[string]string{"SESSIOND_LOGIN_URL": "http://localhost:3000/sign-in#top"}, users: "internal", login: "http://localhost:3000/sign-in#top"},
		{env: map[string]string{"SESSIOND_USERS": "both"}, bad: "SESSIOND_USERS"},
		{env: map[string]string{"SESSIOND_USERS": "External"}, bad: "SESSIOND_USERS"},
		{args: []string{"--users", "app"}, bad: "SESSIOND_USERS"},
		{env: map[string]string{"SESSIOND_LOGIN_URL": "login"}, bad: "SESSIOND_LOGIN_URL"},
		{env: map[string]string{"SESSIOND_LOGIN_URL": "//evil.example/login"}, bad: "SESSIOND_LOGIN_URL"},
		{env: map[string]string{"SESSIOND_LOGIN_URL": `/\evil.example`}, bad: "SESSIOND_LOGIN_URL"},
		{env: map[string]string{"SESSIOND_LOGIN_URL": "javascript:alert(1)"}, bad: "SESSIOND_LOGIN_URL"},
		{env: map[string]string{"SESSIOND_LOGIN_URL": "ftp://app.example.com/login"}, bad: "SESSIOND_LOGIN_URL"},
		{env: map[string]string{"SESSIOND_LOGIN_URL": "https:///login"}, bad: "SESSIOND_LOGIN_URL"},
		{env: map[string]string{"SESSIOND_LOGIN_URL": "https://user:pw@app.example.com/login"}, bad: "SESSIOND_LOGIN_URL"},
		{env: map[string]string{"SESSIOND_LOGIN_URL": "/log in"}, bad: "SESSIOND_LOGIN_URL"},
		{args: []string{"--login-url", "app.example.com/login"}, bad: "SESSIOND_LOGIN_URL"},
	} {
		var out bytes.Buffer
		fs, c, check := newFlagSet("sessiond serve", func(k string) string { return tc.env[k] }, &out)
		if err := fs.Parse(tc.args); err != nil {
			t.Fatalf("%v %v: parse: %v", tc.env, tc.args, err)
		}
		err := check()
		if tc.bad != "" {
			if err == nil || !strings.Contains(err.Error(), tc.bad) {
				t.Errorf("%v %v: got %v, want an error naming %s", tc.env, tc.args, err, tc.bad)
			}
			continue
		}
		if err != nil {
			t.Errorf("%v %v: %v", tc.env, tc.args, err)
			continue
		}
		if c.Users != tc.users || c.LoginURL != tc.login {
			t.Errorf("%v %v: got users %q, login URL %q, want %q, %q", tc.env, tc.args, c.Users, c.LoginURL, tc.users, tc.login)
		}
	}
}

// TestExternalUsers runs the program with SESSIOND_USERS=external: no
// sign-up, sign-in or password endpoints, no user store (a PostgreSQL URL
// is ignored with a warning), a page that links to the app's sign-in, and
// admin commands that take the app's user ids.
func TestExternalUsers(t *testing.T) {
	env := map[string]string{
		"SESSIOND_USERS":     "external",
		"SESSIOND_LOGIN_URL": "/login",
		// Nothing listens there: were it opened, the start would fail.
		"SESSIOND_DATABASE_URL": "postgres://sessiond:hunter2secret@127.0.0.1:1/sessiond",
	}
	ts := startServer(t, env)
	logs := ts.Logs.String()
	if !strings.Contains(logs, "SESSIOND_DATABASE_URL is ignored") {
		t.Errorf("no warning that SESSIOND_DATABASE_URL is ignored in the log:\n%s", logs)
	}
	if strings.Contains(logs, "hunter2secret") {
		t.Error("the log shows the database password")
	}

	for _, path := range []string{"/api/v1/auth/register", "/api/v1/auth/login", "/api/v1/auth/password"} {
		res, err := http.Post(ts.URL+path, "application/json", strings.NewReader(`{"username":"ada","email":"ada@example.com","password":"correct horse battery staple"}`))
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(res.Body)
		res.Body.Close()
		var env struct {
			Data struct{ Code string } `json:"data"`
		}
		json.Unmarshal(raw, &env)
		if res.StatusCode != http.StatusNotFound || env.Data.Code != "not_found" {
			t.Errorf("POST %s: got %d %s, want 404 not_found", path, res.StatusCode, raw)
		}
	}

	res, err := http.Get(ts.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if !bytes.Contains(page, []byte(`id="signin-link" class="btn primary wide" href="/login"`)) || bytes.Contains(page, []byte(`id="signin-form"`)) {
		t.Errorf("page: want the link to /login and no sign-in form")
	}

	// The app starts a session for its user; here through a Manager on the
	// same data directory, as the admin commands write to it.
	admin := func(args ...string) adminResult {
		t.Helper()
		getenv := func(k string) string {
			switch k {
			case "SESSIOND_DATA_DIR":
				return ts.DataDir
			case "SESSIOND_USERS":
				return "external"
			}
			return ""
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		var out, errb bytes.Buffer
		err := run(ctx, args, getenv, strings.NewReader(sessiondtest.Password+"\n"), &out, &errb)
		return adminResult{out.String(), errb.String(), err}
	}
	fs, c, check := newFlagSet("test", func(k string) string {
		return map[string]string{"SESSIOND_DATA_DIR": ts.DataDir, "SESSIOND_USERS": "external"}[k]
	}, io.Discard)
	if err := fs.Parse(nil); err != nil {
		t.Fatal(err)
	}
	if err := check(); err != nil {
		t.Fatal(err)
	}
	m, st, err := open(t.Context(), c, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if !m.ExternalUsers() {
		t.Fatal("SESSIOND_USERS=external built a Manager with a user store")
	}
	const user = "auth0|abc"
	var grants []*sessiond.Grant
	for range 2 {
		g, err := m.StartSession(t.Context(), sessiond.StartRequest{UserID: user, UserAgent: "curl/8.5.0", ClientIP: "198.51.100.4"})
		if err != nil {
			t.Fatal(err)
		}
		grants = append(grants, g)
	}

	cl := sessiondtest.NewClient(t, ts.URL)
	var me struct {
		User map[string]any `json:"user"`
	}
	cl.Do("GET", "/api/v1/me", grants[0].AccessToken, nil).Expect(t, http.StatusOK).Decode(t, &me)
	if len(me.User) != 1 || me.User["id"] != user {
		t.Errorf("/me user: got %v, want {id: %q}", me.User, user)
	}

	for _, args := range [][]string{
		{"user", "add", "ada", "ada@example.com"}, {"user", "lock", user}, {"user", "unlock", user},
		{"user", "delete", user}, {"user", "reset-password", user},
	} {
		r := admin(args...)
		if r.Err == nil || !strings.Contains(r.Err.Error(), "users are the app's own in external mode") {
			t.Errorf("%s: got %v, want refused: users are the app's own", strings.Join(args, " "), r.Err)
		}
	}

	r := admin("sessions", "list", user).ok(t)
	for _, g := range grants {
		if !strings.Contains(r.Stdout, g.Session.ID+" ") {
			t.Errorf("sessions list %s: no line for %s:\n%s", user, g.Session.ID, r.Stdout)
		}
	}
	r = admin("sessions", "revoke", user, grants[1].Session.ID).ok(t)
	if r.Stdout != user+": session "+grants[1].Session.ID+" ended\n" {
		t.Errorf("revoke one: got %q", r.Stdout)
	}
	refusedWithin1s(t, cl, grants[1].AccessToken)
	cl.Do("GET", "/api/v1/me", grants[0].AccessToken, nil).Expect(t, http.StatusOK)
	r = admin("sessions", "revoke", user).ok(t)
	if r.Stdout != user+": 1 session ended\n" {
		t.Errorf("revoke all: got %q", r.Stdout)
	}
	refusedWithin1s(t, cl, grants[0].AccessToken)
	if r := admin("sessions", "list", "nobody-here").ok(t); r.Stdout != "nobody-here has no sessions\n" {
		t.Errorf("list of an unknown id: got %q", r.Stdout)
	}
}
