//! A municipality's review of the sheets it resolved (M13), the inquiries (照会) it asks the
//! hospital about items, the hospital's answers, and the 審査会 batch masked print (M14).
//!
//! The review and the inquiries live in the sheet's document (`nsdb_sync::Review`,
//! `nsdb_sync::Inquiry`), written under the reviewer's or the doctor's actor, so they travel by
//! sync: the result reaches the hub and the hospital, a question reaches the hospital, an
//! answer reaches the municipality, whichever side was offline. A reviewer reaches only the
//! sheets this node resolved (`resolutions`, written by key resolution); `policy` decides, and
//! every view, result, question, answer and print is audited in the transaction that does it.
//!
//! `authority` says which received changes a node may make to a sheet (the hub refuses the
//! rest). This module never renders, never logs a value and never writes an item, the patient
//! block or the header of a sheet.

pub mod authority;

use nsdb_rules::Evaluation;
use nsdb_sync::{
    Decision, Edit, FieldChange, IncomeCategory, IncomeSpecial, Inquiry, InquiryState, NewInquiry,
    ResearchConsent, Review, Sheet, SheetId,
};
use rusqlite::{Connection, OptionalExtension};
use serde::{Deserialize, Serialize};

use crate::accounts::policy::{Action, Principal, Role, Target, authorize};
use crate::sheets::{SheetDetail, load_doc, load_row, store_sheet};
use crate::{Error, Node, Result, audit};

/// The most sheets one 審査会 print takes.
pub const PRINT_LIMIT: usize = 200;

/// Where a sheet on the intake list stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum IntakeState {
    /// 未着: resolved, not yet arrived by sync.
    NotArrived,
    /// 未審査.
    Unreviewed,
    /// 照会中: an inquiry is open or answered and not closed.
    Inquiring,
    /// 認定.
    Approved,
    /// 不認定.
    Rejected,
    /// 保留.
    Deferred,
    /// 修正中: the hospital took the sheet back to amend it (修正) after this node resolved
    /// its key, and has not registered it again.
    Amending,
}

impl IntakeState {
    /// The screen's word.
    pub fn label(self) -> &'static str {
        match self {
            IntakeState::NotArrived => "未着",
            IntakeState::Unreviewed => "未審査",
            IntakeState::Inquiring => "照会中",
            IntakeState::Approved => Decision::Approved.label(),
            IntakeState::Rejected => Decision::Rejected.label(),
            IntakeState::Deferred => Decision::Deferred.label(),
            IntakeState::Amending => "修正中",
        }
    }

    fn of(
        review: Option<&Review>,
        inquiries: &[Inquiry],
        amendment: Option<&Amendment>,
    ) -> IntakeState {
        if amendment.is_some_and(|a| !a.registered_again) {
            return IntakeState::Amending;
        }
        match review.and_then(|r| r.decision) {
            Some(Decision::Approved) => IntakeState::Approved,
            Some(Decision::Rejected) => IntakeState::Rejected,
            Some(Decision::Deferred) => IntakeState::Deferred,
            None if inquiries.iter().any(|i| i.state != InquiryState::Closed) => {
                IntakeState::Inquiring
            }
            None => IntakeState::Unreviewed,
        }
    }
}

/// The latest 修正 of a sheet by its hospital after this municipality resolved its key: the
/// municipality is told, in the intake list and on the review screen, because what it
/// received (and perhaps already certified) is no longer what the hospital stands by.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Amendment {
    /// When the doctor took the sheet back (修正), unix ms.
    pub at_ms: i64,
    /// The doctor's reason, as written with 修正.
    pub reason: String,
    /// The sheet is registered again (登録 after the 修正): the amended sheet stands.
    pub registered_again: bool,
    /// The 修正 came after this municipality recorded a result (認定・不認定・保留).
    pub after_decision: bool,
}

