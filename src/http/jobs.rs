//! The compatibility endpoints: trigger, status, history, stats, health; and the background
//! runner that executes one job at a time.

use super::body::ObjectBody;
use super::error::ApiError;
use super::AppState;
use crate::history::compaction::{self, CompactionRequest};
use crate::job::{
    self, run_phase, PlanRequest, RunContext, RunError, RunMode, RunObserver, RunProgress,
    RunRequest, TriggerMode,
};
use crate::report::RunReport;
use crate::store::{JobRecord, JobStatus, SettledJobs, Trigger};
use async_trait::async_trait;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::Utc;
use serde::Deserialize;
use serde_json::{json, Value};
use std::time::Duration;

/// A job this process runs in the background.
pub struct RunningJob {
    pub job_id: String,
    pub handle: tokio::task::JoinHandle<()>,
}

/// The trigger body (optional: none means a full run without force).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TriggerBody {
    #[serde(default = "default_mode")]
    pub mode: String,
    #[serde(default)]
    pub force: bool,
    /// Apply exactly the plan `POST …/plan` returned; refused if the state moved since.
    #[serde(default)]
    pub plan_id: Option<String>,
}

fn default_mode() -> String {
    "full".to_owned()
}

impl Default for TriggerBody {
    fn default() -> Self {
        Self {
            mode: default_mode(),
            force: false,
            plan_id: None,
        }
    }
}

/// `POST /api/processing/cache-sync/trigger` → `202` with the job id; `409` while a job runs.
pub async fn trigger(
    State(state): State<AppState>,
    body: Option<ObjectBody<TriggerBody>>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let body = body.map(|ObjectBody(b)| b).unwrap_or_default();
    let mode = TriggerMode::parse(&body.mode).map_err(ApiError::BadRequest)?;
    if let Some(plan_id) = &body.plan_id {
        let plan = job::plan(
            state.store.as_ref(),
            &state.job,
            &PlanRequest {
                as_of: None,
                only: mode.families(),
            },
            Utc::now().date_naive(),
        )
        .await?;
        if &plan.plan_id() != plan_id {
            return Err(ApiError::Conflict(format!(
                "plan {} is out of date: the data or the live rows changed since; plan again",
                plan_id.chars().take(64).collect::<String>().escape_debug()
            )));
        }
    }
    let job_id = start_job(
        &state,
        JobSpec {
            mode,
            force: body.force,
            plan_id: body.plan_id.clone(),
            triggered_by: Trigger::Api,
            import_run_id: None,
        },
    )
    .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({
            "success": true,
            "job_id": job_id,
            "mode": body.mode,
            "message": format!("cache sync job {job_id} accepted ({} mode)", body.mode),
        })),
    ))
}

/// What a job is asked to do, and who asked.
pub struct JobSpec {
    pub mode: TriggerMode,
    pub force: bool,
    /// Apply exactly this plan (API triggers only).
    pub plan_id: Option<String>,
    pub triggered_by: Trigger,
    /// The Phase 2 import a pipeline job runs for.
    pub import_run_id: Option<String>,
}

/// The job recorded pending or running, as a refusal names it (`job {id}, {status}`): on a
/// shared database it is often another instance's. `None` when there is none, or it cannot be
/// read (it may have ended in between).
async fn recorded_holder(state: &AppState) -> Option<String> {
    let jobs = state.store.unfinished_jobs().await.ok()?;
    let job = jobs.first()?;
    Some(format!("job {} ({})", job.job_id, job.status.as_str()))
}

