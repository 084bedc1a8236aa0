//! Test harness. Each test gets its own database, dropped when the test ends (pass or fail):
//! a scratch PostgreSQL database, or a SQLite file in a scratch directory. Store-facing tests
//! are written once against `TestDb` and run on both stores through `on_both_stores!`; their
//! statements go through the crate's own SQL layer (`store::sql`), which renders one statement
//! for either store, and the two helpers that cannot share SQL (row text, write counting) say
//! so by matching on the dialect.

use chrono::{NaiveDate, TimeZone, Utc};
use serde_json::Value;
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, PgConnection, PgPool};
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use tickstock_cache_sync::devtools::loader::{load_day, load_through_day};
use tickstock_cache_sync::devtools::market::{FixtureParams, SyntheticMarket};
use tickstock_cache_sync::domain::fingerprint::hash_value;
use tickstock_cache_sync::job::{self, JobConfig, PlanRequest, RunError, RunRequest};
use tickstock_cache_sync::report::{PlanReport, RunReport};
use tickstock_cache_sync::store::dialect::Dialect;
use tickstock_cache_sync::store::sql::{Column, Conn, Param, Record};
use tickstock_cache_sync::store::{SqlStore, Store, Trigger};

/// `on_both_stores!(name)` after `async fn name(backend: Backend)` adds a module `name` with one
/// test per store, `name::postgres` and `name::sqlite`, so a feature is proved on both stores by
/// the same code.
macro_rules! on_both_stores {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name($crate::helpers::Backend::Postgres).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::helpers::Backend::Sqlite).await;
            }
        }
    };
}
pub(crate) use on_both_stores;

/// Upper bound on a wait for a socket, a message or a child process: exceeding it fails the
/// test (a failure bound, never a pause).
pub const WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// Which store a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

/// The server tests create their PostgreSQL databases on (`TEST_DATABASE_URL`, else the local
/// default).
pub fn server_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

fn scratch_name() -> String {
    format!(
        "cst_{}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst),
        Utc::now().timestamp_subsec_nanos()
    )
}

/// A scratch database, dropped on `Drop`.
pub struct TestDb {
    pub name: String,
    /// What `DATABASE_URL` would be to reach this database.
    pub url: String,
    /// Every role of the store, as the job, the API and history take it.
    pub store: Arc<dyn Store>,
    /// The same store, for what only development tools do (writing the synthetic market).
    pub database: SqlStore,
    /// The SQLite file's scratch directory.
    dir: Option<PathBuf>,
}

/// A statement in the SQL both stores share, with its parameters.
pub struct Sql<'a> {
    db: &'a TestDb,
    sql: tickstock_cache_sync::store::sql::Sql,
}

