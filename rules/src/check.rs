//! Checking a whole sheet against its form: unknown items, required items and each value's type.
//!
//! Returns every problem at once, each naming the item(s) it concerns so the screen can put the
//! message beside the field. It never stops a draft from being saved: callers decide what a
//! message blocks.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::expr::{Bindings, Truth};
use crate::form::{FormDef, ItemDef, ItemType};
use crate::value::{self, Date};

/// One message about a sheet, pointing at the items it concerns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Message {
    /// Item ids, in form order; the screen highlights these.
    pub items: Vec<String>,
    pub text: String,
}

/// How much to check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// 一時保存: only values that are malformed; missing items are fine in a draft.
    Draft,
    /// チェック and 登録: also every required item that is missing.
    Complete,
}

/// A typed error for input that names items the form does not have.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("この様式（{form}）にない項目です: {items:?}")]
pub struct UnknownItems {
    pub form: String,
    pub items: Vec<String>,
}

/// Normalises typed input for a form. Items the form does not have are refused as a whole, so
/// nothing is silently dropped.
pub fn normalise_input(
    form: &FormDef,
    input: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, UnknownItems> {
    let unknown: Vec<String> = input
        .keys()
        .filter(|k| form.item(k).is_none())
        .cloned()
        .collect();
    if !unknown.is_empty() {
        return Err(UnknownItems {
            form: form.id.clone(),
            items: unknown,
        });
    }
    Ok(input
        .iter()
        .filter_map(|(k, v)| {
            form.item(k)
                .map(|item| (k.clone(), value::normalise(item, v)))
        })
        .collect())
}

/// Every message for a sheet's values, in form order, then the form's cross-item rules.
pub fn check(
    form: &FormDef,
    values: &BTreeMap<String, String>,
    mode: Mode,
    today: Date,
) -> Vec<Message> {
    let compiled = &form.compiled.0;
    let bindings = Bindings::new(compiled, values);
    check_in(form, values, mode, today, &bindings.context(&compiled.env))
}

/// `check` with the sheet already bound for expressions.
pub(crate) fn check_in(
    form: &FormDef,
    values: &BTreeMap<String, String>,
    mode: Mode,
    today: Date,
    ctx: &cel::Context,
) -> Vec<Message> {
    let compiled = &form.compiled.0;
    let mut out = Vec::new();
    // Items whose value fails its own check: their message says so, and no rule comparing them
    // with another item speaks of them too (an impossible date is not also "before" another).
    let mut invalid: Vec<&str> = Vec::new();
    for item in form.items() {
        let v = values.get(&item.id).map(String::as_str).unwrap_or("");
        let required = item.required
            || (item.required_if.is_some()
                && compiled
                    .required_if
                    .get(&item.id)
                    .is_some_and(|e| e.truth(ctx) == Truth::True));
        let text = if value::is_blank(v) {
            (mode == Mode::Complete && required).then(|| {
                let verb = match item.ty {
                    ItemType::Code | ItemType::Codes => "選択",
                    _ => "入力",
                };
                format!("{}を{verb}してください。", item.label)
            })
        } else {
            match value::problem(item, v, today) {
                Some(problem) => {
                    invalid.push(&item.id);
                    Some(problem)
                }
                None => not_before(form, item, v, values, today),
            }
        };
        if let Some(text) = text {
            let mut items = vec![item.id.clone()];
            if let Some(other) = &item.not_before
                && text.contains("より前")
            {
                items.push(other.clone());
            }
            out.push(Message { items, text });
        }
    }
    for (rule, e) in form.rules.iter().zip(&compiled.rules) {
        if rule.items.iter().any(|i| invalid.contains(&i.as_str())) {
            continue;
        }
        if e.truth(ctx) == Truth::True {
            let items = form
                .items()
                .filter(|i| rule.items.contains(&i.id))
                .map(|i| i.id.clone())
                .collect();
            out.push(Message {
                items,
                text: rule.message.clone(),
            });
        }
    }
    out
}

/// A date or year-month earlier than the item it may not precede (compared on the shorter of
/// the two, so a year-month of onset is compared with the birth month). Nothing when the other
/// item's value fails its own check: its own message says so.
fn not_before(
    form: &FormDef,
    item: &ItemDef,
    v: &str,
    values: &BTreeMap<String, String>,
    today: Date,
) -> Option<String> {
    let other_id = item.not_before.as_ref()?;
    let other = values.get(other_id).filter(|o| !o.is_empty())?;
    if form
        .item(other_id)
        .is_some_and(|o| value::problem(o, other, today).is_some())
    {
        return None;
    }
    let n = v.len().min(other.len());
    let (a, b) = (v.get(..n)?, other.get(..n)?);
    let label = form
        .item(other_id)
        .map(|i| i.label.as_str())
        .unwrap_or(other_id);
    (a < b).then(|| format!("「{}」が「{label}」より前になっています。", item.label))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Catalogue;

    /// A required name that shows nothing (a Hangul filler, bidirectional marks) is missing, as
    /// an empty one is.
    #[test]
    fn a_required_item_that_shows_nothing_is_missing() {
        let cat = Catalogue::builtin().unwrap();
        let form = cat.form("rinko-006").unwrap();
        let today = Date::new(2026, 4, 1).unwrap();
        for blank in ["\u{3164}", "\u{200E}\u{200F}", "\u{2800}"] {
            let values = BTreeMap::from([("patient.name".to_string(), blank.to_string())]);
            let found = check(form, &values, Mode::Complete, today);
            assert!(
                found
                    .iter()
                    .any(|m| m.items == ["patient.name"] && m.text.contains("入力してください")),
                "{blank:?}: {found:?}"
            );
        }
    }

    /// An impossible date gets its own message only: not also "before" or "after" another date,
    /// whichever side of the comparison it is on.
    #[test]
    fn an_impossible_date_is_not_also_out_of_order() {
        let cat = Catalogue::builtin().unwrap();
        let form = cat.form("rinko-006").unwrap();
        let today = Date::new(2026, 4, 1).unwrap();
        let texts = |pairs: &[(&str, &str)]| -> Vec<String> {
            let values = pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            check(form, &values, Mode::Draft, today)
                .into_iter()
                .map(|m| m.text)
                .collect()
        };
        // Written before birth is out of order; with an impossible birth date it is not.
        let ordered = texts(&[
            ("patient.birth_date", "2000-01-01"),
            ("doctor.written_date", "1999-01-01"),
        ]);
        assert!(
            ordered
                .iter()
                .any(|t| t.contains("より前") || t.contains("より後")),
            "{ordered:?}"
        );
        for bad in ["2000-02-31", "2000-13-01"] {
            let found = texts(&[
                ("patient.birth_date", bad),
                ("doctor.written_date", "1999-01-01"),
                ("basic.onset", "1998-01"),
            ]);
            assert_eq!(found.len(), 1, "{bad}: {found:?}");
            assert!(!found[0].contains("より"), "{bad}: {found:?}");
        }
    }
}
