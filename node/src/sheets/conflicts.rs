//! Conflicts: items of a sheet that hold two or more values because they were changed on two
//! nodes while apart. Every value is kept until a doctor picks one; the pick is itself a
//! recorded change (message "競合解消") and is audited.
//!
//! Domain functions only: authorise through `policy`, read or write the sheet, return plain
//! data. Nothing here renders, and nothing here logs a value.

use std::collections::BTreeMap;

use nsdb_sync::{Edit, Sheet};
use rusqlite::{Connection, OptionalExtension};
use serde::Serialize;

use crate::accounts::policy::{Action, Role, Target, authorize};
use crate::sheets::store_sheet;
use crate::{Error, Node, Result, accounts::policy::Principal, audit};

/// One of the values an item holds, and where it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConflictChoice {
    pub value: String,
    /// Who wrote it: a user's name when known here, else the user id.
    pub who: String,
    /// Where: this node's institution, or the other node's id.
    pub place: String,
    /// When the value was written (unix ms), when the history says.
    pub at_ms: Option<i64>,
}

/// An item with concurrent values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConflictLine {
    pub field: String,
    pub values: Vec<ConflictChoice>,
}

fn load(c: &Connection, id: &str) -> Result<Option<(String, Sheet, String)>> {
    let row: Option<(Vec<u8>, String, String)> = c
        .query_row(
            "SELECT doc, institution, registration FROM sheets WHERE id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    match row {
        None => Ok(None),
        Some((doc, institution, registration)) => {
            let sheet = Sheet::load(&doc).map_err(|e| Error::Document {
                id: id.to_string(),
                reason: e.to_string(),
            })?;
            Ok(Some((institution, sheet, registration)))
        }
    }
}

impl Node {
    /// The items of a sheet that hold concurrent values, with who wrote each value, where and
    /// when.
    pub async fn sheet_conflicts(&self, p: &Principal, id: &str) -> Result<Vec<ConflictLine>> {
        let sid = id.to_string();
        let found = self.store.read(move |c| load(c, &sid)).await?;
        let Some((institution, sheet, _)) = found else {
            return Err(Error::SheetNotFound(id.to_string()));
        };
        authorize(
            p,
            Action::ViewSheet,
            Target::Sheet {
                institution: &institution,
            },
        )?;
        let conflicts = sheet.conflicts();
        if conflicts.is_empty() {
            return Ok(Vec::new());
        }
        let history = sheet.history();
        let own = self.node_id;
        let local_users: Vec<u64> = conflicts
            .iter()
            .flat_map(|c| c.values.iter())
            .filter_map(|v| v.author.filter(|a| a.node == own).map(|a| a.user))
            .collect();
        let names: BTreeMap<u64, String> = self
            .store
            .read(move |c| {
                let mut st = c.prepare("SELECT name FROM users WHERE id = ?1")?;
                let mut names = BTreeMap::new();
                for u in local_users {
                    if let Some(n) = st
                        .query_row([u as i64], |r| r.get::<_, String>(0))
                        .optional()?
                    {
                        names.insert(u, n);
                    }
                }
                Ok::<_, Error>(names)
            })
            .await?;
        let here = self.config.institution.name.clone();
        Ok(conflicts
            .into_iter()
            .map(|c| ConflictLine {
                values: c
                    .values
                    .iter()
                    .map(|v| ConflictChoice {
                        value: v.value.clone(),
                        // Names from the document itself (written by whoever saved, on
                        // whichever node), else this node's users.
                        who: v
                            .author
                            .map(|a| super::author_label(&sheet, a, own, &here, &names).0)
                            .unwrap_or_else(|| "不明".into()),
                        place: v
                            .author
                            .map(|a| super::author_label(&sheet, a, own, &here, &names).1)
                            .unwrap_or_else(|| "不明".into()),
                        at_ms: history
                            .iter()
                            .rev()
                            .find(|h| h.author == v.author && h.changed.contains(&c.field))
                            .map(|h| h.at_ms),
                    })
                    .collect(),
                field: c.field,
            })
            .collect())
    }

    /// A doctor picks one of the values of a conflicting item; recorded as a change of the
    /// sheet by that doctor and audited.
    pub async fn resolve_conflict(
        &self,
        p: &Principal,
        id: &str,
        field: &str,
        value: &str,
    ) -> Result<()> {
        if p.role() != Role::Doctor {
            return Err(crate::accounts::policy::Denied.into());
        }
        let now = self.clock.now_ms();
        let author = nsdb_sync::Author {
            node: self.node_id,
            user: p.user_id,
        };
        let place = self.institution_of(p).await?.name;
        let (principal, sid, field, value) = (
            p.clone(),
            id.to_string(),
            field.to_string(),
            value.to_string(),
        );
        self.store
            .write(move |c| {
                let tx = c.transaction()?;
                let (institution, mut sheet, registration) =
                    load(&tx, &sid)?.ok_or_else(|| Error::SheetNotFound(sid.clone()))?;
                authorize(
                    &principal,
                    Action::EditSheet,
                    Target::Sheet {
                        institution: &institution,
                    },
                )?;
                let offered = sheet
                    .conflicts()
                    .into_iter()
                    .find(|c| c.field == field)
                    .is_some_and(|c| c.values.iter().any(|v| v.value == value));
                if !offered {
                    return Err(Error::Invalid(
                        "選んだ値はこの項目の競合する値ではありません。画面を開き直してください。"
                            .into(),
                    ));
                }
                let changes = BTreeMap::from([(field.clone(), Some(value))]);
                let edit = Edit {
                    author,
                    at_ms: now,
                    message: "競合解消",
                };
                sheet.set_author_name(&principal.name, &place, edit);
                sheet.set_fields(&changes, edit);
                store_sheet(&tx, &mut sheet, &registration, now)?;
                audit::append(
                    &tx,
                    audit::Entry {
                        at_ms: now,
                        user: Some(principal.user_id),
                        action: "sheet_conflict_resolve",
                        target: Some(&sid),
                        detail: Some(&field),
                    },
                )?;
                tx.commit()?;
                Ok(())
            })
            .await
    }
}
