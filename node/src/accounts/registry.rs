//! Designated doctors' accounts issued where the seed issues them (its ID/PW pages, No.7:
//! 「指定医のIDは、自治体により自治体区画のID発行機能にて払い出される。なお、医療機関責任者は、
//! 自動的に医療機関の1人目の指定医に割り当てられる。」), and valid where the doctor works (its
//! 兼務 page: 「兼務先は最大10件登録することができる。」).
//!
//! One record per account ([`AccountRecord`]) is the truth; it is managed by the municipality
//! that issued it (its 責任者 issues the ID and locks, resets, extends or deletes it), changed by
//! the doctor for what is theirs (the password, anywhere the account works; the 兼務, at the main
//! institution's node), and carried by the hub, which keeps the national registry
//! (`account_records`, ordered by its own counter) and sends each node the records that reach
//! its institution (`account_reach`: every institution a record ever reached, so a node also
//! learns that a 兼務 was removed). A node applies a record to its `users` table
//! ([`apply`]): the account signs in there while it reaches the node's institution, acting for
//! that institution (a 兼務 doctor at hospital B is a user of B on B's node, with
//! `home_institution` A), and no longer once it does not (`away`), is locked, expired or
//! deleted. The wire between node and hub is `crate::sync_service::accounts`.
//!
//! This module never logs a password, a hash or a name; audit entries carry ids only.

use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

use super::admin::InitialPassword;
use super::policy::{Action, Principal, Role, Target, UserKind, authorize};
use super::{check_new_user, hash_password};
use crate::config::{Institution, NodeRole};
use crate::institution::InstitutionCode;
use crate::{Error, Node, Result, audit};

/// The most 兼務 a doctor may register (the seed: 「兼務先は最大10件登録することができる」).
pub const MAX_KENMU: usize = 10;

/// The most digits of a 医籍登録番号: the seed prints it as 「第0000001号」 (7 digits); shorter
/// numbers are taken as written (the leading zeros are the print's).
pub const REGISTER_NUMBER_MAX_DIGITS: usize = 7;

/// One account as the registry holds it. `password_hash` is an Argon2id PHC string (never a
/// password); times are Unix ms; `expires_on` is `YYYY-MM-DD`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountRecord {
    /// The registry's id (32 hexadecimal characters, random).
    pub account_id: String,
    /// ユーザID: `{A|B|S}{自治体コード}-{4 digits}` (A 難病指定医, B 協力難病指定医 as the seed's
    /// examples A0000001/B0000001; S 小慢指定医), unique nationwide by the issuing code.
    pub login: String,
    pub name: String,
    /// [`UserKind::as_str`] of a doctor kind.
    pub kind: String,
    /// 医籍登録番号 (digits).
    pub register_number: String,
    /// 主たる勤務先: 医療機関コード and 医療機関名.
    pub institution: String,
    pub institution_name: String,
    /// 部署（部門/診療科） at the main institution.
    pub department: Option<String>,
    pub password_hash: String,
    pub password_set_at: i64,
    pub must_change_password: bool,
    pub locked: bool,
    pub expires_on: Option<String>,
    pub deleted_at: Option<i64>,
    /// The 自治体コード of the municipality that issued and manages the account.
    pub managed_by: String,
    /// The 兼務, at most [`MAX_KENMU`].
    #[serde(default)]
    pub kenmu: Vec<Kenmu>,
    /// When the record last changed at its source.
    pub changed_at: i64,
}

impl std::fmt::Debug for AccountRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccountRecord")
            .field("account_id", &self.account_id)
            .field("institution", &self.institution)
            .field("kenmu", &self.kenmu.len())
            .finish_non_exhaustive()
    }
}

/// One 兼務: the other institution (医療機関コード and its name as the hub's registry holds it),
/// the department there (担当する診療科) and whether it is shown (表示) or hidden (非表示). A hidden
/// 兼務 is kept but grants nothing until shown again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Kenmu {
    pub institution: String,
    pub name: String,
    pub department: Option<String>,
    pub visible: bool,
}

impl AccountRecord {
    /// The kind, when it is a doctor's.
    pub fn doctor_kind(&self) -> Option<UserKind> {
        UserKind::parse(&self.kind).filter(|k| k.role() == Role::Doctor)
    }

