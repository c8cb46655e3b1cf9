//! The ministry's research page at the hub: `GET /research` (published counts as a table and an
//! SVG chart, filters by year, disease and prefecture), `GET /research/table.csv` (the same
//! table), `GET /research/exports/{id}/{*file}` (a file of an export; every download audited by
//! `Node::research_download`). Decides nothing about access or suppression: the domain does.

use std::collections::BTreeMap;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;

use crate::Error;
use crate::http::AppState;
use crate::http::shared::page::{Ctx, error_page, jst};
use crate::http::shared::session::UiSession;
use crate::research::stats::{Dim, Filter, Published};
use nsdb_ui::research::{Choice, ExportLine, ResearchView};

/// The page's query: filters and the table's two dimensions.
#[derive(Debug, Default, Deserialize)]
struct ResearchQuery {
    year: Option<String>,
    disease: Option<String>,
    prefecture: Option<String>,
    rows: Option<String>,
    cols: Option<String>,
}

/// The query as applied: only values the stored counts hold are used as filters, and each
/// value that could not be used is said in `problems` (shown beside the filters; the CSV
/// refuses). The selects show exactly what is applied.
#[derive(Debug)]
struct Applied {
    filter: Filter,
    rows: Dim,
    cols: Dim,
    year: String,
    disease: String,
    prefecture: String,
    problems: Vec<String>,
}

/// A value from the address, shortened for a message.
fn quoted(v: &str) -> String {
    let short: String = v.chars().take(20).collect();
    if short.len() < v.len() {
        format!("「{short}…」")
    } else {
        format!("「{short}」")
    }
}

impl ResearchQuery {
    /// Checks the query against the values the counts hold (`years`, `diseases`,
    /// `prefectures`).
    fn apply(&self, years: &[String], diseases: &[String], prefectures: &[String]) -> Applied {
        let given = |s: &Option<String>| {
            s.as_deref()
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_string)
        };
        let mut a = Applied {
            filter: Filter::default(),
            rows: Dim::Prefecture,
            cols: Dim::AgeBand,
            year: String::new(),
            disease: String::new(),
            prefecture: String::new(),
            problems: Vec::new(),
        };
        if let Some(y) = given(&self.year) {
            match y.parse::<i32>() {
                Err(_) => a.problems.push(format!(
                    "年{}は西暦の年（例: 2026）で選んでください。年では絞り込んでいません。",
                    quoted(&y)
                )),
                Ok(n) if !years.contains(&n.to_string()) => a.problems.push(format!(
                    "{n}年の集計はありません（集計のある年: {}）。年では絞り込んでいません。",
                    if years.is_empty() {
                        "なし".to_string()
                    } else {
                        years.join("、")
                    }
                )),
                Ok(n) => {
                    a.filter.year = Some(n);
                    a.year = n.to_string();
                }
            }
        }
        for (dim, value, list, slot, filter) in [
            (
                Dim::Disease,
                given(&self.disease),
                diseases,
                &mut a.disease,
                &mut a.filter.disease,
            ),
            (
                Dim::Prefecture,
                given(&self.prefecture),
                prefectures,
                &mut a.prefecture,
                &mut a.filter.prefecture,
            ),
        ] {
            let Some(v) = value else { continue };
            if list.contains(&v) {
                *slot = v.clone();
                *filter = Some(v);
            } else {
                a.problems.push(format!(
                    "{}{}の集計はありません。{}では絞り込んでいません。",
                    dim.label(),
                    quoted(&v),
                    dim.label()
                ));
            }
        }
        let choices = Dim::ALL.map(|d| d.label()).join("・");
        let dim = |given: Option<String>, what: &str, fallback: Dim, problems: &mut Vec<String>| {
            match given {
                None => fallback,
                Some(v) => Dim::parse(&v).unwrap_or_else(|| {
                    problems.push(format!(
                        "表の{what}{}は選べません（{choices}から選びます）。{}にしています。",
                        quoted(&v),
                        fallback.label()
                    ));
                    fallback
                }),
            }
        };
        a.rows = dim(given(&self.rows), "行", Dim::Prefecture, &mut a.problems);
        let other = if a.rows == Dim::AgeBand {
            Dim::Sex
        } else {
            Dim::AgeBand
        };
        a.cols = dim(given(&self.cols), "列", other, &mut a.problems);
        if a.cols == a.rows {
            if given(&self.cols).is_some() {
                a.problems.push(format!(
                    "行と列に同じ「{}」は選べません。列を「{}」にしています。",
                    a.rows.label(),
                    other.label()
                ));
            }
            a.cols = other;
        }
        a
    }
}

