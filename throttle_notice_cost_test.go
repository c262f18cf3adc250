package sessiond_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/sessiond/sessiond"
	"github.com/sessiond/sessiond/internal/sessiondtest"
	"github.com/sessiond/sessiond/redis"
	"github.com/sessiond/sessiond/redis/redistest"
)

// TestThrottleNoticesCostNothingOnceTold counts the commands Redis runs
// for a flood of throttled sign-ins of one account: once the account's
// notice of the window is told, recording security activity adds no
// command per 429 (a flood would otherwise double the limiter's work).
func TestThrottleNoticesCostNothingOnceTold(t *testing.T) {
	const flood = 200
	cost := func(record bool) int {
		srv := redistest.Start(t)
		o := sessiondtest.OnRedis(t, sessiondtest.Options{RecordActivity: record, Issuer: "test", CheapHashing: true},
			redis.Options{URL: srv.URL()})
		m := sessiondtest.NewManager(t, o).Manager
		m.Throttles.LoginAccount = sessiond.Rate{N: 2, Window: time.Hour}
		ctx := context.Background()
		if _, err := m.Register(ctx, sessiond.RegisterRequest{Username: "di", Email: "di@example.com", Password: "password123"}); err != nil {
			t.Fatal(err)
		}
		attempt := func() error {
			_, err := m.Login(ctx, sessiond.LoginRequest{Login: "di", Password: "wrong-password", ClientIP: "192.0.2.7"})
			return err
		}
		for !errors.As(attempt(), new(*sessiond.ThrottledError)) {
		}
		rc, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{srv.Addr()}, DisableCache: true})
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		processed := func() int {
			info, err := rc.Do(ctx, rc.B().Info().Section("stats").Build()).ToString()
			if err != nil {
				t.Fatal(err)
			}
			for line := range strings.SplitSeq(info, "\r\n") {
				if v, ok := strings.CutPrefix(line, "total_commands_processed:"); ok {
					n, _ := strconv.Atoi(v)
					return n
				}
			}
			t.Fatal("no total_commands_processed in INFO")
			return 0
		}
		before := processed()
		for range flood {
			if err := attempt(); !errors.As(err, new(*sessiond.ThrottledError)) {
				t.Fatalf("attempt: %v, want a 429", err)
			}
		}
		return processed() - before - 1 // the INFO itself
	}
	without, with := cost(false), cost(true)
	if with > without+flood/10 {
		t.Fatalf("%d throttled sign-ins ran %d Redis commands recording security activity, %d without", flood, with, without)
	}
}

// TestThrottleNoticeIsToldAgainNextWindow shows the instance's memory of
// told notices ends with the window: the next window's first 429 is told.
func TestThrottleNoticeIsToldAgainNextWindow(t *testing.T) {
	clk := &clock{t: time.Now().UTC().Truncate(time.Millisecond)}
	m := sessiondtest.NewManager(t, sessiondtest.Options{RecordActivity: true, Issuer: "test", CheapHashing: true, Now: clk.Now}).Manager
	m.Throttles.LoginAccount = sessiond.Rate{N: 2, Window: time.Hour}
	ctx := context.Background()
	u, err := m.Register(ctx, sessiond.RegisterRequest{Username: "di", Email: "di@example.com", Password: "password123"})
	if err != nil {
		t.Fatal(err)
	}
	throttled := func() int {
		n := 0
		for range 5 {
			_, err := m.Login(ctx, sessiond.LoginRequest{Login: "di", Password: "wrong-password", ClientIP: "192.0.2.7"})
			if errors.As(err, new(*sessiond.ThrottledError)) {
				n++
			}
		}
		return n
	}
	notices := func() int {
		n := 0
		for _, e := range history(t, m, u.ID) {
			if e.Type == "sign_in_throttled" {
				n++
			}
		}
		return n
	}
	if got := throttled(); got != 3 {
		t.Fatalf("throttled %d of 5, want 3", got)
	}
	if n := notices(); n != 1 {
		t.Fatalf("%d notices in the first window, want 1", n)
	}
	clk.Advance(time.Hour + time.Second)
	if got := throttled(); got != 3 {
		t.Fatalf("next window: throttled %d of 5, want 3", got)
	}
	if n := notices(); n != 2 {
		t.Fatalf("%d notices after two windows, want 2", n)
	}
}
