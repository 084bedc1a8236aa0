//! The API cannot be pushed over (issue 12 item 4): idle and slow clients are disconnected, a
//! flood of idle sockets cannot keep `/health` from answering, bodies are JSON objects only, a
//! second `X-API-Key` is refused, only owned scopes are served, and the OpenAPI document says
//! what the server does (parameter types, optional bodies, `null`, `/metrics` as text).

use crate::helpers::{on_both_stores, small_market, Backend, TestDb, WAIT};
use crate::http::{
    app_state, assert_error, effects, finish_job, get, post, raw_request, send, send_request,
    Service, KEY, PLAN, ROLLBACK, TOP_10, TRIGGER,
};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tickstock_cache_sync::http::{self as api, ConnectionLimits};
use tickstock_cache_sync::job::JobConfig;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// Reads until the service closes the connection (bounded by `WAIT`); what it sent first.
async fn until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut bytes = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut bytes))
        .await
        .expect("the service closes the connection")
        .ok();
    bytes
}

async fn a_flood_of_idle_sockets_never_keeps_health_from_answering(backend: Backend) {
    let db = TestDb::on(backend).await;
    let state = app_state(&db, JobConfig::default(), None);
    // Idle sockets would stay for ten minutes: only the connection cap can close them here.
    let limits = ConnectionLimits {
        header_read_timeout: Duration::from_secs(600),
        ..ConnectionLimits::default()
    };
    let service = Service::start_with(&state, Duration::ZERO, limits).await;
    let addr = service.addr;
    let closed = Arc::new(AtomicUsize::new(0));
    let one_more = Arc::new(tokio::sync::Notify::new());
    let mut watchers = tokio::task::JoinSet::new();
    let flood = 3000;
    for batch in 1..=6 {
        for _ in 0..flood / 6 {
            let mut socket = TcpStream::connect(addr).await.expect("connect");
            let (closed, one_more) = (closed.clone(), one_more.clone());
            watchers.spawn(async move {
                let mut byte = [0u8; 1];
                if matches!(socket.read(&mut byte).await, Ok(0) | Err(_)) {
                    closed.fetch_add(1, Ordering::SeqCst);
                    one_more.notify_one();
                }
            });
        }
        let health = raw_request(addr, "GET", "/health", None, None).await;
        assert_eq!(
            health.status,
            200,
            "after {} idle sockets",
            batch * flood / 6
        );
        assert_eq!(health.json()["status"], "healthy");
    }
    // Every idle socket beyond the cap was closed by the service to make room.
    let beyond_cap = flood - limits.max_connections;
    let deadline = tokio::time::Instant::now() + WAIT;
    while closed.load(Ordering::SeqCst) < beyond_cap {
        let waited = tokio::time::timeout_at(deadline, one_more.notified()).await;
        assert!(
            waited.is_ok(),
            "only {} of the {flood} idle sockets were closed; the cap is {}",
            closed.load(Ordering::SeqCst),
            limits.max_connections
        );
    }
    service.shut_down().await;
    watchers.shutdown().await;
}

on_both_stores!(a_flood_of_idle_sockets_never_keeps_health_from_answering);

async fn clients_that_stall_on_headers_or_a_body_or_stay_idle_are_disconnected(backend: Backend) {
    let db = TestDb::on(backend).await;
    db.load(&small_market(31, 1), 1).await;
    let state = app_state(&db, JobConfig::default(), None);
    let limits = ConnectionLimits {
        header_read_timeout: Duration::from_millis(300),
        body_read_timeout: Duration::from_millis(300),
        ..ConnectionLimits::default()
    };
    let service = Service::start_with(&state, Duration::ZERO, limits).await;
    let addr = service.addr;

    // Half a request head, then nothing.
    let mut slow_head = TcpStream::connect(addr).await.unwrap();
    slow_head
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let answer = until_closed(&mut slow_head).await;
    assert!(
        !String::from_utf8_lossy(&answer).contains(" 200 "),
        "no answer to half a request"
    );

    // A kept-alive connection that goes idle after its answer.
    let mut idle = TcpStream::connect(addr).await.unwrap();
    idle.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let answer = String::from_utf8_lossy(&until_closed(&mut idle).await).into_owned();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    // A body announced at 100 bytes of which 10 arrive: refused, no job.
    let mut slow_body = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST {TRIGGER} HTTP/1.1\r\nHost: x\r\nX-API-Key: {KEY}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"mode\": "
    );
    slow_body.write_all(head.as_bytes()).await.unwrap();
    let answer = String::from_utf8_lossy(&until_closed(&mut slow_body).await).into_owned();
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 4"),
        "a stalled body is refused or cut: {answer}"
    );
    assert_eq!(
        db.count("cache_sync_job").await,
        0,
        "no job from half a body"
    );

    // The service still answers.
    let health = raw_request(addr, "GET", "/health", None, None).await;
    assert_eq!(health.status, 200);
    service.shut_down().await;
}

