//! The operator's commands on a stopped or serving node: `nsdb backup`, `nsdb restore`,
//! `nsdb rekey`. They parse nothing themselves (clap does, in `cli::mod`) and hold no logic
//! beyond loading the configuration, key and identity and printing what `ops` did.

use std::path::Path;

use crate::NodeConfig;
use crate::ops::{backup, rekey};
use crate::store::DbKey;

fn node_id(config: &NodeConfig) -> anyhow::Result<String> {
    use anyhow::Context;
    let identity = nsdb_provisioning::NodeIdentity::load(&config.identity_path())
        .with_context(|| format!("node identity in {}", config.data_dir.display()))?;
    Ok(nsdb_sync::NodeId(identity.node_id()).to_string())
}

/// `nsdb backup --config FILE DIR`: an online backup into DIR.
pub fn backup(file: &Path, dest: &Path) -> anyhow::Result<()> {
    let config = NodeConfig::from_file(file)?;
    crate::ops::guard::require_node(&config, file, "backup")?;
    let key = DbKey::load(&config.key)?;
    let id = node_id(&config)?;
    let m = backup::backup(&config, &key, &id, dest, crate::Clock::System.now_ms())
        .map_err(|e| backup::for_operator(&config, Some(file), e))?;
    println!(
        "backup of node {} in {}: {} sheets, {} users, {} workflow events, {} audit entries (chain verified), {} bytes, SHA-256 {}",
        m.node_name,
        dest.display(),
        m.sheets,
        m.users,
        m.workflow_events,
        m.audit_entries,
        m.bytes,
        m.sha256
    );
    if !m.files.is_empty() {
        println!("it carries {} (encrypted)", m.files.join(", "));
    }
    println!(
        "it is encrypted with the node's key (fingerprint {}); keep the key apart from the backup",
        m.key_fingerprint
    );
    Ok(())
}

/// A time as the operator reads it: local date and time with its offset (UTC when the local
/// offset cannot be known), e.g. `2026-12-01 07:41:02 +09:00`.
fn local_time(ms: i64) -> String {
    let Ok(t) = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000) else {
        return format!("{ms} ms after 1970");
    };
    let t = time::UtcOffset::local_offset_at(t).map_or(t, |o| t.to_offset(o));
    let format = time::macros::format_description!(
        "[year]-[month]-[day] [hour]:[minute]:[second] [offset_hour sign:mandatory]:[offset_minute]"
    );
    t.format(&format)
        .unwrap_or_else(|_| format!("{ms} ms after 1970"))
}

/// `nsdb restore --config FILE [--key-file OLD] DIR`: verifies the backup in DIR and puts it in
/// place, with the data directory's files it carries that are missing; with `--key-file`, a
/// backup taken with an older key is re-encrypted to the node's key.
pub fn restore(
    file: &Path,
    dir: &Path,
    verify_only: bool,
    key_file: Option<&Path>,
    yes: bool,
) -> anyhow::Result<()> {
    let config = NodeConfig::from_file(file)?;
    let key = DbKey::load(&config.key)?;
    let backup_key = key_file
        .map(|p| DbKey::load(&crate::store::KeySource::File(p.to_path_buf())))
        .transpose()?;
    // A node that lost its disk has no identity yet: the backup's own is put back.
    let id = if config.identity_path().exists() {
        Some(node_id(&config)?)
    } else {
        None
    };
    if verify_only {
        let manifest = backup::read_manifest(dir)?;
        let m = backup::verify(
            dir,
            backup_key.as_ref().unwrap_or(&key),
            id.as_deref().unwrap_or(&manifest.node_id),
            config.key.file(),
        )?;
        println!(
            "backup verified: {} sheets, {} audit entries, taken at {}",
            m.sheets,
            m.audit_entries,
            local_time(m.taken_at_ms)
        );
        return Ok(());
    }
    let r = backup::restore_confirmed(
        &config,
        &key,
        backup_key.as_ref(),
        id.as_deref(),
        dir,
        crate::Clock::System.now_ms(),
        &mut || warn_unacknowledged(&config, &key, dir, yes),
    )
    .map_err(|e| backup::for_operator(&config, Some(file), e))?;
    println!(
        "restored {} sheets, {} users, {} audit entries (verified) from {}, taken at {}",
        r.manifest.sheets,
        r.manifest.users,
        r.manifest.audit_entries,
        dir.display(),
        local_time(r.manifest.taken_at_ms)
    );
    if r.rekeyed {
        println!(
            "the database was re-encrypted from the backup's key to the node's configured key"
        );
    }
    if !r.files_put_back.is_empty() {
        println!(
            "put back in {}: {}",
            config.data_dir.display(),
            r.files_put_back.join(", ")
        );
    }
    if !r.files_kept.is_empty() {
        println!(
            "kept as they are (newer than the backup's): {}",
            r.files_kept.join(", ")
        );
    }
    if let Some(p) = r.previous {
        println!(
            "the database it replaced is kept as {}; remove it once the node runs",
            p.display()
        );
    }
    println!(
        "start the node; {}",
        crate::ops::CatchUp::of(&config).after_restore()
    );
    Ok(())
}

