//! The nsdb node: one binary that runs as a hospital's appliance, a municipality's node or the
//! ministry's hub.
//!
//! Modules by capability (docs/architecture.md names each and what it must never do):
//! `cli` parses the command line and runs commands; `http` turns requests into domain calls and
//! renders `nsdb-ui` views or JSON; the domain is `sheets` (with workflow and conflicts),
//! `keys`, `accounts` (with `policy`, the one authorisation check), `audit`, `monitor` (alerts
//! over the audit log), `print`, `imports`
//! (一括登録 of the check tool's sealed files, データ出力 as XML); `sync_service` replicates
//! sheets with the hub; `store` is the encrypted database; `ops` backs it up, restores and
//! rekeys it and refuses a database that is not this node's. Dependencies point down that
//! list: no domain module imports `http` or `cli`, and no two modules import each other.
//! `testing` (feature `testing`) is test support, never in a release build.

pub mod accounts;
pub mod audit;
pub mod cli;
pub mod config;
pub mod http;
pub mod imports;
pub mod institution;
pub mod keys;
pub mod monitor;
pub mod ops;
pub mod papers;
pub mod print;
pub mod research;
pub mod review;
pub mod sheets;
pub mod store;
pub mod sync_service;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

use std::sync::Arc;

use nsdb_rules::{Catalogue, Date};
use nsdb_sync::NodeId;

use accounts::policy::Denied;
pub use config::{NodeConfig, NodeRole};
use store::{Store, StoreError};

