//! The sheet carries who wrote it (issue 11, item 5): the doctor's name, 指定医番号 and
//! institution are the sheet's own values, so a municipality's list, view and prints name the
//! hospital's doctor, never a user of the municipality's node who happens to have the same
//! numeric id (and, to make the old fault visible, the same institution code). And the
//! 臨個票連携 list of another hospital that resolved the key names a 小慢 sheet by its
//! 疾患群・疾病番号, never 告示番号 0.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use nsdb::Node;
use nsdb::accounts::policy::UserKind;
use nsdb::config::NodeRole;
use nsdb::sheets::SheetQuery;
use nsdb::sheets::workflow::Step;
use nsdb::testing::sync::{SyncSite, eventually, has_key_block, sheet_ids, sign_in};

const WAIT: Duration = Duration::from_secs(30);

/// One HTTP/1.1 GET on loopback with a session cookie: the status and the body.
async fn get(addr: SocketAddr, path: &str, token: &str) -> (u16, Vec<u8>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nCookie: nsdb_session={token}\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.unwrap();
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("an HTTP response");
    let head = String::from_utf8_lossy(&raw[..end]).to_string();
    let status = head[9..12].parse().unwrap();
    (status, raw[end + 4..].to_vec())
}

/// Adds users to `node` until one has id `id`; that one is at `institution`. Returns its name.
async fn user_with_id(node: &nsdb::testing::TestNode, id: u64, institution: &str) -> String {
    for n in 0.. {
        let login = format!("same{n}");
        let at = node.add_user(&login, UserKind::Reviewer, institution).await;
        assert!(at <= id, "user ids passed {id}");
        if at == id {
            return format!("{login} 試験");
        }
    }
    unreachable!()
}

fn pdf_text(pdf: &[u8]) -> String {
    pdf_extract::extract_text_from_mem(pdf)
        .expect("a readable PDF")
        .split_whitespace()
        .collect()
}

