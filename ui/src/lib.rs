//! nsdb's screens, in Japanese, rendered on the server with maud.
//!
//! Views take plain data (the `*View` structs here and form definitions from `nsdb-rules`) and
//! return markup. They never decide anything: what a user may see or do is decided by the node
//! before a view is called, and passed in. Pages work without JavaScript and with the keyboard.

use maud::{DOCTYPE, Markup, html};

pub mod account;
pub mod conflicts;
pub mod doctors;
pub mod editor;
pub mod imports;
pub mod judgment;
pub mod linkage;
pub mod list;
pub mod monitor;
pub mod papers;
pub mod research;
pub mod review;
pub mod terminals;
pub mod users;
pub mod workflow;

pub use editor::{Actions, EditorView, SheetMeta};
pub use list::{ListRow, ListView};

/// The stylesheet served at `/static/app.css`.
pub const STYLESHEET: &str = include_str!("../static/app.css");

/// The script served at `/static/app.js`: enhancements only; every page works without it.
pub const SCRIPT: &str = include_str!("../static/app.js");

/// What every page of a signed-in user needs.
#[derive(Debug, Clone)]
pub struct PageContext<'a> {
    /// The node, e.g. "医療機関 東京テスト病院".
    pub node_label: &'a str,
    pub user_name: &'a str,
    pub user_kind: &'a str,
    /// Shows the menu entries for sheets.
    pub can_read_sheets: bool,
    /// Shows 新規作成.
    pub can_create: bool,
    /// Shows ユーザ管理.
    pub is_admin: bool,
    /// Shows 指定医ID発行 (a municipality's 責任者).
    pub issues_doctors: bool,
    /// Shows 自アカウント管理 (a designated doctor: the 兼務).
    pub is_doctor: bool,
    /// Shows 受付一覧 (a municipality's reviewer).
    pub can_review: bool,
    /// Shows 研究・統計 (the ministry at the hub).
    pub can_research: bool,
    /// Shows 紙臨個票入力 (the data entry for paper sheets at the hub).
    pub can_enter_papers: bool,
    /// Shows 利用状況の監視 (the 責任者, the ministry), with a badge of `open_alerts` when above 0.
    pub can_monitor: bool,
    /// Alerts nobody has acknowledged yet.
    pub open_alerts: u64,
    pub csrf: &'a str,
    /// A one-time notice the server kept for this page (after an action, e.g.
    /// 「パスワードを初期化しました」): shown above the page's content, once.
    pub flash: Option<Flash<'a>>,
}

/// A one-time notice, with a link when it offers one (e.g. a download held by 再認証).
#[derive(Debug, Clone, Copy)]
pub struct Flash<'a> {
    pub text: &'a str,
    /// (href, text)
    pub link: Option<(&'a str, &'a str)>,
    /// The link is a download to start at once (the page stays; the link is the fallback).
    pub download: bool,
}

fn page(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="ja" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " | nsdb 難病・小慢データベース" }
                link rel="stylesheet" href="/static/app.css";
                script src="/static/app.js" defer {}
            }
            body { (body) }
        }
    }
}

/// The hint beside every date a user types outside a form's items (生年月日 at 受付, 有効期間,
/// 記載年月日 in the search): what the server accepts (`nsdb_rules::value::Date::typed`).
pub const DATE_HINT: &str = "西暦（2026-04-01）または和暦（令和8年4月1日、R8.4.1）";

/// The hint beside every year-month a user types (発症年月 and the like): what the server
/// accepts.
pub const YEAR_MONTH_HINT: &str = "西暦（2026-04）または和暦（令和8年4月、R8.4）";

/// A text field for a date, never a date picker (a picker cannot take 和暦 such as
/// 昭和50年4月1日 or S50.4.1), with [`DATE_HINT`] beside it. `id` is also the hint's prefix.
pub fn date_input(id: &str, name: &str, value: &str, required: bool) -> Markup {
    html! {
        input id=(id) name=(name) type="text" autocomplete="off" required[required]
            value=(value) placeholder="2026-04-01" aria-describedby={ (id) "-hint" };
        " " span.hint.date-hint id={ (id) "-hint" } { (DATE_HINT) }
    }
}

