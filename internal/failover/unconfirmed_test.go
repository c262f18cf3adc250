package failover_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/sessiond/sessiond"
	"github.com/sessiond/sessiond/internal/sessiondtest"
	"github.com/sessiond/sessiond/redis"
	"github.com/sessiond/sessiond/redis/redistest"
)

// TestUnconfirmedChangesAreToldAndNeverAnswered200: with
// SESSIOND_REDIS_REPLICA_ACKS=1 and the only replica cut off, a sign-out
// the master made but no replica confirmed is answered 503 and its end is
// told all the same (the session is gone where every read goes, and its
// device's page must leave); a rotation answered 503 is not handed out
// afterwards by a replay inside the grace window until a replica holds it,
// since a failover would otherwise bring back the generation it
// supersedes.
func TestUnconfirmedChangesAreToldAndNeverAnswered200(t *testing.T) {
	master := redistest.Start(t)
	replica := redistest.StartReplica(t, master)
	env := sessiondtest.NewManager(t, sessiondtest.OnRedis(t, sessiondtest.Options{CheapHashing: true},
		redis.Options{URL: master.URL(), ReplicaAcks: 1, Timeout: redis.DefaultTimeout}))
	m := env.Manager
	// Long enough for the replica's full resynchronisation on a busy
	// machine: the replay below must stay inside the window.
	m.RefreshGrace = time.Minute
	ctx := context.Background()
	u, err := m.Register(ctx, sessiond.RegisterRequest{Username: "nia", Email: "nia@example.com", Password: password})
	if err != nil {
		t.Fatal(err)
	}
	login := func() *sessiond.Grant {
		t.Helper()
		g, err := m.Login(ctx, sessiond.LoginRequest{Login: "nia", Password: password, UserAgent: "curl/8.5.0"})
		if err != nil {
			t.Fatal(err)
		}
		return g
	}
	events, cancel, err := m.Subscribe(ctx, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer cancel()
	revokedEvent := func(id string) {
		t.Helper()
		deadline := time.After(2 * time.Second)
		for {
			select {
			case e := <-events:
				if e.Type == sessiond.EventRevoked && e.SessionID == id {
					return
				}
			case <-deadline:
				t.Fatalf("no revoked event for %s within 2 s", id)
			}
		}
	}
	a, b, c := login(), login(), login()
	replica.MustDo("REPLICAOF", "127.0.0.1", "1") // cut off

	if err := m.Revoke(ctx, u.ID, b.Session.ID, sessiond.ReasonRevoked); !errors.Is(err, sessiond.ErrUnavailable) {
		t.Fatalf("Revoke with the replica cut off: got %v, want ErrUnavailable (503)", err)
	}
	revokedEvent(b.Session.ID)
	if err := m.Logout(ctx, c.Session); !errors.Is(err, sessiond.ErrUnavailable) {
		t.Fatalf("Logout with the replica cut off: got %v, want ErrUnavailable (503)", err)
	}
	revokedEvent(c.Session.ID)

	if _, err := m.RefreshSession(ctx, a.RefreshToken, "127.0.0.1"); !errors.Is(err, sessiond.ErrUnavailable) {
		t.Fatalf("refresh with the replica cut off: got %v, want ErrUnavailable (503)", err)
	}
	// The same token again, inside the grace window: the rotation it
	// would be handed is still unconfirmed.
	if _, err := m.RefreshSession(ctx, a.RefreshToken, "127.0.0.1"); !errors.Is(err, sessiond.ErrUnavailable) {
		t.Fatalf("refresh replayed with the replica cut off: got %v (a grant when nil), want ErrUnavailable (503)", err)
	}

	host, port, _ := strings.Cut(master.Addr(), ":")
	replica.MustDo("REPLICAOF", host, port)
	deadline := time.Now().Add(10 * time.Second)
	for {
		g, err := m.RefreshSession(ctx, a.RefreshToken, "127.0.0.1")
		if err == nil {
			if g.Session.Generation != 2 {
				t.Fatalf("replay once the replica is back: generation %d, want 2 (the rotation that was answered 503)", g.Session.Generation)
			}
			break
		}
		if !errors.Is(err, sessiond.ErrUnavailable) || time.Now().After(deadline) {
			t.Fatalf("replay once the replica is back: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
