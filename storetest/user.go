package storetest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/sessiond/sessiond"
)

// RunUsers runs the UserStore conformance suite. newStore must return a
// fresh store for each sub-test; it may register cleanups with t.Cleanup.
func RunUsers(t *testing.T, newStore func(t *testing.T) sessiond.UserStore) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s sessiond.UserStore)
	}{
		{"created user round-trips every field", testUserRoundTrip},
		{"returned users are the caller's copies", testUserCallerCopies},
		{"login matches username or email case-insensitively", testUserByLogin},
		{"unknown user is not found", testUserUnknown},
		{"only ASCII letters fold: lookalikes match nothing", testUserLookalikes},
		{"username taken in another case is refused", testUsernameTaken},
		{"email taken in another case is refused", testEmailTaken},
		{"concurrent creates of one username have one winner", testUsernameRace},
		{"concurrent creates of one email have one winner", testEmailRace},
		{"set password replaces the hash", testSetPassword},
		{"lock and unlock", testLock},
		{"delete removes the user and frees the names", testDeleteUser},
		{"changes to an unknown user are not found", testUserChangesUnknown},
		{"user ids with special characters work", testUserSpecialIDs},
		{"ping answers", testUserPing},
		{"imported hashes are kept exactly", testImportedHashKept},
		{"a batch of creates reports each conflict and stores the rest", testCreateUsersBatch},
		{"a password hash is replaced only while unchanged", testReplacePasswordHash},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.fn(t, newStore(t))
		})
	}
}

// newUser returns a user with a fresh id, username and email.
func newUser() *sessiond.User {
	name := "user_" + randomID()[:12]
	return &sessiond.User{
		ID:           randomID(),
		Username:     name,
		Email:        name + "@example.com",
		PasswordHash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaA",
		CreatedAt:    base(),
	}
}

// mustCreateUser creates u and fails the test on error.
func mustCreateUser(t *testing.T, st sessiond.UserStore, u *sessiond.User) {
	t.Helper()
	if err := st.CreateUser(context.Background(), u); err != nil {
		t.Fatalf("CreateUser(%q): got error %v, want nil", u.Username, err)
	}
}

// diffUser lists the fields in which got differs from want.
func diffUser(got, want *sessiond.User) []string {
	var d []string
	str := func(name, g, w string) {
		if g != w {
			d = append(d, fmt.Sprintf("%s: got %q, want %q", name, g, w))
		}
	}
	str("ID", got.ID, want.ID)
	str("Username", got.Username, want.Username)
	str("Email", got.Email, want.Email)
	str("PasswordHash", got.PasswordHash, want.PasswordHash)
	if got.Locked != want.Locked {
		d = append(d, fmt.Sprintf("Locked: got %t, want %t", got.Locked, want.Locked))
	}
	if !msEqual(got.CreatedAt, want.CreatedAt) {
		d = append(d, fmt.Sprintf("CreatedAt: got %s, want %s", fmtTime(got.CreatedAt), fmtTime(want.CreatedAt)))
	}
	return d
}

// wantUser fails the test unless got equals want field by field.
func wantUser(t *testing.T, what string, got, want *sessiond.User) {
	t.Helper()
	if got == nil {
		t.Fatalf("%s: got nil user, want %s", what, want.ID)
	}
	if d := diffUser(got, want); len(d) > 0 {
		t.Fatalf("%s:\n\t%s", what, strings.Join(d, "\n\t"))
	}
}

// mustUserByID returns the user and fails the test when it is missing.
func mustUserByID(t *testing.T, st sessiond.UserStore, id string) *sessiond.User {
	t.Helper()
	u, err := st.UserByID(context.Background(), id)
	if err != nil {
		t.Fatalf("UserByID(%q): got error %v, want nil", id, err)
	}
	return u
}

func testUserRoundTrip(t *testing.T, st sessiond.UserStore) {
	u := newUser()
	u.Username = "Mixed.Case_user-1"
	u.Email = "Mixed.Case@Example.COM"
	want := *u
	mustCreateUser(t, st, u)
	// Username and email are kept as given; only comparisons ignore case.
	wantUser(t, "UserByID", mustUserByID(t, st, u.ID), &want)
}

func testUserCallerCopies(t *testing.T, st sessiond.UserStore) {
	ctx := context.Background()
	u := newUser()
	want := *u
	mustCreateUser(t, st, u)
	u.PasswordHash = "changed after create"

	got := mustUserByID(t, st, want.ID)
	wantUser(t, "UserByID after changing the created value", got, &want)
	got.Locked = true
	got.Email = "changed@example.com"
	wantUser(t, "UserByID after changing a returned value", mustUserByID(t, st, want.ID), &want)
	got, err := st.UserByLogin(ctx, want.Username)
	if err != nil {
		t.Fatalf("UserByLogin: got error %v, want nil", err)
	}
	got.PasswordHash = "changed after login"
	wantUser(t, "UserByID after changing a value found by login", mustUserByID(t, st, want.ID), &want)
}

