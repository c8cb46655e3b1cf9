//! `nsdb terminal issue|list|revoke`: the node's terminal certificates for the IT staff, as the
//! 責任者's 端末証明書 screen offers them (`ops::terminals`). It only parses, calls and prints;
//! the one-time password of an issued file is printed once and never logged.

use std::path::PathBuf;

/// `nsdb terminal …`.
#[derive(Debug, clap::Subcommand)]
pub enum TerminalCommand {
    /// Issues a terminal certificate for a named terminal (valid 365 days) and writes its
    /// PKCS#12 file (mode 600); prints the file's one-time import password once.
    Issue {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// 端末名, e.g. 外来3番.
        #[arg(long)]
        name: String,
        /// Where to write the PKCS#12 file (.p12); must not exist.
        #[arg(long, value_name = "FILE.p12")]
        out: PathBuf,
    },
    /// Lists every terminal certificate of the node: serial, 端末名, issued, expires, state.
    List {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Revokes a terminal certificate by its serial: a serving node refuses it within a minute
    /// (a revocation from the 責任者's screen takes effect at once).
    Revoke {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// The serial `nsdb terminal list` shows.
        serial: String,
    },
}

fn day(unix_s: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(unix_s)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
        .to_offset(time::macros::offset!(+9));
    format!("{:04}-{:02}-{:02}", t.year(), t.month() as u8, t.day())
}

pub async fn run(command: TerminalCommand) -> anyhow::Result<()> {
    match command {
        TerminalCommand::Issue { config, name, out } => {
            if out.exists() {
                anyhow::bail!(
                    "{} はすでにあります。証明書ファイルは上書きしません。別の名前を指定してください。",
                    out.display()
                );
            }
            let node = super::open_existing(&config, "terminal issue")?;
            let issued = node.issue_terminal_cert(None, &name).await?;
            write_private(&out, &issued.p12).map_err(|e| {
                anyhow::anyhow!(
                    "端末証明書（シリアル {}）は発行しましたが {} に書き出せませんでした（{e}）。nsdb terminal revoke で失効させ、書き出せる場所を指定して発行し直してください",
                    issued.row.serial,
                    out.display()
                )
            })?;
            println!(
                "端末「{}」の端末証明書（シリアル {}、有効期限 {}）を {} に書き出しました（モード 600）。",
                issued.row.name,
                issued.row.serial,
                day(issued.row.not_after),
                out.display()
            );
            println!(
                "取り込み用パスワード（一度だけ表示します）: {}",
                issued.password
            );
            Ok(())
        }
        TerminalCommand::List { config } => {
            let node = super::open_existing(&config, "terminal list")?;
            let rows = node.terminal_certs(None).await?;
            let now = node.clock.now_ms();
            if rows.is_empty() {
                println!("端末証明書はまだ発行していません。");
            }
            for r in rows {
                println!(
                    "{}\t{}\t発行 {}\t有効期限 {}\t{}",
                    r.serial,
                    r.name,
                    day(r.issued_at / 1000),
                    day(r.not_after),
                    r.state(now)
                );
            }
            Ok(())
        }
        TerminalCommand::Revoke { config, serial } => {
            let node = super::open_existing(&config, "terminal revoke")?;
            let row = node.revoke_terminal_cert(None, &serial).await?;
            println!(
                "端末「{}」の端末証明書（シリアル {}）を失効させました。動いているノードは1分以内にこの証明書での接続を拒否します。",
                row.name, row.serial
            );
            Ok(())
        }
    }
}

/// Writes `bytes` to a new file readable by its owner only.
fn write_private(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}
