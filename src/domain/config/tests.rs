//! Unit tests of the configuration: `cache_config` rows, the TOML file, and the allowed ranges.
use super::*;
use serde_json::json;

fn row(name: &str, key: &str, value: Value) -> ConfigRow {
    ConfigRow {
        name: name.into(),
        key: key.into(),
        value,
    }
}

#[test]
fn legacy_zero_micro_threshold_is_accepted() {
    let mut config = CatalogConfig::default();
    config.apply_cache_config(&[row("market_cap_thresholds", "micro_cap", json!(0))], None);
    assert_eq!(config.market_cap_bands[4].lower, 0);
    config.validate().unwrap();
}

#[test]
fn plain_string_category_only_renames() {
    let mut config = CatalogConfig::default();
    let warnings = config.apply_cache_config(
        &[
            row("etf_categories", "etf_growth", json!("Growth Funds")),
            row("etf_categories", "etf_sectors", json!("Sector ETFs")),
            row("industry_groups", "tech", json!(["x"])),
        ],
        None,
    );
    let growth = config
        .etf_categories
        .iter()
        .find(|c| c.key == "etf_growth")
        .unwrap();
    assert_eq!(growth.name, "Growth Funds");
    assert_eq!(growth.include, vec!["Growth".to_owned()]);
    assert!(!config.etf_categories.iter().any(|c| c.key == "etf_sectors"));
    assert_eq!(warnings.len(), 2);
}

#[test]
fn object_category_defines_a_new_one() {
    let mut config = CatalogConfig::default();
    config.apply_cache_config(
        &[row(
            "etf_categories",
            "etf_dividend",
            json!({"name": "Dividend ETFs", "include": ["Dividend"], "exclude": ["Bond"]}),
        )],
        None,
    );
    let cat = config
        .etf_categories
        .iter()
        .find(|c| c.key == "etf_dividend")
        .unwrap();
    assert_eq!(cat.include, vec!["Dividend".to_owned()]);
    assert!(!cat.all);
}

#[test]
fn a_row_the_job_cannot_use_is_ignored_with_a_warning_naming_it() {
    let mut config = CatalogConfig::default();
    let warnings = config.apply_cache_config(
        &[
            row("market_cap_thresholds", "large_cap", json!(true)),
            row(
                "market_cap_thresholds",
                "mid_cap",
                json!(900_000_000_000_i64),
            ),
            row("complete_limits", "top_1000", json!(0)),
            row("theme_definitions", "__", json!(["AAA"])),
            row("etf_categories", "etf_blank", json!({"name": " "})),
            row("market_cap_thresholds", "small_cap", json!(400_000_000)),
        ],
        None,
    );
    assert_eq!(warnings.len(), 5, "{warnings:?}");
    assert!(warnings[0]
        .source
        .contains("market_cap_thresholds/large_cap"));
    assert!(warnings[1]
        .message
        .contains("must have a higher lower bound"));
    assert!(warnings[2].message.contains("1..=1000000"), "{warnings:?}");
    assert!(warnings
        .iter()
        .all(|w| w.message.ends_with("the row is ignored")));
    let defaults = CatalogConfig::default();
    assert_eq!(config.market_cap_bands[1], defaults.market_cap_bands[1]);
    assert_eq!(config.market_cap_bands[2], defaults.market_cap_bands[2]);
    assert_eq!(
        config.market_cap_bands[3].lower, 400_000_000,
        "a good row still applies"
    );
    assert_eq!(config.complete_stock_limit, 1000);
    assert_eq!(config.themes.len(), 4);
}

#[test]
fn a_row_the_file_would_contradict_is_ignored_and_the_file_applies() {
    let file = parse_toml(
        "night.toml",
        "[catalog]\nmarket_cap_thresholds = { large_cap = 5000000000 }\n",
    )
    .unwrap();
    let mut config = CatalogConfig::default();
    let rows = [row(
        "market_cap_thresholds",
        "mid_cap",
        json!(6_000_000_000_i64),
    )];
    let warnings = config.apply_cache_config(&rows, Some((&file.catalog, "night.toml")));
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].source.contains("market_cap_thresholds/mid_cap"));
    config.apply_toml(&file.catalog, "night.toml").unwrap();
    assert_eq!(config.market_cap_bands[1].lower, 5_000_000_000);
    assert_eq!(config.market_cap_bands[2].lower, 2_000_000_000);
}

#[test]
fn a_setting_outside_its_range_is_refused_naming_the_file_key_and_range() {
    for (text, expected) in [
        (
            "ipo_window_days = 200000000",
            "ipo_window_days = 200000000 is outside the allowed range 0..=3650 days",
        ),
        ("stale_close_days = -1", "stale_close_days = -1 is outside"),
        (
            "complete_limits = { top_100 = 0 }",
            "complete_limits.top_100 = 0",
        ),
        ("themes = { \"\" = [\"AAA\"] }", "has no name"),
    ] {
        let file = parse_toml("night.toml", &format!("[catalog]\n{text}\n")).unwrap();
        let err = CatalogConfig::default()
            .apply_toml(&file.catalog, "night.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("night.toml [catalog]"), "{err}");
        assert!(err.contains(expected), "{err}");
    }
}

#[test]
fn toml_overrides_rows() {
    let file = parse_toml(
        "test.toml",
        "[catalog]\nmarket_cap_thresholds = { large_cap = 12000000000 }\nthemes = { quantum = [\"IONQ\"] }\n",
    )
    .unwrap();
    let mut config = CatalogConfig::default();
    config.apply_toml(&file.catalog, "test.toml").unwrap();
    assert_eq!(config.market_cap_bands[1].lower, 12_000_000_000);
    assert_eq!(config.themes["quantum"], vec!["IONQ".to_owned()]);
}

#[test]
fn bad_toml_names_the_file() {
    let err = parse_toml("cfg.toml", "[catalog\n").unwrap_err();
    assert!(err.to_string().contains("cfg.toml"));
    let err = parse_toml("cfg.toml", "[catalog]\nbogus = 1\n").unwrap_err();
    assert!(err.to_string().contains("bogus"));
}

#[test]
fn out_of_order_bands_are_refused() {
    let mut config = CatalogConfig::default();
    config.market_cap_bands[2].lower = 20_000_000_000;
    assert!(config.validate().is_err());
}

#[test]
fn theme_names_are_title_case() {
    assert_eq!(theme_display_name("ai"), "Ai");
    assert_eq!(theme_display_name("clean_energy"), "Clean Energy");
}
