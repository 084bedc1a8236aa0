//! Turns raw `symbols` rows and closes into clean securities by rule: tickers normalised,
//! duplicates dropped, market caps computed as shares × close (SPEC §5) with a counted fallback,
//! bad rows excluded or defaulted and counted. Never fails: a bad row is a count, not an error.

use crate::domain::config::CatalogConfig;
use crate::domain::market::{LatestClose, MarketSnapshot, SymbolRow};
use crate::domain::renames::{inherit_list_dates, Identity};
use chrono::NaiveDate;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

/// Text written for a missing text field (SPEC §4).
pub const UNKNOWN: &str = "Unknown";

/// Above this a market cap is treated as a data error: no company is worth $50T.
const MAX_PLAUSIBLE_CAP: f64 = 5.0e13;

/// What kind of instrument a row is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum SecurityKind {
    Stock,
    Etf,
    Other,
}

/// Where a security's market cap came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum CapSource {
    /// `weighted_shares_outstanding × close`.
    Computed,
    /// `symbols.market_cap`, because shares or a recent close were missing.
    Fallback,
    /// No usable figure.
    Unknown,
}

/// A cleaned-up symbol.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Security {
    pub ticker: String,
    pub name: String,
    pub kind: SecurityKind,
    pub active: bool,
    /// Dollars, positive when known.
    pub market_cap: Option<i64>,
    pub cap_source: CapSource,
    pub sector: String,
    pub industry: String,
    pub exchange: String,
    pub market: String,
    pub list_date: Option<NaiveDate>,
    pub etf_type: String,
    pub issuer: String,
    pub aum_millions: Option<f64>,
    /// Vendor identity (all unknown when `symbols` has no identity columns).
    #[serde(skip_serializing_if = "Identity::is_unknown")]
    pub identity: Identity,
}

impl Security {
    /// An active common stock with a known positive market cap (SPEC §4).
    pub fn is_eligible_stock(&self) -> bool {
        self.kind == SecurityKind::Stock && self.active && self.market_cap.is_some()
    }

    /// An active ETF.
    pub fn is_active_etf(&self) -> bool {
        self.kind == SecurityKind::Etf && self.active
    }

    /// How ETFs are ranked: market cap, else AUM × 1e6, else 0 (SPEC §4).
    pub fn etf_size(&self) -> i64 {
        self.market_cap
            .or_else(|| {
                self.aum_millions
                    .filter(|a| a.is_finite() && *a > 0.0)
                    .map(|a| (a * 1e6).round() as i64)
            })
            .unwrap_or(0)
    }
}

/// Counts of everything the normalisation had to decide, for the run report.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct InputReport {
    pub symbol_rows: usize,
    pub securities: usize,
    pub eligible_stocks: usize,
    pub active_etfs: usize,
    /// Market cap taken from `symbols.market_cap`, by why.
    pub cap_fallbacks: BTreeMap<String, usize>,
    /// Rows excluded or left without a market cap, by cause.
    pub excluded: BTreeMap<String, usize>,
    /// Fields written as "Unknown", by field.
    pub defaulted: BTreeMap<String, usize>,
    /// Stored values that could not be read as their column's type (text in a numeric column,
    /// a number beyond its type, an impossible date), by column; each was read as missing and
    /// the rules above then excluded or defaulted its row.
    pub unreadable: BTreeMap<String, usize>,
}

impl InputReport {
    fn count(map: &mut BTreeMap<String, usize>, cause: &str) {
        *map.entry(cause.to_owned()).or_default() += 1;
    }

    /// Total fallbacks to `symbols.market_cap`.
    pub fn fallback_total(&self) -> usize {
        self.cap_fallbacks.values().sum()
    }
}

/// The clean market: securities sorted by ticker, with a by-ticker index.
#[derive(Debug, Clone, Default)]
pub struct Securities {
    pub as_of: NaiveDate,
    pub all: Vec<Security>,
    index: HashMap<String, usize>,
    pub report: InputReport,
}

impl Securities {
    /// Looks a security up by its normalised ticker.
    pub fn get(&self, ticker: &str) -> Option<&Security> {
        self.index.get(ticker).map(|&i| &self.all[i])
    }

