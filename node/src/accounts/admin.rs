//! User administration by the institution's 責任者 (医療機関ユーザ検索, the seed's ID/PW pages):
//! the search with its filters and paging, and the actions on one account — パスワード初期化,
//! アカウントロック and ロック解除, 削除 (deactivation that keeps the history), 責任者変更,
//! 有効期限 and the IDパスワード通知書's one-time password.
//!
//! Every function authorises `ManageUsers` itself, reaches only the users of the acting
//! 責任者's institution, refuses acts on one's own account where they make no sense, and writes
//! its audit entry in the same transaction as the change. An initial password exists only in
//! the value returned to the caller (for the screen or the notice); it must never be stored
//! in clear, logged or put in an audit entry, and names typed into the search never reach the
//! log or the audit.

use rusqlite::{Connection, OptionalExtension, params};

use super::{UserRow, hash_password, password_rule};
use crate::accounts::policy::{Action, Principal, Role, Target, UserKind, authorize};
use crate::audit;
use crate::{Error, Node, Result};

/// Rows per page of the user search (10, as the seed's 表示件数/頁).
pub const USERS_PER_PAGE: usize = 10;

/// Characters of a one-time initial password (12 from 55 letters and digits without the
/// look-alikes 0 O o 1 l I: about 69 bits).
pub const INITIAL_PASSWORD_CHARS: usize = 12;

const INITIAL_ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnpqrstuvwxyz23456789";

/// The filters of 医療機関ユーザ検索. Empty fields do not filter.
#[derive(Debug, Clone, Default)]
pub struct UserSearch {
    /// ユーザ種別.
    pub kind: Option<UserKind>,
    /// 医療機関 (its code): the 責任者's own; any other is refused.
    pub institution: Option<String>,
    /// 姓: the start of the family name (the part of 氏名 before the first space).
    pub family_name: String,
    /// 名: the start of the given name (the part after the first space).
    pub given_name: String,
    /// The page, from 1; a page past the last shows the last.
    pub page: usize,
}

/// One page of the search's results.
#[derive(Debug, Clone)]
pub struct UserPage {
    pub rows: Vec<UserRow>,
    /// Users found in all pages.
    pub total: usize,
    /// This page (from 1) and the number of pages (at least 1).
    pub page: usize,
    pub pages: usize,
}

/// A one-time initial password just set for a user (パスワード初期化, IDパスワード通知書): shown
/// once or printed once, then gone; the user must change it at their first sign-in. Its
/// `Debug` never shows the password.
#[derive(Clone)]
pub struct InitialPassword {
    pub user_id: u64,
    pub login: String,
    pub name: String,
    /// ユーザ種別, as the IDパスワード通知書 prints it.
    pub kind: UserKind,
    /// The user's institution: its name and code.
    pub institution: crate::config::Institution,
    pub password: String,
}

impl std::fmt::Debug for InitialPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InitialPassword")
            .field("user_id", &self.user_id)
            .field("login", &self.login)
            .field("password", &"..")
            .finish()
    }
}

/// What a 責任者変更 did: who holds the 責任者 role now, and who held it before (none when
/// nobody did).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandOver {
    pub to_login: String,
    pub from_user: Option<u64>,
    pub from_login: Option<String>,
}

/// A check-tool key just made by 暗号鍵再発行, for its one download. `Debug` never shows it.
#[derive(Clone)]
pub struct IssuedKey {
    pub login: String,
    /// The key file's text (64 hexadecimal characters), as `nsdb user key --out` writes it.
    pub key_file: String,
}

impl std::fmt::Debug for IssuedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedKey")
            .field("login", &self.login)
            .field("key_file", &"..")
            .finish()
    }
}

/// Splits 氏名 into 姓 and 名 at the first blank (half- or full-width); no blank: all 姓.
fn family_and_given(name: &str) -> (&str, &str) {
    match name.find([' ', '\u{3000}']) {
        Some(i) => {
            let sep = name[i..].chars().next().map_or(1, char::len_utf8);
            (&name[..i], name[i + sep..].trim())
        }
        None => (name, ""),
    }
}

fn fold(s: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    s.trim().nfkc().collect::<String>().to_lowercase()
}

/// Whether 氏名 `name` matches the 姓 and 名 typed (each a prefix, width and case folded).
pub fn name_matches(name: &str, family: &str, given: &str) -> bool {
    let (f, g) = family_and_given(name);
    fold(f).starts_with(&fold(family)) && fold(g).starts_with(&fold(given))
}

