//! What the roles exchange with their callers: run records, logged events, checkpoints, outbox
//! rows, API jobs and the dashboard's rows.

use crate::domain::diff::{EntryChange, Op};
use crate::domain::fingerprint::ContentHash;
use crate::domain::types::{EntryKey, Family, RunId};
use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

pub use crate::report::{RunOutcome, RunStatus, Trigger};

/// A unique constraint or unique index on `cache_entries`, by column names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UniqueConstraint {
    pub name: String,
    pub columns: Vec<String>,
}

/// A row identity anywhere in `cache_entries` (any type, any environment).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RowIdentity {
    pub key: EntryKey,
    pub environment: String,
}

/// The latest logged state of one entry.
#[derive(Debug, Clone, PartialEq)]
pub struct EntryHead {
    pub version: i32,
    pub last_seq: i64,
    /// `None` after a delete.
    pub hash: Option<ContentHash>,
    /// Digest of the row as the job wrote it (see `StoredRow::digest`).
    pub row_digest: Option<String>,
}

/// A live row of an owned scope, without its value: a digest of the stored row is enough to
/// tell whether it is still what the job wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredRow {
    pub id: i64,
    pub key: EntryKey,
    /// Identifies the stored row version (see `Dialect::row_digest`); equal digests mean an
    /// untouched row.
    pub digest: String,
}

/// The run record appended to the log; its columns are read from `outcome`.
#[derive(Debug, Clone, Serialize)]
pub struct NewRun {
    pub trigger: Trigger,
    /// `all`, the families run, or `rollback to run R`.
    pub families: String,
    pub environment: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    /// What the run did, stored whole with the record.
    pub outcome: RunOutcome,
    pub error: Option<String>,
    /// The job that asked for the run (API job id, or the command line's), for settling a job
    /// whose process died between the run's commit and the job's update.
    pub job_id: String,
}

/// A run as the log holds it.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct RunSummary {
    #[sqlx(try_from = "i64")]
    pub run_id: RunId,
    pub trigger: Trigger,
    pub families: String,
    pub as_of: Option<NaiveDate>,
    pub config_hash: String,
    pub status: RunStatus,
    pub forced: bool,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    #[sqlx(rename = "created_count")]
    pub created: i32,
    #[sqlx(rename = "updated_count")]
    pub updated: i32,
    #[sqlx(rename = "deleted_count")]
    pub deleted: i32,
    #[sqlx(rename = "unchanged_count")]
    pub unchanged: i32,
    pub error: Option<String>,
}

impl From<i64> for RunId {
    fn from(id: i64) -> Self {
        RunId(id)
    }
}

/// One logged entry delta.
#[derive(Debug, Clone, PartialEq)]
pub struct LoggedEvent {
    pub seq: i64,
    pub run_id: RunId,
    pub key: EntryKey,
    pub version: i32,
    pub op: Op,
    pub family: Family,
    pub hash_before: Option<ContentHash>,
    pub hash_after: Option<ContentHash>,
    pub change: EntryChange,
    pub recorded_at: DateTime<Utc>,
}

/// Which events to read, oldest first unless `newest_first`.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub key: Option<EntryKey>,
    /// Only events of runs after this one.
    pub after_run: Option<RunId>,
    /// Only events of runs up to and including this one.
    pub up_to_run: Option<RunId>,
    /// Only events whose member changes mention this ticker.
    pub symbol: Option<String>,
    pub newest_first: bool,
    pub limit: Option<i64>,
    /// Leave the run values of `revalued` changes unread: for listing who joined and left, not
    /// for replay (such a change then refuses to apply).
    pub without_run_values: bool,
}

/// The full owned catalog as it stood after a run.
#[derive(Debug, Clone, PartialEq)]
pub struct Checkpoint {
    pub run_id: RunId,
    pub last_seq: i64,
    pub entries: Vec<(EntryKey, Family, serde_json::Value, ContentHash)>,
}

/// What appending a run wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct AppendedRun {
    pub run_id: RunId,
    /// The audit `seq` of each delta, in delta order.
    pub seqs: Vec<i64>,
}

/// One outbox row.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct OutboxRow {
    pub outbox_id: i64,
    #[sqlx(try_from = "i64")]
    pub run_id: RunId,
    pub seq: Option<i64>,
    pub channel: String,
    pub also_channel: Option<String>,
    pub event: String,
    #[sqlx(json)]
    pub payload: serde_json::Value,
    pub created_at: DateTime<Utc>,
    pub published_at: Option<DateTime<Utc>>,
}

