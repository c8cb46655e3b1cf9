//! A node never starts as someone else, or as nobody, and one data directory has one server.
//!
//! When a node first opens its database it writes its node id into `node_meta` and leaves a
//! marker file, [`MARKER`], in the data directory. From then on a missing or empty (0-byte)
//! `node.db` is refused instead of silently becoming a new, empty node, and a database holding
//! another node's id is refused. `nsdb serve` (and every other command that opens a node's
//! database) refuses a data directory that holds no node at all ([`require_node`]): only `nsdb
//! init` sets one up. A node records its role ([`ROLE_KEY`]) and is never opened as another
//! ([`claim`]): a hub's configuration pointed at a hospital's data directory opens nothing
//! there. `nsdb serve` holds an exclusive lock on
//! [`LOCK`] while it runs, so `nsdb restore` and `nsdb rekey` refuse to run under it. This module must never create or
//! replace a database.

use std::path::{Path, PathBuf};

use rusqlite::OptionalExtension;

use super::{OpsError, io, sync_dir};
use crate::store::{DbKey, connect};

/// The marker file: present once this data directory has held a database. Its text is the
/// node id (32 hexadecimal characters) and a newline.
pub const MARKER: &str = "node.db.owner";

/// The lock file `nsdb serve` holds while it runs.
pub const LOCK: &str = "serve.lock";

/// Refuses a missing or empty database in a data directory that has held one. Call before
/// opening (which would create a new, empty database).
pub fn check_before_open(data_dir: &Path, db: &Path) -> Result<(), OpsError> {
    // A directory (or another kind of entry) where the database should be: said as `nsdb
    // doctor` says it, not as a file of the wrong mode.
    if let Ok(m) = std::fs::symlink_metadata(db)
        && !m.is_file()
        && !(m.file_type().is_symlink() && db.is_file())
    {
        let what = if m.is_dir() {
            "a directory"
        } else {
            "not a regular file"
        };
        return Err(OpsError::Io {
            what: "cannot open the database",
            path: db.to_path_buf(),
            source: std::io::Error::other(format!(
                "it is {what}, not a database file, so nsdb cannot read it: move it away (mv {} {}.unreadable) and, if this node had a database, restore it (nsdb restore --config FILE BACKUP_DIR)",
                db.display(),
                db.display()
            )),
        });
    }
    let marker = data_dir.join(MARKER);
    let Ok(node) = std::fs::read_to_string(&marker) else {
        return Ok(());
    };
    let what = match std::fs::metadata(db) {
        Err(_) => "missing",
        Ok(m) if m.len() == 0 => "empty (0 bytes)",
        Ok(_) => return Ok(()),
    };
    Err(OpsError::DatabaseMissing {
        path: db.to_path_buf(),
        what,
        node: node.trim().to_string(),
        marker,
    })
}

/// Refuses to run `command` (`serve`, `user add`, …: named in the message with `config_file`)
/// on a data directory that holds no node: it does not exist, or has neither a database nor
/// the marker of one (a data directory that held a database and lost it is left to
/// [`check_before_open`], which says to restore). Only `nsdb init` creates a node; no other
/// command does, so a typo in `data_dir` cannot start a new, empty node beside the real one.
pub fn require_node(
    config: &crate::NodeConfig,
    config_file: &Path,
    command: &'static str,
) -> Result<(), OpsError> {
    let dir = &config.data_dir;
    let no_node = |what| OpsError::NoNode {
        dir: dir.clone(),
        what,
        config: config_file.to_path_buf(),
        command,
    };
    if !dir.is_dir() {
        return Err(no_node("がありません"));
    }
    if dir.join(MARKER).exists() {
        return Ok(());
    }
    match std::fs::metadata(config.database_path()) {
        Ok(m) if m.len() > 0 => Ok(()),
        Ok(_) => Err(no_node("の node.db は空で、ノードがありません")),
        Err(_) => Err(no_node("にはノードがありません（node.db がありません）")),
    }
}

/// Refuses `nsdb init` where a node already is (a database, or the marker of one).
pub fn require_no_node(config: &crate::NodeConfig, config_file: &Path) -> Result<(), OpsError> {
    let db = config.database_path();
    // A node that lost its database is restored, never set up again: the same words as serve.
    check_before_open(&config.data_dir, &db)?;
    let has_db = std::fs::metadata(&db).is_ok_and(|m| m.len() > 0);
    if has_db || config.data_dir.join(MARKER).exists() {
        return Err(OpsError::NodeExists {
            dir: config.data_dir.clone(),
            db,
            config: config_file.to_path_buf(),
        });
    }
    Ok(())
}

/// The node id a database says it belongs to (`node_meta.node_id`), if it says.
pub fn database_owner(conn: &rusqlite::Connection) -> Result<Option<String>, OpsError> {
    Ok(conn
        .query_row(
            "SELECT value FROM node_meta WHERE key = 'node_id'",
            [],
            |r| r.get(0),
        )
        .optional()?)
}

