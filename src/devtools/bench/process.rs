//! `bench --processes`: the headline figures. Every measured step is the `cache-sync` binary
//! itself, spawned as a child and timed from spawn to exit, as the pipeline runs it: process
//! start, connecting, the implicit migration check, the run, and exit. The child's peak RSS is
//! its own, as GNU time reads it (see `GNU_TIME`), not this process's.
//!
//! Each sample runs on its own copy of a template database (PostgreSQL: `create database …
//! template`; SQLite: a copy of the file), so every full build starts from an empty
//! `cache_entries` and every nightly run from the same day-1 state.

use super::scratch::{audit_bytes, pg, wal_lsn, wal_since, ScratchServer};
use super::Timing;
use crate::devtools::loader::{load_day, load_history, load_through_day};
use crate::devtools::market::{FixtureParams, SyntheticMarket};
use crate::store::dialect::Dialect;
use crate::store::{QueryContext, Schema, SqlStore, StoreError};
use serde::Serialize;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

/// The market a process benchmark runs on.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct ProcessMarket {
    pub stocks: usize,
    pub etfs: usize,
    /// Older daily bars every symbol has before day 1.
    pub history_days: usize,
}

/// One child process's figures, as the kernel and the database saw them.
#[derive(Debug, Clone, Copy)]
struct ChildSample {
    wall_ms: f64,
    peak_rss_kb: i64,
    rows_written: i64,
    wal_bytes: Option<i64>,
    audit_bytes: i64,
}

/// A measured step over several children: medians.
#[derive(Debug, Clone, Serialize)]
pub struct ChildFigures {
    pub wall: Timing,
    pub peak_rss_mb: f64,
    pub rows_written: i64,
    /// PostgreSQL only: the server's WAL position moved by this much during the child.
    pub wal_bytes: Option<i64>,
    pub audit_bytes: i64,
}

/// The three runs of a night, on one store.
#[derive(Debug, Clone, Serialize)]
pub struct StoreFigures {
    pub store: &'static str,
    pub market: ProcessMarket,
    pub bars: i64,
    pub full_build: ChildFigures,
    pub nightly: ChildFigures,
    pub no_op: ChildFigures,
}

impl StoreFigures {
    /// The rows of the README's whole-process table.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let m = self.market;
        let _ = writeln!(
            out,
            "{}: {} stocks + {} ETFs, {} days of history ({} bars); whole process, medians of {}",
            self.store, m.stocks, m.etfs, m.history_days, self.bars, self.full_build.wall.samples
        );
        for (name, f) in [
            ("full build", &self.full_build),
            ("nightly (day 2)", &self.nightly),
            ("no-op", &self.no_op),
        ] {
            let wal = f
                .wal_bytes
                .map_or_else(|| "n/a".to_owned(), |b| format!("{b} B"));
            let _ = writeln!(
                out,
                "  {name:<16} {:>8.0} ms (min {:.0}, max {:.0})  peak RSS {:>6.1} MB  rows written {:>4}  WAL {wal:>11}  audit {:>8} B",
                f.wall.median_ms, f.wall.min_ms, f.wall.max_ms, f.peak_rss_mb, f.rows_written, f.audit_bytes
            );
        }
        out
    }
}

fn figures(samples: &[ChildSample]) -> ChildFigures {
    let median = |mut values: Vec<i64>| {
        values.sort_unstable();
        values[values.len() / 2]
    };
    ChildFigures {
        wall: Timing::of(samples.iter().map(|s| s.wall_ms).collect()),
        peak_rss_mb: kb_to_mb(median(samples.iter().map(|s| s.peak_rss_kb).collect())),
        rows_written: median(samples.iter().map(|s| s.rows_written).collect()),
        wal_bytes: samples
            .iter()
            .map(|s| s.wal_bytes)
            .collect::<Option<Vec<_>>>()
            .map(median),
        audit_bytes: median(samples.iter().map(|s| s.audit_bytes).collect()),
    }
}

