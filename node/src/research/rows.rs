//! Research rows: each sheet's de-identified research row, kept in `research_rows` at the hub
//! and written by `store_sheet` in the same transaction as the sheet, so that the export and
//! the statistics read rows instead of loading every Automerge document (issue #16).
//!
//! How the rows stay true to the documents (docs/research.md "Research rows"):
//! - On a hub, [`enable`] runs on the store's writer thread when the node opens: it installs the
//!   catalogue for that thread and sets `research_rows` in `node_meta`. From then on every
//!   `store_sheet` on the writer writes the sheet's row ([`on_store`]).
//! - Any other change to a sheet (a write from another process, an `UPDATE` that does not go
//!   through `store_sheet`) fires a trigger of migration 017 that drops the row and lists the
//!   sheet in `research_pending`; [`refresh`] fills what is listed there from the documents
//!   before every export and count. Sheets stored before the migration, or before the hub first
//!   opened with it, are listed by [`enable`] and so are filled lazily at the first export.
//! - A new pseudonym secret or a new catalogue makes every row stale: all sheets are listed
//!   again ([`relist_all`]).
//!
//! This module must never write into a row a value that `deid` does not keep: no name, かな,
//! address, insurance number, access key, free text, doctor or institution; and never a
//! consent-less sheet's content (such a sheet's row says only that it is left out and why).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::Arc;

use nsdb_rules::{Catalogue, Date};
use nsdb_sync::Sheet;
use rusqlite::{Connection, OptionalExtension, params};

use super::{ResearchError, ResearchRecord, ScanCounts, Secret, consent_given, deid};

thread_local! {
    /// The hub's catalogue, on the writer thread of a hub's store only.
    static HUB_CATALOGUE: RefCell<Option<Arc<Catalogue>>> = const { RefCell::new(None) };
}

/// `node_meta` key: set on a hub; the triggers of migration 017 list changed sheets only then.
const ENABLED: &str = "research_rows";
/// `node_meta` key: the catalogue version the rows were written with.
const CATALOGUE: &str = "research_rows_catalogue";

/// How rows are made, stored beside the catalogue version: a change here (2: 小慢 partitions
/// `s…` for every 医療意見書, severity from the rules' judgment) rewrites every row.
const ROW_RULES: &str = "rows-2";

/// Sheets filled per writer transaction by [`refresh`].
pub const REFRESH_CHUNK: usize = 1024;

/// Makes this thread write research rows with `catalogue` (the hub's writer thread only; the
/// benchmark's own thread). Writes nothing to the database.
pub fn install(catalogue: Arc<Catalogue>) {
    HUB_CATALOGUE.with(|h| *h.borrow_mut() = Some(catalogue));
}

/// Turns research rows on for a hub, on its writer connection: installs the catalogue for this
/// thread, sets `research_rows` in `node_meta`, and lists every sheet for [`refresh`] when the
/// rows are new (first open after migration 017) or were written with another catalogue
/// version or by other row rules ([`ROW_RULES`]).
pub fn enable(c: &Connection, catalogue: Arc<Catalogue>) -> rusqlite::Result<()> {
    let version = format!("{} {ROW_RULES}", catalogue.version());
    install(catalogue);
    let first = c.execute(
        "INSERT OR IGNORE INTO node_meta (key, value) VALUES (?1, '1')",
        [ENABLED],
    )? == 1;
    let written_with: Option<String> = c
        .query_row(
            "SELECT value FROM node_meta WHERE key = ?1",
            [CATALOGUE],
            |r| r.get(0),
        )
        .optional()?;
    if first || written_with.as_deref() != Some(version.as_str()) {
        relist_all(c)?;
        c.execute(
            "INSERT OR REPLACE INTO node_meta (key, value) VALUES (?1, ?2)",
            params![CATALOGUE, version],
        )?;
    }
    Ok(())
}

/// Turns research rows off on a node that is not the hub: drops the `node_meta` keys that turn
/// the triggers on and empties `research_rows`, `research_pending` and `research_counts` (all
/// derived from the sheets, which stay as they are). Cheap when there is nothing to drop.
pub fn disable(c: &Connection) -> rusqlite::Result<()> {
    let on: bool = c.query_row(
        "SELECT EXISTS (SELECT 1 FROM node_meta WHERE key IN (?1, ?2))
             OR EXISTS (SELECT 1 FROM research_pending)",
        [ENABLED, CATALOGUE],
        |r| r.get(0),
    )?;
    if on {
        c.execute(
            "DELETE FROM node_meta WHERE key IN (?1, ?2, 'research_counts_at')",
            [ENABLED, CATALOGUE],
        )?;
        c.execute("DELETE FROM research_rows", [])?;
        c.execute("DELETE FROM research_pending", [])?;
        c.execute("DELETE FROM research_counts", [])?;
    }
    Ok(())
}

/// Drops every row and lists every sheet for [`refresh`] (a new secret or catalogue).
pub fn relist_all(c: &Connection) -> rusqlite::Result<()> {
    c.execute("DELETE FROM research_rows", [])?;
    c.execute(
        "INSERT OR IGNORE INTO research_pending (sheet_id) SELECT id FROM sheets",
        [],
    )?;
    Ok(())
}

