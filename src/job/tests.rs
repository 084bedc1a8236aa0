//! The job's order of operations on the in-memory event log: what is read, written, committed
//! and rolled back, and when, without a database.

mod memory_log;

use super::{plan, run, JobConfig, PlanRequest, RunError, RunRequest};
use crate::domain::market::{LatestClose, MarketSnapshot, SymbolRow};
use crate::domain::types::Family;
use crate::report::{RunStatus, Trigger};
use crate::store::{EventLog, LockOutcome};
use chrono::{NaiveDate, TimeZone, Utc};
use memory_log::{Contents, MemoryLog};

fn day(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 3, d).expect("a March date")
}

/// `stocks` common stocks in two sectors, each with a close on `as_of`.
fn market(as_of: NaiveDate, stocks: i64) -> MarketSnapshot {
    let symbols: Vec<SymbolRow> = (1..=stocks)
        .map(|i| SymbolRow {
            symbol: format!("S{i:03}"),
            name: Some(format!("Stock {i}")),
            kind: Some("CS".to_owned()),
            active: Some(true),
            market_cap: Some(i * 1_000_000_000),
            weighted_shares_outstanding: Some(i * 10_000_000),
            primary_exchange: Some("XNAS".to_owned()),
            market: Some("stocks".to_owned()),
            sector: Some(
                if i % 2 == 0 {
                    "Technology"
                } else {
                    "Healthcare"
                }
                .to_owned(),
            ),
            industry: Some(if i % 2 == 0 { "Software" } else { "Biotech" }.to_owned()),
            list_date: NaiveDate::from_ymd_opt(2020, 1, 2),
            etf_type: None,
            issuer: None,
            aum_millions: None,
            ..SymbolRow::default()
        })
        .collect();
    let closes = (1..=stocks)
        .map(|i| {
            Some(LatestClose {
                date: as_of,
                close: 100.0 + i as f64,
            })
        })
        .collect();
    MarketSnapshot {
        as_of,
        symbols,
        closes,
        ..MarketSnapshot::default()
    }
}

fn log_with_market() -> MemoryLog {
    MemoryLog::with(Contents {
        market: market(day(2), 40),
        latest_price_date: Some(day(2)),
        ..Contents::default()
    })
}

fn request() -> RunRequest {
    RunRequest {
        plan: PlanRequest::default(),
        force: false,
        trigger: Trigger::Test,
        now: Utc.with_ymd_and_hms(2026, 3, 2, 22, 0, 0).unwrap(),
        pause_before_commit: false,
        job_id: "test".to_owned(),
        progress: None,
        expect_plan: None,
    }
}

fn position(journal: &[&str], call: &str) -> usize {
    journal
        .iter()
        .position(|c| *c == call)
        .unwrap_or_else(|| panic!("{call} in {journal:?}"))
}

#[tokio::test]
async fn a_run_locks_before_it_reads_and_commits_after_its_events_are_queued() {
    let log = log_with_market();
    let report = run(&log, &JobConfig::default(), &request())
        .await
        .expect("a first run");
    assert!(report.created > 0);
    let journal = log.journal();
    assert_eq!(&journal[..2], ["begin", "try_lock_writer"]);
    let lock = position(&journal, "try_lock_writer");
    for read in [
        "load_config_rows",
        "load_market",
        "load_rows",
        "entry_heads",
    ] {
        assert!(
            lock < position(&journal, read),
            "{read} after the lock: {journal:?}"
        );
    }
    let appended = position(&journal, "append_run");
    assert!(
        appended < position(&journal, "append_outbox"),
        "{journal:?}"
    );
    assert_eq!(journal.last(), Some(&"commit"), "{journal:?}");
    let contents = log.contents();
    assert_eq!(contents.rows.len(), report.created);
    assert_eq!(contents.runs.len(), 1);
    assert!(!contents.outbox.is_empty());
    assert!(!log.writer_held(), "the lock ends with the transaction");
}

#[tokio::test]
async fn a_run_while_another_holds_the_lock_reads_nothing_and_writes_nothing() {
    let log = log_with_market();
    let mut holder = log.begin().await.unwrap();
    assert_eq!(
        holder.try_lock_writer().await.unwrap(),
        LockOutcome::Acquired
    );
    log.clear_journal();
    let error = run(&log, &JobConfig::default(), &request())
        .await
        .expect_err("the lock is held");
    assert!(matches!(error, RunError::LockHeld), "{error}");
    assert_eq!(log.journal(), ["begin", "try_lock_writer", "rollback"]);
    holder.rollback().await.unwrap();
    assert!(log.contents().runs.is_empty());
}

