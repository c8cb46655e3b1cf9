//! Form definitions: what a 臨床調査個人票 or 医療意見書 asks, section by section, item by item.
//!
//! A form file is TOML (see `rules/forms/`). This module parses one file and checks that it is
//! internally consistent; composing a disease form with the shared sections is the catalogue's
//! job. It must never guess: an unknown key, an unknown code list or a duplicate id is an error
//! that names the file and the item.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::CatalogueError;

/// Which family of form this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FormKind {
    /// 臨床調査個人票 (adults, 指定難病).
    Rinko,
    /// 医療意見書 (children, 小児慢性特定疾病).
    Iken,
}

impl FormKind {
    pub fn label(self) -> &'static str {
        match self {
            FormKind::Rinko => "臨床調査個人票",
            FormKind::Iken => "医療意見書",
        }
    }
}

/// The type of one item, which decides how it is entered, normalised and checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemType {
    Text,
    /// Full-width katakana (フリガナ).
    Kana,
    Integer,
    Decimal,
    Date,
    #[serde(rename = "yearmonth")]
    YearMonth,
    /// One choice from a code list.
    Code,
    /// Any number of choices from a code list.
    Codes,
    /// 郵便番号, seven digits.
    Postal,
    /// 保険者番号.
    InsurerNo,
    /// A string of digits (e.g. 指定医番号).
    Digits,
}

/// One choice of a code list.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Code {
    pub code: String,
    pub label: String,
}

/// A named list of choices, shared by any item that names it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CodeList {
    pub codes: Vec<Code>,
}

/// One item of a form.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ItemDef {
    pub id: String,
    pub label: String,
    #[serde(rename = "type")]
    pub ty: ItemType,
    #[serde(default)]
    pub required: bool,
    pub unit: Option<String>,
    /// A named code list; resolved into `codes` when the catalogue is composed.
    pub codelist: Option<String>,
    #[serde(default)]
    pub codes: Vec<Code>,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub max_len: Option<usize>,
    /// Whether the value carries forward to next year's renewal sheet (前回値踏襲).
    #[serde(default)]
    pub carry: bool,
    pub help: Option<String>,
    /// What could not be sourced for this item, shown to rule authors and reviewers.
    pub unverified: Option<String>,
}

/// Where a shared section stands relative to a disease's own sections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Place {
    #[default]
    Before,
    After,
}

/// One section (tab) of a form.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SectionDef {
    pub id: String,
    pub title: String,
    #[serde(default)]
    pub place: Place,
    #[serde(default, rename = "item")]
    pub items: Vec<ItemDef>,
}

/// The header of a form file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FormHeader {
    pub id: String,
    pub kind: FormKind,
    pub title: String,
    pub version: String,
    #[serde(default)]
    pub sources: Vec<String>,
    /// 告示番号 (指定難病) or the 小慢 disease number.
    pub kokuji: Option<u16>,
    /// 枝番.
    pub eda: Option<u16>,
    pub disease: Option<String>,
    /// The id of the shared sections this form includes.
    pub common: Option<String>,
}

/// One parsed form file, before composition.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FormFile {
    pub form: FormHeader,
    #[serde(default)]
    pub codelist: BTreeMap<String, CodeList>,
    #[serde(default, rename = "section")]
    pub sections: Vec<SectionDef>,
}

impl FormFile {
    /// Parses one form file; `file` names it in errors.
    pub fn parse(file: &str, text: &str) -> Result<FormFile, CatalogueError> {
        toml::from_str(text).map_err(|e| CatalogueError::Syntax {
            file: file.to_string(),
            message: e.to_string(),
        })
    }
}

/// A composed, ready-to-use form: the shared sections and the disease's own, in screen order,
/// with every code list resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct FormDef {
    pub id: String,
    pub kind: FormKind,
    pub title: String,
    pub version: String,
    pub kokuji: u16,
    pub eda: u16,
    pub disease: String,
    pub sources: Vec<String>,
    pub sections: Vec<SectionDef>,
}

impl FormDef {
    /// Every item, in screen order.
    pub fn items(&self) -> impl Iterator<Item = &ItemDef> {
        self.sections.iter().flat_map(|s| s.items.iter())
    }

    pub fn item(&self, id: &str) -> Option<&ItemDef> {
        self.items().find(|i| i.id == id)
    }

    /// The section an item belongs to.
    pub fn section_of(&self, item: &str) -> Option<&SectionDef> {
        self.sections
            .iter()
            .find(|s| s.items.iter().any(|i| i.id == item))
    }
}

impl ItemDef {
    /// The label of a code, for display.
    pub fn code_label(&self, code: &str) -> Option<&str> {
        self.codes
            .iter()
            .find(|c| c.code == code)
            .map(|c| c.label.as_str())
    }
}
