package redis_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sessiond/sessiond"
	"github.com/sessiond/sessiond/redis"
	"github.com/sessiond/sessiond/redis/redistest"
	"github.com/sessiond/sessiond/storetest"
)

func TestActivityStore(t *testing.T) {
	srv := redistest.Start(t)
	storetest.RunActivity(t, func(t *testing.T) sessiond.ActivityStore {
		return newStore(t, redis.Options{URL: srv.URL()})
	})
}

// testActivityCluster runs the activity tests that need Redis Cluster on
// TestCluster's cluster.
func testActivityCluster(t *testing.T, c *redistest.Cluster) {
	t.Run("conformance", func(t *testing.T) {
		storetest.RunActivity(t, func(t *testing.T) sessiond.ActivityStore {
			return newStore(t, redis.Options{URL: c.URL()})
		})
	})
	t.Run("keys of one user share a slot", func(t *testing.T) {
		for _, user := range []string{
			randomID(), "{u:1}", "}{", "{", "}", ":", "a:b:c", "ünïcødé-用户", "sd:{u:x}:s:y", "line\nbreak", "%7B", "",
		} {
			keys := []string{redis.IndexKey(user), redis.ActivityKey(user), redis.SeenKey(user)}
			for _, q := range []string{sessiond.QueueWebhook, sessiond.QueueMail, "{q}:x"} {
				keys = append(keys, redis.QueueKey(user, q), redis.MessagesKey(user, q), redis.LeaseKey(user, q))
			}
			var slots []string
			for _, k := range keys {
				slot, err := c.Do("CLUSTER", "KEYSLOT", k)
				if err != nil {
					t.Fatalf("CLUSTER KEYSLOT %q: %v", k, err)
				}
				slots = append(slots, slot)
			}
			for i := range slots {
				if slots[i] != slots[0] {
					t.Fatalf("user %q: key %q is in slot %s, %q in slot %s", user, keys[i], slots[i], keys[0], slots[0])
				}
			}
		}
		for _, q := range []string{sessiond.QueueWebhook, sessiond.QueueMail, "{q}:x"} {
			if k := redis.DueKey(q); strings.Count(k, "{") != 1 || strings.Count(k, "}") != 1 {
				t.Fatalf("due key %q of queue %q does not have exactly one hash tag", k, q)
			}
		}
	})
	t.Run("every key has a TTL", func(t *testing.T) {
		testActivityKeysExpire(t, redis.Options{URL: c.URL()}, c.Nodes())
	})
	t.Run("record beside pending of an empty queue keeps the due mark", func(t *testing.T) {
		testDueMarkRace(t, c.URL(), 100)
	})
}

// outboxMessage returns a message of queue recorded at now, due at once.
func outboxMessage(queue string, now time.Time) sessiond.OutboxMessage {
	id := randomID()
	return sessiond.OutboxMessage{ID: id, Queue: queue, Body: json.RawMessage(`{"id":"` + id + `"}`), CreatedAt: now}
}

func record(t testing.TB, st *redis.Store, user string, now time.Time, msgs ...sessiond.OutboxMessage) {
	t.Helper()
	entries := []sessiond.ActivityEntry{{At: now, Data: json.RawMessage(`{"type":"signed_in"}`)}}
	if err := st.Record(context.Background(), user, entries, msgs, now); err != nil {
		t.Fatalf("Record(%q): %v", user, err)
	}
}

// isDue reports whether user is among the users due in queue at now.
func isDue(t testing.TB, st *redis.Store, queue, user string, now time.Time) bool {
	t.Helper()
	users, err := st.Due(context.Background(), queue, now, 100000)
	if err != nil {
		t.Fatalf("Due: %v", err)
	}
	return slices.Contains(users, user)
}

func TestActivityKeysExpire(t *testing.T) {
	srv := redistest.Start(t)
	testActivityKeysExpire(t, redis.Options{URL: srv.URL()}, []*redistest.Server{srv})
}

