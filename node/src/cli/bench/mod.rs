//! `nsdb bench SCENARIO`: repeatable measurements of the node on this machine.
//!
//! Convention for every scenario: one warm-up run, then several measured runs; each figure is
//! reported as median with min–max, and where a baseline makes sense it is measured in the same
//! run and reported as a ratio. `--json` prints one JSON object per line. Benchmarks are never
//! tests: targets are checked by reading these figures, not by asserting timings.

pub mod check;
pub mod crash;
pub mod load;
pub mod research;
pub mod review;
pub mod review_print;
pub mod sync;

use std::path::Path;
use std::time::Instant;

use nsdb_rules::Catalogue;
use nsdb_sync::{Author, NodeId, Sheet};
use serde::Serialize;

use crate::store::{DbKey, Durability, Store, StoreError};

/// One reported figure.
#[derive(Debug, Clone, Serialize)]
pub struct Figure {
    pub bench: String,
    pub metric: String,
    pub unit: String,
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub runs: usize,
}

impl Figure {
    /// Summarises measured values (not the warm-up).
    pub fn from_runs(bench: &str, metric: &str, unit: &str, values: &[f64]) -> Figure {
        let mut v = values.to_vec();
        v.sort_by(f64::total_cmp);
        let median = match v.len() {
            0 => f64::NAN,
            n if n % 2 == 1 => v[n / 2],
            n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
        };
        Figure {
            bench: bench.into(),
            metric: metric.into(),
            unit: unit.into(),
            median,
            min: v.first().copied().unwrap_or(f64::NAN),
            max: v.last().copied().unwrap_or(f64::NAN),
            runs: v.len(),
        }
    }

    pub fn print(&self, json: bool) {
        if json {
            println!(
                "{}",
                serde_json::to_string(self).unwrap_or_else(|_| "{}".into())
            );
        } else {
            println!(
                "{:<8} {:<30} median {:>12.2} {:<10} (min {:.2}, max {:.2}, {} runs)",
                self.bench, self.metric, self.median, self.unit, self.min, self.max, self.runs
            );
        }
    }
}

/// The scenarios `nsdb bench` knows.
pub const SCENARIOS: &[&str] = &[
    "store", "ui", "rules", "sync", "check", "review", "research", "crash", "load",
];

/// Options of the rules scenario.
#[derive(Debug, Clone, Copy)]
pub struct RulesBench {
    pub sheets_per_form: usize,
    pub runs: usize,
}

/// A generated corpus: every form of the catalogue, `n` fictitious sheets each, with every code
/// item chosen and every number drawn within its range.
pub fn rules_corpus(
    catalogue: &Catalogue,
    n: usize,
    today: nsdb_rules::Date,
) -> Vec<(
    &nsdb_rules::FormDef,
    std::collections::BTreeMap<String, String>,
)> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(42);
    let mut out = Vec::new();
    for form in catalogue.forms() {
        for _ in 0..n {
            let mut v = crate::cli::seed::sheet_values(form, &mut rng, today);
            for item in form.items() {
                if item.calc.is_some() || v.contains_key(&item.id) {
                    continue;
                }
                let (lo, hi) = (item.min.unwrap_or(0.0), item.max.unwrap_or(100.0));
                let x = lo + (hi - lo) * rng.random::<f64>();
                match item.ty {
                    nsdb_rules::ItemType::Integer => {
                        v.insert(item.id.clone(), format!("{}", x.round() as i64));
                    }
                    nsdb_rules::ItemType::Decimal => {
                        v.insert(item.id.clone(), format!("{x:.1}"));
                    }
                    _ => {}
                }
            }
            out.push((form, v));
        }
    }
    out
}

