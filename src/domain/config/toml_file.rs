//! The optional TOML file: its sections, parsing it, and applying its `[catalog]` over the
//! configuration.

use super::{CatalogConfig, CatchUpSchedule, ConfigError, ConfigWarning, EtfCategory};
use serde::Deserialize;
use std::collections::BTreeMap;

/// The optional TOML file. Every section is optional; what is present replaces the value
/// from defaults and `cache_config` rows item by item.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TomlFile {
    #[serde(default)]
    pub catalog: TomlCatalog,
    /// Guard-rail settings, read by the guard module.
    #[serde(default)]
    pub guards: Option<toml::Table>,
    /// The audit log's retention, applied by the service after each successful run.
    #[serde(default)]
    pub audit: TomlAudit,
    /// When the service looks for prices no run has covered, besides start and reconnects.
    #[serde(default)]
    pub pipeline: TomlPipeline,
}

/// The `[pipeline]` section.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TomlPipeline {
    /// A cron expression, e.g. `"30 22 * * 1-5"`.
    pub catch_up_schedule: Option<String>,
    /// The IANA timezone the expression is read in (New York when absent).
    pub timezone: Option<String>,
}

impl TomlPipeline {
    /// The catch-up schedule, checked; `None` when the file sets none.
    ///
    /// # Errors
    /// A `ConfigError` naming the file, the key and the allowed values; a `timezone` without a
    /// schedule is refused too, as it would silently do nothing.
    pub fn catch_up_schedule(&self, label: &str) -> Result<Option<CatchUpSchedule>, ConfigError> {
        match (&self.catch_up_schedule, &self.timezone) {
            (Some(expression), timezone) => {
                CatchUpSchedule::parse(label, expression, timezone.as_deref()).map(Some)
            }
            (None, Some(_)) => Err(ConfigError {
                source_name: format!("{label} [pipeline]"),
                message: "timezone is set but catch_up_schedule is not: add a cron expression \
                          such as catch_up_schedule = \"30 22 * * 1-5\", or remove timezone"
                    .to_owned(),
            }),
            (None, None) => Ok(None),
        }
    }
}

/// The `[audit]` section.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TomlAudit {
    /// Compact the log to this many days before the newest run after each service run.
    pub keep_days: Option<i64>,
}

/// The most `[audit] keep_days` may be: ten years of nightly runs.
pub const MAX_KEEP_DAYS: i64 = 3650;

impl TomlAudit {
    /// `keep_days`, checked.
    ///
    /// # Errors
    /// A `ConfigError` naming the file, the key and the allowed values.
    pub fn keep_days(&self, label: &str) -> Result<Option<u32>, ConfigError> {
        match self.keep_days {
            None => Ok(None),
            Some(days) => u32::try_from(days)
                .ok()
                .filter(|d| i64::from(*d) <= MAX_KEEP_DAYS)
                .map(Some)
                .ok_or_else(|| ConfigError {
                    source_name: format!("{label} [audit]"),
                    message: format!(
                        "keep_days must be a whole number of days from 0 to {MAX_KEEP_DAYS}; got {days}"
                    ),
                }),
        }
    }
}

/// The `[catalog]` section.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TomlCatalog {
    pub market_cap_thresholds: Option<BTreeMap<String, i64>>,
    pub themes: Option<BTreeMap<String, Vec<String>>>,
    pub etf_categories: Option<BTreeMap<String, TomlEtfCategory>>,
    pub complete_limits: Option<BTreeMap<String, usize>>,
    pub ipo_window_days: Option<i64>,
    pub stale_close_days: Option<i64>,
    /// `banding = { market_cap = 0.05, market_leaders = 0.10 }`.
    pub banding: Option<BTreeMap<String, f64>>,
}

/// An ETF category in TOML.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TomlEtfCategory {
    pub name: String,
    #[serde(default)]
    pub include: Vec<String>,
    #[serde(default)]
    pub exclude: Vec<String>,
}

/// Parses the TOML configuration file's text.
///
/// # Errors
/// A `ConfigError` naming the file and the line TOML complains about.
pub fn parse_toml(path_label: &str, text: &str) -> Result<TomlFile, ConfigError> {
    toml::from_str(text).map_err(|e| ConfigError {
        source_name: path_label.to_owned(),
        message: e.to_string().trim().to_owned(),
    })
}

impl CatalogConfig {
    /// Applies the TOML file's `[catalog]` section over the current values.
    ///
    /// # Errors
    /// A `ConfigError` naming the file's section, the key and its allowed values: an unknown
    /// band, or a setting outside its range (see `validate`).
    pub fn apply_toml(
        &mut self,
        file: &TomlCatalog,
        label: &str,
    ) -> Result<Vec<ConfigWarning>, ConfigError> {
        let mut warnings = Vec::new();
        let source = format!("{label} [catalog]");
        if let Some(thresholds) = &file.market_cap_thresholds {
            for (band, lower) in thresholds {
                self.set_threshold(band, *lower)
                    .map_err(|message| ConfigError {
                        source_name: source.clone(),
                        message,
                    })?;
            }
        }
        if let Some(themes) = &file.themes {
            for (id, tickers) in themes {
                self.themes.insert(id.clone(), tickers.clone());
            }
        }
        if let Some(categories) = &file.etf_categories {
            for (key, cat) in categories {
                self.upsert_category(EtfCategory {
                    key: key.clone(),
                    name: cat.name.clone(),
                    all: cat.include.is_empty(),
                    include: cat.include.clone(),
                    exclude: cat.exclude.clone(),
                });
            }
        }
        if let Some(limits) = &file.complete_limits {
            for (key, limit) in limits {
                self.set_complete_limit(key, *limit, &mut warnings, &source);
            }
        }
        if let Some(days) = file.ipo_window_days {
            self.ipo_window_days = days;
        }
        if let Some(days) = file.stale_close_days {
            self.stale_close_days = days;
        }
        if let Some(banding) = &file.banding {
            for (key, share) in banding {
                self.banding
                    .set(key, *share)
                    .map_err(|message| ConfigError {
                        source_name: source.clone(),
                        message,
                    })?;
            }
        }
        self.validate().map_err(|e| ConfigError {
            source_name: source,
            message: e.message,
        })?;
        Ok(warnings)
    }
}
