//! Accounts: institutions, users, passwords (Argon2id) and server-side sessions.
//!
//! A session token is 32 random bytes handed to the browser (cookie) or API client (bearer);
//! only its SHA-256 is stored, so a copy of the database cannot be used to sign in. Passwords
//! and tokens must never be logged.

pub mod password_rule;
pub mod policy;

use argon2::password_hash::{PasswordHash, PasswordHasher, SaltString};
use argon2::{Argon2, password_hash::rand_core::OsRng};
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::accounts::policy::{Action, Principal, Target, UserKind, authorize};
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

/// Consecutive wrong passwords that lock an account (10).
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
    conn.execute(
        "INSERT INTO users (login, name, kind, institution, department, password_hash, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            u.login,
            u.name,
            u.kind.as_str(),
            u.institution,
            u.department,
            u.password_hash,
            now_ms
        ],
    )?;
    Ok(conn.last_insert_rowid() as u64)
}

pub use password_rule::MIN_PASSWORD_CHARS;

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
    if login.trim().is_empty() || login.chars().any(char::is_whitespace) {
        return Err(Error::Invalid(
            "ユーザIDは空白を含まない文字列にしてください。".into(),
        ));
    }
    password_rule::check(login, password).map_err(|e| Error::Invalid(e.to_string()))?;
    let hash = hash_password(password)?;
    let own = &node.config.institution;
    let (inst_code, inst_name) = match institution {
        Some(code) if code != own.code => (code.to_string(), code.to_string()),
        _ => (own.code.clone(), own.name.clone()),
    };
    let mut kind_of_node = node.role().institution_kind();
    // On the hub, another institution's account is a clinic's (M18): its doctors and clerks.
    if node.role() == crate::config::NodeRole::Hub && inst_code != own.code {
        if !matches!(kind.role(), policy::Role::Doctor | policy::Role::Clerk) {
            return Err(Error::Invalid(format!(
                "ハブで医療機関（{inst_code}）の利用者として登録できるのは、指定医と医療クラーク等だけです（{}は登録できません）。",
                kind.label()
            )));
        }
        kind_of_node = "hospital";
    }
    let (login, name, department) = (
        login.to_string(),
        name.to_string(),
        department.map(str::to_string),
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

/// A user as the administrator's user list shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct UserRow {
    pub id: u64,
    pub login: String,
    pub name: String,
    pub kind: UserKind,
    pub institution: String,
    pub department: Option<String>,
    pub locked: bool,
    pub expires_on: Option<String>,
}

struct StoredUser {
    principal: Principal,
    password_hash: String,
    locked: bool,
    expires_on: Option<String>,
    locked_until: Option<i64>,
}

/// Why a sign-in with a known login was refused, for the audit log only: the person signing in
/// is told the same thing in every case (see [`Error::BadCredentials`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    WrongPassword,
    CoolingDown,
    Locked,
    Expired,
}

