//! Research output at the hub (M19): only consented sheets, nothing that names a patient in any
//! file, pseudonyms that follow a patient across years, counts that DuckDB finds too, and the
//! ministry's page with audited downloads.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use arrow_array::{Array, StringArray};
use axum::http::{Method, StatusCode};
use nsdb::config::NodeRole;
use nsdb::research::{PatientIdentity, export::Formats};
use nsdb::testing::TestNode;
use nsdb_sync::{Author, Edit, NodeId, ResearchConsent, Review, Sheet, SheetId};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use rand::SeedableRng;

/// A fictitious patient with values no generated value could contain by chance.
struct Patient {
    name: &'static str,
    kana: &'static str,
    birth: &'static str,
    sex: &'static str,
    address: &'static str,
    insured_no: &'static str,
    insurer_no: &'static str,
}

const YAMADA: Patient = Patient {
    name: "研究 花子",
    kana: "ケンキュウ ハナコ",
    birth: "1961-07-14",
    sex: "2",
    address: "神奈川県架空市試験町9丁目8番7号",
    insured_no: "7654321",
    insurer_no: "06139901",
};

const SUZUKI: Patient = Patient {
    name: "統計 次郎",
    kana: "トウケイ ジロウ",
    birth: "1958-02-03",
    sex: "1",
    address: "大阪府見本市例示町1丁目2番3号",
    insured_no: "1357913",
    insurer_no: "06270017",
};

const NO_CONSENT: Patient = Patient {
    name: "拒否 三郎",
    kana: "キョヒ サブロウ",
    birth: "1970-10-10",
    sex: "1",
    address: "北海道架空郡模型村5番地",
    insured_no: "2468024",
    insurer_no: "06010013",
};

const WITHDRAWN: Patient = Patient {
    name: "撤回 四子",
    kana: "テッカイ ヨツコ",
    birth: "1966-06-06",
    sex: "2",
    address: "福岡県仮名市標本町4丁目4番4号",
    insured_no: "9753197",
    insurer_no: "06400014",
};

/// Stores a registered sheet of `form` for `p` at the hub, written on `written`, with consent
/// `consent` recorded in the municipality's review (None: no review) and `key` as its access
/// key. Returns the sheet id.
async fn put_sheet(
    hub: &TestNode,
    form: &str,
    p: &Patient,
    written: &str,
    consent: Option<ResearchConsent>,
    key: &str,
    seed: u64,
) -> String {
    put_sheet_with(hub, form, p, written, consent, key, seed, &[]).await
}

/// [`put_sheet`] with some items set to `values`.
#[allow(clippy::too_many_arguments)]
async fn put_sheet_with(
    hub: &TestNode,
    form: &str,
    p: &Patient,
    written: &str,
    consent: Option<ResearchConsent>,
    key: &str,
    seed: u64,
    set: &[(&str, &str)],
) -> String {
    let node = &hub.node;
    let form = node.catalogue.form(form).expect("form in the catalogue");
    let author = Author {
        node: NodeId([5; 16]),
        user: 1,
    };
    let edit = Edit {
        author,
        at_ms: 1_750_000_000_000,
        message: "作成",
    };
    let id = SheetId(uuid::Uuid::from_u128(0xabc0_0000 + seed as u128));
    let mut sheet = Sheet::new(
        nsdb::sheets::new_sheet_of(form, id, "1399000010", Some(1), None, edit.at_ms),
        edit,
    );
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let day = nsdb_rules::Date::parse(written).unwrap();
    let mut values = nsdb::cli::seed::sheet_values(form, &mut rng, day);
    for (k, v) in [
        ("patient.name", p.name),
        ("patient.name_kana", p.kana),
        ("patient.birth_date", p.birth),
        ("patient.sex", p.sex),
        ("patient.address", p.address),
        ("patient.insured_no", p.insured_no),
        ("patient.insurer_no", p.insurer_no),
        ("doctor.written_date", written),
    ]
    .into_iter()
    .chain(set.iter().copied())
    {
        values.insert(k.to_string(), v.to_string());
    }
    let changes: BTreeMap<String, Option<String>> =
        values.into_iter().map(|(k, v)| (k, Some(v))).collect();
    sheet.set_fields(&changes, edit);
    sheet.set_access_key(key, edit);
    sheet.set_status("registered", edit);
    if let Some(c) = consent {
        let mut review = Review::linked(MUNICIPALITY, edit.at_ms);
        review.research_consent = Some(c);
        assert!(sheet.set_review(&review, edit).unwrap());
    }
    node.store
        .write(move |c| {
            nsdb::sheets::store_sheet(c, &mut sheet, "screen", 1_750_000_000_000)?;
            Ok::<_, nsdb::Error>(())
        })
        .await
        .unwrap();
    id.to_string()
}

/// The reviewing municipality's 自治体コード.
const MUNICIPALITY: &str = "139999";

