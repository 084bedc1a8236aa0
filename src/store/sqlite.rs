//! What only the embedded SQLite store does: its schema, opening the file, the writer lock and
//! reading unique indexes. Every statement both stores share lives in the role files;
//! `dialect.rs` lists the differences.
//!
//! - **Writer lock.** A transaction starts deferred (`BEGIN`): a plan only reads and, in WAL
//!   mode, never waits for or blocks a writer. `try_lock_writer` then writes the one row of
//!   `cache_sync_writer_lock` with the busy timeout set to zero for that statement, which takes
//!   SQLite's database write lock right away — the `BEGIN IMMEDIATE` semantics, but on demand —
//!   or fails at once with `SQLITE_BUSY`, reported as `LockOutcome::HeldElsewhere`. Taking the
//!   lock as the transaction's first statement means its snapshot starts with the lock held, so
//!   the later writes can never fail with `SQLITE_BUSY_SNAPSHOT`. (Starting every transaction
//!   with `BEGIN IMMEDIATE` would make a second run fail in `begin()` with a store error after
//!   the busy timeout, instead of reporting the lock.) While a run holds the lock, other writes
//!   (API job bookkeeping) wait up to the busy timeout: SQLite has one writer at a time.
//! - **Types.** JSON is text; `timestamptz` columns hold RFC 3339 UTC text with fixed-width
//!   microseconds (text order is time order); `cache_entries` timestamps are naive UTC text, as
//!   PostgreSQL's `timestamp`.

use super::sql::sqlite_time;
use super::{require_migrations, LockOutcome, QueryContext, StoreError};
use chrono::Utc;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{SqliteConnection, SqlitePool};
use std::io::{Read as _, Seek as _, Write as _};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

/// The schema this build expects, embedded at compile time.
pub(super) static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");

/// How long a statement waits for another connection's write lock (not the run's writer lock,
/// which never waits).
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// Opens (creating when missing) the database file at `url` (`sqlite://path` or `sqlite:path`),
/// in WAL mode with foreign keys on. With `create` false a missing file is reported as a
/// database without the schema (with migrations off, nothing may be created).
pub(super) async fn open(url: &str, create: bool) -> Result<SqlitePool, StoreError> {
    let target = url.to_owned();
    let options = SqliteConnectOptions::from_str(url).map_err(|source| StoreError::Connect {
        target: target.clone(),
        source,
    })?;
    if !create && !options.get_filename().exists() {
        require_migrations(&MIGRATOR, &[])?;
    }
    let options = options
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(BUSY_TIMEOUT)
        .foreign_keys(true);
    SqlitePoolOptions::new()
        .max_connections(4)
        .acquire_timeout(Duration::from_secs(30))
        .connect_with(options)
        .await
        .map_err(|source| StoreError::Connect { target, source })
}

/// `SQLITE_BUSY` / `SQLITE_LOCKED` (any extended code): another connection holds the lock.
fn is_busy(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .and_then(|d| d.code())
        .and_then(|c| c.parse::<i32>().ok())
        .is_some_and(|c| matches!(c & 0xff, 5 | 6))
}

pub(super) async fn try_lock_writer(
    conn: &mut SqliteConnection,
) -> Result<LockOutcome, StoreError> {
    // The busy timeout is per connection: set it to zero for the one write that takes the
    // database write lock, then put it back, whatever the write did.
    let previous: i64 = sqlx::query_scalar("pragma busy_timeout")
        .fetch_one(&mut *conn)
        .await
        .during("reading the busy timeout")?;
    sqlx::query("pragma busy_timeout = 0")
        .execute(&mut *conn)
        .await
        .during("taking the writer lock")?;
    let taken = sqlx::query(
        "insert into cache_sync_writer_lock (id, taken_at) values (1, $1)
         on conflict (id) do update set taken_at = excluded.taken_at",
    )
    .bind(sqlite_time(Utc::now()))
    .execute(&mut *conn)
    .await;
    sqlx::query(&format!("pragma busy_timeout = {previous}"))
        .execute(&mut *conn)
        .await
        .during("restoring the busy timeout")?;
    match taken {
        Ok(_) => Ok(LockOutcome::Acquired),
        Err(e) if is_busy(&e) => Ok(LockOutcome::HeldElsewhere),
        Err(source) => Err(StoreError::Query {
            context: "taking the writer lock",
            source,
        }),
    }
}

