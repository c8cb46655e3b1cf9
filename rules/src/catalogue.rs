//! The form catalogue: every form a node can write, composed from the shared sections and each
//! disease's own, and validated as a whole when it loads.
//!
//! Loading is the only place where a form file can be wrong; once a `Catalogue` exists, every
//! form in it is consistent (ids unique, code lists resolved, ranges sane). It must never read
//! files itself: callers hand it the texts (the built-in ones are compiled into the binary).

use std::collections::{BTreeMap, HashSet};

use crate::CatalogueError;
use crate::form::{FormDef, FormFile, ItemType, Place};

/// The form files compiled into nsdb, as (file name, text).
const BUILTIN: &[(&str, &str)] = &[
    (
        "rinko_common.toml",
        include_str!("../forms/rinko_common.toml"),
    ),
    ("rinko_006.toml", include_str!("../forms/rinko_006.toml")),
];

/// The loaded, validated set of forms.
#[derive(Debug, Clone)]
pub struct Catalogue {
    forms: BTreeMap<String, FormDef>,
}

impl Catalogue {
    /// The catalogue compiled into this build.
    pub fn builtin() -> Result<Catalogue, CatalogueError> {
        Catalogue::from_texts(BUILTIN)
    }

    /// Builds a catalogue from form files given as (file name, text).
    pub fn from_texts(files: &[(&str, &str)]) -> Result<Catalogue, CatalogueError> {
        let mut parsed = Vec::with_capacity(files.len());
        for (name, text) in files {
            parsed.push((name.to_string(), FormFile::parse(name, text)?));
        }
        Catalogue::compose(parsed)
    }

    fn compose(files: Vec<(String, FormFile)>) -> Result<Catalogue, CatalogueError> {
        let mut codelists = BTreeMap::new();
        let mut seen_forms = HashSet::new();
        for (name, f) in &files {
            if !seen_forms.insert(f.form.id.clone()) {
                return Err(CatalogueError::Invalid {
                    file: name.clone(),
                    item: None,
                    message: format!("form id {:?} is defined twice", f.form.id),
                });
            }
            for (id, list) in &f.codelist {
                if codelists.insert(id.clone(), list.clone()).is_some() {
                    return Err(CatalogueError::Invalid {
                        file: name.clone(),
                        item: None,
                        message: format!("code list {id:?} is defined twice"),
                    });
                }
            }
        }
        let commons: BTreeMap<&str, (&String, &FormFile)> = files
            .iter()
            .filter(|(_, f)| f.form.kokuji.is_none())
            .map(|(n, f)| (f.form.id.as_str(), (n, f)))
            .collect();

        let mut forms = BTreeMap::new();
        for (name, f) in files.iter().filter(|(_, f)| f.form.kokuji.is_some()) {
            let h = &f.form;
            let invalid = |item: Option<&str>, message: String| CatalogueError::Invalid {
                file: name.clone(),
                item: item.map(str::to_string),
                message,
            };
            let disease = h
                .disease
                .clone()
                .ok_or_else(|| invalid(None, "a disease form needs `disease`".into()))?;
            let mut sections = Vec::new();
            let mut after = Vec::new();
            if let Some(common_id) = &h.common {
                let (_, common) = commons.get(common_id.as_str()).ok_or_else(|| {
                    invalid(None, format!("unknown shared sections {common_id:?}"))
                })?;
                if common.form.kind != h.kind {
                    return Err(invalid(
                        None,
                        format!("shared sections {common_id:?} belong to another kind of form"),
                    ));
                }
                for s in &common.sections {
                    match s.place {
                        Place::Before => sections.push(s.clone()),
                        Place::After => after.push(s.clone()),
                    }
                }
            }
            sections.extend(f.sections.iter().cloned());
            sections.extend(after);

            let mut ids = HashSet::new();
            for section in &mut sections {
                for item in &mut section.items {
                    if !ids.insert(item.id.clone()) {
                        return Err(invalid(
                            Some(&item.id),
                            "item id is used twice in this form".into(),
                        ));
                    }
                    if let Some(list) = &item.codelist {
                        let list = codelists.get(list).ok_or_else(|| {
                            invalid(Some(&item.id), format!("unknown code list {list:?}"))
                        })?;
                        if !item.codes.is_empty() {
                            return Err(invalid(
                                Some(&item.id),
                                "give either `codelist` or `codes`, not both".into(),
                            ));
                        }
                        item.codes = list.codes.clone();
                    }
                    let is_code = matches!(item.ty, ItemType::Code | ItemType::Codes);
                    if is_code && item.codes.is_empty() {
                        return Err(invalid(Some(&item.id), "a code item needs codes".into()));
                    }
                    if !is_code && !item.codes.is_empty() {
                        return Err(invalid(
                            Some(&item.id),
                            "only code items may have codes".into(),
                        ));
                    }
                    let mut codes = HashSet::new();
                    for c in &item.codes {
                        if !codes.insert(&c.code) {
                            return Err(invalid(
                                Some(&item.id),
                                format!("code {:?} appears twice", c.code),
                            ));
                        }
                        if is_code && item.ty == ItemType::Codes && c.code.contains(',') {
                            return Err(invalid(
                                Some(&item.id),
                                format!("code {:?} may not contain a comma", c.code),
                            ));
                        }
                    }
                    if let (Some(min), Some(max)) = (item.min, item.max)
                        && min > max
                    {
                        return Err(invalid(Some(&item.id), format!("min {min} > max {max}")));
                    }
                }
            }
            forms.insert(
                h.id.clone(),
                FormDef {
                    id: h.id.clone(),
                    kind: h.kind,
                    title: h.title.clone(),
                    version: h.version.clone(),
                    kokuji: h.kokuji.unwrap_or_default(),
                    eda: h.eda.unwrap_or_default(),
                    disease,
                    sources: h.sources.clone(),
                    sections,
                },
            );
        }
        Ok(Catalogue { forms })
    }

