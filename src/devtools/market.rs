//! Deterministic synthetic US equity market for tests, demos and benchmarks.
//!
//! [`SyntheticMarket::generate`] builds, from a [`FixtureParams`], a `symbols` table and a
//! `ohlcv_daily` price history that look like the real US market:
//!
//! * a heavy-tailed market-cap distribution for the common stocks (a handful above $1T, about
//!   1% above $200B, about 12% above $10B, a long tail down to a few $M), defined by rank
//!   fraction so the shape holds from 100 to 100,000 stocks;
//! * real GICS-style sector and industry names, with uneven sector sizes;
//! * well-known tickers at the top (NVDA, AAPL, MSFT, …), the theme tickers, tricky tickers
//!   (`BRK.B`, `BF-B`, `F`, `T`, `C`) and a few non-ASCII company names;
//! * ETFs with realistic names, issuers, types and AUM, including SPY, QQQ, IWM, VTI, AGG, …;
//! * dirty data: inactive symbols, NULL sectors, NULL caps and shares, non-CS types;
//! * day-to-day events (new listings, delistings, reclassifications, share-count changes),
//!   large movers that push stocks across the market-cap band boundaries, and missing bars;
//! * optionally (`nasty`), deliberately bad rows on top;
//! * vendor identity columns (`composite_figi`, `share_class_figi`, `cik`) on every row and,
//!   optionally (`renames`), ticker changes that keep them.
//!
//! Everything is a pure function of the parameters: no I/O, no clock, no hash-map iteration
//! order. Sub-streams of randomness are derived per purpose from the seed, so turning `nasty`
//! on only *adds* rows and leaves every other row and bar unchanged.
//!
//! Trading days are numbered `1..=days`; day 1 is Monday 2026-01-05 and the calendar is plain
//! weekdays (no exchange holidays). `symbols.market_cap` is vendor-style stale: the shares as of
//! the day times the *previous* trading day's close.

use std::collections::HashSet;

use chrono::{Datelike, Duration, NaiveDate, Weekday};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::domain::market::{DailyBar, SymbolRow};

mod builder;
mod entity;
mod events;
mod history;
mod listings;
mod numbers;
mod sectors;
#[cfg(test)]
mod tests;

use builder::Builder;
use entity::*;
use listings::*;
use numbers::*;
use sectors::*;

// ---------------------------------------------------------------------------------------------
// Parameters
// ---------------------------------------------------------------------------------------------

/// What to generate. Same parameters, same market, bit for bit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FixtureParams {
    /// Active common stocks (`type = 'CS'`) on day 1, before bad rows. The well-known tickers
    /// count towards this number; below about 40 some of them are left out.
    pub stocks: usize,
    /// Active ETFs on day 1. The essential ETFs (SPY, QQQ, …) come first; below about 50 only
    /// the first of them are included.
    pub etfs: usize,
    /// Number of trading days of prices, numbered `1..=days`.
    pub days: usize,
    /// Seed of every random choice.
    pub seed: u64,
    /// Add deliberately bad rows (case/whitespace duplicates, absurd or negative caps, NULL
    /// names and sectors, stocks without bars, very long names). All of them are active.
    pub nasty: bool,
    /// Ticker changes (FB → META) on days the seed chooses: the old ticker turns inactive, a
    /// new one with the same identity columns takes over its prices. 0 leaves the market
    /// exactly as without the option.
    pub renames: usize,
}

impl Default for FixtureParams {
    /// 5000 stocks, 800 ETFs, 30 days, seed 42, no bad rows, no renames.
    fn default() -> Self {
        FixtureParams {
            stocks: 5000,
            etfs: 800,
            days: 30,
            seed: 42,
            nasty: false,
            renames: 0,
        }
    }
}

/// A generated market: a `symbols` table that evolves over `days` trading days and the daily
/// bars of every listed, active symbol. Build it with [`SyntheticMarket::generate`].
#[derive(Debug, Clone, PartialEq)]
pub struct SyntheticMarket {
    days: usize,
    seed: u64,
    entities: Vec<Entity>,
    /// Entity indices sorted by ticker.
    order: Vec<usize>,
    /// Unrounded closes, per entity from `path_first` to `days` inclusive.
    closes: Vec<f64>,
}

