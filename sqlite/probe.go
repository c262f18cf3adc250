package sqlite

import "context"

// writable makes one small write that leaves nothing behind, in an
// immediate transaction: a row in and out again dirties a page that the
// commit must write, so a full disk or a read-only file fails it.
func (db *DB) writable(ctx context.Context) error {
	tx, err := db.write.BeginTx(ctx, nil)
	if err != nil {
		return wrap(err, "writable")
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, qLimiterAdd, "", 0, 0)
	if err != nil {
		return wrap(err, "writable")
	}
	row, err := res.LastInsertId()
	if err != nil {
		return wrap(err, "writable")
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM limiter_events WHERE rowid = ?`, row); err != nil {
		return wrap(err, "writable")
	}
	if err := tx.Commit(); err != nil {
		return wrap(err, "writable: commit")
	}
	return nil
}

// Writable implements sessiond.SessionStore.
func (st *SessionStore) Writable(ctx context.Context) error { return st.db.writable(ctx) }

// Writable implements sessiond.Limiter.
func (l *Limiter) Writable(ctx context.Context) error { return l.db.writable(ctx) }
