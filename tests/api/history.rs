//! The audit log at work (SPEC §7, §12) against a real database: replay of any past run from the
//! nearest checkpoint over a long simulated history, rollback as a new run, drift detected and
//! reconciled, `history` / `show` / `verify` / `rollback` on the command line, and a no-op night
//! that appends only a run record.

use crate::helpers::{
    cache_sync_cli, live_hashes, on_both_stores, run_request, today, Backend, TestDb,
};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::process::Output;
use tickstock_cache_sync::devtools::market::{FixtureParams, SyntheticMarket};
use tickstock_cache_sync::domain::fingerprint::hash_value;
use tickstock_cache_sync::domain::guard::Refusal;
use tickstock_cache_sync::domain::types::{EntryKey, RunId};
use tickstock_cache_sync::history::{self, PointInHistory, ReplayStats};
use tickstock_cache_sync::job::{self, JobConfig, PlanRequest};
use tickstock_cache_sync::report::{DeltaLine, RunReport};
use tickstock_cache_sync::store::RunStatus;

/// `type/name/key` → hex hash of every owned entry.
type Hashes = BTreeMap<String, String>;

const ENV: &str = "DEFAULT";
const LARGE_CAP: &str = "stock_universe/market_cap/large_cap";
const MEGA_CAP: &str = "stock_universe/market_cap/mega_cap";
const AI_LIST: &str = "themes/Ai/list";

fn key(text: &str) -> EntryKey {
    EntryKey::parse(text).unwrap()
}

fn market(seed: u64, days: usize) -> SyntheticMarket {
    SyntheticMarket::generate(&FixtureParams {
        stocks: 300,
        etfs: 60,
        days,
        seed,
        nasty: false,
        renames: 0,
    })
}

fn job_config(checkpoint_every: i64) -> JobConfig {
    JobConfig {
        checkpoint_every,
        ..JobConfig::default()
    }
}

/// One night of a simulated history: which day was loaded, the run it produced, and every owned
/// entry's hash after it.
struct Night {
    day: usize,
    run_id: RunId,
    hashes: Hashes,
}

/// Loads day 1, then one more day each night, and runs (forced, so guard rails do not
/// interfere) every night through `last_day`. `changes` are SQL statements executed just before
/// the run of the given night (configuration changes, …).
async fn simulate(
    db: &TestDb,
    market: &SyntheticMarket,
    job: &JobConfig,
    last_day: usize,
    changes: &[(usize, &str)],
) -> Vec<Night> {
    let mut nights = Vec::new();
    for day in 1..=last_day {
        if day == 1 {
            db.load(market, 1).await;
        } else {
            db.load_next(market, day).await;
        }
        for (_, sql) in changes.iter().filter(|(d, _)| *d == day) {
            db.exec(sql).await;
        }
        let report = job::run(db.store.as_ref(), job, &run_request(true))
            .await
            .unwrap_or_else(|e| panic!("night {day}: {e}"));
        assert_eq!(report.status, RunStatus::Completed);
        nights.push(Night {
            day,
            run_id: report.run_id.expect("a completed run has an id"),
            hashes: live_hashes(db).await,
        });
    }
    nights
}

/// The owned catalog replayed from the log as it stood after `run`.
async fn replayed(db: &TestDb, run: RunId) -> (Hashes, ReplayStats) {
    let (state, stats) = history::replay_state(db.store.as_ref(), ENV, run, None)
        .await
        .unwrap_or_else(|e| panic!("replay of run {run}: {e}"));
    let hashes = state
        .iter()
        .map(|(k, (_, v))| (k.to_string(), hash_value(v).to_hex()))
        .collect();
    (hashes, stats)
}

/// Every event row and every run row in full, as text, in log order.
async fn log_rows(db: &TestDb) -> (Vec<String>, Vec<String>) {
    let events = db.table_text("cache_sync_event", "true", "seq").await;
    let runs = db.table_text("cache_sync_run", "true", "run_id").await;
    (events, runs)
}

/// What a command that must write nothing must leave as it was.
#[derive(Debug, PartialEq)]
struct Written {
    entries: Vec<String>,
    events: i64,
    runs: i64,
    checkpoints: i64,
}

async fn written(db: &TestDb) -> Written {
    Written {
        entries: db.raw_rows("true").await,
        events: db.count("cache_sync_event").await,
        runs: db.count("cache_sync_run").await,
        checkpoints: db.count("cache_sync_checkpoint").await,
    }
}

/// The `change` JSON of every event of one run.
async fn run_changes(db: &TestDb, run: RunId) -> Vec<(String, Value)> {
    db.sql(
        "select entry_type || '/' || entry_name || '/' || entry_key, change
         from cache_sync_event where run_id = $1 order by seq",
    )
    .bind(run.0)
    .fetch_all()
    .await
}

/// One logged event: `(seq, run_id, entry_name, change)`.
type LoggedChange = (i64, i64, String, Value);

/// Every logged event, in log order.
async fn logged_changes(db: &TestDb) -> Vec<LoggedChange> {
    db.sql("select seq, run_id, entry_name, change from cache_sync_event order by seq")
        .fetch_all()
        .await
}

/// The members an event added or removed: `(kind, ticker, reason code)`.
fn added_or_removed(change: &Value) -> Vec<(&'static str, String, String)> {
    member_changes(change)
        .into_iter()
        .filter(|(_, kind, _, _)| *kind != "changed")
        .map(|(_, kind, ticker, reason)| (kind, ticker, reason))
        .collect()
}

