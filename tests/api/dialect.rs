//! TickStockAppV2's own dialect (issue 11), checked field by field and type by type against what
//! the app's code reads. Each test names the app file and function it follows (the app's public
//! repository `github:mcfalli/TickSTockAppV2`; none of its code is copied here, only the names
//! and values it reads):
//!
//! - errors: `src/core/models/error_models.py` `ErrorMessage` (validated by `from_json`, which
//!   `src/core/services/enhanced_logger.py` `EnhancedLogger.log_from_redis_message` calls for
//!   each message `src/core/services/error_subscriber.py` `ErrorSubscriber._process_message`
//!   receives on `tickstock:errors`);
//! - phases: `src/core/services/processing_event_subscriber.py`
//!   `ProcessingEventSubscriber._process_message` (dispatch through `event_handlers`),
//!   `_handle_processing_error`, `_handle_job_progress`;
//! - job ids and error bodies: `src/api/rest/admin_historical_data.py` `admin_rebuild_cache`
//!   (flashes `job_id[:8]`; on a non-202 answer shows `message`) and `get_cache_sync_status`;
//! - names: the Sprint-36 contract,
//!   `docs/planning/sprint_history/sprint36/TickStockAppV2_integration_callback.md` §1.2–1.4.
//!
//! Real PostgreSQL and SQLite (both stores) and a real Redis under a prefix of the test's own.

use crate::helpers::{
    cache_sync_command, describe, on_both_stores, small_market, Backend, TestDb, WAIT,
};
use crate::http::{app_state, finish_job, get, post, send, status_uri, Answer, KEY, TRIGGER};
use crate::pubsub::{redis_url, Received, StreamCleanup, Subscriber};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use tickstock_cache_sync::domain::events::Channels;
use tickstock_cache_sync::http as api;
use tickstock_cache_sync::job::JobConfig;
use tickstock_cache_sync::publish::Publisher;

/// `SEVERITY_LEVELS` in `src/core/models/error_models.py`.
const APP_SEVERITIES: [&str; 5] = ["debug", "info", "warning", "error", "critical"];
/// `ERROR_CATEGORIES` in `src/core/models/error_models.py`.
const APP_CATEGORIES: [&str; 10] = [
    "pattern",
    "database",
    "network",
    "validation",
    "performance",
    "security",
    "configuration",
    "integration",
    "websocket",
    "redis",
];
/// The keys of `ProcessingEventSubscriber.event_handlers` in
/// `src/core/services/processing_event_subscriber.py`: every other event type is logged as
/// unhandled.
const APP_EVENT_HANDLERS: [&str; 10] = [
    "daily_processing_started",
    "daily_processing_progress",
    "daily_processing_completed",
    "data_import_started",
    "data_import_completed",
    "indicator_processing_started",
    "indicator_progress",
    "indicator_processing_completed",
    "processing_error",
    "job_progress_update",
];

fn keys(v: &Value) -> BTreeSet<&str> {
    v.as_object()
        .unwrap_or_else(|| panic!("an object: {v}"))
        .keys()
        .map(String::as_str)
        .collect()
}

/// Redis under a fresh prefix: its channels, a publisher and a subscriber to all of them.
struct Redis {
    _cleanup: StreamCleanup,
    url: String,
    prefix: String,
    channels: Channels,
    publisher: Publisher,
    subscriber: Subscriber,
}

impl Redis {
    async fn new() -> Self {
        let url = redis_url();
        let mut cleanup = StreamCleanup::new(&url);
        let prefix = cleanup.prefix();
        let channels = Channels {
            prefix: prefix.clone(),
        };
        let publisher = Publisher::new(&url, channels.clone(), 100_000).expect("a Redis URL");
        let subscriber = Subscriber::new(&url, &prefix).await;
        Self {
            _cleanup: cleanup,
            url,
            prefix,
            channels,
            publisher,
            subscriber,
        }
    }

    fn job(&self) -> JobConfig {
        JobConfig {
            channels: self.channels.clone(),
            ..JobConfig::default()
        }
    }

    /// Triggers an API job with `body` under `job`, waits for it, and returns its id and what
    /// Redis carried.
    async fn api_job(
        &mut self,
        db: &TestDb,
        job: JobConfig,
        body: &Value,
    ) -> (String, Vec<Received>) {
        let state = app_state(db, job, Some(self.publisher.clone()));
        let app = api::router(state.clone());
        let accepted = post(&app, TRIGGER, body).await;
        assert_eq!(accepted.status, StatusCode::ACCEPTED, "{}", accepted.text());
        let job_id = finish_job(&state).await;
        (job_id, self.subscriber.drain().await)
    }

