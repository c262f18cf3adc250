package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sessiond/sessiond"
)

const (
	idle     = 14 * 24 * time.Hour
	absolute = 30 * 24 * time.Hour
)

// Run runs the SessionStore conformance suite. newStore must return a fresh
// store for each sub-test; it may register cleanups with t.Cleanup.
func Run(t *testing.T, newStore func(t *testing.T) sessiond.SessionStore) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s sessiond.SessionStore)
	}{
		{"created session round-trips every field", testRoundTrip},
		{"returned sessions are the caller's copies", testCallerCopies},
		{"get of an unknown id is not found", testGetUnknown},
		{"get with another user's id is not found", testGetForeign},
		{"get after the idle timeout is not found", testGetIdleExpired},
		{"get after the absolute lifetime is not found", testGetAbsoluteExpired},
		{"list returns only the user's live sessions", testList},
		{"list pages follow the list order from a position", testListPage},
		{"touch extends last active and expiry", testTouch},
		{"touch of a gone session is not found", testTouchGone},
		{"rotate advances the generation", testRotate},
		{"rotate from a wrong generation changes nothing", testRotateMismatch},
		{"rotate of a gone session is not found", testRotateGone},
		{"concurrent rotates from one generation have one winner", testRotateConcurrent},
		{"rename sets and clears the name", testRename},
		{"rename of a gone session is not found", testRenameGone},
		{"update sets, replaces and clears the claims apart from the name", testUpdateClaims},
		{"revoke ends the session", testRevoke},
		{"revoke with another user's id is not found and keeps the session", testRevokeForeign},
		{"revoke others keeps only the current session", testRevokeOthers},
		{"revoke all ends every session of the user", testRevokeAll},
		{"same device login replaces the old session", testReplace},
		{"same device login does not report an expired session", testReplaceExpired},
		{"creating an existing id fails and changes nothing", testCreateDuplicate},
		{"cap with evict removes the least recently active", testEvict},
		{"cap with evict breaks ties by the older login", testEvictTie},
		{"cap with evict removes as many as needed", testEvictMany},
		{"cap ignores expired sessions", testCapIgnoresExpired},
		{"cap with evict never evicts an expired session", testEvictSkipsExpired},
		{"cap with deny refuses and changes nothing", testDeny},
		{"cap with deny admits a same device login", testDenySameDevice},
		{"cap with deny keeps the replaced session when still full", testDenyKeepsReplaced},
		{"cap with evict replaces the same device without evicting", testEvictSameDevice},
		{"zero max means no cap", testNoCap},
		{"concurrent creates under evict keep exactly the cap", testConcurrentEvict},
		{"concurrent creates under deny admit exactly the cap", testConcurrentDeny},
		{"delete expired removes only expired sessions", testDeleteExpired},
		{"user ids with special characters are kept apart", testSpecialUserIDs},
		{"app user ids of every allowed character work in every call", testAppUserIDs},
		{"a user at the hard maximum is listed, capped and revoked whole", testLargeUser},
		{"ping answers", testPing},
		{"writable accepts a write and keeps nothing a session call sees", testWritable},
		{"sync returns nil when every change is confirmed and changes nothing", testSync},
	}
	for _, tt := range append(tests, handoffTests...) {
		t.Run(tt.name, func(t *testing.T) {
			tt.fn(t, newStore(t))
		})
	}
}

// newSession returns a live session of userID that logged in at now.
func newSession(userID string, now time.Time) *sessiond.Session {
	return &sessiond.Session{
		ID:          randomID(),
		UserID:      userID,
		Device:      "Firefox on Linux",
		DeviceClass: sessiond.ClassDesktop,
		IPAddress:   "203.0.113.7",
		CreatedAt:   now,
		LastActive:  now,
		ExpiresAt:   now.Add(idle),
		Generation:  1,
		RotatedAt:   now,
	}
}

// rename sets the name of a session through Update.
func rename(st sessiond.SessionStore, userID, id, name string) (*sessiond.Session, error) {
	return st.Update(context.Background(), userID, id, sessiond.SessionChange{Name: &name})
}

// mustCreate creates s with no cap and fails the test on error or when
// anything was ended.
func mustCreate(t *testing.T, st sessiond.SessionStore, s *sessiond.Session, now time.Time) {
	t.Helper()
	ended, err := st.Create(context.Background(), s, sessiond.SessionCap{}, now)
	if err != nil {
		t.Fatalf("Create(%s): got error %v, want nil", s.ID, err)
	}
	if len(ended) != 0 {
		t.Fatalf("Create(%s): got ended %v, want none", s.ID, ended)
	}
}

// createN creates n sessions of userID, the i-th last active at
// now - (n-i) minutes, and returns them oldest activity first.
func createN(t *testing.T, st sessiond.SessionStore, userID string, n int, now time.Time) []*sessiond.Session {
	t.Helper()
	out := make([]*sessiond.Session, n)
	for i := range n {
		s := newSession(userID, now.Add(-time.Duration(n-i)*time.Minute))
		mustCreate(t, st, s, now)
		out[i] = s
	}
	return out
}

// mustGet returns the session and fails the test when Get fails.
func mustGet(t *testing.T, st sessiond.SessionStore, userID, id string, now time.Time) *sessiond.Session {
	t.Helper()
	got, err := st.Get(context.Background(), userID, id, now)
	if err != nil {
		t.Fatalf("Get(%q, %s): got error %v, want nil", userID, id, err)
	}
	if got == nil {
		t.Fatalf("Get(%q, %s): got nil session, want one", userID, id)
	}
	return got
}

// wantNotFound fails the test unless Get reports ErrNotFound.
func wantNotFound(t *testing.T, st sessiond.SessionStore, userID, id string, now time.Time) {
	t.Helper()
	got, err := st.Get(context.Background(), userID, id, now)
	if !errors.Is(err, sessiond.ErrNotFound) {
		t.Fatalf("Get(%q, %s): got (%v, %v), want ErrNotFound", userID, id, got, err)
	}
}

// wantErr fails the test unless errors.Is(err, want).
func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: got error %v, want %v", what, err, want)
	}
}

// listIDs returns the sorted ids of userID's live sessions at now.
func listIDs(t *testing.T, st sessiond.SessionStore, userID string, now time.Time) []string {
	t.Helper()
	list, err := st.List(context.Background(), userID, now)
	if err != nil {
		t.Fatalf("List(%q): got error %v, want nil", userID, err)
	}
	ids := make([]string, 0, len(list))
	for _, s := range list {
		if s.UserID != userID {
			t.Fatalf("List(%q): got a session of user %q", userID, s.UserID)
		}
		ids = append(ids, s.ID)
	}
	sort.Strings(ids)
	return ids
}

// ids returns the sorted ids of ss.
func ids(ss ...*sessiond.Session) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = s.ID
	}
	sort.Strings(out)
	return out
}

// sorted returns a sorted copy of ids.
func sorted(ids []string) []string {
	out := slices.Clone(ids)
	sort.Strings(out)
	if out == nil {
		out = []string{}
	}
	return out
}

// wantIDs fails the test unless got and want hold the same ids.
func wantIDs(t *testing.T, what string, got, want []string) {
	t.Helper()
	g, w := sorted(got), sorted(want)
	if !slices.Equal(g, w) {
		t.Fatalf("%s: got ids %v, want %v", what, g, w)
	}
}

// wantEnded fails the test unless got equals want in any order.
func wantEnded(t *testing.T, what string, got, want []sessiond.Ended) {
	t.Helper()
	key := func(e sessiond.Ended) string { return e.ID + " " + string(e.Reason) }
	g := make([]string, len(got))
	for i, e := range got {
		g[i] = key(e)
	}
	w := make([]string, len(want))
	for i, e := range want {
		w[i] = key(e)
	}
	sort.Strings(g)
	sort.Strings(w)
	if !slices.Equal(g, w) {
		t.Fatalf("%s: got ended %v, want %v", what, g, w)
	}
}

