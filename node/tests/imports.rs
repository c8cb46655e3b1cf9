//! 一括登録 through the node's router: sealed files from the check tool imported over the API
//! and on screen, the refusals a clerk must be able to act on, and データ出力 → import giving
//! back the same values for every form.

use std::collections::{BTreeMap, HashMap};

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use nsdb::config::NodeRole;
use nsdb::testing::TestNode;
use nsdb_provisioning::NodeIdentity;
use nsdb_provisioning::sealed::{UserKey, VerifiedKeyInfo, seal};
use serde_json::{Value, json};
use tower::ServiceExt;

const BOUNDARY: &str = "nsdb-test-boundary-7d1c";

/// A hospital node whose doctor has a registered check-tool key, and key information for the
/// node signed by a hub.
struct Site {
    t: TestNode,
    user: UserKey,
    to: VerifiedKeyInfo,
    token: String,
}

impl Site {
    async fn start() -> Site {
        let t = TestNode::start(NodeRole::Hospital).await;
        let user = UserKey::generate().unwrap();
        t.node
            .set_user_key("doctor", user.public_key())
            .await
            .unwrap();
        let to = key_info(&t);
        let token = api_login(&t, "doctor").await;
        Site { t, user, to, token }
    }

    /// A sealed file with form `form_id`'s sample sheet, made with the node's rule pack.
    fn sample_file(&self, form_id: &str) -> Vec<u8> {
        let form = self.t.node.catalogue.form(form_id).unwrap();
        let xml = nsdb_rules::xml::sample(form);
        seal(
            xml.as_bytes(),
            &self.to,
            &self.user,
            "1.0.0",
            self.t.node.catalogue.version(),
        )
        .unwrap()
    }

    /// Form rinko-002's sample sealed with key information for this node that the test makes
    /// itself (not through `nsdb key-info request`, so the node never issued it), valid until
    /// `expires`, signed by a hub and checked on `verified_on`.
    fn sample_with_own_key_info(&self, expires: &str, verified_on: &str) -> Vec<u8> {
        let config = &self.t.node.config;
        let hub = NodeIdentity::generate().unwrap();
        let info = nsdb_provisioning::sealed::KeyInfo::request(
            &NodeIdentity::load(&config.identity_path()).unwrap(),
            &config.name,
            &nsdb::imports::seal_key(config).unwrap(),
            expires,
        )
        .unwrap()
        .sign(&hub)
        .verify(&hub.public_key().to_bytes(), verified_on)
        .unwrap();
        let form = self.t.node.catalogue.form("rinko-002").unwrap();
        seal(
            nsdb_rules::xml::sample(form).as_bytes(),
            &info,
            &self.user,
            "1.0.0",
            self.t.node.catalogue.version(),
        )
        .unwrap()
    }

    /// The sample sheet of rinko-002 (筋萎縮性側索硬化症) without `item`, sealed by the
    /// site's user for the site's node; with the values it holds.
    fn sample_without(&self, item: &str) -> (Vec<u8>, std::collections::BTreeMap<String, String>) {
        let form = self.t.node.catalogue.form("rinko-002").unwrap();
        let mut values = nsdb_rules::xml::sample_values(form);
        values.remove(item);
        let xml = nsdb_rules::xml::write(&[nsdb_rules::xml::SheetOut {
            form,
            reference: None,
            values: &values,
        }])
        .unwrap();
        let file = seal(
            xml.as_bytes(),
            &self.to,
            &self.user,
            "1.0.0",
            self.t.node.catalogue.version(),
        )
        .unwrap();
        (file, values)
    }

