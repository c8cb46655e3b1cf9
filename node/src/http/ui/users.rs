//! 医療機関ユーザ検索 (`/admin/users`) and its actions, for the 責任者: the search with its
//! filters and paging, パスワード初期化 (the one-time password shown once), アカウントロック and
//! ロック解除, 2段階認証の初期化, 責任者変更, 削除, 有効期限変更 and the IDパスワード通知書 (an A4
//! PDF). All behind 再認証; every action is a POST with the CSRF token, and tells its result
//! through the session's one-time notice, never the address. Handlers decide nothing about
//! access (the `Node` methods do) and never log a name or a password.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{Method, Uri, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};

use crate::Error;
use crate::accounts::Flash;
use crate::accounts::admin::{USERS_PER_PAGE, UserSearch};
use crate::accounts::policy::{Action, Role, Target, UserKind, authorize};
use crate::http::AppState;
use crate::http::shared::page::{Ctx, error_page, file_disposition, jst, posted_form};
use crate::http::shared::reauth;
use crate::http::shared::session::UiSession;

/// The kinds an institution's users have, as the filter offers them.
const KINDS: [UserKind; 5] = [
    UserKind::NanbyoDoctor,
    UserKind::KyoryokuDoctor,
    UserKind::ShomanDoctor,
    UserKind::Clerk,
    UserKind::Admin,
];

#[derive(serde::Deserialize, Default)]
struct SearchQuery {
    #[serde(default)]
    kind: String,
    #[serde(default)]
    institution: String,
    #[serde(default)]
    family: String,
    #[serde(default)]
    given: String,
    page: Option<usize>,
}

/// `GET /admin/users`: 医療機関ユーザ検索.
async fn search(
    State(node): State<AppState>,
    s: UiSession,
    method: Method,
    uri: Uri,
    Query(q): Query<SearchQuery>,
) -> Response {
    let ctx = Ctx::new(&node, &s);
    if let Err(e) = authorize(&s.principal, Action::ManageUsers, Target::None) {
        return error_page(Some(&ctx), e.into());
    }
    if let Err(prompt) = reauth::guard(&node, &s, &method, &uri, &Bytes::new()).await {
        return prompt;
    }
    let kind = match q.kind.as_str() {
        "" => None,
        k => match UserKind::parse(k) {
            Some(k) => Some(k),
            None => {
                return error_page(
                    Some(&ctx),
                    Error::Invalid(format!("ユーザ種別「{k}」はありません。")),
                );
            }
        },
    };
    let search = UserSearch {
        kind,
        institution: Some(q.institution.clone()).filter(|i| !i.is_empty()),
        family_name: q.family.clone(),
        given_name: q.given.clone(),
        page: q.page.unwrap_or(1),
    };
    let found = match node.search_users(&s.principal, &search).await {
        Ok(f) => f,
        Err(e) => return error_page(Some(&ctx), e),
    };
    let institution = match node.institution_of(&s.principal).await {
        Ok(i) => i,
        Err(e) => return error_page(Some(&ctx), e),
    };
    let lines: Vec<nsdb_ui::users::UserLine<'_>> = found
        .rows
        .iter()
        .map(|u| nsdb_ui::users::UserLine {
            id: u.id,
            login: &u.login,
            name: &u.name,
            kind: u.kind.label(),
            institution: &u.institution_name,
            department: u.department.as_deref().unwrap_or(""),
            responsible: u.responsible,
            locked: u.locked,
            expired: u.expired,
            expires_on: u.expires_on.as_deref().unwrap_or(""),
            totp: u.totp_enrolled,
            may_become_responsible: u.kind.role() == Role::Doctor && !u.responsible,
            uses_check_tool: matches!(u.kind.role(), Role::Doctor | Role::Clerk),
            me: u.id == s.principal.user_id,
        })
        .collect();
    let kinds: Vec<(&str, &str)> = KINDS.iter().map(|k| (k.as_str(), k.label())).collect();
    let query = serde_urlencoded::to_string([
        ("kind", q.kind.as_str()),
        ("institution", q.institution.as_str()),
        ("family", q.family.as_str()),
        ("given", q.given.as_str()),
    ])
    .unwrap_or_default();
    let view = nsdb_ui::users::UserSearchView {
        kinds: &kinds,
        kind: &q.kind,
        institution: (&institution.code, &institution.name),
        family_name: &q.family,
        given_name: &q.given,
        rows: &lines,
        total: found.total,
        page: found.page,
        pages: found.pages,
        per_page: USERS_PER_PAGE,
        query: &query,
    };
    Html(nsdb_ui::users::user_search(&ctx.page(), &view).into_string()).into_response()
}

