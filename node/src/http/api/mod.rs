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

/// The whole document: every capability module's operations, with the statuses every
/// operation of a kind answers ([`ErrorResponses`]).
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi()
        .merge_from(accounts::AccountsApiDoc::openapi())
        .merge_from(sheets::SheetsApiDoc::openapi())
        .merge_from(imports::ImportsApiDoc::openapi())
        .merge_from(review::ReviewApiDoc::openapi())
        .merge_from(keys::KeysApiDoc::openapi())
        .merge_from(sync::SyncApiDoc::openapi())
        .merge_from(papers::PapersApiDoc::openapi());
    utoipa::Modify::modify(&ErrorResponses, &mut doc);
    doc
}

async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    static DOC: std::sync::OnceLock<utoipa::openapi::OpenApi> = std::sync::OnceLock::new();
    Json(DOC.get_or_init(document).clone())
}

/// The error statuses the server answers for every operation of a kind, added wherever an
/// operation's own annotation leaves them out, so that the document lists everything the server
/// sends (a client can rely on it; CI's fuzzing run, `tests/fuzz-api.sh`, checks it). Each is an
/// [`ErrorBody`]:
/// - every operation but `health` and `openapi.json`: 429 `busy` (the node's writer is
///   overloaded), 503 `database_damaged` / `sheet_damaged` and 507 `disk_full` (every request
///   that reads patient data writes its audit entry first);
/// - an operation that needs the bearer token: 401 `unauthenticated` (no token, or an expired
///   or revoked one) and 403 (the role or institution may not, or
///   `password_change_required`);
/// - an operation with a path parameter: 404 (no such sheet, paper or inquiry, or one this
///   user may not know of);
/// - an operation that reads a JSON body: 400 `bad_json` (not JSON, or a field missing or of
///   the wrong type; a value that is readable but wrong is 422 `invalid`); one with query
///   parameters: 400 `bad_query` (a parameter that cannot be read);
/// - a multipart upload: 415 `not_multipart`;
/// - sign-in and 再認証: 429 `too_many_sign_ins` with `Retry-After` (seconds), also before the
///   token is checked while the address is throttled.
struct ErrorResponses;

impl utoipa::Modify for ErrorResponses {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder, header::HeaderBuilder};
        let error = |what: &str| {
            ResponseBuilder::new().description(what).content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ErrorBody")))
                    .build(),
            )
        };
        for (path, item) in api.paths.paths.iter_mut() {
            if path == "/api/v1/health" || path == "/api/v1/openapi.json" {
                continue;
            }
            let sign_in = path == "/api/v1/session" || path == "/api/v1/session/reauth";
            let path_parameter = path.contains('{');
            for op in [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ]
            .into_iter()
            .flatten()
            {
                let secured = op.security.as_ref().is_some_and(|s| !s.is_empty());
                let content = op
                    .request_body
                    .as_ref()
                    .map(|b| b.content.keys().cloned().collect::<Vec<_>>())
                    .unwrap_or_default();
                let mut add = |status: &str, response: ResponseBuilder| {
                    op.responses
                        .responses
                        .entry(status.to_string())
                        .or_insert_with(|| response.build().into());
                };
                let query =
                    op.parameters.iter().flatten().any(|p| {
                        matches!(p.parameter_in, utoipa::openapi::path::ParameterIn::Query)
                    });
                if content.iter().any(|c| c == "application/json") {
                    add(
                        "400",
                        error(
                            "`bad_json`: the body is not JSON, or a field is missing or of the wrong type",
                        ),
                    );
                } else if query {
                    add(
                        "400",
                        error(
                            "`bad_query`: a query parameter cannot be read (e.g. a page that is not a number)",
                        ),
                    );
                }
                if secured {
                    add(
                        "401",
                        error("`unauthenticated`: no bearer token, or one expired or revoked"),
                    );
                    add(
                        "403",
                        error(
                            "this user's role or institution may not, or `password_change_required`",
                        ),
                    );
                }
                if path_parameter {
                    add(
                        "404",
                        error("no such record, or one this user may not know of"),
                    );
                }
                if content.iter().any(|c| c == "multipart/form-data") {
                    add(
                        "415",
                        error("`not_multipart`: the body is not multipart/form-data"),
                    );
                }
                if sign_in {
                    add(
                        "429",
                        error("`too_many_sign_ins`: too many failed sign-ins from this address; retry after `Retry-After` seconds")
                            .header(
                                "Retry-After",
                                HeaderBuilder::new()
                                    .schema(
                                        utoipa::openapi::ObjectBuilder::new()
                                            .schema_type(utoipa::openapi::schema::Type::Integer),
                                    )
                                    .description(Some("seconds"))
                                    .build(),
                            ),
                    );
                } else {
                    add(
                        "429",
                        error("`busy`: the node is overloaded; try again shortly"),
                    );
                }
                add(
                    "503",
                    error(
                        "`database_damaged` or `sheet_damaged`: writes are refused until the node is restored",
                    ),
                );
                add(
                    "507",
                    error("`disk_full`: the node's disk is full; nothing was saved"),
                );
            }
        }
    }
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