/// A sheet's row: its research record, or why it is left out.
#[derive(Debug, Clone, PartialEq)]
pub enum Row {
    Kept(Box<ResearchRecord>),
    /// `status` (not registered or approved), `consent` (none, or withdrawn), `form` (not in
    /// the catalogue).
    LeftOut(&'static str),
}

/// The row of a sheet as its document says now. `fields` are `sheet.fields()`.
pub fn row_of(
    catalogue: &Catalogue,
    secret: &Secret,
    sheet: &Sheet,
    fields: &BTreeMap<String, String>,
) -> Row {
    let h = sheet.header();
    if !matches!(h.status.as_str(), "registered" | "approved") {
        return Row::LeftOut("status");
    }
    if !consent_given(sheet) {
        return Row::LeftOut("consent");
    }
    let Some(form) = catalogue.form(&h.form_id) else {
        return Row::LeftOut("form");
    };
    let written = fields
        .get("doctor.written_date")
        .and_then(|w| Date::parse(w.trim()))
        .unwrap_or_else(|| crate::Clock::Fixed(h.created_ms).today_jst());
    Row::Kept(Box::new(deid::record(
        form,
        &h.id.to_string(),
        &h.institution,
        written,
        fields,
        secret,
    )))
}

/// Kept items as stored: `id` U+001F `value`, joined by U+001E. Control characters in a value
/// are dropped (a kept value is a code, number or date; they have no meaning there).
pub fn encode_items(items: &[(String, String)]) -> String {
    let mut out = String::with_capacity(items.len() * 20);
    for (i, (k, v)) in items.iter().enumerate() {
        if i > 0 {
            out.push('\u{1e}');
        }
        out.extend(k.chars().filter(|c| !c.is_control()));
        out.push('\u{1f}');
        out.extend(v.chars().filter(|c| !c.is_control()));
    }
    out
}

/// The items of [`encode_items`] back, in the order written.
pub fn decode_items(text: &str) -> Vec<(String, String)> {
    if text.is_empty() {
        return Vec::new();
    }
    text.split('\u{1e}')
        .filter_map(|p| {
            let (k, v) = p.split_once('\u{1f}')?;
            Some((k.to_string(), v.to_string()))
        })
        .collect()
}

/// Writes (replaces) a sheet's row and takes it off the pending list.
pub fn write(c: &Connection, sheet_id: &str, row: &Row, secret_since: i64) -> rusqlite::Result<()> {
    let mut put = c.prepare_cached(
        "INSERT OR REPLACE INTO research_rows (sheet_id, kept, left_out, secret_since, year,
            form_id, disease, record, patient, form_version, age, age_band, sex, prefecture,
            severity, items)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
    )?;
    match row {
        Row::Kept(r) => put.execute(params![
            sheet_id,
            1,
            None::<&str>,
            secret_since,
            r.year,
            r.form_id,
            r.disease,
            r.record,
            r.patient,
            r.form_version,
            r.age,
            r.age_band,
            r.sex,
            r.prefecture,
            r.severity,
            encode_items(&r.items),
        ])?,
        Row::LeftOut(why) => put.execute(params![
            sheet_id,
            0,
            why,
            secret_since,
            None::<i64>,
            None::<&str>,
            None::<&str>,
            None::<&str>,
            None::<&str>,
            None::<&str>,
            None::<i64>,
            None::<&str>,
            None::<&str>,
            None::<&str>,
            None::<&str>,
            None::<&str>,
        ])?,
    };
    c.prepare_cached("DELETE FROM research_pending WHERE sheet_id = ?1")?
        .execute([sheet_id])?;
    Ok(())
}

/// Called by `store_sheet` after it wrote the sheet, in its transaction: on a hub's writer
/// thread, writes the sheet's row. Elsewhere does nothing. A damaged pseudonym secret leaves the
/// sheet pending (the export then says what to do) instead of refusing the save.
pub fn on_store(
    c: &Connection,
    sheet: &Sheet,
    fields: &BTreeMap<String, String>,
    now_ms: i64,
) -> rusqlite::Result<()> {
    let Some(catalogue) = HUB_CATALOGUE.with(|h| h.borrow().clone()) else {
        return Ok(());
    };
    let secret = match super::secret(c, now_ms) {
        Ok(s) => s,
        Err(ResearchError::Store(e)) => return Err(e),
        Err(_) => return Ok(()),
    };
    let row = row_of(&catalogue, &secret, sheet, fields);
    write(c, &sheet.header().id.to_string(), &row, secret.since_ms)
}

