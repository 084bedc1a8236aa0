//! Turnover banding: the rule at each limit, the report, and (property-tested on random markets)
//! the catalog invariants with banding on.

use super::*;
use crate::domain::config::Banding;
use crate::domain::invariants::check_catalog;
use crate::domain::market::{LatestClose, MarketSnapshot, SymbolRow};
use crate::domain::securities::normalize;
use chrono::NaiveDate;
use proptest::prelude::*;

const B: i64 = 1_000_000_000;

fn as_of() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 3, 2).unwrap()
}

/// Active common stocks whose caps are exactly as given (shares = cap, close 1.0 on the as-of
/// date).
fn market(caps: &[(&str, i64)], config: &CatalogConfig) -> Securities {
    let symbols = caps
        .iter()
        .map(|(ticker, cap)| SymbolRow {
            symbol: (*ticker).to_owned(),
            name: Some(format!("{ticker} Corp")),
            kind: Some("CS".to_owned()),
            active: Some(true),
            weighted_shares_outstanding: Some(*cap),
            sector: Some("Technology".to_owned()),
            industry: Some("Software".to_owned()),
            ..SymbolRow::default()
        })
        .collect::<Vec<_>>();
    let closes = vec![
        Some(LatestClose {
            date: as_of(),
            close: 1.0,
        });
        symbols.len()
    ];
    let snapshot = MarketSnapshot {
        as_of: as_of(),
        symbols,
        closes,
        unreadable: Default::default(),
    };
    normalize(&snapshot, config)
}

fn banded(market_cap: f64, market_leaders: f64) -> CatalogConfig {
    CatalogConfig {
        banding: Banding {
            market_cap,
            market_leaders,
        },
        leaders: [("top_3", 3), ("top_5", 5), ("top_10", 10)]
            .iter()
            .map(|(k, n)| ((*k).to_owned(), *n))
            .collect(),
        ..CatalogConfig::default()
    }
}

fn members(catalog: &Catalog, name: &str, key: &str) -> Vec<String> {
    let value = &catalog.entries[&EntryKey::new(ENTRY_TYPE, name, key)].value;
    member_lists(value)
        .into_iter()
        .flat_map(|(_, m)| m.into_iter().map(|m| m.ticker.to_owned()))
        .collect()
}

fn incumbents(family: &str, lists: &[(&str, &[&str])]) -> Incumbents {
    let map = lists
        .iter()
        .map(|(key, tickers)| {
            let set = tickers.iter().map(|t| (*t).to_owned()).collect();
            ((*key).to_owned(), set)
        })
        .collect();
    match family {
        "market_cap" => Incumbents {
            market_cap: map,
            ..Incumbents::default()
        },
        _ => Incumbents {
            market_leaders: map,
            ..Incumbents::default()
        },
    }
}

#[test]
fn a_mid_cap_member_stays_until_its_cap_is_past_the_band_share_of_the_limit() {
    let config = banded(0.05, 0.0);
    let caps = [
        ("HOVR", 10_300_000_000), // 3 % over the $10B limit: held in mid_cap
        ("JUMP", 10_600_000_000), // 6 % over: moves up
        ("SLIP", 9_600_000_000),  // a large_cap member 4 % under $10B: held
        ("DROP", 9_400_000_000),  // 6 % under: moves down
        ("NEWB", 10_300_000_000), // no current band: the plain rule
    ];
    let securities = market(&caps, &config);
    let current = incumbents(
        "market_cap",
        &[
            ("mid_cap", &["HOVR", "JUMP"]),
            ("large_cap", &["SLIP", "DROP"]),
        ],
    );
    let (catalog, report) =
        compute_catalog_banded(&securities, &config, &FamilySelection::all(), &current);
    assert_eq!(
        members(&catalog, "market_cap", "large_cap"),
        ["JUMP", "NEWB", "SLIP"]
    );
    assert_eq!(members(&catalog, "market_cap", "mid_cap"), ["HOVR", "DROP"]);
    let held: Vec<(String, &str, Value)> = report
        .held
        .iter()
        .map(|h| {
            (
                h.universe.to_string(),
                h.ticker.as_str(),
                h.reason.detail.clone(),
            )
        })
        .collect();
    assert_eq!(
        held,
        [
            (
                "stock_universe/market_cap/large_cap".to_owned(),
                "SLIP",
                json!({"market_cap": 9_600_000_000_i64, "limit": 10 * B, "bound": "lower", "share": 0.05, "plain": "mid_cap"})
            ),
            (
                "stock_universe/market_cap/mid_cap".to_owned(),
                "HOVR",
                json!({"market_cap": 10_300_000_000_i64, "limit": 10 * B, "bound": "upper", "share": 0.05, "plain": "large_cap"})
            ),
        ]
    );
    assert!(report
        .held
        .iter()
        .all(|h| h.reason.code == ReasonCode::HeldByBand));
    let displaced: Vec<(String, &str)> = report
        .displaced
        .iter()
        .map(|d| (d.universe.key.clone(), d.ticker.as_str()))
        .collect();
    assert_eq!(
        displaced,
        [
            ("large_cap".to_owned(), "HOVR"),
            ("mid_cap".to_owned(), "SLIP")
        ]
    );
    // The stats summary counts the bands as they are held.
    let stats = &catalog.entries[&EntryKey::new("stock_stats", "universe", "summary")].value;
    assert_eq!(stats["overview"]["market_cap_distribution"]["large_cap"], 3);
    assert_eq!(stats["overview"]["market_cap_distribution"]["mid_cap"], 2);
    assert!(check_catalog(&catalog, &securities, &config).is_empty());
}

