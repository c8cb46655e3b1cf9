//! A sample sheet per form, generated from its definition, for vendors to copy: every item
//! filled with a realistic value that passes the form's checks where the catalogue allows, and
//! the calculated items filled as 自動入力 would fill them. The people, hospital and numbers are
//! made up. It must never carry real patient data and never depend on the clock: its dates are
//! fixed and lie before [`SAMPLE_TODAY`].

use std::collections::BTreeMap;

use super::write::{SheetOut, write};
use crate::check::{Mode, check};
use crate::expr::{Bindings, Truth};
use crate::form::{FormDef, FormKind, ItemDef, ItemType, JudgmentKind};
use crate::value::{Date, check_digit};

/// The day the samples are written as of (their 記載年月日 is shortly before it).
pub const SAMPLE_TODAY: Date = Date {
    year: 2025,
    month: 4,
    day: 1,
};

/// A sample file for `form`: one sheet with [`sample_values`], in the layout.
pub fn sample(form: &FormDef) -> String {
    let values = sample_values(form);
    write(&[SheetOut {
        form,
        reference: Some("sample-1"),
        values: &values,
    }])
    // The values are generated for this form's items and hold no control characters.
    .unwrap_or_default()
}

/// The sample sheet's values (item id → stored value). Code items whose first code draws a
/// check message are tried with their other codes, a few rounds, and of items a cross-item rule
/// says exclude each other the last is left blank, so that the sample passes the form's checks
/// in `Mode::Complete` as of [`SAMPLE_TODAY`] wherever the catalogue allows.
pub fn sample_values(form: &FormDef) -> BTreeMap<String, String> {
    let child = form.kind == FormKind::Iken;
    let mut values: BTreeMap<String, String> = form
        .items()
        .filter(|i| i.calc.is_none())
        .map(|i| (i.id.clone(), value_for(i, child)))
        .collect();
    let mut tried: BTreeMap<String, usize> = BTreeMap::new();
    for _ in 0..8 {
        fill_calculated(form, &mut values);
        let messages = check(form, &values, Mode::Complete, SAMPLE_TODAY);
        let mut changed = false;
        for m in &messages {
            let before = changed;
            changed = false;
            for id in &m.items {
                let Some(item) = form.item(id) else { continue };
                if item.calc.is_some() || !matches!(item.ty, ItemType::Code | ItemType::Codes) {
                    continue;
                }
                let n = tried.entry(id.clone()).or_insert(0);
                if *n + 1 < item.codes.len() {
                    *n += 1;
                    values.insert(id.clone(), item.codes[*n].code.clone());
                    changed = true;
                }
            }
            // Items that exclude each other (「どちらか一方のみ」): leave the last one blank.
            if !changed && m.items.len() >= 2 {
                let last = m.items.iter().rev().find(|id| {
                    form.item(id)
                        .is_some_and(|i| !i.required && i.calc.is_none())
                });
                if let Some(id) = last {
                    changed = values.remove(id).is_some();
                }
            }
            changed |= before;
        }
        if !changed {
            break;
        }
    }
    drop_unasked(form, &mut values);
    fill_calculated(form, &mut values);
    agree_with_judgment(form, &mut values);
    values
}

/// Selects, where the form asks the doctor for a diagnostic category or a severity, the outcome
/// the machine judgment derives from the sample's items, so the sample's 一次判定 agrees with it
/// (unless that draws a check message).
fn agree_with_judgment(form: &FormDef, values: &mut BTreeMap<String, String>) {
    let judgment = crate::evaluate(form, values, SAMPLE_TODAY).judgment;
    let before = check(form, values, Mode::Complete, SAMPLE_TODAY).len();
    for def in &form.judgments {
        let Some(item) = def.item.as_ref().and_then(|id| form.item(id)) else {
            continue;
        };
        let result = match def.kind {
            JudgmentKind::Category => &judgment.category,
            JudgmentKind::Severity => &judgment.severity,
        };
        let Some(code) = result
            .as_ref()
            .and_then(|r| r.derived.as_ref())
            .and_then(|o| o.code.clone())
            .filter(|c| item.code_label(c).is_some())
        else {
            continue;
        };
        let old = values.insert(item.id.clone(), code);
        if check(form, values, Mode::Complete, SAMPLE_TODAY).len() > before {
            match old {
                Some(v) => values.insert(item.id.clone(), v),
                None => values.remove(&item.id),
            };
        }
    }
}

