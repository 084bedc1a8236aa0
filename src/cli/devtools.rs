//! The development tools' commands: `fixtures load`, `demo` and `bench`.

use super::progress::StepBar;
use super::{connect, open_store, print, progress_wanted, publisher, write_out, CliError, Exit};
use crate::config::{BenchArgs, Config, DemoArgs, FixtureArgs};
use crate::devtools::market::{FixtureParams, SyntheticMarket};
use crate::devtools::{bench, demo, loader};
use serde::Serialize;

/// `cache-sync fixtures load`: the synthetic market as of day K.
pub(super) async fn load_fixtures(config: &Config, args: &FixtureArgs) -> Result<Exit, CliError> {
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
    if !args.allow_foreign_rows {
        let foreign = loader::foreign_rows(&store).await?;
        if !foreign.is_empty() {
            return Err(CliError::Refused(format!(
                "refusing to load synthetic fixtures: {foreign}; this looks like a real market. \
                 Point DATABASE_URL at a scratch database, or pass --allow-foreign-rows to \
                 overwrite symbols and add bars anyway"
            )));
        }
    }
    let bar = StepBar::start(progress_wanted(config), "fixtures");
    bar.step(0, "generating the synthetic market");
    let market = SyntheticMarket::generate(&FixtureParams {
        stocks: args.stocks,
        etfs: args.etfs,
        days: args.days,
        seed: args.seed,
        nasty: args.nasty,
        renames: args.renames,
    });
    bar.step(30, &format!("writing {day} days of prices"));
    let loaded = loader::load_through_day(&store, &market, day).await?;
    let history = if args.history_days > 0 {
        bar.step(
            60,
            &format!("writing {} days of older history", args.history_days),
        );
        loader::load_history(&store, &market, args.history_days)
            .await?
            .bars
    } else {
        0
    };
    drop(bar);
    #[derive(Serialize)]
    struct Loaded {
        as_of: chrono::NaiveDate,
        day: usize,
        symbols: usize,
        bars: usize,
        history_bars: usize,
    }
    let out = Loaded {
        as_of: market.date_of_day(day),
        day,
        symbols: loaded.symbols,
        bars: loaded.bars,
        history_bars: history,
    };
    print(config.format, &out, || {
        let history = if out.history_bars > 0 {
            format!(" and {} bars of older history", out.history_bars)
        } else {
            String::new()
        };
        format!(
            "Loaded the synthetic market as of day {day} ({}): {} symbols, {} daily bars{history}.\n",
            out.as_of, out.symbols, out.bars
        )
    })?;
    Ok(Exit::Success)
}

/// The demo's own file, made afresh each time unless `--database` names another.
const DEMO_FILE: &str = "cache-sync-demo.sqlite";

/// `cache-sync demo`: the narrated walkthrough, in its own file unless `--database` names a
/// database (DATABASE_URL is ignored: an exported production URL must not receive the demo).
pub(super) async fn demo(config: &Config, args: &DemoArgs) -> Result<Exit, CliError> {
    let store = match &args.database {
        Some(url) => open_store(Some(url.as_str()), true).await?,
        None => {
            if config.database_url.is_some() {
                println!(
                    "The demo ignores DATABASE_URL and --database-url (name a database with `demo --database URL`)."
                );
            }
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
            write_out(&format!(
                "Using the embedded store: ./{DEMO_FILE} (no server needed).\n"
            ))?;
            open_store(Some(&format!("sqlite://{DEMO_FILE}")), true).await?
        }
    };
    let started = std::time::Instant::now();
    // A closed pipe stops the printing, not the demo's writes (they are one walkthrough).
    let mut closed = None;
    demo::run(&store, &mut |text| {
        if closed.is_none() {
            closed = write_out(text).err();
        }
    })
    .await
    .map_err(|e| match e {
        demo::DemoError::ForeignRows(_) => CliError::Refused(e.to_string()),
        e => CliError::Usage(format!("the demo failed: {e}")),
    })?;
    if let Some(error) = closed {
        return Err(error);
    }
    write_out(&format!(
        "Done in {:.1} s. Next: `cache-sync history --symbol <TICKER>`, `cache-sync serve --help`.\n",
        started.elapsed().as_secs_f64()
    ))?;
    Ok(Exit::Success)
}

/// `cache-sync bench`: scratch databases on DATABASE_URL's server.
pub(super) async fn bench(config: &Config, args: &BenchArgs) -> Result<Exit, CliError> {
    let url = config.database_url.as_ref().ok_or_else(|| {
        CliError::Usage("bench needs DATABASE_URL (a postgres:// server URL)".to_owned())
    })?;
    let publisher = publisher(config)?;
    if (args.events > 0 || args.pipeline) && publisher.is_none() {
        return Err(CliError::Usage(
            "bench --events and bench --pipeline need REDIS_URL".to_owned(),
        ));
    }
    let report = bench::run(url.expose(), args, publisher.as_ref()).await?;
    print(config.format, &report, || report.to_text())?;
    Ok(Exit::Success)
}
