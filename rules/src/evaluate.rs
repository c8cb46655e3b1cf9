//! One evaluation of a sheet: checks, auto-calculation and machine judgment (機械判定) in one
//! pass, the entry point of the screens, the check tool and `nsdb rules check`.
//!
//! A judgment derives the diagnostic category and the severity from the items, compares them
//! with what the doctor selected, and says where they disagree in the seed's words. It never
//! blocks anything: a sheet whose judgment disagrees can still be registered; callers decide.
//!
//! # What a judgment says (the same on every form)
//!
//! - **Blank is "not entered", never "absent".** A condition reading a blank item is unknown
//!   (CEL's `&&`/`||` still decide when the entered side suffices: `false && ?` is false). An
//!   outcome holds when its conditions do (`match = "any"`: one does), fails when one fails (any:
//!   all fail), and is unknown otherwise. An outcome without conditions ("otherwise") holds only
//!   once every outcome before it has *failed*: a blank section never falls through to a grade.
//! - **Possible outcomes.** Tried in order, every outcome not disproved up to the first that
//!   holds is possible. `derived` is set only when exactly one is possible and it holds.
//!   `meets_criteria`/`eligible` are `Some(true)` when every possible outcome is a target,
//!   `Some(false)` when none is, and `None` when the entered items do not decide; then
//!   `missing` lists the blank items the open conditions read (through calculated items to their
//!   blank inputs) and one message says 「…を機械判定できません。判定に必要な以下の項目が未入力
//!   です。」 with their labels. 軽症高額 (three months or more) makes `eligible` true whatever the
//!   severity.
//! - **Partial scores.** A `count` condition (at least n of these) holds once n members hold and
//!   fails once fewer than n could; a calculated total marked `partial` (a sum of non-negative
//!   points, blank inputs adding nothing) is read both as entered and at the most each blank
//!   input could still add: a threshold condition on it holds (fails) when it does at both.
//! - **The doctor's selection.** A selected outcome that is still possible is never contradicted:
//!   a grade selected with no breakdown (as on paper) is kept (「…は選択された「…」のままとし、
//!   機械判定していません。」 with the missing items), `derived` stays empty and eligibility is
//!   left undecided. A disagreement is said only when the entered items disprove the selected
//!   outcome, or prove another that leaves it impossible.
//! - **Refused values are blank.** A value that fails its own item's checks (range, step, code
//!   list, type) is read as blank by every calculation and judgment, so no grade is ever read
//!   from an impossible value (EDSS 45, Hoehn-Yahr 9). The judgment lists it in `missing` where
//!   it waits for it, and every judgment that reads it (directly or through a calculation) lists
//!   it in `invalid`, for the screen to show its check message there.
//! - **Calculations.** A refused input is calculated with as blank (a total marked `partial`
//!   goes on without it; a BMI is not calculated), saying so, and a result outside its item's
//!   range is not stored; both name the items. Built-ins also refuse implausible inputs (see
//!   `calc`).

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::Serialize;

use crate::calc::{self, Calculated};
use crate::check::{self, Message, Mode};
use crate::expr::{Bindings, CondExpr, Truth, to_val};
use crate::form::{FormDef, ItemType, JudgmentDef, JudgmentKind, Match, OutcomeDef};
use crate::value::Date;

/// Everything the rules say about one sheet.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evaluation {
    /// Calculated items (自動計算) and their values, rounded as the form states.
    pub derived: BTreeMap<String, String>,
    /// Check messages (チェック), in form order, then the cross-item rules.
    pub messages: Vec<Message>,
    pub judgment: Judgment,
}

/// The machine judgment (一次判定) of a sheet.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Judgment {
    pub category: Option<JudgmentResult>,
    pub severity: Option<JudgmentResult>,
    /// The disagreements, in the seed's style; the separate window shows these.
    pub messages: Vec<Message>,
}

/// One outcome, named as the form names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Outcome {
    pub code: Option<String>,
    pub label: String,
}

/// What one judgment found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JudgmentResult {
    pub title: String,
    /// The outcome the items lead to; `None` when no outcome holds and there is no fallback.
    pub derived: Option<Outcome>,
    /// What the doctor selected, when the form asks.
    pub selected: Option<Outcome>,
    /// Whether the derived outcome is one the subsidy covers (`None` when the form names none).
    pub meets_criteria: Option<bool>,
    /// 軽症高額該当, when the form carries it.
    pub high_cost: Option<bool>,
    /// The blank items the judgment waits for, in screen order (empty when it is decided). An
    /// item whose entered value fails its own checks is read as blank and listed here too.
    pub missing: Vec<String>,
    /// The items this judgment reads whose entered value fails the item's own checks (range,
    /// step, code list, type), in screen order: they were judged as if blank, and the screen
    /// shows their check message there.
    pub invalid: Vec<String>,
    /// Whether the patient qualifies on this judgment (criteria met, or 軽症高額).
    pub eligible: Option<bool>,
    /// What in this judgment is not sourced.
    pub unverified: Vec<String>,
}

