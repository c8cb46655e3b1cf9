//! Keys and pinned mutual TLS for sync connections: a node's TLS certificate is made from its
//! ed25519 key, and each side accepts a peer only by that peer's key (the hub: enrolled node
//! keys; a node: the hub's key). No certificate authority takes part.
//!
//! This module builds rustls and quinn configurations and checks certificates. It must never
//! accept a peer whose key it was not told to accept, never accept any signature scheme other
//! than ed25519, and never write a secret anywhere.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use sha2::{Digest, Sha256};

use crate::ids::NodeId;

/// The ALPN protocol name of sync connections; a peer speaking anything else is refused.
pub const ALPN: &[u8] = b"nsdb-sync/1";

/// The name the hub's certificate carries; nodes connect to it under this name.
pub const HUB_SERVER_NAME: &str = "nsdb-hub";

/// How long a connection may stay silent before it is considered dead: a hub that vanished
/// without closing (killed, unplugged) is noticed by its nodes within this time.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// How often a node pings the hub on an open connection, well under [`IDLE_TIMEOUT`], so NAT
/// bindings and the hub's idle timer stay fresh.
pub const KEEP_ALIVE: Duration = Duration::from_secs(3);

/// DER prefix of an ed25519 SubjectPublicKeyInfo (RFC 8410); the 32 key bytes follow.
const ED25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// DER prefix of an ed25519 PKCS#8 v1 private key (RFC 8410); the 32 seed bytes follow.
const ED25519_PKCS8_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

/// An ed25519 public key: what identifies a node to the other side of a connection.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PublicKey(pub [u8; 32]);

impl PublicKey {
    /// The node id of the node holding this key: the first half of SHA-256 over the key.
    pub fn node_id(&self) -> NodeId {
        let digest = Sha256::digest(self.0);
        let mut id = [0u8; 16];
        id.copy_from_slice(&digest[..16]);
        NodeId(id)
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({self})")
    }
}

/// A node's own key pair, as given by provisioning (the 32-byte ed25519 seed).
#[derive(Clone)]
pub struct LocalKey {
    seed: [u8; 32],
    public: PublicKey,
}

impl fmt::Debug for LocalKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalKey")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

/// Why a TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot make the node's TLS certificate from its key: {0}")]
    Certificate(String),
    #[error("cannot set up TLS for sync: {0}")]
    Config(String),
}

impl LocalKey {
    /// The key pair of the ed25519 secret `seed`.
    pub fn from_seed(seed: [u8; 32]) -> LocalKey {
        let public = ed25519_dalek::SigningKey::from_bytes(&seed)
            .verifying_key()
            .to_bytes();
        LocalKey {
            seed,
            public: PublicKey(public),
        }
    }

    pub fn public(&self) -> PublicKey {
        self.public
    }

    fn pkcs8(&self) -> Vec<u8> {
        let mut der = ED25519_PKCS8_PREFIX.to_vec();
        der.extend_from_slice(&self.seed);
        der
    }

    /// A self-signed certificate carrying this key, and the key in the form rustls takes.
    fn certificate(
        &self,
        name: &str,
    ) -> Result<(CertificateDer<'static>, PrivateKeyDer<'static>), TlsError> {
        let pkcs8 = PrivatePkcs8KeyDer::from(self.pkcs8());
        let pair = rcgen::KeyPair::from_pkcs8_der_and_sign_algo(&pkcs8, &rcgen::PKCS_ED25519)
            .map_err(|e| TlsError::Certificate(e.to_string()))?;
        let params = rcgen::CertificateParams::new(vec![name.to_owned()])
            .map_err(|e| TlsError::Certificate(e.to_string()))?;
        let cert = params
            .self_signed(&pair)
            .map_err(|e| TlsError::Certificate(e.to_string()))?;
        Ok((cert.der().clone(), PrivateKeyDer::Pkcs8(pkcs8)))
    }
}

/// The ed25519 key a certificate carries, or `None` when it carries another kind of key or is
/// not a well-formed certificate.
pub fn certificate_key(cert: &CertificateDer<'_>) -> Option<PublicKey> {
    let parsed = webpki::EndEntityCert::try_from(cert).ok()?;
    let spki = parsed.subject_public_key_info();
    let bytes: &[u8] = spki.as_ref();
    let key = bytes.strip_prefix(&ED25519_SPKI_PREFIX[..])?;
    Some(PublicKey(key.try_into().ok()?))
}

