//! The sheet's own screens: view, editor (save, check, 自動入力, register, approve and the other
//! workflow steps taken from it), 一次判定表示, 差異, 帳票出力 and data export.
//!
//! Every POST saves what was typed first (so nothing typed is lost when an action is refused),
//! then takes the action, and answers with a redirect (so reloading never repeats an action) or,
//! when the action is refused, with the editor showing why.

use std::collections::BTreeMap;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use nsdb_rules::check::Mode;
use serde::Deserialize;

use crate::http::AppState;
use crate::http::shared::page::{Ctx, error_page, format_ms, posted_form};
use crate::http::shared::session::UiSession;
use crate::sheets::workflow::{Offered, Step, printed_key};
use crate::sheets::{SheetDetail, status};
use crate::{Error, Node};

pub(super) fn title(node: &Node, d: &SheetDetail) -> String {
    match node.catalogue.form(&d.row.form_id) {
        Some(f) => f.heading(),
        None => d.row.disease.clone(),
    }
}

/// What the notice of an action says (shown once on the next page: [`notice_then`]).
fn notice_text(code: &str) -> Option<&'static str> {
    Some(match code {
        "saved" => "一時保存しました。",
        "checked" => "チェックしました。指摘はありません。",
        "registered" => {
            "登録しました。アクセスキーは上の欄と帳票に表示されます（修正後の再登録でも同じキーです）。"
        }
        "approved" => "承認しました。",
        "released" => "承認を解除しました。",
        "requested" => "指定医に確認を依頼しました。",
        "returned" => "差し戻しました。",
        "pulled" => "引き戻しました。",
        "confirmed" => "前回値を確認済みにしました。",
        "calculated" => "自動計算の項目を入力しました。",
        "nothing_calculated" => {
            "自動計算できた項目はありません。計算に使う項目（身長・体重、各スコアなど）が未入力か、値が正しくありません。チェックで確認してから、もう一度押してください。"
        }
        "no_calculation" => "この様式には自動計算の項目がありません。",
        "adopted" => "選んだ値を採用しました。ほかの入力も一時保存しました。",
        "amending" => {
            "修正のため一時保存に戻しました。アクセスキーは変わりません。直したら、もう一度登録してください。"
        }
        "renewed" => "前回の内容を引き継いで作成しました。変更のある項目だけ入力してください。",
        _ => return None,
    })
}

/// The answer to an editor action that succeeded: its notice ([`notice_text`]) kept as the
/// session's one-time notice, and a redirect to `to` (`page::done_then`). The notice is never
/// in the address, so a crafted link cannot show one.
async fn notice_then(node: &Node, s: &UiSession, to: &str, code: &str) -> Response {
    crate::http::shared::page::done_then(node, s, to, notice_text(code).unwrap_or_default()).await
}

#[derive(Deserialize, Default)]
struct PageQuery {
    check: Option<u8>,
    /// 日付の表示: `wareki` or `western`.
    dates: Option<String>,
}

/// Renders the view or the editor of a sheet.
/// The page for a save the store refused: the reason, and the posted form (`body`, with its
/// CSRF token and version) ready to be posted again.
fn save_failed(
    ctx: &Ctx,
    id: &str,
    body: &axum::body::Bytes,
    e: crate::store::StoreError,
) -> Response {
    let status = match e {
        crate::store::StoreError::DiskFull => StatusCode::INSUFFICIENT_STORAGE,
        crate::store::StoreError::Damaged(_) => StatusCode::SERVICE_UNAVAILABLE,
        _ => {
            tracing::error!(target: "nsdb::http", error = %e, "a save failed");
            StatusCode::INTERNAL_SERVER_ERROR
        }
    };
    let message = match e {
        crate::store::StoreError::DiskFull | crate::store::StoreError::Damaged(_) => e.to_string(),
        _ => "サーバで問題が発生したため、保存できませんでした。時間をおいて、もう一度保存してください。"
            .to_string(),
    };
    let fields: Vec<(String, String)> = serde_urlencoded::from_bytes(body).unwrap_or_default();
    let page = ctx.page();
    let html = nsdb_ui::save_failed(
        &page,
        "保存できませんでした",
        &message,
        &format!("/sheets/{id}"),
        &format!("/sheets/{id}/edit"),
        &fields,
    );
    (status, Html(html.into_string())).into_response()
}

