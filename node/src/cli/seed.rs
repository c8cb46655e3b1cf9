//! Synthetic data for the demo and benchmarks: fictitious patients on real forms.
//!
//! Every name, address and number here is made up from fixed lists with a seeded generator, so
//! the same seed always gives the same sheets. Nothing here may ever be real patient data.

use std::collections::BTreeMap;

use nsdb_rules::{FormDef, ItemType, value};
use nsdb_sync::{Author, Edit, Sheet, SheetId};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// (kanji, kana) of fictitious family names.
const FAMILY: &[(&str, &str)] = &[
    ("青柳", "アオヤギ"),
    ("石渡", "イシワタ"),
    ("宇佐美", "ウサミ"),
    ("榎本", "エノモト"),
    ("大庭", "オオバ"),
    ("柏木", "カシワギ"),
    ("桐山", "キリヤマ"),
    ("久我", "クガ"),
    ("小柳", "コヤナギ"),
    ("笹川", "ササガワ"),
    ("志田", "シダ"),
    ("須永", "スナガ"),
    ("瀬尾", "セオ"),
    ("高階", "タカシナ"),
    ("津田", "ツダ"),
    ("戸塚", "トツカ"),
    ("中園", "ナカゾノ"),
    ("野々村", "ノノムラ"),
    ("羽鳥", "ハトリ"),
    ("日比野", "ヒビノ"),
    ("藤代", "フジシロ"),
    ("星川", "ホシカワ"),
    ("真壁", "マカベ"),
    ("三輪", "ミワ"),
    ("望月", "モチヅキ"),
    ("矢吹", "ヤブキ"),
    ("湯浅", "ユアサ"),
    ("芳野", "ヨシノ"),
    ("若林", "ワカバヤシ"),
];

/// (kanji, kana, sex code) of fictitious given names.
const GIVEN: &[(&str, &str, &str)] = &[
    ("昭夫", "アキオ", "1"),
    ("勝利", "カツトシ", "1"),
    ("清", "キヨシ", "1"),
    ("健三", "ケンゾウ", "1"),
    ("茂", "シゲル", "1"),
    ("忠司", "タダシ", "1"),
    ("典之", "ノリユキ", "1"),
    ("博", "ヒロシ", "1"),
    ("正和", "マサカズ", "1"),
    ("義男", "ヨシオ", "1"),
    ("明美", "アケミ", "2"),
    ("和子", "カズコ", "2"),
    ("京子", "キョウコ", "2"),
    ("幸子", "サチコ", "2"),
    ("節子", "セツコ", "2"),
    ("千代", "チヨ", "2"),
    ("典子", "ノリコ", "2"),
    ("久美子", "クミコ", "2"),
    ("文江", "フミエ", "2"),
    ("洋子", "ヨウコ", "2"),
];

const TOWNS: &[&str] = &[
    "東京都架空区見本町",
    "東京都仮名市試験台",
    "東京都例示区標本",
    "東京都空想市模型町",
];

/// A valid 8-digit 保険者番号 for a made-up insurer.
fn insurer_no(rng: &mut StdRng) -> String {
    let body = format!("0613{:03}", rng.random_range(0..1000));
    format!("{body}{}", value::check_digit(&body))
}

/// The values of one fictitious patient's sheet of `form`, written on `written`.
pub fn sheet_values(
    form: &FormDef,
    rng: &mut StdRng,
    written: value::Date,
) -> BTreeMap<String, String> {
    let (fam, fam_kana) = FAMILY[rng.random_range(0..FAMILY.len())];
    let (given, given_kana, sex) = GIVEN[rng.random_range(0..GIVEN.len())];
    let birth = value::Date::new(
        rng.random_range(1935..1980),
        rng.random_range(1..=12),
        rng.random_range(1..=28),
    )
    .unwrap_or(written);
    let mut v = BTreeMap::new();
    let mut put = |k: &str, val: String| {
        if form.item(k).is_some() {
            v.insert(k.to_string(), val);
        }
    };
    put(
        "application.type",
        if rng.random_bool(0.7) { "2" } else { "1" }.into(),
    );
    put("patient.name", format!("{fam} {given}"));
    put("patient.name_kana", format!("{fam_kana} {given_kana}"));
    put("patient.sex", sex.into());
    put("patient.birth_date", birth.to_string());
    put(
        "patient.postal_code",
        format!(
            "1{:02}-{:04}",
            rng.random_range(0..100),
            rng.random_range(0..10000)
        ),
    );
    put(
        "patient.address",
        format!(
            "{}{}丁目{}番{}号",
            TOWNS[rng.random_range(0..TOWNS.len())],
            rng.random_range(1..6),
            rng.random_range(1..30),
            rng.random_range(1..20)
        ),
    );
    put("patient.insurer_no", insurer_no(rng));
    put(
        "patient.insured_no",
        format!("{:07}", rng.random_range(0..10_000_000)),
    );
    put("doctor.written_date", written.to_string());
    put(
        "doctor.number",
        format!("{:06}", rng.random_range(0..1_000_000)),
    );
    let onset_year = rng.random_range(birth.year + 40..=written.year.max(birth.year + 40));
    put(
        "basic.onset",
        format!("{onset_year:04}-{:02}", rng.random_range(1..=12)),
    );
    // Every choice item gets one of its real choices.
    for item in form.items() {
        if item.ty == ItemType::Code && !v.contains_key(&item.id) && !item.codes.is_empty() {
            let c = &item.codes[rng.random_range(0..item.codes.len())];
            v.insert(item.id.clone(), c.code.clone());
        }
    }
    v
}

/// Builds `n` fictitious sheets of `form` for `institution`, written by `author`, one at a time
/// as the iterator is read (a large seed never holds every document in memory).
pub fn sheets<'a>(
    form: &'a FormDef,
    n: usize,
    seed: u64,
    institution: &'a str,
    author: Author,
    now_ms: i64,
    today: value::Date,
) -> impl Iterator<Item = Sheet> + 'a {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n).map(move |i| {
        let at_ms = now_ms - (n - i) as i64 * 60_000;
        let edit = Edit {
            author,
            at_ms,
            message: "作成",
        };
        let id = SheetId(uuid::Uuid::from_u128(rng.random()));
        let mut sheet = Sheet::new(
            crate::sheets::new_sheet_of(form, id, institution, Some(author.user), None, at_ms),
            edit,
        );
        let values = sheet_values(form, &mut rng, today);
        let changes = values.into_iter().map(|(k, v)| (k, Some(v))).collect();
        sheet.set_fields(&changes, edit);
        sheet
    })
}
