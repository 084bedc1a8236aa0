//! The change events of a run (SPEC §8), built from its deltas: what TickStockAppV2 already
//! subscribes to, plus a channel per universe and stream entries keyed by the audit `seq`. Pure:
//! the caller supplies sequence numbers, times and names; the outbox stores what this returns.

use crate::domain::diff::Delta;
use crate::domain::members::member_lists;
use crate::domain::reasons::ReasonCode;
use crate::domain::types::RunId;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};

/// `source` in every envelope.
pub const SOURCE: &str = "tickstock-cache-sync";
/// `version` in every envelope.
pub const VERSION: &str = "1.0";

/// Channel names under a configurable prefix (`tickstock` in production; tests use their own).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Channels {
    pub prefix: String,
}

impl Default for Channels {
    fn default() -> Self {
        Self {
            prefix: "tickstock".to_owned(),
        }
    }
}

impl Channels {
    /// `{prefix}:cache:sync_triggered`.
    pub fn sync_triggered(&self) -> String {
        format!("{}:cache:sync_triggered", self.prefix)
    }
    /// `{prefix}:cache:sync_complete`.
    pub fn sync_complete(&self) -> String {
        format!("{}:cache:sync_complete", self.prefix)
    }
    /// `{prefix}:universe:updated`.
    pub fn universe_updated(&self) -> String {
        format!("{}:universe:updated", self.prefix)
    }
    /// `{prefix}:universe:{type}:{name}:{key}`: one universe's own channel; pattern-subscribe
    /// `{prefix}:universe:stock_universe:*` or `{prefix}:universe:*:market_cap:*`.
    pub fn universe(&self, entry_type: &str, name: &str, key: &str) -> String {
        format!("{}:universe:{entry_type}:{name}:{key}", self.prefix)
    }
    /// `{prefix}:cache:ipo_assignment`.
    pub fn ipo_assignment(&self) -> String {
        format!("{}:cache:ipo_assignment", self.prefix)
    }
    /// `{prefix}:cache:delisting_cleanup`.
    pub fn delisting_cleanup(&self) -> String {
        format!("{}:cache:delisting_cleanup", self.prefix)
    }
    /// `{prefix}:cache:started`.
    pub fn started(&self) -> String {
        format!("{}:cache:started", self.prefix)
    }
    /// `{prefix}:cache:progress`.
    pub fn progress(&self) -> String {
        format!("{}:cache:progress", self.prefix)
    }
    /// `{prefix}:cache:completed`.
    pub fn completed(&self) -> String {
        format!("{}:cache:completed", self.prefix)
    }
    /// `{prefix}:monitoring` (the app's `job_progress_update` handler listens here).
    pub fn monitoring(&self) -> String {
        format!("{}:monitoring", self.prefix)
    }
    /// `{prefix}:errors` (the app's flat `ErrorMessage`, no envelope).
    pub fn errors(&self) -> String {
        format!("{}:errors", self.prefix)
    }
    /// `{prefix}:import:completed` (Phase 2 announces itself here).
    pub fn import_completed(&self) -> String {
        format!("{}:import:completed", self.prefix)
    }
    /// `{prefix}:cache:changes`: the durable stream of universe changes, entry ids `{seq}-1`.
    pub fn stream(&self) -> String {
        format!("{}:cache:changes", self.prefix)
    }
}

/// One event waiting in the outbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutgoingEvent {
    /// Audit `seq` of the entry delta it reports, for universe events (stream id, dedup key).
    pub seq: Option<i64>,
    pub channel: String,
    /// Also published here (the universe's own channel; the phase's `completed` channel).
    pub also_channel: Option<String>,
    pub event: String,
    pub payload: Value,
}

/// The envelope TickStockAppV2 parses.
pub fn envelope(event: &str, timestamp: &str, payload: &Value) -> Value {
    envelope_from(SOURCE, event, timestamp, payload)
}

/// The envelope with another `source` (the app filters some events by it).
pub fn envelope_from(source: &str, event: &str, timestamp: &str, payload: &Value) -> Value {
    json!({
        "event": event,
        "timestamp": timestamp,
        "source": source,
        "version": VERSION,
        "payload": payload,
    })
}

/// What the run-level events say about a run.
#[derive(Debug, Clone)]
pub struct RunFacts<'a> {
    pub run_id: RunId,
    pub job_id: &'a str,
    pub mode: &'a str,
    pub status: &'a str,
    pub duration_seconds: f64,
}

