package redis_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/sessiond/sessiond"
	"github.com/sessiond/sessiond/redis"
	"github.com/sessiond/sessiond/redis/redistest"
)

func randomID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// testSession returns a live session of userID with realistic values.
func testSession(userID string, now time.Time) *sessiond.Session {
	return &sessiond.Session{
		ID:          randomID(),
		UserID:      userID,
		DeviceID:    "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
		Device:      "Chrome on Windows",
		DeviceClass: sessiond.ClassDesktop,
		IPAddress:   "203.0.113.42",
		Location:    "Lagos, Nigeria",
		CreatedAt:   now,
		LastActive:  now,
		ExpiresAt:   now.Add(14 * 24 * time.Hour),
		Generation:  1,
		RotatedAt:   now,
	}
}

func create(t testing.TB, st *redis.Store, s *sessiond.Session) {
	t.Helper()
	if _, err := st.Create(context.Background(), s, sessiond.SessionCap{}, time.Now()); err != nil {
		t.Fatalf("Create: %v", err)
	}
}

// calls returns how many times srv has run cmd (INFO commandstats).
func calls(t testing.TB, srv *redistest.Server, cmd string) int {
	t.Helper()
	info := srv.MustDo("INFO", "commandstats")
	m := regexp.MustCompile(`cmdstat_` + cmd + `:calls=(\d+)`).FindStringSubmatch(info)
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

func TestGetReadsThroughTheCache(t *testing.T) {
	srv := redistest.Start(t)
	st := newStore(t, redis.Options{URL: srv.URL()})
	s := testSession(randomID(), time.Now())
	create(t, st, s)
	// This instance created s moments ago: it reads it from Redis for a
	// while. Another instance reads it through its cache at once.
	other := newStore(t, redis.Options{URL: srv.URL()})
	before := calls(t, srv, "hmget")
	for range 100 {
		if _, err := other.Get(context.Background(), s.UserID, s.ID, time.Now()); err != nil {
			t.Fatalf("Get: %v", err)
		}
	}
	if got := calls(t, srv, "hmget") - before; got != 1 {
		t.Fatalf("HMGETs for 100 cached Gets: got %d, want 1", got)
	}

	strict := newStore(t, redis.Options{URL: srv.URL(), Strict: true})
	before = calls(t, srv, "hmget")
	for range 10 {
		if _, err := strict.Get(context.Background(), s.UserID, s.ID, time.Now()); err != nil {
			t.Fatalf("strict Get: %v", err)
		}
	}
	if got := calls(t, srv, "hmget") - before; got != 10 {
		t.Fatalf("HMGETs for 10 strict Gets: got %d, want 10", got)
	}
}

// waitNotFound polls st.Get until it reports ErrNotFound and returns how
// long that took; it fails the test after limit.
func waitNotFound(t *testing.T, st *redis.Store, s *sessiond.Session, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		_, err := st.Get(context.Background(), s.UserID, s.ID, time.Now())
		if errors.Is(err, sessiond.ErrNotFound) {
			return time.Since(start)
		}
		if err != nil {
			t.Fatalf("Get: got %v, want the session or ErrNotFound", err)
		}
		if time.Since(start) > limit {
			t.Fatalf("Get still returns the revoked session after %s", limit)
		}
		time.Sleep(100 * time.Microsecond)
	}
}

func TestRevocationAcrossInstances(t *testing.T) {
	srv := redistest.Start(t)
	a := newStore(t, redis.Options{URL: srv.URL()})
	b := newStore(t, redis.Options{URL: srv.URL()})
	strict := newStore(t, redis.Options{URL: srv.URL(), Strict: true})
	// Sessions come from a third instance, so that neither a nor b has
	// written them (a writer reads them from Redis for a few seconds).
	creator := newStore(t, redis.Options{URL: srv.URL()})
	ctx := context.Background()

	for _, revoke := range []struct {
		name string
		fn   func(s *sessiond.Session) error
	}{
		{"revoke", func(s *sessiond.Session) error { return a.Revoke(ctx, s.UserID, s.ID) }},
		{"revoke all", func(s *sessiond.Session) error { _, err := a.RevokeAll(ctx, s.UserID); return err }},
		{"revoke others", func(s *sessiond.Session) error { _, err := a.RevokeOthers(ctx, s.UserID, "x"); return err }},
		{"evict", func(s *sessiond.Session) error {
			_, err := a.Create(ctx, testSession(s.UserID, time.Now()), sessiond.SessionCap{Max: 1, Policy: sessiond.PolicyEvict}, time.Now())
			return err
		}},
		{"replace", func(s *sessiond.Session) error { create(t, a, testSession(s.UserID, time.Now())); return nil }},
	} {
		t.Run(revoke.name, func(t *testing.T) {
			s := testSession(randomID(), time.Now())
			create(t, creator, s)
			// a and b hold a copy in their caches, strict none.
			for _, st := range []*redis.Store{a, b, strict} {
				for range 2 {
					if _, err := st.Get(ctx, s.UserID, s.ID, time.Now()); err != nil {
						t.Fatalf("Get before revoke: %v", err)
					}
				}
			}
			if err := revoke.fn(s); err != nil {
				t.Fatalf("%s: %v", revoke.name, err)
			}
			// The revoking instance and a strict one refuse at once.
			for name, st := range map[string]*redis.Store{"revoking": a, "strict": strict} {
				if got, err := st.Get(ctx, s.UserID, s.ID, time.Now()); !errors.Is(err, sessiond.ErrNotFound) {
					t.Fatalf("%s instance: Get right after %s: got (%v, %v), want ErrNotFound", name, revoke.name, got, err)
				}
			}
			// Another instance drops its copy when the invalidation arrives.
			d := waitNotFound(t, b, s, time.Second)
			t.Logf("other instance refused it after %s", d)
		})
	}
}

