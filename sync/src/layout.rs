//! The layout of a sheet document (the keys of its root map and what each holds), and the
//! reading and checking of that layout in documents that come from outside.
//!
//! Root map, layout version 1:
//!
//! | key            | value                                                        |
//! |----------------|--------------------------------------------------------------|
//! | `schema`       | int, layout version ([`SCHEMA_VERSION`])                      |
//! | `id`           | str, the sheet id as a hyphenated uuid                       |
//! | `form`         | map {`id`: str, `version`: str}                              |
//! | `disease`      | map {`kokuji`: int (告示番号), `eda`: int (枝番), `name`: str} |
//! | `institution`  | str, 医療機関コード of the owning hospital                    |
//! | `doctor`       | uint user id, absent when no doctor is assigned              |
//! | `status`       | str                                                          |
//! | `access_key`   | str, absent until set                                        |
//! | `carried_from` | str sheet id, absent unless carried forward from a sheet     |
//! | `created_ms`   | int, unix milliseconds                                       |
//! | `patient`      | map, field `patient.<key>` stored under `<key>` (str values) |
//! | `items`        | map, every other field id -> str value                       |
//! | `author.<node>.<user>` | str, the author's name (`….place`: their institution) |
//! | `review.<code>`  | map, a municipality's review (see the `review` module)     |
//! | `inquiry.<id>`   | map, an inquiry (照会, see the `review` module)             |
//!
//! Documents without reviews or inquiries are valid; those present are checked.
//! Keeping the patient block in its own map lets it be stripped or masked as a whole.
//!
//! This module must never trust a document's shape without checking it, never panic on a
//! malformed document, and never write to a document.

use automerge::{Automerge, ObjId, ObjType, ROOT, ReadDoc, ScalarValue, Value};

use crate::error::SheetError;
use crate::ids::SheetId;
use crate::sheet::SheetHeader;

/// Layout version written into `schema` by this crate.
pub const SCHEMA_VERSION: i64 = 1;

/// Field ids starting with this prefix are stored in the `patient` map, without the prefix.
pub const PATIENT_PREFIX: &str = "patient.";

/// The names under which header keys appear in [`crate::HistoryEntry::header`]: root keys by
/// name, keys of the nested `form` and `disease` maps as `form.id`, `disease.kokuji` and so on.
pub const HEADER_KEYS: &[&str] = &[
    key::SCHEMA,
    key::ID,
    "form.id",
    "form.version",
    "disease.kokuji",
    "disease.eda",
    "disease.name",
    key::INSTITUTION,
    key::DOCTOR,
    key::STATUS,
    key::ACCESS_KEY,
    key::CARRIED_FROM,
    key::CREATED_MS,
];

/// Keys of the document, as written in the layout table above.
pub(crate) mod key {
    pub const SCHEMA: &str = "schema";
    pub const ID: &str = "id";
    pub const FORM: &str = "form";
    pub const FORM_ID: &str = "id";
    pub const FORM_VERSION: &str = "version";
    pub const DISEASE: &str = "disease";
    pub const KOKUJI: &str = "kokuji";
    pub const EDA: &str = "eda";
    pub const DISEASE_NAME: &str = "name";
    pub const INSTITUTION: &str = "institution";
    pub const DOCTOR: &str = "doctor";
    pub const STATUS: &str = "status";
    pub const ACCESS_KEY: &str = "access_key";
    pub const CARRIED_FROM: &str = "carried_from";
    pub const CREATED_MS: &str = "created_ms";
    pub const PATIENT: &str = "patient";
    pub const ITEMS: &str = "items";
}

/// Which value map of the document a field lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Block {
    Patient,
    Items,
}

