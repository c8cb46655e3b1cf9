//! Bulk registration (一括登録): sealed files from the check tool become draft sheets with
//! 登録種別 一括, and sheets leave as XML in the same layout (データ出力).
//!
//! A sealed file (docs/sealed-files.md) is refused unless it was made with this node's rule pack,
//! with key information that has not expired, signed by the check-tool key of a registered user
//! of the uploader's institution, sealed to this node's seal key, unchanged, and its one sheet
//! reads in the published layout. Its sheet is checked again here (`Mode::Complete`): a complete
//! sheet and a partial one (部分取込: `nsdb check --partial`) both become drafts, and the row says
//! how many items are left to fix on screen before 登録. An upload is one transaction, each file
//! a savepoint in it: the sheet, the `imports` row that makes a second upload of the same sheet
//! (the same bytes, or the same content sealed again: `sheet_digest`) a no-op, and
//! the audit entry; a refused file leaves only its audit entry. Must never log or audit a value.

use std::collections::BTreeMap;
use std::path::PathBuf;

use nsdb_provisioning::sealed::{self, KeyInfo, SealError, SealKey};
use nsdb_rules::catalogue::version_label;
use nsdb_rules::check::Mode;
use nsdb_sync::{Edit, Sheet, SheetId};
use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::accounts::policy::{Action, Principal, Role, Target, UserKind, authorize};
use crate::config::NodeConfig;
use crate::sheets::{new_sheet_of, store_sheet};
use crate::{Error, Node, Result, audit};

/// The check tool's version: the version of this binary, which is the check tool too.
pub const TOOL_VERSION: &str = env!("CARGO_PKG_VERSION");

/// 取込成功: the result of a file that became a sheet.
pub const IMPORTED: &str = "取込成功";

/// The refusal of a file made with another rule pack than the node's (M20).
pub const OUTDATED: &str = "チェックツールのバージョンが最新ではありません";

/// Files per upload, at most.
pub const MAX_FILES: usize = 1000;

/// Where the node keeps its seal key (age X25519, mode 600): `DATA_DIR/seal.key`.
pub fn seal_key_path(config: &NodeConfig) -> PathBuf {
    config.data_dir.join("seal.key")
}

/// The node's seal key, created on first use.
pub fn seal_key(config: &NodeConfig) -> anyhow::Result<SealKey> {
    use anyhow::Context;
    nsdb_provisioning::create_private_dir(&config.data_dir)
        .with_context(|| format!("cannot create {}", config.data_dir.display()))?;
    let path = seal_key_path(config);
    SealKey::load_or_create(&path).with_context(|| format!("the seal key {}", path.display()))
}

/// The node's key information request (鍵情報), unsigned: the node's name, identity and seal
/// recipient, valid until `expires` (YYYY-MM-DD). The hub signs it (`KeyInfo::sign_on_hub`)
/// and hospitals import the signed file into the check tool.
pub fn key_info_request(config: &NodeConfig, expires: &str) -> anyhow::Result<KeyInfo> {
    let today = crate::Clock::System.today_jst();
    match nsdb_rules::Date::parse(expires) {
        None => anyhow::bail!("--expires {expires:?} は YYYY-MM-DD の日付ではありません"),
        Some(d) if d < today => anyhow::bail!(
            "--expires {expires} は過ぎた日付です（今日は {today}）。これから先の有効期限を指定してください"
        ),
        Some(_) => {}
    }
    let identity = nsdb_provisioning::NodeIdentity::load_or_create(&config.identity_path())?;
    let seal = seal_key(config)?;
    let info = KeyInfo::request(&identity, &config.name, &seal, expires)?;
    record_issued(config, &seal.recipient(), expires)?;
    Ok(info)
}

/// Where the node keeps the key information it issued: one `RECIPIENT EXPIRES` line each
/// (`DATA_DIR/key-info.issued`, mode 600). A sealed file's header must name one of these: a
/// user cannot move the expiry of the key information they were given.
pub fn issued_path(config: &NodeConfig) -> PathBuf {
    config.data_dir.join(ISSUED_FILE)
}

/// The file name of [`issued_path`] in the data directory (a backup carries it).
pub const ISSUED_FILE: &str = "key-info.issued";

