//! Keeps `docs/TickStockAppV2_integration_callback.md` true (SPEC §11): the endpoints it lists
//! are exactly the route table and answer with the documented status and response fields; the
//! channels it lists are exactly the ones the code names; every payload field it lists is in the
//! events the code produces (a nightly run's outbox, an API job and a command-line run seen by a
//! Redis subscriber) and vice versa; the trigger modes run the families it says; its environment
//! variables are the ones the command line accepts; its exit codes and performance figures match
//! the code and the README.
//!
//! The document's parseable conventions (each checked here, so a format drift fails loudly):
//! - `## 4. Endpoints`: a table `| `METHOD` | `/path` | yes/no (key) | `status` | … |`, then one
//!   `### `METHOD /path`` section per endpoint with an optional "Request body:" ```json block and
//!   a "Response `status`:" ```json (or ```text) block.
//! - `## 6. Trigger modes`: `| `mode` | `family`, `family`, … |`.
//! - `## 7. Redis events`: `### Envelope` and `### Channels` tables (first cell a backticked
//!   name), and one `#### `event`` section per event with a table of `| `field` | … |`.
//! - `## 8. Configuration`: `| `VARIABLE` | … |`.
//! - `## 10. Performance`, `## 11. Exit codes`: tables.

use crate::helpers::{
    cache_sync_command, market_with_a_listing_on_day_2, small_market, TestDb, WAIT,
};
use crate::http::{
    app_state, concrete, finish_job, get, request_on, seeded, send, status_uri, Answer, KEY,
    TOP_10, TRIGGER,
};
use crate::pubsub::{connection, redis_url, Received, StreamCleanup, Subscriber};
use axum::http::StatusCode;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use tickstock_cache_sync::cli::Exit;
use tickstock_cache_sync::domain::events::Channels;
use tickstock_cache_sync::domain::types::Family;
use tickstock_cache_sync::http::{self as api, openapi::ROUTES};
use tickstock_cache_sync::job::{self, JobConfig};
use tickstock_cache_sync::publish::Publisher;

const DOC_PATH: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/docs/TickStockAppV2_integration_callback.md"
);

// ---------------------------------------------------------------------------------------------
// Reading the document
// ---------------------------------------------------------------------------------------------

struct Doc {
    text: String,
}

impl Doc {
    fn load() -> Self {
        Self {
            text: std::fs::read_to_string(DOC_PATH)
                .unwrap_or_else(|e| panic!("{DOC_PATH} is readable: {e}")),
        }
    }

    /// The lines under the heading of `level` (`##`, `###`, …) whose text contains `title`, up
    /// to the next heading of the same or a higher level.
    fn section(&self, level: &str, title: &str) -> Vec<&str> {
        let lines: Vec<&str> = self.text.lines().collect();
        let levels = heading_levels(&lines);
        let start = (0..lines.len())
            .find(|&i| levels[i] == Some(level.len()) && lines[i].contains(title))
            .unwrap_or_else(|| panic!("the document has a `{level} …{title}…` heading"));
        let end = (start + 1..lines.len())
            .find(|&i| levels[i].is_some_and(|n| n <= level.len()))
            .unwrap_or(lines.len());
        lines[start + 1..end].to_vec()
    }

    /// Every `###`-level subsection inside a section: (heading text, lines).
    /// Each heading of exactly `level` inside `lines`, with the lines up to the next heading of
    /// that level or a higher one.
    fn subsections<'a>(lines: &[&'a str], level: &str) -> Vec<(String, Vec<&'a str>)> {
        let mut out: Vec<(String, Vec<&'a str>)> = Vec::new();
        let mut open = false;
        for (line, level_of_line) in lines.iter().zip(heading_levels(lines)) {
            match level_of_line {
                Some(n) if n == level.len() => {
                    out.push((line[n..].trim().to_owned(), Vec::new()));
                    open = true;
                }
                Some(n) if n < level.len() => open = false,
                _ => {
                    if open {
                        if let Some((_, body)) = out.last_mut() {
                            body.push(line);
                        }
                    }
                }
            }
        }
        out
    }
}

fn heading_level(line: &str) -> Option<usize> {
    let hashes = line.chars().take_while(|&c| c == '#').count();
    (hashes > 0 && line[hashes..].starts_with(' ')).then_some(hashes)
}

/// The heading level of each line, ignoring `#` lines inside fenced code blocks.
fn heading_levels(lines: &[&str]) -> Vec<Option<usize>> {
    let mut fenced = false;
    lines
        .iter()
        .map(|line| {
            if line.starts_with("```") {
                fenced = !fenced;
                return None;
            }
            if fenced {
                None
            } else {
                heading_level(line)
            }
        })
        .collect()
}

