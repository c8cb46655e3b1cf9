//! The editor and the list as a clerk meets them all day (issue 11, items 6–8): disease
//! numbers, paging, search, file names of prints, the draft mark, keyboard aids and 和暦.

#![allow(dead_code)] // the client is the one of http.rs; not every helper is used here

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use nsdb::config::NodeRole;
use nsdb::testing::TestNode;
use tower::ServiceExt;

mod support;
use support::{Client, expire_sessions, hidden_csrf, hidden_value};

/// Creates a sheet of `form_id` with `values` as the demo doctor; its id.
async fn sheet_with(t: &TestNode, form_id: &str, values: &[(&str, &str)]) -> String {
    let doctor = t.node.login("doctor", "demo").await.unwrap().principal;
    let values = values
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    t.node
        .create_sheet(&doctor, form_id, &values)
        .await
        .unwrap()
        .row
        .id
}

#[tokio::test]
async fn a_shouman_sheet_shows_its_group_number_and_never_kokuji_zero() {
    let t = TestNode::start(NodeRole::Hospital).await;
    let id = sheet_with(&t, "iken-12-04-014", &[]).await;
    let mut c = Client::new(&t);
    c.ui_login("doctor").await;
    let list = c.get("/sheets").await;
    assert!(list.body.contains("12-04-014/"), "{}", list.body);
    assert!(!list.body.contains("<td>0/"), "告示番号 0 is never shown");
    // The disease filter chooses a 小慢 form by its own number.
    assert!(list.body.contains("value=\"iken-12-04-014\">12-04-014 "));
    let filtered = c.get("/sheets?kokuji=iken-12-04-014").await;
    assert!(
        filtered.body.contains("検索結果件数 1件"),
        "{}",
        filtered.body
    );
    let editor = c.get(&format!("/sheets/{id}/edit")).await;
    assert!(editor.body.contains("疾患群・疾病番号12-04-014"));
    assert!(!editor.body.contains("告示番号0"));
}

#[tokio::test]
async fn paging_counts_pages_and_refuses_a_page_that_is_not_there_in_japanese() {
    let t = TestNode::start_with_sheets(NodeRole::Hospital, 45).await;
    let mut c = Client::new(&t);
    c.ui_login("doctor").await;
    let first = c.get("/sheets").await;
    assert!(first.body.contains("（1/3頁）"), "{}", first.body);
    assert!(first.body.contains("1 / 3頁"));
    let last = c.get("/sheets?page=3").await;
    assert_eq!(last.status, StatusCode::OK);
    for bad in [
        "/sheets?page=4",
        "/sheets?page=0",
        "/sheets?page=x",
        "/sheets?page=-1",
    ] {
        let r = c.get(bad).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
        assert!(r.body.contains("頁"), "{bad}: {}", r.body);
        assert!(!r.body.contains("Failed to deserialize"), "{bad}");
    }
    let r = c.get("/sheets?page=4").await;
    assert!(r.body.contains("4頁目はありません。検索結果は全3頁です。"));
}

#[tokio::test]
async fn search_finds_a_name_typed_in_kanji_hiragana_half_width_or_decomposed_kana() {
    let t = TestNode::start_with_sheets(NodeRole::Hospital, 5).await;
    sheet_with(
        &t,
        "rinko-006",
        &[
            ("patient.name", "髙橋 次郎"),
            ("patient.name_kana", "ガクバシ ジロウ"),
        ],
    )
    .await;
    let mut c = Client::new(&t);
    c.ui_login("doctor").await;
    let list = c.get("/sheets").await;
    assert!(
        list.body.contains("氏名（カナ・漢字）"),
        "the box says what it searches"
    );
    let enc = |s: &str| serde_urlencoded::to_string([("q", s)]).unwrap();
    for typed in [
        "髙橋",
        "髙橋次郎",
        "髙橋 次",
        "がくばし",
        "ｶﾞｸﾊﾞｼ",
        "ガクバシジロウ",
        "がくばしじろう",
        "ガクバシ　ジロ",
        "\u{30AB}\u{3099}\u{30AF}\u{30CF}\u{3099}\u{30B7}", // decomposed (NFD) カ゛クハ゛シ
    ] {
        let found = c.get(&format!("/sheets?{}", enc(typed))).await;
        assert!(
            found.body.contains("検索結果件数 1件"),
            "{typed}: {}",
            found.body
        );
        assert!(found.body.contains("ガクバシ ジロウ"), "{typed}");
    }
    let none = c.get(&format!("/sheets?{}", enc("高橋"))).await;
    assert!(
        none.body.contains("検索結果件数 0件"),
        "a different character is a different name"
    );
}

