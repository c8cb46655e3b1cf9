//! HTTP flows through the node's router in-process: the API and the UI as a user meets them,
//! and the authorisation denials.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use nsdb::accounts::policy::UserKind;
use nsdb::config::NodeRole;
use nsdb::testing::TestNode;
use serde_json::{Value, json};
use tower::ServiceExt;

mod support;
use support::{Client, hidden_csrf};

#[tokio::test]
async fn a_doctor_creates_reads_updates_and_finds_a_sheet_through_the_api() {
    let t = TestNode::start(NodeRole::Hospital).await;
    let mut c = Client::new(&t);
    c.api_login("doctor").await;
    let r = c
        .json(
            Method::POST,
            "/api/v1/sheets",
            json!({"form_id": "rinko-006", "items": {
                "patient.name": "試験 紗季",
                "patient.name_kana": "ｼｹﾝ ｻｷ",
                "patient.birth_date": "１９５５/３/９",
                "patient.insured_no": "7654321",
                "patient.sex": "2"
            }}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let created = r.json();
    let id = created["id"].as_str().unwrap().to_string();
    assert_eq!(created["items"]["patient.name_kana"], "シケン サキ");
    assert_eq!(created["items"]["patient.birth_date"], "1955-03-09");
    assert_eq!(created["status"], "draft");
    assert_eq!(created["kokuji"], 6);
    assert_eq!(created["doctor_name"], "鈴木 太郎");

    let r = c.get(&format!("/api/v1/sheets/{id}")).await;
    assert_eq!(r.status, StatusCode::OK);
    let read = r.json();
    assert_eq!(read["items"]["patient.name"], "試験 紗季");
    let version = read["version"].clone();

    let r = c
        .json(
            Method::PUT,
            &format!("/api/v1/sheets/{id}"),
            json!({"version": version, "items": {"patient.postal_code": "1008916", "patient.birth_date": "2099-01-01", "patient.sex": ""}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let updated = r.json();
    assert_eq!(updated["items"]["patient.postal_code"], "100-8916");
    assert!(updated["items"].get("patient.sex").is_none(), "cleared");
    let messages = updated["messages"].as_array().unwrap();
    assert!(
        messages
            .iter()
            .any(|m| m["items"][0] == "patient.birth_date"
                && m["text"].as_str().unwrap().contains("未来")),
        "{messages:?}"
    );

    for q in ["シケン", "ｼｹﾝ ｻ", "7654321"] {
        let r = c
            .get(&format!(
                "/api/v1/sheets?{}",
                serde_urlencoded::to_string([("q", q)]).unwrap()
            ))
            .await;
        assert_eq!(r.status, StatusCode::OK);
        let page = r.json();
        assert_eq!(page["total"], 1, "search {q}: {page}");
        assert_eq!(page["rows"][0]["id"], id.as_str());
    }
    let r = c.get("/api/v1/sheets?q=%E3%83%A4%E3%83%9E").await;
    assert_eq!(r.json()["total"], 0);
}

#[tokio::test]
async fn bad_api_input_gets_a_clear_error_and_changes_nothing() {
    let t = TestNode::start(NodeRole::Hospital).await;
    let mut c = Client::new(&t);
    let r = c.get("/api/v1/sheets").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.json()["error"]["code"], "unauthenticated");

    let r = c
        .json(
            Method::POST,
            "/api/v1/session",
            json!({"login": "doctor", "password": "wrong"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("パスワード")
    );

    c.api_login("doctor").await;
    let r = c
        .json(
            Method::POST,
            "/api/v1/sheets",
            json!({"form_id": "rinko-999"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    let r = c
        .json(
            Method::POST,
            "/api/v1/sheets",
            json!({"form_id": "rinko-006", "items": {"patient.name": "x", "patient.shoe_size": "27"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.json()["error"]["items"], json!(["patient.shoe_size"]));

    let r = c
        .send(
            Method::POST,
            "/api/v1/sheets",
            "application/json",
            "{not json".into(),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.json()["error"]["code"], "bad_json");

    let r = c.get("/api/v1/sheets").await;
    assert_eq!(r.json()["total"], 0, "nothing was stored");
}

#[tokio::test]
async fn a_user_of_another_hospital_cannot_open_or_change_a_sheet() {
    let t = TestNode::start(NodeRole::Hospital).await;
    t.add_user("other", UserKind::NanbyoDoctor, "1399000029")
        .await;
    let mut doctor = Client::new(&t);
    doctor.api_login("doctor").await;
    let r = doctor
        .json(
            Method::POST,
            "/api/v1/sheets",
            json!({"form_id": "rinko-006", "items": {"patient.name": "秘密 太郎"}}),
        )
        .await;
    let id = r.json()["id"].as_str().unwrap().to_string();

    let mut other = Client::new(&t);
    other.api_login("other").await;
    let r = other.get(&format!("/api/v1/sheets/{id}")).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    assert!(!r.body.contains("秘密"));
    let r = other
        .json(
            Method::PUT,
            &format!("/api/v1/sheets/{id}"),
            json!({"version": [], "items": {"patient.name": "改竄"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = other.get("/api/v1/sheets").await;
    assert_eq!(r.json()["total"], 0);

    let r = doctor.get(&format!("/api/v1/sheets/{id}")).await;
    assert_eq!(r.json()["items"]["patient.name"], "秘密 太郎", "unchanged");

    // The refusals are in the audit log.
    let actions: Vec<String> = t
        .node
        .store
        .read(|c| {
            let mut st = c.prepare("SELECT action FROM audit ORDER BY seq")?;
            let v = st
                .query_map([], |r| r.get(0))?
                .collect::<Result<Vec<String>, _>>()?;
            Ok::<_, nsdb::Error>(v)
        })
        .await
        .unwrap();
    assert!(
        actions.contains(&"sheet_view_denied".to_string()),
        "{actions:?}"
    );
    assert!(
        actions.contains(&"sheet_edit_denied".to_string()),
        "{actions:?}"
    );
    let chain = t
        .node
        .store
        .read(|c| Ok::<_, nsdb::Error>(nsdb::audit::verify(c)?))
        .await
        .unwrap();
    assert_eq!(chain, Ok(actions.len() as u64));
}

#[tokio::test]
async fn a_clerk_cannot_reach_the_administrators_pages() {
    let t = TestNode::start(NodeRole::Hospital).await;
    let mut clerk = Client::new(&t);
    clerk.ui_login("clerk").await;
    let r = clerk.get("/admin/users").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.body.contains("権限がありません"));
    assert!(!clerk.get("/sheets").await.body.contains("ユーザ管理"));

    let mut admin = Client::new(&t);
    admin.ui_login("admin").await;
    let r = admin.get("/admin/users").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.contains("田中 花子") && r.body.contains("医療クラーク等"));
    // The administrator manages accounts but does not read patients' sheets.
    assert_eq!(admin.get("/sheets").await.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_doctor_writes_a_sheet_in_the_ui_and_finds_it_in_the_list() {
    let t = TestNode::start_with_sheets(NodeRole::Hospital, 30).await;
    let mut c = Client::new(&t);
    assert_eq!(c.get("/sheets").await.location(), "/login");
    let csrf = c.ui_login("doctor").await;

    let list = c.get("/sheets").await;
    assert_eq!(list.status, StatusCode::OK);
    assert!(list.body.contains("検索結果件数 30件"), "{}", list.body);
    for column in [
        "申請種別",
        "被保険者番号",
        "アクセスキー",
        "氏名カナ",
        "告示番号",
        "指定医氏名",
        "自治体連携日",
        "登録種別",
    ] {
        assert!(list.body.contains(column), "column {column}");
    }

    let r = c
        .form("/sheets", &[("csrf", &csrf), ("form_id", "rinko-006")])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let edit = r.location().to_string();
    let id = edit
        .strip_prefix("/sheets/")
        .and_then(|s| s.strip_suffix("/edit"))
        .unwrap()
        .to_string();
    let page = c.get(&edit).await;
    assert!(page.body.contains("一時保存") && page.body.contains("パーキンソン病"));

    let r = c
        .form(
            &format!("/sheets/{id}"),
            &[
                ("csrf", &csrf),
                ("action", "save"),
                ("patient.name", "画面 入力"),
                ("patient.name_kana", "ガメン ニュウリョク"),
                ("patient.postal_code", "12"),
                ("basic.family_relation", ""),
                ("basic.family_relation", "1"),
                ("basic.family_relation", "3"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let page = c.get(r.location()).await;
    assert!(page.body.contains("一時保存しました。"));
    assert!(page.body.contains("value=\"画面 入力\""));
    // The malformed postal code is kept as typed, reported beside its field and highlighted.
    assert!(page.body.contains("「郵便番号」は7桁"), "{}", page.body);
    assert!(page.body.contains("aria-invalid=\"true\""));

    let found = c.get("/sheets?q=%E3%82%AC%E3%83%A1%E3%83%B3").await;
    assert!(found.body.contains("検索結果件数 1件"), "{}", found.body);
    assert!(found.body.contains("ガメン ニュウリョク"));
    let view = c.get(&format!("/sheets/{id}")).await;
    assert!(view.body.contains("画面 入力"));

    // A form posted without the session's CSRF token is refused and changes nothing.
    let r = c
        .form(
            &format!("/sheets/{id}"),
            &[("csrf", "forged"), ("patient.name", "偽造")],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(!c.get(&format!("/sheets/{id}")).await.body.contains("偽造"));
}

#[tokio::test]
async fn sessions_use_strict_cookies_and_pages_a_strict_policy() {
    let t = TestNode::start(NodeRole::Hospital).await;
    let mut c = Client::new(&t);
    let page = c.get("/login").await;
    let csp = page.headers[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap();
    assert!(csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"));
    let csrf = hidden_csrf(&page.body);
    let r = c
        .form(
            "/login",
            &[("csrf", &csrf), ("login", "doctor"), ("password", "demo")],
        )
        .await;
    let cookie = r.headers[header::SET_COOKIE].to_str().unwrap().to_string();
    let all: Vec<_> = r.headers.get_all(header::SET_COOKIE).iter().collect();
    let session = all
        .iter()
        .map(|v| v.to_str().unwrap())
        .find(|v| v.starts_with("nsdb_session="))
        .unwrap_or(&cookie);
    for flag in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/"] {
        assert!(session.contains(flag), "{flag} missing in {session}");
    }
    // A login without the page's token is refused.
    let mut fresh = Client::new(&t);
    let r = fresh
        .form(
            "/login",
            &[("csrf", "x"), ("login", "doctor"), ("password", "demo")],
        )
        .await;
    assert_eq!(r.location(), "/login", "sent back to the login page");
    assert!(!fresh.cookies.contains_key("nsdb_session"));
}

/// Health answers 200 while the node serves (`ok`, `degraded`) and 503 once damage was found and
/// writes are refused, so a load balancer keeps a degraded node and drops a damaged one.
#[tokio::test]
async fn health_answers_503_only_when_the_node_is_damaged() {
    let t = TestNode::start(NodeRole::Hospital).await;
    let mut c = Client::new(&t);
    let r = c.get("/api/v1/health").await;
    assert_eq!(r.status, StatusCode::OK);
    t.node.store.mark_damaged("3 pages fail their HMAC".into());
    let r = c.get("/api/v1/health").await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.json()["status"], "damaged");
    assert_eq!(r.json()["damage"], "3 pages fail their HMAC");
}

#[tokio::test]
async fn every_role_answers_health_and_the_api_is_described() {
    for role in [NodeRole::Hub, NodeRole::Hospital, NodeRole::Municipality] {
        let t = TestNode::start(role).await;
        let mut c = Client::new(&t);
        let r = c.get("/api/v1/health").await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.json()["status"], "ok");
        assert_eq!(
            r.json()["role"],
            serde_json::to_value(role).unwrap(),
            "{role:?}"
        );
    }
    let t = TestNode::start(NodeRole::Hospital).await;
    let mut c = Client::new(&t);
    let doc = c.get("/api/v1/openapi.json").await.json();
    for path in [
        "/api/v1/health",
        "/api/v1/session",
        "/api/v1/sheets",
        "/api/v1/sheets/{id}",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} missing");
    }
    assert!(doc["components"]["schemas"].get("SheetDetail").is_some());
    let r = c.get("/api/v1/nothing").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.json()["error"]["code"], "not_found");
}

#[tokio::test]
async fn api_refusals_are_json_with_allow_and_ui_refusals_are_japanese_pages() {
    let t = TestNode::start(NodeRole::Hospital).await;
    let mut c = Client::new(&t);
    for path in ["/api/v1/nothing", "/api/nothing", "/api/v2/sheets", "/api/"] {
        let r = c.get(path).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}");
        assert!(
            r.headers[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("application/json"),
            "{path}"
        );
        assert_eq!(r.json()["error"]["code"], "not_found", "{path}");
    }
    let r = c
        .send(Method::DELETE, "/api/v1/sheets", "", String::new())
        .await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.json()["error"]["code"], "method_not_allowed");
    assert!(!r.json()["error"]["message"].as_str().unwrap().is_empty());
    let allow = r.headers[header::ALLOW].to_str().unwrap().to_string();
    assert!(allow.contains("GET") && allow.contains("POST"), "{allow}");
    let r = c
        .send(Method::PATCH, "/api/v1/health", "", String::new())
        .await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.json()["error"]["code"], "method_not_allowed");
    assert!(r.headers.contains_key(header::ALLOW));

    // The UI keeps its Japanese pages for the same refusals.
    let r = c.get("/no-such-page").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.body.contains("見つかりません"), "{}", r.body);
    let r = c
        .send(Method::DELETE, "/static/app.css", "", String::new())
        .await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(r.body.contains("この操作はできません"), "{}", r.body);
    assert!(r.headers.contains_key(header::ALLOW));
}

/// Finds `needle` in any file under `dir`.
fn found_in_files(dir: &std::path::Path, needle: &[u8]) -> Vec<String> {
    let mut hits = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            hits.extend(found_in_files(&path, needle));
        } else {
            let bytes = std::fs::read(&path).unwrap();
            if bytes.windows(needle.len()).any(|w| w == needle) {
                hits.push(path.display().to_string());
            }
        }
    }
    hits
}

#[tokio::test]
async fn a_patients_name_never_reaches_the_disk_in_plain_text() {
    let t = TestNode::start(NodeRole::Hospital).await;
    let mut c = Client::new(&t);
    c.api_login("doctor").await;
    let name = "蔵之介 唯一無二";
    let kana = "クラノスケ ユイイツムニ";
    let r = c
        .json(
            Method::POST,
            "/api/v1/sheets",
            json!({"form_id": "rinko-006", "items": {"patient.name": name, "patient.name_kana": kana}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let id = r.json()["id"].as_str().unwrap().to_string();
    assert_eq!(
        c.get(&format!("/api/v1/sheets/{id}")).await.json()["items"]["patient.name"],
        name
    );
    // Checkpoint so the pages are in the main file as well as the WAL.
    t.node
        .store
        .write(|c| {
            c.execute_batch("PRAGMA wal_checkpoint(FULL);")?;
            Ok::<_, nsdb::Error>(())
        })
        .await
        .unwrap();
    for needle in [name, kana] {
        let hits = found_in_files(t.dir.path(), needle.as_bytes());
        assert!(hits.is_empty(), "{needle} found in {hits:?}");
    }

    // The same search finds the name in an unencrypted store, so the search itself works.
    let plain_dir = tempfile::tempdir().unwrap();
    let plain = nsdb::store::Store::open(&plain_dir.path().join("plain.db"), None, 1).unwrap();
    let n = name.to_string();
    plain
        .write(move |c| {
            c.execute(
                "INSERT INTO node_meta (key, value) VALUES ('probe', ?1)",
                [n],
            )?;
            c.execute_batch("PRAGMA wal_checkpoint(FULL);")?;
            Ok::<_, nsdb::Error>(())
        })
        .await
        .unwrap();
    assert!(!found_in_files(plain_dir.path(), name.as_bytes()).is_empty());
}

#[tokio::test]
async fn a_registered_sheet_prints_with_its_access_key_and_a_masked_copy_hides_the_patient() {
    let t = TestNode::start(NodeRole::Hospital).await;
    let doctor = t.node.login("doctor", "demo").await.unwrap().principal;
    let form = t.node.catalogue.form("rinko-006").unwrap().clone();
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(3);
    let mut values = nsdb::cli::seed::sheet_values(&form, &mut rng, t.node.clock.today_jst());
    values.insert("patient.name".into(), "印刷 確認子".into());
    let id = t
        .node
        .create_sheet(&doctor, "rinko-006", &values)
        .await
        .unwrap()
        .row
        .id;
    let d = t
        .node
        .step(&doctor, &id, nsdb::sheets::workflow::Step::Register)
        .await
        .unwrap();
    let key = nsdb::sheets::workflow::printed_key(&d.row).unwrap();

    let mut c = Client::new(&t);
    c.ui_login("doctor").await;
    let app = nsdb::http::router(t.node.clone());
    let cookie: Vec<String> = c.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let text_of = async |uri: String| {
        let res = app
            .clone()
            .oneshot(
                Request::get(uri)
                    .header(header::COOKIE, cookie.join("; "))
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()[header::CONTENT_TYPE], "application/pdf");
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        assert!(bytes.starts_with(b"%PDF"));
        pdf_extract::extract_text_from_mem(&bytes).unwrap()
    };
    let full = text_of(format!("/sheets/{id}/print")).await;
    assert!(full.contains(&key), "the access key {key} is printed");
    assert!(full.contains("印刷 確認子"));
    let masked = text_of(format!("/sheets/{id}/print?masked=1")).await;
    assert!(masked.contains(&key));
    assert!(!masked.contains("印刷 確認子"), "the patient is masked");
}

#[tokio::test]
async fn a_conflict_pick_is_refused_without_the_token_a_value_or_a_conflict() {
    let t = TestNode::start_with_sheets(NodeRole::Hospital, 1).await;
    let id = nsdb::testing::sync::sheet_ids(&t.node).await[0].clone();
    let mut c = Client::new(&t);
    let csrf = c.ui_login("doctor").await;
    let path = format!("/sheets/{id}/conflicts");

    let r = c
        .form(
            &path,
            &[
                ("csrf", "forged"),
                ("field", "patient.name"),
                ("value", "x"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = c
        .form(&path, &[("csrf", &csrf), ("field", "patient.name")])
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        r.body.contains("採用する値が選ばれていません。"),
        "{}",
        r.body
    );
    // A value for an item that is not in conflict changes nothing.
    let before = c.get(&format!("/sheets/{id}")).await.body;
    let r = c
        .form(
            &path,
            &[
                ("csrf", &csrf),
                ("field", "patient.name"),
                ("value", "競合なし"),
            ],
        )
        .await;
    assert_ne!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert!(r.status.is_client_error(), "{}", r.status);
    assert!(
        !c.get(&format!("/sheets/{id}"))
            .await
            .body
            .contains("競合なし")
    );
    assert!(!before.contains("競合なし"));
}

#[tokio::test]
async fn a_value_longer_than_its_items_limit_or_a_sheet_past_its_ceiling_is_refused_at_save() {
    let t = TestNode::start(NodeRole::Hospital).await;
    let mut c = Client::new(&t);
    c.api_login("doctor").await;
    let long = "あ".repeat(nsdb_rules::form::ENTRY_LIMIT + 1);
    let r = c
        .json(
            Method::POST,
            "/api/v1/sheets",
            json!({"form_id": "rinko-006", "items": {"patient.address": long}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    let message = r.json()["error"]["message"].as_str().unwrap().to_string();
    assert!(
        message.contains("「住所」は2000文字までです（2001文字あります）"),
        "{message}"
    );

    let at_limit = "あ".repeat(nsdb_rules::form::ENTRY_LIMIT);
    let r = c
        .json(
            Method::POST,
            "/api/v1/sheets",
            json!({"form_id": "rinko-006", "items": {"patient.address": at_limit}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let id = r.json()["id"].as_str().unwrap().to_string();
    let version = r.json()["version"].clone();
    let r = c
        .json(
            Method::PUT,
            &format!("/api/v1/sheets/{id}"),
            json!({"version": version, "items": {"patient.address": long}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    let r = c.get(&format!("/api/v1/sheets/{id}")).await;
    assert_eq!(r.json()["items"]["patient.address"], at_limit.as_str());

    // The editor refuses it with the same words.
    let mut ui = Client::new(&t);
    let csrf = ui.ui_login("doctor").await;
    let r = ui
        .form(
            &format!("/sheets/{id}"),
            &[
                ("csrf", &csrf),
                ("action", "save"),
                ("patient.address", &long),
                ("patient.postal_code", "1000001"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.body.contains("2000文字までです"), "{}", r.body);
    // … in the editor again, with everything typed still in its fields: nothing is lost.
    assert!(
        r.body.contains("name=\"action\""),
        "the editor, not the view: {}",
        r.body
    );
    assert!(
        r.body.contains(&long),
        "the long value is still in its field"
    );
    assert!(
        r.body.contains("value=\"1000001\""),
        "the other typed values too"
    );

    // A sheet whose document grew past the ceiling before the limits (or by a path around
    // them) takes no further save, and says why.
    let doctor = t
        .node
        .login("doctor", "demo")
        .await
        .expect("signs in")
        .principal;
    for i in 0..10 {
        let values = std::collections::BTreeMap::from([(
            "patient.address".to_string(),
            Some(nsdb::testing::sync::noise(1_800_000, i)),
        )]);
        nsdb::testing::sync::write_directly(&t.node, &id, doctor.user_id, values, None).await;
    }
    let version = c.get(&format!("/api/v1/sheets/{id}")).await.json()["version"].clone();
    let r = c
        .json(
            Method::PUT,
            &format!("/api/v1/sheets/{id}"),
            json!({"version": version, "items": {"patient.name": "上限 超過"}}),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        r.body.len()
    );
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("上限（8 MB）"),
        "{}",
        r.body
    );
}

/// 一次判定表示 from the editor judges the values on the screen (posted, not saved), and the
/// stored sheet is unchanged by it.
#[tokio::test]
async fn the_judgment_from_the_editor_judges_the_values_on_the_screen() {
    let t = TestNode::start(NodeRole::Hospital).await;
    let doctor = t.node.login("doctor", "demo").await.unwrap().principal;
    let stored = [
        ("severity.hoehn_yahr", "1"),
        ("severity.life_function", "1"),
    ];
    let id = t
        .node
        .create_sheet(
            &doctor,
            "rinko-006",
            &stored
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
        .await
        .unwrap()
        .row
        .id;
    let mut c = Client::new(&t);
    let csrf = c.ui_login("doctor").await;
    let saved = c.get(&format!("/sheets/{id}/judgment")).await;
    assert!(saved.body.contains("基準を満たさない"), "{}", saved.body);
    let screen = c
        .form(
            &format!("/sheets/{id}/judgment"),
            &[
                ("csrf", &csrf),
                ("_version", "x"),
                ("severity.hoehn_yahr", "3"),
                ("severity.life_function", "2"),
            ],
        )
        .await;
    assert_eq!(screen.status, StatusCode::OK, "{}", screen.body);
    assert!(screen.body.contains("基準を満たす<"), "{}", screen.body);
    let after = t.node.get_sheet(&doctor, &id).await.unwrap();
    assert_eq!(after.items["severity.hoehn_yahr"], "1", "nothing was saved");

    // A value that fails its own check (Hoehn-Yahr has no stage 9) is judged as blank, and
    // the page names it with the check's message instead of judging from it.
    let invalid = c
        .form(
            &format!("/sheets/{id}/judgment"),
            &[
                ("csrf", &csrf),
                ("_version", "x"),
                ("severity.hoehn_yahr", "9"),
                ("severity.life_function", "2"),
            ],
        )
        .await;
    assert_eq!(invalid.status, StatusCode::OK, "{}", invalid.body);
    assert!(
        invalid.body.contains("未入力として判定しています"),
        "{}",
        invalid.body
    );
    assert!(!invalid.body.contains("基準を満たす<"), "{}", invalid.body);
}

/// The 一次判定 page of a new, empty sheet of `form` written by the demo doctor.
async fn judgment_page(t: &TestNode, form: &str) -> support::Reply {
    let doctor = t.node.login("doctor", "demo").await.unwrap().principal;
    let id = t
        .node
        .create_sheet(&doctor, form, &Default::default())
        .await
        .unwrap()
        .row
        .id;
    let mut c = Client::new(t);
    c.ui_login("doctor").await;
    c.get(&format!("/sheets/{id}/judgment")).await
}

/// A machine-judged form that judges one half only (rinko-057: the category) says of the other
/// that it is not machine-judged, instead of leaving it out.
#[tokio::test]
async fn the_half_a_form_does_not_judge_says_so() {
    let t = TestNode::start(NodeRole::Hospital).await;
    let page = judgment_page(&t, "rinko-057").await;
    assert!(page.body.contains("重症度"), "{}", page.body);
    assert!(
        page.body.contains("この様式では機械判定しません"),
        "{}",
        page.body
    );
}

/// 一次判定表示 on a form that judges nothing (記載のみ) says so, instead of "no disagreement".
#[tokio::test]
async fn the_judgment_of_a_record_only_form_says_it_is_not_judged() {
    let t = TestNode::start(NodeRole::Hospital).await;
    let form = t
        .node
        .catalogue
        .forms()
        .iter()
        .find(|f| f.level() == nsdb_rules::FormLevel::RecordOnly)
        .expect("a 記載のみ form")
        .id
        .clone();
    let page = judgment_page(&t, &form).await;
    assert!(
        page.body.contains("機械判定の対象ではありません"),
        "{}",
        page.body
    );
    assert!(!page.body.contains("不一致はありません"), "{}", page.body);
}

/// The API states the version it edits: two clients on one version each keep what they
/// changed, the same item changed by both comes back with both values, and registration is
/// refused until one is chosen.
#[tokio::test]
async fn api_saves_state_their_version_and_conflicts_come_back_with_both_values() {
    let t = TestNode::start(NodeRole::Hospital).await;
    let mut a = Client::new(&t);
    a.api_login("doctor").await;
    let code = t.node.config.institution.code.clone();
    t.add_user("doctor2", UserKind::NanbyoDoctor, &code).await;
    let mut b = Client::new(&t);
    b.api_login("doctor2").await;
    let r = a
        .json(
            Method::POST,
            "/api/v1/sheets",
            json!({"form_id": "rinko-006", "items": {"patient.name": "版 指定"}}),
        )
        .await;
    let created = r.json();
    let id = created["id"].as_str().unwrap().to_string();
    let v = created["version"].clone();
    let put = |items: Value| json!({"version": v, "items": items});
    let r = a
        .json(
            Method::PUT,
            &format!("/api/v1/sheets/{id}"),
            put(json!({"patient.address": "住所A", "severity.hoehn_yahr": "3"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = b
        .json(
            Method::PUT,
            &format!("/api/v1/sheets/{id}"),
            put(json!({"patient.name": "版 指定", "patient.postal_code": "1008916", "severity.hoehn_yahr": "4"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let got = r.json();
    assert_eq!(got["items"]["patient.address"], "住所A");
    assert_eq!(got["items"]["patient.postal_code"], "100-8916");
    let conflicts = got["conflicts"].as_array().unwrap();
    assert_eq!(conflicts.len(), 1, "{conflicts:?}");
    assert_eq!(conflicts[0]["field"], "severity.hoehn_yahr");
    let mut values: Vec<&str> = conflicts[0]["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    values.sort();
    assert_eq!(values, ["3", "4"]);

    let r = a
        .json(
            Method::POST,
            &format!("/api/v1/sheets/{id}/register"),
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    assert!(r.body.contains("同時に編集された項目"), "{}", r.body);
    let r = a
        .json(
            Method::POST,
            &format!("/api/v1/sheets/{id}/conflicts"),
            json!({"field": "severity.hoehn_yahr", "value": "4"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.json()["conflicts"].as_array().unwrap().is_empty());
    // A save without a version is refused and says what to send.
    let r = a
        .json(
            Method::PUT,
            &format!("/api/v1/sheets/{id}"),
            json!({"items": {"patient.address": "x"}}),
        )
        .await;
    assert!(r.status.is_client_error(), "{}", r.body);
}

/// The new-sheet page finds any of the 1,150 diseases by name, 別名 or 告示番号 (full-width
/// digits too), lists the diseases with their own forms before anything is typed, and says
/// plainly what the rules do for each form, there and in the editor.
#[tokio::test]
async fn a_doctor_finds_any_disease_by_name_or_number_and_sees_what_the_rules_do_for_it() {
    let t = TestNode::start(NodeRole::Hospital).await;
    let mut c = Client::new(&t);
    let csrf = c.ui_login("doctor").await;

    let first = c.get("/sheets/new").await;
    assert_eq!(first.status, StatusCode::OK);
    assert!(first.body.contains("パーキンソン病"), "{}", first.body);
    assert!(first.body.contains("機械判定"));
    assert!(
        !first.body.contains("球脊髄性筋萎縮症"),
        "a disease without its own form waits for a search"
    );
    assert!(first.body.contains("病名・告示番号で検索してください"));

    let by_name = c.get("/sheets/new?q=%E7%90%83%E8%84%8A%E9%AB%84").await; // 球脊髄
    assert!(
        by_name.body.contains("球脊髄性筋萎縮症"),
        "{}",
        by_name.body
    );
    assert!(by_name.body.contains("記載のみ"));
    assert!(by_name.body.contains("value=\"rinko-001\""));

    let by_number = c.get("/sheets/new?q=%EF%BC%91%EF%BC%91").await; // １１ (full-width)
    assert!(
        by_number.body.contains("重症筋無力症"),
        "{}",
        by_number.body
    );

    // Katakana finds a name written in hiragana; full-width and half-width digits find the same.
    let kana = c
        .get("/sheets/new?q=%E3%83%A2%E3%83%A4%E3%83%A2%E3%83%A4")
        .await; // モヤモヤ
    assert!(kana.body.contains("もやもや病"), "{}", kana.body);
    let half = c.get("/sheets/new?q=51").await;
    let full = c.get("/sheets/new?q=%EF%BC%95%EF%BC%91").await; // ５１
    assert_eq!(
        half.body.matches("name=\"form_id\"").count(),
        full.body.matches("name=\"form_id\"").count()
    );

    // A 小慢 number the catalogue inferred (no source gives it) says so.
    let inferred = c.get("/sheets/new?q=02-16-037").await;
    assert!(inferred.body.contains("番号未確認"), "{}", inferred.body);
    assert!(!half.body.contains("番号未確認"));

    let nothing = c.get("/sheets/new?q=zzzz").await;
    assert!(nothing.body.contains("該当する疾病がありません"));

    let r = c
        .form("/sheets", &[("csrf", &csrf), ("form_id", "rinko-001")])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let editor = c.get(r.location()).await;
    assert!(editor.body.contains("様式の水準"), "{}", editor.body);
    assert!(editor.body.contains("記載のみ"));
}

/// `GET /metrics` (on its own listener) counts requests by route template and status, refused
/// sign-ins and the audit log, and never carries a sheet id or a stored value in a label.
#[tokio::test]
async fn metrics_count_requests_by_route_and_hold_no_ids_or_values() {
    let t = TestNode::start(NodeRole::Hospital).await;
    let mut c = Client::new(&t);
    let csrf = c.ui_login("doctor").await;
    let r = c
        .form("/sheets", &[("csrf", &csrf), ("form_id", "rinko-006")])
        .await;
    let editor = r.location().to_string();
    let id = editor
        .trim_start_matches("/sheets/")
        .trim_end_matches("/edit")
        .to_string();
    assert_eq!(c.get(&editor).await.status, StatusCode::OK);
    let mut stranger = Client::new(&t);
    let page = stranger.get("/login").await;
    let token = hidden_csrf(&page.body);
    stranger
        .form(
            "/login",
            &[("csrf", &token), ("login", "doctor"), ("password", "wrong")],
        )
        .await;

    let res = nsdb::http::metrics_router(t.node.clone())
        .oneshot(Request::get("/metrics").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let text =
        String::from_utf8(res.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
    assert!(
        text.contains(
            "nsdb_http_requests_total{route=\"/sheets/{id}/edit\",method=\"GET\",status=\"200\"} 1"
        ),
        "{text}"
    );
    let failures: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("nsdb_sign_in_failures_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    assert!(failures >= 1, "the refused sign-in is counted: {text}");
    assert!(text.contains("nsdb_http_request_duration_seconds_bucket"));
    assert!(
        !text.contains("nsdb_audit_entries 0"),
        "the audit log is counted"
    );
    assert!(!text.contains(&id), "a sheet id in the metrics: {text}");
    assert!(!text.contains("doctor"), "a login in the metrics");
}

#[tokio::test]
async fn linkage_without_a_hub_says_so_and_keeps_what_was_typed() {
    let t = TestNode::start(NodeRole::Hospital).await;
    let mut c = Client::new(&t);
    let csrf = c.ui_login("doctor").await;
    let page = c.get("/linkage").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("アクセスキー") && page.body.contains("生年月日"));
    assert!(page.body.contains("href=\"/linkage\""), "the menu entry");

    let key = nsdb::keys::AccessKey::new(12_345, 678).display();
    let r = c
        .form(
            "/linkage",
            &[
                ("csrf", &csrf),
                ("access_key", &key),
                ("birth_date", "1980/4/1"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.body.contains("ハブ（中央）に接続できない"), "{}", r.body);
    assert!(
        r.body.contains(&format!("value=\"{key}\"")),
        "the key stays"
    );
    assert!(
        r.body.contains("value=\"1980/4/1\""),
        "the birth date stays"
    );

    // A key with a wrong check digit never leaves the node.
    let digits = nsdb::keys::AccessKey::new(12_345, 678).digits().to_string();
    let check = digits.as_bytes()[10] - b'0';
    let wrong = format!("{}{}", &digits[..10], (check + 1) % 10);
    let r = c
        .form(
            "/linkage",
            &[
                ("csrf", &csrf),
                ("access_key", &wrong),
                ("birth_date", "1980-04-01"),
            ],
        )
        .await;
    assert!(r.body.contains("末尾1桁が合いません"), "{}", r.body);
    assert!(!r.body.contains("ハブ（中央）に接続できない"));

    // The API: 503 when the hub cannot be reached, 422 for a malformed key.
    c.api_login("doctor").await;
    let r = c
        .json(
            Method::POST,
            "/api/v1/resolutions",
            json!({"access_key": key, "birth_date": "1980-04-01"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.body);
    assert_eq!(r.json()["error"]["code"], "hub_unreachable");
    let r = c
        .json(
            Method::POST,
            "/api/v1/resolutions",
            json!({"access_key": "1234", "birth_date": "1980-04-01"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);

    // The municipality's 受付 by key goes back to /intake with what was typed and why.
    let m = TestNode::start(NodeRole::Municipality).await;
    let mut c = Client::new(&m);
    c.ui_login("reviewer").await;
    let page = c.get("/sync").await;
    let csrf = hidden_csrf(&page.body);
    let r = c
        .form(
            "/intake/resolve",
            &[
                ("csrf", &csrf),
                ("access_key", &key),
                ("birth_date", "1980-04-01"),
            ],
        )
        .await;
    // The page itself, not a redirect: the key and birth date never go into an address.
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(!r.headers.contains_key(header::LOCATION));
    assert!(r.body.contains(&format!("value=\"{key}\"")), "{}", r.body);
    assert!(r.body.contains("value=\"1980-04-01\""), "{}", r.body);
    assert!(r.body.contains("ハブ"), "{}", r.body);
}

/// A save the store refuses (here: the database found damaged) keeps what was typed on the
/// answer page, in a form that posts it again.
#[tokio::test]
async fn a_save_the_server_cannot_store_keeps_the_typed_values_ready_to_post_again() {
    let t = TestNode::start_with_sheets(NodeRole::Hospital, 1).await;
    let mut c = Client::new(&t);
    let csrf = c.ui_login("doctor").await;
    let r = c
        .form("/sheets", &[("csrf", &csrf), ("form_id", "rinko-006")])
        .await;
    let id = r
        .location()
        .strip_prefix("/sheets/")
        .and_then(|s| s.strip_suffix("/edit"))
        .unwrap()
        .to_string();
    t.node.store.mark_damaged("test".into());
    let r = c
        .form(
            &format!("/sheets/{id}"),
            &[
                ("csrf", &csrf),
                ("action", "save"),
                ("patient.name", "消えない 入力"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.body);
    assert!(r.body.contains("保存できませんでした"), "{}", r.body);
    assert!(r.body.contains("value=\"消えない 入力\""), "{}", r.body);
    assert!(
        r.body.contains(&format!("action=\"/sheets/{id}\"")),
        "{}",
        r.body
    );
    assert!(r.body.contains("もう一度保存する"), "{}", r.body);
}

/// 臨個票連携 is the hospital's: a municipality's reviewer (who resolves keys at 受付) and an
/// administrator are refused the page and its search (found when tried: the reviewer reached
/// it by address and saw 更新登録 buttons that failed).
#[tokio::test]
async fn only_hospital_users_reach_the_linkage_screen() {
    let t = TestNode::start(NodeRole::Municipality).await;
    let mut c = Client::new(&t);
    let csrf = c.ui_login("reviewer").await;
    let page = c.get("/linkage").await;
    assert_eq!(page.status, StatusCode::FORBIDDEN, "{}", page.body);
    let r = c
        .form(
            "/linkage",
            &[
                ("csrf", &csrf),
                ("access_key", "12345-67890-1"),
                ("birth_date", "1980-04-01"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
}

/// The details of `action` entries in the node's audit log, with their user ids, oldest first.
async fn audited(t: &TestNode, action: &'static str) -> Vec<(Option<i64>, String, String)> {
    t.node
        .store
        .read(move |c| {
            let mut st = c.prepare(
                "SELECT user_id, coalesce(target, ''), coalesce(detail, '') FROM audit
                 WHERE action = ?1 ORDER BY seq",
            )?;
            let rows = st
                .query_map([action], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect::<Result<Vec<_>, _>>()?;
            Ok::<_, nsdb::Error>(rows)
        })
        .await
        .unwrap()
}

/// A list's audit entry says which patients it put on the screen (the sheets' ids), what kind
/// of search it was and which filters were set, never the text searched for; a form posted
/// with a wrong CSRF token and a look at the sync page are audited too (issue #14, item 6).
#[tokio::test]
async fn lists_audit_the_sheets_they_showed_and_csrf_refusals_and_the_sync_page_are_audited() {
    let t = TestNode::start_with_sheets(NodeRole::Hospital, 5).await;
    let mut c = Client::new(&t);
    c.ui_login("doctor").await;
    let doctor = t
        .node
        .login("doctor", "demo")
        .await
        .unwrap()
        .principal
        .user_id as i64;

    let page = c.get("/sheets?status=draft").await;
    assert_eq!(page.status, StatusCode::OK);
    let (user, _, detail) = audited(&t, "sheet_list").await.pop().unwrap();
    assert_eq!(user, Some(doctor));
    assert!(detail.starts_with("page=1 status=draft rows="), "{detail}");
    let shown = detail.split_once(" shown=").unwrap().1;
    let ids: Vec<&str> = shown.split(',').filter(|s| !s.is_empty()).collect();
    assert!(!ids.is_empty(), "{detail}");
    for id in &ids {
        assert!(
            page.body.contains(&format!("/sheets/{id}")),
            "{id} was on the page"
        );
    }

    // A name search is named by its kind only.
    let r = c.get("/sheets?q=%E3%83%86%E3%82%B9%E3%83%88").await; // テスト
    assert_eq!(r.status, StatusCode::OK);
    let (_, _, detail) = audited(&t, "sheet_list").await.pop().unwrap();
    assert!(detail.contains("search=kana"), "{detail}");
    assert!(!detail.contains("テスト"), "{detail}");
    let r = c.get("/sheets?q=%E8%A9%A6%E9%A8%93").await; // 試験
    assert_eq!(r.status, StatusCode::OK);
    let (_, _, detail) = audited(&t, "sheet_list").await.pop().unwrap();
    assert!(
        detail.contains("search=kanji") && !detail.contains("試験"),
        "{detail}"
    );

    // The same through the API.
    let mut api = Client::new(&t);
    api.api_login("doctor").await;
    let r = api.get("/api/v1/sheets?q=1234567").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let (_, _, detail) = audited(&t, "sheet_list").await.pop().unwrap();
    assert!(
        detail.contains("search=number") && !detail.contains("1234567"),
        "{detail}"
    );

    // A form posted without the page's token is refused and recorded with the session's user.
    let r = c
        .form(
            "/sheets",
            &[("csrf", "not-the-token"), ("form_id", "rinko-006")],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    let refused = audited(&t, "csrf_refused").await;
    assert_eq!(
        refused,
        vec![(Some(doctor), "/sheets".to_string(), String::new())]
    );

    // Who looked at the sync page.
    let r = c.get("/sync").await;
    assert_eq!(r.status, StatusCode::OK);
    let viewed = audited(&t, "sync_view").await;
    assert_eq!(viewed.len(), 1, "{viewed:?}");
    assert_eq!(viewed[0].0, Some(doctor));
}

/// A client given a password someone else set changes it through the API itself: until then
/// every other use of its token answers 403 `password_change_required`; a wrong current
/// password is 401 and a new one the rule refuses is 422, each with nothing changed; after it,
/// the token works, the old password no longer signs in and the new one does.
#[tokio::test]
async fn a_password_set_by_someone_else_is_changed_through_the_api() {
    let t = TestNode::start(NodeRole::Hospital).await;
    let code = t.node.config.institution.code.clone();
    t.add_user("api-doctor", UserKind::NanbyoDoctor, &code)
        .await;
    t.node.require_password_change("api-doctor").await.unwrap();
    let mut c = Client::new(&t);
    c.api_login("api-doctor").await;
    let r = c.get("/api/v1/sheets").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.json()["error"]["code"], "password_change_required");
    assert!(r.body.contains("/api/v1/session/password"), "{}", r.body);

    let change = |current: &str, new: &str| json!({"current": current, "new": new});
    let r = c
        .json(
            Method::POST,
            "/api/v1/session/password",
            change("wrong", "長い新しいパスワード2026"),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
    let r = c
        .json(
            Method::POST,
            "/api/v1/session/password",
            change("demo", "short"),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    assert_eq!(r.json()["error"]["code"], "invalid");
    let r = c
        .json(
            Method::POST,
            "/api/v1/session/password",
            change("demo", "長い新しいパスワード2026"),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);

    let r = c.get("/api/v1/sheets").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(t.node.login("api-doctor", "demo").await.is_err());
    assert!(
        t.node
            .login("api-doctor", "長い新しいパスワード2026")
            .await
            .is_ok()
    );
}
