//! Accounts: institutions, users, passwords (Argon2id) and server-side sessions.
//!
//! A session token is 32 random bytes handed to the browser (cookie) or API client (bearer);
//! only its SHA-256 is stored, so a copy of the database cannot be used to sign in. Passwords
//! and tokens must never be logged.

pub mod policy;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Argon2, password_hash::rand_core::OsRng};
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::accounts::policy::{Action, Principal, Target, UserKind, authorize};
use crate::audit;
use crate::{Error, Node, Result};

/// How long a session lasts without signing in again.
pub const SESSION_TTL_MS: i64 = 8 * 60 * 60 * 1000;

/// Hashes a password with Argon2id and a fresh salt (PHC string).
pub fn hash_password(password: &str) -> Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| Error::Invalid(format!("パスワードを保存できません: {e}")))
}

fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
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

/// The shortest password a real account may have (the demo's `demo` is seeded directly).
pub const MIN_PASSWORD_CHARS: usize = 10;

/// Adds a user at `institution` (default: the node's own), with a password of at least
/// `MIN_PASSWORD_CHARS` characters. The addition is audited.
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
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(Error::Invalid(format!(
            "パスワードは{MIN_PASSWORD_CHARS}文字以上にしてください。"
        )));
    }
    let hash = hash_password(password)?;
    let own = &node.config.institution;
    let (inst_code, inst_name) = match institution {
        Some(code) if code != own.code => (code.to_string(), code.to_string()),
        _ => (own.code.clone(), own.name.clone()),
    };
    let kind_of_node = node.role().institution_kind();
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
    /// Signs a user in with login id and password.
    pub async fn login(&self, login: &str, password: &str) -> Result<LoginSession> {
        let login_owned = login.to_string();
        let found = self
            .store
            .read(move |c| {
                c.query_row(
                    "SELECT id, login, name, kind, institution, password_hash, locked, expires_on
                     FROM users WHERE login = ?1",
                    [&login_owned],
                    |r| {
                        Ok(StoredUser {
                            principal: principal_from_row(r)?,
                            password_hash: r.get("password_hash")?,
                            locked: r.get::<_, i64>("locked")? != 0,
                            expires_on: r.get("expires_on")?,
                        })
                    },
                )
                .optional()
                .map_err(Error::from)
            })
            .await?;
        // Verify even for an unknown login, so timing does not tell which logins exist.
        let phc = found
            .as_ref()
            .map(|u| u.password_hash.clone())
            .unwrap_or_else(|| DUMMY_HASH.clone());
        let password = password.to_string();
        let ok = tokio::task::spawn_blocking(move || verify_password(&password, &phc))
            .await
            .unwrap_or(false);
        let now = self.clock.now_ms();
        let user = match found {
            Some(u) if ok => u,
            other => {
                let uid = other.map(|u| u.principal.user_id);
                self.store
                    .write(move |c| {
                        audit::append(
                            c,
                            audit::Entry {
                                at_ms: now,
                                user: uid,
                                action: "login_failed",
                                target: None,
                                detail: None,
                            },
                        )
                        .map_err(Error::from)
                    })
                    .await?;
                self.metrics.sign_in_failed();
                return Err(Error::BadCredentials);
            }
        };
        if user.locked {
            self.metrics.sign_in_failed();
            return Err(Error::Locked);
        }
        if let Some(exp) = &user.expires_on
            && exp.as_str() < self.clock.today_jst().to_string().as_str()
        {
            self.metrics.sign_in_failed();
            return Err(Error::Expired);
        }
        let token = random_hex();
        let csrf = random_hex();
        let (hash, csrf2, uid) = (token_hash(&token), csrf.clone(), user.principal.user_id);
        self.store
            .write(move |c| {
                let tx = c.transaction()?;
                tx.execute("DELETE FROM sessions WHERE expires_at < ?1", [now])?;
                tx.execute(
                    "INSERT INTO sessions (token_hash, user_id, csrf, created_at, expires_at)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
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
        self.store
            .read(move |c| {
                c.query_row(
                    "SELECT u.id, u.login, u.name, u.kind, u.institution, s.csrf
                     FROM sessions s JOIN users u ON u.id = s.user_id
                     WHERE s.token_hash = ?1 AND s.expires_at > ?2 AND u.locked = 0",
                    params![hash, now],
                    |r| Ok((principal_from_row(r)?, r.get::<_, String>("csrf")?)),
                )
                .optional()?
                .ok_or(Error::Unauthenticated)
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

/// An Argon2id hash of a random password nobody knows, verified against when a login does not
/// exist so that a failed sign-in takes the same time either way.
static DUMMY_HASH: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| hash_password(&random_hex()).unwrap_or_default());