/// A new one-time password: [`INITIAL_PASSWORD_CHARS`] random characters that meet the
/// password rule for `login`.
pub(crate) fn initial_password(login: &str) -> String {
    loop {
        let p: String = (0..INITIAL_PASSWORD_CHARS)
            .map(|_| {
                let i = rand::random::<u32>() as usize % INITIAL_ALPHABET.len();
                INITIAL_ALPHABET[i] as char
            })
            .collect();
        if password_rule::check(login, &p).is_ok() {
            return p;
        }
    }
}

/// The account an action is about, read inside the action's transaction.
struct Managed {
    id: u64,
    login: String,
    name: String,
    kind: UserKind,
    responsible: bool,
}

/// What an administration act is, for its audit entry and its refusals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Act {
    ResetPassword,
    Notice,
    Lock,
    Unlock,
    Delete,
    PassResponsible,
    Expiry,
    ReissueKey,
}

impl Act {
    fn audit_action(self) -> &'static str {
        match self {
            Act::ResetPassword => "user_password_reset",
            Act::Notice => "user_notice",
            Act::Lock => "user_lock",
            Act::Unlock => "user_unlock",
            Act::Delete => "user_delete",
            Act::PassResponsible => "user_responsible",
            Act::Expiry => "user_expiry",
            Act::ReissueKey => "user_key_reissue",
        }
    }

    /// Why this act is refused on one's own account, when it is.
    fn refused_on_self(self) -> Option<&'static str> {
        match self {
            Act::ResetPassword | Act::Notice => Some(
                "ご自身のパスワードは初期化できません。画面上部の「パスワード変更」で変更してください。",
            ),
            Act::Lock | Act::Unlock => Some("ご自身のアカウントはロック・ロック解除できません。"),
            Act::Delete => Some("ご自身のアカウントは削除できません。"),
            Act::PassResponsible => Some("ご自身は既に責任者です。"),
            Act::Expiry => Some("ご自身の有効期限は変更できません。別の責任者に依頼してください。"),
            Act::ReissueKey => {
                Some("ご自身の暗号鍵は再発行できません。別の責任者に依頼してください。")
            }
        }
    }
}

/// The user `uid` of `p`'s institution, not deleted; any other (another institution's, a
/// deleted one, one that does not exist) is refused alike, audited `user_admin_denied`.
fn managed(tx: &Connection, p: &Principal, uid: u64, act: Act, now: i64) -> Result<Managed> {
    let found = tx
        .query_row(
            "SELECT id, login, name, kind, responsible, managed_by FROM users
             WHERE id = ?1 AND institution = ?2 AND deleted_at IS NULL AND away = 0",
            params![uid as i64, p.institution],
            |r| {
                Ok((
                    r.get::<_, i64>(0)? as u64,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, i64>(4)? != 0,
                    r.get::<_, Option<String>>(5)?,
                ))
            },
        )
        .optional()?;
    // A doctor's account issued by a municipality is locked, reset, extended and deleted
    // there (`registry`), so that the change reaches every node the doctor works at.
    if let Some((.., Some(by))) = &found
        && matches!(
            act,
            Act::ResetPassword | Act::Notice | Act::Lock | Act::Unlock | Act::Delete | Act::Expiry
        )
    {
        let (target, detail) = (
            uid.to_string(),
            format!("{} managed_by={by}", act.audit_action()),
        );
        audit::append(
            tx,
            audit::Entry {
                at_ms: now,
                user: Some(p.user_id),
                action: "user_admin_denied",
                target: Some(&target),
                detail: Some(&detail),
            },
        )?;
        return Err(Error::Invalid(format!(
            "この指定医のアカウントは自治体（{by}）が発行・管理しています。パスワード初期化・ロック・削除・有効期限の変更は、その自治体に依頼してください。"
        )));
    }
    let found = found.and_then(|(id, login, name, kind, responsible, _)| {
        Some(Managed {
            id,
            login,
            name,
            kind: UserKind::parse(&kind)?,
            responsible,
        })
    });
    match found {
        Some(m) => Ok(m),
        None => {
            let target = uid.to_string();
            audit::append(
                tx,
                audit::Entry {
                    at_ms: now,
                    user: Some(p.user_id),
                    action: "user_admin_denied",
                    target: Some(&target),
                    detail: Some(act.audit_action()),
                },
            )?;
            Err(Error::Invalid(
                "その利用者は見つかりません（削除済みか、他の医療機関の利用者です）。".into(),
            ))
        }
    }
}

