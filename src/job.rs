//! Orchestration, and the only module that knows the order of operations: open a transaction,
//! take the writer lock, load the market and the owned rows, compute the catalog, diff, check
//! invariants and guard rails, apply, commit. Plans run the same steps and roll back.

use crate::domain::catalog::{compute_catalog, Catalog, DesiredEntry};
use crate::domain::config::{CatalogConfig, ConfigError, ConfigWarning, TomlFile};
use crate::domain::diff::{diff, previous_records, CurrentEntry, Delta, Known, Op};
use crate::domain::events::{run_events, Channels, RunFacts};
use crate::domain::fingerprint::{hash_serializable, hash_value, ContentHash};
use crate::domain::guard::{self, GuardConfig, InputFreshness, Refusal};
use crate::domain::invariants::{check_catalog, collisions, Collision, Identity, Violation};
use crate::domain::reasons::{ReasonCode, ReasonContext};
use crate::domain::replay::State;
use crate::domain::securities::{normalize, InputReport};
use crate::domain::types::{EntryKey, Family, FamilySelection, RunId};
use crate::report::{
    plan_id, DeltaLine, FamilySummary, PlanReport, RunOutcome, RunReport, StepTimings,
};
use crate::store::{
    EntryHead, EventLog, LockOutcome, NewRun, RunStatus, RunTx, Store, StoreError, StoredRow,
    Trigger,
};
use chrono::{DateTime, NaiveDate, Utc};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::Instant;

/// Settings that stay the same across runs of one deployment.
#[derive(Debug, Clone)]
pub struct JobConfig {
    /// The `cache_entries.environment` the job owns.
    pub environment: String,
    /// The optional TOML file, already parsed, with a label for messages.
    pub toml: Option<(String, TomlFile)>,
    pub guards: GuardConfig,
    /// A full run writes a checkpoint (the whole owned catalog) once this many completed runs
    /// have passed since the last one, so replay never folds more than that many runs.
    pub checkpoint_every: i64,
    /// Redis channel names the run's events are queued for.
    pub channels: Channels,
}

impl Default for JobConfig {
    fn default() -> Self {
        Self {
            environment: "DEFAULT".to_owned(),
            toml: None,
            guards: GuardConfig::default(),
            checkpoint_every: 10,
            channels: Channels::default(),
        }
    }
}

/// What to plan.
#[derive(Debug, Clone, Default)]
pub struct PlanRequest {
    /// Defaults to the latest date in `ohlcv_daily`.
    pub as_of: Option<NaiveDate>,
    /// Empty means every family.
    pub only: Vec<Family>,
}

/// What to run.
#[derive(Debug, Clone)]
pub struct RunRequest {
    pub plan: PlanRequest,
    /// Pass the guard rails (recorded in the run record).
    pub force: bool,
    pub trigger: Trigger,
    /// Wall-clock time of the request (run record timestamps and the age guard only).
    pub now: DateTime<Utc>,
    /// Test hook: stop forever just before commit, after announcing it on stderr.
    pub pause_before_commit: bool,
    /// The caller's id for this job (API job id, or one made up by the CLI); events carry it.
    pub job_id: String,
    /// Where step progress goes while the run works (Redis, the API's job status).
    pub progress: Option<tokio::sync::mpsc::UnboundedSender<Progress>>,
    /// Apply only if the plan computed inside the run's transaction has this id.
    pub expect_plan: Option<String>,
}

/// A step of a run, for progress displays.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Progress {
    pub step: &'static str,
    pub percent: u8,
    pub entries_changed: usize,
}

impl RunRequest {
    fn progress(&self, step: &'static str, percent: u8, entries_changed: usize) {
        if let Some(sender) = &self.progress {
            // A receiver that went away only means nobody watches any more.
            let _ = sender.send(Progress {
                step,
                percent,
                entries_changed,
            });
        }
    }
}

