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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
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
    /// The points this choice scores on a scale (Barthel 10, 5, 0), summed by the built-in
    /// `points`.
    #[serde(default)]
    pub points: Option<i32>,
}

/// A named list of choices, shared by any item that names it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CodeList {
    pub codes: Vec<Code>,
}

/// A severity scale shared by the disease forms (mRS, NYHA, Barthel…), defined once in
/// `forms/scales.toml` with its source. A scale with `codes` is also a code list of the same id
/// (`codelist = "mrs"`); a scale with `parts` groups the scales of its parts (`barthel.eating`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScaleDef {
    pub title: String,
    /// Where the scale's wording comes from (each part inherits its group's).
    #[serde(default)]
    pub sources: Vec<String>,
    #[serde(default)]
    pub codes: Vec<Code>,
    /// The ids of the scales that make up this one (a multi-item scale).
    #[serde(default)]
    pub parts: Vec<String>,
    pub unverified: Option<String>,
}

/// A file of shared scales (`scales.toml`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScaleFile {
    pub scale: BTreeMap<String, ScaleDef>,
}

/// A TOML error in Japanese, with its place: 「3行5列目: TOML の書式に誤りがあります（…）」; the
/// parser's own words (which name the key or value) follow in brackets.
fn syntax_error(file: &str, text: &str, e: &toml::de::Error) -> CatalogueError {
    let place = e
        .span()
        .map(|span| {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let col = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
            format!("{line}行{col}列目: ")
        })
        .unwrap_or_default();
    CatalogueError::Syntax {
        file: file.to_string(),
        message: format!(
            "{place}TOML の書式か項目の書き方に誤りがあります（{}）",
            e.message().trim()
        ),
    }
}

impl ScaleFile {
    /// Whether a file of the catalogue holds scales rather than a form: by name,
    /// `scales.toml` or `….scales.toml`.
    pub fn is_scale_file(name: &str) -> bool {
        name == "scales.toml" || name.ends_with(".scales.toml") || name.ends_with("/scales.toml")
    }

    pub fn parse(file: &str, text: &str) -> Result<ScaleFile, CatalogueError> {
        toml::from_str(text).map_err(|e| syntax_error(file, text, &e))
    }
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
    /// The scale's step: a number must be `min` (or 0) plus a whole number of steps
    /// (EDSS: 0.5). Checked like the range.
    pub step: Option<f64>,
    /// Numbers within the range and on a step that the scale still does not have (EDSS 0.5).
    #[serde(default)]
    pub exclude: Vec<f64>,
    /// The length of the form's box, in characters: a longer text is kept and reported (a
    /// draft message). What is saved at all is bounded by [`ItemDef::entry_limit`].
    pub max_len: Option<usize>,
    /// Whether the value carries forward to next year's renewal sheet (前回値踏襲).
    #[serde(default)]
    pub carry: bool,
    pub help: Option<String>,
    /// What could not be sourced for this item, shown to rule authors and reviewers.
    pub unverified: Option<String>,
    /// Required only when this condition (a CEL expression over the sheet) holds; checked in
    /// `Mode::Complete` like `required`.
    pub required_if: Option<Condition>,
    /// A date or year-month that may not be earlier than another item's (e.g. onset not before
    /// birth): the other item's id.
    pub not_before: Option<String>,
    /// How this item is calculated (自動計算); the editor puts an 自動入力 button beside it.
    pub calc: Option<CalcDef>,
}

/// A condition written in CEL, with the words the message uses for it.
///
/// Either one expression (`expr`), or a count (`count` with `at_least`): "at least n of these
/// hold", judged on what is entered (two entered members that hold already prove "2 of 6";
/// four entered that fail with two blank already disprove "4 of 6"); see `evaluate`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    /// CEL over the sheet: each section is a map (`severity.hoehn_yahr`), codes are strings,
    /// integers `int`, decimals `double`, several codes a list of strings; an empty item is absent
    /// (test with `has(section.item)`). Empty when `count` is given.
    #[serde(default)]
    pub expr: String,
    /// CEL conditions counted; the condition holds when at least `at_least` of them do.
    #[serde(default)]
    pub count: Vec<String>,
    /// How many of `count` must hold.
    pub at_least: Option<usize>,
    /// The condition in Japanese, as the message states it.
    pub text: String,
}

