//! The drop-in Python listener for TickStockAppV2 (`clients/python/cache_sync_listener.py`):
//! its unit tests, and the listener itself against real runs — a private, persistent
//! `redis-server` on a free loopback port, `cache-sync serve` for the values, PostgreSQL for the
//! table. It receives a day-2 run's events, survives a Redis restart between two runs without
//! missing or double-applying a change, and its dict ends equal to the table.
//!
//! Needs `python3` with redis-py (`.ci/run` installs both). Without them the tests say so and
//! pass locally; under CI (`CI` set) they fail instead.

use crate::events::PrivateRedis;
use crate::helpers::{run_request, small_market, TestDb, WAIT};
use crate::http::{free_port, serve_command, ServeProcess, KEY};
use crate::pubsub::{connection, unique_prefix};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Instant;
use tickstock_cache_sync::domain::events::Channels;
use tickstock_cache_sync::job::{self, JobConfig};
use tickstock_cache_sync::publish::Publisher;

fn clients_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("clients/python")
}

/// Whether `python3` with redis-py is here; under CI their absence is a failure.
fn python_ready() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import redis"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must have python3 and redis-py (.ci/run installs them)"
        );
        eprintln!(
            "SKIPPED: the Python listener tests need python3 with redis-py \
             (pip install redis); .ci/run installs them"
        );
    }
    ok
}

#[test]
fn the_python_listeners_unit_tests_pass() {
    if !python_ready() {
        return;
    }
    let out = Command::new("python3")
        .args(["-m", "unittest", "-v", "test_cache_sync_listener"])
        .current_dir(clients_dir())
        .output()
        .expect("run python3");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "python unit tests failed:\n{stderr}");
    assert!(
        !stderr.contains("skipped"),
        "no Python test may be skipped here (redis-server is installed):\n{stderr}"
    );
}

/// The listener process, writing its dict and counters to `dump`.
struct Listener {
    child: Child,
    dump: PathBuf,
    log: PathBuf,
}

