//! Turnover of the banded universes (issue 16): the market-cap bands and the top-N lists computed
//! night after night on the synthetic market, in memory, with each night's members as the next
//! night's incumbents, counting how many members join or leave and how many of those moves are
//! boundary flips. Runs the same market with banding off and on to measure what banding saves.
//!
//! A *change* is one ticker joining or leaving one universe on one night. A *flip* is a change
//! that undoes an earlier change of the same ticker in the same universe (it left and came back,
//! or came and left again): the churn banding exists to remove.

use crate::devtools::market::SyntheticMarket;
use crate::domain::catalog::{compute_catalog_banded, Incumbents};
use crate::domain::config::CatalogConfig;
use crate::domain::invariants::check_catalog;
use crate::domain::market::{LatestClose, MarketSnapshot};
use crate::domain::securities::normalize;
use crate::domain::types::{Family, FamilySelection};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

/// One night's turnover, against the night before.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Night {
    /// The trading day (the first compared night is day 2).
    pub day: usize,
    pub changes: usize,
    pub flips: usize,
    /// Members kept by the band that night.
    pub held: usize,
}

/// Turnover over a sequence of nights.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Turnover {
    pub nights: Vec<Night>,
    pub changes: usize,
    pub flips: usize,
    /// Changes per family (`market_cap`, `market_leaders`).
    pub changes_by_family: BTreeMap<String, usize>,
    pub flips_by_family: BTreeMap<String, usize>,
    /// Invariant violations found in any night's catalog (always 0 unless a rule is broken).
    pub violations: usize,
}

/// The snapshot the job would load on `day`: the symbols as of that day and each one's latest
/// close on or before it, carried forward from `latest` (updated with the day's bars).
pub(crate) fn snapshot_of_day(
    market: &SyntheticMarket,
    day: usize,
    latest: &mut HashMap<String, LatestClose>,
) -> MarketSnapshot {
    for bar in market.bars_for_day(day) {
        let close = LatestClose {
            date: bar.date,
            close: bar.close,
        };
        latest.insert(bar.symbol, close);
    }
    let symbols = market.symbols_as_of_day(day);
    let closes = symbols
        .iter()
        .map(|s| latest.get(&s.symbol).copied())
        .collect();
    MarketSnapshot {
        as_of: market.date_of_day(day),
        symbols,
        closes,
        unreadable: Default::default(),
    }
}

/// Computes the market-cap and market-leaders families on every day of `market` under
/// `config` (banded or not) and counts the turnover between consecutive nights.
pub fn simulate(market: &SyntheticMarket, config: &CatalogConfig) -> Turnover {
    let selection = FamilySelection::only(&[Family::MarketCap, Family::MarketLeaders]);
    let mut latest = HashMap::new();
    let mut incumbents = Incumbents::default();
    let mut previous: Option<Vec<(String, String, BTreeSet<String>)>> = None;
    let mut changed_before: HashSet<(String, String, String)> = HashSet::new();
    let mut out = Turnover::default();
    for day in 1..=market.days() {
        let snapshot = snapshot_of_day(market, day, &mut latest);
        let securities = normalize(&snapshot, config);
        let (catalog, report) =
            compute_catalog_banded(&securities, config, &selection, &incumbents);
        out.violations += check_catalog(&catalog, &securities, config).len();
        incumbents = Incumbents::of_catalog(&catalog);
        let lists: Vec<(String, String, BTreeSet<String>)> = incumbents
            .market_cap
            .iter()
            .map(|(k, m)| ("market_cap".to_owned(), k.clone(), m.clone()))
            .chain(
                incumbents
                    .market_leaders
                    .iter()
                    .map(|(k, m)| ("market_leaders".to_owned(), k.clone(), m.clone())),
            )
            .collect();
        if let Some(before) = &previous {
            let mut night = Night {
                day,
                changes: 0,
                flips: 0,
                held: report.held.len(),
            };
            for ((family, key, was), (_, _, now)) in before.iter().zip(&lists) {
                for ticker in was.symmetric_difference(now) {
                    night.changes += 1;
                    *out.changes_by_family.entry(family.clone()).or_default() += 1;
                    if !changed_before.insert((family.clone(), key.clone(), ticker.clone())) {
                        night.flips += 1;
                        *out.flips_by_family.entry(family.clone()).or_default() += 1;
                    }
                }
            }
            out.changes += night.changes;
            out.flips += night.flips;
            out.nights.push(night);
        }
        previous = Some(lists);
    }
    out
}

/// The same market with banding off and as `banded` says.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub off: Turnover,
    pub on: Turnover,
}

/// Simulates `market` with the default configuration, plain and with `banded`'s banding.
pub fn compare(market: &SyntheticMarket, banded: &CatalogConfig) -> Comparison {
    let plain = CatalogConfig {
        banding: Default::default(),
        ..banded.clone()
    };
    Comparison {
        off: simulate(market, &plain),
        on: simulate(market, banded),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devtools::market::FixtureParams;
    use crate::domain::config::Banding;

    #[test]
    fn a_five_percent_band_and_a_ten_percent_buffer_halve_the_boundary_flips() {
        let market = SyntheticMarket::generate(&FixtureParams {
            stocks: 1000,
            etfs: 40,
            days: 61,
            seed: 42,
            nasty: false,
            renames: 0,
        });
        let banded = CatalogConfig {
            banding: Banding {
                market_cap: 0.05,
                market_leaders: 0.10,
            },
            ..CatalogConfig::default()
        };
        let Comparison { off, on } = compare(&market, &banded);
        assert_eq!(off.nights.len(), 60);
        assert_eq!((off.violations, on.violations), (0, 0));
        assert!(off.flips > 100, "the plain rule flips: {off:?}");
        assert!(
            on.flips * 2 <= off.flips,
            "flips off {} vs on {}",
            off.flips,
            on.flips
        );
        assert!(on.changes < off.changes);
        assert!(on.nights.iter().any(|n| n.held > 0));
        assert!(off.nights.iter().all(|n| n.held == 0));
    }
}
