//! Accounts: institutions, users, passwords (Argon2id), sign-in (with the second factor of
//! [`totp`] for users who enrolled it), server-side sessions, 再認証 and パスワード変更.
//!
//! A session token is 32 random bytes handed to the browser (cookie) or API client (bearer);
//! only its SHA-256 is stored, so a copy of the database cannot be used to sign in; the
//! half-signed-in challenge between password and code is kept the same way. Passwords, tokens,
//! second-factor secrets and codes must never be logged.

pub mod admin;
pub mod password_rule;
pub mod policy;
pub mod registry;
pub mod totp;

use argon2::password_hash::{PasswordHash, PasswordHasher, SaltString};
use argon2::{Argon2, password_hash::rand_core::OsRng};
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::accounts::policy::{Action, Principal, Role, Target, UserKind, authorize};
use crate::audit;
use crate::{Error, Node, Result};

/// How long a session lasts without signing in again, however busy (8 hours: one working day).
pub const SESSION_TTL_MS: i64 = 8 * 60 * 60 * 1000;

/// How long a session lasts without a request (30 minutes): a terminal left signed in on a
/// ward is closed by then. The editor keeps what was typed and saves it after the next sign-in.
pub const SESSION_IDLE_MS: i64 = 30 * 60 * 1000;

/// How often a session's last use is written (1 minute), so that reading a page is not a write.
const SESSION_TOUCH_MS: i64 = 60 * 1000;

/// The most sessions one user holds at once (5: a desk, a ward terminal, a laptop, the API
/// client and one spare); a sixth sign-in ends the oldest.
pub const MAX_SESSIONS_PER_USER: i64 = 5;

/// How long a sign-in or 再認証 opens sensitive actions (user administration, bulk export)
/// without asking for the password again (5 minutes).
pub const REAUTH_WINDOW_MS: i64 = 5 * 60 * 1000;

/// Consecutive wrong passwords (or second-factor codes) that lock an account (10).
pub const LOCK_AFTER_FAILURES: i64 = 10;

/// How long the lock after [`LOCK_AFTER_FAILURES`] lasts (15 minutes), after which the account
/// signs in again by itself; an administrator's unlock ends it at once. A cool-down rather than
/// an administrator-only unlock, so that whoever knows a doctor's login cannot keep them out of
/// the system for a whole day: at 10 guesses per 15 minutes, a password under the rule of
/// [`password_rule`] is not found in any useful time.
pub const COOL_DOWN_MS: i64 = 15 * 60 * 1000;

/// How long a sign-in waits for a free password check before it is answered 429 (3 s).
pub const PASSWORD_CHECK_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// The bounded pool password checks run in. One Argon2id check takes 19 MiB for about 50 ms on
/// one core, so running each on its own blocking thread is how 150 wrong passwords took a node
/// to 4 GB (every thread also keeps its own allocator arena holding the 19 MiB after it is
/// done). Here a fixed set of threads, one per core and at most 4, does every check; a sign-in
/// waits at most [`PASSWORD_CHECK_WAIT`] for one of them and is otherwise told to try again
/// later ([`Error::Busy`]). Peak memory for checks is thus bounded by `size() × 19 MiB`.
#[derive(Debug)]
pub struct PasswordChecks {
    permits: tokio::sync::Semaphore,
    jobs: std::sync::Mutex<std::sync::mpsc::Sender<PasswordJob>>,
    size: usize,
}

type PasswordJob = (String, String, tokio::sync::oneshot::Sender<bool>);

impl Default for PasswordChecks {
    fn default() -> Self {
        let size = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .clamp(1, 4);
        let (tx, rx) = std::sync::mpsc::channel::<PasswordJob>();
        let rx = std::sync::Arc::new(std::sync::Mutex::new(rx));
        for i in 0..size {
            let rx = rx.clone();
            // The threads end when the pool is dropped (the channel closes).
            let spawned = std::thread::Builder::new()
                .name(format!("nsdb-password-{i}"))
                .spawn(move || {
                    // This thread's Argon2 memory, allocated at the first check and reused.
                    let mut blocks = Vec::new();
                    loop {
                        let job = match rx.lock() {
                            Ok(rx) => rx.recv(),
                            Err(_) => return,
                        };
                        let Ok((password, phc, reply)) = job else {
                            return;
                        };
                        let _ = reply.send(verify_in(&password, &phc, &mut blocks));
                    }
                });
            if let Err(e) = spawned {
                tracing::error!(target: "nsdb::accounts", error = %e, "no password check thread");
            }
        }
        PasswordChecks {
            permits: tokio::sync::Semaphore::new(size),
            jobs: std::sync::Mutex::new(tx),
            size,
        }
    }
}

impl PasswordChecks {
    /// How many checks run at once.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Verifies `password` against `phc` in the pool. Errors: [`Error::Busy`] when no check
    /// became free within [`PASSWORD_CHECK_WAIT`].
    async fn verify(&self, password: String, phc: String) -> Result<bool> {
        let _permit = tokio::time::timeout(PASSWORD_CHECK_WAIT, self.permits.acquire())
            .await
            .map_err(|_| Error::Busy)?
            .map_err(|_| Error::Busy)?;
        let (reply, answer) = tokio::sync::oneshot::channel();
        let sent = self
            .jobs
            .lock()
            .map_err(|_| Error::Busy)?
            .send((password, phc, reply));
        if sent.is_err() {
            return Err(Error::Busy);
        }
        Ok(answer.await.unwrap_or(false))
    }
}

/// Hashes a password with Argon2id and a fresh salt (PHC string).
pub fn hash_password(password: &str) -> Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| Error::Invalid(format!("パスワードを保存できません: {e}")))
}

/// The most Argon2 memory one check may use (64 MiB, in 1 KiB blocks); a stored hash asking for
/// more never verifies.
const MAX_CHECK_BLOCKS: usize = 64 * 1024;

/// Whether `password` matches the PHC string `phc` (Argon2), computed in the given memory, which grows to the hash's `m` cost once and is
/// then reused, so a thread doing checks holds one Argon2 memory, never one per check.
fn verify_in(password: &str, phc: &str, blocks: &mut Vec<argon2::Block>) -> bool {
    let Ok(hash) = PasswordHash::new(phc) else {
        return false;
    };
    let (Some(expected), Some(salt)) = (hash.hash, hash.salt) else {
        return false;
    };
    let Ok(algorithm) = argon2::Algorithm::try_from(hash.algorithm) else {
        return false;
    };
    let version = match hash.version.map(argon2::Version::try_from).transpose() {
        Ok(v) => v.unwrap_or_default(),
        Err(_) => return false,
    };
    let Ok(params) = argon2::Params::try_from(&hash) else {
        return false;
    };
    let mut salt_buf = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_buf) else {
        return false;
    };
    let need = params.block_count();
    if need > MAX_CHECK_BLOCKS {
        return false;
    }
    if blocks.len() < need {
        blocks.resize(need, argon2::Block::default());
    }
    let mut out = vec![0u8; expected.len()];
    let computed = Argon2::new(algorithm, version, params).hash_password_into_with_memory(
        password.as_bytes(),
        salt,
        &mut out,
        &mut blocks[..need],
    );
    // `Output`'s comparison takes the same time wherever the bytes differ.
    computed.is_ok() && argon2::password_hash::Output::new(&out).is_ok_and(|o| o == expected)
}

fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

fn random_hex() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

/// A new account.
#[derive(Debug, Clone)]
pub struct NewUser<'a> {
    pub login: &'a str,
    pub name: &'a str,
    pub kind: UserKind,
    pub institution: &'a str,
    pub department: Option<&'a str>,
    /// An Argon2id PHC string from `hash_password`.
    pub password_hash: &'a str,
}

/// Adds an institution if it is not known yet.
pub fn ensure_institution(conn: &Connection, code: &str, name: &str, kind: &str) -> Result<()> {
    conn.execute(
        "INSERT INTO institutions (code, name, kind) VALUES (?1, ?2, ?3)
         ON CONFLICT(code) DO NOTHING",
        params![code, name, kind],
    )?;
    Ok(())
}

/// Names an institution (医療機関コード `code`, `name`, kind `hospital` for a clinic), or renames
/// it when it is known: for the hub, which holds the accounts of clinics that have no node of
/// their own (docs/security.md, "Clinics on the hub"). Audited with the code only.
pub async fn name_institution(node: &Node, code: &str, name: &str, kind: &str) -> Result<()> {
    if code.trim().is_empty() || name.trim().is_empty() {
        return Err(Error::Invalid(
            "医療機関コードと医療機関名を入力してください。".into(),
        ));
    }
    let (code, name, kind, now) = (
        code.trim().to_string(),
        name.trim().to_string(),
        kind.to_string(),
        node.clock.now_ms(),
    );
    node.store
        .write(move |c| {
            let tx = c.transaction()?;
            tx.execute(
                "INSERT INTO institutions (code, name, kind) VALUES (?1, ?2, ?3)
                 ON CONFLICT(code) DO UPDATE SET name = excluded.name",
                params![code, name, kind],
            )?;
            audit::append(
                &tx,
                audit::Entry {
                    at_ms: now,
                    user: None,
                    action: "institution_name",
                    target: Some(&code),
                    detail: None,
                },
            )?;
            tx.commit()?;
            Ok(())
        })
        .await
}

/// Adds a user; returns its id.
pub fn create_user(conn: &Connection, u: &NewUser<'_>, now_ms: i64) -> Result<u64> {
    let exists: Option<i64> = conn
        .query_row("SELECT id FROM users WHERE login = ?1", [u.login], |r| {
            r.get(0)
        })
        .optional()?;
    if exists.is_some() {
        return Err(Error::Invalid(format!(
            "ID「{}」は既に使われています。",
            u.login
        )));
    }
    // An account of kind 責任者 is registered to hold the institution's 責任者 role (the
    // seed's 責任者の新規登録); it takes it when nobody holds it, and otherwise waits for a
    // 責任者変更, so that one account at a time administers the institution's users.
    let holder: Option<i64> = conn
        .query_row(
            "SELECT id FROM users WHERE institution = ?1 AND responsible = 1",
            [u.institution],
            |r| r.get(0),
        )
        .optional()?;
    let responsible = u.kind == UserKind::Admin && holder.is_none();
    conn.execute(
        "INSERT INTO users (login, name, kind, institution, department, password_hash, created_at,
                            responsible)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            u.login,
            u.name,
            u.kind.as_str(),
            u.institution,
            u.department,
            u.password_hash,
            now_ms,
            responsible
        ],
    )?;
    Ok(conn.last_insert_rowid() as u64)
}

/// The most characters of a user's 氏名 (30): what the user list's column and the
/// IDパスワード通知書's table hold on one line.
pub const MAX_NAME_CHARS: usize = 30;

/// The most characters of a 部署 (部門/診療科) (30), for the same reason.
pub const MAX_DEPARTMENT_CHARS: usize = 30;

/// Why a new account is refused before anything is stored ([`check_new_user`]). Each names
/// the field it is about ([`NewUserRefused::field`]), so the command line can name its flag.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NewUserRefused {
    #[error("ユーザIDが空か、空白を含んでいます。空白を含まない文字列にしてください。")]
    Login,
    #[error(
        "ユーザID「{0}」は自治体が発行する指定医のIDの形（A/B/S + 自治体コード6桁 + - + 番号）です。この医療機関のアカウントには別のIDを付けてください。"
    )]
    RegistryLogin(String),
    #[error("氏名が空です。利用者の氏名（例: 鈴木 太郎）を入れてください。")]
    EmptyName,
    #[error("氏名に改行などの制御文字が含まれています。1行の文字だけにしてください。")]
    ControlInName,
    #[error("氏名が長すぎます（{chars}文字）。{max}文字以内にしてください。", max = MAX_NAME_CHARS)]
    LongName { chars: usize },
    #[error("部署に改行などの制御文字が含まれています。1行の文字だけにしてください。")]
    ControlInDepartment,
    #[error("部署が長すぎます（{chars}文字）。{max}文字以内にしてください。", max = MAX_DEPARTMENT_CHARS)]
    LongDepartment { chars: usize },
    #[error("{node}のノードには「{kind}」の利用者を登録できません。登録できる種別: {allowed}。")]
    KindNotHere {
        node: &'static str,
        kind: &'static str,
        allowed: String,
    },
    #[error(
        "{node}のノードには他の医療機関（{code}）の利用者を登録できません。このノードの医療機関（{own}）の利用者として登録してください（他の医療機関コードを指定できるのは、ハブで診療所の利用者を登録するときだけです）。"
    )]
    OtherInstitution {
        node: &'static str,
        code: String,
        own: String,
    },
    #[error(
        "ハブで医療機関（{code}）の利用者として登録できるのは、指定医と医療クラーク等だけです（「{kind}」は登録できません）。"
    )]
    ClinicKind { code: String, kind: &'static str },
}

impl NewUserRefused {
    /// The field the refusal is about: `login`, `name`, `department`, `kind` or
    /// `institution`.
    pub fn field(&self) -> &'static str {
        match self {
            NewUserRefused::Login | NewUserRefused::RegistryLogin(_) => "login",
            NewUserRefused::EmptyName
            | NewUserRefused::ControlInName
            | NewUserRefused::LongName { .. } => "name",
            NewUserRefused::ControlInDepartment | NewUserRefused::LongDepartment { .. } => {
                "department"
            }
            NewUserRefused::KindNotHere { .. } | NewUserRefused::ClinicKind { .. } => "kind",
            NewUserRefused::OtherInstitution { .. } => "institution",
        }
    }
}

