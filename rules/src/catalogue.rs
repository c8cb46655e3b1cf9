//! The form catalogue: every form a node can write, composed from the shared sections and each
//! disease's own, and validated as a whole when it loads.
//!
//! Loading is the only place where a form file can be wrong; once a `Catalogue` exists, every
//! form in it is consistent (ids unique, code lists resolved, ranges sane). It must never read
//! files itself: callers hand it the texts (the built-in ones are compiled into the binary).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use crate::CatalogueError;
use crate::calc;
use crate::expr::{self, Compiled, CompiledForm, CondExpr, Scope};
use crate::form::{
    CodeList, FormDef, FormFile, ItemType, Place, RuleDef, ScaleDef, ScaleFile, SectionDef,
};

/// The form files compiled into nsdb, as (file name, text).
const BUILTIN: &[(&str, &str)] = &[
    ("scales.toml", include_str!("../forms/scales.toml")),
    ("diseases.tsv", include_str!("../forms/diseases.tsv")),
    (
        "rinko_common.toml",
        include_str!("../forms/rinko_common.toml"),
    ),
    ("rinko_002.toml", include_str!("../forms/rinko_002.toml")),
    ("rinko_006.toml", include_str!("../forms/rinko_006.toml")),
    ("rinko_011.toml", include_str!("../forms/rinko_011.toml")),
    ("rinko_013.toml", include_str!("../forms/rinko_013.toml")),
    ("rinko_017.toml", include_str!("../forms/rinko_017.toml")),
    ("rinko_018.toml", include_str!("../forms/rinko_018.toml")),
    ("rinko_022.toml", include_str!("../forms/rinko_022.toml")),
    ("rinko_049.toml", include_str!("../forms/rinko_049.toml")),
    ("rinko_051.toml", include_str!("../forms/rinko_051.toml")),
    ("rinko_052.toml", include_str!("../forms/rinko_052.toml")),
    ("rinko_053.toml", include_str!("../forms/rinko_053.toml")),
    ("rinko_056.toml", include_str!("../forms/rinko_056.toml")),
    ("rinko_057.toml", include_str!("../forms/rinko_057.toml")),
    ("rinko_063.toml", include_str!("../forms/rinko_063.toml")),
    ("rinko_066.toml", include_str!("../forms/rinko_066.toml")),
    ("rinko_067.toml", include_str!("../forms/rinko_067.toml")),
    ("rinko_069.toml", include_str!("../forms/rinko_069.toml")),
    ("rinko_071.toml", include_str!("../forms/rinko_071.toml")),
    ("rinko_072.toml", include_str!("../forms/rinko_072.toml")),
    ("rinko_073.toml", include_str!("../forms/rinko_073.toml")),
    ("rinko_074.toml", include_str!("../forms/rinko_074.toml")),
    ("rinko_075.toml", include_str!("../forms/rinko_075.toml")),
    ("rinko_076.toml", include_str!("../forms/rinko_076.toml")),
    ("rinko_077.toml", include_str!("../forms/rinko_077.toml")),
    ("rinko_078.toml", include_str!("../forms/rinko_078.toml")),
    ("rinko_084.toml", include_str!("../forms/rinko_084.toml")),
    ("rinko_085.toml", include_str!("../forms/rinko_085.toml")),
    ("rinko_090.toml", include_str!("../forms/rinko_090.toml")),
    ("rinko_093.toml", include_str!("../forms/rinko_093.toml")),
    ("rinko_096.toml", include_str!("../forms/rinko_096.toml")),
    ("rinko_097.toml", include_str!("../forms/rinko_097.toml")),
    ("rinko_113.toml", include_str!("../forms/rinko_113.toml")),
    ("rinko_222.toml", include_str!("../forms/rinko_222.toml")),
    ("rinko_306.toml", include_str!("../forms/rinko_306.toml")),
    (
        "iken_common.toml",
        include_str!("../forms/iken_common.toml"),
    ),
    (
        "iken_03_02_002.toml",
        include_str!("../forms/iken_03_02_002.toml"),
    ),
    (
        "iken_05_04_006.toml",
        include_str!("../forms/iken_05_04_006.toml"),
    ),
    (
        "iken_12_04_014.toml",
        include_str!("../forms/iken_12_04_014.toml"),
    ),
    (
        "iken_12_04_015.toml",
        include_str!("../forms/iken_12_04_015.toml"),
    ),
];

/// The version of the built-in catalogue: the crate version, marked as built in.
pub const BUILTIN_VERSION: &str = concat!("builtin-", env!("CARGO_PKG_VERSION"));

