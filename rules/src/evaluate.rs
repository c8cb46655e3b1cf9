//! One evaluation of a sheet: checks, auto-calculation and machine judgment (機械判定) in one
//! pass, the entry point of the screens, the check tool and `nsdb rules check`.
//!
//! A judgment derives the diagnostic category and the severity from the items, compares them
//! with what the doctor selected, and says where they disagree in the seed's words. It never
//! blocks anything: a sheet whose judgment disagrees can still be registered; callers decide.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::Serialize;

use crate::calc::{self, Calculated};
use crate::check::{self, Message, Mode};
use crate::expr::{Bindings, Truth, to_val};
use crate::form::{FormDef, JudgmentDef, JudgmentKind, Match, OutcomeDef};
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
    /// Whether the patient qualifies on this judgment (criteria met, or 軽症高額).
    pub eligible: Option<bool>,
    /// What in this judgment is not sourced.
    pub unverified: Vec<String>,
}

/// Checks, calculates and judges a sheet; `values` are stored (normalised) values. Checks are
/// those of `Mode::Complete` (the チェック button).
pub fn evaluate(form: &FormDef, values: &BTreeMap<String, String>, today: Date) -> Evaluation {
    let compiled = &form.compiled.0;
    let mut bindings = Bindings::new(compiled, values);
    // Auto-calculation, in screen order; each result is visible to later calculations.
    let mut current = Current {
        values,
        derived: BTreeMap::new(),
        cleared: Vec::new(),
    };
    for item in form.calculated_items() {
        let Some(def) = &item.calc else { continue };
        let result = if let Some(name) = &def.builtin {
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
        let text = result.map(|r| match r {
            Calculated::Number(n) => calc::format_number(n, def.round),
            Calculated::Code(c) => c.to_string(),
        });
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
    let ctx = bindings.context(&compiled.env);
    let judgment = judge(form, &current, &ctx);
    let derived = current.derived;
    let mut messages = check::check_in(form, values, Mode::Complete, today, &ctx);
    // A typed value that disagrees with its calculation.
    for (id, v) in &derived {
        if let (Some(item), Some(typed)) = (form.item(id), values.get(id))
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

fn judge(form: &FormDef, values: &Current, ctx: &cel::Context) -> Judgment {
    let compiled = &form.compiled.0;
    let mut out = Judgment::default();
    for (j, def) in form.judgments.iter().enumerate() {
        let exprs = &compiled.judgments[j];
        let truths: Vec<Vec<Truth>> = exprs
            .iter()
            .map(|conds| conds.iter().map(|c| c.truth(ctx)).collect())
            .collect();
        let holds = |o: usize| {
            let t = &truths[o];
            match def.outcomes[o].combine {
                _ if t.is_empty() => true,
                Match::All => t.iter().all(|x| *x == Truth::True),
                Match::Any => t.contains(&Truth::True),
            }
        };
        let derived = (0..def.outcomes.len()).find(|&o| holds(o));
        let selected_code = def
            .item
            .as_ref()
            .and_then(|i| values.get(i))
            .filter(|v| !v.is_empty());
        let selected = selected_code.and_then(|c| {
            def.outcomes
                .iter()
                .position(|o| o.code.as_deref() == Some(c))
        });
        let name = |o: usize| outcome(form, def, &def.outcomes[o]);
        let mut result = JudgmentResult {
            title: def.title.clone(),
            derived: derived.map(name),
            selected: selected_code.map(|c| {
                selected.map(name).unwrap_or_else(|| Outcome {
                    code: Some(c.to_string()),
                    label: label_of(form, def, c),
                })
            }),
            meets_criteria: None,
            high_cost: None,
            eligible: None,
            unverified: def
                .unverified
                .iter()
                .cloned()
                .chain(def.outcomes.iter().filter_map(|o| o.unverified.clone()))
                .collect(),
        };
        // Nothing the target outcomes read is entered: nothing to judge.
        let blank = (0..def.outcomes.len())
            .filter(|&o| def.target.contains(&key(&def.outcomes[o])))
            .all(|o| truths[o].iter().all(|t| *t == Truth::Unknown));
        if !def.target.is_empty() && !blank {
            let meets = derived.is_some_and(|o| def.target.contains(&key(&def.outcomes[o])));
            result.meets_criteria = Some(meets);
            result.eligible = Some(meets);
        }
        if let Some(hc) = &def.high_cost {
            let months = values.get(hc).and_then(|v| v.parse::<i64>().ok());
            let high = months.map(|m| m >= 3);
            result.high_cost = high;
            if let Some(e) = result.eligible.as_mut() {
                *e = *e || high == Some(true);
            }
        }
        let items_of = |o: usize, only: &dyn Fn(Truth) -> bool| -> (Vec<String>, Vec<String>) {
            let mut items: Vec<&str> = def.item.iter().map(String::as_str).collect();
            let mut lines = Vec::new();
            for (k, (c, t)) in exprs[o].iter().zip(&truths[o]).enumerate() {
                if only(*t) {
                    items.extend(c.items.iter().map(String::as_str));
                    let cond = &def.outcomes[o].conditions[k];
                    lines.push(match t {
                        Truth::Unknown => {
                            format!("・{}（判定に必要な項目が未入力です）", cond.text)
                        }
                        _ => format!("・{}", cond.text),
                    });
                }
            }
            let order: Vec<String> = form
                .items()
                .filter(|i| items.contains(&i.id.as_str()))
                .map(|i| i.id.clone())
                .collect();
            (order, lines)
        };
        // The derived outcome was not selected although its conditions hold.
        if def.item.is_some()
            && let Some(d) = derived
            && !def.outcomes[d].conditions.is_empty()
            && selected != Some(d)
        {
            let (items, lines) = items_of(d, &|t| t == Truth::True);
            out.messages.push(Message {
                items,
                text: format!(
                    "「{}」が選択されていませんが、以下の条件が満たされています。\n{}",
                    name(d).label,
                    lines.join("\n")
                ),
            });
        }
        // The selected outcome's conditions do not hold.
        if let Some(s) = selected
            && !def.outcomes[s].conditions.is_empty()
            && !holds(s)
        {
            let (items, lines) = items_of(s, &|t| t != Truth::True);
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
                        .filter(|&o| def.target.contains(&key(&def.outcomes[o])))
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
