//! ETFs, the complete lists, recent IPOs, stats, combos, inactive symbols, determinism and ownership.

use super::*;

// ---------------------------------------------------------------- etfs

fn etf_market() -> Vec<Row> {
    vec![
        etf("BND", "Vanguard Total Bond Market ETF"),
        etf("VTI", "Vanguard Total Stock Market ETF"),
        etf("SPY", "SPDR S&P 500 ETF Trust"),
        etf("VUG", "vanguard GROWTH etf"),
        etf("VXUS", "Vanguard Total International Stock ETF"),
        etf("XLK", "Technology Select Sector SPDR Fund"),
        etf("MTUM", "iShares MSCI USA Momentum Factor ETF"),
        etf("IGOV", "iShares International Treasury Bond ETF"),
        etf("OLDX", "SPDR Old Growth Technology Bond Fund").inactive(),
        etf("QQQ", "Invesco QQQ Trust"),
        cs("GROWTHCO", 5 * B),
    ]
}

#[test]
fn etf_categories_match_names_by_case_insensitive_substring_with_exclusions() {
    let c = catalog(&etf_market());
    let list = |name: &str, key: &str| entry(&c, &format!("etf_universe/{name}/{key}")).clone();
    assert_eq!(
        list("Broad Market ETFs", "etf_broad_market"),
        json!(["SPY", "VTI"])
    );
    assert_eq!(list("Bond ETFs", "etf_bonds"), json!(["BND", "IGOV"]));
    assert_eq!(list("Growth ETFs", "etf_growth"), json!(["VUG"]));
    assert_eq!(list("Value ETFs", "etf_value"), json!([]));
    assert_eq!(list("Technology ETFs", "etf_technology"), json!(["XLK"]));
    assert_eq!(
        list("International ETFs", "etf_international"),
        json!(["VXUS"])
    );
    assert_eq!(list("Factor ETFs", "etf_factor"), json!(["MTUM"]));
}

#[test]
fn etf_all_takes_every_active_etf_sorted_by_ticker_and_no_inactive_one() {
    let c = catalog(&etf_market());
    assert_eq!(
        entry(&c, "etf_universe/All ETFs/etf_all"),
        &json!(["BND", "IGOV", "MTUM", "QQQ", "SPY", "VTI", "VUG", "VXUS", "XLK"])
    );
    for (key, desired) in &c.entries {
        assert!(
            !members(&desired.value).contains(&"OLDX".to_owned()),
            "{key}"
        );
    }
}

#[test]
fn a_detailed_etf_value_holds_count_and_records_sorted_by_ticker() {
    let mut rows = etf_market();
    rows.push(Row(
        SymbolRow {
            symbol: "AGG".to_owned(),
            name: Some("iShares Core US Aggregate Bond ETF".to_owned()),
            kind: Some("ETF".to_owned()),
            active: Some(true),
            ..SymbolRow::default()
        },
        None,
    ));
    let c = catalog(&rows);
    assert_eq!(
        entry(&c, "etf_universe/Bond ETFs/etf_bonds_detailed"),
        &json!({
            "count": 3,
            "etfs": [
                {"symbol": "AGG", "name": "iShares Core US Aggregate Bond ETF", "etf_type": "ETF", "issuer": "Unknown"},
                {"symbol": "BND", "name": "Vanguard Total Bond Market ETF", "etf_type": "Equity", "issuer": "Vanguard"},
                {"symbol": "IGOV", "name": "iShares International Treasury Bond ETF", "etf_type": "Equity", "issuer": "Vanguard"},
            ]
        })
    );
    // Every category has its plain and detailed entry, listing the same tickers.
    for category in CatalogConfig::default().etf_categories {
        let plain = entry(
            &c,
            &format!("etf_universe/{}/{}", category.name, category.key),
        );
        let detailed = entry(
            &c,
            &format!("etf_universe/{}/{}_detailed", category.name, category.key),
        );
        assert_eq!(json!(members(detailed)), *plain, "{}", category.key);
        assert_eq!(detailed["count"], json!(plain.as_array().unwrap().len()));
    }
}

#[test]
fn a_renamed_etf_category_is_written_under_its_new_display_name() {
    let mut config = CatalogConfig::default();
    config.apply_cache_config(
        &[crate::domain::config::ConfigRow {
            name: "etf_categories".to_owned(),
            key: "etf_growth".to_owned(),
            value: json!("Growth Funds"),
        }],
        None,
    );
    let c = catalog_with(&etf_market(), &config);
    assert_eq!(
        entry(&c, "etf_universe/Growth Funds/etf_growth"),
        &json!(["VUG"])
    );
    assert!(keys_in(&c, "etf_universe", "Growth ETFs").is_empty());
    // The old display name stays owned so the stale rows get deleted.
    assert_eq!(
        c.scopes.get(&Scope::new("etf_universe", "Growth ETFs")),
        Some(&Family::Etfs)
    );
}

