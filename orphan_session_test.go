package sessiond_test

import (
	"context"
	"testing"

	"github.com/redis/rueidis"

	"github.com/sessiond/sessiond"
	"github.com/sessiond/sessiond/internal/sessiondtest"
	"github.com/sessiond/sessiond/redis"
	"github.com/sessiond/sessiond/redis/redistest"
)

// TestRefusedSignInLeavesNoSession shows that a sign-in refused because
// the end of the session it evicted could not be recorded leaves no
// session behind: the client got no token for it, and the user would see
// a device in their list that no history entry explains. The fault is a
// real one Redis gives: the history key holds a value of another type.
func TestRefusedSignInLeavesNoSession(t *testing.T) {
	srv := redistest.Start(t)
	o := sessiondtest.OnRedis(t, sessiondtest.Options{RecordActivity: true, Issuer: "test", CheapHashing: true, NoLimiter: true},
		redis.Options{URL: srv.URL()})
	m := sessiondtest.NewManager(t, o).Manager
	m.MaxSessions = 1
	ctx := context.Background()
	u, err := m.Register(ctx, sessiond.RegisterRequest{Username: "ann", Email: "ann@example.com", Password: "password123"})
	if err != nil {
		t.Fatal(err)
	}
	loginFrom(t, m, "ann", "laptop", chromeWindows, "")

	rc, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{srv.Addr()}, DisableCache: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rc.Close)
	key := redis.ActivityKey(u.ID)
	if err := rc.Do(ctx, rc.B().Set().Key(key).Value("not a sorted set").Build()).Error(); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Login(ctx, sessiond.LoginRequest{Login: "ann", Password: "password123", DeviceID: "phone", UserAgent: safariIPhone}); err == nil {
		t.Fatal("a sign-in whose eviction was not recorded was answered")
	}
	live, err := m.List(ctx, u.ID, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range live {
		if s.Device == "Safari on iPhone" {
			t.Fatalf("the refused sign-in's session %s is live", s.ID)
		}
	}
}
