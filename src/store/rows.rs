//! Decoding rows into the records: the log's text columns parsed into domain values.

use super::sql::Row;
use super::{JobRecord, OutboxRow, RunSummary, StoreError, UniverseRow};
use crate::domain::diff::Op;
use crate::domain::fingerprint::ContentHash;
use crate::domain::market::{LatestClose, SymbolRow};
use crate::domain::types::{Family, RunId};
use chrono::NaiveDate;

/// A logged hash column.
pub(crate) fn parse_hash(text: Option<String>) -> Result<Option<ContentHash>, StoreError> {
    text.map(|t| {
        ContentHash::parse(&t)
            .ok_or_else(|| StoreError::Corrupt(format!("bad hash `{t}` in the log")))
    })
    .transpose()
}

/// A logged op column.
pub(crate) fn parse_op(text: &str) -> Result<Op, StoreError> {
    match text {
        "created" => Ok(Op::Create),
        "updated" => Ok(Op::Update),
        "deleted" => Ok(Op::Delete),
        other => Err(StoreError::Corrupt(format!(
            "unknown op `{other}` in the log"
        ))),
    }
}

/// JSON read back from text (both stores select JSON columns as text).
pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(
    text: &str,
    what: &str,
) -> Result<T, StoreError> {
    serde_json::from_str(text)
        .map_err(|e| StoreError::Corrupt(format!("{what} does not parse: {e}")))
}

/// A logged family column.
pub(crate) fn parse_family(text: &str) -> Result<Family, StoreError> {
    Family::parse(text).map_err(StoreError::Corrupt)
}

/// A `cache_sync_run` row (columns as `read_runs` selects them).
pub(crate) fn run_summary(r: &Row) -> Result<RunSummary, StoreError> {
    let get = "reading a run";
    Ok(RunSummary {
        run_id: RunId(r.get("run_id", get)?),
        trigger: r.get("trigger", get)?,
        families: r.get("families", get)?,
        as_of: r.get("as_of", get)?,
        config_hash: r.get("config_hash", get)?,
        status: r.get("status", get)?,
        forced: r.get("forced", get)?,
        started_at: r.get("started_at", get)?,
        finished_at: r.get("finished_at", get)?,
        created: r.get("created_count", get)?,
        updated: r.get("updated_count", get)?,
        deleted: r.get("deleted_count", get)?,
        unchanged: r.get("unchanged_count", get)?,
        error: r.get("error", get)?,
    })
}

/// A universe listing row (columns as `universes` selects them).
pub(crate) fn universe_row(r: &Row) -> Result<UniverseRow, StoreError> {
    let get = "reading a universe row";
    let entry_type: String = r.get("type", get)?;
    let name: String = r.get("name", get)?;
    let key: String = r.get("key", get)?;
    Ok(UniverseRow {
        universe: format!("{name}:{key}"),
        symbol_count: r.get("symbol_count", get)?,
        hash: r.get("hash", get)?,
        last_updated: r.get("updated_at", get)?,
        entry_type,
        name,
        key,
    })
}

/// A `symbols` row with its latest close (columns as `load_market` selects them).
pub(crate) fn market_row(row: &Row) -> Result<(SymbolRow, Option<LatestClose>), StoreError> {
    let close_date: Option<NaiveDate> = row.get("close_date", "reading a close")?;
    let close: Option<f64> = row.get("close", "reading a close")?;
    let get = "reading a symbol";
    let symbol = SymbolRow {
        symbol: row.get("symbol", get)?,
        name: row.get("name", get)?,
        kind: row.get("type", get)?,
        active: row.get("active", get)?,
        market_cap: row.get("market_cap", get)?,
        weighted_shares_outstanding: row.get("shares", get)?,
        primary_exchange: row.get("primary_exchange", get)?,
        market: row.get("market", get)?,
        sector: row.get("sector", get)?,
        industry: row.get("industry", get)?,
        list_date: row.get("list_date", get)?,
        etf_type: row.get("etf_type", get)?,
        issuer: row.get("issuer", get)?,
        aum_millions: row.get("aum_millions", get)?,
    };
    let close = match (close_date, close) {
        (Some(date), Some(close)) => Some(LatestClose { date, close }),
        _ => None,
    };
    Ok((symbol, close))
}

/// A `cache_sync_outbox` row, `payload` selected as text.
pub(crate) fn outbox_row(r: &Row) -> Result<OutboxRow, StoreError> {
    let get = "reading the outbox";
    Ok(OutboxRow {
        outbox_id: r.get("outbox_id", get)?,
        run_id: RunId(r.get("run_id", get)?),
        seq: r.get("seq", get)?,
        channel: r.get("channel", get)?,
        also_channel: r.get("also_channel", get)?,
        event: r.get("event", get)?,
        payload: r.json("payload", get)?,
        created_at: r.get("created_at", get)?,
        published_at: r.get("published_at", get)?,
    })
}

/// A `cache_sync_job` row, `progress` selected as text and `duration_seconds` computed.
pub(crate) fn job_record(r: &Row) -> Result<JobRecord, StoreError> {
    let get = "reading a job";
    let progress: Option<String> = r.get("progress", get)?;
    Ok(JobRecord {
        job_id: r.get("job_id", get)?,
        mode: r.get("mode", get)?,
        force: r.get("force", get)?,
        triggered_by: r.get("triggered_by", get)?,
        status: r.get("status", get)?,
        created_at: r.get("created_at", get)?,
        start_time: r.get("start_time", get)?,
        end_time: r.get("end_time", get)?,
        duration_seconds: r.get("duration_seconds", get)?,
        error_details: r.get("error_details", get)?,
        progress: progress
            .map(|p| parse_json(&p, "job progress"))
            .transpose()?,
        run_id: r.get("run_id", get)?,
        plan_id: r.get("plan_id", get)?,
    })
}
