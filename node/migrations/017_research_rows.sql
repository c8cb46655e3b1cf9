-- Research rows (M19, docs/research.md "Research rows"): at the hub, each sheet's research row,
-- de-identified by the rules of research::deid, written by store_sheet in the same transaction
-- as the sheet, so that `nsdb research export` and `nsdb research stats` read rows instead of
-- loading every Automerge document. A row never holds a name, かな, address, insurance number,
-- access key or free text: only pseudonyms, the quasi-identifiers and the kept items.
CREATE TABLE research_rows (
    sheet_id     TEXT PRIMARY KEY,
    kept         INTEGER NOT NULL,  -- 1: goes into research output; 0: left out (see left_out)
    left_out     TEXT,              -- 'status' (not registered/approved), 'consent', 'form' (unknown form)
    secret_since INTEGER NOT NULL,  -- the pseudonym secret the row was written under (unix ms)
    year         INTEGER,           -- year of 記載年月日 (partition)
    form_id      TEXT,
    disease      TEXT,              -- partition key: '002', '011-1', 's12_04_014'
    record       TEXT,              -- the sheet's pseudonym
    patient      TEXT,              -- the patient's pseudonym
    form_version TEXT,
    age          INTEGER,
    age_band     TEXT,
    sex          TEXT,
    prefecture   TEXT,
    severity     TEXT,
    items        TEXT               -- kept items: id U+001F value, joined by U+001E, in form order
);
-- The export's order: one partition (year, form) after another.
CREATE INDEX research_rows_export ON research_rows(year, form_id) WHERE kept = 1;
-- The statistics' count cube, read from the index alone (never the rows' items).
CREATE INDEX research_rows_counts
    ON research_rows(year, disease, prefecture, age_band, sex, severity) WHERE kept = 1;
CREATE INDEX research_rows_left_out ON research_rows(left_out) WHERE kept = 0;

-- Sheets whose row is missing or out of date: written by the triggers below when a sheet
-- changes by any path that did not also write its row, emptied by store_sheet (which writes the
-- row) and by the export, which fills the rows of what is listed here first.
CREATE TABLE research_pending (
    sheet_id TEXT PRIMARY KEY
);

-- Only at a hub: `research_rows` in node_meta is set when a hub opens its database.
CREATE TRIGGER research_rows_insert AFTER INSERT ON sheets
WHEN EXISTS (SELECT 1 FROM node_meta WHERE key = 'research_rows')
BEGIN
    DELETE FROM research_rows WHERE sheet_id = new.id;
    INSERT OR IGNORE INTO research_pending (sheet_id) VALUES (new.id);
END;

CREATE TRIGGER research_rows_update
AFTER UPDATE OF id, doc, form_id, form_version, institution, written_date, status, created_at
ON sheets
WHEN EXISTS (SELECT 1 FROM node_meta WHERE key = 'research_rows')
BEGIN
    DELETE FROM research_rows WHERE sheet_id IN (old.id, new.id);
    DELETE FROM research_pending WHERE sheet_id = old.id AND old.id != new.id;
    INSERT OR IGNORE INTO research_pending (sheet_id) VALUES (new.id);
END;

CREATE TRIGGER research_rows_delete AFTER DELETE ON sheets
BEGIN
    DELETE FROM research_rows WHERE sheet_id = old.id;
    DELETE FROM research_pending WHERE sheet_id = old.id;
END;
