//! Beyond the compatibility endpoints: plans, universe listing and values (now or replayed),
//! histories, replay and rollback.

use super::body::ObjectBody;
use super::error::ApiError;
use super::AppState;
use crate::domain::types::{EntryKey, Family, RunId};
use crate::history::{self, PointInHistory};
use crate::job::{
    self, run_phase, PlanRequest, RunContext, RunMode, RunRequest, TriggerMode, Unobserved,
};
use crate::store::Trigger;
use axum::extract::{Path, Query, State};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{json, Value};

/// `POST …/plan` body.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanBody {
    #[serde(default)]
    pub mode: Option<String>,
}

/// `POST /api/processing/cache-sync/plan`: the full delta, nothing written, and a plan id.
pub async fn plan(
    State(state): State<AppState>,
    body: Option<ObjectBody<PlanBody>>,
) -> Result<Json<Value>, ApiError> {
    let mode = body
        .and_then(|ObjectBody(b)| b.mode)
        .unwrap_or_else(|| "full".to_owned());
    let only = TriggerMode::parse(&mode)
        .map_err(ApiError::BadRequest)?
        .families();
    let report = job::plan(
        state.store.as_ref(),
        &state.job,
        &PlanRequest { as_of: None, only },
        Utc::now().date_naive(),
    )
    .await?;
    let mut value = serde_json::to_value(&report).map_err(ApiError::internal)?;
    value["success"] = json!(true);
    Ok(Json(value))
}

fn universe_key(entry_type: &str, name: &str, key: &str) -> Result<EntryKey, ApiError> {
    for part in [entry_type, name, key] {
        if part.is_empty()
            || part.len() > 200
            || part.chars().any(char::is_control)
            || part.contains("..")
            || part.contains('/')
        {
            return Err(ApiError::BadRequest(
                "a universe is type/name/key, each 1–200 printable characters without `/` or `..`"
                    .to_owned(),
            ));
        }
    }
    let key = EntryKey::new(entry_type, name, key);
    // Other rows of `cache_entries` (app settings, configuration) are the app's, not the job's.
    if Family::owning(&key.scope()).is_none() {
        return Err(ApiError::NotFound(format!(
            "{key} is not a universe this job owns"
        )));
    }
    Ok(key)
}

/// `GET /api/universes`: every owned universe with counts and hashes.
pub async fn list(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let universes = state.store.universes(&state.job.environment).await?;
    Ok(Json(
        json!({"universes": universes, "total": universes.len()}),
    ))
}

/// Which point in history a read asks for.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AtQuery {
    pub at_run: Option<i64>,
    pub at: Option<DateTime<Utc>>,
}

/// `GET /api/universes/{type}/{name}/{key}?at_run=R|at=T`.
pub async fn one(
    State(state): State<AppState>,
    Path((entry_type, name, key)): Path<(String, String, String)>,
    Query(at): Query<AtQuery>,
) -> Result<Json<Value>, ApiError> {
    let key = universe_key(&entry_type, &name, &key)?;
    let when = match (at.at_run, at.at) {
        (Some(_), Some(_)) => {
            return Err(ApiError::BadRequest(
                "give at_run or at, not both".to_owned(),
            ))
        }
        (Some(run), None) => PointInHistory::AfterRun(RunId(run)),
        (None, Some(t)) => PointInHistory::AtTime(t),
        (None, None) => PointInHistory::Now,
    };
    let shown = history::show(state.store.as_ref(), &state.job.environment, &key, when).await?;
    if shown.value.is_none() {
        return Err(ApiError::NotFound(format!(
            "{key} does not exist at that point"
        )));
    }
    Ok(Json(
        serde_json::to_value(shown).map_err(ApiError::internal)?,
    ))
}

/// Limit of history listings.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitQuery {
    pub limit: Option<i64>,
}

fn limit_of(q: &LimitQuery) -> Result<i64, ApiError> {
    let limit = q.limit.unwrap_or(50);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::BadRequest("limit must be 1–1000".to_owned()));
    }
    Ok(limit)
}

/// `GET /api/universes/{type}/{name}/{key}/history`.
pub async fn history(
    State(state): State<AppState>,
    Path((entry_type, name, key)): Path<(String, String, String)>,
    Query(q): Query<LimitQuery>,
) -> Result<Json<Value>, ApiError> {
    let key = universe_key(&entry_type, &name, &key)?;
    let lines = history::history(
        state.store.as_ref(),
        &state.job.environment,
        Some(&key),
        None,
        limit_of(&q)?,
    )
    .await?;
    Ok(Json(json!({"universe": key.to_string(), "changes": lines})))
}

/// `GET /api/symbols/{symbol}/history`: every universe the symbol joined or left.
pub async fn symbol_history(
    State(state): State<AppState>,
    Path(symbol): Path<String>,
    Query(q): Query<LimitQuery>,
) -> Result<Json<Value>, ApiError> {
    let ticker = crate::domain::securities::normalize_ticker(&symbol).ok_or_else(|| {
        ApiError::BadRequest("a ticker is 1–20 letters, digits, `.`, `-` or `/`".to_owned())
    })?;
    let lines = history::history(
        state.store.as_ref(),
        &state.job.environment,
        None,
        Some(&ticker),
        limit_of(&q)?,
    )
    .await?;
    Ok(Json(json!({"symbol": ticker, "changes": lines})))
}

/// `GET /api/processing/cache-sync/runs/{run_id}/replay`: the whole catalog at a run, verified.
pub async fn replay(
    State(state): State<AppState>,
    Path(run_id): Path<i64>,
) -> Result<Json<Value>, ApiError> {
    let report = history::replay(
        state.store.as_ref(),
        &state.job.environment,
        RunId(run_id),
        false,
    )
    .await?;
    Ok(Json(
        serde_json::to_value(report).map_err(ApiError::internal)?,
    ))
}

/// `POST …/rollback` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RollbackBody {
    pub to_run: i64,
    #[serde(default)]
    pub dry_run: bool,
    #[serde(default)]
    pub force: bool,
}

/// `POST /api/processing/cache-sync/rollback`: plan (`dry_run`) or apply a rollback.
pub async fn rollback(
    State(state): State<AppState>,
    ObjectBody(body): ObjectBody<RollbackBody>,
) -> Result<Json<Value>, ApiError> {
    let store = state.store.as_ref();
    if body.dry_run {
        let report = job::plan_rollback(
            store,
            &state.job,
            RunId(body.to_run),
            Utc::now().date_naive(),
        )
        .await?;
        let mut value = serde_json::to_value(report).map_err(ApiError::internal)?;
        value["success"] = json!(true);
        return Ok(Json(value));
    }
    let request = RunRequest {
        plan: PlanRequest::default(),
        force: body.force,
        trigger: Trigger::Rollback,
        now: Utc::now(),
        pause_before_commit: false,
        job_id: job::new_job_id(),
        progress: None,
        expect_plan: None,
    };
    let context = RunContext {
        store,
        job: &state.job,
        publisher: state.publisher.as_ref(),
    };
    let mode = RunMode::Rollback(RunId(body.to_run));
    let report = run_phase(context, request, &mode, &Unobserved).await?;
    let mut value = serde_json::to_value(&report.outcome).map_err(ApiError::internal)?;
    value["success"] = json!(true);
    Ok(Json(value))
}
