-- Research output at the hub (M19): the exports made, with their k-anonymity figure, and the
-- national statistics last built. The pseudonym secret is kept in `node_meta`
-- (`research_secret`, `research_secret_since`). Nothing here holds a name, an address or a key.

CREATE TABLE research_exports (
    id           INTEGER PRIMARY KEY,
    created_at   INTEGER NOT NULL,
    dir          TEXT NOT NULL,
    sheets       INTEGER NOT NULL,
    -- The smallest group of exported sheets sharing (age band, sex, prefecture, disease).
    k_min        INTEGER NOT NULL,
    -- Sheets in groups smaller than 5.
    below_k5     INTEGER NOT NULL,
    secret_since INTEGER NOT NULL,
    -- The files written, relative to `dir`, as a JSON list.
    files        TEXT NOT NULL
);

-- Consented sheets counted by year, disease, prefecture, age band, sex and severity, as built by
-- the last `nsdb research stats` (or the page's 集計を更新). Raw counts: every table shown or
-- written from them goes through suppression first.
CREATE TABLE research_counts (
    year       INTEGER NOT NULL,
    disease    TEXT NOT NULL,
    prefecture TEXT NOT NULL,
    age_band   TEXT NOT NULL,
    sex        TEXT NOT NULL,
    severity   TEXT NOT NULL,
    n          INTEGER NOT NULL,
    PRIMARY KEY (year, disease, prefecture, age_band, sex, severity)
) WITHOUT ROWID;
