//! The life of a sheet after it is created: clerk → doctor review, 引戻, 差戻し, 登録 with an access
//! key, 承認 and its 解除, 一括承認, 更新登録 (carry-forward), the workflow list, the history and the
//! 差異 between versions.
//!
//! Every step is one write transaction: it checks the user's right (`policy`), the sheet's state
//! and the people involved, changes the document under the user's Automerge actor, updates the
//! list projection, and records both a workflow event and an audit entry. A step that is not
//! allowed changes nothing and says why.

use std::collections::BTreeMap;

use nsdb_rules::check::Mode;
use nsdb_sync::{ChangeHash, Edit, FieldChange, Sheet, SheetId, compare};
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use crate::accounts::policy::{Action, Principal, Role, Target, UserKind, authorize, role_may};
use crate::audit;
use crate::keys::{self as access_key, AccessKey};
use crate::sheets::{
    IDENTITY_ITEMS, SheetDetail, SheetRow, carried_items, doctor_identity, load_doc, load_row,
    record_event, status, store_sheet,
};
use crate::{Error, Node, Result};

/// One step of the workflow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Send to a doctor for review, with a comment.
    Request { to: u64, comment: String },
    /// Take back what one sent, before the doctor acted.
    PullBack,
    /// Send back to whoever asked, with a comment.
    Return { comment: String },
    /// 登録: the checks must pass; an access key is issued.
    Register,
    /// 承認
    Approve,
    /// 解除 of an approval, while no municipality has taken the sheet.
    Release,
    /// 修正 of a registered sheet by a doctor, with the reason: it goes back to a draft that
    /// keeps its access key, and must be registered again (the checks run again). The reason
    /// is the change's message in the document, so every node that holds the sheet (the hub,
    /// and the municipality that resolved the key) sees that and why it was amended.
    Amend { reason: String },
}

impl Step {
    fn action(&self) -> Action {
        match self {
            Step::Request { .. } => Action::RequestReview,
            Step::PullBack => Action::PullBack,
            Step::Return { .. } => Action::ReturnSheet,
            Step::Register => Action::Register,
            Step::Approve => Action::Approve,
            Step::Release => Action::Release,
            Step::Amend { .. } => Action::Register,
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Step::Request { .. } => "request",
            Step::PullBack => "pullback",
            Step::Return { .. } => "return",
            Step::Register => "register",
            Step::Approve => "approve",
            Step::Release => "release",
            Step::Amend { .. } => "amend",
        }
    }

    /// The word on the screen and in the document's history.
    pub fn label(&self) -> &'static str {
        match self {
            Step::Request { .. } => "確認依頼",
            Step::PullBack => "引戻",
            Step::Return { .. } => "差戻し",
            Step::Register => "登録",
            Step::Approve => "承認",
            Step::Release => "解除",
            Step::Amend { .. } => "修正",
        }
    }
}

/// The longest reason a 修正 takes, in characters (the screen's field says the same).
pub const AMEND_REASON_CHARS: usize = 200;

/// What the screens offer a user on a sheet. The domain functions still decide; this only keeps
/// buttons that would be refused off the screen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Offered {
    pub edit: bool,
    pub request: bool,
    pub pull_back: bool,
    pub return_: bool,
    pub register: bool,
    pub approve: bool,
    pub release: bool,
    pub renew: bool,
    /// 修正 of a registered sheet (with a reason).
    pub amend: bool,
}

impl Offered {
    pub fn for_user(p: &Principal, row: &SheetRow) -> Offered {
        let at = Target::Sheet {
            institution: &row.institution,
        };
        let may = |a: Action| authorize(p, a, at).is_ok();
        let st = row.status.as_str();
        let open = [status::DRAFT, status::REQUESTED, status::RETURNED].contains(&st);
        let own_doctor = row.doctor == Some(p.user_id);
        Offered {
            edit: may(Action::EditSheet) && open,
            amend: may(Action::Register) && st == status::REGISTERED,
            request: may(Action::RequestReview) && [status::DRAFT, status::RETURNED].contains(&st),
            pull_back: may(Action::PullBack)
                && st == status::REQUESTED
                && row.requested_by == Some(p.user_id),
            return_: may(Action::ReturnSheet)
                && st == status::REQUESTED
                && row.assignee == Some(p.user_id),
            register: may(Action::Register) && open,
            approve: may(Action::Approve) && st == status::REGISTERED && own_doctor,
            release: may(Action::Release)
                && st == status::APPROVED
                && own_doctor
                && row.linked_date.is_none(),
            renew: may(Action::CarryForward),
        }
    }
}

/// One line of a sheet's workflow history.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct WorkflowEvent {
    pub at_ms: i64,
    pub actor: u64,
    pub actor_name: String,
    pub actor_kind: UserKind,
    pub assignee: Option<u64>,
    pub assignee_name: Option<String>,
    pub assignee_kind: Option<UserKind>,
    pub action: String,
    pub status: String,
    pub comment: Option<String>,
}

/// One workflow step as the sheet's document records it ([`Node::logged_steps`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedStep {
    pub at_ms: i64,
    /// Who took it, with their institution when it is not this node's.
    pub by: String,
    /// The step's word: 確認依頼, 引戻, 差戻し, 登録, 承認, 解除 or 修正.
    pub action: &'static str,
    /// The status it left the sheet in (a [`status`] code).
    pub status: &'static str,
    /// 修正's reason; empty for the other steps.
    pub comment: String,
}

/// The editor's ワークフロー panel (see [`Node::workflow_note`]).
#[derive(Debug, Clone)]
pub struct WorkflowNote {
    /// Who holds the sheet now: name and kind (e.g. 「難病指定医」).
    pub holder: Option<(String, String)>,
    /// The latest comment of a step.
    pub comment: Option<NoteComment>,
}