/// How many unacknowledged sheet ids the warning lists before it only counts the rest.
const LISTED_IDS: usize = 200;

/// Before a restore replaces anything: says which sheets of the current database the hub never
/// acknowledged (their changes would be lost) and how to keep them, then goes on only with
/// `--yes` or, on a terminal, when the operator types `RESTORE`. Ids only, never a value.
fn warn_unacknowledged(
    config: &NodeConfig,
    key: &DbKey,
    dir: &Path,
    yes: bool,
) -> Result<(), crate::ops::OpsError> {
    let ids = match backup::unacknowledged(config, key) {
        Ok(ids) => ids,
        Err(crate::ops::OpsError::Store(e)) if e.is_damage() => {
            eprintln!(
                "note: the current database {} is damaged, so which sheets the hub has not acknowledged cannot be read; the restore replaces it (changes made since the backup that did not reach the hub are lost with it)",
                config.database_path().display()
            );
            return Ok(());
        }
        Err(e) => {
            eprintln!(
                "note: the current database could not be read to see which sheets the hub has not acknowledged ({e}); changes made since the backup that did not reach the hub are lost with the restore"
            );
            return Ok(());
        }
    };
    if ids.is_empty() {
        return Ok(());
    }
    let mut listed = ids
        .iter()
        .take(LISTED_IDS)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if ids.len() > LISTED_IDS {
        listed.push_str(&format!(" … and {} more", ids.len() - LISTED_IDS));
    }
    let enrolled = crate::ops::CatchUp::of(config) == crate::ops::CatchUp::FromHub;
    // A damaged database cannot be backed up (nsdb backup refuses it): never advise it then.
    let damaged = !enrolled && backup::page_check(config).is_some();
    let (lost, keep) = if enrolled {
        (
            "were never acknowledged by the hub and would be lost",
            "start the node and let it sync until its sync page (/sync) shows 0 waiting (未送信), then take a new backup (nsdb backup) and restore that one",
        )
    } else if damaged {
        (
            "would be lost: this node is not enrolled with a hub, so no copy of them is kept anywhere else",
            "they cannot be kept: the current database is damaged, so nsdb backup cannot copy it (the restore keeps the damaged file aside as node.db.before-restore-<ms>)",
        )
    } else {
        (
            "would be lost: this node is not enrolled with a hub, so no copy of them is kept anywhere else",
            "take a backup of the current database first (nsdb backup) and keep it; nothing comes back from a hub",
        )
    };
    eprintln!(
        "warning: {} sheet(s) in the current database {lost}; restoring {} replaces them with the backup's older copy or removes them: {listed}",
        ids.len(),
        dir.display()
    );
    if damaged {
        eprintln!("{keep}; restore with --yes");
    } else {
        eprintln!("to keep them: {keep}; or restore anyway with --yes");
    }
    if yes {
        return Ok(());
    }
    if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        eprint!("type RESTORE to replace the database anyway: ");
        let mut line = String::new();
        if std::io::stdin().read_line(&mut line).is_ok() && line.trim() == "RESTORE" {
            return Ok(());
        }
    }
    Err(crate::ops::OpsError::NotConfirmed {
        sheets: ids.len(),
        lost: if enrolled {
            "the hub never acknowledged would be lost"
        } else {
            "would be lost (this node is not enrolled with a hub)"
        },
        advice: if enrolled {
            "sync first (then take a new backup)"
        } else if damaged {
            "the current database is damaged and cannot be backed up; type RESTORE on a terminal to replace it with the backup"
        } else {
            "take a backup of the current database first (nsdb backup)"
        },
    })
}