fn record(
    tx: &Connection,
    p: &Principal,
    act: Act,
    uid: u64,
    detail: Option<&str>,
    now: i64,
) -> Result<()> {
    let target = uid.to_string();
    audit::append(
        tx,
        audit::Entry {
            at_ms: now,
            user: Some(p.user_id),
            action: act.audit_action(),
            target: Some(&target),
            detail,
        },
    )?;
    Ok(())
}

impl Node {
    /// 医療機関ユーザ検索: the users of `p`'s institution that match `q`, not deleted, ordered
    /// by kind and ID, [`USERS_PER_PAGE`] a page. Audited `user_search` with the filters used
    /// (kind, whether a 姓 or 名 was typed, never the name) and the ids of the users shown.
    /// Errors: [`Error::Denied`] for anyone but a 責任者, and for another institution.
    pub async fn search_users(&self, p: &Principal, q: &UserSearch) -> Result<UserPage> {
        authorize(p, Action::ManageUsers, Target::None)?;
        if q.institution
            .as_deref()
            .is_some_and(|i| !i.is_empty() && i != p.institution)
        {
            return Err(crate::accounts::policy::Denied.into());
        }
        let all = self.users_of(p).await?;
        let matching: Vec<UserRow> = all
            .into_iter()
            .filter(|u| q.kind.is_none_or(|k| u.kind == k))
            .filter(|u| name_matches(&u.name, &q.family_name, &q.given_name))
            .collect();
        let total = matching.len();
        let pages = total.div_ceil(USERS_PER_PAGE).max(1);
        let page = q.page.clamp(1, pages);
        let rows: Vec<UserRow> = matching
            .into_iter()
            .skip((page - 1) * USERS_PER_PAGE)
            .take(USERS_PER_PAGE)
            .collect();
        let shown: Vec<String> = rows.iter().map(|u| u.id.to_string()).collect();
        let detail = format!(
            "kind={} family={} given={} page={page}/{pages} total={total} shown={}",
            q.kind.map_or("-", UserKind::as_str),
            if q.family_name.trim().is_empty() {
                "no"
            } else {
                "yes"
            },
            if q.given_name.trim().is_empty() {
                "no"
            } else {
                "yes"
            },
            shown.join(",")
        );
        let (uid, now) = (p.user_id, self.clock.now_ms());
        self.store
            .write(move |c| {
                audit::append(
                    c,
                    audit::Entry {
                        at_ms: now,
                        user: Some(uid),
                        action: "user_search",
                        target: None,
                        detail: Some(&detail),
                    },
                )?;
                Ok::<_, Error>(())
            })
            .await?;
        Ok(UserPage {
            rows,
            total,
            page,
            pages,
        })
    }

    /// Every user of `p`'s institution that is not deleted, ordered by kind and ID. No audit
    /// entry (the callers write theirs).
    pub(crate) async fn users_of(&self, p: &Principal) -> Result<Vec<UserRow>> {
        let inst = p.institution.clone();
        let today = self.clock.today_jst().to_string();
        let now = self.clock.now_ms();
        self.store
            .read(move |c| {
                let mut st = c.prepare(
                    "SELECT u.id, u.login, u.name, u.kind, u.institution, u.responsible,
                            u.home_institution, u.department, u.locked, u.expires_on,
                            coalesce(u.locked_until > ?2, 0) AS cooling_down,
                            u.totp_secret IS NOT NULL AS totp,
                            coalesce(i.name, u.institution) AS institution_name,
                            k.user_id IS NOT NULL AS has_key
                     FROM users u LEFT JOIN institutions i ON i.code = u.institution
                          LEFT JOIN user_keys k ON k.user_id = u.id
                     WHERE u.institution = ?1 AND u.deleted_at IS NULL AND u.away = 0
                     ORDER BY u.kind, u.login",
                )?;
                let rows = st
                    .query_map(params![inst, now], |r| {
                        let p = super::principal_from_row(r)?;
                        let expires_on: Option<String> = r.get("expires_on")?;
                        Ok(UserRow {
                            id: p.user_id,
                            login: p.login,
                            name: p.name,
                            kind: p.kind,
                            institution: p.institution,
                            institution_name: r.get("institution_name")?,
                            department: r.get("department")?,
                            locked: r.get::<_, i64>("locked")? != 0,
                            locked_after_failures: r.get::<_, i64>("cooling_down")? != 0,
                            expired: expires_on.as_deref().is_some_and(|e| e < today.as_str()),
                            expires_on,
                            totp_enrolled: r.get("totp")?,
                            responsible: p.responsible,
                            key_registered: r.get("has_key")?,
                        })
                    })?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                Ok(rows)
            })
            .await
    }

