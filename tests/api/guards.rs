//! Guard rails (SPEC §10) and unique-constraint collisions (SPEC §2) against a real database:
//! each guard trips on the input that should trip it, a refusal writes nothing but one
//! `refused` run record naming what tripped, `force` passes it, thresholds are configurable per
//! family, and the CLI maps a refusal to exit code 3.

use crate::helpers::{
    cache_sync_cli, live_hashes, on_both_stores, run_request, small_market, Backend, TestDb,
};
use tickstock_cache_sync::domain::diff::Op;
use tickstock_cache_sync::domain::guard::{FamilyGuard, GuardConfig, Refusal};
use tickstock_cache_sync::domain::types::RunId;
use tickstock_cache_sync::job::{JobConfig, RunError};
use tickstock_cache_sync::report::RunReport;
use tickstock_cache_sync::store::RunStatus;

/// What a refused run must leave untouched.
struct Written {
    /// Every `cache_entries` row in full, as text.
    entries: Vec<String>,
    events: i64,
    runs: i64,
}

async fn written(db: &TestDb) -> Written {
    Written {
        entries: db.raw_rows("true").await,
        events: db.count("cache_sync_event").await,
        runs: db.count("cache_sync_run").await,
    }
}

/// `(status, forced, error)` of one run record.
async fn run_record(db: &TestDb, run_id: i64) -> (String, bool, Option<String>) {
    db.sql("select status, forced, error from cache_sync_run where run_id = $1")
        .bind(run_id)
        .fetch_one()
        .await
}

/// Runs with `config` (no force) and expects a guard-rail refusal; returns the refusals and the
/// report after checking that nothing but one refused run record was written, and that the
/// record's error names every refusal.
async fn expect_refused(db: &TestDb, config: &JobConfig) -> (Vec<Refusal>, RunReport) {
    db.count_writes().await;
    let before = written(db).await;
    let err = db
        .try_run(config, run_request(false))
        .await
        .expect_err("the guard rails refuse this run");
    let RunError::Refused {
        run_id,
        refusals,
        report,
    } = err
    else {
        panic!("expected RunError::Refused, got {err:?}");
    };
    assert!(!refusals.is_empty());
    assert_nothing_written_but_a_refused_record(db, &before, run_id).await;
    let (_, _, error) = run_record(db, run_id.0).await;
    let error = error.unwrap();
    for refusal in &refusals {
        assert!(
            error.contains(&refusal.to_string()),
            "the run record's error names `{refusal}`: {error}"
        );
    }
    assert_eq!(report.status, RunStatus::Refused);
    assert!(!report.forced);
    assert_eq!(report.run_id, Some(run_id));
    assert_eq!(report.refusals, refusals, "the report carries the refusals");
    (refusals, *report)
}

async fn assert_nothing_written_but_a_refused_record(db: &TestDb, before: &Written, run_id: RunId) {
    let after = written(db).await;
    assert_eq!(
        db.writes().await,
        0,
        "no insert, update or delete reached cache_entries"
    );
    assert_eq!(
        after.entries, before.entries,
        "cache_entries byte-identical"
    );
    assert_eq!(after.events, before.events, "no event appended");
    assert_eq!(
        after.runs,
        before.runs + 1,
        "exactly one run record appended"
    );
    let latest: i64 = db
        .sql("select max(run_id) from cache_sync_run")
        .scalar()
        .await;
    assert_eq!(latest, run_id.0, "the appended record is the refused run's");
    let (status, forced, error) = run_record(db, run_id.0).await;
    assert_eq!(status, "refused");
    assert!(!forced);
    assert!(
        error.is_some_and(|e| !e.is_empty()),
        "a refused run says why"
    );
}

/// Forces the run; checks it completed and its record says `forced`.
async fn expect_forced(db: &TestDb) -> RunReport {
    let report = db.run_forced().await;
    assert_eq!(report.status, RunStatus::Completed);
    assert!(report.forced);
    let (status, forced, error) = run_record(db, report.run_id.unwrap().0).await;
    assert_eq!((status.as_str(), forced, error), ("completed", true, None));
    report
}

fn entry(refusal: &Refusal) -> Option<&str> {
    match refusal {
        Refusal::WouldEmpty { entry, .. } | Refusal::MassRemoval { entry, .. } => Some(entry),
        _ => None,
    }
}

