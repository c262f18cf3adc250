package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/sessiond/sessiond"
)

// SessionStore is a sessiond.SessionStore in a SQLite file.
//
// Get, the per-request check, is served from an in-process cache of
// sessions shared by every SessionStore of one DB. Each write this process
// makes invalidates it before returning, so after Revoke returns, Get on this
// process never returns the session. Writes by another process on the same
// file (the admin CLI, a second instance) are noticed through
// PRAGMA data_version within half a second.
type SessionStore struct {
	db *DB
}

var _ sessiond.SessionStore = (*SessionStore)(nil)

// NewSessionStore returns the session store of db.
func NewSessionStore(db *DB) *SessionStore {
	return &SessionStore{db: db}
}

// Limiter returns the limiter of the store's file, which a Manager built on
// the store without one of its own throttles with.
func (st *SessionStore) Limiter() sessiond.Limiter { return NewLimiter(st.db) }

const sessionColumns = `id, user_id, device_id, device, device_class, name, ip_address, location,
	created_at, last_active, expires_at, generation, rotated_at, claims`

// scanSession reads one row of sessionColumns.
func scanSession(row interface{ Scan(...any) error }) (*sessiond.Session, error) {
	var s sessiond.Session
	var created, active, expires, rotated, gen int64
	var claims string
	if err := row.Scan(&s.ID, &s.UserID, &s.DeviceID, &s.Device, &s.DeviceClass, &s.Name, &s.IPAddress, &s.Location,
		&created, &active, &expires, &gen, &rotated, &claims); err != nil {
		return nil, err
	}
	if claims != "" {
		s.Claims = json.RawMessage(claims)
	}
	s.CreatedAt, s.LastActive, s.ExpiresAt, s.RotatedAt = fromMS(created), fromMS(active), fromMS(expires), fromMS(rotated)
	s.Generation = uint64(gen)
	return &s, nil
}

// live reports whether a session expiring at expires is live at now: expiry
// at or before now ends it. Both are compared in milliseconds, the stored
// precision, so the answer is the same in SQL and in Go.
func live(expires, now time.Time) bool { return ms(expires) > ms(now) }

// Create implements sessiond.SessionStore. An empty limit.Policy means
// sessiond.PolicyEvict, the documented default.
func (st *SessionStore) Create(ctx context.Context, s *sessiond.Session, limit sessiond.SessionCap, now time.Time) ([]sessiond.Ended, error) {
	if limit.Max > 0 && limit.Policy != sessiond.PolicyEvict && limit.Policy != sessiond.PolicyDeny && limit.Policy != "" {
		return nil, fmt.Errorf("sqlite: create %s: unknown limit policy %q", s.ID, limit.Policy)
	}
	// out collects every row the transaction deletes before it commits, so
	// invalidating them is enough whether or not the commit took effect.
	var out []sessiond.Ended
	defer func() {
		ids := []string{s.ID}
		for _, e := range out {
			ids = append(ids, e.ID)
		}
		st.db.sessions.invalidate(s.UserID, ids...)
	}()

	tx, err := st.db.write.BeginTx(ctx, nil) // BEGIN IMMEDIATE
	if err != nil {
		return nil, wrap(err, "create %s", s.ID)
	}
	defer tx.Rollback()
	nowMS := ms(now)

	if s.DeviceID != "" {
		rows, err := tx.StmtContext(ctx, st.db.stmts.sessionReplace).QueryContext(ctx, s.UserID, s.DeviceID, nowMS)
		if err != nil {
			return nil, wrap(err, "create %s: replace", s.ID)
		}
		ids, err := collectIDs(rows)
		if err != nil {
			return nil, wrap(err, "create %s: replace", s.ID)
		}
		for _, id := range ids {
			out = append(out, sessiond.Ended{ID: id, Reason: sessiond.ReasonReplaced})
		}
	}

	if limit.Max > 0 {
		var n int
		if err := tx.StmtContext(ctx, st.db.stmts.sessionCount).QueryRowContext(ctx, s.UserID, nowMS).Scan(&n); err != nil {
			return nil, wrap(err, "create %s: count", s.ID)
		}
		if n >= limit.Max {
			if limit.Policy == sessiond.PolicyDeny {
				return nil, sessiond.ErrSessionLimit // the rollback undoes the replacement
			}
			rows, err := tx.QueryContext(ctx, `DELETE FROM sessions WHERE id IN (
					SELECT id FROM sessions WHERE user_id = ? AND expires_at > ?
					ORDER BY last_active, created_at, id LIMIT ?)
				RETURNING id`, s.UserID, nowMS, n-limit.Max+1)
			if err != nil {
				return nil, wrap(err, "create %s: evict", s.ID)
			}
			ids, err := collectIDs(rows)
			if err != nil {
				return nil, wrap(err, "create %s: evict", s.ID)
			}
			for _, id := range ids {
				out = append(out, sessiond.Ended{ID: id, Reason: sessiond.ReasonEvicted})
			}
		}
	}

	if _, err := tx.StmtContext(ctx, st.db.stmts.sessionInsert).ExecContext(ctx,
		s.ID, s.UserID, s.DeviceID, s.Device, s.DeviceClass, s.Name, s.IPAddress, s.Location,
		ms(s.CreatedAt), ms(s.LastActive), ms(s.ExpiresAt), int64(s.Generation), ms(s.RotatedAt), string(s.Claims)); err != nil {
		if uniqueViolation(err, "sessions.id") {
			return nil, fmt.Errorf("sqlite: create %s: session id exists", s.ID)
		}
		return nil, wrap(err, "create %s", s.ID)
	}
	if err := tx.Commit(); err != nil {
		return nil, wrap(err, "create %s: commit", s.ID)
	}
	if out == nil {
		return []sessiond.Ended{}, nil
	}
	return out, nil
}

