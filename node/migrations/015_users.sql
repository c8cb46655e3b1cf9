-- User administration (医療機関ユーザ検索 and its actions, docs/security.md "User administration").
-- responsible: 1 when this doctor holds the institution's 責任者 role (the badge in the user
-- list); an account of kind `admin` is a 責任者 by its kind. At most one doctor per institution.
ALTER TABLE users ADD COLUMN responsible INTEGER NOT NULL DEFAULT 0;
CREATE UNIQUE INDEX users_one_responsible ON users(institution) WHERE responsible = 1;
-- deleted_at: when the account was deleted (削除, Unix ms; NULL = not deleted). A deleted account
-- cannot sign in and is not listed, but its row stays so that the audit log and the sheets it
-- wrote still name it.
ALTER TABLE users ADD COLUMN deleted_at INTEGER;
-- flash: a notice for the session's next page (「パスワードを初期化しました」), shown once and then
-- cleared. Never a password.
ALTER TABLE sessions ADD COLUMN flash TEXT;