/// A first good run, then `large_cap`'s lower bound raised to $50B: the band loses most of its
/// members (the market-cap distribution is heavy-tailed).
async fn large_cap_mostly_emptied(backend: Backend, seed: u64) -> TestDb {
    let db = TestDb::on(backend).await;
    db.load(&small_market(seed, 1), 1).await;
    db.run().await;
    db.exec(
        "insert into cache_entries (type, name, key, value, environment)
         values ('cache_config', 'market_cap_thresholds', 'large_cap', '50000000000', 'DEFAULT')",
    )
    .await;
    db
}

const LARGE_CAP: &str = "stock_universe/market_cap/large_cap";

// ---------------------------------------------------------------------------------------------
// Stale input
// ---------------------------------------------------------------------------------------------

async fn an_as_of_date_far_behind_the_latest_prices_is_refused_and_force_applies_it(
    backend: Backend,
) {
    let db = TestDb::on(backend).await;
    let market = small_market(101, 10);
    db.load(&market, 10).await;
    let day1 = market.date_of_day(1);
    let mut config_request = run_request(false);
    config_request.plan.as_of = Some(day1);

    db.count_writes().await;
    let before = written(&db).await;
    let err = db
        .try_run(&JobConfig::default(), config_request.clone())
        .await
        .expect_err("stale as-of is refused");
    let RunError::Refused {
        run_id, refusals, ..
    } = err
    else {
        panic!("expected a refusal, got {err:?}");
    };
    assert_eq!(
        refusals,
        vec![Refusal::StaleAsOf {
            as_of: day1,
            latest_price_date: market.date_of_day(10),
            max_lag_days: 5,
        }]
    );
    assert_nothing_written_but_a_refused_record(&db, &before, run_id).await;
    assert_eq!(db.count("cache_entries").await, 0);
    let (_, _, error) = run_record(&db, run_id.0).await;
    let error = error.unwrap();
    assert!(
        error.contains("as-of 2026-01-05") && error.contains("older than the latest prices"),
        "{error}"
    );

    config_request.force = true;
    let report = db
        .try_run(&JobConfig::default(), config_request)
        .await
        .expect("force passes the stale-as-of guard");
    assert!(report.forced);
    assert_eq!(report.as_of, day1);
    assert!(report.created > 0);
    let (status, forced, _) = run_record(&db, report.run_id.unwrap().0).await;
    assert_eq!((status.as_str(), forced), ("completed", true));
    let stats = db
        .value("stock_stats", "universe", "summary")
        .await
        .unwrap();
    assert_eq!(stats["overview"]["last_updated"], "2026-01-05");
}

on_both_stores!(an_as_of_date_far_behind_the_latest_prices_is_refused_and_force_applies_it);

async fn an_unfinished_import_is_refused_and_force_applies_it(backend: Backend) {
    let db = TestDb::on(backend).await;
    db.load(&small_market(102, 2), 2).await;
    db.run().await;
    // Phase 2 half done: a third of the active symbols have no bar on the latest day yet.
    let missing = db
        .sql(
            "delete from ohlcv_daily
             where date = (select max(date) from ohlcv_daily)
               and symbol in (select symbol from
                   (select symbol, row_number() over (order by symbol) as rn
                    from symbols where active and type in ('CS', 'ETF')) s
                   where s.rn % 3 = 0)",
        )
        .execute()
        .await as usize;
    let active: i64 = db
        .sql("select count(*) from symbols where active and type in ('CS', 'ETF')")
        .scalar()
        .await;
    assert!(missing as f64 / active as f64 > 0.3);

    let (refusals, _) = expect_refused(&db, &JobConfig::default()).await;
    let incomplete: Vec<_> = refusals
        .iter()
        .filter_map(|r| match r {
            Refusal::ImportIncomplete {
                active_symbols,
                without_close,
                max_share,
                ..
            } => Some((*active_symbols, *without_close, *max_share)),
            _ => None,
        })
        .collect();
    assert_eq!(incomplete.len(), 1, "{refusals:?}");
    let (active_symbols, without_close, max_share) = incomplete[0];
    assert_eq!(active_symbols, active as usize);
    assert!(without_close >= missing, "{without_close} < {missing}");
    assert_eq!(max_share, 0.2);
    assert!(
        refusals
            .iter()
            .all(|r| matches!(r, Refusal::ImportIncomplete { .. })),
        "only the import guard trips: {refusals:?}"
    );

    expect_forced(&db).await;
}

