//! One writer at a time, all-or-nothing runs and an append-only log (SPEC §7, §10), shown
//! against a real database and a real process killed mid-transaction.

use crate::helpers::{
    cache_sync_cli, cache_sync_command, live_hashes, on_both_stores, run_request, small_market,
    Backend, TestDb,
};
use std::io::BufRead;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tickstock_cache_sync::job::{JobConfig, RunError};
use tickstock_cache_sync::store::{LockOutcome, RunTx};

/// Every row of every table a run writes, as text, in a stable order.
async fn full_state(db: &TestDb) -> Vec<(&'static str, Vec<String>)> {
    let tables = [
        ("cache_entries", "id"),
        ("cache_sync_run", "run_id"),
        ("cache_sync_event", "seq"),
        (
            "cache_sync_entry_head",
            "environment, entry_type, entry_name, entry_key",
        ),
    ];
    let mut state = Vec::new();
    for (table, order) in tables {
        state.push((table, db.table_text(table, "true", order).await));
    }
    state
}

/// A transaction on a connection of its own holding the writer lock, or `None` when another
/// session has it.
async fn take_writer_lock(db: &TestDb) -> Option<Box<dyn RunTx>> {
    let mut tx = db.store.begin().await.expect("a second session");
    match tx.try_lock_writer().await.expect("ask for the lock") {
        LockOutcome::Acquired => Some(tx),
        LockOutcome::HeldElsewhere => None,
    }
}

