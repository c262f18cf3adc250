package sessiond_test

import (
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sessiond/sessiond"
	"github.com/sessiond/sessiond/geoip"
	"github.com/sessiond/sessiond/geoip/geoiptest"
	"github.com/sessiond/sessiond/internal/sessiondtest"
	"github.com/sessiond/sessiond/redis"
	"github.com/sessiond/sessiond/redis/redistest"
	"github.com/sessiond/sessiond/sqlite"
)

const (
	iphoneUA  = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1"
	windowsUA = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
)

// tokenClaims returns the payload of a JWT, unverified.
func tokenClaims(t *testing.T, token string) map[string]any {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("token %q is not a compact JWS", token)
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := json.Unmarshal(raw, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

// nextEvent returns the next event of ch, failing after 5 s.
func nextEvent(t *testing.T, ch <-chan sessiond.Event) sessiond.Event {
	t.Helper()
	select {
	case e := <-ch:
		return e
	case <-time.After(5 * time.Second):
		t.Fatal("no event within 5 s")
		return sessiond.Event{}
	}
}

// externalManagers returns Managers of the app's own users on SQLite,
// Redis and a Redis Cluster, with a GeoIP database and a fake clock.
func externalManagers(t *testing.T) map[string]*sessiond.Manager {
	t.Helper()
	loc, err := geoip.Open(geoiptest.WriteSample(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { loc.Close() })
	base := sessiondtest.Options{ExternalUsers: true, Locator: loc, Issuer: "test"}
	return map[string]*sessiond.Manager{
		"sqlite":        sessiondtest.NewManager(t, base).Manager,
		"redis":         sessiondtest.NewManager(t, sessiondtest.OnRedis(t, base, redis.Options{URL: redistest.Start(t).URL()})).Manager,
		"redis cluster": sessiondtest.NewManager(t, sessiondtest.OnRedis(t, base, redis.Options{URL: redistest.StartCluster(t).URL()})).Manager,
	}
}

func TestStartSessionAppliesTheRulesOfALogin(t *testing.T) {
	for name, m := range externalManagers(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			user := "auth0|{5f7c}:x@y%" + strings.ReplaceAll(name, " ", "-")
			events, cancel, err := m.Subscribe(ctx, user)
			if err != nil {
				t.Fatal(err)
			}
			defer cancel()

			phone, err := m.StartSession(ctx, sessiond.StartRequest{
				UserID: user, DeviceID: "phone-1", DeviceName: "Ada's phone", UserAgent: iphoneUA, ClientIP: "81.2.69.160",
				Claims: map[string]any{"org": "acme", "roles": []any{"admin"}},
			})
			if err != nil {
				t.Fatalf("StartSession: %v", err)
			}
			s := phone.Session
			if s.UserID != user || s.Device != "Safari on iPhone" || s.DeviceClass != sessiond.ClassMobile ||
				s.Name != "Ada's phone" || s.IPAddress != "81.2.69.160" || s.Location != "London, United Kingdom" {
				t.Fatalf("session: got %+v, want Safari on iPhone, mobile, named, 81.2.69.160 in London", s)
			}
			if string(s.Claims) != `{"org":"acme","roles":["admin"]}` {
				t.Fatalf("session claims: got %s", s.Claims)
			}
			if e := nextEvent(t, events); e.Type != sessiond.EventCreated || e.SessionID != s.ID {
				t.Fatalf("event: got %+v, want created %s", e, s.ID)
			}

			// The tokens work like a login's, and carry the claims.
			got, c, err := m.Authenticate(ctx, phone.AccessToken)
			if err != nil || got.ID != s.ID || c.Subject != user {
				t.Fatalf("Authenticate: got (%v, %v, %v)", got, c, err)
			}
			tc := tokenClaims(t, phone.AccessToken)
			if tc["org"] != "acme" || tc["sub"] != user || tc["sid"] != s.ID {
				t.Fatalf("access token claims: got %v", tc)
			}
			refreshed, err := m.RefreshSession(ctx, phone.RefreshToken, "81.2.69.160")
			if err != nil {
				t.Fatalf("RefreshSession: %v", err)
			}
			if tc := tokenClaims(t, refreshed.AccessToken); tc["org"] != "acme" {
				t.Fatalf("refreshed access token claims: got %v", tc)
			}

			// New claims reach every token issued after the change.
			if _, err := m.UpdateSession(ctx, user, s.ID, sessiond.SessionUpdate{Claims: map[string]any{"org": "globex"}}); err != nil {
				t.Fatalf("UpdateSession: %v", err)
			}
			refreshed, err = m.RefreshSession(ctx, refreshed.RefreshToken, "81.2.69.160")
			if err != nil {
				t.Fatalf("RefreshSession after UpdateSession: %v", err)
			}
			if tc := tokenClaims(t, refreshed.AccessToken); tc["org"] != "globex" || tc["roles"] != nil {
				t.Fatalf("access token claims after UpdateSession: got %v", tc)
			}
			cleared, err := m.UpdateSession(ctx, user, s.ID, sessiond.SessionUpdate{Claims: map[string]any{}})
			if err != nil || cleared.Claims != nil {
				t.Fatalf("UpdateSession(clear claims): got (%v, %v)", cleared, err)
			}

			// The same device replaces its session.
			again, err := m.StartSession(ctx, sessiond.StartRequest{UserID: user, DeviceID: "phone-1", UserAgent: iphoneUA})
			if err != nil {
				t.Fatal(err)
			}
			if _, _, err := m.Authenticate(ctx, phone.AccessToken); !errors.Is(err, sessiond.ErrInvalidToken) {
				t.Fatalf("Authenticate(replaced session): got %v, want ErrInvalidToken", err)
			}
			list, err := m.List(ctx, user, again.Session.ID)
			if err != nil || len(list) != 1 {
				t.Fatalf("List: got (%d sessions, %v), want 1", len(list), err)
			}

			if err := m.EndSession(ctx, user, again.Session.ID); err != nil {
				t.Fatalf("EndSession: %v", err)
			}
			if err := m.EndSession(ctx, user, again.Session.ID); !errors.Is(err, sessiond.ErrNotFound) {
				t.Fatalf("EndSession(ended): got %v, want ErrNotFound", err)
			}
		})
	}
}

func TestStartSessionAppliesTheCap(t *testing.T) {
	m := sessiondtest.NewManager(t, sessiondtest.Options{ExternalUsers: true}).Manager
	m.MaxSessions = 2
	ctx := context.Background()
	var grants []*sessiond.Grant
	for range 3 {
		g, err := m.StartSession(ctx, sessiond.StartRequest{UserID: "u1", UserAgent: windowsUA})
		if err != nil {
			t.Fatal(err)
		}
		grants = append(grants, g)
	}
	if _, _, err := m.Authenticate(ctx, grants[0].AccessToken); !errors.Is(err, sessiond.ErrInvalidToken) {
		t.Fatalf("the least recently active session at the cap: got %v, want it evicted", err)
	}
	m.CapPolicy = sessiond.PolicyDeny
	if _, err := m.StartSession(ctx, sessiond.StartRequest{UserID: "u1"}); !errors.Is(err, sessiond.ErrSessionLimit) {
		t.Fatalf("StartSession at the cap with deny: got %v, want ErrSessionLimit", err)
	}
}

func TestStartSessionRefusesBadInput(t *testing.T) {
	m := sessiondtest.NewManager(t, sessiondtest.Options{ExternalUsers: true}).Manager
	big := map[string]any{"blob": strings.Repeat("x", sessiond.ClaimsLimit)}
	for _, tc := range []struct {
		name  string
		r     sessiond.StartRequest
		field string
	}{
		{"no user id", sessiond.StartRequest{}, "user_id"},
		{"user id with a space", sessiond.StartRequest{UserID: "a b"}, "user_id"},
		{"user id with a control character", sessiond.StartRequest{UserID: "a\x00b"}, "user_id"},
		{"non-ASCII user id", sessiond.StartRequest{UserID: "usér"}, "user_id"},
		{"user id over 128 bytes", sessiond.StartRequest{UserID: strings.Repeat("u", 129)}, "user_id"},
		{"device id over the limit", sessiond.StartRequest{UserID: "u", DeviceID: strings.Repeat("d", sessiond.MaxDeviceIDLen+1)}, "device_id"},
		{"bidi device name", sessiond.StartRequest{UserID: "u", DeviceName: "a\u202eb"}, "device_name"},
		{"claims over the limit", sessiond.StartRequest{UserID: "u", Claims: big}, "claims"},
		{"registered claim name", sessiond.StartRequest{UserID: "u", Claims: map[string]any{"sub": "root"}}, "claims"},
		{"session claim name", sessiond.StartRequest{UserID: "u", Claims: map[string]any{"sid": "x"}}, "claims"},
		{"introspection member", sessiond.StartRequest{UserID: "u", Claims: map[string]any{"active": true}}, "claims"},
		{"reserved prefix", sessiond.StartRequest{UserID: "u", Claims: map[string]any{"sd_role": "x"}}, "claims"},
		{"empty claim name", sessiond.StartRequest{UserID: "u", Claims: map[string]any{"": 1}}, "claims"},
		{"reserved name in capitals", sessiond.StartRequest{UserID: "u", Claims: map[string]any{"Sub": "bob"}}, "claims"},
		{"session claim in capitals", sessiond.StartRequest{UserID: "u", Claims: map[string]any{"SID": "x"}}, "claims"},
		{"reserved name by Unicode folding", sessiond.StartRequest{UserID: "u", Claims: map[string]any{"\u017fub": "bob"}}, "claims"},
		{"expiry in capitals", sessiond.StartRequest{UserID: "u", Claims: map[string]any{"EXP": 4102444800}}, "claims"},
		{"introspection member in capitals", sessiond.StartRequest{UserID: "u", Claims: map[string]any{"Active": false}}, "claims"},
		{"reserved prefix in capitals", sessiond.StartRequest{UserID: "u", Claims: map[string]any{"SD_role": "x"}}, "claims"},
		{"name with a NUL", sessiond.StartRequest{UserID: "u", Claims: map[string]any{"sub\x00": "bob"}}, "claims"},
		{"dotless i", sessiond.StartRequest{UserID: "u", Claims: map[string]any{"\u0131ss": "x"}}, "claims"},
		{"dotted capital I", sessiond.StartRequest{UserID: "u", Claims: map[string]any{"\u0130at": 1}}, "claims"},
		{"zero-width space", sessiond.StartRequest{UserID: "u", Claims: map[string]any{"sub\u200b": "bob"}}, "claims"},
		{"trailing space", sessiond.StartRequest{UserID: "u", Claims: map[string]any{"active ": true}}, "claims"},
		{"long s in the reserved prefix", sessiond.StartRequest{UserID: "u", Claims: map[string]any{"\u017fd_role": "x"}}, "claims"},
		{"number out of range", sessiond.StartRequest{UserID: "u", Claims: map[string]any{"e": json.Number("1E+400")}}, "claims"},
		{"nesting too deep", sessiond.StartRequest{UserID: "u", Claims: map[string]any{"deep": nested(17)}}, "claims"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := m.StartSession(context.Background(), tc.r)
			var in *sessiond.InputError
			if !errors.As(err, &in) || in.Field != tc.field {
				t.Fatalf("StartSession: got %v, want an InputError on %q", err, tc.field)
			}
		})
	}
	// 128 printable characters, every one allowed, and claims just within
	// the limit, are fine.
	at := map[string]any{"blob": strings.Repeat("x", sessiond.ClaimsLimit-len(`{"blob":""}`))}
	if _, err := m.StartSession(context.Background(), sessiond.StartRequest{UserID: strings.Repeat("!~", 64), Claims: at}); err != nil {
		t.Fatalf("StartSession at the limits: %v", err)
	}
}

