package storetest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sessiond/sessiond"
)

// RunActivity runs the ActivityStore conformance suite. newStore must return
// a fresh store for each sub-test; it may register cleanups with t.Cleanup.
//
// A store shared by the cases (one Redis server for the whole suite) keeps
// what earlier cases left: every case uses user ids of its own, reads Due
// through its own users, and the cases that depend on the order of the
// whole queue record their messages hours before the others and empty
// their queues when they end.
func RunActivity(t *testing.T, newStore func(t *testing.T) sessiond.ActivityStore) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s sessiond.ActivityStore)
	}{
		{"remember of an unknown user is the first sign-in and nothing new", testRememberFirst},
		{"remember reports a new device", testRememberNewDevice},
		{"remember reports a new location", testRememberNewLocation},
		{"remember of an unknown country is never a new location", testRememberNoCountry},
		{"remember forgets what was not seen within seen keep", testRememberExpiry},
		{"remember forgets the user seen keep after the last sign-in", testRememberForgetsUser},
		{"remember keeps the most recently seen up to seen max", testRememberBound},
		{"concurrent remembers of a new device report it once", testRememberConcurrent},
		{"forget after a new device or location makes it new again", testForgetNew},
		{"forget keeps what was seen again later or at another time", testForgetSeenLater},
		{"forget of an unknown user, device or country is no error", testForgetUnknown},
		{"forget of the first sign-in makes the next one first again", testForgetFirst},
		{"activity returns entries newest first, ties the later recorded first", testActivityOrder},
		{"activity applies since and limit", testActivitySinceLimit},
		{"activity of an unknown user is empty", testActivityUnknown},
		{"history keeps the newest activity max entries", testActivityMax},
		{"history drops entries older than activity keep", testActivityKeep},
		{"record puts messages at the end of their queues with every field", testOutboxRecord},
		{"record without messages makes no user due", testOutboxRecordNothing},
		{"queues of a user are apart", testOutboxQueues},
		{"delivered removes the message and a missing one is no error", testOutboxDelivered},
		{"retry sets attempts and next and the user waits until next", testOutboxRetry},
		{"retry of a message that is not there is not found", testOutboxRetryMissing},
		{"pending of an empty queue takes the user out of due", testOutboxPendingEmpty},
		{"a message recorded while pending finds the queue empty stays due", testOutboxPendingRace},
		{"due lists the longest due first, at most n", testOutboxDueOrder},
		{"lease is held by one owner until it expires", testLeaseExclusive},
		{"concurrent leases have one winner", testLeaseConcurrent},
		{"unlease ends only the owner's lease", testUnlease},
		{"queue stats count the messages and the oldest", testQueueStats},
		{"activity user ids of every printable character work in every call", testActivityUserIDs},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.fn(t, newStore(t))
		})
	}
}

// activityUser returns a user id of its own for one case, with characters a
// key layout must encode.
func activityUser() string {
	return "user {x}:% |" + randomID()
}

// entry returns a history entry at at whose data names what.
func entry(what string, at time.Time) sessiond.ActivityEntry {
	w, _ := json.Marshal(what)
	return sessiond.ActivityEntry{At: at, Data: json.RawMessage(`{"type":"signed_in","what":` + string(w) + `,"name":"Zoë's \"phone\"","x":"\u2028"}`)}
}

// message returns a message of queue recorded at now, due at once.
func message(queue string, now time.Time) sessiond.OutboxMessage {
	id := randomID()
	return sessiond.OutboxMessage{
		ID:        id,
		Queue:     queue,
		Body:      json.RawMessage(`{"type":"session.created","id":"` + id + `","data":{"name":"Zoë's \"phone\"","n":1.5,"x":"\u2028"}}`),
		CreatedAt: now,
	}
}

func mustRecord(t *testing.T, st sessiond.ActivityStore, userID string, entries []sessiond.ActivityEntry, msgs []sessiond.OutboxMessage, now time.Time) {
	t.Helper()
	if err := st.Record(ctx, userID, entries, msgs, now); err != nil {
		t.Fatalf("Record(%q, %d entries, %d messages): got error %v, want nil", userID, len(entries), len(msgs), err)
	}
}

func remember(t *testing.T, st sessiond.ActivityStore, userID, device, country string, now time.Time, want sessiond.Novelty) {
	t.Helper()
	got, err := st.Remember(ctx, userID, device, country, now)
	if err != nil {
		t.Fatalf("Remember(%q, %q, %q): got error %v, want nil", userID, device, country, err)
	}
	if got != want {
		t.Fatalf("Remember(%q, %q, %q) at %s: got %+v, want %+v", userID, device, country, fmtTime(now), got, want)
	}
}

var (
	nothingNew  = sessiond.Novelty{}
	firstSignIn = sessiond.Novelty{First: true}
	newDevice   = sessiond.Novelty{NewDevice: true}
	newLocation = sessiond.Novelty{NewLocation: true}
	newBoth     = sessiond.Novelty{NewDevice: true, NewLocation: true}
)

func activity(t *testing.T, st sessiond.ActivityStore, userID string, since time.Time, limit int) []sessiond.ActivityEntry {
	t.Helper()
	got, err := st.Activity(ctx, userID, since, limit)
	if err != nil {
		t.Fatalf("Activity(%q, %s, %d): got error %v, want nil", userID, fmtTime(since), limit, err)
	}
	return got
}

func wantEntries(t *testing.T, what string, got, want []sessiond.ActivityEntry) {
	t.Helper()
	same := len(got) == len(want)
	for i := 0; same && i < len(got); i++ {
		same = msEqual(got[i].At, want[i].At) && bytes.Equal(got[i].Data, want[i].Data)
	}
	if !same {
		t.Fatalf("%s: got %d entries %s, want %d %s", what, len(got), fmtEntries(got), len(want), fmtEntries(want))
	}
}

func fmtEntries(es []sessiond.ActivityEntry) string {
	var b strings.Builder
	for _, e := range es {
		fmt.Fprintf(&b, "\n\t%s %s", fmtTime(e.At), e.Data)
	}
	return b.String()
}

func pending(t *testing.T, st sessiond.ActivityStore, queue, userID string, n int) []sessiond.OutboxMessage {
	t.Helper()
	got, err := st.Pending(ctx, queue, userID, n)
	if err != nil {
		t.Fatalf("Pending(%s, %q, %d): got error %v, want nil", queue, userID, n, err)
	}
	return got
}