// testActivityKeysExpire plays every ActivityStore call, then checks that
// the keys named by the layout are the ones written, and that every key of
// the nodes carries the expiry the layout gives it.
func testActivityKeysExpire(t *testing.T, o redis.Options, nodes []*redistest.Server) {
	ctx := context.Background()
	st := newStore(t, o)
	now := time.Now()
	hook, mail := sessiond.QueueWebhook, sessiond.QueueMail
	var users []string
	for i := range 12 {
		u := fmt.Sprintf("user:{%d}%s", i, randomID())
		users = append(users, u)
		if _, err := st.Remember(ctx, u, "device", "FR", now); err != nil {
			t.Fatalf("Remember: %v", err)
		}
		m1, m2 := outboxMessage(hook, now), outboxMessage(hook, now)
		record(t, st, u, now, m1, m2, outboxMessage(mail, now))
		if ok, err := st.Lease(ctx, hook, u, "owner", now, now.Add(time.Minute)); err != nil || !ok {
			t.Fatalf("Lease: got (%v, %v), want (true, nil)", ok, err)
		}
		switch i % 4 {
		case 1:
			if err := st.Retry(ctx, hook, u, m1.ID, 1, now.Add(time.Minute)); err != nil {
				t.Fatalf("Retry: %v", err)
			}
		case 2:
			for _, m := range []sessiond.OutboxMessage{m1, m2} {
				if err := st.Delivered(ctx, hook, u, m.ID); err != nil {
					t.Fatalf("Delivered: %v", err)
				}
			}
			if _, err := st.Pending(ctx, hook, u, 10); err != nil {
				t.Fatalf("Pending: %v", err)
			}
		case 3:
			if err := st.Unlease(ctx, hook, u, "owner"); err != nil {
				t.Fatalf("Unlease: %v", err)
			}
		}
	}
	// pttl returns the PTTL of key on the node that holds it, -2 when none
	// does (the others answer MOVED).
	pttl := func(key string) int {
		for _, n := range nodes {
			if r, err := n.Do("PTTL", key); err == nil && r != "-2" {
				v, err := strconv.Atoi(r)
				if err != nil {
					t.Fatalf("PTTL %q: %q", key, r)
				}
				return v
			}
		}
		return -2
	}
	u := users[0]
	for _, k := range []struct {
		key string
		ttl time.Duration
	}{
		{redis.ActivityKey(u), sessiond.ActivityKeep},
		{redis.SeenKey(u), sessiond.SeenKeep},
		{redis.QueueKey(u, hook), 2 * sessiond.DeliveryHorizon},
		{redis.MessagesKey(u, hook), 2 * sessiond.DeliveryHorizon},
		{redis.QueueKey(u, mail), 2 * sessiond.DeliveryHorizon},
		{redis.MessagesKey(u, mail), 2 * sessiond.DeliveryHorizon},
		{redis.LeaseKey(u, hook), time.Minute},
		{redis.DueKey(hook), 2 * sessiond.DeliveryHorizon},
		{redis.DueKey(mail), 2 * sessiond.DeliveryHorizon},
	} {
		got := time.Duration(pttl(k.key)) * time.Millisecond
		if got <= k.ttl-time.Minute || got > k.ttl {
			t.Errorf("key %q: PTTL %v, want at most %v and less than a minute below", k.key, got, k.ttl)
		}
	}
	if got := pttl(redis.LeaseKey(users[3], hook)); got != -2 {
		t.Errorf("lease of an unleased queue: PTTL %d, want -2 (no key)", got)
	}
	total := 0
	for _, n := range nodes {
		cursor := "0"
		for {
			lines := strings.Split(n.MustDo("SCAN", cursor, "COUNT", "1000"), "\n")
			cursor = lines[0]
			for _, k := range lines[1:] {
				if k == "" {
					continue
				}
				total++
				if v, err := strconv.Atoi(n.MustDo("PTTL", k)); err != nil || v <= 0 {
					t.Errorf("key %q: PTTL %d, want > 0", k, v)
				}
			}
			if cursor == "0" {
				break
			}
		}
	}
	if total < 60 {
		t.Fatalf("found %d keys, want at least 60", total)
	}
}

func TestActivityDueMarkRace(t *testing.T) {
	testDueMarkRace(t, redistest.Start(t).URL(), 300)
}

