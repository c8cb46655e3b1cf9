//! TLS on the web listener: the server certificate an operator installs (`tls = { cert = "…pem",
//! key = "…pem" }` in the config), loaded into rustls (ring), and what `nsdb doctor` checks of it
//! (readable, in its validity period, matching the key). A node without TLS listens on loopback
//! only ([`check_listen`]): plain HTTP is for the demo and for a TLS terminator on the same
//! machine. This module must never print or log a private key.
//!
//! With `client_certs = "required"` the listener also asks every client for a terminal
//! certificate issued by the node's terminal CA ([`TerminalGate`], [`server_config_for_terminals`]):
//! a connection without a valid, unrevoked one fails in the TLS handshake, before any page.
//! The CA and the revoked serials come from the database (`ops::terminals`); a revocation
//! loads a new CRL into the gate, which new connections use at once, without a restart.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer, UnixTime};
use serde::Deserialize;

/// Where the server certificate and its key are (PEM files; relative paths are relative to the
/// config file), and whether terminals must show a certificate. The certificate file may hold
/// the chain after the server's certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    /// The server certificate (PEM), optionally followed by its chain.
    pub cert: PathBuf,
    /// The certificate's private key (PEM, mode 600).
    pub key: PathBuf,
    /// Whether every client must show a terminal certificate of this node.
    pub client_certs: ClientCerts,
}

/// The config's `tls` table as written: [`TlsConfig`] once both files are given.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TlsFile {
    /// The server certificate (PEM), optionally followed by its chain.
    pub cert: Option<PathBuf>,
    /// The certificate's private key (PEM, mode 600).
    pub key: Option<PathBuf>,
    /// `"required"`: every browser or client must show a terminal certificate issued by this
    /// node (端末証明書, `nsdb terminal issue` or the 責任者's screen); a connection without a
    /// valid, unrevoked one fails in the TLS handshake, before the sign-in page. `"off"` (the
    /// default): none is asked for.
    pub client_certs: Option<ClientCerts>,
}

impl TlsFile {
    /// The table with its paths relative to `base`. Errors: a table without both files (client
    /// certificates are checked in the TLS handshake, so they need TLS).
    pub fn resolve(self, base: &Path) -> Result<TlsConfig, String> {
        let client_certs = self.client_certs.unwrap_or_default();
        match (self.cert, self.key) {
            (Some(cert), Some(key)) => Ok(TlsConfig {
                cert: base.join(cert),
                key: base.join(key),
                client_certs,
            }),
            _ if client_certs == ClientCerts::Required => Err(
                "tls.client_certs = \"required\" needs TLS on the web listener: client certificates are checked in the TLS handshake. Give tls.cert and tls.key as well (tls = { cert = \"server.pem\", key = \"server.key\", client_certs = \"required\" }); a TLS terminator in front of the node must check them itself".to_string(),
            ),
            _ => Err("tls needs both cert and key (tls = { cert = \"server.pem\", key = \"server.key\" })".to_string()),
        }
    }
}

/// Whether the web listener asks clients for a terminal certificate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ClientCerts {
    // None is asked for (the default). (Plain comments: the configuration reference lists the
    // values as an enum.)
    #[default]
    Off,
    // Every connection must show a valid, unrevoked terminal certificate of this node.
    Required,
}