/// The latest 修正 of `sheet`, read from the document's log, where `workflow` writes it as
/// 「修正: 理由」: while the sheet is not registered again, whenever it was made; once it is,
/// only when made after `resolved_ms` (an amendment settled before the key was resolved is
/// already in what the municipality received). `None` when there is none.
pub fn amendment(sheet: &Sheet, review: Option<&Review>, resolved_ms: i64) -> Option<Amendment> {
    let log = sheet.log();
    let (n, entry) = log
        .iter()
        .enumerate()
        .rfind(|(_, e)| e.message.starts_with(AMEND_PREFIX))?;
    let status = sheet.header().status;
    let registered_again = matches!(
        status.as_str(),
        crate::sheets::status::REGISTERED | crate::sheets::status::APPROVED
    ) && log[n + 1..]
        .iter()
        .any(|e| e.message == crate::sheets::workflow::Step::Register.label());
    if registered_again && entry.at_ms < resolved_ms {
        return None;
    }
    Some(Amendment {
        at_ms: entry.at_ms,
        reason: entry.message[AMEND_PREFIX.len()..].trim().to_string(),
        registered_again,
        after_decision: review
            .and_then(|r| r.decided_ms)
            .is_some_and(|decided| decided <= entry.at_ms),
    })
}

/// How a 修正 begins its message in the document (`workflow`, `Step::Amend`).
pub const AMEND_PREFIX: &str = "修正: ";

/// One line of the municipality's intake list (受付一覧).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct IntakeRow {
    pub sheet_id: String,
    /// 受付日: when the key was resolved, unix ms.
    pub resolved_at_ms: i64,
    pub access_key: String,
    /// 氏名カナ; `None` until the sheet arrived.
    pub name_kana: Option<String>,
    /// 病名; `None` until the sheet arrived.
    pub disease: Option<String>,
    /// 一次判定 in one line; `None` until the sheet arrived.
    pub judgment: Option<String>,
    /// 指定医 as the document names it (`sheets::doctor_in_document`); `None` until the sheet
    /// arrived or when the document names nobody.
    pub doctor: Option<String>,
    pub state: IntakeState,
    /// The state's word on the screen.
    pub state_label: String,
    /// The hospital's latest 修正 since the key was resolved, if any.
    pub amendment: Option<Amendment>,
}

/// What a reviewer records (as posted: codes, dates YYYY-MM-DD; empty means not given).
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
pub struct ReviewInput {
    /// approved, rejected or deferred.
    pub decision: String,
    /// 不認定の理由: required with rejected.
    #[serde(default)]
    pub reason: String,
    #[serde(default)]
    pub valid_from: String,
    #[serde(default)]
    pub valid_to: String,
    /// given or not_given.
    #[serde(default)]
    pub research_consent: String,
    /// A 所得区分 code (seikatsu_hogo, teishotoku_1, teishotoku_2, ippan_1, ippan_2, joui).
    #[serde(default)]
    pub income: String,
    /// kougaku_chouki, jinkou_kokyuki or juusho; empty for none.
    #[serde(default)]
    pub income_special: String,
}

/// An inquiry with what changed in the sheet's items since it was asked.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct InquiryDetail {
    #[schema(value_type = Object)]
    pub inquiry: Inquiry,
    /// 差異: item changes from the version asked about to now.
    #[schema(value_type = Vec<Object>)]
    pub changes: Vec<FieldChange>,
}

/// The review screen's content: the sheet, its machine judgment, this municipality's review and
/// the inquiries.
#[derive(Debug, Clone)]
pub struct ReviewScreen {
    pub detail: SheetDetail,
    pub evaluation: Evaluation,
    /// This node's 自治体コード.
    pub municipality: String,
    pub review: Option<Review>,
    pub inquiries: Vec<InquiryDetail>,
    /// The hospital's latest 修正 since the key was resolved, if any.
    pub amendment: Option<Amendment>,
}

/// One sheet of a 審査会 print: what the masked print needs.
#[derive(Debug, Clone)]
pub struct PrintSheet {
    pub detail: SheetDetail,
    pub judgment: String,
}

