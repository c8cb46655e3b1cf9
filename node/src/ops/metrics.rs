//! Prometheus metrics of one node (OpenMetrics text, `prometheus-client`, the Prometheus
//! project's own Rust client): requests by route and status with latency histograms, sync
//! sessions and bytes, sheets waiting for the hub, audit entries, sign-in failures, database
//! size and damage, free space on the data directory.
//!
//! Each node has its own registry (the demo runs three nodes in one process), served on a
//! separate listener that binds to loopback by default (`metrics_listen` in the config).
//! Labels are route templates (`/sheets/{id}`), methods and status codes: this module must never
//! put an id, a name or any other stored value into a label.

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// One HTTP request, as counted: the matched route template, never the path itself.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub route: String,
    pub method: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DirectionLabels {
    direction: &'static str,
}

/// What is measured at scrape time from the node's state (`Node::metrics_text` fills it).
#[derive(Debug, Clone, Copy, Default)]
pub struct Snapshot {
    /// Bytes of the database file and its WAL.
    pub database_bytes: u64,
    /// Entries in the audit log (its last sequence number).
    pub audit_entries: u64,
    /// Sheets whose latest changes the hub has not acknowledged (node only).
    pub sync_waiting: u64,
    /// Sheets set aside by sync, each with its reason on /sync (node only).
    pub sync_set_aside: u64,
    /// Whether the last sync succeeded within the connected window (hub: listening).
    pub sync_connected: bool,
    /// Whether the integrity check found damage (writes are refused).
    pub database_damaged: bool,
    /// Free bytes on the data directory's file system (0 when it cannot be measured).
    pub data_dir_free_bytes: u64,
}

