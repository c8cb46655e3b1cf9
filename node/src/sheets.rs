//! Sheets (臨床調査個人票・医療意見書): create, read, save and search, for the UI and the API alike.
//!
//! Each sheet is stored as its Automerge document plus a projection of the list columns (M9).
//! Every function authorises through `policy` before it touches a sheet and writes the access to
//! the audit log in the same transaction as the change. Nothing here renders or logs values.

use std::collections::BTreeMap;

use nsdb_rules::check::{Message, Mode};
use nsdb_rules::{FormDef, value};
use nsdb_sync::{Author, Edit, NewSheet, Sheet, SheetId};
use rusqlite::{Connection, OptionalExtension, Row, params};
use serde::{Deserialize, Serialize};

use crate::audit;
use crate::policy::{Action, Principal, Role, Target, authorize};
use crate::{Error, Node, Result};

/// Rows per page of the sheet list.
pub const PAGE_SIZE: u32 = 20;

/// One line of the sheet list (M9), as stored in the projection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct SheetRow {
    pub id: String,
    pub form_id: String,
    /// 告示番号
    pub kokuji: u16,
    /// 枝番
    pub eda: u16,
    pub disease: String,
    pub institution: String,
    /// 申請種別: "1" 新規, "2" 更新.
    pub application_type: Option<String>,
    pub insurer_no: Option<String>,
    pub insured_no: Option<String>,
    pub access_key: Option<String>,
    pub name: Option<String>,
    pub name_kana: Option<String>,
    pub birth_date: Option<String>,
    /// "1" 男, "2" 女.
    pub sex: Option<String>,
    pub doctor_name: Option<String>,
    /// 記載年月日
    pub written_date: Option<String>,
    /// 自治体連携日
    pub linked_date: Option<String>,
    pub status: String,
    /// 登録種別: screen, bulk or paper.
    pub registration: String,
    pub updated_at_ms: i64,
}

/// A sheet with its values and what the checks say about them.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SheetDetail {
    #[serde(flatten)]
    pub row: SheetRow,
    pub form_version: String,
    /// Item id to stored value.
    pub items: BTreeMap<String, String>,
    /// What the checks say (drafts: malformed values only).
    #[schema(value_type = Vec<Object>)]
    pub messages: Vec<Message>,
}

/// A search of the sheet list.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
pub struct SheetQuery {
    /// Name in kana (prefix), insured number, insurer number or access key.
    pub q: Option<String>,
    /// 1-based page.
    pub page: Option<u32>,
}

/// One page of the sheet list.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SheetPage {
    pub total: u64,
    pub page: u32,
    pub page_size: u32,
    pub rows: Vec<SheetRow>,
}

const ROW_COLUMNS: &str = "s.id, s.form_id, s.kokuji, s.eda, s.disease, s.institution,
    s.application_type, s.insurer_no, s.insured_no, s.access_key, s.name, s.name_kana,
    s.birth_date, s.sex, u.name AS doctor_name, s.written_date, s.linked_date, s.status,
    s.registration, s.updated_at";

fn row_from(r: &Row<'_>) -> rusqlite::Result<SheetRow> {
    Ok(SheetRow {
        id: r.get(0)?,
        form_id: r.get(1)?,
        kokuji: r.get(2)?,
        eda: r.get(3)?,
        disease: r.get(4)?,
        institution: r.get(5)?,
        application_type: r.get(6)?,
        insurer_no: r.get(7)?,
        insured_no: r.get(8)?,
        access_key: r.get(9)?,
        name: r.get(10)?,
        name_kana: r.get(11)?,
        birth_date: r.get(12)?,
        sex: r.get(13)?,
        doctor_name: r.get(14)?,
        written_date: r.get(15)?,
        linked_date: r.get(16)?,
        status: r.get(17)?,
        registration: r.get(18)?,
        updated_at_ms: r.get(19)?,
    })
}

fn load_row(c: &Connection, id: &str) -> rusqlite::Result<Option<SheetRow>> {
    c.query_row(
        &format!("SELECT {ROW_COLUMNS} FROM sheets s LEFT JOIN users u ON u.id = s.doctor WHERE s.id = ?1"),
        [id],
        row_from,
    )
    .optional()
}

