//! 医療機関ユーザ検索 (`/admin/users`) and its actions, for the 責任者: the search with its
//! filters and paging, パスワード初期化 (the one-time password shown once), アカウントロック and
//! ロック解除, 2段階認証の初期化, 責任者変更, 削除, 有効期限変更 and the IDパスワード通知書 (an A4
//! PDF). All behind 再認証; every action is a POST with the CSRF token, and tells its result
//! through the session's one-time notice, never the address. 削除, 責任者変更 and
//! パスワード初期化 first answer a 確認 page saying what will happen to whom; only its second
//! submit (`confirmed=yes`, with the CSRF token) acts. Actions carry the search they came from
//! (`back`): a refusal is shown beside the user's row on that search, and キャンセル and the
//! notice return to it. Handlers decide nothing about
//! access (the `Node` methods do) and never log a name or a password.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode, Uri, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};

use crate::accounts::UserRow;
use crate::accounts::admin::{USERS_PER_PAGE, UserSearch};
use crate::accounts::policy::{Action, Role, Target, UserKind, authorize};
use crate::http::AppState;
use crate::http::shared::page::{Ctx, done_then, error_page, posted_form};
use crate::http::shared::reauth;
use crate::http::shared::session::UiSession;
use crate::{Error, Node};

/// The kinds an institution's users have, as the filter offers them.
const KINDS: [UserKind; 5] = [
    UserKind::NanbyoDoctor,
    UserKind::KyoryokuDoctor,
    UserKind::ShomanDoctor,
    UserKind::Clerk,
    UserKind::Admin,
];

#[derive(serde::Deserialize, serde::Serialize, Default, Clone)]
struct SearchQuery {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    kind: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    institution: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    family: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    given: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    page: Option<usize>,
}

impl SearchQuery {
    /// The search an action came from: its posted `back` field (a query string), read as
    /// filters only, so that it can lead nowhere but the search.
    fn from_back(fields: &std::collections::BTreeMap<String, String>) -> SearchQuery {
        fields
            .get("back")
            .and_then(|b| serde_urlencoded::from_str(b).ok())
            .unwrap_or_default()
    }

    /// This search's query string with its page (for `back`), or without it (paging links).
    fn encode(&self, with_page: bool) -> String {
        let mut q = self.clone();
        if !with_page {
            q.page = None;
        }
        serde_urlencoded::to_string(&q).unwrap_or_default()
    }

    /// The search's address.
    fn address(&self) -> String {
        let q = self.encode(true);
        if q.is_empty() {
            "/admin/users".to_string()
        } else {
            format!("/admin/users?{q}")
        }
    }
}

/// An action refused on one user: shown beside the user's row on the search it came from.
struct Problem {
    user_id: u64,
    expires_on: Option<String>,
    message: String,
}

/// `GET /admin/users`: 医療機関ユーザ検索.
async fn search(
    State(node): State<AppState>,
    s: UiSession,
    method: Method,
    uri: Uri,
    Query(q): Query<SearchQuery>,
) -> Response {
    let ctx = Ctx::new(&node, &s);
    if let Err(e) = authorize(&s.principal, Action::ManageUsers, Target::None) {
        return error_page(Some(&ctx), e.into());
    }
    if let Err(prompt) = reauth::guard(&node, &s, &method, &uri, &Bytes::new()).await {
        return prompt;
    }
    render_search(&node, &s, &q, None).await
}