fn record_issued(config: &NodeConfig, recipient: &str, expires: &str) -> anyhow::Result<()> {
    use anyhow::Context;
    use std::io::Write;
    let path = issued_path(config);
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600));
    }
    writeln!(f, "{recipient} {expires}")
        .and_then(|()| f.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))
}

/// The (recipient, expiry) pairs of the key information this node issued.
fn issued(config: &NodeConfig) -> Vec<(String, String)> {
    std::fs::read_to_string(issued_path(config))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(r, e)| (r.to_string(), e.trim().to_string()))
        .collect()
}

/// What identifies a sheet's content for de-duplication: SHA-256 (64 hexadecimal digits) over
/// the form id and the values that are not blank (in item order, as JSON). The same sheet, from
/// the same or another XML file, sealed by anyone, gives the same digest: the node refuses a
/// second import of it at the same institution, and [`crate::cli::check::sealed_name`] names files with it.
pub fn sheet_digest(form_id: &str, values: &std::collections::BTreeMap<String, String>) -> String {
    use sha2::{Digest, Sha256};
    let entered: std::collections::BTreeMap<&str, &str> = values
        .iter()
        .filter(|(_, v)| !v.trim().is_empty())
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let mut h = Sha256::new();
    h.update(b"nsdb-sheet-digest/1\n");
    h.update(form_id.as_bytes());
    h.update(b"\n");
    h.update(serde_json::to_vec(&entered).unwrap_or_default());
    hex::encode(h.finalize())
}

/// One line of the result table (実行結果一覧), in the seed's columns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ImportRow {
    /// ファイル名, as uploaded.
    pub file: String,
    /// 患者氏名 ("" when the file could not be read).
    pub patient: String,
    /// 病名.
    pub disease: String,
    /// 記載年月日 (YYYY-MM-DD, "" when unknown).
    pub written_date: String,
    /// 結果: 取込成功, or why not.
    pub result: String,
    /// Whether this upload created a sheet.
    pub imported: bool,
    /// The file had been imported before: nothing new was created.
    pub duplicate: bool,
    /// The sheet created (or created by the earlier upload of the same file).
    pub sheet_id: Option<String>,
    /// How many of the screen's check messages the imported draft still has (a partial file):
    /// items to enter or correct on screen before 登録. 0 for a complete sheet.
    #[serde(default)]
    pub pending_checks: usize,
}

/// The versions a file was made with, as its unencrypted header says.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, utoipa::ToSchema)]
pub struct UploadVersions {
    pub tool_version: String,
    pub rule_pack_version: String,
}

/// What an upload did: the node's versions, those of the files, and one row per file.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ImportReport {
    /// 最新のチェックツールのバージョン.
    pub tool_version: String,
    /// The node's rule pack.
    pub rule_pack_version: String,
    /// アップロードファイルのチェックツールのバージョン: each distinct pair, sorted.
    pub uploads: Vec<UploadVersions>,
    pub rows: Vec<ImportRow>,
}

impl ImportReport {
    /// The result table as CSV, UTF-8 with a BOM so that Excel reads it (患者氏名, 病名,
    /// ファイル名, 記載年月日, 結果).
    pub fn csv(&self) -> String {
        let mut out = String::from("\u{feff}患者氏名,病名,ファイル名,記載年月日,結果\r\n");
        for r in &self.rows {
            let cells = [
                r.patient.as_str(),
                &r.disease,
                &r.file,
                &r.written_date.replace('-', "/"),
                &r.result,
            ];
            out.push_str(&cells.map(csv_cell).join(","));
            out.push_str("\r\n");
        }
        out
    }
}