#[test]
fn a_micro_cap_member_is_held_below_the_lowest_limit_and_then_leaves() {
    let config = banded(0.05, 0.0);
    let securities = market(&[("TINY", 48_000_000), ("GONE", 47_000_000)], &config);
    let current = incumbents("market_cap", &[("micro_cap", &["TINY", "GONE"])]);
    let (catalog, report) =
        compute_catalog_banded(&securities, &config, &FamilySelection::all(), &current);
    assert_eq!(members(&catalog, "market_cap", "micro_cap"), ["TINY"]);
    assert_eq!(report.held.len(), 1);
    assert_eq!(report.held[0].reason.detail["plain"], Value::Null);
    assert!(report.displaced.is_empty(), "no band would have had it");
}

#[test]
fn a_ticker_the_live_rows_show_in_two_bands_is_placed_by_the_plain_rule() {
    let config = banded(0.05, 0.0);
    let securities = market(&[("BOTH", 10_300_000_000)], &config);
    let current = incumbents(
        "market_cap",
        &[("mid_cap", &["BOTH"]), ("large_cap", &["BOTH"])],
    );
    let (catalog, report) =
        compute_catalog_banded(&securities, &config, &FamilySelection::all(), &current);
    assert_eq!(members(&catalog, "market_cap", "large_cap"), ["BOTH"]);
    assert!(report.held.is_empty());
}

/// Twelve stocks ranked A (largest) to L.
fn twelve() -> Vec<(String, i64)> {
    (0..12)
        .map(|i| (((b'A' + i as u8) as char).to_string(), (100 - i) * B))
        .collect()
}

fn leaders_with(
    caps: &[(String, i64)],
    config: &CatalogConfig,
    current: &Incumbents,
) -> (Catalog, BandingReport) {
    let caps: Vec<(&str, i64)> = caps.iter().map(|(t, c)| (t.as_str(), *c)).collect();
    let securities = market(&caps, config);
    let selection = FamilySelection::only(&[Family::MarketLeaders]);
    let out = compute_catalog_banded(&securities, config, &selection, current);
    assert!(check_catalog(&out.0, &securities, config).is_empty());
    out
}

