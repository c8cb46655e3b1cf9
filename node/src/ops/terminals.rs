//! 端末証明書: the terminal certificates a node can require of every browser that reaches it
//! (`tls.client_certs = "required"`, the seed's 「クライアント証明書により許可された端末のみ、
//! アクセスを可能とする」). The node's terminal CA is made on first use and kept, key included,
//! only in the encrypted database (table `terminal_ca`, migration 025); every certificate issued
//! is listed in `terminal_certs` with its 端末名, institution, who issued it and when, its end of
//! validity and, once revoked, when and by whom. Issuing hands back a PKCS#12 file under a
//! one-time password; the node keeps neither the terminal's key nor the password.
//!
//! The 責任者 (`ManageUsers`) issues, lists and revokes the certificates of their institution on
//! the 端末証明書 screen; the IT staff do the same for the whole node with `nsdb terminal`
//! (`by` = `None`). Every issue, list, download and revocation is audited (`terminal_issue`,
//! `terminal_list`, `terminal_download`, `terminal_revoke`) with serials and user ids only,
//! never a password or a key. A revocation loads a new CRL into the listener's gate
//! ([`crate::ops::tls::TerminalGate`]) at once.

use rusqlite::{Connection, OptionalExtension, params};

use crate::accounts::policy::{Action, Principal, Target, authorize};
use crate::audit;
use crate::{Error, Node, Result};
use nsdb_provisioning::terminal::{
    Revoked, TERMINAL_CERT_DAYS, TerminalCa, TerminalCert, one_time_password, pkcs12,
};

/// How long the issued PKCS#12 file waits for its one download from the 端末証明書 screen
/// (10 minutes); then it is forgotten (the certificate stays issued; revoke it and issue again).
pub const DOWNLOAD_WINDOW_MS: i64 = 10 * 60 * 1000;

/// Characters a 端末名 may have at most.
pub const NAME_MAX_CHARS: usize = 40;

/// One terminal certificate as the list shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TerminalCertRow {
    /// The serial (32 hexadecimal characters).
    pub serial: String,
    /// 端末名, e.g. 「外来3番」.
    pub name: String,
    pub institution: String,
    /// Who issued it (None: an operator with `nsdb terminal issue`).
    pub issued_by: Option<u64>,
    /// Unix ms.
    pub issued_at: i64,
    /// End of validity, Unix seconds.
    pub not_after: i64,
    /// Unix ms, once revoked.
    pub revoked_at: Option<i64>,
}

impl TerminalCertRow {
    /// 有効 (valid at `now_ms`), 失効 (revoked) or 期限切れ (past its validity).
    pub fn state(&self, now_ms: i64) -> &'static str {
        if self.revoked_at.is_some() {
            "失効"
        } else if self.not_after * 1000 < now_ms {
            "期限切れ"
        } else {
            "有効"
        }
    }
}

/// A terminal certificate just issued: its PKCS#12 file and the file's one-time password,
/// shown once. `Debug` shows neither.
#[derive(Clone)]
pub struct IssuedTerminal {
    pub row: TerminalCertRow,
    pub p12: Vec<u8>,
    pub password: String,
}

impl std::fmt::Debug for IssuedTerminal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedTerminal")
            .field("row", &self.row)
            .field("p12", &"..")
            .field("password", &"..")
            .finish()
    }
}

/// The 端末名 as typed, trimmed; refused when empty, too long or holding control characters.
pub fn terminal_name(typed: &str) -> Result<String> {
    use unicode_normalization::UnicodeNormalization;
    let name: String = typed.trim().nfc().collect();
    if name.is_empty() {
        return Err(Error::Invalid(
            "端末名を入力してください（例: 外来3番）。".into(),
        ));
    }
    if name.chars().count() > NAME_MAX_CHARS {
        return Err(Error::Invalid(format!(
            "端末名は{NAME_MAX_CHARS}文字までにしてください。"
        )));
    }
    if name.chars().any(char::is_control) {
        return Err(Error::Invalid(
            "端末名に改行や制御文字は使えません。".into(),
        ));
    }
    Ok(name)
}