    /// `channel event` of each message, for failure messages short enough to read.
    fn summary(received: &[Received]) -> Vec<String> {
        received
            .iter()
            .map(|r| format!("{} {}", r.channel, r.message["event"]))
            .collect()
    }

    fn on<'a>(received: &'a [Received], channel: &str) -> Vec<&'a Received> {
        received.iter().filter(|r| r.channel == channel).collect()
    }
}

/// An RFC 3339 time, as pydantic's `datetime` accepts it.
fn time(v: &Value) -> DateTime<Utc> {
    v.as_str()
        .unwrap_or_else(|| panic!("a time as text: {v}"))
        .parse()
        .unwrap_or_else(|e| panic!("an RFC 3339 time ({e}): {v}"))
}

/// The one `ErrorMessage` on the errors channel, checked as `ErrorMessage.from_json` reads it
/// (`src/core/models/error_models.py`): exactly its nine fields, `error_id` a UUID, `source`
/// "TickStockPL", `severity` and `category` from its lists, `message` text, `component` and
/// `traceback` text or null, `context` an object, `timestamp` a datetime.
fn the_error_message<'a>(redis: &Redis, received: &'a [Received]) -> &'a Value {
    let errors = Redis::on(received, &redis.channels.errors());
    assert_eq!(
        errors.len(),
        1,
        "one error per failed run: {:?}",
        Redis::summary(received)
    );
    let m = &errors[0].message;
    assert_eq!(
        keys(m),
        BTreeSet::from([
            "error_id",
            "source",
            "severity",
            "category",
            "message",
            "component",
            "traceback",
            "context",
            "timestamp",
        ]),
        "the flat ErrorMessage, no envelope: {m}"
    );
    uuid::Uuid::parse_str(m["error_id"].as_str().expect("error_id is text"))
        .unwrap_or_else(|e| panic!("error_id is a UUID ({e}): {m}"));
    assert_eq!(m["source"], "TickStockPL", "{m}");
    assert!(
        APP_SEVERITIES.contains(&m["severity"].as_str().expect("severity is text")),
        "{m}"
    );
    assert!(
        APP_CATEGORIES.contains(&m["category"].as_str().expect("category is text")),
        "{m}"
    );
    assert!(!m["message"].as_str().expect("message is text").is_empty());
    assert!(
        m["component"].is_string() || m["component"].is_null(),
        "{m}"
    );
    assert!(m["traceback"].is_null(), "no stack traces are sent: {m}");
    assert!(m["context"].is_object(), "{m}");
    time(&m["timestamp"]);
    m
}

/// The one `processing_error` of a failed run, as `_handle_processing_error` reads it: an
/// envelope whose event is in the app's handler table, with text in `payload.error_message`.
fn the_processing_error<'a>(redis: &Redis, received: &'a [Received]) -> &'a Value {
    let ended: Vec<&Received> = Redis::on(received, &redis.channels.completed())
        .into_iter()
        .filter(|r| r.message["event"] == "processing_error")
        .collect();
    assert_eq!(
        ended.len(),
        1,
        "one processing_error: {:?}",
        Redis::summary(received)
    );
    assert!(APP_EVENT_HANDLERS.contains(&"processing_error"));
    let payload = ended[0].payload();
    assert!(payload["error_message"].is_string(), "{payload}");
    payload
}

// ---------------------------------------------------------------------------------------------
// 1. Errors the app can read
// ---------------------------------------------------------------------------------------------

