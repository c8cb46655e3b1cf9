//! The web UI's handlers: sign-in, the sheet list, new sheet, editor, view and the user list.
//!
//! Every state-changing request is a POST carrying the session's CSRF token (the sign-in form
//! carries a token bound to a cookie instead). Handlers translate between form fields and domain
//! calls and choose the view; they decide nothing about access themselves.

use std::collections::BTreeMap;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum_extra::extract::cookie::{Cookie, CookieJar};

use super::AppState;
use super::same_secret;
use super::session::{LOGIN_CSRF_COOKIE, SESSION_COOKIE, UiSession, private_cookie};
use crate::policy::{Action, Role, Target, authorize, role_may};
use crate::sheets::{SheetQuery, SheetRow, status};
use crate::workflow::Offered;
use crate::{Error, Node};

/// Display strings a page needs about the signed-in user.
pub(super) struct Ctx {
    node_label: String,
    user_name: String,
    user_kind: &'static str,
    role: Role,
    csrf: String,
}

impl Ctx {
    pub(super) fn new(node: &Node, s: &UiSession) -> Ctx {
        Ctx {
            node_label: node_label(node),
            user_name: s.principal.name.clone(),
            user_kind: s.principal.kind.label(),
            role: s.principal.role(),
            csrf: s.csrf.clone(),
        }
    }

    pub(super) fn page(&self) -> nsdb_ui::PageContext<'_> {
        nsdb_ui::PageContext {
            node_label: &self.node_label,
            user_name: &self.user_name,
            user_kind: self.user_kind,
            can_read_sheets: role_may(self.role, Action::ListSheets),
            can_create: role_may(self.role, Action::CreateSheet),
            is_admin: role_may(self.role, Action::ManageUsers),
            csrf: &self.csrf,
        }
    }
}

pub(super) fn node_label(node: &Node) -> String {
    format!("{} {}", node.role().label(), node.config.institution.name)
}

/// A domain error as a page.
pub(super) fn error_page(ctx: Option<&Ctx>, e: Error) -> Response {
    let (status, title) = match &e {
        Error::Denied(_) => (StatusCode::FORBIDDEN, "権限がありません"),
        Error::SheetNotFound(_) | Error::UnknownForm(_) => {
            (StatusCode::NOT_FOUND, "見つかりません")
        }
        Error::UnknownItems(_) | Error::Invalid(_) => {
            (StatusCode::UNPROCESSABLE_ENTITY, "入力を確認してください")
        }
        Error::BadCredentials | Error::Locked | Error::Expired | Error::Unauthenticated => {
            return Redirect::to("/login").into_response();
        }
        Error::Document { .. } | Error::Store(_) => {
            tracing::error!(target: "nsdb::http", error = %e, "internal error");
            let page = ctx.map(Ctx::page);
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                Html(
                    nsdb_ui::error(
                        page.as_ref(),
                        "エラー",
                        "サーバで問題が発生しました。時間をおいて再度お試しください。",
                    )
                    .into_string(),
                ),
            )
                .into_response();
        }
    };
    let page = ctx.map(Ctx::page);
    (
        status,
        Html(nsdb_ui::error(page.as_ref(), title, &e.to_string()).into_string()),
    )
        .into_response()
}

/// Parses an `application/x-www-form-urlencoded` body; repeated names (check boxes) are joined
/// with commas, empty values among them dropped.
pub(super) fn form_fields(body: &Bytes) -> Result<BTreeMap<String, String>, Error> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(body)
        .map_err(|e| Error::Invalid(format!("送信内容を読み取れません: {e}")))?;
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    for (k, v) in pairs {
        let entry = out.entry(k).or_default();
        if !v.is_empty() {
            if !entry.is_empty() {
                entry.push(',');
            }
            entry.push_str(&v);
        }
    }
    Ok(out)
}

pub(super) fn csrf_ok(fields: &BTreeMap<String, String>, expected: &str) -> bool {
    fields.get("csrf").is_some_and(|t| same_secret(t, expected))
}

/// A posted form with its CSRF token checked: the fields, or the page that says why not
/// (`ctx` frames the error page; `None` before sign-in).
pub(super) fn posted_form(
    body: &Bytes,
    expected_csrf: &str,
    ctx: Option<&Ctx>,
) -> Result<BTreeMap<String, String>, Box<Response>> {
    let fields = form_fields(body).map_err(|e| Box::new(error_page(ctx, e)))?;
    if !csrf_ok(&fields, expected_csrf) {
        return Err(Box::new(csrf_refused()));
    }
    Ok(fields)
}

