//! 指定医ID発行 (`/admin/doctors`, a municipality's 責任者, behind 再認証) and
//! 自アカウント管理 (`/account/kenmu`, a doctor whose account a municipality issued: the 兼務).
//! Handlers decide nothing about access (the `Node` methods and `sync_service::accounts` do)
//! and never log a name or a password.

use std::collections::BTreeMap;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{Method, StatusCode, Uri, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};

use crate::Error;
use crate::accounts::policy::{Action, Role, Target, UserKind, authorize};
use crate::accounts::registry::{DoctorAct, IssueError, Kenmu, MAX_KENMU, NewDoctor};
use crate::http::AppState;
use crate::http::shared::page::{Ctx, done_then, error_page, jst, posted_form};
use crate::http::shared::reauth;
use crate::http::shared::session::UiSession;
use crate::sync_service::accounts;

const DOCTOR_KINDS: [UserKind; 3] = [
    UserKind::NanbyoDoctor,
    UserKind::KyoryokuDoctor,
    UserKind::ShomanDoctor,
];

fn get_field<'a>(fields: &'a BTreeMap<String, String>, name: &str) -> &'a str {
    fields.get(name).map(String::as_str).unwrap_or("")
}

/// The page with the form as typed and `error` beside its field.
async fn render(
    node: &AppState,
    s: &UiSession,
    typed: &NewDoctor,
    error: Option<(&str, &str)>,
) -> Response {
    let ctx = Ctx::new(node, s);
    let list = match node.issued_doctors(&s.principal).await {
        Ok(l) => l,
        Err(e) => return error_page(Some(&ctx), e),
    };
    let lines: Vec<nsdb_ui::doctors::IssuedLine<'_>> = list
        .iter()
        .map(|d| {
            let r = &d.record;
            nsdb_ui::doctors::IssuedLine {
                account_id: &r.account_id,
                login: &r.login,
                name: &r.name,
                kind: r.doctor_kind().map_or("", |k| k.label()),
                register_number: &r.register_number,
                institution: format!("{}（{}）", r.institution_name, r.institution),
                department: r.department.as_deref().unwrap_or(""),
                expires_on: r.expires_on.as_deref().unwrap_or(""),
                locked: r.locked,
                deleted: r.deleted_at.is_some(),
                pending: d.pending,
                refused: d.refused.as_deref(),
                kenmu: r.kenmu.len(),
            }
        })
        .collect();
    let kinds: Vec<(&str, &str)> = DOCTOR_KINDS
        .iter()
        .map(|k| (k.as_str(), k.label()))
        .collect();
    let view = nsdb_ui::doctors::IssuedView {
        kinds: &kinds,
        form: nsdb_ui::doctors::IssueForm {
            kind: &typed.kind,
            register_number: &typed.register_number,
            name: &typed.name,
            institution: &typed.institution,
            institution_name: &typed.institution_name,
            department: &typed.department,
            expires_on: &typed.expires_on,
            error,
        },
        rows: &lines,
    };
    let status = if error.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    (
        status,
        [(header::CACHE_CONTROL, "no-store")],
        Html(nsdb_ui::doctors::issued(&ctx.page(), &view).into_string()),
    )
        .into_response()
}

/// `GET /admin/doctors`: 指定医ID発行 (the form and the doctors issued here).
async fn page(State(node): State<AppState>, s: UiSession, method: Method, uri: Uri) -> Response {
    let ctx = Ctx::new(&node, &s);
    if let Err(e) = authorize(&s.principal, Action::ManageUsers, Target::None) {
        return error_page(Some(&ctx), e.into());
    }
    if let Err(prompt) = reauth::guard(&node, &s, &method, &uri, &Bytes::new()).await {
        return prompt;
    }
    render(&node, &s, &NewDoctor::default(), None).await
}