fn principal_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Principal> {
    let kind: String = r.get("kind")?;
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
        institution: r.get("institution")?,
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

    /// Signs a user in with login id and password.
    ///
    /// Errors: [`Error::BadCredentials`] for an unknown login, a wrong password, an account
    /// locked (by an administrator or for [`COOL_DOWN_MS`] after [`LOCK_AFTER_FAILURES`] wrong
    /// passwords) or expired, all alike in words and in work done, so the answer never tells
    /// whether the password was right; [`Error::Busy`] when the password checks are all taken.
    pub async fn login(&self, login: &str, password: &str) -> Result<LoginSession> {
        let login_owned = login.to_string();
        let found = self
            .store
            .read(move |c| {
                c.query_row(
                    "SELECT id, login, name, kind, institution, password_hash, locked, expires_on,
                            locked_until
                     FROM users WHERE login = ?1",
                    [&login_owned],
                    |r| {
                        Ok(StoredUser {
                            principal: principal_from_row(r)?,
                            password_hash: r.get("password_hash")?,
                            locked: r.get::<_, i64>("locked")? != 0,
                            expires_on: r.get("expires_on")?,
                            locked_until: r.get("locked_until")?,
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
            } else if u.locked {
                Some(Refusal::Locked)
            } else if u.expires_on.as_deref().is_some_and(|e| e < today.as_str()) {
                Some(Refusal::Expired)
            } else {
                None
            }
        });
        let user = match (found, refusal) {
            (Some(u), None) => u,
            (other, refusal) => {
                let uid = other.map(|u| u.principal.user_id);
                self.store
                    .write(move |c| refuse_sign_in(c, uid, refusal, now))
                    .await?;
                self.metrics.sign_in_failed();
                return Err(Error::BadCredentials);
            }
        };
        let token = random_hex();
        let csrf = random_hex();
        let (hash, csrf2, uid) = (token_hash(&token), csrf.clone(), user.principal.user_id);
        self.store
            .write(move |c| {
                let tx = c.transaction()?;
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
                    "INSERT INTO sessions (token_hash, user_id, csrf, created_at, expires_at,
                                           last_seen)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?4)",
                    params![hash, uid as i64, csrf2, now, now + SESSION_TTL_MS],
                )?;
                audit::append(
                    &tx,
                    audit::Entry {
                        at_ms: now,
                        user: Some(uid),
                        action: "login",
                        target: None,
                        detail: None,
                    },
                )?;
                tx.commit()?;
                Ok::<_, Error>(())
            })
            .await?;
        Ok(LoginSession {
            token,
            csrf,
            principal: user.principal,
        })
    }

    /// The user and CSRF token of a live session.
    pub async fn session(&self, token: &str) -> Result<(Principal, String)> {
        let hash = token_hash(token);
        let now = self.clock.now_ms();
        let hash2 = hash.clone();
        let (principal, csrf, last_seen) = self
            .store
            .read(move |c| {
                c.query_row(
                    "SELECT u.id, u.login, u.name, u.kind, u.institution, s.csrf, s.last_seen
                     FROM sessions s JOIN users u ON u.id = s.user_id
                     WHERE s.token_hash = ?1 AND s.expires_at > ?2 AND s.last_seen > ?3
                       AND u.locked = 0",
                    params![hash2, now, now - SESSION_IDLE_MS],
                    |r| {
                        Ok((
                            principal_from_row(r)?,
                            r.get::<_, String>("csrf")?,
                            r.get::<_, i64>("last_seen")?,
                        ))
                    },
                )
                .optional()?
                .ok_or(Error::Unauthenticated)
            })
            .await?;
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
        Ok((principal, csrf))
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

    /// The users of the administrator's institution.
    pub async fn list_users(&self, p: &Principal) -> Result<Vec<UserRow>> {
        authorize(p, Action::ManageUsers, Target::None)?;
        let inst = p.institution.clone();
        self.store
            .read(move |c| {
                let mut st = c.prepare(
                    "SELECT id, login, name, kind, institution, department, locked, expires_on
                     FROM users WHERE institution = ?1 ORDER BY kind, login",
                )?;
                let rows = st
                    .query_map([inst], |r| {
                        let p = principal_from_row(r)?;
                        Ok(UserRow {
                            id: p.user_id,
                            login: p.login,
                            name: p.name,
                            kind: p.kind,
                            institution: p.institution,
                            department: r.get("department")?,
                            locked: r.get::<_, i64>("locked")? != 0,
                            expires_on: r.get("expires_on")?,
                        })
                    })?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                Ok(rows)
            })
            .await
    }
}

/// Records a refused sign-in: counts a wrong password against a known account (locking it for
/// [`COOL_DOWN_MS`] at the [`LOCK_AFTER_FAILURES`]th) and audits the refusal with its reason.
/// Every refusal does this one write, so that none answers faster than another.
fn refuse_sign_in(
    c: &mut Connection,
    uid: Option<u64>,
    refusal: Option<Refusal>,
    now: i64,
) -> Result<()> {
    let tx = c.transaction()?;
    let mut detail = match refusal {
        None => "unknown login",
        Some(Refusal::WrongPassword) => "wrong password",
        Some(Refusal::CoolingDown) => "locked after failures",
        Some(Refusal::Locked) => "locked",
        Some(Refusal::Expired) => "expired",
    };
    if let (Some(uid), Some(Refusal::WrongPassword)) = (uid, refusal) {
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
            detail = "wrong password; locked for 15 minutes";
        }
    }
    audit::append(
        &tx,
        audit::Entry {
            at_ms: now,
            user: uid,
            action: "login_failed",
            target: None,
            detail: Some(detail),
        },
    )?;
    tx.commit()?;
    Ok(())
}

/// An Argon2id hash of a random password nobody knows, verified against when a login does not
/// exist so that a failed sign-in takes the same time either way.
static DUMMY_HASH: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| hash_password(&random_hex()).unwrap_or_default());

#[cfg(test)]
mod tests {
    use super::*;

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
