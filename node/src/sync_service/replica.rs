//! The node's documents as sync sees them (`NodeReplica`, behind `nsdb_sync::Replica`): the
//! inventory kept per peer, the scope rules of the hub and of a node (deny by default), and
//! received sheets stored through `sheets::store_sheet`. Never logs a sheet's values.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use nsdb_sync::{
    Inventory, NodeId, Peer, PeerRole, Replica, ReplicaError, Settlement, Sheet, SheetHeader,
    SheetId,
};
use rusqlite::{Connection, OptionalExtension, params};

use crate::config::NodeRole;
use crate::review::authority::{self, Sender};
use crate::sheets::{heads_blob, heads_of};
use crate::{Node, audit};

pub(super) fn db(e: impl std::fmt::Display) -> ReplicaError {
    ReplicaError(format!("database: {e}"))
}

/// Computes the heads of sheets that have none (written before heads were kept with each
/// write); `store_sheet` keeps every other row current.
pub(super) fn refresh_heads(c: &Connection) -> rusqlite::Result<()> {
    let stale: Vec<(String, Vec<u8>)> = {
        let mut st = c.prepare(
            "SELECT s.id, s.doc FROM sheets s LEFT JOIN sync_heads h ON h.sheet_id = s.id
             WHERE h.sheet_id IS NULL",
        )?;
        st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?
    };
    let mut insert = c.prepare(
        "INSERT OR REPLACE INTO sync_heads (sheet_id, heads, seq)
         VALUES (?1, ?2, (SELECT n FROM sync_counter WHERE id = 1))",
    )?;
    for (id, doc) in stale {
        match Sheet::load(&doc) {
            Ok(sheet) => {
                insert.execute(params![id, heads_blob(&sheet.raw_heads())])?;
            }
            Err(reason) => {
                tracing::warn!(target: "nsdb::sync", sheet = %id, %reason, "a stored sheet cannot be read; it is not synced");
            }
        }
    }
    Ok(())
}

pub(super) fn counter(c: &Connection) -> rusqlite::Result<i64> {
    c.query_row("SELECT n FROM sync_counter WHERE id = 1", [], |r| r.get(0))
}

/// An inventory and the change counter it is current at.
pub(super) struct Kept {
    at: i64,
    inventory: Arc<Inventory>,
}

/// The node's documents as sync sees them.
pub struct NodeReplica {
    node: Arc<Node>,
    /// Inventories by peer, kept between sessions and brought up to date by change.
    kept: Mutex<HashMap<NodeId, Kept>>,
    /// Large sheets held back from the session under way ([`NodeReplica::hold_large`]).
    large: Mutex<HashSet<SheetId>>,
    /// What the last session with each peer left held alike, applied to that peer's kept
    /// inventory when it is next brought up to date.
    settled: Mutex<HashMap<NodeId, Settlement>>,
}

/// A document larger than this (bytes, 1 MiB: one piece on the wire) whose changes the hub has
/// not acknowledged crosses in a session of its own, after the session that carries every
/// other sheet, so its transfer and merge never hold the small ones back. Ordinary sheets are
/// tens of KiB; a sheet saved through the product stops at `sheets::SHEET_CEILING` (8 MiB).
pub const LARGE_DOCUMENT: i64 = 1 << 20;

impl NodeReplica {
    pub fn new(node: Arc<Node>) -> NodeReplica {
        NodeReplica {
            node,
            kept: Mutex::new(HashMap::new()),
            large: Mutex::new(HashSet::new()),
            settled: Mutex::new(HashMap::new()),
        }
    }

