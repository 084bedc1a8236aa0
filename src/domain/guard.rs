//! Guard rails (SPEC §10): decide, before anything is written, whether a plan may be applied.
//! Each refusal names what tripped and what would have changed. Pure: the caller passes the
//! plan, the current rows and the input figures.

use crate::domain::diff::{CurrentEntry, Delta, Op};
use crate::domain::members::{member_lists, ListPath};
use crate::domain::types::{EntryKey, Family};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet};

/// Thresholds of one family.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FamilyGuard {
    /// Refuse when an entry that has members would be left with none (or deleted).
    pub refuse_empty: bool,
    /// Refuse when an entry loses more than this share of its members (0.0–1.0).
    pub max_removed_share: f64,
}

/// Guard-rail settings; `[guards]` in the TOML file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GuardConfig {
    /// Refuse when the as-of date is more than this many days before the latest price date.
    pub max_as_of_lag_days: i64,
    /// Refuse when the as-of date is more than this many days before today (off when absent;
    /// the pipeline sets it).
    pub max_age_days: Option<i64>,
    /// Refuse when more than this share of active symbols have no close on the as-of date
    /// (import not finished).
    pub max_missing_close_share: f64,
    /// Refuse when a run would delete more entries than this.
    pub max_deleted_entries: usize,
    /// Thresholds for families without their own.
    pub default: FamilyGuard,
    /// Per-family thresholds, by family name.
    pub families: BTreeMap<String, FamilyGuard>,
}

impl Default for GuardConfig {
    fn default() -> Self {
        // Recent IPOs and themes swing or run empty legitimately; a sector or band losing more
        // than half its members in one night is a data problem.
        let swinging = FamilyGuard {
            refuse_empty: false,
            max_removed_share: 1.0,
        };
        let mut families = BTreeMap::new();
        families.insert(Family::Ipos.as_str().to_owned(), swinging);
        families.insert(Family::Themes.as_str().to_owned(), swinging);
        families.insert(
            Family::Etfs.as_str().to_owned(),
            FamilyGuard {
                refuse_empty: true,
                max_removed_share: 0.5,
            },
        );
        Self {
            max_as_of_lag_days: 5,
            max_age_days: None,
            max_missing_close_share: 0.2,
            max_deleted_entries: 5,
            default: FamilyGuard {
                refuse_empty: true,
                max_removed_share: 0.5,
            },
            families,
        }
    }
}

impl GuardConfig {
    /// Reads the `[guards]` table of the TOML file over the defaults.
    ///
    /// # Errors
    /// The TOML error text, naming the unknown or mistyped key.
    pub fn from_toml(table: &toml::Table) -> Result<Self, String> {
        let mut merged =
            toml::Table::try_from(GuardConfig::default()).map_err(|e| e.to_string())?;
        for (k, v) in table {
            if k == "families" {
                let base = merged
                    .entry("families")
                    .or_insert_with(|| toml::Value::Table(toml::Table::new()));
                if let (Some(base), Some(extra)) = (base.as_table_mut(), v.as_table()) {
                    for (family, guard) in extra {
                        Family::parse(family)?;
                        base.insert(family.clone(), guard.clone());
                    }
                }
            } else {
                merged.insert(k.clone(), v.clone());
            }
        }
        let config: GuardConfig = merged
            .try_into()
            .map_err(|e: toml::de::Error| e.to_string())?;
        config.validate()?;
        Ok(config)
    }