    /// パスワード初期化: gives user `uid` a new one-time password that they must change at
    /// their first sign-in, ends their sessions, clears their failure count and 15-minute lock.
    /// Audited `user_password_reset`. Errors: [`Error::Denied`]; [`Error::Invalid`] for one's
    /// own account or a user who is not the 責任者's to manage.
    pub async fn reset_password(&self, p: &Principal, uid: u64) -> Result<InitialPassword> {
        self.set_initial_password(p, uid, Act::ResetPassword).await
    }

    /// IDパスワード通知書: as [`Node::reset_password`] (issuing the notice sets a new one-time
    /// password, since the old one is not kept), audited `user_notice`; the caller prints it.
    pub async fn issue_credentials_notice(
        &self,
        p: &Principal,
        uid: u64,
    ) -> Result<InitialPassword> {
        self.set_initial_password(p, uid, Act::Notice).await
    }

    async fn set_initial_password(
        &self,
        p: &Principal,
        uid: u64,
        act: Act,
    ) -> Result<InitialPassword> {
        authorize(p, Action::ManageUsers, Target::None)?;
        if uid == p.user_id {
            return Err(Error::Invalid(
                act.refused_on_self().unwrap_or_default().into(),
            ));
        }
        let (actor, now) = (p.clone(), self.clock.now_ms());
        let login = self
            .store
            .read(move |c| {
                c.query_row("SELECT login FROM users WHERE id = ?1", [uid as i64], |r| {
                    r.get::<_, String>(0)
                })
                .optional()
                .map_err(Error::from)
            })
            .await?
            .unwrap_or_default();
        let password = initial_password(&login);
        let hash = hash_password(&password)?;
        let m = self
            .store
            .write(move |c| {
                let tx = c.transaction()?;
                let m = match managed(&tx, &actor, uid, act, now) {
                    Ok(m) => m,
                    Err(e) => {
                        tx.commit()?;
                        return Err(e);
                    }
                };
                tx.execute(
                    "UPDATE users SET password_hash = ?2, must_change_password = 1,
                         failed_signins = 0, locked_until = NULL WHERE id = ?1",
                    params![m.id as i64, hash],
                )?;
                tx.execute("DELETE FROM sessions WHERE user_id = ?1", [m.id as i64])?;
                tx.execute(
                    "DELETE FROM sign_in_challenges WHERE user_id = ?1",
                    [m.id as i64],
                )?;
                record(&tx, &actor, act, m.id, None, now)?;
                tx.commit()?;
                Ok::<_, Error>(m)
            })
            .await?;
        let institution = self.institution_of(p).await?;
        Ok(InitialPassword {
            user_id: m.id,
            login: m.login,
            name: m.name,
            kind: m.kind,
            institution,
            password,
        })
    }

    /// アカウントロック (`locked = true`) or ロック解除: a locked account cannot sign in and
    /// its sessions end at once; unlocking also ends the 15-minute lock after failures.
    /// Audited `user_lock` / `user_unlock`. Errors: as [`Node::reset_password`].
    pub async fn set_user_locked(&self, p: &Principal, uid: u64, locked: bool) -> Result<()> {
        let act = if locked { Act::Lock } else { Act::Unlock };
        self.administer(p, uid, act, move |tx, m| {
            if locked {
                tx.execute("UPDATE users SET locked = 1 WHERE id = ?1", [m.id as i64])?;
                tx.execute("DELETE FROM sessions WHERE user_id = ?1", [m.id as i64])?;
            } else {
                tx.execute(
                    "UPDATE users SET locked = 0, locked_until = NULL, failed_signins = 0
                     WHERE id = ?1",
                    [m.id as i64],
                )?;
            }
            Ok(None)
        })
        .await
        .map(|_| ())
    }

