package storetest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/sessiond/sessiond"
)

// RunLimiter runs the Limiter conformance suite. newLimiter must return a
// fresh limiter for each sub-test; it may register cleanups with t.Cleanup.
func RunLimiter(t *testing.T, newLimiter func(t *testing.T) sessiond.Limiter) {
	tests := []struct {
		name string
		fn   func(t *testing.T, l sessiond.Limiter)
	}{
		{"unknown key counts nothing", testLimiterEmpty},
		{"events inside the window are counted", testLimiterCounts},
		{"events leave as the window slides", testLimiterSlides},
		{"retry after is when the oldest event leaves", testLimiterRetryAfter},
		{"reset forgets the key", testLimiterReset},
		{"keys are independent", testLimiterKeys},
		{"windows of one key are independent of others' windows", testLimiterWindows},
		{"concurrent adds are all counted", testLimiterConcurrent},
		{"events stamped after now count", testLimiterFuture},
		{"take admits up to the limit, then refuses until the oldest leaves", testTakeLimit},
		{"take of several counters of a group is all or nothing", testTakeAllOrNothing},
		{"take without an event records nothing", testTakeDry},
		{"release forgets the event", testTakeRelease},
		{"concurrent takes never pass the limit", testTakeConcurrent},
		{"writable accepts a write and counts nothing", testLimiterWritable},
		{"counting several keys at once agrees with counting each", testCountSeveral},
		{"counting several keys sees a reset", testCountSeveralReset},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.fn(t, newLimiter(t))
		})
	}
}

// limiterBase is a millisecond-aligned reference time near the wall clock.
func limiterBase() time.Time {
	return base().Truncate(time.Millisecond)
}

// add records one event under key at at, with a Take whose limit no test
// reaches.
func add(l sessiond.Limiter, key string, window time.Duration, at time.Time) error {
	t, err := l.Take(context.Background(), []sessiond.Budget{{Key: key, Window: window, N: 1 << 30}}, randomID(), at)
	if err == nil && !t.OK {
		err = fmt.Errorf("take with room refused: %+v", t)
	}
	return err
}

// mustAdd records an event and fails the test on error.
func mustAdd(t *testing.T, l sessiond.Limiter, key string, window time.Duration, at time.Time) {
	t.Helper()
	if err := add(l, key, window, at); err != nil {
		t.Fatalf("add(%q): got error %v, want nil", key, err)
	}
}

// count counts the one counter key.
func count(l sessiond.Limiter, key string, window time.Duration, now time.Time) (int, time.Duration, error) {
	var c [1]sessiond.Counted
	err := l.Count(context.Background(), []sessiond.Counter{{Key: key, Window: window}}, now, c[:])
	return c[0].N, c[0].OldestLeavesIn, err
}

// wantCount fails the test unless Count returns n and leaves.
func wantCount(t *testing.T, l sessiond.Limiter, key string, window time.Duration, now time.Time, n int, leaves time.Duration) {
	t.Helper()
	gotN, gotLeaves, err := count(l, key, window, now)
	if err != nil {
		t.Fatalf("Count(%q): got error %v, want nil", key, err)
	}
	if gotN != n || gotLeaves != leaves {
		t.Fatalf("Count(%q, %s): got (%d, %s), want (%d, %s)", key, window, gotN, gotLeaves, n, leaves)
	}
}

func testLimiterEmpty(t *testing.T, l sessiond.Limiter) {
	now := limiterBase()
	wantCount(t, l, "login:"+randomID(), 15*time.Minute, now, 0, 0)
	if err := l.Reset(context.Background(), "login:"+randomID()); err != nil {
		t.Fatalf("Reset(unknown key): got error %v, want nil", err)
	}
}

func testLimiterCounts(t *testing.T, l sessiond.Limiter) {
	const window = 15 * time.Minute
	key := "login:" + randomID()
	t0 := limiterBase()
	for i := range 3 {
		mustAdd(t, l, key, window, t0.Add(time.Duration(i)*time.Minute))
		// The oldest event is t0's.
		wantCount(t, l, key, window, t0.Add(time.Duration(i)*time.Minute), i+1, window-time.Duration(i)*time.Minute)
	}
	wantCount(t, l, key, window, t0.Add(3*time.Minute), 3, 12*time.Minute)
}