// diffSession lists the fields in which got differs from want, times
// compared at millisecond precision.
func diffSession(got, want *sessiond.Session) []string {
	var d []string
	str := func(name, g, w string) {
		if g != w {
			d = append(d, fmt.Sprintf("%s: got %q, want %q", name, g, w))
		}
	}
	tm := func(name string, g, w time.Time) {
		if !msEqual(g, w) {
			d = append(d, fmt.Sprintf("%s: got %s, want %s", name, fmtTime(g), fmtTime(w)))
		}
	}
	str("ID", got.ID, want.ID)
	str("UserID", got.UserID, want.UserID)
	str("DeviceID", got.DeviceID, want.DeviceID)
	str("Device", got.Device, want.Device)
	str("DeviceClass", got.DeviceClass, want.DeviceClass)
	str("Name", got.Name, want.Name)
	str("IPAddress", got.IPAddress, want.IPAddress)
	str("Location", got.Location, want.Location)
	str("Claims", string(got.Claims), string(want.Claims))
	tm("CreatedAt", got.CreatedAt, want.CreatedAt)
	tm("LastActive", got.LastActive, want.LastActive)
	tm("ExpiresAt", got.ExpiresAt, want.ExpiresAt)
	tm("RotatedAt", got.RotatedAt, want.RotatedAt)
	if got.Generation != want.Generation {
		d = append(d, fmt.Sprintf("Generation: got %d, want %d", got.Generation, want.Generation))
	}
	return d
}

// wantSession fails the test unless got equals want field by field.
func wantSession(t *testing.T, what string, got, want *sessiond.Session) {
	t.Helper()
	if got == nil {
		t.Fatalf("%s: got nil session, want %s", what, want.ID)
	}
	if d := diffSession(got, want); len(d) > 0 {
		t.Fatalf("%s:\n\t%s", what, strings.Join(d, "\n\t"))
	}
}

func testRoundTrip(t *testing.T, st sessiond.SessionStore) {
	ctx := context.Background()
	now := base()
	// Every field distinct, every time with a sub-millisecond part.
	s := &sessiond.Session{
		ID:          randomID(),
		UserID:      randomID(),
		DeviceID:    "dGhlIGRldmljZSBoYXNo",
		Device:      "Safari on iPhone",
		DeviceClass: sessiond.ClassMobile,
		Name:        "Émile's phone 📱",
		IPAddress:   "2001:db8::1",
		Location:    "São Paulo, Brazil",
		CreatedAt:   now.Add(-3*time.Hour + 111),
		LastActive:  now.Add(-time.Hour + 222),
		ExpiresAt:   now.Add(idle - time.Hour + 333),
		Generation:  7, // the store keeps what it is given
		RotatedAt:   now.Add(-2*time.Hour + 444),
		Claims:      json.RawMessage(`{"org":"acme","roles":["admin","billing"],"tier":3,"x":"\u003c\u2028é"}`),
	}
	want := s.Clone()
	ended, err := st.Create(ctx, s, sessiond.SessionCap{Max: 50, Policy: sessiond.PolicyEvict}, now)
	if err != nil {
		t.Fatalf("Create: got error %v, want nil", err)
	}
	if len(ended) != 0 {
		t.Fatalf("Create: got ended %v, want none", ended)
	}
	wantSession(t, "Get", mustGet(t, st, s.UserID, s.ID, now), want)

	list, err := st.List(ctx, s.UserID, now)
	if err != nil {
		t.Fatalf("List: got error %v, want nil", err)
	}
	if len(list) != 1 {
		t.Fatalf("List: got %d sessions, want 1", len(list))
	}
	wantSession(t, "List", list[0], want)
}

func testCallerCopies(t *testing.T, st sessiond.SessionStore) {
	now := base()
	s := newSession(randomID(), now)
	s.Name = "laptop"
	want := s.Clone()
	mustCreate(t, st, s, now)

	// Changing what was passed to Create must not change the stored session.
	s.Name = "changed after create"
	s.Generation = 99

	// Nor may changing what Get returned, whether the store read it from
	// its backend or from a cache.
	for i := range 3 {
		got := mustGet(t, st, want.UserID, want.ID, now)
		wantSession(t, fmt.Sprintf("Get #%d", i+1), got, want)
		got.Name = "changed after get"
		got.ExpiresAt = now
		got.Generation = 42
	}

	list, err := st.List(context.Background(), want.UserID, now)
	if err != nil || len(list) != 1 {
		t.Fatalf("List: got (%d sessions, %v), want (1, nil)", len(list), err)
	}
	list[0].Name = "changed after list"
	wantSession(t, "Get after changing a listed value", mustGet(t, st, want.UserID, want.ID, now), want)

	got, err := rename(st, want.UserID, want.ID, "renamed")
	if err != nil {
		t.Fatalf("Rename: got error %v, want nil", err)
	}
	got.Name = "changed after rename"
	want.Name = "renamed"
	wantSession(t, "Get after changing a renamed value", mustGet(t, st, want.UserID, want.ID, now), want)
}

func testGetUnknown(t *testing.T, st sessiond.SessionStore) {
	now := base()
	s := newSession(randomID(), now)
	mustCreate(t, st, s, now)
	wantNotFound(t, st, s.UserID, randomID(), now)
	wantNotFound(t, st, randomID(), randomID(), now)
	wantNotFound(t, st, s.UserID, "", now)
}

func testGetForeign(t *testing.T, st sessiond.SessionStore) {
	now := base()
	s := newSession(randomID(), now)
	mustCreate(t, st, s, now)
	wantNotFound(t, st, randomID(), s.ID, now)
	// A prefix of the owner's id is another user too.
	wantNotFound(t, st, s.UserID[:len(s.UserID)-1], s.ID, now)
	// The owner still sees it.
	mustGet(t, st, s.UserID, s.ID, now)
}

func testGetIdleExpired(t *testing.T, st sessiond.SessionStore) {
	now := base().Truncate(time.Millisecond)
	s := newSession(randomID(), now)
	s.ExpiresAt = now.Add(idle) // created+absolute is later
	mustCreate(t, st, s, now)

	mustGet(t, st, s.UserID, s.ID, s.ExpiresAt.Add(-time.Millisecond))
	// At ExpiresAt the session is gone.
	wantNotFound(t, st, s.UserID, s.ID, s.ExpiresAt)
	wantNotFound(t, st, s.UserID, s.ID, s.ExpiresAt.Add(time.Hour))
	if got := listIDs(t, st, s.UserID, s.ExpiresAt); len(got) != 0 {
		t.Fatalf("List at expiry: got %v, want none", got)
	}
}

func testGetAbsoluteExpired(t *testing.T, st sessiond.SessionStore) {
	ctx := context.Background()
	now := base().Truncate(time.Millisecond)
	s := newSession(randomID(), now)
	mustCreate(t, st, s, now)

	// Activity near the end of the absolute lifetime: the Manager caps
	// ExpiresAt at CreatedAt + absolute lifetime.
	active := now.Add(absolute - 24*time.Hour)
	capped := now.Add(absolute)
	if err := st.Touch(ctx, s.UserID, s.ID, active, capped); err != nil {
		t.Fatalf("Touch: got error %v, want nil", err)
	}
	wantNotFound(t, st, s.UserID, s.ID, capped)
	mustGet(t, st, s.UserID, s.ID, capped.Add(-time.Millisecond))
	wantNotFound(t, st, s.UserID, s.ID, capped)
	wantNotFound(t, st, s.UserID, s.ID, active.Add(idle-time.Millisecond))
}

func testList(t *testing.T, st sessiond.SessionStore) {
	now := base()
	alice, bob := randomID(), randomID()
	a := createN(t, st, alice, 3, now)
	b := createN(t, st, bob, 2, now)

	expired := newSession(alice, now.Add(-idle))
	expired.ExpiresAt = now.Add(time.Hour)
	mustCreate(t, st, expired, now)

	later := now.Add(time.Hour) // expired is gone, the others are live
	wantIDs(t, "List(alice)", listIDs(t, st, alice, later), ids(a...))
	wantIDs(t, "List(bob)", listIDs(t, st, bob, later), ids(b...))
	wantIDs(t, "List(alice) before the expiry", listIDs(t, st, alice, now), ids(append(a, expired)...))
	if got := listIDs(t, st, randomID(), later); len(got) != 0 {
		t.Fatalf("List(unknown user): got %v, want none", got)
	}
}

