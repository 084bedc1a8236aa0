//! Reading the audit log (runs, events, checkpoints) and writing checkpoints.

use super::{json_text, parse_hash, parse_json, ts};
use crate::domain::diff::EntryChange;
use crate::domain::fingerprint::ContentHash;
use crate::domain::types::{EntryKey, Family, RunId};
use crate::store::{Checkpoint, EventFilter, LoggedEvent, QueryContext, RunSummary, StoreError};
use chrono::{DateTime, Utc};
use sqlx::sqlite::SqliteConnection;
use sqlx::{QueryBuilder, Row, Sqlite, SqliteExecutor};

use crate::store::rows::parse_op;

use crate::store::rows::parse_family;

pub(super) async fn read_runs<'e>(
    db: impl SqliteExecutor<'e>,
    environment: &str,
    limit: i64,
    offset: i64,
) -> Result<Vec<RunSummary>, StoreError> {
    let rows = sqlx::query(
        "select run_id, trigger, families, as_of, config_hash, status, forced, started_at, finished_at,
                created_count, updated_count, deleted_count, unchanged_count, error
         from cache_sync_run where environment = $1 order by run_id desc limit $2 offset $3",
    )
    .bind(environment)
    .bind(limit)
    .bind(offset)
    .fetch_all(db)
    .await
    .during("reading runs")?;
    rows.iter().map(crate::store::rows::run_summary).collect()
}

pub(super) async fn run_at<'e>(
    db: impl SqliteExecutor<'e>,
    environment: &str,
    at: DateTime<Utc>,
) -> Result<Option<RunId>, StoreError> {
    let id: Option<i64> = sqlx::query_scalar(
        "select max(run_id) from cache_sync_run
         where environment = $1 and status = 'completed' and finished_at <= $2",
    )
    .bind(environment)
    .bind(ts(at))
    .fetch_one(db)
    .await
    .during("finding the run at a time")?;
    Ok(id.map(RunId))
}

pub(super) async fn read_events<'e>(
    db: impl SqliteExecutor<'e>,
    environment: &str,
    filter: &EventFilter,
) -> Result<Vec<LoggedEvent>, StoreError> {
    let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(
        "select seq, run_id, entry_type, entry_name, entry_key, version, op, family, hash_before,
                hash_after, change, recorded_at
         from cache_sync_event where environment = ",
    );
    q.push_bind(environment);
    if let Some(key) = &filter.key {
        q.push(" and entry_type = ").push_bind(&key.entry_type);
        q.push(" and entry_name = ").push_bind(&key.name);
        q.push(" and entry_key = ").push_bind(&key.key);
    }
    if let Some(run) = filter.after_run {
        q.push(" and run_id > ").push_bind(run.0);
    }
    if let Some(run) = filter.up_to_run {
        q.push(" and run_id <= ").push_bind(run.0);
    }
    if let Some(symbol) = &filter.symbol {
        // `lists[*].added[*].ticker` or `lists[*].removed[*].ticker` equals the symbol.
        q.push(
            " and exists (select 1 from json_each(change, '$.lists') l, json_each(l.value, '$.added') a
                          where json_extract(a.value, '$.ticker') = ",
        )
        .push_bind(symbol)
        .push(
            " union all select 1 from json_each(change, '$.lists') l, json_each(l.value, '$.removed') r
                          where json_extract(r.value, '$.ticker') = ",
        )
        .push_bind(symbol)
        .push(")");
    }
    q.push(if filter.newest_first {
        " order by seq desc"
    } else {
        " order by seq"
    });
    if let Some(limit) = filter.limit {
        q.push(" limit ").push_bind(limit);
    }
    let rows = q.build().fetch_all(db).await.during("reading events")?;
    rows.into_iter()
        .map(|r| {
            let get = "reading an event";
            let change: String = r.try_get("change").during(get)?;
            let op: String = r.try_get("op").during(get)?;
            let family: String = r.try_get("family").during(get)?;
            Ok(LoggedEvent {
                seq: r.try_get("seq").during(get)?,
                run_id: RunId(r.try_get("run_id").during(get)?),
                key: EntryKey::new(
                    r.try_get::<String, _>("entry_type").during(get)?,
                    r.try_get::<String, _>("entry_name").during(get)?,
                    r.try_get::<String, _>("entry_key").during(get)?,
                ),
                version: r.try_get("version").during(get)?,
                op: parse_op(&op)?,
                family: parse_family(&family)?,
                hash_before: parse_hash(r.try_get("hash_before").during(get)?)?,
                hash_after: parse_hash(r.try_get("hash_after").during(get)?)?,
                change: parse_json::<EntryChange>(&change, "event change")?,
                recorded_at: r.try_get("recorded_at").during(get)?,
            })
        })
        .collect()
}

