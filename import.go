package sessiond

import (
	"context"
	"errors"
	"log/slog"
	"time"
)

// ImportRequest is one user brought in from another system with the hash
// of their password (docs/design.md, "Imported password hashes").
type ImportRequest struct {
	Username string
	Email    string
	// PasswordHash is in a format CheckImportedHash accepts; it is stored
	// exactly as given until the user's first sign-in replaces it.
	PasswordHash string
	// CreatedAt is when the user signed up there; zero means now.
	CreatedAt time.Time
}

// MaxImportBatch is the most requests one ImportUsers call takes.
const MaxImportBatch = 1000

// ImportUser creates a user with a ready password hash: an administrator's
// act, not throttled, open whatever SignupOpen says. The username and email
// are checked as Register checks them, the hash with CheckImportedHash; a
// refusal is an *InputError naming the field, a conflict ErrUsernameTaken
// or ErrEmailTaken.
func (m *Manager) ImportUser(ctx context.Context, r ImportRequest) (*User, error) {
	users, errs, err := m.ImportUsers(ctx, []ImportRequest{r})
	if err != nil {
		return nil, err
	}
	return users[0], errs[0]
}

// ImportUsers imports a batch of at most MaxImportBatch users, each checked
// as ImportUser checks it; those that pass are stored in one transaction of
// the user store. users[i] is the user created for rs[i], or nil with
// errs[i] saying why not: an *InputError, ErrUsernameTaken or
// ErrEmailTaken (taken by an existing user or an earlier one of rs). err is
// a failure of the store, after which none of rs is stored.
func (m *Manager) ImportUsers(ctx context.Context, rs []ImportRequest) (users []*User, errs []error, err error) {
	if m.users == nil {
		return nil, nil, errNoUsers
	}
	if len(rs) > MaxImportBatch {
		return nil, nil, invalid("", "at most %d users per batch", MaxImportBatch)
	}
	users, errs = make([]*User, len(rs)), make([]error, len(rs))
	now := m.now()
	var batch []*User
	var at []int // index in rs of each of batch
	for i, r := range rs {
		if errs[i] = r.check(); errs[i] != nil {
			continue
		}
		created := r.CreatedAt.UTC().Truncate(time.Millisecond)
		if r.CreatedAt.IsZero() {
			created = now
		}
		batch = append(batch, &User{ID: randomID(), Username: r.Username, Email: r.Email, PasswordHash: r.PasswordHash, CreatedAt: created})
		at = append(at, i)
	}
	stored, err := m.users.CreateUsers(ctx, batch)
	if err != nil {
		return nil, nil, err
	}
	n := 0
	for j, u := range batch {
		i := at[j]
		if errs[i] = stored[j]; errs[i] == nil {
			users[i] = u
			n++
			m.Logger.LogAttrs(ctx, slog.LevelDebug, "user imported", slog.String("user_id", u.ID))
		}
	}
	if n > 0 {
		m.Logger.LogAttrs(ctx, slog.LevelInfo, "users imported", slog.Int("count", n))
	}
	return users, errs, nil
}

// check refuses an ImportRequest that Register would refuse, or whose hash
// CheckImportedHash refuses.
func (r *ImportRequest) check() error {
	if err := checkUsername(r.Username); err != nil {
		return err
	}
	if err := checkEmail(r.Email); err != nil {
		return err
	}
	return CheckImportedHash(r.PasswordHash)
}

// upgradeHash replaces the hash of u, which pw has just matched and which
// NeedsRehash, with sessiond's own argon2id hash of pw, and returns u as it
// now is. Should the hash have changed meanwhile, it is left alone: if the
// new one matches pw too (another sign-in of the user upgraded it first),
// the user as now stored is returned, so that this sign-in goes on; if not
// (a password change or reset), u as read, and the session being created
// then ends, as after any such change.
func (m *Manager) upgradeHash(ctx context.Context, u *User, pw string) (*User, error) {
	hash, err := m.Hasher.Hash(ctx, pw)
	if err != nil {
		return nil, err
	}
	err = m.users.ReplacePasswordHash(ctx, u.ID, u.PasswordHash, hash)
	switch {
	case errors.Is(err, ErrNotFound):
		return m.changedMeanwhile(ctx, u, pw)
	case err != nil:
		return nil, err
	}
	m.Logger.LogAttrs(ctx, slog.LevelInfo, "password hash upgraded", slog.String("user_id", u.ID), slog.String("from", hashFormatName(u.PasswordHash)))
	up := *u
	up.PasswordHash = hash
	return &up, nil
}

// changedMeanwhile returns the user as now stored if pw matches its
// current hash, else u (see upgradeHash).
func (m *Manager) changedMeanwhile(ctx context.Context, u *User, pw string) (*User, error) {
	cur, err := m.users.UserByID(ctx, u.ID)
	switch {
	case errors.Is(err, ErrNotFound):
		return u, nil
	case err != nil:
		return nil, err
	case cur.Locked || cur.PasswordHash == u.PasswordHash:
		return u, nil
	}
	ok, err := m.Hasher.Verify(ctx, cur.PasswordHash, pw)
	if err != nil || !ok {
		return u, err
	}
	return cur, nil
}

// hashFormatName names the format of a hash for a log line, never more.
func hashFormatName(hash string) string {
	ph, err := parseHash(hash)
	if err != nil {
		return "unknown"
	}
	return [...]string{
		formatArgon2id:           "argon2id",
		formatDjangoArgon2:       "django_argon2",
		formatBcrypt:             "bcrypt",
		formatDjangoBcryptSHA256: "django_bcrypt_sha256",
		formatDjangoPBKDF2:       "django_pbkdf2_sha256",
	}[ph.format]
}
