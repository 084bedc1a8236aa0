//! Member reasons, the replay of drifted rows, and the diff/replay property laws.

use super::*;

// ---------------------------------------------------------------- reasons

/// Diffs the market-cap family of `after` against rows holding the catalog of `before`.
fn market_cap_run(before: Vec<SymbolRow>, after: Vec<SymbolRow>) -> Vec<Delta> {
    let config = CatalogConfig::default();
    let only = FamilySelection::only(&[Family::MarketCap]);
    let old = compute_catalog(&securities(before), &config, &only);
    let current = rows_holding(&old);
    let market = securities(after);
    let catalog = compute_catalog(&market, &config, &only);
    let deltas = diff(
        &catalog,
        &current,
        &context(&market, &config, &current),
        &LiveRowFacts::default(),
    );
    for delta in &deltas {
        let before = current
            .iter()
            .find(|c| c.key == delta.key)
            .map(|c| &c.value);
        assert_replays(before, delta);
    }
    deltas
}

fn band<'a>(deltas: &'a [Delta], name: &str) -> &'a EntryChange {
    &deltas
        .iter()
        .find(|d| d.key == key(&format!("stock_universe/market_cap/{name}")))
        .unwrap_or_else(|| panic!("no delta for {name}: {deltas:#?}"))
        .change
}

fn added<'a>(change: &'a EntryChange, ticker: &str) -> &'a AddedMember {
    change
        .lists
        .iter()
        .flat_map(|l| l.added.iter())
        .find(|m| m.ticker == ticker)
        .unwrap_or_else(|| panic!("{ticker} not added: {change:#?}"))
}

fn removed<'a>(change: &'a EntryChange, ticker: &str) -> &'a RemovedMember {
    change
        .lists
        .iter()
        .flat_map(|l| l.removed.iter())
        .find(|m| m.ticker == ticker)
        .unwrap_or_else(|| panic!("{ticker} not removed: {change:#?}"))
}

#[test]
fn a_stock_moving_from_nine_point_eight_to_ten_point_three_billion_crosses_the_large_cap_threshold()
{
    let deltas = market_cap_run(
        vec![stock("XCO", 9_800_000_000), stock("YCO", 50 * B)],
        vec![stock("XCO", 10_300_000_000), stock("YCO", 50 * B)],
    );
    let joined = added(band(&deltas, "large_cap"), "XCO");
    assert_eq!(joined.reason.code, ReasonCode::ThresholdCrossed);
    assert_eq!(
        joined.reason.detail,
        json!({"field": "market_cap", "before": 9_800_000_000_i64, "after": 10_300_000_000_i64, "threshold": 10_000_000_000_i64})
    );
    assert_eq!(joined.position, 2);
    let left = removed(band(&deltas, "mid_cap"), "XCO");
    assert_eq!(left.reason.code, ReasonCode::ThresholdCrossed);
    assert_eq!(left.reason.detail["threshold"], json!(10_000_000_000_i64));
    // YCO kept rank 1 in large_cap: nothing to say about it.
    assert_eq!(band(&deltas, "large_cap").reranked().count(), 0);
}

#[test]
fn an_inactive_symbol_removed_is_delisted_or_inactive() {
    let mut gone = stock("XCO", 20 * B);
    gone.active = Some(false);
    let deltas = market_cap_run(
        vec![stock("XCO", 20 * B), stock("YCO", 50 * B)],
        vec![gone, stock("YCO", 50 * B)],
    );
    let change = band(&deltas, "large_cap");
    assert_eq!(change.removed_tickers(), vec!["XCO"]);
    let left = removed(change, "XCO");
    assert_eq!(left.reason.code, ReasonCode::DelistedOrInactive);
    assert_eq!(left.reason.detail, json!({"status": "inactive"}));
}

#[test]
fn a_symbol_no_longer_in_symbols_is_delisted_or_inactive() {
    let deltas = market_cap_run(
        vec![stock("XCO", 20 * B), stock("YCO", 50 * B)],
        vec![stock("YCO", 50 * B)],
    );
    let left = removed(band(&deltas, "large_cap"), "XCO");
    assert_eq!(left.reason.code, ReasonCode::DelistedOrInactive);
    assert_eq!(left.reason.detail, json!({"status": "not in symbols"}));
}

