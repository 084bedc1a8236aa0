//! Turnover banding (issue 16): the market-cap bands and the top-N lists with hysteresis, so a
//! stock hovering at a breakpoint does not flip in and out every night. Index providers do the
//! same (Russell bands around its breakpoints; S&P and MSCI keep incumbents inside a buffer).
//!
//! - A current member of a market-cap band stays in it while its cap is at least
//!   `lower × (1 − share)` and below `upper × (1 + share)`; every other stock goes where the plain
//!   rule puts it. A stock is in at most one band either way, so bands stay disjoint.
//! - A top-N list keeps exactly N members (fewer only when fewer stocks are eligible): the next
//!   smaller list's members, then every stock ranked within `N × (1 − share)`, then current
//!   members ranked within `N × (1 + share)` by rank, then the rest by rank. Each list is built
//!   on the one inside it, so each top-N stays inside the next; members are listed by rank.
//!
//! A member the plain rule would have dropped is *held*, with the reason `held_by_band` and the
//! cap or rank and the limit it is past; a stock the plain rule would have put in its place is
//! *displaced*. Both are reported; neither changes anything else in the catalog.

use super::{compute_catalog, stock_list, Catalog};
use crate::domain::config::CatalogConfig;
use crate::domain::members::member_lists;
use crate::domain::reasons::{Reason, ReasonCode};
use crate::domain::securities::{Securities, Security};
use crate::domain::types::{EntryKey, Family, FamilySelection};
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

const ENTRY_TYPE: &str = "stock_universe";

/// The current members of the banded universes: whom the bands may hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Incumbents {
    /// Market-cap band key (`large_cap`) → its members.
    pub market_cap: BTreeMap<String, BTreeSet<String>>,
    /// Top-N key (`top_50`) → its members.
    pub market_leaders: BTreeMap<String, BTreeSet<String>>,
}

impl Incumbents {
    /// The members of every `stock_universe/market_cap/*` and `stock_universe/market_leaders/*`
    /// value among `entries`; other entries are ignored.
    pub fn from_entries<'a>(entries: impl IntoIterator<Item = (&'a EntryKey, &'a Value)>) -> Self {
        let mut out = Self::default();
        for (key, value) in entries {
            let family = match (key.entry_type.as_str(), key.name.as_str()) {
                (ENTRY_TYPE, "market_cap") => &mut out.market_cap,
                (ENTRY_TYPE, "market_leaders") => &mut out.market_leaders,
                _ => continue,
            };
            let members = family.entry(key.key.clone()).or_default();
            for (_, list) in member_lists(value) {
                members.extend(list.into_iter().map(|m| m.ticker.to_owned()));
            }
        }
        out
    }

    /// The members of the banded universes of `catalog` (what tomorrow's run starts from).
    pub fn of_catalog(catalog: &Catalog) -> Self {
        Self::from_entries(catalog.entries.iter().map(|(k, e)| (k, &*e.value)))
    }
}

/// A member kept by the band that the plain rule would have dropped.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Held {
    pub universe: EntryKey,
    pub ticker: String,
    /// `held_by_band`, with the cap (and rank) and the limit it is past.
    pub reason: Reason,
}

/// A stock the plain rule would have put in a universe that the band kept out.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Displaced {
    pub universe: EntryKey,
    pub ticker: String,
    /// The cap (and rank) that would have put it there, and where it is instead.
    pub detail: Value,
}

/// What banding changed against the plain rule, universe by universe (by key, then ticker).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct BandingReport {
    pub held: Vec<Held>,
    pub displaced: Vec<Displaced>,
}

impl BandingReport {
    /// The held members of one universe.
    pub fn held_in<'a>(&'a self, universe: &'a EntryKey) -> impl Iterator<Item = &'a Held> {
        self.held.iter().filter(move |h| &h.universe == universe)
    }
}

