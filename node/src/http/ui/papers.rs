//! The paper path on screen (紙の臨個票, M15): the municipality's upload (`POST /intake/papers`,
//! answered with the intake page), the hub's data entry (`GET /papers`, `GET /papers/{id}`,
//! `POST /papers/{id}` with the contractor's XML), and a paper's PDF (`GET /papers/{id}.pdf`,
//! inline). Handlers translate requests to `Node::upload_paper`, `papers`, `paper`,
//! `paper_pdf` and `enter_paper`, which decide access and audit; never decide access here.

use axum::Router;
use axum::extract::{DefaultBodyLimit, Multipart, Path, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};

use crate::accounts::policy::{Action, Denied, role_may};
use crate::http::AppState;
use crate::http::shared::page::done_then;
use crate::http::shared::page::{Ctx, csrf_ok, csrf_refused, error_page, format_ms};
use crate::http::shared::session::UiSession;
use crate::http::shared::upload::read_upload;
use crate::http::ui::review::{IntakeQuery, intake_page_with};
use crate::papers::{MAX_PDF_BYTES, PaperError, PaperRow, PaperUpload, state};
use crate::{Error, Node};

/// The body an upload may have: the PDF's limit and room for the form, so that a PDF a little
/// over the limit is told so beside the field.
const BODY_LIMIT: usize = 2 * MAX_PDF_BYTES;

/// A paper as its lists show it (the hub's 紙臨個票入力 and the municipality's 受付一覧).
pub(crate) fn line(r: PaperRow) -> nsdb_ui::papers::PaperLine {
    nsdb_ui::papers::PaperLine {
        uploaded: format_ms(r.uploaded_at_ms),
        state: state::label(&r.state).to_string(),
        access_key: r
            .access_key
            .map(|k| crate::keys::AccessKey::shown(&k))
            .unwrap_or_default(),
        id: r.id,
        municipality: r.municipality,
        name_kana: r.name_kana,
        birth_date: r.birth_date,
        disease_number: r.disease_number,
        disease: r.disease,
    }
}

async fn upload(State(node): State<AppState>, s: UiSession, multipart: Multipart) -> Response {
    let mut form = nsdb_ui::papers::PaperForm::default();
    let up = match read_upload(multipart).await {
        Ok(up) => up,
        Err(m) => {
            form.errors.insert(
                "pdf".into(),
                format!("{m}（PDF は {} MB までです）", MAX_PDF_BYTES / 1_048_576),
            );
            return refused(&node, &s, form).await;
        }
    };
    if !csrf_ok(&up.fields, &s.csrf) {
        return csrf_refused();
    }
    let text = |k: &str| up.fields.get(k).cloned().unwrap_or_default();
    form.name_kana = text("name_kana");
    form.birth_date = text("birth_date");
    form.disease = text("disease");
    let paper = PaperUpload {
        pdf: up
            .files
            .into_iter()
            .next()
            .map(|(_, b)| b)
            .unwrap_or_default(),
        name_kana: form.name_kana.clone(),
        birth_date: form.birth_date.clone(),
        disease: form.disease.clone(),
    };
    match node.upload_paper(&s.principal, paper).await {
        Ok(_) => {
            let text = "紙の臨個票を受け付けました。ハブ（中央）へ送ります（状態「送信待ち」→「ハブ受領」→「データ入力済」）。";
            done_then(&node, &s, "/intake#papers", text).await
        }
        Err(PaperError::Field { field, message }) => {
            form.errors.insert(field.into(), message);
            refused(&node, &s, form).await
        }
        Err(PaperError::Checks(m)) => {
            form.errors.insert("pdf".into(), m.join(" "));
            refused(&node, &s, form).await
        }
        Err(PaperError::Node(e)) => error_page(Some(&Ctx::new(&node, &s)), e),
    }
}

/// The intake page again with what was typed and the messages beside the fields.
async fn refused(node: &Node, s: &UiSession, form: nsdb_ui::papers::PaperForm) -> Response {
    let mut page = intake_page_with(node, s, IntakeQuery::default(), None, form).await;
    if page.status() == StatusCode::OK {
        *page.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
    }
    page
}

