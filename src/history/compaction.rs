//! Compaction: keeps the audit log bounded. Everything before a horizon (the earliest completed
//! run within `keep_days` of the newest) is folded into one checkpoint at the last run before
//! it; the folded events and the checkpoints it supersedes are deleted, and the compaction is
//! recorded, all in one transaction under the writer lock. Replay and rollback stay exact for
//! the horizon run and every later one, and refuse earlier ones naming the horizon.

use super::{batch_filter, fold_batch, fold_from, run_batches, HistoryError};
use crate::domain::fingerprint::hash_value;
use crate::domain::types::RunId;
use crate::store::{CompactionTx, Compactor, LockOutcome, NewCompaction, StoreError};
use chrono::NaiveDate;
use serde::Serialize;
use std::time::{Duration, Instant};

/// Why a compaction did not complete (nothing was changed).
#[derive(Debug, thiserror::Error)]
pub enum CompactionError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The log did not fold (or an existing checkpoint disagrees with it): nothing is removed
    /// from a log that does not check.
    #[error(transparent)]
    History(#[from] HistoryError),
    #[error("another cache-sync run or compaction holds the writer lock; try again when it has finished")]
    LockHeld,
}

/// What `compact` is asked to do.
#[derive(Debug, Clone, Default)]
pub struct CompactionRequest {
    /// Keep every run whose as-of is within this many days of the newest completed run's.
    pub keep_days: u32,
    /// Work everything out (folding and checking included), then roll back.
    pub dry_run: bool,
    /// Test hook: wait this long after deleting, before committing (a test kills the process
    /// there).
    pub pause_before_commit: Option<Duration>,
}

/// Where history is cut: `run` is the earliest run kept, `fold_through` the last run before it,
/// whose state becomes the checkpoint holding everything folded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Horizon {
    pub run: RunId,
    pub as_of: NaiveDate,
    pub fold_through: RunId,
}

/// The horizon rule. `runs` are the completed runs `(id, as_of)`, oldest first. The horizon is
/// the earliest run (by id) whose as-of is at least the newest run's as-of minus `keep_days`;
/// so the newest run is always kept, and every run after the horizon is kept whatever its date
/// (history is cut by order, never by date alone). `None` when no run precedes the horizon.
pub fn horizon(runs: &[(RunId, Option<NaiveDate>)], keep_days: u32) -> Option<Horizon> {
    let newest = runs.iter().rev().find_map(|(_, as_of)| *as_of)?;
    let cutoff = newest - chrono::Duration::days(i64::from(keep_days));
    let (run, as_of) = runs
        .iter()
        .find_map(|(run, as_of)| as_of.filter(|d| *d >= cutoff).map(|d| (*run, d)))?;
    let fold_through = runs.iter().map(|(r, _)| *r).filter(|r| *r < run).max()?;
    Some(Horizon {
        run,
        as_of,
        fold_through,
    })
}

/// What a compaction did (or, dry, would do).
#[derive(Debug, Clone, Serialize)]
pub struct CompactionReport {
    pub keep_days: u32,
    pub dry_run: bool,
    /// `None` when there is nothing to fold.
    pub horizon: Option<Horizon>,
    pub events_removed: i64,
    pub checkpoints_removed: i64,
    /// The log's stored JSON (event changes and checkpoint values), before and after.
    pub bytes_before: i64,
    pub bytes_after: i64,
    /// The compaction record written (`None` for a dry run or when nothing was done).
    pub compaction_id: Option<i64>,
    /// Why nothing was done, when nothing was.
    pub nothing_to_do: Option<&'static str>,
    pub duration_ms: f64,
}

impl CompactionReport {
    fn nothing(request: &CompactionRequest, why: &'static str, started: Instant) -> Self {
        Self {
            keep_days: request.keep_days,
            dry_run: request.dry_run,
            horizon: None,
            events_removed: 0,
            checkpoints_removed: 0,
            bytes_before: 0,
            bytes_after: 0,
            compaction_id: None,
            nothing_to_do: Some(why),
            duration_ms: started.elapsed().as_secs_f64() * 1e3,
        }
    }
}