func testTouch(t *testing.T, st sessiond.SessionStore) {
	ctx := context.Background()
	now := base()
	s := newSession(randomID(), now)
	mustCreate(t, st, s, now)
	mustGet(t, st, s.UserID, s.ID, now) // a store may cache it now

	active := now.Add(10*24*time.Hour + 777)
	expires := active.Add(idle)
	for i := range 2 { // idempotent
		if err := st.Touch(ctx, s.UserID, s.ID, active, expires); err != nil {
			t.Fatalf("Touch #%d: got error %v, want nil", i+1, err)
		}
	}
	want := s.Clone()
	want.LastActive = active
	want.ExpiresAt = expires
	// Past the old expiry, before the new one.
	wantSession(t, "Get after Touch", mustGet(t, st, s.UserID, s.ID, s.ExpiresAt.Add(time.Hour)), want)
	wantNotFound(t, st, s.UserID, s.ID, expires)
}

func testTouchGone(t *testing.T, st sessiond.SessionStore) {
	ctx := context.Background()
	now := base()
	s := newSession(randomID(), now)
	mustCreate(t, st, s, now)
	revoked := newSession(s.UserID, now)
	mustCreate(t, st, revoked, now)
	if err := st.Revoke(ctx, revoked.UserID, revoked.ID); err != nil {
		t.Fatalf("Revoke: got error %v, want nil", err)
	}

	later := now.Add(time.Minute)
	wantErr(t, "Touch(unknown id)", st.Touch(ctx, s.UserID, randomID(), later, later.Add(idle)), sessiond.ErrNotFound)
	wantErr(t, "Touch(revoked)", st.Touch(ctx, revoked.UserID, revoked.ID, later, later.Add(idle)), sessiond.ErrNotFound)
	wantErr(t, "Touch(another user's id)", st.Touch(ctx, randomID(), s.ID, later, later.Add(idle)), sessiond.ErrNotFound)
	// Touching a revoked session must not bring it back.
	wantNotFound(t, st, revoked.UserID, revoked.ID, later)
	// Nor may a foreign touch change the owner's session.
	wantSession(t, "Get after a foreign Touch", mustGet(t, st, s.UserID, s.ID, now), s)
}

func testRotate(t *testing.T, st sessiond.SessionStore) {
	ctx := context.Background()
	now := base()
	s := newSession(randomID(), now)
	mustCreate(t, st, s, now)

	want := s.Clone()
	for gen := uint64(1); gen <= 3; gen++ {
		at := now.Add(time.Duration(gen)*time.Hour + 555)
		exp := at.Add(idle)
		got, err := st.Rotate(ctx, s.UserID, s.ID, gen, at, exp)
		if err != nil {
			t.Fatalf("Rotate(from %d): got error %v, want nil", gen, err)
		}
		want.Generation = gen + 1
		want.RotatedAt = at
		want.LastActive = at
		want.ExpiresAt = exp
		wantSession(t, fmt.Sprintf("Rotate(from %d) result", gen), got, want)
		wantSession(t, fmt.Sprintf("Get after Rotate(from %d)", gen), mustGet(t, st, s.UserID, s.ID, at), want)
	}
}

func testRotateMismatch(t *testing.T, st sessiond.SessionStore) {
	ctx := context.Background()
	now := base()
	s := newSession(randomID(), now)
	mustCreate(t, st, s, now)
	at := now.Add(time.Hour)
	if _, err := st.Rotate(ctx, s.UserID, s.ID, 1, at, at.Add(idle)); err != nil {
		t.Fatalf("Rotate(from 1): got error %v, want nil", err)
	}
	want := mustGet(t, st, s.UserID, s.ID, at)

	later := now.Add(2 * time.Hour)
	for _, from := range []uint64{0, 1, 3, 100} {
		got, err := st.Rotate(ctx, s.UserID, s.ID, from, later, later.Add(idle))
		if !errors.Is(err, sessiond.ErrGenerationMismatch) {
			t.Fatalf("Rotate(from %d) at generation 2: got (%v, %v), want ErrGenerationMismatch", from, got, err)
		}
	}
	wantSession(t, "Get after failed rotates", mustGet(t, st, s.UserID, s.ID, at), want)
}

func testRotateGone(t *testing.T, st sessiond.SessionStore) {
	ctx := context.Background()
	now := base()
	s := newSession(randomID(), now)
	mustCreate(t, st, s, now)
	at := now.Add(time.Minute)

	_, err := st.Rotate(ctx, s.UserID, randomID(), 1, at, at.Add(idle))
	wantErr(t, "Rotate(unknown id)", err, sessiond.ErrNotFound)
	_, err = st.Rotate(ctx, randomID(), s.ID, 1, at, at.Add(idle))
	wantErr(t, "Rotate(another user's id)", err, sessiond.ErrNotFound)
	wantSession(t, "Get after a foreign Rotate", mustGet(t, st, s.UserID, s.ID, now), s)

	if err := st.Revoke(ctx, s.UserID, s.ID); err != nil {
		t.Fatalf("Revoke: got error %v, want nil", err)
	}
	_, err = st.Rotate(ctx, s.UserID, s.ID, 1, at, at.Add(idle))
	wantErr(t, "Rotate(revoked)", err, sessiond.ErrNotFound)
	wantNotFound(t, st, s.UserID, s.ID, at)
}

func testRotateConcurrent(t *testing.T, st sessiond.SessionStore) {
	const n = 50
	now := base()
	s := newSession(randomID(), now)
	mustCreate(t, st, s, now)

	at := now.Add(time.Minute)
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			_, errs[i] = st.Rotate(context.Background(), s.UserID, s.ID, 1, at, at.Add(idle))
		})
	}
	close(start)
	wg.Wait()

	won := 0
	for i, err := range errs {
		switch {
		case err == nil:
			won++
		case errors.Is(err, sessiond.ErrGenerationMismatch):
		default:
			t.Errorf("Rotate #%d: got error %v, want nil or ErrGenerationMismatch", i, err)
		}
	}
	if won != 1 {
		t.Fatalf("concurrent Rotate from 1: got %d successes, want 1", won)
	}
	if got := mustGet(t, st, s.UserID, s.ID, at); got.Generation != 2 {
		t.Fatalf("Generation after concurrent rotates: got %d, want 2", got.Generation)
	}
}

func testRename(t *testing.T, st sessiond.SessionStore) {
	now := base()
	s := newSession(randomID(), now)
	mustCreate(t, st, s, now)

	want := s.Clone()
	for _, name := range []string{"Work laptop", "Téléphone de Zoë 📱", ""} {
		got, err := rename(st, s.UserID, s.ID, name)
		if err != nil {
			t.Fatalf("Update(name %q): got error %v, want nil", name, err)
		}
		want.Name = name
		wantSession(t, fmt.Sprintf("Update(name %q) result", name), got, want)
		wantSession(t, fmt.Sprintf("Get after Update(name %q)", name), mustGet(t, st, s.UserID, s.ID, now), want)
	}
}

func testRenameGone(t *testing.T, st sessiond.SessionStore) {
	ctx := context.Background()
	now := base()
	s := newSession(randomID(), now)
	mustCreate(t, st, s, now)

	_, err := rename(st, s.UserID, randomID(), "x")
	wantErr(t, "Update(name unknown id)", err, sessiond.ErrNotFound)
	_, err = rename(st, randomID(), s.ID, "x")
	wantErr(t, "Update(name another user's id)", err, sessiond.ErrNotFound)
	wantSession(t, "Get after a foreign Rename", mustGet(t, st, s.UserID, s.ID, now), s)

	if err := st.Revoke(ctx, s.UserID, s.ID); err != nil {
		t.Fatalf("Revoke: got error %v, want nil", err)
	}
	_, err = rename(st, s.UserID, s.ID, "x")
	wantErr(t, "Update(name revoked)", err, sessiond.ErrNotFound)
	wantNotFound(t, st, s.UserID, s.ID, now)
}

