-- Paper sheets (紙の臨個票, M15): the scanned PDF of a sheet that did not go through the system,
-- uploaded at a municipality and sent to the hub, where a contractor enters its data
-- (docs/review.md, "The paper path"). The same table at both ends: at a municipality its own
-- uploads, at the hub the papers received. The PDF is stored in the encrypted database only.
CREATE TABLE papers (
    id           TEXT PRIMARY KEY,  -- random, 32 hex digits; the same at both ends
    municipality TEXT NOT NULL,     -- 自治体コード of the uploading municipality
    node         TEXT NOT NULL,     -- node id (32 hex digits) of the uploading node
    name_kana    TEXT NOT NULL,     -- 受給者/申請者 氏名カナ as read from the paper
    birth_date   TEXT NOT NULL,     -- YYYY-MM-DD
    disease      TEXT NOT NULL,     -- 告示番号 ("6") or 小慢 疾患群-番号 ("12-1"), as on the paper
    pdf          BLOB NOT NULL,     -- the scanned PDF
    pdf_sha256   TEXT NOT NULL,     -- hex; the hub refuses a paper whose bytes do not match
    uploaded_by  INTEGER,           -- the uploading user at the municipality (NULL at the hub)
    uploaded_at  INTEGER NOT NULL,  -- Unix ms
    state        TEXT NOT NULL CHECK (state IN ('pending', 'received', 'entered')),
    received_at  INTEGER,           -- Unix ms the hub stored it
    sheet_id     TEXT,              -- the sheet entered from it
    access_key   TEXT,              -- that sheet's access key (11 digits)
    entered_at   INTEGER            -- Unix ms the data was entered
);
CREATE INDEX papers_by_state ON papers (state, uploaded_at);
CREATE INDEX papers_by_sheet ON papers (sheet_id);