/// The search page for `q`, with `problem` beside its row (then answered 422).
async fn render_search(
    node: &AppState,
    s: &UiSession,
    q: &SearchQuery,
    problem: Option<Problem>,
) -> Response {
    let ctx = Ctx::new(node, s);
    let kind = match q.kind.as_str() {
        "" => None,
        k => match UserKind::parse(k) {
            Some(k) => Some(k),
            None => {
                return error_page(
                    Some(&ctx),
                    Error::Invalid(format!("ユーザ種別「{k}」はありません。")),
                );
            }
        },
    };
    let search = UserSearch {
        kind,
        institution: Some(q.institution.clone()).filter(|i| !i.is_empty()),
        family_name: q.family.clone(),
        given_name: q.given.clone(),
        page: q.page.unwrap_or(1),
    };
    let found = match node.search_users(&s.principal, &search).await {
        Ok(f) => f,
        Err(e) => return error_page(Some(&ctx), e),
    };
    let institution = match node.institution_of(&s.principal).await {
        Ok(i) => i,
        Err(e) => return error_page(Some(&ctx), e),
    };
    let mut rows = found.rows;
    // A refused user on another page is still shown with its refusal, first.
    if let Some(p) = &problem
        && !rows.iter().any(|u| u.id == p.user_id)
        && let Ok(all) = node.users_of(&s.principal).await
        && let Some(u) = all.into_iter().find(|u| u.id == p.user_id)
    {
        rows.insert(0, u);
    }
    let lines: Vec<nsdb_ui::users::UserLine<'_>> = rows
        .iter()
        .map(|u| nsdb_ui::users::UserLine {
            id: u.id,
            login: &u.login,
            name: &u.name,
            kind: u.kind.label(),
            institution: &u.institution_name,
            department: u.department.as_deref().unwrap_or(""),
            responsible: u.responsible,
            locked: u.locked,
            locked_after_failures: u.locked_after_failures,
            expired: u.expired,
            expires_on: u.expires_on.as_deref().unwrap_or(""),
            totp: u.totp_enrolled,
            may_become_responsible: u.kind.role() == Role::Doctor && !u.responsible,
            uses_check_tool: matches!(u.kind.role(), Role::Doctor | Role::Clerk),
            me: u.id == s.principal.user_id,
        })
        .collect();
    let kinds: Vec<(&str, &str)> = KINDS.iter().map(|k| (k.as_str(), k.label())).collect();
    let query = q.encode(false);
    let back = SearchQuery {
        page: Some(found.page),
        ..q.clone()
    }
    .encode(true);
    let view = nsdb_ui::users::UserSearchView {
        kinds: &kinds,
        kind: &q.kind,
        institution: (&institution.code, &institution.name),
        family_name: &q.family,
        given_name: &q.given,
        rows: &lines,
        total: found.total,
        page: found.page,
        pages: found.pages,
        per_page: USERS_PER_PAGE,
        query: &query,
        back: &back,
        problem: problem.as_ref().map(|p| nsdb_ui::users::RowProblem {
            user_id: p.user_id,
            expires_on: p.expires_on.as_deref(),
            message: &p.message,
        }),
        registry_note: None,
    };
    let registry_note = match node.accounts_synced_at().await {
        Ok((0, _)) | Err(_) => None,
        Ok((_, Some(at))) => Some(format!(
            "自治体が発行した指定医のアカウントは {} にハブと同期した内容です（自治体でのロック・削除などは次の同期で反映されます）。",
            crate::http::shared::page::jst(at, false)
        )),
        Ok((_, None)) => {
            Some("自治体が発行した指定医のアカウントは、まだハブと同期していません。".into())
        }
    };
    let view = nsdb_ui::users::UserSearchView {
        registry_note: registry_note.as_deref(),
        ..view
    };
    let status = if problem.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    (
        status,
        Html(nsdb_ui::users::user_search(&ctx.page(), &view).into_string()),
    )
        .into_response()
}

/// The common start of every action: authorised, behind 再認証, the CSRF token checked; the
/// posted fields and the search the action was asked from (its `back` field).
async fn begin(
    node: &AppState,
    s: &UiSession,
    method: &Method,
    uri: &Uri,
    body: &Bytes,
) -> Result<(std::collections::BTreeMap<String, String>, SearchQuery), Response> {
    let ctx = Ctx::new(node, s);
    if let Err(e) = authorize(&s.principal, Action::ManageUsers, Target::None) {
        return Err(error_page(Some(&ctx), e.into()));
    }
    let body = reauth::guard(node, s, method, uri, body).await?;
    let fields = posted_form(&body, &s.csrf, Some(&ctx)).map_err(|refused| *refused)?;
    let back = SearchQuery::from_back(&fields);
    Ok((fields, back))
}

/// [`begin`] for an action that answers with a download: 再認証 sends the user back to the
/// search (`reauth::guard_download`). The search the action was asked from.
async fn begin_download(
    node: &AppState,
    s: &UiSession,
    method: &Method,
    uri: &Uri,
    body: &Bytes,
) -> Result<SearchQuery, Response> {
    let ctx = Ctx::new(node, s);
    if let Err(e) = authorize(&s.principal, Action::ManageUsers, Target::None) {
        return Err(error_page(Some(&ctx), e.into()));
    }
    let body = reauth::guard_download(node, s, method, uri, body, "/admin/users").await?;
    let fields = posted_form(&body, &s.csrf, Some(&ctx)).map_err(|refused| *refused)?;
    Ok(SearchQuery::from_back(&fields))
}

