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

/// The detail of a list's audit entry: how many rows and the ids of the records it showed
/// (`rows=2 shown=ID,ID`), so that the log says which patients a list put on a screen. Ids
/// only, never names.
pub fn shown<'a>(ids: impl IntoIterator<Item = &'a str>) -> String {
    let ids: Vec<&str> = ids.into_iter().collect();
    format!("rows={} shown={}", ids.len(), ids.join(","))
}

/// Appends one entry; call inside the transaction that does the thing audited.
///
/// An entry by a user acting here under a 兼務 (`users.home_institution` differs from
/// `users.institution`) gets ` for=<institution acted for> home=<main institution>` appended to
/// its detail, so that every access made under a 兼務 names the institution it was made for.
pub fn append(conn: &Connection, e: Entry<'_>) -> rusqlite::Result<()> {
    let kenmu: Option<(String, String)> = match e.user {
        Some(uid) => conn
            .prepare_cached(
                "SELECT institution, home_institution FROM users
                 WHERE id = ?1 AND home_institution IS NOT NULL AND home_institution <> institution",
            )?
            .query_row([uid as i64], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?,
        None => None,
    };
    let detail;
    let e = match kenmu {
        Some((acted_for, home)) => {
            detail = match e.detail {
                Some(d) => format!("{d} for={acted_for} home={home}"),
                None => format!("for={acted_for} home={home}"),
            };
            Entry {
                detail: Some(&detail),
                ..e
            }
        }
        None => e,
    };
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

/// How many entries a checkpoint is due after (100).
pub const CHECKPOINT_EVERY: i64 = 100;

/// The bytes a checkpoint signs: a domain tag, the entry's seq (big-endian) and its hash.
fn checkpoint_message(seq: i64, head: &[u8]) -> Vec<u8> {
    let mut m = b"nsdb audit checkpoint v1\0".to_vec();
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend_from_slice(head);
    m
}

/// Signs the chain's head with the node's identity key into `audit_checkpoints`, if at least
/// `every` entries were appended since the last checkpoint (`every = 1`: whenever anything was;
/// at a clean stop). Returns the seq signed, or None when nothing was due.
pub fn checkpoint(
    conn: &Connection,
    identity: &nsdb_provisioning::NodeIdentity,
    at_ms: i64,
    every: i64,
) -> rusqlite::Result<Option<i64>> {
    let head: Option<(i64, Vec<u8>)> = conn
        .query_row(
            "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let Some((seq, hash)) = head else {
        return Ok(None);
    };
    let last: i64 = conn.query_row(
        "SELECT coalesce(max(seq), 0) FROM audit_checkpoints",
        [],
        |r| r.get(0),
    )?;
    if seq - last < every.max(1) {
        return Ok(None);
    }
    let signature = identity.sign(&checkpoint_message(seq, &hash));
    conn.execute(
        "INSERT INTO audit_checkpoints (seq, head, at, public_key, signature)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            seq,
            hash,
            at_ms,
            identity.public_key().to_bytes().to_vec(),
            signature.to_bytes().to_vec()
        ],
    )?;
    Ok(Some(seq))
}

/// Whether `signature` is node `public_key`'s signature of the checkpoint at entry `seq` with
/// chain hash `head` (the hub checks a node's checkpoints with it, `verify_anchored` the node's
/// own).
pub fn checkpoint_signed(public_key: &[u8; 32], seq: i64, head: &[u8], signature: &[u8]) -> bool {
    let Ok(key) = ed25519_dalek::VerifyingKey::from_bytes(public_key) else {
        return false;
    };
    let Ok(sig) = <[u8; 64]>::try_from(signature) else {
        return false;
    };
    key.verify_strict(
        &checkpoint_message(seq, head),
        &ed25519_dalek::Signature::from_bytes(&sig),
    )
    .is_ok()
}

/// `node_meta` key of the checkpoint the hub last acknowledged holding: `"<seq>:<head hex>"`.
const ANCHOR: &str = "audit_anchor";

/// `node_meta` key written by `nsdb restore`: the chain may be older than what the hub holds,
/// and the next checkpoint sent says so.
const RESTORED: &str = "audit_restored_at";

/// Keeps the checkpoint at entry `seq` (chain hash `head`, hex) as the one the hub holds.
pub fn keep_anchor(c: &Connection, seq: i64, head: &str) -> rusqlite::Result<()> {
    c.execute(
        "INSERT OR REPLACE INTO node_meta (key, value) VALUES (?1, ?2)",
        params![ANCHOR, format!("{seq}:{head}")],
    )?;
    Ok(())
}

/// The checkpoint the hub last acknowledged holding: (seq, head hex).
pub fn anchor(c: &Connection) -> rusqlite::Result<Option<(i64, String)>> {
    let v: Option<String> = c
        .query_row(
            "SELECT value FROM node_meta WHERE key = ?1",
            [ANCHOR],
            |r| r.get(0),
        )
        .optional()?;
    Ok(v.and_then(|v| {
        let (seq, head) = v.split_once(':')?;
        Some((seq.parse().ok()?, head.to_string()))
    }))
}

/// Marks this database restored from a backup (`nsdb restore`): its chain may lack the end the
/// hub holds, so the anchor it kept no longer applies and its next checkpoint says why.
pub fn mark_restored(c: &Connection, now_ms: i64) -> rusqlite::Result<()> {
    c.execute("DELETE FROM node_meta WHERE key = ?1", [ANCHOR])?;
    c.execute(
        "INSERT OR REPLACE INTO node_meta (key, value) VALUES (?1, ?2)",
        params![RESTORED, now_ms.to_string()],
    )?;
    Ok(())
}

/// Whether the database was restored and the hub has not yet been told.
pub fn awaits_anchor(c: &Connection) -> rusqlite::Result<bool> {
    Ok(
        c.query_row("SELECT 1 FROM node_meta WHERE key = ?1", [RESTORED], |_| {
            Ok(())
        })
        .optional()?
        .is_some(),
    )
}

/// Clears the restore mark once the hub has been told.
pub fn clear_awaits_anchor(c: &Connection) -> rusqlite::Result<()> {
    c.execute("DELETE FROM node_meta WHERE key = ?1", [RESTORED])?;
    Ok(())
}

/// What `nsdb audit verify` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainVerdict {
    /// Every entry follows from its predecessor and every checkpoint matches and is signed.
    Intact { entries: u64, checkpoints: u64 },
    /// The entry `seq` does not follow from its predecessor (changed, inserted or removed).
    Tampered { seq: i64 },
    /// The chain is internally consistent but differs from what checkpoint `seq` signed: it
    /// was rewritten (or its tail cut) by someone with the database key.
    Rewritten { seq: i64 },
    /// The checkpoint `seq` is not signed by this node's key: forged or from another node.
    BadSignature { seq: i64 },
    /// The hub holds a checkpoint at entry `seq` that this chain does not hold: cut back past
    /// it, or rewritten before it (`sync_service::anchor`).
    Unanchored { seq: i64 },
}