func wantMessages(t *testing.T, what string, got, want []sessiond.OutboxMessage) {
	t.Helper()
	same := len(got) == len(want)
	for i := 0; same && i < len(got); i++ {
		g, w := got[i], want[i]
		same = g.ID == w.ID && g.Queue == w.Queue && bytes.Equal(g.Body, w.Body) && msEqual(g.CreatedAt, w.CreatedAt) &&
			g.Attempts == w.Attempts && g.NextAt.IsZero() == w.NextAt.IsZero() && msEqual(g.NextAt, w.NextAt)
	}
	if !same {
		t.Fatalf("%s: got %d messages %s, want %d %s", what, len(got), fmtMessages(got), len(want), fmtMessages(want))
	}
}

func fmtMessages(ms []sessiond.OutboxMessage) string {
	var b strings.Builder
	for _, m := range ms {
		next := "at once"
		if !m.NextAt.IsZero() {
			next = fmtTime(m.NextAt)
		}
		fmt.Fprintf(&b, "\n\t%s %s created %s attempts %d next %s body %s", m.ID, m.Queue, fmtTime(m.CreatedAt), m.Attempts, next, m.Body)
	}
	return b.String()
}

// due returns the users of Due(queue, now, n) that are among users, in
// the order Due gave them.
func due(t *testing.T, st sessiond.ActivityStore, queue string, now time.Time, n int, users ...string) []string {
	t.Helper()
	got, err := st.Due(ctx, queue, now, n)
	if err != nil {
		t.Fatalf("Due(%s, %s, %d): got error %v, want nil", queue, fmtTime(now), n, err)
	}
	if len(got) > n {
		t.Fatalf("Due(%s, %s, %d): got %d users, want at most %d", queue, fmtTime(now), n, len(got), n)
	}
	var mine []string
	for _, u := range got {
		if slices.Contains(users, u) {
			mine = append(mine, u)
		}
	}
	return mine
}

// dueAll is Due with room for every user a case leaves.
const dueAll = 1000

func wantDue(t *testing.T, st sessiond.ActivityStore, queue, userID string, now time.Time, want bool) {
	t.Helper()
	got := len(due(t, st, queue, now, dueAll, userID)) == 1
	if got != want {
		t.Fatalf("Due(%s, %s): got %q among the users %v, want %v", queue, fmtTime(now), userID, got, want)
	}
}

func lease(t *testing.T, st sessiond.ActivityStore, queue, userID, owner string, now, until time.Time, want bool) {
	t.Helper()
	got, err := st.Lease(ctx, queue, userID, owner, now, until)
	if err != nil {
		t.Fatalf("Lease(%s, %q, %s): got error %v, want nil", queue, userID, owner, err)
	}
	if got != want {
		t.Fatalf("Lease(%s, %q, %s) at %s until %s: got %v, want %v", queue, userID, owner, fmtTime(now), fmtTime(until), got, want)
	}
}

func mustDelivered(t *testing.T, st sessiond.ActivityStore, queue, userID, id string) {
	t.Helper()
	if err := st.Delivered(ctx, queue, userID, id); err != nil {
		t.Fatalf("Delivered(%s, %q, %s): got error %v, want nil", queue, userID, id, err)
	}
}

func mustRetry(t *testing.T, st sessiond.ActivityStore, queue, userID, id string, attempts int, next time.Time) {
	t.Helper()
	if err := st.Retry(ctx, queue, userID, id, attempts, next); err != nil {
		t.Fatalf("Retry(%s, %q, %s): got error %v, want nil", queue, userID, id, err)
	}
}

func testRememberFirst(t *testing.T, st sessiond.ActivityStore) {
	now := base()
	u := activityUser()
	remember(t, st, u, "device A", "FR", now, firstSignIn)
	remember(t, st, u, "device A", "FR", now.Add(time.Minute), nothingNew)
	remember(t, st, u, "device A", "FR", now.Add(time.Hour), nothingNew)
	// Another user is apart.
	remember(t, st, activityUser(), "device A", "FR", now.Add(time.Hour), firstSignIn)
}

func testRememberNewDevice(t *testing.T, st sessiond.ActivityStore) {
	now := base()
	u := activityUser()
	remember(t, st, u, "device A", "FR", now, firstSignIn)
	remember(t, st, u, "device B", "FR", now.Add(time.Minute), newDevice)
	remember(t, st, u, "device B", "FR", now.Add(2*time.Minute), nothingNew)
	remember(t, st, u, "device A", "FR", now.Add(3*time.Minute), nothingNew)
	// Devices are opaque: one differing in case is another device.
	remember(t, st, u, "Device A", "FR", now.Add(4*time.Minute), newDevice)
}

func testRememberNewLocation(t *testing.T, st sessiond.ActivityStore) {
	now := base()
	u := activityUser()
	remember(t, st, u, "device A", "FR", now, firstSignIn)
	remember(t, st, u, "device A", "DE", now.Add(time.Minute), newLocation)
	remember(t, st, u, "device A", "DE", now.Add(2*time.Minute), nothingNew)
	remember(t, st, u, "device A", "FR", now.Add(3*time.Minute), nothingNew)
	remember(t, st, u, "device C", "US", now.Add(4*time.Minute), newBoth)
	// A device name equal to a country is still a device of its own.
	remember(t, st, u, "FR", "FR", now.Add(5*time.Minute), newDevice)
	remember(t, st, u, "device A", "device C", now.Add(6*time.Minute), newLocation)
}

func testRememberNoCountry(t *testing.T, st sessiond.ActivityStore) {
	now := base()
	u := activityUser()
	remember(t, st, u, "device A", "", now, firstSignIn)
	remember(t, st, u, "device A", "", now.Add(time.Minute), nothingNew)
	remember(t, st, u, "device B", "", now.Add(2*time.Minute), newDevice)
	// The first known country is new: nothing of it was seen.
	remember(t, st, u, "device A", "FR", now.Add(3*time.Minute), newLocation)
	remember(t, st, u, "device A", "", now.Add(4*time.Minute), nothingNew)
	remember(t, st, u, "device A", "FR", now.Add(5*time.Minute), nothingNew)
}

func testRememberExpiry(t *testing.T, st sessiond.ActivityStore) {
	t0 := base()
	day := func(d int) time.Time { return t0.Add(time.Duration(d) * 24 * time.Hour) }
	u := activityUser()
	remember(t, st, u, "device A", "FR", t0, firstSignIn)
	// Device B and DE keep the user remembered while A and FR age.
	remember(t, st, u, "device B", "DE", day(60), newBoth)
	remember(t, st, u, "device A", "FR", t0.Add(sessiond.SeenKeep-time.Second), nothingNew)
	// B and DE, last seen at 60 days, are forgotten after 150 days.
	remember(t, st, u, "device B", "FR", day(150).Add(time.Second), newDevice)
	remember(t, st, u, "device B", "DE", day(150).Add(2*time.Second), newLocation)
	// A, first seen 150 days ago, was seen again at 90 days: SeenKeep
	// counts from the last sign-in.
	remember(t, st, u, "device A", "DE", day(150).Add(3*time.Second), nothingNew)
}

