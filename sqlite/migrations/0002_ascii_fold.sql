-- Usernames and emails fold ASCII letters only (sessiond.FoldLogin): the
-- keys written before folded every Unicode letter, so U+212A KELVIN SIGN
-- matched "k". SQLite's lower() folds ASCII letters only, as FoldLogin
-- does. An ASCII fold tells apart at least what the old fold told apart,
-- so no two rows can collide.
UPDATE users SET username_key = lower(username), email_key = lower(email);