impl std::fmt::Display for ChainVerdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChainVerdict::Intact {
                entries,
                checkpoints,
            } => write!(
                f,
                "intact: {entries} entries, {checkpoints} signed checkpoints"
            ),
            ChainVerdict::Tampered { seq } => write!(
                f,
                "tampered: entry {seq} does not follow from the entry before it"
            ),
            ChainVerdict::Rewritten { seq } => write!(
                f,
                "tampered: the chain up to entry {seq} differs from the signed checkpoint at {seq} (rewritten, or its tail cut)"
            ),
            ChainVerdict::BadSignature { seq } => write!(
                f,
                "tampered: the checkpoint at entry {seq} is not signed by this node's key"
            ),
            ChainVerdict::Unanchored { seq } => write!(
                f,
                "tampered: the hub holds a checkpoint at entry {seq} that this chain does not hold (cut back past it, or rewritten before it)"
            ),
        }
    }
}

impl ChainVerdict {
    /// The verdict as an audit entry's detail: `"<kind> seq=<seq>"` (ids only), or `"intact"`.
    pub fn detail(&self) -> String {
        match self {
            ChainVerdict::Intact { .. } => "intact".into(),
            ChainVerdict::Tampered { seq } => format!("tampered seq={seq}"),
            ChainVerdict::Rewritten { seq } => format!("rewritten seq={seq}"),
            ChainVerdict::BadSignature { seq } => format!("bad_signature seq={seq}"),
            ChainVerdict::Unanchored { seq } => format!("unanchored seq={seq}"),
        }
    }
}

/// Walks the chain ([`verify`]) and then every checkpoint in order: its signature under
/// `public_key` (the node's identity) and its head against the entry it names. Reports the
/// first problem by seq.
pub fn verify_anchored(conn: &Connection, public_key: &[u8; 32]) -> rusqlite::Result<ChainVerdict> {
    let entries = match verify(conn)? {
        Ok(n) => n,
        Err(seq) => return Ok(ChainVerdict::Tampered { seq }),
    };
    let mut st = conn.prepare("SELECT seq, head, signature FROM audit_checkpoints ORDER BY seq")?;
    let mut rows = st.query([])?;
    let mut checkpoints = 0;
    while let Some(r) = rows.next()? {
        let seq: i64 = r.get(0)?;
        let head: Vec<u8> = r.get(1)?;
        let sig: Vec<u8> = r.get(2)?;
        if !checkpoint_signed(public_key, seq, &head, &sig) {
            return Ok(ChainVerdict::BadSignature { seq });
        }
        let actual: Option<Vec<u8>> = conn
            .query_row("SELECT hash FROM audit WHERE seq = ?1", [seq], |r| r.get(0))
            .optional()?;
        if actual.as_deref() != Some(head.as_slice()) {
            return Ok(ChainVerdict::Rewritten { seq });
        }
        checkpoints += 1;
    }
    drop(rows);
    // The checkpoint the hub holds: a chain that no longer holds it was cut back past it or
    // rewritten before it, even when every checkpoint here was removed or signed again.
    if let Some((seq, head)) = anchor(conn)? {
        let actual: Option<Vec<u8>> = conn
            .query_row("SELECT hash FROM audit WHERE seq = ?1", [seq], |r| r.get(0))
            .optional()?;
        if actual.map(hex::encode).as_deref() != Some(head.as_str()) {
            return Ok(ChainVerdict::Unanchored { seq });
        }
    }
    Ok(ChainVerdict::Intact {
        entries,
        checkpoints,
    })
}

