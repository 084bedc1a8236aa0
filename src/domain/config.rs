//! The catalog's configuration: built-in defaults (SPEC §4), overridden by `cache_config` rows,
//! then by an optional TOML file. Pure: callers hand in the rows and the file's text.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

mod banding;
pub use banding::Banding;

/// One market-cap band: entries `[lower, next band's lower)`; the top band has no upper bound.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Band {
    pub key: String,
    /// Lower bound in dollars, inclusive. 0 means no lower bound (any positive cap).
    pub lower: i64,
}

/// One ETF category: active ETFs whose name contains any `include` pattern and no `exclude`
/// pattern (case-insensitive), or every active ETF when `all` is set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EtfCategory {
    pub key: String,
    pub name: String,
    pub include: Vec<String>,
    pub exclude: Vec<String>,
    pub all: bool,
}

/// Everything that shapes the catalog. Its canonical hash is recorded with every run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CatalogConfig {
    /// Bands from the highest to the lowest.
    pub market_cap_bands: Vec<Band>,
    /// `(key, n)` for the market leaders lists.
    pub leaders: Vec<(String, usize)>,
    pub sector_top: usize,
    pub industry_count: usize,
    pub industry_min_members: usize,
    pub industry_top: usize,
    /// Theme id (as written in `stock_universe/themes/{id}`) → tickers.
    pub themes: BTreeMap<String, Vec<String>>,
    pub etf_categories: Vec<EtfCategory>,
    /// `top_1000` (stocks) and `top_100` (ETFs) of the complete family.
    pub complete_stock_limit: usize,
    pub complete_etf_limit: usize,
    pub ipo_window_days: i64,
    /// A close older than this many days before the as-of date is stale; the symbol's
    /// `market_cap` column is used instead.
    pub stale_close_days: i64,
    pub combo_top_stocks: usize,
    pub essential_etfs: Vec<String>,
    /// Turnover banding of the market-cap bands and the top-N lists; off by default. Left out of
    /// the serialised form (and so of the configuration hash) while off, so turning the feature
    /// into the code changed nothing for existing databases.
    #[serde(default, skip_serializing_if = "Banding::is_off")]
    pub banding: Banding,
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

fn category(key: &str, name: &str, include: &[&str], exclude: &[&str]) -> EtfCategory {
    EtfCategory {
        key: key.to_owned(),
        name: name.to_owned(),
        include: strings(include),
        exclude: strings(exclude),
        all: false,
    }
}

impl Default for CatalogConfig {
    fn default() -> Self {
        let bands = [
            ("mega_cap", 200_000_000_000),
            ("large_cap", 10_000_000_000),
            ("mid_cap", 2_000_000_000),
            ("small_cap", 300_000_000),
            ("micro_cap", 50_000_000),
        ];
        let themes = [
            ("ai", &["NVDA", "GOOGL", "MSFT", "AMD"]),
            ("biotech", &["MRNA", "GILD", "BIIB", "AMGN"]),
            ("cloud", &["CRM", "SNOW", "AMZN", "MSFT"]),
            ("crypto", &["COIN", "RIOT", "MARA", "SQ"]),
        ];
        Self {
            market_cap_bands: bands
                .iter()
                .map(|(key, lower)| Band {
                    key: (*key).to_owned(),
                    lower: *lower,
                })
                .collect(),
            leaders: [
                ("top_10_stocks", 10),
                ("top_50", 50),
                ("top_100", 100),
                ("top_250", 250),
                ("top_500", 500),
                ("top_2000", 2000),
            ]
            .iter()
            .map(|(k, n)| ((*k).to_owned(), *n))
            .collect(),
            sector_top: 10,
            industry_count: 20,
            industry_min_members: 3,
            industry_top: 15,
            themes: themes
                .iter()
                .map(|(id, tickers)| ((*id).to_owned(), strings(*tickers)))
                .collect(),
            etf_categories: vec![
                category(
                    "etf_broad_market",
                    "Broad Market ETFs",
                    &[
                        "Total Stock Market",
                        "Total Market",
                        "S&P 500",
                        "Russell",
                        "SPDR",
                        "Core",
                    ],
                    &[
                        "Bond",
                        "International",
                        "Emerging",
                        "Value",
                        "Growth",
                        "Technology",
                        "Sector",
                    ],
                ),
                category(
                    "etf_growth",
                    "Growth ETFs",
                    &["Growth"],
                    &["Bond", "International"],
                ),
                category(
                    "etf_value",
                    "Value ETFs",
                    &["Value"],
                    &["Bond", "International"],
                ),
                category(
                    "etf_technology",
                    "Technology ETFs",
                    &["Technology", "Information Technology", "Tech"],
                    &["Bond"],
                ),
                category("etf_bonds", "Bond ETFs", &["Bond", "Aggregate"], &[]),
                category(
                    "etf_international",
                    "International ETFs",
                    &[
                        "International",
                        "Emerging Markets",
                        "EAFE",
                        "Developed Markets",
                    ],
                    &["Bond"],
                ),
                category(
                    "etf_factor",
                    "Factor ETFs",
                    &["Factor", "Momentum", "Quality", "Min Vol", "Low Vol"],
                    &[],
                ),
                EtfCategory {
                    key: "etf_all".to_owned(),
                    name: "All ETFs".to_owned(),
                    include: Vec::new(),
                    exclude: Vec::new(),
                    all: true,
                },
            ],
            complete_stock_limit: 1000,
            complete_etf_limit: 100,
            ipo_window_days: 30,
            stale_close_days: 7,
            combo_top_stocks: 50,
            essential_etfs: strings(&[
                "SPY", "QQQ", "IWM", "VTI", "VUG", "VTV", "MTUM", "VGT", "XLK", "XLF", "XLV",
                "XLE", "XLI", "XLP", "XLY", "AGG", "BND", "VEA", "EEM", "IEFA",
            ]),
            banding: Banding::default(),
        }
    }
}

