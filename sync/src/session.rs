//! One sync session between a node and the hub on one QUIC stream: both sides send a summary,
//! then the ids and heads of the documents in buckets that differ, then every document or
//! change the other side lacks, many documents in flight at once.
//!
//! The storage and the scope rules belong to the caller, behind [`Replica`]. This module checks
//! everything it receives (frame shape, order, scope, and at the hub that each change was made
//! by the sending node) and ends the session with a reason on anything unexpected.
//!
//! One sheet never stops the others: a sheet that cannot be sent (larger than the wire carries,
//! unreadable here) or that the peer refuses (checks, or its storage, e.g. an access key it
//! already holds for another sheet) is reported in [`SessionStats::set_aside`] with the reason,
//! and the session goes on; the replica may hold such sheets back from later sessions
//! ([`Replica::held_back`]) to retry them with backoff. Every wait has a deadline: a session in
//! which nothing crosses either way for [`STALL_LIMIT`] ends with [`SessionError::Stalled`].
//!
//! It must never panic on input, never apply a change it has not checked, and never send a
//! document the replica does not list for that peer.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};

use crate::ids::{NodeId, SheetId};
use crate::inventory::Inventory;
use crate::replicate::ReplicationError;
use crate::sheet::{Sheet, SheetHeader};
use crate::summary::bucket_of;
use crate::tls::PublicKey;
use crate::wire::{self, Frame, HEADS_PER_FRAME, Heads, PROTOCOL_VERSION, WireError};

/// How many received documents are saved together in one database transaction.
pub const SAVE_BATCH: usize = 256;

/// How many documents are loaded together to be sent.
pub const LOAD_BATCH: usize = 256;

/// A side lists its unsettled sheets when they are this few, or at most half of all.
const FEW_UNSETTLED: usize = 256;

/// The most document ids a peer may list in one session.
const MAX_ENTRIES: usize = 10_000_000;

/// A session in which no frame (nor piece of one) crosses in either direction for this long
/// ends with [`SessionError::Stalled`]: the peer is gone or stuck.
pub const STALL_LIMIT: Duration = Duration::from_secs(60);

/// The most refused sheets one [`Frame::Ack`] lists, and the longest reason it carries for one.
const MAX_REFUSALS: usize = 10_000;
const MAX_REASON: usize = 400;

/// What a node is to the hub.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PeerRole {
    Hub,
    Hospital,
    Municipality,
}

/// The other side of a session, as enrollment describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    pub key: PublicKey,
    pub node: NodeId,
    pub role: PeerRole,
    /// The institution code the node serves (医療機関コード or 自治体コード); empty for the hub.
    pub jurisdiction: String,
    pub name: String,
}

impl Peer {
    /// The hub, known to a node by its pinned key.
    pub fn hub(key: PublicKey) -> Peer {
        Peer {
            key,
            node: key.node_id(),
            role: PeerRole::Hub,
            jurisdiction: String::new(),
            name: "hub".into(),
        }
    }
}

/// A storage failure of the replica, in words for the operator.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ReplicaError(pub String);

/// Where documents come from and go to, and who may hold which: implemented by the node.
pub trait Replica: Send + Sync {
    /// The documents this side shares with `peer` and their heads. Shared, as a replica keeps
    /// it between sessions and brings it up to date.
    fn inventory(
        &self,
        peer: &Peer,
    ) -> impl Future<Output = Result<Arc<Inventory>, ReplicaError>> + Send;

    /// Saved bytes of the documents `ids` (missing ones are left out).
    fn load(
        &self,
        ids: Vec<SheetId>,
    ) -> impl Future<Output = Result<Vec<(SheetId, Vec<u8>)>, ReplicaError>> + Send;

    /// Stores documents received from `peer` (each already checked and merged). A sheet that
    /// storage refuses on its own account (e.g. an access key another sheet holds) is left out
    /// and returned with the reason, in words for the peer's operator; the others are stored.
    /// `Err` only when storage as a whole failed.
    fn save(
        &self,
        peer: &Peer,
        sheets: Vec<Sheet>,
    ) -> impl Future<Output = Result<Vec<(SheetId, String)>, ReplicaError>> + Send;

    /// Sheets this side does not offer `peer` in this session (set aside earlier and not due
    /// for a retry yet). None by default.
    fn held_back(&self, _peer: &Peer) -> HashSet<SheetId> {
        HashSet::new()
    }

    /// Told at the end of a session with `peer` that both sides acknowledged: what is now held
    /// alike ([`Settlement`]), so the replica settles its inventory for that peer
    /// ([`Inventory::settle`], [`Inventory::insert_settled`]) before the next session. Nothing
    /// by default (every session then lists all it holds by summary bucket).
    fn settle(&self, _peer: &Peer, _settlement: Settlement) {}

