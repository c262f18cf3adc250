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

const insertUser = `INSERT INTO users
	(id, username, username_key, email, email_key, password_hash, locked, created_at)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?)`

// CreateUser implements sessiond.UserStore.
func (st *UserStore) CreateUser(ctx context.Context, u *sessiond.User) error {
	_, err := st.db.write.ExecContext(ctx, insertUser,
		u.ID, u.Username, foldKey(u.Username), u.Email, foldKey(u.Email), u.PasswordHash, u.Locked, ms(u.CreatedAt))
	if err = createError(err); err != nil && !taken(err) {
		return wrap(err, "create user %s", u.ID)
	}
	return usernameFirst(ctx, st.db.write, u, err)
}

// usernameFirst turns ErrEmailTaken into ErrUsernameTaken when the user's
// username is taken too: SQLite reports whichever index it checked first,
// and a user taking both names is reported for the username.
func usernameFirst(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}, u *sessiond.User, err error) error {
	if !errors.Is(err, sessiond.ErrEmailTaken) {
		return err
	}
	var one int
	if q.QueryRowContext(ctx, `SELECT 1 FROM users WHERE username_key = ?`, foldKey(u.Username)).Scan(&one) == nil {
		return sessiond.ErrUsernameTaken
	}
	return err
}

// taken reports whether err is ErrUsernameTaken or ErrEmailTaken.
func taken(err error) bool {
	return errors.Is(err, sessiond.ErrUsernameTaken) || errors.Is(err, sessiond.ErrEmailTaken)
}

// createError translates the error of an INSERT of a user: nil,
// ErrUsernameTaken, ErrEmailTaken, or err itself.
func createError(err error) error {
	switch {
	case err == nil:
		return nil
	case uniqueViolation(err, "users.username_key"):
		return sessiond.ErrUsernameTaken
	case uniqueViolation(err, "users.email_key"):
		return sessiond.ErrEmailTaken
	}
	return err
}

// CreateUsers implements sessiond.UserStore: one transaction on the write
// connection, in which a refused INSERT undoes only itself.
func (st *UserStore) CreateUsers(ctx context.Context, users []*sessiond.User) ([]error, error) {
	errs := make([]error, len(users))
	if len(users) == 0 {
		return errs, nil
	}
	tx, err := st.db.write.BeginTx(ctx, nil)
	if err != nil {
		return nil, wrap(err, "create users: begin")
	}
	defer tx.Rollback()
	stmt, err := tx.PrepareContext(ctx, insertUser)
	if err != nil {
		return nil, wrap(err, "create users: prepare")
	}
	defer stmt.Close()
	for i, u := range users {
		_, err := stmt.ExecContext(ctx, u.ID, u.Username, foldKey(u.Username), u.Email, foldKey(u.Email), u.PasswordHash, u.Locked, ms(u.CreatedAt))
		if errs[i] = createError(err); errs[i] != nil && !taken(errs[i]) {
			return nil, wrap(err, "create users: user %s", u.ID)
		}
		errs[i] = usernameFirst(ctx, tx, u, errs[i])
	}
	if err := tx.Commit(); err != nil {
		return nil, wrap(err, "create users: commit")
	}
	return errs, nil
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

// ReplacePasswordHash implements sessiond.UserStore.
func (st *UserStore) ReplacePasswordHash(ctx context.Context, id, old, hash string) error {
	res, err := st.db.write.ExecContext(ctx, `UPDATE users SET password_hash = ? WHERE id = ? AND password_hash = ?`, hash, id, old)
	return affectedOne(res, err, "replace password hash of %s", id)
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
