//! Sheets (臨床調査個人票・医療意見書): create, read, save and search, for the UI and the API alike.
//!
//! Each sheet is stored as its Automerge document plus a projection of the list columns (M9).
//! Every function authorises through `policy` before it touches a sheet and writes the access to
//! the audit log in the same transaction as the change. Nothing here renders or logs values.

pub mod conflicts;
pub mod identified;
pub mod workflow;

use std::collections::BTreeMap;

use nsdb_rules::check::{Message, Mode};
use nsdb_rules::{FormDef, value};
use nsdb_sync::{Author, Edit, NewSheet, Sheet, SheetId};
use rusqlite::{Connection, OptionalExtension, Row, params};
use serde::{Deserialize, Serialize};

use crate::accounts::policy::{Action, Principal, Role, Target, authorize};
use crate::audit;
use crate::{Error, Node, Result};

/// What a save says when the version it states is not one of the sheet's.
const UNKNOWN_VERSION: &str =
    "編集を始めた時点の版が分かりません。画面を開き直して入力し直してください。";

/// Rows per page of the sheet list.
pub const PAGE_SIZE: u32 = 20;

/// The list counts matching sheets up to this many; `SheetPage::total` above it means "more".
pub const COUNT_LIMIT: u64 = 10_000;

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
    pub doctor: Option<u64>,
    pub doctor_name: Option<String>,
    /// Who the sheet waits for in the workflow.
    pub assignee: Option<u64>,
    pub assignee_name: Option<String>,
    /// The sheet this one was carried forward from.
    pub carried_from: Option<String>,
    /// Who last sent the sheet for review.
    pub requested_by: Option<u64>,
    /// 記載年月日
    pub written_date: Option<String>,
    /// 自治体連携日 (YYYY-MM-DD, JST): when the first municipality linked the sheet.
    pub linked_date: Option<String>,
    /// 認定結果 code of the latest decided review (approved, rejected, deferred).
    pub review_result: Option<String>,
    /// Inquiries (照会) asked and not answered yet.
    pub open_inquiries: u32,
    /// Inquiries answered and not closed yet.
    pub answered_inquiries: u32,
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
    /// Items carried forward from last year's sheet that nobody has confirmed or changed yet.
    pub carried: Vec<String>,
    /// The version these values are (the document's heads, hex change hashes): a save states
    /// it so that only what its user changed since is written.
    pub version: Vec<String>,
    /// Items holding two or more values (edited concurrently, here or on another node), each
    /// with every value; they wait for a person's choice and block 登録.
    pub conflicts: Vec<OpenConflict>,
    /// Whether a municipality asked anything about the sheet (照会, open or closed): the
    /// screens read the inquiries only then.
    #[serde(skip)]
    pub has_inquiries: bool,
}

/// An item with concurrent values, as the API and the print see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct OpenConflict {
    pub field: String,
    /// Every value the item holds; the last one is what `items` shows until someone chooses.
    pub values: Vec<String>,
}

/// A search of the sheet list. Empty fields do not filter.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SheetQuery {
    /// Name in kana (prefix), insured number, insurer number or access key.
    pub q: Option<String>,
    /// Status: draft, requested, returned, registered, approved.
    pub status: Option<String>,
    /// 告示番号, or the form id (`iken-12-04-014`) of a 小慢 form.
    pub kokuji: Option<String>,
    /// The doctor's user id.
    pub doctor: Option<String>,
    /// 記載年月日 from (YYYY-MM-DD).
    pub from: Option<String>,
    /// 記載年月日 to (YYYY-MM-DD).
    pub to: Option<String>,
    /// 1-based page.
    pub page: Option<u32>,
}

/// How many pages `total` matches fill (at least one, counting up to `COUNT_LIMIT`).
pub fn page_count(total: u64) -> u32 {
    (total.min(COUNT_LIMIT).div_ceil(PAGE_SIZE as u64).max(1)) as u32
}

/// A CJK ideograph (a name in kanji), as opposed to kana, digits or letters.
fn is_ideograph(c: char) -> bool {
    matches!(c, '\u{3400}'..='\u{4DBF}' | '\u{4E00}'..='\u{9FFF}' | '\u{F900}'..='\u{FAFF}' | '\u{20000}'..='\u{3FFFF}' | '々')
}

/// One page of the sheet list.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SheetPage {
    /// Matching sheets, counted up to `COUNT_LIMIT`; a larger value means "more than that".
    pub total: u64,
    pub page: u32,
    pub page_size: u32,
    pub rows: Vec<SheetRow>,
}

const ROW_COLUMNS: &str = "s.id, s.form_id, s.kokuji, s.eda, s.disease, s.institution,
    s.application_type, s.insurer_no, s.insured_no, s.access_key, s.name, s.name_kana,
    s.birth_date, s.sex, s.doctor_name, s.written_date, s.linked_date, s.status,
    s.registration, s.updated_at, s.doctor, s.assignee, a.name AS assignee_name, s.carried_from,
    (SELECT actor FROM workflow_events w WHERE w.sheet_id = s.id AND w.action = 'request'
     ORDER BY w.id DESC LIMIT 1) AS requested_by, s.review_result, s.open_inquiries,
    s.answered_inquiries";

/// The joins that give a row its names. The doctor is named by the sheet itself (its
/// `doctor_name` column, from the document), never by a user of this node with the same id;
/// only the workflow's assignee, who exists on the sheet's own node alone, is joined, and only
/// among users of the sheet's own institution.
const ROW_JOINS: &str = "LEFT JOIN users a ON a.id = s.assignee AND a.institution = s.institution";

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
        // '' when the document names nobody; NULL for a row stored before it was kept.
        doctor_name: r.get::<_, Option<String>>(14)?.filter(|n| !n.is_empty()),
        written_date: r.get(15)?,
        linked_date: r.get(16)?,
        status: r.get(17)?,
        registration: r.get(18)?,
        updated_at_ms: r.get(19)?,
        doctor: r.get::<_, Option<i64>>(20)?.map(|d| d as u64),
        assignee: r.get::<_, Option<i64>>(21)?.map(|d| d as u64),
        assignee_name: r.get(22)?,
        carried_from: r.get(23)?,
        requested_by: r.get::<_, Option<i64>>(24)?.map(|d| d as u64),
        review_result: r.get(25)?,
        open_inquiries: r.get(26)?,
        answered_inquiries: r.get(27)?,
    })
}

pub(crate) fn load_row(c: &Connection, id: &str) -> rusqlite::Result<Option<SheetRow>> {
    c.query_row(
        &format!("SELECT {ROW_COLUMNS} FROM sheets s {ROW_JOINS} WHERE s.id = ?1"),
        [id],
        row_from,
    )
    .optional()
}