/// Records a job and runs it in the background; its id. One job at a time across instances:
/// `AlreadyRunning` (naming the holder) while this service runs one, a run outside the API
/// holds the writer lock, or a job of a live instance is recorded pending or running.
///
/// # Errors
/// `ApiError::AlreadyRunning` as above; store errors (a second job for one import is refused
/// by the unique index, as a store error).
pub async fn start_job(state: &AppState, spec: JobSpec) -> Result<String, ApiError> {
    let record = JobRecord {
        job_id: job::new_job_id(),
        mode: spec.mode.as_str().to_owned(),
        force: spec.force,
        triggered_by: spec.triggered_by,
        status: JobStatus::Pending,
        created_at: Utc::now(),
        start_time: None,
        end_time: None,
        duration_seconds: None,
        error_details: None,
        progress: None,
        run_id: None,
        plan_id: spec.plan_id.clone(),
        owner: Some(state.owner().await?.id().to_owned()),
        import_run_id: spec.import_run_id,
    };
    let mut running = state.running.lock().await;
    // The holder is named: this service's own job, or a run outside it.
    if let Some(job) = running.as_ref().filter(|job| !job.handle.is_finished()) {
        return Err(ApiError::AlreadyRunning(format!(
            "job {} of this service; wait for it to finish, or check its status",
            job.job_id
        )));
    }
    // A run started elsewhere (the nightly pipeline, the CLI) holds the writer lock. The probe
    // only looks: it never takes the lock, so it cannot make a starting run fail.
    if let Some(holder) = state.store.writer_lock_holder().await? {
        return Err(ApiError::AlreadyRunning(
            match recorded_holder(state).await {
                Some(job) => format!(
                    "{job} is recorded and a run holds the writer lock ({holder}); wait for it to \
                 finish, or check its status"
                ),
                None => format!("a run outside the API holds the writer lock: {holder}"),
            },
        ));
    }
    // A job left by a stopped instance blocks until settled: settle now rather than refuse
    // until the next sweep.
    if !state.store.create_job(&record).await?
        && (state.settle_orphans().await? == SettledJobs::default()
            || !state.store.create_job(&record).await?)
    {
        let holder = recorded_holder(state)
            .await
            .map_or_else(String::new, |job| format!(" ({job})"));
        return Err(ApiError::AlreadyRunning(format!(
            "another job is recorded pending or running{holder}; wait for it to finish, or check its status"
        )));
    }
    let job_id = record.job_id.clone();
    let task_state = state.clone();
    let handle = tokio::spawn(async move {
        execute(task_state, record, spec.mode, spec.plan_id).await;
    });
    *running = Some(RunningJob {
        job_id: job_id.clone(),
        handle,
    });
    Ok(job_id)
}

/// The job board's view of a run: running, its latest step, completed or failed.
struct JobBoardObserver<'a> {
    state: &'a AppState,
    job_id: &'a str,
}

#[async_trait]
impl RunObserver for JobBoardObserver<'_> {
    async fn started(&self) {
        let marked = self
            .state
            .store
            .update_job(self.job_id, JobStatus::Running, None, None);
        if let Err(e) = marked.await {
            tracing::error!(error = %e, job_id = self.job_id, "cannot mark job running");
        }
    }

    async fn step(&self, p: &RunProgress) {
        let value =
            json!({"step": p.step, "percent": p.percent, "entries_changed": p.entries_changed});
        let _ = self.state.store.job_progress(self.job_id, &value).await;
    }

    async fn ended(&self, outcome: &Result<RunReport, RunError>) {
        let store = &self.state.store;
        let recorded = match outcome {
            Ok(report) => {
                if self.state.test_pause_after_commit {
                    eprintln!("cache-sync: paused after commit (test hook)");
                    std::future::pending::<()>().await;
                }
                let run_id = report.run_id.map(|r| r.0);
                store
                    .update_job(self.job_id, JobStatus::Completed, None, run_id)
                    .await
            }
            Err(e) => {
                let run_id = match e {
                    RunError::Refused { run_id, .. } => Some(run_id.0),
                    _ => None,
                };
                let message = e.to_string();
                store
                    .update_job(self.job_id, JobStatus::Failed, Some(&message), run_id)
                    .await
            }
        };
        if let Err(e) = recorded {
            tracing::error!(error = %e, job_id = self.job_id, "cannot record the job's outcome");
        }
    }
}

