//! The command line: `execute` dispatches each subcommand to its group — `schema` (migrate),
//! `runs` (plan, run, rollback, verify), `history` (history, show, replay, compact), `events`, `serve`,
//! `devtools` (fixtures, demo, bench) — which opens the store, calls the library and prints;
//! `render` turns results into text, `progress` draws bars. Exit codes are decided here.

mod devtools;
mod events;
mod history;
mod progress;
mod render;
mod runs;
mod schema;
mod serve;

use crate::config::{Command, Config, FixturesCommand, Format};
use crate::domain::config::{parse_toml, CatalogConfig};
use crate::domain::events::Channels;
use crate::domain::guard::GuardConfig;
use crate::history::compaction::{CompactionError, CompactionRequest};
use crate::history::HistoryError;
use crate::job::{JobConfig, RunError};
use crate::publish::Publisher;
use crate::store::{Schema, SqlStore, StoreError};
use serde::Serialize;

/// Process exit codes (SPEC §12), documented for the pipeline coordinator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Exit {
    Success = 0,
    Failure = 1,
    Usage = 2,
    Refused = 3,
    Locked = 4,
    /// `plan` only: changes are pending (`verify`: rows differ from the log).
    Pending = 5,
    /// `run --wait-for-import`: Phase 2 did not finish in time; nothing was run.
    ImportTimeout = 6,
}

