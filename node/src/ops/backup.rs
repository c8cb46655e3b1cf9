//! `nsdb backup` and `nsdb restore`: an online, consistent copy of the node's database, still
//! encrypted with the node's key, with a manifest; and a restore that verifies everything before
//! it replaces anything.
//!
//! A backup is a directory holding `node.db` (SQLCipher, the node's key, copied page by page
//! with SQLite's backup API in one read transaction while the node keeps serving) and
//! [`MANIFEST`] (which node, schema version, counts, the audit chain's length and the file's
//! SHA-256). It holds everything only the node has: users, sessions, workflow history, the audit
//! log, issued access keys, as well as the sheets. The key is never written into a backup.
//!
//! A restore checks, in order: the manifest is of this node, the checksum matches, the file opens
//! with the key, `cipher_integrity_check` and `integrity_check` pass, the audit chain verifies,
//! the database says it is this node's and is not newer than this binary. Only then is the
//! current database moved aside (kept as `node.db.before-restore-<ms>`) and the backup put in
//! its place with an atomic rename, marked restored so that it issues no access key before the
//! hub has said how far its key blocks were used. This module must never replace a database it
//! has not verified, and never write a key.

use std::path::{Path, PathBuf};

use rusqlite::OpenFlags;
use serde::{Deserialize, Serialize};

use super::guard::{DirLock, database_owner};
use super::{OpsError, integrity_problems, io, sha256_file, sync_dir};
use crate::store::{DbKey, connect};

/// The manifest's file name inside a backup directory.
pub const MANIFEST: &str = "manifest.toml";
/// The database's file name inside a backup directory.
pub const DATABASE: &str = "node.db";

/// What a backup holds, written beside its database.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Manifest {
    /// Manifest format, 1.
    pub format: u32,
    /// The node's id (32 hexadecimal characters).
    pub node_id: String,
    pub node_name: String,
    pub institution: String,
    /// When the backup was taken, Unix milliseconds.
    pub taken_at_ms: i64,
    /// The version of nsdb that took it.
    pub nsdb_version: String,
    /// The database's schema version (`user_version`).
    pub schema_version: i64,
    /// SHA-256 of `node.db`, 64 hexadecimal characters.
    pub sha256: String,
    /// Size of `node.db` in bytes.
    pub bytes: u64,
    pub sheets: i64,
    pub users: i64,
    pub workflow_events: i64,
    /// Entries in the audit log (its chain verified when the backup was taken).
    pub audit_entries: u64,
}

/// What a database holds, counted.
struct Counts {
    schema_version: i64,
    sheets: i64,
    users: i64,
    workflow_events: i64,
    audit_entries: u64,
}

/// Verifies an open database: integrity, the audit chain; returns its counts.
fn verify_database(conn: &rusqlite::Connection) -> Result<Counts, String> {
    let problems = integrity_problems(conn).map_err(|e| e.to_string())?;
    if !problems.is_empty() {
        return Err(format!("the database is damaged: {}", problems.join("; ")));
    }
    let audit_entries = match crate::audit::verify(conn).map_err(|e| e.to_string())? {
        Ok(n) => n,
        Err(seq) => return Err(format!("the audit chain breaks at entry {seq}")),
    };
    let count = |table: &str| -> Result<i64, String> {
        conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
            .map_err(|e| e.to_string())
    };
    Ok(Counts {
        schema_version: conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(|e| e.to_string())?,
        sheets: count("sheets")?,
        users: count("users")?,
        workflow_events: count("workflow_events")?,
        audit_entries,
    })
}