#[tokio::test]
async fn a_pasted_decomposed_name_is_stored_composed() {
    let t = TestNode::start(NodeRole::Hospital).await;
    let id = sheet_with(
        &t,
        "rinko-006",
        &[("patient.name_kana", "\u{30AB}\u{3099}\u{30E1}\u{30F3}")],
    )
    .await;
    let doctor = t.node.login("doctor", "demo").await.unwrap().principal;
    let d = t.node.get_sheet(&doctor, &id).await.unwrap();
    assert_eq!(d.items["patient.name_kana"], "ガメン");
}

/// The PDF of `uri` with its Content-Disposition and text.
async fn pdf(c: &mut Client, uri: &str) -> (String, String) {
    let r = c.app.clone();
    let cookie: Vec<String> = c.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let res = r
        .oneshot(
            Request::get(uri)
                .header(header::COOKIE, cookie.join("; "))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let disposition = res.headers()[header::CONTENT_DISPOSITION]
        .to_str()
        .unwrap()
        .to_string();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    (
        disposition,
        pdf_extract::extract_text_from_mem(&bytes).unwrap(),
    )
}

#[tokio::test]
async fn a_print_is_named_after_its_form_and_day_and_a_draft_carries_the_draft_mark() {
    let t = TestNode::start(NodeRole::Hospital).await;
    let doctor = t.node.login("doctor", "demo").await.unwrap().principal;
    let form = t.node.catalogue.form("rinko-006").unwrap().clone();
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(5);
    let values = nsdb::cli::seed::sheet_values(&form, &mut rng, t.node.clock.today_jst());
    let id = t
        .node
        .create_sheet(&doctor, "rinko-006", &values)
        .await
        .unwrap()
        .row
        .id;
    let mut c = Client::new(&t);
    c.ui_login("doctor").await;

    let (disposition, text) = pdf(&mut c, &format!("/sheets/{id}/print")).await;
    let today = t.node.clock.today_jst().to_string();
    let name: String = serde_urlencoded::to_string([(
        "n",
        format!("臨床調査個人票_パーキンソン病_{today}_下書き.pdf"),
    )])
    .unwrap()
    .trim_start_matches("n=")
    .to_string();
    assert!(
        disposition.contains(&format!("filename*=UTF-8''{name}")),
        "{disposition} names {name}"
    );
    assert!(disposition.contains(&format!("filename=\"sheet-{id}-draft.pdf\"")));
    assert!(text.contains("下書き"), "a draft prints with its mark");
    assert!(
        !text.contains("builtin") && !text.contains("判定規則"),
        "the built-in catalogue's id is not printed: {text}"
    );

    t.node
        .step(&doctor, &id, nsdb::sheets::workflow::Step::Register)
        .await
        .unwrap();
    let (disposition, text) = pdf(&mut c, &format!("/sheets/{id}/print?masked=1")).await;
    assert!(
        disposition.contains("_%E5%AF%A9%E6%9F%BB%E4%BC%9A%E7%94%A8.pdf"),
        "{disposition}"
    );
    assert!(
        !disposition.contains(&utf8("下書き")),
        "a registered sheet's name has no draft mark: {disposition}"
    );
    let (disposition, _) = pdf(&mut c, &format!("/sheets/{id}/print")).await;
    let registered = utf8(&format!("臨床調査個人票_パーキンソン病_{today}.pdf"));
    assert!(
        disposition.contains(&format!("filename*=UTF-8''{registered}")),
        "{disposition}"
    );
    assert!(
        !text.contains("下書き"),
        "a registered sheet has no draft mark"
    );
}

#[tokio::test]
async fn the_editor_shows_the_workflow_panel_and_the_history_rows_carry_their_actions() {
    use nsdb::sheets::workflow::Step;
    let t = TestNode::start(NodeRole::Hospital).await;
    let clerk = t.node.login("clerk", "demo").await.unwrap().principal;
    let doctor = t.node.login("doctor", "demo").await.unwrap().principal;
    let id = sheet_with(&t, "rinko-006", &[]).await;
    let mut c = Client::new(&t);
    c.ui_login("doctor").await;
    let editor = c.get(&format!("/sheets/{id}/edit")).await;
    assert!(
        !editor.body.contains("wf-note-title"),
        "no panel before any step"
    );

    let id = t
        .node
        .create_sheet(&clerk, "rinko-006", &Default::default())
        .await
        .unwrap()
        .row
        .id;
    t.node
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
    let editor = c.get(&format!("/sheets/{id}/edit")).await;
    let at = editor
        .body
        .find("wf-note-title")
        .expect("the workflow panel");
    let panel = &editor.body[at..at + 1500.min(editor.body.len() - at)];
    for want in [
        "医療機関",
        "担当者",
        "難病指定医",
        "コメント",
        "登録内容のご確認をお願いいたします。",
        "田中 花子",
    ] {
        assert!(panel.contains(want), "{want} in {panel}");
    }
    assert!(
        at < editor.body.find("id=\"sheet\"").unwrap(),
        "the panel is above the form"
    );

    // The clerk who sent it sees 閲覧 and 引戻 on the latest history row.
    let mut k = Client::new(&t);
    k.ui_login("clerk").await;
    let history = k.get(&format!("/sheets/{id}/history")).await;
    let rows = &history.body[history.body.find("<tbody>").unwrap()..];
    assert!(
        rows.contains(&format!("href=\"/sheets/{id}\">閲覧")),
        "{rows}"
    );
    assert!(rows.contains("引戻"), "{rows}");
}

#[tokio::test]
async fn tabs_count_their_messages_and_buttons_show_their_shortcuts() {
    let t = TestNode::start(NodeRole::Hospital).await;
    let id = sheet_with(
        &t,
        "rinko-006",
        &[
            ("patient.postal_code", "12"),
            ("patient.birth_date", "2999-01-01"),
        ],
    )
    .await;
    let mut c = Client::new(&t);
    c.ui_login("doctor").await;
    let editor = c.get(&format!("/sheets/{id}/edit")).await;
    let nav = &editor.body[editor.body.find("nav class=\"sections\"").unwrap()..];
    let patient = &nav[nav.find("#s-patient").unwrap()..];
    let patient = &patient[..patient.find("</a>").unwrap()];
    // The tab counts the messages the summary lists for its items.
    let listed = editor.body.matches("<li><a href=\"#f-patient-").count();
    assert!(listed >= 2, "the postal code and the birth date at least");
    assert!(patient.contains(&format!("⚠{listed}件")), "{patient}");
    for (button, key) in [
        ("一時保存", "s"),
        ("チェック", "c"),
        ("一次判定表示", "j"),
        ("帳票出力", "p"),
    ] {
        let at = editor
            .body
            .find(&format!("{button} <kbd"))
            .unwrap_or_else(|| panic!("{button} shows its key"));
        let before = &editor.body[..at];
        let tag = &before[before.rfind('<').unwrap()..];
        assert!(
            tag.contains(&format!("accesskey=\"{key}\"")),
            "{button}: {tag}"
        );
    }
    assert!(editor.body.contains("最初の入力欄へ移動"));
}

#[tokio::test]
async fn a_save_names_the_field_the_user_was_in_and_the_editor_returns_to_it() {
    let t = TestNode::start(NodeRole::Hospital).await;
    let id = sheet_with(&t, "rinko-006", &[]).await;
    let mut c = Client::new(&t);
    let csrf = c.ui_login("doctor").await;
    let page = c.get(&format!("/sheets/{id}/edit")).await;
    let version = {
        let marker = "name=\"_version\" value=\"";
        let at = page.body.find(marker).unwrap() + marker.len();
        page.body[at..at + page.body[at..].find('"').unwrap()].to_string()
    };
    let save = |focus: &'static str| {
        vec![
            ("csrf", csrf.clone()),
            ("_version", version.clone()),
            ("_focus", focus.to_string()),
            ("action", "save".to_string()),
            ("patient.address", "東京都".to_string()),
        ]
    };
    let fields = save("f-patient-address");
    let refs: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let r = c.form(&format!("/sheets/{id}"), &refs).await;
    assert_eq!(r.location(), format!("/sheets/{id}/edit#f-patient-address"));
    // The notice is kept with the session and shown once, never taken from the address.
    assert!(
        c.get(&format!("/sheets/{id}/edit"))
            .await
            .body
            .contains("一時保存しました。")
    );
    assert!(
        !c.get(&format!("/sheets/{id}/edit"))
            .await
            .body
            .contains("一時保存しました。")
    );
    assert!(
        !c.get(&format!("/sheets/{id}/edit?notice=saved"))
            .await
            .body
            .contains("一時保存しました。"),
        "a crafted address shows no notice"
    );
    // Anything but a field id is ignored.
    let fields = save("javascript:alert(1)");
    let refs: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let r = c.form(&format!("/sheets/{id}"), &refs).await;
    assert_eq!(r.location(), format!("/sheets/{id}/edit"));
}

