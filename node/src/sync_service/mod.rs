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
//!
//! Parts: `replica` (the documents and scope), `hub` (the hub's endpoint, registry and grants),
//! `provisioning` (enrollment in one go for the demo and tests); here the node's loop, tasks
//! and status.

pub mod accounts;
mod anchor;
mod hub;
mod key_marks;
mod provisioning;
mod refetch;
mod replica;
mod requests;

pub use anchor::{Anchor, AnchorReport, report_anchor};
pub use hub::{RegistryDirectory, grant, start_hub, status_for};
pub use key_marks::{MarksReport, report_key_marks};
pub use provisioning::{enroll, provision_and_start_hub, start_demo};
pub use refetch::{RefetchError, refetch};
use replica::*;
pub use replica::{LARGE_DOCUMENT, NodeReplica};
pub use requests::{
    HubDesk, NODE_PER_DAY, RESOLUTION_FLOOR, Resolution, ResolveError, ResolvedRow, ResolvedSheet,
    USER_PER_DAY, birth_date_input, ensure_key_reserve, find_sheet, resolutions, resolve,
};

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nsdb_provisioning::enrollment;
use nsdb_sync::{
    HubEndpoint, LinkError, LocalKey, NodeId, NodeLink, PublicKey, SessionStats, SheetId,
};
use rusqlite::OptionalExtension;
use serde::Serialize;

use crate::Node;
use crate::config::NodeRole;

/// How many recent errors the status keeps.
const ERRORS_KEPT: usize = 10;

/// "Connected" means a session with the hub succeeded within this window (30 s, three default
/// periods) and none has failed since. A hub that vanishes without closing the connection is
/// noticed within `nsdb_sync::tls::IDLE_TIMEOUT` (10 s).
pub const CONNECTED_WINDOW_MS: i64 = 30_000;

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
    /// First wait before a sheet set aside (too large, or refused by the hub) is offered
    /// again; doubled after each failure up to `max_set_aside_retry`.
    pub set_aside_retry: Duration,
    pub max_set_aside_retry: Duration,
}