func testRememberForgetsUser(t *testing.T, st sessiond.ActivityStore) {
	t0 := base()
	u := activityUser()
	remember(t, st, u, "device A", "FR", t0, firstSignIn)
	remember(t, st, u, "device B", "DE", t0.Add(time.Hour), newBoth)
	// Nothing is remembered SeenKeep after the last sign-in: first again,
	// not a new device or location.
	last := t0.Add(time.Hour)
	remember(t, st, u, "device C", "US", last.Add(sessiond.SeenKeep+time.Second), firstSignIn)
	remember(t, st, u, "device A", "FR", last.Add(sessiond.SeenKeep+2*time.Second), newBoth)
}

func testRememberBound(t *testing.T, st sessiond.ActivityStore) {
	t0 := base()
	tick := 0
	next := func() time.Time {
		tick++
		return t0.Add(time.Duration(tick) * time.Second)
	}
	dev := func(i int) string { return fmt.Sprintf("device %d", i) }

	// Without a country, only devices are remembered: SeenMax of them.
	u := activityUser()
	remember(t, st, u, dev(0), "", next(), firstSignIn)
	for i := 1; i < sessiond.SeenMax; i++ {
		remember(t, st, u, dev(i), "", next(), newDevice)
	}
	// Device 0 was seen again: device 1 is now the least recently seen.
	remember(t, st, u, dev(0), "", next(), nothingNew)
	remember(t, st, u, "device X", "", next(), newDevice)
	remember(t, st, u, dev(1), "", next(), newDevice)
	// Device 1's return dropped device 2; the others are kept.
	remember(t, st, u, dev(0), "", next(), nothingNew)
	remember(t, st, u, "device X", "", next(), nothingNew)
	for i := sessiond.SeenMax - 1; i >= 3; i-- {
		remember(t, st, u, dev(i), "", next(), nothingNew)
	}
	remember(t, st, u, dev(2), "", next(), newDevice)

	// Countries are bounded too, whether the bound counts them apart from
	// the devices or with them: of SeenMax+1 countries seen from one
	// device, the first is forgotten and the last SeenMax-2 are kept.
	v := activityUser()
	country := func(i int) string { return fmt.Sprintf("C%d", i) }
	remember(t, st, v, "device", country(0), next(), firstSignIn)
	for i := 1; i <= sessiond.SeenMax; i++ {
		remember(t, st, v, "device", country(i), next(), newLocation)
	}
	remember(t, st, v, "device", country(0), next(), newLocation)
	for i := sessiond.SeenMax; i >= 3; i-- {
		remember(t, st, v, "device", country(i), next(), nothingNew)
	}
}

func testRememberConcurrent(t *testing.T, st sessiond.ActivityStore) {
	now := base()
	u := activityUser()
	remember(t, st, u, "device A", "FR", now, firstSignIn)
	const n = 8
	got := make([]sessiond.Novelty, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			got[i], errs[i] = st.Remember(ctx, u, "device B", "DE", now.Add(time.Second))
		})
	}
	close(start)
	wg.Wait()
	news := 0
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("Remember #%d: got error %v, want nil", i, errs[i])
		}
		switch got[i] {
		case newBoth:
			news++
		case nothingNew:
		default:
			t.Fatalf("Remember #%d: got %+v, want new device and location, or nothing new", i, got[i])
		}
	}
	if news != 1 {
		t.Fatalf("%d concurrent Remember of a new device: got %d reports of it, want 1", n, news)
	}
}

func forget(t *testing.T, st sessiond.ActivityStore, userID, device, country string, at time.Time) {
	t.Helper()
	if err := st.Forget(ctx, userID, device, country, at); err != nil {
		t.Fatalf("Forget(%q, %q, %q) at %s: got error %v, want nil", userID, device, country, fmtTime(at), err)
	}
}

func testForgetNew(t *testing.T, st sessiond.ActivityStore) {
	now := base()
	at := func(m int) time.Time { return now.Add(time.Duration(m) * time.Minute) }
	u := activityUser()
	remember(t, st, u, "device A", "FR", at(0), firstSignIn)
	remember(t, st, u, "device B", "FR", at(1), newDevice)
	// The time counts to the millisecond, as Remember keeps it.
	forget(t, st, u, "device B", "", at(1).Truncate(time.Millisecond))
	remember(t, st, u, "device B", "FR", at(2), newDevice)
	remember(t, st, u, "device A", "DE", at(3), newLocation)
	forget(t, st, u, "", "DE", at(3))
	remember(t, st, u, "device A", "DE", at(4), newLocation)
	remember(t, st, u, "device C", "US", at(5), newBoth)
	forget(t, st, u, "device C", "US", at(5))
	remember(t, st, u, "device C", "US", at(6), newBoth)
	// Forget is idempotent, and what it was not given stays.
	forget(t, st, u, "device C", "US", at(5))
	remember(t, st, u, "device A", "FR", at(7), nothingNew)
	remember(t, st, u, "device B", "DE", at(8), nothingNew)
}

func testForgetSeenLater(t *testing.T, st sessiond.ActivityStore) {
	now := base()
	at := func(m int) time.Time { return now.Add(time.Duration(m) * time.Minute) }
	u := activityUser()
	remember(t, st, u, "device A", "FR", at(0), firstSignIn)
	remember(t, st, u, "device B", "DE", at(1), newBoth)
	remember(t, st, u, "device B", "DE", at(2), nothingNew)
	// The sign-in at 2 saw them again: undoing the one at 1 keeps them.
	forget(t, st, u, "device B", "DE", at(1))
	remember(t, st, u, "device B", "DE", at(3), nothingNew)
	// A time a millisecond off is another sign-in's.
	remember(t, st, u, "device C", "US", at(4), newBoth)
	forget(t, st, u, "device C", "US", at(4).Add(-time.Millisecond))
	forget(t, st, u, "device C", "US", at(4).Add(time.Millisecond))
	remember(t, st, u, "device C", "US", at(5), nothingNew)
	// A device and a country are apart even with the same name.
	remember(t, st, u, "PL", "PL", at(6), newBoth)
	forget(t, st, u, "", "PL", at(6))
	remember(t, st, u, "PL", "PL", at(7), newLocation)
}

