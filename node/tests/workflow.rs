//! The clerk → doctor workflow, registration, approval, carry-forward and differences, through
//! the domain functions the screens and the API call.

use std::collections::BTreeMap;

use nsdb::accounts::policy::Principal;
use nsdb::config::NodeRole;
use nsdb::sheets::status;
use nsdb::sheets::workflow::Step;
use nsdb::testing::TestNode;
use nsdb::{Clock, Error, Node};

async fn principal(t: &TestNode, login: &str) -> Principal {
    t.node.login(login, "demo").await.unwrap().principal
}

fn items(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Every required item of パーキンソン病's form, filled so the checks pass.
fn complete(node: &Node) -> BTreeMap<String, String> {
    nsdb::testing::required_values(node, "rinko-006", "テスト タロウ")
}

#[tokio::test]
async fn a_clerk_drafts_and_sends_the_doctor_registers_and_approves() {
    let t = TestNode::start(NodeRole::Hospital).await;
    let (clerk, doctor) = (principal(&t, "clerk").await, principal(&t, "doctor").await);
    let n = &t.node;
    let s = n
        .create_sheet(
            &clerk,
            "rinko-006",
            &items(&[("patient.name", "流れ 太郎")]),
        )
        .await
        .unwrap();
    let id = s.row.id.clone();
    assert_eq!(s.row.doctor, None, "a clerk's draft has no doctor yet");

    let s = n
        .step(
            &clerk,
            &id,
            Step::Request {
                to: doctor.user_id,
                comment: "登録内容のご確認をお願いいたします。".into(),
            },
        )
        .await
        .unwrap();
    assert_eq!(s.row.status, status::REQUESTED);
    assert_eq!(s.row.assignee, Some(doctor.user_id));

    let list = n.workflow_list(&doctor).await.unwrap();
    assert_eq!(list.waiting.len(), 1);
    assert_eq!(list.waiting[0].row.id, id);
    assert_eq!(list.waiting[0].from_name, "田中 花子");
    assert_eq!(
        list.waiting[0].comment.as_deref(),
        Some("登録内容のご確認をお願いいたします。")
    );
    assert_eq!(n.workflow_list(&clerk).await.unwrap().sent.len(), 1);

    // Registering needs the checks to pass.
    let err = n.step(&doctor, &id, Step::Register).await.unwrap_err();
    assert!(err.to_string().contains("登録できません"), "{err}");
    // Sent to the doctor, the sheet names them (医師の氏名, from their account).
    assert_eq!(
        s.items.get("doctor.name").map(String::as_str),
        Some("鈴木 太郎")
    );
    let mut values = complete(n);
    values.remove("doctor.name");
    n.update_sheet(&doctor, &id, &values).await.unwrap();
    let s = n.step(&doctor, &id, Step::Register).await.unwrap();
    assert_eq!(s.row.status, status::REGISTERED);
    let key = s
        .row
        .access_key
        .clone()
        .expect("an access key on registration");
    assert!(nsdb::keys::AccessKey::parse(&key).is_some());
    assert_eq!(s.row.doctor_name.as_deref(), Some("鈴木 太郎"));

    // Only a doctor approves or releases.
    for step in [Step::Approve, Step::Release] {
        let err = n.step(&clerk, &id, step).await.unwrap_err();
        assert!(matches!(err, Error::Denied(_)), "{err}");
    }
    let s = n.step(&doctor, &id, Step::Approve).await.unwrap();
    assert_eq!(s.row.status, status::APPROVED);
    let err = n
        .update_sheet(&doctor, &id, &items(&[("patient.name", "変更")]))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("承認済み"), "{err}");
    let s = n.step(&doctor, &id, Step::Release).await.unwrap();
    assert_eq!(s.row.status, status::REGISTERED);
    assert_eq!(
        s.row.access_key.as_deref(),
        Some(key.as_str()),
        "the key stays"
    );

    let history = n.workflow_history(&doctor, &id).await.unwrap();
    let actions: Vec<&str> = history.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["request", "register", "approve", "release"]);
    assert_eq!(history[0].actor_name, "田中 花子");
    assert_eq!(history[0].assignee_name.as_deref(), Some("鈴木 太郎"));
}

