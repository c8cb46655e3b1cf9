-- Research rows are a hub's alone (docs/research.md "Research rows"). The triggers of 017 listed
-- a changed sheet with `INSERT OR IGNORE`, but inside a trigger fired by an upsert (store_sheet's
-- `INSERT … ON CONFLICT DO UPDATE`) the outer statement's conflict handling wins, so a sheet
-- already listed made the save fail with "UNIQUE constraint failed: research_pending.sheet_id".
-- That happened on every second save of a node whose pending rows were never taken off the list
-- (a hospital database once opened with role = "hub"). The triggers now list a sheet only when
-- it is not listed, whatever the outer statement says; nothing stored changes.
DROP TRIGGER research_rows_insert;
DROP TRIGGER research_rows_update;

CREATE TRIGGER research_rows_insert AFTER INSERT ON sheets
WHEN EXISTS (SELECT 1 FROM node_meta WHERE key = 'research_rows')
BEGIN
    DELETE FROM research_rows WHERE sheet_id = new.id;
    INSERT INTO research_pending (sheet_id)
        SELECT new.id WHERE NOT EXISTS (SELECT 1 FROM research_pending WHERE sheet_id = new.id);
END;

CREATE TRIGGER research_rows_update
AFTER UPDATE OF id, doc, form_id, form_version, institution, written_date, status, created_at
ON sheets
WHEN EXISTS (SELECT 1 FROM node_meta WHERE key = 'research_rows')
BEGIN
    DELETE FROM research_rows WHERE sheet_id IN (old.id, new.id);
    DELETE FROM research_pending WHERE sheet_id = old.id AND old.id != new.id;
    INSERT INTO research_pending (sheet_id)
        SELECT new.id WHERE NOT EXISTS (SELECT 1 FROM research_pending WHERE sheet_id = new.id);
END;