    /// Checks each setting against its allowed range: shares in [0, 1], day counts not
    /// negative.
    ///
    /// # Errors
    /// Names the key, the value found and the allowed range.
    pub fn validate(&self) -> Result<(), String> {
        let mut shares = vec![
            (
                "max_missing_close_share".to_owned(),
                self.max_missing_close_share,
            ),
            (
                "default.max_removed_share".to_owned(),
                self.default.max_removed_share,
            ),
        ];
        for (family, guard) in &self.families {
            shares.push((
                format!("families.{family}.max_removed_share"),
                guard.max_removed_share,
            ));
        }
        for (key, share) in shares {
            if !(0.0..=1.0).contains(&share) {
                return Err(format!(
                    "{key} = {share} is outside the allowed range [0, 1]"
                ));
            }
        }
        let days = [
            ("max_as_of_lag_days", Some(self.max_as_of_lag_days)),
            ("max_age_days", self.max_age_days),
        ];
        for (key, value) in days {
            if let Some(days) = value.filter(|d| !(0..=MAX_GUARD_DAYS).contains(d)) {
                return Err(format!(
                    "{key} = {days} is outside the allowed range 0..={MAX_GUARD_DAYS} days"
                ));
            }
        }
        Ok(())
    }

    fn for_family(&self, family: Family) -> FamilyGuard {
        self.families
            .get(family.as_str())
            .copied()
            .unwrap_or(self.default)
    }
}

/// Longest lag or age a guard may allow: ten years (more would only overflow date arithmetic).
pub const MAX_GUARD_DAYS: i64 = 3650;

/// One tripped guard rail.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "guard", rename_all = "snake_case")]
pub enum Refusal {
    StaleAsOf {
        as_of: NaiveDate,
        latest_price_date: NaiveDate,
        max_lag_days: i64,
    },
    TooOld {
        as_of: NaiveDate,
        today: NaiveDate,
        max_age_days: i64,
    },
    ImportIncomplete {
        as_of: NaiveDate,
        active_symbols: usize,
        without_close: usize,
        max_share: f64,
    },
    WouldEmpty {
        entry: String,
        members_before: usize,
    },
    MassRemoval {
        entry: String,
        members_before: usize,
        removed: usize,
        max_share: f64,
    },
    MassDeletion {
        entries: Vec<String>,
        max_deleted: usize,
    },
}

impl Refusal {
    /// Whether the refusal is about the input data (staleness) rather than the size of the change.
    pub fn is_about_input(&self) -> bool {
        matches!(
            self,
            Refusal::StaleAsOf { .. } | Refusal::TooOld { .. } | Refusal::ImportIncomplete { .. }
        )
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::StaleAsOf { as_of, latest_price_date, max_lag_days } => write!(
                f,
                "as-of {as_of} is more than {max_lag_days} days older than the latest prices ({latest_price_date})"
            ),
            Refusal::TooOld { as_of, today, max_age_days } => {
                write!(f, "as-of {as_of} is more than {max_age_days} days before today ({today})")
            }
            Refusal::ImportIncomplete { as_of, active_symbols, without_close, max_share } => write!(
                f,
                "{without_close} of {active_symbols} active symbols have no close on {as_of} (more than {:.0}%): import not finished?",
                max_share * 100.0
            ),
            Refusal::WouldEmpty { entry, members_before } => {
                write!(f, "{entry} would lose all {members_before} members")
            }
            Refusal::MassRemoval { entry, members_before, removed, max_share } => write!(
                f,
                "{entry} would lose {removed} of {members_before} members (more than {:.0}%)",
                max_share * 100.0
            ),
            Refusal::MassDeletion { entries, max_deleted } => write!(
                f,
                "{} entries would be deleted at once (more than {max_deleted}): {}",
                entries.len(),
                entries.join(", ")
            ),
        }
    }
}

/// Input figures the staleness guards read.
#[derive(Debug, Clone, Copy)]
pub struct InputFreshness {
    pub as_of: NaiveDate,
    pub latest_price_date: Option<NaiveDate>,
    pub today: NaiveDate,
    pub active_symbols: usize,
    pub active_without_close_on_as_of: usize,
}

/// The audited state of the entries whose live row differs from the log (drift): the value the
/// log last recorded for each, `None` when the log holds none (a row inserted by hand).
pub type AuditedDrift = HashMap<EntryKey, Option<Value>>;