/// `POST /admin/doctors`: issues the ID and answers its IDパスワード通知書 (PDF); a field
/// refused answers the page again with everything typed and the message beside the field.
async fn issue(
    State(node): State<AppState>,
    s: UiSession,
    method: Method,
    uri: Uri,
    body: Bytes,
) -> Response {
    let ctx = Ctx::new(&node, &s);
    if let Err(e) = authorize(&s.principal, Action::ManageUsers, Target::None) {
        return error_page(Some(&ctx), e.into());
    }
    let body = match reauth::guard_download(&node, &s, &method, &uri, &body, "/admin/doctors").await
    {
        Ok(b) => b,
        Err(r) => return r,
    };
    let fields = match posted_form(&body, &s.csrf, Some(&ctx)) {
        Ok(f) => f,
        Err(r) => return *r,
    };
    let typed = NewDoctor {
        kind: get_field(&fields, "kind").to_string(),
        register_number: get_field(&fields, "register_number").to_string(),
        name: get_field(&fields, "name").to_string(),
        institution: get_field(&fields, "institution").to_string(),
        institution_name: get_field(&fields, "institution_name").to_string(),
        department: get_field(&fields, "department").to_string(),
        expires_on: get_field(&fields, "expires_on").to_string(),
    };
    match node.issue_doctor(&s.principal, &typed).await {
        Ok(issued) => match crate::http::shared::credentials::notice_of(&node, &issued, 0) {
            Ok(notice) => notice.into_response(),
            Err(e) => error_page(Some(&ctx), e),
        },
        Err(IssueError::Field(f)) => render(&node, &s, &typed, Some((f.field, &f.message))).await,
        Err(IssueError::Other(e)) => error_page(Some(&ctx), e),
    }
}

/// `POST /admin/doctors/{account}/{act}`: ロック, ロック解除, 削除 (after a 確認 page) and
/// パスワード初期化 (answers the new IDパスワード通知書).
async fn act(
    State(node): State<AppState>,
    s: UiSession,
    Path((account, act)): Path<(String, String)>,
    method: Method,
    uri: Uri,
    body: Bytes,
) -> Response {
    let ctx = Ctx::new(&node, &s);
    if let Err(e) = authorize(&s.principal, Action::ManageUsers, Target::None) {
        return error_page(Some(&ctx), e.into());
    }
    let guarded = if act == "password-reset" {
        reauth::guard_download(&node, &s, &method, &uri, &body, "/admin/doctors").await
    } else {
        reauth::guard(&node, &s, &method, &uri, &body).await
    };
    let body = match guarded {
        Ok(b) => b,
        Err(r) => return r,
    };
    let fields = match posted_form(&body, &s.csrf, Some(&ctx)) {
        Ok(f) => f,
        Err(r) => return *r,
    };
    let (doctor_act, text) = match act.as_str() {
        "lock" => (
            DoctorAct::Lock,
            "アカウントをロックしました。各医療機関では次の同期からログインできなくなります。",
        ),
        "unlock" => (
            DoctorAct::Unlock,
            "ロックを解除しました。各医療機関では次の同期からログインできます。",
        ),
        "delete" => (
            DoctorAct::Delete,
            "削除しました。各医療機関では次の同期からログインできなくなります。",
        ),
        "password-reset" => (DoctorAct::ResetPassword, ""),
        _ => {
            return error_page(
                Some(&ctx),
                Error::Invalid(format!("「{act}」という操作はありません。")),
            );
        }
    };
    if doctor_act == DoctorAct::Delete && get_field(&fields, "confirmed") != "yes" {
        let list = match node.issued_doctors(&s.principal).await {
            Ok(l) => l,
            Err(e) => return error_page(Some(&ctx), e),
        };
        let Some(d) = list.iter().find(|d| d.record.account_id == account) else {
            return error_page(
                Some(&ctx),
                Error::Invalid("その指定医のアカウントは見つかりません。".into()),
            );
        };
        let whom = format!("{}/ {}", d.record.login, d.record.name);
        return (
            [(header::CACHE_CONTROL, "no-store")],
            Html(nsdb_ui::doctors::confirm_delete(&ctx.page(), &account, &whom).into_string()),
        )
            .into_response();
    }
    match node.manage_doctor(&s.principal, &account, doctor_act).await {
        Ok(Some(issued)) => match crate::http::shared::credentials::notice_of(&node, &issued, 0) {
            Ok(notice) => notice.into_response(),
            Err(e) => error_page(Some(&ctx), e),
        },
        Ok(None) => done_then(&node, &s, "/admin/doctors", text).await,
        Err(e) => error_page(Some(&ctx), e),
    }
}

