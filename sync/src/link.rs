//! QUIC endpoints of sync: the hub accepts connections from enrolled nodes and serves a session
//! on every stream they open; a node keeps one connection to the hub and opens a stream per
//! session, reconnecting when the connection is gone.
//!
//! Beside sessions, a node can ask the hub something on a stream of its own: the stream's first
//! frame is a [`Frame::Request`] (a key block, a resolution); the hub hands its body to an
//! [`Answerer`] and sends back one [`Frame::Answer`]. Any other first frame starts a session, as
//! before. The meaning of a request's body belongs to the caller.
//!
//! Pinning happens in the TLS handshake ([`crate::tls`]); this module then maps the peer's key
//! to what enrollment says about it. It must never run a session for a key that the directory
//! does not know, and never let one failed session stop the hub from serving others.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncReadExt};

use crate::session::{self, Peer, Replica, SessionError, SessionStats, Side};
use crate::tls::{self, LocalKey, PublicKey, TlsError};
use crate::wire::{self, Frame, MAX_FRAME, PROTOCOL_VERSION, WireError};

/// How long a node waits for the hub's answer to a request (the hub may hold an answer back
/// for a fixed time on purpose, see the caller's docs).
pub const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The hub's side of requests: what to answer a node that asks something outside a session.
pub trait Answerer: Send + Sync {
    /// The answer to `body` from `peer` (an enrolled node), in the caller's encoding.
    fn answer(
        &self,
        peer: &Peer,
        body: Vec<u8>,
    ) -> impl std::future::Future<Output = Vec<u8>> + Send;
}

/// An answerer for a hub that takes no requests: every request gets an empty answer.
pub struct NoAnswers;

impl Answerer for NoAnswers {
    async fn answer(&self, _: &Peer, _: Vec<u8>) -> Vec<u8> {
        Vec::new()
    }
}

/// One request on a new stream of `connection`: the [`Frame::Request`] out, the
/// [`Frame::Answer`]'s body back.
async fn ask(connection: quinn::Connection, body: Vec<u8>) -> Result<Vec<u8>, LinkError> {
    let (mut send, mut recv) = connection.open_bi().await?;
    wire::write_frame(
        &mut send,
        &Frame::Request {
            version: PROTOCOL_VERSION,
            body,
        },
    )
    .await
    .map_err(SessionError::from)?;
    let _ = send.finish();
    match wire::read_frame(&mut recv)
        .await
        .map_err(SessionError::from)?
    {
        Some((Frame::Answer { body }, _)) => Ok(body),
        Some((other, _)) => Err(LinkError::Session(SessionError::Unexpected {
            expected: "Answer",
            got: session::frame_name(&other),
        })),
        None => Err(LinkError::Session(SessionError::Closed)),
    }
}

/// Reads the first frame of a stream as raw bytes: the request's body when it is a request,
/// otherwise the frame's bytes (prefix included) to be read again by the session.
async fn first_frame<R: AsyncRead + Unpin>(
    recv: &mut R,
) -> Result<Result<(u16, Vec<u8>), Vec<u8>>, WireError> {
    let mut prefix = [0u8; 4];
    recv.read_exact(&mut prefix)
        .await
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => WireError::Truncated,
            _ => WireError::Io(e),
        })?;
    let len = u32::from_be_bytes(prefix) as usize;
    if len > MAX_FRAME {
        return Err(WireError::Oversized { len });
    }
    let mut raw = vec![0u8; len + 4];
    raw[..4].copy_from_slice(&prefix);
    recv.read_exact(&mut raw[4..])
        .await
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => WireError::Truncated,
            _ => WireError::Io(e),
        })?;
    match wire::decode(&raw[4..]) {
        Ok(Frame::Request { version, body }) => Ok(Ok((version, body))),
        _ => Ok(Err(raw)),
    }
}

/// How long a node waits for the hub to answer a new connection.
pub const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

