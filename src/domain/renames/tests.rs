use super::*;
use crate::domain::config::CatalogConfig;
use crate::domain::market::{LatestClose, MarketSnapshot, SymbolRow};
use crate::domain::securities::normalize;

fn day(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 3, d).expect("a March date")
}

/// A common stock row; `active` false for a ticker the vendor retired.
fn row(ticker: &str, name: &str, active: bool) -> SymbolRow {
    SymbolRow {
        symbol: ticker.to_owned(),
        name: Some(name.to_owned()),
        kind: Some("CS".to_owned()),
        active: Some(active),
        market_cap: Some(5_000_000_000),
        list_date: Some(NaiveDate::from_ymd_opt(2012, 5, 18).expect("a date")),
        ..SymbolRow::default()
    }
}

fn with_ids(
    mut r: SymbolRow,
    composite: Option<&str>,
    share: Option<&str>,
    cik: Option<&str>,
) -> SymbolRow {
    r.composite_figi = composite.map(str::to_owned);
    r.share_class_figi = share.map(str::to_owned);
    r.cik = cik.map(str::to_owned);
    r
}

fn market(rows: Vec<SymbolRow>) -> Securities {
    let closes = rows
        .iter()
        .map(|_| {
            Some(LatestClose {
                date: day(2),
                close: 10.0,
            })
        })
        .collect();
    let snapshot = MarketSnapshot {
        as_of: day(2),
        symbols: rows,
        closes,
        ..MarketSnapshot::default()
    };
    normalize(&snapshot, &CatalogConfig::default())
}

fn listed(tickers: &[&str]) -> BTreeSet<String> {
    tickers.iter().map(|t| (*t).to_owned()).collect()
}

fn pairs(renames: &Renames) -> Vec<(&str, &str, MatchedBy)> {
    renames
        .iter()
        .map(|r| (r.from.as_str(), r.to.as_str(), r.matched_by))
        .collect()
}

#[test]
fn a_gone_ticker_and_a_new_one_with_the_same_composite_figi_are_a_rename() {
    let s = market(vec![
        with_ids(
            row("FB", "Facebook Inc", false),
            Some("BBG000MM2P62"),
            None,
            None,
        ),
        with_ids(
            row("META", "Meta Platforms Inc", true),
            Some("bbg000mm2p62 "),
            None,
            None,
        ),
        with_ids(
            row("AAPL", "Apple Inc", true),
            Some("BBG000B9XRY4"),
            None,
            None,
        ),
    ]);
    let renames = find_renames(&s, &listed(&["FB", "AAPL"]));
    assert_eq!(
        pairs(&renames),
        vec![("FB", "META", MatchedBy::CompositeFigi)]
    );
    assert_eq!(
        renames.out_of_ticker("FB").map(|r| r.to.as_str()),
        Some("META")
    );
    assert_eq!(
        renames.into_ticker("META").map(|r| r.from.as_str()),
        Some("FB")
    );
    assert_eq!(
        renames.into_ticker("META").map(Rename::detail),
        Some(json!({"from": "FB", "to": "META", "matched_by": "composite_figi"}))
    );
}

#[test]
fn different_composite_figis_are_different_securities_even_when_share_class_and_cik_agree() {
    let s = market(vec![
        with_ids(
            row("OLD", "Same Co", false),
            Some("BBG000000001"),
            Some("BBG001S1"),
            Some("123"),
        ),
        with_ids(
            row("NEW", "Same Co", true),
            Some("BBG000000002"),
            Some("BBG001S1"),
            Some("123"),
        ),
    ]);
    assert!(find_renames(&s, &listed(&["OLD"])).is_empty());
}

#[test]
fn share_class_figi_decides_when_a_side_has_no_composite_figi() {
    let s = market(vec![
        with_ids(
            row("OLD", "Old Name", false),
            None,
            Some("BBG001S5N8V8"),
            None,
        ),
        with_ids(
            row("NEW", "New Name", true),
            Some("BBG000000002"),
            Some("BBG001S5N8V8"),
            None,
        ),
    ]);
    assert_eq!(
        pairs(&find_renames(&s, &listed(&["OLD"]))),
        vec![("OLD", "NEW", MatchedBy::ShareClassFigi)]
    );
}

#[test]
fn a_cik_pairs_only_with_the_same_name_and_ignores_leading_zeros() {
    let same_name = market(vec![
        with_ids(
            row("OLD", "Widget  Corp", false),
            None,
            None,
            Some("0000320193"),
        ),
        with_ids(row("NEW", "widget corp", true), None, None, Some("320193")),
    ]);
    assert_eq!(
        pairs(&find_renames(&same_name, &listed(&["OLD"]))),
        vec![("OLD", "NEW", MatchedBy::CikAndName)]
    );
    // One filer, two share classes (GOOG and GOOGL): the CIK alone is not the security.
    let other_name = market(vec![
        with_ids(
            row("GOOX", "Alphabet Inc Class C", false),
            None,
            None,
            Some("1652044"),
        ),
        with_ids(
            row("GOOY", "Alphabet Inc Class A", true),
            None,
            None,
            Some("1652044"),
        ),
    ]);
    assert!(find_renames(&other_name, &listed(&["GOOX"])).is_empty());
}

