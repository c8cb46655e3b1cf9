//! The municipality's screens — 受付一覧 (`/intake`, the reviewer's home), 審査 (`/review/{id}`)
//! with the result form and 照会, the 審査会 batch masked print (`POST /intake/print`) — and the
//! hospital's answer to an inquiry (`POST /sheets/{id}/inquiries/{inquiry}/answer`) with the
//! inquiry panel its sheet view and editor show. Handlers translate forms to domain calls; the
//! `review` domain decides access and audits.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use nsdb_rules::FormDef;
use nsdb_sync::{Decision, IncomeCategory, IncomeSpecial, ResearchConsent, Review};
use serde::Deserialize;

use crate::accounts::policy::{Action, role_may};
use crate::http::AppState;
use crate::http::shared::page::done_then;
use crate::http::shared::page::{Ctx, error_page, format_ms, listed, posted_form, slash_date};
use crate::http::shared::session::UiSession;
use crate::keys::AccessKey;
use crate::review::{InquiryDetail, IntakeState, ReviewInput};
use crate::{Error, Node};

/// What `/intake` may be given back: the sheet just resolved, or what was typed and why it
/// did not resolve.
#[derive(Debug, Default, Deserialize)]
pub struct IntakeQuery {
    pub resolved: Option<String>,
    pub error: Option<String>,
    pub access_key: Option<String>,
    pub birth_date: Option<String>,
}

/// `GET /intake`. Nothing in the address is shown: the result of a 受付 or an upload comes
/// as the session's one-time notice.
async fn intake(State(node): State<AppState>, s: UiSession) -> Response {
    intake_page_with(
        &node,
        &s,
        IntakeQuery::default(),
        None,
        nsdb_ui::papers::PaperForm::default(),
    )
    .await
}

/// The intake page with what was typed kept (`q.access_key`, `q.birth_date`) and `q.error`
/// shown, or the success notice for `q.resolved`. The resolution handler can answer with it.
pub async fn intake_page(node: &Node, s: &UiSession, q: IntakeQuery) -> Response {
    intake_page_with(node, s, q, None, nsdb_ui::papers::PaperForm::default()).await
}

/// Why a 審査会 print was refused (shown beside its button) and the sheets that were checked.
pub(crate) struct PrintRefusal {
    message: String,
    selected: Vec<String>,
}

/// The intake page with a refused print's reason beside its button (`refused`) and the paper
/// upload form `paper` as typed (its errors beside the fields); the print's and the paper
/// path's handlers answer with it.
pub(crate) async fn intake_page_with(
    node: &Node,
    s: &UiSession,
    q: IntakeQuery,
    refused: Option<PrintRefusal>,
    paper: nsdb_ui::papers::PaperForm,
) -> Response {
    let ctx = Ctx::new(node, s);
    let rows = match node.intake(&s.principal).await {
        Ok(rows) => rows,
        Err(e) => return error_page(Some(&ctx), e),
    };
    let notice = q.resolved.as_ref().map(|id| {
        match rows.iter().find(|r| &r.sheet_id == id) {
            Some(r) if r.state == IntakeState::NotArrived => format!(
                "アクセスキー {} を受け付けました。臨床調査個人票は同期で届きます（状態「未着」）。",
                AccessKey::shown(&r.access_key)
            ),
            Some(r) => format!(
                "アクセスキー {} を受け付けました。",
                AccessKey::shown(&r.access_key)
            ),
            None => "受け付けました。".to_string(),
        }
    });
    let view = nsdb_ui::review::IntakeView {
        lines: rows
            .iter()
            .map(|r| nsdb_ui::review::IntakeLine {
                sheet_id: r.sheet_id.clone(),
                received: format_ms(r.resolved_at_ms),
                access_key: AccessKey::shown(&r.access_key),
                name_kana: r.name_kana.clone().unwrap_or_else(|| "—".into()),
                disease: r.disease.clone().unwrap_or_else(|| "—".into()),
                doctor: r.doctor.clone().unwrap_or_else(|| "—".into()),
                judgment: r.judgment.clone().unwrap_or_else(|| "—".into()),
                state: r.state_label.clone(),
                arrived: r.state != IntakeState::NotArrived,
                amended: match &r.amendment {
                    Some(a) if a.registered_again && a.after_decision => "審査結果の後に修正",
                    Some(a) if a.registered_again => "修正・再登録",
                    _ => "",
                }
                .to_string(),
                amended_reason: r
                    .amendment
                    .as_ref()
                    .map(|a| a.reason.clone())
                    .unwrap_or_default(),
            })
            .collect(),
        access_key: q.access_key.unwrap_or_default(),
        birth_date: q.birth_date.unwrap_or_default(),
        error: q.error,
        notice,
        print_error: refused.as_ref().map(|r| r.message.clone()),
        selected: refused.map(|r| r.selected).unwrap_or_default(),
        papers: paper_section(node, s, &ctx, &paper).await,
    };
    Html(nsdb_ui::review::intake_page(&ctx.page(), &view).into_string()).into_response()
}