/// The machine judgment (一次判定) in one line, e.g. 「診断: Definite（基準を満たす）／重症度: …」.
pub fn judgment_summary(ev: &Evaluation) -> String {
    let parts: Vec<String> = [&ev.judgment.category, &ev.judgment.severity]
        .into_iter()
        .flatten()
        .map(|j| {
            let outcome = j
                .derived
                .as_ref()
                .map(|o| o.label.clone())
                .unwrap_or_else(|| "判定不能".into());
            let criteria = match j.meets_criteria {
                Some(true) => "（基準を満たす）",
                Some(false) => "（基準を満たさない）",
                None => "",
            };
            format!("{}: {outcome}{criteria}", j.title)
        })
        .collect();
    if parts.is_empty() {
        "一次判定なし".into()
    } else {
        parts.join("／")
    }
}

/// Whether this node resolved sheet `id`, and when (unix ms).
pub(crate) fn resolved_at(c: &Connection, id: &str) -> rusqlite::Result<Option<i64>> {
    c.query_row(
        "SELECT resolved_at FROM resolutions WHERE sheet_id = ?1",
        [id],
        |r| r.get(0),
    )
    .optional()
}

/// A received sheet this municipality resolved and has not linked yet gets its review entry
/// (受付, `linked_ms` = when it was resolved) under the resolving user's actor, so the hospital
/// sees 自治体連携日. Call in the transaction that stores the received sheet; returns whether
/// it wrote.
pub fn link_arrived(
    c: &Connection,
    sheet: &mut Sheet,
    node: nsdb_sync::NodeId,
    municipality: &str,
) -> rusqlite::Result<bool> {
    if sheet.review(municipality).is_some() {
        return Ok(false);
    }
    let found: Option<(i64, i64)> = c
        .query_row(
            "SELECT resolved_at, user_id FROM resolutions WHERE sheet_id = ?1",
            [sheet.id().to_string()],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let Some((at, user)) = found else {
        return Ok(false);
    };
    let edit = Edit {
        author: nsdb_sync::Author {
            node,
            user: user as u64,
        },
        at_ms: at,
        message: "受付",
    };
    Ok(sheet
        .set_review(&Review::linked(municipality, at), edit)
        .unwrap_or(false))
}

fn code<T: Copy>(text: &str, parse: fn(&str) -> Option<T>, what: &str) -> Result<Option<T>> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    parse(text)
        .map(Some)
        .ok_or_else(|| Error::Invalid(format!("{what}の値が正しくありません: {text}")))
}

fn date(text: &str, what: &str) -> Result<Option<String>> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    nsdb_rules::value::Date::typed(text)
        .map(|d| Some(d.to_string()))
        .ok_or_else(|| {
            Error::Invalid(format!(
                "{what}は 2026-04-01 や 令和8年4月1日（R8.4.1）の形で入力してください: {text}"
            ))
        })
}

