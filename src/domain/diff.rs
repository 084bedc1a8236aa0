//! Desired catalog versus current rows: which entries to create, update and delete, with
//! member-level detail (added with their records, removed, re-ranked or re-valued) and a reason
//! per member change. The detail doubles as the patch the audit log stores and replay applies.

use crate::domain::catalog::Catalog;
use crate::domain::fingerprint::{hash_value, ContentHash};
use crate::domain::log_form::RunValues;
use crate::domain::members::{member_lists, scalar_fields, ListPath};
use crate::domain::reasons::{Reason, ReasonCode, ReasonContext};
use crate::domain::types::{EntryKey, Family};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

/// A row currently in `cache_entries`, inside an owned scope of the job's environment.
#[derive(Debug, Clone, PartialEq)]
pub struct CurrentEntry {
    pub id: i64,
    pub key: EntryKey,
    pub value: Value,
}

/// What happens to an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    Create,
    Update,
    Delete,
}

impl Op {
    /// `created` / `updated` / `deleted`, as events and the audit log name them.
    pub fn past_tense(self) -> &'static str {
        match self {
            Op::Create => "created",
            Op::Update => "updated",
            Op::Delete => "deleted",
        }
    }
}

/// A member that joined.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AddedMember {
    pub ticker: String,
    pub position: usize,
    /// The member's record; left out when the delta carries the whole new value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<Value>,
    pub reason: Reason,
}

/// A member that left.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RemovedMember {
    pub ticker: String,
    pub position: usize,
    pub reason: Reason,
}

/// A member that stayed but moved or whose record changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangedMember {
    pub ticker: String,
    /// The new position when it is not implied by the old order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub moved_to: Option<usize>,
    /// Changed record fields, before and after.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub before: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub after: Map<String, Value>,
    pub reason: ReasonCode,
}

impl ChangedMember {
    /// The rank before and after, when the rank changed.
    pub fn rank_change(&self) -> Option<(i64, i64)> {
        Some((
            self.before.get("rank")?.as_i64()?,
            self.after.get("rank")?.as_i64()?,
        ))
    }

    /// Whether the member's rank or order changed.
    pub fn is_rerank(&self) -> bool {
        self.rank_change().is_some() || self.moved_to.is_some()
    }
}

/// The member-level changes in one list of an entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ListDelta {
    pub path: ListPath,
    /// Length of the list after the change, so replay can place members.
    pub len_after: usize,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub added: Vec<AddedMember>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removed: Vec<RemovedMember>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changed: Vec<ChangedMember>,
}

impl ListDelta {
    fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }
}

/// What changed inside an entry: enough to rebuild the new value from the old one exactly.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct EntryChange {
    /// The whole new value, for creates and for updates that change the value's shape.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Arc<Value>>,
    /// The new top-level fields other than member lists (`count`, `sector`, …), when they changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scalars: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lists: Vec<ListDelta>,
    /// A delete of a second row with the same identity as a live one (tables without a unique
    /// constraint collect them). It does not change the entry's state.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub duplicate_row: bool,
    /// Members that stayed only because of turnover banding, with why. Not part of the patch:
    /// replay ignores it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub held: Vec<HeldMember>,
    /// As logged: the change's lists take the run's values (`log_form`) before their own member
    /// changes, which then hold only what differs from them.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub revalued: bool,
    /// The run's values, attached by the log reader to a `revalued` change.
    #[serde(skip)]
    pub run_values: Option<Arc<RunValues>>,
}

impl EntryChange {
    /// Tickers added across lists (deduplicated, sorted).
    pub fn added_tickers(&self) -> Vec<String> {
        self.tickers(|l| l.added.iter().map(|m| m.ticker.clone()).collect())
    }

    /// Tickers removed across lists (deduplicated, sorted).
    pub fn removed_tickers(&self) -> Vec<String> {
        self.tickers(|l| l.removed.iter().map(|m| m.ticker.clone()).collect())
    }

    fn tickers(&self, pick: impl Fn(&ListDelta) -> Vec<String>) -> Vec<String> {
        self.lists
            .iter()
            .flat_map(pick)
            .collect::<BTreeSet<String>>()
            .into_iter()
            .collect()
    }

    /// Members re-ranked across lists.
    pub fn reranked(&self) -> impl Iterator<Item = &ChangedMember> {
        self.lists
            .iter()
            .flat_map(|l| l.changed.iter())
            .filter(|c| c.is_rerank())
    }

