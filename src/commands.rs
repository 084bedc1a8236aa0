//! One function per subcommand: connect, call the job, print the result, choose the exit code.

use crate::config::{Command, Config, FixtureArgs, FixturesCommand, Format, PlanArgs, RunArgs};
use crate::domain::config::parse_toml;
use crate::domain::events::Channels;
use crate::domain::guard::GuardConfig;
use crate::domain::types::{EntryKey, RunId};
use crate::fixtures::{FixtureParams, SyntheticMarket};
use crate::history::{self, At, HistoryError};
use crate::job::Progress;
use crate::job::{self, JobConfig, JobError, PlanRequest, RollbackError, RunRequest};
use crate::progress::StepBar;
use crate::publish::Publisher;
use crate::store::{EventLog, Outbox, Schema, SqlStore, StoreError, Trigger};
use chrono::Utc;
use serde::Serialize;
use serde_json::json;
use std::sync::Arc;

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
    #[error(transparent)]
    Job(#[from] JobError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    History(#[from] HistoryError),
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
            CliError::History(HistoryError::UnknownRun(_) | HistoryError::NothingBefore(_)) => {
                Exit::Usage
            }
            _ => Exit::Failure,
        }
    }
}

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
/// for `sqlite://` or when it is unset.
/// With `create` false a missing SQLite file is an error rather than a new empty database.
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

/// Whether this invocation draws progress bars (see `progress::wanted`).
fn progress_wanted(config: &Config) -> bool {
    crate::progress::wanted(config.format, config.log_format)
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
        Command::History {
            universe,
            symbol,
            limit,
        } => {
            let store = connect(&config).await?;
            let symbol = symbol.as_deref().map(|s| s.trim().to_ascii_uppercase());
            let lines = history::history(
                &store,
                &config.environment,
                universe.as_ref(),
                symbol.as_deref(),
                *limit,
            )
            .await?;
            print(config.format, &lines, || render_history(&lines));
            Ok(Exit::Success)
        }
        Command::Show {
            universe,
            at_run,
            at,
        } => {
            let store = connect(&config).await?;
            let when = match (at_run, at) {
                (Some(run), _) => At::Run(RunId(*run)),
                (None, Some(t)) => At::Time(*t),
                (None, None) => At::Now,
            };
            let shown = history::show(&store, &config.environment, universe, when).await?;
            print(config.format, &shown, || render_shown(&shown));
            Ok(Exit::Success)
        }
        Command::Replay { at_run, verify } => {
            let store = connect(&config).await?;
            let report =
                history::replay(&store, &config.environment, RunId(*at_run), *verify).await?;
            print(config.format, &report, || {
                let s = &report.stats;
                let mut out = format!(
                    "Replayed run {} ({} entries) from {} with {} events in {:.1} ms; every value matched the hash the log recorded{}.\n",
                    s.run_id,
                    s.entries,
                    s.checkpoint_run.map_or("the first event".to_owned(), |r| format!("the checkpoint of run {r}")),
                    s.events_applied,
                    s.duration_ms,
                    if report.verified { ", and a full fold from the first event agreed" } else { "" }
                );
                for (key, hash) in &report.hashes {
                    out.push_str(&format!("  {} {key}\n", &hash.to_hex()[..16]));
                }
                out
            });
            Ok(Exit::Success)
        }
        Command::Rollback {
            to_run,
            dry_run,
            force,
        } => rollback(&config, RunId(*to_run), *dry_run, *force).await,
        Command::Verify => verify(&config).await,
        Command::Events {
            follow,
            from_seq,
            universe,
            relay,
            limit,
        } => {
            events(
                &config,
                *follow,
                *from_seq,
                universe.as_ref(),
                *relay,
                *limit,
            )
            .await
        }
        Command::Serve(args) => serve(&config, args).await,
        Command::Demo => demo(&config).await,
        Command::Bench(args) => {
            let url = config.database_url.as_ref().ok_or_else(|| {
                CliError::Usage("bench needs DATABASE_URL (a postgres:// server URL)".to_owned())
            })?;
            let publisher = publisher(&config)?;
            if args.events > 0 && publisher.is_none() {
                return Err(CliError::Usage("bench --events needs REDIS_URL".to_owned()));
            }
            let report = crate::bench::run(url.expose(), args, publisher.as_ref()).await?;
            print(config.format, &report, || report.to_text());
            Ok(Exit::Success)
        }
    }
}

