//! The form linter (`nsdb rules lint`): what a reviewer of a new form file should not have to
//! find by eye. Loading already refuses what cannot work (unknown items, codes or scales, broken
//! expressions); the linter reports what loads but is wrong or unreviewable: judgments or outcomes
//! that can never be reached, choices the judgment never derives, scales cited but not used,
//! messages that do not name their items, forms and scales without sources, conditions that read
//! a blank as a finding, calculated numbers without a plausible range.
//!
//! Pure: it reads a `Catalogue` (or the texts it is built from) and returns findings; it never
//! changes a form and never reads files.

use serde::Serialize;

use crate::Catalogue;
use crate::form::{FormDef, ItemType, JudgmentKind, ScaleFile};

/// One thing a reviewer must fix, naming the file and, where there is one, the item or judgment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LintFinding {
    pub file: String,
    /// The item id, `judgment <title>`, `rule <id>` or `scale <id>` concerned.
    pub item: Option<String>,
    pub message: String,
}

/// Lints form files given as (file name, text), as `Catalogue::from_texts` takes them: a file that
/// does not load is one finding (the load error, naming file, item and column); otherwise the
/// findings of `lint`.
pub fn lint_files(files: &[(&str, &str)]) -> Vec<LintFinding> {
    match Catalogue::from_texts(files) {
        Ok(cat) => lint(&cat),
        Err(e) => {
            let (file, item) = match &e {
                crate::CatalogueError::Syntax { file, .. } => (file.clone(), None),
                crate::CatalogueError::Invalid { file, item, .. } => (file.clone(), item.clone()),
            };
            vec![LintFinding {
                file,
                item,
                message: format!("読み込めません: {e}"),
            }]
        }
    }
}

/// Every finding for a loaded catalogue, form by form, then the shared scales.
pub fn lint(cat: &Catalogue) -> Vec<LintFinding> {
    let mut out = Vec::new();
    for form in cat.forms() {
        lint_form(cat, form, &mut out);
    }
    for (id, scale) in cat.scales() {
        if scale.sources.is_empty() {
            out.push(LintFinding {
                file: "scales.toml".into(),
                item: Some(format!("scale {id}")),
                message: "出典(sources)がありません。".into(),
            });
        }
    }
    out
}