pub(crate) fn load_doc(c: &Connection, id: &str) -> Result<Sheet> {
    let bytes: Vec<u8> = c
        .query_row("SELECT doc FROM sheets WHERE id = ?1", [id], |r| r.get(0))
        .optional()?
        .ok_or_else(|| Error::SheetNotFound(id.to_string()))?;
    Sheet::load(&bytes).map_err(|e| Error::Document {
        id: id.to_string(),
        reason: e.to_string(),
    })
}

/// What a new sheet of `form` starts with: the form, its version, 告示番号/枝番 and disease, the
/// owning institution, the doctor, and the sheet it was carried from.
pub fn new_sheet_of(
    form: &FormDef,
    id: SheetId,
    institution: &str,
    doctor: Option<u64>,
    carried_from: Option<SheetId>,
    created_ms: i64,
) -> NewSheet {
    NewSheet {
        id,
        form_id: form.id.clone(),
        form_version: form.version.clone(),
        kokuji: form.kokuji,
        eda: form.eda,
        disease: form.disease.clone(),
        institution: institution.to_string(),
        doctor,
        carried_from,
        created_ms,
    }
}

/// The ceiling of a sheet's stored document (8 MiB): an edit that would take it past this is
/// refused. An ordinary sheet is tens of KB and grows by the changed items on each save; even
/// rewriting a full 2,000-character box (about 6 KB) on every save, a sheet reaches this only
/// after more than a thousand such saves.
pub const SHEET_CEILING: usize = 8 * 1024 * 1024;

/// What the list shows of a document's reviews and inquiries.
struct ReviewProjection {
    /// 自治体連携日: the earliest review's `linked_ms` as a JST date.
    linked_date: Option<String>,
    /// The 認定結果 code of the latest decided review.
    result: Option<&'static str>,
    open: u32,
    answered: u32,
}

impl ReviewProjection {
    fn of(sheet: &Sheet) -> ReviewProjection {
        let reviews = sheet.reviews();
        // The hub marks the moment a key was first resolved (`linked_ms`); a municipality's
        // review carries when it received the sheet: the earlier of them is 自治体連携日.
        let linked_date = reviews
            .values()
            .map(|r| r.linked_ms)
            .chain(sheet.linked_ms())
            .min()
            .map(|ms| jst_date(ms).to_string());
        let result = reviews
            .values()
            .filter_map(|r| Some((r.decided_ms.unwrap_or(0), r.decision?)))
            .max_by_key(|(at, _)| *at)
            .map(|(_, d)| d.code());
        let inquiries = sheet.inquiries();
        let count = |state| inquiries.iter().filter(|i| i.state == state).count() as u32;
        ReviewProjection {
            linked_date,
            result,
            open: count(nsdb_sync::InquiryState::Open),
            answered: count(nsdb_sync::InquiryState::Answered),
        }
    }
}

/// Whether sheet `id` was resolved by its access key for users of `institution`: by this node
/// (a `resolutions` row of institution `''`), or on the hub by that clinic's users (a row of
/// its code). Another clinic's resolution on the hub opens nothing to this one.
pub(crate) fn resolved_here(c: &Connection, id: &str, institution: &str) -> rusqlite::Result<bool> {
    Ok(c.query_row(
        "SELECT 1 FROM resolutions WHERE sheet_id = ?1 AND institution IN ('', ?2) LIMIT 1",
        [id, institution],
        |_| Ok(()),
    )
    .optional()?
    .is_some())
}

/// What `p` acts on in sheet `row`: another institution's sheet this node resolved by key is
/// [`Target::Linked`] (readable, never editable); any other sheet is its institution's.
pub(crate) fn sheet_target<'a>(p: &Principal, row: &'a SheetRow, linked: bool) -> Target<'a> {
    if linked && row.institution != p.institution {
        Target::Linked
    } else {
        Target::Sheet {
            institution: &row.institution,
        }
    }
}

/// What the ministry's list says to a search by anything but an access key.
const MINISTRY_SEARCH: &str = "厚生労働省の一覧は氏名・被保険者番号では検索できません。アクセスキー（数字）で検索してください。識別情報のある臨個票は、理由を入力して1件ずつ開けます。";

/// A list row without who the patient is (the ministry's list): no name, かな, birth date or
/// insurance numbers. The access key, institution, disease and state stay.
fn deidentify(row: &mut SheetRow) {
    row.name = None;
    row.name_kana = None;
    row.birth_date = None;
    row.insurer_no = None;
    row.insured_no = None;
}

/// The sheet's 指定医氏名 item.
pub const DOCTOR_NAME_ITEM: &str = "doctor.name";

/// The sheet's 指定医番号 item.
pub const DOCTOR_NUMBER_ITEM: &str = "doctor.number";

/// Puts what the node knows (`known`: item id and value, such as the institution and the
/// writing doctor) into the items of `form` that `values` leave blank; what was typed stays.
/// The new-sheet screen and 一括登録 fill a sheet this way.
pub(crate) fn fill_blank(
    form: &FormDef,
    values: &mut BTreeMap<String, String>,
    known: Vec<(&str, String)>,
) {
    for (item, value) in known {
        if form.item(item).is_some() && values.get(item).is_none_or(|v| v.trim().is_empty()) {
            values.insert(item.to_string(), value);
        }
    }
}

/// The items that say who wrote a sheet (医師の氏名, 指定医番号, 医療機関名, 医療機関コード): the
/// sheet's own values, filled from the writing doctor and institution when a sheet is started,
/// sent to a doctor or registered, and read by every list, view and print on every node.
pub const IDENTITY_ITEMS: [&str; 4] = [
    DOCTOR_NAME_ITEM,
    DOCTOR_NUMBER_ITEM,
    "doctor.institution_name",
    "doctor.institution_code",
];

/// The name of a sheet's doctor (指定医) as its document records it, the same on every node: the
/// sheet's 指定医氏名 item; else who registered it (the author of the latest 登録); else the name
/// recorded by the author `doctor` (the header's user id) among those who wrote items. A
/// municipality never writes items (`review::authority`), so a reviewer with the same numeric
/// id on another node is never taken for the doctor. `None` when the document names nobody.
/// Documents' history is read only for a sheet with a doctor (registered, or started by one)
/// and no 指定医氏名, so a save of an ordinary draft never walks it.
pub fn doctor_in_document(sheet: &Sheet, doctor: Option<u64>) -> Option<String> {
    doctor_named(sheet, &sheet.fields(), doctor)
}

/// [`author_label`] as one line: the name, with the institution when the author is another
/// node's (「鈴木 太郎（デモ総合病院）」).
pub fn author_line(
    sheet: &Sheet,
    a: Author,
    own: nsdb_sync::NodeId,
    here: &str,
    local: &BTreeMap<u64, String>,
) -> String {
    let (name, place) = author_label(sheet, a, own, here, local);
    if a.node == own || place.is_empty() {
        name
    } else {
        format!("{name}（{place}）")
    }
}

