package storetest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sessiond/sessiond"
)

// importedHashes are hashes in each imported format, with the characters
// a store might mangle: '$', '/', '+', '=', '.', and a long string.
var importedHashes = []string{
	"$2y$10$q2xWa0v8V7UqZtqSlhS0wuc5ZrI1BNq1SxH6YvH.2A8s5wO/eGxJ6",
	"$2b$12$abcdefghijklmnopqrstuu7Pp5bq1pQfVdUtt6L4pNzXMHm4QwJZm",
	"pbkdf2_sha256$260000$aBcDeFgHiJkLmNoPqRsTuV$Kq+7uY3Zx/1h0sE8b2yM4nQ6w9rT5vXcA1dF3gH7jL0=",
	"argon2$argon2id$v=19$m=102400,t=2,p=8$c2FsdHNhbHRzYWx0c2FsdA$3Q9oH8d+kP1mZbq2rX4yVQ",
	"bcrypt_sha256$$2b$12$kRfYzYlPgT0Tz8sV0Ww2xO6V0q7o4y9Lk6b1b2c3d4e5f6g7h8i9j",
	"$argon2id$v=19$m=65536,t=3,p=4$" + "c29tZXNhbHRzb21lc2FsdHNvbWVzYWx0c29tZXNhbHRzb21lc2FsdA" + "$" + "aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaA",
}

func testImportedHashKept(t *testing.T, st sessiond.UserStore) {
	ctx := context.Background()
	var users []*sessiond.User
	for _, h := range importedHashes {
		u := newUser()
		u.PasswordHash = h
		users = append(users, u)
	}
	mustCreateUser(t, st, users[0])
	errs, err := st.CreateUsers(ctx, users[1:])
	if err != nil {
		t.Fatalf("CreateUsers: got error %v, want nil", err)
	}
	for i, err := range errs {
		if err != nil {
			t.Fatalf("CreateUsers: user %d: got error %v, want nil", i, err)
		}
	}
	for _, u := range users {
		wantUser(t, "UserByID of an imported user", mustUserByID(t, st, u.ID), u)
		got, err := st.UserByLogin(ctx, u.Email)
		if err != nil {
			t.Fatalf("UserByLogin(%q): got error %v, want nil", u.Email, err)
		}
		if got.PasswordHash != u.PasswordHash {
			t.Fatalf("UserByLogin: got hash %q, want %q exactly", got.PasswordHash, u.PasswordHash)
		}
	}
}

func testCreateUsersBatch(t *testing.T, st sessiond.UserStore) {
	ctx := context.Background()
	// Names unique to this run: a suite may run on a store that other
	// sub-tests have filled.
	x := strings.NewReplacer("-", "x", "_", "y").Replace(randomID()[:8])
	old := newUser()
	old.Username, old.Email = "Frank"+x, "frank"+x+"@example.com"
	mustCreateUser(t, st, old)
	kate := newUser()
	kate.Email = "kate" + x + "@example.com"
	mustCreateUser(t, st, kate)

	mk := func(name, email string) *sessiond.User {
		u := newUser()
		if name != "" {
			u.Username = name
		}
		if email != "" {
			u.Email = email
		}
		u.CreatedAt = time.Date(2019, 5, 6, 7, 8, 9, 123e6, time.UTC)
		return u
	}
	batch := []*sessiond.User{
		mk("", ""),                                // 0: created
		mk("FRANK"+x, ""),                         // 1: username of an existing user
		mk("", "Frank"+x+"@Example.COM"),          // 2: email of an existing user
		mk("gina"+x, "gina"+x+"@example.com"),     // 3: created
		mk("Gina"+x, ""),                          // 4: username of an earlier one of the batch
		mk("", "GINA"+x+"@example.com"),           // 5: email of an earlier one of the batch
		mk("frank"+x, "gina"+x+"@example.com"),    // 6: both: the username is reported
		mk("hal"+x, "hal"+x+"@example.com"),       // 7: created, after refusals
		mk("ivy"+x, "\u212Aate"+x+"@example.com"), // 8: created: only ASCII letters fold
	}
	want := []error{nil, sessiond.ErrUsernameTaken, sessiond.ErrEmailTaken, nil, sessiond.ErrUsernameTaken,
		sessiond.ErrEmailTaken, sessiond.ErrUsernameTaken, nil, nil}
	errs, err := st.CreateUsers(ctx, batch)
	if err != nil {
		t.Fatalf("CreateUsers: got error %v, want nil", err)
	}
	if len(errs) != len(batch) {
		t.Fatalf("CreateUsers: got %d errors, want one per user (%d)", len(errs), len(batch))
	}
	for i, w := range want {
		if w == nil && errs[i] != nil || w != nil && !errors.Is(errs[i], w) {
			t.Errorf("CreateUsers: user %d (%s, %s): got %v, want %v", i, batch[i].Username, batch[i].Email, errs[i], w)
		}
	}
	for i, u := range batch {
		got, err := st.UserByID(ctx, u.ID)
		if want[i] == nil {
			if err != nil {
				t.Fatalf("UserByID(created user %d): got error %v", i, err)
			}
			wantUser(t, fmt.Sprintf("UserByID(created user %d)", i), got, u)
		} else if !errors.Is(err, sessiond.ErrNotFound) {
			t.Fatalf("UserByID(refused user %d): got (%v, %v), want ErrNotFound", i, got, err)
		}
	}
	wantUser(t, "UserByID(existing user) after the batch", mustUserByID(t, st, old.ID), old)

	if errs, err := st.CreateUsers(ctx, nil); err != nil || len(errs) != 0 {
		t.Fatalf("CreateUsers(empty): got (%v, %v), want no errors", errs, err)
	}
}

func testReplacePasswordHash(t *testing.T, st sessiond.UserStore) {
	ctx := context.Background()
	u := newUser()
	u.PasswordHash = importedHashes[2]
	mustCreateUser(t, st, u)
	const upgraded = "$argon2id$v=19$m=19456,t=2,p=1$dXBncmFkZWRzYWx0MTI$dXBncmFkZWRoYXNodXBncmFkZWRoYXNodXBncg"

	wantErr(t, "ReplacePasswordHash(wrong old hash)", st.ReplacePasswordHash(ctx, u.ID, importedHashes[0], upgraded), sessiond.ErrNotFound)
	wantUser(t, "UserByID after a refused replace", mustUserByID(t, st, u.ID), u)
	wantErr(t, "ReplacePasswordHash(unknown user)", st.ReplacePasswordHash(ctx, randomID(), u.PasswordHash, upgraded), sessiond.ErrNotFound)

	if err := st.ReplacePasswordHash(ctx, u.ID, u.PasswordHash, upgraded); err != nil {
		t.Fatalf("ReplacePasswordHash: got error %v, want nil", err)
	}
	want := *u
	want.PasswordHash = upgraded
	wantUser(t, "UserByID after ReplacePasswordHash", mustUserByID(t, st, u.ID), &want)
	// The old hash is gone: replacing it again finds nothing.
	wantErr(t, "second ReplacePasswordHash", st.ReplacePasswordHash(ctx, u.ID, u.PasswordHash, "other"), sessiond.ErrNotFound)
	wantUser(t, "UserByID after a second replace", mustUserByID(t, st, u.ID), &want)
}
