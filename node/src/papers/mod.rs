//! The paper path (紙の臨個票, M15; docs/review.md, "The paper path"): a sheet a doctor wrote on
//! paper, scanned to PDF at the municipality, sent to the hub, where the contractor's data entry
//! (`UserKind::PaperEntry`) turns the contractor's XML into a registered sheet (登録種別 紙),
//! granted back to the municipality that sent the paper.
//!
//! Here: the `papers` table at both ends (a municipality's uploads, the hub's received papers),
//! validation of an upload, the list, the PDF (authorised and audited per view), the hub's
//! storing of a received paper (idempotent by id) and its entry of the data (one transaction:
//! the sheet, its access key from the hub's own leased block, the grant to the municipality's
//! node, the paper's state, the audit entry). Moving papers over the link is
//! `sync_service::requests`' job, which calls the functions of this module.
//!
//! Must never write a name, a birth date or a PDF's bytes to the audit log or the log (ids and
//! codes only), nor hand a paper's PDF to anyone but its municipality and the hub's data entry.

use std::collections::BTreeMap;

use nsdb_rules::check::Mode;
use nsdb_sync::{Author, Edit, Sheet, SheetId};
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::accounts::policy::{Action, Principal, Role, Target, authorize};
use crate::config::NodeRole;
use crate::sheets::{new_sheet_of, status, store_sheet};
use crate::{Error, Node, audit, keys};

/// The largest scanned PDF accepted, in bytes (5 MiB). A paper travels to the hub in one
/// request of the sync link, whose frames are at most 8 MiB (`nsdb_sync::wire::MAX_FRAME`);
/// base64 makes 5 MiB into 6.7 MiB, leaving room for the rest. A sheet of a few pages scanned
/// at 300 dpi in greyscale is well below this.
pub const MAX_PDF_BYTES: usize = 5 * 1024 * 1024;

/// A paper's state: 送信待ち (at the municipality, not yet at the hub), ハブ受領, データ入力済.
pub mod state {
    pub const PENDING: &str = "pending";
    pub const RECEIVED: &str = "received";
    pub const ENTERED: &str = "entered";

    /// The state as the screens show it.
    pub fn label(s: &str) -> &'static str {
        match s {
            PENDING => "送信待ち",
            RECEIVED => "ハブ受領",
            ENTERED => "データ入力済",
            _ => "不明",
        }
    }
}

/// What a reviewer uploads: the scanned PDF and what they read from the paper to find it
/// again.
#[derive(Debug, Clone, Default)]
pub struct PaperUpload {
    /// The PDF's bytes (`%PDF-` header, at most [`MAX_PDF_BYTES`]).
    pub pdf: Vec<u8>,
    /// 受給者/申請者 氏名カナ, as typed (half-width kana is made full-width).
    pub name_kana: String,
    /// 生年月日 as typed (`1980-04-01`, `昭和55年4月1日`, full-width digits).
    pub birth_date: String,
    /// 告示番号 (指定難病, `6`) or 小慢 疾患群-番号 (`12-1`).
    pub disease: String,
}

/// Why something about a paper was refused. `Field` names the form field the message belongs
/// beside (`pdf`, `name_kana`, `birth_date`, `disease`, `xml`); `Checks` carries every message
/// of a data file that failed the screen's checks.
#[derive(Debug, thiserror::Error)]
pub enum PaperError {
    #[error("{message}")]
    Field {
        field: &'static str,
        message: String,
    },
    #[error("データファイルにチェックエラーが{}件あります。", .0.len())]
    Checks(Vec<String>),
    #[error(transparent)]
    Node(#[from] Error),
}

impl From<rusqlite::Error> for PaperError {
    fn from(e: rusqlite::Error) -> Self {
        PaperError::Node(e.into())
    }
}

fn field(field: &'static str, message: impl Into<String>) -> PaperError {
    PaperError::Field {
        field,
        message: message.into(),
    }
}

/// One paper as the lists show it (受付一覧 at the municipality, the hub's data entry list).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct PaperRow {
    /// 32 hex digits.
    pub id: String,
    /// 自治体コード of the municipality that uploaded it.
    pub municipality: String,
    pub name_kana: String,
    /// `YYYY-MM-DD`
    pub birth_date: String,
    /// 告示番号 or 小慢 疾患群-番号, as given at upload.
    pub disease_number: String,
    /// The disease's name from the catalogue ("" if the catalogue lacks the number).
    pub disease: String,
    /// `pending`, `received` or `entered` ([`state`]).
    pub state: String,
    /// Unix ms of the upload (受付日).
    pub uploaded_at_ms: i64,
    pub received_at_ms: Option<i64>,
    /// The sheet entered from it, with its access key (11 digits).
    pub sheet_id: Option<String>,
    pub access_key: Option<String>,
    /// The PDF's size in bytes.
    pub pdf_bytes: i64,
}