/// Checks, calculates and judges a sheet; `values` are stored (normalised) values. Checks are
/// those of `Mode::Complete` (the チェック button).
pub fn evaluate(form: &FormDef, values: &BTreeMap<String, String>, today: Date) -> Evaluation {
    run(form, values, today, true)
}

/// The judgments of [`evaluate`] alone (calculated as it calculates), without the checks:
/// for a caller that needs only what the sheet is judged to be (the hub's research rows, on
/// every sheet it stores).
pub fn judgment(form: &FormDef, values: &BTreeMap<String, String>, today: Date) -> Judgment {
    run(form, values, today, false).judgment
}

/// [`evaluate`]; with `checks` false the messages are left out (and not made).
fn run(form: &FormDef, typed: &BTreeMap<String, String>, today: Date, checks: bool) -> Evaluation {
    let compiled = &form.compiled.0;
    // A value its own item's checks refuse (range, step, code list, type) is treated as blank
    // by every calculation and judgment: a grade is never read from an impossible value.
    let refused_values: Vec<&str> = typed
        .iter()
        .filter(|(k, v)| {
            !v.is_empty()
                && form
                    .item(k)
                    .is_some_and(|d| crate::value::problem(d, v, today).is_some())
        })
        .map(|(k, _)| k.as_str())
        .collect();
    let cleaned: BTreeMap<String, String>;
    let values = if refused_values.is_empty() {
        typed
    } else {
        cleaned = typed
            .iter()
            .filter(|(k, _)| !refused_values.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        &cleaned
    };
    let mut bindings = Bindings::new(compiled, values);
    let mut calc_messages = Vec::new();
    // Auto-calculation, in screen order; each result is visible to later calculations.
    let mut current = Current {
        values,
        derived: BTreeMap::new(),
        cleared: Vec::new(),
    };
    // Totals calculated with inputs blank: (item, the most they could still reach).
    let mut partial: Vec<(&str, f64)> = Vec::new();
    for item in form.calculated_items() {
        let Some(def) = &item.calc else { continue };
        let inputs = calc_inputs(form, &item.id);
        // An entered input its own check refuses (out of range, malformed) is never calculated
        // with: the result would be impossible (a height in metres gives a BMI of 224,913).
        let refused: Vec<&str> = inputs
            .iter()
            .copied()
            .filter(|i| {
                refused_values.contains(i)
                    && !current.derived.contains_key(*i)
                    && !current.cleared.contains(i)
            })
            .collect();
        let mut result = if def.builtin.as_deref() == Some("points") {
            // A scale's total: the points of each chosen code; nothing while one is blank.
            def.args
                .iter()
                .map(|a| {
                    let v = current.get(a).filter(|s| !s.is_empty())?;
                    form.item(a)?.codes.iter().find(|c| c.code == v)?.points
                })
                .sum::<Option<i32>>()
                .map(|n| Calculated::Number(f64::from(n)))
        } else if let Some(name) = &def.builtin {
            let args: Vec<Option<&str>> = def
                .args
                .iter()
                .map(|a| current.get(a).filter(|s| !s.is_empty()))
                .collect();
            calc::builtin(name, &args)
        } else {
            // A calculation none of whose inputs is entered is not calculated.
            compiled
                .calcs
                .get(&item.id)
                .filter(|e| {
                    e.items
                        .iter()
                        .any(|i| current.get(i).is_some_and(|v| !v.is_empty()))
                })
                .and_then(|e| e.number(&bindings.context(&compiled.env)))
                .map(Calculated::Number)
        };
        // A refused input was read as blank (its own check message says why): say what that
        // did to the calculation.
        if !refused.is_empty() {
            calc_messages.push(Message {
                items: in_form_order(
                    form,
                    std::iter::once(item.id.as_str()).chain(refused.iter().copied()),
                ),
                text: if result.is_some() {
                    format!(
                        "「{}」は{}の値が正しくないため、その項目を未入力として自動計算しています。",
                        item.label,
                        labels(form, &refused)
                    )
                } else {
                    format!(
                        "「{}」は{}の値が正しくないため自動計算していません。",
                        item.label,
                        labels(form, &refused)
                    )
                },
            });
        }
        let mut text = result.as_ref().map(|r| match r {
            Calculated::Number(n) => calc::format_number(*n, def.round),
            Calculated::Code(c) => c.to_string(),
        });
        // A result outside the item's own range is not stored either.
        if let Some(t) = &text
            && crate::value::problem(item, t, today).is_some()
        {
            calc_messages.push(Message {
                items: in_form_order(form, std::iter::once(item.id.as_str()).chain(inputs.iter().copied())),
                text: format!(
                    "自動計算の結果（{t}{}）が「{}」の範囲を外れるため入力していません。{}の値を確認してください。",
                    item.unit.as_deref().unwrap_or(""),
                    item.label,
                    labels(form, &inputs)
                ),
            });
            text = None;
            result = None;
        }
        // A total with inputs blank: how far the blank ones could still take it.
        if def.partial
            && let (Some(Calculated::Number(low)), Some(e)) =
                (&result, compiled.calcs.get(&item.id))
        {
            let blank: Vec<&str> = inputs
                .iter()
                .copied()
                .filter(|i| current.get(i).is_none_or(str::is_empty))
                .collect();
            if !blank.is_empty() {
                let mut high = *low;
                for i in blank {
                    let Some(d) = form.item(i) else { continue };
                    let choices: Vec<String> = match d.ty {
                        ItemType::Code => d.codes.iter().map(|c| c.code.clone()).collect(),
                        ItemType::Codes => vec![
                            d.codes
                                .iter()
                                .map(|c| c.code.as_str())
                                .collect::<Vec<_>>()
                                .join(","),
                        ],
                        _ => d.max.map(|m| m.to_string()).into_iter().collect(),
                    };
                    if choices.is_empty() {
                        high = f64::INFINITY;
                        continue;
                    }
                    let mut most: f64 = 0.0;
                    for c in choices {
                        bindings.set(compiled, i, to_val(d.ty, Cow::Owned(c)));
                        match e.number(&bindings.context(&compiled.env)) {
                            Some(n) => most = most.max(n - low),
                            None => most = f64::INFINITY,
                        }
                    }
                    bindings.set(compiled, i, None);
                    high += most;
                }
                partial.push((item.id.as_str(), high));
            }
        }
        let value = text
            .as_deref()
            .and_then(|t| to_val(item.ty, Cow::Owned(t.to_string())));
        match text {
            Some(t) => {
                current.derived.insert(item.id.clone(), t);
            }
            None => {
                current.derived.remove(&item.id);
                current.cleared.push(&item.id);
            }
        }
        bindings.set(compiled, &item.id, value);
    }
    // The sheet as it would be with every partial total at its most.
    let upper = (!partial.is_empty()).then(|| {
        let mut b = Bindings::new(compiled, values);
        for id in &current.cleared {
            b.set(compiled, id, None);
        }
        for (id, v) in &current.derived {
            let ty = form.item(id).map(|i| i.ty).unwrap_or(ItemType::Decimal);
            let v = match partial.iter().find(|(p, _)| p == id) {
                Some((_, high)) if high.is_finite() => {
                    to_val(ItemType::Decimal, Cow::Owned(format!("{high:?}")))
                }
                Some(_) => to_val(ItemType::Decimal, Cow::Borrowed("1e300")),
                None => to_val(ty, Cow::Owned(v.clone())),
            };
            b.set(compiled, id, v);
        }
        b
    });
    let ctx = bindings.context(&compiled.env);
    let upper_ctx = upper.as_ref().map(|b| b.context(&compiled.env));
    let reading = Reading {
        form,
        values: &current,
        ctx: &ctx,
        upper: upper_ctx.as_ref(),
        partial: &partial,
        refused: &refused_values,
    };
    let judgment = judge(&reading);
    let derived = current.derived;
    if !checks {
        return Evaluation {
            derived,
            messages: Vec::new(),
            judgment,
        };
    }
    let mut messages = check::check_in(form, typed, Mode::Complete, today, &ctx);
    messages.extend(calc_messages);
    // A typed value that disagrees with its calculation.
    for (id, v) in &derived {
        if let (Some(item), Some(typed)) = (form.item(id), typed.get(id))
            && !typed.is_empty()
            && typed != v
        {
            let shown = item
                .code_label(v)
                .map(str::to_string)
                .unwrap_or_else(|| v.clone());
            messages.push(Message {
                items: vec![id.clone()],
                text: format!(
                    "「{}」の値が自動計算の結果（{shown}{}）と異なります。",
                    item.label,
                    item.unit.as_deref().unwrap_or("")
                ),
            });
        }
    }
    Evaluation {
        derived,
        messages,
        judgment,
    }
}

/// The items a calculated item reads (its built-in's arguments or its expression's items).
fn calc_inputs<'f>(form: &'f FormDef, id: &str) -> Vec<&'f str> {
    let Some(def) = form.item(id).and_then(|i| i.calc.as_ref()) else {
        return Vec::new();
    };
    if def.builtin.is_some() {
        def.args.iter().map(String::as_str).collect()
    } else {
        form.compiled
            .0
            .calcs
            .get(id)
            .map(|e| e.items.iter().map(String::as_str).collect())
            .unwrap_or_default()
    }
}

