// Package sqlite is the embedded default store of sessiond: users, sessions,
// rate-limit counters and security activity in one SQLite file, through the
// pure Go driver modernc.org/sqlite (no cgo).
//
// Open a file once per process and build the stores on it:
//
//	db, err := sqlite.Open("data/sessiond.db")
//	...
//	defer db.Close()
//	sessions := sqlite.NewSessionStore(db)
//	users := sqlite.NewUserStore(db)
//	limiter := sqlite.NewLimiter(db)
//	activity := sqlite.NewActivityStore(db)
//
// The file runs in WAL mode with synchronous=FULL, so a committed write
// survives a power cut. Writes go through one connection and begin their
// transactions with BEGIN IMMEDIATE, so concurrent writers queue instead of
// failing with "database is locked"; reads use a separate pool and never
// wait for writers. Other processes may open the same file (the admin CLI, a
// second instance): their writes reach this process's session cache within
// a second (see SessionStore).
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sessiond/sessiond"
	sqlitedriver "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

//go:embed migrations/*.sql
var migrations embed.FS

// busyTimeout is how long a statement waits for a lock held by another
// connection or process before it fails with SQLITE_BUSY.
const busyTimeout = 5 * time.Second

// DB is an open SQLite database file. It is safe for concurrent use.
type DB struct {
	path  string
	write *sql.DB // one connection: every write, in order
	read  *sql.DB // a pool of read-only connections
	stmts stmts   // the hot statements, prepared on read and write

	// sessions is the session cache, shared by every SessionStore of this
	// DB, since they all write through the same connection.
	sessions *sessionCache

	closeMu sync.RWMutex
	closed  bool
	bg      sync.WaitGroup // background cache checks
}

// Open opens the SQLite database at path, creating the file (mode 0600, not its
// directory) when missing, and applies the embedded migrations that the file
// has not seen yet; its schema_version table records the latest. It refuses
// a file whose schema is newer than this build knows.
func Open(path string) (*DB, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	db := &DB{path: abs}
	if err := createPrivate(abs); err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}

	params := url.Values{}
	params.Set("_busy_timeout", strconv.FormatInt(busyTimeout.Milliseconds(), 10))
	params.Set("_foreign_keys", "1")
	params.Set("_synchronous", "FULL")
	params.Set("_journal_mode", "WAL")
	params.Set("_txlock", "immediate")
	db.write, err = sql.Open("sqlite", dsn(abs, params))
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	// One writer connection: SQLite allows one writer at a time anyway, and
	// queueing in database/sql is cheaper and fairer than busy-waiting. It
	// also anchors PRAGMA data_version (see sessionCache), so it is never
	// closed while idle.
	db.write.SetMaxOpenConns(1)
	db.write.SetMaxIdleConns(1)
	db.write.SetConnMaxLifetime(0)
	db.write.SetConnMaxIdleTime(0)

	ctx := context.Background()
	if err := migrateRetry(ctx, db.write); err != nil {
		db.write.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}

	params.Del("_journal_mode") // persistent, set by the writer
	params.Set("_txlock", "deferred")
	params.Set("_query_only", "1")
	db.read, err = sql.Open("sqlite", dsn(abs, params))
	if err != nil {
		db.write.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	n := max(4, 2*runtime.GOMAXPROCS(0))
	db.read.SetMaxOpenConns(n)
	db.read.SetMaxIdleConns(n)

	if err := db.stmts.prepare(ctx, db.read, db.write); err != nil {
		db.stmts.close()
		db.read.Close()
		db.write.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}

	db.sessions, err = newSessionCache(ctx, db, defaultCacheSize)
	if err != nil {
		db.stmts.close()
		db.read.Close()
		db.write.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	return db, nil
}

// dsn returns the driver's name for the file at abs with params. The path is
// written as a file: URI so that no character of it is taken for a
// parameter.
func dsn(abs string, params url.Values) string {
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(abs), RawQuery: params.Encode()}
	return u.String()
}

// Close waits for background work and closes the database. The stores built
// on db must not be used afterwards.
func (db *DB) Close() error {
	db.closeMu.Lock()
	if db.closed {
		db.closeMu.Unlock()
		return nil
	}
	db.closed = true
	db.closeMu.Unlock()
	db.bg.Wait()
	return errors.Join(db.stmts.close(), db.read.Close(), db.write.Close())
}

// goBackground runs f in a goroutine that Close waits for; it reports false
// and does nothing once db is closed.
func (db *DB) goBackground(f func()) bool {
	db.closeMu.RLock()
	defer db.closeMu.RUnlock()
	if db.closed {
		return false
	}
	db.bg.Go(f)
	return true
}

// ping checks that the file answers a query.
func (db *DB) ping(ctx context.Context) error {
	var v int
	if err := db.read.QueryRowContext(ctx, "SELECT max(version) FROM schema_version").Scan(&v); err != nil {
		return wrap(err, "ping")
	}
	return nil
}