/// One CSV cell, quoted when it must be (RFC 4180), with formula starts defused for Excel.
pub fn csv_cell(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@']) && s.parse::<f64>().is_err() {
        format!("'{s}")
    } else {
        s.to_string()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

/// Compares versions like `2026.04-1` by their runs of digits as numbers.
pub fn version_order(a: &str, b: &str) -> std::cmp::Ordering {
    fn parts(s: &str) -> Vec<(u64, String)> {
        let mut out = Vec::new();
        let mut digits = String::new();
        let mut other = String::new();
        for c in s.chars() {
            if c.is_ascii_digit() {
                if !other.is_empty() {
                    out.push((0, std::mem::take(&mut other)));
                }
                digits.push(c);
            } else {
                if !digits.is_empty() {
                    out.push((digits.parse().unwrap_or(u64::MAX), String::new()));
                    digits.clear();
                }
                other.push(c);
            }
        }
        if !digits.is_empty() {
            out.push((digits.parse().unwrap_or(u64::MAX), String::new()));
        }
        if !other.is_empty() {
            out.push((0, other));
        }
        out
    }
    parts(a).cmp(&parts(b))
}

/// A file that opened and checked, ready to store.
struct Ready {
    hash: String,
    /// `sheet_digest` of its sheet.
    digest: String,
    /// The check messages its sheet still has (a partial file); empty when complete.
    pending: Vec<String>,
    signer: String,
    doctor: Option<u64>,
    form_id: String,
    values: BTreeMap<String, String>,
}

/// A checked file's draft sheet, ready for the upload's transaction.
struct Staged {
    sheet: Sheet,
    id: String,
    /// The uploader's institution: the same sheet is a duplicate there, not elsewhere.
    institution: String,
    hash: String,
    digest: String,
    pending: Vec<String>,
    signer: String,
}

/// What the upload's transaction did with one file.
enum Outcome {
    /// Refused before storing: the row's message.
    Refused(String),
    /// The same bytes or the same sheet were imported before, as this sheet; nothing new was
    /// stored.
    Duplicate(String),
    /// Stored as this new sheet, with the check messages it still has.
    Imported(String, Vec<String>),
}

/// Stores one staged file under a savepoint of the upload's transaction, unless the same file
/// or the same sheet was imported before (by an earlier upload, or earlier in this one): then
/// only the refusal's audit entry is written.
fn store_staged(
    tx: &mut rusqlite::Transaction<'_>,
    mut staged: Staged,
    uid: u64,
    now: i64,
) -> Result<Outcome> {
    let sp = tx.savepoint()?;
    let earlier: Option<String> = sp
        .prepare_cached(
            "SELECT sheet_id FROM imports WHERE file_hash = ?1
             UNION ALL
             SELECT i.sheet_id FROM imports i JOIN sheets s ON s.id = i.sheet_id
              WHERE i.sheet_digest = ?2 AND s.institution = ?3
             LIMIT 1",
        )?
        .query_row([&staged.hash, &staged.digest, &staged.institution], |r| {
            r.get(0)
        })
        .optional()?;
    let outcome = match earlier {
        Some(earlier) => {
            audit::append(
                &sp,
                audit::Entry {
                    at_ms: now,
                    user: Some(uid),
                    action: "sheet_import_refused",
                    target: Some(&earlier),
                    detail: Some("duplicate"),
                },
            )?;
            Outcome::Duplicate(earlier)
        }
        None => {
            store_sheet(&sp, &mut staged.sheet, "bulk", now)?;
            sp.prepare_cached(
                "INSERT INTO imports (file_hash, sheet_id, user_id, signer, at, sheet_digest)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![
                staged.hash,
                staged.id,
                uid as i64,
                staged.signer,
                now,
                staged.digest
            ])?;
            audit::append(
                &sp,
                audit::Entry {
                    at_ms: now,
                    user: Some(uid),
                    action: "sheet_import",
                    target: Some(&staged.id),
                    detail: None,
                },
            )?;
            Outcome::Imported(staged.id, staged.pending)
        }
    };
    sp.commit()?;
    Ok(outcome)
}

/// A user who may sign sealed files for the uploader's institution.
struct Signer {
    key: [u8; 32],
    user_id: u64,
    kind: Option<UserKind>,
    /// 氏名 and 指定医番号, filled into a doctor's sheets as on the new-sheet screen.
    name: String,
    doctor_number: Option<String>,
}

/// What every file of one upload is opened and checked with.
struct UploadContext<'a> {
    seal: SealKey,
    /// The key information this node issued: (recipient, expiry).
    issued: Vec<(String, String)>,
    keys: Vec<[u8; 32]>,
    signers: Vec<Signer>,
    uploader: &'a Principal,
    institution: crate::config::Institution,
    node_pack: String,
}

