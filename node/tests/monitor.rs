//! 利用状況の監視: each detector rule fires on what it watches (driven by real requests where
//! practical, else by audit entries appended through the audit API), once per window; the
//! 責任者 and the ministry see and acknowledge alerts (audited); the ministry opens an
//! identified sheet only with a reason, and that raises an alert at once.

use axum::http::StatusCode;
use nsdb::accounts::policy::Principal;
use nsdb::config::NodeRole;
use nsdb::monitor::{self, Rule};
use nsdb::testing::TestNode;

mod support;
use support::{get, post, sign_in};

async fn principal(t: &TestNode, login: &str) -> Principal {
    t.node.login(login, "demo").await.unwrap().principal
}

/// (rule, subject key, count, acknowledged) of every alert.
async fn alerts(t: &TestNode) -> Vec<(String, String, i64, bool)> {
    t.node
        .store
        .read(|c| {
            let mut st = c.prepare(
                "SELECT rule, subject, count, acknowledged_at IS NOT NULL FROM alerts ORDER BY id",
            )?;
            let rows = st
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok::<_, nsdb::Error>(rows)
        })
        .await
        .unwrap()
}

fn of_rule(all: &[(String, String, i64, bool)], rule: Rule) -> Vec<(String, String, i64, bool)> {
    all.iter().filter(|a| a.0 == rule.id()).cloned().collect()
}

