//! The `Outbox` role: change events written with their run, read and marked by the relay.

use super::database::SqlStore;
use super::sql::rows_per_statement;
use super::{Outbox, OutboxRow, QueryContext, StoreError};
use crate::domain::types::EntryKey;
use async_trait::async_trait;
use chrono::Utc;

const COLUMNS: &str = "select outbox_id, run_id, seq, channel, also_channel, event, payload,
        created_at, published_at
     from cache_sync_outbox";

#[async_trait]
impl Outbox for SqlStore {
    async fn pending_outbox(&self, limit: i64) -> Result<Vec<OutboxRow>, StoreError> {
        let mut pooled = self.acquire().await?;
        let conn = &mut pooled.conn();
        conn.sql(&format!(
            "{COLUMNS} where published_at is null order by outbox_id limit $1"
        ))
        .bind(limit)
        .fetch_all(conn)
        .await
        .during("reading pending outbox events")
    }

    async fn mark_published(&self, ids: &[i64]) -> Result<(), StoreError> {
        let mut pooled = self.acquire().await?;
        let conn = &mut pooled.conn();
        for chunk in ids.chunks(rows_per_statement(conn.dialect(), 1)) {
            let mut sql = conn.sql("");
            let now = conn.dialect().now(&mut sql, Utc::now());
            sql.push(&format!(
                "update cache_sync_outbox set published_at = {now}
                 where published_at is null and outbox_id in "
            ))
            .push_list(chunk.iter().copied());
            sql.execute(conn)
                .await
                .during("marking outbox events published")?;
        }
        Ok(())
    }

    async fn read_outbox(
        &self,
        after_seq: Option<i64>,
        universe: Option<&EntryKey>,
        limit: i64,
    ) -> Result<Vec<OutboxRow>, StoreError> {
        let mut pooled = self.acquire().await?;
        let conn = &mut pooled.conn();
        let dialect = conn.dialect();
        let mut sql = conn.sql(COLUMNS);
        sql.push(" where 1 = 1");
        if let Some(seq) = after_seq {
            sql.push(" and seq > ").push_bind(seq);
        }
        if let Some(key) = universe {
            for (field, value) in [
                ("type", &key.entry_type),
                ("name", &key.name),
                ("key", &key.key),
            ] {
                sql.push(&format!(" and {} = ", dialect.json_field("payload", field)))
                    .push_bind(value);
            }
        }
        // Filtered: the oldest matches from the point asked; else the newest `limit` rows.
        let filtered = after_seq.is_some() || universe.is_some();
        sql.push(if filtered {
            " order by outbox_id limit "
        } else {
            " order by outbox_id desc limit "
        })
        .push_bind(limit);
        let mut rows: Vec<OutboxRow> = sql.fetch_all(conn).await.during("reading the outbox")?;
        if !filtered {
            rows.reverse();
        }
        Ok(rows)
    }
}