#[tokio::test]
async fn pulling_back_works_until_the_doctor_acts() {
    let t = TestNode::start(NodeRole::Hospital).await;
    let (clerk, doctor) = (principal(&t, "clerk").await, principal(&t, "doctor").await);
    let n = &t.node;
    let id = n
        .create_sheet(&clerk, "rinko-006", &BTreeMap::new())
        .await
        .unwrap()
        .row
        .id;
    let request = Step::Request {
        to: doctor.user_id,
        comment: String::new(),
    };
    n.step(&clerk, &id, request.clone()).await.unwrap();
    let s = n.step(&clerk, &id, Step::PullBack).await.unwrap();
    assert_eq!(s.row.status, status::DRAFT);
    assert_eq!(s.row.assignee, None);

    n.step(&clerk, &id, request).await.unwrap();
    // The doctor starts editing: from now on the clerk cannot pull back.
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    n.update_sheet(&doctor, &id, &items(&[("patient.name", "指定医 修正")]))
        .await
        .unwrap();
    let err = n.step(&clerk, &id, Step::PullBack).await.unwrap_err();
    assert!(err.to_string().contains("引き戻せません"), "{err}");
    // The doctor sends it back with a comment; it waits for the clerk.
    let err = n
        .step(
            &doctor,
            &id,
            Step::Return {
                comment: " ".into(),
            },
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("コメント"), "{err}");
    let s = n
        .step(
            &doctor,
            &id,
            Step::Return {
                comment: "発症年月を確認してください。".into(),
            },
        )
        .await
        .unwrap();
    assert_eq!(s.row.status, status::RETURNED);
    assert_eq!(s.row.assignee, Some(clerk.user_id));
    assert_eq!(n.workflow_list(&clerk).await.unwrap().waiting.len(), 1);
}

#[tokio::test]
async fn bulk_approval_checks_each_sheet_and_lists_the_failures() {
    let t = TestNode::start(NodeRole::Hospital).await;
    let doctor = principal(&t, "doctor").await;
    let n = &t.node;
    let mut ids = Vec::new();
    for registered in [true, false, true] {
        let id = n
            .create_sheet(&doctor, "rinko-006", &complete(n))
            .await
            .unwrap()
            .row
            .id;
        if registered {
            n.step(&doctor, &id, Step::Register).await.unwrap();
        }
        ids.push(id);
    }
    ids.push("00000000-0000-0000-0000-000000000000".into());
    let outcome = n.bulk_approve(&doctor, &ids).await.unwrap();
    assert_eq!(outcome.len(), 4);
    assert_eq!(outcome[0], (ids[0].clone(), None));
    assert!(
        outcome[1].1.as_deref().unwrap().contains("「一時保存」"),
        "{outcome:?}"
    );
    assert_eq!(outcome[2], (ids[2].clone(), None));
    assert!(outcome[3].1.as_deref().unwrap().contains("見つかりません"));
    let clerk = principal(&t, "clerk").await;
    assert!(matches!(
        n.bulk_approve(&clerk, &ids).await.unwrap_err(),
        Error::Denied(_)
    ));
}

#[tokio::test]
async fn a_draft_survives_a_node_restart() {
    let t = TestNode::start(NodeRole::Hospital).await;
    let doctor = principal(&t, "doctor").await;
    let id = t
        .node
        .create_sheet(
            &doctor,
            "rinko-006",
            &items(&[
                ("patient.name", "再起動 後子"),
                ("patient.postal_code", "12"),
            ]),
        )
        .await
        .unwrap()
        .row
        .id;
    let config = t.node.config.clone();
    drop(t.node.store.clone());
    // A second process opening the same data directory sees the draft as it was typed.
    let reopened = Node::open(config, Clock::System).unwrap();
    let s = reopened.get_sheet(&doctor, &id).await.unwrap();
    assert_eq!(s.items["patient.name"], "再起動 後子");
    assert_eq!(s.items["patient.postal_code"], "12");
    assert_eq!(s.row.status, status::DRAFT);
}

