-- nsdb node schema, version 6: access keys leased from the hub, and keys resolved by this node.

-- Key blocks. At the hub: every block it has leased, to which node (the hub never leases a block
-- twice). At a hospital or municipality: the blocks the hub leased to it, from which 登録 issues
-- keys offline; `next_serial` counts the serials issued (the printed serial is the counter put
-- through the node's keyed permutation, see node/src/keys).
CREATE TABLE key_leases (
    block       INTEGER PRIMARY KEY,     -- the key's first five digits
    node        TEXT NOT NULL,           -- node id (32 hex digits) the block is leased to
    leased_at   INTEGER NOT NULL,        -- unix ms
    next_serial INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX key_leases_node ON key_leases(node, leased_at);

-- Every access key this node resolved at the hub (with the patient's birth date) that gave a
-- sheet: the municipality's intake list (受付) and the hospital's 臨個票連携 list are read from it.
-- Failed attempts are not rows here; they are audit entries.
CREATE TABLE resolutions (
    sheet_id    TEXT NOT NULL,           -- the sheet the hub granted; arrives by sync
    access_key  TEXT NOT NULL,           -- 11 digits
    user_id     INTEGER NOT NULL REFERENCES users(id),
    resolved_at INTEGER NOT NULL,        -- unix ms
    PRIMARY KEY (sheet_id)
) WITHOUT ROWID;
CREATE INDEX resolutions_at ON resolutions(resolved_at DESC);
