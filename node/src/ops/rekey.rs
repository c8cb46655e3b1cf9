//! `nsdb rekey`: changes the database key so that a crash at any moment leaves a database that
//! opens with one of the two keys, and says which.
//!
//! The steps, each durable before the next: (1) the new key is written to `<key_file>.new`
//! (mode 600); (2) the database, checkpointed, is exported into `node.db.rekeying` encrypted with
//! the new key (SQLCipher's `sqlcipher_export`) and that copy is verified (opens, integrity,
//! same counts); (3) the copy replaces `node.db` by an atomic rename; (4) the old key is kept as
//! `<key_file>.old` and, for good, as `<key_file>.old-<fingerprint>` (never overwritten, so that
//! backups taken under any earlier key stay restorable), and `<key_file>.new` replaces
//! `<key_file>` by an atomic rename. Every key file is written whole or not at all (a
//! temporary file, synced, renamed). Before step 3
//! the database opens with the old key, after it with the new one; [`recover`] looks at which
//! key opens it and finishes or undoes an interrupted rekey. Backups taken before a rekey need
//! the old key. This module must never delete a key file that the database still needs.

use std::path::{Path, PathBuf};

use rusqlite::OpenFlags;

use super::guard::DirLock;
use super::{OpsError, integrity_problems, io, sync_dir};
use crate::store::{DbKey, KeySource, StoreError, connect};

/// The staged, re-encrypted copy's file name in the data directory.
pub const STAGED: &str = "node.db.rekeying";

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    PathBuf::from(format!("{}{suffix}", path.display()))
}

/// Where the new key waits until the database is switched: `<key_file>.new`.
pub fn new_key_path(key_file: &Path) -> PathBuf {
    with_suffix(key_file, ".new")
}

/// Where the previous key is kept after a rekey: `<key_file>.old`.
pub fn old_key_path(key_file: &Path) -> PathBuf {
    with_suffix(key_file, ".old")
}

/// Where a previous key is kept for good, by its fingerprint
/// ([`super::backup::key_fingerprint`], what a backup's manifest names):
/// `<key_file>.old-<fingerprint>`. Every rekey keeps the key it replaces there and never
/// overwrites such a file, so a backup taken under any earlier key can still be restored.
pub fn kept_key_path(key_file: &Path, fingerprint: &str) -> PathBuf {
    with_suffix(key_file, &format!(".old-{fingerprint}"))
}

fn key_file(config: &crate::NodeConfig) -> Result<PathBuf, OpsError> {
    match &config.key {
        KeySource::File(p) => Ok(p.clone()),
        _ => Err(OpsError::Store(StoreError::Key {
            origin: "the configuration".into(),
            reason: "nsdb rekey needs key_file (the key in a file it can replace)".into(),
        })),
    }
}

/// Whether `key` opens the database at `db`.
pub fn opens_with(db: &Path, key: &DbKey) -> bool {
    connect(db, Some(key), OpenFlags::SQLITE_OPEN_READ_ONLY).is_ok()
}

/// Writes `key` to `path` (mode 600) so that a crash at any moment leaves `path` as it was or
/// holding the whole key, never empty or cut: written to `<path>.tmp`, synced, renamed over
/// `path`, the directory synced.
fn write_key_file(path: &Path, key: &DbKey) -> Result<(), OpsError> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = with_suffix(path, ".tmp");
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    opts.mode(0o600);
    let mut f = opts.open(&tmp).map_err(io("cannot write key file", &tmp))?;
    f.write_all(key.to_hex().as_bytes())
        .and_then(|_| f.sync_all())
        .map_err(io("cannot write key file", &tmp))?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(io("cannot write key file", path))?;
    match path.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(dir) => sync_dir(dir),
        None => Ok(()),
    }
}

/// Keeps `key` as `<key_file>.old-<fingerprint>` unless a file of that name is there already
/// (the same fingerprint: the same key).
fn keep_for_good(key_file: &Path, key: &DbKey) -> Result<(), OpsError> {
    let kept = kept_key_path(key_file, &super::backup::key_fingerprint(key));
    if kept.exists() {
        return Ok(());
    }
    write_key_file(&kept, key)
}

/// What [`recover`] found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recovery {
    /// No rekey was interrupted.
    Nothing,
    /// The rekey stopped before the database was switched: it opens with the old key (still in
    /// `key_file`); the new key and the staged copy were removed.
    OpensWithOldKey,
    /// The rekey stopped after the database was switched: it opens with the new key, which now
    /// replaced `key_file` (the old one kept as `<key_file>.old`).
    OpensWithNewKey,
}