/// The data rows of the tables in `lines` (header and separator rows dropped), cells trimmed.
fn table_rows(lines: &[&str]) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let mut in_table = false;
    for line in lines {
        let line = line.trim();
        if !line.starts_with('|') {
            in_table = false;
            continue;
        }
        let cells: Vec<String> = line
            .trim_matches('|')
            .split('|')
            .map(|c| c.trim().to_owned())
            .collect();
        if !in_table {
            // The header row.
            in_table = true;
            continue;
        }
        if cells
            .iter()
            .all(|c| c.chars().all(|ch| matches!(ch, '-' | ':' | ' ')))
        {
            continue;
        }
        rows.push(cells);
    }
    rows
}

/// The text of a cell that is one backticked code span.
fn code(cell: &str) -> Option<&str> {
    let inner = cell.strip_prefix('`')?.strip_suffix('`')?;
    (!inner.contains('`')).then_some(inner)
}

/// Every backticked code span in a cell.
fn codes(cell: &str) -> Vec<&str> {
    cell.split('`').skip(1).step_by(2).collect()
}

/// Fenced code blocks after a line matching `label`: (info string, content).
fn block_after(lines: &[&str], label: &str) -> Option<(String, String)> {
    let at = lines
        .iter()
        .position(|l| l.trim_start().starts_with(label))?;
    let open = at + 1 + lines[at + 1..].iter().position(|l| l.starts_with("```"))?;
    let info = lines[open].trim_start_matches('`').trim().to_owned();
    let close = open
        + 1
        + lines[open + 1..]
            .iter()
            .position(|l| l.starts_with("```"))?;
    Some((info, lines[open + 1..close].join("\n")))
}

/// One documented endpoint.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct DocRoute {
    method: String,
    path: String,
    authenticated: bool,
    success: u16,
}

fn documented_routes(doc: &Doc) -> Vec<DocRoute> {
    let section = doc.section("##", "Endpoints");
    // Only the summary table (before the first endpoint subsection).
    let levels = heading_levels(&section);
    let summary: Vec<&str> = section
        .iter()
        .zip(&levels)
        .take_while(|(_, level)| level.is_none())
        .map(|(l, _)| *l)
        .collect();
    table_rows(&summary)
        .into_iter()
        .map(|cells| {
            assert!(cells.len() >= 4, "endpoint row: {cells:?}");
            DocRoute {
                method: code(&cells[0])
                    .unwrap_or_else(|| panic!("a backticked method: {cells:?}"))
                    .to_owned(),
                path: code(&cells[1])
                    .unwrap_or_else(|| panic!("a backticked path: {cells:?}"))
                    .to_owned(),
                authenticated: match cells[2].as_str() {
                    "yes" => true,
                    "no" => false,
                    other => panic!("key column is yes or no, not {other:?}"),
                },
                success: code(&cells[3])
                    .and_then(|s| s.parse().ok())
                    .unwrap_or_else(|| panic!("a backticked status: {cells:?}")),
            }
        })
        .collect()
}

/// One endpoint's subsection: request body and documented response.
#[derive(Debug)]
struct Example {
    request: Option<Value>,
    status: u16,
    response: ResponseExample,
}

#[derive(Debug)]
enum ResponseExample {
    Json(Value),
    Text(String),
}

fn endpoint_examples(doc: &Doc) -> BTreeMap<(String, String), Example> {
    let section = doc.section("##", "Endpoints");
    let mut out = BTreeMap::new();
    for (heading, lines) in Doc::subsections(&section, "###") {
        let title = code(&heading)
            .unwrap_or_else(|| panic!("endpoint headings are `METHOD /path`: {heading}"));
        let (method, path) = title
            .split_once(' ')
            .unwrap_or_else(|| panic!("`METHOD /path`: {title}"));
        let request = block_after(&lines, "Request body:").map(|(info, text)| {
            assert_eq!(info, "json", "{title}: request bodies are JSON");
            serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{title}: the request example is JSON ({e})"))
        });
        let label = lines
            .iter()
            .find(|l| l.trim_start().starts_with("Response `"))
            .unwrap_or_else(|| panic!("{title}: a \"Response `status`:\" line"));
        let status: u16 = codes(label)
            .first()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("{title}: a status in {label}"));
        let (info, text) = block_after(&lines, label.trim_start())
            .unwrap_or_else(|| panic!("{title}: a response block"));
        let response = match info.as_str() {
            "json" => ResponseExample::Json(
                serde_json::from_str(&text)
                    .unwrap_or_else(|e| panic!("{title}: the response example is JSON ({e})")),
            ),
            "text" => ResponseExample::Text(text),
            other => panic!("{title}: response blocks are json or text, not {other}"),
        };
        let previous = out.insert(
            (method.to_owned(), path.to_owned()),
            Example {
                request,
                status,
                response,
            },
        );
        assert!(previous.is_none(), "{title} is documented once");
    }
    out
}

