//! Decoding what `FromRow` cannot: the log's text columns parsed into domain values, and
//! market rows into the domain's `SymbolRow`.

use super::sql::Row;
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

/// A `symbols` row with its latest close (columns as `load_market` selects them).
pub(crate) fn market_row(row: &Row) -> Result<(SymbolRow, Option<LatestClose>), StoreError> {
    let close_date: Option<NaiveDate> = row.get("close_date", "reading a close")?;
    let close: Option<f64> = row.get("close", "reading a close")?;
    let get = "reading a symbol";
    let symbol = SymbolRow {
        symbol: row.get("symbol", get)?,
        name: row.get("name", get)?,
        kind: row.get("type", get)?,
        active: row.get("active", get)?,
        market_cap: row.get("market_cap", get)?,
        weighted_shares_outstanding: row.get("shares", get)?,
        primary_exchange: row.get("primary_exchange", get)?,
        market: row.get("market", get)?,
        sector: row.get("sector", get)?,
        industry: row.get("industry", get)?,
        list_date: row.get("list_date", get)?,
        etf_type: row.get("etf_type", get)?,
        issuer: row.get("issuer", get)?,
        aum_millions: row.get("aum_millions", get)?,
    };
    let close = match (close_date, close) {
        (Some(date), Some(close)) => Some(LatestClose { date, close }),
        _ => None,
    };
    Ok((symbol, close))
}
