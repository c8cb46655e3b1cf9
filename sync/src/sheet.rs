//! A sheet: one yearly instance of a disease form as an Automerge document, with attributed
//! edits, history, values as of a version, differences between versions, merge of copies and
//! the concurrent values a merge leaves behind.
//!
//! Every change is made under the editor's [`Author`] as Automerge actor, carries the caller's
//! message, and carries the caller's timestamp in unix **milliseconds** in the change's `time`
//! field (Automerge documents that field as seconds; it is advisory and only this crate reads
//! it, so it holds milliseconds here to keep them exact).
//!
//! This module must never read the clock, never do I/O, never make a change that alters no
//! value, and never accept a document (loaded or merged in) whose layout it has not checked.

use std::collections::BTreeMap;
use std::fmt;

use automerge::transaction::{CommitOptions, Transactable, Transaction};
use automerge::{
    Automerge, AutomergeError, ChangeHash, ObjId, ObjType, Patch, PatchAction, PatchLog, Prop,
    ROOT, ReadDoc, ScalarValue, ScalarValueRef, Value, ValueRef,
};
use serde::{Deserialize, Serialize};

use crate::compare::{FieldChange, compare};
use crate::error::SheetError;
use crate::ids::{Author, SheetId};
use crate::layout::{Block, SCHEMA_VERSION, Shape, key};
use crate::stored::Stored;

/// Status of a newly created sheet.
const DRAFT: &str = "draft";

/// One edit: who, when (unix milliseconds, supplied by the caller) and an optional message
/// (for example "一時保存"); an empty message means none.
#[derive(Debug, Clone, Copy)]
pub struct Edit<'a> {
    pub author: Author,
    pub at_ms: i64,
    pub message: &'a str,
}

impl Edit<'_> {
    fn commit_options(&self) -> CommitOptions {
        let options = CommitOptions::default().with_time(self.at_ms);
        if self.message.is_empty() {
            options
        } else {
            options.with_message(self.message)
        }
    }
}

/// What a new sheet is: the form, the disease, the owning hospital and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSheet {
    pub id: SheetId,
    pub form_id: String,
    pub form_version: String,
    /// 告示番号
    pub kokuji: u16,
    /// 枝番
    pub eda: u16,
    pub disease: String,
    /// 医療機関コード of the owning hospital.
    pub institution: String,
    pub doctor: Option<u64>,
    pub carried_from: Option<SheetId>,
    pub created_ms: i64,
}

/// The header of a sheet: everything except the item values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SheetHeader {
    pub id: SheetId,
    pub form_id: String,
    pub form_version: String,
    /// 告示番号
    pub kokuji: u16,
    /// 枝番
    pub eda: u16,
    pub disease: String,
    /// 医療機関コード of the owning hospital.
    pub institution: String,
    pub doctor: Option<u64>,
    pub status: String,
    pub access_key: Option<String>,
    pub carried_from: Option<SheetId>,
    pub created_ms: i64,
}

/// One change in a sheet's log ([`Sheet::log`]): who, when and with what message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    pub hash: ChangeHash,
    /// `None` when the change was not made through nsdb (its actor is not an [`Author`]).
    pub author: Option<Author>,
    /// Unix milliseconds, as supplied by the editor's node.
    pub at_ms: i64,
    /// Empty when the edit had no message.
    pub message: String,
}

/// One change in a sheet's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HistoryEntry {
    pub hash: ChangeHash,
    /// `None` when the change was not made through nsdb (its actor is not an [`Author`]).
    pub author: Option<Author>,
    /// Unix milliseconds, as supplied by the editor's node.
    pub at_ms: i64,
    /// Empty when the edit had no message.
    pub message: String,
    /// Field ids whose values this change set or cleared (`patient.*` included), sorted.
    pub changed: Vec<String>,
    /// Header keys this change set or cleared, named as in [`crate::HEADER_KEYS`], sorted.
    /// Root keys that name authors (`author.<node>.<user>`, see [`Sheet::set_author_name`])
    /// are listed here too.
    pub header: Vec<String>,
    /// Reviews this change wrote, as `<自治体コード>.<key>` (`<自治体コード>` alone when the
    /// review's map itself was replaced or removed), sorted.
    pub reviews: Vec<String>,
    /// Inquiries this change wrote, as `<inquiry id>.<key>` (`<inquiry id>` alone when the
    /// inquiry's map itself was replaced or removed), sorted.
    pub inquiries: Vec<String>,
    /// The version the change was made on (its dependencies): what it changed is the
    /// difference from this version to `hash`, even when another change was made beside it.
    pub parents: Vec<ChangeHash>,
}

impl HistoryEntry {
    /// Whether this change wrote any item, patient value or header key (author names aside):
    /// anything beyond reviews and inquiries.
    pub fn touches_sheet(&self) -> bool {
        !self.changed.is_empty() || self.header.iter().any(|key| !key.starts_with("author."))
    }
}

/// An item that holds concurrent values after a merge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Conflict {
    pub field: String,
    /// Every concurrent value. The last one is the value [`Sheet::field`] currently shows
    /// (Automerge's deterministic winner); setting the field resolves the conflict.
    pub values: Vec<ConflictValue>,
}

/// One of the concurrent values of an item and who wrote it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConflictValue {
    pub value: String,
    /// `None` when the value was not written through nsdb.
    pub author: Option<Author>,
}

/// A sheet document.
#[derive(Clone)]
pub struct Sheet {
    pub(crate) doc: Automerge,
    /// Checked when the document is made, loaded or merged, kept current by the setters.
    pub(crate) header: SheetHeader,
    pub(crate) patient: ObjId,
    pub(crate) items: ObjId,
    /// The bytes the document was loaded from or last saved to, when known.
    pub(crate) stored: Option<Stored>,
}

impl fmt::Debug for Sheet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sheet")
            .field("id", &self.header.id)
            .field("heads", &self.doc.get_heads())
            .finish_non_exhaustive()
    }
}

impl Sheet {
    /// A new sheet with status "draft", made as a single change by `edit`.
    pub fn new(header: NewSheet, edit: Edit<'_>) -> Sheet {
        let mut doc = Automerge::new();
        doc.set_actor(edit.author.to_actor());
        let mut tx = doc.transaction();
        let objects = write_new(&mut tx, &header);
        let (patient, items) = must(objects);
        tx.commit_with(edit.commit_options());
        Sheet {
            doc,
            header: SheetHeader {
                id: header.id,
                form_id: header.form_id,
                form_version: header.form_version,
                kokuji: header.kokuji,
                eda: header.eda,
                disease: header.disease,
                institution: header.institution,
                doctor: header.doctor,
                status: DRAFT.to_owned(),
                access_key: None,
                carried_from: header.carried_from,
                created_ms: header.created_ms,
            },
            patient,
            items,
            stored: None,
        }
    }

    /// Reads a sheet from saved bytes, checking the whole layout. The sheet keeps the bytes:
    /// [`Sheet::save`] returns them as they are while the document is unchanged.
    pub fn load(bytes: &[u8]) -> Result<Sheet, SheetError> {
        let doc = Automerge::load(bytes).map_err(|error| SheetError::Corrupt(Box::new(error)))?;
        let shape = Shape::read(&doc)?;
        Ok(Sheet {
            stored: Some(Stored::of(bytes.to_vec(), &doc)),
            doc,
            header: shape.header,
            patient: shape.patient,
            items: shape.items,
        })
    }

    /// The whole document, for storage or transfer: the bytes it was loaded from while it is
    /// unchanged, those bytes with the changes made since appended while they are few
    /// (`stored::MAX_APPENDED`), else the document saved compactly again. Every form loads
    /// with [`Sheet::load`] as the same document.
    pub fn save(&mut self) -> Vec<u8> {
        if let Some(bytes) = self.stored.as_mut().and_then(|s| s.current(&self.doc)) {
            return bytes;
        }
        let bytes = self.doc.save();
        self.stored = Some(Stored::of(bytes.clone(), &self.doc));
        bytes
    }

    /// Everything about the sheet except its item values.
    pub fn header(&self) -> SheetHeader {
        self.header.clone()
    }

    /// The current value of a field (`patient.*` ids included), `None` when it has none.
    pub fn field(&self, id: &str) -> Option<String> {
        let (block, key) = Block::of_field(id);
        self.current(block, key)
    }

