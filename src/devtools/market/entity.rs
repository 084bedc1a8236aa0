//! One generated symbol over its whole life: listing, delisting, class and share changes.

use super::*;

// ---------------------------------------------------------------------------------------------
// The market
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum CapMode {
    /// shares × previous close
    Computed,
    Null,
    Fixed(i64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Role {
    /// Randomly generated; may receive any event or dirty flag.
    Generic,
    /// Well-known ticker or fixed ETF: always active, always priced, never dirty.
    Protected,
    /// A bad row added by `nasty`; never touched by events.
    Nasty,
    /// The new ticker of a rename: continues its predecessor's prices and identity, never
    /// touched by events or movers (they move the shared path through the predecessor).
    Successor,
}

#[derive(Debug, Clone, PartialEq)]
pub(super) struct EtfInfo {
    pub(super) etf_type: &'static str,
    pub(super) issuer: &'static str,
    pub(super) aum0: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub(super) struct Entity {
    pub(super) ticker: String,
    pub(super) name: Option<String>,
    pub(super) kind: Option<&'static str>,
    pub(super) exchange: Option<&'static str>,
    pub(super) market: Option<&'static str>,
    pub(super) sector: Option<&'static str>,
    pub(super) industry: Option<&'static str>,
    pub(super) list_date: Option<NaiveDate>,
    pub(super) etf: Option<EtfInfo>,
    /// First trading day on which the symbol is in the table (1 for the initial universe).
    pub(super) listed_day: u32,
    /// First trading day on which it is inactive ([`NEVER`] if never; 1 = inactive from start).
    pub(super) delist_day: u32,
    pub(super) shares0: i64,
    pub(super) shares_null: bool,
    pub(super) cap_mode: CapMode,
    /// (day, shares from that day on), increasing days.
    pub(super) share_events: Vec<(u32, i64)>,
    /// (day, sector, industry from that day on), increasing days.
    pub(super) reclass: Vec<(u32, Option<&'static str>, Option<&'static str>)>,
    pub(super) price0: f64,
    pub(super) sigma: f64,
    pub(super) turnover: f64,
    pub(super) role: Role,
    pub(super) has_bars: bool,
    /// Share the price path of another entity (case/whitespace duplicates).
    pub(super) path_src: Option<usize>,
    pub(super) path_off: usize,
    pub(super) path_first: u32,
}

impl Entity {
    pub(super) fn new(ticker: String, kind: &'static str) -> Entity {
        Entity {
            ticker,
            name: None,
            kind: Some(kind),
            exchange: Some("XNAS"),
            market: Some("stocks"),
            sector: None,
            industry: None,
            list_date: None,
            etf: None,
            listed_day: 1,
            delist_day: NEVER,
            shares0: 1,
            shares_null: false,
            cap_mode: CapMode::Computed,
            share_events: Vec::new(),
            reclass: Vec::new(),
            price0: 10.0,
            sigma: 0.017,
            turnover: 0.005,
            role: Role::Generic,
            has_bars: true,
            path_src: None,
            path_off: 0,
            path_first: 0,
        }
    }

    pub(super) fn is_cs(&self) -> bool {
        self.kind == Some("CS")
    }

    pub(super) fn active_on(&self, day: u32) -> bool {
        self.listed_day <= day && day < self.delist_day
    }

    pub(super) fn shares_on(&self, day: u32) -> i64 {
        self.share_events
            .iter()
            .rev()
            .find(|(d, _)| *d <= day)
            .map_or(self.shares0, |&(_, s)| s)
    }

    pub(super) fn class_on(&self, day: u32) -> (Option<&'static str>, Option<&'static str>) {
        self.reclass
            .iter()
            .rev()
            .find(|(d, _, _)| *d <= day)
            .map_or((self.sector, self.industry), |&(_, s, i)| (s, i))
    }
}
