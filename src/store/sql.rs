//! The shared SQL layer: every statement is written once, as text in the SQL both stores speak
//! (`$1` parameters, `cast(… as …)`, `values` lists, `on conflict`), with bound parameters in a
//! store-neutral `Param`. A statement is rendered for the connection's dialect, so the few
//! places where PostgreSQL and SQLite differ are fragments asked of `Dialect` (see
//! `store/dialect.rs`) instead of second copies of a statement. Values are always bound, never
//! spliced into SQL text.
//!
//! Rows decode through sqlx on either store, as tuples or `FromRow` records of any column type
//! both drivers decode (`Column`, `Record`).

use super::dialect::Dialect;
use super::{QueryContext, StoreError};
use chrono::{DateTime, NaiveDate, Utc};
use sqlx::postgres::{PgArgumentBuffer, PgArguments, PgRow, PgTypeInfo};
use sqlx::sqlite::{SqliteArguments, SqliteRow};
use sqlx::{
    Arguments, Decode, Encode, FromRow, PgConnection, Postgres, Sqlite, SqliteConnection, Type,
};

/// JSON as canonical `serde_json` text: bound as `jsonb` on PostgreSQL and as text on SQLite,
/// so a value is serialised once and never cloned as a tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonText(pub String);

impl Type<Postgres> for JsonText {
    fn type_info() -> PgTypeInfo {
        <serde_json::Value as Type<Postgres>>::type_info()
    }
}

impl Encode<'_, Postgres> for JsonText {
    fn encode_by_ref(
        &self,
        buf: &mut PgArgumentBuffer,
    ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
        // jsonb's binary format: a version byte, then the text.
        buf.push(1);
        buf.extend_from_slice(self.0.as_bytes());
        Ok(sqlx::encode::IsNull::No)
    }
}

/// JSON the audit log keeps as written: bound as `json` on PostgreSQL (validated and stored as
/// text, TOAST-compressed) and as text on SQLite. `jsonb` would parse every byte into a tree
/// on the way in, about six times the cost per byte, for columns read back whole and never
/// queried on a run's path (`cache_entries.value`, which the app queries, stays `jsonb`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedJson(pub String);

impl Type<Postgres> for LoggedJson {
    fn type_info() -> PgTypeInfo {
        const JSON: sqlx::postgres::types::Oid = sqlx::postgres::types::Oid(114);
        PgTypeInfo::with_oid(JSON)
    }
}

impl Encode<'_, Postgres> for LoggedJson {
    fn encode_by_ref(
        &self,
        buf: &mut PgArgumentBuffer,
    ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
        // json's binary format is its text.
        buf.extend_from_slice(self.0.as_bytes());
        Ok(sqlx::encode::IsNull::No)
    }
}

/// One bound parameter. Each variant carries its SQL type even when NULL, because PostgreSQL
/// types every parameter.
#[derive(Debug, Clone, PartialEq)]
pub enum Param {
    Bool(Option<bool>),
    Int(Option<i64>),
    Float(Option<f64>),
    Text(Option<String>),
    Date(Option<NaiveDate>),
    /// A `timestamptz`; SQLite holds RFC 3339 UTC text with fixed-width microseconds, so text
    /// order is time order.
    Time(DateTime<Utc>),
    Json(JsonText),
    LoggedJson(LoggedJson),
}

impl Param {
    /// JSON of any serialisable value.
    ///
    /// # Errors
    /// `StoreError::Corrupt` when the value does not serialise.
    pub fn json<T: serde::Serialize + ?Sized>(value: &T) -> Result<Self, StoreError> {
        Ok(Param::Json(json_text(value)?))
    }

    /// JSON of any serialisable value, for an audit-log column (see `LoggedJson`).
    ///
    /// # Errors
    /// `StoreError::Corrupt` when the value does not serialise.
    pub fn logged_json<T: serde::Serialize + ?Sized>(value: &T) -> Result<Self, StoreError> {
        Ok(Param::LoggedJson(LoggedJson(json_text(value)?.0)))
    }
}

/// Canonical JSON text of a value.
///
/// # Errors
/// `StoreError::Corrupt` when the value does not serialise.
pub fn json_text<T: serde::Serialize + ?Sized>(value: &T) -> Result<JsonText, StoreError> {
    serde_json::to_string(value)
        .map(JsonText)
        .map_err(|e| StoreError::Corrupt(format!("unserializable JSON: {e}")))
}

/// A `timestamptz` as SQLite stores it (see `Param::Time`).
pub fn sqlite_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

