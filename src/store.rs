//! The database boundary: one small trait with the operations the job needs, implemented by the
//! PostgreSQL adapter (and, later, the embedded SQLite one). All SQL lives under `store/`.

pub mod postgres;
mod rows;
pub mod sqlite;

use crate::domain::diff::{EntryChange, Op};
use crate::domain::types::Family;

use crate::domain::config::ConfigRow;
use crate::domain::diff::{CurrentEntry, Delta};
use crate::domain::fingerprint::ContentHash;
use crate::domain::market::{DailyBar, MarketSnapshot, SymbolRow};
use crate::domain::types::{EntryKey, RunId, Scope};
use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use std::collections::HashMap;

/// What went wrong talking to the database.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot connect to the database ({target}): {source}")]
    Connect {
        target: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("database query failed while {context}: {source}")]
    Query {
        context: &'static str,
        #[source]
        source: sqlx::Error,
    },
    #[error("the database holds data the job cannot read: {0}")]
    Corrupt(String),
    #[error("{}", describe_schema_gap(.missing, *.total))]
    SchemaOutOfDate {
        /// `(version, description)` of each migration not applied, oldest first.
        missing: Vec<(i64, String)>,
        /// How many migrations the job has.
        total: usize,
    },
}

fn describe_schema_gap(missing: &[(i64, String)], total: usize) -> String {
    let what = if missing.len() == total {
        "the database has no cache-sync schema".to_owned()
    } else {
        format!(
            "the database schema is behind this build: {} of its {total} migrations are not applied",
            missing.len()
        )
    };
    let list = missing
        .iter()
        .map(|(version, description)| format!("{version} {description}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "{what} ({list}), and --no-migrate forbids applying them; run `cache-sync migrate` as a \
         role allowed to change the schema, or run without --no-migrate"
    )
}

/// The migrations of `migrator` not in `applied`, oldest first.
pub(crate) fn missing_migrations(
    migrator: &sqlx::migrate::Migrator,
    applied: &[i64],
) -> Vec<(i64, String)> {
    migrator
        .iter()
        .filter(|m| m.migration_type.is_up_migration() && !applied.contains(&m.version))
        .map(|m| (m.version, m.description.to_string()))
        .collect()
}

/// Ok when `applied` holds every migration of `migrator`; else `SchemaOutOfDate` naming the
/// ones it lacks.
pub(crate) fn require_migrations(
    migrator: &sqlx::migrate::Migrator,
    applied: &[i64],
) -> Result<(), StoreError> {
    let missing = missing_migrations(migrator, applied);
    if missing.is_empty() {
        return Ok(());
    }
    Err(StoreError::SchemaOutOfDate {
        missing,
        total: migrator.iter().count(),
    })
}

/// Checks that every migration of `migrator` is recorded as applied in `pool`'s database;
/// `recorded_sql` answers whether sqlx's `_sqlx_migrations` table exists (a dialect question).
pub(crate) async fn check_migrations<DB>(
    pool: &sqlx::Pool<DB>,
    recorded_sql: &'static str,
    migrator: &sqlx::migrate::Migrator,
) -> Result<(), StoreError>
where
    DB: sqlx::Database,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
    bool: sqlx::Type<DB> + for<'r> sqlx::Decode<'r, DB>,
    i64: sqlx::Type<DB> + for<'r> sqlx::Decode<'r, DB>,
    usize: sqlx::ColumnIndex<DB::Row>,
{
    let recorded: bool = sqlx::query_scalar(recorded_sql)
        .fetch_one(pool)
        .await
        .during("checking the schema")?;
    let applied: Vec<i64> = if recorded {
        sqlx::query_scalar("select version from _sqlx_migrations where success")
            .fetch_all(pool)
            .await
            .during("checking the schema")?
    } else {
        Vec::new()
    };
    require_migrations(migrator, &applied)
}

/// Adds what the job was doing to a sqlx error.
pub(crate) trait QueryContext<T> {
    fn during(self, context: &'static str) -> Result<T, StoreError>;
}

impl<T> QueryContext<T> for Result<T, sqlx::Error> {
    fn during(self, context: &'static str) -> Result<T, StoreError> {
        self.map_err(|source| StoreError::Query { context, source })
    }
}

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

/// A live row of an owned scope, without its value: a digest of the stored value is enough to
/// tell whether it is still what the job wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredRow {
    pub id: i64,
    pub key: EntryKey,
    /// The stored row version (PostgreSQL: `xmin/ctid`); equal digests mean an untouched row.
    pub digest: String,
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

/// The run record appended to the log.
#[derive(Debug, Clone, Serialize)]
pub struct NewRun {
    pub trigger: Trigger,
    pub families: String,
    pub environment: String,
    pub as_of: Option<NaiveDate>,
    pub config_hash: ContentHash,
    pub status: RunStatus,
    pub forced: bool,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub created: usize,
    pub updated: usize,
    pub deleted: usize,
    pub unchanged: usize,
    pub report: serde_json::Value,
    pub error: Option<String>,
}

/// A run as the log holds it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunSummary {
    pub run_id: RunId,
    pub trigger: String,
    pub families: String,
    pub as_of: Option<NaiveDate>,
    pub config_hash: String,
    pub status: String,
    pub forced: bool,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub created: i32,
    pub updated: i32,
    pub deleted: i32,
    pub unchanged: i32,
    pub error: Option<String>,
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
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutboxRow {
    pub outbox_id: i64,
    pub run_id: RunId,
    pub seq: Option<i64>,
    pub channel: String,
    pub also_channel: Option<String>,
    pub event: String,
    pub payload: serde_json::Value,
    pub created_at: DateTime<Utc>,
    pub published_at: Option<DateTime<Utc>>,
}

/// An API job (`cache_sync_job`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobRecord {
    pub job_id: String,
    pub mode: String,
    pub force: bool,
    pub triggered_by: String,
    pub status: String,
    pub created_at: DateTime<Utc>,
    pub start_time: Option<DateTime<Utc>>,
    pub end_time: Option<DateTime<Utc>>,
    pub duration_seconds: Option<f64>,
    pub error_details: Option<String>,
    pub progress: Option<serde_json::Value>,
    pub run_id: Option<i64>,
    pub plan_id: Option<String>,
}

/// Job counts and durations over a period.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct JobStats {
    pub total: i64,
    pub completed: i64,
    pub failed: i64,
    pub running: i64,
    pub average_duration_seconds: Option<f64>,
    pub last_completed_at: Option<DateTime<Utc>>,
}

