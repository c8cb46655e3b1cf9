//! The paper path's API on one node each: a municipality's reviewer uploads a scanned paper
//! sheet (a non-PDF refused, naming the field), lists it and reads its PDF; a doctor may not;
//! at the hub the data entry enters the contractor's XML for a received paper (a file failing
//! the checks refused with its messages), and the sheet is registered with 登録種別 紙.

use std::collections::BTreeMap;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use nsdb::config::NodeRole;
use nsdb::papers::{Outgoing, state};
use nsdb::testing::TestNode;
use serde_json::{Value, json};
use tower::ServiceExt;

const BOUNDARY: &str = "nsdb-paper-api-5b2e";

fn multipart(fields: &[(&str, &str)], file: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, value) in fields {
        out.extend_from_slice(
            format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    }
    out.extend_from_slice(
        format!(
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"pdf\"; filename=\"scan.pdf\"\r\nContent-Type: application/pdf\r\n\r\n"
        )
        .as_bytes(),
    );
    out.extend_from_slice(file);
    out.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    out
}

async fn send(t: &TestNode, req: Request<Body>) -> (StatusCode, Vec<u8>) {
    let app: Router = nsdb::http::router(t.node.clone());
    let res = app.oneshot(req).await.unwrap();
    let status = res.status();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    (status, bytes.to_vec())
}

async fn token(t: &TestNode, login: &str) -> String {
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
    assert_eq!(status, StatusCode::CREATED);
    let v: Value = serde_json::from_slice(&body).unwrap();
    v["token"].as_str().unwrap().to_string()
}

fn json_of(body: &[u8]) -> Value {
    serde_json::from_slice(body).unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(body)))
}

fn pdf() -> Vec<u8> {
    nsdb::cli::demo::demo_pdf(&["paper sheet, scanned"])
}

#[tokio::test]
async fn a_reviewer_uploads_a_paper_over_the_api_and_only_a_pdf_is_taken() {
    let t = TestNode::start(NodeRole::Municipality).await;
    let reviewer = token(&t, "reviewer").await;
    let fields = [
        ("name_kana", "ｶﾐ ﾊﾅｺ"),
        ("birth_date", "昭和55年4月1日"),
        ("disease", "6"),
    ];
    let post = |body: Vec<u8>| {
        Request::builder()
            .method(Method::POST)
            .uri("/api/v1/papers")
            .header(header::AUTHORIZATION, format!("Bearer {reviewer}"))
            .header(
                header::CONTENT_TYPE,
                format!("multipart/form-data; boundary={BOUNDARY}"),
            )
            .body(Body::from(body))
            .unwrap()
    };
    let (status, body) = send(&t, post(multipart(&fields, b"GIF89a"))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let v = json_of(&body);
    assert_eq!(v["error"]["items"][0], "pdf", "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("PDF ではありません")
    );
    let (status, body) = send(
        &t,
        post(multipart(
            &[
                ("name_kana", "カミ"),
                ("birth_date", "1980-04-01"),
                ("disease", "9999"),
            ],
            &pdf(),
        )),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(json_of(&body)["error"]["items"][0], "disease");

    let (status, body) = send(&t, post(multipart(&fields, &pdf()))).await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&body)
    );
    let id = json_of(&body)["id"].as_str().unwrap().to_string();
    let get = |uri: String, token: &str| {
        Request::builder()
            .uri(uri)
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .body(Body::empty())
            .unwrap()
    };
    let (status, body) = send(&t, get("/api/v1/papers".into(), &reviewer)).await;
    assert_eq!(status, StatusCode::OK);
    let rows = json_of(&body);
    assert_eq!(rows[0]["id"], id.as_str());
    assert_eq!(rows[0]["state"], state::PENDING);
    // What was typed, normalised: full-width kana, the 和暦 date as YYYY-MM-DD.
    assert_eq!(rows[0]["name_kana"], "カミ ハナコ");
    assert_eq!(rows[0]["birth_date"], "1980-04-01");
    assert_eq!(rows[0]["disease"], "パーキンソン病");
    let (status, body) = send(&t, get(format!("/api/v1/papers/{id}/pdf"), &reviewer)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, pdf());
}