async fn migrate(config: &Config, widen_unique: bool, yes: bool) -> Result<Exit, CliError> {
    // Migrating is what this command is for, `--no-migrate` or not.
    let store = open_store(config.database_url.as_ref().map(|u| u.expose()), true).await?;
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
    let bar = StepBar::start(progress_wanted(config), "fixtures");
    bar.step(0, "generating the synthetic market");
    let market = SyntheticMarket::generate(&FixtureParams {
        stocks: args.stocks,
        etfs: args.etfs,
        days: args.days,
        seed: args.seed,
        nasty: args.nasty,
    });
    bar.step(30, &format!("writing {day} days of prices"));
    let loaded = crate::fixtures_loader::load_through_day(&store, &market, day).await?;
    drop(bar);
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
    let report = job::plan(&store, &job, &plan_request(args), Utc::now().date_naive()).await?;
    print(config.format, &report, || report.to_text());
    Ok(if report.has_changes() {
        Exit::Pending
    } else {
        Exit::Success
    })
}

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

/// Best-effort notice: an unreachable Redis is logged, never fatal.
async fn notify(
    publisher: Option<&Publisher>,
    channel: impl FnOnce(&Channels) -> String,
    event: &str,
    payload: serde_json::Value,
) {
    if let Some(p) = publisher {
        if let Err(e) = p.notify(&channel(p.channels()), event, &payload).await {
            tracing::warn!(error = %e, event, "notice not published");
        }
    }
}

/// Publishes what the outbox holds; an outage leaves it there for the next relay.
async fn relay(publisher: Option<&Publisher>, store: &dyn Outbox) {
    if let Some(p) = publisher {
        match p.relay(store).await {
            Ok(outcome) => tracing::info!(published = outcome.published, "events relayed"),
            Err(e) => eprintln!(
                "warning: events stay in the outbox ({e}); the next run or `cache-sync events --relay` publishes them"
            ),
        }
    }
}

/// The most recent weekday on or before `today`: the trading day Phase 2 should have imported.
fn expected_trading_day(today: chrono::NaiveDate) -> chrono::NaiveDate {
    use chrono::Datelike as _;
    let back = match today.weekday() {
        chrono::Weekday::Sat => 1,
        chrono::Weekday::Sun => 2,
        _ => 0,
    };
    today - chrono::Duration::days(back)
}

async fn wait_for_import(
    store: &dyn EventLog,
    publisher: Option<&Publisher>,
    timeout: std::time::Duration,
) -> Result<bool, CliError> {
    let expected = expected_trading_day(Utc::now().date_naive());
    let latest = {
        let mut tx = store.begin().await?;
        tx.latest_price_date().await?
    };
    if latest.is_some_and(|d| d >= expected) {
        return Ok(true);
    }
    let publisher = publisher.ok_or_else(|| {
        CliError::Usage(format!(
            "ohlcv_daily's latest date is {} but {expected} is expected, and --wait-for-import needs REDIS_URL to hear Phase 2 finish",
            latest.map_or("none".to_owned(), |d| d.to_string())
        ))
    })?;
    let _ = latest;
    publisher
        .wait_for_import(timeout, async {
            // Checked again once subscribed, so an import that finished in between is not missed.
            let Ok(mut tx) = store.begin().await else {
                return false;
            };
            tx.latest_price_date()
                .await
                .ok()
                .flatten()
                .is_some_and(|d| d >= expected)
        })
        .await
        .map_err(|e| CliError::Usage(format!("cannot wait for the import: {e}")))
}

