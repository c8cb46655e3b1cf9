//! Checking a whole sheet against its form: unknown items, required items and each value's type.
//!
//! Returns every problem at once, each naming the item(s) it concerns so the screen can put the
//! message beside the field. It never stops a draft from being saved: callers decide what a
//! message blocks.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::form::{FormDef, ItemType};
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

/// Every message for a sheet's values, in form order.
pub fn check(
    form: &FormDef,
    values: &BTreeMap<String, String>,
    mode: Mode,
    today: Date,
) -> Vec<Message> {
    let mut out = Vec::new();
    for item in form.items() {
        let v = values.get(&item.id).map(String::as_str).unwrap_or("");
        let text = if v.is_empty() {
            (mode == Mode::Complete && item.required).then(|| {
                let verb = match item.ty {
                    ItemType::Code | ItemType::Codes => "選択",
                    _ => "入力",
                };
                format!("{}を{verb}してください。", item.label)
            })
        } else {
            value::problem(item, v, today)
        };
        if let Some(text) = text {
            out.push(Message {
                items: vec![item.id.clone()],
                text,
            });
        }
    }
    out
}