/// How a calculated item is computed.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CalcDef {
    /// A CEL expression giving a number (sums, counts, weighted totals).
    pub expr: Option<String>,
    /// Or one of the built-in formulas (`bmi`, `obesity_degree`, `egfr_jp`, `bmi_class`,
    /// `obesity_class`), applied to `args` (item ids).
    pub builtin: Option<String>,
    #[serde(default)]
    pub args: Vec<String>,
    /// Decimal places kept (half away from zero); 0 for a whole number.
    #[serde(default)]
    pub round: u8,
    /// Where the formula comes from and what is not sourced.
    pub note: Option<String>,
    /// A total of non-negative points (a sum, a count, per-domain maxima) whose expression counts
    /// a blank input as adding nothing: with inputs blank, its value is what the entered items
    /// already score, a lower bound, and a judgment reading it knows the most each blank input
    /// could still add (see `evaluate`). Only for totals where two items together never add
    /// more than each alone.
    #[serde(default)]
    pub partial: bool,
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
    /// What could not be sourced for this form as a whole.
    pub unverified: Option<String>,
    /// The shared scales (`scales.toml`) this disease's criteria text cites.
    #[serde(default)]
    pub scales: Vec<String>,
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
    /// Checks across items (形式チェック beyond one value).
    #[serde(default, rename = "rule")]
    pub rules: Vec<RuleDef>,
    /// Machine judgments (機械判定): diagnostic category and severity.
    #[serde(default, rename = "judgment")]
    pub judgments: Vec<JudgmentDef>,
    /// How a sheet written on an earlier version of this form carries forward onto this one.
    #[serde(default, rename = "migrate")]
    pub migrations: Vec<MigrationDef>,
}

/// The item mapping from an earlier version of a form (`[[migrate]]`): renamed items and
/// recoded choices. Items and choices that no longer exist are dropped, and said so, by
/// `carry::carry_forward`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MigrationDef {
    /// The earlier version this mapping starts from (`FormDef::version` of the sheet's form).
    pub from: String,
    /// Old item id → new item id.
    #[serde(default)]
    pub items: BTreeMap<String, String>,
    /// New item id → (old code → new code; "" drops the choice).
    #[serde(default)]
    pub codes: BTreeMap<String, BTreeMap<String, String>>,
    /// Why the form changed (shown with the dropped values).
    pub reason: Option<String>,
}

/// A check across items: when `when` holds, `message` is reported on `items`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleDef {
    pub id: String,
    /// CEL; true means the sheet has this problem.
    pub when: String,
    pub items: Vec<String>,
    pub message: String,
    pub unverified: Option<String>,
}

/// What a judgment derives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum JudgmentKind {
    /// 診断のカテゴリー (Definite, Probable, 確診, 疑診…).
    Category,
    /// 重症度分類.
    Severity,
}

/// How an outcome's conditions combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Match {
    /// Every condition must hold.
    #[default]
    All,
    /// At least one condition must hold.
    Any,
}

/// One possible result of a judgment, with the conditions that lead to it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutcomeDef {
    /// The code of the judged item this outcome corresponds to (when the doctor selects one).
    pub code: Option<String>,
    /// The outcome's name in messages; defaults to the code's label.
    pub label: Option<String>,
    #[serde(default, rename = "match")]
    pub combine: Match,
    /// No conditions: the outcome when no earlier one holds.
    #[serde(default)]
    pub conditions: Vec<Condition>,
    pub unverified: Option<String>,
}