async fn run(config: &Config, args: &RunArgs) -> Result<Exit, CliError> {
    let job = job_config(config)?;
    let store = connect(config).await?;
    let publisher = publisher(config)?;
    let job_id = cli_job_id();
    if args.wait_for_import && !wait_for_import(&store, publisher.as_ref(), args.timeout).await? {
        let message = format!(
            "Phase 2 did not announce completion within {}s",
            args.timeout.as_secs()
        );
        notify(
            publisher.as_ref(),
            Channels::errors,
            "cache_sync_failed",
            json!({"job_id": job_id, "phase": "2.5", "error": message}),
        )
        .await;
        eprintln!("error: {message}; nothing was run");
        return Ok(Exit::ImportTimeout);
    }
    let mode = if args.plan.only.is_empty() {
        "full".to_owned()
    } else {
        args.plan
            .only
            .iter()
            .map(|f| f.as_str())
            .collect::<Vec<_>>()
            .join(",")
    };
    notify(
        publisher.as_ref(),
        Channels::sync_triggered,
        "cache_sync_triggered",
        json!({"job_id": job_id, "mode": mode, "force": args.force, "triggered_by": "cli"}),
    )
    .await;
    notify(
        publisher.as_ref(),
        Channels::started,
        "phase_started",
        json!({"phase": "2.5", "job_id": job_id, "mode": mode}),
    )
    .await;
    let bar = Arc::new(StepBar::start(progress_wanted(config), "run"));
    bar.step(0, "starting");
    let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel::<Progress>();
    let forwarder = {
        let publisher = publisher.clone();
        let job_id = job_id.clone();
        let bar = bar.clone();
        tokio::spawn(async move {
            while let Some(p) = receiver.recv().await {
                bar.step(p.percent, p.step);
                let payload = json!({"phase": "2.5", "job_id": job_id, "step": p.step, "percent": p.percent, "entries_changed": p.entries_changed});
                notify(
                    publisher.as_ref(),
                    Channels::progress,
                    "phase_progress",
                    payload,
                )
                .await;
            }
        })
    };
    let request = RunRequest {
        plan: plan_request(&args.plan),
        force: args.force,
        trigger: Trigger::Cli,
        now: Utc::now(),
        pause_before_commit: args.test_pause_before_commit,
        job_id: job_id.clone(),
        progress: Some(sender),
        expect_plan: None,
    };
    let result = job::run(&store, &job, &request).await;
    drop(request);
    // The forwarder ends once the request (the last sender) is gone.
    let _ = forwarder.await;
    bar.step(100, "publishing events");
    relay(publisher.as_ref(), &store).await;
    drop(bar);
    match result {
        Ok(report) => {
            print(config.format, &report, || report.to_text());
            Ok(Exit::Success)
        }
        Err(error) => {
            notify(
                publisher.as_ref(),
                Channels::errors,
                "cache_sync_failed",
                json!({"job_id": job_id, "phase": "2.5", "error": error.to_string()}),
            )
            .await;
            if let JobError::Refused { report, .. } = &error {
                print(config.format, report, || report.to_text());
            }
            Err(error.into())
        }
    }
}

async fn events(
    config: &Config,
    follow: bool,
    from_seq: Option<i64>,
    universe: Option<&EntryKey>,
    relay_only: bool,
    limit: i64,
) -> Result<Exit, CliError> {
    let store = connect(config).await?;
    let publisher = publisher(config)?;
    if relay_only {
        let p = publisher.ok_or_else(|| CliError::Usage("--relay needs REDIS_URL".to_owned()))?;
        let outcome = p.relay(&store).await.map_err(|e| {
            CliError::Usage(format!("relay failed, events stay in the outbox: {e}"))
        })?;
        print(config.format, &outcome, || {
            format!("Published {} pending events.\n", outcome.published)
        });
        return Ok(Exit::Success);
    }
    let rows = store.read_outbox(from_seq, universe, limit).await?;
    let mut last_seq = from_seq.unwrap_or(0);
    for row in &rows {
        last_seq = last_seq.max(row.seq.unwrap_or(0));
        print_event(
            config.format,
            &row.channel,
            &crate::publish::envelope_of(row),
        );
    }
    if follow {
        let p = publisher.ok_or_else(|| CliError::Usage("--follow needs REDIS_URL".to_owned()))?;
        p.follow(last_seq, |channel, event| {
            let matches = universe.is_none_or(|u| {
                event["payload"]["type"] == u.entry_type.as_str()
                    && event["payload"]["name"] == u.name.as_str()
                    && event["payload"]["key"] == u.key.as_str()
            });
            if matches {
                print_event(config.format, channel, event);
            }
        })
        .await
        .map_err(|e| CliError::Usage(format!("cannot follow the stream: {e}")))?;
    }
    Ok(Exit::Success)
}

