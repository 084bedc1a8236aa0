//! Embedded SQLite adapter: the whole job on a local file, no server (`sqlite://…` URLs).
//! Same meaning as the PostgreSQL adapter, method for method; values are always bound.
//!
//! Dialect choices, each documented where it matters:
//! - **Writer lock.** A transaction starts deferred (`BEGIN`): a plan only reads and, in WAL
//!   mode, never waits for or blocks a writer. `try_lock_writer` then writes the one row of
//!   `cache_sync_writer_lock` with the busy timeout set to zero for that statement, which takes
//!   SQLite's database write lock right away — the `BEGIN IMMEDIATE` semantics, but on demand —
//!   or fails at once with `SQLITE_BUSY`, reported as `LockOutcome::HeldElsewhere`. Taking the
//!   lock as the transaction's first statement means its snapshot starts with the lock held, so
//!   the later writes can never fail with `SQLITE_BUSY_SNAPSHOT`. (Starting every transaction
//!   with `BEGIN IMMEDIATE` would make a second run fail in `begin()` with a store error after
//!   the busy timeout, instead of reporting the lock.) While a run holds the lock, other writes
//!   (API job bookkeeping) wait up to the busy timeout: SQLite has one writer at a time.
//! - **Row digest.** SQLite has no row version (PostgreSQL's `xmin/ctid`), so `StoredRow::digest`
//!   is the BLAKE3 hash of the stored value text, computed here after reading the value: exact
//!   (any edit of the text changes it), but every owned value is read on each run.
//! - **Sequences.** Run ids and event seqs are `max + 1`, allocated inside the write
//!   transaction; writers are serialized, and the log is append-only, so both only grow.
//! - **Types.** JSON is text (`serde_json::to_string`), read back with `serde_json::from_str`.
//!   `timestamptz` columns hold RFC 3339 UTC text with fixed-width microseconds (text order is
//!   time order); `cache_entries` timestamps are naive UTC text, as PostgreSQL's `timestamp`.
//!   No arrays: statements are looped inside the transaction, or lists bound as JSON and read
//!   with `json_each`.

mod audit;
mod jobs;
mod outbox;
#[cfg(test)]
mod tests;

use super::{
    check_migrations, require_migrations, AppendedRun, Checkpoint, EntryHead, EventFilter,
    JobRecord, JobStats, LockOutcome, LoggedEvent, MetricsSnapshot, NewRun, OutboxRow,
    QueryContext, RowIdentity, RunSummary, Store, StoreError, StoreTx, StoredRow, UniqueConstraint,
    UniverseRow,
};
use crate::domain::config::ConfigRow;
use crate::domain::diff::{CurrentEntry, Delta, Op};
use crate::domain::fingerprint::ContentHash;
use crate::domain::market::{DailyBar, MarketSnapshot, SymbolRow};
use crate::domain::types::{EntryKey, Family, RunId, Scope};
use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{QueryBuilder, Sqlite, SqlitePool, Transaction};
use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

/// The schema this build expects, embedded at compile time.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");

/// How long a statement waits for another connection's write lock (not the run's writer lock,
/// which never waits).
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// Rows per statement when loading fixture data (14 columns × 500 stays far below SQLite's
/// 32 766 bound parameters).
const LOAD_CHUNK: usize = 500;

/// The embedded SQLite store.
#[derive(Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating when missing) the database file at `url` (`sqlite://path` or
    /// `sqlite:path`), in WAL mode with foreign keys on.
    ///
    /// # Errors
    /// `StoreError::Connect` when the URL is malformed or the file cannot be opened.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let target = url.to_owned();
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|source| StoreError::Connect {
                target: target.clone(),
                source,
            })?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options)
            .await
            .map_err(|source| StoreError::Connect { target, source })?;
        Ok(Self { pool })
    }

    /// As `open`, but a missing file is not created: it is reported as a database without the
    /// schema (with migrations off, nothing may be created).
    ///
    /// # Errors
    /// `StoreError::SchemaOutOfDate` when the file does not exist, else as `open`.
    pub async fn open_existing(url: &str) -> Result<Self, StoreError> {
        let options =
            SqliteConnectOptions::from_str(url).map_err(|source| StoreError::Connect {
                target: url.to_owned(),
                source,
            })?;
        if !options.get_filename().exists() {
            require_migrations(&MIGRATOR, &[])?;
        }
        Self::open(url).await
    }

    /// Wraps an existing pool (tests).
    pub fn from_pool(pool: SqlitePool) -> Self {
        Self { pool }
    }

    /// The pool, for tests and benchmarks that inspect the database directly.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}

