package sessiond_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sessiond/sessiond"
	"github.com/sessiond/sessiond/internal/sessiondtest"
	"github.com/sessiond/sessiond/redis"
	"github.com/sessiond/sessiond/redis/redistest"
	"github.com/sessiond/sessiond/sqlite"
)

// forEachLimiterStore runs body with a Manager whose sessions and
// throttles are in SQLite, in one Redis, and in a Redis Cluster (users in
// SQLite), with the default throttles, cheap hashing and a clock near real
// time (Redis expires keys by its own).
func forEachLimiterStore(t *testing.T, body func(t *testing.T, m *sessiond.Manager)) {
	newManager := func(t *testing.T, sessions sessiond.SessionStore, db *sqlite.DB, l sessiond.Limiter) *sessiond.Manager {
		clk := &clock{t: time.Now().UTC().Truncate(time.Millisecond)}
		return sessiondtest.NewManager(t, sessiondtest.Options{
			DB: db, Sessions: sessions, Limiter: l, Issuer: "test", CheapHashing: true, Now: clk.Now,
		}).Manager
	}
	t.Run("sqlite", func(t *testing.T) {
		db := sessiondtest.OpenSQLite(t)
		body(t, newManager(t, sqlite.NewSessionStore(db), db, sqlite.NewLimiter(db)))
	})
	t.Run("redis", func(t *testing.T) {
		st := openRedis(t, redistest.Start(t))
		body(t, newManager(t, st, sessiondtest.OpenSQLite(t), redis.NewLimiter(st)))
	})
	t.Run("redis cluster", func(t *testing.T) {
		c := redistest.StartCluster(t)
		st, err := redis.New(context.Background(), redis.Options{URL: c.URL(), Timeout: 2 * time.Second})
		if err != nil {
			t.Fatalf("redis.New: %v", err)
		}
		t.Cleanup(st.Close)
		body(t, newManager(t, st, sessiondtest.OpenSQLite(t), redis.NewLimiter(st)))
	})
}

// burst runs f(i) for i in [0, n) all at once and tallies the outcomes
// by name.
func burst(n int, f func(i int) string) map[string]int {
	var (
		mu    sync.Mutex
		tally = map[string]int{}
		wg    sync.WaitGroup
	)
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			what := f(i)
			mu.Lock()
			tally[what]++
			mu.Unlock()
		})
	}
	close(start)
	wg.Wait()
	return tally
}

// outcome names what an error is, for a tally.
func outcome(err error) string {
	var th *sessiond.ThrottledError
	switch {
	case err == nil:
		return "ok"
	case errors.As(err, &th):
		return "throttled"
	case errors.Is(err, sessiond.ErrInvalidCredentials):
		return "wrong password"
	case errors.Is(err, sessiond.ErrInvalidToken):
		return "invalid token"
	case errors.Is(err, sessiond.ErrNotFound):
		return "not found"
	}
	return "error: " + err.Error()
}

// wantTally fails the test unless tally holds exactly want.
func wantTally(t *testing.T, what string, tally map[string]int, want map[string]int) {
	t.Helper()
	for k, v := range tally {
		if want[k] != v {
			t.Fatalf("%s: got %v, want %v", what, tally, want)
		}
	}
	for k, v := range want {
		if tally[k] != v {
			t.Fatalf("%s: got %v, want %v", what, tally, want)
		}
	}
}

