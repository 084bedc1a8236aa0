//! What `plan` and `run` produce: the stable JSON shapes of plans and runs, the run record's
//! stored outcome, and the run vocabulary (`RunStatus`, `Trigger`). Depends on the domain only;
//! the job builds these, the CLI renders them, the store keeps the outcome.

use crate::domain::catalog::BandingReport;
use crate::domain::diff::{Delta, Op};
use crate::domain::fingerprint::ContentHash;
use crate::domain::guard::Refusal;
use crate::domain::reasons::Reason;
use crate::domain::securities::InputReport;
use crate::domain::types::{Family, RunId};
use chrono::NaiveDate;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// Milliseconds spent in each step.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StepTimings {
    pub load_market_ms: f64,
    pub compute_ms: f64,
    pub load_current_ms: f64,
    pub diff_ms: f64,
    pub apply_ms: f64,
    pub commit_ms: f64,
}

/// Counts of one family.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct FamilySummary {
    pub create: usize,
    pub update: usize,
    pub delete: usize,
    pub unchanged: usize,
    pub members_added: usize,
    pub members_removed: usize,
}

/// A member that joined or left, with its reason.
#[derive(Debug, Clone, Serialize)]
pub struct MemberLine {
    pub ticker: String,
    pub reason: &'static str,
    #[serde(skip_serializing_if = "Value::is_null")]
    pub detail: Value,
}

/// A member whose rank changed.
#[derive(Debug, Clone, Serialize)]
pub struct RerankLine {
    pub ticker: String,
    pub from: Option<i64>,
    pub to: Option<i64>,
}

/// One delta as `plan` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct DeltaLine {
    pub op: Op,
    pub family: Family,
    #[serde(rename = "type")]
    pub entry_type: String,
    pub name: String,
    pub key: String,
    pub hash_before: Option<ContentHash>,
    pub hash_after: Option<ContentHash>,
    pub added: Vec<MemberLine>,
    pub removed: Vec<MemberLine>,
    pub reranked: Vec<RerankLine>,
    pub revalued: usize,
    pub metadata_only: bool,
}

fn member_line(ticker: &str, reason: &Reason) -> MemberLine {
    MemberLine {
        ticker: ticker.to_owned(),
        reason: reason.code.as_str(),
        detail: reason.detail.clone(),
    }
}

impl DeltaLine {
    /// The line of one delta.
    pub fn from_delta(delta: &Delta) -> Self {
        let lists = &delta.change.lists;
        Self {
            op: delta.op,
            family: delta.family,
            entry_type: delta.key.entry_type.clone(),
            name: delta.key.name.clone(),
            key: delta.key.key.clone(),
            hash_before: delta.hash_before,
            hash_after: delta.hash_after,
            added: lists
                .iter()
                .flat_map(|l| l.added.iter().map(|m| member_line(&m.ticker, &m.reason)))
                .collect(),
            removed: lists
                .iter()
                .flat_map(|l| l.removed.iter().map(|m| member_line(&m.ticker, &m.reason)))
                .collect(),
            reranked: delta
                .change
                .reranked()
                .map(|c| match c.rank_change() {
                    Some((from, to)) => RerankLine {
                        ticker: c.ticker.clone(),
                        from: Some(from),
                        to: Some(to),
                    },
                    None => RerankLine {
                        ticker: c.ticker.clone(),
                        from: None,
                        to: c.moved_to.map(|p| p as i64),
                    },
                })
                .collect(),
            revalued: delta.change.revalued_count(),
            metadata_only: delta.op == Op::Update && delta.change.is_metadata_only(),
        }
    }
}

/// A member turnover banding kept in a universe the plain rule would have dropped it from.
#[derive(Debug, Clone, Serialize)]
pub struct HeldLine {
    /// `type/name/key`.
    pub universe: String,
    pub ticker: String,
    /// `held_by_band`.
    pub reason: &'static str,
    /// The cap (and rank) and the limit it is past.
    pub detail: Value,
}

/// A stock the plain rule would have put in a universe that turnover banding kept out.
#[derive(Debug, Clone, Serialize)]
pub struct DisplacedLine {
    /// `type/name/key`.
    pub universe: String,
    pub ticker: String,
    pub detail: Value,
}

impl HeldLine {
    /// The lines of a banding report: what was held, what was displaced.
    pub fn from_report(report: &BandingReport) -> (Vec<HeldLine>, Vec<DisplacedLine>) {
        let held = report
            .held
            .iter()
            .map(|h| HeldLine {
                universe: h.universe.to_string(),
                ticker: h.ticker.clone(),
                reason: h.reason.code.as_str(),
                detail: h.reason.detail.clone(),
            })
            .collect();
        let displaced = report
            .displaced
            .iter()
            .map(|d| DisplacedLine {
                universe: d.universe.to_string(),
                ticker: d.ticker.clone(),
                detail: d.detail.clone(),
            })
            .collect();
        (held, displaced)
    }
}