#[test]
fn a_top_n_member_ranked_within_the_buffer_stays_and_the_list_keeps_exactly_n() {
    let config = banded(0.0, 0.1);
    // Yesterday's top 10 was A..J; today K overtook J: K ranks 10th and J 11th.
    let mut caps = twelve();
    caps.swap(9, 10);
    let (k, j) = (caps[9].1, caps[10].1);
    caps[9].1 = j;
    caps[10].1 = k;
    let current = incumbents(
        "market_leaders",
        &[(
            "top_10",
            &["A", "B", "C", "D", "E", "F", "G", "H", "I", "J"],
        )],
    );
    let (catalog, report) = leaders_with(&caps, &config, &current);
    let top_10 = members(&catalog, "market_leaders", "top_10");
    assert_eq!(top_10, ["A", "B", "C", "D", "E", "F", "G", "H", "I", "J"]);
    let held: Vec<(&str, &str, Value)> = report
        .held
        .iter()
        .map(|h| {
            (
                h.universe.key.as_str(),
                h.ticker.as_str(),
                h.reason.detail.clone(),
            )
        })
        .collect();
    assert_eq!(
        held,
        [(
            "top_10",
            "J",
            json!({"market_cap": 90 * B, "rank": 11, "limit": 10, "kept_within": 11})
        )]
    );
    assert_eq!(report.displaced.len(), 1);
    assert_eq!(report.displaced[0].ticker, "K");
    assert_eq!(report.displaced[0].detail["rank"], 10);
    // J fell to 12th: past the buffer, it leaves and K takes its place.
    let mut caps = twelve();
    caps[9].1 = 50 * B;
    let (catalog, report) = leaders_with(&caps, &config, &current);
    let top_10 = members(&catalog, "market_leaders", "top_10");
    assert_eq!(top_10, ["A", "B", "C", "D", "E", "F", "G", "H", "I", "K"]);
    assert!(report.held.is_empty());
}

#[test]
fn a_stock_ranked_within_n_times_one_minus_the_buffer_always_belongs() {
    let config = banded(0.0, 0.1);
    // A newcomer at rank 1 pushes the ten members down to ranks 2–11: the one at 11 leaves even
    // though it is inside the buffer, or the largest stock would be missing from the top 10.
    let mut caps = twelve();
    caps[11] = ("NEW".to_owned(), 500 * B);
    let current = incumbents(
        "market_leaders",
        &[(
            "top_10",
            &["A", "B", "C", "D", "E", "F", "G", "H", "I", "J"],
        )],
    );
    let (catalog, report) = leaders_with(&caps, &config, &current);
    let top_10 = members(&catalog, "market_leaders", "top_10");
    assert_eq!(top_10, ["NEW", "A", "B", "C", "D", "E", "F", "G", "H", "I"]);
    assert!(report.held.is_empty());
}

#[test]
fn banding_off_is_exactly_the_plain_catalog() {
    let caps: Vec<(String, i64)> = (0..40)
        .map(|i| (format!("S{i:02}"), (i as i64 * 7919 % 97 + 1) * 310_000_000))
        .collect();
    let config = CatalogConfig::default();
    let refs: Vec<(&str, i64)> = caps.iter().map(|(t, c)| (t.as_str(), *c)).collect();
    let securities = market(&refs, &config);
    let everyone: Vec<&str> = refs.iter().map(|(t, _)| *t).collect();
    let current = incumbents("market_cap", &[("mega_cap", &everyone)]);
    let (catalog, report) =
        compute_catalog_banded(&securities, &config, &FamilySelection::all(), &current);
    let plain = compute_catalog(&securities, &config, &FamilySelection::all());
    assert_eq!(catalog.entries, plain.entries);
    assert_eq!(report, BandingReport::default());
}

// ---------------------------------------------------------------- property tests

/// Caps around the band limits and the top-N breakpoints: each stock a random limit times a
/// factor within ±20 %.
fn random_caps() -> impl Strategy<Value = Vec<i64>> {
    let limits = [
        200 * B,
        10 * B,
        2 * B,
        300_000_000,
        50_000_000,
        B,
        25 * B,
        400 * B,
    ];
    proptest::collection::vec((0..limits.len(), 0.8f64..1.2), 5..60).prop_map(move |picks| {
        picks
            .into_iter()
            .map(|(i, f)| (limits[i] as f64 * f) as i64)
            .collect()
    })
}

fn tickers(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("T{i:02}")).collect()
}

fn securities_of(caps: &[i64], config: &CatalogConfig) -> Securities {
    let names = tickers(caps.len());
    let rows: Vec<(&str, i64)> = names
        .iter()
        .zip(caps)
        .map(|(t, c)| (t.as_str(), *c))
        .collect();
    market(&rows, config)
}