impl Sql<'_> {
    pub fn bind(mut self, param: impl Into<Param>) -> Self {
        self.sql = self.sql.bind(param);
        self
    }

    fn text(&self) -> String {
        format!("{:?}", self.sql)
    }

    /// Executes, returning the number of rows affected.
    pub async fn try_execute(self) -> Result<u64, sqlx::Error> {
        let mut pooled = self.db.database.acquire().await.expect("a connection");
        self.sql.execute(&mut pooled.conn()).await
    }

    pub async fn execute(self) -> u64 {
        let text = self.text();
        self.try_execute()
            .await
            .unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    pub async fn fetch_all<T: Record>(self) -> Vec<T> {
        let text = self.text();
        let mut pooled = self.db.database.acquire().await.expect("a connection");
        self.sql
            .fetch_all(&mut pooled.conn())
            .await
            .unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    pub async fn fetch_one<T: Record>(self) -> T {
        let text = self.text();
        let mut rows = self.fetch_all::<T>().await;
        assert_eq!(rows.len(), 1, "{text}: expected exactly one row");
        rows.remove(0)
    }

    pub async fn fetch_optional<T: Record>(self) -> Option<T> {
        let text = self.text();
        let mut rows = self.fetch_all::<T>().await;
        assert!(rows.len() <= 1, "{text}: expected at most one row");
        rows.pop()
    }

    /// The first column of every row.
    pub async fn scalars<T: Column>(self) -> Vec<T> {
        self.fetch_all::<(T,)>()
            .await
            .into_iter()
            .map(|(v,)| v)
            .collect()
    }

    /// The first column of the one row.
    pub async fn scalar<T: Column>(self) -> T {
        self.fetch_one::<(T,)>().await.0
    }

    pub async fn scalar_optional<T: Column>(self) -> Option<T> {
        self.fetch_optional::<(T,)>().await.map(|(v,)| v)
    }
}

impl TestDb {
    /// A fresh, migrated PostgreSQL database (tests of PostgreSQL-only behaviour).
    pub async fn new() -> Self {
        Self::on(Backend::Postgres).await
    }

    /// A fresh, migrated database on `backend`.
    pub async fn on(backend: Backend) -> Self {
        let db = Self::empty_on(backend).await;
        db.store.migrate().await.expect("migrations apply");
        db
    }

    /// A fresh database on `backend` without the schema.
    pub async fn empty_on(backend: Backend) -> Self {
        let name = scratch_name();
        let (url, database, dir) = match backend {
            Backend::Postgres => {
                let options =
                    PgConnectOptions::from_str(&server_url()).expect("valid TEST_DATABASE_URL");
                let mut admin = options
                    .clone()
                    .database("postgres")
                    .connect()
                    .await
                    .expect("connect to postgres");
                sqlx::query(&format!("create database \"{name}\""))
                    .execute(&mut admin)
                    .await
                    .expect("create test database");
                admin.close().await.ok();
                let pool = PgPool::connect_with(options.database(&name))
                    .await
                    .expect("connect to test database");
                let url = format!("{}/{}", server_url().rsplit_once('/').unwrap().0, name);
                (url, SqlStore::from_pg_pool(pool), None)
            }
            Backend::Sqlite => {
                let dir = std::env::temp_dir().join(&name);
                std::fs::create_dir_all(&dir).expect("scratch directory");
                let url = format!("sqlite://{}", dir.join("cache-sync.sqlite").display());
                let store = SqlStore::open_sqlite(&url)
                    .await
                    .expect("open the SQLite file");
                (url, store, Some(dir))
            }
        };
        Self {
            name,
            url,
            store: Arc::new(database.clone()),
            database,
            dir,
        }
    }

    /// Which store this database is on.
    pub fn backend(&self) -> Backend {
        match self.database.dialect() {
            Dialect::Postgres => Backend::Postgres,
            Dialect::Sqlite => Backend::Sqlite,
        }
    }

    /// The PostgreSQL pool, for tests of PostgreSQL-only behaviour.
    pub fn pool(&self) -> &PgPool {
        self.database
            .pg_pool()
            .expect("a PostgreSQL-only test ran on SQLite")
    }

    /// A statement in the SQL both stores share (`$1`-style parameters work on both).
    pub fn sql(&self, sql: impl Into<String>) -> Sql<'_> {
        Sql {
            db: self,
            sql: self.database.sql(&sql.into()),
        }
    }

    /// A statement written by the crate (to run as it is, or `explain`ed).
    pub fn statement(&self, sql: tickstock_cache_sync::store::sql::Sql) -> Sql<'_> {
        Sql { db: self, sql }
    }

    /// Runs several statements (no parameters).
    pub async fn exec(&self, sql: &str) {
        let mut pooled = self.database.acquire().await.expect("a connection");
        let result = match pooled.conn() {
            Conn::Postgres(c) => sqlx::raw_sql(sql).execute(c).await.map(drop),
            Conn::Sqlite(c) => sqlx::raw_sql(sql).execute(c).await.map(drop),
        };
        result.unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// Loads the synthetic market through `day`.
    pub async fn load(&self, market: &SyntheticMarket, day: usize) {
        load_through_day(&self.database, market, day)
            .await
            .expect("load market");
    }

    /// Loads one more day on top of an earlier load.
    pub async fn load_next(&self, market: &SyntheticMarket, day: usize) {
        load_day(&self.database, market, day)
            .await
            .expect("load day");
    }

    /// Plans with the default job configuration.
    pub async fn plan(&self) -> PlanReport {
        job::plan(
            self.store.as_ref(),
            &JobConfig::default(),
            &PlanRequest::default(),
            today(),
        )
        .await
        .expect("plan")
    }

    /// Runs with the default job configuration.
    pub async fn run(&self) -> RunReport {
        self.try_run(&JobConfig::default(), run_request(false))
            .await
            .expect("run")
    }

    /// Runs with `force`.
    pub async fn run_forced(&self) -> RunReport {
        self.try_run(&JobConfig::default(), run_request(true))
            .await
            .expect("forced run")
    }

    pub async fn try_run(
        &self,
        config: &JobConfig,
        request: RunRequest,
    ) -> Result<RunReport, RunError> {
        job::run(self.store.as_ref(), config, &request).await
    }

    /// `(id, type/name/key, value hash)` of every row of a selection, by id.
    pub async fn rows(&self, filter_sql: &str) -> Vec<(i64, String, String)> {
        let rows: Vec<(i64, String, String)> = self
            .sql(format!(
                "select cast(id as bigint), type || '/' || name || '/' || key, cast(value as text)
                 from cache_entries where {filter_sql} order by id"
            ))
            .fetch_all()
            .await;
        rows.into_iter()
            .map(|(id, key, value)| {
                let v: Value = serde_json::from_str(&value).unwrap();
                (id, key, hash_value(&v).to_hex())
            })
            .collect()
    }

    /// Every row of `table` matching `filter_sql` in full, including columns the job never
    /// writes, one text line per row in `order_by` order (for byte-identity checks).
    pub async fn table_text(&self, table: &str, filter_sql: &str, order_by: &str) -> Vec<String> {
        match self.backend() {
            Backend::Postgres => {
                self.sql(format!(
                    "select t::text from {table} t where {filter_sql} order by {order_by}"
                ))
                .scalars()
                .await
            }
            Backend::Sqlite => {
                let columns: Vec<String> = self
                    .sql(format!(
                        "select name from pragma_table_info('{table}') order by cid"
                    ))
                    .scalars()
                    .await;
                let row = columns
                    .iter()
                    .map(|c| format!("quote(\"{c}\")"))
                    .collect::<Vec<_>>()
                    .join(" || ',' || ");
                self.sql(format!(
                    "select {row} from {table} where {filter_sql} order by {order_by}"
                ))
                .scalars()
                .await
            }
        }
    }

    /// Every `cache_entries` row of a selection in full, by id.
    pub async fn raw_rows(&self, filter_sql: &str) -> Vec<String> {
        self.table_text("cache_entries", filter_sql, "id").await
    }

    /// Value of one entry.
    pub async fn value(&self, entry_type: &str, name: &str, key: &str) -> Option<Value> {
        self.sql(
            "select value from cache_entries
             where type = $1 and name = $2 and key = $3 and environment = 'DEFAULT'",
        )
        .bind(entry_type)
        .bind(name)
        .bind(key)
        .scalar_optional()
        .await
    }

    /// Replaces the value of one entry, as a hand edit would.
    pub async fn set_value(&self, entry_type: &str, name: &str, key: &str, value: &Value) {
        let changed = self
            .sql(
                "update cache_entries set value = $1
                 where type = $2 and name = $3 and key = $4 and environment = 'DEFAULT'",
            )
            .bind(value)
            .bind(entry_type)
            .bind(name)
            .bind(key)
            .execute()
            .await;
        assert_eq!(changed, 1, "{entry_type}/{name}/{key} exists");
    }

    /// Counts of rows in a table.
    pub async fn count(&self, table: &str) -> i64 {
        self.sql(format!("select count(*) from {table}"))
            .scalar()
            .await
    }

    /// Installs a trigger counting every write to cache_entries, so tests can prove a run wrote
    /// nothing (PostgreSQL's statistics views are updated asynchronously).
    pub async fn count_writes(&self) {
        match self.backend() {
            Backend::Postgres => {
                self.exec(
                    "create table test_write_counter (op text not null);
                     create function test_count_write() returns trigger language plpgsql as $$
                     begin insert into test_write_counter values (tg_op); return null; end $$;
                     create trigger test_count_write after insert or update or delete on cache_entries
                         for each row execute function test_count_write();",
                )
                .await;
            }
            Backend::Sqlite => {
                self.exec(
                    "create table test_write_counter (op text not null);
                     create trigger test_count_insert after insert on cache_entries
                     begin insert into test_write_counter values ('INSERT'); end;
                     create trigger test_count_update after update on cache_entries
                     begin insert into test_write_counter values ('UPDATE'); end;
                     create trigger test_count_delete after delete on cache_entries
                     begin insert into test_write_counter values ('DELETE'); end;",
                )
                .await;
            }
        }
    }

    pub async fn writes(&self) -> i64 {
        self.count("test_write_counter").await
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
            return;
        }
        let name = self.name.clone();
        // Drop may run outside a runtime; a thread with its own runtime can block.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let options = PgConnectOptions::from_str(&server_url())
                    .unwrap()
                    .database("postgres");
                if let Ok(mut admin) = PgConnection::connect_with(&options).await {
                    let _ =
                        sqlx::query(&format!("drop database if exists \"{name}\" with (force)"))
                            .execute(&mut admin)
                            .await;
                }
            });
        })
        .join();
    }
}

