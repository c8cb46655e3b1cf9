//! The ministry's research page at the hub (`/research`): a published (already suppressed)
//! table of national counts with filters, its chart as server-rendered SVG (plotters' SVG
//! backend, nothing loaded from outside), and the research exports with their k-anonymity.
//!
//! The view shows what it is given: it never sees a raw count, and never decides suppression.

use maud::{Markup, PreEscaped, html};

use crate::{PageContext, layout};

/// One choice of a filter or dimension.
#[derive(Debug, Clone)]
pub struct Choice {
    pub value: String,
    pub label: String,
}

/// One export as listed.
#[derive(Debug, Clone)]
pub struct ExportLine {
    pub id: i64,
    pub created: String,
    pub sheets: u64,
    pub k: u64,
    pub below_k5: u64,
    /// (file, download URL).
    pub files: Vec<(String, String)>,
}

/// Everything the page shows.
#[derive(Debug, Clone)]
pub struct ResearchView {
    pub years: Vec<Choice>,
    pub diseases: Vec<Choice>,
    pub prefectures: Vec<Choice>,
    pub dims: Vec<Choice>,
    pub year: String,
    pub disease: String,
    pub prefecture: String,
    pub rows: String,
    pub cols: String,
    pub row_label: String,
    /// When the counts were built, or empty when never.
    pub counts_at: String,
    pub col_names: Vec<String>,
    /// (row name, cells as printed, the last one the row total); the last line is 計.
    pub lines: Vec<(String, Vec<String>)>,
    pub suppressed: usize,
    pub csv_url: String,
    pub exports: Vec<ExportLine>,
    /// What in the address could not be used as a filter, one sentence each (shown beside the
    /// filters); the selects show what is applied.
    pub filter_problems: Vec<String>,
}

/// A bar chart of (label, value) as SVG; `None` values are drawn as absent and marked `*`.
/// Returns an empty string when there is nothing to draw or the chart cannot be built.
pub fn bar_chart(title: &str, bars: &[(String, Option<u64>)]) -> String {
    use plotters::prelude::*;
    use plotters::style::text_anchor::{HPos, Pos, VPos};
    if bars.is_empty() {
        return String::new();
    }
    let max = bars.iter().filter_map(|b| b.1).max().unwrap_or(0).max(10);
    let width = (120 + bars.len() as u32 * 28).clamp(480, 1400);
    let mut svg = String::new();
    let drawn = (|| -> Result<(), Box<dyn std::error::Error>> {
        let root = SVGBackend::with_string(&mut svg, (width, 360)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 16))
            .margin(10)
            .x_label_area_size(70)
            .y_label_area_size(60)
            // One segment per bar: a segmented range holds both of its ends, so 0..n would draw
            // an empty (n + 1)-th column with a blank label.
            .build_cartesian_2d((0..bars.len() - 1).into_segmented(), 0u64..max + max / 10)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(bars.len())
            .x_label_formatter(&|x| match x {
                SegmentValue::CenterOf(i) => bars.get(*i).map(|b| b.0.clone()).unwrap_or_default(),
                _ => String::new(),
            })
            .x_label_style(
                ("sans-serif", 11)
                    .into_font()
                    .transform(FontTransform::Rotate90),
            )
            .y_desc("件数")
            .draw()?;
        chart.draw_series(
            Histogram::vertical(&chart)
                .style(RGBColor(0x2b, 0x5d, 0x9c).filled())
                .margin(3)
                .data(bars.iter().enumerate().filter_map(|(i, b)| Some((i, b.1?)))),
        )?;
        // A hidden value's `*` stands on the axis inside the plot, its bottom on the baseline,
        // so it never runs into the rotated label below the axis.
        chart.draw_series(
            bars.iter()
                .enumerate()
                .filter(|b| b.1.1.is_none())
                .map(|(i, _)| {
                    Text::new(
                        "*",
                        (SegmentValue::CenterOf(i), 0u64),
                        TextStyle::from(("sans-serif", 14).into_font())
                            .pos(Pos::new(HPos::Center, VPos::Bottom)),
                    )
                }),
        )?;
        root.present()?;
        Ok(())
    })();
    if drawn.is_err() { String::new() } else { svg }
}

fn select(name: &str, label: &str, choices: &[Choice], current: &str, any: bool) -> Markup {
    html! {
        label {
            (label) " "
            select name=(name) {
                @if any { option value="" { "すべて" } }
                @for c in choices {
                    option value=(c.value) selected[c.value == current] { (c.label) }
                }
            }
        }
    }
}

