//! The documents one side shares with a peer and their heads, held by summary bucket with the
//! summary kept current, so that a replica updates it change by change instead of rebuilding
//! it, and a session reads only the buckets that differ.
//!
//! This module only keeps what it is given: it must never decide what a peer may see (the
//! replica fills it with the peer's scope).

use std::collections::HashMap;

use crate::ids::SheetId;
use crate::summary::{BUCKETS, BucketDigest, Summary, bucket_of, entry_digest};
use crate::wire::Heads;

/// Every document in a peer's scope, with its current heads, and their summary.
#[derive(Debug, Clone)]
pub struct Inventory {
    /// One map per summary bucket: id → (heads, entry digest).
    buckets: Vec<HashMap<SheetId, (Heads, BucketDigest)>>,
    summary: Summary,
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
            granted,
        }
    }

    /// An inventory of `entries`.
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

    /// Adds a document, or sets the heads of one already listed.
    pub fn insert(&mut self, id: SheetId, heads: Heads) {
        let digest = entry_digest(&id, &heads);
        let bucket = bucket_of(&id);
        if let Some((_, old)) = self.buckets[bucket].insert(id, (heads, digest)) {
            self.summary.toggle(bucket, &old);
            self.summary.count -= 1;
        }
        self.summary.toggle(bucket, &digest);
        self.summary.count += 1;
    }

    /// The heads of a document, if listed.
    pub fn heads(&self, id: &SheetId) -> Option<&Heads> {
        self.buckets[bucket_of(id)].get(id).map(|(heads, _)| heads)
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

    /// The documents of `buckets` and their heads.
    pub fn in_buckets(&self, buckets: &[usize]) -> Vec<(SheetId, Heads)> {
        buckets
            .iter()
            .filter_map(|b| self.buckets.get(*b))
            .flat_map(|m| m.iter().map(|(id, (heads, _))| (*id, heads.clone())))
            .collect()
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
    fn the_summary_matches_one_computed_from_the_entries() {
        let entries: Vec<(SheetId, Heads)> = (0..50u8)
            .map(|i| (SheetId::random(), vec![[i; 32]]))
            .collect();
        let inventory = Inventory::from_entries(entries.clone(), vec![]);
        let direct = Summary::of(entries.iter().map(|(id, h)| (id, h.as_slice())));
        assert_eq!(inventory.summary(), &direct);
    }
}
