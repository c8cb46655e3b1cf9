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

    /// Whether the disease matches what was typed in the picker: name, synonym (including the
    /// abbreviations the official text or NANDO gives: ALS, MG, ITP, SLE…), number or id.
    ///
    /// Both sides are folded by [`fold_for_search`] (NFKC, case, katakana/hiragana, dash
    /// variants). A query of Latin letters and digits (an abbreviation, an English word) matches
    /// only at the start of a word, so 「UC」 never matches inside another word; any other query
    /// matches anywhere in a name or synonym, 中黒, spaces and ＝ ignored. Numbers match the
    /// 告示番号, the 小慢 番号 or whole numbers of the id ([`id_numbers_match`]).
    pub fn matches(&self, query: &str) -> bool {
        let q = fold_for_search(query.trim());
        if q.is_empty() {
            return true;
        }
        let hit = |s: &str| folded_matches(&fold_for_search(s), &q);
        let number = self.number.trim_start_matches('0');
        hit(&self.name)
            || self.synonyms.iter().any(|s| hit(s))
            || self.number == q
            || number == q.trim_start_matches('0')
            || self.kokuji().to_string() == q.trim_start_matches('0')
            || (is_latin(&q) && q.contains('-') && self.id.starts_with(&q))
            || id_numbers_match(&self.id, &q)
    }
}

/// Whether a query of numbers joined by hyphens (「12-04-014」, 「12-4-14」, 「04-014」) names
/// consecutive whole numbers of the form id (`iken-12-04-014`: 疾患群, 大分類, 番号), leading
/// zeros aside. A single number is matched by [`Disease::matches`] against the 告示番号 or the
/// 小慢 番号, never inside the id: 「2-04」 does not find `iken-12-04-…`, nor 「14」 any id that
/// merely contains 14.
fn id_numbers_match(id: &str, q: &str) -> bool {
    let numbers = |s: &str| -> Option<Vec<u32>> { s.split('-').map(|p| p.parse().ok()).collect() };
    let Some(wanted) = numbers(q).filter(|w| w.len() > 1) else {
        return false;
    };
    let of_id: Vec<u32> = id.split('-').filter_map(|p| p.parse().ok()).collect();
    of_id.windows(wanted.len()).any(|w| w == wanted.as_slice())
}

/// Whether a name (a form's own disease wording, say) matches a picker query the way
/// [`Disease::matches`] matches names: folded on both sides, Latin queries at word starts only.
pub fn text_matches(text: &str, query: &str) -> bool {
    let q = fold_for_search(query.trim());
    q.is_empty() || folded_matches(&fold_for_search(text), &q)
}

/// A folded query of Latin letters and digits (an abbreviation or an English word).
fn is_latin(q: &str) -> bool {
    q.chars().any(|c| c.is_ascii_alphabetic())
        && q.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == ' ')
}

fn folded_matches(s: &str, q: &str) -> bool {
    if is_latin(q) {
        at_word_start(s, q)
    } else {
        // Japanese names are written with and without 中黒, spaces and ＝ (「ウォルフ・ヒルシュ
        // ホーン症候群」, 「シェーグレン 症候群」): none of them decides a match.
        let bare = |t: &str| -> String {
            t.chars()
                .filter(|c| !matches!(c, '・' | ' ' | '=' | '\u{3000}'))
                .collect()
        };
        bare(s).contains(&bare(q))
    }
}

/// Latin queries this short are abbreviations: they match whole words only (SMA is not "small",
/// MS not "MSA", CD not "CDG").
const ABBREVIATION_CHARS: usize = 5;

