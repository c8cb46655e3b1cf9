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

impl ResearchQuery {
    fn filter(&self) -> Filter {
        let some = |s: &Option<String>| s.clone().filter(|v| !v.trim().is_empty());
        Filter {
            year: some(&self.year).and_then(|y| y.parse().ok()),
            disease: some(&self.disease),
            prefecture: some(&self.prefecture),
        }
    }

    fn dims(&self) -> (Dim, Dim) {
        let rows = self
            .rows
            .as_deref()
            .and_then(Dim::parse)
            .unwrap_or(Dim::Prefecture);
        let cols = self
            .cols
            .as_deref()
            .and_then(Dim::parse)
            .filter(|c| *c != rows)
            .unwrap_or(if rows == Dim::AgeBand {
                Dim::Sex
            } else {
                Dim::AgeBand
            });
        (rows, cols)
    }

    fn query_string(&self) -> String {
        serde_urlencoded::to_string([
            ("year", self.year.clone().unwrap_or_default()),
            ("disease", self.disease.clone().unwrap_or_default()),
            ("prefecture", self.prefecture.clone().unwrap_or_default()),
            ("rows", self.dims().0.name().to_string()),
            ("cols", self.dims().1.name().to_string()),
        ])
        .unwrap_or_default()
    }
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
    let (rows, cols) = q.dims();
    let p = &s.principal;
    let result = async {
        let (table, at) = node.research_table(p, q.filter(), rows, cols).await?;
        let years = node.research_values(p, Dim::Year).await?;
        let diseases = node.research_values(p, Dim::Disease).await?;
        let prefectures = node.research_values(p, Dim::Prefecture).await?;
        let exports = node.research_exports(p).await?;
        Ok::<_, Error>((table, at, years, diseases, prefectures, exports))
    }
    .await;
    let (table, at, years, diseases, prefectures, exports) = match result {
        Ok(r) => r,
        Err(e) => return error_page(Some(&ctx), e),
    };
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
        year: q.year.clone().unwrap_or_default(),
        disease: q.disease.clone().unwrap_or_default(),
        prefecture: q.prefecture.clone().unwrap_or_default(),
        rows: rows.name().into(),
        cols: cols.name().into(),
        row_label: rows.label().into(),
        counts_at: at.map(|ms| jst(ms, true)).unwrap_or_default(),
        col_names: table.cols.iter().map(|c| label(cols, c)).collect(),
        lines: lines(&table, rows, &label),
        suppressed: table.suppressed(),
        csv_url: format!("/research/table.csv?{}", q.query_string()),
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
    let (rows, cols) = q.dims();
    match node
        .research_table(&s.principal, q.filter(), rows, cols)
        .await
    {
        Ok((t, _)) => (
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
