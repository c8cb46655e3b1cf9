//! The node's encrypted database: SQLCipher through rusqlite, versioned migrations, one writer
//! thread and a few reader threads.
//!
//! The async runtime never touches SQLite directly: callers hand a closure to `write` or `read`,
//! which runs it on a database thread and returns the result through a channel. All writes are
//! serialised on the one writer connection, so a read-modify-write inside one `write` call is
//! atomic with respect to every other write. This module must never log values it stores.
//!
//! Durability: the database runs in WAL mode with `synchronous = FULL`, so the WAL is synced to
//! disk at every commit and an acknowledged save survives a power cut, not only a killed
//! process. Other processes may write the same file (`nsdb user add` beside a serving node):
//! every connection waits up to [`BUSY_TIMEOUT`] for the lock, and every transaction on the
//! writer starts `IMMEDIATE`, so a writer waits its turn instead of failing with "database is
//! locked".

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, mpsc};

use rusqlite::{Connection, OpenFlags};
use rusqlite_migration::{M, Migrations};

/// Where the database key comes from.
#[derive(Debug, Clone)]
pub enum KeySource {
    /// A file holding the key as 64 hexadecimal characters, readable by its owner only.
    File(PathBuf),
    /// An environment variable holding the key (demo and tests only).
    Env(String),
    /// The key itself (already loaded).
    Raw(DbKey),
}

impl KeySource {
    /// The key file, when the key comes from one.
    pub fn file(&self) -> Option<&Path> {
        match self {
            KeySource::File(p) => Some(p),
            _ => None,
        }
    }
}

/// A 256-bit SQLCipher key.
#[derive(Clone, PartialEq, Eq)]
pub struct DbKey([u8; 32]);

impl std::fmt::Debug for DbKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DbKey(..)")
    }
}

impl DbKey {
    pub fn from_bytes(bytes: [u8; 32]) -> DbKey {
        DbKey(bytes)
    }

    /// Parses 64 hexadecimal characters (surrounding white space ignored).
    pub fn from_hex(text: &str) -> Option<DbKey> {
        let bytes = hex::decode(text.trim()).ok()?;
        Some(DbKey(bytes.try_into().ok()?))
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Loads the key from its source, refusing a key file others could read.
    pub fn load(source: &KeySource) -> Result<DbKey, StoreError> {
        match source {
            KeySource::Raw(k) => Ok(k.clone()),
            KeySource::Env(var) => {
                let text = std::env::var(var).map_err(|_| StoreError::Key {
                    origin: format!("environment variable {var}"),
                    reason: "it is not set".into(),
                })?;
                DbKey::from_hex(&text).ok_or_else(|| StoreError::Key {
                    origin: format!("environment variable {var}"),
                    reason: "it must hold 64 hexadecimal characters".into(),
                })
            }
            KeySource::File(path) => {
                let described = format!("key file {}", path.display());
                let mut file = std::fs::File::open(path).map_err(|e| StoreError::Key {
                    origin: described.clone(),
                    reason: format!("cannot open it: {e}{}", credential_hint(path)),
                })?;
                check_owner_only(&file, path)?;
                let mut text = String::new();
                file.read_to_string(&mut text)
                    .map_err(|e| StoreError::Key {
                        origin: described.clone(),
                        reason: format!("cannot read it: {e}"),
                    })?;
                DbKey::from_hex(&text).ok_or_else(|| StoreError::Key {
                    origin: described,
                    reason: "it must hold 64 hexadecimal characters".into(),
                })
            }
        }
    }
}

/// Where systemd puts a service's credentials (`LoadCredential=`), there only while it runs.
const CREDENTIALS_DIR: &str = "/run/credentials/";

/// For a key file that cannot be opened under [`CREDENTIALS_DIR`]: what it is and what to run
/// instead (empty for any other path).
fn credential_hint(path: &Path) -> String {
    if !path.starts_with(CREDENTIALS_DIR) {
        return String::new();
    }
    format!(
        "; {} is a systemd credential (LoadCredential=), there only while the service runs: with the service stopped, run nsdb backup, restore, rekey and doctor as root with a configuration whose key_file is the file the credential is loaded from (/etc/nsdb/admin.toml, key_file = \"/etc/nsdb/db.key\"; docs/operations.md, \"Backup and restore\")",
        path.display()
    )
}

#[cfg(unix)]
fn check_owner_only(file: &std::fs::File, path: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = file
        .metadata()
        .map_err(|e| StoreError::Key {
            origin: format!("key file {}", path.display()),
            reason: format!("cannot read its permissions: {e}"),
        })?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(StoreError::KeyPermissions {
            path: path.to_path_buf(),
            mode: mode & 0o777,
        });
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_owner_only(_: &std::fs::File, _: &Path) -> Result<(), StoreError> {
    Ok(())
}

/// What can go wrong with the store, said so that an operator can act on it.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot use the database key from {origin}: {reason}")]
    Key { origin: String, reason: String },
    #[error(
        "key file {} can be read by others (mode {mode:o}); make it readable by its owner only: chmod 600 {}",
        path.display(),
        path.display()
    )]
    KeyPermissions { path: PathBuf, mode: u32 },
    /// The key does not open the file. SQLCipher cannot tell a wrong key from a damaged first
    /// page (its HMAC fails either way), so the message says both, and how to tell them apart.
    #[error(
        "データベース {} を開けません: 鍵が違うか、ファイルの先頭ページが壊れています（SQLCipher はこの二つを区別できません）。まず設定の key_file が正しい鍵か確かめてください（nsdb doctor --config FILE が鍵の指紋を表示します。nsdb backup の manifest.toml の key_fingerprint と同じなら正しい鍵です）。正しい鍵なら、最新のバックアップから戻してください: nsdb restore --config FILE BACKUP_DIR（docs/operations.md「Backup and restore」）。\n  詳細: cannot open database {}: the key is wrong, or the file's first page is damaged (SQLCipher cannot tell the two apart); if key_file is the right key (its fingerprint, which nsdb doctor prints, is the key_fingerprint in the manifest.toml of this node's backups), restore the latest backup: nsdb restore --config FILE BACKUP_DIR",
        path.display(),
        path.display()
    )]
    WrongKey { path: PathBuf },
    /// The configured key does not open the database but another key file beside it does (an
    /// interrupted or hand-undone rekey): what to do, as `ops::rekey::wrong_key_advice` says it.
    #[error("{0}")]
    OtherKey(String),
    #[error("データベース {} を開けません（場所と権限を確かめてください）。{hint}\n  詳細: {source}", path.display())]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
        /// The database files' owner or mode that keeps it from opening, with the command
        /// that puts them right ([`private_files_fix`]), or empty.
        hint: String,
    },
    #[error(
        "cannot make database {} readable by its owner only (chmod 600): {source}{hint}",
        path.display()
    )]
    Private {
        path: PathBuf,
        source: std::io::Error,
        /// `; ` and what is wrong with the files' owner or mode, with the command that puts
        /// them right ([`private_files_fix`]), or empty.
        hint: String,
    },
    /// SQLite found the database file damaged (SQLITE_CORRUPT, or SQLITE_NOTADB past the first
    /// read): the file is named with the restore that brings the node back. `config` is the
    /// configuration file the command names (`FILE` when not known), `after` what comes back
    /// once the backup is restored (`ops::CatchUp::after_restore`).
    #[error(
        "database {} is damaged ({detail}): nsdb cannot use it. Restore the latest backup (docs/operations.md, \"Backup and restore\"): systemctl stop nsdb; nsdb restore --config {config} BACKUP_DIR (BACKUP_DIR: the newest directory nsdb backup wrote); systemctl start nsdb — {after}",
        path.display()
    )]
    Corrupt {
        path: PathBuf,
        detail: String,
        config: String,
        after: String,
    },
    #[error(
        "database {} has schema version {found}, newer than this nsdb knows ({known}): it was written by a newer nsdb; run that version (or newer), never an older one",
        path.display()
    )]
    TooNew {
        path: PathBuf,
        found: i64,
        known: usize,
    },
    #[error("database migration failed: {0}")]
    Migration(#[from] rusqlite_migration::Error),
    #[error("database error: {0}")]
    Sqlite(rusqlite::Error),
    /// The disk (or the file system of the data directory) has no room for the write: nothing
    /// of it was stored (the transaction rolled back); what was stored before is intact.
    #[error(
        "サーバのディスクに空きがないため、保存できませんでした（これまでに保存した内容は失われていません）。管理者に連絡してください。空きができれば、そのまま保存できます。"
    )]
    DiskFull,
    #[error(
        "データベースに損傷が見つかったため、保存を止めています（閲覧はできます）。管理者は nsdb doctor で確認し、最新のバックアップから nsdb restore で復元してください。 ({0})"
    )]
    Damaged(String),
    #[error("the database threads have stopped")]
    Stopped,
}