    /// Whether a sheet with `header` may pass between this side and `peer`. `granted` is the
    /// set of sheets opened to the node beyond its institution (at a node: as the hub announced
    /// it; at the hub: as its inventory for the peer lists it).
    fn admits(&self, peer: &Peer, header: &SheetHeader, granted: &HashSet<SheetId>) -> bool;
}

/// What a session that both sides acknowledged leaves held alike by both, for
/// [`Replica::settle`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settlement {
    /// The inventory's stamp when the session began ([`Inventory::stamp`]): every entry stamped
    /// up to it is held alike, except `apart`.
    pub through: u64,
    /// Sheets received from the peer and stored, with the heads stored: alike once the
    /// replica's inventory lists those heads.
    pub stored: Vec<(SheetId, Heads)>,
    /// Sheets that did not cross (set aside or held back here, refused by either side):
    /// they may still differ.
    pub apart: Vec<SheetId>,
}

/// Which end of the connection this side is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Hub,
    Node,
}

/// Why a sheet did not cross in a session: a stable kind with a machine code ([`SetAside::code`])
/// and the words for the person at the sync page ([`std::fmt::Display`], Japanese). The
/// technical detail ([`SetAside::detail`]) is for the operator's log and may be English.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetAside {
    /// Its changes do not fit in what one sheet may carry (see `wire::MAX_ASSEMBLED`); the
    /// detail is the wire's error.
    TooLarge(String),
    /// The stored document cannot be read on this side; the detail is the document's error.
    Unreadable(String),
    /// The peer refused it; the detail is the peer's reason (Japanese from nsdb peers).
    Refused(String),
}

impl SetAside {
    /// `too_large`, `unreadable` or `refused`: stable, for programs reading the status.
    pub fn code(&self) -> &'static str {
        match self {
            SetAside::TooLarge(_) => "too_large",
            SetAside::Unreadable(_) => "unreadable",
            SetAside::Refused(_) => "refused",
        }
    }

    /// The detail: the wire's, the document's or the peer's own words.
    pub fn detail(&self) -> &str {
        match self {
            SetAside::TooLarge(d) | SetAside::Unreadable(d) | SetAside::Refused(d) => d,
        }
    }
}

impl std::fmt::Display for SetAside {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SetAside::TooLarge(_) => f.write_str(
                "この票の変更は1回の同期で送れる大きさ（256 MiB）を超えているため送れません。票の自由記載を短くしてから保存し直してください。",
            ),
            SetAside::Unreadable(_) => f.write_str(
                "このシステムに保存された票のデータが壊れていて読めないため送れません。ハブ（中央）に無傷の写しがあれば取り寄せて置き換えます。",
            ),
            SetAside::Refused(reason) => write!(f, "受け取る側が受け付けませんでした: {reason}"),
        }
    }
}

/// A refusal of a peer's sheet in words for the peer's operator (Japanese): it crosses in the
/// acknowledgement and is shown on the peer's sync page.
fn refusal_words(reason: &SessionError) -> String {
    use crate::error::SheetError;
    match reason {
        SessionError::Refused(e) => match e {
            ReplicationError::MalformedChange { .. } => {
                "票の変更が読み取れない形です（nsdb 以外のソフトウェアで書かれたか、途中で壊れています）".into()
            }
            ReplicationError::ForeignAuthor { author, .. } => format!(
                "送ったシステムの利用者ではない作成者（{}）の変更を含むため受け付けません",
                author.map_or_else(|| "nsdb 以外".to_owned(), |a| a.to_string())
            ),
            ReplicationError::WrongId { .. } => "別の票のデータが送られてきました".into(),
            ReplicationError::Sheet(SheetError::DivergedAuthor { .. }) => {
                "同じ作成者が別々に編集した二つの写しで、合わせられません（古いバックアップから復元したシステムなど）。ハブの写しを取り寄せ、その後の編集を入力し直してください".into()
            }
            ReplicationError::Sheet(SheetError::UnrelatedHistory { .. }) => {
                "同じ番号で別々に作られた票で、合わせられません".into()
            }
            ReplicationError::Sheet(SheetError::UnsupportedSchema { found, .. }) => format!(
                "受け取る側の nsdb が読めない新しい形式（版 {found}）の票です。受け取る側の nsdb を更新してください"
            ),
            ReplicationError::Sheet(_) => {
                "票のデータが壊れているか、nsdb の票ではないため受け付けません".into()
            }
        },
        SessionError::DamagedHere { .. } => {
            "受け取る側に保存されたこの票のデータが壊れていて読めないため、変更を反映できません".into()
        }
        other => format!("受け付けられない内容です（{other}）"),
    }
}