#[tokio::test]
async fn renewal_carries_last_years_values_and_the_differences_show_what_changed() {
    let t = TestNode::start(NodeRole::Hospital).await;
    let doctor = principal(&t, "doctor").await;
    let n = &t.node;
    let mut last_year = complete(n);
    last_year.insert("patient.name".into(), "更新 花子".into());
    last_year.insert("doctor.written_date".into(), "2025-04-01".into());
    last_year.insert("application.type".into(), "1".into());
    let old = n
        .create_sheet(&doctor, "rinko-006", &last_year)
        .await
        .unwrap()
        .row
        .id;
    n.step(&doctor, &old, Step::Register).await.unwrap();

    let new = n.carry_forward(&doctor, &old).await.unwrap();
    assert_eq!(new.row.carried_from.as_deref(), Some(old.as_str()));
    assert_eq!(new.items["patient.name"], "更新 花子", "carried");
    assert_eq!(new.items["application.type"], "2", "a renewal is 更新");
    assert!(
        !new.items.contains_key("doctor.written_date"),
        "the date written never carries"
    );
    assert!(new.carried.contains(&"patient.name".to_string()));
    assert!(!new.carried.contains(&"application.type".to_string()));

    let form = n.catalogue.form("rinko-006").unwrap();
    let changed_item = form
        .items()
        .find(|i| {
            i.carry
                && i.ty == nsdb_rules::ItemType::Code
                && i.codes.len() > 1
                && new.items.contains_key(&i.id)
        })
        .expect("a carried choice item");
    let other = changed_item
        .codes
        .iter()
        .find(|c| Some(&c.code) != new.items.get(&changed_item.id))
        .unwrap()
        .code
        .clone();
    let s = n
        .update_sheet(
            &doctor,
            &new.row.id,
            &items(&[
                (&changed_item.id, &other),
                ("doctor.written_date", "2026-04-01"),
            ]),
        )
        .await
        .unwrap();
    assert!(
        !s.carried.contains(&changed_item.id),
        "a changed value is no longer marked"
    );

    let d = n.differences(&doctor, &new.row.id, None).await.unwrap();
    let (source, changes) = d.source.unwrap();
    assert_eq!(source, old);
    let fields: Vec<&str> = changes.iter().map(|c| c.field.as_str()).collect();
    // What was changed, plus last year's values of items that never carry over.
    let mut expected = vec![
        "application.type",
        changed_item.id.as_str(),
        "doctor.written_date",
    ];
    expected.extend(
        last_year
            .keys()
            .filter(|k| {
                !form.item(k).unwrap().carry
                    && *k != "doctor.written_date"
                    && *k != "application.type"
            })
            .map(String::as_str),
    );
    expected.sort();
    assert_eq!(fields, expected);
    assert!(d.versions.len() >= 2);
    assert_eq!(d.versions.last().unwrap().author, "鈴木 太郎");

    // Between two versions of the new sheet: exactly what the last save changed.
    let (from, to) = (
        d.versions[d.versions.len() - 2].hash.clone(),
        d.versions.last().unwrap().hash.clone(),
    );
    let d = n
        .differences(&doctor, &new.row.id, Some((&from, &to)))
        .await
        .unwrap();
    let (_, _, between) = d.between.unwrap();
    let mut fields: Vec<&str> = between.iter().map(|c| c.field.as_str()).collect();
    fields.sort();
    let mut want = vec![changed_item.id.as_str(), "doctor.written_date"];
    want.sort();
    assert_eq!(fields, want);
    assert!(matches!(
        n.differences(&doctor, &new.row.id, Some(("zz", &to))).await,
        Err(Error::Invalid(_))
    ));
}

