package sessiond_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sessiond/sessiond"
	"github.com/sessiond/sessiond/internal/sessiondtest"
)

// oneByOne counts one counter per call to the Limiter it wraps, as a store
// without a way to count several at once would.
type oneByOne struct{ sessiond.Limiter }

func (l oneByOne) Count(ctx context.Context, cs []sessiond.Counter, now time.Time, counts []sessiond.Counted) error {
	for i := range cs {
		if err := l.Limiter.Count(ctx, cs[i:i+1], now, counts[i:i+1]); err != nil {
			return err
		}
	}
	return nil
}

// callCounter counts the calls a Manager makes to its Limiter.
type callCounter struct {
	sessiond.Limiter
	count, reset, take atomic.Int64
}

func (c *callCounter) Take(ctx context.Context, bs []sessiond.Budget, id string, now time.Time) (sessiond.Taken, error) {
	c.take.Add(1)
	return c.Limiter.Take(ctx, bs, id, now)
}

func (c *callCounter) Reset(ctx context.Context, key string) error {
	c.reset.Add(1)
	return c.Limiter.Reset(ctx, key)
}

func (c *callCounter) Count(ctx context.Context, cs []sessiond.Counter, now time.Time, counts []sessiond.Counted) error {
	c.count.Add(1)
	return c.Limiter.Count(ctx, cs, now, counts)
}

// TestLoginCountsItsThrottlesOnceEachSideOfTheHash: a successful login
// counts its throttles in one call (not once per counter) before its
// account's turn and once more in it (so that a store that does not
// answer fails every sign-in at once, in parallel, and a burst still sees
// the failures recorded before its turn), then takes (without recording)
// once per group of counters after the hash, and resets nothing that it
// has just counted empty: with a shared store each call is a round trip.
func TestLoginCountsItsThrottlesOnceEachSideOfTheHash(t *testing.T) {
	m, _ := newManager(t)
	signIn(t, m, "quinn")
	c := &callCounter{Limiter: m.LimiterForTest()}
	m.SetLimiterForTest(c)
	ctx := context.Background()
	login := func(password string) error {
		_, err := m.Login(ctx, sessiond.LoginRequest{Login: "quinn", Password: password, ClientIP: "192.0.2.4"})
		return err
	}
	if err := login("password123"); err != nil {
		t.Fatal(err)
	}
	if got, want := c.count.Load(), int64(2); got != want {
		t.Errorf("Count calls: got %d, want %d", got, want)
	}
	if got, want := c.take.Load(), int64(2); got != want {
		t.Errorf("Take calls: got %d, want %d", got, want)
	}
	if got := c.reset.Load(); got != 0 {
		t.Errorf("Reset calls with no failure to forget: got %d, want 0", got)
	}

	// After failures, a success forgets them: the full budget is back.
	for range 3 {
		if err := login("wrong password"); !errors.Is(err, sessiond.ErrInvalidCredentials) {
			t.Fatalf("wrong password: got %v, want invalid credentials", err)
		}
	}
	if err := login("password123"); err != nil {
		t.Fatal(err)
	}
	if got := c.reset.Load(); got != 1 {
		t.Errorf("Reset calls after failures: got %d, want 1", got)
	}
	for i := range m.Throttles.LoginAccountIP.N {
		if err := login("wrong password"); !errors.Is(err, sessiond.ErrInvalidCredentials) {
			t.Fatalf("failure %d after the reset: got %v, want invalid credentials", i+1, err)
		}
	}
	var throttled *sessiond.ThrottledError
	if err := login("password123"); !errors.As(err, &throttled) {
		t.Fatalf("past the limit: got %v, want throttled", err)
	}
}

