//! The audit chain anchored at the hub (issue #14: "anchor it (signed checkpoints sent to the
//! hub), so a node cannot rewrite what the hub has seen").
//!
//! A node signs its audit chain's head every [`crate::audit::CHECKPOINT_EVERY`] entries and at
//! every clean stop (`audit_checkpoints`). Before each sync session it sends its newest
//! checkpoint to the hub when it has not sent it yet ([`report_anchor`]). The hub checks the
//! signature under the node's enrolled key, keeps every checkpoint it received
//! (`audit_anchors`, never changed) and answers the one it held before. Each side then checks
//! what it can:
//! - the hub: a checkpoint at a lower entry than the last one it holds (the chain's tail was
//!   cut), or another head at the same entry (rewritten);
//! - the node: its chain still holds the hub's previous checkpoint at that entry (rewritten
//!   before it, or cut past it), and it keeps the anchor (`node_meta`) so that `nsdb audit
//!   verify` and the check at start see a cut tail without the hub.
//!
//! Either finding is an audit entry (`audit_anchor_diverged`) and an alert
//! ([`crate::monitor::Rule::AuditChain`]): the node's 責任者 see it on their node, the ministry
//! on the hub. A node restored from a backup (`nsdb restore` marks it) says so with its next
//! checkpoint; the hub still raises the alert, saying it was declared, because a restore is
//! rare and somebody should confirm it was one.
//!
//! Must never: change or delete an anchor at the hub, accept a checkpoint not signed by the
//! sending node's key, or carry anything from the audit entries but seqs and hashes.

use nsdb_sync::{Peer, PeerRole};
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

use super::requests::{Ask, Reply};
use crate::config::NodeRole;
use crate::monitor;
use crate::{Node, audit};

/// A signed checkpoint as it crosses: the entry's seq, the chain's hash at it and the node's
/// ed25519 signature (both hex).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Anchor {
    pub seq: i64,
    pub head: String,
    pub signature: String,
}

/// At the hub: records node `peer`'s checkpoint (refused unless signed by the peer's key),
/// raises the alert when it contradicts the last one held, and answers that last one.
pub(super) async fn at_hub(node: &Node, peer: &Peer, anchor: Anchor, restored: bool) -> Reply {
    if peer.role == PeerRole::Hub {
        return Reply::Refused {
            reason: "only nodes send audit checkpoints".into(),
        };
    }
    let signed = hex::decode(&anchor.head)
        .ok()
        .zip(hex::decode(&anchor.signature).ok())
        .is_some_and(|(head, sig)| audit::checkpoint_signed(&peer.key.0, anchor.seq, &head, &sig));
    if !signed {
        tracing::warn!(target: "nsdb::sync", node = %peer.node, seq = anchor.seq, "an audit checkpoint not signed by the sending node was refused");
        return Reply::Refused {
            reason: "the checkpoint is not signed by this node's key".into(),
        };
    }
    let from = peer.node.to_string();
    let now = node.clock.now_ms();
    let answered = node
        .store
        .write(move |c| {
            let tx = c.transaction()?;
            let previous = latest_at_hub(&tx, &from)?;
            if previous.as_ref() != Some(&anchor) {
                // The entry of the last checkpoint held, when this one contradicts it.
                let contradicted = previous
                    .as_ref()
                    .filter(|p| {
                        anchor.seq < p.seq || (anchor.seq == p.seq && anchor.head != p.head)
                    })
                    .map(|p| p.seq);
                tx.execute(
                    "INSERT INTO audit_anchors (node, seq, head, signature, received, restored)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![
                        from,
                        anchor.seq,
                        anchor.head,
                        anchor.signature,
                        now,
                        restored
                    ],
                )?;
                if let Some(held) = contradicted {
                    diverged(&tx, Some(&from), anchor.seq, held, restored, now)?;
                }
            }
            tx.commit()?;
            Ok::<_, crate::Error>(previous)
        })
        .await;
    match answered {
        Ok(previous) => Reply::Anchored { previous },
        Err(e) => {
            tracing::error!(target: "nsdb::sync", error = %e, "an audit checkpoint could not be recorded");
            Reply::Refused {
                reason: "the hub could not record the checkpoint".into(),
            }
        }
    }
}

/// At the hub: node `peer` found that its chain no longer holds the checkpoint at `seq` the
/// hub had answered. Recorded and alerted as the hub's own finding is.
pub(super) async fn diverged_at_hub(node: &Node, peer: &Peer, seq: i64) -> Reply {
    let from = peer.node.to_string();
    let now = node.clock.now_ms();
    let done = node
        .store
        .write(move |c| {
            let tx = c.transaction()?;
            let newest = latest_at_hub(&tx, &from)?.map_or(0, |a| a.seq);
            diverged(&tx, Some(&from), newest, seq, false, now)?;
            tx.commit()?;
            Ok::<_, crate::Error>(())
        })
        .await;
    match done {
        Ok(()) => Reply::Anchored { previous: None },
        Err(e) => {
            tracing::error!(target: "nsdb::sync", error = %e, "a diverged audit chain could not be recorded");
            Reply::Refused {
                reason: "the hub could not record the finding".into(),
            }
        }
    }
}

