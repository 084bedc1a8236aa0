//! Renames that keep history (issue 16 item 2), on both stores: `symbols` carries production's
//! identity columns (added here; the project's schema has none), the synthetic market renames a
//! stock (the old ticker turns inactive, a new one with the same identity takes over), and the
//! nightly run reports one security under a new ticker, not a delisting and a new listing.

use crate::helpers::{
    cache_sync_cli, describe, on_both_stores, run_request, text, Backend, TestDb,
};
use crate::http::{app_state, get};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use tickstock_cache_sync::devtools::market::{FixtureParams, SyntheticMarket};
use tickstock_cache_sync::domain::members::member_lists;
use tickstock_cache_sync::domain::types::RunId;
use tickstock_cache_sync::http as api;
use tickstock_cache_sync::job::{self, JobConfig};
use tickstock_cache_sync::report::RunReport;

/// Production's vendor columns, added the way an operator's schema has them.
async fn add_identity_columns(db: &TestDb) {
    for column in ["composite_figi", "share_class_figi", "cik"] {
        db.exec(&format!(
            "alter table symbols add column {column} varchar(20)"
        ))
        .await;
    }
}

/// A small market of `days` days whose one rename happens on day 2, and that rename.
fn renamed_market(days: usize) -> (SyntheticMarket, String, String) {
    (1..200)
        .map(|seed| {
            SyntheticMarket::generate(&FixtureParams {
                stocks: 400,
                etfs: 60,
                days,
                seed,
                nasty: false,
                renames: 1,
            })
        })
        .find_map(|m| {
            let (day, old, new) = m.renames().into_iter().next()?;
            (day == 2).then_some((m, old, new))
        })
        .expect("some seed renames a stock on day 2")
}

fn run_id_of(report: &RunReport) -> i64 {
    report.run_id.expect("a committed run has an id").0
}

/// `(seq, universe, change)` of every logged event of run `run_id`.
async fn events_of(db: &TestDb, run_id: i64) -> Vec<(i64, String, Option<String>, Value)> {
    let rows: Vec<(i64, String, String, String, Option<String>, Value)> = db
        .sql(
            "select seq, entry_type, entry_name, entry_key, hash_after, change
             from cache_sync_event where run_id = $1 order by seq",
        )
        .bind(run_id)
        .fetch_all()
        .await;
    rows.into_iter()
        .map(|(seq, t, n, k, hash, change)| (seq, format!("{n}:{k}@{t}"), hash, change))
        .collect()
}

/// `(event, payload)` of every outbox row of run `run_id`, in publishing order.
async fn outbox_of(db: &TestDb, run_id: i64) -> Vec<(String, Value)> {
    db.sql("select event, payload from cache_sync_outbox where run_id = $1 order by outbox_id")
        .bind(run_id)
        .fetch_all()
        .await
}

/// Every `(list side, ticker, reason)` a logged change holds.
fn moves(change: &Value) -> Vec<(&'static str, String, Value)> {
    let mut out = Vec::new();
    for list in change["lists"].as_array().into_iter().flatten() {
        for side in ["added", "removed"] {
            for m in list[side].as_array().into_iter().flatten() {
                out.push((
                    side,
                    m["ticker"].as_str().unwrap().to_owned(),
                    m["reason"].clone(),
                ));
            }
        }
    }
    out
}

fn members(value: &Value) -> usize {
    member_lists(value).iter().map(|(_, m)| m.len()).sum()
}

