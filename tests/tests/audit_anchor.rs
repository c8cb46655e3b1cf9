//! The audit chain anchored at the hub (issue #14: "anchor it (signed checkpoints sent to the
//! hub), so a node cannot rewrite what the hub has seen, and verify it at start and on
//! demand"). Whoever holds a node's database key and identity key can rewrite its chain and
//! sign it again, or cut its tail; the hub holds what the node signed before and says so, on
//! the ministry's 利用状況の監視 and on the node's own. A restored node is told apart.
//!
//! The hub and the nodes are separate nodes (own database, identity and QUIC endpoint on
//! loopback) in one test process.

use std::sync::Arc;
use std::time::Duration;

use nsdb::Node;
use nsdb::audit::{self, ChainVerdict};
use nsdb::testing::sync::{SyncSite, eventually};

fn identity(node: &Node) -> nsdb_provisioning::NodeIdentity {
    nsdb_provisioning::NodeIdentity::load(&node.config.identity_path()).expect("identity")
}

/// Signs the chain's head now, as `nsdb serve` does every 100 entries and at a clean stop.
async fn sign_head(node: &Arc<Node>) -> i64 {
    let id = identity(node);
    let now = node.clock.now_ms();
    node.store
        .write(move |c| audit::checkpoint(c, &id, now, 1).map_err(nsdb::Error::from))
        .await
        .expect("checkpoint")
        .expect("something to sign")
}

