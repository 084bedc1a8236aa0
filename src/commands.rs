//! One function per subcommand: connect, call the job, print the result, choose the exit code.

use crate::config::{Command, Config, FixtureArgs, FixturesCommand, Format, PlanArgs, RunArgs};
use crate::domain::config::parse_toml;
use crate::domain::guard::GuardConfig;
use crate::fixtures::{FixtureParams, SyntheticMarket};
use crate::job::{self, JobConfig, JobError, PlanRequest, RunRequest};
use crate::store::postgres::PgStore;
use crate::store::{Store, StoreError, Trigger};
use chrono::Utc;
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
    /// `plan` only: changes are pending.
    Pending = 5,
}

/// Why a command failed, with the exit code it maps to.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Job(#[from] JobError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot read {path}: {source}")]
    ReadConfig {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

impl CliError {
    /// The exit code for this failure.
    pub fn exit(&self) -> Exit {
        match self {
            CliError::Usage(_) | CliError::ReadConfig { .. } => Exit::Usage,
            CliError::Job(JobError::Config(_)) => Exit::Usage,
            CliError::Job(JobError::Refused { .. } | JobError::Collision { .. }) => Exit::Refused,
            CliError::Job(JobError::LockHeld) => Exit::Locked,
            _ => Exit::Failure,
        }
    }
}

fn job_config(config: &Config) -> Result<JobConfig, CliError> {
    let mut job = JobConfig {
        environment: config.environment.clone(),
        ..JobConfig::default()
    };
    if let Some(path) = &config.config_file {
        let label = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| CliError::ReadConfig {
            path: label.clone(),
            source,
        })?;
        let file = parse_toml(&label, &text).map_err(|e| CliError::Usage(e.to_string()))?;
        if let Some(table) = &file.guards {
            job.guards = GuardConfig::from_toml(table)
                .map_err(|e| CliError::Usage(format!("invalid [guards] in {label}: {e}")))?;
        }
        job.toml = Some((label, file));
    }
    Ok(job)
}

async fn connect(config: &Config) -> Result<PgStore, CliError> {
    let url = config.database_url.as_ref().ok_or_else(|| {
        CliError::Usage(
            "DATABASE_URL is not set: give a postgres:// URL (e.g. postgres://postgres@127.0.0.1:5432/postgres)"
                .to_owned(),
        )
    })?;
    if !url.expose().starts_with("postgres://") && !url.expose().starts_with("postgresql://") {
        return Err(CliError::Usage(format!(
            "DATABASE_URL must be a postgres:// URL; got one starting with `{}`",
            url.expose().split("://").next().unwrap_or("")
        )));
    }
    Ok(PgStore::connect(url.expose()).await?)
}

fn print<T: Serialize>(format: Format, value: &T, text: impl FnOnce() -> String) {
    match format {
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(value).expect("reports serialise")
        ),
        Format::Text => print!("{}", text()),
    }
}

/// Runs the parsed command.
///
/// # Errors
/// A `CliError` whose `exit()` gives the process exit code.
pub async fn execute(config: Config) -> Result<Exit, CliError> {
    match &config.command {
        Command::Migrate { widen_unique, yes } => migrate(&config, *widen_unique, *yes).await,
        Command::Fixtures {
            action: FixturesCommand::Load(args),
        } => load_fixtures(&config, args).await,
        Command::Plan(args) => plan(&config, args).await,
        Command::Run(args) => run(&config, args).await,
        Command::Bench(args) => {
            let url = config.database_url.as_ref().ok_or_else(|| {
                CliError::Usage("bench needs DATABASE_URL (a postgres:// server URL)".to_owned())
            })?;
            let report = crate::bench::run(url.expose(), args).await?;
            print(config.format, &report, || report.to_text());
            Ok(Exit::Success)
        }
    }
}

async fn migrate(config: &Config, widen_unique: bool, yes: bool) -> Result<Exit, CliError> {
    let store = connect(config).await?;
    store.migrate().await?;
    if widen_unique {
        let statements = store.widen_unique(yes).await?;
        #[derive(Serialize)]
        struct Widen<'a> {
            applied: bool,
            statements: &'a [String],
        }
        print(
            config.format,
            &Widen {
                applied: yes,
                statements: &statements,
            },
            || {
                if statements.is_empty() {
                    return "No unique constraint on cache_entries leaves out name; nothing to widen.\n".to_owned();
                }
                let verb = if yes {
                    "Applied"
                } else {
                    "Would apply (add --yes to apply)"
                };
                format!("{verb}:\n  {};\n", statements.join(";\n  "))
            },
        );
    } else if config.format == Format::Text {
        println!("Schema is up to date.");
    }
    Ok(Exit::Success)
}

async fn load_fixtures(config: &Config, args: &FixtureArgs) -> Result<Exit, CliError> {
    if args.days == 0 || args.stocks == 0 {
        return Err(CliError::Usage(
            "--days and --stocks must be at least 1".to_owned(),
        ));
    }
    let day = args.as_of_day.unwrap_or(args.days);
    if day == 0 || day > args.days {
        return Err(CliError::Usage(format!(
            "--as-of-day must be between 1 and --days ({})",
            args.days
        )));
    }
    let store = connect(config).await?;
    store.migrate().await?;
    let market = SyntheticMarket::generate(&FixtureParams {
        stocks: args.stocks,
        etfs: args.etfs,
        days: args.days,
        seed: args.seed,
        nasty: args.nasty,
    });
    let loaded = crate::fixtures_loader::load_through_day(&store, &market, day).await?;
    #[derive(Serialize)]
    struct Loaded {
        as_of: chrono::NaiveDate,
        day: usize,
        symbols: usize,
        bars: usize,
    }
    let out = Loaded {
        as_of: market.date_of_day(day),
        day,
        symbols: loaded.symbols,
        bars: loaded.bars,
    };
    print(config.format, &out, || {
        format!(
            "Loaded the synthetic market as of day {day} ({}): {} symbols, {} daily bars.\n",
            out.as_of, out.symbols, out.bars
        )
    });
    Ok(Exit::Success)
}

fn plan_request(args: &PlanArgs) -> PlanRequest {
    PlanRequest {
        as_of: args.as_of,
        only: args.only.clone(),
    }
}

async fn plan(config: &Config, args: &PlanArgs) -> Result<Exit, CliError> {
    let job = job_config(config)?;
    let store = connect(config).await?;
    store.migrate().await?;
    let report = job::plan(&store, &job, &plan_request(args), Utc::now().date_naive()).await?;
    print(config.format, &report, || report.to_text());
    Ok(if report.has_changes() {
        Exit::Pending
    } else {
        Exit::Success
    })
}

async fn run(config: &Config, args: &RunArgs) -> Result<Exit, CliError> {
    let job = job_config(config)?;
    let store = connect(config).await?;
    store.migrate().await?;
    let request = RunRequest {
        plan: plan_request(&args.plan),
        force: args.force,
        trigger: Trigger::Cli,
        now: Utc::now(),
        pause_before_commit: args.test_pause_before_commit,
    };
    match job::run(&store, &job, &request).await {
        Ok(report) => {
            print(config.format, &report, || report.to_text());
            Ok(Exit::Success)
        }
        Err(JobError::Refused {
            run_id,
            refusals,
            report,
        }) => {
            print(config.format, &report, || report.to_text());
            Err(CliError::Job(JobError::Refused {
                run_id,
                refusals,
                report,
            }))
        }
        Err(e) => Err(e.into()),
    }
}