fn member_count(value: Option<&Value>) -> usize {
    value.map_or(0, |v| member_lists(v).iter().map(|(_, m)| m.len()).sum())
}

/// The events of a committed run, in the order they are published: one `universe_updated` per
/// entry delta (in `seq` order), then IPO assignments, the delisting cleanup and
/// `cache_sync_completed` (on `sync_complete` and on the phase's `completed`).
pub fn run_events(
    channels: &Channels,
    facts: &RunFacts<'_>,
    deltas: &[Delta],
    seqs: &[i64],
) -> Vec<OutgoingEvent> {
    let mut events = Vec::new();
    let mut ipo = Vec::new();
    let mut delisted = BTreeSet::new();
    let mut delisted_from = BTreeSet::new();
    for (delta, &seq) in deltas
        .iter()
        .zip(seqs)
        .filter(|(d, _)| !d.change.duplicate_row)
    {
        let key = &delta.key;
        let added = delta.change.added_tickers();
        let removed = delta.change.removed_tickers();
        let mut payload = json!({
            "universe": key.universe_label(),
            "type": key.entry_type,
            "name": key.name,
            "key": key.key,
            "action": delta.op.past_tense(),
            "added": added,
            "removed": removed,
            "count": member_count(delta.value_after.as_deref()),
            "hash": delta.hash_after.map(|h| h.to_hex()),
            "seq": seq,
            "run_id": facts.run_id,
        });
        let renamed_from: BTreeMap<&str, &str> = delta
            .change
            .lists
            .iter()
            .flat_map(|l| l.added.iter())
            .filter(|m| m.reason.code == ReasonCode::Renamed)
            .filter_map(|m| Some((m.ticker.as_str(), m.reason.detail.get("from")?.as_str()?)))
            .collect();
        if !renamed_from.is_empty() {
            // New ticker → old ticker, only when a rename happened, so other payloads are as
            // before.
            payload["renamed_from"] = json!(renamed_from);
        }
        if !delta.change.held.is_empty() {
            // Only with turnover banding on, so the payload is unchanged while it is off.
            let held: Vec<Value> = delta
                .change
                .held
                .iter()
                .map(|h| {
                    json!({"ticker": h.ticker, "reason": h.reason.code.as_str(), "detail": h.reason.detail})
                })
                .collect();
            payload["held"] = Value::Array(held);
        }
        events.push(OutgoingEvent {
            seq: Some(seq),
            channel: channels.universe_updated(),
            also_channel: Some(channels.universe(&key.entry_type, &key.name, &key.key)),
            event: "universe_updated".to_owned(),
            payload,
        });
        for list in &delta.change.lists {
            for m in list
                .added
                .iter()
                .filter(|m| m.reason.code == ReasonCode::NewListing)
            {
                ipo.push((m.ticker.clone(), key.universe_label()));
            }
            for m in list
                .removed
                .iter()
                .filter(|m| m.reason.code == ReasonCode::DelistedOrInactive)
            {
                delisted.insert(m.ticker.clone());
                delisted_from.insert(key.universe_label());
            }
        }
    }
    for (symbol, universe) in ipo {
        events.push(OutgoingEvent {
            seq: None,
            channel: channels.ipo_assignment(),
            also_channel: None,
            event: "ipo_assignment".to_owned(),
            payload: json!({"symbol": symbol, "universe": universe, "run_id": facts.run_id}),
        });
    }
    if !delisted.is_empty() {
        events.push(OutgoingEvent {
            seq: None,
            channel: channels.delisting_cleanup(),
            also_channel: None,
            event: "delisting_cleanup".to_owned(),
            payload: json!({
                "removed_count": delisted.len(),
                "symbols": delisted,
                "universes": delisted_from,
                "run_id": facts.run_id,
            }),
        });
    }
    let universes: BTreeSet<String> = deltas.iter().map(|d| d.key.universe_label()).collect();
    // One message on the channel the app's Sprint-36 listener reads and on the phase's own
    // `completed` channel, under the name the phase events share.
    events.push(OutgoingEvent {
        seq: None,
        channel: channels.sync_complete(),
        also_channel: Some(channels.completed()),
        event: "cache_sync_completed".to_owned(),
        payload: json!({
            "job_id": facts.job_id,
            "status": facts.status,
            "mode": facts.mode,
            "total_changes": deltas.len(),
            "universes_updated": universes.len(),
            "duration_seconds": facts.duration_seconds,
            "run_id": facts.run_id,
        }),
    });
    events
}
