//! The records and value shapes inside the catalog's entries, as the legacy job wrote them
//! (TickStockAppV2 `src/core/services/cache_entries_synchronizer.py` at the parent of `4ac55ce`),
//! except where the app's loader reads ours and skipped the legacy one (the hand-back lists each
//! difference and its reason).

use crate::domain::securities::{Security, UNKNOWN};
use serde_json::{json, Value};
use std::collections::BTreeSet;

/// What the legacy job wrote for an ETF without an `etf_type`.
const ETF_TYPE_DEFAULT: &str = "ETF";

/// The record of a stock inside a `stocks` array.
pub fn stock_record(security: &Security, rank: usize) -> Value {
    json!({
        "ticker": security.ticker,
        "name": security.name,
        "rank": rank,
        "sector": security.sector,
        "industry": security.industry,
        "exchange": security.exchange,
        "market": security.market,
        "market_cap": security.market_cap,
    })
}

fn etf_type(security: &Security) -> &str {
    if security.etf_type == UNKNOWN {
        ETF_TYPE_DEFAULT
    } else {
        &security.etf_type
    }
}

/// The record of an ETF inside an ETF category's `…_detailed` value (legacy `_create_etf_entries`).
pub fn etf_record(security: &Security) -> Value {
    json!({
        "symbol": security.ticker,
        "name": security.name,
        "etf_type": etf_type(security),
        "issuer": security.issuer,
    })
}

/// `{"count", "stocks"}` with ranks from 1.
pub fn stock_list(stocks: &[&Security]) -> Value {
    let records: Vec<Value> = stocks
        .iter()
        .enumerate()
        .map(|(i, s)| stock_record(s, i + 1))
        .collect();
    json!({ "count": records.len(), "stocks": records })
}

/// A plain array of tickers, in the given order.
pub fn tickers(securities: &[&Security]) -> Value {
    Value::Array(
        securities
            .iter()
            .map(|s| Value::String(s.ticker.clone()))
            .collect(),
    )
}

/// `stock_etf_combo/stock_etf_test/combo_test_detailed` (legacy `_create_combo_test_entries`):
/// `count`, `description`, `composition`, stock records marked `"type": "stock"` and ETF records
/// keyed by `ticker` and marked `"type": "etf"`.
pub fn combo_detailed(top_n: usize, stocks: &[&Security], etfs: &[&Security]) -> Value {
    let stock_records: Vec<Value> = stocks
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let mut record = stock_record(s, i + 1);
            record["type"] = json!("stock");
            record
        })
        .collect();
    let etf_records: Vec<Value> = etfs
        .iter()
        .map(|e| {
            json!({
                "ticker": e.ticker,
                "name": e.name,
                "etf_type": etf_type(e),
                "issuer": e.issuer,
                "exchange": e.exchange,
                "market": e.market,
                "type": "etf",
            })
        })
        .collect();
    json!({
        "count": stock_records.len() + etf_records.len(),
        "description": format!(
            "Comprehensive test universe: Top {top_n} stocks + essential ETFs for market coverage"
        ),
        "composition": {"stocks": stock_records.len(), "etfs": etf_records.len()},
        "stocks": stock_records,
        "etfs": etf_records,
    })
}

/// How many distinct known values `field` takes over `stocks` (legacy `COUNT(DISTINCT …)`, which
/// skips NULLs: ours are written "Unknown").
pub fn distinct_known(stocks: &[&Security], field: impl Fn(&Security) -> &str) -> usize {
    stocks
        .iter()
        .map(|s| field(s))
        .filter(|v| *v != UNKNOWN)
        .collect::<BTreeSet<&str>>()
        .len()
}
