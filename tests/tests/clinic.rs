//! A clinic without a node of its own, served by the hub (M18), across three nodes (hub with the
//! demo clinic's users, hospital, municipality): the clinic's doctor writes and registers a
//! sheet on the hub and the key is read from the printed PDF; the municipality resolves key +
//! birth date and reviews it; a 照会 reaches the clinic user on the hub and the answer reaches
//! the municipality; 自治体連携日 and 認定 show in the clinic's list on the hub. The clinic user
//! cannot list, search, view, print, export or fetch by API the hospital's sheet that the hub
//! holds, while the ministry still reads both; the hospital never receives the clinic's sheet.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use nsdb::Node;
use nsdb::accounts::policy::Principal;
use nsdb::keys::AccessKey;
use nsdb::review::ReviewInput;
use nsdb::sheets::SheetQuery;
use nsdb::sheets::workflow::{Step, printed_key};
use nsdb::sync_service;
use nsdb::testing::sync::{SyncSite, eventually, has_key_block, sheet_ids, sign_in};
use nsdb_sync::InquiryState;

const WAIT: Duration = Duration::from_secs(30);

/// One HTTP/1.1 request on loopback: the status and the body.
async fn http(addr: SocketAddr, path: &str, header: (&str, String)) -> (u16, Vec<u8>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{}: {}\r\n\r\n",
        header.0, header.1
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.unwrap();
    let head_end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("an HTTP response");
    let head = String::from_utf8_lossy(&raw[..head_end]).to_string();
    (head[9..12].parse().unwrap(), raw[head_end + 4..].to_vec())
}

/// A sheet registered by `doctor` at `node`: (sheet id, printed key, birth date). Fictitious
/// values from `seed` on (the first seed whose values pass the checks).
async fn register(node: &Arc<Node>, doctor: &Principal, seed: u64) -> (String, String, String) {
    let form = node.catalogue.form("rinko-006").unwrap().clone();
    for seed in seed..seed + 50 {
        let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(seed);
        let values = nsdb::cli::seed::sheet_values(&form, &mut rng, node.clock.today_jst());
        let birth = values["patient.birth_date"].clone();
        let id = node
            .create_sheet(doctor, "rinko-006", &values)
            .await
            .unwrap()
            .row
            .id;
        match node.step(doctor, &id, Step::Register).await {
            Ok(d) => return (id, printed_key(&d.row).unwrap(), birth),
            Err(nsdb::Error::Invalid(_)) => continue,
            Err(e) => panic!("registration failed: {e}"),
        }
    }
    panic!("no fictitious sheet passed the checks")
}

/// The first `NNNNN-NNNNN-N` in a text.
fn key_in(text: &str) -> Option<String> {
    let chars: Vec<char> = text.chars().collect();
    (0..chars.len().saturating_sub(12)).find_map(|i| {
        let s: String = chars[i..i + 13].iter().collect();
        let shape = s.char_indices().all(|(j, c)| match j {
            5 | 11 => c == '-',
            _ => c.is_ascii_digit(),
        });
        (shape && AccessKey::parse(&s).is_some()).then_some(s)
    })
}