/// The user number under which a node makes its own automatic changes (the hub's 連携);
/// accounts are numbered from 1.
pub const SYSTEM_USER: u64 = 0;

/// Who made a change, for people: (name, institution). The name is the one the document
/// records (written by whoever saved, on whichever node: `Sheet::set_author_name`), else, for
/// this node's own users (`own`), the name in `local` (user id → name) and `here`; else
/// 「利用者 N」 at 「ノード XXXXXXXX」. A user of another node with the same number is never
/// taken for this node's user. User 0 is no person but a node's own automatic step (the hub's
/// 連携): 「システム（自動処理）」, with no place.
pub fn author_label(
    sheet: &Sheet,
    a: Author,
    own: nsdb_sync::NodeId,
    here: &str,
    local: &BTreeMap<u64, String>,
) -> (String, String) {
    if a.user == SYSTEM_USER {
        return ("システム（自動処理）".into(), String::new());
    }
    let recorded = sheet.author_name(&a);
    let mine = a.node == own;
    let name = match (&recorded, local.get(&a.user)) {
        (Some((name, _)), _) => name.clone(),
        (None, Some(name)) if mine => name.clone(),
        _ => format!("利用者 {}", a.user),
    };
    let place = match recorded.and_then(|(_, place)| place) {
        _ if mine => here.to_string(),
        Some(place) if !place.is_empty() => place,
        _ => format!("ノード {}", &a.node.to_string()[..8]),
    };
    (name, place)
}

/// [`doctor_in_document`] with the sheet's values already read. Reads only the change log
/// (authors and messages), never what each change wrote: it runs for every sheet stored.
/// The doctor's own changes count only when made on the node that created the sheet, so a
/// user of another node with the same user number is never taken for the doctor.
fn doctor_named(
    sheet: &Sheet,
    fields: &BTreeMap<String, String>,
    doctor: Option<u64>,
) -> Option<String> {
    doctor_in_fields(fields).or_else(|| {
        let doctor = doctor?;
        let log = sheet.log();
        let named = |a: nsdb_sync::Author| sheet.author_name(&a).map(|(name, _)| name);
        log.iter()
            .rev()
            .find(|h| h.message == "登録")
            .and_then(|h| h.author)
            .and_then(named)
            .or_else(|| {
                let creator = log.first().and_then(|h| h.author).map(|a| a.node);
                log.iter()
                    .filter_map(|h| h.author)
                    .filter(|a| a.user == doctor && Some(a.node) == creator)
                    .find_map(named)
            })
    })
}

/// The 指定医氏名 item of a sheet's values, when it holds a name.
fn doctor_in_fields(fields: &BTreeMap<String, String>) -> Option<String> {
    fields
        .get(DOCTOR_NAME_ITEM)
        .map(|v| v.trim())
        .filter(|v| !v.is_empty())
        .map(str::to_string)
}

/// Names the row's doctor from the document (rows stored before the projection kept the name).
fn name_doctor(row: &mut SheetRow, sheet: &Sheet) {
    row.doctor_name = doctor_in_document(sheet, row.doctor);
}

/// The account's name and 指定医番号 (`None` when not known) of user `id` of this node.
pub(crate) fn doctor_identity(
    c: &Connection,
    id: u64,
) -> rusqlite::Result<Option<(String, Option<String>)>> {
    c.query_row(
        "SELECT name, doctor_number FROM users WHERE id = ?1",
        [id as i64],
        |r| Ok((r.get(0)?, r.get::<_, Option<String>>(1)?)),
    )
    .optional()
    .map(|found| {
        found.map(|(name, number)| (name, number.filter(|n: &String| !n.trim().is_empty())))
    })
}

/// Keeps the 指定医番号 a doctor typed on a sheet that names them, in their account, when the
/// account holds none yet, so the next sheet they start has it filled in. Never overwrites a
/// number the account has.
fn remember_doctor_number(
    c: &Connection,
    p: &Principal,
    fields: &BTreeMap<String, String>,
) -> rusqlite::Result<()> {
    let named_me = doctor_in_fields(fields).is_some_and(|n| same_name(&n, &p.name));
    let number = fields
        .get(DOCTOR_NUMBER_ITEM)
        .map(|n| n.trim())
        .filter(|n| !n.is_empty());
    if let (true, Role::Doctor, Some(number)) = (named_me, p.role(), number) {
        c.execute(
            "UPDATE users SET doctor_number = ?1
             WHERE id = ?2 AND (doctor_number IS NULL OR trim(doctor_number) = '')",
            params![number, p.user_id as i64],
        )?;
    }
    Ok(())
}

/// Two names the same but for spaces (鈴木 太郎, 鈴木　太郎, 鈴木太郎).
fn same_name(a: &str, b: &str) -> bool {
    let bare = |s: &str| s.chars().filter(|c| !c.is_whitespace()).collect::<String>();
    bare(a) == bare(b)
}

/// The date in Japan (JST, UTC+9) of a unix-millisecond time.
pub fn jst_date(ms: i64) -> nsdb_rules::value::Date {
    crate::Clock::Fixed(ms).today_jst()
}

/// Writes a sheet's document, its list projection and its sync heads. Every write of a
/// document goes through here, which keeps the sync inventories current.
pub fn store_sheet(
    c: &Connection,
    sheet: &mut Sheet,
    registration: &str,
    now_ms: i64,
) -> rusqlite::Result<()> {
    let h = sheet.header();
    let f = sheet.fields();
    let get = |k: &str| f.get(k).filter(|v| !v.is_empty()).cloned();
    let review = ReviewProjection::of(sheet);
    let doctor_name = doctor_named(sheet, &f, h.doctor);
    let doc = sheet.save();
    let heads = heads_blob(&sheet.raw_heads());
    c.prepare_cached(
        "INSERT INTO sheets (id, doc, form_id, form_version, kokuji, eda, disease, institution,
            doctor, application_type, insurer_no, insured_no, access_key, name, name_kana,
            birth_date, sex, written_date, status, registration, created_at, updated_at,
            carried_from, linked_date, review_result, open_inquiries, answered_inquiries,
            doctor_name)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17,
            ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28)
         ON CONFLICT(id) DO UPDATE SET doc = excluded.doc, form_version = excluded.form_version,
            doctor = excluded.doctor, application_type = excluded.application_type,
            insurer_no = excluded.insurer_no, insured_no = excluded.insured_no,
            access_key = excluded.access_key, name = excluded.name,
            name_kana = excluded.name_kana, birth_date = excluded.birth_date,
            sex = excluded.sex, written_date = excluded.written_date,
            status = excluded.status, updated_at = excluded.updated_at,
            linked_date = excluded.linked_date, review_result = excluded.review_result,
            open_inquiries = excluded.open_inquiries,
            answered_inquiries = excluded.answered_inquiries,
            doctor_name = excluded.doctor_name, carried_from = excluded.carried_from",
    )?
    .execute(params![
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
        h.carried_from.map(|c| c.to_string()),
        review.linked_date,
        review.result,
        review.open,
        review.answered,
        doctor_name.unwrap_or_default(),
    ])?;
    // The heads sync compares, in the same transaction, stamped with the change counter the
    // write just bumped, so an inventory finds this write by its `seq`.
    c.prepare_cached(
        "INSERT OR REPLACE INTO sync_heads (sheet_id, heads, seq)
         VALUES (?1, ?2, (SELECT n FROM sync_counter WHERE id = 1))",
    )?
    .execute(params![h.id.to_string(), heads])?;
    // At the hub, the sheet's research row (de-identified) in the same transaction.
    crate::research::rows::on_store(c, sheet, &f, now_ms)?;
    Ok(())
}

