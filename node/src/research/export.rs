//! `nsdb research export`: consented, de-identified sheets as Parquet and CSV in hive-style
//! folders, with a data dictionary and a manifest carrying the k-anonymity figure.
//!
//! Layout under the output folder (docs/research.md):
//!
//! ```text
//! manifest.json
//! dictionary/forms.csv  items.csv  codes.csv  dropped.csv
//! parquet/wide/year=YYYY/disease=NNN/<form>.parquet   one row per sheet, one column per item
//! parquet/long/year=YYYY/disease=NNN/<form>.parquet   one row per (sheet, item, value)
//! csv/wide/… csv/long/…                                the same as UTF-8 CSV with BOM
//! ```
//!
//! Rows arrive from the research rows (`rows::each`) sorted by (year, form), so one partition's writers are open at a
//! time and at most [`BATCH`] records are held; row groups are flushed every
//! [`ROW_GROUP`] rows. This module must never hold all sheets, nor write outside the folder.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::builder::{Float64Builder, Int64Builder, StringBuilder};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema};
use nsdb_rules::{Catalogue, FormDef, ItemType};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use rusqlite::Connection;
use serde::Serialize;

use super::deid::{self, ItemRule};
use super::{ResearchError, ResearchRecord, ScanCounts, Secret, disease_key, rows};

/// Records held before they are written as one batch.
pub const BATCH: usize = 4096;
/// Rows per Parquet row group.
pub const ROW_GROUP: usize = 65_536;
/// Groups smaller than this are counted in [`KAnonymity::below_k5`].
pub const K_REPORTED: u64 = 5;

/// Which files an export writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Formats {
    pub parquet: bool,
    pub csv: bool,
}

impl Default for Formats {
    fn default() -> Self {
        Formats {
            parquet: true,
            csv: true,
        }
    }
}

/// k-anonymity of an export over the quasi-identifiers (age band, sex, prefecture, disease).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct KAnonymity {
    /// The size of the smallest group (0 when nothing was exported).
    pub k: u64,
    /// Distinct groups.
    pub groups: u64,
    /// Sheets in groups smaller than [`K_REPORTED`].
    pub below_k5: u64,
}

/// What an export wrote: `manifest.json` holds the same.
#[derive(Debug, Clone, Serialize)]
pub struct ExportSummary {
    pub created_at_ms: i64,
    pub catalogue_version: String,
    /// When the pseudonym secret was made: exports with the same value link patients.
    pub secret_since_ms: i64,
    pub counts: ScanCounts,
    pub k_anonymity: KAnonymity,
    /// Paths relative to the output folder, `/`-separated.
    pub files: Vec<String>,
}

/// Writes an export of every kept research row into `out` (created; must be empty or new).
/// The rows must be up to date (`Node::research_refresh_rows`; the export command does it).
/// Errors: [`ResearchError::NotEmpty`] for a folder holding files, [`ResearchError::Write`]
/// naming the file that could not be written.
pub fn export(
    c: &Connection,
    catalogue: &Catalogue,
    secret: &Secret,
    out: &Path,
    formats: Formats,
    now_ms: i64,
) -> Result<ExportSummary, ResearchError> {
    if out.exists()
        && std::fs::read_dir(out)
            .map_err(|e| write_err(out, e))?
            .next()
            .is_some()
    {
        return Err(ResearchError::NotEmpty(out.display().to_string()));
    }
    std::fs::create_dir_all(out).map_err(|e| write_err(out, e))?;
    let mut files = dictionary(catalogue, out)?;
    let mut open: Option<Partition> = None;
    let mut groups: HashMap<(String, String, String, String), u64> = HashMap::new();
    let counts = rows::each(c, |r| {
        *groups
            .entry((
                r.age_band.clone(),
                r.sex.clone(),
                r.prefecture.clone(),
                r.disease.clone(),
            ))
            .or_default() += 1;
        let same = open
            .as_ref()
            .is_some_and(|p| p.year == r.year && p.form_id == r.form_id);
        if !same {
            if let Some(p) = open.take() {
                files.extend(p.finish()?);
            }
            let Some(form) = catalogue.form(&r.form_id) else {
                return Ok(());
            };
            open = Some(Partition::open(out, form, r.year, formats, secret)?);
        }
        if let Some(p) = open.as_mut() {
            p.push(r)?;
        }
        Ok(())
    })?;
    if let Some(p) = open.take() {
        files.extend(p.finish()?);
    }
    let k_anonymity = KAnonymity {
        k: groups.values().copied().min().unwrap_or(0),
        groups: groups.len() as u64,
        below_k5: groups.values().filter(|n| **n < K_REPORTED).sum(),
    };
    files.push("manifest.json".into());
    let summary = ExportSummary {
        created_at_ms: now_ms,
        catalogue_version: catalogue.version().to_string(),
        secret_since_ms: secret.since_ms,
        counts,
        k_anonymity,
        files,
    };
    let manifest = out.join("manifest.json");
    let text = serde_json::to_string_pretty(&summary).unwrap_or_default();
    std::fs::write(&manifest, text).map_err(|e| write_err(&manifest, e))?;
    Ok(summary)
}