thread_local! {
    /// Set when a full disk was met on this database thread; each job (`Store::run`) reads and
    /// clears it before answering and records the time on its `Store`
    /// ([`Store::disk_full_within`]).
    static MET_DISK_FULL: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::DiskFull) => {
                MET_DISK_FULL.with(|m| m.set(true));
                StoreError::DiskFull
            }
            _ => StoreError::Sqlite(e),
        }
    }
}

/// Whether SQLite says the file is damaged: SQLITE_CORRUPT, or SQLITE_NOTADB (a page that
/// does not decrypt; at the first read of a file it is [`StoreError::WrongKey`] instead).
fn is_damage_code(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase)
    )
}

/// What [`StoreError::Corrupt`] says comes back after a restore when the node is not known.
const AFTER_RESTORE_UNKNOWN: &str = "on a node enrolled with a hub, sheets saved since that backup then come back from the hub by sync";

impl StoreError {
    /// Whether SQLite found the database file damaged (SQLITE_CORRUPT or SQLITE_NOTADB, met
    /// while opening, migrating or reading it), whether or not already said as
    /// [`StoreError::Corrupt`].
    pub fn is_damage(&self) -> bool {
        match self {
            StoreError::Sqlite(e) => is_damage_code(e),
            StoreError::Migration(rusqlite_migration::Error::RusqliteError { err, .. }) => {
                is_damage_code(err)
            }
            StoreError::Corrupt { .. } => true,
            _ => false,
        }
    }

    /// This error said for the database at `path` when it is damage ([`StoreError::is_damage`]):
    /// [`StoreError::Corrupt`], which names the file and the restore; any other error as it is.
    pub fn at(self, path: &Path) -> StoreError {
        let detail = match &self {
            StoreError::Corrupt { .. } => return self,
            _ if !self.is_damage() => return self,
            StoreError::Sqlite(rusqlite::Error::SqliteFailure(_, Some(msg))) => msg.clone(),
            StoreError::Migration(rusqlite_migration::Error::RusqliteError { err, .. }) => {
                err.to_string()
            }
            other => other.to_string(),
        };
        StoreError::damaged_file(path, &format!("SQLite: {detail}"))
    }

    /// [`StoreError::Corrupt`] for the database at `path`, found damaged as `detail` says (the
    /// problems a page check reported).
    pub fn damaged_file(path: &Path, detail: &str) -> StoreError {
        StoreError::Corrupt {
            path: path.to_path_buf(),
            // SQLite's page check reports one problem a line: one line here.
            detail: detail.replace('\n', "; "),
            config: "FILE".into(),
            after: AFTER_RESTORE_UNKNOWN.into(),
        }
    }

    /// [`StoreError::Corrupt`] naming `config` (the configuration file) in the restore command
    /// and `after` as what comes back after it; any other error as it is.
    pub fn with_restore(self, config: &Path, after: &str) -> StoreError {
        match self {
            StoreError::Corrupt { path, detail, .. } => StoreError::Corrupt {
                path,
                detail,
                config: config.display().to_string(),
                after: after.to_string(),
            },
            other => other,
        }
    }
}

/// The database at `db` and the files SQLite keeps beside it in WAL mode (`-wal`, `-shm`).
pub fn database_files(db: &Path) -> [PathBuf; 3] {
    [
        db.to_path_buf(),
        PathBuf::from(format!("{}-wal", db.display())),
        PathBuf::from(format!("{}-shm", db.display())),
    ]
}

