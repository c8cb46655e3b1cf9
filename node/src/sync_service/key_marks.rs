//! How far each leased key block was used, kept at the hub so that a node restored from an
//! older copy never issues an access key twice (issue #10, item 7).
//!
//! A hospital reports its counter per leased block (`key_leases.next_serial`) before a session
//! whenever it changed since its last report, and always while it is marked restored
//! (`keys::RESTORED`, written by `nsdb restore`). The hub keeps the highest counter each node
//! ever reported for each of its blocks and answers every block's high-water mark: that
//! counter, or the number of the block's keys on sheets the hub holds when higher. The node
//! adopts any higher mark (and any block leased to it that its database forgot) and clears the
//! restore mark; until then a restored node refuses 登録 (`Error::KeysAwaitHub`).
//!
//! This module must never lower a counter, on either side, and never write keys' digits to the
//! audit log or the log.

use nsdb_sync::{Peer, PeerRole};

use super::requests::{Ask, Reply};
use crate::config::NodeRole;
use crate::keys::{self, BlockMark};
use crate::{Node, audit};

/// At the hub: records node `peer`'s reported counters and answers the high-water marks of
/// every block leased to it. Only hospitals hold blocks.
pub(super) async fn at_hub(node: &Node, peer: &Peer, reported: Vec<BlockMark>) -> Reply {
    if peer.role != PeerRole::Hospital {
        return Reply::Refused {
            reason: "only hospitals hold key blocks".into(),
        };
    }
    let to = peer.node.to_string();
    let marks = node
        .store
        .write(move |c| {
            let tx = c.transaction()?;
            let marks = keys::record_marks(&tx, &to, &reported)?;
            tx.commit()?;
            Ok::<_, crate::Error>(marks)
        })
        .await;
    match marks {
        Ok(blocks) => Reply::Marks { blocks },
        Err(e) => {
            tracing::error!(target: "nsdb::sync", error = %e, "key block marks could not be recorded");
            Reply::Refused {
                reason: "the hub could not record the key block marks".into(),
            }
        }
    }
}

/// What a report of the node's key counters did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarksReport {
    /// Not a hospital, or nothing changed since the last report.
    NotNeeded,
    /// The hub did not answer (unreachable, or refused); a restored node still refuses 登録.
    NoAnswer,
    /// The hub answered; `raised` counters moved forward to its marks.
    Adopted { raised: usize },
}

/// On a hospital: reports its key counters to the hub when they changed since the last report
/// (or the node is marked restored) and adopts the hub's higher marks. Called by the sync loop
/// before each session; a hub that cannot be reached is asked again before the next one.
/// Errors: the node's own database.
pub async fn report_key_marks(node: &Node) -> crate::Result<MarksReport> {
    if node.role() != NodeRole::Hospital {
        return Ok(MarksReport::NotNeeded);
    }
    let own = node.node_id.to_string();
    let own_c = own.clone();
    let (counters, restored) = node
        .store
        .read(move |c| Ok::<_, crate::Error>((keys::counters(c, &own_c)?, keys::awaits_hub(c)?)))
        .await?;
    let last = node.sync.reported_marks.lock().ok().and_then(|l| l.clone());
    if !restored && last.as_ref() == Some(&counters) {
        return Ok(MarksReport::NotNeeded);
    }
    let blocks = match node
        .sync
        .requests
        .ask(&Ask::Marks {
            blocks: counters.clone(),
        })
        .await
    {
        Some(Reply::Marks { blocks }) => blocks,
        Some(Reply::Refused { reason }) => {
            tracing::warn!(target: "nsdb::sync", %reason, "the hub refused the key block marks");
            return Ok(MarksReport::NoAnswer);
        }
        _ => return Ok(MarksReport::NoAnswer),
    };
    let now = node.clock.now_ms();
    let raised = node
        .store
        .write(move |c| {
            let tx = c.transaction()?;
            let restored = keys::awaits_hub(&tx)?;
            let raised = keys::adopt_marks(&tx, &own, &blocks, now)?;
            if raised > 0 || restored {
                let detail = format!(
                    "blocks={} raised={raised} restored={}",
                    blocks.len(),
                    if restored { "yes" } else { "no" }
                );
                audit::append(
                    &tx,
                    audit::Entry {
                        at_ms: now,
                        user: None,
                        action: "key_marks",
                        target: None,
                        detail: Some(&detail),
                    },
                )?;
            }
            tx.commit()?;
            Ok::<_, crate::Error>(raised)
        })
        .await?;
    if raised > 0 {
        tracing::warn!(target: "nsdb::sync", raised, "key counters moved forward to the hub's marks (keys issued before a restore)");
    }
    if let Ok(mut l) = node.sync.reported_marks.lock() {
        // After a raise the new counters are reported at the next session.
        *l = (raised == 0).then_some(counters);
    }
    Ok(MarksReport::Adopted { raised })
}
