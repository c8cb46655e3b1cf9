//! Authority over a sheet's document: which parts each kind of node may change. A municipality
//! writes only its own review and its own inquiries (and its users' names); a hospital writes
//! everything but reviews, and in an inquiry only the answer. The hub applies this to every
//! change it receives (`sync_service::replica`) and sets aside a document that breaks it.
//!
//! Pure: it reads the history of a merged document and says yes or why not. It must never
//! write, and never put a value of the sheet into its reason (ids and keys only).

use nsdb_sync::{ChangeHash, HistoryEntry, INQUIRY_ANSWER_KEYS, Sheet};

/// Who sent the changes, as the hub knows the peer from its enrollment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sender<'a> {
    Hospital,
    /// A municipality with its 自治体コード.
    Municipality(&'a str),
}

/// Checks every change of `merged` made after `stored` (the heads of the copy held before;
/// empty when the sheet is new here) against what `sender` may change. Returns the reason
/// for the first change that oversteps, in Japanese, naming the part it touched.
pub fn check(merged: &Sheet, stored: &[ChangeHash], sender: Sender<'_>) -> Result<(), String> {
    for entry in merged.history_since(stored) {
        check_entry(merged, &entry, sender)?;
    }
    Ok(())
}

fn check_entry(merged: &Sheet, entry: &HistoryEntry, sender: Sender<'_>) -> Result<(), String> {
    match sender {
        Sender::Municipality(code) => {
            if entry.touches_sheet() {
                return Err(format!(
                    "自治体（{code}）からの変更が票の項目・患者情報・見出しを変えています（{}）。自治体が変更できるのは自らの審査結果と照会だけです",
                    described(entry)
                ));
            }
            let own = entry.author.map(|a| format!("author.{}.", a.node));
            if entry
                .header
                .iter()
                .any(|h| own.as_deref().is_none_or(|own| !h.starts_with(own)))
            {
                return Err(format!(
                    "自治体（{code}）からの変更が他の利用者の氏名を変えています"
                ));
            }
            if let Some(other) = entry
                .reviews
                .iter()
                .map(|r| r.split('.').next().unwrap_or(r))
                .find(|c| *c != code)
            {
                return Err(format!(
                    "自治体（{code}）からの変更が他の自治体（{other}）の審査結果を変えています"
                ));
            }
            for written in &entry.inquiries {
                let id = written.split('.').next().unwrap_or(written);
                let owner = merged.inquiry(id).map(|i| i.municipality);
                if owner.as_deref() != Some(code) {
                    return Err(format!(
                        "自治体（{code}）からの変更が他の自治体の照会（{id}）を変えています"
                    ));
                }
            }
            Ok(())
        }
        Sender::Hospital => {
            if let Some(review) = entry.reviews.first() {
                let code = review.split('.').next().unwrap_or(review);
                return Err(format!(
                    "医療機関からの変更が自治体（{code}）の審査結果を変えています。審査結果は自治体だけが記録できます"
                ));
            }
            for written in &entry.inquiries {
                let (id, key) = written.split_once('.').unwrap_or((written, ""));
                if !INQUIRY_ANSWER_KEYS.contains(&key) {
                    return Err(format!(
                        "医療機関からの変更が照会（{id}）の回答以外（{}）を変えています",
                        if key.is_empty() {
                            "照会そのもの"
                        } else {
                            key
                        }
                    ));
                }
            }
            Ok(())
        }
    }
}

fn described(entry: &HistoryEntry) -> String {
    let mut parts: Vec<&str> = entry
        .changed
        .iter()
        .chain(entry.header.iter().filter(|h| !h.starts_with("author.")))
        .map(String::as_str)
        .take(5)
        .collect();
    if parts.is_empty() {
        parts.push("見出し");
    }
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    use nsdb_sync::{Author, Decision, Edit, NewInquiry, NewSheet, NodeId, Review, SheetId};

    const HOSPITAL: NodeId = NodeId([1; 16]);
    const CITY: NodeId = NodeId([2; 16]);

    fn edit(node: NodeId) -> Edit<'static> {
        Edit {
            author: Author { node, user: 1 },
            at_ms: 10,
            message: "",
        }
    }

    fn sheet() -> Sheet {
        Sheet::new(
            NewSheet {
                id: SheetId::random(),
                form_id: "rinko-006".into(),
                form_version: "1".into(),
                kokuji: 6,
                eda: 0,
                disease: "パーキンソン病".into(),
                institution: "1399000010".into(),
                doctor: None,
                carried_from: None,
                created_ms: 1,
            },
            edit(HOSPITAL),
        )
    }

    fn ask(sheet: &mut Sheet, municipality: &str) {
        sheet
            .ask(
                NewInquiry {
                    id: format!("q-{municipality}"),
                    municipality: municipality.into(),
                    fields: vec!["q1".into()],
                    question: "確認してください".into(),
                    asked_by: "審査".into(),
                },
                edit(CITY),
            )
            .expect("asked");
    }

    #[test]
    fn a_municipality_may_write_its_review_and_inquiries_but_no_item() {
        let mut s = sheet();
        let before = s.heads();
        s.set_author_name("審査 次郎", "市", edit(CITY));
        s.set_review(
            &Review {
                decision: Some(Decision::Approved),
                ..Review::linked("139999", 5)
            },
            edit(CITY),
        )
        .expect("valid");
        ask(&mut s, "139999");
        assert_eq!(check(&s, &before, Sender::Municipality("139999")), Ok(()));
        // Another municipality's review or inquiry is not its to write.
        assert!(check(&s, &before, Sender::Municipality("131016")).is_err());
        // An item is never a municipality's to change.
        let mid = s.heads();
        s.set_fields(
            &BTreeMap::from([("q1".to_string(), Some("変更".to_string()))]),
            edit(CITY),
        );
        let why = check(&s, &mid, Sender::Municipality("139999")).expect_err("refused");
        assert!(why.contains("q1"), "{why}");
        // A sheet the hub lacks cannot come from a municipality.
        assert!(check(&sheet(), &[], Sender::Municipality("139999")).is_err());
    }

    #[test]
    fn a_hospital_may_answer_an_inquiry_but_never_write_a_review() {
        let mut s = sheet();
        ask(&mut s, "139999");
        let asked = s.heads();
        s.answer("q-139999", "直しました", "医師", edit(HOSPITAL))
            .expect("answered");
        s.set_fields(
            &BTreeMap::from([("q1".to_string(), Some("直した値".to_string()))]),
            edit(HOSPITAL),
        );
        assert_eq!(check(&s, &asked, Sender::Hospital), Ok(()));
        let answered = s.heads();
        s.close_inquiry("q-139999", edit(HOSPITAL)).expect("closes");
        assert!(
            check(&s, &answered, Sender::Hospital).is_err(),
            "closing is the municipality's"
        );
        let closed = s.heads();
        s.set_review(&Review::linked("139999", 5), edit(HOSPITAL))
            .expect("valid");
        let why = check(&s, &closed, Sender::Hospital).expect_err("refused");
        assert!(why.contains("139999"), "{why}");
    }
}