/// A `timestamptz` as stored: RFC 3339 UTC with fixed-width microseconds, so that text order is
/// time order and sqlx decodes it back into `DateTime<Utc>`.
pub(crate) fn ts(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// A `timestamp` (naive UTC) as stored in `cache_entries`.
fn naive_now() -> String {
    Utc::now().format("%Y-%m-%d %H:%M:%S%.6f").to_string()
}

/// JSON as stored: canonical `serde_json` text.
pub(crate) fn json_text<T: serde::Serialize + ?Sized>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value)
        .map_err(|e| StoreError::Corrupt(format!("unserializable JSON: {e}")))
}

pub(crate) use super::rows::parse_json;

/// The digest of a stored value (see the module comment).
fn digest(text: &str) -> String {
    blake3::hash(text.as_bytes()).to_hex().to_string()
}

/// `SQLITE_BUSY` / `SQLITE_LOCKED` (any extended code): another connection holds the lock.
fn is_busy(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .and_then(|d| d.code())
        .and_then(|c| c.parse::<i32>().ok())
        .is_some_and(|c| matches!(c & 0xff, 5 | 6))
}

use crate::store::rows::parse_hash;

fn trigger_text(run: &NewRun) -> Result<String, StoreError> {
    match serde_json::to_value(run.trigger) {
        Ok(serde_json::Value::String(s)) => Ok(s),
        _ => Err(StoreError::Corrupt("trigger does not serialize".to_owned())),
    }
}