/// `url` with its database replaced by `name` (query parameters kept).
pub fn url_with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let server = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    match query {
        Some(query) => format!("{server}/{name}?{query}"),
        None => format!("{server}/{name}"),
    }
}

/// GNU time, which reports the peak RSS of the child it forks itself. Reaping our own child
/// with `wait4` would not give the child's own figure: at `exec`, Linux records the high-water
/// mark of the address space being replaced, which under `posix_spawn` (vfork) is this
/// process's, and this process holds the synthetic market (79 MB at 5k, more at 100k).
const GNU_TIME: &str = "/usr/bin/time";
const PEAK_RSS_LINE: &str = "cache-sync-bench-peak-rss-kb=";

/// The wall time (spawn to exit) and peak RSS in KB of one run of `exe` with `args`.
fn spawn_and_time(
    exe: &Path,
    args: &[&str],
    configure: impl FnOnce(&mut Command),
) -> Result<(f64, i64), StoreError> {
    let mut command = Command::new(GNU_TIME);
    command
        .arg("-f")
        .arg(format!("{PEAK_RSS_LINE}%M"))
        .arg(exe)
        .args(args);
    configure(&mut command);
    let started = Instant::now();
    let output = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| {
            StoreError::Corrupt(format!(
                "bench --processes runs each child under GNU time ({GNU_TIME}, Debian package `time`) to read its own peak RSS: {e}"
            ))
        })?;
    let wall_ms = started.elapsed().as_secs_f64() * 1e3;
    let messages = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        return Err(StoreError::Corrupt(format!(
            "cache-sync run failed ({}): {}",
            output.status,
            messages.trim()
        )));
    }
    let peak_rss_kb = messages
        .lines()
        .rev()
        .find_map(|line| line.strip_prefix(PEAK_RSS_LINE))
        .and_then(|kb| kb.trim().parse().ok())
        .ok_or_else(|| {
            StoreError::Corrupt(format!(
                "GNU time reported no peak RSS: {}",
                messages.trim()
            ))
        })?;
    Ok((wall_ms, peak_rss_kb))
}

/// This binary, which the benchmark spawns.
pub(super) fn this_binary() -> Result<PathBuf, StoreError> {
    std::env::current_exe().map_err(|e| StoreError::Corrupt(format!("current exe: {e}")))
}

/// `exe args` on `database_url` without Redis, off the async threads: wall ms and peak RSS KB.
pub(super) async fn timed_child(
    exe: &Path,
    database_url: &str,
    args: &[&str],
) -> Result<(f64, i64), StoreError> {
    let (exe, url) = (exe.to_owned(), database_url.to_owned());
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        spawn_and_time(&exe, &args, |command| {
            command
                .env("DATABASE_URL", url)
                .env_remove("REDIS_URL")
                .env("NO_COLOR", "1");
        })
    })
    .await
    .map_err(|e| StoreError::Corrupt(format!("bench child task: {e}")))?
}

/// Kilobytes as megabytes (the tables print MB).
pub(super) fn kb_to_mb(kb: i64) -> f64 {
    kb as f64 / 1024.0
}

/// A database the children run on: its URL, and this process's store on it (whose dialect
/// says which figures apply).
struct Target {
    url: String,
    store: SqlStore,
}

impl Target {
    fn url(&self) -> &str {
        &self.url
    }

    fn store(&self) -> &SqlStore {
        &self.store
    }

    fn is_postgres(&self) -> bool {
        self.store.dialect() == Dialect::Postgres
    }
}

