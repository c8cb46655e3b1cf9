//! The bytes a sheet's document is stored as, kept beside the loaded document so that storing
//! it again costs what changed, not the whole document.
//!
//! Automerge reads a document from a sequence of chunks: a whole document (compressed
//! columns) followed by any number of single changes ("Binary Document Format", automerge.org
//! docs, "Chunk"). A sheet loaded from bytes, or received whole, keeps those bytes: storing it
//! unchanged writes them as they came (no re-encoding), and storing it after a few changes
//! appends those changes' own chunks. Once the appended chunks outgrow [`MAX_APPENDED`] or the
//! whole document's chunk, the next save writes one compact document again.
//!
//! This module must never hand out bytes that do not load as the document's current state:
//! every use checks the heads the bytes were made at against the document's own.

use automerge::{Automerge, ChangeHash};

/// The magic bytes at the start of every Automerge chunk.
const MAGIC: [u8; 4] = [0x85, 0x6f, 0x4a, 0x83];

/// Appended change chunks after which a save writes a compact document again. Loading a
/// change chunk replays it, so the count bounds what an appended save costs later loads.
pub(crate) const MAX_APPENDED: usize = 16;

/// Appended bytes (KiB) that a save always tolerates before compacting, whatever the whole
/// document's size: a small sheet's first few saves stay appends.
const SLACK: usize = 4 * 1024;

/// A document's stored bytes and the heads they were made at.
#[derive(Clone, Debug)]
pub(crate) struct Stored {
    bytes: Vec<u8>,
    heads: Vec<ChangeHash>,
    /// Length of the leading document chunk (the whole bytes when they could not be walked).
    compact: usize,
    /// Change chunks after it.
    appended: usize,
}

impl Stored {
    /// Bytes `doc` was just loaded from or saved to.
    pub(crate) fn of(bytes: Vec<u8>, doc: &Automerge) -> Stored {
        let (compact, appended) = walk(&bytes).unwrap_or((bytes.len(), MAX_APPENDED));
        Stored {
            heads: doc.get_heads(),
            bytes,
            compact,
            appended,
        }
    }

    /// The bytes of `doc` as it is now, when these bytes still describe it or fall short of
    /// it only by a few changes it holds; `None` when the caller must save the whole document.
    pub(crate) fn current(&mut self, doc: &Automerge) -> Option<Vec<u8>> {
        let heads = doc.get_heads();
        if heads == self.heads {
            return Some(self.bytes.clone());
        }
        if self
            .heads
            .iter()
            .any(|h| doc.get_change_meta_by_hash(h).is_none())
        {
            return None;
        }
        let changes = doc.get_changes(&self.heads);
        self.append(changes.iter().map(|c| c.raw_bytes()), heads)
            .then(|| self.bytes.clone())
    }

    /// Appends raw change chunks that bring the bytes from their heads to `heads`; false (and
    /// nothing appended) when that would outgrow the bounds: the next save compacts.
    pub(crate) fn append<'a>(
        &mut self,
        chunks: impl Iterator<Item = &'a [u8]> + Clone,
        heads: Vec<ChangeHash>,
    ) -> bool {
        let (count, len) = chunks
            .clone()
            .fold((0usize, 0usize), |(n, l), c| (n + 1, l + c.len()));
        let grown = self.bytes.len() + len - self.compact;
        if self.appended + count > MAX_APPENDED || grown > self.compact.max(SLACK) {
            return false;
        }
        self.bytes.reserve(len);
        for chunk in chunks {
            self.bytes.extend_from_slice(chunk);
        }
        self.appended += count;
        self.heads = heads;
        true
    }

    /// The bytes, as of [`Stored::heads`].
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The heads the bytes were made at.
    pub(crate) fn heads(&self) -> &[ChangeHash] {
        &self.heads
    }
}

