//! Production-shaped price history: `days` daily bars before day 1 for every symbol that has a
//! bar on day 1, so the price table holds years of bars per symbol as production's does. Every
//! bar is older than day 1 and every symbol with history has a bar on day 1, so no as-of date
//! of the market sees a history bar as its latest close: the catalog is the same with or without
//! history. Deterministic: a seeded walk backwards from each symbol's day-1 open.

use super::*;

impl SyntheticMarket {
    /// The `days` weekdays before day 1 (2026-01-05), oldest first.
    pub fn history_dates(days: usize) -> Vec<NaiveDate> {
        let mut dates = Vec::with_capacity(days);
        let mut date = trading_date(1);
        for _ in 0..days {
            date = back_to_weekday(date - Duration::days(1));
            dates.push(date);
        }
        dates.reverse();
        dates
    }

    /// The history bars of one symbol's day-1 bar (`index` is its position in day 1's bars,
    /// for the random stream), oldest first, one per date of `history_dates(days)`.
    pub fn history_of(&self, index: usize, day1: &DailyBar, dates: &[NaiveDate]) -> Vec<DailyBar> {
        let seed = sub_seed(self.seed, SEED_HISTORY);
        let sigma = 0.02;
        // Walk back from the close before day 1 (day 1's open), newest first.
        let mut close = day1.open;
        let mut bars = Vec::with_capacity(dates.len());
        for (back, &date) in dates.iter().rev().enumerate() {
            let mut noise = SplitMix(mix3(seed, index as u64, back as u64));
            let open = (close * (0.4 * sigma * noise.normal()).exp()).clamp(0.0001, 1e7);
            let high = open.max(close) * (0.5 * sigma * noise.normal()).abs().exp();
            let low = open.min(close) * (-(0.5 * sigma * noise.normal()).abs()).exp();
            let volume = (day1.volume as f64 * (0.4 * noise.normal()).exp()).clamp(100.0, 5e11);
            let (open, close_r) = (round4(open).max(0.0001), round4(close).max(0.0001));
            bars.push(DailyBar {
                symbol: day1.symbol.clone(),
                date,
                open,
                high: round4(high).max(open).max(close_r),
                low: round4(low).max(0.0001).min(open).min(close_r),
                close: close_r,
                volume: volume.round() as i64,
            });
            // The previous day closed where this one opened, give or take the overnight gap.
            close = (open * (sigma * noise.normal()).exp()).clamp(0.0001, 1e7);
        }
        bars.reverse();
        bars
    }
}
