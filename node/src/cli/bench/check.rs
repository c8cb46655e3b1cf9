//! `nsdb bench check`: the check tool's throughput (read + check + seal of one-sheet XML files,
//! on all cores and on one) and the node's 一括登録 throughput (upload over HTTP in batches,
//! verify, decrypt, check again, store the whole upload in one transaction, a savepoint per file).
//!
//! Files are each form's sample in turn, sealed to a node of a temporary directory; nothing
//! is written outside it.

use std::time::Instant;

use nsdb_provisioning::NodeIdentity;
use nsdb_provisioning::sealed::{KeyInfo, SealKey, UserKey};
use nsdb_rules::Catalogue;

use super::Figure;
use crate::cli::check::{Sealer, check_file, on_all_cores};

/// Options of the check scenario.
#[derive(Debug, Clone, Copy)]
pub struct CheckBench {
    /// Files per run.
    pub files: usize,
    pub runs: usize,
}

/// Files per upload request in the import figure.
const BATCH: usize = 200;

fn sealer(cat: &Catalogue, node: &NodeIdentity, seal: &SealKey) -> anyhow::Result<Sealer> {
    let hub = NodeIdentity::generate()?;
    let to = KeyInfo::request(node, "ベンチマークノード", seal, "2099-12-31")?
        .sign(&hub)
        .verify(&hub.public_key().to_bytes(), "2026-04-01")?;
    Ok(Sealer {
        to,
        by: UserKey::generate()?,
        rule_pack_version: cat.version().to_string(),
        partial: false,
    })
}

/// Runs the scenario.
pub async fn check(opts: CheckBench) -> anyhow::Result<Vec<Figure>> {
    let cat = Catalogue::builtin()?;
    let today =
        nsdb_rules::Date::new(2026, 4, 1).ok_or_else(|| anyhow::anyhow!("bad benchmark date"))?;
    let samples: Vec<String> = cat
        .forms()
        .iter()
        .map(|f| nsdb_rules::xml::sample(f))
        .collect();
    let n = opts.files.max(1);
    let name = |i: usize| format!("file{i:06}.xml");

    // The check tool: to a throwaway node key.
    let tool_sealer = sealer(&cat, &NodeIdentity::generate()?, &SealKey::generate())?;
    let (mut all, mut one) = (Vec::new(), Vec::new());
    let mut failed = 0;
    for run in 0..=opts.runs {
        let started = Instant::now();
        let outcomes = on_all_cores(n, |i| {
            check_file(
                &cat,
                &name(i),
                samples[i % samples.len()].as_bytes(),
                today,
                Some(&tool_sealer),
            )
        });
        let secs = started.elapsed().as_secs_f64();
        failed = outcomes.iter().filter(|o| o.sealed.len() != 1).count();
        let started = Instant::now();
        for i in 0..(n / 4).max(1) {
            std::hint::black_box(check_file(
                &cat,
                &name(i),
                samples[i % samples.len()].as_bytes(),
                today,
                Some(&tool_sealer),
            ));
        }
        let one_secs = started.elapsed().as_secs_f64();
        if run > 0 {
            all.push(n as f64 / secs);
            one.push((n / 4).max(1) as f64 / one_secs);
        }
    }
    if failed > 0 {
        anyhow::bail!("{failed} sample files did not pass their checks");
    }

    // The node: sealed files to its own key, signed by a registered user, uploaded over HTTP.
    let imported = import(opts, &cat).await?;
    let mut figures = vec![
        Figure::from_runs("check", "read_check_seal_all_cores", "files/s", &all),
        Figure::from_runs("check", "read_check_seal_one_core", "files/s", &one),
        Figure::from_runs(
            "check",
            "cores",
            "threads",
            &[std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1) as f64],
        ),
    ];
    figures.extend(imported);
    Ok(figures)
}

/// Each form's sample sheet with the patient's address ending in `tag`: a sheet of its own,
/// since the node takes the same sheet twice as a duplicate.
fn distinct_sample(cat: &Catalogue, i: usize, tag: &str) -> String {
    let forms = cat.forms();
    let form = &forms[i % forms.len()];
    let mut values = nsdb_rules::xml::sample_values(form);
    if let Some(address) = values.get_mut("patient.address") {
        address.push_str(tag);
    }
    nsdb_rules::xml::write(&[nsdb_rules::xml::SheetOut {
        form,
        reference: None,
        values: &values,
    }])
    .unwrap_or_default()
}

async fn import(opts: CheckBench, cat: &Catalogue) -> anyhow::Result<Vec<Figure>> {
    use axum::body::Body;
    use axum::http::{Request, StatusCode, header};
    use tower::ServiceExt;

    let dir = tempfile::tempdir()?;
    let node = crate::cli::demo::open_node(
        dir.path(),
        crate::config::NodeRole::Hospital,
        "127.0.0.1:0".parse()?,
        0,
    )
    .await?;
    let identity = NodeIdentity::load_or_create(&node.config.identity_path())?;
    let seal = crate::imports::seal_key(&node.config)?;
    let s = sealer(cat, &identity, &seal)?;
    // The node knows the key information the sealer uses as one it issued.
    crate::imports::key_info_request(&node.config, "2099-12-31")?;
    node.set_user_key("doctor", s.by.public_key()).await?;
    let session = node
        .login("doctor", crate::cli::demo::DEMO_PASSWORD)
        .await?;
    let app = crate::http::router(node.clone());
    let n = opts.files.max(1);
    let mut per_s = Vec::new();
    for run in 0..=opts.runs {
        // Sealing is the check tool's work, not the node's: done before the clock starts.
        let files = on_all_cores(n, |i| {
            check_file(
                cat,
                &format!("r{run}_{i:06}.xml"),
                distinct_sample(cat, i, &format!(" {run}-{i}")).as_bytes(),
                node.clock.today_jst(),
                Some(&s),
            )
            .sealed
        });
        let files: Vec<(String, Vec<u8>)> = files.into_iter().flatten().collect();
        let bodies: Vec<Vec<u8>> = files.chunks(BATCH).map(multipart).collect();
        let started = Instant::now();
        let mut imported = 0usize;
        for body in bodies {
            let req = Request::post("/api/v1/imports")
                .header(header::AUTHORIZATION, format!("Bearer {}", session.token))
                .header(
                    header::CONTENT_TYPE,
                    format!("multipart/form-data; boundary={BOUNDARY}"),
                )
                .body(Body::from(body))?;
            let res = app.clone().oneshot(req).await?;
            if res.status() != StatusCode::OK {
                anyhow::bail!("upload answered {}", res.status());
            }
            let bytes = axum::body::to_bytes(res.into_body(), usize::MAX).await?;
            let report: serde_json::Value = serde_json::from_slice(&bytes)?;
            imported += report["rows"]
                .as_array()
                .map(|rows| rows.iter().filter(|r| r["imported"] == true).count())
                .unwrap_or(0);
        }
        let secs = started.elapsed().as_secs_f64();
        if imported != files.len() {
            anyhow::bail!("{} of {} files imported", imported, files.len());
        }
        if run > 0 {
            per_s.push(files.len() as f64 / secs);
        }
    }
    Ok(vec![Figure::from_runs(
        "check",
        "upload_verify_import",
        "files/s",
        &per_s,
    )])
}

const BOUNDARY: &str = "nsdb-bench-7f3a";

fn multipart(files: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, bytes) in files {
        out.extend_from_slice(
            format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"{name}\"\r\n\r\n"
            )
            .as_bytes(),
        );
        out.extend_from_slice(bytes);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    out
}