/// The page.
pub fn page(ctx: &PageContext<'_>, v: &ResearchView, chart_svg: &str) -> Markup {
    layout(
        ctx,
        "研究・統計",
        html! {
            p {
                "研究利用の同意がある登録済みの個票だけを数えています。10 未満のセルは「*」で秘匿し、"
                "合計から逆算できないよう他のセルも秘匿しています（二次秘匿）。"
                @if v.counts_at.is_empty() {
                    " 集計はまだありません。ハブの運用担当者が集計を作成すると、ここに表示されます。"
                } @else {
                    " 集計日時: " (v.counts_at)
                }
            }
            form.filters method="get" action="/research" {
                (select("year", "年", &v.years, &v.year, true))
                (select("disease", "疾病", &v.diseases, &v.disease, true))
                (select("prefecture", "都道府県", &v.prefectures, &v.prefecture, true))
                (select("rows", "行", &v.dims, &v.rows, false))
                (select("cols", "列", &v.dims, &v.cols, false))
                button type="submit" { "表示" }
                @for problem in &v.filter_problems {
                    p.error role="alert" { (problem) }
                }
            }
            @if !chart_svg.is_empty() {
                figure.chart {
                    (PreEscaped(chart_svg))
                    figcaption { (v.row_label) "ごとの件数（秘匿したものは * ）" }
                }
            }
            p { "秘匿したセル: " (v.suppressed) " 個 " a href=(v.csv_url) { "この表を CSV で保存" } }
            div.table-wrap {
                table.list.counts {
                    thead {
                        tr {
                            th scope="col" { (v.row_label) }
                            @for c in &v.col_names { th scope="col" { (c) } }
                            th scope="col" { "計" }
                        }
                    }
                    tbody {
                        @for (name, cells) in &v.lines {
                            tr {
                                th scope="row" { (name) }
                                @for c in cells { td.num { (c) } }
                            }
                        }
                    }
                }
            }
            h2 { "研究用データ出力" }
            @if v.exports.is_empty() {
                p {
                    "出力はまだありません。研究班に渡す研究用データは、ハブの運用担当者が作成すると"
                    "ここに一覧され、ダウンロードできます。"
                }
            } @else {
                table.list {
                    thead {
                        tr {
                            th scope="col" { "番号" }
                            th scope="col" { "作成日時" }
                            th scope="col" { "件数" }
                            th scope="col" { "k-匿名性 (k)" }
                            th scope="col" { "k<5 の群の件数" }
                            th scope="col" { "ファイル（ダウンロードは記録されます）" }
                        }
                    }
                    tbody {
                        @for e in &v.exports {
                            tr {
                                td { (e.id) }
                                td { (e.created) }
                                td.num { (e.sheets) }
                                td.num { (e.k) }
                                td.num { (e.below_k5) }
                                td {
                                    details {
                                        summary { (e.files.len()) " 個" }
                                        ul {
                                            @for (name, url) in &e.files {
                                                li { a href=(url) download { (name) } }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Where the baseline of every `<text>` whose content is `what` lies: its `y` moved by its
    /// `dy` (`em` is the font size, `ex` half of it), as a browser draws it.
    fn baselines(svg: &str, what: &str) -> Vec<f64> {
        let attr = |attrs: &str, name: &str| -> Option<String> {
            Some(
                attrs
                    .split(&format!(" {name}=\""))
                    .nth(1)?
                    .split('"')
                    .next()?
                    .to_string(),
            )
        };
        svg.split("<text")
            .skip(1)
            .filter_map(|t| {
                let (attrs, rest) = t.split_once('>')?;
                let content = rest.split("</text>").next()?.trim();
                (content == what).then_some(())?;
                let y: f64 = attr(attrs, "y")?.parse().ok()?;
                let size: f64 = attr(attrs, "font-size")?.parse().ok()?;
                let dy = attr(attrs, "dy").unwrap_or_default();
                let shift = if let Some(em) = dy.strip_suffix("em") {
                    em.parse::<f64>().ok()? * size
                } else if let Some(ex) = dy.strip_suffix("ex") {
                    ex.parse::<f64>().ok()? * size / 2.0
                } else {
                    0.0
                };
                Some(y + shift)
            })
            .collect()
    }

    /// The `*` of a hidden total sits above the axis; the rotated label 東京都 starts below it.
    #[test]
    fn a_hidden_bars_star_stays_clear_of_its_label() {
        let svg = bar_chart(
            "都道府県ごとの件数",
            &[("東京都".into(), None), ("大阪府".into(), Some(12))],
        );
        let star = baselines(&svg, "*");
        // The label is rotated about its (x, y): it starts at y and runs down.
        let label: Vec<f64> = svg
            .split("<text")
            .filter(|t| t.contains("東京都"))
            .filter_map(|t| t.split(" y=\"").nth(1)?.split('"').next()?.parse().ok())
            .collect();
        assert_eq!((star.len(), label.len()), (1, 1), "{svg}");
        // The star's baseline (its bottom) is above the label's start, with room between.
        assert!(
            star[0] + 4.0 < label[0],
            "star at {star:?}, label at {label:?}\n{svg}"
        );
    }

    /// One column per bar: no empty column with a blank label after the last bar.
    #[test]
    fn each_bar_has_its_label_and_no_blank_column_follows() {
        for n in [1usize, 2, 5] {
            let bars: Vec<(String, Option<u64>)> = (0..n)
                .map(|i| (format!("県{i}"), Some(10 + i as u64)))
                .collect();
            let svg = bar_chart("都道府県ごとの件数", &bars);
            let rotated: Vec<&str> = svg
                .split("<text")
                .skip(1)
                .filter(|t| t.contains("rotate(90"))
                .filter_map(|t| t.split_once('>')?.1.split("</text>").next())
                .map(str::trim)
                .collect();
            let expected: Vec<String> = bars.iter().map(|b| b.0.clone()).collect();
            assert_eq!(rotated, expected, "{svg}");
        }
    }
}