/// Why a command failed, with the exit code it maps to.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0}")]
    Usage(String),
    /// The command would write where it must not; nothing was written.
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Run(#[from] RunError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    History(#[from] HistoryError),
    #[error(transparent)]
    Compaction(#[from] CompactionError),
    /// Redis failed (not a usage error: exit 1).
    #[error("{context}: {source}")]
    Publish {
        context: &'static str,
        #[source]
        source: crate::publish::PublishError,
    },
    #[error("cannot read {path}: {source}")]
    ReadConfig {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// Standard output's reader went away (a closed pipe); not a failure, see `write_out`.
    #[error("standard output was closed")]
    ClosedPipe,
    #[error("cannot write to standard output: {0}")]
    Output(#[source] std::io::Error),
}

impl CliError {
    /// The exit code for this failure.
    pub fn exit(&self) -> Exit {
        let unknown_point = |e: &HistoryError| {
            matches!(
                e,
                HistoryError::UnknownRun(_)
                    | HistoryError::NothingBefore(_)
                    | HistoryError::BeforeHorizon { .. }
            )
        };
        match self {
            CliError::Usage(_) | CliError::ReadConfig { .. } => Exit::Usage,
            CliError::ClosedPipe => Exit::Success,
            CliError::Run(RunError::Config(_)) => Exit::Usage,
            CliError::Refused(_)
            | CliError::Run(RunError::Refused { .. } | RunError::Collision { .. }) => Exit::Refused,
            CliError::Run(RunError::LockHeld) | CliError::Compaction(CompactionError::LockHeld) => {
                Exit::Locked
            }
            CliError::History(e) | CliError::Run(RunError::History(e)) if unknown_point(e) => {
                Exit::Usage
            }
            _ => Exit::Failure,
        }
    }
}

/// Runs the parsed command.
///
/// # Errors
/// A `CliError` whose `exit()` gives the process exit code.
pub async fn execute(config: Config) -> Result<Exit, CliError> {
    match dispatch(&config).await {
        // Whoever read the output took what they wanted (`| head -1`): a quiet success.
        Err(CliError::ClosedPipe) => Ok(Exit::Success),
        other => other,
    }
}

/// Runs one subcommand.
async fn dispatch(config: &Config) -> Result<Exit, CliError> {
    match &config.command {
        Command::Migrate { widen_unique, yes } => {
            schema::migrate(config, *widen_unique, *yes).await
        }
        Command::Fixtures {
            action: FixturesCommand::Load(args),
        } => devtools::load_fixtures(config, args).await,
        Command::Plan(args) => runs::plan(config, args).await,
        Command::Run(args) => runs::run(config, args).await,
        Command::History {
            universe,
            symbol,
            limit,
        } => history::history(config, universe.as_ref(), symbol.as_deref(), *limit).await,
        Command::Show {
            universe,
            at_run,
            at,
        } => history::show(config, universe, *at_run, *at).await,
        Command::Replay { at_run, verify } => history::replay(config, *at_run, *verify).await,
        Command::Rollback {
            to_run,
            dry_run,
            force,
        } => runs::rollback(config, *to_run, *dry_run, *force).await,
        Command::Verify => runs::verify(config).await,
        Command::Compact {
            keep_days,
            dry_run,
            test_pause_compaction_ms,
        } => {
            let request = CompactionRequest {
                keep_days: *keep_days,
                dry_run: *dry_run,
                pause_before_commit: test_pause_compaction_ms.map(std::time::Duration::from_millis),
            };
            history::compact(config, &request).await
        }
        Command::Events {
            follow,
            from_seq,
            universe,
            relay,
            limit,
        } => {
            let filter = events::EventsFilter {
                from_seq: *from_seq,
                universe: universe.as_ref(),
                limit: *limit,
            };
            events::events(config, filter, *follow, *relay).await
        }
        Command::Serve(args) => serve::serve(config, args).await,
        Command::Demo(args) => devtools::demo(config, args).await,
        Command::Bench(args) => devtools::bench(config, args).await,
    }
}

/// The job's settings: the environment, channels, and the TOML file when given.
fn job_config(config: &Config) -> Result<JobConfig, CliError> {
    let mut job = JobConfig {
        environment: config.environment.clone(),
        channels: Channels {
            prefix: config.channel_prefix.clone(),
        },
        ..JobConfig::default()
    };
    if let Some(path) = &config.config_file {
        let label = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| CliError::ReadConfig {
            path: label.clone(),
            source,
        })?;
        let file = parse_toml(&label, &text).map_err(|e| CliError::Usage(e.to_string()))?;
        // Settings are checked when loaded, before any database is opened: a value outside
        // its range is refused here (exit 2), naming the file, the key and the range.
        CatalogConfig::default()
            .apply_toml(&file.catalog, &label)
            .map_err(|e| CliError::Usage(e.to_string()))?;
        job.audit_keep_days = file
            .audit
            .keep_days(&label)
            .map_err(|e| CliError::Usage(e.to_string()))?;
        job.catch_up_schedule = file
            .pipeline
            .catch_up_schedule(&label)
            .map_err(|e| CliError::Usage(e.to_string()))?;
        if let Some(table) = &file.guards {
            job.guards = GuardConfig::from_toml(table)
                .map_err(|e| CliError::Usage(format!("invalid [guards] in {label}: {e}")))?;
        }
        job.toml = Some((label, file));
    }
    Ok(job)
}

/// The embedded default when DATABASE_URL is not set: a file in the working directory.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://cache-sync.sqlite";

/// Opens the store DATABASE_URL names: PostgreSQL for `postgres://`, the embedded SQLite file
/// for `sqlite://` or when it is unset. With `create` false a missing SQLite file is an error
/// rather than a new empty database.
async fn open_store(url: Option<&str>, create: bool) -> Result<SqlStore, CliError> {
    let url = url.unwrap_or(DEFAULT_DATABASE_URL);
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(SqlStore::connect_postgres(url).await?)
    } else if url.starts_with("sqlite:") {
        Ok(if create {
            SqlStore::open_sqlite(url).await?
        } else {
            SqlStore::open_existing_sqlite(url).await?
        })
    } else {
        Err(CliError::Usage(format!(
            "DATABASE_URL must be a postgres:// URL or a sqlite:// file; got one starting with `{}`",
            url.split("://").next().unwrap_or("").chars().take(20).collect::<String>()
        )))
    }
}

/// Opens the store and readies its schema: applies pending migrations, or with `--no-migrate`
/// only checks that none is pending.
async fn connect(config: &Config) -> Result<SqlStore, CliError> {
    let url = config.database_url.as_ref().map(|u| u.expose());
    let store = open_store(url, !config.no_migrate).await?;
    if config.no_migrate {
        store.check_schema().await?;
    } else {
        store.migrate().await?;
    }
    Ok(store)
}

/// The Redis publisher when REDIS_URL is set.
fn publisher(config: &Config) -> Result<Option<Publisher>, CliError> {
    config
        .redis_url
        .as_ref()
        .map(|url| {
            Publisher::new(
                url.expose(),
                Channels {
                    prefix: config.channel_prefix.clone(),
                },
                config.stream_maxlen,
            )
            .map_err(|e| CliError::Usage(format!("REDIS_URL is not a usable Redis URL: {e}")))
        })
        .transpose()
}

/// Whether this invocation draws progress bars (see `progress::wanted`).
fn progress_wanted(config: &Config) -> bool {
    progress::wanted(config.format, config.log_format)
}

/// Prints `value` as JSON, or `text()` for people.
///
/// # Errors
/// As `write_out`.
fn print<T: Serialize>(
    format: Format,
    value: &T,
    text: impl FnOnce() -> String,
) -> Result<(), CliError> {
    match format {
        Format::Json => {
            let json = serde_json::to_string_pretty(value).expect("reports serialise");
            write_out(&format!("{json}\n"))
        }
        Format::Text => write_out(&text()),
    }
}

/// Writes `text` to standard output, the only way the commands print.
///
/// # Errors
/// `CliError::ClosedPipe` when the reader has gone (`cache-sync events | head -1`): the command
/// stops and `execute` ends it with exit 0. Any other write error is `CliError::Output`.
fn write_out(text: &str) -> Result<(), CliError> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::BrokenPipe => CliError::ClosedPipe,
            _ => CliError::Output(e),
        })
}
