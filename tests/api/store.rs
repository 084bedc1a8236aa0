//! The store's roles end to end on both stores (formerly the SQLite store's own unit tests):
//! migrations, runs, replay, rollback, the outbox, API jobs, listings, the append-only log and
//! the single-writer lock.

use crate::helpers::{on_both_stores, run_request, Backend, TestDb};
use chrono::{TimeZone, Utc};
use std::collections::BTreeMap;
use tickstock_cache_sync::devtools::market::{FixtureParams, SyntheticMarket};
use tickstock_cache_sync::domain::fingerprint::hash_value;
use tickstock_cache_sync::domain::types::{EntryKey, RunId};
use tickstock_cache_sync::history;
use tickstock_cache_sync::job::{self, JobConfig, PlanRequest, RunError};
use tickstock_cache_sync::report::RunOutcome;
use tickstock_cache_sync::store::{
    EventFilter, JobRecord, JobStatus, LockOutcome, NewRun, RunStatus, SettledJobs, SqlStore,
    Store, Trigger,
};

/// The live rows of the environment, by identity, as value hashes.
async fn live(db: &TestDb) -> BTreeMap<EntryKey, String> {
    let rows: Vec<(String, String, String, String)> = db
        .sql(
            "select type, name, key, cast(value as text) from cache_entries
             where environment = 'DEFAULT' order by id",
        )
        .fetch_all()
        .await;
    rows.into_iter()
        .map(|(t, n, k, v)| {
            let value: serde_json::Value = serde_json::from_str(&v).expect("stored JSON");
            (EntryKey::new(t, n, k), hash_value(&value).to_hex())
        })
        .collect()
}

fn market() -> SyntheticMarket {
    SyntheticMarket::generate(&FixtureParams {
        stocks: 200,
        etfs: 40,
        days: 3,
        seed: 1,
        nasty: false,
        renames: 0,
    })
}