    /// All current values, `patient.*` ones included.
    pub fn fields(&self) -> BTreeMap<String, String> {
        self.read_fields(None)
    }

    /// Applies `changes` (`None` clears the item, written as [`CLEARED`]) as one change by `edit`.
    ///
    /// Only items whose value really changes are written; an item with concurrent values
    /// counts as changing, so setting it (even to the value shown) resolves the conflict.
    /// Returns the ids that changed, sorted; makes no change when nothing changed.
    pub fn set_fields(
        &mut self,
        changes: &BTreeMap<String, Option<String>>,
        edit: Edit<'_>,
    ) -> Vec<String> {
        let writes: Vec<(&String, Block, &str, Option<&str>)> = changes
            .iter()
            .filter_map(|(field, value)| {
                let (block, key) = Block::of_field(field);
                let value = value.as_deref().filter(|v| *v != CLEARED);
                let unchanged =
                    self.current(block, key).as_deref() == value && !self.conflicted(block, key);
                (!unchanged).then_some((field, block, key, value))
            })
            .collect();
        if writes.is_empty() {
            return Vec::new();
        }
        let (patient, items) = (self.patient.clone(), self.items.clone());
        self.write(edit, |tx| {
            for (_, block, key, value) in &writes {
                let obj = match block {
                    Block::Patient => &patient,
                    Block::Items => &items,
                };
                tx.put(obj, *key, value.unwrap_or(CLEARED))?;
            }
            Ok(())
        });
        writes
            .into_iter()
            .map(|(field, ..)| field.clone())
            .collect()
    }

    /// Applies what a user changed since the version `base` they were shown (the heads the
    /// page or the API answer was made from); `None` in `changes` clears the item.
    ///
    /// Only items whose value in `changes` differs from their value at `base` are written, as
    /// one change made on top of `base`, so what others saved since is kept: an item nobody
    /// else changed takes the new value, and an item both changed holds both values (a
    /// [`Conflict`]) until someone sets it. The author's own later changes count as seen, so a
    /// user's second tab never conflicts with the first. Returns the ids written, sorted.
    ///
    /// Errors: [`SheetError::UnknownVersion`] when `base` is not a version of this sheet.
    pub fn set_fields_since(
        &mut self,
        base: &[ChangeHash],
        changes: &BTreeMap<String, Option<String>>,
        edit: Edit<'_>,
    ) -> Result<Vec<String>, SheetError> {
        self.check_known(base)?;
        let before = self.read_fields(Some(base));
        let edited: BTreeMap<String, Option<String>> = changes
            .iter()
            .filter(|(field, value)| before.get(*field) != value.as_ref())
            .map(|(field, value)| (field.clone(), value.clone()))
            .collect();
        let mut sorted = base.to_vec();
        sorted.sort_unstable();
        if sorted == self.doc.get_heads() {
            return Ok(self.set_fields(&edited, edit));
        }
        let writes: Vec<(&String, Block, &str, Option<&str>)> = edited
            .iter()
            .filter_map(|(field, value)| {
                let (block, key) = Block::of_field(field);
                let value = value.as_deref().filter(|v| *v != CLEARED);
                let unchanged =
                    self.current(block, key).as_deref() == value && !self.conflicted(block, key);
                (!unchanged).then_some((field, block, key, value))
            })
            .collect();
        if writes.is_empty() {
            return Ok(Vec::new());
        }
        // The author's own changes since `base` are part of what the change builds on.
        let actor = edit.author.to_actor();
        let own_last = self
            .doc
            .get_changes_meta(base)
            .into_iter()
            .rev()
            .find(|meta| *meta.actor == actor)
            .map(|meta| meta.hash);
        let at: Vec<ChangeHash> = match own_last {
            None => base.to_vec(),
            Some(last) => {
                let not_before_last: Vec<ChangeHash> = self
                    .doc
                    .get_changes_meta(&[last])
                    .into_iter()
                    .map(|meta| meta.hash)
                    .collect();
                std::iter::once(last)
                    .chain(
                        base.iter()
                            .filter(|hash| not_before_last.contains(hash))
                            .copied(),
                    )
                    .collect()
            }
        };
        let (patient, items) = (self.patient.clone(), self.items.clone());
        self.doc.set_actor(actor);
        let mut tx = match self.doc.transaction_at(PatchLog::null(), &at) {
            Ok(tx) => tx,
            Err(error) => panic!("nsdb-sync bug: a sheet's own patch log was refused: {error}"),
        };
        for (_, block, key, value) in &writes {
            let obj = match block {
                Block::Patient => &patient,
                Block::Items => &items,
            };
            must(tx.put(obj, *key, value.unwrap_or(CLEARED)));
        }
        tx.commit_with(edit.commit_options());
        Ok(writes
            .into_iter()
            .map(|(field, ..)| field.clone())
            .collect())
    }

    /// The name (and place) an author gave when they wrote this sheet, on whichever node, from
    /// the document itself: `(name, place)`, `None` for an author who never named themselves.
    pub fn author_name(&self, author: &Author) -> Option<(String, Option<String>)> {
        let read = |key: String| match self.doc.get(ROOT, key.as_str()) {
            Ok(Some((value, _))) => value.into_string().ok(),
            _ => None,
        };
        let name = read(author_key(author))?;
        Some((name, read(place_key(author))))
    }

    /// Records who `edit.author` is (their name and their institution) in the document, so
    /// that every node that holds the sheet can show them by name. Writes only what is not
    /// recorded yet; returns whether it wrote.
    pub fn set_author_name(&mut self, name: &str, place: &str, edit: Edit<'_>) -> bool {
        let known = self.author_name(&edit.author);
        let same = known
            .as_ref()
            .is_some_and(|(n, p)| n == name && p.as_deref() == Some(place));
        if same || name.is_empty() {
            return false;
        }
        let (name_key, place_key) = (author_key(&edit.author), place_key(&edit.author));
        self.write(edit, |tx| {
            tx.put(ROOT, name_key.as_str(), name)?;
            tx.put(ROOT, place_key.as_str(), place)
        });
        true
    }

    /// When the sheet was first linked (resolved by its access key at the hub for a
    /// municipality or another hospital), unix ms; `None` until then.
    pub fn linked_ms(&self) -> Option<i64> {
        self.doc
            .get_all(ROOT, "linked_ms")
            .ok()?
            .into_iter()
            .filter_map(|(value, _)| value.as_i64())
            .min()
    }

    /// Records the first link of the sheet at `edit.at_ms`; a later link changes nothing.
    /// Returns whether it wrote.
    pub fn set_linked(&mut self, edit: Edit<'_>) -> bool {
        if self.linked_ms().is_some() {
            return false;
        }
        self.write(edit, |tx| tx.put(ROOT, "linked_ms", edit.at_ms));
        true
    }

    /// Sets the status; returns whether it changed (no change is made otherwise).
    pub fn set_status(&mut self, status: &str, edit: Edit<'_>) -> bool {
        if self.header.status == status && !self.root_conflicted(key::STATUS) {
            return false;
        }
        self.write(edit, |tx| tx.put(ROOT, key::STATUS, status));
        self.header.status = status.to_owned();
        true
    }

    /// Sets the access key; returns whether it changed (no change is made otherwise).
    pub fn set_access_key(&mut self, access_key: &str, edit: Edit<'_>) -> bool {
        if self.header.access_key.as_deref() == Some(access_key)
            && !self.root_conflicted(key::ACCESS_KEY)
        {
            return false;
        }
        self.write(edit, |tx| tx.put(ROOT, key::ACCESS_KEY, access_key));
        self.header.access_key = Some(access_key.to_owned());
        true
    }

    /// Records that this sheet continues sheet `from` (更新登録 of a draft started as 新規);
    /// returns whether it changed (no change is made otherwise).
    pub fn set_carried_from(&mut self, from: SheetId, edit: Edit<'_>) -> bool {
        if self.header.carried_from == Some(from) && !self.root_conflicted(key::CARRIED_FROM) {
            return false;
        }
        self.write(edit, |tx| tx.put(ROOT, key::CARRIED_FROM, from.to_string()));
        self.header.carried_from = Some(from);
        true
    }