func testRevoke(t *testing.T, st sessiond.SessionStore) {
	ctx := context.Background()
	now := base()
	user := randomID()
	ss := createN(t, st, user, 3, now)
	mustGet(t, st, user, ss[1].ID, now) // a store may cache it now

	if err := st.Revoke(ctx, user, ss[1].ID); err != nil {
		t.Fatalf("Revoke: got error %v, want nil", err)
	}
	wantNotFound(t, st, user, ss[1].ID, now)
	wantErr(t, "second Revoke", st.Revoke(ctx, user, ss[1].ID), sessiond.ErrNotFound)
	wantErr(t, "Revoke(unknown id)", st.Revoke(ctx, user, randomID()), sessiond.ErrNotFound)
	wantIDs(t, "List after Revoke", listIDs(t, st, user, now), ids(ss[0], ss[2]))
}

func testRevokeForeign(t *testing.T, st sessiond.SessionStore) {
	ctx := context.Background()
	now := base()
	s := newSession(randomID(), now)
	mustCreate(t, st, s, now)
	wantErr(t, "Revoke(another user's id)", st.Revoke(ctx, randomID(), s.ID), sessiond.ErrNotFound)
	wantSession(t, "Get after a foreign Revoke", mustGet(t, st, s.UserID, s.ID, now), s)
}

func testRevokeOthers(t *testing.T, st sessiond.SessionStore) {
	ctx := context.Background()
	now := base()
	user, other := randomID(), randomID()
	ss := createN(t, st, user, 4, now)
	theirs := createN(t, st, other, 2, now)
	for _, s := range ss {
		mustGet(t, st, user, s.ID, now)
	}

	keep := ss[2]
	got, err := st.RevokeOthers(ctx, user, keep.ID)
	if err != nil {
		t.Fatalf("RevokeOthers: got error %v, want nil", err)
	}
	wantIDs(t, "RevokeOthers", got, ids(ss[0], ss[1], ss[3]))
	wantIDs(t, "List after RevokeOthers", listIDs(t, st, user, now), ids(keep))
	for _, s := range []*sessiond.Session{ss[0], ss[1], ss[3]} {
		wantNotFound(t, st, user, s.ID, now)
	}
	wantSession(t, "Get(kept)", mustGet(t, st, user, keep.ID, now), keep)
	wantIDs(t, "List(another user) after RevokeOthers", listIDs(t, st, other, now), ids(theirs...))

	got, err = st.RevokeOthers(ctx, user, keep.ID)
	if err != nil || len(got) != 0 {
		t.Fatalf("second RevokeOthers: got (%v, %v), want (none, nil)", got, err)
	}
	got, err = st.RevokeOthers(ctx, randomID(), randomID())
	if err != nil || len(got) != 0 {
		t.Fatalf("RevokeOthers(unknown user): got (%v, %v), want (none, nil)", got, err)
	}
	// Keeping another user's session id keeps nothing of this user's and
	// touches nothing of the other's.
	got, err = st.RevokeOthers(ctx, other, keep.ID)
	if err != nil {
		t.Fatalf("RevokeOthers(other, foreign keep): got error %v, want nil", err)
	}
	wantIDs(t, "RevokeOthers(other, foreign keep)", got, ids(theirs...))
	mustGet(t, st, user, keep.ID, now)
}

func testRevokeAll(t *testing.T, st sessiond.SessionStore) {
	ctx := context.Background()
	now := base()
	user, other := randomID(), randomID()
	ss := createN(t, st, user, 3, now)
	theirs := createN(t, st, other, 2, now)
	for _, s := range ss {
		mustGet(t, st, user, s.ID, now)
	}

	got, err := st.RevokeAll(ctx, user)
	if err != nil {
		t.Fatalf("RevokeAll: got error %v, want nil", err)
	}
	wantIDs(t, "RevokeAll", got, ids(ss...))
	if l := listIDs(t, st, user, now); len(l) != 0 {
		t.Fatalf("List after RevokeAll: got %v, want none", l)
	}
	for _, s := range ss {
		wantNotFound(t, st, user, s.ID, now)
	}
	wantIDs(t, "List(another user) after RevokeAll", listIDs(t, st, other, now), ids(theirs...))

	got, err = st.RevokeAll(ctx, user)
	if err != nil || len(got) != 0 {
		t.Fatalf("second RevokeAll: got (%v, %v), want (none, nil)", got, err)
	}
}

func testReplace(t *testing.T, st sessiond.SessionStore) {
	ctx := context.Background()
	now := base()
	user, other := randomID(), randomID()

	old := newSession(user, now)
	old.DeviceID = "device-a"
	mustCreate(t, st, old, now)
	mustGet(t, st, user, old.ID, now)
	// Same device id of another user, a different device, and two sessions
	// without a device id: none of them is replaced.
	foreign := newSession(other, now)
	foreign.DeviceID = "device-a"
	mustCreate(t, st, foreign, now)
	b := newSession(user, now)
	b.DeviceID = "device-b"
	mustCreate(t, st, b, now)
	plain1 := newSession(user, now)
	mustCreate(t, st, plain1, now)
	plain2 := newSession(user, now)
	mustCreate(t, st, plain2, now)

	later := now.Add(time.Minute)
	repl := newSession(user, later)
	repl.DeviceID = "device-a"
	ended, err := st.Create(ctx, repl, sessiond.SessionCap{Max: 50, Policy: sessiond.PolicyEvict}, later)
	if err != nil {
		t.Fatalf("Create(same device): got error %v, want nil", err)
	}
	wantEnded(t, "Create(same device)", ended, []sessiond.Ended{{ID: old.ID, Reason: sessiond.ReasonReplaced}})
	wantNotFound(t, st, user, old.ID, later)
	wantIDs(t, "List after replacement", listIDs(t, st, user, later), ids(repl, b, plain1, plain2))
	wantIDs(t, "List(another user) after replacement", listIDs(t, st, other, later), ids(foreign))
}

func testReplaceExpired(t *testing.T, st sessiond.SessionStore) {
	ctx := context.Background()
	now := base()
	user := randomID()
	old := newSession(user, now)
	old.DeviceID = "device-a"
	old.ExpiresAt = now.Add(time.Hour)
	mustCreate(t, st, old, now)

	later := now.Add(2 * time.Hour) // old has expired
	s := newSession(user, later)
	s.DeviceID = "device-a"
	ended, err := st.Create(ctx, s, sessiond.SessionCap{}, later)
	if err != nil {
		t.Fatalf("Create: got error %v, want nil", err)
	}
	wantEnded(t, "Create(same device as an expired session)", ended, nil)
	wantIDs(t, "List", listIDs(t, st, user, later), ids(s))
}

func testCreateDuplicate(t *testing.T, st sessiond.SessionStore) {
	ctx := context.Background()
	now := base()
	s := newSession(randomID(), now)
	s.Device = "original"
	mustCreate(t, st, s, now)

	dup := newSession(s.UserID, now.Add(time.Minute))
	dup.ID = s.ID
	dup.Device = "duplicate"
	if _, err := st.Create(ctx, dup, sessiond.SessionCap{}, now); err == nil {
		t.Fatalf("Create(existing id): got nil error, want an error")
	}
	wantSession(t, "Get after a duplicate Create", mustGet(t, st, s.UserID, s.ID, now), s)
	wantIDs(t, "List after a duplicate Create", listIDs(t, st, s.UserID, now), ids(s))
}

func testEvict(t *testing.T, st sessiond.SessionStore) {
	ctx := context.Background()
	now := base()
	user := randomID()
	// Created in an order that differs from the activity order.
	a := newSession(user, now.Add(-3*time.Hour))
	a.LastActive = now.Add(-time.Hour)
	b := newSession(user, now.Add(-2*time.Hour))
	b.LastActive = now.Add(-3 * time.Hour) // least recently active
	c := newSession(user, now.Add(-time.Hour))
	c.LastActive = now.Add(-2 * time.Hour)
	for _, s := range []*sessiond.Session{a, b, c} {
		mustCreate(t, st, s, now)
	}

	d := newSession(user, now)
	ended, err := st.Create(ctx, d, sessiond.SessionCap{Max: 3, Policy: sessiond.PolicyEvict}, now)
	if err != nil {
		t.Fatalf("Create at the cap: got error %v, want nil", err)
	}
	wantEnded(t, "Create at the cap", ended, []sessiond.Ended{{ID: b.ID, Reason: sessiond.ReasonEvicted}})
	wantNotFound(t, st, user, b.ID, now)
	wantIDs(t, "List after eviction", listIDs(t, st, user, now), ids(a, c, d))
}

