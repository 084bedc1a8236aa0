//! The optional vendor identity columns of `symbols` (`composite_figi`, `share_class_figi`,
//! `cik`): production has them, the project's own schema and older databases may not. Owns
//! finding which exist and the statement that reads them; it never adds or requires them.

use super::sql::{Conn, Sql};
use super::{QueryContext, StoreError};
use crate::domain::market::SymbolRow;
use std::collections::HashMap;

/// The identity columns, in the order every statement here lists them.
pub const IDENTITY_COLUMNS: [&str; 3] = ["composite_figi", "share_class_figi", "cik"];

/// Which identity columns `symbols` has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IdentityColumns {
    present: [bool; 3],
}

impl IdentityColumns {
    /// No identity column exists: behaviour is exactly as before issue 16.
    pub fn none_present(self) -> bool {
        !self.present.iter().any(|p| *p)
    }

    /// The present columns' names.
    pub fn names(self) -> impl Iterator<Item = &'static str> {
        IDENTITY_COLUMNS
            .into_iter()
            .zip(self.present)
            .filter_map(|(name, present)| present.then_some(name))
    }

    /// Each identity column as text, or a typed NULL when it does not exist (so the statement
    /// has the same shape whatever the schema).
    fn select_list(self, alias: &str) -> String {
        IDENTITY_COLUMNS
            .into_iter()
            .zip(self.present)
            .map(|(name, present)| {
                if present {
                    format!("cast({alias}.{name} as text)")
                } else {
                    "cast(null as text)".to_owned()
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Finds which identity columns `symbols` has.
///
/// # Errors
/// Store errors.
pub async fn identity_columns(conn: &mut Conn<'_>) -> Result<IdentityColumns, StoreError> {
    let names: Vec<String> = conn
        .sql(conn.dialect().column_names())
        .bind("symbols")
        .scalars(conn)
        .await
        .during("reading the columns of symbols")?;
    let mut present = [false; 3];
    for (flag, wanted) in present.iter_mut().zip(IDENTITY_COLUMNS) {
        *flag = names.iter().any(|n| n.eq_ignore_ascii_case(wanted));
    }
    Ok(IdentityColumns { present })
}

/// `composite_figi`, `share_class_figi` and `cik` of one row, as text.
type Ids = (Option<String>, Option<String>, Option<String>);

/// A row of the identity statement: the stored ticker, then `Ids`.
type IdentityRow = (
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

/// Fills the identity fields of `rows` from `symbols` (matched by the stored ticker, the key),
/// when any identity column exists.
///
/// # Errors
/// Store errors.
pub async fn read_identities(
    conn: &mut Conn<'_>,
    rows: &mut [SymbolRow],
) -> Result<(), StoreError> {
    let columns = identity_columns(conn).await?;
    if columns.none_present() {
        return Ok(());
    }
    let select = format!(
        "select cast(s.symbol as text), {} from symbols s",
        columns.select_list("s")
    );
    let found: Vec<IdentityRow> = Sql::new(conn.dialect(), &select)
        .fetch_all(conn)
        .await
        .during("reading symbols' identity columns")?;
    let by_symbol: HashMap<String, Ids> = found
        .into_iter()
        .filter_map(|(symbol, a, b, c)| Some((symbol?, (a, b, c))))
        .collect();
    for row in rows {
        if let Some((a, b, c)) = by_symbol.get(&row.symbol) {
            row.composite_figi.clone_from(a);
            row.share_class_figi.clone_from(b);
            row.cik.clone_from(c);
        }
    }
    Ok(())
}
