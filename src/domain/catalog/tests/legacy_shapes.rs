//! One test per value shape that follows the legacy job or, where the app reads ours and skipped
//! the legacy one, keeps ours. "Legacy" is TickStockAppV2's
//! `src/core/services/cache_entries_synchronizer.py` at the parent of commit `4ac55ce`; "the
//! loader" is the app's `src/infrastructure/cache/cache_control.py`.

use super::*;

fn object_keys(value: &Value) -> Vec<&str> {
    value
        .as_object()
        .unwrap_or_else(|| panic!("an object: {value}"))
        .keys()
        .map(String::as_str)
        .collect()
}

/// Legacy `_create_complete_stocks_entries` (`ORDER BY market_cap DESC`, a plain ticker array);
/// read by the app's `HistoricalLoader.load_symbols_from_cache('all_stocks')` as a list.
#[test]
fn all_stocks_is_every_eligible_ticker_by_market_cap_descending_as_legacy_wrote_it() {
    let c = catalog(&[
        cs("AAA", 2 * B),
        cs("ZZZ", 90 * B),
        cs("MMM", 7 * B),
        cs("BBB", 7 * B),
    ]);
    assert_eq!(
        entry(&c, "stock_universe/complete/all_stocks"),
        &json!(["ZZZ", "BBB", "MMM", "AAA"]),
        "market cap descending, ticker ascending on ties"
    );
}

/// Legacy `_create_complete_etf_entries`
/// (`ORDER BY COALESCE(market_cap, aum_millions * 1000000, 0) DESC`, a plain ticker array);
/// the loader's `CacheControl._build_universe_selections` makes it the `etf_all_etfs` dropdown.
#[test]
fn all_etfs_is_every_active_etf_by_size_descending_as_legacy_wrote_it() {
    let c = catalog(&[
        etf("AAA", "Small").aum_millions(10.0),
        etf("ZZZ", "Big").cap(90 * B),
        etf("MMM", "Middle").aum_millions(5_000.0),
        etf("NNN", "Nothing Known"),
    ]);
    assert_eq!(
        entry(&c, "etf_universe/complete/all_etfs"),
        &json!(["ZZZ", "MMM", "AAA", "NNN"])
    );
}

/// Legacy `_create_complete_etf_entries` wrote `etf_universe/complete/top_100` as
/// `{"count", "etfs": [...]}`, which the loader's `CacheControl._build_universe_selections`
/// skips (it builds ETF dropdowns from plain arrays only). Ours stays a plain array, so the app
/// gets its `etf_top_100` dropdown.
#[test]
fn the_top_etfs_stay_a_plain_array_because_the_loader_reads_only_that() {
    let c = catalog(&[etf("SPY", "SPDR S&P 500 ETF Trust").cap(500 * B)]);
    assert_eq!(entry(&c, "etf_universe/complete/top_100"), &json!(["SPY"]));
}

/// Legacy `_create_theme_entries` wrote `stock_universe/themes/{theme}` as a plain ticker array,
/// which the loader's `CacheControl._build_universe_selections` skips under `stock_universe`
/// (only objects with `stocks` become dropdowns). Ours stays `{"count", "stocks"}`, so the app
/// gets `themes:ai`; `HistoricalLoader.load_symbols_from_cache('ai')` reads either shape.
#[test]
fn stock_universe_themes_stay_objects_with_stocks_because_the_loader_reads_only_those() {
    let c = catalog(&[cs("NVDA", 3_000 * B), cs("AMD", 200 * B)]);
    let value = entry(&c, "stock_universe/themes/ai");
    assert_eq!(object_keys(value), vec!["count", "stocks"]);
    assert_eq!(value["stocks"][0]["ticker"], json!("AMD"));
    assert_eq!(entry(&c, "themes/Ai/list"), &json!(["AMD", "NVDA"]));
}

fn combo_market() -> Vec<Row> {
    let mut rows: Vec<Row> = (1..=3).map(|i| cs(&format!("S{i}"), i * B)).collect();
    rows.push(etf("SPY", "SPDR S&P 500 ETF Trust"));
    rows.push(etf("AGG", "iShares Core US Aggregate Bond ETF"));
    let mut untyped = etf("QQQ", "Invesco QQQ Trust");
    untyped.0.etf_type = None;
    untyped.0.primary_exchange = None;
    rows.push(untyped);
    rows
}

