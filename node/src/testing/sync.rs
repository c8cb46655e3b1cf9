//! Test support for sync: a hub, a hospital and a municipality, each a real node on loopback,
//! provisioned and syncing with each other, in one line: `SyncSite::start(sheets).await`.
//!
//! The hub's sync endpoint can be stopped and started again on the same address to play an
//! outage. Used by tests and benchmarks only; never by the running product.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::config::NodeRole;
use crate::sync_service::{self, SyncOptions, SyncTask};
use crate::testing::TestNode;
use crate::{Node, accounts::policy::Principal};

/// Sync timing for tests: quick polls and short backoff.
pub const FAST: SyncOptions = SyncOptions {
    period: Duration::from_millis(300),
    poll: Duration::from_millis(50),
    min_backoff: Duration::from_millis(50),
    max_backoff: Duration::from_millis(400),
    set_aside_retry: Duration::from_millis(200),
    max_set_aside_retry: Duration::from_secs(2),
};

/// Three nodes syncing on loopback.
pub struct SyncSite {
    pub hub: TestNode,
    pub hospital: TestNode,
    pub municipality: TestNode,
    pub hub_addr: SocketAddr,
    hub_task: Option<SyncTask>,
    node_tasks: Vec<SyncTask>,
}

impl SyncSite {
    /// A provisioned site; the hospital starts with `sheets` fictitious sheets.
    pub async fn start(sheets: usize) -> SyncSite {
        let mut site = SyncSite::start_stopped(sheets).await;
        site.start_nodes();
        site
    }

    /// A provisioned site whose nodes do not sync yet (call [`SyncSite::start_nodes`]).
    pub async fn start_stopped(sheets: usize) -> SyncSite {
        let hub = TestNode::start(NodeRole::Hub).await;
        // The hospital leases its key blocks from the hub, as in the field.
        let hospital = TestNode::start_unleased(NodeRole::Hospital, sheets).await;
        let municipality = TestNode::start(NodeRole::Municipality).await;
        let task = sync_service::provision_and_start_hub(
            &hub.node,
            "127.0.0.1:0".parse().expect("address"),
            &[&hospital.node, &municipality.node],
        )
        .expect("hub provisioned");
        let hub_addr = task.addr.expect("hub address");
        SyncSite {
            hub,
            hospital,
            municipality,
            hub_addr,
            hub_task: Some(task),
            node_tasks: Vec::new(),
        }
    }

    /// Starts the hospital's and the municipality's sync loops.
    pub fn start_nodes(&mut self) {
        for n in [&self.hospital.node, &self.municipality.node] {
            let task = sync_service::start(n, FAST)
                .expect("sync starts")
                .expect("the node is enrolled");
            self.node_tasks.push(task);
        }
    }

    /// Stops the hospital's and the municipality's sync loops.
    pub fn stop_nodes(&mut self) {
        self.node_tasks.clear();
    }

    /// Takes a backup of the hospital's database into `dest` (`nsdb backup`).
    pub fn back_up_hospital(&self, dest: &std::path::Path) {
        let node = &self.hospital.node;
        let key = crate::store::DbKey::load(&node.config.key).expect("the node's key");
        crate::ops::backup::backup(
            &node.config,
            &key,
            &node.node_id.to_string(),
            dest,
            node.clock.now_ms(),
        )
        .expect("backup taken");
    }

    /// Stops the nodes' sync, restores the hospital from the backup in `dir` (`nsdb restore`),
    /// opens it again from its data directory and starts the nodes' sync again: a hospital
    /// restored from an older copy.
    pub async fn restore_hospital(&mut self, dir: &std::path::Path) {
        self.stop_nodes();
        let config = self.hospital.node.config.clone();
        let key = crate::store::DbKey::load(&config.key).expect("the node's key");
        let id = self.hospital.node.node_id.to_string();
        let now = self.hospital.node.clock.now_ms();
        crate::ops::backup::restore(&config, &key, None, Some(&id), dir, now).expect("restored");
        self.restart_hospital().await;
    }