func testEvictTie(t *testing.T, st sessiond.SessionStore) {
	ctx := context.Background()
	now := base()
	user := randomID()
	active := now.Add(-time.Hour)
	newer := newSession(user, now.Add(-2*time.Hour))
	newer.LastActive = active
	older := newSession(user, now.Add(-5*time.Hour))
	older.LastActive = active
	recent := newSession(user, now.Add(-6*time.Hour))
	recent.LastActive = now.Add(-time.Minute)
	for _, s := range []*sessiond.Session{newer, older, recent} {
		mustCreate(t, st, s, now)
	}

	s := newSession(user, now)
	ended, err := st.Create(ctx, s, sessiond.SessionCap{Max: 3, Policy: sessiond.PolicyEvict}, now)
	if err != nil {
		t.Fatalf("Create at the cap: got error %v, want nil", err)
	}
	wantEnded(t, "Create at the cap with a tie", ended, []sessiond.Ended{{ID: older.ID, Reason: sessiond.ReasonEvicted}})
	wantIDs(t, "List after eviction", listIDs(t, st, user, now), ids(newer, recent, s))
}

func testEvictMany(t *testing.T, st sessiond.SessionStore) {
	ctx := context.Background()
	now := base()
	user := randomID()
	ss := createN(t, st, user, 5, now) // oldest activity first

	s := newSession(user, now)
	ended, err := st.Create(ctx, s, sessiond.SessionCap{Max: 3, Policy: sessiond.PolicyEvict}, now)
	if err != nil {
		t.Fatalf("Create over the cap: got error %v, want nil", err)
	}
	wantEnded(t, "Create with 5 sessions and a cap of 3", ended, []sessiond.Ended{
		{ID: ss[0].ID, Reason: sessiond.ReasonEvicted},
		{ID: ss[1].ID, Reason: sessiond.ReasonEvicted},
		{ID: ss[2].ID, Reason: sessiond.ReasonEvicted},
	})
	wantIDs(t, "List after eviction", listIDs(t, st, user, now), ids(ss[3], ss[4], s))
}

func testCapIgnoresExpired(t *testing.T, st sessiond.SessionStore) {
	ctx := context.Background()
	now := base()
	user := randomID()
	expired := newSession(user, now.Add(-idle))
	expired.LastActive = now.Add(-idle)
	expired.ExpiresAt = now.Add(time.Hour)
	mustCreate(t, st, expired, now)
	live := createN(t, st, user, 2, now)

	later := now.Add(2 * time.Hour)
	for _, policy := range []sessiond.CapPolicy{sessiond.PolicyDeny, sessiond.PolicyEvict} {
		s := newSession(user, later)
		ended, err := st.Create(ctx, s, sessiond.SessionCap{Max: 3, Policy: policy}, later)
		if err != nil {
			t.Fatalf("Create(%s) with 2 live and 1 expired of 3: got error %v, want nil", policy, err)
		}
		wantEnded(t, fmt.Sprintf("Create(%s) with 2 live and 1 expired of 3", policy), ended, nil)
		live = append(live, s)
		if policy == sessiond.PolicyDeny {
			// Make room for the evict round: 2 live again.
			if err := st.Revoke(ctx, user, s.ID); err != nil {
				t.Fatalf("Revoke: got error %v, want nil", err)
			}
			live = live[:len(live)-1]
		}
	}
	wantIDs(t, "List", listIDs(t, st, user, later), ids(live...))
}

func testEvictSkipsExpired(t *testing.T, st sessiond.SessionStore) {
	ctx := context.Background()
	now := base()
	user := randomID()
	// The expired session is the least recently active of all.
	expired := newSession(user, now.Add(-idle))
	expired.ExpiresAt = now.Add(time.Hour)
	mustCreate(t, st, expired, now)
	live := createN(t, st, user, 2, now)

	later := now.Add(2 * time.Hour)
	s := newSession(user, later)
	ended, err := st.Create(ctx, s, sessiond.SessionCap{Max: 2, Policy: sessiond.PolicyEvict}, later)
	if err != nil {
		t.Fatalf("Create at the cap: got error %v, want nil", err)
	}
	wantEnded(t, "Create at the cap with an expired session", ended, []sessiond.Ended{{ID: live[0].ID, Reason: sessiond.ReasonEvicted}})
	wantIDs(t, "List after eviction", listIDs(t, st, user, later), ids(live[1], s))
}

func testDeny(t *testing.T, st sessiond.SessionStore) {
	ctx := context.Background()
	now := base()
	user := randomID()
	ss := createN(t, st, user, 2, now)

	s := newSession(user, now)
	ended, err := st.Create(ctx, s, sessiond.SessionCap{Max: 2, Policy: sessiond.PolicyDeny}, now)
	if !errors.Is(err, sessiond.ErrSessionLimit) {
		t.Fatalf("Create at the cap under deny: got (%v, %v), want ErrSessionLimit", ended, err)
	}
	if len(ended) != 0 {
		t.Fatalf("Create at the cap under deny: got ended %v, want none", ended)
	}
	wantNotFound(t, st, user, s.ID, now)
	wantIDs(t, "List after a denied Create", listIDs(t, st, user, now), ids(ss...))
	for _, o := range ss {
		wantSession(t, "Get after a denied Create", mustGet(t, st, user, o.ID, now), o)
	}
}

func testDenySameDevice(t *testing.T, st sessiond.SessionStore) {
	ctx := context.Background()
	now := base()
	user := randomID()
	old := newSession(user, now.Add(-time.Hour))
	old.DeviceID = "device-a"
	mustCreate(t, st, old, now)
	other := newSession(user, now.Add(-2*time.Hour))
	mustCreate(t, st, other, now)

	s := newSession(user, now)
	s.DeviceID = "device-a"
	ended, err := st.Create(ctx, s, sessiond.SessionCap{Max: 2, Policy: sessiond.PolicyDeny}, now)
	if err != nil {
		t.Fatalf("Create(same device) at the cap under deny: got error %v, want nil", err)
	}
	wantEnded(t, "Create(same device) at the cap under deny", ended, []sessiond.Ended{{ID: old.ID, Reason: sessiond.ReasonReplaced}})
	wantIDs(t, "List", listIDs(t, st, user, now), ids(other, s))
}

func testDenyKeepsReplaced(t *testing.T, st sessiond.SessionStore) {
	ctx := context.Background()
	now := base()
	user := randomID()
	old := newSession(user, now.Add(-time.Hour))
	old.DeviceID = "device-a"
	mustCreate(t, st, old, now)
	others := createN(t, st, user, 2, now)

	// 3 live, cap 2: even after replacing old, 2 remain, so the login is
	// refused and old stays.
	s := newSession(user, now)
	s.DeviceID = "device-a"
	ended, err := st.Create(ctx, s, sessiond.SessionCap{Max: 2, Policy: sessiond.PolicyDeny}, now)
	if !errors.Is(err, sessiond.ErrSessionLimit) {
		t.Fatalf("Create(same device) over the cap under deny: got (%v, %v), want ErrSessionLimit", ended, err)
	}
	if len(ended) != 0 {
		t.Fatalf("Create(same device) over the cap under deny: got ended %v, want none", ended)
	}
	wantSession(t, "Get(old) after a denied Create", mustGet(t, st, user, old.ID, now), old)
	wantIDs(t, "List after a denied Create", listIDs(t, st, user, now), ids(append(others, old)...))
}

