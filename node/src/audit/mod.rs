//! The audit log: an append-only, hash-chained record of every access to patient data and every
//! account action (who, what, which record, when).
//!
//! Entries name records by id only; they must never carry personal data (names, birth dates,
//! values typed into a sheet). The database refuses updates and deletes of this table; `verify`
//! detects an entry changed behind its back.

use rusqlite::{Connection, OptionalExtension, params};
use sha2::{Digest, Sha256};

/// One entry to append.
#[derive(Debug, Clone, Copy)]
pub struct Entry<'a> {
    pub at_ms: i64,
    pub user: Option<u64>,
    pub action: &'a str,
    pub target: Option<&'a str>,
    pub detail: Option<&'a str>,
}

fn entry_hash(prev: &[u8], e: &Entry<'_>) -> Vec<u8> {
    let mut h = Sha256::new();
    h.update(prev);
    h.update(e.at_ms.to_be_bytes());
    h.update(e.user.map(|u| u as i64).unwrap_or(-1).to_be_bytes());
    for part in [Some(e.action), e.target, e.detail] {
        let s = part.unwrap_or("");
        h.update((s.len() as u64).to_be_bytes());
        h.update(s.as_bytes());
    }
    h.finalize().to_vec()
}

/// Appends one entry; call inside the transaction that does the thing audited.
pub fn append(conn: &Connection, e: Entry<'_>) -> rusqlite::Result<()> {
    let prev: Vec<u8> = conn
        .query_row(
            "SELECT hash FROM audit ORDER BY seq DESC LIMIT 1",
            [],
            |r| r.get(0),
        )
        .optional()?
        .unwrap_or_else(|| vec![0u8; 32]);
    let hash = entry_hash(&prev, &e);
    conn.execute(
        "INSERT INTO audit (at, user_id, action, target, detail, prev_hash, hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            e.at_ms,
            e.user.map(|u| u as i64),
            e.action,
            e.target,
            e.detail,
            prev,
            hash
        ],
    )?;
    Ok(())
}

/// Appends one entry by a signed-in user.
pub fn record(
    conn: &Connection,
    at_ms: i64,
    user: u64,
    action: &str,
    target: Option<&str>,
    detail: Option<&str>,
) -> rusqlite::Result<()> {
    append(
        conn,
        Entry {
            at_ms,
            user: Some(user),
            action,
            target,
            detail,
        },
    )
}

/// A stored audit entry.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Record {
    pub seq: i64,
    pub at_ms: i64,
    pub user: Option<u64>,
    pub action: String,
    pub target: Option<String>,
    pub detail: Option<String>,
}

/// The most recent entries, newest first.
pub fn recent(conn: &Connection, limit: u32) -> rusqlite::Result<Vec<Record>> {
    let mut st = conn.prepare(
        "SELECT seq, at, user_id, action, target, detail FROM audit ORDER BY seq DESC LIMIT ?1",
    )?;
    st.query_map([limit], |r| {
        Ok(Record {
            seq: r.get(0)?,
            at_ms: r.get(1)?,
            user: r.get::<_, Option<i64>>(2)?.map(|u| u as u64),
            action: r.get(3)?,
            target: r.get(4)?,
            detail: r.get(5)?,
        })
    })?
    .collect()
}

/// Walks the whole chain; returns the number of entries, or the first entry whose hash does not
/// follow from its predecessor.
pub fn verify(conn: &Connection) -> rusqlite::Result<Result<u64, i64>> {
    let mut st = conn.prepare(
        "SELECT seq, at, user_id, action, target, detail, prev_hash, hash FROM audit ORDER BY seq",
    )?;
    let mut rows = st.query([])?;
    let mut prev = vec![0u8; 32];
    let mut n = 0;
    while let Some(r) = rows.next()? {
        let seq: i64 = r.get(0)?;
        let (action, target, detail): (String, Option<String>, Option<String>) =
            (r.get(3)?, r.get(4)?, r.get(5)?);
        let e = Entry {
            at_ms: r.get(1)?,
            user: r.get::<_, Option<i64>>(2)?.map(|u| u as u64),
            action: &action,
            target: target.as_deref(),
            detail: detail.as_deref(),
        };
        let stored_prev: Vec<u8> = r.get(6)?;
        let stored: Vec<u8> = r.get(7)?;
        if stored_prev != prev || stored != entry_hash(&prev, &e) {
            return Ok(Err(seq));
        }
        prev = stored;
        n += 1;
    }
    Ok(Ok(n))
}