fn load_doc(c: &Connection, id: &str) -> Result<Sheet> {
    let bytes: Vec<u8> = c
        .query_row("SELECT doc FROM sheets WHERE id = ?1", [id], |r| r.get(0))
        .optional()?
        .ok_or_else(|| Error::SheetNotFound(id.to_string()))?;
    Sheet::load(&bytes).map_err(|e| Error::Document {
        id: id.to_string(),
        reason: e.to_string(),
    })
}

/// Writes a sheet's document and its list projection.
pub fn store_sheet(
    c: &Connection,
    sheet: &mut Sheet,
    registration: &str,
    now_ms: i64,
) -> rusqlite::Result<()> {
    let h = sheet.header();
    let f = sheet.fields();
    let get = |k: &str| f.get(k).filter(|v| !v.is_empty()).cloned();
    let doc = sheet.save();
    c.execute(
        "INSERT INTO sheets (id, doc, form_id, form_version, kokuji, eda, disease, institution,
            doctor, application_type, insurer_no, insured_no, access_key, name, name_kana,
            birth_date, sex, written_date, status, registration, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17,
            ?18, ?19, ?20, ?21, ?22)
         ON CONFLICT(id) DO UPDATE SET doc = excluded.doc, form_version = excluded.form_version,
            doctor = excluded.doctor, application_type = excluded.application_type,
            insurer_no = excluded.insurer_no, insured_no = excluded.insured_no,
            access_key = excluded.access_key, name = excluded.name,
            name_kana = excluded.name_kana, birth_date = excluded.birth_date,
            sex = excluded.sex, written_date = excluded.written_date,
            status = excluded.status, updated_at = excluded.updated_at",
        params![
            h.id.to_string(),
            doc,
            h.form_id,
            h.form_version,
            h.kokuji,
            h.eda,
            h.disease,
            h.institution,
            h.doctor.map(|d| d as i64),
            get("application.type"),
            get("patient.insurer_no"),
            get("patient.insured_no"),
            h.access_key,
            get("patient.name"),
            get("patient.name_kana"),
            get("patient.birth_date"),
            get("patient.sex"),
            get("doctor.written_date"),
            h.status,
            registration,
            h.created_ms,
            now_ms,
        ],
    )?;
    Ok(())
}

impl Node {
    fn author(&self, p: &Principal) -> Author {
        Author {
            node: self.node_id,
            user: p.user_id,
        }
    }

    fn form(&self, id: &str) -> Result<&FormDef> {
        self.catalogue
            .form(id)
            .ok_or_else(|| Error::UnknownForm(id.to_string()))
    }

    fn detail(&self, row: SheetRow, sheet: &Sheet) -> Result<SheetDetail> {
        let form = self.form(&row.form_id)?;
        let items = sheet.fields();
        let messages = nsdb_rules::check(form, &items, Mode::Draft, self.clock.today_jst());
        Ok(SheetDetail {
            form_version: sheet.header().form_version,
            row,
            items,
            messages,
        })
    }

