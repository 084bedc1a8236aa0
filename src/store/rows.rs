//! Row decoding both adapters share: the log's text columns parsed into domain values, and the
//! rows whose columns decode the same way in PostgreSQL and SQLite.

use super::{JobRecord, OutboxRow, QueryContext, RunSummary, StoreError, UniverseRow};
use crate::domain::diff::Op;
use crate::domain::fingerprint::ContentHash;
use crate::domain::types::{Family, RunId};
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use sqlx::{ColumnIndex, Database, Decode, Row, Type};

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

/// JSON read back from text (both stores select JSON columns as text, so one decoder serves).
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
pub(crate) fn run_summary<R, DB>(r: &R) -> Result<RunSummary, StoreError>
where
    DB: Database,
    R: Row<Database = DB>,
    for<'c> &'c str: ColumnIndex<R>,
    for<'d> i64: Decode<'d, DB> + Type<DB>,
    for<'d> i32: Decode<'d, DB> + Type<DB>,
    for<'d> bool: Decode<'d, DB> + Type<DB>,
    for<'d> String: Decode<'d, DB> + Type<DB>,
    for<'d> NaiveDate: Decode<'d, DB> + Type<DB>,
    for<'d> DateTime<Utc>: Decode<'d, DB> + Type<DB>,
{
    let get = "reading a run";
    Ok(RunSummary {
        run_id: RunId(r.try_get("run_id").during(get)?),
        trigger: r.try_get("trigger").during(get)?,
        families: r.try_get("families").during(get)?,
        as_of: r.try_get::<Option<NaiveDate>, _>("as_of").during(get)?,
        config_hash: r.try_get("config_hash").during(get)?,
        status: r.try_get("status").during(get)?,
        forced: r.try_get("forced").during(get)?,
        started_at: r.try_get("started_at").during(get)?,
        finished_at: r.try_get("finished_at").during(get)?,
        created: r.try_get("created_count").during(get)?,
        updated: r.try_get("updated_count").during(get)?,
        deleted: r.try_get("deleted_count").during(get)?,
        unchanged: r.try_get("unchanged_count").during(get)?,
        error: r.try_get("error").during(get)?,
    })
}

/// A universe listing row (columns as `universes` selects them).
pub(crate) fn universe_row<R, DB>(r: &R) -> Result<UniverseRow, StoreError>
where
    DB: Database,
    R: Row<Database = DB>,
    for<'c> &'c str: ColumnIndex<R>,
    for<'d> i64: Decode<'d, DB> + Type<DB>,
    for<'d> String: Decode<'d, DB> + Type<DB>,
    for<'d> NaiveDateTime: Decode<'d, DB> + Type<DB>,
{
    let get = "reading a universe row";
    let entry_type: String = r.try_get("type").during(get)?;
    let name: String = r.try_get("name").during(get)?;
    let key: String = r.try_get("key").during(get)?;
    Ok(UniverseRow {
        universe: format!("{name}:{key}"),
        symbol_count: r.try_get("symbol_count").during(get)?,
        hash: r.try_get("hash").during(get)?,
        last_updated: r.try_get("updated_at").during(get)?,
        entry_type,
        name,
        key,
    })
}

/// A `symbols` row with its latest close (columns as `load_market` selects them).
pub(crate) fn market_row<R, DB>(
    row: &R,
) -> Result<
    (
        crate::domain::market::SymbolRow,
        Option<crate::domain::market::LatestClose>,
    ),
    StoreError,
