//! A municipality's review on one node: the intake list of resolved sheets, the review screen
//! and its result, inquiries (照会) asked, answered and closed, the 審査会 batch print; the
//! authorisation and audit of each, through the domain and over HTTP.
//!
//! The node is a hospital with a reviewer added, so that one node holds both sides; the
//! resolution of an access key (another module) is stood in for by a `resolutions` row.

use std::collections::{BTreeMap, HashMap};

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use nsdb::accounts::policy::{Principal, UserKind};
use nsdb::config::NodeRole;
use nsdb::review::{IntakeState, ReviewInput};
use nsdb::testing::TestNode;
use nsdb::{Error, Node};
use nsdb_sync::{Decision, IncomeCategory, InquiryState};
use tower::ServiceExt;

async fn principal(t: &TestNode, login: &str) -> Principal {
    t.node.login(login, "demo").await.unwrap().principal
}

/// A hospital node with three sheets and a reviewer.
async fn site() -> (TestNode, Principal, Principal, Vec<String>) {
    let t = TestNode::start_with_sheets(NodeRole::Hospital, 3).await;
    t.add_user("reviewer", UserKind::Reviewer, "139999").await;
    let reviewer = principal(&t, "reviewer").await;
    let doctor = principal(&t, "doctor").await;
    let ids = t.node.sheet_ids().await.unwrap();
    (t, reviewer, doctor, ids)
}

/// Stands in for the resolution of sheet `id` by `reviewer`.
async fn resolve(node: &std::sync::Arc<Node>, _reviewer: &Principal, id: &str, at_ms: i64) {
    nsdb::testing::record_resolution(node, id, "12345678901", "reviewer", at_ms).await;
}

async fn audit_actions(node: &Node, target: &str) -> Vec<String> {
    let target = target.to_string();
    node.store
        .read(move |c| {
            let mut st = c.prepare("SELECT action FROM audit WHERE target = ?1 ORDER BY seq")?;
            let v = st
                .query_map([target], |r| r.get(0))?
                .collect::<rusqlite::Result<Vec<String>>>()?;
            Ok::<_, Error>(v)
        })
        .await
        .unwrap()
}

fn approved() -> ReviewInput {
    ReviewInput {
        decision: "approved".into(),
        valid_from: "2026-04-01".into(),
        valid_to: "2027-03-31".into(),
        research_consent: "given".into(),
        income: "ippan_1".into(),
        income_special: "kougaku_chouki".into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn a_reviewer_sees_only_resolved_sheets_and_records_a_result_the_list_shows() {
    let (t, reviewer, doctor, ids) = site().await;
    let n = &t.node;
    assert!(n.intake(&reviewer).await.unwrap().is_empty());
    // A sheet this node did not resolve cannot be reviewed, and the refusal is audited.
    assert!(matches!(
        n.review_screen(&reviewer, &ids[1]).await,
        Err(Error::Denied(_))
    ));
    assert!(
        audit_actions(n, &ids[1])
            .await
            .contains(&"review_denied".to_string())
    );
    assert!(matches!(
        n.record_review(&reviewer, &ids[1], &approved()).await,
        Err(Error::Denied(_))
    ));

    resolve(n, &reviewer, &ids[0], 1_780_000_000_000).await;
    // A resolution whose sheet has not arrived is 未着.
    resolve(
        n,
        &reviewer,
        "00000000-0000-4000-8000-000000000000",
        1_780_000_100_000,
    )
    .await;
    let rows = n.intake(&reviewer).await.unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].state, IntakeState::NotArrived);
    assert_eq!(rows[0].state_label, "未着");
    assert_eq!(rows[1].sheet_id, ids[0]);
    assert_eq!(rows[1].state_label, "未審査");
    assert!(rows[1].judgment.as_deref().is_some_and(|j| !j.is_empty()));
    assert!(rows[1].disease.is_some());

    let screen = n.review_screen(&reviewer, &ids[0]).await.unwrap();
    assert!(screen.review.is_none());
    assert!(!screen.detail.items.is_empty());

    // 不認定 needs its reason; 認定 its period.
    let rejected = ReviewInput {
        decision: "rejected".into(),
        ..Default::default()
    };
    match n.record_review(&reviewer, &ids[0], &rejected).await {
        Err(Error::Invalid(why)) => assert!(why.contains("理由"), "{why}"),
        other => panic!("{other:?}"),
    }
    let no_period = ReviewInput {
        decision: "approved".into(),
        ..Default::default()
    };
    assert!(matches!(
        n.record_review(&reviewer, &ids[0], &no_period).await,
        Err(Error::Invalid(_))
    ));
    // Combinations the 自己負担上限額 tables do not have are refused, each saying why.
    for (input, says) in [
        (
            ReviewInput {
                decision: "rejected".into(),
                reason: "診断基準を満たさない".into(),
                valid_from: "2026-04-01".into(),
                income: "joui".into(),
                ..Default::default()
            },
            "空欄にしてください",
        ),
        (
            ReviewInput {
                income: "seikatsu_hogo".into(),
                ..approved()
            },
            "一般所得Ⅰ・一般所得Ⅱ・上位所得",
        ),
        (
            ReviewInput {
                income_special: "juusho".into(),
                ..approved()
            },
            "小児慢性特定疾病の区分",
        ),
    ] {
        match n.record_review(&reviewer, &ids[0], &input).await {
            Err(Error::Invalid(why)) => assert!(why.contains(says), "{why}"),
            other => panic!("{other:?}"),
        }
    }
    let review = n
        .record_review(&reviewer, &ids[0], &approved())
        .await
        .unwrap();
    assert_eq!(review.decision, Some(Decision::Approved));
    assert_eq!(review.income, Some(IncomeCategory::GeneralI));
    assert_eq!(review.reviewer.as_deref(), Some("reviewer 試験"));
    assert_eq!(review.linked_ms, 1_780_000_000_000, "linked when resolved");

    let rows = n.intake(&reviewer).await.unwrap();
    assert_eq!(rows[1].state_label, "認定");
    // The hospital's list: 自治体連携日 (JST) and the result.
    let d = n.get_sheet(&doctor, &ids[0]).await.unwrap();
    assert_eq!(d.row.linked_date.as_deref(), Some("2026-05-29"));
    assert_eq!(d.row.review_result.as_deref(), Some("approved"));
    let actions = audit_actions(n, &ids[0]).await;
    for expected in ["review_view", "review_record"] {
        assert!(
            actions.iter().any(|a| a == expected),
            "{expected} in {actions:?}"
        );
    }
    // Doctors and clerks record no result.
    assert!(matches!(
        n.record_review(&doctor, &ids[0], &approved()).await,
        Err(Error::Denied(_))
    ));
}

