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

// ---------------------------------------------------------------- market_cap bands

#[test]
fn a_stock_at_exactly_ten_billion_is_large_cap_not_mid_cap() {
    let c = catalog(&[cs("TEN", 10 * B)]);
    assert_eq!(bands_of(&c, "TEN"), vec!["large_cap"]);
}

#[test]
fn a_stock_one_dollar_below_ten_billion_is_mid_cap() {
    let c = catalog(&[cs("NINE", 10 * B - 1)]);
    assert_eq!(bands_of(&c, "NINE"), vec!["mid_cap"]);
}

#[test]
fn a_stock_at_exactly_two_hundred_billion_is_mega_cap_not_large_cap() {
    let c = catalog(&[cs("MEGA", 200 * B)]);
    assert_eq!(bands_of(&c, "MEGA"), vec!["mega_cap"]);
}

#[test]
fn a_stock_at_exactly_two_billion_is_mid_cap_not_small_cap() {
    let c = catalog(&[cs("MID", 2 * B)]);
    assert_eq!(bands_of(&c, "MID"), vec!["mid_cap"]);
}

#[test]
fn a_stock_at_exactly_three_hundred_million_is_small_cap_not_micro_cap() {
    let c = catalog(&[cs("SMALL", 300 * M)]);
    assert_eq!(bands_of(&c, "SMALL"), vec!["small_cap"]);
}

#[test]
fn a_stock_at_exactly_fifty_million_is_micro_cap() {
    let c = catalog(&[cs("MICRO", 50 * M)]);
    assert_eq!(bands_of(&c, "MICRO"), vec!["micro_cap"]);
}

#[test]
fn a_stock_one_dollar_below_fifty_million_is_in_no_band() {
    let c = catalog(&[cs("NANO", 50 * M - 1)]);
    assert!(bands_of(&c, "NANO").is_empty());
    // It is still an eligible stock: it leads the market.
    assert_eq!(
        members(entry(&c, "stock_universe/market_leaders/top_10_stocks")),
        vec!["NANO"]
    );
}

#[test]
fn every_band_is_written_even_when_empty() {
    let c = catalog(&[]);
    for band in ["mega_cap", "large_cap", "mid_cap", "small_cap", "micro_cap"] {
        assert_eq!(
            entry(&c, &format!("stock_universe/market_cap/{band}")),
            &json!({"count": 0, "stocks": []})
        );
    }
}

#[test]
fn a_zero_micro_threshold_puts_every_positive_cap_below_small_cap_in_micro_cap() {
    let mut config = CatalogConfig::default();
    config.apply_cache_config(
        &[crate::domain::config::ConfigRow {
            name: "market_cap_thresholds".to_owned(),
            key: "micro_cap".to_owned(),
            value: json!(0),
        }],
        None,
    );
    let c = catalog_with(
        &[
            cs("ONE", 1),
            cs("NANO", 50 * M - 1),
            cs("EDGE", 300 * M - 1),
            cs("SMALL", 300 * M),
        ],
        &config,
    );
    assert_eq!(
        members(entry(&c, "stock_universe/market_cap/micro_cap")),
        vec!["EDGE", "NANO", "ONE"]
    );
    assert_eq!(bands_of(&c, "SMALL"), vec!["small_cap"]);
}

#[test]
fn every_stock_above_the_lowest_threshold_is_in_exactly_one_band() {
    let caps = [
        50 * M,
        50 * M + 1,
        299 * M,
        300 * M,
        1_999_999_999,
        2 * B,
        9 * B,
        10 * B,
        199 * B,
        200 * B,
        3_000 * B,
    ];
    let rows: Vec<Row> = caps
        .iter()
        .enumerate()
        .map(|(i, cap)| cs(&format!("S{i}"), *cap))
        .collect();
    let c = catalog(&rows);
    for (i, _) in caps.iter().enumerate() {
        assert_eq!(bands_of(&c, &format!("S{i}")).len(), 1, "S{i}");
    }
}

#[test]
fn ineligible_rows_are_in_no_band() {
    let mut no_cap = cs("NOCAP", 5 * B);
    no_cap.0.weighted_shares_outstanding = None;
    no_cap.0.market_cap = None;
    let c = catalog(&[
        no_cap,
        cs("GONE", 5 * B).inactive(),
        cs("ADR", 5 * B).kind("ADRC"),
        etf("FUND", "Some Fund").cap(5 * B),
    ]);
    assert!(members(entry(&c, "stock_universe/market_cap/mid_cap")).is_empty());
}

// ---------------------------------------------------------------- ordering and records

