//! The audit log at work: replay any past state (from the nearest checkpoint), show one universe
//! then or now, list a universe's or a symbol's history, verify live rows against the log; and
//! compaction (`compaction.rs`), which folds history older than a horizon into a checkpoint.

pub mod compaction;

use crate::domain::fingerprint::{hash_value, ContentHash};
use crate::domain::members::member_lists;
use crate::domain::reasons::ReasonCode;
use crate::domain::replay::{fold, FoldError, ReplayEvent, ReplayedCatalog};
use crate::domain::types::{EntryKey, RunId};
use crate::store::{
    Checkpoint, CompactionRecord, EventFilter, LogReader, LoggedEvent, RunStatus, RunSummary,
    RunTx, StoreError,
};
use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Instant;

/// Why a history command failed.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the audit log does not replay: {0}")]
    Fold(#[from] FoldError),
    #[error("no completed run {0} in this environment's log")]
    UnknownRun(RunId),
    #[error("no completed run finished at or before {0}")]
    NothingBefore(DateTime<Utc>),
    #[error("run {run} is before the audit log's horizon, run {horizon} (as of {}): compaction folded the history before it into a checkpoint, so only run {horizon} and later can be replayed or rolled back to", as_of_text(.as_of))]
    BeforeHorizon {
        run: RunId,
        horizon: RunId,
        as_of: Option<NaiveDate>,
    },
    #[error("checkpoint of run {run_id} holds {key} with hash {stored}, but its value hashes to {actual}")]
    BadCheckpoint {
        run_id: RunId,
        key: String,
        stored: String,
        actual: String,
    },
}

fn as_of_text(as_of: &Option<NaiveDate>) -> String {
    as_of.map_or_else(|| "no date".to_owned(), |d| d.to_string())
}

/// `BeforeHorizon` when a compaction folded the history `run_id` needs; else the newest
/// compaction, if any.
async fn within_horizon(
    store: &dyn LogReader,
    environment: &str,
    run_id: RunId,
) -> Result<Option<CompactionRecord>, HistoryError> {
    let compaction = store.latest_compaction(environment).await?;
    match compaction {
        Some(c) if run_id < c.horizon_run => Err(HistoryError::BeforeHorizon {
            run: run_id,
            horizon: c.horizon_run,
            as_of: c.horizon_as_of,
        }),
        other => Ok(other),
    }
}

/// Which point in history a read asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PointInHistory {
    /// The live rows.
    Now,
    /// Just after this completed run.
    AfterRun(RunId),
    /// After the last completed run that finished at or before this time.
    AtTime(DateTime<Utc>),
}

/// How a replay went.
#[derive(Debug, Clone, Serialize)]
pub struct ReplayStats {
    pub run_id: RunId,
    pub checkpoint_run: Option<RunId>,
    pub events_applied: usize,
    pub entries: usize,
    pub duration_ms: f64,
}

async fn completed_run(
    store: &dyn LogReader,
    environment: &str,
    run_id: RunId,
) -> Result<RunSummary, HistoryError> {
    // Runs are few; the newest thousand cover any practical lookback, and older ones page.
    let mut offset = 0;
    loop {
        let runs = store.read_runs(environment, 1000, offset).await?;
        if let Some(run) = runs
            .iter()
            .find(|r| r.run_id == run_id && r.status == RunStatus::Completed)
        {
            return Ok(run.clone());
        }
        if runs.len() < 1000 || runs.last().is_some_and(|r| r.run_id < run_id) {
            return Err(HistoryError::UnknownRun(run_id));
        }
        offset += 1000;
    }
}

/// Resolves `at` to a run id (`None` for now).
///
/// # Errors
/// `UnknownRun` / `NothingBefore` when the log has no such point.
pub async fn resolve(
    store: &dyn LogReader,
    environment: &str,
    at: PointInHistory,
) -> Result<Option<RunId>, HistoryError> {
    match at {
        PointInHistory::Now => Ok(None),
        PointInHistory::AfterRun(run_id) => completed_run(store, environment, run_id)
            .await
            .map(|r| Some(r.run_id)),
        PointInHistory::AtTime(t) => store
            .run_at(environment, t)
            .await?
            .map(Some)
            .ok_or(HistoryError::NothingBefore(t)),
    }
}

