//! Property tests over hostile input (issue 12.3): `symbols` rows, closes and `cache_config`
//! rows drawn from generators that reach and pass every column limit, every numeric extreme and
//! odd Unicode. Whatever they hold, the pure core never panics, the configuration stays valid,
//! every identity fits its column and stays unique, the catalog keeps its invariants, and the
//! same input gives the same bytes.

use super::*;
use crate::domain::columns::{KEY_CHARS, NAME_CHARS, TYPE_CHARS};
use crate::domain::config::{CatalogConfig, ConfigRow};
use crate::domain::invariants::check_catalog;
use crate::domain::market::{LatestClose, MarketSnapshot, SymbolRow};
use crate::domain::securities::normalize;
use crate::domain::types::FamilySelection;
use chrono::NaiveDate;
use proptest::prelude::*;
use serde_json::json;

fn as_of() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 3, 2).unwrap()
}

/// Text at and past the columns' limits, with `&` (which lengthens slugs), whitespace and
/// characters from every script.
fn hostile_text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("   ".to_owned()),
        Just("&".repeat(50)),
        Just(format!("{} & more", "Industrial ".repeat(9))),
        Just("x".repeat(100)),
        Just("x".repeat(101)),
        Just("ß🚀\u{200b}Ǆ İ ﬃ".repeat(20)),
        "[\\PC&_ ]{0,160}",
    ]
}

fn hostile_float() -> impl Strategy<Value = f64> {
    prop_oneof![
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        Just(f64::NAN),
        Just(f64::MAX),
        Just(f64::MIN_POSITIVE),
        Just(-0.0),
        Just(1e300),
        any::<f64>(),
        0.01f64..5000.0,
    ]
}

fn hostile_int() -> impl Strategy<Value = i64> {
    prop_oneof![
        Just(i64::MAX),
        Just(i64::MIN),
        Just(0),
        Just(-1),
        any::<i64>(),
        1i64..3_000_000_000_000,
    ]
}

fn hostile_date() -> impl Strategy<Value = NaiveDate> {
    prop_oneof![
        Just(NaiveDate::MIN),
        Just(NaiveDate::MAX),
        (0i64..60).prop_map(|d| as_of() - chrono::Duration::days(d)),
    ]
}

fn hostile_row() -> impl Strategy<Value = (SymbolRow, Option<LatestClose>)> {
    let ticker = prop_oneof![
        "[A-Z]{1,5}",
        Just("BRK.B".to_owned()),
        Just(" brk.b ".to_owned()),
        Just("X".repeat(20)),
        Just("X".repeat(21)),
        "\\PC{0,24}",
    ];
    let kind = prop_oneof![
        Just(Some("CS".to_owned())),
        Just(Some("ETF".to_owned())),
        Just(Some(" CS ".to_owned())),
        Just(None),
    ];
    (
        (
            ticker,
            proptest::option::of(hostile_text()),
            kind,
            proptest::option::of(any::<bool>()),
        ),
        (
            proptest::option::of(hostile_int()),
            proptest::option::of(hostile_int()),
        ),
        (
            proptest::option::of(hostile_text()),
            proptest::option::of(hostile_text()),
        ),
        (
            proptest::option::of(hostile_date()),
            proptest::option::of(hostile_float()),
            proptest::option::of((hostile_date(), hostile_float())),
        ),
    )
        .prop_map(
            |(
                (symbol, name, kind, active),
                (cap, shares),
                (sector, industry),
                (listed, aum, close),
            )| {
                let row = SymbolRow {
                    symbol,
                    name,
                    kind,
                    active,
                    market_cap: cap,
                    weighted_shares_outstanding: shares,
                    sector,
                    industry,
                    list_date: listed,
                    aum_millions: aum,
                    issuer: Some("Issuer".repeat(30)),
                    ..SymbolRow::default()
                };
                (row, close.map(|(date, close)| LatestClose { date, close }))
            },
        )
}

fn hostile_config_row() -> impl Strategy<Value = ConfigRow> {
    let name = prop_oneof![
        Just("market_cap_thresholds"),
        Just("theme_definitions"),
        Just("etf_categories"),
        Just("complete_limits"),
        Just("industry_groups"),
    ];
    let key = prop_oneof![
        Just("mega_cap".to_owned()),
        Just("micro_cap".to_owned()),
        Just("top_1000".to_owned()),
        Just("top_100".to_owned()),
        Just("etf_growth".to_owned()),
        Just("__".to_owned()),
        hostile_text(),
    ];
    let value = prop_oneof![
        Just(json!("lots")),
        Just(json!(-5)),
        Just(json!(1e300)),
        Just(json!(u64::MAX)),
        Just(json!(null)),
        Just(json!(0)),
        hostile_text().prop_map(|t| json!(t)),
        hostile_text().prop_map(|t| json!({"name": t, "include": ["a"]})),
        proptest::collection::vec(hostile_text(), 0..5).prop_map(|t| json!(t)),
        hostile_int().prop_map(|n| json!(n)),
    ];
    (name, key, value).prop_map(|(name, key, value)| ConfigRow {
        name: name.to_owned(),
        key,
        value,
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn hostile_rows_and_settings_never_break_the_catalog(
        rows in proptest::collection::vec(hostile_row(), 0..40),
        config_rows in proptest::collection::vec(hostile_config_row(), 0..8),
    ) {
        let mut config = CatalogConfig::default();
        config.apply_cache_config(&config_rows, None);
        prop_assert!(config.validate().is_ok(), "rows never leave the configuration invalid");

        let snapshot = MarketSnapshot {
            as_of: as_of(),
            closes: rows.iter().map(|(_, c)| *c).collect(),
            symbols: rows.into_iter().map(|(r, _)| r).collect(),
            ..MarketSnapshot::default()
        };
        let securities = normalize(&snapshot, &config);
        for s in &securities.all {
            prop_assert!(s.market_cap.is_none_or(|c| c > 0 && c <= 50_000_000_000_000));
            prop_assert!(s.etf_size() >= 0);
        }
        let catalog = compute_catalog(&securities, &config, &FamilySelection::all());
        for (key, entry) in &catalog.entries {
            prop_assert!(key.entry_type.chars().count() <= TYPE_CHARS, "{key}");
            prop_assert!(key.name.chars().count() <= NAME_CHARS, "{key}");
            prop_assert!(key.key.chars().count() <= KEY_CHARS, "{key}");
            prop_assert!(catalog.owner_of(key).is_some(), "{key} is in an owned scope");
            prop_assert!(serde_json::to_string(&entry.value).is_ok());
        }
        let violations = check_catalog(&catalog, &securities, &config);
        prop_assert!(violations.is_empty(), "{violations:?}");

        let again = compute_catalog(&normalize(&snapshot, &config), &config, &FamilySelection::all());
        let hashes = |c: &Catalog| c.entries.iter().map(|(k, e)| (k.clone(), e.hash)).collect::<Vec<_>>();
        prop_assert_eq!(hashes(&catalog), hashes(&again));
    }
}
