//! Who is asking: the signed-in user of a request, from the session cookie (UI) or the bearer
//! token (API). Extracting one is the only way a handler gets a `Principal`, so a handler that
//! forgets to ask cannot reach a domain function that needs one.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};

use super::json::ApiError;
use crate::accounts::policy::Principal;
use crate::http::AppState;

pub const SESSION_COOKIE: &str = "nsdb_session";
pub const LOGIN_CSRF_COOKIE: &str = "nsdb_login";

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
}

impl FromRequestParts<AppState> for UiSession {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, node: &AppState) -> Result<Self, Response> {
        let jar = CookieJar::from_headers(&parts.headers);
        let token = jar
            .get(SESSION_COOKIE)
            .map(|c| c.value().to_string())
            .ok_or_else(|| Redirect::to("/login").into_response())?;
        match node.session(&token).await {
            Ok((principal, csrf)) => Ok(UiSession {
                principal,
                csrf,
                token,
            }),
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
}

impl FromRequestParts<AppState> for ApiSession {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, node: &AppState) -> Result<Self, ApiError> {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "unauthenticated",
                    "Authorization: Bearer <token> がありません。POST /api/v1/session でログインしてください。",
                )
            })?
            .to_string();
        let (principal, _) = node.session(&token).await.map_err(ApiError::from)?;
        Ok(ApiSession { principal, token })
    }
}
