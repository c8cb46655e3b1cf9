//! One item's value: normalising what a person typed into the stored text, and saying in Japanese
//! what is wrong with it.
//!
//! Values are stored as text in one canonical form per type (dates `YYYY-MM-DD`, year-months
//! `YYYY-MM`, several codes `1,3`, postal codes `123-4567`). Normalising is forgiving (full-width
//! digits, half-width katakana, `2024/5/1`, 和暦 such as `令和6年5月1日`); checking is strict. Nothing here reads the clock:
//! "today" comes in from the caller.

use crate::form::{ItemDef, ItemType};

mod wareki;

/// A calendar date (proleptic Gregorian), enough for birth dates and dates written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date {
    pub year: i32,
    pub month: u8,
    pub day: u8,
}

impl Date {
    pub fn new(year: i32, month: u8, day: u8) -> Option<Date> {
        let valid = (1..=12).contains(&month)
            && day >= 1
            && day <= days_in_month(year, month)
            && (1800..=9999).contains(&year);
        valid.then_some(Date { year, month, day })
    }

    /// Parses the canonical `YYYY-MM-DD`.
    pub fn parse(s: &str) -> Option<Date> {
        let mut it = s.split('-');
        let (y, m, d) = (it.next()?, it.next()?, it.next()?);
        if it.next().is_some() || y.len() != 4 || m.len() != 2 || d.len() != 2 {
            return None;
        }
        Date::new(y.parse().ok()?, m.parse().ok()?, d.parse().ok()?)
    }

    /// A date as a person types it: `2026-04-01`, `2026/4/1`, full-width digits, or 和暦 such
    /// as `昭和50年4月1日`, `S50.4.1`, `R2/1/5` (the era's bounds checked). `None` when `s` is
    /// not a date. The same normalisation as a date item's ([`normalise`]), for date fields
    /// that are not items of a form (生年月日 at 受付, 有効期間).
    pub fn typed(s: &str) -> Option<Date> {
        let n = ascii_narrow(s.trim());
        let canonical = wareki::date(&n).or_else(|| normalise_date(&n))?;
        Date::parse(&canonical)
    }

    /// The date as 和暦 (`令和5年4月1日`, `令和元年5月1日`); `None` before 明治 (1868).
    pub fn wareki(self) -> Option<String> {
        wareki::era_date(self)
    }

    /// Whole years between `self` (a birth date) and `on`.
    pub fn age_on(self, on: Date) -> i32 {
        let mut age = on.year - self.year;
        if (on.month, on.day) < (self.month, self.day) {
            age -= 1;
        }
        age
    }
}

impl std::fmt::Display for Date {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

fn days_in_month(year: i32, month: u8) -> u8 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        _ => 0,
    }
}

/// Characters that print as nothing and carry no meaning in a form's value (zero-width space,
/// zero-width (non-)joiner, word joiner, a stray byte-order mark), as pasted from other systems.
/// Variation selectors are not among them: they choose a name's glyph (異体字) and are kept.
const INVISIBLE: [char; 5] = ['\u{200B}', '\u{200C}', '\u{200D}', '\u{2060}', '\u{FEFF}'];

/// Whether `s` shows nothing: no character but spaces, format characters (bidirectional
/// marks, soft hyphen, tags, …), variation selectors, combining marks and the blank fillers
/// (ㅤ U+3164, ⠀ U+2800, …). Such a value is no value: a required item holding it is missing.
pub fn is_blank(s: &str) -> bool {
    s.chars().all(|c| {
        c.is_whitespace()
            || unicode_normalization::char::is_combining_mark(c)
            || matches!(c,
                '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{17B4}'
                | '\u{17B5}' | '\u{180B}'..='\u{180F}' | '\u{200B}'..='\u{200F}'
                | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{206F}' | '\u{2800}'
                | '\u{3164}' | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}' | '\u{FFA0}'
                | '\u{FFF9}'..='\u{FFFB}' | '\u{E0000}'..='\u{E007F}'
                | '\u{E0100}'..='\u{E01EF}')
    })
}