/// Why a node could not reach the hub.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("cannot open a UDP socket for sync: {0}")]
    Socket(std::io::Error),
    #[error("cannot connect to the hub at {addr}: {reason}")]
    Connect { addr: SocketAddr, reason: String },
    #[error("the connection to the hub failed: {0}")]
    Connection(#[from] quinn::ConnectionError),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error(transparent)]
    Session(#[from] SessionError),
    /// The hub refused this node's key: it is not enrolled there, or its enrollment was
    /// revoked (the hub does not say which).
    #[error("the hub refused this node (not enrolled, or its enrollment was revoked): {0}")]
    Refused(quinn::ConnectionError),
    /// The hub's certificate does not hold the key this node's enrollment names: the node was
    /// enrolled with another hub, or the hub's key changed.
    #[error("the hub's key is not the one in this node's enrollment: {0}")]
    WrongHub(quinn::ConnectionError),
}

/// TLS alerts that refuse a certificate (bad_certificate, unsupported_certificate,
/// certificate_revoked, certificate_expired, certificate_unknown, unknown_ca, access_denied,
/// certificate_required), as QUIC carries them (0x100 + alert).
fn certificate_alert(code: u64) -> bool {
    code & !0xff == 0x100 && matches!(code & 0xff, 42..=46 | 48 | 49 | 116)
}

/// Whether a closed connection means the hub refused this node, or this node refused the hub's
/// key; None for any other reason (a network failure, the hub stopping).
fn refusal(e: &quinn::ConnectionError) -> Option<LinkError> {
    match e {
        quinn::ConnectionError::ConnectionClosed(c) if certificate_alert(c.error_code.into()) => {
            Some(LinkError::Refused(e.clone()))
        }
        quinn::ConnectionError::ApplicationClosed(a)
            if a.error_code == 1u32.into()
                && matches!(&a.reason[..], b"not enrolled" | b"revoked") =>
        {
            Some(LinkError::Refused(e.clone()))
        }
        quinn::ConnectionError::TransportError(t) if certificate_alert(t.code.into()) => {
            Some(LinkError::WrongHub(e.clone()))
        }
        _ => None,
    }
}

impl LinkError {
    /// A stable machine code for what went wrong: `socket`, `unreachable`, `connection_lost`,
    /// `tls`, `refused` (the hub refuses this node), `wrong_hub` (the hub's key is not the
    /// enrolled one), `protocol_version`, `stalled`, `closed`, `storage` or `protocol`.
    pub fn code(&self) -> &'static str {
        match self {
            LinkError::Socket(_) => "socket",
            LinkError::Connect { .. } => "unreachable",
            LinkError::Connection(_) => "connection_lost",
            LinkError::Tls(_) => "tls",
            LinkError::Refused(_) => "refused",
            LinkError::WrongHub(_) => "wrong_hub",
            LinkError::Session(s) => match s {
                SessionError::Version { .. } => "protocol_version",
                SessionError::Stalled(_) => "stalled",
                SessionError::Closed => "closed",
                SessionError::Replica(_) => "storage",
                _ => "protocol",
            },
        }
    }

    /// What went wrong and what happens next, in words for the person at the sync page
    /// (Japanese); the `Display` text is the technical detail for the operator.
    pub fn words(&self) -> String {
        match self {
            LinkError::Socket(_) => {
                "同期用の UDP ソケットを開けません。このシステムのネットワーク設定を確かめてください。".into()
            }
            LinkError::Connect { addr, .. } => format!(
                "ハブ（中央）{addr} に接続できません。ネットワークとハブの稼働を確かめてください。接続できるまで自動で再試行します。"
            ),
            LinkError::Connection(_) => {
                "ハブ（中央）との接続が切れたか、認証で断られました。自動で再接続します。続く場合は、このシステムの登録が取り消されていないか管理者に確かめてください。".into()
            }
            LinkError::Tls(_) => {
                "同期の暗号化の設定を作れません（このシステムの鍵を確かめてください）。".into()
            }
            LinkError::Refused(_) => {
                "ハブがこのノードを受け付けません（登録取消し、または未登録）。ハブの管理者に、このノードの登録を確かめて必要なら登録し直してもらってください（nsdb provision issue、このノードで nsdb provision enroll）。それまで同期の再試行の間隔を延ばします。".into()
            }
            LinkError::WrongHub(_) => {
                "接続先のハブの鍵が、このノードの登録ファイルにある鍵と一致しません（別のハブに登録したか、ハブの鍵が変わりました）。ハブの管理者から新しい登録ファイルを受け取り、nsdb provision enroll で登録し直してください。".into()
            }
            LinkError::Session(s) => match s {
                SessionError::Version { theirs } => format!(
                    "ハブと同期の版が合いません（相手 {theirs}、このシステム {}）。古い側の nsdb を更新してください。",
                    crate::wire::PROTOCOL_VERSION
                ),
                SessionError::Stalled(d) => format!(
                    "同期が{}秒間進まなかったため中断しました。次の同期で続きから再開します。",
                    d.as_secs()
                ),
                SessionError::Closed => {
                    "ハブが同期を途中で終えました。次の同期で再開します。".into()
                }
                SessionError::Replica(_) => {
                    "このシステムのデータベースで同期の読み書きに失敗しました。管理者は nsdb doctor で確認してください。".into()
                }
                _ => {
                    "ハブとの同期で想定外のデータを受け取ったため中断しました。次の同期で再試行します。".into()
                }
            },
        }
    }
}

