//! Designated doctors' accounts between nodes and the hub (`crate::accounts::registry` holds
//! the record and what a node does with it).
//!
//! Before each sync session a node reports and pulls ([`report_accounts`]):
//! - a municipality sends every record it changed ([`Ask::Account`]); the hub takes it only from
//!   the municipality named as its manager, for a doctor kind, with an ID no other account
//!   holds, keeps the 兼務 and a newer password it already holds, and stamps it with its counter;
//! - a node sends a password set there ([`Ask::AccountPassword`]), taken when the account works
//!   at the node's institution and the password is newer than the registry's;
//! - a hospital pulls the records that reach its institution since its cursor
//!   ([`Ask::Accounts`], 200 a reply) and applies them, then records when it last heard from the
//!   hub (`node_meta.accounts_synced_at`, shown by the user list and the 兼務 screen).
//!
//! Online only, from the doctor's own screen: the hub's institution registry
//! ([`Ask::Institution`]: an enrolled hospital, or a clinic the hub serves) and the 兼務
//! ([`Ask::Kenmu`], only from the node of the doctor's main institution, at most
//! [`MAX_KENMU`], each a known institution). The hub applies every record whose main
//! institution is a clinic it serves to its own users.

use nsdb_sync::{Peer, PeerRole};
use rusqlite::{Connection, OptionalExtension, params};

use super::requests::{Ask, Reply};
use crate::accounts::policy::Principal;
use crate::accounts::registry::{self, AccountRecord, Kenmu, MAX_KENMU};
use crate::config::NodeRole;
use crate::institution::InstitutionCode;
use crate::{Error, Node, audit};

/// Records a hub sends in one reply to [`Ask::Accounts`].
pub const PULL_BATCH: usize = 200;

/// At the hub: its institution registry, read once per request: every hospital enrolled (not
/// revoked, with its name) and the hub's own code; the clinics it serves are in its
/// `institutions` table.
#[derive(Debug, Clone)]
pub(crate) struct Institutions {
    hospitals: Vec<(String, String)>,
    own: String,
}

impl Institutions {
    pub(crate) fn of(node: &Node) -> Institutions {
        let hospitals = nsdb_provisioning::enrollment::registry(&node.config.data_dir)
            .map(|r| {
                r.nodes
                    .into_iter()
                    .filter(|n| n.role == "hospital" && !n.revoked)
                    .map(|n| (n.jurisdiction, n.name))
                    .collect()
            })
            .unwrap_or_default();
        Institutions {
            hospitals,
            own: node.config.institution.code.clone(),
        }
    }

    /// The name of the institution `code` names in the registry (an enrolled hospital, or a
    /// clinic the hub serves): the 医療機関名 the hospital reports, or the clinic's as the hub
    /// holds it; a hospital that has not reported it yet by its enrolment's name.
    fn name(&self, c: &Connection, code: &str) -> rusqlite::Result<Option<String>> {
        if code == self.own {
            return Ok(None);
        }
        let named: Option<String> = c
            .query_row(
                "SELECT name FROM institutions WHERE code = ?1 AND kind = 'hospital'",
                [code],
                |r| r.get(0),
            )
            .optional()?;
        Ok(named.or_else(|| {
            self.hospitals
                .iter()
                .find(|(j, _)| j == code)
                .map(|(_, name)| name.clone())
        }))
    }

    /// Whether `code` has a node of its own (else the hub serves it as a clinic).
    fn has_node(&self, code: &str) -> bool {
        self.hospitals.iter().any(|(j, _)| j == code)
    }
}

/// At the hub: stores `record` at the next version, notes the institutions it reaches, and
/// applies it to the hub's own users when its main institution is a clinic the hub serves.
fn hold(at: &Institutions, c: &Connection, record: &AccountRecord, now: i64) -> crate::Result<i64> {
    let version = registry::next_version(c)?;
    registry::store(c, record, version, false)?;
    for code in
        std::iter::once(&record.institution).chain(record.kenmu.iter().map(|k| &k.institution))
    {
        c.execute(
            "INSERT OR IGNORE INTO account_reach (account_id, institution) VALUES (?1, ?2)",
            params![record.account_id, code],
        )?;
    }
    if !at.has_node(&record.institution) {
        crate::accounts::ensure_institution(
            c,
            &record.institution,
            &record.institution_name,
            "hospital",
        )?;
        if let Err(e) = registry::apply(c, &record.institution, record, now) {
            tracing::warn!(target: "nsdb::sync", error = %e, "an account record was not applied at the hub");
        }
    }
    Ok(version)
}

