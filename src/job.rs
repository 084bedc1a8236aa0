//! Orchestration, and the only module that knows the order of operations. A run opens a
//! transaction, takes the writer lock, plans (`plan.rs`: configuration, market, owned rows,
//! catalog, diff, invariants, unique constraints), checks the guard rails, then writes the
//! deltas, events, run record, outbox events and checkpoint and commits (`apply.rs`). A plan runs
//! the same steps and rolls back. With turnover banding on, `banding.rs` reads the members the
//! bands may hold before the catalog is computed. `lifecycle.rs` wraps a run in Phase 2.5's notices, progress and
//! relay; `mode.rs` names what a run covers; `error.rs` says why one did not complete.

mod apply;
mod banding;
mod error;
mod lifecycle;
mod mode;
mod plan;
#[cfg(test)]
mod tests;

pub use error::RunError;
pub use lifecycle::{publish_failure, run_phase, RunContext, RunObserver, Unobserved};
pub use mode::{RunMode, TriggerMode};
pub use plan::Plan;

use crate::domain::config::{CatchUpSchedule, TomlFile};
use crate::domain::events::Channels;
use crate::domain::guard::GuardConfig;
use crate::domain::replay::ReplayedCatalog;
use crate::domain::types::{Family, RunId};
use crate::history::{self, PointInHistory};
use crate::report::Trigger;
use crate::report::{PlanReport, RunReport};
use crate::store::{EventLog, Store};
use chrono::{DateTime, NaiveDate, Utc};
use std::time::Instant;

/// Settings that stay the same across runs of one deployment.
#[derive(Debug, Clone)]
pub struct JobConfig {
    /// The `cache_entries.environment` the job owns.
    pub environment: String,
    /// The optional TOML file, already parsed, with a label for messages.
    pub toml: Option<(String, TomlFile)>,
    pub guards: GuardConfig,
    /// A full run writes a checkpoint (the whole owned catalog) once this many completed runs
    /// have passed since the last one, so replay never folds more than that many runs.
    pub checkpoint_every: i64,
    /// Redis channel names the run's events are queued for.
    pub channels: Channels,
    /// `[audit] keep_days`: the service compacts the log to this window after each successful
    /// run (`None`: never).
    pub audit_keep_days: Option<u32>,
    /// `[pipeline] catch_up_schedule`: the service also looks for prices no completed run has
    /// covered at these times (`None`: only on start and on Redis reconnects).
    pub catch_up_schedule: Option<CatchUpSchedule>,
}

impl Default for JobConfig {
    fn default() -> Self {
        Self {
            environment: "DEFAULT".to_owned(),
            toml: None,
            guards: GuardConfig::default(),
            checkpoint_every: 10,
            channels: Channels::default(),
            audit_keep_days: None,
            catch_up_schedule: None,
        }
    }
}

/// A new job id: a random (version 4) UUID, as the app's Sprint-36 contract shows them. Random
/// rather than time-ordered (v7), because the admin page shows only `job_id[:8]`, and a v7 id's
/// first eight digits are its timestamp's high bits, the same for every job of the same minute.
pub fn new_job_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// What to plan.
#[derive(Debug, Clone, Default)]
pub struct PlanRequest {
    /// Defaults to the latest date in `ohlcv_daily`.
    pub as_of: Option<NaiveDate>,
    /// Empty means every family.
    pub only: Vec<Family>,
}

/// What to run.
#[derive(Debug, Clone)]
pub struct RunRequest {
    pub plan: PlanRequest,
    /// Pass the guard rails (recorded in the run record).
    pub force: bool,
    pub trigger: Trigger,
    /// Wall-clock time of the request (run record timestamps and the age guard only).
    pub now: DateTime<Utc>,
    /// Test hook: stop forever just before commit, after announcing it on stderr.
    pub pause_before_commit: bool,
    /// The caller's id for this job (API job id, or one made up by the CLI); events carry it.
    pub job_id: String,
    /// Where step progress goes while the run works (set by `run_phase`).
    pub progress: Option<tokio::sync::mpsc::UnboundedSender<RunProgress>>,
    /// Apply only if the plan computed inside the run's transaction has this id.
    pub expect_plan: Option<String>,
}

