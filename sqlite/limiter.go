package sqlite

import (
	"context"
	"database/sql"
	"sync/atomic"
	"time"

	"github.com/sessiond/sessiond"
)

// sweepEvery is how often, at most, Add also deletes the expired events of
// every key (events of keys that are never used again).
const sweepEvery = time.Minute

// Limiter is a sessiond.Limiter in a SQLite file: one row per event. Add
// prunes the events of its key that left the window, and once a minute the
// expired events of every key.
type Limiter struct {
	db *DB
	// lastSweep is the unix millisecond time of the last sweep, as passed in.
	lastSweep atomic.Int64
}

var (
	_ sessiond.Limiter      = (*Limiter)(nil)
	_ sessiond.MultiCounter = (*Limiter)(nil)
)

// NewLimiter returns the limiter of db.
func NewLimiter(db *DB) *Limiter {
	return &Limiter{db: db}
}

// Count implements sessiond.Limiter. An event at t is in the window ending
// at now while now - window < t, events stamped after now included.
func (l *Limiter) Count(ctx context.Context, key string, window time.Duration, now time.Time) (int, time.Duration, error) {
	var n int
	var oldest sql.NullInt64
	err := l.db.stmts.limiterCount.QueryRowContext(ctx, key, ms(now.Add(-window))).Scan(&n, &oldest)
	if err != nil {
		return 0, 0, wrap(err, "count")
	}
	if n == 0 || !oldest.Valid {
		return 0, 0, nil
	}
	return n, fromMS(oldest.Int64).Add(window).Sub(now), nil
}

// CountMany implements sessiond.MultiCounter. Three counters, those of a
// login, are counted by one statement; any other number one by one.
func (l *Limiter) CountMany(ctx context.Context, cs []sessiond.Counter, now time.Time, counts []sessiond.Count) error {
	if len(cs) != 3 {
		for i, c := range cs {
			n, leaves, err := l.Count(ctx, c.Key, c.Window, now)
			if err != nil {
				return err
			}
			counts[i] = sessiond.Count{N: n, OldestLeavesIn: leaves}
		}
		return nil
	}
	var (
		n      [3]int
		oldest [3]sql.NullInt64
	)
	err := l.db.stmts.limiterCount3.QueryRowContext(ctx,
		cs[0].Key, ms(now.Add(-cs[0].Window)),
		cs[1].Key, ms(now.Add(-cs[1].Window)),
		cs[2].Key, ms(now.Add(-cs[2].Window)),
	).Scan(&n[0], &oldest[0], &n[1], &oldest[1], &n[2], &oldest[2])
	if err != nil {
		return wrap(err, "count")
	}
	for i, c := range cs {
		counts[i] = sessiond.Count{N: n[i]}
		if n[i] > 0 && oldest[i].Valid {
			counts[i].OldestLeavesIn = fromMS(oldest[i].Int64).Add(c.Window).Sub(now)
		}
	}
	return nil
}

// Add implements sessiond.Limiter.
func (l *Limiter) Add(ctx context.Context, key string, window time.Duration, now time.Time) error {
	nowMS := ms(now)
	tx, err := l.db.write.BeginTx(ctx, nil)
	if err != nil {
		return wrap(err, "add")
	}
	defer tx.Rollback()
	if _, err := tx.StmtContext(ctx, l.db.stmts.limiterAdd).ExecContext(ctx, key, nowMS, ms(now.Add(window))); err != nil {
		return wrap(err, "add")
	}
	if _, err := tx.StmtContext(ctx, l.db.stmts.limiterPrune).ExecContext(ctx, key, ms(now.Add(-window))); err != nil {
		return wrap(err, "add: prune")
	}
	last := l.lastSweep.Load()
	sweep := nowMS-last >= sweepEvery.Milliseconds() || nowMS < last
	if sweep {
		if _, err := tx.ExecContext(ctx, `DELETE FROM limiter_events WHERE rowid IN (
			SELECT rowid FROM limiter_events WHERE expires_at <= ? LIMIT ?)`, nowMS, deleteBatch); err != nil {
			return wrap(err, "add: sweep")
		}
	}
	if err := tx.Commit(); err != nil {
		return wrap(err, "add: commit")
	}
	if sweep {
		l.lastSweep.Store(nowMS)
	}
	return nil
}

// Reset implements sessiond.Limiter.
func (l *Limiter) Reset(ctx context.Context, key string) error {
	if _, err := l.db.stmts.limiterReset.ExecContext(ctx, key); err != nil {
		return wrap(err, "reset")
	}
	return nil
}
