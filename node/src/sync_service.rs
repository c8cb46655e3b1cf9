//! Sync of this node with the hub, in the background: the node's documents behind
//! `nsdb_sync::Replica` (with the scope rules of the hub and of the node), the hub's endpoint,
//! a node's loop that syncs when something changed (and periodically), reconnecting with
//! backoff, and the status that the sync page and `/api/v1/sync/status` show.
//!
//! Nothing here waits for the hub on behalf of a user: saving a sheet never touches the
//! network. Scope is deny by default: the hub lists for a node only the sheets of its own
//! institution (hospitals) and those granted to it, and a node accepts from the hub only sheets
//! that are its own or granted. Received sheets go through `sheets::store_sheet`, so lists and
//! search see them. This module must never log values of a sheet.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nsdb_provisioning::enrollment;
use nsdb_sync::{
    HubEndpoint, Inventory, LocalKey, NodeId, NodeLink, Peer, PeerRole, PublicKey, Replica,
    ReplicaError, SessionStats, Sheet, SheetHeader, SheetId,
};
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use crate::config::NodeRole;
use crate::{Node, audit};

/// How many recent errors the status keeps.
const ERRORS_KEPT: usize = 10;

/// Timing of a node's sync loop.
#[derive(Debug, Clone, Copy)]
pub struct SyncOptions {
    /// Sync at least this often even when nothing changed here (to receive the hub's changes).
    pub period: Duration,
    /// How often to look for local changes.
    pub poll: Duration,
    /// First wait after a failure; doubled after each failure up to `max_backoff`.
    pub min_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for SyncOptions {
    fn default() -> Self {
        SyncOptions {
            period: Duration::from_secs(10),
            poll: Duration::from_millis(500),
            min_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(30),
        }
    }
}

/// Figures of one session.
#[derive(Debug, Clone, Copy, Default, Serialize, utoipa::ToSchema)]
pub struct SessionFigures {
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub documents_sent: u64,
    pub documents_received: u64,
    /// Received sheets refused (outside the scope, or changes made by another node).
    pub refused: u64,
}

impl From<SessionStats> for SessionFigures {
    fn from(s: SessionStats) -> Self {
        SessionFigures {
            bytes_sent: s.bytes_sent,
            bytes_received: s.bytes_received,
            documents_sent: s.documents_sent,
            documents_received: s.documents_received,
            refused: s.refused,
        }
    }
}

/// One recorded sync error.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SyncErrorLine {
    pub at_ms: i64,
    pub message: String,
}

/// What sync is doing on this node.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct SyncStatus {
    /// `off` (not enrolled), `node` (syncs with a hub) or `hub` (serves nodes).
    pub mode: String,
    /// Node: whether a connection to the hub is open. Hub: whether the endpoint listens.
    pub connected: bool,
    /// Node: the hub's address. Hub: the address it listens on.
    pub address: Option<String>,
    pub last_attempt_ms: Option<i64>,
    pub last_success_ms: Option<i64>,
    /// Sheets changed here since they were last in step with the hub (node only).
    pub waiting: u64,
    /// Sessions completed since the node started.
    pub sessions: u64,
    pub last_session: Option<SessionFigures>,
    /// Most recent errors, newest last.
    pub errors: Vec<SyncErrorLine>,
}

/// Shared between the sync task and the HTTP handlers.
#[derive(Debug, Default)]
pub struct SyncHandle {
    status: Mutex<SyncStatus>,
    wake: tokio::sync::Notify,
}

impl SyncHandle {
    /// A copy of the current status.
    pub fn status(&self) -> SyncStatus {
        self.status.lock().map(|s| s.clone()).unwrap_or_default()
    }

    fn update(&self, f: impl FnOnce(&mut SyncStatus)) {
        if let Ok(mut s) = self.status.lock() {
            f(&mut s);
        }
    }

    fn error(&self, at_ms: i64, message: String) {
        self.update(|s| {
            s.errors.push(SyncErrorLine { at_ms, message });
            let extra = s.errors.len().saturating_sub(ERRORS_KEPT);
            s.errors.drain(..extra);
        });
    }