// collectIDs reads and closes rows of one id column.
func collectIDs(rows *sql.Rows) ([]string, error) {
	defer rows.Close()
	ids := []string{}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

// Get implements sessiond.SessionStore. It serves from the cache when the
// cache is known to be current, and otherwise reads the database and caches
// what it read.
func (st *SessionStore) Get(ctx context.Context, userID, id string, now time.Time) (*sessiond.Session, error) {
	c := st.db.sessions
	k := cacheKey{userID, id}
	if c.trusted() {
		if s := c.get(k); s != nil {
			if !live(s.ExpiresAt, now) {
				return nil, sessiond.ErrNotFound
			}
			return s.Clone(), nil
		}
	}

	gen := c.generation()
	s, err := scanSession(st.db.stmts.sessionGet.QueryRowContext(ctx, id, userID))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, sessiond.ErrNotFound
	}
	if err != nil {
		return nil, wrap(err, "get %s", id)
	}
	if !live(s.ExpiresAt, now) {
		return nil, sessiond.ErrNotFound
	}
	out := s.Clone()
	c.put(gen, s)
	return out, nil
}

// List implements sessiond.SessionStore.
func (st *SessionStore) List(ctx context.Context, userID string, now time.Time) ([]*sessiond.Session, error) {
	rows, err := st.db.read.QueryContext(ctx,
		`SELECT `+sessionColumns+` FROM sessions WHERE user_id = ? AND expires_at > ?`, userID, ms(now))
	if err != nil {
		return nil, wrap(err, "list")
	}
	defer rows.Close()
	out := []*sessiond.Session{}
	for rows.Next() {
		s, err := scanSession(rows)
		if err != nil {
			return nil, wrap(err, "list")
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		return nil, wrap(err, "list")
	}
	return out, nil
}

// ListPage implements sessiond.SessionStore in one query: the user's rows
// (at most sessiond.HardMaxSessions) are found through the user index and
// sorted, and only the page is returned.
func (st *SessionStore) ListPage(ctx context.Context, userID string, now time.Time, after *sessiond.ListPosition, excludeID string, limit int) ([]*sessiond.Session, error) {
	first := after == nil
	var active, created int64
	var id string
	if after != nil {
		active, created, id = ms(after.LastActive), ms(after.CreatedAt), after.ID
	}
	rows, err := st.db.read.QueryContext(ctx, `SELECT `+sessionColumns+` FROM sessions
		WHERE user_id = ?1 AND expires_at > ?2 AND id <> ?3
		AND (?4 OR last_active < ?5 OR (last_active = ?5 AND (created_at < ?6 OR (created_at = ?6 AND id > ?7))))
		ORDER BY last_active DESC, created_at DESC, id LIMIT ?8`,
		userID, ms(now), excludeID, first, active, created, id, limit)
	if err != nil {
		return nil, wrap(err, "list page")
	}
	defer rows.Close()
	out := []*sessiond.Session{}
	for rows.Next() {
		s, err := scanSession(rows)
		if err != nil {
			return nil, wrap(err, "list page")
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		return nil, wrap(err, "list page")
	}
	return out, nil
}

// Touch implements sessiond.SessionStore.
func (st *SessionStore) Touch(ctx context.Context, userID, id string, lastActive, expiresAt time.Time) error {
	defer st.db.sessions.invalidate(userID, id)
	res, err := st.db.stmts.sessionTouch.ExecContext(ctx, ms(lastActive), ms(expiresAt), id, userID)
	return affectedOne(res, err, "touch %s", id)
}

// affectedOne turns the result of a one-row statement into nil, ErrNotFound
// when no row matched, or a wrapped error.
func affectedOne(res sql.Result, err error, format string, args ...any) error {
	if err != nil {
		return wrap(err, format, args...)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return wrap(err, format, args...)
	}
	if n == 0 {
		return sessiond.ErrNotFound
	}
	return nil
}

// Rotate implements sessiond.SessionStore.
func (st *SessionStore) Rotate(ctx context.Context, userID, id string, from uint64, at, expiresAt time.Time) (*sessiond.Session, error) {
	defer st.db.sessions.invalidate(userID, id)
	tx, err := st.db.write.BeginTx(ctx, nil)
	if err != nil {
		return nil, wrap(err, "rotate %s", id)
	}
	defer tx.Rollback()
	s, err := scanSession(tx.QueryRowContext(ctx, `UPDATE sessions
		SET generation = generation + 1, rotated_at = ?1, last_active = ?1, expires_at = ?2
		WHERE id = ?3 AND user_id = ?4 AND generation = ?5
		RETURNING `+sessionColumns,
		ms(at), ms(expiresAt), id, userID, int64(from)))
	if errors.Is(err, sql.ErrNoRows) {
		var exists bool
		err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM sessions WHERE id = ? AND user_id = ?)`,
			id, userID).Scan(&exists)
		switch {
		case err != nil:
			return nil, wrap(err, "rotate %s", id)
		case exists:
			return nil, sessiond.ErrGenerationMismatch
		default:
			return nil, sessiond.ErrNotFound
		}
	}
	if err != nil {
		return nil, wrap(err, "rotate %s", id)
	}
	if err := tx.Commit(); err != nil {
		return nil, wrap(err, "rotate %s: commit", id)
	}
	return s, nil
}

// Update implements sessiond.SessionStore.
func (st *SessionStore) Update(ctx context.Context, userID, id string, ch sessiond.SessionChange) (*sessiond.Session, error) {
	defer st.db.sessions.invalidate(userID, id)
	var name, claims sql.NullString
	if ch.Name != nil {
		name = sql.NullString{String: *ch.Name, Valid: true}
	}
	if ch.Claims != nil {
		claims = sql.NullString{String: string(*ch.Claims), Valid: true}
	}
	s, err := scanSession(st.db.write.QueryRowContext(ctx,
		`UPDATE sessions SET name = coalesce(?, name), claims = coalesce(?, claims)
		WHERE id = ? AND user_id = ? RETURNING `+sessionColumns, name, claims, id, userID))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, sessiond.ErrNotFound
	}
	if err != nil {
		return nil, wrap(err, "update %s", id)
	}
	return s, nil
}

// Revoke implements sessiond.SessionStore.
func (st *SessionStore) Revoke(ctx context.Context, userID, id string) error {
	defer st.db.sessions.invalidate(userID, id)
	res, err := st.db.write.ExecContext(ctx, `DELETE FROM sessions WHERE id = ? AND user_id = ?`, id, userID)
	return affectedOne(res, err, "revoke %s", id)
}

// RevokeOthers implements sessiond.SessionStore, deleting up to
// sessiond.StoreChunk rows per statement so the write lock is never held
// for long.
func (st *SessionStore) RevokeOthers(ctx context.Context, userID, keepID string) (ids []string, err error) {
	defer func() { st.invalidateDeleted(userID, ids, err) }()
	ids, err = st.deleteChunks(ctx, `DELETE FROM sessions WHERE id IN (
		SELECT id FROM sessions WHERE user_id = ? AND id <> ? LIMIT ?) RETURNING id`, userID, keepID)
	if err != nil {
		return ids, wrap(err, "revoke others of %s", keepID)
	}
	return ids, nil
}

// RevokeAll implements sessiond.SessionStore like RevokeOthers.
func (st *SessionStore) RevokeAll(ctx context.Context, userID string) (ids []string, err error) {
	defer func() { st.invalidateDeleted(userID, ids, err) }()
	ids, err = st.deleteChunks(ctx, `DELETE FROM sessions WHERE id IN (
		SELECT id FROM sessions WHERE user_id = ? AND id <> ? LIMIT ?) RETURNING id`, userID, "")
	if err != nil {
		return ids, wrap(err, "revoke all")
	}
	return ids, nil
}

// deleteChunks runs query (a DELETE ... RETURNING id taking userID, keepID
// and a row limit) until it deletes less than a chunk, and returns every id
// deleted, those of the chunks that completed also on an error.
func (st *SessionStore) deleteChunks(ctx context.Context, query, userID, keepID string) ([]string, error) {
	ids := []string{}
	for {
		rows, err := st.db.write.QueryContext(ctx, query, userID, keepID, sessiond.StoreChunk)
		if err != nil {
			return ids, err
		}
		chunk, err := collectIDs(rows)
		if err != nil {
			// RETURNING rows come before the statement completes: a
			// failure here may or may not have deleted them.
			return ids, err
		}
		ids = append(ids, chunk...)
		if len(chunk) < sessiond.StoreChunk {
			return ids, nil
		}
	}
}

// invalidateDeleted drops the deleted sessions from the cache, or every
// session of the user when it is unknown what else was deleted.
func (st *SessionStore) invalidateDeleted(userID string, ids []string, err error) {
	if err != nil {
		st.db.sessions.invalidateUser(userID)
		return
	}
	st.db.sessions.invalidate(userID, ids...)
}

// deleteBatch bounds the rows one DeleteExpired statement removes, so the
// write lock is never held for long. A variable for tests.
var deleteBatch = 1000

// DeleteExpired implements sessiond.SessionStore. It deletes in batches.
func (st *SessionStore) DeleteExpired(ctx context.Context, now time.Time) (int, error) {
	nowMS := ms(now)
	defer st.db.sessions.invalidateExpired(nowMS)
	total := 0
	for {
		res, err := st.db.write.ExecContext(ctx, `DELETE FROM sessions WHERE id IN (
			SELECT id FROM sessions WHERE expires_at <= ? LIMIT ?)`, nowMS, deleteBatch)
		if err != nil {
			return total, wrap(err, "delete expired")
		}
		n, err := res.RowsAffected()
		if err != nil {
			return total, wrap(err, "delete expired")
		}
		total += int(n)
		if n < int64(deleteBatch) {
			break
		}
	}
	// Handoff records live a minute: few, and not counted as sessions.
	for {
		res, err := st.db.write.ExecContext(ctx, `DELETE FROM handoffs WHERE code_hash IN (
			SELECT code_hash FROM handoffs WHERE expires_at <= ? LIMIT ?)`, nowMS, deleteBatch)
		if err != nil {
			return total, wrap(err, "delete expired handoffs")
		}
		n, err := res.RowsAffected()
		if err != nil {
			return total, wrap(err, "delete expired handoffs")
		}
		if n < int64(deleteBatch) {
			break
		}
	}
	// Security activity past its bounds: not counted as sessions either.
	return total, st.db.deleteExpiredActivity(ctx, now)
}

// PutHandoff implements sessiond.SessionStore.
func (st *SessionStore) PutHandoff(ctx context.Context, codeHash string, h sessiond.Handoff) error {
	_, err := st.db.write.ExecContext(ctx, `INSERT OR REPLACE INTO handoffs (code_hash, user_id, session_id, expires_at, used)
		VALUES (?, ?, ?, ?, 0)`, codeHash, h.UserID, h.SessionID, ms(h.ExpiresAt))
	if err != nil {
		return wrap(err, "put handoff")
	}
	return nil
}

// TakeHandoff implements sessiond.SessionStore: one UPDATE counts the
// take and returns the record, so two concurrent takes see counts 1 and 2.
func (st *SessionStore) TakeHandoff(ctx context.Context, codeHash string, now time.Time) (*sessiond.Handoff, bool, error) {
	var h sessiond.Handoff
	var exp, used int64
	err := st.db.write.QueryRowContext(ctx, `UPDATE handoffs SET used = used + 1
		WHERE code_hash = ? AND expires_at > ?
		RETURNING user_id, session_id, expires_at, used`, codeHash, ms(now)).Scan(&h.UserID, &h.SessionID, &exp, &used)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, false, fmt.Errorf("sqlite: take handoff: %w", sessiond.ErrNotFound)
	}
	if err != nil {
		return nil, false, wrap(err, "take handoff")
	}
	h.ExpiresAt = fromMS(exp)
	return &h, used == 1, nil
}

// Sync implements sessiond.SessionStore: every change is committed to the
// file (synchronous=FULL) before the call that made it returns, so there is
// nothing to wait for.
func (st *SessionStore) Sync(context.Context, string) error { return nil }

// Ping implements sessiond.SessionStore.
func (st *SessionStore) Ping(ctx context.Context) error {
	return st.db.ping(ctx)
}

// CountLive returns how many sessions are live at now: one count over the
// expiry index, for a metrics gauge.
func (st *SessionStore) CountLive(ctx context.Context, now time.Time) (int, error) {
	var n int
	if err := st.db.read.QueryRowContext(ctx, `SELECT count(*) FROM sessions WHERE expires_at > ?`, ms(now)).Scan(&n); err != nil {
		return 0, wrap(err, "count live")
	}
	return n, nil
}