impl ReviewInput {
    /// The review this input records over `base`, by `reviewer` at `now`. Errors name the
    /// field to correct, in Japanese.
    /// `shoman`: the sheet is a 医療意見書 (小児慢性特定疾病), else a 臨床調査個人票 (指定難病).
    fn apply(&self, base: Review, reviewer: &str, now: i64, shoman: bool) -> Result<Review> {
        let decision = code(&self.decision, Decision::from_code, "認定結果")?
            .ok_or_else(|| Error::Invalid("認定結果を選んでください。".into()))?;
        let reason = Some(self.reason.trim().to_string()).filter(|r| !r.is_empty());
        if decision == Decision::Rejected && reason.is_none() {
            return Err(Error::Invalid("不認定の理由を入力してください。".into()));
        }
        let valid_from = date(&self.valid_from, "有効期間（開始）")?;
        let valid_to = date(&self.valid_to, "有効期間（終了）")?;
        if let (Some(from), Some(to)) = (&valid_from, &valid_to)
            && from > to
        {
            return Err(Error::Invalid(
                "有効期間の終了日が開始日より前です。".into(),
            ));
        }
        if decision == Decision::Approved && (valid_from.is_none() || valid_to.is_none()) {
            return Err(Error::Invalid(
                "認定には有効期間（開始・終了）を入力してください。".into(),
            ));
        }
        let income = code(&self.income, IncomeCategory::from_code, "所得区分")?;
        let income_special = code(
            &self.income_special,
            IncomeSpecial::from_code,
            "所得区分（特例）",
        )?;
        // Nothing is certified for a rejected application: no period, no income tier.
        if decision == Decision::Rejected
            && (valid_from.is_some()
                || valid_to.is_some()
                || income.is_some()
                || income_special.is_some())
        {
            return Err(Error::Invalid(
                "不認定のときは有効期間と所得区分を入力しません。空欄にしてください。".into(),
            ));
        }
        // The special rows belong to one programme each (docs/review.md, 所得区分): 高額かつ長期
        // to 指定難病 from 一般所得Ⅰ up, 重症 to 小児慢性特定疾病.
        match income_special {
            Some(IncomeSpecial::HighCostLongTerm) if shoman => {
                return Err(Error::Invalid(
                    "「高額かつ長期」は指定難病の区分です。小児慢性特定疾病では「重症」を選んでください。".into(),
                ));
            }
            Some(IncomeSpecial::HighCostLongTerm)
                if !matches!(
                    income,
                    Some(
                        IncomeCategory::GeneralI
                            | IncomeCategory::GeneralII
                            | IncomeCategory::Upper
                    )
                ) =>
            {
                return Err(Error::Invalid(
                    "「高額かつ長期」は所得区分が一般所得Ⅰ・一般所得Ⅱ・上位所得のときに選べます。"
                        .into(),
                ));
            }
            Some(IncomeSpecial::Severe) if !shoman => {
                return Err(Error::Invalid(
                    "「重症」は小児慢性特定疾病の区分です。指定難病では「高額かつ長期」を選んでください。".into(),
                ));
            }
            _ => {}
        }
        Ok(Review {
            decision: Some(decision),
            reason: if decision == Decision::Rejected {
                reason
            } else {
                None
            },
            valid_from,
            valid_to,
            research_consent: code(
                &self.research_consent,
                ResearchConsent::from_code,
                "研究利用の同意",
            )?,
            income,
            income_special,
            decided_ms: Some(now),
            reviewer: Some(reviewer.to_string()),
            ..base
        })
    }
}

impl Node {
    fn municipality_code(&self) -> String {
        self.config.institution.code.clone()
    }

    /// The intake list (受付一覧): every sheet this node resolved, newest first, with its state;
    /// audited as one list view.
    pub async fn intake(&self, p: &Principal) -> Result<Vec<IntakeRow>> {
        authorize(p, Action::ReviewSheet, Target::None)?;
        let code = self.municipality_code();
        let catalogue = self.catalogue.clone();
        let today = self.clock.today_jst();
        let rows = self
            .store
            .read(move |c| {
                let mut st = c.prepare(
                    "SELECT r.sheet_id, r.resolved_at, r.access_key, s.doc IS NOT NULL
                     FROM resolutions r LEFT JOIN sheets s ON s.id = r.sheet_id
                     ORDER BY r.resolved_at DESC, r.sheet_id",
                )?;
                let found = st
                    .query_map([], |r| {
                        Ok((
                            r.get::<_, String>(0)?,
                            r.get::<_, i64>(1)?,
                            r.get::<_, String>(2)?,
                            r.get::<_, bool>(3)?,
                        ))
                    })?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                let mut rows = Vec::with_capacity(found.len());
                for (id, resolved_at_ms, access_key, arrived) in found {
                    let mut row = IntakeRow {
                        sheet_id: id.clone(),
                        resolved_at_ms,
                        access_key,
                        name_kana: None,
                        disease: None,
                        judgment: None,
                        doctor: None,
                        state: IntakeState::NotArrived,
                        state_label: String::new(),
                        amendment: None,
                    };
                    if arrived {
                        let sheet = load_doc(c, &id)?;
                        let header = sheet.header();
                        let values = sheet.fields();
                        row.name_kana = values.get("patient.name_kana").cloned();
                        row.disease = Some(header.disease.clone());
                        row.doctor = crate::sheets::doctor_in_document(&sheet, header.doctor);
                        row.judgment = catalogue.form(&header.form_id).map(|form| {
                            judgment_summary(&nsdb_rules::evaluate(form, &values, today))
                        });
                        let review = sheet.review(&code);
                        row.amendment = amendment(&sheet, review.as_ref(), resolved_at_ms);
                        row.state = IntakeState::of(
                            review.as_ref(),
                            &sheet.inquiries(),
                            row.amendment.as_ref(),
                        );
                    }
                    row.state_label = row.state.label().to_string();
                    rows.push(row);
                }
                Ok::<_, Error>(rows)
            })
            .await?;
        let detail = audit::shown(rows.iter().map(|r| r.sheet_id.as_str()));
        self.audit(p, "intake_list", None, Some(&detail)).await?;
        Ok(rows)
    }

