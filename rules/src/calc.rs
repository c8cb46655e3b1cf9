//! Auto-calculation (自動計算): the built-in formulas a form can name (BMI, 肥満度, eGFR…) and
//! the rounding of every calculated value.
//!
//! Formulas take plain numbers and dates and return a number or a code; each cites where it
//! comes from. They must never guess: outside a formula's stated range (an age the 肥満度 tables
//! do not cover, a height outside the infant formula) the result is "not calculated", not an
//! extrapolation.

use crate::form::ItemType;
use crate::value::Date;

/// The built-in formulas and the number of items each takes.
pub const BUILTINS: &[(&str, usize, &str)] = &[
    ("bmi", 2, "身長(cm), 体重(kg)"),
    ("bmi_class", 1, "BMI"),
    (
        "obesity_degree",
        5,
        "性別, 生年月日, 測定日, 身長(cm), 体重(kg) — 幼児は乳幼児身体発育評価マニュアル(平成24年)の式",
    ),
    (
        "obesity_degree_2023",
        5,
        "性別, 生年月日, 測定日, 身長(cm), 体重(kg) — 幼児は令和5年乳幼児身体発育調査の式",
    ),
    ("obesity_class", 3, "肥満度(%), 生年月日, 測定日"),
    (
        "egfr_jp",
        4,
        "血清クレアチニン(mg/dL), 生年月日, 検査日, 性別",
    ),
    ("age", 2, "生年月日, 基準日"),
    (
        "points",
        0,
        "得点のある選択肢の項目(いくつでも; 尺度の合計)",
    ),
    ("ckd_gfr_stage", 1, "eGFR(mL/分/1.73㎡) — GFR区分 G1〜G5"),
    (
        "ckd_heatmap",
        2,
        "eGFR(mL/分/1.73㎡), 尿蛋白/Cr比(g/gCr) — CKD重症度分類ヒートマップの色",
    ),
    ("child_pugh_class", 1, "Child-Pugh合計スコア — クラスA〜C"),
];

/// A calculated value before formatting.
#[derive(Debug, Clone, PartialEq)]
pub enum Calculated {
    Number(f64),
    Code(&'static str),
}

/// Rounds half away from zero to `places` decimals and writes it with exactly that many.
pub fn format_number(v: f64, places: u8) -> String {
    let f = 10f64.powi(places as i32);
    let r = (v * f).round() / f;
    let r = if r == 0.0 { 0.0 } else { r }; // no "-0.0"
    format!("{r:.*}", places as usize)
}

/// The heights (cm) a calculation accepts: outside, the value is almost surely a unit slip (a
/// height typed in metres, 1.70) and nothing is calculated. A plausibility bound of the engine,
/// not a medical rule.
pub const PLAUSIBLE_HEIGHT_CM: std::ops::RangeInclusive<f64> = 30.0..=250.0;
/// The weights (kg) a calculation accepts (a weight typed in grams is refused).
pub const PLAUSIBLE_WEIGHT_KG: std::ops::RangeInclusive<f64> = 0.5..=400.0;
/// The serum creatinine values (mg/dL) eGFR accepts (a value in µmol/L, e.g. 88, is refused).
pub const PLAUSIBLE_CREATININE_MG_DL: std::ops::RangeInclusive<f64> = 0.05..=30.0;

/// BMI = 体重(kg) / 身長(m)²; `None` outside `PLAUSIBLE_HEIGHT_CM` / `PLAUSIBLE_WEIGHT_KG`.
pub fn bmi(height_cm: f64, weight_kg: f64) -> Option<f64> {
    (PLAUSIBLE_HEIGHT_CM.contains(&height_cm) && PLAUSIBLE_WEIGHT_KG.contains(&weight_kg))
        .then(|| weight_kg / (height_cm / 100.0).powi(2))
}

/// Japan Society for the Study of Obesity: 1 低体重 < 18.5 ≤ 2 普通体重 < 25 ≤ 3 肥満1度 < 30 ≤
/// 4 肥満2度 < 35 ≤ 5 肥満3度 < 40 ≤ 6 肥満4度.
pub fn bmi_class(bmi: f64) -> &'static str {
    match bmi {
        b if b < 18.5 => "1",
        b if b < 25.0 => "2",
        b if b < 30.0 => "3",
        b if b < 35.0 => "4",
        b if b < 40.0 => "5",
        _ => "6",
    }
}