#[tokio::test]
async fn a_refused_run_rolls_back_first_and_then_appends_only_its_record() {
    let log = log_with_market();
    let mut stale = request();
    // Ten days older than the latest prices: the stale-input guard refuses.
    stale.plan.as_of = Some(NaiveDate::from_ymd_opt(2026, 2, 20).unwrap());
    let error = run(&log, &JobConfig::default(), &stale)
        .await
        .expect_err("refused");
    let RunError::Refused { run_id, report, .. } = &error else {
        panic!("a refusal: {error}");
    };
    assert_eq!(report.status, RunStatus::Refused);
    let journal = log.journal();
    assert!(!journal.contains(&"append_run"), "{journal:?}");
    assert_eq!(
        &journal[journal.len() - 2..],
        ["rollback", "append_run_record"]
    );
    let contents = log.contents();
    assert!(contents.rows.is_empty() && contents.events.is_empty());
    assert_eq!(contents.runs.len(), 1);
    assert_eq!(contents.runs[0].0, *run_id);
    assert_eq!(contents.runs[0].1.outcome.status, RunStatus::Refused);
    assert!(contents.runs[0].1.error.is_some());
}

#[tokio::test]
async fn a_failed_write_is_rolled_back_explicitly_before_the_error_is_returned() {
    let log = log_with_market();
    log.fail_at("append_outbox");
    let error = run(&log, &JobConfig::default(), &request())
        .await
        .expect_err("the outbox write fails");
    assert!(matches!(error, RunError::Store(_)), "{error}");
    let journal = log.journal();
    assert_eq!(journal.last(), Some(&"rollback"), "{journal:?}");
    assert!(!journal.contains(&"commit") && !journal.contains(&"dropped"));
    assert!(!log.writer_held());
    let contents = log.contents();
    assert!(contents.rows.is_empty() && contents.runs.is_empty());
}

#[tokio::test]
async fn a_plan_reads_without_the_lock_and_rolls_back() {
    let log = log_with_market();
    let report = plan(&log, &JobConfig::default(), &PlanRequest::default(), day(2))
        .await
        .expect("a plan");
    assert!(report.has_changes());
    let journal = log.journal();
    assert!(!journal.contains(&"try_lock_writer"), "{journal:?}");
    assert!(
        !journal.iter().any(|c| c.starts_with("append")),
        "{journal:?}"
    );
    assert_eq!(journal.last(), Some(&"rollback"));
    assert!(log.contents().runs.is_empty());
}

#[tokio::test]
async fn a_plan_that_moved_since_it_was_shown_is_refused_before_anything_is_written() {
    let log = log_with_market();
    let mut named = request();
    named.expect_plan = Some("plan-0000".to_owned());
    let error = run(&log, &JobConfig::default(), &named)
        .await
        .expect_err("the plan id differs");
    assert!(matches!(error, RunError::PlanMoved { .. }), "{error}");
    let journal = log.journal();
    assert!(
        !journal.iter().any(|c| c.starts_with("append")),
        "{journal:?}"
    );
    assert_eq!(journal.last(), Some(&"rollback"));
}

#[tokio::test]
async fn full_runs_checkpoint_every_few_runs_and_partial_runs_never_do() {
    let log = log_with_market();
    let job = JobConfig {
        checkpoint_every: 2,
        ..JobConfig::default()
    };
    let mut partial = request();
    partial.plan.only = vec![Family::MarketCap];
    for _ in 0..3 {
        run(&log, &job, &partial).await.expect("a partial run");
    }
    assert!(log.contents().checkpoints.is_empty(), "partial runs");
    run(&log, &job, &request()).await.expect("a full run");
    let contents = log.contents();
    assert_eq!(
        contents.checkpoints.len(),
        1,
        "four completed runs since none"
    );
    run(&log, &job, &request()).await.expect("a full run");
    assert_eq!(
        log.contents().checkpoints.len(),
        1,
        "one run since the last"
    );
    run(&log, &job, &request()).await.expect("a full run");
    assert_eq!(
        log.contents().checkpoints.len(),
        2,
        "two runs since the last"
    );
}

#[tokio::test]
async fn a_run_on_unchanged_input_appends_a_run_record_and_no_event() {
    let log = log_with_market();
    run(&log, &JobConfig::default(), &request())
        .await
        .expect("a first run");
    let events = log.contents().events.len();
    let again = run(&log, &JobConfig::default(), &request())
        .await
        .expect("a second run");
    assert_eq!((again.created, again.updated, again.deleted), (0, 0, 0));
    let contents = log.contents();
    assert_eq!(contents.events.len(), events);
    assert_eq!(contents.runs.len(), 2);
}

#[tokio::test]
async fn the_run_record_stores_what_the_run_reported_without_its_deltas() {
    let log = log_with_market();
    let report = run(&log, &JobConfig::default(), &request())
        .await
        .expect("a run");
    let contents = log.contents();
    let stored = serde_json::to_value(&contents.runs[0].1.outcome).unwrap();
    let mut reported = serde_json::to_value(&report).unwrap();
    let fields = reported.as_object_mut().unwrap();
    assert!(
        fields.remove("deltas").is_some(),
        "the report has its deltas"
    );
    // The record is written before the run has its id, with the timings of the plan.
    for key in ["run_id", "timings", "duration_seconds"] {
        fields.remove(key);
    }
    let mut stored = stored.as_object().unwrap().clone();
    assert_eq!(stored.remove("run_id"), Some(serde_json::Value::Null));
    stored.remove("timings");
    stored.remove("duration_seconds");
    assert_eq!(&stored, fields);
}
