//! Access keys on screen: 臨個票連携 at a hospital (`GET`/`POST /linkage`: the key a
//! transferring patient brings and the birth date, the result row with 閲覧 / 更新登録 /
//! データ出力, the keys resolved here before) and the municipality's resolution from the
//! intake list (`POST /intake/resolve`, redirecting to `/intake`).
//!
//! Handlers translate between the request and `sync_service::resolve` /
//! `sync_service::resolutions`; they decide nothing about access themselves. What was typed is
//! never lost: a failed search shows it again with the reason.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};

use crate::http::AppState;
use crate::http::shared::page::done_then;
use crate::http::shared::page::{
    Ctx, application_label, error_page, posted_form, registration_label, sex_label, slash_date,
};
use crate::http::shared::session::UiSession;
use crate::keys::AccessKey;
use crate::sheets::status;
use crate::sync_service::{self, ResolveError, ResolvedSheet};

fn line(s: &ResolvedSheet, arrived: bool) -> nsdb_ui::linkage::LinkageLine {
    let insurance = match (&s.insurer_no, &s.insured_no) {
        (None, None) => String::new(),
        (a, b) => format!(
            "{} / {}",
            a.as_deref().unwrap_or(""),
            b.as_deref().unwrap_or("")
        ),
    };
    // As the sheet list names it: 告示番号(-枝番), or a 小慢 form's 疾患群・疾病番号 (never 0).
    let disease = if s.form_id.is_empty() && s.kokuji == 0 {
        s.disease.clone()
    } else {
        format!(
            "{} / {}",
            nsdb_rules::form::disease_number(&s.form_id, s.kokuji, s.eda),
            s.disease
        )
    };
    nsdb_ui::linkage::LinkageLine {
        sheet_id: s.sheet_id.clone(),
        application_type: application_label(s.application_type.as_deref()),
        insurance,
        access_key: AccessKey::shown(&s.access_key),
        name_kana: s.name_kana.clone().unwrap_or_default(),
        birth_date: slash_date(s.birth_date.as_deref()),
        sex: sex_label(s.sex.as_deref()),
        disease,
        doctor_name: s.doctor_name.clone().unwrap_or_default(),
        written_date: slash_date(s.written_date.as_deref()),
        linked_date: slash_date(s.linked_date.as_deref()),
        status: format!(
            "{} / {}",
            status::label(&s.status),
            registration_label(&s.registration)
        ),
        arrived,
    }
}

async fn page(
    node: &crate::Node,
    s: &UiSession,
    mut view: nsdb_ui::linkage::LinkageView,
) -> Response {
    let ctx = Ctx::new(node, s);
    let earlier = match sync_service::resolutions(node, &s.principal, 50).await {
        Ok(rows) => rows,
        Err(e) => return error_page(Some(&ctx), e),
    };
    let found_id = view.found.as_ref().map(|f| f.sheet_id.clone());
    view.earlier = earlier
        .iter()
        .filter(|r| Some(&r.sheet_id) != found_id.as_ref())
        .map(|r| match &r.sheet {
            Some(sheet) => line(sheet, true),
            None => nsdb_ui::linkage::LinkageLine {
                sheet_id: r.sheet_id.clone(),
                access_key: AccessKey::shown(&r.access_key),
                ..Default::default()
            },
        })
        .collect();
    Html(nsdb_ui::linkage::linkage_page(&ctx.page(), &view).into_string()).into_response()
}

/// 臨個票連携 is the hospital's (and a clinic's on the hub): who may renew from a sheet resolved
/// by key. A municipality resolves at 受付 instead; anyone else is refused here.
fn hospital_only(node: &crate::Node, s: &UiSession) -> Option<Response> {
    use crate::accounts::policy::{Action, role_may};
    (!role_may(s.principal.role(), Action::CarryForward)).then(|| {
        error_page(
            Some(&Ctx::new(node, s)),
            crate::Error::Denied(crate::accounts::policy::Denied),
        )
    })
}

async fn linkage_page(State(node): State<AppState>, s: UiSession) -> Response {
    if let Some(refused) = hospital_only(&node, &s) {
        return refused;
    }
    page(&node, &s, Default::default()).await
}

async fn linkage_search(State(node): State<AppState>, s: UiSession, body: Bytes) -> Response {
    if let Some(refused) = hospital_only(&node, &s) {
        return refused;
    }
    let ctx = Ctx::new(&node, &s);
    let fields = match posted_form(&body, &s.csrf, Some(&ctx)) {
        Ok(f) => f,
        Err(page) => return *page,
    };
    let key = fields.get("access_key").cloned().unwrap_or_default();
    let birth = fields.get("birth_date").cloned().unwrap_or_default();
    let mut view = nsdb_ui::linkage::LinkageView {
        access_key: key.clone(),
        birth_date: birth.clone(),
        ..Default::default()
    };
    match sync_service::resolve(&node, &s.principal, &key, &birth).await {
        Ok(r) => view.found = Some(line(&r.sheet, r.arrived)),
        Err(ResolveError::Node(e)) => return error_page(Some(&ctx), e),
        Err(e) => view.problem = Some(e.to_string()),
    }
    page(&node, &s, view).await
}

/// The municipality's 受付 by key: on success to `/intake` with the result as the session's
/// one-time notice; otherwise back
/// to `/intake` with what was typed and the reason (`access_key`, `birth_date`, `error`).
async fn intake_resolve(State(node): State<AppState>, s: UiSession, body: Bytes) -> Response {
    let ctx = Ctx::new(&node, &s);
    let fields = match posted_form(&body, &s.csrf, Some(&ctx)) {
        Ok(f) => f,
        Err(page) => return *page,
    };
    let key = fields.get("access_key").cloned().unwrap_or_default();
    let birth = fields.get("birth_date").cloned().unwrap_or_default();
    match sync_service::resolve(&node, &s.principal, &key, &birth).await {
        Ok(r) => {
            let key = crate::keys::AccessKey::shown(&r.sheet.access_key);
            let text = if r.arrived {
                format!("アクセスキー {key} を受け付けました。")
            } else {
                format!(
                    "アクセスキー {key} を受け付けました。臨床調査個人票は同期で届きます（状態「未着」）。"
                )
            };
            done_then(&node, &s, "/intake", text).await
        }
        Err(ResolveError::Node(e)) => error_page(Some(&ctx), e),
        // The page again, with what was typed and why: never a redirect, which would put the
        // key and the birth date into the address bar and the browser's history.
        Err(e) => {
            let q = crate::http::ui::review::IntakeQuery {
                resolved: None,
                error: Some(e.to_string()),
                access_key: Some(key),
                birth_date: Some(birth),
            };
            crate::http::ui::review::intake_page(&node, &s, q).await
        }
    }
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/linkage", get(linkage_page).post(linkage_search))
        .route("/intake/resolve", post(intake_resolve))
}