/// 紙の臨個票受付 on the intake page, for those who may upload papers.
async fn paper_section(
    node: &Node,
    s: &UiSession,
    ctx: &Ctx,
    form: &nsdb_ui::papers::PaperForm,
) -> maud::Markup {
    if !role_may(s.principal.role(), Action::UploadPaper) {
        return maud::Markup::default();
    }
    let lines: Vec<nsdb_ui::papers::PaperLine> = match node.papers(&s.principal).await {
        Ok(rows) => rows
            .into_iter()
            .map(crate::http::ui::papers::line)
            .collect(),
        Err(_) => Vec::new(),
    };
    nsdb_ui::papers::intake_section(&ctx.page(), form, &lines)
}

async fn review(State(node): State<AppState>, s: UiSession, Path(id): Path<String>) -> Response {
    review_page(&node, &s, &id, None, None, None, None).await
}

fn labelled(options: impl Iterator<Item = (&'static str, &'static str)>) -> Vec<(String, String)> {
    options
        .map(|(c, l)| (c.to_string(), l.to_string()))
        .collect()
}

/// An inquiry in display form, with item labels from `form`.
fn inquiry_line(form: Option<&FormDef>, d: &InquiryDetail) -> nsdb_ui::review::InquiryLine {
    let label = |field: &str| {
        form.and_then(|f| f.item(field))
            .map(|i| i.label.clone())
            .unwrap_or_else(|| field.to_string())
    };
    let shown =
        |field: &str, value: &Option<String>| match (form.and_then(|f| f.item(field)), value) {
            (_, None) => "（なし）".to_string(),
            (Some(item), Some(v)) => nsdb_ui::editor::display_value(item, v),
            (None, Some(v)) => v.clone(),
        };
    let i = &d.inquiry;
    nsdb_ui::review::InquiryLine {
        id: i.id.clone(),
        fields: i.fields.clone(),
        labels: i.fields.iter().map(|f| label(f)).collect(),
        question: i.question.clone(),
        asked_by: i.asked_by.clone(),
        asked_at: format_ms(i.asked_ms),
        state: i.state.code().to_string(),
        state_label: i.state.label().to_string(),
        answer: i.answer.clone().unwrap_or_default(),
        answered_by: i.answered_by.clone().unwrap_or_default(),
        answered_at: i.answered_ms.map(format_ms).unwrap_or_default(),
        closed_at: i.closed_ms.map(format_ms).unwrap_or_default(),
        changes: d
            .changes
            .iter()
            .map(|c| nsdb_ui::review::ChangeLine {
                label: label(&c.field),
                before: shown(&c.field, &c.before),
                after: shown(&c.field, &c.after),
            })
            .collect(),
    }
}

/// The review screen's sentence about the hospital's 修正: when, why, and what the reviewer
/// should do about it.
fn amendment_note(a: &crate::review::Amendment) -> String {
    let (at, reason) = (format_ms(a.at_ms), &a.reason);
    match (a.registered_again, a.after_decision) {
        (false, _) => format!(
            "医療機関がこの様式を修正中です（{at}、理由: {reason}）。再登録されるまで内容が変わることがあります。審査結果（認定・不認定・保留）は再登録の後に記録してください。"
        ),
        (true, true) => format!(
            "審査結果を記録した後に、医療機関がこの様式を修正し、再登録しました（{at}、理由: {reason}）。修正後の内容を確認し、必要なら審査結果を記録し直してください。"
        ),
        (true, false) => format!(
            "医療機関がこの様式を修正し、再登録しました（{at}、理由: {reason}）。表示は修正後の内容です。"
        ),
    }
}