fn status_text(run: &NewRun) -> Result<String, StoreError> {
    match serde_json::to_value(run.status) {
        Ok(serde_json::Value::String(s)) => Ok(s),
        _ => Err(StoreError::Corrupt("status does not serialize".to_owned())),
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn migrate(&self) -> Result<(), StoreError> {
        MIGRATOR.run(&self.pool).await?;
        Ok(())
    }

    async fn check_schema(&self) -> Result<(), StoreError> {
        check_migrations(&self.pool, "select count(*) > 0 from sqlite_master where type = 'table' and name = '_sqlx_migrations'", &MIGRATOR).await
    }

    async fn begin(&self) -> Result<Box<dyn StoreTx>, StoreError> {
        // Deferred: see the module comment for how the writer lock is taken.
        let tx = self.pool.begin().await.during("starting a transaction")?;
        Ok(Box::new(SqliteTx { tx }))
    }

    async fn append_run_record(&self, run: &NewRun) -> Result<RunId, StoreError> {
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .during("starting a transaction")?;
        let run_id = next_run_id(&mut tx).await?;
        insert_run(&mut tx, run_id, run).await?;
        tx.commit().await.during("committing the run record")?;
        Ok(run_id)
    }

    /// Unique indexes left out `name` are dropped and replaced by one over the four columns.
    /// Fresh SQLite files always carry the wide constraint (the embedded store only ever has
    /// tables it created), so this normally returns nothing. A narrow *table constraint*
    /// cannot be dropped in SQLite (it would take a table rebuild), so that case is refused
    /// with an explanation rather than half-done.
    async fn widen_unique(&self, apply: bool) -> Result<Vec<String>, StoreError> {
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .during("starting a transaction")?;
        let constraints = unique_indexes(&mut tx).await?;
        let narrow: Vec<&(String, String, Vec<String>)> = constraints
            .iter()
            .filter(|(_, _, columns)| {
                columns
                    .iter()
                    .all(|c| matches!(c.as_str(), "type" | "key" | "environment"))
            })
            .collect();
        if narrow.is_empty() {
            return Ok(Vec::new());
        }
        let mut statements = Vec::new();
        for (name, origin, _) in &narrow {
            if origin != "c" {
                return Err(StoreError::Corrupt(format!(
                    "unique constraint {name} of cache_entries leaves out name and is part of the \
                     table definition, which SQLite cannot drop; rebuild cache_entries with \
                     UNIQUE (type, name, key, environment) (create the new table, copy the rows, \
                     drop the old one, rename)"
                )));
            }
            statements.push(format!("drop index \"{}\"", name.replace('"', "\"\"")));
        }
        statements.push(
            "create unique index if not exists cache_entries_type_name_key_environment_uidx \
             on cache_entries (type, name, key, environment)"
                .to_owned(),
        );
        if apply {
            for statement in &statements {
                sqlx::query(statement)
                    .execute(&mut *tx)
                    .await
                    .during("widening a unique constraint")?;
            }
            tx.commit()
                .await
                .during("committing the widened constraint")?;
        }
        Ok(statements)
    }

    async fn read_runs(
        &self,
        environment: &str,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<RunSummary>, StoreError> {
        audit::read_runs(&self.pool, environment, limit, offset).await
    }

    async fn run_at(
        &self,
        environment: &str,
        at: DateTime<Utc>,
    ) -> Result<Option<RunId>, StoreError> {
        audit::run_at(&self.pool, environment, at).await
    }

    async fn read_events(
        &self,
        environment: &str,
        filter: &EventFilter,
    ) -> Result<Vec<LoggedEvent>, StoreError> {
        audit::read_events(&self.pool, environment, filter).await
    }

    async fn checkpoint_before(
        &self,
        environment: &str,
        run_id: RunId,
        key: Option<&EntryKey>,
    ) -> Result<Option<Checkpoint>, StoreError> {
        audit::checkpoint_before(&self.pool, environment, run_id, key).await
    }

    async fn live_value(
        &self,
        environment: &str,
        key: &EntryKey,
    ) -> Result<Option<serde_json::Value>, StoreError> {
        audit::live_value(&self.pool, environment, key).await
    }

    async fn pending_outbox(&self, limit: i64) -> Result<Vec<OutboxRow>, StoreError> {
        outbox::pending(&self.pool, limit).await
    }

    async fn mark_published(&self, ids: &[i64]) -> Result<(), StoreError> {
        outbox::mark_published(&self.pool, ids).await
    }

    async fn read_outbox(
        &self,
        after_seq: Option<i64>,
        universe: Option<&EntryKey>,
        limit: i64,
    ) -> Result<Vec<OutboxRow>, StoreError> {
        outbox::read(&self.pool, after_seq, universe, limit).await
    }

    async fn create_job(&self, job: &JobRecord) -> Result<bool, StoreError> {
        jobs::create(&self.pool, job).await
    }

    async fn update_job(
        &self,
        job_id: &str,
        status: &str,
        error_details: Option<&str>,
        run_id: Option<i64>,
    ) -> Result<(), StoreError> {
        jobs::update(&self.pool, job_id, status, error_details, run_id).await
    }

    async fn job_progress(
        &self,
        job_id: &str,
        progress: &serde_json::Value,
    ) -> Result<(), StoreError> {
        jobs::progress(&self.pool, job_id, progress).await
    }

    async fn get_job(&self, job_id: &str) -> Result<Option<JobRecord>, StoreError> {
        jobs::get(&self.pool, job_id).await
    }

    async fn list_jobs(
        &self,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<JobRecord>, i64), StoreError> {
        jobs::list(&self.pool, limit, offset).await
    }

    async fn fail_abandoned_jobs(&self, reason: &str) -> Result<u64, StoreError> {
        jobs::fail_abandoned(&self.pool, reason).await
    }

    async fn job_stats(&self, since: DateTime<Utc>) -> Result<JobStats, StoreError> {
        jobs::stats(&self.pool, since).await
    }

    async fn metrics(&self, environment: &str) -> Result<MetricsSnapshot, StoreError> {
        jobs::metrics(&self.pool, environment).await
    }

    async fn universes(&self, environment: &str) -> Result<Vec<UniverseRow>, StoreError> {
        jobs::universes(&self.pool, environment).await
    }

    async fn load_market_rows(
        &self,
        symbols: &[SymbolRow],
        bars: &[DailyBar],
    ) -> Result<(), StoreError> {
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .during("starting a transaction")?;
        for chunk in symbols.chunks(LOAD_CHUNK) {
            upsert_symbols(&mut tx, chunk).await?;
        }
        for chunk in bars.chunks(LOAD_CHUNK) {
            insert_bars(&mut tx, chunk).await?;
        }
        tx.commit().await.during("committing fixture rows")?;
        Ok(())
    }
}

async fn upsert_symbols(conn: &mut SqliteConnection, rows: &[SymbolRow]) -> Result<(), StoreError> {
    let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(
        "insert into symbols (symbol, name, type, active, market_cap, weighted_shares_outstanding,
             primary_exchange, market, sector, industry, list_date, etf_type, issuer, aum_millions) ",
    );
    q.push_values(rows, |mut b, r| {
        b.push_bind(&r.symbol)
            .push_bind(&r.name)
            .push_bind(&r.kind)
            .push_bind(r.active)
            .push_bind(r.market_cap)
            .push_bind(r.weighted_shares_outstanding)
            .push_bind(&r.primary_exchange)
            .push_bind(&r.market)
            .push_bind(&r.sector)
            .push_bind(&r.industry)
            .push_bind(r.list_date)
            .push_bind(&r.etf_type)
            .push_bind(&r.issuer)
            .push_bind(r.aum_millions);
    });
    q.push(
        " on conflict (symbol) do update set name = excluded.name, type = excluded.type,
             active = excluded.active, market_cap = excluded.market_cap,
             weighted_shares_outstanding = excluded.weighted_shares_outstanding,
             primary_exchange = excluded.primary_exchange, market = excluded.market,
             sector = excluded.sector, industry = excluded.industry, list_date = excluded.list_date,
             etf_type = excluded.etf_type, issuer = excluded.issuer, aum_millions = excluded.aum_millions",
    );
    q.build()
        .execute(&mut *conn)
        .await
        .during("loading symbols")?;
    Ok(())
}

async fn insert_bars(conn: &mut SqliteConnection, bars: &[DailyBar]) -> Result<(), StoreError> {
    let now = ts(Utc::now());
    let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(
        "insert into ohlcv_daily (symbol, date, open, high, low, close, volume, created_at) ",
    );
    q.push_values(bars, |mut b, bar| {
        b.push_bind(&bar.symbol)
            .push_bind(bar.date)
            .push_bind(bar.open)
            .push_bind(bar.high)
            .push_bind(bar.low)
            .push_bind(bar.close)
            .push_bind(bar.volume)
            .push_bind(now.clone());
    });
    q.push(" on conflict (symbol, date) do nothing");
    q.build()
        .execute(&mut *conn)
        .await
        .during("loading daily bars")?;
    Ok(())
}

/// Unique indexes of `cache_entries` other than the primary key: (name, origin, columns), where
/// origin is `c` for `create unique index` and `u` for a table constraint.
async fn unique_indexes(
    conn: &mut SqliteConnection,
) -> Result<Vec<(String, String, Vec<String>)>, StoreError> {
    let rows: Vec<(String, String, String)> = sqlx::query_as(
        "select il.name, il.origin, ii.name
         from pragma_index_list('cache_entries') il
         join pragma_index_info(il.name) ii
         where il.\"unique\" = 1 and il.origin <> 'pk'
         order by il.name, ii.seqno",
    )
    .fetch_all(&mut *conn)
    .await
    .during("reading cache_entries unique constraints")?;
    let mut out: Vec<(String, String, Vec<String>)> = Vec::new();
    for (name, origin, column) in rows {
        match out.last_mut() {
            Some(last) if last.0 == name => last.2.push(column),
            _ => out.push((name, origin, vec![column])),
        }
    }
    Ok(out)
}

async fn next_run_id(conn: &mut SqliteConnection) -> Result<RunId, StoreError> {
    let id: i64 = sqlx::query_scalar("select coalesce(max(run_id), 0) + 1 from cache_sync_run")
        .fetch_one(&mut *conn)
        .await
        .during("allocating a run id")?;
    Ok(RunId(id))
}

async fn insert_run(
    conn: &mut SqliteConnection,
    run_id: RunId,
    run: &NewRun,
) -> Result<(), StoreError> {
    sqlx::query(
        "insert into cache_sync_run (run_id, trigger, families, environment, as_of, config_hash, status,
             forced, started_at, finished_at, created_count, updated_count, deleted_count,
             unchanged_count, report, error)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
    )
    .bind(run_id.0)
    .bind(trigger_text(run)?)
    .bind(&run.families)
    .bind(&run.environment)
    .bind(run.as_of)
    .bind(run.config_hash.to_hex())
    .bind(status_text(run)?)
    .bind(run.forced)
    .bind(ts(run.started_at))
    .bind(ts(run.finished_at))
    .bind(run.created as i64)
    .bind(run.updated as i64)
    .bind(run.deleted as i64)
    .bind(run.unchanged as i64)
    .bind(json_text(&run.report)?)
    .bind(&run.error)
    .execute(&mut *conn)
    .await
    .during("appending the run record")?;
    Ok(())
}