/// Runs `cache-sync run --force` as a child on `target` and measures it. Forced because the
/// synthetic market's dates are in the past: benchmarks measure, they do not guard. Redis is
/// left out (the legacy job's figures are without it; `bench --events` measures publishing).
async fn measured_child(exe: &Path, target: &Target) -> Result<ChildSample, StoreError> {
    let wal_start = if target.is_postgres() {
        Some(wal_lsn(target.store()).await?)
    } else {
        None
    };
    let (wall_ms, peak_rss_kb) = timed_child(exe, target.url(), &["run", "--force"]).await?;
    let store = target.store();
    let wal_bytes = match &wal_start {
        Some(lsn) => Some(wal_since(store, lsn).await?),
        None => None,
    };
    let mut pooled = store.acquire().await?;
    let (run_id, rows_written): (i64, i64) = store
        .sql(
            "select run_id, cast(created_count + updated_count + deleted_count as bigint)
             from cache_sync_run order by run_id desc limit 1",
        )
        .fetch_optional(&mut pooled.conn())
        .await
        .during("reading the child's run record")?
        .ok_or_else(|| StoreError::Corrupt("the child recorded no run".to_owned()))?;
    drop(pooled);
    let audit_bytes = if target.is_postgres() {
        audit_bytes(store, run_id).await?
    } else {
        sqlite_audit_bytes(store, run_id).await?
    };
    Ok(ChildSample {
        wall_ms,
        peak_rss_kb,
        rows_written,
        wal_bytes,
        audit_bytes,
    })
}

/// SQLite has no `pg_column_size`: the stored bytes of the run's event changes, run report and
/// member values.
async fn sqlite_audit_bytes(store: &SqlStore, run_id: i64) -> Result<i64, StoreError> {
    store
        .sql(
            "select coalesce((select sum(length(change)) from cache_sync_event where run_id = $1), 0)
                  + coalesce((select sum(length(report)) from cache_sync_run where run_id = $1), 0)
                  + coalesce((select sum(length(member_values)) from cache_sync_run_values
                              where run_id = $1), 0)",
        )
        .bind(run_id)
        .scalar(&mut store.acquire().await?.conn())
        .await
        .during("measuring audit bytes")
}

/// Loads the day-1 market with its history into `store` (migrated first).
pub(super) async fn load_day1(
    store: &SqlStore,
    market: &SyntheticMarket,
    history_days: usize,
) -> Result<i64, StoreError> {
    store.migrate().await?;
    load_through_day(store, market, 1).await?;
    if history_days > 0 {
        load_history(store, market, history_days).await?;
    }
    store
        .sql("select count(*) from ohlcv_daily")
        .scalar(&mut store.acquire().await?.conn())
        .await
        .during("counting bars")
}

/// The day-2 template: day 1 built by one unmeasured child, then day 2's prices and events.
async fn advance_to_day2(
    exe: &Path,
    target: &Target,
    market: &SyntheticMarket,
) -> Result<(), StoreError> {
    measured_child(exe, target).await?;
    load_day(target.store(), market, 2).await?;
    Ok(())
}

pub(super) async fn analyze(store: &SqlStore) -> Result<(), StoreError> {
    sqlx::query("vacuum analyze")
        .execute(pg(store))
        .await
        .during("analyzing")?;
    Ok(())
}

fn synthetic(market: ProcessMarket) -> SyntheticMarket {
    SyntheticMarket::generate(&FixtureParams {
        stocks: market.stocks,
        etfs: market.etfs,
        days: 2,
        ..FixtureParams::default()
    })
}

