//! `GET /metrics` in the Prometheus text format.

use super::error::ApiError;
use super::AppState;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use chrono::NaiveTime;
use std::fmt::{Display, Write as _};
use std::sync::atomic::Ordering;

/// Writes a metric's `HELP` and `TYPE` lines.
fn help_and_type(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Writes a metric of one unlabelled value.
fn single(out: &mut String, name: &str, kind: &str, help: &str, value: impl Display) {
    help_and_type(out, name, kind, help);
    let _ = writeln!(out, "{name} {value}");
}

/// Runs by status, deltas, durations, pending outbox events, last successful as-of date, and
/// what the pipeline follower and the catch-up schedule did.
pub async fn metrics(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let m = state.store.metrics(&state.job.environment).await?;
    let mut out = String::new();
    help_and_type(
        &mut out,
        "cache_sync_runs_total",
        "counter",
        "Runs recorded in the audit log, by status.",
    );
    for (status, n) in &m.runs {
        let _ = writeln!(out, "cache_sync_runs_total{{status=\"{status}\"}} {n}");
    }
    help_and_type(
        &mut out,
        "cache_sync_deltas_total",
        "counter",
        "Entry deltas applied by completed runs, by op.",
    );
    for (op, n) in &m.deltas {
        let _ = writeln!(out, "cache_sync_deltas_total{{op=\"{op}\"}} {n}");
    }
    help_and_type(
        &mut out,
        "cache_sync_run_duration_seconds",
        "summary",
        "Durations of completed runs.",
    );
    let _ = writeln!(
        out,
        "cache_sync_run_duration_seconds_sum {}",
        m.duration_sum_seconds
    );
    let _ = writeln!(
        out,
        "cache_sync_run_duration_seconds_count {}",
        m.duration_count
    );
    single(
        &mut out,
        "cache_sync_last_run_duration_seconds",
        "gauge",
        "Duration of the last completed run.",
        m.last_duration_seconds.unwrap_or(0.0),
    );
    single(
        &mut out,
        "cache_sync_outbox_pending_events",
        "gauge",
        "Change events not yet published to Redis.",
        m.pending_outbox_events,
    );
    single(
        &mut out,
        "cache_sync_last_success_as_of_timestamp_seconds",
        "gauge",
        "As-of date of the last completed run (midnight UTC).",
        m.last_success_as_of
            .map_or(0, |d| d.and_time(NaiveTime::MIN).and_utc().timestamp()),
    );
    let pipeline = &state.pipeline;
    single(
        &mut out,
        "cache_sync_pipeline_imports_handled_total",
        "counter",
        "Phase 2 import completions this instance handled (started, queued or found already run).",
        pipeline.imports_handled(),
    );
    single(
        &mut out,
        "cache_sync_pipeline_catch_ups_total",
        "counter",
        "Catch-ups this instance queued: prices newer than the last completed run, found on start, on a Redis reconnect or at a scheduled check.",
        pipeline.catch_ups.load(Ordering::SeqCst),
    );
    single(
        &mut out,
        "cache_sync_pipeline_scheduled_checks_total",
        "counter",
        "Checks for uncovered prices made at the times [pipeline] catch_up_schedule names.",
        pipeline.scheduled_checks.load(Ordering::SeqCst),
    );
    single(
        &mut out,
        "cache_sync_pipeline_next_scheduled_check_timestamp_seconds",
        "gauge",
        "When the next scheduled catch-up check is due (0: no schedule).",
        pipeline.next_scheduled_check.load(Ordering::SeqCst),
    );
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out))
}
