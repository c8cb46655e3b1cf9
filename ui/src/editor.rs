//! The sheet editor and the read-only sheet view, rendered from a form definition.
//!
//! Every item is a labelled field with its unit, 必須 badge and hint; a message about an item
//! stands beside it (`aria-invalid`, text and colour) and in the summary at the top, linked to
//! the field. Sections are listed in a section menu of in-page links, so the whole sheet is one
//! form that works without JavaScript and in tab order.

use std::collections::{BTreeMap, HashMap};

use maud::{Markup, html};
use nsdb_rules::{FormDef, ItemDef, ItemType, Message};

use crate::{PageContext, layout};

/// What the page says about the sheet besides its values.
#[derive(Debug, Clone)]
pub struct SheetMeta<'a> {
    pub id: &'a str,
    pub status: &'a str,
    pub access_key: Option<&'a str>,
    pub form_version: &'a str,
    pub updated: &'a str,
    /// Who the sheet waits for in the workflow.
    pub assignee: Option<&'a str>,
    pub doctor: Option<&'a str>,
}

/// What the user may do here; the node decides, the view only shows.
#[derive(Debug, Clone, Default)]
pub struct Actions<'a> {
    pub edit: bool,
    pub request: bool,
    pub pull_back: bool,
    pub return_: bool,
    pub register: bool,
    pub approve: bool,
    pub release: bool,
    pub renew: bool,
    /// 修正 of a registered sheet, with a reason.
    pub amend: bool,
    /// Doctors to send the sheet to: (user id, name).
    pub doctors: &'a [(u64, String)],
}

/// Everything the editor shows.
#[derive(Debug, Clone)]
pub struct EditorView<'a> {
    pub form: &'a FormDef,
    pub meta: SheetMeta<'a>,
    pub values: &'a BTreeMap<String, String>,
    pub messages: &'a [Message],
    /// Why the last action could not be done.
    pub problem: Option<&'a str>,
    /// Carried-forward items not yet confirmed or changed.
    pub carried: &'a [String],
    pub actions: Actions<'a>,
    pub conflicts: Option<&'a crate::conflicts::ConflictPanel>,
    /// Municipalities' inquiries (照会) about the sheet, shown at the top and beside each item.
    pub inquiries: Option<&'a crate::review::InquiryPanel>,
    /// The version the values are (heads, comma-separated); the editor posts it back so that
    /// a save writes only what its user changed since.
    pub version: &'a str,
    /// The signed-in user's number, posted back (`_author`): a save held over an expired
    /// session is saved on sign-in only by the same user.
    pub user: u64,
    /// The ワークフロー panel at the top: institution, who holds the sheet, the last comment.
    pub workflow: Option<&'a WorkflowSummary>,
    /// Dates shown in 和暦 (`令和5年4月1日`), as the user chose; else 西暦 (`2023-04-01`).
    pub wareki: bool,
    /// The patient already has a sheet of this disease: offer 更新登録 from it instead.
    pub renewal: Option<&'a RenewalOffer>,
}

/// An earlier sheet of the same patient and disease, in display form.
#[derive(Debug, Clone, Default)]
pub struct RenewalOffer {
    pub sheet_id: String,
    /// e.g. 「登録済」.
    pub status: String,
    /// 記載年月日 as shown, e.g. 「2025/04/01」; empty when not written.
    pub written: String,
    /// The user may start 更新登録 from it.
    pub can_renew: bool,
    /// The draft the notice is shown on: 更新登録 turns it into the renewal (no draft is left
    /// behind).
    pub draft_id: String,
}

fn renewal_notice(ctx: &PageContext<'_>, r: &RenewalOffer) -> Markup {
    html! {
        div.notice.renewal-offer role="note" {
            "この患者には同じ疾病の臨床調査個人票がすでにあります（" (r.status)
            @if !r.written.is_empty() { "、記載年月日 " (r.written) }
            "）。更新の申請なら「この票を更新登録にする」で、この票を更新（申請種別）にして前回の内容を空欄に引き継げます。入力した値はそのまま残ります。 "
            a href={ "/sheets/" (r.sheet_id) } { "その票を開く" }
            @if r.can_renew {
                " "
                form.inline method="post" action={ "/sheets/" (r.sheet_id) "/renew" } {
                    input type="hidden" name="csrf" value=(ctx.csrf);
                    input type="hidden" name="into" value=(r.draft_id);
                    button type="submit" { "この票を更新登録にする" }
                }
            }
        }
    }
}

