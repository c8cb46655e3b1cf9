//! The hub's side: the registry of enrolled nodes (read at every handshake, so a revocation
//! takes effect at once; refused handshakes audited at most once an hour per node), the hub's
//! sync endpoint, and grants that open a sheet to a node.

use super::{NodeReplica, SyncTask, local_key};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use nsdb_provisioning::enrollment;
use nsdb_sync::{HubEndpoint, NodeId, Peer, PeerRole, PublicKey};
use rusqlite::params;

use crate::{Node, audit};

/// The hub's view of enrolled nodes: the registry file, read at every handshake and session so
/// that a revocation takes effect at once. With [`RegistryDirectory::auditing`], refused
/// handshakes are logged and audited ([`Refusals`]).
#[derive(Debug)]
pub struct RegistryDirectory {
    dir: PathBuf,
    refusals: Option<Refusals>,
}

impl RegistryDirectory {
    pub fn new(dir: &Path) -> RegistryDirectory {
        RegistryDirectory {
            dir: dir.to_path_buf(),
            refusals: None,
        }
    }

    /// The directory of `node` (the hub), recording the handshakes it refuses.
    pub fn auditing(node: &Arc<Node>) -> RegistryDirectory {
        RegistryDirectory {
            dir: node.config.data_dir.clone(),
            refusals: Some(Refusals {
                node: Arc::downgrade(node),
                seen: Default::default(),
            }),
        }
    }
}

impl nsdb_sync::KeyDirectory for RegistryDirectory {
    fn accepts(&self, key: &PublicKey) -> bool {
        nsdb_sync::Directory::peer(self, key).is_some()
    }
}

/// One audit entry per refused node per [`REFUSAL_WINDOW_MS`].
pub const REFUSAL_WINDOW_MS: i64 = 3_600_000;

/// The hub's record of handshakes it refused (a node not enrolled, or revoked): the first
/// refusal of a node in each hour is logged (node id only) and audited as `sync_refused` with
/// target the node id and detail `attempts=N`, N the refusals of that node since its previous
/// entry (this one included); the others are counted in memory. A node retrying in a loop thus
/// adds at most one entry an hour.
#[derive(Debug)]
pub struct Refusals {
    node: std::sync::Weak<Node>,
    /// Per node: when its last entry was written, and the refusals since (that one included).
    seen: std::sync::Mutex<std::collections::HashMap<NodeId, (i64, u64)>>,
}

impl Refusals {
    fn refused(&self, who: NodeId) {
        let Some(node) = self.node.upgrade() else {
            return;
        };
        let now = node.clock.now_ms();
        let attempts = {
            let Ok(mut seen) = self.seen.lock() else {
                return;
            };
            let entry = seen.entry(who).or_insert((i64::MIN, 0));
            entry.1 += 1;
            if entry.0 != i64::MIN && now - entry.0 < REFUSAL_WINDOW_MS {
                return;
            }
            let attempts = entry.1;
            *entry = (now, 0);
            attempts
        };
        tracing::warn!(target: "nsdb::sync", node = %who, attempts, "refused a node that is not enrolled or was revoked; audited (at most once an hour per node)");
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        runtime.spawn(async move {
            let (target, detail) = (who.to_string(), format!("attempts={attempts}"));
            let written = node
                .store
                .write(move |c| {
                    audit::append(
                        c,
                        audit::Entry {
                            at_ms: now,
                            user: None,
                            action: "sync_refused",
                            target: Some(&target),
                            detail: Some(&detail),
                        },
                    )
                    .map_err(crate::Error::from)
                })
                .await;
            if let Err(e) = written {
                tracing::warn!(target: "nsdb::sync", error = %e, "the refused node was not audited");
            }
        });
    }
}

impl nsdb_sync::Directory for RegistryDirectory {
    /// The enrolled, unrevoked node holding `key`. A refusal is recorded here, whether the
    /// handshake asks ([`nsdb_sync::KeyDirectory::accepts`]) or, for a resumed TLS session that
    /// skipped the certificate check, the connection or a new stream does.
    fn peer(&self, key: &PublicKey) -> Option<Peer> {
        let found = self.lookup(key);
        if found.is_none()
            && let Some(r) = &self.refusals
        {
            r.refused(key.node_id());
        }
        found
    }
}

