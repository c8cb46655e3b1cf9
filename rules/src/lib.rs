//! nsdb's rules: the form catalogue (what each 臨床調査個人票 and 医療意見書 asks) and the checks
//! of what was entered.
//!
//! This crate is pure: no I/O, no clock, no database, no network. The same code runs on the
//! node's screens, in the hospital-side check tool and at the municipality, so it must never
//! depend on anything a closed hospital network lacks. "Today" and the form texts are inputs.

pub mod catalogue;
pub mod check;
pub mod form;
pub mod value;

pub use catalogue::Catalogue;
pub use check::{Message, Mode, check, normalise_input};
pub use form::{FormDef, FormKind, ItemDef, ItemType, SectionDef};
pub use value::Date;

/// A form file or catalogue that cannot be used, naming the file and, where known, the item.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CatalogueError {
    #[error("{file}: {message}")]
    Syntax { file: String, message: String },
    #[error("{file}{}: {message}", item.as_ref().map(|i| format!(", item {i}")).unwrap_or_default())]
    Invalid {
        file: String,
        item: Option<String>,
        message: String,
    },
}