/// Two people on one draft: each save writes only what its user changed since their page was
/// made, so nothing the other saved is emptied; the same item changed by both keeps both values
/// until a doctor chooses, and 登録 waits for that choice.
#[tokio::test]
async fn two_editors_of_one_draft_lose_nothing_and_a_shared_item_waits_for_a_choice() {
    let t = TestNode::start(NodeRole::Hospital).await;
    let (clerk, doctor) = (principal(&t, "clerk").await, principal(&t, "doctor").await);
    let n = &t.node;
    let mut values = complete(n);
    values.insert("patient.address".into(), "旧住所".into());
    values.insert("patient.postal_code".into(), "100-8916".into());
    let s = n.create_sheet(&clerk, "rinko-006", &values).await.unwrap();
    let id = s.row.id.clone();
    // Both open the editor on the same version.
    let seen_by_clerk = n.get_sheet(&clerk, &id).await.unwrap();
    let seen_by_doctor = n.get_sheet(&doctor, &id).await.unwrap();

    // Each posts the whole form; the clerk changed 住所, the doctor 郵便番号.
    let mut clerk_form = seen_by_clerk.items.clone();
    clerk_form.insert("patient.address".into(), "新住所".into());
    n.update_sheet_since(&clerk, &id, &seen_by_clerk.version, &clerk_form)
        .await
        .unwrap();
    let mut doctor_form = seen_by_doctor.items.clone();
    doctor_form.insert("patient.postal_code".into(), "100-0001".into());
    let after = n
        .update_sheet_since(&doctor, &id, &seen_by_doctor.version, &doctor_form)
        .await
        .unwrap();
    assert_eq!(
        after.items["patient.address"], "新住所",
        "the clerk's save survives"
    );
    assert_eq!(after.items["patient.postal_code"], "100-0001");
    assert!(after.conflicts.is_empty(), "{:?}", after.conflicts);

    // Both change 重症度 on pages of the same version: both values are kept.
    let v = after.version.clone();
    let mut a = after.items.clone();
    a.insert("severity.hoehn_yahr".into(), "3".into());
    n.update_sheet_since(&clerk, &id, &v, &a).await.unwrap();
    let mut b = after.items.clone();
    b.insert("severity.hoehn_yahr".into(), "4".into());
    let both = n.update_sheet_since(&doctor, &id, &v, &b).await.unwrap();
    assert_eq!(both.conflicts.len(), 1, "{:?}", both.conflicts);
    let mut kept = both.conflicts[0].values.clone();
    kept.sort();
    assert_eq!(kept, vec!["3".to_string(), "4".to_string()]);

    // A plain save of the page that shows the conflict settles nothing.
    let page = n.get_sheet(&doctor, &id).await.unwrap();
    let again = n
        .update_sheet_since(&doctor, &id, &page.version, &page.items)
        .await
        .unwrap();
    assert_eq!(again.conflicts.len(), 1);
    // 登録 is refused while it is open, and names the item.
    match n.step(&doctor, &id, Step::Register).await {
        Err(Error::Invalid(why)) => assert!(why.contains("同時に編集された項目"), "{why}"),
        other => panic!("registration must wait for the choice: {other:?}"),
    }
    n.resolve_conflict(&doctor, &id, "severity.hoehn_yahr", "3")
        .await
        .unwrap();
    let registered = n.step(&doctor, &id, Step::Register).await.unwrap();
    assert_eq!(registered.row.status, status::REGISTERED);
    assert_eq!(registered.items["severity.hoehn_yahr"], "3");

    // A version that is not of this sheet is refused, and changes nothing.
    let bogus = vec!["00".repeat(32)];
    assert!(matches!(
        n.update_sheet_since(&doctor, &id, &bogus, &items(&[("patient.address", "x")]))
            .await,
        Err(Error::Invalid(_))
    ));
}

