//! Change events on Redis (SPEC §8, §12): what a subscriber sees after a nightly run, a Redis
//! outage that delays events without losing them, a stream reader catching up from its last
//! `seq`, and the `run` / `events` command line with Redis.
//!
//! Every test uses its own channel prefix on the shared Redis (`TEST_REDIS_URL`, else
//! 127.0.0.1:6379) and deletes its stream when it ends; the outage test runs a private
//! `redis-server`. Waits on Redis are bounded by `WAIT` (a failure bound, never a pause).

use crate::helpers::{
    cache_sync_command, describe, market_with_a_listing_on_day_2, on_both_stores, run_request,
    small_market, Backend, TestDb, WAIT,
};
use crate::pubsub::{connection, redis_url, unique_prefix, Received, StreamCleanup, Subscriber};
use redis::aio::MultiplexedConnection;
use redis::streams::StreamRangeReply;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead as _, BufReader};
use std::process::{Child, Stdio};
use tickstock_cache_sync::domain::events::Channels;
use tickstock_cache_sync::domain::members::member_lists;
use tickstock_cache_sync::job::{self, JobConfig, RunRequest};
use tickstock_cache_sync::publish::{PublishError, Publisher};
use tickstock_cache_sync::report::RunReport;

fn channels(prefix: &str) -> Channels {
    Channels {
        prefix: prefix.to_owned(),
    }
}

fn job_config(prefix: &str) -> JobConfig {
    JobConfig {
        channels: channels(prefix),
        ..JobConfig::default()
    }
}

/// The envelope TickStockAppV2 parses: exactly these fields, this event, a valid timestamp.
fn assert_envelope(received: &Received, event: &str) {
    let m = &received.message;
    let keys: BTreeSet<&str> = m
        .as_object()
        .unwrap_or_else(|| panic!("envelope is an object: {m}"))
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        BTreeSet::from(["event", "payload", "source", "timestamp", "version"]),
        "{m}"
    );
    assert_eq!(m["event"], event, "{m}");
    assert_eq!(m["source"], "tickstock-cache-sync");
    assert_eq!(m["version"], "1.0");
    let timestamp = m["timestamp"].as_str().expect("timestamp is text");
    assert!(
        chrono::DateTime::parse_from_rfc3339(timestamp).is_ok(),
        "timestamp is RFC 3339: {timestamp}"
    );
}

fn keys_of(v: &Value) -> BTreeSet<String> {
    v.as_object()
        .unwrap_or_else(|| panic!("an object: {v}"))
        .keys()
        .cloned()
        .collect()
}

/// One audit event as the log holds it.
#[derive(Debug, Clone)]
struct LoggedEvent {
    seq: i64,
    run_id: i64,
    entry_type: String,
    name: String,
    key: String,
    op: String,
    hash_after: Option<String>,
    change: Value,
}

impl LoggedEvent {
    fn label(&self) -> String {
        format!("{}:{}", self.name, self.key)
    }

    fn duplicate_row(&self) -> bool {
        self.change["duplicate_row"].as_bool().unwrap_or(false)
    }

    /// Members added or removed (`side` = "added" / "removed") across lists, with reasons.
    fn members(&self, side: &str) -> Vec<(String, String)> {
        self.change["lists"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|list| list[side].as_array().into_iter().flatten())
            .map(|m| {
                (
                    m["ticker"].as_str().expect("ticker").to_owned(),
                    m["reason"]["code"]
                        .as_str()
                        .expect("reason code")
                        .to_owned(),
                )
            })
            .collect()
    }

    fn tickers(&self, side: &str) -> Vec<String> {
        self.members(side)
            .into_iter()
            .map(|(t, _)| t)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect()
    }
}

/// `(seq, run_id, type, name, key, op, hash_after, change)`.
type EventRow = (
    i64,
    i64,
    String,
    String,
    String,
    String,
    Option<String>,
    Value,
);

/// `(outbox_id, run_id, seq, channel, also_channel, event, payload, published)`.
type OutboxTuple = (
    i64,
    i64,
    Option<i64>,
    String,
    Option<String>,
    String,
    Value,
    bool,
);

async fn logged_events(db: &TestDb, filter_sql: &str) -> Vec<LoggedEvent> {
    let rows: Vec<EventRow> = db
        .sql(format!(
            "select seq, run_id, entry_type, entry_name, entry_key, op, hash_after, change
             from cache_sync_event where {filter_sql} order by seq"
        ))
        .fetch_all()
        .await;
    rows.into_iter()
        .map(
            |(seq, run_id, entry_type, name, key, op, hash_after, change)| LoggedEvent {
                seq,
                run_id,
                entry_type,
                name,
                key,
                op,
                hash_after,
                change,
            },
        )
        .collect()
}

/// One outbox row as the table holds it.
#[derive(Debug, Clone, PartialEq)]
struct OutboxLine {
    outbox_id: i64,
    run_id: i64,
    seq: Option<i64>,
    channel: String,
    also_channel: Option<String>,
    event: String,
    payload: Value,
    published: bool,
}