    /// Holds back from the next sessions the sheets larger than [`LARGE_DOCUMENT`] whose heads
    /// were written after the node was last in step with `hub`, until [`Self::release_large`].
    /// Returns the earliest change counter among them (None: nothing held back): the node is
    /// in step with the hub only up to before it until they cross. Reads only the rows written
    /// since the last step (indexed), whatever the number of sheets.
    pub(super) async fn hold_large(&self, hub: NodeId) -> Result<Option<i64>, ReplicaError> {
        let hub = hub.to_string();
        let found: Vec<(String, i64)> = self
            .node
            .store
            .read(move |c| {
                let mut st = c.prepare_cached(
                    "SELECT h.sheet_id, h.seq FROM sync_heads h JOIN sheets s ON s.id = h.sheet_id
                     WHERE h.seq > coalesce((SELECT seq FROM sync_in_step WHERE peer = ?1), -1)
                       AND length(s.doc) > ?2",
                )?;
                let rows = st
                    .query_map(params![hub, LARGE_DOCUMENT], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                Ok::<_, crate::Error>(rows)
            })
            .await
            .map_err(db)?;
        let earliest = found.iter().map(|(_, seq)| *seq).min();
        let ids = found
            .into_iter()
            .filter_map(|(id, _)| id.parse::<SheetId>().ok());
        if let Ok(mut large) = self.large.lock() {
            large.clear();
            large.extend(ids);
        }
        Ok(earliest)
    }

    /// Ends [`Self::hold_large`]: returns the sheets that were held back, and offers them again.
    pub(super) fn release_large(&self) -> HashSet<SheetId> {
        self.large
            .lock()
            .map(|mut l| std::mem::take(&mut *l))
            .unwrap_or_default()
    }

    /// Records that every sheet written up to change `seen` is in step with `peer`.
    pub(super) async fn mark_in_step(&self, peer: NodeId, seen: i64) -> Result<(), ReplicaError> {
        let peer = peer.to_string();
        self.node
            .store
            .write(move |c| {
                c.execute(
                    "INSERT OR REPLACE INTO sync_in_step (peer, seq) VALUES (?1, ?2)",
                    params![peer, seen],
                )?;
                Ok::<_, crate::Error>(())
            })
            .await
            .map_err(db)
    }
}

/// Which of this node's sheets a peer may hold: the condition on `sheets s` and its arguments,
/// after `?1` (deny by default).
pub(super) fn scope(local: NodeRole, peer: &Peer) -> (&'static str, Vec<String>) {
    match (local, peer.role) {
        // A node offers the hub everything it holds.
        (NodeRole::Hospital | NodeRole::Municipality, _) => ("1", vec![]),
        (NodeRole::Hub, PeerRole::Hospital) => (
            "(s.institution = ?2 OR s.id IN (SELECT sheet_id FROM sync_grants WHERE node = ?3))",
            vec![peer.jurisdiction.clone(), peer.node.to_string()],
        ),
        (NodeRole::Hub, PeerRole::Municipality) => (
            "s.id IN (SELECT sheet_id FROM sync_grants WHERE node = ?2)",
            vec![peer.node.to_string()],
        ),
        (NodeRole::Hub, PeerRole::Hub) => ("0", vec![]),
    }
}

/// The (id, heads) of the sheets in `filter` whose heads were written after `after`.
pub(super) fn scoped_heads(
    c: &Connection,
    filter: &str,
    args: &[String],
    after: i64,
) -> rusqlite::Result<Vec<(SheetId, Vec<[u8; 32]>)>> {
    let mut st = c.prepare_cached(&format!(
        "SELECT s.id, h.heads FROM sync_heads h JOIN sheets s ON s.id = h.sheet_id
         WHERE h.seq > ?1 AND {filter}"
    ))?;
    let params = std::iter::once(rusqlite::types::Value::from(after))
        .chain(args.iter().cloned().map(rusqlite::types::Value::from));
    st.query_map(rusqlite::params_from_iter(params), |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, Vec<u8>>(1)?))
    })?
    .filter_map(|row| match row {
        Ok((id, heads)) => id
            .parse::<SheetId>()
            .ok()
            .map(|id| Ok((id, heads_of(&heads)))),
        Err(e) => Some(Err(e)),
    })
    .collect()
}

/// The heads of the stored copy of sheet `id` (empty when this node does not hold it).
fn stored_heads(c: &Connection, id: &str) -> rusqlite::Result<Vec<nsdb_sync::ChangeHash>> {
    let blob: Option<Vec<u8>> = c
        .query_row(
            "SELECT heads FROM sync_heads WHERE sheet_id = ?1",
            [id],
            |r| r.get(0),
        )
        .optional()?;
    Ok(blob
        .map(|b| {
            heads_of(&b)
                .into_iter()
                .map(nsdb_sync::ChangeHash)
                .collect()
        })
        .unwrap_or_default())
}

fn is_constraint(e: &rusqlite::Error) -> bool {
    e.sqlite_error_code() == Some(rusqlite::ErrorCode::ConstraintViolation)
}