/// A step's comment: who wrote it, the text, when (ms since the epoch).
#[derive(Debug, Clone)]
pub struct NoteComment {
    pub by: String,
    pub text: String,
    pub at_ms: i64,
}

/// A sheet waiting in someone's workflow list.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct WorkflowItem {
    #[serde(flatten)]
    pub row: SheetRow,
    /// When the last step happened.
    pub at_ms: i64,
    pub comment: Option<String>,
    pub from_name: String,
    /// In the 照会 section: the municipality's questions waiting for an answer (asked, not
    /// answered), from the document: who asked, the question and the items. Empty in the
    /// other sections.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub waiting_inquiries: Vec<WaitingInquiry>,
}

/// A municipality's question waiting for the hospital's answer.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct WaitingInquiry {
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub inquiry: nsdb_sync::Inquiry,
    /// The asking municipality's name as its reviewer recorded it in the document (the place
    /// of the author who asked); `None` when the document does not say.
    pub municipality_name: Option<String>,
}

impl WaitingInquiry {
    /// The open inquiries of `sheet`, each with the name of the municipality that asked.
    fn of(sheet: &Sheet) -> Vec<WaitingInquiry> {
        let history = sheet.history();
        sheet
            .inquiries()
            .into_iter()
            .filter(|i| i.state == nsdb_sync::InquiryState::Open)
            .map(|inquiry| {
                // The change that created the inquiry wrote its `question`; its author
                // recorded their name and institution.
                let asked = format!("{}.question", inquiry.id);
                let municipality_name = history
                    .iter()
                    .find(|h| h.inquiries.iter().any(|w| *w == asked || *w == inquiry.id))
                    .and_then(|h| h.author)
                    .and_then(|a| sheet.author_name(&a))
                    .and_then(|(_, place)| place)
                    .filter(|p| !p.is_empty());
                WaitingInquiry {
                    inquiry,
                    municipality_name,
                }
            })
            .collect()
    }
}

/// What a user's workflow list shows.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct WorkflowList {
    /// Sheets waiting for this user (sent for review, or returned).
    pub waiting: Vec<WorkflowItem>,
    /// Sheets this user sent that the doctor has not acted on yet.
    pub sent: Vec<WorkflowItem>,
    /// Sheets of the user's institution with a municipality's inquiry (照会) not answered yet.
    pub inquiries: Vec<WorkflowItem>,
}

/// `label（entry）` once per review or inquiry a change wrote (entries as `<entry>.<key>`).
fn review_parts(written: &[String], label: &str) -> Vec<String> {
    let mut entries: Vec<&str> = written
        .iter()
        .map(|w| w.split('.').next().unwrap_or(w))
        .collect();
    entries.dedup();
    entries
        .into_iter()
        .map(|e| format!("{label}（{}）", e.chars().take(8).collect::<String>()))
        .collect()
}

/// One version in a sheet's history.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Version {
    /// Automerge change hash, hexadecimal.
    pub hash: String,
    /// The version this one was made on (its parents' hashes, comma-separated): 表示 shows the
    /// difference from it, so a change made beside another never shows that one undone.
    pub from: String,
    pub at_ms: i64,
    pub author: String,
    pub message: String,
    pub changed: Vec<String>,
}

/// Item-level differences of one sheet.
#[derive(Debug, Clone, Serialize)]
pub struct Differences {
    /// The sheet this one was carried forward from, and the differences against it.
    pub source: Option<(String, Vec<FieldChange>)>,
    /// Every version, oldest first.
    pub versions: Vec<Version>,
    /// The differences between two chosen versions (`from`, `to`), if asked.
    pub between: Option<(String, String, Vec<FieldChange>)>,
}

const DOCTOR_KINDS: &str = "('nanbyo_doctor', 'kyoryoku_doctor', 'shoman_doctor')";

fn user_name(c: &Connection, id: u64) -> rusqlite::Result<Option<String>> {
    c.query_row("SELECT name FROM users WHERE id = ?1", [id as i64], |r| {
        r.get(0)
    })
    .optional()
}

/// The identity items ([`crate::sheets::IDENTITY_ITEMS`]) of `form` that `fields` leaves empty,
/// filled from the doctor `name` (指定医番号 `number` when their account has one) at
/// `institution_name`/`institution_code`. What someone typed is never replaced.
fn identity_defaults(
    form: &nsdb_rules::FormDef,
    fields: &BTreeMap<String, String>,
    name: &str,
    number: Option<String>,
    institution_name: &str,
    institution_code: &str,
) -> BTreeMap<String, Option<String>> {
    let [name_item, number_item, inst_name_item, inst_code_item] = IDENTITY_ITEMS;
    [
        (name_item, Some(name.to_string())),
        (number_item, number),
        (inst_name_item, Some(institution_name.to_string())),
        (inst_code_item, Some(institution_code.to_string())),
    ]
    .into_iter()
    .filter_map(|(k, v)| Some((k, v.filter(|v| !v.trim().is_empty())?)))
    .filter(|(k, _)| form.item(k).is_some() && fields.get(*k).is_none_or(|v| v.trim().is_empty()))
    .map(|(k, v)| (k.to_string(), Some(v)))
    .collect()
}

fn last_request(c: &Connection, sheet: &str) -> rusqlite::Result<Option<(u64, i64)>> {
    c.query_row(
        "SELECT actor, at FROM workflow_events WHERE sheet_id = ?1 AND action = 'request'
         ORDER BY id DESC LIMIT 1",
        [sheet],
        |r| Ok((r.get::<_, i64>(0)? as u64, r.get(1)?)),
    )
    .optional()
}

