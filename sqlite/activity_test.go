package sqlite_test

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sessiond/sessiond"
	"github.com/sessiond/sessiond/sqlite"
)

// outboxMessage returns a webhook message recorded at now.
func outboxMessage(id string, now time.Time) sessiond.OutboxMessage {
	return sessiond.OutboxMessage{ID: id, Queue: sessiond.QueueWebhook, Body: json.RawMessage(`{"id":"` + id + `"}`), CreatedAt: now}
}

// Two processes delivering from one file: each sees the other's messages,
// due users and leases, since every write is a transaction on the file.
func TestActivityTwoHandlesOnOneFile(t *testing.T) {
	_, path := openDB(t)
	a := sqlite.NewActivityStore(openPath(t, path))
	b := sqlite.NewActivityStore(openPath(t, path))
	ctx := context.Background()
	now := time.Now()

	if err := a.Record(ctx, "u 1", nil, []sessiond.OutboxMessage{outboxMessage("m1", now), outboxMessage("m2", now)}, now); err != nil {
		t.Fatalf("Record on A: got error %v, want nil", err)
	}
	if due, err := b.Due(ctx, sessiond.QueueWebhook, now, 10); err != nil || !slices.Equal(due, []string{"u 1"}) {
		t.Fatalf("Due on B: got (%q, %v), want ([u 1], nil)", due, err)
	}
	if ok, err := a.Lease(ctx, sessiond.QueueWebhook, "u 1", "A", now, now.Add(time.Minute)); err != nil || !ok {
		t.Fatalf("Lease on A: got (%v, %v), want (true, nil)", ok, err)
	}
	if ok, err := b.Lease(ctx, sessiond.QueueWebhook, "u 1", "B", now, now.Add(time.Minute)); err != nil || ok {
		t.Fatalf("Lease on B while A holds it: got (%v, %v), want (false, nil)", ok, err)
	}
	msgs, err := b.Pending(ctx, sessiond.QueueWebhook, "u 1", 10)
	if err != nil || len(msgs) != 2 || msgs[0].ID != "m1" {
		t.Fatalf("Pending on B: got (%v, %v), want m1 and m2", msgs, err)
	}
	if err := b.Delivered(ctx, sessiond.QueueWebhook, "u 1", "m1"); err != nil {
		t.Fatalf("Delivered on B: got error %v, want nil", err)
	}
	if err := b.Retry(ctx, sessiond.QueueWebhook, "u 1", "m2", 1, now.Add(time.Hour)); err != nil {
		t.Fatalf("Retry on B: got error %v, want nil", err)
	}
	msgs, err = a.Pending(ctx, sessiond.QueueWebhook, "u 1", 10)
	if err != nil || len(msgs) != 1 || msgs[0].ID != "m2" || msgs[0].Attempts != 1 {
		t.Fatalf("Pending on A after B's delivery and retry: got (%v, %v), want m2 at attempt 1", msgs, err)
	}
	if due, err := a.Due(ctx, sessiond.QueueWebhook, now.Add(time.Minute), 10); err != nil || len(due) != 0 {
		t.Fatalf("Due on A while m2 waits: got (%q, %v), want none", due, err)
	}
	if err := a.Unlease(ctx, sessiond.QueueWebhook, "u 1", "A"); err != nil {
		t.Fatalf("Unlease on A: got error %v, want nil", err)
	}
	if ok, err := b.Lease(ctx, sessiond.QueueWebhook, "u 1", "B", now, now.Add(time.Minute)); err != nil || !ok {
		t.Fatalf("Lease on B after A's unlease: got (%v, %v), want (true, nil)", ok, err)
	}
	if n, err := b.Remember(ctx, "u 1", "d", "FR", now); err != nil || !n.First {
		t.Fatalf("Remember on B: got (%+v, %v), want first", n, err)
	}
	if n, err := a.Remember(ctx, "u 1", "d", "FR", now); err != nil || n != (sessiond.Novelty{}) {
		t.Fatalf("Remember on A of B's device: got (%+v, %v), want nothing new", n, err)
	}
}