/// Changes stored sheet `id` with `change` as one edit by user `user` of node `node_byte`
/// (`message`, at `at_ms`), then stores it through `store_sheet` as a screen's save does.
async fn change_stored(
    node: &TestNode,
    id: &str,
    (node_byte, user, message, at_ms): (u8, u64, &'static str, i64),
    change: impl FnOnce(&mut Sheet, Edit<'static>) + Send + 'static,
) -> Result<(), nsdb::Error> {
    let id = id.to_string();
    node.node
        .store
        .write(move |c| {
            let bytes: Vec<u8> =
                c.query_row("SELECT doc FROM sheets WHERE id = ?1", [&id], |r| r.get(0))?;
            let mut sheet = Sheet::load(&bytes).unwrap();
            let edit = Edit {
                author: Author {
                    node: NodeId([node_byte; 16]),
                    user,
                },
                at_ms,
                message,
            };
            change(&mut sheet, edit);
            nsdb::sheets::store_sheet(c, &mut sheet, "screen", at_ms)?;
            Ok::<_, nsdb::Error>(())
        })
        .await
}

/// Records a later change of consent in the municipality's review of the sheet.
async fn set_consent(hub: &TestNode, id: &str, value: ResearchConsent) {
    change_stored(
        hub,
        id,
        (6, 2, "審査", 1_760_000_000_000),
        move |sheet, edit| {
            let mut review = sheet.review(MUNICIPALITY).unwrap();
            review.research_consent = Some(value);
            assert!(sheet.set_review(&review, edit).unwrap());
        },
    )
    .await
    .unwrap();
}

/// Every file under `dir`, recursively.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(files(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// A file's text as a reader sees it: CSV and JSON as they are, Parquet decoded (every string
/// value, every column name and all metadata), since its pages are compressed.
fn readable_text(path: &Path) -> String {
    if path.extension().is_some_and(|e| e == "parquet") {
        let f = std::fs::File::open(path).unwrap();
        let builder = ParquetRecordBatchReaderBuilder::try_new(f).unwrap();
        let mut text = format!("{:?}", builder.schema());
        for batch in builder.build().unwrap() {
            let batch = batch.unwrap();
            for col in batch.columns() {
                if let Some(s) = col.as_any().downcast_ref::<StringArray>() {
                    for i in 0..s.len() {
                        if s.is_valid(i) {
                            text.push_str(s.value(i));
                            text.push('\n');
                        }
                    }
                }
            }
        }
        text
    } else {
        String::from_utf8_lossy(&std::fs::read(path).unwrap()).into_owned()
    }
}

/// The distinct values of a column over the wide Parquet files below `dir`.
fn column_values(dir: &Path, column: &str) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    for p in files(dir) {
        if !p.to_string_lossy().contains("parquet/wide") {
            continue;
        }
        let f = std::fs::File::open(&p).unwrap();
        for batch in ParquetRecordBatchReaderBuilder::try_new(f)
            .unwrap()
            .build()
            .unwrap()
        {
            let batch = batch.unwrap();
            let col = batch.column_by_name(column).unwrap();
            let s = col.as_any().downcast_ref::<StringArray>().unwrap();
            for i in 0..s.len() {
                out.push((p.clone(), s.value(i).to_string()));
            }
        }
    }
    out
}

struct Hub {
    hub: TestNode,
    ids: HashMap<&'static str, String>,
}

/// A hub holding: 研究 花子 in 2024 and 2025 (consented), 統計 次郎 in 2025 (consented), a
/// sheet without consent, and one whose consent was withdrawn after it was given.
async fn hub() -> Hub {
    let hub = TestNode::start(NodeRole::Hub).await;
    let mut ids = HashMap::new();
    ids.insert(
        "yamada-2024",
        put_sheet(
            &hub,
            "rinko-002",
            &YAMADA,
            "2024-05-10",
            Some(ResearchConsent::Given),
            "10001000011",
            1,
        )
        .await,
    );
    ids.insert(
        "yamada-2025",
        put_sheet(
            &hub,
            "rinko-002",
            &YAMADA,
            "2025-05-12",
            Some(ResearchConsent::Given),
            "10001000022",
            2,
        )
        .await,
    );
    ids.insert(
        "suzuki-2025",
        put_sheet(
            &hub,
            "rinko-002",
            &SUZUKI,
            "2025-06-01",
            Some(ResearchConsent::Given),
            "10001000033",
            3,
        )
        .await,
    );
    ids.insert(
        "refused",
        put_sheet(
            &hub,
            "rinko-002",
            &NO_CONSENT,
            "2025-06-02",
            None,
            "10001000044",
            4,
        )
        .await,
    );
    let w = put_sheet(
        &hub,
        "rinko-006",
        &WITHDRAWN,
        "2025-06-03",
        Some(ResearchConsent::Given),
        "10001000055",
        5,
    )
    .await;
    set_consent(&hub, &w, ResearchConsent::NotGiven).await;
    ids.insert("withdrawn", w);
    Hub { hub, ids }
}

async fn export(h: &Hub, out: &Path) -> nsdb::research::export::ExportSummary {
    h.hub
        .node
        .research_export(out.to_path_buf(), Formats::default())
        .await
        .unwrap()
}

#[tokio::test]
async fn no_export_file_holds_a_name_kana_address_insurance_number_or_access_key() {
    let h = hub().await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("export");
    let s = export(&h, &out).await;
    assert_eq!(s.counts.kept, 3, "{s:?}");
    let all = files(&out);
    assert!(
        all.iter()
            .any(|p| p.extension().is_some_and(|e| e == "parquet"))
    );
    assert!(
        all.iter()
            .any(|p| p.extension().is_some_and(|e| e == "csv"))
    );
    for p in [&YAMADA, &SUZUKI, &NO_CONSENT, &WITHDRAWN] {
        let forbidden = [
            p.name.to_string(),
            p.kana.to_string(),
            p.kana.replace(' ', ""),
            p.address.to_string(),
            p.insured_no.to_string(),
            p.insurer_no.to_string(),
        ];
        for f in &all {
            let text = readable_text(f);
            for bad in &forbidden {
                assert!(!text.contains(bad.as_str()), "{} holds {bad}", f.display());
            }
            for key in [
                "10001000011",
                "10001000022",
                "10001000033",
                "10001000044",
                "10001000055",
            ] {
                assert!(
                    !text.contains(key),
                    "{} holds access key {key}",
                    f.display()
                );
            }
            for id in h.ids.values() {
                assert!(
                    !text.contains(id.as_str()),
                    "{} holds sheet id {id}",
                    f.display()
                );
            }
        }
    }
    // What is kept is de-identified, not absent: the age band and the prefecture are there.
    let wide = files(&out)
        .into_iter()
        .find(|p| p.to_string_lossy().contains("csv/wide/year=2024"))
        .unwrap();
    let text = readable_text(&wide);
    assert!(text.starts_with('\u{feff}'), "CSV starts with a BOM");
    assert!(
        text.contains("60-64") && text.contains("神奈川県"),
        "{text}"
    );
}

#[tokio::test]
async fn a_sheet_without_consent_or_with_consent_withdrawn_is_in_no_export() {
    let h = hub().await;
    let dir = tempfile::tempdir().unwrap();
    let first = export(&h, &dir.path().join("first")).await;
    assert_eq!(first.counts.kept, 3);
    assert_eq!(first.counts.without_consent, 2);
    // rinko-006 held only the withdrawn sheet: no folder of its disease exists.
    assert!(
        !files(&dir.path().join("first"))
            .iter()
            .any(|p| p.to_string_lossy().contains("disease=006"))
    );
    // 研究 花子 withdraws: the next export leaves both her sheets out.
    set_consent(&h.hub, &h.ids["yamada-2024"], ResearchConsent::NotGiven).await;
    set_consent(&h.hub, &h.ids["yamada-2025"], ResearchConsent::NotGiven).await;
    let second = export(&h, &dir.path().join("second")).await;
    assert_eq!(second.counts.kept, 1);
    for f in files(&dir.path().join("second")) {
        assert!(
            !f.to_string_lossy().contains("year=2024"),
            "{}",
            f.display()
        );
    }
}

#[tokio::test]
async fn the_pseudonym_follows_a_patient_across_years_and_differs_between_patients() {
    let h = hub().await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("export");
    export(&h, &out).await;
    let secret = h
        .hub
        .node
        .store
        .write(|c| Ok::<_, nsdb::Error>(nsdb::research::secret(c, 0)?))
        .await
        .unwrap();
    let ident = |p: &Patient| PatientIdentity::Person {
        kana: p.kana.replace(' ', ""),
        birth_date: p.birth.into(),
        sex: p.sex.into(),
    };
    let yamada = secret.patient(&ident(&YAMADA));
    let suzuki = secret.patient(&ident(&SUZUKI));
    assert_ne!(yamada, suzuki);
    let values = column_values(&out, "patient");
    let years_of = |pseudonym: &str| -> Vec<String> {
        let mut y: Vec<String> = values
            .iter()
            .filter(|(_, v)| v == pseudonym)
            .map(|(p, _)| {
                let s = p.to_string_lossy();
                s[s.find("year=").unwrap()..][..9].to_string()
            })
            .collect();
        y.sort();
        y
    };
    assert_eq!(years_of(&yamada), ["year=2024", "year=2025"]);
    assert_eq!(years_of(&suzuki), ["year=2025"]);
    // Rotating the secret changes every pseudonym: a later export does not link to this one.
    h.hub.node.research_rotate_secret().await.unwrap();
    let later = dir.path().join("later");
    export(&h, &later).await;
    assert!(
        !column_values(&later, "patient")
            .iter()
            .any(|(_, v)| *v == yamada)
    );
}

#[tokio::test]
async fn the_export_reports_its_k_anonymity_and_the_dictionary_lists_items_and_codes() {
    let h = hub().await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("export");
    let s = export(&h, &out).await;
    // Three sheets in three different groups: k is 1, and every sheet is in a group below 5.
    assert_eq!(s.k_anonymity.k, 1);
    assert_eq!(s.k_anonymity.below_k5, 3);
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["k_anonymity"]["k"], 1);
    let items = std::fs::read_to_string(out.join("dictionary/items.csv")).unwrap();
    assert!(items.contains("rinko-002"));
    let dropped = std::fs::read_to_string(out.join("dictionary/dropped.csv")).unwrap();
    assert!(dropped.contains("patient.name"));
    assert!(!items.contains("patient.name"));
    // An export into a folder that holds files is refused.
    let again = h
        .hub
        .node
        .research_export(out.clone(), Formats::default())
        .await;
    assert!(again.is_err());
}

