//! Sync scope and refusals: a node receives only the sheets in its scope, the hub refuses
//! unenrolled and revoked nodes and a node's changes made in another node's name, and a
//! malformed frame ends only that session.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use nsdb::accounts::policy::UserKind;
use nsdb::config::NodeRole;
use nsdb::testing::sync::{SyncSite, eventually, sheet_ids, sign_in};
use nsdb_sync::tls::{LocalKey, PublicKey, node_client_config};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_receives_none_of_the_sheets_outside_its_scope() {
    let site = SyncSite::start(5).await;
    assert!(
        eventually(Duration::from_secs(20), || async {
            sheet_ids(&site.hub.node).await.len() == 5
        })
        .await
    );
    // A sheet of another hospital, written on the hub (a clinic without an appliance).
    site.hub
        .add_user("other-doctor", UserKind::NanbyoDoctor, "1399000099")
        .await;
    let other = sign_in(&site.hub.node, "other-doctor").await;
    let foreign = site
        .hub
        .node
        .create_sheet(&other, "rinko-006", &BTreeMap::new())
        .await
        .expect("created on the hub");
    let hospital_ids = sheet_ids(&site.hospital.node).await;
    let granted = hospital_ids[0].clone();
    site.grant_to_municipality(&granted).await;

    assert!(
        eventually(Duration::from_secs(20), || async {
            sheet_ids(&site.municipality.node).await == vec![granted.clone()]
        })
        .await,
        "the municipality receives exactly the sheet granted to it"
    );
    // Give the hospital a few more sessions to receive what it should not.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(
        sheet_ids(&site.hospital.node).await,
        hospital_ids,
        "the hospital receives no other hospital's sheet"
    );
    assert!(
        !sheet_ids(&site.municipality.node)
            .await
            .contains(&foreign.row.id)
    );
    // The municipality's reviewer lists only what the municipality resolved by key: a sheet
    // merely held (granted) is not listed until its key is resolved there.
    let reviewer = sign_in(&site.municipality.node, "reviewer").await;
    let listed = || async {
        site.municipality
            .node
            .list_sheets(&reviewer, &Default::default())
            .await
            .expect("lists")
            .total
    };
    assert_eq!(listed().await, 0);
    site.resolve_for_municipality(&granted).await;
    assert_eq!(listed().await, 1);
}

/// A QUIC client with `key` that pins the hub's key, for talking to the hub by hand.
async fn raw_connection(
    site: &SyncSite,
    key: &LocalKey,
) -> Result<quinn::Connection, Box<dyn std::error::Error>> {
    let hub_key = nsdb_provisioning::enrollment::identity(&site.hub.node.config.data_dir)?
        .public_key()
        .to_bytes();
    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse()?)?;
    endpoint.set_default_client_config(node_client_config(key, PublicKey(hub_key))?);
    let connection = endpoint.connect(site.hub_addr, "nsdb-hub")?.await?;
    // A refused client certificate shows at the first use of the connection.
    let (mut send, mut recv) = connection.open_bi().await?;
    send.write_all(&[0, 0, 0, 0]).await?;
    let mut buf = [0u8; 1];
    // The hub ends this (empty, so malformed) session either way; what matters is whether it
    // closed the whole connection.
    let _ = tokio::time::timeout(Duration::from_secs(5), recv.read(&mut buf)).await;
    match connection.close_reason() {
        Some(reason) => Err(reason.into()),
        None => Ok(connection),
    }
}

fn hospital_key(site: &SyncSite) -> LocalKey {
    let identity =
        nsdb_provisioning::NodeIdentity::load(&site.hospital.node.config.identity_path())
            .expect("identity");
    LocalKey::from_seed(identity.secret_seed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unenrolled_and_revoked_nodes_are_refused() {
    let site = SyncSite::start_stopped(0).await;
    let stranger = LocalKey::from_seed(nsdb_provisioning::random_bytes().expect("random"));
    assert!(
        raw_connection(&site, &stranger).await.is_err(),
        "an unenrolled key is refused"
    );
    assert!(raw_connection(&site, &hospital_key(&site)).await.is_ok());

    let public = hex::encode(hospital_key(&site).public().0);
    nsdb_provisioning::enrollment::revoke(&site.hub.node.config.data_dir, &public)
        .expect("revoked");
    assert!(
        raw_connection(&site, &hospital_key(&site)).await.is_err(),
        "a revoked key is refused at the next handshake"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_or_oversized_frame_ends_only_that_session() {
    let mut site = SyncSite::start_stopped(2).await;
    let connection = raw_connection(&site, &hospital_key(&site)).await;
    let connection = connection.expect("enrolled");
    for bad in [
        vec![0u8, 0, 0, 4, 0xff, 0xff, 0xff, 0xff],
        vec![0x7f, 0xff, 0xff, 0xff],
    ] {
        let (mut send, mut recv) = connection.open_bi().await.expect("stream");
        send.write_all(&bad).await.expect("written");
        let _ = send.finish();
        let ended = tokio::time::timeout(Duration::from_secs(5), recv.read_to_end(1 << 20)).await;
        assert!(ended.is_ok(), "the hub ends the session");
    }
    assert!(
        eventually(Duration::from_secs(5), || async {
            site.hub.node.sync.status().errors.len() >= 2
        })
        .await,
        "the hub logs why: {:?}",
        site.hub.node.sync.status()
    );
    // The hub still serves well-behaved nodes.
    site.start_nodes();
    assert!(
        eventually(Duration::from_secs(20), || async {
            sheet_ids(&site.hub.node).await.len() == 2
        })
        .await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hub_refuses_changes_made_in_another_nodes_name() {
    let mut site = SyncSite::start_stopped(0).await;
    // A sheet on the hospital whose only change claims to come from the municipality's node.
    let form = site
        .hospital
        .node
        .catalogue
        .form("rinko-006")
        .expect("form")
        .clone();
    let forged_author = nsdb_sync::Author {
        node: site.municipality.node.node_id,
        user: 1,
    };
    let mut sheets = nsdb::cli::seed::sheets(
        &form,
        1,
        7,
        &site.hospital.node.config.institution.code,
        forged_author,
        site.hospital.node.clock.now_ms(),
        site.hospital.node.clock.today_jst(),
    )
    .collect::<Vec<_>>();
    let forged = sheets[0].header().id.to_string();
    let node: Arc<nsdb::Node> = site.hospital.node.clone();
    node.store
        .write(move |c| {
            nsdb::sheets::store_sheet(c, &mut sheets[0], "screen", 1)?;
            Ok::<_, nsdb::Error>(())
        })
        .await
        .expect("stored");
    site.start_nodes();
    assert!(
        eventually(Duration::from_secs(20), || async {
            site.hub
                .node
                .sync
                .status()
                .last_session
                .is_some_and(|s| s.refused >= 1)
        })
        .await,
        "the hub counts the refusal: {:?}",
        site.hub.node.sync.status()
    );
    assert!(!sheet_ids(&site.hub.node).await.contains(&forged));
    let _ = NodeRole::Hub;
}