impl Node {
    /// Registers `public_key` (ed25519) as the check-tool key of the user `login`, replacing
    /// any earlier key; sealed files signed by it can then be imported at the user's
    /// institution. Audited (`user_key_set`).
    pub async fn set_user_key(&self, login: &str, public_key: [u8; 32]) -> Result<u64> {
        let (login, key) = (login.to_string(), hex::encode(public_key));
        let now = self.clock.now_ms();
        self.store
            .write(move |c| {
                let tx = c.transaction()?;
                let user: Option<(i64, String)> = tx
                    .query_row(
                        "SELECT id, kind FROM users WHERE login = ?1",
                        [&login],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .optional()?;
                let Some((id, kind)) = user else {
                    return Err(Error::Invalid(format!(
                        "ユーザID「{login}」の利用者はいません。"
                    )));
                };
                // Only those who may write sheets sign files for 一括登録.
                match UserKind::parse(&kind) {
                    Some(k) if matches!(k.role(), Role::Doctor | Role::Clerk) => {}
                    other => {
                        return Err(Error::Invalid(format!(
                            "「{login}」（{}）はチェックツールの鍵を持てません。一括登録のファイルを作れるのは指定医と医療クラーク等です。",
                            other.map_or(kind.as_str(), |k| k.label())
                        )));
                    }
                }
                let other: Option<i64> = tx
                    .query_row(
                        "SELECT user_id FROM user_keys WHERE public_key = ?1 AND user_id != ?2",
                        params![key, id],
                        |r| r.get(0),
                    )
                    .optional()?;
                if other.is_some() {
                    return Err(Error::Invalid(
                        "この鍵は別の利用者に登録されています。利用者ごとに別の鍵を作ってください。"
                            .into(),
                    ));
                }
                tx.execute(
                    "INSERT INTO user_keys (user_id, public_key, created_at) VALUES (?1, ?2, ?3)
                     ON CONFLICT(user_id) DO UPDATE SET public_key = excluded.public_key,
                        created_at = excluded.created_at",
                    params![id, key, now],
                )?;
                let target = id.to_string();
                audit::append(
                    &tx,
                    audit::Entry {
                        at_ms: now,
                        user: None,
                        action: "user_key_set",
                        target: Some(&target),
                        detail: None,
                    },
                )?;
                tx.commit()?;
                Ok(id as u64)
            })
            .await
    }

    async fn signers(&self, institution: &str) -> Result<Vec<Signer>> {
        let inst = institution.to_string();
        self.store
            .read(move |c| {
                let mut st = c.prepare_cached(
                    "SELECT k.public_key, u.id, u.kind, u.name, u.doctor_number FROM user_keys k
                     JOIN users u ON u.id = k.user_id WHERE u.institution = ?1",
                )?;
                let rows = st.query_map([&inst], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, Option<String>>(4)?,
                    ))
                })?;
                let mut out = Vec::new();
                for row in rows {
                    let (key, id, kind, name, doctor_number) = row?;
                    let kind = UserKind::parse(&kind);
                    // Only those who may write sheets sign files for 一括登録.
                    if !kind.is_some_and(|k| matches!(k.role(), Role::Doctor | Role::Clerk)) {
                        continue;
                    }
                    let mut k = [0u8; 32];
                    if hex::decode_to_slice(&key, &mut k).is_ok() {
                        out.push(Signer {
                            key: k,
                            user_id: id as u64,
                            kind,
                            name,
                            doctor_number: doctor_number.filter(|n| !n.trim().is_empty()),
                        });
                    }
                }
                Ok::<_, Error>(out)
            })
            .await
    }

    /// Imports sealed files (file name, bytes) uploaded by `p`: each file that opens, was made
    /// with this node's rule pack and passes the checks becomes a draft sheet with 登録種別
    /// 一括; every file gets a row saying what happened. Errors only when `p` may not create
    /// sheets or the store fails; a bad file is a row, never an error.
    ///
    /// The files are opened, verified, decrypted, read and checked on every core
    /// (`cli::check::on_all_cores`, in upload order), then stored in **one** transaction: each file's
    /// sheet, `imports` row and audit entry under a savepoint of its own, each refused file's
    /// audit entry. So a failing store leaves none of the upload behind (upload it again), and
    /// one upload costs one durable commit, not one per file.
    pub async fn import_sealed(
        &self,
        p: &Principal,
        files: Vec<(String, Vec<u8>)>,
    ) -> Result<ImportReport> {
        authorize(p, Action::CreateSheet, Target::None)?;
        if files.len() > MAX_FILES {
            return Err(Error::Invalid(format!(
                "一度に取り込めるファイルは{MAX_FILES}件までです。分けてアップロードしてください。"
            )));
        }
        let seal = seal_key(&self.config).map_err(|e| Error::Invalid(format!("{e:#}")))?;
        let signers = self.signers(&p.institution).await?;
        let node_pack = self.catalogue.version().to_string();
        let ctx = UploadContext {
            issued: issued(&self.config),
            seal,
            keys: signers.iter().map(|s| s.key).collect(),
            signers,
            uploader: p,
            institution: self.institution_of(p).await?,
            node_pack: node_pack.clone(),
        };
        let mut report = ImportReport {
            tool_version: TOOL_VERSION.to_string(),
            rule_pack_version: node_pack.clone(),
            uploads: Vec::new(),
            rows: Vec::new(),
        };
        for (_, bytes) in &files {
            if let Ok(h) = sealed::peek(bytes) {
                let v = UploadVersions {
                    tool_version: h.tool_version,
                    rule_pack_version: h.rule_pack_version,
                };
                if !report.uploads.contains(&v) {
                    report.uploads.push(v);
                }
            }
        }
        report.uploads.sort();
        let now = self.clock.now_ms();
        let open_one = |i: usize| {
            let (name, bytes) = &files[i];
            let mut row = ImportRow {
                file: name.clone(),
                patient: String::new(),
                disease: String::new(),
                written_date: String::new(),
                result: String::new(),
                imported: false,
                duplicate: false,
                sheet_id: None,
                pending_checks: 0,
            };
            let hash = hex::encode(Sha256::digest(bytes));
            let staged = self
                .prepare(bytes, hash, &ctx, &mut row)
                .and_then(|ready| self.stage(p, ready, now));
            (row, staged)
        };
        let opened = crate::cli::check::on_all_cores(files.len(), open_one);
        let uid = p.user_id;
        let (mut rows, staged): (Vec<ImportRow>, Vec<std::result::Result<Staged, Refusal>>) =
            opened.into_iter().unzip();
        let outcomes = self
            .store
            .write(move |c| {
                let mut tx = c.transaction()?;
                let mut outcomes = Vec::with_capacity(staged.len());
                for staged in staged {
                    outcomes.push(match staged {
                        Err(refusal) => {
                            audit::append(
                                &tx,
                                audit::Entry {
                                    at_ms: now,
                                    user: Some(uid),
                                    action: "sheet_import_refused",
                                    target: None,
                                    detail: Some(refusal.code),
                                },
                            )?;
                            Outcome::Refused(refusal.message)
                        }
                        Ok(staged) => store_staged(&mut tx, staged, uid, now)?,
                    });
                }
                tx.commit()?;
                Ok::<_, Error>(outcomes)
            })
            .await?;
        for (row, outcome) in rows.iter_mut().zip(outcomes) {
            match outcome {
                Outcome::Refused(message) => row.result = message,
                Outcome::Duplicate(earlier) => {
                    row.duplicate = true;
                    row.result =
                        "このファイル（または同じ内容の様式）は取込済みです。新しい臨床調査個人票・医療意見書は作成していません。"
                            .into();
                    row.sheet_id = Some(earlier);
                }
                Outcome::Imported(id, pending) => {
                    row.imported = true;
                    row.pending_checks = pending.len();
                    row.result = match pending.as_slice() {
                        [] => IMPORTED.into(),
                        [first, rest @ ..] => format!(
                            "{IMPORTED}（一時保存）: 登録の前に画面で直す項目が{}件あります。{first}{}",
                            pending.len(),
                            if rest.is_empty() {
                                String::new()
                            } else {
                                format!("（ほか{}件）", rest.len())
                            }
                        ),
                    };
                    row.sheet_id = Some(id);
                }
            }
        }
        report.rows = rows;
        Ok(report)
    }

    /// Opens and checks one file; fills the row's patient, disease and date as soon as known.
    fn prepare(
        &self,
        bytes: &[u8],
        hash: String,
        ctx: &UploadContext<'_>,
        row: &mut ImportRow,
    ) -> std::result::Result<Ready, Refusal> {
        let (seal, keys, signers, p) = (&ctx.seal, &ctx.keys, &ctx.signers, ctx.uploader);
        let node_pack = ctx.node_pack.as_str();
        let text_start = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
        if text_start.trim_ascii_start().starts_with(b"<") {
            return Err(Refusal {
                code: "plain_xml",
                message: "XML ファイルのままです。チェックツール（nsdb check … --out）で暗号化した .sealed ファイルをアップロードしてください。".into(),
            });
        }
        let header = sealed::peek(bytes).map_err(|e| Refusal::seal(&e))?;
        let today = self.clock.today_jst();
        if nsdb_rules::Date::parse(&header.key_info_expires).is_none() {
            return Err(Refusal {
                code: "key_info_unknown",
                message: "このファイルには鍵情報の有効期限が正しく記録されていません。最新のチェックツールで作り直してください。".into(),
            });
        }
        if today.to_string() > header.key_info_expires {
            return Err(Refusal {
                code: "key_info_expired",
                message: format!(
                    "このファイルを作った鍵情報の有効期限（{}）が切れています。このノードの新しい鍵情報をチェックツールに設定して作り直してください。",
                    header.key_info_expires
                ),
            });
        }

        match version_order(&header.rule_pack_version, node_pack) {
            std::cmp::Ordering::Equal => {}
            std::cmp::Ordering::Less => {
                return Err(Refusal {
                    code: "outdated",
                    message: format!(
                        "{OUTDATED}（ファイルのルールパック {}、このノード {}）。最新のチェックツールで作り直してください。",
                        version_label(&header.rule_pack_version),
                        version_label(node_pack)
                    ),
                });
            }
            std::cmp::Ordering::Greater => {
                return Err(Refusal {
                    code: "newer_pack",
                    message: format!(
                        "このファイルはこのノードより新しいルールパック（{}、このノード {}）で作られています。ノードの更新を待って取り込んでください。",
                        version_label(&header.rule_pack_version),
                        version_label(node_pack)
                    ),
                });
            }
        }
        let opened = sealed::open(bytes, seal, keys).map_err(|e| Refusal::seal(&e))?;
        // The expiry the (now verified) header states must be one this node issued: a user
        // cannot move the expiry of the key information they were given.
        if !ctx
            .issued
            .iter()
            .any(|(r, e)| *r == header.recipient && *e == header.key_info_expires)
        {
            return Err(Refusal {
                code: "key_info_unknown",
                message: format!(
                    "このファイルの鍵情報（有効期限 {}）は、このノードが発行したものではありません。このノードの鍵情報をチェックツールに設定して作り直してください。",
                    header.key_info_expires
                ),
            });
        }
        let signer = signers
            .iter()
            .find(|s| s.key == opened.signer)
            .ok_or(Refusal {
                code: "unknown_signer",
                message: "署名した利用者が見つかりません。".into(),
            })?;
        let sheets = nsdb_rules::xml::read(&self.catalogue, &opened.xml).map_err(|e| Refusal {
            code: "xml",
            message: format!("XML を読めません: {e}"),
        })?;
        let [sheet] = sheets.as_slice() else {
            return Err(Refusal {
                code: "sheet_count",
                message: format!(
                    "1つの暗号化ファイルには様式を1つだけ入れてください（{}件あります）。",
                    sheets.len()
                ),
            });
        };
        let form = self.catalogue.form(&sheet.form).ok_or(Refusal {
            code: "unknown_form",
            message: format!("様式「{}」はこのノードにありません。", sheet.form),
        })?;
        row.disease = form.disease.clone();
        let get = |k: &str| sheet.values.get(k).cloned().unwrap_or_default();
        row.patient = get("patient.name");
        row.written_date = get("doctor.written_date");
        if let Some(e) = sheet.errors.first() {
            return Err(Refusal {
                code: "layout",
                message: format!("{}行{}列: {}", e.line, e.column, e.message),
            });
        }
        // A draft is found by its patient: even a partial file (部分取込) must name one, as the
        // check tool's `--partial` requires. A file sealed some other way is refused here too.
        if nsdb_rules::value::is_blank(&row.patient) {
            return Err(Refusal {
                code: "no_patient",
                message: "患者の氏名（patient.name）がありません。氏名のない様式は取り込めません。氏名を記入してチェックツールで作り直してください。".into(),
            });
        }
        let doctor = match signer.kind.map(UserKind::role) {
            Some(Role::Doctor) => Some(signer.user_id),
            _ => (p.role() == Role::Doctor).then_some(p.user_id),
        };
        // What the node knows is filled in where the file left it blank, as on the new-sheet
        // screen: the institution, and the doctor who signed the file.
        let mut values = sheet.values.clone();
        let mut known = vec![
            ("doctor.institution_name", ctx.institution.name.clone()),
            ("doctor.institution_code", ctx.institution.code.clone()),
        ];
        if signer.kind.map(UserKind::role) == Some(Role::Doctor) {
            known.push((crate::sheets::DOCTOR_NAME_ITEM, signer.name.clone()));
            if let Some(number) = &signer.doctor_number {
                known.push((crate::sheets::DOCTOR_NUMBER_ITEM, number.clone()));
            }
        }
        crate::sheets::fill_blank(form, &mut values, known);
        let pending = nsdb_rules::check(form, &values, Mode::Complete, today)
            .into_iter()
            .map(|m| m.text)
            .collect();
        Ok(Ready {
            hash,
            // The sheet as sent, so that the same file's sheet is the same whoever imports it.
            digest: sheet_digest(&form.id, &sheet.values),
            pending,
            signer: hex::encode(opened.signer),
            doctor,
            form_id: form.id.clone(),
            values,
        })
    }

    /// Builds the draft sheet of one checked file (its document, not yet stored).
    fn stage(&self, p: &Principal, ready: Ready, now: i64) -> std::result::Result<Staged, Refusal> {
        let form = self.catalogue.form(&ready.form_id).ok_or(Refusal {
            code: "unknown_form",
            message: format!("様式「{}」はこのノードにありません。", ready.form_id),
        })?;
        let edit = Edit {
            author: nsdb_sync::Author {
                node: self.node_id,
                user: p.user_id,
            },
            at_ms: now,
            message: "一括登録",
        };
        let id = SheetId::random();
        let mut sheet = Sheet::new(
            new_sheet_of(form, id, &p.institution, ready.doctor, None, now),
            edit,
        );
        let changes: BTreeMap<String, Option<String>> = ready
            .values
            .into_iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| (k, Some(v)))
            .collect();
        sheet.set_fields(&changes, edit);
        Ok(Staged {
            sheet,
            id: id.to_string(),
            institution: p.institution.clone(),
            hash: ready.hash,
            digest: ready.digest,
            pending: ready.pending,
            signer: ready.signer,
        })
    }

    /// データ出力: one sheet as an XML file in the published layout (UTF-8), with its file
    /// name (`SHEET_ID.xml`). Reading it gives back the sheet's values. The view is audited
    /// like any other, and the export too (`sheet_export_xml`).
    pub async fn export_xml(&self, p: &Principal, id: &str) -> Result<(String, String)> {
        let detail = self.get_sheet(p, id).await?;
        let form = self
            .catalogue
            .form(&detail.row.form_id)
            .ok_or_else(|| Error::UnknownForm(detail.row.form_id.clone()))?;
        let reference = detail.row.id.clone();
        let xml = nsdb_rules::xml::write(&[nsdb_rules::xml::SheetOut {
            form,
            reference: Some(reference.as_str()),
            values: &detail.items,
        }])
        .map_err(|e| Error::Invalid(e.to_string()))?;
        self.audit(p, "sheet_export_xml", Some(id), None).await?;
        Ok((format!("{id}.xml"), xml))
    }
}

