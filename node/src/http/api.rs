//! The JSON API under `/api/v1`, described by the OpenAPI document at `/api/v1/openapi.json`,
//! which is generated from these handlers and types.
//!
//! Clients sign in with `POST /api/v1/session` and send the token as a bearer token; the API
//! uses no cookies, so it needs no CSRF token. Errors are `{"error": {"code", "message"}}`.

use std::collections::BTreeMap;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::{OpenApi, ToSchema};

use super::AppState;
use super::session::ApiSession;
use crate::config::NodeRole;
use crate::policy::Principal;
use crate::sheets::{SheetDetail, SheetPage, SheetQuery, SheetRow};
use crate::{Error, Node};

/// An error as the API returns it.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub items: Vec<String>,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    /// A stable machine-readable code, e.g. `forbidden`.
    code: String,
    /// What went wrong, in Japanese.
    message: String,
    /// The items concerned, where the error is about items.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    items: Vec<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            items: Vec::new(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_string(),
                message: self.message,
                items: self.items,
            },
        };
        (self.status, Json(body)).into_response()
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> ApiError {
        let (status, code) = match &e {
            Error::BadCredentials | Error::Locked | Error::Expired | Error::Unauthenticated => {
                (StatusCode::UNAUTHORIZED, "unauthenticated")
            }
            Error::Denied(_) => (StatusCode::FORBIDDEN, "forbidden"),
            Error::UnknownForm(_) | Error::SheetNotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            Error::UnknownItems(_) => (StatusCode::UNPROCESSABLE_ENTITY, "unknown_items"),
            Error::Invalid(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid"),
            Error::Document { .. } | Error::Store(_) => {
                tracing::error!(target: "nsdb::http", error = %e, "internal error");
                return ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "サーバで問題が発生しました。時間をおいて再度お試しください。",
                );
            }
        };
        let items = match &e {
            Error::UnknownItems(u) => u.items.clone(),
            _ => Vec::new(),
        };
        ApiError {
            status,
            code,
            message: e.to_string(),
            items,
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> ApiError {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_json",
            format!("リクエストの JSON が読めません: {}", r.body_text()),
        )
    }
}

/// JSON body extractor whose rejection is an `ApiError`.
pub struct ApiJson<T>(pub T);

impl<T, S> axum::extract::FromRequest<S> for ApiJson<T>
where
    Json<T>: axum::extract::FromRequest<S, Rejection = JsonRejection>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        let Json(v) = Json::<T>::from_request(req, state).await?;
        Ok(ApiJson(v))
    }
}

#[derive(Serialize, ToSchema)]
pub struct Health {
    /// Always `ok` when the node answers.
    status: String,
    role: NodeRole,
    node: String,
    version: String,
}

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

#[derive(Serialize, ToSchema)]
pub struct FormSummary {
    id: String,
    /// `rinko` (臨床調査個人票) or `iken` (医療意見書).
    kind: String,
    title: String,
    version: String,
    kokuji: u16,
    eda: u16,
    disease: String,
}

#[derive(Deserialize, ToSchema)]
pub struct CreateSheet {
    /// A form id from `GET /api/v1/forms`.
    form_id: String,
    /// Item id to value, as typed; values are normalised (full-width digits, kana, dates).
    #[serde(default)]
    items: BTreeMap<String, String>,
}

#[derive(Deserialize, ToSchema)]
pub struct UpdateSheet {
    /// Item id to value; an empty string clears the item. Items not named are left as they are.
    items: BTreeMap<String, String>,
}

/// Whether the node answers.
#[utoipa::path(get, path = "/api/v1/health", tag = "node",
    responses((status = 200, body = Health)))]
async fn health(State(node): State<AppState>) -> Json<Health> {
    Json(Health {
        status: "ok".into(),
        role: node.role(),
        node: node.config.name.clone(),
        version: env!("CARGO_PKG_VERSION").into(),
    })
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

/// The forms this node can write.
#[utoipa::path(get, path = "/api/v1/forms", tag = "sheets",
    responses((status = 200, body = Vec<FormSummary>)), security(("bearer" = [])))]
