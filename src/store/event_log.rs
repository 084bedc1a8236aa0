//! The `EventLog` role: a run's transaction. It reads the market, the configuration, the owned
//! rows and the log's heads, then applies the deltas and appends events, run record, outbox
//! events and checkpoints, all in one transaction.

use super::database::{SqlStore, SqlTx};
use super::dialect::Dialect;
use super::rows::{market_row, parse_hash};
use super::sql::{json_text, rows_per_statement, Conn, Param, Sql};
use super::{
    AppendedRun, EntryHead, EventLog, LockOutcome, NewRun, QueryContext, RowIdentity, RunTx,
    StoreError, StoredRow, UniqueConstraint,
};
use crate::domain::config::ConfigRow;
use crate::domain::diff::{CurrentEntry, Delta, Op};
use crate::domain::events::OutgoingEvent;
use crate::domain::fingerprint::ContentHash;
use crate::domain::market::MarketSnapshot;
use crate::domain::types::{EntryKey, Family, RunId, Scope};
use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use std::collections::HashMap;

#[async_trait]
impl EventLog for SqlStore {
    async fn begin(&self) -> Result<Box<dyn RunTx>, StoreError> {
        // Deferred: the writer lock is taken by `try_lock_writer` (see `sqlite.rs`).
        Ok(Box::new(self.begin_deferred().await?))
    }

    async fn append_run_record(&self, run: &NewRun) -> Result<RunId, StoreError> {
        let mut tx = self.begin_write().await?;
        let conn = &mut tx.conn();
        let run_id = conn.dialect().next_run_id(conn).await?;
        insert_run(conn, run_id, run).await?;
        tx.commit("committing the run record").await?;
        Ok(run_id)
    }
}

#[async_trait]
impl RunTx for SqlTx {
    async fn try_lock_writer(&mut self) -> Result<LockOutcome, StoreError> {
        let conn = &mut self.conn();
        conn.dialect().try_lock_writer(conn).await
    }

    async fn latest_price_date(&mut self) -> Result<Option<NaiveDate>, StoreError> {
        let conn = &mut self.conn();
        conn.sql("select max(date) from ohlcv_daily")
            .scalar(conn)
            .await
            .during("reading the latest price date")
    }

    async fn load_market(&mut self, as_of: NaiveDate) -> Result<MarketSnapshot, StoreError> {
        let conn = &mut self.conn();
        let mut sql = conn.sql("");
        let as_of_param = sql.param(as_of);
        let join = conn.dialect().latest_close_join(&as_of_param);
        sql.push(&format!(
            "select s.symbol, s.name, s.type, s.active, cast(s.market_cap as bigint) as market_cap,
                    cast(s.weighted_shares_outstanding as bigint) as shares, s.primary_exchange,
                    s.market, s.sector, s.industry, s.list_date, s.etf_type, s.issuer,
                    cast(s.aum_millions as double precision) as aum_millions,
                    c.date as close_date, cast(c.close as double precision) as close
             from {join}"
        ));
        let rows = sql
            .fetch_rows(conn)
            .await
            .during("loading symbols and latest closes")?;
        let mut snapshot = MarketSnapshot {
            as_of,
            symbols: Vec::with_capacity(rows.len()),
            closes: Vec::with_capacity(rows.len()),
        };
        for row in &rows {
            let (symbol, close) = market_row(row)?;
            snapshot.symbols.push(symbol);
            snapshot.closes.push(close);
        }
        Ok(snapshot)
    }

    async fn load_config_rows(&mut self, environment: &str) -> Result<Vec<ConfigRow>, StoreError> {
        let conn = &mut self.conn();
        let rows: Vec<(String, String, String)> = conn
            .sql(
                "select coalesce(name, ''), coalesce(key, ''), cast(value as text) from cache_entries
                 where type = 'cache_config' and environment = $1 order by id",
            )
            .bind(environment)
            .fetch_all(conn)
            .await
            .during("reading cache_config rows")?;
        rows.into_iter()
            .map(|(name, key, value)| {
                Ok(ConfigRow {
                    name,
                    key,
                    value: super::rows::parse_json(&value, "a cache_config value")?,
                })
            })
            .collect()
    }