/// One `cache_entries` row of type `cache_config`.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigRow {
    pub name: String,
    pub key: String,
    pub value: Value,
}

/// Something in the configuration the job did not use, reported rather than guessed at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConfigWarning {
    pub source: String,
    pub message: String,
}

/// A configuration the job refuses to run with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid configuration in {source_name}: {message}")]
pub struct ConfigError {
    pub source_name: String,
    pub message: String,
}

fn threshold_from_json(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Value::String(s) => s.trim().parse::<f64>().ok().map(|f| f as i64),
        Value::Object(map) => ["min", "lower", "threshold", "min_market_cap"]
            .iter()
            .find_map(|k| map.get(*k).and_then(threshold_from_json)),
        _ => None,
    }
}

fn tickers_from_json(value: &Value) -> Option<Vec<String>> {
    let list = match value {
        Value::Array(items) => items,
        Value::Object(map) => ["symbols", "tickers", "stocks"]
            .iter()
            .find_map(|k| map.get(*k).and_then(Value::as_array))?,
        _ => return None,
    };
    list.iter().map(|v| v.as_str().map(str::to_owned)).collect()
}

fn patterns_from_json(value: Option<&Value>) -> Option<Vec<String>> {
    match value {
        None | Some(Value::Null) => Some(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().map(str::to_owned))
            .collect(),
        Some(Value::String(s)) => Some(vec![s.clone()]),
        _ => None,
    }
}

impl CatalogConfig {
    /// Applies `cache_config` rows over the current values. A row is data, not a setting: one
    /// the job cannot read, or that would leave the configuration outside its allowed ranges
    /// (see `validate`), is ignored with a warning naming it, so no row can stop a run (or
    /// `verify`). Rows the job does not use are warnings too. With `then` (the TOML file's
    /// section and label, applied after the rows) a row is also ignored when the file applied
    /// over it would leave the configuration invalid: the file wins, the night goes on.
    pub fn apply_cache_config(
        &mut self,
        rows: &[ConfigRow],
        then: Option<(&TomlCatalog, &str)>,
    ) -> Vec<ConfigWarning> {
        let mut warnings = Vec::new();
        for row in rows {
            let mut candidate = self.clone();
            let applied = candidate.apply_row(row, &mut warnings).and_then(|()| {
                let mut effective = candidate.clone();
                let checked = match then {
                    Some((file, label)) => effective.apply_toml(file, label).map(|_| ()),
                    None => effective.validate(),
                };
                checked.map_err(|e| ConfigError {
                    source_name: row_source(row),
                    message: e.message,
                })
            });
            match applied {
                Ok(()) => *self = candidate,
                Err(e) => warnings.push(ConfigWarning {
                    source: e.source_name,
                    message: format!("{}; the row is ignored", e.message),
                }),
            }
        }
        warnings
    }