/// What keeps the database's files ([`database_files`], those that exist) from being the
/// node's alone: each must belong to the owner of the data directory (the user the node runs
/// as) and be readable by that owner only (mode 600). Says which file is owned by whom or has
/// which mode, then the exact `chown`/`chmod` to run (as root). None when all are right or
/// cannot be looked at. `nsdb doctor` reports it and `nsdb serve` says it when it cannot open
/// the database or make it private, so both give the same command.
#[cfg(unix)]
pub fn private_files_fix(db: &Path) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let dir = match db.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let owner = std::fs::metadata(&dir).ok()?;
    let (uid, gid) = (owner.uid(), owner.gid());
    let (mut found, mut to_chown, mut to_chmod) = (Vec::new(), Vec::new(), Vec::new());
    for file in database_files(db) {
        let Ok(meta) = std::fs::symlink_metadata(&file) else {
            continue;
        };
        let mut wrong = Vec::new();
        if meta.uid() != uid || meta.gid() != gid {
            wrong.push(format!(
                "belongs to {}:{}",
                user_name(meta.uid()),
                group_name(meta.gid())
            ));
            to_chown.push(file.display().to_string());
        }
        if meta.mode() & 0o077 != 0 {
            wrong.push(format!(
                "can be read by others (mode {:o})",
                meta.mode() & 0o777
            ));
            to_chmod.push(file.display().to_string());
        }
        if !wrong.is_empty() {
            found.push(format!("{} {}", file.display(), wrong.join(" and ")));
        }
    }
    if found.is_empty() {
        return None;
    }
    let mut commands = Vec::new();
    if !to_chown.is_empty() {
        commands.push(format!(
            "chown {}:{} {}",
            user_name(uid),
            group_name(gid),
            to_chown.join(" ")
        ));
    }
    if !to_chmod.is_empty() {
        commands.push(format!("chmod 600 {}", to_chmod.join(" ")));
    }
    Some(format!(
        "{}; the database must belong to {}:{}, the owner of the data directory {} (the user nsdb serves as), and be readable by it only (a restore or copy run as root leaves root's files): as root run {}",
        found.join(", "),
        user_name(uid),
        group_name(gid),
        dir.display(),
        commands.join(" && ")
    ))
}

#[cfg(not(unix))]
pub fn private_files_fix(_: &Path) -> Option<String> {
    None
}

/// A user's name, or its number when it has none.
#[cfg(unix)]
fn user_name(uid: u32) -> String {
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    // SAFETY: an all-zero passwd is a valid value for getpwuid_r to fill.
    let mut entry: libc::passwd = unsafe { std::mem::zeroed() };
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call and buf's length is given; pw_name points
    // into buf, read before buf is dropped.
    unsafe {
        if libc::getpwuid_r(uid, &mut entry, buf.as_mut_ptr(), buf.len(), &mut found) == 0
            && !found.is_null()
            && !entry.pw_name.is_null()
        {
            return std::ffi::CStr::from_ptr(entry.pw_name)
                .to_string_lossy()
                .into_owned();
        }
    }
    uid.to_string()
}

/// A group's name, or its number when it has none.
#[cfg(unix)]
fn group_name(gid: u32) -> String {
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    // SAFETY: an all-zero group is a valid value for getgrgid_r to fill.
    let mut entry: libc::group = unsafe { std::mem::zeroed() };
    let mut found: *mut libc::group = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call and buf's length is given; gr_name points
    // into buf, read before buf is dropped.
    unsafe {
        if libc::getgrgid_r(gid, &mut entry, buf.as_mut_ptr(), buf.len(), &mut found) == 0
            && !found.is_null()
            && !entry.gr_name.is_null()
        {
            return std::ffi::CStr::from_ptr(entry.gr_name)
                .to_string_lossy()
                .into_owned();
        }
    }
    gid.to_string()
}

/// The schema, one migration per version. Never edit a migration that has shipped: add one.
const MIGRATIONS: &[&str] = &[
    include_str!("../../migrations/001_initial.sql"),
    include_str!("../../migrations/002_sync.sql"),
    include_str!("../../migrations/003_workflow.sql"),
    include_str!("../../migrations/004_sync_seq.sql"),
    include_str!("../../migrations/005_imports.sql"),
    include_str!("../../migrations/006_resolutions.sql"),
    include_str!("../../migrations/007_review.sql"),
    include_str!("../../migrations/008_research.sql"),
    include_str!("../../migrations/009_security.sql"),
    include_str!("../../migrations/010_paper.sql"),
    include_str!("../../migrations/011_sync_setaside.sql"),
    include_str!("../../migrations/012_clinic.sql"),
    include_str!("../../migrations/013_totp.sql"),
    include_str!("../../migrations/014_alerts.sql"),
    include_str!("../../migrations/015_users.sql"),
    include_str!("../../migrations/016_author.sql"),
    include_str!("../../migrations/017_research_rows.sql"),
    include_str!("../../migrations/018_research_pending.sql"),
    include_str!("../../migrations/019_responsible_holder.sql"),
    include_str!("../../migrations/020_name_search.sql"),
    include_str!("../../migrations/021_import_digest.sql"),
    include_str!("../../migrations/022_audit_anchors.sql"),
    include_str!("../../migrations/023_carried_index.sql"),
    include_str!("../../migrations/024_account_records.sql"),
    include_str!("../../migrations/025_terminal_certs.sql"),
];

fn migrations() -> Migrations<'static> {
    Migrations::new(MIGRATIONS.iter().map(|sql| M::up(sql)).collect())
}

/// The schema version this binary writes (the last migration's number).
pub fn schema_version() -> usize {
    MIGRATIONS.len()
}

/// Brings the schema to the latest version, refusing a database written by a newer nsdb.
fn migrate(conn: &mut Connection, path: &Path) -> Result<(), StoreError> {
    let found: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if found > MIGRATIONS.len() as i64 {
        return Err(StoreError::TooNew {
            path: path.to_path_buf(),
            found,
            known: MIGRATIONS.len(),
        });
    }
    migrations().to_latest(conn)?;
    Ok(())
}

type Job = Box<dyn FnOnce(&mut Connection) + Send>;

/// A handle to the node database. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    writer: mpsc::Sender<Job>,
    readers: mpsc::Sender<Job>,
    path: Arc<PathBuf>,
    damage: Arc<Mutex<Option<String>>>,
    disk_full_at: Arc<Mutex<Option<std::time::Instant>>>,
    /// Small writes waiting to be committed together ([`Store::write_grouped`]).
    grouped: Arc<Mutex<Vec<GroupedWrite>>>,
}