    async fn load_rows(
        &mut self,
        environment: &str,
        scopes: &[Scope],
    ) -> Result<Vec<StoredRow>, StoreError> {
        let conn = &mut self.conn();
        let dialect = conn.dialect();
        let mut out = Vec::new();
        for chunk in scopes.chunks(rows_per_statement(dialect, 2)) {
            let mut sql = conn.sql(&format!(
                "select cast(c.id as bigint), c.type, c.name, c.key, {} from cache_entries c
                 where c.environment = $1 and (c.type, c.name) in (",
                dialect.row_version("c")
            ));
            sql = sql.bind(environment);
            sql.push_values(chunk, |row, scope| {
                row.bind(&scope.entry_type).bind(&scope.name);
            })
            .push(")");
            let rows: Vec<(i64, String, String, String, String)> = sql
                .fetch_all(conn)
                .await
                .during("reading owned cache_entries rows")?;
            out.extend(rows.into_iter().map(|(id, t, n, k, version)| StoredRow {
                id,
                key: EntryKey::new(t, n, k),
                digest: dialect.row_digest(version),
            }));
        }
        out.sort_by_key(|r| r.id);
        Ok(out)
    }

    async fn load_values(&mut self, ids: &[i64]) -> Result<Vec<CurrentEntry>, StoreError> {
        let conn = &mut self.conn();
        let mut out = Vec::new();
        for chunk in ids.chunks(rows_per_statement(conn.dialect(), 1)) {
            let mut sql = conn.sql(
                "select cast(id as bigint), type, name, key, cast(value as text) from cache_entries
                 where id in ",
            );
            sql.push_list(chunk.iter().copied()).push(" order by id");
            let rows: Vec<(i64, String, String, String, String)> = sql
                .fetch_all(conn)
                .await
                .during("reading cache_entries values")?;
            for (id, t, n, k, value) in rows {
                out.push(CurrentEntry {
                    id,
                    key: EntryKey::new(t, n, k),
                    value: super::rows::parse_json(&value, "a cache_entries value")?,
                });
            }
        }
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

    async fn append_run(
        &mut self,
        run: &NewRun,
        deltas: &[Delta],
        recheck: &[EntryKey],
    ) -> Result<AppendedRun, StoreError> {
        let conn = &mut self.conn();
        let dialect = conn.dialect();
        dialect.prepare_bulk_write(conn).await?;
        let now = Utc::now();
        let run_id = dialect.next_run_id(conn).await?;
        let heads = entry_heads(conn, &run.environment).await?;
        apply_entries(conn, &run.environment, deltas, now).await?;
        let seqs = append_events(conn, run_id, &run.environment, deltas, &heads, now).await?;
        insert_run(conn, run_id, run).await?;
        let keys: Vec<&EntryKey> = recheck.iter().collect();
        record_row_versions(conn, &run.environment, &keys).await?;
        Ok(AppendedRun { run_id, seqs })
    }

    async fn append_outbox(
        &mut self,
        run_id: RunId,
        environment: &str,
        events: &[OutgoingEvent],
    ) -> Result<(), StoreError> {
        let conn = &mut self.conn();
        let now = Utc::now();
        // In event order: outbox ids follow the order the relay must publish in.
        for chunk in events.chunks(rows_per_statement(conn.dialect(), 8)) {
            let mut sql = conn.sql(
                "insert into cache_sync_outbox (run_id, environment, seq, channel, also_channel, event,
                     payload, created_at) ",
            );
            let created_at = conn.dialect().now(&mut sql, now);
            let mut payloads = Vec::with_capacity(chunk.len());
            for e in chunk {
                payloads.push(json_text(&e.payload)?);
            }
            sql.push_values(
                &chunk.iter().zip(payloads).collect::<Vec<_>>(),
                |row, (e, payload)| {
                    row.bind(run_id.0)
                        .bind(environment)
                        .bind(e.seq)
                        .bind(&e.channel)
                        .bind(e.also_channel.as_deref())
                        .bind(&e.event)
                        .bind(payload.clone())
                        .raw(&created_at);
                },
            );
            sql.execute(conn)
                .await
                .during("queueing events in the outbox")?;
        }
        Ok(())
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
        let conn = &mut self.conn();
        let last_seq: i64 = conn
            .sql("select coalesce(max(seq), 0) from cache_sync_event where environment = $1")
            .bind(environment)
            .scalar(conn)
            .await
            .during("writing a checkpoint")?;
        for chunk in entries.chunks(rows_per_statement(conn.dialect(), 9)) {
            let mut sql = conn.sql(
                "insert into cache_sync_checkpoint (run_id, environment, last_seq, entry_type,
                     entry_name, entry_key, family, value, hash) ",
            );
            let mut values = Vec::with_capacity(chunk.len());
            for (_, _, value, _) in chunk {
                values.push(json_text(*value)?);
            }
            sql.push_values(
                &chunk.iter().zip(values).collect::<Vec<_>>(),
                |row, (e, value)| {
                    let (key, family, _, hash) = e;
                    row.bind(run_id.0)
                        .bind(environment)
                        .bind(last_seq)
                        .bind(&key.entry_type)
                        .bind(&key.name)
                        .bind(&key.key)
                        .bind(family.as_str())
                        .bind(value.clone())
                        .bind(hash.to_hex());
                },
            );
            sql.execute(conn).await.during("writing a checkpoint")?;
        }
        Ok(())
    }