/// Rebuilds every owned entry (or only `key`) as it stood after `run_id`: the nearest checkpoint
/// at or before it, then the events after the checkpoint, each checked against its logged hash.
///
/// # Errors
/// Store errors, `BeforeHorizon` for a run whose history was compacted away, a checkpoint whose
/// values do not match their hashes, or a log that does not fold.
pub async fn replay_state(
    store: &dyn LogReader,
    environment: &str,
    run_id: RunId,
    key: Option<&EntryKey>,
) -> Result<(ReplayedCatalog, ReplayStats), HistoryError> {
    let started = Instant::now();
    within_horizon(store, environment, run_id).await?;
    let checkpoint = store.checkpoint_before(environment, run_id, key).await?;
    let events = store
        .read_events(
            environment,
            &EventFilter {
                key: key.cloned(),
                after_run: checkpoint.as_ref().map(|c| c.run_id),
                up_to_run: Some(run_id),
                ..EventFilter::default()
            },
        )
        .await?;
    let state = fold_from(checkpoint.as_ref(), &events)?;
    let stats = ReplayStats {
        run_id,
        checkpoint_run: checkpoint.map(|c| c.run_id),
        events_applied: events.len(),
        entries: state.len(),
        duration_ms: started.elapsed().as_secs_f64() * 1e3,
    };
    Ok((state, stats))
}

/// The state a checkpoint and the events after it describe, every checkpointed value checked
/// against its hash (and every event's result against its logged hash while folding).
/// How many run ids' events a long fold (`replay --verify`, compaction) reads at a time: memory
/// then holds the state and one batch, never the whole log (250 nightly runs' events parsed at
/// once took over 3 GB at 5,000 stocks).
const FOLD_BATCH_RUNS: i64 = 10;

/// Run id ranges `(after, up_to]` that cover `(after, last]` in order, `FOLD_BATCH_RUNS` ids each.
fn run_batches(after: Option<RunId>, last: RunId) -> Vec<(RunId, RunId)> {
    let mut out = Vec::new();
    let mut from = after.map_or(0, |r| r.0);
    while from < last.0 {
        let to = (from + FOLD_BATCH_RUNS).min(last.0);
        out.push((RunId(from), RunId(to)));
        from = to;
    }
    out
}

/// The events of the run ids in `(after, up_to]`.
fn batch_filter((after, up_to): (RunId, RunId)) -> EventFilter {
    EventFilter {
        after_run: Some(after),
        up_to_run: Some(up_to),
        ..EventFilter::default()
    }
}

/// Applies one batch of events, oldest first, to `state`, each checked against its logged hash.
///
/// # Errors
/// A `HistoryError` when an event does not apply or its hash disagrees.
fn fold_batch(state: &mut ReplayedCatalog, events: &[LoggedEvent]) -> Result<(), HistoryError> {
    fold(state, events.iter().map(replay_event))?;
    Ok(())
}

fn fold_from(
    checkpoint: Option<&Checkpoint>,
    events: &[LoggedEvent],
) -> Result<ReplayedCatalog, HistoryError> {
    let mut state = ReplayedCatalog::new();
    if let Some(cp) = checkpoint {
        for (entry, family, value, stored) in &cp.entries {
            let actual = hash_value(value);
            if actual != *stored {
                return Err(HistoryError::BadCheckpoint {
                    run_id: cp.run_id,
                    key: entry.to_string(),
                    stored: stored.to_hex(),
                    actual: actual.to_hex(),
                });
            }
            state.insert(entry.clone(), (*family, value.clone()));
        }
    }
    fold(&mut state, events.iter().map(replay_event))?;
    Ok(state)
}