/// A machine judgment: outcomes tried in order, the first that holds is the derived one.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JudgmentDef {
    pub kind: JudgmentKind,
    pub title: String,
    /// The item where the doctor states the result, compared with the derived one.
    pub item: Option<String>,
    /// Outcomes (by code, or by label when there is no item) that meet the subsidy criteria.
    #[serde(default)]
    pub target: Vec<String>,
    /// 軽症高額該当: an integer item counting months in the last twelve whose medical cost
    /// exceeded 33,330 yen; three or more qualifies a patient whose severity does not.
    pub high_cost: Option<String>,
    #[serde(rename = "outcome")]
    pub outcomes: Vec<OutcomeDef>,
    /// Choices of the judged item that only the doctor decides (e.g. 疑診, "所見が軽度で診断が
    /// 確実でないもの"): no outcome derives them, and selecting one is never contradicted unless
    /// an outcome is proven.
    #[serde(default)]
    pub doctor_only: Vec<String>,
    /// The outcomes are alternatives, not grades (MS types, NMOSD, Baló): a selected outcome whose
    /// conditions hold is the derived one even when an earlier one holds too.
    #[serde(default)]
    pub alternatives: bool,
    pub unverified: Option<String>,
}

impl FormFile {
    /// Parses one form file; `file` names it in errors.
    pub fn parse(file: &str, text: &str) -> Result<FormFile, CatalogueError> {
        toml::from_str(text).map_err(|e| syntax_error(file, text, &e))
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
    /// The file this form was defined in (for messages to rule authors).
    pub file: String,
    /// What could not be sourced for this form as a whole.
    pub unverified: Option<String>,
    /// The shared scales this form cites (ids in `Catalogue::scales()`).
    pub scales: Vec<String>,
    pub rules: Vec<RuleDef>,
    pub judgments: Vec<JudgmentDef>,
    /// Item mappings from earlier versions of this form.
    pub migrations: Vec<MigrationDef>,
    /// The expressions compiled once when the catalogue loaded.
    pub compiled: crate::expr::Compiled,
}

/// How much the rules do for a form, as the editor says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum FormLevel {
    /// 記載のみ: the doctor writes and selects; only the shared checks apply.
    RecordOnly,
    /// チェック: the disease's own items and checks, no machine judgment.
    Checked,
    /// 機械判定: category or severity judged from the items.
    MachineJudged,
}

impl FormLevel {
    pub fn label(self) -> &'static str {
        match self {
            FormLevel::RecordOnly => "記載のみ",
            FormLevel::Checked => "チェック",
            FormLevel::MachineJudged => "機械判定",
        }
    }
}

/// The number a person knows a disease by, from a form id and its 告示番号/枝番: `97` or `97-2`
/// for a 指定難病 (臨床調査個人票), the 疾患群・大分類・疾病番号 `12-04-014` of a 小慢 form
/// (`iken-12-04-014`), whose 告示番号 is 0 and never shown.
pub fn disease_number(form_id: &str, kokuji: u16, eda: u16) -> String {
    if let Some(rest) = form_id.strip_prefix("iken-") {
        return rest.to_string();
    }
    if eda == 0 {
        kokuji.to_string()
    } else {
        format!("{kokuji}-{eda}")
    }
}

/// What the number of [`disease_number`] is called: 告示番号 or 疾患群・疾病番号.
pub fn disease_number_label(kind: FormKind) -> &'static str {
    match kind {
        FormKind::Rinko => "告示番号",
        FormKind::Iken => "疾患群・疾病番号",
    }
}

impl FormDef {
    /// The disease's number as shown (see [`disease_number`]).
    pub fn number(&self) -> String {
        disease_number(&self.id, self.kokuji, self.eda)
    }

    /// The form as a title: 【臨床調査個人票】 告示番号97 病名, or
    /// 【医療意見書】 疾患群・疾病番号12-04-014 病名.
    pub fn heading(&self) -> String {
        format!(
            "【{}】 {}{}{} {}",
            self.kind.label(),
            disease_number_label(self.kind),
            self.number(),
            if self.number_inferred() {
                "（番号未確認）"
            } else {
                ""
            },
            self.disease
        )
    }

