//! `run`: idempotence, incremental equals full, the events account for every change, unowned
//! rows untouched, bad rows counted.

use crate::helpers::{live_hashes, on_both_stores, run_request, small_market, Backend, TestDb};
use proptest::prelude::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;
use tickstock_cache_sync::devtools::market::{FixtureParams, SyntheticMarket};
use tickstock_cache_sync::domain::diff::{EntryChange, Op};
use tickstock_cache_sync::domain::fingerprint::hash_value;
use tickstock_cache_sync::domain::log_form::RunValues;
use tickstock_cache_sync::domain::replay::apply_change;
use tickstock_cache_sync::job::JobConfig;

/// Every owned row's value by `type/name/key`.
async fn live_values(db: &TestDb) -> BTreeMap<String, Value> {
    db.sql(
        "select type || '/' || name || '/' || key, value from cache_entries
         where environment = 'DEFAULT' and type not in ('app_settings', 'cache_config')",
    )
    .fetch_all::<(String, Value)>()
    .await
    .into_iter()
    .collect()
}

/// Applies the events of `run_id` to `state`, as replay would.
async fn apply_run_events(db: &TestDb, run_id: i64, state: &mut BTreeMap<String, Value>) {
    let events: Vec<(String, String, Value, Option<String>)> = db
        .sql(
            "select entry_type || '/' || entry_name || '/' || entry_key, op, change, hash_after
             from cache_sync_event where run_id = $1 order by seq",
        )
        .bind(run_id)
        .fetch_all()
        .await;
    // The run's member values, which its `revalued` changes take (as the log reader attaches).
    let run_values: Option<Arc<RunValues>> = db
        .sql("select member_values from cache_sync_run_values where run_id = $1")
        .bind(run_id)
        .fetch_all::<(Value,)>()
        .await
        .pop()
        .map(|(values,)| Arc::new(serde_json::from_value(values).unwrap()));
    for (key, op, change, hash_after) in events {
        let op = match op.as_str() {
            "created" => Op::Create,
            "updated" => Op::Update,
            _ => Op::Delete,
        };
        let mut change: EntryChange = serde_json::from_value(change).unwrap();
        if change.revalued {
            change.run_values = run_values.clone();
        }
        let next =
            apply_change(state.get(&key), op, &change).unwrap_or_else(|e| panic!("{key}: {e}"));
        match next {
            Some(value) => {
                if !change.duplicate_row {
                    assert_eq!(
                        Some(hash_value(&value).to_hex()),
                        hash_after,
                        "{key}: replayed hash matches the log"
                    );
                }
                state.insert(key, value);
            }
            None => {
                state.remove(&key);
            }
        }
    }
}

async fn a_second_run_on_unchanged_inputs_writes_nothing_but_a_run_record(backend: Backend) {
    let db = TestDb::on(backend).await;
    db.load(&small_market(11, 1), 1).await;
    let first = db.run().await;
    assert!(first.created > 0);
    db.count_writes().await;
    let events = db.count("cache_sync_event").await;
    let second = db.run().await;
    assert_eq!((second.created, second.updated, second.deleted), (0, 0, 0));
    assert_eq!(second.unchanged, first.created);
    assert_eq!(
        db.writes().await,
        0,
        "no insert, update or delete reached cache_entries"
    );
    assert_eq!(
        db.count("cache_sync_event").await,
        events,
        "no event appended"
    );
    assert_eq!(db.count("cache_sync_run").await, 2, "only a run record");
}

on_both_stores!(a_second_run_on_unchanged_inputs_writes_nothing_but_a_run_record);

async fn a_nightly_run_writes_only_the_entries_whose_content_changed(backend: Backend) {
    let db = TestDb::on(backend).await;
    let market = small_market(12, 3);
    db.load(&market, 1).await;
    db.run().await;
    db.load_next(&market, 2).await;
    let before = live_values(&db).await;
    db.count_writes().await;
    let nightly = db.run().await;
    let after = live_values(&db).await;
    let changed = after
        .iter()
        .filter(|(k, v)| before.get(*k) != Some(*v))
        .count()
        + before.keys().filter(|k| !after.contains_key(*k)).count();
    assert_eq!(nightly.created + nightly.updated + nightly.deleted, changed);
    assert_eq!(
        db.writes().await as usize,
        changed,
        "one row write per changed entry"
    );
    assert!(
        nightly.unchanged > 0,
        "entries without content change were left alone"
    );
}

on_both_stores!(a_nightly_run_writes_only_the_entries_whose_content_changed);

/// Day-by-day runs from day 1 end where a fresh build on the last day ends, and each run's
/// events turn the state before it into the state after it.
async fn incremental_equals_full(backend: Backend, seed: u64, days: usize, start_day: usize) {
    let market = SyntheticMarket::generate(&FixtureParams {
        stocks: 250,
        etfs: 60,
        days,
        seed,
        nasty: seed.is_multiple_of(2),
        renames: 0,
    });
    let incremental = TestDb::on(backend).await;
    incremental.load(&market, start_day).await;
    let mut state = BTreeMap::new();
    for day in start_day..=days {
        if day > start_day {
            incremental.load_next(&market, day).await;
        }
        let report = incremental.run_forced().await;
        apply_run_events(&incremental, report.run_id.unwrap().0, &mut state).await;
        assert_eq!(
            state,
            live_values(&incremental).await,
            "events of day {day} account for the change"
        );
    }
    let full = TestDb::on(backend).await;
    full.load(&market, days).await;
    full.run_forced().await;
    assert_eq!(live_hashes(&incremental).await, live_hashes(&full).await);
}