/// A fixed "today" for tests: no test depends on the wall clock.
pub fn today() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 3, 2).unwrap()
}

pub fn run_request(force: bool) -> RunRequest {
    RunRequest {
        plan: PlanRequest::default(),
        force,
        trigger: Trigger::Test,
        now: Utc.with_ymd_and_hms(2026, 3, 2, 22, 0, 0).unwrap(),
        pause_before_commit: false,
        job_id: "test".to_owned(),
        progress: None,
        expect_plan: None,
    }
}

/// A small synthetic market (fast to load and run).
pub fn small_market(seed: u64, days: usize) -> SyntheticMarket {
    SyntheticMarket::generate(&FixtureParams {
        stocks: 600,
        etfs: 120,
        days,
        seed,
        nasty: false,
        renames: 0,
    })
}

/// A small market whose day 2 lists a new common stock (so the nightly run assigns an IPO).
pub fn market_with_a_listing_on_day_2() -> SyntheticMarket {
    (1..400)
        .map(|seed| small_market(seed, 2))
        .find(|m| {
            let day2 = m.date_of_day(2);
            m.symbols_as_of_day(2).iter().any(|r| {
                r.kind.as_deref() == Some("CS")
                    && r.active == Some(true)
                    && r.list_date == Some(day2)
            })
        })
        .expect("some seed lists a stock on day 2")
}