/// Runs one job to its end (Phase 2.5's lifecycle) and records the outcome; never panics the
/// service.
async fn execute(state: AppState, record: JobRecord, mode: TriggerMode, plan_id: Option<String>) {
    let request = RunRequest {
        plan: PlanRequest::default(),
        force: record.force,
        trigger: record.triggered_by,
        now: Utc::now(),
        pause_before_commit: state.test_pause_before_commit,
        job_id: record.job_id.clone(),
        progress: None,
        expect_plan: plan_id,
    };
    let context = RunContext {
        store: state.store.as_ref(),
        job: &state.job,
        publisher: state.publisher.as_ref(),
    };
    let observer = JobBoardObserver {
        state: &state,
        job_id: &record.job_id,
    };
    // The outcome is on the job board and, for failures, on the errors channel.
    let outcome = run_phase(context, request, &RunMode::Trigger(mode), &observer).await;
    if let (Ok(_), Some(keep_days)) = (&outcome, state.job.audit_keep_days) {
        compact_after_run(&state, keep_days).await;
    }
}

/// `[audit] keep_days`: keeps the log bounded after a run. A compaction that fails (or finds
/// the writer lock taken by the next run) changes nothing and is tried again after the next run,
/// so it is logged, never failed into the job.
async fn compact_after_run(state: &AppState, keep_days: u32) {
    let request = CompactionRequest {
        keep_days,
        ..CompactionRequest::default()
    };
    let environment = &state.job.environment;
    match compaction::compact(state.store.as_ref(), environment, &request).await {
        Ok(report) => tracing::info!(
            keep_days,
            events_removed = report.events_removed,
            bytes_after = report.bytes_after,
            "compacted the audit log"
        ),
        Err(e) => tracing::warn!(error = %e, keep_days, "audit log compaction failed"),
    }
}

/// On shutdown: wait for the running job up to `grace`, else abort it (its transaction rolls
/// back) and record it as interrupted.
pub async fn finish_or_abort(state: &AppState, grace: Duration) {
    let Some(mut running) = state.running.lock().await.take() else {
        return;
    };
    if tokio::time::timeout(grace, &mut running.handle)
        .await
        .is_err()
    {
        running.handle.abort();
        let _ = (&mut running.handle).await;
        // A job whose run already committed (it was only publishing events, or died before
        // recording its outcome) is completed with that run; the run record says so.
        let settled = state
            .store
            .settle_abandoned_jobs(
                Some(&running.job_id),
                "interrupted: the API service shut down; the run was rolled back",
            )
            .await;
        if let Err(e) = settled {
            tracing::error!(error = %e, job_id = running.job_id, "cannot settle the aborted job");
        }
    }
}

/// A job as status and history show it: the fields of the app's Sprint-36 contract
/// (`docs/planning/sprint_history/sprint36/TickStockAppV2_integration_callback.md` §1.2–1.3:
/// `job_id` … `progress`, and history's `has_errors`), plus `run_id` and `force`.
fn job_body(job: &JobRecord) -> Value {
    json!({
        "job_id": job.job_id,
        "mode": job.mode,
        "status": job.status,
        "created_at": job.created_at,
        "start_time": job.start_time,
        "end_time": job.end_time,
        "duration_seconds": job.duration_seconds,
        "triggered_by": job.triggered_by,
        "error_details": job.error_details,
        "has_errors": job.status == JobStatus::Failed || job.error_details.is_some(),
        "progress": job.progress,
        "run_id": job.run_id,
        "force": job.force,
        "import_run_id": job.import_run_id,
    })
}

