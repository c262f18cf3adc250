package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/sessiond/sessiond"
	"github.com/sessiond/sessiond/sqlite"
)

func benchSessionStore(b *testing.B) (*sqlite.SessionStore, *sessiond.Session) {
	b.Helper()
	db, err := sqlite.Open(filepath.Join(b.TempDir(), "sessiond.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	ctx := context.Background()
	now := time.Now()
	u := &sessiond.User{ID: "user-1", Username: "bench", Email: "bench@example.com", PasswordHash: "x", CreatedAt: now}
	if err := sqlite.NewUserStore(db).CreateUser(ctx, u); err != nil {
		b.Fatal(err)
	}
	st := sqlite.NewSessionStore(db)
	s := &sessiond.Session{
		ID: "session-1", UserID: u.ID, DeviceID: sessiond.DeviceHash(u.ID, "device-1"),
		Device: "Chrome on Windows", DeviceClass: sessiond.ClassDesktop,
		IPAddress: "203.0.113.42", Location: "Lagos, Nigeria",
		CreatedAt: now, LastActive: now, ExpiresAt: now.Add(14 * 24 * time.Hour), Generation: 1, RotatedAt: now,
	}
	if _, err := st.Create(ctx, s, sessiond.Limit{Max: 50}, now); err != nil {
		b.Fatal(err)
	}
	if _, err := st.Get(ctx, s.UserID, s.ID, now); err != nil {
		b.Fatal(err)
	}
	return st, s
}

// BenchmarkGetCached is the per-request session check on SQLite: served
// from the in-process cache, which a PRAGMA data_version check in the
// background keeps honest.
func BenchmarkGetCached(b *testing.B) {
	st, s := benchSessionStore(b)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := st.Get(ctx, s.UserID, s.ID, time.Now()); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGetCachedParallel is BenchmarkGetCached from every core.
func BenchmarkGetCachedParallel(b *testing.B) {
	st, s := benchSessionStore(b)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := st.Get(ctx, s.UserID, s.ID, time.Now()); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
