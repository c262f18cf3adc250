package redis_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sessiond/sessiond"
	"github.com/sessiond/sessiond/redis"
	"github.com/sessiond/sessiond/redis/redistest"
)

// scriptKeys watches Redis with MONITOR while fn runs and returns, for
// each script call seen, how many distinct keys its commands touched (the
// commands a script runs are logged one after the other, tagged "lua").
func scriptKeys(t *testing.T, srv *redistest.Server, fn func()) []int {
	t.Helper()
	conn, err := net.Dial("tcp", srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	r := bufio.NewReaderSize(conn, 1<<20)
	if _, err := conn.Write([]byte("MONITOR\r\n")); err != nil {
		t.Fatal(err)
	}
	if line, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(line, "+OK") {
		t.Fatalf("MONITOR: got %q, %v", line, err)
	}
	var counts []int
	var wg sync.WaitGroup
	wg.Add(1)
	const marker = "sessiond-monitor-end"
	go func() {
		defer wg.Done()
		var keys map[string]bool
		flush := func() {
			if keys != nil {
				counts = append(counts, len(keys))
				keys = nil
			}
		}
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				t.Errorf("reading MONITOR: %v", err)
				return
			}
			if strings.Contains(line, marker) {
				flush()
				return
			}
			if !strings.Contains(line, " lua] ") {
				flush()
				continue
			}
			// +<time> [0 lua] "COMMAND" "key" ...
			f := strings.SplitN(line[strings.Index(line, " lua] ")+6:], `" "`, 3)
			if len(f) < 2 {
				continue
			}
			if keys == nil {
				keys = map[string]bool{}
			}
			keys[strings.Trim(f[1], "\"\r\n")] = true
		}
	}()
	fn()
	srv.MustDo("ECHO", marker)
	wg.Wait()
	return counts
}

// TestLargeUserScriptsTouchAChunk runs every per-user operation on a user
// with 10,000 sessions and checks that no script call touches more than a
// chunk of sessions (and the user's index), so Redis serves others
// between chunks.
func TestLargeUserScriptsTouchAChunk(t *testing.T) {
	srv := redistest.Start(t)
	st := newStore(t, redis.Options{URL: srv.URL()})
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Millisecond)
	user := "large"
	mk := func(i int) *sessiond.Session {
		at := now.Add(-time.Duration(i) * time.Second)
		return &sessiond.Session{
			ID: fmt.Sprintf("s%05d", i), UserID: user, Device: "curl", DeviceClass: sessiond.ClassCLI,
			IPAddress: "203.0.113.9", CreatedAt: at, LastActive: at, ExpiresAt: now.Add(time.Hour),
			Generation: 1, RotatedAt: at,
		}
	}
	for i := range sessiond.HardMaxSessions {
		if _, err := st.Create(ctx, mk(i), sessiond.SessionCap{}, now); err != nil {
			t.Fatal(err)
		}
	}

	limit := sessiond.SessionCap{Max: sessiond.HardMaxSessions, Policy: sessiond.PolicyEvict}
	ops := []struct {
		name string
		fn   func() (int, error)
	}{
		{"list", func() (int, error) {
			l, err := st.List(ctx, user, now)
			return len(l), err
		}},
		{"list page", func() (int, error) {
			l, err := st.ListPage(ctx, user, now, nil, "", sessiond.MaxListLimit)
			return len(l), err
		}},
		{"create at the cap", func() (int, error) {
			s := mk(sessiond.HardMaxSessions)
			s.DeviceID = "device-b"
			e, err := st.Create(ctx, s, limit, now)
			return len(e), err
		}},
		{"revoke others", func() (int, error) {
			ids, err := st.RevokeOthers(ctx, user, "s00002")
			return len(ids), err
		}},
		{"revoke all", func() (int, error) {
			// Creates without a cap or device id touch two keys each.
			for i := 3; i < sessiond.HardMaxSessions; i++ {
				if _, err := st.Create(ctx, mk(i), sessiond.SessionCap{}, now); err != nil {
					return 0, err
				}
			}
			ids, err := st.RevokeAll(ctx, user)
			return len(ids), err
		}},
	}
	want := []int{sessiond.HardMaxSessions, sessiond.MaxListLimit, 1, sessiond.HardMaxSessions - 1, sessiond.HardMaxSessions - 2}
	for i, op := range ops {
		var n int
		var err error
		counts := scriptKeys(t, srv, func() { n, err = op.fn() })
		if err != nil || n != want[i] {
			t.Fatalf("%s: got (%d, %v), want (%d, nil)", op.name, n, err, want[i])
		}
		most := 0
		for _, c := range counts {
			most = max(most, c)
		}
		// A chunk of sessions, the user's index and the new session's key.
		if most > sessiond.StoreChunk+2 || most < sessiond.StoreChunk/2 {
			t.Fatalf("%s: the busiest of %d script calls touched %d keys, want about %d (at most %d)",
				op.name, len(counts), most, sessiond.StoreChunk, sessiond.StoreChunk+2)
		}
		t.Logf("%s: %d script calls, the busiest touched %d keys", op.name, len(counts), most)
	}
}