#[tokio::test]
async fn a_new_sheet_for_a_patient_who_has_one_of_the_same_disease_offers_renewal() {
    use nsdb::sheets::workflow::Step;
    let t = TestNode::start(NodeRole::Hospital).await;
    let doctor = t.node.login("doctor", "demo").await.unwrap().principal;
    let form = t.node.catalogue.form("rinko-006").unwrap().clone();
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(7);
    let mut values = nsdb::cli::seed::sheet_values(&form, &mut rng, t.node.clock.today_jst());
    values.insert("patient.name".into(), "更新 太郎".into());
    values.insert("patient.birth_date".into(), "1980-04-01".into());
    let earlier = t
        .node
        .create_sheet(&doctor, "rinko-006", &values)
        .await
        .unwrap()
        .row
        .id;
    t.node
        .step(&doctor, &earlier, Step::Register)
        .await
        .unwrap();

    let mut c = Client::new(&t);
    c.ui_login("doctor").await;
    // Same insurance numbers.
    let by_insurance = sheet_with(
        &t,
        "rinko-006",
        &[
            ("patient.insurer_no", &values["patient.insurer_no"]),
            ("patient.insured_no", &values["patient.insured_no"]),
        ],
    )
    .await;
    // Same name (spaced otherwise) and birth date, typed in 和暦.
    let by_name = sheet_with(
        &t,
        "rinko-006",
        &[
            ("patient.name", "更新　太郎"),
            ("patient.birth_date", "昭和55年4月1日"),
        ],
    )
    .await;
    for id in [&by_insurance, &by_name] {
        let editor = c.get(&format!("/sheets/{id}/edit")).await;
        assert!(
            editor
                .body
                .contains("同じ疾病の臨床調査個人票がすでにあります"),
            "{id}"
        );
        assert!(
            editor
                .body
                .contains(&format!("action=\"/sheets/{earlier}/renew\""))
        );
        assert!(
            editor
                .body
                .contains(&format!("href=\"/sheets/{earlier}\">その票を開く"))
        );
        // A notice, not a block: the sheet still saves.
        assert!(editor.body.contains("value=\"save\""));
    }
    // Following the notice turns this draft into the renewal: no empty draft is left behind,
    // what was typed stays, and the empty items are carried from the earlier sheet.
    let before = t.node.sheet_ids().await.unwrap().len();
    let editor = c.get(&format!("/sheets/{by_name}/edit")).await;
    assert!(
        editor
            .body
            .contains(&format!("name=\"into\" value=\"{by_name}\"")),
        "the notice names this draft"
    );
    let csrf = support::hidden_csrf(&editor.body);
    let r = c
        .form(
            &format!("/sheets/{earlier}/renew"),
            &[("csrf", &csrf), ("into", &by_name)],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(r.location(), format!("/sheets/{by_name}/edit"));
    assert_eq!(
        t.node.sheet_ids().await.unwrap().len(),
        before,
        "no second sheet"
    );
    let renewed = t.node.get_sheet(&doctor, &by_name).await.unwrap();
    assert_eq!(renewed.row.carried_from.as_deref(), Some(earlier.as_str()));
    assert_eq!(renewed.items["application.type"], "2", "a renewal is 更新");
    assert_eq!(renewed.items["patient.name"], "更新　太郎", "typed, kept");
    assert_eq!(
        renewed.items["patient.insured_no"], values["patient.insured_no"],
        "carried into the empty item"
    );
    assert!(renewed.carried.contains(&"patient.insured_no".to_string()));
    let editor = c.get(&format!("/sheets/{by_name}/edit")).await;
    assert!(
        !editor
            .body
            .contains("同じ疾病の臨床調査個人票がすでにあります"),
        "a renewal is offered no renewal"
    );

    let other = sheet_with(&t, "rinko-006", &[("patient.name", "別人 花子")]).await;
    let editor = c.get(&format!("/sheets/{other}/edit")).await;
    assert!(
        !editor
            .body
            .contains("同じ疾病の臨床調査個人票がすでにあります")
    );
}

/// Error pages of a signed-in user keep the page layout (menus, the user's node), whatever
/// refused the request: an unknown address (404), a malformed query (400), a refused action
/// (403); signed out, the same refusal is a plain page in Japanese.
#[tokio::test]
async fn error_pages_keep_the_menus_for_a_signed_in_user() {
    let t = TestNode::start(NodeRole::Hospital).await;
    let id = sheet_with(&t, "rinko-006", &[("patient.name", "誤り 太郎")]).await;
    let mut c = Client::new(&t);
    c.ui_login("clerk").await;
    for (uri, status, words) in [
        ("/no-such-page", StatusCode::NOT_FOUND, "見つかりません"),
        (
            &format!("/sheets/{id}/edit?check=abc") as &str,
            StatusCode::BAD_REQUEST,
            "正しくありません",
        ),
        ("/admin/users", StatusCode::FORBIDDEN, "権限がありません"),
    ] {
        let r = c.get(uri).await;
        assert_eq!(r.status, status, "{uri}");
        assert!(r.body.contains(words), "{uri}: {}", r.body);
        assert!(
            r.body.contains("aria-label=\"メニュー\"") && r.body.contains("href=\"/sheets\""),
            "{uri} keeps the menus: {}",
            r.body
        );
        assert!(!r.body.contains("Failed to"), "{uri}: no developer text");
    }
    let mut anonymous = Client::new(&t);
    let r = anonymous.get("/no-such-page").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.body.contains("見つかりません"));
    assert!(!r.body.contains("aria-label=\"メニュー\""));
}

