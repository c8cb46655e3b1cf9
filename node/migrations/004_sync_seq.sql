-- nsdb node schema, version 4: sync inventories brought up to date by change.

-- The change counter's value when each sheet's heads were last written. Heads are written in
-- the same transaction as the document (`sheets::store_sheet`), so the rows with `seq` above
-- the counter an inventory was computed at are exactly the sheets written since.
ALTER TABLE sync_heads ADD COLUMN seq INTEGER NOT NULL DEFAULT 0;
CREATE INDEX sync_heads_seq ON sync_heads(seq);