/// A rule-pack version as people read it on screen: a signed pack's version as it is
/// (`2026.04-1`), the catalogue built into nsdb as 「組み込み 0.1.0」 rather than its id.
pub fn version_label(version: &str) -> String {
    match version.strip_prefix("builtin-") {
        Some(v) => format!("組み込み {v}"),
        None => version.to_string(),
    }
}

/// The built-in form files, as (file name, text), e.g. to put them in a rule pack.
pub fn builtin_files() -> &'static [(&'static str, &'static str)] {
    BUILTIN
}

/// How many 指定難病 recipients the machine-judged forms cover (patients as each criteria text
/// states them; diseases whose text states none count as 0).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct JudgedShare {
    pub judged: u64,
    pub total: u64,
    /// The machine-judged 臨個票 forms, by id.
    pub judged_forms: Vec<String>,
}

impl JudgedShare {
    /// `judged / total` as a percentage (0 when nothing is known).
    pub fn percent(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.judged as f64 * 100.0 / self.total as f64
        }
    }
}

/// The loaded, validated set of forms.
#[derive(Debug, Clone)]
pub struct Catalogue {
    forms: BTreeMap<String, FormDef>,
    scales: BTreeMap<String, ScaleDef>,
    diseases: Vec<crate::diseases::Disease>,
    info: crate::pack::PackInfo,
}

impl Catalogue {
    /// The catalogue compiled into this build.
    pub fn builtin() -> Result<Catalogue, CatalogueError> {
        Catalogue::from_texts(BUILTIN)
    }

    /// Builds a catalogue from form files given as (file name, text).
    pub fn from_texts(files: &[(&str, &str)]) -> Result<Catalogue, CatalogueError> {
        let mut parsed = Vec::with_capacity(files.len());
        let mut scales: BTreeMap<String, ScaleDef> = BTreeMap::new();
        let mut diseases = Vec::new();
        for (name, text) in files {
            if crate::diseases::is_disease_list(name) {
                diseases.extend(crate::diseases::parse(name, text)?);
                continue;
            }
            if ScaleFile::is_scale_file(name) {
                for (id, scale) in ScaleFile::parse(name, text)?.scale {
                    if scales.insert(id.clone(), scale).is_some() {
                        return Err(CatalogueError::Invalid {
                            file: name.to_string(),
                            item: None,
                            message: format!("尺度 {id:?} が2回定義されています。"),
                        });
                    }
                }
                check_scales(name, &mut scales)?;
                continue;
            }
            parsed.push((name.to_string(), FormFile::parse(name, text)?));
        }
        // Every listed disease without its own form file gets one of level 記載のみ.
        let own: HashSet<String> = parsed.iter().map(|(_, f)| f.form.id.clone()).collect();
        for d in diseases.iter().filter(|d| !own.contains(&d.id)) {
            parsed.push((
                crate::diseases::FILE.to_string(),
                crate::diseases::form_file(d),
            ));
        }
        let mut cat = Catalogue::compose(parsed, scales)?;
        cat.diseases = diseases;
        Ok(cat)
    }

