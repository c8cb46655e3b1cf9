//! The web UI in a real browser (Debian's headless Chromium through chromedriver): a doctor
//! signs in, writes a sheet, saves it and finds it in the list, with the keyboard where a
//! clerk would use it; a clerk uploads sealed files on 一括登録 and reads the result table; a
//! clinic's doctor works on the hub and sees only the clinic's sheets; a 責任者 enrols the
//! second factor, signs in with a code and passes 再認証.
//!
//! Needs `/usr/bin/chromium` and `/usr/bin/chromedriver` (Debian packages chromium and
//! chromium-driver; `.ci/run` installs them). Without them the test fails when `CI=true` and says
//! it was skipped otherwise.

use std::time::Duration;

use fantoccini::key::Key;
use fantoccini::{Client, Locator};
use nsdb::config::NodeRole;
use nsdb::testing::TestNode;

mod browser_support;
use browser_support::{
    browser, click, driver, sign_in, text_of, type_into, wait_for, wait_notice, wait_text, wait_url,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_doctor_signs_in_writes_a_sheet_saves_it_and_finds_it_in_the_list() {
    let Some(d) = driver().await else { return };
    let t = TestNode::start_with_sheets(NodeRole::Hospital, 5).await;
    let c = browser(&d).await;

    c.goto(&t.url("/sheets")).await.unwrap();
    assert!(c.current_url().await.unwrap().path().ends_with("/login"));
    // Keyboard only: the login field has focus; type, tab, type, enter.
    c.find(Locator::Id("login"))
        .await
        .unwrap()
        .send_keys("doctor")
        .await
        .unwrap();
    c.find(Locator::Id("password"))
        .await
        .unwrap()
        .send_keys(&format!("demo{}", char::from(Key::Enter)))
        .await
        .unwrap();
    wait_url(&c, "/sheets").await;
    let h1 = text_of(&c, "main h1").await;
    assert_eq!(h1, "臨床調査個人票検索");
    assert!(text_of(&c, "p.count").await.contains("5件"));

    c.find(Locator::LinkText("新規作成"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    c.wait()
        .for_element(Locator::Css(
            "form[action='/sheets']:has(input[name='form_id'][value='rinko-006']) button",
        ))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_url(&c, "/edit").await;
    let title = text_of(&c, "main h1").await;
    assert!(title.contains("パーキンソン病"), "{title}");

    type_into(&c, "#f-patient-name", "試験 ブラウザ").await;
    type_into(&c, "#f-patient-name_kana", "ｼｹﾝ ﾌﾞﾗｳｻﾞ").await;
    type_into(&c, "#f-patient-postal_code", "1234").await;
    click(&c, "input[name='patient.sex'][value='2']").await;
    click(&c, "button[value='save']").await;
    wait_notice(&c, "一時保存しました。").await;
    wait_text(&c, "p.notice", "一時保存しました。").await;
    // What was typed is there, the kana normalised, the bad postal code kept and flagged.
    let kana = c
        .find(Locator::Id("f-patient-name_kana"))
        .await
        .unwrap()
        .prop("value")
        .await
        .unwrap();
    assert_eq!(kana.as_deref(), Some("シケン ブラウザ"));
    let postal = c.find(Locator::Id("f-patient-postal_code")).await.unwrap();
    assert_eq!(
        postal.attr("aria-invalid").await.unwrap().as_deref(),
        Some("true")
    );
    assert!(text_of(&c, "section.messages").await.contains("郵便番号"));

    let png = c.screenshot().await.unwrap();
    let _ = std::fs::write(std::env::temp_dir().join("nsdb-browser-editor.png"), png);

    c.goto(&t.url("/sheets")).await.unwrap();
    let q = c.find(Locator::Id("q")).await.unwrap();
    q.send_keys(&format!("シケン{}", char::from(Key::Enter)))
        .await
        .unwrap();
    wait_url(&c, "q=").await;
    assert!(text_of(&c, "p.count").await.contains("1件"));
    let row = text_of(&c, "table.list tbody tr").await;
    assert!(row.contains("シケン ブラウザ"), "{row}");
    assert!(row.contains("女性") && row.contains("一時保存"), "{row}");
    c.close().await.unwrap();
}

/// One GET on loopback with a cookie, as the browser would send it; returns the body.
async fn http_get(addr: std::net::SocketAddr, path: &str, cookie: &str) -> Vec<u8> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nCookie: {cookie}\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.unwrap();
    let head_end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("an HTTP response");
    let head = String::from_utf8_lossy(&raw[..head_end]).to_string();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        !head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "{head}"
    );
    raw[head_end + 4..].to_vec()
}

async fn shot(c: &Client, name: &str) {
    if let Ok(png) = c.screenshot().await {
        let _ = std::fs::write(std::env::temp_dir().join(format!("nsdb-{name}.png")), png);
    }
}

/// The whole day of the editor issue: a clerk drafts and sends; the doctor finds it in the
/// workflow list, checks, fills, registers and approves; next year 更新登録 carries the values
/// and 差異 shows what changed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clerk_and_a_doctor_work_a_sheet_through_the_day_and_renew_it_next_year() {
    let Some(d) = driver().await else { return };
    let t = TestNode::start(NodeRole::Hospital).await;

    // The clerk drafts and sends it to the doctor with a comment.
    let clerk = browser(&d).await;
    sign_in(&clerk, &t, "clerk").await;
    clerk.goto(&t.url("/sheets/new")).await.unwrap();
    click(
        &clerk,
        "form[action='/sheets']:has(input[name='form_id'][value='rinko-006']) button",
    )
    .await;
    wait_url(&clerk, "/edit").await;
    type_into(&clerk, "#f-patient-name", "日常 花子").await;
    type_into(&clerk, "#f-patient-name_kana", "ニチジョウ ハナコ").await;
    type_into(&clerk, "#f-patient-birth_date", "1950-07-07").await;
    let doctor_option = clerk
        .find(Locator::XPath(
            "//select[@id='wf-to']/option[contains(., '鈴木 太郎')]",
        ))
        .await
        .unwrap();
    doctor_option.click().await.unwrap();
    type_into(
        &clerk,
        "#wf-comment",
        "登録内容のご確認をお願いいたします。",
    )
    .await;
    click(&clerk, "button[value='request']").await;
    wait_notice(&clerk, "指定医に確認を依頼しました。").await;
    assert!(
        text_of(&clerk, "p.notice")
            .await
            .contains("確認を依頼しました")
    );
    clerk.close().await.unwrap();

    // The doctor finds it in the workflow list.
    let doc = browser(&d).await;
    sign_in(&doc, &t, "doctor").await;
    doc.find(Locator::LinkText("ワークフロー"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_url(&doc, "/workflow").await;
    let row = text_of(&doc, "table.list tbody tr").await;
    assert!(
        row.contains("日常 花子") && row.contains("登録内容のご確認をお願いいたします。"),
        "{row}"
    );
    assert!(row.contains("田中 花子"), "{row}");
    doc.find(Locator::LinkText("編集"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_url(&doc, "/edit").await;
    let edit_url = doc.current_url().await.unwrap().to_string();
    let edit_url = edit_url.split('?').next().unwrap().to_string();

    // チェック highlights a missing required item and jumps to the first.
    click(&doc, "button[value='check']").await;
    wait_url(&doc, "check=1").await;
    let url = doc.current_url().await.unwrap();
    let first = url
        .fragment()
        .expect("the page jumps to the first item")
        .to_string();
    let first_field = doc.find(Locator::Id(&first)).await.unwrap();
    let flagged = match first_field.attr("aria-invalid").await.unwrap() {
        Some(v) => v,
        None => first_field
            .find(Locator::XPath("./ancestor::span[@aria-invalid][1]"))
            .await
            .unwrap()
            .attr("aria-invalid")
            .await
            .unwrap()
            .unwrap_or_default(),
    };
    assert_eq!(flagged, "true", "{first} is highlighted");
    assert!(
        text_of(&doc, "section.messages")
            .await
            .contains("申請種別を選択してください。")
    );
    shot(&doc, "check").await;

    // The doctor fills what is missing, registers and approves.
    for css in [
        "input[name='application.type'][value='1']",
        "input[name='application.attachments'][value='1']",
        "input[name='patient.sex'][value='2']",
        "input[name='diagnosis.a_rest_tremor'][value='1']",
        "input[name='severity.hoehn_yahr'][value='3']",
        "input[name='severity.life_function'][value='2']",
    ] {
        click(&doc, css).await;
    }
    type_into(&doc, "#f-doctor-number", "123456").await;
    // The criteria for Definite are met, but the doctor selects Probable.
    for css in [
        "input[name='diagnosis.a1_parkinsonism'][value='1']",
        "input[name='diagnosis.b1_imaging'][value='1']",
        "input[name='diagnosis.c2_exposure'][value='2']",
        "input[name='treatment.drug_response'][value='1']",
        "input[name='diagnosis.category'][value='2']",
    ] {
        click(&doc, css).await;
    }
    click(&doc, "button[value='save']").await;
    wait_notice(&doc, "一時保存しました。").await;
    // 一次判定表示 shows the disagreement; registering stays possible.
    let judgment_url = format!("{}/judgment", edit_url.trim_end_matches("/edit"));
    doc.goto(&judgment_url).await.unwrap();
    let messages = text_of(&doc, "section.messages").await;
    assert!(
        messages.contains("「Definite」が選択されていませんが、以下の条件が満たされています。"),
        "{messages}"
    );
    shot(&doc, "judgment").await;
    doc.goto(&edit_url).await.unwrap();
    click(&doc, "button[value='register']").await;
    wait_notice(&doc, "登録しました。").await;
    let meta = text_of(&doc, "dl.meta").await;
    assert!(meta.contains("登録済"), "{meta}");
    let key = doc
        .find(Locator::XPath(
            "//dl[contains(@class,'meta')]/dt[.='アクセスキー']/following-sibling::dd[1]",
        ))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(key.len(), 13, "an access key like 12345-67890-1: {key}");
    click(&doc, "form[action$='/approve'] button").await;
    wait_notice(&doc, "承認しました。").await;
    assert!(text_of(&doc, "dl.meta").await.contains("承認済"));
    shot(&doc, "approved").await;

    // 帳票出力: the PDF the browser gets holds the access key as text.
    let session = doc.get_named_cookie("nsdb_session").await.unwrap();
    let print_path = format!(
        "{}/print",
        edit_url
            .trim_end_matches("/edit")
            .trim_start_matches(&t.url(""))
    );
    let pdf = http_get(
        t.addr,
        &print_path,
        &format!("nsdb_session={}", session.value()),
    )
    .await;
    assert!(pdf.starts_with(b"%PDF"), "a PDF");
    let text = pdf_extract::extract_text_from_mem(&pdf).unwrap();
    assert!(text.contains(&key), "the PDF carries the access key {key}");

    // Next year: 更新登録 carries the values over; 差異 shows exactly what changed.
    let view_url = edit_url.trim_end_matches("/edit").to_string();
    doc.goto(&view_url).await.unwrap();
    click(&doc, "form[action$='/renew'] button").await;
    wait_notice(&doc, "前回の内容を引き継いで作成しました").await;
    assert!(text_of(&doc, "div.carried").await.contains("引き継いだ値"));
    let name = doc
        .find(Locator::Id("f-patient-name"))
        .await
        .unwrap()
        .prop("value")
        .await
        .unwrap();
    assert_eq!(name.as_deref(), Some("日常 花子"), "carried over");
    click(&doc, "input[name='diagnosis.a_rest_tremor'][value='2']").await;
    click(&doc, "button[value='save']").await;
    wait_notice(&doc, "一時保存しました。").await;
    doc.find(Locator::LinkText("差異"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_url(&doc, "/diff").await;
    let table = text_of(&doc, "table.diff").await;
    assert!(
        table.contains("申請種別") && table.contains("新規") && table.contains("更新"),
        "{table}"
    );
    assert!(
        table.contains("静止時振戦") || table.contains("安静時振戦") || table.contains("振戦"),
        "{table}"
    );
    assert!(
        !table.contains("氏名"),
        "unchanged carried items are not listed: {table}"
    );
    shot(&doc, "diff").await;
    doc.close().await.unwrap();
}

/// 一括登録: a clerk picks a folder's sealed files from the check tool, uploads them at once and
/// reads the result table: the good files are 取込成功, the changed one says why not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clerk_uploads_sealed_files_and_reads_the_result_table() {
    use nsdb_provisioning::sealed::{UserKey, seal};
    let Some(d) = driver().await else { return };
    let t = TestNode::start(NodeRole::Hospital).await;
    let user = UserKey::generate().unwrap();
    t.node
        .set_user_key("doctor", user.public_key())
        .await
        .unwrap();
    let hub = nsdb_provisioning::NodeIdentity::generate().unwrap();
    let to = nsdb::imports::key_info_request(&t.node.config, "2099-12-31")
        .unwrap()
        .sign(&hub)
        .verify(&hub.public_key().to_bytes(), "2026-01-01")
        .unwrap();
    let folder = tempfile::tempdir().unwrap();
    let mut paths = Vec::new();
    for (name, form_id) in [
        ("20230101_1.sealed", "rinko-002"),
        ("20230101_2.sealed", "rinko-006"),
    ] {
        let form = t.node.catalogue.form(form_id).unwrap();
        let bytes = seal(
            nsdb_rules::xml::sample(form).as_bytes(),
            &to,
            &user,
            "1.0.0",
            t.node.catalogue.version(),
        )
        .unwrap();
        let path = folder.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        paths.push(path.display().to_string());
    }
    let broken = folder.path().join("broken.sealed");
    std::fs::write(&broken, b"{\"format\":\"nsdb-sealed-sheet/1\"}").unwrap();
    paths.push(broken.display().to_string());

    let c = browser(&d).await;
    sign_in(&c, &t, "clerk").await;
    click(&c, "nav a[href='/imports']").await;
    wait_url(&c, "/imports").await;
    assert!(
        text_of(&c, "#tool-version")
            .await
            .contains(nsdb::imports::TOOL_VERSION)
    );
    wait_for(&c, "#files")
        .await
        .send_keys(&paths.join("\n"))
        .await
        .unwrap();
    click(&c, "#upload").await;
    let table = text_of(&c, "#results").await;
    shot(&c, "imports").await;
    assert!(table.contains("患者氏名"), "{table}");
    let lines: Vec<&str> = table.lines().collect();
    let line = |file: &str| {
        lines
            .iter()
            .find(|l| l.contains(file))
            .unwrap_or_else(|| panic!("no row for {file} in {table}"))
            .to_string()
    };
    assert!(line("20230101_1.sealed").contains("取込成功"), "{table}");
    assert!(line("20230101_1.sealed").contains("2025/03/15"), "{table}");
    assert!(line("20230101_2.sealed").contains("取込成功"), "{table}");
    assert!(line("broken.sealed").contains("読めません"), "{table}");
    assert!(
        text_of(&c, "#upload-version").await.contains("1.0.0"),
        "the upload's tool version is shown"
    );
}

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

async fn value_of(c: &Client, css: &str) -> String {
    wait_for(c, css)
        .await
        .prop("value")
        .await
        .unwrap()
        .unwrap_or_default()
}

/// Issue 11 item 1: the clerk saves 住所; the doctor, on the page loaded before that, saves
/// 郵便番号. Each save writes only what its user changed: nothing is emptied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_editors_on_one_draft_each_keep_what_they_changed() {
    let Some(d) = driver().await else { return };
    let t = TestNode::start(NodeRole::Hospital).await;
    let id = draft(
        &t,
        "clerk",
        &[("patient.name", "二人 編集"), ("patient.address", "旧住所")],
    )
    .await;
    let edit = t.url(&format!("/sheets/{id}/edit"));
    let clerk = browser(&d).await;
    sign_in(&clerk, &t, "clerk").await;
    clerk.goto(&edit).await.unwrap();
    let doc = browser(&d).await;
    sign_in(&doc, &t, "doctor").await;
    doc.goto(&edit).await.unwrap();
    wait_for(&doc, "#f-patient-postal_code").await;

    type_into(&clerk, "#f-patient-address", "東京都千代田区霞が関1-2-2").await;
    click(&clerk, "button[value='save']").await;
    wait_notice(&clerk, "一時保存しました。").await;

    type_into(&doc, "#f-patient-postal_code", "1008916").await;
    click(&doc, "button[value='save']").await;
    wait_notice(&doc, "一時保存しました。").await;
    assert_eq!(
        value_of(&doc, "#f-patient-address").await,
        "東京都千代田区霞が関1-2-2",
        "the clerk's address survives the doctor's stale page"
    );
    assert_eq!(value_of(&doc, "#f-patient-postal_code").await, "100-8916");
    assert!(
        doc.find(Locator::Css("section.conflicts")).await.is_err(),
        "different items are no conflict"
    );
    clerk.close().await.unwrap();
    doc.close().await.unwrap();
}

/// Issue 10 item 4 in the editor: 重症度 set to 3度 at the hospital and 4度 at the hub while
/// apart. The editor shows both at the item; 一時保存 keeps both, 登録 is refused while the
/// choice is open, and the doctor's pick settles it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conflict_from_two_nodes_stays_open_in_the_editor_until_the_doctor_chooses() {
    use nsdb::accounts::policy::UserKind;
    use nsdb::testing::sync::{SyncSite, eventually, sheet_ids};
    let Some(d) = driver().await else { return };
    let mut site = SyncSite::start(1).await;
    let id = sheet_ids(&site.hospital.node).await[0].clone();
    assert!(
        eventually(Duration::from_secs(20), || async {
            sheet_ids(&site.hub.node).await.contains(&id)
        })
        .await
    );
    let code = site.hospital.node.config.institution.code.clone();
    site.hub
        .add_user("visiting", UserKind::NanbyoDoctor, &code)
        .await;
    let at_hub = nsdb::testing::sync::sign_in(&site.hub.node, "visiting").await;
    let at_hospital = nsdb::testing::sync::sign_in(&site.hospital.node, "doctor").await;
    let field = "severity.hoehn_yahr".to_string();
    site.stop_hub();
    for (node, who, value) in [
        (&site.hospital.node, &at_hospital, "3"),
        (&site.hub.node, &at_hub, "4"),
    ] {
        node.update_sheet(
            who,
            &id,
            &std::collections::BTreeMap::from([(field.clone(), value.to_string())]),
        )
        .await
        .expect("edited while apart");
    }
    site.start_hub().await;
    assert!(
        eventually(Duration::from_secs(30), || async {
            site.hospital
                .node
                .sheet_conflicts(&at_hospital, &id)
                .await
                .is_ok_and(|c| c.len() == 1)
        })
        .await,
        "the conflict reaches the hospital"
    );

    let t = &site.hospital;
    let c = browser(&d).await;
    sign_in(&c, t, "doctor").await;
    c.goto(&t.url(&format!("/sheets/{id}/edit"))).await.unwrap();
    let panel = text_of(&c, "section.conflicts").await;
    assert!(panel.contains("3度") && panel.contains("4度"), "{panel}");
    // The item's own note, on its (possibly hidden) tab.
    let at_item = wait_for(&c, "p.conflict")
        .await
        .prop("textContent")
        .await
        .unwrap()
        .unwrap_or_default();
    assert!(
        at_item.contains("3度") && at_item.contains("4度"),
        "{at_item}"
    );
    shot(&c, "conflict-editor").await;

    // 一時保存 of the page as shown settles nothing.
    click(&c, "button[value='save']").await;
    wait_notice(&c, "一時保存しました。").await;
    let open = site
        .hospital
        .node
        .sheet_conflicts(&at_hospital, &id)
        .await
        .unwrap();
    assert_eq!(open.len(), 1, "both values are kept after 一時保存");
    // 登録 is refused while the choice is open.
    click(&c, "button[value='register']").await;
    let why = text_of(&c, "p.error").await;
    assert!(why.contains("同時に編集された項目"), "{why}");
    assert_eq!(
        site.hospital
            .node
            .sheet_conflicts(&at_hospital, &id)
            .await
            .unwrap()[0]
            .values
            .len(),
        2
    );
    // The doctor chooses 4度 in the editor and stays there.
    let choose = c
        .find(Locator::XPath(
            "//section[contains(@class,'conflicts')]//tr[contains(., '4度')]//button",
        ))
        .await
        .unwrap();
    choose.click().await.unwrap();
    wait_url(&c, "/edit").await;
    assert!(
        eventually(Duration::from_secs(5), || async {
            site.hospital
                .node
                .sheet_conflicts(&at_hospital, &id)
                .await
                .is_ok_and(|c| c.is_empty())
        })
        .await
    );
    let now = site
        .hospital
        .node
        .get_sheet(&at_hospital, &id)
        .await
        .unwrap();
    assert_eq!(now.items[&field], "4");
    c.close().await.unwrap();
}

/// Issue 11 item 2: leaving the editor with unsaved typing asks first; a save after the
/// session expired keeps what was posted, asks to sign in and returns with the values saved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsaved_typing_is_never_lost_by_leaving_or_by_an_expired_session() {
    let Some(d) = driver().await else { return };
    let t = TestNode::start(NodeRole::Hospital).await;
    let id = draft(&t, "doctor", &[("patient.name", "離脱 確認")]).await;
    let c = browser(&d).await;
    sign_in(&c, &t, "doctor").await;
    let edit = t.url(&format!("/sheets/{id}/edit"));
    c.goto(&edit).await.unwrap();
    type_into(&c, "#f-patient-address", "未保存の住所").await;

    // 閲覧 asks; staying keeps the typing.
    click(
        &c,
        ".toolbar a.button[href$='/sheets/{id}']"
            .replace("{id}", &id)
            .as_str(),
    )
    .await;
    let asked = c.get_alert_text().await.expect("leaving asks first");
    assert!(asked.contains("保存していない"), "{asked}");
    c.dismiss_alert().await.unwrap();
    assert!(c.current_url().await.unwrap().path().ends_with("/edit"));
    assert_eq!(value_of(&c, "#f-patient-address").await, "未保存の住所");

    // The session expires; the save keeps the values through signing in again.
    t.node
        .store
        .write(|c| {
            c.execute("DELETE FROM sessions", [])?;
            Ok::<_, nsdb::Error>(())
        })
        .await
        .unwrap();
    click(&c, "button[value='save']").await;
    // The answer to the save is the sign-in page, holding what was posted.
    let said = text_of(&c, "p.resume").await;
    assert!(said.contains("有効期限が切れた"), "{said}");
    type_into(&c, "#login", "doctor").await;
    type_into(&c, "#password", &format!("demo{}", char::from(Key::Enter))).await;
    wait_notice(&c, "入力した内容を一時保存しました").await;
    assert!(
        c.current_url()
            .await
            .unwrap()
            .path()
            .ends_with(&format!("/sheets/{id}/edit"))
    );
    assert_eq!(value_of(&c, "#f-patient-address").await, "未保存の住所");
    assert_eq!(value_of(&c, "#f-patient-name").await, "離脱 確認");
    c.close().await.unwrap();
}

/// One form POST on loopback with a cookie, as the browser would send it; returns the body.
async fn http_post_form(
    addr: std::net::SocketAddr,
    path: &str,
    cookie: &str,
    fields: &[(&str, &str)],
) -> Vec<u8> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let body: String = fields
        .iter()
        .map(|(k, v)| format!("{k}={}", urlencode(v)))
        .collect::<Vec<_>>()
        .join("&");
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nCookie: {cookie}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.unwrap();
    let head_end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("an HTTP response");
    let head = String::from_utf8_lossy(&raw[..head_end]).to_string();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    raw[head_end + 4..].to_vec()
}

fn urlencode(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The reviewer's day: the intake list of resolved sheets, the review screen beside the
/// judgment, a 照会 on one item, a result recorded, and the 審査会 print of the selected sheets
/// as one PDF in which no patient's name appears.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reviewer_works_the_intake_list_reviews_inquires_records_and_prints_masked() {
    let Some(d) = driver().await else { return };
    let t = TestNode::start_with_sheets(NodeRole::Hospital, 3).await;
    t.add_user(
        "reviewer",
        nsdb::accounts::policy::UserKind::Reviewer,
        "139999",
    )
    .await;
    let ids = t.node.sheet_ids().await.unwrap();
    let mut names = Vec::new();
    let doctor = t.node.login("doctor", "demo").await.unwrap().principal;
    for id in &ids[..2] {
        let sheet = t.node.get_sheet(&doctor, id).await.unwrap();
        names.push(sheet.items.get("patient.name").cloned().unwrap());
        // Stands in for the resolution of the sheet's key by the reviewer.
        let now = t.node.clock.now_ms();
        nsdb::testing::record_resolution(&t.node, id, "12345678901", "reviewer", now).await;
    }
    let c = browser(&d).await;
    c.goto(&t.url("/login")).await.unwrap();
    type_into(&c, "#login", "reviewer").await;
    type_into(&c, "#password", &format!("demo{}", char::from(Key::Enter))).await;
    wait_url(&c, "/intake").await;
    c.set_window_size(1280, 800).await.unwrap();
    let list = text_of(&c, "#intake").await;
    assert!(list.contains("未審査"), "{list}");
    // 生年月日 takes 和暦 as typed: a text field with the format beside it, no date picker.
    let birth = wait_for(&c, "#birth_date").await;
    assert_eq!(birth.attr("type").await.unwrap().as_deref(), Some("text"));
    birth.send_keys("S50.4.1").await.unwrap();
    assert_eq!(value_of(&c, "#birth_date").await, "S50.4.1");
    assert!(text_of(&c, "#birth_date-hint").await.contains("和暦"));
    // 審査会用印刷 with nothing selected: the reason beside the button, in this tab.
    click(&c, "#batch-print").await;
    let refused = text_of(&c, "#print-error").await;
    assert!(refused.contains("選んでください"), "{refused}");
    assert_eq!(c.windows().await.unwrap().len(), 1, "no new tab");
    c.goto(&t.url("/intake")).await.unwrap();
    assert_eq!(
        c.find_all(Locator::Css("#intake tbody tr"))
            .await
            .unwrap()
            .len(),
        2
    );

    // 審査: the sheet beside its judgment; a 照会 on one item.
    click(&c, &format!("a[href='/review/{}']", ids[0])).await;
    wait_url(&c, &format!("/review/{}", ids[0])).await;
    assert!(text_of(&c, "#judgment").await.contains("一次判定"));
    // At 1280×800 the judgment, its reasons, what is missing and the result form's first
    // field are in view without scrolling, beside the sheet.
    shot(&c, "review-in-view").await;
    for css in ["#judgment", "#checks", "#decision"] {
        let rect = c
            .execute(
                "const r = document.querySelector(arguments[0]).getBoundingClientRect();
                 return [r.top, r.bottom, r.left, window.innerHeight];",
                vec![serde_json::json!(css)],
            )
            .await
            .unwrap();
        let v: Vec<f64> = serde_json::from_value(rect).unwrap();
        assert!(v[0] >= 0.0 && v[1] <= v[3], "{css} is in view: {v:?}");
        if css == "#judgment" {
            assert!(v[2] > 640.0, "beside the sheet, not below it: {v:?}");
        }
    }
    click(&c, "input[name='field'][value='patient.name_kana']").await;
    type_into(&c, "#question", "氏名カナの表記を確認してください").await;
    click(&c, "#ask-button").await;
    wait_notice(&c, "照会しました").await;
    let inquiries = text_of(&c, "#inquiry-list").await;
    assert!(inquiries.contains("氏名カナの表記を確認してください") && inquiries.contains("照会中"));
    // Back and 照会する again: the same 照会 is not recorded twice.
    c.back().await.unwrap();
    wait_for(&c, "#ask-button").await;
    c.execute(
        "document.querySelector(\"input[name='field'][value='patient.name_kana']\").checked = true;
         document.querySelector('#question').value = '氏名カナの表記を確認してください';",
        vec![],
    )
    .await
    .unwrap();
    click(&c, "#ask-button").await;
    wait_notice(&c, "照会しました").await;
    assert_eq!(
        c.find_all(Locator::Css("#inquiry-list article.inquiry"))
            .await
            .unwrap()
            .len(),
        1,
        "one 照会 after a resubmission"
    );

    // The result: 保留 with its 所得区分.
    click(&c, "select#decision option[value='deferred']").await;
    click(&c, "select#income option[value='ippan_1']").await;
    // 有効期間 in 和暦, as typed from the paper.
    type_into(&c, "#valid_from", "R8.4.1").await;
    type_into(&c, "#valid_to", "令和9年3月31日").await;
    click(&c, "#record").await;
    wait_notice(&c, "審査結果を記録しました").await;
    let recorded = text_of(&c, "#recorded").await;
    assert!(
        recorded.contains("保留") && recorded.contains("一般所得Ⅰ"),
        "{recorded}"
    );
    assert!(
        recorded.contains("2026/04/01") && recorded.contains("2027/03/31"),
        "{recorded}"
    );
    shot(&c, "review").await;

    // Back on the list: the state, and the 審査会 print of both sheets.
    c.goto(&t.url("/intake")).await.unwrap();
    assert!(text_of(&c, "#intake").await.contains("保留"));
    for id in &ids[..2] {
        click(&c, &format!("input[form='batch'][value='{id}']")).await;
    }
    assert!(
        wait_for(&c, "#batch-print")
            .await
            .is_enabled()
            .await
            .unwrap()
    );
    let csrf = wait_for(&c, "form#batch input[name='csrf']")
        .await
        .attr("value")
        .await
        .unwrap()
        .unwrap();
    let session = c.get_named_cookie("nsdb_session").await.unwrap();
    let pdf = http_post_form(
        t.addr,
        "/intake/print",
        &format!("nsdb_session={}", session.value()),
        &[("csrf", &csrf), ("id", &ids[0]), ("id", &ids[1])],
    )
    .await;
    assert!(pdf.starts_with(b"%PDF"), "a PDF");
    let text: String = pdf_extract::extract_text_from_mem(&pdf)
        .unwrap()
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    assert!(text.contains("一次判定"), "the judgment summary is printed");
    for name in &names {
        let squashed: String = name.chars().filter(|c| !c.is_whitespace()).collect();
        assert!(!text.contains(&squashed), "{name} is masked");
    }
    c.close().await.unwrap();
}

/// M18: a clinic's doctor works on the hub. Signed in there, the doctor sees the clinic's
/// sheets only (the hub also holds another institution's), registers one with a key the hub
/// issues, prints it, and is refused the other institution's sheet.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clinic_doctor_on_the_hub_registers_and_sees_only_the_clinics_sheets() {
    let Some(d) = driver().await else { return };
    let t = TestNode::start(NodeRole::Hub).await;
    let form = t.node.catalogue.form("rinko-006").unwrap().clone();
    let today = t.node.clock.today_jst();
    // A sheet the hub holds for a hospital (as if synced from it), written by a stand-in user.
    let password = "byoin-no-dairi-2026";
    nsdb::accounts::add_user(
        &t.node,
        "hospital-standin",
        "病院 代理",
        nsdb::accounts::policy::UserKind::NanbyoDoctor,
        Some("1399000010"),
        None,
        password,
    )
    .await
    .unwrap();
    let standin = t
        .node
        .login("hospital-standin", password)
        .await
        .unwrap()
        .principal;
    let foreign = t
        .node
        .create_sheet(
            &standin,
            "rinko-006",
            &[(
                "patient.name_kana".to_string(),
                "ビョウイン ノカンジャ".to_string(),
            )]
            .into(),
        )
        .await
        .unwrap()
        .row
        .id;
    // The clinic's draft, complete so that it passes the checks.
    let clinic = t.node.login("clinic", "demo").await.unwrap().principal;
    let values = (0..50u64)
        .map(|seed| {
            let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(seed);
            nsdb::cli::seed::sheet_values(&form, &mut rng, today)
        })
        .find(|v| {
            let mut v = v.clone();
            v.insert("doctor.name".into(), clinic.name.clone());
            v.insert(
                "doctor.institution_name".into(),
                "デモ内科クリニック".into(),
            );
            v.insert("doctor.written_date".into(), today.to_string());
            nsdb_rules::check(&form, &v, nsdb_rules::check::Mode::Complete, today).is_empty()
        })
        .expect("a fictitious sheet that passes the checks");
    let own = t
        .node
        .create_sheet(&clinic, "rinko-006", &values)
        .await
        .unwrap()
        .row
        .id;

    let c = browser(&d).await;
    sign_in(&c, &t, "clinic").await;
    assert!(
        text_of(&c, "body")
            .await
            .contains("医療機関コード 1399000028"),
        "the header says whose screens these are"
    );
    assert!(text_of(&c, "p.count").await.contains("1件"));
    let listed = text_of(&c, "table.list tbody").await;
    assert!(!listed.contains("ビョウイン"), "{listed}");

    c.goto(&t.url(&format!("/sheets/{own}/edit")))
        .await
        .unwrap();
    click(&c, "button[value='register']").await;
    wait_notice(&c, "登録しました。").await;
    let key = c
        .find(Locator::XPath(
            "//dl[contains(@class,'meta')]/dt[.='アクセスキー']/following-sibling::dd[1]",
        ))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(key.len(), 13, "a key issued at the hub: {key}");
    shot(&c, "clinic-registered").await;
    let session = c.get_named_cookie("nsdb_session").await.unwrap();
    let cookie = format!("nsdb_session={}", session.value());
    let pdf = http_get(t.addr, &format!("/sheets/{own}/print"), &cookie).await;
    let text = pdf_extract::extract_text_from_mem(&pdf).unwrap();
    assert!(text.contains(&key), "the PDF carries the access key {key}");
    assert!(text.contains("デモ内科クリニック"), "and names the clinic");

    // The other institution's sheet: refused, and not found by search.
    c.goto(&t.url(&format!("/sheets/{foreign}"))).await.unwrap();
    assert!(text_of(&c, "main").await.contains("権限"));
    c.goto(&t.url("/sheets?q=ビョウイン")).await.unwrap();
    assert!(text_of(&c, "p.count").await.contains("0件"));
    c.close().await.unwrap();
}