fn print_event(format: Format, channel: &str, event: &serde_json::Value) {
    match format {
        Format::Json => println!("{}", json!({"channel": channel, "message": event})),
        Format::Text => {
            let p = &event["payload"];
            let seq = p["seq"]
                .as_i64()
                .map_or(String::new(), |s| format!("seq {s} "));
            println!(
                "{seq}{channel} {} {}",
                event["event"].as_str().unwrap_or(""),
                p
            );
        }
    }
}

async fn rollback(
    config: &Config,
    to_run: RunId,
    dry_run: bool,
    force: bool,
) -> Result<Exit, CliError> {
    let job = job_config(config)?;
    let store = connect(config).await?;
    let lift = |e: RollbackError| match e {
        RollbackError::Job(e) => CliError::Job(e),
        RollbackError::History(e) => CliError::History(e),
    };
    if dry_run {
        let report = job::plan_rollback(&store, &job, to_run, Utc::now().date_naive())
            .await
            .map_err(lift)?;
        print(config.format, &report, || report.to_text());
        return Ok(if report.has_changes() {
            Exit::Pending
        } else {
            Exit::Success
        });
    }
    let bar = Arc::new(StepBar::start(progress_wanted(config), "rollback"));
    bar.step(0, "replaying the target run");
    let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel::<Progress>();
    let shown = {
        let bar = bar.clone();
        tokio::spawn(async move {
            while let Some(p) = receiver.recv().await {
                bar.step(p.percent, p.step);
            }
        })
    };
    let request = RunRequest {
        plan: PlanRequest::default(),
        force,
        trigger: Trigger::Rollback,
        now: Utc::now(),
        pause_before_commit: false,
        job_id: cli_job_id(),
        progress: Some(sender),
        expect_plan: None,
    };
    let result = job::rollback(&store, &job, to_run, &request).await;
    drop(request);
    let _ = shown.await;
    relay(publisher(config)?.as_ref(), &store).await;
    drop(bar);
    match result {
        Ok(report) => {
            print(config.format, &report, || report.to_text());
            Ok(Exit::Success)
        }
        Err(RollbackError::Job(JobError::Refused {
            run_id,
            refusals,
            report,
        })) => {
            print(config.format, &report, || report.to_text());
            Err(CliError::Job(JobError::Refused {
                run_id,
                refusals,
                report,
            }))
        }
        Err(e) => Err(lift(e)),
    }
}

async fn verify(config: &Config) -> Result<Exit, CliError> {
    let job = job_config(config)?;
    let store = connect(config).await?;
    let plan = job::plan(
        &store,
        &job,
        &PlanRequest::default(),
        Utc::now().date_naive(),
    )
    .await?;
    let drift: Vec<crate::domain::types::EntryKey> = plan
        .drift
        .iter()
        .filter_map(|d| crate::domain::types::EntryKey::parse(d).ok())
        .collect();
    let differences = history::describe_drift(&store, &config.environment, &drift).await?;
    print(config.format, &differences, || {
        if differences.is_empty() {
            return "Every owned row matches the audit log.\n".to_owned();
        }
        let mut out = format!("{} owned rows differ from the audit log (the next run reconciles them, reason manual_drift):\n", differences.len());
        for d in &differences {
            out.push_str(&format!(
                "  {:<8} {}  +[{}] -[{}]\n",
                d.kind,
                d.universe,
                d.extra_members.join(" "),
                d.missing_members.join(" ")
            ));
        }
        out
    });
    Ok(if differences.is_empty() {
        Exit::Success
    } else {
        Exit::Pending
    })
}

fn render_history(lines: &[history::HistoryLine]) -> String {
    let mut out = String::new();
    if lines.is_empty() {
        out.push_str("No changes recorded.\n");
    }
    for line in lines {
        let as_of = line.as_of.map_or("-".to_owned(), |d| d.to_string());
        out.push_str(&format!(
            "run {:>4}  as of {as_of}  {:<8} {}\n",
            line.run_id, line.op, line.universe
        ));
        for (sign, members) in [('+', &line.added), ('-', &line.removed)] {
            for m in members.iter().take(20) {
                let detail = if m.detail.is_null() {
                    String::new()
                } else {
                    format!(" {}", m.detail)
                };
                out.push_str(&format!(
                    "      {sign} {} ({}){detail}\n",
                    m.ticker, m.reason
                ));
            }
            if members.len() > 20 {
                out.push_str(&format!("      {sign} … {} more\n", members.len() - 20));
            }
        }
    }
    out
}