func TestRotateIsSeenAtOnceByTheRotatingInstance(t *testing.T) {
	srv := redistest.Start(t)
	a := newStore(t, redis.Options{URL: srv.URL()})
	b := newStore(t, redis.Options{URL: srv.URL()})
	ctx := context.Background()
	s := testSession(randomID(), time.Now())
	create(t, b, s)
	for gen := uint64(1); gen <= 50; gen++ {
		// a holds generation gen in its cache.
		if got, err := a.Get(ctx, s.UserID, s.ID, time.Now()); err != nil || got.Generation != gen {
			t.Fatalf("Get before rotate %d: got (%v, %v)", gen, got, err)
		}
		if _, err := a.Rotate(ctx, s.UserID, s.ID, gen, time.Now(), time.Now().Add(time.Hour)); err != nil {
			t.Fatalf("Rotate(from %d): %v", gen, err)
		}
		got, err := a.Get(ctx, s.UserID, s.ID, time.Now())
		if err != nil {
			t.Fatalf("Get right after Rotate(from %d): %v", gen, err)
		}
		if got.Generation != gen+1 {
			t.Fatalf("Get right after Rotate(from %d): got generation %d, want %d", gen, got.Generation, gen+1)
		}
	}
}

func TestCacheIsFlushedWhenItsConnectionDrops(t *testing.T) {
	srv := redistest.Start(t)
	a := newStore(t, redis.Options{URL: srv.URL()})
	b := newStore(t, redis.Options{URL: srv.URL()})
	ctx := context.Background()
	s := testSession(randomID(), time.Now())
	create(t, a, s)
	if _, err := b.Get(ctx, s.UserID, s.ID, time.Now()); err != nil {
		t.Fatalf("Get: %v", err)
	}
	// Kill every client connection: b's tracking state on the server dies
	// with it, so no invalidation will ever come for the revocation below.
	srv.MustDo("CLIENT", "KILL", "TYPE", "normal")
	deadline := time.Now().Add(time.Second)
	for {
		err := a.Revoke(ctx, s.UserID, s.ID)
		if err == nil {
			break
		}
		if !errors.Is(err, sessiond.ErrUnavailable) || time.Now().After(deadline) {
			t.Fatalf("Revoke after CLIENT KILL: %v", err)
		}
	}
	// b must not serve its old copy (it would for CacheTTL, a minute, if
	// the cache had survived the connection).
	waitNotFound(t, b, s, time.Second)
}

