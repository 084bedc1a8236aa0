//! Unit tests for every family's rules (SPEC §3–§5): small markets built in code, normalised,
//! turned into a catalog, and checked value by value.

use super::*;
use crate::domain::config::CatalogConfig;
use crate::domain::fingerprint::{canonical_json, hash_value};
use crate::domain::market::{LatestClose, MarketSnapshot, SymbolRow};
use crate::domain::members::member_lists;
use crate::domain::securities::normalize;
use crate::domain::types::{EntryKey, Family, FamilySelection, Scope};
use chrono::{Duration, NaiveDate};
use proptest::prelude::*;
use serde_json::{json, Value};

const B: i64 = 1_000_000_000;
const M: i64 = 1_000_000;

fn as_of() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 3, 2).unwrap()
}

/// One `symbols` row with its latest close.
#[derive(Debug, Clone)]
struct Row(SymbolRow, Option<LatestClose>);

/// An active common stock whose market cap is exactly `cap` (shares = cap, close 1.0 on the as-of
/// date).
fn cs(ticker: &str, cap: i64) -> Row {
    Row(
        SymbolRow {
            symbol: ticker.to_owned(),
            name: Some(format!("{ticker} Corp")),
            kind: Some("CS".to_owned()),
            active: Some(true),
            weighted_shares_outstanding: Some(cap),
            primary_exchange: Some("XNYS".to_owned()),
            market: Some("stocks".to_owned()),
            sector: Some("Technology".to_owned()),
            industry: Some("Software".to_owned()),
            ..SymbolRow::default()
        },
        Some(LatestClose {
            date: as_of(),
            close: 1.0,
        }),
    )
}

/// An active ETF with no shares and no market cap (size 0 unless `aum` or `cap` is set).
fn etf(ticker: &str, name: &str) -> Row {
    Row(
        SymbolRow {
            symbol: ticker.to_owned(),
            name: Some(name.to_owned()),
            kind: Some("ETF".to_owned()),
            active: Some(true),
            primary_exchange: Some("ARCX".to_owned()),
            market: Some("stocks".to_owned()),
            etf_type: Some("Equity".to_owned()),
            issuer: Some("Vanguard".to_owned()),
            ..SymbolRow::default()
        },
        None,
    )
}

impl Row {
    fn sector(mut self, sector: Option<&str>) -> Self {
        self.0.sector = sector.map(str::to_owned);
        self
    }

    fn industry(mut self, industry: &str) -> Self {
        self.0.industry = Some(industry.to_owned());
        self
    }

    fn inactive(mut self) -> Self {
        self.0.active = Some(false);
        self
    }

    fn kind(mut self, kind: &str) -> Self {
        self.0.kind = Some(kind.to_owned());
        self
    }

    fn listed_days_before(mut self, days: i64) -> Self {
        self.0.list_date = Some(as_of() - Duration::days(days));
        self
    }

    /// Market cap `cap` from shares × close 1.0.
    fn cap(mut self, cap: i64) -> Self {
        self.0.weighted_shares_outstanding = Some(cap);
        self.1 = Some(LatestClose {
            date: as_of(),
            close: 1.0,
        });
        self
    }

    fn aum_millions(mut self, aum: f64) -> Self {
        self.0.aum_millions = Some(aum);
        self
    }
}

fn snapshot(rows: &[Row]) -> MarketSnapshot {
    MarketSnapshot {
        as_of: as_of(),
        symbols: rows.iter().map(|r| r.0.clone()).collect(),
        closes: rows.iter().map(|r| r.1).collect(),
        ..MarketSnapshot::default()
    }
}

fn catalog_with(rows: &[Row], config: &CatalogConfig) -> Catalog {
    let securities = normalize(&snapshot(rows), config);
    compute_catalog(&securities, config, &FamilySelection::all())
}

fn catalog(rows: &[Row]) -> Catalog {
    catalog_with(rows, &CatalogConfig::default())
}

fn entry<'a>(catalog: &'a Catalog, id: &str) -> &'a Value {
    let key = EntryKey::parse(id).unwrap();
    &catalog
        .entries
        .get(&key)
        .unwrap_or_else(|| {
            panic!(
                "the catalog has no entry {id}; it has {:?}",
                catalog.entries.keys().collect::<Vec<_>>()
            )
        })
        .value
}

fn has_entry(catalog: &Catalog, id: &str) -> bool {
    catalog.entries.contains_key(&EntryKey::parse(id).unwrap())
}

/// Every member ticker of a value, across its lists, in order.
fn members(value: &Value) -> Vec<String> {
    member_lists(value)
        .into_iter()
        .flat_map(|(_, list)| list.into_iter().map(|m| m.ticker.to_owned()))
        .collect()
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

/// The keys of entries of `type/name`.
fn keys_in(catalog: &Catalog, entry_type: &str, name: &str) -> Vec<String> {
    catalog
        .entries
        .keys()
        .filter(|k| k.entry_type == entry_type && k.name == name)
        .map(|k| k.key.clone())
        .collect()
}

/// Which market-cap bands hold `ticker`.
fn bands_of(catalog: &Catalog, ticker: &str) -> Vec<String> {
    keys_in(catalog, "stock_universe", "market_cap")
        .into_iter()
        .filter(|band| {
            members(entry(catalog, &format!("stock_universe/market_cap/{band}")))
                .contains(&ticker.to_owned())
        })
        .collect()
}

mod families;
mod legacy_shapes;
mod listings;