/// The seed's ワークフロー panel: 医療機関, 担当者, コメント (the clerk's request, the doctor's
/// return), already in display form.
#[derive(Debug, Clone, Default)]
pub struct WorkflowSummary {
    pub institution: String,
    /// e.g. 「鈴木 太郎（難病指定医）」; empty when nobody holds the sheet.
    pub holder: String,
    pub comment: String,
    /// Who wrote the comment and when, e.g. 「田中 花子 2026-11-30 10:00」.
    pub comment_by: String,
}

/// The keyboard shortcuts of the editor's buttons (HTML `accesskey`): the key and the hint
/// shown on the button. Browsers on Windows and Linux take them with Alt (Firefox:
/// Alt+Shift, macOS: Control+Option).
pub const SHORTCUTS: &[(&str, &str)] = &[
    ("save", "S"),
    ("check", "C"),
    ("judgment", "J"),
    ("register", "R"),
    ("approve", "A"),
    ("print", "P"),
];

fn shortcut(action: &str) -> Option<&'static str> {
    SHORTCUTS
        .iter()
        .find(|(a, _)| *a == action)
        .map(|(_, k)| *k)
}

/// A button label with its shortcut shown, e.g. 一時保存 (Alt+S).
fn keyed(label: &str, action: &str) -> Markup {
    html! {
        (label)
        @if let Some(k) = shortcut(action) { " " kbd.shortcut { "Alt+" (k) } }
    }
}

fn accesskey(action: &str) -> Option<String> {
    shortcut(action).map(str::to_ascii_lowercase)
}

fn keys(action: &str) -> Option<String> {
    shortcut(action).map(|k| format!("Alt+{k}"))
}

/// The hint under an item: for a date or year-month, what it accepts (西暦 and 和暦, the same
/// words on every date field) before the form's own help; else the form's help.
pub fn item_help(item: &ItemDef) -> Option<String> {
    let accepted = match item.ty {
        ItemType::Date => Some(crate::DATE_HINT),
        ItemType::YearMonth => Some(crate::YEAR_MONTH_HINT),
        _ => None,
    };
    match (accepted, &item.help) {
        (Some(a), Some(h)) => Some(format!("{a}で入力できます。{h}")),
        (Some(a), None) => Some(format!("{a}で入力できます。")),
        (None, help) => help.clone(),
    }
}

/// How dates are shown, as a choice that says what it does: 「日付の表示: 和暦 / 西暦」, the
/// current one marked (✓, `aria-current`), each a link reached by Tab and followed by Enter.
/// Every date field takes 西暦 and 和暦 either way (the hint under each field says so).
fn date_style(id: &str, wareki: bool) -> Markup {
    html! {
        p.hint.date-style role="group" aria-labelledby="date-style-label" {
            span #date-style-label { "日付の表示:" } " "
            @for (choice, label, current) in [("wareki", "和暦", wareki), ("western", "西暦", !wareki)] {
                @if choice == "western" { " / " }
                a.date-choice href={ "/sheets/" (id) "/edit?dates=" (choice) }
                    aria-current=[current.then_some("true")] {
                    @if current { "✓ " } (label)
                }
            }
            " （入力は和暦・西暦のどちらでもできます）"
        }
    }
}

fn workflow_summary(w: &WorkflowSummary) -> Markup {
    html! {
        section.workflow-note aria-labelledby="wf-note-title" {
            h2 #wf-note-title { "ワークフロー" }
            dl {
                dt { "医療機関" } dd { (w.institution) }
                dt { "担当者" } dd { @if w.holder.is_empty() { "―" } @else { (w.holder) } }
            }
            @if !w.comment.is_empty() {
                div.comment {
                    h3 { "コメント" }
                    p #wf-note-comment { (w.comment) }
                    p.hint { (w.comment_by) }
                }
            }
        }
    }
}

/// The open questions about one item, beside it, linking to the answer box.
fn inquiry_marks(v: &EditorView<'_>, field: &str) -> Markup {
    html! {
        @if let Some(panel) = v.inquiries {
            @for l in panel.open_about(field) {
                p.msg.inquiry-mark {
                    a href={ "#inquiry-" (l.id) } { "照会（" (l.state_label) "）" }
                    ": " (l.question)
                }
            }
        }
    }
}

fn field_id(item: &str) -> String {
    format!("f-{}", item.replace('.', "-"))
}

