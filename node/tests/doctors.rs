//! 指定医ID発行 and 自アカウント管理 as their users see them, through the node's router: the
//! municipality's 責任者 issues an ID and gets its IDパスワード通知書, a field typed wrong is said
//! beside it with everything typed kept, the list says the ID waits for the hub, a lock shows;
//! a reviewer and a hospital's 責任者 are refused the screen; the menu offers it only to the
//! municipality's 責任者; a doctor made on the hospital is told why 兼務 is not theirs.

mod support;

use axum::http::StatusCode;
use nsdb::config::NodeRole;
use nsdb::testing::TestNode;
use support::Client;

fn issue_fields<'a>(csrf: &'a str, institution: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("csrf", csrf),
        ("kind", "nanbyo_doctor"),
        ("register_number", "0123456"),
        ("name", "発行 太郎"),
        ("institution", institution),
        ("institution_name", "試験病院"),
        ("department", "神経内科"),
        ("expires_on", ""),
    ]
}

#[tokio::test]
async fn the_municipalitys_responsible_issues_a_doctors_id_and_its_notice() {
    let t = TestNode::start(NodeRole::Municipality).await;
    let mut c = Client::new(&t);
    let csrf = c.ui_login("muni-admin").await;
    let page = c.get("/admin/doctors").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("指定医ID発行"));
    assert!(
        page.body.contains("href=\"/admin/doctors\""),
        "the menu offers it"
    );

    // A 医療機関コード of 5 digits: said beside its field, everything typed kept.
    let r = c
        .form("/admin/doctors", &issue_fields(&csrf, "12345"))
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.body.contains("id=\"err-institution\""), "{}", r.body);
    assert!(r.body.contains("5 桁"), "{}", r.body);
    assert!(r.body.contains("value=\"発行 太郎\""));
    assert!(r.body.contains("value=\"12345\""));

    // Issued: the IDパスワード通知書 (PDF) at once.
    let r = c
        .form("/admin/doctors", &issue_fields(&csrf, "1399000010"))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.headers["content-type"], "application/pdf");
    assert!(r.raw.starts_with(b"%PDF-"));

    let list = c.get("/admin/doctors").await;
    assert!(
        list.body.contains("A139999-0001/ 発行 太郎"),
        "{}",
        list.body
    );
    assert!(list.body.contains("ハブへの送信待ち"));
    let lock = list
        .body
        .split("action=\"/admin/doctors/")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap()
        .to_string();
    assert!(lock.ends_with("/lock"), "{lock}");
    let r = c
        .form(&format!("/admin/doctors/{lock}"), &[("csrf", &csrf)])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let list = c.get("/admin/doctors").await;
    assert!(list.body.contains("ロック中"));
    assert!(list.body.contains("ロック解除"));
    // 削除 asks first.
    let id = lock.trim_end_matches("/lock");
    let r = c
        .form(&format!("/admin/doctors/{id}/delete"), &[("csrf", &csrf)])
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.contains("削除の確認"), "{}", r.body);
    assert!(!c.get("/admin/doctors").await.body.contains("削除済み"));

    // A reviewer of the same municipality: refused, and no menu entry.
    let mut reviewer = Client::new(&t);
    reviewer.ui_login("reviewer").await;
    let r = reviewer.get("/admin/doctors").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(!r.body.contains("href=\"/admin/doctors\""));
}

#[tokio::test]
async fn a_hospital_neither_issues_ids_nor_registers_kenmu_for_its_own_accounts() {
    let t = TestNode::start(NodeRole::Hospital).await;
    let mut admin = Client::new(&t);
    admin.ui_login("admin").await;
    let r = admin.get("/admin/doctors").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(!r.body.contains("href=\"/admin/doctors\""));

    let mut doctor = Client::new(&t);
    doctor.ui_login("doctor").await;
    let r = doctor.get("/account/kenmu").await;
    assert!(
        r.body
            .contains("自治体が発行した指定医のアカウントだけです"),
        "{}",
        r.body
    );
    // The clerk has no 自アカウント管理.
    let mut clerk = Client::new(&t);
    clerk.ui_login("clerk").await;
    assert!(!clerk.get("/sheets").await.body.contains("/account/kenmu"));
    assert_eq!(
        clerk.get("/account/kenmu").await.status,
        StatusCode::FORBIDDEN
    );
}