/// Everything a domain function can fail with, in words for the person who caused it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Said alike for an unknown login, a wrong password, and a locked or expired account, so
    /// that the answer never tells whether the password was right.
    #[error(
        "IDまたはパスワードが違うか、このアカウントは今はログインできません。{}回続けて間違えると{}分間ログインできなくなります。分からないときは所属の責任者（ユーザ管理の担当者）に連絡してください。",
        accounts::LOCK_AFTER_FAILURES,
        accounts::COOL_DOWN_MS / 60_000
    )]
    BadCredentials,
    #[error("ログインが混み合っています。しばらくしてから、もう一度ログインしてください。")]
    Busy,
    #[error("このアカウントはロックされています。責任者に連絡してください。")]
    Locked,
    #[error("このアカウントは有効期限が切れています。責任者に連絡してください。")]
    Expired,
    #[error("ログインしてください。")]
    Unauthenticated,
    /// The password was right and the user has enrolled the second factor, but no code came.
    #[error("2段階認証の確認コード（認証アプリに表示される6桁の数字）を入力してください。")]
    TotpRequired,
    /// A sensitive action (user administration, bulk export) more than
    /// `accounts::REAUTH_WINDOW_MS` after the user last gave their password.
    #[error(
        "この操作の前に、パスワード（2段階認証を設定している場合は確認コードも）をもう一度入力してください（再認証）。"
    )]
    ReauthRequired,
    /// A session whose user must first change their password or enrol the second factor.
    #[error("{}", .0.message())]
    SetupRequired(accounts::Pending),
    #[error(transparent)]
    Denied(#[from] Denied),
    #[error("様式が見つかりません: {0}")]
    UnknownForm(String),
    #[error("臨床調査個人票・医療意見書が見つかりません: {0}")]
    SheetNotFound(String),
    #[error(transparent)]
    UnknownItems(#[from] nsdb_rules::check::UnknownItems),
    #[error("{0}")]
    Invalid(String),
    #[error("保存された臨床調査個人票・医療意見書を読み込めません ({id}): {reason}")]
    Document { id: String, reason: String },
    /// 登録 on a node that holds no leased key block with a serial left (the hub has not been
    /// reached since the node started, or its blocks are used up).
    #[error(
        "アクセスキーの払い出しをまだハブ（中央）から受けていないため、登録できません。ハブと接続できた後に、もう一度登録してください。入力した内容は一時保存されています。"
    )]
    NoKeyBlock,
    /// 登録 on a node restored from a backup (`nsdb restore`) that has not yet heard from the
    /// hub how far its key blocks were used: it might otherwise issue a key again.
    #[error(
        "このシステムはバックアップから復元されたため、発行済みのアクセスキーをハブ（中央）に確かめるまで登録できません。ハブと接続できた後に、もう一度登録してください。入力した内容は一時保存されています。"
    )]
    KeysAwaitHub,
    /// A sheet whose stored document is damaged and could not be fetched again from the hub;
    /// the message says why and what to do.
    #[error("{0}")]
    DamagedSheet(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Research(#[from] research::ResearchError),
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        Error::Store(StoreError::from(e))
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The clock of a node. Tests pin it; nothing else reads the system time.
#[derive(Debug, Clone)]
pub enum Clock {
    System,
    Fixed(i64),
}

impl Clock {
    /// Unix milliseconds.
    pub fn now_ms(&self) -> i64 {
        match self {
            Clock::System => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or(0),
            Clock::Fixed(ms) => *ms,
        }
    }

    /// Today's date in Japan (JST, UTC+9), which is what "not in the future" means on a form.
    pub fn today_jst(&self) -> Date {
        let t = time::OffsetDateTime::from_unix_timestamp(self.now_ms() / 1000)
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
            .to_offset(time::macros::offset!(+9));
        Date::new(t.year(), t.month() as u8, t.day()).unwrap_or(Date {
            year: 1970,
            month: 1,
            day: 1,
        })
    }
}

/// One running node: its identity, role, database and form catalogue.
#[derive(Debug)]
pub struct Node {
    pub config: NodeConfig,
    pub node_id: NodeId,
    pub store: Store,
    pub catalogue: Arc<Catalogue>,
    pub clock: Clock,
    pub sync: Arc<sync_service::SyncHandle>,
    /// This node's Prometheus metrics (served on the metrics listener).
    pub metrics: Arc<ops::metrics::Metrics>,
    /// The bounded pool every password check runs in.
    pub password_checks: Arc<accounts::PasswordChecks>,
    /// Unacknowledged alerts (利用状況の監視), for the header's badge.
    pub open_alerts: Arc<monitor::OpenAlerts>,
    /// The terminal CA and CRL the TLS listener checks client certificates against, when the
    /// config requires them (`ops::terminals`); empty otherwise.
    pub terminal_gate: Arc<ops::tls::TerminalGate>,
}

impl Node {
    /// Opens a node from its configuration: loads its identity and key, opens the database.
    pub fn open(config: NodeConfig, clock: Clock) -> anyhow::Result<Arc<Node>> {
        use anyhow::Context;
        let identity = nsdb_provisioning::NodeIdentity::load_or_create(&config.identity_path())
            .with_context(|| format!("node identity of {}", config.name))?;
        let key = store::DbKey::load(&config.key)?;
        nsdb_provisioning::create_private_dir(&config.data_dir)
            .with_context(|| format!("cannot create {}", config.data_dir.display()))?;
        let db = config.database_path();
        let node_id = NodeId(identity.node_id());
        ops::guard::check_before_open(&config.data_dir, &db)?;
        // A key that does not open the database, or a damaged one, is said as every operator
        // command says it: which key file does, or the file and the restore.
        let store = Store::open(&db, Some(&key), 3)
            .map_err(|e| ops::backup::store_for_operator(&config, None, e))?;
        ops::guard::claim(
            &config.data_dir,
            &db,
            &key,
            &node_id.to_string(),
            config.role,
        )
        .map_err(|e| ops::backup::for_operator(&config, None, e))?;
        ops::integrity::check_and_mark(&db, &key, &store, std::time::Duration::from_secs(20))
            .map_err(|e| ops::backup::for_operator(&config, None, e))?;
        load_print_fonts(&config.print_fallback_font)?;
        let catalogue = Arc::new(load_catalogue(config.rules.as_ref())?);
        if store.damage().is_none() {
            let hub = config.role == NodeRole::Hub;
            let cat = Arc::clone(&catalogue);
            // Every sheet the hub stores writes its research row (docs/research.md). Research
            // rows are the hub's alone: another node that once had them turned on (opened with
            // role = "hub" before roles were recorded) drops them; no sheet is touched.
            store
                .write_blocking(move |c| {
                    if hub {
                        research::rows::enable(c, cat)?;
                    } else {
                        research::rows::disable(c)?;
                    }
                    Ok::<_, Error>(())
                })
                .context("research rows")?;
        }
        let node = Node {
            node_id,
            config,
            store,
            catalogue,
            clock,
            sync: Default::default(),
            metrics: Default::default(),
            password_checks: Default::default(),
            open_alerts: Default::default(),
            terminal_gate: Default::default(),
        };
        Ok(Arc::new(node))
    }

    pub fn role(&self) -> NodeRole {
        self.config.role
    }
}

/// Loads the prints' fallback font as configured: a file named in the configuration must load;
/// the default (IPAmj明朝 from Debian's fonts-ipamj-mincho) is used when it is installed.
fn load_print_fonts(font: &config::FallbackFont) -> anyhow::Result<()> {
    use config::FallbackFont;
    match font {
        FallbackFont::Off => {}
        FallbackFont::File(path) => {
            print::load_fallback_font(path)
                .map_err(|e| anyhow::anyhow!("print_fallback_font: {e}"))?;
        }
        FallbackFont::Default => {
            let path = std::path::Path::new(print::DEFAULT_FALLBACK_FONT);
            if !path.exists() {
                tracing::info!(
                    target: "nsdb::print",
                    "no fallback font for prints (install fonts-ipamj-mincho): characters IPAex Gothic lacks are refused at entry"
                );
            } else if let Err(e) = print::load_fallback_font(path) {
                tracing::warn!(target: "nsdb::print", error = %e, "the fallback font for prints did not load");
            }
        }
    }
    Ok(())
}

/// The node's form catalogue: the configured signed rule pack, or the built-in one.
pub fn load_catalogue(rules: Option<&config::RulesConfig>) -> anyhow::Result<Catalogue> {
    use anyhow::Context;
    let Some(r) = rules else {
        return Catalogue::builtin().context("the built-in form catalogue");
    };
    let key = nsdb_rules::pack::parse_public_key(&r.ministry_key).ok_or_else(|| {
        anyhow::anyhow!(
            "rules.ministry_key is not an ed25519 public key (64 hexadecimal characters expected)"
        )
    })?;
    let bytes = std::fs::read(&r.pack)
        .with_context(|| format!("cannot read the rule pack {}", r.pack.display()))?;
    let pack = nsdb_rules::RulePack::verify(&bytes, &key)
        .with_context(|| format!("rule pack {}", r.pack.display()))?;
    tracing::info!(target: "nsdb", version = %pack.info.version, "rule pack loaded");
    Ok(pack.catalogue)
}

/// 32 random bytes (keys and tokens).
pub fn random_key_bytes() -> [u8; 32] {
    rand::random()
}