/// The editor's ワークフロー panel: the sheet's institution (as written on it, else the
/// user's own), who holds it and the last step's comment.
async fn workflow_summary(
    node: &Node,
    s: &UiSession,
    d: &SheetDetail,
) -> Option<nsdb_ui::editor::WorkflowSummary> {
    let note = node
        .workflow_note(&s.principal, &d.row.id)
        .await
        .ok()
        .flatten()?;
    let institution = match d.items.get("doctor.institution_name") {
        Some(name) if !name.is_empty() => name.clone(),
        _ if d.row.institution == s.principal.institution => node
            .institution_of(&s.principal)
            .await
            .map(|i| i.name)
            .unwrap_or_else(|_| d.row.institution.clone()),
        _ => d.row.institution.clone(),
    };
    Some(nsdb_ui::editor::WorkflowSummary {
        institution,
        holder: note
            .holder
            .map(|(name, kind)| format!("{kind} {name}"))
            .unwrap_or_default(),
        comment_by: note
            .comment
            .as_ref()
            .map(|c| format!("{} {}", c.by, format_ms(c.at_ms)))
            .unwrap_or_default(),
        comment: note.comment.map(|c| c.text).unwrap_or_default(),
    })
}

/// The newest other sheet of the same patient and disease, when this one is a new
/// 臨床調査個人票 (see `Node::same_patient_sheets`): a notice offers 更新登録 from it.
async fn renewal_offer(
    node: &Node,
    s: &UiSession,
    id: &str,
) -> Option<nsdb_ui::editor::RenewalOffer> {
    let rows = node.same_patient_sheets(&s.principal, id).await.ok()?;
    let row = rows.into_iter().next()?;
    let offered = Offered::for_user(&s.principal, &row);
    Some(nsdb_ui::editor::RenewalOffer {
        status: status::label(&row.status).to_string(),
        written: crate::http::shared::page::slash_date(row.written_date.as_deref()),
        can_renew: offered.renew,
        sheet_id: row.id,
        draft_id: id.to_string(),
    })
}

/// The field a posted `_focus` names (`f-patient-name`), if it is one: the editor returns to
/// it after the redirect (`#f-…`).
fn focus_fragment(focus: Option<&str>) -> String {
    match focus {
        Some(f)
            if f.starts_with("f-")
                && f.len() <= 120
                && f.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') =>
        {
            format!("#{f}")
        }
        _ => String::new(),
    }
}

// The page's inputs, one each; a struct of them would only be built to be taken apart here.
#[allow(clippy::too_many_arguments)]
async fn render(
    node: &Node,
    s: &UiSession,
    id: &str,
    editing: bool,
    mode: Mode,
    problem: Option<&str>,
    wareki: bool,
) -> Response {
    render_typed(node, s, id, editing, mode, problem, wareki, None).await
}