/// The writer-lock marker of the database file `db`; `None` for an in-memory database, which
/// no other process can open.
fn marker_path(db: &Path) -> Option<PathBuf> {
    let name = db.as_os_str();
    if name.is_empty() || name == ":memory:" {
        return None;
    }
    let mut marker = name.to_owned();
    marker.push("-writer");
    Some(PathBuf::from(marker))
}

/// Locks the marker for a transaction that has just taken the writer lock, writing who holds
/// it; the lock lasts as long as the returned file. `None` (with a warning) when the marker
/// cannot be made: the run still holds the real lock, only probes cannot see it.
pub(super) async fn mark_writer(conn: &mut SqliteConnection) -> Option<std::fs::File> {
    let file: Option<String> =
        sqlx::query_scalar("select file from pragma_database_list where name = 'main'")
            .fetch_optional(&mut *conn)
            .await
            .ok()
            .flatten();
    let path = marker_path(Path::new(&file.unwrap_or_default()))?;
    let opened = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path);
    let mut marker = match opened {
        Ok(marker) => marker,
        Err(e) => {
            tracing::warn!(error = %e, path = %path.display(), "cannot open the writer-lock marker");
            return None;
        }
    };
    // A probe holds a shared lock for the moment it takes to test: wait it out, boundedly.
    for _ in 0..2000 {
        match marker.try_lock() {
            Ok(()) => {
                let command: Vec<String> = std::env::args().skip(1).take(1).collect();
                let holder = format!(
                    "process {} (cache-sync {})",
                    std::process::id(),
                    command.join(" ")
                );
                let written = marker
                    .set_len(0)
                    .and_then(|()| marker.rewind())
                    .and_then(|()| marker.write_all(holder.trim_end().as_bytes()));
                if let Err(e) = written {
                    tracing::warn!(error = %e, "cannot describe the writer in its marker");
                }
                return Some(marker);
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            Err(std::fs::TryLockError::Error(e)) => {
                tracing::warn!(error = %e, path = %path.display(), "cannot lock the writer-lock marker");
                return None;
            }
        }
    }
    tracing::warn!(path = %path.display(), "the writer-lock marker stayed locked by probes");
    None
}

/// Who holds the writer lock of the database file `db`, from its marker, without touching
/// SQLite's lock. A marker that cannot be read counts as free (logged): the probe only saves
/// a job that would fail at once, the run's own lock still decides.
pub(super) fn writer_lock_holder(db: &Path) -> Option<String> {
    let path = marker_path(db)?;
    let mut marker = match std::fs::File::open(&path) {
        Ok(marker) => marker,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            tracing::warn!(error = %e, path = %path.display(), "cannot open the writer-lock marker");
            return None;
        }
    };
    match marker.try_lock_shared() {
        // Dropping the file releases the shared lock at once.
        Ok(()) => None,
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = marker.read_to_string(&mut holder);
            let holder = holder.trim();
            Some(if holder.is_empty() {
                "a run in another connection".to_owned()
            } else {
                format!("a run in {holder}")
            })
        }
        Err(std::fs::TryLockError::Error(e)) => {
            tracing::warn!(error = %e, path = %path.display(), "cannot test the writer-lock marker");
            None
        }
    }
}

/// The owner-lock file of owner `id` next to the database file `db`; `None` for an in-memory
/// database.
fn owner_path(db: &Path, id: &str) -> Option<PathBuf> {
    let mut path = marker_path(db)?.into_os_string();
    path.push(format!("-owner-{id}"));
    Some(PathBuf::from(path))
}