/// Whether `q` occurs in `s` where a word begins: at the start, or after anything but a Latin
/// letter or digit (「家族性ALS」, 「IgA腎症」, 「Crohn病」; not 「mucopolysaccharidosis」 for "uc").
/// A query of up to [`ABBREVIATION_CHARS`] characters must also end where the word ends.
fn at_word_start(s: &str, q: &str) -> bool {
    let whole = q.chars().count() <= ABBREVIATION_CHARS;
    let boundary = |c: Option<char>| c.is_none_or(|c| !c.is_ascii_alphanumeric());
    s.match_indices(q).any(|(i, m)| {
        boundary(s[..i].chars().next_back())
            && (!whole || boundary(s[i + m.len()..].chars().next()))
    })
}

/// A string as the picker compares it: NFKC (full-width letters and digits half-width,
/// half-width katakana full-width), katakana made hiragana (モヤモヤ finds もやもや病), letters
/// lower-cased, and every dash and long-vowel mark (ー－‐‑‒–—―−ｰ) one hyphen, so 「ハンチントン
/// 病」 typed with a hyphen or a minus still finds it.
pub fn fold_for_search(s: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    s.nfkc()
        .map(|c| match c {
            '\u{30A1}'..='\u{30F6}' => char::from_u32(c as u32 - 0x60).unwrap_or(c),
            '\u{2010}'..='\u{2015}' | '\u{2212}' | '\u{30FC}' | '\u{2500}' | '\u{FE63}' => '-',
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
            item: Some(format!("{}行目", n + 1)),
            message,
        };
        if c.len() != 12 {
            return Err(bad(format!(
                "列が{}個あります（12個のはずです）。",
                c.len()
            )));
        }
        let kind = match c[0] {
            "rinko" => FormKind::Rinko,
            "iken" => FormKind::Iken,
            k => return Err(bad(format!("種類 {k:?} は rinko か iken のはずです。"))),
        };
        let list = |s: &str| -> Vec<String> {
            s.split('｜')
                .filter(|x| !x.is_empty())
                .map(str::to_string)
                .collect()
        };
        if c[4].is_empty() || c[1].is_empty() {
            return Err(bad("疾病には id と名称が必要です。".into()));
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

    /// The ids of the diseases the picker finds for `q`.
    fn hits(cat: &Catalogue, q: &str) -> Vec<String> {
        cat.diseases()
            .iter()
            .filter(|d| d.matches(q))
            .map(|d| d.id.clone())
            .collect()
    }

    #[test]
    fn the_picker_finds_by_name_synonym_and_number() {
        let cat = Catalogue::builtin().expect("catalogue");
        let hits = |q: &str| hits(&cat, q);
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

    /// A form whose 小慢 number was inferred says so wherever its heading shows (editor, print).
    #[test]
    fn an_inferred_number_is_marked_in_the_heading() {
        let cat = Catalogue::builtin().expect("catalogue");
        let forms = cat.forms();
        let inferred = forms
            .iter()
            .find(|f| f.number_inferred())
            .expect("the list has inferred numbers");
        assert!(
            inferred.heading().contains("（番号未確認）"),
            "{}",
            inferred.heading()
        );
        let sourced = cat.form("iken-12-04-014").expect("form");
        assert!(!sourced.heading().contains("番号未確認"));
    }

    /// 中黒, spaces and ＝ do not decide a match; numbers match whole numbers of the id, never
    /// digits across its parts.
    #[test]
    fn the_picker_ignores_nakaguro_and_spaces_and_matches_whole_numbers() {
        let cat = Catalogue::builtin().expect("catalogue");
        let hits = |q: &str| hits(&cat, q);
        for q in [
            "シャルコーマリートゥース病",
            "シャルコー マリー",
            "しゃるこー・まりー",
        ] {
            assert!(hits(q).contains(&"rinko-010".to_string()), "{q}");
        }
        assert!(hits("スティーヴンス　ジョンソン").contains(&"rinko-038".to_string()));
        for q in ["12-04-014", "12-4-14", "１２－０４－０１４", "04-014"] {
            assert!(hits(q).contains(&"iken-12-04-014".to_string()), "{q}");
        }
        for q in ["2-04", "2-04-01", "4-01"] {
            assert!(
                !hits(q).contains(&"iken-12-04-014".to_string()),
                "{q} is not a run of the id's numbers"
            );
        }
        // A single number is a 告示番号 or a 小慢 番号, not a digit run of some id.
        let fourteen = hits("14");
        assert!(fourteen.contains(&"rinko-014".to_string()));
        assert!(
            !fourteen.contains(&"iken-12-04-014".to_string()),
            "its 番号 is 12-1: 14 is only in its id"
        );
    }

    #[test]
    fn abbreviations_match_whole_words_and_only_where_a_source_gives_them() {
        let cat = Catalogue::builtin().expect("catalogue");
        let hits = |q: &str| hits(&cat, q);
        // From the criteria texts: 「筋萎縮性側索硬化症（amyotrophic lateral sclerosis：ALS）」,
        // 「重症筋無力症（MG）」, 「特発性血小板減少性紫斑病（ITP）」; from NANDO: SLE (小慢).
        for (q, id) in [
            ("ALS", "rinko-002"),
            ("als", "rinko-002"),
            ("ＡＬＳ", "rinko-002"),
            ("MG", "rinko-011"),
            ("ITP", "rinko-063"),
            ("SLE", "iken-06-01-002"),
            ("IgA", "rinko-066"),
            ("crohn", "iken-12-04-015"),
        ] {
            assert!(hits(q).contains(&id.to_string()), "{q}: {:?}", hits(q));
        }
        // A Latin query never matches inside a word.
        for q in ["UC", "LS", "G", "TP"] {
            for d in cat.diseases().iter().filter(|d| d.matches(q)) {
                let q = fold_for_search(q);
                let words: Vec<String> = std::iter::once(&d.name)
                    .chain(&d.synonyms)
                    .map(|s| fold_for_search(s))
                    .collect();
                assert!(
                    words.iter().any(|w| at_word_start(w, &q)) || d.number == q,
                    "{q} matched {} {}",
                    d.id,
                    d.name
                );
            }
        }
        assert!(!hits("UC").contains(&"rinko-002".to_string()));
        assert!(
            !fold_for_search("mucopolysaccharidosis").is_empty()
                && !at_word_start("mucopolysaccharidosis", "uc")
        );
        // 潰瘍性大腸炎's "UC" is in neither its criteria text nor NANDO: not made up.
        assert!(!hits("UC").contains(&"rinko-097".to_string()));
        // A short query is a whole word: not the start of a longer one.
        assert!(!at_word_start("small fiber neuropathy", "sma"));
        assert!(!at_word_start("msa", "ms"));
        assert!(at_word_start("家族性als", "als"));
        assert!(
            at_word_start("charcot marie tooth", "charcot"),
            "a long query is a prefix"
        );
        assert!(at_word_start("parkinson disease", "parkinso"));
        for (q, not) in [
            ("SMA", "rinko-100"),
            ("MS", "rinko-017"),
            ("SLE", "rinko-154"),
        ] {
            assert!(!hits(q).contains(&not.to_string()), "{q}: {:?}", hits(q));
        }
    }

    #[test]
    fn dashes_and_half_width_katakana_are_folded_on_both_sides() {
        let cat = Catalogue::builtin().expect("catalogue");
        let hits = |q: &str| hits(&cat, q);
        // パーキンソン病 typed with each dash in place of ー, and in half-width katakana.
        for q in [
            "パーキンソン病",
            "パ－キンソン病",
            "パ‐キンソン病",
            "パ−キンソン病",
            "パ–キンソン病",
            "パ—キンソン病",
            "パ-キンソン病",
            "ﾊﾟｰｷﾝｿﾝ病",
            "ぱーきんそん",
        ] {
            assert!(hits(q).contains(&"rinko-006".to_string()), "{q}");
        }
        // A name written with a full-width hyphen (258) is found with an ASCII one.
        assert!(
            hits("ガラクトース-1-リン酸").contains(&"rinko-258".to_string()),
            "{:?}",
            hits("ガラクトース-1-リン酸")
        );
        assert_eq!(fold_for_search("ＩｇＡ"), "iga");
        assert_eq!(fold_for_search("ｱﾙﾌｧ"), "あるふぁ");
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

    /// The NANDO files the list is generated from, when they are at hand (`NSDB_NANDO`, or
    /// `shared/data/nando` beside the checkout).
    fn nando_dir() -> Option<std::path::PathBuf> {
        let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        std::env::var_os("NSDB_NANDO")
            .map(std::path::PathBuf::from)
            .into_iter()
            .chain(
                manifest
                    .ancestors()
                    .skip(1)
                    .take(3)
                    .map(|a| a.join("shared/data/nando")),
            )
            .find(|p| p.join("shoman.json").exists())
    }

    /// Names compared as the official list and the catalogue may write them: NFKC, no spaces,
    /// one kind of dash and slash.
    fn comparable(s: &str) -> String {
        fold_for_search(s)
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect()
    }

    /// The listed name of the disease `id`; panics when the list has no such disease.
    fn name_of(cat: &Catalogue, id: &str) -> String {
        cat.diseases()
            .iter()
            .find(|d| d.id == id)
            .map(|d| d.name.clone())
            .unwrap_or_else(|| panic!("{id} is not in the list"))
    }

    /// The 小慢 diseases the list used to merge because NANDO gives them one shouman.jp page.
    #[test]
    fn shoman_diseases_sharing_a_page_each_have_their_own_number() {
        let cat = Catalogue::builtin().expect("catalogue");
        let name = |id: &str| name_of(&cat, id);
        assert_eq!(name("iken-01-05-041"), "未分化神経外胚葉性腫瘍");
        assert_eq!(name("iken-01-06-085"), "未分化神経外胚葉性腫瘍");
        assert_eq!(
            name("iken-02-02-016"),
            "急速進行性糸球体腎炎（多発血管炎性肉芽腫症によるものに限る。）"
        );
        assert_eq!(name("iken-02-16-037"), "多嚢胞性異形成腎");
        assert_eq!(name("iken-02-16-038"), "寡巨大糸球体症");
        assert_eq!(
            name("iken-02-17-045"),
            "43及び44に掲げるもののほか、尿路奇形"
        );
        for id in [
            "iken-01-06-085",
            "iken-02-02-016",
            "iken-02-16-037",
            "iken-02-16-038",
            "iken-02-17-045",
        ] {
            assert!(cat.form(id).is_some(), "{id} has no form");
        }
        // Two diseases of one 疾患群 may share a name only in different 大分類.
        let mut seen = std::collections::BTreeSet::new();
        for d in cat.diseases() {
            assert!(
                seen.insert((d.kind == FormKind::Rinko, d.group.clone(), d.name.clone())),
                "{} {} cannot be told apart",
                d.id,
                d.name
            );
        }
    }

    #[test]
    fn names_keep_the_official_qualifiers() {
        let cat = Catalogue::builtin().expect("catalogue");
        let name = |id: &str| name_of(&cat, id);
        assert_eq!(name("rinko-162"), "類天疱瘡（後天性表皮水疱症を含む。）");
        assert_eq!(name("rinko-177"), "ジュベール症候群関連疾患");
        assert_eq!(name("rinko-229"), "肺胞蛋白症（自己免疫性又は先天性）");
        assert_eq!(
            name("rinko-234"),
            "ペルオキシソーム病（副腎白質ジストロフィーを除く。）"
        );
        assert_eq!(
            name("rinko-291"),
            "ヒルシュスプルング病（全結腸型又は小腸型）"
        );
        assert_eq!(
            name("rinko-327"),
            "特発性血栓症（遺伝性血栓性素因によるものに限る。）"
        );
        assert_ne!(name("iken-05-04-005"), name("iken-05-04-006"));
        assert!(name("iken-05-04-005").contains("によるものに限る"));
        assert!(name("iken-05-04-006").contains("によるものを除く"));
        // NANDO's own name stays findable as a synonym.
        assert!(
            cat.diseases()
                .iter()
                .any(|d| d.id == "rinko-177" && d.matches("ジュベール疾患群関連疾患"))
        );
    }

    /// Against the NANDO files themselves (skipped, saying so, where they are not at hand):
    /// every 小慢 disease of each 疾患群 is in the list once, and every 指定難病's name is the
    /// title of its 概要・診断基準等.
    #[test]
    fn the_list_matches_the_official_data() {
        let Some(dir) = nando_dir() else {
            eprintln!("NANDO data not found (set NSDB_NANDO): official-list comparison skipped");
            return;
        };
        let cat = Catalogue::builtin().expect("catalogue");
        let shoman: Vec<serde_json::Value> = serde_json::from_str(
            &std::fs::read_to_string(dir.join("shoman.json")).expect("shoman.json"),
        )
        .expect("json");
        let mut want: BTreeMap<String, usize> = BTreeMap::new();
        for e in &shoman {
            let id = e["id"].as_str().unwrap_or("");
            if id.contains('-') {
                continue;
            }
            let class = e["class_id"].as_str().unwrap_or("");
            let group = class.split('-').next().unwrap_or("").to_string();
            *want.entry(format!("{:0>2}", group)).or_default() += 1;
        }
        let mut got: BTreeMap<String, usize> = BTreeMap::new();
        for d in cat.diseases().iter().filter(|d| d.kind == FormKind::Iken) {
            *got.entry(d.id[5..7].to_string()).or_default() += 1;
        }
        assert_eq!(got, want, "小慢 diseases per 疾患群: list vs NANDO");
        // Every 小慢 name of the NANDO list is a line's name (or, where the list gives the
        // 告示's qualifier, its synonym), in the same 疾患群.
        let iken: Vec<&Disease> = cat
            .diseases()
            .iter()
            .filter(|d| d.kind == FormKind::Iken)
            .collect();
        for e in shoman
            .iter()
            .filter(|e| !e["id"].as_str().unwrap_or("-").contains('-'))
        {
            let name = e["name_ja"].as_str().unwrap_or("").trim();
            let group = format!(
                "{:0>2}",
                e["class_id"]
                    .as_str()
                    .unwrap_or("")
                    .split('-')
                    .next()
                    .unwrap_or("")
            );
            let n = comparable(name);
            assert!(
                iken.iter().any(|d| d.id[5..7] == group
                    && (comparable(&d.name) == n || d.synonyms.iter().any(|s| comparable(s) == n))),
                "{name} ({group}) is not in the list"
            );
        }
        let mut wrong = Vec::new();
        for d in cat.diseases().iter().filter(|d| d.kind == FormKind::Rinko) {
            let Ok(text) =
                std::fs::read_to_string(dir.join(format!("criteria/{:03}.txt", d.kokuji())))
            else {
                continue;
            };
            let first = text.lines().next().unwrap_or("");
            let rest = first
                .trim_start_matches(|c: char| c.is_ascii_digit() || ('０'..='９').contains(&c));
            let number = fold_for_search(&first[..first.len() - rest.len()]);
            let title = rest.trim();
            // 073–078 share 072's text: its title is not theirs.
            if number.trim().parse::<u16>().ok() != Some(d.kokuji()) {
                continue;
            }
            if comparable(title) != comparable(&d.name) {
                wrong.push(format!("{}: {} (official: {title})", d.id, d.name));
            }
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }

    #[test]
    fn a_malformed_line_names_it() {
        let e = parse("diseases.tsv", "rinko\trinko-001\n").unwrap_err();
        assert!(e.to_string().contains("1行目"), "{e}");
    }
}