/// Appends audit entries as the audit API does for whatever the node audits.
async fn append(t: &TestNode, entries: Vec<(i64, Option<u64>, &'static str, String, String)>) {
    t.node
        .store
        .write(move |c| {
            let tx = c.transaction()?;
            for (at, user, action, target, detail) in &entries {
                nsdb::audit::append(
                    &tx,
                    nsdb::audit::Entry {
                        at_ms: *at,
                        user: *user,
                        action,
                        target: Some(target),
                        detail: Some(detail),
                    },
                )?;
            }
            tx.commit()?;
            Ok::<_, nsdb::Error>(())
        })
        .await
        .unwrap();
}

async fn audit_count(t: &TestNode, action: &'static str) -> i64 {
    t.node
        .store
        .read(move |c| {
            Ok::<_, nsdb::Error>(c.query_row(
                "SELECT count(*) FROM audit WHERE action = ?1",
                [action],
                |r| r.get(0),
            )?)
        })
        .await
        .unwrap()
}

async fn sheet_ids(t: &TestNode, n: usize) -> Vec<String> {
    t.node
        .store
        .read(move |c| {
            let mut st = c.prepare("SELECT id FROM sheets ORDER BY id LIMIT ?1")?;
            let ids = st
                .query_map([n as i64], |r| r.get(0))?
                .collect::<rusqlite::Result<Vec<String>>>()?;
            Ok::<_, nsdb::Error>(ids)
        })
        .await
        .unwrap()
}

#[tokio::test]
async fn a_user_opening_many_patients_raises_one_alert_the_administrator_acknowledges() {
    let n = monitor::MANY_PATIENTS_PER_DAY as usize;
    let t = TestNode::start_with_sheets(NodeRole::Hospital, n + 5).await;
    let app = nsdb::http::router(t.node.clone());
    let doctor = sign_in(&app, "doctor").await;
    let ids = sheet_ids(&t, n + 5).await;
    // One below the threshold: nothing.
    for id in &ids[..n - 1] {
        let (status, _, _) = get(&app, &format!("/sheets/{id}"), &doctor).await;
        assert_eq!(status, StatusCode::OK);
    }
    // Opening the same sheet again does not count twice.
    get(&app, &format!("/sheets/{}", ids[0]), &doctor).await;
    t.node.scan_audit().await.unwrap();
    assert!(of_rule(&alerts(&t).await, Rule::ManyPatients).is_empty());
    // The threshold's sheet raises it; more sheets the same day only update its count.
    get(&app, &format!("/sheets/{}", ids[n - 1]), &doctor).await;
    assert_eq!(t.node.scan_audit().await.unwrap(), 1);
    for id in &ids[n..] {
        get(&app, &format!("/sheets/{id}/print"), &doctor).await;
    }
    assert_eq!(
        t.node.scan_audit().await.unwrap(),
        0,
        "one alert per window"
    );
    let raised = of_rule(&alerts(&t).await, Rule::ManyPatients);
    let uid = principal(&t, "doctor").await.user_id;
    assert_eq!(
        raised,
        vec![(
            Rule::ManyPatients.id().to_string(),
            format!("u:{uid}"),
            n as i64 + 5,
            false
        )]
    );

    // The 責任者 sees it with a badge in the header; a doctor may not open the list.
    let (status, _, _) = get(&app, "/monitor", &doctor).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let admin = sign_in(&app, "admin").await;
    let (status, page, _) = get(&app, "/monitor", &admin).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains("多数の患者の臨個票の閲覧"), "{page}");
    assert!(
        page.contains(&format!("{}件（基準 {n}件）", n + 5)),
        "{page}"
    );
    assert!(page.contains("doctor（ID"), "{page}");
    assert!(page.contains("未確認"));
    // (Run at night in Japan, the same views also raise the night rule's alert.)
    let open = alerts(&t).await.len();
    assert!(
        page.contains(&format!("未確認の警告 {open}件")),
        "the header's badge: {page}"
    );

    // 確認済み: audited, the state changes and the badge goes.
    let id = t
        .node
        .store
        .read(|c| Ok::<i64, nsdb::Error>(c.query_row("SELECT id FROM alerts", [], |r| r.get(0))?))
        .await
        .unwrap();
    let (status, _, to) = post(
        &app,
        "/monitor",
        &format!("/monitor/{id}/acknowledge"),
        &admin,
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(to, "/monitor");
    assert_eq!(audit_count(&t, "alert_acknowledge").await, 1);
    let (_, page, _) = get(&app, "/monitor", &admin).await;
    // The notice is the session's, shown once; an address cannot show it.
    assert!(page.contains("確認済みにしました。"), "{page}");
    let (_, again, _) = get(&app, "/monitor?done=1", &admin).await;
    assert!(!again.contains("確認済みにしました。"), "{again}");
    assert!(page.contains("確認済み（ID"), "{page}");
    if open == 1 {
        assert!(!page.contains("未確認の警告"), "{page}");
    } else {
        assert!(
            page.contains(&format!("未確認の警告 {}件", open - 1)),
            "{page}"
        );
    }
    assert!(of_rule(&alerts(&t).await, Rule::ManyPatients)[0].3);
}

#[tokio::test]
async fn many_failed_key_resolutions_raise_alerts_per_user_and_per_node_at_the_hub() {
    let hub = TestNode::start(NodeRole::Hub).await;
    // A clinic's doctor on the hub resolves keys that are not there: real resolutions.
    let clinic = principal(&hub, "clinic").await;
    let per_user = monitor::FAILED_RESOLUTIONS_PER_USER_DAY as u32;
    for serial in 0..per_user {
        let key = nsdb::keys::AccessKey::new(54_321, serial).display();
        let r = nsdb::sync_service::resolve(&hub.node, &clinic, &key, "1980-04-01").await;
        assert!(r.is_err(), "nothing to find");
    }
    // A hospital node's user asks the hub too: the hub's own entries of what it answered.
    let now = hub.node.clock.now_ms();
    let node = "00000000000000000000000000000abc";
    let answered = (0..monitor::FAILED_RESOLUTIONS_PER_NODE_DAY)
        .map(|i| {
            (
                now,
                None,
                "key_resolve",
                String::new(),
                format!(
                    "node={node} user={} login=u result=not_found",
                    if i < 19 { 7 } else { 8 + i }
                ),
            )
        })
        .collect();
    append(&hub, answered).await;
    hub.node.scan_audit().await.unwrap();
    let all = alerts(&hub).await;
    let users = of_rule(&all, Rule::FailedResolutionsUser);
    // The clinic's doctor (20) raised it; node user 7 (19) stayed below; each other node user
    // failed once.
    assert_eq!(users.len(), 1, "{all:?}");
    assert_eq!(users[0].1, format!("u:{}", clinic.user_id));
    assert_eq!(users[0].2, per_user as i64);
    let nodes = of_rule(&all, Rule::FailedResolutionsNode);
    assert_eq!(nodes.len(), 1, "{all:?}");
    assert_eq!(nodes[0].1, format!("n:{node}"));
    assert_eq!(nodes[0].2, monitor::FAILED_RESOLUTIONS_PER_NODE_DAY);
    // One more failure of user 7 raises that user's alert; the node's stays one alert.
    append(
        &hub,
        vec![(
            now,
            None,
            "key_resolve",
            String::new(),
            format!("node={node} user=7 login=u result=rate_limited"),
        )],
    )
    .await;
    assert_eq!(hub.node.scan_audit().await.unwrap(), 1);
    let all = alerts(&hub).await;
    assert!(
        all.iter()
            .any(|a| a.1 == format!("n:{node}:u:7") && a.2 == 20)
    );
    assert_eq!(of_rule(&all, Rule::FailedResolutionsNode).len(), 1);
    assert_eq!(of_rule(&all, Rule::FailedResolutionsNode)[0].2, 101);

    // The ministry sees the hub's alerts, and the count in its header.
    let app = nsdb::http::router(hub.node.clone());
    let ministry = sign_in(&app, "ministry").await;
    let (status, page, _) = get(&app, "/monitor", &ministry).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        page.contains("アクセスキー照会の失敗が多い（ノード）"),
        "{page}"
    );
    assert!(
        page.contains(&format!("ノード {node}／利用者ID 7")),
        "{page}"
    );
    assert!(page.contains("未確認の警告 3件"), "{page}");
}

