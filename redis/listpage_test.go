package redis_test

import (
	"context"
	"testing"
	"time"

	"github.com/sessiond/sessiond"
	"github.com/sessiond/sessiond/redis"
	"github.com/sessiond/sessiond/redis/redistest"
)

// TestListPageRefillsEndedSessions ends sessions between ListPage's scan of
// the times and its read of the page: the page must still hold limit
// sessions when that many live ones follow, or a caller that asks for one
// more than it shows would think the list ends there.
func TestListPageRefillsEndedSessions(t *testing.T) {
	srv := redistest.Start(t)
	st := newStore(t, redis.Options{URL: srv.URL()})
	other := newStore(t, redis.Options{URL: srv.URL()})
	ctx := context.Background()
	now := time.Now()
	user := randomID()
	// Newest activity first: sessions[0] heads the list.
	sessions := make([]*sessiond.Session, 8)
	for i := range sessions {
		s := testSession(user, now.Add(-time.Hour))
		s.DeviceID = ""
		s.LastActive = now.Add(-time.Duration(i) * time.Minute)
		create(t, st, s)
		sessions[i] = s
	}

	for _, tc := range []struct {
		name  string
		ended []int // indexes ended after the scan
		limit int
		want  []int
	}{
		{"one ended on the page", []int{1}, 4, []int{0, 2, 3, 4}},
		{"every candidate of the page ended", []int{2, 3, 4, 5}, 4, []int{0, 6, 7}},
		{"none ended", nil, 3, []int{0, 6, 7}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			redis.SetAfterPageScan(st, func() {
				for _, i := range tc.ended {
					if err := other.Revoke(ctx, user, sessions[i].ID); err != nil {
						t.Errorf("Revoke %d after the scan: %v", i, err)
					}
				}
			})
			defer redis.SetAfterPageScan(st, nil)
			page, err := st.ListPage(ctx, user, now, nil, "", tc.limit)
			if err != nil {
				t.Fatalf("ListPage: %v", err)
			}
			var got []string
			for _, s := range page {
				got = append(got, s.ID)
			}
			var want []string
			for _, i := range tc.want {
				want = append(want, sessions[i].ID)
			}
			if len(got) != len(want) {
				t.Fatalf("ListPage(limit %d) with %v ended after the scan: got %d sessions %q, want %d %q", tc.limit, tc.ended, len(got), got, len(want), want)
			}
			for i := range want {
				if got[i] != want[i] {
					t.Fatalf("ListPage(limit %d) with %v ended after the scan: got %q, want %q", tc.limit, tc.ended, got, want)
				}
			}
		})
	}
}
