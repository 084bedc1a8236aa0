//! `RunError`: why a run, a plan or a rollback did not complete, with what a caller can act on.

use crate::domain::config::ConfigError;
use crate::domain::guard::Refusal;
use crate::domain::invariants::{Collision, Violation};
use crate::domain::types::RunId;
use crate::history::HistoryError;
use crate::report::RunReport;
use crate::store::StoreError;

/// Why a run (or its plan, or a rollback) did not complete.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A rollback's target could not be replayed (unknown run, a log that does not fold).
    #[error(transparent)]
    History(#[from] HistoryError),
    #[error("ohlcv_daily holds no prices, so there is no as-of date; load prices or pass --as-of")]
    NoPrices,
    #[error("another cache-sync run holds the writer lock; try again when it has finished")]
    LockHeld,
    #[error("the plan changed since {expected} was computed (now {actual}); nothing written, plan again")]
    PlanMoved { expected: String, actual: String },
    #[error("refused by guard rails (run {run_id} recorded as refused, nothing written): {}", refusal_summary(.refusals))]
    Refused {
        run_id: RunId,
        refusals: Vec<Refusal>,
        report: Box<RunReport>,
    },
    #[error("refused: the catalog would collide under unique constraint(s) of cache_entries (run {run_id} recorded as refused, nothing written): {}", collision_summary(.collisions))]
    Collision {
        run_id: RunId,
        collisions: Vec<Collision>,
    },
    #[error("internal invariant broken, nothing written: {}", violation_summary(.0))]
    Invariant(Vec<Violation>),
}

/// The refusals, one sentence each.
pub(crate) fn refusal_summary(refusals: &[Refusal]) -> String {
    refusals
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// The collisions, with the command that fixes them.
pub(crate) fn collision_summary(collisions: &[Collision]) -> String {
    collisions
        .iter()
        .map(|c| {
            format!(
                "{} ({}) cannot hold {}; run `cache-sync migrate --widen-unique` to widen it to include name",
                c.constraint,
                c.columns.join(", "),
                c.entries.join(", ")
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn violation_summary(violations: &[Violation]) -> String {
    violations
        .iter()
        .take(10)
        .map(|v| format!("{}: {}", v.invariant, v.detail))
        .collect::<Vec<_>>()
        .join("; ")
}
