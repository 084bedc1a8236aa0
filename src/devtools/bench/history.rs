//! `bench --history-runs`: replay of one entry and of the whole catalog over a long simulated
//! history, and the log's size; then (issue 16) the log compacted to `--keep-days` by the
//! binary itself, the same figures again, and every kept run's replay checked against what it
//! was before the compaction.

use super::process::{kb_to_mb, this_binary, timed_child, url_with_database};
use super::scratch::{pg, ScratchServer};
use super::{market, request, Timing};
use crate::config::BenchArgs;
use crate::devtools::loader::{load_day, load_through_day};
use crate::domain::fingerprint::ContentHash;
use crate::domain::types::{EntryKey, RunId};
use crate::history::compaction::horizon;
use crate::history::{self, HistoryError};
use crate::job::{self, JobConfig};
use crate::store::{Compactor, LogReader, QueryContext, Schema, SqlStore, StoreError};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Instant;

const ENV: &str = "DEFAULT";

/// Replay over a long simulated history, before and after compaction.
#[derive(Debug, Clone, Serialize)]
pub struct HistoryFigures {
    pub nightly_runs: usize,
    pub checkpoint_every: i64,
    pub simulation_seconds: f64,
    /// One entry (`stock_universe/market_cap/large_cap`) rebuilt at runs sampled across the
    /// whole history, before any compaction.
    pub one_entry: Timing,
    /// The whole owned catalog rebuilt at the same runs.
    pub whole_catalog: Timing,
    /// The log as the simulation left it, measured over the runs a compaction would keep.
    pub uncompacted: LogFigures,
    /// After `cache-sync compact --keep-days N` (absent with `--keep-days 0`).
    pub compacted: Option<CompactionFigures>,
}

/// The log and replay as they stand.
#[derive(Debug, Clone, Serialize)]
pub struct LogFigures {
    pub events: i64,
    /// What the log holds, as compaction counts it: the events' changes and the checkpoints'
    /// values, as text.
    pub log_bytes: i64,
    /// On disk after `vacuum full`: the event, run, checkpoint and compaction tables with their
    /// indexes and TOAST.
    pub disk_bytes: i64,
    /// In-process, at kept runs sampled across the window.
    pub one_entry: Timing,
    pub whole_catalog: Timing,
    /// Whole process: `cache-sync replay --at-run R --verify` at the oldest kept run, spawn to
    /// exit.
    pub replay_process: Timing,
    pub replay_process_peak_rss_mb: f64,
}

/// What compaction did, and what the log looks like after it.
#[derive(Debug, Clone, Serialize)]
pub struct CompactionFigures {
    pub keep_days: u32,
    pub horizon_run: i64,
    pub runs_kept: usize,
    /// Whole process: `cache-sync compact --keep-days N`, spawn to exit.
    pub compact_ms: f64,
    pub compact_peak_rss_mb: f64,
    pub after: LogFigures,
    /// Kept runs whose `replay --verify` after compaction gave, entry for entry, the hashes
    /// their replay gave before it (every kept run is checked).
    pub runs_verified: usize,
    /// The run just before the horizon is refused, naming the horizon.
    pub earlier_run_refused: bool,
}

impl HistoryFigures {
    /// The history part of the printed table.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "history: {} nightly runs simulated in {:.0} s (checkpoint every {} runs)",
            self.nightly_runs, self.simulation_seconds, self.checkpoint_every
        );
        self.one_entry
            .write_line(&mut out, "replay one entry at a past run");
        self.whole_catalog
            .write_line(&mut out, "replay the whole catalog at a past run");
        self.uncompacted.write(&mut out, "uncompacted");
        if let Some(c) = &self.compacted {
            let _ = writeln!(
                out,
                "compact --keep-days {}: horizon run {}, {} runs kept; process {:.0} ms, peak {:.1} MB",
                c.keep_days, c.horizon_run, c.runs_kept, c.compact_ms, c.compact_peak_rss_mb
            );
            c.after.write(&mut out, "compacted");
            let _ = writeln!(
                out,
                "kept runs replayed (--verify) as before compaction: {} of {}; the run before the horizon refused naming it: {}",
                c.runs_verified, c.runs_kept, c.earlier_run_refused
            );
        }
        out
    }
}

impl LogFigures {
    fn write(&self, out: &mut String, label: &str) {
        let _ = writeln!(
            out,
            "{label}: {} events, log {} B (changes and checkpoint values as text), {} B on disk after vacuum full",
            self.events, self.log_bytes, self.disk_bytes
        );
        self.one_entry
            .write_line(out, &format!("{label}: replay one entry, kept runs"));
        self.whole_catalog
            .write_line(out, &format!("{label}: replay whole catalog, kept runs"));
        self.replay_process.write_line(
            out,
            &format!("{label}: `cache-sync replay --at-run <oldest kept> --verify` process"),
        );
        let _ = writeln!(
            out,
            "{label}: that process's peak RSS {:.1} MB",
            self.replay_process_peak_rss_mb
        );
    }
}

