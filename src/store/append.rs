//! What a run writes, in its transaction: the deltas applied to `cache_entries` (updated in place
//! by id, `updated_at` set), one audit event per delta, the entries' heads and row digests, the
//! run record, the outbox events and checkpoints. Multi-row statements, chunked to the
//! dialect's parameter limit.

use super::event_log::entry_heads;
use super::sql::{execute_chunked, fetch_chunked, Conn, Param};
use super::{AppendedRun, EntryHead, NewRun, QueryContext, StoreError};
use crate::domain::diff::{Delta, Op};
use crate::domain::events::OutgoingEvent;
use crate::domain::fingerprint::ContentHash;
use crate::domain::log_form::{LogForm, RunValues};
use crate::domain::types::{EntryKey, Family, RunId};
use chrono::{DateTime, Utc};
use std::collections::{HashMap, HashSet};

/// Applies the deltas, appends their events and the run record, and records the row digests of
/// the entries written and of `recheck`.
pub(super) async fn run(
    conn: &mut Conn<'_>,
    run: &NewRun,
    deltas: &[Delta],
    recheck: &[EntryKey],
) -> Result<AppendedRun, StoreError> {
    let dialect = conn.dialect();
    dialect.prepare_bulk_write(conn).await?;
    let now = Utc::now();
    let run_id = next_run_id(conn).await?;
    let heads = entry_heads(conn, &run.environment).await?;
    apply_entries(conn, &run.environment, deltas, now).await?;
    let stored = LogForm::of(deltas);
    if let Some(values) = &stored.values {
        insert_run_values(conn, run_id, &run.environment, values).await?;
    }
    let seqs = append_events(conn, run_id, &run.environment, deltas, &stored, &heads, now).await?;
    insert_run(conn, run_id, run).await?;
    let keys: Vec<&EntryKey> = recheck.iter().collect();
    record_row_digests(conn, &run.environment, &keys).await?;
    Ok(AppendedRun { run_id, seqs })
}

/// A new run id: the log's highest plus one. Only a writer holding the single-writer lock
/// allocates one, inside the transaction that writes the record, so ids are gapless: a run that
/// rolls back or is killed takes its id with it (a sequence would have burnt it).
pub(super) async fn next_run_id(conn: &mut Conn<'_>) -> Result<RunId, StoreError> {
    let id = conn
        .sql("select coalesce(max(run_id), 0) + 1 from cache_sync_run")
        .scalar(conn)
        .await
        .during("allocating a run id")?;
    Ok(RunId(id))
}

/// `n` new event sequence numbers after the log's highest, ascending; gapless for the same
/// reason as run ids.
async fn next_event_seqs(conn: &mut Conn<'_>, n: usize) -> Result<Vec<i64>, StoreError> {
    let base = highest_seq(conn).await?;
    Ok((1..=n as i64).map(|i| base + i).collect())
}

/// The highest event seq ever allocated: the log's, or the one a compaction recorded when it
/// deleted the events holding it (a seq is never reused). Both answered by index probes.
pub(super) async fn highest_seq(conn: &mut Conn<'_>) -> Result<i64, StoreError> {
    conn.sql(
        "select coalesce(max(s), 0) from (
             select max(seq) as s from cache_sync_event
             union all select max(last_seq) from cache_sync_compaction) as highest",
    )
    .scalar(conn)
    .await
    .during("allocating event sequence numbers")
}

/// Queues change events, in event order: outbox ids follow the order the relay publishes in.
pub(super) async fn outbox(
    conn: &mut Conn<'_>,
    run_id: RunId,
    environment: &str,
    events: &[OutgoingEvent],
) -> Result<(), StoreError> {
    let now = Utc::now();
    let context = "queueing events in the outbox";
    execute_chunked(conn, events, 8, context, |sql, chunk| {
        sql.push(
            "insert into cache_sync_outbox (run_id, environment, seq, channel, also_channel,
                 event, payload, created_at) ",
        );
        let created_at = sql.dialect().now(sql, now);
        let payloads = chunk
            .iter()
            .map(|e| Param::logged_json(&e.payload))
            .collect::<Result<Vec<_>, _>>()?;
        sql.push_values(&payloads, |row, payload| {
            let e = &chunk[row.index()];
            row.bind(run_id.0)
                .bind(environment)
                .bind(e.seq)
                .bind(&e.channel)
                .bind(e.also_channel.as_deref())
                .bind(&e.event)
                .bind(payload.clone())
                .raw(&created_at);
        });
        Ok(())
    })
    .await?;
    Ok(())
}

