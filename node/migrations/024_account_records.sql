-- Designated doctors' accounts issued by a municipality and carried to where the doctor works
-- through the hub (docs/security.md "Accounts issued where the seed issues them").
--
-- account_records: at a municipality, the accounts it issued and manages (pending = 1 until the
-- hub acknowledged the latest change, refused = the hub's reason when it would not take it); at
-- the hub, the national registry (version: the hub's counter, increasing with every change of any
-- record, which nodes pull from). record is the JSON of `accounts::registry::AccountRecord`.
CREATE TABLE account_records (
    account_id TEXT PRIMARY KEY,
    version    INTEGER NOT NULL,
    record     TEXT NOT NULL,
    pending    INTEGER NOT NULL DEFAULT 0,
    refused    TEXT
);
CREATE INDEX account_records_version ON account_records(version);
-- At the hub: every institution an account ever reached (its main institution and every 兼務
-- it held), so that a node also learns that an account no longer works there.
CREATE TABLE account_reach (
    account_id  TEXT NOT NULL,
    institution TEXT NOT NULL,
    PRIMARY KEY (institution, account_id)
) WITHOUT ROWID;
-- At a node: a replicated account's row in users. account_id is the registry's id (NULL for an
-- account made on this node); home_institution its 主たる勤務先 (users.institution is the
-- institution it acts for on this node, another for a 兼務); managed_by the 自治体コード that
-- manages it; away = 1 while the account does not reach this node's institution (no sign-in);
-- password_set_at when its password was last set (the newer one wins); password_pending = 1
-- while a password set here has not reached the hub.
ALTER TABLE users ADD COLUMN account_id TEXT;
ALTER TABLE users ADD COLUMN home_institution TEXT;
ALTER TABLE users ADD COLUMN managed_by TEXT;
ALTER TABLE users ADD COLUMN away INTEGER NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN password_set_at INTEGER;
ALTER TABLE users ADD COLUMN password_pending INTEGER NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN register_number TEXT;
CREATE UNIQUE INDEX users_account ON users(account_id) WHERE account_id IS NOT NULL;
-- The 兼務 of a replicated account as the registry holds them (at most 10).
CREATE TABLE user_kenmu (
    user_id     INTEGER NOT NULL REFERENCES users(id),
    institution TEXT NOT NULL,
    name        TEXT NOT NULL,
    department  TEXT,
    visible     INTEGER NOT NULL,
    PRIMARY KEY (user_id, institution)
) WITHOUT ROWID;
