//! TLS on the web listener: a node's router served with a certificate made for the test
//! answers over HTTPS to a client that trusts it, and to nothing else; the doctor's checks
//! catch a key that is not the certificate's and a certificate out of its validity period.

use std::sync::Arc;

use nsdb::config::NodeRole;
use nsdb::ops::tls::{TlsConfig, TlsError, examine, server_config};
use nsdb::testing::TestNode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::rustls;

struct Installed {
    _dir: tempfile::TempDir,
    tls: TlsConfig,
    cert_der: Vec<u8>,
}

fn install(params: rcgen::CertificateParams, key: &rcgen::KeyPair) -> Installed {
    let cert = params.self_signed(key).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let tls = TlsConfig {
        cert: dir.path().join("server.pem"),
        key: dir.path().join("server.key"),
        client_certs: nsdb::ops::tls::ClientCerts::Off,
    };
    std::fs::write(&tls.cert, cert.pem()).unwrap();
    nsdb_provisioning::write_secret_file(&tls.key, &key.serialize_pem()).unwrap();
    Installed {
        _dir: dir,
        tls,
        cert_der: cert.der().to_vec(),
    }
}

fn localhost() -> rcgen::CertificateParams {
    rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap()
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn client(trusted: Option<&[u8]>) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    if let Some(der) = trusted {
        roots.add(der.to_vec().into()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

const GET_LOGIN: &[u8] = b"GET /login HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";

#[tokio::test]
async fn a_node_answers_over_https_with_its_installed_certificate() {
    let t = TestNode::start(NodeRole::Hospital).await;
    let key = rcgen::KeyPair::generate().unwrap();
    let installed = install(localhost(), &key);
    let config = server_config(&installed.tls, now_ms()).expect("certificate accepted");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = axum_server::Handle::new();
    let app = nsdb::http::router(t.node.clone());
    let server = tokio::spawn(nsdb::ops::tls::serve(listener, config, app, handle.clone()));

    // A client that trusts the certificate gets the sign-in page, with a Secure cookie.
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = client(Some(&installed.cert_der))
        .connect(name.clone(), tcp)
        .await
        .expect("TLS handshake");
    tls.write_all(GET_LOGIN).await.unwrap();
    let mut answer = Vec::new();
    tls.read_to_end(&mut answer).await.ok();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("ログイン"), "not the sign-in page");
    let cookie = answer
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .expect("a cookie");
    assert!(
        cookie.contains("Secure") && cookie.contains("HttpOnly"),
        "{cookie}"
    );

    // A client that does not trust it cannot complete the handshake.
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    assert!(client(None).connect(name, tcp).await.is_err());

    // Plain HTTP to the TLS port gets no page.
    let mut plain = tokio::net::TcpStream::connect(addr).await.unwrap();
    plain.write_all(GET_LOGIN).await.unwrap();
    let mut answer = Vec::new();
    let _ = plain.read_to_end(&mut answer).await;
    assert!(
        !String::from_utf8_lossy(&answer).contains("ログイン"),
        "a page over plain HTTP"
    );

    handle.shutdown();
    let _ = server.await;
}

#[test]
fn the_doctor_catches_a_foreign_key_and_an_expired_certificate() {
    let key = rcgen::KeyPair::generate().unwrap();
    let good = install(localhost(), &key);
    let summary = examine(&good.tls, now_ms()).expect("a good certificate");
    assert!(summary.days_left > 300, "{summary:?}");

    // The key of another certificate.
    let other = rcgen::KeyPair::generate().unwrap();
    std::fs::remove_file(&good.tls.key).unwrap();
    nsdb_provisioning::write_secret_file(&good.tls.key, &other.serialize_pem()).unwrap();
    assert!(matches!(
        examine(&good.tls, now_ms()),
        Err(TlsError::KeyMismatch { .. })
    ));

    // A key others may read is refused, saying the command that puts it right.
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&good.tls.key, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let err = examine(&good.tls, now_ms()).unwrap_err();
    assert!(
        matches!(err, TlsError::KeyNotPrivate { mode: 0o644, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("chmod 600"), "{err}");

    // A certificate that ended in 2020.
    let mut old = localhost();
    old.not_before = rcgen::date_time_ymd(2019, 1, 1);
    old.not_after = rcgen::date_time_ymd(2020, 1, 1);
    let expired = install(old, &key);
    let err = examine(&expired.tls, now_ms()).unwrap_err();
    assert!(matches!(err, TlsError::OutsideValidity { .. }), "{err}");
    assert!(err.to_string().contains("install a current one"), "{err}");

    // Unreadable files say which.
    let missing = TlsConfig {
        cert: "/nonexistent/server.pem".into(),
        key: "/nonexistent/server.key".into(),
        client_certs: nsdb::ops::tls::ClientCerts::Off,
    };
    let err = examine(&missing, now_ms()).unwrap_err().to_string();
    assert!(err.contains("/nonexistent/server.pem"), "{err}");
}