>
where
    DB: Database,
    R: Row<Database = DB>,
    for<'c> &'c str: ColumnIndex<R>,
    for<'d> i64: Decode<'d, DB> + Type<DB>,
    for<'d> f64: Decode<'d, DB> + Type<DB>,
    for<'d> bool: Decode<'d, DB> + Type<DB>,
    for<'d> String: Decode<'d, DB> + Type<DB>,
    for<'d> NaiveDate: Decode<'d, DB> + Type<DB>,
{
    use crate::domain::market::{LatestClose, SymbolRow};
    let close_date: Option<NaiveDate> = row.try_get("close_date").during("reading a close")?;
    let close: Option<f64> = row.try_get("close").during("reading a close")?;
    let get = "reading a symbol";
    let symbol = SymbolRow {
        symbol: row.try_get("symbol").during(get)?,
        name: row.try_get("name").during(get)?,
        kind: row.try_get("type").during(get)?,
        active: row.try_get("active").during(get)?,
        market_cap: row.try_get("market_cap").during(get)?,
        weighted_shares_outstanding: row.try_get("shares").during(get)?,
        primary_exchange: row.try_get("primary_exchange").during(get)?,
        market: row.try_get("market").during(get)?,
        sector: row.try_get("sector").during(get)?,
        industry: row.try_get("industry").during(get)?,
        list_date: row.try_get("list_date").during(get)?,
        etf_type: row.try_get("etf_type").during(get)?,
        issuer: row.try_get("issuer").during(get)?,
        aum_millions: row.try_get("aum_millions").during(get)?,
    };
    let close = match (close_date, close) {
        (Some(date), Some(close)) => Some(LatestClose { date, close }),
        _ => None,
    };
    Ok((symbol, close))
}

/// A `cache_sync_outbox` row, `payload` selected as text.
pub(crate) fn outbox_row<R, DB>(r: R) -> Result<OutboxRow, StoreError>
where
    DB: Database,
    R: Row<Database = DB>,
    for<'c> &'c str: ColumnIndex<R>,
    for<'d> i64: Decode<'d, DB> + Type<DB>,
    for<'d> String: Decode<'d, DB> + Type<DB>,
    for<'d> DateTime<Utc>: Decode<'d, DB> + Type<DB>,
{
    let get = "reading the outbox";
    let payload: String = r.try_get("payload").during(get)?;
    Ok(OutboxRow {
        outbox_id: r.try_get("outbox_id").during(get)?,
        run_id: RunId(r.try_get("run_id").during(get)?),
        seq: r.try_get("seq").during(get)?,
        channel: r.try_get("channel").during(get)?,
        also_channel: r.try_get("also_channel").during(get)?,
        event: r.try_get("event").during(get)?,
        payload: parse_json(&payload, "an outbox payload")?,
        created_at: r.try_get("created_at").during(get)?,
        published_at: r.try_get("published_at").during(get)?,
    })
}

/// A `cache_sync_job` row, `progress` selected as text and `duration_seconds` computed.
pub(crate) fn job_record<R, DB>(r: R) -> Result<JobRecord, StoreError>
where
    DB: Database,
    R: Row<Database = DB>,
    for<'c> &'c str: ColumnIndex<R>,
    for<'d> i64: Decode<'d, DB> + Type<DB>,
    for<'d> f64: Decode<'d, DB> + Type<DB>,
    for<'d> bool: Decode<'d, DB> + Type<DB>,
    for<'d> String: Decode<'d, DB> + Type<DB>,
    for<'d> DateTime<Utc>: Decode<'d, DB> + Type<DB>,
{
    let get = "reading a job";
    let progress: Option<String> = r.try_get("progress").during(get)?;
    Ok(JobRecord {
        job_id: r.try_get("job_id").during(get)?,
        mode: r.try_get("mode").during(get)?,
        force: r.try_get("force").during(get)?,
        triggered_by: r.try_get("triggered_by").during(get)?,
        status: r.try_get("status").during(get)?,
        created_at: r.try_get("created_at").during(get)?,
        start_time: r.try_get("start_time").during(get)?,
        end_time: r.try_get("end_time").during(get)?,
        duration_seconds: r.try_get("duration_seconds").during(get)?,
        error_details: r.try_get("error_details").during(get)?,
        progress: progress
            .map(|p| parse_json(&p, "job progress"))
            .transpose()?,
        run_id: r.try_get("run_id").during(get)?,
        plan_id: r.try_get("plan_id").during(get)?,
    })
}
