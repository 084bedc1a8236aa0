//! The `EventLog` role: a run's transaction. It reads the market, the configuration, the owned
//! rows and the log's heads; its writes (deltas, events, run record, outbox, checkpoints) are
//! in `append.rs`.

use super::append;
use super::database::{SqlStore, SqlTx, Writes};
use super::identity;
use super::log_reader;
use super::prices;
use super::rows::{market_row, parse_hash, LatestBar, MarketRow, Unreadable};
use super::sql::{fetch_chunked, Conn};
use super::{
    AppendedRun, Checkpoint, EntryHead, EventFilter, EventLog, LockOutcome, LoggedEvent, NewRun,
    QueryContext, RowIdentity, RunTx, StoreError, StoredRow, UniqueConstraint,
};
use crate::domain::config::ConfigRow;
use crate::domain::diff::{CurrentEntry, Delta};
use crate::domain::events::OutgoingEvent;
use crate::domain::fingerprint::ContentHash;
use crate::domain::market::MarketSnapshot;
use crate::domain::types::{EntryKey, Family, RunId, Scope};
use async_trait::async_trait;
use chrono::NaiveDate;
use sqlx::types::Json;
use std::collections::HashMap;

#[async_trait]
impl EventLog for SqlStore {
    async fn begin(&self) -> Result<Box<dyn RunTx>, StoreError> {
        // Deferred: the writer lock is taken by `try_lock_writer` (see `sqlite.rs`).
        Ok(Box::new(self.transaction(Writes::Later).await?))
    }

    async fn append_run_record(&self, run: &NewRun) -> Result<RunId, StoreError> {
        let mut tx = self.transaction(Writes::Now).await?;
        let conn = &mut tx.conn();
        conn.dialect().wait_for_writer_lock(conn).await?;
        let run_id = append::next_run_id(conn).await?;
        append::insert_run(conn, run_id, run).await?;
        tx.commit("committing the run record").await?;
        Ok(run_id)
    }

    async fn writer_lock_holder(&self) -> Result<Option<String>, StoreError> {
        self.look_at_writer_lock().await
    }
}

#[async_trait]
impl RunTx for SqlTx {
    async fn try_lock_writer(&mut self) -> Result<LockOutcome, StoreError> {
        let conn = &mut self.conn();
        let outcome = conn.dialect().try_lock_writer(conn).await?;
        if outcome == LockOutcome::Acquired {
            self.mark_writer().await;
        }
        Ok(outcome)
    }

    async fn latest_price_date(&mut self) -> Result<Option<NaiveDate>, StoreError> {
        let conn = &mut self.conn();
        prices::latest_price_date(conn.dialect())
            .scalar(conn)
            .await
            .during("reading the latest price date")
    }

    async fn load_market(
        &mut self,
        as_of: Option<NaiveDate>,
    ) -> Result<Option<MarketSnapshot>, StoreError> {
        let conn = &mut self.conn();
        let sql = prices::market_snapshot(conn.dialect(), as_of);
        let rows: Vec<MarketRow> = sql
            .fetch_all(conn)
            .await
            .during("loading symbols and latest closes")?;
        let mut unreadable = Unreadable::new();
        let (mut symbols, bars): (Vec<_>, Vec<_>) = rows
            .into_iter()
            .map(|row| market_row(row, &mut unreadable))
            .unzip();
        let Some(as_of) = as_of.or_else(|| bars.iter().filter_map(|b| b.date).max()) else {
            return Ok(None);
        };
        identity::read_identities(conn, &mut symbols).await?;
        Ok(Some(MarketSnapshot {
            as_of,
            symbols,
            closes: bars.iter().map(LatestBar::close).collect(),
            unreadable,
        }))
    }

    async fn load_config_rows(&mut self, environment: &str) -> Result<Vec<ConfigRow>, StoreError> {
        let conn = &mut self.conn();
        let rows: Vec<(String, String, Json<serde_json::Value>)> = conn
            .sql(
                "select coalesce(name, ''), coalesce(key, ''), value from cache_entries
                 where type = 'cache_config' and environment = $1 order by id",
            )
            .bind(environment)
            .fetch_all(conn)
            .await
            .during("reading cache_config rows")?;
        Ok(rows
            .into_iter()
            .map(|(name, key, Json(value))| ConfigRow { name, key, value })
            .collect())
    }

    async fn load_rows(
        &mut self,
        environment: &str,
        scopes: &[Scope],
    ) -> Result<Vec<StoredRow>, StoreError> {
        let conn = &mut self.conn();
        let dialect = conn.dialect();
        let context = "reading owned cache_entries rows";
        let rows: Vec<(i64, String, String, String, String)> =
            fetch_chunked(conn, scopes, 2, context, |sql, chunk| {
                let version = dialect.row_version("c");
                sql.push(&format!(
                    "select cast(c.id as bigint), c.type, c.name, c.key, {version}
                     from cache_entries c where c.environment = "
                ))
                .push_bind(environment)
                .push(" and (c.type, c.name) in (")
                .push_values(chunk, |row, scope| {
                    row.bind(&scope.entry_type).bind(&scope.name);
                })
                .push(")");
                Ok(())
            })
            .await?;
        let mut out: Vec<StoredRow> = rows
            .into_iter()
            .map(|(id, t, n, k, version)| StoredRow {
                id,
                key: EntryKey::new(t, n, k),
                digest: dialect.row_digest(version),
            })
            .collect();
        out.sort_by_key(|r| r.id);
        Ok(out)
    }