    /// Eligible stocks by market cap descending, ticker ascending on ties.
    pub fn ranked_stocks(&self) -> Vec<&Security> {
        let mut stocks: Vec<&Security> =
            self.all.iter().filter(|s| s.is_eligible_stock()).collect();
        stocks.sort_by(|a, b| {
            b.market_cap
                .cmp(&a.market_cap)
                .then_with(|| a.ticker.cmp(&b.ticker))
        });
        stocks
    }

    /// Active ETFs sorted by ticker.
    pub fn etfs(&self) -> Vec<&Security> {
        self.all.iter().filter(|s| s.is_active_etf()).collect()
    }
}

/// Normalises a ticker: surrounding whitespace dropped, upper case. `None` when what is left is
/// empty or holds characters no exchange uses (tickers like `BRK.B` and `BF-B` are kept).
pub fn normalize_ticker(raw: &str) -> Option<String> {
    let ticker = raw.trim().to_ascii_uppercase();
    let valid = !ticker.is_empty()
        && ticker.len() <= 20
        && ticker
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || matches!(c, '.' | '-' | '/'));
    valid.then_some(ticker)
}

fn text_or_unknown(
    value: &Option<String>,
    field: &str,
    report: &mut InputReport,
    count: bool,
) -> String {
    match value.as_deref().map(str::trim) {
        Some(text) if !text.is_empty() => text.to_owned(),
        _ => {
            if count {
                InputReport::count(&mut report.defaulted, field);
            }
            UNKNOWN.to_owned()
        }
    }
}

fn plausible(cap: f64) -> Option<i64> {
    (1.0..=MAX_PLAUSIBLE_CAP)
        .contains(&cap)
        .then(|| cap.round() as i64)
}

fn market_cap(
    row: &SymbolRow,
    close: Option<LatestClose>,
    as_of: NaiveDate,
    config: &CatalogConfig,
    report: &mut InputReport,
    counted: bool,
) -> (Option<i64>, CapSource) {
    let computed_problem = match (row.weighted_shares_outstanding, close) {
        (None, _) => "missing_shares",
        (Some(shares), _) if shares <= 0 => "bad_shares",
        (Some(_), None) => "missing_close",
        (Some(_), Some(c)) if (as_of - c.date).num_days() > config.stale_close_days => {
            "stale_close"
        }
        (Some(_), Some(c)) if !(c.close.is_finite() && c.close > 0.0) => "bad_close",
        (Some(shares), Some(c)) => match plausible(shares as f64 * c.close) {
            Some(cap) => return (Some(cap), CapSource::Computed),
            None => "absurd_computed_cap",
        },
    };
    let fallback = row
        .market_cap
        .filter(|cap| *cap > 0)
        .and_then(|cap| plausible(cap as f64));
    match fallback {
        Some(cap) => {
            if counted {
                InputReport::count(&mut report.cap_fallbacks, computed_problem);
            }
            (Some(cap), CapSource::Fallback)
        }
        None => {
            if counted {
                let cause = match row.market_cap {
                    None => "no_market_cap",
                    Some(0) => "zero_market_cap",
                    Some(c) if c < 0 => "negative_market_cap",
                    Some(_) => "absurd_market_cap",
                };
                InputReport::count(&mut report.excluded, cause);
            }
            (None, CapSource::Unknown)
        }
    }
}

/// An ETF's assets under management when plausible: finite, not negative, and at most the
/// largest plausible market cap once in dollars. Anything else is dropped (counted), so it can
/// neither rank an ETF nor overflow a size.
fn aum_millions(row: &SymbolRow, report: &mut InputReport, counted: bool) -> Option<f64> {
    let aum = row.aum_millions?;
    let plausible = aum.is_finite() && (0.0..=MAX_PLAUSIBLE_CAP / 1e6).contains(&aum);
    if !plausible && counted {
        InputReport::count(&mut report.excluded, "absurd_aum_millions");
    }
    plausible.then_some(aum)
}

