//! Drift repair never trips a guard (issue 12.1, SPEC §7, §10): an owned row edited, deleted
//! or inserted by hand is put back by the next plain `run` (no `--force`), reported as drift,
//! because guard rails judge the job's own change from the audited state (the log), never from
//! the edited row. A genuine mass change is still refused, drift or not.

use crate::helpers::{
    cache_sync_cli, describe, live_hashes, on_both_stores, run_request, small_market, text,
    Backend, TestDb,
};
use serde_json::{json, Value};
use tickstock_cache_sync::domain::guard::Refusal;
use tickstock_cache_sync::job::{JobConfig, RunError};

const MEGA_CAP: &str = "stock_universe/market_cap/mega_cap";

/// A database after one completed run, so the log has history.
async fn after_one_run(backend: Backend, seed: u64) -> TestDb {
    let db = TestDb::on(backend).await;
    db.load(&small_market(seed, 2), 1).await;
    db.run().await;
    db
}

/// The tickers of a logged value's `stocks`.
fn tickers(value: &Value) -> Vec<String> {
    value["stocks"]
        .as_array()
        .expect("a stocks list")
        .iter()
        .map(|m| m["ticker"].as_str().expect("a ticker").to_owned())
        .collect()
}

/// A plain run converges: it completes without force, reports exactly `drift`, and leaves
/// nothing for the next plan to do.
async fn plain_run_converges(
    db: &TestDb,
    drift: &[&str],
) -> tickstock_cache_sync::report::RunReport {
    let report = db
        .try_run(&JobConfig::default(), run_request(false))
        .await
        .unwrap_or_else(|e| panic!("a plain run reconciles drift: {e}"));
    assert!(report.refusals.is_empty(), "{:?}", report.refusals);
    let mut reported = report.drift.clone();
    reported.sort();
    let mut expected: Vec<String> = drift.iter().map(|d| (*d).to_owned()).collect();
    expected.sort();
    assert_eq!(reported, expected, "the repair is reported as drift");
    let plan = db.plan().await;
    assert!(
        plan.drift.is_empty() && !plan.has_changes(),
        "converged: {:?}",
        plan.deltas
    );
    report
}

async fn an_owned_row_edited_to_a_one_member_list_is_put_back_by_a_plain_run(backend: Backend) {
    let db = after_one_run(backend, 121).await;
    let logged = db
        .value("stock_universe", "market_cap", "mega_cap")
        .await
        .expect("mega_cap");
    assert!(tickers(&logged).len() >= 2, "{logged}");
    // What an operator's manual SQL did: a one-member list the catalog would not build.
    let edited = json!({"count": 1, "stocks": [{"ticker": "ZZZZ", "rank": 1}]});
    db.set_value("stock_universe", "market_cap", "mega_cap", &edited)
        .await;
    let plan = db.plan().await;
    assert_eq!(plan.drift, vec![MEGA_CAP.to_owned()]);
    assert!(plan.refusals.is_empty(), "{:?}", plan.refusals);

    let report = plain_run_converges(&db, &[MEGA_CAP]).await;
    assert_eq!((report.created, report.updated, report.deleted), (0, 1, 0));
    assert_eq!(
        db.value("stock_universe", "market_cap", "mega_cap").await,
        Some(logged)
    );
}

on_both_stores!(an_owned_row_edited_to_a_one_member_list_is_put_back_by_a_plain_run);

