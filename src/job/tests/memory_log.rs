//! An in-memory `EventLog` for unit tests of the job's order of operations: a transaction sees a
//! snapshot taken at `begin` and publishes it at `commit`, one transaction at a time holds the
//! writer lock, and every call is written to a journal the tests read back. No SQL, no
//! durability; the SQL store is proved against real databases by the integration suite.

use crate::domain::config::ConfigRow;
use crate::domain::diff::{CurrentEntry, Delta, Op};
use crate::domain::events::OutgoingEvent;
use crate::domain::fingerprint::ContentHash;
use crate::domain::market::MarketSnapshot;
use crate::domain::types::{EntryKey, Family, RunId, Scope};
use crate::store::{
    AppendedRun, Checkpoint, EntryHead, EventFilter, EventLog, LockOutcome, LoggedEvent, NewRun,
    RowIdentity, RunStatus, RunTx, StoreError, StoredRow, UniqueConstraint,
};
use async_trait::async_trait;
use chrono::NaiveDate;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// What the log holds once committed.
#[derive(Debug, Clone, Default)]
pub struct Contents {
    /// The market `load_market` returns (whatever as-of is asked).
    pub market: MarketSnapshot,
    /// The latest date in the price table.
    pub latest_price_date: Option<NaiveDate>,
    pub config_rows: Vec<ConfigRow>,
    /// `cache_entries` of the one environment: id, identity and value.
    pub rows: Vec<(i64, EntryKey, serde_json::Value)>,
    pub heads: HashMap<EntryKey, EntryHead>,
    pub runs: Vec<(RunId, NewRun)>,
    /// Every appended event.
    pub events: Vec<LoggedEvent>,
    pub outbox: Vec<(RunId, OutgoingEvent)>,
    pub checkpoints: Vec<RunId>,
    /// The last row id handed out: ids are never reused, as with a serial column.
    pub last_row_id: i64,
}

#[derive(Debug, Default)]
struct Shared {
    committed: Contents,
    writer_held: bool,
    journal: Vec<&'static str>,
    /// A call that fails with `StoreError::Corrupt`, to test what the job does then.
    fail_at: Option<&'static str>,
}

/// The in-memory log. Clones share one log.
#[derive(Debug, Clone, Default)]
pub struct MemoryLog {
    shared: Arc<Mutex<Shared>>,
}

fn lock(shared: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    // A test that panicked while holding the lock has failed already; its data is still usable.
    shared
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Journals `call` and fails it when the test asked for that.
fn enter(shared: &Mutex<Shared>, call: &'static str) -> Result<(), StoreError> {
    let mut s = lock(shared);
    s.journal.push(call);
    if s.fail_at == Some(call) {
        return Err(StoreError::Corrupt(format!("{call} failed (injected)")));
    }
    Ok(())
}

/// What `StoredRow::digest` is here: the value's text hashed, like SQLite's.
fn digest(value: &serde_json::Value) -> String {
    blake3::hash(value.to_string().as_bytes())
        .to_hex()
        .to_string()
}

impl MemoryLog {
    /// A log holding `contents`.
    pub fn with(contents: Contents) -> Self {
        let log = Self::default();
        lock(&log.shared).committed = contents;
        log
    }

    /// Every call so far, in order.
    pub fn journal(&self) -> Vec<&'static str> {
        lock(&self.shared).journal.clone()
    }

    /// Forgets the journal.
    pub fn clear_journal(&self) {
        lock(&self.shared).journal.clear();
    }

    /// Makes every later `call` fail.
    pub fn fail_at(&self, call: &'static str) {
        lock(&self.shared).fail_at = Some(call);
    }

    /// What is committed now.
    pub fn contents(&self) -> Contents {
        lock(&self.shared).committed.clone()
    }

    /// Whether a transaction holds the writer lock.
    pub fn writer_held(&self) -> bool {
        lock(&self.shared).writer_held
    }
}

#[async_trait]
impl EventLog for MemoryLog {
    async fn begin(&self) -> Result<Box<dyn RunTx>, StoreError> {
        enter(&self.shared, "begin")?;
        Ok(Box::new(MemoryTx {
            contents: self.contents(),
            shared: self.shared.clone(),
            holds_lock: false,
            ended: false,
        }))
    }

    async fn append_run_record(&self, run: &NewRun) -> Result<RunId, StoreError> {
        enter(&self.shared, "append_run_record")?;
        let mut s = lock(&self.shared);
        let run_id = RunId(s.committed.runs.len() as i64 + 1);
        s.committed.runs.push((run_id, run.clone()));
        Ok(run_id)
    }

    async fn writer_lock_holder(&self) -> Result<Option<String>, StoreError> {
        Ok(self.writer_held().then(|| "another transaction".to_owned()))
    }
}

