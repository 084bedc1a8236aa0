//! The allowed values of every catalog setting, checked when the TOML file is loaded and for
//! every `cache_config` row before it applies.

use super::{theme_display_name, CatalogConfig, ConfigError, ConfigRow};

impl CatalogConfig {
    /// Checks every setting against its allowed values: bands strictly decreasing (so they stay
    /// disjoint), day counts and limits within their ranges, theme and category names not
    /// empty.
    ///
    /// # Errors
    /// Names the key, the value found and what is allowed.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let refuse = |message: String| ConfigError {
            source_name: "configuration".to_owned(),
            message,
        };
        for pair in self.market_cap_bands.windows(2) {
            if pair[0].lower <= pair[1].lower {
                return Err(ConfigError {
                    source_name: "market_cap_thresholds".to_owned(),
                    message: format!(
                        "band `{}` (lower {}) must have a higher lower bound than `{}` (lower {})",
                        pair[0].key, pair[0].lower, pair[1].key, pair[1].lower
                    ),
                });
            }
        }
        let days = [
            ("ipo_window_days", self.ipo_window_days),
            ("stale_close_days", self.stale_close_days),
        ];
        for (key, value) in days {
            if !(0..=MAX_DAYS).contains(&value) {
                return Err(refuse(format!(
                    "{key} = {value} is outside the allowed range 0..={MAX_DAYS} days"
                )));
            }
        }
        let limits = [
            ("complete_limits.top_1000", self.complete_stock_limit),
            ("complete_limits.top_100", self.complete_etf_limit),
        ];
        for (key, value) in limits {
            if !(1..=MAX_LIMIT).contains(&value) {
                return Err(refuse(format!(
                    "{key} = {value} is outside the allowed range 1..={MAX_LIMIT}"
                )));
            }
        }
        for id in self.themes.keys() {
            if theme_display_name(id).is_empty() {
                return Err(refuse(format!(
                    "theme `{}` has no name (a theme id needs a letter or digit)",
                    id.escape_debug()
                )));
            }
        }
        for category in &self.etf_categories {
            if category.key.trim().is_empty() || category.name.trim().is_empty() {
                return Err(refuse(format!(
                    "etf_categories: `{}` needs a non-empty key and display name (found `{}`)",
                    category.key.escape_debug(),
                    category.name.escape_debug()
                )));
            }
        }
        Ok(())
    }
}

/// Longest IPO window or close staleness a setting may ask for: ten years.
pub const MAX_DAYS: i64 = 3650;

/// Largest `complete` list a setting may ask for.
pub const MAX_LIMIT: usize = 1_000_000;

/// How messages name a `cache_config` row.
pub(super) fn row_source(row: &ConfigRow) -> String {
    format!("cache_config row {}/{}", row.name, row.key)
}
