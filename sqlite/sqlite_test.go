package sqlite_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sessiond/sessiond"
	"github.com/sessiond/sessiond/sqlite"
	"github.com/sessiond/sessiond/storetest"
)

// openDB opens a new database file in a temporary directory, closed when
// the test ends.
func openDB(t *testing.T) (*sqlite.DB, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "sessiond.db")
	db := openPath(t, path)
	return db, path
}

// openPath opens the database at path, closed when the test ends.
func openPath(t *testing.T, path string) *sqlite.DB {
	t.Helper()
	db, err := sqlite.Open(path)
	if err != nil {
		t.Fatalf("Open(%s): got error %v, want nil", path, err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Errorf("Close: got error %v, want nil", err)
		}
	})
	return db
}

func TestSessionStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) sessiond.SessionStore {
		db, _ := openDB(t)
		return sqlite.NewSessionStore(db)
	})
}

func TestUserStore(t *testing.T) {
	storetest.RunUsers(t, func(t *testing.T) sessiond.UserStore {
		db, _ := openDB(t)
		return sqlite.NewUserStore(db)
	})
}

func TestLimiter(t *testing.T) {
	storetest.RunLimiter(t, func(t *testing.T) sessiond.Limiter {
		db, _ := openDB(t)
		return sqlite.NewLimiter(db)
	})
}

func TestActivityStore(t *testing.T) {
	storetest.RunActivity(t, func(t *testing.T) sessiond.ActivityStore {
		db, _ := openDB(t)
		return sqlite.NewActivityStore(db)
	})
}

func TestPragmas(t *testing.T) {
	db, _ := openDB(t)
	ctx := context.Background()
	for _, tt := range []struct{ pragma, want string }{
		{"journal_mode", "wal"},
		{"synchronous", "2"}, // FULL
		{"foreign_keys", "1"},
		{"busy_timeout", "5000"},
	} {
		w, r, err := db.Pragmas(ctx, tt.pragma)
		if err != nil {
			t.Fatalf("PRAGMA %s: got error %v, want nil", tt.pragma, err)
		}
		if w != tt.want {
			t.Errorf("PRAGMA %s on the writer: got %q, want %q", tt.pragma, w, tt.want)
		}
		if r != tt.want {
			t.Errorf("PRAGMA %s on a reader: got %q, want %q", tt.pragma, r, tt.want)
		}
	}
}

// newLiveSession returns a session of userID that is live for two weeks.
func newLiveSession(userID, id string, now time.Time) *sessiond.Session {
	return &sessiond.Session{
		ID: id, UserID: userID, Device: "curl", DeviceClass: sessiond.ClassCLI,
		CreatedAt: now, LastActive: now, ExpiresAt: now.Add(14 * 24 * time.Hour),
		Generation: 1, RotatedAt: now,
	}
}

// mustCreate creates a live session and fails the test on error.
func mustCreate(t *testing.T, st *sqlite.SessionStore, userID, id string, now time.Time) *sessiond.Session {
	t.Helper()
	s := newLiveSession(userID, id, now)
	if _, err := st.Create(context.Background(), s, sessiond.SessionCap{}, now); err != nil {
		t.Fatalf("Create(%s): got error %v, want nil", id, err)
	}
	return s
}