/// One open SQLite transaction; dropped without `commit`, sqlx rolls it back.
struct SqliteTx {
    tx: Transaction<'static, Sqlite>,
}

#[async_trait]
impl StoreTx for SqliteTx {
    async fn try_lock_writer(&mut self) -> Result<LockOutcome, StoreError> {
        // The busy timeout is per connection: set it to zero for the one write that takes the
        // database write lock, then put it back, whatever the write did.
        let previous: i64 = sqlx::query_scalar("pragma busy_timeout")
            .fetch_one(&mut *self.tx)
            .await
            .during("reading the busy timeout")?;
        sqlx::query("pragma busy_timeout = 0")
            .execute(&mut *self.tx)
            .await
            .during("taking the writer lock")?;
        let taken = sqlx::query(
            "insert into cache_sync_writer_lock (id, taken_at) values (1, $1)
             on conflict (id) do update set taken_at = excluded.taken_at",
        )
        .bind(ts(Utc::now()))
        .execute(&mut *self.tx)
        .await;
        sqlx::query(&format!("pragma busy_timeout = {previous}"))
            .execute(&mut *self.tx)
            .await
            .during("restoring the busy timeout")?;
        match taken {
            Ok(_) => Ok(LockOutcome::Acquired),
            Err(e) if is_busy(&e) => Ok(LockOutcome::HeldElsewhere),
            Err(source) => Err(StoreError::Query {
                context: "taking the writer lock",
                source,
            }),
        }
    }

