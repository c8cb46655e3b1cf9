//! Property test of replication: random edits on several nodes, random syncs with the hub,
//! and sessions cut off at random points; in the end every replica is identical and every edit
//! a node saved is present everywhere.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::task::{Context, Poll};

use proptest::prelude::*;
use tokio::io::AsyncWrite;

use crate::ids::{Author, NodeId, SheetId};
use crate::link::tests::{Hints, Memory, new_sheet};
use crate::session::{self, Peer, PeerRole, Side};
use crate::sheet::Edit;
use crate::tls::PublicKey;

/// A writer that fails after `left` bytes: a connection lost in the middle of a session.
struct Cut<W> {
    inner: W,
    left: Option<usize>,
}

impl<W: AsyncWrite + Unpin> AsyncWrite for Cut<W> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let n = match self.left {
            Some(0) => {
                return Poll::Ready(Err(std::io::ErrorKind::BrokenPipe.into()));
            }
            Some(left) => buf.len().min(left),
            None => buf.len(),
        };
        let written = Pin::new(&mut self.inner).poll_write(cx, &buf[..n]);
        if let (Poll::Ready(Ok(w)), Some(left)) = (&written, self.left.as_mut()) {
            *left -= *w;
        }
        written
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[derive(Debug, Clone)]
enum Op {
    Create {
        node: usize,
    },
    Edit {
        node: usize,
        sheet: usize,
        field: u8,
        value: u8,
    },
    Sync {
        node: usize,
        cut: Option<usize>,
    },
}

fn op(nodes: usize) -> impl Strategy<Value = Op> {
    prop_oneof![
        1 => (0..nodes).prop_map(|node| Op::Create { node }),
        4 => (0..nodes, 0..8usize, 0..4u8, 0..50u8)
            .prop_map(|(node, sheet, field, value)| Op::Edit { node, sheet, field, value }),
        3 => (0..nodes, prop::option::of(0..3000usize))
            .prop_map(|(node, cut)| Op::Sync { node, cut }),
    ]
}

fn key(n: usize) -> PublicKey {
    PublicKey([n as u8 + 10; 32])
}

fn node_peer(n: usize) -> Peer {
    Peer {
        key: key(n),
        node: key(n).node_id(),
        role: PeerRole::Hospital,
        jurisdiction: "1".into(),
        name: format!("node {n}"),
    }
}

async fn sync(hub: &Memory, node: &Memory, n: usize, cut: Option<usize>) -> bool {
    sync_stats(hub, node, n, cut).await.is_some()
}

/// One session between `node` (number `n`) and `hub`, the node's writes cut after `cut` bytes;
/// the node's stats when both sides ended well.
async fn sync_stats(
    hub: &Memory,
    node: &Memory,
    n: usize,
    cut: Option<usize>,
) -> Option<session::SessionStats> {
    let (a, b) = tokio::io::duplex(16 * 1024);
    let (mut ar, aw) = tokio::io::split(a);
    let hub_peer = Peer::hub(key(99));
    let (mut br, mut bw) = tokio::io::split(b);
    let mut aw = Cut {
        inner: aw,
        left: cut,
    };
    // The node's halves are dropped when its session ends, so a cut closes both ways.
    let node_side =
        async move { session::run(node, Side::Node, &hub_peer, &mut aw, &mut ar).await };
    let peer = node_peer(n);
    let hub_side = session::run(hub, Side::Hub, &peer, &mut bw, &mut br);
    let (a, b) = tokio::join!(node_side, hub_side);
    b.ok().and(a.ok())
}

/// What the session after `changed` of `sheets` sheets changed one item each carries, with
/// both sides keeping their inventories as `hints` says.
fn incremental(hints: Hints, sheets: usize, changed: usize) -> session::SessionStats {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let (hub, node) = (Memory::with(hints), Memory::with(hints));
        let mut ids = Vec::new();
        for _ in 0..sheets {
            let mut sheet = new_sheet(author(0));
            ids.push(sheet.id());
            node.put(&mut sheet);
        }
        sync_stats(&hub, &node, 0, None).await.expect("first sync");
        sync_stats(&hub, &node, 0, None).await.expect("idle sync");
        for id in ids.iter().take(changed) {
            let mut doc = node.get(id).expect("held");
            let changes = BTreeMap::from([("q1".to_owned(), Some("変更".to_owned()))]);
            let edit = Edit {
                author: author(0),
                at_ms: 99,
                message: "",
            };
            doc.set_fields(&changes, edit);
            node.put(&mut doc);
        }
        let stats = sync_stats(&hub, &node, 0, None)
            .await
            .expect("sync of the changes");
        for id in ids.iter().take(changed) {
            assert_eq!(
                hub.get(id).expect("on the hub").field("q1").as_deref(),
                Some("変更")
            );
        }
        stats
    })
}

