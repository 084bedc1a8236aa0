//! What only PostgreSQL (production) does: its schema, connection, advisory writer lock, catalog
//! queries for unique constraints, and lz4 for large values. Every statement both stores share
//! lives in the role files; `dialect.rs` lists the differences.

use super::{LockOutcome, QueryContext, StoreError, UniqueConstraint};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgConnection, PgPool};
use std::str::FromStr;
use std::time::Duration;

/// The schema this build expects, embedded at compile time.
pub(super) static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

/// Key of the advisory lock that makes the job a single writer (any stable 64-bit number).
const WRITER_LOCK_KEY: i64 = 0x7C5E_5EED_2026_0205;

/// Where a URL points, without its password, for error messages.
pub fn redact_url(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let host = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
            format!("{scheme}://{host}")
        }
        None => "(not a URL)".to_owned(),
    }
}

/// A pool on `url` (`postgres://…`).
pub(super) async fn connect(url: &str) -> Result<PgPool, StoreError> {
    let target = redact_url(url);
    let options = PgConnectOptions::from_str(url).map_err(|source| StoreError::Connect {
        target: target.clone(),
        source,
    })?;
    PgPoolOptions::new()
        .max_connections(8)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(options)
        .await
        .map_err(|source| StoreError::Connect { target, source })
}

pub(super) async fn try_lock_writer(conn: &mut PgConnection) -> Result<LockOutcome, StoreError> {
    let got: bool = sqlx::query_scalar("select pg_try_advisory_xact_lock($1)")
        .bind(WRITER_LOCK_KEY)
        .fetch_one(conn)
        .await
        .during("taking the writer lock")?;
    Ok(if got {
        LockOutcome::Acquired
    } else {
        LockOutcome::HeldElsewhere
    })
}

/// The session holding the writer lock, read from `pg_locks` (which only looks: taking the lock
/// to test it would make a run starting at that moment fail). A 64-bit advisory key shows as
/// its high and low halves in `classid` and `objid`, with `objsubid` 1.
pub(super) async fn writer_lock_holder(
    conn: &mut PgConnection,
) -> Result<Option<String>, StoreError> {
    let holder: Option<(i32, Option<String>, Option<chrono::DateTime<chrono::Utc>>)> =
        sqlx::query_as(
            "select l.pid, a.application_name, a.xact_start
             from pg_locks l left join pg_stat_activity a on a.pid = l.pid
             where l.locktype = 'advisory' and l.granted and l.objsubid = 1
               and l.database = (select oid from pg_database where datname = current_database())
               and l.classid::bigint = $1 and l.objid::bigint = $2
             limit 1",
        )
        .bind(WRITER_LOCK_KEY >> 32)
        .bind(WRITER_LOCK_KEY & 0xffff_ffff)
        .fetch_optional(conn)
        .await
        .during("looking at the writer lock")?;
    Ok(holder.map(|(pid, application, since)| {
        let mut text = format!("PostgreSQL session {pid}");
        if let Some(application) = application.filter(|a| !a.is_empty()) {
            text.push_str(&format!(" ({application})"));
        }
        if let Some(since) = since {
            text.push_str(&format!(
                ", in a transaction since {}",
                since.format("%Y-%m-%d %H:%M:%S UTC")
            ));
        }
        text
    }))
}

/// Class (first key) of the owners' session advisory locks; the second key is
/// `hashtext(owner id)`. Distinct from the writer lock, whose single 64-bit key shows in
/// `pg_locks` with `objsubid` 1, not 2.
const OWNER_LOCK_CLASS: i32 = 0x7C5E_0015;

/// Takes `id`'s owner lock on `conn` for the session's life. Ids are fresh, so a lock already
/// taken means a hash collision with a live owner: refused rather than shared.
pub(super) async fn lock_owner(conn: &mut PgConnection, id: &str) -> Result<(), StoreError> {
    let got: bool = sqlx::query_scalar("select pg_try_advisory_lock($1, hashtext($2))")
        .bind(OWNER_LOCK_CLASS)
        .bind(id)
        .fetch_one(conn)
        .await
        .during("taking the owner lock")?;
    if got {
        Ok(())
    } else {
        Err(StoreError::Corrupt(format!(
            "the owner lock of {id} is taken by another session"
        )))
    }
}