func testLimiterSlides(t *testing.T, l sessiond.Limiter) {
	const window = 15 * time.Minute
	key := "login:" + randomID()
	t0 := limiterBase()
	mustAdd(t, l, key, window, t0)
	mustAdd(t, l, key, window, t0.Add(time.Minute))
	mustAdd(t, l, key, window, t0.Add(2*time.Minute))

	wantCount(t, l, key, window, t0.Add(window-time.Millisecond), 3, time.Millisecond)
	// An event leaves the window once the window has passed since it.
	wantCount(t, l, key, window, t0.Add(window), 2, time.Minute)
	wantCount(t, l, key, window, t0.Add(window+time.Minute+time.Second), 1, time.Minute-time.Second)
	wantCount(t, l, key, window, t0.Add(window+2*time.Minute), 0, 0)

	// Adding after the old events left counts only the new one.
	later := t0.Add(time.Hour)
	mustAdd(t, l, key, window, later)
	wantCount(t, l, key, window, later, 1, window)
}

func testLimiterRetryAfter(t *testing.T, l sessiond.Limiter) {
	const window = time.Minute
	key := "refresh:" + randomID()
	t0 := limiterBase()
	for i := range 10 {
		mustAdd(t, l, key, window, t0.Add(time.Duration(i)*1500*time.Millisecond))
	}
	now := t0.Add(20 * time.Second)
	wantCount(t, l, key, window, now, 10, 40*time.Second)
	now = t0.Add(61 * time.Second) // the first event (t0) has left, the second (t0+1.5s) has not
	wantCount(t, l, key, window, now, 9, 500*time.Millisecond)
}

func testLimiterReset(t *testing.T, l sessiond.Limiter) {
	const window = 15 * time.Minute
	key, other := "login:"+randomID(), "login:"+randomID()
	t0 := limiterBase()
	for i := range 3 {
		mustAdd(t, l, key, window, t0.Add(time.Duration(i)*time.Second))
		mustAdd(t, l, other, window, t0.Add(time.Duration(i)*time.Second))
	}
	if err := l.Reset(context.Background(), key); err != nil {
		t.Fatalf("Reset: got error %v, want nil", err)
	}
	now := t0.Add(time.Minute)
	wantCount(t, l, key, window, now, 0, 0)
	wantCount(t, l, other, window, now, 3, window-time.Minute)
	if err := l.Reset(context.Background(), key); err != nil {
		t.Fatalf("second Reset: got error %v, want nil", err)
	}
	// The key counts again from zero.
	mustAdd(t, l, key, window, now)
	wantCount(t, l, key, window, now, 1, window)
}

func testLimiterKeys(t *testing.T, l sessiond.Limiter) {
	const window = time.Hour
	t0 := limiterBase()
	keys := []string{
		"register:" + randomID(), "register:" + randomID() + ":x", "{k}", "k", "k:", "ünïcødé 用户", "a b",
	}
	for i, key := range keys {
		for j := 0; j <= i; j++ {
			mustAdd(t, l, key, window, t0.Add(time.Duration(i)*time.Second))
		}
	}
	now := t0.Add(time.Minute)
	for i, key := range keys {
		wantCount(t, l, key, window, now, i+1, window-time.Minute+time.Duration(i)*time.Second)
	}
}

func testLimiterWindows(t *testing.T, l sessiond.Limiter) {
	t0 := limiterBase()
	short, long := "short:"+randomID(), "long:"+randomID()
	mustAdd(t, l, long, time.Hour, t0)
	mustAdd(t, l, short, time.Minute, t0)
	// The short key's window has passed its first event when it records
	// another; the long key's event is still in its own window.
	now := t0.Add(2 * time.Minute)
	mustAdd(t, l, short, time.Minute, now)
	wantCount(t, l, short, time.Minute, now, 1, time.Minute)
	wantCount(t, l, long, time.Hour, now, 1, time.Hour-2*time.Minute)
}

