package redis_test

import (
	"context"
	"errors"
	"slices"
	"strconv"
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
		handoff := randomID()
		if err := acked.PutHandoff(ctx, handoff, sessiond.Handoff{UserID: user, SessionID: a.ID, ExpiresAt: now.Add(time.Minute)}); err != nil {
			t.Fatal(err)
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
		// A handoff code used on the master only must not be honoured: a
		// failover could make it unused again. It counts as used.
		start = time.Now()
		_, _, err = acked.TakeHandoff(ctx, handoff, now)
		unavailable("TakeHandoff", err, time.Since(start))
		if !errors.Is(err, sessiond.ErrNotAcknowledged) {
			t.Fatalf("TakeHandoff while the replica is paused: got %v, want ErrNotAcknowledged", err)
		}
		if _, first, err := plain.TakeHandoff(ctx, handoff, now); err != nil || first {
			t.Fatalf("TakeHandoff after an unconfirmed take: got (first %v, %v), want a replay", first, err)
		}
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

// cutOff starts a master with one replica in sync, then cuts the replica
// off (it follows a master that does not exist), as a network partition
// would: the master answers writes that no replica will ever confirm.
func cutOff(t *testing.T) (master, replica *redistest.Server) {
	t.Helper()
	master = redistest.Start(t)
	replica = redistest.StartReplica(t, master)
	replica.MustDo("REPLICAOF", "127.0.0.1", "1")
	return master, replica
}

// TestReplicaAcksCutOffReportsWhatChanged runs with the default timeout
// (100 ms) and Redis' default hz 10, under which a WAIT that times out
// answers up to a tick late: a revocation that the replicas do not confirm
// still reports what it deleted on the master, wrapping
// ErrNotAcknowledged, so that the caller can tell the sessions ended.
func TestReplicaAcksCutOffReportsWhatChanged(t *testing.T) {
	master, _ := cutOff(t)
	if hz := master.MustDo("CONFIG", "GET", "hz"); !strings.HasSuffix(hz, "10") {
		t.Fatalf("CONFIG GET hz: got %q, want Redis' default 10", hz)
	}
	st := newStore(t, redis.Options{URL: master.URL(), ReplicaAcks: 1, Timeout: redis.DefaultTimeout})
	ctx := context.Background()
	now := time.Now()
	user := randomID()
	sessions := make([]*sessiond.Session, 6)
	for i := range sessions {
		sessions[i] = testSession(user, now)
		sessions[i].DeviceID = ""
		create(t, st, sessions[i])
	}

	// The first revocation on this master also loads the script (NOSCRIPT,
	// then EVAL), which must not eat the time of the wait.
	err := st.Revoke(ctx, user, sessions[0].ID)
	if !errors.Is(err, sessiond.ErrNotAcknowledged) || !errors.Is(err, sessiond.ErrUnavailable) {
		t.Fatalf("Revoke with the replica cut off: got %v, want ErrNotAcknowledged (and ErrUnavailable)", err)
	}
	if got := master.MustDo("EXISTS", redis.SessionKey(user, sessions[0].ID)); got != "0" {
		t.Fatalf("the session is still on the master after Revoke reported ErrNotAcknowledged: EXISTS = %s", got)
	}
	// A retry deletes nothing: not found is not sure until the replicas
	// confirm, so it is unavailable, and not "not acknowledged" (it made
	// no change to report).
	err = st.Revoke(ctx, user, sessions[0].ID)
	if !errors.Is(err, sessiond.ErrUnavailable) || errors.Is(err, sessiond.ErrNotAcknowledged) || errors.Is(err, sessiond.ErrNotFound) {
		t.Fatalf("Revoke retried with the replica cut off: got %v, want ErrUnavailable only", err)
	}

	rotated, err := st.Rotate(ctx, user, sessions[1].ID, sessions[1].Generation, now, sessions[1].ExpiresAt)
	if !errors.Is(err, sessiond.ErrNotAcknowledged) {
		t.Fatalf("Rotate with the replica cut off: got %v, want ErrNotAcknowledged", err)
	}
	if rotated == nil || rotated.Generation != sessions[1].Generation+1 {
		t.Fatalf("Rotate with the replica cut off: got session %+v, want the rotated session with the error", rotated)
	}

	ids, err := st.RevokeAll(ctx, user)
	if !errors.Is(err, sessiond.ErrNotAcknowledged) {
		t.Fatalf("RevokeAll with the replica cut off: got %v, want ErrNotAcknowledged", err)
	}
	var want []string
	for _, s := range sessions[1:] {
		want = append(want, s.ID)
	}
	slices.Sort(ids)
	slices.Sort(want)
	if !slices.Equal(ids, want) {
		t.Fatalf("RevokeAll with the replica cut off: got ids %q, want every session it deleted %q", ids, want)
	}
	if got := master.MustDo("EXISTS", redis.IndexKey(user)); got != "0" {
		t.Fatalf("the user's index is still on the master after RevokeAll: EXISTS = %s", got)
	}
}

// TestSync checks Sync: nil at once without acknowledgements or with the
// replica in sync, ErrNotAcknowledged while the replica is cut off.
func TestSync(t *testing.T) {
	master := redistest.Start(t)
	replica := redistest.StartReplica(t, master)
	ctx := context.Background()
	user := randomID()
	// A second for the replica's acknowledgement: the default 100 ms is
	// too short on a busy machine for the in-sync case this starts with.
	acked := newStore(t, redis.Options{URL: master.URL(), ReplicaAcks: 1, Timeout: time.Second})
	plain := newStore(t, redis.Options{URL: master.URL(), Timeout: time.Second})
	create(t, acked, testSession(user, time.Now()))

	if err := acked.Sync(ctx, user); err != nil {
		t.Fatalf("Sync with the replica in sync: %v", err)
	}
	replica.MustDo("REPLICAOF", "127.0.0.1", "1")
	if err := acked.Sync(ctx, user); !errors.Is(err, sessiond.ErrNotAcknowledged) || !errors.Is(err, sessiond.ErrUnavailable) {
		t.Fatalf("Sync with the replica cut off: got %v, want ErrNotAcknowledged", err)
	}
	before := calls(t, master, "set")
	if err := plain.Sync(ctx, user); err != nil {
		t.Fatalf("Sync without ReplicaAcks: %v", err)
	}
	if after := calls(t, master, "set"); after != before {
		t.Fatalf("Sync without ReplicaAcks wrote to Redis (%d SETs, want none)", after-before)
	}
	replica.MustDo("REPLICAOF", "127.0.0.1", strconv.Itoa(master.Port()))
	deadline := time.Now().Add(10 * time.Second)
	for err := acked.Sync(ctx, user); err != nil; err = acked.Sync(ctx, user) {
		if time.Now().After(deadline) {
			t.Fatalf("Sync with the replica back: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestWritableWaitsForReplicas checks that readiness fails while a store
// with ReplicaAcks cannot get its replicas to confirm: every revocation
// and refresh would answer 503 then.
func TestWritableWaitsForReplicas(t *testing.T) {
	master, _ := cutOff(t)
	ctx := context.Background()
	acked := newStore(t, redis.Options{URL: master.URL(), ReplicaAcks: 1, Timeout: redis.DefaultTimeout})
	plain := newStore(t, redis.Options{URL: master.URL(), Timeout: redis.DefaultTimeout})
	if err := plain.Writable(ctx); err != nil {
		t.Fatalf("Writable without ReplicaAcks, the replica cut off: %v", err)
	}
	if err := acked.Writable(ctx); !errors.Is(err, sessiond.ErrUnavailable) {
		t.Fatalf("Writable with ReplicaAcks 1, the replica cut off: got %v, want ErrUnavailable", err)
	}
}

// TestReplicaAcksClusterProbeAndSync checks that on a Cluster the readiness
// probe waits for the replicas of every master, and Sync for those of the
// user's master: one paused replica fails both for its master only.
func TestReplicaAcksClusterProbeAndSync(t *testing.T) {
	c := redistest.StartFailoverCluster(t)
	c.WaitReplicas()
	ctx := context.Background()
	st := newStore(t, redis.Options{URL: c.URL(), ReplicaAcks: 1, Timeout: redis.DefaultTimeout})
	user := randomID()
	create(t, st, testSession(user, time.Now()))
	if err := st.Writable(ctx); err != nil {
		t.Fatalf("Writable with every replica in sync: %v", err)
	}
	if err := st.Sync(ctx, user); err != nil {
		t.Fatalf("Sync with every replica in sync: %v", err)
	}
	// Another user on another master.
	master := c.MasterOf(redis.IndexKey(user))
	other := randomID()
	for c.MasterOf(redis.IndexKey(other)) == master {
		other = randomID()
	}

	replica := c.ReplicaOf(master)
	replica.Freeze()
	defer replica.Thaw()
	if err := st.Writable(ctx); !errors.Is(err, sessiond.ErrUnavailable) {
		t.Fatalf("Writable with the replica of one master paused: got %v, want ErrUnavailable", err)
	}
	if err := st.Sync(ctx, user); !errors.Is(err, sessiond.ErrNotAcknowledged) {
		t.Fatalf("Sync of a user of that master: got %v, want ErrNotAcknowledged", err)
	}
	if err := st.Sync(ctx, other); err != nil {
		t.Fatalf("Sync of a user of another master: %v", err)
	}
}
