//! 医療機関ユーザ検索 (the 責任者's user search, as the seed's ID/PW pages draw it): filters
//! ユーザ種別, 医療機関, 氏名 (姓/名); columns ユーザ種別, 医療機関, 部署, ユーザID/氏名 with the
//! 責任者 badge, 有効期限, 操作; paging. The 確認 page that 削除, 責任者変更 and
//! パスワード初期化 pass through (a second, deliberate submit), and the page that shows a
//! one-time initial password once. Every action is a form posted with the CSRF token and the
//! search it came from (`back`), so that a refusal shows beside its row with the typed value
//! kept and キャンセル returns to the same search; what may be done was decided by the node,
//! which passes only what each row offers.

use maud::{Markup, html};

use crate::{PageContext, layout};

/// One user in the results.
#[derive(Debug, Clone)]
pub struct UserLine<'a> {
    pub id: u64,
    pub login: &'a str,
    pub name: &'a str,
    /// ユーザ種別 as people read it (難病指定医, 医療クラーク等, …).
    pub kind: &'a str,
    pub institution: &'a str,
    /// 部署 (部門/診療科).
    pub department: &'a str,
    /// Holds the 責任者 role (the badge).
    pub responsible: bool,
    /// Locked by a 責任者 (アカウントロック).
    pub locked: bool,
    /// Locked for a while after repeated wrong passwords (連続失敗).
    pub locked_after_failures: bool,
    /// Past its 有効期限.
    pub expired: bool,
    /// `YYYY-MM-DD`, or empty for no expiry.
    pub expires_on: &'a str,
    /// Has enrolled the second factor (offers 2段階認証の初期化).
    pub totp: bool,
    /// A doctor who does not hold the 責任者 role (offers 責任者変更).
    pub may_become_responsible: bool,
    /// A doctor or a clerk: signs sealed files with the check tool (offers 暗号鍵再発行).
    pub uses_check_tool: bool,
    /// The signed-in 責任者 themself: the actions on one's own account are not offered.
    pub me: bool,
}

/// The search form's values and the page of results.
#[derive(Debug, Clone)]
pub struct UserSearchView<'a> {
    /// (value, label) of every ユーザ種別 the filter offers.
    pub kinds: &'a [(&'a str, &'a str)],
    pub kind: &'a str,
    /// The one institution the 責任者 manages: (code, name).
    pub institution: (&'a str, &'a str),
    pub family_name: &'a str,
    pub given_name: &'a str,
    pub rows: &'a [UserLine<'a>],
    pub total: usize,
    pub page: usize,
    pub pages: usize,
    pub per_page: usize,
    /// The query string of this search without its page, for the paging links.
    pub query: &'a str,
    /// The query string of this search with its page, posted with every action (`back`) to
    /// come back to it.
    pub back: &'a str,
    /// An action refused on one row, shown beside it.
    pub problem: Option<RowProblem<'a>>,
    /// How old this node's copy of the doctors' accounts issued by municipalities is (their
    /// locks and deletions arrive with the next sync), when the node holds any.
    pub registry_note: Option<&'a str>,
}

/// An action refused on one user, shown in that user's row.
#[derive(Debug, Clone)]
pub struct RowProblem<'a> {
    pub user_id: u64,
    /// The 有効期限 typed, kept in its box, when the refusal is about it.
    pub expires_on: Option<&'a str>,
    pub message: &'a str,
}

/// A 確認 page: what will happen to whom, the button that does it (a second submit with the
/// CSRF token and `confirmed=yes`) and キャンセル back to the search.
#[derive(Debug, Clone)]
pub struct ConfirmView<'a> {
    /// The act's name (削除, 責任者変更, パスワード初期化).
    pub title: &'a str,
    /// The user acted on, as `ID/ 氏名（種別）`.
    pub whom: &'a str,
    /// What will happen, sentence by sentence.
    pub effects: &'a [String],
    /// Where the second submit goes.
    pub action: &'a str,
    /// The button's words (e.g. 「削除する」).
    pub button: &'a str,
    /// The search's query string, for キャンセル and for after the act.
    pub back: &'a str,
}