/// DuckDB reads the Parquet folder as it is; its national count equals the hub's statistics.
#[tokio::test]
async fn duckdb_reads_the_parquet_folder_and_counts_what_the_hub_counts() {
    let h = hub().await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("export");
    let s = export(&h, &out).await;
    let (counts, _) = h.hub.node.research_build_stats().await.unwrap();
    assert_eq!(counts.kept, s.counts.kept);
    let script = r#"
import sys, duckdb
d = sys.argv[1]
q = f"SELECT count(*), count(DISTINCT patient) FROM read_parquet('{d}/parquet/wide/**/*.parquet', hive_partitioning=true, union_by_name=true)"
n, p = duckdb.execute(q).fetchone()
y = duckdb.execute(f"SELECT count(*) FROM read_parquet('{d}/parquet/wide/**/*.parquet', hive_partitioning=true, union_by_name=true) WHERE year = 2025").fetchone()[0]
print(n, p, y)
"#;
    let run = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(&out)
        .output();
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    let o = match run {
        Ok(o) if o.status.success() => o,
        other => {
            let why = match other {
                Ok(o) => String::from_utf8_lossy(&o.stderr).into_owned(),
                Err(e) => e.to_string(),
            };
            assert!(
                !ci,
                "python3 with the duckdb package is needed (pip install duckdb): {why}"
            );
            eprintln!("skipped: python3 with duckdb is not available: {why}");
            return;
        }
    };
    let text = String::from_utf8_lossy(&o.stdout);
    let got: Vec<u64> = text
        .split_whitespace()
        .map(|v| v.parse().unwrap())
        .collect();
    // Three sheets of two patients; two of them written in 2025.
    assert_eq!(got, vec![counts.kept, 2, 2], "{text}");
    let national: u64 = h
        .hub
        .node
        .store
        .read(|c| {
            Ok::<_, nsdb::Error>(c.query_row("SELECT sum(n) FROM research_counts", [], |r| {
                r.get::<_, i64>(0)
            })? as u64)
        })
        .await
        .unwrap();
    assert_eq!(got[0], national);
}

