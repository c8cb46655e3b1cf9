//! Sign-in as an attacker meets it: the account lock after repeated wrong passwords and its
//! cool-down, the same answer for locked, expired and wrong, the per-address limit, the idle
//! timeout and the limit of sessions per user. Through the node's router, in-process.

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use nsdb::accounts::{LOCK_AFTER_FAILURES, MAX_SESSIONS_PER_USER, SESSION_IDLE_MS};
use nsdb::config::NodeRole;
use nsdb::testing::TestNode;
use serde_json::{Value, json};
use tower::ServiceExt;

async fn call(
    app: &Router,
    method: Method,
    uri: &str,
    token: Option<&str>,
    body: Value,
) -> (StatusCode, String, Option<String>) {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(t) = token {
        req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    let res = app
        .clone()
        .oneshot(
            req.header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(body.to_string()))
                .unwrap(),
        )
        .await
        .unwrap();
    let status = res.status();
    let retry = res
        .headers()
        .get(header::RETRY_AFTER)
        .map(|v| v.to_str().unwrap().to_string());
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned(), retry)
}

async fn sign_in(app: &Router, login: &str, password: &str) -> (StatusCode, String) {
    let (s, b, _) = call(
        app,
        Method::POST,
        "/api/v1/session",
        None,
        json!({"login": login, "password": password}),
    )
    .await;
    (s, b)
}

fn token(body: &str) -> String {
    let v: Value = serde_json::from_str(body).unwrap();
    v["token"].as_str().unwrap().to_string()
}

async fn sql(t: &TestNode, statement: &'static str) {
    t.node
        .store
        .write(move |c| c.execute_batch(statement).map_err(nsdb::Error::from))
        .await
        .unwrap();
}

#[tokio::test]
async fn ten_wrong_passwords_lock_the_account_for_the_cool_down_and_the_answer_never_tells() {
    let t = TestNode::start(NodeRole::Hospital).await;
    let app = nsdb::http::router(t.node.clone());
    let (s, wrong) = sign_in(&app, "doctor", "wrong-password").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    for _ in 1..LOCK_AFTER_FAILURES {
        let (s, b) = sign_in(&app, "doctor", "wrong-password").await;
        assert_eq!((s, b.as_str()), (StatusCode::UNAUTHORIZED, wrong.as_str()));
    }
    // Locked now: the right password gets exactly the wrong password's answer.
    let (s, b) = sign_in(&app, "doctor", "demo").await;
    assert_eq!((s, b.as_str()), (StatusCode::UNAUTHORIZED, wrong.as_str()));
    let (_, unknown) = sign_in(&app, "nobody", "demo").await;
    assert_eq!(unknown, wrong, "an unknown login answers alike");
    assert!(wrong.contains("10回続けて間違えると15分間"), "{wrong}");
    // Another account is not affected.
    assert_eq!(sign_in(&app, "clerk", "demo").await.0, StatusCode::CREATED);
    // After the cool-down the right password signs in again.
    sql(
        &t,
        "UPDATE users SET locked_until = 1 WHERE login = 'doctor'",
    )
    .await;
    assert_eq!(sign_in(&app, "doctor", "demo").await.0, StatusCode::CREATED);
    // A success starts the count again: nine wrong ones do not lock.
    for _ in 1..LOCK_AFTER_FAILURES {
        sign_in(&app, "doctor", "wrong-password").await;
    }
    let app = nsdb::http::router(t.node.clone());
    assert_eq!(sign_in(&app, "doctor", "demo").await.0, StatusCode::CREATED);
}

#[tokio::test]
async fn a_locked_or_expired_account_answers_like_a_wrong_password() {
    let t = TestNode::start(NodeRole::Hospital).await;
    let app = nsdb::http::router(t.node.clone());
    let (_, wrong) = sign_in(&app, "doctor", "wrong-password").await;
    sql(&t, "UPDATE users SET locked = 1 WHERE login = 'doctor'").await;
    assert_eq!(
        sign_in(&app, "doctor", "demo").await,
        (StatusCode::UNAUTHORIZED, wrong.clone())
    );
    assert_eq!(
        sign_in(&app, "doctor", "wrong-password").await,
        (StatusCode::UNAUTHORIZED, wrong.clone())
    );
    sql(
        &t,
        "UPDATE users SET expires_on = '2001-03-31' WHERE login = 'clerk'",
    )
    .await;
    assert_eq!(
        sign_in(&app, "clerk", "demo").await,
        (StatusCode::UNAUTHORIZED, wrong.clone())
    );
    // The audit log keeps the reason the person was not told.
    let reasons: Vec<String> = t
        .node
        .store
        .read(|c| {
            let mut st =
                c.prepare("SELECT detail FROM audit WHERE action = 'login_failed' ORDER BY seq")?;
            let rows = st
                .query_map([], |r| r.get::<_, String>(0))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok::<_, nsdb::Error>(rows)
        })
        .await
        .unwrap();
    assert_eq!(
        reasons,
        ["wrong password", "locked", "wrong password", "expired"]
    );
}