/// School-age 身長別標準体重 coefficients (a, b) for ages 6–17, boys then girls: standard weight =
/// a × height(cm) − b (日本学校保健会「児童生徒の健康診断マニュアル」, as tabulated by
/// 平塚市 and cross-checked; see /work/research/obesity_tables.md).
/// (The manual also lists age 5, 0.386/23.699 boys and 0.377/22.750 girls; nsdb does not use it:
/// a five-year-old is an infant (幼児) and takes the infant formula and thresholds.)
const SCHOOL: [[(f64, f64); 2]; 12] = [
    [(0.461, 32.382), (0.458, 32.079)],
    [(0.513, 38.878), (0.508, 38.367)],
    [(0.592, 48.804), (0.561, 45.006)],
    [(0.687, 61.390), (0.652, 56.992)],
    [(0.752, 70.461), (0.730, 68.091)],
    [(0.782, 75.106), (0.803, 78.846)],
    [(0.783, 75.642), (0.796, 76.934)],
    [(0.815, 81.348), (0.655, 54.234)],
    [(0.832, 83.695), (0.594, 43.264)],
    [(0.766, 70.989), (0.560, 37.002)],
    [(0.656, 51.822), (0.578, 39.057)],
    [(0.672, 53.642), (0.598, 42.339)],
];

/// Which infant (1–5 years) standard-weight formula to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InfantFormula {
    /// 乳幼児身体発育評価マニュアル (平成24年3月).
    Manual2012,
    /// こども家庭庁 令和5年乳幼児身体発育調査.
    Survey2023,
}

/// Which standard weight and which thresholds a child's 肥満度 takes: never mixed, both follow
/// from the full years of age on the day measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgeGroup {
    /// 幼児, 1–5 full years: the infant formula (height 70–120 cm) and the infant thresholds.
    Infant,
    /// 学童, 6–17 full years: a × height − b and the school-age thresholds.
    School,
}

impl AgeGroup {
    /// The group of a child of `age` full years; `None` under 1 and from 18 (no table).
    pub fn of(age: i32) -> Option<AgeGroup> {
        match age {
            1..=5 => Some(AgeGroup::Infant),
            6..=17 => Some(AgeGroup::School),
            _ => None,
        }
    }
}

/// 身長別標準体重 (kg) for a child of `sex` ("1" boy, "2" girl), full years `age`, `height_cm`;
/// `None` outside the tables (under 1, 18 and over, infants outside 70–120 cm).
pub fn standard_weight(sex: &str, age: i32, height_cm: f64, infant: InfantFormula) -> Option<f64> {
    let girl = match sex {
        "1" => false,
        "2" => true,
        _ => return None,
    };
    match AgeGroup::of(age)? {
        AgeGroup::Infant if (70.0..=120.0).contains(&height_cm) => {
            let (a, b, c) = match (infant, girl) {
                (InfantFormula::Manual2012, false) => (0.00206, -0.1166, 6.5273),
                (InfantFormula::Manual2012, true) => (0.00249, -0.1858, 9.0360),
                (InfantFormula::Survey2023, false) => (0.002961, -0.2900, 14.7527),
                (InfantFormula::Survey2023, true) => (0.002706, -0.2326, 11.4427),
            };
            Some(a * height_cm * height_cm + b * height_cm + c)
        }
        AgeGroup::Infant => None,
        AgeGroup::School => {
            let (a, b) = SCHOOL[(age - 6) as usize][usize::from(girl)];
            PLAUSIBLE_HEIGHT_CM
                .contains(&height_cm)
                .then_some(a * height_cm - b)
        }
    }
}

/// 肥満度 (%) = (実測体重 − 標準体重) / 標準体重 × 100.
pub fn obesity_degree(
    sex: &str,
    age: i32,
    height_cm: f64,
    weight_kg: f64,
    infant: InfantFormula,
) -> Option<f64> {
    let std = standard_weight(sex, age, height_cm, infant)?;
    (std > 0.0 && PLAUSIBLE_WEIGHT_KG.contains(&weight_kg)).then(|| (weight_kg - std) / std * 100.0)
}

/// The 肥満度 class (code list `obesity_class`): 1 やせ, 2 ふつう, 3 肥満 side. 幼児 (1–5 y,
/// 乳幼児身体発育評価マニュアル): ふつう is −15 % < d < +15 %, やせ −15 % or less (やせすぎ
/// −20 % or less), +15 % or more 肥満 side. 学童 (6–17 y, 児童生徒の健康診断マニュアル): ±20 %.
/// `None` for an age without a table.
pub fn obesity_class(degree: f64, age: i32) -> Option<&'static str> {
    let (thin, obese) = match AgeGroup::of(age)? {
        AgeGroup::Infant => (-15.0, 15.0),
        AgeGroup::School => (-20.0, 20.0),
    };
    Some(if degree <= thin {
        "1"
    } else if degree >= obese {
        "3"
    } else {
        "2"
    })
}

