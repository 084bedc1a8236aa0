//! Turnover banding end to end (issue 16): with `[catalog] banding` set, a member just past its
//! band's limit stays, the plan says so (held and displaced, in-process and on the command line),
//! the run's `universe_updated` event carries the held reason, and once past the band it moves.

use crate::helpers::{
    cache_sync_cli, describe, on_both_stores, run_request, today, Backend, TestDb,
};
use serde_json::{json, Value};
use tickstock_cache_sync::domain::config::parse_toml;
use tickstock_cache_sync::job::{self, JobConfig, PlanRequest};

const BANDING: &str = "[catalog]\nbanding = { market_cap = 0.05, market_leaders = 0.10 }\n";

fn banded_job() -> JobConfig {
    JobConfig {
        toml: Some((
            "banding.toml".to_owned(),
            parse_toml("banding.toml", BANDING).expect("the banding TOML parses"),
        )),
        ..JobConfig::default()
    }
}

fn tickers(value: &Value) -> Vec<String> {
    value["stocks"]
        .as_array()
        .expect("a stocks list")
        .iter()
        .map(|s| s["ticker"].as_str().unwrap().to_owned())
        .collect()
}

/// `(universe, ticker)` of plan lines.
fn who(lines: &Value) -> Vec<(String, String)> {
    lines
        .as_array()
        .map(|l| {
            l.iter()
                .map(|h| {
                    let universe = h["universe"].as_str().unwrap().to_owned();
                    (universe, h["ticker"].as_str().unwrap().to_owned())
                })
                .collect()
        })
        .unwrap_or_default()
}

fn pair(universe: &str, ticker: &str) -> (String, String) {
    (universe.to_owned(), ticker.to_owned())
}

/// Sets a stock's share count so that its cap is `cap` at its latest close.
async fn set_cap(db: &TestDb, ticker: &str, shares: i64) {
    db.sql("update symbols set weighted_shares_outstanding = $1 where symbol = $2")
        .bind(shares)
        .bind(ticker)
        .execute()
        .await;
}

async fn universe_events(db: &TestDb, run_id: i64, key: &str) -> Vec<Value> {
    db.sql(
        "select payload from cache_sync_outbox where run_id = $1 and event = 'universe_updated'
         order by outbox_id",
    )
    .bind(run_id)
    .scalars::<Value>()
    .await
    .into_iter()
    .filter(|p| p["name"] == "market_cap" && p["key"] == key)
    .collect()
}