    /// Stops the nodes' sync, removes the hospital's whole data directory (a lost disk), restores
    /// it from the backup in `dir` with only its configuration and key (`nsdb restore` without
    /// an identity), opens it again and starts the nodes' sync again.
    pub async fn restore_hospital_onto_an_empty_disk(&mut self, dir: &std::path::Path) {
        self.stop_nodes();
        let config = self.hospital.node.config.clone();
        let key = crate::store::DbKey::load(&config.key).expect("the node's key");
        // The operator brings the key file back (kept apart from the node and the backups).
        let key_file = match &config.key {
            crate::store::KeySource::File(p) => Some((p.clone(), std::fs::read(p).expect("key"))),
            _ => None,
        };
        std::fs::remove_dir_all(&config.data_dir).expect("the data directory removed");
        if let Some((path, bytes)) = key_file {
            use std::os::unix::fs::PermissionsExt;
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).expect("the key's directory");
            }
            std::fs::write(&path, bytes).expect("the key file back");
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
                .expect("mode 600");
        }
        let now = self.hospital.node.clock.now_ms();
        crate::ops::backup::restore(&config, &key, None, None, dir, now).expect("restored");
        self.restart_hospital().await;
    }

    /// Restarts the hospital: stops the nodes' sync, opens the hospital again from its data
    /// directory ([`TestNode::reopen`], a new HTTP port) and starts the nodes' sync again.
    pub async fn restart_hospital(&mut self) {
        self.stop_nodes();
        self.hospital.reopen().await;
        self.start_nodes();
    }

    /// Stops the hub's sync endpoint (an outage of the hub).
    pub fn stop_hub(&mut self) {
        if let Some(t) = self.hub_task.take() {
            t.stop();
        }
    }

    /// Starts the hub's sync endpoint again on the same address.
    pub async fn start_hub(&mut self) {
        for _ in 0..100 {
            match sync_service::start_hub(&self.hub.node, self.hub_addr) {
                Ok(t) => {
                    self.hub_task = Some(t);
                    return;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
        panic!("the hub's sync address {} stays busy", self.hub_addr);
    }

    /// Another node of `role` at institution `code` (`name`), with the demo users of that role
    /// and no key block, enrolled with the hub and syncing: a second municipality, more
    /// hospitals. The site keeps its sync task.
    pub async fn add_node(&mut self, role: NodeRole, code: &str, name: &str) -> TestNode {
        let node = TestNode::start_at(role, code, name).await;
        sync_service::enroll(&self.hub.node, self.hub_addr, &node.node).expect("enrolled");
        let task = sync_service::start(&node.node, FAST)
            .expect("sync starts")
            .expect("the node is enrolled");
        self.node_tasks.push(task);
        node
    }

    /// Opens sheet `id` to the municipality at the hub.
    pub async fn grant_to_municipality(&self, id: &str) {
        sync_service::grant(&self.hub.node, id, self.municipality.node.node_id)
            .await
            .expect("granted");
    }

    /// Stands in for the resolution of sheet `id`'s access key by the municipality's reviewer
    /// (`reviewer`): grants the sheet to the municipality at the hub and records the
    /// `resolutions` row at the municipality, as resolution at the hub does. The key is read
    /// from the hospital's copy (empty when the sheet has none).
    pub async fn resolve_for_municipality(&self, id: &str) {
        resolve_at(
            &self.hub.node,
            &self.hospital.node,
            &self.municipality.node,
            id,
        )
        .await;
    }
}

/// Grants sheet `id` (held by `hospital`) to `municipality` at `hub` and records the
/// `resolutions` row there for its user `reviewer`: a stand-in for key resolution.
pub async fn resolve_at(hub: &Arc<Node>, hospital: &Arc<Node>, municipality: &Arc<Node>, id: &str) {
    sync_service::grant(hub, id, municipality.node_id)
        .await
        .expect("granted");
    let sid = id.to_string();
    let key: String = hospital
        .store
        .read(move |c| {
            let key: Option<String> =
                c.query_row("SELECT access_key FROM sheets WHERE id = ?1", [&sid], |r| {
                    r.get(0)
                })?;
            Ok::<_, crate::Error>(key.unwrap_or_default())
        })
        .await
        .expect("the hospital holds the sheet");
    let now = municipality.clock.now_ms();
    crate::testing::record_resolution(municipality, id, &key, "reviewer", now).await;
}

impl SyncSite {
    /// Starts another municipality node (自治体コード `code`, reviewer `reviewer`), enrolled with
    /// the hub and syncing: for tests that need a second municipality.
    pub async fn add_municipality(&mut self, code: &str) -> TestNode {
        let other = TestNode::start_municipality(code).await;
        sync_service::enroll(&self.hub.node, self.hub_addr, &other.node).expect("enrolled");
        let task = sync_service::start(&other.node, FAST)
            .expect("sync starts")
            .expect("the node is enrolled");
        self.node_tasks.push(task);
        other
    }
}

/// Waits up to `timeout` until `node` holds a leased key block with serials left.
pub async fn has_key_block(node: &Arc<Node>, timeout: Duration) -> bool {
    eventually(timeout, || async {
        let own = node.node_id.to_string();
        node.store
            .read(move |c| crate::keys::remaining(c, &own).map_err(crate::Error::from))
            .await
            .unwrap_or(0)
            > 0
    })
    .await
}

/// Waits up to `timeout` for `check` to hold, polling; returns whether it held.
pub async fn eventually<F, Fut>(timeout: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let until = tokio::time::Instant::now() + timeout;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= until {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The ids of every sheet a node holds, sorted.
pub async fn sheet_ids(node: &Arc<Node>) -> Vec<String> {
    node.sheet_ids().await.expect("sheet ids")
}

/// Signs in a demo (or added) user; password `demo`.
pub async fn sign_in(node: &Arc<Node>, login: &str) -> Principal {
    node.login(login, crate::cli::demo::DEMO_PASSWORD)
        .await
        .expect("signs in")
        .principal
}

/// Writes `values` (and, with `access_key`, that key) into sheet `id` on `node` as its user
/// `user`, straight into the store: for tests that need a document no save through the product
/// makes (larger than what may enter, or holding a key issued elsewhere), as one written before
/// those limits, or restored from an old copy, would be.
pub async fn write_directly(
    node: &Arc<Node>,
    id: &str,
    user: u64,
    values: std::collections::BTreeMap<String, Option<String>>,
    access_key: Option<&str>,
) {
    let author = nsdb_sync::Author {
        node: node.node_id,
        user,
    };
    let (id, key, now) = (
        id.to_string(),
        access_key.map(str::to_string),
        node.clock.now_ms(),
    );
    node.store
        .write(move |c| {
            let doc: Vec<u8> =
                c.query_row("SELECT doc FROM sheets WHERE id = ?1", [&id], |r| r.get(0))?;
            let mut sheet = nsdb_sync::Sheet::load(&doc).expect("a readable sheet");
            let edit = || nsdb_sync::Edit {
                author,
                at_ms: now,
                message: "",
            };
            sheet.set_fields(&values, edit());
            if let Some(key) = &key {
                sheet.set_access_key(key, edit());
            }
            crate::sheets::store_sheet(c, &mut sheet, "screen", now)?;
            Ok::<_, crate::Error>(())
        })
        .await
        .expect("written");
}

/// `len` bytes of lowercase text that does not compress (free text of an unusual size).
pub fn noise(len: usize, seed: u64) -> String {
    let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
    (0..len)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            char::from(b'a' + ((x >> 33) % 26) as u8)
        })
        .collect()
}
