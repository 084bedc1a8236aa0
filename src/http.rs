//! The HTTP API for the admin UI (SPEC §9): the compatibility endpoints under
//! `/api/processing/cache-sync/`, plans, universes, replay, history, rollback, metrics and an
//! OpenAPI document. Handlers call `job`, `history` and the store; they hold no SQL.

mod body;
mod connections;
pub mod error;
mod jobs;
mod metrics;
pub mod openapi;
pub mod pipeline;
mod universes;

use crate::job::JobConfig;
use crate::publish::Publisher;
use crate::store::{Owner, SettledJobs, Store, StoreError};
use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
pub use connections::ConnectionLimits;
use error::ApiError;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;

/// Largest request body accepted (the API's bodies are a few fields).
pub const BODY_LIMIT: usize = 64 * 1024;

/// Everything handlers share.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub job: Arc<JobConfig>,
    pub publisher: Option<Publisher>,
    /// `None` runs unauthenticated (allowed on loopback only, see `serve`).
    pub api_key: Option<Arc<String>>,
    /// The background job this process is running, for shutdown.
    pub running: Arc<Mutex<Option<jobs::RunningJob>>>,
    /// This instance's owner lock, taken at the first need (serving or a trigger) and held
    /// while the state lives: the jobs it creates carry its id.
    owner: Arc<tokio::sync::OnceCell<Owner>>,
    /// Run a job for each Phase 2 import announced on Redis (`serve --follow-imports`).
    pub follow_imports: bool,
    /// What the import follower did.
    pub pipeline: Arc<pipeline::PipelineCounters>,
    /// Test hook: a job whose run committed stops forever before recording its outcome,
    /// after announcing it on stderr (a process killed there must not leave a lie behind).
    pub test_pause_after_commit: bool,
    /// Test hook: a job's run stops forever just before its commit, after announcing it on
    /// stderr (a process killed there must leave the database as it was).
    pub test_pause_before_commit: bool,
}

impl AppState {
    /// State for a store and job configuration.
    pub fn new(
        store: Arc<dyn Store>,
        job: JobConfig,
        publisher: Option<Publisher>,
        api_key: Option<String>,
    ) -> Self {
        Self {
            store,
            job: Arc::new(job),
            publisher,
            api_key: api_key.map(Arc::new),
            running: Arc::new(Mutex::new(None)),
            owner: Arc::new(tokio::sync::OnceCell::new()),
            follow_imports: false,
            pipeline: Arc::default(),
            test_pause_after_commit: false,
            test_pause_before_commit: false,
        }
    }

    /// This instance's owner, its lock taken on the first call.
    ///
    /// # Errors
    /// The store's, when the lock cannot be taken.
    pub async fn owner(&self) -> Result<&Owner, StoreError> {
        self.owner
            .get_or_try_init(|| self.store.claim_owner())
            .await
    }

    /// Settles the jobs of instances that are gone (see `JobBoard::settle_orphans`), after
    /// making sure this instance's own lock is held (so its own jobs are never among them).
    ///
    /// # Errors
    /// The store's.
    pub async fn settle_orphans(&self) -> Result<SettledJobs, StoreError> {
        let owner = self.owner().await?;
        self.store.keep_owner(owner).await?;
        let settled = self.store.settle_orphans(ORPHAN_REASON).await?;
        if settled.completed + settled.failed > 0 {
            tracing::warn!(
                completed = settled.completed,
                failed = settled.failed,
                "jobs left unfinished by a stopped instance settled from the run records"
            );
        }
        Ok(settled)
    }
}

/// What a job whose instance stopped is failed with (unless its run committed).
const ORPHAN_REASON: &str = "interrupted: the service instance running the job stopped or \
                             restarted while the job was pending or running; the run was rolled back";

/// How often a serving instance settles the jobs of instances that stopped: a job of a killed
/// instance shows as interrupted within this, and the next trigger is not refused for it.
const ORPHAN_SWEEP: Duration = Duration::from_secs(2);

/// Compares in time that does not depend on where the inputs differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for (i, byte) in a.iter().enumerate() {
        diff |= usize::from(byte ^ b.get(i % b.len().max(1)).copied().unwrap_or(0));
    }
    diff == 0
}

async fn require_key(
    State(state): State<AppState>,
    headers: HeaderMap,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    if let Some(expected) = &state.api_key {
        let mut keys = headers.get_all("x-api-key").iter();
        let given = keys.next().map(|v| v.as_bytes()).unwrap_or_default();
        // Proxies disagree on which of two copies counts: ambiguous credentials are refused.
        if keys.next().is_some() {
            return Err(ApiError::BadRequest(
                "send the X-API-Key header once".to_owned(),
            ));
        }
        if !constant_time_eq(given, expected.as_bytes()) {
            return Err(ApiError::Unauthorized);
        }
    }
    Ok(next.run(request).await)
}

/// Answers every client or server error in the API's JSON shape, including those produced
/// before a handler runs (body limit, extractor rejections, wrong method, timeouts).
async fn json_errors(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let reason = status.canonical_reason().unwrap_or("error");
    let message = match axum::body::to_bytes(response.into_body(), 4096).await {
        Ok(bytes) if !bytes.is_empty() => String::from_utf8_lossy(&bytes).trim().to_owned(),
        _ => reason.to_owned(),
    };
    let code = reason.to_ascii_lowercase().replace([' ', '-'], "_");
    error::error_response(status, &code, &message)
}