fn refused(reason: impl Into<String>) -> Reply {
    Reply::Refused {
        reason: reason.into(),
    }
}

/// At the hub: a record from the municipality that manages it.
pub(super) async fn take_record(node: &Node, peer: &Peer, mut record: AccountRecord) -> Reply {
    if peer.role != PeerRole::Municipality || record.managed_by != peer.jurisdiction {
        return refused("only the municipality that manages an account sends it");
    }
    if record.doctor_kind().is_none() {
        return refused("the registry holds designated doctors' accounts only");
    }
    if InstitutionCode::parse(&record.institution).is_err() {
        return refused(format!("{} is not a 医療機関コード", record.institution));
    }
    let (now, at, from) = (node.clock.now_ms(), Institutions::of(node), peer.node);
    let held = node
        .store
        .write(move |c| {
            let tx = c.transaction()?;
            let clash: Option<String> = tx
                .query_row(
                    "SELECT account_id FROM account_records
                     WHERE json_extract(record, '$.login') = ?1 AND account_id <> ?2",
                    params![record.login, record.account_id],
                    |r| r.get(0),
                )
                .optional()?;
            if clash.is_some() {
                return Ok(Err(format!(
                    "the ID {} is held by another account",
                    record.login
                )));
            }
            if let Some((old, _)) = registry::load(&tx, &record.account_id)? {
                if old.managed_by != record.managed_by {
                    return Ok(Err("the account is managed by another municipality".into()));
                }
                // The 兼務 are the doctor's; a password the doctor set later stays.
                record.kenmu = old.kenmu;
                if old.password_set_at > record.password_set_at {
                    record.password_hash = old.password_hash;
                    record.password_set_at = old.password_set_at;
                    record.must_change_password = old.must_change_password;
                }
            }
            let version = hold(&at, &tx, &record, now)?;
            let detail = format!("node={from} version={version}");
            audit::append(
                &tx,
                audit::Entry {
                    at_ms: now,
                    user: None,
                    action: "account_record",
                    target: Some(&record.account_id),
                    detail: Some(&detail),
                },
            )?;
            tx.commit()?;
            Ok::<_, Error>(Ok(version))
        })
        .await;
    match held {
        Ok(Ok(version)) => Reply::AccountHeld { version },
        Ok(Err(reason)) => refused(reason),
        Err(e) => {
            tracing::error!(target: "nsdb::sync", error = %e, "an account record could not be stored");
            refused("the hub could not store the account")
        }
    }
}

/// At the hub: a password set at a node where the account works (`at` is that node's
/// institution, or the hub's clinic), newer than the registry's.
pub(crate) fn take_password(
    registry_at: &Institutions,
    c: &Connection,
    at: &str,
    account_id: &str,
    hash: &str,
    set_at: i64,
    now: i64,
) -> crate::Result<std::result::Result<i64, String>> {
    let Some((mut r, version)) = registry::load(c, account_id)? else {
        return Ok(Err("no such account".into()));
    };
    if !r.reaches(at) || r.deleted_at.is_some() {
        return Ok(Err("the account does not work at this institution".into()));
    }
    if r.password_set_at >= set_at {
        return Ok(Ok(version));
    }
    r.password_hash = hash.to_string();
    r.password_set_at = set_at;
    r.must_change_password = false;
    r.changed_at = now;
    let version = hold(registry_at, c, &r, now)?;
    audit::append(
        c,
        audit::Entry {
            at_ms: now,
            user: None,
            action: "account_password",
            target: Some(account_id),
            detail: Some(&format!("institution={at} version={version}")),
        },
    )?;
    Ok(Ok(version))
}