impl Applied {
    fn query_string(&self) -> String {
        serde_urlencoded::to_string([
            ("year", self.year.clone()),
            ("disease", self.disease.clone()),
            ("prefecture", self.prefecture.clone()),
            ("rows", self.rows.name().to_string()),
            ("cols", self.cols.name().to_string()),
        ])
        .unwrap_or_default()
    }
}

/// The values the stored counts hold: years, diseases, prefectures.
async fn filter_values(
    node: &crate::Node,
    p: &crate::accounts::policy::Principal,
) -> crate::Result<(Vec<String>, Vec<String>, Vec<String>)> {
    Ok((
        node.research_values(p, Dim::Year).await?,
        node.research_values(p, Dim::Disease).await?,
        node.research_values(p, Dim::Prefecture).await?,
    ))
}

fn choices(values: Vec<String>, names: Option<&BTreeMap<String, String>>) -> Vec<Choice> {
    values
        .into_iter()
        .map(|v| Choice {
            label: names
                .and_then(|n| n.get(&v))
                .cloned()
                .unwrap_or_else(|| v.clone()),
            value: v,
        })
        .collect()
}

async fn page(
    State(node): State<AppState>,
    s: UiSession,
    Query(q): Query<ResearchQuery>,
) -> Response {
    let ctx = Ctx::new(&node, &s);
    let p = &s.principal;
    let result = async {
        let (years, diseases, prefectures) = filter_values(&node, p).await?;
        let a = q.apply(&years, &diseases, &prefectures);
        let (table, at) = node
            .research_table(p, a.filter.clone(), a.rows, a.cols)
            .await?;
        let exports = node.research_exports(p).await?;
        Ok::<_, Error>((a, table, at, years, diseases, prefectures, exports))
    }
    .await;
    let (a, table, at, years, diseases, prefectures, exports) = match result {
        Ok(r) => r,
        Err(e) => return error_page(Some(&ctx), e),
    };
    let (rows, cols) = (a.rows, a.cols);
    let names = crate::research::disease_labels(&node.catalogue);
    let label = |dim: Dim, v: &str| -> String {
        match (dim, names.get(v)) {
            (Dim::Disease, Some(n)) => n.clone(),
            _ => v.to_string(),
        }
    };
    let bars: Vec<(String, Option<u64>)> = table
        .rows
        .iter()
        .enumerate()
        .map(|(i, r)| (r.clone(), table.cells[i].last().and_then(|c| c.shown())))
        .collect();
    let chart = nsdb_ui::research::bar_chart(&format!("{}ごとの件数", rows.label()), &bars);
    let view = ResearchView {
        years: choices(years, None),
        diseases: choices(diseases, Some(&names)),
        prefectures: choices(prefectures, None),
        dims: Dim::ALL
            .iter()
            .map(|d| Choice {
                value: d.name().into(),
                label: d.label().into(),
            })
            .collect(),
        year: a.year.clone(),
        disease: a.disease.clone(),
        prefecture: a.prefecture.clone(),
        rows: rows.name().into(),
        cols: cols.name().into(),
        row_label: rows.label().into(),
        counts_at: at.map(|ms| jst(ms, true)).unwrap_or_default(),
        col_names: table.cols.iter().map(|c| label(cols, c)).collect(),
        lines: lines(&table, rows, &label),
        suppressed: table.suppressed(),
        csv_url: format!("/research/table.csv?{}", a.query_string()),
        filter_problems: a.problems.clone(),
        exports: exports
            .into_iter()
            .map(|e| ExportLine {
                id: e.id,
                created: jst(e.created_at_ms, true),
                sheets: e.sheets,
                k: e.k,
                below_k5: e.below_k5,
                files: e
                    .files
                    .iter()
                    .map(|f| (f.clone(), format!("/research/exports/{}/{f}", e.id)))
                    .collect(),
            })
            .collect(),
    };
    Html(nsdb_ui::research::page(&ctx.page(), &view, &chart).into_string()).into_response()
}

