//! The `Compactor` role: a compaction's transaction. It reads the completed runs and the log,
//! writes the folded checkpoint, and deletes what was folded through the one path the log's
//! triggers let pass (see the compaction migration): the compaction row is written first, the
//! dialect opens the path for this transaction only, and closes it before commit.

use super::append;
use super::database::{SqlStore, SqlTx, Writes};
use super::log_reader;
use super::sql::Conn;
use super::{
    Checkpoint, CompactionRecord, CompactionTx, Compactor, EventFilter, LockOutcome, LoggedEvent,
    NewCompaction, QueryContext, RunTx, StoreError,
};
use crate::domain::fingerprint::ContentHash;
use crate::domain::types::{EntryKey, Family, RunId};
use async_trait::async_trait;
use chrono::NaiveDate;

#[async_trait]
impl Compactor for SqlStore {
    async fn begin_compaction(&self) -> Result<Box<dyn CompactionTx>, StoreError> {
        // Deferred like a run: `try_lock_writer` takes the writer lock without waiting.
        Ok(Box::new(self.transaction(Writes::Later).await?))
    }
}

/// (id, horizon_run, horizon_as_of, checkpoint_run, last_seq, events_removed,
/// checkpoints_removed, bytes_before, bytes_after) of `cache_sync_compaction`.
type CompactionRow = (i64, i64, Option<NaiveDate>, i64, i64, i64, i64, i64, i64);

const COMPACTION_COLUMNS: &str = "id, horizon_run, horizon_as_of, checkpoint_run, last_seq,
    events_removed, checkpoints_removed, bytes_before, bytes_after";

fn record(
    (id, horizon, as_of, checkpoint, last_seq, events, checkpoints, before, after): CompactionRow,
) -> CompactionRecord {
    CompactionRecord {
        id,
        horizon_run: RunId(horizon),
        horizon_as_of: as_of,
        checkpoint_run: RunId(checkpoint),
        last_seq,
        events_removed: events,
        checkpoints_removed: checkpoints,
        bytes_before: before,
        bytes_after: after,
    }
}

/// The newest compaction of `environment` (the `LogReader` role, and a compaction's own read).
pub(super) async fn latest_compaction(
    conn: &mut Conn<'_>,
    environment: &str,
) -> Result<Option<CompactionRecord>, StoreError> {
    let row: Option<CompactionRow> = conn
        .sql(&format!(
            "select {COMPACTION_COLUMNS} from cache_sync_compaction
             where environment = $1 order by id desc limit 1"
        ))
        .bind(environment)
        .fetch_optional(conn)
        .await
        .during("reading the latest compaction")?;
    Ok(row.map(record))
}

#[async_trait]
impl CompactionTx for SqlTx {
    async fn try_lock_writer(&mut self) -> Result<LockOutcome, StoreError> {
        RunTx::try_lock_writer(self).await
    }

    async fn completed_runs(
        &mut self,
        environment: &str,
    ) -> Result<Vec<(RunId, Option<NaiveDate>)>, StoreError> {
        let conn = &mut self.conn();
        let rows: Vec<(i64, Option<NaiveDate>)> = conn
            .sql(
                "select run_id, as_of from cache_sync_run
                 where environment = $1 and status = 'completed' order by run_id",
            )
            .bind(environment)
            .fetch_all(conn)
            .await
            .during("reading completed runs")?;
        Ok(rows
            .into_iter()
            .map(|(id, as_of)| (RunId(id), as_of))
            .collect())
    }

    async fn latest_compaction(
        &mut self,
        environment: &str,
    ) -> Result<Option<CompactionRecord>, StoreError> {
        latest_compaction(&mut self.conn(), environment).await
    }

    async fn read_events(
        &mut self,
        environment: &str,
        filter: &EventFilter,
    ) -> Result<Vec<LoggedEvent>, StoreError> {
        log_reader::read_events(&mut self.conn(), environment, filter).await
    }

    async fn checkpoint_before(
        &mut self,
        environment: &str,
        run_id: RunId,
    ) -> Result<Option<Checkpoint>, StoreError> {
        log_reader::checkpoint_before(&mut self.conn(), environment, run_id, None).await
    }

