//! The sheet list (検索・一覧) and starting a new sheet; the sheet's own screens are in
//! `editor`, the workflow's in `workflow`, conflicts in `conflicts`.
//!
//! Handlers translate between form fields and domain calls and choose the view; they decide
//! nothing about access themselves.

pub mod conflicts;
pub mod editor;
pub mod workflow;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, RawQuery, State};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;

use std::collections::BTreeMap;

use crate::accounts::policy::{Action, Target, authorize, role_may};
use crate::http::AppState;
use crate::http::shared::page::{
    Ctx, application_label, error_page, posted_form, registration_label, sex_label, slash_date,
};
use crate::http::shared::session::UiSession;
use crate::sheets::workflow::Offered;
use crate::sheets::{SheetQuery, SheetRow, status};

fn list_row(r: SheetRow, offered: Offered) -> nsdb_ui::ListRow {
    nsdb_ui::ListRow {
        application_type: application_label(r.application_type.as_deref()),
        insurer_no: r.insurer_no.unwrap_or_default(),
        insured_no: r.insured_no.unwrap_or_default(),
        access_key: r
            .access_key
            .as_deref()
            .map(crate::keys::AccessKey::shown)
            .unwrap_or_default(),
        name_kana: r.name_kana.unwrap_or_default(),
        birth_date: slash_date(r.birth_date.as_deref()),
        sex: sex_label(r.sex.as_deref()),
        kokuji: nsdb_rules::form::disease_number(&r.form_id, r.kokuji, r.eda),
        disease: r.disease,
        doctor_name: r.doctor_name.unwrap_or_default(),
        written_date: slash_date(r.written_date.as_deref()),
        linked_date: slash_date(r.linked_date.as_deref()),
        review_result: r
            .review_result
            .as_deref()
            .and_then(nsdb_sync::Decision::from_code)
            .map(|d| d.label().to_string())
            .unwrap_or_default(),
        inquiry: match (r.open_inquiries, r.answered_inquiries) {
            (0, 0) => String::new(),
            (0, _) => "照会回答済".into(),
            (n, _) => format!("照会 {n}件"),
        },
        status: status::label(&r.status).to_string(),
        registration: registration_label(&r.registration).to_string(),
        can_edit: offered.edit,
        can_renew: offered.renew,
        can_release: offered.release,
        can_approve: offered.approve,
        id: r.id,
    }
}

async fn sheet_list(
    State(node): State<AppState>,
    s: UiSession,
    RawQuery(raw): RawQuery,
) -> Response {
    let ctx = Ctx::new(&node, &s);
    // Read here rather than by the extractor, so that a page such as `?page=x` is refused in
    // Japanese.
    let q: SheetQuery = match serde_urlencoded::from_str(raw.as_deref().unwrap_or("")) {
        Ok(q) => q,
        Err(_) => {
            return error_page(
                Some(&ctx),
                crate::Error::Invalid(
                    "検索条件が正しくありません。頁は 1 以上の数字で指定してください。".into(),
                ),
            );
        }
    };
    let page = match node.list_sheets(&s.principal, &q).await {
        Ok(page) => page,
        Err(e) => return error_page(Some(&ctx), e),
    };
    let doctors = if role_may(s.principal.role(), Action::RequestReview) {
        node.doctors(&s.principal).await.unwrap_or_default()
    } else {
        Vec::new()
    };
    let mut diseases: Vec<(String, String)> = node
        .catalogue
        .forms()
        .iter()
        .map(|f| match f.kind {
            // A 小慢 form's 告示番号 is 0: it is chosen by its form id.
            nsdb_rules::FormKind::Iken => (f.id.clone(), format!("{} {}", f.number(), f.disease)),
            nsdb_rules::FormKind::Rinko => (
                f.kokuji.to_string(),
                format!("{} {}", f.number(), f.disease),
            ),
        })
        .collect();
    diseases.dedup();
    let rows: Vec<nsdb_ui::ListRow> = page
        .rows
        .into_iter()
        .map(|r| {
            let offered = Offered::for_user(&s.principal, &r);
            list_row(r, offered)
        })
        .collect();
    let given = |v: &Option<String>| v.clone().unwrap_or_default();
    let view = nsdb_ui::ListView {
        query: given(&q.q),
        total: page.total,
        page: page.page,
        page_size: page.page_size,
        bulk_approve: role_may(s.principal.role(), Action::Approve),
        count_limit: crate::sheets::COUNT_LIMIT,
        rows,
        filters: nsdb_ui::list::Filters {
            status: given(&q.status),
            kokuji: given(&q.kokuji),
            doctor: given(&q.doctor),
            from: given(&q.from),
            to: given(&q.to),
        },
        choices: nsdb_ui::list::FilterChoices {
            statuses: [
                status::DRAFT,
                status::REQUESTED,
                status::RETURNED,
                status::REGISTERED,
                status::APPROVED,
            ]
            .iter()
            .map(|s| (s.to_string(), status::label(s).to_string()))
            .collect(),
            diseases,
            doctors: doctors
                .into_iter()
                .map(|(id, name)| (id.to_string(), name))
                .collect(),
        },
    };
    Html(nsdb_ui::list::sheet_list(&ctx.page(), &view).into_string()).into_response()
}