async fn list(State(node): State<AppState>, s: UiSession) -> Response {
    let ctx = Ctx::new(&node, &s);
    if !role_may(s.principal.role(), Action::EnterPaper) {
        return error_page(Some(&ctx), Denied.into());
    }
    match node.papers(&s.principal).await {
        Ok(rows) => {
            let lines: Vec<_> = rows.into_iter().map(line).collect();
            // The result of an entry comes as the session's one-time notice.
            Html(nsdb_ui::papers::entry_list_page(&ctx.page(), &lines, None).into_string())
                .into_response()
        }
        Err(e) => error_page(Some(&ctx), e),
    }
}

/// `/papers/{id}.pdf` is the PDF; `/papers/{id}` the data entry page.
async fn paper(State(node): State<AppState>, s: UiSession, Path(file): Path<String>) -> Response {
    let ctx = Ctx::new(&node, &s);
    if let Some(id) = file.strip_suffix(".pdf") {
        return match node.paper_pdf_named(&s.principal, id).await {
            // Named like a printed sheet: 紙の臨個票_病名_YYYY-MM-DD.pdf.
            Ok((pdf, disease)) => (
                [
                    (header::CONTENT_TYPE, "application/pdf".to_string()),
                    (
                        header::CONTENT_DISPOSITION,
                        crate::http::shared::page::file_disposition(
                            "inline",
                            &format!("紙の臨個票_{disease}_{}.pdf", node.clock.today_jst()),
                            &format!("paper-{id}.pdf"),
                        ),
                    ),
                ],
                pdf,
            )
                .into_response(),
            Err(e) => error_page(Some(&ctx), e),
        };
    }
    entry(&node, &s, &file, None, &[]).await
}

async fn entry(
    node: &Node,
    s: &UiSession,
    id: &str,
    error: Option<&str>,
    messages: &[String],
) -> Response {
    let ctx = Ctx::new(node, s);
    if !role_may(s.principal.role(), Action::EnterPaper) {
        return error_page(Some(&ctx), Denied.into());
    }
    match node.paper(&s.principal, id).await {
        Ok(row) => {
            let status = if error.is_some() || !messages.is_empty() {
                StatusCode::UNPROCESSABLE_ENTITY
            } else {
                StatusCode::OK
            };
            let page = nsdb_ui::papers::entry_page(&ctx.page(), &line(row), error, messages);
            (status, Html(page.into_string())).into_response()
        }
        Err(e) => error_page(Some(&ctx), e),
    }
}

async fn enter(
    State(node): State<AppState>,
    s: UiSession,
    Path(id): Path<String>,
    multipart: Multipart,
) -> Response {
    let up = match read_upload(multipart).await {
        Ok(up) => up,
        Err(m) => return entry(&node, &s, &id, Some(&m), &[]).await,
    };
    if !csrf_ok(&up.fields, &s.csrf) {
        return csrf_refused();
    }
    let xml = up
        .files
        .into_iter()
        .next()
        .map(|(_, b)| b)
        .unwrap_or_default();
    match node.enter_paper(&s.principal, &id, &xml).await {
        // The paper's id, not the key, goes into the address.
        Ok(_) => {
            let key = node
                .papers(&s.principal)
                .await
                .ok()
                .and_then(|rows| rows.into_iter().map(line).find(|l| l.id == id))
                .map(|l| format!("（アクセスキー {}）", l.access_key))
                .unwrap_or_default();
            let text = format!("データを取り込み、登録しました{key}。自治体へ同期で届きます。");
            done_then(&node, &s, "/papers", text).await
        }
        Err(PaperError::Field { message, .. }) => entry(&node, &s, &id, Some(&message), &[]).await,
        Err(PaperError::Checks(messages)) => {
            let error = format!(
                "データファイルにチェックエラーが{}件あります。取り込みませんでした。委託先に直したファイルを依頼してください。",
                messages.len()
            );
            entry(&node, &s, &id, Some(&error), &messages).await
        }
        Err(PaperError::Node(e @ Error::Invalid(_))) => {
            entry(&node, &s, &id, Some(&e.to_string()), &[]).await
        }
        Err(PaperError::Node(e)) => error_page(Some(&Ctx::new(&node, &s)), e),
    }
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/intake/papers",
            post(upload).layer(DefaultBodyLimit::max(BODY_LIMIT)),
        )
        .route("/papers", get(list))
        .route(
            "/papers/{file}",
            get(paper)
                .post(enter)
                .layer(DefaultBodyLimit::max(BODY_LIMIT)),
        )
}