    /// Whether the form's 小慢 number was inferred rather than read from a source: the disease
    /// list says 「番号は推定」 (`rules/tools/diseases.py`, where a shouman.jp page is shared).
    pub fn number_inferred(&self) -> bool {
        self.unverified
            .as_deref()
            .is_some_and(|u| u.contains("番号は推定"))
    }
}

impl FormDef {
    /// 記載のみ for a form generated from the disease list, 機械判定 when a judgment has
    /// conditions, else チェック.
    pub fn level(&self) -> FormLevel {
        if crate::diseases::is_disease_list(&self.file) {
            FormLevel::RecordOnly
        } else if self
            .judgments
            .iter()
            .any(|j| j.outcomes.iter().any(|o| !o.conditions.is_empty()))
        {
            FormLevel::MachineJudged
        } else {
            FormLevel::Checked
        }
    }

    /// The form's id with its version, `rinko-011@2023.04-2`: what a sheet records it was
    /// written on (M20).
    pub fn versioned_id(&self) -> String {
        format!("{}@{}", self.id, self.version)
    }

    /// The items calculated automatically (自動入力), in screen order.
    pub fn calculated_items(&self) -> impl Iterator<Item = &ItemDef> {
        self.items().filter(|i| i.calc.is_some())
    }

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

/// The most characters any item's value may have when it is saved (2,000: the largest free-text
/// box of the official forms holds a few hundred, so this is generous), unless the item's
/// `max_len` is larger. A longer value is refused at save with [`TooLong`], nothing stored.
pub const ENTRY_LIMIT: usize = 2000;

/// Values longer than their item's [`ItemDef::entry_limit`]: (item id, label, limit, length in
/// characters). The message names each item in Japanese.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", too_long_message(.items))]
pub struct TooLong {
    pub items: Vec<(String, String, usize, usize)>,
}

/// One line per item, in form order.
fn too_long_message(items: &[(String, String, usize, usize)]) -> String {
    items
        .iter()
        .map(|(_, label, limit, len)| {
            format!("「{label}」は{limit}文字までです（{len}文字あります）。短くしてから保存してください。")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

impl FormDef {
    /// Refuses typed values longer than their item's [`ItemDef::entry_limit`]; ids the form does
    /// not have are left to `normalise_input`.
    pub fn check_lengths(
        &self,
        input: &std::collections::BTreeMap<String, String>,
    ) -> Result<(), TooLong> {
        // In form order, as the screen shows them.
        let items: Vec<_> = self
            .items()
            .filter_map(|item| {
                let value = input.get(&item.id)?;
                let (limit, len) = (item.entry_limit(), value.chars().count());
                (len > limit).then(|| (item.id.clone(), item.label.clone(), limit, len))
            })
            .collect();
        if items.is_empty() {
            Ok(())
        } else {
            Err(TooLong { items })
        }
    }
}

impl ItemDef {
    /// The most characters a value of this item may have when saved: [`ENTRY_LIMIT`], or the
    /// item's `max_len` when that is larger.
    pub fn entry_limit(&self) -> usize {
        self.max_len.map_or(ENTRY_LIMIT, |n| n.max(ENTRY_LIMIT))
    }

    /// The label of a code, for display.
    pub fn code_label(&self, code: &str) -> Option<&str> {
        self.codes
            .iter()
            .find(|c| c.code == code)
            .map(|c| c.label.as_str())
    }
}

#[cfg(test)]
mod number_tests {
    use super::*;

    #[test]
    fn a_shouman_form_shows_its_group_number_never_kokuji_zero() {
        assert_eq!(disease_number("iken-12-04-014", 0, 0), "12-04-014");
        assert_eq!(disease_number("rinko-097", 97, 0), "97");
        assert_eq!(disease_number("rinko-011-1", 11, 1), "11-1");
        assert_eq!(disease_number_label(FormKind::Iken), "疾患群・疾病番号");
    }
}