    async fn latest_price_date(&mut self) -> Result<Option<NaiveDate>, StoreError> {
        sqlx::query_scalar("select max(date) from ohlcv_daily")
            .fetch_one(&mut *self.tx)
            .await
            .during("reading the latest price date")
    }

    async fn load_market(&mut self, as_of: NaiveDate) -> Result<MarketSnapshot, StoreError> {
        // One probe per active symbol on the (symbol, date) primary key: the latest date on or
        // before the as-of date, then that row — never a scan of the whole price history.
        let rows = sqlx::query(
            "select s.symbol, s.name, s.type, s.active, s.market_cap,
                    s.weighted_shares_outstanding as shares, s.primary_exchange, s.market,
                    s.sector, s.industry, s.list_date, s.etf_type, s.issuer,
                    cast(s.aum_millions as real) as aum_millions, c.date as close_date,
                    cast(c.close as real) as close
             from symbols s
             left join ohlcv_daily c on c.symbol = s.symbol and s.active is true
                  and c.date = (select o.date from ohlcv_daily o
                                where o.symbol = s.symbol and o.date <= $1
                                order by o.date desc limit 1)",
        )
        .bind(as_of)
        .fetch_all(&mut *self.tx)
        .await
        .during("loading symbols and latest closes")?;
        let mut snapshot = MarketSnapshot {
            as_of,
            symbols: Vec::with_capacity(rows.len()),
            closes: Vec::with_capacity(rows.len()),
        };
        for row in &rows {
            let (symbol, close) = crate::store::rows::market_row(row)?;
            snapshot.symbols.push(symbol);
            snapshot.closes.push(close);
        }
        Ok(snapshot)
    }