/// Waits (polling, up to five seconds) until `store` can take the writer lock.
async fn wait_for_lock(store: &dyn Store) {
    for _ in 0..500 {
        let mut tx = store.begin().await.expect("begin");
        if tx.try_lock_writer().await.expect("lock") == LockOutcome::Acquired {
            // Committed (only the lock), so the lock is released before this returns.
            tx.commit().await.expect("commit");
            return;
        }
        drop(tx);
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("the writer lock was never released");
}

async fn the_job_runs_replays_rolls_back_and_keeps_its_log_on_one_database(backend: Backend) {
    let db = TestDb::on(backend).await;
    db.store
        .migrate()
        .await
        .expect("migrate again (idempotent)");
    let store = db.store.as_ref();
    let market = market();
    db.load(&market, 1).await;
    // A checkpoint every second run, so replay goes through checkpoints too.
    let config = JobConfig {
        checkpoint_every: 2,
        ..JobConfig::default()
    };

    // First run: creates the catalog.
    let first = job::run(store, &config, &run_request(false))
        .await
        .expect("first run");
    assert!(first.created > 0, "the first run creates entries");
    let mut after: BTreeMap<RunId, BTreeMap<EntryKey, String>> = BTreeMap::new();
    after.insert(first.run_id.expect("run id"), live(&db).await);
    assert_eq!(after.values().next().unwrap().len(), first.created);

    // Second run on the same input: writes nothing but its run record.
    let events_before = db.count("cache_sync_event").await;
    let stamps_sql = "select cast(updated_at as text) from cache_entries order by id";
    let stamps: Vec<String> = db.sql(stamps_sql).scalars().await;
    let second = job::run(store, &config, &run_request(false))
        .await
        .expect("second run");
    assert_eq!((second.created, second.updated, second.deleted), (0, 0, 0));
    assert!(second.drift.is_empty(), "no drift: {:?}", second.drift);
    assert_eq!(db.count("cache_sync_event").await, events_before);
    let stamps_after: Vec<String> = db.sql(stamps_sql).scalars().await;
    assert_eq!(stamps, stamps_after, "no row was rewritten");
    after.insert(second.run_id.expect("run id"), live(&db).await);

    // Day 2: some entries change.
    db.load_next(&market, 2).await;
    let third = job::run(store, &config, &run_request(true))
        .await
        .expect("day 2 run");
    assert!(
        third.created + third.updated + third.deleted > 0,
        "day 2 changes something"
    );
    after.insert(third.run_id.expect("run id"), live(&db).await);

    // Replay at every run reproduces the live rows as they were after it.
    for (run_id, expected) in &after {
        let (state, _) = history::replay_state(store, "DEFAULT", *run_id, None)
            .await
            .expect("replay");
        let replayed: BTreeMap<EntryKey, String> = state
            .iter()
            .map(|(k, (_, v))| (k.clone(), hash_value(v).to_hex()))
            .collect();
        assert_eq!(&replayed, expected, "replay at run {run_id}");
    }

    assert!(
        db.count("cache_sync_checkpoint").await > 0,
        "checkpoints written"
    );

    // Events filtered by a ticker mention it.
    let all = store
        .read_events("DEFAULT", &EventFilter::default())
        .await
        .expect("events");
    let ticker = all
        .iter()
        .find_map(|e| e.change.added_tickers().into_iter().next())
        .expect("an added ticker");
    let mentioning = store
        .read_events(
            "DEFAULT",
            &EventFilter {
                symbol: Some(ticker.clone()),
                ..Default::default()
            },
        )
        .await
        .expect("events by symbol");
    assert!(!mentioning.is_empty() && mentioning.len() < all.len());
    assert!(mentioning
        .iter()
        .all(|e| e.change.added_tickers().contains(&ticker)
            || e.change.removed_tickers().contains(&ticker)));

    // Drift: an edit outside the job is detected and reconciled.
    db.exec("update cache_entries set value = '[]' where id = (select min(id) from cache_entries)")
        .await;
    let fixed = job::run(store, &config, &run_request(true))
        .await
        .expect("drift run");
    assert_eq!(fixed.drift.len(), 1, "the edited row is drift");
    assert_eq!(&live(&db).await, after.values().last().unwrap());

    // Rollback to the first run restores its state, as a new run.
    let first_id = first.run_id.unwrap();
    let rolled = job::rollback(store, &config, first_id, &run_request(true))
        .await
        .expect("rollback");
    assert!(rolled.run_id.unwrap() > third.run_id.unwrap());
    assert_eq!(&live(&db).await, &after[&first_id]);

    // The outbox holds the change events.
    let pending = store.pending_outbox(10_000).await.expect("outbox");
    assert!(!pending.is_empty(), "the outbox has rows");
    store
        .mark_published(&[pending[0].outbox_id])
        .await
        .expect("mark");
    assert_eq!(
        store.pending_outbox(10_000).await.unwrap().len(),
        pending.len() - 1
    );

    // The log refuses edits.
    for statement in [
        "update cache_sync_event set version = version + 1",
        "delete from cache_sync_event",
        "update cache_sync_run set error = 'x'",
        "delete from cache_sync_run",
    ] {
        let err = db.sql(statement).try_execute().await.expect_err(statement);
        assert!(
            err.to_string().contains("append-only"),
            "{statement}: {err}"
        );
    }

    // Reads of the log and the listings work.
    let runs = store.read_runs("DEFAULT", 100, 0).await.expect("runs");
    assert_eq!(runs.len(), 5);
    assert_eq!(runs[0].trigger, Trigger::Rollback);
    assert_eq!(
        store
            .run_at(
                "DEFAULT",
                Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap()
            )
            .await
            .unwrap(),
        rolled.run_id
    );
    let universes = store.universes("DEFAULT").await.expect("universes");
    assert_eq!(universes.len(), after[&first_id].len());
    assert!(universes.iter().any(|u| u.symbol_count > 0));
    let metrics = store.metrics("DEFAULT").await.expect("metrics");
    assert_eq!(metrics.duration_count, 5);
    // API jobs.
    let job_record = JobRecord {
        job_id: "j1".to_owned(),
        mode: "full".to_owned(),
        force: false,
        triggered_by: Trigger::Test,
        status: JobStatus::Pending,
        created_at: Utc::now(),
        start_time: None,
        end_time: None,
        duration_seconds: None,
        error_details: None,
        progress: None,
        run_id: None,
        plan_id: None,
        owner: None,
        import_run_id: None,
    };
    assert!(store.create_job(&job_record).await.unwrap());
    let second_job = JobRecord {
        job_id: "j2".to_owned(),
        ..job_record.clone()
    };
    assert!(
        !store.create_job(&second_job).await.unwrap(),
        "one job at a time"
    );
    store
        .update_job("j1", JobStatus::Running, None, None)
        .await
        .unwrap();
    store
        .job_progress("j1", &serde_json::json!({"step": "planning"}))
        .await
        .unwrap();
    store
        .update_job("j1", JobStatus::Completed, None, Some(5))
        .await
        .unwrap();
    let got = store.get_job("j1").await.unwrap().expect("job");
    assert_eq!(got.status, JobStatus::Completed);
    assert_eq!(got.run_id, Some(5));
    assert!(got.duration_seconds.is_some_and(|d| d >= 0.0));
    assert_eq!(got.progress, Some(serde_json::json!({"step": "planning"})));
    let (jobs, total) = store.list_jobs(10, 0).await.unwrap();
    assert_eq!((jobs.len(), total), (1, 1));
    let stats = store
        .job_stats(Utc::now() - chrono::Duration::hours(1))
        .await
        .unwrap();
    assert_eq!((stats.total, stats.completed), (1, 1));
    assert!(stats.last_completed_at.is_some());
    assert_eq!(
        store.settle_abandoned_jobs(None, "restart").await.unwrap(),
        SettledJobs::default()
    );

    let mut tx = store.begin().await.unwrap();
    let constraints = tx.unique_constraints().await.unwrap();
    drop(tx);
    assert_eq!(constraints.len(), 1);
    assert_eq!(
        constraints[0].columns,
        ["type", "name", "key", "environment"]
    );
    assert!(store.widen_unique(false).await.unwrap().is_empty());
}

on_both_stores!(the_job_runs_replays_rolls_back_and_keeps_its_log_on_one_database);

async fn a_second_writer_gets_lock_held_and_a_dropped_transaction_rolls_back(backend: Backend) {
    let db = TestDb::on(backend).await;
    db.load(&market(), 1).await;
    let holder = db.store.as_ref();
    let other: Box<dyn Store> = Box::new(
        match backend {
            Backend::Postgres => SqlStore::connect_postgres(&db.url).await,
            Backend::Sqlite => SqlStore::open_sqlite(&db.url).await,
        }
        .expect("a second handle on the same database"),
    );

    let mut tx = holder.begin().await.expect("begin");
    assert_eq!(tx.try_lock_writer().await.unwrap(), LockOutcome::Acquired);
    let started = std::time::Instant::now();
    let err = job::run(other.as_ref(), &JobConfig::default(), &run_request(false))
        .await
        .expect_err("the lock is held");
    assert!(matches!(err, RunError::LockHeld), "{err}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "no waiting"
    );
    // A plan only reads: it is not blocked by the writer.
    job::plan(
        other.as_ref(),
        &JobConfig::default(),
        &PlanRequest::default(),
        chrono::NaiveDate::from_ymd_opt(2026, 3, 2).unwrap(),
    )
    .await
    .expect("plan alongside a writer");
    drop(tx);
    wait_for_lock(other.as_ref()).await;

    // A transaction dropped without commit rolls back: the appended run is gone.
    let mut tx = other.begin().await.unwrap();
    assert_eq!(tx.try_lock_writer().await.unwrap(), LockOutcome::Acquired);
    let now = Utc::now();
    let record = NewRun {
        trigger: Trigger::Test,
        families: "all".to_owned(),
        environment: "DEFAULT".to_owned(),
        started_at: now,
        finished_at: now,
        outcome: RunOutcome {
            run_id: None,
            status: RunStatus::Completed,
            forced: false,
            as_of: now.date_naive(),
            config_hash: hash_value(&serde_json::json!({})),
            config_changed: false,
            families: Vec::new(),
            created: 0,
            updated: 0,
            deleted: 0,
            unchanged: 0,
            summary: BTreeMap::new(),
            reasons: BTreeMap::new(),
            refusals: Vec::new(),
            drift: Vec::new(),
            warnings: Vec::new(),
            input: Default::default(),
            timings: Default::default(),
            duration_seconds: 0.0,
        },
        error: None,
        job_id: "test".to_owned(),
    };
    let appended = tx.append_run(&record, &[], &[]).await.expect("append");
    assert_eq!(appended.run_id, RunId(1));
    drop(tx);
    assert_eq!(db.count("cache_sync_run").await, 0);

    // Once released, the other handle runs. sqlx rolls a dropped transaction back in the
    // background, so wait for the lock to be free first.
    wait_for_lock(other.as_ref()).await;
    let report = job::run(other.as_ref(), &JobConfig::default(), &run_request(false))
        .await
        .expect("run after release");
    assert!(report.created > 0);
    assert_eq!(db.count("cache_sync_run").await, 1);
}

on_both_stores!(a_second_writer_gets_lock_held_and_a_dropped_transaction_rolls_back);