/// The list's kana search: 氏名カナ with its spaces left out, from a prefix (`?1`) up to the
/// prefix followed by U+10FFFF (`?2`). The expression is the one `sheets_kana_joined`
/// (migration 020) indexes: change both together.
const KANA_PREFIX: &str = "(replace(replace(s.name_kana, ' ', ''), '　', '') >= ?
     AND replace(replace(s.name_kana, ' ', ''), '　', '') < ?)";

/// The list's kanji search, as [`KANA_PREFIX`] over 氏名 (`sheets_name_joined`).
const NAME_PREFIX: &str = "(replace(replace(s.name, ' ', ''), '　', '') >= ?
     AND replace(replace(s.name, ' ', ''), '　', '') < ?)";

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

    pub(crate) fn detail(
        &self,
        row: SheetRow,
        sheet: &Sheet,
        carried: Vec<String>,
        mode: Mode,
    ) -> Result<SheetDetail> {
        let mut row = row;
        name_doctor(&mut row, sheet);
        let form = self.form(&row.form_id)?;
        let items = sheet.fields();
        let mut messages = nsdb_rules::check(form, &items, mode, self.clock.today_jst());
        // A character the print's font cannot show is reported beside its item (kept as typed).
        messages.extend(crate::print::unprintable_messages(form, &items));
        Ok(SheetDetail {
            form_version: sheet.header().form_version,
            row,
            items,
            messages,
            carried,
            version: sheet.heads().iter().map(ToString::to_string).collect(),
            conflicts: sheet
                .conflicts()
                .into_iter()
                .map(|c| OpenConflict {
                    field: c.field,
                    values: c.values.into_iter().map(|v| v.value).collect(),
                })
                .collect(),
            has_inquiries: !sheet.inquiries().is_empty(),
        })
    }

    /// Starts a new sheet of `form_id` at the user's institution, with the values given.
    pub async fn create_sheet(
        &self,
        p: &Principal,
        form_id: &str,
        input: &BTreeMap<String, String>,
    ) -> Result<SheetDetail> {
        self.create_sheet_as(p, SheetId::random(), form_id, input)
            .await
    }

    /// [`Node::create_sheet`] with the new sheet's id chosen by the caller (the new-sheet page
    /// chooses it when it is shown). When a sheet with `id` already exists — the same page sent
    /// twice — nothing is created: the existing sheet is returned when it is a sheet of
    /// `form_id` at the user's institution (as the first send made it), else
    /// `Error::Invalid`.
    pub async fn create_sheet_as(
        &self,
        p: &Principal,
        id: SheetId,
        form_id: &str,
        input: &BTreeMap<String, String>,
    ) -> Result<SheetDetail> {
        authorize(p, Action::CreateSheet, Target::None)?;
        let sid = id.to_string();
        let existing = self
            .store
            .read(move |c| load_row(c, &sid).map_err(Error::from))
            .await?;
        if let Some(row) = existing {
            if row.institution == p.institution && row.form_id == form_id {
                return self.get_sheet(p, &row.id).await;
            }
            return Err(Error::Invalid(
                "この送信はすでに処理されています。新規作成の画面からやり直してください。".into(),
            ));
        }
        let form = self.form(form_id)?;
        form.check_lengths(input)
            .map_err(|e| Error::Invalid(e.to_string()))?;
        let mut values = nsdb_rules::normalise_input(form, input)?;
        // What the node already knows is filled in, not typed: the institution, and the doctor
        // when a doctor starts the sheet.
        let inst = self.institution_of(p).await?;
        let mut known = vec![
            ("doctor.institution_name", inst.name.clone()),
            ("doctor.institution_code", inst.code.clone()),
        ];
        if p.role() == Role::Doctor {
            known.push((DOCTOR_NAME_ITEM, p.name.clone()));
            let uid = p.user_id;
            let number = self
                .store
                .read(move |c| doctor_identity(c, uid).map_err(Error::from))
                .await?
                .and_then(|(_, number)| number);
            if let Some(number) = number {
                known.push((DOCTOR_NUMBER_ITEM, number));
            }
        }
        // 記載年月日: the day the sheet is started, which the doctor changes when it differs.
        known.push(("doctor.written_date", self.clock.today_jst().to_string()));
        fill_blank(form, &mut values, known);
        let now = self.clock.now_ms();
        let edit = Edit {
            author: self.author(p),
            at_ms: now,
            message: "作成",
        };
        let mut sheet = Sheet::new(
            new_sheet_of(
                form,
                id,
                &p.institution,
                (p.role() == Role::Doctor).then_some(p.user_id),
                None,
                now,
            ),
            edit,
        );
        let changes: BTreeMap<String, Option<String>> = values
            .into_iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| (k, Some(v)))
            .collect();
        // Who writes is recorded before what they write, so the last version is the values.
        sheet.set_author_name(&p.name, &inst.name, edit);
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
        self.detail(sheet.0, &sheet.1, Vec::new(), Mode::Draft)
    }

    /// Records a refused access to a sheet.
    pub(crate) async fn audit_denied(
        &self,
        p: &Principal,
        action: &'static str,
        id: &str,
    ) -> Result<()> {
        self.audit(p, action, Some(id), None).await
    }

    /// Appends one audit entry for `p` on its own.
    pub(crate) async fn audit(
        &self,
        p: &Principal,
        action: &'static str,
        target: Option<&str>,
        detail: Option<&str>,
    ) -> Result<()> {
        let (now, uid) = (self.clock.now_ms(), p.user_id);
        let (target, detail) = (target.map(str::to_string), detail.map(str::to_string));
        // Committed with the audit entries of other requests arriving meanwhile (one sync).
        self.store
            .write_grouped(move |c| {
                audit::record(c, now, uid, action, target.as_deref(), detail.as_deref())
            })
            .await
            .map_err(Error::from)
    }

    /// One sheet with its values, checked in `mode`; the view is audited.
    pub async fn get_sheet_checked(
        &self,
        p: &Principal,
        id: &str,
        mode: Mode,
    ) -> Result<SheetDetail> {
        let (sid, inst) = (id.to_string(), p.institution.clone());
        // The ministry reads an identified sheet only under a live, justified grant.
        let (ministry, uid, now) = (p.role() == Role::Ministry, p.user_id, self.clock.now_ms());
        let found = self
            .store
            .read(move |c| match load_row(c, &sid)? {
                None => Ok(None),
                Some(row) => Ok::<_, Error>(Some((
                    load_doc(c, &sid)?,
                    row,
                    carried_items(c, &sid)?,
                    resolved_here(c, &sid, &inst)?,
                    ministry && identified::granted(c, uid, &sid, now)?,
                ))),
            })
            .await?;
        let Some((sheet, row, carried, linked, justified)) = found else {
            return Err(Error::SheetNotFound(id.to_string()));
        };
        let target = if justified {
            Target::Justified
        } else {
            sheet_target(p, &row, linked)
        };
        if let Err(denied) = authorize(p, Action::ViewSheet, target) {
            self.audit_denied(p, "sheet_view_denied", id).await?;
            return Err(denied.into());
        }
        self.audit(p, "sheet_view", Some(id), None).await?;
        self.detail(row, &sheet, carried, mode)
    }

    /// One sheet with its values and draft messages; the view is audited.
    pub async fn get_sheet(&self, p: &Principal, id: &str) -> Result<SheetDetail> {
        self.get_sheet_checked(p, id, Mode::Draft).await
    }

    /// Saves typed values into a sheet (一時保存) as of its current version: every value given
    /// that differs from the stored one is written. For the node's own steps (自動入力) and
    /// tools; a user's page or API client uses [`Node::update_sheet_since`]. A value longer than
    /// its item's entry limit (`nsdb_rules::form::ENTRY_LIMIT`), or an edit that would take the
    /// stored document past [`SHEET_CEILING`], is refused as a whole (`Error::Invalid`, with the
    /// reason in Japanese) and nothing is stored.
    pub async fn update_sheet(
        &self,
        p: &Principal,
        id: &str,
        input: &BTreeMap<String, String>,
    ) -> Result<SheetDetail> {
        self.save_fields(p, id, None, input).await
    }

    /// Saves what a user changed since `version` (the `version` of the [`SheetDetail`] their
    /// page or request was made from; hex change hashes) (一時保存). Only items whose value
    /// differs from their value at `version` are written, so what others saved since is kept;
    /// an item both changed keeps both values as a conflict until someone chooses. An empty
    /// value clears the item. Values that are malformed are kept as typed and reported, so
    /// nothing typed is lost. An approved sheet cannot be changed, nor a registered one (see
    /// `Step::Amend`).
    ///
    /// Errors: `Error::Invalid` when `version` is not a version of this sheet.
    pub async fn update_sheet_since(
        &self,
        p: &Principal,
        id: &str,
        version: &[String],
        input: &BTreeMap<String, String>,
    ) -> Result<SheetDetail> {
        let stale = || Error::Invalid(UNKNOWN_VERSION.into());
        let base = version
            .iter()
            .filter(|h| !h.trim().is_empty())
            .map(|h| {
                h.trim()
                    .parse::<nsdb_sync::ChangeHash>()
                    .map_err(|_| stale())
            })
            .collect::<Result<Vec<_>>>()?;
        self.save_fields(p, id, Some(base), input).await
    }

    async fn save_fields(
        &self,
        p: &Principal,
        id: &str,
        base: Option<Vec<nsdb_sync::ChangeHash>>,
        input: &BTreeMap<String, String>,
    ) -> Result<SheetDetail> {
        let now = self.clock.now_ms();
        let author = self.author(p);
        let catalogue = self.catalogue.clone();
        let place = self.institution_of(p).await?.name;
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
                    audit::record(
                        &tx,
                        now,
                        principal.user_id,
                        "sheet_edit_denied",
                        Some(&sid),
                        None,
                    )?;
                    tx.commit()?;
                    return Ok(Err(Error::from(denied)));
                }
                let form = catalogue
                    .form(&row.form_id)
                    .ok_or_else(|| Error::UnknownForm(row.form_id.clone()))?;
                if let Err(e) = form.check_lengths(&input) {
                    return Ok(Err(Error::Invalid(e.to_string())));
                }
                let values = nsdb_rules::normalise_input(form, &input)?;
                // A sheet's stored document has a ceiling no ordinary life of edits reaches.
                let stored: i64 = tx.query_row(
                    "SELECT length(doc) FROM sheets WHERE id = ?1",
                    [&sid],
                    |r| r.get(0),
                )?;
                let typed: usize = input.values().map(String::len).sum();
                if stored as usize + typed > SHEET_CEILING {
                    return Ok(Err(Error::Invalid(format!(
                        "この臨床調査個人票・医療意見書は保存データが上限（{} MB）に達したため、これ以上保存できません。入力した内容は保存されていません。新しい票で作成し直すか、管理者に連絡してください。",
                        SHEET_CEILING / (1024 * 1024)
                    ))));
                }
                // A registered sheet matches the paper handed out with its access key: it
                // changes only through 修正 (with a reason), never by a plain save.
                match row.status.as_str() {
                    status::APPROVED => {
                        return Ok(Err(Error::Invalid(
                            "承認済みのため編集できません。編集するには承認を解除してください。"
                                .into(),
                        )));
                    }
                    status::REGISTERED => {
                        return Ok(Err(Error::Invalid(
                            "登録済みのため、このままでは保存できません。内容を直すには、指定医が閲覧画面の「修正」で理由を入力してから編集し、もう一度登録してください（アクセスキーは変わりません）。"
                                .into(),
                        )));
                    }
                    _ => {}
                }
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
                let changed = match &base {
                    None => sheet.set_fields(&changes, edit),
                    Some(base) if base.is_empty() => {
                        return Ok(Err(Error::Invalid(
                            "保存する内容の版（version）を指定してください。".into(),
                        )));
                    }
                    Some(base) => match sheet.set_fields_since(base, &changes, edit) {
                        Ok(changed) => changed,
                        Err(nsdb_sync::SheetError::UnknownVersion { .. }) => {
                            return Ok(Err(Error::Invalid(UNKNOWN_VERSION.into())));
                        }
                        Err(e) => {
                            return Err(Error::Document {
                                id: sid.clone(),
                                reason: e.to_string(),
                            });
                        }
                    },
                };
                if !changed.is_empty() {
                    // Who wrote, once per author and sheet, after what they wrote: recorded
                    // before, it would count every value since `base` as seen by them.
                    sheet.set_author_name(&principal.name, &place, edit);
                    store_sheet(&tx, &mut sheet, &row.registration, now)?;
                    if changed.iter().any(|c| c == DOCTOR_NUMBER_ITEM) {
                        remember_doctor_number(&tx, &principal, &sheet.fields())?;
                    }
                    let mut st = tx.prepare(
                        "DELETE FROM carried_items WHERE sheet_id = ?1 AND item_id = ?2",
                    )?;
                    for item in &changed {
                        st.execute([&sid, item])?;
                    }
                    drop(st);
                    audit::record(
                        &tx,
                        now,
                        principal.user_id,
                        "sheet_edit",
                        Some(&sid),
                        Some(&changed.join(",")),
                    )?;
                }
                let row = load_row(&tx, &sid)?.ok_or_else(|| Error::SheetNotFound(sid.clone()))?;
                let carried = carried_items(&tx, &sid)?;
                tx.commit()?;
                Ok::<_, Error>(Ok((row, sheet, carried)))
            })
            .await??;
        self.detail(outcome.0, &outcome.1, outcome.2, Mode::Draft)
    }

    /// Searches the sheets the user may see, newest first.
    pub async fn list_sheets(&self, p: &Principal, query: &SheetQuery) -> Result<SheetPage> {
        authorize(p, Action::ListSheets, Target::None)?;
        let own_only = matches!(p.role(), Role::Doctor | Role::Clerk);
        // The ministry's list is resolution support, not identified data: it finds a sheet by
        // its access key and shows where it is and in which state, never who the patient is.
        let deidentified = p.role() == Role::Ministry;
        if deidentified
            && query.q.as_deref().is_some_and(|q| {
                !q.trim().is_empty()
                    && !q.chars().all(|c| {
                        c.is_ascii_digit()
                            || c == '-'
                            || c.is_whitespace()
                            || ('０'..='９').contains(&c)
                    })
            })
        {
            return Err(Error::Invalid(MINISTRY_SEARCH.into()));
        }
        // A reviewer lists only the sheets this node resolved by key (as on the intake list).
        let resolved_only = p.role() == Role::Reviewer;
        let institution = p.institution.clone();
        let page = query.page.unwrap_or(1);
        if page == 0 {
            return Err(Error::Invalid(
                "頁は 1 から数えます。1頁目から表示してください。".into(),
            ));
        }
        let asked = query;
        let query = query.clone();
        let result = self
            .store
            .read(move |c| {
                let mut filters = Vec::new();
                let mut args: Vec<Box<dyn rusqlite::ToSql>> = Vec::new();
                if own_only {
                    filters.push("s.institution = ?".to_string());
                    args.push(Box::new(institution));
                }
                if resolved_only {
                    filters.push("s.id IN (SELECT sheet_id FROM resolutions)".to_string());
                }
                // Full/half width and decomposed kana folded (NFKC) before anything else.
                if let Some(q) = given(&query.q.as_deref().map(value::fold_query)) {
                    let narrow: String = q.chars().filter(|ch| *ch != '-').collect();
                    let kind = SearchKind::of(&q);
                    if deidentified {
                        filters.push("s.access_key = ?".to_string());
                        args.push(Box::new(narrow.trim().to_string()));
                    } else if kind == SearchKind::Number {
                        filters.push(
                            "(s.access_key = ? OR s.insured_no = ? OR s.insurer_no = ?)"
                                .to_string(),
                        );
                        for _ in 0..3 {
                            args.push(Box::new(narrow.clone()));
                        }
                    } else if kind == SearchKind::Kanji {
                        // A name in kanji: a prefix of 氏名, spaces not counted, as a range
                        // over the index of that expression (migration 020).
                        let typed: String = q.chars().filter(|c| !c.is_whitespace()).collect();
                        filters.push(NAME_PREFIX.to_string());
                        args.push(Box::new(typed.clone()));
                        args.push(Box::new(format!("{typed}\u{10FFFF}")));
                    } else {
                        // A prefix of the stored name with its spaces left out, so that a
                        // name typed whole without its space (マカベシゲル) or with it (マカベ
                        // シ) finds マカベ シゲル; a range, so the index of that expression
                        // (migration 020) serves it.
                        let kana = value::to_full_katakana(&q);
                        let joined: String = kana.chars().filter(|c| !c.is_whitespace()).collect();
                        filters.push(KANA_PREFIX.to_string());
                        args.push(Box::new(joined.clone()));
                        args.push(Box::new(format!("{joined}\u{10FFFF}")));
                    }
                }
                if let Some(v) = given(&query.status) {
                    filters.push("s.status = ?".into());
                    args.push(Box::new(v));
                }
                if let Some(v) = given(&query.kokuji).filter(|v| v.starts_with("iken-")) {
                    filters.push("s.form_id = ?".into());
                    args.push(Box::new(v));
                } else if let Some(v) = given(&query.kokuji) {
                    let n: i64 = v.parse().map_err(|_| {
                        Error::Invalid(format!("告示番号は数字で指定してください: {v}"))
                    })?;
                    filters.push("s.kokuji = ?".into());
                    args.push(Box::new(n));
                }
                if let Some(v) = given(&query.doctor) {
                    let n: i64 = v.parse().map_err(|_| {
                        Error::Invalid(format!("指定医の指定が正しくありません: {v}"))
                    })?;
                    filters.push("s.doctor = ?".into());
                    args.push(Box::new(n));
                }
                for (v, op, label) in [(&query.from, ">=", "開始日"), (&query.to, "<=", "終了日")]
                {
                    if let Some(v) = given(v) {
                        let d = value::Date::typed(&v).ok_or_else(|| {
                            Error::Invalid(format!(
                                "{label}は 2024-04-01 や 令和6年4月1日（R6.4.1）の形で指定してください: {v}"
                            ))
                        })?;
                        filters.push(format!("s.written_date {op} ?"));
                        args.push(Box::new(d.to_string()));
                    }
                }
                let filter = if filters.is_empty() {
                    String::new()
                } else {
                    format!("WHERE {}", filters.join(" AND "))
                };
                let refs: Vec<&dyn rusqlite::ToSql> = args.iter().map(|a| a.as_ref()).collect();
                // Counting stops at COUNT_LIMIT: past it the screen says "more than".
                let total: u64 = c.query_row(
                    &format!(
                        "SELECT count(*) FROM (SELECT 1 FROM sheets s {filter} LIMIT {})",
                        COUNT_LIMIT + 1
                    ),
                    refs.as_slice(),
                    |r| r.get(0),
                )?;
                let pages = page_count(total);
                if page > pages {
                    return Err(Error::Invalid(format!(
                        "{page}頁目はありません。検索結果は全{pages}頁です。"
                    )));
                }
                // The page's ids first (from the indexes alone), then their columns: the
                // joins and subqueries run for twenty rows, not for every match.
                let mut st = c.prepare(&format!(
                    "SELECT {ROW_COLUMNS} FROM (SELECT s.id FROM sheets s {filter}
                         ORDER BY s.updated_at DESC, s.id LIMIT {PAGE_SIZE} OFFSET {}) AS page
                     JOIN sheets s ON s.id = page.id {ROW_JOINS}
                     ORDER BY s.updated_at DESC, s.id",
                    (page as u64 - 1) * PAGE_SIZE as u64
                ))?;
                let mut rows = st
                    .query_map(refs.as_slice(), row_from)?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                // A row stored before the projection kept the doctor's name, or one whose
                // document names nobody, is read from its document (at most PAGE_SIZE).
                for row in rows.iter_mut().filter(|r| r.doctor_name.is_none()) {
                    let unread: bool = c.query_row(
                        "SELECT doctor_name IS NULL FROM sheets WHERE id = ?1",
                        [&row.id],
                        |r| r.get(0),
                    )?;
                    if !unread {
                        continue;
                    }
                    let sheet = load_doc(c, &row.id)?;
                    name_doctor(row, &sheet);
                }
                if deidentified {
                    rows.iter_mut().for_each(deidentify);
                }
                Ok::<_, Error>(SheetPage {
                    total,
                    page,
                    page_size: PAGE_SIZE,
                    rows,
                })
            })
            .await?;
        let detail = list_detail(asked, page, &result.rows);
        self.audit(p, "sheet_list", None, Some(&detail)).await?;
        Ok(result)
    }
}