// ---------------------------------------------------------------- complete

#[test]
fn complete_holds_the_top_1000_records_and_every_eligible_ticker_by_market_cap() {
    let mut no_cap = cs("NOCAP", B);
    no_cap.0.weighted_shares_outstanding = None;
    let c = catalog(&[
        cs("MID", 5 * B),
        cs("BIG", 50 * B),
        cs("TINY", 10 * M),
        cs("GONE", 80 * B).inactive(),
        no_cap,
        etf("SPY", "SPDR S&P 500 ETF Trust"),
    ]);
    let top = entry(&c, "stock_universe/complete/top_1000");
    assert_eq!(members(top), vec!["BIG", "MID", "TINY"]);
    assert_eq!(top["count"], json!(3));
    assert_eq!(top["stocks"][2]["rank"], json!(3));
    assert_eq!(
        entry(&c, "stock_universe/complete/all_stocks"),
        &json!(["BIG", "MID", "TINY"])
    );
}

#[test]
fn complete_top_1000_is_cut_at_the_configured_limit() {
    let config = CatalogConfig {
        complete_stock_limit: 2,
        ..CatalogConfig::default()
    };
    let c = catalog_with(&[cs("A", 3 * B), cs("B", 2 * B), cs("C", B)], &config);
    assert_eq!(
        members(entry(&c, "stock_universe/complete/top_2")),
        vec!["A", "B"]
    );
    assert_eq!(
        entry(&c, "stock_universe/complete/all_stocks"),
        &json!(["A", "B", "C"])
    );
}

#[test]
fn complete_etfs_rank_by_market_cap_else_aum_else_zero() {
    let c = catalog(&[
        etf("EEE", "Nothing Known"),
        etf("AAA", "Has Shares").cap(5 * B),
        etf("BBB", "Has Aum").aum_millions(6_000.0),
        etf("CCC", "Nothing Known Either"),
        etf("DDD", "Small Aum").aum_millions(1_000.0),
        etf("OLD", "Inactive But Huge").cap(900 * B).inactive(),
    ]);
    assert_eq!(
        entry(&c, "etf_universe/complete/top_100"),
        &json!(["BBB", "AAA", "DDD", "CCC", "EEE"])
    );
    assert_eq!(
        entry(&c, "etf_universe/complete/all_etfs"),
        &json!(["BBB", "AAA", "DDD", "CCC", "EEE"])
    );
}

#[test]
fn a_market_cap_takes_precedence_over_aum_when_ranking_etfs() {
    let c = catalog(&[
        etf("CAP", "By Cap").cap(2 * B).aum_millions(1.0),
        etf("AUM", "By Aum").aum_millions(3_000.0),
    ]);
    assert_eq!(
        entry(&c, "etf_universe/complete/top_100"),
        &json!(["AUM", "CAP"])
    );
}

// ---------------------------------------------------------------- ipos

#[test]
fn a_listing_exactly_thirty_days_before_the_as_of_date_is_recent_and_thirty_one_is_not() {
    let c = catalog(&[
        cs("EDGE", 5 * B).listed_days_before(30),
        cs("OUT", 5 * B).listed_days_before(31),
    ]);
    assert_eq!(
        members(entry(&c, "stock_universe/ipos/recent_ipos")),
        vec!["EDGE"]
    );
}

#[test]
fn recent_ipos_are_newest_first_with_active_stocks_and_etfs_only() {
    let c = catalog(&[
        cs("NEW0", 5 * B).listed_days_before(0),
        cs("NEWB", 6 * B).listed_days_before(10),
        cs("NEWA", 4 * B).listed_days_before(10),
        cs("EDGE", 5 * B).listed_days_before(30),
        etf("FRESH", "Fresh Fund").listed_days_before(5),
        cs("GONE", 5 * B).listed_days_before(3).inactive(),
        etf("GONEF", "Gone Fund").listed_days_before(3).inactive(),
        cs("ADR", 5 * B).listed_days_before(2).kind("ADRC"),
        cs("FUTURE", 5 * B).listed_days_before(-1),
        cs("OLD", 5 * B).listed_days_before(400),
    ]);
    let value = entry(&c, "stock_universe/ipos/recent_ipos");
    assert_eq!(
        members(value),
        vec!["NEW0", "FRESH", "NEWA", "NEWB", "EDGE"]
    );
    assert_eq!(value["count"], json!(5));
    assert_eq!(value["stocks"][0]["rank"], json!(1));
    assert_eq!(value["stocks"][0]["list_date"], json!("2026-03-02"));
    assert_eq!(value["stocks"][0]["type"], json!("CS"));
    assert_eq!(value["stocks"][1]["type"], json!("ETF"));
    assert_eq!(value["stocks"][4]["list_date"], json!("2026-01-31"));
}

