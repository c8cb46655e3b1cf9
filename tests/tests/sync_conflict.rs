//! The same item edited on two nodes while apart: both values are kept, the sheet shows the
//! conflict with who, where and when, and a doctor's pick is a recorded change that reaches
//! every copy.

use std::collections::BTreeMap;
use std::time::Duration;

use nsdb::accounts::policy::UserKind;
use nsdb::testing::sync::{SyncSite, eventually, sheet_ids, sign_in};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_item_edited_apart_shows_a_conflict_and_loses_no_value() {
    let mut site = SyncSite::start(1).await;
    let id = sheet_ids(&site.hospital.node).await[0].clone();
    assert!(
        eventually(Duration::from_secs(20), || async {
            sheet_ids(&site.hub.node).await.contains(&id)
        })
        .await
    );
    // A doctor of the same hospital working on the hub through the browser.
    let code = site.hospital.node.config.institution.code.clone();
    site.hub
        .add_user("visiting", UserKind::NanbyoDoctor, &code)
        .await;
    let at_hub = sign_in(&site.hub.node, "visiting").await;
    let at_hospital = sign_in(&site.hospital.node, "doctor").await;

    site.stop_hub();
    let field = "patient.name_kana".to_string();
    site.hospital
        .node
        .update_sheet(
            &at_hospital,
            &id,
            &BTreeMap::from([(field.clone(), "ヤマダ タロウ".to_string())]),
        )
        .await
        .expect("edited at the hospital");
    site.hub
        .node
        .update_sheet(
            &at_hub,
            &id,
            &BTreeMap::from([(field.clone(), "ヤマダ ジロウ".to_string())]),
        )
        .await
        .expect("edited at the hub");
    site.start_hub().await;

    for node in [&site.hospital.node, &site.hub.node] {
        let principal = if node.node_id == site.hub.node.node_id {
            &at_hub
        } else {
            &at_hospital
        };
        assert!(
            eventually(Duration::from_secs(20), || async {
                node.sheet_conflicts(principal, &id)
                    .await
                    .is_ok_and(|c| c.len() == 1)
            })
            .await,
            "both copies show the conflict"
        );
        let conflicts = node.sheet_conflicts(principal, &id).await.expect("read");
        let mut values: Vec<&str> = conflicts[0]
            .values
            .iter()
            .map(|v| v.value.as_str())
            .collect();
        values.sort();
        assert_eq!(
            values,
            vec!["ヤマダ ジロウ", "ヤマダ タロウ"],
            "no value is lost"
        );
        assert!(conflicts[0].values.iter().all(|v| v.at_ms.is_some()));
        // Every author shows by name on every node, from the document itself.
        let mut who: Vec<&str> = conflicts[0].values.iter().map(|v| v.who.as_str()).collect();
        who.sort();
        assert_eq!(who, vec!["visiting 試験", "鈴木 太郎"], "{conflicts:?}");
        assert!(
            conflicts[0]
                .values
                .iter()
                .any(|v| v.place == site.hospital.node.config.institution.name
                    || v.place == site.hub.node.config.institution.name)
        );
    }

    site.hospital
        .node
        .resolve_conflict(&at_hospital, &id, &field, "ヤマダ ジロウ")
        .await
        .expect("the doctor picks a value");
    assert!(
        eventually(Duration::from_secs(20), || async {
            site.hub
                .node
                .sheet_conflicts(&at_hub, &id)
                .await
                .is_ok_and(|c| c.is_empty())
        })
        .await,
        "the pick reaches the hub"
    );
    let on_hub = site.hub.node.get_sheet(&at_hub, &id).await.expect("read");
    assert_eq!(
        on_hub.items.get(&field).map(String::as_str),
        Some("ヤマダ ジロウ")
    );
    // A clerk may not pick.
    site.hospital
        .add_user("clerk2", UserKind::Clerk, &code)
        .await;
    let clerk = sign_in(&site.hospital.node, "clerk2").await;
    assert!(
        site.hospital
            .node
            .resolve_conflict(&clerk, &id, &field, "ヤマダ タロウ")
            .await
            .is_err()
    );
}