    /// Checks that `p` may review sheet `id` (this node resolved it); a refusal is audited.
    async fn check_resolved(&self, p: &Principal, id: &str, action: Action) -> Result<()> {
        let sid = id.to_string();
        let resolved = self
            .store
            .read(move |c| resolved_at(c, &sid).map_err(Error::from))
            .await?
            .is_some();
        if let Err(denied) = authorize(p, action, Target::Resolved { resolved }) {
            self.audit_denied(p, "review_denied", id).await?;
            return Err(denied.into());
        }
        Ok(())
    }

    /// The review screen of sheet `id`: the sheet read-only, its machine judgment, this
    /// municipality's review and every inquiry with the changes since it was asked. Audited.
    pub async fn review_screen(&self, p: &Principal, id: &str) -> Result<ReviewScreen> {
        self.check_resolved(p, id, Action::ReviewSheet).await?;
        let sid = id.to_string();
        let found = self
            .store
            .read(move |c| match load_row(c, &sid)? {
                None => Ok(None),
                Some(row) => Ok::<_, Error>(Some((
                    row,
                    load_doc(c, &sid)?,
                    resolved_at(c, &sid)?.unwrap_or(0),
                ))),
            })
            .await?;
        let Some((row, sheet, resolved_ms)) = found else {
            return Err(Error::Invalid(
                "この臨床調査個人票・医療意見書はまだ届いていません。同期の後にもう一度開いてください。"
                    .into(),
            ));
        };
        self.audit(p, "review_view", Some(id), None).await?;
        let detail = self.detail(row, &sheet, Vec::new(), nsdb_rules::check::Mode::Complete)?;
        let form = self
            .catalogue
            .form(&detail.row.form_id)
            .ok_or_else(|| Error::UnknownForm(detail.row.form_id.clone()))?;
        let evaluation = nsdb_rules::evaluate(form, &detail.items, self.clock.today_jst());
        let municipality = self.municipality_code();
        let review = sheet.review(&municipality);
        Ok(ReviewScreen {
            evaluation,
            amendment: amendment(&sheet, review.as_ref(), resolved_ms),
            review,
            inquiries: inquiry_details(&sheet),
            municipality,
            detail,
        })
    }

    /// Loads sheet `id` in a write transaction, lets `change` write to it, stores it with an
    /// audit entry `action` when it changed. Returns what `change` returned.
    async fn change_sheet<T: Send + 'static>(
        &self,
        p: &Principal,
        id: &str,
        action: &'static str,
        change: impl FnOnce(&mut Sheet, Edit<'_>) -> Result<(T, bool)> + Send + 'static,
    ) -> Result<T> {
        let (sid, uid, now) = (id.to_string(), p.user_id, self.clock.now_ms());
        let author = nsdb_sync::Author {
            node: self.node_id,
            user: p.user_id,
        };
        let (name, place) = (p.name.clone(), self.institution_of(p).await?.name);
        self.store
            .write(move |c| {
                let tx = c.transaction()?;
                let Some(row) = load_row(&tx, &sid)? else {
                    return Err(Error::SheetNotFound(sid));
                };
                let mut sheet = load_doc(&tx, &sid)?;
                let edit = Edit {
                    author,
                    at_ms: now,
                    message: "",
                };
                let (out, wrote) = change(&mut sheet, edit)?;
                if wrote {
                    sheet.set_author_name(&name, &place, edit);
                    store_sheet(&tx, &mut sheet, &row.registration, now)?;
                    audit::record(&tx, now, uid, action, Some(&sid), None)?;
                }
                tx.commit()?;
                Ok(out)
            })
            .await
    }

