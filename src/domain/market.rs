//! The input market as the job reads it: raw `symbols` rows and each symbol's latest close on or
//! before the as-of date. Plain data, no I/O; the stores fill it, the catalog reads it.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

/// One `symbols` row, with exactly the columns the job reads. Every column is optional because
/// production rows carry NULLs in all of them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct SymbolRow {
    /// Ticker as stored (may carry stray case or whitespace in bad rows).
    pub symbol: String,
    pub name: Option<String>,
    /// The `type` column: `CS`, `ETF`, `ADRC`, …
    pub kind: Option<String>,
    pub active: Option<bool>,
    pub market_cap: Option<i64>,
    pub weighted_shares_outstanding: Option<i64>,
    pub primary_exchange: Option<String>,
    pub market: Option<String>,
    pub sector: Option<String>,
    pub industry: Option<String>,
    pub list_date: Option<NaiveDate>,
    pub etf_type: Option<String>,
    pub issuer: Option<String>,
    pub aum_millions: Option<f64>,
    /// Optional vendor identity columns (production has them, other schemas may not; read
    /// only when the column exists): the same security keeps them across a ticker change.
    pub composite_figi: Option<String>,
    pub share_class_figi: Option<String>,
    pub cik: Option<String>,
}

/// A symbol's latest close on or before the as-of date.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LatestClose {
    pub date: NaiveDate,
    pub close: f64,
}

/// One `ohlcv_daily` row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DailyBar {
    pub symbol: String,
    pub date: NaiveDate,
    pub open: f64,
    pub high: f64,
    pub low: f64,
    pub close: f64,
    pub volume: i64,
}

/// Everything the catalog is computed from: the as-of date, every symbol row, and for each row
/// (same index) its latest close on or before the as-of date, if any.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MarketSnapshot {
    pub as_of: NaiveDate,
    pub symbols: Vec<SymbolRow>,
    pub closes: Vec<Option<LatestClose>>,
    /// Stored values that could not be read as their column's type (text in a numeric
    /// column, a number beyond its type, an impossible date), by column. Each was read as
    /// missing; the run report counts them.
    pub unreadable: std::collections::BTreeMap<String, usize>,
}

impl MarketSnapshot {
    /// Pairs each symbol row with its latest close.
    pub fn rows(&self) -> impl Iterator<Item = (&SymbolRow, Option<LatestClose>)> {
        self.symbols
            .iter()
            .zip(self.closes.iter().copied().chain(std::iter::repeat(None)))
    }
}
