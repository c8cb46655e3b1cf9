-- Terminal certificates (client certificates a node may require of every browser that reaches
-- it: `tls.client_certs = "required"`). The node's terminal CA is one row; its private key
-- (PKCS#8) lives only here, in the encrypted database, and in its backups.
CREATE TABLE terminal_ca (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    common_name TEXT NOT NULL,
    cert_der    BLOB NOT NULL,
    key_der     BLOB NOT NULL,
    created_at  INTEGER NOT NULL
);

-- Every terminal certificate issued, never deleted: revocation sets revoked_at/revoked_by.
-- issued_by and revoked_by are NULL when an operator acted with `nsdb terminal`.
CREATE TABLE terminal_certs (
    serial      TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    institution TEXT NOT NULL,
    issued_by   INTEGER REFERENCES users(id),
    issued_at   INTEGER NOT NULL,
    not_after   INTEGER NOT NULL,
    revoked_at  INTEGER,
    revoked_by  INTEGER REFERENCES users(id)
);
CREATE INDEX terminal_certs_institution ON terminal_certs(institution, issued_at);