async fn outbox(db: &TestDb, filter_sql: &str) -> Vec<OutboxLine> {
    let rows: Vec<OutboxTuple> = db
        .sql(format!(
            "select outbox_id, run_id, seq, channel, also_channel, event, payload,
                    published_at is not null
             from cache_sync_outbox where {filter_sql} order by outbox_id"
        ))
        .fetch_all()
        .await;
    rows.into_iter()
        .map(
            |(outbox_id, run_id, seq, channel, also_channel, event, payload, published)| {
                OutboxLine {
                    outbox_id,
                    run_id,
                    seq,
                    channel,
                    also_channel,
                    event,
                    payload,
                    published,
                }
            },
        )
        .collect()
}

async fn pending_count(db: &TestDb) -> i64 {
    db.sql("select count(*) from cache_sync_outbox where published_at is null")
        .scalar()
        .await
}

async fn run_with(db: &TestDb, prefix: &str, request: RunRequest) -> RunReport {
    job::run(db.store.as_ref(), &job_config(prefix), &request)
        .await
        .expect("the run applies")
}

fn run_id_of(report: &RunReport) -> i64 {
    report.run_id.expect("a committed run has an id").0
}

/// Checks that `received` (what a `{prefix}:*` subscriber got from one relay) is exactly the
/// outbox rows `rows`, in order: each row's envelope on its channel, universe events then again
/// on their own channel right after.
fn assert_received_rows(received: &[Received], rows: &[OutboxLine]) {
    let mut i = 0;
    for row in rows {
        let got = received.get(i).unwrap_or_else(|| {
            panic!(
                "outbox row {} ({}) was not received",
                row.outbox_id, row.event
            )
        });
        assert_eq!(got.channel, row.channel, "row {} channel", row.outbox_id);
        assert_envelope(got, &row.event);
        assert_eq!(got.payload(), &row.payload, "row {} payload", row.outbox_id);
        i += 1;
        if let Some(also) = &row.also_channel {
            let copy = received
                .get(i)
                .unwrap_or_else(|| panic!("row {} missing on {also}", row.outbox_id));
            assert_eq!(&copy.channel, also);
            assert_eq!(
                copy.message, got.message,
                "the same message on its own channel"
            );
            i += 1;
        }
    }
    assert_eq!(
        i,
        received.len(),
        "nothing but the outbox rows was published: extra {:?}",
        &received[i..]
    );
}

/// `(seq, event JSON)` of stream entries, checking each id is `{seq}-1` and the `seq` field.
fn stream_entries(reply: &StreamRangeReply) -> Vec<(i64, Value)> {
    reply
        .ids
        .iter()
        .map(|entry| {
            let (ms, n) = entry.id.split_once('-').expect("stream id ms-n");
            assert_eq!(n, "1", "stream ids are {{seq}}-1: {}", entry.id);
            let seq: i64 = ms.parse().expect("numeric id");
            let field: String = entry.get("seq").expect("seq field");
            assert_eq!(field, seq.to_string(), "seq field matches the id");
            let text: String = entry.get("event").expect("event field");
            let event: Value = serde_json::from_str(&text).expect("event is JSON");
            assert_eq!(event["payload"]["seq"], seq, "payload seq matches the id");
            (seq, event)
        })
        .collect()
}

async fn xrange(con: &mut MultiplexedConnection, stream: &str, start: &str) -> Vec<(i64, Value)> {
    let reply: StreamRangeReply = redis::cmd("XRANGE")
        .arg(stream)
        .arg(start)
        .arg("+")
        .query_async(con)
        .await
        .expect("XRANGE");
    stream_entries(&reply)
}

async fn xlen(con: &mut MultiplexedConnection, stream: &str) -> i64 {
    redis::cmd("XLEN")
        .arg(stream)
        .query_async(con)
        .await
        .expect("XLEN")
}

// ---------------------------------------------------------------------------------------------
// A nightly run, seen by a subscriber
// ---------------------------------------------------------------------------------------------