/// The last checkpoint the hub received from node `from`.
fn latest_at_hub(c: &Connection, from: &str) -> rusqlite::Result<Option<Anchor>> {
    c.query_row(
        "SELECT seq, head, signature FROM audit_anchors WHERE node = ?1
         ORDER BY id DESC LIMIT 1",
        [from],
        |r| {
            Ok(Anchor {
                seq: r.get(0)?,
                head: r.get(1)?,
                signature: r.get(2)?,
            })
        },
    )
    .optional()
}

/// Records a chain that contradicts its anchor (`monitor::chain_finding`,
/// `audit_anchor_diverged`): node `node`'s at the hub, or this node's own (`None`); `seq` is the
/// newest checkpoint, `anchored` the one it contradicts.
fn diverged(
    c: &Connection,
    node: Option<&str>,
    seq: i64,
    anchored: i64,
    restored: bool,
    now: i64,
) -> rusqlite::Result<()> {
    let detail = format!(
        "seq={seq} anchored={anchored} restored={}",
        if restored { "yes" } else { "no" }
    );
    tracing::error!(target: "nsdb", seq, anchored, restored, "an audit chain contradicts its anchor at the hub (rewritten, tail cut, or restored from a backup)");
    monitor::chain_finding(c, "audit_anchor_diverged", node, &detail, now)
}

/// What a report of the node's newest checkpoint did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnchorReport {
    /// The hub, no checkpoint yet, or the newest was sent already.
    NotNeeded,
    /// The hub did not answer (unreachable, or refused); sent again before the next session.
    NoAnswer,
    /// The hub holds it; the chain holds the hub's previous checkpoint.
    Anchored { seq: i64 },
    /// The hub holds it, but the chain no longer holds the hub's previous checkpoint at `at`.
    Diverged { at: i64 },
}

/// On a node: sends its newest signed checkpoint to the hub unless it was sent already (or the
/// node was restored and has not said so yet), keeps it as the node's anchor, and checks that
/// the chain still holds the checkpoint the hub held before. Called by the sync loop before
/// each session. Errors: the node's own database.
pub async fn report_anchor(node: &Node) -> crate::Result<AnchorReport> {
    if node.role() == NodeRole::Hub {
        return Ok(AnchorReport::NotNeeded);
    }
    let (newest, restored) = node
        .store
        .read(|c| Ok::<_, crate::Error>((newest_checkpoint(c)?, audit::awaits_anchor(c)?)))
        .await?;
    let Some(newest) = newest else {
        return Ok(AnchorReport::NotNeeded);
    };
    let sent = node.sync.anchored.lock().ok().and_then(|s| s.clone());
    if !restored && sent.as_ref() == Some(&newest) {
        return Ok(AnchorReport::NotNeeded);
    }
    let previous = match node
        .sync
        .requests
        .ask(&Ask::Anchor {
            anchor: newest.clone(),
            restored,
        })
        .await
    {
        Some(Reply::Anchored { previous }) => previous,
        Some(Reply::Refused { reason }) => {
            tracing::warn!(target: "nsdb::sync", %reason, "the hub refused the audit checkpoint");
            return Ok(AnchorReport::NoAnswer);
        }
        _ => return Ok(AnchorReport::NoAnswer),
    };
    let now = node.clock.now_ms();
    let kept = newest.clone();
    let broken = node
        .store
        .write(move |c| {
            let tx = c.transaction()?;
            let broken = match &previous {
                Some(p) if !holds(&tx, p)? && !restored => Some(p.seq),
                _ => None,
            };
            if let Some(at) = broken {
                diverged(&tx, None, kept.seq, at, false, now)?;
            }
            audit::keep_anchor(&tx, kept.seq, &kept.head)?;
            audit::clear_awaits_anchor(&tx)?;
            tx.commit()?;
            Ok::<_, crate::Error>(broken)
        })
        .await?;
    let seq = newest.seq;
    if let Ok(mut s) = node.sync.anchored.lock() {
        *s = Some(newest);
    }
    match broken {
        Some(at) => {
            // The hub hears of it too, so that the ministry sees what the node found.
            let _ = node
                .sync
                .requests
                .ask(&Ask::AnchorDiverged { seq: at })
                .await;
            Ok(AnchorReport::Diverged { at })
        }
        None => Ok(AnchorReport::Anchored { seq }),
    }
}

/// The node's newest signed checkpoint.
fn newest_checkpoint(c: &Connection) -> rusqlite::Result<Option<Anchor>> {
    c.query_row(
        "SELECT seq, head, signature FROM audit_checkpoints ORDER BY seq DESC LIMIT 1",
        [],
        |r| {
            Ok(Anchor {
                seq: r.get(0)?,
                head: hex::encode(r.get::<_, Vec<u8>>(1)?),
                signature: hex::encode(r.get::<_, Vec<u8>>(2)?),
            })
        },
    )
    .optional()
}

/// Whether this node's chain holds `anchor`'s head at its entry.
fn holds(c: &Connection, anchor: &Anchor) -> rusqlite::Result<bool> {
    let hash: Option<Vec<u8>> = c
        .query_row("SELECT hash FROM audit WHERE seq = ?1", [anchor.seq], |r| {
            r.get(0)
        })
        .optional()?;
    Ok(hash.is_some_and(|h| hex::encode(h) == anchor.head))
}
