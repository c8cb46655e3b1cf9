//! The list of every disease nsdb can write (`forms/diseases.tsv`): all 指定難病 (告示番号
//! 1–341) and every 小慢 disease, generated from NANDO (DBCLS, CC-BY 4.0) and the ministry's
//! 概要・診断基準等 by `rules/tools/diseases.py`.
//!
//! A disease without its own form file gets a form of level 記載のみ: the shared sections plus the
//! doctor's own selection of 診断のカテゴリー and 重症度, with the criteria text's wording as help.
//! This module only reads the list and builds those form files; it must never invent a criterion:
//! a generated form has no machine judgment.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::CatalogueError;
use crate::form::{Code, FormFile, FormHeader, FormKind, ItemDef, ItemType, Place, SectionDef};

/// The file name the catalogue reads as the disease list.
pub const FILE: &str = "diseases.tsv";

/// Whether a catalogue file is a disease list rather than a form.
pub fn is_disease_list(name: &str) -> bool {
    name == FILE || name.ends_with("/diseases.tsv")
}

/// The NANDO attribution every form generated from the list carries.
pub const ATTRIBUTION: &str = "Nanbyo Disease Ontology (NANDO), DBCLS, CC-BY 4.0 (https://creativecommons.org/licenses/by/4.0/), https://nanbyodata.jp";

/// One disease of either programme, as the picker shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Disease {
    pub kind: FormKind,
    /// The form id: `rinko-NNN`, `iken-GG-MM-NNN` (小慢: 疾患群, 大分類, shouman.jp number).
    pub id: String,
    /// 告示番号 (`97`) or 小慢 疾患群-番号 (`12-1`).
    pub number: String,
    /// 疾患群 / disease area, as NANDO names it.
    pub group: String,
    pub name: String,
    pub synonyms: Vec<String>,
    /// The named 診断のカテゴリー of the criteria text (Definite, Probable…), empty when it names
    /// none.
    pub categories: Vec<String>,
    /// The criteria text's 診断のカテゴリー paragraph.
    pub category_text: String,
    /// The criteria text's 重症度分類 sentence (what is covered).
    pub severity_text: String,
    pub source: String,
    pub unverified: String,
    /// The 患者数 the criteria text states (医療受給者証保持者数, mostly 2012–2014), when it
    /// states one.
    pub patients: Option<u32>,
}

impl Disease {
    /// The 告示番号 (or the 小慢 number within its 疾患群) as a number.
    pub fn kokuji(&self) -> u16 {
        self.number
            .rsplit('-')
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }

    /// Whether the disease matches what was typed in the picker: name, synonym, number or id
    /// (NFKC-insensitive for full-width digits and letters; かな readings are not in the data).
    pub fn matches(&self, query: &str) -> bool {
        let q = fold_for_search(query.trim());
        if q.is_empty() {
            return true;
        }
        let number = self.number.trim_start_matches('0');
        fold_for_search(&self.name).contains(&q)
            || self
                .synonyms
                .iter()
                .any(|s| fold_for_search(s).contains(&q))
            || self.number == q
            || number == q.trim_start_matches('0')
            || self.kokuji().to_string() == q.trim_start_matches('0')
            || self.id.contains(&q)
    }
}

/// A string as the picker compares it: full-width ASCII made half-width, katakana made
/// hiragana (モヤモヤ finds もやもや病), letters lower-cased.
pub fn fold_for_search(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
            '\u{30A1}'..='\u{30F6}' => char::from_u32(c as u32 - 0x60).unwrap_or(c),
            _ => c,
        })
        .flat_map(char::to_lowercase)
        .collect()
}

/// Reads the list: one disease a line, tab-separated (kind, id, number, group, name, synonyms,
/// categories, category text, severity text, source, unverified, patients; lists joined by ｜);
/// `#` lines
/// are comments. A malformed line is an error naming its line.
pub fn parse(file: &str, text: &str) -> Result<Vec<Disease>, CatalogueError> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let c: Vec<&str> = line.split('\t').collect();
        let bad = |message: String| CatalogueError::Invalid {
            file: file.to_string(),
            item: Some(format!("line {}", n + 1)),
            message,
        };
        if c.len() != 12 {
            return Err(bad(format!("{} columns, expected 12", c.len())));
        }
        let kind = match c[0] {
            "rinko" => FormKind::Rinko,
            "iken" => FormKind::Iken,
            k => return Err(bad(format!("unknown kind {k:?}"))),
        };
        let list = |s: &str| -> Vec<String> {
            s.split('｜')
                .filter(|x| !x.is_empty())
                .map(str::to_string)
                .collect()
        };
        if c[4].is_empty() || c[1].is_empty() {
            return Err(bad("a disease needs an id and a name".into()));
        }
        out.push(Disease {
            kind,
            id: c[1].to_string(),
            number: c[2].to_string(),
            group: c[3].to_string(),
            name: c[4].to_string(),
            synonyms: list(c[5]),
            categories: list(c[6]),
            category_text: c[7].to_string(),
            severity_text: c[8].to_string(),
            source: c[9].to_string(),
            unverified: c[10].to_string(),
            patients: c[11].parse().ok(),
        });
    }
    Ok(out)
}

