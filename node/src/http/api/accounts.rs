//! The API's sessions: sign in for a bearer token (`POST /api/v1/session`, with the second
//! factor's code for a user who enrolled it), sign out (`DELETE`), 再認証 of the bearer session
//! (`POST /api/v1/session/reauth`), and user administration, behind 再認証 as on the screen
//! (docs/security.md "User administration"): the user list (`GET /api/v1/users`) and each
//! action of the 医療機関ユーザ検索 screen on one user (`/api/v1/users/{id}/…`). The API uses no
//! cookies, so it needs no CSRF token.

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
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
#[utoipa::path(get, path = "/api/v1/users", tag = "users",
    responses((status = 200, body = Vec<UserRow>), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)), security(("bearer" = [])))]
async fn users(
    State(node): State<AppState>,
    s: ApiSession,
) -> Result<Json<Vec<UserRow>>, ApiError> {
    administering(&node, &s)?;
    Ok(Json(node.list_users(&s.principal).await?))
}

/// Whether the bearer session may administer users now: the 責任者 (403 otherwise), within
/// five minutes of a sign-in or 再認証 (401 `reauth_required` otherwise). Each action's
/// `Node` method checks again, with the target user.
fn administering(node: &AppState, s: &ApiSession) -> Result<(), ApiError> {
    crate::accounts::policy::authorize(
        &s.principal,
        crate::accounts::policy::Action::ManageUsers,
        crate::accounts::policy::Target::None,
    )
    .map_err(|e| ApiError::from(crate::Error::from(e)))?;
    s.require_recent(node)
}

/// A one-time password just set by パスワード初期化: shown once (the node keeps only its hash),
/// to be changed by the user at the next sign-in.
#[derive(Serialize, ToSchema)]
pub struct InitialPasswordIssued {
    user_id: u64,
    login: String,
    password: String,
}

/// A check-tool key just made by 暗号鍵再発行, returned once (the node keeps only its public
/// half).
#[derive(Serialize, ToSchema)]
pub struct CheckToolKeyIssued {
    login: String,
    /// The key file's text: 64 hexadecimal characters, as `nsdb user key --out` writes it.
    key_file: String,
}

/// 責任者変更 done: who holds the role now and who held it.
#[derive(Serialize, ToSchema)]
pub struct ResponsibleHandedOver {
    to_login: String,
    from_login: Option<String>,
}

/// 有効期限変更.
#[derive(Deserialize, ToSchema)]
pub struct ExpiryChange {
    /// The last day the account may sign in (JST): `2027-03-31`, or 和暦 as on the screen
    /// (`R9.3.31`); not before today. `null` or blank: no expiry.
    #[serde(default)]
    expires_on: Option<String>,
}

/// A user's number as the path gives it. Errors: 404 `not_found` for anything but a number
/// (the user list's `id`).
fn user_number(id: &str) -> Result<u64, ApiError> {
    id.parse().map_err(|_| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "その利用者は見つかりません（利用者一覧の id で指定してください）。",
        )
    })
}

/// The answer to an action that hands out a secret: never kept by a cache.
fn secret<T: Serialize>(body: T) -> axum::response::Response {
    ([(header::CACHE_CONTROL, "no-store")], Json(body)).into_response()
}

