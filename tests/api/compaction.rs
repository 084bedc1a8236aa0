//! Compaction (issue 16, "a bounded audit log") against a real database: the log folded before
//! a horizon into a checkpoint, every later run still replayed exactly and verified by hash,
//! earlier runs refused naming the horizon (library, CLI exit 2, API 404), a second compaction
//! doing nothing, a compaction killed mid-transaction leaving the log byte for byte as it was,
//! and the append-only triggers refusing every delete outside compaction's path.

use crate::helpers::{
    cache_sync_cli, cache_sync_command, describe, live_hashes, on_both_stores, run_request, text,
    Backend, TestDb,
};
use crate::http::{app_state, assert_error, finish_job, get, post, TRIGGER};
use axum::http::StatusCode;
use std::collections::BTreeMap;
use std::io::BufRead as _;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tickstock_cache_sync::devtools::market::{FixtureParams, SyntheticMarket};
use tickstock_cache_sync::domain::fingerprint::hash_value;
use tickstock_cache_sync::domain::types::RunId;
use tickstock_cache_sync::history::compaction::{compact, CompactionRequest};
use tickstock_cache_sync::history::{self, HistoryError};
use tickstock_cache_sync::http as api;
use tickstock_cache_sync::job::{self, JobConfig, RunError};

const ENV: &str = "DEFAULT";
const LARGE_CAP: &str = "stock_universe/market_cap/large_cap";

type Hashes = BTreeMap<String, String>;

fn market(seed: u64, days: usize) -> SyntheticMarket {
    SyntheticMarket::generate(&FixtureParams {
        stocks: 300,
        etfs: 60,
        days,
        seed,
        nasty: false,
        ..FixtureParams::default()
    })
}

/// Checkpoints every third run, so compaction has ordinary checkpoints to supersede.
fn job_config() -> JobConfig {
    JobConfig {
        checkpoint_every: 3,
        ..JobConfig::default()
    }
}

/// One night per day 1..=`days` (forced, so guard rails stay out of it): each night's run id
/// and every owned entry's live hash after it.
async fn nights(db: &TestDb, market: &SyntheticMarket, days: usize) -> Vec<(RunId, Hashes)> {
    let mut out = Vec::new();
    for day in 1..=days {
        if day == 1 {
            db.load(market, 1).await;
        } else {
            db.load_next(market, day).await;
        }
        let report = job::run(db.store.as_ref(), &job_config(), &run_request(true))
            .await
            .unwrap_or_else(|e| panic!("night {day}: {e}"));
        out.push((report.run_id.expect("completed"), live_hashes(db).await));
    }
    out
}

async fn replayed(db: &TestDb, run: RunId) -> Result<Hashes, HistoryError> {
    let (state, _) = history::replay_state(db.store.as_ref(), ENV, run, None).await?;
    Ok(state
        .iter()
        .map(|(k, (_, v))| (k.to_string(), hash_value(v).to_hex()))
        .collect())
}

/// Every row of the log's tables, as text, in a stable order.
async fn log_text(db: &TestDb) -> Vec<Vec<String>> {
    let tables = [
        ("cache_sync_run", "run_id"),
        ("cache_sync_event", "seq"),
        ("cache_sync_run_values", "run_id"),
        (
            "cache_sync_checkpoint",
            "run_id, entry_type, entry_name, entry_key",
        ),
        ("cache_sync_compaction", "id"),
        (
            "cache_sync_entry_head",
            "environment, entry_type, entry_name, entry_key",
        ),
        ("cache_entries", "id"),
    ];
    let mut out = Vec::new();
    for (table, order) in tables {
        out.push(db.table_text(table, "true", order).await);
    }
    out
}

/// `sql`'s count of run values, `$1` bound to `run`.
async fn count_run_values(db: &TestDb, sql: &'static str, run: RunId) -> i64 {
    db.sql(sql).bind(run.0).scalar().await
}

fn request(keep_days: u32) -> CompactionRequest {
    CompactionRequest {
        keep_days,
        ..CompactionRequest::default()
    }
}

/// Days between the as-of dates of night `from` and night `to` (1-based): the `--keep-days`
/// whose horizon is night `from`.
fn days_between(market: &SyntheticMarket, from: usize, to: usize) -> u32 {
    (market.date_of_day(to) - market.date_of_day(from)).num_days() as u32
}

