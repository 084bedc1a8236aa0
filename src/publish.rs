//! Redis: the relay that publishes the outbox after commit (in order, marking what it sent), the
//! best-effort notices of a run in progress, and Phase 2's completion signal. Nothing here is
//! called inside a database transaction.
//!
//! A run's notices share one connection and one short budget of waiting (`NOTICE_BUDGET`, see
//! `Publisher::for_one_run`): a Redis that is down or frozen costs the run that much in all,
//! not a timeout per notice. Once Redis has not answered, the run sends it nothing more, not
//! even its relay: the change events stay in the outbox for the next relay.

use crate::domain::events::{envelope, Channels};
use crate::domain::notices::Notice;
use crate::store::{Outbox, OutboxRow, StoreError};
use chrono::{SecondsFormat, Utc};
use redis::aio::MultiplexedConnection;
use redis::AsyncConnectionConfig;
use serde::Serialize;
use serde_json::Value;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Rows the relay reads and publishes per round trip.
const BATCH: i64 = 1000;

/// The most a run waits on Redis for all its notices together.
pub const NOTICE_BUDGET: Duration = Duration::from_secs(2);

/// Why publishing failed (the outbox keeps the events; the next relay retries).
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("Redis is not reachable: {0}")]
    Redis(#[from] redis::RedisError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(
        "Redis did not answer within the run's notice budget ({}s); nothing more is sent to it \
         in this run and the change events stay in the outbox",
        .0.as_secs_f64()
    )]
    Unanswered(Duration),
}

/// What one relay pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RelayOutcome {
    pub published: usize,
    /// Universe events the stream already held (a relay that died before marking).
    pub already_in_stream: usize,
}

/// Publishes to one Redis.
#[derive(Clone)]
pub struct Publisher {
    client: redis::Client,
    url: String,
    channels: Channels,
    stream_maxlen: usize,
    /// Set for one run's use (`for_one_run`).
    budget: Option<Arc<NoticeBudget>>,
}

/// What one run may still spend waiting on Redis, over one shared connection.
struct NoticeBudget {
    total: Duration,
    /// Waiting spent so far, and the connection once made.
    state: tokio::sync::Mutex<(Duration, Option<MultiplexedConnection>)>,
    given_up: AtomicBool,
}

/// Now, as notices stamp it (RFC 3339 UTC with milliseconds).
pub fn now_text() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

impl Publisher {
    /// A publisher for `url` (`redis://host:port`); connects lazily.
    ///
    /// # Errors
    /// A malformed URL.
    pub fn new(url: &str, channels: Channels, stream_maxlen: usize) -> Result<Self, PublishError> {
        Ok(Self {
            client: redis::Client::open(url)?,
            url: url.to_owned(),
            channels,
            stream_maxlen,
            budget: None,
        })
    }

    /// The Redis URL, for a child process's environment (it may hold a password: never print it).
    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// This publisher for one run: its notices share one connection and `NOTICE_BUDGET` of
    /// waiting in all; once Redis fails to answer within it, later notices and the relay are
    /// skipped (`PublishError::Unanswered`).
    #[must_use]
    pub fn for_one_run(&self) -> Self {
        self.with_budget(NOTICE_BUDGET)
    }

    /// As `for_one_run`, with another budget.
    #[must_use]
    pub fn with_budget(&self, total: Duration) -> Self {
        Self {
            budget: Some(Arc::new(NoticeBudget {
                total,
                state: tokio::sync::Mutex::new((Duration::ZERO, None)),
                given_up: AtomicBool::new(false),
            })),
            ..self.clone()
        }
    }

    /// Whether Redis failed to answer within this run's budget.
    pub fn gave_up(&self) -> bool {
        self.budget
            .as_ref()
            .is_some_and(|b| b.given_up.load(Ordering::SeqCst))
    }

    /// The Redis URL (for opening further connections; never logged).
    pub fn redis_url(&self) -> &str {
        &self.url
    }

    /// The channel names in use.
    pub fn channels(&self) -> &Channels {
        &self.channels
    }

