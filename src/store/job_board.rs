//! The `JobBoard` role: API jobs (`cache_sync_job`) and their statistics.

use super::database::SqlStore;
use super::database::Writes;
use super::dialect::Dialect;
use super::{
    JobBoard, JobRecord, JobStats, JobStatus, Owner, QueryContext, SettledJobs, StoreError,
};
use async_trait::async_trait;
use chrono::{DateTime, Utc};

/// PostgreSQL's index that allows one pending or running job (migration `one_active_job`).
const ONE_ACTIVE_JOB_INDEX: &str = "cache_sync_job_one_active_uidx";

/// The columns of a job, with its duration computed.
fn columns(dialect: Dialect) -> String {
    format!(
        "select job_id, mode, force, triggered_by, status, created_at, start_time, end_time,
                {} as duration_seconds, error_details, progress, run_id, plan_id, owner, import_run_id
         from cache_sync_job",
        dialect.seconds_between("start_time", "end_time")
    )
}

#[async_trait]
impl JobBoard for SqlStore {
    async fn create_job(&self, job: &JobRecord) -> Result<bool, StoreError> {
        let mut pooled = self.acquire().await?;
        let conn = &mut pooled.conn();
        // One statement: the insert happens only while no job is pending or running. SQLite
        // runs it under its write lock; on PostgreSQL two concurrent inserts can both pass the
        // NOT EXISTS, and the one-active-job index refuses the second.
        let inserted = conn
            .sql(
                "insert into cache_sync_job (job_id, mode, force, triggered_by, status, created_at,
                     plan_id, owner, import_run_id)
                 select $1, $2, $3, $4, 'pending', $5, $6, $7, $8
                 where not exists (select 1 from cache_sync_job
                                   where status in ('pending', 'running'))",
            )
            .bind(&job.job_id)
            .bind(&job.mode)
            .bind(job.force)
            .bind(job.triggered_by.as_str())
            .bind(job.created_at)
            .bind(&job.plan_id)
            .bind(&job.owner)
            .bind(&job.import_run_id)
            .execute(conn)
            .await;
        let inserted = match inserted {
            Err(sqlx::Error::Database(e)) if e.constraint() == Some(ONE_ACTIVE_JOB_INDEX) => 0,
            other => other.during("creating a job")?,
        };
        Ok(inserted == 1)
    }

    async fn update_job(
        &self,
        job_id: &str,
        status: JobStatus,
        error_details: Option<&str>,
        run_id: Option<i64>,
    ) -> Result<(), StoreError> {
        let mut pooled = self.acquire().await?;
        let conn = &mut pooled.conn();
        let mut sql = conn
            .sql(
                "update cache_sync_job set status = $1, error_details = coalesce($2, error_details),
                     run_id = coalesce($3, run_id)",
            )
            .bind(status.as_str())
            .bind(error_details)
            .bind(run_id);
        let now = conn.dialect().now(&mut sql, Utc::now());
        match status {
            JobStatus::Running => sql.push(&format!(", start_time = {now}")),
            JobStatus::Completed | JobStatus::Failed => sql.push(&format!(", end_time = {now}")),
            JobStatus::Pending => &mut sql,
        };
        sql.push(" where job_id = ").push_bind(job_id);
        sql.execute(conn).await.during("updating a job")?;
        Ok(())
    }

    async fn job_progress(
        &self,
        job_id: &str,
        progress: &serde_json::Value,
    ) -> Result<(), StoreError> {
        let mut pooled = self.acquire().await?;
        let conn = &mut pooled.conn();
        conn.sql("update cache_sync_job set progress = $2 where job_id = $1")
            .bind(job_id)
            .bind(progress)
            .execute(conn)
            .await
            .during("recording job progress")?;
        Ok(())
    }

    async fn get_job(&self, job_id: &str) -> Result<Option<JobRecord>, StoreError> {
        let mut pooled = self.acquire().await?;
        let conn = &mut pooled.conn();
        conn.sql(&format!("{} where job_id = $1", columns(conn.dialect())))
            .bind(job_id)
            .fetch_optional(conn)
            .await
            .during("reading a job")
    }

    async fn list_jobs(
        &self,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<JobRecord>, i64), StoreError> {
        let mut pooled = self.acquire().await?;
        let conn = &mut pooled.conn();
        let jobs = conn
            .sql(&format!(
                "{} order by created_at desc, job_id limit $1 offset $2",
                columns(conn.dialect())
            ))
            .bind(limit)
            .bind(offset)
            .fetch_all(conn)
            .await
            .during("listing jobs")?;
        let total: i64 = conn
            .sql("select count(*) from cache_sync_job")
            .scalar(conn)
            .await
            .during("counting jobs")?;
        Ok((jobs, total))
    }

    async fn settle_abandoned_jobs(
        &self,
        job_id: Option<&str>,
        reason: &str,
    ) -> Result<SettledJobs, StoreError> {
        let mut tx = self.transaction(Writes::Now).await?;
        let conn = &mut tx.conn();
        // The runs each job asked for, newest first; a job has at most one.
        let runs = "from cache_sync_run r where r.job_id = cache_sync_job.job_id";
        let mut sql = conn.sql("");
        let now = conn.dialect().now(&mut sql, Utc::now());
        sql.push(&format!(
            "update cache_sync_job set status = 'completed', end_time = {now},
                 run_id = (select max(r.run_id) {runs} and r.status = 'completed')
             where status in ('pending', 'running')
               and exists (select 1 {runs} and r.status = 'completed')"
        ));
        if let Some(job_id) = job_id {
            sql.push(" and job_id = ").push_bind(job_id);
        }
        let completed = sql.execute(conn).await.during("settling committed jobs")?;
        // Not committed: refused (its record says why) or never got that far.
        let mut sql = conn.sql("");
        let now = conn.dialect().now(&mut sql, Utc::now());
        let reason = sql.param(reason);
        sql.push(&format!(
            "update cache_sync_job set status = 'failed', end_time = {now},
                 run_id = (select max(r.run_id) {runs}),
                 error_details = coalesce(
                     (select r.error {runs} order by r.run_id desc limit 1), {reason})
             where status in ('pending', 'running')"
        ));
        if let Some(job_id) = job_id {
            sql.push(" and job_id = ").push_bind(job_id);
        }
        let failed = sql.execute(conn).await.during("failing abandoned jobs")?;
        tx.commit("settling abandoned jobs").await?;
        Ok(SettledJobs { completed, failed })
    }

    async fn claim_owner(&self) -> Result<Owner, StoreError> {
        SqlStore::claim_owner(self).await
    }

    async fn keep_owner(&self, owner: &Owner) -> Result<(), StoreError> {
        SqlStore::keep_owner(self, owner).await
    }

    async fn owner_alive(&self, owner: &str) -> Result<bool, StoreError> {
        SqlStore::owner_alive(self, owner).await
    }

    async fn job_for_import(&self, import_run_id: &str) -> Result<Option<JobRecord>, StoreError> {
        let mut pooled = self.acquire().await?;
        let conn = &mut pooled.conn();
        conn.sql(&format!(
            "{} where import_run_id = $1",
            columns(conn.dialect())
        ))
        .bind(import_run_id)
        .fetch_optional(conn)
        .await
        .during("reading an import's job")
    }

    async fn unfinished_jobs(&self) -> Result<Vec<JobRecord>, StoreError> {
        let mut pooled = self.acquire().await?;
        let conn = &mut pooled.conn();
        conn.sql(&format!(
            "{} where status in ('pending', 'running') order by created_at, job_id",
            columns(conn.dialect())
        ))
        .fetch_all(conn)
        .await
        .during("listing unfinished jobs")
    }

    async fn job_stats(&self, since: DateTime<Utc>) -> Result<JobStats, StoreError> {
        let mut pooled = self.acquire().await?;
        let conn = &mut pooled.conn();
        let seconds = conn.dialect().seconds_between("start_time", "end_time");
        let stats: Option<JobStats> = conn
            .sql(&format!(
                "select count(*) as total,
                        count(*) filter (where status = 'completed') as completed,
                        count(*) filter (where status = 'failed') as failed,
                        count(*) filter (where status in ('pending', 'running')) as running,
                        avg({seconds}) filter (where status = 'completed')
                            as average_duration_seconds,
                        max(end_time) filter (where status = 'completed') as last_completed_at
                 from cache_sync_job where created_at >= $1"
            ))
            .bind(since)
            .fetch_optional(conn)
            .await
            .during("computing job statistics")?;
        Ok(stats.unwrap_or_default())
    }
}
