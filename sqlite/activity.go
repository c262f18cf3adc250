package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/sessiond/sessiond"
)

// ActivityStore is a sessiond.ActivityStore in a SQLite file (docs/design.md,
// "SQLite tables"). Each write is one immediate transaction on the writer
// connection, so it is atomic across every process that opens the file, and
// durable when it returns (synchronous=FULL). Reads use the reader pool.
//
// Due reads the table outbox_due, one row per user and queue saying when
// the user's first message is due, which every write to the outbox rewrites
// in its transaction: a user whose queue is empty has no row, so Pending
// needs no write to take them out of Due, and no message recorded meanwhile
// can be lost. Rows past their bounds are deleted by the writes of the same
// user and by SessionStore.DeleteExpired.
type ActivityStore struct {
	db *DB
}

var _ sessiond.ActivityStore = (*ActivityStore)(nil)

// NewActivityStore returns the activity store of db.
func NewActivityStore(db *DB) *ActivityStore {
	return &ActivityStore{db: db}
}

// Kinds of the seen table.
const (
	seenDevice  = 0
	seenCountry = 1
)

// Remember implements sessiond.ActivityStore. SeenMax bounds the devices
// and countries of a user together, the "100 entries per user" of
// docs/design.md.
func (st *ActivityStore) Remember(ctx context.Context, userID, device, country string, now time.Time) (sessiond.Novelty, error) {
	if device == "" {
		return sessiond.Novelty{}, fmt.Errorf("sqlite: remember: empty device")
	}
	nowMS := ms(now)
	tx, err := st.db.write.BeginTx(ctx, nil) // BEGIN IMMEDIATE
	if err != nil {
		return sessiond.Novelty{}, wrap(err, "remember")
	}
	defer tx.Rollback()
	// Seen at s, a device is remembered while now < s + SeenKeep.
	if _, err := tx.StmtContext(ctx, st.db.stmts.seenForget).ExecContext(ctx, userID, ms(now.Add(-sessiond.SeenKeep))); err != nil {
		return sessiond.Novelty{}, wrap(err, "remember: forget")
	}
	var n, knownDevice, knownCountry int
	if err := tx.StmtContext(ctx, st.db.stmts.seenLookup).QueryRowContext(ctx,
		userID, seenDevice, device, seenCountry, country).Scan(&n, &knownDevice, &knownCountry); err != nil {
		return sessiond.Novelty{}, wrap(err, "remember: look up")
	}
	var nov sessiond.Novelty
	if n == 0 {
		nov.First = true
	} else {
		nov.NewDevice = knownDevice == 0
		nov.NewLocation = country != "" && knownCountry == 0
	}
	upsert := tx.StmtContext(ctx, st.db.stmts.seenUpsert)
	if _, err := upsert.ExecContext(ctx, userID, seenDevice, device, nowMS); err != nil {
		return sessiond.Novelty{}, wrap(err, "remember: device")
	}
	if country != "" {
		if _, err := upsert.ExecContext(ctx, userID, seenCountry, country, nowMS); err != nil {
			return sessiond.Novelty{}, wrap(err, "remember: country")
		}
	}
	if n+2 > sessiond.SeenMax {
		if _, err := tx.StmtContext(ctx, st.db.stmts.seenBound).ExecContext(ctx, userID, sessiond.SeenMax); err != nil {
			return sessiond.Novelty{}, wrap(err, "remember: bound")
		}
	}
	if err := tx.Commit(); err != nil {
		return sessiond.Novelty{}, wrap(err, "remember: commit")
	}
	return nov, nil
}

// Forget implements sessiond.ActivityStore: one statement on the writer
// connection, atomic on its own. Remember only moves seen_at forward, so a
// row still at at was seen by no later sign-in.
func (st *ActivityStore) Forget(ctx context.Context, userID, device, country string, at time.Time) error {
	if device == "" && country == "" {
		return nil
	}
	_, err := st.db.write.ExecContext(ctx, `DELETE FROM seen WHERE user_id = ?1 AND seen_at = ?2
		AND ((kind = ?3 AND value = ?4 AND ?4 <> '') OR (kind = ?5 AND value = ?6 AND ?6 <> ''))`,
		userID, ms(at), seenDevice, device, seenCountry, country)
	if err != nil {
		return wrap(err, "forget")
	}
	return nil
}

