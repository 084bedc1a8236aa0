//! Phase 2.5 on Phase 2's word (issue 15 item 1), with real Redis on both stores: an announced
//! import starts exactly one job, triggered by `pipeline` with the import's `run_id`; the same
//! import announced twice, or heard by two instances, runs once; an import announced while a
//! job runs is not dropped but runs after it.

use crate::helpers::{on_both_stores, run_request, small_market, Backend, TestDb, WAIT};
use crate::http::{app_state, get, Service};
use crate::pubsub::{connection, redis_url, unique_prefix};
use serde_json::json;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tickstock_cache_sync::domain::config::CatchUpSchedule;
use tickstock_cache_sync::domain::events::Channels;
use tickstock_cache_sync::http as api;
use tickstock_cache_sync::http::AppState;
use tickstock_cache_sync::job::{self, JobConfig};
use tickstock_cache_sync::publish::Publisher;
use tokio::time::Instant;

/// An instance that follows imports announced under `prefix`.
fn following(db: &TestDb, prefix: &str) -> AppState {
    let channels = Channels {
        prefix: prefix.to_owned(),
    };
    let publisher = Publisher::new(&redis_url(), channels.clone(), 100_000).unwrap();
    let job = JobConfig {
        channels,
        ..JobConfig::default()
    };
    let mut state = app_state(db, job, Some(publisher));
    state.follow_imports = true;
    state
}

/// Runs once on the loaded prices, so a starting follower has nothing to catch up.
async fn caught_up(db: &TestDb) {
    job::run(db.store.as_ref(), &JobConfig::default(), &run_request(true))
        .await
        .expect("the baseline run");
}

