//! What the review board's masked print (M14) hides: which items are personal, and the
//! personal values of a sheet wherever they stand in free text. Must never let a personal value
//! through to the page, and never log one.

use super::MASK;
use std::collections::BTreeMap;

use nsdb_rules::{FormDef, ItemDef, ItemType};

/// Whether an item is personal information, masked for the review board (M14): the whole
/// patient block and every insurer or insured number wherever it stands.
pub fn is_personal(section_id: &str, item: &ItemDef) -> bool {
    section_id == "patient"
        || item.id.starts_with("patient.")
        || item.ty == ItemType::InsurerNo
        || item.id.contains("insured")
        || item.id.contains("insurer")
}

/// What of the patient could stand in free text: each personal value of the sheet as typed and
/// without its spaces, and each space-separated part of a name; two characters or more, longest
/// first, so a whole name is masked before its parts.
pub(super) fn personal_terms(form: &FormDef, values: &BTreeMap<String, String>) -> Vec<String> {
    let mut terms = std::collections::BTreeSet::new();
    for section in &form.sections {
        for item in &section.items {
            let texty = matches!(
                item.ty,
                ItemType::Text
                    | ItemType::Kana
                    | ItemType::Date
                    | ItemType::Postal
                    | ItemType::InsurerNo
                    | ItemType::Digits
            );
            if !texty || !is_personal(&section.id, item) {
                continue;
            }
            let Some(v) = values.get(&item.id).map(|v| v.trim()) else {
                continue;
            };
            terms.insert(v.to_string());
            terms.insert(v.chars().filter(|c| !c.is_whitespace()).collect());
            terms.extend(v.split(char::is_whitespace).map(str::to_string));
        }
    }
    let mut terms: Vec<String> = terms
        .into_iter()
        .filter(|t| t.chars().count() >= 2)
        .collect();
    terms.sort_by_key(|t| std::cmp::Reverse(t.chars().count()));
    terms
}

/// Free text with every personal term in it replaced by ＊＊＊.
pub(super) fn redact(text: &str, terms: &[String]) -> String {
    terms.iter().fold(text.to_string(), |out, t| {
        if out.contains(t.as_str()) {
            out.replace(t.as_str(), MASK)
        } else {
            out
        }
    })
}
