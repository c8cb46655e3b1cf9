//! The integrity check at start: SQLCipher's `cipher_integrity_check` (every page's HMAC) and
//! SQLite's `quick_check`, interrupted after a time limit so that a large database never keeps a
//! node from starting. A node that finds damage keeps serving reads but refuses every write
//! (`Store::mark_damaged`), so damage is never spread by new writes; `nsdb doctor` runs the full
//! check. This module reads only; it must never repair or rewrite a page.

use std::path::Path;
use std::time::Duration;

use rusqlite::OpenFlags;

use super::OpsError;
use crate::store::{DbKey, connect};

/// What the check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Integrity {
    Intact,
    /// The first few problems reported.
    Damaged(Vec<String>),
    /// The time limit passed before the check finished (nothing found until then).
    Unfinished,
}

/// Runs the bounded check on the database at `db` on its own connection.
pub fn check(db: &Path, key: &DbKey, limit: Duration) -> Result<Integrity, OpsError> {
    let conn = connect(db, Some(key), OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let handle = conn.get_interrupt_handle();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let timer = std::thread::spawn(move || {
        if done_rx.recv_timeout(limit).is_err() {
            handle.interrupt();
            true
        } else {
            false
        }
    });
    let mut problems = Vec::new();
    let result = (|| -> rusqlite::Result<()> {
        {
            let mut st = conn.prepare("PRAGMA cipher_integrity_check")?;
            let rows = st.query_map([], |r| r.get::<_, String>(0))?;
            for row in rows.take(5) {
                problems.push(row?);
            }
        }
        let mut st = conn.prepare("PRAGMA quick_check(5)")?;
        let rows = st.query_map([], |r| r.get::<_, String>(0))?;
        for row in rows {
            let row = row?;
            if row != "ok" {
                problems.push(row);
            }
        }
        Ok(())
    })();
    let _ = done_tx.send(());
    let interrupted = timer.join().unwrap_or(false);
    match result {
        Ok(()) if problems.is_empty() => Ok(Integrity::Intact),
        Ok(()) => Ok(Integrity::Damaged(problems)),
        Err(_) if interrupted && problems.is_empty() => Ok(Integrity::Unfinished),
        Err(_) if !problems.is_empty() => Ok(Integrity::Damaged(problems)),
        // An error reading a page is damage too (a page that does not decrypt).
        Err(e) => Ok(Integrity::Damaged(vec![e.to_string()])),
    }
}