fn action(ctx: &PageContext<'_>, back: &str, id: u64, path: &str, label: &str) -> Markup {
    html! {
        form.inline method="post" action={ "/admin/users/" (id) "/" (path) } {
            input type="hidden" name="csrf" value=(ctx.csrf);
            input type="hidden" name="back" value=(back);
            button type="submit" { (label) }
        }
    }
}

/// 医療機関ユーザ検索.
pub fn user_search(ctx: &PageContext<'_>, v: &UserSearchView<'_>) -> Markup {
    layout(
        ctx,
        "医療機関ユーザ検索",
        html! {
            form.search method="get" action="/admin/users" {
                label { "ユーザ種別 "
                    select name="kind" {
                        option value="" selected[v.kind.is_empty()] { "未指定" }
                        @for (value, label) in v.kinds {
                            option value=(value) selected[*value == v.kind] { (label) }
                        }
                    }
                }
                " "
                label { "医療機関 "
                    select name="institution" {
                        option value=(v.institution.0) selected { (v.institution.1) }
                    }
                }
                " 氏名: "
                label { "姓 " input type="text" name="family" value=(v.family_name) size="8"; }
                " "
                label { "名 " input type="text" name="given" value=(v.given_name) size="8"; }
                " "
                button type="submit" { "検索" }
                " "
                a href="/admin/users" { "クリア" }
            }
            p { "検索結果件数 " (v.total) "件 表示件数/頁 " (v.per_page) }
            @if let Some(note) = v.registry_note {
                p.hint { (note) }
            }
            table.list {
                thead { tr {
                    th { "ユーザ種別" } th { "医療機関" } th { "部署 (部門/診療科)" }
                    th { "ユーザID/氏名" } th { "有効期限" } th { "操作" }
                } }
                tbody {
                    @for u in v.rows {
                        tr {
                            td { (u.kind) }
                            td { (u.institution) }
                            td { (u.department) }
                            @let problem = v.problem.as_ref().filter(|p| p.user_id == u.id);
                            @let expiry_problem = problem.filter(|p| p.expires_on.is_some());
                            td {
                                (u.login) "/ " (u.name)
                                @if u.responsible { " " small.badge.responsible { "医療機関責任者" } }
                                @if u.locked { " " small.badge.locked { "ロック中（責任者によるロック）" } }
                                @if u.locked_after_failures { " " small.badge.locked { "ロック中（パスワード連続失敗）" } }
                                @if u.totp { " " small.badge.totp { "2段階認証設定済み" } }
                            }
                            td {
                                @if u.expires_on.is_empty() { "なし" } @else { (u.expires_on) }
                                @if u.expired { " " small.badge.expired { "期限切れ" } }
                                @if !u.me {
                                    form.inline method="post" action={ "/admin/users/" (u.id) "/expiry" } {
                                        input type="hidden" name="csrf" value=(ctx.csrf);
                                        input type="hidden" name="back" value=(v.back);
                                        label.visually-hidden for={ "expires-" (u.id) } { (u.login) "の有効期限" }
                                        input #{ "expires-" (u.id) } type="text" name="expires_on" size="10"
                                            value=(expiry_problem.and_then(|p| p.expires_on).unwrap_or(u.expires_on))
                                            placeholder="2027-03-31"
                                            aria-invalid=[expiry_problem.map(|_| "true")]
                                            aria-describedby=[expiry_problem.map(|_| format!("problem-{}", u.id))];
                                        button type="submit" { "有効期限変更" }
                                    }
                                    @if let Some(p) = expiry_problem {
                                        p.error #{ "problem-" (u.id) } role="alert" { (p.message) }
                                    }
                                }
                            }
                            td.actions {
                                @if let Some(p) = problem.filter(|p| p.expires_on.is_none() || u.me) {
                                    p.error #{ "problem-" (u.id) } role="alert" { (p.message) }
                                }
                                @if u.me {
                                    span.hint { "ご自身のアカウントは操作できません（パスワードは「パスワード変更」、その他は別の責任者に依頼してください）。" }
                                } @else {
                                    (action(ctx, v.back, u.id, "password-reset", "パスワード初期化"))
                                    @if u.locked || u.locked_after_failures {
                                        (action(ctx, v.back, u.id, "unlock", "ロック解除"))
                                    }
                                    @if !u.locked {
                                        (action(ctx, v.back, u.id, "lock", "アカウントロック"))
                                    }
                                    @if u.totp {
                                        form.inline method="post" action="/admin/users/totp-reset" {
                                            input type="hidden" name="csrf" value=(ctx.csrf);
                                            input type="hidden" name="back" value=(v.back);
                                            input type="hidden" name="login" value=(u.login);
                                            button type="submit" { "2段階認証の初期化" }
                                        }
                                    }
                                    @if u.uses_check_tool {
                                        (action(ctx, v.back, u.id, "key", "暗号鍵再発行"))
                                    }
                                    @if u.may_become_responsible {
                                        (action(ctx, v.back, u.id, "responsible", "責任者変更"))
                                    }
                                    (action(ctx, v.back, u.id, "notice", "IDパスワード通知書ダウンロード"))
                                    @if !u.responsible {
                                        (action(ctx, v.back, u.id, "delete", "削除"))
                                    }
                                }
                            }
                        }
                    }
                }
            }
            @if v.pages > 1 {
                nav.paging aria-label="ページ" {
                    @if v.page > 1 {
                        a href={ "/admin/users?" (v.query) "&page=" (v.page - 1) } { "前へ" }
                    }
                    " " (v.page) " / " (v.pages) " "
                    @if v.page < v.pages {
                        a href={ "/admin/users?" (v.query) "&page=" (v.page + 1) } { "次へ" }
                    }
                }
            }
            p.hint {
                "パスワード初期化・IDパスワード通知書ダウンロードは、その都度新しい初期パスワードを設定します（利用者は最初のログインで変更します）。"
                "削除したアカウントはログインできなくなり一覧から消えますが、操作記録と臨床調査個人票には残ります。"
                "医療機関責任者（利用者を管理する人）は医療機関に一人です。責任者変更を押すと、その指定医に引き継ぎ、今の責任者は利用者の管理ができなくなります（削除・責任者変更・パスワード初期化は確認画面で確定します）。"
                "責任者の指定医は、責任者変更で他の指定医に引き継いでから削除できます。"
                "暗号鍵再発行は、チェックツールの新しい署名鍵をファイルでお渡しします（前の鍵で署名したファイルは取り込めなくなります）。"
            }
        },
    )
}

