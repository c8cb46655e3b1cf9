//! The editor for all-day keyboard use in a real browser (issue 11, items 2, 6 and 7): the focus
//! comes back to the field after a save, the editor opens in its first field, a message's link
//! opens the tab of its field, dates are typed in 和暦 and shown back that way, and a save that
//! never reached the server gives the typing back.
//!
//! Needs `/usr/bin/chromium` and `/usr/bin/chromedriver` (Debian packages chromium and
//! chromium-driver; `.ci/run` installs them). Without them the test fails when `CI=true` and says
//! it was skipped otherwise. The harness is `browser_support`, shared with `browser.rs`.

use fantoccini::key::Key;
use fantoccini::{Client, Locator};
use nsdb::config::NodeRole;
use nsdb::testing::TestNode;

mod browser_support;
use browser_support::{
    browser, click, driver, mark_page, sign_in, text_of, type_into, wait_for, wait_notice, wait_url,
};

/// A sheet of パーキンソン病 made by `login` through the domain, with `values`; its id.
async fn draft(t: &TestNode, login: &str, values: &[(&str, &str)]) -> String {
    let who = t.node.login(login, "demo").await.unwrap().principal;
    let values = values
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    t.node
        .create_sheet(&who, "rinko-006", &values)
        .await
        .unwrap()
        .row
        .id
}

/// The id of the element that has the focus.
async fn focused(c: &Client) -> String {
    c.execute(
        "return document.activeElement ? document.activeElement.id : ''",
        vec![],
    )
    .await
    .unwrap()
    .as_str()
    .unwrap_or_default()
    .to_string()
}

/// Issue 11 item 6: after 一時保存 the focus is back in the field the user was in, on its tab.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_save_the_focus_returns_to_the_field_the_user_was_in() {
    let Some(d) = driver().await else { return };
    let t = TestNode::start(NodeRole::Hospital).await;
    let id = draft(&t, "clerk", &[("patient.name", "焦点 戻子")]).await;
    let c = browser(&d).await;
    sign_in(&c, &t, "clerk").await;
    c.goto(&t.url(&format!("/sheets/{id}/edit"))).await.unwrap();

    // The editor opens with the focus in the first field: typing starts at once.
    wait_for(&c, "#sheet").await;
    let first = focused(&c).await;
    assert!(
        first.starts_with("f-application"),
        "focus when the editor opens: {first}"
    );
    // From the top of the page the skip link still leads there.
    let skip = c.find(Locator::Css("a.skip")).await.unwrap();
    assert_eq!(
        skip.prop("textContent").await.unwrap().unwrap_or_default(),
        "最初の入力欄へ移動"
    );

    type_into(&c, "#f-patient-address", "東京都千代田区霞が関1-2-2").await;
    mark_page(&c).await;
    click(&c, "button[value='save']").await;
    wait_notice(&c, "一時保存しました。").await;
    wait_for(&c, "p.notice").await;
    assert_eq!(focused(&c).await, "f-patient-address");
    assert!(
        wait_for(&c, "#f-patient-address")
            .await
            .is_displayed()
            .await
            .unwrap(),
        "the field's tab is open"
    );
    c.close().await.unwrap();
}

/// Issue 11 item 6: a link in the message summary opens the tab of its field and focuses it;
/// each tab shows how many messages it holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_link_opens_the_tab_of_its_field_and_focuses_it() {
    let Some(d) = driver().await else { return };
    let t = TestNode::start(NodeRole::Hospital).await;
    let id = draft(&t, "clerk", &[("patient.postal_code", "12")]).await;
    let c = browser(&d).await;
    sign_in(&c, &t, "clerk").await;
    c.goto(&t.url(&format!("/sheets/{id}/edit"))).await.unwrap();
    let postal = wait_for(&c, "#f-patient-postal_code").await;
    assert!(
        !postal.is_displayed().await.unwrap(),
        "the field starts on a tab that is not shown"
    );
    let tab = text_of(&c, "nav.sections a[href='#s-patient']").await;
    assert!(tab.contains("⚠1件"), "the tab counts its messages: {tab}");
    c.find(Locator::Css(
        "section.messages a[href='#f-patient-postal_code']",
    ))
    .await
    .unwrap()
    .click()
    .await
    .unwrap();
    assert!(postal.is_displayed().await.unwrap(), "the tab is open");
    assert_eq!(focused(&c).await, "f-patient-postal_code");
    c.close().await.unwrap();
}

async fn value_of(c: &Client, css: &str) -> String {
    wait_for(c, css)
        .await
        .prop("value")
        .await
        .unwrap()
        .unwrap_or_default()
}