/// 紙の臨個票受付: a reviewer uploads a file that is no PDF and reads why beside the field with
/// what was typed kept, then the scanned PDF, which waits in the list as 送信待ち.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reviewer_uploads_a_scanned_paper_sheet_on_the_intake_list() {
    let Some(d) = driver().await else { return };
    let t = TestNode::start(NodeRole::Municipality).await;
    let folder = tempfile::tempdir().unwrap();
    let photo = folder.path().join("scan.png");
    std::fs::write(&photo, b"\x89PNG\r\n\x1a\n not a pdf").unwrap();
    let scan = folder.path().join("scan.pdf");
    std::fs::write(&scan, nsdb::cli::demo::demo_pdf(&["paper sheet"])).unwrap();
    let c = browser(&d).await;
    c.goto(&t.url("/login")).await.unwrap();
    type_into(&c, "#login", "reviewer").await;
    type_into(&c, "#password", &format!("demo{}", char::from(Key::Enter))).await;
    wait_url(&c, "/intake").await;
    let fill = async |file: &std::path::Path| {
        wait_for(&c, "#paper_pdf")
            .await
            .send_keys(&file.display().to_string())
            .await
            .unwrap();
        let kana = wait_for(&c, "#paper_name_kana").await;
        kana.clear().await.unwrap();
        kana.send_keys("カミ ハナコ").await.unwrap();
        c.execute(
            "document.querySelector('#paper_birth_date').value = '1980-04-01';",
            vec![],
        )
        .await
        .unwrap();
        let disease = wait_for(&c, "#paper_disease").await;
        disease.clear().await.unwrap();
        disease.send_keys("6").await.unwrap();
        click(&c, "form.paper button[type=submit]").await;
    };
    fill(&photo).await;
    assert!(
        text_of(&c, "#pdf-error")
            .await
            .contains("PDF ではありません")
    );
    assert_eq!(value_of(&c, "#paper_name_kana").await, "カミ ハナコ");
    fill(&scan).await;
    wait_url(&c, "/intake#papers").await;
    assert!(text_of(&c, "p.flash").await.contains("受け付けました"));
    let list = text_of(&c, "#paper-list").await;
    shot(&c, "paper-intake").await;
    assert!(list.contains("送信待ち"), "{list}");
    assert!(list.contains("パーキンソン病"), "{list}");
}

