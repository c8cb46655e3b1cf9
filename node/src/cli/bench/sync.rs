//! `nsdb bench sync`: a hospital in this process and the hub in a process of its own
//! (`nsdb serve`, this same binary), syncing over a real QUIC connection on loopback. Figures:
//! the initial sync of every sheet, an incremental sync after 10% of the sheets changed, and
//! syncs with nothing to do, each as wall time and bytes on the wire, each side's peak memory
//! (the hospital's from after seeding), and 1,000 ordinary sheets crossing alone against the
//! same beside one oversized sheet (12.6 MB of unsent changes), with that sheet's own cost.
//! Follows the convention of `bench`.
//!
//! Benchmarks never assert timings; this module must never be used by a running node.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use nsdb_sync::{LocalKey, NodeLink, PublicKey};

use crate::cli::bench::Figure;
use crate::cli::demo;
use crate::config::NodeRole;
use crate::sync_service::{AfterSession, NodeReplica, change_counter, enroll, round};
use crate::{Clock, Node};

/// Options of the sync scenario.
#[derive(Debug, Clone, Copy)]
pub struct SyncBench {
    pub sheets: usize,
    pub runs: usize,
}

async fn open(dir: &Path, role: NodeRole, sheets: usize) -> anyhow::Result<Arc<Node>> {
    let spec = demo_node(role)?;
    let config = demo::config(dir, &spec, "127.0.0.1:0".parse()?)?;
    let node = Node::open(config, Clock::System)?;
    demo::seed(&node, &spec, sheets).await?;
    Ok(node)
}

fn demo_node(role: NodeRole) -> anyhow::Result<demo::DemoNode> {
    demo::demo_nodes()
        .into_iter()
        .find(|n| n.role == role)
        .ok_or_else(|| anyhow::anyhow!("no demo node of role {role:?}"))
}

/// A memory figure from a process's `status` (`VmHWM` for the peak, `VmRSS` for now), in MiB
/// (Linux; 0 elsewhere).
fn status_mib(pid: &str, field: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.strip_prefix(field).is_some_and(|r| r.starts_with(':')))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

/// Resets this process's peak (`VmHWM`) to the memory in use now (Linux 4.0 and later; a
/// no-op elsewhere), so that the peak measured next belongs to the sync and not to seeding.
fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// A loopback address with a port free now.
fn free_addr(udp: bool) -> anyhow::Result<SocketAddr> {
    let any: SocketAddr = "127.0.0.1:0".parse()?;
    Ok(if udp {
        std::net::UdpSocket::bind(any)?.local_addr()?
    } else {
        std::net::TcpListener::bind(any)?.local_addr()?
    })
}

/// The hub, running as `nsdb serve` in a process of its own; killed when dropped.
struct HubProcess {
    child: Child,
    sync_addr: SocketAddr,
}