async fn a_banded_run_holds_members_and_says_so_in_plan_and_events(backend: Backend) {
    let db = TestDb::on(backend).await;
    let sql = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/small_market.sql"
    ))
    .unwrap();
    db.exec(&sql).await;
    let job = banded_job();
    job::run(db.store.as_ref(), &job, &run_request(false))
        .await
        .expect("the first banded run");
    let large = || async {
        tickers(
            &db.value("stock_universe", "market_cap", "large_cap")
                .await
                .unwrap(),
        )
    };
    let mid = || async {
        tickers(
            &db.value("stock_universe", "market_cap", "mid_cap")
                .await
                .unwrap(),
        )
    };
    assert_eq!(large().await, ["TENB"]);
    assert!(mid().await.contains(&"TENL".to_owned()));

    // Overnight TENB ($10B) slips 3 % under the large-cap limit and TENL (just under $10B) rises
    // 3 % over it: the plain rule would swap them, the 5 % band keeps both where they are.
    set_cap(&db, "TENB", 97_000_000).await;
    set_cap(&db, "TENL", 103_000_000).await;
    let plan = job::plan(db.store.as_ref(), &job, &PlanRequest::default(), today())
        .await
        .expect("plan");
    let plan = serde_json::to_value(&plan).unwrap();
    assert_eq!(
        who(&plan["held"]),
        [
            pair("stock_universe/market_cap/large_cap", "TENB"),
            pair("stock_universe/market_cap/mid_cap", "TENL"),
        ]
    );
    assert_eq!(
        plan["held"][0],
        json!({"universe": "stock_universe/market_cap/large_cap", "ticker": "TENB", "reason": "held_by_band",
               "detail": {"market_cap": 9_700_000_000_i64, "limit": 10_000_000_000_i64, "bound": "lower", "share": 0.05, "plain": "mid_cap"}})
    );
    assert_eq!(
        who(&plan["displaced"]),
        [
            pair("stock_universe/market_cap/large_cap", "TENL"),
            pair("stock_universe/market_cap/mid_cap", "TENB"),
        ]
    );
    // The plain rule, for contrast: both cross.
    let plain = job::plan(
        db.store.as_ref(),
        &JobConfig::default(),
        &PlanRequest::default(),
        today(),
    )
    .await
    .expect("plain plan");
    let plain = serde_json::to_value(&plain).unwrap();
    assert!(
        plain.get("held").is_none() && plain.get("displaced").is_none(),
        "{plain}"
    );
    let large_delta = plain["deltas"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "market_cap" && d["key"] == "large_cap")
        .expect("the plain rule changes large_cap");
    assert_eq!(large_delta["removed"][0]["ticker"], "TENB");

    let report = job::run(db.store.as_ref(), &job, &run_request(false))
        .await
        .expect("the banded run");
    let run_id = report.run_id.expect("a run id").0;
    assert_eq!(large().await, ["TENB"]);
    assert!(mid().await.contains(&"TENL".to_owned()));
    let events = universe_events(&db, run_id, "large_cap").await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["added"], json!([]));
    assert_eq!(events[0]["removed"], json!([]));
    assert_eq!(
        events[0]["held"],
        json!([{"ticker": "TENB", "reason": "held_by_band",
                "detail": {"market_cap": 9_700_000_000_i64, "limit": 10_000_000_000_i64, "bound": "lower", "share": 0.05, "plain": "mid_cap"}}])
    );
    let mid_events = universe_events(&db, run_id, "mid_cap").await;
    assert_eq!(mid_events[0]["held"][0]["ticker"], "TENL");
    // Unbanded universes' events carry no `held`.
    let others: Vec<Value> = db
        .sql("select payload from cache_sync_outbox where run_id = $1 and event = 'universe_updated'")
        .bind(run_id)
        .scalars()
        .await;
    assert!(others
        .iter()
        .filter(|p| p["name"] != "market_cap")
        .all(|p| p.get("held").is_none()));
    // The audit log records the held member's changed figures under held_by_band.
    let changes: Vec<Value> = db
        .sql("select change from cache_sync_event where run_id = $1")
        .bind(run_id)
        .scalars()
        .await;
    let held_reasons: Vec<&Value> = changes
        .iter()
        .flat_map(|c| c["lists"].as_array().into_iter().flatten())
        .flat_map(|l| l["changed"].as_array().into_iter().flatten())
        .filter(|m| m["ticker"] == "TENB")
        .map(|m| &m["reason"])
        .collect();
    assert!(
        held_reasons.contains(&&json!("held_by_band")),
        "{held_reasons:?}"
    );

    // On the command line, with the setting in a TOML file.
    let file = std::env::temp_dir().join(format!("{}-banding.toml", db.name));
    std::fs::write(&file, BANDING).unwrap();
    set_cap(&db, "TENB", 96_000_000).await;
    let out = cache_sync_cli(
        &db,
        &[
            "plan",
            "--config",
            file.to_str().unwrap(),
            "--format",
            "json",
        ],
    );
    std::fs::remove_file(&file).ok();
    let printed: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("{}", describe(&out)));
    assert_eq!(printed["held"][0]["ticker"], "TENB", "{}", describe(&out));
    assert_eq!(
        printed["held"][0]["detail"]["market_cap"],
        9_600_000_000_i64
    );

    // Past the band (6 % under, and TENL 6 % over), they swap (forced: the one-member band
    // loses all its members, which the mass-removal guard refuses otherwise).
    set_cap(&db, "TENB", 94_000_000).await;
    set_cap(&db, "TENL", 106_000_000).await;
    let report = job::run(db.store.as_ref(), &job, &run_request(true))
        .await
        .expect("the run past the band");
    assert_eq!(large().await, ["TENL"]);
    assert!(mid().await.contains(&"TENB".to_owned()));
    let events = universe_events(&db, report.run_id.unwrap().0, "large_cap").await;
    assert_eq!(events[0]["removed"], json!(["TENB"]));
    assert_eq!(events[0]["added"], json!(["TENL"]));
    assert!(events[0].get("held").is_none(), "{}", events[0]);
}

on_both_stores!(a_banded_run_holds_members_and_says_so_in_plan_and_events);