    /// Members whose record changed without a rank change.
    pub fn revalued_count(&self) -> usize {
        self.lists
            .iter()
            .flat_map(|l| l.changed.iter())
            .filter(|c| !c.is_rerank())
            .count()
    }

    /// No member joined, left or moved: only figures or top-level fields changed.
    pub fn is_metadata_only(&self) -> bool {
        self.value.is_none()
            && self.lists.iter().all(|l| {
                l.added.is_empty()
                    && l.removed.is_empty()
                    && l.changed.iter().all(|c| !c.is_rerank())
            })
    }
}

/// One entry delta.
#[derive(Debug, Clone, PartialEq)]
pub struct Delta {
    pub op: Op,
    pub family: Family,
    pub key: EntryKey,
    /// The live row's id (updates and deletes).
    pub row_id: Option<i64>,
    pub hash_before: Option<ContentHash>,
    pub hash_after: Option<ContentHash>,
    /// The new value (creates and updates), shared with the catalog.
    pub value_after: Option<Arc<Value>>,
    pub change: EntryChange,
}

/// Per-entry reasons forced by the caller (drift reconciliation).
pub type ForcedReasons = HashMap<EntryKey, ReasonCode>;

/// What the caller already knows about the live rows.
#[derive(Debug, Clone, Default)]
pub struct LiveRowFacts {
    /// Reasons forced on every member change of an entry (drift reconciliation).
    pub forced: ForcedReasons,
    /// Desired entries whose live row is known to hold exactly the desired value (by digest),
    /// so their values were not loaded.
    pub unchanged: HashSet<EntryKey>,
}

/// Compares the desired catalog with the current rows of its scopes. Rows outside the catalog's
/// scopes are ignored; duplicate rows of one identity beyond the lowest id are deleted.
pub fn diff(
    catalog: &Catalog,
    current: &[CurrentEntry],
    ctx: &ReasonContext<'_>,
    facts: &LiveRowFacts,
) -> Vec<Delta> {
    let forced = &facts.forced;
    let mut live: BTreeMap<&EntryKey, &CurrentEntry> = BTreeMap::new();
    let mut duplicates: Vec<&CurrentEntry> = Vec::new();
    let mut sorted: Vec<&CurrentEntry> = current
        .iter()
        .filter(|c| catalog.owner_of(&c.key).is_some())
        .collect();
    sorted.sort_by_key(|c| c.id);
    for entry in sorted {
        if live.contains_key(&entry.key) {
            duplicates.push(entry);
        } else {
            live.insert(&entry.key, entry);
        }
    }

    let mut deltas = Vec::new();
    for (key, desired) in &catalog.entries {
        if facts.unchanged.contains(key) {
            continue;
        }
        let force = forced.get(key).copied();
        match live.get(key) {
            None => deltas.push(Delta {
                op: Op::Create,
                family: desired.family,
                key: key.clone(),
                row_id: None,
                hash_before: None,
                hash_after: Some(desired.hash),
                value_after: Some(Arc::clone(&desired.value)),
                change: created(desired.family, &key.key, &desired.value, ctx, force),
            }),
            Some(row) => {
                let before = hash_value(&row.value);
                if before == desired.hash {
                    continue;
                }
                deltas.push(Delta {
                    op: Op::Update,
                    family: desired.family,
                    key: key.clone(),
                    row_id: Some(row.id),
                    hash_before: Some(before),
                    hash_after: Some(desired.hash),
                    value_after: Some(Arc::clone(&desired.value)),
                    change: {
                        let mut change = updated(
                            desired.family,
                            &key.key,
                            &row.value,
                            &desired.value,
                            ctx,
                            force,
                        );
                        if force == Some(ReasonCode::ManualDrift) {
                            // The patch is against the hand-edited row, which the log never saw:
                            // replay needs the whole value.
                            change.value = Some(Arc::clone(&desired.value));
                        }
                        change
                    },
                });
            }
        }
    }
    let stale = live
        .values()
        .filter(|row| !catalog.entries.contains_key(&row.key));
    let duplicate_ids: BTreeSet<i64> = duplicates.iter().map(|d| d.id).collect();
    for row in stale.copied().chain(duplicates) {
        let family = catalog
            .owner_of(&row.key)
            .expect("rows outside owned scopes were filtered out");
        let mut change = deleted(
            family,
            &row.key.key,
            &row.value,
            ctx,
            forced.get(&row.key).copied(),
        );
        change.duplicate_row = duplicate_ids.contains(&row.id);
        deltas.push(Delta {
            op: Op::Delete,
            family,
            key: row.key.clone(),
            row_id: Some(row.id),
            hash_before: Some(hash_value(&row.value)),
            hash_after: None,
            value_after: None,
            change,
        });
    }
    deltas
}

