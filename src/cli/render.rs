//! Text for people: plans, runs, histories, snapshots, replays, drift and widened constraints.
//! (JSON output is the results' own serialisation.)

use super::schema::Widen;
use crate::domain::config::ConfigWarning;
use crate::domain::diff::Op;
use crate::domain::guard::Refusal;
use crate::domain::securities::InputReport;
use crate::domain::types::Family;
use crate::history;
use crate::history::compaction::CompactionReport;
use crate::report::{DeltaLine, FamilySummary, MemberLine, PlanReport, RunReport};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// The operator's view of PlanReport.
pub(super) fn plan(report: &PlanReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Plan as of {} (config {})",
        report.as_of,
        &report.config_hash.to_hex()[..12]
    );
    render_summary(&mut out, &report.summary);
    render_deltas(&mut out, &report.deltas);
    render_banding(
        &mut out,
        "Held by the band (the plain rule would drop them, reason held_by_band)",
        report.held.iter().map(|h| (&h.universe, &h.ticker)),
    );
    render_banding(
        &mut out,
        "Displaced (the plain rule would add them)",
        report.displaced.iter().map(|d| (&d.universe, &d.ticker)),
    );
    render_notes(
        &mut out,
        &report.refusals,
        &report.drift,
        &report.warnings,
        &report.input,
    );
    if report.deltas.is_empty() {
        let _ = writeln!(out, "Nothing to change.");
    }
    out
}

/// The operator's view of RunReport.
pub(super) fn run(report: &RunReport) -> String {
    let mut out = String::new();
    let id = report.run_id.map_or("-".to_owned(), |r| r.to_string());
    let _ = writeln!(
        out,
        "Run {id} {:?}{} as of {}: {} created, {} updated, {} deleted, {} unchanged in {:.3}s",
        report.status,
        if report.forced { " (forced)" } else { "" },
        report.as_of,
        report.created,
        report.updated,
        report.deleted,
        report.unchanged,
        report.duration_seconds
    );
    render_summary(&mut out, &report.summary);
    render_deltas(&mut out, &report.deltas);
    if !report.reasons.is_empty() {
        let _ = writeln!(out, "Member changes by reason: {:?}", report.reasons);
    }
    render_notes(
        &mut out,
        &report.refusals,
        &report.drift,
        &report.warnings,
        &report.input,
    );
    let t = &report.timings;
    let _ = writeln!(
        out,
        "Steps (ms): load market {:.1}, compute {:.1}, load current {:.1}, diff {:.1}, apply {:.1}, commit {:.1}",
        t.load_market_ms, t.compute_ms, t.load_current_ms, t.diff_ms, t.apply_ms, t.commit_ms
    );
    out
}

fn render_summary(out: &mut String, summary: &BTreeMap<Family, FamilySummary>) {
    let _ = writeln!(
        out,
        "{:<16} {:>6} {:>6} {:>6} {:>9} {:>8} {:>8}",
        "family", "create", "update", "delete", "unchanged", "+members", "-members"
    );
    for (family, s) in summary {
        let _ = writeln!(
            out,
            "{:<16} {:>6} {:>6} {:>6} {:>9} {:>8} {:>8}",
            family.as_str(),
            s.create,
            s.update,
            s.delete,
            s.unchanged,
            s.members_added,
            s.members_removed
        );
    }
}

/// Members shown per reason before `… +N`.
const SHOWN_MEMBERS: usize = 8;

fn render_members(out: &mut String, sign: char, members: &[MemberLine]) {
    if members.is_empty() {
        return;
    }
    let mut by_reason: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for m in members {
        by_reason.entry(m.reason).or_default().push(&m.ticker);
    }
    for (reason, tickers) in by_reason {
        let shown: Vec<&str> = tickers.iter().take(SHOWN_MEMBERS).copied().collect();
        let more = tickers.len().saturating_sub(SHOWN_MEMBERS);
        let tail = if more > 0 {
            format!(" … +{more}")
        } else {
            String::new()
        };
        let _ = writeln!(out, "      {sign} {} ({reason}){tail}", shown.join(" "));
    }
}

/// Turnover banding's held or displaced members, per universe (`--format json` has the caps,
/// ranks and limits).
fn render_banding<'a>(
    out: &mut String,
    title: &str,
    members: impl Iterator<Item = (&'a String, &'a String)>,
) {
    let mut by_universe: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (universe, ticker) in members {
        by_universe.entry(universe).or_default().push(ticker);
    }
    if by_universe.is_empty() {
        return;
    }
    let _ = writeln!(out, "{title}:");
    for (universe, tickers) in by_universe {
        let shown: Vec<&str> = tickers.iter().take(SHOWN_MEMBERS).copied().collect();
        let more = tickers.len().saturating_sub(SHOWN_MEMBERS);
        let tail = if more > 0 {
            format!(" … +{more}")
        } else {
            String::new()
        };
        let _ = writeln!(out, "  {universe}: {}{tail}", shown.join(" "));
    }
}

fn render_deltas(out: &mut String, deltas: &[DeltaLine]) {
    for d in deltas {
        let what = match (d.op, d.metadata_only) {
            (Op::Update, true) => "update (figures only)",
            (Op::Create, _) => "create",
            (Op::Update, _) => "update",
            (Op::Delete, _) => "delete",
        };
        let _ = writeln!(out, "  {what:<22} {}/{}/{}", d.entry_type, d.name, d.key);
        if d.op != Op::Create {
            render_members(out, '+', &d.added);
        }
        render_members(out, '-', &d.removed);
        if !d.reranked.is_empty() || d.revalued > 0 {
            let _ = writeln!(
                out,
                "      ~ {} re-ranked, {} re-valued",
                d.reranked.len(),
                d.revalued
            );
        }
    }
}

