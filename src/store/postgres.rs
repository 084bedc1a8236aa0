//! PostgreSQL adapter: every statement the job runs against production. Values are always bound,
//! never spliced into SQL text.

mod audit;
mod jobs;
mod outbox;

use super::{
    check_migrations, AppendedRun, Checkpoint, EntryHead, EventFilter, JobRecord, JobStats,
    LockOutcome, LoggedEvent, MetricsSnapshot, NewRun, OutboxRow, QueryContext, RowIdentity,
    RunSummary, Store, StoreError, StoreTx, StoredRow, UniqueConstraint, UniverseRow,
};
use crate::domain::config::ConfigRow;
use crate::domain::diff::{CurrentEntry, Delta, Op};
use crate::domain::fingerprint::ContentHash;
use crate::domain::market::{DailyBar, MarketSnapshot, SymbolRow};
use crate::domain::types::{EntryKey, Family, RunId, Scope};
use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Postgres, Transaction};
use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

/// The schema this build expects, embedded at compile time.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

/// Key of the advisory lock that makes the job a single writer (any stable 64-bit number).
const WRITER_LOCK_KEY: i64 = 0x7C5E_5EED_2026_0205;

/// Rows per statement when loading fixture data.
const LOAD_CHUNK: usize = 20_000;

/// The PostgreSQL store.
#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
}

/// Where a URL points, without its password, for error messages.
pub fn redact_url(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let host = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
            format!("{scheme}://{host}")
        }
        None => "(not a URL)".to_owned(),
    }
}

impl PgStore {
    /// Connects to `url` (`postgres://…`).
    ///
    /// # Errors
    /// `StoreError::Connect` naming the host (never the password) when the URL is malformed or
    /// the server does not answer within 10 seconds.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let target = redact_url(url);
        let options = PgConnectOptions::from_str(url).map_err(|source| StoreError::Connect {
            target: target.clone(),
            source,
        })?;
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await
            .map_err(|source| StoreError::Connect { target, source })?;
        Ok(Self { pool })
    }

    /// Wraps an existing pool (tests).
    pub fn from_pool(pool: PgPool) -> Self {
        Self { pool }
    }

    /// The pool, for tests and benchmarks that inspect the database directly.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

#[async_trait]
impl Store for PgStore {
    async fn migrate(&self) -> Result<(), StoreError> {
        MIGRATOR.run(&self.pool).await?;
        Ok(())
    }

    async fn check_schema(&self) -> Result<(), StoreError> {
        check_migrations(
            &self.pool,
            "select to_regclass('_sqlx_migrations') is not null",
            &MIGRATOR,
        )
        .await
    }

    async fn begin(&self) -> Result<Box<dyn StoreTx>, StoreError> {
        let tx = self.pool.begin().await.during("starting a transaction")?;
        Ok(Box::new(PgTx { tx }))
    }

    async fn append_run_record(&self, run: &NewRun) -> Result<RunId, StoreError> {
        let mut tx = self.pool.begin().await.during("starting a transaction")?;
        let run_id = next_run_id(&mut tx).await?;
        insert_run(&mut tx, run_id, run).await?;
        tx.commit().await.during("committing the run record")?;
        Ok(run_id)
    }

