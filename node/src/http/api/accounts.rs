//! The API's sessions: sign in for a bearer token (`POST /api/v1/session`, with the second
//! factor's code for a user who enrolled it), sign out (`DELETE`), 再認証 of the bearer session
//! (`POST /api/v1/session/reauth`) and the user list (`GET /api/v1/users`, user
//! administration: behind 再認証). The API uses no cookies, so it needs no CSRF token.

use axum::extract::State;
use axum::http::StatusCode;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::{OpenApi, ToSchema};

use crate::accounts::UserRow;
use crate::accounts::policy::Principal;
use crate::http::AppState;
use crate::http::shared::json::{ApiError, ApiJson, ErrorBody};
use crate::http::shared::session::ApiSession;

#[derive(Deserialize, ToSchema)]
pub struct LoginRequest {
    login: String,
    password: String,
    /// The 6-digit code of the user's authenticator app (RFC 6238), for a user who enrolled
    /// the second factor; without it such a user gets 401 `totp_required`. A code is accepted
    /// once.
    #[serde(default)]
    totp: Option<String>,
}

/// 再認証 of the bearer session: the password again (and the code, when enrolled).
#[derive(Deserialize, ToSchema)]
pub struct ReauthRequest {
    password: String,
    #[serde(default)]
    totp: Option<String>,
}

/// パスワード変更 of the bearer session's user.
#[derive(Deserialize, ToSchema)]
pub struct PasswordChange {
    /// The password now.
    current: String,
    /// The new password, different from the current one, meeting the rule of
    /// docs/security.md "Passwords" (at least 10 characters, not only blanks, not a repeated
    /// run, not containing the login ID, not a common password).
    new: String,
}

#[derive(Serialize, ToSchema)]
pub struct LoginResponse {
    /// Send as `Authorization: Bearer <token>`.
    token: String,
    user: Principal,
}

/// Signs in; returns a bearer token. 401 `unauthenticated` for every refusal alike; 401
/// `totp_required` when the password is right and the user's second-factor code is missing
/// (send it as `totp`); a wrong code is a refusal and counts toward the account lock. A user
/// who must first enrol the second factor or change a password set by someone else gets a
/// token whose every use answers 403 `totp_enrolment_required` / `password_change_required`
/// until done on the screens.
#[utoipa::path(post, path = "/api/v1/session", tag = "session", request_body = LoginRequest,
    responses((status = 201, body = LoginResponse), (status = 401, body = ErrorBody)))]
async fn login(
    State(node): State<AppState>,
    ApiJson(req): ApiJson<LoginRequest>,
) -> Result<(StatusCode, Json<LoginResponse>), ApiError> {
    let s = node
        .sign_in(&req.login, &req.password, req.totp.as_deref())
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(LoginResponse {
            token: s.token,
            user: s.principal,
        }),
    ))
}

/// Signs out: the token stops working.
#[utoipa::path(delete, path = "/api/v1/session", tag = "session",
    responses((status = 204), (status = 401, body = ErrorBody)), security(("bearer" = [])))]
async fn logout(State(node): State<AppState>, s: ApiSession) -> Result<StatusCode, ApiError> {
    node.logout(&s.token).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// 再認証: the bearer session's user gives the password (and code) again; sensitive endpoints
/// (401 `reauth_required`) then work for five minutes. 401 `unauthenticated` for a wrong
/// password or code (counted toward the account lock), 401 `totp_required` without a code
/// when one is needed.
#[utoipa::path(post, path = "/api/v1/session/reauth", tag = "session", request_body = ReauthRequest,
    responses((status = 204), (status = 401, body = ErrorBody)), security(("bearer" = [])))]
async fn reauth(
    State(node): State<AppState>,
    s: ApiSession,
    ApiJson(req): ApiJson<ReauthRequest>,
) -> Result<StatusCode, ApiError> {
    node.reauthenticate(&s.token, &req.password, req.totp.as_deref())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// パスワード変更: the bearer session's user replaces their password, as on the screen. Also
/// open to a token whose every other use answers 403 `password_change_required` (a password
/// set by someone else). Their other sessions end; this token stays. 401 `unauthenticated` for
/// a wrong current password (counted toward the account lock), 422 `invalid` with the rule's
/// message for a new password it refuses.
#[utoipa::path(post, path = "/api/v1/session/password", tag = "session",
    request_body = PasswordChange,
    responses((status = 204), (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
async fn change_password(
    State(node): State<AppState>,
    s: ApiSession,
    ApiJson(req): ApiJson<PasswordChange>,
) -> Result<StatusCode, ApiError> {
    node.change_password(&s.principal, &s.token, &req.current, &req.new)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The users of the 責任者's institution (user administration). 401 `reauth_required` more
/// than five minutes after the last sign-in or 再認証; 403 for anyone but a 責任者.
#[utoipa::path(get, path = "/api/v1/users", tag = "session",
    responses((status = 200, body = Vec<UserRow>), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)), security(("bearer" = [])))]
async fn users(
    State(node): State<AppState>,
    s: ApiSession,
) -> Result<Json<Vec<UserRow>>, ApiError> {
    crate::accounts::policy::authorize(
        &s.principal,
        crate::accounts::policy::Action::ManageUsers,
        crate::accounts::policy::Target::None,
    )
    .map_err(|e| ApiError::from(crate::Error::from(e)))?;
    s.require_recent(&node)?;
    Ok(Json(node.list_users(&s.principal).await?))
}

#[derive(OpenApi)]
#[openapi(
    paths(login, logout, reauth, change_password, users),
    components(schemas(
        LoginRequest,
        LoginResponse,
        ReauthRequest,
        PasswordChange,
        Principal,
        UserRow
    ))
)]
pub struct AccountsApiDoc;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/session", axum::routing::post(login).delete(logout))
        .route("/api/v1/session/reauth", axum::routing::post(reauth))
        .route(
            "/api/v1/session/password",
            axum::routing::post(change_password),
        )
        .route("/api/v1/users", axum::routing::get(users))
}
