package redis_test

import (
	"context"
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
		o.Timeout = 2 * time.Second
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

func TestLimiter(t *testing.T) {
	srv := redistest.Start(t)
	storetest.RunLimiter(t, func(t *testing.T) sessiond.Limiter {
		return redis.NewLimiter(newStore(t, redis.Options{URL: srv.URL()}))
	})
	storetest.RunMultiCounter(t, func(t *testing.T) storetest.MultiLimiter {
		return redis.NewLimiter(newStore(t, redis.Options{URL: srv.URL()}))
	})
}