/// A name as `filename*` carries it (percent-encoded UTF-8).
fn utf8(name: &str) -> String {
    serde_urlencoded::to_string([("n", name)])
        .unwrap()
        .trim_start_matches("n=")
        .to_string()
}

/// The 審査会 batch and the paper (紙の臨個票) PDFs are named after the form and the day, like
/// the single print.
#[tokio::test]
async fn the_batch_and_paper_pdfs_are_named_after_the_form_and_day() {
    use nsdb::accounts::policy::UserKind;
    let t = TestNode::start_with_sheets(NodeRole::Hospital, 2).await;
    t.add_user("reviewer", UserKind::Reviewer, "139999").await;
    let ids = t.node.sheet_ids().await.unwrap();
    for id in &ids {
        nsdb::testing::record_resolution(&t.node, id, "12345678901", "reviewer", 1_780_000_000_000)
            .await;
    }
    let doctor = t.node.login("doctor", "demo").await.unwrap().principal;
    let form_id = t
        .node
        .get_sheet(&doctor, &ids[0])
        .await
        .unwrap()
        .row
        .form_id;
    let form = t.node.catalogue.form(&form_id).unwrap().clone();
    let today = t.node.clock.today_jst().to_string();
    let mut c = Client::new(&t);
    let csrf = c.ui_login("reviewer").await;
    let r = c
        .form(
            "/intake/print",
            &[("csrf", &csrf), ("id", &ids[0]), ("id", &ids[1])],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let disposition = r.headers[header::CONTENT_DISPOSITION].to_str().unwrap();
    let same = t
        .node
        .get_sheet(&doctor, &ids[1])
        .await
        .unwrap()
        .row
        .form_id
        == form_id;
    let title = if same {
        format!("{}_{}", form.kind.label(), form.disease)
    } else {
        format!("{}_2件", form.kind.label())
    };
    let name = utf8(&format!("{title}_{today}_審査会用.pdf"));
    assert!(
        disposition.contains(&format!("filename*=UTF-8''{name}")),
        "{disposition} names {title}"
    );
    assert!(disposition.starts_with("attachment;"), "{disposition}");

    // A paper uploaded at a municipality: 紙の臨個票_病名_日付.
    let m = TestNode::start(NodeRole::Municipality).await;
    let reviewer = m.node.login("reviewer", "demo").await.unwrap().principal;
    let paper = m
        .node
        .upload_paper(
            &reviewer,
            nsdb::papers::PaperUpload {
                pdf: nsdb::cli::demo::demo_pdf(&["paper sheet, scanned"]),
                name_kana: "カミ ハナコ".into(),
                birth_date: "1980-04-01".into(),
                disease: "6".into(),
            },
        )
        .await
        .unwrap();
    let mut c = Client::new(&m);
    c.ui_login("reviewer").await;
    let (disposition, _) = pdf(&mut c, &format!("/papers/{paper}.pdf")).await;
    let name = utf8(&format!("紙の臨個票_パーキンソン病_{today}.pdf"));
    assert!(
        disposition.contains(&format!("filename*=UTF-8''{name}")),
        "{disposition}"
    );
}

/// A character no print font has (U+30000, newer than IPAex Gothic and IPAmj明朝) is kept as
/// typed but named beside its field at entry, and 登録 is refused until it is replaced: the paper
/// never shows a blank. (𠮷 prints with the fallback font: `print::tests`.)
#[tokio::test]
async fn a_character_the_print_cannot_show_is_named_beside_its_field_and_blocks_registration() {
    use nsdb::sheets::workflow::Step;
    let t = TestNode::start(NodeRole::Hospital).await;
    let doctor = t.node.login("doctor", "demo").await.unwrap().principal;
    let mut values = nsdb::testing::required_values(&t.node, "rinko-006", "ヨシダ ハナコ");
    values.insert("patient.name".into(), "\u{30000}田 花子".into());
    let d = t
        .node
        .create_sheet(&doctor, "rinko-006", &values)
        .await
        .unwrap();
    assert_eq!(d.items["patient.name"], "\u{30000}田 花子", "kept as typed");
    let mut c = Client::new(&t);
    c.ui_login("doctor").await;
    let editor = c.get(&format!("/sheets/{}/edit", d.row.id)).await;
    let at = editor
        .body
        .find("id=\"f-patient-name-msg\"")
        .expect("a message beside 氏名");
    let beside: String = editor.body[at..].chars().take(200).collect();
    assert!(
        beside.contains("印刷できない") && beside.contains("U+30000"),
        "{beside}"
    );
    let err = t
        .node
        .step(&doctor, &d.row.id, Step::Register)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("登録できません"), "{err}");

    let fixed = [("patient.name".to_string(), "吉田 花子".to_string())].into();
    let d = t
        .node
        .update_sheet_since(&doctor, &d.row.id, &d.version, &fixed)
        .await
        .unwrap();
    assert!(
        !d.messages.iter().any(|m| m.text.contains("印刷できない")),
        "{:?}",
        d.messages
    );
}