/// Compacts `environment`'s log as `request` asks. Idempotent: a second compaction with the
/// same `keep_days` and no new run finds its horizon already reached and does nothing.
///
/// # Errors
/// `LockHeld` when a run or another compaction is writing; a log that does not fold; store
/// errors. On any error nothing is changed.
pub async fn compact(
    store: &dyn Compactor,
    environment: &str,
    request: &CompactionRequest,
) -> Result<CompactionReport, CompactionError> {
    let started = Instant::now();
    let mut tx = store.begin_compaction().await?;
    if tx.try_lock_writer().await? == LockOutcome::HeldElsewhere {
        tx.rollback().await?;
        return Err(CompactionError::LockHeld);
    }
    let result = fold_and_remove(tx.as_mut(), environment, request, started).await;
    match result {
        Ok(report) if report.compaction_id.is_some() => {
            if let Some(pause) = request.pause_before_commit {
                eprintln!("cache-sync: paused mid-compaction (test hook)");
                tokio::time::sleep(pause).await;
            }
            tx.commit().await?;
            Ok(report)
        }
        other => {
            tx.rollback().await?;
            other
        }
    }
}

/// Everything but the commit: a report with a `compaction_id` has removed the folded history
/// inside `tx`.
async fn fold_and_remove(
    tx: &mut dyn CompactionTx,
    environment: &str,
    request: &CompactionRequest,
    started: Instant,
) -> Result<CompactionReport, CompactionError> {
    let runs = tx.completed_runs(environment).await?;
    let Some(horizon) = horizon(&runs, request.keep_days) else {
        let why = "no completed run is older than the horizon";
        return Ok(CompactionReport::nothing(request, why, started));
    };
    let previous = tx.latest_compaction(environment).await?;
    if previous
        .as_ref()
        .is_some_and(|p| p.horizon_run >= horizon.run)
    {
        let why = "the log is already compacted to this horizon";
        return Ok(CompactionReport::nothing(request, why, started));
    }
    // Folded from the previous compaction's checkpoint (or the first event), never from an
    // ordinary checkpoint: every event removed is applied and checked against its logged hash.
    let base_run = previous.as_ref().map(|p| p.checkpoint_run);
    let base = match base_run {
        Some(run) => tx.checkpoint_before(environment, run).await?,
        None => None,
    };
    let mut state = fold_from(base.as_ref(), &[])?;
    for batch in run_batches(base_run, horizon.fold_through) {
        let events = tx.read_events(environment, &batch_filter(batch)).await?;
        fold_batch(&mut state, &events)?;
    }
    let bytes_before = tx.log_bytes(environment, None).await?;
    let existing = tx
        .checkpoint_before(environment, horizon.fold_through)
        .await?
        .filter(|c| c.run_id == horizon.fold_through);
    match existing {
        Some(checkpoint) => {
            // An ordinary checkpoint at the fold run becomes the compaction's: it must hold
            // exactly the folded state.
            let stored: std::collections::BTreeMap<_, _> = checkpoint
                .entries
                .iter()
                .map(|(key, _, _, hash)| (key, *hash))
                .collect();
            let folded: std::collections::BTreeMap<_, _> =
                state.iter().map(|(k, (_, v))| (k, hash_value(v))).collect();
            if let Some(key) = stored
                .keys()
                .chain(folded.keys())
                .find(|k| stored.get(*k) != folded.get(*k))
            {
                let text = |h: Option<&crate::domain::fingerprint::ContentHash>| {
                    h.map_or_else(|| "absent".to_owned(), |h| h.to_hex())
                };
                return Err(HistoryError::BadCheckpoint {
                    run_id: horizon.fold_through,
                    key: key.to_string(),
                    stored: text(stored.get(*key)),
                    actual: text(folded.get(*key)),
                }
                .into());
            }
        }
        None => {
            let entries: Vec<_> = state
                .iter()
                .map(|(key, (family, value))| (key, *family, value, hash_value(value)))
                .collect();
            tx.append_checkpoint(environment, horizon.fold_through, &entries)
                .await?;
        }
    }
    let (events_removed, checkpoints_removed) =
        tx.count_folded(environment, horizon.fold_through).await?;
    let bytes_after = tx
        .log_bytes(environment, Some(horizon.fold_through))
        .await?;
    let compaction = NewCompaction {
        horizon_run: horizon.run,
        horizon_as_of: Some(horizon.as_of),
        checkpoint_run: horizon.fold_through,
        events_removed,
        checkpoints_removed,
        bytes_before,
        bytes_after,
    };
    let compaction_id = if request.dry_run {
        None
    } else {
        Some(tx.remove_folded(environment, &compaction).await?.id)
    };
    Ok(CompactionReport {
        keep_days: request.keep_days,
        dry_run: request.dry_run,
        horizon: Some(horizon),
        events_removed,
        checkpoints_removed,
        bytes_before,
        bytes_after,
        compaction_id,
        nothing_to_do: None,
        duration_ms: started.elapsed().as_secs_f64() * 1e3,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(d: u32) -> Option<NaiveDate> {
        NaiveDate::from_ymd_opt(2026, 1, 1).map(|s| s + chrono::Duration::days(i64::from(d)))
    }

    fn runs(days: &[u32]) -> Vec<(RunId, Option<NaiveDate>)> {
        days.iter()
            .enumerate()
            .map(|(i, d)| (RunId(i as i64 + 1), day(*d)))
            .collect()
    }

    #[test]
    fn the_horizon_is_the_earliest_run_within_keep_days_of_the_newest() {
        // One run a day, days 0..=9: keeping 3 days keeps days 6..=9 (runs 7..=10).
        let h = horizon(&runs(&[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]), 3).unwrap();
        assert_eq!(h.run, RunId(7));
        assert_eq!(Some(h.as_of), day(6));
        assert_eq!(h.fold_through, RunId(6));
    }

    #[test]
    fn keeping_zero_days_keeps_the_newest_run_and_folds_the_rest() {
        let h = horizon(&runs(&[0, 1, 2]), 0).unwrap();
        assert_eq!((h.run, h.fold_through), (RunId(3), RunId(2)));
    }

    #[test]
    fn nothing_is_folded_when_every_run_is_within_the_window() {
        assert_eq!(horizon(&runs(&[0, 1, 2]), 30), None);
        assert_eq!(horizon(&runs(&[5]), 0), None);
        assert_eq!(horizon(&[], 3), None);
    }

    #[test]
    fn the_window_is_measured_from_the_newest_run_and_cut_by_run_order() {
        // Run 4 re-ran day 8 after day 9: the window is days 6..=8 (from the newest run's
        // date), its earliest run is run 3 (day 9), and run 4 after it is kept with it.
        let h = horizon(&runs(&[0, 5, 9, 8]), 2).unwrap();
        assert_eq!((h.run, h.fold_through), (RunId(3), RunId(2)));
        // A newest run for an old date widens the window back to it: nothing is folded.
        assert_eq!(horizon(&runs(&[0, 5, 9, 1]), 2), None);
    }

    #[test]
    fn gaps_in_run_ids_fold_through_the_last_completed_run_before_the_horizon() {
        // Refused runs are not listed: completed runs 2, 5 and 9.
        let listed = vec![(RunId(2), day(0)), (RunId(5), day(1)), (RunId(9), day(10))];
        let h = horizon(&listed, 5).unwrap();
        assert_eq!((h.run, h.fold_through), (RunId(9), RunId(5)));
    }
}
