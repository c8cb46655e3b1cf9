//! The second factor: time-based one-time codes (TOTP, RFC 6238: HMAC-SHA-1, 6 digits, 30 s
//! steps, codes of the step before and after accepted for clock drift), computed by `totp-rs`.
//!
//! Enrolment shows a fresh secret once (QR code and base32 text) and makes it active only when
//! a code from it was typed, so a mistyped enrolment locks nobody out. A code is accepted only
//! for a time step later than the last one accepted for the user, so a code seen over a
//! shoulder cannot be used again. Secrets live in the (encrypted) database; this module must
//! never log a secret or a code.

use rusqlite::{Connection, OptionalExtension, params};
use totp_rs::{Algorithm, TOTP};

use crate::accounts::policy::{Action, Principal, Target, UserKind, authorize};
use crate::audit;
use crate::{Error, Node, Result};

/// Seconds per time step (30, RFC 6238's default, what authenticator apps assume).
pub const TOTP_STEP_S: i64 = 30;

/// Digits per code (6).
pub const TOTP_DIGITS: usize = 6;

/// Bytes of a new secret (20: 160 bits, the HMAC-SHA-1 block RFC 4226 recommends).
const SECRET_BYTES: usize = 20;

/// How long the half-signed-in state lasts between a right password and the code (5 minutes).
pub const CHALLENGE_MS: i64 = 5 * 60 * 1000;

/// Whether accounts of `kind` must use the second factor: 責任者 (they manage accounts) and
/// municipal staff (自治体職員, they reach every sheet their municipality resolved).
pub fn required_for(kind: UserKind) -> bool {
    matches!(kind, UserKind::Admin | UserKind::Reviewer)
}

fn generator(secret: &[u8], login: &str) -> TOTP {
    TOTP::new_unchecked(
        Algorithm::SHA1,
        TOTP_DIGITS,
        0,
        TOTP_STEP_S as u64,
        secret.to_vec(),
        Some("nsdb".into()),
        login.replace(':', "_"),
    )
}

/// The code of `secret` at `at_ms` (Unix ms): what an authenticator app shows then. For tests
/// and for the demo's instructions.
pub fn code_at(secret: &[u8], at_ms: i64) -> String {
    generator(secret, "").generate((at_ms.max(0) / 1000) as u64)
}

/// The code at `at_ms` of a secret given in base32 as the enrolment screen shows it; `None`
/// when `secret_base32` is not base32. What an authenticator app computes, for tests.
pub fn code_at_base32(secret_base32: &str, at_ms: i64) -> Option<String> {
    let bytes = totp_rs::Secret::Encoded(secret_base32.trim().to_string())
        .to_bytes()
        .ok()?;
    Some(code_at(&bytes, at_ms))
}

/// The time step (Unix s / [`TOTP_STEP_S`]) among the one of `now_ms` and its two neighbours
/// whose code is `code`, if it is later than `after` (the last step accepted). The comparison
/// takes the same time wherever the digits differ.
pub fn matching_step(secret: &[u8], code: &str, now_ms: i64, after: Option<i64>) -> Option<i64> {
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    if code.len() != TOTP_DIGITS || !code.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let now_step = now_ms.max(0) / 1000 / TOTP_STEP_S;
    let totp = generator(secret, "");
    (now_step - 1..=now_step + 1)
        .filter(|s| *s >= 0 && after.is_none_or(|a| *s > a))
        .find(|s| totp.check(&code, (*s * TOTP_STEP_S) as u64))
}

/// A secret shown once on the enrolment screen.
#[derive(Debug, Clone)]
pub struct Enrolment {
    /// The secret in base32 (RFC 4648, no padding), for typing into an app by hand.
    pub secret_base32: String,
    /// `otpauth://totp/nsdb:LOGIN?secret=…&issuer=nsdb`, what the QR code holds.
    pub uri: String,
    /// The QR code of `uri` as an SVG element (no XML declaration), to put inline in a page.
    pub qr_svg: String,
}

/// Whether a user uses the second factor and whether they must.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TotpStatus {
    pub enrolled: bool,
    pub required: bool,
}

/// Whether this node asks nobody for the second factor by rule: set by the demo's seed
/// (`node_meta` `totp_optional`), so that every demo user signs in with the documented
/// password; users may still enrol.
pub(crate) fn optional_here(c: &Connection) -> rusqlite::Result<bool> {
    Ok(c.query_row(
        "SELECT count(*) FROM node_meta WHERE key = 'totp_optional'",
        [],
        |r| r.get::<_, i64>(0),
    )? > 0)
}

