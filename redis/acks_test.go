package redis_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/sessiond/sessiond"
	"github.com/sessiond/sessiond/redis"
	"github.com/sessiond/sessiond/redis/redistest"
	"github.com/sessiond/sessiond/storetest"
)

// TestReplicaAcks runs a master with one replica: with ReplicaAcks, the
// store keeps its contract while the replica answers, and refuses to
// report a revocation or rotation done while the replica cannot confirm it.
func TestReplicaAcks(t *testing.T) {
	master := redistest.Start(t)
	replica := redistest.StartReplica(t, master)
	ctx := context.Background()

	t.Run("conformance", func(t *testing.T) {
		storetest.Run(t, func(t *testing.T) sessiond.SessionStore {
			return newStore(t, redis.Options{URL: master.URL(), ReplicaAcks: 1})
		})
	})

	t.Run("check warns of too few replicas", func(t *testing.T) {
		for _, tc := range []struct {
			acks int
			warn bool
		}{{0, false}, {1, false}, {2, true}} {
			st := newStore(t, redis.Options{URL: master.URL(), ReplicaAcks: tc.acks})
			warnings, err := st.Check(ctx)
			if err != nil {
				t.Fatalf("Check: %v", err)
			}
			got := strings.Contains(strings.Join(warnings, "\n"), "SESSIOND_REDIS_REPLICA_ACKS")
			if got != tc.warn {
				t.Fatalf("ReplicaAcks %d with 1 replica: got warnings %q, want a warning about it: %v", tc.acks, warnings, tc.warn)
			}
		}
	})

	t.Run("a paused replica makes changes unavailable", func(t *testing.T) {
		const timeout = 500 * time.Millisecond
		acked := newStore(t, redis.Options{URL: master.URL(), ReplicaAcks: 1, Timeout: timeout})
		plain := newStore(t, redis.Options{URL: master.URL(), Timeout: timeout})
		now := time.Now()
		user := randomID()
		session := func() *sessiond.Session {
			s := testSession(user, now)
			s.DeviceID = "" // no same-device replacement
			return s
		}
		a, b, c, d := session(), session(), session(), session()
		for _, s := range []*sessiond.Session{a, b, c, d} {
			create(t, acked, s)
		}
		if _, err := acked.Get(ctx, user, a.ID, now); err != nil {
			t.Fatalf("Get before: %v", err) // cached on this store
		}

		replica.Freeze()
		defer replica.Thaw()
		unavailable := func(what string, err error, took time.Duration) {
			t.Helper()
			if !errors.Is(err, sessiond.ErrUnavailable) {
				t.Fatalf("%s while the replica is paused: got %v, want ErrUnavailable", what, err)
			}
			if took > 2*timeout {
				t.Fatalf("%s while the replica is paused took %v, want at most about the timeout %v", what, took, timeout)
			}
		}
		start := time.Now()
		err := acked.Revoke(ctx, user, a.ID)
		unavailable("Revoke", err, time.Since(start))
		if _, err := acked.Get(ctx, user, a.ID, now); !errors.Is(err, sessiond.ErrNotFound) {
			t.Fatalf("Get on the revoking store after its unconfirmed revoke: got %v, want ErrNotFound", err)
		}
		// The session is gone on the master, not on the replica: a retry
		// that finds nothing to delete must not be reported as done.
		start = time.Now()
		err = acked.Revoke(ctx, user, a.ID)
		unavailable("Revoke retried", err, time.Since(start))
		start = time.Now()
		_, err = acked.Rotate(ctx, user, b.ID, b.Generation, now, b.ExpiresAt)
		unavailable("Rotate", err, time.Since(start))
		start = time.Now()
		_, err = acked.RevokeOthers(ctx, user, d.ID)
		unavailable("RevokeOthers", err, time.Since(start))
		start = time.Now()
		_, err = acked.RevokeAll(ctx, user)
		unavailable("RevokeAll", err, time.Since(start))
		for _, s := range []*sessiond.Session{b, c, d} {
			if _, err := acked.Get(ctx, user, s.ID, now); s != b && !errors.Is(err, sessiond.ErrNotFound) {
				t.Fatalf("Get of %s on the revoking store after its unconfirmed revoke-all: got %v, want ErrNotFound", s.ID, err)
			}
		}

		// Without acknowledgements the same calls succeed: the master
		// answers before any replica has the change.
		e := session()
		create(t, plain, e)
		if err := plain.Revoke(ctx, user, e.ID); err != nil {
			t.Fatalf("Revoke without ReplicaAcks while the replica is paused: %v", err)
		}

		replica.Thaw()
		f := session()
		create(t, acked, f)
		if err := acked.Revoke(ctx, user, f.ID); err != nil {
			t.Fatalf("Revoke once the replica is back: %v", err)
		}
		if got := replica.MustDo("EXISTS", redis.SessionKey(user, f.ID)); got != "0" {
			t.Fatalf("the replica still holds the session after a confirmed revoke: EXISTS = %s", got)
		}
	})
}