/// The router. `GET /health`, `/health/live` and `/health/ready` need no key; everything
/// else does.
pub fn router(state: AppState) -> Router {
    let protected = Router::new()
        .route("/api/processing/cache-sync/trigger", post(jobs::trigger))
        .route(
            "/api/processing/cache-sync/status/{job_id}",
            get(jobs::status),
        )
        .route("/api/processing/cache-sync/history", get(jobs::history))
        .route("/api/processing/cache-sync/stats", get(jobs::stats))
        .route("/api/processing/cache-sync/plan", post(universes::plan))
        .route(
            "/api/processing/cache-sync/rollback",
            post(universes::rollback),
        )
        .route(
            "/api/processing/cache-sync/runs/{run_id}/replay",
            get(universes::replay),
        )
        .route("/api/universes", get(universes::list))
        .route(
            "/api/universes/{entry_type}/{name}/{key}",
            get(universes::one),
        )
        .route(
            "/api/universes/{entry_type}/{name}/{key}/history",
            get(universes::history),
        )
        .route(
            "/api/symbols/{symbol}/history",
            get(universes::symbol_history),
        )
        .route("/metrics", get(metrics::metrics))
        .route("/api/openapi.json", get(openapi::document))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_key));
    Router::new()
        .route("/health", get(jobs::health))
        .route("/health/live", get(jobs::live))
        .route("/health/ready", get(jobs::ready))
        .merge(protected)
        .fallback(|| async { ApiError::NotFound("no such endpoint".to_owned()) })
        .layer(RequestBodyLimitLayer::new(BODY_LIMIT))
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(30),
        ))
        .layer(middleware::from_fn(json_errors))
        .with_state(state)
}

/// As `serve_with`, under the default connection limits.
///
/// # Errors
/// As `serve_with`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> Result<(), anyhow::Error> {
    serve_with(
        listener,
        state,
        shutdown,
        grace,
        ConnectionLimits::default(),
    )
    .await
}

/// Takes this instance's owner lock and settles the jobs of instances that are gone (completed
/// with their run when the run record shows it committed, interrupted otherwise) — never a job
/// of a live instance — and again every `ORPHAN_SWEEP`; serves under `limits` until `shutdown`
/// resolves, then lets a running job finish within `grace` or aborts it (its transaction rolls
/// back and the job is recorded as interrupted, unless its run had committed).
///
/// # Errors
/// I/O errors of the listener; store errors at start.
pub async fn serve_with(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    grace: Duration,
    limits: ConnectionLimits,
) -> Result<(), anyhow::Error> {
    state.settle_orphans().await?;
    let sweep_state = state.clone();
    let sweep = tokio::spawn(async move {
        let mut every = tokio::time::interval(ORPHAN_SWEEP);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        every.tick().await;
        loop {
            every.tick().await;
            if let Err(e) = sweep_state.settle_orphans().await {
                tracing::warn!(error = %e, "cannot settle the jobs of stopped instances");
            }
        }
    });
    let relay_state = state.clone();
    // Events left pending by a crash or an outage go out while the service runs.
    let relay = tokio::spawn(async move {
        if let Some(publisher) = &relay_state.publisher {
            if let Err(e) = publisher.relay(relay_state.store.as_ref()).await {
                tracing::warn!(error = %e, "pending events not relayed");
            }
        }
    });
    let follower = state
        .follow_imports
        .then(|| tokio::spawn(pipeline::follow_imports(state.clone())));
    let scheduled = state
        .job
        .catch_up_schedule
        .clone()
        .map(|schedule| tokio::spawn(pipeline::follow_schedule(state.clone(), schedule)));
    connections::serve_connections(listener, router(state.clone()), limits, shutdown).await?;
    relay.abort();
    sweep.abort();
    if let Some(follower) = follower {
        follower.abort();
    }
    if let Some(scheduled) = scheduled {
        scheduled.abort();
    }
    jobs::finish_or_abort(&state, grace).await;
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM. The handlers are installed when this is called, not when the
/// future is first polled: a SIGTERM that arrives after the service says it is serving must shut it
/// down gracefully, never kill it with the default action.
///
/// Call it inside a Tokio runtime (outside one, tokio panics).
///
/// # Errors
/// The handlers cannot be installed (the runtime has no I/O driver, or the OS refuses).
pub fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()> + Send + 'static>
{
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut interrupt = signal(SignalKind::interrupt())?;
        let mut terminate = signal(SignalKind::terminate())?;
        Ok(async move {
            tokio::select! {
                _ = interrupt.recv() => {},
                _ = terminate.recv() => {},
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
        })
    }
}

#[cfg(test)]
mod tests {
    use super::constant_time_eq;

    #[test]
    fn keys_compare_equal_only_when_identical() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
        assert!(!constant_time_eq(b"", b"secret"));
        assert!(!constant_time_eq(b"secret", b""));
    }
}