/// Decides which node keys the hub accepts; asked at every handshake, so a revoked key is
/// refused at the next one.
pub trait KeyDirectory: Send + Sync + fmt::Debug {
    fn accepts(&self, key: &PublicKey) -> bool;
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn ed25519_only(provider: &CryptoProvider) -> WebPkiSupportedAlgorithms {
    provider.signature_verification_algorithms
}

fn refused() -> rustls::Error {
    rustls::Error::InvalidCertificate(rustls::CertificateError::ApplicationVerificationFailure)
}

fn verify_tls13(
    message: &[u8],
    cert: &CertificateDer<'_>,
    dss: &DigitallySignedStruct,
    algorithms: &WebPkiSupportedAlgorithms,
) -> Result<HandshakeSignatureValid, rustls::Error> {
    if dss.scheme != SignatureScheme::ED25519 {
        return Err(rustls::Error::PeerIncompatible(
            rustls::PeerIncompatible::NoSignatureSchemesInCommon,
        ));
    }
    rustls::crypto::verify_tls13_signature(message, cert, dss, algorithms)
}

/// The node's check of the hub: exactly one key is accepted.
#[derive(Debug)]
struct PinnedHub {
    key: PublicKey,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for PinnedHub {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match certificate_key(end_entity) {
            Some(key) if key == self.key => Ok(ServerCertVerified::assertion()),
            _ => {
                tracing::warn!(target: "nsdb::sync", "refused a hub whose key is not the pinned hub key");
                Err(refused())
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::PeerIncompatible(
            rustls::PeerIncompatible::Tls13RequiredForQuic,
        ))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        vec![SignatureScheme::ED25519]
    }
}

/// The hub's check of a node: its key must be enrolled and not revoked, right now.
#[derive(Debug)]
struct EnrolledNodes {
    directory: Arc<dyn KeyDirectory>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for EnrolledNodes {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        match certificate_key(end_entity) {
            Some(key) if self.directory.accepts(&key) => Ok(ClientCertVerified::assertion()),
            Some(key) => {
                tracing::warn!(target: "nsdb::sync", node = %key.node_id(), "refused a node that is not enrolled or was revoked");
                Err(refused())
            }
            None => {
                tracing::warn!(target: "nsdb::sync", "refused a node certificate without an ed25519 key");
                Err(refused())
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::PeerIncompatible(
            rustls::PeerIncompatible::Tls13RequiredForQuic,
        ))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        vec![SignatureScheme::ED25519]
    }
}

fn transport(client: bool) -> Arc<quinn::TransportConfig> {
    let mut transport = quinn::TransportConfig::default();
    // IDLE_TIMEOUT (10 s) always fits a QUIC varint of milliseconds.
    transport.max_idle_timeout(quinn::IdleTimeout::try_from(IDLE_TIMEOUT).ok());
    if client {
        transport.keep_alive_interval(Some(KEEP_ALIVE));
    }
    // One stream per sync session; a handful in flight is plenty.
    transport.max_concurrent_bidi_streams(8u32.into());
    transport.max_concurrent_uni_streams(0u32.into());
    Arc::new(transport)
}

/// The hub's QUIC server configuration: its certificate from `key`, and mutual TLS accepting
/// the node keys `directory` accepts, asked at every connection (no session resumption).
pub fn hub_server_config(
    key: &LocalKey,
    directory: Arc<dyn KeyDirectory>,
) -> Result<quinn::ServerConfig, TlsError> {
    let provider = provider();
    let (cert, secret) = key.certificate(HUB_SERVER_NAME)?;
    let verifier = Arc::new(EnrolledNodes {
        directory,
        algorithms: ed25519_only(&provider),
    });
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![cert], secret)
        .map_err(|e| TlsError::Config(e.to_string()))?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    // No session resumption: a resumed TLS 1.3 session skips the client certificate check
    // (rustls restores the peer's certificate from the session and offers no hook to check
    // it again), so a node revoked since its last handshake would pass. Every connection makes
    // a full handshake, and `EnrolledNodes` is asked every time. Costs one ed25519 signature
    // per connection; nodes keep their connection open between sessions.
    tls.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    tls.send_tls13_tickets = 0;
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls)
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    config.transport_config(transport(false));
    Ok(config)
}

/// A node's QUIC client configuration: its certificate from `key`, accepting only `hub`.
pub fn node_client_config(key: &LocalKey, hub: PublicKey) -> Result<quinn::ClientConfig, TlsError> {
    let provider = provider();
    let (cert, secret) = key.certificate("nsdb-node")?;
    let verifier = Arc::new(PinnedHub {
        key: hub,
        algorithms: ed25519_only(&provider),
    });
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| TlsError::Config(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_auth_cert(vec![cert], secret)
        .map_err(|e| TlsError::Config(e.to_string()))?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls)
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let mut config = quinn::ClientConfig::new(Arc::new(crypto));
    config.transport_config(transport(true));
    Ok(config)
}

/// The key of the peer at the other end of an established connection.
pub fn peer_key(connection: &quinn::Connection) -> Option<PublicKey> {
    let identity = connection.peer_identity()?;
    let certs = identity.downcast::<Vec<CertificateDer<'static>>>().ok()?;
    certificate_key(certs.first()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_certificate_carries_the_key_it_was_made_from() {
        let key = LocalKey::from_seed([9; 32]);
        let (cert, _) = key.certificate("x").expect("certificate");
        assert_eq!(certificate_key(&cert), Some(key.public()));
        assert_eq!(
            key.public().node_id(),
            LocalKey::from_seed([9; 32]).public().node_id()
        );
        assert_eq!(certificate_key(&CertificateDer::from(vec![0u8; 40])), None);
    }

    /// Accepts the keys in the list, counting how often it is asked.
    #[derive(Debug, Default)]
    struct Listed {
        keys: std::sync::Mutex<Vec<PublicKey>>,
        asked: std::sync::atomic::AtomicUsize,
    }

    impl KeyDirectory for Listed {
        fn accepts(&self, key: &PublicKey) -> bool {
            self.asked.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            self.keys.lock().expect("lock").contains(key)
        }
    }

    /// A node that connected once and was revoked before it connects again is refused in the
    /// handshake itself: the second connection cannot resume the first's TLS session (which
    /// would skip the client certificate check), so the directory is asked again.
    #[tokio::test]
    async fn a_revoked_node_cannot_resume_its_earlier_session() {
        let hub_key = LocalKey::from_seed([1; 32]);
        let node_key = LocalKey::from_seed([2; 32]);
        let directory = Arc::new(Listed::default());
        directory.keys.lock().expect("lock").push(node_key.public());
        let server = quinn::Endpoint::server(
            hub_server_config(&hub_key, directory.clone()).expect("server config"),
            "127.0.0.1:0".parse().expect("addr"),
        )
        .expect("binds");
        let addr = server.local_addr().expect("addr");
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let accepting = server.clone();
        tokio::spawn(async move {
            while let Some(incoming) = accepting.accept().await {
                let tx = tx.clone();
                tokio::spawn(async move {
                    let handshake = incoming.await;
                    let _ = tx.send(handshake.is_ok());
                    if let Ok(c) = handshake {
                        // Stay up long enough for the node to receive any session ticket.
                        let _ = c.closed().await;
                    }
                });
            }
        });
        // One client endpoint for both connections: it keeps what it learnt for resumption.
        let mut client =
            quinn::Endpoint::client("127.0.0.1:0".parse().expect("addr")).expect("client");
        client.set_default_client_config(
            node_client_config(&node_key, hub_key.public()).expect("client config"),
        );
        let first = client
            .connect(addr, HUB_SERVER_NAME)
            .expect("connect")
            .await
            .expect("an enrolled node connects");
        assert_eq!(rx.recv().await, Some(true));
        // Let tickets (if any were sent) arrive before the connection ends.
        tokio::time::sleep(Duration::from_millis(200)).await;
        first.close(0u32.into(), b"done");
        let asked_once = directory.asked.load(std::sync::atomic::Ordering::SeqCst);
        assert_eq!(asked_once, 1);

        directory.keys.lock().expect("lock").clear();
        let second = client.connect(addr, HUB_SERVER_NAME).expect("connect");
        let _ = tokio::time::timeout(Duration::from_secs(5), second).await;
        assert_eq!(
            rx.recv().await,
            Some(false),
            "the hub completed a handshake with a revoked node"
        );
        assert_eq!(
            directory.asked.load(std::sync::atomic::Ordering::SeqCst),
            2,
            "the second handshake checked the node's key again"
        );
        client.close(0u32.into(), b"");
        server.close(0u32.into(), b"");
    }
}
