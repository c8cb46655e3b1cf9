//! The API of bulk registration (pattern 3: hospital systems on a secure network): upload
//! sealed files from the check tool (`POST /api/v1/imports`, multipart), and データ出力 of a
//! sheet as XML in the published layout (`GET /api/v1/sheets/{id}/xml`).

use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use utoipa::OpenApi;

use crate::http::AppState;
use crate::http::shared::json::{ApiError, ApiMultipart, ErrorBody};
use crate::http::shared::session::ApiSession;
use crate::http::shared::upload::{MAX_UPLOAD_BYTES, read_upload};
use crate::imports::{ImportReport, ImportRow, UploadVersions};

/// Imports sealed files (`multipart/form-data`, every part with a file name is a file). Each
/// file gets a row: 取込成功, or why not (older rule pack, unknown signer, tampered, another
/// node's file, check errors, already imported). 200 even when files were refused.
/// The parts of an upload of sealed files (一括登録), as the OpenAPI document describes them.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct SealedFiles {
    /// The `.sealed` files the check tool wrote, one part each with its file name (any part
    /// name), at most 1,000 files.
    #[schema(value_type = Vec<String>, format = Binary)]
    files: Vec<Vec<u8>>,
}

#[utoipa::path(post, path = "/api/v1/imports", tag = "imports",
    request_body(content = SealedFiles, content_type = "multipart/form-data",
        description = "sealed files"),
    responses((status = 200, body = ImportReport), (status = 403, body = ErrorBody),
        (status = 422, body = ErrorBody)), security(("bearer" = [])))]
async fn import(
    State(node): State<AppState>,
    s: ApiSession,
    ApiMultipart(multipart): ApiMultipart,
) -> Result<Json<ImportReport>, ApiError> {
    let up = read_upload(multipart)
        .await
        .map_err(|m| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", m))?;
    if up.files.is_empty() {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
            "ファイルがありません。ファイル名を付けたパートで送ってください。",
        ));
    }
    Ok(Json(node.import_sealed(&s.principal, up.files).await?))
}

/// データ出力: the sheet as an XML file in the published layout (docs/xml-layout.md).
#[utoipa::path(get, path = "/api/v1/sheets/{id}/xml", tag = "imports",
    params(("id" = String, Path, description = "sheet id")),
    responses((status = 200, content_type = "application/xml", body = String),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
async fn export_xml(
    State(node): State<AppState>,
    s: ApiSession,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let (_, xml) = node.export_xml(&s.principal, &id).await?;
    Ok((
        [(header::CONTENT_TYPE, "application/xml; charset=utf-8")],
        xml,
    )
        .into_response())
}

#[derive(OpenApi)]
#[openapi(
    paths(import, export_xml),
    components(schemas(ImportReport, ImportRow, UploadVersions, SealedFiles))
)]
pub struct ImportsApiDoc;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/imports",
            post(import).layer(DefaultBodyLimit::max(MAX_UPLOAD_BYTES)),
        )
        .route("/api/v1/sheets/{id}/xml", get(export_xml))
}
