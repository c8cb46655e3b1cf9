//! A hospital restored from an older backup never issues an access key it issued before: it
//! refuses 登録 until the hub has told it how far its key blocks were used, then issues after
//! every key it gave before the restore (issue #10, item 7).
//!
//! The hub and the nodes are separate nodes (own database, identity and QUIC endpoint on
//! loopback) in one test process; the restore is `nsdb restore`'s own function.

use std::sync::Arc;
use std::time::Duration;

use nsdb::Node;
use nsdb::sheets::workflow::{Step, printed_key};
use nsdb::testing::sync::{SyncSite, eventually, has_key_block, sign_in};

/// Registers a fictitious sheet at `node` (the first seed from `seed` on whose values pass the
/// checks): the sheet's id and its printed key, or why 登録 was refused.
async fn register(node: &Arc<Node>, seed: u64) -> Result<(String, String), nsdb::Error> {
    let doctor = sign_in(node, "doctor").await;
    let form = node.catalogue.form("rinko-006").expect("form").clone();
    for seed in seed..seed + 50 {
        let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(seed);
        let values = nsdb::cli::seed::sheet_values(&form, &mut rng, node.clock.today_jst());
        let id = node
            .create_sheet(&doctor, "rinko-006", &values)
            .await
            .expect("saved")
            .row
            .id;
        match node.step(&doctor, &id, Step::Register).await {
            Ok(d) => return Ok((id, printed_key(&d.row).expect("a key"))),
            Err(nsdb::Error::Invalid(_)) => continue,
            Err(e) => return Err(e),
        }
    }
    panic!("no fictitious sheet passed the checks")
}

/// How many of the sheets `ids` the hub holds with an access key.
async fn keys_at_hub(hub: &Arc<Node>, ids: &[String]) -> usize {
    let ids = ids.to_vec();
    hub.store
        .read(move |c| {
            let mut n = 0;
            for id in &ids {
                let key: Option<Option<String>> = c
                    .query_row("SELECT access_key FROM sheets WHERE id = ?1", [id], |r| {
                        r.get(0)
                    })
                    .ok();
                n += usize::from(matches!(key, Some(Some(_))));
            }
            Ok::<_, nsdb::Error>(n)
        })
        .await
        .expect("the hub's sheets")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hospital_restored_from_an_older_backup_issues_a_new_key_never_a_repeated_one() {
    let mut site = SyncSite::start(0).await;
    assert!(
        has_key_block(&site.hospital.node, Duration::from_secs(20)).await,
        "the hospital leases a key block from the hub"
    );
    let (_, first) = register(&site.hospital.node, 1).await.expect("registered");
    let backups = tempfile::tempdir().expect("temporary directory");
    let backup = backups.path().join("before");
    site.back_up_hospital(&backup);

    // Two more patients after the backup; their sheets reach the hub.
    let mut issued = vec![first];
    let mut after = Vec::new();
    for seed in [100, 200] {
        let (id, key) = register(&site.hospital.node, seed)
            .await
            .expect("registered");
        issued.push(key);
        after.push(id);
    }
    // Registered, with their keys, at the hub (a draft may cross before its registration).
    assert!(
        eventually(Duration::from_secs(30), || async {
            keys_at_hub(&site.hub.node, &after).await == after.len()
        })
        .await,
        "the sheets registered after the backup reach the hub with their keys: {:?}",
        site.hospital.node.sync.status()
    );

    // The hospital is restored from the backup while the hub is away: it refuses 登録 rather
    // than issue from counters that are behind, and says why.
    site.stop_hub();
    site.restore_hospital(&backup).await;
    let hospital = site.hospital.node.clone();
    match register(&hospital, 300).await {
        Err(e @ nsdb::Error::KeysAwaitHub) => {
            assert!(e.to_string().contains("復元"), "{e}")
        }
        other => panic!("a restored node must not issue before the hub answers: {other:?}"),
    }

    // Once the hub is back, the node adopts its marks and issues a key no one holds.
    site.start_hub().await;
    let mut fresh = Vec::new();
    let mut seed = 400;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while fresh.len() < 3 {
        match register(&hospital, seed).await {
            Ok((_, key)) => fresh.push(key),
            Err(nsdb::Error::KeysAwaitHub) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("registration after the hub answered: {e}"),
        }
        seed += 100;
    }
    for key in &fresh {
        assert!(
            !issued.contains(key),
            "{key} was issued before the restore ({issued:?})"
        );
    }
    fresh.sort();
    fresh.dedup();
    assert_eq!(fresh.len(), 3, "three new patients, three keys");
}

/// A hospital whose disk was lost comes back from its configuration, its key and a backup: the
/// backup puts back its identity and enrollment, so it is the same node, enrolled, and what it
/// registers afterwards reaches the hub with its key (issue #17, item 2).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hospital_that_lost_its_disk_comes_back_enrolled_as_the_same_node() {
    let mut site = SyncSite::start(0).await;
    assert!(
        has_key_block(&site.hospital.node, Duration::from_secs(20)).await,
        "the hospital leases a key block from the hub"
    );
    let (before, _) = register(&site.hospital.node, 1).await.expect("registered");
    let node_id = site.hospital.node.node_id;
    let data_dir = site.hospital.node.config.data_dir.clone();
    let enrollment = std::fs::read(data_dir.join("enrollment.toml")).expect("enrolled");
    let backups = tempfile::tempdir().expect("temporary directory");
    let backup = backups.path().join("daily");
    site.back_up_hospital(&backup);

    site.restore_hospital_onto_an_empty_disk(&backup).await;
    let hospital = site.hospital.node.clone();
    assert_eq!(hospital.node_id, node_id, "the same node");
    assert_eq!(
        std::fs::read(data_dir.join("enrollment.toml")).expect("enrollment put back"),
        enrollment
    );
    let mut registered = None;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut seed = 500;
    while registered.is_none() {
        match register(&hospital, seed).await {
            Ok((id, _)) => registered = Some(id),
            Err(nsdb::Error::KeysAwaitHub) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("registration after the restore: {e}"),
        }
        seed += 100;
    }
    let ids = vec![before, registered.expect("registered")];
    assert!(
        eventually(Duration::from_secs(30), || async {
            keys_at_hub(&site.hub.node, &ids).await == ids.len()
        })
        .await,
        "the restored hospital's sheets reach the hub with their keys: {:?}",
        hospital.sync.status()
    );
}

