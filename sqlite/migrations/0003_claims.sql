-- The app's own claims of a session (compact JSON, '' for none), which
-- every access token of the session carries.
ALTER TABLE sessions ADD COLUMN claims TEXT NOT NULL DEFAULT '';
