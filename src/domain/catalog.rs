//! The universe catalog (SPEC §4): from clean securities and configuration to the desired value
//! of every managed `cache_entries` row, in the formats the UI parses (SPEC §3). Pure and
//! deterministic: same securities and config, byte-identical values.

use crate::domain::columns::Shortened;
use crate::domain::config::{theme_display_name, CatalogConfig};
use crate::domain::fingerprint::{hash_value, ContentHash};
use crate::domain::securities::{Securities, Security};
use crate::domain::types::{EntryKey, Family, FamilySelection, Scope};
use chrono::Duration;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

mod records;
pub use records::stock_record;
use records::{combo_detailed, distinct_known, etf_record, stock_list, tickers};

/// One entry the catalog wants to exist.
#[derive(Debug, Clone, PartialEq)]
pub struct DesiredEntry {
    pub family: Family,
    /// Shared with the deltas and audit events that carry it: one tree per value, however many
    /// hold it.
    pub value: Arc<Value>,
    pub hash: ContentHash,
}

/// The desired state of the selected families, and the scopes they own.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    pub entries: BTreeMap<EntryKey, DesiredEntry>,
    /// Every `(type, name)` scope the selected families own, with its family. Entries found
    /// there that the catalog does not want are deleted.
    pub scopes: BTreeMap<Scope, Family>,
    /// Entries whose identity was shortened to fit the table's columns (or skipped).
    pub shortened: Shortened,
}

impl Catalog {
    /// The family that owns `key`'s scope, if any selected family does.
    pub fn owner_of(&self, key: &EntryKey) -> Option<Family> {
        self.scopes.get(&key.scope()).copied()
    }

    /// Adds an entry, its name and key fitted into the table's columns first (`columns.rs`).
    fn insert(&mut self, family: Family, key: EntryKey, value: Value) {
        let entries = &self.entries;
        let Some(key) = self.shortened.admit(key, |k| entries.contains_key(k)) else {
            return;
        };
        self.scopes.insert(key.scope(), family);
        let hash = hash_value(&value);
        self.entries.insert(
            key,
            DesiredEntry {
                family,
                value: Arc::new(value),
                hash,
            },
        );
    }
}

/// `slug(x)`: lowercase, spaces → `_`, `&` → `and` (SPEC §4).
pub fn slug(text: &str) -> String {
    let replaced = text.trim().to_lowercase().replace('&', "and");
    let mut out = String::with_capacity(replaced.len());
    for word in replaced.split_whitespace() {
        if !out.is_empty() {
            out.push('_');
        }
        out.push_str(word);
    }
    out
}

/// Builds the selected families' entries. The ETF category scopes of the default display names
/// are owned too, so renaming a category moves its rows instead of leaving stale ones.
pub fn compute_catalog(
    securities: &Securities,
    config: &CatalogConfig,
    selection: &FamilySelection,
) -> Catalog {
    let ranked = securities.ranked_stocks();
    let mut catalog = Catalog::default();
    for &family in selection.families() {
        match family {
            Family::MarketCap => market_cap(&mut catalog, &ranked, config),
            Family::MarketLeaders => leaders(&mut catalog, &ranked, config),
            Family::SectorLeaders => sector_leaders(&mut catalog, &ranked, config),
            Family::Industry => industries(&mut catalog, &ranked, config),
            Family::Themes => themes(&mut catalog, securities, config),
            Family::Etfs => etf_categories(&mut catalog, securities, config),
            Family::Complete => complete(&mut catalog, securities, &ranked, config),
            Family::Ipos => ipos(&mut catalog, securities, config),
            Family::Stats => stats(&mut catalog, securities, &ranked, config),
            Family::Combo => combo(&mut catalog, securities, &ranked, config),
        }
    }
    catalog
}

fn market_cap(catalog: &mut Catalog, ranked: &[&Security], config: &CatalogConfig) {
    let mut upper: Option<i64> = None;
    for band in &config.market_cap_bands {
        let members: Vec<&Security> = ranked
            .iter()
            .copied()
            .filter(|s| {
                let cap = s.market_cap.unwrap_or(0);
                cap >= band.lower && upper.is_none_or(|u| cap < u)
            })
            .collect();
        catalog.insert(
            Family::MarketCap,
            EntryKey::new("stock_universe", "market_cap", &band.key),
            stock_list(&members),
        );
        upper = Some(band.lower);
    }
}

fn leaders(catalog: &mut Catalog, ranked: &[&Security], config: &CatalogConfig) {
    for (key, n) in &config.leaders {
        let members = &ranked[..ranked.len().min(*n)];
        catalog.insert(
            Family::MarketLeaders,
            EntryKey::new("stock_universe", "market_leaders", key),
            stock_list(members),
        );
    }
}

fn known(text: &str) -> bool {
    text != crate::domain::securities::UNKNOWN
}

