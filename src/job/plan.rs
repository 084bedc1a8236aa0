//! Planning: everything a run computes before it decides to write, inside the run's
//! transaction. Reads the configuration, the market and the owned rows, computes the catalog,
//! diffs it against the live rows, checks invariants and unique constraints, and builds the
//! reports of the result. Writes nothing.

use super::{JobConfig, PlanRequest, RunError};
use crate::domain::catalog::{
    compute_catalog, compute_catalog_banded, BandingReport, Catalog, DesiredEntry,
};
use crate::domain::config::{CatalogConfig, ConfigError, ConfigWarning};
use crate::domain::diff::{
    diff, mark_held, previous_records, CurrentEntry, Delta, LiveRowFacts, Op,
};
use crate::domain::fingerprint::{hash_serializable, hash_value, ContentHash};
use crate::domain::guard::{self, AuditedDrift, GuardConfig, InputFreshness, Refusal};
use crate::domain::invariants::{check_catalog, collisions, Collision, Identity, Violation};
use crate::domain::members::member_lists;
use crate::domain::reasons::{ReasonCode, ReasonContext};
use crate::domain::renames::find_renames;
use crate::domain::replay::ReplayedCatalog;
use crate::domain::securities::{normalize, InputReport};
use crate::domain::types::{EntryKey, Family, FamilySelection};
use crate::history;
use crate::report::{
    plan_id, DeltaLine, FamilySummary, HeldLine, PlanReport, RunOutcome, RunReport, RunStatus,
    StepTimings,
};
use crate::store::{EntryHead, RunTx, StoredRow};
use chrono::NaiveDate;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::Instant;

/// Everything a run computes before it decides to write.
pub struct Plan {
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
    /// What the log last recorded for each drifted entry: the state guard rails judge from.
    pub audited: AuditedDrift,
    /// Rows loaded only because their row version moved, found to hold what the log says.
    pub recheck: Vec<EntryKey>,
    pub violations: Vec<Violation>,
    pub collisions: Vec<Collision>,
    /// What turnover banding held and displaced (empty while it is off).
    pub banding: BandingReport,
    pub timings: StepTimings,
}

impl Plan {
    /// Desired entries whose live row already matches.
    pub fn unchanged(&self) -> usize {
        let touched: HashSet<&EntryKey> = self.deltas.iter().map(|d| &d.key).collect();
        self.catalog
            .entries
            .keys()
            .filter(|k| !touched.contains(k))
            .count()
    }

