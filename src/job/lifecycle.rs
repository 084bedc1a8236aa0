//! Phase 2.5 end to end, as the command line and the API's job runner both run it: announce the
//! run, run it (lock, plan, guard, apply — `apply.rs`) while its progress goes to an observer and
//! to Redis, let the observer record the outcome, relay the outbox, and report a failure to the
//! app's pipeline dashboard and error log (`publish_failure`). The notices' shapes are
//! `domain::notices`. Rollbacks are operator actions, not pipeline phases: they are not announced,
//! and their change events go out through the outbox like any run's.

use super::{JobConfig, RunError, RunMode, RunProgress, RunRequest};
use crate::domain::events::Channels;
use crate::domain::notices::{self, Failure, JobFacts, Notice, Step};
use crate::domain::types::Family;
use crate::publish::{now_text, PublishError, Publisher};
use crate::report::RunReport;
use crate::store::Store;
use async_trait::async_trait;
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
    /// Publishes the notice `build` makes now (see `Publisher::announce`), if Redis is set.
    async fn publish(&self, build: impl FnOnce(&Channels, &str) -> Notice) {
        if let Some(p) = self.publisher {
            p.announce(&build(p.channels(), &now_text())).await;
        }
    }
}

/// Publishes that Phase 2.5 did not complete — the one place failures are published:
/// `processing_error` for the app's pipeline dashboard and the app's flat `ErrorMessage` on the
/// errors channel, under one new error id. Best effort, like every notice.
pub async fn publish_failure(publisher: Option<&Publisher>, job: &JobFacts<'_>, failure: &Failure) {
    let Some(p) = publisher else {
        return;
    };
    let error_id = uuid::Uuid::new_v4().to_string();
    let at = now_text();
    let channels = p.channels();
    p.announce(&notices::processing_error(
        channels, &at, &error_id, job, failure,
    ))
    .await;
    p.announce(&notices::error_message(
        channels, &at, &error_id, job, failure,
    ))
    .await;
}

/// Runs `mode` end to end. `request.plan.only` and `request.progress` are set from `mode` and
/// the observer.
///
/// # Errors
/// The run's error, after the failure notices went out.
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
    let label = mode.label();
    let facts = JobFacts {
        job_id: &job_id,
        mode: &label,
        force: request.force,
        triggered_by: request.trigger.as_str(),
    };
    observer.started().await;
    if announced {
        let covered = match mode.families() {
            families if families.is_empty() => Family::ALL.to_vec(),
            families => families,
        };
        let families: Vec<&str> = covered.iter().map(|f| f.as_str()).collect();
        context
            .publish(|ch, at| notices::sync_triggered(ch, at, &facts))
            .await;
        context
            .publish(|ch, at| notices::started(ch, at, &facts, &families))
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
        while let Some(reached) = receiver.recv().await {
            observer.step(&reached).await;
            if announced {
                let step = Step {
                    name: reached.step,
                    percent: reached.percent,
                    entries_changed: reached.entries_changed,
                };
                context
                    .publish(|ch, at| notices::progress(ch, at, &facts, &step))
                    .await;
                context
                    .publish(|ch, at| notices::job_progress(ch, at, &facts, &step))
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
        publish_failure(context.publisher, &facts, &error.failure()).await;
    }
    result
}
