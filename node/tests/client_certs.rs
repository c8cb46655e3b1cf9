//! Terminal certificates (端末証明書): a node whose listener requires them answers, over a real
//! TLS listener on loopback, only a client that shows a valid, unrevoked certificate of its own
//! terminal CA — read by reqwest (native-tls, OpenSSL) from the PKCS#12 file the node issued —
//! and refuses in the handshake a client without one, with a revoked one (on a new connection,
//! without a restart), with one of another CA and with an expired one. The 責任者 issues,
//! downloads once and revokes through the 端末証明書 screen; a clerk cannot reach it.

mod support;

use axum::http::StatusCode;
use nsdb::config::NodeRole;
use nsdb::ops::tls::{ClientCerts, TlsConfig, server_config_for_terminals};
use nsdb::testing::TestNode;
use support::{Client, hidden_csrf};

struct Listener {
    addr: std::net::SocketAddr,
    server_cert: Vec<u8>,
    handle: axum_server::Handle,
    _dir: tempfile::TempDir,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// The node's router on a TLS listener that requires terminal certificates.
async fn serve_requiring_terminals(t: &TestNode) -> Listener {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let tls = TlsConfig {
        cert: dir.path().join("server.pem"),
        key: dir.path().join("server.key"),
        client_certs: ClientCerts::Required,
    };
    std::fs::write(&tls.cert, cert.pem()).unwrap();
    nsdb_provisioning::write_secret_file(&tls.key, &key.serialize_pem()).unwrap();
    t.node.load_terminal_gate().await.unwrap();
    let config = server_config_for_terminals(&tls, now_ms(), t.node.terminal_gate.clone()).unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = axum_server::Handle::new();
    let app = nsdb::http::router(t.node.clone());
    tokio::spawn(nsdb::ops::tls::serve(listener, config, app, handle.clone()));
    Listener {
        addr,
        server_cert: cert.der().to_vec(),
        handle,
        _dir: dir,
    }
}

/// A new client (so a new connection) trusting the node's server certificate, with the
/// PKCS#12 file `p12` as its identity when given; the sign-in page's body, or the error.
async fn sign_in_page(l: &Listener, p12: Option<(&[u8], &str)>) -> Result<String, String> {
    let mut builder = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_der(&l.server_cert).unwrap())
        .resolve("localhost", l.addr)
        .pool_max_idle_per_host(0);
    if let Some((file, password)) = p12 {
        builder = builder.identity(
            reqwest::Identity::from_pkcs12_der(file, password).expect("OpenSSL reads the .p12"),
        );
    }
    let client = builder.build().unwrap();
    let url = format!("https://localhost:{}/login", l.addr.port());
    let reply = client
        .get(&url)
        .send()
        .await
        .map_err(|e| format!("{e:?}"))?;
    let status = reply.status();
    let body = reply.text().await.map_err(|e| format!("{e:?}"))?;
    assert_eq!(status, 200, "{body}");
    Ok(body)
}

#[tokio::test]
async fn only_a_terminal_with_a_valid_unrevoked_certificate_of_the_node_gets_a_page() {
    let t = TestNode::start(NodeRole::Hospital).await;
    let issued = t
        .node
        .issue_terminal_cert(None, "外来3番")
        .await
        .expect("issued");
    let l = serve_requiring_terminals(&t).await;

    // Without a certificate: the handshake fails, not even the sign-in page.
    let err = sign_in_page(&l, None).await.unwrap_err();
    assert!(!err.contains("ログイン"), "{err}");

    // With the issued PKCS#12 and its one-time password: the sign-in page.
    let file = (issued.p12.as_slice(), issued.password.as_str());
    let page = sign_in_page(&l, Some(file)).await.expect("admitted");
    assert!(page.contains("ログイン"), "{page}");

    // A certificate of another CA (another node's), though valid and for clientAuth: refused.
    let now_s = now_ms() / 1000;
    let other_ca =
        nsdb_provisioning::terminal::TerminalCa::create("nsdb 端末証明書CA 他院", now_s).unwrap();
    let foreign = other_ca
        .issue("外来3番", "他院", now_s - 60, now_s + 86_400)
        .unwrap();
    let foreign_p12 = nsdb_provisioning::terminal::pkcs12(&foreign, "外来3番", "pw-other").unwrap();
    assert!(
        sign_in_page(&l, Some((&foreign_p12, "pw-other")))
            .await
            .is_err()
    );

    // One of this node's CA whose year ended yesterday: refused.
    let expired = t
        .node
        .issue_terminal_cert_between(None, "病棟1", now_s - 400 * 86_400, now_s - 86_400)
        .await
        .unwrap();
    assert!(
        sign_in_page(&l, Some((&expired.p12, &expired.password)))
            .await
            .is_err()
    );

    // Revoked: the same identity is refused on the next connection, without a restart.
    t.node
        .revoke_terminal_cert(None, &issued.row.serial)
        .await
        .unwrap();
    assert!(sign_in_page(&l, Some(file)).await.is_err());
    // Another terminal's certificate still works.
    let other = t.node.issue_terminal_cert(None, "外来4番").await.unwrap();
    assert!(
        sign_in_page(&l, Some((&other.p12, &other.password)))
            .await
            .is_ok()
    );

    l.handle.shutdown();
}

