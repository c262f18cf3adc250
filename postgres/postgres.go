// Package postgres keeps sessiond's users in PostgreSQL through
// github.com/jackc/pgx/v5, for deployments where many sessiond instances
// share one user database (sessions live in Redis there).
//
//	users, err := postgres.Open(ctx, "postgres://sessiond@db.internal/sessiond")
//	...
//	defer users.Close()
//
// Open applies the embedded migrations that the database has not seen yet;
// its schema_migrations table records them. Instances that start together
// take turns through a PostgreSQL advisory lock, so each migration runs
// once. Give sessiond a database (or a schema, through search_path) of its
// own: it creates the tables users and schema_migrations.
//
// Errors: a missing user is sessiond.ErrNotFound, a duplicate username or
// email (compared with ASCII letters folded to lower case, by unique
// indexes on lower(... COLLATE "C")) is
// sessiond.ErrUsernameTaken or sessiond.ErrEmailTaken, and a database that
// does not answer (refused or lost connection, deadline, shutdown, too
// many connections, a read-only standby) wraps sessiond.ErrUnavailable.
package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sessiond/sessiond"
)

//go:embed migrations/*.sql
var migrations embed.FS

// DefaultTimeout is the deadline of each call of a UserStore.
const DefaultTimeout = 2 * time.Second

// defaultConnectTimeout bounds a connection attempt when the URL sets no
// connect_timeout, so that a silent network cannot hang Open.
const defaultConnectTimeout = 5 * time.Second

// migrationLock is the key of the advisory lock that serializes
// migrations: "sessiond" in ASCII.
const migrationLock int64 = 0x73657373696f6e64

// UserStore is a sessiond.UserStore in PostgreSQL. It is safe for
// concurrent use.
type UserStore struct {
	pool *pgxpool.Pool

	// Timeout is the deadline of each call (DefaultTimeout when zero); a
	// call past it fails with an error wrapping sessiond.ErrUnavailable.
	// Set it before the first call.
	Timeout time.Duration

	closed atomic.Bool
}

var _ sessiond.UserStore = (*UserStore)(nil)

// Open connects to the database at url (postgres://user:pass@host:port/db?...,
// any form pgx accepts, pool_max_conns included), applies the migrations
// it lacks and returns the store. It fails, wrapping sessiond.ErrUnavailable,
// when the database does not answer, and refuses a database whose schema
// is newer than this build knows.
func Open(ctx context.Context, url string) (*UserStore, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		// pgx redacts the password from its parse errors.
		return nil, fmt.Errorf("postgres: %w", err)
	}
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = defaultConnectTimeout
	}
	if err := migrate(ctx, cfg.ConnConfig); err != nil {
		return nil, err
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, wrap(err, "connect")
	}
	return &UserStore{pool: pool}, nil
}

// Close closes the store's connections; later calls fail with an error
// wrapping sessiond.ErrUnavailable. It waits for calls in progress.
func (st *UserStore) Close() {
	st.closed.Store(true)
	st.pool.Close()
}

// call returns the context of one call, bounded by Timeout, or an error
// when the store is closed.
func (st *UserStore) call(ctx context.Context) (context.Context, context.CancelFunc, error) {
	if st.closed.Load() {
		return nil, nil, fmt.Errorf("postgres: %w: store is closed", sessiond.ErrUnavailable)
	}
	d := st.Timeout
	if d <= 0 {
		d = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, d)
	return ctx, cancel, nil
}

// migration is one embedded SQL file, numbered by its name's prefix.
type migration struct {
	version int
	name    string
	sql     string
}

// loadMigrations returns the embedded migrations in order.
func loadMigrations() ([]migration, error) {
	names, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	var ms []migration
	for _, name := range names {
		base := strings.TrimPrefix(name, "migrations/")
		prefix, _, _ := strings.Cut(base, "_")
		v, err := strconv.Atoi(prefix)
		if err != nil || v <= 0 {
			return nil, fmt.Errorf("postgres: migration %s: name must start with a positive number", base)
		}
		b, err := migrations.ReadFile(name)
		if err != nil {
			return nil, err
		}
		ms = append(ms, migration{version: v, name: base, sql: string(b)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].version < ms[j].version })
	for i := 1; i < len(ms); i++ {
		if ms[i].version == ms[i-1].version {
			return nil, fmt.Errorf("postgres: migrations %s and %s share a number", ms[i-1].name, ms[i].name)
		}
	}
	return ms, nil
}

// migrate applies the migrations the database lacks, each in its own
// transaction, on a connection of its own that holds the migration lock.
// The lock is a session lock: closing the connection releases it, even
// when the unlock itself cannot be sent.
func migrate(ctx context.Context, cc *pgx.ConnConfig) error {
	ms, err := loadMigrations()
	if err != nil {
		return err
	}
	conn, err := pgx.ConnectConfig(ctx, cc.Copy())
	if err != nil {
		return wrap(err, "connect")
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, migrationLock); err != nil {
		return wrap(err, "migrations: lock")
	}
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    integer     NOT NULL PRIMARY KEY,
		applied_at timestamptz NOT NULL DEFAULT now()
	)`); err != nil {
		return wrap(err, "migrations: create schema_migrations")
	}
	var current int
	if err := conn.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
		return wrap(err, "migrations: read version")
	}
	if latest := ms[len(ms)-1].version; current > latest {
		return fmt.Errorf("postgres: database schema version %d is newer than this build knows (%d): upgrade sessiond", current, latest)
	}
	for _, m := range ms {
		if m.version <= current {
			continue
		}
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, m.sql); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version) VALUES ($1)`, m.version)
			return err
		})
		if err != nil {
			return wrap(err, "migration %s", m.name)
		}
	}
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_unlock($1)`, migrationLock); err != nil {
		return wrap(err, "migrations: unlock")
	}
	return nil
}

// wrap adds context to err and marks it as sessiond.ErrUnavailable when
// the database did not answer, as opposed to refusing a statement.
func wrap(err error, format string, args ...any) error {
	what := fmt.Sprintf(format, args...)
	if unavailable(err) {
		return fmt.Errorf("postgres: %s: %w: %w", what, sessiond.ErrUnavailable, err)
	}
	return fmt.Errorf("postgres: %s: %w", what, err)
}

// unavailable reports whether err means that the database did not answer
// or cannot serve now, so that a later try may succeed.
func unavailable(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case strings.HasPrefix(pe.Code, "08"), // connection exception
			strings.HasPrefix(pe.Code, "53"),  // insufficient resources: too many connections, disk full
			strings.HasPrefix(pe.Code, "57P"), // shutting down, cannot connect now
			pe.Code == "57014",                // statement timeout or cancel
			pe.Code == "25006":                // read-only transaction: a standby, during a failover
			return true
		}
		return false
	}
	var ce *pgconn.ConnectError
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) ||
		pgconn.Timeout(err) || pgconn.SafeToRetry(err) ||
		errors.As(err, &ce) || errors.As(err, &ne) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed)
}
