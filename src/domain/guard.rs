//! Guard rails (SPEC §10): decide, before anything is written, whether a plan may be applied.
//! Each refusal names what tripped and what would have changed. Pure: the caller passes the
//! plan, the current rows and the input figures.

use crate::domain::diff::{CurrentEntry, Delta, Op};
use crate::domain::members::member_lists;
use crate::domain::types::{EntryKey, Family};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

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
        merged
            .try_into()
            .map_err(|e: toml::de::Error| e.to_string())
    }

    fn for_family(&self, family: Family) -> FamilyGuard {
        self.families
            .get(family.as_str())
            .copied()
            .unwrap_or(self.default)
    }
}

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

/// Every guard rail the plan trips, in a stable order. Empty means it may be applied.
pub fn check(
    config: &GuardConfig,
    input: &InputFreshness,
    deltas: &[Delta],
    current: &[CurrentEntry],
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

    let sizes: HashMap<&EntryKey, usize> = current
        .iter()
        .map(|c| {
            (
                &c.key,
                member_lists(&c.value).iter().map(|(_, m)| m.len()).sum(),
            )
        })
        .collect();
    let mut deleted = Vec::new();
    for delta in deltas.iter().filter(|d| !d.change.duplicate_row) {
        let guard = config.for_family(delta.family);
        let before = sizes.get(&delta.key).copied().unwrap_or(0);
        if delta.op == Op::Delete {
            deleted.push(delta.key.to_string());
        }
        if before == 0 || delta.op == Op::Create {
            continue;
        }
        let after: usize = match &delta.value_after {
            Some(v) => member_lists(v).iter().map(|(_, m)| m.len()).sum(),
            None => 0,
        };
        let removed = delta.change.removed_tickers().len();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guards_section_overrides_one_family_and_keeps_the_rest() {
        let table: toml::Table = toml::from_str("max_deleted_entries = 9\n[families.market_cap]\nrefuse_empty = false\nmax_removed_share = 0.9\n").unwrap();
        let config = GuardConfig::from_toml(&table).unwrap();
        assert_eq!(config.max_deleted_entries, 9);
        assert_eq!(config.for_family(Family::MarketCap).max_removed_share, 0.9);
        assert_eq!(config.for_family(Family::Ipos).max_removed_share, 1.0);
    }

    #[test]
    fn unknown_guard_keys_and_families_are_errors() {
        let table: toml::Table = toml::from_str("bogus = 1\n").unwrap();
        assert!(GuardConfig::from_toml(&table)
            .unwrap_err()
            .contains("bogus"));
        let table: toml::Table =
            toml::from_str("[families.nope]\nrefuse_empty = true\nmax_removed_share = 0.1\n")
                .unwrap();
        assert!(GuardConfig::from_toml(&table).unwrap_err().contains("nope"));
    }

    #[test]
    fn stale_and_incomplete_inputs_are_refused() {
        let day = |d: u32| NaiveDate::from_ymd_opt(2026, 3, d).unwrap();
        let input = InputFreshness {
            as_of: day(1),
            latest_price_date: Some(day(20)),
            today: day(20),
            active_symbols: 100,
            active_without_close_on_as_of: 50,
        };
        let refusals = check(&GuardConfig::default(), &input, &[], &[]);
        assert!(matches!(refusals[0], Refusal::StaleAsOf { .. }));
        assert!(matches!(refusals[1], Refusal::ImportIncomplete { .. }));
        assert_eq!(refusals.len(), 2);
    }
}
