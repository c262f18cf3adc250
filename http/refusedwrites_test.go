package http_test

import (
	"net/http"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/sessiond/sessiond/internal/freeport"
	"github.com/sessiond/sessiond/internal/sessiondtest"
	"github.com/sessiond/sessiond/redis"
	"github.com/sessiond/sessiond/redis/redistest"
)

// TestRefusedWritesAre503AndNotReady serves the API on a store that
// accepts reads but refuses writes, for real: a Redis whose
// min-replicas-to-write cannot be met (NOREPLICAS), the embedded store
// on a full disk (a small tmpfs the test mounts; it needs root), and a
// Redis made a replica of another (READONLY). Then
// /readyz turns 503 within its probe interval, and every sign-in is
// answered 503 with Retry-After whatever the password, never 401 or 200;
// once writes are accepted again, /readyz is 200 and sign-ins are
// answered as usual. Before, /readyz stayed 200 and wrong passwords got
// 401 without limit while the right one got 503.
func TestRefusedWritesAre503AndNotReady(t *testing.T) {
	const probeInterval = 2 * time.Second
	for _, tt := range []struct {
		name  string
		start func(t *testing.T) (o sessiondtest.Options, refuse, accept func())
	}{
		{"redis NOREPLICAS", func(t *testing.T) (sessiondtest.Options, func(), func()) {
			r := redistest.Start(t)
			return sessiondtest.OnRedis(t, sessiondtest.Options{}, redis.Options{URL: r.URL()}),
				func() { r.MustDo("CONFIG", "SET", "min-replicas-to-write", "1") },
				func() { r.MustDo("CONFIG", "SET", "min-replicas-to-write", "0") }
		}},
		{"redis READONLY", func(t *testing.T) (sessiondtest.Options, func(), func()) {
			// A replica of a primary that never answers: read-only, and
			// it never syncs, which would replace its data (the session
			// of the test) with the primary's.
			r := redistest.Start(t)
			nobody, err := freeport.Port()
			if err != nil {
				t.Fatal(err)
			}
			return sessiondtest.OnRedis(t, sessiondtest.Options{}, redis.Options{URL: r.URL()}),
				func() { r.MustDo("REPLICAOF", "127.0.0.1", strconv.Itoa(nobody)) },
				func() { r.MustDo("REPLICAOF", "NO", "ONE") }
		}},
		{"sqlite disk full", func(t *testing.T) (sessiondtest.Options, func(), func()) {
			disk := sessiondtest.MountFullDisk(t)
			db := filepath.Join(disk.Dir, "sessiond.db")
			return sessiondtest.Options{DB: sessiondtest.OpenSQLiteAt(t, db)},
				func() { disk.Fill(t, db) },
				func() { disk.Free(t) }
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			o, refuse, accept := tt.start(t)
			ts := sessiondtest.StartServer(t, o, nil)
			c := sessiondtest.NewClient(t, ts.URL)
			c.Register("uma")
			g := c.Login("uma", nil)
			c.WaitReadyz(t, http.StatusOK, probeInterval)

			refuse()
			refused := time.Now()
			c.WaitReadyz(t, http.StatusServiceUnavailable, probeInterval+time.Second)
			t.Logf("/readyz 503 after %s", time.Since(refused).Round(time.Millisecond))
			for i := range 15 {
				password := wrongPassword
				if i%5 == 4 {
					password = sessiondtest.Password
				}
				r := c.Attempt("uma", password)
				if r.StatusCode != http.StatusServiceUnavailable || r.Header.Get("Retry-After") == "" {
					t.Fatalf("sign-in %d while writes are refused: got %d (Retry-After %q), want 503 with Retry-After: %s",
						i+1, r.StatusCode, r.Header.Get("Retry-After"), r.Body)
				}
			}

			// Every other throttle fails closed too.
			for what, r := range map[string]*sessiondtest.Response{
				"a forged refresh": c.PostRefresh(forgeRefresh(g.RefreshToken)),
				"a registration": c.Do("POST", "/api/v1/auth/register", "", map[string]string{
					"username": "newcomer", "email": "newcomer@example.com", "password": sessiondtest.Password,
				}),
				"a wrong current password": c.Do("POST", "/api/v1/auth/password", g.AccessToken, map[string]any{
					"current_password": wrongPassword, "new_password": "another good password",
				}),
				"a revocation of an unknown session": c.Do("DELETE", "/api/v1/sessions/"+randomSessionID(), g.AccessToken, nil),
			} {
				if r.StatusCode != http.StatusServiceUnavailable || r.Header.Get("Retry-After") == "" {
					t.Fatalf("%s while writes are refused: got %d (Retry-After %q), want 503 with Retry-After: %s",
						what, r.StatusCode, r.Header.Get("Retry-After"), r.Body)
				}
			}

			accept()
			c.WaitReadyz(t, http.StatusOK, probeInterval+time.Second)
			c.Attempt("uma", wrongPassword).Expect(t, http.StatusUnauthorized)
			c.Attempt("uma", sessiondtest.Password).Expect(t, http.StatusOK)
		})
	}
}