    async fn widen_unique(&self, apply: bool) -> Result<Vec<String>, StoreError> {
        let mut tx = self.pool.begin().await.during("starting a transaction")?;
        // Identifiers come from the catalog and are quoted by format('%I'); nothing typed by a
        // user reaches the statement text.
        let mut statements: Vec<String> = sqlx::query_scalar(
            "select case when c.oid is not null
                         then format('alter table cache_entries drop constraint %I', c.conname)
                         else format('drop index %I.%I', n.nspname, i.relname) end
             from pg_index x
             join pg_class i on i.oid = x.indexrelid
             join pg_namespace n on n.oid = i.relnamespace
             left join pg_constraint c on c.conindid = x.indexrelid and c.conrelid = x.indrelid
             where x.indrelid = 'cache_entries'::regclass and x.indisunique and not x.indisprimary
               and not exists (select 1 from unnest(x.indkey) k
                               join pg_attribute a on a.attrelid = x.indrelid and a.attnum = k
                               where a.attname not in ('type', 'key', 'environment'))
             order by i.relname",
        )
        .fetch_all(&mut *tx)
        .await
        .during("finding unique constraints without name")?;
        if statements.is_empty() {
            return Ok(statements);
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
        let mut tx = self.pool.begin().await.during("starting a transaction")?;
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

async fn upsert_symbols(
    tx: &mut Transaction<'static, Postgres>,
    rows: &[SymbolRow],
) -> Result<(), StoreError> {
    let col = |f: fn(&SymbolRow) -> Option<String>| rows.iter().map(f).collect::<Vec<_>>();
    sqlx::query(
        "insert into symbols (symbol, name, type, active, market_cap, weighted_shares_outstanding,
             primary_exchange, market, sector, industry, list_date, etf_type, issuer, aum_millions)
         select * from unnest($1::varchar[], $2::varchar[], $3::varchar[], $4::bool[], $5::int8[], $6::int8[],
             $7::varchar[], $8::varchar[], $9::varchar[], $10::varchar[], $11::date[], $12::varchar[],
             $13::varchar[], $14::float8[])
         on conflict (symbol) do update set name = excluded.name, type = excluded.type,
             active = excluded.active, market_cap = excluded.market_cap,
             weighted_shares_outstanding = excluded.weighted_shares_outstanding,
             primary_exchange = excluded.primary_exchange, market = excluded.market,
             sector = excluded.sector, industry = excluded.industry, list_date = excluded.list_date,
             etf_type = excluded.etf_type, issuer = excluded.issuer, aum_millions = excluded.aum_millions",
    )
    .bind(rows.iter().map(|r| r.symbol.clone()).collect::<Vec<_>>())
    .bind(col(|r| r.name.clone()))
    .bind(col(|r| r.kind.clone()))
    .bind(rows.iter().map(|r| r.active).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.market_cap).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.weighted_shares_outstanding).collect::<Vec<_>>())
    .bind(col(|r| r.primary_exchange.clone()))
    .bind(col(|r| r.market.clone()))
    .bind(col(|r| r.sector.clone()))
    .bind(col(|r| r.industry.clone()))
    .bind(rows.iter().map(|r| r.list_date).collect::<Vec<_>>())
    .bind(col(|r| r.etf_type.clone()))
    .bind(col(|r| r.issuer.clone()))
    .bind(rows.iter().map(|r| r.aum_millions).collect::<Vec<_>>())
    .execute(&mut **tx)
    .await
    .during("loading symbols")?;
    Ok(())
}

async fn insert_bars(
    tx: &mut Transaction<'static, Postgres>,
    bars: &[DailyBar],
) -> Result<(), StoreError> {
    sqlx::query(
        "insert into ohlcv_daily (symbol, date, open, high, low, close, volume)
         select * from unnest($1::varchar[], $2::date[], $3::float8[], $4::float8[], $5::float8[],
             $6::float8[], $7::int8[])
         on conflict (symbol, date) do nothing",
    )
    .bind(bars.iter().map(|b| b.symbol.clone()).collect::<Vec<_>>())
    .bind(bars.iter().map(|b| b.date).collect::<Vec<_>>())
    .bind(bars.iter().map(|b| b.open).collect::<Vec<_>>())
    .bind(bars.iter().map(|b| b.high).collect::<Vec<_>>())
    .bind(bars.iter().map(|b| b.low).collect::<Vec<_>>())
    .bind(bars.iter().map(|b| b.close).collect::<Vec<_>>())
    .bind(bars.iter().map(|b| b.volume).collect::<Vec<_>>())
    .execute(&mut **tx)
    .await
    .during("loading daily bars")?;
    Ok(())
}