/// Takes a backup of the node's database at `db` into `dest` (a new or empty directory), while
/// the node may keep serving. Returns the manifest written beside it.
///
/// Errors: the destination is not empty or cannot be written; the database cannot be opened
/// with `key`; the copy fails verification (then the destination is left without a manifest).
pub fn backup(
    config: &crate::NodeConfig,
    key: &DbKey,
    node_id: &str,
    dest: &Path,
    now_ms: i64,
) -> Result<Manifest, OpsError> {
    if dest.exists()
        && std::fs::read_dir(dest)
            .map_err(io("cannot read", dest))?
            .next()
            .is_some()
    {
        return Err(OpsError::Io {
            what: "the backup directory must be new or empty",
            path: dest.to_path_buf(),
            source: std::io::Error::from(std::io::ErrorKind::AlreadyExists),
        });
    }
    std::fs::create_dir_all(dest).map_err(io("cannot create", dest))?;
    let target = dest.join(DATABASE);
    {
        let src = connect(
            &config.database_path(),
            Some(key),
            OpenFlags::SQLITE_OPEN_READ_ONLY,
        )?;
        let mut dst = connect(
            &target,
            Some(key),
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE,
        )?;
        // One step of every page: one read transaction, so the copy is one consistent moment
        // even while the node keeps writing (WAL readers never block the writer).
        let b = rusqlite::backup::Backup::new(&src, &mut dst)?;
        b.step(-1)?;
        drop(b);
        dst.pragma_update(None, "journal_mode", "DELETE")?;
    }
    std::fs::File::open(&target)
        .and_then(|f| f.sync_all())
        .map_err(io("cannot sync", &target))?;
    let conn = connect(&target, Some(key), OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let counts = verify_database(&conn).map_err(|reason| OpsError::BadBackup {
        dir: dest.to_path_buf(),
        reason,
    })?;
    drop(conn);
    let manifest = Manifest {
        format: 1,
        node_id: node_id.to_string(),
        node_name: config.name.clone(),
        institution: config.institution.code.clone(),
        taken_at_ms: now_ms,
        nsdb_version: env!("CARGO_PKG_VERSION").to_string(),
        schema_version: counts.schema_version,
        sha256: sha256_file(&target)?,
        bytes: std::fs::metadata(&target)
            .map_err(io("cannot read", &target))?
            .len(),
        sheets: counts.sheets,
        users: counts.users,
        workflow_events: counts.workflow_events,
        audit_entries: counts.audit_entries,
    };
    let path = dest.join(MANIFEST);
    let text = toml::to_string(&manifest).map_err(|e| OpsError::Io {
        what: "cannot write",
        path: path.clone(),
        source: std::io::Error::other(e),
    })?;
    std::fs::write(&path, text).map_err(io("cannot write", &path))?;
    std::fs::File::open(&path)
        .and_then(|f| f.sync_all())
        .map_err(io("cannot sync", &path))?;
    sync_dir(dest)?;
    Ok(manifest)
}

/// Reads a backup's manifest.
pub fn read_manifest(dir: &Path) -> Result<Manifest, OpsError> {
    let path = dir.join(MANIFEST);
    let text = std::fs::read_to_string(&path).map_err(io("cannot read the manifest", &path))?;
    toml::from_str(&text).map_err(|e| OpsError::BadBackup {
        dir: dir.to_path_buf(),
        reason: format!("its manifest cannot be read: {e}"),
    })
}

/// Verifies the backup in `dir` as [`restore`] does, without replacing anything; returns its
/// manifest.
pub fn verify(dir: &Path, key: &DbKey, node_id: &str) -> Result<Manifest, OpsError> {
    let bad = |reason: String| OpsError::BadBackup {
        dir: dir.to_path_buf(),
        reason,
    };
    let manifest = read_manifest(dir)?;
    if manifest.node_id != node_id {
        return Err(OpsError::ForeignBackup {
            dir: dir.to_path_buf(),
            found: manifest.node_id,
            ours: node_id.to_string(),
        });
    }
    let db = dir.join(DATABASE);
    let sum = sha256_file(&db)?;
    if sum != manifest.sha256 {
        return Err(bad(format!(
            "{DATABASE} has changed since the backup was taken (SHA-256 {sum}, the manifest says {})",
            manifest.sha256
        )));
    }
    let conn = connect(&db, Some(key), OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(|e| {
        bad(format!(
            "it does not open with this node's key ({e}); if the key was changed since, give the key it was taken with"
        ))
    })?;
    let counts = verify_database(&conn).map_err(bad)?;
    match database_owner(&conn)? {
        Some(found) if found == node_id => {}
        found => {
            return Err(OpsError::ForeignBackup {
                dir: dir.to_path_buf(),
                found: found.unwrap_or_else(|| "(none recorded)".into()),
                ours: node_id.to_string(),
            });
        }
    }
    if counts.schema_version > crate::store::schema_version() as i64 {
        return Err(bad(format!(
            "it has schema version {}, newer than this nsdb knows ({}); restore it with the nsdb that took it",
            counts.schema_version,
            crate::store::schema_version()
        )));
    }
    if counts.audit_entries != manifest.audit_entries || counts.sheets != manifest.sheets {
        return Err(bad(
            "its contents do not match its manifest (sheets or audit entries)".into(),
        ));
    }
    Ok(manifest)
}

/// What a restore did.
#[derive(Debug)]
pub struct Restored {
    pub manifest: Manifest,
    /// Where the database it replaced was moved (None when there was none).
    pub previous: Option<PathBuf>,
}

/// Restores the backup in `dir` over the node's database, after verifying it ([`verify`]). The
/// node must be stopped (its data directory's lock is taken). The current database (with its
/// WAL) is kept as `node.db.before-restore-<now_ms>`. The restored database is marked restored
/// (`keys::RESTORED`): it issues no access key until the hub has answered how far its key
/// blocks were used.
pub fn restore(
    config: &crate::NodeConfig,
    key: &DbKey,
    node_id: &str,
    dir: &Path,
    now_ms: i64,
) -> Result<Restored, OpsError> {
    let _lock = DirLock::acquire(&config.data_dir)?;
    let manifest = verify(dir, key, node_id)?;
    let db = config.database_path();
    let staged = config.data_dir.join("node.db.restoring");
    std::fs::copy(dir.join(DATABASE), &staged).map_err(io("cannot copy the backup to", &staged))?;
    std::fs::File::open(&staged)
        .and_then(|f| f.sync_all())
        .map_err(io("cannot sync", &staged))?;
    if sha256_file(&staged)? != manifest.sha256 {
        let _ = std::fs::remove_file(&staged);
        return Err(OpsError::BadBackup {
            dir: dir.to_path_buf(),
            reason: "the copy differs from the backup (disk error?)".into(),
        });
    }
    // The copy may be older than keys this node issued since: it issues none until the hub has
    // told it how far its key blocks were used (docs/security.md, "Access keys").
    {
        let conn = connect(&staged, Some(key), OpenFlags::SQLITE_OPEN_READ_WRITE)?;
        crate::keys::mark_restored(&conn, now_ms)?;
    }
    std::fs::File::open(&staged)
        .and_then(|f| f.sync_all())
        .map_err(io("cannot sync", &staged))?;
    let previous = if db.exists() {
        let aside = config
            .data_dir
            .join(format!("node.db.before-restore-{now_ms}"));
        for suffix in ["-wal", "-shm"] {
            let from = PathBuf::from(format!("{}{suffix}", db.display()));
            if from.exists() {
                let to = PathBuf::from(format!("{}{suffix}", aside.display()));
                std::fs::rename(&from, &to).map_err(io("cannot move aside", &from))?;
            }
        }
        std::fs::rename(&db, &aside).map_err(io("cannot move aside", &db))?;
        Some(aside)
    } else {
        None
    };
    std::fs::rename(&staged, &db).map_err(io("cannot put the backup in place at", &db))?;
    sync_dir(&config.data_dir)?;
    Ok(Restored { manifest, previous })
}
