//! Redis for the tests: the shared server's URL, a channel prefix per test, a pattern
//! subscriber that drains what a test published, and cleanup of the streams a test made.

use crate::helpers::WAIT;
use futures_util::StreamExt as _;
use redis::aio::MultiplexedConnection;
use serde_json::Value;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use tickstock_cache_sync::domain::events::Channels;

/// The shared Redis the tests publish on (each under its own prefix).
pub fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

static PREFIXES: AtomicU32 = AtomicU32::new(0);

/// A channel prefix no other test (or test run) uses.
pub fn unique_prefix() -> String {
    format!(
        "t{}_{}_{}",
        std::process::id(),
        PREFIXES.fetch_add(1, Ordering::SeqCst),
        chrono::Utc::now().timestamp_subsec_nanos()
    )
}

/// Deletes the streams of the prefixes it holds when the test ends, pass or fail.
pub struct StreamCleanup {
    url: String,
    prefixes: Vec<String>,
}

impl StreamCleanup {
    pub fn new(url: &str) -> Self {
        Self {
            url: url.to_owned(),
            prefixes: Vec::new(),
        }
    }

    /// A fresh prefix whose stream is deleted at the end.
    pub fn prefix(&mut self) -> String {
        let prefix = unique_prefix();
        self.prefixes.push(prefix.clone());
        prefix
    }
}

impl Drop for StreamCleanup {
    fn drop(&mut self) {
        let keys: Vec<String> = self
            .prefixes
            .iter()
            .map(|p| Channels { prefix: p.clone() }.stream())
            .collect();
        if keys.is_empty() {
            return;
        }
        if let Ok(mut con) = redis::Client::open(self.url.as_str())
            .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(2)))
        {
            let _ = redis::cmd("DEL").arg(&keys).query::<i64>(&mut con);
        }
    }
}

pub async fn connection(url: &str) -> MultiplexedConnection {
    redis::Client::open(url)
        .expect("valid Redis URL")
        .get_multiplexed_async_connection()
        .await
        .expect("connect to Redis")
}

/// One message a subscriber received.
#[derive(Debug, Clone, PartialEq)]
pub struct Received {
    pub channel: String,
    pub message: Value,
}

impl Received {
    pub fn payload(&self) -> &Value {
        &self.message["payload"]
    }
    pub fn seq(&self) -> Option<i64> {
        self.payload()["seq"].as_i64()
    }
}

/// A pattern subscription on `{prefix}:*`, ready (confirmed by the server) when constructed.
pub struct Subscriber {
    url: String,
    prefix: String,
    messages: redis::aio::PubSubStream,
    sentinels: u32,
}

impl Subscriber {
    pub async fn new(url: &str, prefix: &str) -> Self {
        let client = redis::Client::open(url).expect("valid Redis URL");
        let mut pubsub = client.get_async_pubsub().await.expect("pubsub connection");
        pubsub
            .psubscribe(format!("{prefix}:*"))
            .await
            .expect("psubscribe");
        Self {
            url: url.to_owned(),
            prefix: prefix.to_owned(),
            messages: pubsub.into_on_message(),
            sentinels: 0,
        }
    }

    /// Everything published under the prefix since the last drain: publishes a sentinel and
    /// returns what arrived before it (Redis delivers in the order it executed the publishes).
    pub async fn drain(&mut self) -> Vec<Received> {
        self.sentinels += 1;
        let sentinel = format!("{}:zz_test_sentinel", self.prefix);
        let marker = format!("sentinel-{}", self.sentinels);
        let mut con = connection(&self.url).await;
        redis::cmd("PUBLISH")
            .arg(&sentinel)
            .arg(&marker)
            .query_async::<i64>(&mut con)
            .await
            .expect("publish the sentinel");
        let mut received = Vec::new();
        loop {
            let msg = tokio::time::timeout(WAIT, self.messages.next())
                .await
                .unwrap_or_else(|_| {
                    panic!(
                        "no message within {WAIT:?}; received so far: {:?}",
                        received.len()
                    )
                })
                .expect("the subscription stays open");
            let channel = msg.get_channel_name().to_owned();
            let text: String = msg.get_payload().expect("text payload");
            if channel == sentinel {
                assert_eq!(text, marker, "sentinels arrive in order");
                return received;
            }
            let message = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("message on {channel} is JSON ({e}): {text}"));
            received.push(Received { channel, message });
        }
    }
}