func testUserByLogin(t *testing.T, st sessiond.UserStore) {
	ctx := context.Background()
	u := newUser()
	u.Username = "Alice.Smith"
	u.Email = "Alice@Example.com"
	mustCreateUser(t, st, u)
	other := newUser()
	mustCreateUser(t, st, other)

	for _, login := range []string{"Alice.Smith", "alice.smith", "ALICE.SMITH", "Alice@Example.com", "alice@example.com", "ALICE@EXAMPLE.COM"} {
		got, err := st.UserByLogin(ctx, login)
		if err != nil {
			t.Fatalf("UserByLogin(%q): got error %v, want nil", login, err)
		}
		wantUser(t, fmt.Sprintf("UserByLogin(%q)", login), got, u)
	}
	for _, login := range []string{"alice", "alice.smit", "alice@example", "", "%", "alice_smith", "Alice.Smith "} {
		got, err := st.UserByLogin(ctx, login)
		if !errors.Is(err, sessiond.ErrNotFound) {
			t.Fatalf("UserByLogin(%q): got (%v, %v), want ErrNotFound", login, got, err)
		}
	}
}

// testUserLookalikes: usernames and emails fold ASCII letters only
// (sessiond.FoldLogin), so a non-ASCII letter that a Unicode fold maps to
// an ASCII one, or to another letter, matches nothing but itself: U+212A
// KELVIN SIGN is not "k", U+212B ANGSTROM SIGN is not "å", and "Å" is not
// "å". Such an email is a different address, free to register.
func testUserLookalikes(t *testing.T, st sessiond.UserStore) {
	ctx := context.Background()
	kate := newUser()
	kate.Username = "kate"
	kate.Email = "kate@example.com"
	mustCreateUser(t, st, kate)
	asa := newUser()
	asa.Email = "\u00e5sa@example.net" // åsa
	mustCreateUser(t, st, asa)

	for _, login := range []string{"KATE", "Kate@Example.COM"} {
		got, err := st.UserByLogin(ctx, login)
		if err != nil {
			t.Fatalf("UserByLogin(%q): got error %v, want kate", login, err)
		}
		wantUser(t, fmt.Sprintf("UserByLogin(%q)", login), got, kate)
	}
	for _, login := range []string{
		"\u212Aate", "\u212AATE", "\u212Aate@example.com",
		"\u212Bsa@example.net", "\u00c5sa@example.net", "\u00c5SA@EXAMPLE.NET",
	} {
		got, err := st.UserByLogin(ctx, login)
		if !errors.Is(err, sessiond.ErrNotFound) {
			t.Fatalf("UserByLogin(%q): got (%v, %v), want ErrNotFound", login, got, err)
		}
	}
	got, err := st.UserByLogin(ctx, "\u00e5SA@EXAMPLE.NET")
	if err != nil {
		t.Fatalf("UserByLogin(åSA@EXAMPLE.NET): got error %v, want åsa", err)
	}
	wantUser(t, "UserByLogin(åSA@EXAMPLE.NET)", got, asa)

	kelvin := newUser()
	kelvin.Email = "\u212Aate@example.com"
	if err := st.CreateUser(ctx, kelvin); err != nil {
		t.Fatalf("CreateUser(email %q after %q): got error %v, want nil (a different address)", kelvin.Email, kate.Email, err)
	}
	for login, want := range map[string]*sessiond.User{"kate@example.com": kate, "\u212Aate@example.com": kelvin, "\u212AATE@EXAMPLE.COM": kelvin} {
		got, err := st.UserByLogin(ctx, login)
		if err != nil {
			t.Fatalf("UserByLogin(%q): got error %v", login, err)
		}
		wantUser(t, fmt.Sprintf("UserByLogin(%q)", login), got, want)
	}
}

func testUserUnknown(t *testing.T, st sessiond.UserStore) {
	ctx := context.Background()
	mustCreateUser(t, st, newUser())
	got, err := st.UserByID(ctx, randomID())
	if !errors.Is(err, sessiond.ErrNotFound) {
		t.Fatalf("UserByID(unknown): got (%v, %v), want ErrNotFound", got, err)
	}
	got, err = st.UserByLogin(ctx, "nobody")
	if !errors.Is(err, sessiond.ErrNotFound) {
		t.Fatalf("UserByLogin(unknown): got (%v, %v), want ErrNotFound", got, err)
	}
}

