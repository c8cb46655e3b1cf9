//! `nsdb bench research`: research export and statistics at national scale.
//!
//! Builds an encrypted hub database of N synthetic consented, registered sheets (a pool of
//! distinct documents over every form of the catalogue and two years, each stored under many
//! sheet ids, since building a million distinct Automerge documents would measure the seed, not
//! the export), then per run: the export (Parquet and CSV) with its peak memory (VmHWM, reset
//! before the export), the statistics, and DuckDB reading the exported Parquet folder (when
//! python3 with the `duckdb` package is there), reported as a ratio.

use std::path::Path;
use std::time::Instant;

use nsdb_rules::Catalogue;
use nsdb_sync::{Author, Edit, NodeId, ResearchConsent, Review, Sheet, SheetId};
use rand::SeedableRng;
use rand::rngs::StdRng;

use super::Figure;
use crate::research::export::{self, Formats};
use crate::research::{Secret, rows, stats};
use crate::store::{DbKey, Durability, Store};

/// Options of the research scenario.
#[derive(Debug, Clone, Copy)]
pub struct ResearchBench {
    pub sheets: usize,
    pub runs: usize,
}

/// Distinct documents in the pool the corpus is built from.
const POOL: usize = 4000;

/// Peak resident memory of this process (VmHWM), in MiB.
pub fn peak_mib() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// Resets the peak (Linux: `5` into clear_refs); false when the kernel refuses.
fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// One document of the pool: (form id, form version, kokuji, eda, disease, written date,
/// document).
type Pooled = (String, String, u16, u16, String, String, Vec<u8>);

fn pool(catalogue: &Catalogue, n: usize) -> Vec<Pooled> {
    let forms = catalogue.forms();
    let mut rng = StdRng::seed_from_u64(16);
    let author = Author {
        node: NodeId([9; 16]),
        user: 1,
    };
    (0..n)
        .map(|i| {
            let form = forms[i % forms.len()];
            let year = if i % 2 == 0 { 2024 } else { 2025 };
            let written = nsdb_rules::Date::new(year, 1 + (i % 12) as u8, 1 + (i % 28) as u8)
                .unwrap_or(nsdb_rules::Date {
                    year,
                    month: 6,
                    day: 1,
                });
            let edit = Edit {
                author,
                at_ms: 1_735_000_000_000,
                message: "作成",
            };
            let id = SheetId(uuid::Uuid::from_u128(i as u128 + 1));
            let mut sheet = Sheet::new(
                crate::sheets::new_sheet_of(form, id, "1399000010", Some(1), None, edit.at_ms),
                edit,
            );
            let values = crate::cli::seed::sheet_values(form, &mut rng, written);
            let changes = values.into_iter().map(|(k, v)| (k, Some(v))).collect();
            sheet.set_fields(&changes, edit);
            sheet.set_status("registered", edit);
            let mut review = Review::linked("139999", edit.at_ms);
            review.research_consent = Some(ResearchConsent::Given);
            // A fixed, valid municipality code: the review is always written.
            let _ = sheet.set_review(&review, edit);
            (
                form.id.clone(),
                form.version.clone(),
                form.kokuji,
                form.eda,
                form.disease.clone(),
                written.to_string(),
                sheet.save(),
            )
        })
        .collect()
}

async fn corpus(
    store: &Store,
    catalogue: &std::sync::Arc<Catalogue>,
    secret: &Secret,
    sheets: usize,
) -> anyhow::Result<()> {
    let pool = pool(catalogue, POOL.min(sheets.max(1)));
    // Each pooled document's research row, made once: only the sheet's pseudonym differs
    // between the sheets stored under it (what `store_sheet` writes at the hub).
    let rows: Vec<rows::Row> = pool
        .iter()
        .map(|p| {
            let sheet = Sheet::load(&p.6)?;
            Ok(rows::row_of(catalogue, secret, &sheet, &sheet.fields()))
        })
        .collect::<anyhow::Result<_>>()?;
    let secret = secret.clone();
    store
        .write(move |c| {
            let tx = c.transaction()?;
            {
                let mut ins = tx.prepare(
                    "INSERT INTO sheets (id, doc, form_id, form_version, kokuji, eda, disease,
                        institution, status, registration, created_at, updated_at, written_date)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, '1399000010', 'registered', 'screen', 0, 0, ?8)",
                )?;
                for i in 0..sheets {
                    let p = &pool[i % pool.len()];
                    let id = uuid::Uuid::from_u128(0x5eed_0000_0000 + i as u128).to_string();
                    ins.execute(rusqlite::params![id, p.6, p.0, p.1, p.2, p.3, p.4, p.5])?;
                    let mut row = rows[i % pool.len()].clone();
                    if let rows::Row::Kept(r) = &mut row {
                        r.record = secret.record(&id);
                    }
                    rows::write(&tx, &id, &row, secret.since_ms)?;
                }
            }
            tx.commit()?;
            Ok::<_, anyhow::Error>(())
        })
        .await
}

