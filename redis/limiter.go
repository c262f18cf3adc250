package redis

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"

	"github.com/sessiond/sessiond"
)

// Limiter is a sessiond.Limiter shared by every instance on one Redis: each
// counter is a sorted set of event times under LimiterKey(key), trimmed and
// extended by one script per event, and it expires with its window.
type Limiter struct {
	s      *Store
	prefix string        // random per process, so members never collide
	seq    atomic.Uint64 // distinguishes events of one process
}

var _ sessiond.Limiter = (*Limiter)(nil)

// Limiter returns a Limiter on the store's connections, which a Manager
// built on the store without one of its own throttles with.
func (s *Store) Limiter() sessiond.Limiter { return NewLimiter(s) }

// NewLimiter returns a Limiter that uses s's connections.
func NewLimiter(s *Store) *Limiter {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return &Limiter{s: s, prefix: hex.EncodeToString(b)}
}

// leavesIn is how long until an event at oldest (unix ms) leaves a window
// that ends at nowMS.
func leavesIn(oldest int64, window time.Duration, nowMS int64) time.Duration {
	return time.Duration(oldest+window.Milliseconds()-nowMS) * time.Millisecond
}

// Count implements sessiond.Limiter: two plain reads per counter (ZCOUNT,
// and ZRANGE for the oldest event), all sent in one pipeline, so one round
// trip on a single node; on a Cluster, rueidis sends each node its part at
// once. The two reads of a key are not one atomic step: an event that
// leaves or is reset between them can leave a count without an oldest
// event, whose wait is then 0 (and a 429 says at least 1 s).
func (l *Limiter) Count(ctx context.Context, cs []sessiond.Counter, now time.Time, counts []sessiond.Counted) error {
	ctx, cancel := l.s.deadline(ctx)
	defer cancel()
	c := l.s.client
	nowMS := now.UnixMilli()
	cmds := make(rueidis.Commands, 0, 2*len(cs))
	for _, k := range cs {
		key, after := LimiterKey(k.Key), "("+strconv.FormatInt(nowMS-k.Window.Milliseconds(), 10)
		cmds = append(cmds,
			c.B().Zcount().Key(key).Min(after).Max("+inf").Build(),
			c.B().Zrange().Key(key).Min(after).Max("+inf").Byscore().Limit(0, 1).Withscores().Build())
	}
	res := c.DoMulti(ctx, cmds...)
	for _, r := range res {
		if err := r.Error(); err != nil {
			return wrap(err, "limiter count")
		}
	}
	for i, k := range cs {
		n, err := res[2*i].AsInt64()
		if err != nil {
			return fmt.Errorf("redis: limiter count: %w", errCodeUnexpected)
		}
		oldest, err := res[2*i+1].AsZScores()
		if err != nil {
			return fmt.Errorf("redis: limiter count: %w", errCodeUnexpected)
		}
		counts[i] = sessiond.Counted{N: int(n)}
		if n > 0 && len(oldest) > 0 {
			counts[i].OldestLeavesIn = leavesIn(int64(oldest[0].Score), k.Window, nowMS)
		}
	}
	return nil
}

// Take implements sessiond.Limiter: one script, on the one slot of the
// budgets' group.
func (l *Limiter) Take(ctx context.Context, bs []sessiond.Budget, id string, now time.Time) (sessiond.Taken, error) {
	ctx, cancel := l.s.deadline(ctx)
	defer cancel()
	nowMS := now.UnixMilli()
	keys := make([]string, len(bs))
	args := make([]string, 2, 2+3*len(bs))
	args[0], args[1] = strconv.FormatInt(nowMS, 10), id
	for i, b := range bs {
		keys[i] = LimiterKey(b.Key)
		args = append(args, strconv.FormatInt(nowMS-b.Window.Milliseconds(), 10),
			strconv.Itoa(b.N), strconv.FormatInt(max(b.Window.Milliseconds(), 1), 10))
	}
	arr, err := limiterTakeScript.Exec(ctx, l.s.client, keys, args).ToArray()
	if err != nil {
		return sessiond.Taken{}, wrap(err, "limiter take")
	}
	if len(arr) != 2 {
		return sessiond.Taken{}, fmt.Errorf("redis: limiter take: %w", errCodeUnexpected)
	}
	full, err := arr[0].AsInt64()
	if err != nil || full < 0 || full > int64(len(bs)) {
		return sessiond.Taken{}, fmt.Errorf("redis: limiter take: %w", errCodeUnexpected)
	}
	if full == 0 {
		return sessiond.Taken{OK: true}, nil
	}
	oldest, err := arr[1].AsFloat64()
	if err != nil {
		return sessiond.Taken{}, fmt.Errorf("redis: limiter take: %w", errCodeUnexpected)
	}
	i := int(full - 1)
	return sessiond.Taken{Full: i, RetryAfter: leavesIn(int64(oldest), bs[i].Window, nowMS)}, nil
}

// Release implements sessiond.Limiter: the event is the member id.
func (l *Limiter) Release(ctx context.Context, keys []string, id string, _ time.Time) error {
	ctx, cancel := l.s.deadline(ctx)
	defer cancel()
	c := l.s.client
	cmds := make(rueidis.Commands, len(keys))
	for i, k := range keys {
		cmds[i] = c.B().Zrem().Key(LimiterKey(k)).Member(id).Build()
	}
	for _, r := range c.DoMulti(ctx, cmds...) {
		if err := r.Error(); err != nil {
			return wrap(err, "limiter release")
		}
	}
	return nil
}

// Reset implements sessiond.Limiter.
func (l *Limiter) Reset(ctx context.Context, key string) error {
	ctx, cancel := l.s.deadline(ctx)
	defer cancel()
	return wrap(l.s.client.Do(ctx, l.s.client.B().Del().Key(LimiterKey(key)).Build()).Error(), "limiter reset")
}
