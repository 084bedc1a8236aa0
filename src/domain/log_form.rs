//! The form a run's changes take in the audit log. A night of new prices changes the same figure
//! of a stock in every list that holds it (a band, a top-N, a sector, a theme), and the
//! in-memory change carries it once per list, with the old figure beside it. The log stores
//! each (ticker, field) of the run once, in the run's values, and per list only what differs
//! from them (a rank, a new position, a reason other than `market_data`). Old figures are not
//! stored: replay never reads them.

use crate::domain::diff::{ChangedMember, Delta, EntryChange, ListDelta, Op};
use crate::domain::members::member_lists;
use crate::domain::reasons::ReasonCode;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};

/// The new member figures of one run, `{field: {ticker: value}}`, each stored once. Every
/// patched list of the run agrees with them, so replay may apply them to any of its members.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RunValues {
    by_field: BTreeMap<String, BTreeMap<String, Value>>,
}

impl RunValues {
    /// The value of `field` for `ticker`, when the run stored one.
    pub fn of(&self, ticker: &str, field: &str) -> Option<&Value> {
        self.by_field.get(field)?.get(ticker)
    }

    /// How many (ticker, field) values the run stored.
    pub fn len(&self) -> usize {
        self.by_field.values().map(BTreeMap::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.by_field.values().all(BTreeMap::is_empty)
    }

    /// Sets the fields `record` has to the run's values for `ticker`; never adds a field.
    pub fn revalue(&self, ticker: &str, record: &mut Map<String, Value>) {
        for (field, by_ticker) in &self.by_field {
            if let (Some(slot), Some(value)) = (record.get_mut(field), by_ticker.get(ticker)) {
                slot.clone_from(value);
            }
        }
    }
}

/// A run's deltas as the log stores them: the run's values, and one stored change per delta,
/// in delta order.
#[derive(Debug, Clone)]
pub struct LogForm<'d> {
    pub values: Option<RunValues>,
    pub changes: Vec<Cow<'d, EntryChange>>,
}

/// A delta that patches lists member by member, with the (ticker, record) of every member of
/// those lists after it.
fn patched_lists(delta: &Delta) -> Option<(&EntryChange, Vec<(&str, &Value)>)> {
    let change = &delta.change;
    if delta.op != Op::Update || change.value.is_some() || change.lists.is_empty() {
        return None;
    }
    let value = delta.value_after.as_deref()?;
    let records = member_lists(value)
        .into_iter()
        .filter(|(path, _)| change.lists.iter().any(|l| l.path == *path))
        .flat_map(|(_, members)| members.into_iter().map(|m| (m.ticker, m.record)))
        .collect();
    Some((change, records))
}

/// The (ticker, field) values every patched list of the run agrees on.
fn agreed_values(deltas: &[Delta]) -> RunValues {
    let mut candidates: HashMap<(&str, &str), &Value> = HashMap::new();
    let mut conflicts: HashSet<(&str, &str)> = HashSet::new();
    let patched: Vec<_> = deltas.iter().filter_map(patched_lists).collect();
    for (change, _) in &patched {
        for member in change.lists.iter().flat_map(|l| &l.changed) {
            for (field, value) in &member.after {
                let key = (member.ticker.as_str(), field.as_str());
                match candidates.get(&key) {
                    Some(seen) if *seen != value => {
                        conflicts.insert(key);
                    }
                    Some(_) => {}
                    None => {
                        candidates.insert(key, value);
                    }
                }
            }
        }
    }
    // Every member of every patched list, changed or not, must hold the value replay would set.
    for (_, records) in &patched {
        for (ticker, record) in records {
            let Some(fields) = record.as_object() else {
                continue;
            };
            for (field, value) in fields {
                let key = (*ticker, field.as_str());
                if candidates.get(&key).is_some_and(|agreed| *agreed != value) {
                    conflicts.insert(key);
                }
            }
        }
    }
    let mut values = RunValues::default();
    for ((ticker, field), value) in candidates {
        if !conflicts.contains(&(ticker, field)) {
            values
                .by_field
                .entry(field.to_owned())
                .or_default()
                .insert(ticker.to_owned(), value.clone());
        }
    }
    values
}

/// A changed member as stored: without the old figures or the fields the run's values hold.
/// `None` when nothing is left that replay or history needs.
fn stored_member(member: &ChangedMember, values: &RunValues) -> (Option<ChangedMember>, bool) {
    let mut after = member.after.clone();
    after.retain(|field, value| values.of(&member.ticker, field) != Some(value));
    let revalued = after.len() < member.after.len();
    let stored = ChangedMember {
        ticker: member.ticker.clone(),
        moved_to: member.moved_to,
        before: Map::new(),
        after,
        reason: member.reason,
    };
    let needed = stored.moved_to.is_some()
        || !stored.after.is_empty()
        || stored.reason != ReasonCode::MarketData;
    (needed.then_some(stored), revalued)
}

fn stored_change<'d>(change: &'d EntryChange, values: &RunValues) -> Cow<'d, EntryChange> {
    let has_members = change.lists.iter().any(|l| !l.changed.is_empty());
    if !has_members {
        return Cow::Borrowed(change);
    }
    let mut revalued = false;
    let lists = change
        .lists
        .iter()
        .map(|list| {
            let changed = list
                .changed
                .iter()
                .filter_map(|member| {
                    let (stored, took_values) = stored_member(member, values);
                    revalued |= took_values;
                    stored
                })
                .collect();
            ListDelta {
                path: list.path,
                len_after: list.len_after,
                added: list.added.clone(),
                removed: list.removed.clone(),
                changed,
            }
        })
        .collect();
    Cow::Owned(EntryChange {
        value: change.value.clone(),
        scalars: change.scalars.clone(),
        lists,
        duplicate_row: change.duplicate_row,
        held: change.held.clone(),
        revalued: change.value.is_none() && revalued,
        run_values: None,
    })
}

impl<'d> LogForm<'d> {
    /// The stored form of a run's deltas.
    pub fn of(deltas: &'d [Delta]) -> Self {
        let values = agreed_values(deltas);
        let changes = deltas
            .iter()
            .map(|d| stored_change(&d.change, &values))
            .collect();
        LogForm {
            values: (!values.is_empty()).then_some(values),
            changes,
        }
    }
}