/// The answer to a form posted without the right CSRF token (an old tab, or another site).
pub(super) fn csrf_refused() -> Response {
    (
        StatusCode::FORBIDDEN,
        Html(
            nsdb_ui::error(
                None,
                "送信できませんでした",
                "画面の有効期限が切れました。もう一度開き直してから操作してください。",
            )
            .into_string(),
        ),
    )
        .into_response()
}

async fn home(s: UiSession) -> Redirect {
    match s.principal.role() {
        Role::Admin => Redirect::to("/admin/users"),
        _ => Redirect::to("/sheets"),
    }
}

async fn login_page(State(node): State<AppState>, jar: CookieJar) -> impl IntoResponse {
    let token = hex::encode(rand::random::<[u8; 32]>());
    let page = nsdb_ui::login(&node_label(&node), &token, None, "");
    (
        jar.add(private_cookie(LOGIN_CSRF_COOKIE, token)),
        Html(page.into_string()),
    )
}

async fn login_submit(State(node): State<AppState>, jar: CookieJar, body: Bytes) -> Response {
    let expected = jar
        .get(LOGIN_CSRF_COOKIE)
        .map(|c| c.value().to_string())
        .unwrap_or_default();
    if expected.is_empty() {
        return Redirect::to("/login").into_response();
    }
    let fields = match posted_form(&body, &expected, None) {
        Ok(f) => f,
        Err(refused) => return *refused,
    };
    let login = fields.get("login").map(String::as_str).unwrap_or("").trim();
    let password = fields.get("password").map(String::as_str).unwrap_or("");
    match node.login(login, password).await {
        Ok(s) => (
            jar.remove(Cookie::build(LOGIN_CSRF_COOKIE).path("/"))
                .add(private_cookie(SESSION_COOKIE, s.token)),
            Redirect::to("/"),
        )
            .into_response(),
        Err(e @ (Error::BadCredentials | Error::Locked | Error::Expired)) => {
            let page = nsdb_ui::login(&node_label(&node), &expected, Some(&e.to_string()), login);
            (StatusCode::UNAUTHORIZED, Html(page.into_string())).into_response()
        }
        Err(e) => error_page(None, e),
    }
}

async fn logout(
    State(node): State<AppState>,
    s: UiSession,
    jar: CookieJar,
    body: Bytes,
) -> Response {
    if let Err(refused) = posted_form(&body, &s.csrf, None) {
        return *refused;
    }
    if let Err(e) = node.logout(&s.token).await {
        return error_page(None, e);
    }
    (
        jar.remove(Cookie::build(SESSION_COOKIE).path("/")),
        Redirect::to("/login"),
    )
        .into_response()
}

pub(super) fn sex_label(code: Option<&str>) -> String {
    match code {
        Some("1") => "男性".into(),
        Some("2") => "女性".into(),
        Some(other) => other.into(),
        None => String::new(),
    }
}

pub(super) fn application_label(code: Option<&str>) -> String {
    match code {
        Some("1") => "新規".into(),
        Some("2") => "更新".into(),
        Some(other) => other.into(),
        None => String::new(),
    }
}

pub(super) fn registration_label(r: &str) -> &str {
    match r {
        "screen" => "画面",
        "bulk" => "一括",
        "paper" => "紙",
        other => other,
    }
}

pub(super) fn slash_date(d: Option<&str>) -> String {
    d.map(|d| d.replace('-', "/")).unwrap_or_default()
}

fn list_row(r: SheetRow, offered: Offered) -> nsdb_ui::ListRow {
    nsdb_ui::ListRow {
        application_type: application_label(r.application_type.as_deref()),
        insurer_no: r.insurer_no.unwrap_or_default(),
        insured_no: r.insured_no.unwrap_or_default(),
        access_key: r.access_key.unwrap_or_default(),
        name_kana: r.name_kana.unwrap_or_default(),
        birth_date: slash_date(r.birth_date.as_deref()),
        sex: sex_label(r.sex.as_deref()),
        kokuji: if r.eda == 0 {
            r.kokuji.to_string()
        } else {
            format!("{}-{}", r.kokuji, r.eda)
        },
        disease: r.disease,
        doctor_name: r.doctor_name.unwrap_or_default(),
        written_date: slash_date(r.written_date.as_deref()),
        linked_date: slash_date(r.linked_date.as_deref()),
        status: status::label(&r.status).to_string(),
        registration: registration_label(&r.registration).to_string(),
        can_edit: offered.edit,
        can_renew: offered.renew,
        can_release: offered.release,
        can_approve: offered.approve,
        id: r.id,
    }
}

