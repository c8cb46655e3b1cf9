-- nsdb node schema, version 21: a sheet imported by 一括登録 is known by its content, not only by
-- its file's bytes. A sealed file is encrypted afresh every time the check tool runs, so the same
-- sheet sealed twice gives two different files; `sheet_digest` (SHA-256 of the form id and the
-- entered values: `imports::sheet_digest`) makes the second a duplicate at the same institution.
-- NULL on files imported before this version (they are still found by `file_hash`).
ALTER TABLE imports ADD COLUMN sheet_digest TEXT;
CREATE INDEX imports_sheet_digest ON imports(sheet_digest) WHERE sheet_digest IS NOT NULL;