impl HubProcess {
    /// Provisions a hub under `dir`, enrolls `hospital` with it, and starts it.
    async fn start(dir: &Path, hospital: &Node) -> anyhow::Result<HubProcess> {
        let sync_addr = free_addr(true)?;
        let http_addr = free_addr(false)?;
        let spec = demo_node(NodeRole::Hub)?;
        let config = demo::config(dir, &spec, http_addr)?;
        {
            let hub = Node::open(config.clone(), Clock::System)?;
            nsdb_provisioning::enrollment::init_hub(&config.data_dir, sync_addr)?;
            enroll(&hub, sync_addr, hospital)?;
        }
        let crate::store::KeySource::File(key_file) = &config.key else {
            anyhow::bail!("the demo hub keeps its key in a file");
        };
        let file = dir.join("hub.toml");
        let text = toml::to_string(&toml::toml! {
            name = "hub"
            role = "hub"
            listen = (http_addr.to_string())
            data_dir = (config.data_dir.display().to_string())
            key_file = (key_file.display().to_string())
            [institution]
            code = (spec.institution.code.clone())
            name = (spec.institution.name.clone())
        })?;
        std::fs::write(&file, text)?;
        let log = std::fs::File::create(dir.join("hub.log"))?;
        let exe = std::env::current_exe().context("the nsdb binary")?;
        let child = Command::new(exe)
            .arg("serve")
            .arg("--config")
            .arg(&file)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting the hub process")?;
        let mut hub = HubProcess { child, sync_addr };
        // The hub opens its sync endpoint before its web listener: once the listener answers,
        // both are up.
        let until = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(http_addr).is_err() {
            if let Some(status) = hub.child.try_wait()? {
                let log = std::fs::read_to_string(dir.join("hub.log")).unwrap_or_default();
                anyhow::bail!("the hub process ended ({status}):\n{log}");
            }
            if Instant::now() > until {
                anyhow::bail!("the hub process did not start listening within a minute");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(hub)
    }

    fn peak_mib(&self) -> f64 {
        status_mib(&self.child.id().to_string(), "VmHWM")
    }
}

impl Drop for HubProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The sessions of one [`round`], each with the time it ended (s since the round began).
struct Timed {
    began: Instant,
    sessions: Vec<(f64, nsdb_sync::SessionStats)>,
    failed: Option<anyhow::Error>,
}

impl AfterSession for Timed {
    async fn after(
        &mut self,
        result: Result<nsdb_sync::SessionStats, nsdb_sync::LinkError>,
        _in_step: i64,
    ) -> bool {
        let at = self.began.elapsed().as_secs_f64();
        match result {
            Ok(stats) => {
                self.sessions.push((at, stats));
                true
            }
            Err(e) => {
                self.failed = Some(e.into());
                false
            }
        }
    }
}

/// Runs one [`round`] as the node's loop does; returns its sessions with their end times.
async fn timed_round(
    node: &Node,
    replica: &NodeReplica,
    link: &mut NodeLink,
    hub: nsdb_sync::NodeId,
) -> anyhow::Result<Vec<(f64, nsdb_sync::SessionStats)>> {
    let seen = change_counter(node).await?;
    let mut timed = Timed {
        began: Instant::now(),
        sessions: Vec::new(),
        failed: None,
    };
    round(replica, link, hub, seen, &mut timed).await;
    match timed.failed {
        Some(e) => Err(e),
        None => Ok(timed.sessions),
    }
}

/// The raw limit of an initial sync, measured as `../shared/peers` does: the same stored
/// documents sent over one loopback TCP socket (a 4-byte length, the id, the bytes) and
/// inserted by the receiving thread into a plain SQLite table (`id TEXT PRIMARY KEY, doc
/// BLOB`, WAL, `synchronous = NORMAL`) in one transaction. Seconds, from connecting to the
/// commit. Nothing is checked, decoded or encrypted: no sync can be faster.
async fn raw_limit(node: &Node, dir: &Path) -> anyhow::Result<f64> {
    use std::io::{BufReader, BufWriter, Read, Write};
    let docs: Vec<(String, Vec<u8>)> = node
        .store
        .read(|c| {
            let mut st = c.prepare("SELECT id, doc FROM sheets")?;
            let rows = st
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok::<_, crate::Error>(rows)
        })
        .await?;
    let path = dir.join("limit.db");
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    tokio::task::spawn_blocking(move || -> anyhow::Result<f64> {
        let receiver = std::thread::spawn(move || -> anyhow::Result<()> {
            let mut db = rusqlite::Connection::open(&path)?;
            db.execute_batch(
                "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;
                 CREATE TABLE docs (id TEXT PRIMARY KEY, doc BLOB);",
            )?;
            let (socket, _) = listener.accept()?;
            let mut socket = BufReader::with_capacity(1 << 20, socket);
            let tx = db.transaction()?;
            {
                let mut insert = tx.prepare("INSERT INTO docs (id, doc) VALUES (?1, ?2)")?;
                let mut len = [0u8; 4];
                loop {
                    match socket.read_exact(&mut len) {
                        Ok(()) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
                        Err(e) => return Err(e.into()),
                    }
                    let mut frame = vec![0u8; u32::from_be_bytes(len) as usize];
                    socket.read_exact(&mut frame)?;
                    let (id, doc) = frame.split_at(36);
                    insert.execute(rusqlite::params![std::str::from_utf8(id)?, doc])?;
                }
            }
            tx.commit()?;
            Ok(())
        });
        let started = Instant::now();
        let mut socket = BufWriter::with_capacity(1 << 20, std::net::TcpStream::connect(addr)?);
        for (id, doc) in &docs {
            let len = u32::try_from(id.len() + doc.len())?;
            socket.write_all(&len.to_be_bytes())?;
            socket.write_all(id.as_bytes())?;
            socket.write_all(doc)?;
        }
        drop(socket.into_inner().map_err(|e| e.into_error())?);
        receiver
            .join()
            .map_err(|_| anyhow::anyhow!("the limit's receiver panicked"))??;
        Ok(started.elapsed().as_secs_f64())
    })
    .await?
}

/// Documents the per-stage breakdown ([`stages`]) times.
const STAGE_SAMPLE: usize = 1_000;

/// Where a received document's time goes, stage by stage, as the hub spends it on each sheet
/// of an initial sync: microseconds per document over the first [`STAGE_SAMPLE`] stored
/// documents of `node`, each stage run alone on this process's threads. `stage_read` is the
/// sending side's read of the stored bytes; `stage_load` reads them into a sheet and checks
/// every change's author (`Sheet::load_received`); `stage_authority` checks what each change
/// wrote against what a hospital may change (`review::authority`); `stage_fields` reads the
/// values for the list projection; `stage_store` runs `sheets::store_sheet`'s statements in a
/// transaction that is rolled back (page encryption at commit is not included).
async fn stages(node: &Node) -> anyhow::Result<Vec<(&'static str, f64)>> {
    let sender = node.node_id;
    node.store
        .write(move |c| {
            let ids: Vec<String> = c
                .prepare(&format!(
                    "SELECT id FROM sheets ORDER BY id LIMIT {STAGE_SAMPLE}"
                ))?
                .query_map([], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            let per_doc =
                |started: Instant| started.elapsed().as_secs_f64() * 1e6 / ids.len().max(1) as f64;
            let started = Instant::now();
            let mut docs = Vec::with_capacity(ids.len());
            {
                let mut st = c.prepare_cached("SELECT doc FROM sheets WHERE id = ?1")?;
                for id in &ids {
                    docs.push(st.query_row([id], |r| r.get::<_, Vec<u8>>(0))?);
                }
            }
            let read = per_doc(started);
            let started = Instant::now();
            let mut sheets = Vec::with_capacity(docs.len());
            for (id, bytes) in ids.iter().zip(&docs) {
                let id: nsdb_sync::SheetId = id.parse()?;
                sheets.push(nsdb_sync::Sheet::load_received(id, bytes, Some(sender))?);
            }
            let load = per_doc(started);
            let started = Instant::now();
            for sheet in &sheets {
                crate::review::authority::check(
                    sheet,
                    &[],
                    crate::review::authority::Sender::Hospital,
                )
                .map_err(anyhow::Error::msg)?;
            }
            let authority = per_doc(started);
            let started = Instant::now();
            let values: usize = sheets.iter().map(|s| s.fields().len()).sum();
            let fields = per_doc(started);
            std::hint::black_box(values);
            let started = Instant::now();
            let tx = c.transaction()?;
            for sheet in &mut sheets {
                crate::sheets::store_sheet(&tx, sheet, "screen", 0)?;
            }
            let store = per_doc(started);
            tx.rollback()?;
            Ok::<_, anyhow::Error>(vec![
                ("stage_read", read),
                ("stage_load", load),
                ("stage_authority", authority),
                ("stage_fields", fields),
                ("stage_store", store),
            ])
        })
        .await
}

/// Ordinary sheets changed for the figure "1,000 sheets crossing beside an oversized one".
const ORDINARY: usize = 1_000;

/// Writes `value` into item `item` of each sheet in `ids` as user `user`, straight into the
/// store in one transaction, once per value in `values` (each a separate save), like saves
/// made while the hub is away: the bench's way to make many changes, or changes larger than a
/// save through the product allows (an oversized sheet, as one written before the limits).
async fn write_directly(
    node: &Node,
    ids: Vec<String>,
    user: u64,
    item: &'static str,
    values: Vec<String>,
) -> anyhow::Result<()> {
    let author = nsdb_sync::Author {
        node: node.node_id,
        user,
    };
    let now = node.clock.now_ms();
    node.store
        .write(move |c| {
            let tx = c.transaction()?;
            for id in &ids {
                let doc: Vec<u8> =
                    tx.query_row("SELECT doc FROM sheets WHERE id = ?1", [id], |r| r.get(0))?;
                let mut sheet =
                    nsdb_sync::Sheet::load(&doc).map_err(|e| crate::Error::Document {
                        id: id.clone(),
                        reason: e.to_string(),
                    })?;
                for value in &values {
                    let fields = BTreeMap::from([(item.to_string(), Some(value.clone()))]);
                    sheet.set_fields(
                        &fields,
                        nsdb_sync::Edit {
                            author,
                            at_ms: now,
                            message: "",
                        },
                    );
                }
                crate::sheets::store_sheet(&tx, &mut sheet, "screen", now)?;
            }
            tx.commit()?;
            Ok::<_, crate::Error>(())
        })
        .await?;
    Ok(())
}

/// `len` characters of free text that compress poorly (so the document's size is what a
/// person's long text would make), different for each `seed`.
fn free_text(len: usize, seed: u64) -> String {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            char::from(b'a' + ((x >> 33) % 26) as u8)
        })
        .collect()
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
        let hospital = open(dir.path(), NodeRole::Hospital, opts.sheets).await?;
        let hub = HubProcess::start(dir.path(), &hospital).await?;
        let identity = nsdb_provisioning::NodeIdentity::load(&hospital.config.identity_path())?;
        let hub_key = nsdb_provisioning::enrollment::identity(&dir.path().join("hub"))?;
        let mut link = NodeLink::new(
            &LocalKey::from_seed(identity.secret_seed()),
            hub.sync_addr,
            PublicKey(hub_key.public_key().to_bytes()),
        )?;
        let replica = NodeReplica::new(hospital.clone());
        let hub_id = PublicKey(hub_key.public_key().to_bytes()).node_id();
        let seeded_mib = status_mib("self", "VmRSS");
        reset_peak();

        let started = Instant::now();
        let initial = link.sync(&replica).await?;
        let initial_s = started.elapsed().as_secs_f64();
        let limit_s = raw_limit(&hospital, dir.path()).await?;

        // 10% of the sheets change one item each.
        let doctor = hospital
            .login("doctor", demo::DEMO_PASSWORD)
            .await?
            .principal;
        let ids = hospital.sheet_ids().await?;
        for id in ids.iter().step_by(10) {
            let values =
                BTreeMap::from([("patient.name_kana".to_string(), format!("ベンチ {run}"))]);
            hospital.update_sheet(&doctor, id, &values).await?;
        }
        let started = Instant::now();
        let incremental = link.sync(&replica).await?;
        let incremental_s = started.elapsed().as_secs_f64();
        let stage_figures = stages(&hospital).await?;

        // Nothing to do, first right after the changes (each side brings its kept inventory
        // up to date), then again.
        let started = Instant::now();
        let idle = link.sync(&replica).await?;
        let idle_s = started.elapsed().as_secs_f64();
        let started = Instant::now();
        let steady = link.sync(&replica).await?;
        let steady_s = started.elapsed().as_secs_f64();
        // 1,000 ordinary sheets change, and cross alone; then 1,000 change again while one
        // other sheet holds 7 saves of 1.8 MB of free text made while the hub was away (12.6 MB
        // of unsent changes, more than one 8 MiB frame carries: the sheet that stalled every
        // session before issue #10), and cross beside it.
        let ordinary: Vec<String> = ids.iter().take(ORDINARY).cloned().collect();
        write_directly(
            &hospital,
            ordinary.clone(),
            doctor.user_id,
            "patient.name_kana",
            vec![format!("フツウ {run}")],
        )
        .await?;
        let started = Instant::now();
        let alone = link.sync(&replica).await?;
        let alone_s = started.elapsed().as_secs_f64();
        let mut with_oversized = None;
        if let Some(big) = ids.get(ORDINARY).cloned() {
            write_directly(
                &hospital,
                vec![big],
                doctor.user_id,
                "patient.address",
                (0..7)
                    .map(|i| free_text(1_800_000, i + run as u64 * 7))
                    .collect(),
            )
            .await?;
            write_directly(
                &hospital,
                ordinary,
                doctor.user_id,
                "patient.name_kana",
                vec![format!("フツウ ト オオキイ {run}")],
            )
            .await?;
            // As the node's loop syncs: the ordinary sheets in one session, the oversized one
            // held back to a session of its own after it.
            let sessions = timed_round(&hospital, &replica, &mut link, hub_id).await?;
            let (beside_s, beside) = sessions
                .first()
                .cloned()
                .context("the round ran no session")?;
            let round_s = sessions.last().map_or(beside_s, |(at, _)| *at);
            // The oversized sheet's own cost: as many changes again, alone.
            write_directly(
                &hospital,
                vec![ids[ORDINARY].clone()],
                doctor.user_id,
                "patient.address",
                (7..14)
                    .map(|i| free_text(1_800_000, i + run as u64 * 7))
                    .collect(),
            )
            .await?;
            let started = Instant::now();
            timed_round(&hospital, &replica, &mut link, hub_id).await?;
            let big_alone_s = started.elapsed().as_secs_f64();
            with_oversized = Some((beside_s, beside, round_s, big_alone_s));
        }
        let (hospital_peak, hub_peak) = (status_mib("self", "VmHWM"), hub.peak_mib());
        drop(hub);
        if run == 0 {
            continue; // warm-up
        }
        record("initial_wall", "s", initial_s);
        record("limit_wall", "s", limit_s);
        record("initial_over_limit", "x", initial_s / limit_s);
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
        record("idle_steady_wall", "ms", steady_s * 1000.0);
        record(
            "idle_steady_bytes",
            "KiB",
            (steady.bytes_sent + steady.bytes_received) as f64 / 1024.0,
        );
        record("ordinary_1000_wall", "s", alone_s);
        record("ordinary_1000_docs", "sheets", alone.documents_sent as f64);
        if let Some((beside_s, beside, round_s, big_alone_s)) = with_oversized {
            record("ordinary_1000_beside_oversized_wall", "s", beside_s);
            record("ordinary_1000_and_oversized_round_wall", "s", round_s);
            record("oversized_alone_wall", "s", big_alone_s);
            record(
                "ordinary_1000_beside_oversized_docs",
                "sheets",
                beside.documents_sent as f64,
            );
            record(
                "ordinary_1000_beside_oversized_bytes",
                "KiB",
                (beside.bytes_sent + beside.bytes_received) as f64 / 1024.0,
            );
            record(
                "ordinary_1000_beside_oversized_set_aside",
                "sheets",
                beside.set_aside.len() as f64,
            );
        }
        for (metric, us) in stage_figures {
            record(metric, "µs/doc", us);
        }
        record("hospital_resident_before_sync", "MiB", seeded_mib);
        record("hospital_peak_memory", "MiB", hospital_peak);
        record("hub_peak_memory", "MiB", hub_peak);
    }
    let bench = format!("sync-{}", opts.sheets);
    Ok(figures
        .into_iter()
        .map(|(metric, (unit, values))| Figure::from_runs(&bench, metric, unit, &values))
        .collect())
}