/// Why a received sheet was not stored, for the sending node's operator (no patient values:
/// only the sheet's id and access key).
fn refusal_reason(here: NodeRole, sheet: &Sheet, e: &rusqlite::Error) -> String {
    let side = if here == NodeRole::Hub {
        "ハブ"
    } else {
        "受信側"
    };
    match &sheet.header().access_key {
        Some(key) if e.to_string().contains("access_key") => {
            format!(
                "{side}では、アクセスキー {} がすでに別の票に使われています",
                crate::keys::AccessKey::shown(key)
            )
        }
        _ => format!("{side}の保存の規則に合いません（{e}）"),
    }
}

impl Replica for NodeReplica {
    /// The first inventory of a peer reads every sheet in its scope; later ones read only the
    /// sheets written since (by `sync_heads.seq`), so a sync with nothing to do costs the same
    /// however many sheets there are. A change of the peer's grants rebuilds it.
    async fn inventory(&self, peer: &Peer) -> Result<Arc<Inventory>, ReplicaError> {
        // Nothing written and nothing settled since: the kept one, without queueing behind
        // the writer.
        let now = self
            .node
            .store
            .read(|c| counter(c).map_err(crate::Error::from))
            .await
            .map_err(db)?;
        let settled = self
            .settled
            .lock()
            .ok()
            .and_then(|mut s| s.remove(&peer.node));
        if let Ok(mut kept) = self.kept.lock()
            && let Some(k) = kept.get_mut(&peer.node).filter(|k| k.at == now)
        {
            // Settled in memory: nothing was written, so nothing received is to be matched.
            if let Some(s) = settled {
                Arc::make_mut(&mut k.inventory).settle(s.through, s.apart);
            }
            return Ok(k.inventory.clone());
        }
        // Taken out while it is updated, so the update changes it in place.
        let kept = self.kept.lock().ok().and_then(|mut k| k.remove(&peer.node));
        let local = self.node.role();
        let peer_c = peer.clone();
        let kept = self
            .node
            .store
            .write(move |c| {
                let now = counter(c)?;
                if settled.is_none()
                    && let Some(k) = kept.as_ref().filter(|k| k.at == now)
                {
                    return Ok::<_, crate::Error>(Kept {
                        at: now,
                        inventory: k.inventory.clone(),
                    });
                }
                let granted: Vec<SheetId> = if local == NodeRole::Hub {
                    let mut st = c.prepare_cached(
                        "SELECT sheet_id FROM sync_grants WHERE node = ?1 ORDER BY sheet_id",
                    )?;
                    st.query_map([peer_c.node.to_string()], |r| r.get::<_, String>(0))?
                        .filter_map(|r| r.ok().and_then(|id| id.parse().ok()))
                        .collect()
                } else {
                    Vec::new()
                };
                let (filter, args) = scope(local, &peer_c);
                let inventory = match kept {
                    Some(Kept { at, mut inventory }) if inventory.granted == granted => {
                        let changed = scoped_heads(c, filter, &args, at)?;
                        let inv = Arc::make_mut(&mut inventory);
                        // What the last session left alike first, then what was written since:
                        // a sheet received in that session and stored as it came stays settled.
                        let mut stored: HashMap<SheetId, Vec<[u8; 32]>> = HashMap::new();
                        if let Some(s) = settled {
                            inv.settle(s.through, s.apart);
                            stored.extend(s.stored);
                        }
                        for (id, heads) in changed {
                            if stored.get(&id) == Some(&heads) {
                                inv.insert_settled(id, heads);
                            } else {
                                inv.insert(id, heads);
                            }
                        }
                        inventory
                    }
                    _ => {
                        refresh_heads(c)?;
                        let all = scoped_heads(c, filter, &args, i64::MIN)?;
                        Arc::new(Inventory::from_entries(all, granted))
                    }
                };
                Ok(Kept { at: now, inventory })
            })
            .await
            .map_err(db)?;
        let inventory = kept.inventory.clone();
        if let Ok(mut k) = self.kept.lock() {
            k.insert(peer.node, kept);
        }
        Ok(inventory)
    }