/// A filter's value as the list uses it: trimmed, or none when blank.
fn given(v: &Option<String>) -> Option<String> {
    v.as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_string)
}

/// What the list's search box (検索) is taken for, once folded (`value::fold_query`) and
/// trimmed: digits (hyphens allowed) are an access key, 保険者番号 or 被保険者番号; a name with a
/// kanji is 氏名; anything else is 氏名カナ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SearchKind {
    Number,
    Kanji,
    Kana,
}

impl SearchKind {
    fn of(q: &str) -> SearchKind {
        let mut digits = q.chars().filter(|c| *c != '-').peekable();
        if digits.peek().is_some() && digits.all(|c| c.is_ascii_digit()) {
            SearchKind::Number
        } else if q.chars().any(is_ideograph) {
            SearchKind::Kanji
        } else {
            SearchKind::Kana
        }
    }

    /// As the audit detail names it.
    fn label(self) -> &'static str {
        match self {
            SearchKind::Number => "number",
            SearchKind::Kanji => "kanji",
            SearchKind::Kana => "kana",
        }
    }
}

/// The audit detail of one list page (`sheet_list`): the page, the number of rows, what kind
/// of search it was and which filters were set, and the ids of the sheets it showed, so that
/// the log says which patients a list put on a screen. Never the search text itself: it is a
/// patient's name or number. Shape:
/// `page=1 search=kana status=draft kokuji=6 doctor=3 from=2026-01-01 to=… rows=2 shown=ID,ID`
/// (`search` is `kana`, `kanji` or `number`; absent parts are left out).
fn list_detail(query: &SheetQuery, page: u32, rows: &[SheetRow]) -> String {
    let mut d = format!("page={page}");
    if let Some(q) = given(&query.q.as_deref().map(value::fold_query)) {
        d.push_str(&format!(" search={}", SearchKind::of(&q).label()));
    }
    for (name, v) in [
        ("status", &query.status),
        ("kokuji", &query.kokuji),
        ("doctor", &query.doctor),
        ("from", &query.from),
        ("to", &query.to),
    ] {
        // Filter values are chosen from the screen's lists (codes, ids, dates): never typed
        // personal data. Anything else is named only.
        if let Some(v) = given(v) {
            if v.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
                d.push_str(&format!(" {name}={v}"));
            } else {
                d.push_str(&format!(" {name}=?"));
            }
        }
    }
    d.push(' ');
    d.push_str(&audit::shown(rows.iter().map(|r| r.id.as_str())));
    d
}