/// The code an authenticator app holding `secret` (base32, as the enrolment page shows it)
/// shows `steps` time steps (30 s) from now.
fn app_code(secret: &str, steps: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    nsdb::accounts::totp::code_at_base32(secret, now + steps * 30_000).expect("a base32 secret")
}

/// A 責任者 enrols the second factor from the menu (QR code and key shown once, active after
/// the first code), signs out, signs in with the password and then a code, and, once the
/// five minutes after that sign-in have passed, opens the user list through 再認証, which
/// returns to the list.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_administrator_enrols_totp_signs_in_with_a_code_and_passes_reauthentication() {
    let Some(d) = driver().await else { return };
    let t = TestNode::start(NodeRole::Hospital).await;
    let c = browser(&d).await;

    c.goto(&t.url("/login")).await.unwrap();
    type_into(&c, "#login", "admin").await;
    type_into(&c, "#password", &format!("demo{}", char::from(Key::Enter))).await;
    wait_url(&c, "/admin/users").await;
    c.find(Locator::LinkText("2段階認証の設定"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_url(&c, "/account/totp").await;
    assert!(
        wait_for(&c, "figure.totp-qr svg")
            .await
            .is_displayed()
            .await
            .unwrap()
    );
    let secret = text_of(&c, "#totp-secret").await;
    shot(&c, "totp-enrol").await;
    type_into(
        &c,
        "#code",
        &format!("{}{}", app_code(&secret, -1), char::from(Key::Enter)),
    )
    .await;
    let done = text_of(&c, "p.notice").await;
    assert!(done.contains("2段階認証を設定しました"), "{done}");

    click(&c, "header form[action='/logout'] button").await;
    wait_url(&c, "/login").await;
    type_into(&c, "#login", "admin").await;
    type_into(&c, "#password", &format!("demo{}", char::from(Key::Enter))).await;
    // The second page: the code, not yet a session.
    wait_for(&c, "form[action='/login/code'] #code").await;
    type_into(
        &c,
        "#code",
        &format!("{}{}", app_code(&secret, 0), char::from(Key::Enter)),
    )
    .await;
    wait_url(&c, "/admin/users").await;
    wait_text(&c, "main h1", "医療機関ユーザ検索").await;

    // Five minutes later the user list asks for the password and code again.
    let old = t.node.clock.now_ms() - nsdb::accounts::REAUTH_WINDOW_MS - 1000;
    t.node
        .store
        .write(move |conn| {
            conn.execute("UPDATE sessions SET reauth_at = ?1", [old])
                .map_err(nsdb::Error::from)
        })
        .await
        .unwrap();
    c.goto(&t.url("/admin/users?kind=admin")).await.unwrap();
    wait_text(&c, "main h1", "再認証").await;
    shot(&c, "reauth").await;
    type_into(&c, "#reauth-password", "demo").await;
    type_into(
        &c,
        "#reauth-code",
        &format!("{}{}", app_code(&secret, 1), char::from(Key::Enter)),
    )
    .await;
    wait_url(&c, "/admin/users?kind=admin").await;
    wait_text(&c, "main h1", "医療機関ユーザ検索").await;
    let row = text_of(&c, "table.list").await;
    assert!(row.contains("設定済み"), "{row}");
    c.close().await.unwrap();
}