func testForgetUnknown(t *testing.T, st sessiond.ActivityStore) {
	now := base()
	forget(t, st, activityUser(), "device A", "FR", now)
	u := activityUser()
	forget(t, st, u, "", "", now)
	remember(t, st, u, "device A", "FR", now, firstSignIn)
	forget(t, st, u, "device B", "DE", now)
	forget(t, st, u, "", "", now)
	remember(t, st, u, "device A", "FR", now.Add(time.Second), nothingNew)
	remember(t, st, u, "device B", "DE", now.Add(2*time.Second), newBoth)
}

func testForgetFirst(t *testing.T, st sessiond.ActivityStore) {
	now := base()
	u := activityUser()
	remember(t, st, u, "device A", "FR", now, firstSignIn)
	forget(t, st, u, "device A", "FR", now)
	remember(t, st, u, "device B", "DE", now.Add(time.Second), firstSignIn)
	remember(t, st, u, "device A", "FR", now.Add(2*time.Second), newBoth)
	// Without a country, the device alone was remembered.
	v := activityUser()
	remember(t, st, v, "device A", "", now, firstSignIn)
	forget(t, st, v, "device A", "", now)
	remember(t, st, v, "device A", "FR", now.Add(time.Second), firstSignIn)
}

func testActivityOrder(t *testing.T, st sessiond.ActivityStore) {
	t0 := base()
	u := activityUser()
	e1, e2 := entry("e1", t0), entry("e2", t0.Add(time.Second))
	e3, e4 := entry("e3", t0.Add(2*time.Second)), entry("e4", t0.Add(2*time.Second))
	e5 := entry("e5", t0.Add(time.Second))
	mustRecord(t, st, u, []sessiond.ActivityEntry{e1}, nil, t0)
	mustRecord(t, st, u, []sessiond.ActivityEntry{e2, e3, e4}, nil, t0.Add(2*time.Second))
	// Recorded late, e5 comes before e2, its tie.
	mustRecord(t, st, u, []sessiond.ActivityEntry{e5}, nil, t0.Add(3*time.Second))
	want := []sessiond.ActivityEntry{e4, e3, e5, e2, e1}
	wantEntries(t, "Activity", activity(t, st, u, time.Time{}, 100), want)
	// Reading changes nothing.
	wantEntries(t, "Activity again", activity(t, st, u, time.Time{}, 100), want)
	// Another user is apart.
	v := activityUser()
	mustRecord(t, st, v, []sessiond.ActivityEntry{entry("v", t0)}, nil, t0)
	wantEntries(t, "Activity of another user", activity(t, st, v, time.Time{}, 100), []sessiond.ActivityEntry{entry("v", t0)})
	wantEntries(t, "Activity after another user's record", activity(t, st, u, time.Time{}, 100), want)
}

func testActivitySinceLimit(t *testing.T, st sessiond.ActivityStore) {
	t0 := base()
	u := activityUser()
	var es []sessiond.ActivityEntry
	for i := range 5 {
		es = append(es, entry(fmt.Sprint(i), t0.Add(time.Duration(i)*time.Second)))
	}
	mustRecord(t, st, u, es, nil, t0.Add(5*time.Second))
	wantEntries(t, "Activity(limit 2)", activity(t, st, u, time.Time{}, 2), []sessiond.ActivityEntry{es[4], es[3]})
	wantEntries(t, "Activity(limit 1)", activity(t, st, u, time.Time{}, 1), []sessiond.ActivityEntry{es[4]})
	// Since is inclusive.
	wantEntries(t, "Activity(since the third)", activity(t, st, u, es[2].At, 100), []sessiond.ActivityEntry{es[4], es[3], es[2]})
	wantEntries(t, "Activity(since just after the third)", activity(t, st, u, es[2].At.Add(time.Millisecond), 100), []sessiond.ActivityEntry{es[4], es[3]})
	wantEntries(t, "Activity(since the second, limit 2)", activity(t, st, u, es[1].At, 2), []sessiond.ActivityEntry{es[4], es[3]})
	wantEntries(t, "Activity(since after the last)", activity(t, st, u, t0.Add(time.Minute), 100), nil)
}

func testActivityUnknown(t *testing.T, st sessiond.ActivityStore) {
	now := base()
	mustRecord(t, st, activityUser(), []sessiond.ActivityEntry{entry("other", now)}, nil, now)
	wantEntries(t, "Activity(unknown user)", activity(t, st, activityUser(), time.Time{}, 100), nil)
}

func testActivityMax(t *testing.T, st sessiond.ActivityStore) {
	t0 := base()
	u := activityUser()
	var all []sessiond.ActivityEntry
	// One record over the bound, then more records one by one.
	for i := range sessiond.ActivityMax + 5 {
		all = append(all, entry(fmt.Sprint(i), t0.Add(time.Duration(i)*time.Second)))
	}
	last := all[len(all)-1].At
	mustRecord(t, st, u, all, nil, last)
	newest := func() []sessiond.ActivityEntry {
		want := slices.Clone(all[len(all)-sessiond.ActivityMax:])
		slices.Reverse(want)
		return want
	}
	wantEntries(t, "Activity after a record over the bound", activity(t, st, u, time.Time{}, 2*sessiond.ActivityMax), newest())
	for i := range 3 {
		e := entry(fmt.Sprint("more ", i), last.Add(time.Duration(i+1)*time.Second))
		all = append(all, e)
		mustRecord(t, st, u, []sessiond.ActivityEntry{e}, nil, e.At)
	}
	wantEntries(t, "Activity after more records", activity(t, st, u, time.Time{}, 2*sessiond.ActivityMax), newest())
}

func testActivityKeep(t *testing.T, st sessiond.ActivityStore) {
	t0 := base()
	u := activityUser()
	old, kept := entry("old", t0), entry("kept", t0.Add(2*time.Second))
	mustRecord(t, st, u, []sessiond.ActivityEntry{old, kept}, nil, t0.Add(2*time.Second))
	later := entry("later", t0.Add(sessiond.ActivityKeep+time.Second))
	mustRecord(t, st, u, []sessiond.ActivityEntry{later}, nil, later.At)
	wantEntries(t, "Activity after ActivityKeep", activity(t, st, u, time.Time{}, 100), []sessiond.ActivityEntry{later, kept})
}

