//! What every page handler shares: the page context (who is signed in, which menus to show),
//! error pages, posted forms with their CSRF token checked, and the display formats of times,
//! dates and codes. Must never decide access (that is `accounts::policy`) nor hold a handler.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};

use super::session::UiSession;
use crate::accounts::policy::{Action, Role, role_may};
use crate::{Error, Node};

/// Display strings a page needs about the signed-in user.
pub struct Ctx {
    open_alerts: u64,
    node_label: String,
    user_name: String,
    user_kind: &'static str,
    role: Role,
    responsible: bool,
    municipality: bool,
    csrf: String,
    flash: Option<crate::accounts::Flash>,
}

impl Ctx {
    pub fn new(node: &Node, s: &UiSession) -> Ctx {
        Ctx {
            open_alerts: node.open_alert_count().unwrap_or(0),
            node_label: user_node_label(node, &s.principal.institution),
            user_name: s.principal.name.clone(),
            user_kind: s.principal.kind.label(),
            role: s.principal.role(),
            responsible: s.principal.responsible,
            municipality: node.role() == crate::config::NodeRole::Municipality,
            csrf: s.csrf.clone(),
            flash: s.flash.clone(),
        }
    }

    pub fn page(&self) -> nsdb_ui::PageContext<'_> {
        // A doctor holding the 責任者 role also sees what the 責任者 sees.
        // User administration only while holding the role (`Principal::may`).
        let may = |action: Action| {
            if action == Action::ManageUsers {
                return self.responsible;
            }
            role_may(self.role, action) || (self.responsible && role_may(Role::Admin, action))
        };
        nsdb_ui::PageContext {
            node_label: &self.node_label,
            user_name: &self.user_name,
            user_kind: self.user_kind,
            can_read_sheets: role_may(self.role, Action::ListSheets),
            can_create: role_may(self.role, Action::CreateSheet),
            is_admin: may(Action::ManageUsers),
            issues_doctors: self.municipality && may(Action::ManageUsers),
            is_doctor: self.role == Role::Doctor,
            can_review: role_may(self.role, Action::ReviewSheet),
            can_research: role_may(self.role, Action::ResearchData),
            can_enter_papers: role_may(self.role, Action::EnterPaper),
            can_monitor: may(Action::MonitorUse),
            open_alerts: self.open_alerts,
            csrf: &self.csrf,
            flash: self.flash.as_ref().map(|f| nsdb_ui::Flash {
                text: &f.text,
                link: f.link.as_ref().map(|(h, t)| (h.as_str(), t.as_str())),
                download: f.download,
            }),
        }
    }
}

/// The node as a signed-in user sees it: on the hub, a clinic's user (M18) sees that they
/// work for their clinic (医療機関コード) through the hub.
fn user_node_label(node: &Node, institution: &str) -> String {
    if node.role() != crate::config::NodeRole::Hub || institution == node.config.institution.code {
        node_label(node)
    } else {
        format!("{}経由 医療機関コード {institution}", node.role().label())
    }
}

pub fn node_label(node: &Node) -> String {
    format!("{} {}", node.role().label(), node.config.institution.name)
}