/// Where an API job is in its lifecycle (pending → running → completed | failed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, sqlx::Type)]
#[serde(rename_all = "snake_case")]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum JobStatus {
    Pending,
    Running,
    Completed,
    Failed,
}

impl JobStatus {
    /// The stored and serialised name.
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Pending => "pending",
            JobStatus::Running => "running",
            JobStatus::Completed => "completed",
            JobStatus::Failed => "failed",
        }
    }

    /// Whether the job has ended.
    pub fn is_finished(self) -> bool {
        matches!(self, JobStatus::Completed | JobStatus::Failed)
    }
}

/// An API job (`cache_sync_job`), its duration computed.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct JobRecord {
    pub job_id: String,
    /// The trigger mode it was asked for (`full`, `market_cap`, `themes`, `ipos`).
    pub mode: String,
    pub force: bool,
    pub triggered_by: Trigger,
    pub status: JobStatus,
    pub created_at: DateTime<Utc>,
    pub start_time: Option<DateTime<Utc>>,
    pub end_time: Option<DateTime<Utc>>,
    pub duration_seconds: Option<f64>,
    pub error_details: Option<String>,
    #[sqlx(json(nullable))]
    pub progress: Option<serde_json::Value>,
    pub run_id: Option<i64>,
    pub plan_id: Option<String>,
    /// The service instance that runs it (`Owner::id`); `None` for jobs recorded before
    /// owners were.
    pub owner: Option<String>,
    /// The Phase 2 import a pipeline job runs for (`data_import_completed`'s `run_id`).
    pub import_run_id: Option<String>,
}

/// What settling abandoned jobs did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SettledJobs {
    /// Jobs whose run had committed, now completed with it.
    pub completed: u64,
    /// Jobs whose run did not commit, now failed.
    pub failed: u64,
}

/// Job counts and durations over a period.
#[derive(Debug, Clone, Default, PartialEq, Serialize, sqlx::FromRow)]
pub struct JobStats {
    pub total: i64,
    pub completed: i64,
    pub failed: i64,
    pub running: i64,
    pub average_duration_seconds: Option<f64>,
    pub last_completed_at: Option<DateTime<Utc>>,
}

/// One live universe row for listings.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct UniverseRow {
    /// `{name}:{key}`, the UI's dropdown id.
    pub universe: String,
    #[serde(rename = "type")]
    #[sqlx(rename = "type")]
    pub entry_type: String,
    pub name: String,
    pub key: String,
    pub symbol_count: i64,
    /// The hash the log recorded for the row (absent for rows the job never wrote).
    pub hash: Option<String>,
    #[sqlx(rename = "updated_at")]
    pub last_updated: Option<chrono::NaiveDateTime>,
}

/// Figures for `GET /metrics`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct MetricsSnapshot {
    /// Runs by status.
    pub runs: Vec<(String, i64)>,
    /// Entry deltas applied by completed runs, by op.
    pub deltas: Vec<(String, i64)>,
    /// Sum and count of completed run durations, seconds.
    pub duration_sum_seconds: f64,
    pub duration_count: i64,
    pub last_duration_seconds: Option<f64>,
    pub pending_outbox_events: i64,
    pub last_success_as_of: Option<NaiveDate>,
}

/// Whether this session got the single-writer lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockOutcome {
    Acquired,
    HeldElsewhere,
}

/// One compaction as the log records it (`cache_sync_compaction`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CompactionRecord {
    pub id: i64,
    /// The earliest run still replayable.
    pub horizon_run: RunId,
    pub horizon_as_of: Option<NaiveDate>,
    /// The run whose checkpoint holds the folded history.
    pub checkpoint_run: RunId,
    /// The highest seq allocated when it ran (new events continue after it).
    pub last_seq: i64,
    pub events_removed: i64,
    pub checkpoints_removed: i64,
    /// The log's stored JSON (event changes and checkpoint values), in bytes, before and after.
    pub bytes_before: i64,
    pub bytes_after: i64,
}

/// What a compaction is about to remove and record, counted before anything is deleted.
#[derive(Debug, Clone, PartialEq)]
pub struct NewCompaction {
    pub horizon_run: RunId,
    pub horizon_as_of: Option<NaiveDate>,
    pub checkpoint_run: RunId,
    pub events_removed: i64,
    pub checkpoints_removed: i64,
    pub bytes_before: i64,
    pub bytes_after: i64,
}
