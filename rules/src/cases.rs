//! The test cases written beside each form (`forms/NAME.cases.toml`), run by one test: inputs,
//! and the expected derived values, diagnostic category, severity, eligibility and messages.
//!
//! Cases are data so that whoever encodes a disease writes its boundaries next to its rules. The
//! runner only reads files under `rules/forms/` in tests; the library never reads files.

use std::collections::BTreeMap;

use serde::Deserialize;

/// One file of cases.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseFile {
    /// The form these cases are for.
    pub form: String,
    #[serde(rename = "case")]
    pub cases: Vec<Case>,
}

/// One case: values in, expectations out. Unset expectations are not checked.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    pub name: String,
    pub values: BTreeMap<String, String>,
    /// Derived diagnostic category: its code, or its label when it has none; "" for none.
    pub category: Option<String>,
    /// Derived severity outcome: code or label; "" for none.
    pub severity: Option<String>,
    /// Whether the severity judgment finds the patient eligible (criteria or 軽症高額).
    pub eligible: Option<bool>,
    /// Whether the category meets the subsidy's target.
    pub category_eligible: Option<bool>,
    /// Calculated values expected.
    #[serde(default)]
    pub derived: BTreeMap<String, String>,
    /// Calculated items that must not get a value (an input refused, a result out of range).
    #[serde(default)]
    pub not_derived: Vec<String>,
    /// Fragments each of which must appear in some judgment message.
    #[serde(default)]
    pub messages: Vec<String>,
    /// The judgment must say nothing but, for judgments whose inputs are blank, which items are
    /// missing (those notes are checked by `missing`).
    #[serde(default)]
    pub no_messages: bool,
    /// Items some judgment must report as missing (blank inputs it waits for).
    #[serde(default)]
    pub missing: Vec<String>,
    /// Items that must carry a check message.
    #[serde(default)]
    pub check_items: Vec<String>,
    /// Items some judgment must report as invalid (entered, refused by their checks, read as
    /// blank).
    #[serde(default)]
    pub invalid: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Catalogue, Date, evaluate};

    fn key(o: &Option<crate::Outcome>) -> String {
        o.as_ref()
            .map(|o| o.code.clone().unwrap_or_else(|| o.label.clone()))
            .unwrap_or_default()
    }

    /// Every cases file under `rules/forms/`, by file name, in name order.
    fn case_files() -> Vec<(String, CaseFile)> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("forms");
        let mut entries: Vec<_> = std::fs::read_dir(&dir)
            .expect("forms dir")
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.to_string_lossy().ends_with(".cases.toml"))
            .collect();
        entries.sort();
        entries
            .into_iter()
            .map(|path| {
                let name = path
                    .file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .to_string();
                let text = std::fs::read_to_string(&path).expect("read cases");
                let file: CaseFile =
                    toml::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
                (name, file)
            })
            .collect()
    }

    /// A value the item's own checks refuse, of the kind a slip gives (out of range, not on
    /// the list, not a number); `None` for items any text fits.
    fn refused_value(item: &crate::ItemDef) -> Option<String> {
        use crate::form::ItemType as T;
        match item.ty {
            T::Integer | T::Decimal => Some(match (item.min, item.max) {
                (_, Some(max)) => format!("{}", (max + 1000.0).round() as i64),
                (Some(min), None) => format!("{}", (min - 1000.0).round() as i64),
                (None, None) => "x".into(),
            }),
            T::Code | T::Codes => Some("zz".into()),
            T::Date => Some("2026-13-45".into()),
            T::YearMonth => Some("2026-13".into()),
            T::Kana | T::Digits => Some("abc!".into()),
            _ => None,
        }
    }

    /// The items a form's judgments and calculations read: their conditions' items, the
    /// doctor's selection, the 軽症高額 months and every calculation's inputs.
    fn judged_inputs(form: &crate::FormDef) -> Vec<String> {
        let compiled = &form.compiled.0;
        let mut ids: Vec<String> = Vec::new();
        for (j, def) in form.judgments.iter().enumerate() {
            for c in compiled.judgments[j].iter().flatten() {
                ids.extend(c.items().into_iter().map(str::to_string));
            }
            ids.extend(def.item.iter().cloned());
            ids.extend(def.high_cost.iter().cloned());
        }
        for item in form.calculated_items() {
            let Some(def) = &item.calc else { continue };
            if def.builtin.is_some() {
                ids.extend(def.args.iter().cloned());
            } else if let Some(e) = compiled.calcs.get(&item.id) {
                ids.extend(e.items.iter().cloned());
            }
        }
        ids.sort();
        ids.dedup();
        ids.retain(|i| form.item(i).is_some_and(|d| d.calc.is_none()));
        ids
    }

    /// A judgment without its messages and `invalid` list: what must be the same for a refused
    /// value and a blank.
    fn decided(j: &crate::Judgment) -> [Option<crate::JudgmentResult>; 2] {
        [&j.category, &j.severity].map(|r| {
            r.clone().map(|mut r| {
                r.invalid.clear();
                r
            })
        })
    }

    #[test]
    fn on_every_judged_form_a_refused_value_is_judged_as_blank() {
        let cat = Catalogue::builtin().expect("built-in catalogue");
        let today = Date::new(2026, 11, 25).expect("date");
        let mut failures = Vec::new();
        let mut tried = 0;
        for (name, file) in case_files() {
            let form = cat.form(&file.form).expect("form");
            let inputs = judged_inputs(form);
            // Each case, and the empty sheet, with each input refused in turn.
            let mut sheets: Vec<BTreeMap<String, String>> = vec![BTreeMap::new()];
            sheets.extend(
                file.cases
                    .iter()
                    .filter_map(|c| crate::normalise_input(form, &c.values).ok()),
            );
            for base in &sheets {
                for id in &inputs {
                    let item = form.item(id).expect("item");
                    let Some(bad) = refused_value(item) else {
                        continue;
                    };
                    assert!(
                        crate::value::problem(item, &bad, today).is_some(),
                        "{name}: {id} = {bad} is not refused"
                    );
                    let mut with = base.clone();
                    with.insert(id.clone(), bad.clone());
                    let mut without = base.clone();
                    without.remove(id);
                    let a = evaluate(form, &with, today);
                    let b = evaluate(form, &without, today);
                    tried += 1;
                    if decided(&a.judgment) != decided(&b.judgment) || a.derived != b.derived {
                        failures.push(format!(
                            "{name}: {id} = {bad} is judged unlike a blank on {base:?}:\n{:#?}\nvs\n{:#?}",
                            a.judgment, b.judgment
                        ));
                    }
                    let reported = [&a.judgment.category, &a.judgment.severity]
                        .into_iter()
                        .flatten()
                        .any(|r| r.invalid.contains(id));
                    let read_by_judgment = form.judgments.iter().enumerate().any(|(j, def)| {
                        def.item.as_deref() == Some(id.as_str())
                            || def.high_cost.as_deref() == Some(id.as_str())
                            || form.compiled.0.judgments[j]
                                .iter()
                                .flatten()
                                .any(|c| c.items().contains(&id.as_str()))
                    });
                    if read_by_judgment && !reported {
                        failures.push(format!("{name}: {id} = {bad} is not reported invalid"));
                    }
                    if !a.messages.iter().any(|m| m.items.contains(id)) {
                        failures.push(format!("{name}: {id} = {bad} has no check message"));
                    }
                }
            }
        }
        assert!(tried > 1000, "only {tried} sheets tried");
        assert!(
            failures.is_empty(),
            "{} failures:\n{}",
            failures.len(),
            failures[..failures.len().min(10)].join("\n")
        );
    }

    #[test]
    fn every_form_passes_the_cases_written_beside_it() {
        let cat = Catalogue::builtin().expect("built-in catalogue");
        let today = Date::new(2026, 11, 25).expect("date");
        let mut covered = Vec::new();
        let mut failures = Vec::new();
        for (name, file) in case_files() {
            let form = cat
                .form(&file.form)
                .unwrap_or_else(|| panic!("{name}: unknown form {}", file.form));
            assert!(file.cases.len() >= 6, "{name}: at least six cases per form");
            covered.push(file.form.clone());
            for case in &file.cases {
                let mut fail =
                    |what: String| failures.push(format!("{name} «{}»: {what}", case.name));
                let values = match crate::normalise_input(form, &case.values) {
                    Ok(v) => v,
                    Err(e) => {
                        fail(e.to_string());
                        continue;
                    }
                };
                let ev = evaluate(form, &values, today);
                let j = &ev.judgment;
                // The judgments alone (`judgment`, without the checks) are the same.
                if crate::judgment(form, &values, today) != *j {
                    fail("judgment() differs from evaluate().judgment".into());
                }
                if let Some(c) = &case.category {
                    let got = key(&j.category.as_ref().and_then(|r| r.derived.clone()));
                    if &got != c {
                        fail(format!("category {got:?}, expected {c:?}"));
                    }
                }
                if let Some(s) = &case.severity {
                    let got = key(&j.severity.as_ref().and_then(|r| r.derived.clone()));
                    if &got != s {
                        fail(format!("severity {got:?}, expected {s:?}"));
                    }
                }
                if let Some(e) = case.eligible {
                    let got = j.severity.as_ref().and_then(|r| r.eligible);
                    if got != Some(e) {
                        fail(format!("severity eligible {got:?}, expected {e}"));
                    }
                }
                if let Some(e) = case.category_eligible {
                    let got = j.category.as_ref().and_then(|r| r.eligible);
                    if got != Some(e) {
                        fail(format!("category eligible {got:?}, expected {e}"));
                    }
                }
                for (k, v) in &case.derived {
                    if ev.derived.get(k) != Some(v) {
                        fail(format!(
                            "derived {k} = {:?}, expected {v:?}",
                            ev.derived.get(k)
                        ));
                    }
                }
                for k in &case.not_derived {
                    if let Some(v) = ev.derived.get(k) {
                        fail(format!("derived {k} = {v:?}, expected no value"));
                    }
                }
                for m in &case.messages {
                    if !j.messages.iter().any(|x| x.text.contains(m.as_str())) {
                        fail(format!(
                            "no judgment message contains {m:?}; got {:#?}",
                            j.messages
                        ));
                    }
                }
                let said: Vec<_> = j
                    .messages
                    .iter()
                    .filter(|m| !m.text.contains("判定に必要な"))
                    .collect();
                if case.no_messages && !said.is_empty() {
                    fail(format!("expected no judgment message, got {said:#?}"));
                }
                for i in &case.missing {
                    let listed = [&j.category, &j.severity]
                        .into_iter()
                        .flatten()
                        .any(|r| r.missing.contains(i));
                    if !listed {
                        fail(format!(
                            "{i} is not reported missing; got {:#?}",
                            j.messages
                        ));
                    }
                }
                for i in &case.invalid {
                    let listed = [&j.category, &j.severity]
                        .into_iter()
                        .flatten()
                        .any(|r| r.invalid.contains(i));
                    if !listed {
                        fail(format!("{i} is not reported invalid; got {j:#?}"));
                    }
                }
                for i in &case.check_items {
                    if !ev.messages.iter().any(|m| m.items.contains(i)) {
                        fail(format!("no check message on {i}; got {:#?}", ev.messages));
                    }
                }
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
        for form in cat.forms() {
            // Forms generated from the disease list are tested together in `diseases`.
            if form.level() != crate::FormLevel::RecordOnly {
                assert!(covered.contains(&form.id), "{} has no cases file", form.id);
            }
        }
    }
}
