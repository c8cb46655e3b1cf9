//! Provisioning in one go for the demo and tests: the hub's identity and settings, an
//! enrollment for each node accepted there. Production enrollment is the
//! `nsdb provision` commands (`nsdb_provisioning::enrollment`).

use super::{SyncOptions, SyncTask, start, start_hub};
use std::net::SocketAddr;
use std::sync::Arc;

use nsdb_provisioning::enrollment;

use crate::Node;
use crate::config::NodeRole;

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

/// Demo: provisions the hub for sync on `listen`, enrolls the other nodes and starts every
/// node's sync. Nothing is opened to the municipality here: a municipality receives a sheet only
/// when its reviewer resolves the sheet's access key with the patient's birth date.
pub async fn start_demo(nodes: &[Arc<Node>], listen: SocketAddr) -> anyhow::Result<Vec<SyncTask>> {
    let hub = nodes
        .iter()
        .find(|n| n.role() == NodeRole::Hub)
        .ok_or_else(|| anyhow::anyhow!("the demo has no hub"))?;
    let others: Vec<&Arc<Node>> = nodes.iter().filter(|n| n.role() != NodeRole::Hub).collect();
    let mut tasks = vec![provision_and_start_hub(hub, listen, &others)?];
    for n in others {
        if let Some(task) = start(n, SyncOptions::default())? {
            tasks.push(task);
        }
    }
    Ok(tasks)
}
