//! National research data at the hub (M19): consented sheets, de-identified, streamed into
//! Parquet and CSV for research groups, and national counts that may be published.
//!
//! Each sheet stored at the hub gets its research row (`rows`) in the same transaction: kept
//! when it is registered or approved and its 研究利用の同意 is given ([`consent_given`]), as a
//! [`ResearchRecord`] made by the rules in `deid` (docs/research.md gives each rule its reason).
//! `export` streams the rows into files in (year, form) order; `stats` counts and suppresses.
//!
//! This module must never write a name, かな, address, insurance number, access key, free text,
//! a doctor or an institution into anything it produces, never hold more than one partition's
//! rows in memory, and never let the pseudonym secret leave `node_meta`.

pub mod deid;
pub mod export;
pub mod rows;
pub mod stats;

use std::collections::BTreeMap;

use hmac::{Hmac, Mac};
use nsdb_rules::FormDef;
use nsdb_sync::{ResearchConsent, Sheet};
use rusqlite::{Connection, OptionalExtension, params};
use sha2::Sha256;

/// What a research step could not do, said so that the operator can act on it.
#[derive(Debug, thiserror::Error)]
pub enum ResearchError {
    #[error("データベースを読めません: {0}")]
    Store(#[from] rusqlite::Error),
    #[error("保存された個票 {id} を読み込めません: {reason}")]
    Document { id: String, reason: String },
    #[error("出力先 {path} に書き込めません: {reason}")]
    Write { path: String, reason: String },
    #[error("出力先 {0} は空ではありません。新しいフォルダを指定してください。")]
    NotEmpty(String),
    #[error("研究用データはハブでのみ作成できます。")]
    NotHub,
    #[error(
        "研究用データの鍵 (node_meta research_secret) が壊れています。nsdb research rotate-secret で作り直してください。"
    )]
    BadSecret,
}

/// The keyed-pseudonym secret: 32 random bytes kept in `node_meta` on the hub, created on first
/// use and replaced only by [`rotate_secret`] (`nsdb research rotate-secret`).
#[derive(Clone)]
pub struct Secret {
    key: [u8; 32],
    /// When this secret was made (Unix ms): exports with the same value link patients.
    pub since_ms: i64,
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secret")
            .field("since_ms", &self.since_ms)
            .finish_non_exhaustive()
    }
}

const SECRET_KEY: &str = "research_secret";
const SECRET_SINCE: &str = "research_secret_since";

impl Secret {
    /// A secret from fixed bytes (tests and benchmarks).
    pub fn from_bytes(key: [u8; 32], since_ms: i64) -> Secret {
        Secret { key, since_ms }
    }

    fn mac(&self, domain: &str, parts: &[&str]) -> String {
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(&self.key)
            .expect("HMAC takes a key of any length");
        m.update(domain.as_bytes());
        for p in parts {
            m.update(&[0x1f]);
            m.update(p.as_bytes());
        }
        // 128 bits: collisions are out of reach at national scale; shorter to read and store.
        hex::encode(&m.finalize().into_bytes()[..16])
    }

    /// The patient's pseudonym: HMAC-SHA256 over what identifies a patient across years (see
    /// [`PatientIdentity`]), 32 hex characters.
    pub fn patient(&self, who: &PatientIdentity) -> String {
        match who {
            PatientIdentity::Person {
                kana,
                birth_date,
                sex,
            } => self.mac("patient", &[kana, birth_date, sex]),
            PatientIdentity::SheetOnly(id) => self.mac("sheet-patient", &[id]),
        }
    }

    /// The sheet's pseudonym (its row in every table), 32 hex characters.
    pub fn record(&self, sheet_id: &str) -> String {
        self.mac("record", &[sheet_id])
    }
}

/// The secret in `node_meta`, made now if there is none. Errors: [`ResearchError::BadSecret`]
/// when the stored value is not 64 hex digits.
pub fn secret(c: &Connection, now_ms: i64) -> Result<Secret, ResearchError> {
    if let Some(s) = stored_secret(c)? {
        return Ok(s);
    }
    rotate_secret(c, now_ms)
}

