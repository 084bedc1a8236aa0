//! The outbox table: written with the run, read and marked by the relay.

use super::{json_text, ts};
use crate::domain::events::OutgoingEvent;
use crate::domain::types::{EntryKey, RunId};
use crate::store::rows::outbox_row;
use crate::store::{OutboxRow, QueryContext, StoreError};
use chrono::Utc;
use sqlx::sqlite::SqliteConnection;
use sqlx::{QueryBuilder, Sqlite, SqliteExecutor};

pub(super) async fn append(
    conn: &mut SqliteConnection,
    run_id: RunId,
    environment: &str,
    events: &[OutgoingEvent],
) -> Result<(), StoreError> {
    let created_at = ts(Utc::now());
    // In event order: outbox ids follow the order the relay must publish in.
    for e in events {
        sqlx::query(
            "insert into cache_sync_outbox (run_id, environment, seq, channel, also_channel, event,
                 payload, created_at)
             values ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(run_id.0)
        .bind(environment)
        .bind(e.seq)
        .bind(&e.channel)
        .bind(e.also_channel.as_deref())
        .bind(&e.event)
        .bind(json_text(&e.payload)?)
        .bind(&created_at)
        .execute(&mut *conn)
        .await
        .during("queueing events in the outbox")?;
    }
    Ok(())
}

const COLUMNS: &str =
    "select outbox_id, run_id, seq, channel, also_channel, event, payload, created_at, published_at from cache_sync_outbox";

pub(super) async fn pending<'e>(
    db: impl SqliteExecutor<'e>,
    limit: i64,
) -> Result<Vec<OutboxRow>, StoreError> {
    sqlx::query(&format!(
        "{COLUMNS} where published_at is null order by outbox_id limit $1"
    ))
    .bind(limit)
    .fetch_all(db)
    .await
    .during("reading pending outbox events")?
    .into_iter()
    .map(outbox_row)
    .collect()
}

pub(super) async fn mark_published<'e>(
    db: impl SqliteExecutor<'e>,
    ids: &[i64],
) -> Result<(), StoreError> {
    if ids.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "update cache_sync_outbox set published_at = $2
         where outbox_id in (select value from json_each($1)) and published_at is null",
    )
    .bind(json_text(ids)?)
    .bind(ts(Utc::now()))
    .execute(db)
    .await
    .during("marking outbox events published")?;
    Ok(())
}

pub(super) async fn read<'e>(
    db: impl SqliteExecutor<'e>,
    after_seq: Option<i64>,
    universe: Option<&EntryKey>,
    limit: i64,
) -> Result<Vec<OutboxRow>, StoreError> {
    let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(COLUMNS);
    q.push(" where 1");
    if let Some(seq) = after_seq {
        q.push(" and seq > ").push_bind(seq);
    }
    if let Some(key) = universe {
        q.push(" and json_extract(payload, '$.type') = ")
            .push_bind(&key.entry_type);
        q.push(" and json_extract(payload, '$.name') = ")
            .push_bind(&key.name);
        q.push(" and json_extract(payload, '$.key') = ")
            .push_bind(&key.key);
    }
    if after_seq.is_some() || universe.is_some() {
        q.push(" order by outbox_id limit ").push_bind(limit);
        return q
            .build()
            .fetch_all(db)
            .await
            .during("reading the outbox")?
            .into_iter()
            .map(outbox_row)
            .collect();
    }
    q.push(" order by outbox_id desc limit ").push_bind(limit);
    let mut rows: Vec<OutboxRow> = q
        .build()
        .fetch_all(db)
        .await
        .during("reading the outbox")?
        .into_iter()
        .map(outbox_row)
        .collect::<Result<_, _>>()?;
    rows.reverse();
    Ok(rows)
}