/// After the database is open and migrated: records `node_id` in it if it holds none and the
/// directory has no marker yet (a new node, or one from before markers); refuses it if it holds
/// another id, or none while the marker says it should; refuses to open it as a role other than
/// its node's ([`OpsError::OtherRole`]: the role its database recorded, else what its files say,
/// [`role_from_files`]) and records `role` when none is; leaves the marker in the data
/// directory. A refusal writes nothing.
pub fn claim(
    data_dir: &Path,
    db: &Path,
    key: &DbKey,
    node_id: &str,
    role: crate::NodeRole,
) -> Result<(), OpsError> {
    let conn = connect(db, Some(key), rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE)?;
    let owner = database_owner(&conn)?;
    match &owner {
        Some(found) if found != node_id => {
            return Err(OpsError::ForeignDatabase {
                path: db.to_path_buf(),
                found: found.clone(),
                ours: node_id.to_string(),
            });
        }
        // The marker says this directory's database was claimed, so it would hold our id.
        None if data_dir.join(MARKER).exists() => {
            return Err(OpsError::ForeignDatabase {
                path: db.to_path_buf(),
                found: "(none recorded)".into(),
                ours: node_id.to_string(),
            });
        }
        _ => {}
    }
    let recorded: Option<String> = conn
        .query_row(
            "SELECT value FROM node_meta WHERE key = ?1",
            [ROLE_KEY],
            |r| r.get(0),
        )
        .optional()?;
    let found = match &recorded {
        Some(kind) => role_of_kind(kind),
        None => role_from_files(data_dir),
    };
    if let Some(found) = found
        && found != role
    {
        return Err(OpsError::OtherRole {
            dir: data_dir.to_path_buf(),
            found: found.label(),
            wanted: role.as_str(),
        });
    }
    if owner.is_none() {
        conn.execute(
            "INSERT INTO node_meta (key, value) VALUES ('node_id', ?1)",
            [node_id],
        )?;
    }
    if recorded.is_none() {
        conn.execute(
            "INSERT INTO node_meta (key, value) VALUES (?1, ?2)",
            rusqlite::params![ROLE_KEY, role.institution_kind()],
        )?;
    }
    drop(conn);
    write_marker(data_dir, node_id)?;
    Ok(())
}

/// Leaves the marker ([`MARKER`]) of `node_id`'s database in `data_dir`, unless it is there
/// already: as a node set up by `nsdb init` has it, and as `nsdb restore` leaves it. Returns its
/// path.
pub fn write_marker(data_dir: &Path, node_id: &str) -> Result<PathBuf, OpsError> {
    let marker = data_dir.join(MARKER);
    if std::fs::read_to_string(&marker)
        .ok()
        .map(|t| t.trim().to_string())
        != Some(node_id.to_string())
    {
        let tmp = data_dir.join(format!("{MARKER}.tmp"));
        std::fs::write(&tmp, format!("{node_id}\n")).map_err(io("cannot write", &tmp))?;
        std::fs::rename(&tmp, &marker).map_err(io("cannot write", &marker))?;
        sync_dir(data_dir)?;
    }
    Ok(marker)
}

/// `node_meta` key: the role this data directory's node was set up as (`hospital`,
/// `municipality`, `ministry`: [`crate::NodeRole::institution_kind`]).
pub const ROLE_KEY: &str = "node_role";

/// The role a data directory's files say its node has, when they say: an accepted enrollment
/// (`enrollment.toml`) names a hospital or municipality; the hub's settings (`sync-hub.toml`)
/// are the hub's alone.
fn role_from_files(data_dir: &Path) -> Option<crate::NodeRole> {
    use nsdb_provisioning::enrollment;
    if let Ok(Some(e)) = enrollment::accepted(data_dir) {
        return role_of_kind(&e.role);
    }
    data_dir
        .join(enrollment::HUB_SETTINGS_FILE)
        .exists()
        .then_some(crate::NodeRole::Hub)
}

/// The role named by `kind`: as `node_meta` records it ([`crate::NodeRole::institution_kind`])
/// or as a configuration spells it ([`crate::NodeRole::as_str`]).
fn role_of_kind(kind: &str) -> Option<crate::NodeRole> {
    use crate::NodeRole::*;
    [Hospital, Municipality, Hub]
        .into_iter()
        .find(|r| r.institution_kind() == kind || r.as_str() == kind)
}

/// The exclusive lock of one data directory, held while a node serves from it (or while a
/// restore or rekey replaces its database). Released when dropped.
#[derive(Debug)]
pub struct DirLock {
    _file: std::fs::File,
    pub path: PathBuf,
}

impl DirLock {
    /// Takes the lock, or says that the node is running.
    pub fn acquire(data_dir: &Path) -> Result<DirLock, OpsError> {
        nsdb_provisioning::create_private_dir(data_dir).map_err(io("cannot create", data_dir))?;
        let path = data_dir.join(LOCK);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io("cannot open", &path))?;
        match file.try_lock() {
            Ok(()) => Ok(DirLock { _file: file, path }),
            Err(std::fs::TryLockError::WouldBlock) => Err(OpsError::NodeRunning {
                dir: data_dir.to_path_buf(),
            }),
            Err(std::fs::TryLockError::Error(e)) => Err(OpsError::Io {
                what: "cannot lock",
                path,
                source: e,
            }),
        }
    }
}