fn stored_secret(c: &Connection) -> Result<Option<Secret>, ResearchError> {
    let key: Option<String> = c
        .query_row(
            "SELECT value FROM node_meta WHERE key = ?1",
            [SECRET_KEY],
            |r| r.get(0),
        )
        .optional()?;
    let Some(key) = key else { return Ok(None) };
    let since: i64 = c
        .query_row(
            "SELECT value FROM node_meta WHERE key = ?1",
            [SECRET_SINCE],
            |r| r.get::<_, String>(0),
        )
        .optional()?
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let bytes = hex::decode(key.trim()).map_err(|_| ResearchError::BadSecret)?;
    let key: [u8; 32] = bytes.try_into().map_err(|_| ResearchError::BadSecret)?;
    Ok(Some(Secret {
        key,
        since_ms: since,
    }))
}

/// Replaces the secret with a new random one: every pseudonym changes, and exports made after
/// this no longer link to those made before. Only `nsdb research rotate-secret` calls this
/// (and [`secret`] the first time).
pub fn rotate_secret(c: &Connection, now_ms: i64) -> Result<Secret, ResearchError> {
    let key: [u8; 32] = rand::random();
    c.execute(
        "INSERT OR REPLACE INTO node_meta (key, value) VALUES (?1, ?2)",
        params![SECRET_KEY, hex::encode(key)],
    )?;
    c.execute(
        "INSERT OR REPLACE INTO node_meta (key, value) VALUES (?1, ?2)",
        params![SECRET_SINCE, now_ms.to_string()],
    )?;
    Ok(Secret {
        key,
        since_ms: now_ms,
    })
}

/// What links one patient's sheets across years.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PatientIdentity {
    /// カナ氏名 without spaces, 生年月日 (YYYY-MM-DD) and 性別: all three are on every sheet,
    /// survive a change of insurer, address or hospital, and are what a municipality matches
    /// a renewal by.
    Person {
        kana: String,
        birth_date: String,
        sex: String,
    },
    /// One of the three is missing: the sheet gets a pseudonym of its own (never linked).
    SheetOnly(String),
}

impl PatientIdentity {
    /// The identity of a sheet's patient from its stored values.
    pub fn of(sheet_id: &str, fields: &BTreeMap<String, String>) -> PatientIdentity {
        let get = |k: &str| fields.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
        match (
            get("patient.name_kana"),
            get("patient.birth_date"),
            get("patient.sex"),
        ) {
            (Some(kana), Some(birth), Some(sex)) => PatientIdentity::Person {
                kana: kana
                    .chars()
                    .filter(|c| !c.is_whitespace() && *c != '・')
                    .collect(),
                birth_date: birth.to_string(),
                sex: sex.to_string(),
            },
            _ => PatientIdentity::SheetOnly(sheet_id.to_string()),
        }
    }
}

/// Whether the sheet may go into research output: 研究利用の同意 recorded as given in a
/// municipality's review (M13), as the document says now. Each municipality's review holds its
/// latest state, so a withdrawal recorded later removes the sheet from every later export; a
/// sheet reviewed by several municipalities (a patient who moved) counts as consented when any
/// of them records consent.
///
/// The one place consent is read.
pub fn consent_given(sheet: &Sheet) -> bool {
    sheet
        .reviews()
        .values()
        .any(|r| r.research_consent == Some(ResearchConsent::Given))
}

