//! Renames that keep history (issue 16): when a ticker leaves and another with the same vendor
//! identity arrives (FB → META), that is one security under a new ticker, not a delisting and a
//! new listing. Owns the identity rule, the pairing of gone and new tickers, and the listing date
//! a renamed security keeps. Pure: works on the cleaned securities and the tickers the live rows
//! held; it never reads `symbols` columns itself (the store decides which exist).
//!
//! The rule, decided at the first level both securities know:
//! 1. `composite_figi` equal (a FIGI is never reused, so this is decisive either way);
//! 2. else `share_class_figi` equal;
//! 3. else `cik` equal (leading zeros ignored) **and** the same name (case and spacing ignored):
//!    one filer has many securities (GOOG and GOOGL share a CIK), so the CIK alone is not
//!    enough, and a CIK-only vendor row that also changed its name is not paired.
//!
//! Both securities must be of the same kind (stock to stock, ETF to ETF). A pairing counts only
//! when it is one to one: a gone ticker with two candidates (or a candidate claimed by two gone
//! tickers) is left as a delisting and a listing, because guessing would put the wrong history
//! under a ticker. With no identity columns every identity is unknown and nothing pairs.

use crate::domain::securities::{Securities, Security};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// A security's vendor identity, cleaned: trimmed, upper case, empty read as unknown; a CIK
/// without its leading zeros.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Identity {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub composite_figi: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub share_class_figi: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cik: Option<String>,
}

fn clean(raw: Option<&str>) -> Option<String> {
    let text = raw?.trim().to_ascii_uppercase();
    (!text.is_empty()).then_some(text)
}

impl Identity {
    /// Cleans the three raw column values.
    pub fn from_raw(
        composite_figi: Option<&str>,
        share_class_figi: Option<&str>,
        cik: Option<&str>,
    ) -> Self {
        let cik = clean(cik).map(|c| {
            let digits = c.trim_start_matches('0');
            if digits.is_empty() { "0" } else { digits }.to_owned()
        });
        Self {
            composite_figi: clean(composite_figi),
            share_class_figi: clean(share_class_figi),
            cik,
        }
    }

    /// No identity column had a value.
    pub fn is_unknown(&self) -> bool {
        self.composite_figi.is_none() && self.share_class_figi.is_none() && self.cik.is_none()
    }
}

/// Which level of the rule paired two tickers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MatchedBy {
    CompositeFigi,
    ShareClassFigi,
    CikAndName,
}

impl MatchedBy {
    /// The snake_case name used in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            MatchedBy::CompositeFigi => "composite_figi",
            MatchedBy::ShareClassFigi => "share_class_figi",
            MatchedBy::CikAndName => "cik_and_name",
        }
    }
}

fn same_name(a: &str, b: &str) -> bool {
    let words = |s: &str| {
        s.split_whitespace()
            .map(str::to_lowercase)
            .collect::<Vec<_>>()
    };
    words(a) == words(b)
}

/// Whether `a` and `b` are the same security, and by which level of the rule (see the module
/// comment). Tickers and activity are not looked at.
pub fn same_security(a: &Security, b: &Security) -> Option<MatchedBy> {
    if a.kind != b.kind {
        return None;
    }
    let (x, y) = (&a.identity, &b.identity);
    if let (Some(p), Some(q)) = (&x.composite_figi, &y.composite_figi) {
        return (p == q).then_some(MatchedBy::CompositeFigi);
    }
    if let (Some(p), Some(q)) = (&x.share_class_figi, &y.share_class_figi) {
        return (p == q).then_some(MatchedBy::ShareClassFigi);
    }
    match (&x.cik, &y.cik) {
        (Some(p), Some(q)) if p == q && same_name(&a.name, &b.name) => Some(MatchedBy::CikAndName),
        _ => None,
    }
}

/// One ticker change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rename {
    pub from: String,
    pub to: String,
    pub matched_by: MatchedBy,
}

impl Rename {
    /// The reason detail member changes carry: `{"from", "to", "matched_by"}`.
    pub fn detail(&self) -> Value {
        json!({"from": self.from, "to": self.to, "matched_by": self.matched_by.as_str()})
    }
}

/// The renames of one run, looked up from either side.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Renames {
    by_to: BTreeMap<String, Rename>,
    to_of: BTreeMap<String, String>,
}

impl Renames {
    fn insert(&mut self, rename: Rename) {
        self.to_of.insert(rename.from.clone(), rename.to.clone());
        self.by_to.insert(rename.to.clone(), rename);
    }

    /// The rename that brought `ticker` in.
    pub fn into_ticker(&self, ticker: &str) -> Option<&Rename> {
        self.by_to.get(ticker)
    }

