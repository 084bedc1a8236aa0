//! The HTTP API for the admin UI (SPEC §9, §10): the compatibility endpoints (trigger, status,
//! history, stats, health), plans and plan ids, universes now and replayed, histories, replay,
//! rollback, metrics, the API key, bad and hostile input, a restart while a job runs, graceful
//! shutdown, and the `serve` command's refusals.
//!
//! Requests go through `http::router` with `tower::ServiceExt::oneshot`, except where a real
//! socket matters (`http::serve` and the CLI), which bind `127.0.0.1:0`. A background job is
//! waited for by awaiting its `JoinHandle` (taken from `AppState::running`); a job is kept
//! "running" by holding an `ACCESS EXCLUSIVE` lock on `ohlcv_daily` from another session, which
//! the job's first read waits on. No test sleeps; `WAIT` only bounds a wait that would otherwise
//! hang a broken build.
//!
//! Every test runs on both stores except the three that keep a job running that way: SQLite's
//! readers never wait on a writer, so the embedded store has no way to hold a job mid-read.

use crate::helpers::{
    cache_sync_command, describe, live_hashes, on_both_stores, small_market, Backend, TestDb, WAIT,
};
use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use chrono::{DateTime, NaiveDate, TimeZone as _, Utc};
use http_body_util::BodyExt as _;
use serde_json::{json, Value};
use sqlx::{Connection as _, PgConnection};
use std::collections::BTreeSet;
use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;
use tickstock_cache_sync::devtools::market::SyntheticMarket;
use tickstock_cache_sync::http::{self as api, openapi::ROUTES, AppState};
use tickstock_cache_sync::job::{self, JobConfig, PlanRequest, RunRequest};
use tickstock_cache_sync::publish::Publisher;
use tickstock_cache_sync::store::{LockOutcome, Trigger};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tower::ServiceExt as _;

/// The key the tests' services expect.
pub(crate) const KEY: &str = "test-api-key-0123456789abcdef";

/// A universe every market has (ten members whose caps move with prices).
pub(crate) const TOP_10: &str = "stock_universe/market_leaders/top_10_stocks";

/// State for a router over `db` with the test key.
pub(crate) fn app_state(db: &TestDb, job: JobConfig, publisher: Option<Publisher>) -> AppState {
    AppState::new(db.store.clone(), job, publisher, Some(KEY.to_owned()))
}

/// One response, body collected.
#[derive(Debug)]
pub(crate) struct Answer {
    pub status: StatusCode,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON; fails the test, showing the body, when it is not JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "{} answered a non-JSON body ({e}; content-type {:?}): {}",
                self.status,
                self.content_type,
                self.text()
            )
        })
    }
}

/// Sends one request through the router. `body` is sent as JSON (with its content type).
pub(crate) async fn send(
    app: &Router,
    method: &str,
    uri: &str,
    key: Option<&str>,
    body: Option<&[u8]>,
) -> Answer {
    let mut builder = Request::builder().method(method).uri(uri);
    if let Some(key) = key {
        builder = builder.header("x-api-key", key);
    }
    if body.is_some() {
        builder = builder.header(header::CONTENT_TYPE, "application/json");
    }
    let request = builder
        .body(body.map_or_else(Body::empty, |b| Body::from(b.to_vec())))
        .unwrap_or_else(|e| panic!("a valid request {method} {uri}: {e}"));
    send_request(app, request).await
}

pub(crate) async fn send_request(app: &Router, request: Request<Body>) -> Answer {
    let response = app
        .clone()
        .oneshot(request)
        .await
        .expect("the router is infallible");
    let status = response.status();
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap_or_default().to_owned());
    let body = response
        .into_body()
        .collect()
        .await
        .expect("the body arrives")
        .to_bytes()
        .to_vec();
    Answer {
        status,
        content_type,
        body,
    }
}

/// `GET` with the key.
pub(crate) async fn get(app: &Router, uri: &str) -> Answer {
    send(app, "GET", uri, Some(KEY), None).await
}

/// `POST` of a JSON body with the key.
pub(crate) async fn post(app: &Router, uri: &str, body: &Value) -> Answer {
    send(
        app,
        "POST",
        uri,
        Some(KEY),
        Some(body.to_string().as_bytes()),
    )
    .await
}

pub(crate) const TRIGGER: &str = "/api/processing/cache-sync/trigger";
pub(crate) const PLAN: &str = "/api/processing/cache-sync/plan";
pub(crate) const ROLLBACK: &str = "/api/processing/cache-sync/rollback";

pub(crate) fn status_uri(job_id: &str) -> String {
    format!("/api/processing/cache-sync/status/{job_id}")
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object()
        .unwrap_or_else(|| panic!("an object: {v}"))
        .keys()
        .cloned()
        .collect()
}

/// The error shape: `{"success": false, "message", "error": {"code", "message"}}`, exactly, as
/// JSON, the top-level `message` repeating `error.message`.
pub(crate) fn assert_error(answer: &Answer, status: StatusCode, code: &str) {
    assert_eq!(answer.status, status, "status of {}", answer.text());
    assert_eq!(
        answer.content_type.as_deref(),
        Some("application/json"),
        "errors are JSON: {}",
        answer.text()
    );
    let body = answer.json();
    assert_eq!(
        keys(&body),
        BTreeSet::from([
            "error".to_owned(),
            "message".to_owned(),
            "success".to_owned()
        ]),
        "{body}"
    );
    assert_eq!(body["success"], false, "{body}");
    assert_eq!(body["message"], body["error"]["message"], "{body}");
    assert_eq!(
        keys(&body["error"]),
        BTreeSet::from(["code".to_owned(), "message".to_owned()]),
        "{body}"
    );
    assert_eq!(body["error"]["code"], code, "{body}");
    let message = body["error"]["message"].as_str().expect("message is text");
    assert!(!message.is_empty(), "{body}");
    assert!(
        !message.contains("panicked") && !message.contains("src/"),
        "no internals in messages: {message}"
    );
}

/// Any 4xx in the error shape (the code is not checked).
pub(crate) fn assert_client_error(answer: &Answer, what: &str) {
    assert!(
        answer.status.is_client_error(),
        "{what}: a 4xx, got {} {}",
        answer.status,
        answer.text()
    );
    assert_eq!(
        answer.content_type.as_deref(),
        Some("application/json"),
        "{what}: errors are JSON, got {} {:?}: {}",
        answer.status,
        answer.content_type,
        answer.text()
    );
    let body = answer.json();
    assert_eq!(body["success"], false, "{what}: {body}");
    assert!(body["message"].is_string(), "{what}: {body}");
    assert!(body["error"]["code"].is_string(), "{what}: {body}");
    assert!(body["error"]["message"].is_string(), "{what}: {body}");
}

/// Awaits the job this process started (its `JoinHandle`) and returns its id.
pub(crate) async fn finish_job(state: &AppState) -> String {
    let running = state
        .running
        .lock()
        .await
        .take()
        .expect("a job was started");
    let job_id = running.job_id.clone();
    tokio::time::timeout(WAIT, running.handle)
        .await
        .expect("the job finishes")
        .expect("the job task does not panic");
    job_id
}

/// Another session holding `ACCESS EXCLUSIVE` on `ohlcv_daily`: a job started meanwhile waits on
/// its first read of prices (after it is marked running), until `release`.
pub(crate) struct PricesLocked(PgConnection);

impl PricesLocked {
    pub async fn hold(db: &TestDb) -> Self {
        let mut con = PgConnection::connect(&db.url).await.expect("connect");
        sqlx::raw_sql("begin; lock table ohlcv_daily in access exclusive mode;")
            .execute(&mut con)
            .await
            .expect("lock ohlcv_daily");
        Self(con)
    }

    pub async fn release(mut self) {
        sqlx::raw_sql("rollback")
            .execute(&mut self.0)
            .await
            .expect("release the lock");
        self.0.close().await.ok();
    }
}

/// Polls a job's status (each poll is a round trip, so the job progresses meanwhile) until
/// `done` holds; bounded.
pub(crate) async fn status_until(
    app: &Router,
    job_id: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let mut last = Value::Null;
    for _ in 0..5_000 {
        let answer = get(app, &status_uri(job_id)).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
        last = answer.json();
        if done(&last) {
            return last;
        }
        tokio::task::yield_now().await;
    }
    panic!("job {job_id} never reached the expected state; last status {last}");
}

/// What a request could have written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Effects {
    pub jobs: i64,
    pub runs: i64,
    pub events: i64,
    pub outbox: i64,
    pub rows: Vec<(i64, String, String)>,
}

pub(crate) async fn effects(db: &TestDb) -> Effects {
    Effects {
        jobs: db.count("cache_sync_job").await,
        runs: db.count("cache_sync_run").await,
        events: db.count("cache_sync_event").await,
        outbox: db.count("cache_sync_outbox").await,
        rows: db.rows("true").await,
    }
}

/// A run request at 22:00 UTC of `date`.
pub(crate) fn request_on(date: NaiveDate, force: bool) -> RunRequest {
    RunRequest {
        plan: PlanRequest::default(),
        force,
        trigger: Trigger::Test,
        now: Utc.from_utc_datetime(&date.and_hms_opt(22, 0, 0).unwrap()),
        pause_before_commit: false,
        job_id: "test".to_owned(),
        progress: None,
        expect_plan: None,
    }
}