fn write_err(path: &Path, e: impl std::fmt::Display) -> ResearchError {
    ResearchError::Write {
        path: path.display().to_string(),
        reason: e.to_string(),
    }
}

/// The column name of an item: its id with `.` as `__` (SQL engines need no quoting).
pub fn column_name(item_id: &str) -> String {
    item_id.replace('.', "__")
}

/// The columns every wide table starts with (name, type, meaning).
pub const WIDE_COLUMNS: &[(&str, &str, &str)] = &[
    (
        "record",
        "string",
        "個票の仮名ID（HMAC-SHA256、出力ごとに同じ秘密鍵なら不変）",
    ),
    (
        "patient",
        "string",
        "患者の仮名ID（カナ氏名・生年月日・性別の鍵付きハッシュ。年度をまたいで同じ）",
    ),
    ("form_version", "string", "様式の版"),
    ("age", "int64", "記載年月日時点の年齢（歳）"),
    ("age_band", "string", "5歳階級（00-04 … 90+、不明）"),
    ("sex", "string", "性別（1 男、2 女、空 未記載）"),
    (
        "prefecture",
        "string",
        "都道府県（患者住所、なければ医療機関の所在地）",
    ),
    (
        "severity",
        "string",
        "重症度基準（該当・非該当・未記載・対象外）",
    ),
];

/// The columns of every long table.
pub const LONG_COLUMNS: &[&str] = &["record", "form_id", "item", "value"];

#[derive(Debug, Clone, Copy)]
enum Kind {
    Int,
    Float,
    Text,
}

struct Column {
    item: String,
    kind: Kind,
}

/// The writers of one (year, form): wide and long, Parquet and CSV.
struct Partition {
    year: i32,
    form_id: String,
    columns: Vec<Column>,
    wide_schema: Arc<Schema>,
    long_schema: Arc<Schema>,
    wide_parquet: Option<ArrowWriter<File>>,
    long_parquet: Option<ArrowWriter<File>>,
    wide_csv: Option<arrow_csv::Writer<BufWriter<File>>>,
    long_csv: Option<arrow_csv::Writer<BufWriter<File>>>,
    paths: Vec<(PathBuf, String)>,
    buffer: Vec<ResearchRecord>,
}

fn meta(pairs: &[(&str, Option<&str>)]) -> HashMap<String, String> {
    pairs
        .iter()
        .filter_map(|(k, v)| v.map(|v| (k.to_string(), v.to_string())))
        .collect()
}

fn wide_schema(form: &FormDef, secret: &Secret) -> (Arc<Schema>, Vec<Column>) {
    let mut fields: Vec<Field> = WIDE_COLUMNS
        .iter()
        .map(|(name, ty, label)| {
            let dt = if *ty == "int64" {
                DataType::Int64
            } else {
                DataType::Utf8
            };
            Field::new(*name, dt, true).with_metadata(meta(&[("label", Some(label))]))
        })
        .collect();
    let mut columns = Vec::new();
    for (item, rule) in deid::kept_items(form) {
        let kind = match (item.ty, rule) {
            (ItemType::Integer, _) => Kind::Int,
            (ItemType::Decimal, _) => Kind::Float,
            _ => Kind::Text,
        };
        let dt = match kind {
            Kind::Int => DataType::Int64,
            Kind::Float => DataType::Float64,
            Kind::Text => DataType::Utf8,
        };
        let ty = match rule {
            ItemRule::YearMonth => "date→yearmonth".to_string(),
            _ => format!("{:?}", item.ty).to_lowercase(),
        };
        fields.push(
            Field::new(column_name(&item.id), dt, true).with_metadata(meta(&[
                ("item", Some(&item.id)),
                ("label", Some(&item.label)),
                ("unit", item.unit.as_deref()),
                ("type", Some(&ty)),
                ("codelist", item.codelist.as_deref()),
            ])),
        );
        columns.push(Column {
            item: item.id.clone(),
            kind,
        });
    }
    let schema = Schema::new(fields).with_metadata(meta(&[
        ("form_id", Some(&form.id)),
        ("form_version", Some(&form.version)),
        ("form_title", Some(&form.title)),
        ("disease", Some(&form.disease)),
        (
            "pseudonym_secret_since_ms",
            Some(&secret.since_ms.to_string()),
        ),
    ]));
    (Arc::new(schema), columns)
}

