//! Everything PostgreSQL and SQLite do differently, in one place, each difference one method
//! with one arm per store (the longer procedures live in `postgres.rs` and `sqlite.rs`). Every
//! other statement is written once in the SQL both speak.
//!
//! | difference | PostgreSQL | SQLite |
//! | --- | --- | --- |
//! | schema | `migrations/postgres` | `migrations/sqlite` |
//! | writer lock | `pg_try_advisory_xact_lock` | the write lock, taken with no busy wait |
//! | a refused run's record | waits for the advisory lock | `BEGIN IMMEDIATE` waits for the write lock |
//! | "now" | `now()` (the transaction's time) | bound from the clock, as text |
//! | time arithmetic | `extract(epoch from …)` | `julianday` |
//! | JSON functions | `->>`, `jsonb_*`, `jsonb_path_exists` | `json_extract`, `json_*`, `json_each` |
//! | latest close per symbol | `left join lateral` | a correlated primary-key probe |
//! | a date as text | `to_char(…, 'YYYY-MM-DD')` | the stored text |
//! | row digest | `xmin/ctid` (the row version) | BLAKE3 of the stored text |
//! | unique constraints | `pg_index` | `pragma_index_list` |
//! | a table's columns | `information_schema.columns` | `pragma_table_info` |
//! | parameters per statement | 65 535 | 32 766 |
//! | compaction's delete path | `SET LOCAL` naming a row of this transaction | a permit row |

use super::sql::{Conn, Sql};
use super::{postgres, sqlite, LockOutcome, QueryContext, StoreError, UniqueConstraint};
use chrono::{DateTime, Utc};

/// Which SQL a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Postgres,
    Sqlite,
}

