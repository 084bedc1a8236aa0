//! The embedded default: the README's first command sequence in a clean directory with no
//! DATABASE_URL and no Redis, the demo, and the error messages an operator meets first.

use crate::helpers::describe;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A fresh directory, removed at the end.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let path = std::env::temp_dir().join(format!(
            "cache-sync-{tag}-{}-{}",
            std::process::id(),
            chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default()
        ));
        std::fs::create_dir_all(&path).expect("temp dir");
        Self(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `cache-sync` in `dir` with no database or Redis settings from the environment.
fn cli(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cache-sync"))
        .args(args)
        .current_dir(dir)
        .env_remove("DATABASE_URL")
        .env_remove("REDIS_URL")
        .env_remove("CACHE_SYNC_CONFIG")
        .env_remove("CACHE_SYNC_ENVIRONMENT")
        .env_remove("CACHE_SYNC_LOG_FORMAT")
        .env_remove("CACHE_SYNC_CHANNEL_PREFIX")
        .output()
        .expect("start cache-sync")
}

#[test]
fn the_readmes_first_command_runs_the_job_on_the_embedded_default_and_leaves_a_valid_log() {
    let dir = TempDir::new("readme");
    // README: `cache-sync fixtures load --stocks 5000 --etfs 800 --days 30 --as-of-day 1 && cache-sync run`
    let load = cli(
        &dir.0,
        &[
            "fixtures",
            "load",
            "--stocks",
            "5000",
            "--etfs",
            "800",
            "--days",
            "30",
            "--as-of-day",
            "1",
        ],
    );
    assert!(load.status.success(), "{}", describe(&load));
    let run = cli(&dir.0, &["run", "--format", "json"]);
    assert!(run.status.success(), "{}", describe(&run));
    let report: serde_json::Value = serde_json::from_slice(&run.stdout).expect("json report");
    assert_eq!(report["created"], 74, "{report}");
    assert!(
        dir.0.join("cache-sync.sqlite").exists(),
        "the default file was created"
    );
    let verify = cli(&dir.0, &["verify"]);
    assert_eq!(verify.status.code(), Some(0), "{}", describe(&verify));
    let replay = cli(
        &dir.0,
        &["replay", "--at-run", "1", "--verify", "--format", "json"],
    );
    assert!(replay.status.success(), "{}", describe(&replay));
    let replayed: serde_json::Value = serde_json::from_slice(&replay.stdout).unwrap();
    assert_eq!(replayed["stats"]["entries"], 74);
    // Without Redis the events wait in the outbox.
    let events = cli(&dir.0, &["events", "--format", "json", "--limit", "500"]);
    assert!(events.status.success(), "{}", describe(&events));
    assert!(String::from_utf8_lossy(&events.stdout).lines().count() >= 74);
    let again = cli(&dir.0, &["run", "--format", "json"]);
    let again: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(
        (again["created"].as_u64(), again["updated"].as_u64()),
        (Some(0), Some(0))
    );
}

#[test]
fn the_demo_runs_in_a_fresh_directory_on_its_own_file() {
    let dir = TempDir::new("demo");
    let out = cli(&dir.0, &["demo"]);
    assert!(out.status.success(), "{}", describe(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("7. Rolled back"), "{text}");
    assert!(dir.0.join("cache-sync-demo.sqlite").exists());
    // Run again: the demo starts from a fresh file each time.
    let again = cli(&dir.0, &["demo"]);
    assert!(again.status.success(), "{}", describe(&again));
    assert!(String::from_utf8_lossy(&again.stdout).contains("run 1"));
}

#[test]
fn a_wrong_database_url_says_what_was_wrong_without_a_panic() {
    let dir = TempDir::new("badurl");
    let out = Command::new(env!("CARGO_BIN_EXE_cache-sync"))
        .args(["plan"])
        .current_dir(&dir.0)
        .env(
            "DATABASE_URL",
            "mysql://someone:secret-password@127.0.0.1/x",
        )
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("postgres://") && err.contains("sqlite://"),
        "{err}"
    );
    assert!(
        !err.contains("secret-password") && !err.contains("panicked"),
        "{err}"
    );

    let out = Command::new(env!("CARGO_BIN_EXE_cache-sync"))
        .args(["plan"])
        .current_dir(&dir.0)
        .env(
            "DATABASE_URL",
            "postgres://nobody:secret-password@127.0.0.1:1/none",
        )
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot connect to the database (postgres://127.0.0.1:1/none)"),
        "{err}"
    );
    assert!(
        !err.contains("secret-password") && !err.contains("panicked"),
        "{err}"
    );
}

#[test]
fn a_bad_toml_file_names_the_file_and_the_problem() {
    let dir = TempDir::new("toml");
    let config = dir.0.join("bad.toml");
    std::fs::write(
        &config,
        "[catalog]\nmarket_cap_thresholds = { giant_cap = 5 }\n",
    )
    .unwrap();
    let out = cli(&dir.0, &["--config", config.to_str().unwrap(), "plan"]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("giant_cap") && err.contains("bad.toml"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    std::fs::write(&config, "[catalog\n").unwrap();
    let out = cli(&dir.0, &["--config", config.to_str().unwrap(), "plan"]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.toml"), "{err}");
}
