//! Item-level comparison of two value maps (field id -> value): two versions of one sheet, or a
//! sheet and the sheet it was carried forward from.
//!
//! This module only compares values that it is given; it must never read documents, interpret
//! or normalise values (the caller normalises them), or reorder the result away from field-id
//! order.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// One item whose value differs between two versions. `None` means the item had no value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldChange {
    pub field: String,
    pub before: Option<String>,
    pub after: Option<String>,
}

/// Item-level differences between two value maps (for example this sheet vs the sheet it was
/// carried forward from), sorted by field id. Items with equal values are not listed.
pub fn compare(
    before: &BTreeMap<String, String>,
    after: &BTreeMap<String, String>,
) -> Vec<FieldChange> {
    let fields: BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    fields
        .into_iter()
        .filter_map(|field| {
            let (old, new) = (before.get(field), after.get(field));
            (old != new).then(|| FieldChange {
                field: field.clone(),
                before: old.cloned(),
                after: new.cloned(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn change(field: &str, before: Option<&str>, after: Option<&str>) -> FieldChange {
        FieldChange {
            field: field.to_owned(),
            before: before.map(str::to_owned),
            after: after.map(str::to_owned),
        }
    }

    #[test]
    fn compare_lists_added_removed_and_changed_items_sorted_by_field() {
        let before = map(&[
            ("a.same", "1"),
            ("b.removed", "x"),
            ("c.changed", "old"),
            ("patient.name", "山田"),
        ]);
        let after = map(&[
            ("a.same", "1"),
            ("c.changed", "new"),
            ("d.added", "y"),
            ("patient.name", "山田"),
            ("z.added", "最後"),
        ]);
        assert_eq!(
            compare(&before, &after),
            vec![
                change("b.removed", Some("x"), None),
                change("c.changed", Some("old"), Some("new")),
                change("d.added", None, Some("y")),
                change("z.added", None, Some("最後")),
            ]
        );
    }

    #[test]
    fn compare_of_equal_or_empty_maps_is_empty() {
        let values = map(&[("a", "1"), ("b", "2")]);
        assert!(compare(&values, &values).is_empty());
        assert!(compare(&BTreeMap::new(), &BTreeMap::new()).is_empty());
    }

    #[test]
    fn compare_from_empty_lists_everything_as_added_and_back_as_removed() {
        let values = map(&[("a", "1"), ("b", "2")]);
        assert_eq!(
            compare(&BTreeMap::new(), &values),
            vec![change("a", None, Some("1")), change("b", None, Some("2"))]
        );
        assert_eq!(
            compare(&values, &BTreeMap::new()),
            vec![change("a", Some("1"), None), change("b", Some("2"), None)]
        );
    }

    #[test]
    fn empty_string_is_a_value_distinct_from_no_value() {
        assert_eq!(
            compare(&BTreeMap::new(), &map(&[("a", "")])),
            vec![change("a", None, Some(""))]
        );
    }
}
