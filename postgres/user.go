package postgres

import (
	"context"
	"errors"
	"time"

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

// CreateUsers implements sessiond.UserStore: one INSERT of the whole batch
// from arrays, in order, in which ON CONFLICT DO NOTHING leaves out a user
// that takes a name of an existing one or of an earlier one of the batch;
// a second query in the same transaction then tells which name each of
// those took.
func (st *UserStore) CreateUsers(ctx context.Context, users []*sessiond.User) ([]error, error) {
	errs := make([]error, len(users))
	if len(users) == 0 {
		return errs, nil
	}
	ctx, cancel, err := st.call(ctx)
	if err != nil {
		return nil, err
	}
	defer cancel()
	n := len(users)
	ids, names, emails, hashes := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	locked, created := make([]bool, n), make([]time.Time, n)
	for i, u := range users {
		ids[i], names[i], emails[i], hashes[i], locked[i], created[i] = u.ID, u.Username, u.Email, u.PasswordHash, u.Locked, u.CreatedAt
	}
	tx, err := st.pool.Begin(ctx)
	if err != nil {
		return nil, wrap(err, "create users: begin")
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	rows, err := tx.Query(ctx, `INSERT INTO users (`+userColumns+`)
		SELECT id, username, email, password_hash, locked, created_at
		FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::boolean[], $6::timestamptz[])
			WITH ORDINALITY AS u(id, username, email, password_hash, locked, created_at, n)
		ORDER BY n
		ON CONFLICT DO NOTHING
		RETURNING id`, ids, names, emails, hashes, locked, created)
	if err != nil {
		return nil, wrap(err, "create users")
	}
	stored, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, wrap(err, "create users")
	}
	if len(stored) < n {
		if err := st.whichTaken(ctx, tx, users, stored, errs); err != nil {
			return nil, err
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, wrap(err, "create users: commit")
	}
	return errs, nil
}

// whichTaken sets errs[i] for each of users that is not among the stored
// ids: ErrUsernameTaken when its username is taken by an existing user or
// an earlier one of the batch, else ErrEmailTaken.
func (st *UserStore) whichTaken(ctx context.Context, tx pgx.Tx, users []*sessiond.User, stored []string, errs []error) error {
	in := make(map[string]bool, len(stored))
	for _, id := range stored {
		in[id] = true
	}
	pos := make(map[string]int, len(users)) // id: index in users
	var left []string
	for i, u := range users {
		pos[u.ID] = i
		if !in[u.ID] {
			left = append(left, u.Username)
		}
	}
	rows, err := tx.Query(ctx, `SELECT `+foldUsername+`, id FROM users
		WHERE `+foldUsername+` = ANY (SELECT lower(x COLLATE "C") FROM unnest($1::text[]) AS x)`, left)
	if err != nil {
		return wrap(err, "create users: taken names")
	}
	type holder struct{ Name, ID string }
	holders, err := pgx.CollectRows(rows, pgx.RowToStructByPos[holder])
	if err != nil {
		return wrap(err, "create users: taken names")
	}
	held := make(map[string][]string, len(holders)) // folded username: ids
	for _, h := range holders {
		held[h.Name] = append(held[h.Name], h.ID)
	}
	for i, u := range users {
		if in[u.ID] {
			continue
		}
		errs[i] = sessiond.ErrEmailTaken
		for _, id := range held[sessiond.FoldLogin(u.Username)] {
			if p, ok := pos[id]; !ok || p < i {
				errs[i] = sessiond.ErrUsernameTaken
			}
		}
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

// ReplacePasswordHash implements sessiond.UserStore.
func (st *UserStore) ReplacePasswordHash(ctx context.Context, id, old, hash string) error {
	return st.update(ctx, "replace password hash of %s", id, `UPDATE users SET password_hash = $3 WHERE id = $1 AND password_hash = $2`, id, old, hash)
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