async fn a_refused_and_a_failed_run_reach_the_apps_error_log_as_its_flat_error_message(
    backend: Backend,
) {
    // Follows src/core/models/error_models.py ErrorMessage.from_json and
    // src/core/services/processing_event_subscriber.py _handle_processing_error.
    let mut redis = Redis::new().await;

    // Refused: the synthetic market's prices are months older than today, so a job without
    // `force` under a 30-day age limit trips the stale-input guard after planning what it would
    // change.
    let db = TestDb::on(backend).await;
    db.load(&small_market(111, 1), 1).await;
    let mut job = redis.job();
    job.guards.max_age_days = Some(30);
    let (job_id, received) = redis.api_job(&db, job, &json!({"mode": "full"})).await;
    let m = the_error_message(&redis, &received);
    assert_eq!(m["severity"], "error", "{m}");
    assert_eq!(m["category"], "validation", "{m}");
    let c = &m["context"];
    assert_eq!(c["job_id"], job_id.as_str(), "{m}");
    let run_id: i64 = db
        .sql("select run_id from cache_sync_run where status = 'refused'")
        .scalar()
        .await;
    assert_eq!(c["run_id"], run_id, "the refused run record: {m}");
    let guard = c["guard"].as_array().expect("guard is a list");
    assert!(!guard.is_empty(), "{m}");
    assert!(guard.iter().all(|g| g["guard"].is_string()), "{m}");
    assert!(guard.iter().any(|g| g["guard"] == "too_old"), "{m}");
    let would = &c["would_change"];
    assert!(
        would["created"].as_u64().unwrap() > 0,
        "a first run creates: {m}"
    );
    assert!(would["summary"].is_object(), "{m}");
    assert_eq!(c["mode"], "full");
    assert_eq!(c["triggered_by"], "api");
    assert_eq!(c["force"], false);
    let p = the_processing_error(&redis, &received);
    assert_eq!(p["error_message"], m["message"]);
    assert_eq!(p["error_id"], m["error_id"], "one failure, one id");
    assert_eq!(p["job_id"], job_id.as_str());
    assert_eq!(p["run_id"], run_id);

    // Failed: no prices at all. Nothing was recorded, no guard tripped.
    let empty = TestDb::on(backend).await;
    let (job_id, received) = redis
        .api_job(&empty, redis.job(), &json!({"mode": "full"}))
        .await;
    let m = the_error_message(&redis, &received);
    assert_eq!(m["severity"], "error", "{m}");
    assert_eq!(m["category"], "validation", "{m}");
    assert!(
        m["message"].as_str().unwrap().contains("ohlcv_daily"),
        "{m}"
    );
    assert_eq!(m["context"]["job_id"], job_id.as_str());
    assert!(m["context"]["run_id"].is_null(), "{m}");
    assert_eq!(m["context"]["guard"], json!([]), "{m}");
    assert!(m["context"]["would_change"].is_null(), "{m}");
    let p = the_processing_error(&redis, &received);
    assert_eq!(p["error_message"], m["message"]);
}

on_both_stores!(a_refused_and_a_failed_run_reach_the_apps_error_log_as_its_flat_error_message);

// ---------------------------------------------------------------------------------------------
// 2. Phase progress the dashboard shows
// ---------------------------------------------------------------------------------------------

