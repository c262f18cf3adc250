package sessiond_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/sessiond/sessiond"
	"github.com/sessiond/sessiond/internal/sessiondtest"
)

// clock is a settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// newManager returns a Manager on a fresh SQLite file with a fake clock and
// cheap password hashing.
func newManager(t *testing.T) (*sessiond.Manager, *clock) {
	t.Helper()
	clk := &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	m := sessiondtest.NewManager(t, sessiondtest.Options{Issuer: "test", CheapHashing: true, Now: clk.Now, Logger: slog.Default()}).Manager
	return m, clk
}

func signIn(t *testing.T, m *sessiond.Manager, name string) *sessiond.Grant {
	t.Helper()
	ctx := context.Background()
	if _, err := m.UsersForTest().UserByLogin(ctx, name); errors.Is(err, sessiond.ErrNotFound) {
		if _, err := m.Register(ctx, sessiond.RegisterRequest{Username: name, Email: name + "@example.com", Password: "password123"}); err != nil {
			t.Fatal(err)
		}
	}
	g, err := m.Login(ctx, sessiond.LoginRequest{Login: name, Password: "password123", UserAgent: "curl/8.5.0"})
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func TestRefreshReplayAfterGraceIsReuse(t *testing.T) {
	m, clk := newManager(t)
	ctx := context.Background()
	g := signIn(t, m, "ann")
	g2, err := m.RefreshSession(ctx, g.RefreshToken, "")
	if err != nil {
		t.Fatal(err)
	}
	clk.Advance(m.RefreshGrace - time.Millisecond)
	g2b, err := m.RefreshSession(ctx, g.RefreshToken, "")
	if err != nil || g2b.RefreshToken != g2.RefreshToken {
		t.Fatalf("replay inside grace: got %v, want the same successor", err)
	}
	clk.Advance(2 * time.Millisecond)
	if _, err := m.RefreshSession(ctx, g.RefreshToken, ""); !errors.Is(err, sessiond.ErrInvalidToken) {
		t.Fatalf("replay after grace: got %v, want ErrInvalidToken", err)
	}
	if _, _, err := m.Authenticate(ctx, g2.AccessToken); !errors.Is(err, sessiond.ErrInvalidToken) {
		t.Fatalf("session after reuse: got %v, want revoked", err)
	}
}

func TestConcurrentRefreshGetsOneSuccessor(t *testing.T) {
	m, _ := newManager(t)
	ctx := context.Background()
	g := signIn(t, m, "bea")
	m.Throttles.SessionRefresh.N = 0
	const n = 50
	tokens := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ng, err := m.RefreshSession(ctx, g.RefreshToken, "")
			errs[i] = err
			if err == nil {
				tokens[i] = ng.RefreshToken
			}
		}()
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("refresh %d: %v", i, errs[i])
		}
		if tokens[i] != tokens[0] {
			t.Fatalf("refresh %d got a different successor", i)
		}
	}
	s, err := m.SessionsForTest().Get(ctx, g.Session.UserID, g.Session.ID, m.Now())
	if err != nil || s.Generation != 2 {
		t.Fatalf("after 50 refreshes: session %+v, %v; want generation 2", s, err)
	}
}

func TestAccessTokenNeverOutlivesSession(t *testing.T) {
	m, clk := newManager(t)
	m.AbsoluteLifetime = 20 * time.Minute
	ctx := context.Background()
	g := signIn(t, m, "cy")
	if !g.AccessExpiresAt.Equal(g.Session.CreatedAt.Add(15 * time.Minute)) {
		t.Fatalf("first token: got exp %v", g.AccessExpiresAt)
	}
	clk.Advance(10 * time.Minute)
	g2, err := m.RefreshSession(ctx, g.RefreshToken, "")
	if err != nil {
		t.Fatal(err)
	}
	if want := g.Session.CreatedAt.Add(20 * time.Minute); !g2.AccessExpiresAt.Equal(want) {
		t.Fatalf("token after refresh: exp %v, want the session's absolute end %v", g2.AccessExpiresAt, want)
	}
	clk.Advance(10*time.Minute + time.Millisecond)
	if _, err := m.RefreshSession(ctx, g2.RefreshToken, ""); !errors.Is(err, sessiond.ErrInvalidToken) {
		t.Fatalf("refresh past the absolute lifetime: got %v", err)
	}
}

