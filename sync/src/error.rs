//! Errors of sheet documents: bytes that are not a sheet, versions this copy does not know,
//! and merges of copies that must not be merged.
//!
//! Messages say what is wrong and what the user or operator can do about it. This module must
//! never carry patient data or field values in a message (they end up in logs).

use automerge::{AutomergeError, ChangeHash};

use crate::ids::{Author, SheetId};

#[derive(Debug, thiserror::Error)]
pub enum SheetError {
    /// The bytes are not a readable Automerge document.
    #[error(
        "the sheet data is damaged or is not an Automerge document; restore the sheet from a backup or fetch it again from another node"
    )]
    Corrupt(#[source] Box<AutomergeError>),

    /// The document is readable but lacks a key every sheet has.
    #[error(
        "the document is not an nsdb sheet: required key `{key}` is missing; check that the right file was given"
    )]
    MissingKey { key: String },

    /// A key of the sheet layout holds the wrong kind of value.
    #[error(
        "the document is not a valid nsdb sheet: `{key}` should be {expected}; the sheet was written by other software or is damaged"
    )]
    WrongType { key: String, expected: &'static str },

    /// The sheet was written with a layout this version of nsdb does not know.
    #[error(
        "the sheet uses layout version {found}, but this version of nsdb reads only version {supported}; update nsdb on this node"
    )]
    UnsupportedSchema { found: i64, supported: i64 },

    /// A version (set of change hashes) that this copy of the sheet does not contain.
    #[error(
        "version {hash} is not in this copy of the sheet; it may not have been synchronised to this node yet"
    )]
    UnknownVersion { hash: ChangeHash },

    /// Two different sheets were given to merge.
    #[error("cannot merge sheet {theirs} into sheet {ours}: they are different sheets")]
    DifferentSheet { ours: SheetId, theirs: SheetId },

    /// Two copies carry the same sheet id but were created separately, so they share no history.
    #[error(
        "cannot merge the two copies of sheet {id}: they were created separately and share no history; keep one of them and re-enter the other's values"
    )]
    UnrelatedHistory { id: SheetId },

    /// The same author edited two copies of the sheet apart from each other, so both copies
    /// hold different changes under the same Automerge actor and sequence number.
    #[error(
        "the two copies of sheet {id} cannot be merged: {} edited both copies separately (for example on a node restored from an old backup); fetch the sheet again from the other node and re-enter the edits made here since",
        author.map_or_else(|| "one editor".to_owned(), |author| author.to_string())
    )]
    DivergedAuthor { id: SheetId, author: Option<Author> },

    /// Automerge refused the other copy's changes.
    #[error(
        "the other copy of sheet {id} could not be merged; nothing was changed, fetch that copy again"
    )]
    Merge {
        id: SheetId,
        #[source]
        source: Box<AutomergeError>,
    },

    /// A review could not be recorded as given (the message says what to correct).
    #[error("審査結果を記録できません: {what}")]
    InvalidReview { what: &'static str },

    /// An inquiry could not be asked, answered or closed as given (the message says why).
    #[error("照会を記録できません: {what}")]
    InvalidInquiry { what: &'static str },
}