/// A domain error as a page.
pub fn error_page(ctx: Option<&Ctx>, e: Error) -> Response {
    let (status, title) = match &e {
        Error::Denied(_) => (StatusCode::FORBIDDEN, "権限がありません"),
        Error::Busy => (StatusCode::TOO_MANY_REQUESTS, "しばらくしてから"),
        Error::SheetNotFound(_) | Error::UnknownForm(_) => {
            (StatusCode::NOT_FOUND, "見つかりません")
        }
        Error::UnknownItems(_) | Error::Invalid(_) => {
            (StatusCode::UNPROCESSABLE_ENTITY, "入力を確認してください")
        }
        Error::NoKeyBlock | Error::KeysAwaitHub => {
            (StatusCode::CONFLICT, "アクセスキーを払い出せません")
        }
        Error::BadCredentials
        | Error::Locked
        | Error::Expired
        | Error::Unauthenticated
        | Error::TotpRequired => {
            return Redirect::to("/login").into_response();
        }
        Error::ReauthRequired | Error::SetupRequired(_) => {
            (StatusCode::UNAUTHORIZED, "もう一度ログインしてください")
        }
        Error::Store(crate::store::StoreError::Damaged(_)) => {
            (StatusCode::SERVICE_UNAVAILABLE, "データベースの損傷")
        }
        Error::Store(crate::store::StoreError::DiskFull) => {
            tracing::error!(target: "nsdb::http", "the disk is full: writes are refused");
            (
                StatusCode::INSUFFICIENT_STORAGE,
                "ディスクの空きがありません",
            )
        }
        Error::DamagedSheet(_) => (StatusCode::SERVICE_UNAVAILABLE, "票のデータの損傷"),
        Error::Document { .. } | Error::Store(_) | Error::Research(_) => {
            tracing::error!(target: "nsdb::http", error = %e, "internal error");
            let page = ctx.map(Ctx::page);
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                Html(
                    nsdb_ui::error(
                        page.as_ref(),
                        "エラー",
                        "サーバで問題が発生しました。時間をおいて再度お試しください。",
                    )
                    .into_string(),
                ),
            )
                .into_response();
        }
    };
    let page = ctx.map(Ctx::page);
    (
        status,
        Html(nsdb_ui::error(page.as_ref(), title, &e.to_string()).into_string()),
    )
        .into_response()
}

/// Parses an `application/x-www-form-urlencoded` body; repeated names (check boxes) are joined
/// with commas, empty values among them dropped.
pub fn form_fields(body: &Bytes) -> Result<BTreeMap<String, String>, Error> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(body)
        .map_err(|e| Error::Invalid(format!("送信内容を読み取れません: {e}")))?;
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    for (k, v) in pairs {
        let entry = out.entry(k).or_default();
        if !v.is_empty() {
            if !entry.is_empty() {
                entry.push(',');
            }
            entry.push_str(&v);
        }
    }
    Ok(out)
}

