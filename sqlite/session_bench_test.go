package sqlite_test

import (
	"context"
	"fmt"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/sessiond/sessiond"
	"github.com/sessiond/sessiond/sqlite"
)

func benchSessionStore(b *testing.B) (*sqlite.SessionStore, *sessiond.Session) {
	b.Helper()
	db, err := sqlite.Open(filepath.Join(b.TempDir(), "sessiond.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	ctx := context.Background()
	now := time.Now()
	u := &sessiond.User{ID: "user-1", Username: "bench", Email: "bench@example.com", PasswordHash: "x", CreatedAt: now}
	if err := sqlite.NewUserStore(db).CreateUser(ctx, u); err != nil {
		b.Fatal(err)
	}
	st := sqlite.NewSessionStore(db)
	s := &sessiond.Session{
		ID: "session-1", UserID: u.ID, DeviceID: sessiond.DeviceHash(u.ID, "device-1"),
		Device: "Chrome on Windows", DeviceClass: sessiond.ClassDesktop,
		IPAddress: "203.0.113.42", Location: "Lagos, Nigeria",
		CreatedAt: now, LastActive: now, ExpiresAt: now.Add(14 * 24 * time.Hour), Generation: 1, RotatedAt: now,
	}
	if _, err := st.Create(ctx, s, sessiond.SessionCap{Max: 50}, now); err != nil {
		b.Fatal(err)
	}
	if _, err := st.Get(ctx, s.UserID, s.ID, now); err != nil {
		b.Fatal(err)
	}
	return st, s
}

// BenchmarkGetCached is the per-request session check on SQLite: served
// from the in-process cache, which a PRAGMA data_version check in the
// background keeps honest.
func BenchmarkGetCached(b *testing.B) {
	st, s := benchSessionStore(b)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := st.Get(ctx, s.UserID, s.ID, time.Now()); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGetCachedParallel is BenchmarkGetCached from every core.
func BenchmarkGetCachedParallel(b *testing.B) {
	st, s := benchSessionStore(b)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := st.Get(ctx, s.UserID, s.ID, time.Now()); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// coldCaches walks a buffer the size of an argon2id hash's memory (19 MiB),
// as a login's hash does between the store calls before and after it.
var coldBuf = make([]byte, 19<<20)

func coldCaches() {
	for i := 0; i < len(coldBuf); i += 64 {
		coldBuf[i]++
	}
}

// cpuTime returns the CPU time the process has used, every thread
// together.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkLogin is the sequence of store calls of one successful login
// (sessiond.Manager.Login with the default throttles): the user look-up,
// three throttle counts, the hash (not timed), three counts again, the
// reset of the (account, IP) count, the session insert and the user
// re-check. The cold variants thrash the CPU caches where the hash runs,
// as a real login does; "reads" leaves out the two writes (the insert waits
// for fsync, which dominates and must stay). cpu-ns/op is the CPU time of
// the timed part, which leaves out the wait for fsync and is steadier than
// sec/op on a shared machine.
func BenchmarkLogin(b *testing.B) {
	for _, cold := range []bool{false, true} {
		for _, writes := range []bool{true, false} {
			name := "warm"
			if cold {
				name = "cold"
			}
			if writes {
				name += "/full"
			} else {
				name += "/reads"
			}
			b.Run(name, func(b *testing.B) { benchLogin(b, cold, writes) })
		}
	}
}

func benchLogin(b *testing.B, cold, writes bool) {
	db, err := sqlite.Open(filepath.Join(b.TempDir(), "sessiond.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	// A request's context can be canceled, which costs the driver a
	// goroutine per statement; context.Background would hide that.
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	start := time.Now()
	users := sqlite.NewUserStore(db)
	sessions := sqlite.NewSessionStore(db)
	limiter := sqlite.NewLimiter(db)
	for i := range 100 {
		u := &sessiond.User{ID: fmt.Sprint("user-", i), Username: fmt.Sprint("user", i),
			Email: fmt.Sprint("user", i, "@example.com"), PasswordHash: "x", CreatedAt: start}
		if err := users.CreateUser(ctx, u); err != nil {
			b.Fatal(err)
		}
	}
	// Some failures on record, as in a real throttle table.
	for i := range 30 {
		bs := []sessiond.Budget{{Key: fmt.Sprint("la:other-", i%10), Window: 15 * time.Minute, N: 100}}
		if _, err := limiter.Take(ctx, bs, fmt.Sprint(i), start); err != nil {
			b.Fatal(err)
		}
	}
	const window = 15 * time.Minute
	keys := []sessiond.Counter{{Key: "lai:acct:203.0.113.42", Window: window}, {Key: "la:acct", Window: window}, {Key: "li:203.0.113.42", Window: window}}
	counts := make([]sessiond.Counted, len(keys))
	i := 0
	var untimed time.Duration // CPU time spent while the timer is stopped
	cpu0 := cpuTime()
	for b.Loop() {
		i++
		now := start.Add(time.Duration(i) * time.Millisecond)
		u, err := users.UserByLogin(ctx, "User7")
		if err != nil {
			b.Fatal(err)
		}
		if err := limiter.Count(ctx, keys, now, counts); err != nil {
			b.Fatal(err)
		}
		if cold {
			b.StopTimer()
			c := cpuTime()
			coldCaches()
			untimed += cpuTime() - c
			b.StartTimer()
		}
		if err := limiter.Count(ctx, keys, now.Add(time.Second), counts); err != nil {
			b.Fatal(err)
		}
		if writes {
			if err := limiter.Reset(ctx, keys[0].Key); err != nil {
				b.Fatal(err)
			}
			s := &sessiond.Session{
				ID: fmt.Sprint("session-", i), UserID: u.ID, DeviceID: sessiond.DeviceHash(u.ID, fmt.Sprint("device-", i)),
				Device: "Chrome on Windows", DeviceClass: sessiond.ClassDesktop,
				IPAddress: "203.0.113.42", Location: "Lagos, Nigeria",
				CreatedAt: now, LastActive: now, ExpiresAt: now.Add(14 * 24 * time.Hour), Generation: 1, RotatedAt: now,
			}
			if _, err := sessions.Create(ctx, s, sessiond.SessionCap{Max: 50}, now); err != nil {
				b.Fatal(err)
			}
		}
		if _, err := users.UserByID(ctx, u.ID); err != nil {
			b.Fatal(err)
		}
		if writes && i%40 == 0 { // one user's sessions stay under the cap, as in bench/
			b.StopTimer()
			c := cpuTime()
			if _, err := sessions.RevokeAll(ctx, u.ID); err != nil {
				b.Fatal(err)
			}
			untimed += cpuTime() - c
			b.StartTimer()
		}
	}
	b.ReportMetric(float64(cpuTime()-cpu0-untimed)/float64(b.N), "cpu-ns/op")
}