/// The length of the leading chunk and the count of the chunks after it, read from the chunk
/// headers (magic, 4-byte checksum, type byte, uLEB128 length); `None` when they do not parse.
fn walk(bytes: &[u8]) -> Option<(usize, usize)> {
    let mut at = 0usize;
    let mut first = None;
    let mut chunks = 0usize;
    while at < bytes.len() {
        let header = bytes.get(at..at + 9)?;
        if header[..4] != MAGIC {
            return None;
        }
        let mut len = 0usize;
        let mut shift = 0u32;
        let mut p = at + 9;
        loop {
            let b = *bytes.get(p)?;
            p += 1;
            len |= usize::from(b & 0x7f).checked_shl(shift)?;
            if b & 0x80 == 0 {
                break;
            }
            shift += 7;
            if shift > 63 {
                return None;
            }
        }
        at = p.checked_add(len)?;
        if at > bytes.len() {
            return None;
        }
        first.get_or_insert(at);
        chunks += 1;
    }
    Some((first?, chunks.checked_sub(1)?))
}

#[cfg(test)]
mod tests {
    use automerge::transaction::Transactable;
    use automerge::{ROOT, ReadDoc};

    use super::*;

    fn doc_with(n: usize) -> Automerge {
        let mut doc = Automerge::new();
        for i in 0..n {
            let mut tx = doc.transaction();
            tx.put(ROOT, format!("k{i}"), i as i64).expect("put");
            tx.commit();
        }
        doc
    }

    #[test]
    fn bytes_of_an_unchanged_document_are_the_ones_it_came_from() {
        let doc = doc_with(3);
        let bytes = doc.save();
        let loaded = Automerge::load(&bytes).expect("loads");
        let mut stored = Stored::of(bytes.clone(), &loaded);
        assert_eq!(stored.current(&loaded), Some(bytes));
        assert_eq!(stored.appended, 0);
    }

    #[test]
    fn a_few_changes_are_appended_and_the_bytes_load_as_the_document() {
        let mut doc = doc_with(3);
        let mut stored = Stored::of(doc.save(), &doc);
        let compact = stored.compact;
        for i in 0..3 {
            let mut tx = doc.transaction();
            tx.put(ROOT, "later", i as i64).expect("put");
            tx.commit();
            let bytes = stored.current(&doc).expect("appended");
            let loaded = Automerge::load(&bytes).expect("loads");
            assert_eq!(loaded.get_heads(), doc.get_heads());
            assert_eq!(
                loaded
                    .get(ROOT, "later")
                    .expect("reads")
                    .map(|(v, _)| v.as_i64()),
                Some(Some(i as i64))
            );
        }
        assert_eq!((stored.compact, stored.appended), (compact, 3));
        // Walking the appended bytes again finds the same chunks.
        let again = Stored::of(stored.bytes.clone(), &doc);
        assert_eq!((again.compact, again.appended), (compact, 3));
    }

    #[test]
    fn past_the_bound_the_caller_is_told_to_save_the_whole_document() {
        let mut doc = doc_with(1);
        let mut stored = Stored::of(doc.save(), &doc);
        let mut compacted = false;
        for i in 0..=MAX_APPENDED {
            let mut tx = doc.transaction();
            tx.put(ROOT, "n", i as i64).expect("put");
            tx.commit();
            if stored.current(&doc).is_none() {
                compacted = true;
                break;
            }
        }
        assert!(
            compacted,
            "more than {MAX_APPENDED} appended chunks must compact"
        );
    }

    #[test]
    fn bytes_from_another_history_are_never_used() {
        let doc = doc_with(2);
        let other = doc_with(2);
        let mut stored = Stored::of(other.save(), &other);
        assert_eq!(stored.current(&doc), None);
    }

    #[test]
    fn garbage_does_not_walk() {
        assert_eq!(walk(b"not a chunk"), None);
        assert_eq!(walk(&[]), None);
        let mut bytes = doc_with(1).save();
        bytes.truncate(bytes.len() - 1);
        assert_eq!(walk(&bytes), None);
    }
}
