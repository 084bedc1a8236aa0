//! The synthetic market over its days: listings, delistings, reclassifications, bars, nasty
//! rows, the calendar, and scale.

use super::*;

#[test]
fn listings_and_delistings_happen_over_thirty_days() {
    let m = default_market();
    let (mut listed, mut delisted) = (0, 0);
    let mut prev = m.symbols_as_of_day(1);
    for d in 2..=m.days() {
        let rows = m.symbols_as_of_day(d);
        let before: BTreeMap<&str, &SymbolRow> =
            prev.iter().map(|r| (r.symbol.as_str(), r)).collect();
        let bars: BTreeSet<String> = m.bars_for_day(d).into_iter().map(|b| b.symbol).collect();
        let prev_bars: BTreeSet<String> = m
            .bars_for_day(d - 1)
            .into_iter()
            .map(|b| b.symbol)
            .collect();
        for r in &rows {
            match before.get(r.symbol.as_str()) {
                None => {
                    listed += 1;
                    assert_eq!(r.list_date, Some(m.date_of_day(d)));
                    assert_eq!(r.active, Some(true));
                    assert!(
                        bars.contains(&r.symbol),
                        "{} has no listing-day bar",
                        r.symbol
                    );
                    assert!(!prev_bars.contains(&r.symbol));
                }
                Some(old) if old.active == Some(true) && r.active == Some(false) => {
                    delisted += 1;
                    assert!(!bars.contains(&r.symbol));
                }
                Some(old) => assert!(!(old.active == Some(false) && r.active == Some(true))),
            }
        }
        assert!(rows.len() >= prev.len());
        prev = rows;
    }
    assert!((29..=90).contains(&listed), "{listed} listings");
    assert!((10..=60).contains(&delisted), "{delisted} delistings");
}

#[test]
fn reclassifications_and_share_changes_happen() {
    let m = default_market();
    let first = m.symbols_as_of_day(1);
    let last = m.symbols_as_of_day(m.days());
    let last_by: BTreeMap<&str, &SymbolRow> = last.iter().map(|r| (r.symbol.as_str(), r)).collect();
    let (mut reclassed, mut reshared) = (0, 0);
    for r in &first {
        let l = last_by[r.symbol.as_str()];
        reclassed += usize::from((&r.sector, &r.industry) != (&l.sector, &l.industry));
        reshared += usize::from(r.weighted_shares_outstanding != l.weighted_shares_outstanding);
    }
    assert!((5..=30).contains(&reclassed), "{reclassed} reclassified");
    assert!((25..=90).contains(&reshared), "{reshared} share changes");
}

#[test]
fn bars_are_consistent_and_some_stocks_cross_band_boundaries_every_day() {
    let m = default_market();
    let band = |cap: f64| CAP_BOUNDARIES.iter().filter(|&&b| cap >= b).count();
    let shares: BTreeMap<String, i64> = m
        .symbols_as_of_day(1)
        .into_iter()
        .filter(|r| r.kind.as_deref() == Some("CS"))
        .filter_map(|r| Some((r.symbol, r.weighted_shares_outstanding?)))
        .collect();
    let mut prev: BTreeMap<String, usize> = BTreeMap::new();
    let mut big_moves = 0;
    let mut prev_close: BTreeMap<String, f64> = BTreeMap::new();
    for d in 1..=m.days() {
        let bars = m.bars_for_day(d);
        let mut now = BTreeMap::new();
        for b in &bars {
            assert!(
                b.low > 0.0 && b.low <= b.open.min(b.close) && b.high >= b.open.max(b.close),
                "{b:?}"
            );
            assert!(b.volume > 0);
            for x in [b.open, b.high, b.low, b.close] {
                assert_eq!(round4(x), x);
            }
            assert_eq!(b.date, m.date_of_day(d));
            if let Some(s) = shares.get(&b.symbol) {
                now.insert(b.symbol.clone(), band(*s as f64 * b.close));
            }
            if let Some(p) = prev_close.insert(b.symbol.clone(), b.close) {
                big_moves += usize::from((b.close / p - 1.0).abs() > 0.095);
            }
        }
        if d > 1 {
            let crossed = now
                .iter()
                .filter(|(s, b)| prev.get(*s).is_some_and(|p| p != *b))
                .count();
            assert!(crossed >= 3, "only {crossed} band crossings on day {d}");
        }
        prev = now;
    }
    assert!(big_moves >= 3 * (m.days() - 1), "{big_moves} large moves");
}

