//! The `LogReader` role: runs, events, checkpoints and live values read back for history,
//! replay, show and verify.

use super::database::SqlStore;
use super::rows::{parse_family, parse_hash, parse_op};
use super::sql::{fetch_chunked, Conn};
use super::{
    Checkpoint, CompactionRecord, EventFilter, LogReader, LoggedEvent, QueryContext, RunSummary,
    StoreError,
};
use crate::domain::diff::EntryChange;
use crate::domain::log_form::RunValues;
use crate::domain::types::{EntryKey, RunId};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::types::Json;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

/// An event's columns as `read_events` selects them.
type EventRow = (
    i64,
    i64,
    String,
    String,
    String,
    i32,
    String,
    String,
    Option<String>,
    Option<String>,
    Json<EntryChange>,
    DateTime<Utc>,
);

/// `and entry_type = … and entry_name = … and entry_key = …` for one entry.
fn push_entry(sql: &mut super::sql::Sql, key: &EntryKey) {
    sql.push(" and entry_type = ").push_bind(&key.entry_type);
    sql.push(" and entry_name = ").push_bind(&key.name);
    sql.push(" and entry_key = ").push_bind(&key.key);
}

#[async_trait]
impl LogReader for SqlStore {
    async fn read_runs(
        &self,
        environment: &str,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<RunSummary>, StoreError> {
        let mut pooled = self.acquire().await?;
        let conn = &mut pooled.conn();
        conn.sql(
            "select run_id, trigger, families, as_of, config_hash, status, forced, started_at,
                    finished_at, created_count, updated_count, deleted_count, unchanged_count, error
             from cache_sync_run where environment = $1 order by run_id desc limit $2 offset $3",
        )
        .bind(environment)
        .bind(limit)
        .bind(offset)
        .fetch_all(conn)
        .await
        .during("reading runs")
    }

    async fn run_at(
        &self,
        environment: &str,
        at: DateTime<Utc>,
    ) -> Result<Option<RunId>, StoreError> {
        let mut pooled = self.acquire().await?;
        let conn = &mut pooled.conn();
        let id: Option<i64> = conn
            .sql(
                "select max(run_id) from cache_sync_run
                 where environment = $1 and status = 'completed' and finished_at <= $2",
            )
            .bind(environment)
            .bind(at)
            .scalar(conn)
            .await
            .during("finding the run at a time")?;
        Ok(id.map(RunId))
    }

    async fn read_events(
        &self,
        environment: &str,
        filter: &EventFilter,
    ) -> Result<Vec<LoggedEvent>, StoreError> {
        read_events(&mut self.acquire().await?.conn(), environment, filter).await
    }

    async fn checkpoint_before(
        &self,
        environment: &str,
        run_id: RunId,
        key: Option<&EntryKey>,
    ) -> Result<Option<Checkpoint>, StoreError> {
        checkpoint_before(&mut self.acquire().await?.conn(), environment, run_id, key).await
    }

    async fn live_value(
        &self,
        environment: &str,
        key: &EntryKey,
    ) -> Result<Option<serde_json::Value>, StoreError> {
        let mut pooled = self.acquire().await?;
        let conn = &mut pooled.conn();
        let value: Option<(Json<serde_json::Value>,)> = conn
            .sql(
                "select value from cache_entries
                 where environment = $1 and type = $2 and name = $3 and key = $4
                 order by id limit 1",
            )
            .bind(environment)
            .bind(&key.entry_type)
            .bind(&key.name)
            .bind(&key.key)
            .fetch_optional(conn)
            .await
            .during("reading a live value")?;
        Ok(value.map(|(Json(v),)| v))
    }

    async fn latest_compaction(
        &self,
        environment: &str,
    ) -> Result<Option<CompactionRecord>, StoreError> {
        super::compaction::latest_compaction(&mut self.acquire().await?.conn(), environment).await
    }
}

/// Logged events of `environment` (the `LogReader` role, and a run reading its own log).
pub(super) async fn read_events(
    conn: &mut Conn<'_>,
    environment: &str,
    filter: &EventFilter,
) -> Result<Vec<LoggedEvent>, StoreError> {
    let mut sql = conn.sql(
        "select seq, run_id, entry_type, entry_name, entry_key, version, op, family,
                hash_before, hash_after, change, recorded_at
         from cache_sync_event where environment = ",
    );
    sql.push_bind(environment);
    if let Some(key) = &filter.key {
        push_entry(&mut sql, key);
    }
    if let Some(run) = filter.after_run {
        sql.push(" and run_id > ").push_bind(run.0);
    }
    if let Some(run) = filter.up_to_run {
        sql.push(" and run_id <= ").push_bind(run.0);
    }
    if let Some(symbol) = &filter.symbol {
        sql.push(" and ");
        conn.dialect().push_change_mentions(&mut sql, symbol);
    }
    sql.push(if filter.newest_first {
        " order by seq desc"
    } else {
        " order by seq"
    });
    if let Some(limit) = filter.limit {
        sql.push(" limit ").push_bind(limit);
    }
    let rows: Vec<EventRow> = sql.fetch_all(conn).await.during("reading events")?;
    let mut events = rows
        .into_iter()
        .map(
            |(seq, run_id, t, n, k, version, op, family, before, after, change, at)| {
                Ok(LoggedEvent {
                    seq,
                    run_id: RunId(run_id),
                    key: EntryKey::new(t, n, k),
                    version,
                    op: parse_op(&op)?,
                    family: parse_family(&family)?,
                    hash_before: parse_hash(before)?,
                    hash_after: parse_hash(after)?,
                    // Parsed straight into the typed change: replay reads thousands.
                    change: change.0,
                    recorded_at: at,
                })
            },
        )
        .collect::<Result<Vec<_>, StoreError>>()?;
    if !filter.without_run_values {
        attach_run_values(conn, &mut events).await?;
    }
    Ok(events)
}

/// Gives each `revalued` change its run's values, read once per run and shared.
async fn attach_run_values(
    conn: &mut Conn<'_>,
    events: &mut [LoggedEvent],
) -> Result<(), StoreError> {
    let runs: Vec<i64> = events
        .iter()
        .filter(|e| e.change.revalued)
        .map(|e| e.run_id.0)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let rows: Vec<(i64, Json<RunValues>)> =
        fetch_chunked(conn, &runs, 1, "reading run values", |sql, chunk| {
            sql.push("select run_id, member_values from cache_sync_run_values where run_id in ")
                .push_list(chunk.iter().copied());
            Ok(())
        })
        .await?;
    let by_run: HashMap<i64, Arc<RunValues>> = rows
        .into_iter()
        .map(|(run, Json(values))| (run, Arc::new(values)))
        .collect();
    for event in events.iter_mut().filter(|e| e.change.revalued) {
        let values = by_run.get(&event.run_id.0).ok_or_else(|| {
            StoreError::Corrupt(format!(
                "event {} takes the values of run {}, which the log does not hold",
                event.seq, event.run_id.0
            ))
        })?;
        event.change.run_values = Some(Arc::clone(values));
    }
    Ok(())
}

/// The newest checkpoint at or before `run_id` (only `key`'s row when given).
pub(super) async fn checkpoint_before(
    conn: &mut Conn<'_>,
    environment: &str,
    run_id: RunId,
    key: Option<&EntryKey>,
) -> Result<Option<Checkpoint>, StoreError> {
    let found: Option<(i64, i64)> = conn
        .sql(
            "select run_id, max(last_seq) from cache_sync_checkpoint
             where environment = $1 and run_id <= $2
             group by run_id order by run_id desc limit 1",
        )
        .bind(environment)
        .bind(run_id.0)
        .fetch_optional(conn)
        .await
        .during("finding a checkpoint")?;
    let Some((checkpoint_run, last_seq)) = found else {
        return Ok(None);
    };
    let mut sql = conn.sql(
        "select entry_type, entry_name, entry_key, family, value, hash
         from cache_sync_checkpoint where environment = ",
    );
    sql.push_bind(environment)
        .push(" and run_id = ")
        .push_bind(checkpoint_run);
    if let Some(key) = key {
        push_entry(&mut sql, key);
    }
    let rows: Vec<(
        String,
        String,
        String,
        String,
        Json<serde_json::Value>,
        String,
    )> = sql.fetch_all(conn).await.during("reading a checkpoint")?;
    let entries = rows
        .into_iter()
        .map(|(t, n, k, family, Json(value), hash)| {
            let hash = parse_hash(Some(hash))?
                .ok_or_else(|| StoreError::Corrupt("a checkpoint without hash".to_owned()))?;
            Ok((EntryKey::new(t, n, k), parse_family(&family)?, value, hash))
        })
        .collect::<Result<_, StoreError>>()?;
    Ok(Some(Checkpoint {
        run_id: RunId(checkpoint_run),
        last_seq,
        entries,
    }))
}
