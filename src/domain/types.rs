//! Identifiers shared by every layer: entry identities, catalog families, run ids.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The identity of a `cache_entries` row inside one environment: `(type, name, key)`.
/// Ordered so catalogs iterate deterministically.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct EntryKey {
    #[serde(rename = "type")]
    pub entry_type: String,
    pub name: String,
    pub key: String,
}

/// Longest a universe id component may be; `cache_entries` columns are `varchar` and the UI
/// never shows more.
const MAX_COMPONENT_LEN: usize = 200;

impl EntryKey {
    /// Builds a key from its three parts.
    pub fn new(
        entry_type: impl Into<String>,
        name: impl Into<String>,
        key: impl Into<String>,
    ) -> Self {
        Self {
            entry_type: entry_type.into(),
            name: name.into(),
            key: key.into(),
        }
    }

    /// Parses the command-line form `type/name/key`.
    ///
    /// # Errors
    /// Names what is wrong when there are not exactly three non-empty parts, or a part is too
    /// long or holds control characters.
    pub fn parse(text: &str) -> Result<Self, String> {
        let parts: Vec<&str> = text.split('/').collect();
        if parts.len() != 3 || parts.iter().any(|p| p.is_empty()) {
            return Err(format!(
                "universe `{}` must be written type/name/key, e.g. stock_universe/market_cap/large_cap",
                text.escape_debug()
            ));
        }
        for part in &parts {
            if part.len() > MAX_COMPONENT_LEN || part.chars().any(char::is_control) {
                return Err(format!(
                    "universe part `{}` is longer than {MAX_COMPONENT_LEN} bytes or holds control characters",
                    part.escape_debug()
                ));
            }
        }
        Ok(Self::new(parts[0], parts[1], parts[2]))
    }

    /// The `(type, name)` scope this entry belongs to.
    pub fn scope(&self) -> Scope {
        Scope::new(&self.entry_type, &self.name)
    }

    /// The dropdown id the UI uses and events carry: `"{name}:{key}"`.
    pub fn universe_label(&self) -> String {
        format!("{}:{}", self.name, self.key)
    }
}

impl fmt::Display for EntryKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.entry_type, self.name, self.key)
    }
}

/// A `(type, name)` pair: the unit of ownership (SPEC §6).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Scope {
    #[serde(rename = "type")]
    pub entry_type: String,
    pub name: String,
}

impl Scope {
    /// Builds a scope.
    pub fn new(entry_type: &str, name: &str) -> Self {
        Self {
            entry_type: entry_type.to_owned(),
            name: name.to_owned(),
        }
    }
}

/// A group of universes that can be computed, planned and run on its own (`--only`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Family {
    MarketCap,
    MarketLeaders,
    SectorLeaders,
    Industry,
    Themes,
    Etfs,
    Complete,
    Ipos,
    Stats,
    Combo,
}

impl Family {
    /// Every family, in catalog order.
    pub const ALL: [Family; 10] = [
        Family::MarketCap,
        Family::MarketLeaders,
        Family::SectorLeaders,
        Family::Industry,
        Family::Themes,
        Family::Etfs,
        Family::Complete,
        Family::Ipos,
        Family::Stats,
        Family::Combo,
    ];

    /// The name used by `--only` and in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Family::MarketCap => "market_cap",
            Family::MarketLeaders => "market_leaders",
            Family::SectorLeaders => "sector_leaders",
            Family::Industry => "industry",
            Family::Themes => "themes",
            Family::Etfs => "etfs",
            Family::Complete => "complete",
            Family::Ipos => "ipos",
            Family::Stats => "stats",
            Family::Combo => "combo",
        }
    }

    /// The family whose entries live in `scope`, by the catalog's naming (SPEC §4).
    pub fn owning(scope: &Scope) -> Option<Family> {
        Some(match (scope.entry_type.as_str(), scope.name.as_str()) {
            ("stock_universe", "market_cap") => Family::MarketCap,
            ("stock_universe", "market_leaders") => Family::MarketLeaders,
            ("stock_universe", "sector_leaders") => Family::SectorLeaders,
            ("stock_universe", "industry") => Family::Industry,
            ("stock_universe", "themes") | ("themes", _) => Family::Themes,
            ("stock_universe", "complete") | ("etf_universe", "complete") => Family::Complete,
            ("stock_universe", "ipos") => Family::Ipos,
            ("etf_universe", _) => Family::Etfs,
            ("stock_stats", "universe") => Family::Stats,
            ("stock_etf_combo", "stock_etf_test") => Family::Combo,
            _ => return None,
        })
    }

    /// Parses a family name.
    ///
    /// # Errors
    /// Lists the valid names when `text` is not one.
    pub fn parse(text: &str) -> Result<Self, String> {
        Family::ALL
            .into_iter()
            .find(|f| f.as_str() == text)
            .ok_or_else(|| {
                let names: Vec<&str> = Family::ALL.iter().map(|f| f.as_str()).collect();
                format!(
                    "unknown family `{}`; expected one of: {}",
                    text.escape_debug(),
                    names.join(", ")
                )
            })
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which families a computation covers. Empty `--only` means all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FamilySelection(Vec<Family>);

impl FamilySelection {
    /// All families.
    pub fn all() -> Self {
        Self(Family::ALL.to_vec())
    }

    /// The given families (all of them when the list is empty), deduplicated, in catalog order.
    pub fn only(families: &[Family]) -> Self {
        if families.is_empty() {
            return Self::all();
        }
        Self(
            Family::ALL
                .into_iter()
                .filter(|f| families.contains(f))
                .collect(),
        )
    }

    /// Whether `family` is selected.
    pub fn contains(&self, family: Family) -> bool {
        self.0.contains(&family)
    }

    /// The selected families in catalog order.
    pub fn families(&self) -> &[Family] {
        &self.0
    }

    /// Whether every family is selected.
    pub fn is_all(&self) -> bool {
        self.0.len() == Family::ALL.len()
    }
}

/// The audit log's id for one run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RunId(pub i64);

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn universe_ids_parse_from_slash_form() {
        let key = EntryKey::parse("stock_universe/market_cap/large_cap").unwrap();
        assert_eq!(
            key,
            EntryKey::new("stock_universe", "market_cap", "large_cap")
        );
        assert_eq!(key.to_string(), "stock_universe/market_cap/large_cap");
        assert_eq!(key.universe_label(), "market_cap:large_cap");
    }

    #[test]
    fn malformed_universe_ids_are_refused() {
        assert!(EntryKey::parse("stock_universe/market_cap").is_err());
        assert!(EntryKey::parse("a//b").is_err());
        assert!(EntryKey::parse("a/b/c/d").is_err());
        assert!(EntryKey::parse(&format!("a/b/{}", "x".repeat(500))).is_err());
        assert!(EntryKey::parse("a/b\n/c").is_err());
    }

    #[test]
    fn family_names_round_trip() {
        for family in Family::ALL {
            assert_eq!(Family::parse(family.as_str()), Ok(family));
        }
        assert!(Family::parse("nope").unwrap_err().contains("market_cap"));
    }

    #[test]
    fn empty_selection_means_every_family() {
        assert!(FamilySelection::only(&[]).is_all());
        let only = FamilySelection::only(&[Family::Themes, Family::MarketCap]);
        assert_eq!(only.families(), &[Family::MarketCap, Family::Themes]);
    }
}