/// The node's metrics. Cheap to share (`Arc<Node>` holds one).
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram>,
    sessions: Family<OutcomeLabels, Counter>,
    sync_bytes: Family<DirectionLabels, Counter>,
    sign_in_failures: Counter,
    database_bytes: Gauge<u64, AtomicU64>,
    audit_entries: Gauge<u64, AtomicU64>,
    sync_waiting: Gauge<u64, AtomicU64>,
    sync_set_aside: Gauge<u64, AtomicU64>,
    sync_connected: Gauge<u64, AtomicU64>,
    database_damaged: Gauge<u64, AtomicU64>,
    data_dir_free_bytes: Gauge<u64, AtomicU64>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// A registry with every metric of a node, all at zero.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("nsdb");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests by route template, method and status",
            requests.clone(),
        );
        // 1 ms … ~16 s in 15 doubling buckets.
        let latency = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.001, 2.0, 15))
        });
        registry.register(
            "http_request_duration_seconds",
            "Time to answer an HTTP request, by route template",
            latency.clone(),
        );
        let sessions = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "sync_sessions",
            "Sync sessions by outcome (ok, failed)",
            sessions.clone(),
        );
        let sync_bytes = Family::<DirectionLabels, Counter>::default();
        registry.register(
            "sync_bytes",
            "Bytes of sync sessions, by direction (sent, received)",
            sync_bytes.clone(),
        );
        let sign_in_failures = Counter::default();
        registry.register(
            "sign_in_failures",
            "Sign-ins refused (unknown user, wrong password, locked or expired)",
            sign_in_failures.clone(),
        );
        let gauge = |registry: &mut Registry, name: &str, help: &str| {
            let g = Gauge::<u64, AtomicU64>::default();
            registry.register(name, help, g.clone());
            g
        };
        Metrics {
            database_bytes: gauge(
                &mut registry,
                "database_bytes",
                "Size of the encrypted database and its WAL, in bytes",
            ),
            audit_entries: gauge(
                &mut registry,
                "audit_entries",
                "Entries in the append-only audit log",
            ),
            sync_waiting: gauge(
                &mut registry,
                "sync_documents_waiting",
                "Sheets whose latest changes the hub has not acknowledged",
            ),
            sync_set_aside: gauge(
                &mut registry,
                "sync_documents_set_aside",
                "Sheets set aside by sync (their reasons are on /sync)",
            ),
            sync_connected: gauge(
                &mut registry,
                "sync_connected",
                "1 when the last sync with the hub succeeded recently (hub: listening)",
            ),
            database_damaged: gauge(
                &mut registry,
                "database_damaged",
                "1 when the integrity check found damage and writes are refused",
            ),
            data_dir_free_bytes: gauge(
                &mut registry,
                "data_dir_free_bytes",
                "Free bytes on the data directory's file system",
            ),
            registry,
            requests,
            latency,
            sessions,
            sync_bytes,
            sign_in_failures,
        }
    }

    /// Counts one answered request. `route` is the matched route template (or `unmatched`).
    pub fn request(&self, route: &str, method: &str, status: u16, took: Duration) {
        self.requests
            .get_or_create(&RequestLabels {
                route: route.to_string(),
                method: method.to_string(),
                status,
            })
            .inc();
        self.latency
            .get_or_create(&RouteLabels {
                route: route.to_string(),
            })
            .observe(took.as_secs_f64());
    }

    /// Counts one sync session and its bytes.
    pub fn sync_session(&self, ok: bool, bytes_sent: u64, bytes_received: u64) {
        let outcome = if ok { "ok" } else { "failed" };
        self.sessions
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
        self.sync_bytes
            .get_or_create(&DirectionLabels { direction: "sent" })
            .inc_by(bytes_sent);
        self.sync_bytes
            .get_or_create(&DirectionLabels {
                direction: "received",
            })
            .inc_by(bytes_received);
    }

    /// Counts one refused sign-in.
    pub fn sign_in_failed(&self) {
        self.sign_in_failures.inc();
    }

    /// The OpenMetrics text, with the gauges set from `now`.
    pub fn render(&self, now: Snapshot) -> String {
        self.database_bytes.set(now.database_bytes);
        self.audit_entries.set(now.audit_entries);
        self.sync_waiting.set(now.sync_waiting);
        self.sync_set_aside.set(now.sync_set_aside);
        self.sync_connected.set(u64::from(now.sync_connected));
        self.database_damaged.set(u64::from(now.database_damaged));
        self.data_dir_free_bytes.set(now.data_dir_free_bytes);
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

impl crate::Node {
    /// The node's metrics as OpenMetrics text, with the gauges measured now (the audit log's
    /// length, the database's size on disk, sync's waiting and set-aside counts, damage).
    /// Errors: the store's, when the database cannot be read.
    pub async fn metrics_text(&self) -> crate::Result<String> {
        let audit_entries: u64 = self
            .store
            .read(|c| {
                c.query_row("SELECT coalesce(max(seq), 0) FROM audit", [], |r| {
                    r.get::<_, i64>(0)
                })
                .map_err(crate::store::StoreError::from)
            })
            .await?
            .max(0) as u64;
        let path = self.store.path().to_path_buf();
        let size = |p: std::path::PathBuf| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        let mut wal = path.clone().into_os_string();
        wal.push("-wal");
        let status = self.sync.status();
        Ok(self.metrics.render(Snapshot {
            database_bytes: size(path) + size(wal.into()),
            audit_entries,
            sync_waiting: status.waiting,
            sync_set_aside: status.set_aside.len() as u64,
            sync_connected: status.connected,
            database_damaged: self.store.damage().is_some(),
            data_dir_free_bytes: crate::ops::space::free_bytes(&self.config.data_dir).unwrap_or(0),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_histograms_and_gauges_with_route_templates_only() {
        let m = Metrics::new();
        m.request("/sheets/{id}", "GET", 200, Duration::from_millis(3));
        m.request("/sheets/{id}", "GET", 200, Duration::from_millis(5));
        m.sync_session(true, 100, 50);
        m.sign_in_failed();
        let text = m.render(Snapshot {
            database_bytes: 4096,
            audit_entries: 7,
            ..Snapshot::default()
        });
        assert!(
            text.contains(
                "nsdb_http_requests_total{route=\"/sheets/{id}\",method=\"GET\",status=\"200\"} 2"
            ),
            "{text}"
        );
        assert!(
            text.contains("nsdb_http_request_duration_seconds_count{route=\"/sheets/{id}\"} 2")
        );
        assert!(text.contains("nsdb_sync_bytes_total{direction=\"sent\"} 100"));
        assert!(text.contains("nsdb_sign_in_failures_total 1"));
        assert!(text.contains("nsdb_database_bytes 4096"));
        assert!(text.contains("nsdb_audit_entries 7"));
    }
}