#[test]
fn members_are_ordered_by_market_cap_descending_then_ticker_ascending() {
    let c = catalog(&[
        cs("BBB", 5 * B),
        cs("CCC", 7 * B),
        cs("AAA", 5 * B),
        cs("DDD", 3 * B),
    ]);
    assert_eq!(
        members(entry(&c, "stock_universe/market_cap/mid_cap")),
        vec!["CCC", "AAA", "BBB", "DDD"]
    );
}

#[test]
fn ranks_are_one_based_and_count_equals_the_stocks_array_length_in_every_entry() {
    let rows: Vec<Row> = (0..30)
        .map(|i| {
            let sector = ["Technology", "Energy", "Healthcare"][i % 3];
            cs(&format!("T{i:02}"), (i as i64 + 1) * 700 * M).sector(Some(sector))
        })
        .collect();
    let c = catalog(&rows);
    let mut checked = 0;
    for (key, desired) in &c.entries {
        let Some(stocks) = desired.value.get("stocks").and_then(Value::as_array) else {
            continue;
        };
        let extra = desired
            .value
            .get("etfs")
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        assert_eq!(desired.value["count"], json!(stocks.len() + extra), "{key}");
        for (i, record) in stocks.iter().enumerate() {
            assert_eq!(record["rank"], json!(i + 1), "{key}");
        }
        checked += 1;
    }
    assert!(checked > 10);
}

#[test]
fn a_stock_record_has_exactly_the_contract_fields() {
    let c = catalog(&[cs("AAPL", 3_000 * B)
        .sector(Some("Technology"))
        .industry("Consumer Electronics")]);
    let record = &entry(&c, "stock_universe/market_cap/mega_cap")["stocks"][0];
    let mut fields: Vec<&str> = record
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    fields.sort_unstable();
    assert_eq!(
        fields,
        vec![
            "exchange",
            "industry",
            "market",
            "market_cap",
            "name",
            "rank",
            "sector",
            "ticker"
        ]
    );
    assert_eq!(
        record,
        &json!({
            "ticker": "AAPL",
            "name": "AAPL Corp",
            "rank": 1,
            "sector": "Technology",
            "industry": "Consumer Electronics",
            "exchange": "XNYS",
            "market": "stocks",
            "market_cap": 3_000 * B,
        })
    );
}

#[test]
fn missing_text_fields_are_written_as_unknown() {
    let mut row = cs("BARE", 5 * B).sector(None);
    row.0.name = None;
    row.0.industry = None;
    row.0.primary_exchange = None;
    row.0.market = None;
    let c = catalog(&[row]);
    let record = &entry(&c, "stock_universe/market_cap/mid_cap")["stocks"][0];
    for field in ["name", "sector", "industry", "exchange", "market"] {
        assert_eq!(record[field], json!("Unknown"), "{field}");
    }
}

// ---------------------------------------------------------------- market_leaders

#[test]
fn each_market_leaders_list_is_a_prefix_of_the_next() {
    let rows: Vec<Row> = (0..60)
        .map(|i| cs(&format!("L{i:02}"), (100 + i as i64) * 100 * M))
        .collect();
    let c = catalog(&rows);
    let lists: Vec<Vec<String>> = [
        "top_10_stocks",
        "top_50",
        "top_100",
        "top_250",
        "top_500",
        "top_2000",
    ]
    .iter()
    .map(|k| members(entry(&c, &format!("stock_universe/market_leaders/{k}"))))
    .collect();
    assert_eq!(lists[0].len(), 10);
    assert_eq!(lists[1].len(), 50);
    assert_eq!(lists[2].len(), 60);
    assert_eq!(lists[0][0], "L59");
    for pair in lists.windows(2) {
        assert!(pair[1].starts_with(&pair[0]));
    }
    assert_eq!(lists[5], lists[2]);
}

#[test]
fn a_small_market_gives_shorter_leader_lists() {
    let c = catalog(&[cs("A", 3 * B), cs("B", 2 * B), cs("C", B)]);
    assert_eq!(keys_in(&c, "stock_universe", "market_leaders").len(), 6);
    for key in keys_in(&c, "stock_universe", "market_leaders") {
        let value = entry(&c, &format!("stock_universe/market_leaders/{key}"));
        assert_eq!(members(value), vec!["A", "B", "C"], "{key}");
        assert_eq!(value["count"], json!(3));
    }
}

// ---------------------------------------------------------------- sector_leaders

