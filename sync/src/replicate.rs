//! Moving a sheet's history between copies: what one copy has beyond another's heads, and
//! bringing received changes or whole documents in, checking who made them.
//!
//! A change is accepted only when its layout checks out after merging and, where the caller
//! says so, when its author belongs to the node that sent it. This module must never apply
//! changes it has not checked, and never leave a sheet half-changed when it refuses them.

use automerge::{Automerge, AutomergeError, Change, ChangeHash, ReadDoc};

use crate::error::SheetError;
use crate::ids::{Author, NodeId, SheetId};
use crate::layout::Shape;
use crate::sheet::{Sheet, merge_error};

/// Why received changes were refused.
#[derive(Debug, thiserror::Error)]
pub enum ReplicationError {
    #[error("a change of sheet {id} from the peer is not a readable Automerge change")]
    MalformedChange { id: SheetId },
    #[error(
        "sheet {id}: a change from node {sender} was made by {}, which is not a user of that node; the change was refused",
        author.map_or_else(|| "software outside nsdb".to_owned(), |a| a.to_string())
    )]
    ForeignAuthor {
        id: SheetId,
        sender: NodeId,
        author: Option<Author>,
    },
    #[error("the peer sent sheet {got} under the id {expected}")]
    WrongId { expected: SheetId, got: SheetId },
    #[error(transparent)]
    Sheet(#[from] SheetError),
}

fn author_of(change: &Change) -> Option<Author> {
    Author::from_actor(change.actor_id())
}

impl Sheet {
    /// The id of this sheet.
    pub fn id(&self) -> SheetId {
        self.header.id
    }

    /// The current heads as raw hashes.
    pub fn raw_heads(&self) -> Vec<[u8; 32]> {
        self.doc.get_heads().into_iter().map(|h| h.0).collect()
    }

    /// Whether this copy holds the change `hash`.
    pub fn knows(&self, hash: &[u8; 32]) -> bool {
        self.doc
            .get_change_meta_by_hash(&ChangeHash(*hash))
            .is_some()
    }

    /// Raw changes this copy holds that a copy at `peer_heads` lacks (heads unknown here are
    /// ignored, so the result may repeat changes the peer has; applying them twice is harmless).
    pub fn changes_since(&self, peer_heads: &[[u8; 32]]) -> Vec<Vec<u8>> {
        let known: Vec<ChangeHash> = peer_heads
            .iter()
            .filter(|h| self.knows(h))
            .map(|h| ChangeHash(*h))
            .collect();
        self.doc
            .get_changes(&known)
            .iter()
            .map(|c| c.raw_bytes().to_vec())
            .collect()
    }

    /// Loads a whole sheet received from `sender`; with `only_from`, every change must have been
    /// made by a user of that node.
    pub fn load_received(
        id: SheetId,
        bytes: &[u8],
        only_from: Option<NodeId>,
    ) -> Result<Sheet, ReplicationError> {
        let sheet = Sheet::load(bytes)?;
        if sheet.header.id != id {
            return Err(ReplicationError::WrongId {
                expected: id,
                got: sheet.header.id,
            });
        }
        if let Some(sender) = only_from {
            for meta in sheet.doc.get_changes_meta(&[]) {
                let author = Author::from_actor(&meta.actor);
                if author.map(|a| a.node) != Some(sender) {
                    return Err(ReplicationError::ForeignAuthor { id, sender, author });
                }
            }
        }
        Ok(sheet)
    }

    /// Applies raw changes received from a peer; with `only_from`, every change this copy does
    /// not already hold must have been made by a user of that node. Returns how many were new.
    /// On error nothing changes.
    pub fn apply_received(
        &mut self,
        changes: &[Vec<u8>],
        only_from: Option<NodeId>,
    ) -> Result<usize, ReplicationError> {
        let id = self.header.id;
        let mut fresh = Vec::new();
        for raw in changes {
            let change =
                Change::try_from(&raw[..]).map_err(|_| ReplicationError::MalformedChange { id })?;
            if self.knows(&change.hash().0) {
                continue;
            }
            if let Some(sender) = only_from {
                let author = author_of(&change);
                if author.map(|a| a.node) != Some(sender) {
                    return Err(ReplicationError::ForeignAuthor { id, sender, author });
                }
            }
            fresh.push(change);
        }
        if fresh.is_empty() {
            return Ok(0);
        }
        let count = fresh.len();
        let raw: Vec<Vec<u8>> = fresh.iter().map(|c| c.raw_bytes().to_vec()).collect();
        // In place when the stored bytes can bring the document back on a refusal (a sheet
        // just read from the store); on a copy otherwise.
        let restorable = self
            .stored
            .as_ref()
            .is_some_and(|s| s.heads() == self.doc.get_heads());
        let shape = if restorable {
            match merged_with(&mut self.doc, id, fresh) {
                Ok(shape) => shape,
                Err(e) => {
                    if let Some(stored) = &self.stored {
                        self.doc = match Automerge::load(stored.bytes()) {
                            Ok(doc) => doc,
                            Err(error) => panic!(
                                "nsdb-sync bug: a sheet's own stored bytes do not load: {error}"
                            ),
                        };
                    }
                    return Err(e);
                }
            }
        } else {
            let mut merged: Automerge = self.doc.clone();
            let shape = merged_with(&mut merged, id, fresh)?;
            self.doc = merged;
            shape
        };
        self.header = shape.header;
        self.patient = shape.patient;
        self.items = shape.items;
        let heads = self.doc.get_heads();
        if let Some(stored) = &mut self.stored {
            stored.append(raw.iter().map(Vec::as_slice), heads);
        }
        Ok(count)
    }
}