/// Checks a new account against what a node of role `node` (its own institution `own`)
/// holds: a login without blanks; a 氏名 of 1 to [`MAX_NAME_CHARS`] characters; a 部署 of at
/// most [`MAX_DEPARTMENT_CHARS`]; a kind from [`policy::kinds_on`]; another institution's
/// code (`institution`, `None` = the node's own) only on the hub, for a clinic's doctor or
/// clerk.
pub fn check_new_user(
    node: crate::config::NodeRole,
    own: &str,
    login: &str,
    name: &str,
    kind: UserKind,
    institution: Option<&str>,
    department: Option<&str>,
) -> std::result::Result<(), NewUserRefused> {
    use crate::config::NodeRole;
    if login.trim().is_empty() || login.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(NewUserRefused::Login);
    }
    if registry::is_registry_login(login) {
        return Err(NewUserRefused::RegistryLogin(login.to_string()));
    }
    let chars = name.trim().chars().count();
    if chars == 0 {
        return Err(NewUserRefused::EmptyName);
    }
    if name.chars().any(char::is_control) {
        return Err(NewUserRefused::ControlInName);
    }
    if chars > MAX_NAME_CHARS {
        return Err(NewUserRefused::LongName { chars });
    }
    if department.is_some_and(|d| d.chars().any(char::is_control)) {
        return Err(NewUserRefused::ControlInDepartment);
    }
    let dept = department.map_or(0, |d| d.trim().chars().count());
    if dept > MAX_DEPARTMENT_CHARS {
        return Err(NewUserRefused::LongDepartment { chars: dept });
    }
    let other = institution.filter(|code| *code != own);
    match (node, other) {
        (NodeRole::Hub, Some(code)) => {
            if !matches!(kind.role(), policy::Role::Doctor | policy::Role::Clerk) {
                return Err(NewUserRefused::ClinicKind {
                    code: code.to_string(),
                    kind: kind.label(),
                });
            }
            return Ok(());
        }
        (_, Some(code)) => {
            return Err(NewUserRefused::OtherInstitution {
                node: node.label(),
                code: code.to_string(),
                own: own.to_string(),
            });
        }
        (_, None) => {}
    }
    let allowed: &[UserKind] = match node {
        // The hub's own institution: its doctors and clerks are clinics' (with their code).
        NodeRole::Hub => &[UserKind::Ministry, UserKind::PaperEntry, UserKind::Admin],
        other => policy::kinds_on(other),
    };
    if !allowed.contains(&kind) {
        return Err(NewUserRefused::KindNotHere {
            node: node.label(),
            kind: kind.label(),
            allowed: allowed
                .iter()
                .map(|k| format!("{}（{}）", k.label(), k.as_str()))
                .collect::<Vec<_>>()
                .join("、"),
        });
    }
    Ok(())
}

pub use password_rule::MIN_PASSWORD_CHARS;

/// The most characters a 指定医番号 may have: the sheets' item has no official length (its
/// form file marks the digits as unverified), so this only bounds what a typing slip can store.
pub const DOCTOR_NUMBER_MAX_CHARS: usize = 20;

/// Checks a 指定医番号 given for a new account: doctors only (`kind.role()` is Doctor), trimmed,
/// full-width digits and letters folded to half-width (NFKC, as the sheets' text items), not
/// empty, at most [`DOCTOR_NUMBER_MAX_CHARS`] characters, letters, digits and `-` only. Returns
/// the number as stored. Errors name the rule, in Japanese.
pub fn check_doctor_number(kind: UserKind, number: &str) -> std::result::Result<String, String> {
    use unicode_normalization::UnicodeNormalization;
    if kind.role() != Role::Doctor {
        return Err(format!(
            "指定医番号は指定医の利用者にだけ設定できます（「{}」には設定できません）。",
            kind.label()
        ));
    }
    let n: String = number.trim().nfkc().collect();
    if n.is_empty() {
        return Err("指定医番号が空です。".into());
    }
    let len = n.chars().count();
    if len > DOCTOR_NUMBER_MAX_CHARS {
        return Err(format!(
            "指定医番号は{DOCTOR_NUMBER_MAX_CHARS}文字までです（{len}文字あります）。"
        ));
    }
    if let Some(c) = n.chars().find(|c| !(c.is_alphanumeric() || *c == '-')) {
        return Err(format!(
            "指定医番号に使えない文字「{c}」があります（文字・数字・ハイフンのみ）。"
        ));
    }
    Ok(n)
}

/// Sets the 指定医番号 of the account `id` (checked by [`check_doctor_number`] first), which new
/// sheets the doctor starts are prefilled with. Audited (`user_doctor_number_set`; the number
/// itself is not in the audit).
pub async fn set_doctor_number(node: &Node, id: u64, number: &str) -> Result<()> {
    let number = number.to_string();
    let now = node.clock.now_ms();
    node.store
        .write(move |c| {
            let tx = c.transaction()?;
            let n = tx.execute(
                "UPDATE users SET doctor_number = ?1 WHERE id = ?2",
                rusqlite::params![number, id as i64],
            )?;
            if n == 0 {
                return Err(Error::Invalid(format!("利用者（id {id}）がいません。")));
            }
            let target = id.to_string();
            audit::append(
                &tx,
                audit::Entry {
                    at_ms: now,
                    user: None,
                    action: "user_doctor_number_set",
                    target: Some(&target),
                    detail: None,
                },
            )?;
            tx.commit()?;
            Ok(())
        })
        .await
}

/// Adds a user at `institution` (default: the node's own), with a password that meets
/// [`password_rule::check`]. The addition is audited.
pub async fn add_user(
    node: &Node,
    login: &str,
    name: &str,
    kind: UserKind,
    institution: Option<&str>,
    department: Option<&str>,
    password: &str,
) -> Result<u64> {
    let own = &node.config.institution;
    check_new_user(
        node.role(),
        &own.code,
        login,
        name,
        kind,
        institution,
        department,
    )
    .map_err(|e| Error::Invalid(e.to_string()))?;
    password_rule::check(login, password).map_err(|e| Error::Invalid(e.to_string()))?;
    let hash = hash_password(password)?;
    let (inst_code, inst_name) = match institution {
        Some(code) if code != own.code => (code.to_string(), code.to_string()),
        _ => (own.code.clone(), own.name.clone()),
    };
    let mut kind_of_node = node.role().institution_kind();
    // On the hub, another institution's account is a clinic's (M18): its doctors and clerks.
    if inst_code != own.code {
        kind_of_node = "hospital";
    }
    let (login, name, department) = (
        login.to_string(),
        name.trim().to_string(),
        department.map(|d| d.trim().to_string()),
    );
    let now = node.clock.now_ms();
    node.store
        .write(move |c| {
            let tx = c.transaction()?;
            ensure_institution(&tx, &inst_code, &inst_name, kind_of_node)?;
            let id = create_user(
                &tx,
                &NewUser {
                    login: &login,
                    name: &name,
                    kind,
                    institution: &inst_code,
                    department: department.as_deref(),
                    password_hash: &hash,
                },
                now,
            )?;
            let target = id.to_string();
            audit::append(
                &tx,
                audit::Entry {
                    at_ms: now,
                    user: None,
                    action: "user_add",
                    target: Some(&target),
                    detail: Some(kind.as_str()),
                },
            )?;
            tx.commit()?;
            Ok(id)
        })
        .await
}

/// A signed-in session, as handed to the client once.
#[derive(Debug, Clone)]
pub struct LoginSession {
    pub token: String,
    pub csrf: String,
    pub principal: Principal,
}

/// A user as the administrator's user list (医療機関ユーザ検索) shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct UserRow {
    pub id: u64,
    pub login: String,
    pub name: String,
    pub kind: UserKind,
    /// 医療機関コード.
    pub institution: String,
    /// 医療機関名 (the code when the node does not know its name).
    pub institution_name: String,
    /// 部署 (部門/診療科).
    pub department: Option<String>,
    /// Locked by a 責任者 (アカウントロック).
    pub locked: bool,
    /// Locked for [`COOL_DOWN_MS`] after [`LOCK_AFTER_FAILURES`] wrong passwords or codes in
    /// a row (連続失敗), and not yet over: cannot sign in until then or until ロック解除.
    pub locked_after_failures: bool,
    /// 有効期限, `YYYY-MM-DD` (JST); `None`: no expiry.
    pub expires_on: Option<String>,
    /// Past its 有効期限 (期限切れ): cannot sign in.
    pub expired: bool,
    /// Holds the institution's 責任者 role (one account at a time): the account of kind 責任者
    /// it was given to, or the doctor it was handed to (責任者変更).
    pub responsible: bool,
    /// Has a check-tool key registered (暗号鍵).
    pub key_registered: bool,
    /// Whether the user has enrolled the second factor (2段階認証).
    pub totp_enrolled: bool,
}