/// The query of the new-sheet page (`?q=`): what was typed in the disease search.
#[derive(Debug, Default, serde::Deserialize)]
struct PickerQuery {
    #[serde(default)]
    q: String,
}

/// At most this many forms are listed on the new-sheet page at once.
const PICKER_ROWS: usize = 100;

async fn new_sheet_page(
    State(node): State<AppState>,
    s: UiSession,
    Query(query): Query<PickerQuery>,
) -> Response {
    let ctx = Ctx::new(&node, &s);
    if let Err(e) = authorize(&s.principal, Action::CreateSheet, Target::None) {
        return error_page(Some(&ctx), e.into());
    }
    let q = query.q.trim();
    let forms = node.catalogue.forms();
    let matching: std::collections::HashSet<&str> = node
        .catalogue
        .diseases()
        .iter()
        .filter(|d| !q.is_empty() && d.matches(q))
        .map(|d| d.id.as_str())
        .collect();
    let wanted = |f: &nsdb_rules::FormDef| {
        if q.is_empty() {
            f.level() != nsdb_rules::FormLevel::RecordOnly
        } else {
            // Every form is a listed disease (`Disease::matches` finds name, 別名, number and
            // id); a form file may word its disease name apart from the list.
            matching.contains(f.id.as_str()) || nsdb_rules::diseases::text_matches(&f.disease, q)
        }
    };
    let mut choices: Vec<nsdb_ui::FormChoice<'_>> = forms
        .iter()
        .filter(|f| wanted(f))
        .map(|f| nsdb_ui::FormChoice {
            id: &f.id,
            kind: f.kind.label(),
            kokuji: f.kokuji,
            eda: f.eda,
            disease: &f.disease,
            version: &f.version,
            level: f.level().label(),
            number_unverified: f.number_inferred(),
        })
        .collect();
    let more = choices.len().saturating_sub(PICKER_ROWS);
    choices.truncate(PICKER_ROWS);
    let new_id = nsdb_sync::SheetId::random().to_string();
    let picker = nsdb_ui::FormPicker {
        query: q,
        choices,
        more,
        total: forms.len(),
        new_id: &new_id,
    };
    Html(nsdb_ui::new_sheet(&ctx.page(), &picker).into_string()).into_response()
}

async fn create_sheet(State(node): State<AppState>, s: UiSession, body: Bytes) -> Response {
    let ctx = Ctx::new(&node, &s);
    let fields = match posted_form(&body, &s.csrf, Some(&ctx)) {
        Ok(f) => f,
        Err(refused) => return *refused,
    };
    let form_id = fields.get("form_id").cloned().unwrap_or_default();
    // The page's id for the new sheet makes a second send of the same page open the first
    // send's sheet; a post without one (an older page) gets a fresh id.
    let id = match fields.get("sheet").filter(|v| !v.is_empty()) {
        Some(v) => match v.parse::<nsdb_sync::SheetId>() {
            Ok(id) => id,
            Err(_) => {
                return error_page(
                    Some(&ctx),
                    crate::Error::Invalid(
                        "送信内容が正しくありません。新規作成の画面からやり直してください。".into(),
                    ),
                );
            }
        },
        None => nsdb_sync::SheetId::random(),
    };
    match node
        .create_sheet_as(&s.principal, id, &form_id, &BTreeMap::new())
        .await
    {
        Ok(d) => Redirect::to(&format!("/sheets/{}/edit", d.row.id)).into_response(),
        Err(e) => error_page(Some(&ctx), e),
    }
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/sheets", get(sheet_list).post(create_sheet))
        .route("/sheets/new", get(new_sheet_page))
        .merge(editor::routes())
        .merge(workflow::routes())
        .merge(conflicts::routes())
}
