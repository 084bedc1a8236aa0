//! The database boundary: small role traits, each the operations one part of the crate needs,
//! all implemented once by `SqlStore` over PostgreSQL (production) or an embedded SQLite file
//! (the default). All SQL lives under `store/`.
//!
//! | role | used by | what |
//! | --- | --- | --- |
//! | [`Schema`] | the CLI | migrations, the schema check, widening a unique constraint |
//! | [`EventLog`] + [`RunTx`] | `job` | a run's transaction: lock, inputs, live rows, appending to the log |
//! | [`LogReader`] | `history` | runs, events, checkpoints and live values, read back |
//! | [`Compactor`] + [`CompactionTx`] | `compaction` | folding old history into a checkpoint |
//! | [`Outbox`] | `publish` | change events waiting for Redis |
//! | [`JobBoard`] | `http` | the API's jobs |
//! | [`ReadViews`] | `http` | the dashboard's listings and metrics |
//!
//! [`Store`] is every role at once: what a process that owns a database holds.
//!
//! Layout: `sql.rs` is the shared SQL layer (statements, parameters, rows); `dialect.rs` is the
//! one place PostgreSQL and SQLite differ, with `postgres.rs` and `sqlite.rs` behind it;
//! `database.rs` opens either; `prices.rs` reads the price table by index probes only; `event_log.rs` (with `append.rs`, what a run writes),
//! `log_reader.rs`, `compaction.rs`, `outbox.rs`, `job_board.rs`, `views.rs` implement the roles; `records.rs` holds what they exchange; `rows.rs` decodes.

mod append;
mod compaction;
mod database;
pub mod dialect;
mod event_log;
pub mod identity;
mod job_board;
mod log_reader;
mod outbox;
mod owner;
pub mod postgres;
pub mod prices;
mod records;
mod rows;
pub mod sql;
mod sqlite;
mod views;

pub use database::{Pooled, SqlStore, SqlTx, Writes};
pub use owner::Owner;
pub use records::*;

use crate::domain::config::ConfigRow;
use crate::domain::diff::{CurrentEntry, Delta};
use crate::domain::events::OutgoingEvent;
use crate::domain::fingerprint::ContentHash;
use crate::domain::market::MarketSnapshot;
use crate::domain::types::{EntryKey, Family, RunId, Scope};
use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
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
    #[error("cannot hold this instance's owner lock ({path}): {source}")]
    OwnerLock {
        path: String,
        #[source]
        source: std::io::Error,
    },
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

/// Ok when `applied` holds every migration of `migrator`; else `SchemaOutOfDate` naming the
/// ones it lacks, oldest first.
pub(crate) fn require_migrations(
    migrator: &sqlx::migrate::Migrator,
    applied: &[i64],
) -> Result<(), StoreError> {
    let missing: Vec<(i64, String)> = migrator
        .iter()
        .filter(|m| m.migration_type.is_up_migration() && !applied.contains(&m.version))
        .map(|m| (m.version, m.description.to_string()))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(StoreError::SchemaOutOfDate {
        missing,
        total: migrator.iter().count(),
    })
}

/// Adds what the job was doing to a sqlx error.
pub trait QueryContext<T> {
    /// `StoreError::Query` with `context`.
    ///
    /// # Errors
    /// The wrapped error.
    fn during(self, context: &'static str) -> Result<T, StoreError>;
}

impl<T> QueryContext<T> for Result<T, sqlx::Error> {
    fn during(self, context: &'static str) -> Result<T, StoreError> {
        self.map_err(|source| StoreError::Query { context, source })
    }
}

/// The schema: what `cache-sync migrate` and `--no-migrate` deal with.
#[async_trait]
pub trait Schema: Send + Sync {
    /// Creates or upgrades the schema.
    async fn migrate(&self) -> Result<(), StoreError>;

    /// Checks, without changing anything, that every migration is applied:
    /// `StoreError::SchemaOutOfDate` names the ones that are not.
    async fn check_schema(&self) -> Result<(), StoreError>;

    /// Replaces unique constraints on `cache_entries` that leave out `name` (and so cannot hold
    /// the theme rows) by one over `(type, name, key, environment)`. With `apply` false, only
    /// says what it would do. Returns one line per statement.
    async fn widen_unique(&self, apply: bool) -> Result<Vec<String>, StoreError>;
}

/// The audit log as the job writes it: every run reads and writes inside one transaction.
#[async_trait]
pub trait EventLog: Send + Sync {
    /// Starts a transaction; everything a run reads and writes happens inside one.
    async fn begin(&self) -> Result<Box<dyn RunTx>, StoreError>;

