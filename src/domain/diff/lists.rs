//! Member lists lined up before and after a change, and their member-level deltas.

use super::{AddedMember, ChangedMember, ListDelta, RemovedMember};
use crate::domain::members::{member_lists, ListPath, Member};
use crate::domain::reasons::{ReasonCode, ReasonContext};
use crate::domain::types::Family;
use serde_json::{Map, Value};
use std::collections::{BTreeSet, HashMap};

/// One member list before and after.
pub(super) type ListPair<'a> = (ListPath, Vec<Member<'a>>, Vec<Member<'a>>);

/// The member lists of `before` and `after` line up (same paths, unique tickers), so a
/// member-level patch can describe the change.
pub(super) fn same_shape<'a>(before: &'a Value, after: &'a Value) -> Option<Vec<ListPair<'a>>> {
    if before.is_array() != after.is_array() || before.is_object() != after.is_object() {
        return None;
    }
    let old = member_lists(before);
    let new = member_lists(after);
    // A `stocks` / `etfs` array that is not a list of members (a hand-edited row) cannot be
    // patched member by member.
    let arrays = |v: &Value| {
        ["stocks", "etfs"]
            .iter()
            .filter(|k| v.get(**k).is_some_and(Value::is_array))
            .count()
    };
    if before.is_object() && (arrays(before) != old.len() || arrays(after) != new.len()) {
        return None;
    }
    if old.len() != new.len() || (old.is_empty() && !before.is_object()) {
        return None;
    }
    let mut pairs = Vec::new();
    for ((p1, m1), (p2, m2)) in old.into_iter().zip(new) {
        let unique =
            |m: &[Member<'_>]| m.iter().map(|x| x.ticker).collect::<BTreeSet<_>>().len() == m.len();
        if p1 != p2 || !unique(&m1) || !unique(&m2) {
            return None;
        }
        let by_ticker: HashMap<&str, &Value> = m1.iter().map(|m| (m.ticker, m.record)).collect();
        let records_line_up = m2.iter().all(|m| {
            by_ticker
                .get(m.ticker)
                .is_none_or(|old| same_fields(old, m.record))
        });
        if !records_line_up {
            return None;
        }
        pairs.push((p1, m1, m2));
    }
    // A value whose non-list parts are not plain scalars (stats) is replaced whole.
    if before.is_object() && pairs.is_empty() {
        return None;
    }
    Some(pairs)
}

pub(super) fn list_delta(
    family: Family,
    entry: &str,
    path: ListPath,
    old: &[Member<'_>],
    new: &[Member<'_>],
    ctx: &ReasonContext<'_>,
    force: Option<ReasonCode>,
) -> ListDelta {
    let old_by: HashMap<&str, &Member<'_>> = old.iter().map(|m| (m.ticker, m)).collect();
    let new_by: HashMap<&str, &Member<'_>> = new.iter().map(|m| (m.ticker, m)).collect();

    // Kept members keep their old relative order unless something moved; only then do
    // positions need recording.
    let old_kept: Vec<&str> = old
        .iter()
        .map(|m| m.ticker)
        .filter(|t| new_by.contains_key(t))
        .collect();
    let new_kept: Vec<&str> = new
        .iter()
        .map(|m| m.ticker)
        .filter(|t| old_by.contains_key(t))
        .collect();
    let order_kept = old_kept == new_kept;

    let added = new
        .iter()
        .filter(|m| !old_by.contains_key(m.ticker))
        .map(|m| AddedMember {
            ticker: m.ticker.to_owned(),
            position: m.position,
            record: Some(m.record.clone()),
            reason: ctx.added(family, entry, m.ticker, m.position, force),
        })
        .collect();
    let removed = old
        .iter()
        .filter(|m| !new_by.contains_key(m.ticker))
        .map(|m| RemovedMember {
            ticker: m.ticker.to_owned(),
            position: m.position,
            reason: ctx.removed(family, entry, m.ticker, m.record, force),
        })
        .collect();
    let changed = new
        .iter()
        .filter_map(|m| {
            let was = old_by.get(m.ticker)?;
            let moved_to = (!order_kept && was.position != m.position).then_some(m.position);
            let (before, after) = record_diff(was.record, m.record);
            if moved_to.is_none() && after.is_empty() {
                return None;
            }
            let fields: Vec<&str> = after.keys().map(String::as_str).collect();
            let reason = ctx.changed(&fields, moved_to.is_some(), force);
            Some(ChangedMember {
                ticker: m.ticker.to_owned(),
                moved_to,
                before,
                after,
                reason,
            })
        })
        .collect();
    ListDelta {
        path,
        len_after: new.len(),
        added,
        removed,
        changed,
    }
}

/// The fields of two records that differ, before and after. Plain ticker strings have none.
fn record_diff(before: &Value, after: &Value) -> (Map<String, Value>, Map<String, Value>) {
    let (Some(b), Some(a)) = (before.as_object(), after.as_object()) else {
        return (Map::new(), Map::new());
    };
    let mut old = Map::new();
    let mut new = Map::new();
    for (field, value) in a {
        if b.get(field) != Some(value) {
            old.insert(field.clone(), b.get(field).cloned().unwrap_or(Value::Null));
            new.insert(field.clone(), value.clone());
        }
    }
    (old, new)
}

/// Whether two records have the same field names, so a field-level patch can rebuild one from
/// the other.
fn same_fields(before: &Value, after: &Value) -> bool {
    match (before.as_object(), after.as_object()) {
        (Some(b), Some(a)) => b.len() == a.len() && a.keys().all(|k| b.contains_key(k)),
        (None, None) => before.is_string() && after.is_string(),
        _ => false,
    }
}