/// Sheets per second through check, auto-calculation and judgment (`nsdb_rules::evaluate`) on
/// one core, over a generated corpus of every form.
pub fn rules(opts: RulesBench) -> anyhow::Result<Vec<Figure>> {
    let catalogue = Catalogue::builtin()?;
    let today =
        nsdb_rules::Date::new(2026, 4, 1).ok_or_else(|| anyhow::anyhow!("bad benchmark date"))?;
    let corpus = rules_corpus(&catalogue, opts.sheets_per_form.max(1), today);
    let (mut per_s, mut check_per_s, mut ratio) = (Vec::new(), Vec::new(), Vec::new());
    let mut messages = 0usize;
    for run in 0..=opts.runs {
        let started = Instant::now();
        let mut m = 0usize;
        for (form, values) in &corpus {
            let ev = nsdb_rules::evaluate(form, values, today);
            m += ev.messages.len() + ev.judgment.messages.len();
            std::hint::black_box(&ev);
        }
        let secs = started.elapsed().as_secs_f64();
        messages = m;
        // Baseline in the same run: the checks alone (一時保存's work), no calculation or
        // judgment.
        let started = Instant::now();
        for (form, values) in &corpus {
            let checked = nsdb_rules::check(form, values, nsdb_rules::Mode::Complete, today);
            std::hint::black_box(&checked);
        }
        let check_secs = started.elapsed().as_secs_f64();
        if run > 0 {
            per_s.push(corpus.len() as f64 / secs);
            check_per_s.push(corpus.len() as f64 / check_secs);
            ratio.push(secs / check_secs);
        }
    }
    let forms = catalogue.forms().len() as f64;
    Ok(vec![
        Figure::from_runs("rules", "evaluate_one_core", "sheets/s", &per_s),
        Figure::from_runs("rules", "check_only_one_core", "sheets/s", &check_per_s),
        Figure::from_runs("rules", "evaluate_time_vs_check_only", "ratio", &ratio),
        Figure::from_runs("rules", "forms_in_corpus", "forms", &[forms]),
        Figure::from_runs(
            "rules",
            "messages_per_sheet",
            "messages",
            &[messages as f64 / corpus.len().max(1) as f64],
        ),
    ])
}

/// Options of the store scenario.
#[derive(Debug, Clone, Copy)]
pub struct StoreBench {
    pub sheets: usize,
    pub runs: usize,
}

impl Default for StoreBench {
    fn default() -> Self {
        StoreBench {
            sheets: 2000,
            runs: 5,
        }
    }
}

struct Pass {
    save_per_s: f64,
    load_per_s: f64,
}

async fn one_pass(
    dir: &Path,
    key: Option<&DbKey>,
    docs: &[(String, Vec<u8>)],
    durability: Durability,
) -> anyhow::Result<Pass> {
    let path = dir.join(format!("bench-{}.db", uuid::Uuid::new_v4()));
    let store = Store::open_with(&path, key, 2, durability)?;
    store
        .write(|c| {
            c.execute(
                "INSERT INTO institutions (code, name, kind) VALUES ('0000000000', 'bench', 'hospital')",
                [],
            )?;
            Ok::<_, StoreError>(())
        })
        .await?;
    let started = Instant::now();
    for (_, doc) in docs {
        let doc = doc.clone();
        store
            .write(move |c| {
                let mut sheet = Sheet::load(&doc).map_err(|e| anyhow::anyhow!("{e}"))?;
                let tx = c.transaction()?;
                crate::sheets::store_sheet(&tx, &mut sheet, "screen", 0)?;
                crate::audit::append(
                    &tx,
                    crate::audit::Entry {
                        at_ms: 0,
                        user: Some(1),
                        action: "sheet_edit",
                        target: None,
                        detail: None,
                    },
                )?;
                tx.commit()?;
                Ok::<_, anyhow::Error>(())
            })
            .await?;
    }
    let save = started.elapsed().as_secs_f64();
    let started = Instant::now();
    for (id, _) in docs {
        let id = id.clone();
        store
            .read(move |c| {
                let bytes: Vec<u8> =
                    c.query_row("SELECT doc FROM sheets WHERE id = ?1", [&id], |r| r.get(0))?;
                let sheet = Sheet::load(&bytes).map_err(|e| anyhow::anyhow!("{e}"))?;
                std::hint::black_box(sheet.fields());
                Ok::<_, anyhow::Error>(())
            })
            .await?;
    }
    let load = started.elapsed().as_secs_f64();
    drop(store);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    Ok(Pass {
        save_per_s: docs.len() as f64 / save,
        load_per_s: docs.len() as f64 / load,
    })
}