/// What a session did, for status pages and benchmarks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionStats {
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub documents_sent: u64,
    pub documents_received: u64,
    /// Received documents or changes refused (outside the scope, or made by another node).
    pub refused: u64,
    /// Buckets of the summary that differed.
    pub differing_buckets: u64,
    /// Sheets this side had for the peer that did not cross, with the reason: too large or
    /// unreadable here, or refused by the peer. Every other sheet crossed.
    pub set_aside: Vec<(SheetId, SetAside)>,
    /// Sheets this side offered in this session (sent, or the peer already had them) and the
    /// peer did not refuse.
    pub crossed: Vec<SheetId>,
    /// Sheets whose stored copy here cannot be read: set aside as unreadable when offered, or
    /// the peer's changes for them refused. The caller fetches them whole again from a peer
    /// that holds an intact copy.
    pub damaged: Vec<SheetId>,
}

/// Why a session ended early.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("sync protocol error: {0}")]
    Wire(#[from] WireError),
    #[error(
        "the peer speaks sync protocol version {theirs}, this node version {PROTOCOL_VERSION}; update the older side"
    )]
    Version { theirs: u16 },
    #[error("the peer sent {got} where {expected} was expected")]
    Unexpected { expected: &'static str, got: String },
    #[error("the peer ended the session early")]
    Closed,
    #[error("the peer sent a malformed summary")]
    BadSummary,
    #[error("the peer listed more documents than it holds")]
    TooManyEntries,
    #[error("the peer sent sheet {0}, which this side did not ask for")]
    Unrequested(SheetId),
    #[error("storage: {0}")]
    Replica(#[from] ReplicaError),
    /// A sheet from the peer failed its checks (refused alone; the session goes on).
    #[error("a sheet from the peer was refused: {0}")]
    Refused(ReplicationError),
    /// This side's stored copy of a sheet the peer sent changes for cannot be read (refused
    /// alone, and listed in [`SessionStats::damaged`]; the session goes on).
    #[error("sheet {id} stored on this side cannot be read: {reason}")]
    DamagedHere { id: SheetId, reason: String },
    #[error("nothing crossed for {} s; the peer is gone or stuck", .0.as_secs())]
    Stalled(Duration),
}

pub(crate) fn frame_name(frame: &Frame) -> String {
    match frame {
        Frame::Hello { .. } => "Hello".into(),
        Frame::Heads { .. } => "Heads".into(),
        Frame::Behind { .. } => "Behind".into(),
        Frame::Document { .. } => "Document".into(),
        Frame::Changes { .. } => "Changes".into(),
        Frame::Done => "Done".into(),
        Frame::Ack { .. } => "Ack".into(),
        Frame::Piece { .. } => "Piece".into(),
        Frame::Request { .. } => "Request".into(),
        Frame::Answer { .. } => "Answer".into(),
        Frame::Rest { .. } => "Rest".into(),
    }
}

/// When something last crossed in either direction, in ms since the session began.
struct Pace {
    began: tokio::time::Instant,
    last_ms: AtomicU64,
}

impl Pace {
    fn tick(&self) {
        let ms = self.began.elapsed().as_millis() as u64;
        self.last_ms.fetch_max(ms, Ordering::Relaxed);
    }

    /// Returns once nothing has crossed for `limit`.
    async fn stalled(&self, limit: Duration) {
        loop {
            let last = self.began + Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
            if tokio::time::Instant::now() >= last + limit {
                return;
            }
            tokio::time::sleep_until(last + limit).await;
        }
    }
}

struct Reader<'a, R> {
    inner: &'a mut R,
    bytes: u64,
    pace: &'a Pace,
}

impl<R: AsyncRead + Unpin> Reader<'_, R> {
    async fn next(&mut self) -> Result<Frame, SessionError> {
        let pace = self.pace;
        let read = wire::read_frame_with(self.inner, |_| pace.tick()).await?;
        pace.tick();
        match read {
            Some((frame, n)) => {
                self.bytes += n as u64;
                Ok(frame)
            }
            None => Err(SessionError::Closed),
        }
    }
}

struct Writer<'a, W> {
    inner: &'a mut W,
    bytes: u64,
    pace: &'a Pace,
}

impl<W: AsyncWrite + Unpin> Writer<'_, W> {
    /// Sends `frame` (in pieces when large), a piece at a time so a slow peer still shows
    /// progress. Nothing is written when it cannot be encoded ([`WireError::TooLarge`]).
    async fn send(&mut self, frame: &Frame) -> Result<(), SessionError> {
        use tokio::io::AsyncWriteExt;
        let bytes = wire::encode(frame)?;
        for chunk in bytes.chunks(wire::PIECE) {
            self.inner.write_all(chunk).await.map_err(WireError::Io)?;
            self.pace.tick();
        }
        self.bytes += bytes.len() as u64;
        Ok(())
    }
}

/// Whether `e` concerns one document only (it could not be encoded), so the session goes on.
fn too_large(e: &SessionError) -> bool {
    matches!(e, SessionError::Wire(WireError::TooLarge { .. }))
}

