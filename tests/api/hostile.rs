//! No bad row or setting stops the night (issue 12.3, SPEC §10): each bad row ends in a
//! completed run with its exclusion or default counted, names and keys that cannot fit their
//! column are shortened by the documented rule before anything is written (and `plan` shows
//! the same), bad settings are refused when loaded (exit 2, naming file, key and range),
//! `verify` survives an invalid `cache_config` row, a closed pipe ends `events` quietly, and
//! hostile rows drawn from generators never fail a run nor touch a row outside owned scopes.

use crate::helpers::{
    cache_sync_cli, cache_sync_command, describe, on_both_stores, run_request, small_market, text,
    Backend, TestDb,
};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config as ProptestConfig, TestRng, TestRunner};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use tickstock_cache_sync::devtools::market::{FixtureParams, SyntheticMarket};
use tickstock_cache_sync::job::JobConfig;

/// A 99-character industry with one `&`: its slug (`&` → `and`) is 101 characters.
fn long_industry() -> String {
    let head = "Specialty Industrial Machinery & Components";
    format!("{head}{}", " x".repeat((99 - head.len()) / 2))
        .chars()
        .take(99)
        .collect()
}

/// The longest name and key written to `cache_entries` (characters, as varchar counts them).
async fn longest_identity(db: &TestDb) -> (i64, i64) {
    db.sql("select cast(max(length(name)) as bigint), cast(max(length(key)) as bigint) from cache_entries")
        .fetch_one::<(i64, i64)>()
        .await
}

/// Statements that store `value` (text) in a typed column: PostgreSQL needs the cast, SQLite
/// stores the text as it is (and keeps non-numbers as text in a numeric column).
fn typed(backend: Backend, placeholder: &str, sql_type: &str) -> String {
    match backend {
        Backend::Postgres => format!("cast({placeholder} as {sql_type})"),
        Backend::Sqlite => placeholder.to_owned(),
    }
}