    async fn commit(self: Box<Self>) -> Result<(), StoreError> {
        SqlTx::commit(*self, "committing the run").await
    }

    async fn rollback(self: Box<Self>) -> Result<(), StoreError> {
        SqlTx::rollback(*self).await
    }
}

/// Where an entry's head moves to in a run.
struct HeadMove {
    seq: i64,
    version: i32,
    hash: Option<String>,
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

async fn entry_heads(
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

async fn insert_run(conn: &mut Conn<'_>, run_id: RunId, run: &NewRun) -> Result<(), StoreError> {
    let o = &run.outcome;
    conn.sql(
        "insert into cache_sync_run (run_id, trigger, families, environment, as_of, config_hash,
             status, forced, started_at, finished_at, created_count, updated_count, deleted_count,
             unchanged_count, report, error)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
    )
    .bind(run_id.0)
    .bind(run.trigger.as_str())
    .bind(&run.families)
    .bind(&run.environment)
    .bind(Some(o.as_of))
    .bind(o.config_hash.to_hex())
    .bind(o.status.as_str())
    .bind(o.forced)
    .bind(run.started_at)
    .bind(run.finished_at)
    .bind(o.created as i64)
    .bind(o.updated as i64)
    .bind(o.deleted as i64)
    .bind(o.unchanged as i64)
    .bind(Param::json(o)?)
    .bind(&run.error)
    .execute(conn)
    .await
    .during("appending the run record")?;
    Ok(())
}

/// Deletes by id, updates in place (keeping `id`, setting `updated_at`), inserts.
async fn apply_entries(
    conn: &mut Conn<'_>,
    environment: &str,
    deltas: &[Delta],
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let dialect = conn.dialect();
    let deletes: Vec<i64> = deltas
        .iter()
        .filter(|d| d.op == Op::Delete)
        .filter_map(|d| d.row_id)
        .collect();
    for chunk in deletes.chunks(rows_per_statement(dialect, 1)) {
        let mut sql = conn.sql("delete from cache_entries where id in ");
        sql.push_list(chunk.iter().copied());
        sql.execute(conn)
            .await
            .during("deleting cache_entries rows")?;
    }
    let values = |op: Op| -> Result<Vec<(&Delta, Param)>, StoreError> {
        deltas
            .iter()
            .filter(|d| d.op == op)
            .map(|d| {
                Ok((
                    d,
                    Param::json(d.value_after.as_ref().unwrap_or(&serde_json::Value::Null))?,
                ))
            })
            .collect()
    };
    for chunk in values(Op::Update)?.chunks(rows_per_statement(dialect, 2)) {
        let mut sql = conn.sql("");
        let updated_at = dialect.now_naive(&mut sql, now);
        sql.push(&format!(
            "update cache_entries as c set value = v.column2, updated_at = {updated_at} from ("
        ));
        sql.push_values(chunk, |row, (d, value)| {
            row.bind(d.row_id.unwrap_or_default()).bind(value.clone());
        })
        .push(") as v where c.id = v.column1");
        sql.execute(conn)
            .await
            .during("updating cache_entries rows")?;
    }
    for chunk in values(Op::Create)?.chunks(rows_per_statement(dialect, 5)) {
        let mut sql = conn.sql(
            "insert into cache_entries (type, name, key, value, environment, created_at, updated_at) ",
        );
        let stamp = dialect.now_naive(&mut sql, now);
        sql.push_values(chunk, |row, (d, value)| {
            row.bind(&d.key.entry_type)
                .bind(&d.key.name)
                .bind(&d.key.key)
                .bind(value.clone())
                .bind(environment)
                .raw(&stamp)
                .raw(&stamp);
        });
        sql.execute(conn)
            .await
            .during("inserting cache_entries rows")?;
    }
    Ok(())
}

/// Appends one event per delta, in delta order, and moves each entry's head.
async fn append_events(
    conn: &mut Conn<'_>,
    run_id: RunId,
    environment: &str,
    deltas: &[Delta],
    heads: &HashMap<EntryKey, EntryHead>,
    now: DateTime<Utc>,
) -> Result<Vec<i64>, StoreError> {
    if deltas.is_empty() {
        return Ok(Vec::new());
    }
    let dialect = conn.dialect();
    let seqs = dialect.next_event_seqs(conn, deltas.len()).await?;
    let mut versions: HashMap<&EntryKey, i32> = HashMap::new();
    let mut rows = Vec::with_capacity(deltas.len());
    for (d, &seq) in deltas.iter().zip(&seqs) {
        let version = versions
            .get(&d.key)
            .copied()
            .or_else(|| heads.get(&d.key).map(|h| h.version))
            .unwrap_or(0)
            + 1;
        versions.insert(&d.key, version);
        rows.push((d, seq, version, Param::json(&d.change)?));
    }
    for chunk in rows.chunks(rows_per_statement(dialect, 12)) {
        let mut sql = conn.sql(
            "insert into cache_sync_event (seq, run_id, environment, entry_type, entry_name,
                 entry_key, version, op, family, hash_before, hash_after, change, recorded_at) ",
        );
        let recorded_at = dialect.now(&mut sql, now);
        sql.push_values(chunk, |row, (d, seq, version, change)| {
            row.bind(*seq)
                .bind(run_id.0)
                .bind(environment)
                .bind(&d.key.entry_type)
                .bind(&d.key.name)
                .bind(&d.key.key)
                .bind(*version)
                .bind(d.op.past_tense())
                .bind(d.family.as_str())
                .bind(d.hash_before.map(|h| h.to_hex()))
                .bind(d.hash_after.map(|h| h.to_hex()))
                .bind(change.clone())
                .raw(&recorded_at);
        });
        sql.execute(conn).await.during("appending audit events")?;
    }
    // The last delta of an entry in this run decides its head; deletes of duplicate rows leave
    // the entry as it was.
    let mut heads_after: HashMap<&EntryKey, HeadMove> = HashMap::new();
    let mut order: Vec<&EntryKey> = Vec::new();
    for (d, seq, version, _) in rows.iter().filter(|r| !r.0.change.duplicate_row) {
        let head = HeadMove {
            seq: *seq,
            version: *version,
            hash: d.hash_after.map(|h| h.to_hex()),
        };
        if heads_after.insert(&d.key, head).is_none() {
            order.push(&d.key);
        }
    }
    let moved: Vec<(&EntryKey, &HeadMove)> = order.iter().map(|k| (*k, &heads_after[k])).collect();
    for chunk in moved.chunks(rows_per_statement(dialect, 7)) {
        let mut sql = conn.sql(
            "insert into cache_sync_entry_head (environment, entry_type, entry_name, entry_key,
                 version, last_seq, hash) ",
        );
        sql.push_values(chunk, |row, (key, head)| {
            row.bind(environment)
                .bind(&key.entry_type)
                .bind(&key.name)
                .bind(&key.key)
                .bind(head.version)
                .bind(head.seq)
                .bind(head.hash.clone());
        })
        .push(
            " on conflict (environment, entry_type, entry_name, entry_key)
              do update set version = excluded.version, last_seq = excluded.last_seq,
                  hash = excluded.hash",
        );
        sql.execute(conn).await.during("moving entry heads")?;
    }
    record_row_versions(conn, environment, &order).await?;
    Ok(seqs)
}