/// As [`compute_catalog`], with the market-cap bands and the top-N lists banded around
/// `incumbents` as the configuration says. With banding off it is exactly `compute_catalog`.
pub fn compute_catalog_banded(
    securities: &Securities,
    config: &CatalogConfig,
    selection: &FamilySelection,
    incumbents: &Incumbents,
) -> (Catalog, BandingReport) {
    let mut catalog = compute_catalog(securities, config, selection);
    let mut report = BandingReport::default();
    let ranked = securities.ranked_stocks();
    let share = config.banding.market_cap;
    if share > 0.0 && selection.contains(Family::MarketCap) {
        let counts = market_cap(
            &mut catalog,
            &ranked,
            config,
            &incumbents.market_cap,
            &mut report,
        );
        restate_distribution(&mut catalog, &counts);
    }
    if config.banding.market_leaders > 0.0 && selection.contains(Family::MarketLeaders) {
        leaders(
            &mut catalog,
            &ranked,
            config,
            &incumbents.market_leaders,
            &mut report,
        );
    }
    report
        .held
        .sort_by(|a, b| (&a.universe, &a.ticker).cmp(&(&b.universe, &b.ticker)));
    report
        .displaced
        .sort_by(|a, b| (&a.universe, &a.ticker).cmp(&(&b.universe, &b.ticker)));
    (catalog, report)
}

/// The plain value of `key` with its members replaced: the list and count as the family builds
/// them, every other field as the plain rule wrote it.
fn replace_members(catalog: &mut Catalog, family: Family, key: EntryKey, members: &[&Security]) {
    let list = stock_list(members);
    let mut value = catalog
        .entries
        .get(&key)
        .map_or_else(|| list.clone(), |e| Value::clone(&e.value));
    if let (Some(target), Some(fields)) = (value.as_object_mut(), list.as_object()) {
        for (field, v) in fields {
            target.insert(field.clone(), v.clone());
        }
    } else {
        value = list;
    }
    catalog.insert(family, key, value);
}

/// `a × factor` compared in floating point: caps and limits are far below 2^53.
fn scaled(limit: i64, factor: f64) -> f64 {
    limit as f64 * factor
}

/// Bands the market-cap family; returns each band's member count.
fn market_cap(
    catalog: &mut Catalog,
    ranked: &[&Security],
    config: &CatalogConfig,
    incumbents: &BTreeMap<String, BTreeSet<String>>,
    report: &mut BandingReport,
) -> Vec<(String, usize)> {
    let share = config.banding.market_cap;
    let bands = &config.market_cap_bands;
    // [lower, upper) of each band, highest first; the top band has no upper bound.
    let limits: Vec<(i64, Option<i64>)> = bands
        .iter()
        .enumerate()
        .map(|(i, b)| (b.lower, i.checked_sub(1).map(|u| bands[u].lower)))
        .collect();
    // A ticker that the live rows show in two bands (a hand edit) has no incumbent band.
    let mut current: HashMap<&str, Option<usize>> = HashMap::new();
    for (i, band) in bands.iter().enumerate() {
        for ticker in incumbents.get(&band.key).into_iter().flatten() {
            current
                .entry(ticker.as_str())
                .and_modify(|b| *b = None)
                .or_insert(Some(i));
        }
    }
    let universe = |i: usize| EntryKey::new(ENTRY_TYPE, "market_cap", &bands[i].key);
    let mut members: Vec<Vec<&Security>> = vec![Vec::new(); bands.len()];
    for &s in ranked {
        let cap = s.market_cap.unwrap_or(0);
        let plain = limits
            .iter()
            .position(|&(lower, upper)| cap >= lower && upper.is_none_or(|u| cap < u));
        let incumbent = current.get(s.ticker.as_str()).copied().flatten();
        let held = incumbent.filter(|&i| {
            let (lower, upper) = limits[i];
            let c = cap as f64;
            plain != Some(i)
                && c >= scaled(lower, 1.0 - share)
                && upper.is_none_or(|u| c < scaled(u, 1.0 + share))
        });
        let Some(band) = held.or(plain) else { continue };
        members[band].push(s);
        if let Some(i) = held {
            let (lower, upper) = limits[i];
            let (bound, limit) = match upper {
                Some(u) if cap >= u => ("upper", u),
                _ => ("lower", lower),
            };
            report.held.push(Held {
                universe: universe(i),
                ticker: s.ticker.clone(),
                reason: Reason {
                    code: ReasonCode::HeldByBand,
                    detail: json!({
                        "market_cap": cap,
                        "limit": limit,
                        "bound": bound,
                        "share": share,
                        "plain": plain.map(|p| bands[p].key.clone()),
                    }),
                },
            });
            if let Some(p) = plain {
                report.displaced.push(Displaced {
                    universe: universe(p),
                    ticker: s.ticker.clone(),
                    detail: json!({"market_cap": cap, "held_in": bands[i].key}),
                });
            }
        }
    }
    let mut counts = Vec::new();
    for (i, list) in members.iter().enumerate() {
        counts.push((bands[i].key.clone(), list.len()));
        replace_members(catalog, Family::MarketCap, universe(i), list);
    }
    counts
}