async fn each_bad_row_ends_in_a_completed_run_with_its_exclusion_counted(backend: Backend) {
    let db = TestDb::on(backend).await;
    db.load(&small_market(1201, 2), 1).await;
    let industry = long_industry();
    assert_eq!(industry.chars().count(), 99);
    // Enough stocks to make it one of the top industries.
    db.sql(
        "update symbols set industry = $1 where symbol in
           (select symbol from symbols where type = 'CS' and active order by symbol limit 80)",
    )
    .bind(industry.as_str())
    .execute()
    .await;
    // A 50-character sector of `&`: `top_10_` + 150 characters.
    let sector = "&".repeat(50);
    db.sql(
        "update symbols set sector = $1 where symbol in
           (select symbol from symbols where type = 'CS' and active order by symbol desc limit 5)",
    )
    .bind(sector.as_str())
    .execute()
    .await;
    // A display name longer than `cache_entries.name`, and a threshold nobody can read.
    db.sql(
        "insert into cache_entries (type, name, key, value, environment) values
           ('cache_config', 'etf_categories', 'etf_long', $1, 'DEFAULT'),
           ('cache_config', 'market_cap_thresholds', 'large_cap', $2, 'DEFAULT')",
    )
    .bind(json!({"name": format!("Very Long ETFs {}", "y".repeat(140)), "include": ["a"]}))
    .bind(json!("lots"))
    .execute()
    .await;
    let stocks: Vec<String> = db
        .sql("select symbol from symbols where type = 'CS' and active and weighted_shares_outstanding > 0 order by symbol limit 3")
        .scalars()
        .await;
    let latest: String = db
        .sql("select cast(max(date) as text) from ohlcv_daily")
        .scalar()
        .await;
    // A close of 1e400 (beyond a double) on the latest day, with a usable market_cap column.
    let close = typed(backend, "$1", "numeric");
    let date = typed(backend, "$3", "date");
    db.sql(format!(
        "update ohlcv_daily set close = {close} where symbol = $2 and date = {date}"
    ))
    .bind("1e400")
    .bind(stocks[0].as_str())
    .bind(latest.as_str())
    .execute()
    .await;
    db.sql("update symbols set market_cap = 5000000000 where symbol = $1")
        .bind(stocks[0].as_str())
        .execute()
        .await;
    // Absurd assets under management on an ETF without a market cap.
    let aum = typed(backend, "$1", "numeric");
    db.sql(format!(
        "update symbols set market_cap = null, aum_millions = {aum} where symbol in
           (select symbol from symbols where type = 'ETF' and active order by symbol limit 1)"
    ))
    .bind("1e300")
    .execute()
    .await;
    // A value no number type holds: text in a numeric column (SQLite), NaN (PostgreSQL).
    let unreadable = match backend {
        Backend::Sqlite => "n/a",
        Backend::Postgres => "NaN",
    };
    db.sql(format!(
        "update ohlcv_daily set close = {close} where symbol = $2 and date = {date}"
    ))
    .bind(unreadable)
    .bind(stocks[1].as_str())
    .bind(latest.as_str())
    .execute()
    .await;
    if backend == Backend::Sqlite {
        db.sql("update symbols set market_cap = 'lots', weighted_shares_outstanding = 'many' where symbol = $1")
            .bind(stocks[2].as_str())
            .execute()
            .await;
    }

    let plan = db.plan().await;
    let report = db
        .try_run(&JobConfig::default(), run_request(false))
        .await
        .unwrap_or_else(|e| panic!("the night completes: {e}"));
    let input = &report.input;
    assert!(
        input.cap_fallbacks.get("bad_close") >= Some(&1),
        "{input:?}"
    );
    assert!(
        input.excluded.get("absurd_aum_millions") >= Some(&1),
        "{input:?}"
    );
    assert!(
        input.unreadable.get("ohlcv_daily.close") >= Some(&1),
        "{input:?}"
    );
    if backend == Backend::Sqlite {
        assert!(
            input.unreadable.get("symbols.market_cap") >= Some(&1),
            "{input:?}"
        );
        assert!(
            input.unreadable.get("symbols.weighted_shares_outstanding") >= Some(&1),
            "{input:?}"
        );
    }
    let warned = |needle: &str| {
        report
            .warnings
            .iter()
            .any(|w| w.message.contains(needle) || w.source.contains(needle))
    };
    assert!(
        warned("cache_config row market_cap_thresholds/large_cap"),
        "{:?}",
        report.warnings
    );
    assert!(warned("does not fit"), "{:?}", report.warnings);

    // Every identity fits its column, the long ones shortened by the rule (cut + `~` + hash).
    let (name, key) = longest_identity(&db).await;
    assert!(name <= 100 && key <= 100, "name {name}, key {key}");
    let industry_keys: Vec<String> = db
        .sql("select key from cache_entries where type = 'stock_universe' and name = 'industry'")
        .scalars()
        .await;
    let slug_head = "specialty_industrial_machinery_and_components";
    let shortened = industry_keys
        .iter()
        .find(|k| k.starts_with(slug_head))
        .unwrap_or_else(|| panic!("the long industry is built: {industry_keys:?}"));
    assert_eq!(shortened.chars().count(), 100);
    assert_eq!(shortened.chars().nth(91), Some('~'), "{shortened}");
    let etf_names: Vec<String> = db
        .sql("select distinct name from cache_entries where type = 'etf_universe' and name like 'Very Long ETFs%'")
        .scalars()
        .await;
    assert_eq!(etf_names.len(), 1, "{etf_names:?}");
    assert_eq!(etf_names[0].chars().count(), 100);

    // `plan` showed the same keys before the run, and nothing is left to do after it.
    assert!(
        plan.deltas.iter().any(|d| d.key == *shortened),
        "the plan names the shortened key"
    );
    assert_eq!(plan.warnings, report.warnings);
    let again = db.plan().await;
    assert!(!again.has_changes(), "{:?}", again.deltas);

    // `verify` does not fail because a cache_config row is invalid.
    let out = cache_sync_cli(&db, &["verify"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let out = cache_sync_cli(&db, &["run"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
}

on_both_stores!(each_bad_row_ends_in_a_completed_run_with_its_exclusion_counted);

/// Settings are refused when loaded, before any database work: exit 2, naming the file (or
/// variable), the key and the allowed range.
async fn a_bad_setting_is_refused_at_load_with_exit_2(backend: Backend) {
    let db = TestDb::on(backend).await;
    let out = cache_sync_cli(&db, &["plan", "--environment", &"E".repeat(21)]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("CACHE_SYNC_ENVIRONMENT") && stderr.contains("1 to 20"),
        "{stderr}"
    );

    let dir = std::env::temp_dir().join(format!("{}-settings", db.name));
    std::fs::create_dir_all(&dir).unwrap();
    for (name, body, expected) in [
        (
            "ipo.toml",
            "[catalog]\nipo_window_days = 200000000\n",
            "ipo_window_days = 200000000 is outside the allowed range 0..=3650 days",
        ),
        (
            "share.toml",
            "[guards]\nmax_missing_close_share = 1.5\n",
            "max_missing_close_share = 1.5 is outside the allowed range [0, 1]",
        ),
        (
            "theme.toml",
            "[catalog]\nthemes = { \"__\" = [\"AAA\"] }\n",
            "has no name",
        ),
        (
            "schedule.toml",
            "[pipeline]\ncatch_up_schedule = \"30 25 * * 1-5\"\n",
            "catch_up_schedule must be a cron expression of five fields",
        ),
        (
            "timezone.toml",
            "[pipeline]\ncatch_up_schedule = \"30 22 * * 1-5\"\ntimezone = \"Mars/Olympus\"\n",
            "timezone must be an IANA timezone name",
        ),
        (
            "keep.toml",
            "[audit]\nkeep_days = -1\n",
            "keep_days must be a whole number of days from 0 to 3650",
        ),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, body).unwrap();
        let path = path.display().to_string();
        for command in ["plan", "run"] {
            let out = cache_sync_cli(&db, &[command, "--config", &path]);
            assert_eq!(
                out.status.code(),
                Some(2),
                "{name} {command}: {}",
                describe(&out)
            );
            let stderr = text(&out.stderr);
            assert!(
                stderr.contains(&path) && stderr.contains(expected),
                "{stderr}"
            );
            assert!(!stderr.contains("panicked"), "{stderr}");
        }
    }
    std::fs::remove_dir_all(&dir).ok();
    assert_eq!(db.count("cache_sync_run").await, 0, "nothing ran");
}

on_both_stores!(a_bad_setting_is_refused_at_load_with_exit_2);

/// `cache-sync events | head -1`: the reader closes the pipe after one line; the command ends
/// quietly with exit 0. The events printed are far more than a pipe holds, so the writes after
/// the close must meet the closed pipe.
async fn events_into_a_closed_pipe_end_quietly(backend: Backend) {
    let db = TestDb::on(backend).await;
    // A market big enough that its first night's events are over two pipe buffers (64 KiB each).
    let market = SyntheticMarket::generate(&FixtureParams {
        stocks: 5000,
        etfs: 400,
        days: 1,
        ..FixtureParams::default()
    });
    db.load(&market, 1).await;
    db.run().await;
    let all = cache_sync_cli(&db, &["events", "--limit", "100000", "--format", "json"]);
    assert_eq!(all.status.code(), Some(0), "{}", describe(&all));
    assert!(
        all.stdout.len() > 2 * (64 << 10),
        "more than two pipe buffers of 64 KiB: {}",
        all.stdout.len()
    );

    for format in ["json", "text"] {
        let mut child =
            cache_sync_command(&db, &["events", "--limit", "100000", "--format", format])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("start cache-sync");
        let mut first = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut first)
            .expect("one line");
        // The reader is dropped here: the pipe is closed.
        assert!(!first.is_empty());
        let out = child.wait_with_output().expect("cache-sync ends");
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{format}: {stderr}");
        assert!(
            !stderr.contains("panicked") && !stderr.contains("error"),
            "{stderr}"
        );
    }
}

on_both_stores!(events_into_a_closed_pipe_end_quietly);

// ---------------------------------------------------------------------------------------------
// Hostile rows from generators
// ---------------------------------------------------------------------------------------------

/// A `symbols` row as text per column (stored through casts on PostgreSQL).
#[derive(Debug, Clone)]
struct HostileSymbol {
    symbol: String,
    name: Option<String>,
    kind: Option<String>,
    active: Option<bool>,
    market_cap: Option<String>,
    shares: Option<String>,
    sector: Option<String>,
    industry: Option<String>,
    list_date: Option<String>,
    aum_millions: Option<String>,
    close: Option<String>,
}

/// Text of up to `max` characters: odd Unicode, `&`, whitespace, or exactly at the limit.
fn hostile_text(max: usize) -> BoxedStrategy<String> {
    prop_oneof![
        Just("x".repeat(max)),
        Just(format!("{}&", "A".repeat(max - 1))),
        Just("&".repeat(max)),
        Just("  ".to_owned()),
        Just(String::new()),
        Just("Ünïcödé – 日本語 🚀 \u{200b}".to_owned()),
        proptest::string::string_regex(&format!("[\\PC&/ ]{{1,{max}}}")).unwrap(),
    ]
    .prop_map(move |s| s.chars().take(max).collect())
    .boxed()
}

/// Numbers at and past every limit, as the text a numeric column is given.
fn hostile_number() -> BoxedStrategy<String> {
    prop_oneof![
        Just("1e400".to_owned()),
        Just("-1e400".to_owned()),
        Just("1e300".to_owned()),
        Just("0".to_owned()),
        Just("-1".to_owned()),
        Just("9223372036854775807".to_owned()),
        Just("-9223372036854775808".to_owned()),
        Just("0.0000001".to_owned()),
        (1i64..1_000_000_000_000).prop_map(|n| n.to_string()),
    ]
    .boxed()
}

fn hostile_symbol(i: usize) -> impl Strategy<Value = HostileSymbol> {
    let ticker = prop_oneof![
        Just(format!("H{i:019}")),
        Just(format!(" h{i} ")),
        Just(format!("É{i}")),
        Just(format!("BRK.{i}")),
        Just(format!("🚀{i}")),
    ];
    let kind = prop_oneof![
        Just(Some("CS".to_owned())),
        Just(Some("ETF".to_owned())),
        Just(None)
    ];
    let date = prop_oneof![
        Just(None),
        Just(Some("0001-01-01".to_owned())),
        Just(Some("9999-12-31".to_owned())),
        Just(Some("2026-01-05".to_owned())),
    ];
    (
        (
            ticker,
            proptest::option::of(hostile_text(100)),
            kind,
            proptest::option::of(any::<bool>()),
        ),
        (
            proptest::option::of(hostile_number()),
            proptest::option::of(hostile_number()),
        ),
        (
            proptest::option::of(hostile_text(50)),
            proptest::option::of(hostile_text(100)),
        ),
        (
            date,
            proptest::option::of(hostile_number()),
            proptest::option::of(hostile_number()),
        ),
    )
        .prop_map(
            |(
                (symbol, name, kind, active),
                (market_cap, shares),
                (sector, industry),
                (list_date, aum_millions, close),
            )| HostileSymbol {
                symbol,
                name,
                kind,
                active,
                market_cap,
                shares,
                sector,
                industry,
                list_date,
                aum_millions,
                close,
            },
        )
}

/// `cache_config` rows with values of every wrong shape.
fn hostile_config_rows() -> impl Strategy<Value = Vec<(String, String, Value)>> {
    let value = prop_oneof![
        Just(json!("lots")),
        Just(json!(-5)),
        Just(json!(1e300)),
        Just(json!(null)),
        Just(json!({"name": "x".repeat(300), "include": ["a", 7]})),
        Just(json!({"name": "Wide ETFs 🚀".repeat(12), "include": ["ETF"]})),
        Just(json!(["NVDA", "  msft ", "🚀", ""])),
        Just(json!([[1], {"a": 1}])),
    ];
    let name = prop_oneof![
        Just("market_cap_thresholds"),
        Just("theme_definitions"),
        Just("etf_categories"),
        Just("complete_limits"),
        Just("industry_groups"),
    ];
    let key = prop_oneof![
        Just("large_cap".to_owned()),
        Just("micro_cap".to_owned()),
        Just("top_1000".to_owned()),
        Just("etf_growth".to_owned()),
        Just("k".repeat(100)),
        Just("Ünï 🚀".to_owned()),
    ];
    proptest::collection::vec((name.prop_map(str::to_owned), key, value), 4..8)
}

/// Draws one value from `strategy`, the same every time for the same `seed`.
fn draw<S: Strategy>(strategy: S, seed: u8) -> S::Value {
    let rng = TestRng::from_seed(proptest::test_runner::RngAlgorithm::ChaCha, &[seed; 32]);
    let mut runner = TestRunner::new_with_rng(ProptestConfig::default(), rng);
    strategy.new_tree(&mut runner).expect("a value").current()
}

async fn insert_hostile(db: &TestDb, backend: Backend, row: &HostileSymbol, date: &str) {
    let numeric = |p: &str| typed(backend, p, "numeric");
    let day = |p: &str| typed(backend, p, "date");
    // PostgreSQL's bigint columns refuse numbers past i64: there the row keeps what fits.
    let fits_bigint = |v: &Option<String>| match backend {
        Backend::Postgres => v.clone().filter(|t| t.parse::<i64>().is_ok()),
        Backend::Sqlite => v.clone(),
    };
    let inserted = db
        .sql(format!(
            "insert into symbols (symbol, name, type, active, market_cap, weighted_shares_outstanding,
                                  sector, industry, list_date, aum_millions)
             values ($1, $2, $3, $4, {}, {}, $7, $8, {}, {})",
            typed(backend, "$5", "bigint"),
            typed(backend, "$6", "bigint"),
            day("$9"),
            numeric("$10"),
        ))
        .bind(row.symbol.as_str())
        .bind(row.name.clone())
        .bind(row.kind.clone())
        .bind(row.active)
        .bind(fits_bigint(&row.market_cap))
        .bind(fits_bigint(&row.shares))
        .bind(row.sector.clone())
        .bind(row.industry.clone())
        .bind(row.list_date.clone())
        .bind(row.aum_millions.clone())
        .try_execute()
        .await;
    if inserted.is_err() {
        // A duplicate drawn ticker: the generator's row is simply not there.
        return;
    }
    if let Some(close) = &row.close {
        db.sql(format!(
            "insert into ohlcv_daily (symbol, date, open, high, low, close, volume)
             values ($1, {}, 1, 1, 1, {}, 1)",
            day("$2"),
            numeric("$3")
        ))
        .bind(row.symbol.as_str())
        .bind(date)
        .bind(close.as_str())
        .execute()
        .await;
    }
}

/// Rows no run may touch: other types, another environment, configuration.
async fn unowned_rows(db: &TestDb) -> Vec<String> {
    db.raw_rows("not (environment = 'DEFAULT' and type in ('stock_universe', 'etf_universe', 'themes', 'stock_stats', 'stock_etf_combo'))")
        .await
}

async fn hostile_rows_never_fail_a_run_nor_touch_rows_outside_owned_scopes(backend: Backend) {
    let db = TestDb::on(backend).await;
    db.load(&small_market(1204, 2), 1).await;
    db.exec(
        "insert into cache_entries (type, name, key, value, environment) values
           ('app_settings', 'ui', 'theme', '\"dark\"', 'DEFAULT'),
           ('stock_universe', 'market_cap', 'mega_cap', '[\"NOT_OURS\"]', 'OTHER'),
           ('themes', 'Ai', 'list', '[\"NOT_OURS\"]', 'STAGING')",
    )
    .await;
    db.run().await;
    let latest: String = db
        .sql("select cast(max(date) as text) from ohlcv_daily")
        .scalar()
        .await;
    for seed in 1..=4u8 {
        let rows: Vec<HostileSymbol> = (0..12)
            .map(|i| {
                draw(
                    hostile_symbol(usize::from(seed) * 100 + i),
                    seed.wrapping_mul(31).wrapping_add(i as u8),
                )
            })
            .collect();
        for row in &rows {
            insert_hostile(&db, backend, row, &latest).await;
        }
        for (name, key, value) in draw(hostile_config_rows(), seed) {
            db.sql(
                // A drawn (name, key) may repeat an earlier one: the table keeps one row each.
                "insert into cache_entries (type, name, key, value, environment)
                 values ('cache_config', $1, $2, $3, 'DEFAULT') on conflict do nothing",
            )
            .bind(name)
            .bind(key)
            .bind(value)
            .execute()
            .await;
        }
        let unowned = unowned_rows(&db).await;
        let plan = db.plan().await;
        // Forced: hostile rows may legitimately move universes past a guard's threshold; what
        // is proved here is that nothing fails, panics, or escapes the owned scopes.
        let report = db
            .try_run(&JobConfig::default(), run_request(true))
            .await
            .unwrap_or_else(|e| panic!("seed {seed}: {e}\n{rows:#?}"));
        assert_eq!(report.deltas.len(), plan.deltas.len(), "seed {seed}");
        assert_eq!(
            unowned_rows(&db).await,
            unowned,
            "seed {seed}: rows outside owned scopes"
        );
        let (name, key) = longest_identity(&db).await;
        assert!(
            name <= 100 && key <= 100,
            "seed {seed}: name {name}, key {key}"
        );
        let again = db
            .try_run(&JobConfig::default(), run_request(false))
            .await
            .unwrap_or_else(|e| panic!("seed {seed}, second run: {e}"));
        assert_eq!(again.deltas.len(), 0, "seed {seed}: deterministic");
    }
    let out = cache_sync_cli(&db, &["verify"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
}

on_both_stores!(hostile_rows_never_fail_a_run_nor_touch_rows_outside_owned_scopes);