/// What is wrong with the listener's TLS setup, saying what to do.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error(
        "refusing to listen on {addr} without TLS: plain HTTP is served on loopback only (127.0.0.1 or ::1). Add tls = {{ cert = \"server.pem\", key = \"server.key\" }} to the config, or listen on 127.0.0.1 behind a TLS terminator"
    )]
    PlainBeyondLoopback { addr: SocketAddr },
    #[error("cannot read the TLS {what} {}: {reason}", path.display())]
    Unreadable {
        what: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error("the TLS certificate {} holds no certificate (expected PEM \"BEGIN CERTIFICATE\")", path.display())]
    NoCertificate { path: PathBuf },
    #[error("the TLS certificate {} cannot be parsed: {reason}", path.display())]
    BadCertificate { path: PathBuf, reason: String },
    #[error(
        "the TLS certificate {} is not valid now: valid from {not_before} to {not_after} (UTC); install a current one",
        path.display()
    )]
    OutsideValidity {
        path: PathBuf,
        not_before: String,
        not_after: String,
    },
    #[error(
        "the TLS key {} does not belong to the certificate {}: install the key the certificate was issued for",
        key.display(),
        cert.display()
    )]
    KeyMismatch { cert: PathBuf, key: PathBuf },
    #[error(
        "the TLS key {} can be read by others (mode {mode:o}): make it readable by the node's user only (chmod 600 {})",
        path.display(),
        path.display()
    )]
    KeyNotPrivate { path: PathBuf, mode: u32 },
    #[error("the TLS certificate and key cannot be used: {0}")]
    Rustls(String),
    #[error("the terminal CA or its revocation list cannot be used: {0}")]
    TerminalCa(String),
}

/// The crypto the listener uses (ring, as the sync layer does).
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Refuses a plain-HTTP listener beyond loopback. Errors: [`TlsError::PlainBeyondLoopback`].
pub fn check_listen(addr: SocketAddr, tls: Option<&TlsConfig>) -> Result<(), TlsError> {
    if tls.is_none() && !addr.ip().is_loopback() {
        return Err(TlsError::PlainBeyondLoopback { addr });
    }
    Ok(())
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let unreadable = |reason: String| TlsError::Unreadable {
        what: "certificate",
        path: path.to_path_buf(),
        reason,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| unreadable(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| unreadable(e.to_string()))?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    private_to_owner(path)?;
    PrivateKeyDer::from_pem_file(path).map_err(|e| TlsError::Unreadable {
        what: "key",
        path: path.to_path_buf(),
        reason: match e {
            rustls_pki_types::pem::Error::Io(io)
                if io.kind() == std::io::ErrorKind::PermissionDenied =>
            {
                format!(
                    "{io}: the node's user cannot read it; give it to that user (e.g. chown nsdb {} && chmod 600 {})",
                    path.display(),
                    path.display()
                )
            }
            e => e.to_string(),
        },
    })
}

/// Refuses a TLS key others may read, as the database key is refused: the key is what lets
/// anyone pose as the node.
fn private_to_owner(path: &Path) -> Result<(), TlsError> {
    match nsdb_provisioning::open_to_others(path) {
        Some(mode) => Err(TlsError::KeyNotPrivate {
            path: path.to_path_buf(),
            mode,
        }),
        None => Ok(()),
    }
}

/// The certificate's validity period, as the doctor reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateSummary {
    /// The subject, e.g. `CN=nsdb.example-hospital.jp`.
    pub subject: String,
    /// End of validity, Unix seconds.
    pub not_after: i64,
    /// Whole days from `now` until `not_after`.
    pub days_left: i64,
}

/// Checks the installed certificate at `now_ms` (Unix ms): both files readable, the first
/// certificate parses and is within its validity period, and the key is the certificate's.
/// Errors: the first of [`TlsError`]'s cases that applies.
pub fn examine(tls: &TlsConfig, now_ms: i64) -> Result<CertificateSummary, TlsError> {
    let certs = read_certs(&tls.cert)?;
    let key = read_key(&tls.key)?;
    let (_, leaf) = x509_parser::parse_x509_certificate(certs[0].as_ref()).map_err(|e| {
        TlsError::BadCertificate {
            path: tls.cert.clone(),
            reason: e.to_string(),
        }
    })?;
    let validity = leaf.validity();
    let (from, to) = (
        validity.not_before.timestamp(),
        validity.not_after.timestamp(),
    );
    let now = now_ms / 1000;
    if now < from || now > to {
        return Err(TlsError::OutsideValidity {
            path: tls.cert.clone(),
            not_before: validity.not_before.to_string(),
            not_after: validity.not_after.to_string(),
        });
    }
    let signing = provider()
        .key_provider
        .load_private_key(key)
        .map_err(|e| TlsError::Rustls(e.to_string()))?;
    let subject = leaf.subject().to_string();
    CertifiedKey::new(certs.clone(), signing)
        .keys_match()
        .map_err(|_| TlsError::KeyMismatch {
            cert: tls.cert.clone(),
            key: tls.key.clone(),
        })?;
    Ok(CertificateSummary {
        subject,
        not_after: to,
        days_left: (to - now) / 86_400,
    })
}

