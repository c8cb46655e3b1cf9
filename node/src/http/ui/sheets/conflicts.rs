//! A sheet's conflicts on screen: the panel that shows each item changed on two nodes while
//! apart, and the doctor's pick of one value (`POST /sheets/{id}/conflicts`, with CSRF).
//!
//! Handlers stay thin: they call `Node::sheet_conflicts` / `Node::resolve_conflict` and render;
//! they never decide access themselves.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::post;

use crate::accounts::policy::Role;
use crate::http::AppState;
use crate::http::shared::page::{Ctx, error_page, jst_seconds, posted_form};
use crate::http::shared::session::UiSession;
use crate::{Error, Node};

/// The conflict panel of a sheet for the signed-in user, or `None` when there is nothing to
/// show (or the user may not see the sheet).
pub(crate) async fn conflict_panel(
    node: &Node,
    s: &UiSession,
    sheet_id: &str,
    form: &nsdb_rules::FormDef,
    from_editor: bool,
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
        from_editor,
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
                            // A cleared item is one of the values: shown as such.
                            display: if c.value.is_empty() {
                                "（空欄にする）".to_string()
                            } else {
                                item.map_or_else(
                                    || c.value.clone(),
                                    |i| nsdb_ui::editor::display_value(i, &c.value),
                                )
                            },
                            value: c.value,
                            who: c.who,
                            place: c.place,
                            when: jst_seconds(c.at_ms),
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
        Ok(()) => {
            let page = if fields.get("back").is_some_and(|b| b == "edit") {
                "/edit"
            } else {
                ""
            };
            Redirect::to(&format!("/sheets/{id}{page}")).into_response()
        }
        Err(e) => error_page(Some(&ctx), e),
    }
}

pub fn routes() -> Router<AppState> {
    Router::new().route("/sheets/{id}/conflicts", post(resolve))
}
