//! 指定医ID発行 (a municipality's 責任者: the seed's 自治体区画のID発行機能) and 兼務先の登録
//! (a doctor's 自アカウント管理, the seed's 兼務 page).

use maud::{Markup, html};

use crate::{PageContext, layout};

/// What was typed into the issue form, kept when it is refused.
#[derive(Debug, Clone, Default)]
pub struct IssueForm<'a> {
    pub kind: &'a str,
    pub register_number: &'a str,
    pub name: &'a str,
    pub institution: &'a str,
    pub institution_name: &'a str,
    pub department: &'a str,
    pub expires_on: &'a str,
    /// The field refused (`kind`, `register_number`, …) and why.
    pub error: Option<(&'a str, &'a str)>,
}

/// One issued doctor in the list.
#[derive(Debug, Clone)]
pub struct IssuedLine<'a> {
    pub account_id: &'a str,
    pub login: &'a str,
    pub name: &'a str,
    pub kind: &'a str,
    pub register_number: &'a str,
    /// 主たる勤務先: name (code).
    pub institution: String,
    pub department: &'a str,
    pub expires_on: &'a str,
    pub locked: bool,
    pub deleted: bool,
    pub pending: bool,
    pub refused: Option<&'a str>,
    /// 兼務先 (count).
    pub kenmu: usize,
}

/// The page: the form and the list.
#[derive(Debug, Clone)]
pub struct IssuedView<'a> {
    /// (value, label) of the doctor kinds.
    pub kinds: &'a [(&'a str, &'a str)],
    pub form: IssueForm<'a>,
    pub rows: &'a [IssuedLine<'a>],
}

fn field_error(form: &IssueForm<'_>, name: &str) -> Markup {
    html! {
        @if let Some((f, message)) = form.error {
            @if f == name {
                span.field-error id={ "err-" (name) } role="alert" { (message) }
            }
        }
    }
}

fn invalid(form: &IssueForm<'_>, name: &str) -> bool {
    form.error.is_some_and(|(f, _)| f == name)
}

fn act(ctx: &PageContext<'_>, id: &str, path: &str, label: &str) -> Markup {
    html! {
        form.inline method="post" action={ "/admin/doctors/" (id) "/" (path) } {
            input type="hidden" name="csrf" value=(ctx.csrf);
            button type="submit" { (label) }
        }
    }
}

/// 指定医ID発行.
pub fn issued(ctx: &PageContext<'_>, v: &IssuedView<'_>) -> Markup {
    let f = &v.form;
    let text = |name: &'static str, label: &'static str, value: &str, size: u32| {
        html! {
            p {
                label for={ "f-" (name) } { (label) }
                " "
                input id={ "f-" (name) } type="text" name=(name) value=(value) size=(size)
                    aria-invalid=[invalid(f, name).then_some("true")]
                    aria-describedby=[invalid(f, name).then(|| format!("err-{name}"))];
                " " (field_error(f, name))
            }
        }
    };
    layout(
        ctx,
        "指定医ID発行",
        html! {
            p.hint {
                "指定医のID（ユーザID）を発行します。発行したIDと初期パスワードはIDパスワード通知書（PDF）で渡し、"
                "本人は最初のログインでパスワードを変更します。IDはハブを経て主たる勤務先の医療機関のノードに届き、"
                "次の同期からそこでログインできます。その医療機関の1人目の指定医は医療機関責任者になります。"
            }
            form.issue method="post" action="/admin/doctors" {
                input type="hidden" name="csrf" value=(ctx.csrf);
                p {
                    label for="f-kind" { "指定医の種別（必須）" }
                    " "
                    select id="f-kind" name="kind" aria-invalid=[invalid(f, "kind").then_some("true")] {
                        @for (value, label) in v.kinds {
                            option value=(value) selected[*value == f.kind] { (label) }
                        }
                    }
                    " " (field_error(f, "kind"))
                }
                (text("register_number", "医籍登録番号（必須）", f.register_number, 10))
                (text("name", "氏名（必須、姓と名の間に空白）", f.name, 20))
                (text("institution", "主たる勤務先の医療機関番号（必須、10桁）", f.institution, 12))
                (text("institution_name", "医療機関名（必須）", f.institution_name, 24))
                (text("department", "部署（部門/診療科）（必須）", f.department, 16))
                p {
                    label for="f-expires_on" { "有効期限（空欄は期限なし）" }
                    " "
                    (crate::date_input("f-expires_on", "expires_on", f.expires_on, false))
                    " " (field_error(f, "expires_on"))
                }
                p { button.primary type="submit" { "発行してIDパスワード通知書をダウンロード" } }
            }
            h2 { "発行した指定医" }
            @if v.rows.is_empty() {
                p { "まだ発行していません。" }
            } @else {
                table.list {
                    thead { tr {
                        th { "ユーザID/氏名" } th { "種別" } th { "医籍登録番号" }
                        th { "主たる勤務先" } th { "部署" } th { "兼務先" } th { "有効期限" }
                        th { "状態" } th { "操作" }
                    } }
                    tbody {
                        @for r in v.rows {
                            tr {
                                td { (r.login) "/ " (r.name) }
                                td { (r.kind) }
                                td { "第" (r.register_number) "号" }
                                td { (r.institution) }
                                td { (r.department) }
                                td { (r.kenmu) "件" }
                                td { (r.expires_on) }
                                td {
                                    @if r.deleted { "削除済み" }
                                    @else if r.locked { span.badge { "ロック中" } }
                                    @else { "有効" }
                                    br;
                                    @if let Some(reason) = r.refused {
                                        span.field-error role="alert" { "ハブが受け付けませんでした: " (reason) }
                                    } @else if r.pending {
                                        span.hint { "ハブへの送信待ち（次の同期で送ります）" }
                                    } @else {
                                        span.hint { "ハブに登録済み" }
                                    }
                                }
                                td {
                                    @if !r.deleted {
                                        @if r.locked { (act(ctx, r.account_id, "unlock", "ロック解除")) }
                                        @else { (act(ctx, r.account_id, "lock", "アカウントロック")) }
                                        (act(ctx, r.account_id, "password-reset", "パスワード初期化（通知書）"))
                                        (act(ctx, r.account_id, "delete", "削除"))
                                    }
                                }
                            }
                        }
                    }
                }
            }
        },
    )
}