/// A database with two nightly runs: day 1 (run 1, on the evening of day 1) and day 2 (run 2,
/// on the evening of day 2).
pub(crate) struct Seeded {
    pub db: TestDb,
    pub market: SyntheticMarket,
    pub run1: i64,
    pub run2: i64,
}

pub(crate) async fn seeded(job: &JobConfig) -> Seeded {
    seeded_on(Backend::Postgres, job).await
}

pub(crate) async fn seeded_on(backend: Backend, job: &JobConfig) -> Seeded {
    let db = TestDb::on(backend).await;
    let market = small_market(11, 3);
    db.load(&market, 1).await;
    let run1 = job::run(
        db.store.as_ref(),
        job,
        &request_on(market.date_of_day(1), true),
    )
    .await
    .expect("run 1")
    .run_id
    .expect("run 1 committed")
    .0;
    db.load_next(&market, 2).await;
    let run2 = job::run(
        db.store.as_ref(),
        job,
        &request_on(market.date_of_day(2), true),
    )
    .await
    .expect("run 2")
    .run_id
    .expect("run 2 committed")
    .0;
    Seeded {
        db,
        market,
        run1,
        run2,
    }
}

/// The hash the log recorded for `universe` (type/name/key) after `run_id`.
pub(crate) async fn logged_hash(db: &TestDb, universe: &str, run_id: i64) -> Option<String> {
    db.sql(
        "select hash_after from cache_sync_event
         where entry_type || '/' || entry_name || '/' || entry_key = $1 and run_id <= $2
         order by seq desc limit 1",
    )
    .bind(universe)
    .bind(run_id)
    .scalar_optional::<Option<String>>()
    .await
    .flatten()
}

/// A path for a route of `openapi::ROUTES`, placeholders filled with `values`.
pub(crate) fn concrete(path: &str, values: &[(&str, &str)]) -> String {
    let mut out = path.to_owned();
    for (name, value) in values {
        out = out.replace(&format!("{{{name}}}"), value);
    }
    assert!(!out.contains('{'), "every placeholder of {path} is filled");
    out
}

// ---------------------------------------------------------------------------------------------
// Trigger, status, history, stats, health
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_triggered_job_runs_in_the_background_and_status_history_and_stats_report_it() {
    let db = TestDb::new().await;
    let market = small_market(3, 2);
    db.load(&market, 1).await;
    let state = app_state(&db, JobConfig::default(), None);
    let app = api::router(state.clone());

    // Health first: no key needed.
    let health = send(&app, "GET", "/health", None, None).await;
    assert_eq!(health.status, StatusCode::OK, "{}", health.text());
    let h = health.json();
    assert_eq!(h["status"], "healthy");
    assert_eq!(h["database"], "ok");
    assert_eq!(h["redis"], "not configured");

    // The job waits on the prices lock, so it is seen pending/running.
    let lock = PricesLocked::hold(&db).await;
    let accepted = post(&app, TRIGGER, &json!({"mode": "full", "force": true})).await;
    assert_eq!(accepted.status, StatusCode::ACCEPTED, "{}", accepted.text());
    let body = accepted.json();
    assert_eq!(
        keys(&body),
        ["job_id", "message", "mode", "success"]
            .map(str::to_owned)
            .into(),
        "{body}"
    );
    assert_eq!(body["success"], true);
    assert_eq!(body["mode"], "full");
    let job_id = body["job_id"].as_str().expect("job id").to_owned();
    assert!(!job_id.is_empty());
    assert!(body["message"].as_str().unwrap().contains(&job_id));

    let first = get(&app, &status_uri(&job_id)).await.json();
    assert!(
        ["pending", "running"].contains(&first["status"].as_str().unwrap()),
        "{first}"
    );
    let running = status_until(&app, &job_id, |s| {
        s["status"] == "running" && s["progress"]["step"] == "planning"
    })
    .await;
    assert!(running["start_time"].is_string(), "{running}");
    assert!(running["end_time"].is_null(), "{running}");
    assert_eq!(running["progress"]["percent"], 10, "{running}");

    lock.release().await;
    assert_eq!(finish_job(&state).await, job_id);

    let done = get(&app, &status_uri(&job_id)).await;
    assert_eq!(done.status, StatusCode::OK);
    let done = done.json();
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
        assert!(done.get(field).is_some(), "status has {field}: {done}");
    }
    assert_eq!(done["job_id"], job_id.as_str());
    assert_eq!(done["mode"], "full");
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["triggered_by"], "api");
    assert!(done["error_details"].is_null(), "{done}");
    assert_eq!(done["progress"]["step"], "committed", "{done}");
    assert_eq!(done["progress"]["percent"], 100, "{done}");
    let time = |f: &str| -> DateTime<Utc> {
        done[f]
            .as_str()
            .unwrap_or_else(|| panic!("{f} is a time: {done}"))
            .parse()
            .unwrap()
    };
    assert!(time("created_at") <= time("start_time"));
    assert!(time("start_time") <= time("end_time"));
    let duration = done["duration_seconds"].as_f64().expect("a duration");
    let expected = (time("end_time") - time("start_time")).as_seconds_f64();
    assert!(
        duration >= 0.0 && (duration - expected).abs() < 1e-3,
        "{done}"
    );
    let run_id = done["run_id"].as_i64().expect("the run it produced");
    let (trigger, families, status): (String, String, String) = db
        .sql("select trigger, families, status from cache_sync_run where run_id = $1")
        .bind(run_id)
        .fetch_one()
        .await;
    assert_eq!(
        (trigger.as_str(), families.as_str(), status.as_str()),
        ("api", "all", "completed")
    );
    assert!(
        !live_hashes(&db).await.is_empty(),
        "the job wrote the catalog"
    );

    // A second job: market_cap mode after the next day's prices.
    db.load_next(&market, 2).await;
    let accepted = post(&app, TRIGGER, &json!({"mode": "market_cap", "force": true})).await;
    assert_eq!(accepted.status, StatusCode::ACCEPTED, "{}", accepted.text());
    let second = finish_job(&state).await;
    let s = get(&app, &status_uri(&second)).await.json();
    assert_eq!(s["status"], "completed", "{s}");
    assert_eq!(s["mode"], "market_cap");

    // History pages, newest first.
    let page = get(&app, "/api/processing/cache-sync/history?limit=1&offset=0")
        .await
        .json();
    assert_eq!(
        keys(&page),
        ["jobs", "limit", "offset", "total"]
            .map(str::to_owned)
            .into(),
        "{page}"
    );
    assert_eq!(page["total"], 2);
    assert_eq!(page["limit"], 1);
    assert_eq!(page["offset"], 0);
    assert_eq!(page["jobs"].as_array().unwrap().len(), 1);
    assert_eq!(page["jobs"][0]["job_id"], second.as_str());
    let page = get(&app, "/api/processing/cache-sync/history?limit=1&offset=1")
        .await
        .json();
    assert_eq!(page["jobs"][0]["job_id"], job_id.as_str());
    assert_eq!(page["jobs"][0]["status"], "completed");
    let page = get(&app, "/api/processing/cache-sync/history").await.json();
    assert_eq!(page["limit"], 20, "default limit");
    assert_eq!(page["jobs"].as_array().unwrap().len(), 2);
    for bad in ["limit=0", "limit=501", "offset=-1"] {
        let answer = get(&app, &format!("/api/processing/cache-sync/history?{bad}")).await;
        assert_error(&answer, StatusCode::BAD_REQUEST, "bad_request");
    }

    // Stats: every owned universe and the week's jobs.
    let stats = get(&app, "/api/processing/cache-sync/stats").await;
    assert_eq!(stats.status, StatusCode::OK);
    let stats = stats.json();
    let universes = stats["universes"].as_array().expect("universes");
    assert_eq!(universes.len(), live_hashes(&db).await.len(), "{stats}");
    for u in universes {
        for field in ["universe", "type", "symbol_count", "last_updated"] {
            assert!(u.get(field).is_some(), "{field} in {u}");
        }
    }
    let top = universes
        .iter()
        .find(|u| u["universe"] == "market_leaders:top_10_stocks")
        .expect("top 10 listed");
    assert_eq!(top["type"], "stock_universe");
    assert_eq!(top["symbol_count"], 10);
    let js = &stats["job_statistics"];
    assert_eq!(js["period_days"], 7, "{stats}");
    assert_eq!(js["total_jobs_7d"], 2);
    assert_eq!(js["successful_jobs_7d"], 2);
    assert_eq!(js["failed_jobs_7d"], 0);
    assert_eq!(js["running"], 0);
    assert!(js["avg_duration_seconds"].as_f64().unwrap() >= 0.0);
    assert!(js["last_completed_at"].is_string());

    // Unknown jobs and malformed ids.
    let answer = get(&app, &status_uri("cs-20260101000000-0000000000000000")).await;
    assert_error(&answer, StatusCode::NOT_FOUND, "not_found");
}