/// The demo's drafts say who writes them (医師の氏名, 指定医番号, 医療機関), as the new-sheet screen
/// fills a new sheet, so that they can be registered without typing these.
#[tokio::test]
async fn the_demo_drafts_carry_the_writing_doctor_and_institution() {
    let t = TestNode::start_with_sheets(NodeRole::Hospital, 2).await;
    let doctor = t.node.login("doctor", "demo").await.unwrap().principal;
    let id = t.node.sheet_ids().await.unwrap()[0].clone();
    let d = t.node.get_sheet(&doctor, &id).await.unwrap();
    for item in [
        "doctor.name",
        "doctor.number",
        "doctor.institution_name",
        "doctor.institution_code",
    ] {
        assert!(
            d.items.get(item).is_some_and(|v| !v.is_empty()),
            "{item}: {:?}",
            d.items.get(item)
        );
    }
    assert_eq!(d.items["doctor.name"], doctor.name);
}

/// A save refused because the sheet was registered meanwhile shows what was typed and not
/// saved, under the reason, instead of dropping it.
#[tokio::test]
async fn a_save_refused_on_a_registered_sheet_lists_what_was_typed() {
    use nsdb::sheets::workflow::Step;
    let t = TestNode::start(NodeRole::Hospital).await;
    let doctor = t.node.login("doctor", "demo").await.unwrap().principal;
    let values = nsdb::testing::required_values(&t.node, "rinko-006", "トウロク ハナコ");
    let d = t
        .node
        .create_sheet(&doctor, "rinko-006", &values)
        .await
        .unwrap();
    let mut c = Client::new(&t);
    let csrf = c.ui_login("doctor").await;
    t.node
        .step(&doctor, &d.row.id, Step::Register)
        .await
        .expect("registers");
    let r = c
        .form(
            &format!("/sheets/{}", d.row.id),
            &[
                ("csrf", &csrf),
                ("action", "save"),
                ("patient.address", "打ち込んだ住所ZZZ"),
            ],
        )
        .await;
    assert!(r.body.contains("保存されなかった入力"), "{}", r.body);
    assert!(r.body.contains("打ち込んだ住所ZZZ"), "{}", r.body);
}