/// One live universe row for listings.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UniverseRow {
    pub universe: String,
    #[serde(rename = "type")]
    pub entry_type: String,
    pub name: String,
    pub key: String,
    pub symbol_count: i64,
    /// The hash the log recorded for the row (absent for rows the job never wrote).
    pub hash: Option<String>,
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

/// Opens sessions on one database.
#[async_trait]
pub trait Store: Send + Sync {
    /// Creates or upgrades the schema.
    async fn migrate(&self) -> Result<(), StoreError>;

    /// Checks, without changing anything, that every migration is applied:
    /// `StoreError::SchemaOutOfDate` names the ones that are not.
    async fn check_schema(&self) -> Result<(), StoreError>;

    /// Starts a transaction; everything a run reads and writes happens inside one.
    async fn begin(&self) -> Result<Box<dyn StoreTx>, StoreError>;

    /// Whether another session holds the writer lock right now. The lock is taken and released
    /// at once (rolled back, not dropped, so it is free again before this returns).
    async fn writer_lock_held(&self) -> Result<bool, StoreError> {
        let mut tx = self.begin().await?;
        let outcome = tx.try_lock_writer().await?;
        tx.rollback().await?;
        Ok(outcome == LockOutcome::HeldElsewhere)
    }

    /// Appends a run record on its own (refused or failed runs, which write nothing else).
    async fn append_run_record(&self, run: &NewRun) -> Result<RunId, StoreError>;

    /// Replaces unique constraints on `cache_entries` that leave out `name` (and so cannot hold
    /// the theme rows) by one over `(type, name, key, environment)`. With `apply` false, only
    /// says what it would do. Returns one line per statement.
    async fn widen_unique(&self, apply: bool) -> Result<Vec<String>, StoreError>;

