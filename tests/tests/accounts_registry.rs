//! Designated doctors' accounts issued where the seed issues them (a municipality's 責任者),
//! carried through the hub to where the doctor works, across real nodes syncing over QUIC on
//! loopback: the ID signs in at the hospital after a sync, its first doctor becomes the
//! hospital's 責任者, a lock or a deletion at the municipality refuses the next sign-in there,
//! a password changed at the hospital reaches the other nodes, and a 兼務 opens the other
//! hospital's sheets to the doctor there until it is removed (the 11th refused).

use std::sync::Arc;
use std::time::Duration;

use nsdb::Node;
use nsdb::accounts::policy::{Principal, UserKind};
use nsdb::accounts::registry::{DoctorAct, Kenmu, NewDoctor};
use nsdb::config::NodeRole;
use nsdb::sheets::SheetQuery;
use nsdb::sync_service::accounts::set_kenmu;
use nsdb::testing::sync::{SyncSite, eventually, sign_in};

const WAIT: Duration = Duration::from_secs(30);

/// The municipality's 責任者 (the demo's `muni-admin`, of kind 責任者: it holds the role).
async fn municipal_admin(site: &SyncSite) -> Principal {
    let admin = sign_in(&site.municipality.node, "muni-admin").await;
    assert_eq!(admin.kind, UserKind::Admin);
    assert!(admin.responsible);
    admin
}

fn doctor_for(institution: &str) -> NewDoctor {
    NewDoctor {
        kind: "nanbyo_doctor".into(),
        register_number: "第0123456号".into(),
        name: "兼務 太郎".into(),
        institution: institution.into(),
        institution_name: "試験病院".into(),
        department: "神経内科".into(),
        expires_on: String::new(),
    }
}