/// `reason`, cut to at most [`MAX_REASON`] bytes at a character boundary.
fn bounded(mut reason: String) -> String {
    if reason.len() > MAX_REASON {
        let mut at = MAX_REASON;
        while !reason.is_char_boundary(at) {
            at -= 1;
        }
        reason.truncate(at);
    }
    reason
}

/// Runs one session over `send`/`recv` with `peer`. Returns what was exchanged; ends with
/// [`SessionError::Stalled`] when nothing crosses for [`STALL_LIMIT`].
pub async fn run<R, S, V>(
    replica: &R,
    side: Side,
    peer: &Peer,
    send: &mut S,
    recv: &mut V,
) -> Result<SessionStats, SessionError>
where
    R: Replica,
    S: AsyncWrite + Unpin + Send,
    V: AsyncRead + Unpin + Send,
{
    run_within(replica, side, peer, send, recv, STALL_LIMIT).await
}

/// [`run`] with another stall limit.
pub async fn run_within<R, S, V>(
    replica: &R,
    side: Side,
    peer: &Peer,
    send: &mut S,
    recv: &mut V,
    stall_limit: Duration,
) -> Result<SessionStats, SessionError>
where
    R: Replica,
    S: AsyncWrite + Unpin + Send,
    V: AsyncRead + Unpin + Send,
{
    let pace = Pace {
        began: tokio::time::Instant::now(),
        last_ms: AtomicU64::new(0),
    };
    tokio::select! {
        result = exchange(replica, side, peer, send, recv, &pace) => result,
        () = pace.stalled(stall_limit) => Err(SessionError::Stalled(stall_limit)),
    }
}