/// [`render`], with `typed`: values the user posted that were not saved (a save refused), shown
/// in their fields instead of the stored ones, so that nothing typed is lost. When the sheet can
/// no longer be edited, the view shows the problem instead of an error page.
#[allow(clippy::too_many_arguments)]
async fn render_typed(
    node: &Node,
    s: &UiSession,
    id: &str,
    editing: bool,
    mode: Mode,
    problem: Option<&str>,
    wareki: bool,
    typed: Option<&BTreeMap<String, String>>,
) -> Response {
    let ctx = Ctx::new(node, s);
    let d = match crate::http::shared::sheet::sheet_detail(node, &s.principal, id, mode).await {
        Ok(d) => d,
        // The ministry opens an identified sheet only with a reason: ask for one.
        Err(Error::Denied(_))
            if crate::accounts::policy::role_may(
                s.principal.role(),
                crate::accounts::policy::Action::OpenIdentified,
            ) =>
        {
            match crate::http::ui::monitor::ask_reason(id) {
                Some(to) => return to,
                None => return error_page(Some(&ctx), Error::SheetNotFound(id.to_string())),
            }
        }
        Err(e) => return error_page(Some(&ctx), e),
    };
    let Some(form) = node.catalogue.form(&d.row.form_id) else {
        return error_page(Some(&ctx), Error::UnknownForm(d.row.form_id.clone()));
    };
    let offered = Offered::for_user(&s.principal, &d.row);
    let editing = editing && (offered.edit || typed.is_none());
    // A save refused on a sheet that can no longer be edited (registered meanwhile): the view,
    // with what was typed and not saved listed under the reason, so it can be copied.
    let unsaved: Option<String> = typed.filter(|_| !editing).and_then(|typed| {
        let lines: Vec<String> = form
            .items()
            .filter_map(|item| {
                let v = typed.get(&item.id)?;
                (d.items.get(&item.id).map(String::as_str).unwrap_or("") != v.as_str()
                    && !v.is_empty())
                .then(|| format!("「{}」: {v}", item.label))
            })
            .collect();
        (!lines.is_empty()).then(|| {
            format!(
                "{}\n\n保存されなかった入力（必要ならコピーしてください）:\n{}",
                problem.unwrap_or(""),
                lines.join("\n")
            )
        })
    });
    let problem = unsaved.as_deref().or(problem);
    // The editor asked for a sheet this user may see but not edit (a bookmark, the back
    // button after 登録): the view, saying why and what to do instead.
    let edits = crate::accounts::policy::authorize(
        &s.principal,
        crate::accounts::policy::Action::EditSheet,
        crate::accounts::policy::Target::Sheet {
            institution: &d.row.institution,
        },
    )
    .is_ok();
    let explained = (editing && !offered.edit).then(|| cannot_edit(&d.row.status, &offered, edits));
    let editing = editing && offered.edit;
    // A refused save is 422; a sheet this user may never edit (another institution's, a role
    // that does not edit) is 403, shown as its view; a sheet whose state stops editing is 200.
    let status = match (problem, explained) {
        (Some(_), _) => StatusCode::UNPROCESSABLE_ENTITY,
        (None, Some((_, false))) => StatusCode::FORBIDDEN,
        _ => StatusCode::OK,
    };
    let problem = problem.or(explained.map(|(why, _)| why));
    let doctors = if offered.request {
        node.doctors(&s.principal).await.unwrap_or_default()
    } else {
        Vec::new()
    };
    let mut values = d.items.clone();
    if let Some(typed) = typed.filter(|_| editing) {
        for (k, v) in typed {
            if form.item(k).is_some() {
                values.insert(k.clone(), v.clone());
            }
        }
    }
    let updated = format_ms(d.row.updated_at_ms);
    let key = printed_key(&d.row);
    // The sheet just read says whether it holds conflicts: without any (nearly always) the
    // document is not read again for the panel.
    let conflicts = if d.conflicts.is_empty() {
        None
    } else {
        super::conflicts::conflict_panel(node, s, id, form, editing).await
    };
    let inquiries = if d.has_inquiries {
        crate::http::ui::review::inquiry_panel(node, s, id, form).await
    } else {
        None
    };
    let version = d.version.join(",");
    let workflow = workflow_summary(node, s, &d).await;
    let renewal = if editing && matches!(d.row.status.as_str(), status::DRAFT | status::RETURNED) {
        renewal_offer(node, s, id).await
    } else {
        None
    };
    let view = nsdb_ui::EditorView {
        workflow: workflow.as_ref(),
        wareki,
        renewal: renewal.as_ref(),
        form,
        meta: nsdb_ui::SheetMeta {
            id: &d.row.id,
            status: status::label(&d.row.status),
            access_key: key.as_deref(),
            form_version: &d.form_version,
            updated: &updated,
            assignee: d.row.assignee_name.as_deref(),
            doctor: d.row.doctor_name.as_deref(),
        },
        values: &values,
        messages: &d.messages,
        problem,
        carried: &d.carried,
        conflicts: conflicts.as_ref(),
        inquiries: inquiries.as_ref(),
        version: &version,
        user: s.principal.user_id,
        actions: nsdb_ui::Actions {
            edit: offered.edit,
            request: offered.request,
            pull_back: offered.pull_back,
            return_: offered.return_,
            register: offered.register,
            approve: offered.approve,
            release: offered.release,
            renew: offered.renew,
            amend: offered.amend,
            doctors: &doctors,
        },
    };
    let page = if editing {
        nsdb_ui::editor::editor(&ctx.page(), &view)
    } else {
        nsdb_ui::editor::view(&ctx.page(), &view)
    };
    (status, Html(page.into_string())).into_response()
}

/// Why a sheet in `status` cannot be edited by this user, and what to do instead; and whether
/// it is the sheet's state that stops editing (`true`) rather than the user's rights. `edits`:
/// the user edits this institution's sheets (a doctor or clerk of it).
fn cannot_edit(status: &str, offered: &Offered, edits: bool) -> (&'static str, bool) {
    match status {
        status::APPROVED if offered.release => (
            "承認済みのため編集できません。編集するには「解除」で承認を解除してください。",
            true,
        ),
        status::REGISTERED if offered.amend => (
            "登録済みのため、このままでは編集できません。内容を直すときは「修正の理由」を記入して「修正」を押してください（アクセスキーはそのままで、下書きに戻ります）。",
            true,
        ),
        status::APPROVED if edits => (
            "承認済みのため編集できません。承認の解除と修正は指定医が行います。",
            true,
        ),
        status::REGISTERED if edits => (
            "登録済みのため編集できません。修正は指定医が行います。",
            true,
        ),
        _ => ("この様式を編集する権限がありません。", false),
    }
}

async fn view_sheet(
    State(node): State<AppState>,
    s: UiSession,
    Path(id): Path<String>,
) -> Response {
    render(&node, &s, &id, false, Mode::Draft, None, false).await
}

async fn edit_sheet(
    State(node): State<AppState>,
    s: UiSession,
    jar: axum_extra::extract::cookie::CookieJar,
    Path(id): Path<String>,
    Query(q): Query<PageQuery>,
) -> Response {
    // 日付の表示 chosen on the editor (西暦 / 和暦): kept in a cookie for the next pages.
    let chosen = match q.dates.as_deref() {
        Some("wareki") => Some(true),
        Some("western") => Some(false),
        _ => None,
    };
    let wareki = chosen.unwrap_or_else(|| dates_in_wareki(&jar));
    let mode = if q.check.is_some() {
        Mode::Complete
    } else {
        Mode::Draft
    };
    let page = render(&node, &s, &id, true, mode, None, wareki).await;
    with_date_style(page, chosen)
}