#[tokio::test]
async fn the_hubs_data_entry_enters_a_received_paper_and_nobody_else_can() {
    let t = TestNode::start(NodeRole::Hub).await;
    let form = t.node.catalogue.form("rinko-006").unwrap();
    let xml = nsdb_rules::xml::sample(form);
    let values: BTreeMap<String, String> = nsdb_rules::xml::read(&t.node.catalogue, xml.as_bytes())
        .unwrap()[0]
        .values
        .clone();
    let bytes = pdf();
    let paper = Outgoing {
        id: "0123456789abcdef0123456789abcdef".into(),
        municipality: "139999".into(),
        // As the municipality reads it from the paper: the data's patient.
        name_kana: values["patient.name_kana"].clone(),
        birth_date: values["patient.birth_date"].clone(),
        disease: "6".into(),
        pdf_sha256: hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes)),
        uploaded_at_ms: 1,
        pdf: bytes,
    };
    // As the request channel stores it (the same paper twice: held once).
    let outcomes = t
        .node
        .store
        .write(move |c| {
            let a = nsdb::papers::receive(c, "aa", &paper, 2)?;
            let b = nsdb::papers::receive(c, "aa", &paper, 3)?;
            let mut forged = paper.clone();
            forged.pdf.push(b'x');
            let c3 = nsdb::papers::receive(c, "aa", &forged, 4)?;
            Ok::<_, nsdb::Error>((a, b, c3))
        })
        .await
        .unwrap();
    assert_eq!(outcomes.0, Ok(nsdb::papers::Received::Stored));
    assert_eq!(outcomes.1, Ok(nsdb::papers::Received::AlreadyHeld));
    assert!(
        outcomes.2.is_err(),
        "bytes that do not match their hash are refused"
    );

    let entry = token(&t, "paper").await;
    let ministry = token(&t, "ministry").await;
    let id = "0123456789abcdef0123456789abcdef";
    let enter = |token: &str, body: Vec<u8>| {
        Request::builder()
            .method(Method::POST)
            .uri(format!("/api/v1/papers/{id}/data"))
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .header(header::CONTENT_TYPE, "application/xml")
            .body(Body::from(body))
            .unwrap()
    };
    let (status, _) = send(&t, enter(&ministry, xml.clone().into_bytes())).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = send(
        &t,
        Request::builder()
            .uri(format!("/api/v1/papers/{id}/pdf"))
            .header(header::AUTHORIZATION, format!("Bearer {ministry}"))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let mut missing = values.clone();
    missing.remove("patient.name");
    let bad = nsdb_rules::xml::write(&[nsdb_rules::xml::SheetOut {
        form,
        reference: None,
        values: &missing,
    }])
    .unwrap();
    let (status, body) = send(&t, enter(&entry, bad.into_bytes())).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let v = json_of(&body);
    assert_eq!(v["error"]["code"], "check", "{v}");
    let (status, body) = send(&t, enter(&entry, b"<not xml".to_vec())).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(json_of(&body)["error"]["items"][0], "xml");

    let (status, body) = send(&t, enter(&entry, xml.clone().into_bytes())).await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&body)
    );
    let v = json_of(&body);
    let sheet = v["sheet_id"].as_str().unwrap().to_string();
    assert!(nsdb::keys::AccessKey::parse(v["access_key"].as_str().unwrap()).is_some());
    let (registration, status_, granted): (String, String, String) = t
        .node
        .store
        .read(move |c| {
            Ok::<_, nsdb::Error>(c.query_row(
                "SELECT s.registration, s.status, g.node FROM sheets s
                 JOIN sync_grants g ON g.sheet_id = s.id WHERE s.id = ?1",
                [&sheet],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )?)
        })
        .await
        .unwrap();
    assert_eq!(
        (registration.as_str(), status_.as_str(), granted.as_str()),
        ("paper", "registered", "aa"),
        "registered as 紙 and granted to the sender only"
    );
    let (status, _) = send(&t, enter(&entry, xml.into_bytes())).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "entered once");
}
