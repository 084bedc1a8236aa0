//! What `plan` and `run` produce: the stable JSON shapes of plans and runs, the run record's
//! stored outcome, and the run vocabulary (`RunStatus`, `Trigger`). Depends on the domain only;
//! the job builds these, the CLI renders them, the store keeps the outcome.

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
use std::fmt::Write as _;

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

    /// The operator's view.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "Plan as of {} (config {})",
            self.as_of,
            &self.config_hash.to_hex()[..12]
        );
        render_summary(&mut out, &self.summary);
        render_deltas(&mut out, &self.deltas);
        render_notes(
            &mut out,
            &self.refusals,
            &self.drift,
            &self.warnings,
            &self.input,
        );
        if self.deltas.is_empty() {
            let _ = writeln!(out, "Nothing to change.");
        }
        out
    }
}

fn render_summary(out: &mut String, summary: &BTreeMap<Family, FamilySummary>) {
    let _ = writeln!(
        out,
        "{:<16} {:>6} {:>6} {:>6} {:>9} {:>8} {:>8}",
        "family", "create", "update", "delete", "unchanged", "+members", "-members"
    );
    for (family, s) in summary {
        let _ = writeln!(
            out,
            "{:<16} {:>6} {:>6} {:>6} {:>9} {:>8} {:>8}",
            family.as_str(),
            s.create,
            s.update,
            s.delete,
            s.unchanged,
            s.members_added,
            s.members_removed
        );
    }
}

const SHOWN_MEMBERS: usize = 8;

fn render_members(out: &mut String, sign: char, members: &[MemberLine]) {
    if members.is_empty() {
        return;
    }
    let mut by_reason: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for m in members {
        by_reason.entry(m.reason).or_default().push(&m.ticker);
    }
    for (reason, tickers) in by_reason {
        let shown: Vec<&str> = tickers.iter().take(SHOWN_MEMBERS).copied().collect();
        let more = tickers.len().saturating_sub(SHOWN_MEMBERS);
        let tail = if more > 0 {
            format!(" … +{more}")
        } else {
            String::new()
        };
        let _ = writeln!(out, "      {sign} {} ({reason}){tail}", shown.join(" "));
    }
}

fn render_deltas(out: &mut String, deltas: &[DeltaLine]) {
    for d in deltas {
        let what = match (d.op, d.metadata_only) {
            (Op::Update, true) => "update (figures only)",
            (Op::Create, _) => "create",
            (Op::Update, _) => "update",
            (Op::Delete, _) => "delete",
        };
        let _ = writeln!(out, "  {what:<22} {}/{}/{}", d.entry_type, d.name, d.key);
        if d.op != Op::Create {
            render_members(out, '+', &d.added);
        }
        render_members(out, '-', &d.removed);
        if !d.reranked.is_empty() || d.revalued > 0 {
            let _ = writeln!(
                out,
                "      ~ {} re-ranked, {} re-valued",
                d.reranked.len(),
                d.revalued
            );
        }
    }
}

fn render_notes(
    out: &mut String,
    refusals: &[Refusal],
    drift: &[String],
    warnings: &[crate::domain::config::ConfigWarning],
    input: &InputReport,
) {
    for r in refusals {
        let _ = writeln!(out, "GUARD: {r} (a run needs --force)");
    }
    for d in drift {
        let _ = writeln!(
            out,
            "DRIFT: {d} was changed outside the job; a run reconciles it (reason manual_drift)"
        );
    }
    for w in warnings {
        let _ = writeln!(out, "warning: {}: {}", w.source, w.message);
    }
    let _ = writeln!(
        out,
        "Input: {} symbol rows, {} eligible stocks, {} active ETFs, {} market-cap fallbacks {:?}, excluded {:?}",
        input.symbol_rows,
        input.eligible_stocks,
        input.active_etfs,
        input.fallback_total(),
        input.cap_fallbacks,
        input.excluded
    );
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

impl RunReport {
    /// The operator's view.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let id = self.run_id.map_or("-".to_owned(), |r| r.to_string());
        let _ = writeln!(
            out,
            "Run {id} {:?}{} as of {}: {} created, {} updated, {} deleted, {} unchanged in {:.3}s",
            self.status,
            if self.forced { " (forced)" } else { "" },
            self.as_of,
            self.created,
            self.updated,
            self.deleted,
            self.unchanged,
            self.duration_seconds
        );
        render_summary(&mut out, &self.summary);
        render_deltas(&mut out, &self.deltas);
        if !self.reasons.is_empty() {
            let _ = writeln!(out, "Member changes by reason: {:?}", self.reasons);
        }
        render_notes(
            &mut out,
            &self.refusals,
            &self.drift,
            &self.warnings,
            &self.input,
        );
        let t = &self.timings;
        let _ = writeln!(
            out,
            "Steps (ms): load market {:.1}, compute {:.1}, load current {:.1}, diff {:.1}, apply {:.1}, commit {:.1}",
            t.load_market_ms, t.compute_ms, t.load_current_ms, t.diff_ms, t.apply_ms, t.commit_ms
        );
        out
    }
}
