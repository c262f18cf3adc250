package storetest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"sync"
	"testing"
	"time"

	"github.com/sessiond/sessiond"
)

// handoffTests are the cases of PutHandoff and TakeHandoff, run by Run.
var handoffTests = []struct {
	name string
	fn   func(t *testing.T, s sessiond.SessionStore)
}{
	{"handoff take returns the record once as first, then as a replay", testHandoffTake},
	{"handoff take of an unknown hash is not found", testHandoffUnknown},
	{"handoff take at or after the expiry is not found", testHandoffExpired},
	{"concurrent handoff takes have exactly one first", testHandoffConcurrent},
	{"delete expired removes expired handoff records only", testHandoffDeleteExpired},
}

var ctx = context.Background()

// codeHash returns a hash like the ones the Manager stores.
func codeHash() string {
	sum := sha256.Sum256([]byte(randomID()))
	return hex.EncodeToString(sum[:])
}

func putHandoff(t *testing.T, st sessiond.SessionStore, hash string, h sessiond.Handoff) {
	t.Helper()
	if err := st.PutHandoff(ctx, hash, h); err != nil {
		t.Fatalf("put handoff: %v", err)
	}
}

func wantHandoff(t *testing.T, what string, got *sessiond.Handoff, first, wantFirst bool, want sessiond.Handoff) {
	t.Helper()
	if got == nil {
		t.Fatalf("%s: got no record", what)
	}
	if got.UserID != want.UserID || got.SessionID != want.SessionID || !msEqual(got.ExpiresAt, want.ExpiresAt) {
		t.Errorf("%s: got %+v, want %+v", what, *got, want)
	}
	if first != wantFirst {
		t.Errorf("%s: got first %v, want %v", what, first, wantFirst)
	}
}

func testHandoffTake(t *testing.T, st sessiond.SessionStore) {
	now := base()
	h := sessiond.Handoff{UserID: "user 1{x}", SessionID: randomID(), ExpiresAt: now.Add(time.Minute)}
	hash := codeHash()
	putHandoff(t, st, hash, h)
	got, first, err := st.TakeHandoff(ctx, hash, now.Add(time.Second))
	if err != nil {
		t.Fatalf("first take: %v", err)
	}
	wantHandoff(t, "first take", got, first, true, h)
	for i := range 2 {
		got, first, err = st.TakeHandoff(ctx, hash, now.Add(time.Duration(2+i)*time.Second))
		if err != nil {
			t.Fatalf("take %d: %v", i+2, err)
		}
		wantHandoff(t, "replay", got, first, false, h)
	}
	// Another record is apart.
	other := sessiond.Handoff{UserID: "user 2", SessionID: randomID(), ExpiresAt: now.Add(time.Minute)}
	otherHash := codeHash()
	putHandoff(t, st, otherHash, other)
	got, first, err = st.TakeHandoff(ctx, otherHash, now)
	if err != nil {
		t.Fatalf("take of a second record: %v", err)
	}
	wantHandoff(t, "second record", got, first, true, other)
}

func testHandoffUnknown(t *testing.T, st sessiond.SessionStore) {
	now := base()
	putHandoff(t, st, codeHash(), sessiond.Handoff{UserID: "u", SessionID: randomID(), ExpiresAt: now.Add(time.Minute)})
	_, _, err := st.TakeHandoff(ctx, codeHash(), now)
	wantErr(t, "take of an unknown hash", err, sessiond.ErrNotFound)
}

func testHandoffExpired(t *testing.T, st sessiond.SessionStore) {
	now := base()
	h := sessiond.Handoff{UserID: "u", SessionID: randomID(), ExpiresAt: now.Add(time.Minute)}
	hash := codeHash()
	putHandoff(t, st, hash, h)
	_, _, err := st.TakeHandoff(ctx, hash, h.ExpiresAt)
	wantErr(t, "take at the expiry", err, sessiond.ErrNotFound)
	_, _, err = st.TakeHandoff(ctx, hash, h.ExpiresAt.Add(time.Hour))
	wantErr(t, "take after the expiry", err, sessiond.ErrNotFound)
	// An expired take did not use the record: before its expiry, it is
	// still a first take.
	got, first, err := st.TakeHandoff(ctx, hash, h.ExpiresAt.Add(-time.Millisecond))
	if err != nil {
		t.Fatalf("take just before the expiry: %v", err)
	}
	wantHandoff(t, "take just before the expiry", got, first, true, h)
	// A used record expires too.
	_, _, err = st.TakeHandoff(ctx, hash, h.ExpiresAt.Add(time.Millisecond))
	wantErr(t, "take of a used record after the expiry", err, sessiond.ErrNotFound)
}

func testHandoffConcurrent(t *testing.T, st sessiond.SessionStore) {
	now := base()
	h := sessiond.Handoff{UserID: "u", SessionID: randomID(), ExpiresAt: now.Add(time.Minute)}
	hash := codeHash()
	putHandoff(t, st, hash, h)
	const n = 16
	var wg sync.WaitGroup
	firsts := make([]bool, n)
	errs := make([]error, n)
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, firsts[i], errs[i] = st.TakeHandoff(ctx, hash, now)
		}()
	}
	close(start)
	wg.Wait()
	count := 0
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("take %d: %v", i, errs[i])
		}
		if firsts[i] {
			count++
		}
	}
	if count != 1 {
		t.Fatalf("got %d first takes of %d, want 1", count, n)
	}
}

func testHandoffDeleteExpired(t *testing.T, st sessiond.SessionStore) {
	now := base()
	old := sessiond.Handoff{UserID: "u", SessionID: randomID(), ExpiresAt: now.Add(time.Second)}
	live := sessiond.Handoff{UserID: "u", SessionID: randomID(), ExpiresAt: now.Add(time.Minute)}
	oldHash, liveHash := codeHash(), codeHash()
	putHandoff(t, st, oldHash, old)
	putHandoff(t, st, liveHash, live)
	s := newSession("u", now)
	mustCreate(t, st, s, now)
	n, err := st.DeleteExpired(ctx, now.Add(2*time.Second))
	if err != nil {
		t.Fatalf("delete expired: %v", err)
	}
	if n != 0 {
		t.Errorf("delete expired: got %d sessions, want 0 (handoff records are not counted)", n)
	}
	got, first, err := st.TakeHandoff(ctx, liveHash, now.Add(2*time.Second))
	if err != nil {
		t.Fatalf("take of the live record: %v", err)
	}
	wantHandoff(t, "live record", got, first, true, live)
	mustGet(t, st, "u", s.ID, now.Add(2*time.Second))
}
