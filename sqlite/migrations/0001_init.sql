-- Users, sessions and rate-limit events. Times are unix milliseconds.

CREATE TABLE users (
	id            TEXT NOT NULL PRIMARY KEY,
	username      TEXT NOT NULL,
	-- Lowercased copies enforce case-insensitive uniqueness.
	username_key  TEXT NOT NULL UNIQUE,
	email         TEXT NOT NULL,
	email_key     TEXT NOT NULL UNIQUE,
	password_hash TEXT NOT NULL,
	locked        INTEGER NOT NULL DEFAULT 0,
	created_at    INTEGER NOT NULL
) STRICT;

-- Sessions have no foreign key to users: the session store may be used
-- with users kept elsewhere, and the Manager ends a deleted user's
-- sessions itself, with a reason.
CREATE TABLE sessions (
	id           TEXT NOT NULL PRIMARY KEY,
	user_id      TEXT NOT NULL,
	device_id    TEXT NOT NULL,
	device       TEXT NOT NULL,
	device_class TEXT NOT NULL,
	name         TEXT NOT NULL,
	ip_address   TEXT NOT NULL,
	location     TEXT NOT NULL,
	created_at   INTEGER NOT NULL,
	last_active  INTEGER NOT NULL,
	expires_at   INTEGER NOT NULL,
	generation   INTEGER NOT NULL,
	rotated_at   INTEGER NOT NULL
) STRICT;

CREATE INDEX sessions_user ON sessions (user_id, expires_at);
CREATE INDEX sessions_expires ON sessions (expires_at);

CREATE TABLE limiter_events (
	key        TEXT NOT NULL,
	at         INTEGER NOT NULL,
	expires_at INTEGER NOT NULL
) STRICT;

CREATE INDEX limiter_events_key ON limiter_events (key, at);
CREATE INDEX limiter_events_expires ON limiter_events (expires_at);
