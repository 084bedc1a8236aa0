//! The audit log's commands: `history`, `show`, `replay` and `compact`.

use super::{connect, print, render, CliError, Exit};
use crate::config::Config;
use crate::domain::types::{EntryKey, RunId};
use crate::history::compaction::{self, CompactionRequest};
use crate::history::{self, PointInHistory};
use chrono::{DateTime, Utc};

/// `cache-sync history [UNIVERSE] [--symbol T]`: changes, newest first.
pub(super) async fn history(
    config: &Config,
    universe: Option<&EntryKey>,
    symbol: Option<&str>,
    limit: i64,
) -> Result<Exit, CliError> {
    let store = connect(config).await?;
    let symbol = symbol.map(|s| s.trim().to_ascii_uppercase());
    let lines = history::history(
        &store,
        &config.environment,
        universe,
        symbol.as_deref(),
        limit,
    )
    .await?;
    print(config.format, &lines, || render::history(&lines))?;
    Ok(Exit::Success)
}

/// `cache-sync show UNIVERSE [--at-run R | --at T]`.
pub(super) async fn show(
    config: &Config,
    universe: &EntryKey,
    at_run: Option<i64>,
    at: Option<DateTime<Utc>>,
) -> Result<Exit, CliError> {
    let store = connect(config).await?;
    let when = match (at_run, at) {
        (Some(run), _) => PointInHistory::AfterRun(RunId(run)),
        (None, Some(t)) => PointInHistory::AtTime(t),
        (None, None) => PointInHistory::Now,
    };
    let snapshot = history::show(&store, &config.environment, universe, when).await?;
    print(config.format, &snapshot, || render::snapshot(&snapshot))?;
    Ok(Exit::Success)
}

/// `cache-sync replay --at-run R [--verify]`.
pub(super) async fn replay(config: &Config, at_run: i64, verify: bool) -> Result<Exit, CliError> {
    let store = connect(config).await?;
    let report = history::replay(&store, &config.environment, RunId(at_run), verify).await?;
    print(config.format, &report, || render::replay(&report))?;
    Ok(Exit::Success)
}

/// `cache-sync compact --keep-days N [--dry-run]`.
pub(super) async fn compact(
    config: &Config,
    request: &CompactionRequest,
) -> Result<Exit, CliError> {
    let store = connect(config).await?;
    let report = compaction::compact(&store, &config.environment, request).await?;
    print(config.format, &report, || render::compaction(&report))?;
    Ok(Exit::Success)
}