#[tokio::test]
async fn one_address_gets_twenty_sign_ins_then_is_told_to_wait() {
    let t = TestNode::start(NodeRole::Hospital).await;
    let app = nsdb::http::router(t.node.clone());
    let started = std::time::Instant::now();
    let (mut allowed, mut refused) = (0u64, 0u64);
    for i in 0..40 {
        // Different logins: the limit is per address, not per account.
        let (s, _, retry) = call(
            &app,
            Method::POST,
            "/api/v1/session",
            None,
            json!({"login": format!("guess{i}"), "password": "wrong-password"}),
        )
        .await;
        match s {
            StatusCode::UNAUTHORIZED => allowed += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                assert!(retry.is_some_and(|r| r.parse::<u64>().unwrap() >= 1));
                refused += 1;
            }
            other => panic!("attempt {i}: {other}"),
        }
    }
    // Twenty at once, then one more every three seconds the attempts took.
    let refills = started.elapsed().as_secs() / 3 + 1;
    assert!(
        (20..=20 + refills).contains(&allowed),
        "{allowed} allowed in {:?}",
        started.elapsed()
    );
    assert!(refused > 0);
    // The sign-in page says the same in Japanese.
    let res = app
        .clone()
        .oneshot(
            Request::post("/login")
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Body::from("csrf=x&login=doctor&password=demo"))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    let page = res.into_body().collect().await.unwrap().to_bytes();
    assert!(String::from_utf8_lossy(&page).contains("待ってから"));
}

#[tokio::test]
async fn a_session_ends_after_thirty_idle_minutes() {
    let t = TestNode::start(NodeRole::Hospital).await;
    let app = nsdb::http::router(t.node.clone());
    let (_, body) = sign_in(&app, "doctor", "demo").await;
    let tok = token(&body);
    let (s, _, _) = call(&app, Method::GET, "/api/v1/sheets", Some(&tok), Value::Null).await;
    assert_eq!(s, StatusCode::OK);
    let idle = SESSION_IDLE_MS;
    let now = t.node.clock.now_ms();
    t.node
        .store
        .write(move |c| {
            c.execute("UPDATE sessions SET last_seen = ?1", [now - idle - 1000])
                .map_err(nsdb::Error::from)
        })
        .await
        .unwrap();
    let (s, _, _) = call(&app, Method::GET, "/api/v1/sheets", Some(&tok), Value::Null).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "an idle session still works");
}

#[tokio::test]
async fn a_sixth_sign_in_ends_the_oldest_session() {
    let t = TestNode::start(NodeRole::Hospital).await;
    let app = nsdb::http::router(t.node.clone());
    let mut tokens = Vec::new();
    for _ in 0..=MAX_SESSIONS_PER_USER {
        let (s, body) = sign_in(&app, "doctor", "demo").await;
        assert_eq!(s, StatusCode::CREATED);
        tokens.push(token(&body));
    }
    let mut live = Vec::new();
    for tok in &tokens {
        let (s, _, _) = call(&app, Method::GET, "/api/v1/sheets", Some(tok), Value::Null).await;
        live.push(s == StatusCode::OK);
    }
    assert_eq!(live, [false, true, true, true, true, true]);
}

/// Wrong-password sign-ins through the node's real listener, each naming `forwarded` in
/// `X-Forwarded-For`: how many were answered 401 before the first 429 (None: never limited).
async fn allowed_before_the_limit(
    t: &TestNode,
    forwarded: &dyn Fn(usize) -> String,
) -> Option<u32> {
    let http = reqwest::Client::new();
    for i in 0..(nsdb::http::shared::sign_in_limit::BURST as usize + 10) {
        let res = http
            .post(t.url("/api/v1/session"))
            .header("x-forwarded-for", forwarded(i))
            .header("content-type", "application/json")
            .body(json!({"login": "doctor", "password": "wrong-password"}).to_string())
            .send()
            .await
            .unwrap();
        match res.status() {
            reqwest::StatusCode::UNAUTHORIZED => {}
            reqwest::StatusCode::TOO_MANY_REQUESTS => return Some(i as u32),
            other => panic!("attempt {i}: {other}"),
        }
    }
    None
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_forwarded_client_is_limited_and_no_one_else_chooses_an_address()
 {
    let mut t = TestNode::start(NodeRole::Hospital).await;
    // The default trusts no proxy: a client naming a new address in every request is still
    // one address, limited after its burst.
    let spoofed = allowed_before_the_limit(&t, &|i| format!("198.51.100.{i}")).await;
    assert!(
        spoofed.is_some(),
        "a forged X-Forwarded-For escaped the limit"
    );
    // The node behind a proxy on loopback (the test's own address): each client the proxy
    // names has an allowance of its own, and one client using it up leaves the others theirs.
    t.reopen_with(|c| c.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()])
        .await;
    let first = allowed_before_the_limit(&t, &|_| "203.0.113.7".into()).await;
    assert!(
        first.is_some(),
        "one client behind the proxy was never limited"
    );
    // A client forging an entry to the left of the proxy's is still the address the proxy saw.
    let forged = allowed_before_the_limit(&t, &|i| format!("192.0.2.{i}, 203.0.113.7")).await;
    assert_eq!(forged, Some(0), "the forged left-hand entry was believed");
    let other = allowed_before_the_limit(&t, &|_| "203.0.113.8".into()).await;
    assert!(
        other.is_some_and(|n| n >= 15),
        "another client behind the proxy lost its allowance: {other:?}"
    );
}
