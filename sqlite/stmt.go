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
	} {
		if s != nil {
			errs = append(errs, s.Close())
		}
	}
	return errors.Join(errs...)
}
