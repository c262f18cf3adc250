package postgres

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sessiond/sessiond"
)

// Names of the unique indexes, as PostgreSQL reports them in a unique
// violation.
const (
	usernameIndex = "users_username_key"
	emailIndex    = "users_email_key"
)

const userColumns = `id, username, email, password_hash, locked, created_at`

// The case fold of usernames and emails, sessiond.FoldLogin: lower() under
// the "C" collation folds ASCII letters only, whatever the database's
// locale. The two column expressions are those of the unique indexes, so
// lookups use them.
const (
	foldUsername = `lower(username COLLATE "C")`
	foldEmail    = `lower(email COLLATE "C")`
	foldArg      = `lower($1 COLLATE "C")`
)

// scanUser reads one row of userColumns.
func scanUser(row pgx.Row) (*sessiond.User, error) {
	var u sessiond.User
	if err := row.Scan(&u.ID, &u.Username, &u.Email, &u.PasswordHash, &u.Locked, &u.CreatedAt); err != nil {
		return nil, err
	}
	u.CreatedAt = u.CreatedAt.UTC()
	return &u, nil
}

// CreateUser implements sessiond.UserStore. Both unique indexes are checked
// by the INSERT itself; should a user take both the username and the email
// of an existing one, the username is reported.
func (st *UserStore) CreateUser(ctx context.Context, u *sessiond.User) error {
	ctx, cancel, err := st.call(ctx)
	if err != nil {
		return err
	}
	defer cancel()
	_, err = st.pool.Exec(ctx, `INSERT INTO users (`+userColumns+`) VALUES ($1, $2, $3, $4, $5, $6)`,
		u.ID, u.Username, u.Email, u.PasswordHash, u.Locked, u.CreatedAt)
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "23505" { // unique_violation
		switch pe.ConstraintName {
		case usernameIndex:
			return sessiond.ErrUsernameTaken
		case emailIndex:
			if st.usernameTaken(ctx, u.Username) {
				return sessiond.ErrUsernameTaken
			}
			return sessiond.ErrEmailTaken
		}
	}
	if err != nil {
		return wrap(err, "create user %s", u.ID)
	}
	return nil
}

// usernameTaken reports whether a user has username, so that a conflict on
// both names is reported the same way whichever index PostgreSQL checked
// first.
func (st *UserStore) usernameTaken(ctx context.Context, username string) bool {
	var taken bool
	err := st.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM users WHERE `+foldUsername+` = `+foldArg+`)`, username).Scan(&taken)
	return err == nil && taken
}

// UserByID implements sessiond.UserStore.
func (st *UserStore) UserByID(ctx context.Context, id string) (*sessiond.User, error) {
	ctx, cancel, err := st.call(ctx)
	if err != nil {
		return nil, err
	}
	defer cancel()
	u, err := scanUser(st.pool.QueryRow(ctx, `SELECT `+userColumns+` FROM users WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, sessiond.ErrNotFound
	}
	if err != nil {
		return nil, wrap(err, "user %s", id)
	}
	return u, nil
}

// UserByLogin implements sessiond.UserStore. Each comparison uses its
// unique index. A username match wins over an email match, should one
// user's username equal another's email (usernames cannot hold '@', so
// only data written by other means could).
func (st *UserStore) UserByLogin(ctx context.Context, login string) (*sessiond.User, error) {
	ctx, cancel, err := st.call(ctx)
	if err != nil {
		return nil, err
	}
	defer cancel()
	u, err := scanUser(st.pool.QueryRow(ctx, `SELECT `+userColumns+` FROM users
		WHERE `+foldUsername+` = `+foldArg+` OR `+foldEmail+` = `+foldArg+`
		ORDER BY `+foldUsername+` = `+foldArg+` DESC LIMIT 1`, login))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, sessiond.ErrNotFound
	}
	if err != nil {
		return nil, wrap(err, "user by login")
	}
	return u, nil
}

// SetPassword implements sessiond.UserStore.
func (st *UserStore) SetPassword(ctx context.Context, id, hash string) error {
	return st.update(ctx, "set password of %s", id, `UPDATE users SET password_hash = $2 WHERE id = $1`, id, hash)
}

// SetLocked implements sessiond.UserStore. Setting the state the account
// already has succeeds.
func (st *UserStore) SetLocked(ctx context.Context, id string, locked bool) error {
	return st.update(ctx, "set locked of %s", id, `UPDATE users SET locked = $2 WHERE id = $1`, id, locked)
}

// DeleteUser implements sessiond.UserStore. The user's sessions are left to
// the caller, which ends them with a reason.
func (st *UserStore) DeleteUser(ctx context.Context, id string) error {
	return st.update(ctx, "delete user %s", id, `DELETE FROM users WHERE id = $1`, id)
}

// update runs a statement that must change exactly the row of id;
// sessiond.ErrNotFound when there is none.
func (st *UserStore) update(ctx context.Context, what, id, sql string, args ...any) error {
	ctx, cancel, err := st.call(ctx)
	if err != nil {
		return err
	}
	defer cancel()
	tag, err := st.pool.Exec(ctx, sql, args...)
	if err != nil {
		return wrap(err, what, id)
	}
	if tag.RowsAffected() == 0 {
		return sessiond.ErrNotFound
	}
	return nil
}

// Ping implements sessiond.UserStore: it runs a query, so it fails when
// the database cannot serve one, not only when it cannot be reached.
func (st *UserStore) Ping(ctx context.Context) error {
	ctx, cancel, err := st.call(ctx)
	if err != nil {
		return err
	}
	defer cancel()
	var one int
	if err := st.pool.QueryRow(ctx, `SELECT 1`).Scan(&one); err != nil {
		return wrap(err, "ping")
	}
	return nil
}