/// GFR区分 (scale `ckd_gfr`) of an eGFR (mL/min/1.73m²): G1 ≥ 90, G2 60–89, G3a 45–59,
/// G3b 30–44, G4 15–29, G5 < 15 (日本腎臓学会 CKD重症度分類, as the criteria texts cite it).
pub fn ckd_gfr_stage(egfr: f64) -> Option<&'static str> {
    (egfr >= 0.0).then_some(match egfr {
        e if e >= 90.0 => "G1",
        e if e >= 60.0 => "G2",
        e if e >= 45.0 => "G3a",
        e if e >= 30.0 => "G3b",
        e if e >= 15.0 => "G4",
        _ => "G5",
    })
}

/// The colour of the CKD重症度分類ヒートマップ (scale `ckd_heatmap`: 1 緑, 2 黄, 3 オレンジ, 4 赤)
/// for an eGFR and a 尿蛋白/Cr比 (g/gCr; A1 < 0.15, A2 0.15–0.49, A3 ≥ 0.50), as tabulated in
/// criteria/066.txt.
pub fn ckd_heatmap(egfr: f64, protein_g_gcr: f64) -> Option<&'static str> {
    if !(0.0..=50.0).contains(&protein_g_gcr) {
        return None;
    }
    let a = if protein_g_gcr < 0.15 {
        0
    } else if protein_g_gcr < 0.5 {
        1
    } else {
        2
    };
    let row: [&str; 3] = match ckd_gfr_stage(egfr)? {
        "G1" | "G2" => ["1", "2", "3"],
        "G3a" => ["2", "3", "4"],
        "G3b" => ["3", "4", "4"],
        _ => ["4", "4", "4"],
    };
    Some(row[a])
}

/// Child-Pugh class (scale `child_pugh_class`) of a total of 5–15 points: 5–6 A, 7–9 B, 10–15 C.
pub fn child_pugh_class(total: f64) -> Option<&'static str> {
    match total {
        t if (5.0..7.0).contains(&t) => Some("A"),
        t if (7.0..10.0).contains(&t) => Some("B"),
        t if (10.0..=15.0).contains(&t) => Some("C"),
        _ => None,
    }
}

/// eGFR (mL/min/1.73m²), Japanese equation for adults: 194 × Cr^−1.094 × age^−0.287, × 0.739
/// for women. `None` under 18 (the equation is for adults) or for a non-positive creatinine.
pub fn egfr_jp(creatinine: f64, age: i32, sex: &str) -> Option<f64> {
    if !PLAUSIBLE_CREATININE_MG_DL.contains(&creatinine) || age < 18 {
        return None;
    }
    let e = 194.0 * creatinine.powf(-1.094) * (age as f64).powf(-0.287);
    match sex {
        "1" => Some(e),
        "2" => Some(e * 0.739),
        _ => None,
    }
}

fn num(v: Option<&str>) -> Option<f64> {
    v?.parse::<f64>().ok().filter(|f| f.is_finite())
}

fn age(birth: Option<&str>, on: Option<&str>) -> Option<i32> {
    let (b, o) = (Date::parse(birth?)?, Date::parse(on?)?);
    (b <= o).then(|| b.age_on(o))
}

/// Applies built-in `name` to the stored values of its argument items.
pub fn builtin(name: &str, args: &[Option<&str>]) -> Option<Calculated> {
    let a = |i: usize| args.get(i).copied().flatten();
    use Calculated::{Code, Number};
    match name {
        "bmi" => bmi(num(a(0))?, num(a(1))?).map(Number),
        "bmi_class" => {
            let b = num(a(0))?;
            (5.0..=150.0).contains(&b).then(|| Code(bmi_class(b)))
        }
        "obesity_degree" | "obesity_degree_2023" => {
            let infant = if name == "obesity_degree" {
                InfantFormula::Manual2012
            } else {
                InfantFormula::Survey2023
            };
            obesity_degree(a(0)?, age(a(1), a(2))?, num(a(3))?, num(a(4))?, infant).map(Number)
        }
        "obesity_class" => obesity_class(num(a(0))?, age(a(1), a(2))?).map(Code),
        "egfr_jp" => egfr_jp(num(a(0))?, age(a(1), a(2))?, a(3)?).map(Number),
        "age" => age(a(0), a(1)).map(|n| Number(n as f64)),
        "ckd_gfr_stage" => ckd_gfr_stage(num(a(0))?).map(Code),
        "ckd_heatmap" => ckd_heatmap(num(a(0))?, num(a(1))?).map(Code),
        "child_pugh_class" => child_pugh_class(num(a(0))?).map(Code),
        _ => None,
    }
}

