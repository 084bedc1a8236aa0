//! Phase 2.5 on Phase 2's word (issue 15 item 1). With `follow_imports`, the service subscribes
//! to `{prefix}:import:completed` and, for each `data_import_completed` (the app's Phase 2
//! format: `{"event": "data_import_completed", "payload": {"run_id": …, …}}`), starts a job as
//! an API trigger would, `triggered_by: "pipeline"`, with the import's `run_id` recorded on it.
//! The job board decides once for all instances, re-published events and restarts:
//! `cache_sync_job.import_run_id` is unique. An import arriving while a job runs waits in this
//! instance's queue and starts after it; its completion or failure is announced like any job's.

use super::error::ApiError;
use super::jobs::{start_job, JobSpec};
use super::AppState;
use crate::domain::config::CatchUpSchedule;
use crate::job::TriggerMode;
use crate::store::Trigger;
use chrono::Utc;
use futures_util::StreamExt as _;
use serde_json::Value;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

/// What the pipeline follower did, for `/metrics` (and tests that wait for it).
#[derive(Debug, Default)]
pub struct PipelineCounters {
    /// `data_import_completed` messages handled: started, queued, or found already run.
    pub imports_handled: AtomicU64,
    /// Catch-ups queued: prices newer than the last completed run, with no job for their date
    /// yet, found on (re)subscribing or at a scheduled check.
    pub catch_ups: AtomicU64,
    /// Checks made at the times `[pipeline] catch_up_schedule` names.
    pub scheduled_checks: AtomicU64,
    /// When the next scheduled check is due, in Unix seconds (0: no schedule).
    pub next_scheduled_check: AtomicI64,
}

impl PipelineCounters {
    /// Imports handled so far.
    pub fn imports_handled(&self) -> u64 {
        self.imports_handled.load(Ordering::SeqCst)
    }
}

/// How often queued imports retry while a job is in the way, and how long the follower waits
/// before resubscribing after Redis went away.
const RETRY: Duration = Duration::from_secs(1);

/// The longest a scheduled check's sleep lasts before the wall clock is read again (a clock
/// set forward or a suspended host then costs at most this much lateness).
const CLOCK_RECHECK: Duration = Duration::from_secs(60);

/// The longest import id kept (the app's are UUIDs).
const MAX_IMPORT_ID: usize = 200;

/// The import a message announces: `payload.run_id` of a `data_import_completed`; `None` for
/// anything else on the channel.
pub fn import_run_id(message: &str) -> Option<String> {
    let event: Value = serde_json::from_str(message).ok()?;
    if event.get("event")?.as_str()? != "data_import_completed" {
        return None;
    }
    match event.get("payload")?.get("run_id")? {
        Value::String(id) if !id.is_empty() && id.len() <= MAX_IMPORT_ID => Some(id.clone()),
        Value::Number(id) => Some(id.to_string()),
        _ => None,
    }
}

/// Follows Phase 2's completion channel until the task is aborted, resubscribing after Redis
/// goes away.
pub async fn follow_imports(state: AppState) {
    let Some(publisher) = state.publisher.clone() else {
        tracing::warn!("--follow-imports needs Redis (REDIS_URL); not following imports");
        return;
    };
    let mut queue = VecDeque::new();
    loop {
        match publisher.subscribe_imports().await {
            Ok(mut pubsub) => {
                tracing::info!("following Phase 2's import completions");
                // Pub/sub drops what is published while nobody listens: look once subscribed.
                catch_up(&state, &mut queue).await;
                drain(&state, &mut queue).await;
                let mut messages = pubsub.on_message();
                let mut retry = tokio::time::interval(RETRY);
                retry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tokio::select! {
                        message = messages.next() => {
                            let Some(message) = message else { break };
                            let text: String = message.get_payload().unwrap_or_default();
                            if let Some(id) = import_run_id(&text) {
                                if !queue.contains(&id) {
                                    queue.push_back(id);
                                }
                                drain(&state, &mut queue).await;
                                state.pipeline.imports_handled.fetch_add(1, Ordering::SeqCst);
                            }
                        }
                        _ = retry.tick() => drain(&state, &mut queue).await,
                    }
                }
                tracing::warn!("the import subscription ended; resubscribing");
            }
            Err(e) => tracing::warn!(error = %e, "cannot subscribe to import completions"),
        }
        tokio::time::sleep(RETRY).await;
    }
}

