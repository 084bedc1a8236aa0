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
/// `Dialect::latest_close_join`).
pub fn market_snapshot(dialect: Dialect, as_of: NaiveDate) -> Sql {
    let mut sql = Sql::new(dialect, "");
    let as_of_param = sql.param(as_of);
    let join = dialect.latest_close_join(&as_of_param);
    sql.push(&format!(
        "select s.symbol, s.name, s.type, s.active, cast(s.market_cap as bigint) as market_cap,
                cast(s.weighted_shares_outstanding as bigint) as shares, s.primary_exchange,
                s.market, s.sector, s.industry, s.list_date, s.etf_type, s.issuer,
                cast(s.aum_millions as double precision) as aum_millions,
                c.date as close_date, cast(c.close as double precision) as close
         from {join}"
    ));
    sql
}
