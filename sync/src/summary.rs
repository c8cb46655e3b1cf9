//! A compact summary of which documents a side holds and at which version, so two sides find
//! the documents that differ without listing them all.
//!
//! Documents fall into [`BUCKETS`] buckets by their id; a bucket's digest is the XOR of a
//! 128-bit hash of each of its documents' (id, heads). Equal digests mean (with overwhelming
//! probability) equal contents, so an idle sync exchanges two summaries of a few KiB whatever
//! the number of sheets. This module only computes and compares digests; it must never decide
//! what a peer may see.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::ids::SheetId;

/// Number of buckets of a summary.
pub const BUCKETS: usize = 256;

/// The digest of one bucket.
pub type BucketDigest = [u8; 16];

/// The summary of a side's documents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// How many documents the side holds.
    pub count: u64,
    /// One digest per bucket, [`BUCKETS`] of them.
    pub buckets: Vec<BucketDigest>,
}

/// The bucket of a sheet id.
pub fn bucket_of(id: &SheetId) -> usize {
    let digest = Sha256::digest(id.0.as_bytes());
    usize::from(digest[0])
}

/// The 128-bit hash of one document's id and heads (heads in any order).
pub fn entry_digest(id: &SheetId, heads: &[[u8; 32]]) -> BucketDigest {
    let mut sorted: Vec<&[u8; 32]> = heads.iter().collect();
    sorted.sort_unstable();
    let mut hasher = Sha256::new();
    hasher.update(id.0.as_bytes());
    for head in sorted {
        hasher.update(head);
    }
    let digest = hasher.finalize();
    let mut out = [0u8; 16];
    out.copy_from_slice(&digest[..16]);
    out
}

impl Summary {
    /// The summary of no documents.
    pub fn empty() -> Summary {
        Summary {
            count: 0,
            buckets: vec![[0u8; 16]; BUCKETS],
        }
    }

    /// Adds a document (by its precomputed [`entry_digest`]).
    pub fn add(&mut self, id: &SheetId, digest: &BucketDigest) {
        self.toggle(bucket_of(id), digest);
        self.count += 1;
    }

    /// Adds an entry's digest to a bucket, or takes it out again (XOR is its own inverse); the
    /// count is the caller's.
    pub(crate) fn toggle(&mut self, bucket: usize, digest: &BucketDigest) {
        for (b, d) in self.buckets[bucket].iter_mut().zip(digest) {
            *b ^= d;
        }
    }

    /// The summary of `(id, heads)` pairs.
    pub fn of<'a>(entries: impl IntoIterator<Item = (&'a SheetId, &'a [[u8; 32]])>) -> Summary {
        let mut summary = Summary::empty();
        for (id, heads) in entries {
            summary.add(id, &entry_digest(id, heads));
        }
        summary
    }

    /// Whether a summary from a peer has the right shape.
    pub fn is_well_formed(&self) -> bool {
        self.buckets.len() == BUCKETS
    }

    /// A digest of every bucket's digest: equal fingerprints mean (with overwhelming
    /// probability) equal summaries, in 16 bytes instead of [`BUCKETS`] × 16.
    pub fn fingerprint(&self) -> BucketDigest {
        let mut hasher = Sha256::new();
        for bucket in &self.buckets {
            hasher.update(bucket);
        }
        let digest = hasher.finalize();
        let mut out = [0u8; 16];
        out.copy_from_slice(&digest[..16]);
        out
    }

    /// The buckets whose digests differ between two summaries, ascending.
    pub fn differing(&self, other: &Summary) -> Vec<usize> {
        self.buckets
            .iter()
            .zip(&other.buckets)
            .enumerate()
            .filter(|(_, (a, b))| a != b)
            .map(|(i, _)| i)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_contents_give_equal_summaries_in_any_order() {
        let ids: Vec<SheetId> = (0..50).map(|_| SheetId::random()).collect();
        let heads: Vec<Vec<[u8; 32]>> = (0..50u8).map(|i| vec![[i; 32], [i + 1; 32]]).collect();
        let a = Summary::of(ids.iter().zip(heads.iter().map(Vec::as_slice)));
        let b = Summary::of(ids.iter().zip(heads.iter().map(Vec::as_slice)).rev());
        assert_eq!(a, b);
        assert!(a.differing(&b).is_empty());
        let mut changed = heads.clone();
        changed[7] = vec![[99; 32]];
        let c = Summary::of(ids.iter().zip(changed.iter().map(Vec::as_slice)));
        assert_eq!(a.differing(&c), vec![bucket_of(&ids[7])]);
        let encoded = postcard::to_stdvec(&a).expect("encodes");
        assert!(encoded.len() < 5 * 1024, "{} bytes", encoded.len());
    }
}
