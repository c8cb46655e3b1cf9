//! 一次判定表示: the machine judgment of a sheet in its own window — the diagnostic category and
//! severity derived from the items, what the doctor selected, and where they disagree. It never
//! blocks registration; it informs the doctor and the municipal reviewer.

use maud::{Markup, html};

use crate::{PageContext, layout};

/// One judgment (category or severity), in display form.
#[derive(Debug, Clone, Default)]
pub struct JudgmentLine {
    pub title: String,
    pub derived: String,
    pub selected: String,
    /// 「基準を満たす」 / 「基準を満たさない」 / empty when the form names no target.
    pub criteria: String,
    /// 軽症高額該当, when the form carries it.
    pub high_cost: String,
    pub unverified: Vec<String>,
    /// Items this judgment reads whose value fails the item's own checks: (label, the check's
    /// message). They were judged as if blank.
    pub invalid: Vec<(String, String)>,
}

/// The judgment window's data.
#[derive(Debug, Clone, Default)]
pub struct JudgmentView {
    pub title: String,
    pub sheet_id: String,
    pub rules_version: String,
    pub lines: Vec<JudgmentLine>,
    /// The disagreements, in the ministry's wording.
    pub messages: Vec<String>,
    /// Calculated values (label, value).
    pub derived: Vec<(String, String)>,
    /// The form's level (記載のみ / チェック / 機械判定): only a 機械判定 form is judged, so only
    /// there does "no disagreement" mean anything.
    pub level: String,
    /// Whether the form judges anything from its items (a 機械判定 form).
    pub judged: bool,
}

pub fn judgment(ctx: &PageContext<'_>, v: &JudgmentView) -> Markup {
    layout(
        ctx,
        &format!("一次判定 {}", v.title),
        html! {
            // The rules' version is for support staff reading the page, not for the doctor.
            p.help data-rules-version=(v.rules_version) { "一次判定は参考です。一致しない場合も登録できます。" }
            @if !v.judged {
                p.notice role="status" {
                    "この様式（" (v.level) "）は機械判定の対象ではありません。診断のカテゴリー・重症度は指定医の選択のとおりで、入力内容との照合はしていません。"
                }
            } @else if v.messages.is_empty() {
                p.notice role="status" { "入力内容と診断基準・重症度分類の間に不一致はありません。" }
            } @else {
                section.messages role="alert" {
                    h2 { "確認してください（" (v.messages.len()) "件）" }
                    ul { @for m in &v.messages { li { (m) } } }
                }
            }
            @if !v.lines.is_empty() {
            table.list {
                thead { tr { th { "判定" } th { "入力内容からの判定" } th { "選択された内容" } th { "基準" } th { "軽症高額" } } }
                tbody {
                    @for l in &v.lines {
                        tr {
                            td { (l.title) }
                            td { (l.derived) }
                            td { (l.selected) }
                            td { (l.criteria) }
                            td { (l.high_cost) }
                        }
                        @if !l.invalid.is_empty() {
                            tr.invalid { td colspan="5" {
                                p.error role="alert" {
                                    "次の項目は値が正しくないため、未入力として判定しています。直してから判定し直してください。"
                                }
                                ul { @for (label, why) in &l.invalid { li { strong { (label) } ": " (why) } } }
                            } }
                        }
                        @if !l.unverified.is_empty() {
                            tr { td colspan="5" { span.help {
                                "この判定の規則には、診断基準の原文で確かめきれていない点があります。判定は参考とし、指定医の判断を優先してください。"
                            } } }
                        }
                    }
                }
            }
            }
            @if !v.derived.is_empty() {
                h2 { "自動計算" }
                table.list {
                    tbody { @for (k, val) in &v.derived { tr { th { (k) } td { (val) } } } }
                }
            }
            p { a.button href={ "/sheets/" (v.sheet_id) } { "閲覧へ戻る" } }
        },
    )
}