impl Node {
    /// Other sheets of this institution for the same patient and disease as the 臨床調査個人票
    /// `id`: same 告示番号/枝番, and same 保険者番号 and 被保険者番号, or same 氏名 (spaces not
    /// counted) and 生年月日. Newest first, at most five. Empty for a 医療意見書, a sheet whose
    /// 申請種別 is 更新, or one without those items. For the editor's notice that offers 更新登録
    /// instead of a second 新規. The lookup is audited (`sheet_same_patient`).
    pub async fn same_patient_sheets(&self, p: &Principal, id: &str) -> Result<Vec<SheetRow>> {
        authorize(p, Action::ListSheets, Target::None)?;
        let (sid, inst) = (id.to_string(), p.institution.clone());
        let rows = self
            .store
            .read(move |c| {
                let Some(me) = load_row(c, &sid)? else {
                    return Err(Error::SheetNotFound(sid));
                };
                let renewal = me.application_type.as_deref() == Some("2");
                if !me.form_id.starts_with("rinko-") || renewal || me.institution != inst {
                    return Ok(Vec::new());
                }
                let insured = me.insurer_no.clone().zip(me.insured_no.clone());
                let named = me
                    .name
                    .as_deref()
                    .map(|n| n.chars().filter(|c| !c.is_whitespace()).collect::<String>())
                    .filter(|n| !n.is_empty())
                    .zip(me.birth_date.clone());
                if insured.is_none() && named.is_none() {
                    return Ok(Vec::new());
                }
                let (insurer, insured_no) = insured.unwrap_or_default();
                let (name, birth) = named.unwrap_or_default();
                let mut st = c.prepare_cached(&SAME_PATIENT_SQL)?;
                let rows = st
                    .query_map(
                        params![
                            inst, sid, me.kokuji, me.eda, insurer, insured_no, name, birth
                        ],
                        row_from,
                    )?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                Ok::<_, Error>(rows)
            })
            .await?;
        if !rows.is_empty() {
            let detail = format!("found={}", rows.len());
            self.audit(p, "sheet_same_patient", Some(id), Some(&detail))
                .await?;
        }
        Ok(rows)
    }