// TestThrottlesHoldUnderConcurrency fires three times each limit at once
// from one address (or at one account, or one session): exactly the limit
// is answered, the rest get 429, on every store. Before the throttles took
// their place atomically, a burst counted the same old count many times
// over.
func TestThrottlesHoldUnderConcurrency(t *testing.T) {
	forEachLimiterStore(t, func(t *testing.T, m *sessiond.Manager) {
		ctx := context.Background()
		tt := m.Throttles
		var seq atomic.Int64
		name := func(prefix string) string { return fmt.Sprintf("%s%d", prefix, seq.Add(1)) }

		t.Run("registrations", func(t *testing.T) {
			n := tt.Register.N
			tally := burst(3*n, func(i int) string {
				u := name("reg")
				_, err := m.Register(ctx, sessiond.RegisterRequest{Username: u, Email: u + "@example.com", Password: "password123", ClientIP: "192.0.2.10"})
				return outcome(err)
			})
			wantTally(t, "registrations", tally, map[string]int{"ok": n, "throttled": 2 * n})
		})

		t.Run("failed refreshes", func(t *testing.T) {
			g := signIn(t, m, name("fr"))
			n := tt.FailedRefresh.N
			tally := burst(3*n, func(i int) string {
				_, err := m.RefreshSession(ctx, forge(g.RefreshToken), "192.0.2.11")
				return outcome(err)
			})
			wantTally(t, "forged refreshes", tally, map[string]int{"invalid token": n, "throttled": 2 * n})
		})

		t.Run("revocations of unknown sessions", func(t *testing.T) {
			g := signIn(t, m, name("rv"))
			n := tt.UnknownRevoke.N
			tally := burst(3*n, func(i int) string {
				return outcome(m.Revoke(ctx, g.Session.UserID, fmt.Sprintf("no-such-session-%d", i), sessiond.ReasonRevoked))
			})
			wantTally(t, "unknown revokes", tally, map[string]int{"not found": n, "throttled": 2 * n})
		})

		t.Run("rotations of one session", func(t *testing.T) {
			// Round after round, three refreshes per allowed rotation send
			// the current token at once: each round rotates once and
			// answers the others as replays, which count for nothing, until
			// the session has rotated exactly its limit.
			g := signIn(t, m, name("rs"))
			n := tt.SessionRefresh.N
			tok, rotations := g.RefreshToken, 0
			for round := 1; ; round++ {
				var (
					mu   sync.Mutex
					next string
				)
				tally := burst(3*n, func(i int) string {
					gr, err := m.RefreshSession(ctx, tok, fmt.Sprintf("198.51.100.%d", i))
					if err == nil {
						mu.Lock()
						next = gr.RefreshToken
						mu.Unlock()
					}
					return outcome(err)
				})
				if tally["ok"] == 0 {
					wantTally(t, fmt.Sprintf("round %d", round), tally, map[string]int{"throttled": 3 * n})
					break
				}
				if tally["ok"]+tally["throttled"] != 3*n || round > 2*n {
					t.Fatalf("round %d: got %v, want new tokens or 429", round, tally)
				}
				if generationOf(t, m, next) != generationOf(t, m, tok)+1 {
					t.Fatalf("round %d: generation %d after %d, want one rotation", round, generationOf(t, m, next), generationOf(t, m, tok))
				}
				tok = next
				rotations++
			}
			if rotations != n {
				t.Fatalf("rotations: got %d, want %d", rotations, n)
			}
		})

		login := func(user, password, ip string) string {
			_, err := m.Login(ctx, sessiond.LoginRequest{Login: user, Password: password, ClientIP: ip})
			return outcome(err)
		}

		t.Run("failed sign-ins per account and address", func(t *testing.T) {
			user := name("lai")
			signIn(t, m, user)
			n := tt.LoginAccountIP.N
			tally := burst(3*n, func(int) string { return login(user, "wrong password", "192.0.2.12") })
			wantTally(t, "wrong passwords", tally, map[string]int{"wrong password": n, "throttled": 2 * n})
			if got := login(user, "password123", "192.0.2.12"); got != "throttled" {
				t.Fatalf("the right password past the limit: got %s, want throttled", got)
			}
		})

		t.Run("failed sign-ins per address", func(t *testing.T) {
			n := tt.LoginIP.N
			tally := burst(3*n, func(int) string { return login(name("nobody"), "wrong password", "192.0.2.13") })
			wantTally(t, "wrong passwords", tally, map[string]int{"wrong password": n, "throttled": 2 * n})
		})

		t.Run("failed sign-ins per account", func(t *testing.T) {
			user := name("la")
			signIn(t, m, user)
			n := tt.LoginAccount.N
			tally := burst(3*n, func(i int) string { return login(user, "wrong password", fmt.Sprintf("10.1.%d.%d", i/200, i%200)) })
			wantTally(t, "wrong passwords", tally, map[string]int{"wrong password": n, "throttled": 2 * n})
		})

		t.Run("one address adds at most its own budget to the account", func(t *testing.T) {
			user := name("lock")
			signIn(t, m, user)
			per, total := tt.LoginAccountIP.N, tt.LoginAccount.N
			tally := burst(6*per, func(int) string { return login(user, "wrong password", "192.0.2.14") })
			wantTally(t, "one address", tally, map[string]int{"wrong password": per, "throttled": 5 * per})
			// The account still has room for the failures of others.
			tally = burst(total-per, func(i int) string { return login(user, "wrong password", fmt.Sprintf("10.2.%d.%d", i/200, i%200)) })
			wantTally(t, "other addresses", tally, map[string]int{"wrong password": total - per})
			if got := login(user, "wrong password", "10.3.0.1"); got != "throttled" {
				t.Fatalf("past the account's limit: got %s, want throttled", got)
			}
		})
	})
}

// generationOf returns the generation a refresh token names.
func generationOf(t *testing.T, m *sessiond.Manager, token string) uint64 {
	t.Helper()
	c, err := m.RefreshTokensForTest().Parse(token)
	if err != nil {
		t.Fatal(err)
	}
	return c.Generation
}