func TestRedisDown(t *testing.T) {
	srv := redistest.Start(t, redistest.WithConfig("appendonly", "yes", "appendfsync", "always"))
	o := redis.Options{URL: srv.URL(), Timeout: redis.DefaultTimeout}
	st := newStore(t, o)
	ctx := context.Background()
	s := testSession(randomID(), time.Now())
	create(t, st, s)
	other := newStore(t, o)
	if _, err := other.Get(ctx, s.UserID, s.ID, time.Now()); err != nil {
		t.Fatalf("Get: %v", err)
	}

	srv.Kill()
	for name, st := range map[string]*redis.Store{"creating": st, "caching": other} {
		waitUnavailable(t, name, st, s)
		// Once the connection's end is read, the cache is flushed: nothing
		// is served from it any more.
		if got, err := st.Get(ctx, s.UserID, s.ID, time.Now()); !errors.Is(err, sessiond.ErrUnavailable) || got != nil {
			t.Fatalf("%s instance: Get again with Redis down: got (%v, %v), want ErrUnavailable", name, got, err)
		}
	}
	for name, err := range map[string]error{
		"Ping":   st.Ping(ctx),
		"Revoke": st.Revoke(ctx, s.UserID, randomID()),
		"Touch":  st.Touch(ctx, s.UserID, s.ID, time.Now(), time.Now().Add(time.Hour)),
	} {
		if !errors.Is(err, sessiond.ErrUnavailable) {
			t.Fatalf("%s with Redis down: got %v, want ErrUnavailable", name, err)
		}
	}
	_, err := st.List(ctx, s.UserID, time.Now())
	if !errors.Is(err, sessiond.ErrUnavailable) {
		t.Fatalf("List with Redis down: got %v, want ErrUnavailable", err)
	}

	// The same stores recover once Redis is back (the AOF kept s).
	srv.Start()
	for name, st := range map[string]*redis.Store{"creating": st, "caching": other} {
		deadline := time.Now().Add(5 * time.Second)
		for {
			got, err := st.Get(ctx, s.UserID, s.ID, time.Now())
			if err == nil && got.ID == s.ID {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s instance: Get after restart: got (%v, %v), want the session", name, got, err)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// waitUnavailable waits until Get of s on st fails with ErrUnavailable,
// Redis having died. Until this process reads the end of its connection,
// a copy in the client-side cache may still answer, as it would until an
// invalidation arrives, but only with s itself: never "not found", never
// for longer than a moment, and no call may outlast the store's deadline.
func waitUnavailable(t *testing.T, name string, st *redis.Store, s *sessiond.Session) {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(time.Second)
	for served := 0; ; served++ {
		start := time.Now()
		got, err := st.Get(ctx, s.UserID, s.ID, time.Now())
		took := time.Since(start)
		if took > time.Second {
			t.Fatalf("%s instance: Get with Redis down took %s, want about the 100ms deadline", name, took)
		}
		if err != nil {
			if !errors.Is(err, sessiond.ErrUnavailable) || errors.Is(err, sessiond.ErrNotFound) || got != nil {
				t.Fatalf("%s instance: Get with Redis down: got (%v, %v), want ErrUnavailable", name, got, err)
			}
			t.Logf("%s instance: Get with Redis down failed after %s (%d answers from the cache before): %v", name, took, served, err)
			return
		}
		if got.ID != s.ID || got.UserID != s.UserID {
			t.Fatalf("%s instance: Get with Redis down: got session %q of %q, want %q", name, got.ID, got.UserID, s.ID)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s instance: Get still answered from the cache %d times over 1s after Redis died", name, served+1)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestSlowRedisIsUnavailable(t *testing.T) {
	srv := redistest.Start(t)
	st := newStore(t, redis.Options{URL: srv.URL(), Strict: true, Timeout: 50 * time.Millisecond})
	ctx := context.Background()
	s := testSession(randomID(), time.Now())
	create(t, st, s)
	srv.MustDo("CLIENT", "PAUSE", "500", "ALL")
	start := time.Now()
	got, err := st.Get(ctx, s.UserID, s.ID, time.Now())
	if !errors.Is(err, sessiond.ErrUnavailable) || got != nil {
		t.Fatalf("Get from a paused Redis: got (%v, %v), want ErrUnavailable", got, err)
	}
	if took := time.Since(start); took > time.Second {
		t.Fatalf("Get from a paused Redis took %s, want about the 50ms deadline", took)
	}
}

func TestCacheIsDroppedWhenRedisHangs(t *testing.T) {
	srv := redistest.Start(t)
	o := redis.Options{URL: srv.URL(), Timeout: redis.DefaultTimeout, ConnWriteTimeout: 500 * time.Millisecond}
	creator := newStore(t, o)
	st := newStore(t, o)
	ctx := context.Background()
	s := testSession(randomID(), time.Now())
	create(t, creator, s)
	if _, err := st.Get(ctx, s.UserID, s.ID, time.Now()); err != nil {
		t.Fatalf("Get: %v", err)
	}
	// A hung Redis sends no FIN and no invalidation: the keep-alive ping
	// (every second when idle) must find it and drop the cached copy.
	srv.Freeze()
	defer srv.Thaw()
	start := time.Now()
	for {
		got, err := st.Get(ctx, s.UserID, s.ID, time.Now())
		if err != nil {
			if !errors.Is(err, sessiond.ErrUnavailable) {
				t.Fatalf("Get from a hung Redis: got %v, want ErrUnavailable", err)
			}
			t.Logf("cached copy dropped %s after Redis hung", time.Since(start).Round(time.Millisecond))
			return
		}
		if got == nil || time.Since(start) > 5*time.Second {
			t.Fatalf("Get from a hung Redis still served the cached copy after %s", time.Since(start))
		}
		time.Sleep(20 * time.Millisecond)
	}
}
