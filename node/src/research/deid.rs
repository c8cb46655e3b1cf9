//! De-identification: which items leave the hub, in what form, and why (docs/research.md gives
//! the same rules for readers of the files).
//!
//! Everything not kept by [`rule`] is dropped; a new item type is dropped until someone decides
//! otherwise. This module must never pass a value through that a rule did not name.

use std::collections::BTreeMap;

use nsdb_rules::{Date, FormDef, ItemDef, ItemType};

use super::{PatientIdentity, ResearchRecord, Secret, disease_key};
use nsdb_rules::form::JudgmentKind;

/// What happens to one item on its way into research output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemRule {
    /// Written as stored (codes, numbers, year-months).
    Keep,
    /// A date written as its year and month (`YYYY-MM`).
    YearMonth,
    /// Left out, with the reason.
    Drop(&'static str),
}

/// The rule for an item. Order matters: the section rules come before the type rules.
pub fn rule(item: &ItemDef) -> ItemRule {
    if item.id.starts_with("patient.") {
        return ItemRule::Drop(
            "患者欄（氏名・かな・住所・保険・生年月日）: 個人を特定する。年齢・性別・都道府県だけを別の列で出す",
        );
    }
    if item.id.starts_with("doctor.") {
        return ItemRule::Drop(
            "医師・医療機関欄: 医療機関と疾病の組み合わせは患者を絞り込む。都道府県だけを出す",
        );
    }
    match item.ty {
        ItemType::Text => ItemRule::Drop("自由記載: 人名・地名・施設名を含みうる"),
        ItemType::Kana => ItemRule::Drop("カナ: 氏名"),
        ItemType::Postal => ItemRule::Drop("郵便番号: 住所"),
        ItemType::InsurerNo => ItemRule::Drop("保険者番号: 保険から個人をたどれる"),
        ItemType::Digits => ItemRule::Drop("番号（指定医番号など）: 人や機関をたどれる"),
        ItemType::Date => ItemRule::YearMonth,
        ItemType::YearMonth
        | ItemType::Integer
        | ItemType::Decimal
        | ItemType::Code
        | ItemType::Codes => ItemRule::Keep,
    }
}

/// The items of a form that research output keeps, in form order.
pub fn kept_items(form: &FormDef) -> impl Iterator<Item = (&ItemDef, ItemRule)> {
    form.items().filter_map(|i| match rule(i) {
        ItemRule::Drop(_) => None,
        r => Some((i, r)),
    })
}

/// Whole years at `on`, or `None` when the birth date is missing or malformed.
pub fn age_at(birth: Option<&str>, on: Date) -> Option<i64> {
    let birth = Date::parse(birth?.trim())?;
    let age = birth.age_on(on);
    (0..=130).contains(&age).then_some(age as i64)
}

/// Five-year band: `00-04` … `85-89`, `90+`; `不明` without an age.
pub fn age_band(age: Option<i64>) -> String {
    match age {
        None => "不明".into(),
        Some(a) if a >= 90 => "90+".into(),
        Some(a) => {
            let lo = a / 5 * 5;
            format!("{lo:02}-{:02}", lo + 4)
        }
    }
}

/// The 47 都道府県 in JIS X 0401 order (code = index + 1).
pub const PREFECTURES: [&str; 47] = [
    "北海道",
    "青森県",
    "岩手県",
    "宮城県",
    "秋田県",
    "山形県",
    "福島県",
    "茨城県",
    "栃木県",
    "群馬県",
    "埼玉県",
    "千葉県",
    "東京都",
    "神奈川県",
    "新潟県",
    "富山県",
    "石川県",
    "福井県",
    "山梨県",
    "長野県",
    "岐阜県",
    "静岡県",
    "愛知県",
    "三重県",
    "滋賀県",
    "京都府",
    "大阪府",
    "兵庫県",
    "奈良県",
    "和歌山県",
    "鳥取県",
    "島根県",
    "岡山県",
    "広島県",
    "山口県",
    "徳島県",
    "香川県",
    "愛媛県",
    "高知県",
    "福岡県",
    "佐賀県",
    "長崎県",
    "熊本県",
    "大分県",
    "宮崎県",
    "鹿児島県",
    "沖縄県",
];