    pub fn form(&self, id: &str) -> Option<&FormDef> {
        self.forms.get(id)
    }

    /// Every form, ordered by kind, 告示番号 and 枝番.
    pub fn forms(&self) -> Vec<&FormDef> {
        let mut v: Vec<_> = self.forms.values().collect();
        v.sort_by_key(|f| (f.kind as u8, f.kokuji, f.eda));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::{Mode, check, normalise_input};
    use crate::value::Date;

    const COMMON: &str = r#"
[form]
id = "c"
kind = "rinko"
title = "共通"
version = "1"
[codelist.sex]
codes = [ { code = "1", label = "男" }, { code = "2", label = "女" } ]
[[section]]
id = "patient"
title = "患者情報"
[[section.item]]
id = "patient.name"
label = "氏名"
type = "text"
required = true
[[section.item]]
id = "patient.sex"
label = "性別"
type = "code"
codelist = "sex"
[[section]]
id = "doctor"
title = "指定医"
place = "after"
[[section.item]]
id = "doctor.name"
label = "指定医氏名"
type = "text"
"#;

    fn disease(items: &str) -> String {
        format!(
            r#"
[form]
id = "d-1"
kind = "rinko"
title = "疾病"
version = "1"
kokuji = 1
disease = "試験病"
common = "c"
[[section]]
id = "severity"
title = "重症度分類に関する事項"
{items}
"#
        )
    }

    const GOOD_ITEM: &str = r#"
[[section.item]]
id = "severity.grade"
label = "重症度"
type = "code"
codes = [ { code = "1", label = "1度" }, { code = "2", label = "2度" } ]
"#;

    #[test]
    fn the_builtin_catalogue_loads_with_shared_sections_around_the_disease() {
        let cat = Catalogue::builtin().expect("built-in catalogue");
        let pd = cat.form("rinko-006").expect("パーキンソン病");
        assert_eq!((pd.kokuji, pd.disease.as_str()), (6, "パーキンソン病"));
        let ids: Vec<&str> = pd.sections.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids.first(), Some(&"application"));
        assert_eq!(ids.last(), Some(&"doctor"));
        assert!(ids.contains(&"severity"));
        for reserved in [
            "application.type",
            "patient.name",
            "patient.name_kana",
            "patient.birth_date",
            "patient.sex",
            "patient.insurer_no",
            "patient.insured_no",
            "doctor.written_date",
        ] {
            assert!(pd.item(reserved).is_some(), "{reserved}");
        }
    }