impl Node {
    /// Takes one workflow step on a sheet.
    pub async fn step(&self, p: &Principal, id: &str, step: Step) -> Result<SheetDetail> {
        let now = self.clock.now_ms();
        let today = self.clock.today_jst();
        let author = nsdb_sync::Author {
            node: self.node_id,
            user: p.user_id,
        };
        let own = self.node_id.to_string();
        let institution = self.institution_of(p).await?;
        let (institution_name, institution_code) = (institution.name, institution.code);
        let catalogue = self.catalogue.clone();
        let place = institution_name.clone();
        // The hub issues the keys of the clinics it serves from blocks it leases to itself.
        let hub = self.role() == crate::config::NodeRole::Hub;
        let (principal, sid) = (p.clone(), id.to_string());
        let outcome = self
            .store
            .write(move |c| {
                let tx = c.transaction()?;
                let row = load_row(&tx, &sid)?.ok_or_else(|| Error::SheetNotFound(sid.clone()))?;
                let target = Target::Sheet {
                    institution: &row.institution,
                };
                if let Err(denied) = authorize(&principal, step.action(), target) {
                    audit::record(&tx, now, principal.user_id, "workflow_denied", Some(&sid), Some(step.name()))?;
                    tx.commit()?;
                    return Ok(Err(Error::from(denied)));
                }
                let mut sheet = load_doc(&tx, &sid)?;
                let message = match &step {
                    Step::Amend { reason } => {
                        format!("{}{}", crate::review::AMEND_PREFIX, reason.trim())
                    }
                    other => other.label().to_string(),
                };
                let edit = Edit {
                    author,
                    at_ms: now,
                    message: &message,
                };
                sheet.set_author_name(&principal.name, &place, edit);
                let me = principal.user_id;
                let st = row.status.as_str();
                let (new_status, assignee, comment): (&str, Option<u64>, Option<String>) =
                    match &step {
                        Step::Request { to, comment } => {
                            if ![status::DRAFT, status::RETURNED].contains(&st) {
                                return Ok(Err(Error::Invalid(format!(
                                    "「{}」の臨床調査個人票・医療意見書は確認依頼できません。",
                                    status::label(st)
                                ))));
                            }
                            let is_doctor: bool = tx
                                .query_row(
                                    &format!(
                                        "SELECT count(*) FROM users WHERE id = ?1 AND institution = ?2
                                         AND locked = 0 AND kind IN {DOCTOR_KINDS}"
                                    ),
                                    params![*to as i64, row.institution],
                                    |r| r.get::<_, i64>(0),
                                )?
                                > 0;
                            if !is_doctor {
                                return Ok(Err(Error::Invalid(
                                    "依頼先には、この医療機関の指定医を選んでください。".into(),
                                )));
                            }
                            // The doctor it is sent to becomes the sheet's doctor: who the
                            // sheet says wrote it, where nobody typed it yet.
                            if let Some((name, number)) = doctor_identity(&tx, *to)? {
                                let form = catalogue
                                    .form(&row.form_id)
                                    .ok_or_else(|| Error::UnknownForm(row.form_id.clone()))?;
                                let fields = sheet.fields();
                                let known = identity_defaults(
                                    form,
                                    &fields,
                                    &name,
                                    number,
                                    &institution_name,
                                    &institution_code,
                                );
                                sheet.set_fields(&known, edit);
                            }
                            (status::REQUESTED, Some(*to), Some(comment.clone()))
                        }
                        Step::PullBack => {
                            let request = last_request(&tx, &sid)?;
                            let Some((sender, at)) = request.filter(|_| st == status::REQUESTED)
                            else {
                                return Ok(Err(Error::Invalid(
                                    "確認依頼中ではないため引き戻せません。".into(),
                                )));
                            };
                            if sender != me {
                                return Ok(Err(Error::Invalid(
                                    "引き戻せるのは確認を依頼した本人だけです。".into(),
                                )));
                            }
                            let doctor_acted = sheet.history().iter().any(|h| {
                                h.at_ms >= at
                                    && h.author.is_some_and(|a| Some(a.user) == row.assignee)
                            });
                            if doctor_acted {
                                return Ok(Err(Error::Invalid(
                                    "依頼先の指定医が既に編集したため引き戻せません。".into(),
                                )));
                            }
                            (status::DRAFT, None, None)
                        }
                        Step::Return { comment } => {
                            if st != status::REQUESTED || row.assignee != Some(me) {
                                return Ok(Err(Error::Invalid(
                                    "差し戻せるのは、自分に確認依頼された臨床調査個人票・医療意見書だけです。".into(),
                                )));
                            }
                            if comment.trim().is_empty() {
                                return Ok(Err(Error::Invalid(
                                    "差戻しの理由をコメントに入力してください。".into(),
                                )));
                            }
                            let sender = last_request(&tx, &sid)?.map(|(s, _)| s);
                            (status::RETURNED, sender, Some(comment.clone()))
                        }
                        Step::Register => {
                            if ![status::DRAFT, status::REQUESTED, status::RETURNED].contains(&st) {
                                return Ok(Err(Error::Invalid(format!(
                                    "「{}」の臨床調査個人票・医療意見書は登録できません。",
                                    status::label(st)
                                ))));
                            }
                            let form = catalogue
                                .form(&row.form_id)
                                .ok_or_else(|| Error::UnknownForm(row.form_id.clone()))?;
                            // Two values of one item wait for a person's choice; registering
                            // would settle them by chance.
                            let open = sheet.conflicts();
                            if !open.is_empty() {
                                let labels: Vec<&str> = open
                                    .iter()
                                    .map(|c| form.item(&c.field).map_or(c.field.as_str(), |i| i.label.as_str()))
                                    .collect();
                                return Ok(Err(Error::Invalid(format!(
                                    "同時に編集された項目が{}件あります（{}）。どちらの値を採用するか選んでから登録してください。",
                                    open.len(),
                                    labels.join("、")
                                ))));
                            }
                            // The registering doctor, this institution and the day are what
                            // the form means by 指定医氏名, 医療機関名 and 記載年月日 when nobody
                            // typed them.
                            let fields = sheet.fields();
                            let number = doctor_identity(&tx, me)?.and_then(|(_, n)| n);
                            let mut defaults = identity_defaults(
                                form,
                                &fields,
                                &principal.name,
                                number,
                                &institution_name,
                                &institution_code,
                            );
                            if form.item("doctor.written_date").is_some()
                                && !fields.contains_key("doctor.written_date")
                            {
                                defaults.insert(
                                    "doctor.written_date".into(),
                                    Some(today.to_string()),
                                );
                            }
                            sheet.set_fields(&defaults, edit);
                            let fields = sheet.fields();
                            let mut messages =
                                nsdb_rules::check(form, &fields, Mode::Complete, today);
                            // A registered sheet is printed: every character must be printable.
                            messages.extend(crate::print::unprintable_messages(form, &fields));
                            if !messages.is_empty() {
                                return Ok(Err(Error::Invalid(format!(
                                    "チェックで{}件の指摘があるため登録できません。チェックを押して確認してください。",
                                    messages.len()
                                ))));
                            }
                            if sheet.header().access_key.is_none() {
                                let issued = if hub {
                                    access_key::issue_leasing(&tx, &own, now)?
                                } else {
                                    access_key::issue(&tx, &own)?
                                };
                                let Some(key) = issued else {
                                    return Ok(Err(if access_key::awaits_hub(&tx)? {
                                        Error::KeysAwaitHub
                                    } else {
                                        Error::NoKeyBlock
                                    }));
                                };
                                sheet.set_access_key(key.digits(), edit);
                            }
                            sheet.set_doctor(Some(me), edit);
                            (status::REGISTERED, None, None)
                        }
                        Step::Amend { reason } => {
                            if st != status::REGISTERED {
                                return Ok(Err(Error::Invalid(format!(
                                    "「{}」の臨床調査個人票・医療意見書は修正できません。{}",
                                    status::label(st),
                                    if st == status::APPROVED {
                                        "承認を解除してから修正してください。"
                                    } else {
                                        "そのまま編集できます。"
                                    }
                                ))));
                            }
                            if reason.trim().is_empty() {
                                return Ok(Err(Error::Invalid(
                                    "修正の理由を入力してください。".into(),
                                )));
                            }
                            if reason.trim().chars().count() > AMEND_REASON_CHARS {
                                return Ok(Err(Error::Invalid(format!(
                                    "修正の理由は{AMEND_REASON_CHARS}文字以内で入力してください（{}文字あります）。",
                                    reason.trim().chars().count()
                                ))));
                            }
                            (status::DRAFT, None, Some(reason.trim().to_string()))
                        }
                        Step::Approve | Step::Release => {
                            let (from, to) = if step == Step::Approve {
                                (status::REGISTERED, status::APPROVED)
                            } else {
                                (status::APPROVED, status::REGISTERED)
                            };
                            if st != from {
                                return Ok(Err(Error::Invalid(format!(
                                    "「{}」の臨床調査個人票・医療意見書は{}できません。",
                                    status::label(st),
                                    step.label()
                                ))));
                            }
                            if row.doctor != Some(me) {
                                return Ok(Err(Error::Invalid(format!(
                                    "{}できるのは、登録した指定医だけです。",
                                    step.label()
                                ))));
                            }
                            if step == Step::Release && row.linked_date.is_some() {
                                return Ok(Err(Error::Invalid(
                                    "自治体が既に受け付けたため解除できません。".into(),
                                )));
                            }
                            (to, None, None)
                        }
                    };
                sheet.set_status(new_status, edit);
                store_sheet(&tx, &mut sheet, &row.registration, now)?;
                tx.execute(
                    "UPDATE sheets SET assignee = ?1 WHERE id = ?2",
                    params![assignee.map(|a| a as i64), sid],
                )?;
                record_event(&tx, &sid, now, me, assignee, step.name(), new_status, comment.as_deref())?;
                audit::record(&tx, now, me, "workflow", Some(&sid), Some(step.name()))?;
                let row = load_row(&tx, &sid)?.ok_or_else(|| Error::SheetNotFound(sid.clone()))?;
                let carried = carried_items(&tx, &sid)?;
                tx.commit()?;
                Ok::<_, Error>(Ok((row, sheet, carried)))
            })
            .await??;
        self.detail(outcome.0, &outcome.1, outcome.2, Mode::Draft)
    }

