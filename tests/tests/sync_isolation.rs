//! One sheet that cannot cross never stops the others: a sheet grown past what one frame
//! carries crosses in pieces beside the others; a sheet the hub refuses (an access key it holds
//! for another sheet) is set aside with its reason, shown in the status, retried with backoff,
//! while everything else keeps reaching the hub. And the status tells the truth after the hub
//! goes away: "waiting" counts a save at once, "connected" turns false.
//!
//! The hub and the nodes are separate nodes (own database, identity and QUIC endpoint on
//! loopback) in one test process.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use nsdb::Node;
use nsdb::accounts::policy::UserKind;
use nsdb::testing::sync::{SyncSite, eventually, noise, sheet_ids, sign_in, write_directly};

async fn new_sheet(node: &Arc<Node>, kana: &str) -> String {
    let doctor = sign_in(node, "doctor").await;
    let values = BTreeMap::from([("patient.name_kana".to_string(), kana.to_string())]);
    node.create_sheet(&doctor, "rinko-006", &values)
        .await
        .expect("saved")
        .row
        .id
}

async fn on_hub(site: &SyncSite, id: &str) -> bool {
    sheet_ids(&site.hub.node).await.iter().any(|s| s == id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sheet_grown_past_the_frame_limit_crosses_in_pieces_and_the_others_keep_crossing() {
    let mut site = SyncSite::start(2).await;
    let hospital = site.hospital.node.clone();
    assert!(
        eventually(Duration::from_secs(20), || async {
            sheet_ids(&site.hub.node).await.len() == 2
        })
        .await
    );
    site.stop_hub();
    // Seven saves of 1.8 MB of free text while the hub is away: 12.6 MB of unsent changes,
    // more than the 8 MiB one frame carries.
    let big = sheet_ids(&hospital).await[0].clone();
    let doctor = sign_in(&hospital, "doctor").await;
    for i in 0..7 {
        let values = BTreeMap::from([("patient.address".to_string(), Some(noise(1_800_000, i)))]);
        write_directly(&hospital, &big, doctor.user_id, values, None).await;
    }
    let other = new_sheet(&hospital, "ホカノ ヒョウ").await;
    site.start_hub().await;
    assert!(
        eventually(Duration::from_secs(60), || async {
            on_hub(&site, &other).await
        })
        .await,
        "the other sheet crosses: {:?}",
        site.hospital.node.sync.status()
    );
    // The large sheet crosses too, whole, and nothing is left waiting or set aside.
    let ministry = sign_in(&site.hub.node, "ministry").await;
    assert!(
        eventually(Duration::from_secs(60), || async {
            // The ministry reads an identified sheet only with a reason (docs/security.md).
            let hub = &site.hub.node;
            if hub
                .open_identified(&ministry, &big, "同期の確認")
                .await
                .is_err()
            {
                return false;
            }
            match hub.get_sheet(&ministry, &big).await {
                Ok(view) => view
                    .items
                    .get("patient.address")
                    .is_some_and(|v| v.len() == 1_800_000),
                Err(_) => false,
            }
        })
        .await,
        "the large sheet reaches the hub: {:?}",
        site.hospital.node.sync.status()
    );
    assert!(
        eventually(Duration::from_secs(20), || async {
            let s = nsdb::sync_service::status(&hospital).await;
            s.waiting == 0 && s.set_aside.is_empty()
        })
        .await,
        "{:?}",
        nsdb::sync_service::status(&hospital).await
    );
    // Later edits keep crossing.
    let later = new_sheet(&hospital, "アトノ ヒョウ").await;
    assert!(
        eventually(Duration::from_secs(20), || async {
            on_hub(&site, &later).await
        })
        .await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sheet_the_hub_refuses_is_set_aside_with_its_reason_and_everything_else_flows() {
    let mut site = SyncSite::start(3).await;
    let hospital = site.hospital.node.clone();
    assert!(
        eventually(Duration::from_secs(20), || async {
            sheet_ids(&site.hub.node).await.len() == 3
        })
        .await
    );
    // The hub already holds access key K for a sheet of another hospital; this hospital gives
    // K to one of its sheets (as a node restored from an old copy would).
    const KEY: &str = "77777000017";
    site.hub
        .add_user("doctor-x", UserKind::NanbyoDoctor, "1399999999")
        .await;
    let other_doctor = sign_in(&site.hub.node, "doctor-x").await;
    let holder = site
        .hub
        .node
        .create_sheet(&other_doctor, "rinko-006", &BTreeMap::new())
        .await
        .expect("created at the hub")
        .row
        .id;
    write_directly(
        &site.hub.node,
        &holder,
        other_doctor.user_id,
        BTreeMap::new(),
        Some(KEY),
    )
    .await;
    let refused = sheet_ids(&hospital).await[1].clone();
    let doctor = sign_in(&hospital, "doctor").await;
    write_directly(
        &hospital,
        &refused,
        doctor.user_id,
        BTreeMap::new(),
        Some(KEY),
    )
    .await;

    // Everything else the hospital writes keeps reaching the hub.
    let mut others = Vec::new();
    for i in 0..3 {
        others.push(new_sheet(&hospital, &format!("ホカ {i}")).await);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    for id in &others {
        assert!(
            eventually(Duration::from_secs(20), || async {
                on_hub(&site, id).await
            })
            .await,
            "sheet {id} crosses beside the refused one: {:?}",
            nsdb::sync_service::status(&hospital).await
        );
    }
    // The refused sheet is named in the status with why and since when, retried with backoff,
    // and counted as waiting; the node stays connected.
    assert!(
        eventually(Duration::from_secs(20), || async {
            let s = nsdb::sync_service::status(&hospital).await;
            s.set_aside
                .iter()
                .any(|a| a.sheet == refused && a.attempts >= 2)
        })
        .await,
        "{:?}",
        nsdb::sync_service::status(&hospital).await
    );
    let status = nsdb::sync_service::status(&hospital).await;
    let aside = &status.set_aside[0];
    assert_eq!(status.set_aside.len(), 1, "{:?}", status.set_aside);
    // The reason names the key as it is printed.
    assert!(
        aside.reason.contains(&nsdb::keys::AccessKey::shown(KEY)),
        "{}",
        aside.reason
    );
    assert!(aside.since_ms > 0 && aside.next_retry_ms > aside.since_ms);
    assert!(status.waiting >= 1, "{status:?}");
    assert!(status.connected, "{status:?}");
    // The hub's copy of the refused sheet stays without the key.
    let ministry = sign_in(&site.hub.node, "ministry").await;
    site.hub
        .node
        .open_identified(&ministry, &refused, "同期の確認")
        .await
        .expect("the ministry opens it with a reason");
    let at_hub = site
        .hub
        .node
        .get_sheet(&ministry, &refused)
        .await
        .expect("the hub holds the sheet from before");
    assert_eq!(at_hub.row.access_key, None);

    // The same status on the API and the sync page.
    let json = status_json(&site).await;
    assert_eq!(json["set_aside"][0]["sheet"], refused.as_str());
    assert_eq!(json["set_aside"][0]["code"], "refused");
    assert!(
        json["set_aside"][0]["reason"]
            .as_str()
            .is_some_and(|r| r.contains(&nsdb::keys::AccessKey::shown(KEY))
                && r.contains("受け付けませんでした")),
        "{json}"
    );

    // The list survives a restart of the node: after it, before any session (the hub is
    // away), the sheet is still set aside with its reason, since when and its tries, on the
    // status API and the sync page.
    site.stop_hub();
    let before = nsdb::sync_service::status(&hospital).await.set_aside;
    site.restart_hospital().await;
    let hospital = site.hospital.node.clone();
    // The sync loop reads the kept list first thing after it starts.
    assert!(
        eventually(Duration::from_secs(5), || async {
            !nsdb::sync_service::status(&hospital)
                .await
                .set_aside
                .is_empty()
        })
        .await,
        "the set-aside list is back after the restart"
    );
    let after = nsdb::sync_service::status(&hospital).await.set_aside;
    assert_eq!(after.len(), 1, "{after:?}");
    let (was, is) = (
        before
            .iter()
            .find(|a| a.sheet == refused)
            .expect("set aside before"),
        &after[0],
    );
    assert_eq!(
        (&is.sheet, &is.code, &is.reason, is.since_ms),
        (&was.sheet, &was.code, &was.reason, was.since_ms)
    );
    assert!(is.attempts >= was.attempts && is.next_retry_ms >= was.next_retry_ms);
    let json = status_json(&site).await;
    assert_eq!(json["set_aside"][0]["sheet"], refused.as_str());
    assert_eq!(json["set_aside"][0]["since_ms"], was.since_ms);
    site.start_hub().await;

    // Once the hub no longer holds the key elsewhere, the sheet crosses and is no longer set aside.
    write_directly(
        &site.hub.node,
        &holder,
        other_doctor.user_id,
        BTreeMap::new(),
        Some("77777000025"),
    )
    .await;
    assert!(
        eventually(Duration::from_secs(30), || async {
            let s = nsdb::sync_service::status(&hospital).await;
            s.set_aside.is_empty() && s.waiting == 0
        })
        .await,
        "{:?}",
        nsdb::sync_service::status(&hospital).await
    );
}

/// One HTTP/1.1 request to `addr`; returns the body as JSON.
async fn http_json(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> serde_json::Value {
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
    assert!(head.starts_with("HTTP/1.1 2"), "{head}");
    serde_json::from_str(body).expect("JSON")
}

/// The hospital's `/api/v1/sync/status`, as its doctor sees it.
async fn status_json(site: &SyncSite) -> serde_json::Value {
    let addr = site.hospital.addr;
    let login = http_json(
        addr,
        "POST",
        "/api/v1/session",
        None,
        r#"{"login":"doctor","password":"demo"}"#,
    )
    .await;
    let token = login["token"].as_str().expect("a token").to_string();
    http_json(addr, "GET", "/api/v1/sync/status", Some(&token), "").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_the_hub_goes_away_a_save_counts_as_waiting_at_once_and_connected_turns_false() {
    let mut site = SyncSite::start(1).await;
    let hospital = site.hospital.node.clone();
    assert!(
        eventually(Duration::from_secs(20), || async {
            let s = nsdb::sync_service::status(&hospital).await;
            s.connected && s.waiting == 0 && sheet_ids(&site.hub.node).await.len() == 1
        })
        .await
    );
    site.stop_hub();
    new_sheet(&hospital, "ルス チュウ").await;
    // Counted at once, without waiting for a session to end.
    assert_eq!(nsdb::sync_service::status(&hospital).await.waiting, 1);
    assert!(
        eventually(Duration::from_secs(15), || async {
            !nsdb::sync_service::status(&hospital).await.connected
        })
        .await,
        "{:?}",
        nsdb::sync_service::status(&hospital).await
    );
    let s = nsdb::sync_service::status(&hospital).await;
    assert_eq!(s.waiting, 1, "{s:?}");
    assert!(s.last_failure_ms > s.last_success_ms, "{s:?}");
    // Why, in words for the person at the sync page, with a stable code beside them.
    let why = s.errors.last().expect("the failure is recorded");
    assert!(
        ["unreachable", "connection_lost"].contains(&why.code.as_str()),
        "{why:?}"
    );
    assert!(why.message.contains("ハブ（中央）"), "{why:?}");
    assert!(!why.detail.is_empty(), "{why:?}");
}

/// The sessions of one sync round as the node's loop runs it, each with what crossed and the
/// change counter the node was marked in step with the hub at.
#[derive(Default)]
struct Sessions {
    crossed: Vec<Vec<String>>,
    in_step: Vec<i64>,
}

impl nsdb::sync_service::AfterSession for Sessions {
    async fn after(
        &mut self,
        result: Result<nsdb_sync::SessionStats, nsdb_sync::LinkError>,
        in_step: i64,
    ) -> bool {
        let stats = result.expect("the session succeeds");
        self.crossed
            .push(stats.crossed.iter().map(ToString::to_string).collect());
        self.in_step.push(in_step);
        true
    }
}

async fn round(hospital: &Arc<Node>) -> Sessions {
    let (mut link, hub) = nsdb::sync_service::hub_link(hospital).expect("enrolled");
    let replica = nsdb::sync_service::NodeReplica::new(hospital.clone());
    let seen = nsdb::sync_service::change_counter(hospital)
        .await
        .expect("counter");
    let mut sessions = Sessions::default();
    assert!(nsdb::sync_service::round(&replica, &mut link, hub, seen, &mut sessions).await);
    sessions.in_step.push(seen);
    sessions
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_sheet_crosses_in_a_session_after_the_ordinary_ones_so_they_never_wait_for_it() {
    let site = SyncSite::start_stopped(2).await;
    let hospital = site.hospital.node.clone();
    // Everything crosses in one session while nothing is large.
    let first = round(&hospital).await;
    assert_eq!(first.crossed.len(), 1, "one session when nothing is large");
    assert_eq!(first.crossed[0].len(), 2);

    // Seven saves of 1.8 MB of free text to one sheet while the hub is away, and a new sheet.
    let big = sheet_ids(&hospital).await[0].clone();
    let doctor = sign_in(&hospital, "doctor").await;
    for i in 0..7 {
        let values = BTreeMap::from([("patient.address".to_string(), Some(noise(1_800_000, i)))]);
        write_directly(&hospital, &big, doctor.user_id, values, None).await;
    }
    let small = new_sheet(&hospital, "チイサナ ヒョウ").await;

    let second = round(&hospital).await;
    assert_eq!(
        second.crossed,
        vec![vec![small.clone()], vec![big.clone()]],
        "the ordinary sheet crosses first, the large one in a session of its own"
    );
    // After the first session the node is in step only up to before the large sheet's
    // changes (they still count as waiting), after the second up to the round's start.
    let seen = second.in_step[2];
    assert!(second.in_step[0] < seen, "{:?}", second.in_step);
    assert_eq!(second.in_step[1], seen);
    assert!(on_hub(&site, &small).await);

    // Nothing changed since: one session, nothing held back.
    let third = round(&hospital).await;
    assert_eq!(
        third.crossed.len(),
        1,
        "nothing left to cross: {:?}",
        third.crossed
    );
}
