//! The API of sheets: the forms a node can write, search, create, read and save sheets.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::{OpenApi, ToSchema};

use crate::Node;
use crate::http::AppState;
use crate::http::shared::json::{ApiError, ApiJson, ApiQuery, ErrorBody};
use crate::http::shared::session::ApiSession;
use crate::sheets::{SheetDetail, SheetPage, SheetQuery, SheetRow};

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
    /// The `version` of the sheet these changes were made on (from `GET`). Only items whose
    /// value differs from their value in that version are written; what others saved since is
    /// kept, and an item both changed keeps both values (see `conflicts`) until one is chosen.
    version: Vec<String>,
    /// Item id to value; an empty string clears the item. Items not named, and items given
    /// with the value they had in `version`, are left as they are.
    items: BTreeMap<String, String>,
}

#[derive(Deserialize, ToSchema)]
pub struct PickValue {
    /// The item id of an open conflict.
    field: String,
    /// One of the item's values in `conflicts`.
    value: String,
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
    responses((status = 200, body = SheetPage), (status = 403, body = ErrorBody),
        (status = 422, body = ErrorBody, description = "`invalid`: page 0, or a search the role may not make")),
    security(("bearer" = [])))]
async fn list_sheets(
    State(node): State<AppState>,
    s: ApiSession,
    ApiQuery(q): ApiQuery<SheetQuery>,
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
    Ok(Json(
        crate::http::shared::sheet::sheet_detail(
            &node,
            &s.principal,
            &id,
            nsdb_rules::check::Mode::Draft,
        )
        .await?,
    ))
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
        node.update_sheet_since(&s.principal, &id, &req.version, &req.items)
            .await?,
    ))
}

/// Registers a sheet (登録): a doctor of its institution; the checks must pass and no item may
/// hold two values (see `conflicts`; choose one first). Issues the access key.
#[utoipa::path(post, path = "/api/v1/sheets/{id}/register", tag = "sheets",
    params(("id" = String, Path, description = "sheet id")),
    responses((status = 200, body = SheetDetail), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
async fn register_sheet(
    State(node): State<AppState>,
    s: ApiSession,
    Path(id): Path<String>,
) -> Result<Json<SheetDetail>, ApiError> {
    Ok(Json(
        node.step(&s.principal, &id, crate::sheets::workflow::Step::Register)
            .await?,
    ))
}

/// A doctor chooses one of the values of an item that holds two (競合解消).
#[utoipa::path(post, path = "/api/v1/sheets/{id}/conflicts", tag = "sheets",
    request_body = PickValue, params(("id" = String, Path, description = "sheet id")),
    responses((status = 200, body = SheetDetail), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
async fn pick_value(
    State(node): State<AppState>,
    s: ApiSession,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<PickValue>,
) -> Result<Json<SheetDetail>, ApiError> {
    node.resolve_conflict(&s.principal, &id, &req.field, &req.value)
        .await?;
    Ok(Json(node.get_sheet(&s.principal, &id).await?))
}

#[derive(OpenApi)]
#[openapi(
    paths(
        forms,
        list_sheets,
        create_sheet,
        get_sheet,
        update_sheet,
        register_sheet,
        pick_value
    ),
    components(schemas(
        FormSummary,
        CreateSheet,
        UpdateSheet,
        PickValue,
        crate::sheets::OpenConflict,
        SheetRow,
        SheetDetail,
        SheetPage
    ))
)]
pub struct SheetsApiDoc;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/forms", get(forms))
        .route("/api/v1/sheets", get(list_sheets).post(create_sheet))
        .route("/api/v1/sheets/{id}", get(get_sheet).put(update_sheet))
        .route("/api/v1/sheets/{id}/register", post(register_sheet))
        .route("/api/v1/sheets/{id}/conflicts", post(pick_value))
}