#[tokio::test]
async fn an_inquiry_is_asked_answered_after_an_edit_and_closed_with_the_changes_shown() {
    let (t, reviewer, doctor, ids) = site().await;
    let n = &t.node;
    let id = &ids[0];
    resolve(n, &reviewer, id, 1_780_000_000_000).await;
    let asked = n
        .ask_inquiry(
            &reviewer,
            id,
            &["patient.name_kana".to_string()],
            "氏名カナの表記を確認してください",
        )
        .await
        .unwrap();
    assert_eq!(asked.state, InquiryState::Open);
    assert!(matches!(
        n.ask_inquiry(&reviewer, id, &[], "項目なし").await,
        Err(Error::Invalid(_))
    ));
    // An item the form does not have, and a question longer than any box, are refused.
    match n
        .ask_inquiry(&reviewer, id, &["patient.nonexistent".into()], "確認")
        .await
    {
        Err(Error::Invalid(why)) => assert!(why.contains("この様式にありません"), "{why}"),
        other => panic!("{other:?}"),
    }
    let long = "あ".repeat(nsdb_rules::form::ENTRY_LIMIT + 1);
    match n
        .ask_inquiry(&reviewer, id, &["patient.name_kana".into()], &long)
        .await
    {
        Err(Error::Invalid(why)) => assert!(why.contains("文字までです"), "{why}"),
        other => panic!("{other:?}"),
    }
    // The hospital sees it in its workflow list and on the sheet.
    let list = n.workflow_list(&doctor).await.unwrap();
    assert_eq!(list.inquiries.len(), 1);
    assert_eq!(list.inquiries[0].row.open_inquiries, 1);
    let seen = n.sheet_inquiries(&doctor, id).await.unwrap();
    assert_eq!(seen.len(), 1);
    assert!(seen[0].changes.is_empty());
    assert_eq!(
        n.intake(&reviewer).await.unwrap()[0].state,
        IntakeState::Inquiring
    );

    // The doctor corrects the item and answers.
    n.update_sheet(
        &doctor,
        id,
        &BTreeMap::from([(
            "patient.name_kana".to_string(),
            "テイセイ タロウ".to_string(),
        )]),
    )
    .await
    .unwrap();
    n.answer_inquiry(&doctor, id, &asked.id, "カナを訂正しました")
        .await
        .unwrap();
    // The same answer again changes nothing; another answer never replaces it (found when
    // tried: Back and a changed text replaced the first answer silently).
    n.answer_inquiry(&doctor, id, &asked.id, "カナを訂正しました")
        .await
        .unwrap();
    let replaced = n
        .answer_inquiry(&doctor, id, &asked.id, "二回目の回答（変更）")
        .await;
    assert!(
        matches!(&replaced, Err(Error::Invalid(m)) if m.contains("すでに回答")),
        "{replaced:?}"
    );
    assert!(matches!(
        n.answer_inquiry(&reviewer, id, &asked.id, "自治体は回答しない")
            .await,
        Err(Error::Denied(_))
    ));
    assert!(n.workflow_list(&doctor).await.unwrap().inquiries.is_empty());

    let screen = n.review_screen(&reviewer, id).await.unwrap();
    let inquiry = &screen.inquiries[0];
    assert_eq!(inquiry.inquiry.state, InquiryState::Answered);
    assert_eq!(
        inquiry.inquiry.answer.as_deref(),
        Some("カナを訂正しました")
    );
    assert_eq!(inquiry.changes.len(), 1);
    assert_eq!(inquiry.changes[0].field, "patient.name_kana");
    assert_eq!(inquiry.changes[0].after.as_deref(), Some("テイセイ タロウ"));

    n.close_inquiry(&reviewer, id, &asked.id).await.unwrap();
    let screen = n.review_screen(&reviewer, id).await.unwrap();
    assert_eq!(screen.inquiries[0].inquiry.state, InquiryState::Closed);
    let history = n.differences(&doctor, id, None).await.unwrap().versions;
    let messages: Vec<&str> = history.iter().map(|h| h.message.as_str()).collect();
    for step in ["照会", "照会回答", "照会完了"] {
        assert!(
            messages.contains(&step),
            "{step} in the history: {messages:?}"
        );
    }
    let actions = audit_actions(n, id).await;
    for expected in ["inquiry_ask", "inquiry_answer", "inquiry_close"] {
        assert!(
            actions.iter().any(|a| a == expected),
            "{expected} in {actions:?}"
        );
    }
}

