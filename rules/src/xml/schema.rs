//! The XML Schema (XSD 1.0) of one form, generated from its definition: what a vendor validates
//! a file against with their own tools (`xmllint --schema`). It describes the canonical values
//! (`YYYY-MM-DD`, codes as listed, half-width digits); the reader is more forgiving, as the
//! screen is. It must never be edited by hand: a form change changes the schema.

use std::fmt::Write;

use quick_xml::escape::escape;

use super::{Block, EDA, KOKUJI, LAYOUT_VERSION, ROOT, SHEET, blocks, item_element};
use crate::form::{FormDef, ItemDef, ItemType};

/// The XSD of `form`'s layout, as UTF-8 text. A file validating against it holds sheets of this
/// form only (the reader also accepts files mixing forms, each sheet naming its own).
pub fn schema(form: &FormDef) -> String {
    let mut s = String::new();
    let w = &mut s;
    line(w, 0, r#"<?xml version="1.0" encoding="UTF-8"?>"#);
    line(
        w,
        0,
        r#"<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" elementFormDefault="unqualified">"#,
    );
    doc(
        w,
        1,
        &format!(
            "{} {} (様式 {}, 版 {}). nsdb の様式定義から生成。手で編集しないこと。",
            form.kind.label(),
            form.disease,
            form.id,
            form.version
        ),
    );
    line(w, 1, &format!(r#"<xs:element name="{ROOT}">"#));
    line(w, 2, "<xs:complexType>");
    line(w, 3, "<xs:sequence>");
    line(
        w,
        4,
        &format!(r#"<xs:element name="{SHEET}" type="SheetType" maxOccurs="unbounded"/>"#),
    );
    line(w, 3, "</xs:sequence>");
    line(
        w,
        3,
        &format!(r#"<xs:attribute name="layout" type="xs:string" fixed="{LAYOUT_VERSION}"/>"#),
    );
    line(w, 2, "</xs:complexType>");
    line(w, 1, "</xs:element>");

    line(w, 1, r#"<xs:complexType name="SheetType">"#);
    line(w, 2, "<xs:all>");
    for (block, sections) in blocks(form) {
        line(
            w,
            3,
            &format!(r#"<xs:element name="{}" minOccurs="0">"#, block.element()),
        );
        doc(w, 4, block.title());
        line(w, 4, "<xs:complexType>");
        line(w, 5, "<xs:all>");
        if block == Block::Basic {
            for (name, value, label) in [(KOKUJI, form.kokuji, "告示番号"), (EDA, form.eda, "枝番")]
            {
                line(
                    w,
                    6,
                    &format!(
                        r#"<xs:element name="{name}" type="xs:nonNegativeInteger" fixed="{value}" minOccurs="0">"#
                    ),
                );
                doc(w, 7, label);
                line(w, 6, "</xs:element>");
            }
        }
        for section in sections {
            line(
                w,
                6,
                &format!(r#"<xs:element name="{}" minOccurs="0">"#, section.id),
            );
            doc(w, 7, &section.title);
            line(w, 7, "<xs:complexType>");
            line(w, 8, "<xs:all>");
            for item in &section.items {
                item_decl(w, 9, item_element(section, &item.id), item);
            }
            line(w, 8, "</xs:all>");
            line(w, 7, "</xs:complexType>");
            line(w, 6, "</xs:element>");
        }
        line(w, 5, "</xs:all>");
        line(w, 4, "</xs:complexType>");
        line(w, 3, "</xs:element>");
    }
    line(w, 2, "</xs:all>");
    for (name, fixed, required) in [
        ("form", Some(form.id.as_str()), true),
        ("formVersion", Some(form.version.as_str()), true),
        ("ref", None, false),
    ] {
        let fixed = fixed
            .map(|f| format!(r#" fixed="{}""#, escape(f)))
            .unwrap_or_default();
        let use_ = if required { r#" use="required""# } else { "" };
        line(
            w,
            2,
            &format!(r#"<xs:attribute name="{name}" type="xs:string"{use_}{fixed}/>"#),
        );
    }
    line(w, 1, "</xs:complexType>");
    line(w, 0, "</xs:schema>");
    s
}

fn line(w: &mut String, indent: usize, text: &str) {
    let _ = writeln!(w, "{}{text}", "  ".repeat(indent));
}

fn doc(w: &mut String, indent: usize, text: &str) {
    line(w, indent, "<xs:annotation>");
    line(
        w,
        indent + 1,
        &format!("<xs:documentation>{}</xs:documentation>", escape(text)),
    );
    line(w, indent, "</xs:annotation>");
}

/// One item's element with its type: strings for text, patterns for the canonical forms, the
/// code list as an enumeration. Every type also admits the empty value (an item left blank).
fn item_decl(w: &mut String, indent: usize, name: &str, item: &ItemDef) {
    line(
        w,
        indent,
        &format!(r#"<xs:element name="{name}" minOccurs="0">"#),
    );
    let mut text = item.label.clone();
    if let Some(u) = &item.unit {
        let _ = write!(text, " (単位: {u})");
    }
    if item.required {
        text.push_str(" [登録時必須]");
    }
    if let Some(c) = &item.required_if {
        let _ = write!(text, " [{}の場合必須]", c.text);
    }
    if !item.codes.is_empty() {
        let codes: Vec<String> = item
            .codes
            .iter()
            .map(|c| format!("{}={}", c.code, c.label))
            .collect();
        let _ = write!(text, " 選択肢: {}", codes.join(", "));
        if item.ty == ItemType::Codes {
            text.push_str(" (複数選択はカンマ区切り)");
        }
    }
    if item.calc.is_some() {
        text.push_str(" [自動計算]");
    }
    doc(w, indent + 1, &text);
    line(w, indent + 1, "<xs:simpleType>");
    let base = if matches!(item.ty, ItemType::Text | ItemType::Kana) {
        "xs:string"
    } else {
        "xs:token"
    };
    line(w, indent + 2, &format!(r#"<xs:restriction base="{base}">"#));
    let facet = |w: &mut String, f: &str| line(w, indent + 3, f);
    let pattern = |w: &mut String, p: &str| {
        facet(w, &format!(r#"<xs:pattern value="{}"/>"#, escape(p)));
    };
    match item.ty {
        ItemType::Text => {
            if let Some(n) = item.max_len {
                facet(w, &format!(r#"<xs:maxLength value="{n}"/>"#));
            }
        }
        ItemType::Kana => {}
        ItemType::Integer => pattern(w, "(-?[0-9]+)?"),
        ItemType::Decimal => pattern(w, r"(-?[0-9]+(\.[0-9]+)?)?"),
        ItemType::Date => pattern(w, "([0-9]{4}-[0-9]{2}-[0-9]{2})?"),
        ItemType::YearMonth => pattern(w, "([0-9]{4}-[0-9]{2})?"),
        ItemType::Postal => pattern(w, "([0-9]{3}-[0-9]{4})?"),
        ItemType::InsurerNo => pattern(w, "([0-9]{6}|[0-9]{8})?"),
        ItemType::Digits => pattern(w, "[0-9]*"),
        ItemType::Code => {
            facet(w, r#"<xs:enumeration value=""/>"#);
            for c in &item.codes {
                facet(
                    w,
                    &format!(r#"<xs:enumeration value="{}"/>"#, escape(&c.code)),
                );
            }
        }
        ItemType::Codes => {
            let one = format!(
                "({})",
                item.codes
                    .iter()
                    .map(|c| regex_escape(&c.code))
                    .collect::<Vec<_>>()
                    .join("|")
            );
            pattern(w, &format!("({one}(,{one})*)?"));
        }
    }
    line(w, indent + 2, "</xs:restriction>");
    line(w, indent + 1, "</xs:simpleType>");
    line(w, indent, "</xs:element>");
}

/// A literal for an XSD regular expression.
fn regex_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if r"\|.-^?*+{}()[]$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}