/// A step of a run, for progress displays.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RunProgress {
    pub step: &'static str,
    pub percent: u8,
    pub entries_changed: usize,
}

impl RunRequest {
    fn progress(&self, step: &'static str, percent: u8, entries_changed: usize) {
        if let Some(sender) = &self.progress {
            // A receiver that went away only means nobody watches any more.
            let _ = sender.send(RunProgress {
                step,
                percent,
                entries_changed,
            });
        }
    }
}

/// Computes what a run would change. Writes nothing.
///
/// # Errors
/// Store and configuration errors; `NoPrices` when there is no as-of date.
pub async fn plan(
    log: &dyn EventLog,
    job: &JobConfig,
    request: &PlanRequest,
    today: NaiveDate,
) -> Result<PlanReport, RunError> {
    plan_towards(log, job, request, today, None).await
}

/// What a rollback to `to_run` would change. Writes nothing.
///
/// # Errors
/// As `plan`, plus `History` when the run cannot be replayed.
pub async fn plan_rollback(
    store: &dyn Store,
    job: &JobConfig,
    to_run: RunId,
    today: NaiveDate,
) -> Result<PlanReport, RunError> {
    let target = rollback_target(store, job, to_run).await?;
    plan_towards(store, job, &PlanRequest::default(), today, Some(&target)).await
}

/// Runs Phase 2.5: applies the plan in one transaction with its audit events and run record.
///
/// # Errors
/// `LockHeld` when another run is applying; `Refused` / `Collision` when a guard rail or a
/// unique constraint stops it (a refused run record is appended, nothing else);
/// `Invariant` for a broken catalog; store and configuration errors.
pub async fn run(
    log: &dyn EventLog,
    job: &JobConfig,
    request: &RunRequest,
) -> Result<RunReport, RunError> {
    apply::apply_in_one_transaction(log, job, request, None).await
}

/// Rolls the owned catalog back to its state after `to_run`: a new run (trigger `rollback`,
/// reason `rollback` on every member change) whose deltas take the live rows to the replayed
/// state, under the same lock, transaction and mass-change guards as a nightly run. History is
/// only appended to.
///
/// # Errors
/// As `run`, plus `History` when the run cannot be replayed.
pub async fn rollback(
    store: &dyn Store,
    job: &JobConfig,
    to_run: RunId,
    request: &RunRequest,
) -> Result<RunReport, RunError> {
    let target = rollback_target(store, job, to_run).await?;
    apply::apply_in_one_transaction(store, job, request, Some((to_run, &target))).await
}

/// Plans in a transaction it rolls back: towards the catalog, or towards a replayed one.
async fn plan_towards(
    log: &dyn EventLog,
    job: &JobConfig,
    request: &PlanRequest,
    today: NaiveDate,
    target: Option<&ReplayedCatalog>,
) -> Result<PlanReport, RunError> {
    let started = Instant::now();
    let mut tx = log.begin().await?;
    let planned = plan::prepare(tx.as_mut(), job, request, today, target).await;
    tx.rollback().await?;
    let planned = planned?;
    let refusals = planned.refusals(&job.guards, target.is_some());
    Ok(planned.plan_report(refusals, started.elapsed().as_secs_f64()))
}

/// The owned catalog as it stood after `to_run`, replayed from the log.
async fn rollback_target(
    store: &dyn Store,
    job: &JobConfig,
    to_run: RunId,
) -> Result<ReplayedCatalog, RunError> {
    let at = PointInHistory::AfterRun(to_run);
    let run_id = history::resolve(store, &job.environment, at)
        .await?
        .unwrap_or(to_run);
    Ok(history::replay_state(store, &job.environment, run_id, None)
        .await?
        .0)
}