/// On the hub: the password user `uid` just set here (a clinic's doctor) enters the registry
/// in the same transaction.
pub(crate) fn password_set_at_hub(
    c: &Connection,
    registry_at: &Institutions,
    uid: u64,
    now: i64,
) -> crate::Result<()> {
    let row: Option<(Option<String>, String, String)> = c
        .query_row(
            "SELECT account_id, institution, password_hash FROM users WHERE id = ?1",
            [uid as i64],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    if let Some((Some(account_id), at, hash)) = row {
        if let Err(reason) = take_password(registry_at, c, &at, &account_id, &hash, now, now)? {
            tracing::warn!(target: "nsdb::sync", %reason, "a password set on the hub did not enter the registry");
        }
        c.execute(
            "UPDATE users SET password_pending = 0 WHERE id = ?1",
            [uid as i64],
        )?;
    }
    Ok(())
}

pub(super) async fn password_at_hub(
    node: &Node,
    peer: &Peer,
    account_id: String,
    hash: String,
    set_at: i64,
) -> Reply {
    let (now, registry_at) = (node.clock.now_ms(), Institutions::of(node));
    let at = peer.jurisdiction.clone();
    let held = node
        .store
        .write(move |c| {
            let tx = c.transaction()?;
            let v = take_password(&registry_at, &tx, &at, &account_id, &hash, set_at, now)?;
            tx.commit()?;
            Ok::<_, Error>(v)
        })
        .await;
    match held {
        Ok(Ok(version)) => Reply::AccountHeld { version },
        Ok(Err(reason)) => refused(reason),
        Err(e) => {
            tracing::error!(target: "nsdb::sync", error = %e, "a password could not be stored");
            refused("the hub could not store the password")
        }
    }
}

/// At the hub: the records reaching the asking hospital's institution since `since`; the
/// hospital's 医療機関名 (`name`) is kept for the registry (兼務 shows it).
pub(super) async fn records_for(node: &Node, peer: &Peer, since: i64, name: String) -> Reply {
    if peer.role != PeerRole::Hospital {
        return Reply::Accounts {
            records: Vec::new(),
            upto: since,
            more: false,
        };
    }
    let at = peer.jurisdiction.clone();
    let name = name.trim().to_string();
    if !name.is_empty() && !name.chars().any(char::is_control) {
        let code = at.clone();
        let named = node
            .store
            .write(move |c| {
                c.execute(
                    "INSERT INTO institutions (code, name, kind) VALUES (?1, ?2, 'hospital')
                     ON CONFLICT(code) DO UPDATE SET name = excluded.name
                     WHERE institutions.name <> excluded.name",
                    params![code, name],
                )?;
                Ok::<_, Error>(())
            })
            .await;
        if let Err(e) = named {
            tracing::warn!(target: "nsdb::sync", error = %e, "a hospital's name could not be kept");
        }
    }
    let found = node
        .store
        .read(move |c| {
            let mut st = c.prepare_cached(
                "SELECT r.record, r.version FROM account_reach a
                   JOIN account_records r ON r.account_id = a.account_id
                 WHERE a.institution = ?1 AND r.version > ?2
                 ORDER BY r.version LIMIT ?3",
            )?;
            let rows = st
                .query_map(params![at, since, PULL_BATCH as i64 + 1], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok::<_, Error>(rows)
        })
        .await;
    match found {
        Ok(mut rows) => {
            let more = rows.len() > PULL_BATCH;
            rows.truncate(PULL_BATCH);
            let upto = rows.last().map_or(since, |(_, v)| *v);
            let records = rows
                .iter()
                .filter_map(|(json, _)| registry::parse(json).ok())
                .collect();
            Reply::Accounts {
                records,
                upto,
                more,
            }
        }
        Err(e) => {
            tracing::error!(target: "nsdb::sync", error = %e, "account records could not be read");
            refused("the hub could not read the accounts")
        }
    }
}

/// At the hub: the institution registered under `code`.
pub(super) async fn institution_at_hub(node: &Node, code: String) -> Reply {
    let at = Institutions::of(node);
    let found = node
        .store
        .read(move |c| Ok::<_, Error>(at.name(c, &code)?.map(|n| (code, n))))
        .await;
    match found {
        Ok(Some((code, name))) => Reply::Institution { code, name },
        Ok(None) => Reply::NotFound,
        Err(_) => refused("the hub could not look the institution up"),
    }
}

/// At the hub: the 兼務 of `account_id`, from the node of its main institution `at`. Each
/// code must name an institution of the registry other than the main one, once; the names
/// are the registry's. Answers the record as held.
pub(crate) fn set_kenmu_at_hub(
    registry_at: &Institutions,
    c: &Connection,
    at: &str,
    account_id: &str,
    kenmu: Vec<Kenmu>,
    now: i64,
) -> crate::Result<std::result::Result<AccountRecord, String>> {
    let Some((mut r, _)) = registry::load(c, account_id)? else {
        return Ok(Err("no such account".into()));
    };
    if r.institution != at || r.deleted_at.is_some() {
        return Ok(Err(
            "兼務先は主たる勤務先の医療機関で登録してください。".into()
        ));
    }
    if kenmu.len() > MAX_KENMU {
        return Ok(Err(format!(
            "兼務先は最大{MAX_KENMU}件までです（{}件あります）。",
            kenmu.len()
        )));
    }
    let mut named = Vec::with_capacity(kenmu.len());
    for k in kenmu {
        if k.institution == r.institution {
            return Ok(Err(format!(
                "医療機関番号「{}」は主たる勤務先です。兼務先には登録できません。",
                k.institution
            )));
        }
        if named.iter().any(|n: &Kenmu| n.institution == k.institution) {
            return Ok(Err(format!(
                "医療機関番号「{}」が2回あります。",
                k.institution
            )));
        }
        let Some(name) = registry_at.name(c, &k.institution)? else {
            return Ok(Err(format!(
                "医療機関番号「{}」の医療機関はこのシステムに登録されていません。",
                k.institution
            )));
        };
        // One account acts on the hub for one institution: its main clinic.
        if !registry_at.has_node(&k.institution) {
            return Ok(Err(format!(
                "医療機関番号「{}」（{name}）はハブで利用する診療所のため、兼務先にはまだ登録できません。",
                k.institution
            )));
        }
        named.push(Kenmu { name, ..k });
    }
    r.kenmu = named;
    r.changed_at = now;
    let version = hold(registry_at, c, &r, now)?;
    audit::append(
        c,
        audit::Entry {
            at_ms: now,
            user: None,
            action: "account_kenmu",
            target: Some(account_id),
            detail: Some(&format!(
                "institution={at} version={version} kenmu={}",
                r.kenmu
                    .iter()
                    .map(|k| k.institution.as_str())
                    .collect::<Vec<_>>()
                    .join(",")
            )),
        },
    )?;
    Ok(Ok(r))
}

pub(super) async fn kenmu_at_hub(
    node: &Node,
    peer: &Peer,
    account_id: String,
    kenmu: Vec<Kenmu>,
) -> Reply {
    if peer.role != PeerRole::Hospital {
        return refused("兼務先は医療機関で登録してください。");
    }
    let (at, now, registry_at) = (
        peer.jurisdiction.clone(),
        node.clock.now_ms(),
        Institutions::of(node),
    );
    let held = node
        .store
        .write(move |c| {
            let tx = c.transaction()?;
            let r = set_kenmu_at_hub(&registry_at, &tx, &at, &account_id, kenmu, now)?;
            tx.commit()?;
            Ok::<_, Error>(r)
        })
        .await;
    match held {
        Ok(Ok(record)) => Reply::AccountRecord(Box::new(record)),
        Ok(Err(reason)) => refused(reason),
        Err(e) => {
            tracing::error!(target: "nsdb::sync", error = %e, "a 兼務 could not be stored");
            refused("the hub could not store the 兼務")
        }
    }
}

/// What one report did: records sent, passwords sent, records applied.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AccountsReport {
    pub sent: usize,
    pub passwords: usize,
    pub applied: usize,
}

/// Before each session: a municipality sends the records it changed; a node sends the
/// passwords set there; a hospital pulls and applies the records reaching it. A hub that
/// does not answer leaves everything pending for the next session. Errors: storage failures,
/// and records that could not be applied (named by account id).
pub async fn report_accounts(node: &Node) -> crate::Result<AccountsReport> {
    let mut report = AccountsReport::default();
    match node.role() {
        NodeRole::Hub => return Ok(report),
        NodeRole::Municipality => {
            let pending = node
                .store
                .read(|c| {
                    let mut st = c.prepare(
                        "SELECT record, version FROM account_records WHERE pending = 1 ORDER BY version",
                    )?;
                    let rows = st
                        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?
                        .collect::<rusqlite::Result<Vec<_>>>()?;
                    Ok::<_, Error>(rows)
                })
                .await?;
            for (json, version) in pending {
                let record = registry::parse(&json)?;
                let id = record.account_id.clone();
                let refusal = match node
                    .sync
                    .requests
                    .ask(&Ask::Account(Box::new(record)))
                    .await
                {
                    Some(Reply::AccountHeld { .. }) => None,
                    Some(Reply::Refused { reason }) => Some(reason),
                    _ => return Ok(report),
                };
                node.store
                    .write(move |c| {
                        // Only the version sent: a change made meanwhile stays pending.
                        c.execute(
                            "UPDATE account_records SET pending = 0, refused = ?3
                             WHERE account_id = ?1 AND version = ?2",
                            params![id, version, refusal],
                        )?;
                        Ok::<_, Error>(())
                    })
                    .await?;
                report.sent += 1;
            }
            return Ok(report);
        }
        NodeRole::Hospital => {}
    }
    let passwords = node
        .store
        .read(|c| {
            let mut st = c.prepare(
                "SELECT id, account_id, password_hash, password_set_at FROM users
                 WHERE password_pending = 1 AND account_id IS NOT NULL",
            )?;
            let rows = st
                .query_map([], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, Option<i64>>(3)?,
                    ))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok::<_, Error>(rows)
        })
        .await?;
    for (uid, account_id, hash, set_at) in passwords {
        let set_at = set_at.unwrap_or(0);
        match node
            .sync
            .requests
            .ask(&Ask::AccountPassword {
                account_id,
                hash,
                set_at,
            })
            .await
        {
            Some(Reply::AccountHeld { .. }) | Some(Reply::Refused { .. }) => {}
            _ => return Ok(report),
        }
        node.store
            .write(move |c| {
                c.execute(
                    "UPDATE users SET password_pending = 0 WHERE id = ?1 AND password_set_at = ?2",
                    params![uid, set_at],
                )?;
                Ok::<_, Error>(())
            })
            .await?;
        report.passwords += 1;
    }
    let mut since: i64 = node
        .store
        .read(|c| {
            Ok::<_, Error>(
                c.query_row(
                    "SELECT value FROM node_meta WHERE key = 'accounts_cursor'",
                    [],
                    |r| r.get::<_, String>(0),
                )
                .optional()?
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
            )
        })
        .await?;
    let mut failed = Vec::new();
    loop {
        let ask = Ask::Accounts {
            since,
            name: node.config.institution.name.clone(),
        };
        let (records, upto, more) = match node.sync.requests.ask(&ask).await {
            Some(Reply::Accounts {
                records,
                upto,
                more,
            }) => (records, upto, more),
            _ => return Ok(report),
        };
        let (here, now) = (node.config.institution.code.clone(), node.clock.now_ms());
        let (applied, errors) = node
            .store
            .write(move |c| {
                let tx = c.transaction()?;
                let (mut applied, mut errors) = (0, Vec::new());
                for r in &records {
                    match registry::apply(&tx, &here, r, now) {
                        Ok(_) => applied += 1,
                        Err(Error::Invalid(reason)) => errors.push(reason),
                        Err(e) => return Err(e),
                    }
                }
                tx.execute(
                    "INSERT INTO node_meta (key, value) VALUES ('accounts_cursor', ?1)
                     ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                    [upto.to_string()],
                )?;
                if !more {
                    tx.execute(
                        "INSERT INTO node_meta (key, value) VALUES ('accounts_synced_at', ?1)
                         ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                        [now.to_string()],
                    )?;
                }
                tx.commit()?;
                Ok::<_, Error>((applied, errors))
            })
            .await?;
        report.applied += applied;
        failed.extend(errors);
        since = upto;
        if !more {
            break;
        }
    }
    if !failed.is_empty() {
        return Err(Error::Invalid(failed.join("; ")));
    }
    Ok(report)
}

