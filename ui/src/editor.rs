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
}

/// Everything the editor shows.
#[derive(Debug, Clone)]
pub struct EditorView<'a> {
    pub form: &'a FormDef,
    pub meta: SheetMeta<'a>,
    pub values: &'a BTreeMap<String, String>,
    pub messages: &'a [Message],
    /// A notice after saving, e.g. "一時保存しました。".
    pub notice: Option<&'a str>,
    pub conflicts: Option<&'a crate::conflicts::ConflictPanel>,
}

fn field_id(item: &str) -> String {
    format!("f-{}", item.replace('.', "-"))
}

fn title(form: &FormDef) -> String {
    format!(
        "【{}】 告示番号{} {}",
        form.kind.label(),
        form.kokuji,
        form.disease
    )
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

fn meta_line(meta: &SheetMeta<'_>) -> Markup {
    html! {
        dl.meta {
            dt { "ステータス" } dd { (meta.status) }
            dt { "アクセスキー" } dd { (meta.access_key.unwrap_or("未発行")) }
            dt { "様式版" } dd { (meta.form_version) }
            dt { "最終更新" } dd { (meta.updated) }
        }
    }
}

fn section_nav(form: &FormDef) -> Markup {
    html! {
        nav.sections aria-label="項目の区分" {
            @for s in &form.sections {
                a href={ "#s-" (s.id) } { (s.title) }
            }
        }
    }
}

/// The bar that stays at the top while scrolling: section links and the editor's buttons.
fn edit_bar(form: &FormDef, id: &str) -> Markup {
    html! {
        div.editbar {
            (section_nav(form))
            div.toolbar {
                button.primary type="submit" form="sheet" name="action" value="save" accesskey="s" { "一時保存" }
                a.button href={ "/sheets/" (id) } { "閲覧" }
            }
        }
    }
}

fn input(item: &ItemDef, value: &str, invalid: bool, described: &str) -> Markup {
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
            let (kind, mode, placeholder) = match item.ty {
                ItemType::Date => ("text", Some("numeric"), Some("2024-04-01")),
                ItemType::YearMonth => ("text", Some("numeric"), Some("2024-04")),
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
    layout(
        ctx,
        &title(v.form),
        html! {
            (meta_line(&v.meta))
            @if let Some(n) = v.notice { p.notice role="status" { (n) } }
            (message_summary(v.form, v.messages))
            (edit_bar(v.form, v.meta.id))
            form.sheet #sheet method="post" novalidate action={ "/sheets/" (v.meta.id) } {
                input type="hidden" name="csrf" value=(ctx.csrf);
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
                                }
                                div.control {
                                    (input(item, value, msgs.is_some(), &described))
                                    @if let Some(u) = &item.unit { span.unit { (u) } }
                                }
                                @if let Some(ms) = msgs {
                                    p.msg #{ (id) "-msg" } { @for m in ms { "⚠ " (m) " " } }
                                }
                                @if let Some(h) = &item.help { p.help #{ (id) "-help" } { (h) } }
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

/// The read-only view of a sheet.
pub fn view(ctx: &PageContext<'_>, v: &EditorView<'_>, can_edit: bool) -> Markup {
    layout(
        ctx,
        &title(v.form),
        html! {
            (meta_line(&v.meta))
            @if let Some(c) = v.conflicts { (crate::conflicts::panel(c)) }
            (message_summary(v.form, v.messages))
            @if can_edit {
                div.toolbar { a.button.primary href={ "/sheets/" (v.meta.id) "/edit" } { "編集" } }
            }
            @for s in &v.form.sections {
                section.readonly #{ "s-" (s.id) } {
                    h2 { (s.title) }
                    dl {
                        @for item in &s.items {
                            @let value = v.values.get(&item.id).map(String::as_str).unwrap_or("");
                            dt { (item.label) }
                            dd { @if value.is_empty() { span.empty { "未入力" } } @else { (display_value(item, value)) } }
                        }
                    }
                }
            }
        },
    )
}