/// Stores the full owned catalog as it stands after `run_id`, with the log's last `seq`.
pub(super) async fn checkpoint(
    conn: &mut Conn<'_>,
    environment: &str,
    run_id: RunId,
    entries: &[(&EntryKey, Family, &serde_json::Value, ContentHash)],
) -> Result<(), StoreError> {
    let last_seq: i64 = conn
        .sql("select coalesce(max(seq), 0) from cache_sync_event where environment = $1")
        .bind(environment)
        .scalar(conn)
        .await
        .during("writing a checkpoint")?;
    execute_chunked(conn, entries, 9, "writing a checkpoint", |sql, chunk| {
        sql.push(
            "insert into cache_sync_checkpoint (run_id, environment, last_seq, entry_type,
                 entry_name, entry_key, family, value, hash) ",
        );
        let values = chunk
            .iter()
            .map(|(_, _, value, _)| Param::logged_json(*value))
            .collect::<Result<Vec<_>, _>>()?;
        sql.push_values(&values, |row, value| {
            let (key, family, _, hash) = &chunk[row.index()];
            row.bind(run_id.0)
                .bind(environment)
                .bind(last_seq)
                .bind(&key.entry_type)
                .bind(&key.name)
                .bind(&key.key)
                .bind(family.as_str())
                .bind(value.clone())
                .bind(hash.to_hex());
        });
        Ok(())
    })
    .await?;
    Ok(())
}

/// Appends the run record.
pub(super) async fn insert_run(
    conn: &mut Conn<'_>,
    run_id: RunId,
    run: &NewRun,
) -> Result<(), StoreError> {
    let o = &run.outcome;
    conn.sql(
        "insert into cache_sync_run (run_id, trigger, families, environment, as_of, config_hash,
             status, forced, started_at, finished_at, created_count, updated_count, deleted_count,
             unchanged_count, report, error, job_id)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)",
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
    // Through a JSON tree, whose keys are sorted: the text the record has always held.
    .bind(Param::logged_json(
        &serde_json::to_value(o).map_err(|e| StoreError::Corrupt(e.to_string()))?,
    )?)
    .bind(&run.error)
    .bind(&run.job_id)
    .execute(conn)
    .await
    .during("appending the run record")?;
    Ok(())
}

/// Stores the run's member values, which its `revalued` events take.
async fn insert_run_values(
    conn: &mut Conn<'_>,
    run_id: RunId,
    environment: &str,
    values: &RunValues,
) -> Result<(), StoreError> {
    conn.sql(
        "insert into cache_sync_run_values (run_id, environment, member_values)
         values ($1, $2, $3)",
    )
    .bind(run_id.0)
    .bind(environment)
    .bind(Param::logged_json(values)?)
    .execute(conn)
    .await
    .during("storing the run's member values")?;
    Ok(())
}

/// Deletes by id, updates in place (keeping `id`, setting `updated_at`), inserts.
async fn apply_entries(
    conn: &mut Conn<'_>,
    environment: &str,
    deltas: &[Delta],
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let deletes: Vec<i64> = deltas
        .iter()
        .filter(|d| d.op == Op::Delete)
        .filter_map(|d| d.row_id)
        .collect();
    execute_chunked(
        conn,
        &deletes,
        1,
        "deleting cache_entries rows",
        |sql, chunk| {
            sql.push("delete from cache_entries where id in ")
                .push_list(chunk.iter().copied());
            Ok(())
        },
    )
    .await?;
    let with_values = |op: Op| -> Result<Vec<(&Delta, Param)>, StoreError> {
        let null = serde_json::Value::Null;
        deltas
            .iter()
            .filter(|d| d.op == op)
            .map(|d| Ok((d, Param::json(d.value_after.as_deref().unwrap_or(&null))?)))
            .collect()
    };
    let updates = with_values(Op::Update)?;
    execute_chunked(
        conn,
        &updates,
        2,
        "updating cache_entries rows",
        |sql, chunk| {
            let updated_at = sql.dialect().now_naive(sql, now);
            sql.push(&format!(
                "update cache_entries as c set value = v.column2, updated_at = {updated_at} from ("
            ))
            .push_values(chunk, |row, (d, value)| {
                row.bind(d.row_id.unwrap_or_default()).bind(value.clone());
            })
            .push(") as v where c.id = v.column1");
            Ok(())
        },
    )
    .await?;
    let creates = with_values(Op::Create)?;
    execute_chunked(
        conn,
        &creates,
        7,
        "inserting cache_entries rows",
        |sql, chunk| {
            sql.push(
                "insert into cache_entries (type, name, key, value, environment, created_at,
                 updated_at) ",
            );
            let stamp = sql.dialect().now_naive(sql, now);
            sql.push_values(chunk, |row, (d, value)| {
                row.bind(&d.key.entry_type)
                    .bind(&d.key.name)
                    .bind(&d.key.key)
                    .bind(value.clone())
                    .bind(environment)
                    .raw(&stamp)
                    .raw(&stamp);
            });
            Ok(())
        },
    )
    .await?;
    Ok(())
}

/// One delta as its event row: the delta, its `seq`, the entry's new version, the change.
type EventRow<'d> = (&'d Delta, i64, i32, Param);

/// Where an entry's head moves to in a run.
struct HeadMove<'d> {
    key: &'d EntryKey,
    seq: i64,
    version: i32,
    hash: Option<String>,
}

