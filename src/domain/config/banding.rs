//! The turnover-banding setting (issue 16): one share per banded family, validated on the way in.

use serde::{Deserialize, Serialize};

/// Turnover banding: how far past a limit a current member may drift before it leaves. A share
/// of 0 leaves that family to the plain rule; both 0 (the default) is off.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Banding {
    /// A current member of a market-cap band stays while its cap is within this share of the
    /// band's limits: at least `lower × (1 − share)` and below `upper × (1 + share)`.
    #[serde(default)]
    pub market_cap: f64,
    /// A top-N list keeps current members ranked within `N × (1 + share)`; a stock ranked within
    /// `N × (1 − share)` always belongs.
    #[serde(default)]
    pub market_leaders: f64,
}

impl Banding {
    /// The keys of the `banding` setting, as errors name them.
    pub const KEYS: [&'static str; 2] = ["market_cap", "market_leaders"];

    /// Neither family is banded.
    pub fn is_off(&self) -> bool {
        self.market_cap == 0.0 && self.market_leaders == 0.0
    }

    /// Sets one family's share after checking it is in `[0, 1)`.
    ///
    /// # Errors
    /// A message naming the key and the allowed values.
    pub fn set(&mut self, key: &str, share: f64) -> Result<(), String> {
        if !Self::KEYS.contains(&key) {
            return Err(format!(
                "unknown banding family `{key}`; expected one of {}",
                Self::KEYS.join(", ")
            ));
        }
        if !(0.0..1.0).contains(&share) {
            return Err(format!(
                "banding `{key}` must be a share in [0, 1) (0 = off, 0.05 = 5 %), found {share}"
            ));
        }
        if key == "market_cap" {
            self.market_cap = share;
        } else {
            self.market_leaders = share;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::{parse_toml, CatalogConfig, ConfigRow};
    use super::*;
    use crate::domain::fingerprint::hash_serializable;
    use serde_json::json;

    fn from_toml(text: &str) -> Result<CatalogConfig, String> {
        let file = parse_toml("banding.toml", text).map_err(|e| e.to_string())?;
        let mut config = CatalogConfig::default();
        config
            .apply_toml(&file.catalog, "banding.toml")
            .map_err(|e| e.to_string())?;
        Ok(config)
    }

    #[test]
    fn toml_sets_each_family_share() {
        let config =
            from_toml("[catalog]\nbanding = { market_cap = 0.05, market_leaders = 0.10 }\n")
                .unwrap();
        assert_eq!(
            config.banding,
            Banding {
                market_cap: 0.05,
                market_leaders: 0.10
            }
        );
        let config = from_toml("[catalog]\nbanding = { market_leaders = 0 }\n").unwrap();
        assert!(config.banding.is_off());
    }

    #[test]
    fn a_share_outside_zero_to_one_is_refused_naming_file_key_and_range() {
        for bad in ["1.0", "-0.1", "2", "nan"] {
            let err =
                from_toml(&format!("[catalog]\nbanding = {{ market_cap = {bad} }}\n")).unwrap_err();
            assert!(err.contains("banding.toml [catalog]"), "{err}");
            assert!(err.contains("`market_cap`"), "{err}");
            assert!(err.contains("[0, 1)"), "{err}");
        }
        let err = from_toml("[catalog]\nbanding = { sector_leaders = 0.1 }\n").unwrap_err();
        assert!(err.contains("sector_leaders"), "{err}");
        assert!(err.contains("market_cap, market_leaders"), "{err}");
    }

    #[test]
    fn cache_config_rows_carry_banding_like_other_settings() {
        let row = |key: &str, value| ConfigRow {
            name: "banding".into(),
            key: key.into(),
            value,
        };
        let mut config = CatalogConfig::default();
        let warnings = config.apply_cache_config(
            &[
                row("market_cap", json!(0.05)),
                row("market_leaders", json!("0.1")),
            ],
            None,
        );
        assert!(warnings.is_empty());
        assert_eq!(config.banding.market_cap, 0.05);
        assert_eq!(config.banding.market_leaders, 0.1);
        // A bad row is data, not a setting: ignored with a warning naming it, the share kept.
        let warnings = config.apply_cache_config(&[row("market_cap", json!(1.5))], None);
        let [warning] = warnings.as_slice() else {
            panic!("one warning: {warnings:?}")
        };
        let text = format!("{}: {}", warning.source, warning.message);
        assert!(
            text.contains("cache_config row banding/market_cap") && text.contains("[0, 1)"),
            "{text}"
        );
        assert_eq!(config.banding.market_cap, 0.05);
        let warnings = config.apply_cache_config(&[row("market_cap", json!(true))], None);
        assert!(
            warnings
                .iter()
                .any(|w| w.source.contains("banding/market_cap")),
            "{warnings:?}"
        );
        assert_eq!(config.banding.market_cap, 0.05);
    }

    #[test]
    fn banding_off_leaves_the_configuration_hash_as_before() {
        let plain = CatalogConfig::default();
        let serialised = serde_json::to_value(&plain).unwrap();
        assert!(serialised.get("banding").is_none());
        let mut banded = plain.clone();
        banded.banding.set("market_cap", 0.05).unwrap();
        assert_ne!(hash_serializable(&banded), hash_serializable(&plain));
        banded.banding.set("market_cap", 0.0).unwrap();
        assert_eq!(hash_serializable(&banded), hash_serializable(&plain));
    }
}