// waitFor polls cond every 10 ms until it holds or d passes, and reports
// how long it took.
func waitFor(d time.Duration, cond func() bool) (time.Duration, bool) {
	start := time.Now()
	for {
		if cond() {
			return time.Since(start), true
		}
		if time.Since(start) > d {
			return time.Since(start), false
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestCacheServesRepeatedGets(t *testing.T) {
	db, _ := openDB(t)
	st := sqlite.NewSessionStore(db)
	ctx := context.Background()
	now := time.Now()
	mustCreate(t, st, "u1", "s1", now)

	// A Get may skip the cache until the first data_version check has run;
	// within a second the session must be cached.
	_, ok := waitFor(time.Second, func() bool {
		if _, err := st.Get(ctx, "u1", "s1", now); err != nil {
			t.Fatalf("Get: got error %v, want nil", err)
		}
		return db.CachedSessions() == 1
	})
	if !ok {
		t.Fatalf("cached sessions after repeated Gets: got %d, want 1", db.CachedSessions())
	}
	if err := st.Revoke(ctx, "u1", "s1"); err != nil {
		t.Fatalf("Revoke: got error %v, want nil", err)
	}
	if n := db.CachedSessions(); n != 0 {
		t.Fatalf("cached sessions after Revoke: got %d, want 0", n)
	}
}

func TestWriteByAnotherProcessReachesCachedGet(t *testing.T) {
	db1, path := openDB(t)
	db2 := openPath(t, path) // a second process on the same file
	st1, st2 := sqlite.NewSessionStore(db1), sqlite.NewSessionStore(db2)
	ctx := context.Background()
	now := time.Now()
	revoked := mustCreate(t, st1, "u1", "revoked", now)
	renamed := mustCreate(t, st1, "u1", "renamed", now)

	// Warm this process's cache.
	if _, ok := waitFor(time.Second, func() bool {
		for _, id := range []string{revoked.ID, renamed.ID} {
			if _, err := st1.Get(ctx, "u1", id, now); err != nil {
				t.Fatalf("Get(%s): got error %v, want nil", id, err)
			}
		}
		return db1.CachedSessions() == 2
	}); !ok {
		t.Fatalf("cached sessions: got %d, want 2", db1.CachedSessions())
	}

	if err := st2.Revoke(ctx, "u1", revoked.ID); err != nil {
		t.Fatalf("Revoke on the other DB: got error %v, want nil", err)
	}
	name := "renamed elsewhere"
	if _, err := st2.Update(ctx, "u1", renamed.ID, sessiond.SessionChange{Name: &name}); err != nil {
		t.Fatalf("Rename on the other DB: got error %v, want nil", err)
	}
	took, ok := waitFor(time.Second, func() bool {
		_, err := st1.Get(ctx, "u1", revoked.ID, now)
		if err != nil && !errors.Is(err, sessiond.ErrNotFound) {
			t.Fatalf("Get(revoked): got error %v, want nil or ErrNotFound", err)
		}
		return errors.Is(err, sessiond.ErrNotFound)
	})
	if !ok {
		t.Fatalf("Get after a revoke by another process: still found after %s, want ErrNotFound within 1s", took)
	}
	s, err := st1.Get(ctx, "u1", renamed.ID, now)
	if err != nil {
		t.Fatalf("Get(renamed): got error %v, want nil", err)
	}
	if s.Name != "renamed elsewhere" {
		t.Fatalf("Get after a rename by another process: got name %q, want %q", s.Name, "renamed elsewhere")
	}
	t.Logf("revocation by another process seen after %s", took)
}

// TestRevokedNeverReturnedUnderConcurrentGets checks that once Revoke has
// returned, no Get that starts afterwards returns the session, even while
// other Gets race to repopulate the cache.
func TestRevokedNeverReturnedUnderConcurrentGets(t *testing.T) {
	db, _ := openDB(t)
	st := sqlite.NewSessionStore(db)
	ctx := context.Background()
	now := time.Now()
	const rounds, readers = 30, 4

	for round := range rounds {
		id := fmt.Sprintf("s%d", round)
		mustCreate(t, st, "u1", id, now)
		var revoked atomic.Bool
		var stale atomic.Int64
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for range readers {
			wg.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
					}
					after := revoked.Load()
					_, err := st.Get(ctx, "u1", id, now)
					if err == nil && after {
						stale.Add(1)
					}
				}
			})
		}
		time.Sleep(time.Millisecond) // let the readers fill the cache
		if err := st.Revoke(ctx, "u1", id); err != nil {
			t.Fatalf("Revoke: got error %v, want nil", err)
		}
		revoked.Store(true)
		time.Sleep(time.Millisecond)
		close(stop)
		wg.Wait()
		if n := stale.Load(); n != 0 {
			t.Fatalf("round %d: Gets that started after Revoke returned and found the session: got %d, want 0", round, n)
		}
	}
}