/// Whether a session holds `id`'s owner lock, read from `pg_locks` without taking it. The
/// second key shows in `objid` as an unsigned 32-bit number.
pub(super) async fn owner_alive(conn: &mut PgConnection, id: &str) -> Result<bool, StoreError> {
    sqlx::query_scalar(
        "select exists (
             select 1 from pg_locks l
             where l.locktype = 'advisory' and l.granted and l.objsubid = 2
               and l.database = (select oid from pg_database where datname = current_database())
               and l.classid::bigint = $1
               and l.objid::bigint = (hashtext($2)::bigint + 4294967296) % 4294967296)",
    )
    .bind(i64::from(OWNER_LOCK_CLASS))
    .bind(id)
    .fetch_one(conn)
    .await
    .during("looking at an owner lock")
}

/// Whether `conn`, an owner's dedicated session, still answers.
pub(super) async fn session_answers(conn: &mut PgConnection) -> bool {
    sqlx::query("select 1").execute(conn).await.is_ok()
}

pub(super) async fn wait_for_writer_lock(conn: &mut PgConnection) -> Result<(), StoreError> {
    let context = "waiting for the writer lock";
    sqlx::query("set local lock_timeout = '30s'")
        .execute(&mut *conn)
        .await
        .during(context)?;
    sqlx::query("select pg_advisory_xact_lock($1)")
        .bind(WRITER_LOCK_KEY)
        .execute(&mut *conn)
        .await
        .during(context)?;
    Ok(())
}

pub(super) async fn unique_constraints(
    conn: &mut PgConnection,
) -> Result<Vec<UniqueConstraint>, StoreError> {
    let rows: Vec<(String, Vec<String>)> = sqlx::query_as(
        "select i.relname::text, array_agg(a.attname::text order by k.ord)
         from pg_index x
         join pg_class i on i.oid = x.indexrelid
         cross join lateral unnest(x.indkey) with ordinality as k(attnum, ord)
         join pg_attribute a on a.attrelid = x.indrelid and a.attnum = k.attnum
         where x.indrelid = 'cache_entries'::regclass and x.indisunique and not x.indisprimary
         group by i.relname order by i.relname",
    )
    .fetch_all(conn)
    .await
    .during("reading cache_entries unique constraints")?;
    Ok(rows
        .into_iter()
        .map(|(name, columns)| UniqueConstraint { name, columns })
        .collect())
}

/// The statements dropping unique constraints or indexes over a subset of
/// `(type, key, environment)`.
pub(super) async fn narrow_unique_drops(
    conn: &mut PgConnection,
) -> Result<Vec<String>, StoreError> {
    // Identifiers come from the catalog and are quoted by format('%I'); nothing typed by a user
    // reaches the statement text.
    sqlx::query_scalar(
        "select case when c.oid is not null
                     then format('alter table cache_entries drop constraint %I', c.conname)
                     else format('drop index %I.%I', n.nspname, i.relname) end
         from pg_index x
         join pg_class i on i.oid = x.indexrelid
         join pg_namespace n on n.oid = i.relnamespace
         left join pg_constraint c on c.conindid = x.indexrelid and c.conrelid = x.indrelid
         where x.indrelid = 'cache_entries'::regclass and x.indisunique and not x.indisprimary
           and not exists (select 1 from unnest(x.indkey) k
                           join pg_attribute a on a.attrelid = x.indrelid and a.attnum = k
                           where a.attname not in ('type', 'key', 'environment'))
         order by i.relname",
    )
    .fetch_all(conn)
    .await
    .during("finding unique constraints without name")
}

/// lz4 compresses the large jsonb values several times faster than the default pglz; only for
/// this transaction, and only where the server was built with it.
pub(super) async fn prefer_lz4(conn: &mut PgConnection) -> Result<(), StoreError> {
    let lz4: bool = sqlx::query_scalar(
        "select exists (select 1 from pg_settings
                        where name = 'default_toast_compression' and 'lz4' = any(enumvals))",
    )
    .fetch_one(&mut *conn)
    .await
    .during("checking for lz4")?;
    if lz4 {
        sqlx::query("set local default_toast_compression = 'lz4'")
            .execute(conn)
            .await
            .during("choosing lz4 compression")?;
    }
    Ok(())
}