fn title(form: &FormDef) -> String {
    form.heading()
}

fn by_item(messages: &[Message]) -> HashMap<&str, Vec<&str>> {
    let mut m: HashMap<&str, Vec<&str>> = HashMap::new();
    for msg in messages {
        for item in &msg.items {
            m.entry(item.as_str()).or_default().push(msg.text.as_str());
        }
    }
    m
}

/// What the rules do for this form, said plainly (docs/rules.md "Every disease can be written").
fn level_text(form: &FormDef) -> &'static str {
    match form.level() {
        nsdb_rules::FormLevel::MachineJudged => "診断のカテゴリー・重症度を入力から機械判定します",
        nsdb_rules::FormLevel::Checked => {
            "入力をチェックします。カテゴリー・重症度は指定医の選択のとおりです"
        }
        nsdb_rules::FormLevel::RecordOnly => {
            "共通項目のみチェックします。カテゴリー・重症度は指定医の選択のとおりです"
        }
    }
}

fn meta_line(form: &FormDef, meta: &SheetMeta<'_>) -> Markup {
    html! {
        dl.meta {
            dt { "ステータス" } dd { (meta.status) }
            dt { "様式の水準" } dd.level title=(level_text(form)) {
                (form.level().label()) span.hint { "（" (level_text(form)) "）" }
            }
            dt { "アクセスキー" } dd { (meta.access_key.unwrap_or("未発行")) }
            dt { "様式版" } dd { (crate::form_version_label(meta.form_version)) }
            dt { "最終更新" } dd { (meta.updated) }
            @if let Some(d) = meta.doctor { dt { "指定医" } dd { (d) } }
            @if let Some(a) = meta.assignee { dt { "担当" } dd { (a) } }
        }
    }
}

/// How many messages are about items of each section (a message counts in the section of
/// its first item).
fn counts_by_section<'f>(form: &'f FormDef, messages: &[Message]) -> HashMap<&'f str, usize> {
    let mut counts = HashMap::new();
    for m in messages {
        let Some(first) = m.items.first() else {
            continue;
        };
        if let Some(s) = form
            .sections
            .iter()
            .find(|s| s.items.iter().any(|i| &i.id == first))
        {
            *counts.entry(s.id.as_str()).or_insert(0) += 1;
        }
    }
    counts
}

fn section_nav(form: &FormDef, messages: &[Message]) -> Markup {
    let counts = counts_by_section(form, messages);
    html! {
        nav.sections aria-label="項目の区分（Alt+←/→ で移動）" {
            @for s in &form.sections {
                @let n = counts.get(s.id.as_str()).copied().unwrap_or(0);
                a href={ "#s-" (s.id) } {
                    (s.title)
                    @if n > 0 { " " span.badge.tab-count { "⚠" (n) "件" } }
                }
            }
        }
    }
}

/// The bar that stays at the top while scrolling: section links and the editor's buttons, in
/// the order of the ministry's design (一時保存, チェック, 一次判定表示, 登録, 承認, 帳票出力, 差異).
fn edit_bar(form: &FormDef, id: &str, a: &Actions<'_>, messages: &[Message]) -> Markup {
    html! {
        div.editbar {
            (section_nav(form, messages))
            div.toolbar {
                button.primary type="submit" form="sheet" name="action" value="save"
                    accesskey=[accesskey("save")] aria-keyshortcuts=[keys("save")] { (keyed("一時保存", "save")) }
                button type="submit" form="sheet" name="action" value="check"
                    accesskey=[accesskey("check")] aria-keyshortcuts=[keys("check")] { (keyed("チェック", "check")) }
                // Judges the values on the screen, saved or not.
                button type="submit" form="sheet" formaction={ "/sheets/" (id) "/judgment" }
                    formtarget="judgment" accesskey=[accesskey("judgment")]
                    aria-keyshortcuts=[keys("judgment")] { (keyed("一次判定表示", "judgment")) }
                @if a.register {
                    button type="submit" form="sheet" name="action" value="register"
                        accesskey=[accesskey("register")] aria-keyshortcuts=[keys("register")] { (keyed("登録", "register")) }
                }
                @if a.approve {
                    button type="submit" form="sheet" name="action" value="approve"
                        accesskey=[accesskey("approve")] aria-keyshortcuts=[keys("approve")] { (keyed("承認", "approve")) }
                }
                a.button href={ "/sheets/" (id) "/print" } target="_blank"
                    accesskey=[accesskey("print")] aria-keyshortcuts=[keys("print")] { (keyed("帳票出力", "print")) }
                a.button href={ "/sheets/" (id) "/diff" } { "差異" }
                a.button href={ "/sheets/" (id) } { "閲覧" }
            }
        }
    }
}