/// Whether a built-in's result fits an item of type `ty` (codes for the classes, numbers else).
pub fn builtin_fits(name: &str, ty: ItemType) -> bool {
    match name {
        "bmi_class" | "obesity_class" | "ckd_gfr_stage" | "ckd_heatmap" | "child_pugh_class" => {
            ty == ItemType::Code
        }
        _ => matches!(ty, ItemType::Decimal | ItemType::Integer),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bmi_and_its_classes_at_the_boundaries() {
        assert_eq!(format_number(bmi(170.0, 65.0).unwrap(), 1), "22.5");
        assert_eq!(format_number(bmi(160.0, 64.0).unwrap(), 1), "25.0");
        assert_eq!(bmi_class(18.49), "1");
        assert_eq!(bmi_class(18.5), "2");
        assert_eq!(bmi_class(24.99), "2");
        assert_eq!(bmi_class(25.0), "3");
        assert_eq!(bmi_class(30.0), "4");
        assert_eq!(bmi_class(35.0), "5");
        assert_eq!(bmi_class(39.99), "5");
        assert_eq!(bmi_class(40.0), "6");
        assert_eq!(bmi(0.0, 60.0), None);
        // A height typed in metres is not a BMI of 224,913: nothing is calculated.
        assert_eq!(bmi(1.70, 65.0), None);
        assert_eq!(bmi(170.0, 65000.0), None);
    }

    #[test]
    fn obesity_degree_matches_the_sources_worked_examples() {
        // 11歳男子 140cm 38kg → 標準体重 34.374kg, 肥満度 10.5% (平塚市 学童編).
        let s = standard_weight("1", 11, 140.0, InfantFormula::Manual2012).unwrap();
        assert!((s - 34.374).abs() < 1e-9, "{s}");
        let d = obesity_degree("1", 11, 140.0, 38.0, InfantFormula::Manual2012).unwrap();
        assert_eq!(format_number(d, 1), "10.5");
        // 12歳男子 154cm → 44.940kg.
        let s = standard_weight("1", 12, 154.0, InfantFormula::Manual2012).unwrap();
        assert!((s - 44.94).abs() < 1e-9, "{s}");
        // 3歳女子 92cm 13kg → −0.1364% (2012) and +0.4087% (2023) (平塚市 幼児編).
        let d = obesity_degree("2", 3, 92.0, 13.0, InfantFormula::Manual2012).unwrap();
        assert_eq!(format_number(d, 4), "-0.1364");
        let d = obesity_degree("2", 3, 92.0, 13.0, InfantFormula::Survey2023).unwrap();
        assert_eq!(format_number(d, 4), "0.4087");
        // 6歳男子 115cm: 標準 20.633kg; 24.7596kg is exactly +20%.
        let s = standard_weight("1", 6, 115.0, InfantFormula::Manual2012).unwrap();
        assert!((s - 20.633).abs() < 1e-9);
        // Outside the tables: not calculated.
        assert_eq!(
            standard_weight("2", 2, 65.0, InfantFormula::Manual2012),
            None
        );
        assert_eq!(
            standard_weight("1", 18, 170.0, InfantFormula::Manual2012),
            None
        );
        assert_eq!(
            standard_weight("3", 10, 140.0, InfantFormula::Manual2012),
            None
        );
    }

    #[test]
    fn obesity_classes_differ_for_infants_and_school_children() {
        assert_eq!(obesity_class(20.0, 6), Some("3"));
        assert_eq!(obesity_class(19.9, 6), Some("2"));
        assert_eq!(obesity_class(15.0, 4), Some("3"));
        assert_eq!(obesity_class(14.9, 4), Some("2"));
        assert_eq!(obesity_class(-20.0, 10), Some("1"));
        assert_eq!(obesity_class(-19.9, 10), Some("2"));
        // 幼児: −15 % or less is やせ (a 4-year-old girl at −17.9 % is not ふつう).
        assert_eq!(obesity_class(-17.9, 4), Some("1"));
        assert_eq!(obesity_class(-15.0, 5), Some("1"));
        assert_eq!(obesity_class(-14.9, 5), Some("2"));
        // 学童 keeps ±20 %: the same −17.9 % at 6 is ふつう.
        assert_eq!(obesity_class(-17.9, 6), Some("2"));
        assert_eq!(obesity_class(10.0, 18), None);
    }

    #[test]
    fn five_year_olds_take_the_infant_formula_six_year_olds_the_school_one() {
        // 5歳男子 110cm: infant (2012) 0.00206×110² − 0.1166×110 + 6.5273 = 18.6273 kg, not the
        // school-age row for 5 (0.386×110 − 23.699 = 18.761).
        let s = standard_weight("1", 5, 110.0, InfantFormula::Manual2012).unwrap();
        assert!((s - 18.6273).abs() < 1e-9, "{s}");
        // 5歳 outside the infant formula's heights: not calculated, not the school formula.
        assert_eq!(
            standard_weight("1", 5, 125.0, InfantFormula::Manual2012),
            None
        );
        // 6歳男子 110cm: school 0.461×110 − 32.382 = 18.328.
        let s = standard_weight("1", 6, 110.0, InfantFormula::Manual2012).unwrap();
        assert!((s - 18.328).abs() < 1e-9, "{s}");
    }

    #[test]
    fn egfr_japanese_equation_by_hand() {
        // 194 × 1.0^−1.094 × 50^−0.287 = 194 × 0.325383… = 63.12 (man); × 0.739 = 46.65 (woman).
        let m = egfr_jp(1.0, 50, "1").unwrap();
        assert_eq!(format_number(m, 1), "63.1");
        let w = egfr_jp(1.0, 50, "2").unwrap();
        assert_eq!(format_number(w, 1), "46.6");
        // 0.8 mg/dL, 40歳 woman: 194 × 1.276… × 0.3468… × 0.739 = 63.49.
        let w = egfr_jp(0.8, 40, "2").unwrap();
        assert_eq!(format_number(w, 1), "63.5");
        assert_eq!(egfr_jp(1.0, 17, "1"), None);
        assert_eq!(egfr_jp(0.0, 50, "1"), None);
        // Creatinine in µmol/L (88) is not mg/dL: nothing is calculated.
        assert_eq!(egfr_jp(88.0, 50, "1"), None);
    }

    #[test]
    fn ckd_heatmap_red_cells_as_the_criteria_table() {
        assert_eq!(ckd_gfr_stage(90.0), Some("G1"));
        assert_eq!(ckd_gfr_stage(89.9), Some("G2"));
        assert_eq!(ckd_gfr_stage(45.0), Some("G3a"));
        assert_eq!(ckd_gfr_stage(44.9), Some("G3b"));
        assert_eq!(ckd_gfr_stage(14.9), Some("G5"));
        // Red: G3a×A3, G3b×A2–A3, G4 and G5 whatever the protein.
        assert_eq!(ckd_heatmap(50.0, 0.5), Some("4"));
        assert_eq!(ckd_heatmap(50.0, 0.49), Some("3"));
        assert_eq!(ckd_heatmap(35.0, 0.15), Some("4"));
        assert_eq!(ckd_heatmap(35.0, 0.14), Some("3"));
        assert_eq!(ckd_heatmap(20.0, 0.0), Some("4"));
        assert_eq!(ckd_heatmap(95.0, 0.1), Some("1"));
        assert_eq!(ckd_heatmap(95.0, 0.6), Some("3"));
    }

    #[test]
    fn child_pugh_classes_at_their_boundaries() {
        assert_eq!(child_pugh_class(5.0), Some("A"));
        assert_eq!(child_pugh_class(6.0), Some("A"));
        assert_eq!(child_pugh_class(7.0), Some("B"));
        assert_eq!(child_pugh_class(9.0), Some("B"));
        assert_eq!(child_pugh_class(10.0), Some("C"));
        assert_eq!(child_pugh_class(15.0), Some("C"));
        assert_eq!(child_pugh_class(4.0), None);
        assert_eq!(child_pugh_class(16.0), None);
    }

    #[test]
    fn rounding_is_half_away_from_zero_with_fixed_places() {
        assert_eq!(format_number(2.25, 1), "2.3");
        assert_eq!(format_number(-2.25, 1), "-2.3");
        assert_eq!(format_number(3.0, 2), "3.00");
        assert_eq!(format_number(7.5, 0), "8");
        assert_eq!(format_number(-0.04, 1), "0.0");
    }

    #[test]
    fn builtins_read_stored_values() {
        let r = builtin(
            "obesity_degree",
            &[
                Some("1"),
                Some("2014-05-01"),
                Some("2025-06-01"),
                Some("140"),
                Some("38"),
            ],
        );
        assert!(matches!(r, Some(Calculated::Number(d)) if format_number(d, 1) == "10.5"));
        assert_eq!(builtin("bmi", &[Some("170"), None]), None);
        assert_eq!(
            builtin("age", &[Some("2000-04-02"), Some("2026-04-01")]),
            Some(Calculated::Number(25.0))
        );
    }
}