pub(super) async fn checkpoint_before<'e>(
    db: impl SqliteExecutor<'e> + Copy,
    environment: &str,
    run_id: RunId,
    key: Option<&EntryKey>,
) -> Result<Option<Checkpoint>, StoreError> {
    let found: Option<(i64, i64)> = sqlx::query_as(
        "select run_id, max(last_seq) from cache_sync_checkpoint
         where environment = $1 and run_id <= $2 group by run_id order by run_id desc limit 1",
    )
    .bind(environment)
    .bind(run_id.0)
    .fetch_optional(db)
    .await
    .during("finding a checkpoint")?;
    let Some((cp_run, last_seq)) = found else {
        return Ok(None);
    };
    let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(
        "select entry_type, entry_name, entry_key, family, value, hash from cache_sync_checkpoint
         where environment = ",
    );
    q.push_bind(environment)
        .push(" and run_id = ")
        .push_bind(cp_run);
    if let Some(key) = key {
        q.push(" and entry_type = ").push_bind(&key.entry_type);
        q.push(" and entry_name = ").push_bind(&key.name);
        q.push(" and entry_key = ").push_bind(&key.key);
    }
    let rows: Vec<(String, String, String, String, String, String)> = q
        .build_query_as()
        .fetch_all(db)
        .await
        .during("reading a checkpoint")?;
    let entries = rows
        .into_iter()
        .map(|(t, n, k, family, value, hash)| {
            let hash = ContentHash::parse(&hash)
                .ok_or_else(|| StoreError::Corrupt(format!("bad hash `{hash}` in a checkpoint")))?;
            Ok((
                EntryKey::new(t, n, k),
                parse_family(&family)?,
                parse_json(&value, "a checkpoint value")?,
                hash,
            ))
        })
        .collect::<Result<_, StoreError>>()?;
    Ok(Some(Checkpoint {
        run_id: RunId(cp_run),
        last_seq,
        entries,
    }))
}

pub(super) async fn runs_since_checkpoint<'e>(
    db: impl SqliteExecutor<'e>,
    environment: &str,
) -> Result<i64, StoreError> {
    sqlx::query_scalar(
        "select count(*) from cache_sync_run
         where environment = $1 and status = 'completed'
           and run_id > coalesce((select max(run_id) from cache_sync_checkpoint where environment = $1), 0)",
    )
    .bind(environment)
    .fetch_one(db)
    .await
    .during("counting runs since the last checkpoint")
}

pub(super) async fn append_checkpoint(
    conn: &mut SqliteConnection,
    environment: &str,
    run_id: RunId,
    entries: &[(&EntryKey, Family, &serde_json::Value, ContentHash)],
) -> Result<(), StoreError> {
    let last_seq: i64 = sqlx::query_scalar(
        "select coalesce(max(seq), 0) from cache_sync_event where environment = $1",
    )
    .bind(environment)
    .fetch_one(&mut *conn)
    .await
    .during("writing a checkpoint")?;
    for (key, family, value, hash) in entries {
        sqlx::query(
            "insert into cache_sync_checkpoint (run_id, environment, last_seq, entry_type, entry_name,
                 entry_key, family, value, hash)
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(run_id.0)
        .bind(environment)
        .bind(last_seq)
        .bind(&key.entry_type)
        .bind(&key.name)
        .bind(&key.key)
        .bind(family.as_str())
        .bind(json_text(*value)?)
        .bind(hash.to_hex())
        .execute(&mut *conn)
        .await
        .during("writing a checkpoint")?;
    }
    Ok(())
}

pub(super) async fn live_value<'e>(
    db: impl SqliteExecutor<'e>,
    environment: &str,
    key: &EntryKey,
) -> Result<Option<serde_json::Value>, StoreError> {
    let text: Option<String> = sqlx::query_scalar(
        "select value from cache_entries where environment = $1 and type = $2 and name = $3 and key = $4
         order by id limit 1",
    )
    .bind(environment)
    .bind(&key.entry_type)
    .bind(&key.name)
    .bind(&key.key)
    .fetch_optional(db)
    .await
    .during("reading a live value")?;
    text.map(|t| parse_json(&t, "a cache_entries value"))
        .transpose()
}
