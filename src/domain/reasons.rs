//! Why a member joined, left or changed inside a universe (SPEC §7): the reason and the values
//! that explain it (e.g. market cap $9.8B → $10.3B crossed $10B).

use crate::domain::config::CatalogConfig;
use crate::domain::renames::Renames;
use crate::domain::securities::{Securities, Security};
use crate::domain::types::Family;
use chrono::Duration;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::HashMap;

/// The reason codes of SPEC §7, plus `market_data` for a member that stays but whose figures
/// moved, `initial_build` for a member of an entry built for the first time, `held_by_band` for
/// one that stays only because of turnover banding and `renamed` for a ticker change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReasonCode {
    ThresholdCrossed,
    RankChange,
    NewListing,
    DelistedOrInactive,
    SectorChange,
    IndustryChange,
    ConfigurationChange,
    ManualDrift,
    Rollback,
    MarketData,
    InitialBuild,
    /// Turnover banding kept a member the plain rule would have dropped (issue 16).
    HeldByBand,
    /// The member is the same security under a new ticker (issue 16); the detail names
    /// `from`, `to` and the identity level that `matched_by`.
    Renamed,
}

impl ReasonCode {
    /// The snake_case name used in JSON and text output.
    pub fn as_str(self) -> &'static str {
        match self {
            ReasonCode::ThresholdCrossed => "threshold_crossed",
            ReasonCode::RankChange => "rank_change",
            ReasonCode::NewListing => "new_listing",
            ReasonCode::DelistedOrInactive => "delisted_or_inactive",
            ReasonCode::SectorChange => "sector_change",
            ReasonCode::IndustryChange => "industry_change",
            ReasonCode::ConfigurationChange => "configuration_change",
            ReasonCode::ManualDrift => "manual_drift",
            ReasonCode::Rollback => "rollback",
            ReasonCode::MarketData => "market_data",
            ReasonCode::InitialBuild => "initial_build",
            ReasonCode::HeldByBand => "held_by_band",
            ReasonCode::Renamed => "renamed",
        }
    }
}

/// A reason with the values that explain it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reason {
    pub code: ReasonCode,
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub detail: Value,
}

impl Reason {
    fn new(code: ReasonCode, detail: Value) -> Self {
        Self { code, detail }
    }
}

/// What reason inference knows about the run.
pub struct ReasonContext<'a> {
    pub securities: &'a Securities,
    pub config: &'a CatalogConfig,
    /// Each ticker's record as the live table last showed it (from any owned entry).
    pub previous: HashMap<String, Value>,
    /// The effective configuration differs from the last run's.
    pub config_changed: bool,
    /// Every member change of this run carries this reason (rollback runs).
    pub run_override: Option<ReasonCode>,
    /// The ticker changes of this run: both sides of each carry `renamed`.
    pub renames: Renames,
}

fn field<'v>(record: Option<&'v Value>, name: &str) -> Option<&'v Value> {
    record.and_then(|r| r.get(name)).filter(|v| !v.is_null())
}

