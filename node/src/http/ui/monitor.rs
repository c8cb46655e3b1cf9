//! 利用状況の監視 on screen: the alert list (`GET /monitor`) with 確認済み
//! (`POST /monitor/{id}/acknowledge`), for the 責任者 and the ministry; and the ministry's
//! exceptional access to an identified sheet (`GET`/`POST /sheets/{id}/identified`: the reason
//! form, then the sheet). Handlers translate to `Node::alerts`, `acknowledge_alert` and
//! `open_identified`, which decide access and audit; never decide access here.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};

use crate::Error;
use crate::accounts::policy::{Action, Denied, role_may};
use crate::http::AppState;
use crate::http::shared::page::{Ctx, error_page, format_ms, posted_form};
use crate::http::shared::session::UiSession;
use crate::monitor::Alert;
use crate::sheets::identified::{IDENTIFIED_ACCESS_MS, REASON_MAX_CHARS};

fn line(a: Alert) -> nsdb_ui::monitor::AlertLine {
    let subject = match (&a.login, a.user_id, &a.node, a.remote_user) {
        (Some(login), Some(id), _, _) => format!("{login}（ID {id}）"),
        (None, Some(id), _, _) => format!("ID {id}"),
        (_, None, Some(node), Some(user)) => format!("ノード {node}／利用者ID {user}"),
        (_, None, Some(node), None) => format!("ノード {node}"),
        _ => "このノード（運用者）".into(),
    };
    nsdb_ui::monitor::AlertLine {
        id: a.id,
        raised: format_ms(a.raised_at_ms),
        rule: a.rule_label,
        subject,
        count: format!("{}件（基準 {}件）", a.count, a.threshold),
        window: format!(
            "{} 〜 {}",
            format_ms(a.window_start_ms),
            format_ms(a.window_end_ms)
        ),
        state: match (a.acknowledged_by, a.acknowledged_at_ms) {
            (Some(by), Some(at)) => format!("確認済み（ID {by}、{}）", format_ms(at)),
            _ => "未確認".into(),
        },
        acknowledged: a.acknowledged_at_ms.is_some(),
    }
}

async fn list(State(node): State<AppState>, s: UiSession) -> Response {
    let alerts = match node.alerts(&s.principal).await {
        Ok(a) => a,
        Err(e) => return error_page(Some(&Ctx::new(&node, &s)), e),
    };
    // The context after the list: the badge counts what the list shows.
    let ctx = Ctx::new(&node, &s);
    let lines: Vec<_> = alerts.into_iter().map(line).collect();
    // The result of 確認済み comes as the session's one-time notice (in the page's context).
    Html(nsdb_ui::monitor::alerts(&ctx.page(), &lines, None).into_string()).into_response()
}

async fn acknowledge(
    State(node): State<AppState>,
    s: UiSession,
    Path(id): Path<i64>,
    body: Bytes,
) -> Response {
    if let Err(refused) = posted_form(&body, &s.csrf, Some(&Ctx::new(&node, &s))) {
        return *refused;
    }
    match node.acknowledge_alert(&s.principal, id).await {
        Ok(()) => {
            let flash = crate::accounts::Flash::text("確認済みにしました。");
            if let Err(e) = node.set_flash(&s.token, &flash).await {
                return error_page(Some(&Ctx::new(&node, &s)), e);
            }
            Redirect::to("/monitor").into_response()
        }
        Err(e) => error_page(Some(&Ctx::new(&node, &s)), e),
    }
}

/// A sheet id as it may appear in a path this module writes (ids are hex and dashes).
fn plain_id(id: &str) -> bool {
    !id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

fn reason_form(ctx: &Ctx, id: &str, reason: &str, error: Option<&str>) -> Response {
    let status = if error.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    let page = nsdb_ui::monitor::identified_form(
        &ctx.page(),
        id,
        IDENTIFIED_ACCESS_MS / 60_000,
        REASON_MAX_CHARS,
        reason,
        error,
    );
    (status, Html(page.into_string())).into_response()
}

async fn identified_form(
    State(node): State<AppState>,
    s: UiSession,
    Path(id): Path<String>,
) -> Response {
    let ctx = Ctx::new(&node, &s);
    if !role_may(s.principal.role(), Action::OpenIdentified) || !plain_id(&id) {
        return error_page(Some(&ctx), Error::Denied(Denied));
    }
    reason_form(&ctx, &id, "", None)
}

async fn open_identified(
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
    let reason = fields.get("reason").cloned().unwrap_or_default();
    match node.open_identified(&s.principal, &id, &reason).await {
        Ok(_) if plain_id(&id) => Redirect::to(&format!("/sheets/{id}")).into_response(),
        Ok(_) => error_page(Some(&ctx), Error::SheetNotFound(id)),
        Err(Error::Invalid(why)) => reason_form(&ctx, &id, &reason, Some(&why)),
        Err(e) => error_page(Some(&Ctx::new(&node, &s)), e),
    }
}

/// Where the ministry is sent when it opens an identified sheet without a live grant.
pub(crate) fn ask_reason(id: &str) -> Option<Response> {
    plain_id(id).then(|| Redirect::to(&format!("/sheets/{id}/identified")).into_response())
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/monitor", get(list))
        .route("/monitor/{id}/acknowledge", post(acknowledge))
        .route(
            "/sheets/{id}/identified",
            get(identified_form).post(open_identified),
        )
}