// Record implements sessiond.ActivityStore. A message with a zero CreatedAt
// is recorded as created at now.
func (st *ActivityStore) Record(ctx context.Context, userID string, entries []sessiond.ActivityEntry, msgs []sessiond.OutboxMessage, now time.Time) error {
	if len(entries) == 0 && len(msgs) == 0 {
		return nil
	}
	for _, m := range msgs {
		if m.Queue != sessiond.QueueWebhook && m.Queue != sessiond.QueueMail {
			return fmt.Errorf("sqlite: record: unknown queue %q", m.Queue)
		}
		if m.ID == "" {
			return fmt.Errorf("sqlite: record: message without an id")
		}
	}
	tx, err := st.db.write.BeginTx(ctx, nil) // BEGIN IMMEDIATE
	if err != nil {
		return wrap(err, "record")
	}
	defer tx.Rollback()

	if len(entries) > 0 {
		insert := tx.StmtContext(ctx, st.db.stmts.activityInsert)
		for _, e := range entries {
			if _, err := insert.ExecContext(ctx, userID, ms(e.At), blob(e.Data)); err != nil {
				return wrap(err, "record: history")
			}
		}
		if _, err := tx.StmtContext(ctx, st.db.stmts.activityBound).ExecContext(ctx,
			userID, ms(now.Add(-sessiond.ActivityKeep)), sessiond.ActivityMax); err != nil {
			return wrap(err, "record: bound history")
		}
	}

	queues := map[string]bool{}
	var insert *sql.Stmt
	if len(msgs) > 0 {
		insert = tx.StmtContext(ctx, st.db.stmts.outboxInsert)
	}
	for _, m := range msgs {
		created := m.CreatedAt
		if created.IsZero() {
			created = now
		}
		if _, err := insert.ExecContext(ctx, m.Queue, userID, m.ID, blob(m.Body), ms(created), m.Attempts, nullMS(m.NextAt)); err != nil {
			if uniqueViolation(err, "outbox.") {
				return fmt.Errorf("sqlite: record: message id %s exists", m.ID)
			}
			return wrap(err, "record: message")
		}
		queues[m.Queue] = true
	}
	for q := range queues {
		if err := st.db.refreshDue(ctx, tx, q, userID); err != nil {
			return wrap(err, "record: due")
		}
	}
	if err := tx.Commit(); err != nil {
		return wrap(err, "record: commit")
	}
	return nil
}

