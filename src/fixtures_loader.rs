//! Writes the synthetic market into a store: the symbols as of a day and every bar up to it.

use crate::fixtures::SyntheticMarket;
use crate::store::{Store, StoreError};

/// How much was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Loaded {
    pub symbols: usize,
    pub bars: usize,
}

/// Loads days `1..=day`: the symbols table as after `day`, and the bars of every day up to it.
///
/// # Errors
/// Store errors.
pub async fn load_through_day(
    store: &dyn Store,
    market: &SyntheticMarket,
    day: usize,
) -> Result<Loaded, StoreError> {
    let symbols = market.symbols_as_of_day(day);
    let mut bars = Vec::new();
    for d in 1..=day {
        bars.extend(market.bars_for_day(d));
    }
    store.load_market_rows(&symbols, &bars).await?;
    Ok(Loaded {
        symbols: symbols.len(),
        bars: bars.len(),
    })
}

/// Loads one more day on top of an earlier load: the symbols as after `day` and that day's bars.
///
/// # Errors
/// Store errors.
pub async fn load_day(
    store: &dyn Store,
    market: &SyntheticMarket,
    day: usize,
) -> Result<Loaded, StoreError> {
    let symbols = market.symbols_as_of_day(day);
    let bars = market.bars_for_day(day);
    store.load_market_rows(&symbols, &bars).await?;
    Ok(Loaded {
        symbols: symbols.len(),
        bars: bars.len(),
    })
}