/// A page of a signed-in user: header, menu, then `main`.
pub fn layout(ctx: &PageContext<'_>, title: &str, main: Markup) -> Markup {
    layout_with_skip(ctx, title, ("#main", "本文へ移動"), main)
}

/// [`layout`] whose first link (the first Tab from the top) goes to `skip` (href, text)
/// instead of the page's body, e.g. the editor's first field.
pub fn layout_with_skip(
    ctx: &PageContext<'_>,
    title: &str,
    skip: (&str, &str),
    main: Markup,
) -> Markup {
    page(
        title,
        html! {
            a.skip href=(skip.0) { (skip.1) }
            header.top {
                span.brand { "nsdb 難病・小慢データベース" }
                span.node { (ctx.node_label) }
                nav aria-label="メニュー" {
                    @if ctx.can_review {
                        a href="/intake" { "受付一覧" }
                    }
                    @if ctx.can_read_sheets {
                        a href="/sheets" { "臨床調査個人票検索" }
                    }
                    @if ctx.can_create {
                        a href="/sheets/new" { "新規作成" }
                        a href="/workflow" { "ワークフロー" }
                        a href="/imports" { "一括登録" }
                        a href="/linkage" { "臨個票連携" }
                    }
                    @if ctx.is_admin {
                        a href="/admin/users" { "ユーザ管理" }
                        a href="/admin/terminals" { "端末証明書" }
                    }
                    @if ctx.issues_doctors {
                        a href="/admin/doctors" { "指定医ID発行" }
                    }
                    @if ctx.can_research {
                        a href="/research" { "研究・統計" }
                    }
                    @if ctx.can_enter_papers {
                        a href="/papers" { "紙臨個票入力" }
                    }
                    @if ctx.can_monitor {
                        a href="/monitor" {
                            "利用状況の監視"
                            @if ctx.open_alerts > 0 {
                                " " span.badge.alerts aria-label={ "未確認の警告 " (ctx.open_alerts) "件" } { (ctx.open_alerts) }
                            }
                        }
                    }
                }
                span.user { (ctx.user_name) "（" (ctx.user_kind) "）" }
                @if ctx.is_doctor {
                    a.account href="/account/kenmu" { "自アカウント管理" }
                }
                a.account href="/account/password" { "パスワード変更" }
                a.account href="/account/totp" { "2段階認証の設定" }
                form method="post" action="/logout" {
                    input type="hidden" name="csrf" value=(ctx.csrf);
                    button.link type="submit" { "ログアウト" }
                }
            }
            main #main {
                h1 { (title) }
                @if let Some(f) = ctx.flash {
                    p.notice.flash role="status" {
                        (f.text)
                        @if let Some((href, text)) = f.link {
                            " " a href=(href) download[f.download] { (text) }
                            @if f.download {
                                meta http-equiv="refresh" content={ "0;url=" (href) };
                            }
                        }
                    }
                }
                (main)
            }
        },
    )
}

/// The sign-in page.
/// What a sign-in carries when a save arrived after the session expired: the sheet and the
/// form exactly as posted, saved once the user has signed in again.
#[derive(Debug, Clone, Copy)]
pub struct Resume<'a> {
    pub sheet_id: &'a str,
    /// The posted form, URL-encoded.
    pub body: &'a str,
}

