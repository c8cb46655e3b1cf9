//! The municipality's screens — the intake list (受付一覧) with the key form and the 審査会
//! print, the review screen (the sheet beside its machine judgment, the result form, 照会) —
//! and the inquiry panel the hospital sees in its sheet view and editor. Renders what it is
//! given; decides nothing.

use maud::{Markup, html};

use crate::{PageContext, layout};

/// One line of the intake list, in display form.
#[derive(Debug, Clone, Default)]
pub struct IntakeLine {
    pub sheet_id: String,
    /// 受付日
    pub received: String,
    pub access_key: String,
    pub name_kana: String,
    pub disease: String,
    pub judgment: String,
    /// 指定医, from the document.
    pub doctor: String,
    /// 状態: 未着, 未審査, 照会中, 認定, 不認定, 保留.
    pub state: String,
    /// The sheet has arrived: it can be reviewed and printed.
    pub arrived: bool,
    /// The hospital's 修正 since the key was resolved, in a few words (「修正・再登録」,
    /// 「審査結果の後に修正」); empty for none.
    pub amended: String,
    /// The doctor's reason for it, shown on hover and to screen readers.
    pub amended_reason: String,
}

/// The intake page.
#[derive(Debug, Clone, Default)]
pub struct IntakeView {
    pub lines: Vec<IntakeLine>,
    /// What was typed, kept when resolution comes back with an error.
    pub access_key: String,
    pub birth_date: String,
    pub error: Option<String>,
    /// Shown after a successful resolution.
    pub notice: Option<String>,
    /// Why the 審査会 print was refused, shown beside its button (the page stays; no new tab).
    pub print_error: Option<String>,
    /// The sheets checked for the print, kept when it was refused.
    pub selected: Vec<String>,
    /// 紙の臨個票受付 (`papers::intake_section`), shown after the list; empty for none.
    pub papers: Markup,
}

/// 受付一覧: the key form, then the list with check boxes for the 審査会 print.
pub fn intake_page(ctx: &PageContext<'_>, v: &IntakeView) -> Markup {
    layout(
        ctx,
        "受付一覧",
        html! {
            @if let Some(n) = &v.notice { p.notice #resolved role="status" { (n) } }
            @if let Some(e) = &v.error { p.error #resolve-error role="alert" { (e) } }
            form.resolve method="post" action="/intake/resolve" {
                input type="hidden" name="csrf" value=(ctx.csrf);
                label for="access_key" { "アクセスキー " span.required { "必須" } }
                // The reviewer's home: the key field takes the first keystroke.
                input #access_key name="access_key" inputmode="numeric" autocomplete="off"
                    required autofocus value=(v.access_key);
                label for="birth_date" { "生年月日 " span.required { "必須" } }
                (crate::date_input("birth_date", "birth_date", &v.birth_date, true))
                button.primary type="submit" { "受付" }
            }
            // The print downloads on success and comes back to this page with the reason on
            // failure: no new tab, so an error never opens an error page there.
            form #batch method="post" action="/intake/print" {
                input type="hidden" name="csrf" value=(ctx.csrf);
            }
            @if v.lines.is_empty() {
                p.empty { "受け付けた臨床調査個人票・医療意見書はまだありません。" }
            } @else {
                table.list #intake {
                    thead { tr {
                        th { span.sr { "選択" } } th { "受付日" } th { "アクセスキー" } th { "氏名カナ" }
                        th { "病名" } th { "指定医" } th { "一次判定" } th { "状態" } th { "操作" }
                    } }
                    tbody {
                        @for l in &v.lines {
                            tr data-sheet=(l.sheet_id) {
                                td {
                                    @if l.arrived {
                                        input type="checkbox" form="batch" name="id" value=(l.sheet_id)
                                            checked[v.selected.contains(&l.sheet_id)]
                                            aria-label={ (l.access_key) " を印刷対象にする" };
                                    }
                                }
                                td { (l.received) }
                                td { (l.access_key) }
                                td { (l.name_kana) }
                                td { (l.disease) }
                                td.doctor { (l.doctor) }
                                td { (l.judgment) }
                                td.state {
                                    (l.state)
                                    @if !l.amended.is_empty() {
                                        br;
                                        span.amended title={ "修正の理由: " (l.amended_reason) } {
                                            (l.amended)
                                            span.sr { "（修正の理由: " (l.amended_reason) "）" }
                                        }
                                    }
                                }
                                td.actions {
                                    @if l.arrived { a href={ "/review/" (l.sheet_id) } { "審査" } }
                                }
                            }
                        }
                    }
                }
                p.print-bar {
                    button.primary #batch-print type="submit" form="batch" aria-describedby="print-error" { "審査会用印刷" }
                    @if let Some(e) = &v.print_error {
                        " " span.error #print-error role="alert" { (e) }
                    }
                }
            }
            (v.papers)
        },
    )
}