/// One small write of a group, and where its outcome goes.
type GroupedWrite = (
    Box<dyn FnOnce(&Connection) -> rusqlite::Result<()> + Send>,
    tokio::sync::oneshot::Sender<Result<(), StoreError>>,
);

/// The same failure again, for each write of a group that failed together.
fn failed_again(e: &rusqlite::Error) -> StoreError {
    match e {
        rusqlite::Error::SqliteFailure(code, msg) => {
            StoreError::from(rusqlite::Error::SqliteFailure(*code, msg.clone()))
        }
        other => StoreError::Sqlite(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ERROR),
            Some(other.to_string()),
        )),
    }
}

/// Records `at` when the closure just run on this database thread met a full disk.
fn note_disk_full(disk_full_at: &Mutex<Option<std::time::Instant>>) {
    if MET_DISK_FULL.with(|m| m.replace(false))
        && let Ok(mut at) = disk_full_at.lock()
    {
        *at = Some(std::time::Instant::now());
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

/// How long a connection waits for another connection's lock (another process writing the same
/// database, a checkpoint) before a statement fails with "database is locked".
pub const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// When a commit counts as done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// `synchronous = FULL`: the WAL is synced at every commit; an acknowledged write survives a
    /// power cut. What every node runs with.
    PowerLoss,
    /// `synchronous = NORMAL`: the WAL is synced at checkpoints only; an acknowledged write
    /// survives a killed process but may be lost in a power cut. Benchmarks only, as the
    /// baseline of [`Durability::PowerLoss`].
    ProcessCrash,
}

/// Opens one connection to an existing or new database with `key` (None: plain SQLite), checks
/// the key, and sets the busy timeout, durability and cache every connection of a node uses.
/// Errors: [`StoreError::WrongKey`] when the key does not open the file, [`StoreError::Open`]
/// when the file cannot be opened.
pub fn connect(
    path: &Path,
    key: Option<&DbKey>,
    flags: OpenFlags,
) -> Result<Connection, StoreError> {
    open_connection(path, key, flags, Durability::PowerLoss)
}

fn open_connection(
    path: &Path,
    key: Option<&DbKey>,
    flags: OpenFlags,
    durability: Durability,
) -> Result<Connection, StoreError> {
    open_connection_unnamed(path, key, flags, durability).map_err(|e| e.at(path))
}

fn open_connection_unnamed(
    path: &Path,
    key: Option<&DbKey>,
    flags: OpenFlags,
    durability: Durability,
) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(path, flags).map_err(|source| StoreError::Open {
        path: path.to_path_buf(),
        source,
        hint: private_files_fix(path)
            .map(|fix| format!("\n  {fix}"))
            .unwrap_or_default(),
    })?;
    // SQLCipher would print every failed decryption to stderr; the error is ours to report.
    conn.execute_batch("PRAGMA cipher_log_level = NONE;")?;
    if let Some(key) = key {
        conn.execute_batch(&format!("PRAGMA key = \"x'{}'\";", key.to_hex()))?;
        // Keying initialises SQLCipher, which sets its log level back to its default.
        conn.execute_batch("PRAGMA cipher_log_level = NONE;")?;
    }
    // Before the first read: another process may hold the lock right now.
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // The first read of the schema is where a wrong key shows.
    match conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| {
        r.get::<_, i64>(0)
    }) {
        Ok(_) => {}
        Err(rusqlite::Error::SqliteFailure(e, _))
            if e.code == rusqlite::ErrorCode::NotADatabase =>
        {
            return Err(StoreError::WrongKey {
                path: path.to_path_buf(),
            });
        }
        Err(e) => return Err(e.into()),
    }
    let synchronous = match durability {
        Durability::PowerLoss => "FULL",
        Durability::ProcessCrash => "NORMAL",
    };
    // 32 MiB of decrypted pages per connection: lists and searches stay in memory.
    conn.execute_batch(&format!(
        "PRAGMA foreign_keys = ON; PRAGMA synchronous = {synchronous}; PRAGMA cache_size = -32768;"
    ))?;
    Ok(conn)
}

impl Store {
    /// Opens (creating if needed) the database at `path`, encrypted with `key`, and brings its
    /// schema to the latest version. `key` None opens a plain SQLite file (benchmarks only).
    pub fn open(path: &Path, key: Option<&DbKey>, readers: usize) -> Result<Store, StoreError> {
        Store::open_with(path, key, readers, Durability::PowerLoss)
    }

