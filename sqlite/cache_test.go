package sqlite

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/sessiond/sessiond"
)

// openTestDB opens a database in a temporary directory, closed when the
// test ends.
func openTestDB(t *testing.T) *DB {
	t.Helper()
	db, err := Open(filepath.Join(t.TempDir(), "sessiond.db"))
	if err != nil {
		t.Fatalf("Open: got error %v, want nil", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// checkNow runs a data_version check, so the cache is trusted for a while.
func checkNow(t *testing.T, c *sessionCache) {
	t.Helper()
	for !c.checking.CompareAndSwap(false, true) {
		time.Sleep(time.Millisecond)
	}
	defer c.checking.Store(false)
	if err := c.check(context.Background()); err != nil {
		t.Fatalf("check: got error %v, want nil", err)
	}
}

func testSession(id string, now time.Time) *sessiond.Session {
	return &sessiond.Session{
		ID: id, UserID: "u1", Device: "curl", DeviceClass: sessiond.ClassCLI,
		CreatedAt: now, LastActive: now, ExpiresAt: now.Add(time.Hour), Generation: 1, RotatedAt: now,
	}
}

// A Get that read the database before a revoke committed and reaches the
// cache after the revoke returned must not put its stale copy back.
func TestStaleReadIsNotCachedAfterRevoke(t *testing.T) {
	db := openTestDB(t)
	st := NewSessionStore(db)
	ctx := context.Background()
	now := time.Now()
	if _, err := st.Create(ctx, testSession("s1", now), sessiond.SessionCap{}, now); err != nil {
		t.Fatalf("Create: got error %v, want nil", err)
	}

	c := db.sessions
	gen := c.generation()
	stale, err := scanSession(db.read.QueryRowContext(ctx, `SELECT `+sessionColumns+` FROM sessions WHERE id = 's1'`))
	if err != nil {
		t.Fatalf("read: got error %v, want nil", err)
	}
	if err := st.Revoke(ctx, "u1", "s1"); err != nil {
		t.Fatalf("Revoke: got error %v, want nil", err)
	}
	c.put(gen, stale) // the racing Get finishes

	checkNow(t, c)
	if got, err := st.Get(ctx, "u1", "s1", now); !errors.Is(err, sessiond.ErrNotFound) {
		t.Fatalf("Get after Revoke: got (%v, %v), want ErrNotFound", got, err)
	}
}

// This process's own writes invalidate only what they change: they do not
// move PRAGMA data_version on the writer connection, so they never flush the
// whole cache.
func TestOwnWritesKeepOtherSessionsCached(t *testing.T) {
	db := openTestDB(t)
	st := NewSessionStore(db)
	ctx := context.Background()
	now := time.Now()
	for _, id := range []string{"s1", "s2"} {
		if _, err := st.Create(ctx, testSession(id, now), sessiond.SessionCap{}, now); err != nil {
			t.Fatalf("Create: got error %v, want nil", err)
		}
	}
	checkNow(t, db.sessions)
	for _, id := range []string{"s1", "s2"} {
		if _, err := st.Get(ctx, "u1", id, now); err != nil {
			t.Fatalf("Get(%s): got error %v, want nil", id, err)
		}
	}
	if n := db.sessions.len(); n != 2 {
		t.Fatalf("cached sessions: got %d, want 2", n)
	}

	if err := st.Touch(ctx, "u1", "s1", now.Add(time.Minute), now.Add(time.Hour)); err != nil {
		t.Fatalf("Touch: got error %v, want nil", err)
	}
	if err := NewUserStore(db).CreateUser(ctx, &sessiond.User{ID: "u1", Username: "a", Email: "a@example.com", PasswordHash: "h", CreatedAt: now}); err != nil {
		t.Fatalf("CreateUser: got error %v, want nil", err)
	}
	checkNow(t, db.sessions)
	if got := db.sessions.get(cacheKey{"u1", "s2"}); got == nil {
		t.Fatalf("cached s2 after this process's writes: got none, want it kept")
	}
	if got := db.sessions.get(cacheKey{"u1", "s1"}); got != nil {
		t.Fatalf("cached s1 after Touch: got %v, want it dropped", got)
	}
}

func TestCacheIsBounded(t *testing.T) {
	db := openTestDB(t)
	c := db.sessions
	c.max = 3
	now := time.Now()
	for i := range 10 {
		c.put(c.generation(), testSession(string(rune('a'+i)), now))
	}
	if n := c.len(); n != 3 {
		t.Fatalf("cached sessions with a bound of 3: got %d, want 3", n)
	}
}
