//! Writes the synthetic price history (`SyntheticMarket::history_of`) the fastest way each
//! store takes it: `COPY … FROM STDIN` on PostgreSQL, multi-row inserts in one transaction on
//! SQLite. Bars are generated one symbol at a time and streamed, so millions of bars never sit
//! in memory at once.

use super::ownership::mark_own;
use super::{insert_bars, LoadedRows};
use crate::devtools::market::SyntheticMarket;
use crate::domain::market::DailyBar;
use crate::store::sql::{rows_per_statement, Conn};
use crate::store::{QueryContext, SqlStore, StoreError, Writes};
use chrono::Utc;
use std::fmt::Write as _;

/// Bytes of COPY text sent at a time.
const COPY_CHUNK: usize = 1 << 20;

/// Gives every symbol with a bar on day 1 `days` older bars (the weekdays before day 1),
/// replacing history an earlier load wrote (the fixtures' own bars before day 1), in one
/// transaction. Returns the bars written.
///
/// # Errors
/// Store errors.
pub async fn load_history(
    store: &SqlStore,
    market: &SyntheticMarket,
    days: usize,
) -> Result<LoadedRows, StoreError> {
    let day1 = market.bars_for_day(1);
    let dates = SyntheticMarket::history_dates(days);
    let mut tx = store.transaction(Writes::Now).await?;
    let conn = &mut tx.conn();
    let symbols: Vec<&str> = day1.iter().map(|b| b.symbol.as_str()).collect();
    mark_own(conn, &symbols).await?;
    conn.sql(&format!(
        "delete from ohlcv_daily where date < $1 and symbol in (select symbol from {})",
        super::ownership::FIXTURE_SYMBOLS
    ))
    .bind(market.date_of_day(1))
    .execute(conn)
    .await
    .during("replacing the fixtures' earlier history")?;
    let histories = day1
        .iter()
        .enumerate()
        .map(|(i, bar)| market.history_of(i, bar, &dates));
    let bars = match conn {
        Conn::Postgres(c) => {
            let context = "copying history bars";
            let mut copy = c
                .copy_in_raw(
                    "copy ohlcv_daily (symbol, date, open, high, low, close, volume) from stdin",
                )
                .await
                .during(context)?;
            let mut text = String::with_capacity(COPY_CHUNK + 4096);
            for history in histories {
                for bar in &history {
                    copy_line(&mut text, bar);
                }
                if text.len() >= COPY_CHUNK {
                    copy.send(text.as_bytes()).await.during(context)?;
                    text.clear();
                }
            }
            if !text.is_empty() {
                copy.send(text.as_bytes()).await.during(context)?;
            }
            copy.finish().await.during(context)? as usize
        }
        Conn::Sqlite(_) => {
            let batch = rows_per_statement(conn.dialect(), 8);
            let now = Utc::now();
            let mut pending: Vec<DailyBar> = Vec::with_capacity(batch + dates.len());
            let mut written = 0;
            for history in histories {
                pending.extend(history);
                if pending.len() >= batch {
                    written += insert_bars(conn, &pending, now).await?;
                    pending.clear();
                }
            }
            written + insert_bars(conn, &pending, now).await?
        }
    };
    tx.commit("committing history bars").await?;
    Ok(LoadedRows { symbols: 0, bars })
}

/// One bar as a line of COPY's text format (tab-separated, `\N` never needed).
fn copy_line(out: &mut String, bar: &DailyBar) {
    for c in bar.symbol.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    let _ = writeln!(
        out,
        "\t{}\t{}\t{}\t{}\t{}\t{}",
        bar.date, bar.open, bar.high, bar.low, bar.close, bar.volume
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copy_line_is_tab_separated_with_its_text_escaped() {
        let bar = DailyBar {
            symbol: "A\\B\tC".to_owned(),
            date: chrono::NaiveDate::from_ymd_opt(2025, 12, 31).unwrap(),
            open: 1.5,
            high: 2.0,
            low: 1.25,
            close: 1.75,
            volume: 300,
        };
        let mut line = String::new();
        copy_line(&mut line, &bar);
        assert_eq!(line, "A\\\\B\\tC\t2025-12-31\t1.5\t2\t1.25\t1.75\t300\n");
    }
}