    /// 一括承認: approves each sheet in turn; returns each sheet's outcome (None = approved).
    pub async fn bulk_approve(
        &self,
        p: &Principal,
        ids: &[String],
    ) -> Result<Vec<(String, Option<String>)>> {
        // Each sheet is authorised by `step`; a role that may never approve stops here.
        if !role_may(p.role(), Action::Approve) {
            return Err(crate::accounts::policy::Denied.into());
        }
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let outcome = match self.step(p, id, Step::Approve).await {
                Ok(_) => None,
                Err(e @ (Error::Store(_) | Error::Document { .. })) => return Err(e),
                Err(e) => Some(e.to_string()),
            };
            out.push((id.clone(), outcome));
        }
        Ok(out)
    }

    /// The doctors of the user's institution, to send a sheet to.
    pub async fn doctors(&self, p: &Principal) -> Result<Vec<(u64, String)>> {
        authorize(
            p,
            Action::RequestReview,
            Target::Sheet {
                institution: &p.institution,
            },
        )?;
        let inst = p.institution.clone();
        self.store
            .read(move |c| {
                let mut st = c.prepare(&format!(
                    "SELECT id, name FROM users WHERE institution = ?1 AND locked = 0
                     AND kind IN {DOCTOR_KINDS} ORDER BY name"
                ))?;
                let v = st
                    .query_map([inst], |r| Ok((r.get::<_, i64>(0)? as u64, r.get(1)?)))?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                Ok(v)
            })
            .await
    }

    /// The user's workflow list: what waits for them, and what they sent.
    pub async fn workflow_list(&self, p: &Principal) -> Result<WorkflowList> {
        authorize(p, Action::ListSheets, Target::None)?;
        let (me, inst) = (p.user_id as i64, p.institution.clone());
        let list = self
            .store
            .read(move |c| {
                let query = |condition: &str, with_inquiries: bool| -> Result<Vec<WorkflowItem>> {
                    let sql = format!(
                        "SELECT s.id, coalesce(e.at, s.updated_at), e.comment,
                             coalesce(eu.name, '') FROM sheets s
                         LEFT JOIN workflow_events e ON e.id =
                             (SELECT max(id) FROM workflow_events WHERE sheet_id = s.id)
                         LEFT JOIN users eu ON eu.id = e.actor
                         WHERE s.institution = ?1 AND {condition}
                         ORDER BY coalesce(e.at, s.updated_at) DESC LIMIT 200"
                    );
                    let mut st = c.prepare(&sql)?;
                    let heads = st
                        .query_map(params![inst, me], |r| {
                            Ok((
                                r.get::<_, String>(0)?,
                                r.get::<_, i64>(1)?,
                                r.get::<_, Option<String>>(2)?,
                                r.get::<_, String>(3)?,
                            ))
                        })?
                        .collect::<rusqlite::Result<Vec<_>>>()?;
                    let mut items = Vec::with_capacity(heads.len());
                    for (id, at_ms, comment, from_name) in heads {
                        if let Some(row) = load_row(c, &id)? {
                            let waiting_inquiries = if with_inquiries {
                                WaitingInquiry::of(&load_doc(c, &id)?)
                            } else {
                                Vec::new()
                            };
                            items.push(WorkflowItem {
                                row,
                                at_ms,
                                comment,
                                from_name,
                                waiting_inquiries,
                            });
                        }
                    }
                    Ok(items)
                };
                Ok::<_, Error>(WorkflowList {
                    waiting: query(
                        "s.assignee = ?2 AND s.status IN ('requested', 'returned')",
                        false,
                    )?,
                    sent: query(
                        "s.status = 'requested' AND e.action = 'request' AND e.actor = ?2",
                        false,
                    )?,
                    inquiries: query("s.open_inquiries > 0 AND ?2 IS NOT NULL", true)?,
                })
            })
            .await?;
        let detail = audit::shown(
            [&list.waiting, &list.sent, &list.inquiries]
                .into_iter()
                .flatten()
                .map(|i| i.row.id.as_str()),
        );
        self.audit(p, "workflow_list", None, Some(&detail)).await?;
        Ok(list)
    }

    /// What the editor's ワークフロー panel shows of a sheet: who holds it (name and kind) and
    /// the latest comment of a step (the clerk's request, the doctor's return) with its
    /// writer. `None` when nobody holds the sheet and no step carried a comment. The same
    /// check as reading the sheet; not audited again, since it goes with a read of the sheet
    /// that is.
    pub async fn workflow_note(&self, p: &Principal, id: &str) -> Result<Option<WorkflowNote>> {
        let (sid, inst) = (id.to_string(), p.institution.clone());
        let principal = p.clone();
        self.store
            .read(move |c| {
                let Some(row) = crate::sheets::load_row(c, &sid)? else {
                    return Err(Error::SheetNotFound(sid));
                };
                let linked = crate::sheets::resolved_here(c, &sid, &inst)?;
                authorize(
                    &principal,
                    Action::ViewSheet,
                    crate::sheets::sheet_target(&principal, &row, linked),
                )?;
                let holder = match row.assignee {
                    Some(a) => c
                        .query_row(
                            "SELECT name, kind FROM users WHERE id = ?1",
                            [a as i64],
                            |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)),
                        )
                        .optional()?
                        .map(|(name, kind)| {
                            let kind = UserKind::parse(&kind).map(UserKind::label).unwrap_or("");
                            (name, kind.to_string())
                        }),
                    None => None,
                };
                let comment = c
                    .query_row(
                        "SELECT a.name, e.comment, e.at FROM workflow_events e
                         JOIN users a ON a.id = e.actor
                         WHERE e.sheet_id = ?1 AND coalesce(e.comment, '') != ''
                         ORDER BY e.id DESC LIMIT 1",
                        [&sid],
                        |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get(2)?)),
                    )
                    .optional()?;
                if holder.is_none() && comment.is_none() {
                    return Ok(None);
                }
                Ok(Some(WorkflowNote {
                    holder,
                    comment: comment.map(|(by, text, at_ms)| NoteComment { by, text, at_ms }),
                }))
            })
            .await
    }

    /// A sheet's workflow history, oldest first.
    pub async fn workflow_history(&self, p: &Principal, id: &str) -> Result<Vec<WorkflowEvent>> {
        // Reading the history is reading the sheet: same check, same audit.
        self.get_sheet(p, id).await?;
        let sid = id.to_string();
        self.store
            .read(move |c| {
                let mut st = c.prepare(
                    "SELECT e.at, e.actor, a.name, a.kind, e.assignee, b.name, b.kind, e.action,
                            e.status, e.comment
                     FROM workflow_events e JOIN users a ON a.id = e.actor
                     LEFT JOIN users b ON b.id = e.assignee
                     WHERE e.sheet_id = ?1 ORDER BY e.id",
                )?;
                let v = st
                    .query_map([sid], |r| {
                        let kind = |s: Option<String>| s.as_deref().and_then(UserKind::parse);
                        Ok(WorkflowEvent {
                            at_ms: r.get(0)?,
                            actor: r.get::<_, i64>(1)? as u64,
                            actor_name: r.get(2)?,
                            actor_kind: kind(r.get(3)?).unwrap_or(UserKind::Clerk),
                            assignee: r.get::<_, Option<i64>>(4)?.map(|a| a as u64),
                            assignee_name: r.get(5)?,
                            assignee_kind: kind(r.get(6)?),
                            action: r.get(7)?,
                            status: r.get(8)?,
                            comment: r.get(9)?,
                        })
                    })?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                Ok(v)
            })
            .await
    }

    /// The workflow steps of sheet `id` as its document records them (確認依頼, 引戻, 差戻し, 登録,
    /// 承認, 解除, 修正 with its reason), oldest first: the 履歴 of a node that did not take the
    /// steps itself (a municipality, the hub), which has no `workflow_events` of its own.
    /// Who took each step is named by the document ([`super::author_label`]). Authorised and
    /// audited as a view of the sheet.
    pub async fn logged_steps(&self, p: &Principal, id: &str) -> Result<Vec<LoggedStep>> {
        self.get_sheet(p, id).await?;
        let sid = id.to_string();
        let sheet = self.store.read(move |c| load_doc(c, &sid)).await?;
        let (own, here) = (self.node_id, self.config.institution.name.clone());
        let none = BTreeMap::new();
        let mut steps: Vec<LoggedStep> = Vec::new();
        for e in sheet.log() {
            // The steps by the message `step` writes ([`Step::label`]) and where each leaves it.
            let amend = Step::Amend {
                reason: String::new(),
            };
            let steps_by_message = [
                (
                    Step::Request {
                        to: 0,
                        comment: String::new(),
                    },
                    status::REQUESTED,
                ),
                (Step::PullBack, status::DRAFT),
                (
                    Step::Return {
                        comment: String::new(),
                    },
                    status::RETURNED,
                ),
                (Step::Register, status::REGISTERED),
                (Step::Approve, status::APPROVED),
                (Step::Release, status::REGISTERED),
            ];
            let (action, to, comment) = match steps_by_message
                .iter()
                .find(|(step, _)| step.label() == e.message)
            {
                Some((step, to)) => (step.label(), *to, String::new()),
                None => match e.message.strip_prefix(crate::review::AMEND_PREFIX) {
                    Some(reason) => (amend.label(), status::DRAFT, reason.to_string()),
                    None => continue,
                },
            };
            let by = match e.author {
                Some(a) => super::author_line(&sheet, a, own, &here, &none),
                None => "不明".into(),
            };
            // One step writes several changes with its message (登録: the status, the key).
            if steps
                .last()
                .is_some_and(|l| l.action == action && l.by == by && e.at_ms - l.at_ms <= 2_000)
            {
                continue;
            }
            steps.push(LoggedStep {
                at_ms: e.at_ms,
                by,
                action,
                status: to,
                comment,
            });
        }
        Ok(steps)
    }

    /// 更新登録: starts next year's sheet from `id` with the items the form carries forward.
    /// The pull of last year's data is audited as an access to that sheet. While a renewal of
    /// `id` at the user's institution is still open (draft, requested or returned), that one
    /// is returned and nothing is created: a resubmitted 更新登録 makes no second sheet.
    pub async fn carry_forward(&self, p: &Principal, id: &str) -> Result<SheetDetail> {
        self.carry_forward_into(p, id, None).await
    }

    /// 更新登録 from `id`, taken from the notice of a new draft (`into`) that turned out to be
    /// the same patient's: that draft becomes the renewal (its 申請種別 更新, marked as carried
    /// from `id`, the carried items filled where it holds no value), so no empty draft is left
    /// behind and nothing typed into it is replaced. Without `into`, or when `into` is not the
    /// user's institution's plain draft of the same form, a new sheet is started as
    /// [`Node::carry_forward`] does.
    pub async fn carry_forward_into(
        &self,
        p: &Principal,
        id: &str,
        into: Option<&str>,
    ) -> Result<SheetDetail> {
        let into = into.map(str::to_string);
        let now = self.clock.now_ms();
        let author = nsdb_sync::Author {
            node: self.node_id,
            user: p.user_id,
        };
        let catalogue = self.catalogue.clone();
        let place = self.institution_of(p).await?.name;
        let (principal, source_id) = (p.clone(), id.to_string());
        let new_id = SheetId::random();
        let outcome = self
            .store
            .write(move |c| {
                let tx = c.transaction()?;
                let row = load_row(&tx, &source_id)?
                    .ok_or_else(|| Error::SheetNotFound(source_id.clone()))?;
                let linked = crate::sheets::resolved_here(&tx, &source_id, &principal.institution)?;
                let target = crate::sheets::sheet_target(&principal, &row, linked);
                if let Err(denied) = authorize(&principal, Action::CarryForward, target) {
                    audit::record(
                        &tx,
                        now,
                        principal.user_id,
                        "carry_forward_denied",
                        Some(&source_id),
                        None,
                    )?;
                    tx.commit()?;
                    return Ok(Err(Error::from(denied)));
                }
                // 更新登録 sent again (Back and 送信, a retried request) opens the renewal it
                // already made instead of a second one: one open renewal of a sheet per
                // institution.
                let open: Option<String> = tx
                    .query_row(
                        "SELECT id FROM sheets WHERE carried_from = ?1 AND institution = ?2
                           AND status IN ('draft', 'requested', 'returned')
                         ORDER BY created_at DESC LIMIT 1",
                        params![source_id, principal.institution],
                        |r| r.get(0),
                    )
                    .optional()?;
                if let Some(open) = open {
                    let row =
                        load_row(&tx, &open)?.ok_or_else(|| Error::SheetNotFound(open.clone()))?;
                    let sheet = load_doc(&tx, &open)?;
                    let carried = carried_items(&tx, &open)?;
                    tx.commit()?;
                    return Ok(Ok((row, sheet, carried)));
                }
                let form = catalogue
                    .form(&row.form_id)
                    .ok_or_else(|| Error::UnknownForm(row.form_id.clone()))?;
                // The draft the notice was shown on, when it may become the renewal.
                let target = match &into {
                    Some(into) if *into != source_id => load_row(&tx, into)?.filter(|d| {
                        d.institution == principal.institution
                            && d.form_id == row.form_id
                            && d.status == status::DRAFT
                            && d.carried_from.is_none()
                            && d.access_key.is_none()
                    }),
                    _ => None,
                };
                let source_doc = load_doc(&tx, &source_id)?;
                let (source, from_version) =
                    (source_doc.fields(), source_doc.header().form_version);
                // The rules decide what is taken: items the current form marks `carry`, renamed
                // and recoded by its `[[migrate]]` entry when last year's sheet was written on
                // an earlier version of the form; choices no longer on a code list are dropped.
                let taken = nsdb_rules::carry::carry_forward(form, &from_version, &source);
                let dropped = (!taken.dropped.is_empty()).then(|| {
                    let parts: Vec<String> = taken
                        .dropped
                        .iter()
                        .map(|d| {
                            let label = form.item(&d.item).map_or(d.item.as_str(), |i| &i.label);
                            format!("{label}（{}）", d.reason)
                        })
                        .collect();
                    format!("引き継がなかった項目: {}", parts.join("、"))
                });
                let mut carried: BTreeMap<String, Option<String>> = taken
                    .values
                    .into_iter()
                    .map(|(id, value)| (id, Some(value)))
                    .collect();
                let carried_ids: Vec<String> = carried.keys().cloned().collect();
                if form.item("application.type").is_some() {
                    carried.insert("application.type".into(), Some("2".into()));
                }
                let edit = Edit {
                    author,
                    at_ms: now,
                    message: "更新登録",
                };
                if let Some(draft) = target {
                    let did = draft.id.clone();
                    let mut sheet = load_doc(&tx, &did)?;
                    if authorize(&principal, Action::EditSheet, Target::Sheet {
                        institution: &draft.institution,
                    })
                    .is_ok()
                    {
                        // What was typed stays; carried values fill only empty items.
                        let typed = sheet.fields();
                        carried.retain(|k, _| {
                            k == "application.type"
                                || typed.get(k).is_none_or(|v| v.trim().is_empty())
                        });
                        let carried_ids: Vec<String> = carried_ids
                            .into_iter()
                            .filter(|k| carried.contains_key(k))
                            .collect();
                        sheet.set_author_name(&principal.name, &place, edit);
                        if let Ok(from) = source_id.parse::<SheetId>() {
                            sheet.set_carried_from(from, edit);
                        }
                        sheet.set_fields(&carried, edit);
                        store_sheet(&tx, &mut sheet, &draft.registration, now)?;
                        let mut st = tx.prepare(
                            "INSERT OR IGNORE INTO carried_items (sheet_id, item_id) VALUES (?1, ?2)",
                        )?;
                        for item in &carried_ids {
                            st.execute([&did, item])?;
                        }
                        drop(st);
                        record_event(&tx, &did, now, principal.user_id, None, "carry", status::DRAFT, dropped.as_deref())?;
                        audit::record(&tx, now, principal.user_id, "sheet_carry_forward", Some(&source_id), Some(&did))?;
                        let row = load_row(&tx, &did)?.ok_or_else(|| Error::SheetNotFound(did.clone()))?;
                        let carried = carried_items(&tx, &did)?;
                        tx.commit()?;
                        return Ok::<_, Error>(Ok((row, sheet, carried)));
                    }
                }
                let mut sheet = Sheet::new(
                    crate::sheets::new_sheet_of(
                        form,
                        new_id,
                        &principal.institution,
                        (principal.role() == Role::Doctor).then_some(principal.user_id),
                        source_id.parse::<SheetId>().ok(),
                        now,
                    ),
                    edit,
                );
                sheet.set_author_name(&principal.name, &place, edit);
                sheet.set_fields(&carried, edit);
                store_sheet(&tx, &mut sheet, "screen", now)?;
                let nid = new_id.to_string();
                let mut st =
                    tx.prepare("INSERT INTO carried_items (sheet_id, item_id) VALUES (?1, ?2)")?;
                for item in &carried_ids {
                    st.execute([&nid, item])?;
                }
                drop(st);
                record_event(
                    &tx,
                    &nid,
                    now,
                    principal.user_id,
                    None,
                    "carry",
                    status::DRAFT,
                    dropped.as_deref(),
                )?;
                audit::record(
                    &tx,
                    now,
                    principal.user_id,
                    "sheet_carry_forward",
                    Some(&source_id),
                    Some(&nid),
                )?;
                audit::record(
                    &tx,
                    now,
                    principal.user_id,
                    "sheet_create",
                    Some(&nid),
                    None,
                )?;
                let row = load_row(&tx, &nid)?.ok_or_else(|| Error::SheetNotFound(nid.clone()))?;
                tx.commit()?;
                Ok::<_, Error>(Ok((row, sheet, carried_ids)))
            })
            .await??;
        self.detail(outcome.0, &outcome.1, outcome.2, Mode::Draft)
    }

    /// Marks every carried-forward value of a sheet as confirmed.
    pub async fn confirm_carried(&self, p: &Principal, id: &str) -> Result<()> {
        let now = self.clock.now_ms();
        let (principal, sid) = (p.clone(), id.to_string());
        self.store
            .write(move |c| {
                let tx = c.transaction()?;
                let row = load_row(&tx, &sid)?.ok_or_else(|| Error::SheetNotFound(sid.clone()))?;
                authorize(
                    &principal,
                    Action::EditSheet,
                    Target::Sheet {
                        institution: &row.institution,
                    },
                )?;
                tx.execute("DELETE FROM carried_items WHERE sheet_id = ?1", [&sid])?;
                audit::record(
                    &tx,
                    now,
                    principal.user_id,
                    "carry_confirm",
                    Some(&sid),
                    None,
                )?;
                tx.commit()?;
                Ok(())
            })
            .await
    }

    /// 差異: the differences against the sheet this one was carried from, every version, and
    /// (when asked) the differences between two versions.
    pub async fn differences(
        &self,
        p: &Principal,
        id: &str,
        between: Option<(&str, &str)>,
    ) -> Result<Differences> {
        let detail = self.get_sheet(p, id).await?;
        let sid = id.to_string();
        let source_id = detail.row.carried_from.clone();
        let (sheet, source, names) = self
            .store
            .read(move |c| {
                let sheet = load_doc(c, &sid)?;
                let source = match &source_id {
                    Some(s) => match load_row(c, s)? {
                        Some(_) => Some((s.clone(), load_doc(c, s)?)),
                        None => None,
                    },
                    None => None,
                };
                let mut names = BTreeMap::new();
                for h in sheet.history() {
                    if let Some(a) = h.author
                        && let Some(n) = user_name(c, a.user)?
                    {
                        names.insert(a.user, n);
                    }
                }
                Ok::<_, Error>((sheet, source, names))
            })
            .await?;
        if let Some((s, _)) = &source {
            self.audit(p, "sheet_view", Some(s), Some("差異")).await?;
        }
        let against = source.map(|(s, doc)| (s, compare(&doc.fields(), &sheet.fields())));
        let (own, here) = (self.node_id, self.config.institution.name.clone());
        let versions = sheet
            .history()
            .into_iter()
            .map(|h| Version {
                hash: h.hash.to_string(),
                from: h
                    .parents
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(","),
                at_ms: h.at_ms,
                author: h
                    .author
                    .map(|a| super::author_line(&sheet, a, own, &here, &names))
                    .unwrap_or_else(|| "不明".into()),
                message: h.message,
                // Reviews and inquiries (照会) are not items; they are named by what they are.
                changed: h
                    .changed
                    .into_iter()
                    .chain(review_parts(&h.reviews, "審査結果"))
                    .chain(review_parts(&h.inquiries, "照会"))
                    .collect(),
            })
            .collect();
        let between = match between {
            None => None,
            Some((from, to)) => {
                // A version is one hash or several (a change's parents), comma-separated.
                let parse = |v: &str| -> Result<Vec<ChangeHash>> {
                    v.split(',')
                        .map(|h| {
                            h.parse::<ChangeHash>().map_err(|_| {
                                Error::Invalid(format!("版の指定が正しくありません: {h}"))
                            })
                        })
                        .collect()
                };
                let changes = sheet
                    .diff(&parse(from)?, &parse(to)?)
                    .map_err(|e| Error::Invalid(e.to_string()))?;
                Some((from.to_string(), to.to_string(), changes))
            }
        };
        Ok(Differences {
            source: against,
            versions: one_line_per_step(versions),
            between,
        })
    }
}