async fn exchange<R, S, V>(
    replica: &R,
    side: Side,
    peer: &Peer,
    send: &mut S,
    recv: &mut V,
    pace: &Pace,
) -> Result<SessionStats, SessionError>
where
    R: Replica,
    S: AsyncWrite + Unpin + Send,
    V: AsyncRead + Unpin + Send,
{
    let mut stats = SessionStats::default();
    let inventory = replica.inventory(peer).await?;
    pace.tick();
    let held_back = replica.held_back(peer);
    let mut writer = Writer {
        inner: send,
        bytes: 0,
        pace,
    };
    let mut reader = Reader {
        inner: recv,
        bytes: 0,
        pace,
    };

    // 1. Summaries, both ways at once.
    let hello = Frame::Hello {
        version: PROTOCOL_VERSION,
        summary: inventory.summary().clone(),
        granted: match side {
            Side::Hub => inventory.granted.clone(),
            Side::Node => Vec::new(),
        },
    };
    let (sent, received) = tokio::join!(writer.send(&hello), reader.next());
    sent?;
    let (theirs, granted) = match received? {
        Frame::Hello {
            version,
            summary,
            granted,
        } => {
            if version != PROTOCOL_VERSION {
                return Err(SessionError::Version { theirs: version });
            }
            if !summary.is_well_formed() {
                return Err(SessionError::BadSummary);
            }
            (summary, granted)
        }
        other => {
            return Err(SessionError::Unexpected {
                expected: "Hello",
                got: frame_name(&other),
            });
        }
    };
    // The sheets opened to the node beyond its own institution: as the hub announced them
    // (checked again at the node), or as the hub's own inventory lists them.
    let granted: HashSet<SheetId> = match side {
        Side::Node => granted.into_iter().collect(),
        Side::Hub => inventory.granted.iter().copied().collect(),
    };
    // Both sides skip what follows when the summaries are equal (they see the same two).
    let differ = inventory.summary() != &theirs;

    // 2. Each side lists the sheets it changed since the last session that settled them
    //    (`Inventory::unsettled`); the rest is compared by summary, without the sheets either
    //    side listed, and the sheets of the buckets that still differ are listed too. So a
    //    session lists what changed, not the whole collection, and nothing that differs is
    //    missed. A side with more unsettled sheets than half of all (and more than
    //    `FEW_UNSETTLED`) lists none: the buckets that differ then carry them, for less.
    let unsettled = inventory.unsettled_count();
    let mine_changed: Vec<(SheetId, Heads)> =
        if differ && (unsettled <= FEW_UNSETTLED || unsettled * 2 <= inventory.len()) {
            inventory.unsettled()
        } else {
            Vec::new()
        };
    let (sent, peer_changed) = tokio::join!(
        send_heads(&mut writer, differ, &mine_changed),
        read_heads(&mut reader, differ, |_| true)
    );
    sent?;
    let peer_changed = peer_changed?;
    let mine_changed_ids: HashSet<SheetId> = mine_changed.iter().map(|(id, _)| *id).collect();
    let listed: HashSet<SheetId> = mine_changed_ids
        .iter()
        .chain(peer_changed.keys())
        .copied()
        .collect();
    let differing_buckets = if differ {
        let rest = inventory.summary_without(&listed);
        let peer_fingerprint = exchange_rest(&mut writer, &mut reader, &rest, false).await?;
        if peer_fingerprint.0 == rest.fingerprint() {
            Vec::new()
        } else {
            let (_, peer_rest) = exchange_rest(&mut writer, &mut reader, &rest, true).await?;
            rest.differing(&peer_rest.ok_or(SessionError::BadSummary)?)
        }
    } else {
        Vec::new()
    };
    stats.differing_buckets = differing_buckets.len() as u64;
    let differing: HashSet<usize> = differing_buckets.iter().copied().collect();
    // What the peer lacks of this side's list: this side's heads of the sheets the peer
    // listed and this side did not, and of every sheet in the buckets that still differ.
    let more: Vec<(SheetId, Heads)> = peer_changed
        .keys()
        .filter(|id| !mine_changed_ids.contains(id))
        .filter_map(|id| inventory.heads(id).map(|h| (*id, h.clone())))
        .chain(
            inventory
                .in_buckets(&differing_buckets)
                .into_iter()
                .filter(|(id, _)| !listed.contains(id)),
        )
        .collect();
    let (sent, peer_more) = tokio::join!(
        send_heads(&mut writer, differ, &more),
        read_heads(&mut reader, differ, |id| {
            mine_changed_ids.contains(id) || differing.contains(&bucket_of(id))
        })
    );
    sent?;
    let mut peer_heads = peer_changed;
    for (id, heads) in peer_more? {
        peer_heads.insert(id, heads);
        if peer_heads.len() > MAX_ENTRIES {
            return Err(SessionError::TooManyEntries);
        }
    }
    let mut my_heads = mine_changed;
    my_heads.extend(more);
    let my_heads_ids: HashSet<SheetId> = my_heads.iter().map(|(id, _)| *id).collect();

    // 3. What each side lacks, both ways at once.
    let mut whole = Vec::new();
    let mut partial = Vec::new();
    for (id, heads) in &my_heads {
        if held_back.contains(id) {
            continue;
        }
        match peer_heads.get(id) {
            None => whole.push(*id),
            Some(theirs) if heads.iter().all(|h| theirs.contains(h)) => {}
            Some(_) => partial.push(*id),
        }
    }
    // What this side expects from the peer: documents it lacks or whose heads differ.
    let expected: HashSet<SheetId> = peer_heads
        .iter()
        .filter(|(id, heads)| inventory.heads(id) != Some(*heads))
        .map(|(id, _)| *id)
        .collect();
    let only_from = match side {
        Side::Hub => Some(peer.node),
        Side::Node => None,
    };

    // Which side sends what for a sheet both hold with different heads: a side that knows
    // every head the peer sent is ahead and sends the changes after them; a side that does not
    // says so (`Behind`) and sends nothing, unless the peer says the same of that sheet (both
    // changed it while apart), when each sends what the other may lack.
    let (peer_behind_tx, peer_behind_rx) = tokio::sync::oneshot::channel::<HashSet<SheetId>>();
    let send_documents = async {
        let mut sent_docs = 0u64;
        let mut set_aside: Vec<(SheetId, SetAside)> = Vec::new();
        for batch in whole.chunks(LOAD_BATCH) {
            for (id, bytes) in replica.load(batch.to_vec()).await? {
                match writer.send(&Frame::Document { id, bytes }).await {
                    Ok(()) => sent_docs += 1,
                    Err(e) if too_large(&e) => {
                        set_aside.push((id, SetAside::TooLarge(e.to_string())))
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        let theirs = |id: &SheetId| peer_heads.get(id).map_or(&[][..], Vec::as_slice);
        let mut behind: Vec<SheetId> = Vec::new();
        for batch in partial.chunks(LOAD_BATCH) {
            for (id, sheet) in loaded(replica, batch, &mut set_aside).await? {
                if !theirs(&id).iter().all(|h| sheet.knows(h)) {
                    behind.push(id);
                    continue;
                }
                sent_docs +=
                    send_changes(&mut writer, id, &sheet, theirs(&id), &mut set_aside).await?;
            }
        }
        // Both sides skip this when the summaries were equal.
        let peer_behind = if !differ {
            HashSet::new()
        } else {
            let mut chunks = behind.chunks(HEADS_PER_FRAME).peekable();
            loop {
                let ids = chunks.next().unwrap_or_default().to_vec();
                let last = chunks.peek().is_none();
                writer.send(&Frame::Behind { ids, last }).await?;
                if last {
                    break;
                }
            }
            peer_behind_rx.await.map_err(|_| SessionError::Closed)?
        };
        let apart: Vec<SheetId> = behind
            .into_iter()
            .filter(|id| peer_behind.contains(id))
            .collect();
        for batch in apart.chunks(LOAD_BATCH) {
            for (id, sheet) in loaded(replica, batch, &mut set_aside).await? {
                sent_docs +=
                    send_changes(&mut writer, id, &sheet, theirs(&id), &mut set_aside).await?;
            }
        }
        writer.send(&Frame::Done).await?;
        Ok::<_, SessionError>((sent_docs, set_aside))
    };

    // Received documents are stored a batch at a time while the next batch is read and
    // checked; at most two batches wait, so a slow disk slows the peer instead of filling memory.
    let (to_store, mut storing) = tokio::sync::mpsc::channel::<Vec<Sheet>>(2);
    let store_documents = async {
        let mut not_stored: Vec<(SheetId, String)> = Vec::new();
        while let Some(batch) = storing.recv().await {
            not_stored.extend(replica.save(peer, batch).await?);
        }
        Ok::<_, SessionError>(not_stored)
    };
    let store_failed = || SessionError::Replica(ReplicaError("storing stopped".into()));
    let damaged_here: std::sync::Mutex<Vec<SheetId>> = std::sync::Mutex::new(Vec::new());
    let received_heads: std::sync::Mutex<Vec<(SheetId, Heads)>> = std::sync::Mutex::new(Vec::new());
    let receive_documents = async {
        let mut received = 0u64;
        let mut refused: Vec<(SheetId, String)> = Vec::new();
        let mut pending: Vec<Sheet> = Vec::new();
        let mut seen: HashSet<SheetId> = HashSet::new();
        let mut peer_behind_tx = differ.then_some(peer_behind_tx);
        let mut peer_behind: HashSet<SheetId> = HashSet::new();
        loop {
            let frame = reader.next().await?;
            let (id, outcome) = match frame {
                Frame::Done if peer_behind_tx.is_none() => break,
                Frame::Behind { ids, last } if peer_behind_tx.is_some() => {
                    for id in ids {
                        // Only a sheet whose heads this side sent can be one the peer is behind on.
                        if !my_heads_ids.contains(&id) {
                            return Err(SessionError::Unexpected {
                                expected: "sheets this side listed",
                                got: format!("Behind for sheet {id}"),
                            });
                        }
                        peer_behind.insert(id);
                    }
                    if last && let Some(tx) = peer_behind_tx.take() {
                        let _ = tx.send(std::mem::take(&mut peer_behind));
                    }
                    continue;
                }
                Frame::Document { id, bytes } => {
                    if !expected.contains(&id) || !seen.insert(id) {
                        return Err(SessionError::Unrequested(id));
                    }
                    if inventory.heads(&id).is_some() {
                        // The peer thought this side lacks it: merge the whole copy in.
                        (id, merge_whole(replica, id, &bytes, only_from).await)
                    } else {
                        (
                            id,
                            Sheet::load_received(id, &bytes, only_from)
                                .map(Some)
                                .map_err(refusal),
                        )
                    }
                }
                Frame::Changes { id, changes } => {
                    if !expected.contains(&id) || !seen.insert(id) {
                        return Err(SessionError::Unrequested(id));
                    }
                    if inventory.heads(&id).is_none() {
                        return Err(SessionError::Unexpected {
                            expected: "a whole document for a sheet this side lacks",
                            got: format!("changes of sheet {id}"),
                        });
                    }
                    (id, apply_changes(replica, id, &changes, only_from).await)
                }
                other => {
                    return Err(SessionError::Unexpected {
                        expected: "Document, Changes, Behind or Done, in that order",
                        got: frame_name(&other),
                    });
                }
            };
            match outcome {
                Ok(Some(sheet)) => {
                    if !replica.admits(peer, &sheet.header, &granted) {
                        tracing::warn!(target: "nsdb::sync", sheet = %id, peer = %peer.node, "refused a sheet outside the scope of this node and the peer");
                        refused.push((id, "受け取る側のシステムが扱う範囲の外の票です".into()));
                        continue;
                    }
                    if let Ok(mut r) = received_heads.lock() {
                        r.push((id, sheet.raw_heads()));
                    }
                    pending.push(sheet);
                    received += 1;
                    if pending.len() >= SAVE_BATCH {
                        to_store
                            .send(std::mem::take(&mut pending))
                            .await
                            .map_err(|_| store_failed())?;
                    }
                }
                Ok(None) => {}
                Err(SessionError::Replica(e)) => return Err(SessionError::Replica(e)),
                Err(reason) => {
                    tracing::warn!(target: "nsdb::sync", sheet = %id, peer = %peer.node, %reason, "refused a sheet from the peer");
                    if let SessionError::DamagedHere { .. } = reason
                        && let Ok(mut d) = damaged_here.lock()
                    {
                        d.push(id);
                    }
                    refused.push((id, refusal_words(&reason)));
                }
            }
        }
        if !pending.is_empty() {
            to_store.send(pending).await.map_err(|_| store_failed())?;
        }
        drop(to_store);
        Ok::<_, SessionError>((received, refused))
    };
    let receive_and_store = async {
        let ((received, mut refused), not_stored) =
            tokio::try_join!(receive_documents, store_documents)?;
        let stored = received.saturating_sub(not_stored.len() as u64);
        refused.extend(not_stored);
        Ok::<_, SessionError>((stored, refused))
    };

    // Either half failing ends the session at once (the other half would wait for the peer).
    let ((sent, mut set_aside), (received, refused)) =
        tokio::try_join!(send_documents, receive_and_store)?;
    stats.documents_sent = sent;
    // 4. Both sides confirm that what they received is stored, naming what they refused.
    let ack = Frame::Ack {
        stored: received,
        refused: refused
            .iter()
            .take(MAX_REFUSALS)
            .map(|(id, reason)| (*id, bounded(reason.clone())))
            .collect(),
    };
    let (acked, peer_ack) = tokio::join!(writer.send(&ack), reader.next());
    acked?;
    match peer_ack? {
        Frame::Ack {
            refused: by_peer, ..
        } => {
            // Only sheets this side offered can have been refused by the peer.
            let offered: HashSet<SheetId> = whole.iter().chain(&partial).copied().collect();
            let mut refused_here: HashSet<SheetId> = set_aside.iter().map(|(id, _)| *id).collect();
            for (id, reason) in by_peer.into_iter().take(MAX_REFUSALS) {
                if offered.contains(&id) && refused_here.insert(id) {
                    set_aside.push((id, SetAside::Refused(bounded(reason))));
                }
            }
            stats.crossed = offered
                .into_iter()
                .filter(|id| !refused_here.contains(id))
                .collect();
        }
        other => {
            return Err(SessionError::Unexpected {
                expected: "Ack",
                got: frame_name(&other),
            });
        }
    }
    stats.documents_received = received;
    stats.refused = refused.len() as u64;
    let mut damaged = damaged_here.into_inner().unwrap_or_default();
    damaged.extend(
        set_aside
            .iter()
            .filter(|(_, why)| matches!(why, SetAside::Unreadable(_)))
            .map(|(id, _)| *id),
    );
    // Both sides acknowledged: what crossed is held alike, except what either side refused or
    // this side did not offer.
    let refused_ids: HashSet<SheetId> = refused.iter().map(|(id, _)| *id).collect();
    let apart: Vec<SheetId> = set_aside
        .iter()
        .map(|(id, _)| *id)
        .chain(refused_ids.iter().copied())
        .chain(
            held_back
                .iter()
                .filter(|id| inventory.heads(id).is_some())
                .copied(),
        )
        .chain(damaged.iter().copied())
        .collect();
    let stored: Vec<(SheetId, Heads)> = received_heads
        .into_inner()
        .unwrap_or_default()
        .into_iter()
        .filter(|(id, _)| !refused_ids.contains(id))
        .collect();
    // An idle session with nothing unsettled leaves nothing to settle (and the replica keeps
    // its inventory as it is).
    if differ || inventory.unsettled_count() > 0 {
        replica.settle(
            peer,
            Settlement {
                through: inventory.stamp(),
                stored,
                apart,
            },
        );
    }
    stats.damaged = damaged;
    stats.set_aside = set_aside;
    stats.bytes_sent = writer.bytes;
    stats.bytes_received = reader.bytes;
    Ok(stats)
}

/// Sends this side's [`Frame::Rest`] (with the summary when `whole`) and reads the peer's:
/// its fingerprint, and its summary when `whole`.
async fn exchange_rest<W: AsyncWrite + Unpin, R: AsyncRead + Unpin>(
    writer: &mut Writer<'_, W>,
    reader: &mut Reader<'_, R>,
    rest: &crate::summary::Summary,
    whole: bool,
) -> Result<([u8; 16], Option<crate::summary::Summary>), SessionError> {
    let frame = Frame::Rest {
        fingerprint: rest.fingerprint(),
        summary: whole.then(|| rest.clone()),
    };
    let (sent, received) = tokio::join!(writer.send(&frame), reader.next());
    sent?;
    match received? {
        Frame::Rest {
            fingerprint,
            summary,
        } => match summary {
            None if !whole => Ok((fingerprint, None)),
            Some(s) if whole && s.is_well_formed() => Ok((fingerprint, Some(s))),
            _ => Err(SessionError::BadSummary),
        },
        other => Err(SessionError::Unexpected {
            expected: "Rest",
            got: frame_name(&other),
        }),
    }
}

/// Sends `entries` as [`Frame::Heads`] frames, the last one marked (one empty frame when there
/// are none); nothing when `differ` is false.
async fn send_heads<W: AsyncWrite + Unpin>(
    writer: &mut Writer<'_, W>,
    differ: bool,
    entries: &[(SheetId, Heads)],
) -> Result<(), SessionError> {
    if !differ {
        return Ok(());
    }
    let mut chunks = entries.chunks(HEADS_PER_FRAME).peekable();
    loop {
        let chunk = chunks.next().unwrap_or_default();
        let last = chunks.peek().is_none();
        writer
            .send(&Frame::Heads {
                entries: chunk.to_vec(),
                last,
            })
            .await?;
        if last {
            return Ok(());
        }
    }
}

/// Reads [`Frame::Heads`] frames up to the last one; every sheet must pass `allowed`. Nothing
/// when `differ` is false.
async fn read_heads<R: AsyncRead + Unpin>(
    reader: &mut Reader<'_, R>,
    differ: bool,
    allowed: impl Fn(&SheetId) -> bool,
) -> Result<HashMap<SheetId, Heads>, SessionError> {
    let mut heads: HashMap<SheetId, Heads> = HashMap::new();
    if !differ {
        return Ok(heads);
    }
    loop {
        match reader.next().await? {
            Frame::Heads { entries, last } => {
                for (id, h) in entries {
                    if !allowed(&id) {
                        return Err(SessionError::Unexpected {
                            expected: "heads of the sheets either side listed or of differing buckets",
                            got: format!("heads of sheet {id}"),
                        });
                    }
                    heads.insert(id, h);
                    if heads.len() > MAX_ENTRIES {
                        return Err(SessionError::TooManyEntries);
                    }
                }
                if last {
                    return Ok(heads);
                }
            }
            other => {
                return Err(SessionError::Unexpected {
                    expected: "Heads",
                    got: frame_name(&other),
                });
            }
        }
    }
}

/// The stored sheets `ids`, decoded; one that cannot be read is set aside with the reason.
async fn loaded<R: Replica>(
    replica: &R,
    ids: &[SheetId],
    set_aside: &mut Vec<(SheetId, SetAside)>,
) -> Result<Vec<(SheetId, Sheet)>, SessionError> {
    Ok(replica
        .load(ids.to_vec())
        .await?
        .into_iter()
        .filter_map(|(id, bytes)| match Sheet::load(&bytes) {
            Ok(sheet) => Some((id, sheet)),
            Err(e) => {
                tracing::warn!(target: "nsdb::sync", sheet = %id, "a stored sheet could not be read; not sent");
                set_aside.push((id, SetAside::Unreadable(e.to_string())));
                None
            }
        })
        .collect())
}

/// Sends the changes of `sheet` after `theirs` (the peer's heads), if any; returns how many
/// documents it sent (0 or 1). Changes too large to carry set the sheet aside.
async fn send_changes<W: AsyncWrite + Unpin>(
    writer: &mut Writer<'_, W>,
    id: SheetId,
    sheet: &Sheet,
    theirs: &[[u8; 32]],
    set_aside: &mut Vec<(SheetId, SetAside)>,
) -> Result<u64, SessionError> {
    let changes = sheet.changes_since(theirs);
    if changes.is_empty() {
        return Ok(0);
    }
    match writer.send(&Frame::Changes { id, changes }).await {
        Ok(()) => Ok(1),
        Err(e) if too_large(&e) => {
            set_aside.push((id, SetAside::TooLarge(e.to_string())));
            Ok(0)
        }
        Err(e) => Err(e),
    }
}

fn refusal(e: ReplicationError) -> SessionError {
    SessionError::Refused(e)
}

async fn stored<R: Replica>(replica: &R, id: SheetId) -> Result<Sheet, SessionError> {
    let found = replica.load(vec![id]).await?;
    let (_, bytes) = found
        .into_iter()
        .next()
        .ok_or_else(|| ReplicaError(format!("sheet {id} disappeared during the session")))?;
    Sheet::load(&bytes).map_err(|e| SessionError::DamagedHere {
        id,
        reason: e.to_string(),
    })
}

async fn apply_changes<R: Replica>(
    replica: &R,
    id: SheetId,
    changes: &[Vec<u8>],
    only_from: Option<NodeId>,
) -> Result<Option<Sheet>, SessionError> {
    let mut sheet = stored(replica, id).await?;
    let fresh = sheet.apply_received(changes, only_from).map_err(refusal)?;
    Ok((fresh > 0).then_some(sheet))
}

async fn merge_whole<R: Replica>(
    replica: &R,
    id: SheetId,
    bytes: &[u8],
    only_from: Option<NodeId>,
) -> Result<Option<Sheet>, SessionError> {
    let mut sheet = stored(replica, id).await?;
    let incoming = Sheet::load_received(id, bytes, None).map_err(refusal)?;
    let changes = incoming.changes_since(&sheet.raw_heads());
    let fresh = sheet.apply_received(&changes, only_from).map_err(refusal)?;
    Ok((fresh > 0).then_some(sheet))
}