mod support;
use support::{send, sign_in};

#[tokio::test]
async fn the_ministry_sees_suppressed_counts_and_each_download_is_audited() {
    let h = hub().await;
    let dir = tempfile::tempdir().unwrap();
    let s = export(&h, &dir.path().join("export")).await;
    h.hub.node.research_build_stats().await.unwrap();
    let app = nsdb::http::router(h.hub.node.clone());
    let cookie = sign_in(&app, "ministry").await;
    let (status, page, _) = send(
        &app,
        "/research?rows=prefecture&cols=sex",
        &cookie,
        Method::GET,
        String::new(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    // Three sheets: every cell is under 10, so no count is shown; the chart is inline SVG.
    assert!(page.contains("<svg"), "{page}");
    assert!(page.contains("神奈川県"));
    let counts = &page[page.find("<table class=\"list counts\">").unwrap()..];
    let counts = &counts[..counts.find("</table>").unwrap()];
    assert!(
        !counts.contains(">1<") && !counts.contains(">2<") && !counts.contains(">3<"),
        "{counts}"
    );
    assert!(counts.contains(">*<"), "{counts}");
    assert!(page.contains("k-匿名性"));
    // A file of the export downloads, and the download is in the audit log.
    let file = s.files.iter().find(|f| f.ends_with(".parquet")).unwrap();
    let (status, body, _) = send(
        &app,
        &format!("/research/exports/1/{file}"),
        &cookie,
        Method::GET,
        String::new(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(!body.is_empty());
    let audited: i64 = h
        .hub
        .node
        .store
        .read(|c| {
            Ok::<_, nsdb::Error>(c.query_row(
                "SELECT count(*) FROM audit WHERE action = 'research_download'",
                [],
                |r| r.get(0),
            )?)
        })
        .await
        .unwrap();
    assert_eq!(audited, 1);
    // A file the export did not write is refused, and nobody but the ministry gets the page.
    let (status, _, _) = send(
        &app,
        "/research/exports/1/..%2F..%2Fhub.db",
        &cookie,
        Method::GET,
        String::new(),
    )
    .await;
    assert_ne!(status, StatusCode::OK);
}

/// 再認証 before an export's file (a link) used to leave the ministry on the 再認証 page once
/// the file downloaded. Now the password returns them to 研究・統計, which starts the
/// download (a one-time notice holding a refresh to the file and a link to it).
#[tokio::test]
async fn reauthentication_before_an_export_file_returns_to_the_research_page_which_starts_it() {
    let h = hub().await;
    let dir = tempfile::tempdir().unwrap();
    let s = export(&h, &dir.path().join("export")).await;
    let app = nsdb::http::router(h.hub.node.clone());
    let cookie = sign_in(&app, "ministry").await;
    let old = h.hub.node.clock.now_ms() - nsdb::accounts::REAUTH_WINDOW_MS - 1000;
    h.hub
        .node
        .store
        .write(move |c| {
            c.execute("UPDATE sessions SET reauth_at = ?1", [old])
                .map_err(nsdb::Error::from)
        })
        .await
        .unwrap();
    let file = s.files.iter().find(|f| f.ends_with(".parquet")).unwrap();
    let url = format!("/research/exports/1/{file}");
    let (status, page, _) = send(&app, &url, &cookie, Method::GET, String::new()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        page.contains("name=\"_reauth_back\" value=\"/research\""),
        "{page}"
    );
    let csrf = support::hidden_csrf(&page);
    let body = serde_urlencoded::to_string([
        ("csrf", csrf.as_str()),
        ("_reauth_to", url.as_str()),
        ("_reauth_back", "/research"),
        ("_reauth_password", "demo"),
    ])
    .unwrap();
    let (status, _, to) = send(&app, "/reauth", &cookie, Method::POST, body).await;
    assert_eq!((status, to.as_str()), (StatusCode::SEE_OTHER, "/research"));
    let (status, page, _) = send(&app, "/research", &cookie, Method::GET, String::new()).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains(&format!("content=\"0;url={url}\"")), "{page}");
    assert!(page.contains("再認証しました"));
    // Shown once; the file itself now downloads without asking again.
    let (_, again, _) = send(&app, "/research", &cookie, Method::GET, String::new()).await;
    assert!(!again.contains("0;url="));
    let (status, _, _) = send(&app, &url, &cookie, Method::GET, String::new()).await;
    assert_eq!(status, StatusCode::OK);
}

/// Every research row as text, one string per row (all columns joined).
async fn research_rows_text(hub: &TestNode) -> Vec<String> {
    hub.node
        .store
        .read(|c| {
            let mut st = c.prepare(
                "SELECT sheet_id, kept, left_out, secret_since, year, form_id, disease, record,
                    patient, form_version, age, age_band, sex, prefecture, severity, items
                 FROM research_rows",
            )?;
            let rows = st.query_map([], |r| {
                let mut text = String::new();
                for i in 0..16 {
                    let v: rusqlite::types::Value = r.get(i)?;
                    text.push_str(&format!("{v:?}\u{1d}"));
                }
                Ok(text)
            })?;
            Ok::<_, nsdb::Error>(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
        .unwrap()
}

async fn pending(hub: &TestNode) -> i64 {
    hub.node
        .store
        .read(|c| {
            Ok::<_, nsdb::Error>(
                c.query_row("SELECT count(*) FROM research_pending", [], |r| r.get(0))?,
            )
        })
        .await
        .unwrap()
}

/// Storing a sheet at the hub writes its research row at once (before any export), and no row
/// holds a name, かな, address, insurance number, birth date or access key; a sheet without
/// consent, or whose consent was withdrawn, has a row that says only that it is left out.
#[tokio::test]
async fn a_stored_sheet_writes_its_research_row_and_no_row_names_the_patient() {
    let h = hub().await;
    assert_eq!(pending(&h.hub).await, 0, "rows written with the sheets");
    let rows = research_rows_text(&h.hub).await;
    assert_eq!(rows.len(), 5, "{rows:?}");
    let keys = [
        "10001000011",
        "10001000022",
        "10001000033",
        "10001000044",
        "10001000055",
    ];
    for row in &rows {
        for p in [&YAMADA, &SUZUKI, &NO_CONSENT, &WITHDRAWN] {
            for forbidden in [
                p.name.to_string(),
                p.name.replace(' ', ""),
                p.kana.to_string(),
                p.kana.replace(' ', ""),
                p.address.to_string(),
                p.insured_no.to_string(),
                p.insurer_no.to_string(),
                p.birth.to_string(),
            ] {
                assert!(!row.contains(&forbidden), "{forbidden} in {row}");
            }
        }
        for key in keys {
            assert!(!row.contains(key), "access key {key} in {row}");
        }
    }
    let left_out: Vec<&String> = rows
        .iter()
        .filter(|r| r.contains("Text(\"consent\")"))
        .collect();
    assert_eq!(left_out.len(), 2, "{rows:?}");
    for r in left_out {
        // sheet id, kept 0, why, secret; nothing else.
        assert_eq!(r.matches("Null").count(), 12, "{r}");
    }
}

/// Sheets stored before the research rows existed (a hub upgraded to schema 017) and sheets
/// changed without `store_sheet` are filled from their documents at the next export.
#[tokio::test]
async fn rows_missing_or_out_of_date_are_filled_from_the_documents_at_the_next_export() {
    let mut h = hub().await;
    // As a hub looks on its first start after the migration: no rows, never enabled.
    h.hub
        .node
        .store
        .write(|c| {
            c.execute_batch(
                "DELETE FROM research_rows;
                 DELETE FROM node_meta WHERE key IN ('research_rows', 'research_rows_catalogue');",
            )?;
            Ok::<_, nsdb::Error>(())
        })
        .await
        .unwrap();
    h.hub.reopen().await;
    assert_eq!(pending(&h.hub).await, 5);
    let dir = tempfile::tempdir().unwrap();
    let first = export(&h, &dir.path().join("first")).await;
    assert_eq!((first.counts.kept, first.counts.without_consent), (3, 2));
    assert_eq!(pending(&h.hub).await, 0);
    assert_eq!(research_rows_text(&h.hub).await.len(), 5);
    // 統計 次郎's consent withdrawn by a write that bypasses store_sheet: the trigger drops his
    // row, and the next export reads his document again.
    let id = h.ids["suzuki-2025"].clone();
    h.hub
        .node
        .store
        .write(move |c| {
            let bytes: Vec<u8> =
                c.query_row("SELECT doc FROM sheets WHERE id = ?1", [&id], |r| r.get(0))?;
            let mut sheet = Sheet::load(&bytes).unwrap();
            let edit = Edit {
                author: Author {
                    node: NodeId([6; 16]),
                    user: 2,
                },
                at_ms: 1_770_000_000_000,
                message: "審査",
            };
            let mut review = sheet.review(MUNICIPALITY).unwrap();
            review.research_consent = Some(ResearchConsent::NotGiven);
            assert!(sheet.set_review(&review, edit).unwrap());
            c.execute(
                "UPDATE sheets SET doc = ?1 WHERE id = ?2",
                rusqlite::params![sheet.save(), id],
            )?;
            Ok::<_, nsdb::Error>(())
        })
        .await
        .unwrap();
    assert_eq!(pending(&h.hub).await, 1);
    let second = export(&h, &dir.path().join("second")).await;
    assert_eq!((second.counts.kept, second.counts.without_consent), (2, 3));
    let (counts, _) = h.hub.node.research_build_stats().await.unwrap();
    assert_eq!(counts.kept, 2);
}

/// Every sheet id a node holds.
async fn sheet_ids(node: &TestNode) -> Vec<String> {
    node.node
        .store
        .read(|c| {
            let mut st = c.prepare("SELECT id FROM sheets ORDER BY id")?;
            let ids = st.query_map([], |r| r.get(0))?;
            Ok::<_, nsdb::Error>(ids.collect::<Result<Vec<String>, _>>()?)
        })
        .await
        .unwrap()
}

/// Saves sheet `id` again through `store_sheet` with 出生市区町村 changed, as 一時保存 does.
async fn save_again(node: &TestNode, id: &str, value: &str) -> Result<(), nsdb::Error> {
    let value = value.to_string();
    change_stored(
        node,
        id,
        (7, 1, "一時保存", 1_770_000_000_000),
        move |sheet, edit| {
            let changes = BTreeMap::from([("patient.birth_municipality".to_string(), Some(value))]);
            sheet.set_fields(&changes, edit);
        },
    )
    .await
}

/// A configuration saying `role = "hub"` pointed at a hospital's data directory (`nsdb research
/// stats --config hub.toml` with the wrong data_dir) opens nothing: it is refused, naming the
/// data directory, and writes nothing there. A hospital database that such a run touched before
/// roles were recorded (research rows turned on, sheets listed as pending) heals when the
/// hospital opens it again, and every save goes on working.
#[tokio::test]
async fn a_hospital_database_is_never_opened_as_the_hub_and_one_touched_before_heals() {
    let mut hospital = TestNode::start_with_sheets(NodeRole::Hospital, 3).await;
    let mut as_hub = hospital.node.config.clone();
    as_hub.role = NodeRole::Hub;
    let refused = nsdb::Node::open(as_hub, nsdb::Clock::System)
        .expect_err("a hospital's data directory is not opened as the hub")
        .to_string();
    let dir = hospital.node.config.data_dir.display().to_string();
    assert!(refused.contains(&dir), "{refused}");
    assert!(refused.contains("医療機関のノード"), "{refused}");
    let meta = |node: &TestNode| {
        let node = node.node.clone();
        async move {
            node.store
                .read(|c| {
                    Ok::<_, nsdb::Error>(c.query_row(
                        "SELECT count(*) FROM node_meta WHERE key LIKE 'research%'",
                        [],
                        |r| r.get::<_, i64>(0),
                    )?)
                })
                .await
                .unwrap()
        }
    };
    assert_eq!(meta(&hospital).await, 0, "the refused open wrote nothing");

    // As an older nsdb left it: research rows turned on, every sheet listed as pending.
    hospital
        .node
        .store
        .write(|c| {
            c.execute_batch(
                "INSERT INTO node_meta (key, value) VALUES ('research_rows', '1');
                 INSERT INTO research_pending (sheet_id) SELECT id FROM sheets;",
            )?;
            Ok::<_, nsdb::Error>(())
        })
        .await
        .unwrap();
    let ids = sheet_ids(&hospital).await;
    assert_eq!(ids.len(), 3);
    // Even before it heals, saving twice works (the trigger lists a sheet once).
    save_again(&hospital, &ids[0], "架空市").await.unwrap();
    save_again(&hospital, &ids[0], "見本町").await.unwrap();
    hospital.reopen().await;
    assert_eq!(meta(&hospital).await, 0, "research rows turned off");
    assert_eq!(pending(&hospital).await, 0);
    for (i, id) in ids.iter().enumerate() {
        save_again(&hospital, id, &format!("市{i}")).await.unwrap();
        save_again(&hospital, id, &format!("町{i}")).await.unwrap();
    }
    assert_eq!(pending(&hospital).await, 0, "a hospital lists nothing");
    assert_eq!(sheet_ids(&hospital).await, ids, "no sheet lost");
}

/// At the hub, a sheet already listed as pending (its row could not be written) is saved again
/// and again without a UNIQUE error.
#[tokio::test]
async fn a_sheet_listed_as_pending_at_the_hub_saves_again() {
    let h = hub().await;
    let id = h.ids["refused"].clone();
    let listed = id.clone();
    h.hub
        .node
        .store
        .write(move |c| {
            c.execute(
                "INSERT INTO research_pending (sheet_id) VALUES (?1)",
                [&listed],
            )?;
            // A direct write (another process) while it is listed.
            c.execute(
                "UPDATE sheets SET updated_at = updated_at + 1, doc = doc WHERE id = ?1",
                [&listed],
            )?;
            Ok::<_, nsdb::Error>(())
        })
        .await
        .unwrap();
    save_again(&h.hub, &id, "架空市").await.unwrap();
    save_again(&h.hub, &id, "見本町").await.unwrap();
}

/// パーキンソン病 (告示番号6) and the 小慢 大理石骨病 (15-02-006) never share a partition, a count
/// or a name; and the severity column is the rules' judgment (Hoehn-Yahr 3 and 生活機能障害度
/// 2 meet the criteria, as 受付一覧 says), not a fixed 対象外.
#[tokio::test]
async fn parkinson_is_its_own_partition_and_its_severity_is_judged() {
    let hub = TestNode::start(NodeRole::Hub).await;
    let severe = [
        ("severity.hoehn_yahr", "3"),
        ("severity.life_function", "2"),
    ];
    let mild = [
        ("severity.hoehn_yahr", "1"),
        ("severity.life_function", "1"),
        ("severity.high_cost_months", "0"),
    ];
    let given = Some(ResearchConsent::Given);
    put_sheet_with(
        &hub,
        "rinko-006",
        &YAMADA,
        "2025-05-10",
        given,
        "10001000011",
        1,
        &severe,
    )
    .await;
    put_sheet_with(
        &hub,
        "rinko-006",
        &SUZUKI,
        "2025-05-11",
        given,
        "10001000022",
        2,
        &mild,
    )
    .await;
    put_sheet(
        &hub,
        "iken-15-02-006",
        &WITHDRAWN,
        "2025-05-12",
        given,
        "10001000033",
        3,
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("export");
    hub.node
        .research_export(out.clone(), Formats::default())
        .await
        .unwrap();
    let mut severity = column_values(&out.join("parquet/wide"), "severity")
        .into_iter()
        .map(|(path, v)| (path.to_string_lossy().to_string(), v))
        .collect::<Vec<_>>();
    severity.sort();
    assert_eq!(severity.len(), 3, "{severity:?}");
    let parkinson: Vec<&str> = severity
        .iter()
        .filter(|(p, _)| p.contains("disease=006/rinko-006"))
        .map(|(_, v)| v.as_str())
        .collect();
    let mut parkinson = parkinson;
    parkinson.sort();
    assert_eq!(parkinson, ["該当", "非該当"], "{severity:?}");
    assert!(
        severity
            .iter()
            .any(|(p, _)| p.contains("disease=s15_02_006/iken-15-02-006")),
        "{severity:?}"
    );
    let forms: Vec<csv::StringRecord> = csv::Reader::from_path(out.join("dictionary/forms.csv"))
        .unwrap()
        .records()
        .map(Result::unwrap)
        .collect();
    let partition_of = |id: &str| forms.iter().find(|r| &r[0] == id).map(|r| r[7].to_string());
    assert_eq!(partition_of("rinko-006").as_deref(), Some("006"));
    assert_eq!(
        partition_of("iken-15-02-006").as_deref(),
        Some("s15_02_006")
    );
    for r in forms.iter().filter(|r| &r[2] == "医療意見書") {
        assert!(r[7].starts_with('s'), "{r:?}");
        // No 告示番号 for a 小慢 form: a join on it never meets a 指定難病.
        assert_eq!((&r[4], &r[5]), ("", ""), "{r:?}");
    }
    let kokuji_of = |id: &str| forms.iter().find(|r| &r[0] == id).map(|r| r[4].to_string());
    assert_eq!(kokuji_of("rinko-006").as_deref(), Some("6"));

    // The ministry's page names each partition by programme and disease.
    hub.node.research_build_stats().await.unwrap();
    let app = nsdb::http::router(hub.node.clone());
    let cookie = sign_in(&app, "ministry").await;
    let (status, page, _) = send(
        &app,
        "/research?rows=disease&cols=severity",
        &cookie,
        Method::GET,
        String::new(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains("指定難病 告示番号6 パーキンソン病"), "{page}");
    assert!(
        page.contains("小児慢性特定疾病 15-02-006 大理石骨病"),
        "{page}"
    );
    assert!(
        page.contains("<option value=\"006\">指定難病 告示番号6 パーキンソン病</option>"),
        "{page}"
    );
}

/// A filter the counts cannot answer (a year that is not a number or has no counts, an unknown
/// disease, prefecture or dimension) is said beside the filters and not applied, and the selects
/// show what is applied; the CSV refuses instead of giving the whole table. The page never tells
/// the ministry to run a command.
#[tokio::test]
async fn a_filter_that_cannot_apply_is_said_and_the_selects_show_what_applies() {
    let empty = TestNode::start(NodeRole::Hub).await;
    let app = nsdb::http::router(empty.node.clone());
    let cookie = sign_in(&app, "ministry").await;
    let (status, page, _) = send(&app, "/research", &cookie, Method::GET, String::new()).await;
    assert_eq!(status, StatusCode::OK);
    assert!(!page.contains("nsdb research"), "{page}");
    assert!(!page.contains("--out"), "{page}");
    assert!(page.contains("集計はまだありません"), "{page}");

    let h = hub().await;
    h.hub.node.research_build_stats().await.unwrap();
    let app = nsdb::http::router(h.hub.node.clone());
    let cookie = sign_in(&app, "ministry").await;
    let get = |path: &'static str| {
        let (app, cookie) = (app.clone(), cookie.clone());
        async move {
            let (status, page, _) = send(&app, path, &cookie, Method::GET, String::new()).await;
            assert_eq!(status, StatusCode::OK, "{path}: {page}");
            page
        }
    };
    let counts = |page: &str| {
        let t = &page[page.find("<table class=\"list counts\">").unwrap()..];
        t[..t.find("</table>").unwrap()].to_string()
    };
    let whole = get("/research").await;
    assert!(!whole.contains("class=\"error\""), "{whole}");
    for (path, said) in [
        ("/research?year=abc", "年「abc」は西暦の年"),
        ("/research?year=1999", "1999年の集計はありません"),
        ("/research?disease=999", "疾病「999」の集計はありません"),
        (
            "/research?prefecture=XX",
            "都道府県「XX」の集計はありません",
        ),
        ("/research?rows=foo", "表の行「foo」は選べません"),
    ] {
        let page = get(path).await;
        assert!(page.contains(said), "{path}: {page}");
        assert!(page.contains("class=\"error\""), "{path}");
        // Nothing applied: the table is the whole one, and no select claims a value.
        assert_eq!(counts(&page), counts(&whole), "{path}");
        for name in ["year", "disease", "prefecture"] {
            let select = &page[page.find(&format!("name=\"{name}\"")).unwrap()..];
            let select = &select[..select.find("</select>").unwrap()];
            assert!(!select.contains("selected"), "{path}: {select}");
        }
    }
    let page = get("/research?year=2025").await;
    assert!(page.contains("<option value=\"2025\" selected>"), "{page}");
    assert!(!page.contains("class=\"error\""), "{page}");
    let (status, body, _) = send(
        &app,
        "/research/table.csv?year=abc",
        &cookie,
        Method::GET,
        String::new(),
    )
    .await;
    assert_ne!(status, StatusCode::OK, "{body}");
    assert!(body.contains("年「abc」"), "{body}");
}