/// The patient's 都道府県: the prefix of the address when it names one, else the hospital's
/// from the first two digits of its 10-digit 医療機関コード (the 都道府県番号), else `不明`.
pub fn prefecture(address: Option<&str>, institution: &str) -> String {
    if let Some(a) = address.map(str::trim)
        && let Some(p) = PREFECTURES.iter().find(|p| a.starts_with(**p))
    {
        return (*p).to_string();
    }
    if institution.len() == 10
        && institution.bytes().all(|b| b.is_ascii_digit())
        && let Ok(n) = institution[..2].parse::<usize>()
        && (1..=47).contains(&n)
    {
        return PREFECTURES[n - 1].to_string();
    }
    "不明".into()
}

/// 重症度基準 as the municipality's review shows it: the form's severity judgment made by the
/// rules (`nsdb_rules::judgment`, the same machine judgment as 受付一覧 and the 審査 screen, with
/// 記載年月日 as its day). `該当` when the derived outcome meets the criteria (「基準を満たす」),
/// `非該当` when it does not, `未記載` when the items it needs are blank (判定不能), `対象外` when
/// the form judges no severity or names no criterion. Forms whose severity is computed from
/// several items (パーキンソン病: Hoehn-Yahr and 生活機能障害度) are judged like the others.
pub fn severity(form: &FormDef, fields: &BTreeMap<String, String>, written: Date) -> String {
    if !form
        .judgments
        .iter()
        .any(|j| j.kind == JudgmentKind::Severity)
    {
        return "対象外".into();
    }
    let Some(j) = nsdb_rules::judgment(form, fields, written).severity else {
        return "対象外".into();
    };
    match (j.meets_criteria, &j.derived) {
        (Some(true), _) => "該当".into(),
        (Some(false), _) => "非該当".into(),
        (None, None) => "未記載".into(),
        (None, Some(_)) => "対象外".into(),
    }
}