impl ReasonContext<'_> {
    fn recently_listed(&self, security: &Security) -> bool {
        let earliest = self.securities.as_of - Duration::days(self.config.ipo_window_days);
        security
            .list_date
            .is_some_and(|d| d >= earliest && d <= self.securities.as_of)
    }

    /// The bound of `band` that the cap crossed between `before` and `after`.
    fn band_crossed(&self, band: &str, before: Option<i64>, after: Option<i64>) -> Value {
        let bands = &self.config.market_cap_bands;
        let index = bands.iter().position(|b| b.key == band);
        let lower = index.map(|i| bands[i].lower);
        let upper = index.and_then(|i| i.checked_sub(1)).map(|i| bands[i].lower);
        let crossed = match (before, after) {
            (Some(b), Some(a)) => [lower, upper]
                .into_iter()
                .flatten()
                .find(|&t| (b >= t) != (a >= t)),
            _ => None,
        };
        json!({ "field": "market_cap", "before": before, "after": after, "threshold": crossed })
    }

    fn classification_change(
        &self,
        family: Family,
        before: Option<&Value>,
        now: &Security,
    ) -> Option<Reason> {
        let check = |name: &str, current: &str, code: ReasonCode| {
            let old = field(before, name)?.as_str()?;
            (old != current).then(|| {
                Reason::new(
                    code,
                    json!({"field": name, "before": old, "after": current}),
                )
            })
        };
        match family {
            Family::SectorLeaders | Family::Industry => {
                check("sector", &now.sector, ReasonCode::SectorChange)
                    .or_else(|| check("industry", &now.industry, ReasonCode::IndustryChange))
            }
            _ => None,
        }
    }

    /// A sector or industry reclassification, or (market-cap bands) a cap that crossed the
    /// band's bound — or bands that moved under an unchanged cap.
    fn moved_by_data(
        &self,
        family: Family,
        entry: &str,
        before: Option<&Value>,
        now: &Security,
    ) -> Option<Reason> {
        if let Some(reason) = self.classification_change(family, before, now) {
            return Some(reason);
        }
        if family != Family::MarketCap {
            return None;
        }
        let old = field(before, "market_cap").and_then(Value::as_i64);
        Some(if self.config_changed && old == now.market_cap {
            // The cap did not move: the bands did.
            Reason::new(
                ReasonCode::ConfigurationChange,
                json!({"market_cap": now.market_cap}),
            )
        } else {
            Reason::new(
                ReasonCode::ThresholdCrossed,
                self.band_crossed(entry, old, now.market_cap),
            )
        })
    }

    /// Why `ticker` joined the universe `entry` (its key, e.g. `large_cap`) of `family` at `rank`.
    pub fn added(
        &self,
        family: Family,
        entry: &str,
        ticker: &str,
        rank: usize,
        forced: Option<ReasonCode>,
    ) -> Reason {
        if let Some(code) = forced.or(self.run_override) {
            return Reason::new(code, Value::Null);
        }
        if let Some(rename) = self.renames.into_ticker(ticker) {
            return Reason::new(ReasonCode::Renamed, rename.detail());
        }
        let Some(now) = self.securities.get(ticker) else {
            return Reason::new(ReasonCode::ConfigurationChange, Value::Null);
        };
        let before = self.previous.get(ticker);
        if before.is_none() && self.recently_listed(now) {
            return Reason::new(
                ReasonCode::NewListing,
                json!({"list_date": now.list_date.map(|d| d.to_string())}),
            );
        }
        if let Some(reason) = self.moved_by_data(family, entry, before, now) {
            return reason;
        }
        match family {
            Family::Themes | Family::Etfs if self.config_changed => {
                Reason::new(ReasonCode::ConfigurationChange, Value::Null)
            }
            _ if self.config_changed && before.is_some() => {
                Reason::new(ReasonCode::ConfigurationChange, Value::Null)
            }
            _ => Reason::new(
                ReasonCode::RankChange,
                json!({"before": field(before, "rank"), "after": rank, "market_cap": now.market_cap}),
            ),
        }
    }

    /// Why `ticker` is a member of the entry `entry` of `family` that this run creates: the
    /// run's or entry's forced reason (rollback, drift), a new listing, or a configuration change
    /// (a category or band the configuration added) if it is one; else `initial_build`, since
    /// there is no earlier list for a rank or threshold to have changed in.
    pub fn built(
        &self,
        family: Family,
        entry: &str,
        ticker: &str,
        rank: usize,
        forced: Option<ReasonCode>,
    ) -> Reason {
        let reason = self.added(family, entry, ticker, rank, forced);
        let kept = forced.or(self.run_override).is_some()
            || matches!(
                reason.code,
                ReasonCode::NewListing | ReasonCode::ConfigurationChange | ReasonCode::Renamed
            );
        if kept {
            reason
        } else {
            Reason::new(ReasonCode::InitialBuild, Value::Null)
        }
    }

    /// Why `ticker` left a universe of `family`; `record` is its record there before.
    pub fn removed(
        &self,
        family: Family,
        entry: &str,
        ticker: &str,
        record: &Value,
        forced: Option<ReasonCode>,
    ) -> Reason {
        if let Some(code) = forced.or(self.run_override) {
            return Reason::new(code, Value::Null);
        }
        if let Some(rename) = self.renames.out_of_ticker(ticker) {
            return Reason::new(ReasonCode::Renamed, rename.detail());
        }
        let before = Some(record)
            .filter(|r| r.is_object())
            .or_else(|| self.previous.get(ticker));
        let now = match self.securities.get(ticker) {
            Some(s)
                if s.active
                    && (s.market_cap.is_some()
                        || s.is_active_etf()
                        || family == Family::Themes) =>
            {
                s
            }
            Some(s) => {
                let why = if s.active {
                    "no usable market cap"
                } else {
                    "inactive"
                };
                return Reason::new(ReasonCode::DelistedOrInactive, json!({"status": why}));
            }
            None => {
                return Reason::new(
                    ReasonCode::DelistedOrInactive,
                    json!({"status": "not in symbols"}),
                )
            }
        };
        if let Some(reason) = self.moved_by_data(family, entry, before, now) {
            return reason;
        }
        match family {
            _ if self.config_changed => Reason::new(ReasonCode::ConfigurationChange, Value::Null),
            _ => Reason::new(
                ReasonCode::RankChange,
                json!({"before": field(before, "rank"), "market_cap": now.market_cap}),
            ),
        }
    }

    /// Why a member that stays changed: `changed` lists the fields that moved.
    pub fn changed(
        &self,
        changed_fields: &[&str],
        position_moved: bool,
        forced: Option<ReasonCode>,
    ) -> ReasonCode {
        if let Some(code) = forced.or(self.run_override) {
            return code;
        }
        if changed_fields.contains(&"rank") || (position_moved && changed_fields.is_empty()) {
            ReasonCode::RankChange
        } else if changed_fields.contains(&"sector") {
            ReasonCode::SectorChange
        } else if changed_fields.contains(&"industry") {
            ReasonCode::IndustryChange
        } else {
            ReasonCode::MarketData
        }
    }
}