/// One consented sheet, de-identified: what every table is written from.
#[derive(Debug, Clone, PartialEq)]
pub struct ResearchRecord {
    /// The sheet's pseudonym.
    pub record: String,
    /// The patient's pseudonym, the same across years while the secret is kept.
    pub patient: String,
    /// Year of 記載年月日.
    pub year: i32,
    /// The disease partition: 告示番号 as three digits (`002`, `011-1` with 枝番) for 指定難病,
    /// `s` and the 小児慢性特定疾病 code for 小慢 forms (`s12_04_014`).
    pub disease: String,
    pub form_id: String,
    pub form_version: String,
    /// Whole years at 記載年月日.
    pub age: Option<i64>,
    /// Five-year band, `00-04` … `85-89`, `90+`, or `不明`.
    pub age_band: String,
    /// `1` 男, `2` 女, empty when not written.
    pub sex: String,
    /// 都道府県 from the patient's address, else the hospital's; `不明` when neither says.
    pub prefecture: String,
    /// 重症度基準: `該当`, `非該当`, `未記載`, or `対象外` when the form has no severity.
    pub severity: String,
    /// Kept items (id, de-identified value), in form order, blanks left out.
    pub items: Vec<(String, String)>,
}

/// How many sheets a scan looked at and why some were left out.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ScanCounts {
    /// Registered or approved sheets read.
    pub read: u64,
    /// Left out: no consent, or consent withdrawn.
    pub without_consent: u64,
    /// Left out: the form is not in this hub's catalogue.
    pub unknown_form: u64,
    /// Written.
    pub kept: u64,
}

/// The disease partition key of a form (see [`ResearchRecord::disease`]): a 医療意見書
/// (`FormKind::Iken`, 小児慢性特定疾病) is always `s` and its code, whatever number it carries,
/// so that it never shares a partition, a count or a name with the 指定難病 of the same number.
pub fn disease_key(form: &FormDef) -> String {
    if form.kind == nsdb_rules::form::FormKind::Iken || form.kokuji == 0 {
        let code = form
            .id
            .strip_prefix("iken-")
            .unwrap_or(&form.id)
            .replace('-', "_");
        format!("s{code}")
    } else if form.eda == 0 {
        format!("{:03}", form.kokuji)
    } else {
        format!("{:03}-{}", form.kokuji, form.eda)
    }
}

/// Each disease partition key of the catalogue ([`disease_key`]) with the name the ministry's
/// page shows for it: the programme, the number people know it by and the disease, e.g.
/// `指定難病 告示番号6 パーキンソン病`, `小児慢性特定疾病 15-02-006 大理石骨病`.
pub fn disease_labels(catalogue: &nsdb_rules::Catalogue) -> BTreeMap<String, String> {
    catalogue
        .forms()
        .into_iter()
        .map(|f| {
            let label = match f.kind {
                nsdb_rules::form::FormKind::Rinko => {
                    format!("指定難病 告示番号{} {}", f.number(), f.disease)
                }
                nsdb_rules::form::FormKind::Iken => {
                    format!("小児慢性特定疾病 {} {}", f.number(), f.disease)
                }
            };
            (disease_key(f), label)
        })
        .collect()
}

/// An export as the ministry's page lists it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ExportRow {
    pub id: i64,
    pub created_at_ms: i64,
    pub sheets: u64,
    /// The smallest group over (age band, sex, prefecture, disease).
    pub k: u64,
    pub below_k5: u64,
    pub files: Vec<String>,
}

impl crate::Node {
    fn require_hub(&self) -> Result<(), ResearchError> {
        if self.role() == crate::NodeRole::Hub {
            Ok(())
        } else {
            Err(ResearchError::NotHub)
        }
    }

    /// The pseudonym secret, made on first use (writer thread).
    async fn research_secret(&self) -> crate::Result<Secret> {
        let now = self.clock.now_ms();
        self.store
            .write(move |c| Ok::<_, crate::Error>(secret(c, now)?))
            .await
    }

    /// Fills the research rows still pending (sheets changed outside `store_sheet`, or stored
    /// before the rows existed) from their documents, [`rows::REFRESH_CHUNK`] per writer
    /// transaction so that saves go on meanwhile. Returns how many were filled.
    pub async fn research_refresh_rows(&self) -> crate::Result<u64> {
        self.require_hub()?;
        let secret = self.research_secret().await?;
        let mut filled = 0u64;
        loop {
            let (catalogue, secret) = (self.catalogue.clone(), secret.clone());
            let n = self
                .store
                .write(move |c| Ok::<_, crate::Error>(rows::refresh(c, &catalogue, &secret)?))
                .await?;
            if n == 0 {
                return Ok(filled);
            }
            filled += n as u64;
        }
    }