    /// The sheet with its checks, calculations and machine judgment (一次判定); the view is
    /// audited like any other.
    pub async fn evaluate_sheet(
        &self,
        p: &Principal,
        id: &str,
    ) -> Result<(SheetDetail, nsdb_rules::Evaluation)> {
        let d = self.get_sheet(p, id).await?;
        let form = self.form(&d.row.form_id)?;
        let ev = nsdb_rules::evaluate(form, &d.items, self.clock.today_jst());
        Ok((d, ev))
    }

    /// The machine judgment (一次判定) of the values on a user's screen: the stored values with
    /// `input` (as typed, normalised) over them. Nothing is saved; the view is audited.
    pub async fn evaluate_values(
        &self,
        p: &Principal,
        id: &str,
        input: &BTreeMap<String, String>,
    ) -> Result<(SheetDetail, nsdb_rules::Evaluation)> {
        let mut d = self.get_sheet(p, id).await?;
        let form = self.form(&d.row.form_id)?;
        for (k, v) in nsdb_rules::normalise_input(form, input)? {
            if v.is_empty() {
                d.items.remove(&k);
            } else {
                d.items.insert(k, v);
            }
        }
        let ev = nsdb_rules::evaluate(form, &d.items, self.clock.today_jst());
        Ok((d, ev))
    }