fn object_keys(v: &Value) -> BTreeSet<String> {
    v.as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// (a) Endpoints
// ---------------------------------------------------------------------------------------------

#[test]
fn the_endpoint_table_is_exactly_the_route_table() {
    let doc = Doc::load();
    let documented: BTreeSet<DocRoute> = documented_routes(&doc).into_iter().collect();
    let code: BTreeSet<DocRoute> = ROUTES
        .iter()
        .map(|r| DocRoute {
            method: r.method.to_ascii_uppercase(),
            path: r.path.to_owned(),
            authenticated: r.authenticated,
            success: r.success,
        })
        .collect();
    let missing: Vec<_> = code.difference(&documented).collect();
    let extra: Vec<_> = documented.difference(&code).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "routes not documented (or documented differently): {missing:#?}\ndocumented but not served: {extra:#?}"
    );
    let examples = endpoint_examples(&doc);
    for route in &code {
        let example = examples
            .get(&(route.method.clone(), route.path.clone()))
            .unwrap_or_else(|| panic!("a `### `{} {}`` section", route.method, route.path));
        assert_eq!(
            example.status, route.success,
            "{} {}: the example shows the success status",
            route.method, route.path
        );
    }
    assert_eq!(
        examples.len(),
        code.len(),
        "no section for a route that does not exist"
    );
}

#[tokio::test]
async fn every_documented_endpoint_answers_through_the_router_with_the_documented_status_and_fields(
) {
    let doc = Doc::load();
    let routes = documented_routes(&doc);
    let examples = endpoint_examples(&doc);
    let s = seeded(&JobConfig::default()).await;
    assert_eq!(s.run1, 1, "the document's examples name run 1");
    let db = &s.db;
    let state = app_state(db, JobConfig::default(), None);
    let app = api::router(state.clone());
    let ticker = db
        .value("stock_universe", "market_leaders", "top_10_stocks")
        .await
        .unwrap()["stocks"][0]["ticker"]
        .as_str()
        .unwrap()
        .to_owned();
    let (entry_type, rest) = TOP_10.split_once('/').unwrap();
    let (name, key) = rest.split_once('/').unwrap();
    let mut values = vec![
        ("type", entry_type.to_owned()),
        ("name", name.to_owned()),
        ("key", key.to_owned()),
        ("symbol", ticker),
        ("run_id", s.run1.to_string()),
    ];

    // Reads first, then the writes, then the job's status (it needs the trigger's job id).
    let rank = |r: &DocRoute| match (r.method.as_str(), r.path.as_str()) {
        (_, p) if p.contains("{job_id}") => 3,
        ("POST", p) if p.ends_with("/trigger") => 2,
        ("POST", _) => 1,
        _ => 0,
    };
    let mut ordered = routes.clone();
    ordered.sort_by_key(rank);
    let mut checked = Vec::new();
    for route in &ordered {
        let example = examples
            .get(&(route.method.clone(), route.path.clone()))
            .unwrap_or_else(|| panic!("a `### `{} {}`` section", route.method, route.path));
        let pairs: Vec<(&str, &str)> = values.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let uri = concrete(&route.path, &pairs);
        let body = example.request.as_ref().map(Value::to_string);
        let key = route.authenticated.then_some(KEY);
        let answer: Answer = send(
            &app,
            &route.method,
            &uri,
            key,
            body.as_deref().map(str::as_bytes),
        )
        .await;
        assert_eq!(
            answer.status.as_u16(),
            route.success,
            "{} {uri}: {}",
            route.method,
            answer.text()
        );
        match &example.response {
            ResponseExample::Json(documented) => {
                let actual = answer.json();
                assert_eq!(
                    object_keys(documented),
                    object_keys(&actual),
                    "{} {}: the documented response has the real top-level fields",
                    route.method,
                    route.path
                );
                // One level down where the UI reads fields: nested objects and list items.
                for field in ["job_statistics", "stats"] {
                    if let (Some(d), Some(a)) = (documented.get(field), actual.get(field)) {
                        assert_eq!(
                            object_keys(d),
                            object_keys(a),
                            "{} {}: fields of `{field}`",
                            route.method,
                            route.path
                        );
                    }
                }
                for field in ["universes", "jobs", "changes", "deltas"] {
                    let first = |v: &Value| v.get(field).and_then(|l| l.get(0)).cloned();
                    if let (Some(d), Some(a)) = (first(documented), first(&actual)) {
                        assert_eq!(
                            object_keys(&d),
                            object_keys(&a),
                            "{} {}: fields of `{field}[]`",
                            route.method,
                            route.path
                        );
                    }
                }
            }
            ResponseExample::Text(text) => {
                let first = text.lines().next().unwrap_or_default();
                assert!(
                    answer.text().contains(first),
                    "{} {}: the text example's first line `{first}` is real",
                    route.method,
                    route.path
                );
            }
        }
        if rank(route) == 2 {
            let job_id = answer.json()["job_id"].as_str().unwrap().to_owned();
            assert_eq!(finish_job(&state).await, job_id);
            values.push(("job_id", job_id));
        }
        checked.push(format!("{} {}", route.method, route.path));
    }
    assert_eq!(checked.len(), ROUTES.len());
}