/// The cookie that keeps how the editor shows dates: `wareki` or `western`.
const DATES_COOKIE: &str = "nsdb_dates";

/// Whether this browser's user chose to see dates in 和暦.
fn dates_in_wareki(jar: &axum_extra::extract::cookie::CookieJar) -> bool {
    jar.get(DATES_COOKIE).is_some_and(|c| c.value() == "wareki")
}

/// `page` with the date style cookie set, when the user just chose one (by the editor's
/// 西暦/和暦 links, or by typing a date in 和暦).
fn with_date_style(mut page: Response, wareki: Option<bool>) -> Response {
    use axum_extra::extract::cookie::{Cookie, SameSite};
    let Some(wareki) = wareki else {
        return page;
    };
    let cookie = Cookie::build((DATES_COOKIE, if wareki { "wareki" } else { "western" }))
        .path("/")
        .http_only(true)
        .secure(true)
        .same_site(SameSite::Strict)
        .max_age(time::Duration::days(365))
        .build();
    if let Ok(v) = header::HeaderValue::from_str(&cookie.to_string()) {
        page.headers_mut().append(header::SET_COOKIE, v);
    }
    page
}

/// 和暦 when a date item of `form` was typed in 和暦 in `fields` (the user chose it).
fn typed_style(
    form: &nsdb_rules::FormDef,
    fields: &std::collections::BTreeMap<String, String>,
) -> Option<bool> {
    fields
        .iter()
        .filter(|(k, _)| {
            form.item(k).is_some_and(|i| {
                matches!(
                    i.ty,
                    nsdb_rules::ItemType::Date | nsdb_rules::ItemType::YearMonth
                )
            })
        })
        .any(|(_, v)| nsdb_rules::value::is_wareki(v))
        .then_some(true)
}

/// The editor's form: save what was typed, then take the button's action. Without a valid
/// session (expired), the sign-in page holds what was posted and saves it after sign-in.
async fn save_sheet(
    State(node): State<AppState>,
    session: Result<UiSession, Response>,
    jar: axum_extra::extract::cookie::CookieJar,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let s = match session {
        Ok(s) => s,
        Err(_) => return crate::http::ui::accounts::sign_in_to_save(&node, jar, &id, &body),
    };
    let mut chosen = None;
    let page = save_and_act(&node, &s, &id, &body, dates_in_wareki(&jar), &mut chosen).await;
    with_date_style(page, chosen)
}

