use std::time::Instant;
use tickstock_cache_sync::devtools::market::{FixtureParams, SyntheticMarket};
use tickstock_cache_sync::domain::catalog::compute_catalog;
use tickstock_cache_sync::domain::config::CatalogConfig;
use tickstock_cache_sync::domain::invariants::check_catalog;
use tickstock_cache_sync::domain::market::{LatestClose, MarketSnapshot};
use tickstock_cache_sync::domain::securities::normalize;
use tickstock_cache_sync::domain::types::FamilySelection;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let m = SyntheticMarket::generate(&FixtureParams::default());
    let symbols = m.symbols_as_of_day(1);
    let bars = m.bars_for_day(1);
    let closes = symbols
        .iter()
        .map(|s| {
            bars.iter()
                .find(|b| b.symbol == s.symbol)
                .map(|b| LatestClose {
                    date: b.date,
                    close: b.close,
                })
        })
        .collect();
    let snap = MarketSnapshot {
        as_of: m.date_of_day(1),
        symbols,
        closes,
        ..MarketSnapshot::default()
    };
    let config = CatalogConfig::default();
    for _ in 0..200 {
        let t = Instant::now();
        let s = normalize(&snap, &config);
        let t1 = t.elapsed();
        let c = compute_catalog(&s, &config, &FamilySelection::all());
        let t2 = t.elapsed();
        let v = check_catalog(&c, &s, &config);
        let t3 = t.elapsed();
        println!(
            "normalize {:?} catalog {:?} check {:?} ({} violations)",
            t1,
            t2 - t1,
            t3 - t2,
            v.len()
        );
    }
}
