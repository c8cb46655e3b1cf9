//! Sign-in (password, then the second factor's code for a user who enrolled it), sign-out,
//! 再認証 and the user's own screens (パスワード変更, 2段階認証の設定). The 責任者's user
//! search and its actions are in `users`.
//!
//! The sign-in forms carry a CSRF token bound to a cookie (there is no session yet); every other
//! form carries the session's token. The half-signed-in state between password and code is a
//! server-side challenge named by its own cookie, not a session. Handlers decide nothing about
//! access themselves.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{Method, StatusCode, Uri};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum_extra::extract::cookie::{Cookie, CookieJar};

use crate::Error;
use crate::accounts::SignIn;
use crate::http::AppState;
use crate::http::shared::page::{Ctx, error_page, node_label, posted_form};
use crate::http::shared::reauth;
use crate::http::shared::session::{
    LOGIN_CSRF_COOKIE, SESSION_COOKIE, SIGN_IN_CHALLENGE_COOKIE, UiSession, private_cookie,
};

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
    // Typed by someone else (a shared terminal): not saved under this user's name. The
    // editor's copy in the browser tab offers it back to be looked at and saved deliberately.
    let typed_by = fields.remove("_author").and_then(|a| a.parse::<u64>().ok());
    fields.retain(|k, _| k != "csrf" && k != "action" && !k.starts_with('_'));
    let someone_else = typed_by.is_some_and(|u| u != principal.user_id);
    let mut saved = false;
    let text = if someone_else {
        "ログインが切れる前の入力は別の利用者のものだったため、保存していません（このタブに残っている入力は一覧にして示します）。".to_string()
    } else {
        match node
            .update_sheet_since(&principal, sheet_id, &version, &fields)
            .await
        {
            Ok(_) => {
                saved = true;
                "ログインし直したので、入力した内容を一時保存しました。".to_string()
            }
            // Refused for a reason the user can act on (registered meanwhile, a value too
            // long): that reason; the tab's copy lists what was not saved.
            Err(crate::Error::Invalid(why)) => format!(
                "ログインし直しましたが、入力した内容は保存していません: {why}"
            ),
            Err(_) => {
                "ログインし直しましたが、入力した内容を保存できませんでした。この臨床調査個人票・医療意見書を編集できる利用者か確認してください。".to_string()
            }
        }
    };
    // Shown once on the editor, never from the address (docs/security.md).
    if let Err(e) = node
        .set_flash(token, &crate::accounts::Flash::text(&text))
        .await
    {
        tracing::warn!(target: "nsdb::http", error = %e, "the notice after sign-in was not kept");
    }
    // `#held`: nothing was saved, so the page's script keeps the unsaved typing it holds in
    // the tab (the editor puts it back, a view lists it) rather than taking this redirect for
    // the save's answer.
    // `#held-other`: typed by someone else, listed for them to see, never put into the new
    // user's fields (one 一時保存 would save it under the new user's name).
    match (saved, someone_else) {
        (true, _) => back,
        (false, true) => format!("{back}#held-other"),
        (false, false) => format!("{back}#held"),
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
    match node.begin_sign_in(login, password).await {
        Ok(SignIn::Session(s)) => signed_in(&node, jar, s, resume).await,
        Ok(SignIn::Code { challenge }) => {
            let page = nsdb_ui::account::login_code(&node_label(&node), &expected, None, resume);
            (
                jar.add(private_cookie(SIGN_IN_CHALLENGE_COOKIE, challenge)),
                Html(page.into_string()),
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

/// The end of a sign-in: the session cookie, and the held sheet form saved (issue #11) or the
/// top page (which sends a user with a pending step to it).
async fn signed_in(
    node: &AppState,
    jar: CookieJar,
    s: crate::accounts::LoginSession,
    resume: Option<nsdb_ui::Resume<'_>>,
) -> Response {
    let to = match resume {
        Some(r) => resume_save(node, &s.token, r.sheet_id, r.body).await,
        None => "/".to_string(),
    };
    (
        jar.remove(Cookie::build(LOGIN_CSRF_COOKIE).path("/"))
            .remove(Cookie::build(SIGN_IN_CHALLENGE_COOKIE).path("/"))
            .add(private_cookie(SESSION_COOKIE, s.token)),
        Redirect::to(&to),
    )
        .into_response()
}

/// The code step of a sign-in (`POST /login/code`): a wrong or used code shows the page
/// again with the one answer for refusals and counts toward the lock; a challenge older than
/// five minutes starts the sign-in again.
async fn login_code(State(node): State<AppState>, jar: CookieJar, body: Bytes) -> Response {
    let expected = jar
        .get(LOGIN_CSRF_COOKIE)
        .map(|c| c.value().to_string())
        .unwrap_or_default();
    let challenge = jar
        .get(SIGN_IN_CHALLENGE_COOKIE)
        .map(|c| c.value().to_string())
        .unwrap_or_default();
    if expected.is_empty() || challenge.is_empty() {
        return Redirect::to("/login").into_response();
    }
    let fields = match posted_form(&body, &expected, None) {
        Ok(f) => f,
        Err(refused) => return *refused,
    };
    let code = fields.get("code").map(String::as_str).unwrap_or("");
    let resume = match (fields.get("_resume_sheet"), fields.get("_resume_body")) {
        (Some(sheet_id), Some(body)) if !sheet_id.is_empty() => {
            Some(nsdb_ui::Resume { sheet_id, body })
        }
        _ => None,
    };
    match node.finish_sign_in(&challenge, code).await {
        Ok(s) => signed_in(&node, jar, s, resume).await,
        Err(Error::Unauthenticated) => {
            let page = nsdb_ui::login(
                &node_label(&node),
                &expected,
                Some("確認コードの入力が5分以内になかったため、ログインをやり直してください。"),
                "",
                resume,
            );
            (
                StatusCode::UNAUTHORIZED,
                jar.remove(Cookie::build(SIGN_IN_CHALLENGE_COOKIE).path("/")),
                Html(page.into_string()),
            )
                .into_response()
        }
        Err(e @ (Error::BadCredentials | Error::Busy)) => {
            let page = nsdb_ui::account::login_code(
                &node_label(&node),
                &expected,
                Some(&e.to_string()),
                resume,
            );
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

/// `POST /reauth`: the 再認証 page of a page (GET) request; returns to it.
async fn reauth_submit(
    State(node): State<AppState>,
    s: UiSession,
    method: Method,
    uri: Uri,
    body: Bytes,
) -> Response {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    match reauth::check(&node, &s, &pairs, &uri, &method).await {
        Ok(held) => {
            let field = |name: &str| {
                held.iter()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.as_str())
            };
            let to = reauth::safe_return(field(reauth::RETURN_TO).unwrap_or("/"));
            // A download: back to the page it was asked from, which starts it.
            if let Some(back) = field(reauth::BACK) {
                let flash = crate::accounts::Flash {
                    text: "再認証しました。ダウンロードを開始します。始まらないときは".into(),
                    link: Some((to.to_string(), "こちら".into())),
                    download: true,
                };
                if let Err(e) = node.set_flash(&s.token, &flash).await {
                    return error_page(None, e);
                }
                return Redirect::to(reauth::safe_return(back)).into_response();
            }
            Redirect::to(to).into_response()
        }
        Err(page) => page,
    }
}

/// 2段階認証の設定 (`GET /account/totp`): a new secret shown once, or that it is set.
async fn totp_page(State(node): State<AppState>, s: UiSession) -> Response {
    totp_screen(&node, &s, None).await
}

async fn totp_screen(node: &AppState, s: &UiSession, error: Option<&str>) -> Response {
    let ctx = Ctx::new(node, s);
    let status = match node.totp_status(&s.principal).await {
        Ok(t) => t,
        Err(e) => return error_page(Some(&ctx), e),
    };
    if status.enrolled {
        let page = nsdb_ui::account::totp_setup(
            &ctx.page(),
            nsdb_ui::account::TotpSetup::Enrolled { just_now: false },
        );
        return Html(page.into_string()).into_response();
    }
    match node.begin_totp(&s.principal).await {
        Ok(e) => {
            let page = nsdb_ui::account::totp_setup(
                &ctx.page(),
                nsdb_ui::account::TotpSetup::New {
                    qr_svg: &e.qr_svg,
                    secret_base32: &e.secret_base32,
                    required: status.required,
                    error,
                },
            );
            let status = if error.is_some() {
                StatusCode::UNPROCESSABLE_ENTITY
            } else {
                StatusCode::OK
            };
            (status, Html(page.into_string())).into_response()
        }
        Err(e) => error_page(Some(&ctx), e),
    }
}

/// `POST /account/totp`: the first code makes the secret active. A wrong code shows a new
/// secret (the page is the only place the old one was shown) with the message.
async fn totp_confirm(State(node): State<AppState>, s: UiSession, body: Bytes) -> Response {
    let ctx = Ctx::new(&node, &s);
    let fields = match posted_form(&body, &s.csrf, Some(&ctx)) {
        Ok(f) => f,
        Err(refused) => return *refused,
    };
    let code = fields.get("code").map(String::as_str).unwrap_or("");
    match node.confirm_totp(&s.principal, code).await {
        Ok(()) => {
            let page = nsdb_ui::account::totp_setup(
                &ctx.page(),
                nsdb_ui::account::TotpSetup::Enrolled { just_now: true },
            );
            Html(page.into_string()).into_response()
        }
        Err(Error::Invalid(m)) => totp_screen(&node, &s, Some(&m)).await,
        Err(e) => error_page(Some(&ctx), e),
    }
}

/// パスワード変更 (`GET /account/password`).
async fn password_page(State(node): State<AppState>, s: UiSession) -> Response {
    let ctx = Ctx::new(&node, &s);
    let required = matches!(
        node.session_state(&s.token).await.map(|st| st.pending),
        Ok(Some(crate::accounts::Pending::ChangePassword))
    );
    let page = nsdb_ui::account::password_change(
        &ctx.page(),
        nsdb_ui::account::PasswordForm {
            required,
            ..Default::default()
        },
    );
    Html(page.into_string()).into_response()
}

/// `POST /account/password`: current, new, new again; the rule's message beside the field.
async fn password_submit(State(node): State<AppState>, s: UiSession, body: Bytes) -> Response {
    let ctx = Ctx::new(&node, &s);
    let fields = match posted_form(&body, &s.csrf, Some(&ctx)) {
        Ok(f) => f,
        Err(refused) => return *refused,
    };
    let get = |k: &str| fields.get(k).map(String::as_str).unwrap_or("");
    let required = matches!(
        node.session_state(&s.token).await.map(|st| st.pending),
        Ok(Some(crate::accounts::Pending::ChangePassword))
    );
    let refused = |form: nsdb_ui::account::PasswordForm<'_>, status: StatusCode| {
        let page = nsdb_ui::account::password_change(&ctx.page(), form);
        (status, Html(page.into_string())).into_response()
    };
    if get("new") != get("new2") {
        return refused(
            nsdb_ui::account::PasswordForm {
                new_error: Some(
                    "新しいパスワードが2回とも同じではありません。もう一度入力してください。",
                ),
                required,
                ..Default::default()
            },
            StatusCode::UNPROCESSABLE_ENTITY,
        );
    }
    match node
        .change_password(&s.principal, &s.token, get("current"), get("new"))
        .await
    {
        Ok(()) => refused(
            nsdb_ui::account::PasswordForm {
                done: true,
                ..Default::default()
            },
            StatusCode::OK,
        ),
        Err(Error::BadCredentials) => refused(
            nsdb_ui::account::PasswordForm {
                current_error: Some(&format!(
                    "現在のパスワードが違います。{}回続けて間違えると{}分間ログインできなくなります。",
                    crate::accounts::LOCK_AFTER_FAILURES,
                    crate::accounts::COOL_DOWN_MS / 60_000
                )),
                required,
                ..Default::default()
            },
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        Err(Error::Invalid(m)) => refused(
            nsdb_ui::account::PasswordForm {
                new_error: Some(&m),
                required,
                ..Default::default()
            },
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        Err(e) => error_page(Some(&ctx), e),
    }
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/login", get(login_page).post(login_submit))
        .route("/login/code", post(login_code))
        .route("/logout", post(logout))
        .route("/reauth", post(reauth_submit))
        .route("/account/totp", get(totp_page).post(totp_confirm))
        .route(
            "/account/password",
            get(password_page).post(password_submit),
        )
}