/// Finishes or undoes an interrupted rekey, by which key opens the database. The node must be
/// stopped. Errors when neither key opens it.
pub fn recover(config: &crate::NodeConfig) -> Result<Recovery, OpsError> {
    let key_file = key_file(config)?;
    let new_path = new_key_path(&key_file);
    let db = config.database_path();
    // A key file being written when the rekey stopped (`write_key_file`): never the only copy
    // of a key (it is renamed into place once whole), so it goes.
    for tmp in beside(&key_file, |name| name.ends_with(".tmp")) {
        let _ = std::fs::remove_file(tmp);
    }
    if !new_path.exists() {
        let _ = std::fs::remove_file(config.data_dir.join(STAGED));
        return Ok(Recovery::Nothing);
    }
    let new_key = DbKey::load(&KeySource::File(new_path.clone()))?;
    let old_key = DbKey::load(&KeySource::File(key_file.clone())).ok();
    if old_key.as_ref().is_some_and(|k| opens_with(&db, k)) {
        let _ = std::fs::remove_file(config.data_dir.join(STAGED));
        std::fs::remove_file(&new_path).map_err(io("cannot remove", &new_path))?;
        return Ok(Recovery::OpensWithOldKey);
    }
    if opens_with(&db, &new_key) {
        switch_key(&key_file, old_key.as_ref())?;
        return Ok(Recovery::OpensWithNewKey);
    }
    Err(OpsError::Store(StoreError::WrongKey { path: db }))
}

/// Step 4: keeps the old key for good (`.old-<fingerprint>`) and as `.old`, then puts `.new`
/// in place of the key file. A `.old` left by an earlier rekey (perhaps by an nsdb that kept
/// only that one) is first kept under its own fingerprint, so that replacing it loses no key.
fn switch_key(key_file: &Path, old: Option<&DbKey>) -> Result<(), OpsError> {
    if let Some(old) = old {
        if let Ok(earlier) = DbKey::load(&KeySource::File(old_key_path(key_file))) {
            keep_for_good(key_file, &earlier)?;
        }
        keep_for_good(key_file, old)?;
        write_key_file(&old_key_path(key_file), old)?;
    }
    let new_path = new_key_path(key_file);
    std::fs::rename(&new_path, key_file)
        .map_err(io("cannot put the new key in place", key_file))?;
    if let Some(dir) = key_file.parent().filter(|d| !d.as_os_str().is_empty()) {
        sync_dir(dir)?;
    }
    Ok(())
}

/// Steps 1 and 2: writes the new key beside the key file and stages a copy of the database
/// encrypted with it, verified. The database itself is untouched.
pub fn stage(config: &crate::NodeConfig, old: &DbKey, new: &DbKey) -> Result<(), OpsError> {
    let key_file = key_file(config)?;
    write_key_file(&new_key_path(&key_file), new)?;
    if let Some(dir) = key_file.parent().filter(|d| !d.as_os_str().is_empty()) {
        sync_dir(dir)?;
    }
    let db = config.database_path();
    let staged = config.data_dir.join(STAGED);
    let _ = std::fs::remove_file(&staged);
    // CREATE: the attached copy is created through this connection's flags.
    let conn = connect(
        &db,
        Some(old),
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE,
    )?;
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    let count = |c: &rusqlite::Connection, schema: &str| -> Result<(i64, i64), OpsError> {
        Ok((
            c.query_row(&format!("SELECT count(*) FROM {schema}.sheets"), [], |r| {
                r.get(0)
            })?,
            c.query_row(&format!("SELECT count(*) FROM {schema}.audit"), [], |r| {
                r.get(0)
            })?,
        ))
    };
    let before = count(&conn, "main")?;
    conn.execute(
        "ATTACH DATABASE ?1 AS rekeyed KEY ?2",
        rusqlite::params![staged.to_string_lossy(), format!("x'{}'", new.to_hex())],
    )?;
    conn.query_row("SELECT sqlcipher_export('rekeyed')", [], |_| Ok(()))?;
    conn.execute_batch(&format!("PRAGMA rekeyed.user_version = {version};"))?;
    conn.execute_batch("DETACH DATABASE rekeyed;")?;
    drop(conn);
    std::fs::File::open(&staged)
        .and_then(|f| f.sync_all())
        .map_err(io("cannot sync", &staged))?;
    let check = connect(&staged, Some(new), OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let problems = integrity_problems(&check)?;
    if !problems.is_empty() || count(&check, "main")? != before {
        return Err(OpsError::BadBackup {
            dir: staged,
            reason: format!(
                "the re-encrypted copy does not match the database: {}",
                problems.join("; ")
            ),
        });
    }
    Ok(())
}

/// Step 3: the staged copy replaces the database (atomic rename).
pub fn switch_database(config: &crate::NodeConfig) -> Result<(), OpsError> {
    let db = config.database_path();
    for suffix in ["-wal", "-shm"] {
        let p = with_suffix(&db, suffix);
        if p.exists() {
            std::fs::remove_file(&p).map_err(io("cannot remove", &p))?;
        }
    }
    let staged = config.data_dir.join(STAGED);
    // SQLite made the copy with the default mode (and, run as root, root's): private and the
    // node's before it takes the database's place, so that a crash right after leaves nothing
    // others can read or the node cannot open.
    super::backup::give_to_owner(&staged, &config.data_dir, true)?;
    std::fs::rename(&staged, &db)
        .map_err(io("cannot put the re-encrypted database in place", &db))?;
    sync_dir(&config.data_dir)
}

/// Changes the database key to a new random key (the node must be stopped). Finishes or undoes
/// an earlier interrupted rekey first. On success the key file holds the new key, and
/// `<key_file>.old` and `<key_file>.old-<fingerprint>` the previous one (needed for backups
/// taken before; every earlier key stays kept under its fingerprint).
pub fn recover_then_rekey(config: &crate::NodeConfig) -> Result<Rekeyed, OpsError> {
    let _lock = DirLock::acquire(&config.data_dir)?;
    let recovered = recover(config)?;
    let key_file = key_file(config)?;
    let old = DbKey::load(&KeySource::File(key_file.clone()))?;
    if !opens_with(&config.database_path(), &old) {
        return Err(OpsError::Store(StoreError::WrongKey {
            path: config.database_path(),
        }));
    }
    let new = DbKey::from_bytes(crate::random_key_bytes());
    // A stage that fails (a damaged database, a full disk) leaves nothing of itself: the
    // database is untouched and still opens with the key file.
    if let Err(e) = stage(config, &old, &new) {
        let _ = std::fs::remove_file(config.data_dir.join(STAGED));
        let _ = std::fs::remove_file(new_key_path(&key_file));
        return Err(e);
    }
    switch_database(config)?;
    switch_key(&key_file, Some(&old))?;
    let now = DbKey::load(&KeySource::File(key_file.clone()))?;
    if !opens_with(&config.database_path(), &now) {
        return Err(OpsError::Store(StoreError::WrongKey {
            path: config.database_path(),
        }));
    }
    Ok(Rekeyed {
        recovered,
        kept: kept_key_path(&key_file, &super::backup::key_fingerprint(&old)),
    })
}

/// What [`recover_then_rekey`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rekeyed {
    /// What an earlier interrupted rekey needed first.
    pub recovered: Recovery,
    /// Where the replaced key is kept for good (`<key_file>.old-<fingerprint>`).
    pub kept: PathBuf,
}

