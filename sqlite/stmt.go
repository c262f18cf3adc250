package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// The statements of the hot paths: a login (user look-up, the three throttle
// counts at once,
// session insert, user re-check), a Get that misses the cache, and the
// once-a-minute activity write.
const (
	qUserByID    = `SELECT ` + userColumns + ` FROM users WHERE id = ?`
	qUserByLogin = `SELECT ` + userColumns + ` FROM users
		WHERE username_key = ?1 OR email_key = ?1
		ORDER BY username_key = ?1 DESC LIMIT 1`

	qSessionGet     = `SELECT ` + sessionColumns + ` FROM sessions WHERE id = ? AND user_id = ?`
	qSessionReplace = `DELETE FROM sessions
		WHERE user_id = ? AND device_id = ? AND expires_at > ? RETURNING id`
	qSessionCount  = `SELECT count(*) FROM sessions WHERE user_id = ? AND expires_at > ?`
	qSessionInsert = `INSERT INTO sessions (` + sessionColumns + `)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	qSessionTouch = `UPDATE sessions SET last_active = ?, expires_at = ? WHERE id = ? AND user_id = ?`

	qLimiterCount   = `SELECT count(*), min(at) FROM limiter_events WHERE key = ? AND at > ?`
	qLimiterCount3  = `SELECT ` + limiterCountOf1 + `, ` + limiterCountOf2 + `, ` + limiterCountOf3
	limiterCountOf1 = `(SELECT count(*) FROM limiter_events WHERE key = ?1 AND at > ?2),
		(SELECT min(at) FROM limiter_events WHERE key = ?1 AND at > ?2)`
	limiterCountOf2 = `(SELECT count(*) FROM limiter_events WHERE key = ?3 AND at > ?4),
		(SELECT min(at) FROM limiter_events WHERE key = ?3 AND at > ?4)`
	limiterCountOf3 = `(SELECT count(*) FROM limiter_events WHERE key = ?5 AND at > ?6),
		(SELECT min(at) FROM limiter_events WHERE key = ?5 AND at > ?6)`
	qLimiterAdd   = `INSERT INTO limiter_events (key, at, expires_at) VALUES (?, ?, ?)`
	qLimiterPrune = `DELETE FROM limiter_events WHERE key = ? AND at <= ?`
	qLimiterReset = `DELETE FROM limiter_events WHERE key = ?`

	// A sign-in remembers its device and records its history and
	// messages; delivery workers poll Due and Pending and take leases.
	qSeenForget = `DELETE FROM seen WHERE user_id = ? AND seen_at <= ?`
	qSeenLookup = `SELECT count(*),
			coalesce(max(kind = ?2 AND value = ?3), 0),
			coalesce(max(kind = ?4 AND value = ?5), 0)
		FROM seen WHERE user_id = ?1`
	qSeenUpsert = `INSERT INTO seen (user_id, kind, value, seen_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (user_id, kind, value) DO UPDATE SET seen_at = max(seen_at, excluded.seen_at)`
	qSeenBound = `DELETE FROM seen WHERE user_id = ?1 AND (kind, value) NOT IN (
			SELECT kind, value FROM seen WHERE user_id = ?1 ORDER BY seen_at DESC LIMIT ?2)`
	qActivityInsert = `INSERT INTO activity (user_id, at, data) VALUES (?, ?, ?)`
	qActivityBound  = `DELETE FROM activity WHERE user_id = ?1 AND (at <= ?2 OR seq NOT IN (
			SELECT seq FROM activity WHERE user_id = ?1 ORDER BY at DESC, seq DESC LIMIT ?3))`
	qOutboxInsert = `INSERT INTO outbox (queue, user_id, id, body, created_at, attempts, next_at)
		VALUES (?, ?, ?, ?, ?, ?, ?)`
	qOutboxDueSet = `INSERT OR REPLACE INTO outbox_due (queue, user_id, due_at, seq)
		SELECT queue, user_id, coalesce(next_at, created_at), seq FROM outbox
		WHERE queue = ? AND user_id = ? ORDER BY seq LIMIT 1`
	qOutboxDueDelete = `DELETE FROM outbox_due WHERE queue = ? AND user_id = ?`
	qOutboxDue       = `SELECT user_id FROM outbox_due
		WHERE queue = ? AND due_at <= ? ORDER BY due_at, seq LIMIT ?`
	qOutboxPending = `SELECT id, body, created_at, attempts, next_at FROM outbox
		WHERE queue = ? AND user_id = ? ORDER BY seq LIMIT ?`
	qOutboxLease = `INSERT INTO outbox_leases (queue, user_id, owner, until) VALUES (?1, ?2, ?3, ?4)
		ON CONFLICT (queue, user_id) DO UPDATE SET owner = excluded.owner, until = excluded.until
		WHERE owner = excluded.owner OR until <= ?5`
)

// stmts holds the hot statements, prepared once per connection.
// modernc.org/sqlite keeps no statement cache of its own: a statement run
// through DB.QueryContext is parsed and planned on every call, which costs
// about as much as running these small statements, and more after a
// password hash has evicted SQLite's code and data from the CPU caches. A
// *sql.Stmt prepares on each connection of its pool the first time it runs
// there and keeps that, and Tx.StmtContext reuses the writer's copy.
type stmts struct {
	// On the reader pool.
	userByID, userByLogin, sessionGet, limiterCount, limiterCount3 *sql.Stmt
	// On the writer connection.
	sessionReplace, sessionCount, sessionInsert, sessionTouch *sql.Stmt
	limiterReset                                              *sql.Stmt

	// Security activity: polls on the reader pool, the rest on the writer.
	outboxDue, outboxPending                                 *sql.Stmt
	seenForget, seenLookup, seenUpsert, seenBound            *sql.Stmt
	activityInsert, activityBound                            *sql.Stmt
	outboxInsert, outboxDueSet, outboxDueDelete, outboxLease *sql.Stmt
}

// prepare prepares every statement of st, on read or write as each needs.
// The schema must be in place.
func (st *stmts) prepare(ctx context.Context, read, write *sql.DB) error {
	for _, p := range []struct {
		dst   **sql.Stmt
		db    *sql.DB
		query string
	}{
		{&st.userByID, read, qUserByID},
		{&st.userByLogin, read, qUserByLogin},
		{&st.sessionGet, read, qSessionGet},
		{&st.limiterCount, read, qLimiterCount},
		{&st.limiterCount3, read, qLimiterCount3},
		{&st.sessionReplace, write, qSessionReplace},
		{&st.sessionCount, write, qSessionCount},
		{&st.sessionInsert, write, qSessionInsert},
		{&st.sessionTouch, write, qSessionTouch},
		{&st.limiterReset, write, qLimiterReset},
		{&st.outboxDue, read, qOutboxDue},
		{&st.outboxPending, read, qOutboxPending},
		{&st.seenForget, write, qSeenForget},
		{&st.seenLookup, write, qSeenLookup},
		{&st.seenUpsert, write, qSeenUpsert},
		{&st.seenBound, write, qSeenBound},
		{&st.activityInsert, write, qActivityInsert},
		{&st.activityBound, write, qActivityBound},
		{&st.outboxInsert, write, qOutboxInsert},
		{&st.outboxDueSet, write, qOutboxDueSet},
		{&st.outboxDueDelete, write, qOutboxDueDelete},
		{&st.outboxLease, write, qOutboxLease},
	} {
		s, err := p.db.PrepareContext(ctx, p.query)
		if err != nil {
			return fmt.Errorf("prepare: %w", err)
		}
		*p.dst = s
	}
	return nil
}

// close closes every prepared statement of st.
func (st *stmts) close() error {
	var errs []error
	for _, s := range []*sql.Stmt{
		st.userByID, st.userByLogin, st.sessionGet, st.limiterCount, st.limiterCount3,
		st.sessionReplace, st.sessionCount, st.sessionInsert, st.sessionTouch,
		st.limiterReset,
		st.outboxDue, st.outboxPending,
		st.seenForget, st.seenLookup, st.seenUpsert, st.seenBound,
		st.activityInsert, st.activityBound,
		st.outboxInsert, st.outboxDueSet, st.outboxDueDelete, st.outboxLease,
	} {
		if s != nil {
			errs = append(errs, s.Close())
		}
	}
	return errors.Join(errs...)
}
