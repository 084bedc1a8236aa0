//! The one configuration struct: every setting as a flag or an environment variable, parsed once
//! in `main` and passed down. Library code never reads the environment.

use crate::domain::columns::ENVIRONMENT_CHARS;
use crate::domain::types::{EntryKey, Family};
use chrono::{DateTime, NaiveDate, Utc};
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// A connection string or key: printed as `[redacted]` by `Debug`, so it cannot leak into logs.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    /// The secret itself, for the one place that connects with it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(s.to_owned()))
    }
}

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

/// How logs are written (to stderr).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// TickStock Phase 2.5: keeps the universe cache (`cache_entries`) in step with the market by
/// applying only what changed, with an audit log of every change.
#[derive(Debug, Parser)]
#[command(name = "cache-sync", version, about, long_about = None)]
pub struct Config {
    /// Database URL, e.g. postgres://user@127.0.0.1:5432/tickstock.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true, global = true)]
    pub database_url: Option<Secret>,

    /// Redis URL, e.g. redis://127.0.0.1:6379. Without it events wait in the outbox.
    #[arg(long, env = "REDIS_URL", hide_env_values = true, global = true)]
    pub redis_url: Option<Secret>,

    /// Prefix of every Redis channel and stream name.
    #[arg(
        long,
        env = "CACHE_SYNC_CHANNEL_PREFIX",
        default_value = "tickstock",
        global = true
    )]
    pub channel_prefix: String,

    /// Approximate cap on the change stream's length (older entries are trimmed).
    #[arg(
        long,
        env = "CACHE_SYNC_STREAM_MAXLEN",
        default_value_t = 100_000,
        global = true
    )]
    pub stream_maxlen: usize,

    /// The cache_entries environment the job owns.
    #[arg(
        long,
        env = "CACHE_SYNC_ENVIRONMENT",
        default_value = "DEFAULT",
        value_parser = parse_environment,
        global = true
    )]
    pub environment: String,

    /// Optional TOML file with [catalog] and [guards] sections (applied over cache_config rows).
    #[arg(long = "config", env = "CACHE_SYNC_CONFIG", global = true)]
    pub config_file: Option<PathBuf>,

    /// Output format of results.
    #[arg(long, value_enum, default_value = "text", global = true)]
    pub format: Format,

    /// Never change the schema: check that every migration is applied and stop with an error
    /// naming the missing ones if not (for roles without DDL rights; `cache-sync migrate`
    /// applies them).
    #[arg(long, env = "CACHE_SYNC_NO_MIGRATE", global = true)]
    pub no_migrate: bool,

    /// Log format (logs go to stderr; level from RUST_LOG).
    #[arg(
        long,
        value_enum,
        env = "CACHE_SYNC_LOG_FORMAT",
        default_value = "text",
        global = true
    )]
    pub log_format: LogFormat,

    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create or upgrade the schema.
    ///
    /// Example: cache-sync migrate
    Migrate {
        /// Replace unique constraints that leave out `name` (they cannot hold the theme rows)
        /// with UNIQUE (type, name, key, environment). Shows the statements; add --yes to apply.
        #[arg(long)]
        widen_unique: bool,
        /// Apply --widen-unique.
        #[arg(long, requires = "widen_unique")]
        yes: bool,
    },
    /// Synthetic market data for tests, demos and benchmarks.
    Fixtures {
        #[command(subcommand)]
        action: FixturesCommand,
    },
    /// Show the deltas a run would apply; writes nothing. Exit code 0 when nothing would
    /// change, 5 when changes are pending.
    ///
    /// Example: cache-sync plan --only market_cap --format json
    Plan(PlanArgs),
    /// Phase 2.5: apply the deltas in one transaction with their audit events.
    ///
    /// Example: cache-sync run --as-of 2026-02-13
    Run(RunArgs),
    /// Changes of one universe (or of all), newest first: run, date, op, members added and
    /// removed with reasons.
    ///
    /// Example: cache-sync history stock_universe/market_cap/large_cap --limit 20
    /// Example: cache-sync history --symbol BRK.B
    History {
        /// A universe written type/name/key.
        #[arg(value_parser = parse_universe)]
        universe: Option<EntryKey>,
        /// Only changes that moved this ticker in or out.
        #[arg(long)]
        symbol: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
    /// A universe's value now, or as it was after a past run or at a past time (replayed).
    ///
    /// Example: cache-sync show stock_universe/market_cap/large_cap --at-run 3
    Show {
        #[arg(value_parser = parse_universe)]
        universe: EntryKey,
        #[arg(long, conflicts_with = "at")]
        at_run: Option<i64>,
        /// RFC 3339 time, e.g. 2026-03-02T22:00:00Z.
        #[arg(long)]
        at: Option<DateTime<Utc>>,
    },
    /// Rebuild the whole owned catalog as it was after run R from the audit log.
    ///
    /// Example: cache-sync replay --at-run 3 --verify
    Replay {
        #[arg(long)]
        at_run: i64,
        /// Also fold from the first event, ignoring checkpoints, and require the same result.
        #[arg(long)]
        verify: bool,
    },
    /// Roll the owned catalog back to its state after run R, as a new run (history only grows).
    ///
    /// Example: cache-sync rollback --to-run 3 --dry-run
    Rollback {
        #[arg(long)]
        to_run: i64,
        /// Show the deltas without applying them.
        #[arg(long)]
        dry_run: bool,
        /// Pass the mass-change guard rails.
        #[arg(long)]
        force: bool,
    },
    /// Keep the audit log bounded: fold every run older than N days before the newest into a
    /// checkpoint and remove the folded events, in one recorded transaction. Replay and
    /// rollback stay exact from the horizon on and refuse earlier runs. Exit code 4 when a run
    /// holds the writer lock.
    ///
    /// Example: cache-sync compact --keep-days 30 --dry-run
    Compact {
        /// Keep every run whose as-of date is within this many days of the newest run's.
        #[arg(long)]
        keep_days: u32,
        /// Show what would be folded and removed without changing anything.
        #[arg(long)]
        dry_run: bool,
        /// Test hook: wait this many milliseconds after deleting, before committing (the
        /// compaction test kills the process there).
        #[arg(long, hide = true, env = "CACHE_SYNC_TEST_PAUSE_COMPACTION_MS")]
        test_pause_compaction_ms: Option<u64>,
    },
    /// Check live rows against the audit log: rows edited, deleted or inserted outside the job.
    /// Exit code 0 when they agree, 5 when they differ (the next run reconciles them).
    ///
    /// Example: cache-sync verify
    Verify,
    /// Print change events from the outbox (JSON lines with --format json), follow the Redis
    /// stream, or publish pending events.
    ///
    /// Example: cache-sync events --from-seq 120 --universe stock_universe/market_cap/large_cap
    Events {
        /// Keep printing new universe events from the Redis stream (needs REDIS_URL).
        #[arg(long)]
        follow: bool,
        /// Only universe events with a higher audit seq.
        #[arg(long)]
        from_seq: Option<i64>,
        #[arg(long, value_parser = parse_universe)]
        universe: Option<EntryKey>,
        /// Publish events still pending in the outbox (after a Redis outage), then exit.
        #[arg(long)]
        relay: bool,
        #[arg(long, default_value_t = 100)]
        limit: i64,
    },
    /// A narrated walkthrough for newcomers: loads a synthetic market into its own file
    /// (./cache-sync-demo.sqlite, made afresh; DATABASE_URL is ignored, so synthetic data never
    /// lands in a real database), builds day 1, applies day 2's deltas with reasons, shows a
    /// universe's history, replays day 1 verified by hash and rolls back to it.
    ///
    /// Example: cache-sync demo
    Demo(DemoArgs),
    /// Serve the HTTP API for the admin UI (see docs/TickStockAppV2_integration_callback.md).
    ///
    /// Example: CACHE_SYNC_API_KEY=… cache-sync serve --bind 127.0.0.1:8080
    Serve(ServeArgs),
    /// Measure load, compute, plan and run times on the synthetic market in a scratch database
    /// (created next to DATABASE_URL's database and dropped afterwards).
    ///
    /// Example: cache-sync bench --stocks 5000
    Bench(BenchArgs),
}