func TestReopenKeepsData(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sessiond.db")
	ctx := context.Background()
	now := time.Now()

	db, err := sqlite.Open(path)
	if err != nil {
		t.Fatalf("Open: got error %v, want nil", err)
	}
	mustCreate(t, sqlite.NewSessionStore(db), "u1", "s1", now)
	u := &sessiond.User{ID: "u1", Username: "alice", Email: "alice@example.com", PasswordHash: "h", CreatedAt: now}
	if err := sqlite.NewUserStore(db).CreateUser(ctx, u); err != nil {
		t.Fatalf("CreateUser: got error %v, want nil", err)
	}
	if err := db.Close(); err != nil {
		t.Fatalf("Close: got error %v, want nil", err)
	}
	if err := db.Close(); err != nil {
		t.Fatalf("second Close: got error %v, want nil", err)
	}

	// Migrations already applied are not applied again.
	db = openPath(t, path)
	if _, err := sqlite.NewSessionStore(db).Get(ctx, "u1", "s1", now); err != nil {
		t.Fatalf("Get after reopening: got error %v, want nil", err)
	}
	if _, err := sqlite.NewUserStore(db).UserByLogin(ctx, "ALICE"); err != nil {
		t.Fatalf("UserByLogin after reopening: got error %v, want nil", err)
	}
}

func TestConcurrentOpensOfANewFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sessiond.db")
	const n = 4
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			db, err := sqlite.Open(path)
			if err == nil {
				err = db.Close()
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
}

func TestClosedStoreIsUnavailable(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sessiond.db")
	db, err := sqlite.Open(path)
	if err != nil {
		t.Fatalf("Open: got error %v, want nil", err)
	}
	st := sqlite.NewSessionStore(db)
	if err := db.Close(); err != nil {
		t.Fatalf("Close: got error %v, want nil", err)
	}
	err = st.Ping(context.Background())
	if !errors.Is(err, sessiond.ErrUnavailable) {
		t.Fatalf("Ping after Close: got error %v, want ErrUnavailable", err)
	}
	_, err = st.Get(context.Background(), "u1", "s1", time.Now())
	if !errors.Is(err, sessiond.ErrUnavailable) {
		t.Fatalf("Get after Close: got error %v, want ErrUnavailable", err)
	}
}

func TestDeleteExpiredInBatches(t *testing.T) {
	sqlite.SetDeleteBatch(t, 3)
	db, _ := openDB(t)
	st := sqlite.NewSessionStore(db)
	ctx := context.Background()
	now := time.Now()
	for i := range 10 {
		s := newLiveSession("u1", fmt.Sprintf("expired%d", i), now)
		s.ExpiresAt = now.Add(time.Minute)
		if _, err := st.Create(ctx, s, sessiond.SessionCap{}, now); err != nil {
			t.Fatalf("Create: got error %v, want nil", err)
		}
	}
	mustCreate(t, st, "u1", "live", now)

	n, err := st.DeleteExpired(ctx, now.Add(time.Hour))
	if err != nil || n != 10 {
		t.Fatalf("DeleteExpired: got (%d, %v), want (10, nil)", n, err)
	}
	list, err := st.List(ctx, "u1", now)
	if err != nil || len(list) != 1 {
		t.Fatalf("List at the old time: got (%d sessions, %v), want (1, nil)", len(list), err)
	}
}

