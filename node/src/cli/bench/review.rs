//! `nsdb bench review --keys N`: resolution latency at the hub with N issued keys (default
//! 1,000,000): the lookup the hub does for each resolution (`sync_service::find_sheet`: one
//! indexed read by key and birth date), for keys that resolve and for guesses that do not, as
//! p50 and p99 per run. The deliberate equal-time floor (`RESOLUTION_FLOOR`) is reported on
//! its own line, not added in.
//!
//! The hub is a node in a temporary directory; its sheets are projection rows only (a
//! placeholder document, no doctor), written straight into the store, as the lookup reads
//! nothing else. Nothing is written outside the temporary directory.

use std::time::Instant;

use rusqlite::params;

use super::Figure;
use crate::keys::{AccessKey, BLOCK_SIZE};
use crate::sync_service::{RESOLUTION_FLOOR, find_sheet};

/// Options of the review scenario.
#[derive(Debug, Clone, Copy)]
pub struct ReviewBench {
    /// Issued keys at the hub.
    pub keys: usize,
    pub runs: usize,
}

/// Lookups per run (half found, half not).
const LOOKUPS: usize = 2_000;

/// The i-th issued key: blocks spread over the range, serials in a scattered order (multiplying
/// by a number prime to 100,000 is a bijection of a block's serials; cheaper than the keyed
/// permutation, which the lookup does not depend on).
fn key_of(i: usize) -> AccessKey {
    let block = ((i / BLOCK_SIZE as usize) as u32 * 7_919 + 101) % BLOCK_SIZE;
    let serial = ((i % BLOCK_SIZE as usize) as u64 * 7_919 % u64::from(BLOCK_SIZE)) as u32;
    AccessKey::new(block, serial)
}

fn birth_of(i: usize) -> String {
    let n = i.wrapping_mul(2_654_435_761) % 36_500;
    format!(
        "{:04}-{:02}-{:02}",
        1925 + n / 365,
        1 + (n / 28) % 12,
        1 + n % 28
    )
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Runs the scenario.
pub async fn review(opts: ReviewBench) -> anyhow::Result<Vec<Figure>> {
    let dir = tempfile::tempdir()?;
    let hub = crate::cli::demo::open_node(
        dir.path(),
        crate::config::NodeRole::Hub,
        "127.0.0.1:0".parse()?,
        0,
    )
    .await?;
    let n = opts.keys.max(1);
    let started = Instant::now();
    const BATCH: usize = 50_000;
    for from in (0..n).step_by(BATCH) {
        let to = (from + BATCH).min(n);
        hub.store
            .write(move |c| {
                let tx = c.transaction()?;
                {
                    let mut st = tx.prepare(
                        "INSERT INTO sheets (id, doc, form_id, form_version, kokuji, eda, disease,
                            institution, access_key, name_kana, birth_date, sex, status,
                            registration, created_at, updated_at)
                         VALUES (?1, x'00', 'rinko-006', '1', 6, 0, 'パーキンソン病', ?2, ?3,
                            'ベンチ タロウ', ?4, '1', 'registered', 'screen', 0, 0)",
                    )?;
                    for i in from..to {
                        st.execute(params![
                            format!("00000000-0000-4000-8000-{i:012}"),
                            format!("13990{:05}", i % 1000),
                            key_of(i).digits(),
                            birth_of(i),
                        ])?;
                    }
                }
                tx.commit()?;
                Ok::<_, crate::Error>(())
            })
            .await?;
    }
    let fill_s = started.elapsed().as_secs_f64();
    let mut p50s = Vec::new();
    let mut p99s = Vec::new();
    let mut rng_state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = || {
        rng_state ^= rng_state << 13;
        rng_state ^= rng_state >> 7;
        rng_state ^= rng_state << 17;
        rng_state as usize
    };
    for run in 0..=opts.runs {
        let mut times = Vec::with_capacity(LOOKUPS);
        let mut found = 0usize;
        for j in 0..LOOKUPS {
            let i = next() % n;
            let (key, birth) = if j % 2 == 0 {
                (key_of(i), birth_of(i))
            } else {
                // A guess: a real key with a wrong birth date, or a key never issued.
                if j % 4 == 1 {
                    (key_of(i), birth_of(i + 1))
                } else {
                    (
                        AccessKey::new(99_999, (i % BLOCK_SIZE as usize) as u32),
                        birth_of(i),
                    )
                }
            };
            let t = Instant::now();
            let answer = find_sheet(&hub, key.digits(), &birth).await?;
            times.push(t.elapsed().as_secs_f64() * 1000.0);
            found += usize::from(answer.is_some());
        }
        if found < LOOKUPS / 2 {
            anyhow::bail!("only {found} of {} issued keys resolved", LOOKUPS / 2);
        }
        if run == 0 {
            continue; // warm-up
        }
        times.sort_by(f64::total_cmp);
        p50s.push(percentile(&times, 0.50));
        p99s.push(percentile(&times, 0.99));
    }
    let label = format!("review ({n} keys)");
    Ok(vec![
        Figure::from_runs(&label, "hub lookup p50", "ms", &p50s),
        Figure::from_runs(&label, "hub lookup p99", "ms", &p99s),
        Figure::from_runs(
            &label,
            "equal-time floor (added to every answer)",
            "ms",
            &[RESOLUTION_FLOOR.as_secs_f64() * 1000.0],
        ),
        Figure::from_runs(&label, "filling the hub", "s", &[fill_s]),
    ])
}