func testOutboxRecord(t *testing.T, st sessiond.ActivityStore) {
	now := base()
	u := activityUser()
	m1, m2, m3 := message(sessiond.QueueWebhook, now), message(sessiond.QueueWebhook, now), message(sessiond.QueueWebhook, now)
	// A message may be recorded with a later due time and a history.
	m2.NextAt = now.Add(90 * time.Second)
	m3.Attempts = 2
	mail := message(sessiond.QueueMail, now)
	mustRecord(t, st, u, []sessiond.ActivityEntry{entry("e", now)}, []sessiond.OutboxMessage{m1, m2, mail, m3}, now)
	wantDue(t, st, sessiond.QueueWebhook, u, now, true)
	wantDue(t, st, sessiond.QueueMail, u, now, true)
	wantMessages(t, "Pending(webhook)", pending(t, st, sessiond.QueueWebhook, u, 10), []sessiond.OutboxMessage{m1, m2, m3})
	wantMessages(t, "Pending(webhook, 2)", pending(t, st, sessiond.QueueWebhook, u, 2), []sessiond.OutboxMessage{m1, m2})
	wantMessages(t, "Pending(mail)", pending(t, st, sessiond.QueueMail, u, 10), []sessiond.OutboxMessage{mail})
	wantEntries(t, "Activity", activity(t, st, u, time.Time{}, 10), []sessiond.ActivityEntry{entry("e", now)})

	// Later records go to the end, in order, even when they were
	// created before.
	m4, m5 := message(sessiond.QueueWebhook, now.Add(-time.Second)), message(sessiond.QueueWebhook, now.Add(time.Second))
	mustRecord(t, st, u, nil, []sessiond.OutboxMessage{m4}, now.Add(time.Second))
	mustRecord(t, st, u, nil, []sessiond.OutboxMessage{m5}, now.Add(time.Second))
	wantMessages(t, "Pending(webhook) after more records", pending(t, st, sessiond.QueueWebhook, u, 10), []sessiond.OutboxMessage{m1, m2, m3, m4, m5})
	// Pending changes nothing.
	wantMessages(t, "Pending(webhook) again", pending(t, st, sessiond.QueueWebhook, u, 10), []sessiond.OutboxMessage{m1, m2, m3, m4, m5})
	wantDue(t, st, sessiond.QueueWebhook, u, now.Add(time.Second), true)

	// Another user's queue is apart.
	v := activityUser()
	wantMessages(t, "Pending(unknown user)", pending(t, st, sessiond.QueueWebhook, v, 10), nil)
	wantDue(t, st, sessiond.QueueWebhook, v, now.Add(time.Second), false)
}

func testOutboxRecordNothing(t *testing.T, st sessiond.ActivityStore) {
	now := base()
	u, v := activityUser(), activityUser()
	mustRecord(t, st, u, nil, nil, now)
	mustRecord(t, st, v, []sessiond.ActivityEntry{entry("e", now)}, nil, now)
	for _, q := range []string{sessiond.QueueWebhook, sessiond.QueueMail} {
		if got := due(t, st, q, now.Add(time.Minute), dueAll, u, v); len(got) != 0 {
			t.Fatalf("Due(%s) after records without messages: got %q, want none", q, got)
		}
	}
	// A message to one queue makes the user due in that queue only.
	mustRecord(t, st, u, nil, []sessiond.OutboxMessage{message(sessiond.QueueMail, now)}, now)
	wantDue(t, st, sessiond.QueueMail, u, now.Add(time.Minute), true)
	wantDue(t, st, sessiond.QueueWebhook, u, now.Add(time.Minute), false)
}

func testOutboxQueues(t *testing.T, st sessiond.ActivityStore) {
	now := base()
	u := activityUser()
	hook, mail := message(sessiond.QueueWebhook, now), message(sessiond.QueueMail, now)
	mustRecord(t, st, u, nil, []sessiond.OutboxMessage{hook, mail}, now)
	// A call on one queue never touches the other's message.
	mustDelivered(t, st, sessiond.QueueMail, u, hook.ID)
	err := st.Retry(ctx, sessiond.QueueWebhook, u, mail.ID, 1, now.Add(time.Minute))
	wantErr(t, "Retry of a mail message in the webhook queue", err, sessiond.ErrNotFound)
	wantMessages(t, "Pending(webhook)", pending(t, st, sessiond.QueueWebhook, u, 10), []sessiond.OutboxMessage{hook})
	wantMessages(t, "Pending(mail)", pending(t, st, sessiond.QueueMail, u, 10), []sessiond.OutboxMessage{mail})
	// Leases of the two queues are apart.
	lease(t, st, sessiond.QueueWebhook, u, "owner A", now, now.Add(time.Minute), true)
	lease(t, st, sessiond.QueueMail, u, "owner B", now, now.Add(time.Minute), true)
	// Emptying one queue keeps the user due in the other.
	mustDelivered(t, st, sessiond.QueueWebhook, u, hook.ID)
	wantMessages(t, "Pending(webhook) after its delivery", pending(t, st, sessiond.QueueWebhook, u, 10), nil)
	wantDue(t, st, sessiond.QueueWebhook, u, now, false)
	wantDue(t, st, sessiond.QueueMail, u, now, true)
	wantMessages(t, "Pending(mail) after the webhook's delivery", pending(t, st, sessiond.QueueMail, u, 10), []sessiond.OutboxMessage{mail})
}

func testOutboxDelivered(t *testing.T, st sessiond.ActivityStore) {
	now := base()
	u := activityUser()
	m1, m2, m3 := message(sessiond.QueueWebhook, now), message(sessiond.QueueWebhook, now), message(sessiond.QueueWebhook, now)
	mustRecord(t, st, u, nil, []sessiond.OutboxMessage{m1, m2, m3}, now)
	mustDelivered(t, st, sessiond.QueueWebhook, u, m1.ID)
	wantMessages(t, "Pending after delivering the first", pending(t, st, sessiond.QueueWebhook, u, 10), []sessiond.OutboxMessage{m2, m3})
	// A message may be dropped from the middle.
	mustDelivered(t, st, sessiond.QueueWebhook, u, m3.ID)
	wantMessages(t, "Pending after dropping the last", pending(t, st, sessiond.QueueWebhook, u, 10), []sessiond.OutboxMessage{m2})
	// Missing messages: delivered twice, unknown id, unknown user.
	mustDelivered(t, st, sessiond.QueueWebhook, u, m1.ID)
	mustDelivered(t, st, sessiond.QueueWebhook, u, randomID())
	mustDelivered(t, st, sessiond.QueueWebhook, activityUser(), m2.ID)
	wantMessages(t, "Pending after missing deliveries", pending(t, st, sessiond.QueueWebhook, u, 10), []sessiond.OutboxMessage{m2})
	wantDue(t, st, sessiond.QueueWebhook, u, now, true)
	mustDelivered(t, st, sessiond.QueueWebhook, u, m2.ID)
	wantMessages(t, "Pending after delivering all", pending(t, st, sessiond.QueueWebhook, u, 10), nil)
}