#[test]
fn slug_lowercases_joins_words_with_underscores_and_spells_out_ampersands() {
    assert_eq!(slug("Consumer Cyclical"), "consumer_cyclical");
    assert_eq!(slug("Oil & Gas"), "oil_and_gas");
    assert_eq!(slug("  Real   Estate "), "real_estate");
    assert_eq!(slug("Technology"), "technology");
}

#[test]
fn sector_leader_keys_are_top_10_and_the_sector_slug() {
    let c = catalog(&[
        cs("AMZN", 2_000 * B).sector(Some("Consumer Cyclical")),
        cs("XOM", 400 * B).sector(Some("Oil & Gas")),
        cs("MSFT", 3_000 * B).sector(Some("Technology")),
    ]);
    assert_eq!(
        keys_in(&c, "stock_universe", "sector_leaders"),
        vec![
            "top_10_consumer_cyclical",
            "top_10_oil_and_gas",
            "top_10_technology"
        ]
    );
    assert_eq!(
        members(entry(
            &c,
            "stock_universe/sector_leaders/top_10_oil_and_gas"
        )),
        vec!["XOM"]
    );
}

#[test]
fn null_and_unknown_sectors_have_no_sector_leaders() {
    let c = catalog(&[
        cs("NULLS", 50 * B).sector(None),
        cs("UNK", 40 * B).sector(Some("Unknown")),
        cs("BLANK", 30 * B).sector(Some("   ")),
        cs("TECH", 20 * B).sector(Some("Technology")),
    ]);
    assert_eq!(
        keys_in(&c, "stock_universe", "sector_leaders"),
        vec!["top_10_technology"]
    );
    let all: Vec<String> = keys_in(&c, "stock_universe", "sector_leaders")
        .iter()
        .flat_map(|k| members(entry(&c, &format!("stock_universe/sector_leaders/{k}"))))
        .collect();
    assert_eq!(all, vec!["TECH"]);
}

#[test]
fn a_sector_keeps_only_its_ten_largest_stocks() {
    let rows: Vec<Row> = (1..=13)
        .map(|i| cs(&format!("E{i:02}"), i * B).sector(Some("Energy")))
        .collect();
    let c = catalog(&rows);
    let value = entry(&c, "stock_universe/sector_leaders/top_10_energy");
    let expected: Vec<String> = (4..=13).rev().map(|i| format!("E{i:02}")).collect();
    assert_eq!(members(value), expected);
    assert_eq!(value["count"], json!(10));
    assert_eq!(value["stocks"][9]["rank"], json!(10));
}

// ---------------------------------------------------------------- industry

#[test]
fn an_industry_needs_at_least_three_eligible_stocks() {
    let c = catalog(&[
        cs("SW1", 5 * B).industry("Software"),
        cs("SW2", 4 * B).industry("Software"),
        cs("SW3", 3 * B).industry("Software"),
        cs("BIO1", 5 * B).industry("Biotechnology"),
        cs("BIO2", 4 * B).industry("Biotechnology"),
        cs("BIO3", 3 * B).industry("Biotechnology").inactive(),
        cs("BIO4", 3 * B).industry("Biotechnology").kind("ETF"),
    ]);
    assert_eq!(keys_in(&c, "stock_universe", "industry"), vec!["software"]);
}

#[test]
fn at_most_twenty_industries_are_chosen_by_count_then_name() {
    let mut rows = Vec::new();
    // 21 industries of three stocks, named "Ind A" … "Ind U", and one of four stocks named last.
    for (n, letter) in ('A'..='U').enumerate() {
        for j in 0..3 {
            rows.push(
                cs(&format!("I{letter}{j}"), (n as i64 * 10 + j + 1) * 100 * M)
                    .industry(&format!("Ind {letter}")),
            );
        }
    }
    for j in 0..4 {
        rows.push(cs(&format!("Z{j}"), (j + 1) * 100 * M).industry("Zeta Tools"));
    }
    let c = catalog(&rows);
    let keys = keys_in(&c, "stock_universe", "industry");
    assert_eq!(keys.len(), 20);
    assert!(keys.contains(&"zeta_tools".to_owned()));
    let mut expected: Vec<String> = ('a'..='s').map(|l| format!("ind_{l}")).collect();
    expected.push("zeta_tools".to_owned());
    assert_eq!(keys, expected);
    assert!(!has_entry(&c, "stock_universe/industry/ind_t"));
    assert!(!has_entry(&c, "stock_universe/industry/ind_u"));
}