/// The workflow part of the editor: send to a doctor, pull back, send back.
fn workflow_panel(a: &Actions<'_>) -> Markup {
    html! {
        @if a.request || a.pull_back || a.return_ {
            fieldset.workflow #s-workflow {
                legend { "ワークフロー" }
                @if a.request {
                    div.field {
                        label for="wf-to" { "依頼先の指定医" }
                        div.control {
                            select #wf-to name="_to" {
                                option value="" { "（選択してください）" }
                                @for (id, name) in a.doctors { option value=(id) { (name) } }
                            }
                        }
                    }
                }
                @if a.request || a.return_ {
                    div.field {
                        label for="wf-comment" { "コメント" }
                        div.control { textarea #wf-comment name="_comment" rows="2" cols="60" {} }
                    }
                }
                div.toolbar {
                    @if a.request { button type="submit" name="action" value="request" { "確認依頼" } }
                    @if a.return_ { button type="submit" name="action" value="return" { "差戻し" } }
                    @if a.pull_back { button type="submit" name="action" value="pullback" { "引戻" } }
                }
            }
        }
    }
}

fn input(item: &ItemDef, value: &str, invalid: bool, described: &str, wareki: bool) -> Markup {
    let id = field_id(&item.id);
    let invalid = invalid.then_some("true");
    match item.ty {
        ItemType::Code if item.codes.len() <= 6 => html! {
            span.choices role="radiogroup" aria-labelledby={ (id) "-label" } aria-invalid=[invalid] aria-describedby=(described) {
                input type="hidden" name=(item.id) value="";
                @for (n, c) in item.codes.iter().enumerate() {
                    label.choice {
                        input type="radio" name=(item.id) value=(c.code) id=[(n == 0).then(|| id.clone())]
                            checked[value == c.code];
                        (c.label)
                    }
                }
            }
        },
        ItemType::Code => html! {
            select id=(id) name=(item.id) aria-invalid=[invalid] aria-describedby=(described) {
                option value="" { "（未選択）" }
                @for c in &item.codes {
                    option value=(c.code) selected[value == c.code] { (c.code) " " (c.label) }
                }
            }
        },
        ItemType::Codes => {
            let chosen: Vec<&str> = value.split(',').collect();
            html! {
                span.choices role="group" aria-labelledby={ (id) "-label" } aria-invalid=[invalid] aria-describedby=(described) {
                    input type="hidden" name=(item.id) value="";
                    @for (n, c) in item.codes.iter().enumerate() {
                        label.choice {
                            input type="checkbox" name=(item.id) value=(c.code) id=[(n == 0).then(|| id.clone())]
                                checked[chosen.contains(&c.code.as_str())];
                            (c.label)
                        }
                    }
                }
            }
        }
        _ => {
            let shown = if wareki {
                nsdb_rules::value::in_wareki(item, value)
            } else {
                value.to_string()
            };
            let value = shown.as_str();
            // No numeric keyboard for dates: 和暦 is typed with its era (令和, R).
            let (kind, mode, placeholder) = match item.ty {
                ItemType::Date if wareki => ("text", None, Some("令和6年4月1日")),
                ItemType::Date => ("text", None, Some("2024-04-01")),
                ItemType::YearMonth if wareki => ("text", None, Some("令和6年4月")),
                ItemType::YearMonth => ("text", None, Some("2024-04")),
                ItemType::Integer | ItemType::Digits | ItemType::InsurerNo => {
                    ("text", Some("numeric"), None)
                }
                ItemType::Decimal => ("text", Some("decimal"), None),
                ItemType::Postal => ("text", Some("numeric"), Some("100-8916")),
                _ => ("text", None, None),
            };
            html! {
                input id=(id) name=(item.id) type=(kind) value=(value) inputmode=[mode]
                    placeholder=[placeholder] aria-invalid=[invalid] aria-describedby=(described)
                    aria-required=[item.required.then_some("true")] maxlength=[item.max_len];
            }
        }
    }
}

