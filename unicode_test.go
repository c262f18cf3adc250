package sessiond_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/sessiond/sessiond"
)

// countedUsers is the real user store it wraps, counting login lookups.
type countedUsers struct {
	sessiond.UserStore
	lookups atomic.Int32
}

func (c *countedUsers) UserByLogin(ctx context.Context, login string) (*sessiond.User, error) {
	c.lookups.Add(1)
	return c.UserStore.UserByLogin(ctx, login)
}

// TestLoginWithNonASCIIUsernameMatchesNobody: a login name without '@' that
// holds a non-ASCII character is no username at all, so the Manager does
// not ask the store (whose own fold might map U+212A KELVIN SIGN to "k");
// it answers as for an unknown user. Emails may hold non-ASCII characters
// and are looked up.
func TestLoginWithNonASCIIUsernameMatchesNobody(t *testing.T) {
	m, _ := newManager(t)
	users := &countedUsers{UserStore: m.UsersForTest()}
	m.SetUsersForTest(users)
	signIn(t, m, "kate")
	ctx := context.Background()
	for _, login := range []string{"\u212Aate", "\u212AATE", "kat\u00e9", "kate\u200b"} {
		users.lookups.Store(0)
		_, err := m.Login(ctx, sessiond.LoginRequest{Login: login, Password: "password123", UserAgent: "curl/8.5.0"})
		if !errors.Is(err, sessiond.ErrInvalidCredentials) {
			t.Fatalf("Login(%q): got %v, want ErrInvalidCredentials", login, err)
		}
		if n := users.lookups.Load(); n != 0 {
			t.Fatalf("Login(%q): %d store lookups, want none", login, n)
		}
	}
	users.lookups.Store(0)
	if _, err := m.Login(ctx, sessiond.LoginRequest{Login: "\u212Aate@example.com", Password: "password123", UserAgent: "curl/8.5.0"}); !errors.Is(err, sessiond.ErrInvalidCredentials) {
		t.Fatalf("Login(Kelvin email): got %v, want ErrInvalidCredentials", err)
	}
	if n := users.lookups.Load(); n != 1 {
		t.Fatalf("Login(an email): %d store lookups, want 1", n)
	}
	if _, err := m.Login(ctx, sessiond.LoginRequest{Login: "KATE", Password: "password123", UserAgent: "curl/8.5.0"}); err != nil {
		t.Fatalf("Login(KATE): %v", err)
	}
}

// TestInvisibleCharactersRefused: device names (at login and rename) and
// emails refuse control, format, private-use and separator characters,
// naming the field; ordinary non-ASCII text passes.
func TestInvisibleCharactersRefused(t *testing.T) {
	bad := []string{
		"\u202eexe.evil", "a\u202ab", "a\u202db", "\u2066x\u2069", "a\u2067b", "a\u2068b",
		"zero\u200bwidth", "a\u200cb", "a\u200db", "\ufeffbom", "a\u00adb", "tag\U000E0041",
		"bell\a", "nul\x00", "del\x7f", "c1\u0085", "priv\ue000", "priv\U000F0000", "line\u2028sep", "para\u2029sep",
	}
	m, _ := newManager(t)
	g := signIn(t, m, "ivy")
	ctx := context.Background()
	for _, s := range bad {
		var in *sessiond.InputError
		_, err := m.Login(ctx, sessiond.LoginRequest{Login: "ivy", Password: "password123", DeviceName: s})
		if !errors.As(err, &in) || in.Field != "device_name" {
			t.Errorf("Login(device_name %q): got %v, want an input error naming device_name", s, err)
		}
		_, err = m.Rename(ctx, g.Session.UserID, g.Session.ID, s)
		if !errors.As(err, &in) || in.Field != "name" {
			t.Errorf("Rename(%q): got %v, want an input error naming name", s, err)
		}
		email := "x" + s + "@example.com"
		_, err = m.Register(ctx, sessiond.RegisterRequest{Username: "ivy2", Email: email, Password: "password123"})
		if !errors.As(err, &in) || in.Field != "email" {
			t.Errorf("Register(email %q): got %v, want an input error naming email", email, err)
		}
	}
	for _, s := range []string{"Ada's Phone 📱", "Büro-PC", "東京のMac", "שלום", "café\u0301"} {
		if _, err := m.Rename(ctx, g.Session.UserID, g.Session.ID, s); err != nil {
			t.Errorf("Rename(%q): %v", s, err)
		}
	}
	if _, err := m.Register(ctx, sessiond.RegisterRequest{Username: "jose", Email: "jos\u00e9@example.com", Password: "password123"}); err != nil {
		t.Errorf("Register(josé@example.com): %v", err)
	}
}
