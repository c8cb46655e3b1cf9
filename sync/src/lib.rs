//! nsdb-sync: each yearly disease-form instance (a "sheet") of the 難病 database as an
//! Automerge CRDT document, and the replication of those documents between nodes and the hub.
//!
//! The document side owns the layout of a sheet, attributes every change to the node and user
//! who made it, and answers questions about history (who changed what, when, values as of a
//! version, differences between versions, concurrent values after a merge). The replication
//! side (`tls`, `wire`, `summary`, `session`, `link`) moves documents over QUIC with mutual TLS
//! pinned to ed25519 keys; storage and scope stay with the caller behind [`Replica`].
//!
//! The document modules never do I/O and never read the clock (callers pass unix-millisecond
//! timestamps in [`Edit`]). Nothing here depends on other nsdb crates.

mod compare;
mod error;
mod ids;
mod inventory;
mod layout;
pub mod link;
#[cfg(test)]
mod proptests;
mod replicate;
mod review;
pub mod session;
mod sheet;
mod stored;
pub mod summary;
pub mod tls;
pub mod wire;

pub use automerge::ChangeHash;
pub use compare::{FieldChange, compare};
pub use error::SheetError;
pub use ids::{Author, NodeId, ParseNodeIdError, ParseSheetIdError, SheetId};
pub use inventory::Inventory;
pub use layout::{HEADER_KEYS, PATIENT_PREFIX, SCHEMA_VERSION};
pub use link::{Answerer, Directory, HubEndpoint, LinkError, NoAnswers, NodeLink};
pub use replicate::ReplicationError;
pub use review::{
    Decision, INQUIRY_ANSWER_KEYS, INQUIRY_PREFIX, IncomeCategory, IncomeSpecial, Inquiry,
    InquiryState, NewInquiry, REVIEW_PREFIX, ResearchConsent, Review,
};
pub use session::{
    Peer, PeerRole, Replica, ReplicaError, SessionError, SessionStats, SetAside, Settlement,
};
pub use sheet::{
    CLEARED, Conflict, ConflictValue, Edit, HistoryEntry, LogEntry, NewSheet, Sheet, SheetHeader,
};
pub use tls::{KeyDirectory, LocalKey, PublicKey};
