//! `nsdb backup` and `nsdb restore`: an online, consistent copy of the node's database, still
//! encrypted with the node's key, with a manifest; and a restore that verifies everything before
//! it replaces anything.
//!
//! A backup is a directory holding `node.db` (SQLCipher, the node's key, copied page by page
//! with SQLite's backup API in one read transaction while the node keeps serving) and
//! [`MANIFEST`] (which node, schema version, counts, the audit chain's length, the file's
//! SHA-256, the key's fingerprint and the names of the files it carries). It holds everything
//! only the node has: users, sessions, workflow history, the audit log, issued access keys, the
//! sheets, and the data directory's own files ([`CARRIED`]: identity, enrollment, seal key, a
//! hub's registry and settings), these in a table that exists only in backups
//! ([`FILES_TABLE`]), so encrypted with the database. The database key is never written into a
//! backup. Files are written under temporary names and renamed at the end, the manifest last:
//! a directory without a manifest is an incomplete backup.
//!
//! A restore checks, in order: the manifest is of this node, the checksum matches, the file opens
//! with the key, `cipher_integrity_check` and `integrity_check` pass, the audit chain verifies,
//! the database says it is this node's and is not newer than this binary. Only then is the
//! current database moved aside (kept as `node.db.before-restore-<ms>`) and the backup put in
//! its place with an atomic rename, marked restored so that it issues no access key before the
//! hub has said how far its key blocks were used. Data directory files the backup carries are
//! put back only where missing (a node that lost its disk); a different identity or seal key is
//! refused. With the key a backup was taken with (after a rekey), the staged copy is
//! re-encrypted to the node's key before it is put in place. This module must never replace a
//! database it has not verified, never overwrite a node's identity, and never write the
//! database key anywhere.

use std::path::{Path, PathBuf};

use rusqlite::OpenFlags;
use serde::{Deserialize, Serialize};

use super::guard::{DirLock, database_owner};
use super::{OpsError, integrity_problems, io, sha256_file, sync_dir};
use crate::store::{DbKey, StoreError, connect};

/// The manifest's file name inside a backup directory.
pub const MANIFEST: &str = "manifest.toml";
/// The database's file name inside a backup directory.
pub const DATABASE: &str = "node.db";

/// The data directory's files a backup carries (when the node has them), by name.
pub const CARRIED: &[&str] = &[
    nsdb_provisioning::enrollment::IDENTITY_FILE,
    nsdb_provisioning::enrollment::ENROLLMENT_FILE,
    "seal.key",
    nsdb_provisioning::enrollment::REGISTRY_FILE,
    nsdb_provisioning::enrollment::HUB_SETTINGS_FILE,
    // The check tool's key information this node issued: without it, files sealed with key
    // information handed out before the disk was lost would be refused after a restore.
    crate::imports::ISSUED_FILE,
];
/// Carried files that change during a node's life: when the data directory has another version,
/// a restore keeps it (it is newer than the backup's). The others (identity, seal key) are never
/// replaced: a different one is refused.
const KEPT_WHEN_DIFFERENT: &[&str] = &[
    nsdb_provisioning::enrollment::ENROLLMENT_FILE,
    nsdb_provisioning::enrollment::REGISTRY_FILE,
    nsdb_provisioning::enrollment::HUB_SETTINGS_FILE,
    crate::imports::ISSUED_FILE,
];
/// The table, only in a backup's database, holding the [`CARRIED`] files: `(name TEXT, content
/// BLOB)`. A restore removes it from the database it puts in place.
pub const FILES_TABLE: &str = "backup_files";
/// Temporary names inside the destination while a backup is written.
const PARTIAL_DATABASE: &str = "node.db.partial";
const PARTIAL_MANIFEST: &str = "manifest.toml.partial";

/// A key's fingerprint: the first 8 bytes of SHA-256 over the 32 key bytes, 16 hexadecimal
/// characters. Tells which key a backup needs without revealing it.
pub fn key_fingerprint(key: &DbKey) -> String {
    use sha2::Digest;
    let bytes = hex::decode(key.to_hex()).unwrap_or_default();
    hex::encode(&sha2::Sha256::digest(bytes)[..8])
}