// testLimiterFuture: an instance whose clock runs ahead stamps its events
// after the counting instance's now; they happened, and count at once.
func testLimiterFuture(t *testing.T, l sessiond.Limiter) {
	const window = 15 * time.Minute
	key := "lai:" + randomID()
	t0 := limiterBase()
	mustAdd(t, l, key, window, t0)
	mustAdd(t, l, key, window, t0.Add(3*time.Second))
	wantCount(t, l, key, window, t0.Add(time.Second), 2, window-time.Second)
	wantCount(t, l, key, window, t0.Add(-time.Second), 2, window+time.Second)
}

func testLimiterConcurrent(t *testing.T, l sessiond.Limiter) {
	const n, window = 50, time.Minute
	key := "ip:" + randomID()
	t0 := limiterBase()
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			// Several events share one instant: each counts.
			errs[i] = add(l, key, window, t0.Add(time.Duration(i%5)*time.Millisecond))
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("add #%d: got error %v, want nil", i, err)
		}
	}
	wantCount(t, l, key, window, t0.Add(time.Second), n, window-time.Second)
}

// mustTake takes bs with event id at now and fails the test on error.
func mustTake(t *testing.T, l sessiond.Limiter, bs []sessiond.Budget, id string, now time.Time) sessiond.Taken {
	t.Helper()
	got, err := l.Take(context.Background(), bs, id, now)
	if err != nil {
		t.Fatalf("Take(%v): got error %v, want nil", bs, err)
	}
	return got
}

func testTakeLimit(t *testing.T, l sessiond.Limiter) {
	const window = time.Minute
	t0 := limiterBase()
	b := []sessiond.Budget{{Key: "rf:" + randomID(), Window: window, N: 3}}
	for i := range 3 {
		if got := mustTake(t, l, b, randomID(), t0.Add(time.Duration(i)*time.Second)); !got.OK {
			t.Fatalf("take %d of 3: got %+v, want OK", i+1, got)
		}
	}
	now := t0.Add(3 * time.Second)
	if got, want := mustTake(t, l, b, randomID(), now), (sessiond.Taken{Full: 0, RetryAfter: window - 3*time.Second}); got != want {
		t.Fatalf("take past the limit: got %+v, want %+v", got, want)
	}
	// The refused take recorded nothing; Add and Count see the same events.
	wantCount(t, l, b[0].Key, window, now, 3, window-3*time.Second)
	if got := mustTake(t, l, b, randomID(), t0.Add(window)); !got.OK {
		t.Fatalf("take once the oldest event left: got %+v, want OK", got)
	}
	wantCount(t, l, b[0].Key, window, t0.Add(window), 3, time.Second)
	mustAdd(t, l, b[0].Key, window, t0.Add(window))
	if got := mustTake(t, l, b, randomID(), t0.Add(window)); got.OK || got.RetryAfter != time.Second {
		t.Fatalf("take after an Add filled the counter: got %+v, want refused for 1s", got)
	}
}

func testTakeAllOrNothing(t *testing.T, l sessiond.Limiter) {
	const window = 15 * time.Minute
	t0 := limiterBase()
	group := "la:" + randomID()
	bs := []sessiond.Budget{
		{Key: group + sessiond.GroupSep + "192.0.2.1", Window: window, N: 10},
		{Key: group, Window: window, N: 2},
		{Key: group + sessiond.GroupSep + "2001:db8::/64", Window: time.Minute, N: 10},
	}
	mustAdd(t, l, bs[1].Key, window, t0)
	mustAdd(t, l, bs[1].Key, window, t0.Add(time.Second))
	now := t0.Add(time.Minute)
	if got, want := mustTake(t, l, bs, randomID(), now), (sessiond.Taken{Full: 1, RetryAfter: window - time.Minute}); got != want {
		t.Fatalf("take with the second counter full: got %+v, want %+v", got, want)
	}
	wantCount(t, l, bs[0].Key, window, now, 0, 0)
	wantCount(t, l, bs[2].Key, time.Minute, now, 0, 0)
	bs[1].N = 3
	if got := mustTake(t, l, bs, randomID(), now); !got.OK {
		t.Fatalf("take with room in every counter: got %+v, want OK", got)
	}
	wantCount(t, l, bs[0].Key, window, now, 1, window)
	wantCount(t, l, bs[1].Key, window, now, 3, window-time.Minute)
	wantCount(t, l, bs[2].Key, time.Minute, now, 1, time.Minute)
}