// testDueMarkRace records a message into an empty queue on one instance
// while another runs Pending of that queue, rounds times for each of four
// users at once: the user must be due after every round. Each round ends
// by emptying the queue, and checks that this Pending did take the user
// out, so a lost mark could not go unseen.
func testDueMarkRace(t *testing.T, url string, rounds int) {
	ctx := context.Background()
	a, b := newStore(t, redis.Options{URL: url}), newStore(t, redis.Options{URL: url})
	q := sessiond.QueueWebhook
	var wg sync.WaitGroup
	for range 4 {
		u := randomID()
		wg.Go(func() {
			for i := range rounds {
				now := time.Now()
				m := outboxMessage(q, now)
				var recErr, pendErr error
				var inner sync.WaitGroup
				start := make(chan struct{})
				inner.Go(func() {
					<-start
					recErr = a.Record(ctx, u, nil, []sessiond.OutboxMessage{m}, now)
				})
				inner.Go(func() {
					<-start
					_, pendErr = b.Pending(ctx, q, u, 10)
				})
				close(start)
				inner.Wait()
				if err := errors.Join(recErr, pendErr); err != nil {
					t.Errorf("user %s round %d: %v", u, i, err)
					return
				}
				if !isDue(t, b, q, u, now.Add(time.Minute)) {
					t.Errorf("user %s round %d: not due after a Record beside a Pending of the empty queue", u, i)
					return
				}
				if err := a.Delivered(ctx, q, u, m.ID); err != nil {
					t.Errorf("Delivered: %v", err)
					return
				}
				if msgs, err := b.Pending(ctx, q, u, 10); err != nil || len(msgs) != 0 {
					t.Errorf("Pending of the emptied queue: got (%d messages, %v), want none", len(msgs), err)
					return
				}
				if isDue(t, b, q, u, now.Add(time.Minute)) {
					t.Errorf("user %s round %d: still due after Pending of the emptied queue", u, i)
					return
				}
			}
		})
	}
	wg.Wait()
}

// TestPendingOfEmptyQueueKeepsARecordedMark records a message at each
// point where Pending of an empty queue can meet a Record: after its empty
// read (the Record's mark is there before Pending means to remove it),
// after it recorded its intent to remove the mark, and after its second
// read, which found the queue still empty.
func TestPendingOfEmptyQueueKeepsARecordedMark(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	st, other := newStore(t, redis.Options{URL: srv.URL()}), newStore(t, redis.Options{URL: srv.URL()})
	q := sessiond.QueueWebhook
	// emptyButDue returns a user whose queue is empty and who is due, as
	// Delivered leaves them.
	emptyButDue := func(t *testing.T, now time.Time) string {
		t.Helper()
		u, m := randomID(), outboxMessage(q, now)
		record(t, st, u, now, m)
		if err := st.Delivered(ctx, q, u, m.ID); err != nil {
			t.Fatal(err)
		}
		if !isDue(t, st, q, u, now) {
			t.Fatal("not due after Record and Delivered: want due until a Pending finds the queue empty")
		}
		return u
	}
	for _, stage := range []string{"after the empty read", "after the intent", "after the second read"} {
		t.Run(stage, func(t *testing.T) {
			now := time.Now()
			u := emptyButDue(t, now)
			m2 := outboxMessage(q, now.Add(time.Second))
			calls := 0
			recordThere := func() {
				calls++
				record(t, other, u, now.Add(time.Second), m2)
			}
			var h redis.PendingHooks
			switch stage {
			case "after the empty read":
				h.AfterEmptyRead = recordThere
			case "after the intent":
				h.AfterIntent = recordThere
			default:
				h.AfterSecondRead = recordThere
			}
			redis.SetPendingHooks(st, h)
			msgs, err := st.Pending(ctx, q, u, 10)
			redis.SetPendingHooks(st, redis.PendingHooks{})
			if err != nil || len(msgs) != 0 || calls != 1 {
				t.Fatalf("Pending: got (%d messages, %v) with %d records beside, want the empty queue read, and 1", len(msgs), err, calls)
			}
			if !isDue(t, st, q, u, now.Add(time.Minute)) {
				t.Fatalf("a message recorded %s of Pending of the empty queue is not due", stage)
			}
			if msgs, err := st.Pending(ctx, q, u, 10); err != nil || len(msgs) != 1 || msgs[0].ID != m2.ID {
				t.Fatalf("Pending after: got (%v, %v), want the message recorded beside", msgs, err)
			}
		})
	}
	// A Pending that stops (its process dies) after its intent to remove
	// the mark leaves the mark, here with a message recorded just before:
	// the next visit delivers it.
	t.Run("stopped after the intent", func(t *testing.T) {
		now := time.Now()
		u := emptyButDue(t, now)
		m2 := outboxMessage(q, now.Add(time.Second))
		cctx, cancel := context.WithCancel(ctx)
		redis.SetPendingHooks(st, redis.PendingHooks{
			AfterEmptyRead: func() { record(t, other, u, now.Add(time.Second), m2) },
			AfterIntent:    cancel,
		})
		_, err := st.Pending(cctx, q, u, 10)
		redis.SetPendingHooks(st, redis.PendingHooks{})
		if !errors.Is(err, sessiond.ErrUnavailable) {
			t.Fatalf("Pending cancelled half way: got %v, want ErrUnavailable", err)
		}
		if !isDue(t, st, q, u, now.Add(time.Minute)) {
			t.Fatal("a Pending stopped half way removed the mark of a message recorded before it")
		}
		if msgs, err := st.Pending(ctx, q, u, 10); err != nil || len(msgs) != 1 || msgs[0].ID != m2.ID {
			t.Fatalf("Pending after: got (%v, %v), want the message recorded before", msgs, err)
		}
	})
	// Without a Record beside, Pending of the empty queue removes the
	// mark and the intent.
	t.Run("alone", func(t *testing.T) {
		now := time.Now()
		u := emptyButDue(t, now)
		if msgs, err := st.Pending(ctx, q, u, 10); err != nil || len(msgs) != 0 {
			t.Fatalf("Pending: got (%v, %v), want nothing", msgs, err)
		}
		if isDue(t, st, q, u, now.Add(time.Minute)) {
			t.Fatal("due after Pending of the empty queue")
		}
		if got := srv.MustDo("HEXISTS", redis.UnmarkKey(q), u); got != "0" {
			t.Fatalf("HEXISTS of the intent after Pending: got %s, want 0", got)
		}
	})
}