/// `s` without [`INVISIBLE`] characters, so that a value of nothing but those is blank (a name
/// must be there to count as given) and two values that look the same are the same.
pub fn without_invisible(s: &str) -> std::borrow::Cow<'_, str> {
    if s.contains(INVISIBLE) {
        std::borrow::Cow::Owned(s.chars().filter(|c| !INVISIBLE.contains(c)).collect())
    } else {
        std::borrow::Cow::Borrowed(s)
    }
}

/// Text as typed or pasted, composed (Unicode NFC): `か` + `゙` (decomposed, as some systems
/// copy it) becomes `が`, so a value is checked, stored and searched as one form. CJK
/// compatibility ideographs (U+F900–U+FAFF, U+2F800–U+2FA1F: variant forms in names such as
/// 神 U+FA19) are kept as typed, since NFC would replace them with their unified forms.
pub fn compose(s: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    use unicode_normalization::is_nfc_quick;
    if matches!(
        is_nfc_quick(s.chars()),
        unicode_normalization::IsNormalized::Yes
    ) {
        return s.to_string();
    }
    let variant = |c: char| {
        ('\u{F900}'..='\u{FAFF}').contains(&c) || ('\u{2F800}'..='\u{2FA1F}').contains(&c)
    };
    let mut out = String::with_capacity(s.len());
    let mut run = String::new();
    for c in s.chars() {
        if variant(c) {
            out.extend(run.nfc());
            run.clear();
            out.push(c);
        } else {
            run.push(c);
        }
    }
    out.extend(run.nfc());
    out
}

/// A stored date (`YYYY-MM-DD`) or year-month (`YYYY-MM`) of `item` written in 和暦 for a user
/// who types dates that way (`令和5年4月1日`, `令和5年4月`); any other value, or an item of
/// another type, as it is. [`normalise`] reads the result back to the same stored value.
pub fn in_wareki(item: &ItemDef, value: &str) -> String {
    let shown = match item.ty {
        ItemType::Date => Date::parse(value).and_then(Date::wareki),
        ItemType::YearMonth => wareki::era_year_month(value),
        _ => None,
    };
    shown.unwrap_or_else(|| value.to_string())
}

/// Whether `typed` is written with an era (`令和…`, `R5.4.1`, `h31/4/30`).
pub fn is_wareki(typed: &str) -> bool {
    let n = ascii_narrow(compose(typed).trim());
    ["明治", "大正", "昭和", "平成", "令和"]
        .iter()
        .any(|k| n.starts_with(k))
        || n.chars().next().is_some_and(|c| "MTSHRmtshr".contains(c))
            && n.chars()
                .nth(1)
                .is_some_and(|c| c.is_ascii_digit() || c == '元')
}

/// A search term as typed: compatibility forms folded (NFKC: half-width katakana to full
/// width, full-width digits and letters to ASCII, decomposed kana composed).
pub fn fold_query(s: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    s.nfkc().collect()
}

/// Full-width ASCII (digits, letters, punctuation) and the ideographic space to half-width.
fn ascii_narrow(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
            '\u{3000}' => ' ',
            'ー' | '―' | '‐' => '-',
            _ => c,
        })
        .collect()
}

const HALF_KANA: &str = "｡｢｣､･ｦｧｨｩｪｫｬｭｮｯｰｱｲｳｴｵｶｷｸｹｺｻｼｽｾｿﾀﾁﾂﾃﾄﾅﾆﾇﾈﾉﾊﾋﾌﾍﾎﾏﾐﾑﾒﾓﾔﾕﾖﾗﾘﾙﾚﾛﾜﾝ";
const FULL_KANA: &str = "。「」、・ヲァィゥェォャュョッーアイウエオカキクケコサシスセソタチツテトナニヌネノハヒフヘホマミムメモヤユヨラリルレロワン";