fn lines(
    t: &Published,
    rows: Dim,
    label: &dyn Fn(Dim, &str) -> String,
) -> Vec<(String, Vec<String>)> {
    t.cells
        .iter()
        .enumerate()
        .map(|(i, cells)| {
            let name = t
                .rows
                .get(i)
                .map(|r| label(rows, r))
                .unwrap_or_else(|| "計".into());
            (name, cells.iter().map(|c| c.text()).collect())
        })
        .collect()
}

async fn table_csv(
    State(node): State<AppState>,
    s: UiSession,
    Query(q): Query<ResearchQuery>,
) -> Response {
    let ctx = Ctx::new(&node, &s);
    let p = &s.principal;
    let result = async {
        let (years, diseases, prefectures) = filter_values(&node, p).await?;
        let a = q.apply(&years, &diseases, &prefectures);
        if !a.problems.is_empty() {
            // A file that looks like the asked-for table but is not: refused, saying why.
            return Err(Error::Invalid(a.problems.join(" ")));
        }
        let t = node.research_table(p, a.filter, a.rows, a.cols).await?;
        Ok::<_, Error>((t, a.rows, a.cols))
    }
    .await;
    match result {
        Ok(((t, _), rows, cols)) => (
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
                (
                    header::CONTENT_DISPOSITION,
                    format!(
                        "attachment; filename=\"counts_{}_by_{}.csv\"",
                        rows.name(),
                        cols.name()
                    ),
                ),
            ],
            t.csv(rows.label()),
        )
            .into_response(),
        Err(e) => error_page(Some(&ctx), e),
    }
}

async fn download(
    State(node): State<AppState>,
    s: UiSession,
    Path((id, file)): Path<(i64, String)>,
    method: axum::http::Method,
    uri: axum::http::Uri,
) -> Response {
    // A bulk export: behind 再認証 (docs/security.md).
    if let Err(prompt) = crate::http::shared::reauth::guard_download(
        &node,
        &s,
        &method,
        &uri,
        &Default::default(),
        "/research",
    )
    .await
    {
        return prompt;
    }
    let ctx = Ctx::new(&node, &s);
    let path = match node.research_download(&s.principal, id, file.clone()).await {
        Ok(p) => p,
        Err(e) => return error_page(Some(&ctx), e),
    };
    let bytes = match tokio::task::spawn_blocking(move || std::fs::read(path)).await {
        Ok(Ok(b)) => b,
        _ => {
            return error_page(
                Some(&ctx),
                Error::Invalid(format!(
                    "出力 {id} のファイル {file} を読めません（移動または削除された可能性があります）。"
                )),
            );
        }
    };
    let name = file.rsplit('/').next().unwrap_or("export").to_string();
    let ty = match name.rsplit('.').next() {
        Some("csv") => "text/csv; charset=utf-8",
        Some("json") => "application/json",
        _ => "application/octet-stream",
    };
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, ty.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        bytes,
    )
        .into_response()
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/research", get(page))
        .route("/research/table.csv", get(table_csv))
        .route("/research/exports/{id}/{*file}", get(download))
}
