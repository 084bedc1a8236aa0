//! Decoding what `FromRow` cannot: the log's text columns parsed into domain values, and
//! market rows into the domain's `SymbolRow`.

use super::StoreError;
use crate::domain::diff::Op;
use crate::domain::fingerprint::ContentHash;
use crate::domain::market::{LatestClose, SymbolRow};
use crate::domain::types::Family;
use chrono::NaiveDate;
use std::collections::BTreeMap;

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

/// `symbols` columns with the latest close, each read as text (as `load_market` selects them):
/// symbol, name, type, active, market_cap, shares, primary_exchange, market, sector, industry,
/// list_date, etf_type, issuer, aum_millions, close_date, close. Text, because a column may hold
/// what its type cannot decode (SQLite stores anything anywhere; PostgreSQL's `numeric` holds
/// `1e400`, beyond a double), and one such value must not stop a run: `market_row` parses each
/// by rule and counts what it cannot read.
pub(crate) type MarketRow = (
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

/// Counts of unreadable values by column (`MarketSnapshot::unreadable`).
pub(crate) type Unreadable = BTreeMap<String, usize>;

fn unreadable<T>(column: &str, counts: &mut Unreadable) -> Option<T> {
    *counts.entry(column.to_owned()).or_default() += 1;
    None
}

/// A boolean column: `true`/`t`/`1`/`yes` or `false`/`f`/`0`/`no`, any case.
fn read_bool(text: Option<String>, column: &str, counts: &mut Unreadable) -> Option<bool> {
    let text = text?;
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "t" | "1" | "yes" | "y" => Some(true),
        "false" | "f" | "0" | "no" | "n" => Some(false),
        _ => unreadable(column, counts),
    }
}

/// An integer column; a whole number written as a decimal (`5000000000.0`) is read too.
fn read_int(text: Option<String>, column: &str, counts: &mut Unreadable) -> Option<i64> {
    let text = text?;
    let text = text.trim();
    if let Ok(n) = text.parse::<i64>() {
        return Some(n);
    }
    match text.parse::<f64>() {
        // Within i64 and finite: rounding cannot overflow.
        Ok(f) if f.is_finite() && f.abs() < 9.0e18 => Some(f.round() as i64),
        _ => unreadable(column, counts),
    }
}

/// A numeric column as a double. Numbers beyond a double read as infinite, which the domain's
/// rules then exclude; only text that is no number at all is unreadable.
fn read_float(text: Option<String>, column: &str, counts: &mut Unreadable) -> Option<f64> {
    let text = text?;
    match text.trim().parse::<f64>() {
        Ok(f) if !f.is_nan() => Some(f),
        _ => unreadable(column, counts),
    }
}

/// A date column, `YYYY-MM-DD` (SQLite may add a time after it).
fn read_date(text: Option<String>, column: &str, counts: &mut Unreadable) -> Option<NaiveDate> {
    let text = text?;
    let day = text.trim().get(..10).unwrap_or(text.trim());
    NaiveDate::parse_from_str(day, "%Y-%m-%d")
        .ok()
        .or_else(|| unreadable(column, counts))
}

/// A market row as the domain's symbol row and its latest close, counting in `counts` every
/// value that could not be read as its column's type.
pub(crate) fn market_row(row: MarketRow, counts: &mut Unreadable) -> (SymbolRow, LatestBar) {
    let bar = LatestBar {
        date: read_date(row.14, "ohlcv_daily.date", counts),
        close: read_float(row.15, "ohlcv_daily.close", counts),
    };
    let symbol = SymbolRow {
        symbol: row.0.unwrap_or_default(),
        name: row.1,
        kind: row.2,
        active: read_bool(row.3, "symbols.active", counts),
        market_cap: read_int(row.4, "symbols.market_cap", counts),
        weighted_shares_outstanding: read_int(row.5, "symbols.weighted_shares_outstanding", counts),
        primary_exchange: row.6,
        market: row.7,
        sector: row.8,
        industry: row.9,
        list_date: read_date(row.10, "symbols.list_date", counts),
        etf_type: row.11,
        issuer: row.12,
        aum_millions: read_float(row.13, "symbols.aum_millions", counts),
        // Optional columns, read by `identity::read_identities` where they exist.
        composite_figi: None,
        share_class_figi: None,
        cik: None,
    };
    (symbol, bar)
}

/// A symbol row's latest bar as read: its date counts towards the as-of date even when the
/// close is missing (an inactive row's, or an unreadable one).
#[derive(Debug, Clone, Copy)]
pub(crate) struct LatestBar {
    pub date: Option<NaiveDate>,
    pub close: Option<f64>,
}

impl LatestBar {
    /// The close the catalog uses, when both parts were read.
    pub fn close(&self) -> Option<LatestClose> {
        Some(LatestClose {
            date: self.date?,
            close: self.close?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cells(values: &[(usize, &str)]) -> MarketRow {
        let mut row: [Option<String>; 16] = Default::default();
        row[0] = Some("AAA".to_owned());
        for (i, v) in values {
            row[*i] = Some((*v).to_owned());
        }
        let [a, b, c, d, e, f, g, h, i, j, k, l, m, n, o, p] = row;
        (a, b, c, d, e, f, g, h, i, j, k, l, m, n, o, p)
    }

    #[test]
    fn values_their_type_cannot_hold_are_read_as_missing_and_counted() {
        let mut counts = Unreadable::new();
        let (row, close) = market_row(
            cells(&[
                (3, "maybe"),
                (4, "lots"),
                (5, "1e400"),
                (10, "2026-13-45"),
                (13, "n/a"),
                (14, "2026-03-02"),
                (15, "1e400"),
            ]),
            &mut counts,
        );
        assert_eq!(row.active, None);
        assert_eq!(row.market_cap, None);
        assert_eq!(row.weighted_shares_outstanding, None);
        assert_eq!(row.list_date, None);
        assert_eq!(row.aum_millions, None);
        let close = close
            .close()
            .expect("a close beyond a double is still a close (the domain excludes it)");
        assert!(close.close.is_infinite());
        let expected: Vec<&str> = vec![
            "symbols.active",
            "symbols.aum_millions",
            "symbols.list_date",
            "symbols.market_cap",
            "symbols.weighted_shares_outstanding",
        ];
        assert_eq!(
            counts.keys().map(String::as_str).collect::<Vec<_>>(),
            expected
        );
    }

    #[test]
    fn both_stores_spellings_of_good_values_are_read() {
        let mut counts = Unreadable::new();
        let (row, close) = market_row(
            cells(&[
                (3, "1"),
                (4, "5000000000.0"),
                (5, "12"),
                (10, "2026-03-02"),
                (13, "12.5"),
                (14, "2026-03-02 00:00:00"),
                (15, "101.25"),
            ]),
            &mut counts,
        );
        assert!(counts.is_empty(), "{counts:?}");
        assert_eq!(row.active, Some(true));
        assert_eq!(row.market_cap, Some(5_000_000_000));
        assert_eq!(close.close().map(|c| c.close), Some(101.25));
        let (row, _) = market_row(cells(&[(3, "false")]), &mut counts);
        assert_eq!(row.active, Some(false));
    }
}