/// An error met opening or reading the node's own database, said so that its operator knows
/// what to do, alike in every command (serve, doctor, backup, restore, rekey): damage
/// (SQLITE_CORRUPT, SQLITE_NOTADB past the first page) names the database file and the restore
/// of the latest backup, with what comes back after it on this node ([`super::CatchUp`]); a key
/// that does not open it while another key file beside `key_file` does (`<key_file>.new`: an
/// interrupted rekey) says what `nsdb serve` says ([`super::rekey::wrong_key_advice`]). Any
/// other error is returned as it is. `config_file` is the configuration the commands given
/// name (None: `FILE`).
pub fn for_operator(
    config: &crate::NodeConfig,
    config_file: Option<&Path>,
    e: OpsError,
) -> OpsError {
    match e {
        OpsError::Store(e) => OpsError::Store(store_for_operator(config, config_file, e)),
        other => other,
    }
}

/// [`for_operator`] for a [`StoreError`].
pub fn store_for_operator(
    config: &crate::NodeConfig,
    config_file: Option<&Path>,
    e: StoreError,
) -> StoreError {
    match e {
        StoreError::WrongKey { path } => match super::rekey::wrong_key_advice(config) {
            Some(advice) => StoreError::OtherKey(advice),
            None => StoreError::WrongKey { path },
        },
        e if e.is_damage() => e.at(&config.database_path()).with_restore(
            config_file.unwrap_or(Path::new("FILE")),
            super::CatchUp::of(config).after_restore(),
        ),
        // Damage met inside a statement of SQLite's own (an export, a copy) comes back as a
        // plain error ("SQL logic error", or a message without the code): the page check says
        // whether the database is damaged.
        e @ (StoreError::Sqlite(_) | StoreError::Migration(_)) => match page_check(config) {
            Some(found) => StoreError::damaged_file(&config.database_path(), &found).with_restore(
                config_file.unwrap_or(Path::new("FILE")),
                super::CatchUp::of(config).after_restore(),
            ),
            None => e,
        },
        e => e,
    }
}

/// What the page check (`cipher_integrity_check`, `integrity_check`) finds wrong with the
/// node's database, opened with its configured key; None when it passes or cannot run for
/// another reason than damage.
pub(crate) fn page_check(config: &crate::NodeConfig) -> Option<String> {
    let key = DbKey::load(&config.key).ok()?;
    let conn = match connect(
        &config.database_path(),
        Some(&key),
        OpenFlags::SQLITE_OPEN_READ_ONLY,
    ) {
        Ok(c) => c,
        Err(StoreError::Corrupt { detail, .. }) => return Some(detail),
        Err(_) => return None,
    };
    match integrity_problems(&conn) {
        Ok(p) if p.is_empty() => None,
        Ok(p) => Some(format!("the page check: {}", p.join("; "))),
        Err(OpsError::Store(e)) if e.is_damage() => Some(format!("the page check: {e}")),
        Err(_) => None,
    }
}

