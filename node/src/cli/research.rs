//! `nsdb research export|stats|rotate-secret`: the hub's research output from the command line.
//! Parses nothing itself (clap does, in `cli::mod`) and holds no logic beyond opening the node
//! and printing what `research` did. Never prints a value of a sheet.

use std::path::{Path, PathBuf};

use clap::Subcommand;

use crate::research::export::Formats;
use crate::research::stats::{self, Dim, Filter};

#[derive(Subcommand)]
pub enum ResearchCommand {
    /// Writes every consented sheet, de-identified, as Parquet and CSV in year=/disease=
    /// folders with a data dictionary and a manifest (k-anonymity figure included).
    Export {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// A new or empty folder.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Parquet only (no CSV).
        #[arg(long)]
        parquet_only: bool,
    },
    /// Counts every consented sheet by year, disease, prefecture, age band, sex and severity
    /// for the ministry's page; with --out, also writes the published (suppressed) tables as CSV.
    Stats {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
    /// Replaces the pseudonym secret: exports made afterwards no longer link to earlier ones.
    RotateSecret {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// Required: rotating breaks the link between old and new exports.
        #[arg(long)]
        yes: bool,
    },
}

/// The hub's node: a data directory holding no node is refused (only `nsdb init` makes one),
/// and so is a node of another role (`Node::open`).
async fn open(config: &Path, command: &'static str) -> anyhow::Result<std::sync::Arc<crate::Node>> {
    super::open_existing(config, command)
}

pub async fn run(command: ResearchCommand) -> anyhow::Result<()> {
    match command {
        ResearchCommand::Export {
            config,
            out,
            parquet_only,
        } => {
            let node = open(&config, "research export").await?;
            let started = std::time::Instant::now();
            let s = node
                .research_export(
                    out.clone(),
                    Formats {
                        parquet: true,
                        csv: !parquet_only,
                    },
                )
                .await?;
            println!(
                "研究用データを {} に出力しました: {} 件（同意なし {} 件を除外）、ファイル {} 個、{:.1} 秒",
                out.display(),
                s.counts.kept,
                s.counts.without_consent,
                s.files.len(),
                started.elapsed().as_secs_f64()
            );
            println!(
                "k-匿名性（年齢階級・性別・都道府県・疾病）: k = {}（{} 群、5 未満の群に {} 件）",
                s.k_anonymity.k, s.k_anonymity.groups, s.k_anonymity.below_k5
            );
            Ok(())
        }
        ResearchCommand::Stats { config, out } => {
            let node = open(&config, "research stats").await?;
            let (counts, cells) = node.research_build_stats().await?;
            println!(
                "集計しました: 同意ありの個票 {} 件（同意なし {} 件を除外）、{} セル",
                counts.kept, counts.without_consent, cells
            );
            if let Some(out) = out {
                write_tables(&node, &out).await?;
                println!(
                    "公表用の表（秘匿処理済み）を {} に書きました",
                    out.display()
                );
            }
            Ok(())
        }
        ResearchCommand::RotateSecret { config, yes } => {
            if !yes {
                anyhow::bail!(
                    "秘密鍵を替えると、これまでの出力と以後の出力とで患者の仮名IDがつながらなくなります。よければ --yes を付けて実行してください。"
                );
            }
            let node = open(&config, "research rotate-secret").await?;
            let since = node.research_rotate_secret().await?;
            println!("仮名化の秘密鍵を新しくしました（{since} ms から有効）");
            Ok(())
        }
    }
}

/// The published tables per year: disease by prefecture, age band, sex and severity.
async fn write_tables(node: &crate::Node, out: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(out)?;
    let counts = node
        .store
        .read(|c| Ok::<_, crate::Error>(stats::load(c, &Filter::default())?))
        .await?;
    let years: std::collections::BTreeSet<i32> = counts.iter().map(|(k, _)| k.year).collect();
    for year in years {
        let of_year: Vec<_> = counts
            .iter()
            .filter(|(k, _)| k.year == year)
            .cloned()
            .collect();
        for cols in [Dim::Prefecture, Dim::AgeBand, Dim::Sex, Dim::Severity] {
            let p = stats::suppress(&stats::table(&of_year, Dim::Disease, cols));
            let path = out.join(format!("{year}_disease_by_{}.csv", cols.name()));
            std::fs::write(&path, p.csv(Dim::Disease.label()))?;
        }
    }
    Ok(())
}