/// Cleans the snapshot. Deterministic: the output depends only on the snapshot and config.
pub fn normalize(snapshot: &MarketSnapshot, config: &CatalogConfig) -> Securities {
    let mut report = InputReport {
        symbol_rows: snapshot.symbols.len(),
        unreadable: snapshot.unreadable.clone(),
        ..InputReport::default()
    };
    // Group rows by normalised ticker; among duplicates the row already written canonically
    // wins, else the smallest raw string, so the choice never depends on row order.
    let mut chosen: BTreeMap<String, (&SymbolRow, Option<LatestClose>)> = BTreeMap::new();
    for (row, close) in snapshot.rows() {
        let Some(ticker) = normalize_ticker(&row.symbol) else {
            InputReport::count(&mut report.excluded, "invalid_ticker");
            continue;
        };
        match chosen.get(&ticker) {
            None => {
                chosen.insert(ticker, (row, close));
            }
            Some((kept, _)) => {
                InputReport::count(&mut report.excluded, "duplicate_ticker");
                let row_is_canonical = row.symbol == ticker;
                let kept_is_canonical = kept.symbol == ticker;
                if (row_is_canonical && !kept_is_canonical)
                    || (row_is_canonical == kept_is_canonical && row.symbol < kept.symbol)
                {
                    chosen.insert(ticker, (row, close));
                }
            }
        }
    }

    let mut all = Vec::with_capacity(chosen.len());
    for (ticker, (row, close)) in chosen {
        let kind = match row.kind.as_deref().map(str::trim) {
            Some("CS") => SecurityKind::Stock,
            Some("ETF") => SecurityKind::Etf,
            _ => SecurityKind::Other,
        };
        let active = row.active.unwrap_or(false);
        // Only rows that can reach a universe are worth counting in the report.
        let counted = active && kind != SecurityKind::Other;
        let (cap, cap_source) = if kind == SecurityKind::Other {
            (None, CapSource::Unknown)
        } else {
            market_cap(
                row,
                close,
                snapshot.as_of,
                config,
                &mut report,
                counted && kind == SecurityKind::Stock,
            )
        };
        let count_text = counted && kind == SecurityKind::Stock;
        all.push(Security {
            name: text_or_unknown(&row.name, "name", &mut report, count_text),
            sector: text_or_unknown(&row.sector, "sector", &mut report, count_text),
            industry: text_or_unknown(&row.industry, "industry", &mut report, count_text),
            exchange: text_or_unknown(&row.primary_exchange, "exchange", &mut report, false),
            market: text_or_unknown(&row.market, "market", &mut report, false),
            etf_type: text_or_unknown(&row.etf_type, "etf_type", &mut report, false),
            issuer: text_or_unknown(&row.issuer, "issuer", &mut report, false),
            ticker,
            kind,
            active,
            market_cap: cap,
            cap_source,
            list_date: row.list_date,
            aum_millions: aum_millions(row, &mut report, counted && kind == SecurityKind::Etf),
            identity: Identity::from_raw(
                row.composite_figi.as_deref(),
                row.share_class_figi.as_deref(),
                row.cik.as_deref(),
            ),
        });
    }
    report.securities = all.len();
    report.eligible_stocks = all.iter().filter(|s| s.is_eligible_stock()).count();
    report.active_etfs = all.iter().filter(|s| s.is_active_etf()).count();
    let index = all
        .iter()
        .enumerate()
        .map(|(i, s)| (s.ticker.clone(), i))
        .collect();
    let mut securities = Securities {
        as_of: snapshot.as_of,
        all,
        index,
        report,
    };
    // A renamed security is not a new listing: it keeps its predecessor's listing date.
    inherit_list_dates(&mut securities);
    securities
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    fn stock(symbol: &str, shares: Option<i64>, cap: Option<i64>) -> SymbolRow {
        SymbolRow {
            symbol: symbol.into(),
            name: Some(format!("{symbol} Inc")),
            kind: Some("CS".into()),
            active: Some(true),
            market_cap: cap,
            weighted_shares_outstanding: shares,
            sector: Some("Technology".into()),
            industry: Some("Software".into()),
            ..SymbolRow::default()
        }
    }

    fn snapshot(rows: Vec<(SymbolRow, Option<LatestClose>)>) -> MarketSnapshot {
        MarketSnapshot {
            as_of: date("2026-03-02"),
            closes: rows.iter().map(|(_, c)| *c).collect(),
            symbols: rows.into_iter().map(|(r, _)| r).collect(),
            ..MarketSnapshot::default()
        }
    }

    fn close(day: &str, price: f64) -> Option<LatestClose> {
        Some(LatestClose {
            date: date(day),
            close: price,
        })
    }

    #[test]
    fn market_cap_is_shares_times_latest_close() {
        let s = normalize(
            &snapshot(vec![(
                stock("AAA", Some(1_000), Some(5)),
                close("2026-03-02", 12.5),
            )]),
            &CatalogConfig::default(),
        );
        let a = s.get("AAA").unwrap();
        assert_eq!(a.market_cap, Some(12_500));
        assert_eq!(a.cap_source, CapSource::Computed);
        assert_eq!(s.report.fallback_total(), 0);
    }

    #[test]
    fn stale_close_falls_back_to_symbols_market_cap_and_is_counted() {
        let s = normalize(
            &snapshot(vec![(
                stock("OLD", Some(1_000), Some(777)),
                close("2026-02-10", 12.5),
            )]),
            &CatalogConfig::default(),
        );
        let old = s.get("OLD").unwrap();
        assert_eq!(old.market_cap, Some(777));
        assert_eq!(old.cap_source, CapSource::Fallback);
        assert_eq!(s.report.cap_fallbacks.get("stale_close"), Some(&1));
    }

    #[test]
    fn missing_shares_fall_back_and_are_counted() {
        let s = normalize(
            &snapshot(vec![(
                stock("NOSH", None, Some(900)),
                close("2026-03-02", 3.0),
            )]),
            &CatalogConfig::default(),
        );
        assert_eq!(s.get("NOSH").unwrap().market_cap, Some(900));
        assert_eq!(s.report.cap_fallbacks.get("missing_shares"), Some(&1));
    }

    #[test]
    fn zero_negative_and_absurd_caps_are_excluded_and_counted() {
        let s = normalize(
            &snapshot(vec![
                (stock("ZERO", None, Some(0)), None),
                (stock("NEG", None, Some(-5)), None),
                (stock("HUGE", None, Some(i64::MAX)), None),
                (stock("NONE", None, None), None),
                (
                    stock("BIGSH", Some(i64::MAX / 2), None),
                    close("2026-03-02", 1000.0),
                ),
            ]),
            &CatalogConfig::default(),
        );
        assert_eq!(s.report.eligible_stocks, 0);
        assert_eq!(s.report.excluded.get("zero_market_cap"), Some(&1));
        assert_eq!(s.report.excluded.get("negative_market_cap"), Some(&1));
        assert_eq!(s.report.excluded.get("absurd_market_cap"), Some(&1));
        assert_eq!(s.report.excluded.get("no_market_cap"), Some(&2));
    }

    #[test]
    fn duplicate_tickers_keep_the_canonical_row() {
        let mut messy = stock(" aapl ", Some(1), None);
        messy.name = Some("Wrong".into());
        let s = normalize(
            &snapshot(vec![
                (messy, close("2026-03-02", 1.0)),
                (stock("AAPL", Some(10), None), close("2026-03-02", 1.0)),
                (stock("aapl", Some(1), None), close("2026-03-02", 1.0)),
            ]),
            &CatalogConfig::default(),
        );
        assert_eq!(s.all.len(), 1);
        assert_eq!(s.get("AAPL").unwrap().market_cap, Some(10));
        assert_eq!(s.report.excluded.get("duplicate_ticker"), Some(&2));
    }

    #[test]
    fn dotted_and_dashed_tickers_are_kept() {
        assert_eq!(normalize_ticker("BRK.B").as_deref(), Some("BRK.B"));
        assert_eq!(normalize_ticker("bf-b ").as_deref(), Some("BF-B"));
        assert_eq!(normalize_ticker("  "), None);
        assert_eq!(normalize_ticker("A B"), None);
    }

    #[test]
    fn null_text_fields_become_unknown() {
        let mut row = stock("NULLS", Some(10), None);
        row.sector = None;
        row.name = Some("  ".into());
        let s = normalize(
            &snapshot(vec![(row, close("2026-03-02", 1.0))]),
            &CatalogConfig::default(),
        );
        let sec = s.get("NULLS").unwrap();
        assert_eq!(sec.sector, UNKNOWN);
        assert_eq!(sec.name, UNKNOWN);
        assert_eq!(s.report.defaulted.get("sector"), Some(&1));
    }

    #[test]
    fn ties_rank_by_ticker() {
        let s = normalize(
            &snapshot(vec![
                (stock("BBB", Some(10), None), close("2026-03-02", 1.0)),
                (stock("AAA", Some(10), None), close("2026-03-02", 1.0)),
                (stock("CCC", Some(20), None), close("2026-03-02", 1.0)),
            ]),
            &CatalogConfig::default(),
        );
        let order: Vec<&str> = s
            .ranked_stocks()
            .iter()
            .map(|s| s.ticker.as_str())
            .collect();
        assert_eq!(order, vec!["CCC", "AAA", "BBB"]);
    }
}