/// [`save_sheet`] once signed in; `chosen` becomes `Some(true)` when a date was typed in 和暦.
async fn save_and_act(
    node: &Node,
    s: &UiSession,
    id: &str,
    body: &Bytes,
    wareki: bool,
    chosen: &mut Option<bool>,
) -> Response {
    let id = id.to_string();
    let ctx = Ctx::new(node, s);
    let mut fields = match posted_form(body, &s.csrf, Some(&ctx)) {
        Ok(f) => f,
        Err(refused) => return *refused,
    };
    let action = fields.remove("action").unwrap_or_else(|| "save".into());
    // この値を採用 in the editor (`adopt:FIELD:VALUE`): the other typed items are saved, the
    // conflicting item takes the chosen value rather than the one its field shows.
    let adopt = action
        .strip_prefix("adopt:")
        .and_then(|rest| rest.split_once(':'))
        .map(|(field, value)| (field.to_string(), value.to_string()));
    if let Some((field, _)) = &adopt {
        fields.remove(field);
    }
    let to = fields.remove("_to").unwrap_or_default();
    let comment = fields.remove("_comment").unwrap_or_default();
    let back_to = focus_fragment(fields.remove("_focus").as_deref());
    // The version the page was made from: only what this user changed since is written.
    let version: Vec<String> = fields
        .remove("_version")
        .map(|v| v.split(',').map(str::to_string).collect())
        .unwrap_or_default();
    fields.retain(|k, _| k != "csrf" && !k.starts_with('_'));
    let p = &s.principal;
    let saved = if fields.is_empty() {
        Ok(None)
    } else if version.is_empty() {
        node.update_sheet(p, &id, &fields)
            .await
            .map(|d| Some(d.row.form_id))
    } else {
        node.update_sheet_since(p, &id, &version, &fields)
            .await
            .map(|d| Some(d.row.form_id))
    };
    let saved = saved.map(|form_id| {
        if let Some(form) = form_id.and_then(|f| node.catalogue.form(&f)) {
            *chosen = typed_style(form, &fields);
        }
    });
    let wareki = wareki || chosen.is_some();
    if let Err(e) = saved {
        return match e {
            // Refused (a value too long, a sheet no longer editable): the editor again with
            // what was typed in its fields and the reason, nothing lost.
            Error::Invalid(why) => {
                render_typed(
                    node,
                    s,
                    &id,
                    true,
                    Mode::Draft,
                    Some(&why),
                    wareki,
                    Some(&fields),
                )
                .await
            }
            // A fault on the server's side (a full disk, a damaged database): the typed values
            // stay on the page, ready to be posted again.
            Error::Store(store) => save_failed(&ctx, &id, body, store),
            other => error_page(Some(&ctx), other),
        };
    }
    let step = match action.as_str() {
        "save" => {
            return notice_then(node, s, &format!("/sheets/{id}/edit{back_to}"), "saved").await;
        }
        "check" => {
            let first = match node.get_sheet_checked(p, &id, Mode::Complete).await {
                Ok(d) => d.messages.first().and_then(|m| m.items.first().cloned()),
                Err(e) => return error_page(Some(&ctx), e),
            };
            return match first {
                Some(item) => Redirect::to(&format!(
                    "/sheets/{id}/edit?check=1#f-{}",
                    item.replace('.', "-")
                ))
                .into_response(),
                None => {
                    notice_then(
                        node,
                        s,
                        &format!("/sheets/{id}/edit?check=1{back_to}"),
                        "checked",
                    )
                    .await
                }
            };
        }
        "autofill" => {
            return match node.autofill(p, &id).await {
                Ok((_, filled)) => {
                    let notice = match filled {
                        crate::sheets::Autofilled { of: 0, .. } => "no_calculation",
                        crate::sheets::Autofilled { calculated: 0, .. } => "nothing_calculated",
                        _ => "calculated",
                    };
                    notice_then(node, s, &format!("/sheets/{id}/edit{back_to}"), notice).await
                }
                Err(Error::Invalid(why)) => {
                    render(node, s, &id, true, Mode::Draft, Some(&why), wareki).await
                }
                Err(e) => error_page(Some(&ctx), e),
            };
        }
        "confirm_carried" => {
            return match node.confirm_carried(p, &id).await {
                Ok(()) => {
                    notice_then(node, s, &format!("/sheets/{id}/edit{back_to}"), "confirmed").await
                }
                Err(e) => error_page(Some(&ctx), e),
            };
        }
        _ if adopt.is_some() => {
            let (field, value) = adopt.unwrap_or_default();
            let back = focus_fragment(Some(&format!("f-{}", field.replace('.', "-"))));
            return match node.resolve_conflict(p, &id, &field, &value).await {
                Ok(()) => {
                    notice_then(node, s, &format!("/sheets/{id}/edit{back}"), "adopted").await
                }
                Err(Error::Invalid(why)) => {
                    render(node, s, &id, true, Mode::Draft, Some(&why), wareki).await
                }
                Err(e) => error_page(Some(&ctx), e),
            };
        }
        "register" => (Step::Register, "registered"),
        "approve" => (Step::Approve, "approved"),
        "pullback" => (Step::PullBack, "pulled"),
        "return" => (Step::Return { comment }, "returned"),
        "request" => match to.parse::<u64>() {
            Ok(to) => (Step::Request { to, comment }, "requested"),
            Err(_) => {
                let why = "依頼先の指定医を選んでください。";
                return render(node, s, &id, true, Mode::Draft, Some(why), wareki).await;
            }
        },
        other => {
            return error_page(
                Some(&ctx),
                Error::Invalid(format!("この操作はありません: {other}")),
            );
        }
    };
    take_step(node, s, &id, step.0, step.1, true, wareki).await
}

/// Takes a workflow step and shows where the user goes next.
async fn take_step(
    node: &Node,
    s: &UiSession,
    id: &str,
    step: Step,
    notice: &str,
    from_editor: bool,
    wareki: bool,
) -> Response {
    let register = step == Step::Register;
    match node.step(&s.principal, id, step).await {
        Ok(d) => {
            let stay_in_editor = from_editor && Offered::for_user(&s.principal, &d.row).edit;
            let page = if stay_in_editor { "/edit" } else { "" };
            notice_then(node, s, &format!("/sheets/{id}{page}"), notice).await
        }
        Err(Error::Invalid(why)) => {
            let mode = if register {
                Mode::Complete
            } else {
                Mode::Draft
            };
            render(node, s, id, from_editor, mode, Some(&why), wareki).await
        }
        // No key block yet: the sheet stays as saved, the message stands beside 登録.
        Err(e @ (Error::NoKeyBlock | Error::KeysAwaitHub)) => {
            render(
                node,
                s,
                id,
                from_editor,
                Mode::Draft,
                Some(&e.to_string()),
                wareki,
            )
            .await
        }
        Err(e) => error_page(Some(&Ctx::new(node, s)), e),
    }
}

/// A step posted from the view, the list or the history (no item fields).
async fn posted_step(
    node: &Node,
    s: &UiSession,
    id: &str,
    body: &Bytes,
    step: Step,
    notice: &str,
) -> Response {
    if let Err(refused) = posted_form(body, &s.csrf, Some(&Ctx::new(node, s))) {
        return *refused;
    }
    take_step(node, s, id, step, notice, false, false).await
}

