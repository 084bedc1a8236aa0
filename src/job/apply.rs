//! Applying: the writing half of a run. Inside one transaction it takes the writer lock, plans,
//! checks the plan id, the invariants and the guard rails, then writes the deltas with their
//! events and run record, queues the outbox events and, after a full run now and then, a
//! checkpoint; commits, or rolls back and appends only a refused run's record.

use super::error::{collision_summary, refusal_summary};
use super::mode::{covered, recorded};
use super::plan::{prepare, Plan};
use super::{JobConfig, RunError, RunRequest};
use crate::domain::events::{run_events, RunFacts};
use crate::domain::guard::Refusal;
use crate::domain::invariants::Collision;
use crate::domain::replay::ReplayedCatalog;
use crate::domain::types::RunId;
use crate::report::{RunReport, RunStatus, Trigger};
use crate::store::{EventLog, LockOutcome, NewRun, RunTx};
use std::time::Instant;

/// Runs towards the catalog, or (with `target`) towards a replayed state, every member change
/// then carrying the reason `rollback`.
///
/// The transaction is rolled back explicitly before any error or refusal is returned, so the
/// writer lock is free by the time the caller hears of it (a dropped transaction would release
/// it only when its connection is next used).
pub(super) async fn apply_in_one_transaction(
    log: &dyn EventLog,
    job: &JobConfig,
    request: &RunRequest,
    target: Option<(RunId, &ReplayedCatalog)>,
) -> Result<RunReport, RunError> {
    let started = Instant::now();
    let mut tx = log.begin().await?;
    match decide_and_write(tx.as_mut(), job, request, target, started).await {
        Ok(Decision::Applied(mut report)) => {
            if request.pause_before_commit {
                eprintln!("cache-sync: paused before commit (test hook)");
                std::future::pending::<()>().await;
            }
            let changed = report.deltas.len();
            request.progress("committing", 90, changed);
            let step = Instant::now();
            tx.commit().await?;
            request.progress("committed", 100, changed);
            report.timings.commit_ms = step.elapsed().as_secs_f64() * 1e3;
            report.duration_seconds = started.elapsed().as_secs_f64();
            tracing::info!(
                run_id = report.run_id.map_or(0, |r| r.0),
                created = report.created,
                updated = report.updated,
                deleted = report.deleted,
                unchanged = report.unchanged,
                "run applied"
            );
            Ok(*report)
        }
        Ok(Decision::Refused(refused)) => {
            tx.rollback().await?;
            let RefusedRun {
                record,
                mut report,
                refusals,
                collisions,
            } = *refused;
            let run_id = log.append_run_record(&record).await?;
            report.run_id = Some(run_id);
            if !collisions.is_empty() {
                return Err(RunError::Collision { run_id, collisions });
            }
            Err(RunError::Refused {
                run_id,
                refusals,
                report: Box::new(report),
            })
        }
        Err(error) => {
            if let Err(rollback) = tx.rollback().await {
                tracing::warn!(error = %rollback, "rolling back a failed run");
            }
            Err(error)
        }
    }
}

/// What a run decided inside its transaction.
enum Decision {
    /// Deltas, events and the run record are written; the transaction awaits its commit.
    Applied(Box<RunReport>),
    /// Nothing may be written: the run record to append on its own.
    Refused(Box<RefusedRun>),
}

struct RefusedRun {
    record: NewRun,
    report: RunReport,
    refusals: Vec<Refusal>,
    collisions: Vec<Collision>,
}

/// Takes the writer lock, plans, checks the guards and writes the run into `tx`.
async fn decide_and_write(
    tx: &mut dyn RunTx,
    job: &JobConfig,
    request: &RunRequest,
    target: Option<(RunId, &ReplayedCatalog)>,
    started: Instant,
) -> Result<Decision, RunError> {
    if tx.try_lock_writer().await? == LockOutcome::HeldElsewhere {
        return Err(RunError::LockHeld);
    }
    request.progress("planning", 10, 0);
    let today = request.now.date_naive();
    let planned = prepare(tx, job, &request.plan, today, target.map(|t| t.1)).await?;
    request.progress("planned", 50, planned.deltas.len());
    if let Some(expected) = &request.expect_plan {
        let actual = planned.plan_id();
        if &actual != expected {
            return Err(RunError::PlanMoved {
                expected: expected.clone(),
                actual,
            });
        }
    }
    if !planned.violations.is_empty() {
        return Err(RunError::Invariant(planned.violations));
    }
    let refusals = if request.force {
        Vec::new()
    } else {
        planned.refusals(&job.guards, target.is_some())
    };
    let refused = !planned.collisions.is_empty() || !refusals.is_empty();
    let elapsed = started.elapsed();
    let mut report = if refused {
        let seconds = elapsed.as_secs_f64();
        planned.run_report(RunStatus::Refused, request.force, refusals.clone(), seconds)
    } else {
        planned.run_report(RunStatus::Completed, request.force, Vec::new(), 0.0)
    };
    let record = NewRun {
        trigger: if target.is_some() {
            Trigger::Rollback
        } else {
            request.trigger
        },
        families: recorded(&planned.selection, target.map(|t| t.0)),
        environment: job.environment.clone(),
        started_at: request.now,
        finished_at: request.now + chrono::Duration::milliseconds(elapsed.as_millis() as i64),
        outcome: report.outcome.clone(),
        error: refused.then(|| {
            if planned.collisions.is_empty() {
                refusal_summary(&refusals)
            } else {
                collision_summary(&planned.collisions)
            }
        }),
        job_id: request.job_id.clone(),
    };
    if refused {
        return Ok(Decision::Refused(Box::new(RefusedRun {
            record,
            report,
            refusals,
            collisions: planned.collisions,
        })));
    }

    let step = Instant::now();
    let appended = tx
        .append_run(&record, &planned.deltas, &planned.recheck)
        .await?;
    let run_id = appended.run_id;
    let facts = RunFacts {
        run_id,
        job_id: &request.job_id,
        mode: &covered(&planned.selection, target.is_some()),
        status: "completed",
        duration_seconds: started.elapsed().as_secs_f64(),
    };
    let events = run_events(&job.channels, &facts, &planned.deltas, &appended.seqs);
    tx.append_outbox(run_id, &job.environment, &events).await?;
    write_checkpoint_when_due(tx, job, &planned, run_id).await?;
    report.timings.apply_ms = step.elapsed().as_secs_f64() * 1e3;
    report.run_id = Some(run_id);
    Ok(Decision::Applied(Box::new(report)))
}

/// After a full run the owned rows are exactly the catalog: stored whole once
/// `checkpoint_every` completed runs have passed since the last checkpoint.
async fn write_checkpoint_when_due(
    tx: &mut dyn RunTx,
    job: &JobConfig,
    planned: &Plan,
    run_id: RunId,
) -> Result<(), RunError> {
    if !planned.selection.is_all()
        || tx.runs_since_checkpoint(&job.environment).await? < job.checkpoint_every
    {
        return Ok(());
    }
    let entries: Vec<_> = planned
        .catalog
        .entries
        .iter()
        .map(|(key, e)| (key, e.family, &*e.value, e.hash))
        .collect();
    tx.append_checkpoint(&job.environment, run_id, &entries)
        .await?;
    Ok(())
}