func testUsernameTaken(t *testing.T, st sessiond.UserStore) {
	ctx := context.Background()
	u := newUser()
	u.Username = "Bob"
	mustCreateUser(t, st, u)

	for _, name := range []string{"Bob", "bob", "BOB"} {
		dup := newUser()
		dup.Username = name
		err := st.CreateUser(ctx, dup)
		wantErr(t, fmt.Sprintf("CreateUser(username %q after %q)", name, u.Username), err, sessiond.ErrUsernameTaken)
		if _, err := st.UserByID(ctx, dup.ID); !errors.Is(err, sessiond.ErrNotFound) {
			t.Fatalf("UserByID(refused user): got error %v, want ErrNotFound", err)
		}
		// Its email is still free.
		if _, err := st.UserByLogin(ctx, dup.Email); !errors.Is(err, sessiond.ErrNotFound) {
			t.Fatalf("UserByLogin(refused user's email): got error %v, want ErrNotFound", err)
		}
	}
	wantUser(t, "UserByID(original)", mustUserByID(t, st, u.ID), u)
}

func testEmailTaken(t *testing.T, st sessiond.UserStore) {
	ctx := context.Background()
	u := newUser()
	u.Email = "carol@example.org"
	mustCreateUser(t, st, u)

	for _, email := range []string{"carol@example.org", "Carol@Example.org", "CAROL@EXAMPLE.ORG"} {
		dup := newUser()
		dup.Email = email
		err := st.CreateUser(ctx, dup)
		wantErr(t, fmt.Sprintf("CreateUser(email %q after %q)", email, u.Email), err, sessiond.ErrEmailTaken)
		if _, err := st.UserByLogin(ctx, dup.Username); !errors.Is(err, sessiond.ErrNotFound) {
			t.Fatalf("UserByLogin(refused user's username): got error %v, want ErrNotFound", err)
		}
	}
	wantUser(t, "UserByID(original)", mustUserByID(t, st, u.ID), u)
}

// createUsersConcurrently creates users from one goroutine each, all at
// once, and returns each CreateUser's error.
func createUsersConcurrently(st sessiond.UserStore, users []*sessiond.User) []error {
	errs := make([]error, len(users))
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i, u := range users {
		wg.Go(func() {
			<-start
			errs[i] = st.CreateUser(context.Background(), u)
		})
	}
	close(start)
	wg.Wait()
	return errs
}

// wantOneWinner fails the test unless exactly one of errs is nil and every
// other matches lost; it returns the winner's index.
func wantOneWinner(t *testing.T, errs []error, lost error) int {
	t.Helper()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil:
			if winner >= 0 {
				t.Fatalf("concurrent creates: got successes #%d and #%d, want one", winner, i)
			}
			winner = i
		case !errors.Is(err, lost):
			t.Fatalf("concurrent create #%d: got error %v, want nil or %v", i, err, lost)
		}
	}
	if winner < 0 {
		t.Fatalf("concurrent creates: got no success, want one")
	}
	return winner
}

func testUsernameRace(t *testing.T, st sessiond.UserStore) {
	ctx := context.Background()
	users := make([]*sessiond.User, 20)
	for i := range users {
		users[i] = newUser()
		users[i].Username = []string{"dave", "Dave", "DAVE", "dAvE"}[i%4]
	}
	w := wantOneWinner(t, createUsersConcurrently(st, users), sessiond.ErrUsernameTaken)
	got, err := st.UserByLogin(ctx, "dave")
	if err != nil {
		t.Fatalf("UserByLogin: got error %v, want nil", err)
	}
	wantUser(t, "UserByLogin(dave)", got, users[w])
}

func testEmailRace(t *testing.T, st sessiond.UserStore) {
	ctx := context.Background()
	users := make([]*sessiond.User, 20)
	for i := range users {
		users[i] = newUser()
		users[i].Email = []string{"erin@example.net", "Erin@example.net", "ERIN@EXAMPLE.NET"}[i%3]
	}
	w := wantOneWinner(t, createUsersConcurrently(st, users), sessiond.ErrEmailTaken)
	got, err := st.UserByLogin(ctx, "erin@example.net")
	if err != nil {
		t.Fatalf("UserByLogin: got error %v, want nil", err)
	}
	wantUser(t, "UserByLogin(erin@example.net)", got, users[w])
}

func testSetPassword(t *testing.T, st sessiond.UserStore) {
	ctx := context.Background()
	u, other := newUser(), newUser()
	mustCreateUser(t, st, u)
	mustCreateUser(t, st, other)

	const hash = "$argon2id$v=19$m=19456,t=2,p=1$bmV3c2FsdG5ld3NhbHQ$bmV3aGFzaG5ld2hhc2huZXdoYXNobmV3aGFzaA"
	if err := st.SetPassword(ctx, u.ID, hash); err != nil {
		t.Fatalf("SetPassword: got error %v, want nil", err)
	}
	want := *u
	want.PasswordHash = hash
	wantUser(t, "UserByID after SetPassword", mustUserByID(t, st, u.ID), &want)
	wantUser(t, "UserByID(other) after SetPassword", mustUserByID(t, st, other.ID), other)
}

