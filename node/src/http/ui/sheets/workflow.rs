//! The workflow's own screens: the workflow list (ワークフロー), a sheet's history (履歴) and
//! 一括承認. Steps taken from the editor are in `editor`.

use std::collections::BTreeMap;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};

use super::editor::title;
use crate::Error;
use crate::http::AppState;
use crate::http::shared::page::{Ctx, csrf_ok, csrf_refused, error_page, format_ms};
use crate::http::shared::session::UiSession;
use crate::sheets::status;
use crate::sheets::workflow::Offered;

async fn bulk_approve(State(node): State<AppState>, s: UiSession, body: Bytes) -> Response {
    let ctx = Ctx::new(&node, &s);
    let pairs: Vec<(String, String)> = match serde_urlencoded::from_bytes(&body) {
        Ok(p) => p,
        Err(e) => {
            return error_page(
                Some(&ctx),
                Error::Invalid(format!("送信内容を読み取れません: {e}")),
            );
        }
    };
    let csrf: BTreeMap<String, String> =
        pairs.iter().filter(|(k, _)| k == "csrf").cloned().collect();
    if !csrf_ok(&csrf, &s.csrf) {
        return csrf_refused();
    }
    let ids: Vec<String> = pairs
        .into_iter()
        .filter(|(k, _)| k == "id")
        .map(|(_, v)| v)
        .collect();
    if ids.is_empty() {
        return error_page(
            Some(&ctx),
            Error::Invalid("承認する臨床調査個人票・医療意見書にチェックを付けてください。".into()),
        );
    }
    let outcome = match node.bulk_approve(&s.principal, &ids).await {
        Ok(o) => o,
        Err(e) => return error_page(Some(&ctx), e),
    };
    let mut lines = Vec::with_capacity(outcome.len());
    for (id, result) in outcome {
        let who = match node.get_sheet(&s.principal, &id).await {
            Ok(d) => d.row.name_kana.unwrap_or_else(|| "（氏名未入力）".into()),
            Err(_) => id.clone(),
        };
        lines.push((id, who, result));
    }
    Html(nsdb_ui::workflow::bulk_result(&ctx.page(), &lines).into_string()).into_response()
}

/// The questions of a 照会 row: who asked (the municipality and the reviewer, from the
/// document, never this node's user of the same id), the question and the items' labels.
fn asked(
    node: &crate::Node,
    i: &crate::sheets::workflow::WorkflowItem,
) -> Vec<nsdb_ui::workflow::AskedQuestion> {
    let form = node.catalogue.form(&i.row.form_id);
    i.waiting_inquiries
        .iter()
        .map(|w| (&w.inquiry, w.municipality_name.as_deref()))
        .map(|(q, place)| nsdb_ui::workflow::AskedQuestion {
            id: q.id.clone(),
            asked_by: match place {
                Some(place) => format!("{place}（{}） {}", q.municipality, q.asked_by),
                None => format!("自治体 {} {}", q.municipality, q.asked_by),
            },
            asked_at: format_ms(q.asked_ms),
            short: nsdb_ui::workflow::shortened(&q.question, QUESTION_CHARS),
            full: q.question.clone(),
            items: q
                .fields
                .iter()
                .map(|f| {
                    form.and_then(|form| form.item(f))
                        .map(|item| item.label.clone())
                        .unwrap_or_else(|| f.clone())
                })
                .collect::<Vec<_>>()
                .join("、"),
        })
        .collect()
}

/// How much of a question the workflow list shows (the rest on hover and on the sheet view).
const QUESTION_CHARS: usize = 40;

async fn workflow_list(State(node): State<AppState>, s: UiSession) -> Response {
    let ctx = Ctx::new(&node, &s);
    let list = match node.workflow_list(&s.principal).await {
        Ok(l) => l,
        Err(e) => return error_page(Some(&ctx), e),
    };
    let lines =
        |items: &[crate::sheets::workflow::WorkflowItem]| -> Vec<nsdb_ui::workflow::WorkflowLine> {
            items
                .iter()
                .map(|i| nsdb_ui::workflow::WorkflowLine {
                    id: i.row.id.clone(),
                    // A 照会 row is dated by its latest question.
                    at: format_ms(
                        i.waiting_inquiries
                            .iter()
                            .map(|w| w.inquiry.asked_ms)
                            .max()
                            .unwrap_or(i.at_ms),
                    ),
                    patient: i.row.name.clone().unwrap_or_default(),
                    written: i
                        .row
                        .written_date
                        .clone()
                        .unwrap_or_default()
                        .replace('-', "/"),
                    disease: i.row.disease.clone(),
                    from: i.from_name.clone(),
                    comment: i.comment.clone().unwrap_or_default(),
                    inquiry: if i.row.open_inquiries > 0 {
                        format!("照会 {}件", i.row.open_inquiries)
                    } else {
                        String::new()
                    },
                    questions: asked(&node, i),
                })
                .collect()
        };
    let page = nsdb_ui::workflow::workflow_list(
        &ctx.page(),
        &lines(&list.waiting),
        &lines(&list.sent),
        &lines(&list.inquiries),
    );
    Html(page.into_string()).into_response()
}

fn step_label(action: &str) -> &str {
    match action {
        "request" => "確認依頼",
        "pullback" => "引戻",
        "return" => "差戻し",
        "register" => "登録",
        "approve" => "承認",
        "release" => "解除",
        "carry" => "更新登録",
        "reopen" => "登録後の修正",
        "amend" => "修正",
        other => other,
    }
}

async fn history(State(node): State<AppState>, s: UiSession, Path(id): Path<String>) -> Response {
    let ctx = Ctx::new(&node, &s);
    let d = match node.get_sheet(&s.principal, &id).await {
        Ok(d) => d,
        Err(e) => return error_page(Some(&ctx), e),
    };
    let events = match node.workflow_history(&s.principal, &id).await {
        Ok(e) => e,
        Err(e) => return error_page(Some(&ctx), e),
    };
    let mut lines: Vec<nsdb_ui::workflow::HistoryLine> = events
        .iter()
        .map(|e| {
            let mut route = format!("{} {}", e.actor_name, e.actor_kind.label());
            if let Some(to) = &e.assignee_name {
                route.push_str(" → ");
                route.push_str(to);
                if let Some(k) = e.assignee_kind {
                    route.push(' ');
                    route.push_str(k.label());
                }
            }
            nsdb_ui::workflow::HistoryLine {
                at: format_ms(e.at_ms),
                route,
                action: step_label(&e.action).to_string(),
                status: status::label(&e.status).to_string(),
                comment: e.comment.clone().unwrap_or_default(),
            }
        })
        .collect();
    // A node that took none of the steps (the municipality, the hub): as the document
    // records them.
    if lines.is_empty() {
        lines = match node.logged_steps(&s.principal, &id).await {
            Ok(steps) => steps
                .into_iter()
                .map(|st| nsdb_ui::workflow::HistoryLine {
                    at: format_ms(st.at_ms),
                    route: st.by,
                    action: st.action.to_string(),
                    status: status::label(st.status).to_string(),
                    comment: st.comment,
                })
                .collect(),
            Err(e) => return error_page(Some(&ctx), e),
        };
    }
    let offered = Offered::for_user(&s.principal, &d.row);
    let page = nsdb_ui::workflow::history(
        &ctx.page(),
        &title(&node, &d),
        &id,
        &lines,
        offered.pull_back,
        offered.edit,
    );
    Html(page.into_string()).into_response()
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/sheets/approve", post(bulk_approve))
        .route("/sheets/{id}/history", get(history))
        .route("/workflow", get(workflow_list))
}