/// A transaction on a snapshot of the log.
struct MemoryTx {
    contents: Contents,
    shared: Arc<Mutex<Shared>>,
    holds_lock: bool,
    ended: bool,
}

impl MemoryTx {
    fn end(&mut self, call: &'static str) -> Result<(), StoreError> {
        self.ended = true;
        if self.holds_lock {
            lock(&self.shared).writer_held = false;
            self.holds_lock = false;
        }
        enter(&self.shared, call)
    }

    fn apply(&mut self, deltas: &[Delta]) {
        let c = &mut self.contents;
        for d in deltas {
            match d.op {
                Op::Delete => c.rows.retain(|(id, _, _)| Some(*id) != d.row_id),
                Op::Update => {
                    if let Some(row) = c.rows.iter_mut().find(|(id, _, _)| Some(*id) == d.row_id) {
                        row.2 = d.value_after.as_deref().cloned().unwrap_or_default();
                    }
                }
                Op::Create => {
                    let highest = c.rows.iter().map(|(id, _, _)| *id).max().unwrap_or(0);
                    c.last_row_id = c.last_row_id.max(highest) + 1;
                    let value = d.value_after.as_deref().cloned().unwrap_or_default();
                    c.rows.push((c.last_row_id, d.key.clone(), value));
                }
            }
        }
    }

    fn record_digests<'a>(&mut self, keys: impl IntoIterator<Item = &'a EntryKey>) {
        for key in keys {
            let live = self.contents.rows.iter().find(|(_, k, _)| k == key);
            let digest = live.map(|(_, _, v)| digest(v));
            if let (Some(head), Some(digest)) = (self.contents.heads.get_mut(key), digest) {
                head.row_digest = Some(digest);
            }
        }
    }
}

impl Drop for MemoryTx {
    fn drop(&mut self) {
        if !self.ended {
            let _ = self.end("dropped");
        }
    }
}

#[async_trait]
impl RunTx for MemoryTx {
    async fn try_lock_writer(&mut self) -> Result<LockOutcome, StoreError> {
        enter(&self.shared, "try_lock_writer")?;
        let mut s = lock(&self.shared);
        if s.writer_held && !self.holds_lock {
            return Ok(LockOutcome::HeldElsewhere);
        }
        s.writer_held = true;
        self.holds_lock = true;
        Ok(LockOutcome::Acquired)
    }

    async fn latest_price_date(&mut self) -> Result<Option<NaiveDate>, StoreError> {
        enter(&self.shared, "latest_price_date")?;
        Ok(self.contents.latest_price_date)
    }

    async fn load_market(
        &mut self,
        as_of: Option<NaiveDate>,
    ) -> Result<Option<MarketSnapshot>, StoreError> {
        enter(&self.shared, "load_market")?;
        Ok(as_of
            .or(self.contents.latest_price_date)
            .map(|as_of| MarketSnapshot {
                as_of,
                ..self.contents.market.clone()
            }))
    }

    async fn load_config_rows(&mut self, _environment: &str) -> Result<Vec<ConfigRow>, StoreError> {
        enter(&self.shared, "load_config_rows")?;
        Ok(self.contents.config_rows.clone())
    }

    async fn load_rows(
        &mut self,
        _environment: &str,
        scopes: &[Scope],
    ) -> Result<Vec<StoredRow>, StoreError> {
        enter(&self.shared, "load_rows")?;
        Ok(self
            .contents
            .rows
            .iter()
            .filter(|(_, key, _)| scopes.contains(&key.scope()))
            .map(|(id, key, value)| StoredRow {
                id: *id,
                key: key.clone(),
                digest: digest(value),
            })
            .collect())
    }

    async fn load_values(&mut self, ids: &[i64]) -> Result<Vec<CurrentEntry>, StoreError> {
        enter(&self.shared, "load_values")?;
        Ok(self
            .contents
            .rows
            .iter()
            .filter(|(id, _, _)| ids.contains(id))
            .map(|(id, key, value)| CurrentEntry {
                id: *id,
                key: key.clone(),
                value: value.clone(),
            })
            .collect())
    }

    async fn load_identities(&mut self) -> Result<Vec<RowIdentity>, StoreError> {
        enter(&self.shared, "load_identities")?;
        Ok(self
            .contents
            .rows
            .iter()
            .map(|(_, key, _)| RowIdentity {
                key: key.clone(),
                environment: "DEFAULT".to_owned(),
            })
            .collect())
    }