#[test]
fn an_industry_lists_at_most_its_fifteen_largest_stocks() {
    let rows: Vec<Row> = (1..=17)
        .map(|i| cs(&format!("SW{i:02}"), i * B).industry("Software"))
        .collect();
    let c = catalog(&rows);
    let value = entry(&c, "stock_universe/industry/software");
    let expected: Vec<String> = (3..=17).rev().map(|i| format!("SW{i:02}")).collect();
    assert_eq!(members(value), expected);
    assert_eq!(value["count"], json!(15));
}

#[test]
fn an_industry_value_names_its_most_common_sector() {
    let c = catalog(&[
        cs("A1", 9 * B)
            .industry("Semiconductors")
            .sector(Some("Industrials")),
        cs("A2", 8 * B)
            .industry("Semiconductors")
            .sector(Some("Technology")),
        cs("A3", 7 * B)
            .industry("Semiconductors")
            .sector(Some("Technology")),
        // A three-way tie goes to the first sector by name.
        cs("B1", 9 * B)
            .industry("Specialty Retail")
            .sector(Some("Technology")),
        cs("B2", 8 * B)
            .industry("Specialty Retail")
            .sector(Some("Consumer Cyclical")),
        cs("B3", 7 * B)
            .industry("Specialty Retail")
            .sector(Some("Energy")),
    ]);
    let semis = entry(&c, "stock_universe/industry/semiconductors");
    assert_eq!(semis["sector"], json!("Technology"));
    assert_eq!(semis["count"], json!(3));
    assert_eq!(members(semis), vec!["A1", "A2", "A3"]);
    assert_eq!(
        entry(&c, "stock_universe/industry/specialty_retail")["sector"],
        json!("Consumer Cyclical")
    );
}

// ---------------------------------------------------------------- themes

#[test]
fn a_theme_list_is_the_sorted_tickers_of_its_active_common_stocks() {
    // ai = NVDA GOOGL MSFT AMD: GOOGL inactive, AMD an ETF here; nothing else configured is present.
    let c = catalog(&[
        cs("NVDA", 3_000 * B),
        cs("MSFT", 3_100 * B),
        cs("GOOGL", 2_000 * B).inactive(),
        etf("AMD", "Not Really A Fund"),
        cs("AAPL", 3_500 * B),
    ]);
    assert_eq!(entry(&c, "themes/Ai/list"), &json!(["MSFT", "NVDA"]));
    let records = entry(&c, "stock_universe/themes/ai");
    assert_eq!(members(records), vec!["MSFT", "NVDA"]);
    assert_eq!(records["count"], json!(2));
    assert_eq!(records["stocks"][0]["market_cap"], json!(3_100 * B));
    assert_eq!(records["stocks"][1]["rank"], json!(2));
}

#[test]
fn every_configured_theme_gets_both_entries_even_when_empty() {
    let c = catalog(&[]);
    for (name, id) in [
        ("Ai", "ai"),
        ("Biotech", "biotech"),
        ("Cloud", "cloud"),
        ("Crypto", "crypto"),
    ] {
        assert_eq!(entry(&c, &format!("themes/{name}/list")), &json!([]));
        assert_eq!(
            entry(&c, &format!("stock_universe/themes/{id}")),
            &json!({"count": 0, "stocks": []})
        );
    }
    assert_eq!(keys_in(&c, "stock_universe", "themes").len(), 4);
}

#[test]
fn configured_theme_tickers_are_normalised_deduplicated_and_title_cased() {
    let mut config = CatalogConfig::default();
    config.themes.insert(
        "clean_energy".to_owned(),
        strings(&[" enph", "FSLR", "fslr", "NOPE", "bad ticker"]),
    );
    let c = catalog_with(&[cs("ENPH", 20 * B), cs("FSLR", 25 * B)], &config);
    assert_eq!(
        entry(&c, "themes/Clean Energy/list"),
        &json!(["ENPH", "FSLR"])
    );
    assert_eq!(
        members(entry(&c, "stock_universe/themes/clean_energy")),
        vec!["ENPH", "FSLR"]
    );
}

// ---------------------------------------------------------------- etfs

fn etf_market() -> Vec<Row> {
    vec![
        etf("BND", "Vanguard Total Bond Market ETF"),
        etf("VTI", "Vanguard Total Stock Market ETF"),
        etf("SPY", "SPDR S&P 500 ETF Trust"),
        etf("VUG", "vanguard GROWTH etf"),
        etf("VXUS", "Vanguard Total International Stock ETF"),
        etf("XLK", "Technology Select Sector SPDR Fund"),
        etf("MTUM", "iShares MSCI USA Momentum Factor ETF"),
        etf("IGOV", "iShares International Treasury Bond ETF"),
        etf("OLDX", "SPDR Old Growth Technology Bond Fund").inactive(),
        etf("QQQ", "Invesco QQQ Trust"),
        cs("GROWTHCO", 5 * B),
    ]
}

