//! 再認証 before a sensitive action (user administration, bulk export): unless the user gave
//! their password (and code) within `accounts::REAUTH_WINDOW_MS`, the action answers with the
//! 再認証 page instead, which holds the request exactly (a page: its address; a form: every
//! posted field, as `nsdb_ui::held_fields` also holds a failed save) and continues it once the
//! password is right. Must never run the action before the password was checked.

use axum::body::Bytes;
use axum::http::{Method, StatusCode, Uri};
use axum::response::{Html, IntoResponse, Response};

use super::page::{Ctx, csrf_refused, error_page, same_secret};
use super::session::UiSession;
use crate::Error;
use crate::http::AppState;

/// The field names the 再認証 page adds; everything else is the held request.
const PASSWORD: &str = "_reauth_password";
const CODE: &str = "_reauth_code";
/// For a page (GET): where `POST /reauth` returns to.
pub const RETURN_TO: &str = "_reauth_to";
/// For a download (GET): the page the user was on, where `POST /reauth` returns to and then
/// starts the download (`RETURN_TO`), instead of leaving the user on the 再認証 page.
pub const BACK: &str = "_reauth_back";

/// The fields of a posted form (none for any other method).
fn posted_pairs(method: &Method, body: &Bytes) -> Vec<(String, String)> {
    if *method == Method::POST {
        serde_urlencoded::from_bytes(body).unwrap_or_default()
    } else {
        Vec::new()
    }
}

/// Lets a sensitive request through: `Ok(body)` with the body the action should read (the
/// held form, without the 再認証 fields) when the session is recent or the request carries a
/// right password; otherwise `Err` with the 再認証 page (401), or with it again and a message
/// after a wrong password or code.
pub async fn guard(
    node: &AppState,
    s: &UiSession,
    method: &Method,
    uri: &Uri,
    body: &Bytes,
) -> Result<Bytes, Response> {
    let pairs = posted_pairs(method, body);
    if pairs.iter().any(|(k, _)| k == PASSWORD) {
        let held = check(node, s, &pairs, uri, method).await?;
        return Ok(Bytes::from(
            serde_urlencoded::to_string(&held).unwrap_or_default(),
        ));
    }
    let fresh = node.clock.now_ms() - s.reauth_at <= crate::accounts::REAUTH_WINDOW_MS;
    if fresh {
        return Ok(body.clone());
    }
    Err(prompt(node, s, method, uri, &pairs, None, None).await)
}

/// [`guard`] for a download (a request answered with a file) asked from the page `back`.
/// A file answering the 再認証 page's own post would leave the browser on that page, so once
/// the password is right the user returns to `back` instead: for a link (GET) that page
/// starts the download and offers a link to it; for a form (POST, e.g. a file made at that
/// moment) it says to press the button again, which the fresh 再認証 now lets through.
/// `Ok(body)` as [`guard`].
pub async fn guard_download(
    node: &AppState,
    s: &UiSession,
    method: &Method,
    uri: &Uri,
    body: &Bytes,
    back: &str,
) -> Result<Bytes, Response> {
    let pairs = posted_pairs(method, body);
    if pairs.iter().any(|(k, _)| k == PASSWORD) {
        check(node, s, &pairs, uri, method).await?;
        let flash = crate::accounts::Flash::text(
            "再認証しました。もう一度ボタンを押すと、ダウンロードが始まります（この後5分間は再認証なしで使えます）。",
        );
        if let Err(e) = node.set_flash(&s.token, &flash).await {
            return Err(error_page(Some(&Ctx::new(node, s)), e));
        }
        return Err(axum::response::Redirect::to(safe_return(back)).into_response());
    }
    let fresh = node.clock.now_ms() - s.reauth_at <= crate::accounts::REAUTH_WINDOW_MS;
    if fresh {
        return Ok(body.clone());
    }
    Err(prompt(node, s, method, uri, &pairs, None, Some(back)).await)
}

/// Checks the password and code of a posted 再認証 page; `Ok` with the held fields.
pub async fn check(
    node: &AppState,
    s: &UiSession,
    pairs: &[(String, String)],
    uri: &Uri,
    method: &Method,
) -> Result<Vec<(String, String)>, Response> {
    let field = |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    if !field("csrf").is_some_and(|t| same_secret(t, &s.csrf)) {
        return Err(csrf_refused());
    }
    let held: Vec<(String, String)> = pairs
        .iter()
        .filter(|(k, _)| k != PASSWORD && k != CODE)
        .cloned()
        .collect();
    let password = field(PASSWORD).unwrap_or("");
    match node.reauthenticate(&s.token, password, field(CODE)).await {
        Ok(()) => Ok(held),
        Err(e @ (Error::BadCredentials | Error::TotpRequired | Error::Busy)) => {
            let message = match e {
                Error::BadCredentials => format!(
                    "パスワードまたは確認コードが違います。{}回続けて間違えると{}分間ログインできなくなります。",
                    crate::accounts::LOCK_AFTER_FAILURES,
                    crate::accounts::COOL_DOWN_MS / 60_000
                ),
                other => other.to_string(),
            };
            Err(prompt(node, s, method, uri, &held, Some(&message), None).await)
        }
        Err(e) => Err(error_page(Some(&Ctx::new(node, s)), e)),
    }
}

/// The 再認証 page for `uri`: a page (GET) returns there through `POST /reauth`; a form
/// (POST) is posted again to its own address with `held` (its fields as posted).
async fn prompt(
    node: &AppState,
    s: &UiSession,
    method: &Method,
    uri: &Uri,
    held: &[(String, String)],
    error: Option<&str>,
    download_from: Option<&str>,
) -> Response {
    let target = uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| uri.path().to_string());
    let (action, fields) = if *method == Method::POST && uri.path() != "/reauth" {
        (target, held.to_vec())
    } else {
        let back = if uri.path() == "/reauth" {
            held.iter()
                .find(|(k, _)| k == RETURN_TO)
                .map(|(_, v)| v.clone())
                .unwrap_or_else(|| "/".into())
        } else {
            target
        };
        let mut fields = vec![
            ("csrf".to_string(), s.csrf.clone()),
            (RETURN_TO.to_string(), back),
        ];
        let from = download_from
            .map(str::to_string)
            .or_else(|| held.iter().find(|(k, _)| k == BACK).map(|(_, v)| v.clone()));
        if let Some(from) = from {
            fields.push((BACK.to_string(), from));
        }
        ("/reauth".to_string(), fields)
    };
    let ask_code = node
        .totp_status(&s.principal)
        .await
        .map(|t| t.enrolled)
        .unwrap_or(true);
    let ctx = Ctx::new(node, s);
    let page = nsdb_ui::account::reauth(&ctx.page(), &action, &fields, error, ask_code);
    (StatusCode::UNAUTHORIZED, Html(page.into_string())).into_response()
}

/// Where `POST /reauth` may return: a path on this site, never another site.
pub fn safe_return(to: &str) -> &str {
    if to.starts_with('/') && !to.starts_with("//") && !to.contains('\\') {
        to
    } else {
        "/"
    }
}
