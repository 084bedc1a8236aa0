//! `cache-sync bench`: measures the job on the synthetic market in scratch databases on the
//! server DATABASE_URL points at (created from a template, dropped afterwards). A benchmark,
//! not a test: it reports figures and asserts nothing.

use crate::config::BenchArgs;
use crate::fixtures::{FixtureParams, SyntheticMarket};
use crate::fixtures_loader::{load_day, load_through_day};
use crate::job::{self, JobConfig, PlanRequest, RunRequest};
use crate::report::RunReport;
use crate::store::postgres::PgStore;
use crate::store::{QueryContext, Store, StoreError, Trigger};
use chrono::Utc;
use serde::Serialize;
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, PgConnection};
use std::fmt::Write as _;
use std::str::FromStr;
use std::time::Instant;

/// Median and spread of one measured step, in milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Timing {
    pub median_ms: f64,
    pub min_ms: f64,
    pub max_ms: f64,
    pub samples: usize,
}

impl Timing {
    fn of(mut samples: Vec<f64>) -> Self {
        samples.sort_by(|a, b| a.total_cmp(b));
        Self {
            median_ms: samples[samples.len() / 2],
            min_ms: samples[0],
            max_ms: samples[samples.len() - 1],
            samples: samples.len(),
        }
    }
}

/// One measured run scenario.
#[derive(Debug, Clone, Serialize)]
pub struct RunFigures {
    pub wall: Timing,
    pub entries_written: usize,
    pub wal_bytes: i64,
    pub audit_bytes: i64,
}

/// Everything `bench` measures.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub stocks: usize,
    pub etfs: usize,
    pub load_market: Timing,
    pub compute_catalog: Timing,
    pub plan_empty_table: Timing,
    pub full_build: RunFigures,
    pub nightly: RunFigures,
    pub no_op: RunFigures,
}

impl BenchReport {
    /// The table printed for operators and copied into the README.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "Synthetic market: {} stocks, {} ETFs",
            self.stocks, self.etfs
        );
        for (name, t) in [
            ("load market (symbols + latest closes)", &self.load_market),
            ("compute catalog", &self.compute_catalog),
            (
                "plan against an empty table (total)",
                &self.plan_empty_table,
            ),
        ] {
            let _ = writeln!(
                out,
                "{name:<40} median {:>8.1} ms  (min {:.1}, max {:.1}, n={})",
                t.median_ms, t.min_ms, t.max_ms, t.samples
            );
        }
        for (name, r) in [
            ("run: full build on an empty table", &self.full_build),
            ("run: nightly after next day's prices", &self.nightly),
            ("run: no-op re-run", &self.no_op),
        ] {
            let _ = writeln!(
                out,
                "{name:<40} median {:>8.1} ms  rows written {:>3}  WAL {:>9} B  audit {:>9} B",
                r.wall.median_ms, r.entries_written, r.wal_bytes, r.audit_bytes
            );
        }
        out
    }
}

struct Server {
    options: PgConnectOptions,
}

impl Server {
    fn with_database(&self, name: &str) -> PgConnectOptions {
        self.options.clone().database(name)
    }

    async fn admin(&self) -> Result<PgConnection, StoreError> {
        self.with_database("postgres")
            .connect()
            .await
            .during("connecting to the postgres database")
    }

    // Database names below are generated here from the process id, never from input.
    async fn create(&self, name: &str, template: Option<&str>) -> Result<PgStore, StoreError> {
        let mut admin = self.admin().await?;
        let sql = match template {
            Some(t) => format!("create database \"{name}\" template \"{t}\""),
            None => format!("create database \"{name}\""),
        };
        if let Some(template) = template {
            // A copy needs the template to itself: end any session still on it (a pooled
            // connection being torn down, autovacuum).
            sqlx::query("select pg_terminate_backend(pid) from pg_stat_activity where datname = $1 and pid <> pg_backend_pid()")
                .bind(template)
                .execute(&mut admin)
                .await
                .during("freeing the template database")?;
        }
        sqlx::query(&sql)
            .execute(&mut admin)
            .await
            .during("creating a scratch database")?;
        admin.close().await.during("closing")?;
        let pool = sqlx::PgPool::connect_with(self.with_database(name))
            .await
            .during("connecting to a scratch database")?;
        Ok(PgStore::from_pool(pool))
    }

    async fn drop_db(&self, name: &str) -> Result<(), StoreError> {
        let mut admin = self.admin().await?;
        sqlx::query(&format!("drop database if exists \"{name}\" with (force)"))
            .execute(&mut admin)
            .await
            .during("dropping a scratch database")?;
        Ok(())
    }
}

async fn wal_lsn(store: &PgStore) -> Result<String, StoreError> {
    sqlx::query_scalar("select pg_current_wal_insert_lsn()::text")
        .fetch_one(store.pool())
        .await
        .during("reading the WAL position")
}

async fn wal_since(store: &PgStore, lsn: &str) -> Result<i64, StoreError> {
    let bytes: f64 = sqlx::query_scalar(
        "select pg_wal_lsn_diff(pg_current_wal_insert_lsn(), $1::pg_lsn)::float8",
    )
    .bind(lsn)
    .fetch_one(store.pool())
    .await
    .during("measuring WAL")?;
    Ok(bytes as i64)
}

