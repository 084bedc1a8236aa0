//! Phase 2.5 end to end, as the command line and the API's job runner both run it: announce the
//! run, run it (lock, plan, guard, apply — `apply.rs`) while its progress goes to an observer and
//! to Redis, let the observer record the outcome, relay the outbox, and report a failure on the
//! errors channel. Rollbacks are operator actions, not pipeline phases: they are not announced,
//! and their change events go out through the outbox like any run's.

use super::{JobConfig, RunError, RunMode, RunProgress, RunRequest};
use crate::domain::events::Channels;
use crate::publish::{notices, PublishError, Publisher};
use crate::report::RunReport;
use crate::store::Store;
use async_trait::async_trait;
use serde_json::Value;

/// Who watches a run besides Redis: a progress bar, the API's job board.
#[async_trait]
pub trait RunObserver: Send + Sync {
    /// Before the run starts.
    async fn started(&self) {}

    /// A step of the run was reached.
    async fn step(&self, _progress: &RunProgress) {}

    /// The run ended; its events are relayed next.
    async fn ended(&self, _outcome: &Result<RunReport, RunError>) {}

    /// The relay failed: the events stay in the outbox for the next relay.
    async fn relay_failed(&self, error: &PublishError) {
        tracing::warn!(error = %error, "events stay in the outbox");
    }
}

/// A run nobody watches.
pub struct Unobserved;

impl RunObserver for Unobserved {}

/// What a run needs of the process: the database, the job's settings, Redis if configured.
#[derive(Clone, Copy)]
pub struct RunContext<'a> {
    pub store: &'a dyn Store,
    pub job: &'a JobConfig,
    pub publisher: Option<&'a Publisher>,
}

impl RunContext<'_> {
    /// Publishes a notice now (see `Publisher::announce`).
    async fn notify(&self, channel: fn(&Channels) -> String, event: &str, payload: Value) {
        if let Some(p) = self.publisher {
            p.announce(&channel(p.channels()), event, &payload).await;
        }
    }
}

/// Runs `mode` end to end. `request.plan.only` and `request.progress` are set from `mode` and
/// the observer.
///
/// # Errors
/// The run's error, after the failure notice went out.
pub async fn run_phase(
    context: RunContext<'_>,
    mut request: RunRequest,
    mode: &RunMode,
    observer: &dyn RunObserver,
) -> Result<RunReport, RunError> {
    // One short budget of waiting on Redis for the whole run (see `publish.rs`).
    let budgeted = context.publisher.map(Publisher::for_one_run);
    let context = RunContext {
        publisher: budgeted.as_ref(),
        ..context
    };
    let announced = mode.rollback_target().is_none();
    let job_id = request.job_id.clone();
    observer.started().await;
    if announced {
        let label = mode.label();
        let trigger = request.trigger.as_str();
        let payload = notices::sync_triggered(&job_id, &label, request.force, trigger);
        context
            .notify(Channels::sync_triggered, "cache_sync_triggered", payload)
            .await;
        let payload = notices::phase_started(&job_id, &label);
        context
            .notify(Channels::started, "phase_started", payload)
            .await;
    }
    request.plan.only = mode.families();
    let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel::<RunProgress>();
    request.progress = Some(sender);
    let run = async move {
        let result = match mode.rollback_target() {
            Some(to_run) => super::rollback(context.store, context.job, to_run, &request).await,
            None => super::run(context.store, context.job, &request).await,
        };
        // The last sender goes with the request: the progress loop below then ends.
        drop(request);
        result
    };
    let progress = async {
        while let Some(step) = receiver.recv().await {
            observer.step(&step).await;
            if announced {
                let payload =
                    notices::phase_progress(&job_id, step.step, step.percent, step.entries_changed);
                context
                    .notify(Channels::progress, "phase_progress", payload)
                    .await;
            }
        }
    };
    let (result, ()) = tokio::join!(run, progress);
    observer.ended(&result).await;
    if let Some(publisher) = context.publisher {
        match publisher.relay(context.store).await {
            Ok(outcome) => tracing::info!(published = outcome.published, "events relayed"),
            Err(e) => observer.relay_failed(&e).await,
        }
    }
    if let (true, Err(error)) = (announced, &result) {
        let payload = notices::run_failed(&job_id, &error.to_string());
        context
            .notify(Channels::errors, "cache_sync_failed", payload)
            .await;
    }
    result
}