/// One item's label and value on the review screen.
#[derive(Debug, Clone, Default)]
pub struct ReviewItem {
    pub id: String,
    pub label: String,
    pub value: String,
}

/// One section of the sheet, read-only.
#[derive(Debug, Clone, Default)]
pub struct ReviewSection {
    pub title: String,
    pub items: Vec<ReviewItem>,
}

/// One line of the machine judgment.
#[derive(Debug, Clone, Default)]
pub struct JudgmentRow {
    pub title: String,
    pub derived: String,
    pub criteria: String,
}

/// One change since an inquiry was asked.
#[derive(Debug, Clone, Default)]
pub struct ChangeLine {
    pub label: String,
    pub before: String,
    pub after: String,
}

/// One inquiry, in display form.
#[derive(Debug, Clone, Default)]
pub struct InquiryLine {
    pub id: String,
    /// The item ids it is about.
    pub fields: Vec<String>,
    /// Their labels.
    pub labels: Vec<String>,
    pub question: String,
    pub asked_by: String,
    pub asked_at: String,
    /// open, answered or closed.
    pub state: String,
    pub state_label: String,
    pub answer: String,
    pub answered_by: String,
    pub answered_at: String,
    pub closed_at: String,
    /// 差異 since it was asked.
    pub changes: Vec<ChangeLine>,
}

/// The hospital's inquiry panel (shown when a sheet has inquiries).
#[derive(Debug, Clone, Default)]
pub struct InquiryPanel {
    pub sheet_id: String,
    pub csrf: String,
    /// Shows the answer box (the sheet's doctor or clerk).
    pub can_answer: bool,
    pub lines: Vec<InquiryLine>,
}

impl InquiryPanel {
    /// The questions still waiting for an answer about item `field`.
    pub fn open_about(&self, field: &str) -> Vec<&InquiryLine> {
        self.lines
            .iter()
            .filter(|l| l.state != "closed" && l.fields.iter().any(|f| f == field))
            .collect()
    }
}

fn inquiry_body(l: &InquiryLine) -> Markup {
    html! {
        p.inquiry-items { "対象項目: " (l.labels.join("、")) }
        p.question { (l.question) }
        p.meta { (l.asked_by) "（" (l.asked_at) "）" }
        @if !l.answer.is_empty() {
            p.answer { "回答: " (l.answer) }
            p.meta { (l.answered_by) "（" (l.answered_at) "）" }
        }
    }
}

/// The inquiries of a sheet at the hospital, each with an answer box while not closed.
pub fn inquiry_panel(p: &InquiryPanel) -> Markup {
    html! {
        @if !p.lines.is_empty() {
            section.messages.inquiries #inquiries aria-labelledby="inquiries-title" {
                h2 #inquiries-title { "自治体からの照会（" (p.lines.len()) "件）" }
                @for l in &p.lines {
                    article.inquiry data-state=(l.state) id={ "inquiry-" (l.id) } {
                        h3 { (l.state_label) }
                        (inquiry_body(l))
                        // An answer is given once (it is never replaced); until then, the box.
                        @if p.can_answer && l.state == "open" {
                            form method="post" action={ "/sheets/" (p.sheet_id) "/inquiries/" (l.id) "/answer" } {
                                input type="hidden" name="csrf" value=(p.csrf);
                                label for={ "answer-" (l.id) } { "回答" }
                                textarea id={ "answer-" (l.id) } name="answer" rows="3" required { (l.answer) }
                                button.primary type="submit" { "回答する" }
                            }
                            p.hint { "項目を直すときは、編集（登録済みの票は「修正」）で直してから回答してください。" }
                        }
                    }
                }
            }
        }
    }
}

