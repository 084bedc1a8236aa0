//! Replay: applying recorded entry changes to rebuild values. The law it keeps:
//! `apply(before, diff(before, after)) == after`, byte for byte, checked by hash.

use crate::domain::diff::{EntryChange, Op};
use crate::domain::log_form::RunValues;
use crate::domain::members::{list_mut, member_ticker};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap, HashSet};

/// Why a recorded change could not be applied: the log and the state it is applied to disagree.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplayError {
    #[error("an update or delete was recorded for an entry that did not exist at that point")]
    MissingBefore,
    #[error("a create carries no value")]
    MissingValue,
    #[error("member list {0:?} is missing from the value the change applies to")]
    MissingList(&'static str),
    #[error("the change places members inconsistently (position {0} twice or out of range)")]
    BadPosition(usize),
    #[error("member `{0}` to change is not in the list")]
    UnknownMember(String),
    #[error("the change takes its run's values, which were not read with it")]
    MissingRunValues,
}

/// Applies one recorded change. `None` means the entry does not exist (after a delete).
///
/// # Errors
/// A `ReplayError` when the change does not fit `before`.
pub fn apply_change(
    before: Option<&Value>,
    op: Op,
    change: &EntryChange,
) -> Result<Option<Value>, ReplayError> {
    apply_change_owned(before.cloned(), op, change)
}

/// As `apply_change`, consuming the value before (replay folds without copying entries).
///
/// # Errors
/// A `ReplayError` when the change does not fit `before`.
pub fn apply_change_owned(
    before: Option<Value>,
    op: Op,
    change: &EntryChange,
) -> Result<Option<Value>, ReplayError> {
    if change.duplicate_row {
        return before.map(Some).ok_or(ReplayError::MissingBefore);
    }
    match op {
        // A delete of a row the log never created (inserted by hand) leaves nothing, as before.
        Op::Delete => Ok(None),
        Op::Create => change
            .value
            .as_deref()
            .cloned()
            .map(Some)
            .ok_or(ReplayError::MissingValue),
        Op::Update => {
            if let Some(value) = &change.value {
                return Ok(Some(Value::clone(value)));
            }
            let mut value = before.ok_or(ReplayError::MissingBefore)?;
            if let Some(scalars) = &change.scalars {
                set_scalars(&mut value, scalars);
            }
            let run_values = if change.revalued {
                let values = change.run_values.as_deref();
                Some(values.ok_or(ReplayError::MissingRunValues)?)
            } else {
                None
            };
            for list in &change.lists {
                let items = list_mut(&mut value, list.path).ok_or(ReplayError::MissingList(
                    list.path.field().unwrap_or("root"),
                ))?;
                *items = rebuild_list(std::mem::take(items), list, run_values)?;
            }
            Ok(Some(value))
        }
    }
}

fn set_scalars(value: &mut Value, scalars: &Map<String, Value>) {
    if let Value::Object(map) = value {
        map.retain(|k, v| matches!(k.as_str(), "stocks" | "etfs") && v.is_array());
        for (k, v) in scalars {
            map.insert(k.clone(), v.clone());
        }
    }
}