async fn approve(
    State(node): State<AppState>,
    s: UiSession,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    posted_step(&node, &s, &id, &body, Step::Approve, "approved").await
}

async fn release(
    State(node): State<AppState>,
    s: UiSession,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    posted_step(&node, &s, &id, &body, Step::Release, "released").await
}

async fn pull_back(
    State(node): State<AppState>,
    s: UiSession,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    posted_step(&node, &s, &id, &body, Step::PullBack, "pulled").await
}

/// 修正 of a registered sheet: with the reason posted, back to a draft that keeps its key.
async fn amend(
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
    let reason = fields.get("reason").cloned().unwrap_or_default();
    match node.step(&s.principal, &id, Step::Amend { reason }).await {
        Ok(_) => notice_then(&node, &s, &format!("/sheets/{id}/edit"), "amending").await,
        Err(Error::Invalid(why)) => {
            render(&node, &s, &id, false, Mode::Draft, Some(&why), false).await
        }
        Err(e) => error_page(Some(&ctx), e),
    }
}

async fn renew(
    State(node): State<AppState>,
    s: UiSession,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let ctx = Ctx::new(&node, &s);
    let fields = match posted_form(&body, &s.csrf, Some(&ctx)) {
        Ok(fields) => fields,
        Err(refused) => return *refused,
    };
    let into = fields
        .get("into")
        .map(String::as_str)
        .filter(|v| !v.is_empty());
    match node.carry_forward_into(&s.principal, &id, into).await {
        Ok(d) => notice_then(&node, &s, &format!("/sheets/{}/edit", d.row.id), "renewed").await,
        Err(e) => error_page(Some(&ctx), e),
    }
}

#[derive(Deserialize)]
struct DiffQuery {
    from: Option<String>,
    to: Option<String>,
}

async fn differences(
    State(node): State<AppState>,
    s: UiSession,
    Path(id): Path<String>,
    Query(q): Query<DiffQuery>,
) -> Response {
    let ctx = Ctx::new(&node, &s);
    let between = match (&q.from, &q.to) {
        (Some(f), Some(t)) => Some((f.as_str(), t.as_str())),
        _ => None,
    };
    let d = match node.differences(&s.principal, &id, between).await {
        Ok(d) => d,
        Err(e) => return error_page(Some(&ctx), e),
    };
    let detail = match node.get_sheet(&s.principal, &id).await {
        Ok(x) => x,
        Err(e) => return error_page(Some(&ctx), e),
    };
    let Some(form) = node.catalogue.form(&detail.row.form_id) else {
        return error_page(Some(&ctx), Error::UnknownForm(detail.row.form_id.clone()));
    };
    let shown = |field: &str, value: &Option<String>| -> String {
        match (value, form.item(field)) {
            (None, _) => "（未入力）".into(),
            (Some(v), Some(item)) => nsdb_ui::editor::display_value(item, v),
            (Some(v), None) => v.clone(),
        }
    };
    let lines = |changes: &[nsdb_sync::FieldChange]| -> Vec<nsdb_ui::workflow::DiffLine> {
        changes
            .iter()
            .map(|c| nsdb_ui::workflow::DiffLine {
                section: form
                    .section_of(&c.field)
                    .map(|s| s.title.clone())
                    .unwrap_or_default(),
                label: form
                    .item(&c.field)
                    .map(|i| i.label.clone())
                    .unwrap_or_else(|| c.field.clone()),
                before: shown(&c.field, &c.before),
                after: shown(&c.field, &c.after),
            })
            .collect()
    };
    let source = d.source.as_ref().map(|(sid, ch)| (sid.as_str(), lines(ch)));
    let between = d.between.as_ref().map(|(_, _, ch)| lines(ch));
    let versions: Vec<nsdb_ui::workflow::VersionLine> = d
        .versions
        .iter()
        .enumerate()
        .map(|(n, v)| nsdb_ui::workflow::VersionLine {
            at: format_ms(v.at_ms),
            author: v.author.clone(),
            message: v.message.clone(),
            changed: v
                .changed
                .iter()
                .map(|f| form.item(f).map(|i| i.label.as_str()).unwrap_or(f.as_str()))
                .collect::<Vec<_>>()
                .join("、"),
            // What this step changed: from the version it was made on, not the line above
            // (a change made beside another would show that one undone).
            diff_link: (n > 0 && !v.from.is_empty())
                .then(|| format!("/sheets/{id}/diff?from={}&to={}#between", v.from, v.hash)),
        })
        .collect();
    let page = nsdb_ui::workflow::differences(
        &ctx.page(),
        &format!("差異 {}", title(&node, &detail)),
        &id,
        source.as_ref().map(|(s, l)| (*s, l.as_slice())),
        between.as_deref(),
        &versions,
        Offered::for_user(&s.principal, &detail.row).edit,
    );
    Html(page.into_string()).into_response()
}