/// Every member change of a `change` JSON: (list, "added" / "removed" / "changed", ticker,
/// reason code).
fn member_changes(change: &Value) -> Vec<(String, &'static str, String, String)> {
    let mut out = Vec::new();
    for list in change["lists"].as_array().into_iter().flatten() {
        let path = list["path"].as_str().unwrap_or_default().to_owned();
        for (kind, field) in [
            ("added", "added"),
            ("removed", "removed"),
            ("changed", "changed"),
        ] {
            for m in list[field].as_array().into_iter().flatten() {
                let reason = if kind == "changed" {
                    m["reason"].as_str()
                } else {
                    m["reason"]["code"].as_str()
                };
                out.push((
                    path.clone(),
                    kind,
                    m["ticker"].as_str().unwrap_or_default().to_owned(),
                    reason.unwrap_or_default().to_owned(),
                ));
            }
        }
    }
    out
}

/// A delta as a comparable line: op, entry, hashes, tickers added and removed with reasons.
fn delta_signature(d: &DeltaLine) -> String {
    let mut added: Vec<String> = d
        .added
        .iter()
        .map(|m| format!("{}:{}", m.ticker, m.reason))
        .collect();
    let mut removed: Vec<String> = d
        .removed
        .iter()
        .map(|m| format!("{}:{}", m.ticker, m.reason))
        .collect();
    added.sort();
    removed.sort();
    format!(
        "{:?} {}/{}/{} {:?} -> {:?} +{added:?} -{removed:?}",
        d.op,
        d.entry_type,
        d.name,
        d.key,
        d.hash_before.map(|h| h.to_hex()),
        d.hash_after.map(|h| h.to_hex())
    )
}

fn signatures(deltas: &[DeltaLine]) -> Vec<String> {
    let mut out: Vec<String> = deltas.iter().map(delta_signature).collect();
    out.sort();
    out
}

use crate::helpers::{describe, text};

fn json_out(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("JSON on stdout ({e}): {}", describe(out)))
}

/// Run ids of the runs that wrote checkpoints, ascending.
async fn checkpoint_runs(db: &TestDb) -> Vec<i64> {
    db.sql("select distinct run_id from cache_sync_checkpoint order by run_id")
        .scalars()
        .await
}

/// Number of events logged by runs in `(after, up_to]`.
async fn events_between(db: &TestDb, after: i64, up_to: i64) -> i64 {
    db.sql("select count(*) from cache_sync_event where run_id > $1 and run_id <= $2")
        .bind(after)
        .bind(up_to)
        .scalar()
        .await
}

/// Member changes across the whole log, counted by reason code.
async fn reason_counts(db: &TestDb) -> BTreeMap<String, i64> {
    let mut counts = BTreeMap::new();
    for (_, _, _, change) in logged_changes(db).await {
        for (_, _, reason) in added_or_removed(&change) {
            *counts.entry(reason).or_insert(0) += 1;
        }
    }
    counts
}

const QUANTUM: &str = "insert into cache_entries (type, name, key, value, environment)
    values ('cache_config', 'theme_definitions', 'quantum', '[\"NVDA\", \"MSFT\", \"GOOGL\", \"IONQ\"]', 'DEFAULT')";
const QUANTUM_LIST: &str = "themes/Quantum/list";
const QUANTUM_UNIVERSE: &str = "stock_universe/themes/quantum";

// ---------------------------------------------------------------------------------------------
// 1. Replay over a long history
// ---------------------------------------------------------------------------------------------

async fn replaying_any_of_sixty_two_nightly_runs_reproduces_every_owned_entry_as_it_was_after_that_run(
    backend: Backend,
) {
    let db = TestDb::on(backend).await;
    let market = market(4242, 62);
    let job = job_config(7);
    let nights = simulate(
        &db,
        &market,
        &job,
        62,
        &[
            (30, QUANTUM),
            (
                45,
                "insert into cache_entries (type, name, key, value, environment)
                 values ('cache_config', 'market_cap_thresholds', 'large_cap', '12000000000', 'DEFAULT')",
            ),
        ],
    )
    .await;
    assert_eq!(nights.len(), 62);

    // The fixture's events happened and were logged with their reasons.
    let reasons = reason_counts(&db).await;
    for code in [
        "new_listing",
        "delisted_or_inactive",
        "threshold_crossed",
        "configuration_change",
        "rank_change",
    ] {
        assert!(
            reasons.get(code).copied().unwrap_or(0) > 0,
            "no `{code}` member change in {reasons:?}"
        );
    }
    let quantum_night = nights.iter().find(|n| n.day == 30).unwrap();
    assert!(quantum_night.hashes.contains_key(QUANTUM_LIST));
    assert!(!nights[28].hashes.contains_key(QUANTUM_LIST));

    let checkpoints = checkpoint_runs(&db).await;
    assert!(!checkpoints.is_empty(), "checkpoints were written");
    assert!(
        checkpoints.len() >= 62 / 7 - 1,
        "a checkpoint about every 7 runs: {checkpoints:?}"
    );

    let mut from_checkpoint = 0;
    for night in &nights {
        let run = night.run_id;
        let (hashes, stats) = replayed(&db, run).await;
        assert_eq!(
            hashes, night.hashes,
            "replay of run {run} (night {})",
            night.day
        );
        let expected_checkpoint = checkpoints.iter().copied().filter(|&c| c <= run.0).max();
        assert_eq!(
            stats.checkpoint_run.map(|r| r.0),
            expected_checkpoint,
            "run {run}"
        );
        assert!(
            run.0 - expected_checkpoint.unwrap_or(0) <= 7,
            "replay of run {run} folds at most 7 runs past its checkpoint"
        );
        assert_eq!(
            stats.events_applied as i64,
            events_between(&db, expected_checkpoint.unwrap_or(0), run.0).await,
            "replay of run {run} applies only the events after its checkpoint"
        );
        assert_eq!(stats.entries, night.hashes.len());
        from_checkpoint += usize::from(stats.checkpoint_run.is_some());

        let report = history::replay(db.store.as_ref(), ENV, run, true)
            .await
            .unwrap_or_else(|e| panic!("replay --verify of run {run}: {e}"));
        assert!(report.verified);
        let verified: Hashes = report
            .hashes
            .iter()
            .map(|(k, h)| (k.clone(), h.to_hex()))
            .collect();
        assert_eq!(verified, night.hashes, "replay --verify of run {run}");
    }
    assert!(
        from_checkpoint >= 40,
        "most replays start from a checkpoint ({from_checkpoint})"
    );

    // One entry at a few runs, through `show`.
    for night in nights
        .iter()
        .filter(|n| [1, 7, 29, 30, 44, 45, 62].contains(&n.day))
    {
        for universe in [LARGE_CAP, QUANTUM_LIST, "stock_universe/themes/ai"] {
            let shown = history::show(
                db.store.as_ref(),
                ENV,
                &key(universe),
                PointInHistory::AfterRun(night.run_id),
            )
            .await
            .unwrap();
            assert_eq!(shown.run_id, Some(night.run_id));
            assert_eq!(
                shown.hash.map(|h| h.to_hex()).as_ref(),
                night.hashes.get(universe),
                "{universe} after run {} (night {})",
                night.run_id,
                night.day
            );
            assert_eq!(shown.value.as_ref().map(hash_value), shown.hash);
        }
    }
    // `show` now reads the live row.
    let now = history::show(db.store.as_ref(), ENV, &key(LARGE_CAP), PointInHistory::Now)
        .await
        .unwrap();
    assert_eq!(now.run_id, None);
    assert_eq!(
        now.value,
        db.value("stock_universe", "market_cap", "large_cap").await
    );
}

