-- nsdb node schema, version 5: bulk registration (一括登録) of sealed files from the check tool.

-- The check-tool public key of a hospital user (ed25519, 64 hex digits). The node opens sealed
-- files signed by these keys only, and only for the signer's own institution. One key per user;
-- registering a new one replaces the old (暗号鍵再発行).
CREATE TABLE user_keys (
    user_id    INTEGER PRIMARY KEY REFERENCES users(id),
    public_key TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL
);

-- Every sealed file imported, by the SHA-256 of its bytes: the same file uploaded again creates
-- nothing new. Written in the same transaction as the sheet it created.
CREATE TABLE imports (
    file_hash  TEXT PRIMARY KEY,        -- SHA-256 of the sealed file, hex
    sheet_id   TEXT NOT NULL REFERENCES sheets(id),
    user_id    INTEGER NOT NULL REFERENCES users(id),   -- who uploaded it
    signer     TEXT NOT NULL,           -- the check-tool key that signed it, hex
    at         INTEGER NOT NULL
) WITHOUT ROWID;
