//! HTTP: the Japanese web UI (`ui`) and the JSON API under `/api/v1` (`api`), one router.
//!
//! `ui` and `api` have one module per capability (accounts, sheets, sync), mirroring the domain
//! modules; what they share (session extractors, page context, error pages, form parsing with
//! CSRF, JSON errors) is in `shared`, which no capability module is imported by. Nothing outside
//! `http` imports it except the command line (which serves the router) and test support.
//!
//! Handlers stay thin: extract, call a domain function on `Node`, render. Every response
//! carries a strict Content-Security-Policy and no-store caching; request logs carry method,
//! path and status only (never query strings or bodies, which can hold personal data).

pub mod api;
pub mod shared;
pub mod ui;

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::{self, Next};
use axum::response::Response;

use crate::Node;

/// The state every handler receives.
pub type AppState = Arc<Node>;

const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self' data:; script-src 'self'; \
    form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

async fn security_headers(State(node): State<AppState>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    // The route template (`/sheets/{id}`), never the path, labels the metrics.
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |m| m.as_str())
        .to_string();
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    tracing::info!(
        target: "nsdb::http",
        %method,
        path,
        status = res.status().as_u16(),
        ms = started.elapsed().as_secs_f64() * 1000.0,
    );
    node.metrics.request(
        &route,
        method.as_str(),
        res.status().as_u16(),
        started.elapsed(),
    );
    res
}

/// The whole HTTP surface of a node.
pub fn router(node: Arc<Node>) -> Router {
    Router::new()
        .merge(ui::routes())
        .merge(api::routes())
        .layer(middleware::from_fn_with_state(
            node.clone(),
            shared::page::bare_errors,
        ))
        .layer(middleware::from_fn_with_state(
            node.clone(),
            shared::page::audit_csrf_refusals,
        ))
        .layer(middleware::from_fn_with_state(
            (
                node.clone(),
                Arc::new(shared::sign_in_limit::SignInLimit::default()),
            ),
            shared::sign_in_limit::limit,
        ))
        .layer(middleware::from_fn_with_state(
            node.clone(),
            security_headers,
        ))
        .with_state(node)
}

/// The metrics listener's whole surface: `GET /metrics` (OpenMetrics text). Served apart from
/// the UI (`metrics_listen` in the config, loopback by default), without sessions: whoever can
/// reach the listener can read the figures, which hold no personal data.
pub fn metrics_router(node: Arc<Node>) -> Router {
    use axum::routing::get;
    async fn metrics(State(node): State<AppState>) -> Response {
        use axum::response::IntoResponse;
        match node.metrics_text().await {
            Ok(text) => (
                [(
                    header::CONTENT_TYPE,
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                )],
                text,
            )
                .into_response(),
            Err(e) => {
                tracing::warn!(target: "nsdb::http", error = %e, "metrics could not be read");
                axum::http::StatusCode::SERVICE_UNAVAILABLE.into_response()
            }
        }
    }
    Router::new()
        .route("/metrics", get(metrics))
        .with_state(node)
}