/// The values of a field posted several times (checkboxes), in order: [`form_fields`] joins
/// them with commas and leaves out empty ones.
pub fn listed(fields: &BTreeMap<String, String>, name: &str) -> Vec<String> {
    fields
        .get(name)
        .map(|v| {
            v.split(',')
                .filter(|f| !f.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

pub fn csrf_ok(fields: &BTreeMap<String, String>, expected: &str) -> bool {
    fields.get("csrf").is_some_and(|t| same_secret(t, expected))
}

/// A posted form with its CSRF token checked: the fields, or the page that says why not
/// (`ctx` frames the error page; `None` before sign-in).
pub fn posted_form(
    body: &Bytes,
    expected_csrf: &str,
    ctx: Option<&Ctx>,
) -> Result<BTreeMap<String, String>, Box<Response>> {
    let fields = form_fields(body).map_err(|e| Box::new(error_page(ctx, e)))?;
    if !csrf_ok(&fields, expected_csrf) {
        return Err(Box::new(csrf_refused()));
    }
    Ok(fields)
}

/// Marks a response as a form refused for its CSRF token, for [`audit_csrf_refusals`].
#[derive(Debug, Clone, Copy)]
pub struct CsrfRefusal;

/// Records every form refused for its CSRF token in the audit log (`csrf_refused`, target the
/// path posted to, the user whose session cookie came with it when it is a valid session): one
/// is an old tab; many are another site posting with the user's cookie.
pub async fn audit_csrf_refusals(
    axum::extract::State(node): axum::extract::State<crate::http::AppState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let token = axum_extra::extract::cookie::CookieJar::from_headers(req.headers())
        .get(super::session::SESSION_COOKIE)
        .map(|c| c.value().to_string());
    let path = req.uri().path().to_string();
    let res = next.run(req).await;
    if res.extensions().get::<CsrfRefusal>().is_some() {
        let user = match token {
            Some(t) => node
                .session_state(&t)
                .await
                .ok()
                .map(|s| s.principal.user_id),
            None => None,
        };
        let now = node.clock.now_ms();
        let written = node
            .store
            .write(move |c| {
                crate::audit::append(
                    c,
                    crate::audit::Entry {
                        at_ms: now,
                        user,
                        action: "csrf_refused",
                        target: Some(&path),
                        detail: None,
                    },
                )
                .map_err(Error::from)
            })
            .await;
        if let Err(e) = written {
            tracing::warn!(target: "nsdb::http", error = %e, "a CSRF refusal was not audited");
        }
    }
    res
}

/// The answer to a form posted without the right CSRF token (an old tab, or another site).
pub fn csrf_refused() -> Response {
    let mut res = (
        StatusCode::FORBIDDEN,
        Html(
            nsdb_ui::error(
                None,
                "送信できませんでした",
                "画面の有効期限が切れました。もう一度開き直してから操作してください。",
            )
            .into_string(),
        ),
    )
        .into_response();
    res.extensions_mut().insert(CsrfRefusal);
    res
}

pub fn sex_label(code: Option<&str>) -> String {
    match code {
        Some("1") => "男性".into(),
        Some("2") => "女性".into(),
        Some(other) => other.into(),
        None => String::new(),
    }
}

pub fn application_label(code: Option<&str>) -> String {
    match code {
        Some("1") => "新規".into(),
        Some("2") => "更新".into(),
        Some(other) => other.into(),
        None => String::new(),
    }
}

pub fn registration_label(r: &str) -> &str {
    match r {
        "screen" => "画面",
        "bulk" => "一括",
        "paper" => "紙",
        other => other,
    }
}

pub fn slash_date(d: Option<&str>) -> String {
    d.map(|d| d.replace('-', "/")).unwrap_or_default()
}

/// `YYYY/MM/DD HH:MM` in Japan time.
pub fn format_ms(ms: i64) -> String {
    jst(ms, false)
}

/// A unix-millisecond time in Japan time with seconds, or "—" when there is none.
pub fn jst_seconds(ms: Option<i64>) -> String {
    ms.map(|ms| jst(ms, true)).unwrap_or_else(|| "—".into())
}

/// A unix-millisecond time in Japan time, with seconds when asked.
pub fn jst(ms: i64, seconds: bool) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(ms / 1000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
        .to_offset(time::macros::offset!(+9));
    let mut out = format!(
        "{:04}/{:02}/{:02} {:02}:{:02}",
        t.year(),
        t.month() as u8,
        t.day(),
        t.hour(),
        t.minute()
    );
    if seconds {
        out.push_str(&format!(":{:02}", t.second()));
    }
    out
}

/// Compares two secrets in time independent of where they differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Turns the UI's bare error answers (an unknown address, a malformed path or query that the
/// router refuses before any handler runs: status 4xx with a plain-text or empty body) into
/// error pages in Japanese, inside the normal page layout (header, search box, menus) when the
/// request carries a live session. Under `/api/` such answers become the API's JSON error body
/// instead (404 `not_found`, 405 `method_not_allowed` with its `Allow` header). Pages and JSON
/// the handlers rendered pass through unchanged. Never reads or logs the refused request's query or body.
pub async fn bare_errors(
    axum::extract::State(node): axum::extract::State<crate::http::AppState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    use axum::http::header::CONTENT_TYPE;
    let api = req.uri().path().starts_with("/api/");
    let token = axum_extra::extract::cookie::CookieJar::from_headers(req.headers())
        .get(super::session::SESSION_COOKIE)
        .map(|c| c.value().to_string());
    let res = next.run(req).await;
    let status = res.status();
    let bare = res
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|v| v.starts_with("text/plain"));
    if !status.is_client_error() || !bare {
        return res;
    }
    if api {
        return api_bare_error(res);
    }
    let (title, message) = match status {
        StatusCode::NOT_FOUND => (
            "見つかりません",
            "お探しのページは見つかりませんでした。アドレスを確かめるか、メニューから開き直してください。",
        ),
        StatusCode::METHOD_NOT_ALLOWED => (
            "この操作はできません",
            "このページではこの操作を受け付けていません。メニューから開き直してください。",
        ),
        StatusCode::PAYLOAD_TOO_LARGE => (
            "送信内容が大きすぎます",
            "送信された内容が上限を超えています。ファイルや入力を小さくしてから送信してください。",
        ),
        _ => (
            "リクエストが正しくありません",
            "アドレスまたは送信内容が正しくありません。画面のリンクやボタンから開き直してください。",
        ),
    };
    let session = match token {
        Some(token) => node
            .session_state(&token)
            .await
            .ok()
            .filter(|s| s.pending.is_none()),
        None => None,
    };
    let ctx = session.map(|s| {
        Ctx::new(
            &node,
            &UiSession {
                principal: s.principal,
                csrf: s.csrf,
                token: String::new(),
                reauth_at: s.reauth_at,
                flash: None,
            },
        )
    });
    let page = ctx.as_ref().map(Ctx::page);
    let mut out = (
        status,
        Html(nsdb_ui::error(page.as_ref(), title, message).into_string()),
    )
        .into_response();
    // What the refusal says to clients (Allow on a 405) stays.
    if let Some(allow) = res.headers().get(axum::http::header::ALLOW) {
        out.headers_mut()
            .insert(axum::http::header::ALLOW, allow.clone());
    }
    out
}

/// The API's answer for a bare refusal under `/api/` (an unknown address, a method the route
/// does not take, a path or query the router could not read): the API's JSON error body
/// (`{"error": {"code", "message"}}`), keeping the refusal's `Allow` header on a 405.
fn api_bare_error(res: Response) -> Response {
    use super::json::ApiError;
    let status = res.status();
    let (code, message) = match status {
        StatusCode::NOT_FOUND => (
            "not_found",
            "この API はありません。/api/v1/openapi.json を参照してください。",
        ),
        StatusCode::METHOD_NOT_ALLOWED => (
            "method_not_allowed",
            "この API はこのメソッドを受け付けません。Allow ヘッダーのメソッドを使ってください。",
        ),
        StatusCode::PAYLOAD_TOO_LARGE => {
            ("payload_too_large", "送信された内容が上限を超えています。")
        }
        StatusCode::UNSUPPORTED_MEDIA_TYPE => (
            "unsupported_media_type",
            "この Content-Type は受け付けません。",
        ),
        _ => ("bad_request", "アドレスまたは送信内容が正しくありません。"),
    };
    let mut out = ApiError::new(status, code, message).into_response();
    if let Some(allow) = res.headers().get(axum::http::header::ALLOW) {
        out.headers_mut()
            .insert(axum::http::header::ALLOW, allow.clone());
    }
    out
}

/// A `Content-Disposition` for a file the browser saves or shows: `name` (UTF-8, e.g.
/// `臨床調査個人票_パーキンソン病_2026-12-01.pdf`) as RFC 6266's `filename*`, and `ascii` as the
/// plain `filename` for clients that read only that. `kind` is `inline` or `attachment`.
/// Characters a file name cannot hold (`/ \ " CR LF`) become `_`.
pub fn file_disposition(kind: &str, name: &str, ascii: &str) -> String {
    let name = name.replace(['/', '\\', '"', '\r', '\n'], "_");
    let mut encoded = String::new();
    for b in name.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                encoded.push(b as char)
            }
            _ => encoded.push_str(&format!("%{b:02X}")),
        }
    }
    let ascii = ascii.replace(
        |c: char| !c.is_ascii_graphic() || c == '"' || c == '\\',
        "_",
    );
    format!("{kind}; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

/// The answer to an action that succeeded: `text` kept as the session's one-time notice
/// (`Node::set_flash`), and a redirect to `to`, whose page shows it once. Never a query
/// string: an address anyone can craft must not show a success notice.
pub async fn done_then(node: &Node, s: &UiSession, to: &str, text: impl Into<String>) -> Response {
    let flash = crate::accounts::Flash::text(text);
    if let Err(e) = node.set_flash(&s.token, &flash).await {
        return error_page(Some(&Ctx::new(node, s)), e);
    }
    Redirect::to(to).into_response()
}