on_both_stores!(an_unfinished_import_is_refused_and_force_applies_it);

// ---------------------------------------------------------------------------------------------
// Mass change
// ---------------------------------------------------------------------------------------------

async fn a_plan_that_would_empty_a_sector_is_refused_naming_the_entry_and_force_applies_it(
    backend: Backend,
) {
    let db = TestDb::on(backend).await;
    db.load(&small_market(103, 1), 1).await;
    db.run().await;
    let sector_entry = "stock_universe/sector_leaders/top_10_utilities";
    let leaders = db
        .value("stock_universe", "sector_leaders", "top_10_utilities")
        .await
        .expect("the market has a Utilities sector");
    let members = leaders["stocks"].as_array().unwrap().len();
    assert!(members > 0);
    db.exec("update symbols set active = false where sector = 'Utilities'")
        .await;

    let (refusals, report) = expect_refused(&db, &JobConfig::default()).await;
    assert!(
        refusals.contains(&Refusal::WouldEmpty {
            entry: sector_entry.to_owned(),
            members_before: members,
        }),
        "{refusals:?}"
    );
    // Only entries of the vanished sector empty out (its leaders and its industries); nothing
    // else loses enough members to trip a guard.
    for r in &refusals {
        let Refusal::WouldEmpty { entry, .. } = r else {
            panic!("unexpected refusal {r:?}");
        };
        assert!(
            entry == sector_entry || entry.starts_with("stock_universe/industry/"),
            "{entry}"
        );
    }
    let delete = report
        .deltas
        .iter()
        .find(|d| format!("{}/{}/{}", d.entry_type, d.name, d.key) == sector_entry)
        .expect("the report shows the delete it would have applied");
    assert_eq!(delete.op, Op::Delete);
    assert_eq!(delete.removed.len(), members);
    assert!(delete
        .removed
        .iter()
        .all(|m| m.reason == "delisted_or_inactive"));

    expect_forced(&db).await;
    assert_eq!(
        db.value("stock_universe", "sector_leaders", "top_10_utilities")
            .await,
        None
    );
}

on_both_stores!(a_plan_that_would_empty_a_sector_is_refused_naming_the_entry_and_force_applies_it);

async fn a_band_losing_most_of_its_members_is_refused_as_mass_removal_and_force_applies_it(
    backend: Backend,
) {
    let db = large_cap_mostly_emptied(backend, 104).await;
    let members_before = db
        .value("stock_universe", "market_cap", "large_cap")
        .await
        .unwrap()["stocks"]
        .as_array()
        .unwrap()
        .len();

    let (refusals, _) = expect_refused(&db, &JobConfig::default()).await;
    assert_eq!(refusals.len(), 1, "{refusals:?}");
    let Refusal::MassRemoval {
        entry,
        members_before: before,
        removed,
        max_share,
    } = &refusals[0]
    else {
        panic!("expected MassRemoval, got {refusals:?}");
    };
    assert_eq!(entry, LARGE_CAP);
    assert_eq!(*before, members_before);
    assert!(
        *removed as f64 / *before as f64 > 0.5,
        "{removed} of {before}"
    );
    assert_eq!(*max_share, 0.5);

    let report = expect_forced(&db).await;
    assert!(report.config_changed);
    let after = db
        .value("stock_universe", "market_cap", "large_cap")
        .await
        .unwrap();
    assert_eq!(
        after["stocks"].as_array().unwrap().len(),
        members_before - removed
    );
}

on_both_stores!(a_band_losing_most_of_its_members_is_refused_as_mass_removal_and_force_applies_it);