/// The sign-in page; with `resume`, it says the session expired and that the values typed
/// are kept and saved after signing in.
pub fn login(
    node_label: &str,
    csrf: &str,
    error: Option<&str>,
    login_id: &str,
    resume: Option<Resume<'_>>,
) -> Markup {
    page(
        "ログイン",
        html! {
            main #main .login {
                h1 { "nsdb 難病・小慢データベース" }
                p.node { (node_label) }
                @if let Some(e) = error {
                    p.error role="alert" { (e) }
                }
                @if resume.is_some() {
                    p.notice.resume role="status" {
                        "セッションの有効期限が切れたため、まだ保存していません。入力した内容はこの画面が預かっています。"
                        "もう一度ログインすると保存して、臨床調査個人票・医療意見書に戻ります。"
                    }
                }
                form method="post" action="/login" {
                    input type="hidden" name="csrf" value=(csrf);
                    @if let Some(r) = resume {
                        input type="hidden" name="_resume_sheet" value=(r.sheet_id);
                        input type="hidden" name="_resume_body" value=(r.body);
                    }
                    label for="login" { "ユーザID" }
                    input #login name="login" autocomplete="username" required autofocus value=(login_id);
                    label for="password" { "パスワード" }
                    input #password name="password" type="password" autocomplete="current-password" required;
                    button.primary type="submit" { "ログイン" }
                }
            }
        },
    )
}

/// A page that says what went wrong and where to go from here.
pub fn error(ctx: Option<&PageContext<'_>>, title: &str, message: &str) -> Markup {
    let body = html! {
        p.error role="alert" { (message) }
        p { a href="/" { "トップへ戻る" } }
    };
    match ctx {
        Some(ctx) => layout(ctx, title, body),
        None => page(title, html! { main #main { h1 { (title) } (body) } }),
    }
}

/// A save the server could not store (its disk is full, or another fault on its side): the
/// message, and the values as they were posted (`fields`, name and value, repeated names kept)
/// in a form that posts them again to `action`, so nothing typed is lost and one button retries.
pub fn save_failed(
    ctx: &PageContext<'_>,
    title: &str,
    message: &str,
    action: &str,
    back: &str,
    fields: &[(String, String)],
) -> Markup {
    let body = html! {
        p.error role="alert" { (message) }
        p { "入力した内容はこのページに残っています。「もう一度保存する」で同じ内容をもう一度保存します。" }
        form method="post" action=(action) {
            (held_fields(fields))
            button.primary type="submit" { "もう一度保存する" }
            " "
            a href=(back) { "保存せずに編集画面へ戻る" }
        }
    };
    layout(ctx, title, body)
}

/// A posted form held in a page as hidden fields (name and value, repeated names kept), so
/// that posting the page's form sends it again exactly: after a failed save, and after 再認証.
pub fn held_fields(fields: &[(String, String)]) -> Markup {
    html! {
        @for (name, value) in fields {
            input type="hidden" name=(name) value=(value);
        }
    }
}

/// 様式版 as a person reads it: a form with its own form file shows its version (`2023.04`); a
/// form made from the official disease list, which records the doctor's own selections and has
/// no form file of its own, has a version `list-…` and shows as 共通様式.
pub fn form_version_label(version: &str) -> String {
    if version.starts_with("list-") {
        "共通様式".to_string()
    } else {
        version.to_string()
    }
}

/// What each 様式の水準 means, for the legend under the new-sheet list.
pub const FORM_LEVELS: [(&str, &str); 3] = [
    (
        "機械判定",
        "入力内容から診断のカテゴリー・重症度（様式によってはその一方）を判定し、指定医の選択と照合します（一次判定表示）。",
    ),
    (
        "チェック",
        "疾病ごとの項目と入力チェックがあります。判定は指定医の選択のとおりです。",
    ),
    (
        "記載のみ",
        "共通の項目と、診断のカテゴリー・重症度の指定医の選択を記録します。疾病ごとのチェック・判定はありません。",
    ),
];

/// One selectable form on the new-sheet page.
#[derive(Debug, Clone)]
pub struct FormChoice<'a> {
    pub id: &'a str,
    pub kind: &'a str,
    pub kokuji: u16,
    pub eda: u16,
    pub disease: &'a str,
    pub version: &'a str,
    /// 記載のみ / チェック / 機械判定 (`FormLevel::label`).
    pub level: &'a str,
    /// The 小慢 number was inferred, not read from a source (the form says 番号は推定).
    pub number_unverified: bool,
}

/// What the new-sheet page lists: the forms matching `query` (all forms with their own form
/// file when it is empty), of `total` forms in the catalogue.
#[derive(Debug, Clone)]
pub struct FormPicker<'a> {
    pub query: &'a str,
    pub choices: Vec<FormChoice<'a>>,
    /// Matches beyond those listed (the page lists at most a screenful).
    pub more: usize,
    pub total: usize,
    /// The id the new sheet will have (a fresh one per page): sent with the choice, so that
    /// the same page sent twice (Back and 作成 again) opens the sheet the first send made.
    pub new_id: &'a str,
}

