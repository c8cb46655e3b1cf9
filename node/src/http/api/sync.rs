//! The API of sync: `GET /api/v1/sync/status`, the same status the sync page shows.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use utoipa::OpenApi;

use crate::http::AppState;
use crate::http::shared::json::ErrorBody;
use crate::http::shared::session::ApiSession;
use crate::sync_service::{SessionFigures, SetAsideSheet, SyncErrorLine, SyncStatus};

/// Sync status of this node: connected or not, last successful sync, documents waiting, errors
/// (on the hub, errors and set-aside sheets for the ministry only).
#[utoipa::path(get, path = "/api/v1/sync/status", tag = "sync",
    responses((status = 200, body = SyncStatus), (status = 401, body = ErrorBody)), security(("bearer" = [])))]
pub async fn sync_status(State(node): State<AppState>, s: ApiSession) -> Json<SyncStatus> {
    Json(crate::sync_service::status_for(&node, &s.principal).await)
}

#[derive(OpenApi)]
#[openapi(
    paths(sync_status),
    components(schemas(SyncStatus, SessionFigures, SetAsideSheet, SyncErrorLine))
)]
pub struct SyncApiDoc;

pub fn routes() -> Router<AppState> {
    Router::new().route("/api/v1/sync/status", get(sync_status))
}