impl SyntheticMarket {
    /// Generates the market for `params`. Pure and deterministic: equal parameters give equal
    /// markets.
    pub fn generate(params: &FixtureParams) -> SyntheticMarket {
        Builder::new(params).build()
    }

    /// Number of trading days; days are numbered `1..=days()`.
    pub fn days(&self) -> usize {
        self.days
    }

    /// Calendar date of trading day `day`: weekdays only, day 1 is Monday 2026-01-05 (no
    /// exchange holidays).
    ///
    /// # Panics
    /// If `day` is 0 or greater than [`days`](Self::days).
    pub fn date_of_day(&self, day: usize) -> NaiveDate {
        self.check_day(day);
        trading_date(day)
    }

    /// The `symbols` table as it looks after day `day`'s events, sorted by symbol (byte order).
    ///
    /// Symbols listed on a later day are absent; delisted ones stay with `active = false`.
    /// `market_cap` is the day's share count times the previous trading day's close (vendors
    /// lag by a day); NULL, zero, negative or absurd where the row is meant to be dirty.
    ///
    /// # Panics
    /// If `day` is 0 or greater than [`days`](Self::days).
    pub fn symbols_as_of_day(&self, day: usize) -> Vec<SymbolRow> {
        self.check_day(day);
        let d = day as u32;
        let mut rows = Vec::with_capacity(self.entities.len());
        for &i in &self.order {
            let e = &self.entities[i];
            if e.listed_day > d {
                continue;
            }
            let shares = e.shares_on(d);
            // Price the vendor saw: previous close, frozen at the last close before delisting.
            let price_day = d.min(e.delist_day).max(self.path_first(i) + 1) - 1;
            let price = round4(self.close(i, price_day));
            let market_cap = match e.cap_mode {
                CapMode::Computed => Some((shares as f64 * price).round() as i64),
                CapMode::Null => None,
                CapMode::Fixed(v) => Some(v),
            };
            let (sector, industry) = e.class_on(d);
            let aum_millions = e.etf.as_ref().map(|etf| {
                let first = self.close(i, self.path_first(i));
                round2(etf.aum0 * price / first)
            });
            rows.push(SymbolRow {
                symbol: e.ticker.clone(),
                name: e.name.clone(),
                kind: e.kind.map(str::to_string),
                active: Some(e.active_on(d)),
                market_cap,
                weighted_shares_outstanding: if e.shares_null { None } else { Some(shares) },
                primary_exchange: e.exchange.map(str::to_string),
                market: e.market.map(str::to_string),
                sector: sector.map(str::to_string),
                industry: industry.map(str::to_string),
                list_date: e.list_date,
                etf_type: e.etf.as_ref().map(|x| x.etf_type.to_string()),
                issuer: e.etf.as_ref().map(|x| x.issuer.to_string()),
                aum_millions,
                composite_figi: Some(self.figi(i, 1)),
                share_class_figi: Some(self.figi(i, 2)),
                cik: Some(self.cik(i)),
            });
        }
        rows
    }