/// `fixtures` actions.
#[derive(Debug, Subcommand)]
pub enum FixturesCommand {
    /// Load the deterministic synthetic market as of a day into the database.
    ///
    /// Example: cache-sync fixtures load --stocks 5000 --etfs 800 --days 30 --seed 42 --as-of-day 1
    Load(FixtureArgs),
}

/// Synthetic market parameters.
#[derive(Debug, Clone, Args)]
pub struct FixtureArgs {
    #[arg(long, default_value_t = 5000)]
    pub stocks: usize,
    #[arg(long, default_value_t = 800)]
    pub etfs: usize,
    #[arg(long, default_value_t = 30)]
    pub days: usize,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Load the market as of this day (1-based); defaults to the last day.
    #[arg(long)]
    pub as_of_day: Option<usize>,
    /// Add bad rows (zero/negative/absurd caps, duplicate tickers, missing closes).
    #[arg(long)]
    pub nasty: bool,
    /// Rename this many stocks on days the seed chooses (the old ticker turns inactive, a new
    /// one with the same identity takes over its prices); written with the identity columns
    /// where `symbols` has them.
    #[arg(long, default_value_t = 0)]
    pub renames: usize,
    /// Also give every symbol priced on day 1 this many older daily bars (the weekdays before
    /// day 1), as production's years of history: 1250 is five years.
    #[arg(long, default_value_t = 0)]
    pub history_days: usize,
    /// Write even though `symbols` or `ohlcv_daily` hold rows the fixtures did not write (by
    /// default such a database, a real market, is refused).
    #[arg(long)]
    pub allow_foreign_rows: bool,
}