macro_rules! param_from {
    ($($t:ty => $variant:ident($convert:expr)),* $(,)?) => {$(
        impl From<$t> for Param {
            fn from(v: $t) -> Self {
                Param::$variant($convert(v))
            }
        }
    )*};
}

param_from! {
    bool => Bool(Some),
    Option<bool> => Bool(|v| v),
    i64 => Int(Some),
    i32 => Int(|v: i32| Some(i64::from(v))),
    Option<i64> => Int(|v| v),
    f64 => Float(Some),
    Option<f64> => Float(|v| v),
    &str => Text(|v: &str| Some(v.to_owned())),
    String => Text(Some),
    &String => Text(|v: &String| Some(v.clone())),
    Option<&str> => Text(|v: Option<&str>| v.map(str::to_owned)),
    Option<String> => Text(|v| v),
    &Option<String> => Text(|v: &Option<String>| v.clone()),
    NaiveDate => Date(Some),
    Option<NaiveDate> => Date(|v| v),
    DateTime<Utc> => Time(|v| v),
    JsonText => Json(|v| v),
}

impl From<&serde_json::Value> for Param {
    fn from(v: &serde_json::Value) -> Self {
        Param::Json(JsonText(v.to_string()))
    }
}

impl From<serde_json::Value> for Param {
    fn from(v: serde_json::Value) -> Self {
        Param::from(&v)
    }
}

/// A column type both drivers decode.
pub trait Column:
    for<'r> Decode<'r, Postgres>
    + Type<Postgres>
    + for<'r> Decode<'r, Sqlite>
    + Type<Sqlite>
    + Send
    + Unpin
{
}

impl<T> Column for T where
    T: for<'r> Decode<'r, Postgres>
        + Type<Postgres>
        + for<'r> Decode<'r, Sqlite>
        + Type<Sqlite>
        + Send
        + Unpin
{
}

/// A row type both drivers decode (tuples of `Column`s).
pub trait Record:
    for<'r> FromRow<'r, PgRow> + for<'r> FromRow<'r, SqliteRow> + Send + Unpin
{
}

impl<T> Record for T where
    T: for<'r> FromRow<'r, PgRow> + for<'r> FromRow<'r, SqliteRow> + Send + Unpin
{
}

/// A connection of either store, borrowed for a few statements.
pub enum Conn<'c> {
    Postgres(&'c mut PgConnection),
    Sqlite(&'c mut SqliteConnection),
}

impl Conn<'_> {
    /// Which SQL this connection speaks.
    pub fn dialect(&self) -> Dialect {
        match self {
            Conn::Postgres(_) => Dialect::Postgres,
            Conn::Sqlite(_) => Dialect::Sqlite,
        }
    }

    /// A statement for this connection.
    pub fn sql(&self, text: &str) -> Sql {
        Sql::new(self.dialect(), text)
    }
}

/// Adds one parameter to a driver's arguments; the two stores differ only in how a time and
/// JSON are encoded.
macro_rules! add_param {
    ($out:ident, $param:expr, $time:expr, $json:expr, $logged:expr) => {
        match $param {
            Param::Bool(v) => $out.add(*v),
            Param::Int(v) => $out.add(*v),
            Param::Float(v) => $out.add(*v),
            Param::Text(v) => $out.add(v.clone()),
            Param::Date(v) => $out.add(*v),
            Param::Time(v) => $out.add($time(*v)),
            Param::Json(v) => $out.add($json(v)),
            Param::LoggedJson(v) => $out.add($logged(v)),
        }
        .map_err(sqlx::Error::Encode)?
    };
}

/// A statement and its parameters, rendered for one dialect.
#[derive(Debug, Clone)]
pub struct Sql {
    dialect: Dialect,
    text: String,
    params: Vec<Param>,
}

impl Sql {
    /// A statement in `dialect`; `$n` placeholders in `text` refer to the n-th `bind`.
    pub fn new(dialect: Dialect, text: &str) -> Self {
        Self {
            dialect,
            text: text.to_owned(),
            params: Vec::new(),
        }
    }

    /// The dialect it is rendered for.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// Binds the next `$n`.
    pub fn bind(mut self, param: impl Into<Param>) -> Self {
        self.params.push(param.into());
        self
    }

    /// The statement with `text` in front (`explain …` of a statement written elsewhere).
    pub fn prefixed(mut self, text: &str) -> Self {
        self.text.insert_str(0, text);
        self
    }

    /// Appends SQL text.
    pub fn push(&mut self, text: &str) -> &mut Self {
        self.text.push_str(text);
        self
    }