async fn compaction_keeps_every_later_run_exact_and_refuses_earlier_ones(backend: Backend) {
    let db = TestDb::on(backend).await;
    let market = market(1601, 15);
    let nights = nights(&db, &market, 14).await;
    let keep_days = days_between(&market, 9, 14);
    let horizon = nights[8].0;
    let fold_through = nights[7].0;
    let events_before: i64 = db
        .sql("select count(*) from cache_sync_event where run_id <= $1")
        .bind(fold_through.0)
        .scalar()
        .await;
    assert!(events_before > 0, "the folded runs logged events");
    let folded_values = "select count(*) from cache_sync_run_values where run_id <= $1";
    let kept_values = "select count(*) from cache_sync_run_values where run_id > $1";
    let values_of = |sql| count_run_values(&db, sql, fold_through);
    assert!(
        values_of(folded_values).await > 0 && values_of(kept_values).await > 0,
        "nights of new prices store their member values"
    );

    // A dry run works everything out and changes nothing.
    let before = log_text(&db).await;
    let dry = compact(
        db.store.as_ref(),
        ENV,
        &CompactionRequest {
            dry_run: true,
            ..request(keep_days)
        },
    )
    .await
    .expect("dry run");
    assert_eq!(log_text(&db).await, before, "a dry run writes nothing");
    assert_eq!(dry.compaction_id, None);
    assert_eq!(dry.events_removed, events_before);

    let report = compact(db.store.as_ref(), ENV, &request(keep_days))
        .await
        .expect("compact");
    let h = report.horizon.expect("a horizon");
    assert_eq!((h.run, h.fold_through), (horizon, fold_through));
    assert_eq!(h.as_of, market.date_of_day(9));
    assert_eq!(report.events_removed, events_before);
    assert_eq!(report.events_removed, dry.events_removed);
    assert!(report.checkpoints_removed >= 2, "{report:?}");
    assert!(report.bytes_after < report.bytes_before, "{report:?}");
    let left: i64 = db
        .sql("select count(*) from cache_sync_event where run_id <= $1")
        .bind(fold_through.0)
        .scalar()
        .await;
    assert_eq!(left, 0, "the folded events are gone");
    assert_eq!(values_of(folded_values).await, 0, "and their runs' values");
    assert!(
        values_of(kept_values).await > 0,
        "the kept runs' values stay"
    );
    let checkpoint_runs: Vec<i64> = db
        .sql("select distinct run_id from cache_sync_checkpoint order by run_id")
        .scalars()
        .await;
    assert_eq!(
        checkpoint_runs.first(),
        Some(&fold_through.0),
        "{checkpoint_runs:?}"
    );

    // Every kept run replays exactly as it was, and a full verifying fold (from the compaction
    // checkpoint, the log's start now) agrees.
    for (run, hashes) in &nights[8..] {
        assert_eq!(
            &replayed(&db, *run).await.expect("kept run"),
            hashes,
            "run {run}"
        );
        let report = history::replay(db.store.as_ref(), ENV, *run, true)
            .await
            .unwrap_or_else(|e| panic!("replay --verify of run {run}: {e}"));
        assert_eq!(report.verified_from, Some(fold_through));
        let by_hash: Hashes = report
            .hashes
            .iter()
            .map(|(k, h)| (k.clone(), h.to_hex()))
            .collect();
        assert_eq!(&by_hash, hashes, "run {run}");
    }
    // Every earlier run is refused, naming the horizon and its date.
    for (run, _) in &nights[..8] {
        match replayed(&db, *run).await {
            Err(HistoryError::BeforeHorizon {
                run: refused,
                horizon: named,
                as_of,
            }) => {
                assert_eq!((refused, named), (*run, horizon));
                assert_eq!(as_of, Some(market.date_of_day(9)));
            }
            other => panic!("run {run} before the horizon: {other:?}"),
        }
    }
    let early = nights[2].0.to_string();
    for args in [
        vec!["replay", "--at-run", &early, "--verify"],
        vec!["rollback", "--to-run", &early, "--force"],
        vec!["show", LARGE_CAP, "--at-run", &early],
    ] {
        let out = cache_sync_cli(&db, &args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", describe(&out));
        let stderr = text(&out.stderr);
        assert!(
            stderr.contains(&format!("horizon, run {horizon}"))
                && stderr.contains(&h.as_of.to_string()),
            "{args:?}: {stderr}"
        );
    }
    let app = api::router(app_state(&db, job_config(), None));
    let refused = get(&app, &format!("/api/universes/{LARGE_CAP}?at_run={early}")).await;
    assert_error(&refused, StatusCode::NOT_FOUND, "not_found");
    assert!(refused.text().contains("horizon"), "{}", refused.text());
    let kept = get(
        &app,
        &format!("/api/universes/{LARGE_CAP}?at_run={horizon}"),
    )
    .await;
    assert_eq!(kept.status, StatusCode::OK, "{}", kept.text());
    assert_eq!(
        kept.json()["hash"].as_str(),
        nights[8].1.get(LARGE_CAP).map(String::as_str)
    );

    // A second compaction with the same window does nothing.
    let after = log_text(&db).await;
    let again = compact(db.store.as_ref(), ENV, &request(keep_days))
        .await
        .expect("second compaction");
    assert_eq!(again.compaction_id, None);
    assert!(again.nothing_to_do.is_some());
    assert_eq!(log_text(&db).await, after, "idempotent");
    let out = cache_sync_cli(&db, &["verify"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));

    // Later nights log after the compaction's seqs, and replay stays exact; a rollback to the
    // horizon run takes the catalog back to it exactly.
    db.load_next(&market, 15).await;
    let next = job::run(db.store.as_ref(), &job_config(), &run_request(true))
        .await
        .expect("a night after compaction");
    let next = next.run_id.expect("completed");
    assert_eq!(replayed(&db, next).await.unwrap(), live_hashes(&db).await);
    let mut rollback = run_request(true);
    rollback.trigger = tickstock_cache_sync::store::Trigger::Rollback;
    job::rollback(db.store.as_ref(), &job_config(), horizon, &rollback)
        .await
        .expect("rollback to the horizon");
    assert_eq!(live_hashes(&db).await, nights[8].1);
    let err = job::rollback(db.store.as_ref(), &job_config(), fold_through, &rollback)
        .await
        .expect_err("rollback before the horizon");
    assert!(
        matches!(err, RunError::History(HistoryError::BeforeHorizon { .. })),
        "{err:?}"
    );
}

on_both_stores!(compaction_keeps_every_later_run_exact_and_refuses_earlier_ones);

/// SIGKILLs `child` and waits until its writer lock is gone.
async fn kill_and_wait_for_the_lock(db: &TestDb, mut child: std::process::Child) {
    child.kill().expect("SIGKILL");
    assert!(!child.wait().unwrap().success());
    let deadline = Instant::now() + crate::helpers::WAIT;
    while db.store.writer_lock_holder().await.unwrap().is_some() {
        assert!(
            Instant::now() < deadline,
            "the killed compaction's lock is released"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn a_compaction_killed_midway_leaves_the_log_as_it_was(backend: Backend) {
    let db = TestDb::on(backend).await;
    let market = market(1602, 8);
    let nights = nights(&db, &market, 8).await;
    let keep_days = days_between(&market, 5, 8);
    let before = log_text(&db).await;

    // Paused after deleting the folded events, before committing: then killed.
    let mut child = cache_sync_command(&db, &["compact", "--keep-days", &keep_days.to_string()])
        .env("CACHE_SYNC_TEST_PAUSE_COMPACTION_MS", "600000")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start cache-sync compact");
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        if stderr.read_line(&mut line).expect("read stderr") == 0 {
            let status = child.wait();
            panic!("compact ended before pausing ({status:?}):\n{seen}");
        }
        seen.push_str(&line);
        if line.contains("paused mid-compaction") {
            break;
        }
    }
    kill_and_wait_for_the_lock(&db, child).await;
    assert_eq!(
        log_text(&db).await,
        before,
        "the log is byte for byte as before"
    );
    for (run, hashes) in &nights {
        assert_eq!(&replayed(&db, *run).await.unwrap(), hashes, "run {run}");
    }

    // The same compaction, not killed, completes: the log is either before or after.
    let out = cache_sync_cli(&db, &["compact", "--keep-days", &keep_days.to_string()]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(
        text(&out.stdout).contains("Folded the log through run"),
        "{}",
        describe(&out)
    );
    for (run, hashes) in &nights[4..] {
        assert_eq!(&replayed(&db, *run).await.unwrap(), hashes, "run {run}");
    }
}

on_both_stores!(a_compaction_killed_midway_leaves_the_log_as_it_was);

async fn a_plain_delete_of_the_log_is_still_refused_after_compaction(backend: Backend) {
    let db = TestDb::on(backend).await;
    let market = market(1603, 5);
    nights(&db, &market, 5).await;
    compact(
        db.store.as_ref(),
        ENV,
        &request(days_between(&market, 3, 5)),
    )
    .await
    .expect("compact");
    assert!(db.count("cache_sync_compaction").await == 1);
    let before = log_text(&db).await;
    let mut statements = vec![
        "delete from cache_sync_event",
        "delete from cache_sync_event where run_id = (select max(run_id) from cache_sync_event)",
        "update cache_sync_event set op = 'x'",
        "delete from cache_sync_checkpoint",
        "update cache_sync_checkpoint set hash = 'x'",
        "delete from cache_sync_run_values",
        "update cache_sync_run_values set environment = 'x'",
        "delete from cache_sync_compaction",
        "update cache_sync_compaction set events_removed = 0",
    ];
    if backend == Backend::Postgres {
        statements.extend([
            "truncate cache_sync_event",
            "truncate cache_sync_checkpoint",
            "truncate cache_sync_run_values",
            "truncate cache_sync_compaction",
        ]);
    }
    for sql in statements {
        let err = db.sql(sql).try_execute().await.expect_err(sql).to_string();
        assert!(err.contains("append-only"), "{sql}: {err}");
    }
    if backend == Backend::Postgres {
        // Naming an existing compaction is not enough: its row names another transaction.
        let mut tx = db.pool().begin().await.unwrap();
        sqlx::query("select set_config('cache_sync.compaction', (select max(id)::text from cache_sync_compaction), true)")
            .execute(&mut *tx)
            .await
            .unwrap();
        let err = sqlx::query("delete from cache_sync_event")
            .execute(&mut *tx)
            .await
            .expect_err("a forged compaction setting")
            .to_string();
        assert!(err.contains("append-only"), "{err}");
    }
    assert_eq!(log_text(&db).await, before);
}

on_both_stores!(a_plain_delete_of_the_log_is_still_refused_after_compaction);

/// `[audit] keep_days` in the service: after each successful API job the log is compacted to
/// the window, so it stays bounded without anyone running `compact`, every kept run still
/// replays exactly, earlier ones are refused naming the horizon, and `verify` passes.
async fn the_service_compacts_the_log_after_each_job_with_audit_keep_days(backend: Backend) {
    let db = TestDb::on(backend).await;
    let market = market(1602, 12);
    let keep_days = days_between(&market, 8, 12);
    let job = JobConfig {
        audit_keep_days: Some(keep_days),
        ..job_config()
    };
    let state = app_state(&db, job, None);
    let app = api::router(state.clone());
    let mut nights: Vec<(RunId, Hashes)> = Vec::new();
    for day in 1..=12 {
        if day == 1 {
            db.load(&market, 1).await;
        } else {
            db.load_next(&market, day).await;
        }
        let accepted = post(&app, TRIGGER, &serde_json::json!({"force": true})).await;
        assert_eq!(accepted.status, StatusCode::ACCEPTED, "{}", accepted.text());
        finish_job(&state).await;
        let run: i64 = db
            .sql("select max(run_id) from cache_sync_run where status = 'completed'")
            .scalar()
            .await;
        nights.push((RunId(run), live_hashes(&db).await));
    }
    assert_eq!(nights.len(), 12);
    let horizon = nights[7].0;
    let compactions: i64 = db
        .sql("select count(*) from cache_sync_compaction")
        .scalar()
        .await;
    assert!(
        compactions >= 2,
        "the horizon moved with the nights: {compactions} compactions"
    );
    let folded: i64 = db
        .sql("select count(*) from cache_sync_event where run_id < $1")
        .bind(horizon.0)
        .scalar()
        .await;
    assert_eq!(folded, 0, "events before the horizon were folded away");
    for (run, hashes) in &nights[7..] {
        assert_eq!(
            &replayed(&db, *run).await.expect("kept run"),
            hashes,
            "run {run}"
        );
    }
    for (run, _) in &nights[..7] {
        assert!(
            matches!(
                replayed(&db, *run).await,
                Err(HistoryError::BeforeHorizon { horizon: named, .. }) if named == horizon
            ),
            "run {run} is before the horizon {horizon}"
        );
    }
    let out = cache_sync_cli(&db, &["verify"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
}

on_both_stores!(the_service_compacts_the_log_after_each_job_with_audit_keep_days);
