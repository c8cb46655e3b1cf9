//! `nsdb doctor`: checks a node's installation and says, for each problem, what to fix: the key
//! file's mode (and its fingerprint, which backups' manifests record), the data directory's
//! existence, owner and mode, the database files' owner and mode, free disk, the clock, the
//! database (opens with the key, is this node's, intact, audit chain, schema), enrollment and
//! the rule pack's signature. It reads only; it must never change a file or print a key.

use std::path::Path;

use rusqlite::OpenFlags;

use super::backup::{for_operator, key_fingerprint, store_for_operator};
use crate::store::{DbKey, KeySource, connect};

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Ok,
    /// Works, but an operator should know.
    Warn,
    /// Must be fixed; the text says how.
    Fix,
}

/// One check's outcome: what was checked and what was found (or what to do).
#[derive(Debug, Clone)]
pub struct Finding {
    pub check: &'static str,
    pub verdict: Verdict,
    pub say: String,
}

fn finding(check: &'static str, verdict: Verdict, say: impl Into<String>) -> Finding {
    Finding {
        check,
        verdict,
        say: say.into(),
    }
}

/// Runs every check on the node configured by `config` (read from `config_file`, which the
/// commands it advises name), with `now_ms` as the clock's reading.
pub fn examine(config: &crate::NodeConfig, config_file: &Path, now_ms: i64) -> Vec<Finding> {
    let mut out = Vec::new();
    let key = match DbKey::load(&config.key) {
        Ok(k) => {
            let origin = match &config.key {
                KeySource::File(p) => {
                    format!("key file {} is readable by its owner only", p.display())
                }
                KeySource::Env(v) => format!("key from environment variable {v}"),
                KeySource::Raw(_) => "key given directly".into(),
            };
            // Which key this is, as backups' manifests record it (key_fingerprint): when the
            // database does not open, this tells a wrong key from a damaged first page.
            let origin = format!("{origin}, fingerprint {}", key_fingerprint(&k));
            out.push(finding("key", Verdict::Ok, origin));
            Some(k)
        }
        Err(e) => {
            out.push(finding("key", Verdict::Fix, e.to_string()));
            None
        }
    };
    out.push(data_dir(&config.data_dir, config_file));
    out.push(free_disk(&config.data_dir, config.min_free_bytes));
    let db = config.database_path();
    let mut latest_audit = None;
    // A file that cannot be looked at (a directory of another owner) is not a missing one:
    // say so, rather than "does not exist", which reads as lost data.
    let mut unusable = match db.try_exists() {
        Ok(true) => unusable_file(&db, config, config_file),
        _ => None,
    };
    if unusable.is_none() && db.is_file() {
        out.push(match crate::store::private_files_fix(&db) {
            Some(fix) => finding("database files", Verdict::Fix, fix),
            None => finding(
                "database files",
                Verdict::Ok,
                "belong to the data directory's owner, readable by it only",
            ),
        });
    }
    match (&key, db.try_exists()) {
        (_, Err(e)) => out.push(finding(
            "database",
            Verdict::Fix,
            format!(
                "cannot look at {} ({e}): the data directory must belong to the user running nsdb (chown -R nsdb:nsdb {}), or run nsdb doctor as that user or root",
                db.display(),
                config.data_dir.display()
            ),
        )),
        // The data directory's line says what to do when there is none.
        (_, Ok(false)) if !config.data_dir.is_dir() => {}
        // nsdb serve refuses to start without it either way: only nsdb init creates a node.
        (_, Ok(false)) => out.push(finding(
            "database",
            Verdict::Fix,
            format!(
                "{} does not exist, so nsdb serve refuses to start: if this is a new node, set it up with nsdb init --config {}; if this node had a database, restore it: nsdb restore --config {} BACKUP_DIR",
                db.display(),
                config_file.display(),
                config_file.display()
            ),
        )),
        (_, Ok(true)) if unusable.is_some() => out.extend(unusable.take()),
        (None, Ok(true)) => out.push(finding(
            "database",
            Verdict::Warn,
            "not checked: no usable key (see above)",
        )),
        (Some(key), Ok(true)) => match connect(&db, Some(key), OpenFlags::SQLITE_OPEN_READ_ONLY) {
            Err(e) => out.push(finding(
                "database",
                Verdict::Fix,
                store_for_operator(config, Some(config_file), e).to_string(),
            )),
            Ok(conn) => {
                out.extend(database(&conn, config, config_file));
                latest_audit = conn
                    .query_row("SELECT max(at) FROM audit", [], |r| r.get::<_, Option<i64>>(0))
                    .ok()
                    .flatten();
            }
        },
    }
    out.push(clock(now_ms, latest_audit));
    out.push(enrollment(config));
    out.push(tls(config, now_ms));
    out.push(match crate::load_catalogue(config.rules.as_ref()) {
        Ok(_) if config.rules.is_some() => {
            finding("rule pack", Verdict::Ok, "the rule pack's signature verifies")
        }
        Ok(_) => finding("rule pack", Verdict::Ok, "the built-in form catalogue"),
        Err(e) => finding(
            "rule pack",
            Verdict::Fix,
            format!("{e:#}: install the pack the ministry signed, with its public key in rules.ministry_key"),
        ),
    });
    out
}

