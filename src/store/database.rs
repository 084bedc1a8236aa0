//! `SqlStore`: one database of either kind, its pool, its transactions, and the `Schema` role.

use super::dialect::Dialect;
use super::owner::{Owner, OwnerHold};
use super::sql::{Conn, Sql};
use super::{postgres, require_migrations, sqlite, QueryContext, Schema, StoreError};
use async_trait::async_trait;
use sqlx::pool::PoolConnection;
use sqlx::{Connection as _, PgConnection, PgPool, Postgres, Sqlite, SqlitePool, Transaction};

/// The store: PostgreSQL in production, or the embedded SQLite file. Cheap to clone (a pool).
#[derive(Clone)]
pub struct SqlStore {
    pool: Pool,
}

#[derive(Clone)]
enum Pool {
    Postgres(PgPool),
    Sqlite(SqlitePool),
}

/// A connection taken from the pool for a few statements.
pub enum Pooled {
    Postgres(PoolConnection<Postgres>),
    Sqlite(PoolConnection<Sqlite>),
}

impl Pooled {
    /// The connection, to run statements on.
    pub fn conn(&mut self) -> Conn<'_> {
        match self {
            Pooled::Postgres(c) => Conn::Postgres(c),
            Pooled::Sqlite(c) => Conn::Sqlite(c),
        }
    }
}

/// When a transaction takes the database's write lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Writes {
    /// At its first write (a run: `try_lock_writer` decides).
    Later,
    /// At once (it will write).
    Now,
}

/// An open transaction. Dropped without `commit`, it rolls back.
pub enum SqlTx {
    Postgres(Transaction<'static, Postgres>),
    /// With the writer-lock marker once the transaction holds the writer lock (see
    /// `sqlite.rs`); released with the transaction.
    Sqlite(Transaction<'static, Sqlite>, Option<std::fs::File>),
}

impl SqlTx {
    /// The transaction's connection, to run statements on.
    pub fn conn(&mut self) -> Conn<'_> {
        match self {
            SqlTx::Postgres(tx) => Conn::Postgres(tx),
            SqlTx::Sqlite(tx, _) => Conn::Sqlite(tx),
        }
    }

    /// Shows probes that this transaction holds the writer lock (SQLite; PostgreSQL's lock
    /// table already does).
    pub(super) async fn mark_writer(&mut self) {
        if let SqlTx::Sqlite(tx, marker) = self {
            *marker = sqlite::mark_writer(tx).await;
        }
    }

    /// Commits.
    ///
    /// # Errors
    /// The driver's error, with `context`.
    pub async fn commit(self, context: &'static str) -> Result<(), StoreError> {
        match self {
            SqlTx::Postgres(tx) => tx.commit().await,
            SqlTx::Sqlite(tx, _) => tx.commit().await,
        }
        .during(context)
    }

    /// Rolls back now.
    ///
    /// # Errors
    /// The driver's error.
    pub async fn rollback(self) -> Result<(), StoreError> {
        match self {
            SqlTx::Postgres(tx) => tx.rollback().await,
            SqlTx::Sqlite(tx, _) => tx.rollback().await,
        }
        .during("rolling back")
    }
}

impl SqlStore {
    /// Connects to PostgreSQL at `url` (`postgres://…`).
    ///
    /// # Errors
    /// `StoreError::Connect` naming the host (never the password) when the URL is malformed or
    /// the server does not answer within 10 seconds.
    pub async fn connect_postgres(url: &str) -> Result<Self, StoreError> {
        Ok(Self::from_pg_pool(postgres::connect(url).await?))
    }

    /// Opens (creating when missing) the SQLite file at `url` (`sqlite://path` or `sqlite:path`).
    ///
    /// # Errors
    /// `StoreError::Connect` when the URL is malformed or the file cannot be opened.
    pub async fn open_sqlite(url: &str) -> Result<Self, StoreError> {
        Ok(Self::from_sqlite_pool(sqlite::open(url, true).await?))
    }

