//! `bench --pipeline` (issue 15): Phase 2 to Phase 2.5 as the pipeline sees it, on a scratch
//! PostgreSQL database and real Redis. A `cache-sync serve --follow-imports` child follows a
//! unique channel prefix; the bench plays Phase 2 (loads the next day's prices, publishes
//! `data_import_completed`) and Phase 3 (waits for `cache_sync_completed` on
//! `{prefix}:cache:completed`). Then the two catch-up delays after a missed announcement: from
//! the service's start, and from the moment its Redis subscription is dropped.

use super::process::{analyze, load_day1, this_binary, url_with_database, ProcessMarket};
use super::scratch::ScratchServer;
use super::Timing;
use crate::devtools::loader::load_day;
use crate::devtools::market::{FixtureParams, SyntheticMarket};
use crate::domain::events::Channels;
use crate::job::{self, JobConfig};
use crate::store::{LogReader, SqlStore, StoreError};
use futures_util::StreamExt as _;
use serde::Serialize;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The longest one step may take before the bench gives up (a 5k night takes well under 1 s).
const STEP_LIMIT: Duration = Duration::from_secs(120);

/// What `bench --pipeline` measured.
#[derive(Debug, Clone, Serialize)]
pub struct PipelineFigures {
    pub market: ProcessMarket,
    /// From publishing `data_import_completed` to receiving `cache_sync_completed`.
    pub import_to_completion: Timing,
    /// An announcement nobody heard: from spawning `serve` to `cache_sync_completed`.
    pub catch_up_on_start: Timing,
    /// An announcement lost while Redis dropped the follower: from `CLIENT KILL` of its
    /// subscription to `cache_sync_completed` (the follower resubscribes after 1 s).
    pub catch_up_on_reconnect: Timing,
}

impl PipelineFigures {
    pub fn to_text(&self) -> String {
        let mut out = format!(
            "pipeline on PostgreSQL: {} stocks + {} ETFs, {} days of history; serve --follow-imports as a child\n",
            self.market.stocks, self.market.etfs, self.market.history_days
        );
        for (name, t) in [
            (
                "data_import_completed to cache_sync_completed",
                &self.import_to_completion,
            ),
            (
                "catch-up: serve start to completion",
                &self.catch_up_on_start,
            ),
            (
                "catch-up: subscription dropped to completion",
                &self.catch_up_on_reconnect,
            ),
        ] {
            t.write_line(&mut out, name);
        }
        out
    }
}

/// The `serve` child, killed when dropped.
struct ServeChild(Child);

impl Drop for ServeChild {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Spawns `cache-sync serve --follow-imports` on a free loopback port.
fn spawn_serve(
    database_url: &str,
    redis_url: &str,
    prefix: &str,
) -> Result<ServeChild, StoreError> {
    let exe = this_binary()?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| StoreError::Corrupt(format!("no free port: {e}")))?
        .port();
    Command::new(exe)
        .args(["serve", "--unauthenticated-loopback", "--follow-imports"])
        .args(["--bind", &format!("127.0.0.1:{port}")])
        .env("DATABASE_URL", database_url)
        .env("REDIS_URL", redis_url)
        .env("CACHE_SYNC_CHANNEL_PREFIX", prefix)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map(ServeChild)
        .map_err(|e| StoreError::Corrupt(format!("cannot start serve: {e}")))
}

fn redis_error(e: redis::RedisError) -> StoreError {
    StoreError::Corrupt(format!("redis: {e}"))
}

/// Phase 3's side: a subscription to the completion channel.
struct CompletionListener {
    pubsub: redis::aio::PubSub,
}

impl CompletionListener {
    async fn subscribe(client: &redis::Client, channels: &Channels) -> Result<Self, StoreError> {
        let mut pubsub = client.get_async_pubsub().await.map_err(redis_error)?;
        pubsub
            .subscribe(channels.completed())
            .await
            .map_err(redis_error)?;
        Ok(Self { pubsub })
    }

    /// Waits for a `cache_sync_completed` of a run after `after_run` (an older run's, relayed
    /// late, does not count); a `processing_error` is the run failing.
    async fn completion_after(&mut self, after_run: i64) -> Result<(), StoreError> {
        let mut messages = self.pubsub.on_message();
        let wait = async {
            while let Some(message) = messages.next().await {
                let text: String = message.get_payload().unwrap_or_default();
                let event: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
                match event["event"].as_str() {
                    Some("cache_sync_completed")
                        if event["payload"]["run_id"].as_i64() > Some(after_run) =>
                    {
                        return Ok(())
                    }
                    Some("processing_error") => {
                        return Err(StoreError::Corrupt(format!("the run failed: {text}")))
                    }
                    _ => {}
                }
            }
            Err(StoreError::Corrupt(
                "the completion subscription ended".to_owned(),
            ))
        };
        tokio::time::timeout(STEP_LIMIT, wait)
            .await
            .map_err(|_| StoreError::Corrupt("no completion event in time".to_owned()))?
    }
}

/// Phase 2's side, over one connection: announcing imports, and watching who listens.
struct PhaseTwo {
    con: redis::aio::MultiplexedConnection,
    channels: Channels,
}