/// Sheets saved and loaded per second, encrypted (SQLCipher) and plain SQLite, in one run.
pub async fn store(opts: StoreBench) -> anyhow::Result<Vec<Figure>> {
    let catalogue = Catalogue::builtin()?;
    let form = catalogue
        .form("rinko-006")
        .ok_or_else(|| anyhow::anyhow!("form rinko-006 is missing from the catalogue"))?;
    let author = Author {
        node: NodeId([7; 16]),
        user: 1,
    };
    let today = nsdb_rules::Date::new(2026, 4, 1).unwrap_or(nsdb_rules::Date {
        year: 2026,
        month: 4,
        day: 1,
    });
    let docs: Vec<(String, Vec<u8>)> = crate::cli::seed::sheets(
        form,
        opts.sheets,
        42,
        "0000000000",
        author,
        1_775_000_000_000,
        today,
    )
    .map(|mut s| (s.header().id.to_string(), s.save()))
    .collect();
    let dir = tempfile::tempdir()?;
    let key = DbKey::from_bytes(crate::random_key_bytes());
    let (
        mut enc_save,
        mut enc_load,
        mut plain_save,
        mut plain_load,
        mut ratio_save,
        mut ratio_load,
    ) = (vec![], vec![], vec![], vec![], vec![], vec![]);
    let (mut normal_save, mut ratio_durable) = (vec![], vec![]);
    let full = Durability::PowerLoss;
    for run in 0..=opts.runs {
        // Alternate the order so neither side always runs on a warmer cache.
        let (e, p, n) = if run % 2 == 0 {
            let e = one_pass(dir.path(), Some(&key), &docs, full).await?;
            let p = one_pass(dir.path(), None, &docs, full).await?;
            let n = one_pass(dir.path(), Some(&key), &docs, Durability::ProcessCrash).await?;
            (e, p, n)
        } else {
            let n = one_pass(dir.path(), Some(&key), &docs, Durability::ProcessCrash).await?;
            let p = one_pass(dir.path(), None, &docs, full).await?;
            (one_pass(dir.path(), Some(&key), &docs, full).await?, p, n)
        };
        if run == 0 {
            continue; // warm-up
        }
        normal_save.push(n.save_per_s);
        ratio_durable.push(e.save_per_s / n.save_per_s);
        enc_save.push(e.save_per_s);
        enc_load.push(e.load_per_s);
        plain_save.push(p.save_per_s);
        plain_load.push(p.load_per_s);
        ratio_save.push(e.save_per_s / p.save_per_s);
        ratio_load.push(e.load_per_s / p.load_per_s);
    }
    Ok(vec![
        Figure::from_runs("store", "save_encrypted", "sheets/s", &enc_save),
        Figure::from_runs("store", "save_plain", "sheets/s", &plain_save),
        Figure::from_runs("store", "save_encrypted_vs_plain", "ratio", &ratio_save),
        Figure::from_runs("store", "load_encrypted", "sheets/s", &enc_load),
        Figure::from_runs("store", "load_plain", "sheets/s", &plain_load),
        Figure::from_runs("store", "load_encrypted_vs_plain", "ratio", &ratio_load),
        Figure::from_runs(
            "store",
            "save_encrypted_sync_normal",
            "sheets/s",
            &normal_save,
        ),
        Figure::from_runs(
            "store",
            "save_power_cut_safe_vs_normal",
            "ratio",
            &ratio_durable,
        ),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_of_odd_and_even_runs() {
        let f = Figure::from_runs("b", "m", "u", &[3.0, 1.0, 2.0]);
        assert_eq!((f.median, f.min, f.max, f.runs), (2.0, 1.0, 3.0, 3));
        let f = Figure::from_runs("b", "m", "u", &[4.0, 1.0, 2.0, 3.0]);
        assert_eq!(f.median, 2.5);
    }

    #[test]
    fn the_rules_scenario_covers_every_form() {
        let figures = rules(RulesBench {
            sheets_per_form: 5,
            runs: 1,
        })
        .unwrap();
        let figure = |m: &str| {
            figures
                .iter()
                .find(|f| f.metric == m)
                .unwrap_or_else(|| panic!("{m} missing"))
                .median
        };
        assert!(figure("evaluate_one_core") > 0.0);
        assert!(figure("check_only_one_core") > 0.0);
        assert!(figure("evaluate_time_vs_check_only") > 0.0);
        let forms = Catalogue::builtin().unwrap().forms().len() as f64;
        assert_eq!(figure("forms_in_corpus"), forms);
    }

    #[tokio::test]
    async fn the_ui_scenario_measures_editor_save_and_list() {
        let figures = ui(UiBench {
            sheets: 200,
            runs: 1,
            requests: 2,
        })
        .await
        .unwrap();
        let metrics: Vec<&str> = figures.iter().map(|f| f.metric.as_str()).collect();
        assert_eq!(
            metrics,
            [
                "editor_render",
                "editor_save",
                "list_page",
                "list_search_kana",
                "http_editor_render",
                "https_editor_render",
                "https_over_http_editor_render",
                "http_list_page",
                "https_list_page",
                "https_over_http_list_page",
            ]
        );
        assert!(figures.iter().all(|f| f.median > 0.0));
    }

    #[tokio::test]
    async fn the_store_scenario_reports_both_sides_and_the_ratio() {
        let figures = store(StoreBench {
            sheets: 20,
            runs: 1,
        })
        .await
        .unwrap();
        let metrics: Vec<&str> = figures.iter().map(|f| f.metric.as_str()).collect();
        assert!(metrics.contains(&"save_encrypted"));
        assert!(metrics.contains(&"load_encrypted_vs_plain"));
        assert!(figures.iter().all(|f| f.median > 0.0 && f.runs == 1));
    }
}

/// Options of the ui scenario.
#[derive(Debug, Clone, Copy)]
pub struct UiBench {
    /// Sheets in the list (the projection rows the list page searches).
    pub sheets: usize,
    pub runs: usize,
    /// Requests per run; the run's figure is their median.
    pub requests: usize,
}

impl Default for UiBench {
    fn default() -> Self {
        UiBench {
            sheets: 100_000,
            runs: 5,
            requests: 50,
        }
    }
}

fn median_ms(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Server time of the screens a doctor uses all day, measured through the real router
/// in-process (session lookup, authorisation, database, audit, rendering): the editor of the
/// largest form, saving it (checks included), and the list page with `sheets` sheets.
pub async fn ui(opts: UiBench) -> anyhow::Result<Vec<Figure>> {
    use axum::body::Body;
    use axum::http::{Request, header};
    use tower::ServiceExt;

    let dir = tempfile::tempdir()?;
    let node = crate::cli::demo::open_node(
        dir.path(),
        crate::config::NodeRole::Hospital,
        "127.0.0.1:0".parse()?,
        0,
    )
    .await?;
    let form = node
        .catalogue
        .forms()
        .into_iter()
        .max_by_key(|f| f.items().count())
        .ok_or_else(|| anyhow::anyhow!("the catalogue has no forms"))?
        .clone();
    let session = node
        .login("doctor", crate::cli::demo::DEMO_PASSWORD)
        .await?;
    let doctor = session.principal.clone();

    // One real sheet of the largest form, every item filled with a valid value.
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(7);
    let values = crate::cli::seed::sheet_values(&form, &mut rng, node.clock.today_jst());
    let sheet = node.create_sheet(&doctor, &form.id, &values).await?;
    let id = sheet.row.id.clone();

    // The list's rows: fictitious sheets of the same hospital. Their list columns vary; their
    // documents are one real document (the list page never opens documents).
    let docs = crate::cli::seed::sheets(
        &form,
        1000,
        11,
        &doctor.institution,
        Author {
            node: node.node_id,
            user: doctor.user_id,
        },
        node.clock.now_ms(),
        node.clock.today_jst(),
    )
    .collect::<Vec<_>>();
    let n = opts.sheets;
    node.store
        .write(move |c| {
            let tx = c.transaction()?;
            for i in 0..n {
                let mut s = docs[i % docs.len()].clone();
                // A fresh id per row; the projection is what the list reads.
                let row_id = uuid::Uuid::from_u128(i as u128 + 1).to_string();
                crate::sheets::store_sheet(&tx, &mut s, "screen", i as i64)?;
                // The list rows are not synced: their heads would name the document's own id.
                tx.execute(
                    "DELETE FROM sync_heads WHERE sheet_id = ?1",
                    [s.header().id.to_string()],
                )?;
                tx.execute(
                    "UPDATE sheets SET id = ?1 WHERE id = ?2",
                    rusqlite::params![row_id, s.header().id.to_string()],
                )?;
            }
            tx.commit()?;
            Ok::<_, crate::Error>(())
        })
        .await?;

    let app = crate::http::router(node.clone());
    let cookie = format!("nsdb_session={}", session.token);
    // The page's version is the one the sheet was created with, as on a page left open all
    // morning: each save writes only the changed address, on top of that version.
    let version = sheet.version.join(",");
    let save_body = serde_urlencoded::to_string(
        values
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .chain([
                ("csrf", session.csrf.as_str()),
                ("action", "save"),
                ("_version", version.as_str()),
            ])
            .collect::<Vec<_>>(),
    )?;
    let get = |uri: String| {
        Request::get(uri)
            .header(header::COOKIE, cookie.clone())
            .body(Body::empty())
    };
    let mut figures = Vec::new();
    type MakeRequest<'a> = Box<dyn Fn(usize) -> Request<Body> + 'a>;
    let scenarios: [(&str, MakeRequest); 4] = [
        (
            "editor_render",
            Box::new(|_| get(format!("/sheets/{id}/edit")).unwrap_or_default()),
        ),
        (
            "editor_save",
            Box::new(|i| {
                // Alternate one value so every save really changes the sheet.
                let body = format!("{save_body}&patient.address=%E8%A9%A6%E9%A8%93{i}");
                Request::post(format!("/sheets/{id}"))
                    .header(header::COOKIE, cookie.clone())
                    .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .body(Body::from(body))
                    .unwrap_or_default()
            }),
        ),
        (
            "list_page",
            Box::new(|i| get(format!("/sheets?page={}", 1 + i % 50)).unwrap_or_default()),
        ),
        (
            "list_search_kana",
            Box::new(|_| get("/sheets?q=%E3%83%A4".to_string()).unwrap_or_default()),
        ),
    ];
    for (metric, request) in &scenarios {
        let mut per_run = Vec::new();
        for run in 0..=opts.runs {
            let mut times = Vec::with_capacity(opts.requests);
            for i in 0..opts.requests {
                let req = request(run * opts.requests + i);
                let started = Instant::now();
                let res = app.clone().oneshot(req).await?;
                let status = res.status();
                let _ = axum::body::to_bytes(res.into_body(), usize::MAX).await?;
                times.push(started.elapsed().as_secs_f64() * 1000.0);
                if !(status.is_success() || status.is_redirection()) {
                    anyhow::bail!("{metric}: the server answered {status}");
                }
            }
            if run > 0 {
                per_run.push(median_ms(times));
            }
        }
        figures.push(Figure::from_runs("ui", metric, "ms", &per_run));
    }
    figures.extend(over_the_wire(app, &cookie, &id, opts).await?);
    Ok(figures)
}

/// The editor and the list page as a browser gets them: over loopback HTTP/1.1 on a kept-alive
/// connection, plain and with TLS (the listener `nsdb serve` runs with `tls`, a certificate
/// made here for `localhost`), alternating within each run. Figures per run: the median time
/// to the last byte of each, and the TLS cost as the ratio of the two medians
/// (`https_over_http_…`).
async fn over_the_wire(
    app: axum::Router,
    cookie: &str,
    id: &str,
    opts: UiBench,
) -> anyhow::Result<Vec<Figure>> {
    let dir = tempfile::tempdir()?;
    let key = rcgen::KeyPair::generate()?;
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])?.self_signed(&key)?;
    let tls = crate::ops::tls::TlsConfig {
        cert: dir.path().join("server.pem"),
        key: dir.path().join("server.key"),
        client_certs: crate::ops::tls::ClientCerts::Off,
    };
    std::fs::write(&tls.cert, cert.pem())?;
    nsdb_provisioning::write_secret_file(&tls.key, &key.serialize_pem())?;
    let server_config = crate::ops::tls::server_config(&tls, crate::Clock::System.now_ms())?;

    let plain = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let plain_addr = plain.local_addr()?;
    let plain_app = app
        .clone()
        .into_make_service_with_connect_info::<std::net::SocketAddr>();
    let plain_task = tokio::spawn(async move { axum::serve(plain, plain_app).await });
    let secure = std::net::TcpListener::bind("127.0.0.1:0")?;
    secure.set_nonblocking(true)?;
    let secure_addr = secure.local_addr()?;
    let handle = axum_server::Handle::new();
    let secure_task = tokio::spawn(crate::ops::tls::serve(
        secure,
        server_config,
        app,
        handle.clone(),
    ));

    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.der().clone())?;
    let client_config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(client_config));
    let mut over_http = Connection::open(
        tokio::net::TcpStream::connect(plain_addr).await?,
        "plain HTTP",
    )
    .await?;
    let tcp = tokio::net::TcpStream::connect(secure_addr).await?;
    let name = rustls::pki_types::ServerName::try_from("localhost")?;
    let mut over_https = Connection::open(connector.connect(name, tcp).await?, "HTTPS").await?;

    let mut figures = Vec::new();
    type Path<'a> = Box<dyn Fn(usize) -> String + 'a>;
    let pages: [(&str, Path); 2] = [
        ("editor_render", Box::new(|_| format!("/sheets/{id}/edit"))),
        (
            "list_page",
            Box::new(|i| format!("/sheets?page={}", 1 + i % 50)),
        ),
    ];
    for (page, path) in &pages {
        let (mut plain_ms, mut tls_ms, mut ratio) = (Vec::new(), Vec::new(), Vec::new());
        for run in 0..=opts.runs {
            let (mut plain, mut tls) = (Vec::new(), Vec::new());
            for i in 0..opts.requests {
                let path = path(run * opts.requests + i);
                plain.push(over_http.get(&path, cookie).await?);
                tls.push(over_https.get(&path, cookie).await?);
            }
            // The first run warms both connections up; it is not counted.
            if run > 0 {
                let (h, s) = (median_ms(plain), median_ms(tls));
                plain_ms.push(h);
                tls_ms.push(s);
                ratio.push(s / h);
            }
        }
        figures.push(Figure::from_runs(
            "ui",
            &format!("http_{page}"),
            "ms",
            &plain_ms,
        ));
        figures.push(Figure::from_runs(
            "ui",
            &format!("https_{page}"),
            "ms",
            &tls_ms,
        ));
        figures.push(Figure::from_runs(
            "ui",
            &format!("https_over_http_{page}"),
            "ratio",
            &ratio,
        ));
    }
    handle.shutdown();
    plain_task.abort();
    let _ = secure_task.await;
    Ok(figures)
}

/// One kept-alive HTTP/1.1 connection of [`over_the_wire`], as a browser holds one.
struct Connection {
    send: hyper::client::conn::http1::SendRequest<http_body_util::Empty<axum::body::Bytes>>,
    what: &'static str,
}

impl Connection {
    async fn open<S>(stream: S, what: &'static str) -> anyhow::Result<Connection>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let (send, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
        tokio::spawn(conn);
        Ok(Connection { send, what })
    }

    /// GETs `path` with the session `cookie`; the time until its last byte, in ms. Errors:
    /// the connection failed, or an answer other than 200.
    async fn get(&mut self, path: &str, cookie: &str) -> anyhow::Result<f64> {
        use http_body_util::BodyExt;
        let req = axum::http::Request::get(path)
            .header(axum::http::header::HOST, "localhost")
            .header(axum::http::header::COOKIE, cookie)
            .body(http_body_util::Empty::new())?;
        let started = Instant::now();
        self.send.ready().await?;
        let res = self.send.send_request(req).await?;
        let status = res.status();
        let _ = res.into_body().collect().await?;
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        if status != axum::http::StatusCode::OK {
            anyhow::bail!("{path} over {}: the server answered {status}", self.what);
        }
        Ok(ms)
    }
}