    /// As `open_sqlite`, but a missing file is not created: it is reported as a database without
    /// the schema (with migrations off, nothing may be created).
    ///
    /// # Errors
    /// `StoreError::SchemaOutOfDate` when the file does not exist, else as `open_sqlite`.
    pub async fn open_existing_sqlite(url: &str) -> Result<Self, StoreError> {
        Ok(Self::from_sqlite_pool(sqlite::open(url, false).await?))
    }

    /// Wraps an existing PostgreSQL pool (tests, benchmarks).
    pub fn from_pg_pool(pool: PgPool) -> Self {
        Self {
            pool: Pool::Postgres(pool),
        }
    }

    /// Wraps an existing SQLite pool (tests).
    pub fn from_sqlite_pool(pool: SqlitePool) -> Self {
        Self {
            pool: Pool::Sqlite(pool),
        }
    }

    /// Which SQL the database speaks.
    pub fn dialect(&self) -> Dialect {
        match self.pool {
            Pool::Postgres(_) => Dialect::Postgres,
            Pool::Sqlite(_) => Dialect::Sqlite,
        }
    }

    /// The PostgreSQL pool, for benchmarks and tests that inspect the server directly.
    pub fn pg_pool(&self) -> Option<&PgPool> {
        match &self.pool {
            Pool::Postgres(pool) => Some(pool),
            Pool::Sqlite(_) => None,
        }
    }

    /// A statement for this database.
    pub fn sql(&self, text: &str) -> Sql {
        Sql::new(self.dialect(), text)
    }

    /// A connection from the pool.
    ///
    /// # Errors
    /// The pool's error (timeout, closed).
    pub async fn acquire(&self) -> Result<Pooled, StoreError> {
        Ok(match &self.pool {
            Pool::Postgres(p) => Pooled::Postgres(p.acquire().await.during("connecting")?),
            Pool::Sqlite(p) => Pooled::Sqlite(p.acquire().await.during("connecting")?),
        })
    }

    /// Starts a transaction. With `Writes::Later` it takes SQLite's write lock only when it
    /// first writes (deferred `BEGIN`; see `sqlite.rs`); with `Writes::Now` at once (`BEGIN
    /// IMMEDIATE`), so it never has to upgrade a read snapshot.
    ///
    /// # Errors
    /// The driver's error.
    pub async fn transaction(&self, writes: Writes) -> Result<SqlTx, StoreError> {
        let context = "starting a transaction";
        Ok(match (&self.pool, writes) {
            (Pool::Postgres(p), _) => SqlTx::Postgres(p.begin().await.during(context)?),
            (Pool::Sqlite(p), Writes::Later) => {
                SqlTx::Sqlite(p.begin().await.during(context)?, None)
            }
            (Pool::Sqlite(p), Writes::Now) => {
                SqlTx::Sqlite(p.begin_with("BEGIN IMMEDIATE").await.during(context)?, None)
            }
        })
    }

    /// Who holds the writer lock, without taking it (see `EventLog::writer_lock_holder`).
    ///
    /// # Errors
    /// The pool's or the driver's error.
    pub(super) async fn look_at_writer_lock(&self) -> Result<Option<String>, StoreError> {
        match &self.pool {
            Pool::Postgres(p) => {
                let mut conn = p.acquire().await.during("connecting")?;
                postgres::writer_lock_holder(&mut conn).await
            }
            Pool::Sqlite(p) => Ok(sqlite::writer_lock_holder(
                p.connect_options().get_filename(),
            )),
        }
    }