impl RegistryDirectory {
    fn lookup(&self, key: &PublicKey) -> Option<Peer> {
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

/// Starts the hub's endpoint on `listen`.
pub fn start_hub(node: &Arc<Node>, listen: SocketAddr) -> anyhow::Result<SyncTask> {
    let key = local_key(node)?;
    let directory = Arc::new(RegistryDirectory::auditing(node));
    let endpoint = Arc::new(HubEndpoint::bind(listen, &key, directory.clone())?);
    let addr = endpoint.local_addr()?;
    let replica = Arc::new(NodeReplica::new(node.clone()));
    let handle = node.sync.clone();
    let clock = node.clock.clone();
    let metrics = node.metrics.clone();
    handle.update(|s| {
        s.mode = "hub".into();
        s.connected = true;
        s.address = Some(addr.to_string());
    });
    let serving = endpoint.clone();
    let desk = Arc::new(super::HubDesk::new(node.clone()));
    let task = tokio::spawn(async move {
        serving
            .serve_with(replica, directory, desk, move |peer, result| {
                let now = clock.now_ms();
                match result {
                    Ok(stats) => metrics.sync_session(true, stats.bytes_sent, stats.bytes_received),
                    Err(_) => metrics.sync_session(false, 0, 0),
                }
                match result {
                    Ok(stats) => handle.update(|s| {
                        s.last_attempt_ms = Some(now);
                        s.last_success_ms = Some(now);
                        s.sessions += 1;
                        s.last_session = Some(stats.into());
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

/// The sync status as `p` may see it. On the hub, the errors and set-aside sheets concern
/// other institutions' nodes and sheets (names, node ids, sheet ids, keys in reasons), so only
/// the ministry sees them; a clinic's user served by the hub (M18) sees whether sync runs and
/// its figures. On a hospital or municipality node, everyone sees the whole status.
pub async fn status_for(node: &Node, p: &crate::accounts::policy::Principal) -> super::SyncStatus {
    // Who looked at the sync page (set-aside sheets' ids, the nodes' errors) is recorded.
    if let Err(e) = node.audit(p, "sync_view", None, None).await {
        tracing::warn!(target: "nsdb::sync", error = %e, "the sync page's audit entry could not be written");
    }
    let mut status = super::status(node).await;
    let ministry = p.role() == crate::accounts::policy::Role::Ministry;
    if node.role() == crate::config::NodeRole::Hub && !ministry {
        status.errors.clear();
        status.set_aside.clear();
    }
    status
}

/// On the hub: opens sheet `sheet` to the node `to` (a municipality holding its application,
/// or a hospital given the access key).
pub async fn grant(node: &Node, sheet: &str, to: NodeId) -> crate::Result<()> {
    let (sheet, now) = (sheet.to_string(), node.clock.now_ms());
    node.store
        .write(move |c| grant_in(c, &sheet, to, now).map_err(crate::Error::from))
        .await
}

/// [`grant`] inside the caller's transaction, with its audit entry.
pub(super) fn grant_in(
    c: &rusqlite::Connection,
    sheet: &str,
    to: NodeId,
    now: i64,
) -> rusqlite::Result<()> {
    let to = to.to_string();
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
            target: Some(sheet),
            detail: Some(&to),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::NodeRole;
    use crate::testing::TestNode;
    use crate::testing::sync::sign_in;

    #[tokio::test]
    async fn on_the_hub_only_the_ministry_sees_other_nodes_sync_errors() {
        let hub = TestNode::start(NodeRole::Hub).await;
        hub.node
            .sync
            .error(1, "デモ総合病院 (n): アクセスキー 12345-67890-1".into());
        let clinic = sign_in(&hub.node, "clinic").await;
        let ministry = sign_in(&hub.node, "ministry").await;
        assert!(status_for(&hub.node, &clinic).await.errors.is_empty());
        assert_eq!(status_for(&hub.node, &ministry).await.errors.len(), 1);
    }
}
