package sessiond_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sessiond/sessiond"
	"github.com/sessiond/sessiond/internal/sessiondtest"
	"github.com/sessiond/sessiond/redis"
	"github.com/sessiond/sessiond/redis/redistest"
	"github.com/sessiond/sessiond/sqlite"
)

// benchStores are the session stores the Manager benchmarks run on: the
// embedded SQLite file, and Redis through the client-side cache and in
// strict mode. Users and throttles stay in SQLite, as in the binary; with
// Redis the throttles move to Redis, as in the binary.
var benchStores = []struct {
	name   string
	redis  bool
	strict bool
}{{"store=sqlite", false, false}, {"store=redis", true, false}, {"store=redis-strict", true, true}}

// benchManager returns a Manager on a fresh store with cheap password
// hashing and a clock that only moves when told to. With Redis, other
// opens another Store on the same server: another instance's view.
// benchUserAgent is a desktop browser's User-Agent.
const benchUserAgent = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"

func benchManager(b *testing.B, useRedis, strict bool) (m *sessiond.Manager, clock *atomic.Int64, other func() sessiond.SessionStore) {
	b.Helper()
	db := sessiondtest.OpenSQLite(b)
	var sessions sessiond.SessionStore = sqlite.NewSessionStore(db)
	var limiter sessiond.Limiter = sqlite.NewLimiter(db)
	if useRedis {
		srv := redistest.Start(b)
		open := func() *redis.Store {
			st, err := redis.New(context.Background(), redis.Options{URL: srv.URL(), Strict: strict, Timeout: 2 * time.Second})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(st.Close)
			return st
		}
		st := open()
		sessions, limiter = st, redis.NewLimiter(st)
		other = func() sessiond.SessionStore { return open() }
	}
	clock = new(atomic.Int64)
	clock.Store(time.Now().UnixNano())
	m = sessiondtest.NewManager(b, sessiondtest.Options{
		DB: db, Sessions: sessions, Limiter: limiter, Issuer: "bench", CheapHashing: true,
		Now: func() time.Time { return time.Unix(0, clock.Load()) },
	}).Manager
	return m, clock, other
}

func benchGrant(b *testing.B, m *sessiond.Manager) *sessiond.Grant {
	b.Helper()
	ctx := context.Background()
	if _, err := m.Register(ctx, sessiond.RegisterRequest{Username: "bench", Email: "bench@example.com", Password: "password123"}); err != nil {
		b.Fatal(err)
	}
	g, err := m.Login(ctx, sessiond.LoginRequest{
		Login: "bench", Password: "password123", DeviceID: "device-1",
		UserAgent: benchUserAgent, ClientIP: "203.0.113.7",
	})
	if err != nil {
		b.Fatal(err)
	}
	return g
}

// BenchmarkAuthenticate is the per-request check of a hot token: the
// cached signature check and the session lookup (from the store's cache,
// or from Redis in strict mode). With Redis, the session is checked by
// another instance than the one that created it: the creating instance
// reads its own recent writes from Redis for a few seconds.
func BenchmarkAuthenticate(b *testing.B) {
	for _, st := range benchStores {
		b.Run(st.name, func(b *testing.B) {
			m, _, other := benchManager(b, st.redis, st.strict)
			g := benchGrant(b, m)
			if other != nil {
				m.SetSessionsForTest(other())
			}
			ctx := context.Background()
			if _, _, err := m.Authenticate(ctx, g.AccessToken); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := m.Authenticate(ctx, g.AccessToken); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkRefreshSession rotates one session's refresh token again and
// again, throttles included: the clock moves 7 s per refresh, so the
// 10-per-minute limit of one session's refreshes is never reached.
func BenchmarkRefreshSession(b *testing.B) {
	for _, st := range benchStores[:2] { // strict mode does not change a refresh
		b.Run(st.name, func(b *testing.B) {
			m, clock, _ := benchManager(b, st.redis, st.strict)
			m.AbsoluteLifetime = 0
			g := benchGrant(b, m)
			ctx := context.Background()
			token := g.RefreshToken
			b.ReportAllocs()
			for b.Loop() {
				clock.Add(int64(7 * time.Second))
				ng, err := m.RefreshSession(ctx, token, "203.0.113.7")
				if err != nil {
					b.Fatal(err)
				}
				token = ng.RefreshToken
			}
		})
	}
}

// BenchmarkLogin is a successful sign-in with cheap hashing, throttles
// included (their check before the hash, and after it the check that
// writes, so that a store refusing writes refuses the sign-in), on a
// device that replaces its own session each time.
func BenchmarkLogin(b *testing.B) {
	for _, st := range benchStores[:2] { // strict mode does not change a login
		b.Run(st.name, func(b *testing.B) {
			m, _, _ := benchManager(b, st.redis, st.strict)
			benchGrant(b, m)
			ctx := context.Background()
			req := sessiond.LoginRequest{
				Login: "bench", Password: "password123", DeviceID: "device-1",
				UserAgent: benchUserAgent, ClientIP: "203.0.113.7",
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := m.Login(ctx, req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkStartSession is BenchmarkLogin for a user the app signed in:
// the same device replaces its own session each time, with no password
// and no throttle, on a Manager whose users are in SQLite (it checks that
// the user exists and is not locked), beside BenchmarkLogin's figures.
func BenchmarkStartSession(b *testing.B) {
	for _, st := range benchStores[:2] {
		b.Run(st.name, func(b *testing.B) {
			m, _, _ := benchManager(b, st.redis, st.strict)
			g := benchGrant(b, m)
			ctx := context.Background()
			req := sessiond.StartRequest{
				UserID: g.Session.UserID, DeviceID: "device-1",
				UserAgent: benchUserAgent, ClientIP: "203.0.113.7",
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := m.StartSession(ctx, req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