    async fn load_config_rows(&mut self, environment: &str) -> Result<Vec<ConfigRow>, StoreError> {
        let rows: Vec<(String, String, String)> = sqlx::query_as(
            "select coalesce(name, ''), coalesce(key, ''), value from cache_entries
             where type = 'cache_config' and environment = $1 order by id",
        )
        .bind(environment)
        .fetch_all(&mut *self.tx)
        .await
        .during("reading cache_config rows")?;
        rows.into_iter()
            .map(|(name, key, value)| {
                Ok(ConfigRow {
                    name,
                    key,
                    value: parse_json(&value, "a cache_config value")?,
                })
            })
            .collect()
    }

    async fn load_rows(
        &mut self,
        environment: &str,
        scopes: &[Scope],
    ) -> Result<Vec<StoredRow>, StoreError> {
        let mut out = Vec::new();
        for scope in scopes {
            let rows: Vec<(i64, String, String, String, String)> = sqlx::query_as(
                "select id, type, name, key, value from cache_entries
                 where environment = $1 and type = $2 and name = $3",
            )
            .bind(environment)
            .bind(&scope.entry_type)
            .bind(&scope.name)
            .fetch_all(&mut *self.tx)
            .await
            .during("reading owned cache_entries rows")?;
            out.extend(
                rows.into_iter()
                    .map(|(id, entry_type, name, key, value)| StoredRow {
                        id,
                        key: EntryKey::new(entry_type, name, key),
                        digest: digest(&value),
                    }),
            );
        }
        out.sort_by_key(|r| r.id);
        out.dedup_by_key(|r| r.id);
        Ok(out)
    }

    async fn load_values(&mut self, ids: &[i64]) -> Result<Vec<CurrentEntry>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows: Vec<(i64, String, String, String, String)> = sqlx::query_as(
            "select id, type, name, key, value from cache_entries
             where id in (select value from json_each($1)) order by id",
        )
        .bind(json_text(ids)?)
        .fetch_all(&mut *self.tx)
        .await
        .during("reading cache_entries values")?;
        rows.into_iter()
            .map(|(id, entry_type, name, key, value)| {
                Ok(CurrentEntry {
                    id,
                    key: EntryKey::new(entry_type, name, key),
                    value: parse_json(&value, "a cache_entries value")?,
                })
            })
            .collect()
    }

    async fn load_identities(&mut self) -> Result<Vec<RowIdentity>, StoreError> {
        let rows: Vec<(String, String, String, String)> = sqlx::query_as(
            "select coalesce(type, ''), coalesce(name, ''), coalesce(key, ''), coalesce(environment, '')
             from cache_entries",
        )
        .fetch_all(&mut *self.tx)
        .await
        .during("reading cache_entries identities")?;
        Ok(rows
            .into_iter()
            .map(|(t, n, k, environment)| RowIdentity {
                key: EntryKey::new(t, n, k),
                environment,
            })
            .collect())
    }

    async fn unique_constraints(&mut self) -> Result<Vec<UniqueConstraint>, StoreError> {
        Ok(unique_indexes(&mut self.tx)
            .await?
            .into_iter()
            .map(|(name, _, columns)| UniqueConstraint { name, columns })
            .collect())
    }

    async fn last_config_hash(
        &mut self,
        environment: &str,
    ) -> Result<Option<ContentHash>, StoreError> {
        let hash: Option<String> = sqlx::query_scalar(
            "select config_hash from cache_sync_run where environment = $1 and status = 'completed'
             order by run_id desc limit 1",
        )
        .bind(environment)
        .fetch_optional(&mut *self.tx)
        .await
        .during("reading the last run's configuration hash")?;
        parse_hash(hash)
    }

    async fn entry_heads(
        &mut self,
        environment: &str,
    ) -> Result<HashMap<EntryKey, EntryHead>, StoreError> {
        entry_heads(&mut self.tx, environment).await
    }

    async fn append_run(
        &mut self,
        run: &NewRun,
        deltas: &[Delta],
        recheck: &[EntryKey],
    ) -> Result<AppendedRun, StoreError> {
        let run_id = next_run_id(&mut self.tx).await?;
        let heads = entry_heads(&mut self.tx, &run.environment).await?;
        apply_entries(&mut self.tx, &run.environment, deltas).await?;
        let seqs = append_events(&mut self.tx, run_id, &run.environment, deltas, &heads).await?;
        insert_run(&mut self.tx, run_id, run).await?;
        let keys: Vec<&EntryKey> = recheck.iter().collect();
        record_row_versions(&mut self.tx, &run.environment, &keys).await?;
        Ok(AppendedRun { run_id, seqs })
    }

    async fn append_outbox(
        &mut self,
        run_id: RunId,
        environment: &str,
        events: &[crate::domain::events::OutgoingEvent],
    ) -> Result<(), StoreError> {
        outbox::append(&mut self.tx, run_id, environment, events).await
    }

    async fn runs_since_checkpoint(&mut self, environment: &str) -> Result<i64, StoreError> {
        audit::runs_since_checkpoint(&mut *self.tx, environment).await
    }

    async fn append_checkpoint(
        &mut self,
        environment: &str,
        run_id: RunId,
        entries: &[(&EntryKey, Family, &serde_json::Value, ContentHash)],
    ) -> Result<(), StoreError> {
        audit::append_checkpoint(&mut self.tx, environment, run_id, entries).await
    }

    async fn commit(self: Box<Self>) -> Result<(), StoreError> {
        self.tx.commit().await.during("committing the run")
    }

    async fn rollback(self: Box<Self>) -> Result<(), StoreError> {
        self.tx.rollback().await.during("rolling back")
    }
}

