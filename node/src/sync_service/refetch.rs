//! A sheet whose stored document is damaged here is fetched again, whole, from the hub, which
//! holds an intact copy (issue #10, item 6b).
//!
//! A node finds a damaged document when sync cannot read it (offered to the hub, or the hub's
//! changes for it arrive: `SessionStats::damaged`) and when a user opens it (the sheet
//! pages and the API call [`refetch`] on `Error::Document`). It asks the hub with a request
//! beside the sessions (`Fetch`); the hub answers the document only when the sheet is in the
//! asking node's scope (the same rule as its sessions, `replica::scope`). The node checks that
//! the answer is a readable sheet with that id, replaces its copy only while its own copy is
//! still unreadable, and audits it (`sheet_refetch`).
//!
//! This module must never replace a readable document, never answer a sheet outside the
//! asking node's scope, and never log a sheet's values.

use nsdb_sync::{Peer, Sheet, SheetId};
use rusqlite::OptionalExtension;

use super::replica::scope;
use super::requests::{Ask, Reply};
use crate::config::NodeRole;
use crate::{Node, audit};

/// Why a damaged sheet could not be fetched again. Messages are for the person at the screen.
#[derive(Debug, thiserror::Error)]
pub enum RefetchError {
    #[error(
        "この票の保存データが壊れていて読めません。ハブ（中央）に接続できないため取り寄せられませんでした。ハブと接続できた後に開き直してください（接続できると自動で取り寄せます）。"
    )]
    HubUnreachable,
    #[error(
        "この票の保存データが壊れていて読めません。ハブ（中央）にもこの票の写しがありません（{0}）。管理者は最新のバックアップからの復元を検討してください。"
    )]
    NotAtHub(String),
    #[error(
        "この票の保存データが壊れていて読めません。ハブ（中央）から届いた写しも読めませんでした（{0}）。"
    )]
    BadCopy(String),
    #[error(transparent)]
    Node(#[from] crate::Error),
}

/// At the hub: the stored document of `sheet` (hex) when it is in `peer`'s scope.
pub(super) async fn at_hub(node: &Node, peer: &Peer, sheet: String) -> Reply {
    let (filter, args) = scope(NodeRole::Hub, peer);
    let found = node
        .store
        .read(move |c| {
            let sql = format!("SELECT s.doc FROM sheets s WHERE s.id = ?1 AND {filter}");
            let params = std::iter::once(sheet).chain(args);
            let doc: Option<Vec<u8>> = c
                .query_row(&sql, rusqlite::params_from_iter(params), |r| r.get(0))
                .optional()?;
            Ok::<_, crate::Error>(doc)
        })
        .await;
    match found {
        Ok(Some(doc)) => Reply::Document {
            doc: hex::encode(doc),
        },
        Ok(None) => Reply::Refused {
            reason: "ハブにこの票はないか、このシステムの範囲外です".into(),
        },
        Err(e) => {
            tracing::error!(target: "nsdb::sync", error = %e, "a sheet could not be read for a fetch");
            Reply::Refused {
                reason: "ハブで票を読み出せませんでした".into(),
            }
        }
    }
}

/// Whether the stored document of `id` is present and unreadable.
fn damaged(c: &rusqlite::Connection, id: &str) -> crate::Result<bool> {
    let doc: Option<Vec<u8>> = c
        .query_row("SELECT doc FROM sheets WHERE id = ?1", [id], |r| r.get(0))
        .optional()?;
    Ok(doc.is_some_and(|d| Sheet::load(&d).is_err()))
}

/// On a node: fetches sheet `id` again from the hub and replaces this node's copy when that
/// copy cannot be read. `Ok(true)` when it was replaced, `Ok(false)` when there was nothing to
/// do (the copy reads, or the node has no such sheet). Changes made here that had not reached
/// the hub are lost with the damaged copy; the audit entry says the sheet was replaced.
/// Errors: [`RefetchError`] (the hub unreachable, the sheet not at the hub, a copy that does
/// not read either, or the node's own storage).
pub async fn refetch(node: &Node, id: &str) -> Result<bool, RefetchError> {
    if node.role() == NodeRole::Hub {
        return Ok(false);
    }
    let Ok(sid) = id.parse::<SheetId>() else {
        return Ok(false);
    };
    let key = id.to_string();
    if !node.store.read(move |c| damaged(c, &key)).await? {
        return Ok(false);
    }
    let doc = match node
        .sync
        .requests
        .ask(&Ask::Fetch {
            sheet: id.to_string(),
        })
        .await
    {
        Some(Reply::Document { doc }) => doc,
        Some(Reply::Refused { reason }) => return Err(RefetchError::NotAtHub(reason)),
        _ => return Err(RefetchError::HubUnreachable),
    };
    let bytes = hex::decode(&doc).map_err(|e| RefetchError::BadCopy(e.to_string()))?;
    let mut sheet = Sheet::load_received(sid, &bytes, None)
        .map_err(|e| RefetchError::BadCopy(e.to_string()))?;
    let (key, now, size) = (id.to_string(), node.clock.now_ms(), bytes.len());
    let replaced = node
        .store
        .write(move |c| {
            let tx = c.transaction()?;
            if !damaged(&tx, &key)? {
                return Ok::<_, crate::Error>(false);
            }
            let registration: String = tx.query_row(
                "SELECT registration FROM sheets WHERE id = ?1",
                [&key],
                |r| r.get(0),
            )?;
            crate::sheets::store_sheet(&tx, &mut sheet, &registration, now)?;
            let detail = format!("from=hub bytes={size}");
            audit::append(
                &tx,
                audit::Entry {
                    at_ms: now,
                    user: None,
                    action: "sheet_refetch",
                    target: Some(&key),
                    detail: Some(&detail),
                },
            )?;
            tx.commit()?;
            Ok(true)
        })
        .await?;
    if replaced {
        tracing::warn!(target: "nsdb::sync", sheet = %id, "a damaged stored sheet was replaced by the hub's copy");
    }
    Ok(replaced)
}