struct StoredUser {
    principal: Principal,
    password_hash: String,
    locked: bool,
    /// Deleted (削除): signs in no more, kept for the audit log and the sheets.
    deleted: bool,
    expires_on: Option<String>,
    locked_until: Option<i64>,
    /// Whether the user has enrolled the second factor.
    totp: bool,
}

/// The outcome of a right password at the sign-in screen ([`Node::begin_sign_in`]).
#[derive(Debug, Clone)]
pub enum SignIn {
    /// Signed in.
    Session(LoginSession),
    /// The code is asked next; `challenge` goes into a cookie for [`Node::finish_sign_in`].
    Code { challenge: String },
}

/// What a signed-in user must do before anything else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pending {
    /// Their password was set by someone else (`nsdb user add`): パスワード変更.
    ChangePassword,
    /// Their kind needs the second factor ([`totp::required_for`]), or they hold the 責任者
    /// role, and they have not enrolled.
    EnrolTotp,
}

impl Pending {
    /// The API's error code for a session that must do this first.
    pub fn code(self) -> &'static str {
        match self {
            Pending::ChangePassword => "password_change_required",
            Pending::EnrolTotp => "totp_enrolment_required",
        }
    }

    /// What the user is told, and where to do it.
    pub fn message(self) -> &'static str {
        match self {
            Pending::ChangePassword => {
                "パスワードを変更してください（画面の「パスワード変更」、または POST /api/v1/session/password）。他の人が設定したパスワードのままでは使えません。"
            }
            Pending::EnrolTotp => {
                "2段階認証を設定してください（画面の「2段階認証の設定」）。この種別の利用者には必須です。"
            }
        }
    }

    /// The screen where it is done.
    pub fn path(self) -> &'static str {
        match self {
            Pending::ChangePassword => "/account/password",
            Pending::EnrolTotp => "/account/totp",
        }
    }
}

/// A one-time notice kept with a session for its next page ([`Node::set_flash`]): what an
/// action tells the user after its redirect, instead of a query string anyone could craft.
/// Never holds a password.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Flash {
    pub text: String,
    /// A link the notice offers: (href, text), e.g. a download that 再認証 held.
    pub link: Option<(String, String)>,
    /// The link is a download the page starts at once (after 再認証 held it).
    #[serde(default)]
    pub download: bool,
}

impl Flash {
    pub fn text(text: impl Into<String>) -> Flash {
        Flash {
            text: text.into(),
            link: None,
            download: false,
        }
    }
}

/// A live session as [`Node::session_state`] reads it.
#[derive(Debug, Clone)]
pub struct SessionState {
    pub principal: Principal,
    pub csrf: String,
    /// The one-time notice waiting for the next page, if any ([`Node::take_flash`]).
    pub flash: Option<Flash>,
    /// When the user last gave their password: sign-in or 再認証 (Unix ms).
    pub reauth_at: i64,
    pub pending: Option<Pending>,
}

/// Why a sign-in with a known login was refused, for the audit log only: the person signing in
/// is told the same thing in every case (see [`Error::BadCredentials`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    WrongPassword,
    WrongCode,
    CoolingDown,
    Locked,
    Expired,
    Deleted,
    /// A kind of account this node's role does not hold ([`policy::kind_belongs`]).
    NotHere,
}

fn principal_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Principal> {
    let kind: String = r.get("kind")?;
    let institution: String = r.get("institution")?;
    Ok(Principal {
        user_id: r.get::<_, i64>("id")? as u64,
        login: r.get("login")?,
        name: r.get("name")?,
        kind: UserKind::parse(&kind).ok_or_else(|| {
            rusqlite::Error::FromSqlConversionFailure(
                0,
                rusqlite::types::Type::Text,
                format!("unknown user kind {kind:?}").into(),
            )
        })?,
        institution: institution.clone(),
        responsible: r.get::<_, i64>("responsible")? != 0,
        home_institution: r
            .get::<_, Option<String>>("home_institution")?
            .filter(|home| *home != institution),
    })
}

impl Node {
    /// The institution `p` works for, as the sheets they write name it (医療機関名,
    /// 医療機関コード, the place beside their name): the node's own, or on the hub a clinic's
    /// from `institutions` (its code when it was never named).
    pub async fn institution_of(&self, p: &Principal) -> Result<crate::config::Institution> {
        if p.institution == self.config.institution.code {
            return Ok(self.config.institution.clone());
        }
        let code = p.institution.clone();
        self.store
            .read(move |c| {
                let name: Option<String> = c
                    .query_row(
                        "SELECT name FROM institutions WHERE code = ?1",
                        [&code],
                        |r| r.get(0),
                    )
                    .optional()?;
                Ok(crate::config::Institution {
                    name: name.unwrap_or_else(|| code.clone()),
                    code,
                })
            })
            .await
    }

    /// Checks a login and password, as the first step of every sign-in: the stored user when
    /// the password is right and the account may sign in.
    ///
    /// Errors: [`Error::BadCredentials`] for an unknown login, a wrong password, an account
    /// locked (by an administrator or for [`COOL_DOWN_MS`] after [`LOCK_AFTER_FAILURES`] wrong
    /// passwords or codes) or expired, all alike in words and in work done, so the answer never
    /// tells whether the password was right; [`Error::Busy`] when the password checks are all
    /// taken.
    async fn check_password(&self, login: &str, password: &str) -> Result<StoredUser> {
        let login_owned = login.to_string();
        let found = self
            .store
            .read(move |c| {
                c.query_row(
                    "SELECT id, login, name, kind, institution, responsible, home_institution,
                            password_hash,
                            locked, expires_on, locked_until, totp_secret IS NOT NULL AS totp,
                            (deleted_at IS NOT NULL OR away = 1) AS deleted
                     FROM users WHERE login = ?1",
                    [&login_owned],
                    |r| {
                        Ok(StoredUser {
                            principal: principal_from_row(r)?,
                            password_hash: r.get("password_hash")?,
                            locked: r.get::<_, i64>("locked")? != 0,
                            deleted: r.get("deleted")?,
                            expires_on: r.get("expires_on")?,
                            locked_until: r.get("locked_until")?,
                            totp: r.get("totp")?,
                        })
                    },
                )
                .optional()
                .map_err(Error::from)
            })
            .await?;
        // Verify even for an unknown or locked login, so timing does not tell which logins
        // exist or whether the password was right.
        let phc = found
            .as_ref()
            .map(|u| u.password_hash.clone())
            .unwrap_or_else(|| DUMMY_HASH.clone());
        let ok = match self.password_checks.verify(password.to_string(), phc).await {
            Ok(ok) => ok,
            Err(e) => {
                self.metrics.sign_in_failed();
                return Err(e);
            }
        };
        let now = self.clock.now_ms();
        let today = self.clock.today_jst().to_string();
        let refusal = found.as_ref().and_then(|u| {
            if u.locked_until.is_some_and(|t| t > now) {
                Some(Refusal::CoolingDown)
            } else if !ok {
                Some(Refusal::WrongPassword)
            } else if u.deleted {
                Some(Refusal::Deleted)
            } else if u.locked {
                Some(Refusal::Locked)
            } else if u.expires_on.as_deref().is_some_and(|e| e < today.as_str()) {
                Some(Refusal::Expired)
            } else if !policy::kind_belongs(self.role(), u.principal.kind) {
                Some(Refusal::NotHere)
            } else {
                None
            }
        });
        match (found, refusal) {
            (Some(u), None) => Ok(u),
            (other, refusal) => {
                let uid = other.map(|u| u.principal.user_id);
                self.store
                    .write(move |c| refuse_sign_in(c, uid, refusal, "login_failed", now))
                    .await?;
                self.metrics.sign_in_failed();
                Err(Error::BadCredentials)
            }
        }
    }