/// Checks the night of the rename: both sides of every member change of `old` and `new` say
/// `renamed` with from/to, the universe events carry `renamed_from` and every other field of
/// their payload as logged, and neither the delisting nor the IPO events mention the tickers.
async fn assert_rename_night(db: &TestDb, run_id: i64, old: &str, new: &str) {
    let reason = json!({
        "code": "renamed",
        "detail": {"from": old, "to": new, "matched_by": "composite_figi"},
    });
    let events = events_of(db, run_id).await;
    let mut removed_from = BTreeSet::new();
    let mut added_to = BTreeSet::new();
    for (_, universe, _, change) in &events {
        for (side, ticker, why) in moves(change) {
            if ticker == old {
                assert_eq!(side, "removed", "{universe}: {change}");
                assert_eq!(why, reason, "{universe}: {old} leaves by the rename");
                removed_from.insert(universe.clone());
            }
            if ticker == new {
                assert_eq!(side, "added", "{universe}: {change}");
                assert_eq!(why, reason, "{universe}: {new} joins by the rename");
                added_to.insert(universe.clone());
            }
        }
    }
    assert!(
        removed_from
            .iter()
            .any(|u| u.starts_with("complete:all_stocks")),
        "{removed_from:?}"
    );
    assert_eq!(
        removed_from, added_to,
        "the new ticker takes the old one's places"
    );

    let outbox = outbox_of(db, run_id).await;
    let updates: Vec<&Value> = outbox
        .iter()
        .filter(|(e, _)| e == "universe_updated")
        .map(|(_, p)| p)
        .collect();
    assert_eq!(updates.len(), events.len(), "one universe event per delta");
    for ((seq, universe, hash, change), payload) in events.iter().zip(&updates) {
        let (name_key, entry_type) = universe.split_once('@').unwrap();
        let (name, key) = name_key.split_once(':').unwrap();
        let live = db.value(entry_type, name, key).await.expect("a live row");
        let added: BTreeSet<String> = moves(change)
            .into_iter()
            .filter(|(s, _, _)| *s == "added")
            .map(|(_, t, _)| t)
            .collect();
        let removed: BTreeSet<String> = moves(change)
            .into_iter()
            .filter(|(s, _, _)| *s == "removed")
            .map(|(_, t, _)| t)
            .collect();
        let mut expected = json!({
            "universe": name_key,
            "type": entry_type,
            "name": name,
            "key": key,
            "action": "updated",
            "added": added,
            "removed": removed,
            "count": members(&live),
            "hash": hash,
            "seq": seq,
            "run_id": run_id,
        });
        if added.contains(new) {
            expected["renamed_from"] = json!({ new: old });
        }
        assert_eq!(
            **payload, expected,
            "universe_updated of {universe}, field by field"
        );
    }
    for (event, payload) in &outbox {
        match event.as_str() {
            "delisting_cleanup" => {
                let symbols = payload["symbols"].as_array().unwrap();
                assert!(
                    symbols.iter().all(|s| s != old && s != new),
                    "a rename is no delisting: {payload}"
                );
                assert_eq!(payload["removed_count"], symbols.len());
                assert_eq!(payload["run_id"], run_id);
            }
            "ipo_assignment" => {
                assert_ne!(payload["symbol"], new, "a rename is no listing: {payload}")
            }
            _ => {}
        }
    }
    let ipos = db
        .value("stock_universe", "ipos", "recent_ipos")
        .await
        .unwrap_or(Value::Null);
    assert!(
        !ipos.to_string().contains(&format!("\"{new}\"")),
        "the renamed stock keeps its old listing date: {ipos}"
    );
}

/// A rename on a nightly run that also lists, delists and re-ranks other stocks.
async fn a_rename_on_a_night_with_other_changes(backend: Backend) {
    let db = TestDb::on(backend).await;
    add_identity_columns(&db).await;
    let (market, old, new) = renamed_market(2);
    db.load(&market, 1).await;
    db.run().await;
    db.load_next(&market, 2).await;
    let night = db.run().await;
    let reasons = &night.outcome.reasons;
    assert!(
        reasons.get("renamed").is_some_and(|n| *n >= 2),
        "{reasons:?}"
    );
    assert!(
        reasons.keys().any(|r| *r != "renamed"),
        "the night has other changes too: {reasons:?}"
    );
    assert_rename_night(&db, run_id_of(&night), &old, &new).await;
}
on_both_stores!(a_rename_on_a_night_with_other_changes);