/// `nsdb rekey --config FILE [--recover]`.
pub fn rekey(file: &Path, recover_only: bool) -> anyhow::Result<()> {
    let config = NodeConfig::from_file(file)?;
    let done = if recover_only {
        let _lock = crate::ops::guard::DirLock::acquire(&config.data_dir)?;
        rekey::recover(&config).map(|recovered| (recovered, None))
    } else {
        rekey::recover_then_rekey(&config).map(|r| (r.recovered, Some(r.kept)))
    };
    let (done, kept) = done.map_err(|e| backup::for_operator(&config, Some(file), e))?;
    // The re-encrypted database is a new file: the node's alone, as restore leaves it.
    backup::give_database_to_owner(&config)?;
    let said = match done {
        rekey::Recovery::Nothing => "",
        rekey::Recovery::OpensWithOldKey => {
            "an interrupted rekey was undone: the database opened with the old key. "
        }
        rekey::Recovery::OpensWithNewKey => {
            "an interrupted rekey was finished: the database opened with the new key. "
        }
    };
    match kept {
        // --recover only.
        None if said.is_empty() => {
            println!("no interrupted rekey");
            // A database that opens only with another key file is not an interrupted rekey:
            // say what it is and what to do.
            if let Some(advice) = rekey::wrong_key_advice(&config) {
                anyhow::bail!(advice);
            }
        }
        None => println!("{said}"),
        Some(kept) => println!(
            "{said}the database key was changed; the previous key is kept for good in {} for backups taken before (copy it where the backups' keys are kept, apart from the node; {} holds it too, but only until the next rekey)",
            kept.display(),
            rekey::old_key_path(config.key.file().unwrap_or(Path::new("?"))).display()
        ),
    }
    Ok(())
}

/// `nsdb doctor --config FILE`: prints every check; fails when one needs fixing.
/// `nsdb audit verify --config FILE`: walks the audit chain and its signed checkpoints and
/// prints "intact: …" or the first tampered entry by seq; fails (exit status 1) when tampered.
pub fn audit_verify(file: &Path) -> anyhow::Result<()> {
    use crate::audit::{ChainVerdict, verify_anchored};
    let config = NodeConfig::from_file(file)?;
    crate::ops::guard::require_node(&config, file, "audit verify")?;
    let key = crate::store::DbKey::load(&config.key)?;
    let conn = crate::store::connect(
        &config.database_path(),
        Some(&key),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .map_err(|e| backup::store_for_operator(&config, Some(file), e))?;
    let identity = nsdb_provisioning::NodeIdentity::load(&config.identity_path())?;
    let verdict = verify_anchored(&conn, &identity.public_key().to_bytes())?;
    println!("{verdict}");
    if !matches!(verdict, ChainVerdict::Intact { .. }) {
        anyhow::bail!("the audit log of {} was tampered with", config.name);
    }
    Ok(())
}

pub fn doctor(config: &Path) -> anyhow::Result<()> {
    use crate::ops::doctor::{Verdict, examine};
    let file = config;
    let config = NodeConfig::from_file(file)?;
    let findings = examine(&config, file, crate::Clock::System.now_ms());
    let mut to_fix = 0;
    for f in &findings {
        let tag = match f.verdict {
            Verdict::Ok => "ok  ",
            Verdict::Warn => "warn",
            Verdict::Fix => {
                to_fix += 1;
                "FIX "
            }
        };
        println!("{tag} {:<15} {}", f.check, f.say);
    }
    if to_fix > 0 {
        anyhow::bail!("{to_fix} problem(s) to fix (lines marked FIX)");
    }
    Ok(())
}