#[test]
fn an_ambiguous_pairing_is_no_rename() {
    let two_arrivals = market(vec![
        with_ids(row("OLD", "Co", false), None, Some("BBG001S1"), None),
        with_ids(row("NEWA", "Co", true), None, Some("BBG001S1"), None),
        with_ids(row("NEWB", "Co", true), None, Some("BBG001S1"), None),
    ]);
    assert!(find_renames(&two_arrivals, &listed(&["OLD"])).is_empty());
    let two_gone = market(vec![
        with_ids(row("OLDA", "Co", false), None, Some("BBG001S1"), None),
        with_ids(row("OLDB", "Co", false), None, Some("BBG001S1"), None),
        with_ids(row("NEW", "Co", true), None, Some("BBG001S1"), None),
    ]);
    assert!(find_renames(&two_gone, &listed(&["OLDA", "OLDB"])).is_empty());
}

#[test]
fn only_a_ticker_the_live_rows_listed_can_be_renamed_and_only_into_one_they_did_not() {
    let s = market(vec![
        with_ids(
            row("FB", "Facebook", false),
            Some("BBG000MM2P62"),
            None,
            None,
        ),
        with_ids(row("META", "Meta", true), Some("BBG000MM2P62"), None, None),
    ]);
    assert!(
        find_renames(&s, &listed(&[])).is_empty(),
        "FB was never a member"
    );
    assert!(
        find_renames(&s, &listed(&["FB", "META"])).is_empty(),
        "META was already a member: the rename happened on an earlier night"
    );
}

#[test]
fn a_still_active_old_ticker_or_another_kind_is_no_rename() {
    let both_active = market(vec![
        with_ids(
            row("FB", "Facebook", true),
            Some("BBG000MM2P62"),
            None,
            None,
        ),
        with_ids(row("META", "Meta", true), Some("BBG000MM2P62"), None, None),
    ]);
    assert!(find_renames(&both_active, &listed(&["FB"])).is_empty());
    let mut etf = with_ids(row("ETFX", "Fund", true), Some("BBG000MM2P62"), None, None);
    etf.kind = Some("ETF".to_owned());
    let kinds = market(vec![
        with_ids(
            row("FB", "Facebook", false),
            Some("BBG000MM2P62"),
            None,
            None,
        ),
        etf,
    ]);
    assert!(find_renames(&kinds, &listed(&["FB"])).is_empty());
}

#[test]
fn without_identity_columns_nothing_pairs_and_listing_dates_stay() {
    let s = market(vec![
        row("FB", "Facebook", false),
        row("META", "Meta", true),
    ]);
    assert!(find_renames(&s, &listed(&["FB"])).is_empty());
    let mut meta = row("META", "Meta", true);
    meta.list_date = Some(day(1));
    let s = market(vec![row("FB", "Facebook", false), meta]);
    assert_eq!(s.get("META").and_then(|m| m.list_date), Some(day(1)));
}

#[test]
fn a_renamed_security_keeps_the_earliest_listing_date_of_its_chain() {
    let mut fb = with_ids(
        row("FB", "Facebook", false),
        Some("BBG000MM2P62"),
        None,
        None,
    );
    fb.list_date = NaiveDate::from_ymd_opt(2012, 5, 18);
    let mut tfb = with_ids(
        row("TFB", "TheFacebook", false),
        Some("BBG000MM2P62"),
        None,
        None,
    );
    tfb.list_date = NaiveDate::from_ymd_opt(2004, 2, 4);
    let mut meta = with_ids(row("META", "Meta", true), Some("BBG000MM2P62"), None, None);
    meta.list_date = Some(day(1));
    let s = market(vec![fb, tfb, meta]);
    assert_eq!(
        s.get("META").and_then(|m| m.list_date),
        NaiveDate::from_ymd_opt(2004, 2, 4)
    );
    assert_eq!(
        s.get("FB").and_then(|m| m.list_date),
        NaiveDate::from_ymd_opt(2012, 5, 18),
        "an inactive row keeps its own date"
    );
}

#[test]
fn a_predecessor_without_a_listing_date_leaves_the_successor_without_one() {
    let mut fb = with_ids(
        row("FB", "Facebook", false),
        Some("BBG000MM2P62"),
        None,
        None,
    );
    fb.list_date = None;
    let mut meta = with_ids(row("META", "Meta", true), Some("BBG000MM2P62"), None, None);
    meta.list_date = Some(day(1));
    let s = market(vec![fb, meta]);
    assert_eq!(s.get("META").and_then(|m| m.list_date), None);
}