/// Every guard rail the plan trips, in a stable order. Empty means it may be applied.
///
/// Each delta is judged as the job's own change: from the audited state (`audited` for drifted
/// rows, the live row otherwise) to the desired value. A hand edit never trips a guard by
/// itself, and a hand-inserted row the job deletes is not counted as a deletion; a genuine mass
/// change is refused whatever was edited.
pub fn check(
    config: &GuardConfig,
    input: &InputFreshness,
    deltas: &[Delta],
    current: &[CurrentEntry],
    audited: &AuditedDrift,
) -> Vec<Refusal> {
    let mut refusals = Vec::new();
    if let Some(latest) = input.latest_price_date {
        if (latest - input.as_of).num_days() > config.max_as_of_lag_days {
            refusals.push(Refusal::StaleAsOf {
                as_of: input.as_of,
                latest_price_date: latest,
                max_lag_days: config.max_as_of_lag_days,
            });
        }
    }
    if let Some(max_age) = config.max_age_days {
        if (input.today - input.as_of).num_days() > max_age {
            refusals.push(Refusal::TooOld {
                as_of: input.as_of,
                today: input.today,
                max_age_days: max_age,
            });
        }
    }
    if input.active_symbols > 0 {
        let share = input.active_without_close_on_as_of as f64 / input.active_symbols as f64;
        if share > config.max_missing_close_share {
            refusals.push(Refusal::ImportIncomplete {
                as_of: input.as_of,
                active_symbols: input.active_symbols,
                without_close: input.active_without_close_on_as_of,
                max_share: config.max_missing_close_share,
            });
        }
    }

    let live: HashMap<&EntryKey, &Value> = current.iter().map(|c| (&c.key, &c.value)).collect();
    let mut deleted = Vec::new();
    for delta in deltas.iter().filter(|d| !d.change.duplicate_row) {
        let guard = config.for_family(delta.family);
        // The job's own change runs from the audited state: for a drifted row the value the log
        // last recorded, else the live row (which holds what the log says). Putting back what
        // the log says is reconciliation, never a mass change.
        let (before, removed, logged_delete) = match audited.get(&delta.key) {
            Some(logged) => {
                let logged = logged.as_ref();
                let removed = removed_members(logged, delta.value_after.as_deref());
                (logged, removed, logged.is_some())
            }
            None => {
                let removed = delta.change.removed_tickers().len();
                (live.get(&delta.key).copied(), removed, true)
            }
        };
        if delta.op == Op::Delete && logged_delete {
            deleted.push(delta.key.to_string());
        }
        let before = before.map_or(0, member_count);
        if before == 0 {
            continue;
        }
        let after = delta.value_after.as_deref().map_or(0, member_count);
        if guard.refuse_empty && after == 0 {
            refusals.push(Refusal::WouldEmpty {
                entry: delta.key.to_string(),
                members_before: before,
            });
        } else if removed as f64 / before as f64 > guard.max_removed_share {
            refusals.push(Refusal::MassRemoval {
                entry: delta.key.to_string(),
                members_before: before,
                removed,
                max_share: guard.max_removed_share,
            });
        }
    }
    if deleted.len() > config.max_deleted_entries {
        refusals.push(Refusal::MassDeletion {
            entries: deleted,
            max_deleted: config.max_deleted_entries,
        });
    }
    refusals
}

/// Members across a value's lists.
fn member_count(value: &Value) -> usize {
    member_lists(value).iter().map(|(_, m)| m.len()).sum()
}

/// Tickers some list of `before` holds that the same list of `after` does not (deduplicated
/// across lists, as `EntryChange::removed_tickers` counts them).
fn removed_members(before: Option<&Value>, after: Option<&Value>) -> usize {
    let Some(before) = before else { return 0 };
    let after: HashMap<ListPath, HashSet<&str>> = after
        .map(|v| {
            member_lists(v)
                .into_iter()
                .map(|(path, m)| (path, m.iter().map(|m| m.ticker).collect()))
                .collect()
        })
        .unwrap_or_default();
    let mut removed = HashSet::new();
    for (path, members) in member_lists(before) {
        let kept = after.get(&path);
        for m in members {
            if !kept.is_some_and(|k| k.contains(m.ticker)) {
                removed.insert(m.ticker);
            }
        }
    }
    removed.len()
}

#[cfg(test)]
mod tests;
