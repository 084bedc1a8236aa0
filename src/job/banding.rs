//! The incumbents of turnover banding: today's members of the market-cap bands and the top-N
//! lists, read from the live rows the audit log agrees with. A row edited outside the job holds
//! no incumbents (its members are placed by the plain rule, which reconciles the edit); before the
//! log has any history, every live row counts, so a first run holds the legacy job's members.

use super::RunError;
use crate::domain::catalog::Incumbents;
use crate::domain::fingerprint::hash_value;
use crate::domain::types::{EntryKey, Scope};
use crate::store::{EntryHead, RunTx};
use std::collections::{HashMap, HashSet};

/// The banded scopes' current members, as the job last wrote them.
pub(super) async fn incumbents(
    tx: &mut dyn RunTx,
    environment: &str,
    heads: &HashMap<EntryKey, EntryHead>,
) -> Result<Incumbents, RunError> {
    let scopes = [
        Scope::new("stock_universe", "market_cap"),
        Scope::new("stock_universe", "market_leaders"),
    ];
    let mut rows = tx.load_rows(environment, &scopes).await?;
    // A duplicate row of one identity is deleted by the run; the lowest id is the entry.
    rows.sort_by_key(|r| r.id);
    let mut seen = HashSet::new();
    let ids: Vec<i64> = rows
        .into_iter()
        .filter(|r| seen.insert(r.key.clone()))
        .map(|r| r.id)
        .collect();
    let values = tx.load_values(&ids).await?;
    let trusted = values.iter().filter(|entry| {
        heads.is_empty()
            || heads.get(&entry.key).and_then(|h| h.hash) == Some(hash_value(&entry.value))
    });
    Ok(Incumbents::from_entries(
        trusted.map(|entry| (&entry.key, &entry.value)),
    ))
}
