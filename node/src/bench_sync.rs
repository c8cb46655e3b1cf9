//! `nsdb bench sync`: a hub and a hospital in this process, syncing over a real QUIC connection
//! on loopback. Figures: the initial sync of every sheet, an incremental sync after 10% of the
//! sheets changed, and a sync with nothing to do, each as wall time and bytes on the wire, and
//! the process's peak memory (both sides together). Follows the convention of `bench`.
//!
//! Benchmarks never assert timings; this module must never be used by a running node.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use nsdb_sync::{LocalKey, NodeLink, PublicKey};

use crate::bench::Figure;
use crate::config::NodeRole;
use crate::demo;
use crate::sync_service::{NodeReplica, provision_and_start_hub};
use crate::{Clock, Node};

/// Options of the sync scenario.
#[derive(Debug, Clone, Copy)]
pub struct SyncBench {
    pub sheets: usize,
    pub runs: usize,
}

async fn open(dir: &std::path::Path, role: NodeRole, sheets: usize) -> anyhow::Result<Arc<Node>> {
    let spec = demo::demo_nodes()
        .into_iter()
        .find(|n| n.role == role)
        .ok_or_else(|| anyhow::anyhow!("no demo node of role {role:?}"))?;
    let config = demo::config(dir, &spec, "127.0.0.1:0".parse()?)?;
    let node = Node::open(config, Clock::System)?;
    demo::seed(&node, &spec, sheets).await?;
    Ok(node)
}

/// Peak resident memory of this process so far, in MiB (Linux; 0 elsewhere).
fn peak_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

/// Runs the scenario.
pub async fn sync(opts: SyncBench) -> anyhow::Result<Vec<Figure>> {
    let mut figures: BTreeMap<&'static str, (&'static str, Vec<f64>)> = BTreeMap::new();
    let mut record = |metric: &'static str, unit: &'static str, value: f64| {
        figures
            .entry(metric)
            .or_insert((unit, Vec::new()))
            .1
            .push(value);
    };
    for run in 0..=opts.runs {
        let dir = tempfile::tempdir()?;
        let hub = open(dir.path(), NodeRole::Hub, 0).await?;
        let hospital = open(dir.path(), NodeRole::Hospital, opts.sheets).await?;
        let task = provision_and_start_hub(&hub, "127.0.0.1:0".parse()?, &[&hospital])?;
        let addr = task
            .addr
            .ok_or_else(|| anyhow::anyhow!("the hub has no address"))?;
        let identity = nsdb_provisioning::NodeIdentity::load(&hospital.config.identity_path())?;
        let hub_key = nsdb_provisioning::enrollment::identity(&hub.config.data_dir)?;
        let mut link = NodeLink::new(
            &LocalKey::from_seed(identity.secret_seed()),
            addr,
            PublicKey(hub_key.public_key().to_bytes()),
        )?;
        let replica = NodeReplica::new(hospital.clone());

        let started = Instant::now();
        let initial = link.sync(&replica).await?;
        let initial_s = started.elapsed().as_secs_f64();

        // 10% of the sheets change one item each.
        let doctor = hospital
            .login("doctor", demo::DEMO_PASSWORD)
            .await?
            .principal;
        let ids: Vec<String> = hospital
            .store
            .read(|c| {
                let mut st = c.prepare("SELECT id FROM sheets ORDER BY id")?;
                let ids = st
                    .query_map([], |r| r.get(0))?
                    .collect::<rusqlite::Result<Vec<String>>>()?;
                Ok::<_, crate::Error>(ids)
            })
            .await?;
        for id in ids.iter().step_by(10) {
            let values =
                BTreeMap::from([("patient.name_kana".to_string(), format!("ベンチ {run}"))]);
            hospital.update_sheet(&doctor, id, &values).await?;
        }
        let started = Instant::now();
        let incremental = link.sync(&replica).await?;
        let incremental_s = started.elapsed().as_secs_f64();

        let started = Instant::now();
        let idle = link.sync(&replica).await?;
        let idle_s = started.elapsed().as_secs_f64();
        task.stop();
        if run == 0 {
            continue; // warm-up
        }
        record("initial_wall", "s", initial_s);
        record(
            "initial_bytes",
            "KiB",
            (initial.bytes_sent + initial.bytes_received) as f64 / 1024.0,
        );
        record("incremental_wall", "s", incremental_s);
        record(
            "incremental_bytes",
            "KiB",
            (incremental.bytes_sent + incremental.bytes_received) as f64 / 1024.0,
        );
        record("idle_wall", "ms", idle_s * 1000.0);
        record(
            "idle_bytes",
            "KiB",
            (idle.bytes_sent + idle.bytes_received) as f64 / 1024.0,
        );
        record("peak_memory_both_sides", "MiB", peak_mib());
    }
    let bench = format!("sync-{}", opts.sheets);
    Ok(figures
        .into_iter()
        .map(|(metric, (unit, values))| Figure::from_runs(&bench, metric, unit, &values))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_sync_scenario_reports_every_figure() {
        let figures = sync(SyncBench {
            sheets: 20,
            runs: 1,
        })
        .await
        .unwrap();
        let metrics: Vec<&str> = figures.iter().map(|f| f.metric.as_str()).collect();
        for m in [
            "initial_wall",
            "incremental_bytes",
            "idle_wall",
            "idle_bytes",
        ] {
            assert!(metrics.contains(&m), "{m} missing from {metrics:?}");
        }
    }
}