/// Leaves blank the items asked only under a condition that the sample does not meet (「その他」の
/// 内容 when その他 was not chosen), unless blanking them draws a message.
fn drop_unasked(form: &FormDef, values: &mut BTreeMap<String, String>) {
    let compiled = &form.compiled.0;
    let unasked: Vec<String> = {
        let bindings = Bindings::new(compiled, values);
        let ctx = bindings.context(&compiled.env);
        compiled
            .required_if
            .iter()
            .filter(|(_, e)| e.truth(&ctx) != Truth::True)
            .map(|(id, _)| id.clone())
            .collect()
    };
    let before = check(form, values, Mode::Complete, SAMPLE_TODAY).len();
    for id in unasked {
        if let Some(v) = values.remove(&id)
            && check(form, values, Mode::Complete, SAMPLE_TODAY).len() > before
        {
            values.insert(id, v);
        }
    }
}

fn fill_calculated(form: &FormDef, values: &mut BTreeMap<String, String>) {
    for item in form.calculated_items() {
        values.remove(&item.id);
    }
    let derived = crate::evaluate(form, values, SAMPLE_TODAY).derived;
    values.extend(derived.into_iter().filter(|(_, v)| !v.is_empty()));
}

/// A plausible value for one item: known shared items by id, the rest by type and range.
fn value_for(item: &ItemDef, child: bool) -> String {
    let known = match item.id.as_str() {
        "patient.name" => Some(if child {
            "見本 花子"
        } else {
            "見本 太郎"
        }),
        "patient.name_kana" => Some(if child {
            "ミホン ハナコ"
        } else {
            "ミホン タロウ"
        }),
        "patient.previous_name" | "patient.birth_name" => Some("見本 旧姓"),
        "patient.birth_date" => Some(if child { "2015-06-15" } else { "1975-06-15" }),
        "patient.sex" => Some(if child { "2" } else { "1" }),
        "patient.postal_code" => Some("100-0013"),
        "patient.address" => Some("東京都千代田区霞が関一丁目1番1号"),
        "patient.birth_municipality" => Some("東京都千代田区"),
        "patient.insured_symbol" => Some("12"),
        "patient.insured_no" => Some("3456"),
        "patient.insured_branch" => Some("01"),
        "patient.insurance_acquired_date" => Some("2010-04-01"),
        "patient.recipient_no" => Some("1234567"),
        "basic.onset" => Some(if child { "2018-04" } else { "2015-04" }),
        "basic.first_visit" => Some(if child { "2018-05-10" } else { "2015-05-10" }),
        "basic.diagnosis_date" => Some(if child { "2018-06-20" } else { "2016-03-10" }),
        "basic.visit_date" | "body.measured_date" => Some("2025-03-10"),
        "body.height" => Some("120.5"),
        "body.weight" => Some("23.4"),
        "ventilator.start" => Some("2020-10"),
        "doctor.institution_name" => Some("見本大学病院"),
        "doctor.institution_code" => Some("1312345678"),
        "doctor.institution_address" => Some("東京都千代田区霞が関一丁目2番2号"),
        "doctor.institution_phone" => Some("03-0000-0000"),
        "doctor.name" => Some("見本 医師"),
        "doctor.number" => Some("13-000123"),
        "doctor.written_date" => Some("2025-03-15"),
        _ => None,
    };
    if let Some(v) = known {
        return v.to_string();
    }
    match item.ty {
        ItemType::Text => {
            let v = format!("{}の記載例", item.label);
            match item.max_len {
                Some(n) => v.chars().take(n).collect(),
                None => v,
            }
        }
        ItemType::Kana => "ミホン".to_string(),
        ItemType::Integer => {
            let (lo, hi) = (item.min.unwrap_or(0.0), item.max.unwrap_or(1.0).max(0.0));
            format!("{}", lo.max(0.0).min(hi).ceil() as i64)
        }
        ItemType::Decimal => {
            let lo = item.min.unwrap_or(0.0);
            let hi = item.max.unwrap_or(lo + 10.0);
            format!("{:.1}", lo + (hi - lo) / 10.0)
        }
        ItemType::Date => "2024-04-01".to_string(),
        ItemType::YearMonth => "2024-04".to_string(),
        ItemType::Code | ItemType::Codes => item
            .codes
            .first()
            .map(|c| c.code.clone())
            .unwrap_or_default(),
        ItemType::Postal => "100-0013".to_string(),
        ItemType::InsurerNo => format!("0613999{}", check_digit("0613999")),
        ItemType::Digits => "1234567".to_string(),
    }
}
