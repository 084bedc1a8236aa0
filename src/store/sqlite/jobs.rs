//! API jobs, metrics and universe listings.

use super::{json_text, ts};
use crate::store::rows::job_record;
use crate::store::{JobRecord, JobStats, QueryContext, StoreError, UniverseRow};
use chrono::{DateTime, Utc};
use sqlx::{Row, SqliteExecutor};

/// Seconds between two stored RFC 3339 times.
const DURATION: &str = "((julianday(end_time) - julianday(start_time)) * 86400.0)";

fn columns() -> String {
    format!(
        "select job_id, mode, force, triggered_by, status, created_at, start_time, end_time,
            {DURATION} as duration_seconds, error_details, progress, run_id, plan_id
         from cache_sync_job"
    )
}

pub(super) async fn create<'e>(
    db: impl SqliteExecutor<'e>,
    job: &JobRecord,
) -> Result<bool, StoreError> {
    // One statement: SQLite runs it under the database write lock, so two concurrent triggers
    // cannot both get in.
    let inserted = sqlx::query(
        "insert into cache_sync_job (job_id, mode, force, triggered_by, status, created_at, plan_id)
         select $1, $2, $3, $4, 'pending', $5, $6
         where not exists (select 1 from cache_sync_job where status in ('pending', 'running'))",
    )
    .bind(&job.job_id)
    .bind(&job.mode)
    .bind(job.force)
    .bind(&job.triggered_by)
    .bind(ts(job.created_at))
    .bind(&job.plan_id)
    .execute(db)
    .await
    .during("creating a job")?;
    Ok(inserted.rows_affected() == 1)
}

pub(super) async fn update<'e>(
    db: impl SqliteExecutor<'e>,
    job_id: &str,
    status: &str,
    error_details: Option<&str>,
    run_id: Option<i64>,
) -> Result<(), StoreError> {
    sqlx::query(
        "update cache_sync_job set status = $2,
             start_time = case when $2 = 'running' then $5 else start_time end,
             end_time = case when $2 in ('completed', 'failed') then $5 else end_time end,
             error_details = coalesce($3, error_details),
             run_id = coalesce($4, run_id)
         where job_id = $1",
    )
    .bind(job_id)
    .bind(status)
    .bind(error_details)
    .bind(run_id)
    .bind(ts(Utc::now()))
    .execute(db)
    .await
    .during("updating a job")?;
    Ok(())
}

pub(super) async fn progress<'e>(
    db: impl SqliteExecutor<'e>,
    job_id: &str,
    progress: &serde_json::Value,
) -> Result<(), StoreError> {
    sqlx::query("update cache_sync_job set progress = $2 where job_id = $1")
        .bind(job_id)
        .bind(json_text(progress)?)
        .execute(db)
        .await
        .during("recording job progress")?;
    Ok(())
}

pub(super) async fn get<'e>(
    db: impl SqliteExecutor<'e>,
    job_id: &str,
) -> Result<Option<JobRecord>, StoreError> {
    sqlx::query(&format!("{} where job_id = $1", columns()))
        .bind(job_id)
        .fetch_optional(db)
        .await
        .during("reading a job")?
        .map(job_record)
        .transpose()
}

pub(super) async fn list<'e>(
    db: impl SqliteExecutor<'e> + Copy,
    limit: i64,
    offset: i64,
) -> Result<(Vec<JobRecord>, i64), StoreError> {
    let jobs = sqlx::query(&format!(
        "{} order by created_at desc, job_id limit $1 offset $2",
        columns()
    ))
    .bind(limit)
    .bind(offset)
    .fetch_all(db)
    .await
    .during("listing jobs")?
    .into_iter()
    .map(job_record)
    .collect::<Result<_, _>>()?;
    let total: i64 = sqlx::query_scalar("select count(*) from cache_sync_job")
        .fetch_one(db)
        .await
        .during("counting jobs")?;
    Ok((jobs, total))
}

pub(super) async fn fail_abandoned<'e>(
    db: impl SqliteExecutor<'e>,
    reason: &str,
) -> Result<u64, StoreError> {
    Ok(sqlx::query(
        "update cache_sync_job set status = 'failed', end_time = $2, error_details = $1
         where status in ('pending', 'running')",
    )
    .bind(reason)
    .bind(ts(Utc::now()))
    .execute(db)
    .await
    .during("failing abandoned jobs")?
    .rows_affected())
}