/// A `node.db` that is there but cannot be a database: a directory or another kind of entry,
/// a file the user cannot read, or an empty (0-byte) file — the database was lost (truncated by
/// a failed copy, a full disk during a move, an editor). Each finding says what happened and
/// the exact commands that bring the node back; None when the file can be opened and has bytes.
fn unusable_file(db: &Path, config: &crate::NodeConfig, config_file: &Path) -> Option<Finding> {
    let data_dir = &config.data_dir;
    let restore = format!(
        "systemctl stop nsdb; nsdb restore --config {} BACKUP_DIR (the newest directory written by nsdb backup); systemctl start nsdb — {}",
        config_file.display(),
        super::CatchUp::of(config).after_restore()
    );
    let meta = match std::fs::metadata(db) {
        Ok(m) => m,
        Err(e) => {
            return Some(finding(
                "database",
                Verdict::Fix,
                format!(
                    "cannot read {} ({e}): the data directory must belong to the user running nsdb (chown -R nsdb:nsdb {}), or run nsdb doctor as that user or root",
                    db.display(),
                    data_dir.display()
                ),
            ));
        }
    };
    if !meta.is_file() {
        let what = if meta.is_dir() {
            "a directory"
        } else {
            "not a regular file"
        };
        return Some(finding(
            "database",
            Verdict::Fix,
            format!(
                "{} is {what}, not a database file, so nsdb cannot read it: move it away (mv {} {}.unreadable) and, if this node had a database, restore it: {restore}",
                db.display(),
                db.display(),
                db.display()
            ),
        ));
    }
    if let Err(e) = std::fs::File::open(db) {
        return Some(finding(
            "database",
            Verdict::Fix,
            format!(
                "cannot read {} ({e}): it must belong to the user running nsdb and be readable by it (chown -R nsdb:nsdb {}; chmod 600 {}), or run nsdb doctor as that user or root",
                db.display(),
                data_dir.display(),
                db.display()
            ),
        ));
    }
    if meta.len() == 0 {
        return Some(finding(
            "database",
            Verdict::Fix,
            format!(
                "{} is empty (0 bytes): the node's database was lost (emptied by a failed copy or move, or a full disk); nsdb refuses to start on it rather than come up as a new node without users. Restore the last backup: {restore}",
                db.display()
            ),
        ));
    }
    None
}

/// The web listener's certificate: readable, in its validity period (a warning under 30 days
/// left), matching its key; or, without TLS, whether the listen address is loopback.
fn tls(config: &crate::NodeConfig, now_ms: i64) -> Finding {
    use super::tls::{check_listen, examine};
    let Some(t) = &config.tls else {
        return match check_listen(config.listen, None) {
            Ok(()) => finding(
                "tls",
                Verdict::Ok,
                format!("plain HTTP on loopback ({}) only", config.listen),
            ),
            Err(e) => finding("tls", Verdict::Fix, e.to_string()),
        };
    };
    match examine(t, now_ms) {
        Ok(c) if c.days_left < 30 => finding(
            "tls",
            Verdict::Warn,
            format!(
                "the certificate of {} expires in {} days: install its successor",
                c.subject, c.days_left
            ),
        ),
        Ok(c) => finding(
            "tls",
            Verdict::Ok,
            format!(
                "certificate of {} matches its key, {} days left{}",
                c.subject,
                c.days_left,
                match t.client_certs {
                    super::tls::ClientCerts::Required =>
                        "; client certificates required: only terminals with a certificate of this node connect (nsdb terminal list)",
                    super::tls::ClientCerts::Off =>
                        "; client certificates not required (any browser reaches the sign-in page)",
                }
            ),
        ),
        Err(e) => finding("tls", Verdict::Fix, e.to_string()),
    }
}

