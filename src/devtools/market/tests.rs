//! The synthetic market's shape: determinism, sizes, caps, names, sectors and columns.

mod days;
mod pinned_hashes;

use super::*;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

fn default_market() -> &'static SyntheticMarket {
    static M: OnceLock<SyntheticMarket> = OnceLock::new();
    M.get_or_init(|| SyntheticMarket::generate(&FixtureParams::default()))
}

fn nasty_market() -> &'static SyntheticMarket {
    static M: OnceLock<SyntheticMarket> = OnceLock::new();
    M.get_or_init(|| {
        SyntheticMarket::generate(&FixtureParams {
            nasty: true,
            renames: 0,
            ..Default::default()
        })
    })
}

fn active_cs(rows: &[SymbolRow]) -> impl Iterator<Item = &SymbolRow> {
    rows.iter()
        .filter(|r| r.kind.as_deref() == Some("CS") && r.active == Some(true))
}

fn count_caps_at_least(rows: &[SymbolRow], floor: i64) -> usize {
    active_cs(rows)
        .filter(|r| r.market_cap.is_some_and(|c| c >= floor))
        .count()
}

#[test]
fn the_same_params_generate_the_same_market() {
    let p = FixtureParams {
        stocks: 800,
        etfs: 120,
        days: 6,
        seed: 7,
        nasty: true,
        renames: 0,
    };
    let a = SyntheticMarket::generate(&p);
    let b = SyntheticMarket::generate(&p);
    assert_eq!(a, b);
    for d in 1..=a.days() {
        assert_eq!(a.symbols_as_of_day(d), b.symbols_as_of_day(d));
        assert_eq!(a.bars_for_day(d), b.bars_for_day(d));
    }
    let c = SyntheticMarket::generate(&FixtureParams { seed: 8, ..p });
    assert_ne!(a.symbols_as_of_day(1), c.symbols_as_of_day(1));
}

#[test]
fn day_one_has_exactly_the_requested_active_stocks_and_etfs() {
    let m = default_market();
    let rows = m.symbols_as_of_day(1);
    assert_eq!(active_cs(&rows).count(), 5000);
    let etfs = rows
        .iter()
        .filter(|r| r.kind.as_deref() == Some("ETF") && r.active == Some(true));
    assert_eq!(etfs.count(), 800);
}

#[test]
fn market_caps_follow_a_heavy_tailed_distribution() {
    let rows = default_market().symbols_as_of_day(1);
    let trillion = count_caps_at_least(&rows, 1_000_000_000_000);
    let large = count_caps_at_least(&rows, 200_000_000_000);
    let mid = count_caps_at_least(&rows, 10_000_000_000);
    let micro = active_cs(&rows)
        .filter(|r| r.market_cap.is_some_and(|c| c < 50_000_000))
        .count();
    assert!((2..=8).contains(&trillion), "{trillion} above $1T");
    assert!((35..=70).contains(&large), "{large} above $200B");
    assert!((450..=800).contains(&mid), "{mid} above $10B");
    assert!(micro >= 100, "{micro} below $50M");
    let smallest = active_cs(&rows).filter_map(|r| r.market_cap).min().unwrap();
    assert!(smallest < 10_000_000, "smallest cap {smallest}");
}

#[test]
fn smaller_and_larger_markets_keep_the_shape() {
    let m = SyntheticMarket::generate(&FixtureParams {
        stocks: 500,
        etfs: 30,
        days: 2,
        ..Default::default()
    });
    let rows = m.symbols_as_of_day(1);
    assert!(count_caps_at_least(&rows, 1_000_000_000_000) >= 2);
    let mid = count_caps_at_least(&rows, 10_000_000_000);
    assert!((40..=80).contains(&mid), "{mid} above $10B of 500");
    let m = SyntheticMarket::generate(&FixtureParams {
        stocks: 100,
        etfs: 10,
        days: 3,
        ..Default::default()
    });
    assert_eq!(active_cs(&m.symbols_as_of_day(1)).count(), 100);
}

#[test]
fn market_cap_is_shares_times_the_previous_close() {
    let m = default_market();
    let d = 5;
    let rows = m.symbols_as_of_day(d);
    let prev: BTreeMap<String, f64> = m
        .bars_for_day(d - 1)
        .into_iter()
        .map(|b| (b.symbol, b.close))
        .collect();
    let mut checked = 0;
    for r in active_cs(&rows) {
        if let (Some(cap), Some(shares), Some(close)) = (
            r.market_cap,
            r.weighted_shares_outstanding,
            prev.get(&r.symbol),
        ) {
            let expect = shares as f64 * close;
            assert!(
                (cap as f64 - expect).abs() <= 1.0 + expect * 1e-12,
                "{}",
                r.symbol
            );
            checked += 1;
        }
    }
    assert!(checked > 4500);
}