/// Applies `fresh` to `doc` and reads the layout it has then; on error `doc` may hold part of
/// `fresh`.
fn merged_with(
    doc: &mut Automerge,
    id: SheetId,
    fresh: Vec<Change>,
) -> Result<Shape, ReplicationError> {
    doc.apply_changes(fresh)
        .map_err(|source| merge_error(id, source))?;
    if !doc.get_missing_deps(&[]).is_empty() {
        return Err(SheetError::Merge {
            id,
            source: Box::new(AutomergeError::Fail),
        }
        .into());
    }
    Ok(Shape::read(doc)?)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::sheet::Edit;

    fn author(node: u8, user: u64) -> Author {
        Author {
            node: NodeId([node; 16]),
            user,
        }
    }

    fn edit(author: Author, at_ms: i64) -> Edit<'static> {
        Edit {
            author,
            at_ms,
            message: "",
        }
    }

    fn sheet(by: Author) -> Sheet {
        crate::link::tests::blank_sheet(by)
    }

    fn set(sheet: &mut Sheet, by: Author, field: &str, value: &str) {
        let changes: BTreeMap<String, Option<String>> =
            [(field.to_owned(), Some(value.to_owned()))].into();
        sheet.set_fields(&changes, edit(by, 2));
    }

    #[test]
    fn changes_since_heads_bring_a_copy_up_to_date() {
        let hospital = author(1, 7);
        let mut a = sheet(hospital);
        let mut b = Sheet::load(&a.save()).expect("loads");
        set(&mut a, hospital, "q1", "x");
        let delta = a.changes_since(&b.raw_heads());
        assert_eq!(delta.len(), 1);
        assert_eq!(
            b.apply_received(&delta, Some(hospital.node))
                .expect("applies"),
            1
        );
        assert_eq!(b.fields(), a.fields());
        assert_eq!(
            b.apply_received(&delta, Some(hospital.node))
                .expect("again"),
            0
        );
    }

    #[test]
    fn received_changes_are_stored_appended_and_load_as_the_same_sheet() {
        let hospital = author(1, 7);
        let mut a = sheet(hospital);
        let stored = a.save();
        let mut b = Sheet::load(&stored).expect("loads");
        set(&mut a, hospital, "q1", "x");
        set(&mut a, hospital, "q2", "y");
        b.apply_received(&a.changes_since(&b.raw_heads()), Some(hospital.node))
            .expect("applies");
        let bytes = b.save();
        assert!(
            bytes.starts_with(&stored),
            "the stored bytes are kept, the changes appended"
        );
        let again = Sheet::load(&bytes).expect("appended bytes load");
        assert_eq!(again.heads(), a.heads());
        assert_eq!(again.fields(), a.fields());
    }

    #[test]
    fn a_change_that_breaks_the_layout_is_refused_and_the_stored_sheet_is_kept() {
        let hospital = author(1, 7);
        let mut a = sheet(hospital);
        let mut b = Sheet::load(&a.save()).expect("loads");
        set(&mut a, hospital, "q1", "x");
        let before = (b.heads(), b.fields(), b.save());
        a.doc.set_actor(hospital.to_actor());
        let mut tx = a.doc.transaction();
        automerge::transaction::Transactable::delete(&mut tx, automerge::ROOT, "status")
            .expect("delete");
        tx.commit();
        let delta = a.changes_since(&b.raw_heads());
        assert!(b.apply_received(&delta, Some(hospital.node)).is_err());
        assert_eq!((b.heads(), b.fields(), b.save()), before);
        assert_eq!(b.header().status, "draft");
    }

    #[test]
    fn a_change_by_another_node_is_refused_and_changes_nothing() {
        let hospital = author(1, 7);
        let mut a = sheet(hospital);
        let mut b = Sheet::load(&a.save()).expect("loads");
        set(&mut a, author(2, 9), "q1", "x");
        let before = b.heads();
        let delta = a.changes_since(&b.raw_heads());
        assert!(matches!(
            b.apply_received(&delta, Some(hospital.node)),
            Err(ReplicationError::ForeignAuthor { .. })
        ));
        assert_eq!(b.heads(), before);
        assert!(matches!(
            Sheet::load_received(a.id(), &a.save(), Some(hospital.node)),
            Err(ReplicationError::ForeignAuthor { .. })
        ));
        assert!(b.apply_received(&[vec![1, 2, 3]], None).is_err());
    }
}