// blob is b as a BLOB value: a nil b is the empty BLOB, not NULL.
func blob(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// nullMS is t in unix milliseconds, or NULL when t is zero.
func nullMS(t time.Time) sql.NullInt64 {
	if t.IsZero() {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: ms(t), Valid: true}
}

// refreshDue rewrites userID's row of outbox_due in queue from their first
// message, or deletes it when they have none. A first message is due at
// its next_at, or at its creation when it has none.
func (db *DB) refreshDue(ctx context.Context, tx *sql.Tx, queue, userID string) error {
	res, err := tx.StmtContext(ctx, db.stmts.outboxDueSet).ExecContext(ctx, queue, userID)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil || n > 0 {
		return err
	}
	_, err = tx.StmtContext(ctx, db.stmts.outboxDueDelete).ExecContext(ctx, queue, userID)
	return err
}

// Activity implements sessiond.ActivityStore. Entries older than
// ActivityKeep stay until the user's next Record or the sweeper deletes
// them; callers pass a since no older than that.
func (st *ActivityStore) Activity(ctx context.Context, userID string, since time.Time, limit int) ([]sessiond.ActivityEntry, error) {
	if limit <= 0 {
		return nil, nil
	}
	rows, err := st.db.read.QueryContext(ctx, `SELECT at, data FROM activity
		WHERE user_id = ? AND at >= ? ORDER BY at DESC, seq DESC LIMIT ?`,
		userID, ms(since), min(limit, sessiond.ActivityMax))
	if err != nil {
		return nil, wrap(err, "activity")
	}
	defer rows.Close()
	var out []sessiond.ActivityEntry
	for rows.Next() {
		var at int64
		var data []byte
		if err := rows.Scan(&at, &data); err != nil {
			return nil, wrap(err, "activity")
		}
		out = append(out, sessiond.ActivityEntry{At: fromMS(at), Data: json.RawMessage(data)})
	}
	if err := rows.Err(); err != nil {
		return nil, wrap(err, "activity")
	}
	return out, nil
}

// Due implements sessiond.ActivityStore. It lists only the users whose first
// message is due at now.
func (st *ActivityStore) Due(ctx context.Context, queue string, now time.Time, n int) ([]string, error) {
	if n <= 0 {
		return nil, nil
	}
	rows, err := st.db.stmts.outboxDue.QueryContext(ctx, queue, ms(now), n)
	if err != nil {
		return nil, wrap(err, "due %s", queue)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var u string
		if err := rows.Scan(&u); err != nil {
			return nil, wrap(err, "due %s", queue)
		}
		out = append(out, u)
	}
	if err := rows.Err(); err != nil {
		return nil, wrap(err, "due %s", queue)
	}
	return out, nil
}

// Lease implements sessiond.ActivityStore. A lease has expired at now when
// its until is at or before now. One statement: it takes or extends the
// lease, or changes nothing.
func (st *ActivityStore) Lease(ctx context.Context, queue, userID, owner string, now, until time.Time) (bool, error) {
	res, err := st.db.stmts.outboxLease.ExecContext(ctx, queue, userID, owner, ms(until), ms(now))
	if err != nil {
		return false, wrap(err, "lease %s", queue)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, wrap(err, "lease %s", queue)
	}
	return n == 1, nil
}

// Unlease implements sessiond.ActivityStore.
func (st *ActivityStore) Unlease(ctx context.Context, queue, userID, owner string) error {
	_, err := st.db.write.ExecContext(ctx, `DELETE FROM outbox_leases WHERE queue = ? AND user_id = ? AND owner = ?`,
		queue, userID, owner)
	if err != nil {
		return wrap(err, "unlease %s", queue)
	}
	return nil
}

// Pending implements sessiond.ActivityStore. It only reads: a user with an
// empty queue has no row in outbox_due already.
func (st *ActivityStore) Pending(ctx context.Context, queue, userID string, n int) ([]sessiond.OutboxMessage, error) {
	if n <= 0 {
		return nil, nil
	}
	rows, err := st.db.stmts.outboxPending.QueryContext(ctx, queue, userID, n)
	if err != nil {
		return nil, wrap(err, "pending %s", queue)
	}
	defer rows.Close()
	var out []sessiond.OutboxMessage
	for rows.Next() {
		m := sessiond.OutboxMessage{Queue: queue}
		var body []byte
		var created int64
		var next sql.NullInt64
		if err := rows.Scan(&m.ID, &body, &created, &m.Attempts, &next); err != nil {
			return nil, wrap(err, "pending %s", queue)
		}
		m.Body, m.CreatedAt = json.RawMessage(body), fromMS(created)
		if next.Valid {
			m.NextAt = fromMS(next.Int64)
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, wrap(err, "pending %s", queue)
	}
	return out, nil
}

// Delivered implements sessiond.ActivityStore.
func (st *ActivityStore) Delivered(ctx context.Context, queue, userID, id string) error {
	return st.changeMessage(ctx, "delivered", queue, userID, id, false,
		`DELETE FROM outbox WHERE queue = ? AND user_id = ? AND id = ?`, queue, userID, id)
}

// Retry implements sessiond.ActivityStore. A zero next makes the message
// due at once.
func (st *ActivityStore) Retry(ctx context.Context, queue, userID, id string, attempts int, next time.Time) error {
	return st.changeMessage(ctx, "retry", queue, userID, id, true,
		`UPDATE outbox SET attempts = ?, next_at = ? WHERE queue = ? AND user_id = ? AND id = ?`,
		attempts, nullMS(next), queue, userID, id)
}

// changeMessage runs query, which changes message id of userID's queue,
// and rewrites the user's due time, in one transaction. It returns
// ErrNotFound when the message is missing and mustExist.
func (st *ActivityStore) changeMessage(ctx context.Context, what, queue, userID, id string, mustExist bool, query string, args ...any) error {
	tx, err := st.db.write.BeginTx(ctx, nil) // BEGIN IMMEDIATE
	if err != nil {
		return wrap(err, "%s %s", what, id)
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, query, args...)
	if err != nil {
		return wrap(err, "%s %s", what, id)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return wrap(err, "%s %s", what, id)
	}
	if n == 0 {
		if mustExist {
			return sessiond.ErrNotFound
		}
		return nil
	}
	if err := st.db.refreshDue(ctx, tx, queue, userID); err != nil {
		return wrap(err, "%s %s: due", what, id)
	}
	if err := tx.Commit(); err != nil {
		return wrap(err, "%s %s: commit", what, id)
	}
	return nil
}

// QueueStats implements sessiond.ActivityStore. It counts every message of
// the queue, through the index on (queue, created_at).
func (st *ActivityStore) QueueStats(ctx context.Context, queue string, now time.Time) (int, time.Time, error) {
	var n int
	var oldest sql.NullInt64
	if err := st.db.read.QueryRowContext(ctx, `SELECT count(*), min(created_at) FROM outbox WHERE queue = ?`,
		queue).Scan(&n, &oldest); err != nil {
		return 0, time.Time{}, wrap(err, "queue stats %s", queue)
	}
	if !oldest.Valid {
		return n, time.Time{}, nil
	}
	return n, fromMS(oldest.Int64), nil
}

// outboxSweepAfter is how long after its creation a message is deleted by
// the sweeper: the delivery loop drops it after DeliveryHorizon, and the
// hour leaves that loop room.
const outboxSweepAfter = sessiond.DeliveryHorizon + time.Hour

// deleteExpiredActivity deletes, in batches, history older than
// ActivityKeep, devices and countries not seen within SeenKeep, messages
// older than outboxSweepAfter and expired leases, and rewrites the due
// times of the users whose messages it deleted. SessionStore.DeleteExpired
// calls it.
func (db *DB) deleteExpiredActivity(ctx context.Context, now time.Time) error {
	for _, d := range []struct {
		what, query string
		before      time.Time
	}{
		{"history", `DELETE FROM activity WHERE seq IN (SELECT seq FROM activity WHERE at <= ? LIMIT ?)`,
			now.Add(-sessiond.ActivityKeep)},
		{"seen", `DELETE FROM seen WHERE (user_id, kind, value) IN (
			SELECT user_id, kind, value FROM seen WHERE seen_at <= ? LIMIT ?)`,
			now.Add(-sessiond.SeenKeep)},
		{"leases", `DELETE FROM outbox_leases WHERE (queue, user_id) IN (
			SELECT queue, user_id FROM outbox_leases WHERE until <= ? LIMIT ?)`,
			now},
	} {
		if err := db.deleteBatches(ctx, d.query, ms(d.before)); err != nil {
			return wrap(err, "delete expired %s", d.what)
		}
	}
	// Messages: each batch rewrites the due rows of the users it touched
	// in its own transaction.
	for {
		n, err := db.deleteOutboxBatch(ctx, ms(now.Add(-outboxSweepAfter)))
		if err != nil {
			return wrap(err, "delete expired messages")
		}
		if n < deleteBatch {
			return nil
		}
	}
}

// deleteBatches runs query, a delete of at most ? rows before ?, until it
// deletes fewer than a batch.
func (db *DB) deleteBatches(ctx context.Context, query string, before int64) error {
	for {
		res, err := db.write.ExecContext(ctx, query, before, deleteBatch)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return err
		}
		if n < int64(deleteBatch) {
			return nil
		}
	}
}

// deleteOutboxBatch deletes up to deleteBatch messages created at or before
// before, with the due rows of their users rewritten, in one transaction.
func (db *DB) deleteOutboxBatch(ctx context.Context, before int64) (int, error) {
	tx, err := db.write.BeginTx(ctx, nil) // BEGIN IMMEDIATE
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, `DELETE FROM outbox WHERE seq IN (
			SELECT seq FROM outbox WHERE created_at <= ? LIMIT ?)
		RETURNING queue, user_id`, before, deleteBatch)
	if err != nil {
		return 0, err
	}
	type key struct{ queue, user string }
	touched := map[key]bool{}
	n := 0
	for rows.Next() {
		var k key
		if err := rows.Scan(&k.queue, &k.user); err != nil {
			rows.Close()
			return 0, err
		}
		touched[k] = true
		n++
	}
	if err := rows.Close(); err != nil {
		return 0, err
	}
	if err := rows.Err(); err != nil {
		return 0, err
	}
	for k := range touched {
		if err := db.refreshDue(ctx, tx, k.queue, k.user); err != nil {
			return 0, err
		}
	}
	return n, tx.Commit()
}
