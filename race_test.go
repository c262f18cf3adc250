package sessiond_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sessiond/sessiond"
	"github.com/sessiond/sessiond/internal/sessiondtest"
	"github.com/sessiond/sessiond/redis"
	"github.com/sessiond/sessiond/redis/redistest"
	"github.com/sessiond/sessiond/sqlite"
)

// raceEnv is one deployment the race tests run on. m refreshes,
// authenticates and checks; revoker revokes (m itself, or another instance
// on the same stores); creator signs in, so that m reads the session through
// its cache as it would a session created elsewhere.
type raceEnv struct {
	m, revoker, creator *sessiond.Manager
	clk                 *clock
	// wait bounds how long m may still accept a session that revoker
	// revoked: 0 on the instance that revoked, up to a second elsewhere
	// (docs/design.md, "Revocation across instances").
	wait time.Duration
	// exists reports whether the store still holds anything under the
	// session's key, whatever Get and List make of it; nil when List is
	// the whole truth.
	exists func(t *testing.T, userID, id string) bool
}

// newManagerOn returns a Manager over sessions, with users in db, the given
// keys and clock, cheap password hashing and no throttles (the races below
// replay and fail refreshes far more often than a throttle allows, and the
// throttles have their own tests).
func newManagerOn(t *testing.T, sessions sessiond.SessionStore, db *sqlite.DB, sk *sessiond.SigningKey, rk *sessiond.RefreshKey, clk *clock) *sessiond.Manager {
	t.Helper()
	return sessiondtest.NewManager(t, sessiondtest.Options{
		DB: db, Sessions: sessions, NoLimiter: true, Issuer: "test", SigningKey: sk, RefreshKey: rk,
		CheapHashing: true, Now: clk.Now,
	}).Manager
}

// openRedis returns a Store on srv, closed when t ends. Calls get a 2 s
// deadline: a busy test machine must not turn a race into a timeout.
func openRedis(t *testing.T, srv *redistest.Server) *redis.Store {
	t.Helper()
	st, err := redis.New(context.Background(), redis.Options{URL: srv.URL(), Timeout: 2 * time.Second})
	if err != nil {
		t.Fatalf("redis.New: %v", err)
	}
	t.Cleanup(st.Close)
	return st
}

// forEachDeployment runs body on SQLite, on Redis (one instance), and on
// Redis with the revocation made by a second instance.
func forEachDeployment(t *testing.T, body func(t *testing.T, env *raceEnv)) {
	keys := func(t *testing.T) (*sessiond.SigningKey, *sessiond.RefreshKey) {
		sk, err := sessiond.GenerateSigningKey()
		if err != nil {
			t.Fatal(err)
		}
		rk, err := sessiond.GenerateRefreshKey()
		if err != nil {
			t.Fatal(err)
		}
		return sk, rk
	}
	// A clock near real time: Redis expires keys at the sessions' expiry.
	newClock := func() *clock { return &clock{t: time.Now().UTC().Truncate(time.Millisecond)} }

	t.Run("sqlite", func(t *testing.T) {
		db := sessiondtest.OpenSQLite(t)
		sk, rk := keys(t)
		clk := newClock()
		m := newManagerOn(t, sqlite.NewSessionStore(db), db, sk, rk, clk)
		body(t, &raceEnv{m: m, revoker: m, creator: m, clk: clk})
	})

	redisExists := func(srv *redistest.Server) func(t *testing.T, userID, id string) bool {
		return func(t *testing.T, userID, id string) bool {
			t.Helper()
			return srv.MustDo("EXISTS", redis.SessionKey(userID, id)) != "0"
		}
	}
	t.Run("redis", func(t *testing.T) {
		srv := redistest.Start(t)
		db := sessiondtest.OpenSQLite(t)
		sk, rk := keys(t)
		clk := newClock()
		m := newManagerOn(t, openRedis(t, srv), db, sk, rk, clk)
		creator := newManagerOn(t, openRedis(t, srv), db, sk, rk, clk)
		body(t, &raceEnv{m: m, revoker: m, creator: creator, clk: clk, exists: redisExists(srv)})
	})
	t.Run("redis/revoked by another instance", func(t *testing.T) {
		srv := redistest.Start(t)
		db := sessiondtest.OpenSQLite(t)
		sk, rk := keys(t)
		clk := newClock()
		m := newManagerOn(t, openRedis(t, srv), db, sk, rk, clk)
		other := newManagerOn(t, openRedis(t, srv), db, sk, rk, clk)
		body(t, &raceEnv{m: m, revoker: other, creator: other, clk: clk, wait: time.Second, exists: redisExists(srv)})
	})
}