fn rebuild_list(
    old: Vec<Value>,
    delta: &crate::domain::diff::ListDelta,
    run_values: Option<&RunValues>,
) -> Result<Vec<Value>, ReplayError> {
    let removed: HashSet<&str> = delta.removed.iter().map(|m| m.ticker.as_str()).collect();
    let changes: HashMap<&str, &crate::domain::diff::ChangedMember> = delta
        .changed
        .iter()
        .map(|c| (c.ticker.as_str(), c))
        .collect();
    let mut slots: BTreeMap<usize, Value> = BTreeMap::new();
    let place = |position: usize, item: Value, slots: &mut BTreeMap<usize, Value>| {
        if position == 0 || position > delta.len_after || slots.insert(position, item).is_some() {
            return Err(ReplayError::BadPosition(position));
        }
        Ok(())
    };
    for added in &delta.added {
        let record = added
            .record
            .clone()
            .unwrap_or_else(|| Value::String(added.ticker.clone()));
        place(added.position, record, &mut slots)?;
    }
    let mut unplaced = Vec::new();
    let mut seen_changes: HashSet<String> = HashSet::new();
    for mut item in old {
        let Some(ticker) = member_ticker(&item).map(str::to_owned) else {
            continue;
        };
        if removed.contains(ticker.as_str()) {
            continue;
        }
        if let (Some(values), Value::Object(record)) = (run_values, &mut item) {
            values.revalue(&ticker, record);
        }
        if let Some(change) = changes.get(ticker.as_str()) {
            seen_changes.insert(ticker.clone());
            if let Value::Object(record) = &mut item {
                for (k, v) in &change.after {
                    record.insert(k.clone(), v.clone());
                }
            }
            if let Some(position) = change.moved_to {
                place(position, item, &mut slots)?;
                continue;
            }
        }
        unplaced.push(item);
    }
    if let Some(missing) = delta
        .changed
        .iter()
        .find(|c| !seen_changes.contains(&c.ticker))
    {
        return Err(ReplayError::UnknownMember(missing.ticker.clone()));
    }
    let mut rest = unplaced.into_iter();
    let mut out = Vec::with_capacity(delta.len_after);
    for position in 1..=delta.len_after {
        match slots.remove(&position) {
            Some(item) => out.push(item),
            None => out.push(rest.next().ok_or(ReplayError::BadPosition(position))?),
        }
    }
    if rest.next().is_some() {
        return Err(ReplayError::BadPosition(delta.len_after + 1));
    }
    Ok(out)
}

/// A replayed state: every live owned entry with its family and value.
pub type ReplayedCatalog = std::collections::BTreeMap<
    crate::domain::types::EntryKey,
    (crate::domain::types::Family, Value),
>;

/// One logged event, as replay needs it.
#[derive(Debug, Clone, Copy)]
pub struct ReplayEvent<'a> {
    pub seq: i64,
    pub key: &'a crate::domain::types::EntryKey,
    pub family: crate::domain::types::Family,
    pub op: Op,
    pub change: &'a EntryChange,
    pub hash_after: Option<crate::domain::fingerprint::ContentHash>,
}

/// Why a fold stopped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FoldError {
    #[error("event {seq} ({key}) does not apply: {error}")]
    Apply {
        seq: i64,
        key: String,
        error: ReplayError,
    },
    #[error("event {seq} ({key}) rebuilds a value whose hash {actual} is not the logged {logged}")]
    HashMismatch {
        seq: i64,
        key: String,
        logged: String,
        actual: String,
    },
}

/// Applies `events` in order to `state`, checking every rebuilt value against the hash the log
/// recorded for it.
///
/// # Errors
/// The first event that does not apply or whose result does not match its logged hash.
pub fn fold<'a>(
    state: &mut ReplayedCatalog,
    events: impl IntoIterator<Item = ReplayEvent<'a>>,
) -> Result<(), FoldError> {
    for event in events {
        let before = state.remove(event.key).map(|(_, v)| v);
        let after = apply_change_owned(before, event.op, event.change).map_err(|error| {
            FoldError::Apply {
                seq: event.seq,
                key: event.key.to_string(),
                error,
            }
        })?;
        if let Some(value) = after {
            if !event.change.duplicate_row {
                let actual = crate::domain::fingerprint::hash_value(&value);
                if Some(actual) != event.hash_after {
                    return Err(FoldError::HashMismatch {
                        seq: event.seq,
                        key: event.key.to_string(),
                        logged: event.hash_after.map(|h| h.to_hex()).unwrap_or_default(),
                        actual: actual.to_hex(),
                    });
                }
            }
            state.insert(event.key.clone(), (event.family, value));
        }
    }
    Ok(())
}