fn data_dir(dir: &Path, config_file: &Path) -> Finding {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let Ok(meta) = std::fs::metadata(dir) else {
            // Only nsdb init creates a node: nsdb serve refuses a data directory that is not there.
            return finding(
                "data directory",
                Verdict::Fix,
                format!(
                    "{} does not exist: if this is a new node, set it up with nsdb init --config {}; otherwise check data_dir in {} (mistyped?)",
                    dir.display(),
                    config_file.display(),
                    config_file.display()
                ),
            );
        };
        // SAFETY: geteuid has no preconditions and cannot fail.
        let me = unsafe { libc::geteuid() };
        if meta.mode() & 0o077 != 0 {
            return finding(
                "data directory",
                Verdict::Fix,
                format!(
                    "{} can be read or entered by others (mode {:o}): chmod 700 {}",
                    dir.display(),
                    meta.mode() & 0o777,
                    dir.display()
                ),
            );
        }
        if me == 0 && meta.uid() == 0 {
            return finding(
                "data directory",
                Verdict::Warn,
                format!(
                    "{} belongs to root; if the service runs as its own user (provisioning/systemd): chown -R nsdb:nsdb {}",
                    dir.display(),
                    dir.display()
                ),
            );
        }
        if me != 0 && meta.uid() != me {
            return finding(
                "data directory",
                Verdict::Fix,
                format!(
                    "{} belongs to user id {}, not to the user running nsdb (id {me}): chown -R nsdb:nsdb {}",
                    dir.display(),
                    meta.uid(),
                    dir.display()
                ),
            );
        }
        finding(
            "data directory",
            Verdict::Ok,
            format!(
                "{} belongs to user id {}, mode 700",
                dir.display(),
                meta.uid()
            ),
        )
    }
    #[cfg(not(unix))]
    finding("data directory", Verdict::Ok, dir.display().to_string())
}

fn free_disk(dir: &Path, min_free_bytes: u64) -> Finding {
    let Some(free) = super::space::free_bytes(dir) else {
        return finding(
            "free disk",
            Verdict::Warn,
            format!(
                "not checked: the file system of {} cannot be asked",
                dir.display()
            ),
        );
    };
    let gib = |b: u64| b as f64 / (1u64 << 30) as f64;
    // In MiB, the unit min_free_disk_mib is given in (a small limit would read 0.00 GiB).
    let mib = |b: u64| b / (1 << 20);
    if free < min_free_bytes {
        finding(
            "free disk",
            Verdict::Fix,
            format!(
                "only {} MiB free under {} (min_free_disk_mib asks for {} MiB): free space or grow the disk before saves are refused",
                mib(free),
                dir.display(),
                mib(min_free_bytes)
            ),
        )
    } else {
        finding(
            "free disk",
            Verdict::Ok,
            format!("{:.1} GiB free ({} MiB)", gib(free), mib(free)),
        )
    }
}