/// Why a file was refused: a code for the audit log (never a value) and a message for the clerk.
struct Refusal {
    code: &'static str,
    message: String,
}

impl Refusal {
    fn seal(e: &SealError) -> Refusal {
        let code = match e {
            SealError::UnknownSigner { .. } => "unknown_signer",
            SealError::Tampered => "tampered",
            SealError::OtherNode { .. } => "other_node",
            SealError::Format(_) => "format",
            _ => "malformed",
        };
        Refusal {
            code,
            message: e.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_by_their_numbers() {
        use std::cmp::Ordering::*;
        assert_eq!(version_order("2026.04-1", "2026.04-1"), Equal);
        assert_eq!(version_order("2026.04-1", "2026.10-1"), Less);
        assert_eq!(version_order("2026.10-1", "2026.4-2"), Greater);
        assert_eq!(version_order("2026.04-9", "2026.04-10"), Less);
    }

    #[test]
    fn csv_cells_are_quoted_and_formulas_defused() {
        assert_eq!(csv_cell("a,b"), "\"a,b\"");
        assert_eq!(csv_cell("say \"x\""), "\"say \"\"x\"\"\"");
        assert_eq!(csv_cell("=1+1"), "'=1+1");
        assert_eq!(csv_cell("-3"), "-3");
    }
}