/// The editor's address of a sheet this user may see but not edit (a bookmark, the back button
/// after 登録) shows the sheet and says why and what to do, rather than 権限がありません.
#[tokio::test]
async fn the_editor_of_a_registered_sheet_says_how_to_amend_it() {
    use nsdb::sheets::workflow::Step;
    let t = TestNode::start(NodeRole::Hospital).await;
    let doctor = t.node.login("doctor", "demo").await.unwrap().principal;
    let values = nsdb::testing::required_values(&t.node, "rinko-006", "トウロク ジロウ");
    let d = t
        .node
        .create_sheet(&doctor, "rinko-006", &values)
        .await
        .unwrap();
    t.node
        .step(&doctor, &d.row.id, Step::Register)
        .await
        .expect("registers");
    let mut c = Client::new(&t);
    c.ui_login("doctor").await;
    let page = c.get(&format!("/sheets/{}/edit", d.row.id)).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("登録済みのため"), "{}", page.body);
    assert!(page.body.contains("「修正」を押して"), "{}", page.body);
    assert!(!page.body.contains("権限がありません"), "{}", page.body);
    assert!(
        page.body.contains("修正の理由"),
        "the 修正 form is on the page"
    );
    assert!(
        !page.body.contains("name=\"action\" value=\"save\""),
        "no save button: the view, not the editor"
    );
}

