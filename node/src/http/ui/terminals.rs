//! 端末証明書 (`/admin/terminals`), for the 責任者: the list of the institution's terminal
//! certificates, issuing one for a named terminal (its PKCS#12 file downloaded once, its
//! one-time password shown once), and 失効 after a 確認 page. Behind 再認証 like every user
//! administration screen; every action is a POST with the CSRF token. Handlers decide nothing
//! about access (the `Node` methods in `ops::terminals` do) and never log a password.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{Method, StatusCode, Uri, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};

use crate::Error;
use crate::accounts::policy::{Action, Target, authorize};
use crate::http::AppState;
use crate::http::shared::page::{Ctx, done_then, error_page, posted_form};
use crate::http::shared::reauth;
use crate::http::shared::session::UiSession;
use crate::ops::terminals::TerminalCertRow;
use crate::ops::tls::ClientCerts;

/// `YYYY-MM-DD` in Japan of a Unix time in seconds.
fn day(unix_s: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(unix_s)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
        .to_offset(time::macros::offset!(+9));
    format!("{:04}-{:02}-{:02}", t.year(), t.month() as u8, t.day())
}

/// The list page, with `problem` beside the 端末名 field (then answered 422).
async fn render(node: &AppState, s: &UiSession, typed: &str, problem: Option<&str>) -> Response {
    let ctx = Ctx::new(node, s);
    let rows: Vec<TerminalCertRow> = match node.terminal_certs(Some(&s.principal)).await {
        Ok(r) => r,
        Err(e) => return error_page(Some(&ctx), e),
    };
    let now = node.clock.now_ms();
    let dates: Vec<(String, String)> = rows
        .iter()
        .map(|r| (day(r.issued_at / 1000), day(r.not_after)))
        .collect();
    let lines: Vec<nsdb_ui::terminals::TerminalLine<'_>> = rows
        .iter()
        .zip(&dates)
        .map(|(r, (issued, expires))| nsdb_ui::terminals::TerminalLine {
            serial: &r.serial,
            name: &r.name,
            issued_on: issued,
            expires_on: expires,
            state: r.state(now),
            revocable: r.revoked_at.is_none(),
        })
        .collect();
    let view = nsdb_ui::terminals::TerminalsView {
        rows: &lines,
        typed_name: typed,
        problem,
        required: node
            .config
            .tls
            .as_ref()
            .is_some_and(|t| t.client_certs == ClientCerts::Required),
        valid_days: nsdb_provisioning::terminal::TERMINAL_CERT_DAYS,
    };
    let status = if problem.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    (
        status,
        Html(nsdb_ui::terminals::terminals(&ctx.page(), &view).into_string()),
    )
        .into_response()
}

/// Authorised and behind 再認証: the body the action reads.
async fn begin(
    node: &AppState,
    s: &UiSession,
    method: &Method,
    uri: &Uri,
    body: &Bytes,
) -> Result<Bytes, Response> {
    if let Err(e) = authorize(&s.principal, Action::ManageUsers, Target::None) {
        return Err(error_page(Some(&Ctx::new(node, s)), e.into()));
    }
    reauth::guard(node, s, method, uri, body).await
}

/// `GET /admin/terminals`: the list and the issuing form.
async fn list(State(node): State<AppState>, s: UiSession, method: Method, uri: Uri) -> Response {
    if let Err(r) = begin(&node, &s, &method, &uri, &Bytes::new()).await {
        return r;
    }
    render(&node, &s, "", None).await
}

