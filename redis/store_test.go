package redis_test

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/sessiond/sessiond"
	"github.com/sessiond/sessiond/redis"
	"github.com/sessiond/sessiond/redis/redistest"
	"github.com/sessiond/sessiond/storetest"
)

// newStore returns a Store on url, closed when t ends. Unless o says
// otherwise, calls get a 2 s deadline: the test machine may be busy, and
// the tests of the deadline itself set theirs.
func newStore(t testing.TB, o redis.Options) *redis.Store {
	t.Helper()
	if o.Timeout == 0 {
		// Generous: the conformance suite's large user (10,000 sessions)
		// shares two cores with every other test package.
		o.Timeout = 5 * time.Second
	}
	s, err := redis.New(context.Background(), o)
	if err != nil {
		t.Fatalf("redis.New(%s): %v", o.URL, err)
	}
	t.Cleanup(s.Close)
	return s
}

func TestSessionStore(t *testing.T) {
	srv := redistest.Start(t)
	storetest.Run(t, func(t *testing.T) sessiond.SessionStore {
		return newStore(t, redis.Options{URL: srv.URL()})
	})
}

func TestSessionStoreStrict(t *testing.T) {
	srv := redistest.Start(t)
	storetest.Run(t, func(t *testing.T) sessiond.SessionStore {
		return newStore(t, redis.Options{URL: srv.URL(), Strict: true})
	})
}

// TestWritableWhenRedisRefusesWrites: Ping answers while Redis refuses
// writes (NOREPLICAS, READONLY), and Writable does not.
func TestWritableWhenRedisRefusesWrites(t *testing.T) {
	srv, primary := redistest.Start(t), redistest.Start(t)
	st := newStore(t, redis.Options{URL: srv.URL()})
	ctx := context.Background()
	if err := st.Writable(ctx); err != nil {
		t.Fatalf("Writable: %v", err)
	}
	for _, c := range []struct{ refuse, accept []string }{
		{[]string{"CONFIG", "SET", "min-replicas-to-write", "1"}, []string{"CONFIG", "SET", "min-replicas-to-write", "0"}},
		{[]string{"REPLICAOF", "127.0.0.1", strconv.Itoa(primary.Port())}, []string{"REPLICAOF", "NO", "ONE"}},
	} {
		srv.MustDo(c.refuse...)
		if err := st.Ping(ctx); err != nil {
			t.Fatalf("Ping after %v: %v", c.refuse, err)
		}
		if err := st.Writable(ctx); !errors.Is(err, sessiond.ErrUnavailable) {
			t.Fatalf("Writable after %v: got %v, want ErrUnavailable", c.refuse, err)
		}
		srv.MustDo(c.accept...)
		if err := st.Writable(ctx); err != nil {
			t.Fatalf("Writable after %v: %v", c.accept, err)
		}
	}
}

func TestLimiter(t *testing.T) {
	srv := redistest.Start(t)
	storetest.RunLimiter(t, func(t *testing.T) sessiond.Limiter {
		return redis.NewLimiter(newStore(t, redis.Options{URL: srv.URL()}))
	})
}