fn created(
    family: Family,
    entry: &str,
    value: &Arc<Value>,
    ctx: &ReasonContext<'_>,
    force: Option<ReasonCode>,
) -> EntryChange {
    let lists = member_lists(value)
        .into_iter()
        .map(|(path, members)| ListDelta {
            path,
            len_after: members.len(),
            added: members
                .iter()
                .map(|m| {
                    // A new entry stores its whole value; the reason code per member is kept but
                    // not the figures behind it, which the value already holds. A rename's
                    // detail is no figure: history follows it from the new ticker to the old.
                    let mut reason = ctx.built(family, entry, m.ticker, m.position, force);
                    if reason.code != ReasonCode::Renamed {
                        reason.detail = Value::Null;
                    }
                    AddedMember {
                        ticker: m.ticker.to_owned(),
                        position: m.position,
                        record: None,
                        reason,
                    }
                })
                .collect(),
            removed: Vec::new(),
            changed: Vec::new(),
        })
        .collect();
    EntryChange {
        value: Some(Arc::clone(value)),
        lists,
        ..EntryChange::default()
    }
}

fn deleted(
    family: Family,
    entry: &str,
    value: &Value,
    ctx: &ReasonContext<'_>,
    force: Option<ReasonCode>,
) -> EntryChange {
    let lists = member_lists(value)
        .into_iter()
        .map(|(path, members)| ListDelta {
            path,
            len_after: 0,
            added: Vec::new(),
            removed: members
                .iter()
                .map(|m| RemovedMember {
                    ticker: m.ticker.to_owned(),
                    position: m.position,
                    reason: ctx.removed(family, entry, m.ticker, m.record, force),
                })
                .collect(),
            changed: Vec::new(),
        })
        .collect();
    EntryChange {
        lists,
        ..EntryChange::default()
    }
}

fn updated(
    family: Family,
    entry: &str,
    before: &Value,
    after: &Value,
    ctx: &ReasonContext<'_>,
    force: Option<ReasonCode>,
) -> EntryChange {
    let Some(pairs) = same_shape(before, after) else {
        // The shape changed (a legacy row, or a stats value): store the new value whole, and
        // still report the members that joined and left.
        let mut change = created(family, entry, &Arc::new(after.clone()), ctx, force);
        let removed = deleted(family, entry, before, ctx, force);
        let kept: BTreeSet<String> = change.added_tickers().into_iter().collect();
        let was: BTreeSet<String> = removed.removed_tickers().into_iter().collect();
        for list in &mut change.lists {
            list.added.retain(|m| !was.contains(&m.ticker));
        }
        for mut list in removed.lists {
            list.removed.retain(|m| !kept.contains(&m.ticker));
            list.len_after = 0;
            if !list.is_empty() {
                change.lists.push(list);
            }
        }
        change.lists.retain(|l| !l.is_empty());
        return change;
    };

    let scalars_before = scalar_fields(before);
    let scalars_after = scalar_fields(after);
    let lists = pairs
        .into_iter()
        .map(|(path, old, new)| list_delta(family, entry, path, &old, &new, ctx, force))
        .filter(|l| !l.is_empty())
        .collect();
    EntryChange {
        scalars: (scalars_before != scalars_after).then_some(scalars_after),
        lists,
        ..EntryChange::default()
    }
}

/// Each ticker's record as the live table shows it, from any owned entry that holds records
/// (the market-cap bands cover nearly every stock). Reason inference uses it as "before".
pub fn previous_records(current: &[CurrentEntry]) -> HashMap<String, Value> {
    let mut previous = HashMap::new();
    for entry in current {
        for (_, members) in member_lists(&entry.value) {
            for m in members {
                if m.record.is_object() && m.record.get("market_cap").is_some() {
                    previous
                        .entry(m.ticker.to_owned())
                        .or_insert_with(|| m.record.clone());
                }
            }
        }
    }
    previous
}

mod held;
mod lists;
pub use held::{mark_held, HeldMember};
use lists::{list_delta, same_shape};

#[cfg(test)]
mod tests;