/// Why `dest` cannot receive a backup of the node whose data directory is `data_dir`, if it
/// cannot: its parent directory does not exist (a backup share that is not mounted: nsdb backup
/// never creates it, which would fill the node's own disk), or it is inside the data directory
/// (lost with the disk it should survive).
fn unfit_destination(dest: &Path, data_dir: &Path) -> Option<String> {
    let parent = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !parent.is_dir() {
        return Some(format!(
            "its parent directory {} does not exist: mount or create it first (nsdb backup creates only the backup directory itself, never the directories above it, so that a backup share that is not mounted cannot fill the node's own disk)",
            parent.display()
        ));
    }
    let full = match dest.canonicalize() {
        Ok(p) => p,
        Err(_) => parent
            .canonicalize()
            .ok()?
            .join(dest.file_name().unwrap_or_default()),
    };
    let data = data_dir.canonicalize().ok()?;
    full.starts_with(&data).then(|| {
        format!(
            "it is inside the node's data directory {}, where a backup is lost with the disk it should survive: give a directory outside it, on another disk or share",
            data_dir.display()
        )
    })
}

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
    /// [`key_fingerprint`] of the key the backup is encrypted with (empty in older backups).
    #[serde(default)]
    pub key_fingerprint: String,
    /// The data directory's files the backup carries, by name (see [`CARRIED`]).
    #[serde(default)]
    pub files: Vec<String>,
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
    let problems = integrity_problems(conn).map_err(|e| {
        format!("the page check (cipher_integrity_check) could not run ({e}): the file is damaged; use another backup")
    })?;
    if !problems.is_empty() {
        return Err(format!(
            "the page check found damage: {}; use another backup",
            problems.join("; ")
        ));
    }
    let audit_entries = match crate::audit::verify(conn)
        .map_err(|e| format!("the audit log cannot be read ({e}); use another backup"))?
    {
        Ok(n) => n,
        Err(seq) => {
            return Err(format!(
                "the audit chain breaks at entry {seq}; use another backup"
            ));
        }
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
/// the node may keep serving, with the data directory's [`CARRIED`] files inside the encrypted
/// copy. Returns the manifest written beside it.
///
/// Files are written under temporary names and renamed at the end, the manifest last; on any
/// failure the partial files are removed. Errors: the destination is not empty or cannot be
/// written; the destination's disk is full ([`OpsError::DiskFull`], with the size needed); the
/// database cannot be opened with `key`; the copy fails verification.
pub fn backup(
    config: &crate::NodeConfig,
    key: &DbKey,
    node_id: &str,
    dest: &Path,
    now_ms: i64,
) -> Result<Manifest, OpsError> {
    if let Some(reason) = unfit_destination(dest, &config.data_dir) {
        return Err(OpsError::BackupDestination {
            dest: dest.to_path_buf(),
            reason,
        });
    }
    if dest.exists() && !dest.is_dir() {
        return Err(OpsError::NotEmpty {
            dir: dest.to_path_buf(),
        });
    }
    if dest.exists()
        && std::fs::read_dir(dest)
            .map_err(io("cannot read", dest))?
            .next()
            .is_some()
    {
        return Err(OpsError::NotEmpty {
            dir: dest.to_path_buf(),
        });
    }
    // About what the copy needs where it is written: the database with what its WAL holds,
    // and room for SQLite's files beside the copy while it is written (-journal, -wal, -shm).
    let needs_bytes = crate::store::database_files(&config.database_path())
        .iter()
        .take(2)
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum::<u64>()
        + WORKING_ROOM;
    let full = || OpsError::DiskFull {
        path: dest.to_path_buf(),
        needs_bytes,
    };
    if room_short(dest, needs_bytes) {
        return Err(full());
    }
    // Only the backup directory itself: its parent exists (unfit_destination).
    let created = !dest.exists();
    if created {
        std::fs::create_dir(dest).map_err(io("cannot create", dest))?;
    }
    let result = write_backup(config, key, node_id, dest, now_ms);
    if let Err(e) = result {
        for name in [PARTIAL_MANIFEST, DATABASE, MANIFEST] {
            let _ = std::fs::remove_file(dest.join(name));
        }
        remove_with_side_files(&dest.join(PARTIAL_DATABASE));
        // Nothing of a failed backup stays: not even the directory it made (an empty one
        // given to it stays, empty).
        if created {
            let _ = std::fs::remove_dir(dest);
        }
        let e = for_operator(config, None, e);
        // A full disk met inside SQLite's own files (its -shm) says only "disk I/O error":
        // the free space left says it was that.
        if e.is_disk_full() || (out_of_room(&e) && room_short(dest, needs_bytes)) {
            return Err(full());
        }
        return Err(e);
    }
    result
}

/// Room beyond the database's own size that a backup's copy, or a restore's staged copy, needs
/// while it is written (SQLite's -journal, -wal and -shm beside it).
const WORKING_ROOM: u64 = 256 * 1024;

/// Whether a failure may be a full disk said otherwise (an I/O error of SQLite's or ours).
fn out_of_room(e: &OpsError) -> bool {
    matches!(e, OpsError::Store(_) | OpsError::Io { .. })
}

/// Removes a database file that is being written and what SQLite keeps beside it (-journal,
/// -wal, -shm), those there are.
fn remove_with_side_files(db: &Path) {
    for suffix in ["", "-journal", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
}

/// Whether the file system holding `at` has less than `needs_bytes` free.
fn room_short(at: &Path, needs_bytes: u64) -> bool {
    super::space::free_bytes(at).is_some_and(|free| free < needs_bytes)
}

fn write_backup(
    config: &crate::NodeConfig,
    key: &DbKey,
    node_id: &str,
    dest: &Path,
    now_ms: i64,
) -> Result<Manifest, OpsError> {
    let partial = dest.join(PARTIAL_DATABASE);
    let mut files = Vec::new();
    {
        let src = connect(
            &config.database_path(),
            Some(key),
            OpenFlags::SQLITE_OPEN_READ_ONLY,
        )?;
        let mut dst = connect(
            &partial,
            Some(key),
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE,
        )?;
        // One step of every page: one read transaction, so the copy is one consistent moment
        // even while the node keeps writing (WAL readers never block the writer).
        let b = rusqlite::backup::Backup::new(&src, &mut dst)?;
        // A page that does not decrypt stops the copy with an error of the copy's own ("SQL
        // logic error"): backup() has the page check say whether it was that.
        b.step(-1)?;
        drop(b);
        dst.pragma_update(None, "journal_mode", "DELETE")?;
        // A database that was once a backup's copy put in place by hand still has the table:
        // this backup's files replace it.
        dst.execute_batch(&format!(
            "DROP TABLE IF EXISTS {FILES_TABLE};
             CREATE TABLE {FILES_TABLE} (name TEXT PRIMARY KEY, content BLOB NOT NULL);"
        ))?;
        for name in CARRIED {
            let path = config.data_dir.join(name);
            if !path.exists() {
                continue;
            }
            let content = std::fs::read(&path).map_err(io("cannot read", &path))?;
            dst.execute(
                &format!("INSERT INTO {FILES_TABLE} (name, content) VALUES (?1, ?2)"),
                rusqlite::params![name, content],
            )?;
            files.push(name.to_string());
        }
    }
    std::fs::File::open(&partial)
        .and_then(|f| f.sync_all())
        .map_err(io("cannot sync", &partial))?;
    let conn = connect(&partial, Some(key), OpenFlags::SQLITE_OPEN_READ_ONLY)?;
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
        sha256: sha256_file(&partial)?,
        bytes: std::fs::metadata(&partial)
            .map_err(io("cannot read", &partial))?
            .len(),
        sheets: counts.sheets,
        users: counts.users,
        workflow_events: counts.workflow_events,
        audit_entries: counts.audit_entries,
        key_fingerprint: key_fingerprint(key),
        files,
    };
    let path = dest.join(PARTIAL_MANIFEST);
    let text = toml::to_string(&manifest).map_err(|e| OpsError::Io {
        what: "cannot write",
        path: path.clone(),
        source: std::io::Error::other(e),
    })?;
    std::fs::write(&path, text).map_err(io("cannot write", &path))?;
    std::fs::File::open(&path)
        .and_then(|f| f.sync_all())
        .map_err(io("cannot sync", &path))?;
    let db = dest.join(DATABASE);
    std::fs::rename(&partial, &db).map_err(io("cannot rename", &partial))?;
    sync_dir(dest)?;
    let final_manifest = dest.join(MANIFEST);
    std::fs::rename(&path, &final_manifest).map_err(io("cannot rename", &path))?;
    sync_dir(dest)?;
    Ok(manifest)
}

/// Reads a backup's manifest. A directory without one is an incomplete backup
/// ([`OpsError::Incomplete`]).
pub fn read_manifest(dir: &Path) -> Result<Manifest, OpsError> {
    if !dir.is_dir() {
        return Err(OpsError::Io {
            what: "there is no backup directory at",
            path: dir.to_path_buf(),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        });
    }
    let path = dir.join(MANIFEST);
    if !path.exists() {
        return Err(OpsError::Incomplete {
            dir: dir.to_path_buf(),
        });
    }
    let text = std::fs::read_to_string(&path).map_err(io("cannot read the manifest", &path))?;
    toml::from_str(&text).map_err(|e| OpsError::BadBackup {
        dir: dir.to_path_buf(),
        reason: format!("its manifest cannot be read: {e}"),
    })
}

/// Verifies the backup in `dir` as [`restore`] does, without replacing anything; returns its
/// manifest. `key` is the key to open it with (the node's, or the one it was taken with);
/// `key_file`, the node's key file, beside which `nsdb rekey` keeps earlier keys: a backup
/// taken under one of them is refused naming the file that holds it.
pub fn verify(
    dir: &Path,
    key: &DbKey,
    node_id: &str,
    key_file: Option<&Path>,
) -> Result<Manifest, OpsError> {
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
    if !manifest.key_fingerprint.is_empty() && manifest.key_fingerprint != key_fingerprint(key) {
        let kept = key_file
            .map(|f| super::rekey::kept_key_path(f, &manifest.key_fingerprint))
            .filter(|k| k.exists());
        return Err(OpsError::BackupKey {
            dir: dir.to_path_buf(),
            needs: manifest.key_fingerprint,
            given: key_fingerprint(key),
            kept,
        });
    }
    let db = dir.join(DATABASE);
    let sum = sha256_file(&db)?;
    if sum != manifest.sha256 {
        return Err(bad(format!(
            "{DATABASE} has changed since the backup was taken (SHA-256 {sum}, the manifest says {}); use another backup",
            manifest.sha256
        )));
    }
    let conn = connect(&db, Some(key), OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(|e| {
        // What failed, in a few words: the store's own message would advise restoring a backup,
        // which is what is being done.
        let what = match &e {
            StoreError::WrongKey { .. } => "its first page does not decrypt".to_string(),
            StoreError::Corrupt { detail, .. } => detail.clone(),
            other => other.to_string(),
        };
        let db = db.display();
        bad(if manifest.key_fingerprint.is_empty() {
            format!(
                "{db} does not open with this key ({what}): the key is wrong or the file is damaged; if the key was changed since, give the key it was taken with (--key-file), else use another backup"
            )
        } else {
            format!(
                "{db} is damaged: the page check failed as it was opened ({what}) although the key is the one it was taken with (the manifest's key_fingerprint); use another backup"
            )
        })
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
            "its contents do not match its manifest (sheets or audit entries); use another backup"
                .into(),
        ));
    }
    Ok(manifest)
}

/// The data directory's files carried in a backup's database, `(name, content)`; none in a
/// backup taken before backups carried them.
fn carried_files(conn: &rusqlite::Connection) -> Result<Vec<(String, Vec<u8>)>, OpsError> {
    let exists: i64 = conn.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
        [FILES_TABLE],
        |r| r.get(0),
    )?;
    if exists == 0 {
        return Ok(Vec::new());
    }
    let mut st = conn.prepare(&format!("SELECT name, content FROM {FILES_TABLE}"))?;
    let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    let mut out = Vec::new();
    for row in rows {
        let (name, content): (String, Vec<u8>) = row?;
        // Only the names a backup writes: a forged row never writes outside the data directory.
        if CARRIED.contains(&name.as_str()) {
            out.push((name, content));
        }
    }
    Ok(out)
}