/// Test support: rewrites the chain as whoever holds the database key could, with the update
/// trigger dropped: entry `seq`'s detail becomes `detail` and every hash from there on is
/// recomputed, so that the chain alone still verifies.
#[cfg(any(test, feature = "testing"))]
pub fn rewrite(c: &Connection, seq: i64, detail: &str) -> rusqlite::Result<()> {
    /// seq, at, user, action, target, detail
    type StoredRow = (
        i64,
        i64,
        Option<i64>,
        String,
        Option<String>,
        Option<String>,
    );
    c.execute_batch("DROP TRIGGER IF EXISTS audit_no_update;")?;
    c.execute(
        "UPDATE audit SET detail = ?2 WHERE seq = ?1",
        params![seq, detail],
    )?;
    let rows: Vec<StoredRow> = c
        .prepare("SELECT seq, at, user_id, action, target, detail FROM audit ORDER BY seq")?
        .query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
            ))
        })?
        .collect::<rusqlite::Result<_>>()?;
    let mut prev = vec![0u8; 32];
    for (seq, at, user, action, target, detail) in rows {
        let h = entry_hash(
            &prev,
            &Entry {
                at_ms: at,
                user: user.map(|u| u as u64),
                action: &action,
                target: target.as_deref(),
                detail: detail.as_deref(),
            },
        );
        c.execute(
            "UPDATE audit SET prev_hash = ?2, hash = ?3 WHERE seq = ?1",
            params![seq, prev, h],
        )?;
        prev = h;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::NodeRole;
    use crate::testing::TestNode;

    async fn verdict(t: &TestNode, key: [u8; 32]) -> ChainVerdict {
        t.node
            .store
            .read(move |c| verify_anchored(c, &key).map_err(crate::Error::from))
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn a_chain_rewritten_end_to_end_with_the_database_key_is_caught_by_its_checkpoint() {
        let t = TestNode::start(NodeRole::Hospital).await;
        let identity =
            nsdb_provisioning::NodeIdentity::load(&t.node.config.identity_path()).unwrap();
        let key = identity.public_key().to_bytes();
        for _ in 0..3 {
            t.node.login("doctor", "demo").await.unwrap();
        }
        let id2 = nsdb_provisioning::NodeIdentity::load(&t.node.config.identity_path()).unwrap();
        let signed = t
            .node
            .store
            .write(move |c| checkpoint(c, &id2, 1, 1).map_err(crate::Error::from))
            .await
            .unwrap()
            .expect("a checkpoint");
        t.node.login("doctor", "demo").await.unwrap();
        assert!(matches!(
            verdict(&t, key).await,
            ChainVerdict::Intact { checkpoints: 1, .. }
        ));

        // Whoever holds the database key drops the triggers, changes an entry and recomputes
        // every hash after it: the chain alone still verifies, the checkpoint does not.
        t.node
            .store
            .write(move |c| {
                rewrite(c, signed - 1, "nothing happened")?;
                Ok::<_, crate::Error>(())
            })
            .await
            .unwrap();
        let chain_alone = t
            .node
            .store
            .read(|c| verify(c).map_err(crate::Error::from))
            .await
            .unwrap();
        assert!(chain_alone.is_ok(), "the rewrite is consistent");
        let v = verdict(&t, key).await;
        assert_eq!(v, ChainVerdict::Rewritten { seq: signed });
        assert!(v.to_string().starts_with("tampered"), "{v}");
        // A key that is not the node's does not vouch for the checkpoint.
        let other = nsdb_provisioning::NodeIdentity::generate().unwrap();
        assert_eq!(
            verdict(&t, other.public_key().to_bytes()).await,
            ChainVerdict::BadSignature { seq: signed }
        );
    }

    #[tokio::test]
    async fn an_entry_changed_without_rehashing_is_reported_by_seq() {
        let t = TestNode::start(NodeRole::Hospital).await;
        t.node.login("doctor", "demo").await.unwrap();
        t.node.login("doctor", "demo").await.unwrap();
        let key = [0u8; 32];
        let seq = t
            .node
            .store
            .write(|c| {
                c.execute_batch("DROP TRIGGER audit_no_update;")?;
                let seq: i64 = c.query_row("SELECT min(seq) FROM audit", [], |r| r.get(0))?;
                c.execute("UPDATE audit SET action = 'x' WHERE seq = ?1", [seq])?;
                Ok::<_, crate::Error>(seq)
            })
            .await
            .unwrap();
        assert_eq!(verdict(&t, key).await, ChainVerdict::Tampered { seq });
    }
}
