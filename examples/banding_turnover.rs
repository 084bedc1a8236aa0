//! Membership changes and boundary flips per night in the market-cap bands and the top-N lists,
//! with turnover banding off and on, over a simulated sequence of nights of the synthetic market
//! (the README's figures).
//!
//! cargo run --example banding_turnover -- [STOCKS] [NIGHTS] [BAND] [BUFFER] [SEED]
//! defaults: 5000 stocks, 60 nights, a 5 % band, a 10 % top-N buffer, seed 42.

use tickstock_cache_sync::devtools::market::{FixtureParams, SyntheticMarket};
use tickstock_cache_sync::devtools::turnover::{compare, Turnover};
use tickstock_cache_sync::domain::config::CatalogConfig;

fn arg<T: std::str::FromStr>(args: &[String], at: usize, default: T) -> T {
    args.get(at).map_or(default, |a| {
        a.parse()
            .unwrap_or_else(|_| panic!("argument {at} (`{a}`) is not a number"))
    })
}

fn totals(label: &str, t: &Turnover) {
    println!(
        "{label:>12}: {:>6} changes ({} market_cap, {} market_leaders), {:>6} flips ({} market_cap, {} market_leaders), {} violations",
        t.changes,
        t.changes_by_family.get("market_cap").unwrap_or(&0),
        t.changes_by_family.get("market_leaders").unwrap_or(&0),
        t.flips,
        t.flips_by_family.get("market_cap").unwrap_or(&0),
        t.flips_by_family.get("market_leaders").unwrap_or(&0),
        t.violations,
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let stocks = arg(&args, 0, 5000usize);
    let nights = arg(&args, 1, 60usize);
    let band = arg(&args, 2, 0.05f64);
    let buffer = arg(&args, 3, 0.10f64);
    let seed = arg(&args, 4, 42u64);
    let market = SyntheticMarket::generate(&FixtureParams {
        stocks,
        etfs: 40,
        days: nights + 1,
        seed,
        nasty: false,
        renames: 0,
    });
    let mut banded = CatalogConfig::default();
    banded
        .banding
        .set("market_cap", band)
        .and_then(|()| banded.banding.set("market_leaders", buffer))
        .unwrap_or_else(|e| panic!("{e}"));
    let result = compare(&market, &banded);
    println!("{stocks} stocks, {nights} nights, seed {seed}, band {band}, top-N buffer {buffer}");
    println!("night  changes off  changes on  flips off  flips on  held");
    for (off, on) in result.off.nights.iter().zip(&result.on.nights) {
        println!(
            "{:>5}  {:>11}  {:>10}  {:>9}  {:>8}  {:>4}",
            off.day, off.changes, on.changes, off.flips, on.flips, on.held
        );
    }
    totals("banding off", &result.off);
    totals("banding on", &result.on);
    let per_night = |t: &Turnover| t.changes as f64 / t.nights.len().max(1) as f64;
    println!(
        "changes per night {:.1} → {:.1}; flips {} → {} ({:.0} % fewer)",
        per_night(&result.off),
        per_night(&result.on),
        result.off.flips,
        result.on.flips,
        100.0 * (1.0 - result.on.flips as f64 / result.off.flips.max(1) as f64)
    );
}