async fn a_job_that_fails_is_reported_failed_with_its_error(backend: Backend) {
    // No prices at all: the run cannot choose an as-of date.
    let db = TestDb::on(backend).await;
    let state = app_state(&db, JobConfig::default(), None);
    let app = api::router(state.clone());
    let accepted = post(&app, TRIGGER, &json!({"mode": "full"})).await;
    assert_eq!(accepted.status, StatusCode::ACCEPTED, "{}", accepted.text());
    let job_id = finish_job(&state).await;
    let s = get(&app, &status_uri(&job_id)).await.json();
    assert_eq!(s["status"], "failed", "{s}");
    assert!(
        s["error_details"].as_str().unwrap().contains("no prices"),
        "{s}"
    );
    assert!(s["end_time"].is_string());
    assert_eq!(db.count("cache_entries").await, 0);
    // A failed job does not block the next trigger.
    let again = post(&app, TRIGGER, &json!({})).await;
    assert_eq!(again.status, StatusCode::ACCEPTED, "{}", again.text());
    finish_job(&state).await;
}

on_both_stores!(a_job_that_fails_is_reported_failed_with_its_error);

// ---------------------------------------------------------------------------------------------
// One job at a time
// ---------------------------------------------------------------------------------------------

async fn a_trigger_while_a_job_is_recorded_running_gets_409_and_creates_nothing(backend: Backend) {
    let db = TestDb::on(backend).await;
    db.load(&small_market(5, 1), 1).await;
    // A job another live instance runs.
    let other = db.store.claim_owner().await.unwrap();
    db.sql(
        "insert into cache_sync_job (job_id, mode, force, triggered_by, status, start_time, owner)
         values ('cs-elsewhere', 'full', false, 'api', 'running', $1, $2)",
    )
    .bind(Utc::now())
    .bind(other.id())
    .execute()
    .await;
    let state = app_state(&db, JobConfig::default(), None);
    let app = api::router(state.clone());
    let before = effects(&db).await;
    let answer = post(&app, TRIGGER, &json!({"mode": "full", "force": true})).await;
    assert_error(&answer, StatusCode::CONFLICT, "already_running");
    assert!(answer.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("already running"));
    assert_eq!(effects(&db).await, before, "nothing written");
    assert!(state.running.lock().await.is_none(), "no job started");
    // The running one is still reported as such.
    let s = get(&app, &status_uri("cs-elsewhere")).await.json();
    assert_eq!(s["status"], "running");
}

on_both_stores!(a_trigger_while_a_job_is_recorded_running_gets_409_and_creates_nothing);

#[tokio::test]
async fn two_concurrent_triggers_start_exactly_one_job() {
    let db = TestDb::new().await;
    db.load(&small_market(6, 1), 1).await;
    let state = app_state(&db, JobConfig::default(), None);
    let app = api::router(state.clone());
    let lock = PricesLocked::hold(&db).await;
    let body = json!({"mode": "full", "force": true});
    let (a, b) = tokio::join!(post(&app, TRIGGER, &body), post(&app, TRIGGER, &body));
    let mut statuses = [a.status, b.status];
    statuses.sort();
    assert_eq!(
        statuses,
        [StatusCode::ACCEPTED, StatusCode::CONFLICT],
        "{} / {}",
        a.text(),
        b.text()
    );
    let refused = if a.status == StatusCode::CONFLICT {
        &a
    } else {
        &b
    };
    assert_error(refused, StatusCode::CONFLICT, "already_running");
    assert_eq!(db.count("cache_sync_job").await, 1);
    lock.release().await;
    let job_id = finish_job(&state).await;
    let s = get(&app, &status_uri(&job_id)).await.json();
    assert_eq!(s["status"], "completed", "{s}");
    assert_eq!(db.count("cache_sync_run").await, 1, "one run");
}

// ---------------------------------------------------------------------------------------------
// The key
// ---------------------------------------------------------------------------------------------

