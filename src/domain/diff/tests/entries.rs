//! Creates, updates, deletes, duplicates and ownership, and member-level detail.

use super::*;

// ---------------------------------------------------------------- entries

#[test]
fn identical_catalog_and_current_rows_give_no_deltas() {
    let market = securities(vec![
        stock("AAPL", 3_000 * B),
        stock("MSFT", 3_100 * B),
        stock("SMOL", 500_000_000),
    ]);
    let config = CatalogConfig::default();
    let catalog = compute_catalog(&market, &config, &FamilySelection::all());
    let current = rows_holding(&catalog);
    let deltas = diff(
        &catalog,
        &current,
        &context(&market, &config, &current),
        &LiveRowFacts::default(),
    );
    assert!(deltas.is_empty(), "{deltas:#?}");
}

#[test]
fn a_row_read_back_with_reordered_keys_is_not_a_change() {
    let id = "stock_universe/market_cap/mega_cap";
    let catalog = want(vec![(
        Family::MarketCap,
        id,
        json!({"count": 1, "stocks": [{"ticker": "A", "rank": 1}]}),
    )]);
    let jsonb: Value =
        serde_json::from_str(r#"{"stocks": [{"rank": 1, "ticker": "A"}], "count": 1}"#).unwrap();
    assert!(plan(&catalog, &[row(1, id, jsonb)]).is_empty());
}

#[test]
fn an_absent_entry_is_created_with_its_whole_value() {
    let id = "stock_universe/market_cap/large_cap";
    let value = ranked(&[("MSFT", 50 * B), ("AAPL", 40 * B)]);
    let catalog = want(vec![(Family::MarketCap, id, value.clone())]);
    let deltas = plan(&catalog, &[]);
    let delta = only_delta(&deltas);
    assert_eq!(delta.op, Op::Create);
    assert_eq!(delta.key, key(id));
    assert_eq!(delta.family, Family::MarketCap);
    assert_eq!(delta.row_id, None);
    assert_eq!(delta.hash_before, None);
    assert_eq!(delta.hash_after, Some(hash_value(&value)));
    assert_eq!(delta.value_after.as_deref(), Some(&value));
    assert_eq!(delta.change.value.as_deref(), Some(&value));
    assert_eq!(delta.change.added_tickers(), vec!["AAPL", "MSFT"]);
    assert!(delta.change.removed_tickers().is_empty());
    assert_replays(None, delta);
}

#[test]
fn an_unwanted_entry_in_an_owned_scope_is_deleted() {
    let catalog = want(vec![(
        Family::SectorLeaders,
        "stock_universe/sector_leaders/top_10_technology",
        ranked(&[("MSFT", 50 * B)]),
    )]);
    let stale = ranked(&[("XOM", 400 * B), ("CVX", 300 * B)]);
    let current = vec![
        row(
            4,
            "stock_universe/sector_leaders/top_10_technology",
            ranked(&[("MSFT", 50 * B)]),
        ),
        row(
            5,
            "stock_universe/sector_leaders/top_10_energy",
            stale.clone(),
        ),
    ];
    let deltas = plan(&catalog, &current);
    let delta = only_delta(&deltas);
    assert_eq!(delta.op, Op::Delete);
    assert_eq!(
        delta.key,
        key("stock_universe/sector_leaders/top_10_energy")
    );
    assert_eq!(delta.family, Family::SectorLeaders);
    assert_eq!(delta.row_id, Some(5));
    assert_eq!(delta.hash_before, Some(hash_value(&stale)));
    assert_eq!(delta.hash_after, None);
    assert_eq!(delta.value_after, None);
    assert!(!delta.change.duplicate_row);
    assert_eq!(delta.change.removed_tickers(), vec!["CVX", "XOM"]);
    assert_replays(Some(&stale), delta);
}

#[test]
fn an_owned_scope_with_no_wanted_entries_deletes_all_its_rows() {
    let catalog = own(
        Catalog::default(),
        "stock_universe",
        "industry",
        Family::Industry,
    );
    let current = vec![
        row(
            1,
            "stock_universe/industry/software",
            ranked(&[("MSFT", B)]),
        ),
        row(2, "stock_universe/industry/biotech", ranked(&[("MRNA", B)])),
    ];
    let deltas = plan(&catalog, &current);
    assert_eq!(deltas.len(), 2);
    assert!(deltas
        .iter()
        .all(|d| d.op == Op::Delete && d.family == Family::Industry));
}

#[test]
fn rows_outside_every_owned_scope_never_appear_in_deltas() {
    let catalog = want(vec![
        (Family::Themes, "themes/Ai/list", json!(["MSFT", "NVDA"])),
        (
            Family::MarketCap,
            "stock_universe/market_cap/large_cap",
            ranked(&[("MSFT", 50 * B)]),
        ),
    ]);
    let outside = [
        "app_settings/ui/theme",
        "cache_config/market_cap_thresholds/micro_cap",
        "cache_config/etf_categories/etf_sectors",
        "themes/Custom/list",
        "stock_universe/custom/my_list",
        "etf_universe/Sector ETFs/etf_sectors",
    ];
    let mut current: Vec<CurrentEntry> = outside
        .iter()
        .enumerate()
        .map(|(i, id)| row(100 + i as i64, id, json!(["SPY", {"anything": true}])))
        .collect();
    // The same outside identity twice is not the job's duplicate to clean up either.
    current.push(row(200, "themes/Custom/list", json!(["QQQ"])));
    let deltas = plan(&catalog, &current);
    assert_eq!(deltas.len(), 2);
    assert!(deltas.iter().all(|d| d.op == Op::Create));
    for delta in &deltas {
        assert!(
            !outside.contains(&delta.key.to_string().as_str()),
            "{}",
            delta.key
        );
    }
}

#[test]
fn duplicate_rows_keep_the_lowest_id_and_delete_the_others_as_duplicates() {
    let id = "stock_universe/market_cap/large_cap";
    let desired = ranked(&[("MSFT", 50 * B), ("AAPL", 40 * B)]);
    let catalog = want(vec![(Family::MarketCap, id, desired.clone())]);
    let at_3 = ranked(&[("MSFT", 49 * B)]);
    let at_7 = ranked(&[("IBM", 11 * B)]);
    let current = vec![
        row(7, id, at_7.clone()),
        row(12, id, desired.clone()),
        row(3, id, at_3.clone()),
    ];
    let deltas = plan(&catalog, &current);
    assert_eq!(deltas.len(), 3, "{deltas:#?}");

    let update = deltas.iter().find(|d| d.op == Op::Update).unwrap();
    assert_eq!(update.row_id, Some(3));
    assert!(!update.change.duplicate_row);
    assert_replays(Some(&at_3), update);

    let mut deleted: Vec<i64> = deltas
        .iter()
        .filter(|d| d.op == Op::Delete)
        .map(|d| {
            assert!(d.change.duplicate_row, "row {:?}", d.row_id);
            assert_eq!(d.key, key(id));
            d.row_id.unwrap()
        })
        .collect();
    deleted.sort_unstable();
    assert_eq!(deleted, vec![7, 12]);
    // A duplicate's delete leaves the entry as it was.
    let duplicate = deltas.iter().find(|d| d.row_id == Some(7)).unwrap();
    assert_eq!(
        apply_change(Some(&desired), Op::Delete, &duplicate.change),
        Ok(Some(desired.clone()))
    );
    assert_eq!(
        apply_change(Some(&desired), Op::Delete, &stored(&duplicate.change)),
        Ok(Some(desired.clone()))
    );
}

#[test]
fn duplicates_of_an_up_to_date_entry_are_deleted_without_an_update() {
    let id = "themes/Ai/list";
    let catalog = want(vec![(Family::Themes, id, json!(["MSFT", "NVDA"]))]);
    let current = vec![
        row(2, id, json!(["MSFT", "NVDA"])),
        row(9, id, json!(["AMD"])),
    ];
    let deltas = plan(&catalog, &current);
    let delta = only_delta(&deltas);
    assert_eq!(
        (delta.op, delta.row_id, delta.change.duplicate_row),
        (Op::Delete, Some(9), true)
    );
}

#[test]
fn duplicates_of_an_unwanted_entry_are_all_deleted_and_only_the_extra_ones_flagged() {
    let catalog = own(
        Catalog::default(),
        "stock_universe",
        "sector_leaders",
        Family::SectorLeaders,
    );
    let id = "stock_universe/sector_leaders/top_10_energy";
    let deltas = plan(
        &catalog,
        &[row(21, id, json!(["XOM"])), row(20, id, json!(["CVX"]))],
    );
    let mut seen: Vec<(Option<i64>, bool)> = deltas
        .iter()
        .map(|d| {
            assert_eq!(d.op, Op::Delete);
            (d.row_id, d.change.duplicate_row)
        })
        .collect();
    seen.sort_unstable();
    assert_eq!(seen, vec![(Some(20), false), (Some(21), true)]);
}

#[test]
fn an_update_keeps_the_row_id_and_records_both_hashes() {
    let id = "stock_universe/market_cap/large_cap";
    let before = ranked(&[("MSFT", 50 * B)]);
    let after = ranked(&[("MSFT", 51 * B)]);
    let catalog = want(vec![(Family::MarketCap, id, after.clone())]);
    let deltas = plan(&catalog, &[row(42, id, before.clone())]);
    let delta = only_delta(&deltas);
    assert_eq!(delta.op, Op::Update);
    assert_eq!(delta.row_id, Some(42));
    assert_eq!(delta.hash_before, Some(hash_value(&before)));
    assert_eq!(delta.hash_after, Some(hash_value(&after)));
    assert_eq!(delta.value_after.as_deref(), Some(&after));
    assert_replays(Some(&before), delta);
}

// ---------------------------------------------------------------- members

#[test]
fn members_added_removed_and_reranked_are_reported() {
    let id = "stock_universe/market_leaders/top_10_stocks";
    let before = ranked(&[("AAA", 30 * B), ("BBB", 20 * B), ("CCC", 10 * B)]);
    let after = ranked(&[("BBB", 40 * B), ("AAA", 30 * B), ("DDD", 15 * B)]);
    let catalog = want(vec![(Family::MarketLeaders, id, after.clone())]);
    let deltas = plan(&catalog, &[row(1, id, before.clone())]);
    let change = &only_delta(&deltas).change;
    assert_eq!(change.value, None);
    assert_eq!(change.added_tickers(), vec!["DDD"]);
    assert_eq!(change.removed_tickers(), vec!["CCC"]);
    let mut reranked: Vec<(String, Option<(i64, i64)>)> = change
        .reranked()
        .map(|c| (c.ticker.clone(), c.rank_change()))
        .collect();
    reranked.sort();
    assert_eq!(
        reranked,
        vec![
            ("AAA".to_owned(), Some((1, 2))),
            ("BBB".to_owned(), Some((2, 1)))
        ]
    );
    assert_eq!(change.revalued_count(), 0);
    assert!(!change.is_metadata_only());
    let list = &change.lists[0];
    assert_eq!(list.path, ListPath::Stocks);
    assert_eq!(list.len_after, 3);
    assert_eq!(list.added[0].position, 3);
    assert_eq!(
        list.added[0].record.as_ref(),
        Some(&record("DDD", 3, 15 * B))
    );
    assert_eq!(list.removed[0].position, 3);
    assert_replays(Some(&before), only_delta(&deltas));
}

#[test]
fn a_market_cap_only_change_is_metadata_only() {
    let id = "stock_universe/market_cap/large_cap";
    let before = ranked(&[("AAA", 30 * B), ("BBB", 20 * B)]);
    let after = ranked(&[("AAA", 31 * B), ("BBB", 20 * B)]);
    let catalog = want(vec![(Family::MarketCap, id, after.clone())]);
    let deltas = plan(&catalog, &[row(1, id, before.clone())]);
    let change = &only_delta(&deltas).change;
    assert!(change.is_metadata_only());
    assert!(change.added_tickers().is_empty());
    assert!(change.removed_tickers().is_empty());
    assert_eq!(change.reranked().count(), 0);
    assert_eq!(change.revalued_count(), 1);
    assert_eq!(change.scalars, None);
    let changed = &change.lists[0].changed[0];
    assert_eq!(changed.ticker, "AAA");
    assert_eq!(changed.moved_to, None);
    assert_eq!(
        changed.before,
        json!({"market_cap": 30 * B}).as_object().unwrap().clone()
    );
    assert_eq!(
        changed.after,
        json!({"market_cap": 31 * B}).as_object().unwrap().clone()
    );
    assert_eq!(changed.reason, ReasonCode::MarketData);
    assert_replays(Some(&before), only_delta(&deltas));
}

#[test]
fn a_sorted_plain_array_gaining_one_ticker_reports_one_added_member_and_no_reranks() {
    let id = "etf_universe/All ETFs/etf_all";
    let before = json!(["AGG", "QQQ", "VTI"]);
    let after = json!(["AGG", "BND", "QQQ", "VTI"]);
    let catalog = want(vec![(Family::Etfs, id, after.clone())]);
    let deltas = plan(&catalog, &[row(1, id, before.clone())]);
    let change = &only_delta(&deltas).change;
    assert_eq!(change.added_tickers(), vec!["BND"]);
    assert!(change.removed_tickers().is_empty());
    assert_eq!(change.reranked().count(), 0);
    assert_eq!(change.lists.len(), 1);
    assert_eq!(change.lists[0].path, ListPath::Root);
    assert_eq!(change.lists[0].added.len(), 1);
    assert_eq!(change.lists[0].added[0].position, 2);
    assert!(change.lists[0].changed.is_empty());
    assert_eq!(change.value, None);
    assert_replays(Some(&before), only_delta(&deltas));
}

#[test]
fn a_plain_array_losing_one_ticker_reports_one_removed_member_and_no_reranks() {
    let id = "themes/Ai/list";
    let before = json!(["AMD", "GOOGL", "MSFT", "NVDA"]);
    let after = json!(["AMD", "MSFT", "NVDA"]);
    let catalog = want(vec![(Family::Themes, id, after.clone())]);
    let deltas = plan(&catalog, &[row(1, id, before.clone())]);
    let change = &only_delta(&deltas).change;
    assert_eq!(change.removed_tickers(), vec!["GOOGL"]);
    assert!(change.added_tickers().is_empty());
    assert_eq!(change.reranked().count(), 0);
    assert_replays(Some(&before), only_delta(&deltas));
}

#[test]
fn a_reordered_plain_array_reports_moves_not_adds() {
    let id = "etf_universe/complete/top_100";
    let before = json!(["SPY", "QQQ", "VTI", "IWM"]);
    let after = json!(["QQQ", "SPY", "VTI", "IWM"]);
    let catalog = want(vec![(Family::Complete, id, after.clone())]);
    let deltas = plan(&catalog, &[row(1, id, before.clone())]);
    let change = &only_delta(&deltas).change;
    assert!(change.added_tickers().is_empty());
    assert!(change.removed_tickers().is_empty());
    let mut moved: Vec<(String, Option<usize>)> = change
        .reranked()
        .map(|c| (c.ticker.clone(), c.moved_to))
        .collect();
    moved.sort();
    assert_eq!(
        moved,
        vec![("QQQ".to_owned(), Some(1)), ("SPY".to_owned(), Some(2))]
    );
    assert!(!change.is_metadata_only());
    assert_replays(Some(&before), only_delta(&deltas));
}

#[test]
fn a_count_change_is_carried_in_the_scalars() {
    let id = "stock_universe/market_cap/mid_cap";
    let before = ranked(&[("AAA", 5 * B)]);
    let after = ranked(&[("AAA", 5 * B), ("BBB", 4 * B)]);
    let catalog = want(vec![(Family::MarketCap, id, after.clone())]);
    let deltas = plan(&catalog, &[row(1, id, before.clone())]);
    let change = &only_delta(&deltas).change;
    assert_eq!(
        change.scalars,
        Some(json!({"count": 2}).as_object().unwrap().clone())
    );
    assert_replays(Some(&before), only_delta(&deltas));
}

#[test]
fn a_value_whose_shape_changes_is_stored_whole_with_the_net_member_changes() {
    let id = "stock_universe/market_leaders/top_50";
    // A legacy row held a plain array; the catalog writes records.
    let before = json!(["AAA", "BBB", "OLD"]);
    let after = ranked(&[("AAA", 30 * B), ("BBB", 20 * B), ("NEW", 10 * B)]);
    let catalog = want(vec![(Family::MarketLeaders, id, after.clone())]);
    let deltas = plan(&catalog, &[row(1, id, before.clone())]);
    let change = &only_delta(&deltas).change;
    assert_eq!(change.value.as_deref(), Some(&after));
    assert_eq!(change.added_tickers(), vec!["NEW"]);
    assert_eq!(change.removed_tickers(), vec!["OLD"]);
    assert!(!change.is_metadata_only());
    assert_replays(Some(&before), only_delta(&deltas));
}

#[test]
fn a_stats_update_is_stored_whole_and_has_no_members() {
    let id = "stock_stats/universe/summary";
    let before = json!({"overview": {"total_stocks": 10, "last_updated": "2026-02-27"}});
    let after = json!({"overview": {"total_stocks": 11, "last_updated": "2026-03-02"}});
    let catalog = want(vec![(Family::Stats, id, after.clone())]);
    let deltas = plan(&catalog, &[row(1, id, before.clone())]);
    let change = &only_delta(&deltas).change;
    assert_eq!(change.value.as_deref(), Some(&after));
    assert!(change.lists.is_empty());
    assert_replays(Some(&before), only_delta(&deltas));
}

#[test]
fn previous_records_take_each_tickers_first_record_with_a_market_cap() {
    let current = vec![
        row(1, "themes/Ai/list", json!(["NVDA"])),
        row(
            2,
            "stock_universe/market_cap/mega_cap",
            ranked(&[("NVDA", 3_000 * B)]),
        ),
        row(
            3,
            "stock_universe/market_leaders/top_50",
            ranked(&[("NVDA", 2_000 * B)]),
        ),
    ];
    let previous = previous_records(&current);
    assert_eq!(previous.len(), 1);
    assert_eq!(previous["NVDA"]["market_cap"], json!(3_000 * B));
}