    /// 削除: the account signs in no more and leaves the user list, its sessions end and its
    /// check-tool key no longer opens sealed files; its row stays, so the audit log and the
    /// sheets it wrote still name it. Audited `user_delete`. Errors: as
    /// [`Node::reset_password`]; [`Error::Invalid`] for the doctor holding the 責任者 role
    /// (pass it on first).
    pub async fn delete_user(&self, p: &Principal, uid: u64) -> Result<()> {
        let now = self.clock.now_ms();
        self.administer(p, uid, Act::Delete, move |tx, m| {
            if m.responsible {
                return Err(Error::Invalid(
                    "責任者の指定医は削除できません。先に「責任者変更」で他の指定医に責任者を引き継いでください。"
                        .into(),
                ));
            }
            tx.execute(
                "UPDATE users SET deleted_at = ?2, locked = 1 WHERE id = ?1",
                params![m.id as i64, now],
            )?;
            tx.execute("DELETE FROM sessions WHERE user_id = ?1", [m.id as i64])?;
            tx.execute(
                "DELETE FROM sign_in_challenges WHERE user_id = ?1",
                [m.id as i64],
            )?;
            tx.execute("DELETE FROM user_keys WHERE user_id = ?1", [m.id as i64])?;
            Ok(None)
        })
        .await
        .map(|_| ())
    }