    /// Applies one `cache_config` row.
    fn apply_row(
        &mut self,
        row: &ConfigRow,
        warnings: &mut Vec<ConfigWarning>,
    ) -> Result<(), ConfigError> {
        {
            let source = row_source(row);
            let bad = |what: &str| ConfigError {
                source_name: source.clone(),
                message: format!("{what}, found {}", row.value),
            };
            match row.name.as_str() {
                "market_cap_thresholds" => {
                    let lower = threshold_from_json(&row.value)
                        .ok_or_else(|| bad("expected a number of dollars"))?;
                    self.set_threshold(&row.key, lower)
                        .map_err(|message| ConfigError {
                            source_name: source.clone(),
                            message,
                        })?;
                }
                "theme_definitions" => {
                    let tickers = tickers_from_json(&row.value)
                        .ok_or_else(|| bad("expected an array of tickers"))?;
                    self.themes.insert(row.key.clone(), tickers);
                }
                "etf_categories" => match &row.value {
                    Value::String(display) => {
                        match self.etf_categories.iter_mut().find(|c| c.key == row.key) {
                            Some(category) => category.name = display.clone(),
                            None => warnings.push(ConfigWarning {
                                source,
                                message: format!(
                                    "renames `{}`, which is not a known category; ignored (give an object with name and include to define it)",
                                    row.key
                                ),
                            }),
                        }
                    }
                    Value::Object(map) => {
                        let name = map
                            .get("name")
                            .and_then(Value::as_str)
                            .ok_or_else(|| bad("expected an object with a string `name`"))?;
                        let include = patterns_from_json(map.get("include"))
                            .ok_or_else(|| bad("`include` must be a list of strings"))?;
                        let exclude = patterns_from_json(map.get("exclude"))
                            .ok_or_else(|| bad("`exclude` must be a list of strings"))?;
                        self.upsert_category(EtfCategory {
                            key: row.key.clone(),
                            name: name.to_owned(),
                            all: include.is_empty(),
                            include,
                            exclude,
                        });
                    }
                    _ => return Err(bad("expected a display name or an object")),
                },
                "complete_limits" => {
                    let limit = row
                        .value
                        .as_u64()
                        .or_else(|| row.value.as_str().and_then(|s| s.trim().parse().ok()))
                        .ok_or_else(|| bad("expected a positive integer"))?;
                    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
                    self.set_complete_limit(&row.key, limit, warnings, &source);
                }
                "banding" => {
                    let share = row
                        .value
                        .as_f64()
                        .or_else(|| row.value.as_str().and_then(|s| s.trim().parse().ok()))
                        .ok_or_else(|| bad("expected a share in [0, 1)"))?;
                    self.banding
                        .set(&row.key, share)
                        .map_err(|message| ConfigError {
                            source_name: source.clone(),
                            message,
                        })?;
                }
                _ => warnings.push(ConfigWarning {
                    source,
                    message: "not used by the universe job; left as it is".to_owned(),
                }),
            }
        }
        Ok(())
    }

    fn set_threshold(&mut self, band: &str, lower: i64) -> Result<(), String> {
        if lower < 0 {
            return Err(format!("threshold for `{band}` is negative ({lower})"));
        }
        let known: Vec<String> = self
            .market_cap_bands
            .iter()
            .map(|b| b.key.clone())
            .collect();
        let entry = self
            .market_cap_bands
            .iter_mut()
            .find(|b| b.key == band)
            .ok_or_else(|| {
                format!(
                    "unknown market-cap band `{band}`; expected one of {}",
                    known.join(", ")
                )
            })?;
        entry.lower = lower;
        Ok(())
    }

    fn upsert_category(&mut self, category: EtfCategory) {
        match self
            .etf_categories
            .iter_mut()
            .find(|c| c.key == category.key)
        {
            Some(existing) => *existing = category,
            None => self.etf_categories.push(category),
        }
    }

    fn set_complete_limit(
        &mut self,
        key: &str,
        limit: usize,
        warnings: &mut Vec<ConfigWarning>,
        source: &str,
    ) {
        match key {
            "top_1000" | "stocks" => self.complete_stock_limit = limit,
            "top_100" | "etfs" => self.complete_etf_limit = limit,
            _ => warnings.push(ConfigWarning {
                source: source.to_owned(),
                message: format!(
                    "complete limit `{key}` is not one the job builds (top_1000, top_100); ignored"
                ),
            }),
        }
    }
}

/// Title Case of a theme id, as the `themes` type's `name`: `ai` → `Ai`, `clean_energy` →
/// `Clean Energy`.
pub fn theme_display_name(id: &str) -> String {
    id.split(['_', ' '])
        .filter(|w| !w.is_empty())
        .map(|word| {
            let mut chars = word.chars();
            match chars.next() {
                Some(first) => first
                    .to_uppercase()
                    .chain(chars.flat_map(char::to_lowercase))
                    .collect(),
                None => String::new(),
            }
        })
        .collect::<Vec<String>>()
        .join(" ")
}

mod ranges;
mod schedule;
mod toml_file;

use ranges::row_source;
pub use ranges::{MAX_DAYS, MAX_LIMIT};
pub use schedule::CatchUpSchedule;
pub use toml_file::{parse_toml, TomlCatalog, TomlEtfCategory, TomlFile};

#[cfg(test)]
mod tests;
