package sessiond_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/sessiond/sessiond"
)

// TestMaxSessionsNeverExceedsTheHardMaximum: whatever MaxSessions says,
// logins create sessions under a cap of at most HardMaxSessions (0 once
// meant no cap at all).
func TestMaxSessionsNeverExceedsTheHardMaximum(t *testing.T) {
	for _, tc := range []struct{ set, want int }{
		{0, sessiond.HardMaxSessions},
		{-1, sessiond.HardMaxSessions},
		{sessiond.HardMaxSessions + 1, sessiond.HardMaxSessions},
		{1 << 30, sessiond.HardMaxSessions},
		{7, 7},
		{sessiond.HardMaxSessions, sessiond.HardMaxSessions},
	} {
		m, _ := newManager(t)
		var got sessiond.SessionCap
		m.SetSessionsForTest(&limitRecorder{SessionStore: m.SessionsForTest(), got: &got})
		m.MaxSessions = tc.set
		signIn(t, m, "max")
		if got.Max != tc.want {
			t.Errorf("MaxSessions %d: login created under a cap of %d, want %d", tc.set, got.Max, tc.want)
		}
	}
}

// limitRecorder records the limit of the last Create.
type limitRecorder struct {
	sessiond.SessionStore
	got *sessiond.SessionCap
}

func (r *limitRecorder) Create(ctx context.Context, s *sessiond.Session, l sessiond.SessionCap, now time.Time) ([]sessiond.Ended, error) {
	*r.got = l
	return r.SessionStore.Create(ctx, s, l, now)
}

// TestListPagesWalkEverySessionOnce walks the pages of a list with ties in
// last activity and login time, at several page sizes: the pages put
// together are exactly the unpaged list (the current session first), each
// session once, and only the last page has no next cursor.
func TestListPagesWalkEverySessionOnce(t *testing.T) {
	m, clk := newManager(t)
	ctx := context.Background()
	user := "pager"
	now := clk.Now()
	var current string
	for i := range 57 {
		at := now.Add(-time.Duration(i/3) * time.Minute) // three at each time
		created := at.Add(-time.Duration(i%2) * time.Hour)
		s := &sessiond.Session{
			ID: fmt.Sprintf("id-%02d-%d", 57-i, i%5), UserID: user, Device: "curl", DeviceClass: sessiond.ClassCLI,
			CreatedAt: created, LastActive: at, ExpiresAt: now.Add(time.Hour), Generation: 1, RotatedAt: at,
		}
		if _, err := m.SessionsForTest().Create(ctx, s, sessiond.SessionCap{}, now); err != nil {
			t.Fatal(err)
		}
		if i == 30 {
			current = s.ID
		}
	}
	all, err := m.List(ctx, user, current)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 57 || all[0].ID != current {
		t.Fatalf("List: got %d sessions, first %s; want 57, first %s", len(all), all[0].ID, current)
	}
	for _, limit := range []int{1, 2, 7, 56, 57, 1000} {
		var walked []string
		cursor := ""
		for pages := 0; ; pages++ {
			if pages > 57 {
				t.Fatalf("limit %d: more than 57 pages", limit)
			}
			page, err := m.ListPage(ctx, user, current, limit, cursor)
			if err != nil {
				t.Fatalf("limit %d, page %d: %v", limit, pages+1, err)
			}
			if len(page.Sessions) > limit || len(page.Sessions) == 0 {
				t.Fatalf("limit %d, page %d: got %d sessions", limit, pages+1, len(page.Sessions))
			}
			for _, s := range page.Sessions {
				walked = append(walked, s.ID)
			}
			if page.Next == "" {
				break
			}
			cursor = page.Next
		}
		for i, s := range all {
			if i >= len(walked) || walked[i] != s.ID {
				t.Fatalf("limit %d: walked %d sessions %v, want the list's order %v", limit, len(walked), walked, ids(all))
			}
		}
		if len(walked) != len(all) {
			t.Fatalf("limit %d: walked %d sessions, want %d", limit, len(walked), len(all))
		}
	}
}

func ids(ss []*sessiond.Session) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = s.ID
	}
	return out
}

// TestListPageRefusesBadInput: a limit outside 1..1000 or a cursor the
// server did not issue is an input error naming the field.
func TestListPageRefusesBadInput(t *testing.T) {
	m, _ := newManager(t)
	ctx := context.Background()
	for _, tc := range []struct {
		limit  int
		cursor string
		field  string
	}{
		{0, "", "limit"},
		{-1, "", "limit"},
		{sessiond.MaxListLimit + 1, "", "limit"},
		{10, "not a cursor", "cursor"},
		{10, "bm90LWEtY3Vyc29y", "cursor"}, // base64url of "not-a-cursor"
		{10, "MTIzLnguaWQ", "cursor"},      // "123.x.id"
	} {
		_, err := m.ListPage(ctx, "u", "", tc.limit, tc.cursor)
		var ie *sessiond.InputError
		if !errors.As(err, &ie) || ie.Field != tc.field {
			t.Errorf("ListPage(limit %d, cursor %q): got %v, want an input error naming %s", tc.limit, tc.cursor, err, tc.field)
		}
	}
}

// partialRevoker is the real store, except that its revoke-others and
// revoke-all report a failure after deleting: as a store working in chunks
// does when a later chunk fails.
type partialRevoker struct{ sessiond.SessionStore }

func (p partialRevoker) RevokeOthers(ctx context.Context, userID, keepID string) ([]string, error) {
	ids, _ := p.SessionStore.RevokeOthers(ctx, userID, keepID)
	return ids, fmt.Errorf("test: a later chunk: %w", sessiond.ErrUnavailable)
}

func (p partialRevoker) RevokeAll(ctx context.Context, userID string) ([]string, error) {
	ids, _ := p.SessionStore.RevokeAll(ctx, userID)
	return ids, fmt.Errorf("test: a later chunk: %w", sessiond.ErrUnavailable)
}

// TestRevokeFailingPartWayReportsWhatEnded: when a revoke-others or
// revoke-all fails after some sessions ended, the caller gets the error
// (the API answers 503, never 200) and every session that did end is
// published all the same.
func TestRevokeFailingPartWayReportsWhatEnded(t *testing.T) {
	for _, all := range []bool{false, true} {
		m, _ := newManager(t)
		ctx := context.Background()
		keep := signIn(t, m, "partial")
		for range 4 {
			signIn(t, m, "partial")
		}
		events, stop, err := m.Subscribe(ctx, keep.Session.UserID)
		if err != nil {
			t.Fatal(err)
		}
		m.SetSessionsForTest(partialRevoker{m.SessionsForTest()})
		var n int
		if all {
			n, err = m.RevokeAll(ctx, keep.Session.UserID, sessiond.ReasonAdmin)
		} else {
			n, err = m.RevokeOthers(ctx, keep.Session.UserID, keep.Session.ID, sessiond.ReasonRevokedOthers)
		}
		want := 4
		if all {
			want = 5
		}
		if !errors.Is(err, sessiond.ErrUnavailable) || n != want {
			t.Fatalf("revoke (all: %v) failing part-way: got (%d, %v), want (%d, ErrUnavailable)", all, n, err, want)
		}
		stop()
		got := 0
		for e := range events {
			if e.Type == sessiond.EventRevoked {
				got++
			}
		}
		if got != want {
			t.Fatalf("revoke (all: %v) failing part-way: %d revoked events, want %d", all, got, want)
		}
	}
}
