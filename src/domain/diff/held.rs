//! Turnover banding in the deltas: each delta names the members its universe holds only because
//! of the band, and a held member whose record changed carries `held_by_band` instead of the
//! reason the figures alone would give.

use super::Delta;
use crate::domain::catalog::BandingReport;
use crate::domain::reasons::{Reason, ReasonCode};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// A member kept by the band: its ticker, and `held_by_band` with the cap (or rank) and limit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeldMember {
    pub ticker: String,
    pub reason: Reason,
}

/// Marks the held members of `report` in the deltas of their universes.
pub fn mark_held(deltas: &mut [Delta], report: &BandingReport) {
    if report.held.is_empty() {
        return;
    }
    for delta in deltas {
        let held: HashMap<&str, &Reason> = report
            .held_in(&delta.key)
            .map(|h| (h.ticker.as_str(), &h.reason))
            .collect();
        if held.is_empty() {
            continue;
        }
        for list in &mut delta.change.lists {
            for member in &mut list.changed {
                if held.contains_key(member.ticker.as_str()) {
                    member.reason = ReasonCode::HeldByBand;
                }
            }
            for member in &mut list.added {
                if let Some(reason) = held.get(member.ticker.as_str()) {
                    member.reason = (*reason).clone();
                }
            }
        }
        delta.change.held = report
            .held_in(&delta.key)
            .map(|h| HeldMember {
                ticker: h.ticker.clone(),
                reason: h.reason.clone(),
            })
            .collect();
    }
}
