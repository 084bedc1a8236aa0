//! Test harness: each test gets its own PostgreSQL database (dropped when the test ends, pass or
//! fail), migrated, with helpers to load the synthetic market and inspect the table.

use chrono::{NaiveDate, TimeZone, Utc};
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, PgConnection, PgPool};
use std::str::FromStr;
use std::sync::atomic::{AtomicU32, Ordering};
use tickstock_cache_sync::domain::fingerprint::hash_value;
use tickstock_cache_sync::fixtures::{FixtureParams, SyntheticMarket};
use tickstock_cache_sync::fixtures_loader::{load_day, load_through_day};
use tickstock_cache_sync::job::{self, JobConfig, JobError, PlanRequest, RunRequest};
use tickstock_cache_sync::report::{PlanReport, RunReport};
use tickstock_cache_sync::store::postgres::PgStore;
use tickstock_cache_sync::store::{Store, Trigger};

/// The server tests create their databases on (`TEST_DATABASE_URL`, else the local default).
pub fn server_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A scratch database, dropped on `Drop`.
pub struct TestDb {
    pub name: String,
    pub url: String,
    pub store: PgStore,
}

impl TestDb {
    /// Creates and migrates a fresh database.
    pub async fn new() -> Self {
        let db = Self::empty().await;
        db.store.migrate().await.expect("migrations apply");
        db
    }

    /// Creates a fresh database without running migrations.
    pub async fn empty() -> Self {
        let name = format!(
            "cst_{}_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst),
            Utc::now().timestamp_subsec_nanos()
        );
        let options = PgConnectOptions::from_str(&server_url()).expect("valid TEST_DATABASE_URL");
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
        Self {
            name,
            url,
            store: PgStore::from_pool(pool),
        }
    }

    pub fn pool(&self) -> &PgPool {
        self.store.pool()
    }

    /// Loads the synthetic market through `day`.
    pub async fn load(&self, market: &SyntheticMarket, day: usize) {
        load_through_day(&self.store, market, day)
            .await
            .expect("load market");
    }

    /// Loads one more day on top of an earlier load.
    pub async fn load_next(&self, market: &SyntheticMarket, day: usize) {
        load_day(&self.store, market, day).await.expect("load day");
    }

    /// Plans with the default job configuration.
    pub async fn plan(&self) -> PlanReport {
        job::plan(
            &self.store,
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
    ) -> Result<RunReport, JobError> {
        job::run(&self.store, config, &request).await
    }

    /// `(id, type/name/key, value hash)` of every row of a type/environment selection, by id.
    pub async fn rows(&self, filter_sql: &str) -> Vec<(i32, String, String)> {
        let sql = format!(
            "select id, type || '/' || name || '/' || key, value::text from cache_entries where {filter_sql} order by id"
        );
        let rows: Vec<(i32, String, String)> = sqlx::query_as(&sql)
            .fetch_all(self.pool())
            .await
            .expect("rows");
        rows.into_iter()
            .map(|(id, key, value)| {
                let v: serde_json::Value = serde_json::from_str(&value).unwrap();
                (id, key, hash_value(&v).to_hex())
            })
            .collect()
    }

    /// Every row in full, including columns the job never writes, as text (for byte-identity).
    pub async fn raw_rows(&self, filter_sql: &str) -> Vec<String> {
        let sql = format!("select t::text from cache_entries t where {filter_sql} order by id");
        sqlx::query_scalar(&sql)
            .fetch_all(self.pool())
            .await
            .expect("raw rows")
    }

    /// Value of one entry.
    pub async fn value(
        &self,
        entry_type: &str,
        name: &str,
        key: &str,
    ) -> Option<serde_json::Value> {
        sqlx::query_scalar("select value from cache_entries where type = $1 and name = $2 and key = $3 and environment = 'DEFAULT'")
            .bind(entry_type)
            .bind(name)
            .bind(key)
            .fetch_optional(self.pool())
            .await
            .expect("value")
    }

    /// Counts of rows in a table.
    pub async fn count(&self, table: &str) -> i64 {
        sqlx::query_scalar(&format!("select count(*) from {table}"))
            .fetch_one(self.pool())
            .await
            .expect("count")
    }

    /// Installs a trigger counting every write to cache_entries, so tests can prove a run wrote
    /// nothing (the statistics views are updated asynchronously).
    pub async fn count_writes(&self) {
        sqlx::raw_sql(
            "create table test_write_counter (op text not null);
             create function test_count_write() returns trigger language plpgsql as $$
             begin insert into test_write_counter values (tg_op); return null; end $$;
             create trigger test_count_write after insert or update or delete on cache_entries
                 for each row execute function test_count_write();",
        )
        .execute(self.pool())
        .await
        .expect("install write counter");
    }

    pub async fn writes(&self) -> i64 {
        self.count("test_write_counter").await
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop runs outside async context guarantees; a thread with its own runtime can block.
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
    })
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
    let bands: Vec<serde_json::Value> = sqlx::query_scalar(
        "select value from cache_entries where type = 'stock_universe' and name = 'market_cap'",
    )
    .fetch_all(db.pool())
    .await
    .expect("market-cap bands");
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
    sqlx::query("update symbols set active = false where symbol = $1")
        .bind(&delisted)
        .execute(db.pool())
        .await
        .expect("deactivate");
    delisted
}
