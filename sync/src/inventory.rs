//! The documents one side shares with a peer and their heads, held by summary bucket with the
//! summary kept current, so that a replica updates it change by change instead of rebuilding
//! it, and a session reads only the buckets that differ.
//!
//! Each entry also carries a *stamp*: when its heads last changed here, counted by the
//! inventory. A session that ended with both sides alike settles the entries it saw
//! ([`Inventory::settle`]), so the entries left unsettled ([`Inventory::unsettled`]) are the
//! sheets that may differ from the peer's: a session sends those first and compares the rest by
//! summary (protocol version 5, docs/sync.md). Stamps are a hint for speed, never for
//! correctness: a session checks by summary that nothing outside them differs.
//!
//! This module only keeps what it is given: it must never decide what a peer may see (the
//! replica fills it with the peer's scope).

use std::collections::{BTreeMap, HashMap};

use crate::ids::SheetId;
use crate::summary::{BUCKETS, BucketDigest, Summary, bucket_of, entry_digest};
use crate::wire::Heads;

/// The stamp of an entry known to be held alike by the peer, whatever was settled.
const SETTLED: u64 = 0;

/// One listed document.
#[derive(Debug, Clone)]
struct Entry {
    heads: Heads,
    digest: BucketDigest,
    stamp: u64,
}

/// Every document in a peer's scope, with its current heads, and their summary.
#[derive(Debug, Clone)]
pub struct Inventory {
    /// One map per summary bucket.
    buckets: Vec<HashMap<SheetId, Entry>>,
    summary: Summary,
    /// The entries by stamp, settled ones ([`SETTLED`]) left out.
    by_stamp: BTreeMap<u64, SheetId>,
    /// The last stamp given.
    tick: u64,
    /// Sheets opened to the peer beyond its own institution (sent by the hub only).
    pub granted: Vec<SheetId>,
}

impl Default for Inventory {
    fn default() -> Self {
        Inventory::new(Vec::new())
    }
}

impl Inventory {
    /// No documents yet; `granted` as the hub announces it.
    pub fn new(granted: Vec<SheetId>) -> Inventory {
        Inventory {
            buckets: vec![HashMap::new(); BUCKETS],
            summary: Summary::empty(),
            by_stamp: BTreeMap::new(),
            tick: 0,
            granted,
        }
    }

    /// An inventory of `entries`, none of them known to be held by the peer.
    pub fn from_entries(
        entries: impl IntoIterator<Item = (SheetId, Heads)>,
        granted: Vec<SheetId>,
    ) -> Inventory {
        let mut inventory = Inventory::new(granted);
        for (id, heads) in entries {
            inventory.insert(id, heads);
        }
        inventory
    }

    /// Adds a document, or sets the heads of one already listed; a change of heads stamps it
    /// anew (it may differ from the peer's).
    pub fn insert(&mut self, id: SheetId, heads: Heads) {
        self.put(id, heads, false);
    }

    /// Like [`Inventory::insert`], for heads a session has just confirmed the peer holds
    /// (a sheet received from it and stored as it left): the entry is settled.
    pub fn insert_settled(&mut self, id: SheetId, heads: Heads) {
        self.put(id, heads, true);
    }

    fn put(&mut self, id: SheetId, heads: Heads, settled: bool) {
        let bucket = bucket_of(&id);
        let digest = entry_digest(&id, &heads);
        let stamp = if settled {
            SETTLED
        } else {
            self.tick += 1;
            self.tick
        };
        let entry = Entry {
            heads,
            digest,
            stamp,
        };
        if let Some(old) = self.buckets[bucket].insert(id, entry) {
            if old.digest == digest && !settled {
                // Same heads: keep what was known of it.
                if let Some(e) = self.buckets[bucket].get_mut(&id) {
                    e.stamp = old.stamp;
                }
                return;
            }
            self.by_stamp.remove(&old.stamp);
            self.summary.toggle(bucket, &old.digest);
            self.summary.count -= 1;
        }
        if stamp != SETTLED {
            self.by_stamp.insert(stamp, id);
        }
        self.summary.toggle(bucket, &digest);
        self.summary.count += 1;
    }

    /// The heads of a document, if listed.
    pub fn heads(&self, id: &SheetId) -> Option<&Heads> {
        self.buckets[bucket_of(id)].get(id).map(|e| &e.heads)
    }

    /// How many documents are listed.
    pub fn len(&self) -> usize {
        self.summary.count as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The summary of every listed document.
    pub fn summary(&self) -> &Summary {
        &self.summary
    }

    /// The summary of every listed document except `ids` (ids not listed are ignored).
    pub fn summary_without<'a>(&self, ids: impl IntoIterator<Item = &'a SheetId>) -> Summary {
        let mut summary = self.summary.clone();
        for id in ids {
            let bucket = bucket_of(id);
            if let Some(e) = self.buckets[bucket].get(id) {
                summary.toggle(bucket, &e.digest);
                summary.count -= 1;
            }
        }
        summary
    }

    /// The documents of `buckets` and their heads.
    pub fn in_buckets(&self, buckets: &[usize]) -> Vec<(SheetId, Heads)> {
        buckets
            .iter()
            .filter_map(|b| self.buckets.get(*b))
            .flat_map(|m| m.iter().map(|(id, e)| (*id, e.heads.clone())))
            .collect()
    }