    /// The `ohlcv_daily` rows of day `day` only, sorted by symbol (byte order).
    ///
    /// Only symbols listed on or before `day` and still active have bars; about 0.2% of them
    /// randomly have none (missing closes). OHLC are consistent (`low ≤ open, close ≤ high`),
    /// positive and rounded to 4 decimals; volume is positive.
    ///
    /// # Panics
    /// If `day` is 0 or greater than [`days`](Self::days).
    pub fn bars_for_day(&self, day: usize) -> Vec<DailyBar> {
        self.check_day(day);
        let d = day as u32;
        let date = trading_date(day);
        let miss_seed = sub_seed(self.seed, SEED_MISSING);
        let bar_seed = sub_seed(self.seed, SEED_BARS);
        let mut bars = Vec::with_capacity(self.entities.len());
        for &i in &self.order {
            let e = &self.entities[i];
            if !e.has_bars || !e.active_on(d) {
                continue;
            }
            if e.role == Role::Generic
                && d != e.listed_day
                && mix3(miss_seed, i as u64, d as u64) % 1_000_000 < MISSING_PER_MILLION
            {
                continue;
            }
            let prev = self.close(i, d - 1);
            let close_raw = self.close(i, d);
            let ret = (close_raw / prev).ln();
            let mut noise = SplitMix(mix3(bar_seed, i as u64, d as u64));
            let sigma = e.sigma;
            let gap = if ret.abs() > 0.08 {
                ret * 0.8 * noise.unit()
            } else {
                0.0
            };
            let open_raw = prev * (gap + 0.4 * sigma * noise.normal()).exp();
            let high_raw = open_raw.max(close_raw) * (0.5 * sigma * noise.normal()).abs().exp();
            let low_raw = open_raw.min(close_raw) * (-(0.5 * sigma * noise.normal()).abs()).exp();
            let open = round4(open_raw).max(0.0001);
            let close = round4(close_raw).max(0.0001);
            let high = round4(high_raw).max(open).max(close);
            let low = round4(low_raw).max(0.0001).min(open).min(close);
            let base_shares = match &e.etf {
                Some(etf) if e.shares_null || e.cap_mode != CapMode::Computed => {
                    etf.aum0 * 1e6 / e.price0
                }
                _ => e.shares_on(d) as f64,
            };
            let boost = if ret.abs() > 0.08 { 4.0 } else { 1.0 };
            let volume = (base_shares * e.turnover * boost * (0.4 * noise.normal()).exp())
                .clamp(100.0, 5e11)
                .round() as i64;
            bars.push(DailyBar {
                symbol: e.ticker.clone(),
                date,
                open,
                high,
                low,
                close,
                volume,
            });
        }
        bars
    }

    /// The renames: (day, old ticker, new ticker), by day then old ticker.
    pub fn renames(&self) -> Vec<(usize, String, String)> {
        let mut out: Vec<(usize, String, String)> = self
            .entities
            .iter()
            .filter(|e| e.role == Role::Successor)
            .filter_map(|e| {
                let old = &self.entities[e.path_src?];
                Some((e.listed_day as usize, old.ticker.clone(), e.ticker.clone()))
            })
            .collect();
        out.sort();
        out
    }

    /// The entity whose identity `i` carries: its own, or (duplicates, successors) the one
    /// whose prices it shares.
    fn identity_source(&self, i: usize) -> u64 {
        self.entities[i].path_src.unwrap_or(i) as u64
    }

    /// A FIGI-shaped id (`BBG` and 9 characters of FIGI's alphabet, no vowels), one per entity
    /// and `kind` (1 composite, 2 share class), from the seed.
    fn figi(&self, i: usize, kind: u64) -> String {
        const ALPHABET: &[u8] = b"BCDFGHJKLMNPQRSTVWXYZ0123456789";
        let mut z = mix3(
            sub_seed(self.seed, SEED_IDENTITY),
            self.identity_source(i),
            kind,
        );
        let mut id = String::from("BBG");
        for _ in 0..9 {
            id.push(ALPHABET[(z % ALPHABET.len() as u64) as usize] as char);
            z /= ALPHABET.len() as u64;
        }
        id
    }

    /// A ten-digit, zero-padded CIK, one per entity, from the seed.
    fn cik(&self, i: usize) -> String {
        let z = mix3(
            sub_seed(self.seed, SEED_IDENTITY),
            self.identity_source(i),
            3,
        );
        format!("{:010}", z % 2_000_000_000)
    }

    fn check_day(&self, day: usize) {
        assert!(
            day >= 1 && day <= self.days,
            "trading day {day} out of range 1..={}",
            self.days
        );
    }

    fn path_first(&self, i: usize) -> u32 {
        let src = self.entities[i].path_src.unwrap_or(i);
        self.entities[src].path_first
    }

    /// Unrounded close of entity `i` on day `d` (day `path_first` is the pre-listing price).
    fn close(&self, i: usize, d: u32) -> f64 {
        let src = self.entities[i].path_src.unwrap_or(i);
        let e = &self.entities[src];
        self.closes[e.path_off + (d - e.path_first) as usize]
    }
}