/// The node id an identity file's content names (32 hexadecimal characters).
fn identity_node_id(content: &[u8], data_dir: &Path) -> Result<String, OpsError> {
    let tmp = data_dir.join("identity.key.from-backup");
    write_private(&tmp, content)?;
    let identity = nsdb_provisioning::NodeIdentity::load(&tmp);
    let _ = std::fs::remove_file(&tmp);
    Ok(nsdb_sync::NodeId(identity?.node_id()).to_string())
}

/// Writes a file readable by its owner only (mode 600), synced.
fn write_private(path: &Path, content: &[u8]) -> Result<(), OpsError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(io("cannot write", path))?;
    f.write_all(content)
        .and_then(|()| f.sync_all())
        .map_err(io("cannot write", path))
}

/// Gives a file a restore wrote in `data_dir` to the data directory's owner (the user the node
/// serves as) when running as root, so that the node can open it (and `private`: readable by
/// its owner only, mode 600). Run as root under the service layout, a restore would otherwise
/// leave root's files in the service user's directory, which the node can neither open nor make
/// private.
pub(crate) fn give_to_owner(path: &Path, data_dir: &Path, private: bool) -> Result<(), OpsError> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    if private {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io(
            "cannot make readable by its owner only (chmod 600)",
            path,
        ))?;
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(());
    }
    let owner = std::fs::metadata(data_dir).map_err(io("cannot read", data_dir))?;
    let file = std::fs::metadata(path).map_err(io("cannot read", path))?;
    if (file.uid(), file.gid()) != (owner.uid(), owner.gid()) {
        std::os::unix::fs::chown(path, Some(owner.uid()), Some(owner.gid())).map_err(io(
            "cannot give to the data directory's owner (chown)",
            path,
        ))?;
    }
    Ok(())
}

