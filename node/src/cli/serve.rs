//! `nsdb serve`: one node from its configuration, until SIGTERM or Ctrl-C.
//!
//! On either signal the node stops accepting connections, finishes the requests in flight (each
//! save is committed or never started) for up to [`STOP_GRACE`], closes the connections left
//! (stalled clients; a request not answered by then was never acknowledged) and exits with
//! success.

use crate::{Node, NodeConfig};

/// How long a stop (SIGTERM, Ctrl-C) waits for the requests in flight before it closes the
/// connections left and exits: well under systemd's `TimeoutStopSec=30` (the unit in
/// provisioning/systemd), which would otherwise kill the process, leaving time for the audit
/// checkpoint and the sync task's stop. A request's head must arrive within
/// [`crate::ops::tls::HEADER_READ_TIMEOUT`] (5 s), so only a slow body or a long answer can
/// reach this bound; such a request was never answered, and a save is committed before it is
/// answered, so closing it loses nothing that was acknowledged.
pub const STOP_GRACE: std::time::Duration = std::time::Duration::from_secs(20);

/// Serves one node until SIGTERM (what systemd sends) or Ctrl-C: opens it, answers HTTP on its
/// configured address, and on the signal finishes the requests in flight before returning.
pub async fn serve(config: NodeConfig) -> anyhow::Result<()> {
    use anyhow::Context;
    let addr = config.listen;
    // Plain HTTP on loopback only: refused before anything is opened.
    crate::ops::tls::check_listen(addr, config.tls.as_ref())?;
    // One server per data directory; restore and rekey refuse to run while it is held.
    let _lock = crate::ops::guard::DirLock::acquire(&config.data_dir)?;
    let node = Node::open(config, crate::Clock::System)?;
    let inst = node.config.institution.clone();
    let kind = node.role().institution_kind();
    // A damaged database refuses writes; the node still serves, saying so on every answer.
    if node.store.damage().is_none() {
        node.store
            .write(move |c| crate::accounts::ensure_institution(c, &inst.code, &inst.name, kind))
            .await?;
    }
    let sync = crate::sync_service::start(&node, Default::default())?;
    // Metrics are for the operator; a port already taken must not keep doctors from working.
    let metrics = match node.config.metrics_listen {
        Some(at) => match serve_metrics(node.clone(), at).await {
            Ok(task) => Some(task),
            Err(e) => {
                tracing::error!(target: "nsdb", error = %format!("{e:#}"), "metrics are not served");
                None
            }
        },
        None => None,
    };
    let tls = match &node.config.tls {
        Some(t) if t.client_certs == crate::ops::tls::ClientCerts::Required => {
            // The terminal CA (made on first use) and the CRL of the revoked serials; a
            // revocation loads a new one while serving.
            node.load_terminal_gate().await?;
            tracing::info!(target: "nsdb", "terminals must show a terminal certificate of this node");
            Some(crate::ops::tls::server_config_for_terminals(
                t,
                node.clock.now_ms(),
                node.terminal_gate.clone(),
            )?)
        }
        Some(t) => Some(crate::ops::tls::server_config(t, node.clock.now_ms())?),
        None => None,
    };
    let terminal_reloads = node
        .terminal_gate
        .is_loaded()
        .then(|| reload_terminals(node.clone()));
    let checkpoints = sign_checkpoints(node.clone());
    let verified = verify_audit(node.clone());
    let detectors = crate::monitor::schedule(node.clone());
    let rechecks = node
        .config
        .integrity_check_every
        .map(|every| crate::ops::integrity::schedule(node.clone(), every));
    let app = crate::http::router(node.clone());
    let listener =
        std::net::TcpListener::bind(addr).with_context(|| format!("cannot listen on {addr}"))?;
    listener.set_nonblocking(true)?;
    let handle = axum_server::Handle::new();
    let stopping = handle.clone();
    let stop_at = std::sync::Arc::new(std::sync::OnceLock::new());
    let stopped_at = stop_at.clone();
    tokio::spawn(async move {
        stop_signal().await;
        let _ = stopped_at.set(std::time::Instant::now());
        // Requests in flight are answered for up to STOP_GRACE; then what is left is closed.
        stopping.graceful_shutdown(Some(STOP_GRACE));
    });
    // The peer address reaches the handlers: sign-in attempts are limited per address.
    match tls {
        Some(tls) => {
            tracing::info!(target: "nsdb", %addr, role = ?node.role(), "serving over TLS");
            crate::ops::tls::serve(listener, tls, app, handle).await?;
        }
        None => {
            tracing::info!(target: "nsdb", %addr, role = ?node.role(), "serving (plain HTTP, loopback)");
            crate::ops::tls::serve_plain(listener, app, handle).await?;
        }
    }
    // The server returns before STOP_GRACE has passed unless connections outlived it.
    let cut = stop_at
        .get()
        .is_some_and(|at: &std::time::Instant| at.elapsed() >= STOP_GRACE);
    if cut {
        tracing::warn!(
            target: "nsdb",
            "closed the connections still open {} s after the stop (stalled clients or unfinished requests; a save is committed before it is answered, so nothing acknowledged is lost)",
            STOP_GRACE.as_secs()
        );
    }
    checkpoints.abort();
    if let Some(t) = terminal_reloads {
        t.abort();
    }
    verified.abort();
    detectors.abort();
    if let Some(r) = rechecks {
        r.abort();
    }
    // A clean stop signs the chain's head, whatever was appended since the last checkpoint.
    if let Err(e) = checkpoint(&node, 1).await {
        tracing::warn!(target: "nsdb", error = %e, "no audit checkpoint at stop");
    }
    drop(sync);
    if let Some(m) = metrics {
        m.abort();
    }
    if !cut {
        tracing::info!(target: "nsdb", "stopped: every request in flight was answered");
    } else {
        tracing::info!(target: "nsdb", "stopped");
    }
    Ok(())
}

