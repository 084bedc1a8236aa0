//! The audit log's stored form of a run (`log_form`): replayed through JSON it rebuilds every
//! value exactly, and a night of new figures stores each figure once.

use super::*;
use crate::domain::log_form::{LogForm, RunValues};
use crate::domain::replay::ReplayError;
use std::sync::Arc;

/// The deltas of a night that moves the market from `old` to `new`, with the rows before.
fn night(old: &[SymbolRow], new: &[SymbolRow]) -> (Vec<CurrentEntry>, Vec<Delta>) {
    let config = CatalogConfig::default();
    let all = FamilySelection::all();
    let current = rows_holding(&compute_catalog(&securities(old.to_vec()), &config, &all));
    let market = securities(new.to_vec());
    let catalog = compute_catalog(&market, &config, &all);
    let deltas = diff(
        &catalog,
        &current,
        &context(&market, &config, &current),
        &LiveRowFacts::default(),
    );
    (current, deltas)
}

/// Replays `deltas` onto `current` as the log stores them: each stored change and the run's
/// values through JSON, the values attached to the changes that take them as the log reader
/// does. Checks every rebuilt value against the delta's hash.
fn replay_log_form(
    current: &[CurrentEntry],
    deltas: &[Delta],
) -> Result<BTreeMap<EntryKey, Value>, String> {
    let form = LogForm::of(deltas);
    let values: Option<Arc<RunValues>> = form.values.as_ref().map(|v| {
        let text = serde_json::to_string(v).unwrap();
        Arc::new(serde_json::from_str(&text).unwrap())
    });
    let mut state: BTreeMap<EntryKey, Value> = current
        .iter()
        .map(|c| (c.key.clone(), c.value.clone()))
        .collect();
    for (delta, change) in deltas.iter().zip(&form.changes) {
        let mut logged = stored(change);
        if logged.revalued {
            logged.run_values = values.clone();
        }
        let applied = apply_change(state.get(&delta.key), delta.op, &logged)
            .map_err(|e| format!("{}: {e}", delta.key))?;
        match applied {
            Some(value) => {
                if Some(hash_value(&value)) != delta.hash_after {
                    return Err(format!("{} rebuilds another value", delta.key));
                }
                state.insert(delta.key.clone(), value);
            }
            None => {
                state.remove(&delta.key);
            }
        }
    }
    Ok(state)
}

/// `rows` with every market cap scaled by `per_mille` / 1000 (a night of new prices), except
/// the rows `keep` marks.
fn repriced(rows: &[SymbolRow], per_mille: i64, keep: &[bool]) -> Vec<SymbolRow> {
    rows.iter()
        .zip(keep.iter().cycle())
        .map(|(row, keep)| {
            let mut row = row.clone();
            if !keep {
                row.weighted_shares_outstanding = row
                    .weighted_shares_outstanding
                    .map(|s| s * per_mille / 1000);
            }
            row
        })
        .collect()
}

fn caps_by_ticker(rows: &[SymbolRow]) -> Vec<(String, i64)> {
    rows.iter()
        .map(|r| (r.symbol.clone(), r.weighted_shares_outstanding.unwrap()))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn the_logs_stored_form_replays_every_delta_exactly(
        old in random_rows(),
        other in random_rows(),
        per_mille in 900i64..1100,
        keep in proptest::collection::vec(proptest::bool::weighted(0.2), 1..5),
        reshuffle in proptest::bool::ANY,
    ) {
        // Most nights only reprice; some also move stocks across bands and sectors.
        let new = if reshuffle { other } else { repriced(&old, per_mille, &keep) };
        let (current, deltas) = night(&old, &new);
        let replayed = replay_log_form(&current, &deltas);
        prop_assert!(replayed.is_ok(), "{:?}", replayed);
        let config = CatalogConfig::default();
        let wanted: BTreeMap<EntryKey, Value> = compute_catalog(&securities(new), &config, &FamilySelection::all())
            .entries
            .iter()
            .map(|(k, e)| (k.clone(), Value::clone(&e.value)))
            .collect();
        prop_assert_eq!(replayed.unwrap(), wanted);
    }
}

