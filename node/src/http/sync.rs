//! HTTP of sync: the status page (`/sync`), the same as JSON (`/api/v1/sync/status`), and the
//! form that resolves a conflict on a sheet (`POST /sheets/{id}/conflicts`, with CSRF).
//!
//! Handlers stay thin: they read the sync status or call `Node::resolve_conflict` and render.
//! They never decide access themselves and never show a sheet's values outside the sheet view.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use utoipa::OpenApi;

use super::AppState;
use super::session::{ApiSession, UiSession};
use super::ui::{Ctx, error_page, posted_form};
use crate::policy::Role;
use crate::sync_service::{SessionFigures, SyncErrorLine, SyncStatus};
use crate::{Error, Node};

fn format_ms(ms: Option<i64>) -> String {
    ms.map(|ms| super::sheet_ui::jst(ms, true))
        .unwrap_or_else(|| "—".into())
}

fn status_view(s: &SyncStatus) -> nsdb_ui::conflicts::SyncStatusView {
    nsdb_ui::conflicts::SyncStatusView {
        mode: match s.mode.as_str() {
            "hub" => "ハブ（各ノードからの同期を受け付け）".into(),
            "node" => "ノード（ハブと同期）".into(),
            _ => "同期なし（未登録）".into(),
        },
        connected: s.connected,
        address: s.address.clone().unwrap_or_default(),
        last_success: format_ms(s.last_success_ms),
        last_attempt: format_ms(s.last_attempt_ms),
        waiting: s.waiting,
        sessions: s.sessions,
        last_session: s
            .last_session
            .map(|f| {
                vec![
                    ("送信した文書".into(), f.documents_sent.to_string()),
                    ("受信した文書".into(), f.documents_received.to_string()),
                    ("拒否した文書".into(), f.refused.to_string()),
                    ("送信バイト数".into(), f.bytes_sent.to_string()),
                    ("受信バイト数".into(), f.bytes_received.to_string()),
                ]
            })
            .unwrap_or_default(),
        errors: s
            .errors
            .iter()
            .map(|e| (format_ms(Some(e.at_ms)), e.message.clone()))
            .collect(),
    }
}

async fn status_page(State(node): State<AppState>, s: UiSession) -> Response {
    let ctx = super::ui::Ctx::new(&node, &s);
    let view = status_view(&node.sync.status());
    Html(nsdb_ui::conflicts::sync_status(&ctx.page(), &view).into_string()).into_response()
}

/// Sync status of this node: connected or not, last successful sync, documents waiting, errors.
#[utoipa::path(get, path = "/api/v1/sync/status", tag = "sync",
    responses((status = 200, body = SyncStatus), (status = 401)), security(("bearer" = [])))]
pub async fn sync_status(State(node): State<AppState>, _s: ApiSession) -> Json<SyncStatus> {
    Json(node.sync.status())
}

#[derive(OpenApi)]
#[openapi(
    paths(sync_status),
    components(schemas(SyncStatus, SessionFigures, SyncErrorLine))
)]
pub struct SyncApiDoc;

/// The conflict panel of a sheet for the signed-in user, or `None` when there is nothing to
/// show (or the user may not see the sheet).
pub(crate) async fn conflict_panel(
    node: &Node,
    s: &UiSession,
    sheet_id: &str,
    form: &nsdb_rules::FormDef,
) -> Option<nsdb_ui::conflicts::ConflictPanel> {
    let lines = node.sheet_conflicts(&s.principal, sheet_id).await.ok()?;
    if lines.is_empty() {
        return None;
    }
    let can_resolve = s.principal.role() == Role::Doctor;
    Some(nsdb_ui::conflicts::ConflictPanel {
        sheet_id: sheet_id.to_string(),
        csrf: s.csrf.clone(),
        can_resolve,
        items: lines
            .into_iter()
            .map(|line| {
                let item = form.item(&line.field);
                nsdb_ui::conflicts::ConflictItem {
                    label: item.map_or_else(|| line.field.clone(), |i| i.label.clone()),
                    choices: line
                        .values
                        .into_iter()
                        .map(|c| nsdb_ui::conflicts::ConflictChoice {
                            display: item.map_or_else(
                                || c.value.clone(),
                                |i| nsdb_ui::editor::display_value(i, &c.value),
                            ),
                            value: c.value,
                            who: c.who,
                            place: c.place,
                            when: format_ms(c.at_ms),
                        })
                        .collect(),
                    field: line.field,
                }
            })
            .collect(),
    })
}

/// A doctor's pick of one of a conflict's values, posted from the sheet view.
async fn resolve(
    State(node): State<AppState>,
    s: UiSession,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let ctx = Ctx::new(&node, &s);
    let fields = match posted_form(&body, &s.csrf, Some(&ctx)) {
        Ok(f) => f,
        Err(refused) => return *refused,
    };
    let (Some(field), Some(value)) = (fields.get("field"), fields.get("value")) else {
        return error_page(
            Some(&ctx),
            Error::Invalid("採用する値が選ばれていません。".into()),
        );
    };
    match node.resolve_conflict(&s.principal, &id, field, value).await {
        Ok(()) => Redirect::to(&format!("/sheets/{id}")).into_response(),
        Err(e) => error_page(Some(&ctx), e),
    }
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/sync", get(status_page))
        .route("/api/v1/sync/status", get(sync_status))
        .route("/sheets/{id}/conflicts", post(resolve))
}