/// Marks this node as one where the second factor is optional for everyone (the demo).
pub fn make_optional_here(c: &Connection) -> rusqlite::Result<()> {
    c.execute(
        "INSERT INTO node_meta (key, value) VALUES ('totp_optional', '1')
         ON CONFLICT(key) DO NOTHING",
        [],
    )?;
    Ok(())
}

/// Checks `code` for user `uid` inside a write transaction and, when it matches a step later
/// than the last one accepted, records that step. `Ok(false)` for a wrong or reused code or a
/// user without a secret.
pub(crate) fn accept_code(c: &Connection, uid: u64, code: &str, now_ms: i64) -> Result<bool> {
    let row: Option<(Option<Vec<u8>>, Option<i64>)> = c
        .query_row(
            "SELECT totp_secret, totp_last_step FROM users WHERE id = ?1",
            [uid as i64],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let Some((Some(secret), last)) = row else {
        return Ok(false);
    };
    match matching_step(&secret, code, now_ms, last) {
        Some(step) => {
            c.execute(
                "UPDATE users SET totp_last_step = ?2 WHERE id = ?1",
                params![uid as i64, step],
            )?;
            Ok(true)
        }
        None => Ok(false),
    }
}

fn qr_svg(uri: &str) -> Result<String> {
    let code = qrcode::QrCode::new(uri.as_bytes())
        .map_err(|e| Error::Invalid(format!("QRコードを作れません: {e}")))?;
    let svg = code
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(200, 200)
        .quiet_zone(true)
        .build();
    Ok(match svg.find("<svg") {
        Some(i) => svg[i..].to_string(),
        None => svg,
    })
}

impl Node {
    /// Whether `p` uses the second factor, and whether they must before doing anything else.
    pub async fn totp_status(&self, p: &Principal) -> Result<TotpStatus> {
        let (uid, kind, responsible) = (p.user_id, p.kind, p.responsible);
        self.store
            .read(move |c| {
                let enrolled: bool = c.query_row(
                    "SELECT totp_secret IS NOT NULL FROM users WHERE id = ?1",
                    [uid as i64],
                    |r| r.get(0),
                )?;
                Ok(TotpStatus {
                    enrolled,
                    required: (required_for(kind) || responsible) && !optional_here(c)?,
                })
            })
            .await
    }

    /// Starts (or starts again) `p`'s enrolment: a new random secret, kept as pending until
    /// [`Node::confirm_totp`]; any earlier pending secret is forgotten. Errors:
    /// [`Error::Invalid`] when `p` is enrolled already (a 責任者 resets it first).
    pub async fn begin_totp(&self, p: &Principal) -> Result<Enrolment> {
        let secret: [u8; SECRET_BYTES] = rand::random();
        let uid = p.user_id;
        let stored = secret.to_vec();
        self.store
            .write(move |c| {
                let n = c.execute(
                    "UPDATE users SET totp_pending = ?2 WHERE id = ?1 AND totp_secret IS NULL",
                    params![uid as i64, stored],
                )?;
                if n == 0 {
                    return Err(Error::Invalid(
                        "2段階認証は設定済みです。設定し直すときは、所属の責任者に初期化を依頼してください。"
                            .into(),
                    ));
                }
                Ok(())
            })
            .await?;
        let totp = generator(&secret, &p.login);
        let uri = totp.get_url();
        Ok(Enrolment {
            secret_base32: totp.get_secret_base32(),
            qr_svg: qr_svg(&uri)?,
            uri,
        })
    }

    /// Makes `p`'s pending secret active when `code` is its code now (±1 step). The code's
    /// step is not recorded as used: the first sign-in after enrolment may use the code the app
    /// still shows. Audited `totp_enrolled`. Errors: [`Error::Invalid`] for a wrong code (the pending secret stays,
    /// so the user can try again) or when no enrolment was started.
    pub async fn confirm_totp(&self, p: &Principal, code: &str) -> Result<()> {
        let (uid, code, now) = (p.user_id, code.to_string(), self.clock.now_ms());
        self.store
            .write(move |c| {
                let tx = c.transaction()?;
                let pending: Option<Vec<u8>> = tx
                    .query_row(
                        "SELECT totp_pending FROM users WHERE id = ?1 AND totp_secret IS NULL",
                        [uid as i64],
                        |r| r.get(0),
                    )
                    .optional()?
                    .flatten();
                let Some(pending) = pending else {
                    return Err(Error::Invalid(
                        "設定を始め直してください（この画面を開き直すと、新しいQRコードが表示されます）。"
                            .into(),
                    ));
                };
                if matching_step(&pending, &code, now, None).is_none() {
                    return Err(Error::Invalid(
                        "確認コードが違います。アプリに今表示されている6桁の数字を入力してください（端末の時刻がずれていると合いません）。"
                            .into(),
                    ));
                }
                // The enrolment's code is not a sign-in: it does not use up its time step.
                // Recording it did, and a user who signed out and in again at once was refused
                // the code their app still showed (up to 90 s with the drift window), and
                // each retry counted toward the 15-minute lock.
                tx.execute(
                    "UPDATE users SET totp_secret = totp_pending, totp_pending = NULL,
                         totp_last_step = NULL WHERE id = ?1",
                    [uid as i64],
                )?;
                audit::append(
                    &tx,
                    audit::Entry {
                        at_ms: now,
                        user: Some(uid),
                        action: "totp_enrolled",
                        target: Some(&uid.to_string()),
                        detail: None,
                    },
                )?;
                tx.commit()?;
                Ok(())
            })
            .await
    }

    /// Removes the second factor of the user `login` (a lost phone): they sign in with the
    /// password alone and, when the factor is required for them, enrol again at once. `by` is
    /// the 責任者 doing it from the user list (who must manage that user's institution), or
    /// `None` from the command line (`nsdb user reset-totp`). Audited `totp_reset`.
    /// Returns whether there was anything to remove: `false` (nothing changed, nothing
    /// audited) for a user who never enrolled or had only started to.
    /// Errors: [`Error::Denied`], [`Error::Invalid`] for an unknown login.
    pub async fn reset_totp(&self, by: Option<&Principal>, login: &str) -> Result<bool> {
        if let Some(p) = by {
            authorize(p, Action::ManageUsers, Target::None)?;
            // Taking away one's own second factor would let a stolen password do the same:
            // another administrator, or the operator's command, does it.
            if p.login == login {
                return Err(Error::Invalid(
                    "ご自身の2段階認証は初期化できません。別の責任者に依頼するか、サーバの管理者が nsdb user reset-totp で初期化してください。".into(),
                ));
            }
        }
        let scope = by.map(|p| p.institution.clone());
        let by_id = by.map(|p| p.user_id);
        let (login, now) = (login.to_string(), self.clock.now_ms());
        self.store
            .write(move |c| {
                let tx = c.transaction()?;
                let found: Option<(i64, bool)> = tx
                    .query_row(
                        "SELECT id, totp_secret IS NOT NULL OR totp_pending IS NOT NULL
                         FROM users WHERE login = ?1
                           AND (?2 IS NULL OR institution = ?2)",
                        params![login, scope],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .optional()?;
                let Some((uid, enrolled)) = found else {
                    return Err(Error::Invalid(format!(
                        "ユーザID「{login}」の利用者が見つかりません。"
                    )));
                };
                if !enrolled {
                    return Ok(false);
                }
                tx.execute(
                    "UPDATE users SET totp_secret = NULL, totp_pending = NULL,
                         totp_last_step = NULL WHERE id = ?1",
                    [uid],
                )?;
                audit::append(
                    &tx,
                    audit::Entry {
                        at_ms: now,
                        user: by_id,
                        action: "totp_reset",
                        target: Some(&uid.to_string()),
                        detail: None,
                    },
                )?;
                tx.commit()?;
                Ok(true)
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238, appendix B: the SHA-1 secret "12345678901234567890" at T = 59 s gives
    /// 94287082 (8 digits); its last six are the 6-digit code.
    #[test]
    fn codes_follow_rfc_6238() {
        let secret = b"12345678901234567890";
        assert_eq!(code_at(secret, 59_000), "287082");
        assert_eq!(code_at(secret, 1_111_111_109_000), "081804");
    }

    #[test]
    fn a_code_matches_its_step_and_its_neighbours_only_once_each() {
        let secret = b"12345678901234567890";
        let now = 1_111_111_109_000;
        let step = now / 1000 / TOTP_STEP_S;
        let code = code_at(secret, now);
        assert_eq!(matching_step(secret, &code, now, None), Some(step));
        assert_eq!(matching_step(secret, &code, now, Some(step)), None);
        let next = code_at(secret, now + 30_000);
        assert_eq!(
            matching_step(secret, &next, now, Some(step)),
            Some(step + 1)
        );
        assert_eq!(matching_step(secret, &code, now + 90_000, None), None);
        assert_eq!(matching_step(secret, "12345", now, None), None);
        assert_eq!(matching_step(secret, "abcdef", now, None), None);
    }
}