fn recorded(r: &Review) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Some(d) = r.decision {
        out.push(("認定結果".into(), d.label().into()));
    }
    if let Some(reason) = &r.reason {
        out.push(("不認定の理由".into(), reason.clone()));
    }
    if r.valid_from.is_some() || r.valid_to.is_some() {
        out.push((
            "有効期間".into(),
            format!(
                "{} 〜 {}",
                slash_date(r.valid_from.as_deref()),
                slash_date(r.valid_to.as_deref())
            ),
        ));
    }
    if let Some(c) = r.research_consent {
        out.push(("研究利用の同意".into(), c.label().into()));
    }
    if let Some(i) = r.income {
        let special = r
            .income_special
            .map(|s| format!("（{}）", s.label()))
            .unwrap_or_default();
        out.push(("所得区分".into(), format!("{}{special}", i.label())));
    }
    if let (Some(at), Some(by)) = (r.decided_ms, &r.reviewer) {
        out.push(("記録".into(), format!("{by}（{}）", format_ms(at))));
    }
    out
}

/// The review screen; `typed` keeps a posted result that was refused.
async fn review_page(
    node: &Node,
    s: &UiSession,
    id: &str,
    notice: Option<&str>,
    error: Option<String>,
    typed: Option<&ReviewInput>,
    question: Option<&str>,
) -> Response {
    let ctx = Ctx::new(node, s);
    let screen = match node.review_screen(&s.principal, id).await {
        Ok(screen) => screen,
        Err(e) => return error_page(Some(&ctx), e),
    };
    let form = node.catalogue.form(&screen.detail.row.form_id);
    let sections = form
        .map(|f| {
            f.sections
                .iter()
                .map(|sec| nsdb_ui::review::ReviewSection {
                    title: sec.title.clone(),
                    items: sec
                        .items
                        .iter()
                        .map(|item| nsdb_ui::review::ReviewItem {
                            id: item.id.clone(),
                            label: item.label.clone(),
                            value: screen
                                .detail
                                .items
                                .get(&item.id)
                                .map(|v| nsdb_ui::editor::display_value(item, v))
                                .unwrap_or_default(),
                        })
                        .collect(),
                })
                .collect()
        })
        .unwrap_or_default();
    let ev = &screen.evaluation;
    let judgment = [&ev.judgment.category, &ev.judgment.severity]
        .into_iter()
        .flatten()
        .map(|j| nsdb_ui::review::JudgmentRow {
            title: j.title.clone(),
            derived: j
                .derived
                .as_ref()
                .map(|o| o.label.clone())
                .unwrap_or_else(|| "―".into()),
            criteria: match j.meets_criteria {
                Some(true) => "基準を満たす".into(),
                Some(false) => "基準を満たさない".into(),
                None => "―".into(),
            },
        })
        .collect();
    let current = screen.review.clone();
    let pick = |typed: Option<&str>, stored: Option<&'static str>| {
        typed
            .map(str::to_string)
            .or(stored.map(str::to_string))
            .unwrap_or_default()
    };
    let view = nsdb_ui::review::ReviewView {
        amendment: screen.amendment.as_ref().map(amendment_note),
        sheet_id: id.to_string(),
        title: match node.catalogue.form(&screen.detail.row.form_id) {
            Some(f) => format!(
                "{}{} {}",
                nsdb_rules::form::disease_number_label(f.kind),
                f.number(),
                f.disease
            ),
            None => screen.detail.row.disease.clone(),
        },
        access_key: screen
            .detail
            .row
            .access_key
            .as_deref()
            .map(AccessKey::shown)
            .unwrap_or_default(),
        doctor: screen.detail.row.doctor_name.clone().unwrap_or_default(),
        sections,
        judgment,
        judgment_messages: ev
            .judgment
            .messages
            .iter()
            .map(|m| m.text.clone())
            .collect(),
        checks: screen
            .detail
            .messages
            .iter()
            .map(|m| m.text.clone())
            .collect(),
        inquiries: screen
            .inquiries
            .iter()
            .map(|d| inquiry_line(form, d))
            .collect(),
        recorded: current.as_ref().map(recorded).unwrap_or_default(),
        decision: pick(
            typed.map(|t| t.decision.as_str()),
            current
                .as_ref()
                .and_then(|r| r.decision)
                .map(Decision::code),
        ),
        reason: typed
            .map(|t| t.reason.clone())
            .or_else(|| current.as_ref().and_then(|r| r.reason.clone()))
            .unwrap_or_default(),
        valid_from: typed
            .map(|t| t.valid_from.clone())
            .or_else(|| current.as_ref().and_then(|r| r.valid_from.clone()))
            .unwrap_or_default(),
        valid_to: typed
            .map(|t| t.valid_to.clone())
            .or_else(|| current.as_ref().and_then(|r| r.valid_to.clone()))
            .unwrap_or_default(),
        research_consent: pick(
            typed.map(|t| t.research_consent.as_str()),
            current
                .as_ref()
                .and_then(|r| r.research_consent)
                .map(ResearchConsent::code),
        ),
        income: pick(
            typed.map(|t| t.income.as_str()),
            current
                .as_ref()
                .and_then(|r| r.income)
                .map(IncomeCategory::code),
        ),
        income_special: pick(
            typed.map(|t| t.income_special.as_str()),
            current
                .as_ref()
                .and_then(|r| r.income_special)
                .map(IncomeSpecial::code),
        ),
        decisions: labelled(Decision::ALL.iter().map(|d| (d.code(), d.label()))),
        consents: labelled(ResearchConsent::ALL.iter().map(|d| (d.code(), d.label()))),
        incomes: labelled(IncomeCategory::ALL.iter().map(|d| (d.code(), d.label()))),
        specials: labelled(IncomeSpecial::ALL.iter().map(|d| (d.code(), d.label()))),
        notice: notice.map(str::to_string),
        error,
        question: question.unwrap_or_default().to_string(),
        paper_pdf: node
            .paper_of_sheet(id)
            .await
            .ok()
            .flatten()
            .map(|paper| format!("/papers/{paper}.pdf")),
    };
    Html(nsdb_ui::review::review_page(&ctx.page(), &view).into_string()).into_response()
}