// ---------------------------------------------------------------- stats

#[test]
fn the_stats_summary_totals_eligible_stocks_and_records_the_as_of_date() {
    let c = catalog(&[
        cs("MEGA", 300 * B).sector(Some("Technology")),
        cs("LARGE", 20 * B).sector(Some("Energy")),
        cs("MID", 5 * B).sector(Some("Technology")),
        cs("SMALL", B).sector(None),
        cs("MICRO", 100 * M).sector(Some("Energy")),
        cs("NANO", 10 * M).sector(Some("Energy")),
        cs("GONE", 900 * B).inactive(),
        etf("SPY", "SPDR S&P 500 ETF Trust"),
        etf("QQQ", "Invesco QQQ Trust"),
        etf("OLD", "Old Fund").inactive(),
    ]);
    let value = entry(&c, "stock_stats/universe/summary");
    assert_eq!(
        value.as_object().unwrap().keys().collect::<Vec<_>>(),
        vec!["overview"]
    );
    let overview = &value["overview"];
    let total = 300 * B + 20 * B + 5 * B + B + 100 * M + 10 * M;
    assert_eq!(overview["total_stocks"], json!(6));
    assert_eq!(overview["total_etfs"], json!(2));
    assert_eq!(overview["total_market_cap"], json!(total));
    assert_eq!(overview["average_market_cap"], json!(total / 6));
    assert_eq!(overview["median_market_cap"], json!(3 * B));
    assert_eq!(
        overview["market_cap_distribution"],
        json!({"mega_cap": 1, "large_cap": 1, "mid_cap": 1, "small_cap": 1, "micro_cap": 1})
    );
    assert_eq!(
        overview["sector_distribution"],
        json!({"Energy": 3, "Technology": 2, "Unknown": 1})
    );
    assert_eq!(overview["last_updated"], json!("2026-03-02"));
}

#[test]
fn the_stats_summary_of_an_empty_market_is_all_zeroes() {
    let c = catalog(&[]);
    let overview = &entry(&c, "stock_stats/universe/summary")["overview"];
    assert_eq!(overview["total_stocks"], json!(0));
    assert_eq!(overview["average_market_cap"], json!(0));
    assert_eq!(overview["median_market_cap"], json!(0));
    assert_eq!(overview["last_updated"], json!("2026-03-02"));
}

// ---------------------------------------------------------------- combo

#[test]
fn the_combo_holds_the_top_fifty_stocks_then_the_essential_etfs_present() {
    let mut rows: Vec<Row> = (1..=55).map(|i| cs(&format!("S{i:02}"), i * B)).collect();
    rows.push(etf("QQQ", "Invesco QQQ Trust"));
    rows.push(etf("SPY", "SPDR S&P 500 ETF Trust"));
    rows.push(etf("IWM", "iShares Russell 2000 ETF").inactive());
    rows.push(etf("VOO", "Vanguard S&P 500 ETF"));
    let c = catalog(&rows);
    let mut expected: Vec<String> = (6..=55).rev().map(|i| format!("S{i:02}")).collect();
    expected.extend(strings(&["QQQ", "SPY"]));
    assert_eq!(
        entry(&c, "stock_etf_combo/stock_etf_test/combo_test"),
        &json!(expected)
    );
    let detailed = entry(&c, "stock_etf_combo/stock_etf_test/combo_test_detailed");
    assert_eq!(detailed["count"], json!(52));
    assert_eq!(detailed["stocks"].as_array().unwrap().len(), 50);
    assert_eq!(detailed["stocks"][49]["rank"], json!(50));
    assert_eq!(members(detailed)[50..], strings(&["QQQ", "SPY"]));
}

// ---------------------------------------------------------------- inactive symbols

#[test]
fn inactive_symbols_are_in_no_universe_at_all() {
    let rows = vec![
        cs("NVDA", 3_000 * B)
            .inactive()
            .listed_days_before(2)
            .sector(Some("Technology")),
        cs("MSFT", 3_100 * B),
        etf("SPY", "SPDR S&P 500 ETF Trust")
            .cap(500 * B)
            .inactive()
            .listed_days_before(1),
        etf("VTI", "Vanguard Total Stock Market ETF"),
        {
            let mut r = cs("NULLACT", 2_900 * B);
            r.0.active = None;
            r
        },
    ];
    let c = catalog(&rows);
    let mut seen = 0;
    for (key, desired) in &c.entries {
        let m = members(&desired.value);
        seen += m.len();
        for gone in ["NVDA", "SPY", "NULLACT"] {
            assert!(!m.contains(&gone.to_owned()), "{gone} is in {key}");
        }
    }
    assert!(seen > 0);
    assert_eq!(
        entry(&c, "stock_stats/universe/summary")["overview"]["total_stocks"],
        json!(1)
    );
}