/// Identifies a plan: the as-of date, configuration and every delta's identity and hashes. A
/// trigger that names it applies only while the same plan would be computed again.
pub fn plan_id(as_of: NaiveDate, config_hash: ContentHash, deltas: &[Delta]) -> String {
    let parts: Vec<Value> = deltas
        .iter()
        .map(|d| serde_json::json!([d.op, d.key, d.row_id, d.hash_before, d.hash_after]))
        .collect();
    let hash =
        crate::domain::fingerprint::hash_value(&serde_json::json!([as_of, config_hash, parts]));
    format!("plan-{}", &hash.to_hex()[..32])
}

/// `cache-sync plan`'s result. JSON field names are stable.
#[derive(Debug, Clone, Serialize)]
pub struct PlanReport {
    /// Pass to `POST …/trigger` to apply exactly this plan.
    pub plan_id: String,
    pub as_of: NaiveDate,
    pub config_hash: ContentHash,
    pub config_changed: bool,
    pub families: Vec<Family>,
    pub summary: BTreeMap<Family, FamilySummary>,
    pub deltas: Vec<DeltaLine>,
    /// With turnover banding on: members the bands keep that the plain rule would drop, and
    /// the stocks the plain rule would have put in their place. Absent while banding is off.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub held: Vec<HeldLine>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub displaced: Vec<DisplacedLine>,
    /// Guard rails a run would trip without `--force`.
    pub refusals: Vec<Refusal>,
    pub drift: Vec<String>,
    pub warnings: Vec<crate::domain::config::ConfigWarning>,
    pub input: InputReport,
    pub timings: StepTimings,
    pub duration_seconds: f64,
}

impl PlanReport {
    /// Whether a run would change anything.
    pub fn has_changes(&self) -> bool {
        !self.deltas.is_empty()
    }

    /// The id a trigger passes to apply exactly this plan.
    pub fn plan_id(&self) -> String {
        self.plan_id.clone()
    }
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, sqlx::Type)]
#[serde(rename_all = "snake_case")]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum RunStatus {
    Completed,
    Refused,
    Failed,
}

impl RunStatus {
    /// The stored and serialised name.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Completed => "completed",
            RunStatus::Refused => "refused",
            RunStatus::Failed => "failed",
        }
    }
}

/// Who started a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, sqlx::Type)]
#[serde(rename_all = "snake_case")]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum Trigger {
    Cli,
    Api,
    Pipeline,
    Rollback,
    Demo,
    Test,
}

impl Trigger {
    /// The stored and serialised name.
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Cli => "cli",
            Trigger::Api => "api",
            Trigger::Pipeline => "pipeline",
            Trigger::Rollback => "rollback",
            Trigger::Demo => "demo",
            Trigger::Test => "test",
        }
    }
}

/// What a run did: the summary the run record stores (`cache_sync_run.report`) and the body of
/// `run --format json` without its deltas. JSON field names are stable.
#[derive(Debug, Clone, Serialize)]
pub struct RunOutcome {
    pub run_id: Option<RunId>,
    pub status: RunStatus,
    pub forced: bool,
    pub as_of: NaiveDate,
    pub config_hash: ContentHash,
    pub config_changed: bool,
    pub families: Vec<Family>,
    pub created: usize,
    pub updated: usize,
    pub deleted: usize,
    pub unchanged: usize,
    pub summary: BTreeMap<Family, FamilySummary>,
    /// Member changes counted by reason.
    pub reasons: BTreeMap<&'static str, usize>,
    pub refusals: Vec<Refusal>,
    pub drift: Vec<String>,
    pub warnings: Vec<crate::domain::config::ConfigWarning>,
    pub input: InputReport,
    pub timings: StepTimings,
    pub duration_seconds: f64,
}

/// `cache-sync run`'s result: the outcome, and the deltas in full (left out of the run record,
/// which the events already detail). Reads as its outcome (`report.created`).
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    #[serde(flatten)]
    pub outcome: RunOutcome,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub deltas: Vec<DeltaLine>,
}

impl std::ops::Deref for RunReport {
    type Target = RunOutcome;
    fn deref(&self) -> &RunOutcome {
        &self.outcome
    }
}

impl std::ops::DerefMut for RunReport {
    fn deref_mut(&mut self) -> &mut RunOutcome {
        &mut self.outcome
    }
}
