//! Sync through outages: what a hospital writes while the hub is down reaches the hub when it
//! comes back, and a hub stopped in the middle of a large sync resumes without receiving again
//! what it already stored.

use std::collections::BTreeMap;
use std::time::Duration;

use nsdb::testing::sync::{SyncSite, eventually, sheet_ids, sign_in};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sheet_written_while_the_hub_is_down_reaches_it_after_it_starts() {
    let mut site = SyncSite::start(3).await;
    assert!(
        eventually(Duration::from_secs(20), || async {
            sheet_ids(&site.hub.node).await.len() == 3
        })
        .await,
        "the hospital's first sheets reach the hub"
    );

    site.stop_hub();
    let doctor = sign_in(&site.hospital.node, "doctor").await;
    let values = BTreeMap::from([("patient.name_kana".to_string(), "テスト タロウ".to_string())]);
    let created = site
        .hospital
        .node
        .create_sheet(&doctor, "rinko-006", &values)
        .await
        .expect("saved while the hub is down: nothing waits for the hub");
    assert!(
        eventually(Duration::from_secs(15), || async {
            let status = site.hospital.node.sync.status();
            status.waiting == 1 && !status.errors.is_empty()
        })
        .await,
        "the waiting sheet and the failed attempts are visible: {:?}",
        site.hospital.node.sync.status()
    );
    assert!(!sheet_ids(&site.hub.node).await.contains(&created.row.id));

    site.start_hub().await;
    let id = created.row.id.clone();
    assert!(
        eventually(Duration::from_secs(20), || async {
            sheet_ids(&site.hub.node).await.contains(&id)
        })
        .await,
        "the sheet reaches the hub after it starts"
    );
    // The hub's list projection sees it, with the patient's kana.
    let sid = id.clone();
    let kana: Option<String> = site
        .hub
        .node
        .store
        .read(move |c| {
            Ok::<_, nsdb::Error>(c.query_row(
                "SELECT name_kana FROM sheets WHERE id = ?1",
                [&sid],
                |r| r.get(0),
            )?)
        })
        .await
        .expect("hub reads");
    assert!(kana.is_some_and(|k| k.starts_with("テスト")));
    // The ministry's list shows where it is, without who the patient is.
    let ministry = sign_in(&site.hub.node, "ministry").await;
    let page = site
        .hub
        .node
        .list_sheets(&ministry, &Default::default())
        .await
        .expect("hub lists");
    let row = page
        .rows
        .iter()
        .find(|r| r.id == id)
        .expect("the sheet is listed");
    assert_eq!(row.name_kana, None);
    assert!(
        eventually(Duration::from_secs(10), || async {
            site.hospital.node.sync.status().waiting == 0
        })
        .await,
        "nothing waits once in step: {:?}",
        site.hospital.node.sync.status()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hub_stopped_in_the_middle_of_a_large_sync_resumes_without_resending() {
    const SHEETS: usize = 1500;
    let mut site = SyncSite::start_stopped(SHEETS).await;
    site.start_nodes();
    // Stop the hub once part of the sheets are stored there.
    assert!(
        eventually(Duration::from_secs(60), || async {
            sheet_ids(&site.hub.node).await.len() >= 300
        })
        .await
    );
    site.stop_hub();
    let stored_before = sheet_ids(&site.hub.node).await.len();
    assert!(
        stored_before < SHEETS,
        "the hub was stopped in the middle ({stored_before} of {SHEETS})"
    );
    let sessions_before = site.hospital.node.sync.status().sessions;

    site.start_hub().await;
    assert!(
        eventually(Duration::from_secs(90), || async {
            sheet_ids(&site.hub.node).await.len() == SHEETS
        })
        .await,
        "every sheet reaches the hub"
    );
    assert!(
        eventually(Duration::from_secs(10), || async {
            site.hospital.node.sync.status().sessions > sessions_before
        })
        .await
    );
    let status = site.hospital.node.sync.status();
    let resumed = status.last_session.expect("a session after the restart");
    // The session that completed the sync sent only what the hub did not have yet (a later
    // idle session sends nothing at all).
    assert!(
        resumed.documents_sent as usize <= SHEETS - stored_before,
        "sent {} documents after the restart, the hub already had {stored_before} of {SHEETS}",
        resumed.documents_sent
    );
}