    /// The last stamp given: what a session that began now would settle
    /// ([`Inventory::settle`]).
    pub fn stamp(&self) -> u64 {
        self.tick
    }

    /// How many entries are not known to be held alike by the peer.
    pub fn unsettled_count(&self) -> usize {
        self.by_stamp.len()
    }

    /// The entries not known to be held alike by the peer (changed here since the last
    /// settled session, or never settled), oldest change first.
    pub fn unsettled(&self) -> Vec<(SheetId, Heads)> {
        self.by_stamp
            .values()
            .filter_map(|id| self.heads(id).map(|h| (*id, h.clone())))
            .collect()
    }

    /// Records that a session which began at stamp `through` ([`Inventory::stamp`]) ended with
    /// every entry it saw held alike by the peer, except `apart` (set aside, held back or
    /// refused on either side), which stay unsettled. Entries changed since stay unsettled.
    pub fn settle(&mut self, through: u64, apart: impl IntoIterator<Item = SheetId>) {
        let later = self.by_stamp.split_off(&through.saturating_add(1));
        let settled = std::mem::replace(&mut self.by_stamp, later);
        for id in settled.into_values() {
            if let Some(e) = self.buckets[bucket_of(&id)].get_mut(&id) {
                e.stamp = SETTLED;
            }
        }
        for id in apart {
            let bucket = bucket_of(&id);
            if let Some(e) = self.buckets[bucket].get_mut(&id) {
                self.by_stamp.remove(&e.stamp);
                self.tick += 1;
                e.stamp = self.tick;
                self.by_stamp.insert(self.tick, id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn updates_keep_the_summary_of_a_rebuilt_inventory() {
        let ids: Vec<SheetId> = (0..300).map(|_| SheetId::random()).collect();
        let mut kept = Inventory::from_entries(ids.iter().map(|id| (*id, vec![[1; 32]])), vec![]);
        // Change a third of them, one at a time.
        for id in ids.iter().step_by(3) {
            kept.insert(*id, vec![[2; 32], [3; 32]]);
        }
        let rebuilt = Inventory::from_entries(
            ids.iter().enumerate().map(|(i, id)| {
                let heads = if i % 3 == 0 {
                    vec![[3; 32], [2; 32]]
                } else {
                    vec![[1; 32]]
                };
                (*id, heads)
            }),
            vec![],
        );
        assert_eq!(kept.summary(), rebuilt.summary());
        assert_eq!(kept.len(), 300);
        assert_eq!(kept.heads(&ids[3]), Some(&vec![[2; 32], [3; 32]]));
        let all: Vec<usize> = (0..BUCKETS).collect();
        assert_eq!(kept.in_buckets(&all).len(), 300);
        let one = bucket_of(&ids[0]);
        let listed = kept.in_buckets(&[one]);
        assert!(listed.iter().all(|(id, _)| bucket_of(id) == one));
        assert!(listed.iter().any(|(id, _)| *id == ids[0]));
    }

    #[test]
    fn a_settled_session_leaves_only_later_changes_and_what_did_not_cross_unsettled() {
        let ids: Vec<SheetId> = (0..100).map(|_| SheetId::random()).collect();
        let mut inv = Inventory::from_entries(ids.iter().map(|id| (*id, vec![[1; 32]])), vec![]);
        assert_eq!(
            inv.unsettled_count(),
            100,
            "nothing is known of the peer yet"
        );
        let began = inv.stamp();
        // Changed while the session ran: not covered by it.
        inv.insert(ids[5], vec![[2; 32]]);
        // Received from the peer during the session and stored as it left.
        inv.insert_settled(ids[6], vec![[3; 32]]);
        inv.settle(began, [ids[7]]);
        let mut left: Vec<SheetId> = inv.unsettled().into_iter().map(|(id, _)| id).collect();
        left.sort();
        let mut expected = vec![ids[5], ids[7]];
        expected.sort();
        assert_eq!(left, expected);
        // Writing the same heads again changes nothing; new heads make it unsettled.
        inv.insert(ids[6], vec![[3; 32]]);
        inv.insert(ids[8], vec![[1; 32]]);
        assert_eq!(inv.unsettled_count(), 2);
        inv.insert(ids[9], vec![[4; 32]]);
        assert_eq!(inv.unsettled_count(), 3);
        assert_eq!(inv.len(), 100);
        // The summary never depends on what is settled.
        let rebuilt = Inventory::from_entries(
            ids.iter()
                .map(|id| (*id, inv.heads(id).cloned().unwrap_or_default())),
            vec![],
        );
        assert_eq!(inv.summary(), rebuilt.summary());
        let without = inv.summary_without(&[ids[5], ids[9]]);
        let others = Inventory::from_entries(
            ids.iter()
                .filter(|id| **id != ids[5] && **id != ids[9])
                .map(|id| (*id, inv.heads(id).cloned().unwrap_or_default())),
            vec![],
        );
        assert_eq!(&without, others.summary());
    }

    #[test]
    fn the_summary_matches_one_computed_from_the_entries() {
        let entries: Vec<(SheetId, Heads)> = (0..50u8)
            .map(|i| (SheetId::random(), vec![[i; 32]]))
            .collect();
        let inventory = Inventory::from_entries(entries.clone(), vec![]);
        let direct = Summary::of(entries.iter().map(|(id, h)| (id, h.as_slice())));
        assert_eq!(inventory.summary(), &direct);
    }
}