    /// Records this municipality's result (認定結果, 有効期間, 研究利用の同意, 所得区分) in the
    /// sheet's document under the reviewer's actor; audited. Returns the review as stored.
    /// Idempotent: the result already recorded, posted again, writes and audits nothing.
    pub async fn record_review(
        &self,
        p: &Principal,
        id: &str,
        input: &ReviewInput,
    ) -> Result<Review> {
        self.check_resolved(p, id, Action::RecordReview).await?;
        let code = self.municipality_code();
        let (input, reviewer, now) = (input.clone(), p.name.clone(), self.clock.now_ms());
        let sid = id.to_string();
        let linked = self
            .store
            .read(move |c| resolved_at(c, &sid).map_err(Error::from))
            .await?
            .unwrap_or(now);
        self.change_sheet(p, id, "review_record", move |sheet, edit| {
            // A sheet the hospital took back to amend is not what it will stand by: no result
            // until it is registered again (a result recorded meanwhile would also hide that
            // an earlier one predates the amendment).
            let amended = amendment(sheet, sheet.review(&code).as_ref(), linked);
            if let Some(a) = amended.as_ref().filter(|a| !a.registered_again) {
                return Err(Error::Invalid(format!(
                    "この様式は医療機関で修正中です（理由: {}）。再登録の後に審査結果を記録してください。",
                    a.reason
                )));
            }
            let base = sheet
                .review(&code)
                .unwrap_or_else(|| Review::linked(&code, linked));
            let shoman = sheet.header().form_id.starts_with("iken");
            let review = input.apply(base.clone(), &reviewer, now, shoman)?;
            // The same result posted again (a resubmitted form, a retried request) changes
            // nothing: the result as recorded stands, with its time and reviewer.
            // A result recorded before the sheet was amended and registered again is confirmed
            // by recording it again: written, with its new time, so the flag clears.
            let reconfirmed = amended.is_some_and(|a| a.after_decision);
            let unchanged = base.decided_ms.is_some()
                && !reconfirmed
                && Review {
                    decided_ms: base.decided_ms,
                    reviewer: base.reviewer.clone(),
                    ..review.clone()
                } == base;
            if unchanged {
                return Ok((base, false));
            }
            let edit = Edit {
                message: "審査結果",
                ..edit
            };
            let wrote = sheet
                .set_review(&review, edit)
                .map_err(|e| Error::Invalid(e.to_string()))?;
            Ok((review, wrote))
        })
        .await
    }

    /// Asks the hospital about `fields` of sheet `id` (照会); the question travels in the
    /// document. Audited. Returns the inquiry. Idempotent: the same question about the same
    /// items while an earlier one is not closed returns that one and writes nothing.
    pub async fn ask_inquiry(
        &self,
        p: &Principal,
        id: &str,
        fields: &[String],
        question: &str,
    ) -> Result<Inquiry> {
        self.check_resolved(p, id, Action::RecordReview).await?;
        // A paper sheet (登録種別 紙) was entered at the hub from the paper: no hospital holds
        // it to answer, so a question about it goes to the doctor on paper, not here.
        let sid = id.to_string();
        let paper = self
            .store
            .read(move |c| {
                Ok::<_, Error>(load_row(c, &sid)?.is_some_and(|r| r.registration == "paper"))
            })
            .await?;
        if paper {
            return Err(Error::Invalid(
                "紙の臨個票（登録種別 紙）には、この画面から照会できません。医療機関に電話・文書で照会してください。"
                    .into(),
            ));
        }
        let limit = nsdb_rules::form::ENTRY_LIMIT;
        if question.trim().chars().count() > limit {
            return Err(Error::Invalid(format!(
                "照会内容は{limit}文字までです（{}文字あります）。",
                question.trim().chars().count()
            )));
        }
        let catalogue = self.catalogue.clone();
        let new = NewInquiry {
            id: SheetId::random().to_string(),
            municipality: self.municipality_code(),
            fields: fields.to_vec(),
            question: question.trim().to_string(),
            asked_by: p.name.clone(),
        };
        self.change_sheet(p, id, "inquiry_ask", move |sheet, edit| {
            // The same question about the same items, still waiting, is not asked twice (a
            // resubmitted form, a retried request): the waiting one is returned.
            let mut asked: Vec<&String> = new.fields.iter().collect();
            asked.sort();
            asked.dedup();
            if let Some(waiting) = sheet.inquiries().into_iter().find(|i| {
                let mut fields: Vec<&String> = i.fields.iter().collect();
                fields.sort();
                fields.dedup();
                i.municipality == new.municipality
                    && i.state != InquiryState::Closed
                    && i.question == new.question
                    && fields == asked
            }) {
                return Ok((waiting, false));
            }
            // A question is about items of the sheet's form, never an id made up in a request.
            let form_id = sheet.header().form_id;
            if let Some(form) = catalogue.form(&form_id)
                && let Some(unknown) = new.fields.iter().find(|f| form.item(f).is_none())
            {
                return Err(Error::Invalid(format!(
                    "照会する項目「{unknown}」はこの様式にありません。"
                )));
            }
            let edit = Edit {
                message: "照会",
                ..edit
            };
            let inquiry = sheet
                .ask(new, edit)
                .map_err(|e| Error::Invalid(e.to_string()))?;
            Ok((inquiry, true))
        })
        .await
    }

