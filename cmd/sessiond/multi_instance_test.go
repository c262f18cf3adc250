package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/sessiond/sessiond"
	"github.com/sessiond/sessiond/internal/sessiondtest"
	"github.com/sessiond/sessiond/postgres/pgtest"
	"github.com/sessiond/sessiond/redis/redistest"
	"github.com/sessiond/sessiond/sqlite"
)

// writeSharedKeys writes a signing key and a refresh key into dir and
// returns the settings that point an instance at them, as a deployment
// hands the same key files to every instance.
func writeSharedKeys(t *testing.T, dir string) map[string]string {
	t.Helper()
	sk, err := sessiond.GenerateSigningKey()
	if err != nil {
		t.Fatal(err)
	}
	pem, err := sk.MarshalPEM()
	if err != nil {
		t.Fatal(err)
	}
	rk, err := sessiond.GenerateRefreshKey()
	if err != nil {
		t.Fatal(err)
	}
	signPath := filepath.Join(dir, "signing-key.pem")
	refreshPath := filepath.Join(dir, "refresh-key")
	if err := os.WriteFile(signPath, pem, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(refreshPath, []byte(base64.StdEncoding.EncodeToString(rk.Secret)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return map[string]string{"SESSIOND_SIGNING_KEY_FILE": signPath, "SESSIOND_REFRESH_KEY_FILE": refreshPath}
}

// TestMultiInstance runs the production layout: two sessiond processes,
// each with its own data directory, sharing PostgreSQL (users), a 3-node
// Redis Cluster (sessions, throttles, events) and the key files.
func TestMultiInstance(t *testing.T) {
	dbURL := pgtest.URL(t)
	cluster := redistest.StartCluster(t)
	env := writeSharedKeys(t, t.TempDir())
	env["SESSIOND_DATABASE_URL"] = dbURL
	env["SESSIOND_REDIS_URL"] = cluster.URL()
	a := startServer(t, env) // startServer gives each its own data directory
	b := startServer(t, env)
	if a.DataDir == b.DataDir {
		t.Fatalf("both instances use data directory %s", a.DataDir)
	}
	ca, cb := sessiondtest.NewClient(t, a.URL), sessiondtest.NewClient(t, b.URL)

	// Register on A; B knows the user and its names, in any case.
	user := ca.Register("Mallory")
	for _, body := range []map[string]string{
		{"username": "mallory", "email": "someone@example.com", "password": sessiondtest.Password},
		{"username": "someone", "email": "MALLORY@example.com", "password": sessiondtest.Password},
	} {
		cb.Do("POST", "/api/v1/auth/register", "", body).Expect(t, http.StatusConflict)
	}
	var stored []string
	rows, err := mustPG(t, dbURL).Query(context.Background(), `SELECT username FROM users`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			t.Fatal(err)
		}
		stored = append(stored, name)
	}
	if rows.Err() != nil || len(stored) != 1 || stored[0] != "Mallory" {
		t.Fatalf("users in PostgreSQL: got %q (%v), want [Mallory]", stored, rows.Err())
	}

	// Log in on B, then on A; list on A.
	onB := cb.Login("mallory", map[string]string{"device_name": "made on B"})
	onA := ca.Login("MALLORY@example.com", map[string]string{"device_name": "made on A"})
	var list []sessiondtest.Session
	ca.Do("GET", "/api/v1/sessions", onA.AccessToken, nil).Expect(t, http.StatusOK).Decode(t, &list)
	if len(list) != 2 || list[0].ID != onA.Session.ID || !list[0].Current || list[1].ID != onB.Session.ID || list[1].Name != "made on B" {
		t.Fatalf("sessions listed on A: got %+v, want the one made on A (current), then the one made on B", list)
	}
	var me struct {
		User    sessiondtest.User    `json:"user"`
		Session sessiondtest.Session `json:"session"`
	}
	ca.Do("GET", "/api/v1/me", onB.AccessToken, nil).Expect(t, http.StatusOK).Decode(t, &me)
	if me.User.ID != user.ID || me.Session.ID != onB.Session.ID {
		t.Fatalf("GET /me on A with B's token: got user %s session %s, want %s %s", me.User.ID, me.Session.ID, user.ID, onB.Session.ID)
	}

	// Revoke on B the session made on A: B refuses it at once, A within
	// its cache invalidation.
	for _, c := range []*sessiondtest.Client{ca, cb} {
		for range 10 { // cached on both instances
			c.Do("GET", "/api/v1/me", onA.AccessToken, nil).Expect(t, http.StatusOK)
		}
	}
	cb.Do("DELETE", "/api/v1/sessions/"+onA.Session.ID, onB.AccessToken, nil).Expect(t, http.StatusOK)
	cb.Do("GET", "/api/v1/me", onA.AccessToken, nil).Expect(t, http.StatusUnauthorized)
	d := waitStatus(t, ca, "/api/v1/me", onA.AccessToken, http.StatusUnauthorized, time.Second)
	t.Logf("A refused the session revoked on B after %v", d)
	ca.Do("POST", "/api/v1/auth/refresh", "", map[string]string{"refresh_token": onA.RefreshToken}).Expect(t, http.StatusUnauthorized)
	ca.Do("GET", "/api/v1/me", onB.AccessToken, nil).Expect(t, http.StatusOK)

	// A password change on A ends every session made on B.
	onB2 := cb.Login("mallory", nil)
	changer := ca.Login("mallory", nil)
	for _, g := range []sessiondtest.Grant{onB, onB2} {
		for _, c := range []*sessiondtest.Client{ca, cb} {
			c.Do("GET", "/api/v1/me", g.AccessToken, nil).Expect(t, http.StatusOK)
		}
	}
	const newPassword = "a new and longer passphrase"
	var changed struct {
		Revoked int `json:"revoked"`
	}
	ca.Do("POST", "/api/v1/auth/password", changer.AccessToken, map[string]any{
		"current_password": sessiondtest.Password, "new_password": newPassword,
	}).Expect(t, http.StatusOK).Decode(t, &changed)
	if changed.Revoked != 2 {
		t.Fatalf("password change: got revoked %d, want 2 (both sessions made on B)", changed.Revoked)
	}
	for _, g := range []sessiondtest.Grant{onB, onB2} {
		ca.Do("GET", "/api/v1/me", g.AccessToken, nil).Expect(t, http.StatusUnauthorized)
		d := waitStatus(t, cb, "/api/v1/me", g.AccessToken, http.StatusUnauthorized, time.Second)
		t.Logf("B refused its session ended by the password change on A after %v", d)
		cb.Do("POST", "/api/v1/auth/refresh", "", map[string]string{"refresh_token": g.RefreshToken}).Expect(t, http.StatusUnauthorized)
	}
	for _, c := range []*sessiondtest.Client{ca, cb} {
		c.Do("GET", "/api/v1/me", changer.AccessToken, nil).Expect(t, http.StatusOK)
	}
	// B checks passwords against the hash A wrote.
	cb.Do("POST", "/api/v1/auth/login", "", map[string]string{"username": "mallory", "password": sessiondtest.Password}).Expect(t, http.StatusUnauthorized)
	cb.Do("POST", "/api/v1/auth/login", "", map[string]string{"username": "mallory", "password": newPassword}).Expect(t, http.StatusOK)
}

// TestMultiInstanceUsersInPostgresSessionsInSQLite sets only
// SESSIOND_DATABASE_URL: users move to PostgreSQL, sessions stay in the
// data directory's SQLite file, and the admin commands, another process
// in a deployment, work on the same stores.
func TestMultiInstanceUsersInPostgresSessionsInSQLite(t *testing.T) {
	ctx := context.Background()
	env := map[string]string{"SESSIOND_DATABASE_URL": pgtest.URL(t), "SESSIOND_DATA_DIR": t.TempDir()}
	ts := startServer(t, env)
	c := sessiondtest.NewClient(t, ts.URL)
	user := c.Register("trent")
	g := c.Login("trent", nil)

	db, err := sqlite.Open(filepath.Join(env["SESSIOND_DATA_DIR"], "sessiond.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if u, err := sqlite.NewUserStore(db).UserByLogin(ctx, "trent"); !errors.Is(err, sessiond.ErrNotFound) {
		t.Fatalf("user in SQLite: got (%v, %v), want ErrNotFound", u, err)
	}
	if _, err := sqlite.NewSessionStore(db).Get(ctx, user.ID, g.Session.ID, time.Now()); err != nil {
		t.Fatalf("session in SQLite: got error %v, want nil", err)
	}

	var stdout, stderr bytes.Buffer
	getenv := func(k string) string { return env[k] }
	if err := run(ctx, []string{"user", "lock", "trent"}, getenv, strings.NewReader(""), &stdout, &stderr); err != nil {
		t.Fatalf("sessiond user lock trent: %v\n%s", err, stderr.String())
	}
	var locked bool
	if err := mustPG(t, env["SESSIOND_DATABASE_URL"]).QueryRow(ctx, `SELECT locked FROM users WHERE id = $1`, user.ID).Scan(&locked); err != nil || !locked {
		t.Fatalf("locked in PostgreSQL after sessiond user lock: got (%t, %v), want true", locked, err)
	}
	d := waitStatus(t, c, "/api/v1/me", g.AccessToken, http.StatusUnauthorized, 2*time.Second)
	t.Logf("the server refused the session ended by the admin command after %v", d)
}

// mustPG connects to url, closed when the test ends.
func mustPG(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}