    /// The rename that took `ticker` away.
    pub fn out_of_ticker(&self, ticker: &str) -> Option<&Rename> {
        self.to_of.get(ticker).and_then(|to| self.by_to.get(to))
    }

    /// Every rename, by new ticker.
    pub fn iter(&self) -> impl Iterator<Item = &Rename> {
        self.by_to.values()
    }

    /// How many tickers changed.
    pub fn len(&self) -> usize {
        self.by_to.len()
    }

    /// No ticker changed.
    pub fn is_empty(&self) -> bool {
        self.by_to.is_empty()
    }
}

/// Candidates indexed by each identity value, so pairing never compares every two securities.
struct IdentityIndex<'s> {
    by_value: HashMap<(u8, &'s str), Vec<&'s Security>>,
}

impl<'s> IdentityIndex<'s> {
    fn new(securities: impl Iterator<Item = &'s Security>) -> Self {
        let mut by_value: HashMap<(u8, &str), Vec<&Security>> = HashMap::new();
        for s in securities {
            let id = &s.identity;
            for (level, value) in [
                (0, &id.composite_figi),
                (1, &id.share_class_figi),
                (2, &id.cik),
            ] {
                if let Some(v) = value {
                    by_value.entry((level, v.as_str())).or_default().push(s);
                }
            }
        }
        Self { by_value }
    }

    /// Every indexed security that is the same security as `s` (itself excluded), by ticker.
    fn matches(&self, s: &Security) -> BTreeMap<&'s str, (&'s Security, MatchedBy)> {
        let id = &s.identity;
        let mut out = BTreeMap::new();
        for (level, value) in [
            (0, &id.composite_figi),
            (1, &id.share_class_figi),
            (2, &id.cik),
        ] {
            let Some(v) = value else { continue };
            for &c in self
                .by_value
                .get(&(level, v.as_str()))
                .into_iter()
                .flatten()
            {
                if c.ticker == s.ticker {
                    continue;
                }
                if let Some(by) = same_security(s, c) {
                    out.insert(c.ticker.as_str(), (c, by));
                }
            }
        }
        out
    }
}

/// The renames of a run. `previous` holds every ticker the live rows listed before it: a ticker
/// there that is now inactive (its `symbols` row kept, as vendors keep `FB` with
/// `active = false`), paired one to one with an active ticker of the same identity that the live
/// rows did not list, is a rename. A gone ticker whose row vanished has no identity to pair by.
pub fn find_renames(securities: &Securities, previous: &BTreeSet<String>) -> Renames {
    let gone: Vec<&Security> = previous
        .iter()
        .filter_map(|t| securities.get(t))
        .filter(|s| !s.active && !s.identity.is_unknown())
        .collect();
    let mut renames = Renames::default();
    if gone.is_empty() {
        return renames;
    }
    let arrivals = IdentityIndex::new(
        securities
            .all
            .iter()
            .filter(|s| s.active && !s.identity.is_unknown() && !previous.contains(&s.ticker)),
    );
    let mut claims: BTreeMap<&str, Vec<(&str, MatchedBy)>> = BTreeMap::new();
    let mut offers: BTreeMap<&str, usize> = BTreeMap::new();
    for old in &gone {
        let found = arrivals.matches(old);
        offers.insert(old.ticker.as_str(), found.len());
        for (to, (_, by)) in found {
            claims
                .entry(to)
                .or_default()
                .push((old.ticker.as_str(), by));
        }
    }
    for (to, from) in claims {
        if let [(from, by)] = from.as_slice() {
            if offers.get(from) == Some(&1) {
                renames.insert(Rename {
                    from: (*from).to_owned(),
                    to: to.to_owned(),
                    matched_by: *by,
                });
            }
        }
    }
    renames
}

/// Gives every active security that continues an inactive row of the same identity that row's
/// listing date (the earliest along the chain; unknown when no predecessor's is known), so a
/// renamed stock never reads as a recent IPO, on the night of the rename or after it. Returns
/// how many listing dates changed.
pub fn inherit_list_dates(securities: &mut Securities) -> usize {
    let inactive = IdentityIndex::new(
        securities
            .all
            .iter()
            .filter(|s| !s.active && !s.identity.is_unknown()),
    );
    let mut dates: Vec<(usize, Option<NaiveDate>)> = Vec::new();
    for (i, s) in securities.all.iter().enumerate() {
        if !s.active || s.identity.is_unknown() {
            continue;
        }
        let predecessors = inactive.matches(s);
        if predecessors.is_empty() {
            continue;
        }
        let earliest = predecessors.values().filter_map(|(p, _)| p.list_date).min();
        if earliest != s.list_date {
            dates.push((i, earliest));
        }
    }
    let changed = dates.len();
    for (i, date) in dates {
        securities.all[i].list_date = date;
    }
    changed
}

#[cfg(test)]
mod tests;
