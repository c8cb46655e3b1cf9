//! The API of a municipality's review: the intake list, recording a result, and inquiries
//! (照会) — asked and closed by the municipality, answered by the hospital. Decides nothing:
//! the `review` domain checks access and audits.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use utoipa::{OpenApi, ToSchema};

use crate::http::AppState;
use crate::http::shared::json::{ApiError, ApiJson, ErrorBody};
use crate::http::shared::session::ApiSession;
use crate::review::{InquiryDetail, IntakeRow, IntakeState, ReviewInput};

#[derive(Deserialize, ToSchema)]
pub struct AskInquiry {
    /// The item ids the question is about (at least one).
    fields: Vec<String>,
    question: String,
}

#[derive(Deserialize, ToSchema)]
pub struct AnswerInquiry {
    answer: String,
}

/// The municipality's intake list (受付一覧): the sheets this node resolved, newest first.
#[utoipa::path(get, path = "/api/v1/intake", tag = "review",
    responses((status = 200, body = Vec<IntakeRow>), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
async fn intake(
    State(node): State<AppState>,
    s: ApiSession,
) -> Result<Json<Vec<IntakeRow>>, ApiError> {
    Ok(Json(node.intake(&s.principal).await?))
}

/// Records this municipality's result (認定結果, 有効期間, 研究利用の同意, 所得区分) in the
/// sheet; it syncs to the hub and the hospital. Answers with the review as stored.
#[utoipa::path(post, path = "/api/v1/sheets/{id}/review", tag = "review",
    request_body = ReviewInput, params(("id" = String, Path, description = "sheet id")),
    responses((status = 200, description = "the review as stored"), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
async fn record_review(
    State(node): State<AppState>,
    s: ApiSession,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<ReviewInput>,
) -> Result<Json<nsdb_sync::Review>, ApiError> {
    Ok(Json(node.record_review(&s.principal, &id, &req).await?))
}

/// The inquiries of a sheet, each with the item changes since it was asked.
#[utoipa::path(get, path = "/api/v1/sheets/{id}/inquiries", tag = "review",
    params(("id" = String, Path, description = "sheet id")),
    responses((status = 200, body = Vec<InquiryDetail>), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)), security(("bearer" = [])))]
async fn inquiries(
    State(node): State<AppState>,
    s: ApiSession,
    Path(id): Path<String>,
) -> Result<Json<Vec<InquiryDetail>>, ApiError> {
    Ok(Json(node.sheet_inquiries(&s.principal, &id).await?))
}

/// Asks the hospital about items of the sheet (照会).
#[utoipa::path(post, path = "/api/v1/sheets/{id}/inquiries", tag = "review",
    request_body = AskInquiry, params(("id" = String, Path, description = "sheet id")),
    responses((status = 201, description = "the inquiry as stored"), (status = 403, body = ErrorBody),
        (status = 422, body = ErrorBody)), security(("bearer" = [])))]
async fn ask(
    State(node): State<AppState>,
    s: ApiSession,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<AskInquiry>,
) -> Result<(StatusCode, Json<nsdb_sync::Inquiry>), ApiError> {
    let inquiry = node
        .ask_inquiry(&s.principal, &id, &req.fields, &req.question)
        .await?;
    Ok((StatusCode::CREATED, Json(inquiry)))
}

/// The hospital answers an inquiry (doctor or clerk of the sheet's institution).
#[utoipa::path(post, path = "/api/v1/sheets/{id}/inquiries/{inquiry}/answer", tag = "review",
    request_body = AnswerInquiry, params(("id" = String, Path, description = "sheet id"),
        ("inquiry" = String, Path, description = "inquiry id")),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
async fn answer(
    State(node): State<AppState>,
    s: ApiSession,
    Path((id, inquiry)): Path<(String, String)>,
    ApiJson(req): ApiJson<AnswerInquiry>,
) -> Result<StatusCode, ApiError> {
    node.answer_inquiry(&s.principal, &id, &inquiry, &req.answer)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The municipality closes an inquiry (照会完了).
#[utoipa::path(post, path = "/api/v1/sheets/{id}/inquiries/{inquiry}/close", tag = "review",
    params(("id" = String, Path, description = "sheet id"),
        ("inquiry" = String, Path, description = "inquiry id")),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
async fn close(
    State(node): State<AppState>,
    s: ApiSession,
    Path((id, inquiry)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    node.close_inquiry(&s.principal, &id, &inquiry).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(OpenApi)]
#[openapi(
    paths(intake, record_review, inquiries, ask, answer, close),
    components(schemas(
        IntakeRow,
        IntakeState,
        ReviewInput,
        InquiryDetail,
        AskInquiry,
        AnswerInquiry
    ))
)]
pub struct ReviewApiDoc;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/intake", get(intake))
        .route("/api/v1/sheets/{id}/review", post(record_review))
        .route("/api/v1/sheets/{id}/inquiries", get(inquiries).post(ask))
        .route(
            "/api/v1/sheets/{id}/inquiries/{inquiry}/answer",
            post(answer),
        )
        .route("/api/v1/sheets/{id}/inquiries/{inquiry}/close", post(close))
}
