//! The statements that read Phase 2's price table for a run: the as-of date and each symbol's
//! latest close. Production's `ohlcv_daily` holds years of bars per symbol and may have no index
//! but its `(symbol, date)` key, so both are index probes per symbol, never a scan of the
//! history (`select max(date) from ohlcv_daily` reads every bar). Public so that a test can
//! `explain` exactly these statements.

use super::dialect::Dialect;
use super::sql::Sql;
use chrono::NaiveDate;

/// `priced(symbol)`: every symbol that has bars, whether or not `symbols` lists it, found by a
/// loose index scan of `(symbol, date)`: each step probes the index once for the next symbol
/// after the last one (the fixtures' check for bars they did not write).
pub const PRICED_SYMBOLS: &str = "priced(symbol) as (
        select (select o.symbol from ohlcv_daily o order by o.symbol limit 1)
        union all
        select (select o.symbol from ohlcv_daily o where o.symbol > p.symbol
                order by o.symbol limit 1)
        from priced p where p.symbol is not null
    )";

/// The latest date of the bars of the symbols in `symbols` (NULL when there is none): one
/// backward probe of `(symbol, date)` per symbol row, and the greatest of those. Bars of a
/// ticker missing from `symbols` never reach the catalog, so they do not move the as-of date.
pub fn latest_price_date(dialect: Dialect) -> Sql {
    Sql::new(
        dialect,
        "select max(latest.date) from (
             select (select o.date from ohlcv_daily o where o.symbol = s.symbol
                     order by o.date desc limit 1) as date
             from symbols s
         ) latest",
    )
}

/// Every symbol row with its latest close on or before `as_of` (see
/// `Dialect::latest_close_join`). Without `as_of`, each row's latest bar of all, inactive rows'
/// dates included (their close is left out): the greatest of those dates is the as-of date, so a
/// run that takes the latest prices probes each symbol once, not twice.
pub fn market_snapshot(dialect: Dialect, as_of: Option<NaiveDate>) -> Sql {
    let mut sql = Sql::new(dialect, "");
    let as_of_param = as_of.map(|d| sql.param(d));
    let join = dialect.latest_close_join(as_of_param.as_deref());
    let (list_date, close_date) = (
        dialect.date_text("s.list_date"),
        dialect.date_text("c.date"),
    );
    // Every column as text: see `rows::MarketRow`.
    sql.push(&format!(
        "select cast(s.symbol as text), cast(s.name as text), cast(s.type as text),
                cast(s.active as text), cast(s.market_cap as text),
                cast(s.weighted_shares_outstanding as text), cast(s.primary_exchange as text),
                cast(s.market as text), cast(s.sector as text), cast(s.industry as text),
                {list_date}, cast(s.etf_type as text), cast(s.issuer as text),
                cast(s.aum_millions as text), {close_date},
                case when s.active is true then cast(c.close as text) end
         from {join}"
    ));
    sql
}