/// Polls `done` (bounded) until it holds.
async fn until<F: std::future::Future<Output = bool>>(what: &str, mut done: impl FnMut() -> F) {
    let deadline = Instant::now() + WAIT;
    while !done().await {
        assert!(Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits until `n` connections subscribe to the prefix's import channel.
async fn until_subscribed(prefix: &str, n: i64) {
    let channel = Channels {
        prefix: prefix.to_owned(),
    }
    .import_completed();
    until("the followers subscribe", || {
        let channel = channel.clone();
        async move {
            let mut con = connection(&redis_url()).await;
            let (_, count): (String, i64) = redis::cmd("PUBSUB")
                .arg("NUMSUB")
                .arg(&channel)
                .query_async(&mut con)
                .await
                .unwrap();
            count >= n
        }
    })
    .await;
}

/// Announces Phase 2's end as the app does (Sprint 33 `data_import_completed`).
async fn announce(prefix: &str, import_run_id: &str) {
    let event = json!({
        "event": "data_import_completed",
        "timestamp": "2026-12-02T21:45:00Z",
        "source": "daily_import_job",
        "version": "1.0",
        "payload": {
            "run_id": import_run_id,
            "duration_seconds": 2100,
            "total_symbols": 720,
            "successful_symbols": 720,
            "failed_symbols": 0,
            "total_records_imported": 720,
            "success_rate": 100.0,
        },
    });
    let mut con = connection(&redis_url()).await;
    let _: i64 = redis::cmd("PUBLISH")
        .arg(
            Channels {
                prefix: prefix.to_owned(),
            }
            .import_completed(),
        )
        .arg(event.to_string())
        .query_async(&mut con)
        .await
        .unwrap();
}

/// The jobs started for an import: `(job_id, status, triggered_by)`.
async fn jobs_of_import(db: &TestDb, import_run_id: &str) -> Vec<(String, String, String)> {
    db.sql("select job_id, status, triggered_by from cache_sync_job where import_run_id = $1")
        .bind(import_run_id)
        .fetch_all::<(String, String, String)>()
        .await
}

/// Waits until the import's job has ended; its `(job_id, status, triggered_by)`.
async fn until_finished(db: &TestDb, import_run_id: &str) -> (String, String, String) {
    until("the import's job ends", || async {
        jobs_of_import(db, import_run_id)
            .await
            .iter()
            .any(|(_, status, _)| status == "completed" || status == "failed")
    })
    .await;
    jobs_of_import(db, import_run_id).await.remove(0)
}

/// Waits until the job's run committed (its run record names the job).
async fn until_committed(db: &TestDb, import_run_id: &str) -> String {
    until("the import's run commits", || async {
        db.sql(
            "select count(*) from cache_sync_run r join cache_sync_job j on j.job_id = r.job_id
             where j.import_run_id = $1",
        )
        .bind(import_run_id)
        .fetch_all::<(i64,)>()
        .await[0]
            .0
            > 0
    })
    .await;
    jobs_of_import(db, import_run_id).await.remove(0).0
}

async fn until_handled(state: &AppState, n: u64) {
    until("the follower handles the announcements", || async {
        state.pipeline.imports_handled() >= n
    })
    .await;
}

async fn runs_of_job(db: &TestDb, job_id: &str) -> i64 {
    db.sql("select count(*) from cache_sync_run where job_id = $1")
        .bind(job_id)
        .fetch_all::<(i64,)>()
        .await[0]
        .0
}

async fn an_announced_import_starts_exactly_one_pipeline_job(backend: Backend) {
    let db = TestDb::on(backend).await;
    db.load(&small_market(51, 1), 1).await;
    caught_up(&db).await;
    let prefix = unique_prefix();
    let state = following(&db, &prefix);
    let service = Service::start(&state, Duration::ZERO).await;
    until_subscribed(&prefix, 1).await;

    announce(&prefix, "import-1").await;
    let (job_id, status, triggered_by) = until_finished(&db, "import-1").await;
    assert_eq!(status, "completed");
    assert_eq!(triggered_by, "pipeline");
    assert_eq!(runs_of_job(&db, &job_id).await, 1);
    until_handled(&state, 1).await;
    assert_eq!(db.count("cache_sync_job").await, 1, "one job in all");
    assert!(
        db.count("cache_entries").await > 0,
        "the run wrote the catalog"
    );
    service.shut_down().await;
}

on_both_stores!(an_announced_import_starts_exactly_one_pipeline_job);

async fn an_import_announced_twice_or_heard_by_two_instances_runs_once(backend: Backend) {
    let db = TestDb::on(backend).await;
    db.load(&small_market(52, 1), 1).await;
    caught_up(&db).await;
    let prefix = unique_prefix();
    let first = following(&db, &prefix);
    let second = following(&db, &prefix);
    let first_service = Service::start(&first, Duration::ZERO).await;
    let second_service = Service::start(&second, Duration::ZERO).await;
    until_subscribed(&prefix, 2).await;

    announce(&prefix, "import-1").await;
    announce(&prefix, "import-1").await;
    until_handled(&first, 2).await;
    until_handled(&second, 2).await;
    let (job_id, status, _) = until_finished(&db, "import-1").await;
    assert_eq!(status, "completed");
    // Re-published after it ran (a retrying Phase 2, or heard again after a restart).
    announce(&prefix, "import-1").await;
    until_handled(&first, 3).await;
    until_handled(&second, 3).await;
    assert_eq!(jobs_of_import(&db, "import-1").await.len(), 1);
    assert_eq!(db.count("cache_sync_job").await, 1, "one job in all");
    assert_eq!(runs_of_job(&db, &job_id).await, 1);
    first_service.shut_down().await;
    second_service.shut_down().await;
}

on_both_stores!(an_import_announced_twice_or_heard_by_two_instances_runs_once);

async fn an_import_announced_during_a_run_runs_after_it(backend: Backend) {
    let db = TestDb::on(backend).await;
    db.load(&small_market(53, 1), 1).await;
    caught_up(&db).await;
    let prefix = unique_prefix();
    let mut state = following(&db, &prefix);
    // Jobs stop after their commit, so the first is still running when the second import comes.
    state.test_pause_after_commit = true;
    let service = Service::start(&state, Duration::ZERO).await;
    until_subscribed(&prefix, 1).await;

    announce(&prefix, "import-1").await;
    let first_job = until_committed(&db, "import-1").await;
    announce(&prefix, "import-2").await;
    until_handled(&state, 2).await;
    assert!(
        jobs_of_import(&db, "import-2").await.is_empty(),
        "queued behind the running job"
    );

    // The first job ends; the queued import starts.
    let running = state.running.lock().await.take().expect("the first job");
    assert_eq!(running.job_id, first_job);
    running.handle.abort();
    let _ = running.handle.await;
    db.store
        .settle_abandoned_jobs(Some(&first_job), "test: the first job ends")
        .await
        .unwrap();
    let second_job = until_committed(&db, "import-2").await;
    assert_ne!(second_job, first_job);
    let first = db.store.get_job(&first_job).await.unwrap().unwrap();
    let second = db.store.get_job(&second_job).await.unwrap().unwrap();
    assert_eq!(first.status.as_str(), "completed");
    assert!(second.created_at >= first.end_time.unwrap(), "after it");
    service.shut_down().await;
}

on_both_stores!(an_import_announced_during_a_run_runs_after_it);

/// Issue 15 item 2: Phase 2 announced its import while no instance listened; the service finds
/// prices newer than the last completed run when it starts, and runs once for them.
async fn an_import_announced_while_the_service_was_down_is_caught_up_on_start(backend: Backend) {
    let db = TestDb::on(backend).await;
    let market = small_market(54, 1);
    db.load(&market, 1).await;
    let prefix = unique_prefix();
    announce(&prefix, "import-nobody-heard").await;
    let state = following(&db, &prefix);
    let service = Service::start(&state, Duration::ZERO).await;

    let as_of = {
        let mut tx = db.store.begin().await.unwrap();
        let latest = tx.latest_price_date().await.unwrap().expect("prices");
        tx.rollback().await.unwrap();
        latest
    };
    let catch_up = format!("catch-up:{as_of}");
    let (job_id, status, triggered_by) = until_finished(&db, &catch_up).await;
    assert_eq!(status, "completed");
    assert_eq!(triggered_by, "pipeline");
    assert_eq!(runs_of_job(&db, &job_id).await, 1);
    assert_eq!(
        state
            .pipeline
            .catch_ups
            .load(std::sync::atomic::Ordering::SeqCst),
        1
    );
    assert!(
        db.count("cache_entries").await > 0,
        "the run wrote the catalog"
    );
    service.shut_down().await;
}

on_both_stores!(an_import_announced_while_the_service_was_down_is_caught_up_on_start);

/// Issue 15 item 2, the schedule: with `[pipeline] catch_up_schedule` and no Redis at all (an
/// outage is when announcements are lost), a scheduled check finds prices no completed run
/// covered and runs once for them; checks with nothing new start nothing, and `/metrics` counts
/// the checks and names the next one.
async fn a_scheduled_check_catches_up_prices_no_run_covered_even_without_redis(backend: Backend) {
    let db = TestDb::on(backend).await;
    let market = small_market(55, 2);
    db.load(&market, 1).await;
    caught_up(&db).await;
    let every_second = CatchUpSchedule::parse("test.toml", "* * * * * *", Some("UTC")).unwrap();
    let job = JobConfig {
        catch_up_schedule: Some(every_second),
        ..JobConfig::default()
    };
    let state = app_state(&db, job, None);
    let service = Service::start(&state, Duration::ZERO).await;
    let checks = || state.pipeline.scheduled_checks.load(Ordering::SeqCst);
    let catch_ups = || state.pipeline.catch_ups.load(Ordering::SeqCst);

    until("two scheduled checks", || async { checks() >= 2 }).await;
    assert_eq!(
        db.count("cache_sync_job").await,
        0,
        "nothing new, nothing run"
    );
    assert_eq!(catch_ups(), 0);

    db.load_next(&market, 2).await;
    let catch_up = format!("catch-up:{}", market.date_of_day(2));
    let (job_id, status, triggered_by) = until_finished(&db, &catch_up).await;
    assert_eq!(status, "completed");
    assert_eq!(triggered_by, "pipeline");
    assert_eq!(runs_of_job(&db, &job_id).await, 1);
    assert_eq!(catch_ups(), 1);

    let seen = checks();
    until("two more checks", || async { checks() >= seen + 2 }).await;
    assert_eq!(db.count("cache_sync_job").await, 1, "the date ran once");
    assert_eq!(catch_ups(), 1);

    let metrics = get(&api::router(state.clone()), "/metrics").await.text();
    let value = |name: &str| -> i64 {
        metrics
            .lines()
            .find_map(|line| line.strip_prefix(&format!("{name} ")))
            .unwrap_or_else(|| panic!("{name} in {metrics}"))
            .parse()
            .unwrap()
    };
    assert!(value("cache_sync_pipeline_scheduled_checks_total") >= seen as i64 + 2);
    assert_eq!(value("cache_sync_pipeline_catch_ups_total"), 1);
    let next = value("cache_sync_pipeline_next_scheduled_check_timestamp_seconds");
    assert!(
        (next - chrono::Utc::now().timestamp()).abs() <= 2,
        "the next check is due within the second: {next}"
    );
    service.shut_down().await;
}

on_both_stores!(a_scheduled_check_catches_up_prices_no_run_covered_even_without_redis);
