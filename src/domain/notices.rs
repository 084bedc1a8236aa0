//! The notices of Phase 2.5 while it runs, in the dialect TickStockAppV2's own code reads (not
//! through the outbox): `cache_sync_triggered`; the phase's `cache_sync_started` and
//! `cache_sync_progress`, named after the app's `data_import_*` and `indicator_*` phases;
//! `job_progress_update` for the monitoring handler of its `processing_event_subscriber.py`;
//! `processing_error` when a run does not complete; and the app's flat `ErrorMessage`
//! (`src/core/models/error_models.py`) on the errors channel, which has no envelope.
//!
//! Pure: the caller supplies ids, times and facts; `job::lifecycle` publishes what this returns.

use crate::domain::events::{envelope, envelope_from, Channels};
use crate::domain::guard::Refusal;
use serde::Serialize;
use serde_json::{json, Value};

/// The phase's name in the app's `ProcessingPhase` (`CACHE_SYNC = "cache_sync"`).
pub const PHASE: &str = "cache_sync";
/// `source` of `job_progress_update`: the app's handler drops the update unless its source
/// contains "processing".
pub const PROGRESS_SOURCE: &str = "tickstock-cache-sync-processing";
/// `source` of an `ErrorMessage`: the app's model names the producer system "TickStockPL".
pub const ERROR_SOURCE: &str = "TickStockPL";
/// `component` of an `ErrorMessage`.
pub const COMPONENT: &str = "cache_sync";

/// A message ready to publish: its channel and the whole JSON message.
#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    pub channel: String,
    pub message: Value,
}

/// The job a notice is about.
#[derive(Debug, Clone, Copy)]
pub struct JobFacts<'a> {
    /// The API job id, or the id a command-line run made up (a UUID either way).
    pub job_id: &'a str,
    /// The trigger mode, or what the run covers (`full`, the families, `rollback`).
    pub mode: &'a str,
    pub force: bool,
    /// `api`, `cli`, …
    pub triggered_by: &'a str,
}

/// `cache_sync_triggered` on `…:cache:sync_triggered`: a run was asked for.
pub fn sync_triggered(channels: &Channels, at: &str, job: &JobFacts<'_>) -> Notice {
    let payload = json!({
        "job_id": job.job_id,
        "mode": job.mode,
        "force": job.force,
        "triggered_by": job.triggered_by,
    });
    Notice {
        channel: channels.sync_triggered(),
        message: envelope("cache_sync_triggered", at, &payload),
    }
}

/// `cache_sync_started` on `…:cache:started`: Phase 2.5 starts on these families (as
/// `data_import_started` names its universes).
pub fn started(channels: &Channels, at: &str, job: &JobFacts<'_>, families: &[&str]) -> Notice {
    let payload = json!({
        "phase": PHASE,
        "job_id": job.job_id,
        "mode": job.mode,
        "force": job.force,
        "triggered_by": job.triggered_by,
        "families": families,
    });
    Notice {
        channel: channels.started(),
        message: envelope("cache_sync_started", at, &payload),
    }
}

/// One step of a run, as progress notices report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step<'a> {
    /// `planning`, `planned`, `committing`, `committed`.
    pub name: &'a str,
    pub percent: u8,
    /// Entries the run changes (known once planned).
    pub entries_changed: usize,
}

impl Step<'_> {
    /// Entries written and committed so far: all of them once committed, none before.
    fn entries_applied(&self) -> usize {
        if self.percent >= 100 {
            self.entries_changed
        } else {
            0
        }
    }
}

/// `cache_sync_progress` on `…:cache:progress` (fields as `indicator_progress` names them).
pub fn progress(channels: &Channels, at: &str, job: &JobFacts<'_>, step: &Step<'_>) -> Notice {
    let payload = json!({
        "phase": PHASE,
        "job_id": job.job_id,
        "step": step.name,
        "percent_complete": step.percent,
        "entries_changed": step.entries_changed,
    });
    Notice {
        channel: channels.progress(),
        message: envelope("cache_sync_progress", at, &payload),
    }
}

/// `job_progress_update` on `…:monitoring`, the fields the app's `_handle_job_progress` reads:
/// `percentage`, `completed` (entries applied), `failed` (always 0: a run applies all or
/// nothing), `current_symbol` and `estimated_completion` (null: a run is not symbol by symbol
/// and has no estimate), with a source that contains "processing".
pub fn job_progress(channels: &Channels, at: &str, job: &JobFacts<'_>, step: &Step<'_>) -> Notice {
    let payload = json!({
        "phase": PHASE,
        "job_id": job.job_id,
        "step": step.name,
        "percentage": f64::from(step.percent),
        "total": step.entries_changed,
        "completed": step.entries_applied(),
        "failed": 0,
        "current_symbol": null,
        "estimated_completion": null,
    });
    Notice {
        channel: channels.monitoring(),
        message: envelope_from(PROGRESS_SOURCE, "job_progress_update", at, &payload),
    }
}