async fn record(
    State(node): State<AppState>,
    s: UiSession,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let ctx = Ctx::new(&node, &s);
    let fields = match posted_form(&body, &s.csrf, Some(&ctx)) {
        Ok(f) => f,
        Err(refused) => return *refused,
    };
    let get = |k: &str| fields.get(k).cloned().unwrap_or_default();
    let input = ReviewInput {
        decision: get("decision"),
        reason: get("reason"),
        valid_from: get("valid_from"),
        valid_to: get("valid_to"),
        research_consent: get("research_consent"),
        income: get("income"),
        income_special: get("income_special"),
    };
    match node.record_review(&s.principal, &id, &input).await {
        Ok(_) => {
            done_then(
                &node,
                &s,
                &format!("/review/{id}"),
                "審査結果を記録しました。",
            )
            .await
        }
        Err(Error::Invalid(why)) => {
            review_page(&node, &s, &id, None, Some(why), Some(&input), None).await
        }
        Err(e) => error_page(Some(&ctx), e),
    }
}

async fn ask(
    State(node): State<AppState>,
    s: UiSession,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let ctx = Ctx::new(&node, &s);
    let fields = match posted_form(&body, &s.csrf, Some(&ctx)) {
        Ok(f) => f,
        Err(refused) => return *refused,
    };
    let items = listed(&fields, "field");
    let question = fields.get("question").cloned().unwrap_or_default();
    match node.ask_inquiry(&s.principal, &id, &items, &question).await {
        Ok(_) => {
            let text = "照会しました。医療機関に同期で届きます。";
            done_then(&node, &s, &format!("/review/{id}"), text).await
        }
        Err(Error::Invalid(why)) => {
            review_page(&node, &s, &id, None, Some(why), None, Some(&question)).await
        }
        Err(e) => error_page(Some(&ctx), e),
    }
}