    /// Signs a user in with login id and password, for a user without the second factor.
    /// Errors: as [`Node::sign_in`]; [`Error::TotpRequired`] for a user who has enrolled.
    pub async fn login(&self, login: &str, password: &str) -> Result<LoginSession> {
        self.sign_in(login, password, None).await
    }

    /// Signs a user in in one request (the API): login id, password and, for a user who has
    /// enrolled the second factor, the code their app shows now (`code`).
    ///
    /// Errors: as [`Node::check_password`]; [`Error::TotpRequired`] when the password is
    /// right, the user has enrolled and `code` is `None`; [`Error::BadCredentials`] for a wrong
    /// or already used code, which counts toward the lock like a wrong password (audited
    /// `totp_failed`).
    pub async fn sign_in(
        &self,
        login: &str,
        password: &str,
        code: Option<&str>,
    ) -> Result<LoginSession> {
        let user = self.check_password(login, password).await?;
        let uid = user.principal.user_id;
        let now = self.clock.now_ms();
        let session = if user.totp {
            let Some(code) = code else {
                return Err(Error::TotpRequired);
            };
            let code = code.to_string();
            self.store
                .write(move |c| second_factor_then_session(c, uid, &code, None, now))
                .await?
        } else {
            Some(self.new_session(uid, now).await?)
        };
        match session {
            Some((token, csrf)) => Ok(LoginSession {
                token,
                csrf,
                principal: user.principal,
            }),
            None => {
                self.metrics.sign_in_failed();
                Err(Error::BadCredentials)
            }
        }
    }

    /// The first step of a sign-in through the screens: the session for a user without the
    /// second factor, or, for one who has enrolled, a challenge token (for a cookie) that
    /// [`Node::finish_sign_in`] takes with the code within [`totp::CHALLENGE_MS`]. The
    /// challenge is not a session: it reaches nothing but the code's page.
    /// Errors: as [`Node::check_password`].
    pub async fn begin_sign_in(&self, login: &str, password: &str) -> Result<SignIn> {
        let user = self.check_password(login, password).await?;
        let uid = user.principal.user_id;
        let now = self.clock.now_ms();
        if !user.totp {
            let (token, csrf) = self.new_session(uid, now).await?;
            return Ok(SignIn::Session(LoginSession {
                token,
                csrf,
                principal: user.principal,
            }));
        }
        let challenge = random_hex();
        let hash = token_hash(&challenge);
        self.store
            .write(move |c| {
                c.execute(
                    "DELETE FROM sign_in_challenges WHERE expires_at < ?1 OR user_id = ?2",
                    params![now, uid as i64],
                )?;
                c.execute(
                    "INSERT INTO sign_in_challenges (token_hash, user_id, expires_at)
                     VALUES (?1, ?2, ?3)",
                    params![hash, uid as i64, now + totp::CHALLENGE_MS],
                )?;
                Ok::<_, Error>(())
            })
            .await?;
        Ok(SignIn::Code { challenge })
    }

    /// The second step of a sign-in through the screens: the code for the challenge of
    /// [`Node::begin_sign_in`]. Errors: [`Error::Unauthenticated`] when the challenge is
    /// unknown or older than [`totp::CHALLENGE_MS`] (sign in again);
    /// [`Error::BadCredentials`] for a wrong or already used code or a locked account (the
    /// challenge stays, the failure counts toward the lock).
    pub async fn finish_sign_in(&self, challenge: &str, code: &str) -> Result<LoginSession> {
        let hash = token_hash(challenge);
        let now = self.clock.now_ms();
        let code = code.to_string();
        let found = self
            .store
            .write(move |c| {
                let uid: Option<i64> = c
                    .query_row(
                        "SELECT user_id FROM sign_in_challenges
                         WHERE token_hash = ?1 AND expires_at > ?2",
                        params![hash, now],
                        |r| r.get(0),
                    )
                    .optional()?;
                let Some(uid) = uid else {
                    return Ok(None);
                };
                let s = second_factor_then_session(c, uid as u64, &code, Some(&hash), now)?;
                Ok::<_, Error>(Some((uid as u64, s)))
            })
            .await?;
        match found {
            None => Err(Error::Unauthenticated),
            Some((_, None)) => {
                self.metrics.sign_in_failed();
                Err(Error::BadCredentials)
            }
            Some((uid, Some((token, csrf)))) => {
                let principal = self.user_principal(uid).await?;
                Ok(LoginSession {
                    token,
                    csrf,
                    principal,
                })
            }
        }
    }

    /// A new session for user `uid` ([`open_session`] in a transaction of its own): its token
    /// and CSRF token.
    async fn new_session(&self, uid: u64, now: i64) -> Result<(String, String)> {
        self.store
            .write(move |c| {
                let tx = c.transaction()?;
                let s = open_session(&tx, uid, now)?;
                tx.commit()?;
                Ok::<_, Error>(s)
            })
            .await
    }

    /// Whether `password` is user `uid`'s (checked in the bounded pool), and whether the user
    /// has enrolled the second factor. Errors: [`Error::Busy`] when every check is taken.
    async fn password_matches(&self, uid: u64, password: &str) -> Result<(bool, bool)> {
        let (phc, enrolled) = self
            .store
            .read(move |c| {
                c.query_row(
                    "SELECT password_hash, totp_secret IS NOT NULL FROM users WHERE id = ?1",
                    [uid as i64],
                    |r| Ok((r.get::<_, String>(0)?, r.get::<_, bool>(1)?)),
                )
                .map_err(Error::from)
            })
            .await?;
        let ok = self
            .password_checks
            .verify(password.to_string(), phc)
            .await?;
        Ok((ok, enrolled))
    }

    async fn user_principal(&self, uid: u64) -> Result<Principal> {
        self.store
            .read(move |c| {
                c.query_row(
                    "SELECT id, login, name, kind, institution, responsible, home_institution FROM users
                     WHERE id = ?1",
                    [uid as i64],
                    principal_from_row,
                )
                .map_err(Error::from)
            })
            .await
    }

    /// The user and CSRF token of a live session.
    pub async fn session(&self, token: &str) -> Result<(Principal, String)> {
        let s = self.session_state(token).await?;
        Ok((s.principal, s.csrf))
    }

