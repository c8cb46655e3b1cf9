//! 医療機関ユーザ検索 and its actions, as the 責任者 uses them: the search's filters, columns
//! and paging; パスワード初期化, アカウントロック and ロック解除, 削除, 責任者変更, 有効期限 and
//! the IDパスワード通知書; each refused to others and on one's own account, each audited; and
//! no success notice can be shown by a crafted address. Through the node's router, in-process.

mod support;

use axum::http::StatusCode;
use nsdb::accounts::policy::UserKind;
use nsdb::config::NodeRole;
use nsdb::testing::TestNode;
use support::{Client, hidden_csrf};

async fn sql(t: &TestNode, statement: &'static str) {
    t.node
        .store
        .write(move |c| c.execute_batch(statement).map_err(nsdb::Error::from))
        .await
        .unwrap();
}

async fn user_id(t: &TestNode, login: &str) -> u64 {
    let login = login.to_string();
    t.node
        .store
        .read(move |c| {
            c.query_row("SELECT id FROM users WHERE login = ?1", [&login], |r| {
                r.get::<_, i64>(0)
            })
            .map_err(nsdb::Error::from)
        })
        .await
        .unwrap() as u64
}

async fn audit_of(t: &TestNode, action: &str) -> Vec<(Option<String>, Option<String>)> {
    let action = action.to_string();
    t.node
        .store
        .read(move |c| {
            let mut st =
                c.prepare("SELECT target, detail FROM audit WHERE action = ?1 ORDER BY seq")?;
            let rows = st
                .query_map([&action], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok::<_, nsdb::Error>(rows)
        })
        .await
        .unwrap()
}

/// Signs in with a password; the status and where it led.
async fn sign_in_with(t: &TestNode, login: &str, password: &str) -> (StatusCode, String) {
    let mut c = Client::new(t);
    let page = c.get("/login").await;
    let csrf = hidden_csrf(&page.body);
    let r = c
        .form(
            "/login",
            &[("csrf", &csrf), ("login", login), ("password", password)],
        )
        .await;
    if r.status != StatusCode::SEE_OTHER {
        // The refusal's words (the page also holds a fresh CSRF token).
        let words = r
            .body
            .split("role=\"alert\">")
            .nth(1)
            .and_then(|s| s.split('<').next())
            .unwrap_or("")
            .to_string();
        return (r.status, words);
    }
    let next = c.get("/").await;
    (r.status, next.location().to_string())
}

async fn admin(t: &TestNode) -> (Client, String) {
    let mut c = Client::new(t);
    let csrf = c.ui_login("admin").await;
    (c, csrf)
}

#[tokio::test]
async fn the_search_filters_by_kind_and_name_pages_by_ten_and_is_audited_without_names() {
    let t = TestNode::start(NodeRole::Hospital).await;
    let own = t.node.config.institution.code.clone();
    for n in 0..11 {
        t.add_user(&format!("clerk{n:02}"), UserKind::Clerk, &own)
            .await;
    }
    let (mut c, _) = admin(&t).await;
    let r = c.get("/admin/users").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    for column in [
        "ユーザ種別",
        "医療機関",
        "部署 (部門/診療科)",
        "ユーザID/氏名",
        "有効期限",
        "操作",
    ] {
        assert!(r.body.contains(column), "column {column}");
    }
    // 3 demo users and 11 clerks: two pages of ten.
    assert!(r.body.contains("検索結果件数 14件"), "{}", r.body);
    assert!(r.body.contains("1 / 2"));
    let second = c
        .get("/admin/users?kind=&institution=&family=&given=&page=2")
        .await;
    assert!(second.body.contains("2 / 2") && second.body.contains("前へ"));

    let clerks = c.get("/admin/users?kind=clerk").await;
    assert!(clerks.body.contains("検索結果件数 12件"), "{}", clerks.body);
    assert!(!clerks.body.contains("鈴木 太郎"));

    let by_name = c
        .get("/admin/users?family=%E7%94%B0%E4%B8%AD&given=%E8%8A%B1")
        .await; // 田中 / 花
    assert!(
        by_name.body.contains("検索結果件数 1件"),
        "{}",
        by_name.body
    );
    assert!(by_name.body.contains("clerk/ 田中 花子"));
    // The admin's own row offers nothing but says why.
    let all = c.get("/admin/users").await;
    assert!(all.body.contains("ご自身のアカウントは操作できません"));

    // Another institution is refused, not silently replaced by one's own.
    let other = c.get("/admin/users?institution=1399999999").await;
    assert_eq!(other.status, StatusCode::FORBIDDEN);

    let searches = audit_of(&t, "user_search").await;
    assert!(searches.len() >= 5);
    let named = &searches[3].1.clone().unwrap();
    assert!(
        named.contains("family=yes given=yes") && named.contains("total=1"),
        "{named}"
    );
    assert!(
        searches
            .iter()
            .all(|(_, d)| !d.clone().unwrap().contains("田中"))
    );

    // Nobody but a 責任者 reaches the search or an action.
    let mut clerk = Client::new(&t);
    let csrf = clerk.ui_login("clerk").await;
    assert_eq!(
        clerk.get("/admin/users").await.status,
        StatusCode::FORBIDDEN
    );
    let doctor_id = user_id(&t, "doctor").await;
    let r = clerk
        .form(
            &format!("/admin/users/{doctor_id}/lock"),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(
        sign_in_with(&t, "doctor", "demo").await.0,
        StatusCode::SEE_OTHER
    );
}

#[tokio::test]
async fn a_password_reset_gives_a_one_time_password_that_must_be_changed() {
    let t = TestNode::start(NodeRole::Hospital).await;
    let (mut c, csrf) = admin(&t).await;
    let clerk = user_id(&t, "clerk").await;
    // The button asks first, and changes nothing yet.
    let ask = c
        .form(
            &format!("/admin/users/{clerk}/password-reset"),
            &[("csrf", &csrf), ("back", "kind=clerk&page=1")],
        )
        .await;
    assert_eq!(ask.status, StatusCode::OK, "{}", ask.body);
    assert!(ask.body.contains("パスワード初期化の確認"), "{}", ask.body);
    assert!(ask.body.contains("clerk/ 田中 花子"));
    assert!(ask.body.contains("name=\"confirmed\" value=\"yes\""));
    assert!(
        ask.body
            .contains("href=\"/admin/users?kind=clerk&amp;page=1\"")
    );
    assert!(!ask.body.contains("initial-password"));
    assert_eq!(
        sign_in_with(&t, "clerk", "demo").await.0,
        StatusCode::SEE_OTHER
    );
    assert!(audit_of(&t, "user_password_reset").await.is_empty());
    let r = c
        .form(
            &format!("/admin/users/{clerk}/password-reset"),
            &[("csrf", &csrf), ("confirmed", "yes")],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let at = r
        .body
        .find("initial-password\">")
        .expect("the password is shown");
    let rest = &r.body[at + "initial-password\">".len()..];
    let password = rest[..rest.find('<').unwrap()].to_string();
    assert_eq!(password.chars().count(), 12);

    assert_eq!(
        sign_in_with(&t, "clerk", "demo").await.0,
        StatusCode::UNAUTHORIZED
    );
    let (status, to) = sign_in_with(&t, "clerk", &password).await;
    assert_eq!(
        (status, to.as_str()),
        (StatusCode::SEE_OTHER, "/account/password")
    );

    // Never stored in clear, never in the audit.
    let reset = audit_of(&t, "user_password_reset").await;
    assert_eq!(reset, [(Some(clerk.to_string()), None)]);
    let stored: String = t
        .node
        .store
        .read(move |c| {
            c.query_row(
                "SELECT password_hash FROM users WHERE id = ?1",
                [clerk as i64],
                |r| r.get(0),
            )
            .map_err(nsdb::Error::from)
        })
        .await
        .unwrap();
    assert!(stored.starts_with("$argon2id$") && !stored.contains(&password));

    // Not on one's own account: said in Japanese.
    let me = user_id(&t, "admin").await;
    let own = c
        .form(
            &format!("/admin/users/{me}/password-reset"),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(own.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(own.body.contains("ご自身のパスワードは初期化できません"));
    // And never without the session's CSRF token.
    let forged = c
        .form(
            &format!("/admin/users/{clerk}/password-reset"),
            &[("csrf", "x"), ("confirmed", "yes")],
        )
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_locked_account_cannot_sign_in_until_unlocked_and_the_list_says_so() {
    let t = TestNode::start(NodeRole::Hospital).await;
    let (_, wrong) = sign_in_with(&t, "clerk", "wrong-password").await;
    let (mut c, csrf) = admin(&t).await;
    let clerk = user_id(&t, "clerk").await;
    let r = c
        .form(&format!("/admin/users/{clerk}/lock"), &[("csrf", &csrf)])
        .await;
    assert_eq!(
        (r.status, r.location()),
        (StatusCode::SEE_OTHER, "/admin/users")
    );
    let list = c.get("/admin/users").await;
    assert!(list.body.contains("アカウントをロックしました"));
    assert!(list.body.contains("ロック中") && list.body.contains("ロック解除"));
    // The notice was shown once.
    assert!(
        !c.get("/admin/users")
            .await
            .body
            .contains("アカウントをロックしました")
    );
    assert_eq!(
        sign_in_with(&t, "clerk", "demo").await,
        (StatusCode::UNAUTHORIZED, wrong)
    );
    c.form(&format!("/admin/users/{clerk}/unlock"), &[("csrf", &csrf)])
        .await;
    assert_eq!(
        sign_in_with(&t, "clerk", "demo").await.0,
        StatusCode::SEE_OTHER
    );
    assert_eq!(audit_of(&t, "user_lock").await.len(), 1);
    assert_eq!(audit_of(&t, "user_unlock").await.len(), 1);
}

#[tokio::test]
async fn a_deleted_account_cannot_sign_in_and_leaves_the_list_but_not_the_history() {
    let t = TestNode::start(NodeRole::Hospital).await;
    let (mut c, csrf) = admin(&t).await;
    let clerk = user_id(&t, "clerk").await;
    // The button asks first, saying what happens to whom; nothing is deleted yet.
    let ask = c
        .form(
            &format!("/admin/users/{clerk}/delete"),
            &[("csrf", &csrf), ("back", "family=%E7%94%B0")],
        )
        .await;
    assert_eq!(ask.status, StatusCode::OK, "{}", ask.body);
    assert!(
        ask.body.contains("削除の確認") && ask.body.contains("clerk/ 田中 花子（医療クラーク等）")
    );
    assert!(ask.body.contains("ログインできなくなり"));
    assert!(ask.body.contains(">削除する</button>"));
    // キャンセル goes back to the search with its filters.
    assert!(
        ask.body
            .contains("href=\"/admin/users?family=%E7%94%B0\">キャンセル"),
        "{}",
        ask.body
    );
    assert!(c.get("/admin/users").await.body.contains("田中 花子"));
    assert!(audit_of(&t, "user_delete").await.is_empty());
    let r = c
        .form(
            &format!("/admin/users/{clerk}/delete"),
            &[
                ("csrf", &csrf),
                ("confirmed", "yes"),
                ("back", "family=%E7%94%B0"),
            ],
        )
        .await;
    assert_eq!(
        (r.status, r.location()),
        (StatusCode::SEE_OTHER, "/admin/users?family=%E7%94%B0"),
        "{}",
        r.body
    );
    let list = c.get("/admin/users").await;
    assert!(!list.body.contains("田中 花子"));
    assert!(list.body.contains("操作記録と臨床調査個人票には残ります"));
    assert_eq!(
        sign_in_with(&t, "clerk", "demo").await.0,
        StatusCode::UNAUTHORIZED
    );
    // The row stays: the audit still names the user by id, and acting again is refused.
    assert_eq!(
        audit_of(&t, "user_delete").await,
        [(Some(clerk.to_string()), None)]
    );
    let again = c
        .form(&format!("/admin/users/{clerk}/unlock"), &[("csrf", &csrf)])
        .await;
    assert_eq!(again.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(audit_of(&t, "user_admin_denied").await.len(), 1);
}

#[tokio::test]
async fn the_responsible_role_is_handed_over_to_a_doctor_after_a_confirmation() {
    let t = TestNode::start(NodeRole::Hospital).await;
    let (mut c, csrf) = admin(&t).await;
    let me = user_id(&t, "admin").await;
    let (doctor, clerk) = (user_id(&t, "doctor").await, user_id(&t, "clerk").await);
    // A clerk cannot take it: said beside the clerk's row, on the search page.
    let refused = c
        .form(
            &format!("/admin/users/{clerk}/responsible"),
            &[("csrf", &csrf), ("confirmed", "yes")],
        )
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(refused.body.contains("医療機関ユーザ検索"));
    assert!(
        refused.body.contains(&format!(
            "id=\"problem-{clerk}\" role=\"alert\">責任者を引き継げるのは指定医だけです"
        )),
        "{}",
        refused.body
    );

    // The button asks first: from whom to whom, and what each loses or gains.
    let ask = c
        .form(
            &format!("/admin/users/{doctor}/responsible"),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(ask.status, StatusCode::OK, "{}", ask.body);
    assert!(ask.body.contains("責任者変更の確認"));
    assert!(
        ask.body.contains(
            "医療機関責任者を あなた（admin/ 情報 管理） から doctor/ 鈴木 太郎 に引き継ぎます。"
        ),
        "{}",
        ask.body
    );
    assert!(ask.body.contains("利用者の管理はできなくなります"));
    assert!(audit_of(&t, "user_responsible").await.is_empty());

    let r = c
        .form(
            &format!("/admin/users/{doctor}/responsible"),
            &[("csrf", &csrf), ("confirmed", "yes")],
        )
        .await;
    assert_eq!(
        (r.status, r.location()),
        (StatusCode::SEE_OTHER, "/"),
        "{}",
        r.body
    );
    // Handed over, not added: the 責任者 account administers no more.
    assert_eq!(c.get("/admin/users").await.status, StatusCode::FORBIDDEN);
    assert_eq!(c.get("/").await.location(), "/monitor");
    let lock = c
        .form(&format!("/admin/users/{clerk}/lock"), &[("csrf", &csrf)])
        .await;
    assert_eq!(lock.status, StatusCode::FORBIDDEN);
    let holders: i64 = t
        .node
        .store
        .read(|c| {
            c.query_row(
                "SELECT count(*) FROM users WHERE responsible = 1",
                [],
                |r| r.get(0),
            )
            .map_err(nsdb::Error::from)
        })
        .await
        .unwrap();
    assert_eq!(holders, 1);

    // The doctor now manages users, still writes sheets, and cannot delete themself.
    let mut d = Client::new(&t);
    let dcsrf = d.ui_login("doctor").await;
    let list = d.get("/admin/users?kind=nanbyo_doctor").await;
    assert_eq!(list.status, StatusCode::OK);
    assert!(
        list.body.contains(
            "doctor/ 鈴木 太郎 <small class=\"badge responsible\">医療機関責任者</small>"
        ),
        "{}",
        list.body
    );
    let all = d.get("/admin/users?kind=admin").await;
    assert!(all.body.contains("admin/ 情報 管理") && !all.body.contains("医療機関責任者</small>"));
    assert_eq!(d.get("/sheets").await.status, StatusCode::OK);
    let own = d
        .form(
            &format!("/admin/users/{doctor}/delete"),
            &[("csrf", &dcsrf), ("confirmed", "yes")],
        )
        .await;
    assert!(own.body.contains("ご自身のアカウントは削除できません"));
    assert_eq!(
        audit_of(&t, "user_responsible").await,
        [(Some(doctor.to_string()), Some(format!("from={me}")))]
    );
}

#[tokio::test]
async fn an_expired_account_shows_as_such_and_signs_in_again_once_extended() {
    let t = TestNode::start(NodeRole::Hospital).await;
    let (_, wrong) = sign_in_with(&t, "clerk", "wrong-password").await;
    sql(
        &t,
        "UPDATE users SET expires_on = '2001-03-31' WHERE login = 'clerk'",
    )
    .await;
    let (mut c, csrf) = admin(&t).await;
    let list = c.get("/admin/users").await;
    assert!(list.body.contains("2001-03-31") && list.body.contains("期限切れ"));
    assert_eq!(
        sign_in_with(&t, "clerk", "demo").await,
        (StatusCode::UNAUTHORIZED, wrong)
    );

    let clerk = user_id(&t, "clerk").await;
    let past = c
        .form(
            &format!("/admin/users/{clerk}/expiry"),
            &[("csrf", &csrf), ("expires_on", "2001-04-01")],
        )
        .await;
    assert!(past.body.contains("今日"), "{}", past.body);
    let r = c
        .form(
            &format!("/admin/users/{clerk}/expiry"),
            &[("csrf", &csrf), ("expires_on", "R20.3.31")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let list = c.get("/admin/users").await;
    assert!(list.body.contains("有効期限を2038-03-31にしました"));
    assert!(!list.body.contains("期限切れ"));
    assert_eq!(
        sign_in_with(&t, "clerk", "demo").await.0,
        StatusCode::SEE_OTHER
    );
}

#[tokio::test]
async fn the_id_notice_is_an_a4_pdf_with_a_fresh_password_that_signs_in() {
    let t = TestNode::start(NodeRole::Hospital).await;
    let (mut c, csrf) = admin(&t).await;
    let clerk = user_id(&t, "clerk").await;
    let r = c
        .form(&format!("/admin/users/{clerk}/notice"), &[("csrf", &csrf)])
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.headers["content-type"], "application/pdf");
    assert!(r.raw.starts_with(b"%PDF-"));
    let text = pdf_extract::extract_text_from_mem(&r.raw).unwrap();
    let text: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    for expected in [
        "IDパスワード通知書",
        "医療機関名",
        "clerk",
        "田中花子",
        "初期パスワード",
    ] {
        assert!(text.contains(expected), "{expected} in {text}");
    }
    let after = text.split("ユーザIDclerk初期パスワード").nth(1).unwrap();
    let password: String = after.chars().take(12).collect();
    let (status, to) = sign_in_with(&t, "clerk", &password).await;
    assert_eq!(
        (status, to.as_str()),
        (StatusCode::SEE_OTHER, "/account/password")
    );
    assert_eq!(audit_of(&t, "user_notice").await.len(), 1);
}

#[tokio::test]
async fn a_crafted_address_shows_no_success_notice() {
    let t = TestNode::start(NodeRole::Hospital).await;
    let (mut c, _) = admin(&t).await;
    for url in [
        "/admin/users?reset=1",
        "/admin/users?done=1&notice=reset",
        "/monitor?done=1",
    ] {
        let r = c.get(url).await;
        assert_eq!(r.status, StatusCode::OK, "{url}");
        assert!(!r.body.contains("しました"), "{url}: {}", r.body);
    }
}

#[tokio::test]
async fn a_reissued_check_tool_key_is_downloaded_once_and_replaces_the_registered_one() {
    let t = TestNode::start(NodeRole::Hospital).await;
    let (mut c, csrf) = admin(&t).await;
    let clerk = user_id(&t, "clerk").await;
    let r = c
        .form(&format!("/admin/users/{clerk}/key"), &[("csrf", &csrf)])
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(
        r.headers["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment")
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("clerk.key");
    std::fs::write(&file, &r.body).unwrap();
    std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let key = nsdb_provisioning::sealed::UserKey::load(&file).unwrap();
    let registered: String = t
        .node
        .store
        .read(move |c| {
            c.query_row(
                "SELECT public_key FROM user_keys WHERE user_id = ?1",
                [clerk as i64],
                |r| r.get(0),
            )
            .map_err(nsdb::Error::from)
        })
        .await
        .unwrap();
    assert_eq!(registered, hex::encode(key.public_key()));
    // The node keeps the public half only, and the audit names the user, not the key.
    assert_eq!(
        audit_of(&t, "user_key_reissue").await,
        [(Some(clerk.to_string()), None)]
    );
    // A 責任者 account signs nothing with the check tool: refused, and nothing offered.
    t.add_user(
        "it-admin",
        UserKind::Admin,
        &t.node.config.institution.code.clone(),
    )
    .await;
    let it = user_id(&t, "it-admin").await;
    let refused = c
        .form(&format!("/admin/users/{it}/key"), &[("csrf", &csrf)])
        .await;
    assert!(
        refused.body.contains("指定医と医療クラーク等だけです"),
        "{}",
        refused.body
    );
    // Said beside that account's row, on the search.
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        refused
            .body
            .contains(&format!("id=\"problem-{it}\" role=\"alert\">"))
    );
}

#[tokio::test]
async fn a_refused_expiry_is_shown_beside_its_row_with_the_typed_value_and_the_search_kept() {
    let t = TestNode::start(NodeRole::Hospital).await;
    let (mut c, csrf) = admin(&t).await;
    let clerk = user_id(&t, "clerk").await;
    for (typed, words) in [
        ("2027-13-01", "有効期限「2027-13-01」を日付として読めません"),
        ("2020-01-01", "有効期限は今日"),
    ] {
        let r = c
            .form(
                &format!("/admin/users/{clerk}/expiry"),
                &[
                    ("csrf", &csrf),
                    ("expires_on", typed),
                    ("back", "kind=clerk&page=1"),
                ],
            )
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
        // The same search page, filtered as it was, not a separate error page.
        assert!(r.body.contains("医療機関ユーザ検索") && r.body.contains("検索結果件数 1件"));
        assert!(
            r.body.contains("<option value=\"clerk\" selected>"),
            "{}",
            r.body
        );
        // Beside the field, which keeps what was typed and points at the message.
        let field = format!("id=\"expires-{clerk}\"");
        let at = r.body.find(&field).expect("the clerk's 有効期限 box");
        let input = &r.body[at..at + r.body[at..].find('>').unwrap()];
        assert!(input.contains(&format!("value=\"{typed}\"")), "{input}");
        assert!(input.contains("aria-invalid=\"true\""), "{input}");
        assert!(
            input.contains(&format!("aria-describedby=\"problem-{clerk}\"")),
            "{input}"
        );
        assert!(
            r.body
                .contains(&format!("id=\"problem-{clerk}\" role=\"alert\">{words}")),
            "{}",
            r.body
        );
    }
    // Nothing was changed, and a good date goes back to the same search.
    let ok = c
        .form(
            &format!("/admin/users/{clerk}/expiry"),
            &[
                ("csrf", &csrf),
                ("expires_on", "R20.3.31"),
                ("back", "kind=clerk&page=1"),
            ],
        )
        .await;
    assert_eq!(
        (ok.status, ok.location()),
        (StatusCode::SEE_OTHER, "/admin/users?kind=clerk&page=1")
    );
    assert_eq!(audit_of(&t, "user_expiry").await.len(), 1);
}

#[tokio::test]
async fn a_lockout_after_wrong_passwords_shows_on_the_list_and_unlock_ends_it() {
    let t = TestNode::start(NodeRole::Hospital).await;
    for _ in 0..nsdb::accounts::LOCK_AFTER_FAILURES {
        sign_in_with(&t, "clerk", "wrong-password").await;
    }
    assert_eq!(
        sign_in_with(&t, "clerk", "demo").await.0,
        StatusCode::UNAUTHORIZED
    );
    let (mut c, csrf) = admin(&t).await;
    let clerk = user_id(&t, "clerk").await;
    let list = c.get("/admin/users?kind=clerk").await;
    assert!(
        list.body.contains("ロック中（パスワード連続失敗）"),
        "{}",
        list.body
    );
    assert!(!list.body.contains("ロック中（責任者によるロック）"));
    assert!(list.body.contains(&format!("/admin/users/{clerk}/unlock")));
    let r = c
        .form(&format!("/admin/users/{clerk}/unlock"), &[("csrf", &csrf)])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert!(
        !c.get("/admin/users?kind=clerk")
            .await
            .body
            .contains("ロック中")
    );
    assert_eq!(
        sign_in_with(&t, "clerk", "demo").await.0,
        StatusCode::SEE_OTHER
    );

    // A lock by the 責任者 says so.
    c.form(&format!("/admin/users/{clerk}/lock"), &[("csrf", &csrf)])
        .await;
    let list = c.get("/admin/users?kind=clerk").await;
    assert!(list.body.contains("ロック中（責任者によるロック）"));
}

#[tokio::test]
async fn resetting_a_second_factor_never_set_up_says_there_was_nothing_to_reset() {
    let t = TestNode::start(NodeRole::Hospital).await;
    let (mut c, csrf) = admin(&t).await;
    let r = c
        .form(
            "/admin/users/totp-reset",
            &[("csrf", &csrf), ("login", "doctor")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let list = c.get("/admin/users").await;
    assert!(
        list.body
            .contains("doctor は2段階認証を設定していないため、初期化するものはありませんでした"),
        "{}",
        list.body
    );
    assert!(!list.body.contains("2段階認証を初期化しました"));
    assert!(audit_of(&t, "totp_reset").await.is_empty());
}

#[tokio::test]
async fn an_account_of_a_kind_the_node_does_not_hold_signs_in_nowhere_and_sees_no_sheet() {
    let t = TestNode::start(NodeRole::Hospital).await;
    let own = t.node.config.institution.code.clone();
    // Stored before the command line refused it: a 厚生労働省職員 on a hospital node.
    t.add_user("mhlw", UserKind::Ministry, &own).await;
    assert_eq!(
        sign_in_with(&t, "mhlw", "demo").await.0,
        StatusCode::UNAUTHORIZED
    );
    assert!(matches!(
        t.node.login("mhlw", "demo").await,
        Err(nsdb::Error::BadCredentials)
    ));
    assert!(
        audit_of(&t, "login_failed")
            .await
            .iter()
            .any(|(_, d)| d.as_deref() == Some("kind not held by this node"))
    );
    // A session held before the account's kind changed ends too.
    let mut clerk = Client::new(&t);
    clerk.ui_login("clerk").await;
    assert_eq!(clerk.get("/sheets").await.status, StatusCode::OK);
    sql(
        &t,
        "UPDATE users SET kind = 'ministry' WHERE login = 'clerk'",
    )
    .await;
    let r = clerk.get("/sheets").await;
    assert_eq!(
        (r.status, r.location()),
        (StatusCode::SEE_OTHER, "/login"),
        "{}",
        r.body
    );
}

/// The same actions through the API (`/api/v1/users/{id}/…`), for a 責任者's own tooling: each
/// refused to anyone but the 責任者 and without a recent sign-in or 再認証, each audited as on
/// the screen, and the secrets it hands out never kept by a cache.
#[tokio::test]
async fn the_user_administration_actions_work_through_the_api_behind_the_role_and_reauth() {
    use axum::http::Method;
    let t = TestNode::start(NodeRole::Hospital).await;
    let clerk = user_id(&t, "clerk").await;
    let doctor = user_id(&t, "doctor").await;
    let admin = user_id(&t, "admin").await;
    let mut api = Client::new(&t);
    api.api_login("admin").await;
    let no_store = |r: &support::Reply| {
        r.headers
            .get(axum::http::header::CACHE_CONTROL)
            .is_some_and(|v| v == "no-store")
    };

    // アカウントロック and ロック解除.
    let r = api
        .send(
            Method::POST,
            &format!("/api/v1/users/{clerk}/lock"),
            "",
            String::new(),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    assert_eq!(
        sign_in_with(&t, "clerk", "demo").await.0,
        StatusCode::UNAUTHORIZED
    );
    let r = api
        .send(
            Method::POST,
            &format!("/api/v1/users/{clerk}/unlock"),
            "",
            String::new(),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    assert_eq!(
        sign_in_with(&t, "clerk", "demo").await.0,
        StatusCode::SEE_OTHER
    );

    // パスワード初期化: the one-time password signs in (to change it first); the old one no
    // longer does.
    let r = api
        .send(
            Method::POST,
            &format!("/api/v1/users/{clerk}/password-reset"),
            "",
            String::new(),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(no_store(&r));
    let password = r.json()["password"].as_str().unwrap().to_string();
    assert_eq!(r.json()["login"], "clerk");
    assert_eq!(
        sign_in_with(&t, "clerk", "demo").await.0,
        StatusCode::UNAUTHORIZED
    );
    let (status, to) = sign_in_with(&t, "clerk", &password).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(to.contains("/account/password"), "{to}");

    // IDパスワード通知書: a PDF, not cached.
    let r = api
        .send(
            Method::POST,
            &format!("/api/v1/users/{clerk}/notice"),
            "",
            String::new(),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.raw.starts_with(b"%PDF") && no_store(&r));

    // 暗号鍵再発行: the key file's text, once.
    let r = api
        .send(
            Method::POST,
            &format!("/api/v1/users/{doctor}/key"),
            "",
            String::new(),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let key = r.json()["key_file"].as_str().unwrap().to_string();
    assert!(key.len() == 64 && key.bytes().all(|b| b.is_ascii_hexdigit()) && no_store(&r));

    // 有効期限: a date that cannot be read is refused with what was typed; 和暦 is read.
    let expiry = format!("/api/v1/users/{clerk}/expiry");
    let r = api
        .json(
            Method::PUT,
            &expiry,
            serde_json::json!({"expires_on": "来年"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("「来年」")
    );
    let r = api
        .json(
            Method::PUT,
            &expiry,
            serde_json::json!({"expires_on": "R20.3.31"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    assert_eq!(
        audit_of(&t, "user_expiry").await[0].1.as_deref(),
        Some("expires_on=2038-03-31")
    );
    let r = api
        .json(
            Method::PUT,
            &expiry,
            serde_json::json!({"expires_on": null}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);

    // One's own account, an unknown one, and an id that is not a number.
    for (id, status) in [
        (admin.to_string(), StatusCode::UNPROCESSABLE_ENTITY),
        ("999999".to_string(), StatusCode::UNPROCESSABLE_ENTITY),
        ("clerk".to_string(), StatusCode::NOT_FOUND),
    ] {
        let r = api
            .send(
                Method::POST,
                &format!("/api/v1/users/{id}/lock"),
                "",
                String::new(),
            )
            .await;
        assert_eq!(r.status, status, "{id}: {}", r.body);
    }

    // Nobody else, and not without a recent sign-in or 再認証.
    let mut other = Client::new(&t);
    other.api_login("doctor").await;
    let r = other
        .send(
            Method::POST,
            &format!("/api/v1/users/{clerk}/lock"),
            "",
            String::new(),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    sql(&t, "UPDATE sessions SET reauth_at = reauth_at - 3600000").await;
    let r = api
        .send(
            Method::DELETE,
            &format!("/api/v1/users/{clerk}"),
            "",
            String::new(),
        )
        .await;
    assert_eq!(r.json()["error"]["code"], "reauth_required");
    let r = api
        .json(
            Method::POST,
            "/api/v1/session/reauth",
            serde_json::json!({"password": "demo"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);

    // 責任者変更, then 削除 of the clerk by the new 責任者.
    let r = api
        .send(
            Method::POST,
            &format!("/api/v1/users/{doctor}/responsible"),
            "",
            String::new(),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.json()["to_login"], "doctor");
    assert_eq!(r.json()["from_login"], "admin");
    let r = api
        .send(
            Method::DELETE,
            &format!("/api/v1/users/{clerk}"),
            "",
            String::new(),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::FORBIDDEN,
        "the former 責任者 still administers: {}",
        r.body
    );
    let mut doctor_api = Client::new(&t);
    doctor_api.api_login("doctor").await;
    let r = doctor_api
        .send(
            Method::DELETE,
            &format!("/api/v1/users/{clerk}"),
            "",
            String::new(),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    assert_eq!(
        sign_in_with(&t, "clerk", &password).await.0,
        StatusCode::UNAUTHORIZED
    );
    for action in [
        "user_lock",
        "user_unlock",
        "user_password_reset",
        "user_notice",
        "user_key_reissue",
        "user_responsible",
        "user_delete",
    ] {
        assert_eq!(audit_of(&t, action).await.len(), 1, "{action}");
    }
}
