//! `nsdb bench SCENARIO`: repeatable measurements of the node on this machine.
//!
//! Convention for every scenario: one warm-up run, then several measured runs; each figure is
//! reported as median with min–max, and where a baseline makes sense it is measured in the same
//! run and reported as a ratio. `--json` prints one JSON object per line. Benchmarks are never
//! tests: targets are checked by reading these figures, not by asserting timings.

use std::path::Path;
use std::time::Instant;

use nsdb_rules::Catalogue;
use nsdb_sync::{Author, NodeId, Sheet};
use serde::Serialize;

use crate::store::{DbKey, Store, StoreError};

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
                "{:<8} {:<28} median {:>12.2} {:<10} (min {:.2}, max {:.2}, {} runs)",
                self.bench, self.metric, self.median, self.unit, self.min, self.max, self.runs
            );
        }
    }
}

/// The scenarios `nsdb bench` knows.
pub const SCENARIOS: &[&str] = &["store", "sync"];

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
) -> anyhow::Result<Pass> {
    let path = dir.join(format!("bench-{}.db", uuid::Uuid::new_v4()));
    let store = Store::open(&path, key, 2)?;
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
    let docs: Vec<(String, Vec<u8>)> = crate::seed::sheets(
        form,
        opts.sheets,
        42,
        "0000000000",
        author,
        1_775_000_000_000,
        today,
    )
    .into_iter()
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
    for run in 0..=opts.runs {
        // Alternate the order so neither side always runs on a warmer cache.
        let (e, p) = if run % 2 == 0 {
            let e = one_pass(dir.path(), Some(&key), &docs).await?;
            (e, one_pass(dir.path(), None, &docs).await?)
        } else {
            let p = one_pass(dir.path(), None, &docs).await?;
            (one_pass(dir.path(), Some(&key), &docs).await?, p)
        };
        if run == 0 {
            continue; // warm-up
        }
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
