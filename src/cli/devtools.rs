//! The development tools' commands: `fixtures load`, `demo` and `bench`.

use super::progress::StepBar;
use super::{connect, open_store, print, progress_wanted, publisher, write_out, CliError, Exit};
use crate::config::{BenchArgs, Config, FixtureArgs};
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
    let loaded = loader::load_through_day(&store, &market, day).await?;
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
    })?;
    Ok(Exit::Success)
}

/// The demo's own file, made afresh each time when DATABASE_URL is not set.
const DEMO_FILE: &str = "cache-sync-demo.sqlite";

/// `cache-sync demo`: the narrated walkthrough.
pub(super) async fn demo(config: &Config) -> Result<Exit, CliError> {
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
    .map_err(|e| CliError::Usage(format!("the demo failed: {e}")))?;
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
    if args.events > 0 && publisher.is_none() {
        return Err(CliError::Usage("bench --events needs REDIS_URL".to_owned()));
    }
    let report = bench::run(url.expose(), args, publisher.as_ref()).await?;
    print(config.format, &report, || report.to_text())?;
    Ok(Exit::Success)
}
