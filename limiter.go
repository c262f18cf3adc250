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
	// oldest of them leaves the window.
	Count(ctx context.Context, key string, window time.Duration, now time.Time) (n int, oldestLeavesIn time.Duration, err error)
	// Add records one event under key at now. The key expires with the
	// window.
	Add(ctx context.Context, key string, window time.Duration, now time.Time) error
	// Reset forgets every event under key.
	Reset(ctx context.Context, key string) error
}