    /// Whether the account works at `institution` now: its main institution, or a 兼務 shown.
    pub fn reaches(&self, institution: &str) -> bool {
        self.institution == institution
            || self
                .kenmu
                .iter()
                .any(|k| k.visible && k.institution == institution)
    }
}

/// What a municipality's 責任者 types to issue a doctor's ID (the seed's 新規登録 of a
/// 医療機関ユーザ: 種別, 医籍登録番号, 主たる勤務先の医療機関 (番号, 名), 部署, 氏名).
#[derive(Debug, Clone, Default)]
pub struct NewDoctor {
    pub kind: String,
    pub register_number: String,
    pub name: String,
    pub institution: String,
    pub institution_name: String,
    pub department: String,
    /// 有効期限 as typed (`YYYY-MM-DD`, `YYYY/MM/DD`; empty = none).
    pub expires_on: String,
}

/// A refusal of what was typed, naming the field (`kind`, `register_number`, `name`,
/// `institution`, `institution_name`, `department`, `expires_on`) and why, in Japanese.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: &'static str,
    pub message: String,
}

impl From<FieldError> for Error {
    fn from(e: FieldError) -> Error {
        Error::Invalid(e.message)
    }
}

fn field(field: &'static str, message: impl Into<String>) -> FieldError {
    FieldError {
        field,
        message: message.into(),
    }
}

/// Checks a 医籍登録番号: digits only (full-width folded), 1 to [`REGISTER_NUMBER_MAX_DIGITS`],
/// leading zeros dropped as the print adds them. Returns the number as stored.
pub fn check_register_number(typed: &str) -> std::result::Result<String, FieldError> {
    use unicode_normalization::UnicodeNormalization;
    let n: String = typed.trim().nfkc().collect();
    let n = n.trim_start_matches('第').trim_end_matches('号');
    if n.is_empty() {
        return Err(field("register_number", "医籍登録番号を入力してください。"));
    }
    if !n.chars().all(|c| c.is_ascii_digit()) || n.len() > REGISTER_NUMBER_MAX_DIGITS {
        return Err(field(
            "register_number",
            format!(
                "医籍登録番号は{REGISTER_NUMBER_MAX_DIGITS}桁までの数字で入力してください（「{}」）。",
                typed.trim()
            ),
        ));
    }
    let digits = n.trim_start_matches('0');
    Ok(if digits.is_empty() { "0" } else { digits }.to_string())
}

/// The prefix letter of a doctor kind's ユーザID.
fn login_letter(kind: UserKind) -> &'static str {
    match kind {
        UserKind::KyoryokuDoctor => "B",
        UserKind::ShomanDoctor => "S",
        _ => "A",
    }
}

/// Whether `login` has the shape of an ID the registry issues (`A131016-0001`): such IDs are
/// not given to accounts made on one node, so that no replicated account meets a local one
/// of the same ID.
pub fn is_registry_login(login: &str) -> bool {
    let Some((head, serial)) = login.split_once('-') else {
        return false;
    };
    let mut chars = head.chars();
    matches!(chars.next(), Some('A' | 'B' | 'S'))
        && chars.as_str().len() == 6
        && chars.as_str().chars().all(|c| c.is_ascii_digit())
        && serial.len() >= 4
        && serial.chars().all(|c| c.is_ascii_digit())
}

/// A doctor issued or managed at this municipality, as its list shows it.
#[derive(Debug, Clone)]
pub struct IssuedDoctor {
    pub record: AccountRecord,
    /// Waiting to reach the hub (送信待ち).
    pub pending: bool,
    /// The hub's reason when it would not take the record.
    pub refused: Option<String>,
}

/// What the municipality's 責任者 does to an account it manages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DoctorAct {
    Lock,
    Unlock,
    ResetPassword,
    Delete,
    /// 有効期限 (`None`: none).
    Expiry(Option<String>),
}

impl DoctorAct {
    fn audit_action(&self) -> &'static str {
        match self {
            DoctorAct::Lock => "doctor_lock",
            DoctorAct::Unlock => "doctor_unlock",
            DoctorAct::ResetPassword => "doctor_password_reset",
            DoctorAct::Delete => "doctor_delete",
            DoctorAct::Expiry(_) => "doctor_expiry",
        }
    }
}