/// Starts `cache-sync run` and waits until it has written its deltas, events and run record
/// and paused before committing, holding the writer lock. The caller kills and waits for it.
#[allow(clippy::zombie_processes)]
fn start_a_run_paused_before_commit(db: &TestDb) -> std::process::Child {
    let mut child = cache_sync_command(db, &["run", "--test-pause-before-commit"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start cache-sync");
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        let n = stderr.read_line(&mut line).expect("read stderr");
        if n == 0 {
            let status = child.wait();
            panic!("cache-sync ended before pausing ({status:?}):\n{seen}");
        }
        seen.push_str(&line);
        if line.contains("paused before commit") {
            return child;
        }
    }
}

/// SIGKILLs a paused run and waits until its lock is gone (PostgreSQL notices the closed
/// socket; SQLite's file locks die with the process).
async fn kill_and_wait_for_the_lock(db: &TestDb, mut child: std::process::Child) {
    child.kill().expect("SIGKILL");
    let status = child.wait().unwrap();
    assert!(!status.success());
    let deadline = Instant::now() + Duration::from_secs(60);
    while db.store.writer_lock_holder().await.unwrap().is_some() {
        assert!(
            Instant::now() < deadline,
            "the killed run's lock is released"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn a_run_while_another_session_holds_the_writer_lock_fails_with_lock_held_and_writes_nothing(
    backend: Backend,
) {
    let db = TestDb::on(backend).await;
    db.load(&small_market(201, 1), 1).await;
    let before = full_state(&db).await;

    let held = take_writer_lock(&db)
        .await
        .expect("the test session takes the writer lock");

    for force in [false, true] {
        let err = db
            .try_run(&JobConfig::default(), run_request(force))
            .await
            .expect_err("a second writer is turned away");
        assert!(matches!(err, RunError::LockHeld), "{err:?}");
        assert!(err.to_string().contains("lock"), "{err}");
    }
    assert_eq!(
        full_state(&db).await,
        before,
        "nothing written, not even a run record"
    );

    let out = cache_sync_cli(&db, &["run"]);
    let stderr = String::from_utf8_lossy(&out.stderr).to_lowercase();
    assert_eq!(out.status.code(), Some(4), "stderr: {stderr}");
    assert!(
        stderr.contains("already") || stderr.contains("lock"),
        "a clear message: {stderr}"
    );
    assert_eq!(full_state(&db).await, before);

    // Planning only reads: the lock does not stop it.
    assert!(db.plan().await.has_changes());

    held.rollback().await.unwrap();
    let report = db.run().await;
    assert!(report.created > 0);
    assert_eq!(db.count("cache_sync_run").await, 1);
}

on_both_stores!(
    a_run_while_another_session_holds_the_writer_lock_fails_with_lock_held_and_writes_nothing
);

async fn a_run_killed_before_commit_leaves_the_database_exactly_as_before_and_the_next_run_converges(
    backend: Backend,
) {
    let market = small_market(202, 2);
    let db = TestDb::on(backend).await;
    db.load(&market, 1).await;
    db.run().await;
    db.load_next(&market, 2).await;
    assert!(db.plan().await.has_changes(), "day 2 changes some entries");
    let before = full_state(&db).await;

    let child = start_a_run_paused_before_commit(&db);
    // The paused run holds the writer lock inside a transaction that has written its deltas.
    assert!(db.store.writer_lock_holder().await.unwrap().is_some());
    if backend == Backend::Postgres {
        let writing: i64 = db
            .sql(
                "select count(*) from pg_stat_activity
                 where datname = current_database() and pid <> pg_backend_pid()
                   and state = 'idle in transaction' and backend_xid is not null",
            )
            .scalar()
            .await;
        assert_eq!(writing, 1, "one open transaction with writes");
    }

    kill_and_wait_for_the_lock(&db, child).await;

    assert_eq!(
        full_state(&db).await,
        before,
        "every row of cache_entries and of the log is as before the killed run"
    );

    let report = db.run().await;
    assert!(report.created + report.updated + report.deleted > 0);
    let fresh = TestDb::on(backend).await;
    fresh.load(&market, 2).await;
    fresh.run().await;
    assert_eq!(live_hashes(&db).await, live_hashes(&fresh).await);
    assert_eq!(
        db.count("cache_sync_run").await,
        2,
        "the killed run left no record"
    );
}

on_both_stores!(
    a_run_killed_before_commit_leaves_the_database_exactly_as_before_and_the_next_run_converges
);

async fn the_audit_log_refuses_updates_deletes_and_truncates_in_the_schema(backend: Backend) {
    let db = TestDb::on(backend).await;
    db.load(&small_market(203, 1), 1).await;
    db.run().await;
    assert!(db.count("cache_sync_event").await > 0);
    let before = full_state(&db).await;
    let mut statements = vec![
        "update cache_sync_event set op = 'x'",
        "delete from cache_sync_run",
        "delete from cache_sync_event",
        "update cache_sync_run set status = 'failed'",
    ];
    if backend == Backend::Postgres {
        // SQLite has no TRUNCATE: its unqualified DELETE fires the row triggers.
        statements.extend([
            "truncate cache_sync_event",
            "truncate cache_sync_run cascade",
        ]);
    }
    for sql in statements {
        let err = db.sql(sql).try_execute().await.expect_err(sql).to_string();
        assert!(err.contains("append-only"), "{sql}: {err}");
    }
    assert_eq!(full_state(&db).await, before);
}

on_both_stores!(the_audit_log_refuses_updates_deletes_and_truncates_in_the_schema);

/// `1..=n` when `values` (ascending) has no gap.
fn assert_gapless(what: &str, values: &[i64]) {
    let expected: Vec<i64> = (1..=values.len() as i64).collect();
    assert_eq!(values, expected, "{what} has no gap");
}

async fn killed_and_aborted_runs_leave_no_gap_in_seq_or_run_ids(backend: Backend) {
    let market = small_market(204, 2);
    let db = TestDb::on(backend).await;
    db.load(&market, 1).await;
    let day1 = db.run().await;
    db.load_next(&market, 2).await;

    // Two runs killed after writing their events and record, and a transaction that appended a
    // run record and rolled back (each burnt sequence numbers before ids were `max + 1`).
    for _ in 0..2 {
        let child = start_a_run_paused_before_commit(&db);
        kill_and_wait_for_the_lock(&db, child).await;
    }
    let mut tx = take_writer_lock(&db).await.expect("the lock is free");
    let record = tickstock_cache_sync::store::NewRun {
        trigger: tickstock_cache_sync::store::Trigger::Test,
        families: "all".to_owned(),
        environment: "DEFAULT".to_owned(),
        started_at: chrono::Utc::now(),
        finished_at: chrono::Utc::now(),
        outcome: day1.outcome.clone(),
        error: None,
        job_id: "aborted-in-test".to_owned(),
    };
    tx.append_run(&record, &[], &[]).await.unwrap();
    tx.rollback().await.unwrap();

    let report = db.run().await;
    assert!(report.created + report.updated + report.deleted > 0);
    let seqs: Vec<i64> = db
        .sql("select seq from cache_sync_event order by seq")
        .scalars()
        .await;
    assert_gapless("seq", &seqs);
    let runs: Vec<i64> = db
        .sql("select run_id from cache_sync_run order by run_id")
        .scalars()
        .await;
    assert_gapless("run_id", &runs);
    assert_eq!(runs.len(), 2, "the killed and aborted runs left no record");
}

on_both_stores!(killed_and_aborted_runs_leave_no_gap_in_seq_or_run_ids);