/// The value the log last recorded for each of `keys` (an entry the log holds no value for is
/// absent), read inside a run's transaction: the audited state the guard rails judge a drifted
/// row's change from.
///
/// # Errors
/// As `replay_state`.
pub async fn logged_values(
    tx: &mut dyn RunTx,
    environment: &str,
    keys: &[EntryKey],
) -> Result<HashMap<EntryKey, Value>, HistoryError> {
    let mut out = HashMap::new();
    for key in keys {
        let latest = RunId(i64::MAX);
        let checkpoint = tx.checkpoint_before(environment, latest, Some(key)).await?;
        let filter = EventFilter {
            key: Some(key.clone()),
            after_run: checkpoint.as_ref().map(|c| c.run_id),
            ..EventFilter::default()
        };
        let events = tx.read_events(environment, &filter).await?;
        if let Some((_, value)) = fold_from(checkpoint.as_ref(), &events)?.remove(key) {
            out.insert(key.clone(), value);
        }
    }
    Ok(out)
}

fn replay_event(e: &LoggedEvent) -> ReplayEvent<'_> {
    ReplayEvent {
        seq: e.seq,
        key: &e.key,
        family: e.family,
        op: e.op,
        change: &e.change,
        hash_after: e.hash_after,
    }
}

/// One universe's value at a point in history.
#[derive(Debug, Clone, Serialize)]
pub struct UniverseSnapshot {
    pub universe: String,
    pub run_id: Option<RunId>,
    pub value: Option<Value>,
    pub hash: Option<ContentHash>,
    pub members: usize,
}

/// The value of `key` now (live row) or after a past run (replayed).
///
/// # Errors
/// As `resolve` and `replay_state`.
pub async fn show(
    store: &dyn LogReader,
    environment: &str,
    key: &EntryKey,
    at: PointInHistory,
) -> Result<UniverseSnapshot, HistoryError> {
    let run_id = resolve(store, environment, at).await?;
    let value = match run_id {
        None => store.live_value(environment, key).await?,
        Some(run) => replay_state(store, environment, run, Some(key))
            .await?
            .0
            .remove(key)
            .map(|(_, v)| v),
    };
    Ok(UniverseSnapshot {
        universe: key.to_string(),
        run_id,
        hash: value.as_ref().map(hash_value),
        members: value
            .as_ref()
            .map(|v| member_lists(v).iter().map(|(_, m)| m.len()).sum())
            .unwrap_or(0),
        value,
    })
}

/// One member change in a history listing.
#[derive(Debug, Clone, Serialize)]
pub struct MemberMove {
    pub ticker: String,
    pub reason: String,
    #[serde(skip_serializing_if = "Value::is_null")]
    pub detail: Value,
}

impl MemberMove {
    fn new(ticker: &str, reason: &crate::domain::reasons::Reason) -> Self {
        Self {
            ticker: ticker.to_owned(),
            reason: reason.code.as_str().to_owned(),
            detail: reason.detail.clone(),
        }
    }
}

/// One event in a history listing.
#[derive(Debug, Clone, Serialize)]
pub struct HistoryLine {
    pub seq: i64,
    pub run_id: RunId,
    pub as_of: Option<NaiveDate>,
    pub recorded_at: DateTime<Utc>,
    pub universe: String,
    pub op: &'static str,
    pub added: Vec<MemberMove>,
    pub removed: Vec<MemberMove>,
}

/// How many ticker changes `history --symbol` follows back (a chain longer than this is data
/// gone wrong, not a company's past).
const MAX_RENAME_CHAIN: usize = 32;

/// The tickers whose past is `symbol`'s: itself, then every ticker it was renamed from (and
/// theirs), each with the last run that belongs to it (the run of the rename; `None` for
/// `symbol` itself), and the events that mention any of them, by `seq`.
async fn rename_chain(
    store: &dyn LogReader,
    environment: &str,
    key: Option<&EntryKey>,
    symbol: &str,
) -> Result<(BTreeSet<String>, BTreeMap<i64, LoggedEvent>), HistoryError> {
    let mut chain: Vec<(String, Option<RunId>)> = vec![(symbol.to_owned(), None)];
    let mut seen: BTreeSet<String> = BTreeSet::from([symbol.to_owned()]);
    let mut events = BTreeMap::new();
    let mut next = 0;
    while next < chain.len() {
        let (ticker, up_to_run) = chain[next].clone();
        next += 1;
        let found = store
            .read_events(
                environment,
                &EventFilter {
                    key: key.cloned(),
                    symbol: Some(ticker.clone()),
                    up_to_run,
                    without_run_values: true,
                    ..EventFilter::default()
                },
            )
            .await?;
        for event in found {
            let predecessors = event
                .change
                .lists
                .iter()
                .flat_map(|l| l.added.iter())
                .filter(|m| m.ticker == ticker && m.reason.code == ReasonCode::Renamed)
                .filter_map(|m| m.reason.detail.get("from")?.as_str().map(str::to_owned));
            for from in predecessors.collect::<Vec<_>>() {
                if chain.len() < MAX_RENAME_CHAIN && seen.insert(from.clone()) {
                    chain.push((from, Some(event.run_id)));
                }
            }
            events.insert(event.seq, event);
        }
    }
    Ok((seen, events))
}