/// A paper as the municipality sends it to the hub.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Outgoing {
    pub id: String,
    pub municipality: String,
    pub name_kana: String,
    pub birth_date: String,
    pub disease: String,
    /// hex SHA-256 of `pdf`.
    pub pdf_sha256: String,
    pub uploaded_at_ms: i64,
    #[serde(with = "b64")]
    pub pdf: Vec<u8>,
}

mod b64 {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        STANDARD.decode(text).map_err(serde::de::Error::custom)
    }
}

/// What the hub knows of a paper a municipality sent: its state and, once entered, the sheet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaperState {
    pub id: String,
    pub state: String,
    pub sheet_id: Option<String>,
    pub access_key: Option<String>,
}

/// Whether `bytes` are a PDF the node will keep: not empty, at most [`MAX_PDF_BYTES`], starting
/// with `%PDF-` and ending with `%%EOF` (a whole file). The message says what is wrong, in Japanese.
pub fn check_pdf(bytes: &[u8]) -> Result<(), String> {
    if bytes.is_empty() {
        return Err("スキャンした PDF ファイルを選んでください。".into());
    }
    if bytes.len() > MAX_PDF_BYTES {
        return Err(format!(
            "PDF が大きすぎます（{:.1} MB）。{} MB 以下になるよう、解像度を下げる（300 dpi・グレースケール程度）か、ページを分けてスキャンしてください。",
            bytes.len() as f64 / 1_048_576.0,
            MAX_PDF_BYTES / 1_048_576
        ));
    }
    if !bytes.starts_with(b"%PDF-") {
        return Err(
            "このファイルは PDF ではありません（先頭が %PDF- ではありません）。スキャナーで PDF として保存したファイルを選んでください。"
                .into(),
        );
    }
    // A whole PDF ends with its end-of-file marker (ISO 32000-1 §7.5.5), possibly followed by
    // a line end: a file cut short in transfer, or one that only starts like a PDF, does not.
    let tail = &bytes[bytes.len().saturating_sub(1024)..];
    if !tail.windows(5).any(|w| w == b"%%EOF") {
        return Err(
            "この PDF ファイルは途中で切れているか、壊れています（終わりの印 %%EOF がありません）。スキャンし直すか、元のファイルを選び直してください。"
                .into(),
        );
    }
    Ok(())
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

const ROW_COLUMNS: &str = "id, municipality, name_kana, birth_date, disease, state, uploaded_at,
    received_at, sheet_id, access_key, length(pdf)";

/// A row of [`ROW_COLUMNS`]; `disease` (the name) is filled by the caller from the catalogue.
fn read_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<PaperRow> {
    Ok(PaperRow {
        id: r.get(0)?,
        municipality: r.get(1)?,
        name_kana: r.get(2)?,
        birth_date: r.get(3)?,
        disease_number: r.get(4)?,
        disease: String::new(),
        state: r.get(5)?,
        uploaded_at_ms: r.get(6)?,
        received_at_ms: r.get(7)?,
        sheet_id: r.get(8)?,
        access_key: r.get(9)?,
        pdf_bytes: r.get(10)?,
    })
}

impl Node {
    fn disease_name(&self, number: &str) -> String {
        self.catalogue
            .diseases()
            .iter()
            .find(|d| d.number == number)
            .map(|d| d.name.clone())
            .unwrap_or_default()
    }

    /// 紙の臨個票受付: stores the scanned PDF of a paper sheet with what the reviewer `p` read
    /// from it, as a paper of `p`'s municipality in state 送信待ち; it goes to the hub at the
    /// next connection (`sync_service::send_papers`). Returns the paper's id (32 hex digits).
    /// Audited (`paper_upload`, ids only). Errors: [`PaperError::Field`] naming the field
    /// (`pdf`: not a PDF or too large; `name_kana`; `birth_date`; `disease`: no such 告示番号),
    /// or `Denied` for anyone but a municipality's reviewer.
    pub async fn upload_paper(&self, p: &Principal, up: PaperUpload) -> Result<String, PaperError> {
        authorize(p, Action::UploadPaper, Target::None).map_err(Error::from)?;
        if self.role() != NodeRole::Municipality {
            return Err(Error::Invalid(
                "紙の臨個票を受け付けるのは自治体のノードだけです。".into(),
            )
            .into());
        }
        check_pdf(&up.pdf).map_err(|m| field("pdf", m))?;
        let name_kana = self.kana_input(&up.name_kana).ok_or_else(|| {
            field(
                "name_kana",
                "氏名カナをカタカナで入力してください（例: ナンビョウ タロウ）。",
            )
        })?;
        let birth_date = self.date_input(&up.birth_date).ok_or_else(|| {
            field(
                "birth_date",
                "生年月日を 1980-04-01 や 昭和55年4月1日 の形で入力してください。",
            )
        })?;
        // Digits as clerks type them: full-width ６ is 6, ー/－ in 12－1 a hyphen.
        let disease: String = up
            .disease
            .trim()
            .chars()
            .map(|c| match c {
                '０'..='９' => char::from(b'0' + (c as u32 - '０' as u32) as u8),
                'ー' | '－' | '‐' | '―' | '−' => '-',
                c => c,
            })
            .collect();
        if self.disease_name(&disease).is_empty() {
            return Err(field(
                "disease",
                format!(
                    "告示番号「{disease}」の疾病はありません。指定難病は告示番号（例: 6）、小児慢性特定疾病は疾患群-番号（例: 12-1）で入力してください。"
                ),
            ));
        }
        let id = hex::encode(rand::random::<[u8; 16]>());
        let (pid, node, muni, uid, now) = (
            id.clone(),
            self.node_id.to_string(),
            p.institution.clone(),
            p.user_id,
            self.clock.now_ms(),
        );
        let sha = sha256_hex(&up.pdf);
        self.store
            .write(move |c| {
                let tx = c.transaction()?;
                tx.execute(
                    "INSERT INTO papers (id, municipality, node, name_kana, birth_date, disease,
                        pdf, pdf_sha256, uploaded_by, uploaded_at, state)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                    params![
                        pid,
                        muni,
                        node,
                        name_kana,
                        birth_date,
                        disease,
                        up.pdf,
                        sha,
                        uid as i64,
                        now,
                        state::PENDING
                    ],
                )?;
                audit::record(&tx, now, uid, "paper_upload", Some(&pid), None)?;
                tx.commit()?;
                Ok::<_, Error>(())
            })
            .await?;
        Ok(id)
    }

    fn kana_input(&self, typed: &str) -> Option<String> {
        let item = self
            .catalogue
            .form("rinko-006")
            .and_then(|f| f.item("patient.name_kana"));
        let v = match item {
            Some(item) => nsdb_rules::value::normalise(item, typed),
            None => typed.trim().to_string(),
        };
        let kana = |c: char| matches!(c, 'ァ'..='ヺ' | 'ー' | '・' | ' ' | '　');
        (!v.trim().is_empty() && v.chars().count() <= 100 && v.chars().all(kana)).then_some(v)
    }

    /// 生年月日 as typed (西暦 or 和暦), as `YYYY-MM-DD`; `None` when it is no date.
    fn date_input(&self, typed: &str) -> Option<String> {
        nsdb_rules::value::Date::typed(typed).map(|d| d.to_string())
    }

    /// The papers `p` works with, newest first (at most 500): a reviewer's municipality's
    /// uploads, or at the hub every paper received for the data entry. Audited (`paper_list`).
    pub async fn papers(&self, p: &Principal) -> crate::Result<Vec<PaperRow>> {
        let (condition, arg) = match p.role() {
            Role::PaperEntry => {
                authorize(p, Action::EnterPaper, Target::None)?;
                ("?1 = ?1", String::new())
            }
            _ => {
                authorize(p, Action::UploadPaper, Target::None)?;
                ("municipality = ?1", p.institution.clone())
            }
        };
        let sql = format!(
            "SELECT {ROW_COLUMNS} FROM papers WHERE {condition}
             ORDER BY uploaded_at DESC, id LIMIT 500"
        );
        let mut rows = self
            .store
            .read(move |c| {
                let mut st = c.prepare(&sql)?;
                let rows = st
                    .query_map([arg], read_row)?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                Ok::<_, Error>(rows)
            })
            .await?;
        for r in &mut rows {
            r.disease = self.disease_name(&r.disease_number);
        }
        let detail = crate::audit::shown(rows.iter().map(|r| r.id.as_str()));
        self.audit(p, "paper_list", None, Some(&detail)).await?;
        Ok(rows)
    }

    /// The paper entered as sheet `sheet_id`, if this node holds one (its id). Says nothing
    /// about access: the PDF itself is authorised by [`Node::paper_pdf`].
    pub async fn paper_of_sheet(&self, sheet_id: &str) -> crate::Result<Option<String>> {
        let sid = sheet_id.to_string();
        self.store
            .read(move |c| {
                Ok(
                    c.query_row("SELECT id FROM papers WHERE sheet_id = ?1", [&sid], |r| {
                        r.get(0)
                    })
                    .optional()?,
                )
            })
            .await
    }

    /// One paper's row, for `p` (authorised as its PDF is).
    pub async fn paper(&self, p: &Principal, id: &str) -> crate::Result<PaperRow> {
        let pid = id.to_string();
        let sql = format!("SELECT {ROW_COLUMNS} FROM papers WHERE id = ?1");
        let found = self
            .store
            .read(move |c| Ok::<_, Error>(c.query_row(&sql, [&pid], read_row).optional()?))
            .await?;
        let Some(mut row) = found else {
            return Err(Error::Denied(crate::accounts::policy::Denied));
        };
        authorize(
            p,
            Action::ViewPaper,
            Target::Paper {
                ours: self.paper_is_theirs(p, &row.municipality),
            },
        )?;
        row.disease = self.disease_name(&row.disease_number);
        Ok(row)
    }

    /// Whether a paper of `municipality` held here is `p`'s: at a municipality, a reviewer of
    /// that municipality; at the hub, its data entry.
    fn paper_is_theirs(&self, p: &Principal, municipality: &str) -> bool {
        match (self.role(), p.role()) {
            (NodeRole::Municipality, Role::Reviewer) => p.institution == municipality,
            (NodeRole::Hub, Role::PaperEntry) => true,
            _ => false,
        }
    }

    /// The PDF of paper `id`, for its municipality's reviewers and the hub's data entry only.
    /// Every view is audited (`paper_view`), and every refusal (`paper_view_denied`); an
    /// unknown id is refused like a paper of someone else.
    pub async fn paper_pdf(&self, p: &Principal, id: &str) -> crate::Result<Vec<u8>> {
        Ok(self.paper_pdf_named(p, id).await?.0)
    }

    /// [`Node::paper_pdf`] with the paper's disease as a file name would say it: the name from
    /// the catalogue, else the number given at upload (empty for an unknown paper).
    pub async fn paper_pdf_named(
        &self,
        p: &Principal,
        id: &str,
    ) -> crate::Result<(Vec<u8>, String)> {
        let pid = id.to_string();
        let found: Option<(String, Vec<u8>, String)> = self
            .store
            .read(move |c| {
                Ok::<_, Error>(
                    c.query_row(
                        "SELECT municipality, pdf, disease FROM papers WHERE id = ?1",
                        [&pid],
                        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                    )
                    .optional()?,
                )
            })
            .await?;
        let ours = found
            .as_ref()
            .is_some_and(|(m, _, _)| self.paper_is_theirs(p, m));
        if let Err(denied) = authorize(p, Action::ViewPaper, Target::Paper { ours }) {
            self.audit(p, "paper_view_denied", Some(id), None).await?;
            return Err(denied.into());
        }
        self.audit(p, "paper_view", Some(id), None).await?;
        Ok(found
            .map(|(_, pdf, number)| {
                let name = self.disease_name(&number);
                (pdf, if name.is_empty() { number } else { name })
            })
            .unwrap_or_default())
    }

    /// At the hub: enters the data of paper `id` from the contractor's XML (the hospital XML
    /// layout, docs/xml-layout.md, one sheet, unsealed) for the data entry user `p`. The sheet
    /// must be of the paper's disease and birth date and pass the screen's checks
    /// (`Mode::Complete`); it is stored registered, 登録種別 紙, with an access key from the
    /// hub's own leased block (the hub leases itself one when it has none left), granted to the
    /// node that sent the paper, which records it as resolved when it next asks about its
    /// papers. Returns the sheet id. Audited (`paper_enter`). Errors: `Field { field: "xml" }`
    /// for a file that cannot be read or does not match the paper, [`PaperError::Checks`] with
    /// every check message, or `Denied` / a paper already entered.
    pub async fn enter_paper(
        &self,
        p: &Principal,
        id: &str,
        xml: &[u8],
    ) -> Result<String, PaperError> {
        authorize(p, Action::EnterPaper, Target::None).map_err(Error::from)?;
        let paper = self.paper(p, id).await?;
        if paper.state == state::ENTERED {
            return Err(Error::Invalid(format!(
                "この紙の臨個票は入力済みです（アクセスキー {}）。",
                paper.access_key.as_deref().unwrap_or("—")
            ))
            .into());
        }
        if xml.is_empty() {
            return Err(field("xml", "データファイル（XML）を選んでください。"));
        }
        let sheets = nsdb_rules::xml::read(&self.catalogue, xml)
            .map_err(|e| field("xml", format!("XML を読めません: {e}")))?;
        let [sheet] = sheets.as_slice() else {
            return Err(field(
                "xml",
                format!(
                    "1つのファイルには様式を1つだけ入れてください（{}件あります）。",
                    sheets.len()
                ),
            ));
        };
        let form = self.catalogue.form(&sheet.form).ok_or_else(|| {
            field(
                "xml",
                format!("様式「{}」はこのノードにありません。", sheet.form),
            )
        })?;
        if let Some(e) = sheet.errors.first() {
            return Err(field(
                "xml",
                format!("{}行{}列: {}", e.line, e.column, e.message),
            ));
        }
        let expected = self
            .catalogue
            .diseases()
            .iter()
            .find(|d| d.number == paper.disease_number)
            .map(|d| d.id.clone());
        if expected.as_deref() != Some(form.id.as_str()) {
            return Err(field(
                "xml",
                format!(
                    "データの様式（{}）が、受付時の告示番号 {}（{}）と一致しません。",
                    form.disease, paper.disease_number, paper.disease
                ),
            ));
        }
        // The data must be the paper's patient: the name in kana as the municipality read it
        // from the paper (spaces and the middle dot aside), and the birth date.
        let squash = |v: &str| -> String {
            v.chars()
                .filter(|c| !c.is_whitespace() && *c != '・')
                .collect()
        };
        let kana = sheet.values.get("patient.name_kana").map(|v| squash(v));
        if kana.as_deref() != Some(squash(&paper.name_kana).as_str()) {
            return Err(field(
                "xml",
                format!(
                    "データの氏名カナ（{}）が、自治体が受付時に入力した氏名カナ（{}）と一致しません。紙の臨個票を確かめてください。",
                    sheet
                        .values
                        .get("patient.name_kana")
                        .map_or("未記入", String::as_str),
                    paper.name_kana
                ),
            ));
        }
        if sheet.values.get("patient.birth_date") != Some(&paper.birth_date) {
            return Err(field(
                "xml",
                "データの生年月日が、自治体が受付時に入力した生年月日と一致しません。紙の臨個票を確かめてください。",
            ));
        }
        let today = self.clock.today_jst();
        let messages = nsdb_rules::check(form, &sheet.values, Mode::Complete, today);
        if !messages.is_empty() {
            return Err(PaperError::Checks(
                messages
                    .iter()
                    .map(|m| {
                        let labels: Vec<&str> = m
                            .items
                            .iter()
                            .map(|i| form.item(i).map_or(i.as_str(), |it| it.label.as_str()))
                            .collect();
                        if labels.is_empty() {
                            m.text.clone()
                        } else {
                            format!("{}: {}", labels.join("・"), m.text)
                        }
                    })
                    .collect(),
            ));
        }
        let now = self.clock.now_ms();
        let edit = Edit {
            author: Author {
                node: self.node_id,
                user: p.user_id,
            },
            at_ms: now,
            message: "紙の臨個票入力",
        };
        let sid = SheetId::random();
        let mut doc = Sheet::new(
            new_sheet_of(form, sid, &p.institution, None, None, now),
            edit,
        );
        let values: BTreeMap<String, Option<String>> = sheet
            .values
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| (k.clone(), Some(v.clone())))
            .collect();
        doc.set_fields(&values, edit);
        doc.set_author_name(&p.name, "紙の臨個票入力（委託）", edit);
        let (own, uid, pid, sid) = (
            self.node_id.to_string(),
            p.user_id,
            paper.id.clone(),
            sid.to_string(),
        );
        let entered = self
            .store
            .write(move |c| {
                let tx = c.transaction()?;
                let (st, to): (String, String) = tx.query_row(
                    "SELECT state, node FROM papers WHERE id = ?1",
                    [&pid],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )?;
                if st == state::ENTERED {
                    return Ok(Err("この紙の臨個票は入力済みです。".to_string()));
                }
                // The hub leases itself a block the way it leases to hospitals.
                let Some(key) = keys::issue_leasing(&tx, &own, now)? else {
                    return Ok(Err("アクセスキーのブロックが残っていません。".into()));
                };
                doc.set_access_key(key.digits(), edit);
                doc.set_status(status::REGISTERED, edit);
                store_sheet(&tx, &mut doc, "paper", now)?;
                // Opens the sheet to the municipality's node (the row `sync_service::grant`
                // writes), so it arrives there by sync.
                tx.execute(
                    "INSERT OR IGNORE INTO sync_grants (sheet_id, node, granted_at)
                     VALUES (?1, ?2, ?3)",
                    params![sid, to, now],
                )?;
                audit::record(&tx, now, uid, "sync_grant", Some(&sid), Some(&to))?;
                tx.execute(
                    "UPDATE papers SET state = ?2, sheet_id = ?3, access_key = ?4,
                        entered_at = ?5 WHERE id = ?1",
                    params![pid, state::ENTERED, sid, key.digits(), now],
                )?;
                let detail = format!("paper={pid}");
                audit::record(&tx, now, uid, "paper_enter", Some(&sid), Some(&detail))?;
                tx.commit()?;
                Ok::<_, Error>(Ok(sid))
            })
            .await?;
        entered.map_err(|m| PaperError::Node(Error::Invalid(m)))
    }
}