#[tokio::test]
async fn the_documented_error_examples_have_the_error_shape_and_real_codes() {
    let doc = Doc::load();
    let section = doc.section("##", "Errors");
    let rows = table_rows(&section);
    let mut documented = BTreeMap::new();
    for cells in &rows {
        let code_name = code(&cells[0]).unwrap_or_else(|| panic!("a backticked code: {cells:?}"));
        let status: u16 = code(&cells[1])
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("a backticked status: {cells:?}"));
        documented.insert(code_name.to_owned(), status);
    }
    // What the service answers for each documented code.
    let db = TestDb::new().await;
    let state = app_state(&db, JobConfig::default(), None);
    let app = api::router(state.clone());
    let mut seen = BTreeMap::new();
    let mut note = |a: &Answer| {
        let body = a.json();
        seen.insert(
            body["error"]["code"].as_str().unwrap().to_owned(),
            a.status.as_u16(),
        );
    };
    note(&send(&app, "GET", "/api/universes", None, None).await);
    note(&get(&app, "/api/processing/cache-sync/history?limit=0").await);
    note(&get(&app, "/api/universes/stock_universe/market_cap/giga_cap").await);
    note(&crate::http::post(&app, TRIGGER, &serde_json::json!({"plan_id": "plan-0"})).await);
    // A job another live instance runs.
    let other = db.store.claim_owner().await.unwrap();
    sqlx::query(
        "insert into cache_sync_job (job_id, mode, force, triggered_by, status, owner)
         values ('cs-x', 'full', false, 'api', 'running', $1)",
    )
    .bind(other.id())
    .execute(db.pool())
    .await
    .unwrap();
    note(&crate::http::post(&app, TRIGGER, &serde_json::json!({})).await);
    for (code_name, status) in &seen {
        assert_eq!(
            documented.get(code_name),
            Some(status),
            "error code {code_name} ({status}) is documented with its status"
        );
    }
    // Statuses the document claims for codes not produced above follow the error type.
    for (code_name, status) in &documented {
        let expected = match code_name.as_str() {
            "unauthorized" => 401,
            "bad_request" => 400,
            "not_found" => 404,
            "already_running" | "conflict" => 409,
            "refused" => 422,
            "internal" => 500,
            other => panic!("the document names an error code the service has not: {other}"),
        };
        assert_eq!(*status, expected, "{code_name}");
    }
    assert_eq!(documented.len(), 7, "every error code is documented");
    // Every JSON example in the section has the shape.
    let mut examples = 0;
    let mut lines = section.iter();
    while let Some(line) = lines.next() {
        if line.starts_with("```json") {
            let text: Vec<&str> = lines
                .by_ref()
                .take_while(|l| !l.starts_with("```"))
                .copied()
                .collect();
            let v: Value = serde_json::from_str(&text.join("\n")).expect("JSON example");
            assert_eq!(v["success"], false, "{v}");
            assert_eq!(v["message"], v["error"]["message"], "{v}");
            assert!(
                seen.contains_key(v["error"]["code"].as_str().unwrap()),
                "{v}"
            );
            examples += 1;
        }
    }
    assert!(examples > 0);
}

// ---------------------------------------------------------------------------------------------
// Trigger modes
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn each_trigger_mode_runs_the_families_the_document_lists() {
    let doc = Doc::load();
    let rows = table_rows(&doc.section("##", "Trigger modes"));
    let mut documented: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for cells in rows {
        let mode = code(&cells[0]).unwrap_or_else(|| panic!("a backticked mode: {cells:?}"));
        let families: BTreeSet<String> = codes(&cells[1]).into_iter().map(str::to_owned).collect();
        for f in &families {
            Family::parse(f).unwrap_or_else(|e| panic!("mode {mode}: {e}"));
        }
        documented.insert(mode.to_owned(), families);
    }
    assert_eq!(
        documented.keys().map(String::as_str).collect::<Vec<_>>(),
        ["full", "ipos", "market_cap", "themes"],
        "the four modes of SPEC §9"
    );
    let db = TestDb::new().await;
    db.load(&small_market(21, 1), 1).await;
    let state = app_state(&db, JobConfig::default(), None);
    let app = api::router(state.clone());
    for (mode, families) in &documented {
        let answer = crate::http::post(
            &app,
            TRIGGER,
            &serde_json::json!({"mode": mode, "force": true}),
        )
        .await;
        assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.text());
        let job_id = finish_job(&state).await;
        let status = get(&app, &status_uri(&job_id)).await.json();
        assert_eq!(status["status"], "completed", "{mode}: {status}");
        let label: String =
            sqlx::query_scalar("select families from cache_sync_run where run_id = $1")
                .bind(status["run_id"].as_i64().unwrap())
                .fetch_one(db.pool())
                .await
                .unwrap();
        let ran: BTreeSet<String> = if label == "all" {
            Family::ALL.iter().map(|f| f.as_str().to_owned()).collect()
        } else {
            label.split(',').map(str::to_owned).collect()
        };
        assert_eq!(&ran, families, "mode {mode}");
    }
}

