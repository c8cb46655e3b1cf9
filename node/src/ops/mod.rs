//! Running a node for real: what an operator does beside (or instead of) serving. `guard`
//! (a node never starts as someone else or as nobody; one server per data directory), `backup`
//! (online, encrypted backups with a manifest, and verified restores), `rekey` (changing the
//! database key so that a crash at any point leaves a database that opens with one of the two
//! keys), `space` (free space on the data directory, a recent full disk), `tls` (the web
//! listener's certificate, and no plain HTTP beyond loopback), `terminals` (the terminal
//! certificates the listener can require of every browser: 端末証明書).
//!
//! This module works on files and on its own database connections; it must never log a stored
//! value or a key, and must never replace a database before the replacement has been verified.

pub mod backup;
pub mod doctor;
pub mod guard;
pub mod integrity;
pub mod metrics;
pub mod rekey;
pub mod space;
pub mod terminals;
pub mod tls;

use std::path::{Path, PathBuf};

use crate::store::StoreError;

/// Where a node's changes made after a backup can come back from once that backup is restored.
/// Only a node enrolled with a hub catches up by sync; advice must never tell the operator of
/// any other node to wait for the hub.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CatchUp {
    /// A hospital or municipality node enrolled with a hub: sheets come back by sync.
    FromHub,
    /// The hub itself: what it received after the backup is not in it.
    Hub,
    /// A node with no accepted enrollment (no `enrollment.toml`): nothing comes back.
    NotEnrolled,
}

impl CatchUp {
    /// This node's case, from its role and its data directory's enrollment.
    pub fn of(config: &crate::NodeConfig) -> CatchUp {
        if config.role == crate::NodeRole::Hub {
            return CatchUp::Hub;
        }
        match nsdb_provisioning::enrollment::accepted(&config.data_dir) {
            Ok(Some(_)) => CatchUp::FromHub,
            _ => CatchUp::NotEnrolled,
        }
    }

    /// What comes back after restoring an older backup, one clause for the operator.
    pub fn after_restore(self) -> &'static str {
        match self {
            CatchUp::FromHub => "sheets saved since that backup come back from the hub by sync",
            CatchUp::Hub => {
                "this is the hub: what it received after that backup is not in the backup"
            }
            CatchUp::NotEnrolled => {
                "this node is not enrolled with a hub, so nothing saved after that backup comes back"
            }
        }
    }
}