    /// 自動入力: stores every calculated item (BMI, totals, indices) as the rules derive it from
    /// the values entered, as an edit by the user. Returns the sheet and what was filled: how
    /// many calculated items now have a value, of how many the form has.
    pub async fn autofill(&self, p: &Principal, id: &str) -> Result<(SheetDetail, Autofilled)> {
        let (d, ev) = self.evaluate_sheet(p, id).await?;
        let form = self.form(&d.row.form_id)?;
        // Calculated items that no longer can be calculated are cleared, not left stale.
        let mut changes: BTreeMap<String, String> = form
            .calculated_items()
            .map(|i| (i.id.clone(), String::new()))
            .collect();
        let filled = Autofilled {
            calculated: ev.derived.values().filter(|v| !v.is_empty()).count(),
            of: changes.len(),
        };
        changes.extend(ev.derived);
        Ok((self.update_sheet(p, id, &changes).await?, filled))
    }
}

/// What 自動入力 filled ([`Node::autofill`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Autofilled {
    /// Calculated items that have a value now.
    pub calculated: usize,
    /// Calculated items the form has.
    pub of: usize,
}

/// The unconfirmed carried-forward items of a sheet.
pub(crate) fn carried_items(c: &Connection, id: &str) -> rusqlite::Result<Vec<String>> {
    let mut st =
        c.prepare("SELECT item_id FROM carried_items WHERE sheet_id = ?1 ORDER BY item_id")?;
    st.query_map([id], |r| r.get(0))?.collect()
}

/// Sheet statuses, as stored in the document and the list projection.
pub mod status {
    /// 一時保存: being written.
    pub const DRAFT: &str = "draft";
    /// 登録中: sent to a doctor for review.
    pub const REQUESTED: &str = "requested";
    /// 差戻し: sent back by the doctor.
    pub const RETURNED: &str = "returned";
    /// 登録済: registered by the doctor; has an access key.
    pub const REGISTERED: &str = "registered";
    /// 承認済.
    pub const APPROVED: &str = "approved";

    /// The screen's word for a status.
    pub fn label(status: &str) -> &str {
        match status {
            DRAFT => "一時保存",
            REQUESTED => "登録中",
            RETURNED => "差戻し",
            REGISTERED => "登録済",
            APPROVED => "承認済",
            other => other,
        }
    }
}

/// Records one workflow event; call inside the transaction that makes the step.
#[allow(clippy::too_many_arguments)]
pub fn record_event(
    c: &Connection,
    sheet: &str,
    at_ms: i64,
    actor: u64,
    assignee: Option<u64>,
    action: &str,
    status: &str,
    comment: Option<&str>,
) -> rusqlite::Result<()> {
    c.execute(
        "INSERT INTO workflow_events (sheet_id, at, actor, assignee, action, status, comment)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            sheet,
            at_ms,
            actor as i64,
            assignee.map(|a| a as i64),
            action,
            status,
            comment
        ],
    )?;
    Ok(())
}

/// Heads as stored: the 32-byte change hashes, concatenated.
pub fn heads_blob(heads: &[[u8; 32]]) -> Vec<u8> {
    heads.concat()
}

/// Heads as stored, back to change hashes.
pub fn heads_of(blob: &[u8]) -> Vec<[u8; 32]> {
    blob.chunks_exact(32)
        .filter_map(|c| c.try_into().ok())
        .collect()
}

/// The query of [`Node::same_patient_sheets`] (made once; each reading connection keeps it
/// prepared): the institution's other 臨個票 of the same
/// disease (`?3` 告示番号, `?4` 枝番) for the same patient, found by 保険者番号 and 被保険者番号
/// (`?5`, `?6`) or by the name without spaces and the birth date (`?7`, `?8`), newest first, at
/// most 5. Each way is looked up in its own index (`sheets_patient`, `sheets_name_joined`):
/// written as one `OR` over the institution, SQLite walked every sheet of the institution in
/// the list's order, at every opening of a new draft in the editor.
static SAME_PATIENT_SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "SELECT {ROW_COLUMNS} FROM sheets s {ROW_JOINS}
         WHERE s.id IN (
             SELECT id FROM sheets WHERE ?5 != '' AND institution = ?1
                AND insured_no = ?6 AND insurer_no = ?5
             UNION
             SELECT id FROM sheets WHERE ?7 != '' AND institution = ?1
                AND replace(replace(name, ' ', ''), '　', '') = ?7 AND birth_date = ?8)
           AND s.id != ?2 AND s.kokuji = ?3 AND s.eda = ?4 AND s.form_id LIKE 'rinko-%'
         ORDER BY s.updated_at DESC, s.id LIMIT 5"
    )
});

impl Node {
    /// The ids of every sheet this node holds, in order. For the node's own upkeep (benchmarks,
    /// tests); never behind a user's request, since it checks no authorisation.
    pub async fn sheet_ids(&self) -> Result<Vec<String>> {
        self.store
            .read(|c| {
                let mut st = c.prepare("SELECT id FROM sheets ORDER BY id")?;
                let ids = st
                    .query_map([], |r| r.get(0))?
                    .collect::<rusqlite::Result<Vec<String>>>()?;
                Ok(ids)
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The name searches are answered from their indexes alone: neither the count nor the
    /// page's ids read the table, whose rows hold the sheet documents.
    #[test]
    fn name_searches_read_their_indexes_alone() {
        for (prefix, index) in [
            (KANA_PREFIX, "COVERING INDEX sheets_kana_joined"),
            (NAME_PREFIX, "COVERING INDEX sheets_name_joined"),
        ] {
            let filter = format!("s.institution = ? AND {prefix}");
            let plans = crate::store::query_plans(&[
                &format!("SELECT count(*) FROM (SELECT 1 FROM sheets s WHERE {filter} LIMIT 10)"),
                &format!(
                    "SELECT s.id FROM sheets s WHERE {filter}
                     ORDER BY s.updated_at DESC, s.id LIMIT 20"
                ),
            ]);
            for plan in plans {
                assert!(plan.contains(index), "{plan}");
            }
        }
    }

    /// The editor's offer to carry a sheet forward (同じ患者の前回の臨個票) looks the patient up
    /// by its two indexes, never by walking the institution's sheets.
    #[test]
    fn the_same_patient_is_looked_up_by_index() {
        let plan = crate::store::query_plans(&[&SAME_PATIENT_SQL]).remove(0);
        for index in ["INDEX sheets_patient", "INDEX sheets_name_joined"] {
            assert!(plan.contains(index), "{plan}");
        }
        assert!(!plan.contains("sheets_list"), "{plan}");
        assert!(!plan.contains("SCAN s"), "{plan}");
    }
}