// register creates a user on env and returns its id.
func (env *raceEnv) register(t *testing.T, name string) string {
	t.Helper()
	u, err := env.creator.Register(context.Background(), sessiond.RegisterRequest{Username: name, Email: name + "@example.com", Password: "password123"})
	if err != nil {
		t.Fatal(err)
	}
	return u.ID
}

// login signs name in on the creator and has m validate the access token
// once, so that m holds the session in its cache before the race.
func (env *raceEnv) login(t *testing.T, name string) *sessiond.Grant {
	t.Helper()
	ctx := context.Background()
	g, err := env.creator.Login(ctx, sessiond.LoginRequest{Login: name, Password: "password123", UserAgent: "curl/8.5.0"})
	if err != nil {
		t.Fatalf("Login: %v", err)
	}
	if _, _, err := env.m.Authenticate(ctx, g.AccessToken); err != nil {
		t.Fatalf("Authenticate right after login: %v", err)
	}
	return g
}

// refused lists what still accepts the session userID/id on m, given every
// token it was ever issued; nil when everything refuses it. Any error other
// than a refusal fails the test: a store that cannot answer proves nothing.
func refused(t *testing.T, m *sessiond.Manager, userID, id string, access, refresh []string) []string {
	t.Helper()
	ctx := context.Background()
	var accepted []string
	for i, at := range access {
		_, _, err := m.Authenticate(ctx, at)
		switch {
		case err == nil:
			accepted = append(accepted, fmt.Sprintf("access token %d", i))
		case !errors.Is(err, sessiond.ErrInvalidToken):
			t.Fatalf("Authenticate: got %v, want ErrInvalidToken", err)
		}
	}
	for i, rt := range refresh {
		_, err := m.RefreshSession(ctx, rt, "192.0.2.1")
		switch {
		case err == nil:
			accepted = append(accepted, fmt.Sprintf("refresh token %d", i))
		case !errors.Is(err, sessiond.ErrInvalidToken):
			t.Fatalf("RefreshSession: got %v, want ErrInvalidToken", err)
		}
	}
	switch s, err := m.SessionsForTest().Get(ctx, userID, id, m.Now()); {
	case err == nil:
		accepted = append(accepted, fmt.Sprintf("Get (generation %d)", s.Generation))
	case !errors.Is(err, sessiond.ErrNotFound):
		t.Fatalf("Get: got %v, want ErrNotFound", err)
	}
	return accepted
}

// mustBeGone checks that nothing accepts the session on m, at once when
// within is 0, else polling for at most within; then that nothing accepts
// it on a second look, that List does not show it and (when env can tell)
// that the store holds nothing under its key. It returns how long m took to
// refuse everything.
func (env *raceEnv) mustBeGone(t *testing.T, m *sessiond.Manager, within time.Duration, what string, g *sessiond.Grant, access, refresh []string) time.Duration {
	t.Helper()
	uid, sid := g.Session.UserID, g.Session.ID
	start := time.Now()
	deadline := start.Add(within)
	var took time.Duration
	for {
		accepted := refused(t, m, uid, sid, access, refresh)
		if accepted == nil {
			took = time.Since(start)
			break
		}
		if time.Now().After(deadline) {
			if within == 0 {
				t.Fatalf("%s: right after the revoke returned, the session still works: %v accepted it", what, accepted)
			}
			t.Fatalf("%s: %s after the revoke returned, the session still works: %v accepted it", what, within, accepted)
		}
		time.Sleep(100 * time.Microsecond)
	}
	if accepted := refused(t, m, uid, sid, access, refresh); accepted != nil {
		t.Fatalf("%s: the session came back after it was refused: %v accepted it", what, accepted)
	}
	list, err := m.List(context.Background(), uid, "")
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if slices.ContainsFunc(list, func(s *sessiond.Session) bool { return s.ID == sid }) {
		t.Fatalf("%s: List still shows the revoked session", what)
	}
	if env.exists != nil && env.exists(t, uid, sid) {
		t.Fatalf("%s: the store holds the session's key again after the revoke", what)
	}
	return took
}