/// What the hub knows about enrolled nodes: asked at each handshake and each connection.
pub trait Directory: tls::KeyDirectory {
    /// The enrolled, unrevoked node holding `key`.
    fn peer(&self, key: &PublicKey) -> Option<Peer>;
}

/// The hub's end: a QUIC server endpoint.
pub struct HubEndpoint {
    endpoint: quinn::Endpoint,
}

impl HubEndpoint {
    /// Listens on `addr` (UDP) with the hub's key, accepting the nodes `directory` accepts.
    pub fn bind<D: Directory + 'static>(
        addr: SocketAddr,
        key: &LocalKey,
        directory: Arc<D>,
    ) -> Result<HubEndpoint, LinkError> {
        let config = tls::hub_server_config(key, directory)?;
        let endpoint = quinn::Endpoint::server(config, addr).map_err(LinkError::Socket)?;
        Ok(HubEndpoint { endpoint })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> Result<SocketAddr, LinkError> {
        self.endpoint.local_addr().map_err(LinkError::Socket)
    }

    /// Serves sessions until the endpoint is closed, answering no requests. `on_session` hears
    /// how each one ended.
    pub async fn serve<R, D, F>(&self, replica: Arc<R>, directory: Arc<D>, on_session: F)
    where
        R: Replica + 'static,
        D: Directory + 'static,
        F: Fn(&Peer, &Result<SessionStats, SessionError>) + Send + Sync + 'static,
    {
        self.serve_with(replica, directory, Arc::new(NoAnswers), on_session)
            .await
    }

    /// Serves sessions and requests (each request on a task of its own, so a request the
    /// answerer holds back never delays a session) until the endpoint is closed.
    pub async fn serve_with<R, D, A, F>(
        &self,
        replica: Arc<R>,
        directory: Arc<D>,
        answerer: Arc<A>,
        on_session: F,
    ) where
        R: Replica + 'static,
        D: Directory + 'static,
        A: Answerer + 'static,
        F: Fn(&Peer, &Result<SessionStats, SessionError>) + Send + Sync + 'static,
    {
        let on_session = Arc::new(on_session);
        while let Some(incoming) = self.endpoint.accept().await {
            let (replica, directory, on_session, answerer) = (
                replica.clone(),
                directory.clone(),
                on_session.clone(),
                answerer.clone(),
            );
            tokio::spawn(async move {
                let connection = match incoming.await {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::info!(target: "nsdb::sync", reason = %e, "a node's handshake failed");
                        return;
                    }
                };
                let Some(peer) = tls::peer_key(&connection).and_then(|k| directory.peer(&k)) else {
                    connection.close(1u32.into(), b"not enrolled");
                    return;
                };
                tracing::info!(target: "nsdb::sync", node = %peer.node, name = %peer.name, "node connected");
                loop {
                    let (mut send, mut recv) = match connection.accept_bi().await {
                        Ok(s) => s,
                        Err(_) => return,
                    };
                    // Enrollment may have been revoked since the handshake.
                    if directory.peer(&peer.key).is_none() {
                        connection.close(1u32.into(), b"revoked");
                        return;
                    }
                    let first =
                        tokio::time::timeout(session::STALL_LIMIT, first_frame(&mut recv)).await;
                    let raw = match first {
                        Ok(Ok(Ok((version, body)))) => {
                            let (answerer, peer) = (answerer.clone(), peer.clone());
                            tokio::spawn(async move {
                                let body = if version == PROTOCOL_VERSION {
                                    answerer.answer(&peer, body).await
                                } else {
                                    Vec::new()
                                };
                                if wire::write_frame(&mut send, &Frame::Answer { body })
                                    .await
                                    .is_ok()
                                {
                                    let _ = send.finish();
                                }
                            });
                            continue;
                        }
                        Ok(Ok(Err(raw))) => raw,
                        Ok(Err(reason)) => {
                            tracing::warn!(target: "nsdb::sync", node = %peer.node, %reason, "a stream ended before its first frame");
                            let _ = send.reset(2u32.into());
                            continue;
                        }
                        Err(_) => {
                            let _ = send.reset(2u32.into());
                            continue;
                        }
                    };
                    let mut replayed = std::io::Cursor::new(raw).chain(&mut recv);
                    let result =
                        session::run(replica.as_ref(), Side::Hub, &peer, &mut send, &mut replayed)
                            .await;
                    match &result {
                        Ok(_) => {
                            let _ = send.finish();
                        }
                        Err(reason) => {
                            tracing::warn!(target: "nsdb::sync", node = %peer.node, %reason, "session ended");
                            let _ = send.reset(2u32.into());
                            let _ = recv.stop(2u32.into());
                        }
                    }
                    on_session(&peer, &result);
                }
            });
        }
    }

    /// Stops accepting and closes every connection.
    pub fn close(&self) {
        self.endpoint.close(0u32.into(), b"hub stopping");
    }
}

