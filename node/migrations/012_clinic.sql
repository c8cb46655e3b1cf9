-- Clinics without a node of their own are served by the hub (M18, docs/security.md, "Clinics
-- on the hub"): each clinic's users resolve access keys there (臨個票連携) for their clinic
-- alone, so a resolution belongs to an institution. `institution` is the resolving user's
-- 医療機関コード on the hub and '' on a hospital or municipality node (the node's own, as
-- before); one row per sheet and institution.
CREATE TABLE resolutions_by_institution (
    sheet_id    TEXT NOT NULL,
    access_key  TEXT NOT NULL,           -- 11 digits
    user_id     INTEGER NOT NULL REFERENCES users(id),
    resolved_at INTEGER NOT NULL,        -- unix ms
    institution TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (sheet_id, institution)
) WITHOUT ROWID;
INSERT INTO resolutions_by_institution (sheet_id, access_key, user_id, resolved_at, institution)
    SELECT sheet_id, access_key, user_id, resolved_at, '' FROM resolutions;
DROP TABLE resolutions;
ALTER TABLE resolutions_by_institution RENAME TO resolutions;
CREATE INDEX resolutions_at ON resolutions(resolved_at DESC);
