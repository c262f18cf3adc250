package redis

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/redis/rueidis"

	"github.com/sessiond/sessiond"
)

// probeTTL is how long a write probe's key lives.
const probeTTL = 10 * time.Second

// Writable implements sessiond.SessionStore: a SET of a key that expires
// in 10 s, on a Cluster one on every master (each a key of a slot that
// master serves), since a master can refuse writes alone (NOREPLICAS,
// MISCONF, OOM) while the others accept them. With ReplicaAcks = N, each
// master's probe is also waited for (WAIT N, at most Options.Timeout, on
// the connection that wrote it, the masters at once): a master whose
// replicas cannot confirm answers every revocation and refresh of its
// users 503, so the store is not ready.
func (s *Store) Writable(ctx context.Context) error {
	parent := ctx
	ctx, cancel := s.deadline(ctx)
	defer cancel()
	c := s.client
	set := func(key string) rueidis.Completed {
		return c.B().Set().Key(key).Value("1").Px(probeTTL).Build()
	}
	cmds := rueidis.Commands{set("sd:probe")}
	if s.cluster {
		var err error
		if cmds, err = s.probeEveryMaster(ctx, set); err != nil {
			return err
		}
	}
	if s.acks > 0 {
		return s.probeAcked(parent, cmds) // its own deadline: the wait's

	}
	for _, r := range c.DoMulti(ctx, cmds...) {
		if err := r.Error(); err != nil {
			return wrap(err, "writable")
		}
	}
	return nil
}

// probeAcked runs each probe as markAndWait on a dedicated connection to
// the master of its key, all at once, and returns the first error.
func (s *Store) probeAcked(ctx context.Context, cmds rueidis.Commands) error {
	errs := make([]error, len(cmds))
	var wg sync.WaitGroup
	for i, cmd := range cmds {
		key := cmd.Commands()[1]
		wg.Go(func() {
			errs[i] = s.client.Dedicated(func(c rueidis.DedicatedClient) error {
				return s.markAndWait(ctx, c, key, probeTTL)
			})
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			if _, ok := rueidis.IsRedisErr(err); ok {
				return fmt.Errorf("redis: writable: %w: %w", sessiond.ErrUnavailable, err) // refused
			}
			return notAcked("writable", err)
		}
	}
	return nil
}

// probeEveryMaster returns one probe per master of the Cluster, each on a
// key of a slot that the master serves (CLUSTER SLOTS).
func (s *Store) probeEveryMaster(ctx context.Context, set func(key string) rueidis.Completed) (rueidis.Commands, error) {
	ranges, err := s.client.Do(ctx, s.client.B().ClusterSlots().Build()).ToArray()
	if err != nil {
		return nil, wrap(err, "writable: cluster slots")
	}
	seen := map[string]bool{}
	var cmds rueidis.Commands
	for _, r := range ranges {
		f, err := r.ToArray()
		if err != nil || len(f) < 3 {
			return nil, fmt.Errorf("redis: writable: cluster slots: %w", errCodeUnexpected)
		}
		start, err1 := f[0].AsInt64()
		end, err2 := f[1].AsInt64()
		master, err3 := f[2].ToArray()
		if err1 != nil || err2 != nil || err3 != nil || len(master) < 2 {
			return nil, fmt.Errorf("redis: writable: cluster slots: %w", errCodeUnexpected)
		}
		host, _ := master[0].ToString()
		port, _ := master[1].AsInt64()
		addr := net.JoinHostPort(host, strconv.FormatInt(port, 10))
		if seen[addr] {
			continue
		}
		seen[addr] = true
		found := false
		for n := 0; n < 1<<20 && !found; n++ {
			cmd := set("sd:probe:{" + strconv.Itoa(n) + "}")
			if slot := int64(cmd.Slot()); start <= slot && slot <= end {
				cmds, found = append(cmds, cmd), true
			}
		}
		if !found {
			return nil, fmt.Errorf("redis: writable: no probe key for slots %d-%d: %w", start, end, errCodeUnexpected)
		}
	}
	return cmds, nil
}

// Writable implements sessiond.Limiter: the limiter's counters are in its
// Store's Redis.
func (l *Limiter) Writable(ctx context.Context) error { return l.s.Writable(ctx) }