pub(super) async fn stats<'e>(
    db: impl SqliteExecutor<'e>,
    since: DateTime<Utc>,
) -> Result<JobStats, StoreError> {
    let r = sqlx::query(&format!(
        "select count(*) as total,
                count(*) filter (where status = 'completed') as completed,
                count(*) filter (where status = 'failed') as failed,
                count(*) filter (where status in ('pending', 'running')) as running,
                avg({DURATION}) filter (where status = 'completed') as avg,
                max(end_time) filter (where status = 'completed') as last
         from cache_sync_job where created_at >= $1"
    ))
    .bind(ts(since))
    .fetch_one(db)
    .await
    .during("computing job statistics")?;
    let get = "reading job statistics";
    Ok(JobStats {
        total: r.try_get("total").during(get)?,
        completed: r.try_get("completed").during(get)?,
        failed: r.try_get("failed").during(get)?,
        running: r.try_get("running").during(get)?,
        average_duration_seconds: r.try_get("avg").during(get)?,
        last_completed_at: r.try_get("last").during(get)?,
    })
}

pub(super) async fn universes<'e>(
    db: impl SqliteExecutor<'e>,
    environment: &str,
) -> Result<Vec<UniverseRow>, StoreError> {
    let rows = sqlx::query(
        "select c.type, c.name, c.key, c.updated_at,
                case json_type(c.value)
                    when 'array' then json_array_length(c.value)
                    else coalesce(json_array_length(c.value, '$.stocks'), 0)
                       + coalesce(json_array_length(c.value, '$.etfs'), 0) end as symbol_count,
                h.hash
         from cache_entries c
         join cache_sync_entry_head h on h.environment = c.environment and h.entry_type = c.type
              and h.entry_name = c.name and h.entry_key = c.key
         where c.environment = $1 and h.hash is not null
         order by c.type, c.name, c.key",
    )
    .bind(environment)
    .fetch_all(db)
    .await
    .during("listing universes")?;
    rows.iter().map(crate::store::rows::universe_row).collect()
}

pub(super) async fn metrics<'e>(
    db: impl SqliteExecutor<'e> + Copy,
    environment: &str,
) -> Result<crate::store::MetricsSnapshot, StoreError> {
    let runs: Vec<(String, i64)> = sqlx::query_as(
        "select status, count(*) from cache_sync_run where environment = $1 group by status order by status",
    )
    .bind(environment)
    .fetch_all(db)
    .await
    .during("counting runs")?;
    let run_seconds = "((julianday(finished_at) - julianday(started_at)) * 86400.0)";
    let (created, updated, deleted, sum, count, last_as_of): (
        i64,
        i64,
        i64,
        Option<f64>,
        i64,
        Option<chrono::NaiveDate>,
    ) = sqlx::query_as(&format!(
        "select coalesce(sum(created_count), 0), coalesce(sum(updated_count), 0),
                coalesce(sum(deleted_count), 0), sum({run_seconds}), count(*), max(as_of)
         from cache_sync_run where environment = $1 and status = 'completed'"
    ))
    .bind(environment)
    .fetch_one(db)
    .await
    .during("summing runs")?;
    let last: Option<f64> = sqlx::query_scalar(&format!(
        "select {run_seconds} from cache_sync_run
         where environment = $1 and status = 'completed' order by run_id desc limit 1"
    ))
    .bind(environment)
    .fetch_optional(db)
    .await
    .during("reading the last run")?
    .flatten();
    let pending: i64 =
        sqlx::query_scalar("select count(*) from cache_sync_outbox where published_at is null")
            .fetch_one(db)
            .await
            .during("counting pending events")?;
    Ok(crate::store::MetricsSnapshot {
        runs,
        deltas: vec![
            ("created".to_owned(), created),
            ("updated".to_owned(), updated),
            ("deleted".to_owned(), deleted),
        ],
        duration_sum_seconds: sum.unwrap_or(0.0),
        duration_count: count,
        last_duration_seconds: last,
        pending_outbox_events: pending,
        last_success_as_of: last_as_of,
    })
}