async fn next_run_id(tx: &mut Transaction<'static, Postgres>) -> Result<RunId, StoreError> {
    let id: i64 = sqlx::query_scalar("select nextval('cache_sync_run_id_seq')")
        .fetch_one(&mut **tx)
        .await
        .during("allocating a run id")?;
    Ok(RunId(id))
}

async fn insert_run(
    tx: &mut Transaction<'static, Postgres>,
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
    .bind(run.trigger)
    .bind(&run.families)
    .bind(&run.environment)
    .bind(run.as_of)
    .bind(run.config_hash.to_hex())
    .bind(run.status)
    .bind(run.forced)
    .bind(run.started_at)
    .bind(run.finished_at)
    .bind(run.created as i32)
    .bind(run.updated as i32)
    .bind(run.deleted as i32)
    .bind(run.unchanged as i32)
    .bind(&run.report)
    .bind(&run.error)
    .execute(&mut **tx)
    .await
    .during("appending the run record")?;
    Ok(())
}

struct PgTx {
    tx: Transaction<'static, Postgres>,
}

use crate::store::rows::parse_hash;

#[async_trait]
impl StoreTx for PgTx {
    async fn try_lock_writer(&mut self) -> Result<LockOutcome, StoreError> {
        let got: bool = sqlx::query_scalar("select pg_try_advisory_xact_lock($1)")
            .bind(WRITER_LOCK_KEY)
            .fetch_one(&mut *self.tx)
            .await
            .during("taking the writer lock")?;
        Ok(if got {
            LockOutcome::Acquired
        } else {
            LockOutcome::HeldElsewhere
        })
    }

    async fn latest_price_date(&mut self) -> Result<Option<NaiveDate>, StoreError> {
        sqlx::query_scalar("select max(date) from ohlcv_daily")
            .fetch_one(&mut *self.tx)
            .await
            .during("reading the latest price date")
    }

