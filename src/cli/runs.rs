//! The job's commands: `plan`, `run` (Phase 2.5, optionally after Phase 2 announces itself),
//! `rollback` and `verify`.

use super::progress::StepBar;
use super::{connect, job_config, print, progress_wanted, publisher, render, CliError, Exit};
use crate::config::{Config, PlanArgs, RunArgs};
use crate::domain::notices::{Category, Failure, JobFacts, Severity};
use crate::domain::types::{EntryKey, RunId};
use crate::history;
use crate::job::{
    self, new_job_id, run_phase, PlanRequest, RunContext, RunError, RunMode, RunObserver,
    RunProgress, RunRequest,
};
use crate::publish::{PublishError, Publisher};
use crate::report::{RunReport, Trigger};
use crate::store::EventLog;
use async_trait::async_trait;
use chrono::{NaiveDate, Utc};

fn plan_request(args: &PlanArgs) -> PlanRequest {
    PlanRequest {
        as_of: args.as_of,
        only: args.only.clone(),
    }
}

/// `cache-sync plan`: exit 5 when changes are pending.
pub(super) async fn plan(config: &Config, args: &PlanArgs) -> Result<Exit, CliError> {
    let job = job_config(config)?;
    let store = connect(config).await?;
    let today = Utc::now().date_naive();
    let report = job::plan(&store, &job, &plan_request(args), today).await?;
    print(config.format, &report, || render::plan(&report))?;
    Ok(if report.has_changes() {
        Exit::Pending
    } else {
        Exit::Success
    })
}

/// The terminal's view of a run: a progress bar, and a warning when events stay queued.
struct Terminal {
    bar: StepBar,
    first_step: &'static str,
}

#[async_trait]
impl RunObserver for Terminal {
    async fn started(&self) {
        self.bar.step(0, self.first_step);
    }

    async fn step(&self, progress: &RunProgress) {
        self.bar.step(progress.percent, progress.step);
    }

    async fn ended(&self, _outcome: &Result<RunReport, RunError>) {
        self.bar.step(100, "publishing events");
    }

    async fn relay_failed(&self, error: &PublishError) {
        eprintln!(
            "warning: events stay in the outbox ({error}); the next run or `cache-sync events --relay` publishes them"
        );
    }
}

