//! Unit tests of the guard rails: settings and their ranges, staleness, and the job's own
//! change judged from the audited state.
use super::*;

#[test]
fn guards_section_overrides_one_family_and_keeps_the_rest() {
    let table: toml::Table = toml::from_str("max_deleted_entries = 9\n[families.market_cap]\nrefuse_empty = false\nmax_removed_share = 0.9\n").unwrap();
    let config = GuardConfig::from_toml(&table).unwrap();
    assert_eq!(config.max_deleted_entries, 9);
    assert_eq!(config.for_family(Family::MarketCap).max_removed_share, 0.9);
    assert_eq!(config.for_family(Family::Ipos).max_removed_share, 1.0);
}

#[test]
fn unknown_guard_keys_and_families_are_errors() {
    let table: toml::Table = toml::from_str("bogus = 1\n").unwrap();
    assert!(GuardConfig::from_toml(&table)
        .unwrap_err()
        .contains("bogus"));
    let table: toml::Table =
        toml::from_str("[families.nope]\nrefuse_empty = true\nmax_removed_share = 0.1\n").unwrap();
    assert!(GuardConfig::from_toml(&table).unwrap_err().contains("nope"));
}

#[test]
fn guard_settings_outside_their_ranges_are_refused_naming_key_and_range() {
    for (text, expected) in [
        (
            "max_missing_close_share = 1.5",
            "max_missing_close_share = 1.5 is outside the allowed range [0, 1]",
        ),
        (
            "[families.etfs]\nrefuse_empty = true\nmax_removed_share = -0.1",
            "families.etfs.max_removed_share = -0.1",
        ),
        (
            "max_as_of_lag_days = -1",
            "max_as_of_lag_days = -1 is outside the allowed range 0..=3650 days",
        ),
        ("max_age_days = 99999999999", "max_age_days = 99999999999"),
    ] {
        let table: toml::Table = toml::from_str(text).unwrap();
        let err = GuardConfig::from_toml(&table).unwrap_err();
        assert!(err.contains(expected), "{err}");
    }
}

fn fresh() -> InputFreshness {
    let day = NaiveDate::from_ymd_opt(2026, 3, 2).unwrap();
    InputFreshness {
        as_of: day,
        latest_price_date: Some(day),
        today: day,
        active_symbols: 0,
        active_without_close_on_as_of: 0,
    }
}

/// The delta a diff makes from `live` to `desired` (a plain ticker list) for the guard: the
/// members of `live` missing from `desired` removed.
fn delta(key: &EntryKey, live: Option<&Value>, desired: Option<Value>) -> Delta {
    use crate::domain::diff::{EntryChange, ListDelta, RemovedMember};
    use crate::domain::reasons::{Reason, ReasonCode};
    let kept: HashSet<&str> = desired
        .as_ref()
        .map(|d| {
            member_lists(d)
                .into_iter()
                .flat_map(|(_, m)| m)
                .map(|m| m.ticker)
                .collect()
        })
        .unwrap_or_default();
    let removed = live
        .map(|l| {
            member_lists(l)
                .into_iter()
                .flat_map(|(_, m)| m)
                .filter(|m| !kept.contains(m.ticker))
                .map(|m| RemovedMember {
                    ticker: m.ticker.to_owned(),
                    position: m.position,
                    reason: Reason {
                        code: ReasonCode::ManualDrift,
                        detail: Value::Null,
                    },
                })
                .collect()
        })
        .unwrap_or_default();
    let op = match (live, &desired) {
        (None, _) => Op::Create,
        (Some(_), None) => Op::Delete,
        _ => Op::Update,
    };
    Delta {
        op,
        family: Family::MarketCap,
        key: key.clone(),
        row_id: live.map(|_| 1),
        hash_before: None,
        hash_after: None,
        value_after: desired.map(Into::into),
        change: EntryChange {
            lists: vec![ListDelta {
                path: ListPath::Root,
                len_after: 0,
                added: Vec::new(),
                removed,
                changed: Vec::new(),
            }],
            ..EntryChange::default()
        },
    }
}

#[test]
fn putting_back_what_the_log_says_is_not_a_mass_change() {
    let key = EntryKey::new("stock_universe", "market_cap", "mega_cap");
    let logged = serde_json::json!(["AAA", "BBB", "CCC", "DDD"]);
    let edited = serde_json::json!(["ZZZ"]);
    let current = [CurrentEntry {
        id: 1,
        key: key.clone(),
        value: edited.clone(),
    }];
    let deltas = [delta(&key, Some(&edited), Some(logged.clone()))];
    let config = GuardConfig::default();
    let judged_from_the_edit = check(&config, &fresh(), &deltas, &current, &AuditedDrift::new());
    assert!(matches!(
        judged_from_the_edit[..],
        [Refusal::MassRemoval {
            removed: 1,
            members_before: 1,
            ..
        }]
    ));
    let audited = AuditedDrift::from([(key.clone(), Some(logged.clone()))]);
    assert_eq!(
        check(&config, &fresh(), &deltas, &current, &audited),
        Vec::new()
    );

    // The job's own change still counts: from the logged four to one is a mass removal.
    let deltas = [delta(&key, Some(&edited), Some(serde_json::json!(["AAA"])))];
    let refusals = check(&config, &fresh(), &deltas, &current, &audited);
    assert!(
        matches!(
            refusals[..],
            [Refusal::MassRemoval {
                removed: 3,
                members_before: 4,
                ..
            }]
        ),
        "{refusals:?}"
    );
}

#[test]
fn hand_inserted_rows_removed_are_not_a_mass_deletion_but_logged_ones_are() {
    let config = GuardConfig::default();
    let keys: Vec<EntryKey> = (0..8)
        .map(|i| EntryKey::new("stock_universe", "market_cap", format!("hand_{i}")))
        .collect();
    let value = serde_json::json!(["AAA"]);
    let current: Vec<CurrentEntry> = keys
        .iter()
        .map(|k| CurrentEntry {
            id: 1,
            key: k.clone(),
            value: value.clone(),
        })
        .collect();
    let deltas: Vec<Delta> = keys.iter().map(|k| delta(k, Some(&value), None)).collect();
    let inserted: AuditedDrift = keys.iter().map(|k| (k.clone(), None)).collect();
    assert_eq!(
        check(&config, &fresh(), &deltas, &current, &inserted),
        Vec::new()
    );
    let logged = check(&config, &fresh(), &deltas, &current, &AuditedDrift::new());
    assert!(
        logged
            .iter()
            .any(|r| matches!(r, Refusal::MassDeletion { .. })),
        "{logged:?}"
    );
}

#[test]
fn stale_and_incomplete_inputs_are_refused() {
    let day = |d: u32| NaiveDate::from_ymd_opt(2026, 3, d).unwrap();
    let input = InputFreshness {
        as_of: day(1),
        latest_price_date: Some(day(20)),
        today: day(20),
        active_symbols: 100,
        active_without_close_on_as_of: 50,
    };
    let refusals = check(
        &GuardConfig::default(),
        &input,
        &[],
        &[],
        &AuditedDrift::new(),
    );
    assert!(matches!(refusals[0], Refusal::StaleAsOf { .. }));
    assert!(matches!(refusals[1], Refusal::ImportIncomplete { .. }));
    assert_eq!(refusals.len(), 2);
}