/// Issue 11 item 7: a date typed in 和暦 is stored as the date and shown back in 和暦; the
/// era boundary is the official one (平成 ends on 2019-04-30).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dates_typed_in_wareki_are_kept_and_shown_back_in_wareki() {
    let Some(d) = driver().await else { return };
    let t = TestNode::start(NodeRole::Hospital).await;
    let id = draft(&t, "clerk", &[("patient.name", "和暦 入力")]).await;
    let c = browser(&d).await;
    sign_in(&c, &t, "clerk").await;
    c.goto(&t.url(&format!("/sheets/{id}/edit"))).await.unwrap();
    type_into(&c, "#f-basic-diagnosis_date", "R5.4.1").await;
    type_into(&c, "#f-patient-birth_date", "平成31年4月30日").await;
    mark_page(&c).await;
    click(&c, "button[value='save']").await;
    wait_notice(&c, "一時保存しました。").await;
    assert_eq!(
        value_of(&c, "#f-basic-diagnosis_date").await,
        "令和5年4月1日"
    );
    assert_eq!(
        value_of(&c, "#f-patient-birth_date").await,
        "平成31年4月30日"
    );
    let clerk = t.node.login("clerk", "demo").await.unwrap().principal;
    let stored = t.node.get_sheet(&clerk, &id).await.unwrap().items;
    assert_eq!(stored["basic.diagnosis_date"], "2023-04-01");
    assert_eq!(stored["patient.birth_date"], "2019-04-30");

    // A date past its era is refused with the boundary; the next day is 令和元年5月1日.
    type_into(&c, "#f-patient-birth_date", "平成31年5月1日").await;
    mark_page(&c).await;
    click(&c, "button[value='save']").await;
    wait_notice(&c, "一時保存しました。").await;
    let messages = text_of(&c, "section.messages").await;
    assert!(
        messages.contains("2019年4月30日まで") && messages.contains("令和元年5月1日"),
        "{messages}"
    );
    type_into(&c, "#f-patient-birth_date", "令和元年5月1日").await;
    mark_page(&c).await;
    click(&c, "button[value='save']").await;
    wait_notice(&c, "一時保存しました。").await;
    assert_eq!(
        value_of(&c, "#f-patient-birth_date").await,
        "令和元年5月1日"
    );

    // Every date field's hint says what it takes: both 和暦 and 西暦, never 西暦 alone.
    for hint in ["#f-patient-birth_date-help", "#f-basic-onset-help"] {
        // Read as textContent: a field on another tab is hidden, and hidden text reads empty.
        let text = c
            .find(Locator::Css(hint))
            .await
            .unwrap()
            .prop("textContent")
            .await
            .unwrap()
            .unwrap_or_default();
        assert!(
            text.contains("和暦") && text.contains("西暦"),
            "{hint}: {text}"
        );
        assert!(!text.contains("西暦で記入"), "{hint}: {text}");
    }
    // The display choice says what it does and marks the current one.
    let style = text_of(&c, "p.date-style").await;
    assert!(style.starts_with("日付の表示:"), "{style}");
    assert_eq!(
        text_of(&c, "a.date-choice[aria-current='true']").await,
        "✓ 和暦"
    );
    // The user may go back to 西暦 by keyboard (the link may sit under the sticky bar).
    c.find(Locator::Css("a.date-choice[href$='dates=western']"))
        .await
        .unwrap()
        .send_keys(&char::from(Key::Enter).to_string())
        .await
        .unwrap();
    wait_url(&c, "dates=western").await;
    assert_eq!(value_of(&c, "#f-patient-birth_date").await, "2019-05-01");
    assert_eq!(
        text_of(&c, "a.date-choice[aria-current='true']").await,
        "✓ 西暦"
    );
    c.close().await.unwrap();
}

/// Presses 一時保存 while the node does not answer (the browser shows its own error page, the
/// editor is gone), then brings the node back at the same address.
async fn save_while_the_node_is_away(c: &Client, t: &mut TestNode) {
    t.stop_serving().await;
    click(c, "button[value='save']").await;
    for _ in 0..100 {
        if c.find(Locator::Css("#sheet")).await.is_err() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    t.serve_again().await;
}

/// Issue 11 item 2: a save that never reaches the server (the node gone: the browser shows its
/// own error page) loses nothing. Back on the editor, the typing is there, the page says the save
/// did not go through, and leaving asks again; opened again in the tab after someone else saved,
/// the editor puts the typing back over the newer page and keeps the other's change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_save_that_never_reached_the_server_gives_the_typing_back() {
    let Some(d) = driver().await else { return };
    let mut t = TestNode::start(NodeRole::Hospital).await;
    let id = draft(&t, "clerk", &[("patient.name", "不達 保存")]).await;
    let c = browser(&d).await;
    sign_in(&c, &t, "clerk").await;
    let edit = t.url(&format!("/sheets/{id}/edit"));
    c.goto(&edit).await.unwrap();
    type_into(&c, "#f-patient-address", "届かなかった住所").await;
    save_while_the_node_is_away(&c, &mut t).await;

    // Back to the editor: the typing is there, the page says so, and leaving asks again.
    c.back().await.unwrap();
    let said = text_of(&c, "#restored").await;
    assert!(said.contains("前回の保存"), "{said}");
    assert_eq!(value_of(&c, "#f-patient-address").await, "届かなかった住所");
    click(
        &c,
        ".toolbar a.button[href$='/sheets/{id}']"
            .replace("{id}", &id)
            .as_str(),
    )
    .await;
    let asked = c.get_alert_text().await.expect("leaving asks again");
    assert!(asked.contains("保存していない"), "{asked}");
    c.dismiss_alert().await.unwrap();

    // The doctor saves another item meanwhile; the editor opened afresh in the tab puts the
    // clerk's typing back over the newer page, and the save keeps both.
    let doctor = t.node.login("doctor", "demo").await.unwrap().principal;
    let now = t.node.get_sheet(&doctor, &id).await.unwrap();
    let typed = [("patient.name_kana".to_string(), "フタツ ホゾン".to_string())].into();
    t.node
        .update_sheet_since(&doctor, &id, &now.version, &typed)
        .await
        .expect("the doctor saves");
    c.goto(&edit).await.unwrap();
    let said = text_of(&c, "#restored").await;
    assert!(said.contains("他の人が保存した内容はそのまま"), "{said}");
    assert_eq!(value_of(&c, "#f-patient-address").await, "届かなかった住所");
    assert_eq!(value_of(&c, "#f-patient-name_kana").await, "フタツ ホゾン");
    mark_page(&c).await;
    click(&c, "button[value='save']").await;
    wait_notice(&c, "一時保存しました。").await;
    let stored = t.node.get_sheet(&doctor, &id).await.unwrap();
    assert_eq!(stored.items["patient.address"], "届かなかった住所");
    assert_eq!(stored.items["patient.name_kana"], "フタツ ホゾン");
    assert!(stored.conflicts.is_empty(), "{:?}", stored.conflicts);
    // Saved: the copy is gone, and the editor opens without the note.
    c.goto(&edit).await.unwrap();
    wait_for(&c, "#sheet").await;
    assert!(c.find(Locator::Css("#restored")).await.is_err());
    c.close().await.unwrap();
}