/// (type, name, key, version, last_seq, hash, row_digest) of `cache_sync_entry_head`.
type HeadRow = (
    String,
    String,
    String,
    i32,
    i64,
    Option<String>,
    Option<String>,
);

async fn entry_heads(
    conn: &mut SqliteConnection,
    environment: &str,
) -> Result<HashMap<EntryKey, EntryHead>, StoreError> {
    let rows: Vec<HeadRow> = sqlx::query_as(
        "select entry_type, entry_name, entry_key, version, last_seq, hash, row_digest
         from cache_sync_entry_head where environment = $1",
    )
    .bind(environment)
    .fetch_all(&mut *conn)
    .await
    .during("reading entry heads")?;
    rows.into_iter()
        .map(|(t, n, k, version, last_seq, hash, row_digest)| {
            Ok((
                EntryKey::new(t, n, k),
                EntryHead {
                    version,
                    last_seq,
                    hash: parse_hash(hash)?,
                    row_digest,
                },
            ))
        })
        .collect()
}

/// Deletes by id, updates in place (keeping `id`, setting `updated_at`), inserts.
async fn apply_entries(
    conn: &mut SqliteConnection,
    environment: &str,
    deltas: &[Delta],
) -> Result<(), StoreError> {
    let now = naive_now();
    for d in deltas.iter().filter(|d| d.op == Op::Delete) {
        if let Some(id) = d.row_id {
            sqlx::query("delete from cache_entries where id = $1")
                .bind(id)
                .execute(&mut *conn)
                .await
                .during("deleting cache_entries rows")?;
        }
    }
    for d in deltas.iter().filter(|d| d.op == Op::Update) {
        let value = d.value_after.clone().unwrap_or_default();
        sqlx::query("update cache_entries set value = $2, updated_at = $3 where id = $1")
            .bind(d.row_id.unwrap_or_default())
            .bind(json_text(&value)?)
            .bind(&now)
            .execute(&mut *conn)
            .await
            .during("updating cache_entries rows")?;
    }
    for d in deltas.iter().filter(|d| d.op == Op::Create) {
        let value = d.value_after.clone().unwrap_or_default();
        sqlx::query(
            "insert into cache_entries (type, name, key, value, environment, created_at, updated_at)
             values ($1, $2, $3, $4, $5, $6, $6)",
        )
        .bind(&d.key.entry_type)
        .bind(&d.key.name)
        .bind(&d.key.key)
        .bind(json_text(&value)?)
        .bind(environment)
        .bind(&now)
        .execute(&mut *conn)
        .await
        .during("inserting cache_entries rows")?;
    }
    Ok(())
}