/// Item ids in screen order, without repeats.
fn in_form_order<'a>(form: &FormDef, ids: impl Iterator<Item = &'a str>) -> Vec<String> {
    let ids: Vec<&str> = ids.collect();
    form.items()
        .filter(|i| ids.contains(&i.id.as_str()))
        .map(|i| i.id.clone())
        .collect()
}

/// 「A」、「B」: items by their labels.
fn labels(form: &FormDef, ids: &[&str]) -> String {
    in_form_order(form, ids.iter().copied())
        .iter()
        .map(|i| {
            format!(
                "「{}」",
                form.item(i).map(|d| d.label.as_str()).unwrap_or(i)
            )
        })
        .collect::<Vec<_>>()
        .join("、")
}

/// The sheet's values with the calculated items over them, as later calculations and the
/// judgment see them (a calculation that gives nothing clears what was typed).
struct Current<'a> {
    values: &'a BTreeMap<String, String>,
    derived: BTreeMap<String, String>,
    cleared: Vec<&'a str>,
}

impl Current<'_> {
    fn get(&self, id: &str) -> Option<&str> {
        if let Some(v) = self.derived.get(id) {
            return Some(v);
        }
        if self.cleared.contains(&id) {
            return None;
        }
        self.values.get(id).map(String::as_str)
    }
}