/// `history --symbol NEW` (CLI and API) shows the old ticker's past up to the rename.
async fn assert_history_follows_the_rename(db: &TestDb, old: &str, new: &str) {
    let out = cache_sync_cli(db, &["history", "--symbol", new, "--format", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let lines: Value = serde_json::from_str(&text(&out.stdout)).expect("JSON history");
    let app = api::router(app_state(db, JobConfig::default(), None));
    let answer = get(
        &app,
        &format!("/api/symbols/{}/history", new.to_lowercase()),
    )
    .await;
    assert_eq!(
        answer.status,
        axum::http::StatusCode::OK,
        "{}",
        answer.text()
    );
    let answer = answer.json();
    assert_eq!(
        answer["changes"], lines,
        "the CLI and the API show the same history"
    );
    let lines = lines.as_array().unwrap();
    let tickers = |side: &str| -> BTreeSet<String> {
        lines
            .iter()
            .flat_map(|l| l[side].as_array().unwrap().iter())
            .map(|m| m["ticker"].as_str().unwrap().to_owned())
            .collect()
    };
    assert!(
        tickers("added").contains(old),
        "the old ticker's first build is part of the new one's past: {lines:?}"
    );
    assert!(tickers("added").contains(new));
    let seqs: Vec<i64> = lines.iter().map(|l| l["seq"].as_i64().unwrap()).collect();
    assert!(
        seqs.windows(2).all(|w| w[0] > w[1]),
        "newest first: {seqs:?}"
    );
    for line in lines {
        for m in line["added"]
            .as_array()
            .unwrap()
            .iter()
            .chain(line["removed"].as_array().unwrap())
        {
            assert!(m["ticker"] == old || m["ticker"] == new, "{line}");
        }
    }
    // The old ticker's own history does not run forward into the new one's.
    let out = cache_sync_cli(db, &["history", "--symbol", old, "--format", "json"]);
    let own: Value = serde_json::from_str(&text(&out.stdout)).expect("JSON history");
    assert!(own
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|l| l["added"].as_array().unwrap())
        .all(|m| m["ticker"] == old));
}

/// A rename, then the renamed stock delisted a night later: the delisting is the new ticker's.
async fn a_rename_followed_by_a_delisting(backend: Backend) {
    let db = TestDb::on(backend).await;
    add_identity_columns(&db).await;
    let (market, old, new) = renamed_market(3);
    db.load(&market, 1).await;
    db.run().await;
    db.load_next(&market, 2).await;
    let rename = db.run().await;
    assert_rename_night(&db, run_id_of(&rename), &old, &new).await;
    db.load_next(&market, 3).await;
    db.sql("update symbols set active = false where symbol = $1")
        .bind(&new)
        .execute()
        .await;
    let delisting = db.run().await;
    let run_id = run_id_of(&delisting);
    let mut left = 0;
    for (_, universe, _, change) in events_of(&db, run_id).await {
        for (side, ticker, why) in moves(&change) {
            assert_ne!(ticker, old, "{universe}: the old ticker is long gone");
            if ticker == new {
                assert_eq!(side, "removed");
                assert_eq!(
                    why,
                    json!({"code": "delisted_or_inactive", "detail": {"status": "inactive"}}),
                    "{universe}"
                );
                left += 1;
            }
        }
    }
    assert!(left > 0, "the new ticker left its universes");
    let outbox = outbox_of(&db, run_id).await;
    assert!(outbox.iter().all(|(_, p)| p.get("renamed_from").is_none()));
    let cleanup = outbox
        .iter()
        .find(|(e, _)| e == "delisting_cleanup")
        .map(|(_, p)| p)
        .expect("a delisting cleanup");
    let symbols = cleanup["symbols"].as_array().unwrap();
    assert!(symbols.iter().any(|s| s == new.as_str()), "{cleanup}");
    assert!(symbols.iter().all(|s| s != old.as_str()), "{cleanup}");
    assert_eq!(cleanup["removed_count"], symbols.len());
    assert_eq!(cleanup["run_id"], run_id);
    assert_history_follows_the_rename(&db, &old, &new).await;
}
on_both_stores!(a_rename_followed_by_a_delisting);

/// A rollback across a rename restores the old ticker (reason `rollback`, no rename, delisting
/// or IPO event); the next nightly run finds the rename again.
async fn a_rename_then_a_rollback_across_it(backend: Backend) {
    let db = TestDb::on(backend).await;
    add_identity_columns(&db).await;
    let (market, old, new) = renamed_market(2);
    db.load(&market, 1).await;
    let before = db.run().await;
    let before_hashes = crate::helpers::live_hashes(&db).await;
    db.load_next(&market, 2).await;
    db.run().await;
    let job = JobConfig::default();
    let rollback = job::rollback(
        db.store.as_ref(),
        &job,
        RunId(run_id_of(&before)),
        &run_request(false),
    )
    .await
    .expect("the rollback applies");
    assert_eq!(
        crate::helpers::live_hashes(&db).await,
        before_hashes,
        "the state before the rename is back"
    );
    let run_id = run_id_of(&rollback);
    let mut restored = 0;
    for (_, universe, _, change) in events_of(&db, run_id).await {
        for (side, ticker, why) in moves(&change) {
            assert_eq!(why, json!({"code": "rollback"}), "{universe}: {ticker}");
            if ticker == old {
                assert_eq!(side, "added");
                restored += 1;
            }
            if ticker == new {
                assert_eq!(side, "removed");
            }
        }
    }
    assert!(restored > 0);
    for (event, payload) in outbox_of(&db, run_id).await {
        assert!(payload.get("renamed_from").is_none(), "{payload}");
        assert!(
            event != "delisting_cleanup" && event != "ipo_assignment",
            "a rollback neither delists nor lists: {event} {payload}"
        );
    }
    // The market still says the old ticker is retired: the next night renames it again.
    let again = db.run().await;
    assert_rename_night(&db, run_id_of(&again), &old, &new).await;
    assert_history_follows_the_rename(&db, &old, &new).await;
}
on_both_stores!(a_rename_then_a_rollback_across_it);

/// Without identity columns the same market is a delisting and a new listing, as before.
async fn without_identity_columns_a_rename_is_a_delisting_and_a_listing(backend: Backend) {
    let db = TestDb::on(backend).await;
    let (market, old, new) = renamed_market(2);
    db.load(&market, 1).await;
    db.run().await;
    db.load_next(&market, 2).await;
    let night = db.run().await;
    assert!(!night.outcome.reasons.contains_key("renamed"));
    let outbox = outbox_of(&db, run_id_of(&night)).await;
    let cleanup = outbox
        .iter()
        .find(|(e, _)| e == "delisting_cleanup")
        .map(|(_, p)| p)
        .expect("a delisting cleanup");
    assert!(cleanup["symbols"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s == old.as_str()));
    assert!(outbox.iter().all(|(_, p)| p.get("renamed_from").is_none()));
    assert!(
        outbox
            .iter()
            .any(|(e, p)| e == "ipo_assignment" && p["symbol"] == new.as_str()),
        "the vendor dates the new ticker today, so without identity it is a new listing"
    );
}
on_both_stores!(without_identity_columns_a_rename_is_a_delisting_and_a_listing);