    /// Starts a new sheet of `form_id` at the user's institution, with the values given.
    pub async fn create_sheet(
        &self,
        p: &Principal,
        form_id: &str,
        input: &BTreeMap<String, String>,
    ) -> Result<SheetDetail> {
        authorize(p, Action::CreateSheet, Target::None)?;
        let form = self.form(form_id)?;
        let values = nsdb_rules::normalise_input(form, input)?;
        let now = self.clock.now_ms();
        let edit = Edit {
            author: self.author(p),
            at_ms: now,
            message: "作成",
        };
        let id = SheetId::random();
        let mut sheet = Sheet::new(
            NewSheet {
                id,
                form_id: form.id.clone(),
                form_version: form.version.clone(),
                kokuji: form.kokuji,
                eda: form.eda,
                disease: form.disease.clone(),
                institution: p.institution.clone(),
                doctor: (p.role() == Role::Doctor).then_some(p.user_id),
                carried_from: None,
                created_ms: now,
            },
            edit,
        );
        let changes: BTreeMap<String, Option<String>> = values
            .into_iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| (k, Some(v)))
            .collect();
        sheet.set_fields(&changes, edit);
        let uid = p.user_id;
        let sid = id.to_string();
        let sheet = self
            .store
            .write(move |c| {
                let tx = c.transaction()?;
                store_sheet(&tx, &mut sheet, "screen", now)?;
                audit::append(
                    &tx,
                    audit::Entry {
                        at_ms: now,
                        user: Some(uid),
                        action: "sheet_create",
                        target: Some(&sid),
                        detail: None,
                    },
                )?;
                let row = load_row(&tx, &sid)?.ok_or_else(|| Error::SheetNotFound(sid.clone()))?;
                tx.commit()?;
                Ok::<_, Error>((row, sheet))
            })
            .await?;
        self.detail(sheet.0, &sheet.1)
    }

    /// Records a refused access to a sheet.
    async fn audit_denied(&self, p: &Principal, action: &'static str, id: &str) -> Result<()> {
        let (now, uid, id) = (self.clock.now_ms(), p.user_id, id.to_string());
        self.store
            .write(move |c| {
                audit::append(
                    c,
                    audit::Entry {
                        at_ms: now,
                        user: Some(uid),
                        action,
                        target: Some(&id),
                        detail: None,
                    },
                )
                .map_err(Error::from)
            })
            .await
    }

    /// One sheet with its values; the view is audited.
    pub async fn get_sheet(&self, p: &Principal, id: &str) -> Result<SheetDetail> {
        let sid = id.to_string();
        let found = self
            .store
            .read(move |c| match load_row(c, &sid)? {
                None => Ok(None),
                Some(row) => Ok::<_, Error>(Some((load_doc(c, &sid)?, row))),
            })
            .await?;
        let Some((sheet, row)) = found else {
            return Err(Error::SheetNotFound(id.to_string()));
        };
        let target = Target::Sheet {
            institution: &row.institution,
        };
        if let Err(denied) = authorize(p, Action::ViewSheet, target) {
            self.audit_denied(p, "sheet_view_denied", id).await?;
            return Err(denied.into());
        }
        let (now, uid, sid) = (self.clock.now_ms(), p.user_id, id.to_string());
        self.store
            .write(move |c| {
                audit::append(
                    c,
                    audit::Entry {
                        at_ms: now,
                        user: Some(uid),
                        action: "sheet_view",
                        target: Some(&sid),
                        detail: None,
                    },
                )
                .map_err(Error::from)
            })
            .await?;
        self.detail(row, &sheet)
    }

    /// Saves typed values into a sheet (一時保存). An empty value clears the item. Values that
    /// are malformed are kept as typed and reported, so nothing typed is lost.
    pub async fn update_sheet(
        &self,
        p: &Principal,
        id: &str,
        input: &BTreeMap<String, String>,
    ) -> Result<SheetDetail> {
        let now = self.clock.now_ms();
        let author = self.author(p);
        let catalogue = self.catalogue.clone();
        let (principal, sid, input) = (p.clone(), id.to_string(), input.clone());
        let outcome = self
            .store
            .write(move |c| {
                let tx = c.transaction()?;
                let row = load_row(&tx, &sid)?.ok_or_else(|| Error::SheetNotFound(sid.clone()))?;
                let target = Target::Sheet {
                    institution: &row.institution,
                };
                if let Err(denied) = authorize(&principal, Action::EditSheet, target) {
                    audit::append(
                        &tx,
                        audit::Entry {
                            at_ms: now,
                            user: Some(principal.user_id),
                            action: "sheet_edit_denied",
                            target: Some(&sid),
                            detail: None,
                        },
                    )?;
                    tx.commit()?;
                    return Ok(Err(Error::from(denied)));
                }
                let form = catalogue
                    .form(&row.form_id)
                    .ok_or_else(|| Error::UnknownForm(row.form_id.clone()))?;
                let values = nsdb_rules::normalise_input(form, &input)?;
                let mut sheet = load_doc(&tx, &sid)?;
                let changes: BTreeMap<String, Option<String>> = values
                    .into_iter()
                    .map(|(k, v)| (k, (!v.is_empty()).then_some(v)))
                    .collect();
                let edit = Edit {
                    author,
                    at_ms: now,
                    message: "一時保存",
                };
                let changed = sheet.set_fields(&changes, edit);
                if !changed.is_empty() {
                    store_sheet(&tx, &mut sheet, &row.registration, now)?;
                    let detail = changed.join(",");
                    audit::append(
                        &tx,
                        audit::Entry {
                            at_ms: now,
                            user: Some(principal.user_id),
                            action: "sheet_edit",
                            target: Some(&sid),
                            detail: Some(&detail),
                        },
                    )?;
                }
                let row = load_row(&tx, &sid)?.ok_or_else(|| Error::SheetNotFound(sid.clone()))?;
                tx.commit()?;
                Ok::<_, Error>(Ok((row, sheet)))
            })
            .await??;
        self.detail(outcome.0, &outcome.1)
    }

    /// Searches the sheets the user may see, newest first.
    pub async fn list_sheets(&self, p: &Principal, query: &SheetQuery) -> Result<SheetPage> {
        authorize(p, Action::ListSheets, Target::None)?;
        let own_only = matches!(p.role(), Role::Doctor | Role::Clerk);
        let institution = p.institution.clone();
        let page = query.page.unwrap_or(1).max(1);
        let q = query
            .q
            .as_deref()
            .map(str::trim)
            .filter(|q| !q.is_empty())
            .map(str::to_string);
        let result = self
            .store
            .read(move |c| {
                let mut filters = Vec::new();
                let mut args: Vec<Box<dyn rusqlite::ToSql>> = Vec::new();
                if own_only {
                    filters.push("s.institution = ?".to_string());
                    args.push(Box::new(institution));
                }
                if let Some(q) = q {
                    let narrow: String = q
                        .chars()
                        .map(|ch| match ch {
                            '０'..='９' => char::from_u32(ch as u32 - 0xFEE0).unwrap_or(ch),
                            _ => ch,
                        })
                        .filter(|ch| *ch != '-')
                        .collect();
                    if !narrow.is_empty() && narrow.chars().all(|ch| ch.is_ascii_digit()) {
                        filters.push(
                            "(s.access_key = ? OR s.insured_no = ? OR s.insurer_no = ?)"
                                .to_string(),
                        );
                        for _ in 0..3 {
                            args.push(Box::new(narrow.clone()));
                        }
                    } else {
                        let kana = value::to_full_katakana(&q);
                        let escaped = kana.replace('\\', "\\\\").replace(['%', '_'], "\\$0");
                        filters.push("s.name_kana LIKE ? ESCAPE '\\'".to_string());
                        args.push(Box::new(format!("{escaped}%")));
                    }
                }
                let filter = if filters.is_empty() {
                    String::new()
                } else {
                    format!("WHERE {}", filters.join(" AND "))
                };
                let refs: Vec<&dyn rusqlite::ToSql> = args.iter().map(|a| a.as_ref()).collect();
                let total: u64 = c.query_row(
                    &format!("SELECT count(*) FROM sheets s {filter}"),
                    refs.as_slice(),
                    |r| r.get(0),
                )?;
                let mut st = c.prepare(&format!(
                    "SELECT {ROW_COLUMNS} FROM sheets s LEFT JOIN users u ON u.id = s.doctor
                     {filter} ORDER BY s.updated_at DESC, s.id LIMIT {PAGE_SIZE} OFFSET {}",
                    (page as u64 - 1) * PAGE_SIZE as u64
                ))?;
                let rows = st
                    .query_map(refs.as_slice(), row_from)?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                Ok::<_, Error>(SheetPage {
                    total,
                    page,
                    page_size: PAGE_SIZE,
                    rows,
                })
            })
            .await?;
        let (now, uid) = (self.clock.now_ms(), p.user_id);
        let detail = format!("page={page} rows={}", result.rows.len());
        self.store
            .write(move |c| {
                audit::append(
                    c,
                    audit::Entry {
                        at_ms: now,
                        user: Some(uid),
                        action: "sheet_list",
                        target: None,
                        detail: Some(&detail),
                    },
                )
                .map_err(Error::from)
            })
            .await?;
        Ok(result)
    }
}