/// A first build: every entry is created from an empty table.
fn first_build(rows: Vec<SymbolRow>) -> Vec<Delta> {
    let config = CatalogConfig::default();
    let market = securities(rows);
    let catalog = compute_catalog(&market, &config, &FamilySelection::all());
    diff(
        &catalog,
        &[],
        &context(&market, &config, &[]),
        &LiveRowFacts::default(),
    )
}

#[test]
fn the_members_of_an_entry_built_for_the_first_time_are_an_initial_build() {
    let deltas = first_build(vec![stock("XCO", 20 * B), stock("YCO", 50 * B)]);
    let joined = added(band(&deltas, "large_cap"), "XCO");
    assert_eq!(joined.reason.code, ReasonCode::InitialBuild);
    assert_eq!(ReasonCode::InitialBuild.as_str(), "initial_build");
    let codes: BTreeSet<ReasonCode> = deltas
        .iter()
        .flat_map(|d| d.change.lists.iter())
        .flat_map(|l| l.added.iter().map(|m| m.reason.code))
        .collect();
    assert_eq!(codes, BTreeSet::from([ReasonCode::InitialBuild]));
}

#[test]
fn a_new_listing_in_a_first_build_stays_a_new_listing() {
    let mut fresh = stock("NEWCO", 20 * B);
    fresh.list_date = Some(as_of() - Duration::days(5));
    let deltas = first_build(vec![fresh]);
    assert_eq!(
        added(band(&deltas, "large_cap"), "NEWCO").reason.code,
        ReasonCode::NewListing
    );
}

#[test]
fn a_new_listing_inside_the_ipo_window_is_a_new_listing() {
    let mut fresh = stock("NEWCO", 20 * B);
    fresh.list_date = Some(as_of() - Duration::days(5));
    let deltas = market_cap_run(
        vec![stock("YCO", 50 * B)],
        vec![stock("YCO", 50 * B), fresh],
    );
    let joined = added(band(&deltas, "large_cap"), "NEWCO");
    assert_eq!(joined.reason.code, ReasonCode::NewListing);
    assert_eq!(joined.reason.detail, json!({"list_date": "2026-02-25"}));
}

#[test]
fn an_old_listing_joining_without_a_previous_record_is_not_a_new_listing() {
    let mut old = stock("OLDCO", 20 * B);
    old.list_date = Some(as_of() - Duration::days(400));
    let deltas = market_cap_run(vec![stock("YCO", 50 * B)], vec![stock("YCO", 50 * B), old]);
    assert_ne!(
        added(band(&deltas, "large_cap"), "OLDCO").reason.code,
        ReasonCode::NewListing
    );
}

#[test]
fn a_stock_falling_through_two_bands_joins_small_cap_with_the_two_billion_threshold() {
    let deltas = market_cap_run(vec![stock("XCO", 20 * B)], vec![stock("XCO", B)]);
    let joined = added(band(&deltas, "small_cap"), "XCO");
    assert_eq!(joined.reason.code, ReasonCode::ThresholdCrossed);
    assert_eq!(joined.reason.detail["threshold"], json!(2 * B));
    assert_eq!(
        removed(band(&deltas, "large_cap"), "XCO").reason.detail["threshold"],
        json!(10 * B)
    );
}

// ---------------------------------------------------------------- replay of drifted rows

#[test]
fn a_drifted_row_with_a_junk_list_replays_to_the_desired_value() {
    let id = "stock_universe/market_leaders/top_10_stocks";
    let after = ranked(&[("AAA", 30 * B)]);
    // An operator's manual edit left an `etfs` array of non-records next to valid stocks.
    let before = json!({"count": 1, "stocks": [record("AAA", 1, 30 * B)], "etfs": [42]});
    let catalog = want(vec![(Family::MarketLeaders, id, after.clone())]);
    let deltas = plan(&catalog, &[row(1, id, before.clone())]);
    let delta = only_delta(&deltas);
    assert_eq!(delta.op, Op::Update);
    assert_eq!(
        apply_change(Some(&before), Op::Update, &delta.change),
        Ok(Some(after))
    );
}