/// `nsdb init --config FILE`: sets up a new node where its configuration says (data directory,
/// identity, database, its institution) and prints its node id. Errors: a node is already there
/// ([`crate::ops::OpsError::NodeExists`]), or the key or directory cannot be used.
pub async fn init(file: &std::path::Path) -> anyhow::Result<()> {
    let config = NodeConfig::from_file(file)?;
    crate::ops::guard::require_no_node(&config, file)?;
    let node = Node::open(config, crate::Clock::System)?;
    let inst = node.config.institution.clone();
    let kind = node.role().institution_kind();
    node.store
        .write(move |c| crate::accounts::ensure_institution(c, &inst.code, &inst.name, kind))
        .await?;
    println!(
        "set up node {} ({}, {}) in {}; next: nsdb user add --config {}, then nsdb serve --config {}",
        node.node_id,
        node.config.name,
        node.role().label(),
        node.config.data_dir.display(),
        file.display(),
        file.display()
    );
    Ok(())
}

/// Signs the audit chain's head with the node's identity key when at least `every` entries were
/// appended since the last checkpoint.
async fn checkpoint(node: &std::sync::Arc<Node>, every: i64) -> anyhow::Result<()> {
    let identity = nsdb_provisioning::NodeIdentity::load(&node.config.identity_path())?;
    let now = node.clock.now_ms();
    node.store
        .write(move |c| {
            crate::audit::checkpoint(c, &identity, now, every).map_err(crate::Error::from)
        })
        .await?;
    Ok(())
}

/// How often a node that requires terminal certificates reads the revoked serials again, so that
/// a revocation made by `nsdb terminal revoke` (another process) is refused within it; one made
/// on the 端末証明書 screen takes effect at once.
pub const TERMINAL_RELOAD: std::time::Duration = std::time::Duration::from_secs(60);

