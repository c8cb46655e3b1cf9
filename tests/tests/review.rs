//! The municipality's review across three nodes (hub, hospital, municipality): a sheet
//! registered at the hospital and resolved by the municipality arrives with its judgment; a
//! 照会 reaches the hospital, the doctor amends and answers, the answer and the change reach the
//! reviewer; the result reaches the hospital's list (自治体連携日 and 認定); a second
//! municipality never sees the sheet; the hub refuses a municipality's change to the items; and
//! a question and an answer written while the hub is away both arrive.
//!
//! Key resolution is another module's; `SyncSite::resolve_for_municipality` stands in for it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use nsdb::Node;
use nsdb::accounts::policy::Principal;
use nsdb::review::ReviewInput;
use nsdb::sheets::workflow::Step;
use nsdb::testing::sync::{SyncSite, eventually, sheet_ids, sign_in, write_directly};
use nsdb_sync::InquiryState;

const WAIT: Duration = Duration::from_secs(30);

/// Every required item of パーキンソン病's form, filled so the checks pass.
fn complete(node: &Node) -> BTreeMap<String, String> {
    let mut v = nsdb::testing::required_values(node, "rinko-006", "レンケイ タロウ");
    v.insert("patient.name".into(), "連携 太郎".into());
    v
}

/// A sheet registered by the hospital's doctor; its id.
async fn registered(node: &Arc<Node>, doctor: &Principal) -> String {
    let d = node
        .create_sheet(doctor, "rinko-006", &complete(node))
        .await
        .expect("created");
    node.step(doctor, &d.row.id, Step::Register)
        .await
        .expect("registered");
    d.row.id
}

/// 認定 for a year, with consent to research use, 一般所得Ⅱ.
fn approved() -> ReviewInput {
    ReviewInput {
        decision: "approved".into(),
        valid_from: "2026-04-01".into(),
        valid_to: "2027-03-31".into(),
        research_consent: "given".into(),
        income: "ippan_2".into(),
        ..Default::default()
    }
}