/// The same through the command line: `cache-sync run` exits 0 and reports the drift.
async fn the_cli_run_reconciles_an_edited_row_with_exit_0(backend: Backend) {
    let db = after_one_run(backend, 122).await;
    db.set_value(
        "stock_universe",
        "market_cap",
        "mega_cap",
        &json!({"count": 1, "stocks": [{"ticker": "ZZZZ"}]}),
    )
    .await;
    let out = cache_sync_cli(&db, &["run", "--format", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let report: Value = serde_json::from_str(&text(&out.stdout)).expect("JSON report");
    assert_eq!(report["drift"], json!([MEGA_CAP]), "{report}");
    let out = cache_sync_cli(&db, &["verify"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
}

on_both_stores!(the_cli_run_reconciles_an_edited_row_with_exit_0);

async fn owned_rows_deleted_by_hand_are_recreated_by_a_plain_run(backend: Backend) {
    let db = after_one_run(backend, 123).await;
    let before = live_hashes(&db).await;
    // A whole owned scope deleted by hand.
    db.exec(
        "delete from cache_entries where type = 'stock_universe' and name = 'market_cap'
           and environment = 'DEFAULT'",
    )
    .await;
    let bands: Vec<String> = before
        .keys()
        .filter(|k| k.starts_with("stock_universe/market_cap/"))
        .cloned()
        .collect();
    assert_eq!(bands.len(), 5, "{bands:?}");

    let drift: Vec<&str> = bands.iter().map(String::as_str).collect();
    let report = plain_run_converges(&db, &drift).await;
    assert_eq!((report.created, report.updated, report.deleted), (5, 0, 0));
    assert_eq!(live_hashes(&db).await, before, "every row as the log says");
}

on_both_stores!(owned_rows_deleted_by_hand_are_recreated_by_a_plain_run);

async fn rows_inserted_by_hand_inside_owned_scopes_are_removed_by_a_plain_run(backend: Backend) {
    let db = after_one_run(backend, 124).await;
    let before = live_hashes(&db).await;
    // More hand-inserted rows than `max_deleted_entries` (5) allows the job to delete at once:
    // removing them restores the audited state, so they are not a mass deletion.
    let mut inserted = Vec::new();
    for i in 1..=7 {
        let key = format!("giga_cap_{i}");
        db.sql(
            "insert into cache_entries (type, name, key, value, environment)
             values ('stock_universe', 'market_cap', $1, $2, 'DEFAULT')",
        )
        .bind(key.as_str())
        .bind(json!({"count": 2, "stocks": [{"ticker": "AAAA"}, {"ticker": "BBBB"}]}))
        .execute()
        .await;
        inserted.push(format!("stock_universe/market_cap/{key}"));
    }
    let drift: Vec<&str> = inserted.iter().map(String::as_str).collect();
    let report = plain_run_converges(&db, &drift).await;
    assert_eq!((report.created, report.updated, report.deleted), (0, 0, 7));
    assert_eq!(live_hashes(&db).await, before);
}

on_both_stores!(rows_inserted_by_hand_inside_owned_scopes_are_removed_by_a_plain_run);

/// The job's own change is still judged: with the row edited by hand *and* most of its members
/// delisted overnight, the run is refused, counting members from the audited value.
async fn a_genuine_mass_change_is_still_refused_when_the_row_was_also_edited(backend: Backend) {
    let db = after_one_run(backend, 125).await;
    let logged = db
        .value("stock_universe", "market_cap", "large_cap")
        .await
        .expect("large_cap");
    let members = tickers(&logged);
    assert!(members.len() >= 4, "{logged}");
    let delisted = &members[..members.len() * 3 / 4];
    for ticker in delisted {
        db.sql("update symbols set active = false where symbol = $1")
            .bind(ticker.as_str())
            .execute()
            .await;
    }
    db.set_value(
        "stock_universe",
        "market_cap",
        "large_cap",
        &json!({"count": 1, "stocks": [{"ticker": members[0]}]}),
    )
    .await;

    let error = db
        .try_run(&JobConfig::default(), run_request(false))
        .await
        .expect_err("a mass removal is refused");
    let RunError::Refused { refusals, .. } = error else {
        panic!("refused by a guard rail, got {error}");
    };
    let large = refusals
        .iter()
        .find_map(|r| match r {
            Refusal::MassRemoval {
                entry,
                members_before,
                removed,
                ..
            } if entry == "stock_universe/market_cap/large_cap" => {
                Some((*members_before, *removed))
            }
            _ => None,
        })
        .unwrap_or_else(|| panic!("large_cap named: {refusals:?}"));
    assert_eq!(
        large.0,
        members.len(),
        "members counted from the log's value"
    );
    assert!(large.1 >= delisted.len(), "{large:?}");
    assert_eq!(
        db.value("stock_universe", "market_cap", "large_cap").await,
        Some(json!({"count": 1, "stocks": [{"ticker": members[0]}]})),
        "nothing written"
    );
}

on_both_stores!(a_genuine_mass_change_is_still_refused_when_the_row_was_also_edited);
