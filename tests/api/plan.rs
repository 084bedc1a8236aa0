//! The catalog computed from real rows, and `plan` against empty, legacy-filled and mixed tables.

use crate::helpers::{live_hashes, on_both_stores, small_market, Backend, TestDb};
use serde_json::{json, Value};
use tickstock_cache_sync::domain::diff::Op;

fn tickers(value: &Value) -> Vec<String> {
    let list = value
        .get("stocks")
        .or_else(|| value.get("etfs"))
        .unwrap_or(value);
    list.as_array()
        .expect("a member list")
        .iter()
        .map(|m| {
            m.as_str()
                .or_else(|| m.get("ticker").and_then(Value::as_str))
                .or_else(|| m.get("symbol").and_then(Value::as_str))
                .unwrap()
                .to_owned()
        })
        .collect()
}

async fn load_small_market_sql(db: &TestDb) {
    let sql = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/small_market.sql"
    ))
    .unwrap();
    db.exec(&sql).await;
}

async fn the_hand_written_market_gives_the_hand_written_catalog(backend: Backend) {
    let owner = TestDb::on(backend).await;
    let db = &owner;
    load_small_market_sql(db).await;
    let report = db.run().await;
    assert_eq!(report.as_of.to_string(), "2026-03-02");
    assert_eq!(report.input.cap_fallbacks.get("stale_close"), Some(&1));
    assert_eq!(report.input.cap_fallbacks.get("missing_shares"), Some(&1));

    let band = |key: &'static str| async move {
        tickers(&db.value("stock_universe", "market_cap", key).await.unwrap())
    };
    assert_eq!(
        band("mega_cap").await,
        ["NVDA", "AAPL", "GOOGL", "MSFT", "META", "BRK.B", "BIGB"]
    );
    assert_eq!(band("large_cap").await, ["TENB"]);
    assert_eq!(
        band("mid_cap").await,
        ["TENL", "BF-B", "OILX", "TIEA", "TIEB", "STAL", "TWOB"]
    );
    assert_eq!(
        band("small_cap").await,
        ["NOSH", "NOSC", "RCNT", "UNKN", "THRM"]
    );
    assert_eq!(band("micro_cap").await, ["FIFM"]);

    let large = db
        .value("stock_universe", "market_cap", "large_cap")
        .await
        .unwrap();
    assert_eq!(
        large,
        json!({"count": 1, "stocks": [{
            "ticker": "TENB", "name": "Tenfold Semiconductor Inc.", "rank": 1, "sector": "Technology",
            "industry": "Semiconductors", "exchange": "XNAS", "market": "stocks", "market_cap": 10_000_000_000_i64
        }]})
    );

    let sector = |key: &'static str| async move {
        db.value("stock_universe", "sector_leaders", key)
            .await
            .map(|v| tickers(&v))
    };
    assert_eq!(
        sector("top_10_technology").await.unwrap(),
        ["NVDA", "AAPL", "MSFT", "TENB"]
    );
    assert_eq!(
        sector("top_10_healthcare").await.unwrap(),
        ["TWOB", "THRM", "FIFM", "TINY"]
    );
    assert_eq!(
        sector("top_10_financial_services").await.unwrap(),
        ["BRK.B", "BIGB", "TENL"]
    );
    assert_eq!(
        sector("top_10_industrials").await.unwrap(),
        ["TIEA", "TIEB"]
    );
    assert_eq!(
        sector("top_10_consumer_defensive").await.unwrap(),
        ["BF-B", "STAL"]
    );
    assert_eq!(sector("top_10_energy").await.unwrap(), ["OILX"]);
    assert_eq!(sector("top_10_unknown").await, None);
    let sector_keys: Vec<String> = db
        .sql("select key from cache_entries where type = 'stock_universe' and name = 'sector_leaders' order by key")
        .scalars()
        .await;
    assert_eq!(sector_keys.len(), 8, "{sector_keys:?}");

    let industry: Vec<(String, Value)> = db
        .sql("select key, value from cache_entries where type = 'stock_universe' and name = 'industry'")
        .fetch_all()
        .await;
    assert_eq!(
        industry.len(),
        1,
        "only Biotechnology has 3+ eligible stocks"
    );
    assert_eq!(industry[0].0, "biotechnology");
    assert_eq!(industry[0].1["sector"], "Healthcare");
    assert_eq!(tickers(&industry[0].1), ["TWOB", "THRM", "FIFM", "TINY"]);

    assert_eq!(
        db.value("themes", "Ai", "list").await.unwrap(),
        json!(["GOOGL", "MSFT", "NVDA"])
    );
    assert_eq!(
        db.value("themes", "Cloud", "list").await.unwrap(),
        json!(["MSFT"])
    );
    assert_eq!(
        db.value("themes", "Crypto", "list").await.unwrap(),
        json!([])
    );
    assert_eq!(
        tickers(&db.value("stock_universe", "themes", "ai").await.unwrap()),
        ["GOOGL", "MSFT", "NVDA"]
    );

    let ipos = db
        .value("stock_universe", "ipos", "recent_ipos")
        .await
        .unwrap();
    assert_eq!(tickers(&ipos), ["NEWE", "RCNT"]);

    let etf = |name: &'static str, key: &'static str| async move {
        db.value("etf_universe", name, key).await.unwrap()
    };
    assert_eq!(
        etf("Broad Market ETFs", "etf_broad_market").await,
        json!(["SPY"])
    );
    assert_eq!(etf("Bond ETFs", "etf_bonds").await, json!(["AGG"]));
    assert_eq!(etf("Growth ETFs", "etf_growth").await, json!(["VUG"]));
    assert_eq!(
        etf("International ETFs", "etf_international").await,
        json!(["EEM"])
    );
    assert_eq!(etf("Factor ETFs", "etf_factor").await, json!(["NEWE"]));
    assert_eq!(
        etf("All ETFs", "etf_all").await,
        json!(["AGG", "EEM", "NEWE", "QQQ", "SPY", "VUG"])
    );
    assert_eq!(
        etf("Bond ETFs", "etf_bonds_detailed").await,
        json!({"count": 1, "etfs": [{"symbol": "AGG", "name": "iShares Core U.S. Aggregate Bond ETF", "etf_type": "Fixed Income", "issuer": "iShares"}]})
    );
    assert_eq!(
        etf("complete", "top_100").await,
        json!(["SPY", "QQQ", "VUG", "AGG", "EEM", "NEWE"])
    );

    let stats = db
        .value("stock_stats", "universe", "summary")
        .await
        .unwrap();
    assert_eq!(stats["overview"]["total_stocks"], 22);
    assert_eq!(stats["overview"]["last_updated"], "2026-03-02");
    let combo = db
        .value("stock_etf_combo", "stock_etf_test", "combo_test")
        .await
        .unwrap();
    assert_eq!(
        tickers(&combo).len(),
        22 + 5,
        "every eligible stock plus SPY QQQ VUG AGG EEM"
    );

    // Nothing inactive or non-CS anywhere.
    let all: Vec<String> = db
        .sql("select cast(value as text) from cache_entries")
        .scalars()
        .await;
    assert!(all
        .iter()
        .all(|v| !v.contains("GONE") && !v.contains("ADRX")));
}

