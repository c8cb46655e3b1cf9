-- nsdb node schema, version 2: sync with the hub.

-- The heads (concatenated 32-byte change hashes) of each sheet's document, computed lazily.
-- Triggers drop a row whenever the document is written, so a missing row means "recompute".
CREATE TABLE sync_heads (
    sheet_id TEXT PRIMARY KEY REFERENCES sheets(id) ON DELETE CASCADE,
    heads    BLOB NOT NULL
) WITHOUT ROWID;

-- Bumped on every write of a sheet or a grant, so sync can tell "nothing changed" cheaply.
CREATE TABLE sync_counter (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    n  INTEGER NOT NULL
);
INSERT INTO sync_counter (id, n) VALUES (1, 0);

CREATE TRIGGER sync_sheet_inserted AFTER INSERT ON sheets
BEGIN
    DELETE FROM sync_heads WHERE sheet_id = NEW.id;
    UPDATE sync_counter SET n = n + 1 WHERE id = 1;
END;
CREATE TRIGGER sync_sheet_written AFTER UPDATE OF doc ON sheets
BEGIN
    DELETE FROM sync_heads WHERE sheet_id = NEW.id;
    UPDATE sync_counter SET n = n + 1 WHERE id = 1;
END;

-- Sync state per peer: the heads each sheet had when this node and the peer were last in
-- step. A sheet whose heads differ has changes waiting for that peer.
CREATE TABLE sync_peer_state (
    peer     TEXT NOT NULL,             -- node id (32 hex digits)
    sheet_id TEXT NOT NULL,
    heads    BLOB NOT NULL,
    PRIMARY KEY (peer, sheet_id)
) WITHOUT ROWID;

-- On the hub: sheets opened to a node beyond its own institution (a municipality's
-- applications, access-key linkage). Deny by default: no row, no sheet.
CREATE TABLE sync_grants (
    sheet_id   TEXT NOT NULL,
    node       TEXT NOT NULL,           -- node id (32 hex digits)
    granted_at INTEGER NOT NULL,
    PRIMARY KEY (sheet_id, node)
) WITHOUT ROWID;
CREATE INDEX sync_grants_node ON sync_grants(node);
CREATE TRIGGER sync_grant_added AFTER INSERT ON sync_grants
BEGIN
    UPDATE sync_counter SET n = n + 1 WHERE id = 1;
END;
CREATE TRIGGER sync_grant_removed AFTER DELETE ON sync_grants
BEGIN
    UPDATE sync_counter SET n = n + 1 WHERE id = 1;
END;
