//! The 責任者's and every user's account screens in a real browser (Chromium through
//! chromium-driver): the second factor signs in right after enrolment, and 再認証 before a
//! download returns the user to the page they were on.

use std::time::Duration;

use fantoccini::Locator;
use fantoccini::key::Key;
use nsdb::config::NodeRole;
use nsdb::testing::TestNode;

mod browser_support;
use browser_support::{browser, click, driver, text_of, type_into, wait_for, wait_text, wait_url};

/// What an authenticator app shows now for `secret` (base32 as the enrolment page shows it),
/// computed with totp-rs as an app would: SHA-1, 6 digits, 30-second steps.
fn app_code(secret: &str) -> String {
    let bytes = totp_rs::Secret::Encoded(secret.trim().to_string())
        .to_bytes()
        .expect("a base32 secret");
    let totp = totp_rs::TOTP::new_unchecked(
        totp_rs::Algorithm::SHA1,
        6,
        1,
        30,
        bytes,
        None,
        String::new(),
    );
    totp.generate_current().expect("the system clock")
}

/// Seconds left in the current 30-second step.
fn left_in_step() -> u64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    30 - now % 30
}

async fn audit_count(t: &TestNode, action: &'static str) -> i64 {
    t.node
        .store
        .read(move |c| {
            c.query_row(
                "SELECT count(*) FROM audit WHERE action = ?1",
                [action],
                |r| r.get(0),
            )
            .map_err(nsdb::Error::from)
        })
        .await
        .unwrap()
}