#[test]
fn a_night_of_new_figures_stores_each_figure_once_and_no_old_figures() {
    let old: Vec<SymbolRow> = [
        ("AAPL", 300 * B),
        ("MSFT", 250 * B),
        ("NVDA", 200 * B),
        ("AMD", 40 * B),
        ("CRM", 30 * B),
        ("COIN", 5 * B),
    ]
    .iter()
    .map(|(t, cap)| stock(t, *cap))
    .collect();
    // Every cap up 1%: no stock changes band or rank.
    let new = repriced(&old, 1010, &[false]);
    let (current, deltas) = night(&old, &new);
    let patched: Vec<&Delta> = deltas
        .iter()
        .filter(|d| d.op == Op::Update && d.change.value.is_none())
        .collect();
    let in_memory: usize = patched
        .iter()
        .flat_map(|d| d.change.lists.iter().flat_map(|l| &l.changed))
        .filter(|c| c.after.contains_key("market_cap"))
        .count();
    assert!(
        in_memory > old.len(),
        "each stock is in several patched lists: {in_memory} changed members"
    );

    let form = LogForm::of(&deltas);
    let values = form
        .values
        .as_ref()
        .expect("the night's new caps are stored");
    for (ticker, cap) in caps_by_ticker(&new) {
        assert_eq!(
            values.of(&ticker, "market_cap"),
            Some(&json!(cap)),
            "{ticker}"
        );
    }
    assert_eq!(values.len(), new.len(), "one figure per stock");
    for (delta, change) in deltas.iter().zip(&form.changes) {
        let logged = serde_json::to_string(change.as_ref()).unwrap();
        assert!(!logged.contains("\"before\""), "{}: {logged}", delta.key);
        if patched.iter().any(|p| p.key == delta.key) {
            assert!(change.revalued, "{}", delta.key);
            // Nothing moved, so no member change is left to store.
            assert!(
                change.lists.iter().all(|l| l.changed.is_empty()),
                "{}: {logged}",
                delta.key
            );
        }
    }
    let replayed = replay_log_form(&current, &deltas).unwrap();
    assert_eq!(replayed.len(), current.len());

    // Without its run's values a revalued change refuses to replay rather than rebuild stale
    // figures.
    let (delta, change) = deltas
        .iter()
        .zip(&form.changes)
        .find(|(_, c)| c.revalued)
        .unwrap();
    let before = current
        .iter()
        .find(|c| c.key == delta.key)
        .map(|c| &c.value);
    assert_eq!(
        apply_change(before, delta.op, &stored(change)),
        Err(ReplayError::MissingRunValues)
    );
}

#[test]
fn a_figure_two_lists_disagree_on_stays_in_each_list() {
    let mut values_a = json!({"ticker": "AAA", "rank": 1, "market_cap": 10});
    let current = vec![
        row(
            1,
            "stock_universe/market_cap/mega_cap",
            stocks(vec![values_a.clone()]),
        ),
        row(
            2,
            "stock_universe/market_leaders/top_100",
            stocks(vec![values_a.clone()]),
        ),
    ];
    values_a["market_cap"] = json!(11);
    let mut other = values_a.clone();
    other["market_cap"] = json!(12);
    let catalog = want(vec![
        (
            Family::MarketCap,
            "stock_universe/market_cap/mega_cap",
            stocks(vec![values_a]),
        ),
        (
            Family::MarketLeaders,
            "stock_universe/market_leaders/top_100",
            stocks(vec![other]),
        ),
    ]);
    let deltas = plan(&catalog, &current);
    assert_eq!(deltas.len(), 2);
    let form = LogForm::of(&deltas);
    assert!(form.values.is_none(), "{:?}", form.values);
    for change in &form.changes {
        assert!(!change.revalued);
        assert_eq!(change.lists[0].changed.len(), 1);
    }
    replay_log_form(&current, &deltas).unwrap();
}