// ---------------------------------------------------------------- property tests

const SECTORS: [&str; 2] = ["Technology", "Energy"];
const ISSUERS: [&str; 2] = ["Vanguard", "iShares"];
const DAYS: [&str; 2] = ["2026-02-27", "2026-03-02"];
const ALPHABET: [&str; 8] = [
    "AAPL", "AMD", "BRK.B", "GOOGL", "MSFT", "NVDA", "SPY", "TSLA",
];

/// Unique tickers from the alphabet, any subset in any order.
fn ticker_list() -> impl Strategy<Value = Vec<&'static str>> {
    proptest::sample::subsequence(ALPHABET.to_vec(), 0..=ALPHABET.len()).prop_shuffle()
}

fn plain_array() -> impl Strategy<Value = Value> {
    ticker_list().prop_map(|tickers| json!(tickers))
}

fn slot(ticker: &str) -> usize {
    ALPHABET.iter().position(|a| *a == ticker).unwrap()
}

/// Ranked stock records; figures per ticker drawn from small sets so values often repeat.
fn stock_records() -> impl Strategy<Value = Vec<Value>> {
    (
        ticker_list(),
        proptest::collection::vec((0i64..3, 0usize..2), ALPHABET.len()),
        proptest::bool::weighted(0.15),
    )
        .prop_map(|(tickers, figures, with_industry)| {
            tickers
                .iter()
                .enumerate()
                .map(|(i, t)| {
                    let (cap, sector) = figures[slot(t)];
                    let mut r = json!({
                        "ticker": t,
                        "name": format!("{t} Inc"),
                        "rank": i + 1,
                        "sector": SECTORS[sector],
                        "market_cap": (cap + 1) * B,
                    });
                    if with_industry {
                        r["industry"] = json!("Software");
                    }
                    r
                })
                .collect()
        })
}

fn etf_records() -> impl Strategy<Value = Vec<Value>> {
    (
        ticker_list(),
        proptest::collection::vec(0usize..2, ALPHABET.len()),
    )
        .prop_map(|(tickers, issuers)| {
            tickers
                .iter()
                .map(|t| {
                    json!({
                        "symbol": t,
                        "name": format!("{t} Fund"),
                        "etf_type": "Equity",
                        "issuer": ISSUERS[issuers[slot(t)]],
                    })
                })
                .collect()
        })
}

fn stock_value() -> impl Strategy<Value = Value> {
    (stock_records(), proptest::option::of(0usize..2)).prop_map(|(records, sector)| {
        let mut value = json!({"count": records.len(), "stocks": records});
        if let Some(s) = sector {
            value["sector"] = json!(SECTORS[s]);
        }
        value
    })
}

fn etf_value() -> impl Strategy<Value = Value> {
    etf_records().prop_map(|records| json!({"count": records.len(), "etfs": records}))
}

fn combo_value() -> impl Strategy<Value = Value> {
    (stock_records(), etf_records())
        .prop_map(|(s, e)| json!({"count": s.len() + e.len(), "stocks": s, "etfs": e}))
}

fn stats_value() -> impl Strategy<Value = Value> {
    (0i64..4, 0i64..3, 0usize..2).prop_map(|(stocks, etfs, day)| {
        json!({"overview": {
            "total_stocks": stocks,
            "total_etfs": etfs,
            "market_cap_distribution": {"mega_cap": stocks / 2, "large_cap": stocks - stocks / 2},
            "last_updated": DAYS[day],
        }})
    })
}

fn any_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        plain_array(),
        stock_value(),
        etf_value(),
        combo_value(),
        stats_value()
    ]
}

fn any_family() -> impl Strategy<Value = Family> {
    proptest::sample::select(Family::ALL.to_vec())
}

/// A market holding the alphabet's tickers, so reason inference walks its real paths.
fn alphabet_market() -> Securities {
    securities(
        ALPHABET
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let mut row = stock(t, (i as i64 + 1) * 7 * B);
                if i % 3 == 0 {
                    row.list_date = Some(as_of() - Duration::days(3));
                }
                if i % 4 == 1 {
                    row.active = Some(false);
                }
                row
            })
            .collect(),
    )
}