async fn audit_bytes(store: &PgStore, run_id: i64) -> Result<i64, StoreError> {
    sqlx::query_scalar(
        "select coalesce((select sum(pg_column_size(e.*)) from cache_sync_event e where run_id = $1), 0)::int8
              + coalesce((select sum(pg_column_size(r.*)) from cache_sync_run r where run_id = $1), 0)::int8",
    )
    .bind(run_id)
    .fetch_one(store.pool())
    .await
    .during("measuring audit bytes")
}

fn request() -> RunRequest {
    RunRequest {
        plan: PlanRequest::default(),
        force: true,
        trigger: Trigger::Test,
        now: Utc::now(),
        pause_before_commit: false,
    }
}

async fn measured_run(store: &PgStore) -> Result<(f64, RunReport, i64, i64), StoreError> {
    let lsn = wal_lsn(store).await?;
    let started = Instant::now();
    let report = job::run(store, &JobConfig::default(), &request())
        .await
        .map_err(|e| StoreError::Corrupt(format!("bench run failed: {e}")))?;
    let ms = started.elapsed().as_secs_f64() * 1e3;
    let wal = wal_since(store, &lsn).await?;
    let audit = audit_bytes(store, report.run_id.map_or(0, |r| r.0)).await?;
    Ok((ms, report, wal, audit))
}

fn figures(samples: Vec<(f64, RunReport, i64, i64)>) -> RunFigures {
    let (_, report, wal, audit) = samples[samples.len() / 2].clone();
    RunFigures {
        wall: Timing::of(samples.iter().map(|s| s.0).collect()),
        entries_written: report.created + report.updated + report.deleted,
        wal_bytes: wal,
        audit_bytes: audit,
    }
}

/// Runs the benchmark.
///
/// # Errors
/// Store errors (the server must allow creating databases).
pub async fn run(url: &str, args: &BenchArgs) -> Result<BenchReport, StoreError> {
    let options = PgConnectOptions::from_str(url).map_err(|source| StoreError::Connect {
        target: crate::store::postgres::redact_url(url),
        source,
    })?;
    let server = Server { options };
    let tag = std::process::id();
    let day1 = format!("cache_sync_bench_{tag}_day1");
    let day2 = format!("cache_sync_bench_{tag}_day2");
    let result = measure(&server, args, &day1, &day2).await;
    server.drop_db(&day1).await?;
    server.drop_db(&day2).await?;
    result
}

async fn measure(
    server: &Server,
    args: &BenchArgs,
    day1: &str,
    day2: &str,
) -> Result<BenchReport, StoreError> {
    let repeat = args.repeat.max(1);
    let market = SyntheticMarket::generate(&FixtureParams {
        stocks: args.stocks,
        etfs: args.etfs,
        days: 2,
        ..FixtureParams::default()
    });

    // Template at day 1: schema and market, empty cache_entries.
    let base = server.create(day1, None).await?;
    base.migrate().await?;
    load_through_day(&base, &market, 1).await?;
    sqlx::query("vacuum analyze")
        .execute(base.pool())
        .await
        .during("analyzing")?;

    let (mut load, mut compute, mut plan) = (Vec::new(), Vec::new(), Vec::new());
    let job_config = JobConfig::default();
    // One warm-up, then the measured repetitions.
    for i in 0..=repeat {
        let started = Instant::now();
        let report = job::plan(
            &base,
            &job_config,
            &PlanRequest::default(),
            Utc::now().date_naive(),
        )
        .await
        .map_err(|e| StoreError::Corrupt(format!("bench plan failed: {e}")))?;
        if i > 0 {
            plan.push(started.elapsed().as_secs_f64() * 1e3);
            load.push(report.timings.load_market_ms);
            compute.push(report.timings.compute_ms);
        }
    }
    base.pool().close().await;

    let mut full = Vec::new();
    for i in 0..repeat.min(5) {
        let name = format!("{day1}_r{i}");
        let store = server.create(&name, Some(day1)).await?;
        full.push(measured_run(&store).await?);
        store.pool().close().await;
        server.drop_db(&name).await?;
    }

    // Template at day 2: built on day 1, then day 2's prices and events loaded.
    let second = server.create(day2, Some(day1)).await?;
    job::run(&second, &job_config, &request())
        .await
        .map_err(|e| StoreError::Corrupt(format!("bench run failed: {e}")))?;
    load_day(&second, &market, 2).await?;
    sqlx::query("vacuum analyze")
        .execute(second.pool())
        .await
        .during("analyzing")?;
    second.pool().close().await;

    let (mut nightly, mut no_op) = (Vec::new(), Vec::new());
    for i in 0..repeat.min(5) {
        let name = format!("{day2}_r{i}");
        let store = server.create(&name, Some(day2)).await?;
        nightly.push(measured_run(&store).await?);
        no_op.push(measured_run(&store).await?);
        store.pool().close().await;
        server.drop_db(&name).await?;
    }

    Ok(BenchReport {
        stocks: args.stocks,
        etfs: args.etfs,
        load_market: Timing::of(load),
        compute_catalog: Timing::of(compute),
        plan_empty_table: Timing::of(plan),
        full_build: figures(full),
        nightly: figures(nightly),
        no_op: figures(no_op),
    })
}
