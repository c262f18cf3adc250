package sessiond

import (
	"context"
	"time"
)

// Limiter keeps sliding-window counters of events under a key, shared by
// every instance when the backing store is shared. Keys are opaque strings
// chosen by the Manager (they hold hashes, never raw secrets).
type Limiter interface {
	// Count returns how many events were recorded under key in the window
	// ending at now, and, when that count is not zero, how long until the
	// oldest of them leaves the window. Events stamped after now count too:
	// an instance whose clock runs ahead records them in the future, and
	// they happened.
	Count(ctx context.Context, key string, window time.Duration, now time.Time) (n int, oldestLeavesIn time.Duration, err error)
	// Add records one event under key at now. The key expires with the
	// window.
	Add(ctx context.Context, key string, window time.Duration, now time.Time) error
	// Reset forgets every event under key.
	Reset(ctx context.Context, key string) error
}

// Counter names one counter of a CountMany call: a key and its window.
type Counter struct {
	Key    string
	Window time.Duration
}

// Count is what a Limiter reports of one counter: as Limiter.Count's n and
// oldestLeavesIn.
type Count struct {
	N              int
	OldestLeavesIn time.Duration
}

// MultiCounter is implemented by a Limiter that can count several keys in
// one round trip to its store. The Manager uses it for the three counters
// of a login, which it checks before and again after verifying the
// password; a Limiter without it is asked once per key.
type MultiCounter interface {
	// CountMany sets counts[i] to what Count(ctx, cs[i].Key, cs[i].Window,
	// now) would return, for every i; counts has the length of cs. On an
	// error no count is to be trusted.
	CountMany(ctx context.Context, cs []Counter, now time.Time, counts []Count) error
}