on_both_stores!(
    replaying_any_of_sixty_two_nightly_runs_reproduces_every_owned_entry_as_it_was_after_that_run
);

// ---------------------------------------------------------------------------------------------
// 2. Rollback
// ---------------------------------------------------------------------------------------------

/// `mega_cap`'s lower bound lowered to $15B: the band more than doubles, so rolling back past
/// it removes most of its members (a mass removal).
const MEGA_CAP_LOWERED: &str = "insert into cache_entries (type, name, key, value, environment)
    values ('cache_config', 'market_cap_thresholds', 'mega_cap', '15000000000', 'DEFAULT')";

/// Executes `sql`, then runs (forced) on the data already loaded: a night whose only change is
/// the configuration.
async fn config_night(db: &TestDb, job: &JobConfig, day: usize, sql: &str) -> Night {
    db.exec(sql).await;
    let report = job::run(db.store.as_ref(), job, &run_request(true))
        .await
        .expect("run");
    Night {
        day,
        run_id: report.run_id.unwrap(),
        hashes: live_hashes(db).await,
    }
}

/// Ten nights of market data, then two nights that only change the configuration (a new theme,
/// then `mega_cap` lowered). The rollback target is the last market night, so the rollback
/// undoes configuration-driven changes only: every member of the target state is still an
/// active symbol (see `a_rollback_to_a_run_before_a_delisting_restores_that_state` for a target
/// further back).
async fn a_rollback_is_a_new_run_that_restores_the_replayed_state_and_only_appends_to_the_log(
    backend: Backend,
) {
    let db = TestDb::on(backend).await;
    let market = market(777, 12);
    let job = job_config(5);
    let mut nights = simulate(&db, &market, &job, 10, &[]).await;
    nights.push(config_night(&db, &job, 10, QUANTUM).await);
    nights.push(config_night(&db, &job, 10, MEGA_CAP_LOWERED).await);
    let target_night = 9; // the last market night, before both configuration changes
    let target = nights[target_night].run_id;
    let last_nightly = nights.last().unwrap().run_id;
    let pre = live_hashes(&db).await;
    assert_ne!(
        pre, nights[target_night].hashes,
        "the catalog moved since the target"
    );
    let (target_hashes, _) = replayed(&db, target).await;
    assert_eq!(target_hashes, nights[target_night].hashes);

    // --- The dry run (library) writes nothing and names the mass removal.
    db.count_writes().await;
    let before = written(&db).await;
    let plan = job::plan_rollback(db.store.as_ref(), &job, target, today())
        .await
        .unwrap();
    assert!(plan.has_changes());
    assert!(
        plan.refusals.iter().any(|r| matches!(
            r,
            Refusal::MassRemoval { entry, .. } | Refusal::WouldEmpty { entry, .. } if entry == MEGA_CAP
        )),
        "rolling mega_cap back to $200B removes most of its members: {:?}",
        plan.refusals
    );
    assert!(
        plan.refusals.iter().all(|r| !r.is_about_input()),
        "{:?}",
        plan.refusals
    );
    assert!(
        plan.deltas
            .iter()
            .any(|d| d.op == tickstock_cache_sync::domain::diff::Op::Delete
                && format!("{}/{}/{}", d.entry_type, d.name, d.key) == QUANTUM_UNIVERSE),
        "the theme added after the target is deleted"
    );
    assert_eq!(written(&db).await, before, "plan_rollback wrote nothing");
    assert_eq!(db.writes().await, 0);

    // --- The CLI dry run: exit 5, nothing written.
    let target_arg = target.0.to_string();
    let out = cache_sync_cli(&db, &["rollback", "--to-run", &target_arg, "--dry-run"]);
    assert_eq!(out.status.code(), Some(5), "{}", describe(&out));
    assert!(text(&out.stdout).contains(MEGA_CAP), "{}", describe(&out));
    let out = cache_sync_cli(
        &db,
        &[
            "rollback",
            "--to-run",
            &target_arg,
            "--dry-run",
            "--format",
            "json",
        ],
    );
    assert_eq!(out.status.code(), Some(5), "{}", describe(&out));
    let dry = json_out(&out);
    assert_eq!(dry["deltas"].as_array().unwrap().len(), plan.deltas.len());
    assert_eq!(
        written(&db).await,
        before,
        "rollback --dry-run wrote nothing"
    );
    assert_eq!(db.writes().await, 0);

    // --- Without force the mass-change guard refuses it: exit 3, one refused run record.
    let out = cache_sync_cli(&db, &["rollback", "--to-run", &target_arg]);
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    assert!(
        text(&out.stdout).contains(&format!("GUARD: {MEGA_CAP}")),
        "{}",
        describe(&out)
    );
    let after_refusal = written(&db).await;
    assert_eq!(after_refusal.entries, before.entries);
    assert_eq!(after_refusal.events, before.events);
    assert_eq!(after_refusal.checkpoints, before.checkpoints);
    assert_eq!(after_refusal.runs, before.runs + 1);
    assert_eq!(db.writes().await, 0);
    let (trigger, status): (String, String) = db
        .sql("select trigger, status from cache_sync_run order by run_id desc limit 1")
        .fetch_one()
        .await;
    assert_eq!((trigger.as_str(), status.as_str()), ("rollback", "refused"));

    // --- Forced, it applies as a new run.
    let (events_before, runs_before) = log_rows(&db).await;
    let report: RunReport = job::rollback(db.store.as_ref(), &job, target, &run_request(true))
        .await
        .expect("a forced rollback applies");
    let rollback_run = report.run_id.unwrap();
    assert!(rollback_run > last_nightly);
    assert_eq!(report.status, RunStatus::Completed);
    let live = live_hashes(&db).await;
    assert_eq!(
        live, target_hashes,
        "the live catalog is the replay of run {target}"
    );
    assert_eq!(
        signatures(&report.deltas),
        signatures(&plan.deltas),
        "the dry run listed the deltas the rollback applied"
    );

    let (trigger, status, families): (String, String, String) = db
        .sql("select trigger, status, families from cache_sync_run where run_id = $1")
        .bind(rollback_run.0)
        .fetch_one()
        .await;
    assert_eq!(
        (trigger.as_str(), status.as_str()),
        ("rollback", "completed")
    );
    assert!(families.contains(&target.to_string()), "{families}");

    let changes = run_changes(&db, rollback_run).await;
    assert_eq!(changes.len(), report.deltas.len(), "one event per delta");
    let members: Vec<_> = changes
        .iter()
        .flat_map(|(_, c)| member_changes(c))
        .collect();
    assert!(members.iter().any(|m| m.1 == "added") && members.iter().any(|m| m.1 == "removed"));
    for (entry, change) in &changes {
        for (_, kind, ticker, reason) in member_changes(change) {
            assert_eq!(reason, "rollback", "{entry}: {kind} {ticker}");
        }
    }

    // The log only grew: every earlier row is text-identical.
    let (events_after, runs_after) = log_rows(&db).await;
    assert!(events_after.len() > events_before.len());
    assert!(runs_after.len() > runs_before.len());
    assert_eq!(events_after[..events_before.len()], events_before[..]);
    assert_eq!(runs_after[..runs_before.len()], runs_before[..]);

    // Replaying the rollback run itself is exact.
    let (at_rollback, _) = replayed(&db, rollback_run).await;
    assert_eq!(at_rollback, live);

    // --- Rolling back the rollback restores the state before it (CLI, forced: exit 0).
    let out = cache_sync_cli(
        &db,
        &[
            "rollback",
            "--to-run",
            &last_nightly.0.to_string(),
            "--force",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_eq!(
        live_hashes(&db).await,
        pre,
        "rolling back the rollback restores the catalog"
    );
    let second: i64 = db
        .sql("select max(run_id) from cache_sync_run where trigger = 'rollback' and status = 'completed'")
        .scalar()
        .await;
    assert!(second > rollback_run.0);
    let (at_second, _) = replayed(&db, RunId(second)).await;
    assert_eq!(at_second, pre);

    // Every past run still replays exactly, nightly and rollback runs alike.
    for night in &nights {
        assert_eq!(
            replayed(&db, night.run_id).await.0,
            night.hashes,
            "run {}",
            night.run_id
        );
        history::replay(db.store.as_ref(), ENV, night.run_id, true)
            .await
            .unwrap();
    }
    assert_eq!(replayed(&db, rollback_run).await.0, target_hashes);
    history::replay(db.store.as_ref(), ENV, RunId(second), true)
        .await
        .unwrap();

    // A no-op rollback (to the state the catalog is in) has nothing to do.
    let plan = job::plan_rollback(db.store.as_ref(), &job, RunId(second), today())
        .await
        .unwrap();
    assert!(!plan.has_changes(), "{:?}", signatures(&plan.deltas));
    let out = cache_sync_cli(
        &db,
        &["rollback", "--to-run", &second.to_string(), "--dry-run"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
}

on_both_stores!(
    a_rollback_is_a_new_run_that_restores_the_replayed_state_and_only_appends_to_the_log
);

/// Rollback to an early run, with delistings in between: the replayed state holds members that
/// are no longer active, which is exactly what a rollback must restore.
async fn a_rollback_to_a_run_before_a_delisting_restores_that_state(backend: Backend) {
    let db = TestDb::on(backend).await;
    let job = job_config(5);
    let nights = simulate(&db, &market(777, 14), &job, 12, &[]).await;
    let target = nights[2].run_id;
    let delisted = logged_changes(&db)
        .await
        .iter()
        .filter(|(_, run_id, _, _)| *run_id > target.0)
        .flat_map(|(_, _, _, change)| added_or_removed(change))
        .filter(|(kind, _, reason)| *kind == "removed" && reason == "delisted_or_inactive")
        .count();
    assert!(delisted > 0, "members were delisted after the target run");

    let plan = job::plan_rollback(db.store.as_ref(), &job, target, today())
        .await
        .unwrap();
    assert!(plan.has_changes());
    let report = job::rollback(db.store.as_ref(), &job, target, &run_request(true))
        .await
        .unwrap_or_else(|e| panic!("a forced rollback to run {target} applies: {e}"));
    assert_eq!(live_hashes(&db).await, nights[2].hashes);
    assert_eq!(signatures(&report.deltas), signatures(&plan.deltas));
    let out = cache_sync_cli(
        &db,
        &[
            "rollback",
            "--to-run",
            &nights[11].run_id.0.to_string(),
            "--force",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_eq!(live_hashes(&db).await, nights[11].hashes);
}

on_both_stores!(a_rollback_to_a_run_before_a_delisting_restores_that_state);

// ---------------------------------------------------------------------------------------------
// 3. Drift
// ---------------------------------------------------------------------------------------------

/// A database with a short history (5 nights) and a checkpoint policy that does not fire.
async fn short_history(backend: Backend, seed: u64) -> (TestDb, JobConfig) {
    let db = TestDb::on(backend).await;
    let job = job_config(1000);
    simulate(&db, &market(seed, 6), &job, 5, &[]).await;
    (db, job)
}

/// `cache-sync verify --format json`: exit code and differences by universe.
fn verify(db: &TestDb) -> (Option<i32>, BTreeMap<String, Value>) {
    let out = cache_sync_cli(db, &["verify", "--format", "json"]);
    let differences = json_out(&out)
        .as_array()
        .unwrap_or_else(|| panic!("an array: {}", describe(&out)))
        .iter()
        .map(|d| (d["universe"].as_str().unwrap().to_owned(), d.clone()))
        .collect();
    (out.status.code(), differences)
}

async fn forced_run(db: &TestDb, job: &JobConfig) -> RunReport {
    job::run(db.store.as_ref(), job, &run_request(true))
        .await
        .expect("run")
}

async fn entry_id(db: &TestDb, universe: &str) -> Option<i64> {
    let k = key(universe);
    db.sql(
        "select cast(id as bigint) from cache_entries
         where environment = 'DEFAULT' and type = $1 and name = $2 and key = $3",
    )
    .bind(&k.entry_type)
    .bind(&k.name)
    .bind(&k.key)
    .scalar_optional()
    .await
}

async fn an_edited_row_is_reported_by_verify_and_plan_and_reconciled_with_reason_manual_drift(
    backend: Backend,
) {
    let (db, job) = short_history(backend, 31).await;
    let (code, differences) = verify(&db);
    assert_eq!((code, differences.len()), (Some(0), 0));
    let out = cache_sync_cli(&db, &["verify"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(
        text(&out.stdout).contains("Every owned row matches"),
        "{}",
        describe(&out)
    );

    let logged = db.value("themes", "Ai", "list").await.unwrap();
    let logged_tickers: Vec<String> = serde_json::from_value(logged.clone()).unwrap();
    assert!(logged_tickers.len() >= 3, "{logged}");
    let id_before = entry_id(&db, AI_LIST).await;
    // An operator drops the last two members and adds one by hand.
    let mut edited: Vec<String> = logged_tickers[..logged_tickers.len() - 2].to_vec();
    edited.push("ZZZZ".to_owned());
    db.set_value("themes", "Ai", "list", &serde_json::json!(edited))
        .await;

    let (code, differences) = verify(&db);
    assert_eq!(code, Some(5));
    assert_eq!(differences.keys().collect::<Vec<_>>(), vec![AI_LIST]);
    let d = &differences[AI_LIST];
    assert_eq!(d["kind"], "edited");
    assert_eq!(d["logged_hash"], hash_value(&logged).to_hex());
    assert_eq!(
        d["live_hash"],
        hash_value(&serde_json::json!(edited)).to_hex()
    );
    assert_eq!(d["extra_members"], serde_json::json!(["ZZZZ"]));
    let mut missing = logged_tickers[logged_tickers.len() - 2..].to_vec();
    missing.sort();
    assert_eq!(d["missing_members"], serde_json::json!(missing));
    let out = cache_sync_cli(&db, &["verify"]);
    assert_eq!(out.status.code(), Some(5), "{}", describe(&out));
    assert!(
        text(&out.stdout).contains(&format!("edited   {AI_LIST}")),
        "{}",
        describe(&out)
    );

    let plan = job::plan(db.store.as_ref(), &job, &PlanRequest::default(), today())
        .await
        .unwrap();
    assert_eq!(plan.drift, vec![AI_LIST.to_owned()]);
    assert_eq!(plan.deltas.len(), 1);

    let report = forced_run(&db, &job).await;
    assert_eq!(report.drift, vec![AI_LIST.to_owned()]);
    assert_eq!((report.created, report.updated, report.deleted), (0, 1, 0));
    assert_eq!(
        db.value("themes", "Ai", "list").await.unwrap(),
        logged,
        "reconciled"
    );
    assert_eq!(entry_id(&db, AI_LIST).await, id_before, "updated in place");
    let changes = run_changes(&db, report.run_id.unwrap()).await;
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].0, AI_LIST);
    let members = member_changes(&changes[0].1);
    let moved: BTreeSet<(&str, String)> = members.iter().map(|m| (m.1, m.2.clone())).collect();
    let mut expected: BTreeSet<(&str, String)> =
        missing.iter().map(|t| ("added", t.clone())).collect();
    expected.insert(("removed", "ZZZZ".to_owned()));
    assert!(expected.is_subset(&moved), "{members:?}");
    for m in &members {
        assert_eq!(m.3, "manual_drift", "{m:?}");
    }

    let (code, differences) = verify(&db);
    assert_eq!((code, differences.len()), (Some(0), 0), "{differences:?}");
    let plan = job::plan(db.store.as_ref(), &job, &PlanRequest::default(), today())
        .await
        .unwrap();
    assert!(plan.drift.is_empty() && !plan.has_changes());
}

on_both_stores!(
    an_edited_row_is_reported_by_verify_and_plan_and_reconciled_with_reason_manual_drift
);

async fn a_deleted_row_is_reported_and_recreated_by_the_next_run(backend: Backend) {
    let (db, job) = short_history(backend, 32).await;
    let logged = db
        .value("stock_universe", "market_cap", "mega_cap")
        .await
        .unwrap();
    db.exec("delete from cache_entries where type = 'stock_universe' and name = 'market_cap' and key = 'mega_cap'")
        .await;

    let (code, differences) = verify(&db);
    assert_eq!(code, Some(5));
    assert_eq!(differences.keys().collect::<Vec<_>>(), vec![MEGA_CAP]);
    assert_eq!(differences[MEGA_CAP]["kind"], "deleted");
    assert_eq!(differences[MEGA_CAP]["live_hash"], Value::Null);
    assert_eq!(
        differences[MEGA_CAP]["logged_hash"],
        hash_value(&logged).to_hex()
    );
    let plan = job::plan(db.store.as_ref(), &job, &PlanRequest::default(), today())
        .await
        .unwrap();
    assert_eq!(plan.drift, vec![MEGA_CAP.to_owned()]);

    let report = forced_run(&db, &job).await;
    assert_eq!((report.created, report.updated, report.deleted), (1, 0, 0));
    assert_eq!(
        db.value("stock_universe", "market_cap", "mega_cap")
            .await
            .unwrap(),
        logged
    );
    let changes = run_changes(&db, report.run_id.unwrap()).await;
    assert_eq!(changes.len(), 1);
    for m in member_changes(&changes[0].1) {
        assert_eq!(m.3, "manual_drift", "{m:?}");
    }
    assert_eq!(verify(&db).0, Some(0));
    assert_eq!(
        replayed(&db, report.run_id.unwrap()).await.0,
        live_hashes(&db).await
    );
}

on_both_stores!(a_deleted_row_is_reported_and_recreated_by_the_next_run);

async fn a_hand_inserted_row_the_catalog_does_not_want_is_deleted_and_one_it_wants_is_adopted_in_place(
    backend: Backend,
) {
    let (db, job) = short_history(backend, 33).await;
    let logged_mega = db
        .value("stock_universe", "market_cap", "mega_cap")
        .await
        .unwrap();
    db.exec(
        "insert into cache_entries (type, name, key, value, environment)
             values ('stock_universe', 'market_cap', 'giga_cap', '[]', 'DEFAULT');
         delete from cache_entries where type = 'stock_universe' and name = 'market_cap' and key = 'mega_cap';
         insert into cache_entries (type, name, key, value, environment)
             values ('stock_universe', 'market_cap', 'mega_cap', '{\"count\": 1, \"stocks\": [{\"ticker\": \"ZZZZ\"}]}', 'DEFAULT');",
    )
    .await;
    let hand_id = entry_id(&db, MEGA_CAP).await.unwrap();
    let giga = "stock_universe/market_cap/giga_cap";

    let (code, differences) = verify(&db);
    assert_eq!(code, Some(5));
    assert_eq!(
        differences.keys().cloned().collect::<BTreeSet<_>>(),
        BTreeSet::from([giga.to_owned(), MEGA_CAP.to_owned()])
    );
    assert_eq!(differences[giga]["kind"], "inserted");
    assert_eq!(differences[giga]["logged_hash"], Value::Null);
    assert_eq!(differences[MEGA_CAP]["kind"], "edited");
    assert_eq!(
        differences[MEGA_CAP]["extra_members"],
        serde_json::json!(["ZZZZ"])
    );

    let report = forced_run(&db, &job).await;
    assert_eq!((report.created, report.updated, report.deleted), (0, 1, 1));
    assert_eq!(
        entry_id(&db, giga).await,
        None,
        "the unwanted row is deleted"
    );
    assert_eq!(
        entry_id(&db, MEGA_CAP).await,
        Some(hand_id),
        "the wanted row is adopted in place"
    );
    assert_eq!(
        db.value("stock_universe", "market_cap", "mega_cap")
            .await
            .unwrap(),
        logged_mega,
        "and corrected"
    );
    for (entry, change) in run_changes(&db, report.run_id.unwrap()).await {
        for m in member_changes(&change) {
            assert_eq!(m.3, "manual_drift", "{entry}: {m:?}");
        }
    }
    assert_eq!(verify(&db).0, Some(0));
}

on_both_stores!(
    a_hand_inserted_row_the_catalog_does_not_want_is_deleted_and_one_it_wants_is_adopted_in_place
);

/// Replay stays exact across a drift reconciliation (SPEC §7): the reconciling run is a point in
/// history like any other.
async fn the_log_still_replays_exactly_after_an_edited_row_is_reconciled(backend: Backend) {
    let (db, job) = short_history(backend, 34).await;
    db.set_value("themes", "Ai", "list", &serde_json::json!(["AMD", "ZZZZ"]))
        .await;
    let report = forced_run(&db, &job).await;
    assert_eq!(report.drift, vec![AI_LIST.to_owned()]);
    let run = report.run_id.unwrap();
    let replay = history::replay_state(db.store.as_ref(), ENV, run, None).await;
    let live = live_hashes(&db).await;
    match replay {
        Ok((state, _)) => {
            let hashes: Hashes = state
                .iter()
                .map(|(k, (_, v))| (k.to_string(), hash_value(v).to_hex()))
                .collect();
            assert_eq!(hashes, live);
        }
        Err(e) => panic!("replay of the reconciling run {run} fails: {e}"),
    }
}

on_both_stores!(the_log_still_replays_exactly_after_an_edited_row_is_reconciled);

async fn the_log_still_replays_exactly_after_a_hand_inserted_row_is_deleted(backend: Backend) {
    let (db, job) = short_history(backend, 35).await;
    db.exec(
        "insert into cache_entries (type, name, key, value, environment)
         values ('stock_universe', 'market_cap', 'giga_cap', '[]', 'DEFAULT')",
    )
    .await;
    let report = forced_run(&db, &job).await;
    assert_eq!(report.deleted, 1);
    let run = report.run_id.unwrap();
    match history::replay_state(db.store.as_ref(), ENV, run, None).await {
        Ok((state, _)) => {
            let hashes: Hashes = state
                .iter()
                .map(|(k, (_, v))| (k.to_string(), hash_value(v).to_hex()))
                .collect();
            assert_eq!(hashes, live_hashes(&db).await);
        }
        Err(e) => panic!("replay of the reconciling run {run} fails: {e}"),
    }
}

on_both_stores!(the_log_still_replays_exactly_after_a_hand_inserted_row_is_deleted);

// ---------------------------------------------------------------------------------------------
// 4. history / show on the command line
// ---------------------------------------------------------------------------------------------

async fn the_cli_lists_history_newest_first_with_reasons_and_shows_past_values_by_replay(
    backend: Backend,
) {
    let db = TestDb::on(backend).await;
    let market = market(909, 18);
    let job = job_config(5);
    let nights = simulate(&db, &market, &job, 16, &[]).await;

    // --- A universe's history.
    let out = cache_sync_cli(
        &db,
        &["history", LARGE_CAP, "--format", "json", "--limit", "1000"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let lines = json_out(&out);
    let lines = lines.as_array().unwrap();
    let k = key(LARGE_CAP);
    let logged: Vec<(i64, i64)> = db
        .sql(
            "select seq, run_id from cache_sync_event
             where entry_type = $1 and entry_name = $2 and entry_key = $3 order by seq desc",
        )
        .bind(&k.entry_type)
        .bind(&k.name)
        .bind(&k.key)
        .fetch_all()
        .await;
    assert!(logged.len() >= 3, "large_cap changed on several nights");
    assert_eq!(
        lines
            .iter()
            .map(|l| (l["seq"].as_i64().unwrap(), l["run_id"].as_i64().unwrap()))
            .collect::<Vec<_>>(),
        logged,
        "every event of the universe, newest first"
    );
    assert!(lines.iter().all(|l| l["universe"] == LARGE_CAP));
    assert_eq!(lines.last().unwrap()["op"], "created");
    assert_eq!(lines.last().unwrap()["run_id"], nights[0].run_id.0);
    assert_eq!(lines[0]["as_of"].as_str().map(|s| s.to_owned()), {
        let run = lines[0]["run_id"].as_i64().unwrap();
        let day = nights.iter().find(|n| n.run_id.0 == run).unwrap().day;
        Some(market.date_of_day(day).to_string())
    });
    let mut crossed = 0;
    for line in lines.iter().filter(|l| l["op"] == "updated") {
        for m in line["added"]
            .as_array()
            .unwrap()
            .iter()
            .chain(line["removed"].as_array().unwrap())
        {
            let reason = m["reason"].as_str().unwrap();
            assert!(!reason.is_empty());
            if reason == "threshold_crossed" {
                crossed += 1;
                assert_eq!(m["detail"]["field"], "market_cap", "{m}");
                assert!(
                    m["detail"]["before"].is_i64() && m["detail"]["after"].is_i64(),
                    "{m}"
                );
                let threshold = m["detail"]["threshold"]
                    .as_i64()
                    .expect("the threshold crossed");
                assert!(
                    [10_000_000_000, 200_000_000_000].contains(&threshold),
                    "{m}"
                );
            }
        }
    }
    assert!(
        crossed > 0,
        "some member crossed a large_cap bound: {lines:?}"
    );
    // The text form: newest first, reasons and details.
    let out = cache_sync_cli(&db, &["history", LARGE_CAP, "--limit", "1000"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let stdout = text(&out.stdout);
    let runs_listed: Vec<i64> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("run "))
        .map(|l| l.split_whitespace().next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(
        runs_listed,
        logged.iter().map(|(_, r)| *r).collect::<Vec<_>>(),
        "{stdout}"
    );
    assert!(stdout.contains("(threshold_crossed) {"), "{stdout}");

    // --- A symbol's history: pick a stock that crossed a band after the first night.
    let log = logged_changes(&db).await;
    let mut crossings: BTreeMap<String, usize> = BTreeMap::new();
    for (_, run_id, name, change) in &log {
        if name != "market_cap" || *run_id <= nights[0].run_id.0 {
            continue;
        }
        for (kind, ticker, reason) in added_or_removed(change) {
            if kind == "added" && reason == "threshold_crossed" {
                *crossings.entry(ticker).or_default() += 1;
            }
        }
    }
    // The most frequent crosser; the first in ticker order among equals.
    let ticker = crossings
        .iter()
        .max_by_key(|(t, n)| (**n, std::cmp::Reverse((*t).clone())))
        .map(|(t, _)| t.clone())
        .expect("some stock crossed a band boundary");
    let out = cache_sync_cli(
        &db,
        &[
            "history",
            "--symbol",
            &ticker.to_lowercase(),
            "--format",
            "json",
            "--limit",
            "1000",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let lines = json_out(&out);
    let lines = lines.as_array().unwrap();
    let expected: Vec<i64> = log
        .iter()
        .rev()
        .filter(|(_, _, _, change)| {
            added_or_removed(change)
                .iter()
                .any(|(_, t, _)| *t == ticker)
        })
        .map(|(seq, ..)| *seq)
        .collect();
    assert_eq!(
        lines
            .iter()
            .map(|l| l["seq"].as_i64().unwrap())
            .collect::<Vec<_>>(),
        expected,
        "{ticker}"
    );
    let mut saw = (false, false);
    for line in lines {
        let added = line["added"].as_array().unwrap();
        let removed = line["removed"].as_array().unwrap();
        assert!(!added.is_empty() || !removed.is_empty(), "{line}");
        for m in added.iter().chain(removed) {
            assert_eq!(
                m["ticker"],
                ticker.as_str(),
                "only {ticker}'s moves are listed: {line}"
            );
            assert!(!m["reason"].as_str().unwrap().is_empty());
        }
        if line["universe"]
            .as_str()
            .unwrap()
            .starts_with("stock_universe/market_cap/")
            && line["op"] == "updated"
        {
            for m in added.iter().chain(removed) {
                if m["reason"] == "threshold_crossed" {
                    assert_eq!(m["detail"]["field"], "market_cap");
                    saw.0 |= !added.is_empty();
                    saw.1 |= !removed.is_empty();
                }
            }
        }
    }
    assert_eq!(
        saw,
        (true, true),
        "{ticker} left one band and joined another: {lines:?}"
    );

    // --- show at a past run, by replay.
    for night in [&nights[0], &nights[6], &nights[11], nights.last().unwrap()] {
        let out = cache_sync_cli(
            &db,
            &[
                "show",
                LARGE_CAP,
                "--at-run",
                &night.run_id.0.to_string(),
                "--format",
                "json",
            ],
        );
        assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
        let shown = json_out(&out);
        assert_eq!(shown["universe"], LARGE_CAP);
        assert_eq!(shown["run_id"], night.run_id.0);
        assert_eq!(
            shown["hash"].as_str(),
            night.hashes.get(LARGE_CAP).map(String::as_str)
        );
        assert_eq!(
            hash_value(&shown["value"]).to_hex(),
            night.hashes[LARGE_CAP]
        );
        assert_eq!(
            shown["members"],
            shown["value"]["stocks"].as_array().unwrap().len()
        );
    }
    let out = cache_sync_cli(&db, &["show", LARGE_CAP, "--format", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let shown = json_out(&out);
    assert_eq!(shown["run_id"], Value::Null);
    assert_eq!(
        Some(shown["value"].clone()),
        db.value("stock_universe", "market_cap", "large_cap").await
    );
    let out = cache_sync_cli(
        &db,
        &[
            "show",
            LARGE_CAP,
            "--at-run",
            &nights[3].run_id.0.to_string(),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(
        text(&out.stdout).contains(&nights[3].hashes[LARGE_CAP]),
        "{}",
        describe(&out)
    );

    // --- Unknown run ids: exit 2 naming the run.
    for args in [
        vec!["show", LARGE_CAP, "--at-run", "999999"],
        vec!["replay", "--at-run", "999999"],
        vec!["replay", "--at-run", "999999", "--verify"],
        vec!["rollback", "--to-run", "999999", "--dry-run"],
        vec!["rollback", "--to-run", "999999", "--force"],
    ] {
        let before = written(&db).await;
        let out = cache_sync_cli(&db, &args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", describe(&out));
        assert!(
            text(&out.stderr).contains("run 999999"),
            "{args:?}: {}",
            describe(&out)
        );
        assert_eq!(written(&db).await, before, "{args:?} wrote nothing");
    }
}

on_both_stores!(the_cli_lists_history_newest_first_with_reasons_and_shows_past_values_by_replay);

// ---------------------------------------------------------------------------------------------
// 5. A no-op night
// ---------------------------------------------------------------------------------------------

async fn a_night_without_input_change_appends_one_run_record_and_nothing_else(backend: Backend) {
    let db = TestDb::on(backend).await;
    let job = job_config(1000);
    let nights = simulate(&db, &market(55, 3), &job, 2, &[]).await;
    db.count_writes().await;
    let before = written(&db).await;
    let (events_before, runs_before) = log_rows(&db).await;

    let report = forced_run(&db, &job).await;
    assert_eq!((report.created, report.updated, report.deleted), (0, 0, 0));
    assert_eq!(report.unchanged, nights[1].hashes.len());
    let after = written(&db).await;
    assert_eq!(after.runs, before.runs + 1, "exactly one run record");
    assert_eq!(after.events, before.events, "no event");
    assert_eq!(
        (before.checkpoints, after.checkpoints),
        (0, 0),
        "no checkpoint row"
    );
    assert_eq!(after.entries, before.entries);
    assert_eq!(db.writes().await, 0);
    let (events_after, runs_after) = log_rows(&db).await;
    assert_eq!(events_after, events_before);
    assert_eq!(runs_after[..runs_before.len()], runs_before[..]);
    let head_rows: i64 = db.count("cache_sync_entry_head").await;
    assert_eq!(head_rows as usize, nights[1].hashes.len());
    // The no-op run is a point in history like any other.
    assert_eq!(
        replayed(&db, report.run_id.unwrap()).await.0,
        nights[1].hashes
    );
}

on_both_stores!(a_night_without_input_change_appends_one_run_record_and_nothing_else);

// ---------------------------------------------------------------------------------------------
// Configuration that stops owning an entry
// ---------------------------------------------------------------------------------------------

/// A theme removed from `cache_config`: the job wrote its `themes/{Name}/list` row, so the scope
/// stays owned and the row is deleted, and the log records its end. Checkpoints written
/// afterwards agree with a full fold of the log.
async fn replay_verify_agrees_with_checkpoints_after_a_theme_is_removed_from_the_configuration(
    backend: Backend,
) {
    let db = TestDb::on(backend).await;
    let job = job_config(3);
    let nights = simulate(
        &db,
        &market(66, 10),
        &job,
        9,
        &[
            (2, QUANTUM),
            (
                4,
                "delete from cache_entries where type = 'cache_config' and key = 'quantum'",
            ),
        ],
    )
    .await;
    assert!(nights[2].hashes.contains_key(QUANTUM_LIST));
    assert!(
        !nights[3].hashes.contains_key(QUANTUM_UNIVERSE),
        "the owned stock_universe row is deleted"
    );
    assert!(
        !nights[3].hashes.contains_key(QUANTUM_LIST),
        "the themes row the job wrote stays owned and is deleted with the theme"
    );
    for night in &nights {
        let report = history::replay(db.store.as_ref(), ENV, night.run_id, true).await;
        assert!(
            report.is_ok(),
            "replay --verify of run {} (night {}): {}",
            night.run_id,
            night.day,
            report.unwrap_err()
        );
    }
}

on_both_stores!(
    replay_verify_agrees_with_checkpoints_after_a_theme_is_removed_from_the_configuration
);
