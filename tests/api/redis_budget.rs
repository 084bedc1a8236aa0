//! Redis trouble costs seconds (issue 12 item 6): with Redis frozen (a listener that accepts and
//! never answers), a run's notices share one connection and one short budget, then it sends
//! Redis nothing more: the run completes and the outbox keeps its events for the next relay.
//! `events --relay` with Redis down exits 1 (a failure), not 2 (bad usage).

use crate::helpers::{
    cache_sync_command, describe, on_both_stores, run_request, small_market, Backend, TestDb,
};
use crate::pubsub::{redis_url, StreamCleanup};
use async_trait::async_trait;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tickstock_cache_sync::domain::events::Channels;
use tickstock_cache_sync::job::{run_phase, JobConfig, RunContext, RunMode, RunObserver};
use tickstock_cache_sync::publish::{PublishError, Publisher};

/// A Redis that accepts connections, reads what it is sent and never answers; counts the
/// connections it accepted.
async fn frozen_redis() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut sink = tokio::io::sink();
                let _ = tokio::io::copy(&mut socket, &mut sink).await;
            });
        }
    });
    (addr, accepted)
}

/// Keeps what the run told its observer about the relay.
#[derive(Default)]
struct RelayWatch(Mutex<Vec<String>>);

#[async_trait]
impl RunObserver for RelayWatch {
    async fn relay_failed(&self, error: &PublishError) {
        let kind = match error {
            PublishError::Unanswered(_) => "unanswered".to_owned(),
            other => format!("other: {other}"),
        };
        self.0.lock().unwrap().push(kind);
    }
}

async fn with_redis_frozen_a_run_spends_one_budget_and_the_outbox_keeps_its_events(
    backend: Backend,
) {
    let db = TestDb::on(backend).await;
    db.load(&small_market(51, 1), 1).await;
    let (frozen, accepted) = frozen_redis().await;
    let mut cleanup = StreamCleanup::new(&redis_url());
    let channels = Channels {
        prefix: cleanup.prefix(),
    };
    let job = JobConfig {
        channels: channels.clone(),
        ..JobConfig::default()
    };
    let publisher = Publisher::new(&format!("redis://{frozen}"), channels.clone(), 1000).unwrap();
    let watch = RelayWatch::default();
    let context = RunContext {
        store: db.store.as_ref(),
        job: &job,
        publisher: Some(&publisher),
    };
    let report = run_phase(
        context,
        run_request(true),
        &RunMode::Families(Vec::new()),
        &watch,
    )
    .await
    .expect("the run completes with Redis frozen");
    assert!(report.run_id.is_some(), "the run committed");
    assert!(report.created > 0);

    // Every notice (triggered, started, each step) and the relay went through one connection,
    // given up once: nothing waited out a timeout of its own.
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        1,
        "one connection for the whole run"
    );
    assert_eq!(
        *watch.0.lock().unwrap(),
        ["unanswered"],
        "the relay was skipped"
    );
    let queued = db.count("cache_sync_outbox").await;
    assert!(queued > 0);
    let pending = db.store.pending_outbox(100_000).await.unwrap();
    assert_eq!(pending.len() as i64, queued, "the outbox keeps every event");

    // Redis back: the next relay publishes them all.
    let live = Publisher::new(&redis_url(), channels, 1000).unwrap();
    let relayed = live.relay(db.store.as_ref()).await.expect("relay");
    assert_eq!(relayed.published as i64, queued);
    assert!(db.store.pending_outbox(10).await.unwrap().is_empty());
}

on_both_stores!(with_redis_frozen_a_run_spends_one_budget_and_the_outbox_keeps_its_events);

async fn events_relay_with_redis_down_exits_1_and_keeps_the_outbox(backend: Backend) {
    let db = TestDb::on(backend).await;
    db.load(&small_market(52, 1), 1).await;
    let run = cache_sync_command(&db, &["run", "--force"])
        .output()
        .expect("run");
    assert!(run.status.success(), "{}", describe(&run));
    let queued = db.count("cache_sync_outbox").await;
    assert!(queued > 0);
    // Nothing listens on port 1.
    let out = cache_sync_command(&db, &["events", "--relay"])
        .env("REDIS_URL", "redis://127.0.0.1:1")
        .output()
        .expect("events --relay");
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("events stay in the outbox"), "{stderr}");
    assert_eq!(
        db.store.pending_outbox(100_000).await.unwrap().len() as i64,
        queued
    );
}

on_both_stores!(events_relay_with_redis_down_exits_1_and_keeps_the_outbox);