// ------------------------------------------------ moving papers (called by sync_service)

/// At a municipality: the ids of the papers not yet at the hub, oldest first, at most `limit`.
pub fn pending(c: &Connection, limit: u32) -> rusqlite::Result<Vec<String>> {
    let mut st =
        c.prepare("SELECT id FROM papers WHERE state = ?1 ORDER BY uploaded_at, id LIMIT ?2")?;
    st.query_map(params![state::PENDING, limit], |r| r.get(0))?
        .collect()
}

/// At a municipality: paper `id` as it is sent to the hub, while it is still pending.
pub fn outgoing(c: &Connection, id: &str) -> rusqlite::Result<Option<Outgoing>> {
    c.query_row(
        "SELECT id, municipality, name_kana, birth_date, disease, pdf_sha256, uploaded_at, pdf
         FROM papers WHERE id = ?1 AND state = ?2",
        params![id, state::PENDING],
        |r| {
            Ok(Outgoing {
                id: r.get(0)?,
                municipality: r.get(1)?,
                name_kana: r.get(2)?,
                birth_date: r.get(3)?,
                disease: r.get(4)?,
                pdf_sha256: r.get(5)?,
                uploaded_at_ms: r.get(6)?,
                pdf: r.get(7)?,
            })
        },
    )
    .optional()
}

