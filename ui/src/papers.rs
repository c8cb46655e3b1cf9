//! The paper path's screens (紙の臨個票, M15): the section of the municipality's 受付一覧 where a
//! reviewer uploads a scanned paper sheet and sees each paper's state, and the hub's data entry
//! (the list of received papers, and one paper with its PDF and the data file upload). Renders
//! what it is given; decides nothing.

use std::collections::BTreeMap;

use maud::{Markup, html};

use crate::{PageContext, layout};

/// One paper in a list, in display form.
#[derive(Debug, Clone, Default)]
pub struct PaperLine {
    pub id: String,
    /// 受付日
    pub uploaded: String,
    /// 自治体コード
    pub municipality: String,
    pub name_kana: String,
    pub birth_date: String,
    /// 告示番号
    pub disease_number: String,
    pub disease: String,
    /// 状態: 送信待ち, ハブ受領, データ入力済.
    pub state: String,
    /// The access key of the sheet entered from it, once entered.
    pub access_key: String,
}

/// The upload form as typed, with a message beside each field that was refused.
#[derive(Debug, Clone, Default)]
pub struct PaperForm {
    pub name_kana: String,
    pub birth_date: String,
    pub disease: String,
    /// Field name (`pdf`, `name_kana`, `birth_date`, `disease`) → message.
    pub errors: BTreeMap<String, String>,
    /// Shown after a successful upload.
    pub notice: Option<String>,
}

fn error_for(errors: &BTreeMap<String, String>, name: &str) -> Markup {
    html! {
        @if let Some(e) = errors.get(name) {
            span.field-error id={ (name) "-error" } role="alert" { (e) }
        }
    }
}

/// 紙の臨個票受付 on 受付一覧: the upload form (PDF, 氏名カナ, 生年月日, 告示番号) and the
/// municipality's papers with their state.
pub fn intake_section(ctx: &PageContext<'_>, form: &PaperForm, lines: &[PaperLine]) -> Markup {
    html! {
        section #papers {
            h2 { "紙の臨個票受付" }
            p.meta { "システムを通さずに書かれた紙の臨床調査個人票・医療意見書をスキャンした PDF をアップロードします。ハブ（中央）へ送られ、委託先がデータを入力すると、この受付一覧に届きます。" }
            @if let Some(n) = &form.notice { p.notice #paper-notice role="status" { (n) } }
            form.paper method="post" action="/intake/papers" enctype="multipart/form-data" {
                input type="hidden" name="csrf" value=(ctx.csrf);
                label for="paper_pdf" { "スキャンした PDF " span.required { "必須" } }
                input #paper_pdf type="file" name="pdf" accept="application/pdf,.pdf" required;
                (error_for(&form.errors, "pdf"))
                label for="paper_name_kana" { "受給者（申請者）氏名カナ " span.required { "必須" } }
                input #paper_name_kana name="name_kana" required value=(form.name_kana);
                (error_for(&form.errors, "name_kana"))
                label for="paper_birth_date" { "生年月日 " span.required { "必須" } }
                span { (crate::date_input("paper_birth_date", "birth_date", &form.birth_date, true)) }
                (error_for(&form.errors, "birth_date"))
                label for="paper_disease" { "告示番号 " span.required { "必須" } }
                input #paper_disease name="disease" inputmode="numeric" required value=(form.disease);
                (error_for(&form.errors, "disease"))
                button.primary type="submit" { "紙の臨個票を受け付ける" }
            }
            @if !lines.is_empty() {
                table.list #paper-list {
                    thead { tr {
                        th { "受付日" } th { "氏名カナ" } th { "生年月日" } th { "病名" } th { "状態" }
                        th { "アクセスキー" } th { "PDF" }
                    } }
                    tbody {
                        @for l in lines {
                            tr data-paper=(l.id) {
                                td { (l.uploaded) }
                                td { (l.name_kana) }
                                td { (l.birth_date) }
                                td { (l.disease_number) " " (l.disease) }
                                td.state { (l.state) }
                                td { (l.access_key) }
                                td { a href={ "/papers/" (l.id) ".pdf" } target="_blank" { "PDF" } }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The hub's data entry: every paper received, newest first.
pub fn entry_list_page(ctx: &PageContext<'_>, lines: &[PaperLine], notice: Option<&str>) -> Markup {
    layout(
        ctx,
        "紙臨個票入力",
        html! {
            @if let Some(n) = notice { p.notice role="status" { (n) } }
            @if lines.is_empty() {
                p.empty { "受領した紙の臨個票はありません。" }
            } @else {
                table.list #papers {
                    thead { tr {
                        th { "受付日" } th { "自治体" } th { "告示番号" } th { "病名" } th { "状態" } th { "操作" }
                    } }
                    tbody {
                        @for l in lines {
                            tr data-paper=(l.id) {
                                td { (l.uploaded) }
                                td { (l.municipality) }
                                td { (l.disease_number) }
                                td { (l.disease) }
                                td.state { (l.state) }
                                td.actions {
                                    a href={ "/papers/" (l.id) ".pdf" } target="_blank" { "PDF" }
                                    " "
                                    a href={ "/papers/" (l.id) } { "データ入力" }
                                }
                            }
                        }
                    }
                }
            }
        },
    )
}

/// One paper at the hub: what the municipality read from it, its PDF, and the upload of the
/// contractor's data file (XML), with the refusal's messages when it failed.
pub fn entry_page(
    ctx: &PageContext<'_>,
    line: &PaperLine,
    error: Option<&str>,
    messages: &[String],
) -> Markup {
    layout(
        ctx,
        &format!("紙臨個票入力 {}", line.disease),
        html! {
            dl.meta {
                dt { "受付日" } dd { (line.uploaded) }
                dt { "自治体" } dd { (line.municipality) }
                dt { "告示番号" } dd { (line.disease_number) " " (line.disease) }
                dt { "氏名カナ" } dd { (line.name_kana) }
                dt { "生年月日" } dd { (line.birth_date) }
                dt { "状態" } dd { (line.state) }
                @if !line.access_key.is_empty() { dt { "アクセスキー" } dd { (line.access_key) } }
            }
            p { a #paper-pdf href={ "/papers/" (line.id) ".pdf" } target="_blank" { "紙の臨個票（PDF）を開く" } }
            @if let Some(e) = error { p.error #entry-error role="alert" { (e) } }
            @if !messages.is_empty() {
                ul.messages #entry-messages { @for m in messages { li { (m) } } }
            }
            @if line.access_key.is_empty() {
                form method="post" action={ "/papers/" (line.id) } enctype="multipart/form-data" {
                    input type="hidden" name="csrf" value=(ctx.csrf);
                    label for="xml" { "データファイル（XML、医療機関向け XML レイアウト） " span.required { "必須" } }
                    input #xml type="file" name="xml" accept=".xml,application/xml,text/xml" required;
                    button.primary type="submit" { "取り込んで登録" }
                }
            }
        },
    )
}
