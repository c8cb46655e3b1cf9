//! 医療機関ユーザ検索 (the 責任者's user search, as the seed's ID/PW pages draw it): filters
//! ユーザ種別, 医療機関, 氏名 (姓/名); columns ユーザ種別, 医療機関, 部署, ユーザID/氏名 with the
//! 責任者 badge, 有効期限, 操作; paging. And the page that shows a one-time initial password
//! once. Every action is a form posted with the CSRF token; what may be done was decided by the
//! node, which passes only what each row offers.

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
    pub locked: bool,
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
}

fn action(ctx: &PageContext<'_>, id: u64, path: &str, label: &str) -> Markup {
    html! {
        form.inline method="post" action={ "/admin/users/" (id) "/" (path) } {
            input type="hidden" name="csrf" value=(ctx.csrf);
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
                            td {
                                (u.login) "/ " (u.name)
                                @if u.responsible { " " small.badge { "責任者" } }
                                @if u.locked { " " small.badge.locked { "ロック中" } }
                                @if u.totp { " " small.badge.totp { "2段階認証設定済み" } }
                            }
                            td {
                                @if u.expires_on.is_empty() { "なし" } @else { (u.expires_on) }
                                @if u.expired { " " small.badge.expired { "期限切れ" } }
                                @if !u.me {
                                    form.inline method="post" action={ "/admin/users/" (u.id) "/expiry" } {
                                        input type="hidden" name="csrf" value=(ctx.csrf);
                                        label { span.visually-hidden { (u.login) "の有効期限" }
                                            input type="text" name="expires_on" size="10"
                                                value=(u.expires_on) placeholder="2027-03-31"; }
                                        button type="submit" { "有効期限変更" }
                                    }
                                }
                            }
                            td.actions {
                                @if u.me {
                                    span.hint { "ご自身のアカウントは操作できません（パスワードは「パスワード変更」、その他は別の責任者に依頼してください）。" }
                                } @else {
                                    (action(ctx, u.id, "password-reset", "パスワード初期化"))
                                    @if u.locked {
                                        (action(ctx, u.id, "unlock", "ロック解除"))
                                    } @else {
                                        (action(ctx, u.id, "lock", "アカウントロック"))
                                    }
                                    @if u.totp {
                                        form.inline method="post" action="/admin/users/totp-reset" {
                                            input type="hidden" name="csrf" value=(ctx.csrf);
                                            input type="hidden" name="login" value=(u.login);
                                            button type="submit" { "2段階認証の初期化" }
                                        }
                                    }
                                    @if u.uses_check_tool {
                                        (action(ctx, u.id, "key", "暗号鍵再発行"))
                                    }
                                    @if u.may_become_responsible {
                                        (action(ctx, u.id, "responsible", "責任者変更"))
                                    }
                                    (action(ctx, u.id, "notice", "IDパスワード通知書ダウンロード"))
                                    @if !u.responsible {
                                        (action(ctx, u.id, "delete", "削除"))
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
                "責任者の指定医は、責任者変更で他の指定医に引き継いでから削除できます。"
                "暗号鍵再発行は、チェックツールの新しい署名鍵をファイルでお渡しします（前の鍵で署名したファイルは取り込めなくなります）。"
            }
        },
    )
}

/// The one-time initial password just set (パスワード初期化), shown once.
pub fn initial_password(ctx: &PageContext<'_>, login: &str, name: &str, password: &str) -> Markup {
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
            p { a href="/admin/users" { "医療機関ユーザ検索に戻る" } }
        },
    )
}