/// The hub's registry entry for `code` (医療機関番号), for the 兼務 screen's 検索: its name, or
/// `None` when no enrolled hospital or clinic has it. Errors: [`Error::Invalid`] when the code
/// is not a 医療機関コード, or the hub cannot be reached (said so).
pub async fn lookup_institution(node: &Node, code: &str) -> crate::Result<Option<String>> {
    let code = InstitutionCode::parse(code)
        .map_err(|e| Error::Invalid(e.to_string()))?
        .to_string();
    if node.role() == NodeRole::Hub {
        let at = Institutions::of(node);
        return node.store.read(move |c| Ok(at.name(c, &code)?)).await;
    }
    match node.sync.requests.ask(&Ask::Institution { code }).await {
        Some(Reply::Institution { name, .. }) => Ok(Some(name)),
        Some(Reply::NotFound) => Ok(None),
        _ => Err(Error::Invalid(UNREACHABLE.into())),
    }
}

/// Said when the hub is needed and does not answer.
pub const UNREACHABLE: &str = "ハブに接続できないため、兼務先を確認・登録できません。入力した内容はこの画面に残っています。接続が戻ってから、もう一度登録してください。";

/// 兼務の登録: replaces the signed-in doctor's 兼務 with `kenmu` (each entry's `name` is
/// filled by the hub's registry), at the node of their main institution, through the hub;
/// the record is applied here at once and reaches the other institutions' nodes at their next
/// sync, where the doctor can then sign in and reach their patients' sheets; a 兼務 removed
/// or hidden stops that at the other node's next sync. Audited `kenmu_set` with the
/// institutions' codes. Errors: [`Error::Invalid`] with the reason (more than [`MAX_KENMU`],
/// an unknown code, the main institution, an account made on this node, the hub unreachable).
pub async fn set_kenmu(
    node: &Node,
    p: &Principal,
    kenmu: Vec<Kenmu>,
) -> crate::Result<AccountRecord> {
    if kenmu.len() > MAX_KENMU {
        return Err(Error::Invalid(format!(
            "兼務先は最大{MAX_KENMU}件までです（{}件あります）。",
            kenmu.len()
        )));
    }
    for k in &kenmu {
        InstitutionCode::parse(&k.institution).map_err(|e| Error::Invalid(e.to_string()))?;
        let dept = k.department.as_deref().map_or(0, |d| d.chars().count());
        if dept > crate::accounts::MAX_DEPARTMENT_CHARS {
            return Err(Error::Invalid(format!(
                "担当する診療科は{}文字以内にしてください（{dept}文字あります）。",
                crate::accounts::MAX_DEPARTMENT_CHARS
            )));
        }
    }
    let uid = p.user_id as i64;
    let (account_id, home): (Option<String>, Option<String>) = node
        .store
        .read(move |c| {
            Ok::<_, Error>(c.query_row(
                "SELECT account_id, home_institution FROM users WHERE id = ?1",
                [uid],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?)
        })
        .await?;
    let Some(account_id) = account_id else {
        return Err(Error::Invalid(registry::NOT_REGISTRY.into()));
    };
    if home.as_deref() != Some(p.institution.as_str()) {
        return Err(Error::Invalid(
            "兼務先は主たる勤務先の医療機関のノードで登録してください。".into(),
        ));
    }
    let now = node.clock.now_ms();
    let codes = kenmu
        .iter()
        .map(|k| k.institution.clone())
        .collect::<Vec<_>>()
        .join(",");
    let record = if node.role() == NodeRole::Hub {
        let (at, id, registry_at) = (
            p.institution.clone(),
            account_id.clone(),
            Institutions::of(node),
        );
        node.store
            .write(move |c| {
                let tx = c.transaction()?;
                let r = set_kenmu_at_hub(&registry_at, &tx, &at, &id, kenmu, now)?;
                tx.commit()?;
                Ok::<_, Error>(r)
            })
            .await?
            .map_err(Error::Invalid)?
    } else {
        match node
            .sync
            .requests
            .ask(&Ask::Kenmu { account_id, kenmu })
            .await
        {
            Some(Reply::AccountRecord(r)) => *r,
            Some(Reply::Refused { reason }) => return Err(Error::Invalid(reason)),
            _ => return Err(Error::Invalid(UNREACHABLE.into())),
        }
    };
    let (here, applied, user) = (
        node.config.institution.code.clone(),
        record.clone(),
        p.user_id,
    );
    let here = if node.role() == NodeRole::Hub {
        record.institution.clone()
    } else {
        here
    };
    node.store
        .write(move |c| {
            let tx = c.transaction()?;
            registry::apply(&tx, &here, &applied, now)?;
            audit::record(
                &tx,
                now,
                user,
                "kenmu_set",
                Some(&applied.account_id),
                Some(&format!("kenmu={codes}")),
            )?;
            tx.commit()?;
            Ok::<_, Error>(())
        })
        .await?;
    Ok(record)
}