/// The listener's rustls configuration (TLS 1.2 and 1.3, HTTP/2 and HTTP/1.1), after the checks
/// of [`examine`]. Errors: as [`examine`].
pub fn server_config(tls: &TlsConfig, now_ms: i64) -> Result<ServerConfig, TlsError> {
    examine(tls, now_ms)?;
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Rustls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(read_certs(&tls.cert)?, read_key(&tls.key)?)
        .map_err(|e| TlsError::Rustls(e.to_string()))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// The listener's configuration when terminals must show a certificate: as [`server_config`],
/// with every client's certificate checked by `gate` (loaded first: [`TerminalGate::load`]).
/// Errors: as [`server_config`]; [`TlsError::TerminalCa`] when the gate holds no CA.
pub fn server_config_for_terminals(
    tls: &TlsConfig,
    now_ms: i64,
    gate: Arc<TerminalGate>,
) -> Result<ServerConfig, TlsError> {
    examine(tls, now_ms)?;
    let hints = gate
        .current()
        .ok_or_else(|| TlsError::TerminalCa("no terminal CA loaded".into()))?
        .root_hint_subjects()
        .to_vec();
    let verifier = Arc::new(GateVerifier {
        gate,
        hints,
        provider: provider(),
    });
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Rustls(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(read_certs(&tls.cert)?, read_key(&tls.key)?)
        .map_err(|e| TlsError::Rustls(e.to_string()))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// What the listener checks terminal certificates against: the node's terminal CA as the only
/// root and its current CRL. Empty until [`TerminalGate::load`]; loaded again at each
/// revocation, and new connections use the new CRL at once (connections already open keep
/// going until they close: at most [`HEADER_READ_TIMEOUT`] idle).
#[derive(Default)]
pub struct TerminalGate {
    current: RwLock<Option<Arc<dyn ClientCertVerifier>>>,
    /// PKCS#12 files just issued, waiting for their one download (`ops::terminals`).
    pub(crate) downloads: super::terminals::HeldDownloads,
}

impl std::fmt::Debug for TerminalGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TerminalGate")
            .field("loaded", &self.is_loaded())
            .finish()
    }
}

impl TerminalGate {
    /// Checks client certificates from now on against the CA `ca_der` (the only root) and the
    /// CRL `crl_der` it signed. Errors: [`TlsError::TerminalCa`] for a CA or CRL rustls refuses.
    pub fn load(&self, ca_der: &[u8], crl_der: &[u8]) -> Result<(), TlsError> {
        let bad = |e: String| TlsError::TerminalCa(e);
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from(ca_der.to_vec()))
            .map_err(|e| bad(e.to_string()))?;
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            provider(),
        )
        .with_crls([CertificateRevocationListDer::from(crl_der.to_vec())])
        .build()
        .map_err(|e| bad(e.to_string()))?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Some(verifier);
        Ok(())
    }

    /// Whether a CA was loaded (client certificates are being required).
    pub fn is_loaded(&self) -> bool {
        self.current().is_some()
    }

    fn current(&self) -> Option<Arc<dyn ClientCertVerifier>> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// The listener's client verifier: asks every client for a certificate and checks it with the
/// gate's verifier of the moment (WebPKI: chain to the terminal CA, validity period,
/// clientAuth usage, the CRL).
#[derive(Debug)]
struct GateVerifier {
    gate: Arc<TerminalGate>,
    hints: Vec<rustls::DistinguishedName>,
    provider: Arc<CryptoProvider>,
}