func TestStartSessionForInternalUsers(t *testing.T) {
	m, _ := newManager(t)
	ctx := context.Background()
	g := signIn(t, m, "olga")
	if _, err := m.StartSession(ctx, sessiond.StartRequest{UserID: "no-such-user"}); !errors.Is(err, sessiond.ErrNotFound) {
		t.Fatalf("StartSession(unknown user): got %v, want ErrNotFound", err)
	}
	started, err := m.StartSession(ctx, sessiond.StartRequest{UserID: g.Session.UserID, UserAgent: windowsUA})
	if err != nil {
		t.Fatalf("StartSession(existing user): %v", err)
	}
	if _, err := m.SetLocked(ctx, g.Session.UserID, true); err != nil {
		t.Fatal(err)
	}
	if _, err := m.StartSession(ctx, sessiond.StartRequest{UserID: g.Session.UserID}); !errors.Is(err, sessiond.ErrAccountLocked) {
		t.Fatalf("StartSession(locked user): got %v, want ErrAccountLocked", err)
	}
	if _, _, err := m.Authenticate(ctx, started.AccessToken); !errors.Is(err, sessiond.ErrInvalidToken) {
		t.Fatalf("a started session after the lock: got %v, want it ended", err)
	}
}

func TestExternalManagerHasNoPasswords(t *testing.T) {
	m := sessiondtest.NewManager(t, sessiondtest.Options{ExternalUsers: true}).Manager
	ctx := context.Background()
	if !m.ExternalUsers() {
		t.Fatal("ExternalUsers: got false for a Manager without a user store")
	}
	if _, err := m.Register(ctx, sessiond.RegisterRequest{Username: "x", Email: "x@example.com", Password: "password123"}); !errors.Is(err, sessiond.ErrNotFound) {
		t.Fatalf("Register: got %v, want ErrNotFound", err)
	}
	if _, err := m.Login(ctx, sessiond.LoginRequest{Login: "x", Password: "password123"}); !errors.Is(err, sessiond.ErrNotFound) {
		t.Fatalf("Login: got %v, want ErrNotFound", err)
	}
	g, err := m.StartSession(ctx, sessiond.StartRequest{UserID: "google-oauth2|1234"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.ChangePassword(ctx, g.Session, sessiond.ChangePasswordRequest{Current: "a", New: "password123"}); !errors.Is(err, sessiond.ErrNotFound) {
		t.Fatalf("ChangePassword: got %v, want ErrNotFound", err)
	}
	u, err := m.User(ctx, "google-oauth2|1234")
	if err != nil || u.ID != "google-oauth2|1234" || u.Username != "" {
		t.Fatalf("User: got (%+v, %v), want a user with only the id", u, err)
	}
	if err := m.Ready(ctx); err != nil {
		t.Fatalf("Ready: %v", err)
	}
	if n, err := m.RevokeAll(ctx, "google-oauth2|1234", sessiond.ReasonPasswordChanged); n != 1 || err != nil {
		t.Fatalf("RevokeAll: got (%d, %v), want (1, nil)", n, err)
	}
}

// A Manager built over a store that can throttle throttles, unless told
// not to.
func TestManagerOnAStoreThrottlesByDefault(t *testing.T) {
	db := sessiondtest.OpenSQLite(t)
	sk, _ := sessiond.GenerateSigningKey()
	rk, _ := sessiond.GenerateRefreshKey()
	build := func(l sessiond.Limiter) *sessiond.Manager {
		m := sessiond.NewManager(sessiond.Parts{
			Sessions: sqlite.NewSessionStore(db), Users: sqlite.NewUserStore(db), Limiter: l,
			Access: sessiond.NewAccessTokens("test", sk), Refresh: sessiond.NewRefreshTokens(rk),
		})
		m.Hasher = sessiond.NewPasswordHasher(sessiond.Argon2Params{Memory: 64, Time: 1, Threads: 1})
		return m
	}
	ctx := context.Background()
	if _, err := build(nil).Register(ctx, sessiond.RegisterRequest{Username: "pia", Email: "pia@example.com", Password: "password123"}); err != nil {
		t.Fatal(err)
	}
	wrong := func(m *sessiond.Manager, ip string) error {
		_, err := m.Login(ctx, sessiond.LoginRequest{Login: "pia", Password: "wrong password", ClientIP: ip})
		return err
	}
	off := build(sessiond.NoThrottles)
	for range 15 {
		if err := wrong(off, "192.0.2.9"); !errors.Is(err, sessiond.ErrInvalidCredentials) {
			t.Fatalf("with NoThrottles: got %v, want ErrInvalidCredentials every time", err)
		}
	}
	def := build(nil)
	var throttled *sessiond.ThrottledError
	for i := range 11 {
		err := wrong(def, "192.0.2.10")
		if i < 10 && !errors.Is(err, sessiond.ErrInvalidCredentials) {
			t.Fatalf("attempt %d: got %v, want ErrInvalidCredentials", i+1, err)
		}
		if i == 10 && !errors.As(err, &throttled) {
			t.Fatalf("attempt 11 from one address: got %v, want a ThrottledError", err)
		}
	}
}

// Expired SQLite rows go without anyone running Sweep.
func TestManagerSweepsAsSessionsStart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sessiond.db")
	db := sessiondtest.OpenSQLiteAt(t, path)
	clk := &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	m := sessiondtest.NewManager(t, sessiondtest.Options{DB: db, ExternalUsers: true, Now: clk.Now}).Manager
	ctx := context.Background()
	// The default interval (a minute) starts no sweep yet.
	if _, err := m.StartSession(ctx, sessiond.StartRequest{UserID: "old"}); err != nil {
		t.Fatal(err)
	}
	clk.Advance(m.IdleTimeout + time.Hour)
	raw, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	rows := func() (n int) {
		if err := raw.QueryRow(`SELECT count(*) FROM sessions WHERE user_id = 'old'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if rows() != 1 {
		t.Fatal("the expired row is gone before any sweep")
	}
	m.SweepInterval = time.Millisecond
	deadline := time.Now().Add(10 * time.Second)
	for rows() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the expired session's row is still in the file 10 s after sessions started")
		}
		time.Sleep(5 * time.Millisecond)
		if _, err := m.StartSession(ctx, sessiond.StartRequest{UserID: "new"}); err != nil {
			t.Fatal(err)
		}
	}
}

// nested returns n arrays, one inside the other.
func nested(n int) any {
	var v any = "x"
	for range n {
		v = []any{v}
	}
	return v
}

// A token whose payload holds a claim name of the token's own in another
// letter case, or a member twice, is refused by the verifier: Go's JSON
// decoder would otherwise read "Sub" as sub, and other verifiers would not.
func TestVerifyRefusesFoldedAndDuplicateClaims(t *testing.T) {
	key, err := sessiond.GenerateSigningKey()
	if err != nil {
		t.Fatal(err)
	}
	at := sessiond.NewAccessTokens("test", key)
	now := time.Now()
	for _, extra := range []string{`{"Sub":"bob"}`, `{"SID":"x"}`, `{"\u017fub":"bob"}`, `{"EXP":4102444800}`, `{"sub":"bob"}`, `{"sid":"x"}`} {
		tok, err := at.IssueWithClaims("mallory", "s1", json.RawMessage(extra), now, now.Add(time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := at.Verify(tok, now); !errors.Is(err, sessiond.ErrInvalidToken) {
			t.Errorf("a token with %s: got %v, want ErrInvalidToken", extra, err)
		}
	}
	// Other claims, in any case, are fine.
	tok, err := at.IssueWithClaims("mallory", "s1", json.RawMessage(`{"Org":"acme","org":"x"}`), now, now.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if c, err := at.Verify(tok, now); err != nil || c.Subject != "mallory" {
		t.Fatalf("a token with other claims: got (%v, %v)", c, err)
	}
}