/// この値を採用 in the editor is one of the editor's buttons: what was typed in other fields
/// is saved with it, and the conflicting item takes the chosen value, not the one its field
/// showed.
#[tokio::test]
async fn adopting_a_value_in_the_editor_keeps_what_was_typed_elsewhere() {
    let t = TestNode::start(NodeRole::Hospital).await;
    let doctor = t.node.login("doctor", "demo").await.unwrap().principal;
    let clerk = t.node.login("clerk", "demo").await.unwrap().principal;
    let values = nsdb::testing::required_values(&t.node, "rinko-006", "キョウゴウ タロウ");
    let d = t
        .node
        .create_sheet(&doctor, "rinko-006", &values)
        .await
        .unwrap();
    let id = d.row.id.clone();
    for (who, address) in [(&clerk, "事務の住所"), (&doctor, "医師の住所")] {
        let typed = [("patient.address".to_string(), address.to_string())].into();
        t.node
            .update_sheet_since(who, &id, &d.version, &typed)
            .await
            .expect("saved");
    }
    let mut c = Client::new(&t);
    let csrf = c.ui_login("doctor").await;
    let editor = c.get(&format!("/sheets/{id}/edit")).await;
    assert!(
        editor
            .body
            .contains("form=\"sheet\" name=\"action\" value=\"adopt:patient.address:事務の住所\""),
        "{}",
        editor.body
    );
    let version = t
        .node
        .get_sheet(&doctor, &id)
        .await
        .unwrap()
        .version
        .join(",");
    let r = c
        .form(
            &format!("/sheets/{id}"),
            &[
                ("csrf", &csrf),
                ("_version", &version),
                ("action", "adopt:patient.address:事務の住所"),
                ("patient.address", "医師の住所"),
                ("patient.name_kana", "サイヨウ タロウ"),
            ],
        )
        .await;
    assert_eq!(r.location(), format!("/sheets/{id}/edit#f-patient-address"));
    let after = t.node.get_sheet(&doctor, &id).await.unwrap();
    assert!(after.conflicts.is_empty(), "{:?}", after.conflicts);
    assert_eq!(after.items["patient.address"], "事務の住所");
    assert_eq!(after.items["patient.name_kana"], "サイヨウ タロウ");
}