/// The stats summary counts each band's members as the bands now hold them, so the distribution
/// the UI shows agrees with the band lists.
fn restate_distribution(catalog: &mut Catalog, counts: &[(String, usize)]) {
    let key = EntryKey::new("stock_stats", "universe", "summary");
    let Some(entry) = catalog.entries.get(&key) else {
        return;
    };
    let mut value = Value::clone(&entry.value);
    let Some(distribution) = value
        .pointer_mut("/overview/market_cap_distribution")
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    for (band, count) in counts {
        if distribution.contains_key(band) {
            distribution.insert(band.clone(), json!(count));
        }
    }
    catalog.insert(Family::Stats, key, value);
}

/// `n × factor`, rounded down; the small epsilon keeps `50 × 1.1` at 55.
fn rank_limit(n: usize, factor: f64) -> usize {
    (n as f64 * factor + 1e-9).floor() as usize
}

/// Bands the top-N lists, smallest N first, each built on the one inside it.
fn leaders(
    catalog: &mut Catalog,
    ranked: &[&Security],
    config: &CatalogConfig,
    incumbents: &BTreeMap<String, BTreeSet<String>>,
    report: &mut BandingReport,
) {
    let share = config.banding.market_leaders;
    let rank_of: HashMap<&str, usize> = ranked
        .iter()
        .enumerate()
        .map(|(i, s)| (s.ticker.as_str(), i + 1))
        .collect();
    let mut lists: Vec<&(String, usize)> = config.leaders.iter().collect();
    lists.sort_by_key(|(_, n)| *n);
    let mut inner: Vec<usize> = Vec::new();
    for (key, n) in lists {
        let n = *n;
        let keep_within = rank_limit(n, 1.0 + share);
        let mut chosen: HashSet<usize> = inner.iter().copied().collect();
        let mut order: Vec<usize> = inner.clone();
        let mut take = |rank: usize, order: &mut Vec<usize>| {
            if order.len() < n && chosen.insert(rank) {
                order.push(rank);
            }
        };
        for rank in 1..=rank_limit(n, 1.0 - share).min(ranked.len()) {
            take(rank, &mut order);
        }
        let mut kept: Vec<usize> = incumbents
            .get(key)
            .into_iter()
            .flatten()
            .filter_map(|t| rank_of.get(t.as_str()).copied())
            .filter(|&rank| rank <= keep_within)
            .collect();
        kept.sort_unstable();
        for rank in kept.into_iter().chain(1..=ranked.len()) {
            take(rank, &mut order);
        }
        order.sort_unstable();
        let universe = EntryKey::new(ENTRY_TYPE, "market_leaders", key);
        for &rank in order.iter().filter(|&&r| r > n) {
            let s = ranked[rank - 1];
            report.held.push(Held {
                universe: universe.clone(),
                ticker: s.ticker.clone(),
                reason: Reason {
                    code: ReasonCode::HeldByBand,
                    detail: json!({
                        "market_cap": s.market_cap,
                        "rank": rank,
                        "limit": n,
                        "kept_within": keep_within,
                    }),
                },
            });
        }
        let members: HashSet<usize> = order.iter().copied().collect();
        for rank in (1..=n.min(ranked.len())).filter(|r| !members.contains(r)) {
            let s = ranked[rank - 1];
            report.displaced.push(Displaced {
                universe: universe.clone(),
                ticker: s.ticker.clone(),
                detail: json!({"market_cap": s.market_cap, "rank": rank}),
            });
        }
        let securities: Vec<&Security> = order.iter().map(|&r| ranked[r - 1]).collect();
        replace_members(catalog, Family::MarketLeaders, universe, &securities);
        inner = order;
    }
}

#[cfg(test)]
mod tests;
