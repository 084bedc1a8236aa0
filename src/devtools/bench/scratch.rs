//! Scratch databases on the benchmark's server (created, possibly from a template, and
//! dropped), and the server-side figures: WAL written and audit bytes.

use crate::store::{QueryContext, SqlStore, StoreError};
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, PgConnection};

/// The PostgreSQL server scratch databases are made on.
pub(super) struct ScratchServer {
    pub(super) options: PgConnectOptions,
}

impl ScratchServer {
    pub(super) fn with_database(&self, name: &str) -> PgConnectOptions {
        self.options.clone().database(name)
    }

    pub(super) async fn admin(&self) -> Result<PgConnection, StoreError> {
        self.with_database("postgres")
            .connect()
            .await
            .during("connecting to the postgres database")
    }

    // Database names below are generated here from the process id, never from input.
    pub(super) async fn create(
        &self,
        name: &str,
        template: Option<&str>,
    ) -> Result<SqlStore, StoreError> {
        let mut admin = self.admin().await?;
        let sql = match template {
            Some(t) => format!("create database \"{name}\" template \"{t}\""),
            None => format!("create database \"{name}\""),
        };
        if let Some(template) = template {
            // A copy needs the template to itself: end any session still on it (a pooled
            // connection being torn down, autovacuum).
            sqlx::query("select pg_terminate_backend(pid) from pg_stat_activity where datname = $1 and pid <> pg_backend_pid()")
                .bind(template)
                .execute(&mut admin)
                .await
                .during("freeing the template database")?;
        }
        sqlx::query(&sql)
            .execute(&mut admin)
            .await
            .during("creating a scratch database")?;
        admin.close().await.during("closing")?;
        let pool = sqlx::PgPool::connect_with(self.with_database(name))
            .await
            .during("connecting to a scratch database")?;
        Ok(SqlStore::from_pg_pool(pool))
    }

    pub(super) async fn drop_db(&self, name: &str) -> Result<(), StoreError> {
        let mut admin = self.admin().await?;
        sqlx::query(&format!("drop database if exists \"{name}\" with (force)"))
            .execute(&mut admin)
            .await
            .during("dropping a scratch database")?;
        Ok(())
    }
}

/// The pool of a scratch database (always PostgreSQL: the benchmark needs a server).
pub(super) fn pg(store: &SqlStore) -> &sqlx::PgPool {
    store
        .pg_pool()
        .expect("bench databases are created on a PostgreSQL server")
}

pub(super) async fn wal_lsn(store: &SqlStore) -> Result<String, StoreError> {
    sqlx::query_scalar("select pg_current_wal_insert_lsn()::text")
        .fetch_one(pg(store))
        .await
        .during("reading the WAL position")
}

pub(super) async fn wal_since(store: &SqlStore, lsn: &str) -> Result<i64, StoreError> {
    let bytes: f64 = sqlx::query_scalar(
        "select pg_wal_lsn_diff(pg_current_wal_insert_lsn(), $1::pg_lsn)::float8",
    )
    .bind(lsn)
    .fetch_one(pg(store))
    .await
    .during("measuring WAL")?;
    Ok(bytes as i64)
}

pub(super) async fn audit_bytes(store: &SqlStore, run_id: i64) -> Result<i64, StoreError> {
    sqlx::query_scalar(
        "select coalesce((select sum(pg_column_size(e.*)) from cache_sync_event e where run_id = $1), 0)::int8
              + coalesce((select sum(pg_column_size(r.*)) from cache_sync_run r where run_id = $1), 0)::int8
              + coalesce((select sum(pg_column_size(v.*)) from cache_sync_run_values v where run_id = $1), 0)::int8",
    )
    .bind(run_id)
    .fetch_one(pg(store))
    .await
    .during("measuring audit bytes")
}