async fn holds(node: &Arc<Node>, id: &str) -> bool {
    sheet_ids(node).await.iter().any(|s| s == id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_municipality_names_the_hospitals_doctor_not_its_own_user_with_the_same_id() {
    let site = SyncSite::start(0).await;
    let (hospital, municipality) = (site.hospital.node.clone(), site.municipality.node.clone());
    assert!(has_key_block(&hospital, WAIT).await, "a key block");
    let code = hospital.config.institution.code.clone();

    // A second doctor of the hospital, with a 指定医番号 they type once: their account keeps it.
    let doctor_id = site
        .hospital
        .add_user("doctor2", UserKind::NanbyoDoctor, &code)
        .await;
    let doctor = sign_in(&hospital, "doctor2").await;
    let first = hospital
        .create_sheet(&doctor, "rinko-006", &Default::default())
        .await
        .expect("a first sheet");
    assert_eq!(
        first.items.get("doctor.name").map(String::as_str),
        Some("doctor2 試験")
    );
    assert!(!first.items.contains_key("doctor.number"), "not known yet");
    let typed = [("doctor.number".to_string(), "1312345".to_string())].into();
    hospital
        .update_sheet_since(&doctor, &first.row.id, &first.version, &typed)
        .await
        .expect("saved");

    // The clerk starts the next sheet and sends it to that doctor, who registers it.
    let clerk = sign_in(&hospital, "clerk").await;
    let mut values = nsdb::testing::required_values(&hospital, "rinko-006", "サクシャ タロウ");
    for item in nsdb::sheets::IDENTITY_ITEMS {
        values.remove(item);
    }
    let d = hospital
        .create_sheet(&clerk, "rinko-006", &values)
        .await
        .expect("created by the clerk");
    assert!(!d.items.contains_key("doctor.name"), "a clerk is no doctor");
    let id = d.row.id.clone();
    let sent = hospital
        .step(
            &clerk,
            &id,
            Step::Request {
                to: doctor_id,
                comment: String::new(),
            },
        )
        .await
        .expect("sent to the doctor");
    assert_eq!(
        sent.items.get("doctor.number").map(String::as_str),
        Some("1312345"),
        "the doctor's 指定医番号 from their account"
    );
    hospital
        .step(&doctor, &id, Step::Register)
        .await
        .expect("registered");
    let printed = hospital.get_sheet(&doctor, &id).await.unwrap();
    assert_eq!(
        printed.items.get("doctor.institution_code"),
        Some(&code),
        "{:?}",
        printed.items
    );

    // At the municipality, a user with the doctor's numeric id and the hospital's code.
    let impostor = user_with_id(&site.municipality, doctor_id, &code).await;
    assert!(eventually(WAIT, || holds(&site.hub.node, &id)).await);
    site.resolve_for_municipality(&id).await;
    assert!(eventually(WAIT, || holds(&municipality, &id)).await);
    let reviewer = sign_in(&municipality, "reviewer").await;

    let view = municipality.get_sheet(&reviewer, &id).await.expect("view");
    assert_eq!(view.row.doctor_name.as_deref(), Some("doctor2 試験"));
    assert_eq!(
        view.items.get("doctor.number").map(String::as_str),
        Some("1312345")
    );
    let list = municipality
        .list_sheets(&reviewer, &SheetQuery::default())
        .await
        .expect("list");
    let row = list.rows.iter().find(|r| r.id == id).expect("listed");
    assert_eq!(row.doctor_name.as_deref(), Some("doctor2 試験"));

    let session = municipality.login("reviewer", "demo").await.unwrap();
    let (status, pdf) = get(
        site.municipality.addr,
        &format!("/sheets/{id}/print"),
        &session.token,
    )
    .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&pdf));
    let text = pdf_text(&pdf);
    assert!(text.contains("doctor2試験"), "{text}");
    assert!(!text.contains(&impostor.replace(' ', "")), "{text}");

    let sheets = municipality
        .review_print_sheets(&reviewer, std::slice::from_ref(&id))
        .await
        .expect("the 審査会 print's sheets");
    let board = nsdb::http::ui::review::review_board_pdf(
        &municipality.catalogue,
        &sheets,
        "2026-01-01 09:00 JST",
        Some("test"),
    )
    .expect("the masked print");
    let text = pdf_text(&board);
    assert!(text.contains("doctor2試験"), "{text}");
    assert!(!text.contains(&impostor.replace(' ', "")), "{text}");

    // 差異 names who changed what by the names the document records, with their institution.
    let diff = municipality
        .differences(&reviewer, &id, None)
        .await
        .expect("差異");
    let authors: Vec<&str> = diff.versions.iter().map(|v| v.author.as_str()).collect();
    let institution = hospital.config.institution.name.clone();
    assert!(
        authors.contains(&format!("doctor2 試験（{institution}）").as_str()),
        "{authors:?}"
    );
    assert!(
        authors
            .iter()
            .all(|a| !a.contains("利用者") && !a.contains("ユーザ") && !a.contains(&impostor)),
        "{authors:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_linkage_list_names_a_shoman_sheet_by_its_group_number_never_zero() {
    let mut site = SyncSite::start(0).await;
    let hospital = site.hospital.node.clone();
    assert!(has_key_block(&hospital, WAIT).await, "a key block");
    let code = hospital.config.institution.code.clone();
    site.hospital
        .add_user("shoman", UserKind::ShomanDoctor, &code)
        .await;
    let doctor = sign_in(&hospital, "shoman").await;
    let form = hospital.catalogue.form("iken-12-04-014").unwrap().clone();
    let mut registered = None;
    for seed in 0..50 {
        let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(seed);
        let values = nsdb::cli::seed::sheet_values(&form, &mut rng, hospital.clock.today_jst());
        let d = hospital
            .create_sheet(&doctor, &form.id, &values)
            .await
            .expect("created");
        if let Ok(d) = hospital.step(&doctor, &d.row.id, Step::Register).await {
            registered = Some((d, values["patient.birth_date"].clone()));
            break;
        }
    }
    let (d, birth) = registered.expect("a fictitious 小慢 sheet passes the checks");
    let key = nsdb::sheets::workflow::printed_key(&d.row).expect("a key");
    assert!(eventually(WAIT, || holds(&site.hub.node, &d.row.id)).await);
    // Another hospital, where the patient goes next, links the sheet by its key.
    let other = site
        .add_node(NodeRole::Hospital, "1310000044", "連携先病院")
        .await;
    let linker = sign_in(&other.node, "doctor").await;
    nsdb::sync_service::resolve(&other.node, &linker, &key, &birth)
        .await
        .expect("resolved");
    assert!(eventually(WAIT, || holds(&other.node, &d.row.id)).await);

    let session = other.node.login("doctor", "demo").await.unwrap();
    let (status, body) = get(other.addr, "/linkage", &session.token).await;
    assert_eq!(status, 200);
    let page = String::from_utf8_lossy(&body);
    assert!(page.contains("<td>12-04-014 / "), "{page}");
    assert!(!page.contains("<td>0 / "), "{page}");
}