#[test]
fn etf_categories_match_names_by_case_insensitive_substring_with_exclusions() {
    let c = catalog(&etf_market());
    let list = |name: &str, key: &str| entry(&c, &format!("etf_universe/{name}/{key}")).clone();
    assert_eq!(
        list("Broad Market ETFs", "etf_broad_market"),
        json!(["SPY", "VTI"])
    );
    assert_eq!(list("Bond ETFs", "etf_bonds"), json!(["BND", "IGOV"]));
    assert_eq!(list("Growth ETFs", "etf_growth"), json!(["VUG"]));
    assert_eq!(list("Value ETFs", "etf_value"), json!([]));
    assert_eq!(list("Technology ETFs", "etf_technology"), json!(["XLK"]));
    assert_eq!(
        list("International ETFs", "etf_international"),
        json!(["VXUS"])
    );
    assert_eq!(list("Factor ETFs", "etf_factor"), json!(["MTUM"]));
}

#[test]
fn etf_all_takes_every_active_etf_sorted_by_ticker_and_no_inactive_one() {
    let c = catalog(&etf_market());
    assert_eq!(
        entry(&c, "etf_universe/All ETFs/etf_all"),
        &json!(["BND", "IGOV", "MTUM", "QQQ", "SPY", "VTI", "VUG", "VXUS", "XLK"])
    );
    for (key, desired) in &c.entries {
        assert!(
            !members(&desired.value).contains(&"OLDX".to_owned()),
            "{key}"
        );
    }
}

#[test]
fn a_detailed_etf_value_holds_count_and_records_sorted_by_ticker() {
    let mut rows = etf_market();
    rows.push(Row(
        SymbolRow {
            symbol: "AGG".to_owned(),
            name: Some("iShares Core US Aggregate Bond ETF".to_owned()),
            kind: Some("ETF".to_owned()),
            active: Some(true),
            ..SymbolRow::default()
        },
        None,
    ));
    let c = catalog(&rows);
    assert_eq!(
        entry(&c, "etf_universe/Bond ETFs/etf_bonds_detailed"),
        &json!({
            "count": 3,
            "etfs": [
                {"symbol": "AGG", "name": "iShares Core US Aggregate Bond ETF", "etf_type": "ETF", "issuer": "Unknown"},
                {"symbol": "BND", "name": "Vanguard Total Bond Market ETF", "etf_type": "Equity", "issuer": "Vanguard"},
                {"symbol": "IGOV", "name": "iShares International Treasury Bond ETF", "etf_type": "Equity", "issuer": "Vanguard"},
            ]
        })
    );
    // Every category has its plain and detailed entry, listing the same tickers.
    for category in CatalogConfig::default().etf_categories {
        let plain = entry(
            &c,
            &format!("etf_universe/{}/{}", category.name, category.key),
        );
        let detailed = entry(
            &c,
            &format!("etf_universe/{}/{}_detailed", category.name, category.key),
        );
        assert_eq!(json!(members(detailed)), *plain, "{}", category.key);
        assert_eq!(detailed["count"], json!(plain.as_array().unwrap().len()));
    }
}

#[test]
fn a_renamed_etf_category_is_written_under_its_new_display_name() {
    let mut config = CatalogConfig::default();
    config.apply_cache_config(
        &[crate::domain::config::ConfigRow {
            name: "etf_categories".to_owned(),
            key: "etf_growth".to_owned(),
            value: json!("Growth Funds"),
        }],
        None,
    );
    let c = catalog_with(&etf_market(), &config);
    assert_eq!(
        entry(&c, "etf_universe/Growth Funds/etf_growth"),
        &json!(["VUG"])
    );
    assert!(keys_in(&c, "etf_universe", "Growth ETFs").is_empty());
    // The old display name stays owned so the stale rows get deleted.
    assert_eq!(
        c.scopes.get(&Scope::new("etf_universe", "Growth ETFs")),
        Some(&Family::Etfs)
    );
}

// ---------------------------------------------------------------- complete

#[test]
fn complete_holds_the_top_1000_records_and_every_eligible_ticker_by_market_cap() {
    let mut no_cap = cs("NOCAP", B);
    no_cap.0.weighted_shares_outstanding = None;
    let c = catalog(&[
        cs("MID", 5 * B),
        cs("BIG", 50 * B),
        cs("TINY", 10 * M),
        cs("GONE", 80 * B).inactive(),
        no_cap,
        etf("SPY", "SPDR S&P 500 ETF Trust"),
    ]);
    let top = entry(&c, "stock_universe/complete/top_1000");
    assert_eq!(members(top), vec!["BIG", "MID", "TINY"]);
    assert_eq!(top["count"], json!(3));
    assert_eq!(top["stocks"][2]["rank"], json!(3));
    assert_eq!(
        entry(&c, "stock_universe/complete/all_stocks"),
        &json!(["BIG", "MID", "TINY"])
    );
}