// TestActivityReplicaAcks: with ReplicaAcks, a Record that returned nil is
// on the replica, messages and due mark alike, and a Record the paused
// replica cannot confirm fails as a revocation does, with the record made
// on the master.
func TestActivityReplicaAcks(t *testing.T) {
	master := redistest.Start(t)
	replica := redistest.StartReplica(t, master)
	const timeout = 500 * time.Millisecond
	acked := newStore(t, redis.Options{URL: master.URL(), ReplicaAcks: 1, Timeout: timeout})
	plain := newStore(t, redis.Options{URL: master.URL(), Timeout: timeout})
	ctx := context.Background()
	q := sessiond.QueueWebhook
	u, now := randomID(), time.Now()

	m1 := outboxMessage(q, now)
	record(t, acked, u, now, m1)
	if got := replica.MustDo("HEXISTS", redis.MessagesKey(u, q), m1.ID); got != "1" {
		t.Fatalf("the replica lacks the message after an acknowledged Record: HEXISTS = %s", got)
	}
	if got := replica.MustDo("ZSCORE", redis.DueKey(q), u); got == "" {
		t.Fatal("the replica lacks the due mark after an acknowledged Record")
	}

	replica.Freeze()
	defer replica.Thaw()
	m2 := outboxMessage(q, now)
	start := time.Now()
	err := acked.Record(ctx, u, nil, []sessiond.OutboxMessage{m2}, now)
	if !errors.Is(err, sessiond.ErrNotAcknowledged) || !errors.Is(err, sessiond.ErrUnavailable) {
		t.Fatalf("Record with the replica paused: got %v, want ErrNotAcknowledged (and ErrUnavailable)", err)
	}
	if took := time.Since(start); took > 2*timeout {
		t.Fatalf("Record with the replica paused took %v, want at most about the timeout %v", took, timeout)
	}
	msgs, err := plain.Pending(ctx, q, u, 10)
	if err != nil || len(msgs) != 2 || msgs[1].ID != m2.ID {
		t.Fatalf("Pending after an unacknowledged Record: got (%v, %v), want both messages (made on the master)", msgs, err)
	}
	// Without acknowledgements the same Record succeeds.
	if err := plain.Record(ctx, u, nil, []sessiond.OutboxMessage{outboxMessage(q, now)}, now); err != nil {
		t.Fatalf("Record without ReplicaAcks while the replica is paused: %v", err)
	}
	replica.Thaw()
	record(t, acked, u, now, outboxMessage(q, now))
}