/// データ出力: the sheet's values as a JSON file. Audited as an export.
async fn export(State(node): State<AppState>, s: UiSession, Path(id): Path<String>) -> Response {
    let ctx = Ctx::new(&node, &s);
    let d = match node.get_sheet(&s.principal, &id).await {
        Ok(d) => d,
        Err(e) => return error_page(Some(&ctx), e),
    };
    if let Err(e) = node
        .audit(&s.principal, "sheet_export", Some(&id), None)
        .await
    {
        return error_page(Some(&ctx), e);
    }
    let body = serde_json::to_string_pretty(&d).unwrap_or_else(|_| "{}".into());
    (
        [
            (
                header::CONTENT_TYPE,
                "application/json; charset=utf-8".to_string(),
            ),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"sheet-{id}.json\""),
            ),
        ],
        body,
    )
        .into_response()
}

fn outcome(o: &Option<nsdb_rules::evaluate::Outcome>) -> String {
    o.as_ref()
        .map(|o| o.label.clone())
        .unwrap_or_else(|| "―".into())
}

/// 一次判定表示: the machine judgment of the stored values in its own window.
async fn judgment(State(node): State<AppState>, s: UiSession, Path(id): Path<String>) -> Response {
    let judged = node.evaluate_sheet(&s.principal, &id).await;
    judgment_page(&node, &s, id, judged)
}

/// 一次判定表示 from the editor: the judgment of the values on the screen, saved or not.
async fn judgment_of_screen(
    State(node): State<AppState>,
    s: UiSession,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let mut fields = match posted_form(&body, &s.csrf, Some(&Ctx::new(&node, &s))) {
        Ok(f) => f,
        Err(refused) => return *refused,
    };
    fields.retain(|k, _| k != "csrf" && k != "action" && !k.starts_with('_'));
    let judged = node.evaluate_values(&s.principal, &id, &fields).await;
    judgment_page(&node, &s, id, judged)
}

fn judgment_page(
    node: &Node,
    s: &UiSession,
    id: String,
    judged: crate::Result<(SheetDetail, nsdb_rules::Evaluation)>,
) -> Response {
    let ctx = Ctx::new(node, s);
    let (d, ev) = match judged {
        Ok(x) => x,
        Err(e) => return error_page(Some(&ctx), e),
    };
    let Some(form) = node.catalogue.form(&d.row.form_id) else {
        return error_page(Some(&ctx), Error::UnknownForm(d.row.form_id.clone()));
    };
    let yes_no = |b: Option<bool>, yes: &str, no: &str| match b {
        Some(true) => yes.to_string(),
        Some(false) => no.to_string(),
        None => "―".to_string(),
    };
    let judged = form.level() == nsdb_rules::FormLevel::MachineJudged;
    // On a machine-judged form, the half it does not judge says so instead of vanishing.
    let not_judged = |title: &str| nsdb_ui::judgment::JudgmentLine {
        title: title.to_string(),
        derived: "この様式では機械判定しません".into(),
        selected: "指定医の選択のとおり".into(),
        criteria: "―".into(),
        high_cost: "―".into(),
        unverified: Vec::new(),
        invalid: Vec::new(),
    };
    let mut lines: Vec<nsdb_ui::judgment::JudgmentLine> = Vec::new();
    if judged && ev.judgment.category.is_none() {
        lines.push(not_judged("診断のカテゴリー"));
    }
    let judged_lines = [&ev.judgment.category, &ev.judgment.severity]
        .into_iter()
        .flatten()
        .map(|j| nsdb_ui::judgment::JudgmentLine {
            title: j.title.clone(),
            derived: outcome(&j.derived),
            selected: outcome(&j.selected),
            criteria: yes_no(j.meets_criteria, "基準を満たす", "基準を満たさない"),
            high_cost: yes_no(j.high_cost, "該当", "非該当"),
            unverified: j.unverified.clone(),
            invalid: j
                .invalid
                .iter()
                .map(|item| {
                    let label = form
                        .item(item)
                        .map_or_else(|| item.clone(), |i| i.label.clone());
                    let why = ev
                        .messages
                        .iter()
                        .find(|m| m.items.first() == Some(item))
                        .map(|m| m.text.clone())
                        .unwrap_or_default();
                    (label, why)
                })
                .collect(),
        });
    lines.extend(judged_lines);
    if judged && ev.judgment.severity.is_none() {
        lines.push(not_judged("重症度"));
    }
    let view = nsdb_ui::judgment::JudgmentView {
        title: title(node, &d),
        sheet_id: id.clone(),
        rules_version: node.catalogue.version().to_string(),
        level: form.level().label().to_string(),
        judged,
        lines,
        messages: ev
            .judgment
            .messages
            .iter()
            .map(|m| m.text.clone())
            .collect(),
        derived: ev
            .derived
            .iter()
            .map(|(k, v)| {
                let label = form
                    .item(k)
                    .map(|i| i.label.clone())
                    .unwrap_or_else(|| k.clone());
                let shown = form
                    .item(k)
                    .map(|i| nsdb_ui::editor::display_value(i, v))
                    .unwrap_or_else(|| v.clone());
                (label, shown)
            })
            .collect(),
    };
    Html(nsdb_ui::judgment::judgment(&ctx.page(), &view).into_string()).into_response()
}