    /// Appends a run record on its own (refused or failed runs, which write nothing else).
    async fn append_run_record(&self, run: &NewRun) -> Result<RunId, StoreError>;

    /// Who holds the writer lock right now, described for a message; `None` when it is free.
    /// Only looks (PostgreSQL's lock table; SQLite's marker file, see `sqlite.rs`): it never
    /// takes the lock, so a run starting at the same moment cannot fail because of it.
    async fn writer_lock_holder(&self) -> Result<Option<String>, StoreError>;
}

/// One open transaction of a run. Dropped without `commit`, it rolls back.
#[async_trait]
pub trait RunTx: Send {
    /// Takes the single-writer lock for the rest of the transaction, without waiting.
    async fn try_lock_writer(&mut self) -> Result<LockOutcome, StoreError>;

    /// The latest date in `ohlcv_daily`.
    async fn latest_price_date(&mut self) -> Result<Option<NaiveDate>, StoreError>;

    /// Every symbol row with its latest close on or before `as_of`; without `as_of`, as of the
    /// latest price date (`None` when there are no prices).
    async fn load_market(
        &mut self,
        as_of: Option<NaiveDate>,
    ) -> Result<Option<MarketSnapshot>, StoreError>;

    /// The `cache_config` rows of `environment`.
    async fn load_config_rows(&mut self, environment: &str) -> Result<Vec<ConfigRow>, StoreError>;

    /// The rows of `environment` inside `scopes`, with digests instead of values, by id.
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

    /// Logged events of `environment`, read inside the run's transaction (the audited state
    /// drifted rows are judged from).
    async fn read_events(
        &mut self,
        environment: &str,
        filter: &EventFilter,
    ) -> Result<Vec<LoggedEvent>, StoreError>;

    /// The newest checkpoint at or before `run_id` (only `key`'s row when given), read inside
    /// the run's transaction.
    async fn checkpoint_before(
        &mut self,
        environment: &str,
        run_id: RunId,
        key: Option<&EntryKey>,
    ) -> Result<Option<Checkpoint>, StoreError>;

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
        events: &[OutgoingEvent],
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

/// The audit log read back: history, replay, show, verify.
#[async_trait]
pub trait LogReader: Send + Sync {
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

    /// The newest compaction of `environment`: where its replayable history begins.
    async fn latest_compaction(
        &self,
        environment: &str,
    ) -> Result<Option<CompactionRecord>, StoreError>;
}

/// Compaction: the one sanctioned path by which events and checkpoints leave the log.
#[async_trait]
pub trait Compactor: Send + Sync {
    /// Starts a compaction's transaction (the writer lock is taken by `try_lock_writer`).
    async fn begin_compaction(&self) -> Result<Box<dyn CompactionTx>, StoreError>;
}

/// One open compaction transaction. Dropped without `commit`, it rolls back.
#[async_trait]
pub trait CompactionTx: Send {
    /// Takes the single-writer lock for the rest of the transaction, without waiting.
    async fn try_lock_writer(&mut self) -> Result<LockOutcome, StoreError>;

    /// `(run, as_of)` of every completed run of `environment`, oldest first.
    async fn completed_runs(
        &mut self,
        environment: &str,
    ) -> Result<Vec<(RunId, Option<NaiveDate>)>, StoreError>;

    /// The newest compaction of `environment`.
    async fn latest_compaction(
        &mut self,
        environment: &str,
    ) -> Result<Option<CompactionRecord>, StoreError>;

    /// Logged events of `environment`.
    async fn read_events(
        &mut self,
        environment: &str,
        filter: &EventFilter,
    ) -> Result<Vec<LoggedEvent>, StoreError>;

    /// The newest checkpoint at or before `run_id`.
    async fn checkpoint_before(
        &mut self,
        environment: &str,
        run_id: RunId,
    ) -> Result<Option<Checkpoint>, StoreError>;

    /// Stores a checkpoint of the full owned catalog as it stood after `run_id`.
    async fn append_checkpoint(
        &mut self,
        environment: &str,
        run_id: RunId,
        entries: &[(&EntryKey, Family, &serde_json::Value, ContentHash)],
    ) -> Result<(), StoreError>;

    /// The stored JSON of `environment`'s log (event changes and checkpoint values), in bytes;
    /// with `kept_from`, only what a compaction folding through that run keeps (events after
    /// it, checkpoints at or after it).
    async fn log_bytes(
        &mut self,
        environment: &str,
        kept_from: Option<RunId>,
    ) -> Result<i64, StoreError>;

