-- Usernames and emails fold ASCII letters only (sessiond.FoldLogin). lower()
-- under a UTF-8 locale folds every letter, so U+212A KELVIN SIGN matched
-- "k"; under the "C" collation it folds A-Z alone, whatever the database's
-- locale. An ASCII fold tells apart at least what the old fold told apart,
-- so rebuilding the indexes cannot fail on existing rows.
DROP INDEX users_username_key;
CREATE UNIQUE INDEX users_username_key ON users (lower(username COLLATE "C"));
DROP INDEX users_email_key;
CREATE UNIQUE INDEX users_email_key ON users (lower(email COLLATE "C"));
