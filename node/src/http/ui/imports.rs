//! 一括登録 on screen: the upload page with the versions, the upload of sealed files and its
//! result table, the table as CSV, and データ出力 of one sheet as XML in the published layout.
//!
//! Handlers translate between the request and `Node::import_sealed` / `Node::export_xml`; they
//! decide nothing about access themselves.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Multipart, Path, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};

use crate::http::AppState;
use crate::http::shared::page::{Ctx, csrf_ok, csrf_refused, error_page, posted_form};
use crate::http::shared::session::UiSession;
use crate::http::shared::upload::{MAX_UPLOAD_BYTES, read_upload};
use crate::imports::{ImportReport, ImportRow, TOOL_VERSION};
use crate::{Error, Node};

fn view(node: &Node, report: Option<&ImportReport>) -> nsdb_ui::imports::ImportView {
    nsdb_ui::imports::ImportView {
        tool_version: TOOL_VERSION.to_string(),
        rule_pack_version: nsdb_rules::catalogue::version_label(node.catalogue.version()),
        uploads: report
            .map(|r| {
                r.uploads
                    .iter()
                    .map(|u| {
                        format!(
                            "{}（ルールパック {}）",
                            u.tool_version,
                            nsdb_rules::catalogue::version_label(&u.rule_pack_version)
                        )
                    })
                    .collect()
            })
            .unwrap_or_default(),
        lines: report.map(|r| {
            r.rows
                .iter()
                .map(|row| nsdb_ui::imports::ImportLine {
                    patient: row.patient.clone(),
                    disease: row.disease.clone(),
                    file: row.file.clone(),
                    written_date: row.written_date.replace('-', "/"),
                    result: row.result.clone(),
                    imported: row.imported,
                    sheet_id: row.sheet_id.clone(),
                })
                .collect()
        }),
        rows_json: report
            .and_then(|r| serde_json::to_string(&r.rows).ok())
            .unwrap_or_default(),
        error: None,
    }
}

/// The 一括登録 page again with why the upload as a whole was refused, beside the file field.
fn refused(ctx: &Ctx, node: &Node, why: String) -> Response {
    let view = nsdb_ui::imports::ImportView {
        error: Some(why),
        ..view(node, None)
    };
    (
        StatusCode::UNPROCESSABLE_ENTITY,
        Html(nsdb_ui::imports::import_page(&ctx.page(), &view).into_string()),
    )
        .into_response()
}

async fn import_page(State(node): State<AppState>, s: UiSession) -> Response {
    let ctx = Ctx::new(&node, &s);
    // Only those who write sheets import them: nobody else is shown a form they cannot use.
    if let Err(denied) = crate::accounts::policy::authorize(
        &s.principal,
        crate::accounts::policy::Action::CreateSheet,
        crate::accounts::policy::Target::None,
    ) {
        return error_page(Some(&ctx), denied.into());
    }
    Html(nsdb_ui::imports::import_page(&ctx.page(), &view(&node, None)).into_string())
        .into_response()
}

async fn upload(State(node): State<AppState>, s: UiSession, multipart: Multipart) -> Response {
    let ctx = Ctx::new(&node, &s);
    let up = match read_upload(multipart).await {
        Ok(up) => up,
        Err(m) => return refused(&ctx, &node, m),
    };
    if !csrf_ok(&up.fields, &s.csrf) {
        return csrf_refused();
    }
    if up.files.is_empty() {
        return refused(&ctx, &node, "ファイルを選んでください。".into());
    }
    match node.import_sealed(&s.principal, up.files).await {
        Ok(report) => Html(
            nsdb_ui::imports::import_page(&ctx.page(), &view(&node, Some(&report))).into_string(),
        )
        .into_response(),
        Err(Error::Invalid(why)) => refused(&ctx, &node, why),
        Err(e) => error_page(Some(&ctx), e),
    }
}

/// The result table posted back from the page, as CSV (UTF-8 with BOM).
async fn result_csv(State(node): State<AppState>, s: UiSession, body: Bytes) -> Response {
    let ctx = Ctx::new(&node, &s);
    let fields = match posted_form(&body, &s.csrf, Some(&ctx)) {
        Ok(f) => f,
        Err(page) => return *page,
    };
    let Some(rows) = fields
        .get("rows")
        .and_then(|r| serde_json::from_str::<Vec<ImportRow>>(r).ok())
    else {
        return error_page(
            Some(&ctx),
            Error::Invalid(
                "実行結果を読み取れませんでした。一括登録の画面から、もう一度「結果をCSVで保存」を押してください。"
                    .into(),
            ),
        );
    };
    let report = ImportReport {
        tool_version: TOOL_VERSION.to_string(),
        rule_pack_version: node.catalogue.version().to_string(),
        uploads: Vec::new(),
        rows,
    };
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"import-result.csv\"",
            ),
        ],
        report.csv(),
    )
        .into_response()
}

/// データ出力: the sheet as an XML file.
async fn export_xml(
    State(node): State<AppState>,
    s: UiSession,
    Path(id): Path<String>,
) -> Response {
    let ctx = Ctx::new(&node, &s);
    match node.export_xml(&s.principal, &id).await {
        Ok((name, xml)) => (
            StatusCode::OK,
            [
                (
                    header::CONTENT_TYPE,
                    "application/xml; charset=utf-8".to_string(),
                ),
                (
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"{name}\""),
                ),
            ],
            xml,
        )
            .into_response(),
        Err(e) => error_page(Some(&ctx), e),
    }
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/imports",
            get(import_page)
                .post(upload)
                .layer(DefaultBodyLimit::max(MAX_UPLOAD_BYTES)),
        )
        .route("/imports/result.csv", post(result_csv))
        .route("/sheets/{id}/xml", get(export_xml))
}