    async fn load(&self, ids: Vec<SheetId>) -> Result<Vec<(SheetId, Vec<u8>)>, ReplicaError> {
        self.node
            .store
            .read(move |c| {
                let mut st = c.prepare_cached("SELECT doc FROM sheets WHERE id = ?1")?;
                let mut out = Vec::with_capacity(ids.len());
                for id in ids {
                    if let Some(doc) = st
                        .query_row([id.to_string()], |r| r.get::<_, Vec<u8>>(0))
                        .optional()?
                    {
                        out.push((id, doc));
                    }
                }
                Ok::<_, crate::Error>(out)
            })
            .await
            .map_err(db)
    }

    /// Each sheet is stored under its own savepoint: one that breaks a rule of the database
    /// (an access key another sheet holds) is left out with the reason and the others are
    /// stored; any other failure fails the batch.
    async fn save(
        &self,
        peer: &Peer,
        sheets: Vec<Sheet>,
    ) -> Result<Vec<(SheetId, String)>, ReplicaError> {
        let now = self.node.clock.now_ms();
        let here = self.node.role();
        let (node_id, code) = (self.node.node_id, self.node.config.institution.code.clone());
        let sender_role = peer.role;
        let jurisdiction = peer.jurisdiction.clone();
        let peer = peer.node.to_string();
        self.node
            .store
            .write(move |c| {
                let mut tx = c.transaction()?;
                let mut refused = Vec::new();
                let mut count = 0usize;
                for mut sheet in sheets {
                    let id = sheet.id();
                    // The hub takes from each node only the parts of a sheet that node may
                    // change (a municipality: its review and inquiries; a hospital: not reviews).
                    if here == NodeRole::Hub {
                        let sender = match sender_role {
                            PeerRole::Municipality => Some(Sender::Municipality(&jurisdiction)),
                            PeerRole::Hospital => Some(Sender::Hospital),
                            PeerRole::Hub => None,
                        };
                        if let Some(sender) = sender {
                            let stored = stored_heads(&tx, &id.to_string())?;
                            if let Err(reason) = authority::check(&sheet, &stored, sender) {
                                tracing::warn!(target: "nsdb::sync", sheet = %id, "a received sheet changes what its sender may not; not stored");
                                refused.push((id, format!("ハブは受け取りません: {reason}")));
                                continue;
                            }
                        }
                    }
                    // A sheet this municipality resolved is linked (受付) when it arrives.
                    if here == NodeRole::Municipality {
                        crate::review::link_arrived(&tx, &mut sheet, node_id, &code)?;
                    }
                    let point = tx.savepoint()?;
                    match crate::sheets::store_sheet(&point, &mut sheet, "screen", now) {
                        Ok(()) => {
                            point.commit()?;
                            count += 1;
                        }
                        Err(e) if is_constraint(&e) => {
                            tracing::warn!(target: "nsdb::sync", sheet = %id, reason = %e, "a received sheet breaks a rule of the database; not stored");
                            refused.push((id, refusal_reason(here, &sheet, &e)));
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
                let detail = format!("sheets={count} from={peer} refused={}", refused.len());
                audit::append(
                    &tx,
                    audit::Entry {
                        at_ms: now,
                        user: None,
                        action: "sync_receive",
                        target: None,
                        detail: Some(&detail),
                    },
                )?;
                tx.commit()?;
                Ok::<_, crate::Error>(refused)
            })
            .await
            .map_err(db)
    }

    fn settle(&self, peer: &Peer, settlement: Settlement) {
        if let Ok(mut s) = self.settled.lock() {
            s.insert(peer.node, settlement);
        }
    }

    fn held_back(&self, peer: &Peer) -> HashSet<SheetId> {
        if peer.role != PeerRole::Hub {
            return HashSet::new();
        }
        let mut held = self.node.sync.held_back(self.node.clock.now_ms());
        if let Ok(large) = self.large.lock() {
            held.extend(large.iter().copied());
        }
        held
    }

    fn admits(&self, peer: &Peer, header: &SheetHeader, granted: &HashSet<SheetId>) -> bool {
        let granted = granted.contains(&header.id);
        match (self.node.role(), peer.role) {
            (NodeRole::Hub, PeerRole::Hospital) => {
                header.institution == peer.jurisdiction || granted
            }
            (NodeRole::Hub, PeerRole::Municipality) => granted,
            (NodeRole::Hospital | NodeRole::Municipality, PeerRole::Hub) => {
                header.institution == self.node.config.institution.code || granted
            }
            _ => false,
        }
    }
}