/// After an action on user `id`: back to the search it came from with the result as a
/// one-time notice; a refusal the user can act on ([`Error::Invalid`]) on that same search,
/// beside the user's row.
async fn done(
    node: &AppState,
    s: &UiSession,
    back: &SearchQuery,
    id: u64,
    result: crate::Result<()>,
    text: &str,
) -> Response {
    match result {
        Ok(()) => done_then(node, s, &back.address(), text).await,
        Err(e) => refused(node, s, back, id, None, e).await,
    }
}

/// A refused action: [`Error::Invalid`] beside the user's row on the search `back` (with the
/// typed 有効期限 kept), anything else as its own page.
async fn refused(
    node: &AppState,
    s: &UiSession,
    back: &SearchQuery,
    id: u64,
    expires_on: Option<String>,
    e: Error,
) -> Response {
    match e {
        Error::Invalid(message) => {
            let problem = Problem {
                user_id: id,
                expires_on,
                message,
            };
            render_search(node, s, back, Some(problem)).await
        }
        e => error_page(Some(&Ctx::new(node, s)), e),
    }
}

/// Whether the posted form is the 確認 page's second submit.
fn confirmed(fields: &std::collections::BTreeMap<String, String>) -> bool {
    fields.get("confirmed").is_some_and(|v| v == "yes")
}

/// The 確認 page for an act on user `id` that cannot be undone from the screen: `effects`
/// gets the user (and the present 責任者, if any) and says what will happen.
async fn confirm_page<F>(
    node: &AppState,
    s: &UiSession,
    back: &SearchQuery,
    id: u64,
    (title, path, button): (&str, &str, &str),
    effects: F,
) -> Response
where
    F: FnOnce(&UserRow, Option<&UserRow>) -> Vec<String>,
{
    let ctx = Ctx::new(node, s);
    let users = match node.users_of(&s.principal).await {
        Ok(u) => u,
        Err(e) => return error_page(Some(&ctx), e),
    };
    let Some(user) = users.iter().find(|u| u.id == id) else {
        return error_page(
            Some(&ctx),
            Error::Invalid(
                "その利用者は見つかりません（削除済みか、他の医療機関の利用者です）。".into(),
            ),
        );
    };
    let holder = users.iter().find(|u| u.responsible);
    let effects = effects(user, holder);
    let whom = format!("{}/ {}（{}）", user.login, user.name, user.kind.label());
    let action = format!("/admin/users/{id}/{path}");
    let back = back.encode(true);
    let view = nsdb_ui::users::ConfirmView {
        title,
        whom: &whom,
        effects: &effects,
        action: &action,
        button,
        back: &back,
    };
    (
        [(header::CACHE_CONTROL, "no-store")],
        Html(nsdb_ui::users::confirm(&ctx.page(), &view).into_string()),
    )
        .into_response()
}

/// `POST /admin/users/{id}/password-reset`: first the 確認 page; confirmed, the new one-time
/// password, on this page only.
async fn reset_password(
    State(node): State<AppState>,
    s: UiSession,
    Path(id): Path<u64>,
    method: Method,
    uri: Uri,
    body: Bytes,
) -> Response {
    let (fields, back) = match begin(&node, &s, &method, &uri, &body).await {
        Ok(begun) => begun,
        Err(r) => return r,
    };
    // A refusal that needs no confirming (one's own account) is said at once.
    if !confirmed(&fields) && id != s.principal.user_id {
        return confirm_page(
            &node,
            &s,
            &back,
            id,
            ("パスワード初期化", "password-reset", "パスワードを初期化する"),
            |u, _| {
                vec![
                    format!("{} の今のパスワードはすぐに使えなくなり、ログイン中の画面も終了します。", u.login),
                    "新しい初期パスワードを次の画面に一度だけ表示します。本人に伝えてください（本人は最初のログインで変更します）。".into(),
                    "パスワード連続失敗によるロックも解除されます。".into(),
                ]
            },
        )
        .await;
    }
    let ctx = Ctx::new(&node, &s);
    match node.reset_password(&s.principal, id).await {
        Ok(p) => {
            let page = nsdb_ui::users::initial_password(
                &ctx.page(),
                &p.login,
                &p.name,
                &p.password,
                &back.encode(true),
            );
            (
                [(header::CACHE_CONTROL, "no-store")],
                Html(page.into_string()),
            )
                .into_response()
        }
        Err(e) => refused(&node, &s, &back, id, None, e).await,
    }
}