    async fn connect(&self) -> Result<MultiplexedConnection, PublishError> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(5)));
        Ok(self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await?)
    }

    /// Whether Redis answers a `PING` (readiness reports it; nothing depends on it).
    ///
    /// # Errors
    /// Redis errors, or its silence.
    pub async fn ping(&self) -> Result<(), PublishError> {
        let mut con = self.connect().await?;
        let _: String = redis::cmd("PING").query_async(&mut con).await?;
        Ok(())
    }

    /// A subscription to Phase 2's completion channel (`serve --follow-imports`).
    ///
    /// # Errors
    /// Redis errors.
    pub async fn subscribe_imports(&self) -> Result<redis::aio::PubSub, PublishError> {
        let mut pubsub = self.client.get_async_pubsub().await?;
        pubsub.subscribe(self.channels.import_completed()).await?;
        Ok(pubsub)
    }

    /// Publishes every pending outbox event in order and marks it published; universe events
    /// also go to their own channel and to the stream (id `{seq}-1`, capped at the configured
    /// length). Stops at the first Redis error, leaving the rest pending.
    ///
    /// # Errors
    /// Redis or store errors; whatever was published before stays marked.
    pub async fn relay(&self, store: &dyn Outbox) -> Result<RelayOutcome, PublishError> {
        if let Some(budget) = self.budget.as_ref().filter(|_| self.gave_up()) {
            return Err(PublishError::Unanswered(budget.total));
        }
        let mut outcome = RelayOutcome::default();
        let mut con = self.connect().await?;
        let stream = self.channels.stream();
        loop {
            let rows = store.pending_outbox(BATCH).await?;
            if rows.is_empty() {
                return Ok(outcome);
            }
            // The stream refuses ids at or below its last one; skip what it already holds.
            let last: Vec<(String, Vec<(String, String)>)> = redis::cmd("XREVRANGE")
                .arg(&stream)
                .arg("+")
                .arg("-")
                .arg("COUNT")
                .arg(1)
                .query_async(&mut con)
                .await
                .unwrap_or_default();
            let last_seq = last
                .first()
                .and_then(|(id, _)| id.split('-').next()?.parse::<i64>().ok())
                .unwrap_or(0);
            let mut pipe = redis::pipe();
            for row in &rows {
                let message = envelope_of(row).to_string();
                pipe.cmd("PUBLISH").arg(&row.channel).arg(&message).ignore();
                if let Some(also) = &row.also_channel {
                    pipe.cmd("PUBLISH").arg(also).arg(&message).ignore();
                }
                if let Some(seq) = row.seq {
                    if seq > last_seq {
                        pipe.cmd("XADD")
                            .arg(&stream)
                            .arg("MAXLEN")
                            .arg("~")
                            .arg(self.stream_maxlen)
                            .arg(format!("{seq}-1"))
                            .arg("seq")
                            .arg(seq)
                            .arg("event")
                            .arg(&message)
                            .ignore();
                    } else {
                        outcome.already_in_stream += 1;
                    }
                }
            }
            pipe.query_async::<()>(&mut con).await?;
            let ids: Vec<i64> = rows.iter().map(|r| r.outbox_id).collect();
            store.mark_published(&ids).await?;
            outcome.published += rows.len();
        }
    }

    /// Publishes a notice now, not through the outbox (run started, progress, errors): losing
    /// one during an outage loses nothing the log does not hold.
    ///
    /// # Errors
    /// Redis errors.
    pub async fn notify(&self, notice: &Notice) -> Result<(), PublishError> {
        let mut publish = redis::cmd("PUBLISH");
        publish.arg(&notice.channel).arg(notice.message.to_string());
        let Some(budget) = &self.budget else {
            let mut con = self.connect().await?;
            publish.query_async::<i64>(&mut con).await?;
            return Ok(());
        };
        if budget.given_up.load(Ordering::SeqCst) {
            return Err(PublishError::Unanswered(budget.total));
        }
        let started = tokio::time::Instant::now();
        let mut state = budget.state.lock().await;
        let left = budget.total.saturating_sub(state.0 + started.elapsed());
        let (spent, connection) = &mut *state;
        let sent = tokio::time::timeout(left, async {
            if connection.is_none() {
                *connection = Some(self.connect().await?);
            }
            if let Some(con) = connection.as_mut() {
                publish.query_async::<i64>(con).await?;
            }
            Ok::<(), PublishError>(())
        })
        .await;
        *spent += started.elapsed();
        let failed = match sent {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(e)) => e,
            Err(_) => PublishError::Unanswered(budget.total),
        };
        *connection = None;
        budget.given_up.store(true, Ordering::SeqCst);
        tracing::warn!(
            error = %failed,
            "Redis is not answering: the run's remaining notices are skipped, its change events stay in the outbox"
        );
        Err(failed)
    }

    /// As `notify`, for notices nothing depends on: an unreachable Redis is logged, never fatal.
    pub async fn announce(&self, notice: &Notice) {
        match self.notify(notice).await {
            Ok(()) => {}
            // Said once, when Redis stopped answering.
            Err(_) if self.gave_up() => {
                tracing::debug!(
                    channel = %notice.channel,
                    "notice skipped: Redis did not answer earlier in this run"
                );
            }
            Err(e) => {
                tracing::warn!(error = %e, channel = %notice.channel, "notice not published")
            }
        }
    }

    /// Waits up to `timeout` for a message on Phase 2's completion channel, unless `already`
    /// (evaluated once subscribed, so nothing slips between the check and the wait) says the
    /// import is done. `Ok(false)` on timeout.
    ///
    /// # Errors
    /// Redis errors.
    pub async fn wait_for_import(
        &self,
        timeout: Duration,
        already: impl std::future::Future<Output = bool>,
    ) -> Result<bool, PublishError> {
        use futures_util::StreamExt as _;
        let mut pubsub = self.client.get_async_pubsub().await?;
        pubsub.subscribe(self.channels.import_completed()).await?;
        if already.await {
            return Ok(true);
        }
        let mut messages = pubsub.on_message();
        Ok(tokio::time::timeout(timeout, messages.next()).await.is_ok())
    }
}