    /// Closes inquiry `inquiry` of sheet `id` (照会完了). Audited.
    pub async fn close_inquiry(&self, p: &Principal, id: &str, inquiry: &str) -> Result<()> {
        self.check_resolved(p, id, Action::RecordReview).await?;
        let (code, inquiry) = (self.municipality_code(), inquiry.to_string());
        self.change_sheet(p, id, "inquiry_close", move |sheet, edit| {
            match sheet.inquiry(&inquiry) {
                Some(found) if found.municipality == code => {}
                _ => return Err(Error::Invalid("この照会はありません。".into())),
            }
            let edit = Edit {
                message: "照会完了",
                ..edit
            };
            let wrote = sheet
                .close_inquiry(&inquiry, edit)
                .map_err(|e| Error::Invalid(e.to_string()))?;
            Ok(((), wrote))
        })
        .await
    }

    /// The hospital's answer to inquiry `inquiry` of its sheet `id` (doctor or clerk of the
    /// sheet's institution). Audited. Idempotent: the answer already given, posted again,
    /// writes and audits nothing.
    pub async fn answer_inquiry(
        &self,
        p: &Principal,
        id: &str,
        inquiry: &str,
        answer: &str,
    ) -> Result<()> {
        let sid = id.to_string();
        let row = self
            .store
            .read(move |c| load_row(c, &sid).map_err(Error::from))
            .await?
            .ok_or_else(|| Error::SheetNotFound(id.to_string()))?;
        let target = Target::Sheet {
            institution: &row.institution,
        };
        if let Err(denied) = authorize(p, Action::AnswerInquiry, target) {
            self.audit_denied(p, "inquiry_answer_denied", id).await?;
            return Err(denied.into());
        }
        let (inquiry, answer, by) = (
            inquiry.to_string(),
            answer.trim().to_string(),
            p.name.clone(),
        );
        self.change_sheet(p, id, "inquiry_answer", move |sheet, edit| {
            // The answer already given, posted again (also after the inquiry was closed),
            // changes nothing.
            match sheet.inquiry(&inquiry).and_then(|i| i.answer) {
                Some(given) if given == answer => return Ok(((), false)),
                // An answer is never replaced: the municipality may already have read it.
                Some(_) => {
                    return Err(Error::Invalid(
                        "この照会にはすでに回答しています（回答は変更できません）。補足があるときは、自治体に連絡してください。"
                            .into(),
                    ));
                }
                None => {}
            }
            let edit = Edit {
                message: "照会回答",
                ..edit
            };
            let wrote = sheet
                .answer(&inquiry, &answer, &by, edit)
                .map_err(|e| Error::Invalid(e.to_string()))?;
            Ok(((), wrote))
        })
        .await
    }