/// Issue 11 item 4: a registered sheet is never un-registered by a plain save. 修正 needs a
/// reason, keeps the access key, is recorded in the document's history (which every node that
/// holds the sheet sees), and the sheet is registered again after the checks.
#[tokio::test]
async fn a_registered_sheet_changes_only_through_an_amendment_with_a_reason() {
    let t = TestNode::start(NodeRole::Hospital).await;
    let (clerk, doctor) = (principal(&t, "clerk").await, principal(&t, "doctor").await);
    let n = &t.node;
    let s = n
        .create_sheet(&doctor, "rinko-006", &complete(n))
        .await
        .unwrap();
    let id = s.row.id.clone();
    let s = n.step(&doctor, &id, Step::Register).await.unwrap();
    let key = s.row.access_key.clone().expect("a key");
    // 差異's history shows the one step as one line.
    let history = n.differences(&doctor, &id, None).await.unwrap().versions;
    let registered: Vec<_> = history.iter().filter(|v| v.message == "登録").collect();
    assert_eq!(registered.len(), 1, "{history:?}");

    // A plain save is refused and changes nothing.
    let err = n
        .update_sheet_since(
            &doctor,
            &id,
            &s.version,
            &items(&[("patient.name", "変更")]),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("修正"), "{err}");
    let still = n.get_sheet(&doctor, &id).await.unwrap();
    assert_eq!(still.row.status, status::REGISTERED);
    assert_ne!(
        still.items.get("patient.name").map(String::as_str),
        Some("変更")
    );

    // 修正 needs a doctor and a reason.
    let err = n
        .step(
            &clerk,
            &id,
            Step::Amend {
                reason: "誤記".into(),
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Denied(_)), "{err}");
    let err = n
        .step(
            &doctor,
            &id,
            Step::Amend {
                reason: "  ".into(),
            },
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("理由"), "{err}");
    let err = n
        .step(
            &doctor,
            &id,
            Step::Amend {
                reason: "長".repeat(nsdb::sheets::workflow::AMEND_REASON_CHARS + 1),
            },
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("200文字以内"), "{err}");
    let s = n
        .step(
            &doctor,
            &id,
            Step::Amend {
                reason: "氏名の誤記".into(),
            },
        )
        .await
        .unwrap();
    assert_eq!(s.row.status, status::DRAFT);
    assert_eq!(
        s.row.access_key.as_deref(),
        Some(key.as_str()),
        "the key stays"
    );

    let s = n
        .update_sheet_since(
            &doctor,
            &id,
            &s.version,
            &items(&[("patient.name", "変更")]),
        )
        .await
        .unwrap();
    let s2 = n.step(&doctor, &id, Step::Register).await.unwrap();
    assert_eq!(s2.row.status, status::REGISTERED);
    assert_eq!(
        s2.row.access_key.as_deref(),
        Some(key.as_str()),
        "re-registered, same key"
    );
    assert_eq!(s.items["patient.name"], "変更");

    let history = n.workflow_history(&doctor, &id).await.unwrap();
    let amend = history
        .iter()
        .find(|e| e.action == "amend")
        .expect("recorded");
    assert_eq!(amend.comment.as_deref(), Some("氏名の誤記"));
    let versions = n.differences(&doctor, &id, None).await.unwrap().versions;
    assert!(
        versions.iter().any(|v| v.message == "修正: 氏名の誤記"),
        "the reason travels with the document"
    );
}

/// 更新登録 from a sheet written on an earlier version of its form goes through the form's
/// `[[migrate]]` entry: 重症筋無力症's 2023.04 sheets had 眼瞼の易疲労性試験 among the
/// 生理学的所見, which the current criteria do not list, so that choice is not taken, and the
/// new sheet's history says which item was left behind and why.
#[tokio::test]
async fn renewal_from_an_older_form_version_drops_what_the_current_form_no_longer_has() {
    let t = TestNode::start(NodeRole::Hospital).await;
    let doctor = principal(&t, "doctor").await;
    let n = &t.node;
    // Last year's sheet, as a node running the 2023.04 form wrote it.
    let form = n.catalogue.form("rinko-011").unwrap();
    let id = nsdb_sync::SheetId::random();
    let author = nsdb_sync::Author {
        node: n.node_id,
        user: doctor.user_id,
    };
    let edit = nsdb_sync::Edit {
        author,
        at_ms: 1_700_000_000_000,
        message: "一時保存",
    };
    let mut header =
        nsdb::sheets::new_sheet_of(form, id, &doctor.institution, Some(doctor.user_id), None, 0);
    header.form_version = "2023.04".into();
    let mut sheet = nsdb_sync::Sheet::new(header, edit);
    let values: BTreeMap<String, Option<String>> =
        [("patient.name", "旧版 太郎"), ("diagnosis.nmj_tests", "1")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), Some(v.to_string())))
            .collect();
    sheet.set_fields(&values, edit);
    n.store
        .write(move |c| {
            nsdb::sheets::store_sheet(c, &mut sheet, "screen", 0)
                .map_err(nsdb::store::StoreError::from)
        })
        .await
        .unwrap();
    let old = id.to_string();

    let new = n.carry_forward(&doctor, &old).await.unwrap();
    assert_eq!(new.items["patient.name"], "旧版 太郎", "carried");
    assert!(
        !new.items.contains_key("diagnosis.nmj_tests"),
        "a choice the current criteria do not list is not carried: {:?}",
        new.items.get("diagnosis.nmj_tests")
    );
    let history = n.workflow_history(&doctor, &new.row.id).await.unwrap();
    let carry = history
        .iter()
        .find(|e| e.action == "carry")
        .expect("the carry step is in the history");
    let said = carry.comment.as_deref().unwrap_or_default();
    assert!(
        said.contains("生理学的所見") && said.contains("引き継ぎません"),
        "the history says what was left behind and why: {said}"
    );
}