/// Hashes of every owned entry, from the live table.
pub async fn live_hashes(db: &TestDb) -> std::collections::BTreeMap<String, String> {
    db.rows("environment = 'DEFAULT' and type not in ('app_settings', 'cache_config')")
        .await
        .into_iter()
        .map(|(_, key, hash)| (key, hash))
        .collect()
}

/// A `cache-sync` command (the built binary) pointed at `db` through `DATABASE_URL`, with the
/// settings that could leak in from the caller's environment cleared.
pub fn cache_sync_command(db: &TestDb, args: &[&str]) -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_cache-sync"));
    command
        .args(args)
        .env("DATABASE_URL", &db.url)
        .env_remove("CACHE_SYNC_CONFIG")
        .env_remove("CACHE_SYNC_ENVIRONMENT")
        .env_remove("CACHE_SYNC_LOG_FORMAT")
        .env_remove("REDIS_URL");
    command
}

/// Runs `cache-sync` against `db` to completion: exit code, stdout and stderr.
pub fn cache_sync_cli(db: &TestDb, args: &[&str]) -> std::process::Output {
    cache_sync_command(db, args)
        .output()
        .expect("start the cache-sync binary")
}

/// Command output as text.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A finished command's exit code and output, for assertion messages.
pub fn describe(out: &std::process::Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Marks the smallest member of the largest market-cap band inactive, as a delisting overnight
/// would, and returns its ticker.
pub async fn delist_smallest_member_of_largest_band(db: &TestDb) -> String {
    let bands: Vec<Value> = db
        .sql(
            "select value from cache_entries where type = 'stock_universe' and name = 'market_cap'",
        )
        .scalars()
        .await;
    let largest = bands
        .iter()
        .max_by_key(|v| v["stocks"].as_array().map_or(0, Vec::len))
        .expect("at least one band");
    let delisted = largest["stocks"]
        .as_array()
        .and_then(|s| s.last())
        .expect("a member")["ticker"]
        .as_str()
        .expect("a ticker")
        .to_owned();
    db.sql("update symbols set active = false where symbol = $1")
        .bind(&delisted)
        .execute()
        .await;
    delisted
}