func testEvictSameDevice(t *testing.T, st sessiond.SessionStore) {
	ctx := context.Background()
	now := base()
	user := randomID()
	least := newSession(user, now.Add(-3*time.Hour)) // least recently active
	mustCreate(t, st, least, now)
	old := newSession(user, now.Add(-time.Hour))
	old.DeviceID = "device-a"
	mustCreate(t, st, old, now)

	s := newSession(user, now)
	s.DeviceID = "device-a"
	ended, err := st.Create(ctx, s, sessiond.SessionCap{Max: 2, Policy: sessiond.PolicyEvict}, now)
	if err != nil {
		t.Fatalf("Create(same device) at the cap under evict: got error %v, want nil", err)
	}
	wantEnded(t, "Create(same device) at the cap under evict", ended, []sessiond.Ended{{ID: old.ID, Reason: sessiond.ReasonReplaced}})
	wantIDs(t, "List", listIDs(t, st, user, now), ids(least, s))
}

func testNoCap(t *testing.T, st sessiond.SessionStore) {
	ctx := context.Background()
	now := base()
	user := randomID()
	var all []*sessiond.Session
	for i := range 5 {
		s := newSession(user, now)
		ended, err := st.Create(ctx, s, sessiond.SessionCap{Max: 0, Policy: sessiond.PolicyDeny}, now)
		if err != nil || len(ended) != 0 {
			t.Fatalf("Create #%d with Max 0: got (%v, %v), want (none, nil)", i+1, ended, err)
		}
		all = append(all, s)
	}
	wantIDs(t, "List", listIDs(t, st, user, now), ids(all...))
}

// createConcurrently creates n sessions of one user from n goroutines at
// once and returns them with each Create's result.
func createConcurrently(st sessiond.SessionStore, n int, limit sessiond.SessionCap, now time.Time) (string, []*sessiond.Session, [][]sessiond.Ended, []error) {
	user := randomID()
	ss := make([]*sessiond.Session, n)
	for i := range ss {
		ss[i] = newSession(user, now.Add(time.Duration(i)*time.Millisecond))
	}
	ended := make([][]sessiond.Ended, n)
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			ended[i], errs[i] = st.Create(context.Background(), ss[i], limit, now)
		})
	}
	close(start)
	wg.Wait()
	return user, ss, ended, errs
}

func testConcurrentEvict(t *testing.T, st sessiond.SessionStore) {
	const n, max = 100, 10
	now := base()
	user, ss, ended, errs := createConcurrently(st, n, sessiond.SessionCap{Max: max, Policy: sessiond.PolicyEvict}, now)

	evicted := map[string]bool{}
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Create #%d under evict: got error %v, want nil", i, err)
		}
		for _, e := range ended[i] {
			if e.Reason != sessiond.ReasonEvicted {
				t.Fatalf("Create #%d: got reason %q, want %q", i, e.Reason, sessiond.ReasonEvicted)
			}
			if evicted[e.ID] {
				t.Fatalf("session %s: evicted twice, want once", e.ID)
			}
			evicted[e.ID] = true
		}
	}
	live := listIDs(t, st, user, now)
	if len(live) != max {
		t.Fatalf("List after %d concurrent creates with a cap of %d: got %d sessions, want %d", n, max, len(live), max)
	}
	if len(evicted) != n-max {
		t.Fatalf("evicted sessions: got %d, want %d", len(evicted), n-max)
	}
	created := map[string]bool{}
	for _, s := range ss {
		created[s.ID] = true
	}
	for _, id := range live {
		if evicted[id] {
			t.Fatalf("session %s: both listed and evicted", id)
		}
		if !created[id] {
			t.Fatalf("List: got unknown session %s", id)
		}
	}
	for id := range evicted {
		if !created[id] {
			t.Fatalf("evicted: got unknown session %s", id)
		}
	}
}

func testConcurrentDeny(t *testing.T, st sessiond.SessionStore) {
	const n, max = 100, 10
	now := base()
	user, ss, ended, errs := createConcurrently(st, n, sessiond.SessionCap{Max: max, Policy: sessiond.PolicyDeny}, now)

	var won []*sessiond.Session
	for i, err := range errs {
		switch {
		case err == nil:
			won = append(won, ss[i])
		case errors.Is(err, sessiond.ErrSessionLimit):
		default:
			t.Fatalf("Create #%d under deny: got error %v, want nil or ErrSessionLimit", i, err)
		}
		if len(ended[i]) != 0 {
			t.Fatalf("Create #%d under deny: got ended %v, want none", i, ended[i])
		}
	}
	if len(won) != max {
		t.Fatalf("successful creates of %d concurrent under deny with a cap of %d: got %d, want %d", n, max, len(won), max)
	}
	wantIDs(t, "List after concurrent creates", listIDs(t, st, user, now), ids(won...))
}

func testDeleteExpired(t *testing.T, st sessiond.SessionStore) {
	ctx := context.Background()
	now := base()
	user, other := randomID(), randomID()
	e1 := newSession(user, now)
	e1.ExpiresAt = now.Add(time.Hour)
	e2 := newSession(other, now)
	e2.ExpiresAt = now.Add(2 * time.Hour)
	live := newSession(user, now)
	live.ExpiresAt = now.Add(4 * time.Hour)
	for _, s := range []*sessiond.Session{e1, e2, live} {
		mustCreate(t, st, s, now)
		mustGet(t, st, s.UserID, s.ID, now) // a store may cache it now
	}

	at := now.Add(2 * time.Hour) // e2 expires exactly now
	n, err := st.DeleteExpired(ctx, at)
	if err != nil {
		t.Fatalf("DeleteExpired: got error %v, want nil", err)
	}
	if n != 0 && n != 2 {
		t.Fatalf("DeleteExpired: got %d, want 2 (or 0 for a store whose keys expire by themselves)", n)
	}
	wantNotFound(t, st, user, e1.ID, at)
	wantNotFound(t, st, other, e2.ID, at)
	wantSession(t, "Get(live) after DeleteExpired", mustGet(t, st, user, live.ID, at), live)
	wantIDs(t, "List after DeleteExpired", listIDs(t, st, user, at), ids(live))
	if n == 2 {
		// Physically gone: not even a query at an earlier time finds them.
		wantNotFound(t, st, user, e1.ID, now)
		wantNotFound(t, st, other, e2.ID, now)
		n, err = st.DeleteExpired(ctx, at)
		if err != nil || n != 0 {
			t.Fatalf("second DeleteExpired: got (%d, %v), want (0, nil)", n, err)
		}
	}
}

func testSpecialUserIDs(t *testing.T, st sessiond.SessionStore) {
	ctx := context.Background()
	now := base()
	users := []string{
		"{u:1}", "u:1", "u", "}{", "{", "}", ":", "a:b:c", "with space", " ",
		"ünïcødé-用户", "sd:{u:x}:s:y", "line\nbreak", "x*?[a]",
	}
	byUser := map[string][]*sessiond.Session{}
	for _, u := range users {
		byUser[u] = createN(t, st, u, 2, now)
	}
	for _, u := range users {
		wantIDs(t, fmt.Sprintf("List(%q)", u), listIDs(t, st, u, now), ids(byUser[u]...))
		for _, s := range byUser[u] {
			wantSession(t, fmt.Sprintf("Get(%q)", u), mustGet(t, st, u, s.ID, now), s)
		}
	}
	// Ids that share a prefix or an encoding stay apart.
	wantNotFound(t, st, "u", byUser["u:1"][0].ID, now)
	wantNotFound(t, st, "u:1", byUser["{u:1}"][0].ID, now)

	if err := st.Touch(ctx, "{u:1}", byUser["{u:1}"][0].ID, now.Add(time.Minute), now.Add(idle)); err != nil {
		t.Fatalf("Touch(%q): got error %v, want nil", "{u:1}", err)
	}
	if _, err := st.Rotate(ctx, "a:b:c", byUser["a:b:c"][0].ID, 1, now, now.Add(idle)); err != nil {
		t.Fatalf("Rotate(%q): got error %v, want nil", "a:b:c", err)
	}
	if _, err := rename(st, "with space", byUser["with space"][0].ID, "x"); err != nil {
		t.Fatalf("Update(name %q): got error %v, want nil", "with space", err)
	}
	if err := st.Revoke(ctx, "ünïcødé-用户", byUser["ünïcødé-用户"][0].ID); err != nil {
		t.Fatalf("Revoke(%q): got error %v, want nil", "ünïcødé-用户", err)
	}
	wantNotFound(t, st, "ünïcødé-用户", byUser["ünïcødé-用户"][0].ID, now)
	got, err := st.RevokeAll(ctx, "{u:1}")
	if err != nil {
		t.Fatalf("RevokeAll(%q): got error %v, want nil", "{u:1}", err)
	}
	wantIDs(t, "RevokeAll({u:1})", got, ids(byUser["{u:1}"]...))
	got, err = st.RevokeOthers(ctx, "sd:{u:x}:s:y", byUser["sd:{u:x}:s:y"][1].ID)
	if err != nil {
		t.Fatalf("RevokeOthers(%q): got error %v, want nil", "sd:{u:x}:s:y", err)
	}
	wantIDs(t, "RevokeOthers(sd:{u:x}:s:y)", got, ids(byUser["sd:{u:x}:s:y"][0]))
	// The other users are untouched.
	for _, u := range []string{"u:1", "u", "}{", "{", "}", ":"} {
		wantIDs(t, fmt.Sprintf("List(%q) after changes to other users", u), listIDs(t, st, u, now), ids(byUser[u]...))
	}

	// Same-device replacement and the cap work with such ids too.
	s := newSession("{u:1}", now)
	s.DeviceID = "d"
	mustCreate(t, st, s, now)
	s2 := newSession("{u:1}", now)
	s2.DeviceID = "d"
	ended, err := st.Create(ctx, s2, sessiond.SessionCap{Max: 1, Policy: sessiond.PolicyDeny}, now)
	if err != nil {
		t.Fatalf("Create(%q, same device): got error %v, want nil", "{u:1}", err)
	}
	wantEnded(t, "Create({u:1}, same device)", ended, []sessiond.Ended{{ID: s.ID, Reason: sessiond.ReasonReplaced}})
}