/// `POST /admin/users/{id}/notice`: the IDパスワード通知書 (A4 PDF) with a new one-time
/// password. Behind 再認証 as a download: after the password the user is back on the search.
async fn notice(
    State(node): State<AppState>,
    s: UiSession,
    Path(id): Path<u64>,
    method: Method,
    uri: Uri,
    body: Bytes,
) -> Response {
    let back = match begin_download(&node, &s, &method, &uri, &body).await {
        Ok(back) => back,
        Err(r) => return r,
    };
    match crate::http::shared::credentials::issue_notice(&node, &s.principal, id).await {
        Ok(notice) => notice.into_response(),
        Err(e) => refused(&node, &s, &back, id, None, e).await,
    }
}

/// `POST /admin/users/{id}/key`: 暗号鍵再発行, the new check-tool key as a file to carry to
/// the check tool's machine (the node keeps only its public half). Behind 再認証 as a download.
async fn reissue_key(
    State(node): State<AppState>,
    s: UiSession,
    Path(id): Path<u64>,
    method: Method,
    uri: Uri,
    body: Bytes,
) -> Response {
    let back = match begin_download(&node, &s, &method, &uri, &body).await {
        Ok(back) => back,
        Err(r) => return r,
    };
    match node.reissue_user_key(&s.principal, id).await {
        Ok(k) => (
            [
                (
                    header::CONTENT_TYPE,
                    "text/plain; charset=utf-8".to_string(),
                ),
                (header::CACHE_CONTROL, "no-store".to_string()),
                (
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"check-tool-key-{id}.key\""),
                ),
            ],
            format!("{}\n", k.key_file),
        )
            .into_response(),
        Err(e) => refused(&node, &s, &back, id, None, e).await,
    }
}

async fn lock(
    State(node): State<AppState>,
    s: UiSession,
    Path(id): Path<u64>,
    method: Method,
    uri: Uri,
    body: Bytes,
) -> Response {
    let back = match begin(&node, &s, &method, &uri, &body).await {
        Ok((_, back)) => back,
        Err(r) => return r,
    };
    let r = node.set_user_locked(&s.principal, id, true).await;
    done(
        &node,
        &s,
        &back,
        id,
        r,
        "アカウントをロックしました。その利用者はロック解除までログインできません。",
    )
    .await
}

async fn unlock(
    State(node): State<AppState>,
    s: UiSession,
    Path(id): Path<u64>,
    method: Method,
    uri: Uri,
    body: Bytes,
) -> Response {
    let back = match begin(&node, &s, &method, &uri, &body).await {
        Ok((_, back)) => back,
        Err(r) => return r,
    };
    let r = node.set_user_locked(&s.principal, id, false).await;
    done(
        &node,
        &s,
        &back,
        id,
        r,
        "ロックを解除しました（パスワード連続失敗によるロックも解除しました）。",
    )
    .await
}

/// `POST /admin/users/{id}/delete`: first the 確認 page; confirmed, 削除.
async fn delete(
    State(node): State<AppState>,
    s: UiSession,
    Path(id): Path<u64>,
    method: Method,
    uri: Uri,
    body: Bytes,
) -> Response {
    let (fields, back) = match begin(&node, &s, &method, &uri, &body).await {
        Ok(begun) => begun,
        Err(r) => return r,
    };
    // Refusals that need no confirming (oneself, the 責任者) are said at once.
    if !confirmed(&fields) && id != s.principal.user_id {
        return confirm_page(
            &node,
            &s,
            &back,
            id,
            ("削除", "delete", "削除する"),
            |u, _| {
                vec![
                    format!(
                        "{} はログインできなくなり、ログイン中の画面も終了します。",
                        u.login
                    ),
                    "医療機関ユーザ検索の一覧から消えます。画面から元に戻すことはできません。"
                        .into(),
                    "操作記録と、この利用者が書いた臨床調査個人票には残ります。".into(),
                ]
            },
        )
        .await;
    }
    let r = node.delete_user(&s.principal, id).await;
    done(
        &node,
        &s,
        &back,
        id,
        r,
        "アカウントを削除しました。ログインできなくなりましたが、操作記録と臨床調査個人票には残ります。",
    )
    .await
}