func testTakeDry(t *testing.T, l sessiond.Limiter) {
	const window = time.Minute
	t0 := limiterBase()
	b := []sessiond.Budget{{Key: "li:" + randomID(), Window: window, N: 1}}
	for range 3 {
		if got := mustTake(t, l, b, "", t0); !got.OK {
			t.Fatalf("take without an event on an empty counter: got %+v, want OK", got)
		}
	}
	wantCount(t, l, b[0].Key, window, t0, 0, 0)
	mustAdd(t, l, b[0].Key, window, t0)
	if got, want := mustTake(t, l, b, "", t0.Add(time.Second)), (sessiond.Taken{RetryAfter: window - time.Second}); got != want {
		t.Fatalf("take without an event on a full counter: got %+v, want %+v", got, want)
	}
}

func testTakeRelease(t *testing.T, l sessiond.Limiter) {
	const window = time.Minute
	t0 := limiterBase()
	group := "la:" + randomID()
	keys := []string{group, group + sessiond.GroupSep + "x"}
	bs := []sessiond.Budget{{Key: keys[0], Window: window, N: 2}, {Key: keys[1], Window: window, N: 2}}
	kept, released := randomID(), randomID()
	mustTake(t, l, bs, kept, t0)
	mustTake(t, l, bs, released, t0.Add(time.Second))
	if got := mustTake(t, l, bs, randomID(), t0.Add(time.Second)); got.OK {
		t.Fatalf("take past the limit: got %+v, want refused", got)
	}
	ctx := context.Background()
	if err := l.Release(ctx, keys, released, t0.Add(time.Second)); err != nil {
		t.Fatalf("Release: got error %v, want nil", err)
	}
	for _, k := range keys {
		wantCount(t, l, k, window, t0.Add(time.Second), 1, window-time.Second)
	}
	// Twice, or an event that never was: nothing to forget.
	if err := l.Release(ctx, keys, released, t0.Add(time.Second)); err != nil {
		t.Fatalf("second Release: got error %v, want nil", err)
	}
	if err := l.Release(ctx, []string{"nothing:" + randomID()}, randomID(), t0); err != nil {
		t.Fatalf("Release of an unknown key: got error %v, want nil", err)
	}
	for _, k := range keys {
		wantCount(t, l, k, window, t0.Add(time.Second), 1, window-time.Second)
	}
	if got := mustTake(t, l, bs, randomID(), t0.Add(2*time.Second)); !got.OK {
		t.Fatalf("take after the release: got %+v, want OK", got)
	}
}

// testTakeConcurrent fires three times the limit at once, on a pair of
// counters of one group as a login takes them: exactly the limit gets
// through, and each counter holds exactly that.
func testTakeConcurrent(t *testing.T, l sessiond.Limiter) {
	const n, window = 10, time.Minute
	group := "la:" + randomID()
	bs := []sessiond.Budget{
		{Key: group + sessiond.GroupSep + "198.51.100.7", Window: window, N: n},
		{Key: group, Window: window, N: 10 * n},
	}
	t0 := limiterBase()
	got := make([]sessiond.Taken, 3*n)
	errs := make([]error, 3*n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range got {
		wg.Go(func() {
			<-start
			got[i], errs[i] = l.Take(context.Background(), bs, randomID(), t0.Add(time.Duration(i%5)*time.Millisecond))
		})
	}
	close(start)
	wg.Wait()
	ok := 0
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Take #%d: got error %v, want nil", i, err)
		}
		if got[i].OK {
			ok++
		} else if got[i].Full != 0 {
			t.Fatalf("Take #%d: got %+v, want the first counter full", i, got[i])
		}
	}
	if ok != n {
		t.Fatalf("%d concurrent takes with room for %d: got %d through", 3*n, n, ok)
	}
	for _, b := range bs {
		if c, _, err := count(l, b.Key, window, t0.Add(time.Second)); err != nil || c != n {
			t.Fatalf("Count(%q): got %d, %v, want %d", b.Key, c, err, n)
		}
	}
}

