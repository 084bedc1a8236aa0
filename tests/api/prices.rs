//! The price table is read by index probes only (issue 14.2): on a history-sized `ohlcv_daily`
//! whose only index is its `(symbol, date)` key, the plans of the statements a run reads the
//! market with (taken from the store, not copied here) contain no sequential scan of it and
//! touch a few rows per symbol, not the history.

use crate::helpers::{small_market, TestDb};
use serde_json::Value;
use tickstock_cache_sync::devtools::loader::load_history;
use tickstock_cache_sync::store::prices;
use tickstock_cache_sync::store::sql::Sql;

/// What a plan does to `ohlcv_daily`: its node types, and the rows its nodes read (returned
/// plus removed by a filter, over all loops).
#[derive(Debug, Default)]
struct PriceTableUse {
    nodes: Vec<String>,
    rows_read: f64,
}

fn walk(plan: &Value, out: &mut PriceTableUse) {
    if plan["Relation Name"] == "ohlcv_daily" {
        out.nodes
            .push(plan["Node Type"].as_str().unwrap_or("?").to_owned());
        let loops = plan["Actual Loops"].as_f64().unwrap_or(1.0);
        let rows = plan["Actual Rows"].as_f64().unwrap_or(0.0)
            + plan["Rows Removed by Filter"].as_f64().unwrap_or(0.0);
        out.rows_read += rows * loops;
    }
    for child in plan["Plans"].as_array().into_iter().flatten() {
        walk(child, out);
    }
}

async fn price_table_use(db: &TestDb, statement: Sql) -> PriceTableUse {
    let plan: Value = db
        .statement(statement.prefixed("explain (analyze, format json) "))
        .scalar()
        .await;
    let mut out = PriceTableUse::default();
    walk(&plan[0]["Plan"], &mut out);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_as_of_date_and_latest_closes_come_from_index_probes_on_a_history_sized_table() {
    let db = TestDb::new().await;
    let market = small_market(142, 2);
    db.load(&market, 2).await;
    load_history(&db.database, &market, 250).await.unwrap();
    db.exec("analyze ohlcv_daily; analyze symbols").await;
    let indexes: Vec<String> = db
        .sql("select indexdef from pg_indexes where tablename = 'ohlcv_daily'")
        .scalars()
        .await;
    assert_eq!(indexes.len(), 1, "only the (symbol, date) key: {indexes:?}");
    let bars = db.count("ohlcv_daily").await as f64;
    let symbols = db.count("symbols").await as f64;
    assert!(bars > 100.0 * symbols, "{bars} bars for {symbols} symbols");

    // The checker sees a scan of the history for what it is.
    let whole = price_table_use(&db, db.database.sql("select max(date) from ohlcv_daily")).await;
    assert!(whole.rows_read >= bars, "{whole:?}");

    let dialect = db.database.dialect();
    let as_of = market.date_of_day(2);
    for (name, statement) in [
        ("the as-of date", prices::latest_price_date(dialect)),
        ("the market", prices::market_snapshot(dialect, Some(as_of))),
        (
            "the market as of its latest bar",
            prices::market_snapshot(dialect, None),
        ),
    ] {
        let used = price_table_use(&db, statement).await;
        assert!(!used.nodes.is_empty(), "{name} reads ohlcv_daily: {used:?}");
        assert!(
            !used.nodes.iter().any(|n| n == "Seq Scan"),
            "{name}: {used:?}"
        );
        assert!(
            used.rows_read <= 3.0 * symbols,
            "{name} reads a few rows per symbol, not the history ({bars} bars): {used:?}"
        );
    }
    let latest: Option<chrono::NaiveDate> = db
        .statement(prices::latest_price_date(dialect))
        .scalar()
        .await;
    assert_eq!(latest, Some(as_of));
}