/// Legacy `_create_combo_test_entries`: `count`, `description`, `composition`, stock records
/// with `"type": "stock"`, ETF records `ticker`, `name`, `etf_type` (default "ETF"), `issuer`,
/// `exchange`, `market` and `"type": "etf"`, the ETFs by ticker. The loader's
/// `CacheControl._build_universe_selections` reads `stocks[].ticker` and `count`.
#[test]
fn combo_test_detailed_has_the_legacy_shape() {
    let c = catalog(&combo_market());
    let value = entry(&c, "stock_etf_combo/stock_etf_test/combo_test_detailed");
    assert_eq!(
        object_keys(value),
        vec!["composition", "count", "description", "etfs", "stocks"]
    );
    assert_eq!(value["count"], json!(6));
    assert_eq!(value["composition"], json!({"stocks": 3, "etfs": 3}));
    assert_eq!(
        value["description"],
        json!("Comprehensive test universe: Top 50 stocks + essential ETFs for market coverage")
    );
    let stock = &value["stocks"][0];
    assert_eq!(
        object_keys(stock),
        vec![
            "exchange",
            "industry",
            "market",
            "market_cap",
            "name",
            "rank",
            "sector",
            "ticker",
            "type"
        ]
    );
    assert_eq!(stock["ticker"], json!("S3"));
    assert_eq!(stock["type"], json!("stock"));
    assert_eq!(stock["rank"], json!(1));
    assert!(stock["market_cap"].is_i64());
    assert_eq!(
        value["etfs"],
        json!([
            {"ticker": "AGG", "name": "iShares Core US Aggregate Bond ETF", "etf_type": "Equity",
             "issuer": "Vanguard", "exchange": "ARCX", "market": "stocks", "type": "etf"},
            {"ticker": "QQQ", "name": "Invesco QQQ Trust", "etf_type": "ETF",
             "issuer": "Vanguard", "exchange": "Unknown", "market": "stocks", "type": "etf"},
            {"ticker": "SPY", "name": "SPDR S&P 500 ETF Trust", "etf_type": "Equity",
             "issuer": "Vanguard", "exchange": "ARCX", "market": "stocks", "type": "etf"},
        ])
    );
}

/// Legacy `_create_combo_test_entries`: the stocks' tickers then the ETFs' by ticker (its ETF
/// query's `ORDER BY symbol`); read by `HistoricalLoader.load_symbols_from_cache('combo_test')`
/// and the loader's `stock_etf_test:combo_test` dropdown.
#[test]
fn combo_test_is_the_stocks_then_the_etfs_by_ticker() {
    let c = catalog(&combo_market());
    assert_eq!(
        entry(&c, "stock_etf_combo/stock_etf_test/combo_test"),
        &json!(["S3", "S2", "S1", "AGG", "QQQ", "SPY"])
    );
}

/// Legacy `_create_etf_entries`: `{"symbol", "name", "etf_type" (default "ETF"), "issuer"}`.
#[test]
fn a_detailed_etf_record_defaults_its_type_to_etf_as_legacy_did() {
    let c = catalog(&combo_market());
    let detailed = entry(&c, "etf_universe/All ETFs/etf_all_detailed");
    let qqq = &detailed["etfs"][1];
    assert_eq!(
        object_keys(qqq),
        vec!["etf_type", "issuer", "name", "symbol"]
    );
    assert_eq!(qqq["symbol"], json!("QQQ"));
    assert_eq!(qqq["etf_type"], json!("ETF"));
}

/// Legacy `_create_stats_entries`: `overview.unique_exchanges` and `overview.unique_markets`
/// (`COUNT(DISTINCT …)` over eligible stocks, NULLs not counted); the loader keeps the value in
/// `stock_stats`.
#[test]
fn the_stats_overview_counts_distinct_exchanges_and_markets_as_legacy_did() {
    let mut nasdaq = cs("NQ", 5 * B);
    nasdaq.0.primary_exchange = Some("XNAS".to_owned());
    let mut otc = cs("OT", 4 * B);
    otc.0.market = Some("otc".to_owned());
    otc.0.primary_exchange = None;
    let c = catalog(&[
        cs("NY", 6 * B),
        nasdaq,
        otc,
        etf("SPY", "SPDR S&P 500 ETF Trust"),
    ]);
    let overview = &entry(&c, "stock_stats/universe/summary")["overview"];
    assert_eq!(
        overview["unique_exchanges"],
        json!(2),
        "XNYS, XNAS; NULL not counted"
    );
    assert_eq!(overview["unique_markets"], json!(2), "stocks, otc");
    assert_eq!(overview["total_stocks"], json!(3));
}
