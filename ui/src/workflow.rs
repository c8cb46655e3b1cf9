//! Workflow screens: the workflow list (ワークフロー一覧), a sheet's workflow history (ワークフロー
//! 履歴), the differences (差異) and the outcome of a bulk approval (一括承認).

use maud::{Markup, html};

use crate::{PageContext, layout};

/// One sheet in the workflow list.
#[derive(Debug, Clone, Default)]
pub struct WorkflowLine {
    pub id: String,
    /// 処理日時
    pub at: String,
    pub patient: String,
    /// 作成年月日
    pub written: String,
    pub disease: String,
    pub from: String,
    pub comment: String,
    /// 照会: e.g. 「照会 1件」 while a municipality's question waits for an answer; empty otherwise.
    pub inquiry: String,
    /// In the 自治体からの照会 section: each question waiting for an answer.
    pub questions: Vec<AskedQuestion>,
}

/// A municipality's question as the workflow list shows it.
#[derive(Debug, Clone, Default)]
pub struct AskedQuestion {
    /// The inquiry's id (the anchor of its answer box on the sheet view).
    pub id: String,
    /// Who asked: the municipality and the reviewer, e.g. 「自治体 139999 審査 花子」.
    pub asked_by: String,
    /// When, as the list shows times.
    pub asked_at: String,
    /// The question, shortened for the list; `full` is shown on hover and on the sheet view.
    pub short: String,
    pub full: String,
    /// The labels of the items asked about, joined.
    pub items: String,
}

/// At most `chars` characters of `text`, with 「…」 when cut.
pub fn shortened(text: &str, chars: usize) -> String {
    let one_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() <= chars {
        one_line
    } else {
        let mut cut: String = one_line.chars().take(chars).collect();
        cut.push('…');
        cut
    }
}

