//! Carrying a sheet forward (更新登録, 前回値踏襲) onto the current version of its form: which of
//! last year's values the new sheet starts with, mapped through the form's `[[migrate]]` entries
//! when the form changed version in between (M20).
//!
//! Pure: values in, values out. It never keeps a value the new form cannot hold: a renamed item
//! moves, a recoded choice is recoded, and an item or choice that no longer exists is dropped and
//! listed with the reason, so the doctor sees what was not carried.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::form::{FormDef, ItemType};

/// A value of the earlier sheet that the new one does not take.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Dropped {
    /// The item id on the earlier sheet.
    pub item: String,
    /// The value (for a multiple choice, the choices dropped).
    pub value: String,
    pub reason: String,
}

/// What a new sheet starts with.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Carried {
    /// Item id → value, only items marked `carry` on the current form.
    pub values: BTreeMap<String, String>,
    pub dropped: Vec<Dropped>,
}

/// The values of `source`, a sheet written on version `from_version` of `form`'s id, that a new
/// sheet on `form` (the current version) starts with. Only items the current form marks `carry`
/// are taken. When `from_version` differs from `form.version`, the form's `[[migrate]]` entry
/// for `from_version` renames items and recodes choices first; choices not on the current code
/// list are dropped either way.
pub fn carry_forward(
    form: &FormDef,
    from_version: &str,
    source: &BTreeMap<String, String>,
) -> Carried {
    let migration = (from_version != form.version)
        .then(|| form.migrations.iter().find(|m| m.from == from_version))
        .flatten();
    let reason_of = |fallback: &str| {
        migration
            .and_then(|m| m.reason.clone())
            .unwrap_or_else(|| fallback.to_string())
    };
    let mut out = Carried::default();
    for (old_id, value) in source {
        if value.is_empty() {
            continue;
        }
        let new_id = migration
            .and_then(|m| m.items.get(old_id))
            .map(String::as_str)
            .unwrap_or(old_id);
        let Some(item) = form.item(new_id) else {
            out.dropped.push(Dropped {
                item: old_id.clone(),
                value: value.clone(),
                reason: reason_of("この項目は現在の様式にありません。"),
            });
            continue;
        };
        if !item.carry {
            continue;
        }
        let recode = migration.and_then(|m| m.codes.get(new_id));
        let map = |code: &str| -> Option<String> {
            let c = recode
                .and_then(|r| r.get(code))
                .map(String::as_str)
                .unwrap_or(code);
            (!c.is_empty() && item.code_label(c).is_some()).then(|| c.to_string())
        };
        let kept = match item.ty {
            ItemType::Code => {
                let m = map(value);
                if m.is_none() {
                    out.dropped.push(Dropped {
                        item: old_id.clone(),
                        value: value.clone(),
                        reason: reason_of("この選択肢は現在の様式にありません。"),
                    });
                }
                m
            }
            ItemType::Codes => {
                let (mut keep, mut gone) = (Vec::new(), Vec::new());
                for c in value.split(',') {
                    match map(c) {
                        Some(n) if !keep.contains(&n) => keep.push(n),
                        Some(_) => {}
                        None => gone.push(c),
                    }
                }
                if !gone.is_empty() {
                    out.dropped.push(Dropped {
                        item: old_id.clone(),
                        value: gone.join(","),
                        reason: reason_of("この選択肢は現在の様式にありません。"),
                    });
                }
                // In the current code list's order, as stored values are.
                let ordered: Vec<&str> = item
                    .codes
                    .iter()
                    .map(|c| c.code.as_str())
                    .filter(|c| keep.iter().any(|k| k == c))
                    .collect();
                (!ordered.is_empty()).then(|| ordered.join(","))
            }
            _ => Some(value.clone()),
        };
        if let Some(v) = kept {
            out.values.insert(new_id.to_string(), v);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Catalogue;

    #[test]
    fn a_myasthenia_sheet_of_2023_04_carries_onto_the_current_form_without_the_withdrawn_tests() {
        let cat = Catalogue::builtin().expect("catalogue");
        let form = cat.form("rinko-011").expect("011");
        assert_ne!(form.version, "2023.04", "011 changed version");
        let source: BTreeMap<String, String> = [
            ("diagnosis.symptoms", "1,9"),
            ("diagnosis.antibodies", "1"),
            // 1 眼瞼の易疲労性試験 and 2 アイスパック試験 are withdrawn; 4 反復刺激 stays.
            ("diagnosis.nmj_tests", "1,2,4"),
            ("diagnosis.category", "1"),
            ("patient.name", "山田 太郎"),
            ("doctor.written_date", "2025-04-01"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let c = carry_forward(form, "2023.04", &source);
        assert_eq!(
            c.values.get("diagnosis.nmj_tests").map(String::as_str),
            Some("4")
        );
        assert_eq!(
            c.values.get("diagnosis.symptoms").map(String::as_str),
            Some("1,9")
        );
        assert_eq!(
            c.values.get("patient.name").map(String::as_str),
            Some("山田 太郎")
        );
        // Not carried: the category (decided anew) and the date written.
        assert!(!c.values.contains_key("diagnosis.category"));
        assert!(!c.values.contains_key("doctor.written_date"));
        assert_eq!(c.dropped.len(), 1, "{:#?}", c.dropped);
        assert_eq!(c.dropped[0].item, "diagnosis.nmj_tests");
        assert_eq!(c.dropped[0].value, "1,2");
        assert!(
            c.dropped[0].reason.contains("指定難病"),
            "{}",
            c.dropped[0].reason
        );
        // The carried values pass the current form's checks.
        let today = crate::Date::new(2026, 4, 1).expect("date");
        for (id, v) in &c.values {
            let item = form.item(id).expect("item");
            assert_eq!(crate::value::problem(item, v, today), None, "{id}");
        }
    }

    #[test]
    fn the_same_version_carries_as_is_and_a_rename_moves_the_value() {
        let cat = Catalogue::builtin().expect("catalogue");
        let form = cat.form("rinko-011").expect("011");
        let source: BTreeMap<String, String> =
            [("diagnosis.nmj_tests".to_string(), "3,5".to_string())].into();
        let c = carry_forward(form, &form.version, &source);
        assert_eq!(c.values["diagnosis.nmj_tests"], "3,5");
        assert!(c.dropped.is_empty());

        let mut renamed = form.clone();
        renamed.migrations = vec![crate::form::MigrationDef {
            from: "old".into(),
            items: [(
                "diagnosis.tests".to_string(),
                "diagnosis.nmj_tests".to_string(),
            )]
            .into(),
            codes: [(
                "diagnosis.nmj_tests".to_string(),
                [("9".to_string(), "5".to_string())].into(),
            )]
            .into(),
            reason: None,
        }];
        let source: BTreeMap<String, String> =
            [("diagnosis.tests".to_string(), "9".to_string())].into();
        let c = carry_forward(&renamed, "old", &source);
        assert_eq!(c.values["diagnosis.nmj_tests"], "5");
    }
}