#[tokio::test]
async fn patient_data_at_night_raises_an_alert_and_daytime_work_does_not() {
    let t = TestNode::start_with_sheets(NodeRole::Hospital, 6).await;
    let ids = sheet_ids(&t, 6).await;
    let (doctor, clerk) = (
        principal(&t, "doctor").await.user_id,
        principal(&t, "clerk").await.user_id,
    );
    // 22:30 JST yesterday and 02:00 JST today: one night.
    let today = monitor::jst_day(t.node.clock.now_ms()).0;
    let evening = today - 90 * 60_000;
    let small_hours = today + 120 * 60_000;
    let noon = evening - 10 * 3_600_000;
    let mut entries = Vec::new();
    for (i, id) in ids.iter().take(5).enumerate() {
        let at = if i < 3 { evening } else { small_hours };
        entries.push((at, Some(doctor), "sheet_view", id.clone(), String::new()));
        // The clerk works on all six in the daytime, and on four at night.
        entries.push((noon, Some(clerk), "sheet_edit", id.clone(), String::new()));
        if i < 4 {
            entries.push((
                evening,
                Some(clerk),
                "sheet_view",
                id.clone(),
                String::new(),
            ));
        }
    }
    append(&t, entries).await;
    t.node.scan_audit().await.unwrap();
    let night = of_rule(&alerts(&t).await, Rule::NightAccess);
    assert_eq!(
        night,
        vec![("night_access".to_string(), format!("u:{doctor}"), 5, false)]
    );
}

#[tokio::test]
async fn twenty_exports_in_a_day_raise_a_bulk_export_alert() {
    let n = monitor::EXPORTS_PER_DAY as usize;
    let t = TestNode::start_with_sheets(NodeRole::Hospital, n).await;
    let app = nsdb::http::router(t.node.clone());
    let clerk = sign_in(&app, "clerk").await;
    for id in sheet_ids(&t, n).await {
        let (status, _, _) = get(&app, &format!("/sheets/{id}/export"), &clerk).await;
        assert_eq!(status, StatusCode::OK);
        // Scanning between exports counts the window in full each time.
        t.node.scan_audit().await.unwrap();
    }
    let bulk = of_rule(&alerts(&t).await, Rule::BulkExport);
    assert_eq!(bulk.len(), 1);
    assert_eq!(bulk[0].2, n as i64);
}