fn long_schema(form: &FormDef) -> Arc<Schema> {
    Arc::new(
        Schema::new(
            LONG_COLUMNS
                .iter()
                .map(|n| Field::new(*n, DataType::Utf8, true))
                .collect::<Vec<_>>(),
        )
        .with_metadata(meta(&[
            ("form_id", Some(&form.id)),
            ("form_version", Some(&form.version)),
        ])),
    )
}

fn csv_writer(path: &Path) -> Result<arrow_csv::Writer<BufWriter<File>>, ResearchError> {
    let f = File::create(path).map_err(|e| write_err(path, e))?;
    let mut w = BufWriter::with_capacity(1 << 16, f);
    // The BOM makes Excel read the file as UTF-8.
    w.write_all(b"\xEF\xBB\xBF")
        .map_err(|e| write_err(path, e))?;
    Ok(arrow_csv::WriterBuilder::new().with_header(true).build(w))
}

fn parquet_writer(path: &Path, schema: Arc<Schema>) -> Result<ArrowWriter<File>, ResearchError> {
    let f = File::create(path).map_err(|e| write_err(path, e))?;
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_size(ROW_GROUP)
        .build();
    ArrowWriter::try_new(f, schema, Some(props)).map_err(|e| write_err(path, e))
}

impl Partition {
    fn open(
        out: &Path,
        form: &FormDef,
        year: i32,
        formats: Formats,
        secret: &Secret,
    ) -> Result<Partition, ResearchError> {
        let (wide, columns) = wide_schema(form, secret);
        let long = long_schema(form);
        let folder = format!("year={year:04}/disease={}", disease_key(form));
        let mut paths = Vec::new();
        let mut path = |table: &str, ext: &str| -> Result<PathBuf, ResearchError> {
            let rel = format!("{ext}/{table}/{folder}/{}.{ext}", form.id);
            let p = out.join(&rel);
            if let Some(dir) = p.parent() {
                std::fs::create_dir_all(dir).map_err(|e| write_err(dir, e))?;
            }
            paths.push((p.clone(), rel));
            Ok(p)
        };
        let (wide_parquet, long_parquet) = if formats.parquet {
            (
                Some(parquet_writer(&path("wide", "parquet")?, wide.clone())?),
                Some(parquet_writer(&path("long", "parquet")?, long.clone())?),
            )
        } else {
            (None, None)
        };
        let (wide_csv, long_csv) = if formats.csv {
            (
                Some(csv_writer(&path("wide", "csv")?)?),
                Some(csv_writer(&path("long", "csv")?)?),
            )
        } else {
            (None, None)
        };
        Ok(Partition {
            year,
            form_id: form.id.clone(),
            columns,
            wide_schema: wide,
            long_schema: long,
            wide_parquet,
            long_parquet,
            wide_csv,
            long_csv,
            paths,
            buffer: Vec::with_capacity(BATCH),
        })
    }

    fn push(&mut self, r: ResearchRecord) -> Result<(), ResearchError> {
        self.buffer.push(r);
        if self.buffer.len() >= BATCH {
            self.flush()?;
        }
        Ok(())
    }

    fn err(&self, e: impl std::fmt::Display) -> ResearchError {
        let path = self
            .paths
            .first()
            .map(|(p, _)| p.display().to_string())
            .unwrap_or_default();
        ResearchError::Write {
            path,
            reason: e.to_string(),
        }
    }