/// パスワード初期化 of user `id`: a new one-time password they must change at their next
/// sign-in; their sessions end, their failure count and 15-minute lock are cleared. Audited
/// `user_password_reset`. 422 `invalid` for one's own account or a user who is not the
/// 責任者's to manage (deleted, another institution's, unknown: one answer for all).
#[utoipa::path(post, path = "/api/v1/users/{id}/password-reset", tag = "users",
    params(("id" = u64, Path, description = "the user's number (`id` of the user list)")),
    responses((status = 200, body = InitialPasswordIssued), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
async fn reset_password(
    State(node): State<AppState>,
    s: ApiSession,
    Path(id): Path<String>,
) -> Result<axum::response::Response, ApiError> {
    administering(&node, &s)?;
    let id = user_number(&id)?;
    let issued = node.reset_password(&s.principal, id).await?;
    Ok(secret(InitialPasswordIssued {
        user_id: issued.user_id,
        login: issued.login.clone(),
        password: issued.password.clone(),
    }))
}

/// IDパスワード通知書 of user `id`: as パスワード初期化, the new one-time password printed once
/// into an A4 PDF (the old notice no longer works). Audited `user_notice`. Errors as
/// パスワード初期化.
#[utoipa::path(post, path = "/api/v1/users/{id}/notice", tag = "users",
    params(("id" = u64, Path, description = "the user's number")),
    responses((status = 200, content_type = "application/pdf",
            body = crate::http::api::papers::PdfFile),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
async fn notice(
    State(node): State<AppState>,
    s: ApiSession,
    Path(id): Path<String>,
) -> Result<axum::response::Response, ApiError> {
    administering(&node, &s)?;
    let id = user_number(&id)?;
    let notice = crate::http::shared::credentials::issue_notice(&node, &s.principal, id).await?;
    Ok(notice.into_response())
}

/// 暗号鍵再発行 for user `id` (a doctor or a clerk): a new check-tool signing key; its public
/// half replaces the registered one at once. Audited `user_key_reissue`. 422 `invalid` also
/// for a kind that does not use the check tool.
#[utoipa::path(post, path = "/api/v1/users/{id}/key", tag = "users",
    params(("id" = u64, Path, description = "the user's number")),
    responses((status = 200, body = CheckToolKeyIssued), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
async fn reissue_key(
    State(node): State<AppState>,
    s: ApiSession,
    Path(id): Path<String>,
) -> Result<axum::response::Response, ApiError> {
    administering(&node, &s)?;
    let id = user_number(&id)?;
    let key = node.reissue_user_key(&s.principal, id).await?;
    Ok(secret(CheckToolKeyIssued {
        login: key.login.clone(),
        key_file: key.key_file.clone(),
    }))
}

/// アカウントロック of user `id`: they cannot sign in, their sessions end at once. Audited
/// `user_lock`. Errors as パスワード初期化.
#[utoipa::path(post, path = "/api/v1/users/{id}/lock", tag = "users",
    params(("id" = u64, Path, description = "the user's number")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
async fn lock(
    State(node): State<AppState>,
    s: ApiSession,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    administering(&node, &s)?;
    let id = user_number(&id)?;
    node.set_user_locked(&s.principal, id, true).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// ロック解除 of user `id`: ends the 責任者's lock and the 15-minute lock after failures.
/// Audited `user_unlock`. Errors as パスワード初期化.
#[utoipa::path(post, path = "/api/v1/users/{id}/unlock", tag = "users",
    params(("id" = u64, Path, description = "the user's number")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
async fn unlock(
    State(node): State<AppState>,
    s: ApiSession,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    administering(&node, &s)?;
    let id = user_number(&id)?;
    node.set_user_locked(&s.principal, id, false).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// 責任者変更: the 責任者 role passes to doctor `id`; whoever held it stops administering
/// users. Audited `user_responsible`. 422 `invalid` also for a user who is not a doctor.
#[utoipa::path(post, path = "/api/v1/users/{id}/responsible", tag = "users",
    params(("id" = u64, Path, description = "the doctor's number")),
    responses((status = 200, body = ResponsibleHandedOver), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
async fn pass_responsible(
    State(node): State<AppState>,
    s: ApiSession,
    Path(id): Path<String>,
) -> Result<Json<ResponsibleHandedOver>, ApiError> {
    administering(&node, &s)?;
    let id = user_number(&id)?;
    let handed = node.pass_responsible(&s.principal, id).await?;
    Ok(Json(ResponsibleHandedOver {
        to_login: handed.to_login,
        from_login: handed.from_login,
    }))
}

/// 有効期限変更 of user `id`. Audited `user_expiry` with the new date. 422 `invalid` for a date
/// that cannot be read or is before today, and as パスワード初期化.
#[utoipa::path(put, path = "/api/v1/users/{id}/expiry", tag = "users",
    params(("id" = u64, Path, description = "the user's number")),
    request_body = ExpiryChange,
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
async fn set_expiry(
    State(node): State<AppState>,
    s: ApiSession,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<ExpiryChange>,
) -> Result<StatusCode, ApiError> {
    administering(&node, &s)?;
    let id = user_number(&id)?;
    let date = crate::Node::typed_expiry(req.expires_on.as_deref().unwrap_or(""))?;
    node.set_user_expiry(&s.principal, id, date).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// 削除 of user `id`: deactivation that keeps the history (the row stays, the account is
/// locked, sessions end, the check-tool key is removed; the ID is never given to anyone
/// else). Audited `user_delete`. 422 `invalid` also for the doctor holding the 責任者 role.
#[utoipa::path(delete, path = "/api/v1/users/{id}", tag = "users",
    params(("id" = u64, Path, description = "the user's number")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
async fn delete_user(
    State(node): State<AppState>,
    s: ApiSession,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    administering(&node, &s)?;
    let id = user_number(&id)?;
    node.delete_user(&s.principal, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(OpenApi)]
#[openapi(
    paths(
        login,
        logout,
        reauth,
        change_password,
        users,
        reset_password,
        notice,
        reissue_key,
        lock,
        unlock,
        pass_responsible,
        set_expiry,
        delete_user
    ),
    components(schemas(
        LoginRequest,
        LoginResponse,
        ReauthRequest,
        PasswordChange,
        Principal,
        UserRow,
        InitialPasswordIssued,
        CheckToolKeyIssued,
        ResponsibleHandedOver,
        ExpiryChange
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
        .route("/api/v1/users/{id}", axum::routing::delete(delete_user))
        .route(
            "/api/v1/users/{id}/password-reset",
            axum::routing::post(reset_password),
        )
        .route("/api/v1/users/{id}/notice", axum::routing::post(notice))
        .route("/api/v1/users/{id}/key", axum::routing::post(reissue_key))
        .route("/api/v1/users/{id}/lock", axum::routing::post(lock))
        .route("/api/v1/users/{id}/unlock", axum::routing::post(unlock))
        .route(
            "/api/v1/users/{id}/responsible",
            axum::routing::post(pass_responsible),
        )
        .route("/api/v1/users/{id}/expiry", axum::routing::put(set_expiry))
}