async fn close(
    State(node): State<AppState>,
    s: UiSession,
    Path((id, inquiry)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let ctx = Ctx::new(&node, &s);
    if let Err(refused) = posted_form(&body, &s.csrf, Some(&ctx)) {
        return *refused;
    }
    match node.close_inquiry(&s.principal, &id, &inquiry).await {
        Ok(()) => done_then(&node, &s, &format!("/review/{id}"), "照会を完了しました。").await,
        Err(e) => error_page(Some(&ctx), e),
    }
}

async fn answer(
    State(node): State<AppState>,
    s: UiSession,
    Path((id, inquiry)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let ctx = Ctx::new(&node, &s);
    let fields = match posted_form(&body, &s.csrf, Some(&ctx)) {
        Ok(f) => f,
        Err(refused) => return *refused,
    };
    let text = fields.get("answer").cloned().unwrap_or_default();
    match node
        .answer_inquiry(&s.principal, &id, &inquiry, &text)
        .await
    {
        Ok(()) => Redirect::to(&format!("/sheets/{id}#inquiries")).into_response(),
        Err(e) => error_page(Some(&ctx), e),
    }
}

/// The inquiry panel of sheet `id` for the hospital's view and editor; `None` when the sheet
/// has no inquiries or cannot be read by the user.
pub async fn inquiry_panel(
    node: &Node,
    s: &UiSession,
    id: &str,
    form: &FormDef,
) -> Option<nsdb_ui::review::InquiryPanel> {
    let details = node.sheet_inquiries(&s.principal, id).await.ok()?;
    if details.is_empty() {
        return None;
    }
    let can_answer = crate::accounts::policy::role_may(
        s.principal.role(),
        crate::accounts::policy::Action::AnswerInquiry,
    );
    Some(nsdb_ui::review::InquiryPanel {
        sheet_id: id.to_string(),
        csrf: s.csrf.clone(),
        can_answer,
        lines: details
            .iter()
            .map(|d| inquiry_line(Some(form), d))
            .collect(),
    })
}

/// 審査会用印刷: the selected sheets as one masked PDF, each from a new page with its
/// judgment summary; one audit entry per sheet. The PDF is a download (the intake page stays);
/// a refusal (nothing selected, a sheet not resolved here or not arrived, too many) comes back
/// as the intake page with the reason beside the button and the selection kept, with the
/// error's status.
async fn print(State(node): State<AppState>, s: UiSession, body: Bytes) -> Response {
    let ctx = Ctx::new(&node, &s);
    let fields = match posted_form(&body, &s.csrf, Some(&ctx)) {
        Ok(f) => f,
        Err(refused) => return *refused,
    };
    let ids = listed(&fields, "id");
    let refuse = async |e: Error, ids: Vec<String>| {
        use axum::http::StatusCode;
        let status = match &e {
            Error::Denied(_) => StatusCode::FORBIDDEN,
            Error::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Error::SheetNotFound(_) | Error::UnknownForm(_) => StatusCode::NOT_FOUND,
            // Storage and the like: the error page says what to do and logs it.
            _ => return error_page(Some(&ctx), e),
        };
        let refusal = PrintRefusal {
            message: e.to_string(),
            selected: ids,
        };
        let mut page = intake_page_with(
            &node,
            &s,
            IntakeQuery::default(),
            Some(refusal),
            nsdb_ui::papers::PaperForm::default(),
        )
        .await;
        *page.status_mut() = status;
        page
    };
    let sheets = match node.review_print_sheets(&s.principal, &ids).await {
        Ok(sheets) => sheets,
        Err(e) => return refuse(e, ids).await,
    };
    let printed_at = format!("{} JST", format_ms(node.clock.now_ms()));
    // Named like a single print, after the form and the day (an ASCII name too, for clients
    // that do not read RFC 5987): 臨床調査個人票_パーキンソン病_2026-12-01_審査会用.pdf, or
    // with the count when the batch holds several diseases (臨床調査個人票_3件_…).
    let day = crate::sheets::jst_date(node.clock.now_ms()).to_string();
    let disposition = crate::http::shared::page::file_disposition(
        "attachment",
        &format!(
            "{}_{day}_審査会用.pdf",
            batch_title(&node.catalogue, &sheets)
        ),
        &format!("review-board-{}.pdf", day.replace('-', "")),
    );
    let rules_version = node.catalogue.printed_version().map(str::to_string);
    let catalogue = node.catalogue.clone();
    let pdf = tokio::task::spawn_blocking(move || {
        review_board_pdf(&catalogue, &sheets, &printed_at, rules_version.as_deref())
    })
    .await;
    match pdf {
        Ok(Ok(bytes)) => (
            [
                (header::CONTENT_TYPE, "application/pdf".to_string()),
                (header::CONTENT_DISPOSITION, disposition),
            ],
            bytes,
        )
            .into_response(),
        Ok(Err(e)) => refuse(e, ids).await,
        Err(_) => {
            refuse(
                Error::Invalid("帳票を作成できませんでした。もう一度お試しください。".into()),
                ids,
            )
            .await
        }
    }
}

/// What a 審査会 batch holds, for its file name: `臨床調査個人票_パーキンソン病` when every
/// sheet is of one form, else the kind (or both kinds) and the count, `臨床調査個人票_3件`.
fn batch_title(catalogue: &nsdb_rules::Catalogue, sheets: &[crate::review::PrintSheet]) -> String {
    let forms: Vec<&nsdb_rules::FormDef> = sheets
        .iter()
        .filter_map(|p| catalogue.form(&p.detail.row.form_id))
        .collect();
    let mut kinds: Vec<&str> = forms.iter().map(|f| f.kind.label()).collect();
    kinds.sort_unstable();
    kinds.dedup();
    match forms.first() {
        Some(first) if forms.iter().all(|f| f.id == first.id) => {
            format!("{}_{}", first.kind.label(), first.disease)
        }
        _ => format!("{}_{}件", kinds.join("・"), sheets.len()),
    }
}

/// The 審査会 PDF of `sheets` (already authorised and audited).
pub fn review_board_pdf(
    catalogue: &nsdb_rules::Catalogue,
    sheets: &[crate::review::PrintSheet],
    printed_at: &str,
    rules_version: Option<&str>,
) -> Result<Vec<u8>, Error> {
    let mut forms = Vec::with_capacity(sheets.len());
    for sheet in sheets {
        let form = catalogue
            .form(&sheet.detail.row.form_id)
            .ok_or_else(|| Error::UnknownForm(sheet.detail.row.form_id.clone()))?;
        forms.push(form);
    }
    let statuses: Vec<&str> = sheets
        .iter()
        .map(|p| crate::sheets::status::label(&p.detail.row.status))
        .collect();
    let keys: Vec<Option<String>> = sheets
        .iter()
        .map(|p| p.detail.row.access_key.as_deref().map(AccessKey::shown))
        .collect();
    let batch: Vec<crate::print::BatchSheet<'_>> = sheets
        .iter()
        .zip(&forms)
        .zip(&statuses)
        .zip(&keys)
        .map(|(((p, form), status), key)| crate::print::BatchSheet {
            form,
            values: &p.detail.items,
            meta: crate::print::PrintMeta {
                sheet_id: &p.detail.row.id,
                status,
                access_key: key.as_deref(),
                form_version: &p.detail.form_version,
                rules_version,
                printed_at,
                draft: !matches!(
                    p.detail.row.status.as_str(),
                    crate::sheets::status::REGISTERED | crate::sheets::status::APPROVED
                ),
                institution: "",
                doctor: p.detail.row.doctor_name.as_deref().unwrap_or(""),
            },
            judgment: &p.judgment,
        })
        .collect();
    crate::print::review_board_pdf(&batch).map_err(|e| Error::Invalid(e.to_string()))
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/intake", get(intake))
        .route("/intake/print", post(print))
        .route("/review/{id}", get(review).post(record))
        .route("/review/{id}/inquiries", post(ask))
        .route("/review/{id}/inquiries/{inquiry}/close", post(close))
        .route("/sheets/{id}/inquiries/{inquiry}/answer", post(answer))
}
