//! The API of the paper path (紙の臨個票, M15): a municipality's upload of a scanned paper sheet
//! (`POST /api/v1/papers`, multipart) and its list (`GET /api/v1/papers`), the PDF
//! (`GET /api/v1/papers/{id}/pdf`), and at the hub the entry of the contractor's XML
//! (`POST /api/v1/papers/{id}/data`). Translates to the `Node` methods of `papers`, which decide
//! access and audit; never decides access itself.

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use utoipa::{OpenApi, ToSchema};

use crate::http::AppState;
use crate::http::shared::json::{ApiError, ApiMultipart, ErrorBody};
use crate::http::shared::session::ApiSession;
use crate::http::shared::upload::read_upload;
use crate::papers::{MAX_PDF_BYTES, PaperError, PaperRow, PaperUpload};

impl From<PaperError> for ApiError {
    fn from(e: PaperError) -> ApiError {
        match e {
            PaperError::Field { field, message } => ApiError {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                code: "invalid",
                message,
                items: vec![field.to_string()],
            },
            PaperError::Checks(messages) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "check",
                format!(
                    "データファイルにチェックエラーが{}件あります: {}",
                    messages.len(),
                    messages.join(" / ")
                ),
            ),
            PaperError::Node(e) => e.into(),
        }
    }
}

/// A paper just stored.
#[derive(Debug, Serialize, ToSchema)]
pub struct PaperCreated {
    /// The paper's id (32 hex digits).
    pub id: String,
}

/// A paper whose data was entered at the hub.
#[derive(Debug, Serialize, ToSchema)]
pub struct PaperEntered {
    pub sheet_id: String,
    /// アクセスキー, 11 digits.
    pub access_key: String,
}

/// 紙の臨個票受付 at a municipality (reviewers): `multipart/form-data` with the PDF as a part
/// with a file name (`%PDF-`, at most 5 MiB) and the fields `name_kana`, `birth_date`,
/// `disease` (告示番号). A refused field is named in `items`.
/// The parts of a paper upload (紙の臨個票), as the OpenAPI document describes them.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct PaperUploadForm {
    /// The scanned sheet: one part with a file name, at most 5 MiB of PDF.
    #[schema(value_type = String, format = Binary)]
    pdf: Vec<u8>,
    /// 氏名カナ
    name_kana: String,
    /// 生年月日 `YYYY-MM-DD`
    birth_date: String,
    /// 病名 as written on the paper
    disease: String,
}

/// A PDF file's bytes.
#[derive(ToSchema)]
#[schema(value_type = String, format = Binary)]
#[allow(dead_code)]
pub struct PdfFile(Vec<u8>);

#[utoipa::path(post, path = "/api/v1/papers", tag = "papers",
    request_body(content = PaperUploadForm, content_type = "multipart/form-data",
        description = "the PDF and name_kana, birth_date, disease"),
    responses((status = 201, body = PaperCreated), (status = 403, body = ErrorBody),
        (status = 422, body = ErrorBody)), security(("bearer" = [])))]
async fn upload(
    State(node): State<AppState>,
    s: ApiSession,
    ApiMultipart(multipart): ApiMultipart,
) -> Result<(StatusCode, Json<PaperCreated>), ApiError> {
    let up = read_upload(multipart)
        .await
        .map_err(|m| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", m))?;
    let text = |k: &str| up.fields.get(k).cloned().unwrap_or_default();
    let paper = PaperUpload {
        name_kana: text("name_kana"),
        birth_date: text("birth_date"),
        disease: text("disease"),
        pdf: up
            .files
            .into_iter()
            .next()
            .map(|(_, b)| b)
            .unwrap_or_default(),
    };
    let id = node.upload_paper(&s.principal, paper).await?;
    Ok((StatusCode::CREATED, Json(PaperCreated { id })))
}

/// The papers of the caller's municipality, or at the hub every paper received (data entry),
/// newest first.
#[utoipa::path(get, path = "/api/v1/papers", tag = "papers",
    responses((status = 200, body = Vec<PaperRow>), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
async fn list(
    State(node): State<AppState>,
    s: ApiSession,
) -> Result<Json<Vec<PaperRow>>, ApiError> {
    Ok(Json(node.papers(&s.principal).await?))
}

/// The scanned PDF: for the uploading municipality's reviewers and the hub's data entry only;
/// every view audited.
#[utoipa::path(get, path = "/api/v1/papers/{id}/pdf", tag = "papers",
    params(("id" = String, Path, description = "paper id")),
    responses((status = 200, content_type = "application/pdf", body = PdfFile),
        (status = 403, body = ErrorBody)), security(("bearer" = [])))]
async fn pdf(
    State(node): State<AppState>,
    s: ApiSession,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let pdf = node.paper_pdf(&s.principal, &id).await?;
    Ok(([(header::CONTENT_TYPE, "application/pdf")], pdf).into_response())
}

/// At the hub (紙臨個票データ入力者): the contractor's data file for the paper, as the request
/// body (the hospital XML layout, one sheet, unsealed). Check errors are listed in the message.
#[utoipa::path(post, path = "/api/v1/papers/{id}/data", tag = "papers",
    params(("id" = String, Path, description = "paper id")),
    request_body(content = String, content_type = "application/xml",
        description = "the contractor's XML (docs/xml-layout.md)"),
    responses((status = 201, body = PaperEntered), (status = 403, body = ErrorBody),
        (status = 422, body = ErrorBody)), security(("bearer" = [])))]
async fn enter(
    State(node): State<AppState>,
    s: ApiSession,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<PaperEntered>), ApiError> {
    let sheet_id = node.enter_paper(&s.principal, &id, &body).await?;
    let access_key = node
        .paper(&s.principal, &id)
        .await?
        .access_key
        .unwrap_or_default();
    Ok((
        StatusCode::CREATED,
        Json(PaperEntered {
            sheet_id,
            access_key,
        }),
    ))
}

#[derive(OpenApi)]
#[openapi(
    paths(upload, list, pdf, enter),
    components(schemas(PaperRow, PaperCreated, PaperEntered, PaperUploadForm, PdfFile))
)]
pub struct PapersApiDoc;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/papers",
            get(list)
                .post(upload)
                .layer(DefaultBodyLimit::max(2 * MAX_PDF_BYTES)),
        )
        .route("/api/v1/papers/{id}/pdf", get(pdf))
        .route(
            "/api/v1/papers/{id}/data",
            post(enter).layer(DefaultBodyLimit::max(2 * MAX_PDF_BYTES)),
        )
}
