//! Job records tell the truth (issue 12 item 5): a service killed between a run's commit and
//! its job's update leaves a job the next start completes with its run (found by the run
//! record, which names its job); a shutdown that aborts a job after its commit does the same;
//! the trigger's lock probe only looks, so it never makes a real run fail; a 409 names who holds
//! the lock.

use crate::helpers::{on_both_stores, run_request, small_market, Backend, TestDb, WAIT};
use crate::http::{
    app_state, assert_error, get, post, raw_request, serve_command, status_uri, stderr_lines,
    wait_for_line, Service, TRIGGER,
};
use axum::http::StatusCode;
use serde_json::json;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tickstock_cache_sync::http::{self as api, AppState};
use tickstock_cache_sync::job::{self, JobConfig, RunError};
use tickstock_cache_sync::store::LockOutcome;

/// The run record a job's run left: `(run_id, status)`.
async fn run_of_job(db: &TestDb, job_id: &str) -> Option<(i64, String)> {
    db.sql("select run_id, status from cache_sync_run where job_id = $1")
        .bind(job_id)
        .fetch_all::<(i64, String)>()
        .await
        .pop()
}

async fn a_service_killed_after_a_commit_leaves_a_job_the_restart_completes_with_its_run(
    backend: Backend,
) {
    let db = TestDb::on(backend).await;
    db.load(&small_market(41, 1), 1).await;
    let port = crate::http::free_port();
    let mut child = serve_command(
        &db,
        &[
            "--bind",
            &format!("127.0.0.1:{port}"),
            "--unauthenticated-loopback",
            "--test-pause-after-commit",
        ],
    )
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .expect("start cache-sync serve");
    let lines = stderr_lines(&mut child);
    wait_for_line(&lines, "serving on");
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    let accepted = raw_request(
        addr,
        "POST",
        TRIGGER,
        None,
        Some(r#"{"mode":"full","force":true}"#),
    )
    .await;
    assert_eq!(
        accepted.status,
        202,
        "{:?}",
        String::from_utf8_lossy(&accepted.body)
    );
    let job_id = accepted.json()["job_id"].as_str().unwrap().to_owned();
    wait_for_line(&lines, "paused after commit");
    child.kill().expect("SIGKILL");
    child.wait().unwrap();

    // What the kill left: rows changed, a committed run naming the job, the job still running.
    let (run_id, status) = run_of_job(&db, &job_id)
        .await
        .expect("the run record names the job");
    assert_eq!(status, "completed");
    assert!(db.count("cache_entries").await > 0, "the rows changed");
    let left = db.store.get_job(&job_id).await.unwrap().unwrap();
    assert_eq!(left.status.as_str(), "running");
    assert_eq!(left.run_id, None);
    // Another job the dead process left, whose run never committed. PostgreSQL's one-active-job
    // index refuses a second active job outright, so only SQLite can hold one; on PostgreSQL a
    // job that never committed is covered by `instances::killing_the_running_instance_…`.
    let second_left = backend == crate::helpers::Backend::Sqlite;
    if second_left {
        db.sql(
            "insert into cache_sync_job (job_id, mode, force, triggered_by, status)
             values ('cs-never-ran', 'full', false, 'api', 'pending')",
        )
        .execute()
        .await;
    }

    let state = app_state(&db, JobConfig::default(), None);
    let service = Service::start(&state, Duration::ZERO).await;
    let app = api::router(state.clone());
    assert_eq!(
        raw_request(service.addr, "GET", "/health", None, None)
            .await
            .status,
        200
    );
    // Settled at start, or at the next sweep when PostgreSQL had not yet ended the killed
    // process's session (and so its owner lock) when the service started.
    let settled = until_settled(&app, &job_id).await;
    assert_eq!(settled["status"], "completed", "{settled}");
    assert_eq!(settled["run_id"], run_id, "{settled}");
    assert!(settled["error_details"].is_null(), "{settled}");
    assert!(settled["end_time"].is_string(), "{settled}");
    if second_left {
        let never = get(&app, &status_uri("cs-never-ran")).await.json();
        assert_eq!(never["status"], "failed", "{never}");
        assert!(never["run_id"].is_null(), "{never}");
        assert!(never["error_details"]
            .as_str()
            .unwrap()
            .contains("restarted"));
    }
    service.shut_down().await;
}

on_both_stores!(a_service_killed_after_a_commit_leaves_a_job_the_restart_completes_with_its_run);

/// Waits (bounded) until the job is no longer pending or running, and returns its status.
async fn until_settled(app: &axum::Router, job_id: &str) -> serde_json::Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let status = get(app, &status_uri(job_id)).await.json();
        if status["status"] != "pending" && status["status"] != "running" {
            return status;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "job {job_id} was never settled: {status}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A state whose jobs stop after their commit, before recording their outcome.
fn pausing_state(db: &TestDb) -> AppState {
    let mut state = app_state(db, JobConfig::default(), None);
    state.test_pause_after_commit = true;
    state
}

/// Waits (bounded) until the job's run record exists: its run committed.
async fn until_committed(db: &TestDb, job_id: &str) -> i64 {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some((run_id, _)) = run_of_job(db, job_id).await {
            return run_id;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "job {job_id} never committed"
        );
        tokio::task::yield_now().await;
    }
}

async fn a_shutdown_that_aborts_a_job_after_its_commit_records_it_completed(backend: Backend) {
    let db = TestDb::on(backend).await;
    db.load(&small_market(42, 1), 1).await;
    let state = pausing_state(&db);
    let service = Service::start(&state, Duration::ZERO).await;
    let app = api::router(state.clone());
    let accepted = post(&app, TRIGGER, &json!({"force": true})).await;
    assert_eq!(accepted.status, StatusCode::ACCEPTED, "{}", accepted.text());
    let job_id = accepted.json()["job_id"].as_str().unwrap().to_owned();
    let run_id = until_committed(&db, &job_id).await;

    service.shut_down().await;
    let after = get(&app, &status_uri(&job_id)).await.json();
    assert_eq!(
        after["status"], "completed",
        "not reported rolled back: {after}"
    );
    assert_eq!(after["run_id"], run_id, "{after}");
}

on_both_stores!(a_shutdown_that_aborts_a_job_after_its_commit_records_it_completed);

/// Two instances on one database (issue 15 item 3): one starting while the other runs a job
/// must not settle that job, however fresh or old; once the running instance is gone, the
/// other settles the job from the run record and takes the next trigger.
async fn a_starting_service_leaves_a_live_instances_job_alone(backend: Backend) {
    let db = TestDb::on(backend).await;
    db.load(&small_market(45, 1), 1).await;
    let runner = pausing_state(&db);
    let runner_app = api::router(runner.clone());
    let accepted = post(&runner_app, TRIGGER, &json!({"force": true})).await;
    assert_eq!(accepted.status, StatusCode::ACCEPTED, "{}", accepted.text());
    let job_id = accepted.json()["job_id"].as_str().unwrap().to_owned();
    let run_id = until_committed(&db, &job_id).await;

    // The second instance starts (its first answer means its start-up settling is done).
    let other = app_state(&db, JobConfig::default(), None);
    let service = Service::start(&other, Duration::ZERO).await;
    let other_app = api::router(other.clone());
    assert_eq!(
        raw_request(service.addr, "GET", "/health", None, None)
            .await
            .status,
        200
    );
    let left = get(&other_app, &status_uri(&job_id)).await.json();
    assert_eq!(left["status"], "running", "a live instance's job: {left}");
    let refused = post(&other_app, TRIGGER, &json!({"force": true})).await;
    assert_error(&refused, StatusCode::CONFLICT, "already_running");
    let still = get(&other_app, &status_uri(&job_id)).await.json();
    assert_eq!(
        still["status"], "running",
        "a refused trigger settles nothing live: {still}"
    );

    // The runner goes away (its job task, its router and its owner lock with them).
    let running = runner.running.lock().await.take().expect("the paused job");
    running.handle.abort();
    let _ = running.handle.await;
    drop(runner_app);
    drop(runner);
    let settled = until_settled(&other_app, &job_id).await;
    assert_eq!(settled["status"], "completed", "{settled}");
    assert_eq!(settled["run_id"], run_id, "{settled}");
    let next = post(&other_app, TRIGGER, &json!({"force": true})).await;
    assert_eq!(next.status, StatusCode::ACCEPTED, "{}", next.text());
    let next_id = next.json()["job_id"].as_str().unwrap().to_owned();
    let done = until_settled(&other_app, &next_id).await;
    assert_eq!(done["status"], "completed", "{done}");
    service.shut_down().await;
}

on_both_stores!(a_starting_service_leaves_a_live_instances_job_alone);

async fn the_lock_probe_only_looks_and_never_makes_a_run_fail(backend: Backend) {
    let db = TestDb::on(backend).await;
    db.load(&small_market(43, 1), 1).await;
    assert_eq!(db.store.writer_lock_holder().await.unwrap(), None);

    // Probes in a tight loop while runs start one after another: no run ever finds the lock
    // taken (the old probe took it for an instant, and a run starting then failed).
    let stop = Arc::new(AtomicBool::new(false));
    let probes = Arc::new(AtomicUsize::new(0));
    let prober = {
        let (store, stop, probes) = (db.store.clone(), stop.clone(), probes.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                store.writer_lock_holder().await.expect("probe");
                probes.fetch_add(1, Ordering::SeqCst);
                tokio::task::yield_now().await;
            }
        })
    };
    for round in 0..12 {
        let outcome = job::run(db.store.as_ref(), &JobConfig::default(), &run_request(true)).await;
        assert!(
            !matches!(outcome, Err(RunError::LockHeld)),
            "run {round} found the lock taken by a probe"
        );
        outcome.unwrap_or_else(|e| panic!("run {round}: {e}"));
    }
    stop.store(true, Ordering::SeqCst);
    prober.await.unwrap();
    assert!(probes.load(Ordering::SeqCst) > 0, "the probes ran");

    // A run holding the lock is seen, and named.
    let mut holder = db.store.begin().await.unwrap();
    assert_eq!(
        holder.try_lock_writer().await.unwrap(),
        LockOutcome::Acquired
    );
    let seen = db.store.writer_lock_holder().await.unwrap().expect("seen");
    let expected = match backend {
        Backend::Postgres => "PostgreSQL session",
        Backend::Sqlite => "process",
    };
    assert!(seen.contains(expected), "{seen}");
    holder.rollback().await.unwrap();
    assert_eq!(db.store.writer_lock_holder().await.unwrap(), None);

    // A write outside any run (job bookkeeping, an operator's statement) is not a run.
    if backend == Backend::Sqlite {
        let writer = db
            .database
            .transaction(tickstock_cache_sync::store::Writes::Now)
            .await
            .unwrap();
        assert_eq!(db.store.writer_lock_holder().await.unwrap(), None);
        writer.rollback().await.unwrap();
    }
}