// TestReuseDetectionIsNeverThrottled: an authentic superseded refresh
// token ends its session whatever the throttles say. A thief who holds the
// current token fills the session's refresh budget, and a neighbour
// behind the victim's address fills its failed-refresh budget with
// forgeries: the victim's replay still ends the session, where it used to
// get a 429 and leave the thief in.
func TestReuseDetectionIsNeverThrottled(t *testing.T) {
	forEachLimiterStore(t, func(t *testing.T, m *sessiond.Manager) {
		ctx := context.Background()
		mustEnd := func(t *testing.T, g *sessiond.Grant, replayed, from string, current string) {
			t.Helper()
			_, err := m.RefreshSession(ctx, replayed, from)
			if !errors.Is(err, sessiond.ErrInvalidToken) {
				t.Fatalf("the victim's superseded token: got %v, want invalid token (reuse)", err)
			}
			if _, err := m.SessionsForTest().Get(ctx, g.Session.UserID, g.Session.ID, m.Now()); !errors.Is(err, sessiond.ErrNotFound) {
				t.Fatalf("session after the reuse: got %v, want it ended", err)
			}
			if _, err := m.RefreshSession(ctx, current, "203.0.113.66"); !errors.Is(err, sessiond.ErrInvalidToken) {
				t.Fatalf("the thief's token after the reuse: got %v, want invalid token", err)
			}
		}

		t.Run("a thief fills the session's refresh budget", func(t *testing.T) {
			g := signIn(t, m, "victim1")
			tok := g.RefreshToken
			for i := range m.Throttles.SessionRefresh.N {
				prev := tok
				next, err := m.RefreshSession(ctx, tok, "203.0.113.66")
				if err != nil {
					t.Fatalf("thief's rotation %d: %v", i+1, err)
				}
				tok = next.RefreshToken
				// The thief also replays the previous token inside the
				// grace window, which counts for nothing.
				for range 3 {
					if _, err := m.RefreshSession(ctx, prev, "203.0.113.66"); err != nil {
						t.Fatalf("replay in the grace window: %v", err)
					}
				}
			}
			if _, err := m.RefreshSession(ctx, tok, "203.0.113.66"); outcome(err) != "throttled" {
				t.Fatalf("the thief past the session's limit: got %v, want throttled", err)
			}
			mustEnd(t, g, g.RefreshToken, "192.0.2.20", tok)
		})

		t.Run("grace replays do not spend the session's budget", func(t *testing.T) {
			g := signIn(t, m, "victim2")
			next, err := m.RefreshSession(ctx, g.RefreshToken, "192.0.2.21")
			if err != nil {
				t.Fatal(err)
			}
			for i := range 3 * m.Throttles.SessionRefresh.N {
				again, err := m.RefreshSession(ctx, g.RefreshToken, "192.0.2.21")
				if err != nil || again.RefreshToken != next.RefreshToken {
					t.Fatalf("replay %d in the grace window: got %v, want the same successor", i+1, err)
				}
			}
			tok := next.RefreshToken
			for i := 1; i < m.Throttles.SessionRefresh.N; i++ {
				n, err := m.RefreshSession(ctx, tok, "192.0.2.21")
				if err != nil {
					t.Fatalf("rotation %d: got %v, want new tokens", i+1, err)
				}
				tok = n.RefreshToken
			}
		})

		t.Run("a neighbour fills the address's failed-refresh budget", func(t *testing.T) {
			g := signIn(t, m, "victim3")
			const nat = "192.0.2.22"
			next, err := m.RefreshSession(ctx, g.RefreshToken, "203.0.113.67") // the thief rotates
			if err != nil {
				t.Fatal(err)
			}
			for range m.Throttles.FailedRefresh.N {
				if _, err := m.RefreshSession(ctx, forge(g.RefreshToken), nat); !errors.Is(err, sessiond.ErrInvalidToken) {
					t.Fatalf("forgery: got %v, want invalid token", err)
				}
			}
			if _, err := m.RefreshSession(ctx, forge(g.RefreshToken), nat); outcome(err) != "throttled" {
				t.Fatalf("forgery past the limit: got %v, want throttled", err)
			}
			// Another user behind the same address refreshes as usual.
			other := signIn(t, m, "neighbour3")
			if _, err := m.RefreshSession(ctx, other.RefreshToken, nat); err != nil {
				t.Fatalf("an authentic refresh behind the address: got %v, want new tokens", err)
			}
			// Past the grace window, the victim's token is reuse.
			m.Now = func() time.Time { return time.Now().Add(m.RefreshGrace + time.Second) }
			mustEnd(t, g, g.RefreshToken, nat, next.RefreshToken)
		})
	})
}

// forge returns tok with its MAC replaced: the same user, session and
// generation, not signed by the server.
func forge(tok string) string {
	i := strings.LastIndexByte(tok, '.')
	mac := make([]byte, 32)
	rand.Read(mac)
	return tok[:i+1] + base64.RawURLEncoding.EncodeToString(mac)
}