#[cfg(test)]
mod tests {
    /// Every operation lists the errors the server answers for its kind: what a client reads
    /// in the document is what it gets (CI's fuzzing run checks the same against a live node).
    #[test]
    fn every_operation_documents_the_errors_of_its_kind() {
        let doc = serde_json::to_value(super::document()).unwrap();
        let paths = doc["paths"].as_object().unwrap();
        let mut checked = 0;
        for (path, item) in paths {
            for (method, op) in item.as_object().unwrap() {
                let Some(responses) = op.get("responses").and_then(|r| r.as_object()) else {
                    continue;
                };
                let has = |s: &str| responses.contains_key(s);
                let at = format!("{method} {path}");
                if op
                    .get("security")
                    .is_some_and(|s| !s.as_array().unwrap().is_empty())
                {
                    assert!(has("401") && has("403"), "{at}");
                }
                if path.contains('{') {
                    assert!(has("404"), "{at}");
                }
                // A path parameter is one the path names; everything else is a query, which
                // may be unreadable (400).
                for param in op["parameters"].as_array().into_iter().flatten() {
                    let name = param["name"].as_str().unwrap();
                    let named = path.contains(&format!("{{{name}}}"));
                    assert_eq!(param["in"] == "path", named, "{at}: parameter {name}");
                    if param["in"] == "query" {
                        assert!(has("400"), "{at}");
                    }
                }
                let body = op["requestBody"]["content"].as_object();
                if body.is_some_and(|c| c.contains_key("application/json")) {
                    assert!(has("400"), "{at}");
                }
                if body.is_some_and(|c| c.contains_key("multipart/form-data")) {
                    assert!(has("415"), "{at}");
                    let schema = &body.unwrap()["multipart/form-data"]["schema"];
                    assert!(
                        schema.get("$ref").is_some(),
                        "{at}: the parts are described"
                    );
                }
                if path != "/api/v1/health" && path != "/api/v1/openapi.json" {
                    assert!(has("429") && has("503") && has("507"), "{at}");
                }
                checked += 1;
            }
        }
        assert!(checked >= 27, "{checked} operations");
        let session = &doc["paths"]["/api/v1/session"]["post"]["responses"]["429"];
        assert!(session["headers"].get("Retry-After").is_some(), "{session}");
        let pdf = &doc["paths"]["/api/v1/papers/{id}/pdf"]["get"]["responses"]["200"];
        let schema = &pdf["content"]["application/pdf"]["schema"];
        assert!(schema.to_string().contains("PdfFile"), "{schema}");
        let file = &doc["components"]["schemas"]["PdfFile"];
        assert_eq!(file["format"], "binary", "{file}");
    }
}
