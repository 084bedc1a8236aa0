//! Two `serve` processes on one PostgreSQL database (issue 15 item 3): concurrent triggers on
//! both start one run; killing the instance that runs a job (SIGKILL, mid-run) leaves the
//! database as it was and its job recorded as interrupted, and the other instance's next run
//! converges. Real processes on loopback ports, so each has its own connections, owner lock and
//! job runner.

use crate::helpers::{cache_sync_cli, describe, live_hashes, small_market, Backend, TestDb, WAIT};
use crate::http::{
    free_port, raw_request, serve_command, status_uri, stderr_lines, wait_for_line, RawAnswer,
    TRIGGER,
};
use serde_json::Value;
use std::net::SocketAddr;
use std::process::{Child, Stdio};
use std::sync::mpsc::Receiver;

const FORCED_FULL: &str = r#"{"mode":"full","force":true}"#;

/// A `cache-sync serve` child on its own port, its stderr kept line by line; killed on drop.
struct Instance {
    child: Child,
    addr: SocketAddr,
    stderr: Receiver<String>,
}

impl Instance {
    /// Starts `serve` on a free loopback port and returns once it is serving.
    fn start(db: &TestDb, extra: &[&str]) -> Self {
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let bind = addr.to_string();
        let mut args = vec!["--bind", &bind, "--unauthenticated-loopback"];
        args.extend_from_slice(extra);
        let mut child = serve_command(db, &args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start cache-sync serve");
        let stderr = stderr_lines(&mut child);
        let instance = Self {
            child,
            addr,
            stderr,
        };
        instance.wait_for_line("serving on");
        instance
    }

    /// Waits (bounded) for a line of the child's stderr containing `wanted`.
    fn wait_for_line(&self, wanted: &str) {
        wait_for_line(&self.stderr, wanted);
    }

    /// Whether the child has printed a line containing `wanted` (without waiting).
    fn has_printed(&self, wanted: &str) -> bool {
        self.stderr.try_iter().any(|line| line.contains(wanted))
    }

    async fn get(&self, path: &str) -> Value {
        let answer = raw_request(self.addr, "GET", path, None, None).await;
        assert_eq!(answer.status, 200, "GET {path}: {}", answer.text());
        answer.json()
    }

    async fn trigger(&self) -> RawAnswer {
        raw_request(self.addr, "POST", TRIGGER, None, Some(FORCED_FULL)).await
    }

    /// SIGKILL: no shutdown hook, no rollback by the process itself.
    fn kill(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reap");
    }

    /// Polls (bounded) this instance's status endpoint until the job is no longer pending or
    /// running.
    async fn until_settled(&self, job_id: &str) -> Value {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let job = self.get(&status_uri(job_id)).await;
            if job["status"] != "pending" && job["status"] != "running" {
                return job;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "job {job_id} never settled: {job}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Everything a run writes, as text: the live rows, the run records and the event log.
async fn written(db: &TestDb) -> (Vec<String>, i64, i64) {
    (
        db.raw_rows("true").await,
        db.count("cache_sync_run").await,
        db.count("cache_sync_event").await,
    )
}

fn job_id_of(answer: &RawAnswer) -> String {
    answer.json()["job_id"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_triggers_on_two_instances_start_exactly_one_run() {
    let db = TestDb::on(Backend::Postgres).await;
    db.load(&small_market(61, 1), 1).await;
    // Both runners stop before their commit, so the winner still holds its job and the writer
    // lock when the loser's trigger arrives, however the two requests interleave.
    let first = Instance::start(&db, &["--test-pause-before-commit"]);
    let second = Instance::start(&db, &["--test-pause-before-commit"]);
    let before = written(&db).await;

    let (a, b) = tokio::join!(first.trigger(), second.trigger());
    let mut statuses = [a.status, b.status];
    statuses.sort_unstable();
    assert_eq!(
        statuses,
        [202, 409],
        "one accepted, one refused: {} / {}",
        a.text(),
        b.text()
    );
    let (accepted, refused, runner, other) = if a.status == 202 {
        (a, b, &first, &second)
    } else {
        (b, a, &second, &first)
    };
    assert_eq!(
        refused.json()["error"]["code"],
        "already_running",
        "{}",
        refused.text()
    );
    let job_id = job_id_of(&accepted);
    assert!(
        refused.text().contains(&job_id),
        "the refusal names the job in the way, started on the other instance: {}",
        refused.text()
    );
    runner.wait_for_line("paused before commit");
    assert!(
        !other.has_printed("paused before commit"),
        "the refused instance started no run"
    );

    // Either instance answers for the job, whichever started it.
    for instance in [runner, other] {
        let job = instance.get(&status_uri(&job_id)).await;
        assert_eq!(job["status"], "running", "{job}");
        let history = instance.get("/api/processing/cache-sync/history").await;
        let ids: Vec<&str> = history["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|j| j["job_id"].as_str())
            .collect();
        assert_eq!(
            ids,
            [job_id.as_str()],
            "one job recorded, the 409 none: {history}"
        );
        let stats = instance.get("/api/processing/cache-sync/stats").await;
        assert_eq!(stats["job_statistics"]["running"], 1, "{stats}");
        assert_eq!(stats["job_statistics"]["failed_jobs_7d"], 0, "{stats}");
    }
    assert_eq!(db.count("cache_sync_job").await, 1);
    assert_eq!(written(&db).await, before, "nothing committed while paused");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_running_instance_leaves_the_database_as_it_was_and_the_other_runs_next() {
    let market = small_market(62, 2);
    let db = TestDb::on(Backend::Postgres).await;
    db.load(&market, 1).await;
    db.run().await;
    db.load_next(&market, 2).await;
    // What the same two nights give on a database nobody killed anything on.
    let reference = TestDb::on(Backend::Postgres).await;
    reference.load(&market, 1).await;
    reference.run().await;
    reference.load_next(&market, 2).await;
    reference.run_forced().await;
    let expected = live_hashes(&reference).await;
    assert_ne!(expected, live_hashes(&db).await, "day 2 changes something");

    let runner = Instance::start(&db, &["--test-pause-before-commit"]);
    let survivor = Instance::start(&db, &[]);
    let before = written(&db).await;
    let accepted = runner.trigger().await;
    assert_eq!(accepted.status, 202, "{}", accepted.text());
    let job_id = job_id_of(&accepted);
    runner.wait_for_line("paused before commit");
    let refused = survivor.trigger().await;
    assert_eq!(refused.status, 409, "{}", refused.text());

    runner.kill();

    // The killed run's transaction died with its connection: no row, run or event of it.
    assert_eq!(written(&db).await, before, "no partial state");
    // The survivor's sweep finds the job's owner gone and records the truth.
    let settled = survivor.until_settled(&job_id).await;
    assert_eq!(settled["status"], "failed", "{settled}");
    assert!(settled["run_id"].is_null(), "{settled}");
    let reason = settled["error_details"].as_str().unwrap_or_default();
    assert!(reason.starts_with("interrupted"), "{settled}");
    assert!(reason.contains("rolled back"), "{settled}");

    // The next trigger runs on the survivor and converges on what an undisturbed night gives.
    let next = survivor.trigger().await;
    assert_eq!(next.status, 202, "{}", next.text());
    let next_id = job_id_of(&next);
    let done = survivor.until_settled(&next_id).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert!(done["run_id"].is_i64(), "{done}");
    assert_eq!(live_hashes(&db).await, expected);
    assert_eq!(db.count("cache_sync_run").await, before.1 + 1);
    let verify = cache_sync_cli(&db, &["verify"]);
    assert!(verify.status.success(), "{}", describe(&verify));
}
