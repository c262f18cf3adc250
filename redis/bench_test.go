package redis_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"regexp"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/sessiond/sessiond"
	"github.com/sessiond/sessiond/redis"
	"github.com/sessiond/sessiond/redis/redistest"
)

// benchSession is a session of another instance's making, so the store
// under test has no recent-write record of it.
func benchSession(b *testing.B, url string) *sessiond.Session {
	b.Helper()
	s := testSession(randomID(), time.Now())
	create(b, newStore(b, redis.Options{URL: url}), s)
	return s
}

func BenchmarkGetCached(b *testing.B) {
	srv := redistest.Start(b)
	s := benchSession(b, srv.URL())
	st := newStore(b, redis.Options{URL: srv.URL()})
	ctx := context.Background()
	now := time.Now()
	if _, err := st.Get(ctx, s.UserID, s.ID, now); err != nil {
		b.Fatal(err)
	}
	before := calls(b, srv, "hmget")
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := st.Get(ctx, s.UserID, s.ID, now); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if n := calls(b, srv, "hmget") - before; n != 0 {
		b.Fatalf("%d cached Gets reached Redis", n)
	}
}

func BenchmarkGetCachedParallel(b *testing.B) {
	srv := redistest.Start(b)
	s := benchSession(b, srv.URL())
	st := newStore(b, redis.Options{URL: srv.URL()})
	ctx := context.Background()
	now := time.Now()
	if _, err := st.Get(ctx, s.UserID, s.ID, now); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := st.Get(ctx, s.UserID, s.ID, now); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func BenchmarkGetStrict(b *testing.B) {
	srv := redistest.Start(b)
	s := benchSession(b, srv.URL())
	st := newStore(b, redis.Options{URL: srv.URL(), Strict: true})
	ctx := context.Background()
	now := time.Now()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := st.Get(ctx, s.UserID, s.ID, now); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCreate(b *testing.B) {
	srv := redistest.Start(b)
	st := newStore(b, redis.Options{URL: srv.URL()})
	ctx := context.Background()
	now := time.Now()
	limit := sessiond.SessionCap{Max: 50, Policy: sessiond.PolicyEvict}
	users := make([]string, 1000)
	for i := range users {
		users[i] = randomID()
	}
	b.ReportAllocs()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		// Five devices per user, so the cap and replacement walk a
		// realistic index.
		s := testSession(users[i%len(users)], now)
		s.DeviceID = strconv.Itoa(i / len(users) % 5)
		if _, err := st.Create(ctx, s, limit, now); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkInvalidationWindow measures how long another instance keeps
// accepting a revoked session from its cache: from the moment Revoke
// returns on one instance until Get on another reports ErrNotFound.
func BenchmarkInvalidationWindow(b *testing.B) {
	srv := redistest.Start(b)
	creator := newStore(b, redis.Options{URL: srv.URL()})
	revoker := newStore(b, redis.Options{URL: srv.URL()})
	other := newStore(b, redis.Options{URL: srv.URL()})
	ctx := context.Background()
	var windows []time.Duration
	for b.Loop() {
		b.StopTimer()
		s := testSession(randomID(), time.Now())
		create(b, creator, s)
		if _, err := other.Get(ctx, s.UserID, s.ID, time.Now()); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if err := revoker.Revoke(ctx, s.UserID, s.ID); err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		for {
			_, err := other.Get(ctx, s.UserID, s.ID, time.Now())
			if errors.Is(err, sessiond.ErrNotFound) {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			if time.Since(start) > time.Second {
				b.Fatal("revoked session still accepted after 1s")
			}
		}
		windows = append(windows, time.Since(start))
	}
	slices.Sort(windows)
	q := func(p float64) float64 {
		return float64(windows[int(p*float64(len(windows)-1))].Nanoseconds()) / 1e3
	}
	b.ReportMetric(q(0.5), "p50-µs")
	b.ReportMetric(q(0.99), "p99-µs")
	b.ReportMetric(float64(windows[len(windows)-1].Nanoseconds())/1e3, "max-µs")
}

func usedMemory(b *testing.B, srv *redistest.Server) int64 {
	b.Helper()
	m := regexp.MustCompile(`used_memory:(\d+)`).FindStringSubmatch(srv.MustDo("INFO", "memory"))
	n, _ := strconv.ParseInt(m[1], 10, 64)
	return n
}

// BenchmarkMemory creates 100,000 sessions, 5 per user, with realistic
// values through Create, and reports Redis's used_memory growth per
// session (session hashes, indexes and the keyspace's own overhead).
func BenchmarkMemory(b *testing.B) {
	const users, perUser = 20000, 5
	for b.Loop() {
		b.StopTimer()
		srv := redistest.Start(b)
		st := newStore(b, redis.Options{URL: srv.URL(), Timeout: time.Second})
		ctx := context.Background()
		now := time.Now()
		before := usedMemory(b, srv)
		b.StartTimer()
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		user0 := randomID()
		for w := range 8 {
			wg.Go(func() {
				rng := rand.New(rand.NewPCG(uint64(w), 1))
				for u := w; u < users; u += 8 {
					user := randomID()
					if u == 0 {
						user = user0
					}
					for i := range perUser {
						if _, err := st.Create(ctx, realisticSession(rng, user, i, now), sessiond.SessionCap{Max: 50, Policy: sessiond.PolicyEvict}, now); err != nil {
							errs <- err
							return
						}
					}
				}
			})
		}
		wg.Wait()
		b.StopTimer()
		close(errs)
		if err := <-errs; err != nil {
			b.Fatal(err)
		}
		if got := srv.MustDo("DBSIZE"); got != strconv.Itoa(users*(perUser+1)) {
			b.Fatalf("DBSIZE: got %s, want %d", got, users*(perUser+1))
		}
		perSession := float64(usedMemory(b, srv)-before) / (users * perUser)
		b.ReportMetric(perSession, "bytes/session")
		b.Logf("%.0f bytes per session over %d sessions (%d per user)", perSession, users*perUser, perUser)
		if list, err := st.List(ctx, user0, now); err == nil && len(list) > 0 {
			b.Logf("MEMORY USAGE: session hash %s bytes (%s), index %s bytes (%s)",
				srv.MustDo("MEMORY", "USAGE", redis.SessionKey(user0, list[0].ID)),
				srv.MustDo("OBJECT", "ENCODING", redis.SessionKey(user0, list[0].ID)),
				srv.MustDo("MEMORY", "USAGE", redis.IndexKey(user0)),
				srv.MustDo("OBJECT", "ENCODING", redis.IndexKey(user0)))
		}
		srv.Kill()
		b.StartTimer()
	}
}

var (
	devices = []struct{ name, class string }{
		{"Chrome on Windows", sessiond.ClassDesktop}, {"Safari on iPhone", sessiond.ClassMobile},
		{"Firefox on Linux", sessiond.ClassDesktop}, {"Chrome on Android", sessiond.ClassMobile},
		{"Safari on iPad", sessiond.ClassTablet}, {"Edge on Windows", sessiond.ClassDesktop},
		{"Safari on macOS", sessiond.ClassDesktop}, {"curl", sessiond.ClassCLI},
	}
	locations = []string{"Lagos, Nigeria", "São Paulo, Brazil", "Berlin, Germany", "Mumbai, India", "Austin, United States", ""}
)

// realisticSession returns the i-th session of user: a device id hash
// (sessiond.DeviceHash, as the Manager derives it), a common device, mostly IPv4, usually a
// location, seldom a name, refreshed a few hundred times.
func realisticSession(rng *rand.Rand, user string, i int, now time.Time) *sessiond.Session {
	d := devices[rng.IntN(len(devices))]
	ip := fmt.Sprintf("%d.%d.%d.%d", 1+rng.IntN(222), rng.IntN(256), rng.IntN(256), 1+rng.IntN(254))
	if rng.IntN(5) == 0 {
		ip = fmt.Sprintf("2001:db8:%x:%x::%x", rng.IntN(65536), rng.IntN(65536), 1+rng.IntN(65535))
	}
	created := now.Add(-time.Duration(rng.Int64N(int64(29 * 24 * time.Hour))))
	active := now.Add(-time.Duration(rng.Int64N(int64(min(now.Sub(created), 13*24*time.Hour)) + 1)))
	expires := active.Add(14 * 24 * time.Hour)
	if abs := created.Add(30 * 24 * time.Hour); abs.Before(expires) {
		expires = abs
	}
	s := &sessiond.Session{
		ID:          randomID(),
		UserID:      user,
		DeviceID:    sessiond.DeviceHash(user, fmt.Sprintf("device-%d-%d", rng.Int(), i)),
		Device:      d.name,
		DeviceClass: d.class,
		IPAddress:   ip,
		Location:    locations[rng.IntN(len(locations))],
		CreatedAt:   created,
		LastActive:  active,
		ExpiresAt:   expires,
		Generation:  1 + uint64(rng.IntN(500)),
		RotatedAt:   active.Add(-time.Duration(rng.Int64N(int64(15 * time.Minute)))),
	}
	if rng.IntN(10) == 0 {
		s.Name = "Work laptop"
	}
	if s.ExpiresAt.Before(now.Add(time.Minute)) {
		s.ExpiresAt = now.Add(time.Hour)
	}
	return s
}
