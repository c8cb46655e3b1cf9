//! Sign-in, sign-out and the user list (ユーザ一覧).
//!
//! The sign-in form carries a CSRF token bound to a cookie (there is no session yet); every other
//! form carries the session's token. Handlers decide nothing about access themselves.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum_extra::extract::cookie::{Cookie, CookieJar};

use crate::Error;
use crate::http::AppState;
use crate::http::shared::page::{Ctx, error_page, node_label, posted_form};
use crate::http::shared::session::{LOGIN_CSRF_COOKIE, SESSION_COOKIE, UiSession, private_cookie};

async fn login_page(State(node): State<AppState>, jar: CookieJar) -> impl IntoResponse {
    let token = hex::encode(rand::random::<[u8; 32]>());
    let page = nsdb_ui::login(&node_label(&node), &token, None, "", None);
    (
        jar.add(private_cookie(LOGIN_CSRF_COOKIE, token)),
        Html(page.into_string()),
    )
}

/// The answer to a sheet's save that arrived without a valid session (it expired, or the user
/// signed out in another tab): the sign-in page, holding the form exactly as posted, so that
/// signing in saves it and returns to the sheet. Nothing is saved before that.
pub(crate) fn sign_in_to_save(
    node: &AppState,
    jar: CookieJar,
    sheet_id: &str,
    body: &Bytes,
) -> Response {
    let token = hex::encode(rand::random::<[u8; 32]>());
    let body = String::from_utf8_lossy(body);
    let page = nsdb_ui::login(
        &node_label(node),
        &token,
        None,
        "",
        Some(nsdb_ui::Resume {
            sheet_id,
            body: &body,
        }),
    );
    (
        StatusCode::UNAUTHORIZED,
        jar.remove(Cookie::build(SESSION_COOKIE).path("/"))
            .add(private_cookie(LOGIN_CSRF_COOKIE, token)),
        Html(page.into_string()),
    )
        .into_response()
}

/// Saves the sheet form a sign-in carried (see [`sign_in_to_save`]) as the user who just
/// signed in; answers where to go next.
async fn resume_save(node: &AppState, token: &str, sheet_id: &str, body: &str) -> String {
    let back = format!("/sheets/{sheet_id}/edit");
    let Ok((principal, _)) = node.session(token).await else {
        return back;
    };
    let Ok(mut fields) = crate::http::shared::page::form_fields(&Bytes::from(body.to_string()))
    else {
        return back;
    };
    let version: Vec<String> = fields
        .remove("_version")
        .map(|v| v.split(',').map(str::to_string).collect())
        .unwrap_or_default();
    fields.retain(|k, _| k != "csrf" && k != "action" && !k.starts_with('_'));
    match node
        .update_sheet_since(&principal, sheet_id, &version, &fields)
        .await
    {
        Ok(_) => format!("{back}?notice=saved_after_login"),
        Err(_) => format!("{back}?notice=not_saved_after_login"),
    }
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
    let resume = match (fields.get("_resume_sheet"), fields.get("_resume_body")) {
        (Some(sheet_id), Some(body)) if !sheet_id.is_empty() => {
            Some(nsdb_ui::Resume { sheet_id, body })
        }
        _ => None,
    };
    match node.login(login, password).await {
        Ok(s) => {
            let to = match resume {
                Some(r) => resume_save(&node, &s.token, r.sheet_id, r.body).await,
                None => "/".to_string(),
            };
            (
                jar.remove(Cookie::build(LOGIN_CSRF_COOKIE).path("/"))
                    .add(private_cookie(SESSION_COOKIE, s.token)),
                Redirect::to(&to),
            )
                .into_response()
        }
        Err(e @ (Error::BadCredentials | Error::Locked | Error::Expired | Error::Busy)) => {
            let status = if matches!(e, Error::Busy) {
                StatusCode::TOO_MANY_REQUESTS
            } else {
                StatusCode::UNAUTHORIZED
            };
            let page = nsdb_ui::login(
                &node_label(&node),
                &expected,
                Some(&e.to_string()),
                login,
                resume,
            );
            (status, Html(page.into_string())).into_response()
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

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/login", get(login_page).post(login_submit))
        .route("/logout", post(logout))
        .route("/admin/users", get(users))
}
