-- Users. Usernames and emails are kept as given and unique
-- case-insensitively through unique indexes on lower(): the database
-- enforces it, so concurrent registrations cannot both win. lower() folds
-- what the database's LC_CTYPE knows (a UTF-8 locale folds non-ASCII
-- letters too); usernames are ASCII.
CREATE TABLE users (
	id            text        NOT NULL PRIMARY KEY,
	username      text        NOT NULL,
	email         text        NOT NULL,
	password_hash text        NOT NULL,
	locked        boolean     NOT NULL DEFAULT false,
	created_at    timestamptz NOT NULL
);

CREATE UNIQUE INDEX users_username_key ON users (lower(username));
CREATE UNIQUE INDEX users_email_key ON users (lower(email));
