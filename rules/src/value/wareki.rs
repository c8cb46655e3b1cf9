//! 和暦 (Japanese era) dates as people and hospital systems write them: `令和6年5月1日`,
//! `令和元年5月`, `R6.5.1`, `H31/4/30`. They are turned into the western year and then read like
//! any other date; a date outside its era (`平成31年5月1日`) is left as written so that the check
//! says it is not a valid date. It must never guess an era from a bare number.

use super::{Date, normalise_date, normalise_year_month};

/// A day as (year, month, day), comparable.
type Day = (i32, u8, u8);

/// (kanji, letter, first day, last day) of each era since 明治. 大正 and 昭和 began on the day
/// of the accession (即日改元: 1912-07-30 and 1926-12-25), so that day is written in either era
/// (明治45年7月30日 = 大正元年7月30日); 平成 began the day after (1989-01-08), and 令和 on the day
/// the 政令 set (2019-05-01, 元号を改める政令, 平成31年政令第143号). A date is shown in the newer era.
const ERAS: &[(&str, char, Day, Day)] = &[
    ("令和", 'R', (2019, 5, 1), (9999, 12, 31)),
    ("平成", 'H', (1989, 1, 8), (2019, 4, 30)),
    ("昭和", 'S', (1926, 12, 25), (1989, 1, 7)),
    ("大正", 'T', (1912, 7, 30), (1926, 12, 25)),
    ("明治", 'M', (1868, 1, 1), (1912, 7, 30)),
];

type Era = (Day, Day);

/// `s` (already narrowed to half-width) with its era and era year replaced by the western year,
/// and the era's first and last day; `None` when `s` does not start with an era.
fn western(s: &str) -> Option<(String, Era)> {
    let s = s.trim();
    let (rest, start, end) = ERAS.iter().find_map(|(kanji, letter, start, end)| {
        let rest = s.strip_prefix(kanji).or_else(|| {
            s.strip_prefix(*letter)
                .or_else(|| s.strip_prefix(letter.to_ascii_lowercase()))
        })?;
        Some((rest.trim_start(), *start, *end))
    })?;
    let (year, rest) = match rest.strip_prefix('元') {
        Some(r) => (1, r),
        None => {
            let digits = rest.chars().take_while(char::is_ascii_digit).count();
            (rest[..digits].parse::<i32>().ok()?, &rest[digits..])
        }
    };
    if year < 1 || !rest.starts_with(['年', '.', '/', '-']) {
        return None;
    }
    let rest = rest.strip_prefix('年').unwrap_or(rest);
    Some((
        format!(
            "{}年{}",
            start.0 + year - 1,
            rest.trim_start_matches(['.', '/', '-'])
        ),
        (start, end),
    ))
}

/// A 和暦 date as `YYYY-MM-DD`, if `s` is one and lies within its era.
pub(super) fn date(s: &str) -> Option<String> {
    let (w, (start, end)) = western(s)?;
    let d = Date::parse(&normalise_date(&w)?)?;
    let (y, m, dd) = (d.year, d.month, d.day);
    (start <= (y, m, dd) && (y, m, dd) <= end).then(|| d.to_string())
}

/// A 和暦 year-month as `YYYY-MM`, if `s` is one and its month lies within its era.
pub(super) fn year_month(s: &str) -> Option<String> {
    let (w, (start, end)) = western(s)?;
    let ym = normalise_year_month(&w)?;
    let (y, m): (i32, u8) = (ym.get(..4)?.parse().ok()?, ym.get(5..)?.parse().ok()?);
    ((start.0, start.1) <= (y, m) && (y, m) <= (end.0, end.1)).then_some(ym)
}

/// The era a day falls in: its kanji, its first year, the day as (year, month, day).
fn era_of(day: Day) -> Option<(&'static str, i32)> {
    ERAS.iter()
        .find(|(_, _, start, end)| *start <= day && day <= *end)
        .map(|(kanji, _, start, _)| (*kanji, start.0))
}

fn era_year(kanji: &str, first: i32, year: i32) -> String {
    match year - first + 1 {
        1 => format!("{kanji}元年"),
        n => format!("{kanji}{n}年"),
    }
}

/// `d` as 和暦: `令和5年4月1日`, `令和元年5月1日`; `None` before 明治.
pub fn era_date(d: Date) -> Option<String> {
    let (kanji, first) = era_of((d.year, d.month, d.day))?;
    Some(format!(
        "{}{}月{}日",
        era_year(kanji, first, d.year),
        d.month,
        d.day
    ))
}

