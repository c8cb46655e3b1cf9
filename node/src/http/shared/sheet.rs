//! Reading a sheet for a page or the API when its stored document may be damaged: the copy is
//! fetched again from the hub first (`sync_service::refetch`), so the user sees the sheet
//! instead of "try again later". This module must never replace a document itself.

use nsdb_rules::check::Mode;

use crate::accounts::policy::Principal;
use crate::sheets::SheetDetail;
use crate::{Error, Node};

/// Sheet `id` as `p` may see it (`Node::get_sheet_checked` with `mode`). When its stored
/// document cannot be read, the hub's copy replaces it and the sheet is read again; when that
/// fails, `Error::DamagedSheet` says why in words for the user.
pub async fn sheet_detail(
    node: &Node,
    p: &Principal,
    id: &str,
    mode: Mode,
) -> Result<SheetDetail, Error> {
    match node.get_sheet_checked(p, id, mode).await {
        Err(Error::Document { id: damaged, .. }) => {
            match crate::sync_service::refetch(node, &damaged).await {
                Ok(true) => node.get_sheet_checked(p, id, mode).await,
                Ok(false) => Err(Error::DamagedSheet(
                    "この票の保存データが壊れていて読めません。管理者は nsdb doctor で確認してください。"
                        .into(),
                )),
                Err(e) => Err(Error::DamagedSheet(e.to_string())),
            }
        }
        other => other,
    }
}