impl Listener {
    fn start(redis_url: &str, prefix: &str, api: &str) -> Self {
        let base = std::env::temp_dir().join(format!("listener-{prefix}"));
        let dump = base.with_extension("json");
        let log = base.with_extension("log");
        let child = Command::new("python3")
            .arg(clients_dir().join("cache_sync_listener.py"))
            .args([
                "--redis-url",
                redis_url,
                "--prefix",
                prefix,
                "--api-url",
                api,
            ])
            .args(["--from-seq", "0", "--dump"])
            .arg(&dump)
            .env("CACHE_SYNC_API_KEY", KEY)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("a log file"))
            .spawn()
            .expect("start the Python listener");
        Self { child, dump, log }
    }

    fn state(&self) -> Option<Value> {
        let text = std::fs::read_to_string(&self.dump).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// Waits (bounded by `WAIT`) until the listener has applied `seq` and `extra` holds.
    async fn wait_for(&mut self, seq: i64, extra: impl Fn(&Value) -> bool) -> Value {
        let started = Instant::now();
        loop {
            if let Some(state) = self.state() {
                if state["last_seq"].as_i64() >= Some(seq) && extra(&state) {
                    return state;
                }
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("the listener exited ({status}):\n{}", self.log_text());
            }
            assert!(
                started.elapsed() < WAIT,
                "the listener did not reach seq {seq}: {:?}\n{}",
                self.state()
                    .map(|s| (s["last_seq"].clone(), s["resyncs"].clone())),
                self.log_text()
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.dump);
        let _ = std::fs::remove_file(&self.log);
    }
}

/// `cache_entries.type` → the `CacheControl.cache` section holding it
/// (TickStockAppV2 `cache_control.py`, `CacheControl.load_settings_from_db`).
const SECTIONS: [(&str, &str); 5] = [
    ("stock_universe", "stock_universes"),
    ("etf_universe", "etf_universes"),
    ("stock_etf_combo", "stock_etf_combos"),
    ("themes", "themes"),
    ("stock_stats", "stock_stats"),
];

/// The table as `CacheControl.load_settings_from_db` nests it, and the dropdown keys with their
/// tickers that `CacheControl._build_universe_selections` builds from it.
async fn table_as_cache_control(db: &TestDb) -> (Value, BTreeMap<String, Value>) {
    let rows: Vec<(String, String, String, Value)> = db
        .sql(
            "select type, name, key, value from cache_entries
             where environment = 'DEFAULT' order by id",
        )
        .fetch_all()
        .await;
    let mut cache = Map::new();
    for (_, section) in SECTIONS {
        cache.insert(section.to_owned(), json!({}));
    }
    let mut dropdowns = BTreeMap::new();
    for (entry_type, name, key, value) in rows {
        let Some((_, section)) = SECTIONS.iter().find(|(t, _)| *t == entry_type) else {
            continue;
        };
        let tickers = |list: &Value| -> Vec<Value> {
            list.as_array()
                .into_iter()
                .flatten()
                .filter_map(|r| r.get("ticker").cloned())
                .collect()
        };
        match entry_type.as_str() {
            "themes" => {
                if key == "list" {
                    cache[*section][&name] = value.clone();
                    if value.as_array().is_some_and(|a| !a.is_empty()) {
                        dropdowns.insert(format!("theme_{name}"), value.clone());
                    }
                }
                continue;
            }
            "etf_universe" if value.is_array() => {
                dropdowns.insert(format!("etf_{key}"), value.clone());
            }
            "stock_universe" | "stock_etf_combo" if value.get("stocks").is_some() => {
                let t = tickers(&value["stocks"]);
                if !t.is_empty() {
                    dropdowns.insert(format!("{name}:{key}"), Value::Array(t));
                }
            }
            "stock_etf_combo" if value.as_array().is_some_and(|a| !a.is_empty()) => {
                dropdowns.insert(format!("{name}:{key}"), value.clone());
            }
            _ => {}
        }
        let names = cache[*section].as_object_mut().unwrap();
        names
            .entry(name)
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .unwrap()
            .insert(key, value);
    }
    (Value::Object(cache), dropdowns)
}

/// The listener's dict equals the table: every section, and every dropdown's tickers.
async fn assert_dict_is_the_table(db: &TestDb, state: &Value) {
    let (expected, dropdowns) = table_as_cache_control(db).await;
    let cache = &state["cache"];
    for (_, section) in SECTIONS {
        assert_eq!(cache[section], expected[section], "section {section}");
    }
    let got: BTreeMap<String, Value> = cache["universes"]
        .as_object()
        .expect("universes")
        .iter()
        .map(|(k, v)| (k.clone(), v["tickers"].clone()))
        .collect();
    assert_eq!(got, dropdowns, "the dropdowns");
    assert_eq!(
        cache["universe_metadata"]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        got.keys().collect::<Vec<_>>()
    );
}

/// The seqs of the universe events of the runs so far (what the listener must apply, once each).
async fn universe_seqs(db: &TestDb) -> Vec<i64> {
    db.sql("select seq from cache_sync_outbox where seq is not null order by seq")
        .scalars()
        .await
}

fn applied(state: &Value) -> Vec<i64> {
    state["applied"]
        .as_array()
        .expect("applied")
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect()
}

#[tokio::test]
async fn the_python_listener_follows_a_day_2_run_and_a_redis_restart_and_ends_equal_to_the_table() {
    if !python_ready() {
        return;
    }
    let mut redis = PrivateRedis::start_persistent(PrivateRedis::free_port());
    let url = redis.url();
    let prefix = unique_prefix();
    let channels = Channels {
        prefix: prefix.clone(),
    };
    let config = JobConfig {
        channels: channels.clone(),
        ..JobConfig::default()
    };
    let publisher = Publisher::new(&url, channels.clone(), 100_000).unwrap();
    let db = TestDb::new().await;
    let market = small_market(41, 3);
    let run = |force: bool| {
        let (db, config) = (&db, &config);
        async move {
            job::run(db.store.as_ref(), config, &run_request(force))
                .await
                .expect("the run applies")
        }
    };

    // Day 1 is built before the listener starts: it catches up from the stream.
    db.load(&market, 1).await;
    run(false).await;
    publisher
        .relay(db.store.as_ref())
        .await
        .expect("Redis is up");
    let port = free_port();
    let mut serve = serve_command(&db, &["--bind", &format!("127.0.0.1:{port}")]);
    serve.env("CACHE_SYNC_API_KEY", KEY);
    let _serve = ServeProcess::start(serve);
    let mut listener = Listener::start(&url, &prefix, &format!("http://127.0.0.1:{port}"));
    let day1 = universe_seqs(&db).await;
    let state = listener.wait_for(*day1.last().unwrap(), |_| true).await;
    assert_eq!(applied(&state), day1, "day 1, from the stream, once each");
    assert_dict_is_the_table(&db, &state).await;

    // Day 2, live.
    db.load_next(&market, 2).await;
    let report = run(false).await;
    assert!(report.deltas.len() > 1, "day 2 changes entries");
    publisher
        .relay(db.store.as_ref())
        .await
        .expect("Redis is up");
    let day2 = universe_seqs(&db).await;
    let state = listener.wait_for(*day2.last().unwrap(), |_| true).await;
    assert_eq!(applied(&state), day2, "day 2 follows day 1, once each");
    assert_dict_is_the_table(&db, &state).await;

    // Redis restarts between two runs; day 3 commits while it is down and is relayed after.
    redis.stop();
    db.load_next(&market, 3).await;
    run(true).await;
    assert!(publisher.relay(db.store.as_ref()).await.is_err());
    redis.restart();
    publisher
        .relay(db.store.as_ref())
        .await
        .expect("Redis is back");
    let day3 = universe_seqs(&db).await;
    assert!(day3.len() > day2.len(), "day 3 changes entries");
    let state = listener.wait_for(*day3.last().unwrap(), |_| true).await;
    let duplicates = state["duplicates"].as_i64().unwrap();

    // Back and subscribed, it gets one day-2 event again, as from a relay that died before
    // marking it: dropped by its seq.
    let mut con = connection(&url).await;
    let entries: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
        .arg(channels.stream())
        .arg(format!("{}-1", day2.last().unwrap()))
        .arg("+")
        .arg("COUNT")
        .arg(1)
        .query_async(&mut con)
        .await
        .unwrap();
    let text = &entries[0].1.iter().find(|(k, _)| k == "event").unwrap().1;
    let again: Value = serde_json::from_str(text).unwrap();
    assert_eq!(again["payload"]["seq"], json!(day2.last().unwrap()));
    let receivers: i64 = redis::cmd("PUBLISH")
        .arg(channels.universe_updated())
        .arg(text)
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(receivers, 1, "the listener is subscribed");
    let state = listener
        .wait_for(*day3.last().unwrap(), |s| {
            s["duplicates"].as_i64() > Some(duplicates)
        })
        .await;
    let seqs = applied(&state);
    assert_eq!(
        seqs, day3,
        "every change of the three runs, once each, in order"
    );
    assert_eq!(
        seqs.iter().collect::<BTreeSet<_>>().len(),
        seqs.len(),
        "nothing applied twice"
    );
    assert_eq!(
        state["resyncs"],
        json!(0),
        "the stream proved nothing was lost"
    );
    assert_dict_is_the_table(&db, &state).await;
}
