//! A sheet whose stored document is damaged on a node is fetched again from the hub, which
//! holds an intact copy, instead of answering "try again later" (issue #10, item 6b): when a
//! user opens it (API and pages), and when sync meets it (the hub's changes for it arrive),
//! while everything else keeps crossing. Each replacement is audited.
//!
//! The hub and the nodes are separate nodes (own database, identity and QUIC endpoint on
//! loopback) in one test process.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use nsdb::Node;
use nsdb::accounts::policy::UserKind;
use nsdb::testing::sync::{SyncSite, eventually, sheet_ids, sign_in, write_directly};

/// Overwrites sheet `id`'s stored document on `node` with bytes that are no document (a
/// damaged page), leaving its row and heads as they were.
async fn damage(node: &Arc<Node>, id: &str) {
    let id = id.to_string();
    node.store
        .write(move |c| {
            c.execute(
                "UPDATE sheets SET doc = x'8550aa0102030405060708090a' WHERE id = ?1",
                [&id],
            )?;
            Ok::<_, nsdb::Error>(())
        })
        .await
        .expect("damaged");
}

async fn readable(node: &Arc<Node>, id: &str) -> bool {
    let doctor = sign_in(node, "doctor").await;
    node.get_sheet(&doctor, id).await.is_ok()
}

async fn refetches_audited(node: &Arc<Node>, id: &str) -> i64 {
    let id = id.to_string();
    node.store
        .read(move |c| {
            Ok::<_, nsdb::Error>(c.query_row(
                "SELECT count(*) FROM audit WHERE action = 'sheet_refetch' AND target = ?1",
                [&id],
                |r| r.get(0),
            )?)
        })
        .await
        .expect("audit")
}

/// One HTTP/1.1 request to `addr`: the status and the body as JSON.
async fn http_json(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> (u16, serde_json::Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connects");
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.expect("sends");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.expect("reads");
    let response = String::from_utf8_lossy(&response);
    let (head, body) = response.split_once("\r\n\r\n").expect("a response");
    let status = head[9..12].parse().expect("a status");
    (status, serde_json::from_str(body).unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_sheet_opened_by_a_user_is_fetched_again_from_the_hub() {
    let site = SyncSite::start(2).await;
    let hospital = site.hospital.node.clone();
    assert!(
        eventually(Duration::from_secs(20), || async {
            sheet_ids(&site.hub.node).await.len() == 2
        })
        .await
    );
    let id = sheet_ids(&hospital).await[0].clone();
    let doctor = sign_in(&hospital, "doctor").await;
    let before = hospital.get_sheet(&doctor, &id).await.expect("reads").items;
    damage(&hospital, &id).await;
    assert!(!readable(&hospital, &id).await, "the damage is real");

    let (_, login) = http_json(
        site.hospital.addr,
        "POST",
        "/api/v1/session",
        None,
        r#"{"login":"doctor","password":"demo"}"#,
    )
    .await;
    let token = login["token"].as_str().expect("a token").to_string();
    let (status, sheet) = http_json(
        site.hospital.addr,
        "GET",
        &format!("/api/v1/sheets/{id}"),
        Some(&token),
        "",
    )
    .await;
    assert_eq!(status, 200, "{sheet}");
    assert_eq!(sheet["id"], id.as_str());
    let after = hospital.get_sheet(&doctor, &id).await.expect("reads again");
    assert_eq!(after.items, before, "the hub's copy holds the same values");
    assert_eq!(refetches_audited(&hospital, &id).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_sheet_the_hub_changes_is_fetched_again_and_the_others_keep_crossing() {
    let site = SyncSite::start(2).await;
    let hospital = site.hospital.node.clone();
    assert!(
        eventually(Duration::from_secs(20), || async {
            sheet_ids(&site.hub.node).await.len() == 2
        })
        .await
    );
    let id = sheet_ids(&hospital).await[0].clone();
    damage(&hospital, &id).await;
    // The hub's copy changes (a user at the hub writes to it): its changes come to the node,
    // whose copy cannot take them.
    site.hub
        .add_user("doctor-h", UserKind::NanbyoDoctor, "1399999999")
        .await;
    let at_hub = sign_in(&site.hub.node, "doctor-h").await;
    write_directly(
        &site.hub.node,
        &id,
        at_hub.user_id,
        BTreeMap::from([(
            "patient.name_kana".to_string(),
            Some("ハブ デ ナオシ".to_string()),
        )]),
        None,
    )
    .await;
    let doctor = sign_in(&hospital, "doctor").await;
    let other = hospital
        .create_sheet(&doctor, "rinko-006", &BTreeMap::new())
        .await
        .expect("saved")
        .row
        .id;
    assert!(
        eventually(Duration::from_secs(30), || async {
            readable(&hospital, &id).await && sheet_ids(&site.hub.node).await.contains(&other)
        })
        .await,
        "the damaged sheet is replaced by sync and the other one crosses: {:?}",
        hospital.sync.status()
    );
    let replaced = hospital.get_sheet(&doctor, &id).await.expect("reads");
    assert_eq!(
        replaced.items.get("patient.name_kana").map(String::as_str),
        Some("ハブ デ ナオシ")
    );
    assert_eq!(refetches_audited(&hospital, &id).await, 1);
    assert!(
        eventually(Duration::from_secs(20), || async {
            nsdb::sync_service::status(&hospital)
                .await
                .set_aside
                .is_empty()
        })
        .await,
        "{:?}",
        hospital.sync.status()
    );
}