func TestLimiterSweepsKeysNoLongerUsed(t *testing.T) {
	db, _ := openDB(t)
	l := sqlite.NewLimiter(db)
	ctx := context.Background()
	t0 := time.Now().Truncate(time.Millisecond)
	add := func(key string, window time.Duration, at time.Time) {
		t.Helper()
		if tk, err := l.Take(ctx, []sessiond.Budget{{Key: key, Window: window, N: 100}}, "e", at); err != nil || !tk.OK {
			t.Fatalf("Take: got (%+v, %v), want OK", tk, err)
		}
	}
	for i := range 3 {
		add(fmt.Sprintf("abandoned%d", i), time.Minute, t0)
	}
	add("kept", time.Hour, t0)
	// Two minutes later the abandoned keys' events have expired; a Take of
	// another key removes them.
	add("other", time.Hour, t0.Add(2*time.Minute))
	n, err := db.LimiterEvents(ctx)
	if err != nil || n != 2 {
		t.Fatalf("events left: got (%d, %v), want (2, nil)", n, err)
	}
}

func TestOpenPathWithSpecialCharacters(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a?b#c %d&e=f")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "sessions?.db")
	db := openPath(t, path)
	if err := sqlite.NewUserStore(db).Ping(context.Background()); err != nil {
		t.Fatalf("Ping: got error %v, want nil", err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("database file: got error %v, want it at %s", err, path)
	}
}

// TestUpgradeRefoldsUserKeys: a file written before usernames and emails
// folded ASCII letters only holds keys of a Unicode fold ("\u212Aate"
// stored under "kate"); opening it with this build refolds them, so the
// lookalike no longer matches the ASCII name.
func TestUpgradeRefoldsUserKeys(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sessiond.db")
	db, err := sqlite.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	raw, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`INSERT INTO users (id, username, username_key, email, email_key, password_hash, locked, created_at)
			VALUES ('u1', 'Kate', 'kate', '` + "\u212A" + `ate@example.com', 'kate@example.com', 'x', 0, 0)`,
		`UPDATE schema_version SET version = 1`,
		`ALTER TABLE sessions DROP COLUMN claims`, // as version 1 had it
	} {
		if _, err := raw.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	raw.Close()

	db, err = sqlite.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	users := sqlite.NewUserStore(db)
	ctx := context.Background()
	if u, err := users.UserByLogin(ctx, "kate@example.com"); !errors.Is(err, sessiond.ErrNotFound) {
		t.Fatalf("UserByLogin(kate@example.com) after the upgrade: got (%v, %v), want ErrNotFound", u, err)
	}
	for _, login := range []string{"\u212Aate@example.com", "KATE"} {
		if u, err := users.UserByLogin(ctx, login); err != nil || u.ID != "u1" {
			t.Fatalf("UserByLogin(%q) after the upgrade: got (%v, %v), want u1", login, u, err)
		}
	}
	if err := users.CreateUser(ctx, &sessiond.User{ID: "u2", Username: "kate2", Email: "kate@example.com", PasswordHash: "x"}); err != nil {
		t.Fatalf("CreateUser(kate@example.com) after the upgrade: %v", err)
	}
}

// TestDeleteExpiredSweepsHandoffs: expired handoff records leave the file
// with the expired sessions, in batches, and live ones stay.
func TestDeleteExpiredSweepsHandoffs(t *testing.T) {
	sqlite.SetDeleteBatch(t, 3)
	db, _ := openDB(t)
	st := sqlite.NewSessionStore(db)
	ctx := context.Background()
	now := time.Now()
	for i := range 7 {
		h := sessiond.Handoff{UserID: "u1", SessionID: fmt.Sprint("s", i), ExpiresAt: now.Add(time.Minute)}
		if i == 0 {
			h.ExpiresAt = now.Add(2 * time.Hour)
		}
		if err := st.PutHandoff(ctx, fmt.Sprint("hash", i), h); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.DeleteExpired(ctx, now.Add(time.Hour)); err != nil {
		t.Fatalf("DeleteExpired: %v", err)
	}
	if n, err := db.Handoffs(ctx); err != nil || n != 1 {
		t.Fatalf("handoff records after the sweep: got (%d, %v), want (1, nil)", n, err)
	}
	if h, first, err := st.TakeHandoff(ctx, "hash0", now); err != nil || !first || h.SessionID != "s0" {
		t.Fatalf("take of the live record: got (%v, %v, %v)", h, first, err)
	}
}