/// What a judgment reads: the sheet as calculated, and, when totals are partial, the sheet with
/// them at their most.
struct Reading<'r> {
    form: &'r FormDef,
    values: &'r Current<'r>,
    ctx: &'r cel::Context<'r, 'r>,
    upper: Option<&'r cel::Context<'r, 'r>>,
    partial: &'r [(&'r str, f64)],
    /// Entered items whose value their own checks refuse (read as blank).
    refused: &'r [&'r str],
}

impl Reading<'_> {
    /// A condition's truth: on a partial total it must hold (or fail) both as entered and at the
    /// most the blank inputs could add, else it is unknown.
    fn truth(&self, c: &CondExpr) -> Truth {
        let t = c.truth(self.ctx);
        match self.upper {
            Some(up)
                if c.items()
                    .iter()
                    .any(|i| self.partial.iter().any(|(p, _)| p == i)) =>
            {
                if c.truth(up) == t {
                    t
                } else {
                    Truth::Unknown
                }
            }
            _ => t,
        }
    }

    /// The refused items a judgment reads: its conditions' items, the selection and the
    /// 軽症高額 months, through calculated items to their inputs.
    fn refused_in(&self, j: usize, def: &JudgmentDef) -> Vec<String> {
        if self.refused.is_empty() {
            return Vec::new();
        }
        let mut stack: Vec<&str> = self.form.compiled.0.judgments[j]
            .iter()
            .flatten()
            .flat_map(|c| c.items())
            .chain(def.item.as_deref())
            .chain(def.high_cost.as_deref())
            .collect();
        let mut seen: Vec<&str> = Vec::new();
        while let Some(i) = stack.pop() {
            if seen.contains(&i) {
                continue;
            }
            seen.push(i);
            if self.form.item(i).is_some_and(|d| d.calc.is_some()) {
                stack.extend(calc_inputs(self.form, i));
            }
        }
        in_form_order(
            self.form,
            seen.into_iter()
                .filter(|i| self.refused.contains(i) && !self.values.derived.contains_key(*i)),
        )
    }

    fn blank(&self, id: &str) -> bool {
        self.values.get(id).is_none_or(str::is_empty)
    }

    /// The blank items an unknown condition waits for: its own blank items, and the blank inputs
    /// of the calculated items it reads.
    fn missing(&self, c: &CondExpr, out: &mut Vec<String>) {
        let mut stack: Vec<&str> = c.open_items(self.ctx);
        let mut seen: Vec<&str> = Vec::new();
        while let Some(i) = stack.pop() {
            if seen.contains(&i) {
                continue;
            }
            seen.push(i);
            let calculated = self.form.item(i).is_some_and(|d| d.calc.is_some());
            if calculated && (self.blank(i) || self.partial.iter().any(|(p, _)| *p == i)) {
                stack.extend(calc_inputs(self.form, i));
            } else if !calculated && self.blank(i) && !out.iter().any(|o| o == i) {
                out.push(i.to_string());
            }
        }
    }
}