/// How bad a failure is, in the app's `SEVERITY_LEVELS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Critical,
    Error,
    Warning,
    Info,
    Debug,
}

impl Severity {
    /// Every level, as the app lists them.
    pub const ALL: [Severity; 5] = [
        Severity::Debug,
        Severity::Info,
        Severity::Warning,
        Severity::Error,
        Severity::Critical,
    ];

    /// The app's name of the level.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "info",
            Severity::Debug => "debug",
        }
    }
}

/// What kind of failure, in the app's `ERROR_CATEGORIES`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    Pattern,
    Database,
    Network,
    Validation,
    Performance,
    Security,
    Configuration,
    Integration,
    Websocket,
    Redis,
}

impl Category {
    /// Every category, in the app's order.
    pub const ALL: [Category; 10] = [
        Category::Pattern,
        Category::Database,
        Category::Network,
        Category::Validation,
        Category::Performance,
        Category::Security,
        Category::Configuration,
        Category::Integration,
        Category::Websocket,
        Category::Redis,
    ];

    /// The app's name of the category.
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Pattern => "pattern",
            Category::Database => "database",
            Category::Network => "network",
            Category::Validation => "validation",
            Category::Performance => "performance",
            Category::Security => "security",
            Category::Configuration => "configuration",
            Category::Integration => "integration",
            Category::Websocket => "websocket",
            Category::Redis => "redis",
        }
    }
}

/// Why a run did not complete, as the app's error log files it.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub severity: Severity,
    pub category: Category,
    /// One human-readable sentence (or the guard rails' sentences joined).
    pub message: String,
    /// The run record a refused run appended (nothing else was written), if any.
    pub run_id: Option<i64>,
    /// The guard rails that refused the run (empty for other failures).
    pub guard: Vec<Refusal>,
    /// What the refused run would have changed (counts per family), if it got that far.
    pub would_change: Option<Value>,
}

/// `processing_error` on `…:cache:completed`: the phase ended without completing. The app's
/// `_handle_processing_error` reads `payload.error_message`; `error_id` names the
/// `ErrorMessage` sent with it on the errors channel.
pub fn processing_error(
    channels: &Channels,
    at: &str,
    error_id: &str,
    job: &JobFacts<'_>,
    failure: &Failure,
) -> Notice {
    let payload = json!({
        "phase": PHASE,
        "job_id": job.job_id,
        "run_id": failure.run_id,
        "error_id": error_id,
        "error_message": failure.message,
    });
    Notice {
        channel: channels.completed(),
        message: envelope("processing_error", at, &payload),
    }
}