// ---------------------------------------------------------------- determinism

fn busy_market() -> Vec<Row> {
    let mut rows: Vec<Row> = (0..40)
        .map(|i| {
            let sector = ["Technology", "Energy", "Healthcare", "Oil & Gas"][i % 4];
            let industry = ["Software", "Drilling", "Biotech"][i % 3];
            cs(&format!("D{i:02}"), ((i as i64 * 7919) % 97 + 1) * 900 * M)
                .sector(Some(sector))
                .industry(industry)
                .listed_days_before(i as i64)
        })
        .collect();
    rows.extend([
        cs("NVDA", 3_000 * B),
        cs("MSFT", 3_000 * B),
        cs(" msft ", 1).sector(Some("Wrong")),
        etf("SPY", "SPDR S&P 500 ETF Trust").aum_millions(500_000.0),
        etf("BND", "Vanguard Total Bond Market ETF").cap(100 * B),
        etf("VUG", "Vanguard Growth ETF"),
        cs("GONE", 10 * B).inactive(),
    ]);
    rows
}

#[test]
fn computing_twice_gives_byte_identical_values_and_equal_hashes() {
    let first = catalog(&busy_market());
    let second = catalog(&busy_market());
    assert_eq!(
        first.entries.keys().collect::<Vec<_>>(),
        second.entries.keys().collect::<Vec<_>>()
    );
    for (key, a) in &first.entries {
        let b = &second.entries[key];
        assert_eq!(canonical_json(&a.value), canonical_json(&b.value), "{key}");
        assert_eq!(a.hash, b.hash, "{key}");
        assert_eq!(a.hash, hash_value(&a.value), "{key}");
    }
    assert_eq!(first.scopes, second.scopes);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn shuffling_the_input_rows_gives_the_same_catalog(rows in Just(busy_market()).prop_shuffle()) {
        let expected = catalog(&busy_market());
        let shuffled = catalog(&rows);
        prop_assert_eq!(&shuffled.entries, &expected.entries);
        prop_assert_eq!(&shuffled.scopes, &expected.scopes);
    }
}

// ---------------------------------------------------------------- ownership

#[test]
fn owned_scopes_include_every_generated_type_and_name_with_its_family() {
    let c = catalog(&busy_market());
    for (key, desired) in &c.entries {
        assert_eq!(c.owner_of(key), Some(desired.family), "{key}");
    }
    for category in CatalogConfig::default().etf_categories {
        assert_eq!(
            c.scopes.get(&Scope::new("etf_universe", &category.name)),
            Some(&Family::Etfs)
        );
    }
    for name in ["Ai", "Biotech", "Cloud", "Crypto"] {
        assert_eq!(
            c.scopes.get(&Scope::new("themes", name)),
            Some(&Family::Themes)
        );
    }
    assert_eq!(c.owner_of(&EntryKey::new("themes", "Custom", "list")), None);
    assert_eq!(
        c.owner_of(&EntryKey::new("app_settings", "ui", "theme")),
        None
    );
    assert_eq!(
        c.owner_of(&EntryKey::new(
            "cache_config",
            "etf_categories",
            "etf_growth"
        )),
        None
    );
}

#[test]
fn sector_leaders_industry_and_themes_scopes_are_owned_even_in_an_empty_market() {
    let c = catalog(&[]);
    assert_eq!(
        c.scopes
            .get(&Scope::new("stock_universe", "sector_leaders")),
        Some(&Family::SectorLeaders)
    );
    assert_eq!(
        c.scopes.get(&Scope::new("stock_universe", "industry")),
        Some(&Family::Industry)
    );
    assert_eq!(
        c.scopes.get(&Scope::new("stock_universe", "themes")),
        Some(&Family::Themes)
    );
    assert!(keys_in(&c, "stock_universe", "sector_leaders").is_empty());
    assert!(keys_in(&c, "stock_universe", "industry").is_empty());
}

#[test]
fn a_selection_computes_and_owns_only_its_families() {
    let securities = normalize(&snapshot(&busy_market()), &CatalogConfig::default());
    let c = compute_catalog(
        &securities,
        &CatalogConfig::default(),
        &FamilySelection::only(&[Family::Themes, Family::Ipos]),
    );
    assert!(!c.entries.is_empty());
    assert!(c
        .entries
        .values()
        .all(|e| matches!(e.family, Family::Themes | Family::Ipos)));
    assert!(c
        .scopes
        .values()
        .all(|f| matches!(f, Family::Themes | Family::Ipos)));
    assert_eq!(
        c.owner_of(&EntryKey::new("stock_universe", "market_cap", "large_cap")),
        None
    );
}