// ---------------------------------------------------------------------------------------------
// (b) Channels
// ---------------------------------------------------------------------------------------------

/// Every channel name the code uses, with the default prefix.
fn code_channels() -> BTreeSet<String> {
    let c = Channels::default();
    [
        c.sync_triggered(),
        c.sync_complete(),
        c.universe_updated(),
        c.universe("{type}", "{name}", "{key}"),
        c.ipo_assignment(),
        c.delisting_cleanup(),
        c.started(),
        c.progress(),
        c.completed(),
        c.monitoring(),
        c.errors(),
        c.import_completed(),
        c.stream(),
    ]
    .into_iter()
    .collect()
}

/// `channel -> events` as the channel table documents it, one row per channel and event (the
/// stream, Phase 2's channel and the errors channel, whose messages have no envelope, have no
/// event name).
fn documented_channels(doc: &Doc) -> BTreeMap<String, BTreeSet<String>> {
    let lines = doc.section("###", "Channels");
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for cells in table_rows(&lines) {
        let channel = code(&cells[0])
            .unwrap_or_else(|| panic!("a backticked channel: {cells:?}"))
            .to_owned();
        let events = out.entry(channel).or_default();
        if let Some(event) = code(&cells[1]) {
            events.insert(event.to_owned());
        }
    }
    out
}

