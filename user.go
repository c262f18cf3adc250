package sessiond

import (
	"context"
	"strings"
	"time"
	"unicode/utf8"
)

// User is an account. PasswordHash and Locked never leave the server.
type User struct {
	// ID is opaque (base64url random); it may in principle contain any
	// character, and stores must not assume otherwise.
	ID string
	// Username is 1-64 ASCII letters, digits, '.', '_', '-', unique
	// case-insensitively.
	Username string
	// Email is unique case-insensitively, with ASCII letters folded only
	// (FoldLogin): "É" and "é" are different addresses, and no non-ASCII
	// letter ever matches an ASCII one.
	Email string
	// PasswordHash is an argon2id PHC string, or until its first sign-in
	// an imported user's hash in a format that CheckImportedHash accepts.
	PasswordHash string
	Locked       bool
	CreatedAt    time.Time
}

// UserStore keeps accounts. Implementations must be safe for concurrent use.
// A store that did not answer wraps ErrUnavailable.
type UserStore interface {
	// CreateUser stores u. It returns ErrUsernameTaken or ErrEmailTaken
	// when another user has the same username or email under FoldLogin
	// (the database enforces it, so concurrent creates cannot both win).
	CreateUser(ctx context.Context, u *User) error

	// CreateUsers stores users in one transaction, for an import. Each is
	// created as CreateUser would create it, in order: errs[i] is nil,
	// ErrUsernameTaken or ErrEmailTaken for users[i] (taken by an existing
	// user or by an earlier one of users; a user taking both is
	// ErrUsernameTaken), and the others are stored all the same. Any other
	// failure is err, and then none of users is stored. An empty users
	// stores nothing.
	CreateUsers(ctx context.Context, users []*User) (errs []error, err error)

	// UserByID returns the user, or ErrNotFound.
	UserByID(ctx context.Context, id string) (*User, error)

	// UserByLogin returns the user whose username or email equals login
	// under FoldLogin (ASCII letters compared case-insensitively, every
	// other character exactly), or ErrNotFound.
	UserByLogin(ctx context.Context, login string) (*User, error)

	// SetPassword replaces the password hash; ErrNotFound for an unknown id.
	SetPassword(ctx context.Context, id, hash string) error

	// ReplacePasswordHash sets the password hash of id to hash only if it
	// is still old, in one atomic step: the upgrade of an imported hash at
	// sign-in, which must not undo a password change made meanwhile.
	// ErrNotFound for an unknown id or a hash that is no longer old.
	ReplacePasswordHash(ctx context.Context, id, old, hash string) error

	// SetLocked locks or unlocks the account; ErrNotFound for an unknown id.
	SetLocked(ctx context.Context, id string, locked bool) error

	// DeleteUser deletes the account; ErrNotFound for an unknown id.
	DeleteUser(ctx context.Context, id string) error

	// Ping reports whether the store answers.
	Ping(ctx context.Context) error
}

// userByLogin finds the user that login names. A login without '@' can
// only be a username, and usernames are ASCII: one with any other character
// names nobody, whatever a store's own case fold would make of it (U+212A
// KELVIN SIGN is not "k").
func (m *Manager) userByLogin(ctx context.Context, login string) (*User, error) {
	if !strings.Contains(login, "@") && !isASCII(login) {
		return nil, ErrNotFound
	}
	return m.users.UserByLogin(ctx, login)
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}