/// At a municipality: the ids of papers the hub holds but whose data is not entered yet.
pub fn awaiting_entry(c: &Connection) -> rusqlite::Result<Vec<String>> {
    let mut st =
        c.prepare("SELECT id FROM papers WHERE state = ?1 ORDER BY uploaded_at LIMIT 500")?;
    st.query_map([state::RECEIVED], |r| r.get(0))?.collect()
}

/// At a municipality: the hub acknowledged paper `id` (ハブ受領). Audited.
pub fn mark_received(c: &Connection, id: &str, now: i64) -> rusqlite::Result<()> {
    let changed = c.execute(
        "UPDATE papers SET state = ?2, received_at = ?3 WHERE id = ?1 AND state = ?4",
        params![id, state::RECEIVED, now, state::PENDING],
    )?;
    if changed > 0 {
        audit::append(
            c,
            audit::Entry {
                at_ms: now,
                user: None,
                action: "paper_sent",
                target: Some(id),
                detail: None,
            },
        )?;
    }
    Ok(())
}

/// At a municipality: the hub entered paper `id` as sheet `sheet_id` with access key `key`.
/// Records the paper's state and a `resolutions` row for the uploading reviewer (the sheet
/// joins 受付一覧 as if resolved by key, and is granted to this node at the hub), and marks a
/// sheet already arrived 登録種別 紙. Audited (`paper_entered`).
pub fn mark_entered(
    c: &Connection,
    id: &str,
    sheet_id: &str,
    key: &str,
    now: i64,
) -> rusqlite::Result<()> {
    let user: Option<Option<i64>> = c
        .query_row(
            "SELECT uploaded_by FROM papers WHERE id = ?1 AND state != ?2",
            params![id, state::ENTERED],
            |r| r.get(0),
        )
        .optional()?;
    let Some(user) = user else {
        return Ok(());
    };
    c.execute(
        "UPDATE papers SET state = ?2, sheet_id = ?3, access_key = ?4, entered_at = ?5
         WHERE id = ?1",
        params![id, state::ENTERED, sheet_id, key, now],
    )?;
    c.execute(
        "INSERT OR IGNORE INTO resolutions (sheet_id, access_key, user_id, resolved_at)
         VALUES (?1, ?2, ?3, ?4)",
        params![sheet_id, key, user.unwrap_or(0), now],
    )?;
    mark_paper_sheets(c)?;
    audit::append(
        c,
        audit::Entry {
            at_ms: now,
            user: None,
            action: "paper_entered",
            target: Some(sheet_id),
            detail: Some(&format!("paper={id}")),
        },
    )
}