#[test]
fn essential_etf_and_theme_tickers_are_present_and_active() {
    let rows = default_market().symbols_as_of_day(1);
    let by: BTreeMap<&str, &SymbolRow> = rows.iter().map(|r| (r.symbol.as_str(), r)).collect();
    for t in "SPY QQQ IWM VTI VUG VTV MTUM VGT XLK XLF XLV XLE XLI XLP XLY AGG BND VEA EEM IEFA"
        .split(' ')
    {
        let r = by[t];
        assert_eq!(
            (r.kind.as_deref(), r.active),
            (Some("ETF"), Some(true)),
            "{t}"
        );
        assert!(
            r.etf_type.is_some() && r.issuer.is_some() && r.aum_millions.is_some(),
            "{t}"
        );
    }
    for t in "NVDA GOOGL MSFT AMD MRNA GILD BIIB AMGN CRM SNOW AMZN COIN RIOT MARA SQ AAPL META BRK.B BF-B F T C"
        .split(' ')
    {
        let r = by[t];
        assert_eq!((r.kind.as_deref(), r.active), (Some("CS"), Some(true)), "{t}");
        assert!(r.sector.is_some() && r.industry.is_some() && r.market_cap.is_some(), "{t}");
    }
    assert_eq!(by["SPY"].name.as_deref(), Some("SPDR S&P 500 ETF Trust"));
    let m = default_market();
    for d in 1..=m.days() {
        let bars: BTreeSet<String> = m.bars_for_day(d).into_iter().map(|b| b.symbol).collect();
        for t in ["SPY", "QQQ", "NVDA", "MSFT", "AAPL", "BRK.B"] {
            assert!(bars.contains(t), "{t} has no bar on day {d}");
        }
    }
}

#[test]
fn etf_names_cover_the_category_patterns() {
    let rows = default_market().symbols_as_of_day(1);
    let names: Vec<&str> = rows
        .iter()
        .filter(|r| r.kind.as_deref() == Some("ETF"))
        .filter_map(|r| r.name.as_deref())
        .collect();
    for pat in [
        "S&P 500",
        "Total Stock Market",
        "Total Market",
        "Russell",
        "SPDR",
        "Core",
        "Growth",
        "Value",
        "Technology",
        "Information Technology",
        "Tech",
        "Bond",
        "Aggregate",
        "International",
        "Emerging Markets",
        "EAFE",
        "Developed Markets",
        "Momentum",
        "Quality",
        "Min Vol",
        "Low Vol",
        "Factor",
    ] {
        assert!(
            names.iter().any(|n| n.contains(pat)),
            "no ETF name contains {pat:?}"
        );
    }
    let with_shares = rows
        .iter()
        .filter(|r| r.kind.as_deref() == Some("ETF") && r.weighted_shares_outstanding.is_some())
        .count();
    assert!(
        with_shares > 20 && with_shares < 300,
        "{with_shares} ETFs with shares"
    );
}

#[test]
fn sectors_and_industries_are_realistic_and_uneven() {
    let rows = default_market().symbols_as_of_day(1);
    let mut sectors: BTreeMap<&str, usize> = BTreeMap::new();
    let mut industries: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for r in active_cs(&rows) {
        if let Some(s) = r.sector.as_deref() {
            *sectors.entry(s).or_default() += 1;
            if let Some(i) = r.industry.as_deref() {
                industries.entry(s).or_default().insert(i);
            }
        }
    }
    assert_eq!(sectors.len(), 11);
    assert!(sectors["Technology"] > 4 * sectors["Utilities"]);
    assert!(sectors["Healthcare"] > 4 * sectors["Utilities"]);
    for (s, inds) in &industries {
        assert!(
            (4..=8).contains(&inds.len()),
            "{s} has {} industries",
            inds.len()
        );
    }
    assert!(industries["Energy"].contains("Oil & Gas E&P"));
    let null_sector = active_cs(&rows).filter(|r| r.sector.is_none()).count();
    assert!(
        (5..=100).contains(&null_sector),
        "{null_sector} with NULL sector"
    );
    let null_cap = active_cs(&rows).filter(|r| r.market_cap.is_none()).count();
    assert!(null_cap >= 10, "{null_cap} with NULL cap");
    let null_shares = active_cs(&rows)
        .filter(|r| r.weighted_shares_outstanding.is_none())
        .count();
    assert!(null_shares >= 30, "{null_shares} with NULL shares");
    let inactive = rows.iter().filter(|r| r.active == Some(false)).count();
    assert!((50..=200).contains(&inactive), "{inactive} inactive");
    for k in ["ADRC", "PFD", "WARRANT"] {
        assert!(rows.iter().any(|r| r.kind.as_deref() == Some(k)), "no {k}");
    }
    assert!(rows
        .iter()
        .any(|r| r.name.as_deref().is_some_and(|n| !n.is_ascii())));
}