    /// [`Store::open`] with a chosen durability (benchmarks compare the two).
    pub fn open_with(
        path: &Path,
        key: Option<&DbKey>,
        readers: usize,
        durability: Durability,
    ) -> Result<Store, StoreError> {
        let mut writer = open_connection(
            path,
            key,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE,
            durability,
        )?;
        // The database is the node's user's alone (mode 600), whatever mode a file left there
        // had; set before the WAL exists, which SQLite creates with the database's mode, and on
        // a WAL and shared-memory file already there (left by a copy or an older nsdb).
        #[cfg(unix)]
        for (n, file) in database_files(path).iter().enumerate() {
            use std::os::unix::fs::PermissionsExt;
            if n > 0 && !file.exists() {
                continue;
            }
            std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o600)).map_err(
                |source| StoreError::Private {
                    path: file.clone(),
                    source,
                    hint: private_files_fix(path)
                        .map(|fix| format!("; {fix}"))
                        .unwrap_or_default(),
                },
            )?;
        }
        writer
            .pragma_update(None, "journal_mode", "WAL")
            .map_err(|e| StoreError::from(e).at(path))?;
        migrate(&mut writer, path).map_err(|e| e.at(path))?;
        // Take the write lock at BEGIN, where the busy timeout applies; a deferred transaction
        // that reads first and writes later fails at once if another process wrote meanwhile.
        writer.set_transaction_behavior(rusqlite::TransactionBehavior::Immediate);

        let disk_full_at: Arc<Mutex<Option<std::time::Instant>>> = Arc::default();
        let (wtx, wrx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("nsdb-db-writer".into())
            .spawn(move || {
                while let Ok(job) = wrx.recv() {
                    job(&mut writer);
                }
            })
            .map_err(|_| StoreError::Stopped)?;

        let (rtx, rrx) = mpsc::channel::<Job>();
        let rrx = Arc::new(Mutex::new(rrx));
        for n in 0..readers.max(1) {
            let mut conn = open_connection(
                path,
                key,
                OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                durability,
            )?;
            conn.pragma_update(None, "query_only", true)?;
            let rrx = Arc::clone(&rrx);
            std::thread::Builder::new()
                .name(format!("nsdb-db-reader-{n}"))
                .spawn(move || {
                    loop {
                        let job = match rrx.lock() {
                            Ok(rx) => rx.recv(),
                            Err(_) => return,
                        };
                        match job {
                            Ok(job) => job(&mut conn),
                            Err(_) => return,
                        }
                    }
                })
                .map_err(|_| StoreError::Stopped)?;
        }
        Ok(Store {
            writer: wtx,
            readers: rtx,
            path: Arc::new(path.to_path_buf()),
            damage: Arc::default(),
            disk_full_at,
            grouped: Arc::default(),
        })
    }

    /// Whether a write (or read) met a full disk ([`StoreError::DiskFull`]) within `window`
    /// before now.
    pub fn disk_full_within(&self, window: std::time::Duration) -> bool {
        self.disk_full_at
            .lock()
            .ok()
            .and_then(|at| *at)
            .is_some_and(|at| at.elapsed() <= window)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn run<T, E>(
        &self,
        queue: &mpsc::Sender<Job>,
        f: impl FnOnce(&mut Connection) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let full = Arc::clone(&self.disk_full_at);
        let job: Job = Box::new(move |conn| {
            MET_DISK_FULL.with(|m| m.set(false));
            let result = f(conn);
            // Before the caller hears of it: a health check right after sees it.
            note_disk_full(&full);
            let _ = tx.send(result);
        });
        queue.send(job).map_err(|_| StoreError::Stopped)?;
        rx.await.map_err(|_| StoreError::Stopped)?
    }

    /// Marks the database as damaged (found by an integrity check): from now on every write is
    /// refused with [`StoreError::Damaged`]; reads go on.
    pub fn mark_damaged(&self, what: String) {
        if let Ok(mut d) = self.damage.lock() {
            *d = Some(what);
        }
    }

    /// What damage was found, if any.
    pub fn damage(&self) -> Option<String> {
        self.damage.lock().ok().and_then(|d| d.clone())
    }

    /// Runs `f` on the writer connection. Writes are serialised. Refused with
    /// [`StoreError::Damaged`] once the database was found damaged.
    pub async fn write<T, E>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        if let Some(what) = self.damage() {
            return Err(StoreError::Damaged(what).into());
        }
        self.run(&self.writer, f).await
    }

    /// Runs the small write `f` (an audit entry: statements only, no transaction of its own) on
    /// the writer connection together with every other such write that arrives while the writer
    /// is busy: one transaction, one sync of the WAL for all of them (group commit), so that the
    /// audit entries of many concurrent reads cost one disk sync rather than one each. Returns
    /// once the group is committed (durable, as [`Store::write`] is). When the group fails,
    /// every write of it fails with the same cause and none is stored. Refused with
    /// [`StoreError::Damaged`] once the database was found damaged.
    pub async fn write_grouped(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<()> + Send + 'static,
    ) -> Result<(), StoreError> {
        if let Some(what) = self.damage() {
            return Err(StoreError::Damaged(what));
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        let first = {
            let mut waiting = self.grouped.lock().map_err(|_| StoreError::Stopped)?;
            waiting.push((Box::new(f), tx));
            waiting.len() == 1
        };
        // The first write of a group queues the job that commits the group; later ones join it
        // until the writer takes it.
        if first {
            let (grouped, full) = (Arc::clone(&self.grouped), Arc::clone(&self.disk_full_at));
            let job: Job = Box::new(move |conn| {
                let group = match grouped.lock() {
                    Ok(mut waiting) => std::mem::take(&mut *waiting),
                    Err(_) => return,
                };
                MET_DISK_FULL.with(|m| m.set(false));
                let (writes, answers): (Vec<_>, Vec<_>) = group.into_iter().unzip();
                let result = (|| {
                    let tx = conn.transaction()?;
                    for w in writes {
                        w(&tx)?;
                    }
                    tx.commit()
                })();
                let outcomes: Vec<Result<(), StoreError>> = answers
                    .iter()
                    .map(|_| result.as_ref().map(|_| ()).map_err(failed_again))
                    .collect();
                // Before the callers hear of it: a health check right after sees a full disk.
                note_disk_full(&full);
                for (answer, outcome) in answers.into_iter().zip(outcomes) {
                    let _ = answer.send(outcome);
                }
            });
            self.writer.send(job).map_err(|_| StoreError::Stopped)?;
        }
        rx.await.map_err(|_| StoreError::Stopped)?
    }

    /// Runs `f` on the writer connection and waits for it, from code that is not async (a
    /// node opening). Must not be called from a store job.
    pub fn write_blocking<T, E>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let (tx, rx) = mpsc::channel();
        let job: Job = Box::new(move |conn| {
            let _ = tx.send(f(conn));
        });
        self.writer.send(job).map_err(|_| StoreError::Stopped)?;
        rx.recv().map_err(|_| StoreError::Stopped)?
    }

    /// Runs `f` on one of the read-only connections.
    pub async fn read<T, E>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        self.run(&self.readers, f).await
    }
}