#[tokio::test]
async fn renewing_from_another_hospitals_sheet_raises_an_alert_and_from_ones_own_does_not() {
    let t = TestNode::start_with_sheets(NodeRole::Hospital, 2).await;
    let app = nsdb::http::router(t.node.clone());
    let doctor = sign_in(&app, "doctor").await;
    let ids = sheet_ids(&t, 2).await;
    // Its own sheet: an ordinary renewal.
    let (status, _, _) = post(
        &app,
        &format!("/sheets/{}", ids[0]),
        &format!("/sheets/{}/renew", ids[0]),
        &doctor,
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    t.node.scan_audit().await.unwrap();
    assert!(of_rule(&alerts(&t).await, Rule::OtherInstitutionRenewal).is_empty());
    // Another hospital's sheet this node resolved by its key (a transferring patient).
    let other = ids[1].clone();
    let o = other.clone();
    t.node
        .store
        .write(move |c| {
            c.execute(
                "UPDATE sheets SET institution = '1399999999' WHERE id = ?1",
                [&o],
            )?;
            Ok::<_, nsdb::Error>(())
        })
        .await
        .unwrap();
    let now = t.node.clock.now_ms();
    nsdb::testing::record_resolution(&t.node, &other, "12345678901", "doctor", now).await;
    let (status, _, _) = post(
        &app,
        &format!("/sheets/{other}"),
        &format!("/sheets/{other}/renew"),
        &doctor,
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(t.node.scan_audit().await.unwrap(), 1);
    let pulls = of_rule(&alerts(&t).await, Rule::OtherInstitutionRenewal);
    let uid = principal(&t, "doctor").await.user_id;
    assert_eq!(pulls.len(), 1);
    assert_eq!((pulls[0].1.clone(), pulls[0].2), (format!("u:{uid}"), 1));
}

#[tokio::test]
async fn a_large_research_export_raises_an_alert_and_the_scan_resumes_where_it_stopped() {
    let hub = TestNode::start(NodeRole::Hub).await;
    let now = hub.node.clock.now_ms();
    let small = format!("sheets={} k=5", monitor::RESEARCH_EXPORT_SHEETS - 1);
    let large = format!("sheets={} k=5", monitor::RESEARCH_EXPORT_SHEETS);
    append(
        &hub,
        vec![(now, None, "research_export", "1".into(), small)],
    )
    .await;
    assert_eq!(hub.node.scan_audit().await.unwrap(), 0);
    append(
        &hub,
        vec![(now + 1, None, "research_export", "2".into(), large)],
    )
    .await;
    assert_eq!(hub.node.scan_audit().await.unwrap(), 1);
    // Nothing new: nothing raised again.
    assert_eq!(hub.node.scan_audit().await.unwrap(), 0);
    let raised = of_rule(&alerts(&hub).await, Rule::ResearchExport);
    assert_eq!(raised.len(), 1);
    assert_eq!(raised[0].2, monitor::RESEARCH_EXPORT_SHEETS);
}

#[tokio::test]
async fn the_ministry_opens_an_identified_sheet_only_with_a_reason_and_that_raises_an_alert() {
    let hub = TestNode::start(NodeRole::Hub).await;
    // A clinic's sheets on the hub.
    let clinic = principal(&hub, "clinic").await;
    let mut ids = Vec::new();
    for _ in 0..2 {
        let values = nsdb::testing::required_values(&hub.node, "rinko-006", "ミンシ タロウ");
        let d = hub
            .node
            .create_sheet(&clinic, "rinko-006", &values)
            .await
            .unwrap();
        ids.push(d.row.id);
    }
    let app = nsdb::http::router(hub.node.clone());
    let ministry = sign_in(&app, "ministry").await;
    let id = &ids[0];
    // Without a reason: the sheet is not shown, the reason is asked for.
    let (status, page, to) = get(&app, &format!("/sheets/{id}"), &ministry).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{page}");
    assert_eq!(to, format!("/sheets/{id}/identified"));
    let (status, page, _) = get(&app, &format!("/sheets/{id}/print"), &ministry).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{page}");
    let (status, page, _) = get(&app, &to, &ministry).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("理由（必須、200文字以内"), "{page}");
    assert!(!page.contains("s-patient"), "{page}");
    // An empty reason, or a long one, is refused beside the field.
    let form = format!("/sheets/{id}/identified");
    let (status, page, _) = post(&app, &form, &form, &ministry, &[("reason", "  ")]).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.contains("理由を入力してください"), "{page}");
    let long = "あ".repeat(201);
    let (status, page, _) = post(&app, &form, &form, &ministry, &[("reason", &long)]).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.contains("200文字以内"), "{page}");
    assert_eq!(audit_count(&hub, "identified_access").await, 0);
    assert!(alerts(&hub).await.is_empty());

    // With a reason: the sheet opens, prints; the reason is in the audit entry; an alert is
    // raised at once (no scan) and counted in the header.
    let reason = "自治体からの照会への回答のため";
    let (status, _, to) = post(&app, &form, &form, &ministry, &[("reason", reason)]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(to, format!("/sheets/{id}"));
    let (status, page, _) = get(&app, &to, &ministry).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        page.contains("id=\"s-patient\""),
        "the identified sheet: {page}"
    );
    assert!(page.contains("未確認の警告 1件"), "{page}");
    let (status, _, _) = get(&app, &format!("/sheets/{id}/print"), &ministry).await;
    assert_eq!(status, StatusCode::OK);
    let detail: String = hub
        .node
        .store
        .read(|c| {
            Ok::<_, nsdb::Error>(c.query_row(
                "SELECT detail FROM audit WHERE action = 'identified_access'",
                [],
                |r| r.get(0),
            )?)
        })
        .await
        .unwrap();
    assert_eq!(detail, reason);
    let raised = of_rule(&alerts(&hub).await, Rule::IdentifiedAccess);
    let uid = principal(&hub, "ministry").await.user_id;
    assert_eq!(
        raised,
        vec![(
            "identified_access".to_string(),
            format!("u:{uid}"),
            1,
            false
        )]
    );
    // The grant is for that sheet alone, and for 30 minutes.
    let (status, _, _) = get(&app, &format!("/sheets/{}", ids[1]), &ministry).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let minutes: i64 = hub
        .node
        .store
        .read(|c| {
            Ok::<_, nsdb::Error>(c.query_row(
                "SELECT (until - granted_at) / 60000 FROM identified_access",
                [],
                |r| r.get(0),
            )?)
        })
        .await
        .unwrap();
    assert_eq!(minutes, 30);
    // Nobody else may ask for it.
    let clinic_cookie = sign_in(&app, "clinic").await;
    let (status, _, _) = get(&app, &form, &clinic_cookie).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // The ministry's 利用状況の監視 lists it.
    let (_, page, _) = get(&app, "/monitor", &ministry).await;
    assert!(
        page.contains("厚生労働省による識別情報の閲覧（理由付き）"),
        "{page}"
    );
    // The person the alert is about cannot close it: it stays open, and the attempt is audited.
    let alert: i64 = hub
        .node
        .store
        .read(|c| {
            Ok::<_, nsdb::Error>(c.query_row(
                "SELECT id FROM alerts WHERE rule = 'identified_access'",
                [],
                |r| r.get(0),
            )?)
        })
        .await
        .unwrap();
    let (_, page, _) = post(
        &app,
        "/monitor",
        &format!("/monitor/{alert}/acknowledge"),
        &ministry,
        &[],
    )
    .await;
    assert!(page.contains("ご自身では確認済みにできません"), "{page}");
    assert!(!of_rule(&alerts(&hub).await, Rule::IdentifiedAccess)[0].3);
    assert_eq!(audit_count(&hub, "alert_acknowledge_denied").await, 1);
}