/// The app's flat `ErrorMessage` on `…:errors` (no envelope): `error_id` a UUID, `source`
/// `TickStockPL`, `severity` and `category` from the app's lists, `traceback` null (none are
/// ever sent), and in `context` the job, the run, the guard rails and what would have changed.
pub fn error_message(
    channels: &Channels,
    at: &str,
    error_id: &str,
    job: &JobFacts<'_>,
    failure: &Failure,
) -> Notice {
    let message = json!({
        "error_id": error_id,
        "source": ERROR_SOURCE,
        "severity": failure.severity.as_str(),
        "category": failure.category.as_str(),
        "message": failure.message,
        "component": COMPONENT,
        "traceback": null,
        "context": {
            "phase": PHASE,
            "job_id": job.job_id,
            "run_id": failure.run_id,
            "mode": job.mode,
            "force": job.force,
            "triggered_by": job.triggered_by,
            "guard": failure.guard,
            "would_change": failure.would_change,
        },
        "timestamp": at,
    });
    Notice {
        channel: channels.errors(),
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    const AT: &str = "2026-12-02T05:30:00.123Z";

    fn job() -> JobFacts<'static> {
        JobFacts {
            job_id: "9b2f0c52-3d0e-4a57-8f43-58c4f0f9a1b7",
            mode: "full",
            force: false,
            triggered_by: "api",
        }
    }

    fn keys(v: &Value) -> BTreeSet<&str> {
        v.as_object().unwrap().keys().map(String::as_str).collect()
    }

    fn refused() -> Failure {
        Failure {
            severity: Severity::Error,
            category: Category::Validation,
            message: "stock_universe/market_cap/mega_cap would lose all 3 members".to_owned(),
            run_id: Some(7),
            guard: vec![Refusal::WouldEmpty {
                entry: "stock_universe/market_cap/mega_cap".to_owned(),
                members_before: 3,
            }],
            would_change: Some(json!({"updated": 1})),
        }
    }

    #[test]
    fn the_severities_and_categories_are_the_apps_lists() {
        // src/core/models/error_models.py: SEVERITY_LEVELS and ERROR_CATEGORIES.
        let levels: Vec<&str> = Severity::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(levels, ["debug", "info", "warning", "error", "critical"]);
        let categories: Vec<&str> = Category::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(
            categories,
            [
                "pattern",
                "database",
                "network",
                "validation",
                "performance",
                "security",
                "configuration",
                "integration",
                "websocket",
                "redis"
            ]
        );
        for s in Severity::ALL {
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        for c in Category::ALL {
            assert_eq!(serde_json::to_value(c).unwrap(), c.as_str());
        }
    }

    #[test]
    fn an_error_message_is_flat_with_the_run_job_guard_and_change_in_its_context() {
        let notice = error_message(&Channels::default(), AT, "e-1", &job(), &refused());
        assert_eq!(notice.channel, "tickstock:errors");
        let m = &notice.message;
        assert_eq!(
            keys(m),
            BTreeSet::from([
                "error_id",
                "source",
                "severity",
                "category",
                "message",
                "component",
                "traceback",
                "context",
                "timestamp"
            ]),
            "no envelope: {m}"
        );
        assert_eq!(m["source"], "TickStockPL");
        assert_eq!(m["severity"], "error");
        assert_eq!(m["category"], "validation");
        assert_eq!(m["timestamp"], AT);
        assert!(m["traceback"].is_null());
        let c = &m["context"];
        assert_eq!(c["run_id"], 7);
        assert_eq!(c["job_id"], job().job_id);
        assert_eq!(c["guard"][0]["guard"], "would_empty");
        assert_eq!(c["would_change"]["updated"], 1);
    }

    #[test]
    fn a_processing_error_carries_the_error_message_and_the_error_id() {
        let notice = processing_error(&Channels::default(), AT, "e-1", &job(), &refused());
        assert_eq!(notice.channel, "tickstock:cache:completed");
        assert_eq!(notice.message["event"], "processing_error");
        let p = &notice.message["payload"];
        assert_eq!(p["error_message"], refused().message);
        assert_eq!(p["error_id"], "e-1");
        assert_eq!(p["phase"], "cache_sync");
    }

    #[test]
    fn job_progress_counts_entries_as_applied_only_once_committed() {
        let ch = Channels::default();
        let planned = Step {
            name: "planned",
            percent: 50,
            entries_changed: 12,
        };
        let committed = Step {
            name: "committed",
            percent: 100,
            ..planned
        };
        let at_50 = job_progress(&ch, AT, &job(), &planned).message;
        let at_100 = job_progress(&ch, AT, &job(), &committed).message;
        assert_eq!(at_50["source"], PROGRESS_SOURCE);
        assert!(PROGRESS_SOURCE.contains("processing"));
        assert_eq!(at_50["payload"]["percentage"], 50.0);
        assert_eq!(at_50["payload"]["completed"], 0);
        assert_eq!(at_100["payload"]["completed"], 12);
        assert_eq!(at_100["payload"]["total"], 12);
        assert!(at_100["payload"]["current_symbol"].is_null());
        assert_eq!(
            job_progress(&ch, AT, &job(), &planned).channel,
            "tickstock:monitoring"
        );
    }

    #[test]
    fn phase_notices_go_to_the_phases_channels_with_the_phases_names() {
        let ch = Channels::default();
        let step = Step {
            name: "planning",
            percent: 10,
            entries_changed: 0,
        };
        let cases = [
            (
                sync_triggered(&ch, AT, &job()),
                "tickstock:cache:sync_triggered",
                "cache_sync_triggered",
            ),
            (
                started(&ch, AT, &job(), &["themes"]),
                "tickstock:cache:started",
                "cache_sync_started",
            ),
            (
                progress(&ch, AT, &job(), &step),
                "tickstock:cache:progress",
                "cache_sync_progress",
            ),
        ];
        for (notice, channel, event) in cases {
            assert_eq!(notice.channel, channel);
            assert_eq!(notice.message["event"], event);
            assert_eq!(notice.message["source"], crate::domain::events::SOURCE);
        }
    }
}
