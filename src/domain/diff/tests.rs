//! Diff and replay laws: hand cases for creates, updates, deletes, duplicates, ownership,
//! member-level detail and reasons; property tests for
//! `apply_change(before, op, diff(before, after).change) == after`, also after the change went
//! through JSON (what the audit log stores).

use super::*;
use crate::domain::catalog::{compute_catalog, Catalog, DesiredEntry};
use crate::domain::config::CatalogConfig;
use crate::domain::fingerprint::hash_value;
use crate::domain::market::{LatestClose, MarketSnapshot, SymbolRow};
use crate::domain::reasons::{ReasonCode, ReasonContext};
use crate::domain::replay::apply_change;
use crate::domain::securities::{normalize, Securities};
use crate::domain::types::{EntryKey, Family, FamilySelection, Scope};
use chrono::{Duration, NaiveDate};
use proptest::prelude::*;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};

const B: i64 = 1_000_000_000;

fn as_of() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 3, 2).unwrap()
}

fn key(id: &str) -> EntryKey {
    EntryKey::parse(id).unwrap()
}

/// A catalog wanting exactly these entries (and owning their scopes).
fn want(entries: Vec<(Family, &str, Value)>) -> Catalog {
    let mut catalog = Catalog::default();
    for (family, id, value) in entries {
        let k = key(id);
        catalog.scopes.insert(k.scope(), family);
        catalog.entries.insert(
            k,
            DesiredEntry {
                family,
                hash: hash_value(&value),
                value: value.into(),
            },
        );
    }
    catalog
}

fn own(mut catalog: Catalog, entry_type: &str, name: &str, family: Family) -> Catalog {
    catalog.scopes.insert(Scope::new(entry_type, name), family);
    catalog
}

fn row(id: i64, entry: &str, value: Value) -> CurrentEntry {
    CurrentEntry {
        id,
        key: key(entry),
        value,
    }
}

/// An active common stock worth exactly `cap`.
fn stock(ticker: &str, cap: i64) -> SymbolRow {
    SymbolRow {
        symbol: ticker.to_owned(),
        name: Some(format!("{ticker} Inc")),
        kind: Some("CS".to_owned()),
        active: Some(true),
        weighted_shares_outstanding: Some(cap),
        sector: Some("Technology".to_owned()),
        industry: Some("Software".to_owned()),
        ..SymbolRow::default()
    }
}

fn securities(rows: Vec<SymbolRow>) -> Securities {
    let snapshot = MarketSnapshot {
        as_of: as_of(),
        closes: rows
            .iter()
            .map(|_| {
                Some(LatestClose {
                    date: as_of(),
                    close: 1.0,
                })
            })
            .collect(),
        symbols: rows,
        ..MarketSnapshot::default()
    };
    normalize(&snapshot, &CatalogConfig::default())
}

fn context<'a>(
    securities: &'a Securities,
    config: &'a CatalogConfig,
    current: &[CurrentEntry],
) -> ReasonContext<'a> {
    ReasonContext {
        securities,
        config,
        previous: previous_records(current),
        config_changed: false,
        run_override: None,
        renames: Default::default(),
    }
}

/// Diffs with an empty market for reasons.
fn plan(catalog: &Catalog, current: &[CurrentEntry]) -> Vec<Delta> {
    let market = securities(Vec::new());
    let config = CatalogConfig::default();
    diff(
        catalog,
        current,
        &context(&market, &config, current),
        &LiveRowFacts::default(),
    )
}

fn record(ticker: &str, rank: usize, cap: i64) -> Value {
    json!({
        "ticker": ticker,
        "name": format!("{ticker} Inc"),
        "rank": rank,
        "sector": "Technology",
        "industry": "Software",
        "exchange": "XNAS",
        "market": "stocks",
        "market_cap": cap,
    })
}

/// Live rows holding `catalog`, ids from 1.
fn rows_holding(catalog: &Catalog) -> Vec<CurrentEntry> {
    catalog
        .entries
        .iter()
        .enumerate()
        .map(|(i, (k, e))| CurrentEntry {
            id: i as i64 + 1,
            key: k.clone(),
            value: Value::clone(&e.value),
        })
        .collect()
}

fn stocks(records: Vec<Value>) -> Value {
    json!({"count": records.len(), "stocks": records})
}

/// Records of `(ticker, cap)` ranked in the given order.
fn ranked(members: &[(&str, i64)]) -> Value {
    stocks(
        members
            .iter()
            .enumerate()
            .map(|(i, (t, cap))| record(t, i + 1, *cap))
            .collect(),
    )
}