on_both_stores!(the_hand_written_market_gives_the_hand_written_catalog);

async fn plan_against_an_empty_table_is_all_creates_and_writes_nothing(backend: Backend) {
    let db = TestDb::on(backend).await;
    db.load(&small_market(7, 1), 1).await;
    let plan = db.plan().await;
    assert!(plan.has_changes());
    assert!(plan
        .deltas
        .iter()
        .all(|d| d.op == Op::Create && d.hash_before.is_none()));
    assert!(plan.deltas.len() >= 60, "{} entries", plan.deltas.len());
    assert_eq!(db.count("cache_entries").await, 0);
    assert_eq!(db.count("cache_sync_run").await, 0);
    // Planning twice gives the same hashes: nothing depends on the clock or on row order.
    let again = db.plan().await;
    let hashes = |p: &tickstock_cache_sync::report::PlanReport| {
        p.deltas
            .iter()
            .map(|d| (d.key.clone(), d.hash_after))
            .collect::<Vec<_>>()
    };
    assert_eq!(hashes(&plan), hashes(&again));
    assert_eq!(plan.config_hash, again.config_hash);
}

on_both_stores!(plan_against_an_empty_table_is_all_creates_and_writes_nothing);

async fn legacy_rows_are_planned_as_updates_and_adopted_in_place(backend: Backend) {
    let db = TestDb::on(backend).await;
    db.load(&small_market(8, 1), 1).await;
    db.exec(
        "insert into cache_entries (type, name, key, value, environment, created_at, updated_at) values
         ('stock_universe', 'market_cap', 'large_cap', '{\"count\": 1, \"stocks\": [{\"ticker\": \"OLD\", \"rank\": 1}]}', 'DEFAULT', '2024-01-01', '2024-01-01'),
         ('themes', 'Ai', 'list', '[\"NVDA\", \"OLD\"]', 'DEFAULT', '2024-01-01', '2024-01-01'),
         ('stock_universe', 'sector_leaders', 'top_10_gone_sector', '{\"count\": 0, \"stocks\": []}', 'DEFAULT', '2024-01-01', '2024-01-01')",
    )
    .await;
    let before = db.rows("true").await;
    let plan = db.plan().await;
    let find = |name: &str, key: &str| {
        plan.deltas
            .iter()
            .find(|d| d.name == name && d.key == key)
            .unwrap()
    };
    let large = find("market_cap", "large_cap");
    assert_eq!(large.op, Op::Update);
    assert!(large.removed.iter().any(|m| m.ticker == "OLD"));
    assert_eq!(find("Ai", "list").op, Op::Update);
    assert_eq!(find("sector_leaders", "top_10_gone_sector").op, Op::Delete);

    db.run_forced().await;
    let after = db.rows("true").await;
    let id_of =
        |rows: &[(i64, String, String)], key: &str| rows.iter().find(|r| r.1 == key).map(|r| r.0);
    for key in ["stock_universe/market_cap/large_cap", "themes/Ai/list"] {
        assert_eq!(
            id_of(&before, key),
            id_of(&after, key),
            "{key} keeps its id"
        );
    }
    assert_eq!(
        id_of(&after, "stock_universe/sector_leaders/top_10_gone_sector"),
        None
    );
    let stale: i64 = db
        .sql("select count(*) from cache_entries where environment = 'DEFAULT' and not updated_at > '2025-01-01'")
        .scalar()
        .await;
    assert_eq!(stale, 0, "every written row has a fresh updated_at");
}