func TestIdleTimeoutSlidesWithActivity(t *testing.T) {
	m, clk := newManager(t)
	m.IdleTimeout = 10 * time.Minute
	ctx := context.Background()
	g := signIn(t, m, "dee")
	// A validated request is activity: it slides the idle expiry.
	clk.Advance(9 * time.Minute)
	if _, _, err := m.Authenticate(ctx, g.AccessToken); err != nil {
		t.Fatalf("active session refused: %v", err)
	}
	clk.Advance(9 * time.Minute)
	// So is a refresh.
	for range 3 {
		ng, err := m.RefreshSession(ctx, g.RefreshToken, "")
		if err != nil {
			t.Fatalf("refresh of an active session: %v", err)
		}
		g = ng
		clk.Advance(9 * time.Minute)
	}
	clk.Advance(time.Minute + time.Millisecond)
	if _, err := m.RefreshSession(ctx, g.RefreshToken, ""); !errors.Is(err, sessiond.ErrInvalidToken) {
		t.Fatalf("refresh of an idle session: got %v, want ErrInvalidToken", err)
	}
}

func TestActivityIsWrittenAtMostOncePerInterval(t *testing.T) {
	m, clk := newManager(t)
	ctx := context.Background()
	g := signIn(t, m, "eve")
	login := g.Session.LastActive
	clk.Advance(30 * time.Second)
	s, _, err := m.Authenticate(ctx, g.AccessToken)
	if err != nil || !s.LastActive.Equal(login) {
		t.Fatalf("after 30 s: last_active %v, want unchanged %v (%v)", s.LastActive, login, err)
	}
	clk.Advance(31 * time.Second)
	if _, _, err := m.Authenticate(ctx, g.AccessToken); err != nil {
		t.Fatal(err)
	}
	stored, err := m.SessionsForTest().Get(ctx, g.Session.UserID, g.Session.ID, m.Now())
	if err != nil || !stored.LastActive.Equal(m.Now().UTC().Truncate(time.Millisecond)) {
		t.Fatalf("after 61 s: stored last_active %v, want %v (%v)", stored.LastActive, m.Now(), err)
	}
}

func TestAccountEventsEndSessions(t *testing.T) {
	m, _ := newManager(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		act  func(userID string) error
	}{
		{"lock", func(id string) error { _, err := m.SetLocked(ctx, id, true); return err }},
		{"reset", func(id string) error { _, err := m.ResetPassword(ctx, id, "another password"); return err }},
		{"delete", func(id string) error { _, err := m.DeleteUser(ctx, id); return err }},
		{"revoke all", func(id string) error { _, err := m.RevokeAll(ctx, id, sessiond.ReasonAdmin); return err }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			name := "u" + tc.name[:3]
			a, b := signIn(t, m, name), signIn(t, m, name)
			if err := tc.act(a.Session.UserID); err != nil {
				t.Fatal(err)
			}
			for _, g := range []*sessiond.Grant{a, b} {
				if _, _, err := m.Authenticate(ctx, g.AccessToken); !errors.Is(err, sessiond.ErrInvalidToken) {
					t.Fatalf("session survived %s: %v", tc.name, err)
				}
			}
		})
	}
	// A locked account cannot sign in even with the right password.
	g := signIn(t, m, "locked")
	if _, err := m.SetLocked(ctx, g.Session.UserID, true); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Login(ctx, sessiond.LoginRequest{Login: "locked", Password: "password123"}); !errors.Is(err, sessiond.ErrAccountLocked) {
		t.Fatalf("login to a locked account: got %v", err)
	}
}

// hookedSessions runs before() ahead of each Create of the real store it
// wraps, to interleave another act with a login deterministically.
type hookedSessions struct {
	sessiond.SessionStore
	before func()
}

func (h *hookedSessions) Create(ctx context.Context, s *sessiond.Session, l sessiond.SessionCap, now time.Time) ([]sessiond.Ended, error) {
	if h.before != nil {
		h.before()
	}
	return h.SessionStore.Create(ctx, s, l, now)
}

