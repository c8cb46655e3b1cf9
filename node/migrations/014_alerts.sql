-- Unusual-use alerts (利用状況の監視, docs/security.md "Monitoring"): detectors read the audit
-- log incrementally and raise at most one alert per rule, subject and window. Alerts hold ids
-- and counts only, never personal data.
CREATE TABLE alerts (
    id              INTEGER PRIMARY KEY,
    rule            TEXT NOT NULL,     -- monitor::Rule::id
    subject         TEXT NOT NULL,     -- the rule's subject as a key: 'u:12', 'n:<node>:u:5', 'n:<node>'
    user_id         INTEGER,           -- a user of this node, when the subject is one
    node            TEXT,              -- the asking node (hex id), for resolutions at the hub
    remote_user     INTEGER,           -- the user id on the asking node
    window_start    INTEGER NOT NULL,  -- unix ms, inclusive
    window_end      INTEGER NOT NULL,  -- unix ms, exclusive
    count           INTEGER NOT NULL,  -- what the rule counts in the window
    first_seq       INTEGER NOT NULL,  -- first audit entry counted
    last_seq        INTEGER NOT NULL,  -- last audit entry counted
    raised_at       INTEGER NOT NULL,  -- unix ms
    acknowledged_by INTEGER REFERENCES users(id),
    acknowledged_at INTEGER,
    UNIQUE (rule, subject, window_start)
);
CREATE INDEX alerts_raised ON alerts(raised_at DESC);
-- How far the detectors have read the audit log (one row).
CREATE TABLE monitor_progress (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    last_seq INTEGER NOT NULL
);
-- What each rule counted in the windows still open: one row per distinct item (a sheet id, or
-- an entry's seq), so a window's count is a lookup. Rows of windows closed for a day are dropped.
CREATE TABLE monitor_counts (
    rule         TEXT NOT NULL,
    subject      TEXT NOT NULL,
    window_start INTEGER NOT NULL,
    window_end   INTEGER NOT NULL,
    item         TEXT NOT NULL,
    weight       INTEGER NOT NULL,  -- 1, or a research export's sheets
    seq          INTEGER NOT NULL,  -- the first audit entry that counted the item
    PRIMARY KEY (rule, subject, window_start, item)
) WITHOUT ROWID;
CREATE INDEX monitor_counts_end ON monitor_counts(window_end);
-- The ministry's exceptional, justified and time-limited access to one identified sheet; the
-- reason is in the audit entry (`identified_access`).
CREATE TABLE identified_access (
    id         INTEGER PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES users(id),
    sheet_id   TEXT NOT NULL,
    granted_at INTEGER NOT NULL,
    until      INTEGER NOT NULL
);
CREATE INDEX identified_access_user ON identified_access(user_id, sheet_id, until);