func testWritable(t *testing.T, st sessiond.SessionStore) {
	ctx := context.Background()
	now := base()
	s := newSession("writable-user", now)
	if _, err := st.Create(ctx, s, sessiond.SessionCap{}, now); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := st.Writable(ctx); err != nil {
			t.Fatalf("Writable: got error %v, want nil", err)
		}
	}
	list, err := st.List(ctx, "writable-user", now)
	if err != nil || len(list) != 1 || list[0].ID != s.ID {
		t.Fatalf("List after Writable: got %v, %v, want the one session", list, err)
	}
}

func testSync(t *testing.T, st sessiond.SessionStore) {
	ctx := context.Background()
	now := base()
	a, b := newSession("sync-user", now), newSession("sync-user", now)
	for _, s := range []*sessiond.Session{a, b} {
		if _, err := st.Create(ctx, s, sessiond.SessionCap{}, now); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Revoke(ctx, "sync-user", a.ID); err != nil {
		t.Fatal(err)
	}
	for _, user := range []string{"sync-user", "sync-unknown-user"} {
		if err := st.Sync(ctx, user); err != nil {
			t.Fatalf("Sync(%q): got error %v, want nil", user, err)
		}
	}
	list, err := st.List(ctx, "sync-user", now)
	if err != nil || len(list) != 1 || list[0].ID != b.ID {
		t.Fatalf("List after Sync: got %v, %v, want the one session left", list, err)
	}
}

func testPing(t *testing.T, st sessiond.SessionStore) {
	if err := st.Ping(context.Background()); err != nil {
		t.Fatalf("Ping: got error %v, want nil", err)
	}
}

// createMany creates ss with no cap, several at a time, and fails the test
// on error.
func createMany(t *testing.T, st sessiond.SessionStore, ss []*sessiond.Session, now time.Time) {
	t.Helper()
	const workers = 8
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(ss); i += workers {
				if _, err := st.Create(context.Background(), ss[i], sessiond.SessionCap{}, now); err != nil {
					errs <- fmt.Errorf("Create(%s): %w", ss[i].ID, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// testLargeUser holds a store to its contract for a user at the hard
// maximum, whose operations the store may split into chunks: each session
// is listed once, the cap replaces and evicts exactly as for a small user,
// and revoking others or all leaves none behind and reports every one.
func testLargeUser(t *testing.T, st sessiond.SessionStore) {
	ctx := context.Background()
	now := base()
	user, other := randomID(), randomID()
	n := sessiond.HardMaxSessions
	ss := make([]*sessiond.Session, n)
	for i := range ss {
		// Oldest activity first, one second apart.
		ss[i] = newSession(user, now.Add(-time.Duration(n-i)*time.Second))
	}
	ss[0].DeviceID = "device-a"
	createMany(t, st, ss, now)
	theirs := createN(t, st, other, 2, now)

	wantIDs(t, "List(user at the hard maximum)", listIDs(t, st, user, now), ids(ss...))

	limit := sessiond.SessionCap{Max: n, Policy: sessiond.PolicyEvict}
	same := newSession(user, now)
	same.DeviceID = "device-a"
	ended, err := st.Create(ctx, same, limit, now)
	if err != nil {
		t.Fatalf("Create(same device at the cap): got error %v, want nil", err)
	}
	wantEnded(t, "Create(same device at the cap)", ended, []sessiond.Ended{{ID: ss[0].ID, Reason: sessiond.ReasonReplaced}})
	fresh := newSession(user, now)
	ended, err = st.Create(ctx, fresh, limit, now)
	if err != nil {
		t.Fatalf("Create(new device at the cap): got error %v, want nil", err)
	}
	wantEnded(t, "Create(new device at the cap)", ended, []sessiond.Ended{{ID: ss[1].ID, Reason: sessiond.ReasonEvicted}})
	denied := newSession(user, now)
	_, err = st.Create(ctx, denied, sessiond.SessionCap{Max: n, Policy: sessiond.PolicyDeny}, now)
	wantErr(t, "Create(deny at the cap)", err, sessiond.ErrSessionLimit)
	wantNotFound(t, st, user, denied.ID, now)
	wantNotFound(t, st, user, ss[1].ID, now)

	got, err := st.RevokeOthers(ctx, user, fresh.ID)
	if err != nil {
		t.Fatalf("RevokeOthers(user at the hard maximum): got error %v, want nil", err)
	}
	wantIDs(t, "RevokeOthers(user at the hard maximum)", got, append(ids(ss[2:]...), same.ID))
	wantIDs(t, "List after RevokeOthers", listIDs(t, st, user, now), ids(fresh))
	for _, s := range []*sessiond.Session{ss[2], ss[n/2], ss[n-1], same} {
		wantNotFound(t, st, user, s.ID, now)
	}

	more := make([]*sessiond.Session, sessiond.StoreChunk*3/2)
	for i := range more {
		more[i] = newSession(user, now.Add(-time.Duration(i)*time.Second))
	}
	createMany(t, st, more, now)
	got, err = st.RevokeAll(ctx, user)
	if err != nil {
		t.Fatalf("RevokeAll(more than a chunk): got error %v, want nil", err)
	}
	wantIDs(t, "RevokeAll(more than a chunk)", got, append(ids(more...), fresh.ID))
	if l := listIDs(t, st, user, now); len(l) != 0 {
		t.Fatalf("List after RevokeAll: got %d sessions, want none", len(l))
	}
	wantIDs(t, "List(another user)", listIDs(t, st, other, now), ids(theirs...))
}

// testListPage walks a list with ties in last activity and login time a
// few sessions at a time, each page starting after the last session of the
// one before, and checks it against the list order.
func testListPage(t *testing.T, st sessiond.SessionStore) {
	ctx := context.Background()
	now := base()
	user := randomID()
	var all []*sessiond.Session
	for i := range 23 {
		s := newSession(user, now.Add(-time.Duration(i/3)*time.Minute)) // three at each time
		s.CreatedAt = s.LastActive.Add(-time.Duration(i%2) * time.Hour)
		mustCreate(t, st, s, now)
		all = append(all, s)
	}
	expired := newSession(user, now.Add(-idle-time.Minute))
	mustCreate(t, st, expired, now.Add(-idle-time.Minute))
	createN(t, st, randomID(), 2, now)
	exclude := all[7]
	want := slices.DeleteFunc(slices.Clone(all), func(s *sessiond.Session) bool { return s == exclude })
	slices.SortFunc(want, func(a, b *sessiond.Session) int { return a.Position().Compare(b.Position()) })

	var got []string
	var after *sessiond.ListPosition
	for range 30 {
		page, err := st.ListPage(ctx, user, now, after, exclude.ID, 4)
		if err != nil {
			t.Fatalf("ListPage: got error %v, want nil", err)
		}
		if len(page) > 4 {
			t.Fatalf("ListPage(limit 4): got %d sessions", len(page))
		}
		if len(page) == 0 {
			break
		}
		for _, s := range page {
			got = append(got, s.ID)
		}
		wantSession(t, "ListPage's first session", page[0], want[slices.IndexFunc(want, func(s *sessiond.Session) bool { return s.ID == page[0].ID })])
		p := page[len(page)-1].Position()
		after = &p
	}
	var wantOrder []string
	for _, s := range want {
		wantOrder = append(wantOrder, s.ID)
	}
	if !slices.Equal(got, wantOrder) {
		t.Fatalf("pages of ListPage: got %v, want %v", got, wantOrder)
	}
	page, err := st.ListPage(ctx, randomID(), now, nil, "", 10)
	if err != nil || len(page) != 0 {
		t.Fatalf("ListPage(unknown user): got (%d sessions, %v), want (none, nil)", len(page), err)
	}
}

func testUpdateClaims(t *testing.T, st sessiond.SessionStore) {
	ctx := context.Background()
	now := base()
	s := newSession(randomID(), now)
	s.Name = "Work laptop"
	s.Claims = json.RawMessage(`{"org":"acme"}`)
	mustCreate(t, st, s, now)
	wantSession(t, "Get after Create with claims", mustGet(t, st, s.UserID, s.ID, now), s)

	want := s.Clone()
	for _, c := range []string{`{"org":"globex","roles":["a","b"]}`, `{"big":"` + strings.Repeat("é", 1000) + `"}`, ""} {
		claims := json.RawMessage(c)
		got, err := st.Update(ctx, s.UserID, s.ID, sessiond.SessionChange{Claims: &claims})
		if err != nil {
			t.Fatalf("Update(claims %.20q): got error %v, want nil", c, err)
		}
		if c == "" {
			want.Claims = nil
		} else {
			want.Claims = claims
		}
		wantSession(t, fmt.Sprintf("Update(claims %.20q) result", c), got, want)
		wantSession(t, fmt.Sprintf("Get after Update(claims %.20q)", c), mustGet(t, st, s.UserID, s.ID, now), want)
	}

	// Both at once, then the name alone keeps the claims.
	name, claims := "Phone", json.RawMessage(`{"k":1}`)
	got, err := st.Update(ctx, s.UserID, s.ID, sessiond.SessionChange{Name: &name, Claims: &claims})
	if err != nil {
		t.Fatalf("Update(name and claims): got error %v, want nil", err)
	}
	want.Name, want.Claims = name, claims
	wantSession(t, "Update(name and claims) result", got, want)
	if got, err = rename(st, s.UserID, s.ID, ""); err != nil {
		t.Fatalf("Update(name only): got error %v, want nil", err)
	}
	want.Name = ""
	wantSession(t, "Update(name only) result", got, want)
	wantSession(t, "Get after Update(name only)", mustGet(t, st, s.UserID, s.ID, now), want)
	if got, err = st.Update(ctx, s.UserID, s.ID, sessiond.SessionChange{}); err != nil {
		t.Fatalf("Update(nothing): got error %v, want nil", err)
	}
	wantSession(t, "Update(nothing) result", got, want)

	// A list and a rotation carry the claims.
	list, err := st.List(ctx, s.UserID, now)
	if err != nil || len(list) != 1 {
		t.Fatalf("List: got (%d sessions, %v), want (1, nil)", len(list), err)
	}
	wantSession(t, "List after Update", list[0], want)
	rotated, err := st.Rotate(ctx, s.UserID, s.ID, want.Generation, now.Add(time.Second), now.Add(idle))
	if err != nil {
		t.Fatalf("Rotate: got error %v, want nil", err)
	}
	if string(rotated.Claims) != string(want.Claims) {
		t.Fatalf("Rotate: got claims %s, want %s", rotated.Claims, want.Claims)
	}
	_, err = st.Update(ctx, s.UserID, randomID(), sessiond.SessionChange{Claims: &claims})
	wantErr(t, "Update(claims of an unknown id)", err, sessiond.ErrNotFound)
}

// testAppUserIDs plays every call with user ids an app may bring: 1-128
// printable ASCII characters without spaces, any of them allowed.
func testAppUserIDs(t *testing.T, st sessiond.SessionStore) {
	ctx := context.Background()
	now := base()
	var all strings.Builder
	for c := byte('!'); c <= '~'; c++ {
		all.WriteByte(c)
	}
	// Each id ends with a tag of this run: a store shared by the cases
	// keeps what another case left under the same id.
	tag := randomID()[:8]
	users := []string{
		"{", "}", ":", "@", "|", "%", "%25", "%7B", "{u:x}", "user|1", "a@b.example", "auth0|5f7c8ec7c33c6c004bbafe82",
		"google-oauth2:1234", "}{:@|", `"\'`, strings.Repeat("~", 120), all.String(),
	}
	for i := range users {
		users[i] += tag
	}
	byUser := map[string][]*sessiond.Session{}
	for _, u := range users {
		byUser[u] = createN(t, st, u, 2, now)
	}
	for _, u := range users {
		wantIDs(t, fmt.Sprintf("List(%q)", u), listIDs(t, st, u, now), ids(byUser[u]...))
		page, err := st.ListPage(ctx, u, now, nil, byUser[u][0].ID, 10)
		if err != nil || len(page) != 1 || page[0].ID != byUser[u][1].ID {
			t.Fatalf("ListPage(%q): got (%d sessions, %v), want the other session", u, len(page), err)
		}
		for _, s := range byUser[u] {
			wantSession(t, fmt.Sprintf("Get(%q)", u), mustGet(t, st, u, s.ID, now), s)
		}
	}
	// "%" and its encodings, and "{" beside "{u:x}", stay apart.
	wantNotFound(t, st, "%25"+tag, byUser["%"+tag][0].ID, now)
	wantNotFound(t, st, "%"+tag, byUser["%25"+tag][0].ID, now)
	wantNotFound(t, st, "{"+tag, byUser["{u:x}"+tag][0].ID, now)

	for _, u := range users {
		s := byUser[u]
		if err := st.Touch(ctx, u, s[0].ID, now.Add(time.Minute), now.Add(idle)); err != nil {
			t.Fatalf("Touch(%q): got error %v, want nil", u, err)
		}
		if _, err := st.Rotate(ctx, u, s[0].ID, 1, now.Add(time.Minute), now.Add(idle)); err != nil {
			t.Fatalf("Rotate(%q): got error %v, want nil", u, err)
		}
		claims := json.RawMessage(`{"user":` + strconv.Quote(u) + `}`)
		if got, err := st.Update(ctx, u, s[0].ID, sessiond.SessionChange{Claims: &claims}); err != nil || string(got.Claims) != string(claims) {
			t.Fatalf("Update(%q): got (%v, %v), want the claims set", u, got, err)
		}
		if err := st.Sync(ctx, u); err != nil {
			t.Fatalf("Sync(%q): got error %v, want nil", u, err)
		}
		if err := st.Revoke(ctx, u, s[0].ID); err != nil {
			t.Fatalf("Revoke(%q): got error %v, want nil", u, err)
		}
		wantNotFound(t, st, u, s[0].ID, now.Add(time.Minute))
	}
	for i, u := range users {
		keep := createN(t, st, u, 1, now)[0]
		var err error
		if i%2 == 0 {
			_, err = st.RevokeOthers(ctx, u, keep.ID)
			wantIDs(t, fmt.Sprintf("List(%q) after RevokeOthers", u), listIDs(t, st, u, now), ids(keep))
		} else {
			_, err = st.RevokeAll(ctx, u)
			wantIDs(t, fmt.Sprintf("List(%q) after RevokeAll", u), listIDs(t, st, u, now), nil)
		}
		if err != nil {
			t.Fatalf("revoke the sessions of %q: got error %v, want nil", u, err)
		}
	}
}