    /// A live session: its user, CSRF token, when its user last gave their password, and
    /// what they must do before anything else ([`Pending`]).
    /// Errors: [`Error::Unauthenticated`] for an unknown, expired or idle session.
    pub async fn session_state(&self, token: &str) -> Result<SessionState> {
        let hash = token_hash(token);
        let now = self.clock.now_ms();
        let hash2 = hash.clone();
        let today = self.clock.today_jst().to_string();
        let (state, last_seen) = self
            .store
            .read(move |c| {
                let optional = totp::optional_here(c)?;
                c.query_row(
                    "SELECT u.id, u.login, u.name, u.kind, u.institution, u.responsible,
                            u.home_institution, s.csrf,
                            s.last_seen, s.reauth_at, u.must_change_password, s.flash,
                            u.totp_secret IS NOT NULL AS totp
                     FROM sessions s JOIN users u ON u.id = s.user_id
                     WHERE s.token_hash = ?1 AND s.expires_at > ?2 AND s.last_seen > ?3
                       AND u.locked = 0 AND u.deleted_at IS NULL AND u.away = 0
                       AND (u.expires_on IS NULL OR u.expires_on >= ?4)",
                    params![hash2, now, now - SESSION_IDLE_MS, today],
                    |r| {
                        let principal = principal_from_row(r)?;
                        let pending = if r.get::<_, i64>("must_change_password")? != 0 {
                            Some(Pending::ChangePassword)
                        } else if !r.get::<_, bool>("totp")?
                            && !optional
                            && (totp::required_for(principal.kind) || principal.responsible)
                        {
                            Some(Pending::EnrolTotp)
                        } else {
                            None
                        };
                        Ok((
                            SessionState {
                                principal,
                                csrf: r.get("csrf")?,
                                flash: r
                                    .get::<_, Option<String>>("flash")?
                                    .and_then(|f| serde_json::from_str(&f).ok()),
                                reauth_at: r.get("reauth_at")?,
                                pending,
                            },
                            r.get::<_, i64>("last_seen")?,
                        ))
                    },
                )
                .optional()?
                .ok_or(Error::Unauthenticated)
            })
            .await?;
        // Deny by default: an account of a kind this node does not hold (a 厚生労働省職員
        // stored on a hospital node) has no session here, whatever it was given.
        if !policy::kind_belongs(self.role(), state.principal.kind) {
            return Err(Error::Unauthenticated);
        }
        if now - last_seen >= SESSION_TOUCH_MS {
            // A database that refuses writes still serves reads: the session then lapses
            // SESSION_IDLE_MS after its last recorded use, never later.
            let touched = self
                .store
                .write(move |c| {
                    c.execute(
                        "UPDATE sessions SET last_seen = ?2 WHERE token_hash = ?1",
                        params![hash, now],
                    )
                    .map_err(Error::from)
                })
                .await;
            if let Err(e) = touched {
                tracing::warn!(target: "nsdb::accounts", error = %e, "session use not recorded");
            }
        }
        Ok(state)
    }

    /// Keeps `flash` for session `token`'s next page (replacing one not shown yet).
    pub async fn set_flash(&self, token: &str, flash: &Flash) -> Result<()> {
        let (hash, json) = (token_hash(token), serde_json::to_string(flash).ok());
        self.store
            .write(move |c| {
                c.execute(
                    "UPDATE sessions SET flash = ?2 WHERE token_hash = ?1",
                    params![hash, json],
                )?;
                Ok(())
            })
            .await
    }

    /// Forgets session `token`'s notice once a page has shown it.
    pub async fn take_flash(&self, token: &str) -> Result<()> {
        let hash = token_hash(token);
        self.store
            .write(move |c| {
                c.execute(
                    "UPDATE sessions SET flash = NULL WHERE token_hash = ?1",
                    [hash],
                )?;
                Ok(())
            })
            .await
    }

    /// Whether the session's user gave their password (and code) within
    /// [`REAUTH_WINDOW_MS`], as a sensitive action needs.
    pub fn recently_authenticated(&self, s: &SessionState) -> bool {
        self.clock.now_ms() - s.reauth_at <= REAUTH_WINDOW_MS
    }

    /// 再認証: the user of session `token` gives their password, and the code when they have
    /// enrolled, again; sensitive actions are then open for [`REAUTH_WINDOW_MS`]. Audited
    /// `reauth`; a failure `reauth_failed` and it counts toward the lock like a wrong password.
    /// Errors: [`Error::Unauthenticated`]; [`Error::TotpRequired`] when the password is right
    /// and a code is needed but none was given; [`Error::BadCredentials`] for a wrong password
    /// or code, or an account in its cool-down; [`Error::Busy`].
    pub async fn reauthenticate(
        &self,
        token: &str,
        password: &str,
        code: Option<&str>,
    ) -> Result<()> {
        let s = self.session_state(token).await?;
        let uid = s.principal.user_id;
        let (ok, enrolled) = self.password_matches(uid, password).await?;
        let code = code.map(str::trim).filter(|c| !c.is_empty());
        if ok && enrolled && code.is_none() {
            return Err(Error::TotpRequired);
        }
        let (hash, code, now) = (
            token_hash(token),
            code.map(str::to_string),
            self.clock.now_ms(),
        );
        let passed = self
            .store
            .write(move |c| {
                let tx = c.transaction()?;
                let cooling: bool = tx.query_row(
                    "SELECT coalesce(locked_until > ?2, 0) FROM users WHERE id = ?1",
                    params![uid as i64, now],
                    |r| r.get(0),
                )?;
                let refusal = if cooling {
                    Some(Refusal::CoolingDown)
                } else if !ok {
                    Some(Refusal::WrongPassword)
                } else if enrolled
                    && !totp::accept_code(&tx, uid, code.as_deref().unwrap_or(""), now)?
                {
                    Some(Refusal::WrongCode)
                } else {
                    None
                };
                if let Some(refusal) = refusal {
                    refuse_in(&tx, Some(uid), Some(refusal), "reauth_failed", now)?;
                    tx.commit()?;
                    return Ok(false);
                }
                tx.execute(
                    "UPDATE sessions SET reauth_at = ?2 WHERE token_hash = ?1",
                    params![hash, now],
                )?;
                tx.execute(
                    "UPDATE users SET failed_signins = 0 WHERE id = ?1",
                    [uid as i64],
                )?;
                audit::append(
                    &tx,
                    audit::Entry {
                        at_ms: now,
                        user: Some(uid),
                        action: "reauth",
                        target: None,
                        detail: None,
                    },
                )?;
                tx.commit()?;
                Ok::<_, Error>(true)
            })
            .await?;
        if passed {
            Ok(())
        } else {
            Err(Error::BadCredentials)
        }
    }