/// The banded catalog's own checks: the invariants, exactly N per top-N list, holds only of
/// current members within their limits, and every other stock where the plain rule puts it.
fn assert_banded_catalog_is_sound(
    securities: &Securities,
    config: &CatalogConfig,
    current: &Incumbents,
) -> Result<(Catalog, BandingReport), TestCaseError> {
    let (catalog, report) =
        compute_catalog_banded(securities, config, &FamilySelection::all(), current);
    let violations = check_catalog(&catalog, securities, config);
    prop_assert!(violations.is_empty(), "{:?}", violations);
    let eligible = securities.ranked_stocks().len();
    for (key, n) in &config.leaders {
        prop_assert_eq!(
            members(&catalog, "market_leaders", key).len(),
            (*n).min(eligible)
        );
    }
    let plain = compute_catalog(securities, config, &FamilySelection::all());
    for held in &report.held {
        let was = match held.universe.name.as_str() {
            "market_cap" => &current.market_cap,
            _ => &current.market_leaders,
        };
        prop_assert!(was
            .get(&held.universe.key)
            .is_some_and(|m| m.contains(&held.ticker)));
        let detail = &held.reason.detail;
        if let Some(rank) = detail.get("rank").and_then(Value::as_u64) {
            prop_assert!(rank <= detail["kept_within"].as_u64().unwrap());
        } else {
            let cap = detail["market_cap"].as_f64().unwrap();
            let limit = detail["limit"].as_f64().unwrap();
            prop_assert!((cap - limit).abs() <= limit * config.banding.market_cap + 1.0);
        }
    }
    // In the market-cap family, a stock not held sits where the plain rule puts it.
    let held: HashSet<&str> = report
        .held
        .iter()
        .filter(|h| h.universe.name == "market_cap")
        .map(|h| h.ticker.as_str())
        .collect();
    for band in &config.market_cap_bands {
        let strip = |c: &Catalog| -> Vec<String> {
            members(c, "market_cap", &band.key)
                .into_iter()
                .filter(|t| !held.contains(t.as_str()))
                .collect()
        };
        prop_assert_eq!(strip(&catalog), strip(&plain), "{}", band.key);
    }
    Ok((catalog, report))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// Night one from the plain catalog, night two with every cap moved by up to ±8 %: the
    /// invariants hold with banding on, with the buffers drawn at random.
    #[test]
    fn the_invariants_hold_night_after_night_with_banding_on(
        caps in random_caps(),
        moves in proptest::collection::vec(0.92f64..1.08, 60),
        band in 0.0f64..0.3,
        buffer in 0.0f64..0.6,
    ) {
        let config = banded(band, buffer);
        let first = securities_of(&caps, &config);
        let night_one = compute_catalog(&first, &config, &FamilySelection::all());
        let moved: Vec<i64> = caps.iter().zip(&moves).map(|(c, m)| (*c as f64 * m) as i64).collect();
        let second = securities_of(&moved, &config);
        let current = Incumbents::of_catalog(&night_one);
        let (night_two, _) = assert_banded_catalog_is_sound(&second, &config, &current)?;
        let third = securities_of(&caps, &config);
        assert_banded_catalog_is_sound(&third, &config, &Incumbents::of_catalog(&night_two))?;
    }

    /// Incumbents the job could never have written (a hand-edited table: tickers in several
    /// bands and lists, unknown tickers, lists longer than N) still give a sound catalog.
    #[test]
    fn the_invariants_hold_for_arbitrary_incumbents(
        caps in random_caps(),
        picks in proptest::collection::vec((0usize..70, 0usize..8), 0..80),
    ) {
        let config = banded(0.05, 0.1);
        let securities = securities_of(&caps, &config);
        let names = tickers(70);
        let lists: Vec<(String, bool)> = config
            .market_cap_bands
            .iter()
            .map(|b| (b.key.clone(), true))
            .chain(config.leaders.iter().map(|(k, _)| (k.clone(), false)))
            .collect();
        let mut current = Incumbents::default();
        for (ticker, list) in picks {
            let (key, is_band) = &lists[list];
            let family = if *is_band { &mut current.market_cap } else { &mut current.market_leaders };
            family.entry(key.clone()).or_default().insert(names[ticker].clone());
        }
        assert_banded_catalog_is_sound(&securities, &config, &current)?;
    }
}