// TestLoginRacingAccountActsKeepsNoSession: a login whose password check
// passed before a reset, lock or deletion, and whose session is created
// after that act ended the user's sessions, must not keep its session.
func TestLoginRacingAccountActsKeepsNoSession(t *testing.T) {
	for _, tc := range []struct {
		name string
		act  func(m *sessiond.Manager, id string) error
		want error
	}{
		{"reset", func(m *sessiond.Manager, id string) error {
			_, err := m.ResetPassword(context.Background(), id, "another password")
			return err
		}, sessiond.ErrInvalidCredentials},
		{"lock", func(m *sessiond.Manager, id string) error {
			_, err := m.SetLocked(context.Background(), id, true)
			return err
		}, sessiond.ErrAccountLocked},
		{"delete", func(m *sessiond.Manager, id string) error {
			_, err := m.DeleteUser(context.Background(), id)
			return err
		}, sessiond.ErrInvalidCredentials},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, _ := newManager(t)
			ctx := context.Background()
			u, err := m.Register(ctx, sessiond.RegisterRequest{Username: "wes", Email: "wes@example.com", Password: "password123"})
			if err != nil {
				t.Fatal(err)
			}
			hooked := &hookedSessions{SessionStore: m.SessionsForTest()}
			hooked.before = func() {
				hooked.before = nil
				if err := tc.act(m, u.ID); err != nil {
					t.Errorf("%s: %v", tc.name, err)
				}
			}
			m.SetSessionsForTest(hooked)
			if _, err := m.Login(ctx, sessiond.LoginRequest{Login: "wes", Password: "password123"}); !errors.Is(err, tc.want) {
				t.Fatalf("login racing %s: got %v, want %v", tc.name, err, tc.want)
			}
			if list, err := m.SessionsForTest().List(ctx, u.ID, m.Now()); err != nil || len(list) != 0 {
				t.Fatalf("sessions left after %s: %d (%v)", tc.name, len(list), err)
			}
		})
	}
}

// TestOneAddressCannotLockAnAccount: however many wrong passwords one
// address sends at once, the account's own budget takes at most that
// address's share, and the user signs in from elsewhere.
func TestOneAddressCannotLockAnAccount(t *testing.T) {
	m, _ := newManager(t)
	ctx := context.Background()
	signIn(t, m, "xena")
	var wg sync.WaitGroup
	for range 150 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m.Login(ctx, sessiond.LoginRequest{Login: "xena", Password: "wrong password", ClientIP: "198.51.100.7"})
		}()
	}
	wg.Wait()
	if _, err := m.Login(ctx, sessiond.LoginRequest{Login: "xena", Password: "password123", ClientIP: "203.0.113.9"}); err != nil {
		t.Fatalf("the user from another address after a burst: %v", err)
	}
	var throttled *sessiond.ThrottledError
	if _, err := m.Login(ctx, sessiond.LoginRequest{Login: "xena", Password: "password123", ClientIP: "198.51.100.7"}); !errors.As(err, &throttled) {
		t.Fatalf("the bursting address: got %v, want throttled", err)
	}
}

// TestIPv6ThrottlesCountPerSlash64: addresses of one /64 share one budget.
func TestIPv6ThrottlesCountPerSlash64(t *testing.T) {
	m, _ := newManager(t)
	ctx := context.Background()
	for i := range m.Throttles.LoginIP.N {
		ip := fmt.Sprintf("2001:db8:1:2::%x", i+1)
		if _, err := m.Login(ctx, sessiond.LoginRequest{Login: fmt.Sprintf("nobody%d", i), Password: "wrong password", ClientIP: ip}); !errors.Is(err, sessiond.ErrInvalidCredentials) {
			t.Fatalf("attempt %d: %v", i, err)
		}
	}
	var throttled *sessiond.ThrottledError
	if _, err := m.Login(ctx, sessiond.LoginRequest{Login: "someone", Password: "wrong password", ClientIP: "2001:db8:1:2:ffff::1"}); !errors.As(err, &throttled) {
		t.Fatalf("same /64, new address: got %v, want throttled", err)
	}
	if _, err := m.Login(ctx, sessiond.LoginRequest{Login: "someone", Password: "wrong password", ClientIP: "2001:db8:1:3::1"}); !errors.Is(err, sessiond.ErrInvalidCredentials) {
		t.Fatalf("another /64: got %v, want a plain failure", err)
	}
}

func TestLogoutOfAnEndedSessionSucceeds(t *testing.T) {
	m, _ := newManager(t)
	g := signIn(t, m, "yara")
	for i := range 2 {
		if err := m.Logout(context.Background(), g.Session); err != nil {
			t.Fatalf("logout %d: %v", i+1, err)
		}
	}
}
