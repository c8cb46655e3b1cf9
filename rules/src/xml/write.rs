//! Writing sheets in the layout (データ出力, and the samples): the values map the screen keeps
//! becomes one `<Sheet>` per sheet, items in form order, empty items left out. Reading what this
//! writes gives the same values back. It must never drop a value silently: an item the form does
//! not have, or a character XML cannot carry, is an error.

use std::collections::BTreeMap;
use std::fmt::Write;

use quick_xml::escape::escape;

use super::{Block, EDA, KOKUJI, LAYOUT_VERSION, ROOT, SHEET, blocks, item_element};
use crate::form::FormDef;

/// One sheet to write.
#[derive(Debug, Clone, Copy)]
pub struct SheetOut<'a> {
    pub form: &'a FormDef,
    /// The writer's own reference for the sheet (the `ref` attribute), e.g. a record number.
    pub reference: Option<&'a str>,
    /// Item id → stored value, as the screen keeps them.
    pub values: &'a BTreeMap<String, String>,
}

/// Why sheets could not be written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WriteError {
    #[error("様式 {form} に項目 {item} はありません。出力できません。")]
    UnknownItem { form: String, item: String },
    #[error(
        "様式 {form} の項目 {item} に XML で書けない制御文字（U+{code:04X}）があります。値を直してください。"
    )]
    Unwritable {
        form: String,
        item: String,
        code: u32,
    },
}

/// The sheets as one UTF-8 XML file (with its declaration), in the layout the schema describes.
pub fn write(sheets: &[SheetOut<'_>]) -> Result<String, WriteError> {
    let mut out = String::new();
    out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(out, "<{ROOT} layout=\"{LAYOUT_VERSION}\">");
    for sheet in sheets {
        write_sheet(&mut out, sheet)?;
    }
    let _ = writeln!(out, "</{ROOT}>");
    Ok(out)
}

fn write_sheet(out: &mut String, sheet: &SheetOut<'_>) -> Result<(), WriteError> {
    let form = sheet.form;
    if let Some(unknown) = sheet.values.keys().find(|k| form.item(k).is_none()) {
        return Err(WriteError::UnknownItem {
            form: form.id.clone(),
            item: unknown.clone(),
        });
    }
    let _ = write!(
        out,
        "  <{SHEET} form=\"{}\" formVersion=\"{}\"",
        escape(&form.id),
        escape(&form.version)
    );
    if let Some(r) = sheet.reference {
        // Attribute values lose tabs and line breaks unless written as references.
        let r = text(form, "ref", r)?
            .replace('\n', "&#10;")
            .replace('\t', "&#9;");
        let _ = write!(out, " ref=\"{r}\"");
    }
    out.push_str(">\n");
    for (block, sections) in blocks(form) {
        let mut body = String::new();
        for section in sections {
            let mut items = String::new();
            for item in &section.items {
                let Some(v) = sheet.values.get(&item.id).filter(|v| !v.is_empty()) else {
                    continue;
                };
                let name = item_element(section, &item.id);
                let _ = writeln!(
                    items,
                    "        <{name}>{}</{name}>",
                    text(form, &item.id, v)?
                );
            }
            if !items.is_empty() {
                let _ = write!(body, "      <{0}>\n{items}      </{0}>\n", section.id);
            }
        }
        if block == Block::Basic {
            let _ = write!(
                out,
                "    <{b}>\n      <{KOKUJI}>{}</{KOKUJI}>\n      <{EDA}>{}</{EDA}>\n{body}    </{b}>\n",
                form.kokuji,
                form.eda,
                b = block.element()
            );
        } else if !body.is_empty() {
            let _ = write!(out, "    <{0}>\n{body}    </{0}>\n", block.element());
        }
    }
    let _ = writeln!(out, "  </{SHEET}>");
    Ok(())
}

/// A value escaped for XML; a carriage return is kept as `&#13;` so it survives reading.
fn text(form: &FormDef, item: &str, v: &str) -> Result<String, WriteError> {
    if let Some(c) = v.chars().find(|&c| !xml_char(c)) {
        return Err(WriteError::Unwritable {
            form: form.id.clone(),
            item: item.to_string(),
            code: c as u32,
        });
    }
    Ok(escape(v).replace('\r', "&#13;"))
}

/// Whether XML 1.0 can carry the character at all.
pub(super) fn xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}
