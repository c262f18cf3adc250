-- One-time handoff codes (docs/design.md, "Handoff"), kept only as the
-- SHA-256 of the code; used counts the takes (1: the first).
CREATE TABLE IF NOT EXISTS handoffs (
	code_hash  TEXT PRIMARY KEY,
	user_id    TEXT NOT NULL,
	session_id TEXT NOT NULL,
	expires_at INTEGER NOT NULL,
	used       INTEGER NOT NULL DEFAULT 0
) STRICT;
CREATE INDEX IF NOT EXISTS handoffs_expires_at ON handoffs (expires_at);
