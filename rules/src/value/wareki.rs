//! 和暦 (Japanese era) dates as people and hospital systems write them: `令和6年5月1日`,
//! `令和元年5月`, `R6.5.1`, `H31/4/30`. They are turned into the western year and then read like
//! any other date; a date outside its era (`平成31年5月1日`) is left as written so that the check
//! says it is not a valid date. It must never guess an era from a bare number.

use super::{Date, normalise_date, normalise_year_month};

/// A day as (year, month, day), comparable.
type Day = (i32, u8, u8);

/// (kanji, letter, first day, last day) of each era since 明治.
const ERAS: &[(&str, char, Day, Day)] = &[
    ("令和", 'R', (2019, 5, 1), (9999, 12, 31)),
    ("平成", 'H', (1989, 1, 8), (2019, 4, 30)),
    ("昭和", 'S', (1926, 12, 25), (1989, 1, 7)),
    ("大正", 'T', (1912, 7, 30), (1926, 12, 24)),
    ("明治", 'M', (1868, 1, 1), (1912, 7, 29)),
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
    fn a_date_outside_its_era_is_not_a_date() {
        assert_eq!(date("平成31年5月1日"), None);
        assert_eq!(date("令和元年4月30日"), None);
        assert_eq!(year_month("令和元年4月"), None);
        assert_eq!(date("令和0年5月1日"), None);
        assert_eq!(date("2024年5月1日"), None, "not an era date");
        assert_eq!(date("Rx.5.1"), None);
    }
}