    async fn append_checkpoint(
        &mut self,
        environment: &str,
        run_id: RunId,
        entries: &[(&EntryKey, Family, &serde_json::Value, ContentHash)],
    ) -> Result<(), StoreError> {
        append::checkpoint(&mut self.conn(), environment, run_id, entries).await
    }

    async fn log_bytes(
        &mut self,
        environment: &str,
        kept_from: Option<RunId>,
    ) -> Result<i64, StoreError> {
        let conn = &mut self.conn();
        // Without `kept_from` every run id qualifies (ids start at 1).
        let from = kept_from.map_or(0, |r| r.0);
        conn.sql(
            "select coalesce((select sum(length(cast(change as text))) from cache_sync_event
                              where environment = $1 and run_id > $2), 0)
                  + coalesce((select sum(length(cast(member_values as text)))
                              from cache_sync_run_values
                              where environment = $1 and run_id > $2), 0)
                  + coalesce((select sum(length(cast(value as text))) from cache_sync_checkpoint
                              where environment = $1 and run_id >= $2), 0)",
        )
        .bind(environment)
        .bind(from)
        .scalar(conn)
        .await
        .during("measuring the log")
    }

    async fn count_folded(
        &mut self,
        environment: &str,
        run_id: RunId,
    ) -> Result<(i64, i64), StoreError> {
        let conn = &mut self.conn();
        conn.sql(
            "select (select count(*) from cache_sync_event
                     where environment = $1 and run_id <= $2),
                    (select count(distinct run_id) from cache_sync_checkpoint
                     where environment = $1 and run_id < $2)",
        )
        .bind(environment)
        .bind(run_id.0)
        .fetch_optional(conn)
        .await
        .during("counting what compaction removes")?
        .ok_or_else(|| StoreError::Corrupt("a count without a row".to_owned()))
    }

    async fn remove_folded(
        &mut self,
        environment: &str,
        c: &NewCompaction,
    ) -> Result<CompactionRecord, StoreError> {
        let conn = &mut self.conn();
        let dialect = conn.dialect();
        let last_seq = append::highest_seq(conn).await?;
        let (txid_column, txid_value) = dialect.compaction_txid();
        let row: CompactionRow = conn
            .sql(&format!(
                "insert into cache_sync_compaction (environment, horizon_run, horizon_as_of,
                     checkpoint_run, last_seq, events_removed, checkpoints_removed, bytes_before,
                     bytes_after{txid_column})
                 values ($1, $2, $3, $4, $5, $6, $7, $8, $9{txid_value})
                 returning {COMPACTION_COLUMNS}"
            ))
            .bind(environment)
            .bind(c.horizon_run.0)
            .bind(c.horizon_as_of)
            .bind(c.checkpoint_run.0)
            .bind(last_seq)
            .bind(c.events_removed)
            .bind(c.checkpoints_removed)
            .bind(c.bytes_before)
            .bind(c.bytes_after)
            .fetch_optional(conn)
            .await
            .during("recording the compaction")?
            .ok_or_else(|| StoreError::Corrupt("an insert returned no row".to_owned()))?;
        let compaction = record(row);
        dialect.open_compaction_path(conn, compaction.id).await?;
        let events = conn
            .sql("delete from cache_sync_event where environment = $1 and run_id <= $2")
            .bind(environment)
            .bind(c.checkpoint_run.0)
            .execute(conn)
            .await
            .during("deleting folded events")?;
        conn.sql("delete from cache_sync_run_values where environment = $1 and run_id <= $2")
            .bind(environment)
            .bind(c.checkpoint_run.0)
            .execute(conn)
            .await
            .during("deleting folded run values")?;
        conn.sql("delete from cache_sync_checkpoint where environment = $1 and run_id < $2")
            .bind(environment)
            .bind(c.checkpoint_run.0)
            .execute(conn)
            .await
            .during("deleting superseded checkpoints")?;
        dialect.close_compaction_path(conn, compaction.id).await?;
        if events as i64 != c.events_removed {
            return Err(StoreError::Corrupt(format!(
                "compaction counted {} events to remove but deleted {events}",
                c.events_removed
            )));
        }
        Ok(compaction)
    }

    async fn commit(self: Box<Self>) -> Result<(), StoreError> {
        SqlTx::commit(*self, "committing the compaction").await
    }

    async fn rollback(self: Box<Self>) -> Result<(), StoreError> {
        SqlTx::rollback(*self).await
    }
}