/// For an error message when the configured key does not open the database: which key file
/// does (an interrupted rekey), if any.
pub fn which_key_opens(config: &crate::NodeConfig) -> Option<PathBuf> {
    let key_file = key_file(config).ok()?;
    let db = config.database_path();
    [new_key_path(&key_file), old_key_path(&key_file)]
        .into_iter()
        .chain(kept_keys(&key_file))
        .find(|p| {
            DbKey::load(&KeySource::File(p.clone()))
                .map(|k| opens_with(&db, &k))
                .unwrap_or(false)
        })
}

/// The previous keys kept beside `key_file` ([`kept_key_path`]), by name.
fn kept_keys(key_file: &Path) -> Vec<PathBuf> {
    beside(key_file, |rest| {
        rest.starts_with("old-") && !rest.ends_with(".tmp")
    })
}

/// The files beside `key_file` named `<key_file's name>.<rest>` with `wanted(rest)`, by name.
fn beside(key_file: &Path, wanted: impl Fn(&str) -> bool) -> Vec<PathBuf> {
    let dir = match key_file.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let Some(name) = key_file.file_name().and_then(|n| n.to_str()) else {
        return Vec::new();
    };
    let prefix = format!("{name}.");
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.strip_prefix(&prefix))
                .is_some_and(&wanted)
        })
        .map(|e| e.path())
        .collect();
    found.sort();
    found
}

/// What to do when the configured key does not open the database but another key file does,
/// said as it really is: `<key_file>.new` opening it is an interrupted rekey (`--recover`
/// finishes it); `<key_file>.old` (or a key kept as `<key_file>.old-<fingerprint>`) opening it
/// with no `.new` beside is a database from before a rekey put in place by hand (`nsdb restore --key-file` re-encrypts it). None when no key
/// file opens it.
pub fn wrong_key_advice(config: &crate::NodeConfig) -> Option<String> {
    let key_file = key_file(config).ok()?;
    let db = config.database_path();
    let configured = DbKey::load(&config.key).ok()?;
    if opens_with(&db, &configured) {
        return None;
    }
    let other = which_key_opens(config)?;
    Some(if other == new_key_path(&key_file) {
        format!(
            "cannot open database {}: the configured key does not open it, but {} does (an interrupted nsdb rekey): run nsdb rekey --config FILE --recover",
            db.display(),
            other.display()
        )
    } else {
        format!(
            "cannot open database {}: it is encrypted with the previous key {} (a database from before the last nsdb rekey, put in place by hand), not with the configured key; no rekey was interrupted. Put the node's database back (e.g. node.db.before-restore-*) and restore the backup with nsdb restore --config FILE --key-file {} BACKUP_DIR, which re-encrypts it to the configured key",
            db.display(),
            other.display(),
            other.display()
        )
    })
}