/// Half-width katakana (with its separate voiced marks) and hiragana to full-width katakana;
/// the ideographic space to an ordinary one.
pub fn to_full_katakana(s: &str) -> String {
    let half: Vec<char> = HALF_KANA.chars().collect();
    let full: Vec<char> = FULL_KANA.chars().collect();
    let mut out: Vec<char> = Vec::with_capacity(s.len());
    for c in s.chars() {
        match c {
            'ﾞ' | 'ﾟ' => {
                let marked = out.last().and_then(|&prev| {
                    let base = prev as u32;
                    if c == 'ﾞ' {
                        if prev == 'ウ' {
                            return Some('ヴ');
                        }
                        let voiced = "カキクケコサシスセソタチツテトハヒフヘホ";
                        voiced.contains(prev).then(|| char::from_u32(base + 1))?
                    } else {
                        "ハヒフヘホ"
                            .contains(prev)
                            .then(|| char::from_u32(base + 2))?
                    }
                });
                match marked {
                    Some(m) => {
                        out.pop();
                        out.push(m);
                    }
                    None => out.push(if c == 'ﾞ' { '゛' } else { '゜' }),
                }
            }
            '\u{3041}'..='\u{3096}' => out.push(char::from_u32(c as u32 + 0x60).unwrap_or(c)),
            '\u{3000}' => out.push(' '),
            _ => match half.iter().position(|&h| h == c) {
                Some(i) => out.push(full[i]),
                None => out.push(c),
            },
        }
    }
    out.into_iter().collect()
}

fn is_full_katakana_name(s: &str) -> bool {
    s.chars()
        .all(|c| matches!(c, '\u{30A1}'..='\u{30FA}' | 'ー' | '・' | ' '))
}

/// Whether the commas of a number, if any, separate thousands: `1,234`, `-12,345.6`; not `1,5`,
/// `1,50` or `12,34,567`.
fn thousands_grouped(n: &str) -> bool {
    let body = n.strip_prefix(['-', '+']).unwrap_or(n);
    let whole = body.split_once('.').map_or(body, |(w, _)| w);
    let mut groups = whole.split(',');
    let first_ok = groups
        .next()
        .is_some_and(|g| (1..=3).contains(&g.len()) && g.chars().all(|c| c.is_ascii_digit()));
    first_ok && groups.all(|g| g.len() == 3 && g.chars().all(|c| c.is_ascii_digit()))
}

/// Normalises what was typed for an item into its stored form. Never fails: a value that cannot
/// be normalised is kept as typed (trimmed), and `problem` says what is wrong with it.
pub fn normalise(item: &ItemDef, raw: &str) -> String {
    let composed = compose(&without_invisible(raw));
    let t = composed.trim();
    match item.ty {
        ItemType::Text => t.to_string(),
        ItemType::Kana => to_full_katakana(t).trim().to_string(),
        ItemType::Integer | ItemType::Decimal => {
            let n = ascii_narrow(t).replace(' ', "");
            // A comma is a thousands separator only in groups of three (1,234 or 12,345.6); any
            // other comma (1,5 typed for 1.5) is kept, so the value is refused, never misread.
            if thousands_grouped(&n) {
                n.replace(',', "")
            } else {
                n
            }
        }
        ItemType::Digits | ItemType::InsurerNo => ascii_narrow(t).replace([' ', ','], ""),
        ItemType::Postal => {
            let d: String = ascii_narrow(t).chars().filter(|c| *c != '-').collect();
            if d.len() == 7 && d.chars().all(|c| c.is_ascii_digit()) {
                format!("{}-{}", &d[..3], &d[3..])
            } else {
                ascii_narrow(t)
            }
        }
        ItemType::Date => {
            let n = ascii_narrow(t);
            wareki::date(&n)
                .or_else(|| normalise_date(&n))
                .unwrap_or_else(|| t.to_string())
        }
        ItemType::YearMonth => {
            let n = ascii_narrow(t);
            wareki::year_month(&n)
                .or_else(|| normalise_year_month(&n))
                .unwrap_or_else(|| t.to_string())
        }
        ItemType::Code => ascii_narrow(t),
        ItemType::Codes => {
            let chosen: Vec<String> = ascii_narrow(t)
                .split(',')
                .map(|c| c.trim().to_string())
                .filter(|c| !c.is_empty())
                .collect();
            // Order as the code list orders them, unknown ones last as typed.
            let mut ordered: Vec<String> = item
                .codes
                .iter()
                .filter(|c| chosen.contains(&c.code))
                .map(|c| c.code.clone())
                .collect();
            for c in chosen {
                if !ordered.contains(&c) {
                    ordered.push(c);
                }
            }
            ordered.join(",")
        }
    }
}

