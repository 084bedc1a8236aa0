//! The outbox table: written with the run, read and marked by the relay.

use super::{json_text, parse_json, ts};
use crate::domain::events::OutgoingEvent;
use crate::domain::types::{EntryKey, RunId};
use crate::store::{OutboxRow, QueryContext, StoreError};
use chrono::Utc;
use sqlx::sqlite::{SqliteConnection, SqliteRow};
use sqlx::{QueryBuilder, Row, Sqlite, SqliteExecutor};

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

fn to_row(r: SqliteRow) -> Result<OutboxRow, StoreError> {
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
    .map(to_row)
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
            .map(to_row)
            .collect();
    }
    q.push(" order by outbox_id desc limit ").push_bind(limit);
    let mut rows: Vec<OutboxRow> = q
        .build()
        .fetch_all(db)
        .await
        .during("reading the outbox")?
        .into_iter()
        .map(to_row)
        .collect::<Result<_, _>>()?;
    rows.reverse();
    Ok(rows)
}