/// Choosing the disease for a new sheet: a search by 病名, 別名 or 告示番号 over every
/// disease of both programmes, and the matching forms with what the rules do for each.
pub fn new_sheet(ctx: &PageContext<'_>, picker: &FormPicker<'_>) -> Markup {
    layout(
        ctx,
        "新規作成",
        html! {
            p { "作成する臨床調査個人票・医療意見書の疾病を選んでください。" }
            form.search method="get" action="/sheets/new" role="search" {
                label for="q" { "病名・別名・告示番号" }
                input #q type="search" name="q" value=(picker.query) autofocus
                    autocomplete="off" placeholder="例: パーキンソン、6、潰瘍性"
                    aria-describedby="q-hint";
                button type="submit" { "検索" }
                @if !picker.query.is_empty() { a href="/sheets/new" { "クリア" } }
            }
            p.hint #q-hint {
                "病名は書かれている文字（漢字・カタカナ、ひらがなでも可）のまま探します。漢字の読みがな（例: かいよう）では見つかりません。"
                "告示番号、小慢の番号（例: 12-04-014）、診断基準に書かれている略称（例: ALS、MG、ITP）でも探せます。"
                "小慢の疾患群16（脈管系疾患）は公式の疾病一覧が未収録のため、まだ選べません。"
            }
            @if picker.query.is_empty() {
                p.hint {
                    "全" (picker.total) "疾病のうち、疾病ごとの様式があるものを表示しています。"
                    "他の疾病は病名・告示番号で検索してください。"
                }
            } @else {
                p role="status" { "「" (picker.query) "」の検索結果 " (picker.choices.len() + picker.more) "件" }
            }
            @if picker.choices.is_empty() {
                p.notice { "該当する疾病がありません。病名の一部や告示番号で検索してください。" }
            } @else {
                table.list {
                    thead { tr { th { "様式" } th { "告示番号（小慢は疾患群・疾病番号）" } th { "病名" } th { "様式の水準" } th { "様式版" } th { "操作" } } }
                    tbody {
                        @for f in &picker.choices {
                            tr {
                                td { (f.kind) }
                                td {
                                    (nsdb_rules::form::disease_number(f.id, f.kokuji, f.eda))
                                    @if f.number_unverified {
                                        " " span.help title="出典で確かめられていない番号です" { "（番号未確認）" }
                                    }
                                }
                                td { (f.disease) }
                                td { (f.level) }
                                td { (form_version_label(f.version)) }
                                td {
                                    form method="post" action="/sheets" {
                                        input type="hidden" name="csrf" value=(ctx.csrf);
                                        input type="hidden" name="form_id" value=(f.id);
                                        input type="hidden" name="sheet" value=(picker.new_id);
                                        button.primary type="submit" { "作成" }
                                    }
                                }
                            }
                        }
                    }
                }
                @if picker.more > 0 {
                    p.hint { "ほか" (picker.more) "件あります。検索語を絞り込んでください。" }
                }
                dl.legend aria-label="様式の水準" {
                    @for (level, meaning) in FORM_LEVELS {
                        @if picker.choices.iter().any(|f| f.level == level) {
                            dt { (level) } dd { (meaning) }
                        }
                    }
                }
            }
        },
    )
}