#[test]
fn recent_listings_exist_before_day_one() {
    let m = default_market();
    let day1 = m.date_of_day(1);
    let rows = m.symbols_as_of_day(1);
    let recent = |kind: &str| {
        rows.iter()
            .filter(|r| r.kind.as_deref() == Some(kind))
            .filter(|r| {
                r.list_date
                    .is_some_and(|d| d < day1 && d >= day1 - Duration::days(30))
            })
            .count()
    };
    assert!(
        (8..=25).contains(&recent("CS")),
        "{} recent CS",
        recent("CS")
    );
    assert!(recent("ETF") >= 1);
}

#[test]
fn tickers_are_unique_every_day() {
    let m = nasty_market();
    for d in 1..=m.days() {
        let rows = m.symbols_as_of_day(d);
        let set: BTreeSet<&str> = rows.iter().map(|r| r.symbol.as_str()).collect();
        assert_eq!(set.len(), rows.len(), "day {d}");
        assert!(
            rows.windows(2).all(|w| w[0].symbol < w[1].symbol),
            "sorted on day {d}"
        );
        let bars = m.bars_for_day(d);
        assert!(
            bars.windows(2).all(|w| w[0].symbol < w[1].symbol),
            "bars sorted on day {d}"
        );
    }
    let clean = default_market().symbols_as_of_day(1);
    for r in &clean {
        let plain = r.symbol.chars().all(|c| c.is_ascii_uppercase());
        assert!(
            plain || r.symbol == "BRK.B" || r.symbol == "BF-B",
            "{:?}",
            r.symbol
        );
        assert!((1..=5).contains(&r.symbol.len()));
    }
}

#[test]
fn strings_fit_the_column_limits() {
    let m = nasty_market();
    let fits = |s: &Option<String>, n: usize| s.as_ref().is_none_or(|s| s.chars().count() <= n);
    for d in [1, m.days()] {
        for r in m.symbols_as_of_day(d) {
            assert!(r.symbol.chars().count() <= 20, "{:?}", r.symbol);
            assert!(fits(&r.name, 100), "{:?}", r.name);
            assert!(
                fits(&r.sector, 50) && fits(&r.industry, 100),
                "{:?}",
                r.symbol
            );
            assert!(
                fits(&r.etf_type, 50) && fits(&r.issuer, 100),
                "{:?}",
                r.symbol
            );
            assert!(
                fits(&r.kind, 20) && fits(&r.primary_exchange, 20),
                "{:?}",
                r.symbol
            );
        }
    }
}

#[test]
fn renames_keep_identity_and_prices_and_leave_the_rest_of_the_market_as_without_them() {
    let plain = FixtureParams {
        stocks: 400,
        etfs: 40,
        days: 8,
        seed: 5,
        nasty: false,
        renames: 0,
    };
    let renamed = SyntheticMarket::generate(&FixtureParams {
        renames: 3,
        ..plain.clone()
    });
    let before = SyntheticMarket::generate(&plain);
    assert!(before.renames().is_empty());
    let renames = renamed.renames();
    assert_eq!(renames.len(), 3);
    assert_eq!(
        renames,
        SyntheticMarket::generate(&FixtureParams {
            renames: 3,
            ..plain.clone()
        })
        .renames()
    );
    for (day, old, new) in &renames {
        let rows = renamed.symbols_as_of_day(*day);
        let find = |t: &str| rows.iter().find(|r| r.symbol == t).cloned();
        let (o, n) = (
            find(old).expect("the old row stays"),
            find(new).expect("the new row is listed"),
        );
        assert_eq!(o.active, Some(false));
        assert_eq!(n.active, Some(true));
        assert_eq!(o.composite_figi, n.composite_figi);
        assert_eq!(o.share_class_figi, n.share_class_figi);
        assert_eq!(o.cik, n.cik);
        assert_eq!(
            n.list_date,
            Some(renamed.date_of_day(*day)),
            "vendors date the new ticker"
        );
        let yesterday = renamed.symbols_as_of_day(day - 1);
        assert!(
            yesterday.iter().all(|r| r.symbol != *new),
            "not listed before its day"
        );
        let close_of =
            |d: usize, t: &str| renamed.bars_for_day(d).into_iter().find(|b| b.symbol == t);
        let (last_old, first_new) = (close_of(day - 1, old), close_of(*day, new));
        assert!(last_old.is_some() && first_new.is_some());
        assert!(
            close_of(*day, old).is_none(),
            "the old ticker stops trading"
        );
    }
    // Identities are one per security: no two active rows share a composite FIGI.
    let last = renamed.symbols_as_of_day(8);
    let active: Vec<_> = last.iter().filter(|r| r.active == Some(true)).collect();
    let figis: BTreeSet<_> = active.iter().map(|r| r.composite_figi.clone()).collect();
    assert_eq!(figis.len(), active.len());
}
