-- At the hub: every signed audit checkpoint a node sent (docs/security.md, "Audit anchoring").
-- Rows are never changed or deleted; the newest by id is the one a node's next checkpoint is
-- compared with. `head` and `signature` are hex; `restored` is 1 when the node said it was
-- restored from a backup since it last sent one.
CREATE TABLE audit_anchors (
    id        INTEGER PRIMARY KEY,
    node      TEXT NOT NULL,
    seq       INTEGER NOT NULL,
    head      TEXT NOT NULL,
    signature TEXT NOT NULL,
    received  INTEGER NOT NULL,
    restored  INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX audit_anchors_node ON audit_anchors (node, id);
CREATE TRIGGER audit_anchors_no_update BEFORE UPDATE ON audit_anchors
BEGIN SELECT RAISE(ABORT, 'audit anchors are never changed'); END;
CREATE TRIGGER audit_anchors_no_delete BEFORE DELETE ON audit_anchors
BEGIN SELECT RAISE(ABORT, 'audit anchors are never deleted'); END;
