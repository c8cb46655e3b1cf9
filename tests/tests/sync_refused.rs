//! A node the hub refuses (its enrollment revoked) says so instead of "connection lost": on its
//! sync status (page and API) and in its log, with what to do, and it backs off; the hub audits
//! the refused attempts, at most one entry per node an hour (issue #17).

use std::time::Duration;

use nsdb::testing::sync::{SyncSite, eventually, sheet_ids};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_node_is_told_the_hub_refuses_it_backs_off_and_the_hub_audits_it_once() {
    let site = SyncSite::start(1).await;
    let (hub, hospital) = (site.hub.node.clone(), site.hospital.node.clone());
    assert!(
        eventually(Duration::from_secs(20), || async {
            sheet_ids(&hub).await.len() == 1
        })
        .await,
        "the hospital syncs before it is revoked"
    );
    let key = nsdb_provisioning::enrollment::identity(&hospital.config.data_dir)
        .expect("the hospital's identity")
        .public_key();
    nsdb_provisioning::enrollment::revoke(&hub.config.data_dir, &hex::encode(key.as_bytes()))
        .expect("revoked at the hub");
    hospital.sync.sync_now();

    // The node says the hub refuses it, in words, on its status (what /sync and the API show).
    let refused_errors = || {
        hospital
            .sync
            .status()
            .errors
            .iter()
            .filter(|e| e.code == "refused")
            .count()
    };
    assert!(
        eventually(Duration::from_secs(20), || async { refused_errors() >= 1 }).await,
        "the refusal is told apart from a lost connection: {:?}",
        hospital.sync.status().errors
    );
    let status = nsdb::sync_service::status(&hospital).await;
    let said = status.refused.clone().expect("the reason is on the status");
    assert!(
        said.contains("ハブがこのノードを受け付けません") && said.contains("登録取消し"),
        "{said}"
    );
    assert!(!status.connected);
    let api = serde_json::to_value(&status).expect("the API's JSON");
    assert_eq!(api["refused"], said.as_str());
    // It backs off: while refused it retries far less often than after a lost connection
    // (the test options' longest wait is 0.4 s; refused, ten times that).
    let attempt = hospital.sync.status().last_attempt_ms;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let errors_then = refused_errors();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(
        refused_errors() <= errors_then + 1,
        "refused attempts keep coming quickly: {:?}",
        hospital.sync.status().errors
    );
    assert!(attempt.is_some());

    // Several handshakes refused; the hub audited the node once, with a count, and no name.
    assert!(
        eventually(Duration::from_secs(30), || async { refused_errors() >= 3 }).await,
        "the node kept trying (slowly): {:?}",
        hospital.sync.status().errors
    );
    let node_id = hospital.node_id.to_string();
    let entries: Vec<(String, Option<String>)> = hub
        .store
        .read(move |c| {
            let mut st = c.prepare(
                "SELECT target, detail FROM audit WHERE action = 'sync_refused' ORDER BY seq",
            )?;
            let rows = st
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<Vec<_>, _>>()?;
            Ok::<_, nsdb::Error>(rows)
        })
        .await
        .expect("the hub's audit log");
    assert_eq!(entries.len(), 1, "one entry per node an hour: {entries:?}");
    assert_eq!(entries[0].0, node_id);
    assert_eq!(entries[0].1.as_deref(), Some("attempts=1"));
}