#[test]
fn complete_top_1000_is_cut_at_the_configured_limit() {
    let config = CatalogConfig {
        complete_stock_limit: 2,
        ..CatalogConfig::default()
    };
    let c = catalog_with(&[cs("A", 3 * B), cs("B", 2 * B), cs("C", B)], &config);
    assert_eq!(
        members(entry(&c, "stock_universe/complete/top_2")),
        vec!["A", "B"]
    );
    assert_eq!(
        entry(&c, "stock_universe/complete/all_stocks"),
        &json!(["A", "B", "C"])
    );
}

#[test]
fn complete_etfs_rank_by_market_cap_else_aum_else_zero() {
    let c = catalog(&[
        etf("EEE", "Nothing Known"),
        etf("AAA", "Has Shares").cap(5 * B),
        etf("BBB", "Has Aum").aum_millions(6_000.0),
        etf("CCC", "Nothing Known Either"),
        etf("DDD", "Small Aum").aum_millions(1_000.0),
        etf("OLD", "Inactive But Huge").cap(900 * B).inactive(),
    ]);
    assert_eq!(
        entry(&c, "etf_universe/complete/top_100"),
        &json!(["BBB", "AAA", "DDD", "CCC", "EEE"])
    );
    assert_eq!(
        entry(&c, "etf_universe/complete/all_etfs"),
        &json!(["BBB", "AAA", "DDD", "CCC", "EEE"])
    );
}

#[test]
fn a_market_cap_takes_precedence_over_aum_when_ranking_etfs() {
    let c = catalog(&[
        etf("CAP", "By Cap").cap(2 * B).aum_millions(1.0),
        etf("AUM", "By Aum").aum_millions(3_000.0),
    ]);
    assert_eq!(
        entry(&c, "etf_universe/complete/top_100"),
        &json!(["AUM", "CAP"])
    );
}

// ---------------------------------------------------------------- ipos

#[test]
fn a_listing_exactly_thirty_days_before_the_as_of_date_is_recent_and_thirty_one_is_not() {
    let c = catalog(&[
        cs("EDGE", 5 * B).listed_days_before(30),
        cs("OUT", 5 * B).listed_days_before(31),
    ]);
    assert_eq!(
        members(entry(&c, "stock_universe/ipos/recent_ipos")),
        vec!["EDGE"]
    );
}

#[test]
fn recent_ipos_are_newest_first_with_active_stocks_and_etfs_only() {
    let c = catalog(&[
        cs("NEW0", 5 * B).listed_days_before(0),
        cs("NEWB", 6 * B).listed_days_before(10),
        cs("NEWA", 4 * B).listed_days_before(10),
        cs("EDGE", 5 * B).listed_days_before(30),
        etf("FRESH", "Fresh Fund").listed_days_before(5),
        cs("GONE", 5 * B).listed_days_before(3).inactive(),
        etf("GONEF", "Gone Fund").listed_days_before(3).inactive(),
        cs("ADR", 5 * B).listed_days_before(2).kind("ADRC"),
        cs("FUTURE", 5 * B).listed_days_before(-1),
        cs("OLD", 5 * B).listed_days_before(400),
    ]);
    let value = entry(&c, "stock_universe/ipos/recent_ipos");
    assert_eq!(
        members(value),
        vec!["NEW0", "FRESH", "NEWA", "NEWB", "EDGE"]
    );
    assert_eq!(value["count"], json!(5));
    assert_eq!(value["stocks"][0]["rank"], json!(1));
    assert_eq!(value["stocks"][0]["list_date"], json!("2026-03-02"));
    assert_eq!(value["stocks"][0]["type"], json!("CS"));
    assert_eq!(value["stocks"][1]["type"], json!("ETF"));
    assert_eq!(value["stocks"][4]["list_date"], json!("2026-01-31"));
}

// ---------------------------------------------------------------- stats

