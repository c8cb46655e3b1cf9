//! nsdb's rules: the form catalogue (what each 臨床調査個人票 and 医療意見書 asks), the checks of
//! what was entered, auto-calculation (自動計算) and machine judgment (機械判定).
//!
//! Entry points for the screens and tools:
//! - `Catalogue::builtin()` or `RulePack::verify(bytes, ministry_key)` loads forms; every CEL
//!   expression is compiled then, and a broken one is an error naming file, item and column.
//!   `Catalogue::info()` gives the version to show and to write into files.
//! - `evaluate(form, values, today) -> Evaluation { derived, messages, judgment }`: the チェック,
//!   自動入力 and 一次判定表示 buttons in one call. `derived` maps each calculated item to its
//!   value; `judgment` holds the derived category and severity and the messages that compare them
//!   with the doctor's choice (never blocking).
//! - `FormDef::calculated_items()` (or `ItemDef::calc.is_some()`) says which items get an 自動入力
//!   button.
//! - `check(form, values, Mode, today)` alone is the 一時保存/登録 check.
//!
//! This crate is pure: no I/O, no clock, no database, no network. The same code runs on the
//! node's screens, in the hospital-side check tool and at the municipality, so it must never
//! depend on anything a closed hospital network lacks. "Today" and the form texts are inputs.

pub mod calc;
pub mod carry;
pub mod cases;
pub mod catalogue;
pub mod check;
pub mod diseases;
pub mod evaluate;
pub mod expr;
pub mod form;
pub mod lint;
pub mod pack;
pub mod value;
pub mod xml;

pub use catalogue::Catalogue;
pub use check::{Message, Mode, check, normalise_input};
pub use evaluate::{Evaluation, Judgment, JudgmentResult, Outcome, evaluate, judgment};
pub use form::{FormDef, FormKind, FormLevel, ItemDef, ItemType, SectionDef};
pub use pack::{PackError, PackInfo, RulePack};
pub use value::Date;

/// A form file or catalogue that cannot be used, naming the file and, where known, the item.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CatalogueError {
    #[error("{file}: {message}")]
    Syntax { file: String, message: String },
    #[error("{file}{}: {message}", item.as_ref().map(|i| format!("（{i}）")).unwrap_or_default())]
    Invalid {
        file: String,
        item: Option<String>,
        message: String,
    },
}