/// Changes of one universe or of all (or only those that moved `symbol`), newest first. A
/// symbol's history follows its renames backwards: `META`'s shows `FB`'s past up to the rename.
///
/// # Errors
/// Store errors.
pub async fn history(
    store: &dyn LogReader,
    environment: &str,
    key: Option<&EntryKey>,
    symbol: Option<&str>,
    limit: i64,
) -> Result<Vec<HistoryLine>, HistoryError> {
    let (tickers, events) = match symbol {
        Some(symbol) => {
            let (tickers, events) = rename_chain(store, environment, key, symbol).await?;
            let newest: Vec<LoggedEvent> = events
                .into_values()
                .rev()
                .take(usize::try_from(limit).unwrap_or(0))
                .collect();
            (Some(tickers), newest)
        }
        None => {
            let events = store
                .read_events(
                    environment,
                    &EventFilter {
                        key: key.cloned(),
                        newest_first: true,
                        limit: Some(limit),
                        without_run_values: true,
                        ..EventFilter::default()
                    },
                )
                .await?;
            (None, events)
        }
    };
    let runs: HashMap<RunId, Option<NaiveDate>> = store
        .read_runs(environment, 100_000, 0)
        .await?
        .into_iter()
        .map(|r| (r.run_id, r.as_of))
        .collect();
    let keep = |ticker: &str| tickers.as_ref().is_none_or(|t| t.contains(ticker));
    Ok(events
        .into_iter()
        .map(|e| {
            let lists = &e.change.lists;
            HistoryLine {
                seq: e.seq,
                run_id: e.run_id,
                as_of: runs.get(&e.run_id).copied().flatten(),
                recorded_at: e.recorded_at,
                universe: e.key.to_string(),
                op: e.op.past_tense(),
                added: lists
                    .iter()
                    .flat_map(|l| l.added.iter().map(|m| (&m.ticker, &m.reason)))
                    .filter(|(t, _)| keep(t))
                    .map(|(t, r)| MemberMove::new(t, r))
                    .collect(),
                removed: lists
                    .iter()
                    .flat_map(|l| l.removed.iter().map(|m| (&m.ticker, &m.reason)))
                    .filter(|(t, _)| keep(t))
                    .map(|(t, r)| MemberMove::new(t, r))
                    .collect(),
            }
        })
        .collect())
}

/// The result of `replay --verify`.
#[derive(Debug, Clone, Serialize)]
pub struct ReplayReport {
    pub stats: ReplayStats,
    /// Every entry's hash after the run, each checked against the hash the log recorded.
    pub hashes: BTreeMap<String, ContentHash>,
    pub verified: bool,
    /// Where the verifying fold started: the compaction's checkpoint run, or `None` for the
    /// first event.
    pub verified_from: Option<RunId>,
}