fn block_on(test: impl std::future::Future<Output = ()>) {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(test);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4, failure_persistence: None, ..ProptestConfig::default() })]
    #[test]
    fn on_postgres_running_day_by_day_ends_where_a_fresh_build_on_the_last_day_ends(
        seed in 0u64..1_000_000,
        days in 2usize..6,
        start in 1usize..3,
    ) {
        block_on(incremental_equals_full(Backend::Postgres, seed, days, start.min(days)));
    }

    #[test]
    fn on_sqlite_running_day_by_day_ends_where_a_fresh_build_on_the_last_day_ends(
        seed in 0u64..1_000_000,
        days in 2usize..6,
        start in 1usize..3,
    ) {
        block_on(incremental_equals_full(Backend::Sqlite, seed, days, start.min(days)));
    }
}

const UNOWNED: &str = "insert into cache_entries (type, name, key, value, environment) values
    ('app_settings', 'ui', 'theme', '{\"dark\": true}', 'DEFAULT'),
    ('cache_config', 'industry_groups', 'tech', '[\"Software\"]', 'DEFAULT'),
    ('themes', 'Custom', 'list', '[\"AAPL\"]', 'DEFAULT'),
    ('stock_universe', 'watchlists', 'mine', '[\"AAPL\"]', 'DEFAULT'),
    ('stock_universe', 'market_cap', 'large_cap', '[\"ZZZ\"]', 'PRODUCTION')";

const UNOWNED_FILTER: &str = "type in ('app_settings', 'cache_config') or name in ('Custom', 'watchlists') or environment <> 'DEFAULT'";

async fn unowned_rows_are_identical_after_every_kind_of_run(backend: Backend) {
    let db = TestDb::on(backend).await;
    let market = small_market(13, 2);
    db.load(&market, 1).await;
    db.exec(UNOWNED).await;
    let before = db.raw_rows(UNOWNED_FILTER).await;

    db.run().await; // full build
    assert_eq!(db.raw_rows(UNOWNED_FILTER).await, before);
    db.load_next(&market, 2).await;
    db.run().await; // nightly
    assert_eq!(db.raw_rows(UNOWNED_FILTER).await, before);
    db.run().await; // no-op
    assert_eq!(db.raw_rows(UNOWNED_FILTER).await, before);

    // A forced mass change: thresholds that empty most bands and a category that matches nothing.
    db.exec(
        "insert into cache_entries (type, name, key, value, environment) values
         ('cache_config', 'market_cap_thresholds', 'mega_cap', '900000000000000', 'DEFAULT'),
         ('cache_config', 'etf_categories', 'etf_growth', '{\"name\": \"Growth ETFs\", \"include\": [\"zzzz\"]}', 'DEFAULT')",
    )
    .await;
    let refused = db.try_run(&JobConfig::default(), run_request(false)).await;
    assert!(refused.is_err(), "the mass change is refused without force");
    let with_config =
        format!("({UNOWNED_FILTER}) and not (type = 'cache_config' and name <> 'industry_groups')");
    let before_forced = db.raw_rows(&with_config).await;
    assert_eq!(before_forced, before);
    db.run_forced().await;
    assert_eq!(
        db.raw_rows(&with_config).await,
        before,
        "unowned rows untouched by a forced mass change"
    );
}

on_both_stores!(unowned_rows_are_identical_after_every_kind_of_run);

async fn bad_rows_never_fail_a_run_and_are_counted(backend: Backend) {
    let db = TestDb::on(backend).await;
    let market = SyntheticMarket::generate(&FixtureParams {
        stocks: 400,
        etfs: 60,
        days: 2,
        seed: 5,
        nasty: true,
        renames: 0,
    });
    db.load(&market, 2).await;
    let report = db.run().await;
    let excluded = &report.input.excluded;
    assert!(
        excluded.get("duplicate_ticker").copied().unwrap_or(0) > 0,
        "{excluded:?}"
    );
    assert!(
        [
            "zero_market_cap",
            "negative_market_cap",
            "absurd_market_cap"
        ]
        .iter()
        .any(|k| excluded.get(*k).copied().unwrap_or(0) > 0),
        "{excluded:?}"
    );
    assert!(report.input.defaulted.get("sector").copied().unwrap_or(0) > 0);
    // Every written ticker is normalised: no lower case, no spaces.
    let values: Vec<String> = db
        .sql("select cast(value as text) from cache_entries")
        .scalars()
        .await;
    for v in values {
        let value: Value = serde_json::from_str(&v).unwrap();
        for (_, members) in tickstock_cache_sync::domain::members::member_lists(&value) {
            for m in members {
                assert_eq!(m.ticker, m.ticker.trim().to_ascii_uppercase());
            }
        }
    }
}

on_both_stores!(bad_rows_never_fail_a_run_and_are_counted);