async fn deleting_more_entries_than_allowed_at_once_is_refused_listing_them_and_force_applies_it(
    backend: Backend,
) {
    let db = TestDb::on(backend).await;
    db.load(&small_market(105, 1), 1).await;
    db.run().await;
    // Entries the job itself wrote (logged), so removing them is the job's own change; rows
    // inserted by hand would be drift, which a plain run reconciles (see drift.rs).
    let with_themes = |names: &[&str]| {
        let themes: Vec<String> = names.iter().map(|n| format!("{n} = [\"AAA\"]")).collect();
        let text = format!("[catalog]\nthemes = {{ {} }}\n", themes.join(", "));
        JobConfig {
            toml: Some((
                "themes.toml".to_owned(),
                tickstock_cache_sync::domain::config::parse_toml("themes.toml", &text).unwrap(),
            )),
            ..JobConfig::default()
        }
    };
    let created_by = |report: &RunReport| {
        let mut ids: Vec<String> = report
            .deltas
            .iter()
            .filter(|d| d.op == Op::Create)
            .map(|d| format!("{}/{}/{}", d.entry_type, d.name, d.key))
            .collect();
        ids.sort();
        ids
    };

    // Two extra themes are four entries: removing them at once is within the default limit.
    let few = db
        .try_run(&with_themes(&["few_1", "few_2"]), run_request(false))
        .await
        .expect("run");
    assert_eq!(created_by(&few).len(), 4);
    let report = db.run().await;
    assert_eq!(report.deleted, 4);
    assert!(!report.forced);

    let fakes = db
        .try_run(
            &with_themes(&["fake_1", "fake_2", "fake_3"]),
            run_request(false),
        )
        .await
        .expect("run");
    let expected = created_by(&fakes);
    assert_eq!(expected.len(), 6);
    let (refusals, report) = expect_refused(&db, &JobConfig::default()).await;
    assert_eq!(
        refusals,
        vec![Refusal::MassDeletion {
            entries: expected.clone(),
            max_deleted: 5,
        }],
        "empty rows trip no emptiness guard, only the deletion count"
    );
    let mut planned: Vec<String> = report
        .deltas
        .iter()
        .filter(|d| d.op == Op::Delete)
        .map(|d| format!("{}/{}/{}", d.entry_type, d.name, d.key))
        .collect();
    planned.sort();
    assert_eq!(planned, expected);
    assert!(report.drift.is_empty(), "the log wrote these rows");

    let forced = expect_forced(&db).await;
    assert_eq!(forced.deleted, 6);
    let left: i64 = db
        .sql("select count(*) from cache_entries where lower(name) like '%fake%' or lower(key) like '%fake%'")
        .scalar()
        .await;
    assert_eq!(left, 0);
}

on_both_stores!(
    deleting_more_entries_than_allowed_at_once_is_refused_listing_them_and_force_applies_it
);

async fn a_refused_run_reports_every_delta_the_plan_would_have_applied(backend: Backend) {
    let db = large_cap_mostly_emptied(backend, 106).await;
    let plan = db.plan().await;
    let (refusals, report) = expect_refused(&db, &JobConfig::default()).await;
    assert_eq!(plan.refusals, refusals, "plan predicts the refusal");
    let lines = |deltas: &[tickstock_cache_sync::report::DeltaLine]| {
        deltas
            .iter()
            .map(|d| {
                (
                    d.op,
                    format!("{}/{}/{}", d.entry_type, d.name, d.key),
                    d.hash_before,
                    d.hash_after,
                    d.removed
                        .iter()
                        .map(|m| m.ticker.clone())
                        .collect::<Vec<_>>(),
                    d.added.iter().map(|m| m.ticker.clone()).collect::<Vec<_>>(),
                )
            })
            .collect::<Vec<_>>()
    };
    assert!(!report.deltas.is_empty());
    assert_eq!(lines(&report.deltas), lines(&plan.deltas));
    assert_eq!(
        (report.created, report.updated, report.deleted),
        (
            plan.deltas.iter().filter(|d| d.op == Op::Create).count(),
            plan.deltas.iter().filter(|d| d.op == Op::Update).count(),
            plan.deltas.iter().filter(|d| d.op == Op::Delete).count(),
        )
    );
    let large = report
        .deltas
        .iter()
        .find(|d| format!("{}/{}/{}", d.entry_type, d.name, d.key) == LARGE_CAP)
        .unwrap();
    assert_eq!(large.op, Op::Update);
    let Refusal::MassRemoval { removed, .. } = &refusals[0] else {
        panic!("{refusals:?}");
    };
    assert_eq!(large.removed.len(), *removed);
    // The stored run record keeps the refusal and the counts.
    let stored: serde_json::Value = db
        .sql("select report from cache_sync_run where run_id = $1")
        .bind(report.run_id.unwrap().0)
        .scalar()
        .await;
    assert_eq!(stored["refusals"][0]["guard"], "mass_removal");
    assert_eq!(stored["refusals"][0]["entry"], LARGE_CAP);
    assert_eq!(stored["updated"], report.updated);
}

on_both_stores!(a_refused_run_reports_every_delta_the_plan_would_have_applied);

