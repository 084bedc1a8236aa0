//! Content hashes pinned across rewrites of the hot path: existing databases and audit logs
//! verify only while a value encodes and hashes exactly as it did when they were written. A
//! change to any pinned figure here is a change to the canonical encoding, not a refactor.

use crate::devtools::market::{FixtureParams, SyntheticMarket};
use crate::devtools::turnover::snapshot_of_day;
use crate::domain::catalog::compute_catalog;
use crate::domain::config::CatalogConfig;
use crate::domain::fingerprint::{canonical_json, hash_value};
use crate::domain::securities::normalize;
use crate::domain::types::FamilySelection;
use serde_json::json;
use std::collections::HashMap;

#[test]
fn a_known_value_keeps_its_canonical_bytes_and_hash() {
    let value = json!({
        "stocks": [{"ticker": "AAPL", "rank": 1, "market_cap": 3_000_000_000_000_i64,
                    "name": "Apple Inc.", "sector": "Technology"}],
        "count": 1,
    });
    assert_eq!(
        String::from_utf8(canonical_json(&value)).unwrap(),
        r#"{"count":1,"stocks":[{"market_cap":3000000000000,"name":"Apple Inc.","rank":1,"sector":"Technology","ticker":"AAPL"}]}"#
    );
    assert_eq!(hash_value(&value).to_hex(), PINNED_VALUE_HASH);
}

/// Every entry of a fixed synthetic market's catalog (day 1 and day 2, default configuration),
/// each key and hash folded into one.
#[test]
fn a_fixed_markets_catalog_hashes_as_pinned() {
    let market = SyntheticMarket::generate(&FixtureParams {
        stocks: 600,
        etfs: 80,
        days: 2,
        seed: 42,
        nasty: false,
        ..FixtureParams::default()
    });
    let config = CatalogConfig::default();
    let mut latest = HashMap::new();
    let mut folded = Vec::new();
    for day in 1..=2 {
        let snapshot = snapshot_of_day(&market, day, &mut latest);
        let securities = normalize(&snapshot, &config);
        let catalog = compute_catalog(&securities, &config, &FamilySelection::all());
        let mut fold = blake3::Hasher::new();
        for (key, entry) in &catalog.entries {
            fold.update(key.to_string().as_bytes());
            fold.update(entry.hash.to_hex().as_bytes());
        }
        folded.push((catalog.entries.len(), fold.finalize().to_hex().to_string()));
    }
    assert_eq!(
        folded,
        PINNED_CATALOG
            .iter()
            .map(|(n, h)| (*n, (*h).to_owned()))
            .collect::<Vec<_>>()
    );
}

const PINNED_VALUE_HASH: &str = "5c067d56e1fcc5f6c7512c36ef6a9d329a3b11899684ec0d3308188c698171f7";
const PINNED_CATALOG: [(usize, &str); 2] = [
    (
        74,
        "8ae63a958b0eed649ebe5e0cd6005de8213b6c2ad0eddbf1504e675d4520aa18",
    ),
    (
        74,
        "13fe2560de25335d9f2d6a1d0268d965743ecfb678dd02983d92acb6f336925c",
    ),
];