/// What an operator's command can fail with, each saying what to do.
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    #[error(
        "{} is {what}, but this data directory held the database of node {node}: restore it from a backup (nsdb restore --config FILE BACKUP_DIR); to start this node afresh as an empty node instead, remove {}",
        path.display(),
        marker.display()
    )]
    DatabaseMissing {
        path: PathBuf,
        what: &'static str,
        node: String,
        marker: PathBuf,
    },
    #[error(
        "データディレクトリ {} {what}。nsdb {command} はノードを作りません（data_dir の書き間違いで空のノードができないように）。{} の data_dir を確かめてください。ここに新しいノードを用意するには先に nsdb init --config {} を（その後 nsdb user add を）、バックアップから戻すには nsdb restore --config {} BACKUP_DIR を実行してください。",
        dir.display(),
        config.display(),
        config.display(),
        config.display()
    )]
    NoNode {
        dir: PathBuf,
        what: &'static str,
        config: PathBuf,
        /// The command that refused (`serve`, `user add`).
        command: &'static str,
    },
    #[error(
        "{} already holds a node (its database is {}): nsdb init sets up only a new node; serve this one (nsdb serve --config {})",
        dir.display(),
        db.display(),
        config.display()
    )]
    NodeExists {
        dir: PathBuf,
        db: PathBuf,
        config: PathBuf,
    },
    #[error(
        "{} belongs to node {found}, but this data directory's identity is node {ours}: put this node's own database (or a backup of it) in place",
        path.display()
    )]
    ForeignDatabase {
        path: PathBuf,
        found: String,
        ours: String,
    },
    #[error(
        "データディレクトリ {} は{found}のノードです。設定の role = \"{wanted}\" では開けません（何も変更していません）。設定ファイルの data_dir と role を確かめてください。",
        dir.display()
    )]
    OtherRole {
        dir: PathBuf,
        /// What the data directory's node is (医療機関, 自治体, 厚生労働省（ハブ）).
        found: &'static str,
        /// The role the configuration asks for (`hub`, `hospital`, `municipality`).
        wanted: &'static str,
    },
    #[error(
        "the node using {} is running (its lock is held): stop it first (systemctl stop nsdb)",
        dir.display()
    )]
    NodeRunning { dir: PathBuf },
    #[error(
        "the backup in {} is of node {found}, not of this node ({ours}); nothing was replaced. If this is the node the backup was taken of and its identity.key was made after the disk was lost (by nsdb provision node-key, init or a start), move that identity.key aside and restore again: the backup's own identity is put back",
        dir.display()
    )]
    ForeignBackup {
        dir: PathBuf,
        found: String,
        ours: String,
    },
    #[error("the backup in {} fails verification: {reason}; nothing was replaced", dir.display())]
    BadBackup { dir: PathBuf, reason: String },
    #[error(
        "{} is not a new or empty directory: give a new or empty directory for the backup",
        dir.display()
    )]
    NotEmpty { dir: PathBuf },
    #[error("nsdb backup does not write to {}: {reason}; nothing was written", dest.display())]
    BackupDestination { dest: PathBuf, reason: String },
    #[error(
        "the disk holding {} is full: the backup needs about {needs_bytes} bytes free there; the partial files were removed",
        path.display()
    )]
    DiskFull { path: PathBuf, needs_bytes: u64 },
    #[error("this backup is incomplete (no manifest in {}): take another", dir.display())]
    Incomplete { dir: PathBuf },
    /// The backup needs another key than the one given; `kept` is where `nsdb rekey` kept that
    /// key beside the node's key file, when it is there.
    #[error(
        "the backup in {} was taken with the database key of fingerprint {needs}, not with the key given ({given}): {}; nothing was replaced",
        dir.display(),
        match kept {
            Some(kept) => format!("nsdb rekey kept that key in {}: give it with nsdb restore --key-file {} …", kept.display(), kept.display()),
            None => format!("give that key with nsdb restore --key-file OLD_KEY_FILE (nsdb rekey keeps each key it replaces beside key_file as <key_file>.old-<fingerprint>: here <key_file>.old-{needs})"),
        }
    )]
    BackupKey {
        dir: PathBuf,
        needs: String,
        given: String,
        kept: Option<PathBuf>,
    },
    #[error(
        "{} differs from the one in the backup in {}: this data directory belongs to another node or setup; restore into the data directory of the node the backup was taken of, or move {} away; nothing was replaced",
        path.display(),
        dir.display(),
        path.display()
    )]
    FileConflict { path: PathBuf, dir: PathBuf },
    #[error(
        "not restored: {sheets} sheet(s) {lost}; nothing was replaced: {advice}, or give --yes"
    )]
    NotConfirmed {
        sheets: usize,
        /// Why they would be lost (never acknowledged by the hub; or no hub to hold them).
        lost: &'static str,
        /// How to keep them first (sync, then a new backup; or a backup of the current one).
        advice: &'static str,
    },
    #[error("{what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Identity(#[from] nsdb_provisioning::ProvisioningError),
    #[error("the background check stopped before it finished: {0}")]
    Stopped(String),
}

impl OpsError {
    /// Whether the failure is a full disk (SQLite's or the file system's).
    pub fn is_disk_full(&self) -> bool {
        match self {
            OpsError::Store(StoreError::DiskFull) | OpsError::DiskFull { .. } => true,
            OpsError::Io { source, .. } => {
                source.kind() == std::io::ErrorKind::StorageFull
                    || source.raw_os_error() == Some(28)
            }
            _ => false,
        }
    }
}

impl From<rusqlite::Error> for OpsError {
    fn from(e: rusqlite::Error) -> Self {
        OpsError::Store(StoreError::from(e))
    }
}

pub(crate) fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> OpsError {
    let path = path.to_path_buf();
    move |source| OpsError::Io { what, path, source }
}

/// Makes a rename or a new file in `dir` durable (the directory entry itself is synced).
pub(crate) fn sync_dir(dir: &Path) -> Result<(), OpsError> {
    std::fs::File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(io("cannot sync directory", dir))
}

/// SHA-256 of a file, as 64 hexadecimal characters.
pub fn sha256_file(path: &Path) -> Result<String, OpsError> {
    use sha2::Digest;
    let mut file = std::fs::File::open(path).map_err(io("cannot read", path))?;
    let mut hasher = sha2::Sha256::new();
    std::io::copy(&mut file, &mut hasher).map_err(io("cannot read", path))?;
    Ok(hex::encode(hasher.finalize()))
}

/// What `PRAGMA cipher_integrity_check` (every page's HMAC) and `PRAGMA integrity_check` report:
/// empty when the database is intact, else the first few problems.
pub fn integrity_problems(conn: &rusqlite::Connection) -> Result<Vec<String>, OpsError> {
    let mut problems = Vec::new();
    {
        let mut st = conn.prepare("PRAGMA cipher_integrity_check")?;
        let rows = st.query_map([], |r| r.get::<_, String>(0))?;
        for row in rows.take(5) {
            problems.push(row?);
        }
    }
    let mut st = conn.prepare("PRAGMA integrity_check(5)")?;
    let rows = st.query_map([], |r| r.get::<_, String>(0))?;
    for row in rows {
        let row = row?;
        if row != "ok" {
            problems.push(row);
        }
    }
    Ok(problems)
}
