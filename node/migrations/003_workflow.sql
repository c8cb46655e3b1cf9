-- Workflow (clerk → doctor, registration, approval), carry-forward and access keys.

-- Who the sheet waits for (a doctor asked to review it, or a clerk it was returned to).
ALTER TABLE sheets ADD COLUMN assignee INTEGER REFERENCES users(id);
-- The sheet this one was carried forward from (前回値踏襲).
ALTER TABLE sheets ADD COLUMN carried_from TEXT;
CREATE INDEX sheets_assignee ON sheets(assignee, status);
-- The list's order (newest first, id to break ties) straight from an index.
DROP INDEX sheets_updated;
CREATE INDEX sheets_list ON sheets(institution, updated_at DESC, id);
CREATE INDEX sheets_list_all ON sheets(updated_at DESC, id);
-- Kana search newest first without touching the table.
DROP INDEX sheets_kana;
CREATE INDEX sheets_kana ON sheets(institution, name_kana, updated_at, id);
CREATE INDEX sheets_status ON sheets(institution, status, updated_at DESC);
CREATE INDEX sheets_written ON sheets(institution, written_date);
CREATE INDEX sheets_kokuji ON sheets(institution, kokuji, eda);
CREATE INDEX sheets_doctor ON sheets(institution, doctor);
CREATE INDEX sheets_patient ON sheets(institution, insured_no, birth_date);

-- Every workflow step of a sheet: who did what, to whom, with which comment.
CREATE TABLE workflow_events (
    id       INTEGER PRIMARY KEY,
    sheet_id TEXT NOT NULL REFERENCES sheets(id),
    at       INTEGER NOT NULL,
    actor    INTEGER NOT NULL REFERENCES users(id),
    assignee INTEGER REFERENCES users(id),
    action   TEXT NOT NULL,   -- create, carry, request, pullback, return, register, approve, release
    status   TEXT NOT NULL,   -- the sheet's status after the step
    comment  TEXT
);
CREATE INDEX workflow_sheet ON workflow_events(sheet_id, id);

-- Carried-forward values the user has not yet confirmed or changed.
CREATE TABLE carried_items (
    sheet_id TEXT NOT NULL REFERENCES sheets(id),
    item_id  TEXT NOT NULL,
    PRIMARY KEY (sheet_id, item_id)
) WITHOUT ROWID;

-- The node's access-key blocks and the next serial in each.
CREATE TABLE access_key_counter (
    block       INTEGER PRIMARY KEY,
    next_serial INTEGER NOT NULL
);