fn render_shown(shown: &history::Shown) -> String {
    let when = shown
        .run_id
        .map_or("now".to_owned(), |r| format!("after run {r}"));
    match (&shown.value, shown.hash) {
        (Some(value), Some(hash)) => format!(
            "{} {when}: {} members, hash {hash}\n{}\n",
            shown.universe,
            shown.members,
            serde_json::to_string_pretty(value).expect("values serialise")
        ),
        _ => format!("{} did not exist {when}.\n", shown.universe),
    }
}

/// A job id for a run started from the command line: unique enough to tell runs apart in
/// events (`cli-<unix millis>-<pid>`).
fn cli_job_id() -> String {
    format!(
        "cli-{}-{}",
        Utc::now().timestamp_millis(),
        std::process::id()
    )
}

async fn serve(config: &Config, args: &crate::config::ServeArgs) -> Result<Exit, CliError> {
    let api_key = match (&args.api_key, &args.api_key_file) {
        (Some(key), _) => Some(key.expose().to_owned()),
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path).map_err(|source| CliError::ReadConfig {
                path: path.display().to_string(),
                source,
            })?;
            Some(text.lines().next().unwrap_or_default().trim().to_owned())
        }
        (None, None) => None,
    };
    match &api_key {
        Some(key) if key.len() < 16 => {
            return Err(CliError::Usage(
                "the API key must be at least 16 characters".to_owned(),
            ));
        }
        None if !(args.unauthenticated_loopback && args.bind.ip().is_loopback()) => {
            return Err(CliError::Usage(
                "no API key: set CACHE_SYNC_API_KEY (or --api-key-file), or pass --unauthenticated-loopback with a loopback --bind".to_owned(),
            ));
        }
        _ => {}
    }
    let job = job_config(config)?;
    let store = connect(config).await?;
    let state = crate::http::AppState::new(Arc::new(store), job, publisher(config)?, api_key);
    let listener = tokio::net::TcpListener::bind(args.bind)
        .await
        .map_err(|e| CliError::Usage(format!("cannot listen on {}: {e}", args.bind)))?;
    eprintln!("cache-sync: serving on http://{}", args.bind);
    crate::http::serve(
        listener,
        state,
        crate::http::shutdown_signal(),
        args.shutdown_grace,
    )
    .await
    .map_err(|e| CliError::Usage(format!("the service stopped: {e:#}")))?;
    Ok(Exit::Success)
}

/// The demo's own file, made afresh each time when DATABASE_URL is not set.
const DEMO_FILE: &str = "cache-sync-demo.sqlite";

async fn demo(config: &Config) -> Result<Exit, CliError> {
    let store = match &config.database_url {
        Some(url) => open_store(Some(url.expose()), true).await?,
        None => {
            for leftover in [
                DEMO_FILE.to_owned(),
                format!("{DEMO_FILE}-wal"),
                format!("{DEMO_FILE}-shm"),
            ] {
                if let Err(e) = std::fs::remove_file(&leftover) {
                    if e.kind() != std::io::ErrorKind::NotFound {
                        return Err(CliError::ReadConfig {
                            path: leftover,
                            source: e,
                        });
                    }
                }
            }
            println!("Using the embedded store: ./{DEMO_FILE} (no server needed).");
            open_store(Some(&format!("sqlite://{DEMO_FILE}")), true).await?
        }
    };
    let started = std::time::Instant::now();
    crate::demo::run(&store, &mut |text| print!("{text}"))
        .await
        .map_err(|e| CliError::Usage(format!("the demo failed: {e}")))?;
    println!(
        "Done in {:.1} s. Next: `cache-sync history --symbol <TICKER>`, `cache-sync serve --help`.",
        started.elapsed().as_secs_f64()
    );
    Ok(Exit::Success)
}
