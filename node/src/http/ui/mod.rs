//! The Japanese web UI: one module per capability (`accounts`, `users`, `sheets`, `imports`, `keys`, `review`, `papers`, `sync`, `research`, `monitor`), the static
//! assets, the home redirect and the not-found page.
//!
//! Every state-changing request is a POST carrying the session's CSRF token (the sign-in form
//! carries a token bound to a cookie instead). Handlers translate between form fields and domain
//! calls and choose the view; they decide nothing about access themselves.

pub mod accounts;
pub mod doctors;
pub mod imports;
pub mod keys;
pub mod monitor;
pub mod papers;
pub mod research;
pub mod review;
pub mod sheets;
pub mod sync;
pub mod terminals;
pub mod users;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

use crate::accounts::policy::Role;
use crate::http::AppState;
use crate::http::shared::session::UiSession;

async fn home(s: UiSession) -> Redirect {
    match s.principal.role() {
        Role::Admin if s.principal.responsible => Redirect::to("/admin/users"),
        // An account of kind 責任者 that handed the role over: what is left to it.
        Role::Admin => Redirect::to("/monitor"),
        Role::Reviewer => Redirect::to("/intake"),
        Role::PaperEntry => Redirect::to("/papers"),
        _ => Redirect::to("/sheets"),
    }
}

async fn stylesheet() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        nsdb_ui::STYLESHEET,
    )
}

async fn script() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        nsdb_ui::SCRIPT,
    )
}

/// An unknown address: the status only; `shared::page::bare_errors` renders the page, inside
/// the layout for a signed-in user.
async fn not_found() -> Response {
    StatusCode::NOT_FOUND.into_response()
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(home))
        .route("/static/app.css", get(stylesheet))
        .route("/static/app.js", get(script))
        .merge(accounts::routes())
        .merge(users::routes())
        .merge(terminals::routes())
        .merge(doctors::routes())
        .merge(sheets::routes())
        .merge(imports::routes())
        .merge(review::routes())
        .merge(papers::routes())
        .merge(keys::routes())
        .merge(sync::routes())
        .merge(research::routes())
        .merge(monitor::routes())
        .fallback(not_found)
}