/// Fills up to [`REFRESH_CHUNK`] pending rows from their documents (decoded on every core), in
/// one transaction. Returns how many were taken off the list; 0 when none is left.
pub fn refresh(
    c: &mut Connection,
    catalogue: &Catalogue,
    secret: &Secret,
) -> Result<usize, ResearchError> {
    let tx = c.transaction()?;
    let pending: Vec<(String, Option<Vec<u8>>)> = {
        let mut st = tx.prepare(
            "SELECT p.sheet_id, s.doc FROM research_pending p
             LEFT JOIN sheets s ON s.id = p.sheet_id LIMIT ?1",
        )?;
        st.query_map([REFRESH_CHUNK as i64], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let per = pending.len().div_ceil(cores).max(1);
    let rows: Vec<Result<Vec<Option<Row>>, ResearchError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = pending
            .chunks(per)
            .map(|part| {
                scope.spawn(move || {
                    part.iter()
                        .map(|(id, doc)| {
                            let Some(doc) = doc else { return Ok(None) };
                            let sheet = Sheet::load(doc).map_err(|e| ResearchError::Document {
                                id: id.clone(),
                                reason: e.to_string(),
                            })?;
                            Ok(Some(row_of(catalogue, secret, &sheet, &sheet.fields())))
                        })
                        .collect::<Result<Vec<_>, _>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(ResearchError::Document {
                        id: String::new(),
                        reason: "de-identification stopped unexpectedly".into(),
                    })
                })
            })
            .collect()
    });
    let mut done = 0;
    let mut ids = pending.iter().map(|(id, _)| id);
    for part in rows {
        for row in part? {
            let Some(id) = ids.next() else { break };
            match row {
                Some(row) => write(&tx, id, &row, secret.since_ms)?,
                // The sheet is gone: nothing to write.
                None => {
                    tx.execute("DELETE FROM research_pending WHERE sheet_id = ?1", [id])?;
                }
            }
            done += 1;
        }
    }
    tx.commit()?;
    Ok(done)
}

/// The registered or approved sheets left out (no consent, unknown form), counted from their
/// rows; `kept` is 0.
pub fn each_left_out(c: &Connection) -> Result<ScanCounts, ResearchError> {
    let mut counts = ScanCounts::default();
    let mut st =
        c.prepare("SELECT left_out, count(*) FROM research_rows WHERE kept = 0 GROUP BY left_out")?;
    let mut rows = st.query([])?;
    while let Some(r) = rows.next()? {
        let n = r.get::<_, i64>(1)? as u64;
        match r.get::<_, Option<String>>(0)?.as_deref() {
            Some("consent") => counts.without_consent += n,
            Some("form") => counts.unknown_form += n,
            _ => continue,
        }
        counts.read += n;
    }
    Ok(counts)
}

/// The kept rows in partition order, from the index `research_rows_export`.
pub(crate) const EXPORT_ORDER: &str =
    "SELECT record, patient, year, disease, form_id, form_version, age, age_band, sex,
        prefecture, severity, items
     FROM research_rows WHERE kept = 1 ORDER BY year, form_id";

/// Reads every kept row in partition order (year, form) and calls `each` with it. Memory is
/// one record, whatever the number of rows. Counts what was left out from the other rows.
pub fn each(
    c: &Connection,
    mut each: impl FnMut(ResearchRecord) -> Result<(), ResearchError>,
) -> Result<ScanCounts, ResearchError> {
    let mut counts = each_left_out(c)?;
    let mut st = c.prepare(EXPORT_ORDER)?;
    let mut rows = st.query([])?;
    while let Some(r) = rows.next()? {
        let items: Option<String> = r.get(11)?;
        let record = ResearchRecord {
            record: r.get(0)?,
            patient: r.get(1)?,
            year: r.get(2)?,
            disease: r.get(3)?,
            form_id: r.get(4)?,
            form_version: r.get(5)?,
            age: r.get(6)?,
            age_band: r.get(7)?,
            sex: r.get(8)?,
            prefecture: r.get(9)?,
            severity: r.get(10)?,
            items: decode_items(items.as_deref().unwrap_or("")),
        };
        counts.read += 1;
        counts.kept += 1;
        each(record)?;
    }
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The export reads the rows in partition order from its index (no sort of a million
    /// rows), and the count cube is answered from an index alone, never the rows' items.
    #[test]
    fn the_export_and_the_counts_read_their_indexes() {
        let plans = crate::store::query_plans(&[EXPORT_ORDER, crate::research::stats::COUNT_CUBE]);
        let plans = (&plans[0], &plans[1]);
        assert!(plans.0.contains("research_rows_export"), "{}", plans.0);
        assert!(!plans.0.contains("TEMP B-TREE"), "{}", plans.0);
        assert!(
            plans.1.contains("COVERING INDEX research_rows_counts"),
            "{}",
            plans.1
        );
    }

    #[test]
    fn items_survive_the_row_and_control_characters_do_not() {
        let items = vec![
            ("basic.onset".to_string(), "2019-04".to_string()),
            ("sev.mrs".to_string(), "3".to_string()),
            ("x.codes".to_string(), "1,2\u{1e}5".to_string()),
        ];
        let back = decode_items(&encode_items(&items));
        assert_eq!(back[0], items[0]);
        assert_eq!(back[1], items[1]);
        assert_eq!(back[2], ("x.codes".to_string(), "1,25".to_string()));
        assert!(decode_items("").is_empty());
    }
}
