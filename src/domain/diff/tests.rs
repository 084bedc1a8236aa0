//! Diff and replay laws: hand cases for creates, updates, deletes, duplicates, ownership,
//! member-level detail and reasons; property tests for
//! `apply_change(before, op, diff(before, after).change) == after`, also after the change went
//! through JSON (what the audit log stores).

use super::*;
use crate::domain::catalog::{compute_catalog, Catalog, DesiredEntry};
use crate::domain::config::CatalogConfig;
use crate::domain::fingerprint::hash_value;
use crate::domain::market::{LatestClose, MarketSnapshot, SymbolRow};
use crate::domain::reasons::{ReasonCode, ReasonContext};
use crate::domain::replay::apply_change;
use crate::domain::securities::{normalize, Securities};
use crate::domain::types::{EntryKey, Family, FamilySelection, Scope};
use chrono::{Duration, NaiveDate};
use proptest::prelude::*;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};

const B: i64 = 1_000_000_000;

fn as_of() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 3, 2).unwrap()
}

fn key(id: &str) -> EntryKey {
    EntryKey::parse(id).unwrap()
}

/// A catalog wanting exactly these entries (and owning their scopes).
fn want(entries: Vec<(Family, &str, Value)>) -> Catalog {
    let mut catalog = Catalog::default();
    for (family, id, value) in entries {
        let k = key(id);
        catalog.scopes.insert(k.scope(), family);
        catalog.entries.insert(
            k,
            DesiredEntry {
                family,
                hash: hash_value(&value),
                value,
            },
        );
    }
    catalog
}

fn own(mut catalog: Catalog, entry_type: &str, name: &str, family: Family) -> Catalog {
    catalog.scopes.insert(Scope::new(entry_type, name), family);
    catalog
}

fn row(id: i64, entry: &str, value: Value) -> CurrentEntry {
    CurrentEntry {
        id,
        key: key(entry),
        value,
    }
}

/// An active common stock worth exactly `cap`.
fn stock(ticker: &str, cap: i64) -> SymbolRow {
    SymbolRow {
        symbol: ticker.to_owned(),
        name: Some(format!("{ticker} Inc")),
        kind: Some("CS".to_owned()),
        active: Some(true),
        weighted_shares_outstanding: Some(cap),
        sector: Some("Technology".to_owned()),
        industry: Some("Software".to_owned()),
        ..SymbolRow::default()
    }
}

fn securities(rows: Vec<SymbolRow>) -> Securities {
    let snapshot = MarketSnapshot {
        as_of: as_of(),
        closes: rows
            .iter()
            .map(|_| {
                Some(LatestClose {
                    date: as_of(),
                    close: 1.0,
                })
            })
            .collect(),
        symbols: rows,
        ..MarketSnapshot::default()
    };
    normalize(&snapshot, &CatalogConfig::default())
}

fn context<'a>(
    securities: &'a Securities,
    config: &'a CatalogConfig,
    current: &[CurrentEntry],
) -> ReasonContext<'a> {
    ReasonContext {
        securities,
        config,
        previous: previous_records(current),
        config_changed: false,
        run_override: None,
    }
}

/// Diffs with an empty market for reasons.
fn plan(catalog: &Catalog, current: &[CurrentEntry]) -> Vec<Delta> {
    let market = securities(Vec::new());
    let config = CatalogConfig::default();
    diff(
        catalog,
        current,
        &context(&market, &config, current),
        &LiveRowFacts::default(),
    )
}

fn record(ticker: &str, rank: usize, cap: i64) -> Value {
    json!({
        "ticker": ticker,
        "name": format!("{ticker} Inc"),
        "rank": rank,
        "sector": "Technology",
        "industry": "Software",
        "exchange": "XNAS",
        "market": "stocks",
        "market_cap": cap,
    })
}

fn stocks(records: Vec<Value>) -> Value {
    json!({"count": records.len(), "stocks": records})
}

/// Records of `(ticker, cap)` ranked in the given order.
fn ranked(members: &[(&str, i64)]) -> Value {
    stocks(
        members
            .iter()
            .enumerate()
            .map(|(i, (t, cap))| record(t, i + 1, *cap))
            .collect(),
    )
}