/// One stream's entries as XREAD returns them: `(stream, [(id, [(field, value)])])`.
type StreamReply = (String, Vec<(String, Vec<(String, String)>)>);

/// The envelope of an outbox row, stamped with the time the run queued it.
pub fn envelope_of(row: &OutboxRow) -> Value {
    envelope(
        &row.event,
        &row.created_at.to_rfc3339_opts(SecondsFormat::Millis, true),
        &row.payload,
    )
}

impl Publisher {
    /// Reads the change stream from after `from_seq` and hands each entry to `sink`, blocking
    /// for new ones; runs until the connection fails.
    ///
    /// # Errors
    /// Redis errors.
    pub async fn follow(
        &self,
        from_seq: i64,
        mut sink: impl FnMut(&str, &Value),
    ) -> Result<(), PublishError> {
        let mut con = self.connect_blocking().await?;
        let stream = self.channels.stream();
        let mut last_id = format!("{from_seq}-1");
        loop {
            let reply: Option<Vec<StreamReply>> = redis::cmd("XREAD")
                .arg("BLOCK")
                .arg(5000)
                .arg("STREAMS")
                .arg(&stream)
                .arg(&last_id)
                .query_async(&mut con)
                .await?;
            for (_, entries) in reply.unwrap_or_default() {
                for (id, fields) in entries {
                    if let Some((_, text)) = fields.iter().find(|(k, _)| k == "event") {
                        if let Ok(event) = serde_json::from_str::<Value>(text) {
                            sink(&stream, &event);
                        }
                    }
                    last_id = id;
                }
            }
        }
    }

    async fn connect_blocking(&self) -> Result<MultiplexedConnection, PublishError> {
        // XREAD BLOCK holds the reply for up to its own timeout.
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(30)));
        Ok(self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await?)
    }
}