/// Appends one event per delta, in delta order, each with its change as `stored` holds it, and
/// moves each entry's head.
async fn append_events(
    conn: &mut Conn<'_>,
    run_id: RunId,
    environment: &str,
    deltas: &[Delta],
    stored: &LogForm<'_>,
    heads: &HashMap<EntryKey, EntryHead>,
    now: DateTime<Utc>,
) -> Result<Vec<i64>, StoreError> {
    if deltas.is_empty() {
        return Ok(Vec::new());
    }
    let seqs = next_event_seqs(conn, deltas.len()).await?;
    let mut versions: HashMap<&EntryKey, i32> = HashMap::new();
    let mut rows: Vec<EventRow<'_>> = Vec::with_capacity(deltas.len());
    for ((d, &seq), change) in deltas.iter().zip(&seqs).zip(&stored.changes) {
        let before = versions.get(&d.key).copied();
        let version = before
            .or_else(|| heads.get(&d.key).map(|h| h.version))
            .unwrap_or(0)
            + 1;
        versions.insert(&d.key, version);
        rows.push((d, seq, version, Param::logged_json(change.as_ref())?));
    }
    execute_chunked(conn, &rows, 13, "appending audit events", |sql, chunk| {
        sql.push(
            "insert into cache_sync_event (seq, run_id, environment, entry_type, entry_name,
                 entry_key, version, op, family, hash_before, hash_after, change, recorded_at) ",
        );
        let recorded_at = sql.dialect().now(sql, now);
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
        Ok(())
    })
    .await?;
    // The last delta of an entry in this run decides its head; deletes of duplicate rows leave
    // the entry as it was.
    let mut moves: Vec<HeadMove<'_>> = Vec::new();
    for (d, seq, version, _) in rows.iter().filter(|r| !r.0.change.duplicate_row) {
        let hash = d.hash_after.map(|h| h.to_hex());
        let head = HeadMove {
            key: &d.key,
            seq: *seq,
            version: *version,
            hash,
        };
        match moves.iter_mut().find(|m| m.key == &d.key) {
            Some(earlier) => *earlier = head,
            None => moves.push(head),
        }
    }
    execute_chunked(conn, &moves, 7, "moving entry heads", |sql, chunk| {
        sql.push(
            "insert into cache_sync_entry_head (environment, entry_type, entry_name, entry_key,
                 version, last_seq, hash) ",
        )
        .push_values(chunk, |row, m| {
            row.bind(environment)
                .bind(&m.key.entry_type)
                .bind(&m.key.name)
                .bind(&m.key.key)
                .bind(m.version)
                .bind(m.seq)
                .bind(m.hash.clone());
        })
        .push(
            " on conflict (environment, entry_type, entry_name, entry_key)
              do update set version = excluded.version, last_seq = excluded.last_seq,
                  hash = excluded.hash",
        );
        Ok(())
    })
    .await?;
    let written: Vec<&EntryKey> = moves.iter().map(|m| m.key).collect();
    record_row_digests(conn, environment, &written).await?;
    Ok(seqs)
}

/// Records the digest of each entry's live row in its head, so the next run can skip
/// transferring and re-hashing rows nobody touched since (heads of entries without a live row
/// keep theirs).
async fn record_row_digests(
    conn: &mut Conn<'_>,
    environment: &str,
    keys: &[&EntryKey],
) -> Result<(), StoreError> {
    let dialect = conn.dialect();
    let context = "recording row versions";
    let rows: Vec<(String, String, String, String)> =
        fetch_chunked(conn, keys, 3, context, |sql, chunk| {
            let version = dialect.row_version("c");
            sql.push(&format!(
                "select c.type, c.name, c.key, {version} from cache_entries c where c.environment = "
            ))
            .push_bind(environment)
            .push(" and (c.type, c.name, c.key) in (")
            .push_values(chunk, |row, key| {
                row.bind(&key.entry_type).bind(&key.name).bind(&key.key);
            })
            .push(") order by c.id");
            Ok(())
        })
        .await?;
    // The first row of an identity (duplicates were deleted by the run that found them).
    let mut seen = HashSet::new();
    let mut digests: Vec<(EntryKey, String)> = Vec::new();
    for (t, n, k, version) in rows {
        let key = EntryKey::new(t, n, k);
        if seen.insert(key.clone()) {
            digests.push((key, dialect.row_digest(version)));
        }
    }
    execute_chunked(conn, &digests, 4, context, |sql, chunk| {
        sql.push("update cache_sync_entry_head as h set row_digest = v.column4 from (")
            .push_values(chunk, |row, (key, digest)| {
                row.bind(&key.entry_type)
                    .bind(&key.name)
                    .bind(&key.key)
                    .bind(digest);
            })
            .push(") as v where h.environment = ")
            .push_bind(environment)
            .push(
                " and h.entry_type = v.column1 and h.entry_name = v.column2
                  and h.entry_key = v.column3",
            );
        Ok(())
    })
    .await?;
    Ok(())
}