func testLimiterWritable(t *testing.T, l sessiond.Limiter) {
	t0 := limiterBase()
	key := "li:" + randomID()
	mustAdd(t, l, key, time.Minute, t0)
	if err := l.Writable(context.Background()); err != nil {
		t.Fatalf("Writable: got error %v, want nil", err)
	}
	wantCount(t, l, key, time.Minute, t0, 1, time.Minute)
	wantCount(t, l, "", time.Minute, t0, 0, 0)
}

// testCountSeveral checks that Count answers, for any number of counters,
// what it answers for each alone.
func testCountSeveral(t *testing.T, l sessiond.Limiter) {
	t0 := limiterBase()
	id := randomID()
	// Three keys as a login names them, in three slots of a Cluster,
	// with windows of their own: events at both edges of the window
	// and after now; one key is empty.
	cs := []sessiond.Counter{
		{Key: "lai:" + id + ":192.0.2.1", Window: 15 * time.Minute},
		{Key: "la:" + id, Window: time.Minute},
		{Key: "li:" + id, Window: time.Hour},
	}
	now := t0.Add(90 * time.Second)
	for i := range 3 {
		mustAdd(t, l, cs[0].Key, cs[0].Window, t0.Add(time.Duration(i)*time.Second))
	}
	mustAdd(t, l, cs[1].Key, cs[1].Window, now.Add(-time.Minute+2*time.Millisecond))
	mustAdd(t, l, cs[1].Key, cs[1].Window, now)
	mustAdd(t, l, cs[1].Key, cs[1].Window, now.Add(time.Millisecond)) // after now
	// Added last, so that no later add prunes it: it has just left.
	mustAdd(t, l, cs[1].Key, cs[1].Window, now.Add(-time.Minute))
	want := []sessiond.Counted{
		{N: 3, OldestLeavesIn: 15*time.Minute - 90*time.Second},
		{N: 3, OldestLeavesIn: 2 * time.Millisecond},
		{N: 0},
	}
	for i, c := range cs {
		wantCount(t, l, c.Key, c.Window, now, want[i].N, want[i].OldestLeavesIn)
	}
	for _, pick := range [][]int{{0, 1, 2}, {2, 1, 0}, {1, 2}, {0}, {0, 0, 1}, {0, 1, 2, 1}} {
		sub := make([]sessiond.Counter, len(pick))
		for i, k := range pick {
			sub[i] = cs[k]
		}
		got := make([]sessiond.Counted, len(sub))
		if err := l.Count(context.Background(), sub, now, got); err != nil {
			t.Fatalf("Count(%v): got error %v, want nil", pick, err)
		}
		for i, k := range pick {
			if got[i] != want[k] {
				t.Fatalf("Count(%v)[%d] (key %q): got %+v, want %+v", pick, i, sub[i].Key, got[i], want[k])
			}
		}
	}
}

func testCountSeveralReset(t *testing.T, l sessiond.Limiter) {
	t0 := limiterBase()
	cs := []sessiond.Counter{
		{Key: "a:" + randomID(), Window: time.Minute},
		{Key: "b:" + randomID(), Window: time.Minute},
		{Key: "c:" + randomID(), Window: time.Minute},
	}
	for _, c := range cs {
		mustAdd(t, l, c.Key, c.Window, t0)
	}
	if err := l.Reset(context.Background(), cs[1].Key); err != nil {
		t.Fatalf("Reset: got error %v, want nil", err)
	}
	got := make([]sessiond.Counted, 3)
	if err := l.Count(context.Background(), cs, t0.Add(time.Second), got); err != nil {
		t.Fatalf("Count: got error %v, want nil", err)
	}
	want := []sessiond.Counted{{N: 1, OldestLeavesIn: 59 * time.Second}, {}, {N: 1, OldestLeavesIn: 59 * time.Second}}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("Count[%d]: got %+v, want %+v", i, got[i], want[i])
		}
	}
}
