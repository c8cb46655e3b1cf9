//! `nsdb bench review` (second part): the 審査会 batch masked print — the reviewer's selection of N
//! sheets (default 100) read, authorised and audited (one entry per sheet), judged, and drawn
//! into one masked PDF — on a node in a temporary directory. Target: 100 sheets in under 10 s.
//!
//! The sheets are the demo's fictitious ones, resolved for the node's own reviewer; nothing is
//! written outside the temporary directory.

use std::time::Instant;

use super::Figure;
use crate::accounts::policy::UserKind;
use crate::accounts::{NewUser, create_user, hash_password};
use crate::cli::demo;
use crate::config::NodeRole;

/// Options of the review-print scenario.
#[derive(Debug, Clone, Copy)]
pub struct ReviewPrintBench {
    /// Sheets per print.
    pub sheets: usize,
    pub runs: usize,
}

/// Runs the scenario.
pub async fn review_print(opts: ReviewPrintBench) -> anyhow::Result<Vec<Figure>> {
    let dir = tempfile::tempdir()?;
    let n = opts.sheets.max(1);
    let node = demo::open_node(dir.path(), NodeRole::Hospital, "127.0.0.1:0".parse()?, n).await?;
    let hash = hash_password(demo::DEMO_PASSWORD)?;
    let (code, now) = (node.config.institution.code.clone(), node.clock.now_ms());
    let ids = node.sheet_ids().await?;
    let resolved = ids.clone();
    node.store
        .write(move |c| {
            let tx = c.transaction()?;
            let user = create_user(
                &tx,
                &NewUser {
                    login: "bench-reviewer",
                    name: "審査 計測",
                    kind: UserKind::Reviewer,
                    institution: &code,
                    department: None,
                    password_hash: &hash,
                },
                now,
            )?;
            for (i, id) in resolved.iter().enumerate() {
                tx.execute(
                    "INSERT INTO resolutions (sheet_id, access_key, user_id, resolved_at)
                     VALUES (?1, ?2, ?3, ?4)",
                    rusqlite::params![id, format!("{i:011}"), user as i64, now],
                )?;
            }
            tx.commit()?;
            Ok::<_, crate::Error>(())
        })
        .await?;
    let reviewer = node
        .login("bench-reviewer", demo::DEMO_PASSWORD)
        .await?
        .principal;
    let selection: Vec<String> = ids.into_iter().take(n).collect();
    let (mut secs, mut bytes) = (Vec::new(), Vec::new());
    for run in 0..=opts.runs {
        let started = Instant::now();
        let sheets = node.review_print_sheets(&reviewer, &selection).await?;
        let (catalogue, version) = (node.catalogue.clone(), node.catalogue.version().to_string());
        let pdf = tokio::task::spawn_blocking(move || {
            crate::http::ui::review::review_board_pdf(&catalogue, &sheets, "計測", Some(&version))
        })
        .await??;
        if run > 0 {
            secs.push(started.elapsed().as_secs_f64());
            bytes.push(pdf.len() as f64 / 1_048_576.0);
        }
    }
    let bench = format!("review-print ({} sheets)", selection.len());
    Ok(vec![
        Figure::from_runs(&bench, "time to print", "s", &secs),
        Figure::from_runs(&bench, "PDF size", "MiB", &bytes),
    ])
}