    /// The guard rails this plan trips. A rollback restores a past state on purpose: only the
    /// mass-change guards apply to it.
    pub fn refusals(&self, guards: &GuardConfig, rollback: bool) -> Vec<Refusal> {
        let mut refusals = guard::check(
            guards,
            &self.freshness,
            &self.deltas,
            &self.current,
            &self.audited,
        );
        if rollback {
            refusals.retain(|r| !r.is_about_input());
        }
        refusals
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
        let (held, displaced) = HeldLine::from_report(&self.banding);
        PlanReport {
            plan_id: self.plan_id(),
            as_of: self.as_of,
            config_hash: self.config_hash,
            config_changed: self.config_changed,
            families: self.selection.families().to_vec(),
            summary: self.summary(),
            deltas: self.deltas.iter().map(DeltaLine::from_delta).collect(),
            held,
            displaced,
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
    let file = job
        .toml
        .as_ref()
        .map(|(label, f)| (&f.catalog, label.as_str()));
    let mut warnings = config.apply_cache_config(rows, file);
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
) -> Result<LiveRows, RunError> {
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
    Ok(LiveRows {
        current,
        unchanged,
        drift: drift.into_iter().collect(),
        recheck,
    })
}

/// The live rows as the diff needs them.
struct LiveRows {
    /// Rows whose values were loaded.
    current: Vec<CurrentEntry>,
    /// Desired entries known to be live as desired, not loaded.
    unchanged: HashSet<EntryKey>,
    drift: Vec<EntryKey>,
    /// Loaded, unchanged and as logged: their row version is recorded again.
    recheck: Vec<EntryKey>,
}

pub(super) async fn prepare(
    tx: &mut dyn RunTx,
    job: &JobConfig,
    request: &PlanRequest,
    today: NaiveDate,
    target: Option<&ReplayedCatalog>,
) -> Result<Plan, RunError> {
    let rollback = target.is_some();
    let mut timings = StepTimings::default();
    let started = Instant::now();
    // Configuration first: a bad file or row is reported even before any data exists.
    let rows = tx.load_config_rows(&job.environment).await?;
    let (config, mut warnings) = effective_config(&rows, job)?;
    // Without an as-of date the market load finds it; with one, the freshness guard still needs
    // the latest date apart.
    let (snapshot, latest) = match request.as_of {
        Some(as_of) => {
            let latest = tx.latest_price_date().await?;
            (tx.load_market(Some(as_of)).await?, latest)
        }
        None => {
            let snapshot = tx.load_market(None).await?;
            let latest = snapshot.as_ref().map(|s| s.as_of);
            (snapshot, latest)
        }
    };
    let snapshot = snapshot.ok_or(RunError::NoPrices)?;
    let as_of = snapshot.as_of;
    let config_hash = hash_serializable(&config);
    timings.load_market_ms = started.elapsed().as_secs_f64() * 1e3;

    let step = Instant::now();
    let securities = normalize(&snapshot, &config);
    let selection = FamilySelection::only(&request.only);
    // Banding holds today's members around the limits, so it needs them before the catalog
    // (with the heads, to trust only rows the log agrees with). A rollback restores a past
    // state as it was: no banding.
    let mut early_heads = None;
    let (mut catalog, banding) = if config.banding.is_off() || rollback {
        (
            compute_catalog(&securities, &config, &selection),
            BandingReport::default(),
        )
    } else {
        let heads = tx.entry_heads(&job.environment).await?;
        let incumbents = super::banding::incumbents(tx, &job.environment, &heads).await?;
        early_heads = Some(heads);
        compute_catalog_banded(&securities, &config, &selection, &incumbents)
    };
    // Shortened keys are part of what a plan shows, before anything is written.
    warnings.extend(catalog.shortened.warnings());
    if let Some(target) = target {
        // A rollback's desired state is the replayed one, over every scope owned now or then.
        catalog.entries = target
            .iter()
            .map(|(key, (family, value))| {
                let entry = DesiredEntry {
                    family: *family,
                    hash: hash_value(value),
                    value: std::sync::Arc::new(value.clone()),
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
    let heads = match early_heads {
        Some(heads) => heads,
        None => tx.entry_heads(&job.environment).await?,
    };
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
    // Only entries the log holds a value for have an audited value to read back.
    let logged: Vec<EntryKey> = drift
        .iter()
        .filter(|k| heads.get(*k).is_some_and(|h| h.hash.is_some()))
        .cloned()
        .collect();
    let mut values = history::logged_values(tx, &job.environment, &logged).await?;
    let audited: AuditedDrift = drift
        .iter()
        .map(|k| (k.clone(), values.remove(k)))
        .collect();
    let previous_hash = tx.last_config_hash(&job.environment).await?;
    let constraints = tx.unique_constraints().await?;
    let identities = tx.load_identities().await?;
    timings.load_current_ms = step.elapsed().as_secs_f64() * 1e3;

    let step = Instant::now();
    let listed: BTreeSet<String> = current
        .iter()
        .flat_map(|entry| member_lists(&entry.value))
        .flat_map(|(_, members)| members.into_iter().map(|m| m.ticker.to_owned()))
        .collect();
    let ctx = ReasonContext {
        securities: &securities,
        config: &config,
        previous: previous_records(&current),
        config_changed: previous_hash.is_some_and(|h| h != config_hash),
        run_override: rollback.then_some(ReasonCode::Rollback),
        renames: find_renames(&securities, &listed),
    };
    let facts = LiveRowFacts {
        forced: drift
            .iter()
            .map(|k| (k.clone(), ReasonCode::ManualDrift))
            .collect(),
        unchanged,
    };
    let mut deltas = diff(&catalog, &current, &ctx, &facts);
    mark_held(&mut deltas, &banding);
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
    Ok(Plan {
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
        audited,
        recheck: loaded.recheck,
        violations,
        collisions: found,
        banding,
        timings,
    })
}
