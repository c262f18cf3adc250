package sessiond_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sessiond/sessiond"
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
// counts its throttles once before
// the hash, not once per counter, then takes (without recording) once per
// group of counters after it, and resets nothing that it has just counted
// empty: with a shared store each call is a round trip.
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
	if got, want := c.count.Load(), int64(1); got != want {
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