fn code(code: &str, label: &str) -> Code {
    Code {
        code: code.to_string(),
        label: label.to_string(),
        points: None,
    }
}

fn item(id: &str, label: &str, codes: Vec<Code>, help: &str) -> ItemDef {
    ItemDef {
        id: id.to_string(),
        label: label.to_string(),
        ty: ItemType::Code,
        required: false,
        unit: None,
        codelist: None,
        codes,
        min: None,
        max: None,
        step: None,
        exclude: Vec::new(),
        max_len: None,
        carry: false,
        help: (!help.is_empty()).then(|| help.to_string()),
        unverified: None,
        required_if: None,
        not_before: None,
        calc: None,
    }
}

/// The form of level 記載のみ for a disease without its own form file.
pub fn form_file(d: &Disease) -> FormFile {
    let rinko = d.kind == FormKind::Rinko;
    let mut categories: Vec<Code> = d
        .categories
        .iter()
        .enumerate()
        .map(|(i, c)| code(&(i + 1).to_string(), c))
        .collect();
    if categories.is_empty() {
        categories = vec![
            code("1", "診断基準を満たす"),
            code("2", "診断基準を満たさない"),
        ];
    } else {
        categories.push(code("9", "いずれにも該当しない"));
    }
    let category_help = if rinko {
        d.category_text.clone()
    } else {
        "小児慢性特定疾病の診断の手引き(医療意見書)による。".to_string()
    };
    let mut diagnosis = item(
        "diagnosis.category",
        "診断のカテゴリー",
        categories,
        &category_help,
    );
    diagnosis.required = true;
    let (severity_label, severity_codes, severity_help) = if rinko {
        (
            "重症度分類",
            vec![
                code("1", "重症度分類の対象に該当する"),
                code("2", "重症度分類の対象に該当しない"),
            ],
            d.severity_text.clone(),
        )
    } else {
        (
            "疾病の状態の程度",
            vec![code("1", "対象基準を満たす"), code("2", "満たさない")],
            "告示の「疾病の状態の程度」による。".to_string(),
        )
    };
    let mut severity = item(
        "severity.grade",
        severity_label,
        severity_codes,
        &severity_help,
    );
    severity.required = true;
    let mut severity_items = vec![severity];
    if rinko {
        severity_items.push(ItemDef {
            ty: ItemType::Integer,
            codes: Vec::new(),
            unit: Some("か月".into()),
            min: Some(0.0),
            max: Some(12.0),
            required: false,
            ..item(
                "severity.high_cost_months",
                "軽症高額該当 医療費総額が33,330円を超えた月数(申請月以前12か月)",
                Vec::new(),
                "",
            )
        });
    }
    let title = match d.kind {
        FormKind::Rinko => format!("臨床調査個人票 {:0>3} {}", d.number, d.name),
        FormKind::Iken => format!("医療意見書 {} {}", d.number, d.name),
    };
    let mut sources = Vec::new();
    if !d.source.is_empty() {
        sources.push(d.source.clone());
    }
    sources.push(ATTRIBUTION.to_string());
    let unverified = format!(
        "記載のみの様式(疾病ごとの様式は未収録): 診断のカテゴリーと重症度は医師の選択を記録し、機械判定しない。{}",
        d.unverified
    );
    FormFile {
        form: FormHeader {
            id: d.id.clone(),
            kind: d.kind,
            title,
            version: "list-2020.03".into(),
            sources,
            kokuji: Some(d.kokuji()),
            eda: Some(0),
            disease: Some(d.name.clone()),
            common: Some(if rinko { "rinko-common" } else { "iken-common" }.into()),
            unverified: Some(unverified.trim().to_string()),
            scales: Vec::new(),
        },
        codelist: BTreeMap::new(),
        sections: vec![
            SectionDef {
                id: "diagnosis".into(),
                title: "診断基準に関する事項".into(),
                place: Place::Before,
                items: vec![diagnosis],
            },
            SectionDef {
                id: "severity".into(),
                title: if rinko {
                    "重症度分類に関する事項".into()
                } else {
                    "疾病の状態の程度".into()
                },
                place: Place::Before,
                items: severity_items,
            },
        ],
        rules: Vec::new(),
        judgments: Vec::new(),
        migrations: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Catalogue;

    #[test]
    fn every_designated_and_every_shoman_disease_can_be_written() {
        let cat = Catalogue::builtin().expect("catalogue");
        let rinko: Vec<u16> = cat
            .forms()
            .iter()
            .filter(|f| f.kind == FormKind::Rinko)
            .map(|f| f.kokuji)
            .collect();
        for n in 1..=341 {
            assert!(rinko.contains(&n), "指定難病 {n} has no form");
        }
        let iken = cat
            .forms()
            .iter()
            .filter(|f| f.kind == FormKind::Iken)
            .count();
        assert!(iken >= 800, "{iken} 小慢 forms");
        // Hand-written forms win over the list; generated ones are 記載のみ with the text's words.
        assert_eq!(
            cat.form("rinko-097").map(|f| f.level()),
            Some(crate::FormLevel::MachineJudged)
        );
        let als1 = cat.form("rinko-001").expect("001");
        assert_eq!(als1.level(), crate::FormLevel::RecordOnly);
        assert_eq!(als1.disease, "球脊髄性筋萎縮症");
        let sev = als1.item("severity.grade").expect("severity");
        assert!(
            sev.help
                .as_deref()
                .unwrap_or("")
                .contains("modified Rankin Scale")
        );
        assert!(als1.item("patient.name").is_some(), "shared sections");
        let sma = cat.form("rinko-003").expect("003");
        let cats: Vec<&str> = sma
            .item("diagnosis.category")
            .expect("category")
            .codes
            .iter()
            .map(|c| c.label.as_str())
            .collect();
        assert_eq!(cats, ["Definite", "いずれにも該当しない"]);
        assert!(sma.sources.iter().any(|s| s.contains("CC-BY 4.0")));
        let later = cat.form("rinko-341").expect("341");
        assert!(later.unverified.as_deref().unwrap_or("").contains("未確認"));
    }

    #[test]
    fn the_picker_finds_by_name_synonym_and_number() {
        let cat = Catalogue::builtin().expect("catalogue");
        let hits = |q: &str| -> Vec<String> {
            cat.diseases()
                .iter()
                .filter(|d| d.matches(q))
                .map(|d| d.id.clone())
                .collect()
        };
        assert!(hits("潰瘍性大腸炎").contains(&"rinko-097".to_string()));
        assert!(hits("潰瘍性大腸炎").contains(&"iken-12-04-014".to_string()));
        assert!(
            hits("Crohn病").contains(&"iken-12-04-015".to_string()),
            "synonym"
        );
        assert!(
            hits("９７").contains(&"rinko-097".to_string()),
            "full-width number"
        );
        assert!(hits("12-1").contains(&"iken-12-04-014".to_string()));
    }

    #[test]
    fn a_generated_form_takes_a_selection_without_judging_it() {
        let cat = Catalogue::builtin().expect("catalogue");
        let form = cat.form("rinko-001").expect("001");
        let values = [
            ("diagnosis.category".to_string(), "1".to_string()),
            ("severity.grade".to_string(), "1".to_string()),
        ]
        .into();
        let ev = crate::evaluate(form, &values, crate::Date::new(2026, 4, 1).expect("date"));
        assert!(ev.judgment.category.is_none() && ev.judgment.severity.is_none());
        assert!(ev.judgment.messages.is_empty());
    }

    #[test]
    fn the_judged_share_counts_the_patients_of_machine_judged_forms() {
        let cat = Catalogue::builtin().expect("catalogue");
        let share = cat.judged_share();
        // 潰瘍性大腸炎 (143,733) and パーキンソン病 (108,800) are judged; 球脊髄性筋萎縮症 is not.
        assert!(share.judged >= 143_733 + 108_800, "{share:?}");
        assert!(share.total > share.judged);
        assert!(share.judged_forms.contains(&"rinko-097".to_string()));
        assert!(!share.judged_forms.contains(&"rinko-001".to_string()));
    }

    /// The texts of 下垂体疾患 072–078 each state 17,069 (the group's recipients), and 042/043
    /// each state 9,610 (their sum): those are counted once, not seven and two times; a
    /// frequency (179: 「２万人に１人」) is no number of patients.
    #[test]
    fn a_figure_shared_by_a_group_counts_once() {
        let cat = Catalogue::builtin().expect("catalogue");
        let rinko = || cat.diseases().iter().filter(|d| d.kind == FormKind::Rinko);
        let stated: u64 = rinko().map(|d| u64::from(d.patients.unwrap_or(0))).sum();
        let share = cat.judged_share();
        assert_eq!(share.total, stated - 6 * 17_069 - 9_610, "{share:?}");
        let mra = rinko().find(|d| d.id == "rinko-179").expect("179");
        assert_eq!(mra.patients, None, "a frequency is not a count");
    }

    #[test]
    fn a_malformed_line_names_it() {
        let e = parse("diseases.tsv", "rinko\trinko-001\n").unwrap_err();
        assert!(e.to_string().contains("line 1"), "{e}");
    }
}