async fn members_moved_by_a_changed_band_threshold_carry_the_reason_configuration_change(
    backend: Backend,
) {
    let db = large_cap_mostly_emptied(backend, 114).await;
    let report = db.run_forced().await;
    assert!(report.config_changed);
    let moved: Vec<_> = report
        .deltas
        .iter()
        .filter(|d| d.name == "market_cap")
        .flat_map(|d| d.removed.iter().chain(d.added.iter()))
        .collect();
    assert!(!moved.is_empty());
    for m in moved {
        assert_eq!(
            m.reason, "configuration_change",
            "{} moved only because the threshold moved: {}",
            m.ticker, m.detail
        );
    }
}

on_both_stores!(members_moved_by_a_changed_band_threshold_carry_the_reason_configuration_change);

// ---------------------------------------------------------------------------------------------
// Configurable thresholds
// ---------------------------------------------------------------------------------------------

async fn a_family_threshold_raised_in_the_job_config_lets_the_same_plan_through_without_force(
    backend: Backend,
) {
    let db = large_cap_mostly_emptied(backend, 107).await;

    // Raising another family's threshold changes nothing for market_cap.
    let mut other = JobConfig::default();
    other.guards.families.insert(
        "sector_leaders".to_owned(),
        FamilyGuard {
            refuse_empty: false,
            max_removed_share: 1.0,
        },
    );
    let (refusals, _) = expect_refused(&db, &other).await;
    assert!(refusals.iter().any(|r| entry(r) == Some(LARGE_CAP)));

    let relaxed = JobConfig {
        guards: GuardConfig {
            families: {
                let mut f = GuardConfig::default().families;
                f.insert(
                    "market_cap".to_owned(),
                    FamilyGuard {
                        refuse_empty: true,
                        max_removed_share: 0.95,
                    },
                );
                f
            },
            ..GuardConfig::default()
        },
        ..JobConfig::default()
    };
    let before = live_hashes(&db).await;
    let report = db
        .try_run(&relaxed, run_request(false))
        .await
        .expect("market_cap may now lose up to 95% of a band");
    assert!(!report.forced);
    assert!(report.refusals.is_empty());
    let (status, forced, _) = run_record(&db, report.run_id.unwrap().0).await;
    assert_eq!((status.as_str(), forced), ("completed", false));
    assert_ne!(before.get(LARGE_CAP), live_hashes(&db).await.get(LARGE_CAP));
}

on_both_stores!(
    a_family_threshold_raised_in_the_job_config_lets_the_same_plan_through_without_force
);

async fn the_deletion_limit_and_the_as_of_lag_are_configurable_too(backend: Backend) {
    let db = TestDb::on(backend).await;
    let market = small_market(108, 10);
    db.load(&market, 10).await;
    let mut request = run_request(false);
    request.plan.as_of = Some(market.date_of_day(1));
    let mut config = JobConfig::default();
    config.guards.max_as_of_lag_days = 30;
    let report = db
        .try_run(&config, request)
        .await
        .expect("a 30-day lag is allowed");
    assert!(!report.forced);

    for i in 1..=8 {
        db.sql(
            "insert into cache_entries (type, name, key, value, environment)
             values ('stock_universe', 'industry', $1, '[]', 'DEFAULT')",
        )
        .bind(format!("fake_{i}"))
        .execute()
        .await;
    }
    let mut request = run_request(false);
    request.plan.as_of = Some(market.date_of_day(1));
    config.guards.max_deleted_entries = 8;
    let report = db
        .try_run(&config, request)
        .await
        .expect("eight deletions are allowed");
    assert_eq!(report.deleted, 8);
}

on_both_stores!(the_deletion_limit_and_the_as_of_lag_are_configurable_too);

// ---------------------------------------------------------------------------------------------
// The command line
// ---------------------------------------------------------------------------------------------

use crate::helpers::{describe, text};