/// Full build, nightly and no-op as children on PostgreSQL scratch databases.
pub(super) async fn measure_postgres(
    server: &ScratchServer,
    url: &str,
    market: ProcessMarket,
    repeat: usize,
    tag: &str,
) -> Result<StoreFigures, StoreError> {
    let exe = this_binary()?;
    let synthetic = synthetic(market);
    let (day1, day2) = (format!("{tag}_day1"), format!("{tag}_day2"));
    let result = async {
        let template = server.create(&day1, None).await?;
        let bars = load_day1(&template, &synthetic, market.history_days).await?;
        analyze(&template).await?;
        template.close().await;

        let copy = |name: String, from: String| async move {
            let store = server.create(&name, Some(&from)).await?;
            Ok::<_, StoreError>(Target {
                url: url_with_database(url, &name),
                store,
            })
        };
        let mut full = Vec::new();
        for i in 0..repeat {
            let name = format!("{day1}_r{i}");
            let target = copy(name.clone(), day1.clone()).await?;
            let sample = measured_child(&exe, &target).await;
            target.store().close().await;
            server.drop_db(&name).await?;
            full.push(sample?);
        }

        let target = copy(day2.clone(), day1.clone()).await?;
        advance_to_day2(&exe, &target, &synthetic).await?;
        analyze(target.store()).await?;
        target.store().close().await;

        let (mut nightly, mut no_op) = (Vec::new(), Vec::new());
        for i in 0..repeat {
            let name = format!("{day2}_r{i}");
            let target = copy(name.clone(), day2.clone()).await?;
            let night = measured_child(&exe, &target).await;
            let again = measured_child(&exe, &target).await;
            target.store().close().await;
            server.drop_db(&name).await?;
            nightly.push(night?);
            no_op.push(again?);
        }
        Ok(StoreFigures {
            store: "PostgreSQL",
            market,
            bars,
            full_build: figures(&full),
            nightly: figures(&nightly),
            no_op: figures(&no_op),
        })
    }
    .await;
    server.drop_db(&day1).await?;
    server.drop_db(&day2).await?;
    result
}

/// The same on SQLite files in `folder` (copies of a template file).
pub(super) async fn measure_sqlite(
    folder: &Path,
    market: ProcessMarket,
    repeat: usize,
) -> Result<StoreFigures, StoreError> {
    let exe = this_binary()?;
    let synthetic = synthetic(market);
    let io = |what: &str, e: std::io::Error| StoreError::Corrupt(format!("{what}: {e}"));
    std::fs::create_dir_all(folder).map_err(|e| io("creating the bench folder", e))?;
    let file = |name: &str| folder.join(format!("{name}.sqlite"));
    let url_of = |path: &PathBuf| format!("sqlite://{}", path.display());
    let open = |path: PathBuf| async move {
        let url = url_of(&path);
        let store = SqlStore::open_sqlite(&url).await?;
        Ok::<_, StoreError>(Target { url, store })
    };
    // A closed pool has checkpointed its WAL: the file alone is the database.
    let copy_of = |from: &PathBuf, name: &str| -> Result<PathBuf, StoreError> {
        let to = file(name);
        std::fs::copy(from, &to).map_err(|e| io("copying the template file", e))?;
        Ok(to)
    };

    let day1 = file("day1");
    let template = open(day1.clone()).await?;
    let bars = load_day1(template.store(), &synthetic, market.history_days).await?;
    template.store().close().await;

    let mut full = Vec::new();
    for i in 0..repeat {
        let target = open(copy_of(&day1, &format!("full_{i}"))?).await?;
        full.push(measured_child(&exe, &target).await?);
        target.store().close().await;
    }
    let day2 = copy_of(&day1, "day2")?;
    let target = open(day2.clone()).await?;
    advance_to_day2(&exe, &target, &synthetic).await?;
    target.store().close().await;

    let (mut nightly, mut no_op) = (Vec::new(), Vec::new());
    for i in 0..repeat {
        let target = open(copy_of(&day2, &format!("night_{i}"))?).await?;
        nightly.push(measured_child(&exe, &target).await?);
        no_op.push(measured_child(&exe, &target).await?);
        target.store().close().await;
    }
    Ok(StoreFigures {
        store: "SQLite",
        market,
        bars,
        full_build: figures(&full),
        nightly: figures(&nightly),
        no_op: figures(&no_op),
    })
}

#[cfg(test)]
mod tests {
    use super::url_with_database;

    #[test]
    fn a_server_url_gets_the_scratch_database_and_keeps_its_parameters() {
        assert_eq!(
            url_with_database("postgres://postgres@127.0.0.1:5432/postgres", "b1"),
            "postgres://postgres@127.0.0.1:5432/b1"
        );
        assert_eq!(
            url_with_database("postgres://u@h/db?sslmode=disable", "b2"),
            "postgres://u@h/b2?sslmode=disable"
        );
        assert_eq!(
            url_with_database("postgres://u@h", "b3"),
            "postgres://u@h/b3"
        );
    }
}
