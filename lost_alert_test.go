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

// TestUnrecordedSignInDoesNotHideItsDevice shows that a sign-in refused
// because its record could not be written leaves its device new: the
// client signs in again and that sign-in is the one that tells the user
// (history, webhook, e-mail) of a new device. The fault is a real one
// Redis gives: the history key holds a value of another type.
//
// Remember has recorded the device before Record fails: without the
// Forget that undoes it, the second sign-in is not from a new device and
// sends no e-mail.
func TestUnrecordedSignInDoesNotHideItsDevice(t *testing.T) {
	srv := redistest.Start(t)
	o := sessiondtest.OnRedis(t, sessiondtest.Options{RecordActivity: true, Issuer: "test", CheapHashing: true, NoLimiter: true},
		redis.Options{URL: srv.URL()})
	m := sessiondtest.NewManager(t, o).Manager
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
	if _, err := m.Login(ctx, sessiond.LoginRequest{Login: "ann", Password: "password123", DeviceID: "thief", UserAgent: safariIPhone}); err == nil {
		t.Fatal("a sign-in whose record failed was answered")
	}
	if err := rc.Do(ctx, rc.B().Del().Key(key).Build()).Error(); err != nil {
		t.Fatal(err)
	}
	loginFrom(t, m, "ann", "thief", safariIPhone, "")
	h := history(t, m, u.ID)
	if len(h) == 0 || h[0].Type != "signed_in" || h[0].NewDevice == nil || !*h[0].NewDevice {
		t.Fatalf("the sign-in after the failed one: %+v, want a sign-in from a new device", h)
	}
}