impl ClientCertVerifier for GateVerifier {
    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        &self.hints
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        match self.gate.current() {
            Some(v) => v.verify_client_cert(end_entity, intermediates, now),
            None => Err(rustls::Error::General("no terminal CA loaded".into())),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// How long a client has to send a request's head (request line and headers) once the listener
/// waits for one, on a new connection or a kept-alive one; then the connection is closed
/// without an answer. A browser or API client sends a head (a few KiB at most) in one write,
/// which arrives within milliseconds on a hospital network and well within a second on a slow
/// link, so 5 s is ample for every real client, while a client that stalls (or trickles) in
/// its head is let go soon, and always well before a stop's bound
/// (`cli::serve::STOP_GRACE`, 20 s): a stalled head never holds a stop. It also closes
/// kept-alive connections idle for 5 s; browsers open a new one (and resend) as usual.
/// Bodies are not bounded by it (an upload may take long); a stop bounds them.
pub const HEADER_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// The web listener's HTTP settings, plain or TLS: [`HEADER_READ_TIMEOUT`] (hyper applies no
/// header timeout without a timer: a half-sent head was waited for forever).
fn web_server<A>(mut server: axum_server::Server<A>) -> axum_server::Server<A> {
    server
        .http_builder()
        .http1()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    server
}

/// Serves `app` over TLS on an already bound listener until `handle` is told to stop.
/// The peer address reaches the handlers (`ConnectInfo`), as on the plain listener. A request's
/// head must arrive within [`HEADER_READ_TIMEOUT`].
pub async fn serve(
    listener: std::net::TcpListener,
    config: ServerConfig,
    app: axum::Router,
    handle: axum_server::Handle,
) -> std::io::Result<()> {
    let rustls = axum_server::tls_rustls::RustlsConfig::from_config(Arc::new(config));
    web_server(axum_server::from_tcp_rustls(listener, rustls))
        .handle(handle)
        .serve(app.into_make_service_with_connect_info::<SocketAddr>())
        .await
}

/// Serves `app` in plain HTTP (loopback only: [`check_listen`]) on an already bound listener
/// until `handle` is told to stop, with the TLS listener's limits ([`HEADER_READ_TIMEOUT`]) and
/// the peer address for the handlers.
pub async fn serve_plain(
    listener: std::net::TcpListener,
    app: axum::Router,
    handle: axum_server::Handle,
) -> std::io::Result<()> {
    web_server(axum_server::from_tcp(listener))
        .handle(handle)
        .serve(app.into_make_service_with_connect_info::<SocketAddr>())
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_is_refused_beyond_loopback() {
        let err = check_listen("0.0.0.0:8443".parse().unwrap(), None).unwrap_err();
        assert!(
            err.to_string()
                .contains("refusing to listen on 0.0.0.0:8443 without TLS")
        );
        assert!(check_listen("192.168.1.10:80".parse().unwrap(), None).is_err());
        assert!(check_listen("127.0.0.1:8080".parse().unwrap(), None).is_ok());
        assert!(check_listen("[::1]:8080".parse().unwrap(), None).is_ok());
        let tls = TlsConfig {
            cert: "c.pem".into(),
            key: "k.pem".into(),
            client_certs: ClientCerts::Off,
        };
        assert!(check_listen("0.0.0.0:8443".parse().unwrap(), Some(&tls)).is_ok());
    }

    #[test]
    fn client_certificates_without_tls_are_refused_saying_why() {
        let table = |text: &str| toml::from_str::<TlsFile>(text).unwrap();
        let err = table("client_certs = \"required\"")
            .resolve(Path::new("/etc/nsdb"))
            .unwrap_err();
        assert!(
            err.contains("needs TLS") && err.contains("tls.cert"),
            "{err}"
        );
        let tls = table("cert = \"s.pem\"\nkey = \"s.key\"\nclient_certs = \"required\"")
            .resolve(Path::new("/etc/nsdb"))
            .unwrap();
        assert_eq!(tls.client_certs, ClientCerts::Required);
        assert_eq!(tls.cert, Path::new("/etc/nsdb/s.pem"));
        let tls = table("cert = \"s.pem\"\nkey = \"s.key\"")
            .resolve(Path::new("/etc/nsdb"))
            .unwrap();
        assert_eq!(tls.client_certs, ClientCerts::Off);
    }
}
