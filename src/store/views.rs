//! The `ReadViews` role: the dashboard's universe listing and the metrics endpoint's figures.

use super::database::SqlStore;
use super::{MetricsSnapshot, QueryContext, ReadViews, StoreError, UniverseRow};
use async_trait::async_trait;
use chrono::NaiveDate;

#[async_trait]
impl ReadViews for SqlStore {
    async fn metrics(&self, environment: &str) -> Result<MetricsSnapshot, StoreError> {
        let mut pooled = self.acquire().await?;
        let conn = &mut pooled.conn();
        let seconds = conn.dialect().seconds_between("started_at", "finished_at");
        let runs: Vec<(String, i64)> = conn
            .sql(
                "select status, count(*) from cache_sync_run where environment = $1
                 group by status order by status",
            )
            .bind(environment)
            .fetch_all(conn)
            .await
            .during("counting runs")?;
        type Sums = (i64, i64, i64, Option<f64>, i64, Option<NaiveDate>);
        let (created, updated, deleted, sum, count, last_as_of): Sums = conn
            .sql(&format!(
                "select cast(coalesce(sum(created_count), 0) as bigint),
                        cast(coalesce(sum(updated_count), 0) as bigint),
                        cast(coalesce(sum(deleted_count), 0) as bigint),
                        cast(sum({seconds}) as double precision), count(*), max(as_of)
                 from cache_sync_run where environment = $1 and status = 'completed'"
            ))
            .bind(environment)
            .fetch_optional(conn)
            .await
            .during("summing runs")?
            .unwrap_or_default();
        let last: Option<(Option<f64>,)> = conn
            .sql(&format!(
                "select {seconds} from cache_sync_run
                 where environment = $1 and status = 'completed' order by run_id desc limit 1"
            ))
            .bind(environment)
            .fetch_optional(conn)
            .await
            .during("reading the last run")?;
        let pending: i64 = conn
            .sql("select count(*) from cache_sync_outbox where published_at is null")
            .scalar(conn)
            .await
            .during("counting pending events")?;
        Ok(MetricsSnapshot {
            runs,
            deltas: vec![
                ("created".to_owned(), created),
                ("updated".to_owned(), updated),
                ("deleted".to_owned(), deleted),
            ],
            duration_sum_seconds: sum.unwrap_or(0.0),
            duration_count: count,
            last_duration_seconds: last.and_then(|(s,)| s),
            pending_outbox_events: pending,
            last_success_as_of: last_as_of,
        })
    }

    async fn universes(&self, environment: &str) -> Result<Vec<UniverseRow>, StoreError> {
        let mut pooled = self.acquire().await?;
        let conn = &mut pooled.conn();
        let d = conn.dialect();
        let members = format!(
            "case {} when 'array' then {}
                  else coalesce({}, 0) + coalesce({}, 0) end",
            d.json_type("c.value"),
            d.json_array_length("c.value", None),
            d.json_array_length("c.value", Some("stocks")),
            d.json_array_length("c.value", Some("etfs")),
        );
        conn.sql(&format!(
            "select c.name || ':' || c.key as universe, c.type, c.name, c.key, c.updated_at,
                    cast({members} as bigint) as symbol_count, h.hash
             from cache_entries c
             join cache_sync_entry_head h on h.environment = c.environment
                  and h.entry_type = c.type and h.entry_name = c.name and h.entry_key = c.key
             where c.environment = $1 and h.hash is not null
             order by c.type, c.name, c.key"
        ))
        .bind(environment)
        .fetch_all(conn)
        .await
        .during("listing universes")
    }
}