    /// 責任者変更 (the seed's hand-over: 「責任者を別の指定医に変更する」): the doctor `uid`
    /// becomes the institution's 責任者 and whoever held the role — the acting 責任者, a doctor
    /// or an account of kind 責任者 — stops being one, in one transaction: one account at a time
    /// administers the institution's users. Audited `user_responsible` with the previous
    /// holder's id (`from=ID`). Returns the handing-over: who held it, who holds it now.
    /// Errors: as [`Node::reset_password`]; [`Error::Invalid`] for a user who is not a doctor.
    pub async fn pass_responsible(&self, p: &Principal, uid: u64) -> Result<HandOver> {
        let inst = p.institution.clone();
        let (login, previous) = self
            .administer_with(p, uid, Act::PassResponsible, move |tx, m| {
                if m.kind.role() != Role::Doctor {
                    return Err(Error::Invalid(format!(
                        "責任者を引き継げるのは指定医だけです（{}には引き継げません）。",
                        m.kind.label()
                    )));
                }
                if m.responsible {
                    return Err(Error::Invalid("その指定医は既に責任者です。".into()));
                }
                let previous: Option<(i64, String)> = tx
                    .query_row(
                        "SELECT id, login FROM users WHERE institution = ?1 AND responsible = 1",
                        [&inst],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .optional()?;
                tx.execute(
                    "UPDATE users SET responsible = 0 WHERE institution = ?1 AND responsible = 1",
                    [&inst],
                )?;
                tx.execute(
                    "UPDATE users SET responsible = 1 WHERE id = ?1",
                    [m.id as i64],
                )?;
                let detail = format!(
                    "from={}",
                    previous
                        .as_ref()
                        .map_or("-".to_string(), |v| v.0.to_string())
                );
                Ok((Some(detail), previous))
            })
            .await?;
        Ok(HandOver {
            to_login: login,
            from_user: previous.as_ref().map(|v| v.0 as u64),
            from_login: previous.map(|v| v.1),
        })
    }

    /// 有効期限 as typed (西暦 or 和暦, as every date; blank: none), read for
    /// [`Node::set_user_expiry`]. Errors: [`Error::Invalid`] naming what was typed and the
    /// forms a date may take.
    pub fn typed_expiry(typed: &str) -> Result<Option<nsdb_rules::value::Date>> {
        let typed = typed.trim();
        if typed.is_empty() {
            return Ok(None);
        }
        nsdb_rules::value::Date::typed(typed).map(Some).ok_or_else(|| {
            Error::Invalid(format!(
                "有効期限「{typed}」を日付として読めません。{}で入力してください（空欄は期限なし）。",
                nsdb_ui::DATE_HINT
            ))
        })
    }

    /// 有効期限: sets (or with `None` removes) user `uid`'s expiry date (`YYYY-MM-DD`, JST):
    /// after that day they cannot sign in and the list shows 期限切れ. Audited `user_expiry`
    /// with the new date. Errors: as [`Node::reset_password`]; [`Error::Invalid`] for a date
    /// before today.
    pub async fn set_user_expiry(
        &self,
        p: &Principal,
        uid: u64,
        expires_on: Option<nsdb_rules::value::Date>,
    ) -> Result<()> {
        let today = self.clock.today_jst().to_string();
        let date = expires_on.map(|d| d.to_string());
        if date.as_deref().is_some_and(|d| d < today.as_str()) {
            return Err(Error::Invalid(format!(
                "有効期限は今日（{today}）以降の日付にしてください。"
            )));
        }
        self.administer(p, uid, Act::Expiry, move |tx, m| {
            tx.execute(
                "UPDATE users SET expires_on = ?2 WHERE id = ?1",
                params![m.id as i64, date],
            )?;
            Ok(Some(format!(
                "expires_on={}",
                date.as_deref().unwrap_or("none")
            )))
        })
        .await
        .map(|_| ())
    }

    /// 暗号鍵再発行: a new signing key for the check tool (ed25519) for user `uid`, a doctor or a
    /// clerk: its public half replaces the registered one at once (sealed files signed with the
    /// old key no longer open), and the key itself is returned for the download — the node
    /// keeps only the public half. Audited `user_key_reissue`. Errors: as
    /// [`Node::reset_password`]; [`Error::Invalid`] for a kind that does not use the check tool.
    pub async fn reissue_user_key(&self, p: &Principal, uid: u64) -> Result<IssuedKey> {
        let key = nsdb_provisioning::sealed::UserKey::generate()
            .map_err(|e| Error::Invalid(format!("暗号鍵を作れません: {e}")))?;
        let public = hex::encode(key.public_key());
        let now = self.clock.now_ms();
        let login = self
            .administer(p, uid, Act::ReissueKey, move |tx, m| {
            if !matches!(m.kind.role(), Role::Doctor | Role::Clerk) {
                return Err(Error::Invalid(format!(
                    "暗号鍵（チェックツールの署名鍵）を使うのは指定医と医療クラーク等だけです（{}には発行しません）。",
                    m.kind.label()
                )));
            }
            tx.execute(
                "INSERT INTO user_keys (user_id, public_key, created_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT(user_id) DO UPDATE SET public_key = excluded.public_key,
                    created_at = excluded.created_at",
                params![m.id as i64, public, now],
            )?;
            Ok(None)
        })
        .await?;
        Ok(IssuedKey {
            login,
            key_file: key.key_file_text(),
        })
    }

    /// One administration act in one transaction: authorised, refused on oneself when the act
    /// says so, the target found in the 責任者's institution, `change` applied and the act
    /// audited with the detail `change` returns. Returns the target's login.
    async fn administer<F>(&self, p: &Principal, uid: u64, act: Act, change: F) -> Result<String>
    where
        F: FnOnce(&Connection, &Managed) -> Result<Option<String>> + Send + 'static,
    {
        self.administer_with(p, uid, act, move |tx, m| Ok((change(tx, m)?, ())))
            .await
            .map(|(login, ())| login)
    }

    /// [`Node::administer`] for a `change` that also tells the caller something (`T`), read
    /// inside the same transaction.
    async fn administer_with<T, F>(
        &self,
        p: &Principal,
        uid: u64,
        act: Act,
        change: F,
    ) -> Result<(String, T)>
    where
        T: Send + 'static,
        F: FnOnce(&Connection, &Managed) -> Result<(Option<String>, T)> + Send + 'static,
    {
        authorize(p, Action::ManageUsers, Target::None)?;
        if uid == p.user_id
            && let Some(why) = act.refused_on_self()
        {
            return Err(Error::Invalid(why.into()));
        }
        let (actor, now) = (p.clone(), self.clock.now_ms());
        self.store
            .write(move |c| {
                let tx = c.transaction()?;
                let m = match managed(&tx, &actor, uid, act, now) {
                    Ok(m) => m,
                    Err(e) => {
                        tx.commit()?;
                        return Err(e);
                    }
                };
                let (detail, told) = change(&tx, &m)?;
                record(&tx, &actor, act, m.id, detail.as_deref(), now)?;
                tx.commit()?;
                Ok((m.login, told))
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn family_and_given_names_are_matched_by_their_start() {
        assert!(name_matches("田中 花子", "田中", ""));
        assert!(name_matches("田中　花子", "田", "花"));
        assert!(name_matches("田中 花子", "", "花子"));
        assert!(!name_matches("田中 花子", "花子", ""));
        assert!(!name_matches("田中 花子", "", "田中"));
        assert!(name_matches("Tanaka Hanako", "ｔａｎ", "HAN"));
        assert!(name_matches("鈴木", "鈴木", ""));
        assert!(!name_matches("鈴木", "", "太"));
    }

    #[test]
    fn initial_passwords_meet_the_rule_and_differ() {
        let a = initial_password("clerk");
        let b = initial_password("clerk");
        assert_eq!(a.chars().count(), INITIAL_PASSWORD_CHARS);
        assert!(password_rule::check("clerk", &a).is_ok());
        assert_ne!(a, b);
        assert!(!a.contains(['0', 'O', '1', 'l', 'I']));
    }
}
