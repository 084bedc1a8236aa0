//! The outbox table: written with the run, read and marked by the relay.

use crate::domain::events::OutgoingEvent;
use crate::domain::types::{EntryKey, RunId};
use crate::store::rows::outbox_row;
use crate::store::{OutboxRow, QueryContext, StoreError};
use sqlx::{PgExecutor, Postgres, QueryBuilder};

pub(super) async fn append<'e>(
    db: impl PgExecutor<'e>,
    run_id: RunId,
    environment: &str,
    events: &[OutgoingEvent],
) -> Result<(), StoreError> {
    if events.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "insert into cache_sync_outbox (run_id, environment, seq, channel, also_channel, event, payload)
         select $1, $2, s, c, a, e, p
         from unnest($3::int8[], $4::text[], $5::text[], $6::text[], $7::jsonb[])
              with ordinality as o(s, c, a, e, p, n)
         order by n",
    )
    .bind(run_id.0)
    .bind(environment)
    .bind(events.iter().map(|e| e.seq).collect::<Vec<_>>())
    .bind(events.iter().map(|e| e.channel.as_str()).collect::<Vec<_>>())
    .bind(events.iter().map(|e| e.also_channel.as_deref()).collect::<Vec<_>>())
    .bind(events.iter().map(|e| e.event.as_str()).collect::<Vec<_>>())
    .bind(events.iter().map(|e| e.payload.clone()).collect::<Vec<_>>())
    .execute(db)
    .await
    .during("queueing events in the outbox")?;
    Ok(())
}

const COLUMNS: &str =
    "select outbox_id, run_id, seq, channel, also_channel, event, payload::text as payload, created_at, published_at from cache_sync_outbox";

pub(super) async fn pending<'e>(
    db: impl PgExecutor<'e>,
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
    db: impl PgExecutor<'e>,
    ids: &[i64],
) -> Result<(), StoreError> {
    sqlx::query("update cache_sync_outbox set published_at = now() where outbox_id = any($1) and published_at is null")
        .bind(ids)
        .execute(db)
        .await
        .during("marking outbox events published")?;
    Ok(())
}

pub(super) async fn read<'e>(
    db: impl PgExecutor<'e>,
    after_seq: Option<i64>,
    universe: Option<&EntryKey>,
    limit: i64,
) -> Result<Vec<OutboxRow>, StoreError> {
    let mut q: QueryBuilder<Postgres> = QueryBuilder::new(COLUMNS);
    q.push(" where true");
    if let Some(seq) = after_seq {
        q.push(" and seq > ").push_bind(seq);
    }
    if let Some(key) = universe {
        q.push(" and payload->>'type' = ")
            .push_bind(&key.entry_type);
        q.push(" and payload->>'name' = ").push_bind(&key.name);
        q.push(" and payload->>'key' = ").push_bind(&key.key);
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