    /// パスワード変更: user `p` (signed in with session `keep_token`) replaces their password.
    /// The new one must meet [`password_rule::check`] and differ from the current one; the
    /// user's other sessions end, and the must-change mark set by `nsdb user add` is cleared.
    /// Audited `password_change`. Errors: [`Error::BadCredentials`] for a wrong current
    /// password (counted toward the lock, audited `password_change_failed`);
    /// [`Error::Invalid`] with the rule's message for a new password it refuses; [`Error::Busy`].
    pub async fn change_password(
        &self,
        p: &Principal,
        keep_token: &str,
        current: &str,
        new: &str,
    ) -> Result<()> {
        let uid = p.user_id;
        let (ok, _) = self.password_matches(uid, current).await?;
        let now = self.clock.now_ms();
        if !ok {
            self.store
                .write(move |c| {
                    refuse_sign_in(
                        c,
                        Some(uid),
                        Some(Refusal::WrongPassword),
                        "password_change_failed",
                        now,
                    )
                })
                .await?;
            return Err(Error::BadCredentials);
        }
        if current == new {
            return Err(Error::Invalid(
                "新しいパスワードが今のパスワードと同じです。別のパスワードにしてください。".into(),
            ));
        }
        password_rule::check(&p.login, new).map_err(|e| Error::Invalid(e.to_string()))?;
        let hash = hash_password(new)?;
        let keep = token_hash(keep_token);
        // On the hub the registry is here: a clinic doctor's password enters it at once.
        let at_hub = (self.role() == crate::config::NodeRole::Hub)
            .then(|| crate::sync_service::accounts::Institutions::of(self));
        self.store
            .write(move |c| {
                let tx = c.transaction()?;
                tx.execute(
                    // A registry account's new password goes to the hub at the next sync
                    // (`password_pending`), and from there to every node it works at.
                    "UPDATE users SET password_hash = ?2, must_change_password = 0,
                         failed_signins = 0, password_set_at = ?3,
                         password_pending = (account_id IS NOT NULL) WHERE id = ?1",
                    params![uid as i64, hash, now],
                )?;
                if let Some(registry_at) = &at_hub {
                    crate::sync_service::accounts::password_set_at_hub(&tx, registry_at, uid, now)?;
                }
                tx.execute(
                    "DELETE FROM sessions WHERE user_id = ?1 AND token_hash <> ?2",
                    params![uid as i64, keep],
                )?;
                tx.execute(
                    "UPDATE sessions SET reauth_at = ?2 WHERE token_hash = ?1",
                    params![keep, now],
                )?;
                audit::append(
                    &tx,
                    audit::Entry {
                        at_ms: now,
                        user: Some(uid),
                        action: "password_change",
                        target: Some(&uid.to_string()),
                        detail: None,
                    },
                )?;
                tx.commit()?;
                Ok(())
            })
            .await
    }

    /// Marks the user `login` as having a password someone else set (`nsdb user add`): after
    /// their next sign-in they can do nothing but change it. Errors: [`Error::Invalid`] for an
    /// unknown login.
    pub async fn require_password_change(&self, login: &str) -> Result<()> {
        let login = login.to_string();
        self.store
            .write(move |c| {
                let n = c.execute(
                    "UPDATE users SET must_change_password = 1 WHERE login = ?1",
                    [&login],
                )?;
                if n == 0 {
                    return Err(Error::Invalid(format!(
                        "ユーザID「{login}」の利用者が見つかりません。"
                    )));
                }
                Ok(())
            })
            .await
    }

    /// Ends a session.
    pub async fn logout(&self, token: &str) -> Result<()> {
        let hash = token_hash(token);
        let now = self.clock.now_ms();
        self.store
            .write(move |c| {
                let uid: Option<i64> = c
                    .query_row(
                        "DELETE FROM sessions WHERE token_hash = ?1 RETURNING user_id",
                        [hash],
                        |r| r.get(0),
                    )
                    .optional()?;
                if let Some(uid) = uid {
                    audit::append(
                        c,
                        audit::Entry {
                            at_ms: now,
                            user: Some(uid as u64),
                            action: "logout",
                            target: None,
                            detail: None,
                        },
                    )?;
                }
                Ok(())
            })
            .await
    }

    /// The users of the administrator's institution (not deleted), for the API; the screen
    /// uses [`Node::search_users`]. Audited `user_list`.
    pub async fn list_users(&self, p: &Principal) -> Result<Vec<UserRow>> {
        authorize(p, Action::ManageUsers, Target::None)?;
        let rows = self.users_of(p).await?;
        let (uid, now, n) = (p.user_id, self.clock.now_ms(), rows.len());
        self.store
            .write(move |c| {
                audit::append(
                    c,
                    audit::Entry {
                        at_ms: now,
                        user: Some(uid),
                        action: "user_list",
                        target: None,
                        detail: Some(&format!("rows={n}")),
                    },
                )?;
                Ok::<_, Error>(())
            })
            .await?;
        Ok(rows)
    }
}

/// Records a refused sign-in (or re-authentication, or password change: `action` names the
/// audit entry): counts a wrong password or code against a known account (locking it for
/// [`COOL_DOWN_MS`] at the [`LOCK_AFTER_FAILURES`]th) and audits the refusal with its reason.
/// Every refusal does this one write, so that none answers faster than another.
fn refuse_sign_in(
    c: &mut Connection,
    uid: Option<u64>,
    refusal: Option<Refusal>,
    action: &str,
    now: i64,
) -> Result<()> {
    let tx = c.transaction()?;
    refuse_in(&tx, uid, refusal, action, now)?;
    tx.commit()?;
    Ok(())
}

/// [`refuse_sign_in`] inside the caller's transaction.
fn refuse_in(
    tx: &Connection,
    uid: Option<u64>,
    refusal: Option<Refusal>,
    action: &str,
    now: i64,
) -> Result<()> {
    let mut detail = match refusal {
        None => "unknown login",
        Some(Refusal::WrongPassword) => "wrong password",
        Some(Refusal::WrongCode) => "wrong or reused code",
        Some(Refusal::CoolingDown) => "locked after failures",
        Some(Refusal::Locked) => "locked",
        Some(Refusal::Expired) => "expired",
        Some(Refusal::Deleted) => "deleted",
        Some(Refusal::NotHere) => "kind not held by this node",
    };
    if let (Some(uid), Some(Refusal::WrongPassword | Refusal::WrongCode)) = (uid, refusal) {
        let failures: i64 = tx.query_row(
            "UPDATE users SET failed_signins = failed_signins + 1 WHERE id = ?1
             RETURNING failed_signins",
            [uid as i64],
            |r| r.get(0),
        )?;
        if failures >= LOCK_AFTER_FAILURES {
            tx.execute(
                "UPDATE users SET failed_signins = 0, locked_until = ?2 WHERE id = ?1",
                params![uid as i64, now + COOL_DOWN_MS],
            )?;
            detail = if refusal == Some(Refusal::WrongCode) {
                "wrong or reused code; locked for 15 minutes"
            } else {
                "wrong password; locked for 15 minutes"
            };
        }
    }
    audit::append(
        tx,
        audit::Entry {
            at_ms: now,
            user: uid,
            action,
            target: None,
            detail: Some(detail),
        },
    )?;
    Ok(())
}

