//! `bench --history-runs`: replay of one entry and of the whole catalog over a long simulated
//! history, and the log's size.

use super::scratch::{pg, ScratchServer};
use super::{market, request, HistoryFigures, Timing};
use crate::config::BenchArgs;
use crate::devtools::loader::{load_day, load_through_day};
use crate::domain::types::{EntryKey, RunId};
use crate::history;
use crate::job::{self, JobConfig};
use crate::store::{LogReader, QueryContext, Schema, StoreError};
use std::time::Instant;

pub(super) async fn measure_history(
    server: &ScratchServer,
    args: &BenchArgs,
    name: &str,
) -> Result<HistoryFigures, StoreError> {
    let nights = args.history_runs;
    let market = market(args, nights + 1);
    let store = server.create(name, None).await?;
    store.migrate().await?;
    let job_config = JobConfig::default();
    let started = Instant::now();
    load_through_day(&store, &market, 1).await?;
    for day in 1..=nights + 1 {
        if day > 1 {
            load_day(&store, &market, day).await?;
        }
        job::run(&store, &job_config, &request())
            .await
            .map_err(|e| StoreError::Corrupt(format!("bench run failed: {e}")))?;
    }
    let simulation_seconds = started.elapsed().as_secs_f64();
    let runs = store.read_runs("DEFAULT", 100_000, 0).await?;
    let ids: Vec<RunId> = runs.iter().map(|r| r.run_id).rev().collect();
    // Sample runs across the whole history, including the last one before each checkpoint (the
    // longest fold).
    let step = (ids.len() / 25).max(1);
    let samples: Vec<RunId> = ids
        .iter()
        .copied()
        .step_by(step)
        .chain(ids.last().copied())
        .collect();
    let key = EntryKey::new("stock_universe", "market_cap", "large_cap");
    let (mut one, mut whole) = (Vec::new(), Vec::new());
    for run in samples {
        let t = Instant::now();
        history::replay_state(&store, "DEFAULT", run, Some(&key))
            .await
            .map_err(|e| StoreError::Corrupt(format!("replay failed: {e}")))?;
        one.push(t.elapsed().as_secs_f64() * 1e3);
        let t = Instant::now();
        history::replay_state(&store, "DEFAULT", run, None)
            .await
            .map_err(|e| StoreError::Corrupt(format!("replay failed: {e}")))?;
        whole.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let (log_bytes, checkpoint_bytes): (i64, i64) = sqlx::query_as(
        "select pg_total_relation_size('cache_sync_event') + pg_total_relation_size('cache_sync_run'),
                pg_total_relation_size('cache_sync_checkpoint')",
    )
    .fetch_one(pg(&store))
    .await
    .during("measuring the log")?;
    store.close().await;
    Ok(HistoryFigures {
        nightly_runs: nights,
        checkpoint_every: job_config.checkpoint_every,
        one_entry: Timing::of(one),
        whole_catalog: Timing::of(whole),
        log_bytes,
        checkpoint_bytes,
        simulation_seconds,
    })
}
