//! `cache-sync bench`: measures the job on the synthetic market in scratch databases on the
//! server DATABASE_URL points at (created from a template, dropped afterwards). A benchmark,
//! not a test: it reports figures and asserts nothing.

mod events;
mod history;
pub use history::{CompactionFigures, HistoryFigures, LogFigures};
pub mod load;
pub mod pipeline;
pub mod process;
mod scratch;

use crate::config::BenchArgs;
use crate::devtools::loader::{load_day, load_through_day};
use crate::devtools::market::{FixtureParams, SyntheticMarket};
use crate::job::{self, JobConfig, PlanRequest, RunRequest};
use crate::publish::Publisher;
use crate::report::RunReport;
use crate::store::{QueryContext, Schema, SqlStore, StoreError, Trigger};
use chrono::Utc;
use scratch::{audit_bytes, pg, wal_lsn, wal_since, ScratchServer};
use serde::Serialize;
use sqlx::postgres::PgConnectOptions;
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
    /// One line of the printed table: the step's name, median, spread and sample count.
    fn write_line(&self, out: &mut String, name: &str) {
        let _ = writeln!(
            out,
            "{name:<40} median {:>8.1} ms  (min {:.1}, max {:.1}, n={})",
            self.median_ms, self.min_ms, self.max_ms, self.samples
        );
    }

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

/// What `bench` measured: the whole-process figures (`--processes`) or the in-process breakdown.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Bench {
    InProcess(Box<BenchReport>),
    Processes(Vec<process::StoreFigures>),
    Pipeline(pipeline::PipelineFigures),
}

impl Bench {
    /// The table printed for operators and copied into the README.
    pub fn to_text(&self) -> String {
        match self {
            Self::InProcess(report) => report.to_text(),
            Self::Processes(stores) => stores.iter().map(process::StoreFigures::to_text).collect(),
            Self::Pipeline(figures) => figures.to_text(),
        }
    }
}

/// Everything the in-process `bench` measures.
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
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history: Option<HistoryFigures>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events: Option<EventFigures>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_load: Option<load::LoadFigures>,
}