#[derive(Deserialize)]
struct PrintQuery {
    /// The review board's variant with personal information masked (M14).
    masked: Option<u8>,
}

/// The PDF's file name, after the form and the day it was printed:
/// `臨床調査個人票_パーキンソン病_2026-12-01.pdf`, `_下書き` for a sheet not yet registered,
/// `_審査会用` when masked, as RFC 6266's UTF-8 `filename*`, with `sheet-{id}.pdf` for clients
/// that read only the ASCII `filename`.
pub(crate) fn pdf_disposition(
    form: &nsdb_rules::FormDef,
    id: &str,
    date: &str,
    draft: bool,
    masked: bool,
) -> String {
    let draft_mark = if draft { "_下書き" } else { "" };
    let suffix = if masked { "_審査会用" } else { "" };
    let name = format!(
        "{}_{}_{date}{draft_mark}{suffix}.pdf",
        form.kind.label(),
        form.disease
    );
    let ascii = format!(
        "sheet-{id}{}{}.pdf",
        if draft { "-draft" } else { "" },
        if masked { "-masked" } else { "" }
    );
    crate::http::shared::page::file_disposition("inline", &name, &ascii)
}

/// 帳票出力: the sheet as an A4 PDF with its access key; `?masked=1` for the review board.
async fn print(
    State(node): State<AppState>,
    s: UiSession,
    Path(id): Path<String>,
    Query(q): Query<PrintQuery>,
) -> Response {
    let ctx = Ctx::new(&node, &s);
    let d = match node.get_sheet(&s.principal, &id).await {
        Ok(d) => d,
        Err(e) => return error_page(Some(&ctx), e),
    };
    let Some(form) = node.catalogue.form(&d.row.form_id).cloned() else {
        return error_page(Some(&ctx), Error::UnknownForm(d.row.form_id.clone()));
    };
    let masked = q.masked.is_some();
    let detail = if masked { "masked" } else { "full" };
    if let Err(e) = node
        .audit(&s.principal, "sheet_print", Some(&id), Some(detail))
        .await
    {
        return error_page(Some(&ctx), e);
    }
    let printed_at = format!("{} JST", format_ms(node.clock.now_ms()));
    let draft = !matches!(d.row.status.as_str(), status::REGISTERED | status::APPROVED);
    let today = node.clock.today_jst().to_string();
    let disposition = pdf_disposition(&form, &id, &today, draft, masked);
    let rules_version = node.catalogue.printed_version().map(str::to_string);
    let key = printed_key(&d.row);
    let institution = d
        .items
        .get("doctor.institution_name")
        .cloned()
        .unwrap_or_default();
    // An item with two values is never printed as settled: both are printed, marked.
    let mut items = d.items.clone();
    for c in &d.conflicts {
        let shown: Vec<String> = c
            .values
            .iter()
            .map(|v| match form.item(&c.field) {
                _ if v.is_empty() => "空欄".to_string(),
                Some(item) => nsdb_ui::editor::display_value(item, v),
                None => v.clone(),
            })
            .collect();
        items.insert(
            c.field.clone(),
            format!("【未確定：{}】", shown.join(" ／ ")),
        );
    }
    let pdf = tokio::task::spawn_blocking(move || {
        let meta = crate::print::PrintMeta {
            sheet_id: &d.row.id,
            status: status::label(&d.row.status),
            access_key: key.as_deref(),
            form_version: &d.form_version,
            rules_version: rules_version.as_deref(),
            printed_at: &printed_at,
            institution: &institution,
            doctor: d.row.doctor_name.as_deref().unwrap_or(""),
            draft,
        };
        crate::print::sheet_pdf(&form, &items, &meta, masked)
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
        Ok(Err(e)) => error_page(Some(&ctx), Error::Invalid(e.to_string())),
        Err(_) => error_page(
            Some(&ctx),
            Error::Invalid("帳票を作成できませんでした。もう一度お試しください。".into()),
        ),
    }
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/sheets/{id}", get(view_sheet).post(save_sheet))
        .route("/sheets/{id}/edit", get(edit_sheet))
        .route("/sheets/{id}/approve", post(approve))
        .route("/sheets/{id}/release", post(release))
        .route("/sheets/{id}/pullback", post(pull_back))
        .route("/sheets/{id}/renew", post(renew))
        .route("/sheets/{id}/amend", post(amend))
        .route("/sheets/{id}/diff", get(differences))
        .route("/sheets/{id}/export", get(export))
        .route("/sheets/{id}/print", get(print))
        .route(
            "/sheets/{id}/judgment",
            get(judgment).post(judgment_of_screen),
        )
}