/// A user's one step is one line of the history: 登録 writes the status, the key and the
/// author's name as separate changes, and a save records its author's name beside its items.
/// A change made right on top of the line before (its only parent), by the same author within
/// two seconds, with the same message (or one without a message), joins that line, naming
/// everything they changed, at the last change's version; the line's 表示 still runs from the
/// version its first change was made on. A save's change that wrote no item (only who its
/// author is) is no line of its own.
fn one_line_per_step(versions: Vec<Version>) -> Vec<Version> {
    let mut out: Vec<Version> = Vec::with_capacity(versions.len());
    for v in versions {
        if let Some(last) = out.last_mut()
            && last.author == v.author
            && v.from == last.hash
            && (last.message == v.message || v.message.is_empty() || last.message.is_empty())
            && (0..=2_000).contains(&(v.at_ms - last.at_ms))
        {
            if last.message.is_empty() {
                last.message = v.message;
            }
            for c in v.changed {
                if !last.changed.contains(&c) {
                    last.changed.push(c);
                }
            }
            last.hash = v.hash;
            last.at_ms = v.at_ms;
            continue;
        }
        if v.changed.is_empty() && (v.message.is_empty() || v.message == "一時保存") {
            continue;
        }
        out.push(v);
    }
    out
}

/// The access key of a sheet as printed, if it has one.
pub fn printed_key(row: &SheetRow) -> Option<String> {
    row.access_key
        .as_deref()
        .and_then(AccessKey::parse)
        .map(|k| k.display())
}
