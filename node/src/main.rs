//! The `nsdb` command: run a node, the demo, or a benchmark.

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "nsdb",
    version,
    about = "nsdb: the 難病・小慢 database appliance (hospital, municipality and hub nodes)",
    long_about = "nsdb runs one node of the 難病・小慢 database: a hospital's appliance, a \
municipality's node or the ministry's hub, each with its own encrypted database and web UI.\n\n\
Start with `nsdb demo`: it runs all three on this machine with demo users and data."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs one node from its configuration file.
    Serve {
        /// The node's TOML configuration (name, role, listen, data_dir, key_file, institution).
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Runs a hub, a hospital and a municipality node on loopback with demo users and data.
    Demo {
        /// Keep the nodes' data here (reused on the next start); default: a fresh temporary
        /// directory removed on exit.
        #[arg(long, value_name = "DIR")]
        data: Option<PathBuf>,
        /// The first of three consecutive ports (hub, hospital, municipality).
        #[arg(long, value_name = "N", default_value_t = 8440)]
        port_base: u16,
        /// The loopback address to listen on; demo mode refuses any other.
        #[arg(long, value_name = "IP", default_value = "127.0.0.1")]
        bind: IpAddr,
    },
    /// Keys and enrollment for sync: set up the hub, enroll nodes, revoke them.
    Provision {
        #[command(subcommand)]
        action: Provision,
    },
    /// Measures a scenario: medians and min–max over several runs after a warm-up.
    Bench {
        /// The scenario: store (sheets saved and loaded per second, encrypted vs plain SQLite).
        #[arg(value_parser = clap::builder::PossibleValuesParser::new(nsdb::bench::SCENARIOS))]
        scenario: String,
        /// Print one JSON object per figure and line.
        #[arg(long)]
        json: bool,
        /// Measured runs after the warm-up.
        #[arg(long, default_value_t = 5)]
        runs: usize,
        /// Sheets per run (store).
        #[arg(long, default_value_t = 2000)]
        sheets: usize,
    },
}

#[derive(Subcommand)]
enum Provision {
    /// On the hub: creates its identity (if missing) and sets where sync listens; prints the
    /// hub's public key.
    HubInit {
        /// The hub's data directory (the `data_dir` of its configuration).
        #[arg(long, value_name = "DIR")]
        data: PathBuf,
        /// UDP address the hub's sync endpoint listens on.
        #[arg(long, value_name = "ADDR", default_value = "0.0.0.0:7443")]
        listen: std::net::SocketAddr,
    },
    /// On a node: creates its identity (if missing) and prints its public key, to give to the
    /// hub's operator.
    NodeKey {
        #[arg(long, value_name = "DIR")]
        data: PathBuf,
    },
    /// On the hub: enrolls a node's key with its role and jurisdiction and writes the signed
    /// enrollment file to carry to the node.
    Issue {
        /// The hub's data directory.
        #[arg(long, value_name = "DIR")]
        data: PathBuf,
        /// The node's public key (from `nsdb provision node-key`).
        #[arg(long, value_name = "HEX")]
        node_key: String,
        /// hospital or municipality.
        #[arg(long)]
        role: String,
        /// 医療機関コード of a hospital, 自治体コード of a municipality.
        #[arg(long, value_name = "CODE")]
        jurisdiction: String,
        #[arg(long)]
        name: String,
        /// Where the node reaches the hub (default: the hub's listen address).
        #[arg(long, value_name = "ADDR")]
        hub_address: Option<std::net::SocketAddr>,
        /// The enrollment file to write.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// On a node: checks an enrollment file from the hub and keeps it; the node syncs with the
    /// hub from its next start.
    Enroll {
        #[arg(long, value_name = "DIR")]
        data: PathBuf,
        #[arg(long, value_name = "FILE")]
        enrollment: PathBuf,
    },
    /// On the hub: revokes a node's key; the hub refuses it from its next handshake on.
    Revoke {
        #[arg(long, value_name = "DIR")]
        data: PathBuf,
        #[arg(long, value_name = "HEX")]
        node_key: String,
    },
}

fn provision(action: Provision) -> anyhow::Result<()> {
    use nsdb_provisioning::enrollment;
    match action {
        Provision::HubInit { data, listen } => {
            let key = enrollment::init_hub(&data, listen)?;
            println!("hub public key: {}", hex_key(key.as_bytes()));
            println!("sync listens on {listen} (UDP)");
        }
        Provision::NodeKey { data } => {
            let id = enrollment::identity(&data)?;
            println!("{}", hex_key(id.public_key().as_bytes()));
        }
        Provision::Issue {
            data,
            node_key,
            role,
            jurisdiction,
            name,
            hub_address,
            out,
        } => {
            let e = enrollment::issue(&data, &node_key, &role, &jurisdiction, &name, hub_address)?;
            enrollment::write_enrollment(&out, &e)?;
            println!("enrolled {name}; carry {} to the node", out.display());
        }
        Provision::Enroll {
            data,
            enrollment: file,
        } => {
            let e = enrollment::read_enrollment(&file)?;
            enrollment::accept(&data, &e)?;
            println!(
                "enrolled with the hub at {} (hub key {}); restart the node to start syncing",
                e.hub_address, e.hub_key
            );
        }
        Provision::Revoke { data, node_key } => {
            enrollment::revoke(&data, &node_key)?;
            println!("revoked; the hub refuses this node from its next connection on");
        }
    }
    Ok(())
}

fn hex_key(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("NSDB_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("nsdb: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("nsdb: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve { config } => nsdb::serve(nsdb::NodeConfig::from_file(&config)?).await,
        Command::Demo {
            data,
            port_base,
            bind,
        } => {
            nsdb::demo::run(nsdb::demo::DemoOptions {
                data,
                bind,
                port_base,
            })
            .await
        }
        Command::Provision { action } => provision(action),
        Command::Bench {
            scenario,
            json,
            runs,
            sheets,
        } => {
            let figures = match scenario.as_str() {
                "store" => {
                    nsdb::bench::store(nsdb::bench::StoreBench {
                        sheets,
                        runs: runs.max(1),
                    })
                    .await?
                }
                "sync" => {
                    nsdb::bench_sync::sync(nsdb::bench_sync::SyncBench {
                        sheets,
                        runs: runs.max(1),
                    })
                    .await?
                }
                other => anyhow::bail!("unknown scenario {other}"),
            };
            for f in figures {
                f.print(json);
            }
            Ok(())
        }
    }
}