impl Default for SyncOptions {
    fn default() -> Self {
        SyncOptions {
            period: Duration::from_secs(10),
            poll: Duration::from_millis(500),
            min_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(30),
            set_aside_retry: Duration::from_secs(30),
            max_set_aside_retry: Duration::from_secs(3600),
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

impl From<&SessionStats> for SessionFigures {
    fn from(s: &SessionStats) -> Self {
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
    /// A stable code: a failed session's (`nsdb_sync::LinkError::code`: `unreachable`,
    /// `connection_lost`, `stalled`, …) or `node` for this node's own errors.
    pub code: String,
    /// What went wrong, in words for the person at the sync page (Japanese for a session).
    pub message: String,
    /// The technical detail, for the operator (may be English).
    pub detail: String,
}

/// A sheet that did not cross in the last sessions, set aside so the others keep flowing, and
/// retried with backoff.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SetAsideSheet {
    /// The sheet's id.
    pub sheet: String,
    /// Why, as a stable code: `too_large`, `unreadable` (the stored document cannot be read
    /// here) or `refused` (by the hub).
    pub code: String,
    /// Why it did not cross, in words for the person at the sync page (Japanese; for `refused`
    /// with what the hub said).
    pub reason: String,
    /// The technical detail behind the reason (the wire's or the document's error, or the
    /// hub's words), for the operator; may be English.
    pub detail: String,
    /// When it first failed to cross (unix ms).
    pub since_ms: i64,
    /// Sessions in which it failed.
    pub attempts: u32,
    /// When it is offered again (unix ms).
    pub next_retry_ms: i64,
}

/// What sync is doing on this node.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct SyncStatus {
    /// `off` (not enrolled), `node` (syncs with a hub) or `hub` (serves nodes).
    pub mode: String,
    /// Node: whether a session with the hub succeeded within the last 30 s
    /// ([`CONNECTED_WINDOW_MS`]) and none failed since. Hub: whether the endpoint listens.
    pub connected: bool,
    /// Node: the hub's address. Hub: the address it listens on.
    pub address: Option<String>,
    pub last_attempt_ms: Option<i64>,
    pub last_success_ms: Option<i64>,
    /// When a session last failed (unix ms).
    pub last_failure_ms: Option<i64>,
    /// Sheets whose latest changes the hub has not acknowledged (node only): written here
    /// after the last session the hub confirmed, or set aside.
    pub waiting: u64,
    /// Node: why the hub refuses this node (not enrolled or revoked, or a hub whose key is not
    /// the enrolled one), in words for the sync page, while it does; None once a session
    /// succeeds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
    /// Sheets that could not cross (node only), each with its reason; the others keep flowing.
    pub set_aside: Vec<SetAsideSheet>,
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
    /// The hub this node syncs with (node only).
    hub: Mutex<Option<NodeId>>,
    /// The link for requests to the hub (key blocks, resolutions), beside the sync loop's.
    requests: requests::RequestLink,
    /// The key counters last reported to the hub and answered (`key_marks`).
    reported_marks: Mutex<Option<Vec<crate::keys::BlockMark>>>,
    /// The audit checkpoint last sent to the hub and held there (`anchor`).
    anchored: Mutex<Option<Anchor>>,
}

impl SyncHandle {
    /// A copy of the status as the sync loop last recorded it (`waiting` as of the last
    /// session); [`status`] brings it up to the moment.
    pub fn status(&self) -> SyncStatus {
        self.status.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Sheets set aside and not due for a retry at `now_ms`.
    pub fn held_back(&self, now_ms: i64) -> std::collections::HashSet<SheetId> {
        self.status
            .lock()
            .map(|s| {
                s.set_aside
                    .iter()
                    .filter(|a| a.next_retry_ms > now_ms)
                    .filter_map(|a| a.sheet.parse().ok())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Records what a session set aside (a new reason, or one more failure with a longer
    /// wait) and forgets the sheets that crossed. Returns the list when it changed (to be
    /// kept in the database), None when it did not.
    fn record_set_aside(
        &self,
        stats: &SessionStats,
        now_ms: i64,
        options: &SyncOptions,
    ) -> Option<Vec<SetAsideSheet>> {
        let mut changed = None;
        self.update(|s| {
            let crossed: std::collections::HashSet<String> =
                stats.crossed.iter().map(ToString::to_string).collect();
            let before = s.set_aside.len();
            s.set_aside.retain(|a| !crossed.contains(&a.sheet));
            let mut touched = before != s.set_aside.len();
            for (id, why) in &stats.set_aside {
                touched = true;
                let sheet = id.to_string();
                let (code, reason, detail) = (
                    why.code().to_string(),
                    why.to_string(),
                    why.detail().to_string(),
                );
                let attempts = match s.set_aside.iter_mut().find(|a| a.sheet == sheet) {
                    Some(a) => {
                        a.attempts += 1;
                        a.code = code;
                        a.reason = reason;
                        a.detail = detail;
                        a.attempts
                    }
                    None => {
                        s.set_aside.push(SetAsideSheet {
                            sheet: sheet.clone(),
                            code,
                            reason,
                            detail,
                            since_ms: now_ms,
                            attempts: 1,
                            next_retry_ms: now_ms,
                        });
                        1
                    }
                };
                let wait = options
                    .set_aside_retry
                    .saturating_mul(1u32 << (attempts - 1).min(16))
                    .min(options.max_set_aside_retry);
                if let Some(a) = s.set_aside.iter_mut().find(|a| a.sheet == sheet) {
                    a.next_retry_ms = now_ms + wait.as_millis() as i64;
                }
            }
            if touched {
                changed = Some(s.set_aside.clone());
            }
        });
        changed
    }

    fn update(&self, f: impl FnOnce(&mut SyncStatus)) {
        if let Ok(mut s) = self.status.lock() {
            f(&mut s);
        }
    }

    /// Records one of this node's own errors (code `node`).
    fn error(&self, at_ms: i64, message: String) {
        self.record_error(SyncErrorLine {
            at_ms,
            code: "node".into(),
            detail: message.clone(),
            message,
        });
    }

    fn record_error(&self, line: SyncErrorLine) {
        self.update(|s| {
            s.errors.push(line);
            let extra = s.errors.len().saturating_sub(ERRORS_KEPT);
            s.errors.drain(..extra);
        });
    }

    /// Asks the sync loop to run a session now.
    pub fn sync_now(&self) {
        self.wake.notify_one();
    }
}

pub(super) fn local_key(node: &Node) -> anyhow::Result<LocalKey> {
    let identity = nsdb_provisioning::NodeIdentity::load(&node.config.identity_path())?;
    Ok(LocalKey::from_seed(identity.secret_seed()))
}

/// A link from `node` to the hub it is enrolled with, and the hub's id: for syncing by hand
/// (tests and tools) with [`round`]. Errors: not enrolled, or the identity or enrollment files
/// cannot be read.
pub fn hub_link(node: &Node) -> anyhow::Result<(NodeLink, NodeId)> {
    use anyhow::Context;
    let accepted = enrollment::accepted(&node.config.data_dir)?
        .context("this node is not enrolled with a hub")?;
    let hub_key = PublicKey(accepted.hub_key_bytes()?);
    let link = NodeLink::new(&local_key(node)?, accepted.hub_address, hub_key)?;
    Ok((link, hub_key.node_id()))
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

/// How many sheets have changes the hub has not acknowledged: those whose heads were written
/// after the node was last in step with it (read from the `seq` index, whatever the number of
/// sheets), and those set aside.
async fn waiting(node: &Node, hub: NodeId, set_aside: Vec<String>) -> u64 {
    let hub = hub.to_string();
    node.store
        .read(move |c| {
            let in_step: i64 = c
                .query_row(
                    "SELECT seq FROM sync_in_step WHERE peer = ?1",
                    [&hub],
                    |r| r.get(0),
                )
                .optional()?
                .unwrap_or(-1);
            let after: i64 = c.query_row(
                "SELECT count(*) FROM sync_heads WHERE seq > ?1",
                [in_step],
                |r| r.get(0),
            )?;
            // Set-aside sheets not already counted above.
            let mut older = c.prepare_cached(
                "SELECT count(*) FROM sync_heads WHERE sheet_id = ?1 AND seq <= ?2",
            )?;
            let mut aside = 0i64;
            for id in &set_aside {
                aside += older.query_row(rusqlite::params![id, in_step], |r| r.get::<_, i64>(0))?;
            }
            Ok::<_, crate::Error>((after + aside) as u64)
        })
        .await
        .unwrap_or(0)
}

/// Keeps the list of sheets set aside for `hub` in the database (`sync_set_aside`), replacing
/// what was kept, so it survives a restart.
async fn keep_set_aside(node: &Node, hub: NodeId, list: Vec<SetAsideSheet>) -> crate::Result<()> {
    let peer = hub.to_string();
    node.store
        .write(move |c| {
            let tx = c.transaction()?;
            tx.execute("DELETE FROM sync_set_aside WHERE peer = ?1", [&peer])?;
            {
                let mut put = tx.prepare_cached(
                    "INSERT INTO sync_set_aside
                     (peer, sheet_id, code, reason, detail, since, attempts, next_retry)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                )?;
                for a in &list {
                    put.execute(rusqlite::params![
                        peer,
                        a.sheet,
                        a.code,
                        a.reason,
                        a.detail,
                        a.since_ms,
                        a.attempts,
                        a.next_retry_ms
                    ])?;
                }
            }
            tx.commit()?;
            Ok(())
        })
        .await
}

/// The sheets set aside for `hub` as last kept ([`keep_set_aside`]), oldest first.
async fn kept_set_aside(node: &Node, hub: NodeId) -> crate::Result<Vec<SetAsideSheet>> {
    let peer = hub.to_string();
    node.store
        .read(move |c| {
            let mut st = c.prepare_cached(
                "SELECT sheet_id, code, reason, detail, since, attempts, next_retry
                 FROM sync_set_aside WHERE peer = ?1 ORDER BY since, sheet_id",
            )?;
            let rows = st
                .query_map([&peer], |r| {
                    Ok(SetAsideSheet {
                        sheet: r.get(0)?,
                        code: r.get(1)?,
                        reason: r.get(2)?,
                        detail: r.get(3)?,
                        since_ms: r.get(4)?,
                        attempts: r.get(5)?,
                        next_retry_ms: r.get(6)?,
                    })
                })?
                .collect::<rusqlite::Result<_>>()?;
            Ok(rows)
        })
        .await
}

/// The status as of now: on a node, `waiting` counted at this moment and `connected` only when a
/// session succeeded within [`CONNECTED_WINDOW_MS`] and none failed since.
pub async fn status(node: &Node) -> SyncStatus {
    let mut status = node.sync.status();
    let hub = node.sync.hub.lock().ok().and_then(|h| *h);
    if status.mode == "node"
        && let Some(hub) = hub
    {
        let now = node.clock.now_ms();
        let aside = status.set_aside.iter().map(|a| a.sheet.clone()).collect();
        status.waiting = waiting(node, hub, aside).await;
        status.connected = connected_at(&status, now);
    }
    status
}

fn connected_at(s: &SyncStatus, now_ms: i64) -> bool {
    match s.last_success_ms {
        Some(ok) => now_ms - ok <= CONNECTED_WINDOW_MS && s.last_failure_ms.is_none_or(|f| f < ok),
        None => false,
    }
}

/// The node's change counter: every write of a sheet's document raises it (`sync_heads.seq`).
pub async fn change_counter(node: &Node) -> crate::Result<i64> {
    node.store
        .read(|c| counter(c).map_err(crate::Error::from))
        .await
}

/// One round of sync with the hub, as the node's loop and `nsdb bench sync` run it: a session
/// for every sheet but the large ones (a document over [`LARGE_DOCUMENT`] with changes the hub
/// has not acknowledged), then, when some were held back, a session that carries them, so the
/// transfer and merge of a large sheet never hold the ordinary ones back. `seen` is the change
/// counter read before the round. After each successful session the node is marked in step
/// with the hub: after the first only up to before the earliest change of a held-back sheet
/// (those still count as waiting), after the second at `seen`. `after` gets each session's
/// result and that counter, and says whether to go on. Returns whether every session
/// succeeded.
pub async fn round(
    replica: &NodeReplica,
    link: &mut NodeLink,
    hub: NodeId,
    seen: i64,
    after: &mut impl AfterSession,
) -> bool {
    let held_from = match replica.hold_large(hub).await {
        Ok(from) => from,
        Err(e) => {
            // Without the list every sheet goes in one session, as before.
            tracing::warn!(target: "nsdb::sync", reason = %e, "could not list the large sheets; all sheets go in one session");
            None
        }
    };
    let result = link.sync(replica).await;
    let held = replica.release_large();
    let in_step = held_from.map_or(seen, |from| seen.min(from - 1));
    let result = marked(replica, hub, result, in_step).await;
    let ok = after.after(result, in_step).await;
    if !ok || held.is_empty() {
        return ok;
    }
    let result = link.sync(replica).await;
    let result = marked(replica, hub, result, seen).await;
    after.after(result, seen).await
}

/// `result`, after marking the node in step with `hub` at `in_step` when it succeeded (what was
/// written during the session, received sheets among them, waits for the next one).
async fn marked(
    replica: &NodeReplica,
    hub: NodeId,
    result: Result<SessionStats, LinkError>,
    in_step: i64,
) -> Result<SessionStats, LinkError> {
    let stats = result?;
    replica
        .mark_in_step(hub, in_step)
        .await
        .map_err(|e| LinkError::Session(nsdb_sync::SessionError::Replica(e)))?;
    Ok(stats)
}

/// What [`round`] does after each session.
pub trait AfterSession {
    /// Takes a session's result and the counter the node was marked in step with the hub at if
    /// it succeeded; says whether the round goes on.
    fn after(
        &mut self,
        result: Result<SessionStats, LinkError>,
        in_step: i64,
    ) -> impl std::future::Future<Output = bool> + Send;
}

/// The node's loop's [`AfterSession`]: [`after_session`].
struct Record<'a> {
    node: &'a Arc<Node>,
    handle: &'a SyncHandle,
    hub: NodeId,
    options: &'a SyncOptions,
}

impl AfterSession for Record<'_> {
    async fn after(&mut self, result: Result<SessionStats, LinkError>, _in_step: i64) -> bool {
        after_session(self.node, self.handle, self.hub, self.options, result).await
    }
}

/// Records what one session did (or why it failed) in the status, the set-aside list and the
/// metrics, and fetches again the sheets found damaged here. Returns whether the session
/// succeeded.
async fn after_session(
    node: &Arc<Node>,
    handle: &SyncHandle,
    hub: NodeId,
    options: &SyncOptions,
    result: Result<SessionStats, LinkError>,
) -> bool {
    let ok = result.is_ok();
    match result {
        Ok(stats) => {
            let now = node.clock.now_ms();
            for (id, reason) in &stats.set_aside {
                tracing::warn!(target: "nsdb::sync", sheet = %id, %reason, "a sheet did not cross; set aside, the others go on");
            }
            if let Some(list) = handle.record_set_aside(&stats, now, options)
                && let Err(e) = keep_set_aside(node, hub, list).await
            {
                handle.error(now, e.to_string());
            }
            // A copy here that cannot be read is fetched again from the hub; once
            // replaced it is no longer set aside and crosses at the next session.
            for id in &stats.damaged {
                match refetch(node, &id.to_string()).await {
                    Ok(true) => {
                        let sheet = id.to_string();
                        let mut list = None;
                        handle.update(|s| {
                            s.set_aside.retain(|a| a.sheet != sheet);
                            list = Some(s.set_aside.clone());
                        });
                        if let Some(list) = list
                            && let Err(e) = keep_set_aside(node, hub, list).await
                        {
                            handle.error(now, e.to_string());
                        }
                        handle.sync_now();
                    }
                    Ok(false) => {}
                    Err(e) => handle.error(now, e.to_string()),
                }
            }
            node.metrics
                .sync_session(true, stats.bytes_sent, stats.bytes_received);
            handle.update(|s| {
                s.refused = None;
                s.last_success_ms = Some(now);
                s.sessions += 1;
                s.last_session = Some((&stats).into());
            });
        }
        Err(e) if matches!(e, LinkError::Refused(_) | LinkError::WrongHub(_)) => {
            // Refused, not cut off: said once per streak as an error with what to do, shown
            // on the sync page, and retried far less often (the loop reads `refused`).
            let now = node.clock.now_ms();
            let words = e.words();
            if handle.status().refused.as_deref() != Some(words.as_str()) {
                tracing::error!(target: "nsdb::sync", code = e.code(), reason = %e, "{words}");
            }
            node.metrics.sync_session(false, 0, 0);
            handle.update(|s| {
                s.last_failure_ms = Some(now);
                s.refused = Some(words.clone());
            });
            handle.record_error(SyncErrorLine {
                at_ms: now,
                code: e.code().into(),
                message: words,
                detail: e.to_string(),
            });
        }
        Err(e) => {
            // The first failure after a success (or at start) is a warning; the
            // retries of the same outage are not repeated at that level.
            let st = handle.status();
            if st.last_failure_ms.unwrap_or(0) <= st.last_success_ms.unwrap_or(0) {
                tracing::warn!(target: "nsdb::sync", reason = %e, "sync with the hub failed; will retry every few seconds");
            } else {
                tracing::debug!(target: "nsdb::sync", reason = %e, "sync with the hub failed again; will retry");
            }
            let now = node.clock.now_ms();
            node.metrics.sync_session(false, 0, 0);
            handle.update(|s| s.last_failure_ms = Some(now));
            handle.record_error(SyncErrorLine {
                at_ms: now,
                code: e.code().into(),
                message: e.words(),
                detail: e.to_string(),
            });
        }
    }
    ok
}

/// While the hub refuses this node, sync is retried this many times less often than after a
/// lost connection (`max_backoff` × 10: 5 minutes with the default options), so that a revoked
/// node does not knock at the hub every few seconds.
pub const REFUSED_BACKOFF_FACTOR: u32 = 10;

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
    let request_link = NodeLink::new(&key, hub_addr, hub_key)?;
    let node = node.clone();
    node.sync.update(|s| {
        s.mode = "node".into();
        s.address = Some(hub_addr.to_string());
    });
    if let Ok(mut h) = node.sync.hub.lock() {
        *h = Some(hub_key.node_id());
    }
    let task = tokio::spawn(async move {
        let replica = NodeReplica::new(node.clone());
        let handle = node.sync.clone();
        let hub = hub_key.node_id();
        // The sheets set aside before a restart stay set aside, with their reasons and times.
        match kept_set_aside(&node, hub).await {
            Ok(kept) => handle.update(|s| s.set_aside = kept),
            Err(e) => handle.error(node.clock.now_ms(), e.to_string()),
        }
        let mut backoff = options.min_backoff;
        handle.requests.set(request_link).await;
        loop {
            // A hospital reports its key counters and adopts the hub's marks (a restored node
            // issues nothing until it has), then asks for a key block while its reserve is low,
            // before each session.
            if let Err(e) = report_key_marks(&node).await {
                handle.error(node.clock.now_ms(), e.to_string());
            }
            // Every node anchors its audit chain at the hub: its newest signed checkpoint.
            if let Err(e) = report_anchor(&node).await {
                handle.error(node.clock.now_ms(), e.to_string());
            }
            if let Err(e) = ensure_key_reserve(&node).await {
                handle.error(node.clock.now_ms(), e.to_string());
            }
            // A municipality sends its pending papers (紙の臨個票) and learns which were entered.
            if let Err(e) = requests::send_papers(&node).await {
                handle.error(node.clock.now_ms(), e.to_string());
            }
            // Doctors' accounts: a municipality sends what it issued or changed, a node the
            // passwords set there, and a hospital takes the accounts that work there.
            if let Err(e) = accounts::report_accounts(&node).await {
                handle.error(node.clock.now_ms(), e.to_string());
            }
            let started = node.clock.now_ms();
            handle.update(|s| s.last_attempt_ms = Some(started));
            let seen = change_counter(&node).await.unwrap_or(-1);
            let mut record = Record {
                node: &node,
                handle: &handle,
                hub,
                options: &options,
            };
            let ok = round(&replica, &mut link, hub, seen, &mut record).await;
            if ok {
                backoff = options.min_backoff;
            } else if handle.status().refused.is_some() {
                backoff = options.max_backoff.saturating_mul(REFUSED_BACKOFF_FACTOR);
            }
            let aside = handle
                .status()
                .set_aside
                .iter()
                .map(|a| a.sheet.clone())
                .collect();
            let waiting = waiting(&node, hub, aside).await;
            let now = node.clock.now_ms();
            handle.update(|s| {
                s.waiting = waiting;
                s.connected = connected_at(s, now);
            });
            if !ok {
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = handle.wake.notified() => {}
                }
                if handle.status().refused.is_none() {
                    backoff = (backoff * 2).min(options.max_backoff);
                }
                continue;
            }
            // Wait for a local change, a request, or the period.
            let deadline = tokio::time::Instant::now() + options.period;
            loop {
                tokio::select! {
                    _ = tokio::time::sleep_until(deadline) => break,
                    _ = handle.wake.notified() => break,
                    _ = tokio::time::sleep(options.poll) => {
                        let now = change_counter(&node).await.unwrap_or(-1);
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::accounts::policy::UserKind;
    use crate::testing::TestNode;
    use crate::testing::sync::{sheet_ids, sign_in};
    use nsdb_sync::{Inventory, Peer, PeerRole, Replica, SheetId};

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