fn message_summary(form: &FormDef, messages: &[Message]) -> Markup {
    html! {
        @if !messages.is_empty() {
            section.messages role="alert" aria-labelledby="messages-title" {
                h2 #messages-title { "確認が必要な項目があります（" (messages.len()) "件）" }
                ul {
                    @for m in messages {
                        li {
                            @match m.items.first().and_then(|i| form.item(i)) {
                                Some(item) => a href={ "#" (field_id(&item.id)) } { (m.text) },
                                None => (m.text),
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The editor: one form with every section, and 一時保存.
pub fn editor(ctx: &PageContext<'_>, v: &EditorView<'_>) -> Markup {
    let problems = by_item(v.messages);
    let first_field = v
        .form
        .sections
        .first()
        .and_then(|s| s.items.first())
        .map(|i| format!("#{}", field_id(&i.id)))
        .unwrap_or_else(|| "#main".into());
    crate::layout_with_skip(
        ctx,
        &title(v.form),
        (&first_field, "最初の入力欄へ移動"),
        html! {
            (meta_line(v.form, &v.meta))
            @if let Some(w) = v.workflow { (workflow_summary(w)) }
            @if let Some(n) = v.problem { p.error role="alert" { (n) } }
            @if let Some(r) = v.renewal { (renewal_notice(ctx, r)) }
            @if let Some(c) = v.conflicts { (crate::conflicts::panel(c)) }
            @if let Some(q) = v.inquiries { (crate::review::inquiry_panel(q)) }
            (message_summary(v.form, v.messages))
            (edit_bar(v.form, v.meta.id, &v.actions, v.messages))
            // data-answered: this page answers a post the server received (a refused save shown
            // again with the typing), so the browser's copy of that post is not needed.
            form.sheet #sheet method="post" novalidate action={ "/sheets/" (v.meta.id) }
                data-answered=[v.problem.map(|_| "1")] {
                input type="hidden" name="csrf" value=(ctx.csrf);
                input type="hidden" name="_version" value=(v.version);
                input type="hidden" name="_author" value=(v.user);
                // The field the user was in (set by app.js); the editor comes back to it.
                input type="hidden" name="_focus" value="";
                @if !v.carried.is_empty() {
                    div.carried role="note" {
                        "前回の臨床調査個人票・医療意見書から引き継いだ値が " (v.carried.len())
                        " 項目あります（「前回値」の印）。内容を確認してください。"
                        button type="submit" name="action" value="confirm_carried" { "前回値を確認済みにする" }
                    }
                }
                (workflow_panel(&v.actions))
                (date_style(v.meta.id, v.wareki))
                @for s in &v.form.sections {
                    fieldset #{ "s-" (s.id) } {
                        legend { (s.title) }
                        @for item in &s.items {
                            @let value = v.values.get(&item.id).map(String::as_str).unwrap_or("");
                            @let msgs = problems.get(item.id.as_str());
                            @let id = field_id(&item.id);
                            @let described = format!("{id}-msg {id}-help");
                            div.field.invalid[msgs.is_some()] {
                                label #{ (id) "-label" } for=(id) {
                                    (item.label)
                                    @if item.required { span.badge { "必須" } }
                                    @if v.carried.contains(&item.id) { span.badge.carried-mark { "前回値" } }
                                }
                                div.control {
                                    (input(item, value, msgs.is_some(), &described, v.wareki))
                                    @if let Some(u) = &item.unit { span.unit { (u) } }
                                    @if item.calc.is_some() {
                                        button.autofill type="submit" name="action" value="autofill" { "自動入力" }
                                    }
                                }
                                (inquiry_marks(v, &item.id))
                                @if let Some(c) = v.conflicts.and_then(|c| c.items.iter().find(|i| i.field == item.id)) {
                                    p.msg.conflict {
                                        "⚠ 同時に編集され、値が二つあります: "
                                        @for (n, choice) in c.choices.iter().enumerate() {
                                            @if n > 0 { " ／ " }
                                            strong { (choice.display) } "（" (choice.who) "）"
                                        }
                                        " 画面上部の一覧で採用する値を選んでください。"
                                    }
                                }
                                @if let Some(ms) = msgs {
                                    p.msg #{ (id) "-msg" } { @for m in ms { "⚠ " (m) " " } }
                                }
                                @if let Some(h) = item_help(item) { p.help #{ (id) "-help" } { (h) } }
                            }
                        }
                    }
                }
                div.toolbar {
                    button.primary type="submit" name="action" value="save" { "一時保存" }
                    a.button href={ "/sheets/" (v.meta.id) } { "閲覧" }
                }
            }
        },
    )
}

/// Display text of a stored value: code labels for code items, the unit after numbers.
pub fn display_value(item: &ItemDef, value: &str) -> String {
    match item.ty {
        ItemType::Code => item.code_label(value).unwrap_or(value).to_string(),
        ItemType::Codes => value
            .split(',')
            .filter(|c| !c.is_empty())
            .map(|c| item.code_label(c).unwrap_or(c))
            .collect::<Vec<_>>()
            .join("、"),
        _ => match &item.unit {
            Some(u) if !value.is_empty() => format!("{value} {u}"),
            _ => value.to_string(),
        },
    }
}

fn step_button(ctx: &PageContext<'_>, id: &str, path: &str, label: &str) -> Markup {
    html! {
        form.inline method="post" action={ "/sheets/" (id) "/" (path) } {
            input type="hidden" name="csrf" value=(ctx.csrf);
            button type="submit" { (label) }
        }
    }
}

fn view_toolbar(ctx: &PageContext<'_>, v: &EditorView<'_>) -> Markup {
    let (a, id) = (&v.actions, v.meta.id);
    html! {
        div.toolbar {
            @if a.edit { a.button.primary href={ "/sheets/" (id) "/edit" } { "編集" } }
            @if a.approve { (step_button(ctx, id, "approve", "承認")) }
            @if a.release { (step_button(ctx, id, "release", "解除")) }
            @if a.renew { (step_button(ctx, id, "renew", "更新登録")) }
            @if a.amend {
                form.inline.amend method="post" action={ "/sheets/" (id) "/amend" } {
                    input type="hidden" name="csrf" value=(ctx.csrf);
                    label for="amend-reason" { "修正の理由" }
                    input #amend-reason name="reason" required maxlength="200";
                    button type="submit" { "修正" }
                }
            }
            a.button href={ "/sheets/" (id) "/judgment" } target="judgment" { "一次判定表示" }
            a.button href={ "/sheets/" (id) "/print" } target="_blank" { "帳票出力" }
            a.button href={ "/sheets/" (id) "/print?masked=1" } target="_blank" { "帳票出力（審査会用・個人情報マスク）" }
            a.button href={ "/sheets/" (id) "/diff" } { "差異" }
            a.button href={ "/sheets/" (id) "/history" } { "履歴" }
            a.button href={ "/sheets/" (id) "/xml" } title="XML（公開レイアウト）で保存" { "データ出力" }
        }
    }
}

/// The read-only view of a sheet.
pub fn view(ctx: &PageContext<'_>, v: &EditorView<'_>) -> Markup {
    layout(
        ctx,
        &title(v.form),
        html! {
            (meta_line(v.form, &v.meta))
            @if let Some(w) = v.workflow { (workflow_summary(w)) }
            @if let Some(n) = v.problem { p.error role="alert" { (n) } }
            @if let Some(c) = v.conflicts { (crate::conflicts::panel(c)) }
            @if let Some(q) = v.inquiries { (crate::review::inquiry_panel(q)) }
            (message_summary(v.form, v.messages))
            (view_toolbar(ctx, v))
            @for s in &v.form.sections {
                section.readonly #{ "s-" (s.id) } {
                    h2 { (s.title) }
                    dl {
                        @for item in &s.items {
                            @let value = v.values.get(&item.id).map(String::as_str).unwrap_or("");
                            dt data-item=(item.id) { (item.label) }
                            dd {
                                @if value.is_empty() { span.empty { "未入力" } } @else { (display_value(item, value)) }
                                (inquiry_marks(v, &item.id))
                            }
                        }
                    }
                }
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every date and year-month field of every form says it takes both 和暦 and 西暦; none
    /// says 西暦 alone.
    #[test]
    fn every_date_field_hints_that_it_takes_wareki_and_western_dates() {
        let cat = nsdb_rules::Catalogue::builtin().expect("catalogue");
        let mut seen = 0;
        for form in cat.forms() {
            for item in form.items() {
                if !matches!(item.ty, ItemType::Date | ItemType::YearMonth) {
                    continue;
                }
                seen += 1;
                let hint = item_help(item).unwrap_or_default();
                assert!(
                    hint.contains("和暦") && hint.contains("西暦"),
                    "{} {}: {hint}",
                    form.id,
                    item.id
                );
                assert!(!hint.contains("西暦で"), "{} {}: {hint}", form.id, item.id);
            }
        }
        assert!(seen > 1000, "{seen} date fields");
    }
}