fn random_id() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

/// The next version of this node's `account_records` (its own counter).
pub(crate) fn next_version(c: &Connection) -> rusqlite::Result<i64> {
    c.query_row(
        "SELECT coalesce(max(version), 0) + 1 FROM account_records",
        [],
        |r| r.get(0),
    )
}

/// The record `account_id` this node holds, with its version.
pub(crate) fn load(c: &Connection, account_id: &str) -> Result<Option<(AccountRecord, i64)>> {
    let row = c
        .query_row(
            "SELECT record, version FROM account_records WHERE account_id = ?1",
            [account_id],
            |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)),
        )
        .optional()?;
    row.map(|(json, v)| Ok((parse(&json)?, v))).transpose()
}

/// The record `account_id` this node holds (a municipality's own, the hub's registry entry).
pub fn load_record(c: &Connection, account_id: &str) -> Result<Option<AccountRecord>> {
    Ok(load(c, account_id)?.map(|(r, _)| r))
}

pub(crate) fn parse(json: &str) -> Result<AccountRecord> {
    serde_json::from_str(json)
        .map_err(|e| Error::Invalid(format!("an account record could not be read: {e}")))
}

/// Stores `record` at `version` (replacing the one held), `pending` as given.
pub(crate) fn store(
    c: &Connection,
    record: &AccountRecord,
    version: i64,
    pending: bool,
) -> Result<()> {
    let json = serde_json::to_string(record)
        .map_err(|e| Error::Invalid(format!("an account record could not be written: {e}")))?;
    c.execute(
        "INSERT INTO account_records (account_id, version, record, pending, refused)
         VALUES (?1, ?2, ?3, ?4, NULL)
         ON CONFLICT(account_id) DO UPDATE SET version = excluded.version,
             record = excluded.record, pending = excluded.pending, refused = NULL",
        params![record.account_id, version, json, pending],
    )?;
    Ok(())
}