fn search(q: &str) -> SheetQuery {
    SheetQuery {
        q: Some(q.to_string()),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clinic_on_the_hub_registers_is_resolved_answers_and_sees_only_its_own_sheets() {
    let site = SyncSite::start(0).await;
    let (hub, hospital, municipality) = (
        site.hub.node.clone(),
        site.hospital.node.clone(),
        site.municipality.node.clone(),
    );
    let clinic_code = nsdb::cli::demo::demo_clinic().institution.code;

    // The hospital's sheet reaches the hub, as every hospital's does.
    assert!(has_key_block(&hospital, WAIT).await);
    let hospital_doctor = sign_in(&hospital, "doctor").await;
    let (hospital_id, hospital_key, _) = register(&hospital, &hospital_doctor, 3).await;
    assert!(
        eventually(WAIT, || async {
            sheet_ids(&hub).await.contains(&hospital_id)
        })
        .await
    );

    // The clinic's doctor writes and registers on the hub; the key is issued there.
    let clinic = sign_in(&hub, "clinic").await;
    assert_eq!(clinic.institution, clinic_code);
    let (id, key, birth) = register(&hub, &clinic, 11).await;
    let written = hub.get_sheet(&clinic, &id).await.expect("own sheet");
    assert_eq!(written.row.institution, clinic_code);
    assert_eq!(
        written
            .items
            .get("doctor.institution_name")
            .map(String::as_str),
        Some("デモ内科クリニック"),
        "the sheet names the clinic, not the hub"
    );
    assert_ne!(
        key[..5],
        hospital_key[..5],
        "never the hospital's key block"
    );
    let approved = hub.step(&clinic, &id, Step::Approve).await.expect("承認");
    assert_eq!(approved.row.status, "approved");

    // The key as printed on the paper the patient takes to the municipality.
    let session = hub.login("clinic", "demo").await.unwrap();
    let cookie = ("Cookie", format!("nsdb_session={}", session.token));
    let (status, pdf) = http(
        site.hub.addr,
        &format!("/sheets/{id}/print"),
        cookie.clone(),
    )
    .await;
    assert_eq!(status, 200);
    let text = pdf_extract::extract_text_from_mem(&pdf).unwrap();
    let printed = key_in(&text).expect("an access key in the printed PDF");
    assert_eq!(printed, key);

    // The clinic user reaches none of the hospital's sheets the hub holds.
    let own = hub.list_sheets(&clinic, &Default::default()).await.unwrap();
    assert_eq!(
        own.rows.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        [id.as_str()]
    );
    let found = hub.list_sheets(&clinic, &search(&hospital_key)).await;
    assert_eq!(found.unwrap().total, 0, "a search by the hospital's key");
    assert!(matches!(
        hub.get_sheet(&clinic, &hospital_id).await,
        Err(nsdb::Error::Denied(_))
    ));
    assert!(hub.export_xml(&clinic, &hospital_id).await.is_err());
    assert!(
        hub.workflow_history(&clinic, &hospital_id).await.is_err(),
        "history is the sheet"
    );
    assert!(hub.carry_forward(&clinic, &hospital_id).await.is_err());
    for path in [
        format!("/sheets/{hospital_id}"),
        format!("/sheets/{hospital_id}/print"),
        format!("/sheets/{hospital_id}/print?masked=1"),
        format!("/sheets/{hospital_id}/export"),
        format!("/sheets/{hospital_id}/diff"),
        format!("/sheets/{hospital_id}/history"),
    ] {
        let (status, body) = http(site.hub.addr, &path, cookie.clone()).await;
        assert_eq!(status, 403, "{path}: {}", String::from_utf8_lossy(&body));
    }
    let (status, page) = http(site.hub.addr, "/sheets", cookie.clone()).await;
    assert_eq!(status, 200);
    let page = String::from_utf8_lossy(&page);
    assert!(page.contains(&id) && !page.contains(&hospital_id));
    assert!(
        page.contains("医療機関コード 1399000028"),
        "the header names the clinic"
    );
    let bearer = ("Authorization", format!("Bearer {}", session.token));
    for path in [
        format!("/api/v1/sheets/{hospital_id}"),
        format!("/api/v1/sheets/{hospital_id}/xml"),
        format!("/api/v1/sheets/{hospital_id}/inquiries"),
    ] {
        let (status, _) = http(site.hub.addr, &path, bearer.clone()).await;
        assert_eq!(status, 403, "{path}");
    }
    let (status, listed) = http(site.hub.addr, "/api/v1/sheets", bearer.clone()).await;
    assert_eq!(status, 200);
    let listed = String::from_utf8_lossy(&listed);
    assert!(
        listed.contains(&id) && !listed.contains(&hospital_id),
        "{listed}"
    );
    // The ministry's view of what the hub holds stays as it was: both sheets.
    let ministry = sign_in(&hub, "ministry").await;
    let all = hub
        .list_sheets(&ministry, &Default::default())
        .await
        .unwrap();
    assert_eq!(all.total, 2);
    // Identified only with a reason (docs/security.md, "The ministry's identified access").
    assert!(hub.get_sheet(&ministry, &hospital_id).await.is_err());
    hub.open_identified(&ministry, &hospital_id, "同期の確認")
        .await
        .unwrap();
    assert!(hub.get_sheet(&ministry, &hospital_id).await.is_ok());

    // The municipality resolves the clinic's key with the birth date, exactly as a hospital's.
    let reviewer = sign_in(&municipality, "reviewer").await;
    let resolved = sync_service::resolve(&municipality, &reviewer, &printed, &birth)
        .await
        .expect("resolves");
    assert_eq!(resolved.sheet.sheet_id, id);
    assert_eq!(resolved.sheet.institution, clinic_code);
    assert!(
        eventually(WAIT, || async {
            municipality
                .intake(&reviewer)
                .await
                .is_ok_and(|rows| rows.len() == 1 && rows[0].state_label == "未審査")
        })
        .await,
        "the resolved sheet arrives at the municipality"
    );
    let linked = hub.get_sheet(&clinic, &id).await.unwrap();
    assert!(
        linked.row.linked_date.is_some(),
        "自治体連携日 on the hub at once"
    );

    // 照会: asked at the municipality, answered by the clinic on the hub.
    let asked = municipality
        .ask_inquiry(
            &reviewer,
            &id,
            &["patient.name_kana".to_string()],
            "氏名カナを確認してください",
        )
        .await
        .expect("asked");
    assert!(
        eventually(WAIT, || async {
            hub.workflow_list(&clinic)
                .await
                .is_ok_and(|l| l.inquiries.len() == 1 && l.inquiries[0].row.id == id)
        })
        .await,
        "the question reaches the clinic's workflow list on the hub"
    );
    assert!(
        hub.answer_inquiry(&clinic, &hospital_id, &asked.id, "他院の票")
            .await
            .is_err(),
        "never another institution's inquiry"
    );
    hub.answer_inquiry(&clinic, &id, &asked.id, "カナは正しいことを確認しました")
        .await
        .expect("answered");
    assert!(
        eventually(WAIT, || async {
            municipality
                .review_screen(&reviewer, &id)
                .await
                .is_ok_and(|s| s.inquiries[0].inquiry.state == InquiryState::Answered)
        })
        .await,
        "the clinic's answer reaches the municipality"
    );
    municipality
        .close_inquiry(&reviewer, &id, &asked.id)
        .await
        .expect("closed");
    municipality
        .record_review(
            &reviewer,
            &id,
            &ReviewInput {
                decision: "approved".into(),
                valid_from: "2026-04-01".into(),
                valid_to: "2027-03-31".into(),
                research_consent: "given".into(),
                income: "ippan_2".into(),
                ..Default::default()
            },
        )
        .await
        .expect("recorded");
    assert!(
        eventually(WAIT, || async {
            hub.list_sheets(&clinic, &Default::default())
                .await
                .is_ok_and(|page| {
                    page.rows.len() == 1
                        && page.rows[0].review_result.as_deref() == Some("approved")
                        && page.rows[0].linked_date.is_some()
                })
        })
        .await,
        "認定 and 自治体連携日 show in the clinic's list on the hub"
    );

    // The hospital never receives the clinic's sheet.
    assert!(!sheet_ids(&hospital).await.contains(&id));
    let audited: i64 = hub
        .store
        .read(|c| {
            Ok::<_, nsdb::Error>(c.query_row(
                "SELECT count(*) FROM audit WHERE action = 'sheet_view_denied'",
                [],
                |r| r.get(0),
            )?)
        })
        .await
        .unwrap();
    assert!(audited > 0, "the refusals are audited");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clinic_on_the_hub_resolves_a_hospitals_key_for_itself_alone() {
    let site = SyncSite::start(0).await;
    let (hub, hospital) = (site.hub.node.clone(), site.hospital.node.clone());
    assert!(has_key_block(&hospital, WAIT).await);
    let doctor = sign_in(&hospital, "doctor").await;
    let (id, key, birth) = register(&hospital, &doctor, 5).await;
    assert!(eventually(WAIT, || async { sheet_ids(&hub).await.contains(&id) }).await);

    // A second clinic on the hub, with its own doctor.
    let password = "kita-no-shinryojo-2026";
    nsdb::accounts::name_institution(&hub, "1399000036", "デモ北診療所", "hospital")
        .await
        .expect("named");
    nsdb::accounts::add_user(
        &hub,
        "north",
        "北 二郎",
        nsdb::accounts::policy::UserKind::NanbyoDoctor,
        Some("1399000036"),
        None,
        password,
    )
    .await
    .expect("added");
    let north = hub.login("north", password).await.unwrap().principal;
    // A clinic's accounts on the hub are its doctors and clerks, never a reviewer's.
    let refused = nsdb::accounts::add_user(
        &hub,
        "north-reviewer",
        "北 審査",
        nsdb::accounts::policy::UserKind::Reviewer,
        Some("1399000036"),
        None,
        password,
    )
    .await;
    assert!(
        matches!(refused, Err(nsdb::Error::Invalid(_))),
        "{refused:?}"
    );
    let clinic = sign_in(&hub, "clinic").await;

    // Before resolving, the hospital's sheet is not the clinic's to read.
    assert!(hub.get_sheet(&clinic, &id).await.is_err());
    let wrong = if birth == "1950-01-01" {
        "1950-01-02"
    } else {
        "1950-01-01"
    };
    let refused = sync_service::resolve(&hub, &clinic, &key, wrong).await;
    assert!(
        matches!(refused, Err(sync_service::ResolveError::NotFound)),
        "{refused:?}"
    );

    // 臨個票連携 on the hub: the patient brings last year's paper to the clinic.
    let resolved = sync_service::resolve(&hub, &clinic, &key, &birth)
        .await
        .expect("resolves on the hub");
    assert_eq!(resolved.sheet.sheet_id, id);
    assert!(resolved.arrived, "the hub holds it already");
    assert!(
        resolved.sheet.linked_date.is_none(),
        "a clinic's 臨個票連携 does not link the sheet"
    );
    let seen = hub.get_sheet(&clinic, &id).await.expect("readable now");
    assert_eq!(seen.row.id, id);
    let renewed = hub.carry_forward(&clinic, &id).await.expect("更新登録");
    assert_eq!(renewed.row.institution, clinic.institution);
    assert!(
        hub.update_sheet(
            &clinic,
            &id,
            &std::collections::BTreeMap::from([(
                "patient.name_kana".to_string(),
                "カイザン".to_string()
            )])
        )
        .await
        .is_err(),
        "read only"
    );
    let listed = sync_service::resolutions(&hub, &clinic, 10).await.unwrap();
    assert_eq!(listed.len(), 1);

    // The other clinic on the same hub reaches none of it.
    assert!(hub.get_sheet(&north, &id).await.is_err());
    assert!(hub.get_sheet(&north, &renewed.row.id).await.is_err());
    assert!(
        sync_service::resolutions(&hub, &north, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(hub.carry_forward(&north, &id).await.is_err());
    let page = hub.list_sheets(&north, &Default::default()).await.unwrap();
    assert_eq!(page.total, 0);
}