on_both_stores!(the_lock_probe_only_looks_and_never_makes_a_run_fail);

async fn a_409_names_the_holder_this_services_job_or_a_run_outside_it(backend: Backend) {
    let db = TestDb::on(backend).await;
    db.load(&small_market(44, 1), 1).await;
    let state = pausing_state(&db);
    let app = api::router(state.clone());

    // This service's own job (paused after its commit, so it holds no lock).
    let accepted = post(&app, TRIGGER, &json!({"force": true})).await;
    assert_eq!(accepted.status, StatusCode::ACCEPTED, "{}", accepted.text());
    let job_id = accepted.json()["job_id"].as_str().unwrap().to_owned();
    until_committed(&db, &job_id).await;
    let refused = post(&app, TRIGGER, &json!({"force": true})).await;
    assert_error(&refused, StatusCode::CONFLICT, "already_running");
    assert!(
        refused
            .text()
            .contains(&format!("job {job_id} of this service")),
        "{}",
        refused.text()
    );
    let running = state.running.lock().await.take().expect("the paused job");
    running.handle.abort();
    let _ = running.handle.await;
    db.store
        .settle_abandoned_jobs(Some(&job_id), "test over")
        .await
        .unwrap();

    // A run outside the API.
    let mut holder = db.store.begin().await.unwrap();
    assert_eq!(
        holder.try_lock_writer().await.unwrap(),
        LockOutcome::Acquired
    );
    let refused = post(&app, TRIGGER, &json!({"force": true})).await;
    assert_error(&refused, StatusCode::CONFLICT, "already_running");
    let message = refused.json()["error"]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(message.contains("a run outside the API"), "{message}");
    let named = match backend {
        Backend::Postgres => "PostgreSQL session",
        Backend::Sqlite => "a run in process",
    };
    assert!(message.contains(named), "{message}");
    holder.rollback().await.unwrap();
    assert!(state.running.lock().await.is_none(), "no job was started");
}

on_both_stores!(a_409_names_the_holder_this_services_job_or_a_run_outside_it);
