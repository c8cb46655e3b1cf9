//! nsdb-sync: each yearly disease-form instance (a "sheet") of the 難病 database as an
//! Automerge CRDT document, so copies on different nodes can be edited apart and merged.
//!
//! This crate owns the document layout of a sheet, attributes every change to the node and
//! user who made it, and answers questions about history (who changed what, when, values as
//! of a version, differences between versions, concurrent values after a merge).
//!
//! It must never do I/O (callers load and store the bytes), never read the clock (callers
//! pass unix-millisecond timestamps in [`Edit`]), and never depend on other nsdb crates.

mod compare;
mod error;
mod ids;
mod layout;
mod sheet;

pub use automerge::ChangeHash;
pub use compare::{FieldChange, compare};
pub use error::SheetError;
pub use ids::{Author, NodeId, ParseNodeIdError, ParseSheetIdError, SheetId};
pub use layout::{HEADER_KEYS, PATIENT_PREFIX, SCHEMA_VERSION};
pub use sheet::{Conflict, ConflictValue, Edit, HistoryEntry, NewSheet, Sheet, SheetHeader};