func testOutboxRetry(t *testing.T, st sessiond.ActivityStore) {
	t0 := base()
	u := activityUser()
	m1, m2 := message(sessiond.QueueWebhook, t0), message(sessiond.QueueWebhook, t0)
	mustRecord(t, st, u, nil, []sessiond.OutboxMessage{m1, m2}, t0)
	wantDue(t, st, sessiond.QueueWebhook, u, t0, true)

	// The first message failed: the user waits for it.
	next := t0.Add(30 * time.Second)
	mustRetry(t, st, sessiond.QueueWebhook, u, m1.ID, 1, next)
	m1.Attempts, m1.NextAt = 1, next
	wantMessages(t, "Pending after Retry", pending(t, st, sessiond.QueueWebhook, u, 10), []sessiond.OutboxMessage{m1, m2})
	wantDue(t, st, sessiond.QueueWebhook, u, t0.Add(time.Second), false)
	wantDue(t, st, sessiond.QueueWebhook, u, next.Add(-time.Millisecond), false)
	wantDue(t, st, sessiond.QueueWebhook, u, next, true)

	// Failed again, later.
	next = t0.Add(2 * time.Minute)
	mustRetry(t, st, sessiond.QueueWebhook, u, m1.ID, 2, next)
	m1.Attempts, m1.NextAt = 2, next
	wantMessages(t, "Pending after a second Retry", pending(t, st, sessiond.QueueWebhook, u, 10), []sessiond.OutboxMessage{m1, m2})
	wantDue(t, st, sessiond.QueueWebhook, u, t0.Add(time.Minute), false)
	wantDue(t, st, sessiond.QueueWebhook, u, next.Add(time.Second), true)

	// A retry of a message behind the first changes that message only:
	// the user is due with the first.
	next2 := t0.Add(time.Hour)
	mustRetry(t, st, sessiond.QueueWebhook, u, m2.ID, 1, next2)
	m2.Attempts, m2.NextAt = 1, next2
	wantMessages(t, "Pending after a Retry of the second", pending(t, st, sessiond.QueueWebhook, u, 10), []sessiond.OutboxMessage{m1, m2})
	wantDue(t, st, sessiond.QueueWebhook, u, next.Add(time.Second), true)

	// Once the first is delivered, the user is due at once: a store may
	// list them before the second's next, and must at it.
	mustDelivered(t, st, sessiond.QueueWebhook, u, m1.ID)
	wantDue(t, st, sessiond.QueueWebhook, u, next2, true)
	wantMessages(t, "Pending after delivering the first", pending(t, st, sessiond.QueueWebhook, u, 10), []sessiond.OutboxMessage{m2})
}

func testOutboxRetryMissing(t *testing.T, st sessiond.ActivityStore) {
	now := base()
	u := activityUser()
	m := message(sessiond.QueueWebhook, now)
	mustRecord(t, st, u, nil, []sessiond.OutboxMessage{m}, now)
	next := now.Add(time.Minute)
	wantErr(t, "Retry of an unknown id", st.Retry(ctx, sessiond.QueueWebhook, u, randomID(), 1, next), sessiond.ErrNotFound)
	wantErr(t, "Retry of another user's message", st.Retry(ctx, sessiond.QueueWebhook, activityUser(), m.ID, 1, next), sessiond.ErrNotFound)
	wantErr(t, "Retry in the other queue", st.Retry(ctx, sessiond.QueueMail, u, m.ID, 1, next), sessiond.ErrNotFound)
	// The failed calls changed nothing.
	wantMessages(t, "Pending after failed retries", pending(t, st, sessiond.QueueWebhook, u, 10), []sessiond.OutboxMessage{m})
	wantDue(t, st, sessiond.QueueWebhook, u, now, true)
	mustDelivered(t, st, sessiond.QueueWebhook, u, m.ID)
	wantErr(t, "Retry of a delivered message", st.Retry(ctx, sessiond.QueueWebhook, u, m.ID, 1, next), sessiond.ErrNotFound)
	wantMessages(t, "Pending after a retry of a delivered message", pending(t, st, sessiond.QueueWebhook, u, 10), nil)
}

func testOutboxPendingEmpty(t *testing.T, st sessiond.ActivityStore) {
	now := base()
	u := activityUser()
	m := message(sessiond.QueueWebhook, now)
	mustRecord(t, st, u, nil, []sessiond.OutboxMessage{m}, now)
	mustDelivered(t, st, sessiond.QueueWebhook, u, m.ID)
	// Delivered may leave the user due; the Pending that finds the queue
	// empty ends that.
	wantMessages(t, "Pending of an empty queue", pending(t, st, sessiond.QueueWebhook, u, 10), nil)
	wantDue(t, st, sessiond.QueueWebhook, u, now.Add(time.Minute), false)
	// A new message makes the user due again.
	m2 := message(sessiond.QueueWebhook, now.Add(time.Second))
	mustRecord(t, st, u, nil, []sessiond.OutboxMessage{m2}, now.Add(time.Second))
	wantDue(t, st, sessiond.QueueWebhook, u, now.Add(time.Minute), true)
	wantMessages(t, "Pending after a new message", pending(t, st, sessiond.QueueWebhook, u, 10), []sessiond.OutboxMessage{m2})
	// Pending of a user never recorded is empty and no error.
	wantMessages(t, "Pending(unknown user)", pending(t, st, sessiond.QueueMail, activityUser(), 10), nil)
}