/// A year-month `YYYY-MM` as 和暦 (`令和5年4月`), in the era of the month's first day
/// (`1989-01` is 昭和64年1月); `None` when it is no year-month or before 明治.
pub fn era_year_month(ym: &str) -> Option<String> {
    let (y, m): (i32, u8) = (ym.get(..4)?.parse().ok()?, ym.get(5..)?.parse().ok()?);
    if ym.len() != 7 || !(1..=12).contains(&m) {
        return None;
    }
    let (kanji, first) = era_of((y, m, 1))?;
    Some(format!("{}{}月", era_year(kanji, first, y), m))
}

/// When `s` (narrowed) is an era date that does not exist because its era had ended or not
/// begun (`平成31年5月1日`), what to say: the era's first and last day and the date in the
/// era it falls in. The eras' first and last days are [`ERAS`]'.
pub fn outside_era(s: &str) -> Option<String> {
    let (w, (start, end)) = western(s)?;
    let d = Date::parse(&normalise_date(&w)?)?;
    let day = (d.year, d.month, d.day);
    if start <= day && day <= end {
        return None;
    }
    let (kanji, ..) = ERAS
        .iter()
        .find(|(_, _, st, en)| *st == start && *en == end)?;
    let span = |(y, m, dd): Day| format!("{y}年{m}月{dd}日");
    let last = if end.0 == 9999 {
        "現在".to_string()
    } else {
        span(end)
    };
    let right = era_date(d)
        .map(|e| format!("この日付は {e} です。"))
        .unwrap_or_default();
    Some(format!(
        "{kanji}は{}から{last}までです。{right}",
        span(start)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn era_dates_become_western_dates() {
        assert_eq!(date("令和6年5月1日").as_deref(), Some("2024-05-01"));
        assert_eq!(date("令和元年5月1日").as_deref(), Some("2019-05-01"));
        assert_eq!(date("R6.5.1").as_deref(), Some("2024-05-01"));
        assert_eq!(date("h31/4/30").as_deref(), Some("2019-04-30"));
        assert_eq!(date("昭和50年6月15日").as_deref(), Some("1975-06-15"));
        assert_eq!(year_month("平成27年4月").as_deref(), Some("2015-04"));
        assert_eq!(year_month("令和元年5月").as_deref(), Some("2019-05"));
    }

    #[test]
    fn dates_are_written_back_in_their_era_and_the_boundary_is_the_official_one() {
        let d = |s: &str| Date::parse(s).unwrap();
        assert_eq!(era_date(d("2023-04-01")).as_deref(), Some("令和5年4月1日"));
        assert_eq!(
            era_date(d("2019-04-30")).as_deref(),
            Some("平成31年4月30日")
        );
        assert_eq!(era_date(d("2019-05-01")).as_deref(), Some("令和元年5月1日"));
        // 即日改元: the last day of 明治 and of 大正 is also the first of the next era.
        assert_eq!(date("大正15年12月25日").as_deref(), Some("1926-12-25"));
        assert_eq!(date("T15.12.25").as_deref(), Some("1926-12-25"));
        assert_eq!(date("M45.7.30").as_deref(), Some("1912-07-30"));
        assert_eq!(
            era_date(d("1926-12-25")).as_deref(),
            Some("昭和元年12月25日")
        );
        assert!(outside_era("T15.12.26").is_some());
        assert_eq!(era_date(d("1989-01-07")).as_deref(), Some("昭和64年1月7日"));
        assert_eq!(era_date(d("1989-01-08")).as_deref(), Some("平成元年1月8日"));
        assert_eq!(era_year_month("2023-04").as_deref(), Some("令和5年4月"));
        assert_eq!(era_year_month("2019-05").as_deref(), Some("令和元年5月"));
        for typed in [
            "令和5年4月1日",
            "R5.4.1",
            "H31.4.30",
            "平成31年4月30日",
            "令和元年5月1日",
        ] {
            let western = date(typed).unwrap();
            assert_eq!(
                date(&era_date(d(&western)).unwrap()),
                Some(western),
                "{typed} round-trips"
            );
        }
        assert_eq!(year_month("R5.4").as_deref(), Some("2023-04"));
        let why = outside_era("平成31年5月1日").unwrap();
        assert!(
            why.contains("2019年4月30日まで") && why.contains("令和元年5月1日"),
            "{why}"
        );
        assert_eq!(outside_era("平成31年4月30日"), None);
    }

    #[test]
    fn a_date_outside_its_era_is_not_a_date() {
        assert_eq!(date("平成31年5月1日"), None);
        assert_eq!(date("令和元年4月30日"), None);
        assert_eq!(year_month("令和元年4月"), None);
        assert_eq!(date("令和0年5月1日"), None);
        assert_eq!(date("2024年5月1日"), None, "not an era date");
        assert_eq!(date("Rx.5.1"), None);
    }
}