    fn flush(&mut self) -> Result<(), ResearchError> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let wide = self.wide_batch().map_err(|e| self.err(e))?;
        let long = self.long_batch().map_err(|e| self.err(e))?;
        self.buffer.clear();
        if let Some(w) = self.wide_parquet.as_mut() {
            w.write(&wide).map_err(|e| self.err(e))?;
        }
        if let Some(w) = self.long_parquet.as_mut() {
            w.write(&long).map_err(|e| self.err(e))?;
        }
        if let Some(w) = self.wide_csv.as_mut() {
            w.write(&wide).map_err(|e| self.err(e))?;
        }
        if let Some(w) = self.long_csv.as_mut() {
            w.write(&long).map_err(|e| self.err(e))?;
        }
        Ok(())
    }

    fn wide_batch(&self) -> Result<RecordBatch, arrow_schema::ArrowError> {
        let rows = &self.buffer;
        let text = |f: &dyn Fn(&ResearchRecord) -> &str| -> ArrayRef {
            let mut b = StringBuilder::with_capacity(rows.len(), rows.len() * 16);
            for r in rows {
                let v = f(r);
                if v.is_empty() {
                    b.append_null();
                } else {
                    b.append_value(v);
                }
            }
            Arc::new(b.finish())
        };
        let mut arrays: Vec<ArrayRef> = vec![
            text(&|r| r.record.as_str()),
            text(&|r| r.patient.as_str()),
            text(&|r| r.form_version.as_str()),
            {
                let mut b = Int64Builder::with_capacity(rows.len());
                for r in rows {
                    b.append_option(r.age);
                }
                Arc::new(b.finish())
            },
            text(&|r| r.age_band.as_str()),
            text(&|r| r.sex.as_str()),
            text(&|r| r.prefecture.as_str()),
            text(&|r| r.severity.as_str()),
        ];
        // Each record's items are in form order, as the columns are: one cursor per record.
        let mut cursors = vec![0usize; rows.len()];
        for col in &self.columns {
            let mut value = |i: usize| -> Option<&str> {
                let items = &rows[i].items;
                let c = &mut cursors[i];
                if *c < items.len() && items[*c].0 == col.item {
                    *c += 1;
                    Some(items[*c - 1].1.as_str())
                } else {
                    None
                }
            };
            let array: ArrayRef = match col.kind {
                Kind::Int => {
                    let mut b = Int64Builder::with_capacity(rows.len());
                    for i in 0..rows.len() {
                        b.append_option(value(i).and_then(|v| v.parse().ok()));
                    }
                    Arc::new(b.finish())
                }
                Kind::Float => {
                    let mut b = Float64Builder::with_capacity(rows.len());
                    for i in 0..rows.len() {
                        b.append_option(value(i).and_then(|v| v.parse().ok()));
                    }
                    Arc::new(b.finish())
                }
                Kind::Text => {
                    let mut b = StringBuilder::with_capacity(rows.len(), rows.len() * 4);
                    for i in 0..rows.len() {
                        b.append_option(value(i));
                    }
                    Arc::new(b.finish())
                }
            };
            arrays.push(array);
        }
        RecordBatch::try_new(self.wide_schema.clone(), arrays)
    }

    fn long_batch(&self) -> Result<RecordBatch, arrow_schema::ArrowError> {
        let n: usize = self.buffer.iter().map(|r| r.items.len()).sum();
        let mut record = StringBuilder::with_capacity(n, n * 32);
        let mut form = StringBuilder::with_capacity(n, n * 10);
        let mut item = StringBuilder::with_capacity(n, n * 16);
        let mut value = StringBuilder::with_capacity(n, n * 4);
        for r in &self.buffer {
            for (k, v) in &r.items {
                record.append_value(&r.record);
                form.append_value(&r.form_id);
                item.append_value(k);
                value.append_value(v);
            }
        }
        RecordBatch::try_new(
            self.long_schema.clone(),
            vec![
                Arc::new(record.finish()),
                Arc::new(form.finish()),
                Arc::new(item.finish()),
                Arc::new(value.finish()),
            ],
        )
    }

    /// Writes what is buffered and closes the files; returns their relative paths.
    fn finish(mut self) -> Result<Vec<String>, ResearchError> {
        self.flush()?;
        if let Some(w) = self.wide_parquet.take() {
            w.close().map_err(|e| self.err(e))?;
        }
        if let Some(w) = self.long_parquet.take() {
            w.close().map_err(|e| self.err(e))?;
        }
        for w in [self.wide_csv.take(), self.long_csv.take()]
            .into_iter()
            .flatten()
        {
            w.into_inner().flush().map_err(|e| self.err(e))?;
        }
        Ok(self.paths.into_iter().map(|(_, rel)| rel).collect())
    }
}