    /// `nsdb research export`: writes every consented sheet, de-identified, into `out` (see
    /// `export`), records the export with its k-anonymity figure and audits it (operator, no
    /// user). Fills pending rows first ([`Self::research_refresh_rows`]), then reads the rows on
    /// a reader thread; the database is not locked for writers meanwhile.
    pub async fn research_export(
        &self,
        out: std::path::PathBuf,
        formats: export::Formats,
    ) -> crate::Result<export::ExportSummary> {
        self.require_hub()?;
        self.research_refresh_rows().await?;
        let secret = self.research_secret().await?;
        let catalogue = self.catalogue.clone();
        let now = self.clock.now_ms();
        let dir = out.clone();
        let summary = self
            .store
            .read(move |c| {
                Ok::<_, crate::Error>(export::export(c, &catalogue, &secret, &dir, formats, now)?)
            })
            .await?;
        let s = summary.clone();
        let dir = std::fs::canonicalize(&out).unwrap_or(out);
        self.store
            .write(move |c| {
                let tx = c.transaction()?;
                tx.execute(
                    "INSERT INTO research_exports (created_at, dir, sheets, k_min, below_k5,
                        secret_since, files) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    params![
                        s.created_at_ms,
                        dir.display().to_string(),
                        s.counts.kept as i64,
                        s.k_anonymity.k as i64,
                        s.k_anonymity.below_k5 as i64,
                        s.secret_since_ms,
                        serde_json::to_string(&s.files).unwrap_or_default(),
                    ],
                )?;
                let id = tx.last_insert_rowid().to_string();
                let detail = format!("sheets={} k={}", s.counts.kept, s.k_anonymity.k);
                crate::audit::append(
                    &tx,
                    crate::audit::Entry {
                        at_ms: s.created_at_ms,
                        user: None,
                        action: "research_export",
                        target: Some(&id),
                        detail: Some(&detail),
                    },
                )?;
                tx.commit()?;
                Ok::<_, crate::Error>(())
            })
            .await?;
        Ok(summary)
    }

    /// `nsdb research stats` (and the page's 集計を更新): counts every consented sheet into
    /// `research_counts`. Returns what was read and the number of cells.
    pub async fn research_build_stats(&self) -> crate::Result<(ScanCounts, usize)> {
        self.require_hub()?;
        self.research_refresh_rows().await?;
        let (counts, cube) = self
            .store
            .read(move |c| Ok::<_, crate::Error>(stats::count(c)?))
            .await?;
        let cells = cube.len();
        let now = self.clock.now_ms();
        self.store
            .write(move |c| {
                stats::store(c, &cube)?;
                c.execute(
                    "INSERT OR REPLACE INTO node_meta (key, value) VALUES ('research_counts_at', ?1)",
                    [now.to_string()],
                )?;
                Ok::<_, crate::Error>(())
            })
            .await?;
        Ok((counts, cells))
    }

    /// `nsdb research rotate-secret`: a new pseudonym secret (audited). Exports made after it
    /// do not link to those made before. Every research row is written again (at the next
    /// export) under the new secret.
    pub async fn research_rotate_secret(&self) -> crate::Result<i64> {
        self.require_hub()?;
        let now = self.clock.now_ms();
        self.store
            .write(move |c| {
                let tx = c.transaction()?;
                let s = rotate_secret(&tx, now)?;
                rows::relist_all(&tx)?;
                crate::audit::append(
                    &tx,
                    crate::audit::Entry {
                        at_ms: now,
                        user: None,
                        action: "research_rotate_secret",
                        target: None,
                        detail: None,
                    },
                )?;
                tx.commit()?;
                Ok::<_, crate::Error>(s.since_ms)
            })
            .await
    }

    /// A published (suppressed) table of the stored counts, for the ministry.
    pub async fn research_table(
        &self,
        p: &crate::accounts::policy::Principal,
        filter: stats::Filter,
        rows: stats::Dim,
        cols: stats::Dim,
    ) -> crate::Result<(stats::Published, Option<i64>)> {
        use crate::accounts::policy::{Action, Target, authorize};
        authorize(p, Action::ResearchData, Target::None)?;
        self.require_hub()?;
        self.store
            .read(move |c| {
                let counts = stats::load(c, &filter)?;
                let at: Option<i64> = c
                    .query_row(
                        "SELECT value FROM node_meta WHERE key = 'research_counts_at'",
                        [],
                        |r| r.get::<_, String>(0),
                    )
                    .optional()?
                    .and_then(|v| v.parse().ok());
                Ok::<_, crate::Error>((stats::suppress(&stats::table(&counts, rows, cols)), at))
            })
            .await
    }

    /// The values the stored counts hold for a dimension (the page's filter choices).
    pub async fn research_values(
        &self,
        p: &crate::accounts::policy::Principal,
        dim: stats::Dim,
    ) -> crate::Result<Vec<String>> {
        use crate::accounts::policy::{Action, Target, authorize};
        authorize(p, Action::ResearchData, Target::None)?;
        self.store
            .read(move |c| Ok::<_, crate::Error>(stats::values(c, dim)?))
            .await
    }

    /// The exports made, newest first.
    pub async fn research_exports(
        &self,
        p: &crate::accounts::policy::Principal,
    ) -> crate::Result<Vec<ExportRow>> {
        use crate::accounts::policy::{Action, Target, authorize};
        authorize(p, Action::ResearchData, Target::None)?;
        self.store
            .read(|c| {
                let mut st = c.prepare(
                    "SELECT id, created_at, sheets, k_min, below_k5, files FROM research_exports
                     ORDER BY id DESC",
                )?;
                let rows = st.query_map([], |r| {
                    Ok(ExportRow {
                        id: r.get(0)?,
                        created_at_ms: r.get(1)?,
                        sheets: r.get::<_, i64>(2)? as u64,
                        k: r.get::<_, i64>(3)? as u64,
                        below_k5: r.get::<_, i64>(4)? as u64,
                        files: serde_json::from_str(&r.get::<_, String>(5)?).unwrap_or_default(),
                    })
                })?;
                Ok::<_, crate::Error>(rows.collect::<Result<Vec<_>, _>>()?)
            })
            .await
    }

    /// One file of an export for download: its path on disk, once `file` is checked to be one
    /// the export wrote. The download is audited (user, export id, file). Errors:
    /// `SheetNotFound`-like `Invalid` for an unknown export or file.
    pub async fn research_download(
        &self,
        p: &crate::accounts::policy::Principal,
        export_id: i64,
        file: String,
    ) -> crate::Result<std::path::PathBuf> {
        use crate::accounts::policy::{Action, Target, authorize};
        authorize(p, Action::ResearchData, Target::None)?;
        let uid = p.user_id;
        let now = self.clock.now_ms();
        self.store
            .write(move |c| -> crate::Result<std::path::PathBuf> {
                let row: Option<(String, String)> = c
                    .query_row(
                        "SELECT dir, files FROM research_exports WHERE id = ?1",
                        [export_id],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .optional()?;
                let Some((dir, files)) = row else {
                    return Err(crate::Error::Invalid(format!(
                        "研究用データ出力 {export_id} はありません。"
                    )));
                };
                let files: Vec<String> = serde_json::from_str(&files).unwrap_or_default();
                if !files.contains(&file) {
                    return Err(crate::Error::Invalid(format!(
                        "研究用データ出力 {export_id} にファイル {file} はありません。"
                    )));
                }
                let tx = c.transaction()?;
                let target = export_id.to_string();
                crate::audit::append(
                    &tx,
                    crate::audit::Entry {
                        at_ms: now,
                        user: Some(uid),
                        action: "research_download",
                        target: Some(&target),
                        detail: Some(&file),
                    },
                )?;
                tx.commit()?;
                Ok(std::path::Path::new(&dir).join(&file))
            })
            .await
    }
}