    async fn import(&self, files: &[(&str, &[u8])]) -> Value {
        let (status, body) = send(
            &self.t,
            Request::builder()
                .method(Method::POST)
                .uri("/api/v1/imports")
                .header(header::AUTHORIZATION, format!("Bearer {}", self.token))
                .header(
                    header::CONTENT_TYPE,
                    format!("multipart/form-data; boundary={BOUNDARY}"),
                )
                .body(Body::from(multipart(&[], files)))
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        serde_json::from_str(&body).unwrap()
    }

    async fn api_get(&self, uri: &str) -> (StatusCode, String) {
        send(
            &self.t,
            Request::builder()
                .uri(uri)
                .header(header::AUTHORIZATION, format!("Bearer {}", self.token))
                .body(Body::empty())
                .unwrap(),
        )
        .await
    }

    async fn sheet_count(&self) -> i64 {
        self.t
            .node
            .store
            .read(|c| {
                c.query_row("SELECT COUNT(*) FROM sheets", [], |r| r.get(0))
                    .map_err(nsdb::Error::from)
            })
            .await
            .unwrap()
    }

    async fn audit_actions(&self) -> Vec<(String, Option<String>)> {
        self.t
            .node
            .store
            .read(|c| nsdb::audit::recent(c, 100).map_err(nsdb::Error::from))
            .await
            .unwrap()
            .into_iter()
            .map(|r| (r.action, r.detail))
            .collect()
    }
}

/// Key information for `t`'s node, signed by a hub and verified as the check tool does.
fn key_info(t: &TestNode) -> VerifiedKeyInfo {
    let hub = NodeIdentity::generate().unwrap();
    nsdb::imports::key_info_request(&t.node.config, "2099-12-31")
        .unwrap()
        .sign(&hub)
        .verify(&hub.public_key().to_bytes(), "2026-01-01")
        .unwrap()
}

fn multipart(fields: &[(&str, &str)], files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, value) in fields {
        out.extend_from_slice(
            format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    }
    for (name, bytes) in files {
        out.extend_from_slice(
            format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
            )
            .as_bytes(),
        );
        out.extend_from_slice(bytes);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    out
}

async fn send(t: &TestNode, req: Request<Body>) -> (StatusCode, String) {
    let app: Router = nsdb::http::router(t.node.clone());
    let res = app.oneshot(req).await.unwrap();
    let status = res.status();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

async fn api_login(t: &TestNode, login: &str) -> String {
    let (status, body) = send(
        t,
        Request::builder()
            .method(Method::POST)
            .uri("/api/v1/session")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(
                json!({"login": login, "password": "demo"}).to_string(),
            ))
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    v["token"].as_str().unwrap().to_string()
}

fn row(report: &Value, i: usize) -> &Value {
    &report["rows"][i]
}

#[tokio::test]
async fn a_sealed_file_becomes_a_draft_bulk_sheet_and_the_same_file_again_creates_nothing() {
    let s = Site::start().await;
    let file = s.sample_file("rinko-002");
    let report = s.import(&[("20230101_1.sealed", &file)]).await;
    assert_eq!(report["tool_version"], nsdb::imports::TOOL_VERSION);
    assert_eq!(
        report["uploads"][0]["tool_version"], "1.0.0",
        "the upload's tool version is shown: {report}"
    );
    let r = row(&report, 0);
    assert_eq!(r["result"], "取込成功", "{report}");
    assert_eq!(r["file"], "20230101_1.sealed");
    assert_eq!(r["patient"], "見本 太郎");
    assert_eq!(r["written_date"], "2025-03-15");
    assert!(!r["disease"].as_str().unwrap().is_empty());
    let id = r["sheet_id"].as_str().unwrap().to_string();

    let (status, body) = s.api_get(&format!("/api/v1/sheets/{id}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let sheet: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(sheet["registration"], "bulk");
    assert_eq!(sheet["status"], "draft");
    assert_eq!(sheet["items"]["patient.name"], "見本 太郎");

    let again = s.import(&[("copy.sealed", &file)]).await;
    let r = row(&again, 0);
    assert_eq!(r["imported"], false);
    assert_eq!(r["duplicate"], true);
    assert!(
        r["result"].as_str().unwrap().contains("取込済み"),
        "{again}"
    );
    assert_eq!(r["sheet_id"], id.as_str());
    assert_eq!(
        s.sheet_count().await,
        1,
        "the second upload created no sheet"
    );
    let actions = s.audit_actions().await;
    assert!(actions.iter().any(|(a, _)| a == "sheet_import"));
    assert!(
        actions
            .iter()
            .any(|(a, d)| a == "sheet_import_refused" && d.as_deref() == Some("duplicate"))
    );
}

#[tokio::test]
async fn files_made_with_an_older_rule_pack_are_refused_with_the_ministrys_words() {
    let s = Site::start().await;
    let form = s.t.node.catalogue.form("rinko-002").unwrap();
    let older = seal(
        nsdb_rules::xml::sample(form).as_bytes(),
        &s.to,
        &s.user,
        "0.9.0",
        "builtin-0.0.1",
    )
    .unwrap();
    let report = s.import(&[("old.sealed", &older)]).await;
    let r = row(&report, 0);
    assert_eq!(r["imported"], false);
    assert!(
        r["result"]
            .as_str()
            .unwrap()
            .contains("チェックツールのバージョンが最新ではありません"),
        "{report}"
    );
    assert_eq!(report["uploads"][0]["rule_pack_version"], "builtin-0.0.1");
    assert_eq!(s.sheet_count().await, 0);
    assert!(
        s.audit_actions()
            .await
            .contains(&("sheet_import_refused".into(), Some("outdated".into())))
    );
}

#[tokio::test]
async fn unknown_signers_tampered_files_and_other_nodes_files_are_refused_with_their_reason() {
    let s = Site::start().await;
    let form = s.t.node.catalogue.form("rinko-002").unwrap();
    let xml = nsdb_rules::xml::sample(form);
    let pack = s.t.node.catalogue.version().to_string();

    let stranger = UserKey::generate().unwrap();
    let unknown = seal(xml.as_bytes(), &s.to, &stranger, "1.0.0", &pack).unwrap();

    let mut v: Value = serde_json::from_slice(&s.sample_file("rinko-002")).unwrap();
    let body = v["body"].as_str().unwrap().to_string();
    let flipped = if body.starts_with('A') { "B" } else { "A" };
    v["body"] = Value::String(format!("{flipped}{}", &body[1..]));
    let tampered = serde_json::to_vec(&v).unwrap();

    let other = TestNode::start(NodeRole::Hospital).await;
    let elsewhere = seal(xml.as_bytes(), &key_info(&other), &s.user, "1.0.0", &pack).unwrap();

    let report = s
        .import(&[
            ("unknown.sealed", &unknown),
            ("tampered.sealed", &tampered),
            ("elsewhere.sealed", &elsewhere),
            ("plain.xml", xml.as_bytes()),
        ])
        .await;
    let results: Vec<&str> = (0..4)
        .map(|i| row(&report, i)["result"].as_str().unwrap())
        .collect();
    assert!(results[0].contains("登録されていません"), "{}", results[0]);
    assert!(results[1].contains("変更されたか"), "{}", results[1]);
    assert!(results[2].contains("別のノード"), "{}", results[2]);
    assert!(
        results[3].contains("XML ファイルのままです"),
        "{}",
        results[3]
    );
    assert_eq!(s.sheet_count().await, 0, "no refused file left a sheet");
    let details: Vec<Option<String>> = s
        .audit_actions()
        .await
        .into_iter()
        .filter(|(a, _)| a == "sheet_import_refused")
        .map(|(_, d)| d)
        .collect();
    for code in ["unknown_signer", "tampered", "other_node", "plain_xml"] {
        assert!(details.contains(&Some(code.into())), "{code}: {details:?}");
    }
}

/// A partial file (部分取込: `nsdb check --partial`) becomes a draft to finish on screen; the row
/// says how many items are left, and the first of them.
#[tokio::test]
async fn a_partial_sheet_becomes_a_draft_with_what_is_left_to_fix() {
    let s = Site::start().await;
    let (file, values) = s.sample_without("patient.sex");
    let report = s.import(&[("partial.sealed", &file)]).await;
    let r = row(&report, 0);
    assert_eq!(r["imported"], true, "{report}");
    assert_eq!(r["pending_checks"], 1, "{report}");
    let result = r["result"].as_str().unwrap();
    assert!(
        result.contains("一時保存") && result.contains("性別"),
        "the row says it is a draft and what is missing: {result}"
    );
    let id = r["sheet_id"].as_str().unwrap();
    let (_, body) = s.api_get(&format!("/api/v1/sheets/{id}")).await;
    let sheet: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(sheet["status"], "draft");
    assert_eq!(
        sheet["items"]["patient.birth_date"],
        values["patient.birth_date"]
    );
}

/// A draft is found by its patient: a file with no 患者氏名 is refused, even a partial one, and
/// leaves no sheet.
#[tokio::test]
async fn a_sheet_without_the_patients_name_is_refused() {
    let s = Site::start().await;
    let (file, _) = s.sample_without("patient.name");
    let report = s.import(&[("nameless.sealed", &file)]).await;
    let r = row(&report, 0);
    assert_eq!(r["imported"], false, "{report}");
    let result = r["result"].as_str().unwrap();
    assert!(result.contains("氏名"), "{result}");
    assert_eq!(s.sheet_count().await, 0);
    let refused: Vec<Option<String>> = s
        .audit_actions()
        .await
        .into_iter()
        .filter(|(a, _)| a == "sheet_import_refused")
        .map(|(_, d)| d)
        .collect();
    assert_eq!(refused, vec![Some("no_patient".to_string())]);
}

/// The check tool encrypts afresh every time it runs: the same sheet sealed twice is two
/// different files, and the second is still a duplicate.
#[tokio::test]
async fn the_same_sheet_sealed_again_is_a_duplicate() {
    let s = Site::start().await;
    let (first, second) = (s.sample_file("rinko-002"), s.sample_file("rinko-002"));
    assert_ne!(first, second, "sealing is not deterministic");
    let report = s
        .import(&[("a.sealed", &first), ("b.sealed", &second)])
        .await;
    assert_eq!(row(&report, 0)["imported"], true, "{report}");
    assert_eq!(row(&report, 1)["duplicate"], true, "{report}");
    assert_eq!(row(&report, 1)["sheet_id"], row(&report, 0)["sheet_id"]);
    let third = s.sample_file("rinko-002");
    let again = s.import(&[("c.sealed", &third)]).await;
    assert_eq!(row(&again, 0)["duplicate"], true, "{again}");
    assert_eq!(s.sheet_count().await, 1);
}

/// The same sheet sealed by another user of the institution (a clerk's key, or the doctor's
/// after 暗号鍵再発行) is the same sheet: a duplicate, not a second draft. Keys are only for
/// those who write sheets.
#[tokio::test]
async fn the_same_sheet_signed_by_another_user_is_a_duplicate() {
    let s = Site::start().await;
    let first = s
        .import(&[("doctor.sealed", &s.sample_file("rinko-002"))])
        .await;
    assert_eq!(row(&first, 0)["imported"], true, "{first}");
    let clerk = UserKey::generate().unwrap();
    s.t.node
        .set_user_key("clerk", clerk.public_key())
        .await
        .unwrap();
    let form = s.t.node.catalogue.form("rinko-002").unwrap();
    let by_clerk = seal(
        nsdb_rules::xml::sample(form).as_bytes(),
        &s.to,
        &clerk,
        "1.0.0",
        s.t.node.catalogue.version(),
    )
    .unwrap();
    let again = s.import(&[("clerk.sealed", &by_clerk)]).await;
    assert_eq!(row(&again, 0)["duplicate"], true, "{again}");
    assert_eq!(row(&again, 0)["sheet_id"], row(&first, 0)["sheet_id"]);
    assert_eq!(s.sheet_count().await, 1);

    let admin =
        s.t.node
            .set_user_key("admin", UserKey::generate().unwrap().public_key())
            .await;
    assert!(
        admin.is_err_and(|e| e.to_string().contains("鍵を持てません")),
        "a 責任者 account gets no check-tool key"
    );
}

/// A file sealed with key information that has expired is refused when it is imported, with the
/// date and what to do.
#[tokio::test]
async fn a_file_sealed_with_expired_key_information_is_refused() {
    let s = Site::start().await;
    let file = s.sample_with_own_key_info("2021-03-31", "2021-03-01");
    let report = s.import(&[("old-key.sealed", &file)]).await;
    let r = row(&report, 0);
    assert_eq!(r["imported"], false);
    assert!(
        r["result"]
            .as_str()
            .unwrap()
            .contains("鍵情報の有効期限（2021-03-31）が切れています"),
        "{report}"
    );
    assert_eq!(s.sheet_count().await, 0);
}

/// The expiry in a file's header must be one this node issued: key information the node never
/// issued (a user's own, with a later expiry) is refused even though the hub signed it.
#[tokio::test]
async fn key_information_the_node_did_not_issue_is_refused() {
    let s = Site::start().await;
    let file = s.sample_with_own_key_info("2098-01-01", "2026-01-01");
    let report = s.import(&[("later.sealed", &file)]).await;
    let r = row(&report, 0);
    assert_eq!(r["imported"], false, "{report}");
    assert!(
        r["result"]
            .as_str()
            .unwrap()
            .contains("このノードが発行したものではありません"),
        "{report}"
    );
    assert_eq!(s.sheet_count().await, 0);
}

/// The API answers a request that is not `multipart/form-data` in JSON, as every API error.
#[tokio::test]
async fn a_json_body_to_the_import_api_gets_a_json_error() {
    let s = Site::start().await;
    let (status, body) = send(
        &s.t,
        Request::builder()
            .method(Method::POST)
            .uri("/api/v1/imports")
            .header(header::AUTHORIZATION, format!("Bearer {}", s.token))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from("{\"files\": []}"))
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let v: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("multipart/form-data"),
        "{v}"
    );
}

#[tokio::test]
async fn every_forms_exported_xml_imports_back_to_the_same_values() {
    let s = Site::start().await;
    let forms: Vec<String> =
        s.t.node
            .catalogue
            .forms()
            .iter()
            .map(|f| f.id.clone())
            .collect();
    for form_id in forms {
        let form = s.t.node.catalogue.form(&form_id).unwrap();
        let values = nsdb_rules::xml::sample_values(form);
        let (status, body) = send(
            &s.t,
            Request::builder()
                .method(Method::POST)
                .uri("/api/v1/sheets")
                .header(header::AUTHORIZATION, format!("Bearer {}", s.token))
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(
                    json!({"form_id": form_id, "items": values}).to_string(),
                ))
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{form_id}: {body}");
        let created: Value = serde_json::from_str(&body).unwrap();
        let id = created["id"].as_str().unwrap();

        let (status, xml) = s.api_get(&format!("/api/v1/sheets/{id}/xml")).await;
        assert_eq!(status, StatusCode::OK, "{form_id}: {xml}");
        let file = seal(
            xml.as_bytes(),
            &s.to,
            &s.user,
            "1.0.0",
            s.t.node.catalogue.version(),
        )
        .unwrap();
        let report = s.import(&[("export.sealed", &file)]).await;
        let r = row(&report, 0);
        assert_eq!(r["result"], "取込成功", "{form_id}: {report}");
        let (_, body) = s
            .api_get(&format!(
                "/api/v1/sheets/{}",
                r["sheet_id"].as_str().unwrap()
            ))
            .await;
        let imported: Value = serde_json::from_str(&body).unwrap();
        let items = |v: &Value| -> BTreeMap<String, Value> {
            v["items"]
                .as_object()
                .unwrap()
                .clone()
                .into_iter()
                .collect()
        };
        assert_eq!(items(&imported), items(&created), "{form_id}");
    }
}

#[tokio::test]
async fn a_clerk_uploads_on_screen_and_downloads_the_result_table_as_csv() {
    let s = Site::start().await;
    let app = nsdb::http::router(s.t.node.clone());
    let mut cookies: HashMap<String, String> = HashMap::new();
    let cookie_header = |c: &HashMap<String, String>| {
        c.iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    };
    let call = async |req: Request<Body>, cookies: &mut HashMap<String, String>| {
        let res = app.clone().oneshot(req).await.unwrap();
        for sc in res.headers().get_all(header::SET_COOKIE) {
            let sc = sc.to_str().unwrap();
            let pair = sc.split(';').next().unwrap();
            let (k, v) = pair.split_once('=').unwrap();
            cookies.insert(k.to_string(), v.to_string());
        }
        let status = res.status();
        let ct = res
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        (status, ct, String::from_utf8_lossy(&bytes).into_owned())
    };
    let (_, _, login) = call(
        Request::get("/login").body(Body::empty()).unwrap(),
        &mut cookies,
    )
    .await;
    let csrf = hidden(&login, "csrf");
    let form = serde_urlencoded::to_string([
        ("csrf", csrf.as_str()),
        ("login", "clerk"),
        ("password", "demo"),
    ])
    .unwrap();
    let (status, _, _) = call(
        Request::post("/login")
            .header(header::COOKIE, cookie_header(&cookies))
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(form))
            .unwrap(),
        &mut cookies,
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (status, _, page) = call(
        Request::get("/imports")
            .header(header::COOKIE, cookie_header(&cookies))
            .body(Body::empty())
            .unwrap(),
        &mut cookies,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("最新のチェックツールのバージョン"));
    assert!(page.contains(nsdb::imports::TOOL_VERSION));
    let csrf = hidden(&page, "csrf");
    let file = s.sample_file("rinko-002");

    let no_csrf = multipart(&[], &[("a.sealed", &file)]);
    let (status, _, _) = call(
        Request::post("/imports")
            .header(header::COOKIE, cookie_header(&cookies))
            .header(
                header::CONTENT_TYPE,
                format!("multipart/form-data; boundary={BOUNDARY}"),
            )
            .body(Body::from(no_csrf))
            .unwrap(),
        &mut cookies,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "an upload without the token");
    assert_eq!(s.sheet_count().await, 0);

    // Too many files at once: the 一括登録 page again, the reason beside the file field.
    let many: Vec<(String, Vec<u8>)> = (0..=nsdb::imports::MAX_FILES)
        .map(|i| (format!("{i}.sealed"), b"x".to_vec()))
        .collect();
    let many: Vec<(&str, &[u8])> = many
        .iter()
        .map(|(n, b)| (n.as_str(), b.as_slice()))
        .collect();
    let (status, _, page) = call(
        Request::post("/imports")
            .header(header::COOKIE, cookie_header(&cookies))
            .header(
                header::CONTENT_TYPE,
                format!("multipart/form-data; boundary={BOUNDARY}"),
            )
            .body(Body::from(multipart(&[("csrf", &csrf)], &many)))
            .unwrap(),
        &mut cookies,
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.contains("id=\"upload-error\""), "{page}");
    assert!(page.contains("1000件まで"), "{page}");
    assert!(
        page.contains("type=\"file\""),
        "the upload form is still there"
    );
    assert_eq!(s.sheet_count().await, 0);

    let body = multipart(&[("csrf", &csrf)], &[("20230101_1.sealed", &file)]);
    let (status, _, result) = call(
        Request::post("/imports")
            .header(header::COOKIE, cookie_header(&cookies))
            .header(
                header::CONTENT_TYPE,
                format!("multipart/form-data; boundary={BOUNDARY}"),
            )
            .body(Body::from(body))
            .unwrap(),
        &mut cookies,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{result}");
    for text in [
        "実行結果一覧",
        "見本 太郎",
        "20230101_1.sealed",
        "2025/03/15",
        "取込成功",
    ] {
        assert!(result.contains(text), "{text} missing in {result}");
    }
    let rows = html_unescape(&hidden(&result, "rows"));
    let form =
        serde_urlencoded::to_string([("csrf", csrf.as_str()), ("rows", rows.as_str())]).unwrap();
    let (status, ct, csv) = call(
        Request::post("/imports/result.csv")
            .header(header::COOKIE, cookie_header(&cookies))
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(form))
            .unwrap(),
        &mut cookies,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(ct.starts_with("text/csv"));
    assert!(csv.starts_with("\u{feff}患者氏名,病名,ファイル名,記載年月日,結果\r\n"));
    assert!(csv.contains("見本 太郎"));
    assert!(
        csv.contains(",20230101_1.sealed,2025/03/15,取込成功\r\n"),
        "{csv}"
    );
}

/// The value of the first hidden input named `name`.
fn hidden(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let at = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} field in {html}"));
    let rest = &html[at + marker.len()..];
    rest[..rest.find('"').unwrap()].to_string()
}

fn html_unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}
