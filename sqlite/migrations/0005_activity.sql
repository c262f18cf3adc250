-- Security activity (docs/design.md, "Security activity"): history, the
-- devices and countries a user signed in from, and the per-user outbox of
-- webhooks and e-mails. Times are unix milliseconds.

-- History; seq orders entries of one instant by their recording.
CREATE TABLE IF NOT EXISTS activity (
	seq     INTEGER PRIMARY KEY AUTOINCREMENT,
	user_id TEXT NOT NULL,
	at      INTEGER NOT NULL,
	data    BLOB NOT NULL
) STRICT;
CREATE INDEX IF NOT EXISTS activity_user ON activity (user_id, at, seq);
CREATE INDEX IF NOT EXISTS activity_at ON activity (at);

-- Devices (kind 0) and countries (kind 1), with the last sign-in from each.
CREATE TABLE IF NOT EXISTS seen (
	user_id TEXT NOT NULL,
	kind    INTEGER NOT NULL,
	value   TEXT NOT NULL,
	seen_at INTEGER NOT NULL,
	PRIMARY KEY (user_id, kind, value)
) STRICT, WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS seen_user ON seen (user_id, seen_at);
CREATE INDEX IF NOT EXISTS seen_at ON seen (seen_at);

-- Messages; seq is their order in the user's queue. next_at NULL: due at
-- once.
CREATE TABLE IF NOT EXISTS outbox (
	seq        INTEGER PRIMARY KEY AUTOINCREMENT,
	queue      TEXT NOT NULL,
	user_id    TEXT NOT NULL,
	id         TEXT NOT NULL,
	body       BLOB NOT NULL,
	created_at INTEGER NOT NULL,
	attempts   INTEGER NOT NULL,
	next_at    INTEGER
) STRICT;
CREATE UNIQUE INDEX IF NOT EXISTS outbox_message ON outbox (queue, user_id, id);
CREATE INDEX IF NOT EXISTS outbox_user ON outbox (queue, user_id, seq);
CREATE INDEX IF NOT EXISTS outbox_created ON outbox (queue, created_at);

-- One row per user with messages in a queue: when the first is due, and
-- its seq (among users due at once, the earlier recorded first). Every
-- write to outbox rewrites the user's row in the same transaction.
CREATE TABLE IF NOT EXISTS outbox_due (
	queue   TEXT NOT NULL,
	user_id TEXT NOT NULL,
	due_at  INTEGER NOT NULL,
	seq     INTEGER NOT NULL,
	PRIMARY KEY (queue, user_id)
) STRICT, WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS outbox_due_at ON outbox_due (queue, due_at, seq);

CREATE TABLE IF NOT EXISTS outbox_leases (
	queue   TEXT NOT NULL,
	user_id TEXT NOT NULL,
	owner   TEXT NOT NULL,
	until   INTEGER NOT NULL,
	PRIMARY KEY (queue, user_id)
) STRICT, WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS outbox_leases_until ON outbox_leases (until);