/// The node's terminal CA, made and stored on first use.
fn terminal_ca(tx: &Connection, node_label: &str, now_ms: i64) -> Result<TerminalCa> {
    let stored = tx
        .query_row(
            "SELECT common_name, cert_der, key_der FROM terminal_ca WHERE id = 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    if let Some((name, cert, key)) = stored {
        return Ok(TerminalCa::from_parts(name, cert, key));
    }
    let ca = TerminalCa::create(&format!("nsdb 端末証明書CA {node_label}"), now_ms / 1000)
        .map_err(|e| Error::Invalid(e.to_string()))?;
    tx.execute(
        "INSERT INTO terminal_ca (id, common_name, cert_der, key_der, created_at)
         VALUES (1, ?1, ?2, ?3, ?4)",
        params![ca.common_name, ca.cert_der, ca.key_der(), now_ms],
    )?;
    Ok(ca)
}

fn revoked(tx: &Connection) -> Result<Vec<Revoked>> {
    let mut st = tx.prepare(
        "SELECT serial, revoked_at FROM terminal_certs WHERE revoked_at IS NOT NULL
         ORDER BY revoked_at",
    )?;
    let rows = st
        .query_map([], |r| {
            Ok(Revoked {
                serial: r.get(0)?,
                revoked_at: r.get::<_, i64>(1)? / 1000,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<TerminalCertRow> {
    Ok(TerminalCertRow {
        serial: r.get("serial")?,
        name: r.get("name")?,
        institution: r.get("institution")?,
        issued_by: r.get::<_, Option<i64>>("issued_by")?.map(|u| u as u64),
        issued_at: r.get("issued_at")?,
        not_after: r.get("not_after")?,
        revoked_at: r.get("revoked_at")?,
    })
}

const COLUMNS: &str = "serial, name, institution, issued_by, issued_at, not_after, revoked_at";

fn record(
    tx: &Connection,
    by: Option<&Principal>,
    action: &str,
    target: Option<&str>,
    detail: Option<&str>,
    now: i64,
) -> Result<()> {
    let detail = match (by, detail) {
        (None, Some(d)) => Some(format!("by=cli {d}")),
        (None, None) => Some("by=cli".to_string()),
        (Some(_), d) => d.map(str::to_string),
    };
    audit::append(
        tx,
        audit::Entry {
            at_ms: now,
            user: by.map(|p| p.user_id),
            action,
            target,
            detail: detail.as_deref(),
        },
    )?;
    Ok(())
}

impl Node {
    /// Whose certificates `by` manages: their institution's (a 責任者), or every one (an
    /// operator, `None`). Errors: [`Error::Denied`] for anyone without `ManageUsers`.
    fn terminal_scope(&self, by: Option<&Principal>) -> Result<Option<String>> {
        match by {
            Some(p) => {
                authorize(p, Action::ManageUsers, Target::None)?;
                Ok(Some(p.institution.clone()))
            }
            None => Ok(None),
        }
    }

    /// Issues a terminal certificate for the terminal `name`, valid [`TERMINAL_CERT_DAYS`] days
    /// from now, and returns its PKCS#12 file and one-time password. The file waits
    /// [`DOWNLOAD_WINDOW_MS`] for one download ([`Node::download_terminal_cert`]). Audited
    /// `terminal_issue` (the serial). Errors: [`Error::Denied`]; [`Error::Invalid`] for a name
    /// [`terminal_name`] refuses.
    pub async fn issue_terminal_cert(
        &self,
        by: Option<&Principal>,
        name: &str,
    ) -> Result<IssuedTerminal> {
        let now_s = self.clock.now_ms() / 1000;
        self.issue_terminal_cert_between(by, name, now_s - 300, now_s + TERMINAL_CERT_DAYS * 86_400)
            .await
    }

    /// [`Node::issue_terminal_cert`] with the validity given (Unix seconds): for certificates
    /// whose period has not begun or has ended, as tests need them.
    pub async fn issue_terminal_cert_between(
        &self,
        by: Option<&Principal>,
        name: &str,
        not_before_s: i64,
        not_after_s: i64,
    ) -> Result<IssuedTerminal> {
        let scope = self.terminal_scope(by)?;
        let name = terminal_name(name)?;
        let institution = scope.unwrap_or_else(|| self.config.institution.code.clone());
        let institution_name = if institution == self.config.institution.code {
            self.config.institution.name.clone()
        } else {
            institution.clone()
        };
        let node_label = self.config.institution.name.clone();
        let password = one_time_password().map_err(|e| Error::Invalid(e.to_string()))?;
        let (actor, now) = (by.cloned(), self.clock.now_ms());
        let secret = password.clone();
        let (row, p12) = self
            .store
            .write(move |c| {
                let tx = c.transaction()?;
                let ca = terminal_ca(&tx, &node_label, now)?;
                let cert: TerminalCert = ca
                    .issue(&name, &institution_name, not_before_s, not_after_s)
                    .map_err(|e| Error::Invalid(e.to_string()))?;
                let p12 =
                    pkcs12(&cert, &name, &secret).map_err(|e| Error::Invalid(e.to_string()))?;
                tx.execute(
                    "INSERT INTO terminal_certs
                        (serial, name, institution, issued_by, issued_at, not_after)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![
                        cert.serial,
                        name,
                        institution,
                        actor.as_ref().map(|p| p.user_id as i64),
                        now,
                        not_after_s
                    ],
                )?;
                let detail = format!("not_after={not_after_s}");
                record(
                    &tx,
                    actor.as_ref(),
                    "terminal_issue",
                    Some(&cert.serial),
                    Some(&detail),
                    now,
                )?;
                tx.commit()?;
                let row = TerminalCertRow {
                    serial: cert.serial,
                    name,
                    institution,
                    issued_by: actor.map(|p| p.user_id),
                    issued_at: now,
                    not_after: not_after_s,
                    revoked_at: None,
                };
                Ok::<_, Error>((row, p12))
            })
            .await?;
        self.held_downloads().hold(&row.serial, p12.clone(), now);
        Ok(IssuedTerminal { row, p12, password })
    }

    /// The PKCS#12 file of the certificate `serial` just issued by `by`, once, within
    /// [`DOWNLOAD_WINDOW_MS`] of its issue. Audited `terminal_download`. Errors:
    /// [`Error::Denied`]; [`Error::Invalid`] when it was downloaded already, waited too long,
    /// or was issued by someone else.
    pub async fn download_terminal_cert(
        &self,
        by: &Principal,
        serial: &str,
    ) -> Result<(TerminalCertRow, Vec<u8>)> {
        self.terminal_scope(Some(by))?;
        let row = self
            .terminal_cert(serial)
            .await?
            .filter(|r| r.institution == by.institution && r.issued_by == Some(by.user_id));
        let now = self.clock.now_ms();
        let file = row
            .as_ref()
            .and_then(|r| self.held_downloads().take(&r.serial, now));
        let (Some(row), Some(file)) = (row, file) else {
            return Err(Error::Invalid(
                "このファイルはもうダウンロードできません（一度だけ、発行から10分以内です）。端末証明書を失効させ、発行し直してください。".into(),
            ));
        };
        let (actor, target) = (by.clone(), row.serial.clone());
        self.store
            .write(move |c| {
                record(
                    c,
                    Some(&actor),
                    "terminal_download",
                    Some(&target),
                    None,
                    now,
                )
            })
            .await?;
        Ok((row, file))
    }

    async fn terminal_cert(&self, serial: &str) -> Result<Option<TerminalCertRow>> {
        let serial = serial.trim().to_ascii_lowercase();
        self.store
            .read(move |c| {
                Ok(c.query_row(
                    &format!("SELECT {COLUMNS} FROM terminal_certs WHERE serial = ?1"),
                    [&serial],
                    row,
                )
                .optional()?)
            })
            .await
    }

    /// The terminal certificates `by` manages, newest first. Audited `terminal_list` with the
    /// serials shown.
    pub async fn terminal_certs(&self, by: Option<&Principal>) -> Result<Vec<TerminalCertRow>> {
        let scope = self.terminal_scope(by)?;
        let (actor, now) = (by.cloned(), self.clock.now_ms());
        self.store
            .write(move |c| {
                let rows = {
                    let mut st = c.prepare(&format!(
                        "SELECT {COLUMNS} FROM terminal_certs
                         WHERE ?1 IS NULL OR institution = ?1
                         ORDER BY issued_at DESC, serial"
                    ))?;
                    st.query_map([&scope], row)?
                        .collect::<rusqlite::Result<Vec<_>>>()?
                };
                let detail = audit::shown(rows.iter().map(|r| r.serial.as_str()));
                record(c, actor.as_ref(), "terminal_list", None, Some(&detail), now)?;
                Ok::<_, Error>(rows)
            })
            .await
    }

    /// Revokes the certificate `serial`: from now on no new connection with it is accepted
    /// (the listener's gate gets the new CRL at once). Audited `terminal_revoke`. Errors:
    /// [`Error::Denied`]; [`Error::Invalid`] for a serial not found among those `by` manages, or
    /// revoked already.
    pub async fn revoke_terminal_cert(
        &self,
        by: Option<&Principal>,
        serial: &str,
    ) -> Result<TerminalCertRow> {
        let scope = self.terminal_scope(by)?;
        let serial = serial.trim().to_ascii_lowercase();
        let (actor, now) = (by.cloned(), self.clock.now_ms());
        let revoked_row = self
            .store
            .write(move |c| {
                let tx = c.transaction()?;
                let found = tx
                    .query_row(
                        &format!(
                            "SELECT {COLUMNS} FROM terminal_certs
                             WHERE serial = ?1 AND (?2 IS NULL OR institution = ?2)"
                        ),
                        params![serial, scope],
                        row,
                    )
                    .optional()?;
                let Some(mut found) = found else {
                    return Err(Error::Invalid(format!(
                        "端末証明書（シリアル {serial}）は見つかりません。"
                    )));
                };
                if found.revoked_at.is_some() {
                    return Err(Error::Invalid(format!(
                        "端末証明書「{}」は失効済みです。",
                        found.name
                    )));
                }
                tx.execute(
                    "UPDATE terminal_certs SET revoked_at = ?2, revoked_by = ?3 WHERE serial = ?1",
                    params![serial, now, actor.as_ref().map(|p| p.user_id as i64)],
                )?;
                record(
                    &tx,
                    actor.as_ref(),
                    "terminal_revoke",
                    Some(&serial),
                    None,
                    now,
                )?;
                tx.commit()?;
                found.revoked_at = Some(now);
                Ok(found)
            })
            .await?;
        self.held_downloads().forget(&revoked_row.serial);
        if self.terminal_gate.is_loaded() {
            self.load_terminal_gate().await?;
        }
        Ok(revoked_row)
    }

    /// Loads the terminal CA (made now if the node has none) and a CRL of every revoked serial
    /// into the listener's gate: what `nsdb serve` does before it listens with
    /// `client_certs = "required"`, and what a revocation does again.
    pub async fn load_terminal_gate(&self) -> Result<()> {
        let node_label = self.config.institution.name.clone();
        let now = self.clock.now_ms();
        let (ca_der, crl) = self
            .store
            .write(move |c| {
                let tx = c.transaction()?;
                let ca = terminal_ca(&tx, &node_label, now)?;
                let revoked = revoked(&tx)?;
                tx.commit()?;
                // CRL numbers increase with time (ms), as RFC 5280 asks.
                let crl = ca
                    .crl(&revoked, now.max(0) as u64, now / 1000)
                    .map_err(|e| Error::Invalid(e.to_string()))?;
                Ok::<_, Error>((ca.cert_der.clone(), crl))
            })
            .await?;
        self.terminal_gate
            .load(&ca_der, &crl)
            .map_err(|e| Error::Invalid(e.to_string()))
    }

    /// The node's terminal CA certificate (DER), made now if the node has none.
    pub async fn terminal_ca_cert(&self) -> Result<Vec<u8>> {
        let node_label = self.config.institution.name.clone();
        let now = self.clock.now_ms();
        self.store
            .write(move |c| {
                let tx = c.transaction()?;
                let ca = terminal_ca(&tx, &node_label, now)?;
                tx.commit()?;
                Ok::<_, Error>(ca.cert_der)
            })
            .await
    }

    fn held_downloads(&self) -> &HeldDownloads {
        &self.terminal_gate.downloads
    }
}

/// PKCS#12 files waiting for their one download, in memory only (a restart forgets them).
#[derive(Default, Debug)]
pub struct HeldDownloads {
    files: std::sync::Mutex<std::collections::HashMap<String, (i64, Vec<u8>)>>,
}

impl HeldDownloads {
    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, (i64, Vec<u8>)>> {
        self.files.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn hold(&self, serial: &str, file: Vec<u8>, now: i64) {
        let mut files = self.lock();
        files.retain(|_, (at, _)| now - *at <= DOWNLOAD_WINDOW_MS);
        files.insert(serial.to_string(), (now, file));
    }

    fn take(&self, serial: &str, now: i64) -> Option<Vec<u8>> {
        let (at, file) = self.lock().remove(serial)?;
        (now - at <= DOWNLOAD_WINDOW_MS).then_some(file)
    }

    fn forget(&self, serial: &str) {
        self.lock().remove(serial);
    }
}