/// `GET /api/processing/cache-sync/status/{job_id}`.
pub async fn status(
    State(state): State<AppState>,
    Path(job_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    if job_id.len() > 100
        || job_id
            .chars()
            .any(|c| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
    {
        return Err(ApiError::BadRequest(
            "job ids are letters, digits, - and _".to_owned(),
        ));
    }
    let job = state
        .store
        .get_job(&job_id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no job {job_id}")))?;
    Ok(Json(job_body(&job)))
}

/// Paging of the history endpoint.
#[derive(Debug, Deserialize)]
pub struct Paging {
    pub limit: Option<i64>,
    pub offset: Option<i64>,
}

/// `GET /api/processing/cache-sync/history?limit=&offset=`.
pub async fn history(
    State(state): State<AppState>,
    Query(paging): Query<Paging>,
) -> Result<Json<Value>, ApiError> {
    let limit = paging.limit.unwrap_or(20);
    let offset = paging.offset.unwrap_or(0);
    if !(1..=500).contains(&limit) || offset < 0 {
        return Err(ApiError::BadRequest(
            "limit must be 1–500 and offset at least 0".to_owned(),
        ));
    }
    let (jobs, total) = state.store.list_jobs(limit, offset).await?;
    Ok(Json(json!({
        "jobs": jobs.iter().map(job_body).collect::<Vec<_>>(),
        "total": total,
        "limit": limit,
        "offset": offset,
    })))
}

/// `GET /api/processing/cache-sync/stats`: universes and job statistics over 7 days, under the
/// Sprint-36 contract's names (`total_jobs_7d`, `successful_jobs_7d`, `failed_jobs_7d`,
/// `avg_duration_seconds`: of completed jobs, null before the first).
pub async fn stats(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let universes = state.store.universes(&state.job.environment).await?;
    let since = Utc::now() - chrono::Duration::days(7);
    let jobs = state.store.job_stats(since).await?;
    Ok(Json(json!({
        "universes": universes,
        "job_statistics": {
            "total_jobs_7d": jobs.total,
            "successful_jobs_7d": jobs.completed,
            "failed_jobs_7d": jobs.failed,
            "avg_duration_seconds": jobs.average_duration_seconds,
            "running": jobs.running,
            "last_completed_at": jobs.last_completed_at,
            "period_days": 7,
        },
    })))
}

/// `GET /health`: the database answers (and whether Redis is configured).
pub async fn health(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let database = state.store.job_stats(Utc::now()).await.is_ok();
    let status = if database {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(json!({
            "status": if database { "healthy" } else { "unhealthy" },
            "database": if database { "ok" } else { "unreachable" },
            "redis": if state.publisher.is_some() { "configured" } else { "not configured" },
            "service": "tickstock-cache-sync",
            "version": env!("CARGO_PKG_VERSION"),
        })),
    )
}

/// `GET /health/live`: the process serves requests. Touches no database or Redis, so an
/// orchestrator never restarts the service for an outage it cannot fix by restarting.
pub async fn live() -> Json<Value> {
    Json(json!({
        "status": "alive",
        "service": "tickstock-cache-sync",
        "version": env!("CARGO_PKG_VERSION"),
    }))
}

/// How long readiness waits for Redis before reporting it unreachable (a probe's own timeout
/// is typically a second or a few).
const REDIS_PROBE: Duration = Duration::from_millis(1000);

/// `GET /health/ready`: `200` when the database answers and has every migration this build
/// expects; `503` with the reason otherwise. Redis is reported, not required: without it the
/// service still runs jobs, only their notices wait in the outbox.
pub async fn ready(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let schema = state.store.check_schema().await;
    let redis = match &state.publisher {
        None => "not configured",
        Some(publisher) => match tokio::time::timeout(REDIS_PROBE, publisher.ping()).await {
            Ok(Ok(())) => "ok",
            _ => "unreachable",
        },
    };
    let (status, ready, reason) = match &schema {
        Ok(()) => (StatusCode::OK, true, None),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, false, Some(e.to_string())),
    };
    (
        status,
        Json(json!({
            "status": if ready { "ready" } else { "not_ready" },
            "database": match &schema {
                Ok(()) => "ok",
                Err(crate::store::StoreError::SchemaOutOfDate { .. }) => "migrations missing",
                Err(_) => "unreachable",
            },
            "reason": reason,
            "redis": redis,
            "service": "tickstock-cache-sync",
            "version": env!("CARGO_PKG_VERSION"),
        })),
    )
}