/// `nsdb restore` warns about the sheets a restore would lose: only those whose latest changes
/// the hub has not acknowledged, never those it holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_warns_only_of_the_sheets_the_hub_never_acknowledged() {
    let mut site = SyncSite::start(3).await;
    let node = site.hospital.node.clone();
    let key = nsdb::store::DbKey::load(&node.config.key).expect("the node's key");
    let unacknowledged =
        || nsdb::ops::backup::unacknowledged(&node.config, &key).expect("the current database");
    assert_eq!(sheet_ids_count(&node).await, 3);
    assert!(
        eventually(Duration::from_secs(30), || async {
            unacknowledged().is_empty()
        })
        .await,
        "the hub acknowledges the hospital's sheets: {:?}",
        unacknowledged()
    );

    // The hub is down: a sheet written now has not reached it.
    site.stop_hub();
    let doctor = sign_in(&node, "doctor").await;
    let form = node.catalogue.form("rinko-006").expect("form").clone();
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(7);
    let values = nsdb::cli::seed::sheet_values(&form, &mut rng, node.clock.today_jst());
    let id = node
        .create_sheet(&doctor, "rinko-006", &values)
        .await
        .expect("saved")
        .row
        .id;
    assert_eq!(unacknowledged(), vec![id.clone()]);

    // Back up: once it reaches the hub, nothing would be lost.
    site.start_hub().await;
    assert!(
        eventually(Duration::from_secs(30), || async {
            unacknowledged().is_empty()
        })
        .await,
        "the new sheet is acknowledged once the hub is back: {:?}",
        unacknowledged()
    );
}

async fn sheet_ids_count(node: &Arc<Node>) -> usize {
    nsdb::testing::sync::sheet_ids(node).await.len()
}
