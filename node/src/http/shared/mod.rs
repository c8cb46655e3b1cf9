//! The request helpers every HTTP module shares: who is asking (`session`), the page context,
//! error pages and posted forms with CSRF (`page`), the API's JSON errors (`json`), uploaded
//! files (`upload`), the client's address (`client`), IDパスワード通知書 (`credentials`), the per-address limit on sign-in attempts
//! (`sign_in_limit`), 再認証 before
//! sensitive actions (`reauth`) and reading a sheet whose stored copy may be damaged (`sheet`).
//!
//! Capability modules (`ui::*`, `api::*`) import these; these never import a capability module.

pub mod client;
pub mod credentials;
pub mod json;
pub mod page;
pub mod reauth;
pub mod session;
pub mod sheet;
pub mod sign_in_limit;
pub mod upload;