// TestRaceConcurrentRefreshOnRedis is TestConcurrentRefreshGetsOneSuccessor
// on Redis: 50 refreshes with one token at once, on one instance or spread
// over two, rotate the session exactly once, every caller gets the same
// successor, and nothing counts as reuse.
func TestRaceConcurrentRefreshOnRedis(t *testing.T) {
	for _, instances := range []int{1, 2} {
		t.Run(fmt.Sprintf("%d instances", instances), func(t *testing.T) {
			srv := redistest.Start(t)
			db := sessiondtest.OpenSQLite(t)
			sk, _ := sessiond.GenerateSigningKey()
			rk, _ := sessiond.GenerateRefreshKey()
			clk := &clock{t: time.Now().UTC().Truncate(time.Millisecond)}
			var ms []*sessiond.Manager
			for range instances {
				ms = append(ms, newManagerOn(t, openRedis(t, srv), db, sk, rk, clk))
			}
			// Sign in on a third instance, so every refresher starts from
			// its cache.
			env := &raceEnv{m: ms[0], revoker: ms[0], creator: newManagerOn(t, openRedis(t, srv), db, sk, rk, clk), clk: clk}
			env.register(t, "bea")
			for round := range 20 {
				g := env.login(t, "bea")
				for _, m := range ms[1:] {
					if _, _, err := m.Authenticate(context.Background(), g.AccessToken); err != nil {
						t.Fatal(err)
					}
				}
				const n = 50
				grants := make([]*sessiond.Grant, n)
				errs := make([]error, n)
				var wg sync.WaitGroup
				start := make(chan struct{})
				for i := range n {
					wg.Add(1)
					go func() {
						defer wg.Done()
						<-start
						grants[i], errs[i] = ms[i%len(ms)].RefreshSession(context.Background(), g.RefreshToken, "192.0.2.1")
					}()
				}
				close(start)
				wg.Wait()
				for i := range n {
					if errs[i] != nil {
						t.Fatalf("round %d: refresh %d: %v", round, i, errs[i])
					}
					if grants[i].RefreshToken != grants[0].RefreshToken || grants[i].Session.Generation != 2 {
						t.Fatalf("round %d: refresh %d got generation %d and a different successor, want everyone the same generation 2", round, i, grants[i].Session.Generation)
					}
				}
				s, err := ms[0].SessionsForTest().Get(context.Background(), g.Session.UserID, g.Session.ID, clk.Now())
				if err != nil || s.Generation != 2 {
					t.Fatalf("round %d: after 50 refreshes: session %+v, %v; want it live at generation 2", round, s, err)
				}
				// The successor works everywhere: it is the current token,
				// not a sibling that would count as reuse.
				for _, m := range ms {
					if _, _, err := m.Authenticate(context.Background(), grants[0].AccessToken); err != nil {
						t.Fatalf("round %d: the successor's access token: %v", round, err)
					}
				}
				g3, err := ms[len(ms)-1].RefreshSession(context.Background(), grants[0].RefreshToken, "192.0.2.1")
				if err != nil || g3.Session.Generation != 3 {
					t.Fatalf("round %d: refreshing the successor: %v, want generation 3", round, err)
				}
				if err := env.revoker.Revoke(context.Background(), g.Session.UserID, g.Session.ID, sessiond.ReasonLogout); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

// TestRaceRefreshVersusRevoke starts a refresh and a revoke of one session
// at the same moment, 1,000 times: whichever wins, once the revoke has
// returned no token the session ever had works again, neither the old
// refresh token nor the successor the refresh may have handed out.
func TestRaceRefreshVersusRevoke(t *testing.T) {
	forEachDeployment(t, func(t *testing.T, env *raceEnv) {
		env.register(t, "ray")
		ctx := context.Background()
		won, slowest := 0, time.Duration(0)
		const rounds = 1000
		for round := range rounds {
			g := env.login(t, "ray")
			var (
				ng        *sessiond.Grant
				refreshed error
				wg        sync.WaitGroup
				start     = make(chan struct{})
			)
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				ng, refreshed = env.m.RefreshSession(ctx, g.RefreshToken, "192.0.2.1")
			}()
			revoked := make(chan error, 1)
			go func() {
				<-start
				revoked <- env.revoker.Revoke(ctx, g.Session.UserID, g.Session.ID, sessiond.ReasonRevoked)
			}()
			close(start)
			if err := <-revoked; err != nil {
				t.Fatalf("round %d: Revoke: %v", round, err)
			}
			what := fmt.Sprintf("round %d", round)
			// The refresh may still be running: the tokens known so far
			// must already be refused where the revoke happened.
			env.mustBeGone(t, env.revoker, 0, what+", on the revoking instance", g, []string{g.AccessToken}, nil)
			wg.Wait()
			access, refresh := []string{g.AccessToken}, []string{g.RefreshToken}
			switch {
			case refreshed == nil:
				won++
				access, refresh = append(access, ng.AccessToken), append(refresh, ng.RefreshToken)
			case !errors.Is(refreshed, sessiond.ErrInvalidToken):
				t.Fatalf("round %d: RefreshSession racing a revoke: got %v, want success or ErrInvalidToken", round, refreshed)
			}
			slowest = max(slowest, env.mustBeGone(t, env.m, env.wait, what, g, access, refresh))
			if env.revoker != env.m {
				env.mustBeGone(t, env.revoker, 0, what+", on the revoking instance", g, access, refresh)
			}
		}
		t.Logf("the refresh came first in %d of %d rounds", won, rounds)
		if env.wait > 0 {
			t.Logf("the other instance refused every token at most %s after the revoke returned", slowest)
		}
	})
}

// TestRaceActivityVersusRevoke races a validated request that records
// activity (every Authenticate touches: the interval is 1 ms and the clock
// moves a second a round) against a revoke, 1,000 times: the touch never
// brings the session back.
func TestRaceActivityVersusRevoke(t *testing.T) {
	forEachDeployment(t, func(t *testing.T, env *raceEnv) {
		for _, m := range []*sessiond.Manager{env.m, env.revoker, env.creator} {
			m.ActivityInterval = time.Millisecond
		}
		env.register(t, "ada")
		ctx := context.Background()
		active, slowest := 0, time.Duration(0)
		const rounds = 1000
		for round := range rounds {
			g := env.login(t, "ada")
			env.clk.Advance(time.Second)
			var (
				s       *sessiond.Session
				touched error
				wg      sync.WaitGroup
				start   = make(chan struct{})
			)
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				s, _, touched = env.m.Authenticate(ctx, g.AccessToken)
			}()
			revoked := make(chan error, 1)
			go func() {
				<-start
				revoked <- env.revoker.Revoke(ctx, g.Session.UserID, g.Session.ID, sessiond.ReasonRevoked)
			}()
			close(start)
			if err := <-revoked; err != nil {
				t.Fatalf("round %d: Revoke: %v", round, err)
			}
			what := fmt.Sprintf("round %d", round)
			env.mustBeGone(t, env.revoker, 0, what+", on the revoking instance", g, []string{g.AccessToken}, nil)
			wg.Wait()
			switch {
			case touched == nil:
				active++
				if want := env.clk.Now(); !s.LastActive.Equal(want) {
					t.Fatalf("round %d: the accepted request did not record activity: last_active %v, want %v", round, s.LastActive, want)
				}
			case !errors.Is(touched, sessiond.ErrInvalidToken):
				t.Fatalf("round %d: Authenticate racing a revoke: got %v, want success or ErrInvalidToken", round, touched)
			}
			// Move on so that a late touch would be a real write.
			env.clk.Advance(time.Second)
			slowest = max(slowest, env.mustBeGone(t, env.m, env.wait, what, g, []string{g.AccessToken}, []string{g.RefreshToken}))
		}
		t.Logf("the request was accepted (touched before the revoke) in %d of %d rounds", active, rounds)
		if env.wait > 0 {
			t.Logf("the other instance refused every token at most %s after the revoke returned", slowest)
		}
	})
}