fn split_date_parts(s: &str) -> Option<Vec<&str>> {
    let parts: Vec<&str> = s
        .split(['-', '/', '.', '年', '月', '日'])
        .filter(|p| !p.is_empty())
        .collect();
    (!parts.is_empty()).then_some(parts)
}

fn normalise_date(s: &str) -> Option<String> {
    let (y, m, d) = if s.len() == 8 && s.chars().all(|c| c.is_ascii_digit()) {
        (&s[..4], &s[4..6], &s[6..])
    } else {
        match split_date_parts(s)?.as_slice() {
            [y, m, d] => (*y, *m, *d),
            _ => return None,
        }
    };
    Date::new(y.parse().ok()?, m.parse().ok()?, d.parse().ok()?).map(|d| d.to_string())
}

fn normalise_year_month(s: &str) -> Option<String> {
    let (y, m) = if s.len() == 6 && s.chars().all(|c| c.is_ascii_digit()) {
        (&s[..4], &s[4..])
    } else {
        match split_date_parts(s)?.as_slice() {
            [y, m] => (*y, *m),
            _ => return None,
        }
    };
    let (y, m): (i32, u8) = (y.parse().ok()?, m.parse().ok()?);
    Date::new(y, m, 1).map(|_| format!("{y:04}-{m:02}"))
}

/// What is wrong with a stored (normalised) value, in Japanese, or `None` when it is fine.
/// `today` is used to refuse dates in the future.
pub fn problem(item: &ItemDef, value: &str, today: Date) -> Option<String> {
    let label = &item.label;
    if value.is_empty() {
        return None;
    }
    match item.ty {
        ItemType::Text => match item.max_len {
            Some(n) if value.chars().count() > n => {
                Some(format!("「{label}」は{n}文字以内で入力してください。"))
            }
            _ => None,
        },
        ItemType::Kana => (!is_full_katakana_name(value))
            .then(|| format!("「{label}」は全角カタカナで入力してください。")),
        ItemType::Integer => match value.parse::<i64>() {
            Err(_) => Some(format!("「{label}」は整数で入力してください。")),
            Ok(n) => range_problem(item, n as f64),
        },
        ItemType::Decimal => {
            let ok = value
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .filter(|_| {
                    value
                        .chars()
                        .all(|c| c.is_ascii_digit() || c == '.' || c == '-')
                });
            match ok {
                None => Some(format!("「{label}」は数値で入力してください。")),
                Some(v) => range_problem(item, v),
            }
        }
        ItemType::Digits => (!value.chars().all(|c| c.is_ascii_digit()))
            .then(|| format!("「{label}」は半角数字で入力してください。")),
        ItemType::InsurerNo => {
            let digits = value.chars().all(|c| c.is_ascii_digit());
            if !digits || !(value.len() == 6 || value.len() == 8) {
                Some(format!(
                    "「{label}」は6桁または8桁の数字で入力してください。"
                ))
            } else {
                let (body, check) = value.split_at(value.len() - 1);
                (check_digit(body).to_string() != check)
                    .then(|| format!("「{label}」の検証番号（末尾の1桁）が正しくありません。"))
            }
        }
        ItemType::Postal => {
            let ok = value.len() == 8
                && value.as_bytes()[3] == b'-'
                && value
                    .chars()
                    .enumerate()
                    .all(|(i, c)| i == 3 || c.is_ascii_digit());
            (!ok).then(|| format!("「{label}」は7桁の数字（例: 100-8916）で入力してください。"))
        }
        ItemType::Date => match Date::parse(value) {
            None => match wareki::outside_era(&ascii_narrow(value)) {
                Some(why) => Some(format!("「{label}」の {value} はありません。{why}")),
                None => Some(format!(
                    "「{label}」は正しい日付（例: 2024-04-01、令和6年4月1日、R6.4.1）で入力してください。"
                )),
            },
            Some(d) if d > today => Some(format!("「{label}」に未来の日付は入力できません。")),
            Some(_) => None,
        },
        ItemType::YearMonth => match Date::parse(&format!("{value}-01")) {
            None => Some(format!(
                "「{label}」は正しい年月（例: 2024-04）で入力してください。"
            )),
            Some(d) if d > today => Some(format!("「{label}」に未来の年月は入力できません。")),
            Some(_) => None,
        },
        ItemType::Code => item
            .code_label(value)
            .is_none()
            .then(|| format!("「{label}」の選択肢にない値です。")),
        ItemType::Codes => value
            .split(',')
            .any(|c| item.code_label(c).is_none())
            .then(|| format!("「{label}」の選択肢にない値が含まれています。")),
    }
}