    /// Runs of `environment`, newest first.
    async fn read_runs(
        &self,
        environment: &str,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<RunSummary>, StoreError>;

    /// The last completed run of `environment` that finished at or before `at`.
    async fn run_at(
        &self,
        environment: &str,
        at: DateTime<Utc>,
    ) -> Result<Option<RunId>, StoreError>;

    /// Logged events of `environment`.
    async fn read_events(
        &self,
        environment: &str,
        filter: &EventFilter,
    ) -> Result<Vec<LoggedEvent>, StoreError>;

    /// The newest checkpoint taken at or before `run_id` (only `key`'s row when given).
    async fn checkpoint_before(
        &self,
        environment: &str,
        run_id: RunId,
        key: Option<&EntryKey>,
    ) -> Result<Option<Checkpoint>, StoreError>;

    /// The live value of one row of `environment`.
    async fn live_value(
        &self,
        environment: &str,
        key: &EntryKey,
    ) -> Result<Option<serde_json::Value>, StoreError>;

    /// Outbox events not yet published, oldest first.
    async fn pending_outbox(&self, limit: i64) -> Result<Vec<OutboxRow>, StoreError>;

    /// Marks outbox events as published.
    async fn mark_published(&self, ids: &[i64]) -> Result<(), StoreError>;

    /// Outbox events (published or not) for operators: universe events with `seq` above
    /// `after_seq` (only one universe's when given), or the newest `limit` of all kinds.
    async fn read_outbox(
        &self,
        after_seq: Option<i64>,
        universe: Option<&EntryKey>,
        limit: i64,
    ) -> Result<Vec<OutboxRow>, StoreError>;

    /// Records a new API job as pending; `false` when another job is pending or running.
    async fn create_job(&self, job: &JobRecord) -> Result<bool, StoreError>;

    /// Moves a job to `status` (setting start or end time), with optional details.
    async fn update_job(
        &self,
        job_id: &str,
        status: &str,
        error_details: Option<&str>,
        run_id: Option<i64>,
    ) -> Result<(), StoreError>;

    /// Stores a job's latest progress.
    async fn job_progress(
        &self,
        job_id: &str,
        progress: &serde_json::Value,
    ) -> Result<(), StoreError>;

    /// One job.
    async fn get_job(&self, job_id: &str) -> Result<Option<JobRecord>, StoreError>;

    /// Jobs newest first, and how many there are.
    async fn list_jobs(&self, limit: i64, offset: i64)
        -> Result<(Vec<JobRecord>, i64), StoreError>;

    /// Marks jobs left pending or running (by a previous process) as failed; returns how many.
    async fn fail_abandoned_jobs(&self, reason: &str) -> Result<u64, StoreError>;

    /// Job statistics since `since`.
    async fn job_stats(&self, since: DateTime<Utc>) -> Result<JobStats, StoreError>;

    /// Figures for the metrics endpoint.
    async fn metrics(&self, environment: &str) -> Result<MetricsSnapshot, StoreError>;

    /// The owned universe rows of `environment` with member counts.
    async fn universes(&self, environment: &str) -> Result<Vec<UniverseRow>, StoreError>;

    /// Writes one day of the synthetic market: upserts the symbol rows, adds the bars.
    async fn load_market_rows(
        &self,
        symbols: &[SymbolRow],
        bars: &[DailyBar],
    ) -> Result<(), StoreError>;
}

/// One open transaction. Dropped without `commit`, it rolls back.
#[async_trait]
pub trait StoreTx: Send {
    /// Takes the single-writer lock for the rest of the transaction, without waiting.
    async fn try_lock_writer(&mut self) -> Result<LockOutcome, StoreError>;

    /// The latest date in `ohlcv_daily`.
    async fn latest_price_date(&mut self) -> Result<Option<NaiveDate>, StoreError>;

    /// Every symbol row with its latest close on or before `as_of`.
    async fn load_market(&mut self, as_of: NaiveDate) -> Result<MarketSnapshot, StoreError>;

    /// The `cache_config` rows of `environment`.
    async fn load_config_rows(&mut self, environment: &str) -> Result<Vec<ConfigRow>, StoreError>;

    /// The rows of `environment` inside `scopes`, with digests instead of values.
    async fn load_rows(
        &mut self,
        environment: &str,
        scopes: &[Scope],
    ) -> Result<Vec<StoredRow>, StoreError>;

    /// The values of the rows with these ids.
    async fn load_values(&mut self, ids: &[i64]) -> Result<Vec<CurrentEntry>, StoreError>;

    /// Every row identity in the table, any type and environment (collision checks).
    async fn load_identities(&mut self) -> Result<Vec<RowIdentity>, StoreError>;

    /// The table's unique constraints and unique indexes (primary key excluded).
    async fn unique_constraints(&mut self) -> Result<Vec<UniqueConstraint>, StoreError>;

    /// The configuration hash of the last completed run in `environment`.
    async fn last_config_hash(
        &mut self,
        environment: &str,
    ) -> Result<Option<ContentHash>, StoreError>;

    /// The latest logged state of every entry of `environment`.
    async fn entry_heads(
        &mut self,
        environment: &str,
    ) -> Result<HashMap<EntryKey, EntryHead>, StoreError>;

    /// Applies the deltas to `cache_entries`, appends one event per delta and the run record.
    /// Also records the current row version of `recheck`: rows that were loaded and found to
    /// hold exactly what the log says, so the next run can skip them.
    async fn append_run(
        &mut self,
        run: &NewRun,
        deltas: &[Delta],
        recheck: &[EntryKey],
    ) -> Result<AppendedRun, StoreError>;

    /// Queues the run's change events in the outbox (same transaction as the deltas).
    async fn append_outbox(
        &mut self,
        run_id: RunId,
        environment: &str,
        events: &[crate::domain::events::OutgoingEvent],
    ) -> Result<(), StoreError>;

    /// Runs of `environment` that completed since its last checkpoint (all of them if none).
    async fn runs_since_checkpoint(&mut self, environment: &str) -> Result<i64, StoreError>;

    /// Stores a checkpoint of the full owned catalog as it stands after `run_id`.
    async fn append_checkpoint(
        &mut self,
        environment: &str,
        run_id: RunId,
        entries: &[(&EntryKey, Family, &serde_json::Value, ContentHash)],
    ) -> Result<(), StoreError>;

    /// Commits.
    async fn commit(self: Box<Self>) -> Result<(), StoreError>;

    /// Rolls back now (dropping the transaction also rolls back, but only when its connection
    /// is next used, which may be after another session asked for the writer lock).
    async fn rollback(self: Box<Self>) -> Result<(), StoreError>;
}