/// DuckDB's time to count the exported Parquet folder and group it by year and disease, in
/// seconds, with the count it found; `None` when python3 or its `duckdb` package is missing.
pub fn duckdb_read(out: &Path) -> Option<(f64, u64)> {
    let script = r#"
import sys, time, duckdb
d = sys.argv[1]
t = time.perf_counter()
con = duckdb.connect()
n = con.execute(f"SELECT count(*) FROM read_parquet('{d}/parquet/wide/**/*.parquet', hive_partitioning=true, union_by_name=true)").fetchone()[0]
con.execute(f"SELECT year, disease, sex, count(*) FROM read_parquet('{d}/parquet/wide/**/*.parquet', hive_partitioning=true, union_by_name=true) GROUP BY ALL").fetchall()
print(time.perf_counter() - t, n)
"#;
    let o = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(out)
        .output()
        .ok()?;
    if !o.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&o.stdout);
    let mut it = text.split_whitespace();
    Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
}

pub async fn research(opts: ResearchBench) -> anyhow::Result<Vec<Figure>> {
    let catalogue = std::sync::Arc::new(Catalogue::builtin()?);
    let dir = tempfile::tempdir()?;
    let key = DbKey::from_bytes(crate::random_key_bytes());
    let store = Store::open_with(
        &dir.path().join("hub.db"),
        Some(&key),
        2,
        Durability::ProcessCrash,
    )?;
    let secret = Secret::from_bytes([3; 32], 0);
    let started = Instant::now();
    corpus(&store, &catalogue, &secret, opts.sheets).await?;
    eprintln!(
        "research: {} sheets stored in {:.1} s",
        opts.sheets,
        started.elapsed().as_secs_f64()
    );
    let (mut export_s, mut peak, mut stats_s, mut duck_s, mut ratio, mut per_s) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    let mut csv_s = vec![];
    for run in 0..=opts.runs {
        for csv in [false, true] {
            let out = dir.path().join(format!("out-{run}-{csv}"));
            let (cat, sec, o) = (catalogue.clone(), secret.clone(), out.clone());
            reset_peak();
            let t = Instant::now();
            let summary = store
                .read(move |c| {
                    export::export(c, &cat, &sec, &o, Formats { parquet: true, csv }, 0)
                        .map_err(anyhow::Error::from)
                })
                .await?;
            let secs = t.elapsed().as_secs_f64();
            let hwm = peak_mib().unwrap_or(f64::NAN);
            eprintln!(
                "research run {run}: export{} {:.1} s, {} sheets, peak {hwm:.0} MiB",
                if csv { " parquet+csv" } else { " parquet" },
                secs,
                summary.counts.kept
            );
            if run == 0 {
                let _ = std::fs::remove_dir_all(&out);
                continue;
            }
            if csv {
                csv_s.push(secs);
                peak.push(hwm);
                let _ = std::fs::remove_dir_all(&out);
                continue;
            }
            export_s.push(secs);
            per_s.push(summary.counts.kept as f64 / secs);
            if let Some((d, n)) = duckdb_read(&out) {
                if n != summary.counts.kept {
                    anyhow::bail!(
                        "DuckDB counted {n} sheets, the export wrote {}",
                        summary.counts.kept
                    );
                }
                duck_s.push(d);
                ratio.push(secs / d);
            }
            let _ = std::fs::remove_dir_all(&out);
        }
        let t = Instant::now();
        store
            .read(move |c| stats::count(c).map_err(anyhow::Error::from))
            .await?;
        if run > 0 {
            stats_s.push(t.elapsed().as_secs_f64());
        }
    }
    let mut figures = vec![
        Figure::from_runs("research", "export_parquet", "s", &export_s),
        Figure::from_runs("research", "export_parquet_rate", "sheets/s", &per_s),
        Figure::from_runs("research", "export_parquet_and_csv", "s", &csv_s),
        Figure::from_runs("research", "export_peak_memory", "MiB", &peak),
        Figure::from_runs("research", "statistics", "s", &stats_s),
    ];
    if !duck_s.is_empty() {
        figures.push(Figure::from_runs(
            "research",
            "duckdb_read_parquet",
            "s",
            &duck_s,
        ));
        figures.push(Figure::from_runs(
            "research",
            "export_vs_duckdb_read",
            "ratio",
            &ratio,
        ));
    } else {
        eprintln!("research: python3 with duckdb not found; the DuckDB figures are left out");
    }
    Ok(figures)
}