on_both_stores!(legacy_rows_are_planned_as_updates_and_adopted_in_place);

const UNOWNED: &str = "insert into cache_entries (type, name, key, value, environment) values
    ('app_settings', 'ui', 'theme', '{\"dark\": true}', 'DEFAULT'),
    ('cache_config', 'industry_groups', 'tech', '[\"Software\"]', 'DEFAULT'),
    ('themes', 'Custom', 'list', '[\"AAPL\"]', 'DEFAULT'),
    ('stock_universe', 'watchlists', 'mine', '[\"AAPL\"]', 'DEFAULT'),
    ('stock_universe', 'market_cap', 'large_cap', '[\"ZZZ\"]', 'PRODUCTION'),
    ('custom_type', 'x', 'y', '1', 'DEFAULT')";

async fn unowned_rows_stay_out_of_the_plan_and_untouched(backend: Backend) {
    let db = TestDb::on(backend).await;
    db.load(&small_market(9, 1), 1).await;
    db.exec(UNOWNED).await;
    let unowned = "not (environment = 'DEFAULT' and type in ('stock_universe', 'etf_universe', 'themes', 'stock_stats', 'stock_etf_combo') and name not in ('Custom', 'watchlists'))";
    let before = db.raw_rows(unowned).await;
    assert_eq!(before.len(), 6);
    let plan = db.plan().await;
    for d in &plan.deltas {
        assert!(
            !["Custom", "watchlists"].contains(&d.name.as_str()),
            "{d:?}"
        );
        assert!(!["app_settings", "cache_config", "custom_type"].contains(&d.entry_type.as_str()));
    }
    assert!(plan
        .warnings
        .iter()
        .any(|w| w.source.contains("industry_groups")));
    db.run().await;
    assert_eq!(
        db.raw_rows(unowned).await,
        before,
        "unowned rows byte-identical after a run"
    );
    assert!(!live_hashes(&db).await.is_empty());
}

on_both_stores!(unowned_rows_stay_out_of_the_plan_and_untouched);

async fn cache_config_rows_shape_the_catalog(backend: Backend) {
    let db = TestDb::on(backend).await;
    db.load(&small_market(10, 1), 1).await;
    db.exec(
        "insert into cache_entries (type, name, key, value, environment) values
         ('cache_config', 'theme_definitions', 'megacaps', '[\"AAPL\", \"MSFT\", \"NOPE\"]', 'DEFAULT'),
         ('cache_config', 'etf_categories', 'etf_growth', '\"Growth Funds\"', 'DEFAULT'),
         ('cache_config', 'market_cap_thresholds', 'micro_cap', '0', 'DEFAULT')",
    )
    .await;
    db.run().await;
    assert_eq!(
        db.value("themes", "Megacaps", "list").await.unwrap(),
        json!(["AAPL", "MSFT"])
    );
    assert!(db
        .value("etf_universe", "Growth Funds", "etf_growth")
        .await
        .is_some());
    assert!(db
        .value("etf_universe", "Growth ETFs", "etf_growth")
        .await
        .is_none());
    let micro = db
        .value("stock_universe", "market_cap", "micro_cap")
        .await
        .unwrap();
    let smallest = micro["stocks"].as_array().unwrap().last().unwrap()["market_cap"]
        .as_i64()
        .unwrap();
    assert!(
        smallest < 50_000_000,
        "threshold 0 takes every positive cap below small_cap"
    );
}

on_both_stores!(cache_config_rows_shape_the_catalog);
