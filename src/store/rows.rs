//! Decoding what `FromRow` cannot: the log's text columns parsed into domain values, and
//! market rows into the domain's `SymbolRow`.

use super::StoreError;
use crate::domain::diff::Op;
use crate::domain::fingerprint::ContentHash;
use crate::domain::market::{LatestClose, SymbolRow};
use crate::domain::types::Family;
use chrono::NaiveDate;

/// A logged hash column.
pub(crate) fn parse_hash(text: Option<String>) -> Result<Option<ContentHash>, StoreError> {
    text.map(|t| {
        ContentHash::parse(&t)
            .ok_or_else(|| StoreError::Corrupt(format!("bad hash `{t}` in the log")))
    })
    .transpose()
}

/// A logged op column.
pub(crate) fn parse_op(text: &str) -> Result<Op, StoreError> {
    match text {
        "created" => Ok(Op::Create),
        "updated" => Ok(Op::Update),
        "deleted" => Ok(Op::Delete),
        other => Err(StoreError::Corrupt(format!(
            "unknown op `{other}` in the log"
        ))),
    }
}

/// A logged family column.
pub(crate) fn parse_family(text: &str) -> Result<Family, StoreError> {
    Family::parse(text).map_err(StoreError::Corrupt)
}

/// `symbols` columns with the latest close (as `load_market` selects them): symbol, name, type,
/// active, market_cap, shares, primary_exchange, market, sector, industry, list_date, etf_type,
/// issuer, aum_millions, close_date, close.
pub(crate) type MarketRow = (
    String,
    Option<String>,
    Option<String>,
    Option<bool>,
    Option<i64>,
    Option<i64>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<NaiveDate>,
    Option<String>,
    Option<String>,
    Option<f64>,
    Option<NaiveDate>,
    Option<f64>,
);

/// A market row as the domain's symbol row and its latest close.
pub(crate) fn market_row(row: MarketRow) -> (SymbolRow, Option<LatestClose>) {
    let close = match (row.14, row.15) {
        (Some(date), Some(close)) => Some(LatestClose { date, close }),
        _ => None,
    };
    let symbol = SymbolRow {
        symbol: row.0,
        name: row.1,
        kind: row.2,
        active: row.3,
        market_cap: row.4,
        weighted_shares_outstanding: row.5,
        primary_exchange: row.6,
        market: row.7,
        sector: row.8,
        industry: row.9,
        list_date: row.10,
        etf_type: row.11,
        issuer: row.12,
        aum_millions: row.13,
    };
    (symbol, close)
}