/// The common start of every action: authorised, behind 再認証, the CSRF token checked; the
/// posted fields.
async fn begin(
    node: &AppState,
    s: &UiSession,
    method: &Method,
    uri: &Uri,
    body: &Bytes,
) -> Result<std::collections::BTreeMap<String, String>, Response> {
    let ctx = Ctx::new(node, s);
    if let Err(e) = authorize(&s.principal, Action::ManageUsers, Target::None) {
        return Err(error_page(Some(&ctx), e.into()));
    }
    let body = reauth::guard(node, s, method, uri, body).await?;
    posted_form(&body, &s.csrf, Some(&ctx)).map_err(|refused| *refused)
}

/// After an action: back to the search with the result as a one-time notice.
async fn done(node: &AppState, s: &UiSession, result: crate::Result<()>, text: &str) -> Response {
    match result {
        Ok(()) => {
            if let Err(e) = node.set_flash(&s.token, &Flash::text(text)).await {
                return error_page(Some(&Ctx::new(node, s)), e);
            }
            Redirect::to("/admin/users").into_response()
        }
        Err(e) => error_page(Some(&Ctx::new(node, s)), e),
    }
}

/// `POST /admin/users/{id}/password-reset`: the new one-time password, on this page only.
async fn reset_password(
    State(node): State<AppState>,
    s: UiSession,
    Path(id): Path<u64>,
    method: Method,
    uri: Uri,
    body: Bytes,
) -> Response {
    if let Err(r) = begin(&node, &s, &method, &uri, &body).await {
        return r;
    }
    let ctx = Ctx::new(&node, &s);
    match node.reset_password(&s.principal, id).await {
        Ok(p) => {
            let page =
                nsdb_ui::users::initial_password(&ctx.page(), &p.login, &p.name, &p.password);
            (
                [(header::CACHE_CONTROL, "no-store")],
                Html(page.into_string()),
            )
                .into_response()
        }
        Err(e) => error_page(Some(&ctx), e),
    }
}

/// `POST /admin/users/{id}/notice`: the IDパスワード通知書 (A4 PDF) with a new one-time
/// password. Behind 再認証 as a download: after the password the user is back on the search.
async fn notice(
    State(node): State<AppState>,
    s: UiSession,
    Path(id): Path<u64>,
    method: Method,
    uri: Uri,
    body: Bytes,
) -> Response {
    let ctx = Ctx::new(&node, &s);
    if let Err(e) = authorize(&s.principal, Action::ManageUsers, Target::None) {
        return error_page(Some(&ctx), e.into());
    }
    let body = match reauth::guard_download(&node, &s, &method, &uri, &body, "/admin/users").await {
        Ok(body) => body,
        Err(r) => return r,
    };
    if let Err(refused) = posted_form(&body, &s.csrf, Some(&ctx)) {
        return *refused;
    }
    let issued = match node.issue_credentials_notice(&s.principal, id).await {
        Ok(p) => p,
        Err(e) => return error_page(Some(&ctx), e),
    };
    let kind = match node.users_of(&s.principal).await {
        Ok(rows) => rows
            .iter()
            .find(|u| u.id == id)
            .map(|u| u.kind.label())
            .unwrap_or(""),
        Err(e) => return error_page(Some(&ctx), e),
    };
    let at = jst(node.clock.now_ms(), false);
    let pdf = crate::print::credentials_notice_pdf(&crate::print::CredentialsNotice {
        institution_name: &issued.institution.name,
        institution_code: &issued.institution.code,
        login: &issued.login,
        name: &issued.name,
        kind,
        password: &issued.password,
        issued_at: &at,
    });
    match pdf {
        Ok(bytes) => (
            [
                (header::CONTENT_TYPE, "application/pdf".to_string()),
                (header::CACHE_CONTROL, "no-store".to_string()),
                (
                    header::CONTENT_DISPOSITION,
                    file_disposition(
                        "attachment",
                        &format!("IDパスワード通知書_{}.pdf", issued.login),
                        &format!("id-notice-{id}.pdf"),
                    ),
                ),
            ],
            bytes,
        )
            .into_response(),
        Err(e) => error_page(Some(&ctx), Error::Invalid(e.to_string())),
    }
}

/// `POST /admin/users/{id}/key`: 暗号鍵再発行, the new check-tool key as a file to carry to
/// the check tool's machine (the node keeps only its public half). Behind 再認証 as a download.
async fn reissue_key(
    State(node): State<AppState>,
    s: UiSession,
    Path(id): Path<u64>,
    method: Method,
    uri: Uri,
    body: Bytes,
) -> Response {
    let ctx = Ctx::new(&node, &s);
    if let Err(e) = authorize(&s.principal, Action::ManageUsers, Target::None) {
        return error_page(Some(&ctx), e.into());
    }
    let body = match reauth::guard_download(&node, &s, &method, &uri, &body, "/admin/users").await {
        Ok(body) => body,
        Err(r) => return r,
    };
    if let Err(refused) = posted_form(&body, &s.csrf, Some(&ctx)) {
        return *refused;
    }
    match node.reissue_user_key(&s.principal, id).await {
        Ok(k) => (
            [
                (
                    header::CONTENT_TYPE,
                    "text/plain; charset=utf-8".to_string(),
                ),
                (header::CACHE_CONTROL, "no-store".to_string()),
                (
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"check-tool-key-{id}.key\""),
                ),
            ],
            format!("{}\n", k.key_file),
        )
            .into_response(),
        Err(e) => error_page(Some(&ctx), e),
    }
}