async fn sheet_list(
    State(node): State<AppState>,
    s: UiSession,
    Query(q): Query<SheetQuery>,
) -> Response {
    let ctx = Ctx::new(&node, &s);
    let page = match node.list_sheets(&s.principal, &q).await {
        Ok(page) => page,
        Err(e) => return error_page(Some(&ctx), e),
    };
    let doctors = if role_may(s.principal.role(), Action::RequestReview) {
        node.doctors(&s.principal).await.unwrap_or_default()
    } else {
        Vec::new()
    };
    let mut diseases: Vec<(String, String)> = node
        .catalogue
        .forms()
        .iter()
        .map(|f| (f.kokuji.to_string(), format!("{} {}", f.kokuji, f.disease)))
        .collect();
    diseases.dedup();
    let rows: Vec<nsdb_ui::ListRow> = page
        .rows
        .into_iter()
        .map(|r| {
            let offered = Offered::for_user(&s.principal, &r);
            list_row(r, offered)
        })
        .collect();
    let given = |v: &Option<String>| v.clone().unwrap_or_default();
    let view = nsdb_ui::ListView {
        query: given(&q.q),
        total: page.total,
        page: page.page,
        page_size: page.page_size,
        bulk_approve: role_may(s.principal.role(), Action::Approve),
        count_limit: crate::sheets::COUNT_LIMIT,
        rows,
        filters: nsdb_ui::list::Filters {
            status: given(&q.status),
            kokuji: given(&q.kokuji),
            doctor: given(&q.doctor),
            from: given(&q.from),
            to: given(&q.to),
        },
        choices: nsdb_ui::list::FilterChoices {
            statuses: [
                status::DRAFT,
                status::REQUESTED,
                status::RETURNED,
                status::REGISTERED,
                status::APPROVED,
            ]
            .iter()
            .map(|s| (s.to_string(), status::label(s).to_string()))
            .collect(),
            diseases,
            doctors: doctors
                .into_iter()
                .map(|(id, name)| (id.to_string(), name))
                .collect(),
        },
    };
    Html(nsdb_ui::list::sheet_list(&ctx.page(), &view).into_string()).into_response()
}

async fn new_sheet_page(State(node): State<AppState>, s: UiSession) -> Response {
    let ctx = Ctx::new(&node, &s);
    if let Err(e) = authorize(&s.principal, Action::CreateSheet, Target::None) {
        return error_page(Some(&ctx), e.into());
    }
    let forms = node.catalogue.forms();
    let choices: Vec<nsdb_ui::FormChoice<'_>> = forms
        .iter()
        .map(|f| nsdb_ui::FormChoice {
            id: &f.id,
            kind: f.kind.label(),
            kokuji: f.kokuji,
            eda: f.eda,
            disease: &f.disease,
            version: &f.version,
        })
        .collect();
    Html(nsdb_ui::new_sheet(&ctx.page(), &choices).into_string()).into_response()
}

async fn create_sheet(State(node): State<AppState>, s: UiSession, body: Bytes) -> Response {
    let ctx = Ctx::new(&node, &s);
    let fields = match posted_form(&body, &s.csrf, Some(&ctx)) {
        Ok(f) => f,
        Err(refused) => return *refused,
    };
    let form_id = fields.get("form_id").cloned().unwrap_or_default();
    match node
        .create_sheet(&s.principal, &form_id, &BTreeMap::new())
        .await
    {
        Ok(d) => Redirect::to(&format!("/sheets/{}/edit", d.row.id)).into_response(),
        Err(e) => error_page(Some(&ctx), e),
    }
}

async fn users(State(node): State<AppState>, s: UiSession) -> Response {
    let ctx = Ctx::new(&node, &s);
    match node.list_users(&s.principal).await {
        Ok(rows) => {
            let lines: Vec<nsdb_ui::UserLine<'_>> = rows
                .iter()
                .map(|u| nsdb_ui::UserLine {
                    login: &u.login,
                    name: &u.name,
                    kind: u.kind.label(),
                    department: u.department.as_deref().unwrap_or(""),
                    locked: u.locked,
                    expires_on: u.expires_on.as_deref().unwrap_or("なし"),
                })
                .collect();
            Html(nsdb_ui::users(&ctx.page(), &lines).into_string()).into_response()
        }
        Err(e) => error_page(Some(&ctx), e),
    }
}

async fn stylesheet() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        nsdb_ui::STYLESHEET,
    )
}

async fn script() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        nsdb_ui::SCRIPT,
    )
}

async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        Html(
            nsdb_ui::error(
                None,
                "見つかりません",
                "お探しのページは見つかりませんでした。",
            )
            .into_string(),
        ),
    )
        .into_response()
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(home))
        .route("/login", get(login_page).post(login_submit))
        .route("/logout", post(logout))
        .route("/sheets", get(sheet_list).post(create_sheet))
        .route("/sheets/new", get(new_sheet_page))
        .route("/admin/users", get(users))
        .route("/static/app.css", get(stylesheet))
        .route("/static/app.js", get(script))
        .merge(super::sheet_ui::routes())
        .fallback(not_found)
}