/// Runs `mode` through Phase 2.5's lifecycle and prints its report (a refused run's too).
async fn run_and_print(
    config: &Config,
    context: RunContext<'_>,
    request: RunRequest,
    mode: RunMode,
    bar: (&str, &'static str),
) -> Result<Exit, CliError> {
    let (bar_title, first_step) = bar;
    let observer = Terminal {
        bar: StepBar::start(progress_wanted(config), bar_title),
        first_step,
    };
    let result = run_phase(context, request, &mode, &observer).await;
    drop(observer);
    match result {
        Ok(report) => {
            print(config.format, &report, || render::run(&report))?;
            Ok(Exit::Success)
        }
        Err(error) => {
            if let RunError::Refused { report, .. } = &error {
                // The run's own error decides the exit code, even if nobody reads the report.
                let _ = print(config.format, report, || render::run(report));
            }
            Err(error.into())
        }
    }
}

fn request(force: bool, job_id: String) -> RunRequest {
    RunRequest {
        plan: PlanRequest::default(),
        force,
        trigger: Trigger::Cli,
        now: Utc::now(),
        pause_before_commit: false,
        job_id,
        progress: None,
        expect_plan: None,
    }
}

/// `cache-sync run`: Phase 2.5.
pub(super) async fn run(config: &Config, args: &RunArgs) -> Result<Exit, CliError> {
    let job = job_config(config)?;
    let store = connect(config).await?;
    let publisher = publisher(config)?;
    let job_id = new_job_id();
    if args.wait_for_import && !wait_for_import(&store, publisher.as_ref(), args.timeout).await? {
        let message = format!(
            "Phase 2 did not announce completion within {}s",
            args.timeout.as_secs()
        );
        let facts = JobFacts {
            job_id: &job_id,
            mode: &RunMode::Families(args.plan.only.clone()).label(),
            force: args.force,
            triggered_by: Trigger::Cli.as_str(),
        };
        let failure = Failure {
            severity: Severity::Error,
            category: Category::Integration,
            message: format!("{message}; nothing was run"),
            run_id: None,
            guard: Vec::new(),
            would_change: None,
        };
        job::publish_failure(publisher.as_ref(), &facts, &failure).await;
        eprintln!("error: {message}; nothing was run");
        return Ok(Exit::ImportTimeout);
    }
    let mut request = request(args.force, job_id);
    request.plan.as_of = args.plan.as_of;
    request.pause_before_commit = args.test_pause_before_commit;
    let mode = RunMode::Families(args.plan.only.clone());
    let context = RunContext {
        store: &store,
        job: &job,
        publisher: publisher.as_ref(),
    };
    run_and_print(config, context, request, mode, ("run", "starting")).await
}

/// `cache-sync rollback`: a new run towards the state after `to_run` (or its plan).
pub(super) async fn rollback(
    config: &Config,
    to_run: i64,
    dry_run: bool,
    force: bool,
) -> Result<Exit, CliError> {
    let to_run = RunId(to_run);
    let job = job_config(config)?;
    let store = connect(config).await?;
    if dry_run {
        let report = job::plan_rollback(&store, &job, to_run, Utc::now().date_naive()).await?;
        print(config.format, &report, || render::plan(&report))?;
        return Ok(if report.has_changes() {
            Exit::Pending
        } else {
            Exit::Success
        });
    }
    let mut request = request(force, new_job_id());
    request.trigger = Trigger::Rollback;
    let mode = RunMode::Rollback(to_run);
    let publisher = publisher(config)?;
    let context = RunContext {
        store: &store,
        job: &job,
        publisher: publisher.as_ref(),
    };
    let bar = ("rollback", "replaying the target run");
    run_and_print(config, context, request, mode, bar).await
}

/// `cache-sync verify`: exit 5 when live rows differ from the log.
pub(super) async fn verify(config: &Config) -> Result<Exit, CliError> {
    let job = job_config(config)?;
    let store = connect(config).await?;
    let today = Utc::now().date_naive();
    let plan = job::plan(&store, &job, &PlanRequest::default(), today).await?;
    let drift: Vec<EntryKey> = plan
        .drift
        .iter()
        .filter_map(|d| EntryKey::parse(d).ok())
        .collect();
    let differences = history::describe_drift(&store, &config.environment, &drift).await?;
    print(config.format, &differences, || render::drift(&differences))?;
    Ok(if differences.is_empty() {
        Exit::Success
    } else {
        Exit::Pending
    })
}

/// The most recent weekday on or before `today`: the trading day Phase 2 should have imported.
fn expected_trading_day(today: NaiveDate) -> NaiveDate {
    use chrono::Datelike as _;
    let back = match today.weekday() {
        chrono::Weekday::Sat => 1,
        chrono::Weekday::Sun => 2,
        _ => 0,
    };
    today - chrono::Duration::days(back)
}

/// Whether Phase 2 imported the expected trading day, waiting up to `timeout` for it to
/// announce itself.
async fn wait_for_import(
    log: &dyn EventLog,
    publisher: Option<&Publisher>,
    timeout: std::time::Duration,
) -> Result<bool, CliError> {
    let expected = expected_trading_day(Utc::now().date_naive());
    let latest = {
        let mut tx = log.begin().await?;
        tx.latest_price_date().await?
    };
    if latest.is_some_and(|d| d >= expected) {
        return Ok(true);
    }
    let publisher = publisher.ok_or_else(|| {
        CliError::Usage(format!(
            "ohlcv_daily's latest date is {} but {expected} is expected, and --wait-for-import needs REDIS_URL to hear Phase 2 finish",
            latest.map_or("none".to_owned(), |d| d.to_string())
        ))
    })?;
    publisher
        .wait_for_import(timeout, async {
            // Checked again once subscribed, so an import that finished in between is not missed.
            let Ok(mut tx) = log.begin().await else {
                return false;
            };
            tx.latest_price_date()
                .await
                .ok()
                .flatten()
                .is_some_and(|d| d >= expected)
        })
        .await
        .map_err(|e| CliError::Usage(format!("cannot wait for the import: {e}")))
}