/// Opens a session for user `uid` inside the caller's transaction: ends idle and expired
/// sessions and the user's oldest beyond [`MAX_SESSIONS_PER_USER`], clears the failure count,
/// audits `login`. Returns the token (for the cookie or bearer) and the CSRF token.
fn open_session(tx: &Connection, uid: u64, now: i64) -> Result<(String, String)> {
    let token = random_hex();
    let csrf = random_hex();
    let hash = token_hash(&token);
    tx.execute(
        "DELETE FROM sessions WHERE expires_at < ?1 OR last_seen < ?2",
        params![now, now - SESSION_IDLE_MS],
    )?;
    tx.execute(
        "UPDATE users SET failed_signins = 0, locked_until = NULL WHERE id = ?1",
        [uid as i64],
    )?;
    // The oldest sessions beyond the limit end (the new one counts).
    tx.execute(
        "DELETE FROM sessions WHERE user_id = ?1 AND token_hash NOT IN (
             SELECT token_hash FROM sessions WHERE user_id = ?1
             ORDER BY created_at DESC, rowid DESC LIMIT ?2)",
        params![uid as i64, MAX_SESSIONS_PER_USER - 1],
    )?;
    tx.execute(
        "INSERT INTO sessions (token_hash, user_id, csrf, created_at, expires_at, last_seen,
                               reauth_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?4, ?4)",
        params![hash, uid as i64, csrf, now, now + SESSION_TTL_MS],
    )?;
    audit::append(
        tx,
        audit::Entry {
            at_ms: now,
            user: Some(uid),
            action: "login",
            target: None,
            detail: None,
        },
    )?;
    Ok((token, csrf))
}

/// The code step of a sign-in, in one transaction: refused while the account is in its
/// cool-down or locked; a wrong or reused code counts toward the lock (audited `totp_failed`);
/// a right one opens the session (and ends the `challenge`, when there is one). `None` when
/// refused.
fn second_factor_then_session(
    c: &mut Connection,
    uid: u64,
    code: &str,
    challenge: Option<&[u8]>,
    now: i64,
) -> Result<Option<(String, String)>> {
    let tx = c.transaction()?;
    let (cooling, locked): (bool, bool) = tx.query_row(
        "SELECT coalesce(locked_until > ?2, 0), locked FROM users WHERE id = ?1",
        params![uid as i64, now],
        |r| Ok((r.get(0)?, r.get::<_, i64>(1)? != 0)),
    )?;
    let refusal = if cooling {
        Some(Refusal::CoolingDown)
    } else if locked {
        Some(Refusal::Locked)
    } else if !totp::accept_code(&tx, uid, code, now)? {
        Some(Refusal::WrongCode)
    } else {
        None
    };
    if let Some(refusal) = refusal {
        refuse_in(&tx, Some(uid), Some(refusal), "totp_failed", now)?;
        tx.commit()?;
        return Ok(None);
    }
    if let Some(challenge) = challenge {
        tx.execute(
            "DELETE FROM sign_in_challenges WHERE token_hash = ?1",
            [challenge],
        )?;
    }
    let s = open_session(&tx, uid, now)?;
    tx.commit()?;
    Ok(Some(s))
}

/// An Argon2id hash of a random password nobody knows, verified against when a login does not
/// exist so that a failed sign-in takes the same time either way.
static DUMMY_HASH: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| hash_password(&random_hex()).unwrap_or_default());

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::NodeRole;

    #[test]
    fn a_new_account_holds_a_kind_its_node_holds_and_its_own_institution() {
        let own = "1399000036";
        let check = |node, kind, inst: Option<&str>| {
            check_new_user(node, own, "u", "鈴木 太郎", kind, inst, None)
        };
        for kind in [UserKind::NanbyoDoctor, UserKind::Clerk, UserKind::Admin] {
            assert_eq!(check(NodeRole::Hospital, kind, None), Ok(()));
        }
        for kind in [UserKind::Ministry, UserKind::Reviewer, UserKind::PaperEntry] {
            let e = check(NodeRole::Hospital, kind, None).unwrap_err();
            assert_eq!(e.field(), "kind", "{e}");
        }
        assert_eq!(
            check(NodeRole::Municipality, UserKind::Reviewer, None),
            Ok(())
        );
        assert!(check(NodeRole::Municipality, UserKind::NanbyoDoctor, None).is_err());
        // The hub: its own staff, and clinics' doctors and clerks with the clinic's code.
        assert_eq!(check(NodeRole::Hub, UserKind::Ministry, None), Ok(()));
        assert_eq!(
            check(NodeRole::Hub, UserKind::PaperEntry, Some(own)),
            Ok(())
        );
        assert!(check(NodeRole::Hub, UserKind::NanbyoDoctor, None).is_err());
        assert_eq!(
            check(NodeRole::Hub, UserKind::Clerk, Some("1399000028")),
            Ok(())
        );
        let e = check(NodeRole::Hub, UserKind::Ministry, Some("1399000028")).unwrap_err();
        assert_eq!(e.field(), "kind");
        // Another institution only on the hub.
        let e = check(
            NodeRole::Hospital,
            UserKind::NanbyoDoctor,
            Some("1399000028"),
        )
        .unwrap_err();
        assert_eq!(e.field(), "institution");
        assert!(e.to_string().contains("1399000028"), "{e}");
        // Names: not empty, at most MAX_NAME_CHARS, counted in characters.
        let name =
            |n: &str| check_new_user(NodeRole::Hospital, own, "u", n, UserKind::Clerk, None, None);
        assert_eq!(name(" \u{3000}"), Err(NewUserRefused::EmptyName));
        assert_eq!(name("テ\nスト"), Err(NewUserRefused::ControlInName));
        assert_eq!(name("テ\u{7}スト"), Err(NewUserRefused::ControlInName));
        assert_eq!(
            check_new_user(
                NodeRole::Hospital,
                own,
                "u",
                "x",
                UserKind::Clerk,
                None,
                Some("内\n科")
            ),
            Err(NewUserRefused::ControlInDepartment)
        );
        assert_eq!(name(&"名".repeat(MAX_NAME_CHARS)), Ok(()));
        assert_eq!(
            name(&"名".repeat(MAX_NAME_CHARS + 1)),
            Err(NewUserRefused::LongName {
                chars: MAX_NAME_CHARS + 1
            })
        );
        assert_eq!(
            check_new_user(
                NodeRole::Hospital,
                own,
                "a b",
                "x",
                UserKind::Clerk,
                None,
                None
            ),
            Err(NewUserRefused::Login)
        );
    }

    #[test]
    fn every_kind_a_new_account_may_have_signs_in_on_that_node() {
        for node in [NodeRole::Hospital, NodeRole::Municipality, NodeRole::Hub] {
            for kind in UserKind::ALL {
                let inst = (node == NodeRole::Hub
                    && matches!(kind.role(), policy::Role::Doctor | policy::Role::Clerk))
                .then_some("1399000028");
                if check_new_user(node, "1399000036", "u", "x", kind, inst, None).is_ok() {
                    assert!(policy::kind_belongs(node, kind), "{node:?} {kind:?}");
                }
            }
        }
    }

    #[test]
    fn a_check_in_reused_memory_agrees_with_the_plain_check() {
        use argon2::password_hash::PasswordVerifier;
        let phc = hash_password("hinoki-kage 7 tsuki").unwrap();
        let mut blocks = Vec::new();
        assert!(verify_in("hinoki-kage 7 tsuki", &phc, &mut blocks));
        assert!(!verify_in("hinoki-kage 7 tsukj", &phc, &mut blocks));
        assert!(verify_in("hinoki-kage 7 tsuki", &phc, &mut blocks));
        let parsed = PasswordHash::new(&phc).unwrap();
        assert!(
            Argon2::default()
                .verify_password(b"hinoki-kage 7 tsuki", &parsed)
                .is_ok()
        );
        assert!(!verify_in("x", "not a hash", &mut blocks));
        assert_eq!(blocks.len(), argon2::Params::DEFAULT.block_count());
    }
}