/// Applies `record` to this node's `users`, for a node whose institution is `here`: the
/// account's row is made or updated (found by `account_id`), acting for `here` with
/// `home_institution` the record's main institution; `away` when the record does not reach
/// `here` now. A password set on this node that has not reached the hub yet
/// (`password_pending`) and is newer than the record's stays. The first doctor of an
/// institution whose home it is becomes its 責任者 when nobody holds the role. An account
/// that can no longer sign in here (away, locked, expired is checked at sign-in, deleted)
/// loses its sessions at once. Returns the user id. Errors: [`Error::Invalid`] when a local
/// account already uses the login (the record is left out; the sync status says so).
pub fn apply(c: &Connection, here: &str, record: &AccountRecord, now: i64) -> Result<u64> {
    let kind = record
        .doctor_kind()
        .ok_or_else(|| Error::Invalid(format!("an account record of kind {:?}", record.kind)))?;
    let away = !record.reaches(here);
    let department = if record.institution == here {
        record.department.clone()
    } else {
        record
            .kenmu
            .iter()
            .find(|k| k.institution == here)
            .and_then(|k| k.department.clone())
    };
    let existing: Option<(i64, Option<i64>, i64)> = c
        .query_row(
            "SELECT id, password_set_at, password_pending FROM users WHERE account_id = ?1",
            [&record.account_id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    let id = match existing {
        None => {
            let clash: Option<i64> = c
                .query_row(
                    "SELECT id FROM users WHERE login = ?1",
                    [&record.login],
                    |r| r.get(0),
                )
                .optional()?;
            if clash.is_some() {
                return Err(Error::Invalid(format!(
                    "the account {} has the ID of an account made on this node; it was not added",
                    record.account_id
                )));
            }
            super::ensure_institution(
                c,
                &record.institution,
                &record.institution_name,
                "hospital",
            )?;
            c.execute(
                "INSERT INTO users (login, name, kind, institution, department, password_hash,
                                    created_at, account_id, home_institution, managed_by,
                                    password_set_at, register_number)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                params![
                    record.login,
                    record.name,
                    kind.as_str(),
                    here,
                    department,
                    record.password_hash,
                    now,
                    record.account_id,
                    record.institution,
                    record.managed_by,
                    record.password_set_at,
                    record.register_number,
                ],
            )?;
            c.last_insert_rowid()
        }
        Some((id, set_at, pending)) => {
            let keep_local = pending != 0 && set_at.unwrap_or(0) > record.password_set_at;
            if !keep_local {
                c.execute(
                    "UPDATE users SET password_hash = ?2, password_set_at = ?3,
                         must_change_password = ?4, password_pending = 0 WHERE id = ?1",
                    params![
                        id,
                        record.password_hash,
                        record.password_set_at,
                        record.must_change_password
                    ],
                )?;
                if set_at.is_some_and(|s| s < record.password_set_at) {
                    // A password set elsewhere ends the sessions here, as a change here does.
                    c.execute("DELETE FROM sessions WHERE user_id = ?1", [id])?;
                }
            }
            id
        }
    };
    c.execute(
        "UPDATE users SET login = ?2, name = ?3, kind = ?4, department = ?5, locked = ?6,
             expires_on = ?7, deleted_at = ?8, away = ?9, home_institution = ?10,
             managed_by = ?11, register_number = ?12
         WHERE id = ?1",
        params![
            id,
            record.login,
            record.name,
            kind.as_str(),
            department,
            record.locked,
            record.expires_on,
            record.deleted_at,
            away,
            record.institution,
            record.managed_by,
            record.register_number,
        ],
    )?;
    if existing.is_none() && record.must_change_password {
        c.execute(
            "UPDATE users SET must_change_password = 1 WHERE id = ?1",
            [id],
        )?;
    }
    c.execute("DELETE FROM user_kenmu WHERE user_id = ?1", [id])?;
    for k in &record.kenmu {
        c.execute(
            "INSERT INTO user_kenmu (user_id, institution, name, department, visible)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![id, k.institution, k.name, k.department, k.visible],
        )?;
    }
    if away || record.locked || record.deleted_at.is_some() {
        c.execute("DELETE FROM sessions WHERE user_id = ?1", [id])?;
        c.execute("DELETE FROM sign_in_challenges WHERE user_id = ?1", [id])?;
    }
    // 「医療機関責任者は、自動的に医療機関の1人目の指定医に割り当てられる」: at the doctor's main
    // institution, when nobody holds the role.
    if !away && record.deleted_at.is_none() && record.institution == here {
        c.execute(
            "UPDATE users SET responsible = 1 WHERE id = ?1
               AND NOT EXISTS (SELECT 1 FROM users WHERE institution = ?2 AND responsible = 1)",
            params![id, here],
        )?;
    }
    let target = id.to_string();
    let detail = format!(
        "account={} away={}",
        record.account_id,
        if away { "yes" } else { "no" }
    );
    audit::append(
        c,
        audit::Entry {
            at_ms: now,
            user: None,
            action: "account_applied",
            target: Some(&target),
            detail: Some(&detail),
        },
    )?;
    Ok(id as u64)
}

/// A node's copy of the registry: when it last heard from the hub (`None`: never).
pub fn synced_at(c: &Connection) -> rusqlite::Result<Option<i64>> {
    c.query_row(
        "SELECT value FROM node_meta WHERE key = 'accounts_synced_at'",
        [],
        |r| r.get::<_, String>(0),
    )
    .optional()
    .map(|v| v.and_then(|v| v.parse().ok()))
}

impl Node {
    fn issuing(&self, p: &Principal) -> Result<()> {
        authorize(p, Action::ManageUsers, Target::None)?;
        if self.role() != NodeRole::Municipality {
            return Err(Error::Denied(super::policy::Denied));
        }
        Ok(())
    }

    /// 指定医のID発行 (the seed's 自治体区画のID発行機能): the municipality's 責任者 issues a
    /// designated doctor's ID for `d.institution`, with a one-time initial password the doctor
    /// must change at first sign-in (returned once, for the IDパスワード通知書). The record goes
    /// to the hub at the next sync (pending until it is held there) and from there to the
    /// doctor's institution. Audited `doctor_issue` (the account id). Errors:
    /// [`Error::Denied`] for anyone but a municipality's 責任者; [`FieldError`] for what was
    /// typed, naming the field.
    pub async fn issue_doctor(
        &self,
        p: &Principal,
        d: &NewDoctor,
    ) -> std::result::Result<InitialPassword, IssueError> {
        self.issuing(p)?;
        let kind = UserKind::parse(&d.kind)
            .filter(|k| k.role() == Role::Doctor)
            .ok_or_else(|| field("kind", "指定医の種別を選んでください。"))?;
        let register_number = check_register_number(&d.register_number)?;
        let code = InstitutionCode::parse(&d.institution)
            .map_err(|e| field("institution", e.to_string()))?
            .to_string();
        let institution_name = d.institution_name.trim().to_string();
        if institution_name.is_empty() || institution_name.chars().any(char::is_control) {
            return Err(field("institution_name", "医療機関名を入力してください。").into());
        }
        let department = d.department.trim().to_string();
        if department.is_empty() {
            return Err(field("department", "部署（部門/診療科）を入力してください。").into());
        }
        // The same checks as any account of a clinic's doctor (氏名, 部署).
        check_new_user(
            NodeRole::Hub,
            "",
            "registry",
            &d.name,
            kind,
            Some(&code),
            Some(&department),
        )
        .map_err(|e| field(e.field(), e.to_string()))?;
        let expires_on = Node::typed_expiry(&d.expires_on)
            .map_err(|e| field("expires_on", e.to_string()))?
            .map(|d| d.to_string());
        let (managed_by, now) = (self.config.institution.code.clone(), self.clock.now_ms());
        let letter = login_letter(kind);
        // The ID comes from the serial of this municipality's records: unique nationwide.
        let serial: i64 = self
            .store
            .read(|c| {
                c.query_row("SELECT count(*) + 1 FROM account_records", [], |r| r.get(0))
                    .map_err(Error::from)
            })
            .await?;
        let login = format!("{letter}{managed_by}-{serial:04}");
        let password = super::admin::initial_password(&login);
        let hash = hash_password(&password)?;
        let record = AccountRecord {
            account_id: random_id(),
            login: login.clone(),
            name: d.name.trim().to_string(),
            kind: kind.as_str().to_string(),
            register_number,
            institution: code.clone(),
            institution_name: institution_name.clone(),
            department: Some(department),
            password_hash: hash,
            password_set_at: now,
            must_change_password: true,
            locked: false,
            expires_on,
            deleted_at: None,
            managed_by,
            kenmu: Vec::new(),
            changed_at: now,
        };
        let uid = p.user_id;
        let stored = record.clone();
        self.store
            .write(move |c| {
                let tx = c.transaction()?;
                let version = next_version(&tx)?;
                store(&tx, &stored, version, true)?;
                audit::record(
                    &tx,
                    now,
                    uid,
                    "doctor_issue",
                    Some(&stored.account_id),
                    Some(stored.kind.as_str()),
                )?;
                tx.commit()?;
                Ok::<_, Error>(())
            })
            .await?;
        self.sync.sync_now();
        Ok(InitialPassword {
            user_id: 0,
            login,
            name: record.name,
            kind,
            institution: Institution {
                code,
                name: institution_name,
            },
            password,
        })
    }

    /// The doctors this municipality issued, newest first, for its 責任者.
    pub async fn issued_doctors(&self, p: &Principal) -> Result<Vec<IssuedDoctor>> {
        self.issuing(p)?;
        let uid = p.user_id;
        let now = self.clock.now_ms();
        self.store
            .write(move |c| {
                let tx = c.transaction()?;
                let rows = {
                    let mut st = tx.prepare(
                        "SELECT record, pending, refused FROM account_records ORDER BY version DESC",
                    )?;
                    st.query_map([], |r| {
                        Ok((r.get::<_, String>(0)?, r.get::<_, bool>(1)?, r.get(2)?))
                    })?
                    .collect::<rusqlite::Result<Vec<(String, bool, Option<String>)>>>()?
                };
                let list = rows
                    .into_iter()
                    .map(|(json, pending, refused)| {
                        Ok(IssuedDoctor {
                            record: parse(&json)?,
                            pending,
                            refused,
                        })
                    })
                    .collect::<Result<Vec<_>>>()?;
                let shown = list
                    .iter()
                    .map(|d| d.record.account_id.as_str())
                    .collect::<Vec<_>>()
                    .join(",");
                let detail = format!("rows={} shown={shown}", list.len());
                audit::record(&tx, now, uid, "doctor_list", None, Some(&detail))?;
                tx.commit()?;
                Ok(list)
            })
            .await
    }

    /// ロック, ロック解除, パスワード初期化, 削除 or 有効期限 of a doctor's account this
    /// municipality manages: the record changes here at once and on every node at its next
    /// sync. A reset returns the new one-time password (for the IDパスワード通知書). Audited
    /// (`doctor_lock`, …; the account id). Errors: [`Error::Denied`]; [`Error::Invalid`] for an
    /// account this municipality does not manage or one deleted.
    pub async fn manage_doctor(
        &self,
        p: &Principal,
        account_id: &str,
        act: DoctorAct,
    ) -> Result<Option<InitialPassword>> {
        self.issuing(p)?;
        let (uid, now, id) = (p.user_id, self.clock.now_ms(), account_id.to_string());
        let reset = if act == DoctorAct::ResetPassword {
            let login = self
                .store
                .read({
                    let id = id.clone();
                    move |c| load(c, &id)
                })
                .await?
                .map(|(r, _)| r.login)
                .unwrap_or_default();
            let password = super::admin::initial_password(&login);
            let hash = hash_password(&password)?;
            Some((password, hash))
        } else {
            None
        };
        let hash = reset.as_ref().map(|(_, h)| h.clone());
        let action = act.audit_action();
        let record = self
            .store
            .write(move |c| {
                let tx = c.transaction()?;
                let Some((mut r, _)) = load(&tx, &id)?.filter(|(r, _)| r.deleted_at.is_none())
                else {
                    audit::record(&tx, now, uid, "doctor_admin_denied", Some(&id), Some(action))?;
                    tx.commit()?;
                    return Err(Error::Invalid(
                        "その指定医のアカウントは見つかりません（削除済みか、この自治体が発行したものではありません）。"
                            .into(),
                    ));
                };
                match &act {
                    DoctorAct::Lock => r.locked = true,
                    DoctorAct::Unlock => r.locked = false,
                    DoctorAct::Delete => r.deleted_at = Some(now),
                    DoctorAct::Expiry(on) => r.expires_on = on.clone(),
                    DoctorAct::ResetPassword => {
                        r.password_hash = hash.clone().unwrap_or_default();
                        r.password_set_at = now;
                        r.must_change_password = true;
                    }
                }
                r.changed_at = now;
                let version = next_version(&tx)?;
                store(&tx, &r, version, true)?;
                audit::record(&tx, now, uid, action, Some(&r.account_id), None)?;
                tx.commit()?;
                Ok(r)
            })
            .await?;
        self.sync.sync_now();
        Ok(reset.map(|(password, _)| InitialPassword {
            user_id: 0,
            login: record.login.clone(),
            name: record.name.clone(),
            kind: record.doctor_kind().unwrap_or(UserKind::NanbyoDoctor),
            institution: Institution {
                code: record.institution.clone(),
                name: record.institution_name.clone(),
            },
            password,
        }))
    }

    /// The 兼務 of the signed-in doctor `p` (whose account the registry holds), and when this
    /// node last heard from the hub. Errors: [`Error::Invalid`] for an account made on this
    /// node (its 兼務 cannot be registered: it reaches no other node).
    pub async fn own_kenmu(&self, p: &Principal) -> Result<(Vec<Kenmu>, Option<i64>)> {
        let uid = p.user_id as i64;
        self.store
            .read(move |c| {
                let account: Option<String> = c
                    .query_row("SELECT account_id FROM users WHERE id = ?1", [uid], |r| {
                        r.get(0)
                    })
                    .optional()?
                    .flatten();
                if account.is_none() {
                    return Err(Error::Invalid(NOT_REGISTRY.into()));
                }
                let mut st = c.prepare(
                    "SELECT institution, name, department, visible FROM user_kenmu
                     WHERE user_id = ?1 ORDER BY rowid",
                )?;
                let list = st
                    .query_map([uid], |r| {
                        Ok(Kenmu {
                            institution: r.get(0)?,
                            name: r.get(1)?,
                            department: r.get(2)?,
                            visible: r.get(3)?,
                        })
                    })?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                Ok((list, synced_at(c)?))
            })
            .await
    }
}

/// A doctor's own account as 自アカウント管理 shows it.
#[derive(Debug, Clone, Default)]
pub struct Home {
    pub register_number: String,
    /// 主たる勤務先: 医療機関コード and 医療機関名.
    pub institution: String,
    pub institution_name: String,
    pub department: String,
}

impl Node {
    /// The signed-in user's 医籍登録番号, 主たる勤務先 and 部署 there (from the registry's
    /// record as last applied here).
    pub async fn user_home(&self, p: &Principal) -> Result<Home> {
        let uid = p.user_id as i64;
        self.store
            .read(move |c| {
                Ok(c.query_row(
                    "SELECT coalesce(u.register_number, ''), coalesce(u.home_institution, u.institution),
                            coalesce(i.name, u.home_institution, u.institution),
                            coalesce(CASE WHEN u.home_institution = u.institution THEN u.department END, '')
                     FROM users u LEFT JOIN institutions i ON i.code = coalesce(u.home_institution, u.institution)
                     WHERE u.id = ?1",
                    [uid],
                    |r| {
                        Ok(Home {
                            register_number: r.get(0)?,
                            institution: r.get(1)?,
                            institution_name: r.get(2)?,
                            department: r.get(3)?,
                        })
                    },
                )?)
            })
            .await
    }
}

impl Node {
    /// How many accounts of the registry this node holds, and when it last heard from the hub
    /// about them (`None`: never).
    pub async fn accounts_synced_at(&self) -> Result<(i64, Option<i64>)> {
        self.store
            .read(|c| {
                let n: i64 = c.query_row(
                    "SELECT count(*) FROM users WHERE account_id IS NOT NULL",
                    [],
                    |r| r.get(0),
                )?;
                Ok((n, synced_at(c)?))
            })
            .await
    }
}

/// Why an account made on one node has no 兼務.
pub const NOT_REGISTRY: &str = "兼務先を登録できるのは、自治体が発行した指定医のアカウントだけです（このアカウントはこの医療機関で作られたものです）。";

/// Why issuing a doctor's ID was refused: a field typed (shown beside it) or anything else.
#[derive(Debug)]
pub enum IssueError {
    Field(FieldError),
    Other(Error),
}

impl From<FieldError> for IssueError {
    fn from(e: FieldError) -> IssueError {
        IssueError::Field(e)
    }
}

impl From<Error> for IssueError {
    fn from(e: Error) -> IssueError {
        IssueError::Other(e)
    }
}

impl From<crate::accounts::policy::Denied> for IssueError {
    fn from(e: crate::accounts::policy::Denied) -> IssueError {
        IssueError::Other(e.into())
    }
}

impl From<IssueError> for Error {
    fn from(e: IssueError) -> Error {
        match e {
            IssueError::Field(f) => f.into(),
            IssueError::Other(e) => e,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_ids_have_their_own_shape() {
        assert!(is_registry_login("A131016-0001"));
        assert!(is_registry_login("S011002-12345"));
        assert!(!is_registry_login("A0000001"));
        assert!(!is_registry_login("doctor"));
        assert!(!is_registry_login("C131016-0001"));
    }

    #[test]
    fn a_local_account_cannot_take_an_id_of_the_registrys_shape() {
        let refused = check_new_user(
            NodeRole::Hospital,
            "1399000010",
            "A139999-0001",
            "事務 花子",
            UserKind::Clerk,
            None,
            None,
        )
        .unwrap_err();
        assert_eq!(refused.field(), "login");
        assert!(refused.to_string().contains("A139999-0001"));
    }

    #[test]
    fn a_register_number_is_digits_as_the_seed_prints_it() {
        assert_eq!(check_register_number("第0000001号").unwrap(), "1");
        assert_eq!(check_register_number("１２３４５６").unwrap(), "123456");
        assert_eq!(check_register_number(" 345678 ").unwrap(), "345678");
        assert_eq!(
            check_register_number("").unwrap_err().field,
            "register_number"
        );
        assert!(check_register_number("12345678").is_err());
        assert!(check_register_number("12a").is_err());
    }
}