/// `POST /admin/terminals` (field `name`): issues a certificate; the page with its one-time
/// password and the download.
async fn issue(
    State(node): State<AppState>,
    s: UiSession,
    method: Method,
    uri: Uri,
    body: Bytes,
) -> Response {
    let body = match begin(&node, &s, &method, &uri, &body).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let ctx = Ctx::new(&node, &s);
    let fields = match posted_form(&body, &s.csrf, Some(&ctx)) {
        Ok(f) => f,
        Err(refused) => return *refused,
    };
    let typed = fields.get("name").map(String::as_str).unwrap_or("");
    match node.issue_terminal_cert(Some(&s.principal), typed).await {
        Ok(issued) => {
            let download = format!("/admin/terminals/{}/download", issued.row.serial);
            let page = nsdb_ui::terminals::issued(
                &ctx.page(),
                &issued.row.name,
                &day(issued.row.not_after),
                &issued.password,
                &download,
            );
            (
                [(header::CACHE_CONTROL, "no-store")],
                Html(page.into_string()),
            )
                .into_response()
        }
        Err(Error::Invalid(message)) => render(&node, &s, typed, Some(&message)).await,
        Err(e) => error_page(Some(&ctx), e),
    }
}

/// `POST /admin/terminals/{serial}/download`: the PKCS#12 file just issued, once.
async fn download(
    State(node): State<AppState>,
    s: UiSession,
    Path(serial): Path<String>,
    method: Method,
    uri: Uri,
    body: Bytes,
) -> Response {
    let ctx = Ctx::new(&node, &s);
    if let Err(e) = authorize(&s.principal, Action::ManageUsers, Target::None) {
        return error_page(Some(&ctx), e.into());
    }
    let body =
        match reauth::guard_download(&node, &s, &method, &uri, &body, "/admin/terminals").await {
            Ok(b) => b,
            Err(r) => return r,
        };
    if let Err(refused) = posted_form(&body, &s.csrf, Some(&ctx)) {
        return *refused;
    }
    match node.download_terminal_cert(&s.principal, &serial).await {
        Ok((row, file)) => (
            [
                (header::CONTENT_TYPE, "application/x-pkcs12".to_string()),
                (header::CACHE_CONTROL, "no-store".to_string()),
                (
                    header::CONTENT_DISPOSITION,
                    format!(
                        "attachment; filename=\"terminal-{}.p12\"",
                        &row.serial[..8.min(row.serial.len())]
                    ),
                ),
            ],
            file,
        )
            .into_response(),
        Err(e) => error_page(Some(&ctx), e),
    }
}

/// `POST /admin/terminals/{serial}/revoke`: first the 確認 page; confirmed, 失効.
async fn revoke(
    State(node): State<AppState>,
    s: UiSession,
    Path(serial): Path<String>,
    method: Method,
    uri: Uri,
    body: Bytes,
) -> Response {
    let body = match begin(&node, &s, &method, &uri, &body).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let ctx = Ctx::new(&node, &s);
    let fields = match posted_form(&body, &s.csrf, Some(&ctx)) {
        Ok(f) => f,
        Err(refused) => return *refused,
    };
    if fields.get("confirmed").is_none_or(|v| v != "yes") {
        let rows = match node.terminal_certs(Some(&s.principal)).await {
            Ok(r) => r,
            Err(e) => return error_page(Some(&ctx), e),
        };
        let Some(row) = rows.into_iter().find(|r| r.serial == serial) else {
            return error_page(
                Some(&ctx),
                Error::Invalid("その端末証明書は見つかりません。".into()),
            );
        };
        return (
            [(header::CACHE_CONTROL, "no-store")],
            Html(
                nsdb_ui::terminals::confirm_revoke(&ctx.page(), &row.name, &row.serial)
                    .into_string(),
            ),
        )
            .into_response();
    }
    match node.revoke_terminal_cert(Some(&s.principal), &serial).await {
        Ok(row) => done_then(
            &node,
            &s,
            "/admin/terminals",
            format!(
                "端末「{}」の端末証明書を失効させました。その端末は次の接続から接続できません。",
                row.name
            ),
        )
        .await,
        Err(e) => error_page(Some(&ctx), e),
    }
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin/terminals", get(list).post(issue))
        .route("/admin/terminals/{serial}/download", post(download))
        .route("/admin/terminals/{serial}/revoke", post(revoke))
}