/// A 確認 page before 削除 of an issued doctor's ID.
pub fn confirm_delete(ctx: &PageContext<'_>, account_id: &str, whom: &str) -> Markup {
    layout(
        ctx,
        "削除の確認",
        html! {
            p { "対象: " strong { (whom) } }
            ul.effects {
                li { "このIDは、主たる勤務先と兼務先のすべての医療機関で、次の同期からログインできなくなります。" }
                li { "記載した臨個票と監査ログの記録は残ります。削除は元に戻せません。" }
            }
            form method="post" action={ "/admin/doctors/" (account_id) "/delete" } {
                input type="hidden" name="csrf" value=(ctx.csrf);
                input type="hidden" name="confirmed" value="yes";
                button.primary type="submit" { "削除する" }
                " "
                a.button href="/admin/doctors" { "キャンセル" }
            }
        },
    )
}

/// One 兼務 row as shown and as typed.
#[derive(Debug, Clone, Default)]
pub struct KenmuLine<'a> {
    pub institution: &'a str,
    /// The registry's name (empty for a row not registered yet).
    pub name: &'a str,
    pub department: &'a str,
    pub visible: bool,
}

/// 自アカウント管理: the account and its 兼務.
#[derive(Debug, Clone)]
pub struct KenmuView<'a> {
    pub login: &'a str,
    pub kind: &'a str,
    pub register_number: &'a str,
    /// 主たる勤務先: (code, name).
    pub home: (&'a str, &'a str),
    pub department: &'a str,
    pub rows: &'a [KenmuLine<'a>],
    /// Rows offered (the registered ones and blank ones up to the maximum).
    pub max: usize,
    /// When this node's copy of the account was last brought up to date by the hub.
    pub synced: &'a str,
    pub error: Option<&'a str>,
}

/// 自アカウント管理 (兼務先の登録).
pub fn kenmu(ctx: &PageContext<'_>, v: &KenmuView<'_>) -> Markup {
    let blank = KenmuLine::default();
    layout(
        ctx,
        "自アカウント管理",
        html! {
            table.fields {
                tr { th { "ユーザID" } td { (v.login) } }
                tr { th { "医籍登録番号" } td { "第" (v.register_number) "号" } }
                tr { th { "指定医の種別" } td { (v.kind) } }
                tr { th { "主たる勤務先の医療機関" } td { (v.home.1) "（医療機関番号 " (v.home.0) "）" } }
                tr { th { "部署（部門/診療科）" } td { (v.department) } }
            }
            p.hint { "アカウント情報: " (v.synced) }
            h2 { "兼務する医療機関（最大" (v.max) "件）" }
            p.hint {
                "兼務先の医療機関番号（10桁）を入力して登録すると、その医療機関の患者の臨個票・意見書を、その医療機関のノードで作成・閲覧・修正できるようになります（その医療機関の次の同期から）。"
                "「非表示」にした兼務先、行を空にした兼務先では、次の同期からできなくなります。"
            }
            @if let Some(e) = v.error {
                p.field-error id="kenmu-error" role="alert" { (e) }
            }
            form method="post" action="/account/kenmu" {
                input type="hidden" name="csrf" value=(ctx.csrf);
                table.list {
                    thead { tr { th { "" } th { "医療機関番号" } th { "医療機関名" } th { "担当する診療科" } th { "表示 / 非表示" } } }
                    tbody {
                        @for i in 0..v.max {
                            @let r = v.rows.get(i).unwrap_or(&blank);
                            tr {
                                td { "兼務する医療機関" (i + 1) }
                                td { input type="text" name={ "code" (i) } value=(r.institution) size="12" inputmode="numeric"
                                    aria-label={ "兼務する医療機関" (i + 1) "の医療機関番号" }
                                    aria-describedby=[v.error.map(|_| "kenmu-error")]; }
                                td { (r.name) }
                                td { input type="text" name={ "dept" (i) } value=(r.department) size="12"
                                    aria-label={ "兼務する医療機関" (i + 1) "の担当する診療科" }; }
                                td {
                                    label { input type="radio" name={ "show" (i) } value="1" checked[r.visible || r.institution.is_empty()]; " 表示" }
                                    " / "
                                    label { input type="radio" name={ "show" (i) } value="0" checked[!r.visible && !r.institution.is_empty()]; " 非表示" }
                                }
                            }
                        }
                    }
                }
                p { button.primary type="submit" { "登録" } }
            }
        },
    )
}