    /// How many events (through `run_id`) and checkpoints (before it) a compaction folding
    /// through `run_id` removes.
    async fn count_folded(
        &mut self,
        environment: &str,
        run_id: RunId,
    ) -> Result<(i64, i64), StoreError>;

    /// Records the compaction, then deletes the events through its checkpoint run and the
    /// checkpoints before it, through the path the log's triggers let pass.
    async fn remove_folded(
        &mut self,
        environment: &str,
        compaction: &NewCompaction,
    ) -> Result<CompactionRecord, StoreError>;

    /// Commits.
    async fn commit(self: Box<Self>) -> Result<(), StoreError>;

    /// Rolls back now.
    async fn rollback(self: Box<Self>) -> Result<(), StoreError>;
}

/// Change events written with their run, waiting to be published.
#[async_trait]
pub trait Outbox: Send + Sync {
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
}

/// The API's jobs (`cache_sync_job`): requests to run, and how they went.
#[async_trait]
pub trait JobBoard: Send + Sync {
    /// Records a new job as pending; `false` when another job is pending or running.
    async fn create_job(&self, job: &JobRecord) -> Result<bool, StoreError>;

    /// Moves a job to `status` (setting start or end time), with optional details.
    async fn update_job(
        &self,
        job_id: &str,
        status: JobStatus,
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

    /// Settles jobs left pending or running by a process that died or gave up on them (only
    /// `job_id` when given): a job whose run committed (its run record names the job) is
    /// completed with that run; any other is failed, with the run record's error when a refused
    /// run left one, else `reason`.
    async fn settle_abandoned_jobs(
        &self,
        job_id: Option<&str>,
        reason: &str,
    ) -> Result<SettledJobs, StoreError>;

    /// Job statistics since `since`.
    async fn job_stats(&self, since: DateTime<Utc>) -> Result<JobStats, StoreError>;

    /// Takes the lock that shows other instances this process is alive, under a fresh id; the
    /// jobs it creates carry that id (`JobRecord::owner`). Held until the `Owner` is dropped.
    async fn claim_owner(&self) -> Result<Owner, StoreError>;

    /// Re-takes `owner`'s lock if the connection holding it was lost (PostgreSQL); a no-op
    /// otherwise. Run it periodically: a lost session would make this instance look dead.
    async fn keep_owner(&self, owner: &Owner) -> Result<(), StoreError>;

    /// Whether some process holds `owner`'s lock, looked at without taking it.
    async fn owner_alive(&self, owner: &str) -> Result<bool, StoreError>;

    /// The job started for the Phase 2 import `import_run_id`, if any.
    async fn job_for_import(&self, import_run_id: &str) -> Result<Option<JobRecord>, StoreError>;

    /// The jobs recorded pending or running, oldest first.
    async fn unfinished_jobs(&self) -> Result<Vec<JobRecord>, StoreError>;

    /// Settles the unfinished jobs whose owner is gone (or unknown: jobs from before owners
    /// were recorded), as `settle_abandoned_jobs` does with `reason`; a job of a live instance,
    /// this one or another, is left alone whatever its age.
    async fn settle_orphans(&self, reason: &str) -> Result<SettledJobs, StoreError> {
        let mut settled = SettledJobs::default();
        for job in self.unfinished_jobs().await? {
            if let Some(owner) = &job.owner {
                if self.owner_alive(owner).await? {
                    continue;
                }
            }
            let one = self
                .settle_abandoned_jobs(Some(&job.job_id), reason)
                .await?;
            settled.completed += one.completed;
            settled.failed += one.failed;
        }
        Ok(settled)
    }
}

/// Read-only views for the admin UI and monitoring.
#[async_trait]
pub trait ReadViews: Send + Sync {
    /// Figures for the metrics endpoint.
    async fn metrics(&self, environment: &str) -> Result<MetricsSnapshot, StoreError>;

    /// The owned universe rows of `environment` with member counts.
    async fn universes(&self, environment: &str) -> Result<Vec<UniverseRow>, StoreError>;
}

/// Every role at once: a whole database, as a process that owns one holds it.
pub trait Store: Schema + EventLog + LogReader + Compactor + Outbox + JobBoard + ReadViews {}

impl<T: Schema + EventLog + LogReader + Compactor + Outbox + JobBoard + ReadViews> Store for T {}