/// Sets 登録種別 紙 on the sheets entered from this node's papers that have arrived (a sheet
/// received by sync is stored as `screen`; its paper says otherwise). Cheap when nothing
/// changes.
pub fn mark_paper_sheets(c: &Connection) -> rusqlite::Result<usize> {
    c.execute(
        "UPDATE sheets SET registration = 'paper' WHERE registration != 'paper'
         AND id IN (SELECT sheet_id FROM papers WHERE sheet_id IS NOT NULL)",
        [],
    )
}

/// What the hub did with a paper a municipality sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Received {
    /// Stored now.
    Stored,
    /// Stored before (a retry after a lost answer): nothing changed.
    AlreadyHeld,
}

/// At the hub: stores paper `paper` sent by the municipality node `from` (32 hex digits), once:
/// a second arrival of the same id and bytes is [`Received::AlreadyHeld`]. Refused (`Err` with
/// the reason, in words for the sender's log) when the PDF is not one, its hash does not match,
/// or the id is held for another node or other bytes. Audited (`paper_receive`).
pub fn receive(
    c: &Connection,
    from: &str,
    paper: &Outgoing,
    now: i64,
) -> rusqlite::Result<Result<Received, String>> {
    if let Err(m) = check_pdf(&paper.pdf) {
        return Ok(Err(m));
    }
    if sha256_hex(&paper.pdf) != paper.pdf_sha256 {
        return Ok(Err("the PDF does not match its hash".into()));
    }
    if paper.id.len() != 32 || !paper.id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(Err("a paper id is 32 hex digits".into()));
    }
    let held: Option<(String, String)> = c
        .query_row(
            "SELECT node, pdf_sha256 FROM papers WHERE id = ?1",
            [&paper.id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    if let Some((node, sha)) = held {
        return Ok(if node == from && sha == paper.pdf_sha256 {
            Ok(Received::AlreadyHeld)
        } else {
            Err("this paper id is held for another paper".into())
        });
    }
    c.execute(
        "INSERT INTO papers (id, municipality, node, name_kana, birth_date, disease, pdf,
            pdf_sha256, uploaded_by, uploaded_at, state, received_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, NULL, ?9, ?10, ?11)",
        params![
            paper.id,
            paper.municipality,
            from,
            paper.name_kana,
            paper.birth_date,
            paper.disease,
            paper.pdf,
            paper.pdf_sha256,
            paper.uploaded_at_ms,
            state::RECEIVED,
            now
        ],
    )?;
    audit::append(
        c,
        audit::Entry {
            at_ms: now,
            user: None,
            action: "paper_receive",
            target: Some(&paper.id),
            detail: Some(&format!("node={from}")),
        },
    )?;
    Ok(Ok(Received::Stored))
}