on_both_stores!(clients_that_stall_on_headers_or_a_body_or_stay_idle_are_disconnected);

async fn bodies_that_are_not_json_objects_are_refused_and_run_nothing(backend: Backend) {
    let db = TestDb::on(backend).await;
    db.load(&small_market(32, 1), 1).await;
    let state = app_state(&db, JobConfig::default(), None);
    let app = api::router(state.clone());
    let before = effects(&db).await;
    let cases: [(&str, &str); 8] = [
        // serde would read this positionally: mode themes, force true.
        (TRIGGER, r#"["themes", true]"#),
        (TRIGGER, r#"["full"]"#),
        (TRIGGER, r#""full""#),
        (TRIGGER, "true"),
        (TRIGGER, "null"),
        (PLAN, r#"["themes"]"#),
        (ROLLBACK, "[1, false, true]"),
        (ROLLBACK, "1"),
    ];
    for (uri, body) in cases {
        let answer = send(&app, "POST", uri, Some(KEY), Some(body.as_bytes())).await;
        assert_error(&answer, StatusCode::BAD_REQUEST, "bad_request");
        let message = answer.json()["error"]["message"].to_string();
        assert!(
            message.contains("must be a JSON object"),
            "{uri} {body}: {message}"
        );
    }
    assert_eq!(effects(&db).await, before, "no job, no run, no row");
    assert!(state.running.lock().await.is_none());

    // Without a body at all, a trigger is a full run without force (the document says the
    // body is optional).
    let request = Request::builder()
        .method("POST")
        .uri(TRIGGER)
        .header("x-api-key", KEY)
        .body(Body::empty())
        .unwrap();
    let accepted = send_request(&app, request).await;
    assert_eq!(accepted.status, StatusCode::ACCEPTED, "{}", accepted.text());
    assert_eq!(accepted.json()["mode"], "full");
    let job_id = finish_job(&state).await;
    let job = db.store.get_job(&job_id).await.unwrap().unwrap();
    assert!(!job.force, "no body is no force");
}

on_both_stores!(bodies_that_are_not_json_objects_are_refused_and_run_nothing);

async fn a_second_api_key_header_is_refused_even_when_both_are_right(backend: Backend) {
    let db = TestDb::on(backend).await;
    let app = api::router(app_state(&db, JobConfig::default(), None));
    for (first, second) in [(KEY, KEY), (KEY, "wrong-key-0123456789"), ("wrong", KEY)] {
        let request = Request::builder()
            .method("GET")
            .uri("/api/universes")
            .header("x-api-key", first)
            .header("x-api-key", second)
            .body(Body::empty())
            .unwrap();
        let answer = send_request(&app, request).await;
        assert_error(&answer, StatusCode::BAD_REQUEST, "bad_request");
        assert!(answer.text().contains("once"), "{}", answer.text());
    }
    assert_eq!(get(&app, "/api/universes").await.status, StatusCode::OK);
}

on_both_stores!(a_second_api_key_header_is_refused_even_when_both_are_right);

async fn rows_outside_the_owned_scopes_are_not_served(backend: Backend) {
    let db = TestDb::on(backend).await;
    db.load(&small_market(33, 1), 1).await;
    db.sql(
        "insert into cache_entries (type, name, key, value, environment) values
         ('app_settings', 'ui', 'theme', '{\"dark\": true}', 'DEFAULT'),
         ('cache_config', 'limits', 'top', '{\"n\": 5}', 'DEFAULT')",
    )
    .execute()
    .await;
    let state = app_state(&db, JobConfig::default(), None);
    let app = api::router(state.clone());
    assert_eq!(
        post(&app, TRIGGER, &json!({"force": true})).await.status,
        StatusCode::ACCEPTED
    );
    finish_job(&state).await;
    for universe in ["app_settings/ui/theme", "cache_config/limits/top"] {
        for uri in [
            format!("/api/universes/{universe}"),
            format!("/api/universes/{universe}/history"),
        ] {
            let answer = get(&app, &uri).await;
            assert_error(&answer, StatusCode::NOT_FOUND, "not_found");
            assert!(
                answer.text().contains("not a universe this job owns"),
                "{uri}"
            );
            assert!(!answer.text().contains("dark"), "{uri}: nothing of the row");
        }
    }
    let owned = get(&app, &format!("/api/universes/{TOP_10}")).await;
    assert_eq!(owned.status, StatusCode::OK, "{}", owned.text());
}

on_both_stores!(rows_outside_the_owned_scopes_are_not_served);

/// The operation of `method path` in the document.
fn operation<'a>(doc: &'a Value, method: &str, path: &str) -> &'a Value {
    let op = &doc["paths"][path][method];
    assert!(op.is_object(), "{method} {path} is documented");
    op
}

async fn the_openapi_document_says_what_the_server_does(backend: Backend) {
    let db = TestDb::on(backend).await;
    db.load(&small_market(34, 1), 1).await;
    let state = app_state(&db, JobConfig::default(), None);
    let app = api::router(state.clone());
    let doc = get(&app, "/api/openapi.json").await.json();

    // Path parameters: a run id is an integer (text is refused), a job id a pattern.
    let replay = operation(
        &doc,
        "get",
        "/api/processing/cache-sync/runs/{run_id}/replay",
    );
    assert_eq!(replay["parameters"][0]["schema"]["type"], "integer");
    let refused = get(&app, "/api/processing/cache-sync/runs/abc/replay").await;
    assert!(refused.status.is_client_error());
    let status = operation(&doc, "get", "/api/processing/cache-sync/status/{job_id}");
    assert_eq!(status["parameters"][0]["schema"]["type"], "string");
    assert!(status["parameters"][0]["schema"]["pattern"].is_string());
    let shown = operation(&doc, "get", "/api/universes/{type}/{name}/{key}");
    let names: Vec<&str> = shown["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["type", "name", "key", "at_run", "at"]);

    // Optional bodies: the server takes a plan without one; a rollback needs one.
    assert_eq!(
        operation(&doc, "post", PLAN)["requestBody"]["required"],
        false
    );
    let no_body = send(&app, "POST", PLAN, Some(KEY), None).await;
    assert_eq!(no_body.status, StatusCode::OK, "{}", no_body.text());
    assert_eq!(
        operation(&doc, "post", ROLLBACK)["requestBody"]["required"],
        true
    );
    let no_body = send(&app, "POST", ROLLBACK, Some(KEY), None).await;
    assert!(no_body.status.is_client_error(), "{}", no_body.text());
    assert_eq!(
        operation(&doc, "post", TRIGGER)["requestBody"]["required"],
        false
    );

    // null: accepted where the schema says nullable, refused where it does not.
    let schemas = &doc["components"]["schemas"];
    assert_eq!(
        schemas["PlanRequest"]["properties"]["mode"]["nullable"],
        true
    );
    assert_eq!(
        post(&app, PLAN, &json!({"mode": null})).await.status,
        StatusCode::OK
    );
    let trigger_mode = &schemas["TriggerRequest"]["properties"]["mode"];
    assert!(trigger_mode["nullable"].is_null(), "{trigger_mode}");
    assert_eq!(
        post(&app, TRIGGER, &json!({"mode": null})).await.status,
        StatusCode::BAD_REQUEST
    );
    assert!(schemas["RollbackRequest"]["properties"]["dry_run"]["nullable"].is_null());
    assert_eq!(
        post(&app, ROLLBACK, &json!({"to_run": 1, "dry_run": null}))
            .await
            .status,
        StatusCode::BAD_REQUEST
    );
    assert!(state.running.lock().await.is_none(), "no job was started");

    // /metrics is text.
    let metrics = operation(&doc, "get", "/metrics");
    let media: Vec<&String> = metrics["responses"]["200"]["content"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    assert_eq!(media, ["text/plain"]);
    let served = get(&app, "/metrics").await;
    assert!(
        served
            .content_type
            .as_deref()
            .is_some_and(|t| t.starts_with("text/plain")),
        "{:?}",
        served.content_type
    );
}

on_both_stores!(the_openapi_document_says_what_the_server_does);