#[test]
fn the_stats_summary_totals_eligible_stocks_and_records_the_as_of_date() {
    let c = catalog(&[
        cs("MEGA", 300 * B).sector(Some("Technology")),
        cs("LARGE", 20 * B).sector(Some("Energy")),
        cs("MID", 5 * B).sector(Some("Technology")),
        cs("SMALL", B).sector(None),
        cs("MICRO", 100 * M).sector(Some("Energy")),
        cs("NANO", 10 * M).sector(Some("Energy")),
        cs("GONE", 900 * B).inactive(),
        etf("SPY", "SPDR S&P 500 ETF Trust"),
        etf("QQQ", "Invesco QQQ Trust"),
        etf("OLD", "Old Fund").inactive(),
    ]);
    let value = entry(&c, "stock_stats/universe/summary");
    assert_eq!(
        value.as_object().unwrap().keys().collect::<Vec<_>>(),
        vec!["overview"]
    );
    let overview = &value["overview"];
    let total = 300 * B + 20 * B + 5 * B + B + 100 * M + 10 * M;
    assert_eq!(overview["total_stocks"], json!(6));
    assert_eq!(overview["total_etfs"], json!(2));
    assert_eq!(overview["total_market_cap"], json!(total));
    assert_eq!(overview["average_market_cap"], json!(total / 6));
    assert_eq!(overview["median_market_cap"], json!(3 * B));
    assert_eq!(
        overview["market_cap_distribution"],
        json!({"mega_cap": 1, "large_cap": 1, "mid_cap": 1, "small_cap": 1, "micro_cap": 1})
    );
    assert_eq!(
        overview["sector_distribution"],
        json!({"Energy": 3, "Technology": 2, "Unknown": 1})
    );
    assert_eq!(overview["last_updated"], json!("2026-03-02"));
}

#[test]
fn the_stats_summary_of_an_empty_market_is_all_zeroes() {
    let c = catalog(&[]);
    let overview = &entry(&c, "stock_stats/universe/summary")["overview"];
    assert_eq!(overview["total_stocks"], json!(0));
    assert_eq!(overview["average_market_cap"], json!(0));
    assert_eq!(overview["median_market_cap"], json!(0));
    assert_eq!(overview["last_updated"], json!("2026-03-02"));
}

// ---------------------------------------------------------------- combo

#[test]
fn the_combo_holds_the_top_fifty_stocks_then_the_essential_etfs_present() {
    let mut rows: Vec<Row> = (1..=55).map(|i| cs(&format!("S{i:02}"), i * B)).collect();
    rows.push(etf("QQQ", "Invesco QQQ Trust"));
    rows.push(etf("SPY", "SPDR S&P 500 ETF Trust"));
    rows.push(etf("IWM", "iShares Russell 2000 ETF").inactive());
    rows.push(etf("VOO", "Vanguard S&P 500 ETF"));
    let c = catalog(&rows);
    let mut expected: Vec<String> = (6..=55).rev().map(|i| format!("S{i:02}")).collect();
    expected.extend(strings(&["QQQ", "SPY"]));
    assert_eq!(
        entry(&c, "stock_etf_combo/stock_etf_test/combo_test"),
        &json!(expected)
    );
    let detailed = entry(&c, "stock_etf_combo/stock_etf_test/combo_test_detailed");
    assert_eq!(detailed["count"], json!(52));
    assert_eq!(detailed["stocks"].as_array().unwrap().len(), 50);
    assert_eq!(detailed["stocks"][49]["rank"], json!(50));
    assert_eq!(members(detailed)[50..], strings(&["QQQ", "SPY"]));
}

mod legacy_shapes;

// ---------------------------------------------------------------- inactive symbols

#[test]
fn inactive_symbols_are_in_no_universe_at_all() {
    let rows = vec![
        cs("NVDA", 3_000 * B)
            .inactive()
            .listed_days_before(2)
            .sector(Some("Technology")),
        cs("MSFT", 3_100 * B),
        etf("SPY", "SPDR S&P 500 ETF Trust")
            .cap(500 * B)
            .inactive()
            .listed_days_before(1),
        etf("VTI", "Vanguard Total Stock Market ETF"),
        {
            let mut r = cs("NULLACT", 2_900 * B);
            r.0.active = None;
            r
        },
    ];
    let c = catalog(&rows);
    let mut seen = 0;
    for (key, desired) in &c.entries {
        let m = members(&desired.value);
        seen += m.len();
        for gone in ["NVDA", "SPY", "NULLACT"] {
            assert!(!m.contains(&gone.to_owned()), "{gone} is in {key}");
        }
    }
    assert!(seen > 0);
    assert_eq!(
        entry(&c, "stock_stats/universe/summary")["overview"]["total_stocks"],
        json!(1)
    );
}

// ---------------------------------------------------------------- determinism

