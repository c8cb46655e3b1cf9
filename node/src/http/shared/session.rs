//! Who is asking: the signed-in user of a request, from the session cookie (UI) or the bearer
//! token (API). Extracting one is the only way a handler gets a `Principal`, so a handler that
//! forgets to ask cannot reach a domain function that needs one.
//!
//! A session whose user must first change their password or enrol the second factor
//! (`accounts::Pending`) reaches only that screen and sign-out (UI: every other page redirects
//! there; API: 403 with the pending step's code). Must never let such a session through.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};

use super::json::ApiError;
use crate::Error;
use crate::accounts::Pending;
use crate::accounts::policy::Principal;
use crate::http::AppState;

pub const SESSION_COOKIE: &str = "nsdb_session";
pub const LOGIN_CSRF_COOKIE: &str = "nsdb_login";
/// The half-signed-in state between the password and the code (`Node::begin_sign_in`).
pub const SIGN_IN_CHALLENGE_COOKIE: &str = "nsdb_sign_in";

/// A cookie only the server reads: HttpOnly, Secure, SameSite=Strict, whole site.
pub fn private_cookie(name: &'static str, value: String) -> Cookie<'static> {
    Cookie::build((name, value))
        .http_only(true)
        .secure(true)
        .same_site(SameSite::Strict)
        .path("/")
        .build()
}

/// The signed-in user of a UI request.
#[derive(Debug, Clone)]
pub struct UiSession {
    pub principal: Principal,
    pub csrf: String,
    pub token: String,
    /// When the user last gave their password (sign-in or 再認証), Unix ms.
    pub reauth_at: i64,
    /// The one-time notice this page shows (taken from the session: a page request (GET)
    /// shows it once, then it is gone).
    pub flash: Option<crate::accounts::Flash>,
}

/// Whether a session with `pending` may open `path`: the pending step's own screen and
/// sign-out only.
fn allowed_while(pending: Pending, path: &str) -> bool {
    path == pending.path() || path == "/logout"
}

/// The API's パスワード変更, open to a session that must change its password first.
const API_PASSWORD_CHANGE: &str = "/api/v1/session/password";

impl FromRequestParts<AppState> for UiSession {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, node: &AppState) -> Result<Self, Response> {
        let jar = CookieJar::from_headers(&parts.headers);
        let token = jar
            .get(SESSION_COOKIE)
            .map(|c| c.value().to_string())
            .ok_or_else(|| Redirect::to("/login").into_response())?;
        match node.session_state(&token).await {
            Ok(s) => {
                if let Some(pending) = s.pending
                    && !allowed_while(pending, parts.uri.path())
                {
                    return Err(Redirect::to(pending.path()).into_response());
                }
                // A page shows the notice once; a form's post leaves it for the page after.
                // The top page only redirects: the notice waits for the page it leads to.
                let flash = if parts.method == axum::http::Method::GET && parts.uri.path() != "/" {
                    s.flash
                } else {
                    None
                };
                if flash.is_some()
                    && let Err(e) = node.take_flash(&token).await
                {
                    tracing::warn!(target: "nsdb::http", error = %e, "notice not cleared");
                }
                Ok(UiSession {
                    principal: s.principal,
                    csrf: s.csrf,
                    token,
                    reauth_at: s.reauth_at,
                    flash,
                })
            }
            Err(_) => Err((
                jar.remove(Cookie::build(SESSION_COOKIE).path("/")),
                Redirect::to("/login"),
            )
                .into_response()),
        }
    }
}

/// The signed-in user of an API request (`Authorization: Bearer TOKEN`).
#[derive(Debug, Clone)]
pub struct ApiSession {
    pub principal: Principal,
    pub token: String,
    /// When the user last gave their password (sign-in or 再認証), Unix ms.
    pub reauth_at: i64,
}

impl ApiSession {
    /// For a sensitive action: refused with 401 `reauth_required` unless the user gave their
    /// password within `accounts::REAUTH_WINDOW_MS` (`POST /api/v1/session/reauth`).
    pub fn require_recent(&self, node: &AppState) -> Result<(), ApiError> {
        if node.clock.now_ms() - self.reauth_at <= crate::accounts::REAUTH_WINDOW_MS {
            Ok(())
        } else {
            Err(ApiError::from(Error::ReauthRequired))
        }
    }
}

/// The bearer token of an API request. Errors: 401 `unauthenticated` without one.
pub fn bearer(parts: &Parts) -> Result<String, ApiError> {
    parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "Authorization: Bearer <token> がありません。POST /api/v1/session でログインしてください。",
            )
        })
}

impl FromRequestParts<AppState> for ApiSession {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, node: &AppState) -> Result<Self, ApiError> {
        let token = bearer(parts)?;
        let s = node.session_state(&token).await.map_err(ApiError::from)?;
        // A password set by someone else can be replaced through the API itself.
        if let Some(pending) = s.pending
            && !(pending == crate::accounts::Pending::ChangePassword
                && parts.uri.path() == API_PASSWORD_CHANGE)
        {
            return Err(ApiError::from(Error::SetupRequired(pending)));
        }
        Ok(ApiSession {
            principal: s.principal,
            token,
            reauth_at: s.reauth_at,
        })
    }
}