// migrateRetry is migrate, tried again a few times when it finds the
// file busy: while another process turns a new file to WAL mode, SQLite
// can answer SQLITE_BUSY at once instead of waiting busyTimeout.
func migrateRetry(ctx context.Context, db *sql.DB) error {
	var err error
	for attempt := range 10 {
		if err = migrate(ctx, db); err == nil || !busy(err) {
			return err
		}
		time.Sleep(time.Duration(attempt+1) * 10 * time.Millisecond)
	}
	return err
}

// busy reports whether err is SQLITE_BUSY.
func busy(err error) bool {
	var se *sqlitedriver.Error
	return errors.As(err, &se) && se.Code()&0xff == sqlite3.SQLITE_BUSY
}

// migrate applies the embedded migrations newer than the file's schema
// version, all in one immediate transaction, so that two processes opening a
// new file at once apply them exactly once.
func migrate(ctx context.Context, db *sql.DB) error {
	names, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		return err
	}
	type migration struct {
		version int
		name    string
	}
	var all []migration
	for _, name := range names {
		base := filepath.Base(name)
		prefix, _, _ := strings.Cut(base, "_")
		v, err := strconv.Atoi(prefix)
		if err != nil || v <= 0 {
			return fmt.Errorf("migration %s: name must start with a positive number", base)
		}
		all = append(all, migration{v, name})
	}
	// Two migrations may share a number (written side by side): both
	// apply, in name order, on a file older than that number. Each must
	// then not depend on the other.
	sort.Slice(all, func(i, j int) bool {
		if all[i].version != all[j].version {
			return all[i].version < all[j].version
		}
		return all[i].name < all[j].name
	})
	latest := 0
	if len(all) > 0 {
		latest = all[len(all)-1].version
	}

	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL) STRICT`); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	var current int
	if err := tx.QueryRowContext(ctx, `SELECT coalesce(max(version), 0) FROM schema_version`).Scan(&current); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if current > latest {
		return fmt.Errorf("migrate: schema version %d is newer than this build knows (%d)", current, latest)
	}
	for _, m := range all {
		if m.version <= current {
			continue
		}
		script, err := migrations.ReadFile(m.name)
		if err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
		if _, err := tx.ExecContext(ctx, string(script)); err != nil {
			return fmt.Errorf("migrate: %s: %w", filepath.Base(m.name), err)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM schema_version`); err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_version (version) VALUES (?)`, m.version); err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return nil
}

// wrap adds context to err: "sqlite: <what>: err". Errors that mean the
// database did not answer (a deadline, a lock held too long, an I/O error, a
// closed database) also wrap sessiond.ErrUnavailable.
func wrap(err error, format string, args ...any) error {
	what := fmt.Sprintf(format, args...)
	if unavailable(err) {
		return fmt.Errorf("sqlite: %s: %w: %w", what, sessiond.ErrUnavailable, err)
	}
	return fmt.Errorf("sqlite: %s: %w", what, err)
}

// unavailable reports whether err means the database did not answer, as
// opposed to refusing a statement.
func unavailable(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) || errors.Is(err, sql.ErrConnDone) {
		return true
	}
	if err != nil && (strings.Contains(err.Error(), "sql: database is closed") ||
		strings.Contains(err.Error(), "sql: statement is closed")) { // a prepared statement after Close
		return true
	}
	var se *sqlitedriver.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff {
		case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_FULL,
			sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_PROTOCOL, sqlite3.SQLITE_NOMEM, sqlite3.SQLITE_READONLY:
			return true
		}
	}
	return false
}

// uniqueViolation reports whether err is a UNIQUE or PRIMARY KEY constraint
// failure on table.column.
func uniqueViolation(err error, column string) bool {
	var se *sqlitedriver.Error
	if !errors.As(err, &se) {
		return false
	}
	if se.Code() != sqlite3.SQLITE_CONSTRAINT_UNIQUE && se.Code() != sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY {
		return false
	}
	return strings.Contains(se.Error(), column)
}

// ms converts t to unix milliseconds, the unit of every time column.
func ms(t time.Time) int64 { return t.UnixMilli() }

// fromMS converts unix milliseconds back to a UTC time.
func fromMS(v int64) time.Time { return time.UnixMilli(v).UTC() }

// createPrivate creates the database file at path, readable and writable
// by its owner only, when it does not exist. The file holds password
// hashes and sessions; SQLite would create it with the process umask
// (0644 under the usual 022), and it gives the -wal and -shm files it
// creates beside it the database file's mode, so they follow.
func createPrivate(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return nil
	}
	if err != nil {
		return err
	}
	// OpenFile's mode passes through the umask, which may only remove
	// bits; Chmod makes it exactly 0600 whatever the umask.
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
