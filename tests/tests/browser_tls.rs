//! In a real browser over the node's TLS listener (a server certificate made for the test,
//! accepted with Chromium's `--ignore-certificate-errors`, the one switch it needs): a doctor
//! signs in over HTTPS with its Secure cookies; a clerk whose password is guessed ten times is
//! locked, and the right password then gets the very same words as a wrong one.

mod browser_support;

use std::sync::Arc;

use browser_support::{browser_with, driver, text_of, type_into, wait_url};
use fantoccini::key::Key;
use nsdb::config::NodeRole;
use nsdb::ops::tls::{ClientCerts, TlsConfig, server_config};
use nsdb::testing::TestNode;

/// The node's router over TLS on a free loopback port, with a certificate for `localhost`.
async fn serve_tls(t: &TestNode, dir: &std::path::Path) -> (u16, axum_server::Handle) {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let tls = TlsConfig {
        cert: dir.join("server.pem"),
        key: dir.join("server.key"),
        client_certs: ClientCerts::Off,
    };
    std::fs::write(&tls.cert, cert.pem()).unwrap();
    nsdb_provisioning::write_secret_file(&tls.key, &key.serialize_pem()).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let config = server_config(&tls, now).expect("certificate accepted");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = axum_server::Handle::new();
    let app = nsdb::http::router(Arc::clone(&t.node));
    tokio::spawn(nsdb::ops::tls::serve(listener, config, app, handle.clone()));
    (port, handle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_tls_a_doctor_signs_in_and_a_guessed_password_locks_with_the_same_words() {
    let Some(d) = driver().await else { return };
    let t = TestNode::start(NodeRole::Hospital).await;
    let dir = tempfile::tempdir().unwrap();
    let (port, handle) = serve_tls(&t, dir.path()).await;
    let c = browser_with(&d, &["--ignore-certificate-errors"]).await;
    let base = format!("https://localhost:{port}");

    c.goto(&format!("{base}/login")).await.unwrap();
    type_into(&c, "#login", "doctor").await;
    type_into(&c, "#password", &format!("demo{}", char::from(Key::Enter))).await;
    wait_url(&c, "/sheets").await;
    assert!(
        c.current_url()
            .await
            .unwrap()
            .as_str()
            .starts_with("https://")
    );

    // Ten wrong passwords for the clerk, then the right one: refused with the same words.
    let other = browser_with(&d, &["--ignore-certificate-errors"]).await;
    let mut wrong_words = String::new();
    for i in 0..nsdb::accounts::LOCK_AFTER_FAILURES {
        other.goto(&format!("{base}/login")).await.unwrap();
        type_into(&other, "#login", "clerk").await;
        type_into(
            &other,
            "#password",
            &format!("wrong-guess-{i}{}", char::from(Key::Enter)),
        )
        .await;
        wrong_words = text_of(&other, "[role=alert]").await;
    }
    assert!(wrong_words.contains("15分間"), "{wrong_words}");
    other.goto(&format!("{base}/login")).await.unwrap();
    type_into(&other, "#login", "clerk").await;
    type_into(
        &other,
        "#password",
        &format!("demo{}", char::from(Key::Enter)),
    )
    .await;
    let locked_words = text_of(&other, "[role=alert]").await;
    assert_eq!(
        locked_words, wrong_words,
        "a locked account's right password is answered as a wrong one"
    );
    assert!(
        other
            .current_url()
            .await
            .unwrap()
            .path()
            .starts_with("/login")
    );
    // The doctor, signed in before, is not affected.
    c.goto(&format!("{base}/sheets")).await.unwrap();
    wait_url(&c, "/sheets").await;
    c.close().await.unwrap();
    other.close().await.unwrap();
    handle.shutdown();
}