    /// Assigns (or with `None` unassigns) the doctor; returns whether it changed.
    pub fn set_doctor(&mut self, doctor: Option<u64>, edit: Edit<'_>) -> bool {
        if self.header.doctor == doctor && !self.root_conflicted(key::DOCTOR) {
            return false;
        }
        self.write(edit, |tx| match doctor {
            Some(user) => tx.put(ROOT, key::DOCTOR, ScalarValue::Uint(user)),
            None => tx.delete(ROOT, key::DOCTOR),
        });
        self.header.doctor = doctor;
        true
    }

    /// The current version of the sheet.
    pub fn heads(&self) -> Vec<ChangeHash> {
        self.doc.get_heads()
    }

    /// Who made each change, when and with what message, oldest first (causal order), without
    /// what each wrote: far cheaper than [`Sheet::history`], which compares versions.
    pub fn log(&self) -> Vec<LogEntry> {
        self.doc
            .get_changes_meta(&[])
            .into_iter()
            .map(|meta| LogEntry {
                hash: meta.hash,
                author: Author::from_actor(&meta.actor),
                at_ms: meta.timestamp,
                message: meta.message.map(|m| m.into_owned()).unwrap_or_default(),
            })
            .collect()
    }

    /// Every change, oldest first (causal order: a change comes after everything it saw).
    pub fn history(&self) -> Vec<HistoryEntry> {
        self.history_since(&[])
    }

    /// The changes made after the version `heads` (those `heads` does not include), oldest
    /// first; hashes in `heads` unknown here are ignored. Used to check what a received copy
    /// adds to the stored one.
    pub fn history_since(&self, heads: &[ChangeHash]) -> Vec<HistoryEntry> {
        let known: Vec<ChangeHash> = heads
            .iter()
            .filter(|hash| self.doc.get_change_meta_by_hash(hash).is_some())
            .copied()
            .collect();
        self.doc
            .get_changes_meta(&known)
            .into_iter()
            .map(|meta| {
                let touched = touched(&self.doc.diff(&meta.deps, &[meta.hash]));
                HistoryEntry {
                    hash: meta.hash,
                    author: Author::from_actor(&meta.actor),
                    at_ms: meta.timestamp,
                    message: meta.message.map(|m| m.into_owned()).unwrap_or_default(),
                    changed: touched.fields,
                    header: touched.header,
                    reviews: touched.reviews,
                    inquiries: touched.inquiries,
                    parents: meta.deps.clone(),
                }
            })
            .collect()
    }

    /// All values as of the version `heads` (empty heads: before the sheet existed).
    pub fn fields_at(&self, heads: &[ChangeHash]) -> Result<BTreeMap<String, String>, SheetError> {
        self.check_known(heads)?;
        Ok(self.read_fields(Some(heads)))
    }

    /// Item-level differences from version `from` to version `to`, sorted by field id.
    pub fn diff(
        &self,
        from: &[ChangeHash],
        to: &[ChangeHash],
    ) -> Result<Vec<FieldChange>, SheetError> {
        Ok(compare(&self.fields_at(from)?, &self.fields_at(to)?))
    }

    /// Brings in every change of `other` (another copy of the same sheet). On error nothing
    /// changes.
    ///
    /// Each author's changes to a sheet must form one line: if the same user on the same node
    /// edits two copies that do not include each other's changes (two in-memory copies edited
    /// side by side, or a node restored from an old backup), the copies can never be merged and
    /// this returns [`SheetError::DivergedAuthor`]. Callers must serialise edits per sheet.
    pub fn merge(&mut self, other: &mut Sheet) -> Result<(), SheetError> {
        let id = self.header.id;
        if other.header.id != id {
            return Err(SheetError::DifferentSheet {
                ours: id,
                theirs: other.header.id,
            });
        }
        // Copies of one sheet share the change that created its value maps.
        if other.patient != self.patient || other.items != self.items {
            return Err(SheetError::UnrelatedHistory { id });
        }
        let mut merged = self.doc.clone();
        merged
            .merge(&mut other.doc)
            .map_err(|source| merge_error(id, source))?;
        let shape = Shape::read(&merged)?;
        *self = Sheet {
            doc: merged,
            header: shape.header,
            patient: shape.patient,
            items: shape.items,
            stored: self.stored.take(),
        };
        Ok(())
    }

    /// Items that hold concurrent values, sorted by field id, each with every value and its
    /// author.
    pub fn conflicts(&self) -> Vec<Conflict> {
        let mut conflicts = Vec::new();
        for block in Block::ALL {
            let obj = self.block(block);
            for item in self.doc.map_range(obj, ..) {
                if !item.conflict {
                    continue;
                }
                let values = self
                    .doc
                    .get_all(obj, item.key.as_ref())
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|(value, op)| {
                        Some(ConflictValue {
                            value: value.into_string().ok()?,
                            author: match op {
                                ObjId::Id(_, actor, _) => Author::from_actor(&actor),
                                ObjId::Root => None,
                            },
                        })
                    })
                    .collect();
                conflicts.push(Conflict {
                    field: block.field_id(&item.key),
                    values,
                });
            }
        }
        conflicts.sort_by(|a, b| a.field.cmp(&b.field));
        conflicts
    }

    fn block(&self, block: Block) -> &ObjId {
        match block {
            Block::Patient => &self.patient,
            Block::Items => &self.items,
        }
    }

    fn current(&self, block: Block, key: &str) -> Option<String> {
        match self.doc.get(self.block(block), key) {
            Ok(Some((value, _))) => value.into_string().ok().filter(|v| v != CLEARED),
            _ => None,
        }
    }

    fn conflicted(&self, block: Block, key: &str) -> bool {
        self.doc
            .get_all(self.block(block), key)
            .is_ok_and(|values| values.len() > 1)
    }

    fn root_conflicted(&self, key: &str) -> bool {
        self.doc
            .get_all(ROOT, key)
            .is_ok_and(|values| values.len() > 1)
    }

    fn check_known(&self, heads: &[ChangeHash]) -> Result<(), SheetError> {
        match heads
            .iter()
            .find(|hash| self.doc.get_change_meta_by_hash(hash).is_none())
        {
            Some(hash) => Err(SheetError::UnknownVersion { hash: *hash }),
            None => Ok(()),
        }
    }

    /// Values as of `heads`, which must be known, or the current ones (`None`: read directly,
    /// which costs far less than a read at the current heads). The value maps are looked up as
    /// of `heads` because before the first change they do not exist.
    fn read_fields(&self, heads: Option<&[ChangeHash]>) -> BTreeMap<String, String> {
        let mut values = BTreeMap::new();
        for block in Block::ALL {
            let map = match heads {
                Some(heads) => self.doc.get_at(ROOT, block.root_key(), heads),
                None => self.doc.get(ROOT, block.root_key()),
            };
            let Ok(Some((Value::Object(ObjType::Map), obj))) = map else {
                continue;
            };
            let mut put = |key: &str, value: ValueRef<'_>| {
                if let ValueRef::Scalar(ScalarValueRef::Str(value)) = value
                    && value != CLEARED
                {
                    values.insert(block.field_id(key), value.into_owned());
                }
            };
            match heads {
                Some(heads) => {
                    for item in self.doc.map_range_at(&obj, .., heads) {
                        put(&item.key, item.value);
                    }
                }
                None => {
                    for item in self.doc.map_range(&obj, ..) {
                        put(&item.key, item.value);
                    }
                }
            }
        }
        values
    }

    /// Makes one change by `edit` with the operations `ops` writes.
    pub(crate) fn write(
        &mut self,
        edit: Edit<'_>,
        ops: impl FnOnce(&mut Transaction<'_>) -> Result<(), AutomergeError>,
    ) {
        self.doc.set_actor(edit.author.to_actor());
        let mut tx = self.doc.transaction();
        must(ops(&mut tx));
        tx.commit_with(edit.commit_options());
    }
}

/// What a cleared item holds: an empty value is written rather than the key deleted, so that
/// clearing an item and setting it elsewhere at the same time is a [`Conflict`] like any two
/// values (a deletion would silently lose to the other write). Read as no value.
pub const CLEARED: &str = "";

/// The root key naming an author: `author.<node>.<user>`.
fn author_key(author: &Author) -> String {
    format!("author.{}.{}", author.node, author.user)
}

/// The root key holding an author's institution: `author.<node>.<user>.place`.
fn place_key(author: &Author) -> String {
    format!("{}.place", author_key(author))
}