async fn forms(State(node): State<AppState>, _s: ApiSession) -> Json<Vec<FormSummary>> {
    Json(form_summaries(&node))
}

fn form_summaries(node: &Node) -> Vec<FormSummary> {
    node.catalogue
        .forms()
        .into_iter()
        .map(|f| FormSummary {
            id: f.id.clone(),
            kind: match f.kind {
                nsdb_rules::FormKind::Rinko => "rinko".into(),
                nsdb_rules::FormKind::Iken => "iken".into(),
            },
            title: f.title.clone(),
            version: f.version.clone(),
            kokuji: f.kokuji,
            eda: f.eda,
            disease: f.disease.clone(),
        })
        .collect()
}

/// Searches the sheets the user may see, newest first.
#[utoipa::path(get, path = "/api/v1/sheets", tag = "sheets", params(SheetQuery),
    responses((status = 200, body = SheetPage), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
async fn list_sheets(
    State(node): State<AppState>,
    s: ApiSession,
    Query(q): Query<SheetQuery>,
) -> Result<Json<SheetPage>, ApiError> {
    Ok(Json(node.list_sheets(&s.principal, &q).await?))
}

/// Starts a new sheet at the user's institution.
#[utoipa::path(post, path = "/api/v1/sheets", tag = "sheets", request_body = CreateSheet,
    responses((status = 201, body = SheetDetail), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody)), security(("bearer" = [])))]
async fn create_sheet(
    State(node): State<AppState>,
    s: ApiSession,
    ApiJson(req): ApiJson<CreateSheet>,
) -> Result<(StatusCode, Json<SheetDetail>), ApiError> {
    let d = node
        .create_sheet(&s.principal, &req.form_id, &req.items)
        .await?;
    Ok((StatusCode::CREATED, Json(d)))
}

/// One sheet with its values and check messages.
#[utoipa::path(get, path = "/api/v1/sheets/{id}", tag = "sheets",
    params(("id" = String, Path, description = "sheet id")),
    responses((status = 200, body = SheetDetail), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)), security(("bearer" = [])))]
async fn get_sheet(
    State(node): State<AppState>,
    s: ApiSession,
    Path(id): Path<String>,
) -> Result<Json<SheetDetail>, ApiError> {
    Ok(Json(node.get_sheet(&s.principal, &id).await?))
}

/// Saves values into a sheet (一時保存).
#[utoipa::path(put, path = "/api/v1/sheets/{id}", tag = "sheets", request_body = UpdateSheet,
    params(("id" = String, Path, description = "sheet id")),
    responses((status = 200, body = SheetDetail), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
async fn update_sheet(
    State(node): State<AppState>,
    s: ApiSession,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<UpdateSheet>,
) -> Result<Json<SheetDetail>, ApiError> {
    Ok(Json(
        node.update_sheet(&s.principal, &id, &req.items).await?,
    ))
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
    paths(health, login, logout, forms, list_sheets, create_sheet, get_sheet, update_sheet),
    components(schemas(Health, LoginRequest, LoginResponse, FormSummary, CreateSheet,
        UpdateSheet, SheetRow, SheetDetail, SheetPage, ErrorBody, ErrorDetail, Principal)),
    modifiers(&BearerAuth)
)]
pub struct ApiDoc;

async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi().merge_from(super::sync::SyncApiDoc::openapi()))
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
        .route("/api/v1/session", axum::routing::post(login).delete(logout))
        .route("/api/v1/forms", get(forms))
        .route("/api/v1/sheets", get(list_sheets).post(create_sheet))
        .route("/api/v1/sheets/{id}", get(get_sheet).put(update_sheet))
        .route("/api/v1/{*rest}", axum::routing::any(not_found))
}