    async fn load_market(&mut self, as_of: NaiveDate) -> Result<MarketSnapshot, StoreError> {
        // One index probe per active symbol on (symbol, date): the latest close on or before
        // the as-of date, never a scan of the whole price history.
        let rows = sqlx::query(
            "select s.symbol, s.name, s.type, s.active, s.market_cap::int8 as market_cap,
                    s.weighted_shares_outstanding::int8 as shares, s.primary_exchange, s.market,
                    s.sector, s.industry, s.list_date, s.etf_type, s.issuer,
                    s.aum_millions::float8 as aum_millions, c.date as close_date,
                    c.close::float8 as close
             from symbols s
             left join lateral (
                 select o.date, o.close from ohlcv_daily o
                 where o.symbol = s.symbol and o.date <= $1 and s.active is true
                 order by o.date desc limit 1
             ) c on true",
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
        let rows: Vec<(String, String, serde_json::Value)> = sqlx::query_as(
            "select coalesce(name, ''), coalesce(key, ''), value from cache_entries
             where type = 'cache_config' and environment = $1 order by id",
        )
        .bind(environment)
        .fetch_all(&mut *self.tx)
        .await
        .during("reading cache_config rows")?;
        Ok(rows
            .into_iter()
            .map(|(name, key, value)| ConfigRow { name, key, value })
            .collect())
    }

    async fn load_rows(
        &mut self,
        environment: &str,
        scopes: &[Scope],
    ) -> Result<Vec<StoredRow>, StoreError> {
        let types: Vec<&str> = scopes.iter().map(|s| s.entry_type.as_str()).collect();
        let names: Vec<&str> = scopes.iter().map(|s| s.name.as_str()).collect();
        let rows: Vec<(i32, String, String, String, String)> = sqlx::query_as(
            "select id, type, name, key, xmin::text || '/' || ctid::text from cache_entries
             where environment = $1
               and (type, name) in (select * from unnest($2::text[], $3::text[]))
             order by id",
        )
        .bind(environment)
        .bind(types)
        .bind(names)
        .fetch_all(&mut *self.tx)
        .await
        .during("reading owned cache_entries rows")?;
        Ok(rows
            .into_iter()
            .map(|(id, entry_type, name, key, digest)| StoredRow {
                id: i64::from(id),
                key: EntryKey::new(entry_type, name, key),
                digest,
            })
            .collect())
    }

    async fn load_values(&mut self, ids: &[i64]) -> Result<Vec<CurrentEntry>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<i32> = ids.iter().map(|&id| id as i32).collect();
        let rows: Vec<(i32, String, String, String, serde_json::Value)> = sqlx::query_as(
            "select id, type, name, key, value from cache_entries where id = any($1) order by id",
        )
        .bind(ids)
        .fetch_all(&mut *self.tx)
        .await
        .during("reading cache_entries values")?;
        Ok(rows
            .into_iter()
            .map(|(id, entry_type, name, key, value)| CurrentEntry {
                id: i64::from(id),
                key: EntryKey::new(entry_type, name, key),
                value,
            })
            .collect())
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
        let rows: Vec<(String, Vec<String>)> = sqlx::query_as(
            "select i.relname::text, array_agg(a.attname::text order by k.ord)
             from pg_index x
             join pg_class i on i.oid = x.indexrelid
             cross join lateral unnest(x.indkey) with ordinality as k(attnum, ord)
             join pg_attribute a on a.attrelid = x.indrelid and a.attnum = k.attnum
             where x.indrelid = 'cache_entries'::regclass and x.indisunique and not x.indisprimary
             group by i.relname order by i.relname",
        )
        .fetch_all(&mut *self.tx)
        .await
        .during("reading cache_entries unique constraints")?;
        Ok(rows
            .into_iter()
            .map(|(name, columns)| UniqueConstraint { name, columns })
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
        let rows: Vec<(
            String,
            String,
            String,
            i32,
            i64,
            Option<String>,
            Option<String>,
        )> = sqlx::query_as(
            "select entry_type, entry_name, entry_key, version, last_seq, hash, row_digest
             from cache_sync_entry_head where environment = $1",
        )
        .bind(environment)
        .fetch_all(&mut *self.tx)
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

    async fn append_run(
        &mut self,
        run: &NewRun,
        deltas: &[Delta],
        recheck: &[EntryKey],
    ) -> Result<AppendedRun, StoreError> {
        // lz4 compresses the large jsonb values several times faster than the default pglz;
        // only for this transaction, and only where the server was built with it.
        let lz4: bool = sqlx::query_scalar(
            "select exists (select 1 from pg_settings
                            where name = 'default_toast_compression' and 'lz4' = any(enumvals))",
        )
        .fetch_one(&mut *self.tx)
        .await
        .during("checking for lz4")?;
        if lz4 {
            sqlx::query("set local default_toast_compression = 'lz4'")
                .execute(&mut *self.tx)
                .await
                .during("choosing lz4 compression")?;
        }
        let run_id = next_run_id(&mut self.tx).await?;
        let heads = self.entry_heads(&run.environment).await?;
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
        outbox::append(&mut *self.tx, run_id, environment, events).await
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
        audit::append_checkpoint(&mut *self.tx, environment, run_id, entries).await
    }

    async fn commit(self: Box<Self>) -> Result<(), StoreError> {
        self.tx.commit().await.during("committing the run")
    }

    async fn rollback(self: Box<Self>) -> Result<(), StoreError> {
        self.tx.rollback().await.during("rolling back")
    }
}

/// Inserts, updates in place (keeping `id`, setting `updated_at`) and deletes by id.
async fn apply_entries(
    tx: &mut Transaction<'static, Postgres>,
    environment: &str,
    deltas: &[Delta],
) -> Result<(), StoreError> {
    let creates: Vec<&Delta> = deltas.iter().filter(|d| d.op == Op::Create).collect();
    let updates: Vec<&Delta> = deltas.iter().filter(|d| d.op == Op::Update).collect();
    let deletes: Vec<i32> = deltas
        .iter()
        .filter(|d| d.op == Op::Delete)
        .filter_map(|d| d.row_id.map(|id| id as i32))
        .collect();
    if !deletes.is_empty() {
        sqlx::query("delete from cache_entries where id = any($1)")
            .bind(&deletes)
            .execute(&mut **tx)
            .await
            .during("deleting cache_entries rows")?;
    }
    if !updates.is_empty() {
        sqlx::query(
            "update cache_entries c set value = u.value, updated_at = now()
             from unnest($1::int4[], $2::jsonb[]) as u(id, value) where c.id = u.id",
        )
        .bind(
            updates
                .iter()
                .map(|d| d.row_id.unwrap_or_default() as i32)
                .collect::<Vec<_>>(),
        )
        .bind(
            updates
                .iter()
                .map(|d| d.value_after.clone().unwrap_or_default())
                .collect::<Vec<_>>(),
        )
        .execute(&mut **tx)
        .await
        .during("updating cache_entries rows")?;
    }
    if !creates.is_empty() {
        sqlx::query(
            "insert into cache_entries (type, name, key, value, environment, created_at, updated_at)
             select t, n, k, v, $5, now(), now()
             from unnest($1::text[], $2::text[], $3::text[], $4::jsonb[]) as c(t, n, k, v)",
        )
        .bind(creates.iter().map(|d| d.key.entry_type.as_str()).collect::<Vec<_>>())
        .bind(creates.iter().map(|d| d.key.name.as_str()).collect::<Vec<_>>())
        .bind(creates.iter().map(|d| d.key.key.as_str()).collect::<Vec<_>>())
        .bind(creates.iter().map(|d| d.value_after.clone().unwrap_or_default()).collect::<Vec<_>>())
        .bind(environment)
        .execute(&mut **tx)
        .await
        .during("inserting cache_entries rows")?;
    }
    Ok(())
}

/// Appends one event per delta, in delta order, and moves each entry's head.
async fn append_events(
    tx: &mut Transaction<'static, Postgres>,
    run_id: RunId,
    environment: &str,
    deltas: &[Delta],
    heads: &HashMap<EntryKey, EntryHead>,
) -> Result<Vec<i64>, StoreError> {
    if deltas.is_empty() {
        return Ok(Vec::new());
    }
    let mut seqs: Vec<i64> = sqlx::query_scalar(
        "select nextval(pg_get_serial_sequence('cache_sync_event', 'seq')) from generate_series(1, $1)",
    )
    .bind(deltas.len() as i32)
    .fetch_all(&mut **tx)
    .await
    .during("allocating event sequence numbers")?;
    seqs.sort_unstable();
    let mut versions = HashMap::new();
    let version_of = |d: &Delta, versions: &mut HashMap<EntryKey, i32>| {
        let next = versions
            .get(&d.key)
            .copied()
            .or_else(|| heads.get(&d.key).map(|h| h.version))
            .unwrap_or(0)
            + 1;
        versions.insert(d.key.clone(), next);
        next
    };
    let version: Vec<i32> = deltas
        .iter()
        .map(|d| version_of(d, &mut versions))
        .collect();
    let changes: Vec<serde_json::Value> = deltas
        .iter()
        .map(|d| serde_json::to_value(&d.change).map_err(|e| StoreError::Corrupt(e.to_string())))
        .collect::<Result<_, _>>()?;
    sqlx::query(
        "insert into cache_sync_event (seq, run_id, environment, entry_type, entry_name, entry_key,
             version, op, family, hash_before, hash_after, change)
         select s, $2, $3, t, n, k, v, o, f, hb, ha, c
         from unnest($1::int8[], $4::text[], $5::text[], $6::text[], $7::int4[], $8::text[],
             $9::text[], $10::text[], $11::text[], $12::jsonb[]) as e(s, t, n, k, v, o, f, hb, ha, c)",
    )
    .bind(&seqs)
    .bind(run_id.0)
    .bind(environment)
    .bind(deltas.iter().map(|d| d.key.entry_type.as_str()).collect::<Vec<_>>())
    .bind(deltas.iter().map(|d| d.key.name.as_str()).collect::<Vec<_>>())
    .bind(deltas.iter().map(|d| d.key.key.as_str()).collect::<Vec<_>>())
    .bind(&version)
    .bind(deltas.iter().map(|d| d.op.past_tense()).collect::<Vec<_>>())
    .bind(deltas.iter().map(|d| d.family.as_str()).collect::<Vec<_>>())
    .bind(deltas.iter().map(|d| d.hash_before.map(|h| h.to_hex())).collect::<Vec<_>>())
    .bind(deltas.iter().map(|d| d.hash_after.map(|h| h.to_hex())).collect::<Vec<_>>())
    .bind(&changes)
    .execute(&mut **tx)
    .await
    .during("appending audit events")?;
    // The last delta of an entry in this run decides its head; deletes of duplicate rows leave
    // the entry as it was.
    let moves: Vec<usize> = (0..deltas.len())
        .filter(|&i| !deltas[i].change.duplicate_row)
        .collect();
    let pick =
        |f: &dyn Fn(usize) -> Option<String>| moves.iter().map(|&i| f(i)).collect::<Vec<_>>();
    sqlx::query(
        "insert into cache_sync_entry_head (environment, entry_type, entry_name, entry_key, version, last_seq, hash)
         select distinct on (t, n, k) $1, t, n, k, v, s, ha
         from unnest($2::text[], $3::text[], $4::text[], $5::int4[], $6::int8[], $7::text[]) as h(t, n, k, v, s, ha)
         order by t, n, k, s desc
         on conflict (environment, entry_type, entry_name, entry_key)
         do update set version = excluded.version, last_seq = excluded.last_seq, hash = excluded.hash",
    )
    .bind(environment)
    .bind(pick(&|i| Some(deltas[i].key.entry_type.clone())))
    .bind(pick(&|i| Some(deltas[i].key.name.clone())))
    .bind(pick(&|i| Some(deltas[i].key.key.clone())))
    .bind(moves.iter().map(|&i| version[i]).collect::<Vec<_>>())
    .bind(moves.iter().map(|&i| seqs[i]).collect::<Vec<_>>())
    .bind(pick(&|i| deltas[i].hash_after.map(|h| h.to_hex())))
    .execute(&mut **tx)
    .await
    .during("moving entry heads")?;
    let written: Vec<&EntryKey> = moves.iter().map(|&i| &deltas[i].key).collect();
    record_row_versions(tx, environment, &written).await?;
    Ok(seqs)
}

/// Records the current row version of each entry in its head, so the next run can skip
/// transferring and re-hashing rows nobody touched since.
async fn record_row_versions(
    tx: &mut Transaction<'static, Postgres>,
    environment: &str,
    keys: &[&EntryKey],
) -> Result<(), StoreError> {
    if keys.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "update cache_sync_entry_head h set row_digest = c.xmin::text || '/' || c.ctid::text
         from cache_entries c
         where h.environment = $1 and c.environment = h.environment and c.type = h.entry_type
           and c.name = h.entry_name and c.key = h.entry_key
           and (h.entry_type, h.entry_name, h.entry_key) in
               (select * from unnest($2::text[], $3::text[], $4::text[]))",
    )
    .bind(environment)
    .bind(
        keys.iter()
            .map(|k| k.entry_type.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(keys.iter().map(|k| k.name.as_str()).collect::<Vec<_>>())
    .bind(keys.iter().map(|k| k.key.as_str()).collect::<Vec<_>>())
    .execute(&mut **tx)
    .await
    .during("recording row versions")?;
    Ok(())
}
