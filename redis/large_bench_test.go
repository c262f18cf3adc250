package redis_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sessiond/sessiond"
	"github.com/sessiond/sessiond/internal/sessiondtest"
	"github.com/sessiond/sessiond/redis"
	"github.com/sessiond/sessiond/redis/redistest"
)

// BenchmarkLargeUserNeighbours measures what one user at the hard maximum
// of 10,000 sessions costs everyone else: other users' session reads
// (strict Gets, one Redis round trip each, 8 at a time) with no large user
// ("alone"), then while the large user loops over walking every page of
// their device list, signing out everywhere and signing the 10,000 back in
// ("large-user"). Each reports the p50, p99 and worst latency of the other
// users' reads, how many of them failed (the default 100 ms deadline of
// each Redis call), and how many full loops the large user made.
//
//	go test ./redis -run '^$' -bench LargeUserNeighbours -benchtime 20000x
func BenchmarkLargeUserNeighbours(b *testing.B) {
	srv := redistest.Start(b)
	ctx := context.Background()
	setup := newStore(b, redis.Options{URL: srv.URL(), Timeout: 10 * time.Second})
	now := time.Now()

	var others []*sessiond.Session
	for range 200 {
		user := randomID()
		for i := range 5 {
			s := testSession(user, now)
			s.DeviceID = fmt.Sprintf("%064x", i) // five devices: none replaces another
			create(b, setup, s)
			others = append(others, s)
		}
	}
	large := randomID()
	fill := func(st *redis.Store) error {
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for w := range 8 {
			wg.Go(func() {
				for i := w; i < sessiond.HardMaxSessions; i += 8 {
					s := testSession(large, now.Add(-time.Duration(i)*time.Second))
					s.DeviceID = ""
					if _, err := st.Create(ctx, s, sessiond.SessionCap{}, now); err != nil {
						errs <- err
						return
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		return <-errs
	}

	for _, withLarge := range []bool{false, true} {
		name := "alone"
		if withLarge {
			name = "large-user"
		}
		b.Run(name, func(b *testing.B) {
			// The large user's own instance, with the default deadline
			// of each Redis call, as a deployment runs it.
			lst := newStore(b, redis.Options{URL: srv.URL(), Timeout: redis.DefaultTimeout})
			m := sessiondtest.NewManager(b, sessiondtest.Options{Sessions: lst, Broker: redis.NewBroker(lst)}).Manager
			var loops, failures atomic.Int64
			stop := make(chan struct{})
			var done sync.WaitGroup
			if withLarge {
				if err := fill(setup); err != nil {
					b.Fatal(err)
				}
				done.Go(func() {
					for {
						select {
						case <-stop:
							return
						default:
						}
						cursor := ""
						for {
							page, err := m.ListPage(ctx, large, "", sessiond.MaxListLimit, cursor)
							if err != nil {
								failures.Add(1)
								break
							}
							if cursor = page.Next; cursor == "" {
								break
							}
						}
						if _, err := m.RevokeAll(ctx, large, sessiond.ReasonRevoked); err != nil {
							failures.Add(1)
						}
						if err := fill(lst); err != nil {
							failures.Add(1)
						}
						loops.Add(1)
					}
				})
				// Let the loop get going before measuring.
				time.Sleep(200 * time.Millisecond)
			}

			st := newStore(b, redis.Options{URL: srv.URL(), Strict: true, Timeout: redis.DefaultTimeout})
			var mu sync.Mutex
			var lat []time.Duration
			var next, errs atomic.Int64
			var firstErr atomic.Value
			b.SetParallelism(4)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				mine := make([]time.Duration, 0, 1024)
				for pb.Next() {
					s := others[int(next.Add(1))%len(others)]
					start := time.Now()
					_, err := st.Get(ctx, s.UserID, s.ID, now)
					mine = append(mine, time.Since(start))
					if err != nil {
						errs.Add(1)
						firstErr.CompareAndSwap(nil, err)
					}
				}
				mu.Lock()
				lat = append(lat, mine...)
				mu.Unlock()
			})
			b.StopTimer()
			close(stop)
			done.Wait()
			if withLarge {
				if _, err := setup.RevokeAll(ctx, large); err != nil {
					b.Fatal(err)
				}
			}
			slices.Sort(lat)
			q := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) }
			b.ReportMetric(q(0.50), "p50-µs")
			b.ReportMetric(q(0.99), "p99-µs")
			b.ReportMetric(q(1), "max-µs")
			b.ReportMetric(float64(errs.Load()), "errors")
			if withLarge {
				b.ReportMetric(float64(loops.Load()), "large-loops")
				b.ReportMetric(float64(failures.Load()), "large-failures")
			}
			if errs.Load() > 0 {
				// Reported, not fatal: how many reads of other users
				// missed the deadline is part of the answer.
				b.Logf("%d of %d reads of other users failed, the first: %v", errs.Load(), len(lat), firstErr.Load())
			}
		})
	}
}
