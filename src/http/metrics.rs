//! `GET /metrics` in the Prometheus text format.

use super::error::ApiError;
use super::AppState;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use chrono::NaiveTime;
use std::fmt::Write as _;

/// Runs by status, deltas, durations, pending outbox events, last successful as-of date.
pub async fn metrics(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let m = state.store.metrics(&state.job.environment).await?;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# HELP cache_sync_runs_total Runs recorded in the audit log, by status."
    );
    let _ = writeln!(out, "# TYPE cache_sync_runs_total counter");
    for (status, n) in &m.runs {
        let _ = writeln!(out, "cache_sync_runs_total{{status=\"{status}\"}} {n}");
    }
    let _ = writeln!(
        out,
        "# HELP cache_sync_deltas_total Entry deltas applied by completed runs, by op."
    );
    let _ = writeln!(out, "# TYPE cache_sync_deltas_total counter");
    for (op, n) in &m.deltas {
        let _ = writeln!(out, "cache_sync_deltas_total{{op=\"{op}\"}} {n}");
    }
    let _ = writeln!(
        out,
        "# HELP cache_sync_run_duration_seconds Durations of completed runs."
    );
    let _ = writeln!(out, "# TYPE cache_sync_run_duration_seconds summary");
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
    let _ = writeln!(
        out,
        "# HELP cache_sync_last_run_duration_seconds Duration of the last completed run."
    );
    let _ = writeln!(out, "# TYPE cache_sync_last_run_duration_seconds gauge");
    let _ = writeln!(
        out,
        "cache_sync_last_run_duration_seconds {}",
        m.last_duration_seconds.unwrap_or(0.0)
    );
    let _ = writeln!(
        out,
        "# HELP cache_sync_outbox_pending_events Change events not yet published to Redis."
    );
    let _ = writeln!(out, "# TYPE cache_sync_outbox_pending_events gauge");
    let _ = writeln!(
        out,
        "cache_sync_outbox_pending_events {}",
        m.pending_outbox_events
    );
    let _ = writeln!(out, "# HELP cache_sync_last_success_as_of_timestamp_seconds As-of date of the last completed run (midnight UTC).");
    let _ = writeln!(
        out,
        "# TYPE cache_sync_last_success_as_of_timestamp_seconds gauge"
    );
    let as_of = m
        .last_success_as_of
        .map_or(0, |d| d.and_time(NaiveTime::MIN).and_utc().timestamp());
    let _ = writeln!(
        out,
        "cache_sync_last_success_as_of_timestamp_seconds {as_of}"
    );
    let _ = writeln!(
        out,
        "# HELP cache_sync_pipeline_imports_handled_total Phase 2 import completions this instance handled (started, queued or found already run)."
    );
    let _ = writeln!(
        out,
        "# TYPE cache_sync_pipeline_imports_handled_total counter"
    );
    let _ = writeln!(
        out,
        "cache_sync_pipeline_imports_handled_total {}",
        state.pipeline.imports_handled()
    );
    let _ = writeln!(
        out,
        "# HELP cache_sync_pipeline_catch_ups_total Catch-ups this instance queued: prices newer than the last completed run, found on start or on a Redis reconnect."
    );
    let _ = writeln!(out, "# TYPE cache_sync_pipeline_catch_ups_total counter");
    let _ = writeln!(
        out,
        "cache_sync_pipeline_catch_ups_total {}",
        state
            .pipeline
            .catch_ups
            .load(std::sync::atomic::Ordering::SeqCst)
    );
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out))
}