/// `demo` arguments.
#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// Run the demo in this database instead of its own file (postgres:// or sqlite://). It must
    /// hold no market the fixtures did not write.
    #[arg(long, value_name = "URL")]
    pub database: Option<String>,
}

/// `plan` arguments.
#[derive(Debug, Clone, Args)]
pub struct PlanArgs {
    /// As-of date (YYYY-MM-DD); defaults to the latest date in ohlcv_daily.
    #[arg(long)]
    pub as_of: Option<NaiveDate>,
    /// Only these families (repeat or comma-separate): market_cap, market_leaders,
    /// sector_leaders, industry, themes, etfs, complete, ipos, stats, combo.
    #[arg(long, value_delimiter = ',', value_parser = parse_family)]
    pub only: Vec<Family>,
}

/// `run` arguments.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub plan: PlanArgs,
    /// Apply even when a guard rail refuses (the run record says so).
    #[arg(long)]
    pub force: bool,
    /// Wait for Phase 2 (import) to finish first: go at once when ohlcv_daily already has the
    /// expected trading day, else wait for a message on {prefix}:import:completed.
    #[arg(long)]
    pub wait_for_import: bool,
    /// How long --wait-for-import waits (e.g. 90s, 30m, 2h); exit code 6 on timeout.
    #[arg(long, default_value = "30m", value_parser = parse_duration)]
    pub timeout: std::time::Duration,
    /// Test hook: stop just before commit (the atomicity test kills the process there).
    #[arg(long, hide = true)]
    pub test_pause_before_commit: bool,
}

/// `serve` arguments.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub bind: std::net::SocketAddr,
    /// The key clients send in X-API-Key.
    #[arg(long, env = "CACHE_SYNC_API_KEY", hide_env_values = true)]
    pub api_key: Option<Secret>,
    /// A file holding the key (first line), instead of CACHE_SYNC_API_KEY.
    #[arg(long, env = "CACHE_SYNC_API_KEY_FILE", conflicts_with = "api_key")]
    pub api_key_file: Option<std::path::PathBuf>,
    /// Run Phase 2.5 when Phase 2 announces an import on `{prefix}:import:completed` (needs
    /// REDIS_URL); each import runs once across instances and restarts.
    #[arg(long)]
    pub follow_imports: bool,
    /// Serve without a key; refused unless --bind is a loopback address.
    #[arg(long)]
    pub unauthenticated_loopback: bool,
    /// On SIGTERM, how long a running job may take to finish before it is rolled back.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub shutdown_grace: std::time::Duration,
    /// Test hook: a job stops after its run commits, before its outcome is recorded (the
    /// job-record test kills the process there).
    #[arg(long, hide = true)]
    pub test_pause_after_commit: bool,
    /// Test hook: a job's run stops just before its commit (the two-instance test kills the
    /// process there).
    #[arg(long, hide = true)]
    pub test_pause_before_commit: bool,
}