/// The 確認 page of an action that cannot be undone from the screen.
pub fn confirm(ctx: &PageContext<'_>, v: &ConfirmView<'_>) -> Markup {
    layout(
        ctx,
        &format!("{}の確認", v.title),
        html! {
            p { "対象: " strong { (v.whom) } }
            ul.effects {
                @for e in v.effects { li { (e) } }
            }
            form method="post" action=(v.action) {
                input type="hidden" name="csrf" value=(ctx.csrf);
                input type="hidden" name="back" value=(v.back);
                input type="hidden" name="confirmed" value="yes";
                button.primary type="submit" { (v.button) }
                " "
                a.button href={ "/admin/users" @if !v.back.is_empty() { "?" (v.back) } } { "キャンセル" }
            }
        },
    )
}

/// The one-time initial password just set (パスワード初期化), shown once.
pub fn initial_password(
    ctx: &PageContext<'_>,
    login: &str,
    name: &str,
    password: &str,
    back: &str,
) -> Markup {
    layout(
        ctx,
        "パスワード初期化",
        html! {
            p.notice role="status" { (login) "/ " (name) " のパスワードを初期化しました。" }
            p { "初期パスワード: " code.initial-password { (password) } }
            p.hint {
                "この初期パスワードはこの画面でだけ表示され、保存されません。本人に確実に伝えてください。"
                "本人は最初のログインでパスワードを変更します。"
            }
            p { a href={ "/admin/users" @if !back.is_empty() { "?" (back) } } { "医療機関ユーザ検索に戻る" } }
        },
    )
}