    fn compose(
        files: Vec<(String, FormFile)>,
        scales: BTreeMap<String, ScaleDef>,
    ) -> Result<Catalogue, CatalogueError> {
        let mut codelists: BTreeMap<String, CodeList> = scales
            .iter()
            .filter(|(_, s)| !s.codes.is_empty())
            .map(|(id, s)| {
                (
                    id.clone(),
                    CodeList {
                        codes: s.codes.clone(),
                    },
                )
            })
            .collect();
        let mut seen_forms = HashSet::new();
        for (name, f) in &files {
            if !seen_forms.insert(f.form.id.clone()) {
                return Err(CatalogueError::Invalid {
                    file: name.clone(),
                    item: None,
                    message: format!("様式ID {:?} が2回定義されています。", f.form.id),
                });
            }
            for (id, list) in &f.codelist {
                if codelists.insert(id.clone(), list.clone()).is_some() {
                    return Err(CatalogueError::Invalid {
                        file: name.clone(),
                        item: None,
                        message: format!("コード表 {id:?} が2回定義されています。"),
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
        // One expression environment and one parse of each expression for the whole catalogue.
        let env = expr::env();
        let parsed = expr::Parsed::default();
        for (name, f) in files.iter().filter(|(_, f)| f.form.kokuji.is_some()) {
            let h = &f.form;
            let invalid = |item: Option<&str>, message: String| CatalogueError::Invalid {
                file: name.clone(),
                item: item.map(str::to_string),
                message,
            };
            let disease = h.disease.clone().ok_or_else(|| {
                invalid(
                    None,
                    "疾病の様式には `disease`（疾病名）が必要です。".into(),
                )
            })?;
            if let Some(s) = h.scales.iter().find(|s| !scales.contains_key(*s)) {
                return Err(invalid(
                    None,
                    format!(
                        "未定義の尺度 {s:?} を引用しています（尺度は scales.toml で定義します）。"
                    ),
                ));
            }
            let mut sections = Vec::new();
            let mut after = Vec::new();
            // (file, rule) of the shared rules first, then the form's own.
            let mut rules: Vec<(String, RuleDef)> = Vec::new();
            // Which file each section came from, for messages.
            let mut section_file: HashMap<String, String> = HashMap::new();
            if let Some(common_id) = &h.common {
                let (_, common) = commons.get(common_id.as_str()).ok_or_else(|| {
                    invalid(None, format!("共通部分 {common_id:?} がありません。"))
                })?;
                if common.form.kind != h.kind {
                    return Err(invalid(
                        None,
                        format!("共通部分 {common_id:?} は別の種類の様式のものです。"),
                    ));
                }
                let (common_file, _) = commons[common_id.as_str()];
                rules.extend(
                    common
                        .rules
                        .iter()
                        .map(|r| (common_file.clone(), r.clone())),
                );
                for s in &common.sections {
                    section_file.insert(s.id.clone(), common_file.clone());
                    match s.place {
                        Place::Before => sections.push(s.clone()),
                        Place::After => after.push(s.clone()),
                    }
                }
            }
            sections.extend(f.sections.iter().cloned());
            sections.extend(after);
            rules.extend(f.rules.iter().map(|r| (name.clone(), r.clone())));

            let mut ids = HashSet::new();
            for section in &mut sections {
                for item in &mut section.items {
                    if !ids.insert(item.id.clone()) {
                        return Err(invalid(
                            Some(&item.id),
                            "この項目IDは様式内で2回使われています。".into(),
                        ));
                    }
                    if let Some(list) = &item.codelist {
                        let list = codelists.get(list).ok_or_else(|| {
                            invalid(Some(&item.id), format!("コード表 {list:?} がありません。"))
                        })?;
                        if !item.codes.is_empty() {
                            return Err(invalid(
                                Some(&item.id),
                                "`codelist` と `codes` はどちらか一方だけを書いてください。".into(),
                            ));
                        }
                        item.codes = list.codes.clone();
                    }
                    let is_code = matches!(item.ty, ItemType::Code | ItemType::Codes);
                    if is_code && item.codes.is_empty() {
                        return Err(invalid(
                            Some(&item.id),
                            "コード項目には選択肢（codes）が必要です。".into(),
                        ));
                    }
                    if !is_code && !item.codes.is_empty() {
                        return Err(invalid(
                            Some(&item.id),
                            "選択肢（codes）を持てるのはコード項目だけです。".into(),
                        ));
                    }
                    let mut codes = HashSet::new();
                    for c in &item.codes {
                        if !codes.insert(&c.code) {
                            return Err(invalid(
                                Some(&item.id),
                                format!("コード {:?} が2回出てきます。", c.code),
                            ));
                        }
                        if is_code && item.ty == ItemType::Codes && c.code.contains(',') {
                            return Err(invalid(
                                Some(&item.id),
                                format!("コード {:?} にカンマは使えません。", c.code),
                            ));
                        }
                    }
                    if (item.step.is_some() || !item.exclude.is_empty())
                        && !matches!(item.ty, ItemType::Integer | ItemType::Decimal)
                    {
                        return Err(invalid(
                            Some(&item.id),
                            "step と exclude は数値の項目（integer, decimal）にだけ書けます。"
                                .into(),
                        ));
                    }
                    if item
                        .step
                        .is_some_and(|s| s.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater))
                    {
                        return Err(invalid(
                            Some(&item.id),
                            "step は正の数にしてください。".into(),
                        ));
                    }
                    if let (Some(min), Some(max)) = (item.min, item.max)
                        && min > max
                    {
                        return Err(invalid(
                            Some(&item.id),
                            format!("min {min} が max {max} より大きくなっています。"),
                        ));
                    }
                }
            }
            for m in &f.migrations {
                let find = |id: &str| {
                    sections
                        .iter()
                        .flat_map(|s| s.items.iter())
                        .find(|i| i.id == id)
                };
                if let Some(new) = m.items.values().find(|n| find(n).is_none()) {
                    return Err(invalid(
                        Some(new),
                        format!(
                            "migrate from {:?} maps to an item this form does not have",
                            m.from
                        ),
                    ));
                }
                for (item, map) in &m.codes {
                    let Some(def) = find(item) else {
                        return Err(invalid(
                            Some(item),
                            format!(
                                "migrate from {:?} recodes an item this form does not have",
                                m.from
                            ),
                        ));
                    };
                    if let Some(c) = map
                        .values()
                        .find(|c| !c.is_empty() && def.code_label(c).is_none())
                    {
                        return Err(invalid(
                            Some(item),
                            format!(
                                "migrate from {:?} maps to code {c:?}, which is not in the item's code list",
                                m.from
                            ),
                        ));
                    }
                }
            }
            let compiled =
                compile_form(name, &sections, &section_file, &rules, f, (&env, &parsed))?;
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
                    file: name.clone(),
                    unverified: h.unverified.clone(),
                    scales: h.scales.clone(),
                    rules: rules.into_iter().map(|(_, r)| r).collect(),
                    judgments: f.judgments.clone(),
                    migrations: f.migrations.clone(),
                    compiled,
                },
            );
        }
        Ok(Catalogue {
            forms,
            scales,
            diseases: Vec::new(),
            info: crate::pack::PackInfo::builtin(),
        })
    }

    /// The version and signer of this catalogue (shown on screen, written into files).
    pub fn info(&self) -> &crate::pack::PackInfo {
        &self.info
    }

    /// The catalogue's version.
    pub fn version(&self) -> &str {
        &self.info.version
    }

    /// The version to print on paper (帳票の「判定規則」): a signed ministry pack's version;
    /// `None` for the catalogue built into nsdb, whose `builtin-…` id means nothing to the
    /// people who read prints.
    pub fn printed_version(&self) -> Option<&str> {
        self.info
            .signer
            .as_ref()
            .map(|_| self.info.version.as_str())
    }

    pub(crate) fn with_info(mut self, info: crate::pack::PackInfo) -> Catalogue {
        self.info = info;
        self
    }

    /// The shared severity scales, by id (`mrs`, `nyha`, `barthel`, `barthel.eating`…).
    pub fn scales(&self) -> &BTreeMap<String, ScaleDef> {
        &self.scales
    }

    /// The forms citing a scale, in catalogue order.
    pub fn forms_citing(&self, scale: &str) -> Vec<&FormDef> {
        self.forms()
            .into_iter()
            .filter(|f| f.scales.iter().any(|s| s == scale))
            .collect()
    }

    pub fn form(&self, id: &str) -> Option<&FormDef> {
        self.forms.get(id)
    }

    /// A form by `id@version` (or plain id); `None` when the catalogue holds another version.
    pub fn form_versioned(&self, versioned: &str) -> Option<&FormDef> {
        match versioned.split_once('@') {
            Some((id, version)) => self.form(id).filter(|f| f.version == version),
            None => self.form(versioned),
        }
    }

    /// Every form, ordered by kind, then 告示番号 and 枝番 (臨個票) or 疾患群 and number (意見書,
    /// by id).
    pub fn forms(&self) -> Vec<&FormDef> {
        let mut v: Vec<_> = self.forms.values().collect();
        v.sort_by(|a, b| {
            (a.kind as u8).cmp(&(b.kind as u8)).then(match a.kind {
                crate::FormKind::Rinko => (a.kokuji, a.eda).cmp(&(b.kokuji, b.eda)),
                crate::FormKind::Iken => a.id.cmp(&b.id),
            })
        });
        v
    }

    /// The 指定難病 recipients covered by machine judgment (for `nsdb rules list --judged`): the
    /// patients each criteria text states, summed over the forms of level 機械判定, against all.
    /// A figure several diseases of one group state alike (the texts of 下垂体疾患 072–078 each
    /// give 17,069, the group's recipients) is counted once, split evenly among them. Only exact
    /// figures count as shared: a round estimate (a multiple of 100, such as 約100人) repeated in
    /// a group is taken as each disease's own.
    pub fn judged_share(&self) -> JudgedShare {
        let rinko: Vec<&crate::diseases::Disease> = self
            .diseases
            .iter()
            .filter(|d| d.kind == crate::FormKind::Rinko)
            .collect();
        let mut sharing: BTreeMap<(&str, u32), Vec<usize>> = BTreeMap::new();
        for (i, d) in rinko.iter().enumerate() {
            if let Some(p) = d.patients.filter(|p| p % 100 != 0) {
                sharing.entry((d.group.as_str(), p)).or_default().push(i);
            }
        }
        let mut part = vec![0u64; rinko.len()];
        for (i, d) in rinko.iter().enumerate() {
            part[i] = u64::from(d.patients.unwrap_or(0));
        }
        for ((_, patients), members) in &sharing {
            let k = members.len() as u64;
            for (nth, &i) in members.iter().enumerate() {
                let extra = u64::from((nth as u64) < u64::from(*patients) % k);
                part[i] = u64::from(*patients) / k + extra;
            }
        }
        let mut share = JudgedShare::default();
        for (i, d) in rinko.iter().enumerate() {
            let n = part[i];
            share.total += n;
            if self
                .form(&d.id)
                .is_some_and(|f| f.level() == crate::FormLevel::MachineJudged)
            {
                share.judged += n;
                share.judged_forms.push(d.id.clone());
            }
        }
        share
    }

    /// Every disease of both programmes, for the picker (`Disease::matches` searches name,
    /// synonym and number); each has a form of the same id.
    pub fn diseases(&self) -> &[crate::diseases::Disease] {
        &self.diseases
    }
}

/// Checks the scales of one file: each has codes or parts (not both), parts exist and have codes,
/// a part without sources takes its group's.
fn check_scales(file: &str, scales: &mut BTreeMap<String, ScaleDef>) -> Result<(), CatalogueError> {
    let invalid = |id: &str, message: String| CatalogueError::Invalid {
        file: file.to_string(),
        item: Some(format!("scale {id}")),
        message,
    };
    let groups: Vec<(String, Vec<String>, Vec<String>)> = scales
        .iter()
        .filter(|(_, s)| !s.parts.is_empty())
        .map(|(id, s)| (id.clone(), s.parts.clone(), s.sources.clone()))
        .collect();
    for (id, s) in scales.iter() {
        if s.codes.is_empty() == s.parts.is_empty() {
            return Err(invalid(
                id,
                "尺度には `codes` か `parts` のどちらかが必要です。".into(),
            ));
        }
        let mut seen = HashSet::new();
        if let Some(c) = s.codes.iter().find(|c| !seen.insert(&c.code)) {
            return Err(invalid(
                id,
                format!("コード {:?} が2回出てきます。", c.code),
            ));
        }
    }
    for (id, parts, sources) in groups {
        for p in &parts {
            match scales.get_mut(p) {
                Some(part) if !part.codes.is_empty() => {
                    if part.sources.is_empty() {
                        part.sources = sources.clone();
                    }
                }
                _ => {
                    return Err(invalid(
                        &id,
                        format!("部分 {p:?} は選択肢を持つ尺度ではありません。"),
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Compiles and checks every expression and reference of one composed form.
fn compile_form(
    file: &str,
    sections: &[SectionDef],
    section_file: &HashMap<String, String>,
    rules: &[(String, RuleDef)],
    f: &FormFile,
    (env, parsed): (&std::sync::Arc<cel::Env>, &expr::Parsed),
) -> Result<Compiled, CatalogueError> {
    let items: HashMap<String, ItemType> = sections
        .iter()
        .flat_map(|s| s.items.iter().map(|i| (i.id.clone(), i.ty)))
        .collect();
    let section_ids: BTreeSet<String> = sections.iter().map(|s| s.id.clone()).collect();
    let mut out = CompiledForm {
        env: std::sync::Arc::clone(env),
        ..Default::default()
    };
    let mut used: BTreeSet<String> = BTreeSet::new();
    let invalid = |file: &str, item: &str, message: String| CatalogueError::Invalid {
        file: file.to_string(),
        item: Some(item.to_string()),
        message,
    };
    for section in sections {
        let sfile = section_file
            .get(&section.id)
            .map(String::as_str)
            .unwrap_or(file);
        let scope = Scope {
            file: sfile,
            items: &items,
            sections: &section_ids,
            parsed,
        };
        for item in &section.items {
            if !item.id.starts_with(&format!("{}.", section.id)) {
                return Err(invalid(
                    sfile,
                    &item.id,
                    format!(
                        "節 {:?} の項目IDは {}.… としてください。",
                        section.id, section.id
                    ),
                ));
            }
            if let Some(c) = &item.required_if {
                let e = scope.compile(&item.id, &c.expr)?;
                used.extend(e.items.iter().cloned());
                out.required_if.insert(item.id.clone(), e);
            }
            if let Some(other) = &item.not_before {
                let ok = matches!(items.get(other), Some(ItemType::Date | ItemType::YearMonth));
                if !ok || !matches!(item.ty, ItemType::Date | ItemType::YearMonth) {
                    return Err(invalid(
                        sfile,
                        &item.id,
                        format!(
                            "not_before names {other:?}, which is not a date item of this form (or this item is not a date)"
                        ),
                    ));
                }
            }
            if let Some(c) = &item.calc {
                match (&c.expr, &c.builtin) {
                    (Some(src), None) => {
                        if !matches!(item.ty, ItemType::Integer | ItemType::Decimal) {
                            return Err(invalid(sfile, &item.id, "計算式の結果は数値です。項目の型を integer か decimal にしてください。".into()));
                        }
                        let e = scope.compile(&item.id, src)?;
                        used.extend(e.items.iter().cloned());
                        out.calcs.insert(item.id.clone(), e);
                    }
                    (None, Some(name)) => {
                        let Some((_, n, what)) = calc::BUILTINS.iter().find(|(b, _, _)| b == name)
                        else {
                            let known: Vec<&str> = calc::BUILTINS.iter().map(|b| b.0).collect();
                            return Err(invalid(
                                sfile,
                                &item.id,
                                format!(
                                    "組み込み計算 {name:?} はありません（あるもの: {}）。",
                                    known.join(", ")
                                ),
                            ));
                        };
                        if (*n == 0 && c.args.is_empty()) || (*n > 0 && c.args.len() != *n) {
                            return Err(invalid(
                                sfile,
                                &item.id,
                                format!(
                                    "{name} の引数は{n}項目（{what}）です（{}項目が書かれています）。",
                                    c.args.len()
                                ),
                            ));
                        }
                        if let Some(a) = c.args.iter().find(|a| !items.contains_key(*a)) {
                            return Err(invalid(
                                sfile,
                                &item.id,
                                format!("{name} が未定義の項目 {a:?} を参照しています。"),
                            ));
                        }
                        if name == "points"
                            && let Some(a) = c.args.iter().find(|a| {
                                !sections.iter().flat_map(|s| s.items.iter()).any(|i| {
                                    &i.id == *a
                                        && i.ty == ItemType::Code
                                        && !i.codes.is_empty()
                                        && i.codes.iter().all(|c| c.points.is_some())
                                })
                            })
                        {
                            return Err(invalid(
                                sfile,
                                &item.id,
                                format!(
                                    "points はすべての選択肢に点数（points）のあるコード項目の点数を足します。{a:?} はそうではありません。"
                                ),
                            ));
                        }
                        if !calc::builtin_fits(name, item.ty) {
                            return Err(invalid(
                                sfile,
                                &item.id,
                                format!("{name} の結果はこの項目の型の値になりません。"),
                            ));
                        }
                    }
                    _ => {
                        return Err(invalid(
                            sfile,
                            &item.id,
                            "calc には `expr` か `builtin` のどちらか一方だけが必要です。".into(),
                        ));
                    }
                }
            }
        }
    }
    for (rfile, rule) in rules {
        let scope = Scope {
            file: rfile,
            items: &items,
            sections: &section_ids,
            parsed,
        };
        let e = scope.compile(&format!("rule {}", rule.id), &rule.when)?;
        if let Some(i) = rule.items.iter().find(|i| !items.contains_key(*i)) {
            return Err(invalid(
                rfile,
                &format!("rule {}", rule.id),
                format!("未定義の項目 {i:?} を挙げています。"),
            ));
        }
        used.extend(e.items.iter().cloned());
        out.rules.push(e);
    }
    let scope = Scope {
        file,
        items: &items,
        sections: &section_ids,
        parsed,
    };
    for j in &f.judgments {
        let place = j
            .item
            .clone()
            .unwrap_or_else(|| format!("judgment {}", j.title));
        let judged = match &j.item {
            Some(id) => {
                let item = sections
                    .iter()
                    .flat_map(|s| s.items.iter())
                    .find(|i| &i.id == id)
                    .ok_or_else(|| {
                        invalid(
                            file,
                            &place,
                            format!("判定 {:?} が未定義の項目 {id:?} を挙げています。", j.title),
                        )
                    })?;
                if item.ty != ItemType::Code {
                    return Err(invalid(
                        file,
                        &place,
                        "判定の対象項目はコード項目でなければなりません。".into(),
                    ));
                }
                Some(item)
            }
            None => None,
        };
        if let Some(hc) = &j.high_cost
            && items.get(hc) != Some(&ItemType::Integer)
        {
            return Err(invalid(
                file,
                &place,
                format!("high_cost の {hc:?} はこの様式の整数項目ではありません。"),
            ));
        }
        let mut keys = Vec::new();
        let mut outcomes = Vec::new();
        for o in &j.outcomes {
            match (judged, &o.code) {
                (Some(item), Some(code)) if item.code_label(code).is_none() => {
                    return Err(invalid(
                        file,
                        &place,
                        format!("判定結果のコード {code:?} が項目の選択肢にありません。"),
                    ));
                }
                (None, Some(_)) => {
                    return Err(invalid(
                        file,
                        &place,
                        "判定結果にコードがありますが、判定が項目を挙げていません。".into(),
                    ));
                }
                (_, None) if o.label.is_none() => {
                    return Err(invalid(
                        file,
                        &place,
                        "判定結果には code か label が必要です。".into(),
                    ));
                }
                _ => {}
            }
            keys.push(
                o.code
                    .clone()
                    .or_else(|| o.label.clone())
                    .unwrap_or_default(),
            );
            let mut conds = Vec::new();
            for c in &o.conditions {
                let cond = match (c.expr.is_empty(), c.count.is_empty(), c.at_least) {
                    (false, true, None) => {
                        let e = scope.compile(&place, &c.expr)?;
                        used.extend(e.items.iter().cloned());
                        CondExpr::One(e)
                    }
                    (true, false, Some(n)) if n >= 1 && n <= c.count.len() => {
                        let mut members = Vec::new();
                        for m in &c.count {
                            let e = scope.compile(&place, m)?;
                            used.extend(e.items.iter().cloned());
                            members.push(e);
                        }
                        CondExpr::Count {
                            members,
                            at_least: n,
                        }
                    }
                    _ => {
                        return Err(invalid(
                            file,
                            &place,
                            format!(
                                "条件 {:?} には `expr` か、`count` と 1以上で数える条件の数以下の `at_least` が必要です。",
                                c.text
                            ),
                        ));
                    }
                };
                conds.push(cond);
            }
            outcomes.push(conds);
        }
        if let Some(c) = j
            .doctor_only
            .iter()
            .find(|c| judged.is_none_or(|i| i.code_label(c).is_none()))
        {
            return Err(invalid(
                file,
                &place,
                format!("doctor_only のコード {c:?} が判定項目の選択肢にありません。"),
            ));
        }
        if let Some(t) = j.target.iter().find(|t| !keys.contains(t)) {
            return Err(invalid(
                file,
                &place,
                format!("target の {t:?} は判定結果のいずれでもありません。"),
            ));
        }
        out.judgments.push(outcomes);
    }
    for id in used {
        if let (Some((section, field)), Some(ty)) = (id.split_once('.'), items.get(&id)) {
            out.bound.entry(section.to_string()).or_default().push((
                field.to_string(),
                id.clone(),
                *ty,
            ));
        }
    }
    Ok(Compiled(Arc::new(out)))
}

/// Whether a source URL is on an official host: the ministry and other government bodies
/// (`*.go.jp`, `*.lg.jp`), prefectures and cities under the domains Japan reserves for local
/// government (`pref.*.jp`, `city.*.jp`), 難病情報センター (`nanbyou.or.jp`), 小児慢性特定疾病
/// 情報センター (`shouman.jp`) and NANDO (`nanbyodata.jp`); the licence NANDO's attribution
/// names (`creativecommons.org/licenses/`). A text that is not an `http(s)` URL (a `file:`
/// reference to the shared NANDO data) is not a URL and passes.
pub fn official_source(url: &str) -> bool {
    let Some(rest) = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
    else {
        return true;
    };
    let host = rest
        .split(['/', '?', '#'])
        .next()
        .unwrap_or("")
        .to_ascii_lowercase();
    let host = host.split(':').next().unwrap_or("");
    if host.ends_with(".go.jp") || host.ends_with(".lg.jp") {
        return true;
    }
    if host == "creativecommons.org" && rest[host.len()..].starts_with("/licenses/") {
        return true;
    }
    if ["nanbyou.or.jp", "shouman.jp", "nanbyodata.jp"]
        .iter()
        .any(|h| host == *h || host.ends_with(&format!(".{h}")))
    {
        return true;
    }
    let labels: Vec<&str> = host.split('.').collect();
    labels.len() >= 3
        && labels.last() == Some(&"jp")
        && labels[..labels.len() - 2]
            .iter()
            .any(|l| *l == "pref" || *l == "city")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every URL the catalogue cites (forms, shared scales, the disease list) is an official
    /// one: no copy on a third-party or spam site reaches a research group's data dictionary.
    #[test]
    fn every_source_url_is_on_an_official_host() {
        let cat = Catalogue::builtin().unwrap();
        let urls = |text: &str| -> Vec<String> {
            text.split(|c: char| c.is_whitespace() || c == '"')
                .filter_map(|w| w.find("http").map(|i| w[i..].to_string()))
                .filter(|w| w.starts_with("http://") || w.starts_with("https://"))
                .collect()
        };
        let mut bad = Vec::new();
        for f in cat.forms() {
            for s in &f.sources {
                bad.extend(
                    urls(s)
                        .into_iter()
                        .filter(|u| !official_source(u))
                        .map(|u| format!("{}: {u}", f.id)),
                );
            }
        }
        for (id, scale) in cat.scales() {
            for s in &scale.sources {
                bad.extend(
                    urls(s)
                        .into_iter()
                        .filter(|u| !official_source(u))
                        .map(|u| format!("scale {id}: {u}")),
                );
            }
        }
        for d in cat.diseases() {
            bad.extend(
                urls(&d.source)
                    .into_iter()
                    .filter(|u| !official_source(u))
                    .map(|u| format!("{}: {u}", d.id)),
            );
        }
        assert!(bad.is_empty(), "non-official sources: {bad:#?}");
        // The check itself: the hosts the trial found are refused, official ones pass.
        for spam in [
            "https://lunomusy.com.tr/-/hpo/wwwtk-f1os7.video",
            "https://wic-net.com/material/document/2363/25",
            "https://www.mhlw.go.jp.evil.example/x",
            "https://pref.example.com/x",
        ] {
            assert!(!official_source(spam), "{spam}");
        }
        for ok in [
            "https://www.mhlw.go.jp/stf/newpage_25626.html",
            "https://www.nanbyou.or.jp/entry/252",
            "https://www.shouman.jp/disease/instructions/12_04_014/",
            "https://www.pref.shimane.lg.jp/x",
            "http://www.pref.aichi.jp/x",
            "https://faq.city.kochi.kochi.jp/x",
            "file:/work/shared/data/nando/criteria/011.txt",
        ] {
            assert!(official_source(ok), "{ok}");
        }
    }
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
        assert!(
            e.contains("patient.name") && e.contains("2回使われています"),
            "{e}"
        );
        let e = load_err("[[section.item]]\nid = \"severity.x\"\nlabel = \"x\"\ntype = \"code\"\n");
        assert!(e.contains("選択肢（codes）が必要です"), "{e}");
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
        assert!(
            e.contains("wat") && e.contains("行") && e.contains("列目"),
            "{e}"
        );
        let e = load_err(
            "[[section.item]]\nid = \"severity.x\"\nlabel = \"x\"\ntype = \"text\"\nstep = 0.5\n",
        );
        assert!(e.contains("severity.x") && e.contains("step"), "{e}");
        let e = load_err(
            "[[section.item]]\nid = \"severity.x\"\nlabel = \"x\"\ntype = \"decimal\"\nstep = 0\n",
        );
        assert!(e.contains("step は正の数"), "{e}");
    }

    #[test]
    fn a_broken_expression_or_unknown_reference_names_file_item_and_position() {
        let e = load_err(&format!(
            "{GOOD_ITEM}required_if = {{ expr = \"patient.sex == \", text = \"x\" }}\n"
        ));
        assert!(
            e.contains("d.toml") && e.contains("severity.grade") && e.contains("列目"),
            "{e}"
        );
        let e = load_err(&format!(
            "{GOOD_ITEM}required_if = {{ expr = \"patient.shoe == '1'\", text = \"x\" }}\n"
        ));
        assert!(
            e.contains("severity.grade") && e.contains("patient.shoe") && e.contains("（1列目）"),
            "{e}"
        );
        let e = load_err(&format!(
            "{GOOD_ITEM}calc = {{ builtin = \"bmi\", args = [\"patient.height\", \"patient.name\"] }}\n"
        ));
        assert!(
            e.contains("severity.grade") && e.contains("patient.height"),
            "{e}"
        );
        let judged = format!(
            "{GOOD_ITEM}\n[[judgment]]\nkind = \"severity\"\ntitle = \"t\"\nitem = \"severity.grade\"\n[[judgment.outcome]]\ncode = \"9\"\n"
        );
        let e = load_err(&judged);
        assert!(e.contains("severity.grade") && e.contains("\"9\""), "{e}");
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
