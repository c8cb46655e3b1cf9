//! The integrity check at start and on a schedule while the node serves: SQLCipher's
//! `cipher_integrity_check` (every page's HMAC) and SQLite's `quick_check`, interrupted after a
//! time limit so that a large database never keeps a node from starting. A node that finds
//! damage keeps serving reads but refuses every write (`Store::mark_damaged`), so damage is never
//! spread by new writes; `nsdb doctor` runs the full check. This module reads only; it must never
//! repair or rewrite a page.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rusqlite::OpenFlags;

use super::OpsError;
use crate::Node;
use crate::store::{DbKey, Store, connect};

/// How long a check on a serving node may run: it reads on its own connection beside the
/// writer (WAL), so it may take longer than the check at start.
pub const SCHEDULED_LIMIT: Duration = Duration::from_secs(600);

/// Checks the database at `db` (bounded by `limit`) and, when damage is found, marks `store`
/// damaged: from then on every write is refused, every page says so and the metric
/// `nsdb_database_damaged` is 1. Logs the outcome with the problems SQLite reports (page
/// numbers, never a value).
pub fn check_and_mark(
    db: &Path,
    key: &DbKey,
    store: &Store,
    limit: Duration,
) -> Result<Integrity, OpsError> {
    let found = check(db, key, limit)?;
    match &found {
        Integrity::Intact => {}
        Integrity::Unfinished => tracing::warn!(
            target: "nsdb",
            limit_s = limit.as_secs(),
            "integrity check did not finish in time; run nsdb doctor"
        ),
        Integrity::Damaged(problems) => {
            // The same words as a database found damaged when opened: the file, and the
            // restore that brings the node back.
            let said = crate::store::StoreError::damaged_file(db, &problems.join("; "));
            tracing::error!(target: "nsdb", "{said}; until then writes are refused and pages say so");
            store.mark_damaged(problems.join("; "));
        }
    }
    Ok(found)
}

/// Rechecks `node`'s database now (off the async runtime), marking it damaged when it is.
pub async fn recheck(node: &Arc<Node>) -> Result<Integrity, OpsError> {
    let node = node.clone();
    tokio::task::spawn_blocking(move || {
        let key = DbKey::load(&node.config.key)?;
        check_and_mark(
            &node.config.database_path(),
            &key,
            &node.store,
            SCHEDULED_LIMIT,
        )
    })
    .await
    .map_err(|e| OpsError::Stopped(e.to_string()))?
}

/// Rechecks `node`'s database every `every` (the first time one period after start, which has
/// its own check) until the task is aborted. Once damage is found it stops checking: the node
/// refuses writes until an operator restores.
pub fn schedule(node: Arc<Node>, every: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        loop {
            tick.tick().await;
            if node.store.damage().is_some() {
                return;
            }
            if let Err(e) = recheck(&node).await {
                tracing::warn!(target: "nsdb", error = %e, "scheduled integrity check could not run");
            }
        }
    })
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::NodeRole;
    use crate::testing::TestNode;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn damage_that_appears_while_serving_is_found_by_the_recheck_and_stops_writes() {
        let t = TestNode::start_with_sheets(NodeRole::Hospital, 60).await;
        assert_eq!(recheck(&t.node).await.unwrap(), Integrity::Intact);
        t.node
            .store
            .write(|c| {
                c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
                    .map_err(crate::Error::from)
            })
            .await
            .unwrap();
        // Flip bytes inside one page past the schema (4096-byte pages), as a failing disk would.
        let db = t.node.config.database_path();
        let mut bytes = std::fs::read(&db).unwrap();
        let pages = bytes.len() / 4096;
        assert!(pages > 4, "{pages} pages");
        let at = (pages - 2) * 4096 + 1000;
        for b in &mut bytes[at..at + 8] {
            *b ^= 0xff;
        }
        std::fs::write(&db, &bytes).unwrap();

        assert!(matches!(
            recheck(&t.node).await.unwrap(),
            Integrity::Damaged(_)
        ));
        assert!(t.node.store.damage().is_some());
        let refused = t
            .node
            .store
            .write(|_| Ok::<_, crate::Error>(()))
            .await
            .unwrap_err();
        assert!(refused.to_string().contains("損傷"), "{refused}");
    }
}
