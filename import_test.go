package sessiond_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sessiond/sessiond"
)

// importOne imports a user with hash and fails the test on error.
func importOne(t *testing.T, m *sessiond.Manager, name, hash string) *sessiond.User {
	t.Helper()
	u, err := m.ImportUser(context.Background(), sessiond.ImportRequest{Username: name, Email: name + "@example.com", PasswordHash: hash})
	if err != nil {
		t.Fatalf("ImportUser(%s): got error %v, want nil", name, err)
	}
	return u
}

// storedHash returns the password hash the store holds for id.
func storedHash(t *testing.T, m *sessiond.Manager, id string) string {
	t.Helper()
	u, err := m.UsersForTest().UserByID(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return u.PasswordHash
}

func login(m *sessiond.Manager, name, pw string) (*sessiond.Grant, error) {
	return m.Login(context.Background(), sessiond.LoginRequest{Login: name, Password: pw, UserAgent: "curl/8.5.0", ClientIP: "192.0.2.7"})
}

func TestImportedHashUpgradedOnFirstSignIn(t *testing.T) {
	ctx := context.Background()
	for i, v := range toolVectors(t) {
		t.Run(v.name, func(t *testing.T) {
			m, _ := newManager(t)
			name := "imported" + string(rune('a'+i))
			u := importOne(t, m, name, v.hash)
			if got := storedHash(t, m, u.ID); got != v.hash {
				t.Fatalf("stored hash after import: got %q, want %q exactly", got, v.hash)
			}
			if _, err := login(m, name, v.password+"!"); !errors.Is(err, sessiond.ErrInvalidCredentials) {
				t.Fatalf("Login(wrong password): got %v, want ErrInvalidCredentials", err)
			}
			if got := storedHash(t, m, u.ID); got != v.hash {
				t.Fatalf("stored hash after a wrong password: got %q, want the imported one", got)
			}
			g, err := login(m, name, v.password)
			if err != nil {
				t.Fatalf("first Login: got error %v, want nil", err)
			}
			// The session of the sign-in that upgraded the hash lives: the
			// upgrade is not a password change.
			if _, _, err := m.Authenticate(ctx, g.AccessToken); err != nil {
				t.Fatalf("Authenticate after the upgrading sign-in: got %v, want the session alive", err)
			}
			up := storedHash(t, m, u.ID)
			if up == v.hash || !strings.HasPrefix(up, "$argon2id$") || m.Hasher.NeedsRehash(up) {
				t.Fatalf("stored hash after the first sign-in: got %q, want sessiond's own argon2id", up)
			}
			if ok, err := m.Hasher.Verify(ctx, up, v.password); !ok || err != nil {
				t.Fatalf("upgraded hash: Verify(password): got (%t, %v), want true", ok, err)
			}
			if _, err := login(m, name, v.password); err != nil {
				t.Fatalf("second Login: got error %v, want nil", err)
			}
			if got := storedHash(t, m, u.ID); got != up {
				t.Fatalf("stored hash after the second sign-in: got %q, want it unchanged", got)
			}
			if _, err := login(m, name, v.password+"!"); !errors.Is(err, sessiond.ErrInvalidCredentials) {
				t.Fatalf("Login(wrong password) after the upgrade: got %v, want ErrInvalidCredentials", err)
			}
			if _, _, err := m.Authenticate(ctx, g.AccessToken); err != nil {
				t.Fatalf("Authenticate(first session) at the end: got %v, want alive", err)
			}
		})
	}
}

// TestBcryptLongPasswordUpgradedWhole: a password over 72 bytes signs in
// against its bcrypt hash with its first 72 bytes as bcrypt ever saw them,
// and the upgrade stores the argon2id hash of the whole password, so that
// from then on every byte counts.
func TestBcryptLongPasswordUpgradedWhole(t *testing.T) {
	m, _ := newManager(t)
	long := strings.Repeat("abcdefghij", 8) // 80 bytes
	hash, err := htpasswdHash(long, 4)
	if err != nil {
		t.Fatal(err)
	}
	importOne(t, m, "longpw", hash)
	if _, err := login(m, "longpw", long); err != nil {
		t.Fatalf("Login(80-byte password): got %v, want nil", err)
	}
	if _, err := login(m, "longpw", long[:72]+"zzzzzzzz"); !errors.Is(err, sessiond.ErrInvalidCredentials) {
		t.Fatalf("Login(same first 72 bytes, other tail) after the upgrade: got %v, want ErrInvalidCredentials", err)
	}
	if _, err := login(m, "longpw", long); err != nil {
		t.Fatalf("Login(80-byte password) after the upgrade: got %v, want nil", err)
	}
}

func TestImportedUserLocked(t *testing.T) {
	ctx := context.Background()
	m, _ := newManager(t)
	v := toolVectors(t)[0]
	u := importOne(t, m, "lockedimport", v.hash)
	if _, err := m.SetLocked(ctx, u.ID, true); err != nil {
		t.Fatal(err)
	}
	if _, err := login(m, "lockedimport", v.password); !errors.Is(err, sessiond.ErrAccountLocked) {
		t.Fatalf("Login(locked imported user): got %v, want ErrAccountLocked", err)
	}
	if got := storedHash(t, m, u.ID); got != v.hash {
		t.Fatalf("stored hash of a locked user after a sign-in: got %q, want the imported one kept", got)
	}
	if _, err := m.SetLocked(ctx, u.ID, false); err != nil {
		t.Fatal(err)
	}
	if _, err := login(m, "lockedimport", v.password); err != nil {
		t.Fatalf("Login after unlock: got %v, want nil", err)
	}
	if storedHash(t, m, u.ID) == v.hash {
		t.Fatalf("stored hash after unlock and sign-in: still the imported one")
	}
}

func TestImportedUserThrottled(t *testing.T) {
	m, _ := newManager(t)
	m.Throttles.LoginAccountIP = sessiond.Rate{N: 3, Window: 15 * time.Minute}
	v := toolVectors(t)[3] // htpasswd, cost 10
	u := importOne(t, m, "throttledimport", v.hash)
	for i := range 3 {
		if _, err := login(m, "throttledimport", "wrong password"); !errors.Is(err, sessiond.ErrInvalidCredentials) {
			t.Fatalf("wrong password #%d: got %v, want ErrInvalidCredentials", i+1, err)
		}
	}
	var th *sessiond.ThrottledError
	if _, err := login(m, "throttledimport", v.password); !errors.As(err, &th) || th.Rule != "login_account_address" {
		t.Fatalf("right password past the limit: got %v, want a 429 of login_account_address", err)
	}
	if got := storedHash(t, m, u.ID); got != v.hash {
		t.Fatalf("stored hash after a throttled sign-in: got %q, want the imported one kept", got)
	}
}

// TestImportedUserConcurrentSignIns: two sign-ins that both verify the
// imported hash both succeed; one of them upgrades it, and the other does
// not take the upgrade for a password change.
func TestImportedUserConcurrentSignIns(t *testing.T) {
	ctx := context.Background()
	m, _ := newManager(t)
	v := toolVectors(t)[len(toolVectors(t))-1] // cheap argon2
	importOne(t, m, "twice", v.hash)
	var wg sync.WaitGroup
	grants := make([]*sessiond.Grant, 4)
	errs := make([]error, 4)
	for i := range grants {
		wg.Go(func() { grants[i], errs[i] = login(m, "twice", v.password) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("concurrent Login #%d: got %v, want nil", i, err)
		}
		if _, _, err := m.Authenticate(ctx, grants[i].AccessToken); err != nil {
			t.Fatalf("session of concurrent Login #%d: got %v, want alive", i, err)
		}
	}
}

// TestImportedUserChangesPassword: the current password of a password
// change is checked against the imported hash.
func TestImportedUserChangesPassword(t *testing.T) {
	ctx := context.Background()
	m, _ := newManager(t)
	v := toolVectors(t)[0]
	u := importOne(t, m, "changer", v.hash)
	s := &sessiond.Session{ID: "s1", UserID: u.ID}
	if _, err := m.ChangePassword(ctx, s, sessiond.ChangePasswordRequest{Current: "wrong one", New: "new password 1"}); err == nil {
		t.Fatalf("ChangePassword(wrong current): got nil, want a refusal")
	}
	if _, err := m.ChangePassword(ctx, s, sessiond.ChangePasswordRequest{Current: v.password, New: "new password 1"}); err != nil {
		t.Fatalf("ChangePassword(imported current password): got %v, want nil", err)
	}
	if _, err := login(m, "changer", v.password); !errors.Is(err, sessiond.ErrInvalidCredentials) {
		t.Fatalf("Login(old password): got %v, want ErrInvalidCredentials", err)
	}
	if _, err := login(m, "changer", "new password 1"); err != nil {
		t.Fatalf("Login(new password): got %v, want nil", err)
	}
}

func TestImportUserChecks(t *testing.T) {
	ctx := context.Background()
	m, _ := newManager(t)
	m.SignupOpen = false // an administrator's import is not a sign-up
	const hash = "$2b$04$" + bcryptBody
	importOne(t, m, "taken", hash)
	for _, c := range []struct {
		name  string
		r     sessiond.ImportRequest
		field string
		err   error
	}{
		{"bad username", sessiond.ImportRequest{Username: "no spaces", Email: "a@example.com", PasswordHash: hash}, "username", nil},
		{"bad email", sessiond.ImportRequest{Username: "okname", Email: "not-an-email", PasswordHash: hash}, "email", nil},
		{"unknown hash", sessiond.ImportRequest{Username: "okname", Email: "a@example.com", PasswordHash: "sha1$x$y"}, "password_hash", nil},
		{"plain password", sessiond.ImportRequest{Username: "okname", Email: "a@example.com", PasswordHash: "password123"}, "password_hash", nil},
		{"username taken", sessiond.ImportRequest{Username: "TAKEN", Email: "b@example.com", PasswordHash: hash}, "", sessiond.ErrUsernameTaken},
		{"email taken", sessiond.ImportRequest{Username: "other", Email: "Taken@Example.com", PasswordHash: hash}, "", sessiond.ErrEmailTaken},
	} {
		_, err := m.ImportUser(ctx, c.r)
		var ie *sessiond.InputError
		switch {
		case c.err != nil && !errors.Is(err, c.err):
			t.Errorf("%s: got %v, want %v", c.name, err, c.err)
		case c.err == nil && (!errors.As(err, &ie) || ie.Field != c.field):
			t.Errorf("%s: got %v, want an *InputError on %s", c.name, err, c.field)
		}
	}
	// Not throttled: far more than the registration limit.
	var rs []sessiond.ImportRequest
	created := time.Date(2015, 3, 4, 5, 6, 7, 891e6, time.UTC)
	for i := range 3 * m.Throttles.Register.N {
		name := "bulk" + strings.Repeat("x", i%5) + string(rune('a'+i%26)) + string(rune('a'+i/26))
		rs = append(rs, sessiond.ImportRequest{Username: name, Email: name + "@example.com", PasswordHash: hash, CreatedAt: created})
	}
	users, errs, err := m.ImportUsers(ctx, rs)
	if err != nil {
		t.Fatal(err)
	}
	for i := range rs {
		if errs[i] != nil || users[i] == nil {
			t.Fatalf("ImportUsers #%d: got error %v, want a user", i, errs[i])
		}
		if !users[i].CreatedAt.Equal(created) {
			t.Fatalf("ImportUsers #%d: got created_at %s, want %s", i, users[i].CreatedAt, created)
		}
	}
	if _, _, err := m.ImportUsers(ctx, make([]sessiond.ImportRequest, sessiond.MaxImportBatch+1)); err == nil {
		t.Fatalf("ImportUsers(too many): got nil, want an error")
	}
}