/// Whether `login` signs in at `node` with `password`.
async fn signs_in(node: &Arc<Node>, login: &str, password: &str) -> bool {
    node.login(login, password).await.is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_id_issued_at_the_municipality_works_at_the_hospital_and_its_lock_follows() {
    let site = SyncSite::start(0).await;
    let hospital = &site.hospital.node;
    let admin = municipal_admin(&site).await;
    let code = hospital.config.institution.code.clone();

    // A reviewer (自治体職員) issues nothing; a hospital cannot issue.
    let reviewer = sign_in(&site.municipality.node, "reviewer").await;
    assert!(
        site.municipality
            .node
            .issue_doctor(&reviewer, &doctor_for(&code))
            .await
            .is_err()
    );
    let hospital_admin = sign_in(hospital, "admin").await;
    assert!(
        hospital
            .issue_doctor(&hospital_admin, &doctor_for(&code))
            .await
            .is_err()
    );
    // What was typed is checked and named.
    let mut bad = doctor_for(&code);
    bad.institution = "12345".into();
    match site.municipality.node.issue_doctor(&admin, &bad).await {
        Err(nsdb::accounts::registry::IssueError::Field(f)) => assert_eq!(f.field, "institution"),
        other => panic!("a 5-digit code must be refused: {other:?}"),
    }

    let issued = site
        .municipality
        .node
        .issue_doctor(&admin, &doctor_for(&code))
        .await
        .expect("issued");
    assert!(issued.login.starts_with('A'), "{}", issued.login);
    assert!(
        eventually(WAIT, || signs_in(hospital, &issued.login, &issued.password)).await,
        "the ID signs in at the hospital after a sync"
    );
    let first = hospital
        .login(&issued.login, &issued.password)
        .await
        .unwrap();
    let state = hospital.session_state(&first.token).await.unwrap();
    assert!(
        state.pending.is_some(),
        "the one-time password must be changed first"
    );
    // The demo hospital has its 責任者 already: the doctor does not take the role.
    assert!(!first.principal.responsible);

    // The hospital's 責任者 sees the doctor but leaves the lock to the municipality.
    let refused = hospital
        .set_user_locked(&hospital_admin, first.principal.user_id, true)
        .await
        .unwrap_err()
        .to_string();
    assert!(refused.contains("自治体"), "{refused}");

    // A password changed at the hospital reaches the hub's registry; the old one stops.
    hospital
        .change_password(
            &first.principal,
            &first.token,
            &issued.password,
            "kenmu-new-pass-42",
        )
        .await
        .expect("changed");
    assert!(
        eventually(WAIT, || async {
            let id = site.municipality.node.issued_doctors(&admin).await.unwrap()[0]
                .record
                .account_id
                .clone();
            site.hub
                .node
                .store
                .read(move |c| nsdb::accounts::registry::load_record(c, &id))
                .await
                .unwrap()
                .is_some_and(|r| !r.must_change_password)
        })
        .await,
        "the new password reaches the hub"
    );

    // A lock at the municipality refuses the next sign-in at the hospital after the sync.
    let account = site.municipality.node.issued_doctors(&admin).await.unwrap()[0]
        .record
        .account_id
        .clone();
    site.municipality
        .node
        .manage_doctor(&admin, &account, DoctorAct::Lock)
        .await
        .unwrap();
    assert!(
        eventually(WAIT, || async {
            !signs_in(hospital, &issued.login, "kenmu-new-pass-42").await
        })
        .await,
        "the lock reaches the hospital"
    );
    assert!(
        hospital.session_state(&first.token).await.is_err(),
        "the locked doctor's session ends"
    );
    site.municipality
        .node
        .manage_doctor(&admin, &account, DoctorAct::Unlock)
        .await
        .unwrap();
    assert!(
        eventually(WAIT, || signs_in(
            hospital,
            &issued.login,
            "kenmu-new-pass-42"
        ))
        .await
    );
    // A deletion too, and the municipality's list says so.
    site.municipality
        .node
        .manage_doctor(&admin, &account, DoctorAct::Delete)
        .await
        .unwrap();
    assert!(
        eventually(WAIT, || async {
            !signs_in(hospital, &issued.login, "kenmu-new-pass-42").await
        })
        .await
    );
    let listed = site.municipality.node.issued_doctors(&admin).await.unwrap();
    assert!(listed[0].record.deleted_at.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_kenmu_opens_the_other_hospitals_sheets_until_it_is_removed() {
    let mut site = SyncSite::start(0).await;
    let admin = municipal_admin(&site).await;
    // Hospital B: a second hospital whose accounts come from the municipality (nobody holds
    // its 責任者 role yet).
    let b = site
        .add_node(NodeRole::Hospital, "1319999999", "兼務先病院")
        .await;
    b.node
        .store
        .write(|c| {
            c.execute("UPDATE users SET responsible = 0", [])?;
            Ok::<_, nsdb::Error>(())
        })
        .await
        .unwrap();
    let a = site.hospital.node.clone();
    let a_code = a.config.institution.code.clone();

    // A doctor whose main institution is B is B's first doctor: B's 責任者.
    let b_doctor = site
        .municipality
        .node
        .issue_doctor(&admin, &doctor_for("1319999999"))
        .await
        .unwrap();
    assert!(
        eventually(WAIT, || signs_in(
            &b.node,
            &b_doctor.login,
            &b_doctor.password
        ))
        .await
    );
    let b_first = b
        .node
        .login(&b_doctor.login, &b_doctor.password)
        .await
        .unwrap();
    assert!(b_first.principal.responsible, "the first doctor is 責任者");

    // A doctor of hospital A; B holds a sheet of its own patient.
    let issued = site
        .municipality
        .node
        .issue_doctor(&admin, &doctor_for(&a_code))
        .await
        .unwrap();
    assert!(eventually(WAIT, || signs_in(&a, &issued.login, &issued.password)).await);
    let at_a = a.login(&issued.login, &issued.password).await.unwrap();
    assert!(
        !signs_in(&b.node, &issued.login, &issued.password).await,
        "without a 兼務 the ID does not work at B"
    );
    let b_local = sign_in(&b.node, "doctor").await;
    let form = b.node.catalogue.form("rinko-006").unwrap().clone();
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(7);
    let values = nsdb::cli::seed::sheet_values(&form, &mut rng, b.node.clock.today_jst());
    let sheet = b
        .node
        .create_sheet(&b_local, "rinko-006", &values)
        .await
        .unwrap()
        .row
        .id;

    // The 11th 兼務 is refused; an unknown institution is refused by name.
    let eleven: Vec<Kenmu> = (0..11)
        .map(|i| Kenmu {
            institution: format!("13100000{i:02}"),
            name: String::new(),
            department: None,
            visible: true,
        })
        .collect();
    let e = set_kenmu(&a, &at_a.principal, eleven).await.unwrap_err();
    assert!(e.to_string().contains("最大10件"), "{e}");
    let unknown = vec![Kenmu {
        institution: "1310000000".into(),
        name: String::new(),
        department: None,
        visible: true,
    }];
    let e = set_kenmu(&a, &at_a.principal, unknown).await.unwrap_err();
    assert!(e.to_string().contains("1310000000"), "{e}");

    // 兼務 at B: the doctor signs in at B after its sync, acts for B, reads B's sheet and
    // writes a new one there; each access is audited with the institution it was for.
    let kenmu = vec![Kenmu {
        institution: "1319999999".into(),
        name: String::new(),
        department: Some("外来".into()),
        visible: true,
    }];
    let record = set_kenmu(&a, &at_a.principal, kenmu).await.unwrap();
    assert_eq!(record.kenmu[0].name, "兼務先病院");
    assert!(eventually(WAIT, || signs_in(&b.node, &issued.login, &issued.password)).await);
    let at_b = b.node.login(&issued.login, &issued.password).await.unwrap();
    assert_eq!(at_b.principal.institution, "1319999999");
    assert_eq!(
        at_b.principal.home_institution.as_deref(),
        Some(a_code.as_str())
    );
    assert!(!at_b.principal.responsible);
    b.node
        .get_sheet(&at_b.principal, &sheet)
        .await
        .expect("a 兼務 doctor reads the other hospital's sheet");
    let listed = b
        .node
        .list_sheets(&at_b.principal, &SheetQuery::default())
        .await
        .unwrap();
    assert!(listed.rows.iter().any(|r| r.id == sheet));
    let detail: String = b
        .node
        .store
        .read(move |c| {
            Ok::<_, nsdb::Error>(c.query_row(
                "SELECT detail FROM audit WHERE action = 'sheet_view' ORDER BY seq DESC LIMIT 1",
                [],
                |r| r.get(0),
            )?)
        })
        .await
        .unwrap();
    assert!(
        detail.contains("for=1319999999") && detail.contains(&format!("home={a_code}")),
        "{detail}"
    );

    // Removed: the next sync at B ends the session and the sign-in.
    set_kenmu(&a, &at_a.principal, Vec::new()).await.unwrap();
    assert!(
        eventually(WAIT, || async {
            b.node.session_state(&at_b.token).await.is_err()
        })
        .await,
        "the 兼務 doctor loses B once the 兼務 is removed"
    );
    assert!(!signs_in(&b.node, &issued.login, &issued.password).await);
    // The doctor still works at A.
    assert!(signs_in(&a, &issued.login, &issued.password).await);
}