fn render_notes(
    out: &mut String,
    refusals: &[Refusal],
    drift: &[String],
    warnings: &[ConfigWarning],
    input: &InputReport,
) {
    for r in refusals {
        let _ = writeln!(out, "GUARD: {r} (a run needs --force)");
    }
    for d in drift {
        let _ = writeln!(
            out,
            "DRIFT: {d} was changed outside the job; a run reconciles it (reason manual_drift)"
        );
    }
    for w in warnings {
        let _ = writeln!(out, "warning: {}: {}", w.source, w.message);
    }
    let _ = writeln!(
        out,
        "Input: {} symbol rows, {} eligible stocks, {} active ETFs, {} market-cap fallbacks {:?}, excluded {:?}",
        input.symbol_rows,
        input.eligible_stocks,
        input.active_etfs,
        input.fallback_total(),
        input.cap_fallbacks,
        input.excluded
    );
}

/// Changes, newest first, with members and reasons.
pub(super) fn history(lines: &[history::HistoryLine]) -> String {
    let mut out = String::new();
    if lines.is_empty() {
        out.push_str("No changes recorded.\n");
    }
    for line in lines {
        let as_of = line.as_of.map_or("-".to_owned(), |d| d.to_string());
        out.push_str(&format!(
            "run {:>4}  as of {as_of}  {:<8} {}\n",
            line.run_id, line.op, line.universe
        ));
        for (sign, members) in [('+', &line.added), ('-', &line.removed)] {
            for m in members.iter().take(20) {
                let detail = if m.detail.is_null() {
                    String::new()
                } else {
                    format!(" {}", m.detail)
                };
                out.push_str(&format!(
                    "      {sign} {} ({}){detail}\n",
                    m.ticker, m.reason
                ));
            }
            if members.len() > 20 {
                out.push_str(&format!("      {sign} … {} more\n", members.len() - 20));
            }
        }
    }
    out
}

/// One universe's value at a point in history.
pub(super) fn snapshot(shown: &history::UniverseSnapshot) -> String {
    let when = shown
        .run_id
        .map_or("now".to_owned(), |r| format!("after run {r}"));
    match (&shown.value, shown.hash) {
        (Some(value), Some(hash)) => format!(
            "{} {when}: {} members, hash {hash}\n{}\n",
            shown.universe,
            shown.members,
            serde_json::to_string_pretty(value).expect("values serialise")
        ),
        _ => format!("{} did not exist {when}.\n", shown.universe),
    }
}

/// A replay and the hashes it checked.
pub(super) fn replay(report: &history::ReplayReport) -> String {
    let s = &report.stats;
    let from = s.checkpoint_run.map_or("the first event".to_owned(), |r| {
        format!("the checkpoint of run {r}")
    });
    let agreed = match (report.verified, report.verified_from) {
        (false, _) => String::new(),
        (true, None) => ", and a full fold from the first event agreed".to_owned(),
        (true, Some(r)) => format!(
            ", and a full fold from the compaction checkpoint of run {r} (the log's start) agreed"
        ),
    };
    let mut out = format!(
        "Replayed run {} ({} entries) from {from} with {} events in {:.1} ms; every value matched the hash the log recorded{agreed}.\n",
        s.run_id, s.entries, s.events_applied, s.duration_ms,
    );
    for (key, hash) in &report.hashes {
        out.push_str(&format!("  {} {key}\n", &hash.to_hex()[..16]));
    }
    out
}

/// Rows that differ from the audit log.
pub(super) fn drift(differences: &[history::DriftedRow]) -> String {
    if differences.is_empty() {
        return "Every owned row matches the audit log.\n".to_owned();
    }
    let mut out = format!("{} owned rows differ from the audit log (the next run reconciles them, reason manual_drift):\n", differences.len());
    for d in differences {
        out.push_str(&format!(
            "  {:<8} {}  +[{}] -[{}]\n",
            d.kind,
            d.universe,
            d.extra_members.join(" "),
            d.missing_members.join(" ")
        ));
    }
    out
}

/// The statements of `migrate --widen-unique`.
pub(super) fn widen(widen: &Widen<'_>) -> String {
    if widen.statements.is_empty() {
        return "No unique constraint on cache_entries leaves out name; nothing to widen.\n"
            .to_owned();
    }
    let verb = if widen.applied {
        "Applied"
    } else {
        "Would apply (add --yes to apply)"
    };
    format!("{verb}:\n  {};\n", widen.statements.join(";\n  "))
}

/// What `compact` did or would do.
pub(super) fn compaction(report: &CompactionReport) -> String {
    let Some(h) = report.horizon.filter(|_| report.nothing_to_do.is_none()) else {
        return format!(
            "Nothing to compact with --keep-days {}: {}.\n",
            report.keep_days,
            report
                .nothing_to_do
                .unwrap_or("nothing is older than the horizon")
        );
    };
    let verb = if report.dry_run {
        "Would fold"
    } else {
        "Folded"
    };
    format!(
        "{verb} the log through run {} into its checkpoint: horizon run {} (as of {}); {} events and {} checkpoints removed; log {} -> {} bytes ({:.1} ms).\n",
        h.fold_through,
        h.run,
        h.as_of,
        report.events_removed,
        report.checkpoints_removed,
        report.bytes_before,
        report.bytes_after,
        report.duration_ms,
    )
}
