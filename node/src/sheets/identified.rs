//! The ministry's exceptional access to an identified sheet (docs/security.md, "The ministry's
//! identified access"). By default the ministry reads no identified sheet on the hub; opening
//! one needs a typed reason (理由), is audited as its own action (`identified_access`, the
//! reason in the entry's detail), raises an alert at once (`monitor::Rule::IdentifiedAccess`)
//! and lasts [`IDENTIFIED_ACCESS_MS`] for that one sheet. The view, its print and its XML
//! export within the grant are audited as always.
//!
//! Must never: grant without a reason, grant more than the one sheet asked for, or keep a grant
//! past its time.

use rusqlite::{Connection, OptionalExtension, params};

use crate::accounts::policy::{Action, Principal, Target, authorize};
use crate::{Error, Node, Result, audit, monitor};

/// How long one grant lasts: **30 minutes**, enough to read and print one sheet while answering
/// the question that justified it; another look later needs another reason.
pub const IDENTIFIED_ACCESS_MS: i64 = 30 * 60_000;

/// The longest reason accepted, in characters: **200**. A reason says why (e.g. 「自治体からの
/// 照会への回答のため（照会番号 …）」), not who: it is not personal data, and short.
pub const REASON_MAX_CHARS: usize = 200;

/// Whether `user` holds a live grant for `sheet` at `now`.
pub(crate) fn granted(c: &Connection, user: u64, sheet: &str, now: i64) -> rusqlite::Result<bool> {
    Ok(c.query_row(
        "SELECT 1 FROM identified_access
         WHERE user_id = ?1 AND sheet_id = ?2 AND granted_at <= ?3 AND until > ?3 LIMIT 1",
        params![user as i64, sheet, now],
        |_| Ok(()),
    )
    .optional()?
    .is_some())
}

/// The reason as stored: trimmed, line breaks and tabs as spaces. Errors (`Invalid`, in
/// Japanese) when it is empty or longer than [`REASON_MAX_CHARS`].
pub fn clean_reason(reason: &str) -> Result<String> {
    let cleaned: String = reason
        .trim()
        .chars()
        .map(|ch| if ch.is_control() { ' ' } else { ch })
        .collect();
    let n = cleaned.chars().count();
    if n == 0 {
        return Err(Error::Invalid(
            "識別情報のある臨個票を開くには、理由を入力してください。".into(),
        ));
    }
    if n > REASON_MAX_CHARS {
        return Err(Error::Invalid(format!(
            "理由は{REASON_MAX_CHARS}文字以内で入力してください（いま{n}文字）。"
        )));
    }
    Ok(cleaned)
}

impl Node {
    /// The ministry's exceptional access: grants `p` sheet `id` for [`IDENTIFIED_ACCESS_MS`]
    /// with `reason`, audited (`identified_access`, detail = the reason) and alerted at once.
    /// Returns the grant's end (unix ms). Errors: `Invalid` for a missing or too long reason,
    /// `SheetNotFound`, `Denied` for anyone but the ministry (audited
    /// `identified_access_denied`).
    pub async fn open_identified(&self, p: &Principal, id: &str, reason: &str) -> Result<i64> {
        let reason = clean_reason(reason)?;
        let now = self.clock.now_ms();
        let until = now + IDENTIFIED_ACCESS_MS;
        let (principal, sid) = (p.clone(), id.to_string());
        self.store
            .write(move |c| {
                let tx = c.transaction()?;
                let Some(row) = super::load_row(&tx, &sid)? else {
                    return Ok(Err(Error::SheetNotFound(sid)));
                };
                let target = Target::Sheet {
                    institution: &row.institution,
                };
                let uid = principal.user_id;
                if let Err(denied) = authorize(&principal, Action::OpenIdentified, target) {
                    audit::record(&tx, now, uid, "identified_access_denied", Some(&sid), None)?;
                    tx.commit()?;
                    return Ok(Err(denied.into()));
                }
                tx.execute(
                    "INSERT INTO identified_access (user_id, sheet_id, granted_at, until)
                     VALUES (?1, ?2, ?3, ?4)",
                    params![uid as i64, sid, now, until],
                )?;
                audit::record(
                    &tx,
                    now,
                    uid,
                    "identified_access",
                    Some(&sid),
                    Some(&reason),
                )?;
                monitor::raise_now(
                    &tx,
                    monitor::Rule::IdentifiedAccess,
                    &monitor::Subject::User(uid),
                    (now, until),
                    now,
                )?;
                tx.commit()?;
                Ok::<_, Error>(Ok(until))
            })
            .await??;
        self.refresh_open_alerts().await?;
        tracing::warn!(target: "nsdb::monitor", user = p.user_id, "identified sheet opened with a reason");
        Ok(until)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reason_is_required_short_and_kept_on_one_line() {
        assert!(clean_reason("  \n ").is_err());
        assert!(clean_reason(&"あ".repeat(REASON_MAX_CHARS + 1)).is_err());
        assert_eq!(
            clean_reason(" 照会への回答\nのため ").unwrap(),
            "照会への回答 のため"
        );
        assert!(clean_reason(&"あ".repeat(REASON_MAX_CHARS)).is_ok());
    }
}