#[test]
fn a_session_after_a_few_changes_lists_those_sheets_not_every_sheet_of_their_buckets() {
    // 600 of 3,000 sheets changed: about 230 of the 256 buckets differ.
    let kept = incremental(Hints::Kept, 3_000, 600);
    let fresh = incremental(Hints::Fresh, 3_000, 600);
    assert_eq!(kept.documents_sent, 600);
    assert_eq!(fresh.documents_sent, 600);
    // The changed sheets were listed first; nothing else differed.
    assert_eq!(kept.differing_buckets, 0, "{kept:?}");
    assert!(fresh.differing_buckets > 200, "{fresh:?}");
    let bytes = |s: &session::SessionStats| s.bytes_sent + s.bytes_received;
    assert!(
        bytes(&kept) * 2 < bytes(&fresh),
        "kept {} bytes, fresh {} bytes",
        bytes(&kept),
        bytes(&fresh)
    );
}

fn author(n: usize) -> Author {
    Author {
        node: key(n).node_id(),
        user: 1,
    }
}

fn ids(m: &Memory) -> Vec<SheetId> {
    let mut ids: Vec<SheetId> = m.docs.lock().expect("lock").keys().copied().collect();
    ids.sort();
    ids
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn replicas_converge_and_keep_every_saved_edit(
        ops in prop::collection::vec(op(3), 1..40),
        hints in prop_oneof![Just(Hints::Kept), Just(Hints::Fresh), Just(Hints::Wrong)],
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        runtime.block_on(async {
            let hub = Memory::with(hints);
            let nodes: Vec<Memory> = (0..3).map(|_| Memory::with(hints)).collect();
            let mut saved: Vec<(SheetId, [u8; 32])> = Vec::new();
            for (at, op) in (11..).zip(ops) {
                match op {
                    Op::Create { node } => {
                        let mut sheet = new_sheet(author(node));
                        saved.extend(sheet.raw_heads().into_iter().map(|h| (sheet.id(), h)));
                        nodes[node].put(&mut sheet);
                    }
                    Op::Edit { node, sheet, field, value } => {
                        let held = ids(&nodes[node]);
                        if held.is_empty() {
                            continue;
                        }
                        let id = held[sheet % held.len()];
                        let mut doc = nodes[node].get(&id).expect("held");
                        let changes = BTreeMap::from([(format!("q{field}"), Some(format!("{node}-{value}")))]);
                        let edit = Edit { author: author(node), at_ms: at, message: "" };
                        if !doc.set_fields(&changes, edit).is_empty() {
                            saved.extend(doc.raw_heads().into_iter().map(|h| (id, h)));
                            nodes[node].put(&mut doc);
                        }
                    }
                    Op::Sync { node, cut } => {
                        sync(&hub, &nodes[node], node, cut).await;
                    }
                }
            }
            // The network comes back: a few rounds without cuts.
            for _ in 0..2 {
                for (n, node) in nodes.iter().enumerate() {
                    prop_assert!(sync(&hub, node, n, None).await);
                }
            }
            let reference = ids(&hub);
            for node in &nodes {
                prop_assert_eq!(ids(node), reference.clone());
            }
            for id in &reference {
                let on_hub = hub.get(id).expect("held");
                for node in &nodes {
                    let copy = node.get(id).expect("held");
                    let (mut a, mut b) = (copy.heads(), on_hub.heads());
                    a.sort();
                    b.sort();
                    prop_assert_eq!(a, b);
                    prop_assert_eq!(copy.fields(), on_hub.fields());
                }
            }
            for (id, hash) in &saved {
                let on_hub = hub.get(id).expect("every saved sheet reaches the hub");
                prop_assert!(on_hub.knows(hash), "a saved edit is missing");
            }
            let _ = NodeId([0; 16]);
            Ok(())
        })?;
    }
}