/// One sheet de-identified. `fields` are the document's stored values; `written` is 記載年月日.
pub fn record(
    form: &FormDef,
    sheet_id: &str,
    institution: &str,
    written: Date,
    fields: &BTreeMap<String, String>,
    secret: &Secret,
) -> ResearchRecord {
    let age = age_at(
        fields.get("patient.birth_date").map(String::as_str),
        written,
    );
    let items = kept_items(form)
        .filter_map(|(item, rule)| {
            let v = fields.get(&item.id)?.trim();
            if v.is_empty() {
                return None;
            }
            let v = match rule {
                ItemRule::YearMonth => v.get(..7)?.to_string(),
                _ => v.to_string(),
            };
            Some((item.id.clone(), v))
        })
        .collect();
    ResearchRecord {
        record: secret.record(sheet_id),
        patient: secret.patient(&PatientIdentity::of(sheet_id, fields)),
        year: written.year,
        disease: disease_key(form),
        form_id: form.id.clone(),
        form_version: form.version.clone(),
        age,
        age_band: age_band(age),
        sex: fields
            .get("patient.sex")
            .map(|s| s.trim().to_string())
            .filter(|s| s == "1" || s == "2")
            .unwrap_or_default(),
        prefecture: prefecture(
            fields.get("patient.address").map(String::as_str),
            institution,
        ),
        severity: severity(form, fields, written),
        items,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bands_are_five_years_and_ninety_closes_them() {
        assert_eq!(age_band(Some(0)), "00-04");
        assert_eq!(age_band(Some(44)), "40-44");
        assert_eq!(age_band(Some(45)), "45-49");
        assert_eq!(age_band(Some(93)), "90+");
        assert_eq!(age_band(None), "不明");
    }

    #[test]
    fn age_is_whole_years_on_the_day_written() {
        let on = Date::new(2025, 4, 1).unwrap();
        assert_eq!(age_at(Some("1980-04-02"), on), Some(44));
        assert_eq!(age_at(Some("1980-04-01"), on), Some(45));
        assert_eq!(age_at(Some("昭和55年"), on), None);
    }

    #[test]
    fn prefecture_comes_from_the_address_then_the_hospital_code() {
        assert_eq!(
            prefecture(Some("神奈川県横浜市1-2"), "1399000010"),
            "神奈川県"
        );
        assert_eq!(prefecture(Some("横浜市1-2"), "1399000010"), "東京都");
        assert_eq!(prefecture(None, "mhlw-demo"), "不明");
    }

    /// パーキンソン病's severity is computed from Hoehn-Yahr and 生活機能障害度 (no item states
    /// it): the research column says what the municipality's screen says.
    #[test]
    fn severity_is_the_rules_judgment_the_municipality_sees() {
        let cat = nsdb_rules::Catalogue::builtin().unwrap();
        let form = cat.form("rinko-006").unwrap();
        let on = Date::new(2026, 5, 1).unwrap();
        let sheet = |hy: &str, life: &str| {
            BTreeMap::from([
                ("severity.hoehn_yahr".to_string(), hy.to_string()),
                ("severity.life_function".to_string(), life.to_string()),
            ])
        };
        assert_eq!(severity(form, &sheet("3", "2"), on), "該当");
        assert_eq!(severity(form, &sheet("2", "2"), on), "非該当");
        assert_eq!(severity(form, &sheet("3", "1"), on), "非該当");
        assert_eq!(severity(form, &BTreeMap::new(), on), "未記載");
        // Every form whose severity is judged without a stated item gets 該当 or 非該当 on
        // some sheet (never a fixed 対象外).
        let rinko_002 = cat.form("rinko-002").unwrap();
        assert_ne!(severity(rinko_002, &BTreeMap::new(), on), "対象外");
        let plain = cat
            .forms()
            .into_iter()
            .find(|f| !f.judgments.iter().any(|j| j.kind == JudgmentKind::Severity))
            .unwrap();
        assert_eq!(severity(plain, &BTreeMap::new(), on), "対象外");
    }

    /// The partition key tells 指定難病 from 小児慢性特定疾病: every 医療意見書 is `s` and its
    /// 疾患群・大分類・疾病番号, every 臨床調査個人票 its 告示番号, and one key names one disease.
    #[test]
    fn a_disease_key_names_one_disease_of_one_programme() {
        let cat = nsdb_rules::Catalogue::builtin().unwrap();
        let mut named: BTreeMap<String, (String, nsdb_rules::form::FormKind)> = BTreeMap::new();
        for form in cat.forms() {
            let key = disease_key(form);
            match form.kind {
                nsdb_rules::form::FormKind::Iken => assert!(key.starts_with('s'), "{}", form.id),
                nsdb_rules::form::FormKind::Rinko => {
                    assert!(key.as_bytes()[0].is_ascii_digit(), "{}", form.id)
                }
            }
            if let Some((disease, kind)) = named.get(&key) {
                assert_eq!(
                    (disease, kind),
                    (&form.disease, &form.kind),
                    "{key} is shared by {}",
                    form.id
                );
            }
            named.insert(key, (form.disease.clone(), form.kind));
        }
        assert_eq!(
            disease_key(cat.form("iken-15-02-006").unwrap()),
            "s15_02_006"
        );
        assert_eq!(disease_key(cat.form("rinko-006").unwrap()), "006");
    }

    #[test]
    fn identifying_items_are_dropped_in_every_form() {
        let cat = nsdb_rules::Catalogue::builtin().unwrap();
        for form in cat.forms() {
            for (item, _) in kept_items(form) {
                assert!(
                    !matches!(
                        item.ty,
                        ItemType::Text | ItemType::Kana | ItemType::Postal | ItemType::InsurerNo
                    ),
                    "{} keeps {}",
                    form.id,
                    item.id
                );
                assert!(!item.id.starts_with("patient."), "{}", item.id);
                assert!(!item.id.starts_with("doctor."), "{}", item.id);
            }
        }
    }
}
