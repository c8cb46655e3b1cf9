//! The request helpers every HTTP module shares: who is asking (`session`), the page context,
//! error pages and posted forms with CSRF (`page`), and the API's JSON errors (`json`).
//!
//! Capability modules (`ui::*`, `api::*`) import these; these never import a capability module.

pub mod json;
pub mod page;
pub mod session;