async fn audit_of(
    t: &TestNode,
    action: &'static str,
) -> Vec<(Option<i64>, Option<String>, Option<String>)> {
    t.node
        .store
        .read(move |c| {
            let mut st = c.prepare(
                "SELECT user_id, target, detail FROM audit WHERE action = ?1 ORDER BY seq",
            )?;
            let rows = st
                .query_map([action], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok::<_, nsdb::Error>(rows)
        })
        .await
        .unwrap()
}

#[tokio::test]
async fn the_responsible_issues_downloads_once_and_revokes_and_a_clerk_is_refused() {
    let t = TestNode::start(NodeRole::Hospital).await;
    let mut c = Client::new(&t);
    let csrf = c.ui_login("admin").await;

    // The menu leads to the screen, which lists nothing yet.
    let page = c.get("/admin/terminals").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("href=\"/admin/terminals\""));
    assert!(page.body.contains("まだ発行していません"));

    // An empty name is refused beside the field.
    let refused = c
        .form("/admin/terminals", &[("csrf", &csrf), ("name", "  ")])
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(refused.body.contains("端末名を入力してください"));

    // Issued: the one-time password on the page, the file downloaded once.
    let issued = c
        .form("/admin/terminals", &[("csrf", &csrf), ("name", "外来3番")])
        .await;
    assert_eq!(issued.status, StatusCode::OK, "{}", issued.body);
    let password = issued
        .body
        .split("class=\"initial-password\">")
        .nth(1)
        .and_then(|s| s.split('<').next())
        .expect("the password shown")
        .to_string();
    assert_eq!(
        password.chars().count(),
        nsdb_provisioning::terminal::P12_PASSWORD_CHARS
    );
    let download = issued
        .body
        .split("action=\"")
        .map(|s| s.split('"').next().unwrap())
        .find(|a| a.ends_with("/download"))
        .expect("the download")
        .to_string();
    let file = c
        .form(&download, &[("csrf", &hidden_csrf(&issued.body))])
        .await;
    assert_eq!(file.status, StatusCode::OK, "{}", file.body);
    assert_eq!(file.headers["content-type"], "application/x-pkcs12");
    let (cert_der, _) = nsdb_provisioning::terminal::open_pkcs12(&file.raw, &password)
        .expect("the file opens with the password shown");
    assert!(!cert_der.is_empty());
    let again = c.form(&download, &[("csrf", &csrf)]).await;
    assert_ne!(again.status, StatusCode::OK);
    assert!(
        again.body.contains("もうダウンロードできません"),
        "{}",
        again.body
    );

    // Listed as 有効; 失効 asks first, then revokes.
    let list = c.get("/admin/terminals").await;
    assert!(
        list.body.contains("外来3番") && list.body.contains("有効"),
        "{}",
        list.body
    );
    let serial = download
        .trim_start_matches("/admin/terminals/")
        .trim_end_matches("/download")
        .to_string();
    let revoke = format!("/admin/terminals/{serial}/revoke");
    let confirm = c.form(&revoke, &[("csrf", &csrf)]).await;
    assert_eq!(confirm.status, StatusCode::OK);
    assert!(confirm.body.contains("失効の確認") && confirm.body.contains("外来3番"));
    assert!(
        t.node.terminal_certs(None).await.unwrap()[0]
            .revoked_at
            .is_none(),
        "nothing revoked before the confirmation"
    );
    let done = c
        .form(&revoke, &[("csrf", &csrf), ("confirmed", "yes")])
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    let list = c.get("/admin/terminals").await;
    assert!(list.body.contains("失効させました") && list.body.contains("失効"));
    assert!(
        !list
            .body
            .contains(&format!("/admin/terminals/{serial}/revoke"))
    );

    // Audited with ids only: never the password.
    let admin_id = {
        let rows = audit_of(&t, "terminal_issue").await;
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].1.as_deref(), Some(serial.as_str()));
        rows[0].0
    };
    assert!(admin_id.is_some());
    assert_eq!(audit_of(&t, "terminal_download").await.len(), 1);
    assert_eq!(
        audit_of(&t, "terminal_revoke").await[0].1.as_deref(),
        Some(serial.as_str())
    );
    assert!(!audit_of(&t, "terminal_list").await.is_empty());
    for action in [
        "terminal_issue",
        "terminal_download",
        "terminal_revoke",
        "terminal_list",
    ] {
        for (_, target, detail) in audit_of(&t, action).await {
            let text = format!("{target:?}{detail:?}");
            assert!(!text.contains(&password), "{action}: {text}");
        }
    }

    // A clerk is refused the screen and the actions.
    let mut clerk = Client::new(&t);
    let clerk_csrf = clerk.ui_login("clerk").await;
    assert_eq!(
        clerk.get("/admin/terminals").await.status,
        StatusCode::FORBIDDEN
    );
    let r = clerk
        .form(
            "/admin/terminals",
            &[("csrf", &clerk_csrf), ("name", "勝手な端末")],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(t.node.terminal_certs(None).await.unwrap().len(), 1);
}