fn csv_err(p: &Path) -> impl Fn(csv::Error) -> ResearchError + '_ {
    move |e| write_err(p, e)
}

/// Writes the data dictionary: forms, kept items (column, label, type, unit), code lists, and
/// the items left out with the reason. Returns the relative paths.
fn dictionary(catalogue: &Catalogue, out: &Path) -> Result<Vec<String>, ResearchError> {
    let dir = out.join("dictionary");
    std::fs::create_dir_all(&dir).map_err(|e| write_err(&dir, e))?;
    let open = |name: &str| -> Result<(csv::Writer<BufWriter<File>>, PathBuf), ResearchError> {
        let p = dir.join(name);
        let f = File::create(&p).map_err(|e| write_err(&p, e))?;
        let mut w = BufWriter::new(f);
        w.write_all(b"\xEF\xBB\xBF").map_err(|e| write_err(&p, e))?;
        Ok((csv::Writer::from_writer(w), p))
    };
    let (mut forms, fp) = open("forms.csv")?;
    let (mut items, ip) = open("items.csv")?;
    let (mut codes, cp) = open("codes.csv")?;
    let (mut dropped, dp) = open("dropped.csv")?;
    forms
        .write_record([
            "form_id",
            "version",
            "kind",
            "title",
            "kokuji",
            "eda",
            "disease",
            "partition",
            "sources",
        ])
        .map_err(csv_err(&fp))?;
    items
        .write_record([
            "form_id", "version", "column", "item", "label", "type", "unit", "codelist", "section",
        ])
        .map_err(csv_err(&ip))?;
    codes
        .write_record(["form_id", "item", "code", "label", "points"])
        .map_err(csv_err(&cp))?;
    dropped
        .write_record(["form_id", "item", "label", "reason"])
        .map_err(csv_err(&dp))?;
    for form in catalogue.forms() {
        // 告示番号 and 枝番 are the 指定難病's numbers: a 医療意見書 (小児慢性特定疾病) is known by
        // its code, which its partition key carries, so they stay empty there and a join on
        // 告示番号 never mixes the two programmes.
        let (kokuji, eda) = if form.kind == nsdb_rules::form::FormKind::Iken {
            (String::new(), String::new())
        } else {
            (form.kokuji.to_string(), form.eda.to_string())
        };
        forms
            .write_record([
                form.id.as_str(),
                &form.version,
                form.kind.label(),
                &form.title,
                &kokuji,
                &eda,
                &form.disease,
                &disease_key(form),
                &form.sources.join(" "),
            ])
            .map_err(csv_err(&fp))?;
        for item in form.items() {
            match deid::rule(item) {
                ItemRule::Drop(reason) => dropped
                    .write_record([form.id.as_str(), &item.id, &item.label, reason])
                    .map_err(csv_err(&dp))?,
                rule => {
                    let ty = match rule {
                        ItemRule::YearMonth => "yearmonth".to_string(),
                        _ => format!("{:?}", item.ty).to_lowercase(),
                    };
                    let section = form.section_of(&item.id).map(|s| s.title.as_str());
                    items
                        .write_record([
                            form.id.as_str(),
                            &form.version,
                            &column_name(&item.id),
                            &item.id,
                            &item.label,
                            &ty,
                            item.unit.as_deref().unwrap_or(""),
                            item.codelist.as_deref().unwrap_or(""),
                            section.unwrap_or(""),
                        ])
                        .map_err(csv_err(&ip))?;
                    for c in &item.codes {
                        codes
                            .write_record([
                                form.id.as_str(),
                                &item.id,
                                &c.code,
                                &c.label,
                                &c.points.map(|p| p.to_string()).unwrap_or_default(),
                            ])
                            .map_err(csv_err(&cp))?;
                    }
                }
            }
        }
    }
    for (w, p) in [(forms, fp), (items, ip), (codes, cp), (dropped, dp)] {
        w.into_inner()
            .map_err(|err| write_err(&p, err.error()))?
            .flush()
            .map_err(|err| write_err(&p, err))?;
    }
    Ok(["forms", "items", "codes", "dropped"]
        .iter()
        .map(|n| format!("dictionary/{n}.csv"))
        .collect())
}