/// Rebuilds the whole owned catalog at `run_id`. Every value is checked against its logged hash
/// while folding; with `verify`, the fold is also repeated from the first event (or, once the
/// log is compacted, from the compaction's checkpoint: the events before it are gone), ignoring
/// every other checkpoint, and both results must agree.
///
/// # Errors
/// As `replay_state`; a disagreement between the checkpointed and the full replay is a
/// `BadCheckpoint`.
pub async fn replay(
    store: &dyn LogReader,
    environment: &str,
    run_id: RunId,
    verify: bool,
) -> Result<ReplayReport, HistoryError> {
    completed_run(store, environment, run_id).await?;
    let compaction = within_horizon(store, environment, run_id).await?;
    let (state, stats) = replay_state(store, environment, run_id, None).await?;
    let base_run = compaction.map(|c| c.checkpoint_run);
    if verify && stats.checkpoint_run != base_run {
        let base = match base_run {
            Some(run) => store.checkpoint_before(environment, run, None).await?,
            None => None,
        };
        let mut full = fold_from(base.as_ref(), &[])?;
        for batch in run_batches(base_run, run_id) {
            let events = store.read_events(environment, &batch_filter(batch)).await?;
            fold_batch(&mut full, &events)?;
        }
        let keys: BTreeSet<&EntryKey> = state.keys().chain(full.keys()).collect();
        for key in keys {
            let a = state.get(key).map(|(_, v)| hash_value(v));
            let b = full.get(key).map(|(_, v)| hash_value(v));
            if a != b {
                return Err(HistoryError::BadCheckpoint {
                    run_id: stats.checkpoint_run.unwrap_or(run_id),
                    key: key.to_string(),
                    stored: a.map(|h| h.to_hex()).unwrap_or_else(|| "absent".to_owned()),
                    actual: b.map(|h| h.to_hex()).unwrap_or_else(|| "absent".to_owned()),
                });
            }
        }
    }
    Ok(ReplayReport {
        hashes: state
            .iter()
            .map(|(k, (_, v))| (k.to_string(), hash_value(v)))
            .collect(),
        stats,
        verified: verify,
        verified_from: base_run,
    })
}

/// One live row that differs from the log.
#[derive(Debug, Clone, Serialize)]
pub struct DriftedRow {
    pub universe: String,
    /// `edited`, `deleted` (the log says it exists) or `inserted` (the log never wrote it).
    pub kind: &'static str,
    pub logged_hash: Option<ContentHash>,
    pub live_hash: Option<ContentHash>,
    /// Tickers in the live row that the logged value does not have, and the reverse.
    pub extra_members: Vec<String>,
    pub missing_members: Vec<String>,
}

fn tickers(value: Option<&Value>) -> BTreeSet<String> {
    value
        .map(|v| {
            member_lists(v)
                .into_iter()
                .flat_map(|(_, m)| m.into_iter().map(|m| m.ticker.to_owned()))
                .collect()
        })
        .unwrap_or_default()
}

/// Describes how each drifted entry differs from what the log last recorded for it.
///
/// # Errors
/// As `replay_state`.
pub async fn describe_drift(
    store: &dyn LogReader,
    environment: &str,
    drift: &[EntryKey],
) -> Result<Vec<DriftedRow>, HistoryError> {
    let latest = store
        .read_runs(environment, 1, 0)
        .await?
        .first()
        .map(|r| r.run_id);
    let mut out = Vec::new();
    for key in drift {
        let logged = match latest {
            Some(run) => replay_state(store, environment, run, Some(key))
                .await?
                .0
                .remove(key)
                .map(|(_, v)| v),
            None => None,
        };
        let live = store.live_value(environment, key).await?;
        let kind = match (&logged, &live) {
            (Some(_), None) => "deleted",
            (None, Some(_)) => "inserted",
            _ => "edited",
        };
        let (had, has) = (tickers(logged.as_ref()), tickers(live.as_ref()));
        out.push(DriftedRow {
            universe: key.to_string(),
            kind,
            logged_hash: logged.as_ref().map(hash_value),
            live_hash: live.as_ref().map(hash_value),
            extra_members: has.difference(&had).cloned().collect(),
            missing_members: had.difference(&has).cloned().collect(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::{run_batches, RunId};

    #[test]
    fn long_folds_read_the_runs_in_consecutive_batches_that_cover_them_exactly() {
        let ranges = |after: Option<i64>, last: i64| -> Vec<(i64, i64)> {
            run_batches(after.map(RunId), RunId(last))
                .into_iter()
                .map(|(a, b)| (a.0, b.0))
                .collect()
        };
        assert_eq!(ranges(None, 25), [(0, 10), (10, 20), (20, 25)]);
        assert_eq!(ranges(Some(230), 240), [(230, 240)]);
        assert_eq!(ranges(Some(7), 8), [(7, 8)]);
        assert!(ranges(Some(9), 9).is_empty());
        assert!(ranges(Some(12), 3).is_empty());
    }
}