/// Every [`TERMINAL_RELOAD`]: the terminal CA's CRL made again from the database.
fn reload_terminals(node: std::sync::Arc<Node>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(TERMINAL_RELOAD);
        tick.tick().await;
        loop {
            tick.tick().await;
            if let Err(e) = node.load_terminal_gate().await {
                tracing::warn!(target: "nsdb", error = %e, "terminal certificate revocations not reloaded");
            }
        }
    })
}

/// Every minute: a checkpoint once [`crate::audit::CHECKPOINT_EVERY`] entries were appended.
fn sign_checkpoints(node: std::sync::Arc<Node>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
        loop {
            tick.tick().await;
            if node.store.damage().is_some() {
                continue;
            }
            if let Err(e) = checkpoint(&node, crate::audit::CHECKPOINT_EVERY).await {
                tracing::warn!(target: "nsdb", error = %e, "audit checkpoint not signed");
            }
        }
    })
}

/// Serves `GET /metrics` of `node` on `addr` until the returned task is aborted. Errors: the
/// address cannot be bound (said with the address and what to change).
pub async fn serve_metrics(
    node: std::sync::Arc<Node>,
    addr: std::net::SocketAddr,
) -> anyhow::Result<tokio::task::JoinHandle<std::io::Result<()>>> {
    use anyhow::Context;
    let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| {
        format!("cannot serve metrics on {addr} (set metrics_listen in the config, or \"off\")")
    })?;
    if !addr.ip().is_loopback() {
        tracing::warn!(target: "nsdb", %addr, "metrics are served beyond this machine; restrict access to the scraper");
    }
    let app = crate::http::metrics_router(node);
    Ok(tokio::spawn(
        async move { axum::serve(listener, app).await },
    ))
}

/// Resolves on SIGTERM or Ctrl-C (SIGINT).
pub async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
    tracing::info!(
        target: "nsdb",
        "stop requested; finishing requests in flight (at most {} s)",
        STOP_GRACE.as_secs()
    );
}

/// Verifies the audit chain at start, in the background so that a long chain never delays
/// serving: every entry, every signed checkpoint and the checkpoint the hub holds
/// (`audit::verify_anchored`). A chain found tampered with is logged, recorded
/// (`audit_verify_failed`, the verdict's kind and seq) and raised for the 責任者
/// (`monitor::Rule::AuditChain`); `nsdb audit verify` says the same on demand.
fn verify_audit(node: std::sync::Arc<Node>) -> tokio::task::JoinHandle<()> {
    use crate::audit::{ChainVerdict, verify_anchored};
    tokio::spawn(async move {
        let identity = match nsdb_provisioning::NodeIdentity::load(&node.config.identity_path()) {
            Ok(i) => i.public_key().to_bytes(),
            Err(e) => {
                tracing::warn!(target: "nsdb", error = %e, "the audit chain was not verified at start");
                return;
            }
        };
        let verdict = node
            .store
            .read(move |c| verify_anchored(c, &identity).map_err(crate::Error::from))
            .await;
        let detail = match verdict {
            Ok(ChainVerdict::Intact {
                entries,
                checkpoints,
            }) => {
                tracing::info!(target: "nsdb", entries, checkpoints, "audit chain verified");
                return;
            }
            Ok(v) => {
                tracing::error!(target: "nsdb", verdict = %v, "the audit chain was tampered with; see nsdb audit verify");
                v.detail()
            }
            Err(e) => {
                tracing::warn!(target: "nsdb", error = %e, "the audit chain could not be verified at start");
                return;
            }
        };
        let now = node.clock.now_ms();
        let recorded = node
            .store
            .write(move |c| {
                let tx = c.transaction()?;
                crate::monitor::chain_finding(&tx, "audit_verify_failed", None, &detail, now)?;
                tx.commit()?;
                Ok::<_, crate::Error>(())
            })
            .await;
        if let Err(e) = recorded {
            tracing::warn!(target: "nsdb", error = %e, "the tampered audit chain could not be recorded");
        }
    })
}
