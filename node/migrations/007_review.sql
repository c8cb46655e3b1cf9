-- nsdb node schema, version 7: the municipality's review and inquiries (照会), as the list sees them.
-- The review and the inquiries live in the sheet's document (reviews by 自治体コード, inquiries by
-- id); these columns are their projection, written by every store of the document
-- (`sheets::store_sheet`), so lists never open documents. `linked_date` (自治体連携日, from
-- schema 1) is filled from the earliest review's `linked_ms`.

-- 認定結果 of the latest decided review: approved, rejected or deferred; NULL while undecided.
ALTER TABLE sheets ADD COLUMN review_result TEXT;
-- How many of the sheet's inquiries are open (asked, not answered).
ALTER TABLE sheets ADD COLUMN open_inquiries INTEGER NOT NULL DEFAULT 0;
-- How many are answered and wait for the municipality to close them.
ALTER TABLE sheets ADD COLUMN answered_inquiries INTEGER NOT NULL DEFAULT 0;
-- The workflow list's 照会 section reads only the few sheets with an open inquiry.
CREATE INDEX sheets_open_inquiries ON sheets(institution) WHERE open_inquiries > 0;