/// The change survives the audit log: JSON and back is the same change.
fn stored(change: &EntryChange) -> EntryChange {
    let text = serde_json::to_string(change).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Replaying `delta` onto `before` gives its value after (directly and through JSON).
fn assert_replays(before: Option<&Value>, delta: &Delta) {
    let expected = if delta.change.duplicate_row {
        before.cloned()
    } else {
        delta.value_after.as_deref().cloned()
    };
    assert_eq!(
        apply_change(before, delta.op, &delta.change),
        Ok(expected.clone()),
        "{}",
        delta.key
    );
    assert_eq!(
        apply_change(before, delta.op, &stored(&delta.change)),
        Ok(expected),
        "{} via JSON",
        delta.key
    );
}

fn only_delta(deltas: &[Delta]) -> &Delta {
    assert_eq!(deltas.len(), 1, "{deltas:#?}");
    &deltas[0]
}

// ---------------------------------------------------------------- whole catalogs

const MARKET_TICKERS: [&str; 14] = [
    "AAPL", "AMD", "GOOGL", "MSFT", "NVDA", "CRM", "COIN", "XOM", "CVX", "SPY", "QQQ", "BND",
    "VUG", "MTUM",
];
const ETF_NAMES: [(&str, &str); 5] = [
    ("SPY", "SPDR S&P 500 ETF Trust"),
    ("QQQ", "Invesco QQQ Trust"),
    ("BND", "Vanguard Total Bond Market ETF"),
    ("VUG", "Vanguard Growth ETF"),
    ("MTUM", "iShares MSCI USA Momentum Factor ETF"),
];
const CAPS: [i64; 6] = [20_000_000, 80_000_000, 700_000_000, 5 * B, 40 * B, 300 * B];

/// A random market over a fixed set of tickers: caps across every band, some inactive, a few
/// sectors and industries, listing dates around the IPO window.
fn random_market() -> impl Strategy<Value = Securities> {
    random_rows().prop_map(securities)
}

/// The symbol rows behind `random_market`.
fn random_rows() -> impl Strategy<Value = Vec<SymbolRow>> {
    proptest::collection::vec(
        (
            0usize..CAPS.len(),
            proptest::bool::weighted(0.85),
            0usize..3,
            0usize..2,
            0i64..60,
        ),
        MARKET_TICKERS.len(),
    )
    .prop_map(|specs| {
        MARKET_TICKERS
            .iter()
            .zip(specs)
            .map(|(ticker, (cap, active, sector, industry, listed))| {
                let mut row = stock(ticker, CAPS[cap]);
                row.active = Some(active);
                row.sector = Some(["Technology", "Energy", "Oil & Gas"][sector].to_owned());
                row.industry = Some(["Software", "Drilling"][industry].to_owned());
                row.list_date = Some(as_of() - Duration::days(listed));
                if let Some((_, name)) = ETF_NAMES.iter().find(|(t, _)| t == ticker) {
                    row.kind = Some("ETF".to_owned());
                    row.name = Some((*name).to_owned());
                }
                row
            })
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn replaying_every_delta_between_two_catalogs_rebuilds_the_new_catalog(
        old_market in random_market(), new_market in random_market()
    ) {
        let config = CatalogConfig::default();
        let old = compute_catalog(&old_market, &config, &FamilySelection::all());
        let new = compute_catalog(&new_market, &config, &FamilySelection::all());
        let current = rows_holding(&old);
        let deltas = diff(&new, &current, &context(&new_market, &config, &current), &LiveRowFacts::default());

        let mut state: BTreeMap<EntryKey, Value> = current.iter().map(|c| (c.key.clone(), c.value.clone())).collect();
        for delta in &deltas {
            prop_assert!(new.owner_of(&delta.key).is_some(), "{} is not owned", delta.key);
            let logged = stored(&delta.change);
            prop_assert_eq!(&logged, &delta.change);
            let applied = apply_change(state.get(&delta.key), delta.op, &logged);
            prop_assert!(applied.is_ok(), "{}: {:?}", delta.key, applied);
            match applied.unwrap() {
                Some(value) => {
                    prop_assert_eq!(Some(hash_value(&value)), delta.hash_after);
                    state.insert(delta.key.clone(), value);
                }
                None => {
                    state.remove(&delta.key);
                }
            }
        }
        let wanted: BTreeMap<EntryKey, Value> = new.entries.iter().map(|(k, e)| (k.clone(), Value::clone(&e.value))).collect();
        prop_assert_eq!(&state, &wanted);

        // Once applied, a second diff finds nothing to do.
        let settled: Vec<CurrentEntry> = state
            .iter()
            .enumerate()
            .map(|(i, (k, v))| CurrentEntry { id: i as i64 + 1, key: k.clone(), value: v.clone() })
            .collect();
        let again = diff(&new, &settled, &context(&new_market, &config, &settled), &LiveRowFacts::default());
        prop_assert!(again.is_empty());
    }
}

mod entries;
mod log_form;
mod reasons;
