package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sessiond/sessiond"
	"github.com/sessiond/sessiond/postgres"
	"github.com/sessiond/sessiond/postgres/pgtest"
	"github.com/sessiond/sessiond/storetest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// open opens a store on url, closed when the test ends.
func open(t *testing.T, url string) *postgres.UserStore {
	t.Helper()
	st, err := postgres.Open(context.Background(), url)
	if err != nil {
		t.Fatalf("Open: got error %v, want nil", err)
	}
	t.Cleanup(st.Close)
	return st
}

func TestUserStore(t *testing.T) {
	storetest.RunUsers(t, func(t *testing.T) sessiond.UserStore {
		return open(t, pgtest.URL(t))
	})
}

// benchUsers creates n users u0..n-1 in a fresh database.
func benchUsers(b *testing.B, n int) *postgres.UserStore {
	b.Helper()
	st, err := postgres.Open(context.Background(), pgtest.URL(b))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(st.Close)
	for i := range n {
		if err := st.CreateUser(context.Background(), benchUser(fmt.Sprint("u", i))); err != nil {
			b.Fatal(err)
		}
	}
	return st
}

func benchUser(name string) *sessiond.User {
	return &sessiond.User{
		ID: "id-" + name, Username: name, Email: name + "@example.com", CreatedAt: time.Now(),
		PasswordHash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaA",
	}
}

// BenchmarkUserByLogin is the read of every login, from parallel clients.
func BenchmarkUserByLogin(b *testing.B) {
	const n = 1000
	st := benchUsers(b, n)
	var next atomic.Int64
	b.SetParallelism(4)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := next.Add(1)
			if _, err := st.UserByLogin(context.Background(), fmt.Sprintf("U%d@EXAMPLE.COM", i%n)); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkCreateUser is the write of every registration, from parallel
// clients.
func BenchmarkCreateUser(b *testing.B) {
	st := benchUsers(b, 0)
	var next atomic.Int64
	b.SetParallelism(4)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := st.CreateUser(context.Background(), benchUser(fmt.Sprint("new", next.Add(1)))); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func TestConcurrentOpensApplyMigrationsOnce(t *testing.T) {
	url := pgtest.URL(t)
	errs := make([]error, 8)
	var wg sync.WaitGroup
	for i := range errs {
		wg.Go(func() {
			st, err := postgres.Open(context.Background(), url)
			if err == nil {
				st.Close()
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Open #%d: got error %v, want nil", i, err)
		}
	}
	var versions []int
	rows, err := pgConn(t, url).Query(context.Background(), `SELECT version FROM schema_migrations ORDER BY version`)
	if err != nil {
		t.Fatal(err)
	}
	versions, err = pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil || !slices.Equal(versions, []int{1, 2}) {
		t.Fatalf("schema_migrations: got %v (%v), want [1 2]", versions, err)
	}
	// A store opened after the others works on the same tables.
	storetest.RunUsers(t, func(t *testing.T) sessiond.UserStore { return open(t, url) })
}

func TestOpenRefusesANewerSchema(t *testing.T) {
	url := pgtest.URL(t)
	open(t, url)
	if _, err := pgConn(t, url).Exec(context.Background(), `INSERT INTO schema_migrations (version) VALUES (999)`); err != nil {
		t.Fatal(err)
	}
	st, err := postgres.Open(context.Background(), url)
	if err == nil {
		st.Close()
		t.Fatal("Open on a schema from a newer build: got nil error")
	}
	if !strings.Contains(err.Error(), "newer") || errors.Is(err, sessiond.ErrUnavailable) {
		t.Fatalf("Open on a schema from a newer build: got %v, want a refusal that is not ErrUnavailable", err)
	}
}

func TestUnreachableDatabaseIsUnavailable(t *testing.T) {
	// A port that refuses connections.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := l.Addr().String()
	l.Close()
	// A server that accepts connections and never answers.
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	for _, tt := range []struct{ name, url string }{
		{"refused", "postgres://u:secret-password@" + refused + "/db?sslmode=disable"},
		{"silent", "postgres://u:secret-password@" + silent.Addr().String() + "/db?sslmode=disable&connect_timeout=1"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			start := time.Now()
			st, err := postgres.Open(ctx, tt.url)
			if err == nil {
				st.Close()
				t.Fatal("Open: got nil error")
			}
			if !errors.Is(err, sessiond.ErrUnavailable) {
				t.Fatalf("Open: got %v, want ErrUnavailable", err)
			}
			if strings.Contains(err.Error(), "secret-password") {
				t.Fatalf("Open: error shows the password: %v", err)
			}
			if d := time.Since(start); d > 4*time.Second {
				t.Fatalf("Open took %v, want the connect timeout to end it", d)
			}
		})
	}
}

func TestClosedOrCutStoreIsUnavailableNeverNotFound(t *testing.T) {
	ctx := context.Background()
	url := pgtest.URL(t)
	st := open(t, url)
	u := &sessiond.User{ID: "cut", Username: "cut", Email: "cut@example.com", PasswordHash: "h", CreatedAt: time.Now()}
	if err := st.CreateUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	// The server ends every connection of the store: the pool notices and
	// reconnects, or the call fails as unavailable, never as not found.
	var dbname string
	admin := pgConn(t, url)
	if err := admin.QueryRow(ctx, `SELECT current_database()`).Scan(&dbname); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()`, dbname); err != nil {
		t.Fatal(err)
	}
	for range 5 {
		if _, err := st.UserByID(ctx, "cut"); err != nil && !errors.Is(err, sessiond.ErrUnavailable) {
			t.Fatalf("UserByID after the server cut the connections: got %v, want nil or ErrUnavailable", err)
		}
	}
	if _, err := st.UserByID(ctx, "cut"); err != nil {
		t.Fatalf("UserByID once reconnected: got %v, want nil", err)
	}

	st.Close()
	if _, err := st.UserByID(ctx, "cut"); !errors.Is(err, sessiond.ErrUnavailable) {
		t.Fatalf("UserByID after Close: got %v, want ErrUnavailable", err)
	}
	if err := st.Ping(ctx); !errors.Is(err, sessiond.ErrUnavailable) {
		t.Fatalf("Ping after Close: got %v, want ErrUnavailable", err)
	}
}

func TestCallsHaveADeadline(t *testing.T) {
	ctx := context.Background()
	url := pgtest.URL(t)
	st := open(t, url)
	st.Timeout = 200 * time.Millisecond
	u := &sessiond.User{ID: "slow", Username: "slow", Email: "slow@example.com", PasswordHash: "h", CreatedAt: time.Now()}
	if err := st.CreateUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	// Another transaction holds the row: the update waits for its lock
	// until the store's deadline.
	tx, err := pgConn(t, url).Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `UPDATE users SET locked = true WHERE id = 'slow'`); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err = st.SetPassword(ctx, "slow", "new")
	if !errors.Is(err, sessiond.ErrUnavailable) {
		t.Fatalf("SetPassword on a locked row: got %v, want ErrUnavailable", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("SetPassword took %v with a 200ms deadline", d)
	}
}

// pgConn connects to url directly, closed when the test ends.
func pgConn(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}
