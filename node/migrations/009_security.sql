-- Sign-in protection (docs/security.md, "Sign-in").
-- failed_signins: consecutive wrong passwords since the last success or lock;
-- locked_until: Unix ms until which a sign-in is refused after too many (the cool-down lock,
-- apart from `locked`, the administrator's lock).
ALTER TABLE users ADD COLUMN failed_signins INTEGER NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN locked_until INTEGER;
-- Sessions end after 30 idle minutes: the last request that used one (Unix ms, kept to a minute).
ALTER TABLE sessions ADD COLUMN last_seen INTEGER NOT NULL DEFAULT 0;
UPDATE sessions SET last_seen = created_at;

-- Signed checkpoints of the audit chain: the node's ed25519 identity key signs the head
-- (seq, hash) of the chain, so a chain rewritten end to end with the database key alone no
-- longer matches what was signed (node/src/audit/mod.rs, `checkpoint`, `verify_anchored`).
CREATE TABLE audit_checkpoints (
    seq        INTEGER PRIMARY KEY,  -- the audit entry whose hash was signed
    head       BLOB NOT NULL,        -- that entry's hash
    at         INTEGER NOT NULL,     -- Unix ms of signing
    public_key BLOB NOT NULL,        -- the signer's ed25519 key (32 bytes)
    signature  BLOB NOT NULL         -- ed25519 over checkpoint_message(seq, head)
);
CREATE TRIGGER audit_checkpoints_no_update BEFORE UPDATE ON audit_checkpoints
BEGIN SELECT RAISE(ABORT, 'audit checkpoints are append-only'); END;
CREATE TRIGGER audit_checkpoints_no_delete BEFORE DELETE ON audit_checkpoints
BEGIN SELECT RAISE(ABORT, 'audit checkpoints are append-only'); END;