fn lint_form(cat: &Catalogue, form: &FormDef, out: &mut Vec<LintFinding>) {
    let mut say = |item: Option<String>, message: String| {
        out.push(LintFinding {
            file: form.file.clone(),
            item,
            message,
        })
    };
    if form.sources.is_empty() {
        say(None, "出典(sources)がありません。".into());
    }
    // Scales cited but not used by any item.
    for s in &form.scales {
        let used = form.items().any(|i| {
            i.codelist.as_deref().is_some_and(|c| {
                c == s
                    || c.strip_prefix(s.as_str())
                        .is_some_and(|r| r.starts_with('.'))
            })
        });
        if !used {
            say(
                None,
                format!("尺度 {s:?} を引用していますが、どの項目も使っていません。"),
            );
        }
    }
    // Items on a shared scale's code list the form does not cite (its own sections only: the
    // shared sections are not the disease's).
    for item in form.items() {
        // Calculated numbers without a plausible range: an impossible result could be stored.
        if item.calc.is_some()
            && matches!(item.ty, ItemType::Integer | ItemType::Decimal)
            && (item.min.is_none() || item.max.is_none())
        {
            say(
                Some(item.id.clone()),
                "自動計算の数値に min と max がありません(範囲外の結果を保存しないための範囲)。"
                    .into(),
            );
        }
        let Some(list) = item.codelist.as_deref() else {
            continue;
        };
        let scale = list.split('.').next().unwrap_or(list);
        let own = form.section_of(&item.id).is_some_and(|s| {
            !matches!(
                s.id.as_str(),
                "application" | "patient" | "basic" | "body" | "ventilator" | "doctor" | "survey"
            )
        });
        if own && cat.scales().contains_key(scale) && !form.scales.iter().any(|s| s == scale) {
            say(
                Some(item.id.clone()),
                format!("尺度 {scale:?} を使っていますが、様式の scales に引用されていません。"),
            );
        }
    }
    // Messages of cross-item rules must name their items.
    for rule in &form.rules {
        let place = Some(format!("rule {}", rule.id));
        if rule.items.is_empty() {
            say(
                place,
                "メッセージが項目を指していません(items が空)。".into(),
            );
            continue;
        }
        let named = rule.items.iter().any(|i| {
            form.item(i).is_some_and(|d| {
                rule.message.contains(&format!("「{}」", d.label))
                    || rule.message.contains(&d.label)
            })
        }) || rule.message.contains('「');
        if !named {
            say(
                place,
                format!(
                    "メッセージ {:?} が項目を名前で示していません。",
                    rule.message
                ),
            );
        }
    }
    let mut kinds: Vec<JudgmentKind> = Vec::new();
    for def in &form.judgments {
        let place = Some(format!("judgment {}", def.title));
        if kinds.contains(&def.kind) {
            say(
                place.clone(),
                "同じ種類の判定が先にあるため、この判定は結果に使われません(到達しない判定)。"
                    .into(),
            );
        }
        kinds.push(def.kind);
        // Outcomes after one without conditions are never reached.
        if let Some(open) = def.outcomes.iter().position(|o| o.conditions.is_empty())
            && open + 1 < def.outcomes.len()
        {
            say(
                place.clone(),
                format!(
                    "条件のない結果({})より後の結果は到達しません。条件のない結果は最後に置いてください。",
                    outcome_name(def, open)
                ),
            );
        }
        // The same conditions twice: the later outcome is never derived.
        for (o, a) in def.outcomes.iter().enumerate() {
            if a.conditions.is_empty() {
                continue;
            }
            if def.outcomes[..o]
                .iter()
                .any(|b| b.combine == a.combine && b.conditions == a.conditions)
            {
                say(
                    place.clone(),
                    format!(
                        "結果 {} の条件が前の結果と同じため、到達しません。",
                        outcome_name(def, o)
                    ),
                );
            }
        }
        // Every choice the doctor can select should be an outcome, or a selection can never be
        // compared.
        if let Some(item) = def.item.as_deref().and_then(|i| form.item(i)) {
            for c in &item.codes {
                if !def
                    .outcomes
                    .iter()
                    .any(|o| o.code.as_deref() == Some(&c.code))
                    && !def.doctor_only.contains(&c.code)
                {
                    say(
                        place.clone(),
                        format!(
                            "「{}」の選択肢 {} {:?} に対応する結果がありません(選択と比較できません; 医師の判断のみの選択肢は doctor_only に)。",
                            item.label, c.code, c.label
                        ),
                    );
                }
            }
        }
        for (o, outcome) in def.outcomes.iter().enumerate() {
            for c in &outcome.conditions {
                if c.text.trim().is_empty() {
                    say(
                        place.clone(),
                        format!(
                            "結果 {} に文言(text)のない条件があります。",
                            outcome_name(def, o)
                        ),
                    );
                }
                let mut exprs = std::iter::once(&c.expr).chain(c.count.iter());
                if exprs.any(|e| e.contains("has(") && !e.contains('?')) {
                    say(
                        place.clone(),
                        format!(
                            "条件 {:?} は has() で未入力を「なし」と読みます。未入力は「未入力」のままにし(has() を使わない)、なしの選択肢を設けてください。代替の測定値の選択は `has(a) || has(b) ? … : …` と書きます。",
                            c.text
                        ),
                    );
                }
            }
        }
    }
}

fn outcome_name(def: &crate::form::JudgmentDef, o: usize) -> String {
    let x = &def.outcomes[o];
    x.label
        .clone()
        .or_else(|| x.code.clone())
        .unwrap_or_else(|| format!("#{}", o + 1))
}