/// Everything on the review screen.
#[derive(Debug, Clone, Default)]
pub struct ReviewView {
    pub sheet_id: String,
    pub title: String,
    pub access_key: String,
    /// 指定医 and 医療機関 as the document names them.
    pub doctor: String,
    pub sections: Vec<ReviewSection>,
    pub judgment: Vec<JudgmentRow>,
    pub judgment_messages: Vec<String>,
    /// What the checks find missing or wrong in the sheet (as for 登録), beside the judgment.
    pub checks: Vec<String>,
    pub inquiries: Vec<InquiryLine>,
    /// The recorded result, in display form (認定結果 ・ 有効期間 ・ …), when there is one.
    pub recorded: Vec<(String, String)>,
    /// Current values of the form fields (codes), and the choices (code, label).
    pub decision: String,
    pub reason: String,
    pub valid_from: String,
    pub valid_to: String,
    pub research_consent: String,
    pub income: String,
    pub income_special: String,
    pub decisions: Vec<(String, String)>,
    pub consents: Vec<(String, String)>,
    pub incomes: Vec<(String, String)>,
    pub specials: Vec<(String, String)>,
    /// The question being written, kept when it could not be recorded.
    pub question: String,
    pub notice: Option<String>,
    pub error: Option<String>,
    /// For a sheet entered from a paper (登録種別 紙): the address of its scanned PDF.
    pub paper_pdf: Option<String>,
    /// The hospital's 修正 since the key was resolved, said in full, when there is one.
    pub amendment: Option<String>,
}

fn choices(
    name: &str,
    label: &str,
    current: &str,
    options: &[(String, String)],
    blank: bool,
) -> Markup {
    html! {
        label for=(name) { (label) }
        select id=(name) name=(name) {
            @if blank { option value="" { "—" } }
            @for (code, text) in options {
                option value=(code) selected[code == current] { (text) }
            }
        }
    }
}