async fn lock(
    State(node): State<AppState>,
    s: UiSession,
    Path(id): Path<u64>,
    method: Method,
    uri: Uri,
    body: Bytes,
) -> Response {
    if let Err(r) = begin(&node, &s, &method, &uri, &body).await {
        return r;
    }
    let r = node.set_user_locked(&s.principal, id, true).await;
    done(
        &node,
        &s,
        r,
        "アカウントをロックしました。その利用者はロック解除までログインできません。",
    )
    .await
}

async fn unlock(
    State(node): State<AppState>,
    s: UiSession,
    Path(id): Path<u64>,
    method: Method,
    uri: Uri,
    body: Bytes,
) -> Response {
    if let Err(r) = begin(&node, &s, &method, &uri, &body).await {
        return r;
    }
    let r = node.set_user_locked(&s.principal, id, false).await;
    done(&node, &s, r, "ロックを解除しました。").await
}

async fn delete(
    State(node): State<AppState>,
    s: UiSession,
    Path(id): Path<u64>,
    method: Method,
    uri: Uri,
    body: Bytes,
) -> Response {
    if let Err(r) = begin(&node, &s, &method, &uri, &body).await {
        return r;
    }
    let r = node.delete_user(&s.principal, id).await;
    done(
        &node,
        &s,
        r,
        "アカウントを削除しました。ログインできなくなりましたが、操作記録と臨床調査個人票には残ります。",
    )
    .await
}

async fn responsible(
    State(node): State<AppState>,
    s: UiSession,
    Path(id): Path<u64>,
    method: Method,
    uri: Uri,
    body: Bytes,
) -> Response {
    if let Err(r) = begin(&node, &s, &method, &uri, &body).await {
        return r;
    }
    match node.pass_responsible(&s.principal, id).await {
        // A doctor who passed the role on no longer manages users: their own top page.
        Ok(()) if s.principal.kind.role() == Role::Doctor => {
            let flash = Flash::text("責任者を引き継ぎました。ユーザ管理は新しい責任者が行います。");
            if let Err(e) = node.set_flash(&s.token, &flash).await {
                return error_page(Some(&Ctx::new(&node, &s)), e);
            }
            Redirect::to("/sheets").into_response()
        }
        r => done(&node, &s, r, "責任者を変更しました。").await,
    }
}

async fn expiry(
    State(node): State<AppState>,
    s: UiSession,
    Path(id): Path<u64>,
    method: Method,
    uri: Uri,
    body: Bytes,
) -> Response {
    let fields = match begin(&node, &s, &method, &uri, &body).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    let typed = fields.get("expires_on").map(|v| v.trim()).unwrap_or("");
    let date = if typed.is_empty() {
        None
    } else {
        match nsdb_rules::value::Date::typed(typed) {
            Some(d) => Some(d),
            None => {
                return error_page(
                    Some(&Ctx::new(&node, &s)),
                    Error::Invalid(format!(
                        "有効期限「{typed}」を日付として読めません。{}で入力してください（空欄は期限なし）。",
                        nsdb_ui::DATE_HINT
                    )),
                );
            }
        }
    };
    let r = node.set_user_expiry(&s.principal, id, date).await;
    let text = match date {
        Some(d) => format!("有効期限を{d}にしました。"),
        None => "有効期限をなしにしました。".to_string(),
    };
    done(&node, &s, r, &text).await
}

/// 2段階認証の初期化 (`POST /admin/users/totp-reset`, field `login`): audited `totp_reset`.
async fn reset_totp(
    State(node): State<AppState>,
    s: UiSession,
    method: Method,
    uri: Uri,
    body: Bytes,
) -> Response {
    let fields = match begin(&node, &s, &method, &uri, &body).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    let login = fields.get("login").map(String::as_str).unwrap_or("");
    let r = node.reset_totp(Some(&s.principal), login).await;
    done(
        &node,
        &s,
        r,
        "2段階認証を初期化しました。その利用者は次のログインで設定し直します。",
    )
    .await
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin/users", get(search))
        .route("/admin/users/totp-reset", post(reset_totp))
        .route("/admin/users/{id}/password-reset", post(reset_password))
        .route("/admin/users/{id}/notice", post(notice))
        .route("/admin/users/{id}/key", post(reissue_key))
        .route("/admin/users/{id}/lock", post(lock))
        .route("/admin/users/{id}/unlock", post(unlock))
        .route("/admin/users/{id}/delete", post(delete))
        .route("/admin/users/{id}/responsible", post(responsible))
        .route("/admin/users/{id}/expiry", post(expiry))
}