/// The 自治体からの照会 section: who asked, the question (shortened, in full on hover and on
/// the sheet view) and the items, per sheet.
fn inquiry_table(lines: &[WorkflowLine]) -> Markup {
    html! {
        @if lines.is_empty() {
            p.empty { "回答を待っている照会はありません。" }
        } @else {
            table.list #inquiry-rows {
                thead { tr { th { "照会日時" } th { "患者氏名" } th { "作成年月日" } th { "病名" } th { "照会元" } th { "照会内容" } th { "対象項目" } th { "操作" } } }
                tbody {
                    @for l in lines {
                        tr data-sheet=(l.id) {
                            td { (l.at) }
                            td { (l.patient) @if !l.inquiry.is_empty() { " " span.badge.inquiry-badge { (l.inquiry) } } }
                            td { (l.written) } td { (l.disease) }
                            td.asked-by { @for q in &l.questions { div { (q.asked_by) } } }
                            td.question {
                                @for q in &l.questions {
                                    div { a href={ "/sheets/" (l.id) "#inquiry-" (q.id) } title=(q.full) { (q.short) } }
                                }
                            }
                            td.items { @for q in &l.questions { div { (q.items) } } }
                            td.actions {
                                a href={ "/sheets/" (l.id) } { "回答" }
                                a href={ "/sheets/" (l.id) "/history" } { "履歴" }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The waiting and sent sections.
fn workflow_table(lines: &[WorkflowLine], empty: &str) -> Markup {
    html! {
        @if lines.is_empty() {
            p.empty { (empty) }
        } @else {
            table.list {
                thead { tr { th { "処理日時" } th { "患者氏名" } th { "作成年月日" } th { "病名" } th { "依頼者" } th { "コメント" } th { "操作" } } }
                tbody {
                    @for l in lines {
                        tr {
                            td { (l.at) } td { (l.patient) @if !l.inquiry.is_empty() { " " span.badge.inquiry-badge { (l.inquiry) } } }
                            td { (l.written) } td { (l.disease) }
                            td { (l.from) } td { (l.comment) }
                            td.actions {
                                a href={ "/sheets/" (l.id) "/edit" } { "編集" }
                                a href={ "/sheets/" (l.id) "/history" } { "履歴" }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// ワークフロー一覧: what waits for the user, and what the user sent.
pub fn workflow_list(
    ctx: &PageContext<'_>,
    waiting: &[WorkflowLine],
    sent: &[WorkflowLine],
    inquiries: &[WorkflowLine],
) -> Markup {
    layout(
        ctx,
        "ワークフロー一覧",
        html! {
            h2 { "自分宛て（" (waiting.len()) "件）" }
            (workflow_table(waiting, "確認を待っている臨床調査個人票・医療意見書はありません。"))
            h2 { "確認依頼中（" (sent.len()) "件）" }
            (workflow_table(sent, "確認依頼中の臨床調査個人票・医療意見書はありません。"))
            h2 #inquiries-waiting { "自治体からの照会（" (inquiries.len()) "件）" }
            (inquiry_table(inquiries))
        },
    )
}

/// One step in a sheet's workflow history.
#[derive(Debug, Clone, Default)]
pub struct HistoryLine {
    pub at: String,
    /// e.g. "田中 花子 医療クラーク等 → 鈴木 太郎 難病指定医".
    pub route: String,
    pub action: String,
    pub status: String,
    pub comment: String,
}

/// ワークフロー履歴 of one sheet.
pub fn history(
    ctx: &PageContext<'_>,
    title: &str,
    id: &str,
    lines: &[HistoryLine],
    pull_back: bool,
    edit: bool,
) -> Markup {
    layout(
        ctx,
        title,
        html! {
            h2 { "ワークフロー履歴" }
            div.toolbar {
                a.button href={ "/sheets/" (id) } { "閲覧" }
                @if edit { a.button href={ "/sheets/" (id) "/edit" } { "編集" } }
                @if pull_back {
                    form.inline method="post" action={ "/sheets/" (id) "/pullback" } {
                        input type="hidden" name="csrf" value=(ctx.csrf);
                        button type="submit" { "引戻" }
                    }
                }
            }
            @if lines.is_empty() {
                p.empty { "まだワークフローの操作はありません。" }
            } @else {
                table.list.history {
                    thead { tr { th { "処理日時" } th { "ルート" } th { "処理" } th { "ステータス" } th { "コメント" } th { "操作" } } }
                    tbody {
                        @for (n, l) in lines.iter().enumerate() {
                            @let latest = n + 1 == lines.len();
                            tr {
                                td { (l.at) } td { (l.route) } td { (l.action) } td { (l.status) } td { (l.comment) }
                                // The seed's actions: 閲覧 on every line; 引戻 and 編集 on the
                                // latest, where the workflow allows them now.
                                td.actions {
                                    a href={ "/sheets/" (id) } { "閲覧" }
                                    @if latest && pull_back {
                                        form.inline method="post" action={ "/sheets/" (id) "/pullback" } {
                                            input type="hidden" name="csrf" value=(ctx.csrf);
                                            button.link type="submit" { "引戻" }
                                        }
                                    }
                                    @if latest && edit { a href={ "/sheets/" (id) "/edit" } { "編集" } }
                                }
                            }
                        }
                    }
                }
            }
        },
    )
}

/// One item that differs.
#[derive(Debug, Clone, Default)]
pub struct DiffLine {
    pub section: String,
    pub label: String,
    pub before: String,
    pub after: String,
}

/// One version in the change history.
#[derive(Debug, Clone, Default)]
pub struct VersionLine {
    pub at: String,
    pub author: String,
    pub message: String,
    pub changed: String,
    /// Link to this version's differences from the one before.
    pub diff_link: Option<String>,
}

fn diff_table(lines: &[DiffLine], before: &str, after: &str) -> Markup {
    html! {
        @if lines.is_empty() {
            p.empty { "差異はありません。" }
        } @else {
            table.list.diff {
                thead { tr { th { "区分" } th { "項目" } th { (before) } th { (after) } } }
                tbody {
                    @for l in lines {
                        tr { td { (l.section) } td { (l.label) } td.before { (l.before) } td.after { (l.after) } }
                    }
                }
            }
        }
    }
}

/// 差異: against last year's sheet, between two versions, and every version. `edit`: the user
/// may edit the sheet now (the 編集 button is offered).
pub fn differences(
    ctx: &PageContext<'_>,
    title: &str,
    id: &str,
    source: Option<(&str, &[DiffLine])>,
    between: Option<&[DiffLine]>,
    versions: &[VersionLine],
    edit: bool,
) -> Markup {
    layout(
        ctx,
        title,
        html! {
            div.toolbar {
                a.button href={ "/sheets/" (id) } { "閲覧" }
                @if edit { a.button href={ "/sheets/" (id) "/edit" } { "編集" } }
            }
            @if let Some((source_id, lines)) = source {
                h2 { "前回の臨床調査個人票・医療意見書との差異（" (lines.len()) "項目）" }
                p { a href={ "/sheets/" (source_id) } { "前回の臨床調査個人票・医療意見書を閲覧" } }
                (diff_table(lines, "前回", "今回"))
            }
            @if let Some(lines) = between {
                h2 #between { "選んだ版での変更（" (lines.len()) "項目）" }
                (diff_table(lines, "変更前", "変更後"))
            }
            h2 { "変更履歴" }
            table.list {
                thead { tr { th { "日時" } th { "変更者" } th { "操作" } th { "変更した項目" } th { "差異" } } }
                tbody {
                    @for v in versions.iter().rev() {
                        tr {
                            td { (v.at) } td { (v.author) } td { (v.message) } td { (v.changed) }
                            td { @if let Some(l) = &v.diff_link { a href=(l) { "表示" } } }
                        }
                    }
                }
            }
        },
    )
}

/// The outcome of 一括承認: each sheet and what happened to it.
pub fn bulk_result(ctx: &PageContext<'_>, lines: &[(String, String, Option<String>)]) -> Markup {
    let failed = lines.iter().filter(|l| l.2.is_some()).count();
    layout(
        ctx,
        "一括承認の結果",
        html! {
            @if failed == 0 {
                p.notice role="status" { (lines.len()) "件を承認しました。" }
            } @else {
                p.error role="alert" { (lines.len() - failed) "件を承認しました。" (failed) "件は承認できませんでした。" }
            }
            table.list {
                thead { tr { th { "患者氏名カナ" } th { "結果" } th { "操作" } } }
                tbody {
                    @for (id, who, outcome) in lines {
                        tr {
                            td { (who) }
                            td { @match outcome { None => "承認しました", Some(why) => span.msg { (why) } } }
                            td { a href={ "/sheets/" (id) } { "閲覧" } }
                        }
                    }
                }
            }
            p { a href="/sheets" { "一覧へ戻る" } }
        },
    )
}