    /// The inquiries of a sheet the user may view (the hospital's editor and view), each with
    /// the changes since it was asked. Audited as a view by the caller's `get_sheet`.
    pub async fn sheet_inquiries(&self, p: &Principal, id: &str) -> Result<Vec<InquiryDetail>> {
        let (sid, inst) = (id.to_string(), p.institution.clone());
        // The ministry reads a sheet's inquiries as it reads the sheet: under a live grant.
        let (ministry, uid, now) = (p.role() == Role::Ministry, p.user_id, self.clock.now_ms());
        let found = self
            .store
            .read(move |c| match load_row(c, &sid)? {
                None => Ok(None),
                Some(row) => Ok::<_, Error>(Some((
                    row,
                    load_doc(c, &sid)?,
                    crate::sheets::resolved_here(c, &sid, &inst)?,
                    ministry && crate::sheets::identified::granted(c, uid, &sid, now)?,
                ))),
            })
            .await?;
        let Some((row, sheet, linked, justified)) = found else {
            return Err(Error::SheetNotFound(id.to_string()));
        };
        let target = if justified {
            Target::Justified
        } else {
            crate::sheets::sheet_target(p, &row, linked)
        };
        authorize(p, Action::ViewSheet, target)?;
        Ok(inquiry_details(&sheet))
    }

    /// The sheets of a 審査会 print, each with its judgment summary; every one must be a sheet
    /// this node resolved and holds. Audits one `review_print` entry per sheet.
    pub async fn review_print_sheets(
        &self,
        p: &Principal,
        ids: &[String],
    ) -> Result<Vec<PrintSheet>> {
        authorize(p, Action::ReviewSheet, Target::None)?;
        if ids.is_empty() {
            return Err(Error::Invalid(
                "印刷する臨床調査個人票を選んでください。".into(),
            ));
        }
        if ids.len() > PRINT_LIMIT {
            return Err(Error::Invalid(format!(
                "一度に印刷できるのは {PRINT_LIMIT} 件までです。"
            )));
        }
        for id in ids {
            self.check_resolved(p, id, Action::ReviewSheet).await?;
        }
        let wanted = ids.to_vec();
        let loaded = self
            .store
            .read(move |c| {
                let mut out = Vec::with_capacity(wanted.len());
                for id in &wanted {
                    let row = load_row(c, id)?.ok_or_else(|| {
                        Error::Invalid(format!(
                            "まだ届いていない臨床調査個人票があります（{id}）。同期の後に印刷してください。"
                        ))
                    })?;
                    out.push((row, load_doc(c, id)?));
                }
                Ok::<_, Error>(out)
            })
            .await?;
        let mut sheets = Vec::with_capacity(loaded.len());
        for (row, sheet) in loaded {
            let detail = self.detail(row, &sheet, Vec::new(), nsdb_rules::check::Mode::Draft)?;
            let judgment = match self.catalogue.form(&detail.row.form_id) {
                Some(form) => judgment_summary(&nsdb_rules::evaluate(
                    form,
                    &detail.items,
                    self.clock.today_jst(),
                )),
                None => "一次判定なし".into(),
            };
            sheets.push(PrintSheet { detail, judgment });
        }
        let (uid, now) = (p.user_id, self.clock.now_ms());
        let printed: Vec<String> = ids.to_vec();
        let count = printed.len();
        self.store
            .write(move |c| {
                let tx = c.transaction()?;
                let detail = format!("masked batch={count}");
                for id in &printed {
                    audit::record(&tx, now, uid, "review_print", Some(id), Some(&detail))?;
                }
                tx.commit()?;
                Ok::<_, Error>(())
            })
            .await?;
        Ok(sheets)
    }
}

/// Every inquiry of `sheet` with the item changes since it was asked.
fn inquiry_details(sheet: &Sheet) -> Vec<InquiryDetail> {
    let now = sheet.heads();
    sheet
        .inquiries()
        .into_iter()
        .map(|inquiry| InquiryDetail {
            changes: sheet.diff(&inquiry.asked_heads, &now).unwrap_or_default(),
            inquiry,
        })
        .collect()
}