/// Appends one event per delta, in delta order, and moves each entry's head.
async fn append_events(
    conn: &mut SqliteConnection,
    run_id: RunId,
    environment: &str,
    deltas: &[Delta],
    heads: &HashMap<EntryKey, EntryHead>,
) -> Result<Vec<i64>, StoreError> {
    if deltas.is_empty() {
        return Ok(Vec::new());
    }
    let base: i64 = sqlx::query_scalar("select coalesce(max(seq), 0) from cache_sync_event")
        .fetch_one(&mut *conn)
        .await
        .during("allocating event sequence numbers")?;
    let seqs: Vec<i64> = (1..=deltas.len() as i64).map(|i| base + i).collect();
    let recorded_at = ts(Utc::now());
    let mut versions: HashMap<&EntryKey, i32> = HashMap::new();
    for (d, &seq) in deltas.iter().zip(&seqs) {
        let version = versions
            .get(&d.key)
            .copied()
            .or_else(|| heads.get(&d.key).map(|h| h.version))
            .unwrap_or(0)
            + 1;
        versions.insert(&d.key, version);
        sqlx::query(
            "insert into cache_sync_event (seq, run_id, environment, entry_type, entry_name, entry_key,
                 version, op, family, hash_before, hash_after, change, recorded_at)
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        )
        .bind(seq)
        .bind(run_id.0)
        .bind(environment)
        .bind(&d.key.entry_type)
        .bind(&d.key.name)
        .bind(&d.key.key)
        .bind(version)
        .bind(d.op.past_tense())
        .bind(d.family.as_str())
        .bind(d.hash_before.map(|h| h.to_hex()))
        .bind(d.hash_after.map(|h| h.to_hex()))
        .bind(json_text(&d.change)?)
        .bind(&recorded_at)
        .execute(&mut *conn)
        .await
        .during("appending audit events")?;
        // The last delta of an entry in this run decides its head (deltas are in seq order);
        // deletes of duplicate rows leave the entry as it was.
        if !d.change.duplicate_row {
            sqlx::query(
                "insert into cache_sync_entry_head (environment, entry_type, entry_name, entry_key,
                     version, last_seq, hash)
                 values ($1, $2, $3, $4, $5, $6, $7)
                 on conflict (environment, entry_type, entry_name, entry_key)
                 do update set version = excluded.version, last_seq = excluded.last_seq,
                     hash = excluded.hash",
            )
            .bind(environment)
            .bind(&d.key.entry_type)
            .bind(&d.key.name)
            .bind(&d.key.key)
            .bind(version)
            .bind(seq)
            .bind(d.hash_after.map(|h| h.to_hex()))
            .execute(&mut *conn)
            .await
            .during("moving entry heads")?;
        }
    }
    let written: Vec<&EntryKey> = deltas
        .iter()
        .filter(|d| !d.change.duplicate_row)
        .map(|d| &d.key)
        .collect();
    record_row_versions(conn, environment, &written).await?;
    Ok(seqs)
}

/// Records the digest of each entry's live row in its head, so the next run can skip
/// re-hashing rows nobody touched since (heads of entries without a live row keep theirs).
async fn record_row_versions(
    conn: &mut SqliteConnection,
    environment: &str,
    keys: &[&EntryKey],
) -> Result<(), StoreError> {
    let mut done = std::collections::HashSet::new();
    for key in keys {
        if !done.insert(*key) {
            continue;
        }
        let value: Option<String> = sqlx::query_scalar(
            "select value from cache_entries
             where environment = $1 and type = $2 and name = $3 and key = $4
             order by id limit 1",
        )
        .bind(environment)
        .bind(&key.entry_type)
        .bind(&key.name)
        .bind(&key.key)
        .fetch_optional(&mut *conn)
        .await
        .during("recording row versions")?;
        let Some(value) = value else { continue };
        sqlx::query(
            "update cache_sync_entry_head set row_digest = $5
             where environment = $1 and entry_type = $2 and entry_name = $3 and entry_key = $4",
        )
        .bind(environment)
        .bind(&key.entry_type)
        .bind(&key.name)
        .bind(&key.key)
        .bind(digest(&value))
        .execute(&mut *conn)
        .await
        .during("recording row versions")?;
    }
    Ok(())
}
