//! Which rows of `symbols` and `ohlcv_daily` the fixtures wrote, so that synthetic data never
//! lands in a real market. Every symbol the loader writes is recorded in
//! `cache_sync_fixture_symbol`, a table the loader creates on first use (never a migration: a
//! production database never has it unless fixtures were loaded into it). A `symbols` row is
//! the fixtures' own when its symbol is recorded there, and a bar when its symbol is; any other
//! row is foreign, and the loader's callers refuse to write into a database holding one.

use crate::domain::market::SymbolRow;
use crate::store::prices::PRICED_SYMBOLS;
use crate::store::sql::{execute_chunked, Conn};
use crate::store::{QueryContext, SqlStore, StoreError};
use std::fmt;

/// The table of the symbols fixtures wrote.
pub const FIXTURE_SYMBOLS: &str = "cache_sync_fixture_symbol";

/// Rows in Phase 2's tables that fixtures did not write: how many, and the first symbol of each.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ForeignRows {
    pub symbols: i64,
    pub symbol_example: Option<String>,
    pub bars: i64,
    pub bar_example: Option<String>,
}

impl ForeignRows {
    /// Whether every row is the fixtures' own (or the tables are empty).
    pub fn is_empty(&self) -> bool {
        self.symbols == 0 && self.bars == 0
    }
}

impl fmt::Display for ForeignRows {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        for (table, what, count, example) in [
            ("symbols", "rows", self.symbols, &self.symbol_example),
            ("ohlcv_daily", "bars", self.bars, &self.bar_example),
        ] {
            if count > 0 {
                let example = example.as_deref().unwrap_or("?");
                parts.push(format!(
                    "{table} holds {count} {what} the fixtures did not write (e.g. {example})"
                ));
            }
        }
        write!(f, "{}", parts.join(", and "))
    }
}

/// The rows of `symbols` and `ohlcv_daily` the fixtures did not write. Reads only: bars are
/// counted per symbol through the `(symbol, date)` index, never by a scan of the price history.
///
/// # Errors
/// Store errors.
pub async fn foreign_rows(store: &SqlStore) -> Result<ForeignRows, StoreError> {
    let context = "looking for rows the fixtures did not write";
    let mut pooled = store.acquire().await?;
    let conn = &mut pooled.conn();
    let marked: bool = conn
        .sql(conn.dialect().table_exists())
        .bind(FIXTURE_SYMBOLS)
        .scalar(conn)
        .await
        .during(context)?;
    let own = |column: &str| {
        if marked {
            format!("exists (select 1 from {FIXTURE_SYMBOLS} f where f.symbol = {column})")
        } else {
            "1 = 0".to_owned()
        }
    };
    let (symbols, symbol_example): (i64, Option<String>) = conn
        .sql(&format!(
            "select count(*), min(s.symbol) from symbols s where not ({})",
            own("s.symbol")
        ))
        .fetch_optional(conn)
        .await
        .during(context)?
        .unwrap_or_default();
    let (bars, bar_example): (i64, Option<String>) = conn
        .sql(&format!(
            "with recursive {PRICED_SYMBOLS}
             select count(*), min(o.symbol) from priced p join ohlcv_daily o on o.symbol = p.symbol
             where p.symbol is not null and not ({})",
            own("p.symbol")
        ))
        .fetch_optional(conn)
        .await
        .during(context)?
        .unwrap_or_default();
    Ok(ForeignRows {
        symbols,
        symbol_example,
        bars,
        bar_example,
    })
}

/// Records `symbols` as written by the fixtures (creating the table on first use), in the
/// transaction that writes them.
pub(super) async fn mark_own(conn: &mut Conn<'_>, symbols: &[&str]) -> Result<(), StoreError> {
    let context = "recording the fixtures' symbols";
    conn.sql(&format!(
        "create table if not exists {FIXTURE_SYMBOLS} (symbol varchar(20) primary key)"
    ))
    .execute(conn)
    .await
    .during(context)?;
    execute_chunked(conn, symbols, 1, context, |sql, chunk| {
        sql.push(&format!("insert into {FIXTURE_SYMBOLS} (symbol) "))
            .push_values(chunk, |row, symbol| {
                row.bind(*symbol);
            })
            .push(" on conflict (symbol) do nothing");
        Ok(())
    })
    .await?;
    Ok(())
}

/// The symbols of some rows, for `mark_own`.
pub(super) fn symbols_of(rows: &[SymbolRow]) -> Vec<&str> {
    rows.iter().map(|r| r.symbol.as_str()).collect()
}
