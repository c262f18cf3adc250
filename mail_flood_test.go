package sessiond_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/sessiond/sessiond"
	"github.com/sessiond/sessiond/internal/sessiondtest"
)

// TestNewSignInMailsAreBounded shows that sign-ins cannot be turned into a
// stream of e-mails to somebody else's address: sign-up does not verify
// the address, and the client chooses its device id, so every sign-in
// could be "from a new device". Every one is in the history and the
// webhooks; the e-mails stop at NewSignInMailRate.
func TestNewSignInMailsAreBounded(t *testing.T) {
	clk := &clock{t: time.Now().UTC().Truncate(time.Millisecond)}
	mails := &inbox{}
	env := sessiondtest.NewManager(t, sessiondtest.Options{RecordActivity: true, Mail: mails, Issuer: "test", CheapHashing: true, Now: clk.Now})
	m := env.Manager
	m.DeliveryPoll = 10 * time.Millisecond
	deliver(t, m)
	ctx := context.Background()
	u, err := m.Register(ctx, sessiond.RegisterRequest{Username: "mallory", Email: "victim@example.com", Password: "password123"})
	if err != nil {
		t.Fatal(err)
	}
	const logins = 30
	for i := range logins {
		loginFrom(t, m, "mallory", fmt.Sprintf("device-%d", i), chromeWindows, "")
	}
	max := sessiond.NewSignInMailRate.N
	waitFor(t, "the e-mails", func() bool { return count(mails) >= max })
	time.Sleep(200 * time.Millisecond)
	if got := count(mails); got != max {
		t.Fatalf("%d sign-ins from new devices sent %d e-mails, want %d", logins-1, got, max)
	}
	newDevices := 0
	for _, e := range history(t, m, u.ID) {
		if e.Type == "signed_in" && e.NewDevice != nil && *e.NewDevice {
			newDevices++
		}
	}
	if newDevices != logins-1 {
		t.Fatalf("history has %d sign-ins from a new device, want %d", newDevices, logins-1)
	}
	// A window later the user is told again.
	clk.Advance(sessiond.NewSignInMailRate.Window)
	loginFrom(t, m, "mallory", "device-next-window", chromeWindows, "")
	waitFor(t, "the next window's e-mail", func() bool { return count(mails) == max+1 })
}

func count(b *inbox) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.got)
}