async fn the_cli_exits_3_on_a_refusal_showing_what_would_change_and_0_with_force(backend: Backend) {
    let db = large_cap_mostly_emptied(backend, 109).await;
    let before = written(&db).await;

    let out = cache_sync_cli(&db, &["run"]);
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    let stdout = text(&out.stdout);
    assert!(
        stdout.lines().any(|l| l.trim_start().starts_with("update ")
            && l.trim_end().ends_with(&format!(" {LARGE_CAP}"))),
        "the delta it would have applied is shown: {}",
        describe(&out)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.trim_end().ends_with(&format!(" {LARGE_CAP}")))
        .unwrap();
    assert!(
        lines[at + 1].trim_start().starts_with("- "),
        "the members it would have removed are listed: {stdout}"
    );
    assert!(
        stdout.contains(&format!("GUARD: {LARGE_CAP} would lose")),
        "{stdout}"
    );
    assert!(text(&out.stderr).contains("refused"), "{}", describe(&out));
    let after = written(&db).await;
    assert_eq!(after.entries, before.entries);
    assert_eq!(after.events, before.events);
    assert_eq!(after.runs, before.runs + 1);

    let out = cache_sync_cli(&db, &["run", "--force"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(text(&out.stdout).contains("(forced)"), "{}", describe(&out));
    let runs: Vec<(String, bool, String)> = db
        .sql("select status, forced, trigger from cache_sync_run order by run_id")
        .fetch_all()
        .await;
    assert_eq!(
        runs,
        vec![
            ("completed".to_owned(), false, "test".to_owned()),
            ("refused".to_owned(), false, "cli".to_owned()),
            ("completed".to_owned(), true, "cli".to_owned()),
        ]
    );
    assert!(db.count("cache_sync_event").await > before.events);
}

on_both_stores!(the_cli_exits_3_on_a_refusal_showing_what_would_change_and_0_with_force);

async fn the_cli_reads_per_family_thresholds_from_the_guards_section_of_its_config_file(
    backend: Backend,
) {
    let db = large_cap_mostly_emptied(backend, 110).await;
    let path = std::env::temp_dir().join(format!("{}-guards.toml", db.name));
    std::fs::write(
        &path,
        "[guards.families.market_cap]\nrefuse_empty = true\nmax_removed_share = 0.95\n",
    )
    .unwrap();
    let out = cache_sync_cli(&db, &["--config", path.to_str().unwrap(), "run"]);
    std::fs::remove_file(&path).ok();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let (status, forced): (String, bool) = db
        .sql("select status, forced from cache_sync_run order by run_id desc limit 1")
        .fetch_one()
        .await;
    assert_eq!((status.as_str(), forced), ("completed", false));
}

on_both_stores!(the_cli_reads_per_family_thresholds_from_the_guards_section_of_its_config_file);

// ---------------------------------------------------------------------------------------------
// Unique-constraint collisions. Altering a table's constraints is PostgreSQL's: the embedded
// store only ever has the tables it created, with the wide constraint.
// ---------------------------------------------------------------------------------------------

const PRODUCTION_CONSTRAINT: &str = "alter table cache_entries drop constraint cache_entries_type_name_key_environment_key;
     alter table cache_entries add constraint cache_entries_type_key_environment_key unique (type, key, environment);";

async fn constraint_exists(db: &TestDb, name: &str) -> bool {
    db.sql(
        "select exists (select 1 from pg_constraint
                        where conrelid = 'cache_entries'::regclass and conname = $1)",
    )
    .bind(name)
    .scalar()
    .await
}

#[tokio::test]
async fn the_production_unique_constraint_is_refused_naming_the_theme_rows_until_migrate_widens_it()
{
    let db = TestDb::new().await;
    db.load(&small_market(111, 1), 1).await;
    db.exec(PRODUCTION_CONSTRAINT).await;
    db.count_writes().await;
    let before = written(&db).await;

    for force in [false, true] {
        let runs_before = db.count("cache_sync_run").await;
        let err = db
            .try_run(&JobConfig::default(), run_request(force))
            .await
            .expect_err("the catalog cannot be written under (type, key, environment)");
        let RunError::Collision { run_id, collisions } = &err else {
            panic!("expected a collision, got {err:?}");
        };
        assert_eq!(collisions.len(), 1, "{collisions:?}");
        let c = &collisions[0];
        assert_eq!(c.constraint, "cache_entries_type_key_environment_key");
        assert_eq!(c.columns, ["type", "key", "environment"]);
        assert_eq!(
            c.entries,
            [
                "themes/Ai/list@DEFAULT",
                "themes/Biotech/list@DEFAULT",
                "themes/Cloud/list@DEFAULT",
                "themes/Crypto/list@DEFAULT",
            ]
        );
        let message = err.to_string();
        assert!(message.contains("migrate --widen-unique"), "{message}");
        // Nothing written: force cannot make the table hold what its constraint forbids.
        assert_eq!(db.writes().await, 0);
        assert_eq!(db.raw_rows("true").await, before.entries);
        assert_eq!(db.count("cache_sync_event").await, before.events);
        assert_eq!(db.count("cache_sync_run").await, runs_before + 1);
        let (status, _, error) = run_record(&db, run_id.0).await;
        assert_eq!(status, "refused");
        let error = error.unwrap();
        assert!(
            error.contains("cache_entries_type_key_environment_key")
                && error.contains("themes/Ai/list@DEFAULT")
                && error.contains("themes/Crypto/list@DEFAULT"),
            "{error}"
        );
    }
    assert_eq!(db.count("cache_entries").await, 0);

    // The CLI refuses the same way.
    let out = cache_sync_cli(&db, &["run"]);
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    assert!(
        text(&out.stderr).contains("cache_entries_type_key_environment_key"),
        "{}",
        describe(&out)
    );

    // `migrate --widen-unique` shows the fix without applying it.
    let out = cache_sync_cli(&db, &["migrate", "--widen-unique"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("Would apply"), "{stdout}");
    assert!(
        stdout.contains(
            "alter table cache_entries drop constraint cache_entries_type_key_environment_key"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains("on cache_entries (type, name, key, environment)"),
        "{stdout}"
    );
    assert!(constraint_exists(&db, "cache_entries_type_key_environment_key").await);
    assert!(matches!(
        db.try_run(&JobConfig::default(), run_request(false)).await,
        Err(RunError::Collision { .. })
    ));

    // With --yes it applies, and the run goes through.
    let out = cache_sync_cli(&db, &["migrate", "--widen-unique", "--yes"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(text(&out.stdout).contains("Applied"), "{}", describe(&out));
    assert!(!constraint_exists(&db, "cache_entries_type_key_environment_key").await);
    let report = db.run().await;
    assert!(report.created > 0);
    for theme in ["Ai", "Biotech", "Cloud", "Crypto"] {
        assert!(db.value("themes", theme, "list").await.is_some(), "{theme}");
    }
    // Widening again has nothing to do.
    let out = cache_sync_cli(&db, &["migrate", "--widen-unique"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(
        text(&out.stdout).contains("nothing to widen"),
        "{}",
        describe(&out)
    );
}

async fn a_unique_index_without_name_is_detected_and_widened_like_a_constraint(backend: Backend) {
    let db = TestDb::on(backend).await;
    db.load(&small_market(112, 1), 1).await;
    if backend == Backend::Postgres {
        db.exec(
            "alter table cache_entries drop constraint cache_entries_type_name_key_environment_key",
        )
        .await;
    }
    // SQLite cannot drop a table constraint, so there the narrow index sits beside the wide one.
    db.exec(
        "create unique index legacy_cache_entries_uidx on cache_entries (type, key, environment)",
    )
    .await;
    let err = db
        .try_run(&JobConfig::default(), run_request(false))
        .await
        .expect_err("collision under a unique index");
    let RunError::Collision { collisions, .. } = err else {
        panic!("expected a collision, got {err:?}");
    };
    assert_eq!(collisions[0].constraint, "legacy_cache_entries_uidx");
    assert_eq!(db.count("cache_entries").await, 0);
    let out = cache_sync_cli(&db, &["migrate", "--widen-unique", "--yes"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let dropped = match backend {
        Backend::Postgres => "drop index public.legacy_cache_entries_uidx",
        Backend::Sqlite => "drop index \"legacy_cache_entries_uidx\"",
    };
    assert!(text(&out.stdout).contains(dropped), "{}", describe(&out));
    db.run().await;
}

on_both_stores!(a_unique_index_without_name_is_detected_and_widened_like_a_constraint);

#[tokio::test]
async fn a_unique_constraint_that_leaves_out_name_but_includes_id_is_ignored() {
    let db = TestDb::new().await;
    db.load(&small_market(113, 1), 1).await;
    db.exec(
        "alter table cache_entries drop constraint cache_entries_type_name_key_environment_key;
         alter table cache_entries add constraint cache_entries_type_key_environment_id_key
             unique (type, key, environment, id);",
    )
    .await;
    let report = db.run().await;
    assert!(report.created > 0);
    assert!(db.value("themes", "Ai", "list").await.is_some());
    assert!(db.value("themes", "Cloud", "list").await.is_some());
    assert_eq!(
        db.store.widen_unique(false).await.unwrap(),
        Vec::<String>::new(),
        "nothing to widen"
    );
    assert!(constraint_exists(&db, "cache_entries_type_key_environment_id_key").await);
}