/// A save held over an expired session is saved on sign-in only by the user who typed it: at a
/// shared terminal, someone else signing in does not save it under their name.
#[tokio::test]
async fn a_held_save_is_not_saved_under_another_users_name() {
    let t = TestNode::start(NodeRole::Hospital).await;
    let id = sheet_with(&t, "rinko-006", &[]).await;
    let mut c = Client::new(&t);
    let csrf = c.ui_login("clerk").await;
    let editor = c.get(&format!("/sheets/{id}/edit")).await;
    let (version, author) = (
        hidden_value(&editor.body, "_version"),
        hidden_value(&editor.body, "_author"),
    );
    expire_sessions(&t).await;
    let r = c
        .form(
            &format!("/sheets/{id}"),
            &[
                ("csrf", &csrf),
                ("_version", &version),
                ("_author", &author),
                ("action", "save"),
                ("patient.address", "事務が打った住所"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let (login_csrf, held) = (hidden_csrf(&r.body), hidden_value(&r.body, "_resume_body"));
    let r = c
        .form(
            "/login",
            &[
                ("csrf", &login_csrf),
                ("login", "doctor"),
                ("password", "demo"),
                ("_resume_sheet", &id),
                ("_resume_body", &held),
            ],
        )
        .await;
    assert_eq!(r.location(), format!("/sheets/{id}/edit#held-other"));
    let page = c.get(&format!("/sheets/{id}/edit")).await;
    assert!(
        page.body.contains("別の利用者のものだったため"),
        "{}",
        page.body
    );
    let doctor = t.node.login("doctor", "demo").await.unwrap().principal;
    let stored = t.node.get_sheet(&doctor, &id).await.unwrap();
    assert!(
        !stored.items.contains_key("patient.address"),
        "{:?}",
        stored.items
    );
}