#[tokio::test]
async fn an_expired_grant_no_longer_opens_the_sheet() {
    let hub = TestNode::start(NodeRole::Hub).await;
    let clinic = principal(&hub, "clinic").await;
    let values = nsdb::testing::required_values(&hub.node, "rinko-006", "ミンシ ハナコ");
    let id = hub
        .node
        .create_sheet(&clinic, "rinko-006", &values)
        .await
        .unwrap()
        .row
        .id;
    let ministry = principal(&hub, "ministry").await;
    hub.node
        .open_identified(&ministry, &id, "照会への回答")
        .await
        .unwrap();
    assert!(hub.node.get_sheet(&ministry, &id).await.is_ok());
    // Thirty minutes later (the grant moved back in time, as the clock cannot be).
    let back = nsdb::sheets::identified::IDENTIFIED_ACCESS_MS;
    hub.node
        .store
        .write(move |c| {
            c.execute(
                "UPDATE identified_access SET granted_at = granted_at - ?1, until = until - ?1",
                [back],
            )?;
            Ok::<_, nsdb::Error>(())
        })
        .await
        .unwrap();
    assert!(matches!(
        hub.node.get_sheet(&ministry, &id).await,
        Err(nsdb::Error::Denied(_))
    ));
}

#[tokio::test]
async fn the_ministrys_list_shows_where_a_sheet_is_but_not_who_the_patient_is() {
    let hub = TestNode::start(NodeRole::Hub).await;
    let clinic = principal(&hub, "clinic").await;
    let mut values = nsdb::testing::required_values(&hub.node, "rinko-006", "ミンシ ジロウ");
    values.insert("patient.name_kana".into(), "ミンシ ジロウ".into());
    let d = hub
        .node
        .create_sheet(&clinic, "rinko-006", &values)
        .await
        .unwrap();
    let doctor = principal(&hub, "clinic").await;
    let ministry = principal(&hub, "ministry").await;
    // The clinic's own list has the kana; the ministry's row has no name, kana or birth date.
    let own = hub
        .node
        .list_sheets(&doctor, &Default::default())
        .await
        .unwrap();
    assert_eq!(own.rows[0].name_kana.as_deref(), Some("ミンシ ジロウ"));
    let listed = hub
        .node
        .list_sheets(&ministry, &Default::default())
        .await
        .unwrap();
    assert_eq!(listed.rows.len(), 1);
    let row = &listed.rows[0];
    assert_eq!(row.id, d.row.id);
    assert_eq!(
        (&row.name, &row.name_kana, &row.birth_date, &row.insured_no),
        (&None, &None, &None, &None)
    );
    // A search by name is refused with what to do instead; by access key it runs.
    let by_name = nsdb::sheets::SheetQuery {
        q: Some("ミンシ".into()),
        ..Default::default()
    };
    match hub.node.list_sheets(&ministry, &by_name).await {
        Err(nsdb::Error::Invalid(why)) => assert!(why.contains("アクセスキー"), "{why}"),
        other => panic!("a name search by the ministry: {other:?}"),
    }
    let by_key = nsdb::sheets::SheetQuery {
        q: Some("12345-67890-1".into()),
        ..Default::default()
    };
    assert!(
        hub.node
            .list_sheets(&ministry, &by_key)
            .await
            .unwrap()
            .rows
            .is_empty()
    );
    // The list page shows the row without the kana.
    let app = nsdb::http::router(hub.node.clone());
    let cookie = sign_in(&app, "ministry").await;
    let (status, page, _) = get(&app, "/sheets", &cookie).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains(&d.row.id), "{page}");
    assert!(!page.contains("ミンシ"), "{page}");
}

#[tokio::test]
async fn the_first_scan_of_a_node_with_a_long_log_raises_nothing_for_old_history() {
    let hub = TestNode::start(NodeRole::Hub).await;
    let now = hub.node.clock.now_ms();
    let large = format!("sheets={} k=5", monitor::RESEARCH_EXPORT_SHEETS);
    let old = now - monitor::FIRST_SCAN_LOOKBACK_MS - 60_000;
    append(
        &hub,
        vec![(old, None, "research_export", "1".into(), large.clone())],
    )
    .await;
    assert_eq!(hub.node.scan_audit().await.unwrap(), 0);
    append(
        &hub,
        vec![(now, None, "research_export", "2".into(), large)],
    )
    .await;
    assert_eq!(hub.node.scan_audit().await.unwrap(), 1);
}
