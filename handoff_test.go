package sessiond_test

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/sessiond/sessiond"
	"github.com/sessiond/sessiond/internal/sessiondtest"
)

var codeShape = regexp.MustCompile(`^[A-Za-z0-9_-]{43}$`)

// TestHandoffRedeemsOnce: a handoff's code redeems once for the tokens of
// the session it started; a second redeem ends the session; unknown,
// malformed and expired codes are refused and change nothing.
func TestHandoffRedeemsOnce(t *testing.T) {
	clock := &clock{t: time.Now()}
	m := sessiondtest.NewManager(t, sessiondtest.Options{ExternalUsers: true, Now: clock.Now}).Manager
	ctx := context.Background()
	events, cancel, err := m.Subscribe(ctx, "auth0|h1")
	if err != nil {
		t.Fatal(err)
	}
	defer cancel()

	h, err := m.StartHandoff(ctx, sessiond.StartRequest{UserID: "auth0|h1", UserAgent: iphoneUA, Claims: map[string]any{"org": "acme"}})
	if err != nil {
		t.Fatalf("StartHandoff: %v", err)
	}
	if !codeShape.MatchString(h.Code) || h.ExpiresIn != sessiond.HandoffTTL || h.Session.Device != "Safari on iPhone" {
		t.Fatalf("StartHandoff: got code %q, expires in %v, session %+v", h.Code, h.ExpiresIn, h.Session)
	}
	if e := nextEvent(t, events); e.Type != sessiond.EventCreated || e.SessionID != h.Session.ID {
		t.Fatalf("event: got %+v, want created %s", e, h.Session.ID)
	}

	for _, code := range []string{"", "x", h.Code[:42], h.Code + "A", h.Code[:42] + "=", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"} {
		if _, err := m.RedeemHandoff(ctx, code); !errors.Is(err, sessiond.ErrHandoffInvalid) {
			t.Fatalf("RedeemHandoff(%q): got %v, want ErrHandoffInvalid", code, err)
		}
	}

	clock.Advance(59 * time.Second)
	g, err := m.RedeemHandoff(ctx, h.Code)
	if err != nil {
		t.Fatalf("RedeemHandoff within the lifetime: %v", err)
	}
	if g.AccessToken == "" || g.RefreshToken == "" || g.Session.ID != h.Session.ID {
		t.Fatalf("RedeemHandoff: got %+v", g)
	}
	if s, c, err := m.Authenticate(ctx, g.AccessToken); err != nil || s.ID != h.Session.ID || c.Subject != "auth0|h1" || tokenClaims(t, g.AccessToken)["org"] != "acme" {
		t.Fatalf("Authenticate with the handed-over token: got (%v, %v, %v)", s, c, err)
	}
	if _, err := m.RefreshSession(ctx, g.RefreshToken, "192.0.2.1"); err != nil {
		t.Fatalf("refresh with the handed-over token: %v", err)
	}

	_, err = m.RedeemHandoff(ctx, h.Code)
	if !errors.Is(err, sessiond.ErrHandoffInvalid) {
		t.Fatalf("second RedeemHandoff: got %v, want ErrHandoffInvalid", err)
	}
	if e := nextEvent(t, events); e.Type != sessiond.EventRevoked || e.SessionID != h.Session.ID || e.Reason != sessiond.ReasonHandoffReplayed {
		t.Fatalf("event after the replay: got %+v, want revoked %s with reason handoff_replayed", e, h.Session.ID)
	}
	if list, _ := m.List(ctx, "auth0|h1", ""); len(list) != 0 {
		t.Fatalf("sessions after the replay: got %d, want 0", len(list))
	}
	// A third use finds the session gone: refused, nothing more to end.
	if _, err := m.RedeemHandoff(ctx, h.Code); !errors.Is(err, sessiond.ErrHandoffInvalid) {
		t.Fatalf("third RedeemHandoff: got %v, want ErrHandoffInvalid", err)
	}

	// Expired: the Manager's clock decides; the session stays.
	h, err = m.StartHandoff(ctx, sessiond.StartRequest{UserID: "auth0|h1"})
	if err != nil {
		t.Fatal(err)
	}
	clock.Advance(sessiond.HandoffTTL)
	if _, err := m.RedeemHandoff(ctx, h.Code); !errors.Is(err, sessiond.ErrHandoffInvalid) {
		t.Fatalf("RedeemHandoff at the expiry: got %v, want ErrHandoffInvalid", err)
	}
	if list, _ := m.List(ctx, "auth0|h1", ""); len(list) != 1 {
		t.Fatalf("sessions after an expired redeem: got %d, want 1 (an expired code ends nothing)", len(list))
	}
}

// putFails is a session store whose handoff records cannot be written.
type putFails struct{ sessiond.SessionStore }

func (putFails) PutHandoff(context.Context, string, sessiond.Handoff) error {
	return fmt.Errorf("put handoff: %w", sessiond.ErrUnavailable)
}

// TestHandoffStartsNoSessionWithoutItsRecord: a handoff whose record the
// store refuses starts no session, so none is left that nobody can use;
// and a handoff refused by the session cap leaves a code that redeems as
// invalid.
func TestHandoffStartsNoSessionWithoutItsRecord(t *testing.T) {
	env := sessiondtest.NewManager(t, sessiondtest.Options{ExternalUsers: true})
	ctx := context.Background()
	broken := sessiondtest.NewManager(t, sessiondtest.Options{ExternalUsers: true, Sessions: putFails{env.Sessions}}).Manager
	if _, err := broken.StartHandoff(ctx, sessiond.StartRequest{UserID: "u1"}); !errors.Is(err, sessiond.ErrUnavailable) {
		t.Fatalf("StartHandoff with a store that refuses the record: got %v, want ErrUnavailable", err)
	}
	if list, _ := env.Manager.List(ctx, "u1", ""); len(list) != 0 {
		t.Fatalf("sessions after a refused handoff: got %d, want 0", len(list))
	}

	m := env.Manager
	m.MaxSessions, m.CapPolicy = 1, sessiond.PolicyDeny
	if _, err := m.StartSession(ctx, sessiond.StartRequest{UserID: "u2"}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.StartHandoff(ctx, sessiond.StartRequest{UserID: "u2"}); !errors.Is(err, sessiond.ErrSessionLimit) {
		t.Fatalf("StartHandoff at the cap: got %v, want ErrSessionLimit", err)
	}
}

// TestHandoffConcurrentRedeems: of many redeems of one code at once,
// exactly one gets tokens, and the session ends.
func TestHandoffConcurrentRedeems(t *testing.T) {
	m := sessiondtest.NewManager(t, sessiondtest.Options{ExternalUsers: true}).Manager
	ctx := context.Background()
	h, err := m.StartHandoff(ctx, sessiond.StartRequest{UserID: "u1"})
	if err != nil {
		t.Fatal(err)
	}
	const n = 8
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = m.RedeemHandoff(ctx, h.Code)
		}()
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, sessiond.ErrHandoffInvalid):
			t.Fatalf("concurrent redeem: %v", err)
		}
	}
	if ok != 1 {
		t.Fatalf("concurrent redeems: %d got tokens, want 1", ok)
	}
	if list, _ := m.List(ctx, "u1", ""); len(list) != 0 {
		t.Fatalf("sessions after concurrent redeems: got %d, want 0", len(list))
	}
}