impl Block {
    /// The root key of this block's map.
    pub(crate) fn root_key(self) -> &'static str {
        match self {
            Block::Patient => key::PATIENT,
            Block::Items => key::ITEMS,
        }
    }

    /// The field id of `key` in this block.
    pub(crate) fn field_id(self, key: &str) -> String {
        match self {
            Block::Patient => format!("{PATIENT_PREFIX}{key}"),
            Block::Items => key.to_owned(),
        }
    }

    /// The block and map key a field id is stored under.
    pub(crate) fn of_field(field: &str) -> (Block, &str) {
        match field.strip_prefix(PATIENT_PREFIX) {
            Some(key) => (Block::Patient, key),
            None => (Block::Items, field),
        }
    }

    pub(crate) const ALL: [Block; 2] = [Block::Patient, Block::Items];
}

/// A checked sheet document: its header and the ids of its two value maps.
#[derive(Debug, Clone)]
pub(crate) struct Shape {
    pub header: SheetHeader,
    pub patient: ObjId,
    pub items: ObjId,
}

impl Shape {
    /// Reads and checks the whole layout of `doc`, including that every item value is a string.
    pub(crate) fn read(doc: &Automerge) -> Result<Shape, SheetError> {
        let root = Reader { doc };
        let schema = root.int(&ROOT, key::SCHEMA, key::SCHEMA)?;
        if schema != SCHEMA_VERSION {
            return Err(SheetError::UnsupportedSchema {
                found: schema,
                supported: SCHEMA_VERSION,
            });
        }
        let id = root.sheet_id(&ROOT, key::ID, key::ID)?;
        let form = root.map(&ROOT, key::FORM, key::FORM)?;
        let disease = root.map(&ROOT, key::DISEASE, key::DISEASE)?;
        let header = SheetHeader {
            id,
            form_id: root.string(&form, key::FORM_ID, "form.id")?,
            form_version: root.string(&form, key::FORM_VERSION, "form.version")?,
            kokuji: root.u16(&disease, key::KOKUJI, "disease.kokuji")?,
            eda: root.u16(&disease, key::EDA, "disease.eda")?,
            disease: root.string(&disease, key::DISEASE_NAME, "disease.name")?,
            institution: root.string(&ROOT, key::INSTITUTION, key::INSTITUTION)?,
            doctor: root.optional_user(&ROOT, key::DOCTOR, key::DOCTOR)?,
            status: root.string(&ROOT, key::STATUS, key::STATUS)?,
            access_key: root.optional_string(&ROOT, key::ACCESS_KEY, key::ACCESS_KEY)?,
            carried_from: match root.optional_string(&ROOT, key::CARRIED_FROM, key::CARRIED_FROM)? {
                None => None,
                Some(text) => Some(text.parse().map_err(|_| SheetError::WrongType {
                    key: key::CARRIED_FROM.to_owned(),
                    expected: "a sheet id (hyphenated uuid)",
                })?),
            },
            created_ms: root.int(&ROOT, key::CREATED_MS, key::CREATED_MS)?,
        };
        let patient = root.map(&ROOT, key::PATIENT, key::PATIENT)?;
        let items = root.map(&ROOT, key::ITEMS, key::ITEMS)?;
        for (block, obj) in [(Block::Patient, &patient), (Block::Items, &items)] {
            for item in doc.map_range(obj, ..) {
                if !matches!(
                    item.value,
                    automerge::ValueRef::Scalar(automerge::ScalarValueRef::Str(_))
                ) {
                    return Err(SheetError::WrongType {
                        key: format!("{}.{}", block.root_key(), item.key),
                        expected: "a string",
                    });
                }
            }
        }
        crate::review::check(doc)?;
        Ok(Shape {
            header,
            patient,
            items,
        })
    }
}

/// Typed, checked reads of single keys; `path` names the key in error messages.
struct Reader<'a> {
    doc: &'a Automerge,
}

