//! Pre-commit invariants on the desired catalog (checked before anything is written): bands
//! disjoint, each top-N a prefix of the next (inside the next when banded), every member an
//! active eligible symbol, and no two entries colliding under a unique constraint the live table
//! carries.

use crate::domain::catalog::Catalog;
use crate::domain::config::CatalogConfig;
use crate::domain::members::member_lists;
use crate::domain::securities::{Securities, SecurityKind};
use crate::domain::types::{EntryKey, Family};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// A broken invariant: a bug in the rules or the configuration, never applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    pub invariant: &'static str,
    pub detail: String,
}

/// Two or more entries that one unique constraint cannot hold together.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Collision {
    pub constraint: String,
    pub columns: Vec<String>,
    /// The colliding identities, written `type/name/key@environment`.
    pub entries: Vec<String>,
}

/// Checks the catalog's own invariants.
pub fn check_catalog(
    catalog: &Catalog,
    securities: &Securities,
    config: &CatalogConfig,
) -> Vec<Violation> {
    let mut violations = Vec::new();
    let tickers_of = |key: &EntryKey| -> Option<Vec<String>> {
        let entry = catalog.entries.get(key)?;
        Some(
            member_lists(&entry.value)
                .into_iter()
                .flat_map(|(_, m)| m.into_iter().map(|m| m.ticker.to_owned()))
                .collect(),
        )
    };

    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    for band in &config.market_cap_bands {
        let key = EntryKey::new("stock_universe", "market_cap", &band.key);
        for ticker in tickers_of(&key).unwrap_or_default() {
            if let Some(other) = seen.insert(ticker.clone(), band.key.clone()) {
                violations.push(Violation {
                    invariant: "market-cap bands are disjoint",
                    detail: format!("{ticker} is in both {other} and {}", band.key),
                });
            }
        }
    }

    // Plain top-N lists are prefixes of each other. Banded ones hold members past N, listed by
    // rank, so a larger list may rank a newcomer ahead of them: each stays inside the next.
    let banded = config.banding.market_leaders > 0.0;
    let mut leaders: Vec<&(String, usize)> = config.leaders.iter().collect();
    leaders.sort_by_key(|(_, n)| *n);
    let mut previous: Option<(String, Vec<String>)> = None;
    for (key, _) in leaders {
        let Some(members) = tickers_of(&EntryKey::new("stock_universe", "market_leaders", key))
        else {
            continue;
        };
        if let Some((prev_key, prev)) = &previous {
            if banded {
                let outer: BTreeSet<&String> = members.iter().collect();
                if let Some(missing) = prev.iter().find(|t| !outer.contains(t)) {
                    violations.push(Violation {
                        invariant: "each top-N stays inside the next",
                        detail: format!("{missing} is in {prev_key} but not in {key}"),
                    });
                }
            } else if members.len() < prev.len() || members[..prev.len()] != prev[..] {
                violations.push(Violation {
                    invariant: "each top-N is a prefix of the next",
                    detail: format!("{prev_key} is not a prefix of {key}"),
                });
            }
        }
        previous = Some((key.clone(), members));
    }

    for (key, entry) in &catalog.entries {
        for (_, members) in member_lists(&entry.value) {
            for m in members {
                let ok = securities.get(m.ticker).is_some_and(|s| {
                    s.active
                        && match entry.family {
                            Family::Themes => s.kind == SecurityKind::Stock,
                            Family::Ipos => s.kind != SecurityKind::Other,
                            Family::Etfs => s.kind == SecurityKind::Etf,
                            _ => s.is_eligible_stock() || s.is_active_etf(),
                        }
                });
                if !ok {
                    violations.push(Violation {
                        invariant: "every member is an active eligible symbol",
                        detail: format!("{} in {key}", m.ticker),
                    });
                }
            }
        }
    }
    violations
}

/// The identity of a row: entry key and environment.
pub type Identity = (EntryKey, String);

/// Finds identities that a unique constraint over `columns` cannot hold together. `rows` is the
/// table as it would be after the run: the desired entries plus every row the job does not own.
pub fn collisions(constraint: &str, columns: &[String], rows: &[Identity]) -> Option<Collision> {
    let known = ["type", "name", "key", "environment"];
    if columns.iter().any(|c| !known.contains(&c.as_str())) {
        // A constraint over another column (an id, a timestamp) cannot be tripped by identities.
        return None;
    }
    let mut groups: BTreeMap<Vec<&str>, BTreeSet<String>> = BTreeMap::new();
    for (key, environment) in rows {
        let projection = columns
            .iter()
            .map(|c| match c.as_str() {
                "type" => key.entry_type.as_str(),
                "name" => key.name.as_str(),
                "key" => key.key.as_str(),
                _ => environment.as_str(),
            })
            .collect();
        groups
            .entry(projection)
            .or_default()
            .insert(format!("{key}@{environment}"));
    }
    let entries: Vec<String> = groups
        .into_values()
        .filter(|ids| ids.len() > 1)
        .flatten()
        .collect();
    (!entries.is_empty()).then(|| Collision {
        constraint: constraint.to_owned(),
        columns: columns.to_vec(),
        entries,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn theme_rows_collide_under_type_key_environment() {
        let rows: Vec<Identity> = ["Ai", "Cloud"]
            .iter()
            .map(|n| (EntryKey::new("themes", *n, "list"), "DEFAULT".to_owned()))
            .collect();
        let cols: Vec<String> = ["type", "key", "environment"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let hit = collisions("uq", &cols, &rows).unwrap();
        assert_eq!(
            hit.entries,
            vec!["themes/Ai/list@DEFAULT", "themes/Cloud/list@DEFAULT"]
        );
        let wide: Vec<String> = ["type", "name", "key", "environment"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert!(collisions("uq", &wide, &rows).is_none());
    }
}