#[test]
fn bars_exist_only_for_listed_and_active_symbols() {
    let m = nasty_market();
    let mut missing = 0usize;
    let mut possible = 0usize;
    for d in 1..=m.days() {
        let rows = m.symbols_as_of_day(d);
        let active: BTreeSet<&str> = rows
            .iter()
            .filter(|r| r.active == Some(true))
            .map(|r| r.symbol.as_str())
            .collect();
        let bars = m.bars_for_day(d);
        for b in &bars {
            assert!(
                active.contains(b.symbol.as_str()),
                "bar for {} on day {d}",
                b.symbol
            );
        }
        possible += active.len();
        missing += active.len() - bars.len();
    }
    // ~0.2% missing closes plus the handful of nasty rows without bars.
    let rate = missing as f64 / possible as f64;
    assert!(rate > 0.0015 && rate < 0.006, "missing rate {rate}");
}

#[test]
fn nasty_mode_only_adds_bad_rows() {
    let clean = default_market();
    let nasty = nasty_market();
    for d in [1, 2, clean.days()] {
        let c = clean.symbols_as_of_day(d);
        let n = nasty.symbols_as_of_day(d);
        let by: BTreeMap<&str, &SymbolRow> = n.iter().map(|r| (r.symbol.as_str(), r)).collect();
        for r in &c {
            assert_eq!(
                Some(&r),
                by.get(r.symbol.as_str()),
                "{} changed on day {d}",
                r.symbol
            );
        }
        let extra: Vec<&SymbolRow> = n
            .iter()
            .filter(|r| !c.iter().any(|x| x.symbol == r.symbol))
            .collect();
        assert!(extra.len() >= 20);
        assert!(extra.iter().all(|r| r.active == Some(true)));
        let syms: BTreeSet<&str> = extra.iter().map(|r| r.symbol.as_str()).collect();
        for s in ["aapl", " MSFT", "NVDA ", " SPY"] {
            assert!(syms.contains(s), "{s:?}");
        }
        assert!(extra
            .iter()
            .any(|r| r.market_cap == Some(0) && r.weighted_shares_outstanding.is_none()));
        assert!(extra.iter().any(|r| r.market_cap.is_some_and(|c| c < 0)));
        assert!(extra
            .iter()
            .any(|r| r.market_cap.is_some_and(|c| c > 1_000_000_000_000_000)
                && r.weighted_shares_outstanding.is_none()));
        assert!(extra
            .iter()
            .any(|r| r.market_cap.is_some_and(|c| c > 500_000_000_000_000)
                && r.weighted_shares_outstanding.is_some()));
        assert!(extra.iter().any(|r| r.name.is_none()));
        assert!(extra
            .iter()
            .any(|r| r.kind.as_deref() == Some("CS") && r.sector.is_none()));
        assert!(extra
            .iter()
            .any(|r| r.name.as_ref().is_some_and(|n| n.len() == 100)));
        let cb = clean.bars_for_day(d);
        let nb = nasty.bars_for_day(d);
        let nb_by: BTreeMap<&str, &DailyBar> = nb.iter().map(|b| (b.symbol.as_str(), b)).collect();
        for b in &cb {
            assert_eq!(Some(&b), nb_by.get(b.symbol.as_str()));
        }
        // Some bad CS rows never trade at all.
        let never: Vec<&&SymbolRow> = extra
            .iter()
            .filter(|r| r.kind.as_deref() == Some("CS") && !nb_by.contains_key(r.symbol.as_str()))
            .collect();
        assert!(never.len() >= 3);
    }
}

#[test]
fn calendar_skips_weekends() {
    let m = default_market();
    assert_eq!(
        m.date_of_day(1),
        NaiveDate::from_ymd_opt(2026, 1, 5).unwrap()
    );
    assert_eq!(
        m.date_of_day(5),
        NaiveDate::from_ymd_opt(2026, 1, 9).unwrap()
    );
    assert_eq!(
        m.date_of_day(6),
        NaiveDate::from_ymd_opt(2026, 1, 12).unwrap()
    );
    assert_eq!(
        m.date_of_day(30),
        NaiveDate::from_ymd_opt(2026, 2, 13).unwrap()
    );
}

#[test]
#[should_panic(expected = "out of range")]
fn day_zero_panics() {
    default_market().symbols_as_of_day(0);
}

#[test]
#[should_panic(expected = "out of range")]
fn a_day_past_the_end_panics() {
    default_market().bars_for_day(31);
}

#[test]
fn a_hundred_thousand_stocks_over_two_days_work() {
    let p = FixtureParams {
        stocks: 100_000,
        etfs: 3000,
        days: 2,
        seed: 1,
        nasty: true,
        renames: 0,
    };
    let m = SyntheticMarket::generate(&p);
    let rows = m.symbols_as_of_day(2);
    assert!(active_cs(&rows).count() >= 99_900);
    let mid = count_caps_at_least(&m.symbols_as_of_day(1), 10_000_000_000);
    assert!((10_000..=14_000).contains(&mid), "{mid} above $10B");
    assert!(m.bars_for_day(2).len() > 100_000);
}