    async fn unique_constraints(&mut self) -> Result<Vec<UniqueConstraint>, StoreError> {
        enter(&self.shared, "unique_constraints")?;
        Ok(vec![UniqueConstraint {
            name: "cache_entries_type_name_key_environment_key".to_owned(),
            columns: ["type", "name", "key", "environment"]
                .map(str::to_owned)
                .to_vec(),
        }])
    }

    async fn last_config_hash(
        &mut self,
        _environment: &str,
    ) -> Result<Option<ContentHash>, StoreError> {
        enter(&self.shared, "last_config_hash")?;
        Ok(self
            .contents
            .runs
            .iter()
            .rev()
            .find(|(_, r)| r.outcome.status == RunStatus::Completed)
            .map(|(_, r)| r.outcome.config_hash))
    }

    async fn entry_heads(
        &mut self,
        _environment: &str,
    ) -> Result<HashMap<EntryKey, EntryHead>, StoreError> {
        enter(&self.shared, "entry_heads")?;
        Ok(self.contents.heads.clone())
    }

    async fn append_run(
        &mut self,
        run: &NewRun,
        deltas: &[Delta],
        recheck: &[EntryKey],
    ) -> Result<AppendedRun, StoreError> {
        enter(&self.shared, "append_run")?;
        let run_id = RunId(self.contents.runs.len() as i64 + 1);
        self.apply(deltas);
        let mut seqs = Vec::new();
        for d in deltas {
            let seq = self.contents.events.len() as i64 + 1;
            let version = self.contents.heads.get(&d.key).map_or(0, |h| h.version) + 1;
            self.contents.events.push(LoggedEvent {
                seq,
                run_id,
                key: d.key.clone(),
                version,
                op: d.op,
                family: d.family,
                hash_before: d.hash_before,
                hash_after: d.hash_after,
                change: d.change.clone(),
                recorded_at: run.started_at,
            });
            seqs.push(seq);
            if !d.change.duplicate_row {
                let version = self.contents.heads.get(&d.key).map_or(0, |h| h.version) + 1;
                let head = EntryHead {
                    version,
                    last_seq: seq,
                    hash: d.hash_after,
                    row_digest: None,
                };
                self.contents.heads.insert(d.key.clone(), head);
            }
        }
        self.record_digests(deltas.iter().map(|d| &d.key).chain(recheck));
        self.contents.runs.push((run_id, run.clone()));
        Ok(AppendedRun { run_id, seqs })
    }

    async fn read_events(
        &mut self,
        _environment: &str,
        filter: &EventFilter,
    ) -> Result<Vec<LoggedEvent>, StoreError> {
        enter(&self.shared, "read_events")?;
        // Only what the job's own reads ask: one entry's events, oldest first.
        Ok(self
            .contents
            .events
            .iter()
            .filter(|e| filter.key.as_ref().is_none_or(|k| *k == e.key))
            .filter(|e| filter.after_run.is_none_or(|r| e.run_id > r))
            .cloned()
            .collect())
    }

    async fn checkpoint_before(
        &mut self,
        _environment: &str,
        _run_id: RunId,
        _key: Option<&EntryKey>,
    ) -> Result<Option<Checkpoint>, StoreError> {
        enter(&self.shared, "checkpoint_before")?;
        // Checkpoints hold no values here: replay folds every event.
        Ok(None)
    }

    async fn append_outbox(
        &mut self,
        run_id: RunId,
        _environment: &str,
        events: &[OutgoingEvent],
    ) -> Result<(), StoreError> {
        enter(&self.shared, "append_outbox")?;
        let queued = events.iter().map(|e| (run_id, e.clone()));
        self.contents.outbox.extend(queued);
        Ok(())
    }

    async fn runs_since_checkpoint(&mut self, _environment: &str) -> Result<i64, StoreError> {
        enter(&self.shared, "runs_since_checkpoint")?;
        let last = self
            .contents
            .checkpoints
            .last()
            .copied()
            .unwrap_or(RunId(0));
        Ok(self
            .contents
            .runs
            .iter()
            .filter(|(id, r)| *id > last && r.outcome.status == RunStatus::Completed)
            .count() as i64)
    }

    async fn append_checkpoint(
        &mut self,
        _environment: &str,
        run_id: RunId,
        _entries: &[(&EntryKey, Family, &serde_json::Value, ContentHash)],
    ) -> Result<(), StoreError> {
        enter(&self.shared, "append_checkpoint")?;
        self.contents.checkpoints.push(run_id);
        Ok(())
    }

    async fn commit(mut self: Box<Self>) -> Result<(), StoreError> {
        self.end("commit")?;
        lock(&self.shared).committed = std::mem::take(&mut self.contents);
        Ok(())
    }

    async fn rollback(mut self: Box<Self>) -> Result<(), StoreError> {
        self.end("rollback")
    }
}