/// Why a job did not complete.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("ohlcv_daily holds no prices, so there is no as-of date; load prices or pass --as-of")]
    NoPrices,
    #[error("another cache-sync run holds the writer lock; try again when it has finished")]
    LockHeld,
    #[error("the plan changed since {expected} was computed (now {actual}); nothing written, plan again")]
    PlanMoved { expected: String, actual: String },
    #[error("refused by guard rails (run {run_id} recorded as refused, nothing written): {}", summary(.refusals))]
    Refused {
        run_id: RunId,
        refusals: Vec<Refusal>,
        report: Box<RunReport>,
    },
    #[error("refused: the catalog would collide under unique constraint(s) of cache_entries (run {run_id} recorded as refused, nothing written): {}", collision_summary(.collisions))]
    Collision {
        run_id: RunId,
        collisions: Vec<Collision>,
    },
    #[error("internal invariant broken, nothing written: {}", violation_summary(.0))]
    Invariant(Vec<Violation>),
}

fn summary(refusals: &[Refusal]) -> String {
    refusals
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

fn collision_summary(collisions: &[Collision]) -> String {
    collisions
        .iter()
        .map(|c| {
            format!(
                "{} ({}) cannot hold {}; run `cache-sync migrate --widen-unique` to widen it to include name",
                c.constraint,
                c.columns.join(", "),
                c.entries.join(", ")
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn violation_summary(violations: &[Violation]) -> String {
    violations
        .iter()
        .take(10)
        .map(|v| format!("{}: {}", v.invariant, v.detail))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Everything computed before a write decision.
pub struct Prepared {
    pub as_of: NaiveDate,
    pub selection: FamilySelection,
    pub config: CatalogConfig,
    pub config_hash: ContentHash,
    pub config_changed: bool,
    pub warnings: Vec<ConfigWarning>,
    pub input: InputReport,
    pub freshness: InputFreshness,
    pub catalog: Catalog,
    pub current: Vec<CurrentEntry>,
    pub deltas: Vec<Delta>,
    /// Entries found edited, deleted or inserted outside the job.
    pub drift: Vec<EntryKey>,
    /// Rows loaded only because their row version moved, found to hold what the log says.
    pub recheck: Vec<EntryKey>,
    pub violations: Vec<Violation>,
    pub collisions: Vec<Collision>,
    pub timings: StepTimings,
}

impl Prepared {
    /// Desired entries whose live row already matches.
    pub fn unchanged(&self) -> usize {
        let touched: HashSet<&EntryKey> = self.deltas.iter().map(|d| &d.key).collect();
        self.catalog
            .entries
            .keys()
            .filter(|k| !touched.contains(k))
            .count()
    }

    /// The plan's identity: a trigger that names it applies only while the same plan would be
    /// computed again.
    pub fn plan_id(&self) -> String {
        plan_id(self.as_of, self.config_hash, &self.deltas)
    }

    /// Counts per family: entries created, updated, deleted and unchanged, members moved.
    fn summary(&self) -> BTreeMap<Family, FamilySummary> {
        let mut summary: BTreeMap<Family, FamilySummary> = self
            .selection
            .families()
            .iter()
            .map(|f| (*f, FamilySummary::default()))
            .collect();
        for delta in &self.deltas {
            let s = summary.entry(delta.family).or_default();
            match delta.op {
                Op::Create => s.create += 1,
                Op::Update => s.update += 1,
                Op::Delete => s.delete += 1,
            }
            for list in &delta.change.lists {
                s.members_added += list.added.len();
                s.members_removed += list.removed.len();
            }
        }
        let touched: HashSet<&EntryKey> = self.deltas.iter().map(|d| &d.key).collect();
        for (key, entry) in &self.catalog.entries {
            if !touched.contains(key) {
                summary.entry(entry.family).or_default().unchanged += 1;
            }
        }
        summary
    }

    /// What `plan` reports.
    pub fn plan_report(&self, refusals: Vec<Refusal>, duration_seconds: f64) -> PlanReport {
        PlanReport {
            plan_id: self.plan_id(),
            as_of: self.as_of,
            config_hash: self.config_hash,
            config_changed: self.config_changed,
            families: self.selection.families().to_vec(),
            summary: self.summary(),
            deltas: self.deltas.iter().map(DeltaLine::from_delta).collect(),
            refusals,
            drift: self.drift.iter().map(ToString::to_string).collect(),
            warnings: self.warnings.clone(),
            input: self.input.clone(),
            timings: self.timings.clone(),
            duration_seconds,
        }
    }

    /// What a run of this plan reports (its run id is set once appended).
    pub fn run_report(
        &self,
        status: RunStatus,
        forced: bool,
        refusals: Vec<Refusal>,
        duration_seconds: f64,
    ) -> RunReport {
        let mut reasons: BTreeMap<&'static str, usize> = BTreeMap::new();
        for delta in &self.deltas {
            for list in &delta.change.lists {
                let moved = list.added.iter().map(|m| &m.reason);
                for reason in moved.chain(list.removed.iter().map(|m| &m.reason)) {
                    *reasons.entry(reason.code.as_str()).or_default() += 1;
                }
            }
        }
        let count = |op: Op| self.deltas.iter().filter(|d| d.op == op).count();
        let outcome = RunOutcome {
            run_id: None,
            status,
            forced,
            as_of: self.as_of,
            config_hash: self.config_hash,
            config_changed: self.config_changed,
            families: self.selection.families().to_vec(),
            created: count(Op::Create),
            updated: count(Op::Update),
            deleted: count(Op::Delete),
            unchanged: self.unchanged(),
            summary: self.summary(),
            reasons,
            refusals,
            drift: self.drift.iter().map(ToString::to_string).collect(),
            warnings: self.warnings.clone(),
            input: self.input.clone(),
            timings: self.timings.clone(),
            duration_seconds,
        };
        RunReport {
            outcome,
            deltas: self.deltas.iter().map(DeltaLine::from_delta).collect(),
        }
    }
}

fn effective_config(
    rows: &[crate::domain::config::ConfigRow],
    job: &JobConfig,
) -> Result<(CatalogConfig, Vec<ConfigWarning>), ConfigError> {
    let mut config = CatalogConfig::default();
    let mut warnings = config.apply_cache_config(rows)?;
    if let Some((label, file)) = &job.toml {
        warnings.extend(config.apply_toml(&file.catalog, label)?);
    }
    config.validate()?;
    Ok((config, warnings))
}

/// Loads the values the diff needs and finds drift. A row whose digest still matches what the
/// job last wrote holds the logged value: when that is the desired value it is not loaded at
/// all. Every other row is loaded; one whose content differs from the log's last hash was
/// edited outside the job (drift), as is a logged entry whose row is gone or a row the log never
/// wrote once the log has history.
async fn load_current(
    tx: &mut dyn RunTx,
    rows: &[StoredRow],
    heads: &HashMap<EntryKey, EntryHead>,
    catalog: &Catalog,
) -> Result<LoadedCurrent, JobError> {
    let mut seen: HashMap<&EntryKey, usize> = HashMap::new();
    for row in rows {
        *seen.entry(&row.key).or_default() += 1;
    }
    let mut unchanged = HashSet::new();
    let mut needed = Vec::new();
    for row in rows {
        let head = heads.get(&row.key);
        let known_hash = head
            .filter(|h| h.row_digest.as_deref() == Some(row.digest.as_str()))
            .and_then(|h| h.hash);
        let desired = catalog.entries.get(&row.key).map(|d| d.hash);
        if seen[&row.key] == 1 && known_hash.is_some() && known_hash == desired {
            unchanged.insert(row.key.clone());
        } else {
            needed.push(row.id);
        }
    }
    let current = tx.load_values(&needed).await?;

    let mut drift = BTreeSet::new();
    let mut recheck = Vec::new();
    if !heads.is_empty() {
        for entry in &current {
            let logged = heads.get(&entry.key).and_then(|h| h.hash);
            let hash = hash_value(&entry.value);
            if logged != Some(hash) {
                drift.insert(entry.key.clone());
            } else if catalog.entries.get(&entry.key).map(|d| d.hash) == Some(hash)
                && seen[&entry.key] == 1
            {
                recheck.push(entry.key.clone());
            }
        }
        let live: HashSet<&EntryKey> = rows.iter().map(|r| &r.key).collect();
        for (key, head) in heads {
            if head.hash.is_some() && !live.contains(key) && catalog.owner_of(key).is_some() {
                drift.insert(key.clone());
            }
        }
    }
    Ok(LoadedCurrent {
        current,
        unchanged,
        drift: drift.into_iter().collect(),
        recheck,
    })
}

/// The live rows as the diff needs them.
struct LoadedCurrent {
    /// Rows whose values were loaded.
    current: Vec<CurrentEntry>,
    /// Desired entries known to be live as desired, not loaded.
    unchanged: HashSet<EntryKey>,
    drift: Vec<EntryKey>,
    /// Loaded, unchanged and as logged: their row version is recorded again.
    recheck: Vec<EntryKey>,
}

async fn prepare(
    tx: &mut dyn RunTx,
    job: &JobConfig,
    request: &PlanRequest,
    today: NaiveDate,
    target: Option<&State>,
) -> Result<Prepared, JobError> {
    let rollback = target.is_some();
    let mut timings = StepTimings::default();
    let started = Instant::now();
    // Configuration first: a bad file or row is reported even before any data exists.
    let rows = tx.load_config_rows(&job.environment).await?;
    let (config, warnings) = effective_config(&rows, job)?;
    let latest = tx.latest_price_date().await?;
    let as_of = request.as_of.or(latest).ok_or(JobError::NoPrices)?;
    let config_hash = hash_serializable(&config);
    let snapshot = tx.load_market(as_of).await?;
    timings.load_market_ms = started.elapsed().as_secs_f64() * 1e3;

    let step = Instant::now();
    let securities = normalize(&snapshot, &config);
    let selection = FamilySelection::only(&request.only);
    let mut catalog = compute_catalog(&securities, &config, &selection);
    if let Some(target) = target {
        // A rollback's desired state is the replayed one, over every scope owned now or then.
        catalog.entries = target
            .iter()
            .map(|(key, (family, value))| {
                let entry = DesiredEntry {
                    family: *family,
                    hash: hash_value(value),
                    value: value.clone(),
                };
                (key.clone(), entry)
            })
            .collect();
        for (key, (family, _)) in target {
            catalog.scopes.entry(key.scope()).or_insert(*family);
        }
    }
    timings.compute_ms = step.elapsed().as_secs_f64() * 1e3;

    let step = Instant::now();
    let heads = tx.entry_heads(&job.environment).await?;
    // Scopes the job wrote before stay owned after the configuration drops them (a removed
    // theme or renamed category): their rows are deleted rather than left stale.
    for (key, head) in &heads {
        if head.hash.is_some() {
            if let Some(family) = Family::owning(&key.scope()).filter(|f| selection.contains(*f)) {
                catalog.scopes.entry(key.scope()).or_insert(family);
            }
        }
    }
    let scopes: Vec<_> = catalog.scopes.keys().cloned().collect();
    let rows = tx.load_rows(&job.environment, &scopes).await?;
    let loaded = load_current(tx, &rows, &heads, &catalog).await?;
    let (current, unchanged, drift) = (loaded.current, loaded.unchanged, loaded.drift);
    let previous_hash = tx.last_config_hash(&job.environment).await?;
    let constraints = tx.unique_constraints().await?;
    let identities = tx.load_identities().await?;
    timings.load_current_ms = step.elapsed().as_secs_f64() * 1e3;

    let step = Instant::now();
    let ctx = ReasonContext {
        securities: &securities,
        config: &config,
        previous: previous_records(&current),
        config_changed: previous_hash.is_some_and(|h| h != config_hash),
        run_override: rollback.then_some(ReasonCode::Rollback),
    };
    let known = Known {
        forced: drift
            .iter()
            .map(|k| (k.clone(), ReasonCode::ManualDrift))
            .collect(),
        unchanged,
    };
    let deltas = diff(&catalog, &current, &ctx, &known);
    // Invariants guard what is written; a run that writes nothing has nothing to check.
    // A rollback restores a past state on purpose, members since delisted included.
    let violations = if deltas.is_empty() || rollback {
        Vec::new()
    } else {
        check_catalog(&catalog, &securities, &config)
    };

    // The table as it would be after the run: every row the job does not own, plus the catalog.
    let mut after: Vec<Identity> = identities
        .into_iter()
        .filter(|r| r.environment != job.environment || catalog.owner_of(&r.key).is_none())
        .map(|r| (r.key, r.environment))
        .collect();
    after.extend(
        catalog
            .entries
            .keys()
            .map(|k| (k.clone(), job.environment.clone())),
    );
    let found: Vec<Collision> = constraints
        .iter()
        .filter_map(|c| collisions(&c.name, &c.columns, &after))
        .filter(|c| {
            c.entries
                .iter()
                .any(|e| e.ends_with(&format!("@{}", job.environment)))
        })
        .collect();
    timings.diff_ms = step.elapsed().as_secs_f64() * 1e3;

    let active: Vec<_> = snapshot
        .rows()
        .filter(|(row, _)| {
            row.active == Some(true) && matches!(row.kind.as_deref(), Some("CS") | Some("ETF"))
        })
        .collect();
    let freshness = InputFreshness {
        as_of,
        latest_price_date: latest,
        today,
        active_symbols: active.len(),
        active_without_close_on_as_of: active
            .iter()
            .filter(|(_, c)| c.is_none_or(|c| c.date != as_of))
            .count(),
    };
    Ok(Prepared {
        as_of,
        selection,
        config_changed: ctx.config_changed,
        config,
        config_hash,
        warnings,
        input: securities.report.clone(),
        freshness,
        catalog,
        current,
        deltas,
        drift,
        recheck: loaded.recheck,
        violations,
        collisions: found,
        timings,
    })
}

/// Computes what a run would change. Writes nothing.
///
/// # Errors
/// Store and configuration errors; `NoPrices` when there is no as-of date.
pub async fn plan(
    store: &dyn EventLog,
    job: &JobConfig,
    request: &PlanRequest,
    today: NaiveDate,
) -> Result<PlanReport, JobError> {
    let started = Instant::now();
    let mut tx = store.begin().await?;
    let prepared = prepare(tx.as_mut(), job, request, today, None).await;
    tx.rollback().await?;
    let prepared = prepared?;
    let refusals = guard::check(
        &job.guards,
        &prepared.freshness,
        &prepared.deltas,
        &prepared.current,
    );
    Ok(prepared.plan_report(refusals, started.elapsed().as_secs_f64()))
}

fn families_label(selection: &FamilySelection) -> String {
    if selection.is_all() {
        "all".to_owned()
    } else {
        selection
            .families()
            .iter()
            .map(|f| f.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// Runs Phase 2.5: applies the plan in one transaction with its audit events and run record.
///
/// # Errors
/// `LockHeld` when another run is applying; `Refused` / `Collision` when a guard rail or a
/// unique constraint stops it (a refused run record is appended, nothing else);
/// `Invariant` for a broken catalog; store and configuration errors.
pub async fn run(
    store: &dyn EventLog,
    job: &JobConfig,
    request: &RunRequest,
) -> Result<RunReport, JobError> {
    run_with(store, job, request, None).await
}

/// Rolls the owned catalog back to its state after `to_run`: a new run (trigger `rollback`,
/// reason `rollback` on every member change) whose deltas take the live rows to the replayed
/// state, under the same lock, transaction and mass-change guards as a nightly run. History is
/// only appended to.
///
/// # Errors
/// As `run`, plus replay errors.
pub async fn rollback(
    store: &dyn Store,
    job: &JobConfig,
    to_run: RunId,
    request: &RunRequest,
) -> Result<RunReport, RollbackError> {
    let target = rollback_target(store, job, to_run).await?;
    Ok(run_with(store, job, request, Some((to_run, &target))).await?)
}

/// What a rollback to `to_run` would change. Writes nothing.
///
/// # Errors
/// As `plan`, plus replay errors.
pub async fn plan_rollback(
    store: &dyn Store,
    job: &JobConfig,
    to_run: RunId,
    today: NaiveDate,
) -> Result<PlanReport, RollbackError> {
    let target = rollback_target(store, job, to_run).await?;
    let started = Instant::now();
    let mut tx = store.begin().await.map_err(JobError::from)?;
    let prepared = prepare(
        tx.as_mut(),
        job,
        &PlanRequest::default(),
        today,
        Some(&target),
    )
    .await;
    tx.rollback().await.map_err(JobError::from)?;
    let prepared = prepared?;
    let mut refusals = guard::check(
        &job.guards,
        &prepared.freshness,
        &prepared.deltas,
        &prepared.current,
    );
    refusals.retain(|r| !r.is_about_input());
    Ok(prepared.plan_report(refusals, started.elapsed().as_secs_f64()))
}

async fn rollback_target(
    store: &dyn Store,
    job: &JobConfig,
    to_run: RunId,
) -> Result<State, RollbackError> {
    let run_id = crate::history::resolve(store, &job.environment, crate::history::At::Run(to_run))
        .await?
        .unwrap_or(to_run);
    Ok(
        crate::history::replay_state(store, &job.environment, run_id, None)
            .await?
            .0,
    )
}

/// Why a rollback did not complete.
#[derive(Debug, thiserror::Error)]
pub enum RollbackError {
    #[error(transparent)]
    Job(#[from] JobError),
    #[error(transparent)]
    History(#[from] crate::history::HistoryError),
}

/// As `run`, but every member change carries the reason `rollback` (used by rollbacks).
///
/// The transaction is rolled back explicitly before any error or refusal is returned, so the
/// writer lock is free by the time the caller hears of it (a dropped transaction would release
/// it only when its connection is next used).
async fn run_with(
    store: &dyn EventLog,
    job: &JobConfig,
    request: &RunRequest,
    target: Option<(RunId, &State)>,
) -> Result<RunReport, JobError> {
    let started = Instant::now();
    let mut tx = store.begin().await?;
    match run_in(tx.as_mut(), job, request, target, started).await {
        Ok(InTransaction::Applied(mut report)) => {
            if request.pause_before_commit {
                eprintln!("cache-sync: paused before commit (test hook)");
                std::future::pending::<()>().await;
            }
            let changed = report.deltas.len();
            request.progress("committing", 90, changed);
            let step = Instant::now();
            tx.commit().await?;
            request.progress("committed", 100, changed);
            report.timings.commit_ms = step.elapsed().as_secs_f64() * 1e3;
            report.duration_seconds = started.elapsed().as_secs_f64();
            tracing::info!(
                run_id = report.run_id.map_or(0, |r| r.0),
                created = report.created,
                updated = report.updated,
                deleted = report.deleted,
                unchanged = report.unchanged,
                "run applied"
            );
            Ok(*report)
        }
        Ok(InTransaction::Refused(refused)) => {
            tx.rollback().await?;
            let RefusedRun {
                record,
                mut report,
                refusals,
                collisions,
            } = *refused;
            let run_id = store.append_run_record(&record).await?;
            report.run_id = Some(run_id);
            if !collisions.is_empty() {
                return Err(JobError::Collision { run_id, collisions });
            }
            Err(JobError::Refused {
                run_id,
                refusals,
                report: Box::new(report),
            })
        }
        Err(error) => {
            if let Err(rollback) = tx.rollback().await {
                tracing::warn!(error = %rollback, "rolling back a failed run");
            }
            Err(error)
        }
    }
}

/// What a run decided inside its transaction.
enum InTransaction {
    /// Deltas, events and the run record are written; the transaction awaits its commit.
    Applied(Box<RunReport>),
    /// Nothing may be written: the run record to append on its own.
    Refused(Box<RefusedRun>),
}

struct RefusedRun {
    record: NewRun,
    report: RunReport,
    refusals: Vec<Refusal>,
    collisions: Vec<Collision>,
}

/// Takes the writer lock, plans, checks the guards and writes the run into `tx`.
async fn run_in(
    tx: &mut dyn RunTx,
    job: &JobConfig,
    request: &RunRequest,
    target: Option<(RunId, &State)>,
    started: Instant,
) -> Result<InTransaction, JobError> {
    if tx.try_lock_writer().await? == LockOutcome::HeldElsewhere {
        return Err(JobError::LockHeld);
    }
    request.progress("planning", 10, 0);
    let prepared = prepare(
        tx,
        job,
        &request.plan,
        request.now.date_naive(),
        target.map(|t| t.1),
    )
    .await?;
    request.progress("planned", 50, prepared.deltas.len());
    if let Some(expected) = &request.expect_plan {
        let actual = prepared.plan_id();
        if &actual != expected {
            return Err(JobError::PlanMoved {
                expected: expected.clone(),
                actual,
            });
        }
    }
    if !prepared.violations.is_empty() {
        return Err(JobError::Invariant(prepared.violations));
    }
    let refusals = if request.force {
        Vec::new()
    } else {
        let mut refusals = guard::check(
            &job.guards,
            &prepared.freshness,
            &prepared.deltas,
            &prepared.current,
        );
        if target.is_some() {
            // A rollback restores a past state on purpose: only the mass-change guards apply.
            refusals.retain(|r| !r.is_about_input());
        }
        refusals
    };
    let refused = !prepared.collisions.is_empty() || !refusals.is_empty();
    let elapsed = started.elapsed();
    let mut report = if refused {
        prepared.run_report(
            RunStatus::Refused,
            request.force,
            refusals.clone(),
            elapsed.as_secs_f64(),
        )
    } else {
        prepared.run_report(RunStatus::Completed, request.force, Vec::new(), 0.0)
    };
    let record = NewRun {
        trigger: if target.is_some() {
            Trigger::Rollback
        } else {
            request.trigger
        },
        families: match target {
            Some((run_id, _)) => format!("rollback to run {run_id}"),
            None => families_label(&prepared.selection),
        },
        environment: job.environment.clone(),
        started_at: request.now,
        finished_at: request.now + chrono::Duration::milliseconds(elapsed.as_millis() as i64),
        outcome: report.outcome.clone(),
        error: refused.then(|| {
            if prepared.collisions.is_empty() {
                summary(&refusals)
            } else {
                collision_summary(&prepared.collisions)
            }
        }),
    };
    if refused {
        return Ok(InTransaction::Refused(Box::new(RefusedRun {
            record,
            report,
            refusals,
            collisions: prepared.collisions,
        })));
    }

    let step = Instant::now();
    let appended = tx
        .append_run(&record, &prepared.deltas, &prepared.recheck)
        .await?;
    let run_id = appended.run_id;
    // The modes of the trigger endpoint: `full` for every family, else the families run.
    let mode = match target {
        Some(_) => "rollback".to_owned(),
        None if prepared.selection.is_all() => "full".to_owned(),
        None => record.families.clone(),
    };
    let facts = RunFacts {
        run_id,
        job_id: &request.job_id,
        mode: &mode,
        status: "completed",
        duration_seconds: started.elapsed().as_secs_f64(),
    };
    let events = run_events(&job.channels, &facts, &prepared.deltas, &appended.seqs);
    tx.append_outbox(run_id, &job.environment, &events).await?;
    if prepared.selection.is_all()
        && tx.runs_since_checkpoint(&job.environment).await? >= job.checkpoint_every
    {
        // After a full run the owned rows are exactly the catalog.
        let entries: Vec<_> = prepared
            .catalog
            .entries
            .iter()
            .map(|(key, e)| (key, e.family, &e.value, e.hash))
            .collect();
        tx.append_checkpoint(&job.environment, run_id, &entries)
            .await?;
    }
    report.timings.apply_ms = step.elapsed().as_secs_f64() * 1e3;
    report.run_id = Some(run_id);
    Ok(InTransaction::Applied(Box::new(report)))
}
