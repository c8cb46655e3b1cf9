//! 臨床調査個人票・医療意見書一括登録: the upload of sealed files from the check tool and the
//! result table (実行結果一覧) in the seed's columns. Renders what it is given; decides nothing.

use maud::{Markup, html};

use crate::{PageContext, layout};

/// One line of the result table, in display form.
#[derive(Debug, Clone, Default)]
pub struct ImportLine {
    pub patient: String,
    pub disease: String,
    pub file: String,
    /// 記載年月日, e.g. 2022/12/06.
    pub written_date: String,
    /// 取込成功, or why not.
    pub result: String,
    pub imported: bool,
    /// The sheet to open, when there is one.
    pub sheet_id: Option<String>,
}

/// The 一括登録 page: the versions, the upload form and, after an upload, its results.
#[derive(Debug, Clone, Default)]
pub struct ImportView {
    /// 最新のチェックツールのバージョン (this node's).
    pub tool_version: String,
    pub rule_pack_version: String,
    /// アップロードファイルのチェックツールのバージョン: "1.0.0（ルールパック 2026.04-1）", one per
    /// distinct pair; empty before an upload.
    pub uploads: Vec<String>,
    /// The result table; `None` before an upload.
    pub lines: Option<Vec<ImportLine>>,
    /// The result rows as JSON, posted back for the CSV download.
    pub rows_json: String,
    /// Why the upload as a whole was refused (too many files, none chosen, too large), shown
    /// beside the file field; nothing was imported.
    pub error: Option<String>,
}

/// The bulk registration page.
pub fn import_page(ctx: &PageContext<'_>, v: &ImportView) -> Markup {
    layout(
        ctx,
        "臨床調査個人票・医療意見書一括登録",
        html! {
            p { "チェックツールで作成した暗号化ファイル（.sealed）を選んで登録してください。複数のファイルをまとめて選べます（一度に1,000ファイル・合計256MBまで。多いときは分けてください）。取り込んだ臨床調査個人票・医療意見書は一時保存（登録種別 一括）になります。" }
            form.upload method="post" action="/imports" enctype="multipart/form-data" {
                input type="hidden" name="csrf" value=(ctx.csrf);
                p {
                    label for="files" { "ファイル " span.required { "必須" } }
                    " "
                    input #files type="file" name="files" multiple required accept=".sealed"
                        aria-describedby=[v.error.as_ref().map(|_| "upload-error")]
                        autofocus[v.error.is_some()];
                }
                @if let Some(e) = &v.error {
                    p.error #upload-error role="alert" { (e) "（何も取り込んでいません）" }
                }
                button.primary #upload type="submit" { "登録" }
            }
            dl.versions {
                dt { "最新のチェックツールのバージョン" }
                dd #tool-version { (v.tool_version) "（ルールパック " (v.rule_pack_version) "）" }
                dt { "アップロードファイルのチェックツールのバージョン" }
                dd #upload-version {
                    @if v.uploads.is_empty() { "—" }
                    @for (i, u) in v.uploads.iter().enumerate() {
                        @if i > 0 { "、" }
                        (u)
                    }
                }
            }
            @if let Some(lines) = &v.lines {
                h2 { "実行結果一覧" }
                p #results-summary role="status" tabindex="-1" autofocus {
                    "取込成功 " (lines.iter().filter(|l| l.imported).count()) "件 / "
                    (lines.len()) "件"
                }
                table.list #results {
                    thead { tr { th { "患者氏名" } th { "病名" } th { "ファイル名" } th { "記載年月日" } th { "結果" } } }
                    tbody {
                        @for l in lines {
                            tr class=(match (&l.sheet_id, l.imported) {
                                (_, true) if l.result.contains("一時保存") => "partial",
                                (_, true) => "imported",
                                (Some(_), false) => "duplicate",
                                _ => "refused",
                            }) {
                                td { (l.patient) }
                                td { (l.disease) }
                                td { (l.file) }
                                td { (l.written_date) }
                                td.result {
                                    @match &l.sheet_id {
                                        // A new sheet, or the sheet an earlier upload made.
                                        Some(id) => a href={ "/sheets/" (id) } { (l.result) },
                                        None => (l.result),
                                    }
                                }
                            }
                        }
                    }
                }
                form method="post" action="/imports/result.csv" {
                    input type="hidden" name="csrf" value=(ctx.csrf);
                    input type="hidden" name="rows" value=(v.rows_json);
                    button type="submit" { "結果をCSVで保存" }
                }
            }
        },
    )
}
