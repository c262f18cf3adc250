package sqlite

import "context"

// Pragmas returns the value of PRAGMA name on the writer connection and on
// one reader connection.
func (db *DB) Pragmas(ctx context.Context, name string) (writer, reader string, err error) {
	if err := db.write.QueryRowContext(ctx, "PRAGMA "+name).Scan(&writer); err != nil {
		return "", "", err
	}
	if err := db.read.QueryRowContext(ctx, "PRAGMA "+name).Scan(&reader); err != nil {
		return "", "", err
	}
	return writer, reader, nil
}

// CachedSessions reports how many sessions db's cache holds.
func (db *DB) CachedSessions() int { return db.sessions.len() }

// SetDeleteBatch sets how many rows one delete statement removes until the
// test ends.
func SetDeleteBatch(t interface{ Cleanup(func()) }, n int) {
	old := deleteBatch
	deleteBatch = n
	t.Cleanup(func() { deleteBatch = old })
}

// LimiterEvents reports how many limiter events db holds, of every key.
func (db *DB) LimiterEvents(ctx context.Context) (n int, err error) {
	err = db.read.QueryRowContext(ctx, "SELECT count(*) FROM limiter_events").Scan(&n)
	return n, err
}

// Handoffs reports how many handoff records db holds, expired or not.
func (db *DB) Handoffs(ctx context.Context) (n int, err error) {
	err = db.read.QueryRowContext(ctx, "SELECT count(*) FROM handoffs").Scan(&n)
	return n, err
}

// ActivityRows reports how many rows each security activity table of db
// holds, by table name.
func (db *DB) ActivityRows(ctx context.Context) (map[string]int, error) {
	out := map[string]int{}
	for _, table := range []string{"activity", "seen", "outbox", "outbox_due", "outbox_leases"} {
		var n int
		if err := db.read.QueryRowContext(ctx, "SELECT count(*) FROM "+table).Scan(&n); err != nil {
			return nil, err
		}
		out[table] = n
	}
	return out, nil
}