fn owner_error(path: &Path, source: std::io::Error) -> StoreError {
    StoreError::OwnerLock {
        path: path.display().to_string(),
        source,
    }
}

/// Creates and exclusively locks `id`'s owner file; the lock lasts as long as the returned
/// file (the kernel releases it when the process dies). `None` for an in-memory database.
pub(super) fn lock_owner(db: &Path, id: &str) -> Result<Option<std::fs::File>, StoreError> {
    let Some(path) = owner_path(db, id) else {
        return Ok(None);
    };
    let file = std::fs::OpenOptions::new()
        .create_new(true)
        .write(true)
        .open(&path)
        .map_err(|e| owner_error(&path, e))?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => Err(owner_error(
            &path,
            std::io::Error::other("locked by another process"),
        )),
        Err(std::fs::TryLockError::Error(e)) => Err(owner_error(&path, e)),
    }
}

/// Whether a process holds `id`'s owner file locked. A missing or unlocked file means the
/// owner is gone; its file is removed then (owner ids are never reused, and an owner creates
/// its jobs only after locking, so nobody is about to lock it). An in-memory database has no
/// other process: its owners count as alive.
pub(super) fn owner_alive(db: &Path, id: &str) -> Result<bool, StoreError> {
    let Some(path) = owner_path(db, id) else {
        return Ok(true);
    };
    let file = match std::fs::OpenOptions::new().write(true).open(&path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(owner_error(&path, e)),
    };
    match file.try_lock() {
        Ok(()) => {
            if let Err(e) = std::fs::remove_file(&path) {
                tracing::warn!(error = %e, path = %path.display(), "cannot remove a dead owner's file");
            }
            Ok(false)
        }
        Err(std::fs::TryLockError::WouldBlock) => Ok(true),
        Err(std::fs::TryLockError::Error(e)) => Err(owner_error(&path, e)),
    }
}

/// Unique indexes of `cache_entries` other than the primary key: (name, origin, columns), where
/// origin is `c` for `create unique index` and `u` for a table constraint.
pub(super) async fn unique_indexes(
    conn: &mut SqliteConnection,
) -> Result<Vec<(String, String, Vec<String>)>, StoreError> {
    let rows: Vec<(String, String, String)> = sqlx::query_as(
        "select il.name, il.origin, ii.name
         from pragma_index_list('cache_entries') il
         join pragma_index_info(il.name) ii
         where il.\"unique\" = 1 and il.origin <> 'pk'
         order by il.name, ii.seqno",
    )
    .fetch_all(conn)
    .await
    .during("reading cache_entries unique constraints")?;
    let mut out: Vec<(String, String, Vec<String>)> = Vec::new();
    for (name, origin, column) in rows {
        match out.last_mut() {
            Some(last) if last.0 == name => last.2.push(column),
            _ => out.push((name, origin, vec![column])),
        }
    }
    Ok(out)
}

/// The statements dropping unique indexes over a subset of `(type, key, environment)`. Fresh
/// SQLite files always carry the wide constraint (the embedded store only ever has tables it
/// created), so this normally returns nothing. A narrow *table constraint* cannot be dropped in
/// SQLite (it would take a table rebuild), so that case is refused with an explanation rather
/// than half-done.
pub(super) async fn narrow_unique_drops(
    conn: &mut SqliteConnection,
) -> Result<Vec<String>, StoreError> {
    let mut statements = Vec::new();
    for (name, origin, columns) in unique_indexes(conn).await? {
        if !columns
            .iter()
            .all(|c| matches!(c.as_str(), "type" | "key" | "environment"))
        {
            continue;
        }
        if origin != "c" {
            return Err(StoreError::Corrupt(format!(
                "unique constraint {name} of cache_entries leaves out name and is part of the \
                 table definition, which SQLite cannot drop; rebuild cache_entries with \
                 UNIQUE (type, name, key, environment) (create the new table, copy the rows, \
                 drop the old one, rename)"
            )));
        }
        statements.push(format!("drop index \"{}\"", name.replace('"', "\"\"")));
    }
    Ok(statements)
}