    /// Binds a parameter and returns its placeholder, to be written (once or more) into the text.
    pub fn param(&mut self, param: impl Into<Param>) -> String {
        self.params.push(param.into());
        format!("${}", self.params.len())
    }

    /// Appends a bound parameter's placeholder.
    pub fn push_bind(&mut self, param: impl Into<Param>) -> &mut Self {
        let placeholder = self.param(param);
        self.push(&placeholder)
    }

    /// Appends `(p1, p2, …)`, one placeholder per item: an id list for `in`.
    pub fn push_list<P: Into<Param>>(&mut self, items: impl IntoIterator<Item = P>) -> &mut Self {
        self.push("(");
        for (i, item) in items.into_iter().enumerate() {
            if i > 0 {
                self.push(", ");
            }
            self.push_bind(item);
        }
        self.push(")")
    }

    /// Appends `values (…), (…)`: one parenthesised tuple per row, its parameters added by
    /// `row` (which may also write fragments such as a shared timestamp placeholder).
    pub fn push_values<T>(
        &mut self,
        rows: &[T],
        mut row: impl FnMut(&mut Tuple<'_>, &T),
    ) -> &mut Self {
        self.push("values ");
        for (i, item) in rows.iter().enumerate() {
            if i > 0 {
                self.push(", ");
            }
            self.push("(");
            let mut tuple = Tuple {
                sql: self,
                index: i,
                first: true,
            };
            row(&mut tuple, item);
            self.push(")");
        }
        self
    }

    /// Executes; the number of rows affected.
    ///
    /// # Errors
    /// The driver's error.
    pub async fn execute(self, conn: &mut Conn<'_>) -> Result<u64, sqlx::Error> {
        match conn {
            Conn::Postgres(c) => Ok(sqlx::query_with(&self.text, self.pg_arguments()?)
                .execute(&mut **c)
                .await?
                .rows_affected()),
            Conn::Sqlite(c) => {
                let (text, arguments) = self.sqlite_statement()?;
                Ok(sqlx::query_with(&text, arguments)
                    .execute(&mut **c)
                    .await?
                    .rows_affected())
            }
        }
    }

    /// Every row, decoded as `T` (a tuple of columns).
    ///
    /// # Errors
    /// The driver's error.
    pub async fn fetch_all<T: Record>(self, conn: &mut Conn<'_>) -> Result<Vec<T>, sqlx::Error> {
        match conn {
            Conn::Postgres(c) => {
                sqlx::query_as_with(&self.text, self.pg_arguments()?)
                    .fetch_all(&mut **c)
                    .await
            }
            Conn::Sqlite(c) => {
                let (text, arguments) = self.sqlite_statement()?;
                sqlx::query_as_with(&text, arguments)
                    .fetch_all(&mut **c)
                    .await
            }
        }
    }

    /// At most one row (the first), decoded as `T`.
    ///
    /// # Errors
    /// The driver's error.
    pub async fn fetch_optional<T: Record>(
        self,
        conn: &mut Conn<'_>,
    ) -> Result<Option<T>, sqlx::Error> {
        Ok(self.fetch_all(conn).await?.into_iter().next())
    }

    /// The first column of the one row.
    ///
    /// # Errors
    /// The driver's error; `RowNotFound` when there is no row.
    pub async fn scalar<T: Column>(self, conn: &mut Conn<'_>) -> Result<T, sqlx::Error> {
        self.fetch_optional::<(T,)>(conn)
            .await?
            .map(|(v,)| v)
            .ok_or(sqlx::Error::RowNotFound)
    }

    /// The first column of every row.
    ///
    /// # Errors
    /// The driver's error.
    pub async fn scalars<T: Column>(self, conn: &mut Conn<'_>) -> Result<Vec<T>, sqlx::Error> {
        Ok(self
            .fetch_all::<(T,)>(conn)
            .await?
            .into_iter()
            .map(|(v,)| v)
            .collect())
    }

    fn pg_arguments(&self) -> Result<PgArguments, sqlx::Error> {
        debug_assert_eq!(self.dialect, Dialect::Postgres, "{}", self.text);
        let mut out = PgArguments::default();
        for p in &self.params {
            add_param!(out, p, |t| t, |j: &JsonText| j.clone(), |j: &LoggedJson| j
                .clone());
        }
        Ok(out)
    }

    /// The text with every `$n` turned into an anonymous `?`, and the parameters in the order
    /// the `?`s appear (a parameter used twice is bound twice). SQLite looks numbered and named
    /// parameters up one by one, which is quadratic in a statement of thousands; anonymous ones
    /// are positional. `$` inside a quoted literal (JSON paths) is left alone.
    fn sqlite_statement(&self) -> Result<(String, SqliteArguments<'static>), sqlx::Error> {
        debug_assert_eq!(self.dialect, Dialect::Sqlite, "{}", self.text);
        let mut text = String::with_capacity(self.text.len());
        let mut order = Vec::new();
        let mut quoted = false;
        let mut chars = self.text.char_indices().peekable();
        while let Some((_, c)) = chars.next() {
            let numbered =
                c == '$' && !quoted && chars.peek().is_some_and(|(_, d)| d.is_ascii_digit());
            if !numbered {
                quoted ^= c == '\'';
                text.push(c);
                continue;
            }
            let mut n = 0usize;
            while let Some((_, d)) = chars.peek().filter(|(_, d)| d.is_ascii_digit()) {
                n = n * 10 + (*d as usize - '0' as usize);
                chars.next();
            }
            text.push('?');
            order.push(n);
        }
        let mut out = SqliteArguments::default();
        for n in order {
            let p = self.params.get(n.wrapping_sub(1)).ok_or_else(|| {
                sqlx::Error::Protocol(format!("${n} has no parameter in: {}", self.text))
            })?;
            add_param!(
                out,
                p,
                sqlite_time,
                |j: &JsonText| j.0.clone(),
                |j: &LoggedJson| j.0.clone()
            );
        }
        Ok((text, out))
    }
}

/// One row of a `values` list being written.
pub struct Tuple<'s> {
    sql: &'s mut Sql,
    index: usize,
    first: bool,
}