    #[test]
    fn shared_sections_are_placed_before_and_after() {
        let cat =
            Catalogue::from_texts(&[("c.toml", COMMON), ("d.toml", &disease(GOOD_ITEM))]).unwrap();
        let f = cat.form("d-1").unwrap();
        let ids: Vec<&str> = f.sections.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, ["patient", "severity", "doctor"]);
        assert_eq!(f.item("patient.sex").unwrap().codes.len(), 2);
        assert!(cat.form("c").is_none(), "shared sections are not a form");
    }

    fn load_err(items: &str) -> String {
        Catalogue::from_texts(&[("c.toml", COMMON), ("d.toml", &disease(items))])
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn a_broken_form_file_names_the_file_and_the_item() {
        let e = load_err(
            "[[section.item]]\nid = \"severity.x\"\nlabel = \"x\"\ntype = \"code\"\ncodelist = \"nope\"\n",
        );
        assert!(
            e.contains("d.toml") && e.contains("severity.x") && e.contains("nope"),
            "{e}"
        );
        let e =
            load_err("[[section.item]]\nid = \"patient.name\"\nlabel = \"x\"\ntype = \"text\"\n");
        assert!(e.contains("patient.name") && e.contains("twice"), "{e}");
        let e = load_err("[[section.item]]\nid = \"severity.x\"\nlabel = \"x\"\ntype = \"code\"\n");
        assert!(e.contains("needs codes"), "{e}");
        let e =
            load_err("[[section.item]]\nid = \"severity.x\"\nlabel = \"x\"\ntype = \"colour\"\n");
        assert!(e.contains("d.toml") && e.contains("colour"), "{e}");
        let e = load_err(
            "[[section.item]]\nid = \"severity.x\"\nlabel = \"x\"\ntype = \"integer\"\nmin = 5\nmax = 1\n",
        );
        assert!(e.contains("severity.x") && e.contains("min"), "{e}");
        let e = load_err(
            "[[section.item]]\nid = \"severity.x\"\nlabel = \"x\"\ntype = \"text\"\nwat = 1\n",
        );
        assert!(e.contains("wat"), "{e}");
    }

    #[test]
    fn checks_report_required_and_malformed_items_by_id() {
        let cat =
            Catalogue::from_texts(&[("c.toml", COMMON), ("d.toml", &disease(GOOD_ITEM))]).unwrap();
        let f = cat.form("d-1").unwrap();
        let today = Date::new(2026, 11, 25).unwrap();
        let input = [("severity.grade".to_string(), "３".to_string())].into();
        let values = normalise_input(f, &input).unwrap();
        assert_eq!(values["severity.grade"], "3");
        assert_eq!(check(f, &values, Mode::Draft, today).len(), 1);
        let all = check(f, &values, Mode::Complete, today);
        let items: Vec<&str> = all.iter().map(|m| m.items[0].as_str()).collect();
        assert_eq!(items, ["patient.name", "severity.grade"]);
        assert_eq!(all[0].text, "氏名を入力してください。");
        let unknown = normalise_input(f, &[("x.y".to_string(), "1".to_string())].into());
        assert_eq!(unknown.unwrap_err().items, ["x.y"]);
    }
}
