package sqlite

import (
	"context"
	"database/sql"
	"sync/atomic"
	"time"

	"github.com/sessiond/sessiond"
)

// sweepEvery is how often, at most, Take also deletes the expired events of
// every key (events of keys that are never used again).
const sweepEvery = time.Minute

// Limiter is a sessiond.Limiter in a SQLite file: one row per event. Take
// prunes the events of its keys that left the window, and once a
// minute the expired events of every key.
type Limiter struct {
	db *DB
	// lastSweep is the unix millisecond time of the last sweep, as passed in.
	lastSweep atomic.Int64
}

var _ sessiond.Limiter = (*Limiter)(nil)

// NewLimiter returns the limiter of db.
func NewLimiter(db *DB) *Limiter {
	return &Limiter{db: db}
}

// count counts one key. An event at t is in the window ending at now while
// now - window < t, events stamped after now included.
func (l *Limiter) count(ctx context.Context, key string, window time.Duration, now time.Time) (int, time.Duration, error) {
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

// Count implements sessiond.Limiter. Three counters, those of a login, are
// counted by one statement; any other number one by one.
func (l *Limiter) Count(ctx context.Context, cs []sessiond.Counter, now time.Time, counts []sessiond.Counted) error {
	if len(cs) != 3 {
		for i, c := range cs {
			n, leaves, err := l.count(ctx, c.Key, c.Window, now)
			if err != nil {
				return err
			}
			counts[i] = sessiond.Counted{N: n, OldestLeavesIn: leaves}
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
		counts[i] = sessiond.Counted{N: n[i]}
		if n[i] > 0 && oldest[i].Valid {
			counts[i].OldestLeavesIn = fromMS(oldest[i].Int64).Add(c.Window).Sub(now)
		}
	}
	return nil
}

// sweep deletes, in tx, a batch of the expired events of every key, when
// the last sweep is sweepEvery old, and reports whether it did; the caller
// stores nowMS in lastSweep once tx commits.
func (l *Limiter) sweep(ctx context.Context, tx *sql.Tx, nowMS int64) (bool, error) {
	last := l.lastSweep.Load()
	if nowMS-last < sweepEvery.Milliseconds() && nowMS >= last {
		return false, nil
	}
	_, err := tx.ExecContext(ctx, `DELETE FROM limiter_events WHERE rowid IN (
		SELECT rowid FROM limiter_events WHERE expires_at <= ? LIMIT ?)`, nowMS, deleteBatch)
	return err == nil, err
}

// Take implements sessiond.Limiter: one immediate transaction, so that
// this process's writes and those of every other process on the file
// queue behind it, and the counts it reads are the counts it adds to.
func (l *Limiter) Take(ctx context.Context, bs []sessiond.Budget, id string, now time.Time) (sessiond.Taken, error) {
	nowMS := ms(now)
	tx, err := l.db.write.BeginTx(ctx, nil)
	if err != nil {
		return sessiond.Taken{}, wrap(err, "take")
	}
	defer tx.Rollback()
	for i, b := range bs {
		var n int
		var oldest sql.NullInt64
		if err := tx.QueryRowContext(ctx, qLimiterCount, b.Key, ms(now.Add(-b.Window))).Scan(&n, &oldest); err != nil {
			return sessiond.Taken{}, wrap(err, "take")
		}
		if n >= b.N {
			t := sessiond.Taken{Full: i}
			if oldest.Valid {
				t.RetryAfter = fromMS(oldest.Int64).Add(b.Window).Sub(now)
			}
			return t, nil
		}
	}
	if id == "" {
		// Record nothing, but write all the same: a row in and out again
		// dirties a page that the commit must write, so a full disk
		// fails this Take as it fails a recording one.
		res, err := tx.ExecContext(ctx, qLimiterAdd, bs[0].Key, nowMS, nowMS)
		if err != nil {
			return sessiond.Taken{}, wrap(err, "take")
		}
		row, err := res.LastInsertId()
		if err != nil {
			return sessiond.Taken{}, wrap(err, "take")
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM limiter_events WHERE rowid = ?`, row); err != nil {
			return sessiond.Taken{}, wrap(err, "take")
		}
	}
	for _, b := range bs {
		if id != "" {
			if _, err := tx.ExecContext(ctx, qLimiterAdd, b.Key, nowMS, ms(now.Add(b.Window))); err != nil {
				return sessiond.Taken{}, wrap(err, "take")
			}
		}
		if _, err := tx.ExecContext(ctx, qLimiterPrune, b.Key, ms(now.Add(-b.Window))); err != nil {
			return sessiond.Taken{}, wrap(err, "take: prune")
		}
	}
	sweep, err := l.sweep(ctx, tx, nowMS)
	if err != nil {
		return sessiond.Taken{}, wrap(err, "take: sweep")
	}
	if err := tx.Commit(); err != nil {
		return sessiond.Taken{}, wrap(err, "take: commit")
	}
	if sweep {
		l.lastSweep.Store(nowMS)
	}
	return sessiond.Taken{OK: true}, nil
}

// Release implements sessiond.Limiter. Events have no name here: it
// forgets one event of each key recorded at at, which counts the same.
func (l *Limiter) Release(ctx context.Context, keys []string, _ string, at time.Time) error {
	tx, err := l.db.write.BeginTx(ctx, nil)
	if err != nil {
		return wrap(err, "release")
	}
	defer tx.Rollback()
	for _, k := range keys {
		if _, err := tx.ExecContext(ctx, `DELETE FROM limiter_events WHERE rowid =
			(SELECT rowid FROM limiter_events WHERE key = ? AND at = ? LIMIT 1)`, k, ms(at)); err != nil {
			return wrap(err, "release")
		}
	}
	if err := tx.Commit(); err != nil {
		return wrap(err, "release: commit")
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