async fn holds(node: &Arc<Node>, id: &str) -> bool {
    sheet_ids(node).await.iter().any(|s| s == id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reviewer_resolves_inquires_and_certifies_and_the_hospital_sees_it() {
    let mut site = SyncSite::start(0).await;
    let (hospital, municipality) = (site.hospital.node.clone(), site.municipality.node.clone());
    let doctor = sign_in(&hospital, "doctor").await;
    let reviewer = sign_in(&municipality, "reviewer").await;
    let id = registered(&hospital, &doctor).await;
    assert!(eventually(WAIT, || holds(&site.hub.node, &id)).await);
    let other = site.add_municipality("131016").await;

    site.resolve_for_municipality(&id).await;
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
    let rows = municipality.intake(&reviewer).await.expect("intake");
    assert!(
        rows[0]
            .judgment
            .as_deref()
            .is_some_and(|j| j.contains("基準")),
        "{:?}",
        rows[0]
    );
    let screen = municipality
        .review_screen(&reviewer, &id)
        .await
        .expect("screen");
    assert!(screen.evaluation.judgment.category.is_some());
    // 受付 reaches the hospital as 自治体連携日.
    assert!(
        eventually(WAIT, || async {
            hospital
                .get_sheet(&doctor, &id)
                .await
                .is_ok_and(|d| d.row.linked_date.is_some())
        })
        .await,
        "{:?}",
        nsdb::sync_service::status(&municipality).await
    );

    // 照会 on one item.
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
            hospital
                .workflow_list(&doctor)
                .await
                .is_ok_and(|l| l.inquiries.len() == 1)
        })
        .await,
        "the question reaches the hospital's workflow list"
    );
    // The doctor amends the registered sheet, corrects the item, registers again and answers.
    hospital
        .step(
            &doctor,
            &id,
            Step::Amend {
                reason: "照会による訂正".into(),
            },
        )
        .await
        .expect("amend");
    hospital
        .update_sheet(
            &doctor,
            &id,
            &BTreeMap::from([(
                "patient.name_kana".to_string(),
                "テイセイ タロウ".to_string(),
            )]),
        )
        .await
        .expect("edited");
    hospital
        .step(&doctor, &id, Step::Register)
        .await
        .expect("registered again");
    hospital
        .answer_inquiry(&doctor, &id, &asked.id, "カナを訂正しました")
        .await
        .expect("answered");
    assert!(
        eventually(WAIT, || async {
            municipality
                .review_screen(&reviewer, &id)
                .await
                .is_ok_and(|s| {
                    s.inquiries[0].inquiry.state == InquiryState::Answered
                        && s.inquiries[0]
                            .changes
                            .iter()
                            .any(|c| c.after.as_deref() == Some("テイセイ タロウ"))
                })
        })
        .await,
        "the answer and the change reach the reviewer: {:?}",
        nsdb::sync_service::status(&hospital).await
    );
    municipality
        .close_inquiry(&reviewer, &id, &asked.id)
        .await
        .expect("closed");
    municipality
        .record_review(&reviewer, &id, &approved())
        .await
        .expect("recorded");
    assert!(
        eventually(WAIT, || async {
            hospital.get_sheet(&doctor, &id).await.is_ok_and(|d| {
                d.row.review_result.as_deref() == Some("approved") && d.row.linked_date.is_some()
            })
        })
        .await,
        "the result reaches the hospital's list"
    );
    let page = hospital
        .list_sheets(&doctor, &Default::default())
        .await
        .expect("list");
    assert_eq!(page.rows[0].review_result.as_deref(), Some("approved"));

    // The doctor amends the certified sheet: the municipality is told, and records no result
    // until it is registered again; then it is asked to check the result again.
    hospital
        .step(
            &doctor,
            &id,
            Step::Amend {
                reason: "検査値の転記誤り".into(),
            },
        )
        .await
        .expect("amend after the result");
    assert!(
        eventually(WAIT, || async {
            municipality
                .intake(&reviewer)
                .await
                .is_ok_and(|rows| rows[0].state_label == "修正中")
        })
        .await,
        "the municipality's list says the sheet is being amended"
    );
    let screen = municipality
        .review_screen(&reviewer, &id)
        .await
        .expect("screen");
    let amendment = screen.amendment.expect("the amendment is on the screen");
    assert_eq!(amendment.reason, "検査値の転記誤り");
    assert!(amendment.after_decision && !amendment.registered_again);
    for decision in ["rejected", "deferred"] {
        let refused = municipality
            .record_review(
                &reviewer,
                &id,
                &ReviewInput {
                    decision: decision.into(),
                    reason: "基準を満たさない".into(),
                    ..Default::default()
                },
            )
            .await
            .expect_err("no result while the hospital amends the sheet");
        assert!(refused.to_string().contains("修正中"), "{refused}");
    }
    hospital
        .step(&doctor, &id, Step::Register)
        .await
        .expect("registered again");
    assert!(
        eventually(WAIT, || async {
            municipality.intake(&reviewer).await.is_ok_and(|rows| {
                rows[0].state_label == "認定"
                    && rows[0]
                        .amendment
                        .as_ref()
                        .is_some_and(|a| a.registered_again && a.after_decision)
            })
        })
        .await,
        "the list flags the amendment after the result"
    );
    // The municipality's 履歴, from the document: who registered, amended (why) and
    // registered again, named with their hospital.
    let steps = municipality
        .logged_steps(&reviewer, &id)
        .await
        .expect("履歴");
    let actions: Vec<&str> = steps.iter().map(|s| s.action).collect();
    assert_eq!(
        actions,
        ["登録", "修正", "登録", "修正", "登録"],
        "{steps:?}"
    );
    assert_eq!(steps[3].comment, "検査値の転記誤り");
    assert!(
        steps.iter().all(|s| s.by.contains('（')),
        "named with their hospital: {steps:?}"
    );

    // Recording the result again, unchanged, confirms it: the flag clears.
    municipality
        .record_review(&reviewer, &id, &approved())
        .await
        .expect("confirmed");
    let rows = municipality.intake(&reviewer).await.expect("intake");
    let amendment = rows[0].amendment.as_ref().expect("still told of it");
    assert!(!amendment.after_decision, "{amendment:?}");

    // The second municipality never sees the sheet.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(sheet_ids(&other.node).await.is_empty());
    let second = sign_in(&other.node, "reviewer").await;
    assert!(other.node.intake(&second).await.expect("intake").is_empty());
    assert!(other.node.review_screen(&second, &id).await.is_err());

    // A municipality's change to an item is refused by the hub and set aside, with the reason.
    write_directly(
        &municipality,
        &id,
        reviewer.user_id,
        BTreeMap::from([("patient.name".to_string(), Some("改ざん".to_string()))]),
        None,
    )
    .await;
    assert!(
        eventually(WAIT, || async {
            nsdb::sync_service::status(&municipality)
                .await
                .set_aside
                .iter()
                .any(|a| a.sheet == id && a.reason.contains("自治体"))
        })
        .await,
        "{:?}",
        nsdb::sync_service::status(&municipality).await
    );
    let at_hospital = hospital.get_sheet(&doctor, &id).await.expect("sheet");
    assert_eq!(
        at_hospital.items.get("patient.name").map(String::as_str),
        Some("連携 太郎")
    );
    site.stop_hub();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_question_and_an_answer_written_while_the_hub_is_away_both_arrive() {
    let mut site = SyncSite::start(0).await;
    let (hospital, municipality) = (site.hospital.node.clone(), site.municipality.node.clone());
    let doctor = sign_in(&hospital, "doctor").await;
    let reviewer = sign_in(&municipality, "reviewer").await;
    let id = registered(&hospital, &doctor).await;
    assert!(eventually(WAIT, || holds(&site.hub.node, &id)).await);
    site.resolve_for_municipality(&id).await;
    assert!(eventually(WAIT, || holds(&municipality, &id)).await);

    site.stop_hub();
    let asked = municipality
        .ask_inquiry(
            &reviewer,
            &id,
            &["patient.name".to_string()],
            "氏名を確認してください",
        )
        .await
        .expect("asked offline");
    tokio::time::sleep(Duration::from_millis(500)).await;
    site.start_hub().await;
    assert!(
        eventually(WAIT, || async {
            hospital
                .sheet_inquiries(&doctor, &id)
                .await
                .is_ok_and(|i| i.len() == 1)
        })
        .await,
        "the question asked while the hub was away arrives"
    );

    site.stop_hub();
    hospital
        .answer_inquiry(&doctor, &id, &asked.id, "氏名に誤りはありません")
        .await
        .expect("answered offline");
    tokio::time::sleep(Duration::from_millis(500)).await;
    site.start_hub().await;
    assert!(
        eventually(WAIT, || async {
            municipality
                .review_screen(&reviewer, &id)
                .await
                .is_ok_and(|s| {
                    s.inquiries[0].inquiry.answer.as_deref() == Some("氏名に誤りはありません")
                })
        })
        .await,
        "the answer written while the hub was away arrives"
    );
}
