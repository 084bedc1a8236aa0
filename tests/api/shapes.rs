//! Value shapes that changed to follow the legacy job (issue 11, item 6): a table written in the
//! previous version's shapes takes a one-time update that the guard rails allow, and the next
//! run changes nothing.

use crate::helpers::{run_request, small_market, TestDb};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use tickstock_cache_sync::domain::config::CatalogConfig;
use tickstock_cache_sync::domain::diff::Op;
use tickstock_cache_sync::job::{self, JobConfig};

type Row = (String, String, String, Value);

async fn owned_rows(db: &TestDb) -> Vec<Row> {
    db.sql(
        "select type, name, key, value from cache_entries
         where environment = 'DEFAULT' and type not in ('app_settings', 'cache_config')
         order by type, name, key",
    )
    .fetch_all()
    .await
}

fn sorted_tickers(value: &Value) -> Value {
    let mut tickers: Vec<String> = serde_json::from_value(value.clone()).unwrap();
    tickers.sort();
    json!(tickers)
}

/// The essential ETFs of `present` in the configuration's order, as the previous version listed
/// them.
fn in_essential_order(present: &[Value], ticker_of: impl Fn(&Value) -> String) -> Vec<Value> {
    CatalogConfig::default()
        .essential_etfs
        .iter()
        .filter_map(|t| present.iter().find(|e| ticker_of(e) == *t).cloned())
        .collect()
}

/// What the previous version wrote for an entry whose shape changed, else the value itself.
fn previous_shape(entry_type: &str, name: &str, key: &str, value: &Value) -> Value {
    match (entry_type, name, key) {
        ("stock_universe", "complete", "all_stocks") | ("etf_universe", "complete", "all_etfs") => {
            sorted_tickers(value)
        }
        ("stock_etf_combo", "stock_etf_test", "combo_test") => {
            let items = value.as_array().unwrap();
            let (stocks, etfs) = items.split_at(items.len().min(50));
            let mut old = stocks.to_vec();
            old.extend(in_essential_order(etfs, |e| e.as_str().unwrap().to_owned()));
            json!(old)
        }
        ("stock_etf_combo", "stock_etf_test", "combo_test_detailed") => {
            let stocks: Vec<Value> = value["stocks"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| {
                    let mut s = s.clone();
                    s.as_object_mut().unwrap().remove("type");
                    s
                })
                .collect();
            let etfs: Vec<Value> = value["etfs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| {
                    json!({"symbol": e["ticker"], "name": e["name"], "etf_type": e["etf_type"],
                           "issuer": e["issuer"]})
                })
                .collect();
            let etfs = in_essential_order(&etfs, |e| e["symbol"].as_str().unwrap().to_owned());
            json!({"count": value["count"], "stocks": stocks, "etfs": etfs})
        }
        ("stock_stats", "universe", "summary") => {
            let mut old = value.clone();
            let overview = old["overview"].as_object_mut().unwrap();
            overview.remove("unique_exchanges");
            overview.remove("unique_markets");
            old
        }
        _ => value.clone(),
    }
}

#[tokio::test]
async fn a_table_in_the_previous_versions_shapes_takes_one_update_the_guards_allow_then_converges()
{
    let market = small_market(23, 1);
    let current = TestDb::new().await;
    current.load(&market, 1).await;
    job::run(
        current.store.as_ref(),
        &JobConfig::default(),
        &run_request(false),
    )
    .await
    .expect("the build applies");
    let now = owned_rows(&current).await;

    // The same market and table as the previous version left them.
    let previous = TestDb::new().await;
    previous.load(&market, 1).await;
    let mut reshaped = BTreeSet::new();
    for (entry_type, name, key, value) in &now {
        let old = previous_shape(entry_type, name, key, value);
        if old != *value {
            reshaped.insert(format!("{entry_type}/{name}/{key}"));
        }
        previous
            .sql(
                "insert into cache_entries (type, name, key, value, environment)
                 values ($1, $2, $3, $4, 'DEFAULT')",
            )
            .bind(entry_type.as_str())
            .bind(name.as_str())
            .bind(key.as_str())
            .bind(&old)
            .execute()
            .await;
    }
    assert!(
        reshaped.contains("stock_universe/complete/all_stocks")
            && reshaped.contains("stock_etf_combo/stock_etf_test/combo_test_detailed")
            && reshaped.contains("stock_stats/universe/summary"),
        "the market exercises the changed shapes: {reshaped:?}"
    );

    // Not forced: the guard rails allow the one-time update (re-orders and renamed record
    // fields remove no member), and it touches exactly the reshaped entries.
    let report = job::run(
        previous.store.as_ref(),
        &JobConfig::default(),
        &run_request(false),
    )
    .await
    .expect("the guard rails allow the one-time update");
    let updated: BTreeSet<String> = report
        .deltas
        .iter()
        .map(|d| format!("{}/{}/{}", d.entry_type, d.name, d.key))
        .collect();
    assert_eq!(updated, reshaped);
    assert!(report.deltas.iter().all(|d| d.op == Op::Update));
    assert!(report
        .deltas
        .iter()
        .all(|d| d.removed.is_empty() && d.added.is_empty()));
    assert_eq!(
        owned_rows(&previous).await,
        now,
        "the values of a fresh build"
    );

    let again = job::run(
        previous.store.as_ref(),
        &JobConfig::default(),
        &run_request(false),
    )
    .await
    .unwrap();
    assert!(again.deltas.is_empty(), "converged: {:?}", again.deltas);
}
