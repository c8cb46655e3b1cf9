//! The command line: `nsdb serve`, and the commands that do not serve (demo, user, provision,
//! bench, rules). It parses arguments and calls the domain and the tools; it holds no business
//! logic of its own, and nothing below it (domain, http, store) may import it, except test support
//! and the benchmarks, which live here because only the command line runs them.
//!
//! `demo` starts the three roles on loopback with demo data (`demo`, `seed`); `bench` measures
//! (`bench`, `bench::sync`); `rules` serves the form catalogue's commands; `xml` the XML
//! layout's schemas and samples; `check` the hospital-side check tool and the key information.

pub mod bench;
pub mod check;
pub mod demo;
pub mod ops;
pub mod research;
pub mod rules;
pub mod seed;
pub mod serve;
pub mod terminal;
pub mod xml;

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
pub struct Cli {
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
    /// Sets up a new node from its configuration: creates the data directory (mode 700), the
    /// node's identity and its encrypted database with the institution. `nsdb serve` never
    /// creates a node; run this once, then `nsdb user add`.
    Init {
        /// The node's TOML configuration.
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
    /// Manages the users of a node.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Keys and enrollment for sync: set up the hub, enroll nodes, revoke them.
    Provision {
        #[command(subcommand)]
        action: Provision,
    },
    /// Measures a scenario: medians and min–max over several runs after a warm-up.
    Bench {
        /// The scenario: store (sheets saved and loaded per second, encrypted vs plain SQLite);
        /// ui (server time of the editor, saving and the list at 100,000 sheets); rules (sheets
        /// per second through check, calculation and judgment on one core); sync (initial,
        /// incremental and idle sync over QUIC on loopback); check (XML files per second through
        /// read + check + seal on all cores, and through upload + verify + import on a node);
        /// review (access-key resolution latency at the hub with --keys issued keys, and the
        /// 審査会 batch masked print of --sheets sheets, default 100).
        /// research (export of consented sheets to Parquet/CSV with peak memory, statistics,
        /// DuckDB reading the result; default 100000 sheets).
        /// crash (a writer saves through the API while the node, its own process, is killed
        /// with SIGKILL at a random moment; acknowledged saves lost and damaged databases,
        /// over --trials kills).
        /// load (--users signed-in doctors, default 200, each acting every 2 s for --seconds,
        /// default 60, over HTTP against the node as its own process: p50/p99 and errors per
        /// action, then the saturation rate where p99 passes 500 ms).
        #[arg(value_parser = clap::builder::PossibleValuesParser::new(crate::cli::bench::SCENARIOS))]
        scenario: String,
        /// Print one JSON object per figure and line.
        #[arg(long)]
        json: bool,
        /// Measured runs after the warm-up.
        #[arg(long, default_value_t = 5)]
        runs: usize,
        /// Sheets: per run (store, default 2000), in the list (ui, default 100000), per form
        /// (rules, default 2000) or files per run (check, default 10000).
        #[arg(long)]
        sheets: Option<usize>,
        /// Issued keys at the hub (review, default 1000000).
        #[arg(long)]
        keys: Option<usize>,
        /// Kills of the node (crash, default 1000).
        #[arg(long)]
        trials: Option<usize>,
        /// Signed-in users (load, default 200).
        #[arg(long)]
        users: Option<usize>,
        /// How long the day's mix runs, in seconds (load, default 60).
        #[arg(long)]
        seconds: Option<u64>,
        /// Skip the saturation steps (load).
        #[arg(long)]
        no_saturation: bool,
    },
    /// Takes an online, encrypted backup of the node's database (users, sheets, workflow
    /// history, audit log) into a new directory, with a manifest and checksum.
    Backup {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// The backup directory to create (must be new or empty).
        #[arg(value_name = "DIR")]
        dest: PathBuf,
    },
    /// Verifies a backup (checksum, integrity, audit chain, this node's) and puts it in place of
    /// the node's database. The node must be stopped.
    Restore {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// A directory written by `nsdb backup`.
        #[arg(value_name = "DIR")]
        backup: PathBuf,
        /// Verify only; replace nothing.
        #[arg(long)]
        verify_only: bool,
        /// The key file the backup was taken with, when the node's key was changed since
        /// (`nsdb rekey` keeps each key it replaces as <key_file>.old-<fingerprint>; the refusal
        /// names the one needed): the database is re-encrypted to the node's key.
        #[arg(long, value_name = "OLD_KEY_FILE")]
        key_file: Option<PathBuf>,
        /// Replace the database even when it holds sheets the hub never acknowledged (listed
        /// before; their changes are lost). Without it, a terminal asks to type RESTORE.
        #[arg(long)]
        yes: bool,
    },
    /// Changes the database key to a new random key (the node must be stopped); the old key is
    /// kept for good as <key_file>.old-<fingerprint> for older backups.
    Rekey {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// Only finish or undo an interrupted rekey.
        #[arg(long)]
        recover: bool,
    },
    /// The audit log: `verify` walks its hash chain and signed checkpoints.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// The configuration file: `reference` prints every key with its type and meaning
    /// (Markdown, as in docs/operations.md).
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Checks the installation (key file, data directory, disk, clock, database, enrollment,
    /// rule pack) and says what to fix.
    Doctor {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
    /// The form catalogue: list forms, lint them, check a sheet, create the ministry key, sign a
    /// pack.
    Rules {
        #[command(subcommand)]
        command: RulesCommand,
    },
    /// The XML layout hospital systems write sheets in: schemas (XSD) and samples per form.
    Xml {
        #[command(subcommand)]
        command: XmlCommand,
    },
    /// Research output at the hub (M19): de-identified exports of consented sheets, national
    /// statistics, the pseudonym secret.
    Research {
        #[command(subcommand)]
        command: research::ResearchCommand,
    },
    /// The check tool: checks XML files as the screen does, writes the error list (CSV, JSON)
    /// and seals passing sheets for 一括登録. Needs no database and no network. Exit status: 0
    /// all sheets passed, 1 some have errors, 2 the check could not run.
    Check(check::CheckArgs),
    /// The node's key information (鍵情報) for the check tool: issue it, sign it on the hub.
    KeyInfo {
        #[command(subcommand)]
        command: check::KeyInfoCommand,
    },
    /// Terminal certificates (端末証明書) the web listener requires with
    /// `tls.client_certs = "required"`: issue one as a PKCS#12 file, list, revoke.
    Terminal {
        #[command(subcommand)]
        command: terminal::TerminalCommand,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Prints the configuration reference: every key, its type, whether it is required, what it
    /// means.
    Reference,
}

#[derive(Subcommand)]
enum XmlCommand {
    /// Prints a form's XML schema (XSD).
    Schema {
        /// The form id, e.g. rinko-002 (`nsdb xml forms` lists them).
        form: String,
        #[command(flatten)]
        pack: PackArgs,
    },
    /// Prints a sample file of a form, with made-up values that pass its checks.
    Sample {
        form: String,
        #[command(flatten)]
        pack: PackArgs,
    },
    /// Lists the form ids and versions a file may name.
    Forms {
        #[command(flatten)]
        pack: PackArgs,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Adds a user. The password is read from standard input (one line) or NSDB_PASSWORD.
    Add {
        /// The node's TOML configuration.
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// The login id.
        #[arg(long)]
        login: String,
        /// The user's name, as shown on screens (e.g. 鈴木 太郎).
        #[arg(long)]
        name: String,
        /// nanbyo_doctor, kyoryoku_doctor, shoman_doctor, clerk, admin, reviewer or ministry.
        #[arg(long)]
        kind: String,
        /// The user's institution code; default: the node's own institution. On the hub, a
        /// clinic's 医療機関コード gives its doctor or clerk the hospital screens for that clinic.
        #[arg(long)]
        institution: Option<String>,
        /// The name of that institution (e.g. a clinic's 医療機関名), as its sheets show it.
        #[arg(long, requires = "institution")]
        institution_name: Option<String>,
        /// The department (診療科), if any.
        #[arg(long)]
        department: Option<String>,
        /// The doctor's 指定医番号, prefilled into every sheet they start (doctor kinds only;
        /// otherwise the number the doctor first types on a sheet is kept).
        #[arg(long, value_name = "NUMBER")]
        doctor_number: Option<String>,
        /// Let the user keep this password. Without it, the user can do nothing after signing
        /// in but change it (パスワード変更), since the operator knows it.
        #[arg(long)]
        no_change_required: bool,
    },
    /// Removes a user's second factor (2段階認証), e.g. after a lost phone: they sign in with
    /// the password and, when their kind requires it, enrol again at once. Audited `totp_reset`.
    ResetTotp {
        /// The node's TOML configuration.
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// The user's login id.
        login: String,
    },
    /// Registers a user's check-tool key, so the node accepts the sealed files the user signs:
    /// writes a new key file (mode 600) to carry to the check tool's machine, or registers the
    /// public key of one made elsewhere. A new key replaces the user's old one.
    Key {
        /// The node's TOML configuration.
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// The user's login id.
        #[arg(long)]
        login: String,
        /// Create the key file here.
        #[arg(
            long,
            value_name = "FILE",
            conflicts_with = "public_key",
            required_unless_present = "public_key"
        )]
        out: Option<PathBuf>,
        /// Register this public key (64 hexadecimal characters) instead.
        #[arg(long, value_name = "HEX")]
        public_key: Option<String>,
    },
}

#[derive(Subcommand)]
enum RulesCommand {
    /// Lists the forms and the rule pack's version.
    List {
        #[command(flatten)]
        pack: PackArgs,
        #[arg(long)]
        json: bool,
        /// Only the forms with machine judgment, and the share of 指定難病 recipients they cover.
        #[arg(long)]
        judged: bool,
    },
    /// Lints form files: undefined items, unreachable judgments, scales cited but unused,
    /// messages that name no item, missing sources. Exits 1 when there is any finding.
    Lint {
        /// A directory of form files; default: the forms built into nsdb.
        #[arg(long, value_name = "DIR")]
        forms: Option<PathBuf>,
    },
    /// Checks, calculates and judges one sheet (a JSON object of item id → value); prints JSON.
    Check {
        /// The form id, e.g. rinko-006.
        form: String,
        /// The sheet file.
        sheet: PathBuf,
        #[command(flatten)]
        pack: PackArgs,
        /// "Today" for date checks (YYYY-MM-DD); default: today in Japan.
        #[arg(long, value_name = "DATE")]
        today: Option<String>,
    },
    /// Creates the ministry's rule-pack signing key (mode 600) and prints its public key.
    Keygen {
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Signs form files into a versioned rule pack.
    Pack {
        /// The ministry's signing key (from `nsdb rules keygen`).
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        /// The pack's version, shown on screen and written into files.
        #[arg(long)]
        version: String,
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// A directory of form files; default: the forms built into nsdb.
        #[arg(long, value_name = "DIR")]
        forms: Option<PathBuf>,
    },
}

/// A signed pack to use instead of the built-in forms.
#[derive(clap::Args)]
struct PackArgs {
    /// A rule pack file.
    #[arg(long, value_name = "FILE")]
    pack: Option<PathBuf>,
    /// The ministry's public key (64 hexadecimal characters) the pack must be signed with.
    #[arg(long, value_name = "HEX")]
    ministry_key: Option<String>,
}

impl PackArgs {
    fn catalogue(&self) -> anyhow::Result<nsdb_rules::Catalogue> {
        rules::catalogue(self.pack.as_deref(), self.ministry_key.as_deref())
    }
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
        /// Enrol a key this hub revoked, again: only when the revocation was a mistake and the
        /// key never left its node (without it, a revoked key is refused).
        #[arg(long)]
        reinstate: bool,
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
            existing_data_dir(&data)?;
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
            reinstate,
        } => {
            // A hospital's jurisdiction is its 医療機関コード: a mistyped one would match no
            // node's institution.code and send it nothing.
            let jurisdiction = if role == "hospital" {
                crate::institution::InstitutionCode::parse(&jurisdiction)
                    .map_err(|e| anyhow::anyhow!("--jurisdiction: {e}"))?
                    .to_string()
            } else {
                jurisdiction
            };
            if reinstate {
                enrollment::reinstate(&data, &node_key)?;
            }
            let e = enrollment::issue(&data, &node_key, &role, &jurisdiction, &name, hub_address)?;
            enrollment::write_enrollment(&out, &e)?;
            println!("enrolled {name}; carry {} to the node", out.display());
        }
        Provision::Enroll {
            data,
            enrollment: file,
        } => {
            existing_data_dir(&data)?;
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

/// Refuses a node's data directory that does not exist: a mistyped `--data` would otherwise get
/// a brand-new identity whose key the operator carries to the hub. Only `nsdb init` sets a node
/// up.
fn existing_data_dir(data: &std::path::Path) -> anyhow::Result<()> {
    if !data.is_dir() {
        anyhow::bail!(
            "the data directory {} does not exist (nothing was created): for a new node run nsdb init --config FILE first (it creates the data directory and the node's identity), or check the path (the data_dir of the node's configuration)",
            data.display()
        );
    }
    Ok(())
}

fn hex_key(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What `nsdb --version` prints after the name: the package version, the schema version this
/// binary migrates a database to ([`crate::store::schema_version`], the number of migrations)
/// and the git commit it was built from ("unknown" when built outside a git checkout), e.g.
/// `0.1.0 (schema 23, commit 5891805)`. Two builds of one package version differ here.
pub fn version_line() -> String {
    format!(
        "{} (schema {}, commit {})",
        env!("CARGO_PKG_VERSION"),
        crate::store::schema_version(),
        env!("NSDB_COMMIT")
    )
}

/// Runs the command line: parses the arguments, runs the command, and says what failed.
pub fn main() -> ExitCode {
    // By default: warnings, and the node's own notices (serving, migrated, stopped, the first
    // failure of a sync outage); one line per request only with NSDB_LOG=info.
    let filter = tracing_subscriber::EnvFilter::try_from_env("NSDB_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,nsdb=info,nsdb::http=warn"));
    // Colours only on a terminal: a log file or journald gets plain text.
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    // NSDB_LOG_FORMAT=json: one JSON object per line, for a log collector.
    if std::env::var("NSDB_LOG_FORMAT").is_ok_and(|f| f == "json") {
        logs.json().init();
    } else {
        logs.init();
    }
    // `nsdb --version` tells builds apart: the schema they migrate to and their commit.
    let version: &'static str = Box::leak(version_line().into_boxed_str());
    let parsed = <Cli as clap::CommandFactory>::command()
        .version(version)
        .try_get_matches()
        .and_then(|m| <Cli as clap::FromArgMatches>::from_arg_matches(&m));
    let cli = match parsed {
        Ok(cli) => cli,
        Err(e) => {
            if e.use_stderr() {
                let args: Vec<String> = std::env::args().collect();
                // clap's words up to its usage line: what is wrong and with which argument.
                let message = e.to_string();
                let said: Vec<&str> = message
                    .lines()
                    .map(str::trim)
                    .take_while(|l| !l.is_empty() && !l.starts_with("Usage:"))
                    .collect();
                let said = said.join(" ");
                check::arguments_refused(
                    &args,
                    &format!(
                        "コマンドラインを読めません（{}）",
                        said.trim_start_matches("error: ")
                    ),
                );
            }
            e.exit()
        }
    };
    // A command whose output is piped into `head` ends quietly when the pipe closes, as
    // command-line tools do; the serving commands keep ignoring SIGPIPE (a closed socket must
    // never stop a node).
    if !matches!(cli.command, Command::Serve { .. } | Command::Demo { .. }) {
        // SAFETY: restoring the default disposition of one signal before any thread starts.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    // The check tool runs without the async runtime and has its own exit status.
    let command = match cli.command {
        Command::Check(args) => return check::run(args),
        other => other,
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("nsdb: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("nsdb: {}", error_text(&e));
            ExitCode::FAILURE
        }
    }
}

/// Opens the node an operator's command (`command`, named in the refusal) works on: refuses a
/// data directory that holds no node ([`crate::ops::guard::require_node`]), so that a typo in
/// `data_dir` never creates a new, empty node; only `nsdb init` sets one up.
pub(crate) fn open_existing(
    file: &std::path::Path,
    command: &'static str,
) -> anyhow::Result<std::sync::Arc<crate::Node>> {
    let config = crate::NodeConfig::from_file(file)?;
    crate::ops::guard::require_node(&config, file, command)?;
    crate::Node::open(config, crate::Clock::System)
}

/// An error with its causes, each said once: a cause already in the text before it (a message
/// that quotes its source) is not repeated.
fn error_text(e: &anyhow::Error) -> String {
    let mut text = e.to_string();
    for cause in e.chain().skip(1) {
        let said = cause.to_string();
        if !text.contains(&said) {
            text.push_str(": ");
            text.push_str(&said);
        }
    }
    text
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve { config } => {
            let file = config;
            let config = crate::NodeConfig::from_file(&file)?;
            // A public address without TLS is refused first, whatever the data directory holds.
            crate::ops::tls::check_listen(config.listen, config.tls.as_ref())?;
            crate::ops::guard::require_node(&config, &file, "serve")?;
            serve::serve(config).await
        }
        Command::Init { config } => serve::init(&config).await,
        Command::Demo {
            data,
            port_base,
            bind,
        } => {
            crate::cli::demo::run(crate::cli::demo::DemoOptions {
                data,
                bind,
                port_base,
            })
            .await
        }
        Command::User {
            command:
                UserCommand::Add {
                    config,
                    login,
                    name,
                    kind,
                    institution,
                    institution_name,
                    department,
                    doctor_number,
                    no_change_required,
                },
        } => {
            let kind = crate::accounts::policy::UserKind::parse(&kind).ok_or_else(|| {
                anyhow::anyhow!(
                    "--kind: ユーザ種別「{kind}」はありません。次のいずれかを指定してください: {}",
                    crate::accounts::policy::UserKind::ALL
                        .map(|k| format!("{}（{}）", k.as_str(), k.label()))
                        .join("、")
                )
            })?;
            let password = match std::env::var("NSDB_PASSWORD") {
                Ok(p) => p,
                Err(_) => {
                    eprintln!("{login} のパスワードを入力してください（標準入力に1行）:");
                    let mut line = String::new();
                    std::io::stdin().read_line(&mut line)?;
                    line.trim_end_matches(['\r', '\n']).to_string()
                }
            };
            let file = config;
            let config = crate::NodeConfig::from_file(&file)?;
            // Only nsdb init sets a node up: a fresh config is refused, saying so.
            crate::ops::guard::require_node(&config, &file, "user add")?;
            // On the hub a clinic, on a hospital node a hospital: a 医療機関コード, checked.
            let institution = match institution {
                Some(code) if config.role != crate::NodeRole::Municipality => Some(
                    crate::institution::InstitutionCode::parse(&code)
                        .map_err(|e| anyhow::anyhow!("--institution: {e}"))?
                        .to_string(),
                ),
                other => other,
            };
            // What this node's role holds, said with the flag it is about, before the
            // database is opened.
            crate::accounts::check_new_user(
                config.role,
                &config.institution.code,
                &login,
                &name,
                kind,
                institution.as_deref(),
                department.as_deref(),
            )
            .map_err(|e| anyhow::anyhow!("--{}: {e}", e.field()))?;
            let doctor_number = doctor_number
                .map(|n| crate::accounts::check_doctor_number(kind, &n))
                .transpose()
                .map_err(|e| anyhow::anyhow!("--doctor-number: {e}"))?;
            let node = crate::Node::open(config, crate::Clock::System)?;
            if let (Some(code), Some(name)) = (&institution, &institution_name) {
                crate::accounts::name_institution(&node, code, name, "hospital").await?;
            }
            let id = crate::accounts::add_user(
                &node,
                &login,
                &name,
                kind,
                institution.as_deref(),
                department.as_deref(),
                &password,
            )
            .await?;
            if let Some(number) = &doctor_number {
                crate::accounts::set_doctor_number(&node, id, number).await?;
            }
            if !no_change_required {
                node.require_password_change(&login).await?;
            }
            println!(
                "利用者 {login}（id {id}、{}）を登録しました。{}",
                kind.label(),
                if no_change_required {
                    ""
                } else {
                    "最初のログインでパスワードを変更します。"
                }
            );
            Ok(())
        }
        Command::User {
            command: UserCommand::ResetTotp { config, login },
        } => {
            let node = open_existing(&config, "user reset-totp")?;
            if node.reset_totp(None, &login).await? {
                println!("{login} の2段階認証を初期化しました。次のログインで設定し直します。");
            } else {
                println!(
                    "{login} は2段階認証を設定していないため、初期化するものはありませんでした（何も変更していません）。"
                );
            }
            Ok(())
        }
        Command::User {
            command:
                UserCommand::Key {
                    config,
                    login,
                    out,
                    public_key,
                },
        } => {
            let node = open_existing(&config, "user key")?;
            // A new key is registered first and written after, so that a refused login leaves
            // no key file behind.
            let (key, new) = match (&out, &public_key) {
                (_, Some(hex)) => (check::public_key(hex, "--public-key")?, None),
                (Some(out), None) => {
                    if out.exists() {
                        anyhow::bail!(
                            "{} はすでにあります。鍵ファイルは上書きしません。別の名前を指定してください。",
                            out.display()
                        );
                    }
                    let key = nsdb_provisioning::sealed::UserKey::generate()?;
                    (key.public_key(), Some((out, key)))
                }
                (None, None) => anyhow::bail!(
                    "--out FILE（新しい鍵ファイルを作る）か --public-key HEX（他で作った鍵の公開鍵）のどちらかを指定してください。"
                ),
            };
            node.set_user_key(&login, key).await?;
            if let Some((out, key)) = new {
                key.write(out).map_err(|e| {
                    anyhow::anyhow!(
                        "{login} の鍵は登録しましたが {} に書き出せませんでした（{e}）。書き出せる場所を指定してやり直してください（登録し直します）",
                        out.display()
                    )
                })?;
            }
            if let Some(out) = out {
                println!(
                    "{login} のチェックツール用の鍵を {} に書き出し（モード 600）、登録しました。チェックツールを使う端末に移してください。",
                    out.display()
                );
            } else {
                println!("{login} のチェックツール用の鍵（公開鍵）を登録しました。");
            }
            Ok(())
        }
        Command::Provision { action } => provision(action),
        Command::Xml { command } => match command {
            XmlCommand::Schema { form, pack } => xml::schema(&pack.catalogue()?, &form),
            XmlCommand::Sample { form, pack } => xml::sample(&pack.catalogue()?, &form),
            XmlCommand::Forms { pack } => xml::forms(&pack.catalogue()?),
        },
        // Handled in `main`, before the runtime starts; kept here for completeness.
        Command::Check(args) => {
            let _ = check::run(args);
            Ok(())
        }
        Command::KeyInfo { command } => check::key_info(command),
        Command::Bench {
            scenario,
            json,
            runs,
            sheets,
            keys,
            trials,
            users,
            seconds,
            no_saturation,
        } => {
            let sheets_given = sheets.is_some();
            let sheets = sheets.unwrap_or(2000);
            let figures = match scenario.as_str() {
                "rules" => crate::cli::bench::rules(crate::cli::bench::RulesBench {
                    sheets_per_form: sheets,
                    runs: runs.max(1),
                })?,
                "store" => {
                    crate::cli::bench::store(crate::cli::bench::StoreBench {
                        sheets,
                        runs: runs.max(1),
                    })
                    .await?
                }
                "ui" => {
                    crate::cli::bench::ui(crate::cli::bench::UiBench {
                        sheets: if sheets_given { sheets } else { 100_000 },
                        runs: runs.max(1),
                        ..Default::default()
                    })
                    .await?
                }
                "sync" => {
                    crate::cli::bench::sync::sync(crate::cli::bench::sync::SyncBench {
                        sheets,
                        runs: runs.max(1),
                    })
                    .await?
                }
                "check" => {
                    crate::cli::bench::check::check(crate::cli::bench::check::CheckBench {
                        files: if sheets_given { sheets } else { 10_000 },
                        runs: runs.max(1),
                    })
                    .await?
                }
                "review" => {
                    let mut figures =
                        crate::cli::bench::review::review(crate::cli::bench::review::ReviewBench {
                            keys: keys.unwrap_or(1_000_000),
                            runs: runs.max(1),
                        })
                        .await?;
                    figures.extend(
                        crate::cli::bench::review_print::review_print(
                            crate::cli::bench::review_print::ReviewPrintBench {
                                sheets: if sheets_given { sheets } else { 100 },
                                runs: runs.max(1),
                            },
                        )
                        .await?,
                    );
                    figures
                }
                "research" => {
                    crate::cli::bench::research::research(
                        crate::cli::bench::research::ResearchBench {
                            sheets: if sheets_given { sheets } else { 100_000 },
                            runs: runs.max(1),
                        },
                    )
                    .await?
                }
                "crash" => {
                    crate::cli::bench::crash::crash(crate::cli::bench::crash::CrashBench {
                        trials: trials.unwrap_or(1000),
                    })
                    .await?
                }
                "load" => {
                    crate::cli::bench::load::load(crate::cli::bench::load::LoadBench {
                        users: users.unwrap_or(200),
                        sheets: if sheets_given { sheets } else { 10_000 },
                        seconds: seconds.unwrap_or(60),
                        saturation: !no_saturation,
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
        Command::Rules { command } => rules_command(command),
        Command::Research { command } => research::run(command).await,
        Command::Backup { config, dest } => ops::backup(&config, &dest),
        Command::Restore {
            config,
            backup,
            verify_only,
            key_file,
            yes,
        } => ops::restore(&config, &backup, verify_only, key_file.as_deref(), yes),
        Command::Rekey { config, recover } => ops::rekey(&config, recover),
        Command::Doctor { config } => ops::doctor(&config),
        Command::Config {
            command: ConfigCommand::Reference,
        } => {
            print!("{}", crate::config::reference());
            Ok(())
        }
        Command::Audit {
            command: AuditCommand::Verify { config },
        } => ops::audit_verify(&config),
        Command::Terminal { command } => terminal::run(command).await,
    }
}

/// `nsdb audit …`.
#[derive(Debug, clap::Subcommand)]
pub enum AuditCommand {
    /// Reports "intact" or the first tampered entry (by seq), including a chain rewritten end to
    /// end after a signed checkpoint.
    Verify {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
}

fn rules_command(command: RulesCommand) -> anyhow::Result<()> {
    match command {
        RulesCommand::List { pack, json, judged } => rules::list(
            &rules::catalogue(pack.pack.as_deref(), pack.ministry_key.as_deref())?,
            json,
            judged,
        ),
        RulesCommand::Lint { forms } => rules::lint(forms.as_ref()),
        RulesCommand::Check {
            form,
            sheet,
            pack,
            today,
        } => {
            let today = match today {
                Some(t) => nsdb_rules::Date::parse(&t)
                    .ok_or_else(|| anyhow::anyhow!("--today {t:?} is not YYYY-MM-DD"))?,
                None => crate::Clock::System.today_jst(),
            };
            let cat = rules::catalogue(pack.pack.as_deref(), pack.ministry_key.as_deref())?;
            rules::check(&cat, &form, &sheet, today)
        }
        RulesCommand::Keygen { out } => rules::keygen(&out),
        RulesCommand::Pack {
            key,
            version,
            out,
            forms,
        } => rules::pack(&key, &version, &out, forms.as_ref()),
    }
}