async fn every_protected_route_answers_401_json_without_the_key_or_with_a_wrong_one(
    backend: Backend,
) {
    let db = TestDb::on(backend).await;
    db.load(&small_market(8, 1), 1).await;
    let state = app_state(&db, JobConfig::default(), None);
    let app = api::router(state.clone());
    let values = [
        ("job_id", "cs-1"),
        ("run_id", "1"),
        ("type", "stock_universe"),
        ("name", "market_cap"),
        ("key", "large_cap"),
        ("symbol", "AAPL"),
    ];
    let before = effects(&db).await;
    let protected: Vec<_> = ROUTES.iter().filter(|r| r.authenticated).collect();
    assert!(protected.len() >= 13, "the table lists every route");
    for route in &protected {
        let uri = concrete(route.path, &values);
        let method = route.method.to_ascii_uppercase();
        let body =
            (method == "POST").then(|| br#"{"mode":"full","force":true,"to_run":1}"#.as_slice());
        for key in [
            None,
            Some("wrong"),
            Some(""),
            Some("test-api-key-0123456789abcdeF"),
            Some("test-api-key-0123456789abcdef "),
            Some("test-api-key-0123456789abcdef0"),
        ] {
            let answer = send(&app, &method, &uri, key, body).await;
            assert_error(&answer, StatusCode::UNAUTHORIZED, "unauthorized");
        }
        // The right key gets past the check (whatever the route then answers).
        let answer = send(&app, &method, &uri, Some(KEY), body).await;
        assert_ne!(
            answer.status,
            StatusCode::UNAUTHORIZED,
            "{method} {uri} with the key"
        );
        if let Some(mut running) = state.running.lock().await.take() {
            running.handle.abort();
            let _ = (&mut running.handle).await;
        }
        db.exec("delete from cache_sync_job").await;
    }
    // Only /health is open.
    let open: Vec<_> = ROUTES
        .iter()
        .filter(|r| !r.authenticated)
        .map(|r| r.path)
        .collect();
    assert_eq!(open, ["/health", "/health/live", "/health/ready"]);
    let health = send(&app, "GET", "/health", None, None).await;
    assert_eq!(health.status, StatusCode::OK);
    let health = send(&app, "GET", "/health", Some("wrong"), None).await;
    assert_eq!(health.status, StatusCode::OK);
    // The unauthenticated attempts wrote nothing (the authorized trigger was cleaned up above).
    let after = effects(&db).await;
    assert_eq!(after.rows, before.rows);
    assert_eq!(after.jobs, 0);
}

on_both_stores!(every_protected_route_answers_401_json_without_the_key_or_with_a_wrong_one);

async fn a_service_without_a_key_serves_every_route(backend: Backend) {
    let db = TestDb::on(backend).await;
    let state = AppState::new(db.store.clone(), JobConfig::default(), None, None);
    let app = api::router(state);
    let answer = send(&app, "GET", "/api/universes", None, None).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
}

on_both_stores!(a_service_without_a_key_serves_every_route);

/// Liveness touches nothing; readiness needs the database with every migration, and reports
/// Redis without requiring it (issue 15 item 4).
async fn readiness_needs_the_migrated_database_and_liveness_needs_nothing(backend: Backend) {
    let db = TestDb::on(backend).await;
    let redis = Publisher::new(
        &crate::pubsub::redis_url(),
        tickstock_cache_sync::domain::events::Channels {
            prefix: crate::pubsub::unique_prefix(),
        },
        100,
    )
    .unwrap();
    let app = api::router(app_state(&db, JobConfig::default(), Some(redis)));
    let ready = send(&app, "GET", "/health/ready", None, None).await;
    assert_eq!(ready.status, StatusCode::OK, "{}", ready.text());
    assert_eq!(ready.json()["status"], "ready");
    assert_eq!(ready.json()["redis"], "ok");
    // Redis down is reported, and the service is still ready.
    let nobody = format!("redis://127.0.0.1:{}", free_port());
    let silent = Publisher::new(
        &nobody,
        tickstock_cache_sync::domain::events::Channels {
            prefix: "x".to_owned(),
        },
        100,
    )
    .unwrap();
    let without_redis = api::router(app_state(&db, JobConfig::default(), Some(silent)));
    let ready = send(&without_redis, "GET", "/health/ready", None, None).await;
    assert_eq!(ready.status, StatusCode::OK, "{}", ready.text());
    assert_eq!(ready.json()["redis"], "unreachable");

    // A migration this build expects is missing.
    db.exec(
        "delete from _sqlx_migrations where version = (select max(version) from _sqlx_migrations)",
    )
    .await;
    let ready = send(&app, "GET", "/health/ready", None, None).await;
    assert_eq!(
        ready.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        ready.text()
    );
    let body = ready.json();
    assert_eq!(body["database"], "migrations missing", "{body}");
    assert!(
        body["reason"].as_str().unwrap().contains("not applied"),
        "{body}"
    );

    // The database does not answer: not ready, yet alive.
    db.database.close().await;
    let ready = send(&app, "GET", "/health/ready", None, None).await;
    assert_eq!(
        ready.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        ready.text()
    );
    assert_eq!(ready.json()["database"], "unreachable");
    let live = send(&app, "GET", "/health/live", None, None).await;
    assert_eq!(live.status, StatusCode::OK, "{}", live.text());
    assert_eq!(live.json()["status"], "alive");
}

on_both_stores!(readiness_needs_the_migrated_database_and_liveness_needs_nothing);

async fn the_openapi_document_lists_exactly_the_route_table(backend: Backend) {
    let db = TestDb::on(backend).await;
    let app = api::router(app_state(&db, JobConfig::default(), None));
    let doc = get(&app, "/api/openapi.json").await.json();
    let mut listed = BTreeSet::new();
    for (path, ops) in doc["paths"].as_object().expect("paths") {
        for method in ops.as_object().unwrap().keys() {
            listed.insert((method.clone(), path.clone()));
        }
    }
    let table: BTreeSet<_> = ROUTES
        .iter()
        .map(|r| (r.method.to_owned(), r.path.to_owned()))
        .collect();
    assert_eq!(listed, table);
    assert_eq!(
        doc["components"]["securitySchemes"]["ApiKey"]["name"],
        "X-API-Key"
    );
}

on_both_stores!(the_openapi_document_lists_exactly_the_route_table);

// ---------------------------------------------------------------------------------------------
// Plans and plan ids
// ---------------------------------------------------------------------------------------------

async fn a_plan_id_applies_exactly_that_plan_and_a_stale_one_is_refused_with_409(backend: Backend) {
    let db = TestDb::on(backend).await;
    db.count_writes().await;
    let market = small_market(9, 3);
    db.load(&market, 1).await;
    let state = app_state(&db, JobConfig::default(), None);
    let app = api::router(state.clone());

    let before = effects(&db).await;
    let plan = post(&app, PLAN, &json!({"mode": "full"})).await;
    assert_eq!(plan.status, StatusCode::OK, "{}", plan.text());
    let plan = plan.json();
    assert_eq!(plan["success"], true);
    let plan_id = plan["plan_id"].as_str().expect("a plan id").to_owned();
    assert!(plan_id.starts_with("plan-"), "{plan_id}");
    let deltas = plan["deltas"].as_array().expect("deltas");
    assert!(!deltas.is_empty());
    assert!(deltas.iter().all(|d| d["op"] == "create"), "empty table");
    for field in ["op", "family", "type", "name", "key", "hash_after", "added"] {
        assert!(deltas[0].get(field).is_some(), "{field} in {}", deltas[0]);
    }
    assert_eq!(effects(&db).await, before, "a plan writes nothing");
    assert_eq!(db.writes().await, 0);
    // Without a body: the full plan again, same id.
    let again = send(&app, "POST", PLAN, Some(KEY), None).await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.text());
    assert_eq!(again.json()["plan_id"], plan_id.as_str());
    // Another mode plans fewer families.
    let themes = post(&app, PLAN, &json!({"mode": "themes"})).await.json();
    assert!(themes["deltas"]
        .as_array()
        .unwrap()
        .iter()
        .all(|d| d["family"] == "themes"));
    assert_ne!(themes["plan_id"], plan_id.as_str());

    let accepted = post(
        &app,
        TRIGGER,
        &json!({"mode": "full", "force": true, "plan_id": plan_id}),
    )
    .await;
    assert_eq!(accepted.status, StatusCode::ACCEPTED, "{}", accepted.text());
    let job_id = finish_job(&state).await;
    let s = get(&app, &status_uri(&job_id)).await.json();
    assert_eq!(s["status"], "completed", "{s}");
    let created: i64 = db
        .sql("select cast(created_count as bigint) from cache_sync_run where run_id = $1")
        .bind(s["run_id"].as_i64().unwrap())
        .scalar()
        .await;
    assert_eq!(created, deltas.len() as i64, "exactly the planned deltas");

    // Plan the next night, then the data moves before the trigger.
    db.load_next(&market, 2).await;
    let stale = post(&app, PLAN, &json!({})).await.json()["plan_id"]
        .as_str()
        .unwrap()
        .to_owned();
    db.load_next(&market, 3).await;
    let before = effects(&db).await;
    let writes = db.writes().await;
    let answer = post(
        &app,
        TRIGGER,
        &json!({"mode": "full", "force": true, "plan_id": stale}),
    )
    .await;
    assert_error(&answer, StatusCode::CONFLICT, "conflict");
    assert!(answer.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("out of date"));
    assert_eq!(effects(&db).await, before, "nothing written");
    assert_eq!(db.writes().await, writes);
    assert!(state.running.lock().await.is_none(), "no job started");

    // A hand edit of a live row also makes a plan stale.
    let fresh = post(&app, PLAN, &json!({})).await.json()["plan_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let first_theme: String = db
        .sql("select min(name) from cache_entries where type = 'themes'")
        .scalar()
        .await;
    db.set_value("themes", &first_theme, "list", &json!(["ZZZZ"]))
        .await;
    let answer = post(
        &app,
        TRIGGER,
        &json!({"mode": "full", "force": true, "plan_id": fresh}),
    )
    .await;
    assert_error(&answer, StatusCode::CONFLICT, "conflict");
    // An unknown id is stale too.
    let answer = post(&app, TRIGGER, &json!({"plan_id": "plan-0000"})).await;
    assert_error(&answer, StatusCode::CONFLICT, "conflict");
    assert_eq!(db.count("cache_sync_job").await, 1, "only the applied job");
}

on_both_stores!(a_plan_id_applies_exactly_that_plan_and_a_stale_one_is_refused_with_409);

// ---------------------------------------------------------------------------------------------
// Universes, histories, replay, rollback
// ---------------------------------------------------------------------------------------------

async fn universes_are_listed_and_shown_now_after_a_run_and_at_a_time(backend: Backend) {
    let s = seeded_on(backend, &JobConfig::default()).await;
    let db = &s.db;
    let app = api::router(app_state(db, JobConfig::default(), None));

    let list = get(&app, "/api/universes").await;
    assert_eq!(list.status, StatusCode::OK);
    let list = list.json();
    let universes = list["universes"].as_array().unwrap();
    assert_eq!(list["total"], universes.len());
    let live = live_hashes(db).await;
    assert_eq!(universes.len(), live.len());
    for u in universes {
        let key = format!(
            "{}/{}/{}",
            u["type"].as_str().unwrap(),
            u["name"].as_str().unwrap(),
            u["key"].as_str().unwrap()
        );
        assert_eq!(
            u["hash"].as_str(),
            live.get(&key).map(String::as_str),
            "{key}"
        );
        assert_eq!(
            u["universe"],
            format!(
                "{}:{}",
                u["name"].as_str().unwrap(),
                u["key"].as_str().unwrap()
            )
        );
    }

    let uri = format!("/api/universes/{TOP_10}");
    let now = get(&app, &uri).await;
    assert_eq!(now.status, StatusCode::OK, "{}", now.text());
    let now = now.json();
    assert_eq!(now["universe"], TOP_10);
    assert!(now["run_id"].is_null());
    assert_eq!(now["members"], 10);
    assert_eq!(
        Some(&now["value"]),
        db.value("stock_universe", "market_leaders", "top_10_stocks")
            .await
            .as_ref()
    );
    assert_eq!(now["hash"].as_str(), live.get(TOP_10).map(String::as_str));

    let at_run1 = get(&app, &format!("{uri}?at_run={}", s.run1)).await.json();
    assert_eq!(at_run1["run_id"], s.run1);
    let hash1 = logged_hash(db, TOP_10, s.run1).await.expect("logged");
    assert_eq!(at_run1["hash"], hash1.as_str());
    let hash2 = logged_hash(db, TOP_10, s.run2).await.expect("logged");
    assert_ne!(hash1, hash2, "prices moved the top 10's caps");
    assert_eq!(now["hash"], hash2.as_str());

    // At a time: the last run finished by then.
    let noon_day2 = format!("{}T12:00:00Z", s.market.date_of_day(2));
    let at = get(&app, &format!("{uri}?at={noon_day2}")).await.json();
    assert_eq!(at["run_id"], s.run1, "{at}");
    assert_eq!(at["hash"], hash1.as_str());
    let later = format!("{}T23:59:59Z", s.market.date_of_day(2));
    let at = get(&app, &format!("{uri}?at={later}")).await.json();
    assert_eq!(at["run_id"], s.run2);
    assert_eq!(at["value"], now["value"]);

    let before = format!("{}T00:00:00Z", s.market.date_of_day(1));
    assert_error(
        &get(&app, &format!("{uri}?at={before}")).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_error(
        &get(&app, &format!("{uri}?at_run=999")).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_error(
        &get(&app, &format!("{uri}?at_run={}&at={later}", s.run1)).await,
        StatusCode::BAD_REQUEST,
        "bad_request",
    );
    assert_error(
        &get(&app, "/api/universes/stock_universe/market_cap/giga_cap").await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    // Names with spaces are percent-encoded.
    let etf = universes
        .iter()
        .find(|u| u["type"] == "etf_universe" && u["name"].as_str().unwrap().contains(' '))
        .expect("an ETF category with a display name");
    let encoded = etf["name"].as_str().unwrap().replace(' ', "%20");
    let answer = get(
        &app,
        &format!(
            "/api/universes/etf_universe/{encoded}/{}",
            etf["key"].as_str().unwrap()
        ),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
}

on_both_stores!(universes_are_listed_and_shown_now_after_a_run_and_at_a_time);

async fn histories_of_a_universe_and_of_a_symbol_and_the_replay_of_a_run(backend: Backend) {
    let s = seeded_on(backend, &JobConfig::default()).await;
    let db = &s.db;
    let app = api::router(app_state(db, JobConfig::default(), None));

    let h = get(&app, &format!("/api/universes/{TOP_10}/history")).await;
    assert_eq!(h.status, StatusCode::OK, "{}", h.text());
    let h = h.json();
    assert_eq!(h["universe"], TOP_10);
    let changes = h["changes"].as_array().unwrap();
    let runs: Vec<i64> = changes
        .iter()
        .map(|c| c["run_id"].as_i64().unwrap())
        .collect();
    assert_eq!(runs, [s.run2, s.run1], "newest first: {h}");
    assert_eq!(changes[1]["op"], "created");
    assert_eq!(changes[1]["added"].as_array().unwrap().len(), 10);
    for c in changes {
        for field in [
            "seq",
            "run_id",
            "as_of",
            "recorded_at",
            "universe",
            "op",
            "added",
            "removed",
        ] {
            assert!(c.get(field).is_some(), "{field} in {c}");
        }
    }
    let one = get(&app, &format!("/api/universes/{TOP_10}/history?limit=1"))
        .await
        .json();
    assert_eq!(one["changes"].as_array().unwrap().len(), 1);
    assert_error(
        &get(&app, &format!("/api/universes/{TOP_10}/history?limit=0")).await,
        StatusCode::BAD_REQUEST,
        "bad_request",
    );

    let ticker = changes[1]["added"][0]["ticker"]
        .as_str()
        .unwrap()
        .to_owned();
    let sh = get(
        &app,
        &format!("/api/symbols/{}/history", ticker.to_ascii_lowercase()),
    )
    .await;
    assert_eq!(sh.status, StatusCode::OK, "{}", sh.text());
    let sh = sh.json();
    assert_eq!(sh["symbol"], ticker.as_str());
    let sc = sh["changes"].as_array().unwrap();
    assert!(sc.iter().any(|c| c["universe"] == TOP_10), "{sh}");
    for c in sc {
        let moved: Vec<&Value> = c["added"]
            .as_array()
            .unwrap()
            .iter()
            .chain(c["removed"].as_array().unwrap())
            .collect();
        assert!(!moved.is_empty(), "{c}");
        assert!(moved.iter().all(|m| m["ticker"] == ticker.as_str()), "{c}");
    }

    let replay = get(
        &app,
        &format!("/api/processing/cache-sync/runs/{}/replay", s.run1),
    )
    .await;
    assert_eq!(replay.status, StatusCode::OK, "{}", replay.text());
    let replay = replay.json();
    assert_eq!(replay["stats"]["run_id"], s.run1);
    let hash1 = logged_hash(db, TOP_10, s.run1).await.unwrap();
    assert_eq!(replay["hashes"][TOP_10], hash1.as_str());
    assert_eq!(replay["verified"], false);
    let replay2 = get(
        &app,
        &format!("/api/processing/cache-sync/runs/{}/replay", s.run2),
    )
    .await
    .json();
    let live = live_hashes(db).await;
    let replayed: std::collections::BTreeMap<String, String> = replay2["hashes"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(replayed, live, "the last run replays to the live table");
    assert_error(
        &get(&app, "/api/processing/cache-sync/runs/999/replay").await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
}

on_both_stores!(histories_of_a_universe_and_of_a_symbol_and_the_replay_of_a_run);

async fn a_rollback_dry_run_writes_nothing_and_a_rollback_restores_the_run_as_a_new_run(
    backend: Backend,
) {
    let s = seeded_on(backend, &JobConfig::default()).await;
    let db = &s.db;
    db.count_writes().await;
    let app = api::router(app_state(db, JobConfig::default(), None));

    let before = effects(db).await;
    let dry = post(&app, ROLLBACK, &json!({"to_run": s.run1, "dry_run": true})).await;
    assert_eq!(dry.status, StatusCode::OK, "{}", dry.text());
    let dry = dry.json();
    let deltas = dry["deltas"].as_array().expect("the deltas");
    assert!(
        deltas.iter().any(|d| d["type"] == "stock_universe"
            && d["name"] == "market_leaders"
            && d["key"] == "top_10_stocks"),
        "the top 10 goes back"
    );
    assert!(dry["plan_id"].is_string());
    assert_eq!(effects(db).await, before, "a dry run writes nothing");
    assert_eq!(db.writes().await, 0);

    let applied = post(&app, ROLLBACK, &json!({"to_run": s.run1, "force": true})).await;
    assert_eq!(applied.status, StatusCode::OK, "{}", applied.text());
    let applied = applied.json();
    assert_eq!(applied["status"], "completed", "{applied}");
    let run3 = applied["run_id"].as_i64().expect("a new run");
    assert!(run3 > s.run2);
    let trigger: String = db
        .sql("select trigger from cache_sync_run where run_id = $1")
        .bind(run3)
        .scalar()
        .await;
    assert_eq!(trigger, "rollback");
    let hash1 = logged_hash(db, TOP_10, s.run1).await.unwrap();
    assert_eq!(live_hashes(db).await.get(TOP_10), Some(&hash1));
    assert_eq!(
        logged_hash(db, TOP_10, run3).await.as_ref(),
        Some(&hash1),
        "logged as a new event"
    );
    let changes: Vec<Value> = db
        .sql("select change from cache_sync_event where run_id = $1")
        .bind(run3)
        .scalars()
        .await;
    let reasons: BTreeSet<String> = changes
        .iter()
        .flat_map(|c| c["lists"].as_array().cloned().unwrap_or_default())
        .flat_map(|l| {
            let mut members = l["added"].as_array().cloned().unwrap_or_default();
            members.extend(l["removed"].as_array().cloned().unwrap_or_default());
            members
        })
        .map(|m| m["reason"]["code"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert!(!reasons.is_empty(), "the rollback moved members");
    assert!(reasons.iter().all(|r| r == "rollback"), "{reasons:?}");

    let before = effects(db).await;
    assert_error(
        &post(&app, ROLLBACK, &json!({"to_run": 999, "dry_run": true})).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_error(
        &post(&app, ROLLBACK, &json!({"to_run": 999})).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_error(
        &post(&app, ROLLBACK, &json!({"dry_run": true})).await,
        StatusCode::BAD_REQUEST,
        "bad_request",
    );
    assert_eq!(effects(db).await, before);
}

on_both_stores!(a_rollback_dry_run_writes_nothing_and_a_rollback_restores_the_run_as_a_new_run);

// ---------------------------------------------------------------------------------------------
// Bad and hostile input
// ---------------------------------------------------------------------------------------------

async fn malformed_trigger_and_rollback_bodies_answer_400_json_and_change_nothing(
    backend: Backend,
) {
    let db = TestDb::on(backend).await;
    db.load(&small_market(12, 1), 1).await;
    let state = app_state(&db, JobConfig::default(), None);
    let app = api::router(state.clone());
    let before = effects(&db).await;

    let oversized = format!(
        r#"{{"mode":"full","force":true,"plan_id":"{}"}}"#,
        "a".repeat(70 * 1024)
    );
    let cases: Vec<(&str, &str, Vec<u8>)> = vec![
        ("bad JSON", TRIGGER, b"{\"mode\": \"full\",".to_vec()),
        ("not an object", TRIGGER, b"[1, 2]".to_vec()),
        ("empty body", TRIGGER, Vec::new()),
        (
            "unknown mode",
            TRIGGER,
            br#"{"mode": "everything"}"#.to_vec(),
        ),
        ("mode of another type", TRIGGER, br#"{"mode": 3}"#.to_vec()),
        (
            "force of another type",
            TRIGGER,
            br#"{"force": "yes"}"#.to_vec(),
        ),
        (
            "unknown field",
            TRIGGER,
            br#"{"mode": "full", "universe": "x"}"#.to_vec(),
        ),
        ("oversized body", TRIGGER, oversized.clone().into_bytes()),
        (
            "hostile mode",
            TRIGGER,
            format!(
                r#"{{"mode": "full'; drop table cache_entries; --{}"}}"#,
                "\\u0000"
            )
            .into_bytes(),
        ),
        ("unknown plan mode", PLAN, br#"{"mode": "all"}"#.to_vec()),
        ("rollback bad JSON", ROLLBACK, b"{to_run: 1}".to_vec()),
        (
            "rollback to_run text",
            ROLLBACK,
            br#"{"to_run": "1"}"#.to_vec(),
        ),
        (
            "rollback unknown field",
            ROLLBACK,
            br#"{"to_run": 1, "dry": true}"#.to_vec(),
        ),
    ];
    for (what, uri, body) in &cases {
        let answer = send(&app, "POST", uri, Some(KEY), Some(body)).await;
        assert_error(&answer, StatusCode::BAD_REQUEST, "bad_request");
        let message = answer.json()["error"]["message"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(
            message.len() < 1000,
            "{what}: messages stay short: {message}"
        );
    }
    // The wrong content type.
    let request = Request::builder()
        .method("POST")
        .uri(TRIGGER)
        .header("x-api-key", KEY)
        .header(header::CONTENT_TYPE, "text/plain")
        .body(Body::from(r#"{"mode":"full"}"#))
        .unwrap();
    let answer = send_request(&app, request).await;
    assert_client_error(&answer, "text/plain body");

    assert_eq!(effects(&db).await, before, "no job, no run, no row");
    assert!(state.running.lock().await.is_none());
}

on_both_stores!(malformed_trigger_and_rollback_bodies_answer_400_json_and_change_nothing);

/// A real client sends `Content-Length`; the limit must still answer 413 in the error shape,
/// before anything is written.
async fn an_oversized_body_with_a_content_length_is_refused_in_the_json_error_shape_and_writes_nothing(
    backend: Backend,
) {
    let db = TestDb::on(backend).await;
    let app = api::router(app_state(&db, JobConfig::default(), None));
    let body = format!(r#"{{"mode":"full","plan_id":"{}"}}"#, "a".repeat(70 * 1024));
    let request = Request::builder()
        .method("POST")
        .uri(TRIGGER)
        .header("x-api-key", KEY)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CONTENT_LENGTH, body.len())
        .body(Body::from(body))
        .unwrap();
    let answer = send_request(&app, request).await;
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_client_error(&answer, "oversized body with Content-Length");
    assert_eq!(db.count("cache_sync_job").await, 0);
}

on_both_stores!(
    an_oversized_body_with_a_content_length_is_refused_in_the_json_error_shape_and_writes_nothing
);

/// The router's own rejections (path and query extraction, plan bodies, methods) should use the
/// error shape like everything else.
async fn every_client_error_the_router_answers_is_in_the_json_error_shape(backend: Backend) {
    let db = TestDb::on(backend).await;
    let app = api::router(app_state(&db, JobConfig::default(), None));
    let cases: Vec<(&str, &str, Option<&[u8]>)> = vec![
        ("POST", PLAN, Some(b"{\"mode\": ".as_slice())),
        (
            "POST",
            PLAN,
            Some(br#"{"mode": "full", "x": 1}"#.as_slice()),
        ),
        ("GET", "/api/processing/cache-sync/runs/abc/replay", None),
        ("GET", "/api/processing/cache-sync/history?limit=abc", None),
        ("GET", "/api/universes/a/b/c?at_run=x", None),
        ("GET", "/api/universes/a/b/c?bogus=1", None),
        ("GET", "/api/universes/a/b/c/history?limit=x", None),
        ("GET", "/api/universes/stock_universe/%FF%FE/x", None),
        ("GET", "/api/symbols/%FF/history", None),
        ("GET", TRIGGER, None),
        ("DELETE", "/api/universes", None),
    ];
    let mut wrong = Vec::new();
    for (method, uri, body) in cases {
        let answer = send(&app, method, uri, Some(KEY), body).await;
        assert!(
            answer.status.is_client_error(),
            "{method} {uri}: {}",
            answer.status
        );
        let json = serde_json::from_slice::<Value>(&answer.body).ok();
        if answer.content_type.as_deref() != Some("application/json")
            || json.as_ref().is_none_or(|j| j["success"] != false)
        {
            wrong.push(format!(
                "{method} {uri} -> {} {:?} {:?}",
                answer.status,
                answer.content_type,
                answer.text()
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "not in the error shape:\n{}",
        wrong.join("\n")
    );
}

on_both_stores!(every_client_error_the_router_answers_is_in_the_json_error_shape);

async fn hostile_universe_symbol_and_job_ids_answer_4xx_json_and_write_nothing(backend: Backend) {
    let s = seeded_on(backend, &JobConfig::default()).await;
    let db = &s.db;
    db.count_writes().await;
    let app = api::router(app_state(db, JobConfig::default(), None));
    let before = effects(db).await;
    let long = "n".repeat(5000);
    let universe_paths = [
        "stock_universe/market_cap/large'cap".to_owned(),
        "stock_universe/%22market_cap%22/large_cap".to_owned(),
        "stock_universe/market_cap'%20or%20'1'='1/x".to_owned(),
        "stock_universe/../large_cap".to_owned(),
        "stock_universe/..%2F..%2Fetc/passwd".to_owned(),
        "stock_universe/market_cap%2Flarge_cap/x".to_owned(),
        "stock_universe/%2E%2E/large_cap".to_owned(),
        format!("stock_universe/{long}/large_cap"),
        format!("{long}/{long}/{long}"),
        "stock_universe/market%00cap/large_cap".to_owned(),
        "stock_universe/market_cap/large_cap%0A".to_owned(),
        "stock_universe/market%1B%5B31mcap/large_cap".to_owned(),
        "stock_universe/market_cap/%7F".to_owned(),
        "%20/%20/%20".to_owned(),
    ];
    let mut uris = Vec::new();
    for p in &universe_paths {
        uris.push(format!("/api/universes/{p}"));
        uris.push(format!("/api/universes/{p}?at_run={}", s.run1));
        // A well-formed universe that never existed has an empty history; a malformed one is a 4xx.
        let history = get(&app, &format!("/api/universes/{p}/history")).await;
        assert!(!history.status.is_server_error(), "{p}: {}", history.text());
        if history.status == StatusCode::OK {
            assert_eq!(history.json()["changes"], json!([]), "{p}");
        } else {
            assert_client_error(&history, &format!("{p}/history"));
        }
    }
    for symbol in [
        "%27%3B%20drop%20table%20symbols%3B--",
        "%00",
        "A%0AB",
        &"A".repeat(5000),
        "%22BRK.B%22",
        "%E2%82%AC",
    ] {
        uris.push(format!("/api/symbols/{symbol}/history"));
    }
    for job in [
        "..%2F..%2Fetc%2Fpasswd",
        "cs-1'%20or%20'1'='1",
        "%00",
        &"j".repeat(5000),
        "cs%0A1",
    ] {
        uris.push(status_uri(job));
    }
    for uri in &uris {
        let answer = get(&app, uri).await;
        assert!(
            !answer.status.is_server_error(),
            "{uri}: {} {}",
            answer.status,
            answer.text()
        );
        assert_client_error(&answer, &uri.chars().take(120).collect::<String>());
    }
    // The quote-only names are well-formed and simply absent: 404, not 400.
    assert_error(
        &get(&app, "/api/universes/stock_universe/market_cap/large'cap").await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    for p in &universe_paths[3..universe_paths.len() - 1] {
        assert_error(
            &get(&app, &format!("/api/universes/{p}")).await,
            StatusCode::BAD_REQUEST,
            "bad_request",
        );
        assert_error(
            &get(&app, &format!("/api/universes/{p}/history")).await,
            StatusCode::BAD_REQUEST,
            "bad_request",
        );
    }
    // Tickers may hold `.` and `/` (BRK.B), so dotted paths are well-formed tickers that match
    // nothing: no 5xx, an empty history.
    for symbol in ["..", "..%2F..%2Fetc"] {
        let answer = get(&app, &format!("/api/symbols/{symbol}/history")).await;
        assert!(
            !answer.status.is_server_error(),
            "{symbol}: {}",
            answer.text()
        );
        if answer.status == StatusCode::OK {
            assert_eq!(answer.json()["changes"], json!([]), "{symbol}");
        } else {
            assert_client_error(&answer, symbol);
        }
    }
    assert_eq!(effects(db).await, before, "nothing written");
    assert_eq!(db.writes().await, 0);
    // The tables are all still there.
    assert!(db.count("symbols").await > 0);
}

on_both_stores!(hostile_universe_symbol_and_job_ids_answer_4xx_json_and_write_nothing);

// ---------------------------------------------------------------------------------------------
// Metrics
// ---------------------------------------------------------------------------------------------

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("{name} in\n{text}"))
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("{name} is a number ({e})"))
}

async fn metrics_are_prometheus_text_with_runs_pending_events_and_the_last_as_of(backend: Backend) {
    let s = seeded_on(backend, &JobConfig::default()).await;
    let db = &s.db;
    let app = api::router(app_state(db, JobConfig::default(), None));
    let answer = get(&app, "/metrics").await;
    assert_eq!(answer.status, StatusCode::OK);
    assert!(
        answer
            .content_type
            .as_deref()
            .is_some_and(|c| c.starts_with("text/plain")),
        "{:?}",
        answer.content_type
    );
    let text = answer.text();
    for name in [
        "cache_sync_runs_total",
        "cache_sync_outbox_pending_events",
        "cache_sync_last_success_as_of_timestamp_seconds",
    ] {
        assert!(text.contains(&format!("# TYPE {name} ")), "{name}:\n{text}");
        assert!(text.contains(&format!("# HELP {name} ")), "{name}:\n{text}");
    }
    assert_eq!(
        metric(&text, "cache_sync_runs_total{status=\"completed\"}"),
        2.0
    );
    let pending: i64 = db
        .sql("select count(*) from cache_sync_outbox where published_at is null")
        .scalar()
        .await;
    assert!(pending > 0, "no publisher: everything is pending");
    assert_eq!(
        metric(&text, "cache_sync_outbox_pending_events"),
        pending as f64
    );
    let midnight = s
        .market
        .date_of_day(2)
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc()
        .timestamp();
    assert_eq!(
        metric(&text, "cache_sync_last_success_as_of_timestamp_seconds"),
        midnight as f64
    );
    // Every sample line parses as `name{labels} number`.
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let (_, value) = line.rsplit_once(' ').expect("name value");
        assert!(value.parse::<f64>().is_ok(), "{line}");
        assert!(line.starts_with("cache_sync_"), "{line}");
    }
    let answer = send(&app, "GET", "/metrics", None, None).await;
    assert_error(&answer, StatusCode::UNAUTHORIZED, "unauthorized");
}

on_both_stores!(metrics_are_prometheus_text_with_runs_pending_events_and_the_last_as_of);

// ---------------------------------------------------------------------------------------------
// A real socket: restart and shutdown
// ---------------------------------------------------------------------------------------------

/// A response read off a socket.
#[derive(Debug)]
pub(crate) struct RawAnswer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawAnswer {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "{} answered non-JSON ({e}): {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

fn dechunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line_end = body
            .windows(2)
            .position(|w| w == b"\r\n")
            .expect("chunk size line");
        let size_text = std::str::from_utf8(&body[..line_end]).expect("ASCII size");
        let size = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16)
            .expect("hex chunk size");
        body = &body[line_end + 2..];
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&body[..size]);
        body = &body[size + 2..];
    }
}

/// One HTTP/1.1 request over a fresh TCP connection (`Connection: close`).
pub(crate) async fn raw_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    key: Option<&str>,
    body: Option<&str>,
) -> RawAnswer {
    let mut stream = tokio::time::timeout(WAIT, tokio::net::TcpStream::connect(addr))
        .await
        .expect("connect in time")
        .expect("connect");
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(key) = key {
        request.push_str(&format!("X-API-Key: {key}\r\n"));
    }
    if let Some(body) = body {
        request.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    request.push_str("\r\n");
    request.push_str(body.unwrap_or(""));
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut bytes = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut bytes))
        .await
        .expect("an answer in time")
        .expect("read");
    let split = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("a response head: {}", String::from_utf8_lossy(&bytes)));
    let head = String::from_utf8_lossy(&bytes[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("a status line: {head}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let raw = &bytes[split + 4..];
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    let body = if chunked { dechunk(raw) } else { raw.to_vec() };
    RawAnswer {
        status,
        headers,
        body,
    }
}

async fn after_a_restart_a_job_left_running_is_failed_and_triggers_work_again(backend: Backend) {
    let db = TestDb::on(backend).await;
    db.load(&small_market(14, 1), 1).await;
    // The previous process died with a job running.
    db.sql(
        "insert into cache_sync_job (job_id, mode, force, triggered_by, status, start_time)
         values ('cs-before-restart', 'full', true, 'api', 'running', $1)",
    )
    .bind(Utc::now())
    .execute()
    .await;
    let state = app_state(&db, JobConfig::default(), None);
    let service = Service::start(&state, Duration::from_secs(30)).await;
    let addr = service.addr;

    // The first answer means the service is up (it fails abandoned jobs before serving).
    let health = raw_request(addr, "GET", "/health", None, None).await;
    assert_eq!(health.status, 200);
    assert_eq!(health.json()["status"], "healthy");
    let old = raw_request(
        addr,
        "GET",
        "/api/processing/cache-sync/status/cs-before-restart",
        Some(KEY),
        None,
    )
    .await;
    assert_eq!(old.status, 200);
    let old = old.json();
    assert_eq!(old["status"], "failed", "{old}");
    assert!(
        old["error_details"].as_str().unwrap().contains("restarted"),
        "{old}"
    );
    assert!(old["end_time"].is_string());

    let accepted = raw_request(
        addr,
        "POST",
        TRIGGER,
        Some(KEY),
        Some(r#"{"mode":"full","force":true}"#),
    )
    .await;
    assert_eq!(
        accepted.status,
        202,
        "{:?}",
        String::from_utf8_lossy(&accepted.body)
    );
    assert!(accepted
        .headers
        .iter()
        .any(|(k, v)| k == "content-type" && v == "application/json"));
    let job_id = accepted.json()["job_id"].as_str().unwrap().to_owned();
    assert_eq!(finish_job(&state).await, job_id);
    let status = raw_request(addr, "GET", &status_uri(&job_id), Some(KEY), None).await;
    assert_eq!(status.json()["status"], "completed");
    let unauthorized = raw_request(addr, "GET", "/api/universes", None, None).await;
    assert_eq!(unauthorized.status, 401);
    assert_eq!(unauthorized.json()["error"]["code"], "unauthorized");

    service.shut_down().await;
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "the listener is closed"
    );
}

on_both_stores!(after_a_restart_a_job_left_running_is_failed_and_triggers_work_again);

#[tokio::test]
async fn on_shutdown_a_job_that_outlasts_the_grace_period_is_rolled_back_and_recorded_interrupted()
{
    let db = TestDb::new().await;
    db.load(&small_market(15, 1), 1).await;
    let state = app_state(&db, JobConfig::default(), None);
    let service = Service::start(&state, Duration::ZERO).await;
    let addr = service.addr;
    let lock = PricesLocked::hold(&db).await;
    let accepted = raw_request(
        addr,
        "POST",
        TRIGGER,
        Some(KEY),
        Some(r#"{"mode":"full","force":true}"#),
    )
    .await;
    assert_eq!(accepted.status, 202);
    let job_id = accepted.json()["job_id"].as_str().unwrap().to_owned();
    let app = api::router(state.clone());
    status_until(&app, &job_id, |s| s["status"] == "running").await;

    service.shut_down().await;
    lock.release().await;
    let s = get(&app, &status_uri(&job_id)).await.json();
    assert_eq!(s["status"], "failed", "{s}");
    assert!(
        s["error_details"].as_str().unwrap().contains("interrupted"),
        "{s}"
    );
    assert_eq!(db.count("cache_sync_run").await, 0, "no run committed");
    assert_eq!(db.count("cache_entries").await, 0, "nothing written");
    assert_eq!(db.count("cache_sync_outbox").await, 0);
}

/// Reads one RESP command (an array of bulk strings); `None` at end of stream.
pub(crate) async fn read_command(
    reader: &mut (impl tokio::io::AsyncBufRead + Unpin),
) -> Option<Vec<String>> {
    use tokio::io::AsyncBufReadExt as _;
    let mut line = String::new();
    if reader.read_line(&mut line).await.ok()? == 0 {
        return None;
    }
    let n: usize = line.trim_end().strip_prefix('*')?.parse().ok()?;
    let mut parts = Vec::with_capacity(n);
    for _ in 0..n {
        line.clear();
        reader.read_line(&mut line).await.ok()?;
        let len: usize = line.trim_end().strip_prefix('$')?.parse().ok()?;
        let mut data = vec![0; len + 2];
        reader.read_exact(&mut data).await.ok()?;
        data.truncate(len);
        parts.push(String::from_utf8_lossy(&data).into_owned());
    }
    Some(parts)
}

/// `http::serve` on a free loopback port, in the background.
pub(crate) struct Service {
    pub addr: SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Service {
    pub async fn start(state: &AppState, grace: Duration) -> Self {
        Self::start_with(state, grace, api::ConnectionLimits::default()).await
    }

    /// As `start`, under other connection limits.
    pub async fn start_with(
        state: &AppState,
        grace: Duration,
        limits: api::ConnectionLimits,
    ) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(api::serve_with(
            listener,
            state.clone(),
            async move {
                let _ = stopped.await;
            },
            grace,
            limits,
        ));
        Self { addr, stop, server }
    }

    /// Sends the shutdown signal and waits (bounded) for `serve` to end cleanly.
    pub async fn shut_down(self) {
        self.stop.send(()).unwrap();
        tokio::time::timeout(WAIT, self.server)
            .await
            .expect("serve returns after the shutdown signal")
            .expect("no panic")
            .expect("serve ends cleanly");
    }
}

/// A stand-in Redis that answers every command but never answers `XREVRANGE`, which only the
/// outbox relay sends: a job that reaches its relay (after its commit and its `completed`
/// status) stays there until the client's response timeout.
pub(crate) async fn redis_stuck_in_relay() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (read, mut write) = socket.into_split();
                let mut reader = tokio::io::BufReader::new(read);
                while let Some(command) = read_command(&mut reader).await {
                    let name = command.first().map(|c| c.to_ascii_uppercase());
                    let reply: &[u8] = match name.as_deref() {
                        Some("XREVRANGE") => std::future::pending().await,
                        Some("PUBLISH") => b":0\r\n",
                        _ => b"+OK\r\n",
                    };
                    if write.write_all(reply).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

async fn a_job_aborted_on_shutdown_after_its_commit_stays_completed(backend: Backend) {
    let db = TestDb::on(backend).await;
    db.load(&small_market(16, 1), 1).await;
    let redis = redis_stuck_in_relay().await;
    let channels = tickstock_cache_sync::domain::events::Channels {
        prefix: format!("t{}_stuck", std::process::id()),
    };
    let publisher = Publisher::new(&format!("redis://{redis}"), channels.clone(), 1000).unwrap();
    let job = JobConfig {
        channels,
        ..JobConfig::default()
    };
    let state = app_state(&db, job, Some(publisher));
    let service = Service::start(&state, Duration::ZERO).await;
    let addr = service.addr;
    assert_eq!(
        raw_request(addr, "GET", "/health", None, None).await.status,
        200
    );
    let app = api::router(state.clone());
    let accepted = post(&app, TRIGGER, &json!({"mode": "full", "force": true})).await;
    assert_eq!(accepted.status, StatusCode::ACCEPTED, "{}", accepted.text());
    let job_id = accepted.json()["job_id"].as_str().unwrap().to_owned();
    // Committed and recorded completed; now relaying its events.
    let done = status_until(&app, &job_id, |s| {
        s["status"] != "pending" && s["status"] != "running"
    })
    .await;
    assert_eq!(done["status"], "completed", "{done}");

    service.shut_down().await;
    assert_eq!(db.count("cache_sync_run").await, 1, "the run committed");
    assert!(db.count("cache_entries").await > 0);
    let after = get(&app, &status_uri(&job_id)).await.json();
    assert_eq!(
        after["status"], "completed",
        "a committed run is not reported rolled back: {after}"
    );
    assert!(after["error_details"].is_null(), "{after}");
}

on_both_stores!(a_job_aborted_on_shutdown_after_its_commit_stays_completed);

async fn while_another_writer_holds_the_lock_a_trigger_and_a_rollback_get_409(backend: Backend) {
    let s = seeded_on(backend, &JobConfig::default()).await;
    let db = &s.db;
    let state = app_state(db, JobConfig::default(), None);
    let app = api::router(state.clone());
    // A command-line run (no job row) holds the writer lock.
    let mut holder = db.store.begin().await.unwrap();
    assert_eq!(
        holder.try_lock_writer().await.unwrap(),
        LockOutcome::Acquired
    );
    let before = effects(db).await;

    let rollback = post(&app, ROLLBACK, &json!({"to_run": s.run1, "force": true})).await;
    assert_error(&rollback, StatusCode::CONFLICT, "already_running");

    // The trigger answers 409 at once (SPEC §9: 409 while a run is in progress), creating no job.
    let refused = post(&app, TRIGGER, &json!({"mode": "full", "force": true})).await;
    assert_error(&refused, StatusCode::CONFLICT, "already_running");
    assert!(
        refused.text().contains("writer lock"),
        "a clear reason: {}",
        refused.text()
    );
    assert!(state.running.lock().await.is_none(), "no job was started");
    let after = effects(db).await;
    assert_eq!(after.runs, before.runs, "no run record");
    assert_eq!(after.rows, before.rows, "nothing written");
    holder.rollback().await.unwrap();
}

on_both_stores!(while_another_writer_holds_the_lock_a_trigger_and_a_rollback_get_409);

// ---------------------------------------------------------------------------------------------
// `cache-sync serve`
// ---------------------------------------------------------------------------------------------

/// `cache-sync serve …` with no key in the environment.
pub(crate) fn serve_command(db: &TestDb, args: &[&str]) -> std::process::Command {
    let mut all = vec!["serve"];
    all.extend_from_slice(args);
    let mut command = cache_sync_command(db, &all);
    command
        .env_remove("CACHE_SYNC_API_KEY")
        .env_remove("CACHE_SYNC_API_KEY_FILE")
        .stdin(Stdio::null());
    command
}

async fn serve_refuses_to_start_without_a_key_unless_unauthenticated_on_loopback(backend: Backend) {
    let db = TestDb::on(backend).await;
    let cases: [(&[&str], &str); 5] = [
        (&["--bind", "127.0.0.1:0"], "no API key"),
        (
            &["--bind", "0.0.0.0:0", "--unauthenticated-loopback"],
            "loopback",
        ),
        (
            &["--bind", "[::]:0", "--unauthenticated-loopback"],
            "loopback",
        ),
        (
            &["--bind", "192.0.2.1:0", "--unauthenticated-loopback"],
            "loopback",
        ),
        (
            &["--bind", "127.0.0.1:0", "--api-key", "short"],
            "at least 16",
        ),
    ];
    for (args, says) in cases {
        let out = serve_command(&db, args).output().expect("run cache-sync");
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", describe(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(says), "{args:?}: {}", describe(&out));
        assert!(!stderr.contains("serving on"), "{args:?}");
    }
    let out = serve_command(&db, &["--bind", "127.0.0.1:0"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("CACHE_SYNC_API_KEY") && stderr.contains("--unauthenticated-loopback"),
        "the message says how to fix it: {stderr}"
    );
    // A key file that does not exist is a usage error too.
    let out = serve_command(&db, &["--api-key-file", "/nonexistent/cache-sync-key"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
}

on_both_stores!(serve_refuses_to_start_without_a_key_unless_unauthenticated_on_loopback);

/// A free loopback port (bound then released; the child binds it next).
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind a free port")
        .local_addr()
        .unwrap()
        .port()
}

/// The child's stderr, line by line, read on a thread so the child never blocks on the pipe.
pub(crate) fn stderr_lines(child: &mut std::process::Child) -> std::sync::mpsc::Receiver<String> {
    let stderr = child.stderr.take().expect("stderr piped");
    let (sender, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if sender.send(line).is_err() {
                return;
            }
        }
    });
    lines
}

/// Waits (bounded) for a line of the child's stderr containing `wanted`; the lines before it.
pub(crate) fn wait_for_line(
    lines: &std::sync::mpsc::Receiver<String>,
    wanted: &str,
) -> Vec<String> {
    let mut seen = Vec::new();
    loop {
        match lines.recv_timeout(WAIT) {
            Ok(line) if line.contains(wanted) => return seen,
            Ok(line) => seen.push(line),
            Err(e) => panic!("no line with {wanted:?} ({e}); saw {seen:?}"),
        }
    }
}

/// A `cache-sync serve` child, killed if the test fails before it exits.
pub(crate) struct ServeProcess(std::process::Child);

impl ServeProcess {
    /// Starts the child and returns once it says it is serving.
    pub(crate) fn start(mut command: std::process::Command) -> Self {
        let mut child = command
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start cache-sync serve");
        let stderr = child.stderr.take().unwrap();
        let mut lines = BufReader::new(stderr).lines();
        let mut seen = Vec::new();
        loop {
            match lines.next() {
                Some(Ok(line)) if line.contains("serving on") => break,
                Some(Ok(line)) => seen.push(line),
                _ => {
                    let status = child.wait().ok();
                    panic!("cache-sync serve did not start ({status:?}): {seen:?}");
                }
            }
        }
        // Keep draining stderr so the child never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines.by_ref() {});
        Self(child)
    }

    /// SIGTERM, then the exit code.
    fn terminate(mut self) -> Option<i32> {
        let status = std::process::Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status()
            .expect("kill -TERM");
        assert!(status.success());
        let code = self.0.wait().expect("wait").code();
        std::mem::forget(self);
        code
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn serve_starts_with_a_key_from_the_environment_or_a_file_or_unauthenticated_on_loopback(
    backend: Backend,
) {
    let db = TestDb::on(backend).await;

    // Key from CACHE_SYNC_API_KEY.
    let port = free_port();
    let mut command = serve_command(&db, &["--bind", &format!("127.0.0.1:{port}")]);
    command.env("CACHE_SYNC_API_KEY", KEY);
    let child = ServeProcess::start(command);
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    assert_eq!(
        raw_request(addr, "GET", "/health", None, None).await.status,
        200
    );
    let denied = raw_request(addr, "GET", "/api/universes", None, None).await;
    assert_eq!(denied.status, 401);
    assert_eq!(denied.json()["error"]["code"], "unauthorized");
    let allowed = raw_request(addr, "GET", "/api/universes", Some(KEY), None).await;
    assert_eq!(allowed.status, 200);
    assert_eq!(child.terminate(), Some(0), "SIGTERM shuts down cleanly");

    // Key from CACHE_SYNC_API_KEY_FILE (first line).
    let file = std::env::temp_dir().join(format!("cache-sync-key-{}-{port}", std::process::id()));
    std::fs::write(&file, format!("{KEY}\nignored second line\n")).unwrap();
    let port = free_port();
    let mut command = serve_command(&db, &["--bind", &format!("127.0.0.1:{port}")]);
    command.env("CACHE_SYNC_API_KEY_FILE", &file);
    let child = ServeProcess::start(command);
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    assert_eq!(
        raw_request(addr, "GET", "/api/universes", Some(KEY), None)
            .await
            .status,
        200
    );
    assert_eq!(
        raw_request(
            addr,
            "GET",
            "/api/universes",
            Some("ignored second line"),
            None
        )
        .await
        .status,
        401
    );
    assert_eq!(child.terminate(), Some(0));
    let _ = std::fs::remove_file(&file);

    // No key, loopback only.
    let port = free_port();
    let child = ServeProcess::start(serve_command(
        &db,
        &[
            "--bind",
            &format!("127.0.0.1:{port}"),
            "--unauthenticated-loopback",
        ],
    ));
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    assert_eq!(
        raw_request(addr, "GET", "/api/universes", None, None)
            .await
            .status,
        200
    );
    assert_eq!(child.terminate(), Some(0));
}

on_both_stores!(
    serve_starts_with_a_key_from_the_environment_or_a_file_or_unauthenticated_on_loopback
);