/// `bench` arguments.
#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    #[arg(long, default_value_t = 5000)]
    pub stocks: usize,
    #[arg(long, default_value_t = 800)]
    pub etfs: usize,
    /// Timed repetitions of each step (the median is reported).
    #[arg(long, default_value_t = 7)]
    pub repeat: usize,
    /// Also simulate this many nightly runs and time replaying one entry and the whole catalog
    /// at runs across that history (0 skips it).
    #[arg(long, default_value_t = 0)]
    pub history_runs: usize,
    /// With --history-runs: then compact the log to this many days (`cache-sync compact
    /// --keep-days`), measure again, and check every kept run replays as before (0 skips it).
    #[arg(long, default_value_t = 30)]
    pub keep_days: u32,
    /// Also measure Redis publishing (needs REDIS_URL): this many synthetic outbox events for
    /// throughput, and commit-to-subscriber latency over nightly runs (0 skips it).
    #[arg(long, default_value_t = 0)]
    pub events: usize,
    /// Also load the HTTP API on loopback: this many clients polling stats, history and health
    /// for --load-seconds while runs execute back to back (0 skips it).
    #[arg(long, default_value_t = 0)]
    pub api_clients: usize,
    #[arg(long, default_value_t = 30)]
    pub load_seconds: u64,
    /// Measure whole processes instead (the headline figures): the binary spawned for a full
    /// build, a nightly run and a no-op on PostgreSQL and SQLite, each from start to exit, with
    /// the child's peak RSS. The in-process breakdown above is skipped.
    #[arg(long)]
    pub processes: bool,
    /// Measure Phase 2 to Phase 2.5 instead (needs REDIS_URL): a `serve --follow-imports`
    /// child; time from `data_import_completed` to `cache_sync_completed`, and the catch-up
    /// delays after a missed announcement (from serve's start; from its subscription dropped).
    /// --repeat samples of each (at most 9).
    #[arg(long, conflicts_with = "processes")]
    pub pipeline: bool,
    /// With --processes or --pipeline: older daily bars every symbol has (1250 is five years).
    #[arg(long, default_value_t = 1250)]
    pub history_days: usize,
    /// With --processes: leave SQLite out.
    #[arg(long)]
    pub no_sqlite: bool,
}

fn parse_family(text: &str) -> Result<Family, String> {
    Family::parse(text)
}

/// An environment name the job can write: not empty, no control characters, and no longer
/// than `cache_entries.environment` (`varchar(20)`).
fn parse_environment(text: &str) -> Result<String, String> {
    let max = ENVIRONMENT_CHARS;
    let chars = text.chars().count();
    if text.trim().is_empty() || text.chars().any(char::is_control) || chars > max {
        return Err(format!(
            "the environment (--environment or CACHE_SYNC_ENVIRONMENT) must be 1 to {max} \
             characters, the size of cache_entries.environment, without control characters; \
             got {chars} characters"
        ));
    }
    Ok(text.to_owned())
}

fn parse_universe(text: &str) -> Result<EntryKey, String> {
    EntryKey::parse(text)
}

/// Parses `90s`, `30m`, `2h` or a plain number of seconds.
fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let text = text.trim();
    let (number, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let n: u64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration like 90s, 30m or 2h"))?;
    let seconds = match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => return Err(format!("`{text}`: use s, m or h")),
    };
    Ok(std::time::Duration::from_secs(seconds))
}
