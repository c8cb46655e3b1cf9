//! The API of access keys: resolution of an access key with the patient's birth date at the hub
//! (`POST /api/v1/resolutions`, 臨個票連携 at a hospital, 受付 at a municipality) and this
//! node's list of resolved keys (`GET /api/v1/resolutions`). Access is decided by the domain
//! (`sync_service::resolve`); this module only maps requests and errors.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use utoipa::{OpenApi, ToSchema};

use crate::http::AppState;
use crate::http::shared::json::{ApiError, ApiJson, ErrorBody};
use crate::http::shared::session::ApiSession;
use crate::sync_service::{self, Resolution, ResolveError, ResolvedRow, ResolvedSheet};

/// What to resolve.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ResolveRequest {
    /// アクセスキー as printed (`12345-67890-1`), with or without separators, full-width digits
    /// accepted.
    pub access_key: String,
    /// 生年月日: `YYYY-MM-DD`, `YYYY/M/D` or 和暦 (`昭和55年4月1日`).
    pub birth_date: String,
}

pub(crate) fn resolve_error(e: ResolveError) -> ApiError {
    let message = e.to_string();
    match e {
        ResolveError::Node(inner) => inner.into(),
        ResolveError::HubUnreachable => {
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "hub_unreachable", message)
        }
        ResolveError::RateLimited => {
            ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", message)
        }
        ResolveError::NotFound => ApiError::new(StatusCode::NOT_FOUND, "not_found", message),
        ResolveError::Malformed(_) => {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", message)
        }
    }
}

/// Resolves an access key with the patient's birth date at the hub. On success the hub opens
/// the sheet to this node (it arrives by sync; `arrived` says whether it has) and the answer
/// holds the list row. An unknown key and a wrong birth date get the same 404. 503 when the hub
/// cannot be reached, 429 over the rate limits, 422 for a key whose check digit is wrong or an
/// unreadable date (the hub is not asked then).
#[utoipa::path(post, path = "/api/v1/resolutions", tag = "keys",
    request_body = ResolveRequest,
    responses((status = 200, body = Resolution), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 429, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
async fn resolve(
    State(node): State<AppState>,
    s: ApiSession,
    ApiJson(req): ApiJson<ResolveRequest>,
) -> Result<Json<Resolution>, ApiError> {
    sync_service::resolve(&node, &s.principal, &req.access_key, &req.birth_date)
        .await
        .map(Json)
        .map_err(resolve_error)
}

/// The keys this node resolved, newest first (at most 200).
#[utoipa::path(get, path = "/api/v1/resolutions", tag = "keys",
    responses((status = 200, body = Vec<ResolvedRow>), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
async fn list(
    State(node): State<AppState>,
    s: ApiSession,
) -> Result<Json<Vec<ResolvedRow>>, ApiError> {
    Ok(Json(
        sync_service::resolutions(&node, &s.principal, 200).await?,
    ))
}

#[derive(OpenApi)]
#[openapi(
    paths(resolve, list),
    components(schemas(ResolveRequest, Resolution, ResolvedSheet, ResolvedRow))
)]
pub struct KeysApiDoc;

pub fn routes() -> Router<AppState> {
    Router::new().route("/api/v1/resolutions", get(list).post(resolve))
}