/// Makes the node's database files ([`crate::store::database_files`], those that exist)
/// readable by their owner only and, run as root, the data directory owner's: after a command
/// that replaced the database (`nsdb rekey`, whose re-encrypted copy SQLite creates with the
/// default mode), so that the node can open it and nobody else can read it.
pub fn give_database_to_owner(config: &crate::NodeConfig) -> Result<(), OpsError> {
    for file in crate::store::database_files(&config.database_path()) {
        if file.exists() {
            give_to_owner(&file, &config.data_dir, true)?;
        }
    }
    Ok(())
}

/// What a restore did.
#[derive(Debug)]
pub struct Restored {
    pub manifest: Manifest,
    /// Where the database it replaced was moved (None when there was none).
    pub previous: Option<PathBuf>,
    /// The data directory's files it put back (they were missing), by name.
    pub files_put_back: Vec<String>,
    /// Carried files the data directory has in another (newer) version, kept as they are.
    pub files_kept: Vec<String>,
    /// Whether the database was re-encrypted from the backup's key to the node's.
    pub rekeyed: bool,
}

/// Sheets of the node's current database whose latest changes the hub never acknowledged: the
/// sheets written after the node was last in step with the hub (`sync_heads.seq` above
/// `sync_in_step.seq`; every sheet when it never was), those with no recorded heads, and those
/// set aside. A restore replaces them with the backup's older copy (or nothing), so the changes
/// would be lost. Ids only, sorted. Empty on the hub (it is where acknowledgements come from)
/// and when there is no current database. Errors: the current database cannot be opened or read.
pub fn unacknowledged(config: &crate::NodeConfig, key: &DbKey) -> Result<Vec<String>, OpsError> {
    let db = config.database_path();
    if config.role == crate::NodeRole::Hub || std::fs::metadata(&db).map_or(true, |m| m.len() == 0)
    {
        return Ok(Vec::new());
    }
    let conn = connect(&db, Some(key), OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let in_step: i64 =
        conn.query_row("SELECT coalesce(max(seq), -1) FROM sync_in_step", [], |r| {
            r.get(0)
        })?;
    let mut st = conn.prepare(
        "SELECT s.id FROM sheets s LEFT JOIN sync_heads h ON h.sheet_id = s.id
          WHERE h.sheet_id IS NULL OR h.seq > ?1
         UNION SELECT sheet_id FROM sync_set_aside
         ORDER BY 1",
    )?;
    let ids = st
        .query_map([in_step], |r| r.get::<_, String>(0))?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(ids)
}

/// Restores the backup in `dir` over the node's database, after verifying it ([`verify`]). The
/// node must be stopped (its data directory's lock is taken). The current database (with its
/// WAL) is kept as `node.db.before-restore-<now_ms>`. The restored database is marked restored
/// (`keys::RESTORED`): it issues no access key until the hub has answered how far its key
/// blocks were used.
///
/// `key` is the node's configured key; `backup_key` the key the backup was taken with when it
/// differs (after a rekey): the database is then re-encrypted to `key` before it is put in place.
/// `node_id` is the node's identity when its data directory still has one; when it has none
/// (a node that lost its disk), the backup's own identity is used and put back. Data directory
/// files the backup carries are put back when missing; a different existing identity or seal key
/// is refused ([`OpsError::FileConflict`]) before anything is replaced, while a different
/// enrollment file (newer than the backup) is kept. Every file it writes is readable by its
/// owner only (mode 600) and, run as root, belongs to the data directory's owner (the user the
/// node serves as), as does a lock file it made.
pub fn restore(
    config: &crate::NodeConfig,
    key: &DbKey,
    backup_key: Option<&DbKey>,
    node_id: Option<&str>,
    dir: &Path,
    now_ms: i64,
) -> Result<Restored, OpsError> {
    restore_confirmed(
        config,
        key,
        backup_key,
        node_id,
        dir,
        now_ms,
        &mut || Ok(()),
    )
}

/// [`restore`], asking `confirm` once the backup is verified and before anything is replaced
/// (while the data directory's lock is held): its error stops the restore with nothing
/// replaced. `nsdb restore` asks there about sheets the hub never acknowledged
/// ([`unacknowledged`]).
pub fn restore_confirmed(
    config: &crate::NodeConfig,
    key: &DbKey,
    backup_key: Option<&DbKey>,
    node_id: Option<&str>,
    dir: &Path,
    now_ms: i64,
    confirm: &mut dyn FnMut() -> Result<(), OpsError>,
) -> Result<Restored, OpsError> {
    // A data directory that is not there (a node that lost its disk, or a mistyped data_dir):
    // a restore that fails leaves none behind.
    let created = !config.data_dir.exists();
    let result = restore_locked(config, key, backup_key, node_id, dir, now_ms, confirm);
    let Err(e) = result else {
        return result;
    };
    remove_with_side_files(&config.data_dir.join(STAGED));
    if created {
        let _ = std::fs::remove_file(config.data_dir.join(super::guard::LOCK));
        let _ = std::fs::remove_dir(&config.data_dir);
    }
    let needs_bytes = restore_needs(dir, backup_key.is_some_and(|k| k != key));
    if e.is_disk_full() || (out_of_room(&e) && room_short(&config.data_dir, needs_bytes)) {
        return Err(OpsError::DiskFull {
            path: config.data_dir.clone(),
            needs_bytes,
        });
    }
    Err(e)
}

/// The restore's staged copy in the data directory, renamed over `node.db` at the end.
const STAGED: &str = "node.db.restoring";

/// About the room a restore of the backup in `dir` needs in the data directory: the backup's
/// database, twice when it is re-encrypted (its rollback journal), and SQLite's files beside it.
fn restore_needs(dir: &Path, rekeyed: bool) -> u64 {
    let bytes = std::fs::metadata(dir.join(DATABASE)).map_or(0, |m| m.len());
    bytes * if rekeyed { 2 } else { 1 } + WORKING_ROOM
}

#[allow(clippy::too_many_arguments)]
fn restore_locked(
    config: &crate::NodeConfig,
    key: &DbKey,
    backup_key: Option<&DbKey>,
    node_id: Option<&str>,
    dir: &Path,
    now_ms: i64,
    confirm: &mut dyn FnMut() -> Result<(), OpsError>,
) -> Result<Restored, OpsError> {
    let lock = DirLock::acquire(&config.data_dir)?;
    // A lock file this restore made (run as root) must stay the node's to take.
    give_to_owner(&lock.path, &config.data_dir, false)?;
    let open_key = backup_key.unwrap_or(key);
    let manifest = read_manifest(dir)?;
    let expected = node_id.unwrap_or(&manifest.node_id).to_string();
    let manifest = verify(dir, open_key, &expected, config.key.file())?;
    let carried = {
        let conn = connect(
            &dir.join(DATABASE),
            Some(open_key),
            OpenFlags::SQLITE_OPEN_READ_ONLY,
        )?;
        carried_files(&conn)?
    };
    let identity_path = config.identity_path();
    if node_id.is_none() {
        let Some((_, content)) = carried
            .iter()
            .find(|(n, _)| n == nsdb_provisioning::enrollment::IDENTITY_FILE)
        else {
            return Err(OpsError::BadBackup {
                dir: dir.to_path_buf(),
                reason: format!(
                    "{} is missing and this backup carries no identity (taken by an older nsdb): put the node's identity.key back from elsewhere first",
                    identity_path.display()
                ),
            });
        };
        let found = identity_node_id(content, &config.data_dir)?;
        if found != manifest.node_id {
            return Err(OpsError::ForeignBackup {
                dir: dir.to_path_buf(),
                found,
                ours: manifest.node_id.clone(),
            });
        }
    }
    let mut missing = Vec::new();
    let mut files_kept = Vec::new();
    for (name, content) in &carried {
        let path = config.data_dir.join(name);
        if path.exists() {
            let here = std::fs::read(&path).map_err(io("cannot read", &path))?;
            if &here == content {
                continue;
            }
            // Enrollment files change in a node's life (a hub enrolls nodes, a node may be
            // enrolled again): the current one is newer than the backup's and is kept. The
            // identity and the seal key name the node and open its data: never replaced.
            if KEPT_WHEN_DIFFERENT.contains(&name.as_str()) {
                files_kept.push(name.clone());
            } else {
                return Err(OpsError::FileConflict {
                    path,
                    dir: dir.to_path_buf(),
                });
            }
        } else {
            missing.push((name.clone(), content.clone()));
        }
    }
    confirm()?;
    let db = config.database_path();
    let staged = config.data_dir.join(STAGED);
    let _ = std::fs::remove_file(&staged);
    let rekeyed = backup_key.is_some_and(|k| k != key);
    // Nothing is written before there is room for it: a full data disk is said with the room
    // needed, and leaves nothing behind.
    let needs_bytes = restore_needs(dir, rekeyed);
    if room_short(&config.data_dir, needs_bytes) {
        return Err(OpsError::DiskFull {
            path: config.data_dir.clone(),
            needs_bytes,
        });
    }
    std::fs::copy(dir.join(DATABASE), &staged).map_err(io("cannot copy the backup to", &staged))?;
    // The copy has the backup file's mode: the node's alone, as every file the restore writes.
    give_to_owner(&staged, &config.data_dir, true)?;
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
    if rekeyed {
        // The copy is in rollback-journal mode (as every backup is): SQLCipher's rekey
        // re-encrypts it page by page in one transaction.
        let conn = connect(&staged, Some(open_key), OpenFlags::SQLITE_OPEN_READ_WRITE)?;
        conn.execute_batch(&format!("PRAGMA rekey = \"x'{}'\";", key.to_hex()))?;
    }
    // The copy may be older than keys this node issued since: it issues none until the hub has
    // told it how far its key blocks were used (docs/security.md, "Access keys"). The carried
    // files leave the database: they live in the data directory.
    {
        let conn = connect(&staged, Some(key), OpenFlags::SQLITE_OPEN_READ_WRITE)?;
        conn.execute_batch(&format!("DROP TABLE IF EXISTS {FILES_TABLE};"))?;
        crate::keys::mark_restored(&conn, now_ms)?;
        // Its audit chain may lack the end the hub holds: the next checkpoint says so.
        crate::audit::mark_restored(&conn, now_ms)?;
        let problems = integrity_problems(&conn)?;
        if !problems.is_empty() {
            drop(conn);
            let _ = std::fs::remove_file(&staged);
            return Err(OpsError::BadBackup {
                dir: dir.to_path_buf(),
                reason: format!("the restored copy is damaged: {}", problems.join("; ")),
            });
        }
    }
    std::fs::File::open(&staged)
        .and_then(|f| f.sync_all())
        .map_err(io("cannot sync", &staged))?;
    let mut files_put_back = Vec::new();
    for (name, content) in missing {
        let path = config.data_dir.join(&name);
        write_private(&path, &content)?;
        give_to_owner(&path, &config.data_dir, true)?;
        files_put_back.push(name);
    }
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
    // As a set-up node has it: a database that goes missing later is refused, never replaced
    // by an empty one (ops::guard).
    let marker = super::guard::write_marker(&config.data_dir, &expected)?;
    give_to_owner(&marker, &config.data_dir, false)?;
    Ok(Restored {
        manifest,
        previous,
        files_put_back,
        files_kept,
        rekeyed,
    })
}