/// Writes the layout of a new sheet; returns the patient and items maps.
fn write_new(
    tx: &mut Transaction<'_>,
    header: &NewSheet,
) -> Result<(ObjId, ObjId), AutomergeError> {
    tx.put(ROOT, key::SCHEMA, SCHEMA_VERSION)?;
    tx.put(ROOT, key::ID, header.id.to_string())?;
    let form = tx.put_object(ROOT, key::FORM, ObjType::Map)?;
    tx.put(&form, key::FORM_ID, header.form_id.as_str())?;
    tx.put(&form, key::FORM_VERSION, header.form_version.as_str())?;
    let disease = tx.put_object(ROOT, key::DISEASE, ObjType::Map)?;
    tx.put(&disease, key::KOKUJI, i64::from(header.kokuji))?;
    tx.put(&disease, key::EDA, i64::from(header.eda))?;
    tx.put(&disease, key::DISEASE_NAME, header.disease.as_str())?;
    tx.put(ROOT, key::INSTITUTION, header.institution.as_str())?;
    if let Some(doctor) = header.doctor {
        tx.put(ROOT, key::DOCTOR, ScalarValue::Uint(doctor))?;
    }
    tx.put(ROOT, key::STATUS, DRAFT)?;
    if let Some(from) = header.carried_from {
        tx.put(ROOT, key::CARRIED_FROM, from.to_string())?;
    }
    tx.put(ROOT, key::CREATED_MS, header.created_ms)?;
    let patient = tx.put_object(ROOT, key::PATIENT, ObjType::Map)?;
    let items = tx.put_object(ROOT, key::ITEMS, ObjType::Map)?;
    Ok((patient, items))
}

/// Writes go only to the root map and to maps of a checked layout, with string keys and
/// scalar values, which Automerge always accepts; a failure here is a bug in this crate.
/// The open transaction is rolled back when it is dropped during the panic.
/// Why changes of sheet `id` could not be merged in: an author whose history diverged (the same
/// sequence number twice), or another failure.
pub(crate) fn merge_error(id: SheetId, source: AutomergeError) -> SheetError {
    match source {
        AutomergeError::DuplicateSeqNumber(_, actor) => SheetError::DivergedAuthor {
            id,
            author: Author::from_actor(&actor),
        },
        source => SheetError::Merge {
            id,
            source: Box::new(source),
        },
    }
}

fn must<T>(result: Result<T, AutomergeError>) -> T {
    match result {
        Ok(value) => value,
        Err(error) => {
            panic!("nsdb-sync bug: Automerge refused a write to a checked sheet: {error}")
        }
    }
}

/// What one change's patches wrote, by part of the document.
#[derive(Default)]
struct Touched {
    fields: Vec<String>,
    header: Vec<String>,
    reviews: Vec<String>,
    inquiries: Vec<String>,
}

/// The field ids, header keys, reviews and inquiries a change's patches set or cleared.
fn touched(patches: &[Patch]) -> Touched {
    let mut out = Touched::default();
    for patch in patches {
        let (key, is_object) = match &patch.action {
            PatchAction::PutMap { key, value, .. } => (key.as_str(), value.0.is_object()),
            PatchAction::DeleteMap { key } => (key.as_str(), false),
            PatchAction::Conflict {
                prop: Prop::Map(key),
            } => (key.as_str(), false),
            // Elements of an inquiry's lists: attributed to the list's key below.
            PatchAction::Insert { .. } | PatchAction::DeleteSeq { .. } => ("", false),
            _ => continue,
        };
        let root_key = match patch.path.first() {
            None => key,
            Some((_, Prop::Map(root))) => root.as_str(),
            Some((_, Prop::Seq(_))) => continue,
        };
        // The path below the root entry, then the key written.
        let inner: Vec<&str> = patch
            .path
            .iter()
            .skip(1)
            .filter_map(|(_, prop)| match prop {
                Prop::Map(k) => Some(k.as_str()),
                Prop::Seq(_) => None,
            })
            .chain((!key.is_empty() && !patch.path.is_empty()).then_some(key))
            .collect();
        if let Some(code) = root_key.strip_prefix(crate::review::REVIEW_PREFIX) {
            out.reviews.push(entry_name(code, &inner));
            continue;
        }
        if let Some(id) = root_key.strip_prefix(crate::review::INQUIRY_PREFIX) {
            out.inquiries.push(entry_name(id, &inner));
            continue;
        }
        if is_object || key.is_empty() {
            continue;
        }
        match patch.path.last() {
            None => out.header.push(key.to_owned()),
            Some((_, Prop::Map(parent)))
                if patch.path.len() == 1 && parent == Block::Patient.root_key() =>
            {
                out.fields.push(Block::Patient.field_id(key));
            }
            Some((_, Prop::Map(parent)))
                if patch.path.len() == 1 && parent == Block::Items.root_key() =>
            {
                out.fields.push(Block::Items.field_id(key));
            }
            Some((_, Prop::Map(parent))) => out.header.push(format!("{parent}.{key}")),
            Some((_, Prop::Seq(_))) => {}
        }
    }
    for names in [
        &mut out.fields,
        &mut out.header,
        &mut out.reviews,
        &mut out.inquiries,
    ] {
        names.sort();
        names.dedup();
    }
    out
}