impl Reader<'_> {
    fn value(&self, obj: &ObjId, key: &str, path: &str) -> Result<Option<Value<'_>>, SheetError> {
        match self.doc.get(obj, key) {
            Ok(found) => Ok(found.map(|(value, _)| value)),
            Err(_) => Err(SheetError::WrongType {
                key: path.to_owned(),
                expected: "a readable value",
            }),
        }
    }

    fn required(&self, obj: &ObjId, key: &str, path: &str) -> Result<Value<'_>, SheetError> {
        self.value(obj, key, path)?
            .ok_or_else(|| SheetError::MissingKey {
                key: path.to_owned(),
            })
    }

    fn map(&self, obj: &ObjId, key: &str, path: &str) -> Result<ObjId, SheetError> {
        match self.doc.get(obj, key) {
            Ok(Some((Value::Object(ObjType::Map), id))) => Ok(id),
            Ok(None) => Err(SheetError::MissingKey {
                key: path.to_owned(),
            }),
            _ => Err(SheetError::WrongType {
                key: path.to_owned(),
                expected: "a map",
            }),
        }
    }

    fn string(&self, obj: &ObjId, key: &str, path: &str) -> Result<String, SheetError> {
        as_string(self.required(obj, key, path)?, path)
    }

    fn optional_string(
        &self,
        obj: &ObjId,
        key: &str,
        path: &str,
    ) -> Result<Option<String>, SheetError> {
        self.value(obj, key, path)?
            .map(|value| as_string(value, path))
            .transpose()
    }

    fn int(&self, obj: &ObjId, key: &str, path: &str) -> Result<i64, SheetError> {
        let wrong = || SheetError::WrongType {
            key: path.to_owned(),
            expected: "an integer",
        };
        match self.required(obj, key, path)? {
            Value::Scalar(scalar) => match scalar.as_ref() {
                ScalarValue::Int(n) => Ok(*n),
                ScalarValue::Uint(n) => i64::try_from(*n).map_err(|_| wrong()),
                _ => Err(wrong()),
            },
            Value::Object(_) => Err(wrong()),
        }
    }

    fn u16(&self, obj: &ObjId, key: &str, path: &str) -> Result<u16, SheetError> {
        u16::try_from(self.int(obj, key, path)?).map_err(|_| SheetError::WrongType {
            key: path.to_owned(),
            expected: "a whole number from 0 to 65535",
        })
    }

    fn optional_user(&self, obj: &ObjId, key: &str, path: &str) -> Result<Option<u64>, SheetError> {
        let wrong = || SheetError::WrongType {
            key: path.to_owned(),
            expected: "a user id (a non-negative integer)",
        };
        match self.value(obj, key, path)? {
            None => Ok(None),
            Some(Value::Scalar(scalar)) => match scalar.as_ref() {
                ScalarValue::Uint(n) => Ok(Some(*n)),
                ScalarValue::Int(n) => u64::try_from(*n).map(Some).map_err(|_| wrong()),
                _ => Err(wrong()),
            },
            Some(Value::Object(_)) => Err(wrong()),
        }
    }

    fn sheet_id(&self, obj: &ObjId, key: &str, path: &str) -> Result<SheetId, SheetError> {
        self.string(obj, key, path)?
            .parse()
            .map_err(|_| SheetError::WrongType {
                key: path.to_owned(),
                expected: "a sheet id (hyphenated uuid)",
            })
    }
}

fn as_string(value: Value<'_>, path: &str) -> Result<String, SheetError> {
    value.into_string().map_err(|_| SheetError::WrongType {
        key: path.to_owned(),
        expected: "a string",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patient_fields_map_to_the_patient_block_and_back() {
        assert_eq!(Block::of_field("patient.name"), (Block::Patient, "name"));
        assert_eq!(Block::of_field("shindan.1"), (Block::Items, "shindan.1"));
        assert_eq!(Block::of_field("patientish"), (Block::Items, "patientish"));
        assert_eq!(Block::Patient.field_id("name"), "patient.name");
        assert_eq!(Block::Items.field_id("shindan.1"), "shindan.1");
    }
}
