//! The JSON API's error body and request extractor, shared by every API module: errors are
//! `{"error": {"code", "message"}}`, and a malformed body is such an error, never axum's text.
//! Must never hold a handler or decide access.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::Error;

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
            Error::Busy => (StatusCode::TOO_MANY_REQUESTS, "busy"),
            Error::TotpRequired => (StatusCode::UNAUTHORIZED, "totp_required"),
            Error::ReauthRequired => (StatusCode::UNAUTHORIZED, "reauth_required"),
            Error::SetupRequired(pending) => (StatusCode::FORBIDDEN, pending.code()),
            Error::Denied(_) => (StatusCode::FORBIDDEN, "forbidden"),
            Error::UnknownForm(_) | Error::SheetNotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            Error::UnknownItems(_) => (StatusCode::UNPROCESSABLE_ENTITY, "unknown_items"),
            Error::Invalid(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid"),
            Error::NoKeyBlock => (StatusCode::CONFLICT, "no_key_block"),
            Error::KeysAwaitHub => (StatusCode::CONFLICT, "keys_await_hub"),
            Error::Store(crate::store::StoreError::Damaged(_)) => {
                (StatusCode::SERVICE_UNAVAILABLE, "database_damaged")
            }
            Error::Store(crate::store::StoreError::DiskFull) => {
                tracing::error!(target: "nsdb::http", "the disk is full: writes are refused");
                (StatusCode::INSUFFICIENT_STORAGE, "disk_full")
            }
            Error::DamagedSheet(_) => (StatusCode::SERVICE_UNAVAILABLE, "sheet_damaged"),
            Error::Document { .. } | Error::Store(_) | Error::Research(_) => {
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
        let why = match &r {
            JsonRejection::JsonDataError(_) => {
                "項目が足りないか、項目の型が違います（API の仕様を確認してください）"
            }
            JsonRejection::JsonSyntaxError(_) => "JSON の形式ではありません",
            JsonRejection::MissingJsonContentType(_) => {
                "Content-Type: application/json で送ってください"
            }
            _ => "本文を読めません",
        };
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_json",
            format!("リクエストの JSON が読めません: {why}"),
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

/// `multipart/form-data` extractor whose rejection is an `ApiError` (415 with the content type
/// to use, instead of axum's plain-text 400).
pub struct ApiMultipart(pub axum::extract::Multipart);

impl<S> axum::extract::FromRequest<S> for ApiMultipart
where
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        axum::extract::Multipart::from_request(req, state)
            .await
            .map(ApiMultipart)
            .map_err(|r| {
                ApiError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "not_multipart",
                    format!(
                        "multipart/form-data で送ってください（ファイルごとにファイル名を付けたパート）。{}",
                        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
                            "本文が大きすぎます。"
                        } else {
                            ""
                        }
                    ),
                )
            })
    }
}

/// Query-string extractor whose rejection is an `ApiError` (400 naming the parameter).
pub struct ApiQuery<T>(pub T);

impl<T, S> axum::extract::FromRequestParts<S> for ApiQuery<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(v)| ApiQuery(v))
            .map_err(|_| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "bad_query",
                    "検索条件が読めません（項目の名前と値を確認してください）".to_string(),
                )
            })
    }
}
