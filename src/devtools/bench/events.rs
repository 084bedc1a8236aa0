//! `bench --events`: relay throughput on a synthetic backlog, and commit-to-subscriber latency
//! over nightly runs.

use super::scratch::{pg, ScratchServer};
use super::{market, request, EventFigures};
use crate::config::BenchArgs;
use crate::devtools::loader::{load_day, load_through_day};
use crate::job::{self, JobConfig};
use crate::publish::Publisher;
use crate::store::{QueryContext, Schema, StoreError};
use std::time::Instant;

pub(super) async fn measure_events(
    server: &ScratchServer,
    args: &BenchArgs,
    name: &str,
    publisher: &Publisher,
) -> Result<EventFigures, StoreError> {
    use futures_util::StreamExt as _;
    let fail =
        |e: crate::publish::PublishError| StoreError::Corrupt(format!("publishing failed: {e}"));
    let store = server.create(name, None).await?;
    store.migrate().await?;
    // Throughput: a backlog of synthetic universe events, as after a long Redis outage.
    sqlx::query(
        "insert into cache_sync_outbox (run_id, environment, seq, channel, also_channel, event, payload)
         select 0, 'BENCH', g, 'bench:universe:updated', 'bench:universe:stock_universe:market_cap:large_cap',
                'universe_updated',
                jsonb_build_object('universe', 'market_cap:large_cap', 'type', 'stock_universe', 'name', 'market_cap',
                                   'key', 'large_cap', 'action', 'updated', 'added', jsonb_build_array('AAA'),
                                   'removed', jsonb_build_array('BBB'), 'count', 612, 'seq', g, 'run_id', 0)
         from generate_series(1, $1) g",
    )
    .bind(args.events as i64)
    .execute(pg(&store))
    .await
    .during("queueing synthetic events")?;
    let started = Instant::now();
    let relayed = publisher.relay(&store).await.map_err(fail)?;
    let seconds = started.elapsed().as_secs_f64();

    // Latency: a subscriber on every channel, nightly runs, relay right after each commit.
    let market = market(args, 6);
    load_through_day(&store, &market, 1).await?;
    let client = redis::Client::open(publisher.redis_url()).map_err(|e| fail(e.into()))?;
    let mut pubsub = client
        .get_async_pubsub()
        .await
        .map_err(|e| fail(e.into()))?;
    pubsub
        .subscribe(publisher.channels().universe_updated())
        .await
        .map_err(|e| fail(e.into()))?;
    let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel::<Instant>();
    let listener = tokio::spawn(async move {
        let mut messages = pubsub.into_on_message();
        while messages.next().await.is_some() {
            if sender.send(Instant::now()).is_err() {
                break;
            }
        }
    });
    let job_config = JobConfig {
        channels: publisher.channels().clone(),
        ..JobConfig::default()
    };
    let mut latencies = Vec::new();
    for day in 1..=6 {
        if day > 1 {
            load_day(&store, &market, day).await?;
        }
        let report = job::run(&store, &job_config, &request())
            .await
            .map_err(|e| StoreError::Corrupt(format!("bench run failed: {e}")))?;
        let committed = Instant::now();
        publisher.relay(&store).await.map_err(fail)?;
        let expected = report.created + report.updated + report.deleted;
        for _ in 0..expected {
            match tokio::time::timeout(std::time::Duration::from_secs(10), receiver.recv()).await {
                Ok(Some(at)) => latencies.push(at.duration_since(committed).as_secs_f64() * 1e3),
                _ => break,
            }
        }
    }
    listener.abort();
    store.close().await;
    // The synthetic backlog went into the change stream; leave nothing behind.
    if let Ok(mut con) = client.get_multiplexed_async_connection().await {
        let _: Result<i64, _> = redis::cmd("DEL")
            .arg(publisher.channels().stream())
            .query_async(&mut con)
            .await;
    }
    latencies.sort_by(|a, b| a.total_cmp(b));
    let pick = |q: f64| {
        latencies
            .get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0.0)
    };
    Ok(EventFigures {
        events_relayed: relayed.published,
        events_per_second: relayed.published as f64 / seconds,
        latency_median_ms: pick(0.5),
        latency_p99_ms: pick(0.99),
        latency_samples: latencies.len(),
    })
}