/// Looks for prices no completed run covered at each time the schedule names, whether or not
/// Redis answers (an outage is when announcements are lost), until the task is aborted.
pub async fn follow_schedule(state: AppState, schedule: CatchUpSchedule) {
    tracing::info!(schedule = %schedule.describe(), "catch-up checks scheduled");
    let mut queue = VecDeque::new();
    let mut retry = tokio::time::interval(RETRY);
    retry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let Some(next) = schedule.next_after(Utc::now()) else {
            tracing::warn!(schedule = %schedule.describe(), "the catch-up schedule fires no more");
            state
                .pipeline
                .next_scheduled_check
                .store(0, Ordering::SeqCst);
            return;
        };
        state
            .pipeline
            .next_scheduled_check
            .store(next.timestamp(), Ordering::SeqCst);
        let wait = (next - Utc::now())
            .to_std()
            .unwrap_or_default()
            .min(CLOCK_RECHECK);
        tokio::select! {
            () = tokio::time::sleep(wait) => {
                if Utc::now() >= next {
                    state.pipeline.scheduled_checks.fetch_add(1, Ordering::SeqCst);
                    catch_up(&state, &mut queue).await;
                    drain(&state, &mut queue).await;
                }
            }
            _ = retry.tick(), if !queue.is_empty() => drain(&state, &mut queue).await,
        }
    }
}

/// Queues a catch-up when the prices hold a date newer than the last completed run's as-of (a
/// Phase 2 announcement missed while the service was down or Redis away). Its id,
/// `catch-up:{date}`, makes it one job per price date across instances and restarts.
async fn catch_up(state: &AppState, queue: &mut VecDeque<String>) {
    let newer = async {
        let mut tx = state.store.begin().await?;
        let latest = tx.latest_price_date().await?;
        tx.rollback().await?;
        let done = state
            .store
            .metrics(&state.job.environment)
            .await?
            .last_success_as_of;
        Ok::<_, crate::store::StoreError>(latest.filter(|l| done.is_none_or(|d| *l > d)))
    };
    match newer.await {
        Ok(Some(date)) => {
            let id = format!("catch-up:{date}");
            // A catch-up for this date that ran and failed is not retried on every check: its
            // failure was announced, and a trigger or the next import runs again.
            let attempted = matches!(state.store.job_for_import(&id).await, Ok(Some(_)));
            if !attempted && !queue.contains(&id) {
                tracing::info!(as_of = %date, "prices newer than the last completed run: catching up");
                state.pipeline.catch_ups.fetch_add(1, Ordering::SeqCst);
                queue.push_back(id);
            }
        }
        Ok(None) => {}
        Err(e) => tracing::warn!(error = %e, "cannot check for a missed import"),
    }
}

/// Starts the oldest queued import that has no job yet; the others wait for it. An import whose
/// job exists (run here, on another instance, or before a restart) leaves the queue.
async fn drain(state: &AppState, queue: &mut VecDeque<String>) {
    while let Some(id) = queue.front().cloned() {
        match state.store.job_for_import(&id).await {
            Ok(Some(_)) => {
                queue.pop_front();
                continue;
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(error = %e, import_run_id = %id, "cannot look up the import's job");
                return;
            }
        }
        let spec = JobSpec {
            mode: TriggerMode::Full,
            force: false,
            plan_id: None,
            triggered_by: Trigger::Pipeline,
            import_run_id: Some(id.clone()),
        };
        match start_job(state, spec).await {
            Ok(job_id) => {
                tracing::info!(job_id, import_run_id = %id, "Phase 2 finished: job started");
                queue.pop_front();
                return;
            }
            // Runs after the job in the way.
            Err(ApiError::AlreadyRunning(_)) => return,
            Err(e) => {
                // Another instance inserting the same import first shows as a unique violation.
                if matches!(state.store.job_for_import(&id).await, Ok(Some(_))) {
                    queue.pop_front();
                    continue;
                }
                tracing::warn!(error = %e, import_run_id = %id, "cannot start the import's job");
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::import_run_id;

    #[test]
    fn only_data_import_completed_with_a_run_id_is_an_import() {
        let completed = r#"{"event":"data_import_completed","timestamp":"2025-01-20T16:45:00Z",
            "payload":{"run_id":"7d1c","duration_seconds":2100,"total_symbols":505}}"#;
        assert_eq!(import_run_id(completed).as_deref(), Some("7d1c"));
        let numbered = r#"{"event":"data_import_completed","payload":{"run_id":42}}"#;
        assert_eq!(import_run_id(numbered).as_deref(), Some("42"));
        for other in [
            r#"{"event":"data_import_started","payload":{"run_id":"7d1c"}}"#,
            r#"{"event":"data_import_completed","payload":{}}"#,
            r#"{"event":"data_import_completed","payload":{"run_id":""}}"#,
            r#"{"event":"data_import_completed"}"#,
            "not json",
        ] {
            assert_eq!(import_run_id(other), None, "{other}");
        }
    }
}
