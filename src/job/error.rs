//! `RunError`: why a run, a plan or a rollback did not complete, with what a caller can act on.

use crate::domain::config::ConfigError;
use crate::domain::guard::Refusal;
use crate::domain::invariants::{Collision, Violation};
use crate::domain::notices::{Category, Failure, Severity};
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

impl RunError {
    /// How the app's error log files this failure (`ErrorMessage` severity and category), with
    /// the refused run, its guard rails and what it would have changed.
    pub fn failure(&self) -> Failure {
        use Category::{Configuration, Database, Validation};
        use Severity::{Critical, Error, Warning};
        let (severity, category) = match self {
            RunError::Store(_) | RunError::History(_) | RunError::Collision { .. } => {
                (Error, Database)
            }
            RunError::Config(_) => (Error, Configuration),
            RunError::NoPrices | RunError::Refused { .. } => (Error, Validation),
            RunError::LockHeld => (Warning, Database),
            RunError::PlanMoved { .. } => (Warning, Validation),
            RunError::Invariant(_) => (Critical, Validation),
        };
        let (run_id, guard, would_change) = match self {
            RunError::Refused {
                run_id,
                refusals,
                report,
            } => (Some(run_id.0), refusals.clone(), Some(would_change(report))),
            RunError::Collision { run_id, .. } => (Some(run_id.0), Vec::new(), None),
            _ => (None, Vec::new(), None),
        };
        Failure {
            severity,
            category,
            message: self.to_string(),
            run_id,
            guard,
            would_change,
        }
    }
}

/// What a refused run would have written: entry counts, and per family the entries and
/// members it would have changed.
fn would_change(report: &RunReport) -> serde_json::Value {
    serde_json::json!({
        "as_of": report.as_of,
        "created": report.created,
        "updated": report.updated,
        "deleted": report.deleted,
        "unchanged": report.unchanged,
        "summary": report.summary,
        "reasons": report.reasons,
    })
}