/// The 検証番号 of a 保険者番号 or 公費負担者番号 body (all digits but the last), as the
/// ministry's 保険者番号設定要領 defines it: from the last digit leftwards multiply by 2, 1, 2, …,
/// add the digits of each product, and take 10 minus the last digit of the sum (0 stays 0).
pub fn check_digit(body: &str) -> u8 {
    let sum: u32 = body
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let p = (b.wrapping_sub(b'0') as u32) * if i % 2 == 0 { 2 } else { 1 };
            p / 10 + p % 10
        })
        .sum();
    ((10 - sum % 10) % 10) as u8
}

fn range_problem(item: &ItemDef, v: f64) -> Option<String> {
    let label = &item.label;
    let unit = item.unit.as_deref().unwrap_or("");
    match (item.min, item.max) {
        (Some(min), Some(max)) if v < min || v > max => Some(format!(
            "「{label}」は{min}{unit}から{max}{unit}の範囲で入力してください。"
        )),
        (Some(min), None) if v < min => {
            Some(format!("「{label}」は{min}{unit}以上で入力してください。"))
        }
        (None, Some(max)) if v > max => {
            Some(format!("「{label}」は{max}{unit}以下で入力してください。"))
        }
        _ => step_problem(item, v),
    }
}

/// A number off the item's scale: not a whole number of `step`s from `min` (or 0), or one of
/// the values the scale does not have (`exclude`).
fn step_problem(item: &ItemDef, v: f64) -> Option<String> {
    let off_step = item.step.filter(|s| *s > 0.0).is_some_and(|s| {
        let n = (v - item.min.unwrap_or(0.0)) / s;
        (n - n.round()).abs() > 1e-9
    });
    let excluded = item.exclude.iter().any(|x| (x - v).abs() < 1e-9);
    if !off_step && !excluded {
        return None;
    }
    let label = &item.label;
    let mut text = match item.step {
        Some(s) => format!("「{label}」は{s}刻みで入力してください。"),
        None => format!("「{label}」にこの値はありません。"),
    };
    if !item.exclude.is_empty() {
        let list: Vec<String> = item.exclude.iter().map(|x| x.to_string()).collect();
        text.push_str(&format!("（{}はありません）", list.join("、")));
    }
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pasted_decomposed_text_is_composed_and_variant_ideographs_stay() {
        let nfd = "\u{30AB}\u{3099}\u{30C8}\u{3099}"; // カ + ゙, ト + ゙ as pasted from NFD
        assert_eq!(compose(nfd), "ガド");
        assert_eq!(
            compose("\u{FA19}田"),
            "\u{FA19}田",
            "神 (variant) is kept as typed"
        );
        assert_eq!(compose("𠮷野"), "𠮷野");
        assert_eq!(fold_query("ﾔﾏﾀﾞ"), "ヤマダ");
        assert_eq!(fold_query("１２３"), "123");
    }

    /// A value that shows nothing is blank, whatever invisible characters it holds; one with a
    /// character to show is not.
    #[test]
    fn a_value_that_shows_nothing_is_blank() {
        for blank in [
            "",
            " ",
            "\u{3000}",
            "\u{200E}\u{200F}",
            "\u{202E}\u{2066}",
            "\u{2800}",
            "\u{3164}",
            "\u{034F}",
            "\u{0300}",
            "\u{180E}",
            "\u{00AD}",
            "\u{FE0F}",
            "\u{E0020}",
            "\t\n\u{2028}",
        ] {
            assert!(is_blank(blank), "{blank:?}");
        }
        for shown in ["山", "a", "葛\u{E0100}", "か\u{3099}", "・"] {
            assert!(!is_blank(shown), "{shown:?}");
        }
    }

    /// Characters that print as nothing are dropped: a name of nothing but a zero-width space is
    /// blank, and a pasted name with one inside is the name. Variation selectors stay.
    #[test]
    fn invisible_characters_are_dropped_and_variation_selectors_kept() {
        let item = item(ItemType::Text);
        assert_eq!(normalise(&item, "\u{200B}"), "");
        assert_eq!(normalise(&item, " \u{FEFF}\u{2060} "), "");
        assert_eq!(normalise(&item, "山\u{200B}田"), "山田");
        assert_eq!(normalise(&item, "葛\u{E0100}城"), "葛\u{E0100}城");
    }

    /// A decimal comma (1,5 for 1.5) is refused, never read as 15; thousands separators in
    /// groups of three are read.
    #[test]
    fn a_comma_is_a_thousands_separator_only_in_groups_of_three() {
        let item = item(ItemType::Decimal);
        let today = Date::new(2026, 4, 1).unwrap();
        for typed in ["1,5", "１，５", "1,50", "12,34,567", ",5", "4,5"] {
            let stored = normalise(&item, typed);
            assert_ne!(
                stored.replace(',', ""),
                stored,
                "{typed} keeps its comma: {stored}"
            );
            assert!(
                problem(&item, &stored, today).is_some(),
                "{typed} is refused"
            );
        }
        for (typed, want) in [
            ("1,234", "1234"),
            ("-12,345.6", "-12345.6"),
            ("1 234", "1234"),
        ] {
            assert_eq!(normalise(&item, typed), want);
        }
    }

    #[test]
    fn typed_dates_accept_what_a_clerk_types_and_refuse_what_is_not_a_date() {
        for (typed, want) in [
            ("昭和50年4月1日", "1975-04-01"),
            ("S50.4.1", "1975-04-01"),
            ("R2/1/5", "2020-01-05"),
            ("令和元年5月1日", "2019-05-01"),
            ("２０２６／４／１", "2026-04-01"),
            (" 2026-04-01 ", "2026-04-01"),
        ] {
            assert_eq!(
                Date::typed(typed).map(|d| d.to_string()).as_deref(),
                Some(want),
                "{typed}"
            );
        }
        for bad in ["", "昭和65年1月8日", "2026-02-30", "四月一日", "H31.5.1"] {
            assert_eq!(Date::typed(bad), None, "{bad}");
        }
    }

    fn item(ty: ItemType) -> ItemDef {
        ItemDef {
            id: "x.y".into(),
            label: "項目".into(),
            ty,
            required: false,
            unit: None,
            codelist: None,
            codes: vec![],
            min: None,
            max: None,
            step: None,
            exclude: vec![],
            max_len: None,
            carry: false,
            help: None,
            unverified: None,
            required_if: None,
            not_before: None,
            calc: None,
        }
    }

    const TODAY: Date = Date {
        year: 2026,
        month: 11,
        day: 25,
    };

    #[test]
    fn half_width_kana_and_hiragana_become_full_width_katakana() {
        assert_eq!(to_full_katakana("ﾔﾏﾀﾞ ﾀﾛｳ"), "ヤマダ タロウ");
        assert_eq!(to_full_katakana("ﾊﾟﾋﾟﾌﾟ"), "パピプ");
        assert_eq!(to_full_katakana("やまだ　はなこ"), "ヤマダ ハナコ");
        assert_eq!(to_full_katakana("ｳﾞｧ"), "ヴァ");
    }

    #[test]
    fn kana_refuses_other_scripts() {
        let i = item(ItemType::Kana);
        assert_eq!(normalise(&i, " ﾔﾏﾀﾞ "), "ヤマダ");
        assert!(problem(&i, "ヤマダ タロウ", TODAY).is_none());
        assert!(problem(&i, "山田", TODAY).unwrap().contains("全角カタカナ"));
        assert!(problem(&i, "Yamada", TODAY).is_some());
    }

    #[test]
    fn dates_are_normalised_and_checked() {
        let i = item(ItemType::Date);
        assert_eq!(normalise(&i, "２０２４/５/１"), "2024-05-01");
        assert_eq!(normalise(&i, "20240229"), "2024-02-29");
        assert_eq!(normalise(&i, "2023-02-29"), "2023-02-29");
        assert!(
            problem(&i, "2023-02-29", TODAY)
                .unwrap()
                .contains("正しい日付")
        );
        assert!(problem(&i, "2026-11-25", TODAY).is_none());
        assert!(problem(&i, "2026-11-26", TODAY).unwrap().contains("未来"));
        let ym = item(ItemType::YearMonth);
        assert_eq!(normalise(&ym, "2019年4月"), "2019-04");
        assert!(problem(&ym, "2019-13", TODAY).is_some());
    }

    #[test]
    fn numbers_respect_their_range_with_unit() {
        let mut i = item(ItemType::Decimal);
        i.min = Some(0.0);
        i.max = Some(300.0);
        i.unit = Some("kg".into());
        assert_eq!(normalise(&i, "６２．５"), "62.5");
        assert!(problem(&i, "62.5", TODAY).is_none());
        assert_eq!(
            problem(&i, "300.1", TODAY).unwrap(),
            "「項目」は0kgから300kgの範囲で入力してください。"
        );
        assert!(problem(&i, "abc", TODAY).unwrap().contains("数値"));
        assert!(problem(&i, "inf", TODAY).is_some());
        let n = item(ItemType::Integer);
        assert!(problem(&n, "1.5", TODAY).unwrap().contains("整数"));
    }

    #[test]
    fn insurer_numbers_carry_the_ministrys_check_digit() {
        // Worked examples of the 保険者番号設定要領 rule.
        assert_eq!(check_digit("3312001"), 5);
        assert_eq!(check_digit("5401602"), 7);
        assert_eq!(check_digit("13810"), 7);
        let i = item(ItemType::InsurerNo);
        assert!(problem(&i, "33120015", TODAY).is_none());
        assert!(problem(&i, "138107", TODAY).is_none());
        assert!(problem(&i, "33120016", TODAY).unwrap().contains("検証番号"));
        assert!(
            problem(&i, "3312001", TODAY)
                .unwrap()
                .contains("6桁または8桁")
        );
    }

    #[test]
    fn postal_codes_take_seven_digits() {
        let i = item(ItemType::Postal);
        assert_eq!(normalise(&i, "1008916"), "100-8916");
        assert_eq!(normalise(&i, "１００－８９１６"), "100-8916");
        assert!(problem(&i, "100-8916", TODAY).is_none());
        assert!(problem(&i, "10089", TODAY).is_some());
    }

    #[test]
    fn codes_are_checked_against_the_list_and_ordered() {
        let mut i = item(ItemType::Codes);
        i.codes = ["1", "2", "3"]
            .iter()
            .map(|c| crate::form::Code {
                code: c.to_string(),
                label: format!("選択{c}"),
                points: None,
            })
            .collect();
        assert_eq!(normalise(&i, "3, 1"), "1,3");
        assert!(problem(&i, "1,3", TODAY).is_none());
        assert!(problem(&i, "1,9", TODAY).is_some());
        i.ty = ItemType::Code;
        assert!(problem(&i, "2", TODAY).is_none());
        assert!(problem(&i, "4", TODAY).unwrap().contains("選択肢にない"));
    }
}