/// Signed checkpoints the hub holds from `from`: (seq, restored).
async fn anchors_at_hub(hub: &Arc<Node>, from: &Arc<Node>) -> Vec<(i64, bool)> {
    let from = from.node_id.to_string();
    hub.store
        .read(move |c| {
            let mut st =
                c.prepare("SELECT seq, restored FROM audit_anchors WHERE node = ?1 ORDER BY id")?;
            let rows = st
                .query_map([&from], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<Vec<_>, _>>()?;
            Ok::<_, nsdb::Error>(rows)
        })
        .await
        .expect("the hub's anchors")
}

/// The `audit_chain` alerts a node holds: for node `about` (at the hub), or for itself.
async fn chain_alerts(node: &Arc<Node>, about: Option<&Arc<Node>>) -> i64 {
    let subject = about.map_or("node".to_string(), |n| format!("n:{}", n.node_id));
    node.store
        .read(move |c| {
            c.query_row(
                "SELECT count(*) FROM alerts WHERE rule = 'audit_chain' AND subject = ?1",
                [&subject],
                |r| r.get(0),
            )
            .map_err(nsdb::Error::from)
        })
        .await
        .expect("alerts")
}

/// The details of `action` entries in a node's audit log.
async fn audited(node: &Arc<Node>, action: &'static str) -> Vec<String> {
    node.store
        .read(move |c| {
            let mut st = c.prepare("SELECT coalesce(detail, '') FROM audit WHERE action = ?1")?;
            let rows = st
                .query_map([action], |r| r.get(0))?
                .collect::<Result<Vec<String>, _>>()?;
            Ok::<_, nsdb::Error>(rows)
        })
        .await
        .expect("audit")
}

/// Waits until the hub holds a checkpoint from `node` that `wanted` accepts ((seq, restored)).
async fn hub_holds(
    hub: &Arc<Node>,
    node: &Arc<Node>,
    wanted: impl Fn(&(i64, bool)) -> bool + Clone,
) -> bool {
    eventually(Duration::from_secs(20), || {
        let (hub, node, wanted) = (hub.clone(), node.clone(), wanted.clone());
        async move { anchors_at_hub(&hub, &node).await.iter().any(wanted) }
    })
    .await
}

/// Waits until the hub holds one `audit_chain` alert about `node`.
async fn hub_alerted(hub: &Arc<Node>, node: &Arc<Node>) -> bool {
    eventually(Duration::from_secs(20), || {
        let (hub, node) = (hub.clone(), node.clone());
        async move { chain_alerts(&hub, Some(&node)).await == 1 }
    })
    .await
}

/// Waits until `node` keeps the checkpoint at `seq` as the one the hub holds.
async fn anchored_at(node: &Arc<Node>, seq: i64) -> bool {
    eventually(Duration::from_secs(10), || {
        let node = node.clone();
        async move {
            node.store
                .read(|c| audit::anchor(c).map_err(nsdb::Error::from))
                .await
                .expect("anchor")
                .is_some_and(|(s, _)| s == seq)
        }
    })
    .await
}

async fn verdict(node: &Arc<Node>) -> ChainVerdict {
    let key = identity(node).public_key().to_bytes();
    node.store
        .read(move |c| audit::verify_anchored(c, &key).map_err(nsdb::Error::from))
        .await
        .expect("verdict")
}

/// A hospital with a few signed-in users' entries, its head signed and anchored at the hub.
async fn anchored_site() -> (SyncSite, i64) {
    let site = SyncSite::start(0).await;
    let hospital = site.hospital.node.clone();
    for _ in 0..3 {
        hospital.login("doctor", "demo").await.expect("signed in");
    }
    let seq = sign_head(&hospital).await;
    let hub = site.hub.node.clone();
    assert!(
        hub_holds(&hub, &hospital, move |a| *a == (seq, false)).await,
        "the hub holds the hospital's checkpoint"
    );
    // The hospital keeps it as its anchor once the hub answered.
    assert!(
        anchored_at(&hospital, seq).await,
        "the hospital keeps the anchor"
    );
    assert_eq!(chain_alerts(&site.hub.node, Some(&hospital)).await, 0);
    assert_eq!(chain_alerts(&hospital, None).await, 0);
    (site, seq)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_rewritten_and_signed_again_is_caught_by_the_hub_and_alerted_on_both_sides() {
    let (mut site, anchored) = anchored_site().await;
    let hospital = site.hospital.node.clone();
    site.stop_nodes();
    // Whoever holds both keys rewrites an entry, recomputes the chain and signs its head again:
    // every local check passes but the anchor the hub holds.
    let id = identity(&hospital);
    hospital
        .store
        .write(move |c| {
            audit::rewrite(c, anchored - 1, "nothing happened")?;
            c.execute_batch("DROP TRIGGER audit_checkpoints_no_delete;")?;
            c.execute("DELETE FROM audit_checkpoints", [])?;
            audit::checkpoint(c, &id, 1, 1)?;
            Ok::<_, nsdb::Error>(())
        })
        .await
        .expect("rewritten");
    assert_eq!(
        verdict(&hospital).await,
        ChainVerdict::Unanchored { seq: anchored },
        "nsdb audit verify and the check at start see the chain no longer holds the anchor"
    );

    site.start_nodes();
    let hub = site.hub.node.clone();
    assert!(
        hub_alerted(&hub, &hospital).await,
        "the ministry sees the hospital's chain contradict its anchor"
    );
    assert!(
        eventually(Duration::from_secs(10), || {
            let hospital = hospital.clone();
            async move { chain_alerts(&hospital, None).await == 1 }
        })
        .await,
        "the hospital's 責任者 sees it too"
    );
    let said = audited(&hub, "audit_anchor_diverged").await;
    assert!(
        said.iter().any(|d| d.contains("restored=no")),
        "the hub records it was not a declared restore: {said:?}"
    );
    // What the hub held is never replaced: both checkpoints are kept.
    let held = anchors_at_hub(&hub, &hospital).await;
    assert_eq!(held.first(), Some(&(anchored, false)), "{held:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_whose_tail_was_cut_is_caught_by_the_hub() {
    let (mut site, anchored) = anchored_site().await;
    let hospital = site.hospital.node.clone();
    site.stop_nodes();
    // The last two entries are removed with the triggers dropped, and the shorter chain signed:
    // it is consistent, but ends before what the hub holds.
    let id = identity(&hospital);
    let cut_to = hospital
        .store
        .write(move |c| {
            c.execute_batch(
                "DROP TRIGGER audit_no_delete; DROP TRIGGER audit_checkpoints_no_delete;",
            )?;
            c.execute("DELETE FROM audit WHERE seq > ?1", [anchored - 2])?;
            c.execute("DELETE FROM audit_checkpoints", [])?;
            let seq = audit::checkpoint(c, &id, 1, 1)?.expect("signed");
            Ok::<_, nsdb::Error>(seq)
        })
        .await
        .expect("cut");
    assert!(cut_to < anchored);
    assert!(
        matches!(verdict(&hospital).await, ChainVerdict::Unanchored { seq } if seq == anchored),
        "the local check sees the cut"
    );
    site.start_nodes();
    let hub = site.hub.node.clone();
    assert!(
        hub_alerted(&hub, &hospital).await,
        "the ministry sees the cut"
    );
    assert!(
        anchors_at_hub(&hub, &hospital)
            .await
            .contains(&(cut_to, false))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_restored_from_an_older_backup_says_so_and_is_not_called_tampered_at_home() {
    let (mut site, _) = anchored_site().await;
    let hospital = site.hospital.node.clone();
    let backups = tempfile::tempdir().expect("temporary directory");
    let backup = backups.path().join("before");
    site.back_up_hospital(&backup);
    // More happens after the backup and is anchored at the hub.
    for _ in 0..5 {
        hospital.login("doctor", "demo").await.expect("signed in");
    }
    let later = sign_head(&hospital).await;
    let hub = site.hub.node.clone();
    assert!(hub_holds(&hub, &hospital, move |a| *a == (later, false)).await);

    site.restore_hospital(&backup).await;
    let hospital = site.hospital.node.clone();
    // The restored chain lacks the end the hub holds; the node knows why and does not call it
    // tampered.
    assert!(
        matches!(verdict(&hospital).await, ChainVerdict::Intact { .. }),
        "{}",
        verdict(&hospital).await
    );
    // Its first session sends the newest checkpoint it has, saying it was restored.
    assert!(
        hub_holds(&hub, &hospital, |a| a.1).await,
        "the restored node's checkpoint reaches the hub, declared restored"
    );
    assert!(
        hub_alerted(&hub, &hospital).await,
        "the ministry is asked to confirm the restore"
    );
    let said = audited(&hub, "audit_anchor_diverged").await;
    assert!(said.iter().any(|d| d.contains("restored=yes")), "{said:?}");
    assert_eq!(
        chain_alerts(&hospital, None).await,
        0,
        "the node is not alerted"
    );
    hospital.login("doctor", "demo").await.expect("signed in");
    let restored_head = sign_head(&hospital).await;
    // Anchored again: from now on the restored chain is the one compared.
    assert!(anchored_at(&hospital, restored_head).await);
    assert!(matches!(
        verdict(&hospital).await,
        ChainVerdict::Intact { .. }
    ));
}
