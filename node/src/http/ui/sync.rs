//! The sync status page (`/sync`): connected or not, last success, documents waiting, errors.
//! Never shows a sheet's values.

use axum::Router;
use axum::extract::State;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;

use crate::http::AppState;
use crate::http::shared::page::{Ctx, jst_seconds};
use crate::http::shared::session::UiSession;
use crate::sync_service::SyncStatus;

fn status_view(s: &SyncStatus) -> nsdb_ui::conflicts::SyncStatusView {
    nsdb_ui::conflicts::SyncStatusView {
        mode: match s.mode.as_str() {
            "hub" => "ハブ（各ノードからの同期を受け付け）".into(),
            "node" => "ノード（ハブと同期）".into(),
            _ => "同期なし（未登録）".into(),
        },
        connected: s.connected,
        address: s.address.clone().unwrap_or_default(),
        last_success: jst_seconds(s.last_success_ms),
        last_attempt: jst_seconds(s.last_attempt_ms),
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
        set_aside: s
            .set_aside
            .iter()
            .map(|a| nsdb_ui::conflicts::SetAsideView {
                sheet_id: a.sheet.clone(),
                reason: a.reason.clone(),
                since: jst_seconds(Some(a.since_ms)),
                attempts: a.attempts,
                next_retry: jst_seconds(Some(a.next_retry_ms)),
            })
            .collect(),
        refused: s.refused.clone(),
        errors: s
            .errors
            .iter()
            .map(|e| (jst_seconds(Some(e.at_ms)), e.message.clone()))
            .collect(),
    }
}

async fn status_page(State(node): State<AppState>, s: UiSession) -> Response {
    let ctx = Ctx::new(&node, &s);
    let view = status_view(&crate::sync_service::status_for(&node, &s.principal).await);
    Html(nsdb_ui::conflicts::sync_status(&ctx.page(), &view).into_string()).into_response()
}

pub fn routes() -> Router<AppState> {
    Router::new().route("/sync", get(status_page))
}
