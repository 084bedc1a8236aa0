//! Market-cap bands, record ordering, market and sector leaders, industries and themes.

use super::*;

// ---------------------------------------------------------------- market_cap bands

#[test]
fn a_stock_at_exactly_ten_billion_is_large_cap_not_mid_cap() {
    let c = catalog(&[cs("TEN", 10 * B)]);
    assert_eq!(bands_of(&c, "TEN"), vec!["large_cap"]);
}

#[test]
fn a_stock_one_dollar_below_ten_billion_is_mid_cap() {
    let c = catalog(&[cs("NINE", 10 * B - 1)]);
    assert_eq!(bands_of(&c, "NINE"), vec!["mid_cap"]);
}

#[test]
fn a_stock_at_exactly_two_hundred_billion_is_mega_cap_not_large_cap() {
    let c = catalog(&[cs("MEGA", 200 * B)]);
    assert_eq!(bands_of(&c, "MEGA"), vec!["mega_cap"]);
}

#[test]
fn a_stock_at_exactly_two_billion_is_mid_cap_not_small_cap() {
    let c = catalog(&[cs("MID", 2 * B)]);
    assert_eq!(bands_of(&c, "MID"), vec!["mid_cap"]);
}

#[test]
fn a_stock_at_exactly_three_hundred_million_is_small_cap_not_micro_cap() {
    let c = catalog(&[cs("SMALL", 300 * M)]);
    assert_eq!(bands_of(&c, "SMALL"), vec!["small_cap"]);
}

#[test]
fn a_stock_at_exactly_fifty_million_is_micro_cap() {
    let c = catalog(&[cs("MICRO", 50 * M)]);
    assert_eq!(bands_of(&c, "MICRO"), vec!["micro_cap"]);
}

#[test]
fn a_stock_one_dollar_below_fifty_million_is_in_no_band() {
    let c = catalog(&[cs("NANO", 50 * M - 1)]);
    assert!(bands_of(&c, "NANO").is_empty());
    // It is still an eligible stock: it leads the market.
    assert_eq!(
        members(entry(&c, "stock_universe/market_leaders/top_10_stocks")),
        vec!["NANO"]
    );
}

#[test]
fn every_band_is_written_even_when_empty() {
    let c = catalog(&[]);
    for band in ["mega_cap", "large_cap", "mid_cap", "small_cap", "micro_cap"] {
        assert_eq!(
            entry(&c, &format!("stock_universe/market_cap/{band}")),
            &json!({"count": 0, "stocks": []})
        );
    }
}

#[test]
fn a_zero_micro_threshold_puts_every_positive_cap_below_small_cap_in_micro_cap() {
    let mut config = CatalogConfig::default();
    config.apply_cache_config(
        &[crate::domain::config::ConfigRow {
            name: "market_cap_thresholds".to_owned(),
            key: "micro_cap".to_owned(),
            value: json!(0),
        }],
        None,
    );
    let c = catalog_with(
        &[
            cs("ONE", 1),
            cs("NANO", 50 * M - 1),
            cs("EDGE", 300 * M - 1),
            cs("SMALL", 300 * M),
        ],
        &config,
    );
    assert_eq!(
        members(entry(&c, "stock_universe/market_cap/micro_cap")),
        vec!["EDGE", "NANO", "ONE"]
    );
    assert_eq!(bands_of(&c, "SMALL"), vec!["small_cap"]);
}

#[test]
fn every_stock_above_the_lowest_threshold_is_in_exactly_one_band() {
    let caps = [
        50 * M,
        50 * M + 1,
        299 * M,
        300 * M,
        1_999_999_999,
        2 * B,
        9 * B,
        10 * B,
        199 * B,
        200 * B,
        3_000 * B,
    ];
    let rows: Vec<Row> = caps
        .iter()
        .enumerate()
        .map(|(i, cap)| cs(&format!("S{i}"), *cap))
        .collect();
    let c = catalog(&rows);
    for (i, _) in caps.iter().enumerate() {
        assert_eq!(bands_of(&c, &format!("S{i}")).len(), 1, "S{i}");
    }
}

#[test]
fn ineligible_rows_are_in_no_band() {
    let mut no_cap = cs("NOCAP", 5 * B);
    no_cap.0.weighted_shares_outstanding = None;
    no_cap.0.market_cap = None;
    let c = catalog(&[
        no_cap,
        cs("GONE", 5 * B).inactive(),
        cs("ADR", 5 * B).kind("ADRC"),
        etf("FUND", "Some Fund").cap(5 * B),
    ]);
    assert!(members(entry(&c, "stock_universe/market_cap/mid_cap")).is_empty());
}