#[test]
fn the_channel_table_is_exactly_the_channels_the_code_names() {
    let doc = Doc::load();
    let documented: BTreeSet<String> = documented_channels(&doc).into_keys().collect();
    let code = code_channels();
    assert_eq!(
        documented,
        code,
        "documented but unknown: {:?}; named by the code but undocumented: {:?}",
        documented.difference(&code).collect::<Vec<_>>(),
        code.difference(&documented).collect::<Vec<_>>()
    );
    // The per-universe pattern and the stream id convention are spelled out.
    assert!(doc.text.contains("{seq}-1"), "stream ids `{{seq}}-1`");
    for word in ["XGROUP CREATE", "XREADGROUP", "XACK"] {
        assert!(
            doc.text.contains(word),
            "the consumer-group recipe uses {word}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// (c) Payloads
// ---------------------------------------------------------------------------------------------

/// `event -> documented payload fields` from the `#### `event`` sections.
fn documented_payloads(doc: &Doc) -> BTreeMap<String, BTreeSet<String>> {
    let section = doc.section("##", "Redis events");
    let mut out = BTreeMap::new();
    for (heading, lines) in Doc::subsections(&section, "####") {
        let Some(event) = code(&heading) else {
            continue;
        };
        let fields: BTreeSet<String> = table_rows(&lines)
            .into_iter()
            .map(|cells| {
                code(&cells[0])
                    .unwrap_or_else(|| panic!("{event}: a backticked field: {cells:?}"))
                    .to_owned()
            })
            .collect();
        assert!(!fields.is_empty(), "{event} lists its fields");
        out.insert(event.to_owned(), fields);
    }
    out
}

/// The fields of the flat `ErrorMessage` the errors channel carries, as its table lists them.
fn documented_error_message(doc: &Doc) -> BTreeSet<String> {
    table_rows(&doc.section("###", "ErrorMessage"))
        .into_iter()
        .map(|cells| code(&cells[0]).expect("a backticked field").to_owned())
        .collect()
}

fn documented_envelope(doc: &Doc) -> BTreeSet<String> {
    table_rows(&doc.section("###", "Envelope"))
        .into_iter()
        .map(|cells| code(&cells[0]).expect("a backticked field").to_owned())
        .collect()
}

/// The default-prefix name of a channel under a test prefix (per-universe channels as their
/// pattern).
fn as_documented(channel: &str, prefix: &str) -> String {
    let rest = channel
        .strip_prefix(prefix)
        .unwrap_or_else(|| panic!("{channel} is under {prefix}"));
    let named = format!("tickstock{rest}");
    let universe = Channels::default().universe_updated();
    if named.starts_with("tickstock:universe:") && named != universe {
        return Channels::default().universe("{type}", "{name}", "{key}");
    }
    named
}

/// Fields present only with turnover banding on (tests/api/banding.rs checks them) or on a
/// rename (tests/api/renames.rs checks them).
const BANDING_ONLY: &[(&str, &str)] = &[
    ("universe_updated", "held"),
    ("universe_updated", "renamed_from"),
];

/// Checks every `(channel, event, payload)` seen against the document: the channel carries that
/// event, and the payload has exactly the documented fields (`optional` fields may be absent).
fn check_against_doc(
    doc: &Doc,
    seen: &[(String, String, Value)],
    prefix: &str,
    optional: &[(&str, &str)],
) -> BTreeSet<String> {
    let channels = documented_channels(doc);
    let payloads = documented_payloads(doc);
    let mut events = BTreeSet::new();
    for (channel, event, payload) in seen {
        let name = as_documented(channel, prefix);
        let documented_events = channels
            .get(&name)
            .unwrap_or_else(|| panic!("{name} is documented"));
        assert!(
            documented_events.contains(event),
            "{name} is documented to carry {event}, not only {documented_events:?}"
        );
        let fields = payloads
            .get(event)
            .unwrap_or_else(|| panic!("the payload of {event} is documented"));
        let actual = object_keys(payload);
        let missing_ok: BTreeSet<String> = optional
            .iter()
            .filter(|(e, _)| e == event)
            .map(|(_, f)| (*f).to_owned())
            .collect();
        let undocumented: Vec<_> = actual.difference(fields).collect();
        let absent: Vec<_> = fields
            .difference(&actual)
            .filter(|f| !missing_ok.contains(*f))
            .collect();
        assert!(
            undocumented.is_empty() && absent.is_empty(),
            "{event} on {name}: fields not documented {undocumented:?}, documented but absent {absent:?}: {payload}"
        );
        events.insert(event.clone());
    }
    events
}

#[tokio::test]
async fn every_documented_payload_field_is_in_the_events_of_a_nightly_run_and_no_other() {
    let doc = Doc::load();
    let prefix = "tnightly";
    let job = JobConfig {
        channels: Channels {
            prefix: prefix.to_owned(),
        },
        ..JobConfig::default()
    };
    let db = TestDb::new().await;
    let market = market_with_a_listing_on_day_2();
    db.load(&market, 1).await;
    job::run(
        db.store.as_ref(),
        &job,
        &request_on(market.date_of_day(1), false),
    )
    .await
    .expect("run 1");
    db.load_next(&market, 2).await;
    // A member delisted overnight: the smallest member of the largest market-cap band.
    let delisted = crate::helpers::delist_smallest_member_of_largest_band(&db).await;
    job::run(
        db.store.as_ref(),
        &job,
        &request_on(market.date_of_day(2), true),
    )
    .await
    .expect("run 2");

    let rows: Vec<(String, Option<String>, String, Value)> = sqlx::query_as(
        "select channel, also_channel, event, payload from cache_sync_outbox order by outbox_id",
    )
    .fetch_all(db.pool())
    .await
    .unwrap();
    let mut seen = Vec::new();
    // For the document: the nightly run's payloads (a universe event that moved few members).
    let mut examples: BTreeMap<String, Value> = BTreeMap::new();
    let moved = |p: &Value| {
        let n = |f: &str| p[f].as_array().map_or(0, Vec::len);
        (n("added") + n("removed"), n("added").min(n("removed")) == 0)
    };
    for (channel, also, event, payload) in &rows {
        seen.push((channel.clone(), event.clone(), payload.clone()));
        if let Some(also) = also {
            seen.push((also.clone(), event.clone(), payload.clone()));
        }
        if payload["run_id"] == 2 {
            let better = examples.get(event).is_none_or(|old| {
                event != "universe_updated"
                    || (moved(payload).0 > 0 && (moved(old).0 == 0 || moved(payload) < moved(old)))
            });
            if better {
                examples.insert(event.clone(), payload.clone());
            }
        }
    }
    let events = check_against_doc(&doc, &seen, prefix, BANDING_ONLY);
    for event in [
        "universe_updated",
        "cache_sync_completed",
        "ipo_assignment",
        "delisting_cleanup",
    ] {
        assert!(events.contains(event), "the nightly run produced {event}");
    }
    let delisting = rows
        .iter()
        .find(|r| r.2 == "delisting_cleanup")
        .map(|r| &r.3)
        .unwrap();
    assert!(delisting["symbols"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s == delisted.as_str()));
    for (event, payload) in &examples {
        println!("example {event}: {payload}");
    }
}

/// `(channel, event, payload)` of received messages, checking each envelope against the doc;
/// the errors channel's flat messages are checked against the `ErrorMessage` table instead.
fn unwrap_envelopes(doc: &Doc, received: &[Received]) -> Vec<(String, String, Value)> {
    let envelope = documented_envelope(doc);
    let error_fields = documented_error_message(doc);
    received
        .iter()
        .filter(|Received { channel, message }| {
            if !channel.ends_with(":errors") {
                return true;
            }
            assert_eq!(
                object_keys(message),
                error_fields,
                "an error has the documented ErrorMessage fields: {message}"
            );
            false
        })
        .map(|Received { channel, message }| {
            assert_eq!(
                object_keys(message),
                envelope,
                "the envelope has the documented fields: {message}"
            );
            let source = if message["event"] == "job_progress_update" {
                "tickstock-cache-sync-processing"
            } else {
                "tickstock-cache-sync"
            };
            assert_eq!(message["source"], source, "{message}");
            assert_eq!(message["version"], "1.0");
            (
                channel.clone(),
                message["event"].as_str().expect("event name").to_owned(),
                message["payload"].clone(),
            )
        })
        .collect()
}

#[tokio::test]
async fn the_notices_of_an_api_job_match_the_document_and_the_consumer_group_recipe_works() {
    let doc = Doc::load();
    let url = redis_url();
    let mut cleanup = StreamCleanup::new(&url);
    let prefix = cleanup.prefix();
    let channels = Channels {
        prefix: prefix.clone(),
    };
    let group = "tickstock-ui";

    let publisher = Publisher::new(&url, channels.clone(), 100_000).unwrap();
    let job = JobConfig {
        channels: channels.clone(),
        ..JobConfig::default()
    };

    let db = TestDb::new().await;
    db.load(&small_market(22, 1), 1).await;
    let state = app_state(&db, job.clone(), Some(publisher.clone()));
    let app = api::router(state.clone());
    let mut subscriber = Subscriber::new(&url, &prefix).await;
    let mut con = connection(&url).await;
    // The recipe: a group created before the first event (MKSTREAM), reading from its start.
    redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(channels.stream())
        .arg(group)
        .arg("$")
        .arg("MKSTREAM")
        .query_async::<()>(&mut con)
        .await
        .expect("XGROUP CREATE");

    let accepted = crate::http::post(
        &app,
        TRIGGER,
        &serde_json::json!({"mode": "full", "force": true}),
    )
    .await;
    assert_eq!(accepted.status, StatusCode::ACCEPTED, "{}", accepted.text());
    let job_id = finish_job(&state).await;
    let received = subscriber.drain().await;
    let seen = unwrap_envelopes(&doc, &received);
    let events = check_against_doc(&doc, &seen, &prefix, BANDING_ONLY);
    for event in [
        "cache_sync_triggered",
        "cache_sync_started",
        "cache_sync_progress",
        "job_progress_update",
        "universe_updated",
        "cache_sync_completed",
    ] {
        assert!(events.contains(event), "an API job publishes {event}");
    }
    let triggered = &seen
        .iter()
        .find(|s| s.1 == "cache_sync_triggered")
        .unwrap()
        .2;
    assert_eq!(triggered["job_id"], job_id.as_str());
    assert_eq!(triggered["triggered_by"], "api");
    let mut shown = BTreeSet::new();
    for Received { channel, message } in &received {
        if shown.insert(message["event"].as_str().unwrap().to_owned()) {
            println!("example on {channel}: {message}");
        }
    }

    // Two workers of one group share the stream; each entry goes to one, ids are `{seq}-1`.
    type Reply = Vec<(String, Vec<(String, Vec<(String, String)>)>)>;
    let mut delivered = Vec::new();
    for worker in ["worker-1", "worker-2", "worker-1"] {
        let reply: Option<Reply> = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg(group)
            .arg(worker)
            .arg("COUNT")
            .arg(30)
            .arg("STREAMS")
            .arg(channels.stream())
            .arg(">")
            .query_async(&mut con)
            .await
            .expect("XREADGROUP");
        for (_, entries) in reply.unwrap_or_default() {
            for (id, fields) in entries {
                let fields: BTreeMap<String, String> = fields.into_iter().collect();
                let seq: i64 = fields["seq"].parse().unwrap();
                assert_eq!(id, format!("{seq}-1"));
                let event: Value = serde_json::from_str(&fields["event"]).unwrap();
                assert_eq!(event["payload"]["seq"], seq);
                assert_eq!(event["event"], "universe_updated");
                let acked: i64 = redis::cmd("XACK")
                    .arg(channels.stream())
                    .arg(group)
                    .arg(&id)
                    .query_async(&mut con)
                    .await
                    .expect("XACK");
                assert_eq!(acked, 1);
                delivered.push(seq);
            }
        }
    }
    let universe_seqs: Vec<i64> = seen
        .iter()
        .filter(|s| s.1 == "universe_updated" && s.0 == channels.universe_updated())
        .map(|s| s.2["seq"].as_i64().unwrap())
        .collect();
    assert!(!delivered.is_empty());
    assert_eq!(
        delivered,
        universe_seqs[..delivered.len()],
        "the group delivers in seq order, once"
    );

    // A failing job: `processing_error`, and the flat `ErrorMessage` on the errors channel.
    let empty = TestDb::new().await;
    let failing = app_state(&empty, job, Some(publisher));
    let failing_app = api::router(failing.clone());
    let accepted = crate::http::post(&failing_app, TRIGGER, &serde_json::json!({})).await;
    assert_eq!(accepted.status, StatusCode::ACCEPTED);
    finish_job(&failing).await;
    let received = subscriber.drain().await;
    let seen = unwrap_envelopes(&doc, &received);
    let events = check_against_doc(&doc, &seen, &prefix, BANDING_ONLY);
    assert!(events.contains("processing_error"), "{events:?}");
    let errors: Vec<&Received> = received
        .iter()
        .filter(|r| r.channel == channels.errors())
        .collect();
    assert_eq!(errors.len(), 1, "{received:?}");
    for Received { channel, message } in &received {
        if message["event"] == "processing_error" || channel == &channels.errors() {
            println!("example on {channel}: {message}");
        }
    }
}

#[tokio::test]
async fn the_notices_of_a_command_line_run_match_the_document() {
    let doc = Doc::load();
    let url = redis_url();
    let mut cleanup = StreamCleanup::new(&url);
    let prefix = cleanup.prefix();
    let db = TestDb::new().await;
    db.load(&small_market(23, 1), 1).await;
    let mut subscriber = Subscriber::new(&url, &prefix).await;
    let mut command = cache_sync_command(&db, &["run"]);
    command
        .env("REDIS_URL", &url)
        .env("CACHE_SYNC_CHANNEL_PREFIX", &prefix);
    let out = tokio::time::timeout(WAIT, tokio::process::Command::from(command).output())
        .await
        .expect("the run ends in time")
        .expect("start cache-sync");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let received = subscriber.drain().await;
    let seen = unwrap_envelopes(&doc, &received);
    let events = check_against_doc(&doc, &seen, &prefix, BANDING_ONLY);
    for event in [
        "cache_sync_triggered",
        "cache_sync_started",
        "cache_sync_progress",
        "job_progress_update",
        "universe_updated",
        "cache_sync_completed",
    ] {
        assert!(
            events.contains(event),
            "a command-line run publishes {event}"
        );
    }
    let triggered = &seen
        .iter()
        .find(|s| s.1 == "cache_sync_triggered")
        .unwrap()
        .2;
    assert_eq!(triggered["triggered_by"], "cli");
    let mut shown = BTreeSet::new();
    for Received { channel, message } in &received {
        if shown.insert(message["event"].as_str().unwrap().to_owned()) {
            println!("example on {channel}: {message}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// (d) Environment variables
// ---------------------------------------------------------------------------------------------

fn help(args: &[&str]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cache-sync"))
        .args(args)
        .output()
        .expect("run cache-sync --help");
    assert_eq!(out.status.code(), Some(0));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn every_documented_environment_variable_is_one_the_command_line_accepts_and_vice_versa() {
    let doc = Doc::load();
    let documented: BTreeSet<String> = table_rows(&doc.section("##", "Configuration"))
        .into_iter()
        .filter_map(|cells| code(&cells[0]).map(str::to_owned))
        .collect();
    assert!(documented.len() >= 9, "{documented:?}");
    let text = format!("{}\n{}", help(&["--help"]), help(&["serve", "--help"]));
    for var in &documented {
        assert!(
            text.contains(var.as_str()),
            "`cache-sync --help` or `serve --help` mentions {var}"
        );
    }
    // Every `[env: NAME]` the help shows is documented.
    let declared: BTreeSet<String> = text
        .split("[env: ")
        .skip(1)
        .map(|rest| {
            rest.chars()
                .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                .collect()
        })
        .collect();
    let undocumented: Vec<_> = declared.difference(&documented).collect();
    assert!(undocumented.is_empty(), "undocumented: {undocumented:?}");
    for var in [
        "DATABASE_URL",
        "REDIS_URL",
        "CACHE_SYNC_API_KEY",
        "CACHE_SYNC_API_KEY_FILE",
        "CACHE_SYNC_ENVIRONMENT",
        "CACHE_SYNC_CONFIG",
        "CACHE_SYNC_CHANNEL_PREFIX",
        "CACHE_SYNC_STREAM_MAXLEN",
        "CACHE_SYNC_LOG_FORMAT",
    ] {
        assert!(documented.contains(var), "{var} is documented");
    }
}

// ---------------------------------------------------------------------------------------------
// Exit codes and performance
// ---------------------------------------------------------------------------------------------

#[test]
fn the_exit_codes_are_the_commands_exit_codes() {
    let doc = Doc::load();
    let documented: BTreeSet<u8> = table_rows(&doc.section("##", "Exit codes"))
        .into_iter()
        .map(|cells| {
            code(&cells[0])
                .and_then(|c| c.parse().ok())
                .unwrap_or_else(|| panic!("a backticked code: {cells:?}"))
        })
        .collect();
    let code: BTreeSet<u8> = [
        Exit::Success,
        Exit::Failure,
        Exit::Usage,
        Exit::Refused,
        Exit::Locked,
        Exit::Pending,
        Exit::ImportTimeout,
    ]
    .into_iter()
    .map(|e| e as u8)
    .collect();
    assert_eq!(documented, code);
}

#[test]
fn the_performance_table_repeats_the_readmes_measured_figures() {
    let doc = Doc::load();
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let readme_rows: Vec<&str> = readme
        .lines()
        .skip_while(|l| !l.starts_with("## Performance"))
        .skip(1)
        .take_while(|l| !l.starts_with("## "))
        .filter(|l| l.starts_with("| ") && !l.starts_with("| ---") && !l.starts_with("| step"))
        .collect();
    assert!(readme_rows.len() >= 5, "the README has its table");
    let section = doc.section("##", "Performance").join("\n");
    for row in readme_rows {
        assert!(section.contains(row), "the document repeats `{row}`");
    }
    for legacy in ["1.0–1.2 s", "870 KB", "72"] {
        assert!(section.contains(legacy), "the legacy figure {legacy}");
    }
}
