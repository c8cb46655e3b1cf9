//! The JSON API under `/api/v1`, described by the OpenAPI document at `/api/v1/openapi.json`,
//! which is generated from the handlers and types of each capability module.
//!
//! Clients sign in with `POST /api/v1/session` and send the token as a bearer token; the API
//! uses no cookies, so it needs no CSRF token. Errors are `{"error": {"code", "message"}}`
//! (`http::shared::json`).

pub mod accounts;
pub mod imports;
pub mod keys;
pub mod papers;
pub mod review;
pub mod sheets;
pub mod sync;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use utoipa::{OpenApi, ToSchema};

use crate::config::NodeRole;
use crate::http::AppState;
use crate::http::shared::json::{ApiError, ErrorBody, ErrorDetail};

#[derive(Serialize, ToSchema)]
pub struct Health {
    /// `ok`; `degraded` when the data directory's free space is under `min_free_disk_mib` or a
    /// write met a full disk within the last 10 minutes (see `problems`); `damaged` when the
    /// integrity check found damage (writes are refused; see `damage`).
    status: String,
    /// What the integrity check found, when it found damage.
    #[serde(skip_serializing_if = "Option::is_none")]
    damage: Option<String>,
    /// Why the node is degraded, one sentence each (Japanese); absent when it is not.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    problems: Vec<String>,
    /// Free bytes on the data directory's file system (absent when it cannot be measured).
    #[serde(skip_serializing_if = "Option::is_none")]
    data_dir_free_bytes: Option<u64>,
    /// The configured minimum free space, in bytes (`min_free_disk_mib`).
    min_free_bytes: u64,
    role: NodeRole,
    node: String,
    version: String,
}

/// Whether the node answers, and in what state. HTTP 200 for `ok` and `degraded` (the node
/// still serves reads and writes; a load balancer must keep it, monitoring alerts on
/// `status`), 503 for `damaged` (every write, sign-ins included, is refused: a load balancer
/// should send users elsewhere). docs/operations.md "Health" gives the same table.
#[utoipa::path(get, path = "/api/v1/health", tag = "node",
    responses(
        (status = 200, description = "`ok` or `degraded`", body = Health),
        (status = 503, description = "`damaged`: writes are refused", body = Health)))]
async fn health(State(node): State<AppState>) -> (StatusCode, Json<Health>) {
    let damage = node.store.damage();
    let room = node.room();
    let problems = room.problems();
    let status = match (&damage, problems.is_empty()) {
        (Some(_), _) => "damaged",
        (None, false) => "degraded",
        (None, true) => "ok",
    };
    let code = if damage.is_some() {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    let body = Json(Health {
        status: status.into(),
        damage,
        problems,
        data_dir_free_bytes: room.free_bytes,
        min_free_bytes: room.min_free_bytes,
        role: node.role(),
        node: node.config.name.clone(),
        version: env!("CARGO_PKG_VERSION").into(),
    });
    (code, body)
}

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = api.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "nsdb API", description = "難病・小慢データベース ノードの API"),
    paths(health),
    components(schemas(Health, ErrorBody, ErrorDetail)),
    modifiers(&BearerAuth)
)]
pub struct ApiDoc;

async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(
        ApiDoc::openapi()
            .merge_from(accounts::AccountsApiDoc::openapi())
            .merge_from(sheets::SheetsApiDoc::openapi())
            .merge_from(imports::ImportsApiDoc::openapi())
            .merge_from(review::ReviewApiDoc::openapi())
            .merge_from(keys::KeysApiDoc::openapi())
            .merge_from(sync::SyncApiDoc::openapi())
            .merge_from(papers::PapersApiDoc::openapi()),
    )
}

async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "この API はありません。/api/v1/openapi.json を参照してください。",
    )
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/health", get(health))
        .route("/api/v1/openapi.json", get(openapi))
        .merge(accounts::routes())
        .merge(sheets::routes())
        .merge(imports::routes())
        .merge(review::routes())
        .merge(keys::routes())
        .merge(sync::routes())
        .merge(papers::routes())
        .route("/api/v1/{*rest}", axum::routing::any(not_found))
}