// ---------------------------------------------------------------- ordering and records

#[test]
fn members_are_ordered_by_market_cap_descending_then_ticker_ascending() {
    let c = catalog(&[
        cs("BBB", 5 * B),
        cs("CCC", 7 * B),
        cs("AAA", 5 * B),
        cs("DDD", 3 * B),
    ]);
    assert_eq!(
        members(entry(&c, "stock_universe/market_cap/mid_cap")),
        vec!["CCC", "AAA", "BBB", "DDD"]
    );
}

#[test]
fn ranks_are_one_based_and_count_equals_the_stocks_array_length_in_every_entry() {
    let rows: Vec<Row> = (0..30)
        .map(|i| {
            let sector = ["Technology", "Energy", "Healthcare"][i % 3];
            cs(&format!("T{i:02}"), (i as i64 + 1) * 700 * M).sector(Some(sector))
        })
        .collect();
    let c = catalog(&rows);
    let mut checked = 0;
    for (key, desired) in &c.entries {
        let Some(stocks) = desired.value.get("stocks").and_then(Value::as_array) else {
            continue;
        };
        let extra = desired
            .value
            .get("etfs")
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        assert_eq!(desired.value["count"], json!(stocks.len() + extra), "{key}");
        for (i, record) in stocks.iter().enumerate() {
            assert_eq!(record["rank"], json!(i + 1), "{key}");
        }
        checked += 1;
    }
    assert!(checked > 10);
}

#[test]
fn a_stock_record_has_exactly_the_contract_fields() {
    let c = catalog(&[cs("AAPL", 3_000 * B)
        .sector(Some("Technology"))
        .industry("Consumer Electronics")]);
    let record = &entry(&c, "stock_universe/market_cap/mega_cap")["stocks"][0];
    let mut fields: Vec<&str> = record
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    fields.sort_unstable();
    assert_eq!(
        fields,
        vec![
            "exchange",
            "industry",
            "market",
            "market_cap",
            "name",
            "rank",
            "sector",
            "ticker"
        ]
    );
    assert_eq!(
        record,
        &json!({
            "ticker": "AAPL",
            "name": "AAPL Corp",
            "rank": 1,
            "sector": "Technology",
            "industry": "Consumer Electronics",
            "exchange": "XNYS",
            "market": "stocks",
            "market_cap": 3_000 * B,
        })
    );
}

#[test]
fn missing_text_fields_are_written_as_unknown() {
    let mut row = cs("BARE", 5 * B).sector(None);
    row.0.name = None;
    row.0.industry = None;
    row.0.primary_exchange = None;
    row.0.market = None;
    let c = catalog(&[row]);
    let record = &entry(&c, "stock_universe/market_cap/mid_cap")["stocks"][0];
    for field in ["name", "sector", "industry", "exchange", "market"] {
        assert_eq!(record[field], json!("Unknown"), "{field}");
    }
}

// ---------------------------------------------------------------- market_leaders

#[test]
fn each_market_leaders_list_is_a_prefix_of_the_next() {
    let rows: Vec<Row> = (0..60)
        .map(|i| cs(&format!("L{i:02}"), (100 + i as i64) * 100 * M))
        .collect();
    let c = catalog(&rows);
    let lists: Vec<Vec<String>> = [
        "top_10_stocks",
        "top_50",
        "top_100",
        "top_250",
        "top_500",
        "top_2000",
    ]
    .iter()
    .map(|k| members(entry(&c, &format!("stock_universe/market_leaders/{k}"))))
    .collect();
    assert_eq!(lists[0].len(), 10);
    assert_eq!(lists[1].len(), 50);
    assert_eq!(lists[2].len(), 60);
    assert_eq!(lists[0][0], "L59");
    for pair in lists.windows(2) {
        assert!(pair[1].starts_with(&pair[0]));
    }
    assert_eq!(lists[5], lists[2]);
}

#[test]
fn a_small_market_gives_shorter_leader_lists() {
    let c = catalog(&[cs("A", 3 * B), cs("B", 2 * B), cs("C", B)]);
    assert_eq!(keys_in(&c, "stock_universe", "market_leaders").len(), 6);
    for key in keys_in(&c, "stock_universe", "market_leaders") {
        let value = entry(&c, &format!("stock_universe/market_leaders/{key}"));
        assert_eq!(members(value), vec!["A", "B", "C"], "{key}");
        assert_eq!(value["count"], json!(3));
    }
}