/// The phase's events of one successful run, as the app's subscribers read them.
fn assert_phase_events(redis: &Redis, received: &[Received], job_id: &str) {
    let ch = &redis.channels;
    let names = |channel: String| -> Vec<String> {
        Redis::on(received, &channel)
            .iter()
            .map(|r| r.message["event"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(names(ch.started()), ["cache_sync_started"]);
    let progress = names(ch.progress());
    assert!(!progress.is_empty());
    assert!(
        progress.iter().all(|e| e == "cache_sync_progress"),
        "{progress:?}"
    );
    assert_eq!(names(ch.completed()), ["cache_sync_completed"]);
    // Events the app already reads keep their channels and names.
    assert_eq!(names(ch.sync_triggered()), ["cache_sync_triggered"]);
    assert_eq!(names(ch.sync_complete()), ["cache_sync_completed"]);

    let started = Redis::on(received, &ch.started())[0].payload();
    assert_eq!(started["phase"], "cache_sync", "ProcessingPhase.CACHE_SYNC");
    assert_eq!(started["job_id"], job_id);
    assert!(started["families"]
        .as_array()
        .is_some_and(|f| !f.is_empty()));
    for p in Redis::on(received, &ch.progress()) {
        let p = p.payload();
        assert!(p["percent_complete"].is_u64(), "{p}");
        assert!(p["step"].is_string(), "{p}");
        assert_eq!(p["job_id"], job_id);
    }
    let completed = Redis::on(received, &ch.completed())[0];
    let sync_complete = Redis::on(received, &ch.sync_complete())[0];
    assert_eq!(
        completed.message, sync_complete.message,
        "one message, two channels"
    );
    let total_changes = completed.payload()["total_changes"].as_u64().unwrap();

    // job_progress_update: src/core/services/processing_event_subscriber.py _handle_job_progress
    // keeps it only when "processing" is in `source`, and reads percentage, completed, failed,
    // current_symbol and estimated_completion.
    let updates = Redis::on(received, &ch.monitoring());
    assert_eq!(updates.len(), progress.len(), "one per step");
    assert!(APP_EVENT_HANDLERS.contains(&"job_progress_update"));
    let mut percentages = Vec::new();
    for u in &updates {
        let m = &u.message;
        assert_eq!(m["event"], "job_progress_update", "{m}");
        assert!(m["source"].as_str().unwrap().contains("processing"), "{m}");
        let p = u.payload();
        for field in ["current_symbol", "estimated_completion"] {
            assert!(p.get(field).is_some(), "{field} present: {p}");
            assert!(p[field].is_null() || p[field].is_string(), "{field}: {p}");
        }
        assert!(p["completed"].is_u64(), "{p}");
        assert_eq!(p["failed"], 0, "{p}");
        assert_eq!(p["phase"], "cache_sync");
        assert_eq!(p["job_id"], job_id);
        percentages.push(p["percentage"].as_f64().expect("percentage is a number"));
    }
    assert!(
        percentages.windows(2).all(|w| w[0] <= w[1]),
        "{percentages:?}"
    );
    assert_eq!(percentages.last(), Some(&100.0));
    let last = updates.last().unwrap().payload();
    assert_eq!(
        last["completed"], total_changes,
        "every entry applied: {last}"
    );
    // Nothing failed: no error, no processing_error.
    assert!(Redis::on(received, &ch.errors()).is_empty());
}

async fn the_phase_events_of_an_api_job_and_a_command_line_run_are_the_ones_the_dashboard_handles(
    backend: Backend,
) {
    // Follows src/core/services/processing_event_subscriber.py
    // ProcessingEventSubscriber._process_message and _handle_job_progress.
    let mut redis = Redis::new().await;
    let db = TestDb::on(backend).await;
    let market = small_market(112, 2);
    db.load(&market, 1).await;
    let (job_id, received) = redis
        .api_job(&db, redis.job(), &json!({"mode": "full", "force": true}))
        .await;
    assert_phase_events(&redis, &received, &job_id);

    // The nightly pipeline's command line goes through the same lifecycle.
    db.load_next(&market, 2).await;
    let mut command = cache_sync_command(&db, &["run", "--force"]);
    command
        .env("REDIS_URL", &redis.url)
        .env("CACHE_SYNC_CHANNEL_PREFIX", &redis.prefix);
    let out = tokio::time::timeout(WAIT, tokio::process::Command::from(command).output())
        .await
        .expect("the run ends in time")
        .expect("start cache-sync");
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let received = redis.subscriber.drain().await;
    let triggered = Redis::on(&received, &redis.channels.sync_triggered());
    let job_id = triggered[0].payload()["job_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(triggered[0].payload()["triggered_by"], "cli");
    assert_phase_events(&redis, &received, &job_id);
}

on_both_stores!(
    the_phase_events_of_an_api_job_and_a_command_line_run_are_the_ones_the_dashboard_handles
);

// ---------------------------------------------------------------------------------------------
// 3. Job ids
// ---------------------------------------------------------------------------------------------

async fn job_ids_are_uuids_that_differ_in_their_first_8_digits_and_old_ids_are_still_found(
    backend: Backend,
) {
    // Follows src/api/rest/admin_historical_data.py admin_rebuild_cache (flashes job_id[:8])
    // and get_cache_sync_status (GET …/status/{job_id}).
    let db = TestDb::on(backend).await;
    db.load(&small_market(113, 1), 1).await;
    let state = app_state(&db, JobConfig::default(), None);
    let app = api::router(state.clone());
    let mut ids = Vec::new();
    for _ in 0..3 {
        let accepted = post(&app, TRIGGER, &json!({"mode": "themes", "force": true})).await;
        assert_eq!(accepted.status, StatusCode::ACCEPTED, "{}", accepted.text());
        let job_id = accepted.json()["job_id"].as_str().unwrap().to_owned();
        assert_eq!(finish_job(&state).await, job_id);
        let uuid = uuid::Uuid::parse_str(&job_id)
            .unwrap_or_else(|e| panic!("job ids are UUIDs ({e}): {job_id}"));
        assert_eq!(uuid.get_version_num(), 4, "{job_id}");
        assert_eq!(
            uuid.hyphenated().to_string(),
            job_id,
            "lowercase, hyphenated"
        );
        ids.push(job_id);
    }
    let shown: BTreeSet<&str> = ids.iter().map(|id| &id[..8]).collect();
    assert_eq!(
        shown.len(),
        ids.len(),
        "the admin page tells jobs apart: {ids:?}"
    );

    // A job recorded before ids were UUIDs.
    let old = "cs-20261128170922-0211ba542420b68c";
    db.sql(
        "insert into cache_sync_job (job_id, mode, force, triggered_by, status, created_at)
         values ($1, 'full', false, 'api', 'completed', $2)",
    )
    .bind(old)
    .bind(chrono::TimeZone::with_ymd_and_hms(&Utc, 2026, 11, 28, 17, 9, 22).unwrap())
    .execute()
    .await;
    let status = get(&app, &status_uri(old)).await;
    assert_eq!(status.status, StatusCode::OK, "{}", status.text());
    assert_eq!(status.json()["job_id"], old);
    assert_eq!(status.json()["status"], "completed");
    let history = get(&app, "/api/processing/cache-sync/history?limit=10")
        .await
        .json();
    let listed: Vec<&str> = history["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["job_id"].as_str().unwrap())
        .collect();
    assert_eq!(history["total"], 4);
    assert!(listed.contains(&old), "{listed:?}");
    for id in &ids {
        assert!(listed.contains(&id.as_str()), "{listed:?}");
    }
}

on_both_stores!(job_ids_are_uuids_that_differ_in_their_first_8_digits_and_old_ids_are_still_found);

// ---------------------------------------------------------------------------------------------
// 4. Error bodies
// ---------------------------------------------------------------------------------------------

/// What `admin_rebuild_cache` flashes for a non-202 answer: `message` when the body has one.
fn what_the_admin_sees(answer: &Answer) -> String {
    let body: Value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
    match body.get("message").and_then(Value::as_str) {
        Some(message) => format!("Failed to trigger cache sync: {message}"),
        None => format!(
            "Failed to trigger cache sync: HTTP {}",
            answer.status.as_u16()
        ),
    }
}

fn assert_app_readable_error(answer: &Answer, status: StatusCode, code: &str) {
    assert_eq!(answer.status, status, "{}", answer.text());
    let body = answer.json();
    assert_eq!(body["success"], Value::Bool(false), "{body}");
    let message = body["message"].as_str().expect("a top-level message");
    assert!(!message.is_empty());
    assert_eq!(body["error"]["message"], message, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert_eq!(keys(&body), BTreeSet::from(["success", "message", "error"]));
    assert!(!what_the_admin_sees(answer).ends_with(&format!("HTTP {}", status.as_u16())));
}

async fn every_error_body_has_success_false_and_the_message_the_admin_route_shows(
    backend: Backend,
) {
    // Follows src/api/rest/admin_historical_data.py admin_rebuild_cache: on a non-202 answer
    // it shows `message` from the body, else only "HTTP <status>".
    let db = TestDb::on(backend).await;
    let state = app_state(&db, JobConfig::default(), None);
    let app = api::router(state.clone());

    // A job another live instance runs.
    let other = db.store.claim_owner().await.unwrap();
    db.sql(
        "insert into cache_sync_job (job_id, mode, force, triggered_by, status, owner)
         values ('0b7a6d2e-5a44-4b8e-9a55-3c1f9f5e2d10', 'full', false, 'api', 'running', $1)",
    )
    .bind(other.id())
    .execute()
    .await;
    let busy = post(&app, TRIGGER, &json!({"mode": "full", "force": true})).await;
    assert_app_readable_error(&busy, StatusCode::CONFLICT, "already_running");
    assert!(
        what_the_admin_sees(&busy).contains("already running"),
        "{}",
        what_the_admin_sees(&busy)
    );

    let cases = [
        (
            send(&app, "POST", TRIGGER, None, Some(b"{}")).await,
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        ),
        (
            post(&app, TRIGGER, &json!({"mode": "everything"})).await,
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            send(&app, "POST", TRIGGER, Some(KEY), Some(b"{not json")).await,
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            get(&app, &status_uri("5f1d3c9a-0000-4000-8000-000000000000")).await,
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        // Rejected by the framework before any handler: rewritten into the same shape.
        (
            send(&app, "GET", TRIGGER, Some(KEY), None).await,
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
    ];
    for (answer, status, code) in &cases {
        assert_app_readable_error(answer, *status, code);
    }

    // The OpenAPI document says so.
    let spec = get(&app, "/api/openapi.json").await.json();
    let error = &spec["components"]["schemas"]["Error"];
    let required: BTreeSet<&str> = error["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(required, BTreeSet::from(["success", "message", "error"]));
    assert_eq!(error["properties"]["message"]["type"], "string");
    assert_eq!(error["properties"]["success"]["type"], "boolean");
}

on_both_stores!(every_error_body_has_success_false_and_the_message_the_admin_route_shows);

// ---------------------------------------------------------------------------------------------
// 5. Sprint-36 field names
// ---------------------------------------------------------------------------------------------

/// The status fields of Sprint-36 §1.2 with their types (`duration_seconds` a number once
/// finished; `error_details` text or null; `progress` any JSON).
fn assert_sprint_36_status(job: &Value) {
    for field in [
        "job_id",
        "mode",
        "status",
        "created_at",
        "start_time",
        "end_time",
        "duration_seconds",
        "triggered_by",
        "error_details",
        "progress",
    ] {
        assert!(job.get(field).is_some(), "{field} in {job}");
    }
    assert!(
        ["pending", "running", "completed", "failed", "error"]
            .contains(&job["status"].as_str().expect("status is text")),
        "{job}"
    );
    for field in ["job_id", "mode", "triggered_by"] {
        assert!(job[field].is_string(), "{field}: {job}");
    }
    for field in ["created_at", "start_time", "end_time"] {
        time(&job[field]);
    }
    assert!(job["duration_seconds"].is_f64(), "{job}");
    assert!(job["error_details"].is_string() || job["error_details"].is_null());
}

async fn stats_history_and_status_carry_the_sprint_36_names_and_types(backend: Backend) {
    // Follows the Sprint-36 contract the app was given,
    // docs/planning/sprint_history/sprint36/TickStockAppV2_integration_callback.md §1.2–1.4.
    let db = TestDb::on(backend).await;
    let state = app_state(&db, JobConfig::default(), None);
    let app = api::router(state.clone());
    // A job that fails (no prices yet), then one that completes.
    let failing = post(&app, TRIGGER, &json!({"mode": "full"})).await;
    assert_eq!(failing.status, StatusCode::ACCEPTED);
    let failed_id = finish_job(&state).await;
    db.load(&small_market(115, 1), 1).await;
    let completing = post(&app, TRIGGER, &json!({"mode": "full", "force": true})).await;
    assert_eq!(completing.status, StatusCode::ACCEPTED);
    let completed_id = finish_job(&state).await;

    let stats = get(&app, "/api/processing/cache-sync/stats").await.json();
    let js = &stats["job_statistics"];
    assert_eq!(js["total_jobs_7d"], 2, "{js}");
    assert_eq!(js["successful_jobs_7d"], 1, "{js}");
    assert_eq!(js["failed_jobs_7d"], 1, "{js}");
    for field in ["total_jobs_7d", "successful_jobs_7d", "failed_jobs_7d"] {
        assert!(js[field].is_i64(), "{field} is an integer: {js}");
    }
    assert!(
        js["avg_duration_seconds"]
            .as_f64()
            .is_some_and(|d| d >= 0.0),
        "{js}"
    );
    for u in stats["universes"].as_array().unwrap() {
        assert!(u["universe"].is_string() && u["type"].is_string(), "{u}");
        assert!(u["symbol_count"].is_i64(), "{u}");
        assert!(u["last_updated"].is_string(), "{u}");
    }

    let history = get(&app, "/api/processing/cache-sync/history?limit=10&offset=0")
        .await
        .json();
    for field in ["total", "limit", "offset"] {
        assert!(history[field].is_i64(), "{field}: {history}");
    }
    let jobs = history["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 2);
    for job in jobs {
        assert_sprint_36_status(job);
        let has_errors = job["has_errors"]
            .as_bool()
            .expect("has_errors is a boolean");
        assert_eq!(has_errors, job["job_id"] == failed_id.as_str(), "{job}");
    }

    for (id, status) in [(&failed_id, "failed"), (&completed_id, "completed")] {
        let job = get(&app, &status_uri(id)).await.json();
        assert_sprint_36_status(&job);
        assert_eq!(job["status"], status, "{job}");
    }
}

on_both_stores!(stats_history_and_status_carry_the_sprint_36_names_and_types);