/// Test support: the plan SQLite chooses for each of `sqls` on an empty store of the latest
/// schema, its detail lines joined by "; ". Placeholders are left unbound.
#[cfg(test)]
pub(crate) fn query_plans(sqls: &[&str]) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("plans.db"), None, 1).unwrap();
    let sqls: Vec<String> = sqls.iter().map(|s| s.to_string()).collect();
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(store.read(move |c| {
            let mut plans = Vec::new();
            for sql in &sqls {
                let mut st = c.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))?;
                let mut rows = st.raw_query();
                let mut lines = Vec::new();
                while let Some(r) = rows.next()? {
                    lines.push(r.get::<_, String>(3)?);
                }
                plans.push(lines.join("; "));
            }
            Ok::<_, crate::Error>(plans)
        }))
        .unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> DbKey {
        DbKey::from_bytes([b; 32])
    }

    /// Rows a node of schema version `.0` could hold, written in that version's columns.
    const FIXTURES: &[(usize, &str)] = &[
        (
            1,
            "INSERT INTO institutions VALUES ('1310000001', '試験病院', 'hospital');
             INSERT INTO users (id, login, name, kind, institution, password_hash, created_at)
                 VALUES (1, 'doctor', '鈴木 太郎', 'designated_doctor', '1310000001', 'x', 1);
             INSERT INTO sheets (id, doc, form_id, form_version, kokuji, eda, disease,
                 institution, doctor, access_key, name, status, registration, created_at,
                 updated_at)
                 VALUES ('s-1', x'00', 'rinko-006', '2024.04', 6, 0, 'パーキンソン病',
                 '1310000001', 1, '12345678901', '試験 花子', 'registered', 'screen', 1, 2);
             INSERT INTO audit (at, user_id, action, target, prev_hash, hash)
                 VALUES (1, 1, 'sheet_create', 's-1', x'00', x'01');
             INSERT INTO sessions (token_hash, user_id, csrf, created_at, expires_at)
                 VALUES (x'aa', 1, 'csrf', 1, 2);",
        ),
        (
            2,
            "INSERT INTO sync_grants VALUES ('s-1', '00000000000000000000000000000001', 3);",
        ),
        (
            3,
            "INSERT INTO workflow_events (sheet_id, at, actor, action, status)
                 VALUES ('s-1', 2, 1, 'register', 'registered');",
        ),
        (
            5,
            "INSERT INTO user_keys VALUES (1, 'abcd', 4);
             INSERT INTO imports (file_hash, sheet_id, user_id, signer, at)
                 VALUES ('ff', 's-1', 1, 'abcd', 4);",
        ),
        (
            6,
            "INSERT INTO key_leases (block, node, leased_at) VALUES (12345, 'n', 5);
             INSERT INTO resolutions (sheet_id, access_key, user_id, resolved_at)
                 VALUES ('s-1', '12345678901', 1, 6);",
        ),
        (
            10,
            "INSERT INTO papers (id, municipality, node, name_kana, birth_date, disease, pdf,
                 pdf_sha256, uploaded_by, uploaded_at, state, sheet_id, access_key, entered_at)
                 VALUES ('p-1', '130001', 'n', 'シケン ハナコ', '1980-04-01', '6', x'25504446',
                 'ab', 1, 6, 'entered', 's-1', '12345678901', 7);",
        ),
        (
            11,
            "INSERT INTO sync_set_aside (peer, sheet_id, code, reason, detail, since, attempts,
                 next_retry) VALUES ('00000000000000000000000000000001', 's-1', 'refused',
                 '受け付けませんでした', 'detail', 6, 2, 7);",
        ),
        (
            13,
            "UPDATE users SET totp_secret = x'3132333435363738393031323334353637383930',
                 totp_last_step = 5, must_change_password = 1 WHERE id = 1;
             INSERT INTO sign_in_challenges VALUES (x'bb', 1, 9);",
        ),
        (
            14,
            "INSERT INTO alerts (rule, subject, user_id, window_start, window_end, count,
                 first_seq, last_seq, raised_at) VALUES ('many_patients', 'u:1', 1, 0, 86400000,
                 200, 1, 1, 8);
             INSERT INTO monitor_progress VALUES (1, 1);
             INSERT INTO monitor_counts VALUES ('many_patients', 'u:1', 0, 86400000, 's-1', 1, 1);
             INSERT INTO identified_access (user_id, sheet_id, granted_at, until)
                 VALUES (1, 's-1', 8, 9);",
        ),
        (
            15,
            "UPDATE users SET responsible = 1, deleted_at = 10 WHERE id = 1;",
        ),
        (
            16,
            "UPDATE users SET doctor_number = '1234567' WHERE id = 1;
             UPDATE sheets SET doctor_name = '鈴木 太郎' WHERE id = 's-1';",
        ),
        (
            // 017_research_rows.sql
            17,
            "INSERT INTO research_rows (sheet_id, kept, secret_since, year, form_id, disease,
                 record, patient, form_version, age, age_band, sex, prefecture, severity, items)
                 VALUES ('s-1', 1, 5, 2025, 'rinko-006', '006', 'r', 'p', '2024.04', 60, '60-64',
                 '2', '東京都', '該当', 'basic.onset2019-04');
             INSERT INTO research_pending VALUES ('s-2');",
        ),
        (
            // 018_research_pending.sql: triggers only
            18,
            "INSERT OR IGNORE INTO research_pending VALUES ('s-1');",
        ),
        (
            21,
            "UPDATE imports SET sheet_digest = 'dd' WHERE file_hash = 'ff';",
        ),
        (
            22,
            "INSERT INTO audit_anchors (node, seq, head, signature, received, restored)
                 VALUES ('0123', 1, 'aa', 'bb', 11, 0);",
        ),
    ];

    /// Many small writes at once (the audit entries of concurrent reads) are all committed,
    /// in groups; a write that fails is refused and stores nothing, and the next group works.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn grouped_writes_all_land_and_a_failing_one_stores_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("g.db"), None, 1).unwrap();
        store
            .write(|c| {
                c.execute_batch("CREATE TABLE g (n INTEGER NOT NULL)")
                    .map_err(StoreError::from)
            })
            .await
            .unwrap();
        let tasks: Vec<_> = (0..200)
            .map(|n| {
                let store = store.clone();
                tokio::spawn(async move {
                    store
                        .write_grouped(move |c| {
                            c.execute("INSERT INTO g (n) VALUES (?1)", [n]).map(|_| ())
                        })
                        .await
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        let failed = store
            .write_grouped(|c| c.execute("INSERT INTO g (n) VALUES (NULL)", []).map(|_| ()))
            .await;
        assert!(matches!(failed, Err(StoreError::Sqlite(_))), "{failed:?}");
        store
            .write_grouped(|c| c.execute("INSERT INTO g (n) VALUES (1000)", []).map(|_| ()))
            .await
            .unwrap();
        let (count, sum): (i64, i64) = store
            .read(|c| {
                c.query_row("SELECT count(*), sum(n) FROM g", [], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .map_err(StoreError::from)
            })
            .await
            .unwrap();
        assert_eq!((count, sum), (201, (0..200).sum::<i64>() + 1000));
    }

    /// Every shipped schema version, with data in it, migrates to the latest: nothing stored is
    /// lost, the result passes `integrity_check` and `foreign_key_check`, and it reopens.
    #[tokio::test]
    async fn every_shipped_schema_version_with_data_migrates_to_the_latest() {
        for from in 1..=MIGRATIONS.len() {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("node.db");
            {
                let mut conn = connect(
                    &path,
                    Some(&key(3)),
                    OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE,
                )
                .unwrap();
                migrations().to_version(&mut conn, from).unwrap();
                for (_, sql) in FIXTURES.iter().filter(|(v, _)| *v <= from) {
                    conn.execute_batch(sql)
                        .unwrap_or_else(|e| panic!("fixture at version {from}: {e}"));
                }
            }
            let store = Store::open(&path, Some(&key(3)), 1)
                .unwrap_or_else(|e| panic!("migrating from version {from}: {e}"));
            let (version, sheets, audit, name, problems): (i64, i64, i64, String, Vec<String>) =
                store
                    .read(move |c| {
                        let version = c.pragma_query_value(None, "user_version", |r| r.get(0))?;
                        let sheets =
                            c.query_row("SELECT count(*) FROM sheets", [], |r| r.get(0))?;
                        if from >= 6 {
                            // A node's own resolutions stay its own (institution '').
                            let kept: i64 = c.query_row(
                                "SELECT count(*) FROM resolutions
                                 WHERE sheet_id = 's-1' AND institution = ''",
                                [],
                                |r| r.get(0),
                            )?;
                            assert_eq!(kept, 1, "resolutions kept from version {from}");
                        }
                        let audit = c.query_row("SELECT count(*) FROM audit", [], |r| r.get(0))?;
                        let name = c.query_row(
                            "SELECT name FROM sheets WHERE access_key = '12345678901'",
                            [],
                            |r| r.get(0),
                        )?;
                        let mut problems: Vec<String> = c
                            .prepare("PRAGMA integrity_check")?
                            .query_map([], |r| r.get(0))?
                            .collect::<Result<_, _>>()?;
                        problems.retain(|p| p != "ok");
                        let mut fk = c.prepare("PRAGMA foreign_key_check")?;
                        let broken = fk
                            .query_map([], |r| r.get::<_, String>(0))?
                            .collect::<Result<Vec<_>, _>>()?;
                        problems.extend(broken.into_iter().map(|t| format!("foreign key in {t}")));
                        Ok::<_, StoreError>((version, sheets, audit, name, problems))
                    })
                    .await
                    .unwrap();
            assert_eq!(version as usize, MIGRATIONS.len(), "from version {from}");
            assert_eq!((sheets, audit), (1, 1), "rows kept from version {from}");
            assert_eq!(name, "試験 花子", "values kept from version {from}");
            assert!(problems.is_empty(), "from version {from}: {problems:?}");
            drop(store);
            Store::open(&path, Some(&key(3)), 1).expect("reopens after the migration");
        }
    }

    #[tokio::test]
    async fn migrates_an_empty_database_and_reopens_with_the_same_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.db");
        let store = Store::open(&path, Some(&key(7)), 2).unwrap();
        let tables: Vec<String> = store
            .read(|c| {
                let mut st = c.prepare("SELECT name FROM sqlite_master WHERE type='table'")?;
                let names = st
                    .query_map([], |r| r.get(0))?
                    .collect::<Result<Vec<String>, _>>()?;
                Ok::<_, StoreError>(names)
            })
            .await
            .unwrap();
        for t in ["users", "sessions", "sheets", "audit", "institutions"] {
            assert!(tables.iter().any(|n| n == t), "missing table {t}");
        }
        drop(store);
        Store::open(&path, Some(&key(7)), 1).expect("reopen with the same key");
    }

    /// 019: an institution whose 責任者 was an account of kind `admin` (a 責任者 by its kind
    /// alone, before) keeps one, the flag's one holder; one whose doctor held the role keeps
    /// that doctor only.
    #[tokio::test]
    async fn the_responsible_role_moves_to_one_flagged_holder_per_institution() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.db");
        {
            let mut conn = connect(
                &path,
                Some(&key(3)),
                OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE,
            )
            .unwrap();
            migrations().to_version(&mut conn, 17).unwrap();
            conn.execute_batch(
                "INSERT INTO institutions VALUES ('A', '甲病院', 'hospital'), ('B', '乙病院', 'hospital');
                 INSERT INTO users (id, login, name, kind, institution, password_hash,
                     created_at, responsible, deleted_at) VALUES
                 (1, 'gone', 'x', 'admin', 'A', 'x', 1, 0, 5),
                 (2, 'it-a', 'x', 'admin', 'A', 'x', 1, 0, NULL),
                 (3, 'it-a2', 'x', 'admin', 'A', 'x', 1, 0, NULL),
                 (4, 'it-b', 'x', 'admin', 'B', 'x', 1, 0, NULL),
                 (5, 'dr-b', 'x', 'nanbyo_doctor', 'B', 'x', 1, 1, NULL);",
            )
            .unwrap();
        }
        let store = Store::open(&path, Some(&key(3)), 1).unwrap();
        let holders: Vec<String> = store
            .read(|c| {
                let mut st =
                    c.prepare("SELECT login FROM users WHERE responsible = 1 ORDER BY id")?;
                let rows = st
                    .query_map([], |r| r.get(0))?
                    .collect::<Result<Vec<String>, _>>()?;
                Ok::<_, StoreError>(rows)
            })
            .await
            .unwrap();
        assert_eq!(holders, ["it-a", "dr-b"]);
    }

    #[tokio::test]
    async fn a_wrong_key_is_a_clear_error_and_leaves_the_file_intact() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.db");
        let store = Store::open(&path, Some(&key(1)), 1).unwrap();
        store
            .write(|c| {
                c.execute(
                    "INSERT INTO institutions (code, name, kind) VALUES ('1310000001', 'テスト病院', 'hospital')",
                    [],
                )?;
                Ok::<_, StoreError>(())
            })
            .await
            .unwrap();
        drop(store);
        std::thread::sleep(std::time::Duration::from_millis(50));
        let err = Store::open(&path, Some(&key(2)), 1).unwrap_err();
        assert!(matches!(err, StoreError::WrongKey { .. }), "{err}");
        assert!(err.to_string().contains("key is wrong"));
        let err = Store::open(&path, None, 1).unwrap_err();
        assert!(matches!(err, StoreError::WrongKey { .. }), "{err}");
        let store = Store::open(&path, Some(&key(1)), 1).unwrap();
        let n: i64 = store
            .read(|c| {
                Ok::<_, StoreError>(
                    c.query_row("SELECT count(*) FROM institutions", [], |r| r.get(0))?,
                )
            })
            .await
            .unwrap();
        assert_eq!(n, 1);
    }

    #[tokio::test]
    async fn a_database_newer_than_this_binary_is_refused_with_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.db");
        let store = Store::open(&path, Some(&key(5)), 1).unwrap();
        let newer = schema_version() + 1;
        store
            .write(move |c| {
                c.pragma_update(None, "user_version", newer)?;
                Ok::<_, StoreError>(())
            })
            .await
            .unwrap();
        drop(store);
        std::thread::sleep(std::time::Duration::from_millis(50));
        let err = Store::open(&path, Some(&key(5)), 1).unwrap_err();
        assert!(matches!(err, StoreError::TooNew { .. }), "{err}");
        assert!(err.to_string().contains("newer nsdb"), "{err}");
    }

    #[cfg(unix)]
    #[test]
    fn a_key_file_others_can_read_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.key");
        std::fs::write(&path, key(3).to_hex()).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = DbKey::load(&KeySource::File(path.clone())).unwrap_err();
        assert!(err.to_string().contains("chmod 600"), "{err}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(DbKey::load(&KeySource::File(path.clone())).unwrap(), key(3));
        std::fs::write(&path, "not a key").unwrap();
        let err = DbKey::load(&KeySource::File(path)).unwrap_err();
        assert!(err.to_string().contains("64 hexadecimal"), "{err}");
    }

    /// A database file others can read is named with the exact chmod; one of the data
    /// directory's owner, mode 600, passes.
    #[cfg(unix)]
    #[test]
    fn database_files_others_can_read_are_named_with_the_command_that_fixes_them() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("node.db");
        std::fs::write(&db, b"x").unwrap();
        let wal = dir.path().join("node.db-wal");
        std::fs::write(&wal, b"").unwrap();
        std::fs::set_permissions(&wal, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
        let fix = private_files_fix(&db).expect("a finding");
        assert!(
            fix.contains(&format!(
                "{} can be read by others (mode 644)",
                db.display()
            )),
            "{fix}"
        );
        assert!(
            fix.ends_with(&format!("as root run chmod 600 {}", db.display())),
            "{fix}"
        );
        assert!(!fix.contains("chown") && !fix.contains("-wal"), "{fix}");
        std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(private_files_fix(&db), None);
    }

    /// The service's credential is gone once it is stopped: the refusal says which file to use.
    #[test]
    fn a_missing_systemd_credential_says_to_use_the_file_it_is_loaded_from() {
        let path = PathBuf::from("/run/credentials/nsdb-test-absent.service/db.key");
        let err = DbKey::load(&KeySource::File(path.clone()))
            .unwrap_err()
            .to_string();
        assert!(err.contains(&path.display().to_string()), "{err}");
        assert!(
            err.contains("systemd credential") && err.contains("/etc/nsdb/admin.toml"),
            "{err}"
        );
        let elsewhere = std::env::temp_dir().join("nsdb-test-absent").join("db.key");
        let err = DbKey::load(&KeySource::File(elsewhere))
            .unwrap_err()
            .to_string();
        assert!(!err.contains("credential"), "{err}");
    }

    /// SQLite's damage codes become [`StoreError::Corrupt`] naming the file; other errors stay.
    #[test]
    fn damage_is_said_for_the_file_it_is_in() {
        let corrupt = StoreError::from(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CORRUPT),
            Some("database disk image is malformed".into()),
        ));
        assert!(corrupt.is_damage());
        let said = corrupt
            .at(Path::new("/var/lib/nsdb/node.db"))
            .with_restore(Path::new("/etc/nsdb/admin.toml"), "what comes back")
            .to_string();
        assert!(
            said.starts_with("database /var/lib/nsdb/node.db is damaged (SQLite: database disk image is malformed)"),
            "{said}"
        );
        assert!(
            said.contains("nsdb restore --config /etc/nsdb/admin.toml BACKUP_DIR")
                && said.ends_with("what comes back"),
            "{said}"
        );
        let other = StoreError::from(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CONSTRAINT),
            None,
        ));
        assert!(!other.is_damage());
        assert!(matches!(other.at(Path::new("x")), StoreError::Sqlite(_)));
    }

    #[tokio::test]
    async fn the_audit_log_cannot_be_rewritten() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("n.db"), Some(&key(4)), 1).unwrap();
        let res = store
            .write(|c| {
                c.execute(
                    "INSERT INTO audit (at, user_id, action, target, prev_hash, hash) VALUES (1, NULL, 'x', NULL, x'00', x'01')",
                    [],
                )?;
                c.execute("UPDATE audit SET action = 'y'", [])?;
                Ok::<_, StoreError>(())
            })
            .await;
        assert!(res.unwrap_err().to_string().contains("append-only"));
    }

    #[tokio::test]
    async fn a_full_disk_is_remembered_for_the_health_check() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("n.db"), Some(&key(6)), 1).unwrap();
        let window = std::time::Duration::from_secs(600);
        assert!(!store.disk_full_within(window));
        // SQLite answers SQLITE_FULL once the file may not grow: as on a full disk.
        let res = store
            .write(|c| {
                c.execute_batch("CREATE TABLE filler (b BLOB)")?;
                let pages: i64 = c.query_row("PRAGMA page_count", [], |r| r.get(0))?;
                c.query_row(&format!("PRAGMA max_page_count = {pages}"), [], |_| Ok(()))?;
                c.execute("INSERT INTO filler VALUES (zeroblob(1000000))", [])?;
                Ok::<_, StoreError>(())
            })
            .await;
        assert!(matches!(res, Err(StoreError::DiskFull)), "{res:?}");
        assert!(store.disk_full_within(window));
    }
}