/// 審査: the sheet read-only beside its machine judgment, the result form and 照会.
pub fn review_page(ctx: &PageContext<'_>, v: &ReviewView) -> Markup {
    let base = format!("/review/{}", v.sheet_id);
    layout(
        ctx,
        &format!("審査 {}", v.title),
        html! {
            p.meta {
                "アクセスキー " (v.access_key)
                @if !v.doctor.is_empty() { "　指定医 " span #review-doctor { (v.doctor) } }
            }
            @if let Some(pdf) = &v.paper_pdf {
                p.paper #paper-pdf {
                    "登録種別 紙: "
                    a href=(pdf) target="_blank" { "紙の臨個票（PDF）を開く" }
                    "（データ入力の元になった紙の臨個票です。入力された内容と見比べてください。）"
                }
            }
            @if let Some(a) = &v.amendment {
                p.warning #amendment role="status" {
                    (a) " "
                    a href={ "/sheets/" (v.sheet_id) "/diff" } { "差異（変更された項目と履歴）を見る" }
                }
            }
            @if let Some(n) = &v.notice { p.notice role="status" { (n) } }
            @if let Some(e) = &v.error { p.error role="alert" { (e) } }
            div.review {
                aside.review-side {
                    section #judgment {
                        h2 { "一次判定（機械判定）" }
                        table.list {
                            thead { tr { th { "判定" } th { "結果" } th { "基準" } } }
                            tbody {
                                @for j in &v.judgment {
                                    tr { td { (j.title) } td { (j.derived) } td { (j.criteria) } }
                                }
                            }
                        }
                        @for m in &v.judgment_messages { p.msg { (m) } }
                        @if v.checks.is_empty() {
                            p.meta #checks { "不足・誤りのある項目はありません。" }
                        } @else {
                            details #checks open {
                                summary { "不足・誤りのある項目（" (v.checks.len()) "件）" }
                                ul { @for m in &v.checks { li.msg { (m) } } }
                            }
                        }
                    }
                    section #result {
                        h2 { "審査結果" }
                        @if !v.recorded.is_empty() {
                            dl #recorded {
                                @for (k, val) in &v.recorded { dt { (k) } dd { (val) } }
                            }
                        }
                        form method="post" action=(base) {
                            input type="hidden" name="csrf" value=(ctx.csrf);
                            (choices("decision", "認定結果", &v.decision, &v.decisions, true))
                            label for="reason" { "不認定の理由" }
                            textarea #reason name="reason" rows="2" { (v.reason) }
                            label for="valid_from" { "有効期間（開始）" }
                            (crate::date_input("valid_from", "valid_from", &v.valid_from, false))
                            label for="valid_to" { "有効期間（終了）" }
                            (crate::date_input("valid_to", "valid_to", &v.valid_to, false))
                            (choices("research_consent", "研究利用の同意", &v.research_consent, &v.consents, true))
                            (choices("income", "所得区分", &v.income, &v.incomes, true))
                            (choices("income_special", "所得区分（特例）", &v.income_special, &v.specials, true))
                            button.primary #record type="submit" { "審査結果を記録" }
                        }
                    }
                    section #inquiry-form {
                        h2 { "照会" }
                        @if v.paper_pdf.is_some() {
                            p.hint { "紙の臨個票（登録種別 紙）には、この画面から照会できません。医療機関に電話・文書で照会してください。" }
                        } @else {
                            p.hint { "照会する項目に左の欄でチェックを付け、内容を書いてください。" }
                            label for="question" { "照会内容" }
                            textarea #question form="ask" name="question" rows="3" required { (v.question) }
                            button.primary #ask-button type="submit" form="ask" { "照会する" }
                        }
                    }
                    @if !v.inquiries.is_empty() {
                        section #inquiry-list {
                            h2 { "照会一覧（" (v.inquiries.len()) "件）" }
                            @for l in &v.inquiries {
                                article.inquiry data-state=(l.state) id={ "inquiry-" (l.id) } {
                                    h3 { (l.state_label) }
                                    (inquiry_body(l))
                                    @if !l.changes.is_empty() {
                                        table.list.changes {
                                            caption { "照会後の差異" }
                                            thead { tr { th { "項目" } th { "照会時" } th { "現在" } } }
                                            tbody {
                                                @for c in &l.changes {
                                                    tr { td { (c.label) } td { (c.before) } td { (c.after) } }
                                                }
                                            }
                                        }
                                    } @else if l.state != "open" {
                                        p.meta { "照会後の差異はありません。" }
                                    }
                                    @if l.state != "closed" {
                                        form method="post" action={ (base) "/inquiries/" (l.id) "/close" } {
                                            input type="hidden" name="csrf" value=(ctx.csrf);
                                            button type="submit" { "照会を完了する" }
                                        }
                                    } @else {
                                        p.meta { "完了（" (l.closed_at) "）" }
                                    }
                                }
                            }
                        }
                    }
                }
                div.review-sheet {
                    form #ask method="post" action={ (base) "/inquiries" } {
                        input type="hidden" name="csrf" value=(ctx.csrf);
                    }
                    @for s in &v.sections {
                        section.readonly {
                            h2 { (s.title) }
                            dl {
                                @for item in &s.items {
                                    dt {
                                        label {
                                            input type="checkbox" form="ask" name="field" value=(item.id)
                                                aria-label={ (item.label) " を照会する" };
                                            " " (item.label)
                                        }
                                    }
                                    dd { @if item.value.is_empty() { span.empty { "未入力" } } @else { (item.value) } }
                                }
                            }
                        }
                    }
                }
            }
        },
    )
}