// TestActivityReplicaAcksCluster: on a Cluster a Record waits for the
// replicas of the user's master and of the due set's master, which are
// two different masters here; a paused replica of either fails it.
func TestActivityReplicaAcksCluster(t *testing.T) {
	c := redistest.StartFailoverCluster(t)
	c.WaitReplicas()
	const timeout = 500 * time.Millisecond
	st := newStore(t, redis.Options{URL: c.URL(), ReplicaAcks: 1, Timeout: timeout})
	ctx := context.Background()
	q := sessiond.QueueWebhook
	dueMaster := c.MasterOf(redis.DueKey(q))
	u := randomID()
	for c.MasterOf(redis.QueueKey(u, q)) == dueMaster {
		u = randomID()
	}
	userMaster := c.MasterOf(redis.QueueKey(u, q))
	now := time.Now()
	record(t, st, u, now, outboxMessage(q, now))
	for _, m := range []struct {
		what   string
		master *redistest.Server
	}{{"the due set's master", dueMaster}, {"the user's master", userMaster}} {
		replica := c.ReplicaOf(m.master)
		replica.Freeze()
		err := st.Record(ctx, u, nil, []sessiond.OutboxMessage{outboxMessage(q, now)}, now)
		replica.Thaw()
		if !errors.Is(err, sessiond.ErrNotAcknowledged) {
			t.Fatalf("Record with the replica of %s paused: got %v, want ErrNotAcknowledged", m.what, err)
		}
		c.WaitReplicas()
		record(t, st, u, now, outboxMessage(q, now))
	}
	if !isDue(t, st, q, u, now) {
		t.Fatal("the user is not due after the records")
	}
}

// TestActivityUnderTheDeployACL runs the conformance suite, with replica
// acknowledgements, as the Redis user of docs/deploy.md: the activity
// scripts need no command beyond those the session scripts use.
func TestActivityUnderTheDeployACL(t *testing.T) {
	acl := deployACL(t)
	r := redistest.Start(t)
	redistest.StartReplica(t, r)
	r.MustDo(append([]string{"ACL", "SETUSER"}, acl...)...)
	r.MustDo("ACL", "LOG", "RESET")
	storetest.RunActivity(t, func(t *testing.T) sessiond.ActivityStore {
		return newStore(t, redis.Options{URL: "redis://sessiond:change-me@" + r.Addr(), ReplicaAcks: 1})
	})
	log := r.MustDo("ACL", "LOG")
	for _, line := range strings.Split(log, "\n") {
		if strings.Contains(line, "setinfo") {
			continue // sent by the client library, which ignores a refusal
		}
		if strings.Contains(line, "reason") || strings.Contains(line, "NOPERM") {
			t.Fatalf("Redis refused a command under the documented ACL:\n%s", log)
		}
	}
}

// deployACL returns the ACL SETUSER arguments of the "user sessiond" line
// of docs/deploy.md.
func deployACL(t *testing.T) []string {
	t.Helper()
	f, err := os.Open("../docs/deploy.md")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if fields := strings.Fields(sc.Text()); len(fields) > 2 && fields[0] == "user" && fields[1] == "sessiond" {
			return fields[1:]
		}
	}
	t.Fatal("docs/deploy.md has no \"user sessiond\" ACL line")
	return nil
}

// TestRecordOfManyEntries: a record far over ActivityMax keeps the newest
// ActivityMax, however many it trims in one script.
func TestRecordOfManyEntries(t *testing.T) {
	st := newStore(t, redis.Options{URL: redistest.Start(t).URL()})
	ctx := context.Background()
	u, t0 := randomID(), time.Now()
	entries := make([]sessiond.ActivityEntry, 20000)
	for i := range entries {
		entries[i] = sessiond.ActivityEntry{At: t0.Add(time.Duration(i) * time.Millisecond), Data: json.RawMessage(strconv.Itoa(i))}
	}
	if err := st.Record(ctx, u, entries, nil, t0.Add(time.Minute)); err != nil {
		t.Fatalf("Record of %d entries: %v", len(entries), err)
	}
	got, err := st.Activity(ctx, u, time.Time{}, 2*sessiond.ActivityMax)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != sessiond.ActivityMax || string(got[0].Data) != "19999" || string(got[len(got)-1].Data) != strconv.Itoa(20000-sessiond.ActivityMax) {
		t.Fatalf("Activity after a record of %d entries: got %d, first %s, last %s; want the newest %d", len(entries), len(got), got[0].Data, got[len(got)-1].Data, sessiond.ActivityMax)
	}
}