/// Kleene's three-valued "all" and "any".
fn combine(m: Match, truths: &[Truth]) -> Truth {
    if truths.is_empty() {
        return Truth::True;
    }
    let (stop, go) = match m {
        Match::All => (Truth::False, Truth::True),
        Match::Any => (Truth::True, Truth::False),
    };
    if truths.contains(&stop) {
        stop
    } else if truths.iter().all(|t| *t == go) {
        go
    } else {
        Truth::Unknown
    }
}

fn judge(r: &Reading) -> Judgment {
    let form = r.form;
    let values = r.values;
    let compiled = &form.compiled.0;
    let mut out = Judgment::default();
    for (j, def) in form.judgments.iter().enumerate() {
        let exprs = &compiled.judgments[j];
        let truths: Vec<Vec<Truth>> = exprs
            .iter()
            .map(|conds| conds.iter().map(|c| r.truth(c)).collect())
            .collect();
        let status: Vec<Truth> = (0..def.outcomes.len())
            .map(|o| combine(def.outcomes[o].combine, &truths[o]))
            .collect();
        // The outcomes the sheet can still lead to, in order: every one not disproved up to the
        // first that holds (an outcome without conditions holds once all before it fail).
        let mut possible: Vec<usize> = Vec::new();
        let mut none_possible = true;
        for (o, t) in status.iter().enumerate() {
            match t {
                Truth::True => {
                    possible.push(o);
                    none_possible = false;
                    break;
                }
                Truth::Unknown => possible.push(o),
                Truth::False => {}
            }
        }
        let selected_code = def
            .item
            .as_ref()
            .and_then(|i| values.get(i))
            .filter(|v| !v.is_empty());
        // Outcomes that share a code are routes to one result (「A かつ B、又は C かつ D」): the
        // selection is the route that holds, else one still open, else the first.
        let selected = selected_code.and_then(|c| {
            let is_route = |o: &usize| def.outcomes[*o].code.as_deref() == Some(c);
            let with = |t: Truth| {
                (0..def.outcomes.len())
                    .filter(is_route)
                    .find(|&o| status[o] == t)
            };
            with(Truth::True)
                .or_else(|| with(Truth::Unknown))
                .or_else(|| (0..def.outcomes.len()).find(is_route))
        });
        // A route that holds decides its result even while an earlier route to the same result
        // is still open.
        if let Some(&last) = possible.last()
            && status[last] == Truth::True
            && def.outcomes[last].code.is_some()
            && possible
                .iter()
                .all(|&o| def.outcomes[o].code == def.outcomes[last].code)
        {
            possible = vec![last];
        }
        // Alternatives (types, not grades): any outcome that holds is one the patient has. The
        // doctor's choice is the outcome when it holds, stays open when it is undecided, and
        // another that holds is named only when the choice is disproved.
        let holding: Vec<usize> = (0..status.len())
            .filter(|&o| status[o] == Truth::True && !def.outcomes[o].conditions.is_empty())
            .collect();
        if def.alternatives && !holding.is_empty() {
            none_possible = false;
            possible = match selected {
                Some(s) if holding.contains(&s) => vec![s],
                Some(s) if status[s] == Truth::Unknown => {
                    let mut p = vec![s];
                    p.extend(holding.iter().copied().filter(|&o| o != s));
                    p
                }
                _ => vec![holding[0]],
            };
        }
        let derived = match possible.as_slice() {
            [o] if status[*o] == Truth::True => Some(*o),
            _ => None,
        };
        let settled = derived.is_some() || possible.is_empty();
        let name = |o: usize| outcome(form, def, &def.outcomes[o]);
        let in_target = |o: &usize| def.target.contains(&key(&def.outcomes[*o]));
        let meets = if def.target.is_empty() {
            None
        } else if (def.alternatives && holding.iter().any(in_target))
            || (!none_possible && possible.iter().all(in_target))
        {
            Some(true)
        } else if !possible.iter().any(in_target) {
            Some(false)
        } else {
            None
        };
        let undecided = if def.target.is_empty() {
            !settled
        } else {
            meets.is_none()
        };
        let mut missing = Vec::new();
        if undecided {
            for &o in &possible {
                for (c, t) in exprs[o].iter().zip(&truths[o]) {
                    if *t == Truth::Unknown {
                        r.missing(c, &mut missing);
                    }
                }
            }
        }
        let missing = in_form_order(form, missing.iter().map(String::as_str));
        let invalid = r.refused_in(j, def);
        let mut result = JudgmentResult {
            title: def.title.clone(),
            derived: derived.map(name),
            selected: selected_code.map(|c| {
                selected.map(name).unwrap_or_else(|| Outcome {
                    code: Some(c.to_string()),
                    label: label_of(form, def, c),
                })
            }),
            meets_criteria: meets,
            high_cost: None,
            eligible: meets,
            missing: missing.clone(),
            invalid: invalid.clone(),
            unverified: def
                .unverified
                .iter()
                .cloned()
                .chain(def.outcomes.iter().filter_map(|o| o.unverified.clone()))
                .collect(),
        };
        if let Some(hc) = &def.high_cost {
            let months = values.get(hc).and_then(|v| v.parse::<i64>().ok());
            let high = months.map(|m| m >= 3);
            result.high_cost = high;
            result.eligible = match (meets, high) {
                (_, Some(true)) if !def.target.is_empty() => Some(true),
                (m, _) => m,
            };
        }
        let items_of = |o: usize, only: &dyn Fn(Truth) -> bool| -> (Vec<String>, Vec<String>) {
            let mut items: Vec<&str> = def.item.iter().map(String::as_str).collect();
            let mut lines = Vec::new();
            for (k, (c, t)) in exprs[o].iter().zip(&truths[o]).enumerate() {
                if only(*t) {
                    items.extend(c.items());
                    let cond = &def.outcomes[o].conditions[k];
                    lines.push(match t {
                        Truth::Unknown => {
                            format!("・{}（判定に必要な項目が未入力です）", cond.text)
                        }
                        _ => format!("・{}", cond.text),
                    });
                }
            }
            (in_form_order(form, items.into_iter()), lines)
        };
        // Inputs missing: say which, the same way on every form; never a grade.
        if undecided {
            let lead = match &result.selected {
                Some(s) => format!(
                    "「{}」は選択された「{}」のままとし、機械判定していません。",
                    def.title, s.label
                ),
                None => format!("「{}」を機械判定できません。", def.title),
            };
            let lines: Vec<String> = missing
                .iter()
                .map(|i| {
                    let label = form.item(i).map(|d| d.label.as_str()).unwrap_or(i);
                    if invalid.contains(i) {
                        format!("・{label}（入力された値が正しくないため未入力として扱っています）")
                    } else {
                        format!("・{label}")
                    }
                })
                .collect();
            out.messages.push(Message {
                items: missing.clone(),
                text: if lines.is_empty() {
                    format!("{lead}判定に必要な値が読み取れません。")
                } else {
                    format!(
                        "{lead}判定に必要な以下の項目が未入力です。\n{}",
                        lines.join("\n")
                    )
                },
            });
        }
        // Refused values the judgment did not need: say they were left out all the same.
        let unlisted: Vec<String> = invalid
            .iter()
            .filter(|i| !(undecided && missing.contains(i)))
            .cloned()
            .collect();
        if !unlisted.is_empty() {
            out.messages.push(Message {
                items: unlisted.clone(),
                text: format!(
                    "「{}」の判定では、以下の項目の値が正しくないため未入力として扱っています。\n{}",
                    def.title,
                    unlisted
                        .iter()
                        .map(|i| format!("・{}", form.item(i).map(|d| d.label.as_str()).unwrap_or(i)))
                        .collect::<Vec<_>>()
                        .join("\n")
                ),
            });
        }
        // An outcome whose conditions hold was not selected, nor one it leaves possible (a
        // grade proven, a more severe one still open).
        let holding = possible
            .last()
            .copied()
            .filter(|&o| status[o] == Truth::True);
        if def.item.is_some()
            && let Some(d) = holding
            && !def.outcomes[d].conditions.is_empty()
            && !selected.is_some_and(|s| possible.contains(&s))
        {
            let (mut items, lines) = items_of(d, &|t| t == Truth::True);
            // More severe outcomes still possible: the entered items prove only that it is one
            // of them, so no single outcome is named as the one to select.
            let open: Vec<String> = possible[..possible.len() - 1]
                .iter()
                .map(|&o| name(o).label.clone())
                .collect();
            let text = if open.is_empty() {
                format!(
                    "「{}」が選択されていませんが、以下の条件が満たされています。\n{}",
                    name(d).label,
                    lines.join("\n")
                )
            } else {
                for &o in &possible[..possible.len() - 1] {
                    items.extend(items_of(o, &|t| t == Truth::Unknown).0);
                }
                items = in_form_order(form, items.iter().map(String::as_str));
                // A selection the entered items rule out is named as such, not as no selection.
                let lead = match selected {
                    Some(s) => format!("「{}」が選択されていますが、", name(s).label),
                    None => format!("「{}」が選択されていません。", def.title),
                };
                format!(
                    "{lead}以下の条件が満たされているため「{}」又は「{}」です（どちらかは未入力の項目によります）。\n{}",
                    name(d).label,
                    open.join("」又は「"),
                    lines.join("\n")
                )
            };
            out.messages.push(Message { items, text });
        }
        // The selected outcome's conditions are disproved by what is entered.
        if let Some(s) = selected
            && !def.outcomes[s].conditions.is_empty()
            && status[s] == Truth::False
        {
            let (items, lines) = items_of(s, &|t| t == Truth::False);
            let lead = match def.outcomes[s].combine {
                Match::All => "以下の条件を満たしていません。",
                Match::Any => "以下の条件のいずれも満たしていません。",
            };
            out.messages.push(Message {
                items,
                text: format!(
                    "「{}」が選択されていますが、{lead}\n{}",
                    name(s).label,
                    lines.join("\n")
                ),
            });
        }
        // Severity with no selection on the form: say when the patient does not qualify.
        if def.kind == JudgmentKind::Severity && def.item.is_none() {
            match (result.meets_criteria, result.high_cost) {
                (Some(false), Some(true)) => out.messages.push(Message {
                    items: def.high_cost.iter().cloned().collect(),
                    text: format!(
                        "「{}」の基準を満たしていませんが、軽症高額該当（医療費総額が33,330円を超える月が12か月以内に3回以上）として対象になります。",
                        def.title
                    ),
                }),
                (Some(false), _) => {
                    let targets: Vec<usize> = (0..def.outcomes.len())
                        .filter(|o| in_target(o))
                        .collect();
                    let mut items = Vec::new();
                    let mut lines = Vec::new();
                    for o in targets {
                        let (i, l) = items_of(o, &|t| t != Truth::True);
                        items.extend(i);
                        lines.extend(l);
                    }
                    items.extend(def.high_cost.iter().cloned());
                    items.dedup();
                    out.messages.push(Message {
                        items,
                        text: format!(
                            "「{}」の医療費助成の基準を満たしていません。以下の条件を満たしていません。\n{}",
                            def.title,
                            lines.join("\n")
                        ),
                    });
                }
                _ => {}
            }
        }
        // 軽症高額 on a form where the doctor selects the severity.
        if def.item.is_some()
            && result.meets_criteria == Some(false)
            && result.high_cost == Some(true)
        {
            out.messages.push(Message {
                items: def.high_cost.iter().cloned().collect(),
                text: format!(
                    "「{}」は医療費助成の基準を満たしていませんが、軽症高額該当（医療費総額が33,330円を超える月が12か月以内に3回以上）として対象になります。",
                    def.title
                ),
            });
        }
        let slot = match def.kind {
            JudgmentKind::Category => &mut out.category,
            JudgmentKind::Severity => &mut out.severity,
        };
        if slot.is_none() {
            *slot = Some(result);
        }
    }
    out
}