fn sector_leaders(catalog: &mut Catalog, ranked: &[&Security], config: &CatalogConfig) {
    catalog.scopes.insert(
        Scope::new("stock_universe", "sector_leaders"),
        Family::SectorLeaders,
    );
    let mut by_sector: BTreeMap<&str, Vec<&Security>> = BTreeMap::new();
    for s in ranked.iter().copied().filter(|s| known(&s.sector)) {
        let members = by_sector.entry(s.sector.as_str()).or_default();
        if members.len() < config.sector_top {
            members.push(s);
        }
    }
    for (sector, members) in by_sector {
        let key = format!("top_{}_{}", config.sector_top, slug(sector));
        catalog.insert(
            Family::SectorLeaders,
            EntryKey::new("stock_universe", "sector_leaders", key),
            stock_list(&members),
        );
    }
}

fn industries(catalog: &mut Catalog, ranked: &[&Security], config: &CatalogConfig) {
    catalog
        .scopes
        .insert(Scope::new("stock_universe", "industry"), Family::Industry);
    let mut by_industry: BTreeMap<&str, Vec<&Security>> = BTreeMap::new();
    for s in ranked.iter().copied().filter(|s| known(&s.industry)) {
        by_industry.entry(s.industry.as_str()).or_default().push(s);
    }
    let mut chosen: Vec<(&str, Vec<&Security>)> = by_industry
        .into_iter()
        .filter(|(_, members)| members.len() >= config.industry_min_members)
        .collect();
    // Most eligible stocks first, ties by name; the BTreeMap already gave name order and the
    // sort is stable.
    chosen.sort_by_key(|(_, members)| std::cmp::Reverse(members.len()));
    chosen.truncate(config.industry_count);
    for (industry, members) in chosen {
        let mut sectors: BTreeMap<&str, usize> = BTreeMap::new();
        for s in &members {
            *sectors.entry(s.sector.as_str()).or_default() += 1;
        }
        // Most common sector; on a tie the first by name (BTreeMap order, max_by keeps the last
        // maximum, so compare names in reverse).
        let sector = sectors
            .iter()
            .max_by(|a, b| a.1.cmp(b.1).then_with(|| b.0.cmp(a.0)))
            .map(|(name, _)| *name)
            .unwrap_or(crate::domain::securities::UNKNOWN);
        let top = &members[..members.len().min(config.industry_top)];
        let mut value = stock_list(top);
        value["sector"] = Value::String(sector.to_owned());
        catalog.insert(
            Family::Industry,
            EntryKey::new("stock_universe", "industry", slug(industry)),
            value,
        );
    }
}

fn themes(catalog: &mut Catalog, securities: &Securities, config: &CatalogConfig) {
    catalog
        .scopes
        .insert(Scope::new("stock_universe", "themes"), Family::Themes);
    for (id, configured) in &config.themes {
        let mut members: Vec<&Security> = configured
            .iter()
            .filter_map(|t| crate::domain::securities::normalize_ticker(t))
            .collect::<BTreeSet<String>>()
            .iter()
            .filter_map(|t| securities.get(t))
            .filter(|s| s.kind == crate::domain::securities::SecurityKind::Stock && s.active)
            .collect();
        members.sort_by(|a, b| a.ticker.cmp(&b.ticker));
        catalog.insert(
            Family::Themes,
            EntryKey::new("themes", theme_display_name(id), "list"),
            tickers(&members),
        );
        catalog.insert(
            Family::Themes,
            EntryKey::new("stock_universe", "themes", id),
            stock_list(&members),
        );
    }
}

fn matches_category(name: &str, include: &[String], exclude: &[String]) -> bool {
    let lower = name.to_lowercase();
    let hit = |patterns: &[String]| patterns.iter().any(|p| lower.contains(&p.to_lowercase()));
    hit(include) && !hit(exclude)
}

fn etf_categories(catalog: &mut Catalog, securities: &Securities, config: &CatalogConfig) {
    for default in CatalogConfig::default().etf_categories {
        catalog
            .scopes
            .insert(Scope::new("etf_universe", &default.name), Family::Etfs);
    }
    let etfs = securities.etfs();
    for category in &config.etf_categories {
        let members: Vec<&Security> = etfs
            .iter()
            .copied()
            .filter(|e| {
                category.all || matches_category(&e.name, &category.include, &category.exclude)
            })
            .collect();
        let records: Vec<Value> = members.iter().map(|e| etf_record(e)).collect();
        catalog.insert(
            Family::Etfs,
            EntryKey::new("etf_universe", &category.name, &category.key),
            tickers(&members),
        );
        catalog.insert(
            Family::Etfs,
            EntryKey::new(
                "etf_universe",
                &category.name,
                format!("{}_detailed", category.key),
            ),
            json!({ "count": records.len(), "etfs": records }),
        );
    }
}

fn ranked_etfs(securities: &Securities) -> Vec<&Security> {
    let mut etfs = securities.etfs();
    etfs.sort_by(|a, b| {
        b.etf_size()
            .cmp(&a.etf_size())
            .then_with(|| a.ticker.cmp(&b.ticker))
    });
    etfs
}

