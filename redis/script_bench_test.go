package redis_test

import (
	"context"
	"testing"
	"time"

	"github.com/sessiond/sessiond"
	"github.com/sessiond/sessiond/redis"
	"github.com/sessiond/sessiond/redis/redistest"
)

// deviceSession is testSession on a device of its own, so that creating
// many for one user replaces none.
func deviceSession(user string, now time.Time) *sessiond.Session {
	s := testSession(user, now)
	s.DeviceID = sessiond.DeviceHash(user, s.ID)
	return s
}

// BenchmarkRevoke is the revoke script (DEL, ZREM and the index's expiry)
// of one session among five of its user.
func BenchmarkRevoke(b *testing.B) {
	srv := redistest.Start(b)
	st := newStore(b, redis.Options{URL: srv.URL()})
	ctx := context.Background()
	now := time.Now()
	user := randomID()
	for range 4 {
		create(b, st, deviceSession(user, now))
	}
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		s := deviceSession(user, now)
		create(b, st, s)
		b.StartTimer()
		if err := st.Revoke(ctx, s.UserID, s.ID); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkList1000 is the list script on a user with 1,000 sessions:
// one round trip that walks the index and reads every hash.
func BenchmarkList1000(b *testing.B) {
	srv := redistest.Start(b)
	st := newStore(b, redis.Options{URL: srv.URL(), Timeout: 5 * time.Second})
	ctx := context.Background()
	now := time.Now()
	user := randomID()
	for range 1000 {
		create(b, st, deviceSession(user, now))
	}
	b.ReportAllocs()
	for b.Loop() {
		list, err := st.List(ctx, user, now)
		if err != nil {
			b.Fatal(err)
		}
		if len(list) != 1000 {
			b.Fatalf("got %d sessions, want 1000", len(list))
		}
	}
}