pub(super) async fn measure_history(
    server: &ScratchServer,
    url: &str,
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
    let runs = store.read_runs(ENV, 100_000, 0).await?;
    let dated: Vec<(RunId, Option<chrono::NaiveDate>)> =
        runs.iter().rev().map(|r| (r.run_id, r.as_of)).collect();
    let ids: Vec<RunId> = dated.iter().map(|(id, _)| *id).collect();
    // Sample runs across the whole history, including the last one before each checkpoint (the
    // longest fold).
    let (one_entry, whole_catalog) = replay_times(&store, &samples(&ids)).await?;

    let exe = this_binary()?;
    let database_url = url_with_database(url, name);
    let cut = horizon(&dated, args.keep_days).filter(|_| args.keep_days > 0);
    let kept: Vec<RunId> = match &cut {
        Some(h) => ids.iter().copied().filter(|r| *r >= h.run).collect(),
        None => ids.clone(),
    };
    let uncompacted = log_figures(&store, &exe, &database_url, &kept).await?;
    let compacted = match cut {
        Some(h) => {
            let before = kept_hashes(&store, &kept, false).await?;
            let keep_days = args.keep_days.to_string();
            let (compact_ms, rss_kb) =
                timed_child(&exe, &database_url, &["compact", "--keep-days", &keep_days]).await?;
            let after = log_figures(&store, &exe, &database_url, &kept).await?;
            let verified = kept_hashes(&store, &kept, true).await?;
            let runs_verified = kept
                .iter()
                .filter(|run| before.contains_key(run) && before.get(run) == verified.get(run))
                .count();
            if runs_verified != kept.len() {
                return Err(StoreError::Corrupt(format!(
                    "after compaction {} of {} kept runs replay as before",
                    runs_verified,
                    kept.len()
                )));
            }
            let earlier_run_refused = matches!(
                history::replay(&store, ENV, h.fold_through, false).await,
                Err(HistoryError::BeforeHorizon { horizon, .. }) if horizon == h.run
            );
            Some(CompactionFigures {
                keep_days: args.keep_days,
                horizon_run: h.run.0,
                runs_kept: kept.len(),
                compact_ms,
                compact_peak_rss_mb: kb_to_mb(rss_kb),
                after,
                runs_verified,
                earlier_run_refused,
            })
        }
        None => None,
    };
    store.close().await;
    Ok(HistoryFigures {
        nightly_runs: nights,
        checkpoint_every: job_config.checkpoint_every,
        simulation_seconds,
        one_entry,
        whole_catalog,
        uncompacted,
        compacted,
    })
}

/// About 25 runs spread over `ids`, and the last one.
fn samples(ids: &[RunId]) -> Vec<RunId> {
    let step = (ids.len() / 25).max(1);
    ids.iter()
        .copied()
        .step_by(step)
        .chain(ids.last().copied())
        .collect()
}

/// In-process replay of one entry and of the whole catalog at each of `runs`.
async fn replay_times(store: &SqlStore, runs: &[RunId]) -> Result<(Timing, Timing), StoreError> {
    let key = EntryKey::new("stock_universe", "market_cap", "large_cap");
    let (mut one, mut whole) = (Vec::new(), Vec::new());
    for run in runs {
        let t = Instant::now();
        history::replay_state(store, ENV, *run, Some(&key))
            .await
            .map_err(|e| StoreError::Corrupt(format!("replay failed: {e}")))?;
        one.push(t.elapsed().as_secs_f64() * 1e3);
        let t = Instant::now();
        history::replay_state(store, ENV, *run, None)
            .await
            .map_err(|e| StoreError::Corrupt(format!("replay failed: {e}")))?;
        whole.push(t.elapsed().as_secs_f64() * 1e3);
    }
    Ok((Timing::of(one), Timing::of(whole)))
}

/// Sizes, in-process replay over the kept runs, and five whole-process replays of the oldest.
async fn log_figures(
    store: &SqlStore,
    exe: &Path,
    database_url: &str,
    kept: &[RunId],
) -> Result<LogFigures, StoreError> {
    let events: i64 = sqlx::query_scalar("select count(*) from cache_sync_event")
        .fetch_one(pg(store))
        .await
        .during("counting events")?;
    let log_bytes = {
        let mut tx = store.begin_compaction().await?;
        let bytes = tx.log_bytes(ENV, None).await?;
        drop(tx);
        bytes
    };
    sqlx::query(
        "vacuum full cache_sync_event, cache_sync_run, cache_sync_run_values,
             cache_sync_checkpoint, cache_sync_compaction",
    )
    .execute(pg(store))
    .await
    .during("vacuuming the log")?;
    let disk_bytes: i64 = sqlx::query_scalar(
        "select cast(pg_total_relation_size('cache_sync_event') + pg_total_relation_size('cache_sync_run')
              + pg_total_relation_size('cache_sync_run_values')
              + pg_total_relation_size('cache_sync_checkpoint')
              + pg_total_relation_size('cache_sync_compaction') as bigint)",
    )
    .fetch_one(pg(store))
    .await
    .during("measuring the log")?;
    let (one_entry, whole_catalog) = replay_times(store, &samples(kept)).await?;
    let oldest = kept
        .first()
        .ok_or_else(|| StoreError::Corrupt("no run to replay".to_owned()))?
        .to_string();
    let (mut wall, mut rss) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        let (ms, kb) = timed_child(
            exe,
            database_url,
            &["replay", "--at-run", &oldest, "--verify"],
        )
        .await?;
        wall.push(ms);
        rss.push(kb);
    }
    rss.sort_unstable();
    Ok(LogFigures {
        events,
        log_bytes,
        disk_bytes,
        one_entry,
        whole_catalog,
        replay_process: Timing::of(wall),
        replay_process_peak_rss_mb: kb_to_mb(rss[rss.len() / 2]),
    })
}

/// Every kept run's replayed hashes (with `verify`, `replay --verify`'s).
async fn kept_hashes(
    store: &SqlStore,
    kept: &[RunId],
    verify: bool,
) -> Result<BTreeMap<RunId, BTreeMap<String, ContentHash>>, StoreError> {
    let mut out = BTreeMap::new();
    for run in kept {
        let report = history::replay(store, ENV, *run, verify)
            .await
            .map_err(|e| StoreError::Corrupt(format!("replay of run {run} failed: {e}")))?;
        out.insert(*run, report.hashes.into_iter().collect());
    }
    Ok(out)
}