impl Dialect {
    /// The schema this build expects.
    pub(super) fn migrator(self) -> &'static sqlx::migrate::Migrator {
        match self {
            Dialect::Postgres => &postgres::MIGRATOR,
            Dialect::Sqlite => &sqlite::MIGRATOR,
        }
    }

    /// A query answering whether sqlx's `_sqlx_migrations` table exists.
    pub(super) fn migrations_table_exists(self) -> &'static str {
        match self {
            Dialect::Postgres => "select to_regclass('_sqlx_migrations') is not null",
            Dialect::Sqlite => {
                "select count(*) > 0 from sqlite_master where type = 'table' and name = '_sqlx_migrations'"
            }
        }
    }

    /// A query answering whether the table named by `$1` exists.
    pub fn table_exists(self) -> &'static str {
        match self {
            Dialect::Postgres => "select to_regclass($1) is not null",
            Dialect::Sqlite => {
                "select count(*) > 0 from sqlite_master where type = 'table' and name = $1"
            }
        }
    }

    /// A query listing the column names of the table named by `$1` (in the schema unqualified
    /// names resolve to, on PostgreSQL).
    pub fn column_names(self) -> &'static str {
        match self {
            Dialect::Postgres => {
                "select cast(column_name as text) from information_schema.columns
                 where table_schema = current_schema() and table_name = $1"
            }
            Dialect::Sqlite => "select name from pragma_table_info($1)",
        }
    }

    /// Most parameters one statement may bind.
    pub fn max_parameters(self) -> usize {
        match self {
            Dialect::Postgres => 65_535,
            Dialect::Sqlite => 32_766,
        }
    }

    /// The time of a write as a `timestamptz` value: PostgreSQL's `now()`, or `at` bound as text
    /// on SQLite. Returns SQL to write (as often as needed) into `sql`.
    pub fn now(self, sql: &mut Sql, at: DateTime<Utc>) -> String {
        match self {
            Dialect::Postgres => "now()".to_owned(),
            Dialect::Sqlite => sql.param(at),
        }
    }

    /// As `now`, for `cache_entries`' timestamps without time zone (naive UTC text on SQLite;
    /// PostgreSQL converts `now()` in the session's time zone, as operators' SQL does).
    pub fn now_naive(self, sql: &mut Sql, at: DateTime<Utc>) -> String {
        match self {
            Dialect::Postgres => "now()".to_owned(),
            Dialect::Sqlite => sql.param(at.format("%Y-%m-%d %H:%M:%S%.6f").to_string()),
        }
    }

    /// Seconds from `start` to `end` (two `timestamptz` columns), as a double.
    pub fn seconds_between(self, start: &str, end: &str) -> String {
        match self {
            Dialect::Postgres => {
                format!("cast(extract(epoch from ({end} - {start})) as double precision)")
            }
            Dialect::Sqlite => format!("((julianday({end}) - julianday({start})) * 86400.0)"),
        }
    }

    /// The text of field `field` of the JSON object in `column`.
    pub fn json_field(self, column: &str, field: &str) -> String {
        match self {
            Dialect::Postgres => format!("{column}->>'{field}'"),
            Dialect::Sqlite => format!("json_extract({column}, '$.{field}')"),
        }
    }

    /// `'array'`, `'object'`, … for the JSON in `column`.
    pub fn json_type(self, column: &str) -> String {
        match self {
            Dialect::Postgres => format!("jsonb_typeof({column})"),
            Dialect::Sqlite => format!("json_type({column})"),
        }
    }

    /// The length of the JSON array in `column` (or in its field `field`); NULL when absent.
    pub fn json_array_length(self, column: &str, field: Option<&str>) -> String {
        match (self, field) {
            (Dialect::Postgres, None) => format!("jsonb_array_length({column})"),
            (Dialect::Postgres, Some(f)) => format!("jsonb_array_length({column}->'{f}')"),
            (Dialect::Sqlite, None) => format!("json_array_length({column})"),
            (Dialect::Sqlite, Some(f)) => format!("json_array_length({column}, '$.{f}')"),
        }
    }

    /// Appends a condition: the event change in column `change` adds or removes `ticker`.
    pub fn push_change_mentions(self, sql: &mut Sql, ticker: &str) {
        let t = sql.param(ticker);
        let mentions = ["added", "removed"].map(|side| match self {
            Dialect::Postgres => format!(
                "jsonb_path_exists(change::jsonb, '$.lists[*].{side}[*] ? (@.ticker == $t)', \
                 jsonb_build_object('t', {t}))"
            ),
            Dialect::Sqlite => format!(
                "exists (select 1 from json_each(change, '$.lists') l, \
                 json_each(l.value, '$.{side}') m where json_extract(m.value, '$.ticker') = {t})"
            ),
        });
        sql.push(&format!("({})", mentions.join(" or ")));
    }

    /// The date in `column` as `YYYY-MM-DD` text: whatever the session's `DateStyle` on
    /// PostgreSQL; the stored text on SQLite, which may be anything (the caller parses it).
    pub fn date_text(self, column: &str) -> String {
        match self {
            Dialect::Postgres => format!("to_char({column}, 'YYYY-MM-DD')"),
            Dialect::Sqlite => format!("cast({column} as text)"),
        }
    }

    /// `symbols s` joined to its latest close `c` on or before the date in `as_of` (a
    /// placeholder), for active symbols, or without `as_of` to its latest bar of all: one index
    /// probe per symbol on `(symbol, date)`, never a scan of the price history. PostgreSQL would hash-join the whole table for SQLite's form.
    pub fn latest_close_join(self, as_of: Option<&str>) -> String {
        // Bounded by a date, only active rows are probed; unbounded, every row is (its date is
        // part of the as-of date).
        let (bound, active) = match as_of {
            Some(as_of) => (format!(" and o.date <= {as_of}"), " and s.active is true"),
            None => (String::new(), ""),
        };
        match self {
            Dialect::Postgres => format!(
                "symbols s left join lateral (
                     select o.date, o.close from ohlcv_daily o
                     where o.symbol = s.symbol{bound}{active}
                     order by o.date desc limit 1
                 ) c on true"
            ),
            Dialect::Sqlite => format!(
                "symbols s left join ohlcv_daily c on c.symbol = s.symbol{active}
                      and c.date = (select o.date from ohlcv_daily o
                                    where o.symbol = s.symbol{bound}
                                    order by o.date desc limit 1)"
            ),
        }
    }

    /// What identifies the stored version of a `cache_entries` row aliased `alias`: the row
    /// version on PostgreSQL; the stored value on SQLite, which has none (see `row_digest`).
    pub fn row_version(self, alias: &str) -> String {
        match self {
            Dialect::Postgres => format!("{alias}.xmin::text || '/' || {alias}.ctid::text"),
            Dialect::Sqlite => format!("{alias}.value"),
        }
    }

    /// `StoredRow::digest` of what `row_version` selected. SQLite's is the BLAKE3 hash of the
    /// value text: exact (any edit of the text changes it), but it reads every owned value.
    pub fn row_digest(self, version: String) -> String {
        match self {
            Dialect::Postgres => version,
            Dialect::Sqlite => blake3::hash(version.as_bytes()).to_hex().to_string(),
        }
    }

    /// Takes the single-writer lock for the rest of the transaction, without waiting.
    pub(super) async fn try_lock_writer(
        self,
        conn: &mut Conn<'_>,
    ) -> Result<LockOutcome, StoreError> {
        match conn {
            Conn::Postgres(c) => postgres::try_lock_writer(c).await,
            Conn::Sqlite(c) => sqlite::try_lock_writer(c).await,
        }
    }

    /// Waits (at most 30 s, as SQLite's busy timeout) for the single-writer lock, for a
    /// transaction that appends a run record outside a run: ids are `max + 1` under the lock,
    /// so no two writers may allocate them at once. SQLite's `BEGIN IMMEDIATE` already waited.
    pub(super) async fn wait_for_writer_lock(self, conn: &mut Conn<'_>) -> Result<(), StoreError> {
        match conn {
            Conn::Postgres(c) => postgres::wait_for_writer_lock(c).await,
            Conn::Sqlite(_) => Ok(()),
        }
    }

    /// The unique constraints and unique indexes of `cache_entries` (primary key excluded).
    pub(super) async fn unique_constraints(
        self,
        conn: &mut Conn<'_>,
    ) -> Result<Vec<UniqueConstraint>, StoreError> {
        match conn {
            Conn::Postgres(c) => postgres::unique_constraints(c).await,
            Conn::Sqlite(c) => Ok(sqlite::unique_indexes(c)
                .await?
                .into_iter()
                .map(|(name, _, columns)| UniqueConstraint { name, columns })
                .collect()),
        }
    }

    /// The statements that replace unique constraints leaving out `name` (empty when none).
    pub(super) async fn widen_unique_statements(
        self,
        conn: &mut Conn<'_>,
    ) -> Result<Vec<String>, StoreError> {
        match conn {
            Conn::Postgres(c) => postgres::narrow_unique_drops(c).await,
            Conn::Sqlite(c) => sqlite::narrow_unique_drops(c).await,
        }
    }

    /// The column and value (each after a comma, or empty) recording which transaction wrote a
    /// compaction row: PostgreSQL's triggers check it; SQLite's permit row needs none.
    pub(super) fn compaction_txid(self) -> (&'static str, &'static str) {
        match self {
            Dialect::Postgres => (", txid", ", txid_current()"),
            Dialect::Sqlite => ("", ""),
        }
    }

    /// Lets this transaction delete from the log for compaction `id`: a transaction-local
    /// setting naming the row on PostgreSQL, a permit row on SQLite (see the migration).
    pub(super) async fn open_compaction_path(
        self,
        conn: &mut Conn<'_>,
        id: i64,
    ) -> Result<(), StoreError> {
        let sql = match self {
            Dialect::Postgres => {
                "select set_config('cache_sync.compaction', cast($1 as text), true)"
            }
            Dialect::Sqlite => {
                "insert into cache_sync_compaction_permit (compaction_id) values ($1)"
            }
        };
        conn.sql(sql)
            .bind(id)
            .execute(conn)
            .await
            .during("opening the compaction path")?;
        Ok(())
    }

    /// Closes what `open_compaction_path` opened, before the compaction commits.
    pub(super) async fn close_compaction_path(
        self,
        conn: &mut Conn<'_>,
        id: i64,
    ) -> Result<(), StoreError> {
        let sql = match self {
            Dialect::Postgres => conn.sql("select set_config('cache_sync.compaction', '', true)"),
            Dialect::Sqlite => conn
                .sql("delete from cache_sync_compaction_permit where compaction_id = $1")
                .bind(id),
        };
        sql.execute(conn)
            .await
            .during("closing the compaction path")?;
        Ok(())
    }

    /// Session settings for a transaction about to write large values.
    pub(super) async fn prepare_bulk_write(self, conn: &mut Conn<'_>) -> Result<(), StoreError> {
        match conn {
            Conn::Postgres(c) => postgres::prefer_lz4(c).await,
            Conn::Sqlite(_) => Ok(()),
        }
    }
}