fn plan_in_market(catalog: &Catalog, current: &[CurrentEntry]) -> Vec<Delta> {
    let market = alphabet_market();
    let config = CatalogConfig::default();
    diff(
        catalog,
        current,
        &context(&market, &config, current),
        &LiveRowFacts::default(),
    )
}

const ENTRY: &str = "stock_universe/market_leaders/top_50";

fn check_update_law(family: Family, before: &Value, after: &Value) -> Result<(), TestCaseError> {
    let catalog = want(vec![(family, ENTRY, after.clone())]);
    let current = vec![row(7, ENTRY, before.clone())];
    let deltas = plan_in_market(&catalog, &current);
    if before == after {
        prop_assert!(deltas.is_empty());
        return Ok(());
    }
    prop_assert_eq!(deltas.len(), 1);
    let delta = &deltas[0];
    prop_assert_eq!(delta.op, Op::Update);
    prop_assert_eq!(delta.row_id, Some(7));
    let applied = apply_change(Some(before), Op::Update, &delta.change);
    prop_assert_eq!(&applied, &Ok(Some(after.clone())));
    prop_assert_eq!(applied.unwrap().map(|v| hash_value(&v)), delta.hash_after);
    let logged = stored(&delta.change);
    prop_assert_eq!(&logged, &delta.change);
    prop_assert_eq!(
        apply_change(Some(before), Op::Update, &logged),
        Ok(Some(after.clone()))
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn replaying_an_update_of_plain_ticker_arrays_gives_the_new_value(
        family in any_family(), before in plain_array(), after in plain_array()
    ) {
        check_update_law(family, &before, &after)?;
    }

    #[test]
    fn replaying_an_update_of_stock_records_gives_the_new_value(
        family in any_family(), before in stock_value(), after in stock_value()
    ) {
        check_update_law(family, &before, &after)?;
    }

    #[test]
    fn replaying_an_update_of_etf_records_gives_the_new_value(
        family in any_family(), before in etf_value(), after in etf_value()
    ) {
        check_update_law(family, &before, &after)?;
    }

    #[test]
    fn replaying_an_update_of_combo_values_gives_the_new_value(
        family in any_family(), before in combo_value(), after in combo_value()
    ) {
        check_update_law(family, &before, &after)?;
    }

    #[test]
    fn replaying_an_update_of_stats_values_gives_the_new_value(
        family in any_family(), before in stats_value(), after in stats_value()
    ) {
        check_update_law(family, &before, &after)?;
    }

    #[test]
    fn replaying_an_update_between_any_two_shapes_gives_the_new_value(
        family in any_family(), before in any_value(), after in any_value()
    ) {
        check_update_law(family, &before, &after)?;
    }

    #[test]
    fn replaying_a_create_gives_the_value(family in any_family(), value in any_value()) {
        let catalog = want(vec![(family, ENTRY, value.clone())]);
        let deltas = plan_in_market(&catalog, &[]);
        prop_assert_eq!(deltas.len(), 1);
        let delta = &deltas[0];
        prop_assert_eq!(delta.op, Op::Create);
        prop_assert_eq!(apply_change(None, Op::Create, &delta.change), Ok(Some(value.clone())));
        let logged = stored(&delta.change);
        prop_assert_eq!(&logged, &delta.change);
        prop_assert_eq!(apply_change(None, Op::Create, &logged), Ok(Some(value.clone())));
    }

    #[test]
    fn replaying_a_delete_removes_the_entry(family in any_family(), value in any_value()) {
        let k = key(ENTRY);
        let catalog = own(Catalog::default(), &k.entry_type, &k.name, family);
        let current = vec![row(3, ENTRY, value.clone())];
        let deltas = plan_in_market(&catalog, &current);
        prop_assert_eq!(deltas.len(), 1);
        let delta = &deltas[0];
        prop_assert_eq!(delta.op, Op::Delete);
        prop_assert_eq!(delta.row_id, Some(3));
        prop_assert_eq!(apply_change(Some(&value), Op::Delete, &delta.change), Ok(None));
        let logged = stored(&delta.change);
        prop_assert_eq!(&logged, &delta.change);
        prop_assert_eq!(apply_change(Some(&value), Op::Delete, &logged), Ok(None));
    }
}
