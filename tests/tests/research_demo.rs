//! The demo's 研究・統計 by the real path: sheets registered at the hospital, resolved and
//! certified with 研究利用の同意 by the municipality's reviewer, reach the hub by sync, where the
//! ministry's counts include them.

use std::time::Duration;

use nsdb::sheets::workflow::Step;
use nsdb::testing::sync::{SyncSite, eventually, sheet_ids, sign_in};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_reviewer_gives_consent_and_the_hub_counts_those_sheets() {
    let site = SyncSite::start(0).await;
    let hospital = site.hospital.node.clone();
    let doctor = sign_in(&hospital, "doctor").await;
    let mut ids = Vec::new();
    for kana in ["ケンキュウ イチロウ", "ケンキュウ ジロウ"] {
        let values = nsdb::testing::required_values(&hospital, "rinko-006", kana);
        let d = hospital
            .create_sheet(&doctor, "rinko-006", &values)
            .await
            .expect("created");
        hospital
            .step(&doctor, &d.row.id, Step::Register)
            .await
            .expect("registered");
        ids.push(d.row.id);
    }
    let hub = site.hub.node.clone();
    assert!(
        eventually(Duration::from_secs(30), || {
            let (hub, ids) = (hub.clone(), ids.clone());
            async move {
                let held = sheet_ids(&hub).await;
                ids.iter().all(|id| held.contains(id))
            }
        })
        .await
    );
    let keys: Vec<(String, String)> = hospital
        .store
        .read(|c| {
            let mut st = c.prepare(
                "SELECT access_key, birth_date FROM sheets WHERE access_key IS NOT NULL",
            )?;
            let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            Ok::<_, nsdb::Error>(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
        .unwrap();
    assert_eq!(keys.len(), 2);
    let counted = nsdb::cli::demo::demo_research(&hub, &site.municipality.node, &keys)
        .await
        .expect("the demo's reviews reach the hub");
    assert_eq!(counted, 2);
    let (counts, cells) = hub.research_build_stats().await.unwrap();
    assert_eq!((counts.kept, counts.without_consent), (2, 0));
    assert!(cells > 0);
}
