package sessiond

import (
	"context"
	"time"
)

// Limiter keeps sliding-window counters of events under a key, shared by
// every instance when the backing store is shared. Keys are opaque strings
// chosen by the Manager (they hold hashes, never raw secrets).
//
// A key belongs to a group: its part before the first GroupSep, or the
// whole key when it has none. The counters of one Take
// share a group, and a store that spreads its keys over several shards
// (Redis Cluster) keeps each group on one shard, so that a Take is one
// atomic step there too.
type Limiter interface {
	// Count sets counts[i] to how many events were recorded under
	// cs[i].Key in the window of cs[i] ending at now, and, when that count
	// is not zero, how long until the oldest of them leaves the window, for
	// every i; counts has the length of cs, and the counters may be of any
	// groups. Events stamped after now count too: an instance whose clock
	// runs ahead records them in the future, and they happened. A store
	// counts them all in one round trip (the Manager checks a login's three
	// counters before verifying its password). On an error no count is to
	// be trusted.
	Count(ctx context.Context, cs []Counter, now time.Time, counts []Counted) error
	// Reset forgets every event under key.
	Reset(ctx context.Context, key string) error

	// Take is a throttle's check-and-add, one atomic step in the store: if
	// every counter of bs holds fewer than its N events in its window
	// ending at now (events stamped after now included, as for Count), it
	// records one event named id at now under each of them and reports OK;
	// otherwise it records nothing and reports the first counter of bs that
	// is full. So however many Takes run at once, on every instance
	// together, a counter never admits more than N events per window.
	//
	// With id "", Take records nothing and answers as it would have; it
	// writes to the store all the same, so that it fails like a recording
	// Take when the store refuses writes. Every counter of bs must be of
	// one group. A store that cannot record (down, full, refusing writes)
	// returns an error wrapping ErrUnavailable, and the throttle answers
	// 503 rather than let the attempt through unrecorded.
	Take(ctx context.Context, bs []Budget, id string, now time.Time) (Taken, error)

	// Release forgets the event id that a Take at the time at recorded
	// under each of keys, for an attempt that turned out not to count. A
	// store may forget any one event of the key recorded at that time
	// instead, which counts the same. Releasing what is not there is not
	// an error.
	Release(ctx context.Context, keys []string, id string, at time.Time) error

	// Writable reports whether the store accepts writes now, as
	// SessionStore.Writable does.
	Writable(ctx context.Context) error
}

// GroupSep separates a limiter key's group from the rest of it.
const GroupSep = "|"

// Budget is one counter of a Take: the events under Key in a sliding
// Window, of which it admits at most N.
type Budget struct {
	Key    string
	Window time.Duration
	N      int
}

// Taken is the answer of a Take.
type Taken struct {
	// OK reports that every counter had room (and, with an event id, that
	// the event is recorded under each).
	OK bool
	// Full is, when OK is false, the index in the Take's budgets of a
	// counter that holds its N events, and RetryAfter how long until the
	// oldest of them leaves its window.
	Full       int
	RetryAfter time.Duration
}

// Counter names one counter of a Count: a key and its window.
type Counter struct {
	Key    string
	Window time.Duration
}

// Counted is what Count reports of one counter: how many events are in its
// window, and how long until the oldest of them leaves it.
type Counted struct {
	N              int
	OldestLeavesIn time.Duration
}

// LimiterSource is a SessionStore that can keep the throttles' counts too.
// A Manager built on one with no Limiter throttles with its limiter: a
// store that can throttle throttles unless told not to (NoThrottles).
type LimiterSource interface {
	Limiter() Limiter
}

// NoThrottles is the Limiter of a Manager that must not throttle (an
// administrator's tool, a test): every counter is empty and every Take
// has room, so no throttle ever refuses.
var NoThrottles Limiter = noLimiter{}

// noLimiter is NoThrottles, and the Limiter of a Manager built without
// one on a store that cannot throttle.
type noLimiter struct{}

func (noLimiter) Count(_ context.Context, _ []Counter, _ time.Time, counts []Counted) error {
	clear(counts)
	return nil
}
func (noLimiter) Reset(context.Context, string) error { return nil }
func (noLimiter) Take(context.Context, []Budget, string, time.Time) (Taken, error) {
	return Taken{OK: true}, nil
}
func (noLimiter) Release(context.Context, []string, string, time.Time) error { return nil }
func (noLimiter) Writable(context.Context) error                             { return nil }