    /// Takes a fresh owner's lock (see `JobBoard::claim_owner`).
    ///
    /// # Errors
    /// The driver's error, or the owner file's.
    pub(super) async fn claim_owner(&self) -> Result<Owner, StoreError> {
        let id = Owner::new_id();
        let hold = match &self.pool {
            Pool::Postgres(p) => OwnerHold::Postgres(self.owner_session(p, &id).await?),
            Pool::Sqlite(p) => {
                OwnerHold::Sqlite(sqlite::lock_owner(p.connect_options().get_filename(), &id)?)
            }
        };
        Ok(Owner::new(id, hold))
    }

    /// A session of its own (outside the pool, which would hand it to other work) holding
    /// `id`'s owner lock.
    async fn owner_session(&self, pool: &PgPool, id: &str) -> Result<PgConnection, StoreError> {
        let mut conn = PgConnection::connect_with(&pool.connect_options())
            .await
            .during("connecting the owner session")?;
        postgres::lock_owner(&mut conn, id).await?;
        Ok(conn)
    }

    /// See `JobBoard::keep_owner`.
    ///
    /// # Errors
    /// The driver's error when the lock cannot be taken again.
    pub(super) async fn keep_owner(&self, owner: &Owner) -> Result<(), StoreError> {
        let mut hold = owner.hold.lock().await;
        if let (Pool::Postgres(p), OwnerHold::Postgres(conn)) = (&self.pool, &mut *hold) {
            if !postgres::session_answers(conn).await {
                tracing::warn!(
                    owner = owner.id(),
                    "the owner session was lost; taking it again"
                );
                *conn = self.owner_session(p, owner.id()).await?;
            }
        }
        Ok(())
    }

    /// See `JobBoard::owner_alive`.
    ///
    /// # Errors
    /// The driver's error, or the owner file's.
    pub(super) async fn owner_alive(&self, owner: &str) -> Result<bool, StoreError> {
        match &self.pool {
            Pool::Postgres(p) => {
                let mut conn = p.acquire().await.during("connecting")?;
                postgres::owner_alive(&mut conn, owner).await
            }
            Pool::Sqlite(p) => sqlite::owner_alive(p.connect_options().get_filename(), owner),
        }
    }

    /// Closes the pool's connections (benchmarks, before dropping a scratch database).
    pub async fn close(&self) {
        match &self.pool {
            Pool::Postgres(p) => p.close().await,
            Pool::Sqlite(p) => p.close().await,
        }
    }
}

#[async_trait]
impl Schema for SqlStore {
    async fn migrate(&self) -> Result<(), StoreError> {
        let migrator = self.dialect().migrator();
        match &self.pool {
            Pool::Postgres(p) => migrator.run(p).await?,
            Pool::Sqlite(p) => migrator.run(p).await?,
        }
        Ok(())
    }

    async fn check_schema(&self) -> Result<(), StoreError> {
        let dialect = self.dialect();
        let mut pooled = self.acquire().await?;
        let conn = &mut pooled.conn();
        let recorded: bool = conn
            .sql(dialect.migrations_table_exists())
            .scalar(conn)
            .await
            .during("checking the schema")?;
        let applied: Vec<i64> = if recorded {
            conn.sql("select version from _sqlx_migrations where success")
                .scalars(conn)
                .await
                .during("checking the schema")?
        } else {
            Vec::new()
        };
        require_migrations(dialect.migrator(), &applied)
    }

    async fn widen_unique(&self, apply: bool) -> Result<Vec<String>, StoreError> {
        let mut tx = self.transaction(Writes::Now).await?;
        let dialect = self.dialect();
        let mut statements = dialect.widen_unique_statements(&mut tx.conn()).await?;
        if statements.is_empty() {
            return Ok(statements);
        }
        statements.push(
            "create unique index if not exists cache_entries_type_name_key_environment_uidx \
             on cache_entries (type, name, key, environment)"
                .to_owned(),
        );
        if apply {
            for statement in &statements {
                Sql::new(dialect, statement)
                    .execute(&mut tx.conn())
                    .await
                    .during("widening a unique constraint")?;
            }
            tx.commit("committing the widened constraint").await?;
        }
        Ok(statements)
    }
}
