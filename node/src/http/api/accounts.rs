//! The API's sessions: sign in for a bearer token (`POST /api/v1/session`), sign out
//! (`DELETE`). The API uses no cookies, so it needs no CSRF token.

use axum::extract::State;
use axum::http::StatusCode;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::{OpenApi, ToSchema};

use crate::accounts::policy::Principal;
use crate::http::AppState;
use crate::http::shared::json::{ApiError, ApiJson, ErrorBody};
use crate::http::shared::session::ApiSession;

#[derive(Deserialize, ToSchema)]
pub struct LoginRequest {
    login: String,
    password: String,
}

#[derive(Serialize, ToSchema)]
pub struct LoginResponse {
    /// Send as `Authorization: Bearer <token>`.
    token: String,
    user: Principal,
}

/// Signs in; returns a bearer token.
#[utoipa::path(post, path = "/api/v1/session", tag = "session", request_body = LoginRequest,
    responses((status = 201, body = LoginResponse), (status = 401, body = ErrorBody)))]
async fn login(
    State(node): State<AppState>,
    ApiJson(req): ApiJson<LoginRequest>,
) -> Result<(StatusCode, Json<LoginResponse>), ApiError> {
    let s = node.login(&req.login, &req.password).await?;
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

#[derive(OpenApi)]
#[openapi(
    paths(login, logout),
    components(schemas(LoginRequest, LoginResponse, Principal))
)]
pub struct AccountsApiDoc;

pub fn routes() -> Router<AppState> {
    Router::new().route("/api/v1/session", axum::routing::post(login).delete(logout))
}
