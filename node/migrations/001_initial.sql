-- nsdb node schema, version 1.

CREATE TABLE node_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- Hospitals, municipalities and the ministry known to this node.
CREATE TABLE institutions (
    code TEXT PRIMARY KEY,          -- 医療機関コード / 自治体コード
    name TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('hospital', 'municipality', 'ministry'))
);

CREATE TABLE users (
    id            INTEGER PRIMARY KEY,
    login         TEXT NOT NULL UNIQUE,
    name          TEXT NOT NULL,
    kind          TEXT NOT NULL,    -- see node::domain::UserKind
    institution   TEXT NOT NULL REFERENCES institutions(code),
    department    TEXT,
    password_hash TEXT NOT NULL,    -- Argon2id PHC string
    locked        INTEGER NOT NULL DEFAULT 0,
    expires_on    TEXT,             -- YYYY-MM-DD, NULL = no expiry
    created_at    INTEGER NOT NULL
);
CREATE INDEX users_institution ON users(institution);

-- Server-side sessions. Only a hash of the token is stored.
CREATE TABLE sessions (
    token_hash BLOB PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    csrf       TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX sessions_user ON sessions(user_id);

-- Each sheet's Automerge document plus the columns lists and searches need.
CREATE TABLE sheets (
    id               TEXT PRIMARY KEY,
    doc              BLOB NOT NULL,
    form_id          TEXT NOT NULL,
    form_version     TEXT NOT NULL,
    kokuji           INTEGER NOT NULL,
    eda              INTEGER NOT NULL,
    disease          TEXT NOT NULL,
    institution      TEXT NOT NULL,
    doctor           INTEGER,
    application_type TEXT,          -- 1 新規, 2 更新
    insurer_no       TEXT,
    insured_no       TEXT,
    access_key       TEXT UNIQUE,
    name             TEXT,
    name_kana        TEXT,
    birth_date       TEXT,
    sex              TEXT,
    written_date     TEXT,
    linked_date      TEXT,
    status           TEXT NOT NULL,
    registration     TEXT NOT NULL CHECK (registration IN ('screen', 'bulk', 'paper')),
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
);
CREATE INDEX sheets_updated ON sheets(institution, updated_at DESC);
CREATE INDEX sheets_kana ON sheets(institution, name_kana);
CREATE INDEX sheets_insured ON sheets(insured_no);

-- Append-only, hash-chained record of every access to patient data and every account action.
-- `detail` never holds personal data.
CREATE TABLE audit (
    seq       INTEGER PRIMARY KEY,
    at        INTEGER NOT NULL,
    user_id   INTEGER,
    action    TEXT NOT NULL,
    target    TEXT,
    detail    TEXT,
    prev_hash BLOB NOT NULL,
    hash      BLOB NOT NULL
);
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