impl PhaseTwo {
    async fn connect(client: &redis::Client, channels: &Channels) -> Result<Self, StoreError> {
        let con = client
            .get_multiplexed_async_connection()
            .await
            .map_err(redis_error)?;
        Ok(Self {
            con,
            channels: channels.clone(),
        })
    }

    /// Waits until someone subscribes to the import channel (the child's follower).
    async fn until_followed(&mut self) -> Result<(), StoreError> {
        let started = Instant::now();
        loop {
            let (_, count): (String, i64) = redis::cmd("PUBSUB")
                .arg("NUMSUB")
                .arg(self.channels.import_completed())
                .query_async(&mut self.con)
                .await
                .map_err(redis_error)?;
            if count > 0 {
                return Ok(());
            }
            if started.elapsed() > STEP_LIMIT {
                return Err(StoreError::Corrupt(
                    "serve never subscribed to imports".to_owned(),
                ));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Announces an import as Phase 2 does.
    async fn announce(&mut self, run_id: &str) -> Result<(), StoreError> {
        let event = serde_json::json!({
            "event": "data_import_completed",
            "source": "cache-sync bench",
            "version": "1.0",
            "payload": {"run_id": run_id, "duration_seconds": 0, "total_symbols": 0,
                        "successful_symbols": 0, "failed_symbols": 0, "success_rate": 100.0},
        });
        let _: i64 = redis::cmd("PUBLISH")
            .arg(self.channels.import_completed())
            .arg(event.to_string())
            .query_async(&mut self.con)
            .await
            .map_err(redis_error)?;
        Ok(())
    }

    /// Drops every pub/sub connection (this one is not one), as a Redis restart or a network
    /// cut would.
    async fn drop_subscriptions(&mut self) -> Result<(), StoreError> {
        let _: i64 = redis::cmd("CLIENT")
            .arg("KILL")
            .arg("TYPE")
            .arg("pubsub")
            .query_async(&mut self.con)
            .await
            .map_err(redis_error)?;
        Ok(())
    }
}

pub(super) async fn measure_pipeline(
    server: &ScratchServer,
    url: &str,
    redis_url: &str,
    market: ProcessMarket,
    repeat: usize,
    name: &str,
) -> Result<PipelineFigures, StoreError> {
    let repeat = repeat.clamp(1, 9);
    // Day 1, then one new day per measured night.
    let days = 1 + 3 * repeat;
    let synthetic = SyntheticMarket::generate(&FixtureParams {
        stocks: market.stocks,
        etfs: market.etfs,
        days,
        ..FixtureParams::default()
    });
    let store = server.create(name, None).await?;
    load_day1(&store, &synthetic, market.history_days).await?;
    job::run(&store, &JobConfig::default(), &super::request())
        .await
        .map_err(|e| StoreError::Corrupt(format!("bench run failed: {e}")))?;
    analyze(&store).await?;

    let database_url = url_with_database(url, name);
    let prefix = format!("cache-sync-bench-{}", std::process::id());
    let channels = Channels {
        prefix: prefix.clone(),
    };
    let client = redis::Client::open(redis_url).map_err(redis_error)?;
    let mut phase_two = PhaseTwo::connect(&client, &channels).await?;
    let mut day = 1;

    let mut announced = Vec::new();
    let mut serve = spawn_serve(&database_url, redis_url, &prefix)?;
    phase_two.until_followed().await?;
    for i in 0..repeat {
        day += 1;
        load_day(&store, &synthetic, day).await?;
        let mut listener = CompletionListener::subscribe(&client, &channels).await?;
        let before = last_run(&store).await?;
        let started = Instant::now();
        phase_two.announce(&format!("{prefix}-import-{i}")).await?;
        listener.completion_after(before).await?;
        announced.push(started.elapsed().as_secs_f64() * 1e3);
    }

    let mut on_start = Vec::new();
    for _ in 0..repeat {
        drop(serve);
        day += 1;
        load_day(&store, &synthetic, day).await?;
        let mut listener = CompletionListener::subscribe(&client, &channels).await?;
        let before = last_run(&store).await?;
        let started = Instant::now();
        serve = spawn_serve(&database_url, redis_url, &prefix)?;
        listener.completion_after(before).await?;
        on_start.push(started.elapsed().as_secs_f64() * 1e3);
    }

    let mut on_reconnect = Vec::new();
    phase_two.until_followed().await?;
    for _ in 0..repeat {
        day += 1;
        load_day(&store, &synthetic, day).await?;
        let before = last_run(&store).await?;
        let started = Instant::now();
        phase_two.drop_subscriptions().await?;
        // Our own subscription went too: back at once, long before the follower's 1 s retry.
        let mut listener = CompletionListener::subscribe(&client, &channels).await?;
        listener.completion_after(before).await?;
        on_reconnect.push(started.elapsed().as_secs_f64() * 1e3);
        phase_two.until_followed().await?;
    }
    drop(serve);
    store.close().await;
    Ok(PipelineFigures {
        market,
        import_to_completion: Timing::of(announced),
        catch_up_on_start: Timing::of(on_start),
        catch_up_on_reconnect: Timing::of(on_reconnect),
    })
}

/// The newest run recorded (0 before any).
async fn last_run(store: &SqlStore) -> Result<i64, StoreError> {
    let newest = store.read_runs("DEFAULT", 1, 0).await?;
    Ok(newest.first().map_or(0, |run| run.run_id.0))
}