    /// Asks the sync loop to run a session now.
    pub fn sync_now(&self) {
        self.wake.notify_one();
    }
}

/// Heads as stored: the 32-byte change hashes, concatenated.
pub(crate) fn heads_blob(heads: &[[u8; 32]]) -> Vec<u8> {
    heads.concat()
}

fn heads_of(blob: &[u8]) -> Vec<[u8; 32]> {
    blob.chunks_exact(32)
        .filter_map(|c| c.try_into().ok())
        .collect()
}

fn db(e: impl std::fmt::Display) -> ReplicaError {
    ReplicaError(format!("database: {e}"))
}

/// Computes the heads of sheets that have none (written before heads were kept with each
/// write); `store_sheet` keeps every other row current.
fn refresh_heads(c: &Connection) -> rusqlite::Result<()> {
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

fn counter(c: &Connection) -> rusqlite::Result<i64> {
    c.query_row("SELECT n FROM sync_counter WHERE id = 1", [], |r| r.get(0))
}

/// An inventory and the change counter it is current at.
struct Kept {
    at: i64,
    inventory: Arc<Inventory>,
}

/// The node's documents as sync sees them.
pub struct NodeReplica {
    node: Arc<Node>,
    /// Inventories by peer, kept between sessions and brought up to date by change.
    kept: Mutex<HashMap<NodeId, Kept>>,
}

impl NodeReplica {
    pub fn new(node: Arc<Node>) -> NodeReplica {
        NodeReplica {
            node,
            kept: Mutex::new(HashMap::new()),
        }
    }

    /// Records that every sheet written up to change `seen` is in step with `peer`.
    async fn mark_in_step(&self, peer: NodeId, seen: i64) -> Result<(), ReplicaError> {
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
fn scope(local: NodeRole, peer: &Peer) -> (&'static str, Vec<String>) {
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
fn scoped_heads(
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

impl Replica for NodeReplica {
    /// The first inventory of a peer reads every sheet in its scope; later ones read only the
    /// sheets written since (by `sync_heads.seq`), so a sync with nothing to do costs the same
    /// however many sheets there are. A change of the peer's grants rebuilds it.
    async fn inventory(&self, peer: &Peer) -> Result<Arc<Inventory>, ReplicaError> {
        // Nothing written since: the kept one, without queueing behind the writer.
        let now = self
            .node
            .store
            .read(|c| counter(c).map_err(crate::Error::from))
            .await
            .map_err(db)?;
        if let Ok(k) = self.kept.lock()
            && let Some(k) = k.get(&peer.node).filter(|k| k.at == now)
        {
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
                if let Some(k) = kept.as_ref().filter(|k| k.at == now) {
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
                        for (id, heads) in changed {
                            inv.insert(id, heads);
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

    async fn save(&self, peer: &Peer, sheets: Vec<Sheet>) -> Result<(), ReplicaError> {
        let now = self.node.clock.now_ms();
        let peer = peer.node.to_string();
        self.node
            .store
            .write(move |c| {
                let tx = c.transaction()?;
                let count = sheets.len();
                for mut sheet in sheets {
                    crate::sheets::store_sheet(&tx, &mut sheet, "screen", now)?;
                }
                let detail = format!("sheets={count} from={peer}");
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
                Ok::<_, crate::Error>(())
            })
            .await
            .map_err(db)
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

/// The hub's view of enrolled nodes: the registry file, read at every handshake and session so
/// that a revocation takes effect at once.
#[derive(Debug)]
pub struct RegistryDirectory {
    dir: PathBuf,
}

impl RegistryDirectory {
    pub fn new(dir: &Path) -> RegistryDirectory {
        RegistryDirectory {
            dir: dir.to_path_buf(),
        }
    }
}

impl nsdb_sync::KeyDirectory for RegistryDirectory {
    fn accepts(&self, key: &PublicKey) -> bool {
        nsdb_sync::Directory::peer(self, key).is_some()
    }
}

impl nsdb_sync::Directory for RegistryDirectory {
    fn peer(&self, key: &PublicKey) -> Option<Peer> {
        let registry = match enrollment::registry(&self.dir) {
            Ok(r) => r,
            Err(reason) => {
                tracing::error!(target: "nsdb::sync", %reason, "cannot read the registry of enrolled nodes; refusing every node");
                return None;
            }
        };
        let node = registry
            .nodes
            .into_iter()
            .find(|n| !n.revoked && n.key() == Some(key.0))?;
        let role = match node.role.as_str() {
            "hospital" => PeerRole::Hospital,
            "municipality" => PeerRole::Municipality,
            _ => return None,
        };
        Some(Peer {
            key: *key,
            node: key.node_id(),
            role,
            jurisdiction: node.jurisdiction,
            name: node.name,
        })
    }
}

fn local_key(node: &Node) -> anyhow::Result<LocalKey> {
    let identity = nsdb_provisioning::NodeIdentity::load(&node.config.identity_path())?;
    Ok(LocalKey::from_seed(identity.secret_seed()))
}

/// A running sync task. Stops when dropped.
pub struct SyncTask {
    task: tokio::task::JoinHandle<()>,
    endpoint: Option<Arc<HubEndpoint>>,
    /// Hub: the address it listens on.
    pub addr: Option<SocketAddr>,
}

impl SyncTask {
    /// Stops syncing (the hub closes every connection at once).
    pub fn stop(&self) {
        if let Some(e) = &self.endpoint {
            e.close();
        }
        self.task.abort();
    }
}

impl Drop for SyncTask {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Starts the hub's endpoint on `listen`.
pub fn start_hub(node: &Arc<Node>, listen: SocketAddr) -> anyhow::Result<SyncTask> {
    let key = local_key(node)?;
    let directory = Arc::new(RegistryDirectory::new(&node.config.data_dir));
    let endpoint = Arc::new(HubEndpoint::bind(listen, &key, directory.clone())?);
    let addr = endpoint.local_addr()?;
    let replica = Arc::new(NodeReplica::new(node.clone()));
    let handle = node.sync.clone();
    let clock = node.clock.clone();
    handle.update(|s| {
        s.mode = "hub".into();
        s.connected = true;
        s.address = Some(addr.to_string());
    });
    let serving = endpoint.clone();
    let task = tokio::spawn(async move {
        serving
            .serve(replica, directory, move |peer, result| {
                let now = clock.now_ms();
                match result {
                    Ok(stats) => handle.update(|s| {
                        s.last_attempt_ms = Some(now);
                        s.last_success_ms = Some(now);
                        s.sessions += 1;
                        s.last_session = Some((*stats).into());
                    }),
                    Err(e) => handle.error(now, format!("{} ({}): {e}", peer.name, peer.node)),
                }
            })
            .await;
    });
    tracing::info!(target: "nsdb::sync", %addr, "hub sync endpoint listening");
    Ok(SyncTask {
        task,
        endpoint: Some(endpoint),
        addr: Some(addr),
    })
}

/// How many sheets have changes the hub has not had yet: those whose heads were written after
/// the node was last in step with it (read from the `seq` index, whatever the number of sheets).
async fn waiting(node: &Node, hub: NodeId) -> u64 {
    let hub = hub.to_string();
    node.store
        .read(move |c| {
            Ok::<_, crate::Error>(c.query_row(
                "SELECT count(*) FROM sync_heads
                 WHERE seq > COALESCE((SELECT seq FROM sync_in_step WHERE peer = ?1), -1)",
                [&hub],
                |r| r.get::<_, i64>(0),
            )? as u64)
        })
        .await
        .unwrap_or(0)
}

/// Starts a node's sync loop with the hub it was enrolled with.
pub fn start_node(
    node: &Arc<Node>,
    enrollment: &enrollment::Enrollment,
    options: SyncOptions,
) -> anyhow::Result<SyncTask> {
    let key = local_key(node)?;
    let hub_key = PublicKey(enrollment.hub_key_bytes()?);
    let hub_addr = enrollment.hub_address;
    let mut link = NodeLink::new(&key, hub_addr, hub_key)?;
    let node = node.clone();
    node.sync.update(|s| {
        s.mode = "node".into();
        s.address = Some(hub_addr.to_string());
    });
    let task = tokio::spawn(async move {
        let replica = NodeReplica::new(node.clone());
        let handle = node.sync.clone();
        let hub = hub_key.node_id();
        let mut backoff = options.min_backoff;
        loop {
            let started = node.clock.now_ms();
            handle.update(|s| s.last_attempt_ms = Some(started));
            let seen = node
                .store
                .read(|c| counter(c).map_err(crate::Error::from))
                .await
                .unwrap_or(-1);
            let result = link.sync(&replica).await;
            let ok = result.is_ok();
            match result {
                Ok(stats) => {
                    // In step with what was written before the session began; what was written
                    // during it (received sheets among them) waits for the next session.
                    if let Err(e) = replica.mark_in_step(hub, seen).await {
                        handle.error(node.clock.now_ms(), e.to_string());
                    }
                    backoff = options.min_backoff;
                    handle.update(|s| {
                        s.last_success_ms = Some(node.clock.now_ms());
                        s.sessions += 1;
                        s.last_session = Some(stats.into());
                    });
                }
                Err(e) => {
                    tracing::info!(target: "nsdb::sync", reason = %e, "sync with the hub failed; will retry");
                    handle.error(node.clock.now_ms(), e.to_string());
                }
            }
            let waiting = waiting(&node, hub).await;
            let connected = link.connected();
            handle.update(|s| {
                s.waiting = waiting;
                s.connected = connected;
            });
            if !ok {
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = handle.wake.notified() => {}
                }
                backoff = (backoff * 2).min(options.max_backoff);
                continue;
            }
            // Wait for a local change, a request, or the period.
            let deadline = tokio::time::Instant::now() + options.period;
            loop {
                tokio::select! {
                    _ = tokio::time::sleep_until(deadline) => break,
                    _ = handle.wake.notified() => break,
                    _ = tokio::time::sleep(options.poll) => {
                        let now = node
                            .store
                            .read(|c| counter(c).map_err(crate::Error::from))
                            .await
                            .unwrap_or(-1);
                        if now != seen {
                            break;
                        }
                    }
                }
            }
        }
    });
    Ok(SyncTask {
        task,
        endpoint: None,
        addr: None,
    })
}

/// Starts whatever sync this node was provisioned for: the hub's endpoint, a node's loop, or
/// nothing (not enrolled yet).
pub fn start(node: &Arc<Node>, options: SyncOptions) -> anyhow::Result<Option<SyncTask>> {
    let dir = &node.config.data_dir;
    if node.role() == NodeRole::Hub {
        return match enrollment::hub_settings(dir)? {
            Some(settings) => start_hub(node, settings.listen).map(Some),
            None => {
                node.sync.update(|s| s.mode = "off".into());
                Ok(None)
            }
        };
    }
    match enrollment::accepted(dir)? {
        Some(e) => start_node(node, &e, options).map(Some),
        None => {
            node.sync.update(|s| s.mode = "off".into());
            Ok(None)
        }
    }
}

/// On the hub: opens sheet `sheet` to the node `to` (a municipality holding its application,
/// or a hospital given the access key).
pub async fn grant(node: &Node, sheet: &str, to: NodeId) -> crate::Result<()> {
    let (sheet, to, now) = (sheet.to_string(), to.to_string(), node.clock.now_ms());
    node.store
        .write(move |c| {
            c.execute(
                "INSERT OR IGNORE INTO sync_grants (sheet_id, node, granted_at) VALUES (?1, ?2, ?3)",
                params![sheet, to, now],
            )?;
            audit::append(
                c,
                audit::Entry {
                    at_ms: now,
                    user: None,
                    action: "sync_grant",
                    target: Some(&sheet),
                    detail: Some(&to),
                },
            )?;
            Ok(())
        })
        .await
}

/// Provisions `hub` and `nodes` for sync with each other in one go (demo and tests): hub
/// identity and settings, then an enrollment for each node, accepted there. Returns the hub's
/// running task; start the nodes' loops with [`start`].
pub fn provision_and_start_hub(
    hub: &Arc<Node>,
    listen: SocketAddr,
    nodes: &[&Arc<Node>],
) -> anyhow::Result<SyncTask> {
    enrollment::init_hub(&hub.config.data_dir, listen)?;
    let task = start_hub(hub, listen)?;
    let addr = task.addr.unwrap_or(listen);
    for n in nodes {
        enroll(hub, addr, n)?;
    }
    Ok(task)
}

/// Enrolls `node` with the hub (whose sync endpoint is at `hub_addr`) and accepts it there.
pub fn enroll(hub: &Node, hub_addr: SocketAddr, node: &Node) -> anyhow::Result<()> {
    let key = enrollment::identity(&node.config.data_dir)?;
    let role = match node.role() {
        NodeRole::Hospital => "hospital",
        NodeRole::Municipality => "municipality",
        NodeRole::Hub => anyhow::bail!("a hub is not enrolled with another hub"),
    };
    let e = enrollment::issue(
        &hub.config.data_dir,
        &hex::encode(key.public_key().as_bytes()),
        role,
        &node.config.institution.code,
        &node.config.name,
        Some(hub_addr),
    )?;
    enrollment::accept(&node.config.data_dir, &e)?;
    Ok(())
}

/// How many of the hospital's sheets the demo opens to the municipality (as if it held their
/// applications).
pub const DEMO_GRANTS: usize = 10;

/// Demo: provisions the hub for sync on `listen`, enrolls the other nodes, opens a few of the
/// hospital's sheets to the municipality, and starts every node's sync.
pub async fn start_demo(nodes: &[Arc<Node>], listen: SocketAddr) -> anyhow::Result<Vec<SyncTask>> {
    let hub = nodes
        .iter()
        .find(|n| n.role() == NodeRole::Hub)
        .ok_or_else(|| anyhow::anyhow!("the demo has no hub"))?;
    let others: Vec<&Arc<Node>> = nodes.iter().filter(|n| n.role() != NodeRole::Hub).collect();
    let mut tasks = vec![provision_and_start_hub(hub, listen, &others)?];
    if let (Some(hospital), Some(municipality)) = (
        others.iter().find(|n| n.role() == NodeRole::Hospital),
        others.iter().find(|n| n.role() == NodeRole::Municipality),
    ) {
        let ids: Vec<String> = hospital
            .store
            .read(|c| {
                let mut st = c.prepare(&format!(
                    "SELECT id FROM sheets ORDER BY created_at, id LIMIT {DEMO_GRANTS}"
                ))?;
                let ids = st
                    .query_map([], |r| r.get(0))?
                    .collect::<rusqlite::Result<Vec<String>>>()?;
                Ok::<_, crate::Error>(ids)
            })
            .await?;
        for id in ids {
            grant(hub, &id, municipality.node_id).await?;
        }
    }
    for n in others {
        if let Some(task) = start(n, SyncOptions::default())? {
            tasks.push(task);
        }
    }
    Ok(tasks)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::policy::UserKind;
    use crate::sync_testing::{sheet_ids, sign_in};
    use crate::testing::TestNode;

    fn peer(role: PeerRole, seed: u8, jurisdiction: &str) -> Peer {
        let key = PublicKey([seed; 32]);
        Peer {
            key,
            node: key.node_id(),
            role,
            jurisdiction: jurisdiction.to_string(),
            name: format!("{role:?}"),
        }
    }

    /// The inventory a replica that kept nothing computes from scratch.
    async fn rebuilt(node: &Arc<Node>, peer: &Peer) -> Arc<Inventory> {
        NodeReplica::new(node.clone())
            .inventory(peer)
            .await
            .expect("inventory")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_kept_inventory_follows_every_write_as_a_rebuilt_one_would() {
        let hospital = TestNode::start_with_sheets(NodeRole::Hospital, 5).await;
        let node = &hospital.node;
        let hub = peer(PeerRole::Hub, 1, "");
        let replica = NodeReplica::new(node.clone());
        let first = replica.inventory(&hub).await.expect("inventory");
        assert_eq!(first.len(), 5);
        let again = replica.inventory(&hub).await.expect("inventory");
        assert!(Arc::ptr_eq(&first, &again), "nothing written: the kept one");

        let ids = sheet_ids(node).await;
        let doctor = sign_in(node, "doctor").await;
        node.update_sheet(
            &doctor,
            &ids[2],
            &BTreeMap::from([("patient.name_kana".to_string(), "カワリ".to_string())]),
        )
        .await
        .expect("edited");
        let created = node
            .create_sheet(&doctor, "rinko-006", &BTreeMap::new())
            .await
            .expect("created");
        let kept = replica.inventory(&hub).await.expect("inventory");
        let fresh = rebuilt(node, &hub).await;
        assert_eq!(kept.len(), 6);
        assert_eq!(kept.summary(), fresh.summary());
        let edited: SheetId = ids[2].parse().expect("id");
        assert_ne!(kept.heads(&edited), first.heads(&edited));
        assert!(kept.heads(&created.row.id.parse().expect("id")).is_some());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_hub_keeps_each_peers_scope_through_writes_and_grants() {
        let hub = TestNode::start(NodeRole::Hub).await;
        hub.add_user("doctor-a", UserKind::NanbyoDoctor, "1311000001")
            .await;
        hub.add_user("doctor-b", UserKind::NanbyoDoctor, "1311000002")
            .await;
        let (a, b) = (
            sign_in(&hub.node, "doctor-a").await,
            sign_in(&hub.node, "doctor-b").await,
        );
        let empty = BTreeMap::new();
        let sheet_a = hub
            .node
            .create_sheet(&a, "rinko-006", &empty)
            .await
            .expect("a");
        let hospital_a = peer(PeerRole::Hospital, 2, "1311000001");
        let municipality = peer(PeerRole::Municipality, 3, "131001");
        let replica = NodeReplica::new(hub.node.clone());
        assert_eq!(replica.inventory(&hospital_a).await.expect("inv").len(), 1);
        assert!(
            replica
                .inventory(&municipality)
                .await
                .expect("inv")
                .is_empty()
        );

        // Another hospital's sheet stays out of hospital A's scope.
        let sheet_b = hub
            .node
            .create_sheet(&b, "rinko-006", &empty)
            .await
            .expect("b");
        let kept = replica.inventory(&hospital_a).await.expect("inv");
        assert_eq!(kept.len(), 1);
        assert!(kept.heads(&sheet_a.row.id.parse().expect("id")).is_some());

        // A grant brings exactly that sheet into the municipality's scope.
        grant(&hub.node, &sheet_b.row.id, municipality.node)
            .await
            .expect("granted");
        let kept = replica.inventory(&municipality).await.expect("inv");
        assert_eq!(kept.len(), 1);
        assert_eq!(kept.granted, vec![sheet_b.row.id.parse().expect("id")]);
        assert_eq!(
            kept.summary(),
            rebuilt(&hub.node, &municipality).await.summary()
        );
        // A later write of the granted sheet reaches the kept inventory.
        hub.node
            .update_sheet(
                &b,
                &sheet_b.row.id,
                &BTreeMap::from([("patient.name_kana".to_string(), "アト".to_string())]),
            )
            .await
            .expect("edited");
        let later = replica.inventory(&municipality).await.expect("inv");
        assert_ne!(later.summary(), kept.summary());
        assert_eq!(
            later.summary(),
            rebuilt(&hub.node, &municipality).await.summary()
        );
        assert_eq!(
            replica.inventory(&hospital_a).await.expect("inv").len(),
            1,
            "hospital A's scope is unchanged"
        );
    }
}
