package sessiond_test

import (
	"context"
	"errors"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sessiond/sessiond"
	"github.com/sessiond/sessiond/internal/sessiondtest"
	"github.com/sessiond/sessiond/redis"
	"github.com/sessiond/sessiond/redis/redistest"
	"github.com/sessiond/sessiond/sqlite"
)

// refusingLimiter is a limiter store that the test makes refuse writes
// for real, and then accept them again.
type refusingLimiter struct {
	name           string
	limiter        func(t *testing.T) sessiond.Limiter
	refuse, accept func(t *testing.T)
}

// refusingLimiters are the ways a real limiter store refuses writes: a
// Redis without the replicas that min-replicas-to-write asks for
// (NOREPLICAS), a Redis turned into a replica (READONLY), a Redis whose
// snapshot failed on a full disk (MISCONF), and a SQLite file on a full
// disk.
func refusingLimiters() []refusingLimiter {
	var (
		srv     *redistest.Server
		disk    *sessiondtest.FullDisk
		primary *redistest.Server
	)
	return []refusingLimiter{
		{
			name: "redis NOREPLICAS",
			limiter: func(t *testing.T) sessiond.Limiter {
				srv = redistest.Start(t)
				return redis.NewLimiter(openRedis(t, srv))
			},
			refuse: func(t *testing.T) { srv.MustDo("CONFIG", "SET", "min-replicas-to-write", "1") },
			accept: func(t *testing.T) { srv.MustDo("CONFIG", "SET", "min-replicas-to-write", "0") },
		},
		{
			name: "redis READONLY",
			limiter: func(t *testing.T) sessiond.Limiter {
				srv, primary = redistest.Start(t), redistest.Start(t)
				return redis.NewLimiter(openRedis(t, srv))
			},
			refuse: func(t *testing.T) { srv.MustDo("REPLICAOF", "127.0.0.1", itoa(primary.Port())) },
			accept: func(t *testing.T) { srv.MustDo("REPLICAOF", "NO", "ONE") },
		},
		{
			// A snapshot that failed for want of disk space: Redis refuses
			// writes until one succeeds.
			name: "redis MISCONF",
			limiter: func(t *testing.T) sessiond.Limiter {
				srv, disk = redistest.Start(t, redistest.WithConfig("enable-protected-configs", "yes")), sessiondtest.MountFullDisk(t)
				return redis.NewLimiter(openRedis(t, srv))
			},
			refuse: func(t *testing.T) {
				disk.Fill(t, "")
				srv.MustDo("CONFIG", "SET", "dir", disk.Dir)
				srv.MustDo("CONFIG", "SET", "save", "3600 1")
				srv.MustDo("CONFIG", "SET", "stop-writes-on-bgsave-error", "yes")
				srv.MustDo("BGSAVE")
				waitRedisInfo(t, srv, "rdb_last_bgsave_status:err")
			},
			accept: func(t *testing.T) {
				disk.Free(t)
				srv.MustDo("BGSAVE")
				waitRedisInfo(t, srv, "rdb_last_bgsave_status:ok")
			},
		},
		{
			name: "sqlite disk full",
			limiter: func(t *testing.T) sessiond.Limiter {
				disk = sessiondtest.MountFullDisk(t)
				db, err := sqlite.Open(filepath.Join(disk.Dir, "limiter.db"))
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { db.Close() })
				return sqlite.NewLimiter(db)
			},
			refuse: func(t *testing.T) { disk.Fill(t, filepath.Join(disk.Dir, "limiter.db")) },
			accept: func(t *testing.T) { disk.Free(t) },
		},
	}
}

// TestThrottlesFailClosed: while the limiter store refuses writes, no
// attempt is answered unrecorded. The right password and a wrong one both
// get ErrUnavailable (503), as do a wrong current password, a forged
// refresh, an authentic one, a registration and a revocation of an
// unknown session, where a wrong password used to get 401 without limit
// and the right one 503 (an oracle). The sessions and users are in a
// store that accepts writes, so only the throttles can refuse. Once the
// store accepts writes again, everything works.
func TestThrottlesFailClosed(t *testing.T) {
	for _, rl := range refusingLimiters() {
		t.Run(rl.name, func(t *testing.T) {
			m, _ := newManager(t)
			m.SetLimiterForTest(rl.limiter(t))
			ctx := context.Background()
			g := signIn(t, m, "pat")
			rl.refuse(t)
			accepted := false
			defer func() {
				if !accepted {
					rl.accept(t)
				}
			}()

			unavailable := func(what string, err error) {
				t.Helper()
				if !errors.Is(err, sessiond.ErrUnavailable) {
					t.Fatalf("%s while the limiter refuses writes: got %v, want ErrUnavailable", what, err)
				}
			}
			login := func(name, password string) error {
				_, err := m.Login(ctx, sessiond.LoginRequest{Login: name, Password: password, ClientIP: "192.0.2.30"})
				return err
			}
			for range 2 * m.Throttles.LoginAccountIP.N {
				unavailable("a wrong password", login("pat", "wrong password"))
			}
			err := login("pat", "password123")
			unavailable("the right password", err)
			t.Logf("the right password: %v", err)
			unavailable("an unknown user", login("nobody", "password123"))
			_, err = m.ChangePassword(ctx, g.Session, sessiond.ChangePasswordRequest{Current: "wrong password", New: "another password", ClientIP: "192.0.2.30"})
			unavailable("a wrong current password", err)
			_, err = m.ChangePassword(ctx, g.Session, sessiond.ChangePasswordRequest{Current: "password123", New: "another password", ClientIP: "192.0.2.30"})
			unavailable("the right current password", err)
			_, err = m.RefreshSession(ctx, forge(g.RefreshToken), "192.0.2.30")
			unavailable("a forged refresh", err)
			_, err = m.RefreshSession(ctx, g.RefreshToken, "192.0.2.30")
			unavailable("an authentic refresh", err)
			_, err = m.Register(ctx, sessiond.RegisterRequest{Username: "newcomer", Email: "newcomer@example.com", Password: "password123", ClientIP: "192.0.2.30"})
			unavailable("a registration", err)
			unavailable("a revocation of an unknown session", m.Revoke(ctx, g.Session.UserID, "no-such-session", sessiond.ReasonRevoked))

			rl.accept(t)
			accepted = true
			if err := login("pat", "wrong password"); !errors.Is(err, sessiond.ErrInvalidCredentials) {
				t.Fatalf("a wrong password once writes are accepted: got %v, want invalid credentials", err)
			}
			if err := login("pat", "password123"); err != nil {
				t.Fatalf("the right password once writes are accepted: %v", err)
			}
			if _, err := m.RefreshSession(ctx, g.RefreshToken, "192.0.2.30"); err != nil {
				t.Fatalf("a refresh once writes are accepted: %v", err)
			}
		})
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// waitRedisInfo waits until INFO of srv contains want, for at most 10 s.
func waitRedisInfo(t *testing.T, srv *redistest.Server, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(srv.MustDo("INFO", "persistence"), want) {
		if time.Now().After(deadline) {
			t.Fatalf("redis INFO persistence: no %q after 10 s", want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
