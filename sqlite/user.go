package sqlite

import (
	"context"
	"database/sql"
	"errors"

	"github.com/sessiond/sessiond"
)

// UserStore is a sessiond.UserStore in a SQLite file. Usernames and emails
// are unique case-insensitively through folded copies (sessiond.FoldLogin:
// ASCII letters only) with UNIQUE indexes, so concurrent registrations
// cannot both win.
type UserStore struct {
	db *DB
}

var _ sessiond.UserStore = (*UserStore)(nil)

// NewUserStore returns the user store of db.
func NewUserStore(db *DB) *UserStore {
	return &UserStore{db: db}
}

// foldKey is the folded form that uniqueness and lookups compare.
func foldKey(s string) string { return sessiond.FoldLogin(s) }

const userColumns = `id, username, email, password_hash, locked, created_at`

// scanUser reads one row of userColumns.
func scanUser(row *sql.Row) (*sessiond.User, error) {
	var u sessiond.User
	var created int64
	if err := row.Scan(&u.ID, &u.Username, &u.Email, &u.PasswordHash, &u.Locked, &created); err != nil {
		return nil, err
	}
	u.CreatedAt = fromMS(created)
	return &u, nil
}

// CreateUser implements sessiond.UserStore.
func (st *UserStore) CreateUser(ctx context.Context, u *sessiond.User) error {
	_, err := st.db.write.ExecContext(ctx, `INSERT INTO users
		(id, username, username_key, email, email_key, password_hash, locked, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		u.ID, u.Username, foldKey(u.Username), u.Email, foldKey(u.Email), u.PasswordHash, u.Locked, ms(u.CreatedAt))
	switch {
	case err == nil:
		return nil
	case uniqueViolation(err, "users.username_key"):
		return sessiond.ErrUsernameTaken
	case uniqueViolation(err, "users.email_key"):
		return sessiond.ErrEmailTaken
	default:
		return wrap(err, "create user %s", u.ID)
	}
}

// UserByID implements sessiond.UserStore.
func (st *UserStore) UserByID(ctx context.Context, id string) (*sessiond.User, error) {
	u, err := scanUser(st.db.stmts.userByID.QueryRowContext(ctx, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, sessiond.ErrNotFound
	}
	if err != nil {
		return nil, wrap(err, "user %s", id)
	}
	return u, nil
}

// UserByLogin implements sessiond.UserStore. A username match wins over an
// email match, should one user's username equal another's email.
func (st *UserStore) UserByLogin(ctx context.Context, login string) (*sessiond.User, error) {
	u, err := scanUser(st.db.stmts.userByLogin.QueryRowContext(ctx, foldKey(login)))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, sessiond.ErrNotFound
	}
	if err != nil {
		return nil, wrap(err, "user by login")
	}
	return u, nil
}

// SetPassword implements sessiond.UserStore.
func (st *UserStore) SetPassword(ctx context.Context, id, hash string) error {
	res, err := st.db.write.ExecContext(ctx, `UPDATE users SET password_hash = ? WHERE id = ?`, hash, id)
	return affectedOne(res, err, "set password of %s", id)
}

// SetLocked implements sessiond.UserStore.
func (st *UserStore) SetLocked(ctx context.Context, id string, locked bool) error {
	res, err := st.db.write.ExecContext(ctx, `UPDATE users SET locked = ? WHERE id = ?`, locked, id)
	return affectedOne(res, err, "set locked of %s", id)
}

// DeleteUser implements sessiond.UserStore. The user's sessions are left to
// the caller, which ends them with a reason.
func (st *UserStore) DeleteUser(ctx context.Context, id string) error {
	res, err := st.db.write.ExecContext(ctx, `DELETE FROM users WHERE id = ?`, id)
	return affectedOne(res, err, "delete user %s", id)
}

// Ping implements sessiond.UserStore.
func (st *UserStore) Ping(ctx context.Context) error {
	return st.db.ping(ctx)
}