/// Publishing to Redis on loopback.
#[derive(Debug, Clone, Serialize)]
pub struct EventFigures {
    pub events_relayed: usize,
    pub events_per_second: f64,
    /// From a run's commit to a subscriber's receipt of each of its universe events.
    pub latency_median_ms: f64,
    pub latency_p99_ms: f64,
    pub latency_samples: usize,
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
            t.write_line(&mut out, name);
        }
        if let Some(h) = &self.history {
            out.push_str(&h.to_text());
        }
        if let Some(l) = &self.api_load {
            let _ = writeln!(
                out,
                "api load: {} clients for {:.0} s, {} requests, {} errors, {} runs completed meanwhile; p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
                l.clients, l.seconds, l.requests, l.errors, l.runs_completed, l.p50_ms, l.p99_ms, l.max_ms
            );
        }
        if let Some(e) = &self.events {
            let _ = writeln!(
                out,
                "events: {} relayed at {:.0} events/s; commit to subscriber median {:.1} ms, p99 {:.1} ms (n={})",
                e.events_relayed, e.events_per_second, e.latency_median_ms, e.latency_p99_ms, e.latency_samples
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

/// The synthetic market of the benchmark's size over `days` days.
fn market(args: &BenchArgs, days: usize) -> SyntheticMarket {
    SyntheticMarket::generate(&FixtureParams {
        stocks: args.stocks,
        etfs: args.etfs,
        days,
        ..FixtureParams::default()
    })
}

/// A forced test run now (benchmarks measure, they do not guard).
fn request() -> RunRequest {
    RunRequest {
        plan: PlanRequest::default(),
        force: true,
        trigger: Trigger::Test,
        now: Utc::now(),
        pause_before_commit: false,
        job_id: "bench".to_owned(),
        progress: None,
        expect_plan: None,
    }
}

async fn measured_run(store: &SqlStore) -> Result<(f64, RunReport, i64, i64), StoreError> {
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
pub async fn run(
    url: &str,
    args: &BenchArgs,
    publisher: Option<&Publisher>,
) -> Result<Bench, StoreError> {
    let options = PgConnectOptions::from_str(url).map_err(|source| StoreError::Connect {
        target: crate::store::postgres::redact_url(url),
        source,
    })?;
    let server = ScratchServer { options };
    let tag = std::process::id();
    if args.processes {
        let figures = measure_processes(&server, url, args, tag).await?;
        return Ok(Bench::Processes(figures));
    }
    if args.pipeline {
        let redis_url = publisher
            .map(Publisher::url)
            .ok_or_else(|| StoreError::Corrupt("bench --pipeline needs REDIS_URL".to_owned()))?;
        let market = process::ProcessMarket {
            stocks: args.stocks,
            etfs: args.etfs,
            history_days: args.history_days,
        };
        let name = format!("cache_sync_bench_{tag}_pipeline");
        let figures =
            pipeline::measure_pipeline(&server, url, redis_url, market, args.repeat, &name).await;
        server.drop_db(&name).await?;
        return Ok(Bench::Pipeline(figures?));
    }
    let day1 = format!("cache_sync_bench_{tag}_day1");
    let day2 = format!("cache_sync_bench_{tag}_day2");
    let result = measure(&server, args, &day1, &day2).await;
    server.drop_db(&day1).await?;
    server.drop_db(&day2).await?;
    let mut report = result?;
    if args.history_runs > 0 {
        let name = format!("cache_sync_bench_{tag}_history");
        let history = history::measure_history(&server, url, args, &name).await;
        server.drop_db(&name).await?;
        report.history = Some(history?);
    }
    if let (Some(publisher), true) = (publisher, args.events > 0) {
        let name = format!("cache_sync_bench_{tag}_events");
        let events = events::measure_events(&server, args, &name, publisher).await;
        server.drop_db(&name).await?;
        report.events = Some(events?);
    }
    if args.api_clients > 0 {
        let name = format!("cache_sync_bench_{tag}_api");
        let store = server.create(&name, None).await?;
        store.migrate().await?;
        let market = market(args, 2);
        load_through_day(&store, &market, 2).await?;
        let figures = load::run(store.clone(), args.api_clients, args.load_seconds)
            .await
            .map_err(|e| StoreError::Corrupt(format!("load test failed: {e}")));
        store.close().await;
        server.drop_db(&name).await?;
        report.api_load = Some(figures?);
    }
    Ok(Bench::InProcess(Box::new(report)))
}

async fn measure(
    server: &ScratchServer,
    args: &BenchArgs,
    day1: &str,
    day2: &str,
) -> Result<BenchReport, StoreError> {
    let repeat = args.repeat.max(1);
    let market = market(args, 2);

    // Template at day 1: schema and market, empty cache_entries.
    let base = server.create(day1, None).await?;
    base.migrate().await?;
    load_through_day(&base, &market, 1).await?;
    sqlx::query("vacuum analyze")
        .execute(pg(&base))
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
    base.close().await;

    let mut full = Vec::new();
    for i in 0..repeat.min(5) {
        let name = format!("{day1}_r{i}");
        let store = server.create(&name, Some(day1)).await?;
        full.push(measured_run(&store).await?);
        store.close().await;
        server.drop_db(&name).await?;
    }

    // Template at day 2: built on day 1, then day 2's prices and events loaded.
    let second = server.create(day2, Some(day1)).await?;
    job::run(&second, &job_config, &request())
        .await
        .map_err(|e| StoreError::Corrupt(format!("bench run failed: {e}")))?;
    load_day(&second, &market, 2).await?;
    sqlx::query("vacuum analyze")
        .execute(pg(&second))
        .await
        .during("analyzing")?;
    second.close().await;

    let (mut nightly, mut no_op) = (Vec::new(), Vec::new());
    for i in 0..repeat.min(5) {
        let name = format!("{day2}_r{i}");
        let store = server.create(&name, Some(day2)).await?;
        nightly.push(measured_run(&store).await?);
        no_op.push(measured_run(&store).await?);
        store.close().await;
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
        history: None,
        events: None,
        api_load: None,
    })
}

/// `--processes`: PostgreSQL, then SQLite in a temporary folder (removed afterwards).
async fn measure_processes(
    server: &ScratchServer,
    url: &str,
    args: &BenchArgs,
    tag: u32,
) -> Result<Vec<process::StoreFigures>, StoreError> {
    let market = process::ProcessMarket {
        stocks: args.stocks,
        etfs: args.etfs,
        history_days: args.history_days,
    };
    let repeat = args.repeat.max(1);
    let mut processes = vec![
        process::measure_postgres(
            server,
            url,
            market,
            repeat,
            &format!("cache_sync_bench_{tag}_proc"),
        )
        .await?,
    ];
    if !args.no_sqlite {
        let folder = std::env::temp_dir().join(format!("cache-sync-bench-{tag}"));
        let sqlite = process::measure_sqlite(&folder, market, repeat).await;
        let _ = std::fs::remove_dir_all(&folder);
        processes.push(sqlite?);
    }
    Ok(processes)
}
