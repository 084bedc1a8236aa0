//! Synthetic data never lands in a real market (issue 12.2), and the production-shaped price
//! history (issue 14.1), on both stores.

use crate::helpers::{
    cache_sync_cli, cache_sync_command, describe, live_hashes, on_both_stores, small_market, text,
    Backend, TestDb,
};
use tickstock_cache_sync::devtools::loader::{foreign_rows, load_history, ForeignRows};
use tickstock_cache_sync::devtools::market::SyntheticMarket;

/// Two symbols and three bars a real market (Phase 2) wrote.
async fn write_a_real_market(db: &TestDb) {
    db.exec(
        "insert into symbols (symbol, name, type, active) values
             ('ZZREAL', 'Real Corp', 'CS', true), ('ZZOTHER', 'Other Corp', 'CS', true);
         insert into ohlcv_daily (symbol, date, close) values
             ('ZZREAL', '2026-01-02', 10), ('ZZREAL', '2026-01-05', 11),
             ('ZZOTHER', '2026-01-05', 12);",
    )
    .await;
}

const LOAD: [&str; 8] = [
    "fixtures", "load", "--stocks", "60", "--etfs", "6", "--days", "2",
];

async fn fixtures_load_refuses_a_database_with_rows_it_did_not_write_unless_told(backend: Backend) {
    // Its own rows are recognised: loading twice (and the next day) is fine.
    let own = TestDb::on(backend).await;
    for args in [
        &LOAD[..],
        &LOAD[..],
        &[&LOAD[..], &["--as-of-day", "1"]].concat(),
    ] {
        let out = cache_sync_cli(&own, args);
        assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    }
    assert_eq!(
        foreign_rows(&own.database).await.unwrap(),
        ForeignRows::default()
    );

    let db = TestDb::on(backend).await;
    write_a_real_market(&db).await;
    let before = (
        db.table_text("symbols", "true", "symbol").await,
        db.table_text("ohlcv_daily", "true", "symbol, date").await,
    );
    let out = cache_sync_cli(&db, &LOAD);
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    let stderr = text(&out.stderr);
    for needle in [
        "symbols holds 2 rows the fixtures did not write (e.g. ZZOTHER)",
        "ohlcv_daily holds 3 bars the fixtures did not write (e.g. ZZOTHER)",
        "--allow-foreign-rows",
    ] {
        assert!(stderr.contains(needle), "`{needle}` in: {stderr}");
    }
    let after = (
        db.table_text("symbols", "true", "symbol").await,
        db.table_text("ohlcv_daily", "true", "symbol, date").await,
    );
    assert_eq!(after, before, "nothing written");

    let forced = cache_sync_cli(&db, &[&LOAD[..], &["--allow-foreign-rows"]].concat());
    assert_eq!(forced.status.code(), Some(0), "{}", describe(&forced));
    assert!(db.count("symbols").await > 60);
    // The real rows are still not the fixtures' own: the next load is refused again.
    let foreign = foreign_rows(&db.database).await.unwrap();
    assert_eq!((foreign.symbols, foreign.bars), (2, 3), "{foreign}");
    let again = cache_sync_cli(&db, &LOAD);
    assert_eq!(again.status.code(), Some(3), "{}", describe(&again));
}

on_both_stores!(fixtures_load_refuses_a_database_with_rows_it_did_not_write_unless_told);

async fn the_demo_ignores_database_url_and_refuses_a_named_database_with_a_real_market(
    backend: Backend,
) {
    let db = TestDb::on(backend).await;
    write_a_real_market(&db).await;
    let before = db.table_text("symbols", "true", "symbol").await;
    let dir = std::env::temp_dir().join(format!("{}-demo", db.name));
    std::fs::create_dir_all(&dir).unwrap();

    // DATABASE_URL names the "production" database: the demo uses its own file anyway.
    let out = cache_sync_command(&db, &["demo"])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(
        text(&out.stdout).contains("ignores DATABASE_URL"),
        "{}",
        describe(&out)
    );
    assert!(dir.join("cache-sync-demo.sqlite").exists());
    assert_eq!(db.table_text("symbols", "true", "symbol").await, before);
    assert_eq!(db.count("cache_sync_run").await, 0);

    // Named on its command line, the database is used only if it holds no real market.
    let out = cache_sync_command(&db, &["demo", "--database", &db.url])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    assert!(
        text(&out.stderr).contains("symbols holds 2 rows the fixtures did not write"),
        "{}",
        describe(&out)
    );
    assert_eq!(db.table_text("symbols", "true", "symbol").await, before);
    assert_eq!(db.count("cache_sync_run").await, 0);
    std::fs::remove_dir_all(&dir).ok();
}

on_both_stores!(the_demo_ignores_database_url_and_refuses_a_named_database_with_a_real_market);

async fn history_gives_every_priced_symbol_older_bars_and_leaves_the_catalog_as_it_was(
    backend: Backend,
) {
    let market = small_market(141, 2);
    let with = TestDb::on(backend).await;
    with.load(&market, 2).await;
    let priced_on_day_1 = market.bars_for_day(1).len() as i64;
    let written = load_history(&with.database, &market, 40).await.unwrap();
    assert_eq!(written.bars as i64, priced_on_day_1 * 40);
    // Loading the history again replaces it.
    load_history(&with.database, &market, 40).await.unwrap();
    let dates = SyntheticMarket::history_dates(40);
    let per_symbol: Vec<(String, i64, String, String)> = with
        .sql(
            "select symbol, count(*), cast(min(date) as text), cast(max(date) as text)
             from ohlcv_daily where date < $1 group by symbol order by symbol",
        )
        .bind(market.date_of_day(1))
        .fetch_all()
        .await;
    assert_eq!(per_symbol.len() as i64, priced_on_day_1);
    let (first, last) = (dates[0].to_string(), dates[39].to_string());
    for (symbol, count, min, max) in &per_symbol {
        assert_eq!((*count, min, max), (40, &first, &last), "{symbol}");
    }
    assert_eq!(
        foreign_rows(&with.database).await.unwrap(),
        ForeignRows::default()
    );

    let without = TestDb::on(backend).await;
    without.load(&market, 2).await;
    with.run().await;
    without.run().await;
    assert_eq!(live_hashes(&with).await, live_hashes(&without).await);
}

on_both_stores!(history_gives_every_priced_symbol_older_bars_and_leaves_the_catalog_as_it_was);
