//! IDパスワード通知書, as the user administration screen and the API hand it out: a new
//! one-time password for the user, printed once into an A4 PDF.

use crate::accounts::policy::Principal;
use crate::{Error, Node};

/// A notice just issued: the user's id and ID (for the file's name) and the PDF. The password
/// is in the PDF only.
pub struct IssuedNotice {
    pub user_id: u64,
    pub login: String,
    pub pdf: Vec<u8>,
}

impl axum::response::IntoResponse for IssuedNotice {
    /// The PDF as a download (`IDパスワード通知書_<ID>.pdf`), never kept by a cache
    /// (`Cache-Control: no-store`).
    fn into_response(self) -> axum::response::Response {
        use axum::http::header;
        (
            [
                (header::CONTENT_TYPE, "application/pdf".to_string()),
                (header::CACHE_CONTROL, "no-store".to_string()),
                (
                    header::CONTENT_DISPOSITION,
                    super::page::file_disposition(
                        "attachment",
                        &format!("IDパスワード通知書_{}.pdf", self.login),
                        &format!("id-notice-{}.pdf", self.user_id),
                    ),
                ),
            ],
            self.pdf,
        )
            .into_response()
    }
}

/// Issues user `uid`'s IDパスワード通知書 for `p` (a 責任者): a new one-time password
/// ([`Node::issue_credentials_notice`], audited `user_notice`) printed with the institution, the
/// kind and the time of issue (JST), all from what the issue returned. Errors: those of `issue_credentials_notice`;
/// [`Error::Invalid`] when the PDF cannot be made (the password is then already replaced:
/// issuing again makes another).
pub async fn issue_notice(node: &Node, p: &Principal, uid: u64) -> Result<IssuedNotice, Error> {
    let issued = node.issue_credentials_notice(p, uid).await?;
    notice_of(node, &issued, uid)
}

/// The IDパスワード通知書 of a one-time password just set (`issued`), the file named by `uid`
/// when the login cannot be used. Errors: [`Error::Invalid`] when the PDF cannot be made.
pub fn notice_of(
    node: &Node,
    issued: &crate::accounts::admin::InitialPassword,
    uid: u64,
) -> Result<IssuedNotice, Error> {
    let at = super::page::jst(node.clock.now_ms(), false);
    let pdf = crate::print::credentials_notice_pdf(&crate::print::CredentialsNotice {
        institution_name: &issued.institution.name,
        institution_code: &issued.institution.code,
        login: &issued.login,
        name: &issued.name,
        kind: issued.kind.label(),
        password: &issued.password,
        issued_at: &at,
    })
    .map_err(|e| Error::Invalid(e.to_string()))?;
    Ok(IssuedNotice {
        user_id: uid,
        login: issued.login.clone(),
        pdf,
    })
}
