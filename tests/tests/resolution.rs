//! Access keys across nodes: the hospital leases its key block from the hub, a doctor registers
//! and the key is read from the printed PDF, the municipality resolves key + birth date at the
//! hub and the sheet arrives by sync (read-only there), a wrong birth date and an unknown key
//! get identical answers, the source hospital's list shows the link, and a second
//! municipality never receives the sheet. Then: registration on three hospitals at once never
//! issues a key twice.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nsdb::Node;
use nsdb::config::NodeRole;
use nsdb::keys::AccessKey;
use nsdb::sheets::workflow::{Step, printed_key};
use nsdb::sync_service::{self, RESOLUTION_FLOOR, ResolveError};
use nsdb::testing::sync::{SyncSite, eventually, has_key_block, sheet_ids, sign_in};

/// One HTTP/1.1 request on loopback: the status and the body.
async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> (u16, Vec<u8>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    s.write_all(body).await.unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.unwrap();
    let head_end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("an HTTP response");
    let head = String::from_utf8_lossy(&raw[..head_end]).to_string();
    assert!(
        !head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "{head}"
    );
    let status = head[9..12].parse().unwrap();
    (status, raw[head_end + 4..].to_vec())
}

/// A doctor's registered sheet at `node`: (sheet id, printed key, birth date). Fictitious
/// values from `seed` on (the first seed whose values pass the checks).
async fn register(node: &Arc<Node>, seed: u64) -> (String, String, String) {
    let doctor = sign_in(node, "doctor").await;
    let form = node.catalogue.form("rinko-006").unwrap().clone();
    for seed in seed..seed + 50 {
        let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(seed);
        let values = nsdb::cli::seed::sheet_values(&form, &mut rng, node.clock.today_jst());
        let birth = values["patient.birth_date"].clone();
        let id = node
            .create_sheet(&doctor, "rinko-006", &values)
            .await
            .unwrap()
            .row
            .id;
        match node.step(&doctor, &id, Step::Register).await {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_municipality_resolves_a_key_from_the_paper_and_the_sheet_arrives_read_only() {
    let mut site = SyncSite::start(0).await;
    let (hospital, municipality) = (site.hospital.node.clone(), site.municipality.node.clone());
    assert!(
        has_key_block(&hospital, Duration::from_secs(20)).await,
        "the hospital leases a key block from the hub"
    );
    let (id, key, birth) = register(&hospital, 7).await;

    // The key as printed on the paper the patient hands over.
    let doctor = hospital.login("doctor", "demo").await.unwrap();
    let (status, pdf) = http(
        site.hospital.addr,
        "GET",
        &format!("/sheets/{id}/print"),
        &[("Cookie", format!("nsdb_session={}", doctor.token))],
        b"",
    )
    .await;
    assert_eq!(status, 200);
    let text = pdf_extract::extract_text_from_mem(&pdf).unwrap();
    let printed = key_in(&text).expect("an access key in the printed PDF");
    assert_eq!(printed, key);

    assert!(
        eventually(Duration::from_secs(20), || async {
            sheet_ids(&site.hub.node).await.contains(&id)
        })
        .await,
        "the registered sheet reaches the hub"
    );
    let reviewer = sign_in(&municipality, "reviewer").await;
    assert!(
        !sheet_ids(&municipality).await.contains(&id),
        "nothing reaches the municipality before it resolves the key"
    );

    // A wrong birth date and an unknown key: one answer, over the API too, never before the floor.
    let api = municipality.login("reviewer", "demo").await.unwrap();
    let wrong_date = if birth == "1950-01-01" {
        "1950-01-02"
    } else {
        "1950-01-01"
    };
    let digits = AccessKey::parse(&key).unwrap();
    let other_serial: u32 = (digits.digits()[5..10].parse::<u32>().unwrap() + 1) % 100_000;
    let unknown = AccessKey::new(digits.digits()[..5].parse().unwrap(), other_serial).display();
    let mut answers = Vec::new();
    for (k, b) in [
        (key.as_str(), wrong_date),
        (unknown.as_str(), birth.as_str()),
    ] {
        let started = Instant::now();
        let body = serde_json::json!({ "access_key": k, "birth_date": b }).to_string();
        let answer = http(
            site.municipality.addr,
            "POST",
            "/api/v1/resolutions",
            &[
                ("Authorization", format!("Bearer {}", api.token)),
                ("Content-Type", "application/json".into()),
            ],
            body.as_bytes(),
        )
        .await;
        assert!(
            started.elapsed() >= RESOLUTION_FLOOR,
            "{:?}",
            started.elapsed()
        );
        answers.push(answer);
    }
    assert_eq!(answers[0].0, 404);
    assert_eq!(answers[0], answers[1], "one answer for both");
    let domain = sync_service::resolve(&municipality, &reviewer, &unknown, &birth).await;
    assert!(matches!(domain, Err(ResolveError::NotFound)), "{domain:?}");

    // Key and birth date as typed from the paper, in another form.
    let typed_birth = birth.replace('-', "/");
    let resolved = sync_service::resolve(&municipality, &reviewer, &printed, &typed_birth)
        .await
        .expect("resolves");
    assert_eq!(resolved.sheet.sheet_id, id);
    assert_eq!(resolved.sheet.birth_date.as_deref(), Some(birth.as_str()));
    assert!(resolved.sheet.linked_date.is_some());
    assert!(
        eventually(Duration::from_secs(20), || async {
            sheet_ids(&municipality).await.contains(&id)
        })
        .await,
        "the granted sheet arrives by sync"
    );
    let listed = sync_service::resolutions(&municipality, &reviewer, 10)
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        listed[0].sheet.as_ref().map(|s| s.sheet_id.as_str()),
        Some(id.as_str())
    );

    // Read-only at the municipality: the domain and the API refuse edits.
    let seen = municipality.get_sheet(&reviewer, &id).await.unwrap();
    assert_ne!(
        seen.row.doctor_name.as_deref(),
        Some(reviewer.name.as_str()),
        "user ids are a node's own: the hospital's doctor is nobody here"
    );
    let edit = municipality
        .update_sheet(
            &reviewer,
            &id,
            &BTreeMap::from([("patient.name_kana".to_string(), "カイザン".to_string())]),
        )
        .await;
    assert!(matches!(edit, Err(nsdb::Error::Denied(_))), "{edit:?}");
    let body = serde_json::json!({
        "version": seen.version,
        "items": { "patient.name_kana": "カイザン" }
    })
    .to_string();
    let (status, _) = http(
        site.municipality.addr,
        "PUT",
        &format!("/api/v1/sheets/{id}"),
        &[
            ("Authorization", format!("Bearer {}", api.token)),
            ("Content-Type", "application/json".into()),
        ],
        body.as_bytes(),
    )
    .await;
    assert_eq!(status, 403);

    // The source hospital's list shows that and when its sheet was linked.
    let doctor_p = sign_in(&hospital, "doctor").await;
    assert!(
        eventually(Duration::from_secs(20), || async {
            hospital
                .get_sheet(&doctor_p, &id)
                .await
                .is_ok_and(|d| d.row.linked_date.is_some())
        })
        .await,
        "自治体連携日 reaches the hospital"
    );

    // A second municipality never receives the sheet, and cannot resolve it without the date.
    let second = site
        .add_node(NodeRole::Municipality, "139998", "第二市 保健課")
        .await;
    let other_reviewer = sign_in(&second.node, "reviewer").await;
    let guess = sync_service::resolve(&second.node, &other_reviewer, &key, wrong_date).await;
    let guess = match guess {
        Err(ResolveError::HubUnreachable) => {
            // Its first session may not have run yet.
            tokio::time::sleep(Duration::from_millis(800)).await;
            sync_service::resolve(&second.node, &other_reviewer, &key, wrong_date).await
        }
        other => other,
    };
    assert!(matches!(guess, Err(ResolveError::NotFound)), "{guess:?}");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(!sheet_ids(&second.node).await.contains(&id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_on_three_hospitals_at_once_never_issues_a_key_twice() {
    let mut site = SyncSite::start(0).await;
    let mut hospitals = vec![site.hospital.node.clone()];
    let mut extra = Vec::new();
    for (code, name) in [("1399000021", "第二病院"), ("1399000032", "第三病院")] {
        let t = site.add_node(NodeRole::Hospital, code, name).await;
        hospitals.push(t.node.clone());
        extra.push(t);
    }
    for h in &hospitals {
        assert!(
            has_key_block(h, Duration::from_secs(20)).await,
            "every hospital leases a block"
        );
    }
    let mut tasks = Vec::new();
    for (i, h) in hospitals.iter().enumerate() {
        let h = h.clone();
        tasks.push(tokio::spawn(async move {
            let mut keys = Vec::new();
            for n in 0..8 {
                keys.push(register(&h, (i * 1000 + n * 50) as u64).await.1);
            }
            keys
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let unique: HashSet<&String> = all.iter().collect();
    assert_eq!(unique.len(), all.len(), "every key once: {all:?}");
    let blocks: HashSet<&str> = all.iter().map(|k| &k[..5]).collect();
    assert_eq!(blocks.len(), 3, "one leased block per hospital: {all:?}");
    // The hub's table: three leases, to three nodes.
    let leases: i64 = site
        .hub
        .node
        .store
        .read(|c| {
            Ok::<_, nsdb::Error>(c.query_row(
                "SELECT count(DISTINCT node) FROM key_leases",
                [],
                |r| r.get(0),
            )?)
        })
        .await
        .unwrap();
    assert_eq!(leases, 3);
    drop(extra);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_hospital_links_a_transferring_patients_sheet_reads_it_and_renews_from_it() {
    let mut site = SyncSite::start(0).await;
    let source = site.hospital.node.clone();
    assert!(has_key_block(&source, Duration::from_secs(20)).await);
    let (id, key, birth) = register(&source, 11).await;
    assert!(
        eventually(Duration::from_secs(20), || async {
            sheet_ids(&site.hub.node).await.contains(&id)
        })
        .await
    );
    let other = site
        .add_node(NodeRole::Hospital, "1399000054", "転院先病院")
        .await;
    let doctor = sign_in(&other.node, "doctor").await;
    assert!(
        eventually(Duration::from_secs(20), || async {
            !matches!(
                sync_service::resolve(&other.node, &doctor, "00000-00000-0", "2000-01-01").await,
                Err(ResolveError::HubUnreachable)
            )
        })
        .await,
        "the new hospital reaches the hub"
    );
    let resolved = sync_service::resolve(&other.node, &doctor, &key, &birth)
        .await
        .expect("resolves");
    assert_eq!(resolved.sheet.sheet_id, id);
    assert_eq!(
        resolved.sheet.linked_date, None,
        "another hospital's 臨個票連携 is no 自治体連携"
    );
    assert!(
        eventually(Duration::from_secs(20), || async {
            sheet_ids(&other.node).await.contains(&id)
        })
        .await,
        "the linked sheet arrives"
    );

    // 閲覧: readable; the editor and the API refuse edits.
    let seen = other.node.get_sheet(&doctor, &id).await.expect("readable");
    assert_eq!(seen.row.institution, "1399000010");
    let edit = other
        .node
        .update_sheet(
            &doctor,
            &id,
            &BTreeMap::from([("patient.name_kana".to_string(), "カイザン".to_string())]),
        )
        .await;
    assert!(matches!(edit, Err(nsdb::Error::Denied(_))), "{edit:?}");
    let session = other.node.login("doctor", "demo").await.unwrap();
    let (status, _) = http(
        other.addr,
        "GET",
        &format!("/sheets/{id}/edit"),
        &[("Cookie", format!("nsdb_session={}", session.token))],
        b"",
    )
    .await;
    assert_eq!(status, 403, "the editor refuses another hospital's sheet");
    let (status, _) = http(
        other.addr,
        "GET",
        &format!("/sheets/{id}"),
        &[("Cookie", format!("nsdb_session={}", session.token))],
        b"",
    )
    .await;
    assert_eq!(status, 200, "the view shows it");

    // 更新登録 from it: a new sheet here, linked to the source.
    let renewed = other
        .node
        .carry_forward(&doctor, &id)
        .await
        .expect("carried forward");
    assert_eq!(renewed.row.institution, "1399000054");
    assert_eq!(renewed.row.carried_from.as_deref(), Some(id.as_str()));
    assert_eq!(renewed.row.birth_date.as_deref(), Some(birth.as_str()));
}