/// The change survives the audit log: JSON and back is the same change.
fn stored(change: &EntryChange) -> EntryChange {
    let text = serde_json::to_string(change).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Replaying `delta` onto `before` gives its value after (directly and through JSON).
fn assert_replays(before: Option<&Value>, delta: &Delta) {
    let expected = if delta.change.duplicate_row {
        before.cloned()
    } else {
        delta.value_after.clone()
    };
    assert_eq!(
        apply_change(before, delta.op, &delta.change),
        Ok(expected.clone()),
        "{}",
        delta.key
    );
    assert_eq!(
        apply_change(before, delta.op, &stored(&delta.change)),
        Ok(expected),
        "{} via JSON",
        delta.key
    );
}

fn only_delta(deltas: &[Delta]) -> &Delta {
    assert_eq!(deltas.len(), 1, "{deltas:#?}");
    &deltas[0]
}

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
    let current: Vec<CurrentEntry> = catalog
        .entries
        .iter()
        .enumerate()
        .map(|(i, (k, e))| CurrentEntry {
            id: i as i64 + 1,
            key: k.clone(),
            value: e.value.clone(),
        })
        .collect();
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
    assert_eq!(delta.value_after.as_ref(), Some(&value));
    assert_eq!(delta.change.value.as_ref(), Some(&value));
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
    assert_eq!(delta.value_after.as_ref(), Some(&after));
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
    assert_eq!(change.value.as_ref(), Some(&after));
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
    assert_eq!(change.value.as_ref(), Some(&after));
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

// ---------------------------------------------------------------- reasons

/// Diffs the market-cap family of `after` against rows holding the catalog of `before`.
fn market_cap_run(before: Vec<SymbolRow>, after: Vec<SymbolRow>) -> Vec<Delta> {
    let config = CatalogConfig::default();
    let only = FamilySelection::only(&[Family::MarketCap]);
    let old = compute_catalog(&securities(before), &config, &only);
    let current: Vec<CurrentEntry> = old
        .entries
        .iter()
        .enumerate()
        .map(|(i, (k, e))| CurrentEntry {
            id: i as i64 + 1,
            key: k.clone(),
            value: e.value.clone(),
        })
        .collect();
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

// ---------------------------------------------------------------- whole catalogs

const MARKET_TICKERS: [&str; 14] = [
    "AAPL", "AMD", "GOOGL", "MSFT", "NVDA", "CRM", "COIN", "XOM", "CVX", "SPY", "QQQ", "BND",
    "VUG", "MTUM",
];
const ETF_NAMES: [(&str, &str); 5] = [
    ("SPY", "SPDR S&P 500 ETF Trust"),
    ("QQQ", "Invesco QQQ Trust"),
    ("BND", "Vanguard Total Bond Market ETF"),
    ("VUG", "Vanguard Growth ETF"),
    ("MTUM", "iShares MSCI USA Momentum Factor ETF"),
];
const CAPS: [i64; 6] = [20_000_000, 80_000_000, 700_000_000, 5 * B, 40 * B, 300 * B];

/// A random market over a fixed set of tickers: caps across every band, some inactive, a few
/// sectors and industries, listing dates around the IPO window.
fn random_market() -> impl Strategy<Value = Securities> {
    proptest::collection::vec(
        (
            0usize..CAPS.len(),
            proptest::bool::weighted(0.85),
            0usize..3,
            0usize..2,
            0i64..60,
        ),
        MARKET_TICKERS.len(),
    )
    .prop_map(|specs| {
        let rows = MARKET_TICKERS
            .iter()
            .zip(specs)
            .map(|(ticker, (cap, active, sector, industry, listed))| {
                let mut row = stock(ticker, CAPS[cap]);
                row.active = Some(active);
                row.sector = Some(["Technology", "Energy", "Oil & Gas"][sector].to_owned());
                row.industry = Some(["Software", "Drilling"][industry].to_owned());
                row.list_date = Some(as_of() - Duration::days(listed));
                if let Some((_, name)) = ETF_NAMES.iter().find(|(t, _)| t == ticker) {
                    row.kind = Some("ETF".to_owned());
                    row.name = Some((*name).to_owned());
                }
                row
            })
            .collect();
        securities(rows)
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn replaying_every_delta_between_two_catalogs_rebuilds_the_new_catalog(
        old_market in random_market(), new_market in random_market()
    ) {
        let config = CatalogConfig::default();
        let old = compute_catalog(&old_market, &config, &FamilySelection::all());
        let new = compute_catalog(&new_market, &config, &FamilySelection::all());
        let current: Vec<CurrentEntry> = old
            .entries
            .iter()
            .enumerate()
            .map(|(i, (k, e))| CurrentEntry { id: i as i64 + 1, key: k.clone(), value: e.value.clone() })
            .collect();
        let deltas = diff(&new, &current, &context(&new_market, &config, &current), &LiveRowFacts::default());

        let mut state: BTreeMap<EntryKey, Value> = current.iter().map(|c| (c.key.clone(), c.value.clone())).collect();
        for delta in &deltas {
            prop_assert!(new.owner_of(&delta.key).is_some(), "{} is not owned", delta.key);
            let logged = stored(&delta.change);
            prop_assert_eq!(&logged, &delta.change);
            let applied = apply_change(state.get(&delta.key), delta.op, &logged);
            prop_assert!(applied.is_ok(), "{}: {:?}", delta.key, applied);
            match applied.unwrap() {
                Some(value) => {
                    prop_assert_eq!(Some(hash_value(&value)), delta.hash_after);
                    state.insert(delta.key.clone(), value);
                }
                None => {
                    state.remove(&delta.key);
                }
            }
        }
        let wanted: BTreeMap<EntryKey, Value> = new.entries.iter().map(|(k, e)| (k.clone(), e.value.clone())).collect();
        prop_assert_eq!(&state, &wanted);

        // Once applied, a second diff finds nothing to do.
        let settled: Vec<CurrentEntry> = state
            .iter()
            .enumerate()
            .map(|(i, (k, v))| CurrentEntry { id: i as i64 + 1, key: k.clone(), value: v.clone() })
            .collect();
        let again = diff(&new, &settled, &context(&new_market, &config, &settled), &LiveRowFacts::default());
        prop_assert!(again.is_empty());
    }
}
