//! `cache-sync bench`: measures the job on the synthetic market in scratch databases on the
//! server DATABASE_URL points at (created from a template, dropped afterwards). A benchmark,
//! not a test: it reports figures and asserts nothing.

pub mod load;

use crate::config::BenchArgs;
use crate::devtools::loader::{load_day, load_through_day};
use crate::devtools::market::{FixtureParams, SyntheticMarket};
use crate::domain::types::{EntryKey, RunId};
use crate::history;
use crate::job::{self, JobConfig, PlanRequest, RunRequest};
use crate::publish::Publisher;
use crate::report::RunReport;
use crate::store::{LogReader, QueryContext, Schema, SqlStore, StoreError, Trigger};
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

/// Replay over a long simulated history.
#[derive(Debug, Clone, Serialize)]
pub struct HistoryFigures {
    pub nightly_runs: usize,
    pub checkpoint_every: i64,
    /// One entry (`stock_universe/market_cap/large_cap`) rebuilt at sampled runs.
    pub one_entry: Timing,
    /// The whole owned catalog rebuilt at sampled runs.
    pub whole_catalog: Timing,
    /// Events, runs and checkpoints on disk after the simulation.
    pub log_bytes: i64,
    pub checkpoint_bytes: i64,
    pub simulation_seconds: f64,
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
        if let Some(h) = &self.history {
            let _ = writeln!(
                out,
                "history: {} nightly runs simulated in {:.0} s (checkpoint every {} runs); log {} B + checkpoints {} B",
                h.nightly_runs, h.simulation_seconds, h.checkpoint_every, h.log_bytes, h.checkpoint_bytes
            );
            for (name, t) in [
                ("replay one entry at a past run", &h.one_entry),
                ("replay the whole catalog at a past run", &h.whole_catalog),
            ] {
                let _ = writeln!(
                    out,
                    "{name:<40} median {:>8.1} ms  (min {:.1}, max {:.1}, n={})",
                    t.median_ms, t.min_ms, t.max_ms, t.samples
                );
            }
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
    async fn create(&self, name: &str, template: Option<&str>) -> Result<SqlStore, StoreError> {
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
        Ok(SqlStore::from_pg_pool(pool))
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

/// The pool of a scratch database (always PostgreSQL: the benchmark needs a server).
fn pg(store: &SqlStore) -> &sqlx::PgPool {
    store
        .pg_pool()
        .expect("bench databases are created on a PostgreSQL server")
}

async fn wal_lsn(store: &SqlStore) -> Result<String, StoreError> {
    sqlx::query_scalar("select pg_current_wal_insert_lsn()::text")
        .fetch_one(pg(store))
        .await
        .during("reading the WAL position")
}

async fn wal_since(store: &SqlStore, lsn: &str) -> Result<i64, StoreError> {
    let bytes: f64 = sqlx::query_scalar(
        "select pg_wal_lsn_diff(pg_current_wal_insert_lsn(), $1::pg_lsn)::float8",
    )
    .bind(lsn)
    .fetch_one(pg(store))
    .await
    .during("measuring WAL")?;
    Ok(bytes as i64)
}

async fn audit_bytes(store: &SqlStore, run_id: i64) -> Result<i64, StoreError> {
    sqlx::query_scalar(
        "select coalesce((select sum(pg_column_size(e.*)) from cache_sync_event e where run_id = $1), 0)::int8
              + coalesce((select sum(pg_column_size(r.*)) from cache_sync_run r where run_id = $1), 0)::int8",
    )
    .bind(run_id)
    .fetch_one(pg(store))
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
) -> Result<BenchReport, StoreError> {
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
    let mut report = result?;
    if args.history_runs > 0 {
        let name = format!("cache_sync_bench_{tag}_history");
        let history = measure_history(&server, args, &name).await;
        server.drop_db(&name).await?;
        report.history = Some(history?);
    }
    if let (Some(publisher), true) = (publisher, args.events > 0) {
        let name = format!("cache_sync_bench_{tag}_events");
        let events = measure_events(&server, args, &name, publisher).await;
        server.drop_db(&name).await?;
        report.events = Some(events?);
    }
    if args.api_clients > 0 {
        let name = format!("cache_sync_bench_{tag}_api");
        let store = server.create(&name, None).await?;
        store.migrate().await?;
        let market = SyntheticMarket::generate(&FixtureParams {
            stocks: args.stocks,
            etfs: args.etfs,
            days: 2,
            ..FixtureParams::default()
        });
        load_through_day(&store, &market, 2).await?;
        let figures = load::run(store.clone(), args.api_clients, args.load_seconds)
            .await
            .map_err(|e| StoreError::Corrupt(format!("load test failed: {e}")));
        store.close().await;
        server.drop_db(&name).await?;
        report.api_load = Some(figures?);
    }
    Ok(report)
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

async fn measure_events(
    server: &Server,
    args: &BenchArgs,
    name: &str,
    publisher: &Publisher,
) -> Result<EventFigures, StoreError> {
    use futures_util::StreamExt as _;
    let fail =
        |e: crate::publish::PublishError| StoreError::Corrupt(format!("publishing failed: {e}"));
    let store = server.create(name, None).await?;
    store.migrate().await?;
    // Throughput: a backlog of synthetic universe events, as after a long Redis outage.
    sqlx::query(
        "insert into cache_sync_outbox (run_id, environment, seq, channel, also_channel, event, payload)
         select 0, 'BENCH', g, 'bench:universe:updated', 'bench:universe:stock_universe:market_cap:large_cap',
                'universe_updated',
                jsonb_build_object('universe', 'market_cap:large_cap', 'type', 'stock_universe', 'name', 'market_cap',
                                   'key', 'large_cap', 'action', 'updated', 'added', jsonb_build_array('AAA'),
                                   'removed', jsonb_build_array('BBB'), 'count', 612, 'seq', g, 'run_id', 0)
         from generate_series(1, $1) g",
    )
    .bind(args.events as i64)
    .execute(pg(&store))
    .await
    .during("queueing synthetic events")?;
    let started = Instant::now();
    let relayed = publisher.relay(&store).await.map_err(fail)?;
    let seconds = started.elapsed().as_secs_f64();

    // Latency: a subscriber on every channel, nightly runs, relay right after each commit.
    let market = SyntheticMarket::generate(&FixtureParams {
        stocks: args.stocks,
        etfs: args.etfs,
        days: 6,
        ..FixtureParams::default()
    });
    load_through_day(&store, &market, 1).await?;
    let client = redis::Client::open(publisher.redis_url()).map_err(|e| fail(e.into()))?;
    let mut pubsub = client
        .get_async_pubsub()
        .await
        .map_err(|e| fail(e.into()))?;
    pubsub
        .subscribe(publisher.channels().universe_updated())
        .await
        .map_err(|e| fail(e.into()))?;
    let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel::<Instant>();
    let listener = tokio::spawn(async move {
        let mut messages = pubsub.into_on_message();
        while messages.next().await.is_some() {
            if sender.send(Instant::now()).is_err() {
                break;
            }
        }
    });
    let job_config = JobConfig {
        channels: publisher.channels().clone(),
        ..JobConfig::default()
    };
    let mut latencies = Vec::new();
    for day in 1..=6 {
        if day > 1 {
            load_day(&store, &market, day).await?;
        }
        let report = job::run(&store, &job_config, &request())
            .await
            .map_err(|e| StoreError::Corrupt(format!("bench run failed: {e}")))?;
        let committed = Instant::now();
        publisher.relay(&store).await.map_err(fail)?;
        let expected = report.created + report.updated + report.deleted;
        for _ in 0..expected {
            match tokio::time::timeout(std::time::Duration::from_secs(10), receiver.recv()).await {
                Ok(Some(at)) => latencies.push(at.duration_since(committed).as_secs_f64() * 1e3),
                _ => break,
            }
        }
    }
    listener.abort();
    store.close().await;
    // The synthetic backlog went into the change stream; leave nothing behind.
    if let Ok(mut con) = client.get_multiplexed_async_connection().await {
        let _: Result<i64, _> = redis::cmd("DEL")
            .arg(publisher.channels().stream())
            .query_async(&mut con)
            .await;
    }
    latencies.sort_by(|a, b| a.total_cmp(b));
    let pick = |q: f64| {
        latencies
            .get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0.0)
    };
    Ok(EventFigures {
        events_relayed: relayed.published,
        events_per_second: relayed.published as f64 / seconds,
        latency_median_ms: pick(0.5),
        latency_p99_ms: pick(0.99),
        latency_samples: latencies.len(),
    })
}

async fn measure_history(
    server: &Server,
    args: &BenchArgs,
    name: &str,
) -> Result<HistoryFigures, StoreError> {
    let nights = args.history_runs;
    let market = SyntheticMarket::generate(&FixtureParams {
        stocks: args.stocks,
        etfs: args.etfs,
        days: nights + 1,
        ..FixtureParams::default()
    });
    let store = server.create(name, None).await?;
    store.migrate().await?;
    let job_config = JobConfig::default();
    let started = Instant::now();
    load_through_day(&store, &market, 1).await?;
    for day in 1..=nights + 1 {
        if day > 1 {
            load_day(&store, &market, day).await?;
        }
        job::run(&store, &job_config, &request())
            .await
            .map_err(|e| StoreError::Corrupt(format!("bench run failed: {e}")))?;
    }
    let simulation_seconds = started.elapsed().as_secs_f64();
    let runs = store.read_runs("DEFAULT", 100_000, 0).await?;
    let ids: Vec<RunId> = runs.iter().map(|r| r.run_id).rev().collect();
    // Sample runs across the whole history, including the last one before each checkpoint (the
    // longest fold).
    let step = (ids.len() / 25).max(1);
    let samples: Vec<RunId> = ids
        .iter()
        .copied()
        .step_by(step)
        .chain(ids.last().copied())
        .collect();
    let key = EntryKey::new("stock_universe", "market_cap", "large_cap");
    let (mut one, mut whole) = (Vec::new(), Vec::new());
    for run in samples {
        let t = Instant::now();
        history::replay_state(&store, "DEFAULT", run, Some(&key))
            .await
            .map_err(|e| StoreError::Corrupt(format!("replay failed: {e}")))?;
        one.push(t.elapsed().as_secs_f64() * 1e3);
        let t = Instant::now();
        history::replay_state(&store, "DEFAULT", run, None)
            .await
            .map_err(|e| StoreError::Corrupt(format!("replay failed: {e}")))?;
        whole.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let (log_bytes, checkpoint_bytes): (i64, i64) = sqlx::query_as(
        "select pg_total_relation_size('cache_sync_event') + pg_total_relation_size('cache_sync_run'),
                pg_total_relation_size('cache_sync_checkpoint')",
    )
    .fetch_one(pg(&store))
    .await
    .during("measuring the log")?;
    store.close().await;
    Ok(HistoryFigures {
        nightly_runs: nights,
        checkpoint_every: job_config.checkpoint_every,
        one_entry: Timing::of(one),
        whole_catalog: Timing::of(whole),
        log_bytes,
        checkpoint_bytes,
        simulation_seconds,
    })
}