    async fn load_values(&mut self, ids: &[i64]) -> Result<Vec<CurrentEntry>, StoreError> {
        let conn = &mut self.conn();
        let context = "reading cache_entries values";
        let rows: Vec<(i64, String, String, String, Json<serde_json::Value>)> =
            fetch_chunked(conn, ids, 1, context, |sql, chunk| {
                sql.push(
                    "select cast(id as bigint), type, name, key, value from cache_entries
                     where id in ",
                )
                .push_list(chunk.iter().copied());
                Ok(())
            })
            .await?;
        let mut out: Vec<CurrentEntry> = rows
            .into_iter()
            .map(|(id, t, n, k, Json(value))| CurrentEntry {
                id,
                key: EntryKey::new(t, n, k),
                value,
            })
            .collect();
        out.sort_by_key(|e| e.id);
        Ok(out)
    }

    async fn load_identities(&mut self) -> Result<Vec<RowIdentity>, StoreError> {
        let conn = &mut self.conn();
        let rows: Vec<(String, String, String, String)> = conn
            .sql(
                "select coalesce(type, ''), coalesce(name, ''), coalesce(key, ''),
                        coalesce(environment, '')
                 from cache_entries",
            )
            .fetch_all(conn)
            .await
            .during("reading cache_entries identities")?;
        Ok(rows
            .into_iter()
            .map(|(t, n, k, environment)| RowIdentity {
                key: EntryKey::new(t, n, k),
                environment,
            })
            .collect())
    }

    async fn unique_constraints(&mut self) -> Result<Vec<UniqueConstraint>, StoreError> {
        let conn = &mut self.conn();
        conn.dialect().unique_constraints(conn).await
    }

    async fn last_config_hash(
        &mut self,
        environment: &str,
    ) -> Result<Option<ContentHash>, StoreError> {
        let conn = &mut self.conn();
        let hash: Option<(String,)> = conn
            .sql(
                "select config_hash from cache_sync_run where environment = $1 and status = 'completed'
                 order by run_id desc limit 1",
            )
            .bind(environment)
            .fetch_optional(conn)
            .await
            .during("reading the last run's configuration hash")?;
        parse_hash(hash.map(|(h,)| h))
    }

    async fn entry_heads(
        &mut self,
        environment: &str,
    ) -> Result<HashMap<EntryKey, EntryHead>, StoreError> {
        entry_heads(&mut self.conn(), environment).await
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
        key: Option<&EntryKey>,
    ) -> Result<Option<Checkpoint>, StoreError> {
        log_reader::checkpoint_before(&mut self.conn(), environment, run_id, key).await
    }

    async fn append_run(
        &mut self,
        run: &NewRun,
        deltas: &[Delta],
        recheck: &[EntryKey],
    ) -> Result<AppendedRun, StoreError> {
        append::run(&mut self.conn(), run, deltas, recheck).await
    }

    async fn append_outbox(
        &mut self,
        run_id: RunId,
        environment: &str,
        events: &[OutgoingEvent],
    ) -> Result<(), StoreError> {
        append::outbox(&mut self.conn(), run_id, environment, events).await
    }

    async fn runs_since_checkpoint(&mut self, environment: &str) -> Result<i64, StoreError> {
        let conn = &mut self.conn();
        conn.sql(
            "select count(*) from cache_sync_run
             where environment = $1 and status = 'completed'
               and run_id > coalesce((select max(run_id) from cache_sync_checkpoint
                                      where environment = $1), 0)",
        )
        .bind(environment)
        .scalar(conn)
        .await
        .during("counting runs since the last checkpoint")
    }

    async fn append_checkpoint(
        &mut self,
        environment: &str,
        run_id: RunId,
        entries: &[(&EntryKey, Family, &serde_json::Value, ContentHash)],
    ) -> Result<(), StoreError> {
        append::checkpoint(&mut self.conn(), environment, run_id, entries).await
    }

    async fn commit(self: Box<Self>) -> Result<(), StoreError> {
        SqlTx::commit(*self, "committing the run").await
    }

    async fn rollback(self: Box<Self>) -> Result<(), StoreError> {
        SqlTx::rollback(*self).await
    }
}

/// (type, name, key, version, last_seq, hash, row_digest) of `cache_sync_entry_head`.
type HeadRow = (
    String,
    String,
    String,
    i32,
    i64,
    Option<String>,
    Option<String>,
);

pub(super) async fn entry_heads(
    conn: &mut Conn<'_>,
    environment: &str,
) -> Result<HashMap<EntryKey, EntryHead>, StoreError> {
    let rows: Vec<HeadRow> = conn
        .sql(
            "select entry_type, entry_name, entry_key, version, last_seq, hash, row_digest
             from cache_sync_entry_head where environment = $1",
        )
        .bind(environment)
        .fetch_all(conn)
        .await
        .during("reading entry heads")?;
    rows.into_iter()
        .map(|(t, n, k, version, last_seq, hash, row_digest)| {
            let head = EntryHead {
                version,
                last_seq,
                hash: parse_hash(hash)?,
                row_digest,
            };
            Ok((EntryKey::new(t, n, k), head))
        })
        .collect()
}