// ---------------------------------------------------------------- sector_leaders

#[test]
fn slug_lowercases_joins_words_with_underscores_and_spells_out_ampersands() {
    assert_eq!(slug("Consumer Cyclical"), "consumer_cyclical");
    assert_eq!(slug("Oil & Gas"), "oil_and_gas");
    assert_eq!(slug("  Real   Estate "), "real_estate");
    assert_eq!(slug("Technology"), "technology");
}

#[test]
fn sector_leader_keys_are_top_10_and_the_sector_slug() {
    let c = catalog(&[
        cs("AMZN", 2_000 * B).sector(Some("Consumer Cyclical")),
        cs("XOM", 400 * B).sector(Some("Oil & Gas")),
        cs("MSFT", 3_000 * B).sector(Some("Technology")),
    ]);
    assert_eq!(
        keys_in(&c, "stock_universe", "sector_leaders"),
        vec![
            "top_10_consumer_cyclical",
            "top_10_oil_and_gas",
            "top_10_technology"
        ]
    );
    assert_eq!(
        members(entry(
            &c,
            "stock_universe/sector_leaders/top_10_oil_and_gas"
        )),
        vec!["XOM"]
    );
}

#[test]
fn null_and_unknown_sectors_have_no_sector_leaders() {
    let c = catalog(&[
        cs("NULLS", 50 * B).sector(None),
        cs("UNK", 40 * B).sector(Some("Unknown")),
        cs("BLANK", 30 * B).sector(Some("   ")),
        cs("TECH", 20 * B).sector(Some("Technology")),
    ]);
    assert_eq!(
        keys_in(&c, "stock_universe", "sector_leaders"),
        vec!["top_10_technology"]
    );
    let all: Vec<String> = keys_in(&c, "stock_universe", "sector_leaders")
        .iter()
        .flat_map(|k| members(entry(&c, &format!("stock_universe/sector_leaders/{k}"))))
        .collect();
    assert_eq!(all, vec!["TECH"]);
}

#[test]
fn a_sector_keeps_only_its_ten_largest_stocks() {
    let rows: Vec<Row> = (1..=13)
        .map(|i| cs(&format!("E{i:02}"), i * B).sector(Some("Energy")))
        .collect();
    let c = catalog(&rows);
    let value = entry(&c, "stock_universe/sector_leaders/top_10_energy");
    let expected: Vec<String> = (4..=13).rev().map(|i| format!("E{i:02}")).collect();
    assert_eq!(members(value), expected);
    assert_eq!(value["count"], json!(10));
    assert_eq!(value["stocks"][9]["rank"], json!(10));
}

// ---------------------------------------------------------------- industry

#[test]
fn an_industry_needs_at_least_three_eligible_stocks() {
    let c = catalog(&[
        cs("SW1", 5 * B).industry("Software"),
        cs("SW2", 4 * B).industry("Software"),
        cs("SW3", 3 * B).industry("Software"),
        cs("BIO1", 5 * B).industry("Biotechnology"),
        cs("BIO2", 4 * B).industry("Biotechnology"),
        cs("BIO3", 3 * B).industry("Biotechnology").inactive(),
        cs("BIO4", 3 * B).industry("Biotechnology").kind("ETF"),
    ]);
    assert_eq!(keys_in(&c, "stock_universe", "industry"), vec!["software"]);
}

#[test]
fn at_most_twenty_industries_are_chosen_by_count_then_name() {
    let mut rows = Vec::new();
    // 21 industries of three stocks, named "Ind A" … "Ind U", and one of four stocks named last.
    for (n, letter) in ('A'..='U').enumerate() {
        for j in 0..3 {
            rows.push(
                cs(&format!("I{letter}{j}"), (n as i64 * 10 + j + 1) * 100 * M)
                    .industry(&format!("Ind {letter}")),
            );
        }
    }
    for j in 0..4 {
        rows.push(cs(&format!("Z{j}"), (j + 1) * 100 * M).industry("Zeta Tools"));
    }
    let c = catalog(&rows);
    let keys = keys_in(&c, "stock_universe", "industry");
    assert_eq!(keys.len(), 20);
    assert!(keys.contains(&"zeta_tools".to_owned()));
    let mut expected: Vec<String> = ('a'..='s').map(|l| format!("ind_{l}")).collect();
    expected.push("zeta_tools".to_owned());
    assert_eq!(keys, expected);
    assert!(!has_entry(&c, "stock_universe/industry/ind_t"));
    assert!(!has_entry(&c, "stock_universe/industry/ind_u"));
}