fn database(
    conn: &rusqlite::Connection,
    config: &crate::NodeConfig,
    config_file: &Path,
) -> Vec<Finding> {
    let mut out = Vec::new();
    // Damage said alike wherever it shows: the file, the restore, what comes back after it.
    let said = |e: super::OpsError| for_operator(config, Some(config_file), e).to_string();
    // Once the integrity line said the database is damaged (and what to do), the checks that
    // cannot read it for that damage say so in a few words.
    let mut damaged = false;
    let unread = |damaged: bool, e: super::OpsError| {
        if damaged && matches!(&e, super::OpsError::Store(s) if s.is_damage()) {
            (
                Verdict::Warn,
                "not checked: the database is damaged (integrity, above)".to_string(),
            )
        } else {
            (Verdict::Fix, said(e))
        }
    };
    match super::integrity_problems(conn) {
        Ok(p) if p.is_empty() => out.push(finding(
            "integrity",
            Verdict::Ok,
            "cipher_integrity_check and integrity_check pass",
        )),
        Ok(p) => out.push({
            damaged = true;
            finding(
                "integrity",
                Verdict::Fix,
                store_for_operator(
                    config,
                    Some(config_file),
                    crate::store::StoreError::damaged_file(
                        &config.database_path(),
                        &format!("the page check: {}", p.join("; ")),
                    ),
                )
                .to_string(),
            )
        }),
        Err(e) => {
            damaged = matches!(&e, super::OpsError::Store(s) if s.is_damage());
            out.push(finding("integrity", Verdict::Fix, said(e)));
        }
    }
    match crate::audit::verify(conn) {
        Ok(Ok(n)) => out.push(finding("audit log", Verdict::Ok, format!("{n} entries, chain verified"))),
        Ok(Err(seq)) => out.push(finding(
            "audit log",
            Verdict::Fix,
            format!("the chain breaks at entry {seq}: the log was altered; keep this file as evidence and restore the last backup"),
        )),
        Err(e) => {
            let (verdict, say) = unread(damaged, e.into());
            out.push(finding("audit log", verdict, say));
        }
    }
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap_or(-1);
    let known = crate::store::schema_version() as i64;
    out.push(if version > known {
        finding(
            "schema",
            Verdict::Fix,
            format!(
                "schema version {version} is newer than this nsdb ({known}): run the newer nsdb"
            ),
        )
    } else {
        finding(
            "schema",
            Verdict::Ok,
            format!("schema version {version} (this nsdb: {known})"),
        )
    });
    if let Ok(identity) = nsdb_provisioning::NodeIdentity::load(&config.identity_path()) {
        let ours = nsdb_sync::NodeId(identity.node_id()).to_string();
        out.push(match super::guard::database_owner(conn) {
            Ok(Some(found)) if found != ours => finding(
                "owner",
                Verdict::Fix,
                format!(
                    "the database belongs to node {found}, this directory's identity is {ours}"
                ),
            ),
            Ok(_) => finding("owner", Verdict::Ok, format!("node {ours}")),
            Err(e) => {
                let (verdict, say) = unread(damaged, e);
                finding("owner", verdict, say)
            }
        });
    }
    out
}

/// The clock must be plausible, and never behind what the audit log already recorded.
fn clock(now_ms: i64, latest_audit: Option<i64>) -> Finding {
    const JAN_2025_MS: i64 = 1_735_689_600_000;
    if now_ms < JAN_2025_MS {
        return finding(
            "clock",
            Verdict::Fix,
            "the system clock is before 2025: set it (timedatectl set-ntp true)",
        );
    }
    if let Some(at) = latest_audit.filter(|at| *at > now_ms + 60_000) {
        return finding(
            "clock",
            Verdict::Fix,
            format!(
                "the audit log has an entry {} s in the future of this clock: the clock went back; fix the time source (timedatectl) before serving",
                (at - now_ms) / 1000
            ),
        );
    }
    finding(
        "clock",
        Verdict::Ok,
        "plausible and not behind the audit log",
    )
}

fn enrollment(config: &crate::NodeConfig) -> Finding {
    if config.role == crate::NodeRole::Hub {
        return finding("enrollment", Verdict::Ok, "this is the hub");
    }
    match nsdb_provisioning::enrollment::accepted(&config.data_dir) {
        Ok(Some(e))
            if e.role != config.role.institution_kind()
                || e.jurisdiction != config.institution.code =>
        {
            finding(
                "enrollment",
                Verdict::Fix,
                format!(
                    "the enrollment is for a {} with code {}, but this node is a {} with institution.code {}: the hub would send it another institution's sheets; ask the hub's operator for an enrollment with --role {} --jurisdiction {}",
                    e.role,
                    e.jurisdiction,
                    config.role.institution_kind(),
                    config.institution.code,
                    config.role.institution_kind(),
                    config.institution.code
                ),
            )
        }
        Ok(Some(e)) if e.hub_address.ip().is_unspecified() => finding(
            "enrollment",
            Verdict::Fix,
            format!(
                "the enrollment names {} as the hub's address, which no node can reach: ask the hub's operator for an enrollment with --hub-address",
                e.hub_address
            ),
        ),
        Ok(Some(e)) => finding(
            "enrollment",
            Verdict::Ok,
            format!(
                "enrolled with the hub at {} (reachability not checked here)",
                e.hub_address
            ),
        ),
        Ok(None) => finding(
            "enrollment",
            Verdict::Warn,
            "not enrolled: sheets stay on this node until it is (nsdb provision node-key, then nsdb provision enroll)",
        ),
        Err(e) => finding(
            "enrollment",
            Verdict::Fix,
            format!("{e}: ask the hub's operator for a new enrollment file"),
        ),
    }
}