#[tokio::test]
async fn a_node_without_a_leased_key_block_refuses_registration_and_keeps_the_sheet() {
    let t = TestNode::start_unleased(NodeRole::Hospital, 0).await;
    let n = &t.node;
    let doctor = principal(&t, "doctor").await;
    let id = n
        .create_sheet(&doctor, "rinko-006", &complete(n))
        .await
        .unwrap()
        .row
        .id;
    let err = n.step(&doctor, &id, Step::Register).await.unwrap_err();
    assert!(matches!(err, Error::NoKeyBlock), "{err}");
    let message = err.to_string();
    assert!(
        message.contains("ハブ") && message.contains("保存"),
        "{message}"
    );
    let kept = n.get_sheet(&doctor, &id).await.unwrap();
    assert_eq!(kept.row.status, status::DRAFT);
    assert_eq!(kept.row.access_key, None);

    // Once a block is leased, the same sheet registers with a key from that block.
    let block = nsdb::testing::lease_test_block(n).await;
    let s = n.step(&doctor, &id, Step::Register).await.unwrap();
    let key = s.row.access_key.unwrap();
    assert_eq!(key[..5], format!("{block:05}"));
}

/// Two users save different items from pages loaded at the same version: 差異 gives each save
/// one line naming its own item, and each line's 表示 shows only that item.
#[tokio::test]
async fn saves_made_side_by_side_each_have_their_line_in_the_history() {
    let t = TestNode::start(NodeRole::Hospital).await;
    let (clerk, doctor) = (principal(&t, "clerk").await, principal(&t, "doctor").await);
    let n = &t.node;
    let s = n
        .create_sheet(&doctor, "rinko-006", &complete(n))
        .await
        .unwrap();
    let id = s.row.id.clone();
    n.update_sheet_since(
        &doctor,
        &id,
        &s.version,
        &items(&[("patient.birth_municipality", "医師市")]),
    )
    .await
    .unwrap();
    n.update_sheet_since(
        &clerk,
        &id,
        &s.version,
        &items(&[("patient.birth_name", "クラーク名")]),
    )
    .await
    .unwrap();
    let d = n.differences(&doctor, &id, None).await.unwrap();
    let saves: Vec<_> = d
        .versions
        .iter()
        .filter(|v| v.message == "一時保存")
        .collect();
    assert_eq!(saves.len(), 2, "{:#?}", d.versions);
    for (field, save) in [
        ("patient.birth_municipality", saves[0]),
        ("patient.birth_name", saves[1]),
    ] {
        assert_eq!(save.changed, vec![field.to_string()], "{:#?}", d.versions);
        let shown = n
            .differences(&doctor, &id, Some((&save.from, &save.hash)))
            .await
            .unwrap()
            .between
            .unwrap()
            .2;
        let fields: Vec<&str> = shown.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(fields, [field], "{shown:?}");
    }
}