async fn a_subscriber_sees_one_universe_event_per_changed_entry_of_a_nightly_run_in_seq_order(
    backend: Backend,
) {
    let url = redis_url();
    let mut cleanup = StreamCleanup::new(&url);
    let prefix = cleanup.prefix();
    let ch = channels(&prefix);
    let publisher = Publisher::new(&url, ch.clone(), 100_000).unwrap();

    let db = TestDb::on(backend).await;
    let market = market_with_a_listing_on_day_2();
    db.load(&market, 1).await;
    run_with(&db, &prefix, run_request(false)).await;
    publisher
        .relay(db.store.as_ref())
        .await
        .expect("relay run 1");

    db.load_next(&market, 2).await;
    // A member delisted overnight: the last (smallest) member of the largest market-cap band.
    let delisted = crate::helpers::delist_smallest_member_of_largest_band(&db).await;

    let mut subscriber = Subscriber::new(&url, &prefix).await;
    let nightly = run_with(&db, &prefix, run_request(true)).await;
    let run_id = run_id_of(&nightly);
    let outcome = publisher
        .relay(db.store.as_ref())
        .await
        .expect("relay the nightly run");
    let received = subscriber.drain().await;

    // The outbox of the run, published in order and all marked.
    let rows = outbox(&db, &format!("run_id = {run_id}")).await;
    assert_eq!(outcome.published, rows.len());
    assert_received_rows(&received, &rows);
    assert_eq!(
        pending_count(&db).await,
        0,
        "every outbox row is marked published"
    );
    assert!(rows.iter().all(|r| r.published));

    // One universe_updated per changed entry, as the log records it.
    let logged = logged_events(&db, &format!("run_id = {run_id}")).await;
    assert!(logged.iter().all(|e| !e.duplicate_row()));
    let changed = nightly.created + nightly.updated + nightly.deleted;
    assert!(changed > 0, "the nightly run changed something");
    assert_eq!(logged.len(), changed);
    let updates: Vec<&Received> = received
        .iter()
        .filter(|r| r.channel == ch.universe_updated())
        .collect();
    assert_eq!(
        updates.len(),
        changed,
        "one universe_updated per changed entry"
    );
    let seqs: Vec<i64> = updates.iter().map(|r| r.seq().unwrap()).collect();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "in seq order: {seqs:?}"
    );
    for (msg, event) in updates.iter().zip(&logged) {
        assert_envelope(msg, "universe_updated");
        let p = msg.payload();
        assert_eq!(
            keys_of(p),
            [
                "universe", "type", "name", "key", "action", "added", "removed", "count", "hash",
                "seq", "run_id"
            ]
            .into_iter()
            .map(String::from)
            .collect(),
            "{p}"
        );
        assert_eq!(p["seq"], event.seq);
        assert_eq!(p["universe"], event.label());
        assert_eq!(p["type"], event.entry_type.as_str());
        assert_eq!(p["name"], event.name.as_str());
        assert_eq!(p["key"], event.key.as_str());
        assert_eq!(p["action"], event.op.as_str());
        assert_eq!(p["added"], serde_json::json!(event.tickers("added")), "{p}");
        assert_eq!(
            p["removed"],
            serde_json::json!(event.tickers("removed")),
            "{p}"
        );
        assert_eq!(p["hash"], serde_json::json!(event.hash_after));
        assert_eq!(p["run_id"], run_id);
        let live = db.value(&event.entry_type, &event.name, &event.key).await;
        let count: usize = live.as_ref().map_or(0, |v| {
            member_lists(v)
                .iter()
                .map(|(_, members)| members.len())
                .sum()
        });
        assert_eq!(p["count"], count, "{}: count of members now", event.label());
        assert_eq!(event.run_id, run_id);
    }
    // The same message on each universe's own channel.
    let own: Vec<&Received> = received
        .iter()
        .filter(|r| {
            r.channel.starts_with(&format!("{prefix}:universe:"))
                && r.channel != ch.universe_updated()
        })
        .collect();
    assert_eq!(own.len(), changed);
    for (copy, event) in own.iter().zip(&logged) {
        assert_eq!(
            copy.channel,
            ch.universe(&event.entry_type, &event.name, &event.key)
        );
        assert_eq!(copy.seq(), Some(event.seq));
    }

    // IPO assignments: exactly the members added with reason new_listing.
    let mut expected_ipos: Vec<(String, String)> = logged
        .iter()
        .flat_map(|e| {
            e.members("added")
                .into_iter()
                .filter(|(_, reason)| reason == "new_listing")
                .map(|(t, _)| (t, e.label()))
        })
        .collect();
    expected_ipos.sort();
    assert!(!expected_ipos.is_empty(), "day 2 lists a new stock");
    let ipo_messages: Vec<&Received> = received
        .iter()
        .filter(|r| r.channel == ch.ipo_assignment())
        .collect();
    let mut ipos: Vec<(String, String)> = ipo_messages
        .iter()
        .map(|r| {
            assert_envelope(r, "ipo_assignment");
            let p = r.payload();
            assert_eq!(
                keys_of(p),
                ["symbol", "universe", "run_id"].map(String::from).into()
            );
            assert_eq!(p["run_id"], run_id);
            (
                p["symbol"].as_str().unwrap().to_owned(),
                p["universe"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    ipos.sort();
    assert_eq!(ipos, expected_ipos);

    // The delisting cleanup: exactly the members removed as delisted or inactive.
    let removed: Vec<(String, String)> = logged
        .iter()
        .flat_map(|e| {
            e.members("removed")
                .into_iter()
                .filter(|(_, reason)| reason == "delisted_or_inactive")
                .map(|(t, _)| (t, e.label()))
        })
        .collect();
    let symbols: BTreeSet<&str> = removed.iter().map(|(t, _)| t.as_str()).collect();
    let universes: BTreeSet<&str> = removed.iter().map(|(_, u)| u.as_str()).collect();
    assert!(
        symbols.contains(delisted.as_str()),
        "{delisted} left as inactive"
    );
    let cleanups: Vec<&Received> = received
        .iter()
        .filter(|r| r.channel == ch.delisting_cleanup())
        .collect();
    assert_eq!(cleanups.len(), 1, "one delisting cleanup per run");
    assert_envelope(cleanups[0], "delisting_cleanup");
    let p = cleanups[0].payload();
    assert_eq!(p["removed_count"], symbols.len());
    assert_eq!(p["symbols"], serde_json::json!(symbols));
    assert_eq!(p["universes"], serde_json::json!(universes));
    assert_eq!(p["run_id"], run_id);

    // Exactly one sync_complete, after every universe event.
    let completes: Vec<(usize, &Received)> = received
        .iter()
        .enumerate()
        .filter(|(_, r)| r.channel == ch.sync_complete())
        .collect();
    assert_eq!(completes.len(), 1);
    let (at, complete) = completes[0];
    assert_envelope(complete, "cache_sync_completed");
    let p = complete.payload();
    for field in [
        "job_id",
        "status",
        "mode",
        "total_changes",
        "universes_updated",
        "duration_seconds",
    ] {
        assert!(p.get(field).is_some(), "sync_complete has {field}: {p}");
    }
    assert_eq!(p["job_id"], "test");
    assert_eq!(p["status"], "completed");
    assert!(p["mode"].is_string());
    assert_eq!(p["total_changes"], changed);
    let labels: BTreeSet<String> = logged.iter().map(LoggedEvent::label).collect();
    assert_eq!(p["universes_updated"], labels.len());
    assert!(p["duration_seconds"].as_f64().is_some_and(|d| d >= 0.0));
    assert!(
        received[..at]
            .iter()
            .filter(|r| r.channel == ch.universe_updated())
            .count()
            == changed,
        "sync_complete comes after every universe event"
    );
}

on_both_stores!(
    a_subscriber_sees_one_universe_event_per_changed_entry_of_a_nightly_run_in_seq_order
);

// ---------------------------------------------------------------------------------------------
// A Redis outage
// ---------------------------------------------------------------------------------------------

/// A private `redis-server` child process, killed when dropped.
pub(crate) struct PrivateRedis {
    port: u16,
    child: Option<Child>,
    /// Where a persistent server keeps its append-only file (`None`: nothing survives a restart).
    data_dir: Option<std::path::PathBuf>,
}

impl PrivateRedis {
    pub(crate) fn free_port() -> u16 {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
        listener.local_addr().unwrap().port()
    }

    /// Starts `redis-server` on `port` and returns once it accepts connections.
    fn start(port: u16) -> Self {
        let mut redis = Self {
            port,
            child: None,
            data_dir: None,
        };
        redis.restart();
        redis
    }

    /// As `start`, with every write in an append-only file, so a restart (even a kill) keeps
    /// the stream, as a production Redis with persistence does.
    pub(crate) fn start_persistent(port: u16) -> Self {
        let dir = std::env::temp_dir().join(format!("redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a directory for the append-only file");
        let mut redis = Self {
            port,
            child: None,
            data_dir: Some(dir),
        };
        redis.restart();
        redis
    }

    pub(crate) fn restart(&mut self) {
        assert!(self.child.is_none(), "already running");
        let (appendonly, dir) = match &self.data_dir {
            Some(dir) => ("yes", dir.clone()),
            None => ("no", std::env::temp_dir()),
        };
        let mut child = std::process::Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                appendonly,
                "--appendfsync",
                "always",
                "--dir",
                dir.to_str().unwrap(),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut seen = Vec::new();
        loop {
            match lines.next() {
                Some(Ok(line)) if line.contains("Ready to accept connections") => break,
                Some(Ok(line)) => seen.push(line),
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("redis-server did not start on {}: {seen:#?}", self.port);
                }
            }
        }
        // Keep reading its log so it never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        self.child = Some(child);
    }

    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub(crate) fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.stop();
        if let Some(dir) = &self.data_dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

async fn a_redis_outage_delays_events_and_a_later_relay_delivers_every_one_in_order(
    backend: Backend,
) {
    let mut redis = PrivateRedis::start(PrivateRedis::free_port());
    let url = redis.url();
    let prefix = unique_prefix();
    let ch = channels(&prefix);
    let publisher = Publisher::new(&url, ch.clone(), 100_000).unwrap();

    let db = TestDb::on(backend).await;
    let market = small_market(31, 3);
    db.load(&market, 1).await;
    run_with(&db, &prefix, run_request(false)).await;
    let first = publisher
        .relay(db.store.as_ref())
        .await
        .expect("Redis is up");
    assert!(first.published > 0);
    assert_eq!(pending_count(&db).await, 0);

    // Redis goes away; two nightly runs still commit, their events wait in the outbox.
    redis.stop();
    let mut run_ids = Vec::new();
    for day in 2..=3 {
        db.load_next(&market, day).await;
        let report = run_with(&db, &prefix, run_request(true)).await;
        let run_id = run_id_of(&report);
        let status: String = db
            .sql("select status from cache_sync_run where run_id = $1")
            .bind(run_id)
            .scalar()
            .await;
        assert_eq!(status, "completed", "day {day} committed without Redis");
        let err = publisher
            .relay(db.store.as_ref())
            .await
            .expect_err("the relay fails while Redis is down");
        assert!(matches!(err, PublishError::Redis(_)), "{err:?}");
        run_ids.push(run_id);
    }
    let runs = format!("run_id in ({}, {})", run_ids[0], run_ids[1]);
    let pending = outbox(&db, &runs).await;
    assert!(
        pending.iter().all(|r| !r.published),
        "nothing of the outage runs was marked"
    );
    assert_eq!(pending_count(&db).await as usize, pending.len());
    let logged: Vec<i64> = logged_events(&db, &runs)
        .await
        .iter()
        .map(|e| e.seq)
        .collect();
    let pending_seqs: Vec<i64> = pending.iter().filter_map(|r| r.seq).collect();
    assert_eq!(
        pending_seqs, logged,
        "one pending universe event per logged delta"
    );
    assert!(!logged.is_empty());

    // Redis is back: one relay delivers every pending event, in order, none lost.
    redis.restart();
    let mut subscriber = Subscriber::new(&url, &prefix).await;
    let outcome = publisher
        .relay(db.store.as_ref())
        .await
        .expect("Redis is back");
    assert_eq!(outcome.published, pending.len());
    assert_eq!(outcome.already_in_stream, 0);
    let received = subscriber.drain().await;
    assert_received_rows(&received, &pending);
    let seqs: Vec<i64> = received
        .iter()
        .filter(|r| r.channel == ch.universe_updated())
        .map(|r| r.seq().unwrap())
        .collect();
    assert_eq!(seqs, logged, "every universe event, seq ascending");
    let completes: Vec<i64> = received
        .iter()
        .filter(|r| r.channel == ch.sync_complete())
        .map(|r| r.payload()["run_id"].as_i64().unwrap())
        .collect();
    assert_eq!(
        completes, run_ids,
        "each outage run's sync_complete, in run order"
    );
    assert_eq!(pending_count(&db).await, 0);

    let mut con = connection(&url).await;
    let stream = ch.stream();
    assert_eq!(xlen(&mut con, &stream).await as usize, logged.len());
    let in_stream: Vec<i64> = xrange(&mut con, &stream, "-")
        .await
        .iter()
        .map(|e| e.0)
        .collect();
    assert_eq!(in_stream, logged);

    // A relay that runs twice over the same rows (it died before marking them): subscribers
    // get duplicates they can recognise by seq; the stream holds each seq once.
    db.exec(&format!(
        "update cache_sync_outbox set published_at = null where {runs}"
    ))
    .await;
    let again = publisher
        .relay(db.store.as_ref())
        .await
        .expect("relay again");
    assert_eq!(again.published, pending.len());
    assert_eq!(again.already_in_stream, logged.len());
    let duplicates = subscriber.drain().await;
    assert_received_rows(&duplicates, &pending);
    let mut by_seq: BTreeMap<i64, Vec<&Value>> = BTreeMap::new();
    for r in received.iter().chain(&duplicates) {
        if r.channel == ch.universe_updated() {
            by_seq.entry(r.seq().unwrap()).or_default().push(&r.message);
        }
    }
    assert_eq!(by_seq.keys().copied().collect::<Vec<_>>(), logged);
    for (seq, copies) in &by_seq {
        assert_eq!(copies.len(), 2, "seq {seq} delivered twice");
        assert_eq!(copies[0], copies[1], "a duplicate is the same message");
    }
    assert_eq!(xlen(&mut con, &stream).await as usize, logged.len());
    let in_stream: Vec<i64> = xrange(&mut con, &stream, "-")
        .await
        .iter()
        .map(|e| e.0)
        .collect();
    assert_eq!(in_stream, logged, "each seq once in the stream");
    assert_eq!(pending_count(&db).await, 0);
    redis.stop();
}

on_both_stores!(a_redis_outage_delays_events_and_a_later_relay_delivers_every_one_in_order);

// ---------------------------------------------------------------------------------------------
// A stream reader catching up
// ---------------------------------------------------------------------------------------------

/// What a reader that last saw `last` learns from the stream's first entry: the stream no
/// longer holds the next seq, so it must reload instead of catching up.
async fn fell_behind(con: &mut MultiplexedConnection, stream: &str, last: i64) -> bool {
    let reply: StreamRangeReply = redis::cmd("XRANGE")
        .arg(stream)
        .arg("-")
        .arg("+")
        .arg("COUNT")
        .arg(1)
        .query_async(con)
        .await
        .expect("XRANGE COUNT 1");
    stream_entries(&reply)
        .first()
        .is_some_and(|(first, _)| *first > last + 1)
}

async fn a_stream_reader_that_disconnects_for_several_runs_catches_up_from_its_last_seq(
    backend: Backend,
) {
    let url = redis_url();
    let mut cleanup = StreamCleanup::new(&url);
    let prefix = cleanup.prefix();
    let ch = channels(&prefix);
    let publisher = Publisher::new(&url, ch.clone(), 100_000).unwrap();
    let mut con = connection(&url).await;
    let stream = ch.stream();

    let db = TestDb::on(backend).await;
    let market = small_market(41, 4);
    db.load(&market, 1).await;
    run_with(&db, &prefix, run_request(false)).await;
    publisher
        .relay(db.store.as_ref())
        .await
        .expect("relay run 1");
    let seen = xrange(&mut con, &stream, "-").await;
    let logged: Vec<i64> = logged_events(&db, "true")
        .await
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(seen.iter().map(|e| e.0).collect::<Vec<_>>(), logged);
    let last = seen.last().expect("run 1 created entries").0;

    // The reader is away for three nightly runs.
    for day in 2..=4 {
        db.load_next(&market, day).await;
        run_with(&db, &prefix, run_request(true)).await;
        publisher.relay(db.store.as_ref()).await.expect("relay");
    }
    assert!(
        !fell_behind(&mut con, &stream, last).await,
        "a large stream still holds seq {}",
        last + 1
    );
    let caught_up = xrange(&mut con, &stream, &format!("({last}-1")).await;
    let missed: Vec<i64> = logged_events(&db, &format!("seq > {last}"))
        .await
        .iter()
        .filter(|e| !e.duplicate_row())
        .map(|e| e.seq)
        .collect();
    let queued: Vec<i64> = outbox(&db, &format!("seq > {last}"))
        .await
        .iter()
        .map(|r| r.seq.unwrap())
        .collect();
    assert_eq!(
        queued, missed,
        "the outbox holds one event per logged delta"
    );
    assert!(!missed.is_empty());
    assert_eq!(
        caught_up.iter().map(|e| e.0).collect::<Vec<_>>(),
        missed,
        "exactly the events after seq {last}, in order"
    );
    assert_eq!(caught_up[0].0, last + 1, "no gap after the last seen seq");
    assert!(
        caught_up.windows(2).all(|w| w[1].0 == w[0].0 + 1),
        "no gaps (no run was rolled back, so seqs are consecutive)"
    );
    let payloads: BTreeMap<i64, Value> = outbox(&db, &format!("seq > {last}"))
        .await
        .into_iter()
        .map(|r| (r.seq.unwrap(), r.payload))
        .collect();
    for (seq, event) in &caught_up {
        assert_eq!(event["event"], "universe_updated");
        assert_eq!(Some(&event["payload"]), payloads.get(seq), "seq {seq}");
    }

    // A tiny cap: the stream is trimmed past the reader's position, which it can detect.
    let tiny_prefix = cleanup.prefix();
    let tiny_stream = channels(&tiny_prefix).stream();
    let tiny = Publisher::new(&url, channels(&tiny_prefix), 5).unwrap();
    db.exec("update cache_sync_outbox set published_at = null")
        .await;
    tiny.relay(db.store.as_ref())
        .await
        .expect("relay into the capped stream");
    let total = logged_events(&db, "true").await.len();
    let kept = xrange(&mut con, &tiny_stream, "-").await;
    assert!(
        kept.len() < total,
        "MAXLEN ~ 5 trimmed the stream ({} of {total} kept)",
        kept.len()
    );
    assert_eq!(
        kept.last().map(|e| e.0),
        logged_events(&db, "true").await.last().map(|e| e.seq),
        "the newest entries are kept"
    );
    assert!(
        kept[0].0 > last + 1,
        "first kept seq {} is past the reader's next seq {}",
        kept[0].0,
        last + 1
    );
    assert!(fell_behind(&mut con, &tiny_stream, last).await);
}

on_both_stores!(a_stream_reader_that_disconnects_for_several_runs_catches_up_from_its_last_seq);

// ---------------------------------------------------------------------------------------------
// The command line
// ---------------------------------------------------------------------------------------------

/// `cache-sync` against `db` with Redis settings given explicitly.
fn cli_command(db: &TestDb, args: &[&str], redis: &str, prefix: &str) -> std::process::Command {
    let mut command = cache_sync_command(db, args);
    command
        .env("REDIS_URL", redis)
        .env("CACHE_SYNC_CHANNEL_PREFIX", prefix)
        .env_remove("CACHE_SYNC_STREAM_MAXLEN");
    command
}

async fn cli(db: &TestDb, args: &[&str], redis: &str, prefix: &str) -> std::process::Output {
    let command = tokio::process::Command::from(cli_command(db, args, redis, prefix)).output();
    tokio::time::timeout(WAIT, command)
        .await
        .expect("cache-sync finished within the bound")
        .expect("start cache-sync")
}

async fn the_cli_publishes_run_notices_relays_after_an_outage_and_prints_events_from_a_seq(
    backend: Backend,
) {
    let url = redis_url();
    let mut cleanup = StreamCleanup::new(&url);
    let prefix = cleanup.prefix();
    let ch = channels(&prefix);
    let db = TestDb::on(backend).await;
    let market = small_market(51, 2);
    db.load(&market, 1).await;

    // `run` with Redis: trigger, phase start, progress, then the outbox events.
    let mut subscriber = Subscriber::new(&url, &prefix).await;
    let out = cli(&db, &["run"], &url, &prefix).await;
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let received = subscriber.drain().await;
    let position = |channel: &str| {
        received
            .iter()
            .position(|r| r.channel == channel)
            .unwrap_or_else(|| panic!("a message on {channel}"))
    };
    let triggered = &received[position(&ch.sync_triggered())];
    assert_envelope(triggered, "cache_sync_triggered");
    let t = triggered.payload();
    let job_id = t["job_id"].as_str().expect("job_id").to_owned();
    assert!(!job_id.is_empty());
    assert_eq!(t["mode"], "full");
    assert_eq!(t["force"], false);
    assert_eq!(t["triggered_by"], "cli");
    let started = &received[position(&ch.started())];
    assert_envelope(started, "cache_sync_started");
    assert_eq!(started.payload()["job_id"], job_id.as_str());
    let progress: Vec<&Received> = received
        .iter()
        .filter(|r| r.channel == ch.progress())
        .collect();
    assert!(!progress.is_empty(), "progress on {}", ch.progress());
    let mut percents = Vec::new();
    for p in &progress {
        assert_envelope(p, "cache_sync_progress");
        assert!(p.payload()["step"].is_string(), "{}", p.message);
        assert_eq!(p.payload()["job_id"], job_id.as_str());
        percents.push(p.payload()["percent_complete"].as_u64().expect("percent"));
    }
    assert!(percents.windows(2).all(|w| w[0] <= w[1]), "{percents:?}");
    assert_eq!(percents.last(), Some(&100));
    let complete_at = position(&ch.sync_complete());
    let complete = &received[complete_at];
    assert_envelope(complete, "cache_sync_completed");
    assert_eq!(complete.payload()["job_id"], job_id.as_str());
    assert_eq!(complete.payload()["status"], "completed");
    assert_eq!(
        received
            .iter()
            .filter(|r| r.channel == ch.sync_complete())
            .count(),
        1
    );
    assert!(position(&ch.sync_triggered()) < position(&ch.started()));
    assert!(received
        .iter()
        .enumerate()
        .filter(|(_, r)| r.channel == ch.progress())
        .all(|(i, _)| position(&ch.started()) < i && i < complete_at));
    let run1 = logged_events(&db, "true").await;
    assert_eq!(
        received
            .iter()
            .filter(|r| r.channel == ch.universe_updated())
            .map(|r| r.seq().unwrap())
            .collect::<Vec<_>>(),
        run1.iter().map(|e| e.seq).collect::<Vec<_>>()
    );
    assert_eq!(pending_count(&db).await, 0);

    // `run` with an unreachable Redis: the run succeeds, the events wait in the outbox.
    db.load_next(&market, 2).await;
    let out = cli(&db, &["run", "--force"], "redis://127.0.0.1:1", &prefix).await;
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("warning") && stderr.contains("events stay in the outbox"),
        "{stderr}"
    );
    let run2_rows = outbox(&db, "published_at is null").await;
    assert!(!run2_rows.is_empty());
    assert!(
        subscriber.drain().await.is_empty(),
        "nothing reached the good Redis"
    );

    // `events --relay` with the good Redis publishes them.
    let out = cli(&db, &["events", "--relay"], &url, &prefix).await;
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains(&format!("Published {} pending events", run2_rows.len())),
        "{}",
        describe(&out)
    );
    let relayed = subscriber.drain().await;
    assert_received_rows(&relayed, &run2_rows);
    assert_eq!(pending_count(&db).await, 0);

    // `events --from-seq N --format json`: JSON lines of the universe events after N.
    let all_universe: Vec<OutboxLine> = outbox(&db, "seq is not null").await;
    let middle = all_universe[all_universe.len() / 2].seq.unwrap();
    let by_seq: BTreeMap<i64, &Value> = received
        .iter()
        .chain(&relayed)
        .filter(|r| r.channel == ch.universe_updated())
        .map(|r| (r.seq().unwrap(), &r.message))
        .collect();
    let from = middle.to_string();
    let out = cli(
        &db,
        &[
            "events",
            "--from-seq",
            &from,
            "--format",
            "json",
            "--limit",
            "100000",
        ],
        &url,
        &prefix,
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("a JSON line ({e}): {l}")))
        .collect();
    let expected: Vec<i64> = all_universe
        .iter()
        .filter_map(|r| r.seq)
        .filter(|&s| s > middle)
        .collect();
    assert!(!expected.is_empty());
    let printed: Vec<i64> = lines
        .iter()
        .map(|l| {
            assert_eq!(
                keys_of(l),
                ["channel", "message"].map(String::from).into(),
                "{l}"
            );
            assert_eq!(l["channel"], ch.universe_updated());
            let seq = l["message"]["payload"]["seq"].as_i64().expect("seq");
            assert_eq!(
                &&l["message"],
                by_seq.get(&seq).expect("a published seq"),
                "the printed event is the published message"
            );
            seq
        })
        .collect();
    assert_eq!(printed, expected, "only seq > {middle}, in order");

    // `--universe type/name/key` keeps one universe's events.
    let (entry_type, name, key, count): (String, String, String, i64) = db
        .sql(
            "select payload->>'type', payload->>'name', payload->>'key', count(*)
             from cache_sync_outbox where seq is not null
             group by 1, 2, 3 order by 4 desc, 1, 2, 3 limit 1",
        )
        .fetch_one()
        .await;
    let universe = format!("{entry_type}/{name}/{key}");
    let out = cli(
        &db,
        &["events", "--universe", &universe, "--format", "json"],
        &url,
        &prefix,
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len() as i64, count, "{universe}");
    for l in &lines {
        let p = &l["message"]["payload"];
        assert_eq!(
            (p["type"].as_str(), p["name"].as_str(), p["key"].as_str()),
            (
                Some(entry_type.as_str()),
                Some(name.as_str()),
                Some(key.as_str())
            )
        );
    }
    let out = cli(
        &db,
        &[
            "events",
            "--universe",
            &universe,
            "--from-seq",
            &from,
            "--format",
            "json",
        ],
        &url,
        &prefix,
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let l: Value = serde_json::from_str(line).unwrap();
        assert!(l["message"]["payload"]["seq"].as_i64().unwrap() > middle);
        assert_eq!(l["message"]["payload"]["key"], key.as_str());
    }
}

on_both_stores!(the_cli_publishes_run_notices_relays_after_an_outage_and_prints_events_from_a_seq);

async fn run_wait_for_import_times_out_with_code_6_or_proceeds_when_phase_2_announces_itself(
    backend: Backend,
) {
    let url = redis_url();
    let mut cleanup = StreamCleanup::new(&url);
    let db = TestDb::on(backend).await;
    // The synthetic market's prices end in January 2026: older than the expected trading day.
    db.load(&small_market(61, 1), 1).await;

    // Nobody announces the import: exit code 6, a notice on {prefix}:errors, nothing run.
    let prefix = cleanup.prefix();
    let ch = channels(&prefix);
    let mut subscriber = Subscriber::new(&url, &prefix).await;
    let out = cli(
        &db,
        &["run", "--wait-for-import", "--timeout", "1s"],
        &url,
        &prefix,
    )
    .await;
    assert_eq!(out.status.code(), Some(6), "{}", describe(&out));
    let received = subscriber.drain().await;
    let errors: Vec<&Received> = received
        .iter()
        .filter(|r| r.channel == ch.errors())
        .collect();
    assert_eq!(errors.len(), 1, "{received:?}");
    // The app's flat ErrorMessage (no envelope), and processing_error for its dashboard.
    let error = &errors[0].message;
    assert_eq!(error["source"], "TickStockPL", "{error}");
    assert_eq!(error["category"], "integration", "{error}");
    assert!(error["message"].as_str().unwrap().contains("Phase 2"));
    assert!(error["context"]["job_id"].is_string());
    let ended: Vec<&Received> = received
        .iter()
        .filter(|r| r.channel == ch.completed())
        .collect();
    assert_eq!(ended.len(), 1, "{received:?}");
    assert_envelope(ended[0], "processing_error");
    assert_eq!(ended[0].payload()["error_id"], error["error_id"]);
    assert_eq!(db.count("cache_sync_run").await, 0, "nothing was run");
    assert_eq!(db.count("cache_entries").await, 0);

    // Phase 2 announces itself while the CLI waits: it proceeds and succeeds.
    let prefix = cleanup.prefix();
    let ch = channels(&prefix);
    let mut child = tokio::process::Command::from(cli_command(
        &db,
        &["run", "--wait-for-import", "--timeout", "10m"],
        &url,
        &prefix,
    ))
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .kill_on_drop(true)
    .spawn()
    .expect("start cache-sync");
    let mut con = connection(&url).await;
    let listening = async {
        loop {
            let (_, n): (String, i64) = redis::cmd("PUBSUB")
                .arg("NUMSUB")
                .arg(ch.import_completed())
                .query_async(&mut con)
                .await
                .expect("PUBSUB NUMSUB");
            if n >= 1 {
                return;
            }
            assert!(
                child.try_wait().expect("child status").is_none(),
                "cache-sync exited before listening"
            );
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(WAIT, listening)
        .await
        .expect("the CLI subscribes to the import channel");
    let _: i64 = redis::cmd("PUBLISH")
        .arg(ch.import_completed())
        .arg(r#"{"event":"import_completed","payload":{}}"#)
        .query_async(&mut con)
        .await
        .unwrap();
    let out = tokio::time::timeout(WAIT, child.wait_with_output())
        .await
        .expect("cache-sync finished within the bound")
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let status: Vec<String> = db.sql("select status from cache_sync_run").scalars().await;
    assert_eq!(status, vec!["completed".to_owned()]);
    assert!(db.count("cache_entries").await > 0);
}

on_both_stores!(
    run_wait_for_import_times_out_with_code_6_or_proceeds_when_phase_2_announces_itself
);

async fn sync_complete_reports_the_mode_the_run_was_triggered_with(backend: Backend) {
    let url = redis_url();
    let mut cleanup = StreamCleanup::new(&url);
    let prefix = cleanup.prefix();
    let ch = channels(&prefix);
    let db = TestDb::on(backend).await;
    db.load(&small_market(71, 1), 1).await;
    let mut subscriber = Subscriber::new(&url, &prefix).await;
    let out = cli(&db, &["run"], &url, &prefix).await;
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let received = subscriber.drain().await;
    let on = |channel: String| {
        received
            .iter()
            .find(|r| r.channel == channel)
            .unwrap_or_else(|| panic!("a message on {channel}"))
            .payload()
            .clone()
    };
    let triggered = on(ch.sync_triggered());
    let complete = on(ch.sync_complete());
    assert_eq!(complete["job_id"], triggered["job_id"]);
    assert_eq!(
        complete["mode"], triggered["mode"],
        "one job, one mode: triggered {triggered}, complete {complete}"
    );
}

on_both_stores!(sync_complete_reports_the_mode_the_run_was_triggered_with);