/// Found in a trial: right after enrolment, the code the app showed was refused at sign-in.
/// A user enrols, signs out and signs in at once with the code the app shows — within the
/// same 30-second step as the enrolment's code.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_signs_in_with_the_second_factor_right_after_enrolling_it() {
    let Some(d) = driver().await else { return };
    let t = TestNode::start(NodeRole::Hospital).await;
    let c = browser(&d).await;
    // Start early in a step, so that enrolment and sign-in share it.
    if left_in_step() < 15 {
        tokio::time::sleep(Duration::from_secs(left_in_step() + 1)).await;
    }
    c.goto(&t.url("/login")).await.unwrap();
    type_into(&c, "#login", "doctor").await;
    type_into(&c, "#password", &format!("demo{}", char::from(Key::Enter))).await;
    wait_url(&c, "/sheets").await;
    c.find(Locator::LinkText("2段階認証の設定"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_url(&c, "/account/totp").await;
    let secret = text_of(&c, "#totp-secret").await;
    let enrolment_code = app_code(&secret);
    type_into(
        &c,
        "#code",
        &format!("{enrolment_code}{}", char::from(Key::Enter)),
    )
    .await;
    let done = text_of(&c, "p.notice").await;
    assert!(done.contains("2段階認証を設定しました"), "{done}");

    click(&c, "header form[action='/logout'] button").await;
    wait_url(&c, "/login").await;
    type_into(&c, "#login", "doctor").await;
    type_into(&c, "#password", &format!("demo{}", char::from(Key::Enter))).await;
    wait_for(&c, "form[action='/login/code'] #code").await;
    let code = app_code(&secret);
    type_into(&c, "#code", &format!("{code}{}", char::from(Key::Enter))).await;
    wait_url(&c, "/sheets").await;
    assert_eq!(audit_count(&t, "totp_failed").await, 0);
    c.close().await.unwrap();
}

/// 再認証 before a download (the IDパスワード通知書, made at that moment) brings the 責任者
/// back to the user search, which says to press the button again; the second press
/// downloads without leaving the page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reauthentication_before_a_download_returns_to_the_page_it_was_asked_from() {
    let Some(d) = driver().await else { return };
    let t = TestNode::start(NodeRole::Hospital).await;
    let c = browser(&d).await;
    c.goto(&t.url("/login")).await.unwrap();
    type_into(&c, "#login", "admin").await;
    type_into(&c, "#password", &format!("demo{}", char::from(Key::Enter))).await;
    wait_url(&c, "/admin/users").await;
    wait_text(&c, "main h1", "医療機関ユーザ検索").await;

    // Five minutes later.
    let old = t.node.clock.now_ms() - nsdb::accounts::REAUTH_WINDOW_MS - 1000;
    t.node
        .store
        .write(move |conn| {
            conn.execute("UPDATE sessions SET reauth_at = ?1", [old])
                .map_err(nsdb::Error::from)
        })
        .await
        .unwrap();
    let clerk_notice = "form[action$='/notice'] button";
    let rows = c.find_all(Locator::Css(clerk_notice)).await.unwrap();
    assert!(!rows.is_empty());
    rows[0].click().await.unwrap();
    wait_text(&c, "main h1", "再認証").await;
    type_into(
        &c,
        "#reauth-password",
        &format!("demo{}", char::from(Key::Enter)),
    )
    .await;
    wait_url(&c, "/admin/users").await;
    wait_text(&c, "main h1", "医療機関ユーザ検索").await;
    let notice = text_of(&c, "p.flash").await;
    assert!(notice.contains("もう一度ボタンを押すと"), "{notice}");
    assert_eq!(
        audit_count(&t, "user_notice").await,
        0,
        "nothing issued yet"
    );

    let rows = c.find_all(Locator::Css(clerk_notice)).await.unwrap();
    rows[0].click().await.unwrap();
    for _ in 0..50 {
        if audit_count(&t, "user_notice").await == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(audit_count(&t, "user_notice").await, 1);
    let url = c.current_url().await.unwrap();
    assert!(url.path().ends_with("/admin/users"), "{url}");
    wait_text(&c, "main h1", "医療機関ユーザ検索").await;
    c.close().await.unwrap();
}

/// Found in a trial: 削除 acted on one click. Now the click shows a 確認 page saying what
/// happens to whom; キャンセル returns to the same filtered search with nothing changed, and
/// only the second, deliberate submit (here from the keyboard) deletes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deletion_is_confirmed_on_its_own_page_and_cancel_keeps_the_search() {
    let Some(d) = driver().await else { return };
    let t = TestNode::start(NodeRole::Hospital).await;
    let c = browser(&d).await;
    c.goto(&t.url("/login")).await.unwrap();
    type_into(&c, "#login", "admin").await;
    type_into(&c, "#password", &format!("demo{}", char::from(Key::Enter))).await;
    wait_url(&c, "/admin/users").await;
    c.goto(&t.url("/admin/users?kind=clerk")).await.unwrap();
    wait_for(&c, "table.list").await;
    assert!(text_of(&c, "table.list").await.contains("田中 花子"));

    click(&c, "form[action$='/delete'] button").await;
    wait_text(&c, "main h1", "削除の確認").await;
    let said = text_of(&c, "main").await;
    assert!(
        said.contains("clerk/ 田中 花子（医療クラーク等）"),
        "{said}"
    );
    assert!(said.contains("ログインできなくなり"), "{said}");
    assert_eq!(audit_count(&t, "user_delete").await, 0);

    click(&c, "main a.button").await;
    wait_url(&c, "/admin/users?kind=clerk").await;
    wait_text(&c, "main h1", "医療機関ユーザ検索").await;
    assert!(text_of(&c, "table.list").await.contains("田中 花子"));
    assert_eq!(audit_count(&t, "user_delete").await, 0);

    click(&c, "form[action$='/delete'] button").await;
    wait_text(&c, "main h1", "削除の確認").await;
    // The keyboard: to the button that deletes, then Enter.
    let confirm = wait_for(&c, "main form button.primary").await;
    assert_eq!(confirm.text().await.unwrap(), "削除する");
    confirm
        .send_keys(&char::from(Key::Enter).to_string())
        .await
        .unwrap();
    wait_url(&c, "/admin/users?kind=clerk").await;
    let notice = text_of(&c, "p.flash").await;
    assert!(notice.contains("アカウントを削除しました"), "{notice}");
    assert!(!text_of(&c, "main").await.contains("田中 花子"));
    assert_eq!(audit_count(&t, "user_delete").await, 1);
    c.close().await.unwrap();
}