/// Signs in through the login page with a cookie jar; returns the cookies and a CSRF token.
async fn ui_login(app: &Router, login: &str, home: &str) -> (String, String) {
    let res = app
        .clone()
        .oneshot(Request::get("/login").body(Body::empty()).unwrap())
        .await
        .unwrap();
    let mut cookies: HashMap<String, String> = HashMap::new();
    let keep = |res: &axum::response::Response, cookies: &mut HashMap<String, String>| {
        for sc in res.headers().get_all(header::SET_COOKIE) {
            let sc = sc.to_str().unwrap();
            let (pair, _) = sc.split_once(';').unwrap_or((sc, ""));
            let (k, v) = pair.split_once('=').unwrap();
            cookies.insert(k.to_string(), v.to_string());
        }
    };
    keep(&res, &mut cookies);
    let page =
        String::from_utf8(res.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
    let csrf = hidden_csrf(&page);
    let body = serde_urlencoded::to_string([
        ("csrf", csrf.as_str()),
        ("login", login),
        ("password", "demo"),
    ])
    .unwrap();
    let jar = |cookies: &HashMap<String, String>| {
        cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    };
    let res = app
        .clone()
        .oneshot(
            Request::post("/login")
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .header(header::COOKIE, jar(&cookies))
                .body(Body::from(body))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    keep(&res, &mut cookies);
    let (status, page) = send(app, Method::GET, home, &jar(&cookies), "").await;
    assert_eq!(status, StatusCode::OK);
    (
        jar(&cookies),
        hidden_csrf(&String::from_utf8(page).unwrap()),
    )
}

fn hidden_csrf(html: &str) -> String {
    let at = html
        .find("name=\"csrf\" value=\"")
        .unwrap_or_else(|| panic!("no CSRF field in {html}"));
    let rest = &html[at + "name=\"csrf\" value=\"".len()..];
    rest[..rest.find('"').unwrap()].to_string()
}

async fn send(
    app: &Router,
    method: Method,
    uri: &str,
    cookie: &str,
    form: &str,
) -> (StatusCode, Vec<u8>) {
    let mut req = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::COOKIE, cookie);
    if !form.is_empty() {
        req = req.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    }
    let res = app
        .clone()
        .oneshot(req.body(Body::from(form.to_string())).unwrap())
        .await
        .unwrap();
    let status = res.status();
    (
        status,
        res.into_body().collect().await.unwrap().to_bytes().to_vec(),
    )
}

#[tokio::test]
async fn over_http_the_reviewer_lists_reviews_and_prints_a_masked_batch() {
    let (t, reviewer, doctor, ids) = site().await;
    let n = &t.node;
    for id in &ids[..2] {
        resolve(n, &reviewer, id, 1_780_000_000_000).await;
    }
    let names: Vec<String> = {
        let mut v = Vec::new();
        for id in &ids[..2] {
            let d = n.get_sheet(&doctor, id).await.unwrap();
            v.push(d.items.get("patient.name").cloned().unwrap());
        }
        v
    };
    let app = nsdb::http::router(n.clone());
    let (cookie, csrf) = ui_login(&app, "reviewer", "/intake").await;
    let (status, page) = send(&app, Method::GET, "/intake", &cookie, "").await;
    assert_eq!(status, StatusCode::OK);
    let page = String::from_utf8(page).unwrap();
    assert!(page.contains("受付一覧") && page.contains("審査会用印刷"));
    assert!(page.contains(&format!("/review/{}", ids[0])));
    assert!(!page.contains(&ids[2]), "an unresolved sheet is not listed");
    // The review screen of an unresolved sheet is refused.
    let (status, _) = send(
        &app,
        Method::GET,
        &format!("/review/{}", ids[2]),
        &cookie,
        "",
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // Recording a result through the form.
    let form = serde_urlencoded::to_string([
        ("csrf", csrf.as_str()),
        ("decision", "deferred"),
        ("income", "teishotoku_2"),
    ])
    .unwrap();
    let (status, _) = send(
        &app,
        Method::POST,
        &format!("/review/{}", ids[0]),
        &cookie,
        &form,
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (_, page) = send(
        &app,
        Method::GET,
        &format!("/review/{}", ids[0]),
        &cookie,
        "",
    )
    .await;
    let page = String::from_utf8(page).unwrap();
    assert!(
        page.contains("保留") && page.contains("低所得Ⅱ"),
        "the result is shown"
    );

    // A question with no item chosen is refused, and what was typed stays on the page.
    let form = serde_urlencoded::to_string([
        ("csrf", csrf.as_str()),
        ("question", "単位を確認してください"),
    ])
    .unwrap();
    let (_, page) = send(
        &app,
        Method::POST,
        &format!("/review/{}/inquiries", ids[0]),
        &cookie,
        &form,
    )
    .await;
    let page = String::from_utf8(page).unwrap();
    assert!(page.contains("項目を一つ以上選んでください"), "{page}");
    assert!(
        page.contains(">単位を確認してください</textarea>"),
        "{page}"
    );

    // 照会 through the form; the doctor sees it beside the item and answers on the sheet view.
    let form = serde_urlencoded::to_string([
        ("csrf", csrf.as_str()),
        ("field", "patient.name_kana"),
        ("question", "カナを確認してください"),
    ])
    .unwrap();
    let (status, _) = send(
        &app,
        Method::POST,
        &format!("/review/{}/inquiries", ids[0]),
        &cookie,
        &form,
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (doctor_cookie, doctor_csrf) = ui_login(&app, "doctor", "/sheets").await;
    let (status, page) = send(
        &app,
        Method::GET,
        &format!("/sheets/{}", ids[0]),
        &doctor_cookie,
        "",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let page = String::from_utf8(page).unwrap();
    assert!(page.contains("自治体からの照会") && page.contains("カナを確認してください"));
    // The workflow list's 照会 row leads to the view, where a registered sheet is answered.
    let (_, list) = send(&app, Method::GET, "/workflow", &doctor_cookie, "").await;
    let list = String::from_utf8(list).unwrap();
    assert!(
        list.contains(&format!("href=\"/sheets/{}\">回答", ids[0])),
        "{list}"
    );
    assert!(
        page.contains("inquiry-mark"),
        "the question stands beside its item"
    );
    let at = page.find("id=\"inquiry-").expect("the inquiry's anchor") + "id=\"inquiry-".len();
    let inquiry = &page[at..at + page[at..].find('"').unwrap()];
    let form =
        serde_urlencoded::to_string([("csrf", doctor_csrf.as_str()), ("answer", "正しい表記です")])
            .unwrap();
    let (status, _) = send(
        &app,
        Method::POST,
        &format!("/sheets/{}/inquiries/{inquiry}/answer", ids[0]),
        &doctor_cookie,
        &form,
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (_, page) = send(
        &app,
        Method::GET,
        &format!("/review/{}", ids[0]),
        &cookie,
        "",
    )
    .await;
    assert!(String::from_utf8(page).unwrap().contains("正しい表記です"));

    // The API: the intake list and a result recorded as JSON, with stable codes.
    let login = serde_json::json!({"login": "reviewer", "password": "demo"}).to_string();
    let res = app
        .clone()
        .oneshot(
            Request::post("/api/v1/session")
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(login))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let body: serde_json::Value =
        serde_json::from_slice(&res.into_body().collect().await.unwrap().to_bytes()).unwrap();
    let bearer = format!("Bearer {}", body["token"].as_str().unwrap());
    let api = async |method: Method, uri: String, json: Option<serde_json::Value>| {
        let mut req = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::AUTHORIZATION, bearer.clone());
        if json.is_some() {
            req = req.header(header::CONTENT_TYPE, "application/json");
        }
        let body = json.map(|j| j.to_string()).unwrap_or_default();
        let res = app
            .clone()
            .oneshot(req.body(Body::from(body)).unwrap())
            .await
            .unwrap();
        let status = res.status();
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            serde_json::from_slice::<serde_json::Value>(&bytes).unwrap_or_default(),
        )
    };
    let (status, rows) = api(Method::GET, "/api/v1/intake".into(), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(rows.as_array().map(Vec::len), Some(2));
    let (status, review) = api(
        Method::POST,
        format!("/api/v1/sheets/{}/review", ids[1]),
        Some(serde_json::json!({"decision": "rejected", "reason": "診断基準を満たさない"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{review}");
    assert_eq!(review["decision"], "rejected");
    let (status, _) = api(
        Method::POST,
        format!("/api/v1/sheets/{}/review", ids[2]),
        Some(serde_json::json!({"decision": "deferred"})),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "not resolved here");

    // 審査会用印刷: both sheets, one PDF, no patient name; one audit entry each.
    let form = serde_urlencoded::to_string([
        ("csrf", csrf.as_str()),
        ("id", ids[0].as_str()),
        ("id", ids[1].as_str()),
    ])
    .unwrap();
    let (status, pdf) = send(&app, Method::POST, "/intake/print", &cookie, &form).await;
    assert_eq!(status, StatusCode::OK);
    assert!(pdf.starts_with(b"%PDF"));
    let text: String = pdf_extract::extract_text_from_mem(&pdf)
        .unwrap()
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    assert!(text.contains("一次判定"));
    for name in &names {
        let squashed: String = name.chars().filter(|c| !c.is_whitespace()).collect();
        assert!(!text.contains(&squashed), "{name} is masked");
    }
    for id in &ids[..2] {
        assert!(
            audit_actions(n, id)
                .await
                .contains(&"review_print".to_string())
        );
    }
    // An unresolved sheet in the selection refuses the whole print.
    let form =
        serde_urlencoded::to_string([("csrf", csrf.as_str()), ("id", ids[2].as_str())]).unwrap();
    let (status, _) = send(&app, Method::POST, "/intake/print", &cookie, &form).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

/// Sets the stored access key of sheet `id` (the list projection), as registration would.
async fn set_key(node: &Node, id: &str, key: &str) {
    let (id, key) = (id.to_string(), key.to_string());
    node.store
        .write(move |c| {
            c.execute(
                "UPDATE sheets SET access_key = ?1 WHERE id = ?2",
                [key.as_str(), id.as_str()],
            )?;
            Ok::<_, Error>(())
        })
        .await
        .unwrap();
}

/// A bearer token for `login` through the API.
async fn api_token(app: &Router, login: &str) -> String {
    let body = serde_json::json!({"login": login, "password": "demo"}).to_string();
    let res = app
        .clone()
        .oneshot(
            Request::post("/api/v1/session")
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(body))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let body: serde_json::Value =
        serde_json::from_slice(&res.into_body().collect().await.unwrap().to_bytes()).unwrap();
    format!("Bearer {}", body["token"].as_str().unwrap())
}

async fn api_get(app: &Router, bearer: &str, uri: &str) -> (StatusCode, serde_json::Value) {
    let res = app
        .clone()
        .oneshot(
            Request::get(uri)
                .header(header::AUTHORIZATION, bearer)
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let status = res.status();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
    )
}

#[tokio::test]
async fn a_reviewer_reaches_only_resolved_sheets_on_every_list_search_view_print_and_api_path() {
    let (t, reviewer, doctor, ids) = site().await;
    let n = &t.node;
    resolve(n, &reviewer, &ids[0], 1_780_000_000_000).await;
    set_key(n, &ids[0], "59397000000").await;
    set_key(n, &ids[1], "59397000013").await;
    let kana = |id: &str| {
        let (n, doctor, id) = (n.clone(), doctor.clone(), id.to_string());
        async move {
            n.get_sheet(&doctor, &id)
                .await
                .unwrap()
                .row
                .name_kana
                .expect("a kana name")
        }
    };
    let other_kana = kana(&ids[1]).await;

    // The domain list and its searches.
    let listed = n
        .list_sheets(&reviewer, &nsdb::sheets::SheetQuery::default())
        .await
        .unwrap();
    let listed: Vec<&str> = listed.rows.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(listed, vec![ids[0].as_str()]);
    for q in [
        other_kana.clone(),
        "59397-00000-1".into(),
        "59397000013".into(),
    ] {
        let found = n
            .list_sheets(
                &reviewer,
                &nsdb::sheets::SheetQuery {
                    q: Some(q.clone()),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert!(
            found.rows.iter().all(|r| r.id == ids[0]),
            "search {q} finds only resolved sheets"
        );
    }
    // The doctor's own list is not narrowed by resolutions.
    let own = n
        .list_sheets(&doctor, &nsdb::sheets::SheetQuery::default())
        .await
        .unwrap();
    assert_eq!(own.rows.len(), 3);

    // The screens.
    let app = nsdb::http::router(n.clone());
    let (cookie, _) = ui_login(&app, "reviewer", "/intake").await;
    let (status, page) = send(&app, Method::GET, "/sheets", &cookie, "").await;
    assert_eq!(status, StatusCode::OK);
    let page = String::from_utf8(page).unwrap();
    assert!(page.contains(&ids[0]));
    assert!(!page.contains(&ids[1]) && !page.contains(&ids[2]), "{page}");
    let search = format!(
        "/sheets?{}",
        serde_urlencoded::to_string([("q", other_kana.as_str())]).unwrap()
    );
    let (_, page) = send(&app, Method::GET, &search, &cookie, "").await;
    let page = String::from_utf8(page).unwrap();
    assert!(!page.contains(&ids[1]), "the search does not reach it");
    for path in [
        "", "/edit", "/print", "/export", "/xml", "/history", "/diff",
    ] {
        let (status, _) = send(
            &app,
            Method::GET,
            &format!("/sheets/{}{path}", ids[1]),
            &cookie,
            "",
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "/sheets/{{id}}{path}");
    }
    let (status, _) = send(
        &app,
        Method::GET,
        &format!("/sheets/{}", ids[0]),
        &cookie,
        "",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "a resolved sheet is readable");
    let (status, pdf) = send(
        &app,
        Method::GET,
        &format!("/sheets/{}/print", ids[0]),
        &cookie,
        "",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(pdf.starts_with(b"%PDF"));

    // The API.
    let bearer = api_token(&app, "reviewer").await;
    let (status, page) = api_get(&app, &bearer, "/api/v1/sheets").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["total"], 1, "{page}");
    assert_eq!(page["rows"][0]["id"], ids[0].as_str());
    for path in ["", "/xml", "/inquiries"] {
        let (status, _) = api_get(&app, &bearer, &format!("/api/v1/sheets/{}{path}", ids[1])).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "/api/v1/sheets/{{id}}{path}");
    }
    let (status, _) = api_get(
        &app,
        &bearer,
        &format!("/api/v1/sheets/{}/inquiries", ids[0]),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn access_keys_are_shown_as_on_paper_on_the_lists_the_review_screen_and_notices() {
    let (t, _reviewer, _doctor, ids) = site().await;
    let n = &t.node;
    nsdb::testing::record_resolution(n, &ids[0], "59397000000", "reviewer", 1_780_000_000_000)
        .await;
    set_key(n, &ids[0], "59397000000").await;
    let app = nsdb::http::router(n.clone());
    let (cookie, _) = ui_login(&app, "reviewer", "/intake").await;
    for path in [
        "/intake".to_string(),
        format!("/intake?resolved={}", ids[0]),
        "/sheets".to_string(),
        format!("/review/{}", ids[0]),
        format!("/sheets/{}", ids[0]),
    ] {
        let (status, page) = send(&app, Method::GET, &path, &cookie, "").await;
        assert_eq!(status, StatusCode::OK, "{path}");
        let page = String::from_utf8(page).unwrap();
        assert!(
            page.contains("59397-00000-0"),
            "{path} shows the key as printed"
        );
        assert!(
            !page.contains("59397000000"),
            "{path} never shows it unbroken"
        );
    }
}

#[tokio::test]
async fn dates_are_typed_as_clerks_write_them_and_a_refused_print_stays_on_the_intake_page() {
    let (t, reviewer, _doctor, ids) = site().await;
    let n = &t.node;
    resolve(n, &reviewer, &ids[0], 1_780_000_000_000).await;
    let app = nsdb::http::router(n.clone());
    let (cookie, csrf) = ui_login(&app, "reviewer", "/intake").await;

    // No date picker where a reviewer types a date: text fields with the format beside them.
    for path in [
        "/intake".to_string(),
        format!("/review/{}", ids[0]),
        "/sheets".to_string(),
    ] {
        let (_, page) = send(&app, Method::GET, &path, &cookie, "").await;
        let page = String::from_utf8(page).unwrap();
        assert!(!page.contains("type=\"date\""), "{path} has a date picker");
        assert!(page.contains("令和8年4月1日"), "{path} shows the format");
    }
    // 和暦 in the 有効期間 is recorded as the date it names.
    let form = serde_urlencoded::to_string([
        ("csrf", csrf.as_str()),
        ("decision", "approved"),
        ("valid_from", "R8.4.1"),
        ("valid_to", "令和9年3月31日"),
    ])
    .unwrap();
    let (status, _) = send(
        &app,
        Method::POST,
        &format!("/review/{}", ids[0]),
        &cookie,
        &form,
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let review = n.review_screen(&reviewer, &ids[0]).await.unwrap().review;
    let review = review.expect("recorded");
    assert_eq!(review.valid_from.as_deref(), Some("2026-04-01"));
    assert_eq!(review.valid_to.as_deref(), Some("2027-03-31"));
    let (status, _) = send(&app, Method::GET, "/sheets?from=R6.4.1", &cookie, "").await;
    assert_eq!(status, StatusCode::OK, "the search takes 和暦 too");

    // The review screen puts the judgment, what is missing and the result form before the
    // sheet's items.
    let (_, page) = send(
        &app,
        Method::GET,
        &format!("/review/{}", ids[0]),
        &cookie,
        "",
    )
    .await;
    let page = String::from_utf8(page).unwrap();
    let at = |needle: &str| page.find(needle).unwrap_or_else(|| panic!("{needle}"));
    assert!(at("id=\"judgment\"") < at("class=\"review-sheet\""));
    assert!(at("id=\"checks\"") < at("class=\"review-sheet\""));
    assert!(at("id=\"record\"") < at("class=\"review-sheet\""));

    // 審査会用印刷 with nothing selected: the intake page again, the reason beside the button.
    let form = serde_urlencoded::to_string([("csrf", csrf.as_str())]).unwrap();
    let (status, page) = send(&app, Method::POST, "/intake/print", &cookie, &form).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let page = String::from_utf8(page).unwrap();
    assert!(page.contains("id=\"intake\""), "the intake list is shown");
    let error = &page[page.find("id=\"print-error\"").expect("the reason")..];
    assert!(
        error.contains("印刷する臨床調査個人票を選んでください"),
        "{error}"
    );
    assert!(
        !page.contains("target=\"_blank\""),
        "nothing opens a new tab"
    );
    // A selection that cannot be printed keeps what was checked.
    let form = serde_urlencoded::to_string([
        ("csrf", csrf.as_str()),
        ("id", ids[0].as_str()),
        ("id", ids[2].as_str()),
    ])
    .unwrap();
    let (status, page) = send(&app, Method::POST, "/intake/print", &cookie, &form).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let page = String::from_utf8(page).unwrap();
    assert!(page.contains("id=\"print-error\""));
    assert!(
        page.contains(&format!("value=\"{}\" checked", ids[0])),
        "{page}"
    );
    // A printable selection downloads the PDF.
    let res = app
        .clone()
        .oneshot(
            Request::post("/intake/print")
                .header(header::COOKIE, cookie.as_str())
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Body::from(
                    serde_urlencoded::to_string([("csrf", csrf.as_str()), ("id", ids[0].as_str())])
                        .unwrap(),
                ))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let disposition = res.headers()[header::CONTENT_DISPOSITION].to_str().unwrap();
    assert!(disposition.starts_with("attachment;"), "{disposition}");
}

/// How many audit entries `action` sheet `id` has.
async fn audited(node: &Node, id: &str, action: &str) -> usize {
    audit_actions(node, id)
        .await
        .iter()
        .filter(|a| *a == action)
        .count()
}

#[tokio::test]
async fn a_resubmitted_review_form_records_nothing_twice() {
    let (t, reviewer, _doctor, ids) = site().await;
    let n = &t.node;
    let id = ids[0].as_str();
    resolve(n, &reviewer, id, 1_780_000_000_000).await;
    let app = nsdb::http::router(n.clone());
    let (cookie, csrf) = ui_login(&app, "reviewer", "/intake").await;
    let (doctor_cookie, doctor_csrf) = ui_login(&app, "doctor", "/sheets").await;
    // Each form posted twice, as Back and 送信 again do.
    let twice = async |cookie: &str, uri: String, form: String| {
        for _ in 0..2 {
            let (status, _) = send(&app, Method::POST, &uri, cookie, &form).await;
            assert_eq!(status, StatusCode::SEE_OTHER, "{uri}");
        }
    };
    let ask = serde_urlencoded::to_string([
        ("csrf", csrf.as_str()),
        ("field", "patient.name_kana"),
        ("question", "カナを確認してください"),
    ])
    .unwrap();
    twice(&cookie, format!("/review/{id}/inquiries"), ask).await;
    let screen = n.review_screen(&reviewer, id).await.unwrap();
    assert_eq!(screen.inquiries.len(), 1, "one 照会, not two");
    assert_eq!(audited(n, id, "inquiry_ask").await, 1);
    let inquiry = screen.inquiries[0].inquiry.id.clone();

    let answer =
        serde_urlencoded::to_string([("csrf", doctor_csrf.as_str()), ("answer", "正しい表記です")])
            .unwrap();
    twice(
        &doctor_cookie,
        format!("/sheets/{id}/inquiries/{inquiry}/answer"),
        answer.clone(),
    )
    .await;
    assert_eq!(audited(n, id, "inquiry_answer").await, 1);

    let close = serde_urlencoded::to_string([("csrf", csrf.as_str())]).unwrap();
    twice(
        &cookie,
        format!("/review/{id}/inquiries/{inquiry}/close"),
        close,
    )
    .await;
    assert_eq!(audited(n, id, "inquiry_close").await, 1);
    // The answer posted again after the inquiry was closed still shows the state, no error.
    let (status, _) = send(
        &app,
        Method::POST,
        &format!("/sheets/{id}/inquiries/{inquiry}/answer"),
        &doctor_cookie,
        &answer,
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);

    let result = serde_urlencoded::to_string([
        ("csrf", csrf.as_str()),
        ("decision", "approved"),
        ("valid_from", "2026-04-01"),
        ("valid_to", "2027-03-31"),
        ("income", "ippan_1"),
    ])
    .unwrap();
    twice(&cookie, format!("/review/{id}"), result).await;
    assert_eq!(audited(n, id, "review_record").await, 1);
    // A different result is recorded.
    let changed =
        serde_urlencoded::to_string([("csrf", csrf.as_str()), ("decision", "deferred")]).unwrap();
    let (status, _) = send(
        &app,
        Method::POST,
        &format!("/review/{id}"),
        &cookie,
        &changed,
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(audited(n, id, "review_record").await, 2);
    // After closing, the same question may be asked again: it is a new 照会.
    let again = serde_urlencoded::to_string([
        ("csrf", csrf.as_str()),
        ("field", "patient.name_kana"),
        ("question", "カナを確認してください"),
    ])
    .unwrap();
    let (status, _) = send(
        &app,
        Method::POST,
        &format!("/review/{id}/inquiries"),
        &cookie,
        &again,
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(
        n.review_screen(&reviewer, id)
            .await
            .unwrap()
            .inquiries
            .len(),
        2
    );
}

#[tokio::test]
async fn the_workflow_list_names_the_municipality_the_question_and_the_items_of_a_query() {
    let (t, reviewer, _doctor, ids) = site().await;
    let n = &t.node;
    let id = ids[0].as_str();
    resolve(n, &reviewer, id, 1_780_000_000_000).await;
    let question =
        "検査値の単位を確認してください。mg/dL と記載されていますが、様式では g/dL の項目です。";
    n.ask_inquiry(
        &reviewer,
        id,
        &[
            "patient.name_kana".to_string(),
            "patient.birth_date".to_string(),
        ],
        question,
    )
    .await
    .unwrap();
    let app = nsdb::http::router(n.clone());
    let (cookie, _) = ui_login(&app, "doctor", "/sheets").await;
    let (_, page) = send(&app, Method::GET, "/workflow", &cookie, "").await;
    let page = String::from_utf8(page).unwrap();
    let rows = &page[page.find("id=\"inquiry-rows\"").expect("the 照会 rows")..];
    let asked_by = &rows[rows.find("class=\"asked-by\"").unwrap()..];
    let asked_by = &asked_by[..asked_by.find("</td>").unwrap()];
    assert!(
        asked_by.contains(&reviewer.institution) && asked_by.contains(&reviewer.name),
        "who asked: {asked_by}"
    );
    let doctor_name = n.login("doctor", "demo").await.unwrap().principal.name;
    assert!(
        !asked_by.contains(&doctor_name),
        "not the doctor: {asked_by}"
    );
    // The question, shortened, in full on hover and linked to its answer box.
    assert!(rows.contains(&format!("title=\"{question}\"")), "{rows}");
    assert!(rows.contains("検査値の単位を確認してください。mg/dL"));
    assert!(rows.contains('…'));
    assert!(rows.contains(&format!("href=\"/sheets/{id}#inquiry-")));
    // The items by their labels.
    let form = n
        .catalogue
        .form(&n.get_sheet(&reviewer, id).await.unwrap().row.form_id)
        .unwrap();
    for f in ["patient.name_kana", "patient.birth_date"] {
        assert!(rows.contains(&form.item(f).unwrap().label), "{f}");
    }
}

/// Makes sheet `id` another institution's in the list projection, as it is at a municipality
/// or the hub: no user of this node names its doctor any more.
async fn from_elsewhere(node: &Node, id: &str) {
    let id = id.to_string();
    node.store
        .write(move |c| {
            c.execute(
                "UPDATE sheets SET institution = '1399009999' WHERE id = ?1",
                [id.as_str()],
            )?;
            Ok::<_, Error>(())
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn another_institutions_doctor_is_named_from_the_document_on_lists_the_review_and_prints() {
    let (t, reviewer, doctor, ids) = site().await;
    let n = &t.node;
    // One sheet names its 指定医 in the item; the other only through who wrote it.
    let mut named = BTreeMap::new();
    named.insert("doctor.name".to_string(), "文書 指定医".to_string());
    n.update_sheet(&doctor, &ids[0], &named).await.unwrap();
    let mut cleared = BTreeMap::new();
    cleared.insert("doctor.name".to_string(), String::new());
    cleared.insert(
        "doctor.institution_name".to_string(),
        "試験病院".to_string(),
    );
    n.update_sheet(&doctor, &ids[1], &cleared).await.unwrap();
    for id in &ids[..2] {
        resolve(n, &reviewer, id, 1_780_000_000_000).await;
        from_elsewhere(n, id).await;
    }
    let rows = n
        .list_sheets(&reviewer, &nsdb::sheets::SheetQuery::default())
        .await
        .unwrap()
        .rows;
    let named_of = |id: &str| {
        rows.iter()
            .find(|r| r.id == id)
            .and_then(|r| r.doctor_name.clone())
    };
    assert_eq!(named_of(&ids[0]).as_deref(), Some("文書 指定医"));
    assert_eq!(
        named_of(&ids[1]).as_deref(),
        Some(doctor.name.as_str()),
        "the writing doctor as the document records them"
    );
    let intake = n.intake(&reviewer).await.unwrap();
    assert!(
        intake
            .iter()
            .any(|r| r.doctor.as_deref() == Some("文書 指定医"))
    );

    let app = nsdb::http::router(n.clone());
    let (cookie, csrf) = ui_login(&app, "reviewer", "/intake").await;
    for path in [
        "/sheets".to_string(),
        "/intake".to_string(),
        format!("/review/{}", ids[0]),
    ] {
        let (_, page) = send(&app, Method::GET, &path, &cookie, "").await;
        assert!(
            String::from_utf8(page).unwrap().contains("文書 指定医"),
            "{path} names the doctor"
        );
    }
    let (_, page) = send(
        &app,
        Method::GET,
        &format!("/review/{}", ids[1]),
        &cookie,
        "",
    )
    .await;
    assert!(String::from_utf8(page).unwrap().contains(&doctor.name));
    let form =
        serde_urlencoded::to_string([("csrf", csrf.as_str()), ("id", ids[0].as_str())]).unwrap();
    let (status, pdf) = send(&app, Method::POST, "/intake/print", &cookie, &form).await;
    assert_eq!(status, StatusCode::OK);
    let text: String = pdf_extract::extract_text_from_mem(&pdf)
        .unwrap()
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    assert!(
        text.contains("文書指定医"),
        "the 審査会 print names the doctor"
    );
}

#[tokio::test]
async fn a_new_sheet_or_a_renewal_sent_twice_makes_one_sheet() {
    let (t, _reviewer, doctor, ids) = site().await;
    let n = &t.node;
    let before = n.sheet_ids().await.unwrap().len();
    let app = nsdb::http::router(n.clone());
    let (cookie, _) = ui_login(&app, "doctor", "/sheets").await;
    let (_, page) = send(&app, Method::GET, "/sheets/new", &cookie, "").await;
    let page = String::from_utf8(page).unwrap();
    let hidden = |name: &str| {
        let marker = format!("name=\"{name}\" value=\"");
        let at = page.find(&marker).unwrap_or_else(|| panic!("{name}")) + marker.len();
        page[at..at + page[at..].find('"').unwrap()].to_string()
    };
    let form = serde_urlencoded::to_string([
        ("csrf", hidden("csrf").as_str()),
        ("form_id", hidden("form_id").as_str()),
        ("sheet", hidden("sheet").as_str()),
    ])
    .unwrap();
    let mut opened = Vec::new();
    for _ in 0..2 {
        let res = app
            .clone()
            .oneshot(
                Request::post("/sheets")
                    .header(header::COOKIE, cookie.as_str())
                    .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .body(Body::from(form.clone()))
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
        opened.push(
            res.headers()[header::LOCATION]
                .to_str()
                .unwrap()
                .to_string(),
        );
    }
    assert_eq!(
        opened[0], opened[1],
        "the second send opens the first's sheet"
    );
    assert_eq!(n.sheet_ids().await.unwrap().len(), before + 1);

    // 更新登録 twice: one renewal, opened again while it is open.
    let first = n.carry_forward(&doctor, &ids[0]).await.unwrap();
    let again = n.carry_forward(&doctor, &ids[0]).await.unwrap();
    assert_eq!(first.row.id, again.row.id);
    assert_eq!(n.sheet_ids().await.unwrap().len(), before + 2);
}