/// `<entry>.<first key below it>`, or `<entry>` alone when the entry itself was written.
fn entry_name(entry: &str, inner: &[&str]) -> String {
    match inner.first() {
        Some(key) => format!("{entry}.{key}"),
        None => entry.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::NodeId;

    const HOSPITAL_NODE: NodeId = NodeId([0x11; 16]);
    const CLINIC_NODE: NodeId = NodeId([0x22; 16]);

    fn author(node: NodeId, user: u64) -> Author {
        Author { node, user }
    }

    fn edit(author: Author, at_ms: i64, message: &str) -> Edit<'_> {
        Edit {
            author,
            at_ms,
            message,
        }
    }

    fn sheet_id() -> SheetId {
        "67e55044-10b1-426f-9247-bb680e5fe0c8"
            .parse()
            .expect("valid sheet id")
    }

    fn new_sheet() -> NewSheet {
        NewSheet {
            id: sheet_id(),
            form_id: "parkinson".to_owned(),
            form_version: "2024.1".to_owned(),
            kokuji: 6,
            eda: 0,
            disease: "パーキンソン病".to_owned(),
            institution: "1312345678".to_owned(),
            doctor: Some(42),
            carried_from: Some(
                "0b4e8f1a-5c2d-4e6f-8a9b-1c2d3e4f5a6b"
                    .parse()
                    .expect("valid sheet id"),
            ),
            created_ms: 1_700_000_000_123,
        }
    }

    fn created() -> Sheet {
        Sheet::new(
            new_sheet(),
            edit(author(HOSPITAL_NODE, 1), 1_700_000_000_123, "作成"),
        )
    }

    fn changes(pairs: &[(&str, Option<&str>)]) -> BTreeMap<String, Option<String>> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.map(str::to_owned)))
            .collect()
    }

    fn values(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn field_change(field: &str, before: Option<&str>, after: Option<&str>) -> FieldChange {
        FieldChange {
            field: field.to_owned(),
            before: before.map(str::to_owned),
            after: after.map(str::to_owned),
        }
    }

    fn strings(names: &[&str]) -> Vec<String> {
        names.iter().map(|name| (*name).to_owned()).collect()
    }

    #[test]
    fn new_sheet_is_a_draft_with_the_given_header() {
        let sheet = created();
        let header = sheet.header();
        let new = new_sheet();
        assert_eq!(header.id, new.id);
        assert_eq!(header.form_id, "parkinson");
        assert_eq!(header.form_version, "2024.1");
        assert_eq!((header.kokuji, header.eda), (6, 0));
        assert_eq!(header.disease, "パーキンソン病");
        assert_eq!(header.institution, "1312345678");
        assert_eq!(header.doctor, Some(42));
        assert_eq!(header.status, "draft");
        assert_eq!(header.access_key, None);
        assert_eq!(header.carried_from, new.carried_from);
        assert_eq!(header.created_ms, 1_700_000_000_123);
        assert!(sheet.fields().is_empty());
        assert_eq!(sheet.heads().len(), 1);
    }

    #[test]
    fn save_and_load_keep_header_and_fields() {
        let mut sheet = created();
        let clerk = author(HOSPITAL_NODE, 7);
        sheet.set_fields(
            &changes(&[
                ("patient.name", Some("山田 太郎")),
                ("patient.birth", Some("1950-04-01")),
                ("shindan.kakutei", Some("1")),
            ]),
            edit(clerk, 1_700_000_100_000, "一時保存"),
        );
        sheet.set_access_key("k-123", edit(clerk, 1_700_000_200_000, ""));
        sheet.set_status("submitted", edit(clerk, 1_700_000_300_000, "提出"));

        let bytes = sheet.save();
        let loaded = Sheet::load(&bytes).expect("a saved sheet loads");
        assert_eq!(loaded.header(), sheet.header());
        assert_eq!(loaded.header().status, "submitted");
        assert_eq!(loaded.header().access_key.as_deref(), Some("k-123"));
        assert_eq!(loaded.fields(), sheet.fields());
        assert_eq!(
            loaded.fields(),
            values(&[
                ("patient.birth", "1950-04-01"),
                ("patient.name", "山田 太郎"),
                ("shindan.kakutei", "1"),
            ])
        );
        assert_eq!(loaded.field("patient.name").as_deref(), Some("山田 太郎"));
        assert_eq!(loaded.heads(), sheet.heads());
        assert_eq!(loaded.history(), sheet.history());
    }

    #[test]
    fn sheet_without_doctor_or_origin_round_trips() {
        let mut new = new_sheet();
        new.doctor = None;
        new.carried_from = None;
        let mut sheet = Sheet::new(new, edit(author(HOSPITAL_NODE, 1), 5, ""));
        let loaded = Sheet::load(&sheet.save()).expect("loads");
        assert_eq!(loaded.header().doctor, None);
        assert_eq!(loaded.header().carried_from, None);
        assert_eq!(loaded.header(), sheet.header());
    }

    #[test]
    fn set_fields_returns_only_changed_ids_and_makes_no_empty_change() {
        let mut sheet = created();
        let clerk = author(HOSPITAL_NODE, 7);
        let changed = sheet.set_fields(
            &changes(&[("a", Some("1")), ("b", Some("2")), ("c", None)]),
            edit(clerk, 10, ""),
        );
        assert_eq!(changed, strings(&["a", "b"]));
        assert_eq!(sheet.history().len(), 2);

        let changed = sheet.set_fields(
            &changes(&[("a", Some("1")), ("b", Some("3")), ("c", None)]),
            edit(clerk, 20, ""),
        );
        assert_eq!(changed, strings(&["b"]));
        assert_eq!(sheet.history().len(), 3);

        let heads = sheet.heads();
        let changed = sheet.set_fields(
            &changes(&[("a", Some("1")), ("b", Some("3")), ("c", None)]),
            edit(clerk, 30, ""),
        );
        assert!(changed.is_empty());
        assert_eq!(sheet.heads(), heads, "no change when nothing changed");
        assert_eq!(sheet.history().len(), 3);
        assert!(
            sheet
                .set_fields(&BTreeMap::new(), edit(clerk, 40, ""))
                .is_empty()
        );
        assert_eq!(sheet.heads(), heads);
    }

    #[test]
    fn one_set_fields_call_is_one_change() {
        let mut sheet = created();
        let before = sheet.heads();
        sheet.set_fields(
            &changes(&[
                ("a", Some("1")),
                ("patient.name", Some("x")),
                ("b", Some("2")),
            ]),
            edit(author(HOSPITAL_NODE, 7), 10, ""),
        );
        let history = sheet.history();
        assert_eq!(history.len(), 2);
        let last = &history[1];
        assert_eq!(sheet.heads(), vec![last.hash]);
        assert_ne!(sheet.heads(), before);
        assert_eq!(last.changed, strings(&["a", "b", "patient.name"]));
    }

    #[test]
    fn clearing_a_field_removes_it_and_is_recorded() {
        let mut sheet = created();
        let clerk = author(HOSPITAL_NODE, 7);
        sheet.set_fields(&changes(&[("a", Some("1"))]), edit(clerk, 10, ""));
        let changed = sheet.set_fields(&changes(&[("a", None)]), edit(clerk, 20, "消去"));
        assert_eq!(changed, strings(&["a"]));
        assert_eq!(sheet.field("a"), None);
        assert!(sheet.fields().is_empty());
        let last = sheet.history().pop().expect("has history");
        assert_eq!(last.changed, strings(&["a"]));
        assert_eq!(last.message, "消去");
    }

    /// An empty value is no value ([`CLEARED`]): writing one where there is none changes
    /// nothing, and writing one over a value clears it.
    #[test]
    fn an_empty_value_is_no_value() {
        let mut sheet = created();
        let clerk = author(HOSPITAL_NODE, 7);
        assert!(
            sheet
                .set_fields(&changes(&[("a", Some(""))]), edit(clerk, 10, ""))
                .is_empty()
        );
        sheet.set_fields(&changes(&[("a", Some("x"))]), edit(clerk, 20, ""));
        assert_eq!(
            sheet.set_fields(&changes(&[("a", Some(""))]), edit(clerk, 30, "")),
            strings(&["a"])
        );
        assert_eq!(sheet.field("a"), None);
        assert!(!sheet.fields().contains_key("a"));
    }

    #[test]
    fn history_attributes_each_change_to_its_node_user_time_and_message() {
        let creator = author(HOSPITAL_NODE, 1);
        let clerk = author(HOSPITAL_NODE, 7);
        let doctor = author(CLINIC_NODE, 42);
        let mut sheet = created();
        sheet.set_fields(
            &changes(&[("patient.name", Some("山田")), ("q1", Some("あり"))]),
            edit(clerk, 1_700_000_100_001, "一時保存"),
        );
        // Edits after a load carry the editor's actor, not the loaded document's random one.
        let mut sheet = Sheet::load(&sheet.save()).expect("loads");
        sheet.set_fields(
            &changes(&[("q1", Some("なし"))]),
            edit(doctor, 1_700_000_200_002, ""),
        );
        sheet.set_status("submitted", edit(doctor, 1_700_000_300_003, "提出"));
        sheet.set_doctor(None, edit(clerk, 1_700_000_400_004, "担当解除"));

        let history = sheet.history();
        let summary: Vec<_> = history
            .iter()
            .map(|entry| (entry.author, entry.at_ms, entry.message.as_str()))
            .collect();
        assert_eq!(
            summary,
            vec![
                (Some(creator), 1_700_000_000_123, "作成"),
                (Some(clerk), 1_700_000_100_001, "一時保存"),
                (Some(doctor), 1_700_000_200_002, ""),
                (Some(doctor), 1_700_000_300_003, "提出"),
                (Some(clerk), 1_700_000_400_004, "担当解除"),
            ]
        );
        assert_eq!(history[0].changed, Vec::<String>::new());
        assert_eq!(
            history[0].header,
            strings(&[
                "carried_from",
                "created_ms",
                "disease.eda",
                "disease.kokuji",
                "disease.name",
                "doctor",
                "form.id",
                "form.version",
                "id",
                "institution",
                "schema",
                "status",
            ])
        );
        assert_eq!(history[1].changed, strings(&["patient.name", "q1"]));
        assert!(history[1].header.is_empty());
        assert_eq!(history[2].changed, strings(&["q1"]));
        assert!(history[3].changed.is_empty());
        assert_eq!(history[3].header, strings(&["status"]));
        assert_eq!(history[4].header, strings(&["doctor"]));
        assert_eq!(sheet.heads(), vec![history[4].hash]);
        for name in history.iter().flat_map(|entry| &entry.header) {
            assert!(crate::HEADER_KEYS.contains(&name.as_str()), "{name}");
        }
    }

    #[test]
    fn header_setters_change_only_when_the_value_differs() {
        let mut sheet = created();
        let clerk = author(HOSPITAL_NODE, 7);
        assert!(!sheet.set_status("draft", edit(clerk, 1, "")));
        assert!(!sheet.set_doctor(Some(42), edit(clerk, 1, "")));
        assert_eq!(sheet.history().len(), 1);

        assert!(sheet.set_access_key("k1", edit(clerk, 2, "")));
        assert!(!sheet.set_access_key("k1", edit(clerk, 3, "")));
        assert!(sheet.set_doctor(Some(43), edit(clerk, 4, "")));
        assert!(sheet.set_doctor(None, edit(clerk, 5, "")));
        assert!(!sheet.set_doctor(None, edit(clerk, 6, "")));
        assert_eq!(sheet.history().len(), 4);

        let loaded = Sheet::load(&sheet.save()).expect("loads");
        assert_eq!(loaded.header().access_key.as_deref(), Some("k1"));
        assert_eq!(loaded.header().doctor, None);
        assert_eq!(loaded.header(), sheet.header());
    }

    #[test]
    fn diff_between_two_versions_lists_exactly_the_changed_items() {
        let clerk = author(HOSPITAL_NODE, 7);
        let mut sheet = created();
        let empty = sheet.heads();
        sheet.set_fields(
            &changes(&[
                ("keep", Some("同じ")),
                ("change", Some("old")),
                ("remove", Some("gone")),
                ("patient.name", Some("山田")),
            ]),
            edit(clerk, 10, ""),
        );
        let v1 = sheet.heads();
        sheet.set_fields(
            &changes(&[
                ("change", Some("new")),
                ("remove", None),
                ("add", Some("追加")),
            ]),
            edit(clerk, 20, ""),
        );
        let v2 = sheet.heads();
        sheet.set_status("submitted", edit(clerk, 30, ""));
        let v3 = sheet.heads();

        assert_eq!(
            sheet.diff(&v1, &v2).expect("known versions"),
            vec![
                field_change("add", None, Some("追加")),
                field_change("change", Some("old"), Some("new")),
                field_change("remove", Some("gone"), None),
            ]
        );
        assert_eq!(
            sheet.diff(&v2, &v1).expect("known versions"),
            vec![
                field_change("add", Some("追加"), None),
                field_change("change", Some("new"), Some("old")),
                field_change("remove", None, Some("gone")),
            ]
        );
        assert_eq!(
            sheet.diff(&empty, &v1).expect("known versions").len(),
            4,
            "everything set in v1 is new since creation"
        );
        assert!(sheet.diff(&v2, &v3).expect("known versions").is_empty());
        assert!(sheet.diff(&v1, &v1).expect("known versions").is_empty());
    }

    #[test]
    fn fields_at_returns_the_values_of_an_old_version() {
        let clerk = author(HOSPITAL_NODE, 7);
        let mut sheet = created();
        let v0 = sheet.heads();
        sheet.set_fields(
            &changes(&[("a", Some("1")), ("patient.name", Some("山田"))]),
            edit(clerk, 10, ""),
        );
        let v1 = sheet.heads();
        sheet.set_fields(
            &changes(&[("a", Some("2")), ("patient.name", None)]),
            edit(clerk, 20, ""),
        );
        let v2 = sheet.heads();

        assert!(sheet.fields_at(&[]).expect("empty version").is_empty());
        assert!(sheet.fields_at(&v0).expect("known").is_empty());
        assert_eq!(
            sheet.fields_at(&v1).expect("known"),
            values(&[("a", "1"), ("patient.name", "山田")])
        );
        assert_eq!(sheet.fields_at(&v2).expect("known"), values(&[("a", "2")]));
        assert_eq!(sheet.fields_at(&v2).expect("known"), sheet.fields());
        // Versions survive a save and load.
        let loaded = Sheet::load(&sheet.save()).expect("loads");
        assert_eq!(
            loaded.fields_at(&v1).expect("known"),
            values(&[("a", "1"), ("patient.name", "山田")])
        );
    }

    #[test]
    fn a_version_from_elsewhere_is_a_typed_error() {
        let mut sheet = created();
        let mut other = Sheet::new(
            NewSheet {
                id: SheetId::random(),
                ..new_sheet()
            },
            edit(author(CLINIC_NODE, 1), 1, ""),
        );
        other.set_fields(
            &changes(&[("a", Some("1"))]),
            edit(author(CLINIC_NODE, 1), 2, ""),
        );
        let foreign = other.heads();
        assert!(matches!(
            sheet.fields_at(&foreign),
            Err(SheetError::UnknownVersion { hash }) if hash == foreign[0]
        ));
        let here = sheet.heads();
        assert!(matches!(
            sheet.diff(&here, &foreign),
            Err(SheetError::UnknownVersion { .. })
        ));
        let _ = sheet.save();
    }

    #[test]
    fn patient_fields_live_in_the_patient_map() {
        let mut sheet = created();
        sheet.set_fields(
            &changes(&[
                ("patient.name", Some("山田")),
                ("patient.address.zip", Some("100-0001")),
                ("q1", Some("1")),
            ]),
            edit(author(HOSPITAL_NODE, 7), 10, ""),
        );
        let doc = Automerge::load(&sheet.save()).expect("loads");
        let patient = match doc.get(ROOT, "patient") {
            Ok(Some((Value::Object(ObjType::Map), id))) => id,
            other => panic!("patient map missing: {other:?}"),
        };
        let items = match doc.get(ROOT, "items") {
            Ok(Some((Value::Object(ObjType::Map), id))) => id,
            other => panic!("items map missing: {other:?}"),
        };
        let patient_keys: Vec<String> = doc.keys(&patient).collect();
        let item_keys: Vec<String> = doc.keys(&items).collect();
        assert_eq!(patient_keys, strings(&["address.zip", "name"]));
        assert_eq!(item_keys, strings(&["q1"]));
        let name = doc
            .get(&patient, "name")
            .expect("readable")
            .and_then(|(value, _)| value.into_string().ok());
        assert_eq!(name.as_deref(), Some("山田"));
    }

    #[test]
    fn loading_garbage_is_a_corrupt_error() {
        for bytes in [
            &b"not an automerge document"[..],
            &[0x85, 0x6f, 0x4a, 0x83, 0xff, 0xff, 0xff][..],
            &[0u8; 64][..],
        ] {
            assert!(
                matches!(Sheet::load(bytes), Err(SheetError::Corrupt(_))),
                "{bytes:?}"
            );
        }
    }

    #[test]
    fn loading_an_automerge_document_that_is_not_a_sheet_is_a_typed_error() {
        let mut doc = Automerge::new();
        let mut tx = doc.transaction();
        tx.put(ROOT, "title", "買い物リスト").expect("put");
        tx.commit();
        assert!(matches!(
            Sheet::load(&doc.save()),
            Err(SheetError::MissingKey { key }) if key == "schema"
        ));
        // An empty document (and empty bytes) lack every key too.
        assert!(matches!(
            Sheet::load(&Automerge::new().save()),
            Err(SheetError::MissingKey { .. })
        ));
        assert!(matches!(
            Sheet::load(&[]),
            Err(SheetError::MissingKey { .. }) | Err(SheetError::Corrupt(_))
        ));
    }

    /// Rewrites one key of a valid sheet in a raw transaction and loads the result.
    fn load_tampered(
        tamper: impl FnOnce(&mut Transaction<'_>, &ObjId) -> Result<(), AutomergeError>,
    ) -> Result<Sheet, SheetError> {
        let mut sheet = created();
        let items = sheet.items.clone();
        let mut doc = Automerge::load(&sheet.save()).expect("loads");
        let mut tx = doc.transaction();
        tamper(&mut tx, &items).expect("tamper");
        tx.commit();
        Sheet::load(&doc.save())
    }

    #[test]
    fn loading_a_sheet_with_a_broken_layout_names_the_key() {
        assert!(matches!(
            load_tampered(|tx, _| tx.put(ROOT, "schema", 2i64)),
            Err(SheetError::UnsupportedSchema {
                found: 2,
                supported: 1
            })
        ));
        assert!(matches!(
            load_tampered(|tx, _| tx.delete(ROOT, "status")),
            Err(SheetError::MissingKey { key }) if key == "status"
        ));
        assert!(matches!(
            load_tampered(|tx, _| tx.put(ROOT, "id", "not-a-uuid")),
            Err(SheetError::WrongType { key, .. }) if key == "id"
        ));
        assert!(matches!(
            load_tampered(|tx, _| tx.put(ROOT, "items", "flat")),
            Err(SheetError::WrongType { key, .. }) if key == "items"
        ));
        assert!(matches!(
            load_tampered(|tx, _| tx.put(ROOT, "doctor", -1i64)),
            Err(SheetError::WrongType { key, .. }) if key == "doctor"
        ));
        assert!(matches!(
            load_tampered(|tx, items| tx.put(items, "q1", 3i64)),
            Err(SheetError::WrongType { key, .. }) if key == "items.q1"
        ));
        assert!(matches!(
            load_tampered(|tx, _| {
                let disease = tx.put_object(ROOT, "disease", ObjType::Map)?;
                tx.put(&disease, "kokuji", 70_000i64)?;
                tx.put(&disease, "eda", 0i64)?;
                tx.put(&disease, "name", "x")
            }),
            Err(SheetError::WrongType { key, .. }) if key == "disease.kokuji"
        ));
    }

    #[test]
    fn truncated_or_damaged_sheet_bytes_never_panic() {
        let mut sheet = created();
        sheet.set_fields(
            &changes(&[("q1", Some("1")), ("patient.name", Some("山田"))]),
            edit(author(HOSPITAL_NODE, 7), 10, ""),
        );
        let bytes = sheet.save();
        for len in 0..bytes.len() {
            let _ = Sheet::load(&bytes[..len]);
        }
        for i in 0..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[i] ^= 0x5a;
            let _ = Sheet::load(&damaged);
        }
    }

    #[test]
    fn a_save_from_a_stale_page_writes_only_what_its_user_changed() {
        let mut sheet = created();
        sheet.set_fields(
            &changes(&[
                ("patient.address", Some("旧住所")),
                ("patient.postal_code", Some("1000001")),
            ]),
            edit(author(HOSPITAL_NODE, 1), 10, ""),
        );
        let shown = sheet.heads();
        // The clerk changes the address.
        sheet.set_fields(
            &changes(&[("patient.address", Some("新住所"))]),
            edit(author(HOSPITAL_NODE, 2), 20, ""),
        );
        // The doctor, on the page loaded before, posts the whole form with a new postal code.
        let written = sheet
            .set_fields_since(
                &shown,
                &changes(&[
                    ("patient.address", Some("旧住所")),
                    ("patient.postal_code", Some("1000002")),
                    ("q1", None),
                ]),
                edit(author(HOSPITAL_NODE, 3), 30, "一時保存"),
            )
            .expect("a known version");
        assert_eq!(written, strings(&["patient.postal_code"]));
        let f = sheet.fields();
        assert_eq!(f.get("patient.address").map(String::as_str), Some("新住所"));
        assert_eq!(
            f.get("patient.postal_code").map(String::as_str),
            Some("1000002")
        );
        assert!(sheet.conflicts().is_empty());
    }

    #[test]
    fn the_same_item_saved_from_two_pages_keeps_both_values_as_a_conflict() {
        let mut sheet = created();
        let shown = sheet.heads();
        sheet.set_fields(
            &changes(&[("q1", Some("3"))]),
            edit(author(HOSPITAL_NODE, 2), 20, ""),
        );
        sheet
            .set_fields_since(
                &shown,
                &changes(&[("q1", Some("4"))]),
                edit(author(HOSPITAL_NODE, 3), 30, ""),
            )
            .expect("a known version");
        let conflicts = sheet.conflicts();
        assert_eq!(conflicts.len(), 1);
        let mut values: Vec<&str> = conflicts[0]
            .values
            .iter()
            .map(|v| v.value.as_str())
            .collect();
        values.sort();
        assert_eq!(values, vec!["3", "4"]);
        // The copy saves and loads with both values, and setting the item settles it.
        let mut copy = Sheet::load(&sheet.save()).expect("loads");
        assert_eq!(copy.conflicts().len(), 1);
        copy.set_fields(
            &changes(&[("q1", Some("4"))]),
            edit(author(HOSPITAL_NODE, 3), 40, ""),
        );
        assert!(copy.conflicts().is_empty());
    }

    /// Two saves from the same page, of different items: each change's history line names the
    /// item it wrote, and the difference from the version it was made on shows only that item.
    #[test]
    fn saves_made_side_by_side_each_name_their_own_items() {
        let mut sheet = created();
        let shown = sheet.heads();
        let (doctor, clerk) = (author(HOSPITAL_NODE, 2), author(HOSPITAL_NODE, 3));
        sheet
            .set_fields_since(
                &shown,
                &changes(&[("q1", Some("医師"))]),
                edit(doctor, 20, "一時保存"),
            )
            .expect("saved");
        sheet
            .set_fields_since(
                &shown,
                &changes(&[("q2", Some("事務"))]),
                edit(clerk, 30, "一時保存"),
            )
            .expect("saved");
        let history = sheet.history();
        let by = |who: Author| -> Vec<&HistoryEntry> {
            history.iter().filter(|h| h.author == Some(who)).collect()
        };
        assert_eq!(by(doctor).len(), 1, "{history:?}");
        assert_eq!(by(doctor)[0].changed, strings(&["q1"]));
        assert_eq!(by(clerk)[0].changed, strings(&["q2"]));
        let clerks = by(clerk)[0];
        let shown_diff = sheet.diff(&clerks.parents, &[clerks.hash]).expect("diff");
        let fields: Vec<&str> = shown_diff.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(fields, ["q2"]);
    }

    /// Clearing an item is a value like any other: cleared on one page (or node) while set on
    /// another, the item holds both, and the doctor chooses.
    #[test]
    fn clearing_an_item_while_another_sets_it_is_a_conflict() {
        let values = |sheet: &Sheet| {
            let mut v: Vec<String> = sheet
                .conflicts()
                .into_iter()
                .flat_map(|c| c.values.into_iter().map(|v| v.value))
                .collect();
            v.sort();
            v
        };
        let mut sheet = created();
        sheet.set_fields(
            &changes(&[("q1", Some("3"))]),
            edit(author(HOSPITAL_NODE, 2), 10, ""),
        );
        let shown = sheet.heads();
        sheet.set_fields(
            &changes(&[("q1", Some("4"))]),
            edit(author(HOSPITAL_NODE, 2), 20, ""),
        );
        let written = sheet
            .set_fields_since(
                &shown,
                &changes(&[("q1", None)]),
                edit(author(HOSPITAL_NODE, 3), 30, ""),
            )
            .expect("a known version");
        assert_eq!(written, strings(&["q1"]));
        assert_eq!(values(&sheet), strings(&["", "4"]));

        // Cleared with nobody else writing: no value, no conflict, and clearing again writes
        // nothing.
        let mut alone = created();
        let me = author(HOSPITAL_NODE, 2);
        alone.set_fields(&changes(&[("q1", Some("3"))]), edit(me, 10, ""));
        assert_eq!(
            alone.set_fields(&changes(&[("q1", None)]), edit(me, 11, "")),
            strings(&["q1"])
        );
        assert!(!alone.fields().contains_key("q1"));
        assert!(alone.conflicts().is_empty());
        assert!(
            alone
                .set_fields(&changes(&[("q1", None)]), edit(me, 12, ""))
                .is_empty()
        );

        // On two nodes apart.
        let (mut hospital, mut clinic) = two_copies();
        hospital.set_fields(
            &changes(&[("q1", None)]),
            edit(author(HOSPITAL_NODE, 8), 20, ""),
        );
        clinic.set_fields(
            &changes(&[("q1", Some("不明"))]),
            edit(author(CLINIC_NODE, 42), 21, ""),
        );
        hospital.merge(&mut clinic).expect("merges");
        assert_eq!(values(&hospital), strings(&["", "不明"]));
    }

    #[test]
    fn a_users_second_page_does_not_conflict_with_their_own_save() {
        let mut sheet = created();
        let shown = sheet.heads();
        let me = author(HOSPITAL_NODE, 3);
        sheet.set_fields(&changes(&[("q1", Some("3"))]), edit(me, 20, ""));
        sheet.set_fields(
            &changes(&[("q2", Some("x"))]),
            edit(author(CLINIC_NODE, 4), 25, ""),
        );
        sheet
            .set_fields_since(&shown, &changes(&[("q1", Some("4"))]), edit(me, 30, ""))
            .expect("a known version");
        assert!(sheet.conflicts().is_empty());
        assert_eq!(sheet.field("q1").as_deref(), Some("4"));
        assert_eq!(sheet.field("q2").as_deref(), Some("x"));
        // Its changes stay one line per author: the copy merges into another.
        let mut other = created();
        other.merge(&mut sheet).expect("merges");
        assert_eq!(other.field("q1").as_deref(), Some("4"));
        let unknown = ChangeHash([7; 32]);
        assert!(matches!(
            sheet.set_fields_since(&[unknown], &changes(&[("q1", None)]), edit(me, 40, "")),
            Err(SheetError::UnknownVersion { .. })
        ));
    }

    #[test]
    fn a_draft_can_be_marked_as_the_renewal_of_another_sheet_and_the_mark_travels() {
        let mut new = new_sheet();
        new.carried_from = None;
        let mut sheet = Sheet::new(new, edit(author(HOSPITAL_NODE, 1), 5, ""));
        let from = SheetId::random();
        assert!(sheet.set_carried_from(from, edit(author(HOSPITAL_NODE, 1), 6, "更新登録")));
        assert!(!sheet.set_carried_from(from, edit(author(HOSPITAL_NODE, 1), 7, "")));
        let copy = Sheet::load(&sheet.save()).expect("loads");
        assert_eq!(copy.header().carried_from, Some(from));
    }

    #[test]
    fn an_authors_name_travels_with_the_document() {
        let mut sheet = created();
        let who = author(CLINIC_NODE, 9);
        assert!(sheet.author_name(&who).is_none());
        assert!(sheet.set_author_name("佐藤 一郎", "○○クリニック", edit(who, 10, "")));
        assert!(!sheet.set_author_name("佐藤 一郎", "○○クリニック", edit(who, 11, "")));
        let copy = Sheet::load(&sheet.save()).expect("loads");
        assert_eq!(
            copy.author_name(&who),
            Some(("佐藤 一郎".to_string(), Some("○○クリニック".to_string())))
        );
        assert!(copy.fields().is_empty(), "names are not items");
    }

    /// Two copies of one sheet, as two nodes would hold them after a sync.
    fn two_copies() -> (Sheet, Sheet) {
        let mut hospital = created();
        hospital.set_fields(
            &changes(&[("q1", Some("はい")), ("q2", Some("1"))]),
            edit(author(HOSPITAL_NODE, 7), 10, ""),
        );
        let clinic = Sheet::load(&hospital.save()).expect("loads");
        (hospital, clinic)
    }

    #[test]
    fn concurrent_edits_of_one_item_merge_into_a_conflict_with_both_authors() {
        let (mut hospital, mut clinic) = two_copies();
        let nurse = author(HOSPITAL_NODE, 8);
        let doctor = author(CLINIC_NODE, 42);
        hospital.set_fields(&changes(&[("q1", Some("いいえ"))]), edit(nurse, 20, ""));
        clinic.set_fields(&changes(&[("q1", Some("不明"))]), edit(doctor, 21, ""));
        assert!(hospital.conflicts().is_empty());

        let mut merged = hospital.clone();
        merged
            .merge(&mut clinic)
            .expect("copies of one sheet merge");
        let conflicts = merged.conflicts();
        assert_eq!(conflicts.len(), 1);
        let conflict = &conflicts[0];
        assert_eq!(conflict.field, "q1");
        let mut found: Vec<(String, Option<Author>)> = conflict
            .values
            .iter()
            .map(|v| (v.value.clone(), v.author))
            .collect();
        found.sort();
        assert_eq!(
            found,
            vec![
                ("いいえ".to_owned(), Some(nurse)),
                ("不明".to_owned(), Some(doctor)),
            ]
        );
        let shown = merged.field("q1");
        assert_eq!(
            shown.as_ref(),
            conflict.values.last().map(|v| &v.value),
            "the shown value is the last listed"
        );

        // Both copies converge whichever way they are merged.
        let mut other_way = clinic.clone();
        other_way.merge(&mut hospital).expect("merges");
        assert_eq!(other_way.fields(), merged.fields());
        assert_eq!(other_way.conflicts(), merged.conflicts());

        // Conflicts survive save and load.
        let mut merged = Sheet::load(&merged.save()).expect("loads");
        assert_eq!(merged.conflicts(), conflicts);

        // Setting the item, even to the value shown, resolves the conflict.
        let shown = shown.expect("a value is shown");
        let resolved = merged.set_fields(
            &changes(&[("q1", Some(shown.as_str()))]),
            edit(doctor, 30, "競合解消"),
        );
        assert_eq!(resolved, strings(&["q1"]));
        assert!(merged.conflicts().is_empty());
        assert_eq!(merged.field("q1"), Some(shown));
    }

    #[test]
    fn concurrent_edits_of_different_items_both_survive_a_merge() {
        let (mut hospital, mut clinic) = two_copies();
        hospital.set_fields(
            &changes(&[("q1", Some("いいえ")), ("patient.name", Some("山田"))]),
            edit(author(HOSPITAL_NODE, 8), 20, ""),
        );
        clinic.set_fields(
            &changes(&[("q2", None), ("q3", Some("3"))]),
            edit(author(CLINIC_NODE, 42), 21, ""),
        );
        clinic.set_status("reviewed", edit(author(CLINIC_NODE, 42), 22, ""));
        hospital.merge(&mut clinic).expect("merges");
        assert!(hospital.conflicts().is_empty());
        assert_eq!(
            hospital.fields(),
            values(&[("patient.name", "山田"), ("q1", "いいえ"), ("q3", "3")])
        );
        assert_eq!(hospital.header().status, "reviewed");
        assert_eq!(
            hospital.heads().len(),
            2,
            "two concurrent heads after the merge"
        );
        let authors: Vec<_> = hospital.history().iter().map(|e| e.author).collect();
        assert!(authors.contains(&Some(author(CLINIC_NODE, 42))));
        assert!(authors.contains(&Some(author(HOSPITAL_NODE, 8))));
    }

    #[test]
    fn merging_a_different_sheet_is_refused() {
        let (mut hospital, _) = two_copies();
        let mut other = Sheet::new(
            NewSheet {
                id: SheetId::random(),
                ..new_sheet()
            },
            edit(author(CLINIC_NODE, 1), 1, ""),
        );
        let before = hospital.heads();
        assert!(matches!(
            hospital.merge(&mut other),
            Err(SheetError::DifferentSheet { .. })
        ));
        assert_eq!(hospital.heads(), before);
    }

    #[test]
    fn merging_a_separately_created_sheet_with_the_same_id_is_refused() {
        let (mut hospital, _) = two_copies();
        let mut twin = Sheet::new(new_sheet(), edit(author(CLINIC_NODE, 1), 1, ""));
        let before = hospital.heads();
        assert!(matches!(
            hospital.merge(&mut twin),
            Err(SheetError::UnrelatedHistory { .. })
        ));
        assert_eq!(hospital.heads(), before);
        assert_eq!(hospital.field("q1").as_deref(), Some("はい"));
    }

    #[test]
    fn merging_in_a_broken_layout_is_refused_and_changes_nothing() {
        let (mut hospital, clinic) = two_copies();
        let mut doc = clinic.doc.clone();
        doc.set_actor(author(CLINIC_NODE, 66).to_actor());
        let mut tx = doc.transaction();
        tx.delete(ROOT, "status").expect("delete");
        tx.commit();
        let mut broken = Sheet {
            doc,
            ..clinic.clone()
        };
        let before = hospital.heads();
        assert!(matches!(
            hospital.merge(&mut broken),
            Err(SheetError::MissingKey { key }) if key == "status"
        ));
        assert_eq!(hospital.heads(), before);
        assert_eq!(hospital.header().status, "draft");
    }

    #[test]
    fn one_author_editing_two_separate_copies_cannot_be_merged() {
        let (mut hospital, _) = two_copies();
        let mut restored = Sheet::load(&hospital.save()).expect("loads");
        let clerk = author(HOSPITAL_NODE, 7);
        hospital.set_fields(&changes(&[("q1", Some("a"))]), edit(clerk, 20, ""));
        restored.set_fields(&changes(&[("q1", Some("b"))]), edit(clerk, 21, ""));
        let before = hospital.heads();
        let error = hospital.merge(&mut restored).expect_err("diverged author");
        assert!(
            matches!(&error, SheetError::DivergedAuthor { author: Some(a), .. } if *a == clerk),
            "{error:?}"
        );
        assert!(error.to_string().contains("user 7 on node 1111"));
        assert_eq!(hospital.heads(), before);
    }
}