func testLock(t *testing.T, st sessiond.UserStore) {
	ctx := context.Background()
	u, other := newUser(), newUser()
	mustCreateUser(t, st, u)
	mustCreateUser(t, st, other)

	want := *u
	for _, locked := range []bool{true, true, false, false, true} {
		if err := st.SetLocked(ctx, u.ID, locked); err != nil {
			t.Fatalf("SetLocked(%t): got error %v, want nil", locked, err)
		}
		want.Locked = locked
		wantUser(t, fmt.Sprintf("UserByID after SetLocked(%t)", locked), mustUserByID(t, st, u.ID), &want)
		got, err := st.UserByLogin(ctx, u.Username)
		if err != nil {
			t.Fatalf("UserByLogin after SetLocked(%t): got error %v, want nil", locked, err)
		}
		wantUser(t, fmt.Sprintf("UserByLogin after SetLocked(%t)", locked), got, &want)
	}
	wantUser(t, "UserByID(other) after SetLocked", mustUserByID(t, st, other.ID), other)
}

func testDeleteUser(t *testing.T, st sessiond.UserStore) {
	ctx := context.Background()
	u, other := newUser(), newUser()
	mustCreateUser(t, st, u)
	mustCreateUser(t, st, other)

	if err := st.DeleteUser(ctx, u.ID); err != nil {
		t.Fatalf("DeleteUser: got error %v, want nil", err)
	}
	if got, err := st.UserByID(ctx, u.ID); !errors.Is(err, sessiond.ErrNotFound) {
		t.Fatalf("UserByID after DeleteUser: got (%v, %v), want ErrNotFound", got, err)
	}
	for _, login := range []string{u.Username, u.Email} {
		if got, err := st.UserByLogin(ctx, login); !errors.Is(err, sessiond.ErrNotFound) {
			t.Fatalf("UserByLogin(%q) after DeleteUser: got (%v, %v), want ErrNotFound", login, got, err)
		}
	}
	wantErr(t, "second DeleteUser", st.DeleteUser(ctx, u.ID), sessiond.ErrNotFound)
	wantUser(t, "UserByID(other) after DeleteUser", mustUserByID(t, st, other.ID), other)

	again := newUser()
	again.Username = strings.ToUpper(u.Username)
	again.Email = u.Email
	mustCreateUser(t, st, again)
	wantUser(t, "UserByID(new user with the freed names)", mustUserByID(t, st, again.ID), again)
}

func testUserChangesUnknown(t *testing.T, st sessiond.UserStore) {
	ctx := context.Background()
	mustCreateUser(t, st, newUser())
	id := randomID()
	wantErr(t, "SetPassword(unknown)", st.SetPassword(ctx, id, "x"), sessiond.ErrNotFound)
	wantErr(t, "SetLocked(unknown, true)", st.SetLocked(ctx, id, true), sessiond.ErrNotFound)
	wantErr(t, "SetLocked(unknown, false)", st.SetLocked(ctx, id, false), sessiond.ErrNotFound)
	wantErr(t, "DeleteUser(unknown)", st.DeleteUser(ctx, id), sessiond.ErrNotFound)
	if _, err := st.UserByID(ctx, id); !errors.Is(err, sessiond.ErrNotFound) {
		t.Fatalf("UserByID after changes to an unknown id: got error %v, want ErrNotFound", err)
	}
}

func testUserSpecialIDs(t *testing.T, st sessiond.UserStore) {
	ctx := context.Background()
	var users []*sessiond.User
	for _, id := range []string{"{u:1}", "u:1", "with space", "ünïcødé-用户", "'; DROP TABLE users; --"} {
		u := newUser()
		u.ID = id
		mustCreateUser(t, st, u)
		users = append(users, u)
	}
	for _, u := range users {
		wantUser(t, fmt.Sprintf("UserByID(%q)", u.ID), mustUserByID(t, st, u.ID), u)
	}
	if err := st.SetLocked(ctx, "{u:1}", true); err != nil {
		t.Fatalf("SetLocked(%q): got error %v, want nil", "{u:1}", err)
	}
	if got := mustUserByID(t, st, "u:1"); got.Locked {
		t.Fatalf("UserByID(%q) after locking %q: got locked, want unlocked", "u:1", "{u:1}")
	}
	if err := st.DeleteUser(ctx, "with space"); err != nil {
		t.Fatalf("DeleteUser(%q): got error %v, want nil", "with space", err)
	}
	wantUser(t, "UserByID after deleting another", mustUserByID(t, st, "ünïcødé-用户"), users[3])
}

func testUserPing(t *testing.T, st sessiond.UserStore) {
	if err := st.Ping(context.Background()); err != nil {
		t.Fatalf("Ping: got error %v, want nil", err)
	}
}