fn complete(
    catalog: &mut Catalog,
    securities: &Securities,
    ranked: &[&Security],
    config: &CatalogConfig,
) {
    let top = &ranked[..ranked.len().min(config.complete_stock_limit)];
    catalog.insert(
        Family::Complete,
        EntryKey::new(
            "stock_universe",
            "complete",
            format!("top_{}", config.complete_stock_limit),
        ),
        stock_list(top),
    );
    // Market cap descending, as the legacy job's `ORDER BY market_cap DESC` wrote it.
    catalog.insert(
        Family::Complete,
        EntryKey::new("stock_universe", "complete", "all_stocks"),
        tickers(ranked),
    );
    let etfs = ranked_etfs(securities);
    let top_etfs = &etfs[..etfs.len().min(config.complete_etf_limit)];
    catalog.insert(
        Family::Complete,
        EntryKey::new(
            "etf_universe",
            "complete",
            format!("top_{}", config.complete_etf_limit),
        ),
        tickers(top_etfs),
    );
    catalog.insert(
        Family::Complete,
        EntryKey::new("etf_universe", "complete", "all_etfs"),
        tickers(&etfs),
    );
}

fn ipos(catalog: &mut Catalog, securities: &Securities, config: &CatalogConfig) {
    let earliest = securities.as_of - Duration::days(config.ipo_window_days);
    let mut recent: Vec<&Security> = securities
        .all
        .iter()
        .filter(|s| {
            s.active
                && (s.kind == crate::domain::securities::SecurityKind::Stock || s.is_active_etf())
        })
        .filter(|s| {
            s.list_date
                .is_some_and(|d| d >= earliest && d <= securities.as_of)
        })
        .collect();
    recent.sort_by(|a, b| {
        b.list_date
            .cmp(&a.list_date)
            .then_with(|| a.ticker.cmp(&b.ticker))
    });
    let records: Vec<Value> = recent
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let mut record = stock_record(s, i + 1);
            record["list_date"] = json!(s.list_date.map(|d| d.to_string()));
            record["type"] = json!(if s.is_active_etf() { "ETF" } else { "CS" });
            record
        })
        .collect();
    catalog.insert(
        Family::Ipos,
        EntryKey::new("stock_universe", "ipos", "recent_ipos"),
        json!({ "count": records.len(), "stocks": records }),
    );
}

fn stats(
    catalog: &mut Catalog,
    securities: &Securities,
    ranked: &[&Security],
    config: &CatalogConfig,
) {
    let caps: Vec<i64> = ranked.iter().filter_map(|s| s.market_cap).collect();
    let total: i64 = caps.iter().sum();
    let count = caps.len() as i64;
    let median = if caps.is_empty() {
        0
    } else if caps.len() % 2 == 1 {
        caps[caps.len() / 2]
    } else {
        (caps[caps.len() / 2 - 1] + caps[caps.len() / 2]) / 2
    };
    let mut bands = Map::new();
    let mut upper: Option<i64> = None;
    for band in &config.market_cap_bands {
        let n = caps
            .iter()
            .filter(|&&c| c >= band.lower && upper.is_none_or(|u| c < u))
            .count();
        bands.insert(band.key.clone(), json!(n));
        upper = Some(band.lower);
    }
    let mut sectors: BTreeMap<&str, usize> = BTreeMap::new();
    for s in ranked {
        *sectors.entry(s.sector.as_str()).or_default() += 1;
    }
    let value = json!({
        "overview": {
            "total_stocks": count,
            "unique_exchanges": distinct_known(ranked, |s| &s.exchange),
            "unique_markets": distinct_known(ranked, |s| &s.market),
            "total_etfs": securities.etfs().len(),
            "total_market_cap": total,
            "average_market_cap": if count > 0 { total / count } else { 0 },
            "median_market_cap": median,
            "market_cap_distribution": bands,
            "sector_distribution": sectors,
            "last_updated": securities.as_of.to_string(),
        }
    });
    catalog.insert(
        Family::Stats,
        EntryKey::new("stock_stats", "universe", "summary"),
        value,
    );
}

fn combo(
    catalog: &mut Catalog,
    securities: &Securities,
    ranked: &[&Security],
    config: &CatalogConfig,
) {
    let stocks = &ranked[..ranked.len().min(config.combo_top_stocks)];
    // The essential ETFs present, by ticker (the legacy query's `ORDER BY symbol`).
    let mut etfs: Vec<&Security> = config
        .essential_etfs
        .iter()
        .filter_map(|t| securities.get(t))
        .filter(|s| s.is_active_etf())
        .collect();
    etfs.sort_by(|a, b| a.ticker.cmp(&b.ticker));
    etfs.dedup_by(|a, b| a.ticker == b.ticker);
    let mut all: Vec<&Security> = stocks.to_vec();
    all.extend(etfs.iter().copied());
    catalog.insert(
        Family::Combo,
        EntryKey::new("stock_etf_combo", "stock_etf_test", "combo_test"),
        tickers(&all),
    );
    catalog.insert(
        Family::Combo,
        EntryKey::new("stock_etf_combo", "stock_etf_test", "combo_test_detailed"),
        combo_detailed(config.combo_top_stocks, stocks, &etfs),
    );
}

mod banding;
pub use banding::{compute_catalog_banded, BandingReport, Displaced, Held, Incumbents};

#[cfg(test)]
mod hostile;
#[cfg(test)]
mod tests;