// Writers on two handles of one file queue on the file's lock: concurrent
// leases of one queue have one winner, and concurrent records all land, in
// the order of their commits.
func TestActivityTwoHandlesConcurrent(t *testing.T) {
	_, path := openDB(t)
	stores := []*sqlite.ActivityStore{sqlite.NewActivityStore(openPath(t, path)), sqlite.NewActivityStore(openPath(t, path))}
	ctx := context.Background()
	now := time.Now()
	const n = 16
	won := make([]bool, n)
	errs := make([]error, 2*n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		st := stores[i%2]
		wg.Go(func() {
			<-start
			won[i], errs[i] = st.Lease(ctx, sessiond.QueueMail, "u", fmt.Sprint("owner ", i), now, now.Add(time.Minute))
		})
		wg.Go(func() {
			<-start
			errs[n+i] = st.Record(ctx, "u", nil, []sessiond.OutboxMessage{outboxMessage(fmt.Sprint("m", i), now)}, now)
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("call %d: got error %v, want nil", i, err)
		}
	}
	if got := len(slices.DeleteFunc(won, func(w bool) bool { return !w })); got != 1 {
		t.Fatalf("concurrent leases on two handles: got %d winners, want 1", got)
	}
	for _, st := range stores {
		msgs, err := st.Pending(ctx, sessiond.QueueWebhook, "u", 2*n)
		if err != nil || len(msgs) != n {
			t.Fatalf("Pending after concurrent records: got (%d messages, %v), want (%d, nil)", len(msgs), err, n)
		}
	}
}

// The sweeper deletes each kind of activity row past its bound, in
// batches, and rewrites the due times of the users whose messages it
// deleted.
func TestDeleteExpiredSweepsActivity(t *testing.T) {
	sqlite.SetDeleteBatch(t, 3)
	db, _ := openDB(t)
	st := sqlite.NewActivityStore(db)
	sessions := sqlite.NewSessionStore(db)
	ctx := context.Background()
	t0 := time.Now()
	for i := range 7 {
		u := fmt.Sprint("user ", i)
		if _, err := st.Remember(ctx, u, "d", "FR", t0); err != nil {
			t.Fatal(err)
		}
		entries := []sessiond.ActivityEntry{{At: t0, Data: json.RawMessage(`{}`)}}
		msgs := []sessiond.OutboxMessage{outboxMessage(fmt.Sprint("old", i), t0)}
		if err := st.Record(ctx, u, entries, msgs, t0); err != nil {
			t.Fatal(err)
		}
		if _, err := st.Lease(ctx, sessiond.QueueWebhook, u, "owner", t0, t0.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	// User 0 has a message recorded a day later, behind the old one.
	later := t0.Add(24 * time.Hour)
	if err := st.Record(ctx, "user 0", nil, []sessiond.OutboxMessage{outboxMessage("new", later)}, later); err != nil {
		t.Fatal(err)
	}

	wantRows := func(what string, want map[string]int) {
		t.Helper()
		got, err := db.ActivityRows(ctx)
		if err != nil {
			t.Fatalf("ActivityRows: %v", err)
		}
		if !maps.Equal(got, want) {
			t.Fatalf("rows %s: got %v, want %v", what, got, want)
		}
	}
	sweep := func(now time.Time) {
		t.Helper()
		if _, err := sessions.DeleteExpired(ctx, now); err != nil {
			t.Fatalf("DeleteExpired: got error %v, want nil", err)
		}
	}
	sweep(t0.Add(2 * time.Minute))
	wantRows("after the leases expired", map[string]int{"activity": 7, "seen": 14, "outbox": 8, "outbox_due": 7, "outbox_leases": 0})
	sweep(t0.Add(sessiond.DeliveryHorizon + time.Hour))
	wantRows("after the old messages' horizon", map[string]int{"activity": 7, "seen": 14, "outbox": 1, "outbox_due": 1, "outbox_leases": 0})
	if due, err := st.Due(ctx, sessiond.QueueWebhook, later, 10); err != nil || !slices.Equal(due, []string{"user 0"}) {
		t.Fatalf("Due after the sweep: got (%q, %v), want [user 0]", due, err)
	}
	if due, err := st.Due(ctx, sessiond.QueueWebhook, later.Add(-time.Millisecond), 10); err != nil || len(due) != 0 {
		t.Fatalf("Due before the new message: got (%q, %v), want none (the due time is the new message's)", due, err)
	}
	sweep(t0.Add(sessiond.ActivityKeep))
	wantRows("after ActivityKeep", map[string]int{"activity": 0, "seen": 14, "outbox": 0, "outbox_due": 0, "outbox_leases": 0})
	sweep(t0.Add(sessiond.SeenKeep))
	wantRows("after SeenKeep", map[string]int{"activity": 0, "seen": 0, "outbox": 0, "outbox_due": 0, "outbox_leases": 0})
}

// A record with empty data and bodies keeps them empty; a message without
// a creation time is created at the record's time.
func TestActivityEmptyValues(t *testing.T) {
	db, _ := openDB(t)
	st := sqlite.NewActivityStore(db)
	ctx := context.Background()
	now := time.Now()
	m := sessiond.OutboxMessage{ID: "m", Queue: sessiond.QueueMail}
	if err := st.Record(ctx, "u", []sessiond.ActivityEntry{{At: now}}, []sessiond.OutboxMessage{m}, now); err != nil {
		t.Fatalf("Record of empty values: got error %v, want nil", err)
	}
	if es, err := st.Activity(ctx, "u", time.Time{}, 10); err != nil || len(es) != 1 || len(es[0].Data) != 0 {
		t.Fatalf("Activity: got (%v, %v), want one entry without data", es, err)
	}
	msgs, err := st.Pending(ctx, sessiond.QueueMail, "u", 10)
	if err != nil || len(msgs) != 1 || len(msgs[0].Body) != 0 || msgs[0].CreatedAt.UnixMilli() != now.UnixMilli() {
		t.Fatalf("Pending: got (%v, %v), want m without a body, created at %s", msgs, err, now)
	}
	// A duplicate id and an unknown queue are refused, and change nothing.
	if err := st.Record(ctx, "u", nil, []sessiond.OutboxMessage{m}, now); err == nil {
		t.Fatalf("Record of a duplicate id: got nil error, want one")
	}
	bad := sessiond.OutboxMessage{ID: "x", Queue: "sms"}
	if err := st.Record(ctx, "u", nil, []sessiond.OutboxMessage{bad}, now); err == nil {
		t.Fatalf("Record to an unknown queue: got nil error, want one")
	}
	if msgs, err := st.Pending(ctx, sessiond.QueueMail, "u", 10); err != nil || len(msgs) != 1 {
		t.Fatalf("Pending after refused records: got (%d messages, %v), want (1, nil)", len(msgs), err)
	}
}
