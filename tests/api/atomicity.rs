//! One writer at a time, all-or-nothing runs and an append-only log (SPEC §7, §10), shown
//! against a real database and a real process killed mid-transaction.

use crate::helpers::{
    cache_sync_cli, cache_sync_command, live_hashes, run_request, small_market, TestDb,
};
use sqlx::{Connection, PgConnection};
use std::io::BufRead;
use std::process::Stdio;
use tickstock_cache_sync::job::{JobConfig, JobError};

/// The value of the private `WRITER_LOCK_KEY` in src/store/postgres.rs.
const WRITER_LOCK_KEY: i64 = 0x7C5E_5EED_2026_0205;

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
        let rows: Vec<String> =
            sqlx::query_scalar(&format!("select t::text from {table} t order by {order}"))
                .fetch_all(db.pool())
                .await
                .expect("read a table");
        state.push((table, rows));
    }
    state
}

async fn connect(db: &TestDb) -> PgConnection {
    PgConnection::connect(&db.url)
        .await
        .expect("a second session")
}

/// Whether the writer lock is free right now (taken and released at once if so).
async fn writer_lock_is_free(conn: &mut PgConnection) -> bool {
    let mut tx = conn.begin().await.unwrap();
    let free: bool = sqlx::query_scalar("select pg_try_advisory_xact_lock($1)")
        .bind(WRITER_LOCK_KEY)
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    free
}

#[tokio::test]
async fn a_run_while_another_session_holds_the_writer_lock_fails_with_lock_held_and_writes_nothing()
{
    let db = TestDb::new().await;
    db.load(&small_market(201, 1), 1).await;
    let before = full_state(&db).await;

    let mut holder = connect(&db).await;
    let mut held = holder.begin().await.unwrap();
    let got: bool = sqlx::query_scalar("select pg_try_advisory_xact_lock($1)")
        .bind(WRITER_LOCK_KEY)
        .fetch_one(&mut *held)
        .await
        .unwrap();
    assert!(got, "the test session takes the writer lock");

    for force in [false, true] {
        let err = db
            .try_run(&JobConfig::default(), run_request(force))
            .await
            .expect_err("a second writer is turned away");
        assert!(matches!(err, JobError::LockHeld), "{err:?}");
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

#[tokio::test]
async fn a_run_killed_before_commit_leaves_the_database_exactly_as_before_and_the_next_run_converges(
) {
    let market = small_market(202, 2);
    let db = TestDb::new().await;
    db.load(&market, 1).await;
    db.run().await;
    db.load_next(&market, 2).await;
    assert!(db.plan().await.has_changes(), "day 2 changes some entries");
    let before = full_state(&db).await;

    let mut child = cache_sync_command(&db, &["run", "--test-pause-before-commit"])
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
            break;
        }
    }

    // The paused run holds the writer lock inside a transaction that has written its deltas.
    let mut probe = connect(&db).await;
    assert!(!writer_lock_is_free(&mut probe).await);
    let writing: i64 = sqlx::query_scalar(
        "select count(*) from pg_stat_activity
         where datname = current_database() and pid <> pg_backend_pid()
           and state = 'idle in transaction' and backend_xid is not null",
    )
    .fetch_one(&mut probe)
    .await
    .unwrap();
    assert_eq!(writing, 1, "one open transaction with writes");

    child.kill().expect("SIGKILL");
    let status = child.wait().unwrap();
    assert!(!status.success());

    // Wait (in the server, not with a sleep) until the killed session's transaction is gone:
    // its writer lock is released when its backend has rolled back.
    sqlx::raw_sql("set lock_timeout = '60s'")
        .execute(&mut probe)
        .await
        .unwrap();
    let mut tx = probe.begin().await.unwrap();
    sqlx::query("select pg_advisory_xact_lock($1)")
        .bind(WRITER_LOCK_KEY)
        .execute(&mut *tx)
        .await
        .expect("the killed run's lock is released");
    tx.rollback().await.unwrap();

    assert_eq!(
        full_state(&db).await,
        before,
        "every row of cache_entries and of the log is as before the killed run"
    );

    let report = db.run().await;
    assert!(report.created + report.updated + report.deleted > 0);
    let fresh = TestDb::new().await;
    fresh.load(&market, 2).await;
    fresh.run().await;
    assert_eq!(live_hashes(&db).await, live_hashes(&fresh).await);
    assert_eq!(
        db.count("cache_sync_run").await,
        2,
        "the killed run left no record"
    );
}

#[tokio::test]
async fn the_audit_log_refuses_updates_deletes_and_truncates_in_the_schema() {
    let db = TestDb::new().await;
    db.load(&small_market(203, 1), 1).await;
    db.run().await;
    assert!(db.count("cache_sync_event").await > 0);
    let before = full_state(&db).await;
    for sql in [
        "update cache_sync_event set op = 'x'",
        "delete from cache_sync_run",
        "truncate cache_sync_event",
        "delete from cache_sync_event",
        "update cache_sync_run set status = 'failed'",
        "truncate cache_sync_run cascade",
    ] {
        let err = sqlx::query(sql)
            .execute(db.pool())
            .await
            .expect_err(sql)
            .to_string();
        assert!(err.contains("append-only"), "{sql}: {err}");
    }
    assert_eq!(full_state(&db).await, before);
}
