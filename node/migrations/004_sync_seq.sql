-- nsdb node schema, version 4: sync state brought up to date by change, not recomputed.

-- The change counter's value when each sheet's heads were last written. Heads are written in
-- the same transaction as the document (`sheets::store_sheet`), so the rows with `seq` above
-- the counter an inventory was computed at are exactly the sheets written since.
ALTER TABLE sync_heads ADD COLUMN seq INTEGER NOT NULL DEFAULT 0;
CREATE INDEX sync_heads_seq ON sync_heads(seq);

-- The change counter at which this node was last in step with each peer: a sheet whose heads
-- were written after it has changes waiting for that peer. It replaces the per-sheet copy of
-- the heads in `sync_peer_state`, which every session had to rewrite.
CREATE TABLE sync_in_step (
    peer TEXT PRIMARY KEY,              -- node id (32 hex digits)
    seq  INTEGER NOT NULL
) WITHOUT ROWID;
DROP TABLE sync_peer_state;