/// `POST /admin/users/{id}/responsible`: 責任者変更. First the 確認 page; confirmed, the
/// hand-over: the doctor becomes the 医療機関責任者 and the present one stops being it.
async fn responsible(
    State(node): State<AppState>,
    s: UiSession,
    Path(id): Path<u64>,
    method: Method,
    uri: Uri,
    body: Bytes,
) -> Response {
    let (fields, back) = match begin(&node, &s, &method, &uri, &body).await {
        Ok(begun) => begun,
        Err(r) => return r,
    };
    let me = s.principal.user_id;
    if !confirmed(&fields) && id != me {
        // Only a doctor takes the role: a refusal needs no confirming.
        let target = node
            .users_of(&s.principal)
            .await
            .ok()
            .and_then(|all| all.into_iter().find(|u| u.id == id));
        if target.is_some_and(|u| u.kind.role() == Role::Doctor && !u.responsible) {
            return confirm_page(
                &node,
                &s,
                &back,
                id,
                ("責任者変更", "responsible", "責任者を引き継ぐ"),
                |u, holder| {
                    let from = match holder {
                        Some(h) if h.id == me => format!("あなた（{}/ {}）", h.login, h.name),
                        Some(h) => format!("{}/ {}", h.login, h.name),
                        None => "（いません）".to_string(),
                    };
                    vec![
                        format!(
                            "医療機関責任者を {from} から {}/ {} に引き継ぎます。",
                            u.login, u.name
                        ),
                        format!(
                            "{} が利用者の管理（医療機関ユーザ検索とその操作）を行うようになります。",
                            u.login
                        ),
                        format!(
                            "{from} は責任者でなくなり、利用者の管理はできなくなります（元に戻すには、新しい責任者に責任者変更を頼んでください）。"
                        ),
                    ]
                },
            )
            .await;
        }
    }
    match node.pass_responsible(&s.principal, id).await {
        // Whoever passed the role on no longer manages users: their own top page.
        Ok(h) => {
            let still = h.from_user != Some(me);
            let text = format!(
                "医療機関責任者を{}に引き継ぎました。{}は利用者の管理ができなくなりました。",
                h.to_login,
                h.from_login.as_deref().unwrap_or("前の責任者")
            );
            done_then(&node, &s, if still { "/admin/users" } else { "/" }, text).await
        }
        Err(e) => refused(&node, &s, &back, id, None, e).await,
    }
}

async fn expiry(
    State(node): State<AppState>,
    s: UiSession,
    Path(id): Path<u64>,
    method: Method,
    uri: Uri,
    body: Bytes,
) -> Response {
    let (fields, back) = match begin(&node, &s, &method, &uri, &body).await {
        Ok(begun) => begun,
        Err(r) => return r,
    };
    let typed = fields.get("expires_on").map(|v| v.trim()).unwrap_or("");
    let date = match Node::typed_expiry(typed) {
        Ok(d) => d,
        Err(e) => return refused(&node, &s, &back, id, Some(typed.to_string()), e).await,
    };
    let text = match date {
        Some(d) => format!("有効期限を{d}にしました。"),
        None => "有効期限をなしにしました。".to_string(),
    };
    match node.set_user_expiry(&s.principal, id, date).await {
        Ok(()) => done(&node, &s, &back, id, Ok(()), &text).await,
        Err(e) => refused(&node, &s, &back, id, Some(typed.to_string()), e).await,
    }
}

/// 2段階認証の初期化 (`POST /admin/users/totp-reset`, field `login`): audited `totp_reset`;
/// for a user who never set it up, says there was nothing to reset.
async fn reset_totp(
    State(node): State<AppState>,
    s: UiSession,
    method: Method,
    uri: Uri,
    body: Bytes,
) -> Response {
    let (fields, back) = match begin(&node, &s, &method, &uri, &body).await {
        Ok(begun) => begun,
        Err(r) => return r,
    };
    let login = fields.get("login").map(String::as_str).unwrap_or("");
    let text = match node.reset_totp(Some(&s.principal), login).await {
        Ok(true) => {
            "2段階認証を初期化しました。その利用者は次のログインで設定し直します。".to_string()
        }
        Ok(false) => format!(
            "{login} は2段階認証を設定していないため、初期化するものはありませんでした（何も変更していません）。"
        ),
        Err(e) => return error_page(Some(&Ctx::new(&node, &s)), e),
    };
    done_then(&node, &s, &back.address(), text).await
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin/users", get(search))
        .route("/admin/users/totp-reset", post(reset_totp))
        .route("/admin/users/{id}/password-reset", post(reset_password))
        .route("/admin/users/{id}/notice", post(notice))
        .route("/admin/users/{id}/key", post(reissue_key))
        .route("/admin/users/{id}/lock", post(lock))
        .route("/admin/users/{id}/unlock", post(unlock))
        .route("/admin/users/{id}/delete", post(delete))
        .route("/admin/users/{id}/responsible", post(responsible))
        .route("/admin/users/{id}/expiry", post(expiry))
}