/// At the hub: the states of papers `ids` sent by node `from` (others' papers are left out).
pub fn states(c: &Connection, from: &str, ids: &[String]) -> rusqlite::Result<Vec<PaperState>> {
    let mut st = c.prepare_cached(
        "SELECT state, sheet_id, access_key FROM papers WHERE id = ?1 AND node = ?2",
    )?;
    let mut out = Vec::new();
    for id in ids.iter().take(500) {
        if let Some((state, sheet_id, access_key)) = st
            .query_row(params![id, from], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .optional()?
        {
            out.push(PaperState {
                id: id.clone(),
                state,
                sheet_id,
                access_key,
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_pdf_within_the_limit_is_kept() {
        assert!(check_pdf(b"%PDF-1.7\n...\n%%EOF\n").is_ok());
        // Only the start of a PDF: refused (found when tried with "%PDF-1.4\ngarbage").
        assert!(
            check_pdf(b"%PDF-1.4\ngarbage")
                .unwrap_err()
                .contains("%%EOF")
        );
        assert!(check_pdf(b"").unwrap_err().contains("選んで"));
        assert!(
            check_pdf(b"PK\x03\x04")
                .unwrap_err()
                .contains("PDF ではありません")
        );
        let mut big = b"%PDF-1.4\n".to_vec();
        big.resize(MAX_PDF_BYTES + 1, b' ');
        big.extend_from_slice(b"%%EOF");
        assert!(check_pdf(&big).unwrap_err().contains("大きすぎます"));
    }

    #[test]
    fn a_paper_travels_as_base64_in_json() {
        let out = Outgoing {
            id: "a".repeat(32),
            municipality: "130001".into(),
            name_kana: "カミ ハナコ".into(),
            birth_date: "1980-04-01".into(),
            disease: "6".into(),
            pdf_sha256: sha256_hex(b"%PDF-1.4"),
            uploaded_at_ms: 1,
            pdf: b"%PDF-1.4".to_vec(),
        };
        let json = serde_json::to_string(&out).unwrap();
        assert!(json.contains("JVBERi0xLjQ="), "{json}");
        let back: Outgoing = serde_json::from_str(&json).unwrap();
        assert_eq!(back.pdf, out.pdf);
    }
}