/// How the form's `target` names an outcome: its code, or its label when it has none.
fn key(o: &OutcomeDef) -> String {
    o.code
        .clone()
        .or_else(|| o.label.clone())
        .unwrap_or_default()
}

fn label_of(form: &FormDef, def: &JudgmentDef, code: &str) -> String {
    def.item
        .as_ref()
        .and_then(|i| form.item(i))
        .and_then(|i| i.code_label(code))
        .unwrap_or(code)
        .to_string()
}

fn outcome(form: &FormDef, def: &JudgmentDef, o: &OutcomeDef) -> Outcome {
    let label = o.label.clone().unwrap_or_else(|| {
        o.code
            .as_deref()
            .map(|c| label_of(form, def, c))
            .unwrap_or_default()
    });
    Outcome {
        code: o.code.clone(),
        label,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Catalogue;

    fn today() -> Date {
        Date::new(2026, 11, 25).expect("date")
    }

    fn disagreements(j: &Judgment) -> Vec<&Message> {
        j.messages
            .iter()
            .filter(|m| {
                m.text.contains("が選択されていますが") || m.text.contains("が選択されていませんが")
            })
            .collect()
    }

    #[test]
    fn on_every_form_an_empty_sheet_is_never_eligible_and_names_what_is_missing() {
        let cat = Catalogue::builtin().expect("catalogue");
        for form in cat.forms() {
            let ev = evaluate(form, &BTreeMap::new(), today());
            for (def, r) in form.judgments.iter().zip(
                [&ev.judgment.category, &ev.judgment.severity]
                    .into_iter()
                    .flatten(),
            ) {
                assert_ne!(r.eligible, Some(true), "{} {}", form.id, def.title);
                assert_ne!(r.meets_criteria, Some(true), "{} {}", form.id, def.title);
                if !def.target.is_empty() {
                    assert_eq!(r.meets_criteria, None, "{} {}", form.id, def.title);
                    assert!(
                        !r.missing.is_empty(),
                        "{} {}: no missing items",
                        form.id,
                        def.title
                    );
                    let note = format!(
                        "「{}」を機械判定できません。判定に必要な以下の項目が未入力です。",
                        def.title
                    );
                    assert!(
                        ev.judgment
                            .messages
                            .iter()
                            .any(|m| m.text.starts_with(&note) && m.items == r.missing),
                        "{} {}: {:#?}",
                        form.id,
                        def.title,
                        ev.judgment.messages
                    );
                }
            }
        }
    }

    #[test]
    fn on_every_form_a_grade_selected_without_breakdown_is_kept_without_disagreement() {
        let cat = Catalogue::builtin().expect("catalogue");
        for form in cat.forms() {
            for def in &form.judgments {
                let Some(item) = def.item.as_deref().and_then(|i| form.item(i)) else {
                    continue;
                };
                for code in &item.codes {
                    let values = [(item.id.clone(), code.code.clone())].into();
                    let ev = evaluate(form, &values, today());
                    assert!(
                        disagreements(&ev.judgment).is_empty(),
                        "{} {} = {}: {:#?}",
                        form.id,
                        item.id,
                        code.code,
                        ev.judgment.messages
                    );
                }
            }
        }
    }

    #[test]
    fn on_every_form_no_calculation_stores_a_value_its_item_refuses() {
        let cat = Catalogue::builtin().expect("catalogue");
        for form in cat.forms() {
            let numeric: Vec<&crate::ItemDef> = form
                .items()
                .filter(|i| i.calc.is_none())
                .filter(|i| matches!(i.ty, ItemType::Integer | ItemType::Decimal))
                .collect();
            // Every number typed 100 times too large (a unit slip), then 100 times too small.
            for scale in [100.0, 0.01] {
                let mut values: BTreeMap<String, String> = numeric
                    .iter()
                    .map(|i| {
                        let base = i.max.or(i.min).unwrap_or(50.0).max(1.0);
                        let v = base * scale;
                        let text = if i.ty == ItemType::Integer {
                            format!("{}", v.round() as i64)
                        } else {
                            format!("{v}")
                        };
                        (i.id.clone(), text)
                    })
                    .collect();
                values.insert("patient.sex".into(), "1".into());
                values.insert("patient.birth_date".into(), "2016-05-01".into());
                values.insert("body.measured_date".into(), "2026-05-01".into());
                values.insert("doctor.written_date".into(), "2026-05-01".into());
                let ev = evaluate(form, &values, today());
                for (id, v) in &ev.derived {
                    let item = form.item(id).expect("derived item");
                    assert_eq!(
                        crate::value::problem(item, v, today()),
                        None,
                        "{} {id} = {v}",
                        form.id
                    );
                }
            }
        }
    }

    #[test]
    fn a_height_in_metres_gives_no_bmi_and_says_why_on_every_form_that_has_one() {
        let cat = Catalogue::builtin().expect("catalogue");
        let mut seen = 0;
        for form in cat
            .forms()
            .into_iter()
            .filter(|f| f.item("body.bmi").is_some())
        {
            seen += 1;
            let values = [
                ("body.height".to_string(), "1.70".to_string()),
                ("body.weight".to_string(), "65".to_string()),
            ]
            .into();
            let ev = evaluate(form, &values, today());
            assert!(!ev.derived.contains_key("body.bmi"), "{}", form.id);
            assert!(
                ev.messages
                    .iter()
                    .any(|m| m.items.contains(&"body.bmi".to_string())
                        && m.items.contains(&"body.height".to_string())
                        && m.text
                            .contains("「身長」の値が正しくないため自動計算していません")),
                "{}: {:#?}",
                form.id,
                ev.messages
            );
        }
        assert!(seen > 0);
    }
}