/// Issue 11 item 2: typing whose save never reached the server, on a sheet registered
/// meanwhile, is listed on the sheet's view with its items' labels until the user lets it go.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typing_not_saved_before_the_sheet_was_registered_is_listed_on_its_view() {
    let Some(d) = driver().await else { return };
    let mut t = TestNode::start(NodeRole::Hospital).await;
    let doctor = t.node.login("doctor", "demo").await.unwrap().principal;
    let values = nsdb::testing::required_values(&t.node, "rinko-006", "トウロク マエ");
    let id = t
        .node
        .create_sheet(&doctor, "rinko-006", &values)
        .await
        .unwrap()
        .row
        .id;
    let c = browser(&d).await;
    sign_in(&c, &t, "clerk").await;
    let edit = t.url(&format!("/sheets/{id}/edit"));
    c.goto(&edit).await.unwrap();
    type_into(&c, "#f-patient-address", "登録前の住所").await;
    save_while_the_node_is_away(&c, &mut t).await;
    t.node
        .step(&doctor, &id, nsdb::sheets::workflow::Step::Register)
        .await
        .expect("registered meanwhile");
    c.goto(&edit).await.unwrap();
    let listed = text_of(&c, "#unsaved").await;
    assert!(
        listed.contains("保存されなかった入力") && listed.contains("「住所」: 登録前の住所"),
        "{listed}"
    );
    click(&c, "#unsaved button").await;
    c.goto(&edit).await.unwrap();
    wait_for(&c, "main").await;
    assert!(c.find(Locator::Css("#unsaved")).await.is_err(), "let go");
    c.close().await.unwrap();
}

/// Issue 11 item 2: a save held over an expired session, signed in for by another user, is
/// neither saved under that user's name nor put into their fields: it is listed for them to see.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_save_typed_by_someone_else_is_listed_not_put_into_the_fields() {
    let Some(d) = driver().await else { return };
    let t = TestNode::start(NodeRole::Hospital).await;
    let id = draft(&t, "clerk", &[("patient.name", "共用 端末")]).await;
    let c = browser(&d).await;
    sign_in(&c, &t, "clerk").await;
    c.goto(&t.url(&format!("/sheets/{id}/edit"))).await.unwrap();
    type_into(&c, "#f-patient-address", "事務が打った住所").await;
    t.node
        .store
        .write(|conn| {
            conn.execute("DELETE FROM sessions", [])
                .map_err(nsdb::Error::from)
        })
        .await
        .unwrap();
    click(&c, "button[value='save']").await;
    wait_for(&c, "p.resume").await;
    assert!(
        c.find(Locator::Css("#unsaved")).await.is_err(),
        "the sign-in page holds the save: no note that it was lost"
    );
    type_into(&c, "#login", "doctor").await;
    type_into(&c, "#password", &format!("demo{}", char::from(Key::Enter))).await;
    let listed = text_of(&c, "#unsaved").await;
    assert!(
        listed.contains("別の利用者") && listed.contains("「住所」: 事務が打った住所"),
        "{listed}"
    );
    assert_eq!(value_of(&c, "#f-patient-address").await, "");
    let doctor = t.node.login("doctor", "demo").await.unwrap().principal;
    let stored = t.node.get_sheet(&doctor, &id).await.unwrap().items;
    assert!(!stored.contains_key("patient.address"), "{stored:?}");
    c.close().await.unwrap();
}