impl Tuple<'_> {
    /// Which row of the list this is (0-based).
    pub fn index(&self) -> usize {
        self.index
    }

    /// The next value, bound.
    pub fn bind(&mut self, param: impl Into<Param>) -> &mut Self {
        let placeholder = self.sql.param(param);
        self.raw(&placeholder)
    }

    /// The next value as SQL text (a placeholder bound earlier, or `now()`).
    pub fn raw(&mut self, text: &str) -> &mut Self {
        if !self.first {
            self.sql.push(", ");
        }
        self.first = false;
        self.sql.push(text);
        self
    }
}

/// Rows per statement for a multi-row `values` list of `columns` parameters per row, within the
/// dialect's limit on bound parameters (leaving room for a few more). A value written into every
/// row (a write time) counts as a column: SQLite binds it once per row.
pub fn rows_per_statement(dialect: Dialect, columns: usize) -> usize {
    ((dialect.max_parameters() - 8) / columns.max(1)).max(1)
}

/// One statement per chunk of `items`, each chunk small enough for `columns` parameters per
/// item; `write` writes a chunk's statement. None for no items.
fn chunk_statements<'a, T>(
    dialect: Dialect,
    items: &'a [T],
    columns: usize,
    mut write: impl FnMut(&mut Sql, &[T]) -> Result<(), StoreError> + 'a,
) -> impl Iterator<Item = Result<Sql, StoreError>> + 'a {
    items
        .chunks(rows_per_statement(dialect, columns))
        .map(move |chunk| {
            let mut sql = Sql::new(dialect, "");
            write(&mut sql, chunk).map(|()| sql)
        })
}

/// Fetches through `chunk_statements`: every row of every chunk.
///
/// # Errors
/// The first failing statement's error, with `context`; a statement that cannot be written.
pub async fn fetch_chunked<T, R: Record>(
    conn: &mut Conn<'_>,
    items: &[T],
    columns: usize,
    context: &'static str,
    write: impl FnMut(&mut Sql, &[T]) -> Result<(), StoreError>,
) -> Result<Vec<R>, StoreError> {
    let mut rows = Vec::new();
    for sql in chunk_statements(conn.dialect(), items, columns, write) {
        rows.extend(sql?.fetch_all::<R>(conn).await.during(context)?);
    }
    Ok(rows)
}

/// Executes through `chunk_statements`: the number of rows affected.
///
/// # Errors
/// The first failing statement's error, with `context`; a statement that cannot be written.
pub async fn execute_chunked<T>(
    conn: &mut Conn<'_>,
    items: &[T],
    columns: usize,
    context: &'static str,
    write: impl FnMut(&mut Sql, &[T]) -> Result<(), StoreError>,
) -> Result<u64, StoreError> {
    let mut affected = 0;
    for sql in chunk_statements(conn.dialect(), items, columns, write) {
        affected += sql?.execute(conn).await.during(context)?;
    }
    Ok(affected)
}