fn busy_market() -> Vec<Row> {
    let mut rows: Vec<Row> = (0..40)
        .map(|i| {
            let sector = ["Technology", "Energy", "Healthcare", "Oil & Gas"][i % 4];
            let industry = ["Software", "Drilling", "Biotech"][i % 3];
            cs(&format!("D{i:02}"), ((i as i64 * 7919) % 97 + 1) * 900 * M)
                .sector(Some(sector))
                .industry(industry)
                .listed_days_before(i as i64)
        })
        .collect();
    rows.extend([
        cs("NVDA", 3_000 * B),
        cs("MSFT", 3_000 * B),
        cs(" msft ", 1).sector(Some("Wrong")),
        etf("SPY", "SPDR S&P 500 ETF Trust").aum_millions(500_000.0),
        etf("BND", "Vanguard Total Bond Market ETF").cap(100 * B),
        etf("VUG", "Vanguard Growth ETF"),
        cs("GONE", 10 * B).inactive(),
    ]);
    rows
}

#[test]
fn computing_twice_gives_byte_identical_values_and_equal_hashes() {
    let first = catalog(&busy_market());
    let second = catalog(&busy_market());
    assert_eq!(
        first.entries.keys().collect::<Vec<_>>(),
        second.entries.keys().collect::<Vec<_>>()
    );
    for (key, a) in &first.entries {
        let b = &second.entries[key];
        assert_eq!(canonical_json(&a.value), canonical_json(&b.value), "{key}");
        assert_eq!(a.hash, b.hash, "{key}");
        assert_eq!(a.hash, hash_value(&a.value), "{key}");
    }
    assert_eq!(first.scopes, second.scopes);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn shuffling_the_input_rows_gives_the_same_catalog(rows in Just(busy_market()).prop_shuffle()) {
        let expected = catalog(&busy_market());
        let shuffled = catalog(&rows);
        prop_assert_eq!(&shuffled.entries, &expected.entries);
        prop_assert_eq!(&shuffled.scopes, &expected.scopes);
    }
}

// ---------------------------------------------------------------- ownership

#[test]
fn owned_scopes_include_every_generated_type_and_name_with_its_family() {
    let c = catalog(&busy_market());
    for (key, desired) in &c.entries {
        assert_eq!(c.owner_of(key), Some(desired.family), "{key}");
    }
    for category in CatalogConfig::default().etf_categories {
        assert_eq!(
            c.scopes.get(&Scope::new("etf_universe", &category.name)),
            Some(&Family::Etfs)
        );
    }
    for name in ["Ai", "Biotech", "Cloud", "Crypto"] {
        assert_eq!(
            c.scopes.get(&Scope::new("themes", name)),
            Some(&Family::Themes)
        );
    }
    assert_eq!(c.owner_of(&EntryKey::new("themes", "Custom", "list")), None);
    assert_eq!(
        c.owner_of(&EntryKey::new("app_settings", "ui", "theme")),
        None
    );
    assert_eq!(
        c.owner_of(&EntryKey::new(
            "cache_config",
            "etf_categories",
            "etf_growth"
        )),
        None
    );
}

#[test]
fn sector_leaders_industry_and_themes_scopes_are_owned_even_in_an_empty_market() {
    let c = catalog(&[]);
    assert_eq!(
        c.scopes
            .get(&Scope::new("stock_universe", "sector_leaders")),
        Some(&Family::SectorLeaders)
    );
    assert_eq!(
        c.scopes.get(&Scope::new("stock_universe", "industry")),
        Some(&Family::Industry)
    );
    assert_eq!(
        c.scopes.get(&Scope::new("stock_universe", "themes")),
        Some(&Family::Themes)
    );
    assert!(keys_in(&c, "stock_universe", "sector_leaders").is_empty());
    assert!(keys_in(&c, "stock_universe", "industry").is_empty());
}

#[test]
fn a_selection_computes_and_owns_only_its_families() {
    let securities = normalize(&snapshot(&busy_market()), &CatalogConfig::default());
    let c = compute_catalog(
        &securities,
        &CatalogConfig::default(),
        &FamilySelection::only(&[Family::Themes, Family::Ipos]),
    );
    assert!(!c.entries.is_empty());
    assert!(c
        .entries
        .values()
        .all(|e| matches!(e.family, Family::Themes | Family::Ipos)));
    assert!(c
        .scopes
        .values()
        .all(|f| matches!(f, Family::Themes | Family::Ipos)));
    assert_eq!(
        c.owner_of(&EntryKey::new("stock_universe", "market_cap", "large_cap")),
        None
    );
}
