//! Writes the synthetic market into a store through the shared SQL layer: the symbols as of a
//! day and every bar up to it, and (`history.rs`) years of older bars. Not part of the store's
//! roles: only development tools write `symbols` and `ohlcv_daily`, which Phase 2 owns in
//! production. `ownership.rs` records what the fixtures wrote, so that their callers can refuse
//! a database holding anything else (a real market).

mod history;
mod ownership;

pub use history::load_history;
pub use ownership::{foreign_rows, ForeignRows, FIXTURE_SYMBOLS};

use crate::devtools::market::SyntheticMarket;
use crate::domain::market::{DailyBar, SymbolRow};
use crate::store::identity::identity_columns;
use crate::store::sql::{execute_chunked, rows_per_statement, Conn};
use crate::store::{QueryContext, SqlStore, StoreError, Writes};
use chrono::{DateTime, Utc};

/// How much was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadedRows {
    pub symbols: usize,
    pub bars: usize,
}

/// Loads days `1..=day`: the symbols table as after `day`, and the bars of every day up to it.
///
/// # Errors
/// Store errors.
pub async fn load_through_day(
    store: &SqlStore,
    market: &SyntheticMarket,
    day: usize,
) -> Result<LoadedRows, StoreError> {
    let symbols = market.symbols_as_of_day(day);
    let mut bars = Vec::new();
    for d in 1..=day {
        bars.extend(market.bars_for_day(d));
    }
    write_rows(store, &symbols, &bars).await
}

/// Loads one more day on top of an earlier load: the symbols as after `day` and that day's bars.
///
/// # Errors
/// Store errors.
pub async fn load_day(
    store: &SqlStore,
    market: &SyntheticMarket,
    day: usize,
) -> Result<LoadedRows, StoreError> {
    let symbols = market.symbols_as_of_day(day);
    let bars = market.bars_for_day(day);
    write_rows(store, &symbols, &bars).await
}

/// Upserts the symbol rows (recording them as the fixtures' own) and adds the bars (existing
/// bars stay), in one transaction.
async fn write_rows(
    store: &SqlStore,
    symbols: &[SymbolRow],
    bars: &[DailyBar],
) -> Result<LoadedRows, StoreError> {
    let mut tx = store.transaction(Writes::Now).await?;
    let conn = &mut tx.conn();
    let dialect = conn.dialect();
    ownership::mark_own(conn, &ownership::symbols_of(symbols)).await?;
    // The identity columns are written where the schema has them (production's does; the
    // project's migrations do not add them).
    let identity: Vec<&str> = identity_columns(conn).await?.names().collect();
    let columns = identity
        .iter()
        .map(|c| format!(", {c}"))
        .collect::<String>();
    let updates = identity
        .iter()
        .map(|c| format!(", {c} = excluded.{c}"))
        .collect::<String>();
    for chunk in symbols.chunks(rows_per_statement(dialect, 14 + identity.len())) {
        let mut sql = conn.sql(&format!(
            "insert into symbols (symbol, name, type, active, market_cap, weighted_shares_outstanding,
                 primary_exchange, market, sector, industry, list_date, etf_type, issuer, aum_millions{columns}) "
        ));
        sql.push_values(chunk, |row, r| {
            row.bind(&r.symbol)
                .bind(&r.name)
                .bind(&r.kind)
                .bind(r.active)
                .bind(r.market_cap)
                .bind(r.weighted_shares_outstanding)
                .bind(&r.primary_exchange)
                .bind(&r.market)
                .bind(&r.sector)
                .bind(&r.industry)
                .bind(r.list_date)
                .bind(&r.etf_type)
                .bind(&r.issuer)
                .bind(r.aum_millions);
            for column in &identity {
                row.bind(match *column {
                    "composite_figi" => &r.composite_figi,
                    "share_class_figi" => &r.share_class_figi,
                    _ => &r.cik,
                });
            }
        })
        .push(&format!(
            " on conflict (symbol) do update set name = excluded.name, type = excluded.type,
                 active = excluded.active, market_cap = excluded.market_cap,
                 weighted_shares_outstanding = excluded.weighted_shares_outstanding,
                 primary_exchange = excluded.primary_exchange, market = excluded.market,
                 sector = excluded.sector, industry = excluded.industry,
                 list_date = excluded.list_date, etf_type = excluded.etf_type,
                 issuer = excluded.issuer, aum_millions = excluded.aum_millions{updates}"
        ));
        sql.execute(conn).await.during("loading symbols")?;
    }
    insert_bars(conn, bars, Utc::now()).await?;
    tx.commit("committing fixture rows").await?;
    Ok(LoadedRows {
        symbols: symbols.len(),
        bars: bars.len(),
    })
}

/// Adds bars (a bar already there for its symbol and date stays); returns how many were added.
async fn insert_bars(
    conn: &mut Conn<'_>,
    bars: &[DailyBar],
    now: DateTime<Utc>,
) -> Result<usize, StoreError> {
    let context = "loading daily bars";
    let added = execute_chunked(conn, bars, 8, context, |sql, chunk| {
        sql.push(
            "insert into ohlcv_daily (symbol, date, open, high, low, close, volume, created_at) ",
        );
        let created_at = sql.dialect().now(sql, now);
        sql.push_values(chunk, |row, bar| {
            row.bind(&bar.symbol)
                .bind(bar.date)
                .bind(bar.open)
                .bind(bar.high)
                .bind(bar.low)
                .bind(bar.close)
                .bind(bar.volume)
                .raw(&created_at);
        })
        .push(" on conflict (symbol, date) do nothing");
        Ok(())
    })
    .await?;
    Ok(added as usize)
}