func testOutboxPendingRace(t *testing.T, st sessiond.ActivityStore) {
	now := base()
	const rounds = 30
	users := []string{activityUser(), activityUser()}
	var wg sync.WaitGroup
	errs := make(chan error, len(users))
	for _, u := range users {
		wg.Go(func() {
			for i := range rounds {
				at := now.Add(time.Duration(i) * time.Millisecond)
				m := message(sessiond.QueueWebhook, at)
				var recErr, pendErr error
				var inner sync.WaitGroup
				start := make(chan struct{})
				inner.Go(func() {
					<-start
					recErr = st.Record(ctx, u, nil, []sessiond.OutboxMessage{m}, at)
				})
				inner.Go(func() {
					<-start
					_, pendErr = st.Pending(ctx, sessiond.QueueWebhook, u, 10)
				})
				close(start)
				inner.Wait()
				if err := errors.Join(recErr, pendErr); err != nil {
					errs <- fmt.Errorf("round %d: %w", i, err)
					return
				}
				got, err := st.Due(ctx, sessiond.QueueWebhook, at.Add(time.Minute), dueAll)
				if err != nil {
					errs <- fmt.Errorf("round %d: Due: %w", i, err)
					return
				}
				if !slices.Contains(got, u) {
					errs <- fmt.Errorf("round %d: Due after a Record beside a Pending of the empty queue: %q is not among the users %q, want it", i, u, got)
					return
				}
				// Empty the queue for the next round.
				if err := st.Delivered(ctx, sessiond.QueueWebhook, u, m.ID); err != nil {
					errs <- fmt.Errorf("round %d: Delivered: %w", i, err)
					return
				}
				if _, err := st.Pending(ctx, sessiond.QueueWebhook, u, 10); err != nil {
					errs <- fmt.Errorf("round %d: Pending: %w", i, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func testOutboxDueOrder(t *testing.T, st sessiond.ActivityStore) {
	// Hours before the other cases, so that what they leave in a shared
	// store is due after these users.
	t0 := base().Add(-12 * time.Hour)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	users := make([]string, 6)
	for i := range users {
		users[i] = activityUser()
	}
	// Recorded out of order; user 4 at 0 but due at 4.5 s; user 5 not due
	// before an hour.
	record := func(i int, recorded time.Time, next time.Time) {
		m := message(sessiond.QueueWebhook, recorded)
		m.NextAt = next
		mustRecord(t, st, users[i], nil, []sessiond.OutboxMessage{m}, recorded)
	}
	record(5, at(0), at(3600))
	record(2, at(2), time.Time{})
	record(0, at(0), time.Time{})
	record(4, at(0), at(4).Add(500*time.Millisecond))
	record(3, at(3), time.Time{})
	record(1, at(1), time.Time{})

	now := at(10)
	got := due(t, st, sessiond.QueueWebhook, now, dueAll, users...)
	got = slices.DeleteFunc(got, func(u string) bool { return u == users[5] })
	if want := users[:5]; !slices.Equal(got, want) {
		t.Fatalf("Due: got users %q, want %q", got, want)
	}
	for n := 1; n <= 3; n++ {
		if got, want := due(t, st, sessiond.QueueWebhook, now, n, users...), users[:n]; !slices.Equal(got, want) {
			t.Fatalf("Due(n %d): got users %q, want %q", n, got, want)
		}
	}
	// Before their due times, users 3 and 4 need not be listed; if they
	// are, they come after the users due.
	if got := due(t, st, sessiond.QueueWebhook, at(2), dueAll, users[:5]...); len(got) < 3 || !slices.Equal(got[:3], users[:3]) {
		t.Fatalf("Due at 2 s: got users %q, want %q first", got, users[:3])
	}
	// A retry of user 0's message puts them back in their place: after
	// user 3 and before user 4.
	ms := pending(t, st, sessiond.QueueWebhook, users[0], 1)
	mustRetry(t, st, sessiond.QueueWebhook, users[0], ms[0].ID, 1, at(4))
	want := []string{users[1], users[2], users[3], users[0], users[4]}
	got = due(t, st, sessiond.QueueWebhook, now, dueAll, users[:5]...)
	if !slices.Equal(got, want) {
		t.Fatalf("Due after a Retry of user 0's message: got users %q, want %q", got, want)
	}
	emptyQueues(t, st, sessiond.QueueWebhook, users...)
}

// emptyQueues delivers every message of the users' queue, so that a store
// shared with later cases has none of them due.
func emptyQueues(t *testing.T, st sessiond.ActivityStore, queue string, users ...string) {
	t.Helper()
	for _, u := range users {
		for _, m := range pending(t, st, queue, u, dueAll) {
			mustDelivered(t, st, queue, u, m.ID)
		}
		if ms := pending(t, st, queue, u, dueAll); len(ms) != 0 {
			t.Fatalf("Pending(%s, %q) after delivering every message: got %d messages, want none", queue, u, len(ms))
		}
	}
	if got := due(t, st, queue, base().Add(time.Hour), dueAll, users...); len(got) != 0 {
		t.Fatalf("Due(%s) after emptying the queues: got %q, want none", queue, got)
	}
}

func testLeaseExclusive(t *testing.T, st sessiond.ActivityStore) {
	now := base()
	u := activityUser()
	q := sessiond.QueueWebhook
	lease(t, st, q, u, "owner A", now, now.Add(30*time.Second), true)
	lease(t, st, q, u, "owner B", now.Add(time.Second), now.Add(31*time.Second), false)
	// A extends their lease.
	lease(t, st, q, u, "owner A", now.Add(2*time.Second), now.Add(time.Minute), true)
	lease(t, st, q, u, "owner B", now.Add(40*time.Second), now.Add(70*time.Second), false)
	// A lease of a user without messages is a lease all the same; another
	// user is apart.
	v := activityUser()
	lease(t, st, q, v, "owner B", now.Add(40*time.Second), now.Add(70*time.Second), true)
	// Once expired, the lease can be taken; the old owner is then refused.
	lease(t, st, q, u, "owner B", now.Add(time.Minute+time.Second), now.Add(2*time.Minute), true)
	lease(t, st, q, u, "owner A", now.Add(time.Minute+2*time.Second), now.Add(2*time.Minute), false)
	// Owners are opaque strings.
	lease(t, st, q, u, "Owner B", now.Add(time.Minute+3*time.Second), now.Add(2*time.Minute), false)
	lease(t, st, q, u, "owner B", now.Add(time.Minute+4*time.Second), now.Add(3*time.Minute), true)
}

func testLeaseConcurrent(t *testing.T, st sessiond.ActivityStore) {
	now := base()
	u := activityUser()
	const n = 8
	got := make([]bool, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			got[i], errs[i] = st.Lease(ctx, sessiond.QueueWebhook, u, fmt.Sprint("owner ", i), now, now.Add(time.Minute))
		})
	}
	close(start)
	wg.Wait()
	won := 0
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("Lease #%d: got error %v, want nil", i, errs[i])
		}
		if got[i] {
			won++
		}
	}
	if won != 1 {
		t.Fatalf("%d concurrent leases: got %d winners, want 1", n, won)
	}
}

func testUnlease(t *testing.T, st sessiond.ActivityStore) {
	now := base()
	u := activityUser()
	q := sessiond.QueueMail
	unlease := func(owner string) {
		t.Helper()
		if err := st.Unlease(ctx, q, u, owner); err != nil {
			t.Fatalf("Unlease(%s): got error %v, want nil", owner, err)
		}
	}
	lease(t, st, q, u, "owner A", now, now.Add(time.Minute), true)
	unlease("owner B")
	lease(t, st, q, u, "owner B", now.Add(time.Second), now.Add(time.Minute), false)
	unlease("owner A")
	lease(t, st, q, u, "owner B", now.Add(time.Second), now.Add(time.Minute), true)
	// A's second unlease is nothing: B keeps the lease.
	unlease("owner A")
	lease(t, st, q, u, "owner A", now.Add(2*time.Second), now.Add(time.Minute), false)
	unlease("owner B")
	unlease("owner B")
	lease(t, st, q, u, "owner A", now.Add(2*time.Second), now.Add(time.Minute), true)
	if err := st.Unlease(ctx, q, activityUser(), "owner A"); err != nil {
		t.Fatalf("Unlease(unknown user): got error %v, want nil", err)
	}
}

func testQueueStats(t *testing.T, st sessiond.ActivityStore) {
	// Before every other case, so that the oldest message is this one's
	// in a shared store.
	t0 := base().Add(-20 * time.Hour)
	now := t0.Add(time.Hour)
	stats := func(q string) (int, time.Time) {
		t.Helper()
		depth, oldest, err := st.QueueStats(ctx, q, now)
		if err != nil {
			t.Fatalf("QueueStats(%s): got error %v, want nil", q, err)
		}
		return depth, oldest
	}
	hook0, hookOldest0 := stats(sessiond.QueueWebhook)
	mail0, mailOldest0 := stats(sessiond.QueueMail)
	if hook0 == 0 && !hookOldest0.IsZero() {
		t.Fatalf("QueueStats(%s) of an empty queue: got oldest %s, want zero", sessiond.QueueWebhook, fmtTime(hookOldest0))
	}
	wantStats := func(what, q string, depth int, oldest time.Time) {
		t.Helper()
		gotDepth, gotOldest := stats(q)
		if gotDepth != depth || !msEqual(gotOldest, oldest) {
			t.Fatalf("QueueStats(%s) %s: got (%d, %s), want (%d, %s)", q, what, gotDepth, fmtTime(gotOldest), depth, fmtTime(oldest))
		}
	}
	u, v := activityUser(), activityUser()
	u1, u2 := message(sessiond.QueueWebhook, t0), message(sessiond.QueueWebhook, t0)
	mustRecord(t, st, u, nil, []sessiond.OutboxMessage{u1, u2, message(sessiond.QueueMail, t0)}, t0)
	v1 := message(sessiond.QueueWebhook, t0.Add(time.Second))
	mustRecord(t, st, v, nil, []sessiond.OutboxMessage{v1}, t0.Add(time.Second))
	wantStats("after the records", sessiond.QueueWebhook, hook0+3, t0)
	wantStats("after the records", sessiond.QueueMail, mail0+1, t0)
	// A message waiting for its retry still waits in the queue.
	mustRetry(t, st, sessiond.QueueWebhook, u, u1.ID, 1, now.Add(time.Hour))
	wantStats("after a retry", sessiond.QueueWebhook, hook0+3, t0)
	mustDelivered(t, st, sessiond.QueueWebhook, u, u1.ID)
	wantStats("after a delivery", sessiond.QueueWebhook, hook0+2, t0)
	mustDelivered(t, st, sessiond.QueueWebhook, u, u2.ID)
	wantStats("after delivering the oldest", sessiond.QueueWebhook, hook0+1, t0.Add(time.Second))
	emptyQueues(t, st, sessiond.QueueWebhook, u, v)
	emptyQueues(t, st, sessiond.QueueMail, u, v)
	// Back to what the queues held before: nothing in a fresh store.
	wantStats("when emptied", sessiond.QueueWebhook, hook0, hookOldest0)
	wantStats("when emptied", sessiond.QueueMail, mail0, mailOldest0)
}

// testActivityUserIDs plays every call with user ids an app may bring,
// spaces included.
func testActivityUserIDs(t *testing.T, st sessiond.ActivityStore) {
	now := base()
	var all strings.Builder
	for c := byte(' '); c <= '~'; c++ {
		all.WriteByte(c)
	}
	tag := randomID()[:8]
	users := []string{
		"{", "}", ":", "@", "|", "%", "%25", "%7B", "{u:x}", "user|1", "a@b.example", "auth0|5f7c8ec7c33c6c004bbafe82",
		"google-oauth2:1234", "}{:@|", `"\'`, " ", "a b", "a  b", strings.Repeat("~", 120), all.String(),
	}
	for i := range users {
		users[i] += tag
	}
	msgs := map[string]sessiond.OutboxMessage{}
	for _, u := range users {
		remember(t, st, u, "device "+u, "FR", now, firstSignIn)
		m := message(sessiond.QueueWebhook, now)
		msgs[u] = m
		mustRecord(t, st, u, []sessiond.ActivityEntry{entry(u, now)}, []sessiond.OutboxMessage{m}, now)
	}
	if got := due(t, st, sessiond.QueueWebhook, now, dueAll, users...); len(got) != len(users) {
		t.Fatalf("Due: got %d of the users %q, want all %d", len(got), got, len(users))
	}
	for _, u := range users {
		remember(t, st, u, "device "+u, "FR", now.Add(time.Second), nothingNew)
		wantEntries(t, fmt.Sprintf("Activity(%q)", u), activity(t, st, u, time.Time{}, 10), []sessiond.ActivityEntry{entry(u, now)})
		wantMessages(t, fmt.Sprintf("Pending(%q)", u), pending(t, st, sessiond.QueueWebhook, u, 10), []sessiond.OutboxMessage{msgs[u]})
		lease(t, st, sessiond.QueueWebhook, u, "owner A", now, now.Add(time.Minute), true)
		lease(t, st, sessiond.QueueWebhook, u, "owner B", now, now.Add(time.Minute), false)
	}
	// "%" and its encodings, and "{" beside "{u:x}", stay apart.
	wantMessages(t, "Pending(%25) after the others", pending(t, st, sessiond.QueueWebhook, "%25"+tag, 10), []sessiond.OutboxMessage{msgs["%25"+tag]})
	for _, u := range users {
		m := msgs[u]
		mustRetry(t, st, sessiond.QueueWebhook, u, m.ID, 1, now.Add(time.Hour))
		m.Attempts, m.NextAt = 1, now.Add(time.Hour)
		wantMessages(t, fmt.Sprintf("Pending(%q) after Retry", u), pending(t, st, sessiond.QueueWebhook, u, 10), []sessiond.OutboxMessage{m})
		mustDelivered(t, st, sessiond.QueueWebhook, u, m.ID)
		wantMessages(t, fmt.Sprintf("Pending(%q) after Delivered", u), pending(t, st, sessiond.QueueWebhook, u, 10), nil)
		if err := st.Unlease(ctx, sessiond.QueueWebhook, u, "owner A"); err != nil {
			t.Fatalf("Unlease(%q): got error %v, want nil", u, err)
		}
		lease(t, st, sessiond.QueueWebhook, u, "owner B", now, now.Add(time.Minute), true)
	}
	if got := due(t, st, sessiond.QueueWebhook, now.Add(2*time.Hour), dueAll, users...); len(got) != 0 {
		t.Fatalf("Due after every queue was emptied: got %q, want none", got)
	}
}