/// Whether a file name is one the linter reads as scales rather than a form.
pub fn is_scale_file(name: &str) -> bool {
    ScaleFile::is_scale_file(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builtin_catalogue_is_clean() {
        let cat = Catalogue::builtin().expect("catalogue");
        let findings = lint(&cat);
        assert!(findings.is_empty(), "{findings:#?}");
    }

    const COMMON: &str = r#"
[form]
id = "c"
kind = "rinko"
title = "共通"
version = "1"
[[section]]
id = "patient"
title = "患者"
[[section.item]]
id = "patient.name"
label = "氏名"
type = "text"
"#;

    const SCALES: &str = r#"
[scale.nyha]
title = "NYHA"
sources = ["x"]
codes = [ { code = "1", label = "I" }, { code = "2", label = "II" } ]
"#;

    fn lint_disease(body: &str) -> Vec<LintFinding> {
        let disease = format!(
            r#"
[form]
id = "d"
kind = "rinko"
title = "試験病"
version = "1"
kokuji = 1
disease = "試験病"
common = "c"
{body}
"#
        );
        lint_files(&[
            ("scales.toml", SCALES),
            ("c.toml", COMMON),
            ("d.toml", &disease),
        ])
    }

    fn has(findings: &[LintFinding], fragment: &str) -> bool {
        findings.iter().any(|f| f.message.contains(fragment))
    }

    #[test]
    fn findings_name_file_item_and_problem() {
        let f = lint_disease(
            r#"
scales = ["nyha"]
[[section]]
id = "severity"
title = "重症度"
[[section.item]]
id = "severity.grade"
label = "重症度"
type = "code"
codes = [ { code = "1", label = "軽" }, { code = "2", label = "重" }, { code = "3", label = "不明" } ]
[[section.item]]
id = "severity.x"
label = "所見"
type = "code"
codes = [ { code = "1", label = "あり" }, { code = "2", label = "なし" } ]
[[section.item]]
id = "severity.total"
label = "合計"
type = "integer"
calc = { expr = "1 + 1" }
[[rule]]
id = "r1"
when = "severity.x == '1'"
items = ["severity.x"]
message = "確認してください。"
[[judgment]]
kind = "severity"
title = "重症度分類"
item = "severity.grade"
target = ["2"]
[[judgment.outcome]]
code = "1"
[[judgment.outcome]]
code = "2"
conditions = [ { text = "所見がある", expr = "has(severity.x) && severity.x == '1'" } ]
[[judgment]]
kind = "severity"
title = "二つ目"
[[judgment.outcome]]
label = "x"
"#,
        );
        assert!(f.iter().all(|x| x.file == "d.toml"), "{f:#?}");
        assert!(has(&f, "出典"), "missing sources: {f:#?}");
        assert!(has(&f, "\"nyha\" を引用していますが"), "{f:#?}");
        assert!(has(&f, "min と max"), "{f:#?}");
        assert!(has(&f, "項目を名前で示していません"), "{f:#?}");
        assert!(has(&f, "より後の結果は到達しません"), "{f:#?}");
        assert!(has(&f, "選択肢 3 \"不明\""), "{f:#?}");
        assert!(has(&f, "has() で未入力"), "{f:#?}");
        assert!(has(&f, "この判定は結果に使われません"), "{f:#?}");
        let calc = f
            .iter()
            .find(|x| x.message.contains("min と max"))
            .expect("calc finding");
        assert_eq!(calc.item.as_deref(), Some("severity.total"));
    }

    #[test]
    fn a_file_that_does_not_load_is_one_finding_naming_it() {
        let f = lint_disease(
            "[[section]]\nid = \"s\"\ntitle = \"t\"\n[[section.item]]\nid = \"s.x\"\nlabel = \"x\"\ntype = \"code\"\ncodelist = \"nope\"\n",
        );
        assert_eq!(f.len(), 1, "{f:#?}");
        assert_eq!(f[0].file, "d.toml");
        assert_eq!(f[0].item.as_deref(), Some("s.x"));
        assert!(f[0].message.contains("nope"));
        assert!(
            f[0].message.contains("コード表 \"nope\" がありません"),
            "{}",
            f[0].message
        );
    }

    /// Load errors are in Japanese and say where: the file, and the item or the line and
    /// column.
    #[test]
    fn load_errors_are_japanese_and_name_the_place() {
        let f = lint_disease("[[section]]\nid = \"s\"\ntitle = \"t\"\nwat = 1\n");
        assert_eq!(f.len(), 1, "{f:#?}");
        assert_eq!(f[0].file, "d.toml");
        assert!(
            f[0].message.contains("行")
                && f[0].message.contains("列目")
                && f[0].message.contains("TOML の書式"),
            "{}",
            f[0].message
        );
        let f = lint_disease(
            "[[section]]\nid = \"s\"\ntitle = \"t\"\n[[section.item]]\nid = \"s.x\"\nlabel = \"x\"\ntype = \"integer\"\nrequired_if = { expr = \"s.nope == 1\", text = \"x\" }\n",
        );
        assert_eq!(f[0].item.as_deref(), Some("s.x"), "{f:#?}");
        assert!(
            f[0].message.contains("未定義の項目") && f[0].message.contains("列目"),
            "{}",
            f[0].message
        );
        // No English sentence is left in a load error.
        for x in &f {
            assert!(!x.message.contains(" refers to ") && !x.message.contains(" is defined "));
        }
    }
}