/// The 兼務 page with `rows` (as registered, or as typed when refused) and `error`.
async fn render_kenmu(
    node: &AppState,
    s: &UiSession,
    typed: Option<&[Kenmu]>,
    error: Option<&str>,
) -> Response {
    let ctx = Ctx::new(node, s);
    let (held, synced) = match node.own_kenmu(&s.principal).await {
        Ok(k) => k,
        Err(e) => return error_page(Some(&ctx), e),
    };
    let home = match node.user_home(&s.principal).await {
        Ok(h) => h,
        Err(e) => return error_page(Some(&ctx), e),
    };
    let rows = typed.unwrap_or(&held);
    let lines: Vec<nsdb_ui::doctors::KenmuLine<'_>> = rows
        .iter()
        .map(|k| nsdb_ui::doctors::KenmuLine {
            institution: &k.institution,
            name: &k.name,
            department: k.department.as_deref().unwrap_or(""),
            visible: k.visible,
        })
        .collect();
    let synced = match synced {
        Some(at) => format!("{} にハブと同期した内容です。", jst(at, false)),
        None => "まだハブと同期していません。".to_string(),
    };
    let view = nsdb_ui::doctors::KenmuView {
        login: &s.principal.login,
        kind: s.principal.kind.label(),
        register_number: &home.register_number,
        home: (&home.institution, &home.institution_name),
        department: &home.department,
        rows: &lines,
        max: MAX_KENMU,
        synced: &synced,
        error,
    };
    let status = if error.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    (
        status,
        [(header::CACHE_CONTROL, "no-store")],
        Html(nsdb_ui::doctors::kenmu(&ctx.page(), &view).into_string()),
    )
        .into_response()
}

/// `GET /account/kenmu`: 自アカウント管理 (兼務先の登録), for a doctor.
async fn kenmu_page(State(node): State<AppState>, s: UiSession) -> Response {
    if s.principal.role() != Role::Doctor {
        return error_page(
            Some(&Ctx::new(&node, &s)),
            Error::Denied(crate::accounts::policy::Denied),
        );
    }
    render_kenmu(&node, &s, None, None).await
}

/// `POST /account/kenmu`: replaces the 兼務 with the rows typed (a row with no 医療機関番号 is
/// removed); a refusal keeps everything typed.
async fn kenmu_save(State(node): State<AppState>, s: UiSession, body: Bytes) -> Response {
    let ctx = Ctx::new(&node, &s);
    if s.principal.role() != Role::Doctor {
        return error_page(Some(&ctx), Error::Denied(crate::accounts::policy::Denied));
    }
    let fields = match posted_form(&body, &s.csrf, Some(&ctx)) {
        Ok(f) => f,
        Err(r) => return *r,
    };
    let typed: Vec<Kenmu> = (0..MAX_KENMU + 1)
        .filter_map(|i| {
            let code = get_field(&fields, &format!("code{i}")).trim();
            if code.is_empty() {
                return None;
            }
            let dept = get_field(&fields, &format!("dept{i}")).trim();
            Some(Kenmu {
                institution: code.to_string(),
                name: String::new(),
                department: (!dept.is_empty()).then(|| dept.to_string()),
                visible: get_field(&fields, &format!("show{i}")) != "0",
            })
        })
        .collect();
    match accounts::set_kenmu(&node, &s.principal, typed.clone()).await {
        Ok(_) => {
            done_then(
                &node,
                &s,
                "/account/kenmu",
                "兼務先を登録しました。各医療機関では次の同期から反映されます。",
            )
            .await
        }
        Err(Error::Invalid(message)) => render_kenmu(&node, &s, Some(&typed), Some(&message)).await,
        Err(e) => error_page(Some(&ctx), e),
    }
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin/doctors", get(page).post(issue))
        .route("/admin/doctors/{account}/{act}", post(act))
        .route("/account/kenmu", get(kenmu_page).post(kenmu_save))
}