/// Records the current row digest of each entry's live row in its head, so the next run can
/// skip transferring and re-hashing rows nobody touched since (heads of entries without a live
/// row keep theirs).
async fn record_row_versions(
    conn: &mut Conn<'_>,
    environment: &str,
    keys: &[&EntryKey],
) -> Result<(), StoreError> {
    let dialect = conn.dialect();
    for chunk in keys.chunks(rows_per_statement(dialect, 3)) {
        let mut sql = conn.sql(&format!(
            "select c.type, c.name, c.key, {} from cache_entries c
             where c.environment = $1 and (c.type, c.name, c.key) in (",
            dialect.row_version("c")
        ));
        sql = sql.bind(environment);
        sql.push_values(chunk, |row, key| {
            row.bind(&key.entry_type).bind(&key.name).bind(&key.key);
        })
        .push(") order by c.id");
        let rows: Vec<(String, String, String, String)> =
            sql.fetch_all(conn).await.during("recording row versions")?;
        // The first row of an identity (duplicates were deleted by the run that found them).
        let mut seen = std::collections::HashSet::new();
        let mut digests: Vec<(EntryKey, String)> = Vec::new();
        for (t, n, k, version) in rows {
            let key = EntryKey::new(t, n, k);
            if seen.insert(key.clone()) {
                digests.push((key, dialect.row_digest(version)));
            }
        }
        update_row_digests(conn, dialect, environment, &digests).await?;
    }
    Ok(())
}

async fn update_row_digests(
    conn: &mut Conn<'_>,
    dialect: Dialect,
    environment: &str,
    digests: &[(EntryKey, String)],
) -> Result<(), StoreError> {
    if digests.is_empty() {
        return Ok(());
    }
    let mut sql = Sql::new(
        dialect,
        "update cache_sync_entry_head as h set row_digest = v.column4 from (",
    );
    sql.push_values(digests, |row, (key, digest)| {
        row.bind(&key.entry_type)
            .bind(&key.name)
            .bind(&key.key)
            .bind(digest);
    });
    sql.push(
        ") as v where h.environment = ",
    )
    .push_bind(environment)
    .push(" and h.entry_type = v.column1 and h.entry_name = v.column2 and h.entry_key = v.column3");
    sql.execute(conn).await.during("recording row versions")?;
    Ok(())
}