/// A node's end: one connection to the hub, re-established on demand.
pub struct NodeLink {
    endpoint: quinn::Endpoint,
    hub_addr: SocketAddr,
    hub: Peer,
    connection: Option<quinn::Connection>,
}

impl NodeLink {
    /// A link to the hub at `hub_addr` holding `hub_key`, authenticating with `key`.
    pub fn new(
        key: &LocalKey,
        hub_addr: SocketAddr,
        hub_key: PublicKey,
    ) -> Result<NodeLink, LinkError> {
        let bind: SocketAddr = if hub_addr.is_ipv6() {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        } else {
            (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
        };
        let mut endpoint = quinn::Endpoint::client(bind).map_err(LinkError::Socket)?;
        endpoint.set_default_client_config(tls::node_client_config(key, hub_key)?);
        Ok(NodeLink {
            endpoint,
            hub_addr,
            hub: Peer::hub(hub_key),
            connection: None,
        })
    }

    /// The hub as a peer.
    pub fn hub(&self) -> &Peer {
        &self.hub
    }

    /// Whether a connection to the hub is open now.
    pub fn connected(&self) -> bool {
        self.connection
            .as_ref()
            .is_some_and(|c| c.close_reason().is_none())
    }

    async fn connection(&mut self) -> Result<quinn::Connection, LinkError> {
        if let Some(c) = &self.connection
            && c.close_reason().is_none()
        {
            return Ok(c.clone());
        }
        self.connection = None;
        let connecting = self
            .endpoint
            .connect(self.hub_addr, tls::HUB_SERVER_NAME)
            .map_err(|e| LinkError::Connect {
                addr: self.hub_addr,
                reason: e.to_string(),
            })?;
        let connection = tokio::time::timeout(CONNECT_TIMEOUT, connecting)
            .await
            .map_err(|_| LinkError::Connect {
                addr: self.hub_addr,
                reason: format!(
                    "no answer within {} s; the hub may be down or unreachable",
                    CONNECT_TIMEOUT.as_secs()
                ),
            })?
            .map_err(|e| refusal(&e).unwrap_or(LinkError::Connection(e)))?;
        self.connection = Some(connection.clone());
        Ok(connection)
    }

    /// `e`, or the refusal it stands for when `connection` was closed by one (a hub refuses a
    /// node's certificate after the node's side of the handshake, so the refusal shows first
    /// as a failed stream).
    fn explain(connection: &quinn::Connection, e: LinkError) -> LinkError {
        match connection.close_reason().as_ref().and_then(refusal) {
            Some(refused) => refused,
            None => e,
        }
    }

    /// Runs one session with the hub, connecting first if needed.
    pub async fn sync<R: Replica>(&mut self, replica: &R) -> Result<SessionStats, LinkError> {
        let connection = self.connection().await?;
        let (mut send, mut recv) =
            match tokio::time::timeout(CONNECT_TIMEOUT, connection.open_bi()).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    self.connection = None;
                    return Err(refusal(&e).unwrap_or(LinkError::Connection(e)));
                }
                Err(_) => {
                    self.connection = None;
                    return Err(LinkError::Connect {
                        addr: self.hub_addr,
                        reason: format!(
                            "the hub did not take a new session within {} s",
                            CONNECT_TIMEOUT.as_secs()
                        ),
                    });
                }
            };
        let result = session::run(replica, Side::Node, &self.hub, &mut send, &mut recv).await;
        match result {
            Ok(stats) => {
                let _ = send.finish();
                Ok(stats)
            }
            Err(e) => {
                let _ = send.reset(2u32.into());
                let _ = recv.stop(2u32.into());
                if matches!(
                    e,
                    SessionError::Wire(_) | SessionError::Closed | SessionError::Stalled(_)
                ) {
                    self.connection = None;
                }
                Err(NodeLink::explain(&connection, e.into()))
            }
        }
    }

    /// Asks the hub something outside a session, on a stream of its own (connecting first if
    /// needed): sends `body` in a [`Frame::Request`] and returns the body of the hub's
    /// [`Frame::Answer`]. Fails when the hub cannot be reached or does not answer within
    /// [`REQUEST_TIMEOUT`]. An empty answer means the hub takes no such requests.
    pub async fn request(&mut self, body: Vec<u8>) -> Result<Vec<u8>, LinkError> {
        let connection = self.connection().await?;
        let hub_addr = self.hub_addr;
        let asked = ask(connection, body);
        match tokio::time::timeout(REQUEST_TIMEOUT, asked).await {
            Ok(Ok(body)) => Ok(body),
            Ok(Err(e)) => {
                self.connection = None;
                Err(e)
            }
            Err(_) => {
                self.connection = None;
                Err(LinkError::Connect {
                    addr: hub_addr,
                    reason: format!(
                        "the hub did not answer within {} s",
                        REQUEST_TIMEOUT.as_secs()
                    ),
                })
            }
        }
    }

    /// Closes the connection (the next sync reconnects).
    pub fn disconnect(&mut self) {
        if let Some(c) = self.connection.take() {
            c.close(0u32.into(), b"bye");
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::{BTreeMap, HashMap, HashSet};
    use std::sync::Mutex;

    use super::*;
    use crate::ids::{Author, NodeId, SheetId};
    use crate::inventory::Inventory;
    use crate::session::{PeerRole, ReplicaError};
    use crate::sheet::{Edit, NewSheet, Sheet, SheetHeader};

    /// Documents in memory; admits everything, and stores everything but the sheets in
    /// `refuse`. Keeps an inventory per peer settled by each session, as a node does, unless
    /// `hints` says otherwise.
    #[derive(Default)]
    pub(crate) struct Memory {
        pub docs: Mutex<HashMap<SheetId, Vec<u8>>>,
        pub refuse: Mutex<HashSet<SheetId>>,
        pub hints: Hints,
        kept: Mutex<HashMap<NodeId, Inventory>>,
        settled: Mutex<HashMap<NodeId, crate::session::Settlement>>,
    }

    /// How a [`Memory`] keeps what it knows of its peers.
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
    pub(crate) enum Hints {
        /// Kept per peer and settled by sessions, as a node does.
        #[default]
        Kept,
        /// A new inventory for every session: nothing is known of the peer.
        Fresh,
        /// Everything is taken as settled, even what changed since: wrong hints, which a
        /// session must survive (the summary of the rest catches what they miss).
        Wrong,
    }

    impl Memory {
        pub fn with(hints: Hints) -> Memory {
            Memory {
                hints,
                ..Memory::default()
            }
        }

        pub fn put(&self, sheet: &mut Sheet) {
            self.docs
                .lock()
                .expect("lock")
                .insert(sheet.id(), sheet.save());
        }

        pub fn get(&self, id: &SheetId) -> Option<Sheet> {
            let docs = self.docs.lock().expect("lock");
            docs.get(id).map(|b| Sheet::load(b).expect("loads"))
        }
    }

    impl Replica for Memory {
        async fn inventory(&self, peer: &Peer) -> Result<Arc<Inventory>, ReplicaError> {
            let docs = self.docs.lock().expect("lock");
            let entries = docs
                .iter()
                .map(|(id, b)| (*id, Sheet::load(b).expect("loads").raw_heads()));
            if self.hints == Hints::Fresh {
                return Ok(Arc::new(Inventory::from_entries(entries, Vec::new())));
            }
            let mut kept = self.kept.lock().expect("lock");
            let inventory = kept.entry(peer.node).or_default();
            let mut stored: HashMap<SheetId, Vec<[u8; 32]>> = HashMap::new();
            if let Some(s) = self.settled.lock().expect("lock").remove(&peer.node) {
                inventory.settle(s.through, s.apart);
                stored.extend(s.stored);
            }
            for (id, heads) in entries {
                if stored.get(&id) == Some(&heads) {
                    inventory.insert_settled(id, heads);
                } else {
                    inventory.insert(id, heads);
                }
            }
            if self.hints == Hints::Wrong {
                inventory.settle(u64::MAX, []);
            }
            Ok(Arc::new(inventory.clone()))
        }

        fn settle(&self, peer: &Peer, settlement: crate::session::Settlement) {
            self.settled
                .lock()
                .expect("lock")
                .insert(peer.node, settlement);
        }

        async fn load(&self, ids: Vec<SheetId>) -> Result<Vec<(SheetId, Vec<u8>)>, ReplicaError> {
            let docs = self.docs.lock().expect("lock");
            Ok(ids
                .into_iter()
                .filter_map(|id| docs.get(&id).map(|b| (id, b.clone())))
                .collect())
        }

        async fn save(
            &self,
            _peer: &Peer,
            sheets: Vec<Sheet>,
        ) -> Result<Vec<(SheetId, String)>, ReplicaError> {
            let refuse = self.refuse.lock().expect("lock").clone();
            let mut refused = Vec::new();
            for mut s in sheets {
                if refuse.contains(&s.id()) {
                    refused.push((s.id(), "access key already used".to_owned()));
                } else {
                    self.put(&mut s);
                }
            }
            Ok(refused)
        }

        fn admits(&self, _: &Peer, _: &SheetHeader, _: &HashSet<SheetId>) -> bool {
            true
        }
    }

    #[derive(Debug, Default)]
    pub(crate) struct Enrolled(pub Mutex<Vec<PublicKey>>);

    impl tls::KeyDirectory for Enrolled {
        fn accepts(&self, key: &PublicKey) -> bool {
            self.0.lock().expect("lock").contains(key)
        }
    }

    impl Directory for Enrolled {
        fn peer(&self, key: &PublicKey) -> Option<Peer> {
            tls::KeyDirectory::accepts(self, key).then(|| Peer {
                key: *key,
                node: key.node_id(),
                role: PeerRole::Hospital,
                jurisdiction: "1".into(),
                name: "test".into(),
            })
        }
    }

    /// A new sheet of a test form, with no answers.
    pub(crate) fn blank_sheet(author: Author) -> Sheet {
        Sheet::new(
            NewSheet {
                id: SheetId::random(),
                form_id: "f".into(),
                form_version: "1".into(),
                kokuji: 6,
                eda: 0,
                disease: "d".into(),
                institution: "1".into(),
                doctor: None,
                carried_from: None,
                created_ms: 1,
            },
            Edit {
                author,
                at_ms: 1,
                message: "",
            },
        )
    }

    /// A new sheet of a test form with one answer.
    pub(crate) fn new_sheet(author: Author) -> Sheet {
        let mut sheet = blank_sheet(author);
        let values: BTreeMap<String, Option<String>> =
            [("q1".to_owned(), Some("はい".to_owned()))].into();
        sheet.set_fields(
            &values,
            Edit {
                author,
                at_ms: 2,
                message: "",
            },
        );
        sheet
    }

    struct Hub {
        endpoint: Arc<HubEndpoint>,
        addr: SocketAddr,
        replica: Arc<Memory>,
        enrolled: Arc<Enrolled>,
        key: LocalKey,
    }

    impl Hub {
        /// Enrolls a node whose key comes from `seed`; returns its key and a user of it.
        fn enroll(&self, seed: u8) -> (LocalKey, Author) {
            let key = LocalKey::from_seed([seed; 32]);
            self.enrolled.0.lock().expect("lock").push(key.public());
            let author = Author {
                node: key.public().node_id(),
                user: 5,
            };
            (key, author)
        }
    }

    fn start_hub() -> Hub {
        let key = LocalKey::from_seed([1; 32]);
        let enrolled = Arc::new(Enrolled::default());
        let replica = Arc::new(Memory::default());
        let endpoint = Arc::new(
            HubEndpoint::bind("127.0.0.1:0".parse().expect("addr"), &key, enrolled.clone())
                .expect("binds"),
        );
        let addr = endpoint.local_addr().expect("addr");
        let (e, r, d) = (endpoint.clone(), replica.clone(), enrolled.clone());
        tokio::spawn(async move { e.serve(r, d, |_, _| {}).await });
        Hub {
            endpoint,
            addr,
            replica,
            enrolled,
            key,
        }
    }

    #[tokio::test]
    async fn an_enrolled_node_syncs_both_ways_and_an_idle_sync_is_small() {
        let hub = start_hub();
        let (node_key, author) = hub.enroll(2);
        let node = Memory::default();
        let mut sheets: Vec<Sheet> = (0..20).map(|_| new_sheet(author)).collect();
        for s in &mut sheets {
            node.put(s);
        }
        let mut link = NodeLink::new(&node_key, hub.addr, hub.key.public()).expect("link");
        let stats = link.sync(&node).await.expect("first sync");
        assert_eq!(stats.documents_sent, 20);
        assert_eq!(hub.replica.docs.lock().expect("lock").len(), 20);
        let first = sheets[0].id();
        assert_eq!(
            hub.replica.get(&first).expect("on the hub").fields(),
            sheets[0].fields()
        );

        let stats = link.sync(&node).await.expect("idle sync");
        assert_eq!(stats.documents_sent + stats.documents_received, 0);
        assert!(
            stats.bytes_sent + stats.bytes_received < 16 * 1024,
            "{stats:?}"
        );
        hub.endpoint.close();
    }

    #[tokio::test]
    async fn an_edit_crosses_as_its_own_change_and_nothing_comes_back() {
        let hub = start_hub();
        let (node_key, author) = hub.enroll(5);
        let node = Memory::default();
        let mut sheet = new_sheet(author);
        // A sheet with some history: every change of it is sent on the first sync only.
        for i in 0..30 {
            let values: BTreeMap<String, Option<String>> =
                [(format!("q{i}"), Some(format!("回答{i}")))].into();
            sheet.set_fields(
                &values,
                Edit {
                    author,
                    at_ms: 10 + i,
                    message: "",
                },
            );
        }
        node.put(&mut sheet);
        let mut link = NodeLink::new(&node_key, hub.addr, hub.key.public()).expect("link");
        link.sync(&node).await.expect("first sync");
        let idle = link.sync(&node).await.expect("idle sync");

        let mut edited = node.get(&sheet.id()).expect("stored");
        let values: BTreeMap<String, Option<String>> =
            [("q1".to_owned(), Some("いいえ".to_owned()))].into();
        edited.set_fields(
            &values,
            Edit {
                author,
                at_ms: 99,
                message: "",
            },
        );
        node.put(&mut edited);
        let stats = link.sync(&node).await.expect("sync of the edit");
        assert_eq!(stats.documents_sent, 1);
        assert_eq!(
            hub.replica.get(&sheet.id()).expect("on the hub").fields(),
            edited.fields()
        );
        // What came back is the hub's heads and its word that it was behind, not the history.
        assert!(
            stats.bytes_received < idle.bytes_received + 256,
            "{stats:?} against idle {idle:?}"
        );
        hub.endpoint.close();
    }

    /// `len` bytes of text that does not compress.
    fn noise(len: usize, seed: u64) -> String {
        let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
        (0..len)
            .map(|_| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                char::from(b'a' + ((x >> 33) % 26) as u8)
            })
            .collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_sheet_larger_than_a_frame_crosses_in_pieces_beside_the_others() {
        let hub = start_hub();
        let (node_key, author) = hub.enroll(6);
        let node = Memory::default();
        let mut link = NodeLink::new(&node_key, hub.addr, hub.key.public()).expect("link");
        let mut big = new_sheet(author);
        node.put(&mut big);
        link.sync(&node).await.expect("first sync");
        // Seven saves of 1.8 MB of text while the hub was away: more than one frame carries.
        for i in 0..7 {
            let values: BTreeMap<String, Option<String>> =
                [("q2".to_owned(), Some(noise(1_800_000, i)))].into();
            big.set_fields(
                &values,
                Edit {
                    author,
                    at_ms: 10 + i as i64,
                    message: "",
                },
            );
        }
        node.put(&mut big);
        let mut others: Vec<Sheet> = (0..5).map(|_| new_sheet(author)).collect();
        for s in &mut others {
            node.put(s);
        }
        let stats = link.sync(&node).await.expect("sync with a large sheet");
        assert!(stats.set_aside.is_empty(), "{:?}", stats.set_aside);
        assert_eq!(stats.documents_sent, 6);
        assert!(stats.bytes_sent > crate::wire::MAX_FRAME as u64);
        assert_eq!(
            hub.replica.get(&big.id()).expect("on the hub").fields(),
            big.fields()
        );
        for s in &others {
            assert!(hub.replica.get(&s.id()).is_some());
        }
        hub.endpoint.close();
    }

    #[tokio::test]
    async fn a_sheet_the_hub_refuses_is_set_aside_and_the_others_cross() {
        let hub = start_hub();
        let (node_key, author) = hub.enroll(7);
        let node = Memory::default();
        let mut sheets: Vec<Sheet> = (0..10).map(|_| new_sheet(author)).collect();
        for s in &mut sheets {
            node.put(s);
        }
        let refused = sheets[3].id();
        hub.replica.refuse.lock().expect("lock").insert(refused);
        let mut link = NodeLink::new(&node_key, hub.addr, hub.key.public()).expect("link");
        let stats = link.sync(&node).await.expect("the session completes");
        assert_eq!(stats.set_aside.len(), 1, "{:?}", stats.set_aside);
        assert_eq!(stats.set_aside[0].0, refused);
        assert_eq!(stats.set_aside[0].1.code(), "refused");
        assert!(
            stats.set_aside[0]
                .1
                .detail()
                .contains("access key already used"),
            "{:?}",
            stats.set_aside
        );
        assert_eq!(stats.crossed.len(), 9);
        assert!(!stats.crossed.contains(&refused));
        assert_eq!(hub.replica.docs.lock().expect("lock").len(), 9);
        // A later edit of another sheet still crosses while the refused one keeps failing.
        let mut edited = node.get(&sheets[5].id()).expect("stored");
        let values: BTreeMap<String, Option<String>> =
            [("q1".to_owned(), Some("いいえ".to_owned()))].into();
        edited.set_fields(
            &values,
            Edit {
                author,
                at_ms: 50,
                message: "",
            },
        );
        node.put(&mut edited);
        let stats = link.sync(&node).await.expect("the next session completes");
        assert_eq!(
            hub.replica.get(&edited.id()).expect("on the hub").fields(),
            edited.fields()
        );
        assert_eq!(stats.set_aside.len(), 1);
        hub.endpoint.close();
    }

    #[tokio::test(start_paused = true)]
    async fn a_peer_that_never_answers_ends_the_session_at_the_stall_limit() {
        let node = Memory::default();
        let (mut ours, _theirs) = tokio::io::duplex(64 * 1024);
        let (mut read, mut write) = tokio::io::split(&mut ours);
        let hub = Peer::hub(LocalKey::from_seed([9; 32]).public());
        let limit = std::time::Duration::from_secs(5);
        let result =
            session::run_within(&node, Side::Node, &hub, &mut write, &mut read, limit).await;
        assert!(
            matches!(result, Err(SessionError::Stalled(l)) if l == limit),
            "{result:?}"
        );
    }

    /// Answers with the asking node's id and the request reversed, after a pause.
    struct Echo;

    impl Answerer for Echo {
        async fn answer(&self, peer: &Peer, body: Vec<u8>) -> Vec<u8> {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            let mut out = peer.node.0.to_vec();
            out.extend(body.into_iter().rev());
            out
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_request_gets_its_answer_beside_sessions_on_the_same_link() {
        let key = LocalKey::from_seed([1; 32]);
        let enrolled = Arc::new(Enrolled::default());
        let replica = Arc::new(Memory::default());
        let endpoint = Arc::new(
            HubEndpoint::bind("127.0.0.1:0".parse().expect("addr"), &key, enrolled.clone())
                .expect("binds"),
        );
        let addr = endpoint.local_addr().expect("addr");
        let (e, r, d) = (endpoint.clone(), replica.clone(), enrolled.clone());
        tokio::spawn(async move { e.serve_with(r, d, Arc::new(Echo), |_, _| {}).await });
        let node_key = LocalKey::from_seed([8; 32]);
        enrolled.0.lock().expect("lock").push(node_key.public());
        let node = Memory::default();
        let author = Author {
            node: node_key.public().node_id(),
            user: 5,
        };
        let mut sheet = new_sheet(author);
        node.put(&mut sheet);

        let mut link = NodeLink::new(&node_key, addr, key.public()).expect("link");
        let answer = link.request(b"abc".to_vec()).await.expect("answered");
        assert_eq!(&answer[..16], &node_key.public().node_id().0);
        assert_eq!(&answer[16..], b"cba");
        // A session on the same connection runs as before, and another request after it.
        let stats = link.sync(&node).await.expect("a session");
        assert_eq!(stats.documents_sent, 1);
        assert!(replica.get(&sheet.id()).is_some());
        let again = link.request(Vec::new()).await.expect("answered again");
        assert_eq!(again.len(), 16);

        // A hub that takes no requests answers empty.
        let plain = start_hub();
        let (plain_key, _) = plain.enroll(9);
        let mut link = NodeLink::new(&plain_key, plain.addr, plain.key.public()).expect("link");
        assert_eq!(link.request(b"x".to_vec()).await.expect("answered"), b"");
        endpoint.close();
        plain.endpoint.close();
    }

    #[tokio::test]
    async fn unenrolled_revoked_and_wrong_hub_keys_are_refused() {
        let hub = start_hub();
        let node_key = LocalKey::from_seed([3; 32]);
        let node = Memory::default();
        let mut link = NodeLink::new(&node_key, hub.addr, hub.key.public()).expect("link");
        let err = link.sync(&node).await.expect_err("unenrolled");
        assert_eq!(err.code(), "refused", "{err}");
        assert!(err.words().contains("受け付けません"), "{}", err.words());

        hub.enrolled.0.lock().expect("lock").push(node_key.public());
        let mut link = NodeLink::new(&node_key, hub.addr, hub.key.public()).expect("link");
        link.sync(&node).await.expect("enrolled");
        hub.enrolled.0.lock().expect("lock").clear();
        link.disconnect();
        let err = link.sync(&node).await.expect_err("revoked");
        assert_eq!(err.code(), "refused", "{err}");

        hub.enrolled.0.lock().expect("lock").push(node_key.public());
        let impostor = LocalKey::from_seed([4; 32]).public();
        let mut link = NodeLink::new(&node_key, hub.addr, impostor).expect("link");
        let err = link
            .sync(&node)
            .await
            .expect_err("hub key not the pinned one");
        assert_eq!(err.code(), "wrong_hub", "{err}");
    }
}