#[test]
fn an_industry_lists_at_most_its_fifteen_largest_stocks() {
    let rows: Vec<Row> = (1..=17)
        .map(|i| cs(&format!("SW{i:02}"), i * B).industry("Software"))
        .collect();
    let c = catalog(&rows);
    let value = entry(&c, "stock_universe/industry/software");
    let expected: Vec<String> = (3..=17).rev().map(|i| format!("SW{i:02}")).collect();
    assert_eq!(members(value), expected);
    assert_eq!(value["count"], json!(15));
}

#[test]
fn an_industry_value_names_its_most_common_sector() {
    let c = catalog(&[
        cs("A1", 9 * B)
            .industry("Semiconductors")
            .sector(Some("Industrials")),
        cs("A2", 8 * B)
            .industry("Semiconductors")
            .sector(Some("Technology")),
        cs("A3", 7 * B)
            .industry("Semiconductors")
            .sector(Some("Technology")),
        // A three-way tie goes to the first sector by name.
        cs("B1", 9 * B)
            .industry("Specialty Retail")
            .sector(Some("Technology")),
        cs("B2", 8 * B)
            .industry("Specialty Retail")
            .sector(Some("Consumer Cyclical")),
        cs("B3", 7 * B)
            .industry("Specialty Retail")
            .sector(Some("Energy")),
    ]);
    let semis = entry(&c, "stock_universe/industry/semiconductors");
    assert_eq!(semis["sector"], json!("Technology"));
    assert_eq!(semis["count"], json!(3));
    assert_eq!(members(semis), vec!["A1", "A2", "A3"]);
    assert_eq!(
        entry(&c, "stock_universe/industry/specialty_retail")["sector"],
        json!("Consumer Cyclical")
    );
}

// ---------------------------------------------------------------- themes

#[test]
fn a_theme_list_is_the_sorted_tickers_of_its_active_common_stocks() {
    // ai = NVDA GOOGL MSFT AMD: GOOGL inactive, AMD an ETF here; nothing else configured is present.
    let c = catalog(&[
        cs("NVDA", 3_000 * B),
        cs("MSFT", 3_100 * B),
        cs("GOOGL", 2_000 * B).inactive(),
        etf("AMD", "Not Really A Fund"),
        cs("AAPL", 3_500 * B),
    ]);
    assert_eq!(entry(&c, "themes/Ai/list"), &json!(["MSFT", "NVDA"]));
    let records = entry(&c, "stock_universe/themes/ai");
    assert_eq!(members(records), vec!["MSFT", "NVDA"]);
    assert_eq!(records["count"], json!(2));
    assert_eq!(records["stocks"][0]["market_cap"], json!(3_100 * B));
    assert_eq!(records["stocks"][1]["rank"], json!(2));
}

#[test]
fn every_configured_theme_gets_both_entries_even_when_empty() {
    let c = catalog(&[]);
    for (name, id) in [
        ("Ai", "ai"),
        ("Biotech", "biotech"),
        ("Cloud", "cloud"),
        ("Crypto", "crypto"),
    ] {
        assert_eq!(entry(&c, &format!("themes/{name}/list")), &json!([]));
        assert_eq!(
            entry(&c, &format!("stock_universe/themes/{id}")),
            &json!({"count": 0, "stocks": []})
        );
    }
    assert_eq!(keys_in(&c, "stock_universe", "themes").len(), 4);
}

#[test]
fn configured_theme_tickers_are_normalised_deduplicated_and_title_cased() {
    let mut config = CatalogConfig::default();
    config.themes.insert(
        "clean_energy".to_owned(),
        strings(&[" enph", "FSLR", "fslr", "NOPE", "bad ticker"]),
    );
    let c = catalog_with(&[cs("ENPH", 20 * B), cs("FSLR", 25 * B)], &config);
    assert_eq!(
        entry(&c, "themes/Clean Energy/list"),
        &json!(["ENPH", "FSLR"])
    );
    assert_eq!(
        members(entry(&c, "stock_universe/themes/clean_energy")),
        vec!["ENPH", "FSLR"]
    );
}