// TestLoginThrottlesWithEitherLimiter: the login limits hold the same with
// a Limiter that counts one key per call as with one that counts them all
// at once, and a refused attempt names the limit it reached.
func TestLoginThrottlesWithEitherLimiter(t *testing.T) {
	for _, tt := range []struct {
		name string
		wrap func(sessiond.Limiter) sessiond.Limiter
	}{
		{"one key per call", func(l sessiond.Limiter) sessiond.Limiter { return oneByOne{l} }},
		{"all keys at once", func(l sessiond.Limiter) sessiond.Limiter { return l }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m, clk := newManager(t)
			m.SetLimiterForTest(tt.wrap(m.LimiterForTest()))
			ctx := context.Background()
			signIn(t, m, "rhea")
			login := func(password, ip string) error {
				_, err := m.Login(ctx, sessiond.LoginRequest{Login: "rhea", Password: password, ClientIP: ip})
				return err
			}
			for i := range m.Throttles.LoginAccountIP.N {
				if err := login("wrong password", "192.0.2.9"); !errors.Is(err, sessiond.ErrInvalidCredentials) {
					t.Fatalf("failure %d: got %v, want invalid credentials", i+1, err)
				}
			}
			var throttled *sessiond.ThrottledError
			if err := login("password123", "192.0.2.9"); !errors.As(err, &throttled) {
				t.Fatalf("the right password past the limit: got %v, want throttled", err)
			}
			if !strings.Contains(throttled.What, "this account from this address") {
				t.Errorf("throttled: got %q, want the account and address limit", throttled.What)
			}
			if throttled.RetryAfter < time.Second || throttled.RetryAfter > m.Throttles.LoginAccountIP.Window {
				t.Errorf("retry after: got %s, want within (1s, %s)", throttled.RetryAfter, m.Throttles.LoginAccountIP.Window)
			}
			if err := login("password123", "198.51.100.3"); err != nil {
				t.Fatalf("from another address: got %v, want a session", err)
			}
			clk.Advance(m.Throttles.LoginAccountIP.Window + time.Second)
			if err := login("password123", "192.0.2.9"); err != nil {
				t.Fatalf("after the window: got %v, want a session", err)
			}
		})
	}
}

// countingObserver counts password verifications.
type countingObserver struct {
	sessiond.Observer
	mu       sync.Mutex
	verified int
}

func (o *countingObserver) Login(bool)                 {}
func (o *countingObserver) Refresh(bool)               {}
func (o *countingObserver) ReuseDetected()             {}
func (o *countingObserver) Ended(sessiond.Reason, int) {}
func (o *countingObserver) PasswordVerified(time.Duration) {
	o.mu.Lock()
	o.verified++
	o.mu.Unlock()
}

// TestBurstOfWrongPasswordsCostsAtMostTheLimitInHashes: a burst of wrong
// passwords sent at once for one account gets no more hashes than its
// limit; the rest are refused before hashing. Without turns per account,
// every request of the burst passed the check before any failure was
// recorded, and each cost a hash (a costly imported hash made that an
// outage for everyone).
func TestBurstOfWrongPasswordsCostsAtMostTheLimitInHashes(t *testing.T) {
	obs := &countingObserver{}
	m := sessiondtest.NewManager(t, sessiondtest.Options{CheapHashing: true, Observer: obs}).Manager
	ctx := context.Background()
	if _, err := m.Register(ctx, sessiond.RegisterRequest{Username: "burst", Email: "burst@example.com", Password: "password123"}); err != nil {
		t.Fatal(err)
	}
	const n = 40
	var wg sync.WaitGroup
	var throttledN, wrongN atomic.Int32
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := m.Login(ctx, sessiond.LoginRequest{Login: "burst", Password: "wrong password", ClientIP: "192.0.2.77"})
			var th *sessiond.ThrottledError
			switch {
			case errors.As(err, &th):
				throttledN.Add(1)
			case errors.Is(err, sessiond.ErrInvalidCredentials):
				wrongN.Add(1)
			default:
				t.Errorf("Login: got %v", err)
			}
		}()
	}
	wg.Wait()
	obs.mu.Lock()
	defer obs.mu.Unlock()
	if wrongN.Load() != 10 || throttledN.Load() != n-10 {
		t.Fatalf("answers: got %d wrong and %d throttled, want 10 and %d", wrongN.Load(), throttledN.Load(), n-10)
	}
	if obs.verified > 10 {
		t.Fatalf("hashes for a burst of %d: got %d, want at most the limit, 10", n, obs.verified)
	}
}
