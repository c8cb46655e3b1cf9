-- nsdb node schema: the sheets sync set aside, kept across restarts.

-- A sheet that did not cross to a peer in the last sessions (too large, unreadable here, or
-- refused by the peer), set aside so the others keep flowing and retried with backoff. Written
-- by the sync loop after each session that changed the list; read when sync starts, so the
-- list, its reasons and its retry times survive a restart (docs/sync.md).
CREATE TABLE sync_set_aside (
    peer        TEXT NOT NULL,           -- node id (32 hex digits) of the peer (the hub)
    sheet_id    TEXT NOT NULL,
    code        TEXT NOT NULL,           -- too_large | unreadable | refused
    reason      TEXT NOT NULL,           -- in words for the sync page (Japanese)
    detail      TEXT NOT NULL,           -- the technical detail (may be English)
    since       INTEGER NOT NULL,        -- unix ms of the first failure
    attempts    INTEGER NOT NULL,        -- sessions in which it failed
    next_retry  INTEGER NOT NULL,        -- unix ms when it is offered again
    PRIMARY KEY (peer, sheet_id)
) WITHOUT ROWID;
