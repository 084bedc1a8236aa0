//! `cache-sync demo`: a narrated walkthrough for a newcomer on whatever store it is given (its
//! own embedded file by default; a database holding rows the fixtures did not write is refused):
//! load a synthetic market, build day 1, apply day 2's deltas, show a
//! plan with reasons, a universe's history, a replay of day 1 verified by hash, and a rollback.

use crate::devtools::loader::{foreign_rows, load_day, load_through_day, ForeignRows};
use crate::devtools::market::{FixtureParams, SyntheticMarket};
use crate::domain::fingerprint::hash_value;
use crate::domain::types::EntryKey;
use crate::history;
use crate::job::{self, JobConfig, PlanRequest, RunError, RunRequest};
use crate::store::{LogReader, Schema, SqlStore, StoreError, Trigger};
use chrono::Utc;
use std::fmt::Write as _;

/// Why the demo stopped.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("refusing to run the demo: {0}; the demo writes a synthetic market and needs a database without a real one")]
    ForeignRows(ForeignRows),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Run(#[from] RunError),
    #[error(transparent)]
    History(#[from] history::HistoryError),
}

fn request(force: bool) -> RunRequest {
    RunRequest {
        plan: PlanRequest::default(),
        force,
        trigger: Trigger::Demo,
        now: Utc::now(),
        pause_before_commit: false,
        job_id: "demo".to_owned(),
        progress: None,
        expect_plan: None,
    }
}

/// Runs the walkthrough, writing the narration to `out` as it goes.
///
/// # Errors
/// `ForeignRows` when `store` holds rows the fixtures did not write; store, job or replay
/// errors.
pub async fn run(store: &SqlStore, out: &mut dyn FnMut(&str)) -> Result<(), DemoError> {
    let mut say = |text: String| out(&text);
    let job = JobConfig::default();
    store.migrate().await?;
    let foreign = foreign_rows(store).await?;
    if !foreign.is_empty() {
        return Err(DemoError::ForeignRows(foreign));
    }
    let market = SyntheticMarket::generate(&FixtureParams {
        stocks: 1500,
        etfs: 250,
        days: 2,
        seed: 7,
        nasty: false,
        renames: 0,
    });
    let loaded = load_through_day(store, &market, 1).await?;
    say(format!(
        "1. Loaded a synthetic market as of {}: {} symbols and {} daily prices.\n",
        market.date_of_day(1),
        loaded.symbols,
        loaded.bars
    ));

    let day1 = job::run(store, &job, &request(true)).await?;
    let run1 = day1.run_id.expect("a completed run has an id");
    say(format!(
        "2. Day 1, the first build (run {run1}): {} universes created in {:.2} s. Every value is hashed (BLAKE3) and each creation is an event in the audit log.\n",
        day1.created, day1.duration_seconds
    ));

    load_day(store, &market, 2).await?;
    let plan = job::plan(
        store,
        &job,
        &PlanRequest::default(),
        Utc::now().date_naive(),
    )
    .await?;
    let mut text = format!(
        "3. Day 2's prices arrived. The plan (nothing written yet) changes {} of {} universes:\n",
        plan.deltas.len(),
        plan.deltas.len() + plan.summary.values().map(|s| s.unchanged).sum::<usize>()
    );
    for delta in plan
        .deltas
        .iter()
        .filter(|d| !d.added.is_empty() || !d.removed.is_empty())
        .take(4)
    {
        let _ = writeln!(text, "   {}/{}/{}", delta.entry_type, delta.name, delta.key);
        for m in delta.added.iter().take(2) {
            let _ = writeln!(
                text,
                "     + {} because {} {}",
                m.ticker, m.reason, m.detail
            );
        }
        for m in delta.removed.iter().take(2) {
            let _ = writeln!(
                text,
                "     - {} because {} {}",
                m.ticker, m.reason, m.detail
            );
        }
    }
    say(text);

    let day2 = job::run(store, &job, &request(true)).await?;
    let run2 = day2.run_id.expect("a completed run has an id");
    say(format!(
        "4. Day 2 applied as run {run2}: {} updated, {} unchanged rows left alone, in {:.2} s.\n",
        day2.updated, day2.unchanged, day2.duration_seconds
    ));

    let large = EntryKey::new("stock_universe", "market_cap", "large_cap");
    let lines = history::history(store, "DEFAULT", Some(&large), None, 5).await?;
    let mut text = format!("5. The history of {large}:\n");
    for line in &lines {
        let _ = writeln!(
            text,
            "   run {} as of {}: {} (+{} -{})",
            line.run_id,
            line.as_of.map_or("-".to_owned(), |d| d.to_string()),
            line.op,
            line.added.len(),
            line.removed.len()
        );
    }
    say(text);

    let replay = history::replay(store, "DEFAULT", run1, true).await?;
    say(format!(
        "6. Replayed the whole catalog as of run {run1} from the log: {} entries, every hash matched what the log recorded ({:.1} ms).\n",
        replay.stats.entries, replay.stats.duration_ms
    ));

    let rollback = job::rollback(store, &job, run1, &request(true)).await?;
    let (state, _) = history::replay_state(store, "DEFAULT", run1, None).await?;
    let mut matching = 0;
    for (key, (_, value)) in &state {
        let live = store.live_value("DEFAULT", key).await?;
        if live.as_ref().map(hash_value) == Some(hash_value(value)) {
            matching += 1;
        }
    }
    say(format!(
        "7. Rolled back to run {run1} as a new run {} ({} universes changed, reason `rollback`): {matching} of {} live rows now hash-equal the replay of run {run1}. History was only appended to.\n",
        rollback.run_id.expect("a completed run has an id"),
        rollback.updated + rollback.created + rollback.deleted,
        state.len()
    ));
    Ok(())
}
