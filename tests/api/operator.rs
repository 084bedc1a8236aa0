//! Operator comfort on both stores: with migrations off, a missing or outdated schema is named
//! (not met as a raw SQL error halfway through a run), and progress bars are drawn on a
//! terminal only.

use crate::helpers::{
    cache_sync_cli, cache_sync_command, describe, on_both_stores, Backend, TestDb,
};
use std::process::Output;

/// The names of the tables in the database, sorted.
async fn tables(db: &TestDb) -> Vec<String> {
    let sql = match db.backend() {
        Backend::Postgres => {
            "select table_name::text from information_schema.tables
             where table_schema = 'public' order by 1"
        }
        Backend::Sqlite => {
            "select name from sqlite_master
             where type = 'table' and name not like 'sqlite_%' order by 1"
        }
    };
    db.sql(sql).scalars().await
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A command that stopped (exit 1) because the database has no schema.
fn assert_no_schema(out: &Output) {
    assert_eq!(out.status.code(), Some(1), "{}", describe(out));
    assert!(
        stderr(out).contains("the database has no cache-sync schema"),
        "{}",
        describe(out)
    );
}

async fn with_migrations_off_a_missing_or_outdated_schema_is_named_and_nothing_is_changed(
    backend: Backend,
) {
    let db = TestDb::empty_on(backend).await;
    assert!(tables(&db).await.is_empty());

    for args in [
        &["--no-migrate", "run"][..],
        &["--no-migrate", "plan"],
        &["--no-migrate", "fixtures", "load", "--stocks", "100"],
    ] {
        let out = cache_sync_cli(&db, args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", describe(&out));
        let message = stderr(&out);
        assert!(
            message.contains("the database has no cache-sync schema")
                && message.contains("run `cache-sync migrate`")
                && message.contains("--no-migrate"),
            "{args:?}: what is wrong and what to do: {message}"
        );
        assert!(!message.contains("panicked"), "{message}");
        assert!(tables(&db).await.is_empty(), "{args:?} created nothing");
    }
    if backend == Backend::Sqlite {
        // A file that does not exist is not created.
        let path = std::env::temp_dir().join(format!("{}-absent.sqlite", db.name));
        let out = cache_sync_command(&db, &["--no-migrate", "run"])
            .env("DATABASE_URL", format!("sqlite://{}", path.display()))
            .output()
            .unwrap();
        assert_no_schema(&out);
        assert!(!path.exists(), "no file was created");
    }
    // The environment variable is the same switch.
    let out = cache_sync_command(&db, &["plan"])
        .env("CACHE_SYNC_NO_MIGRATE", "true")
        .output()
        .unwrap();
    assert_no_schema(&out);

    // `migrate` applies the schema whatever the switch says; then the job works without it.
    let out = cache_sync_cli(&db, &["--no-migrate", "migrate"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let created = tables(&db).await;
    for table in [
        "cache_entries",
        "cache_sync_run",
        "cache_sync_event",
        "symbols",
    ] {
        assert!(created.iter().any(|t| t == table), "{table} in {created:?}");
    }
    let load = [
        "--no-migrate",
        "fixtures",
        "load",
        "--stocks",
        "300",
        "--etfs",
        "60",
        "--days",
        "2",
    ];
    let out = cache_sync_cli(&db, &load);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let out = cache_sync_cli(&db, &["--no-migrate", "run"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_eq!(db.count("cache_sync_run").await, 1);

    // A database one migration behind this build: the missing one is named.
    let (version, description): (i64, String) = db
        .sql("select version, description from _sqlx_migrations order by version desc limit 1")
        .fetch_one()
        .await;
    db.sql("delete from _sqlx_migrations where version = $1")
        .bind(version)
        .execute()
        .await;
    let runs = db.count("cache_sync_run").await;
    let out = cache_sync_cli(&db, &["--no-migrate", "run"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let message = stderr(&out);
    assert!(
        message.contains("the database schema is behind this build: 1 of its")
            && message.contains(&format!("{version} {description}")),
        "{message}"
    );
    assert_eq!(
        db.count("cache_sync_run").await,
        runs,
        "no run was recorded"
    );
}

on_both_stores!(with_migrations_off_a_missing_or_outdated_schema_is_named_and_nothing_is_changed);

/// Runs `cache-sync args` against `db` under `script`, which gives it a pseudo-terminal for
/// stdin, stdout and stderr; returns what the terminal showed.
fn in_a_terminal(db: &TestDb, args: &[&str]) -> Output {
    let quote = |s: &str| format!("'{}'", s.replace('\'', r"'\''"));
    let command_line = std::iter::once(env!("CARGO_BIN_EXE_cache-sync"))
        .chain(args.iter().copied())
        .map(quote)
        .collect::<Vec<_>>()
        .join(" ");
    let mut command = std::process::Command::new("script");
    command
        .args([
            "--quiet",
            "--return",
            "--command",
            &command_line,
            "/dev/null",
        ])
        .env("DATABASE_URL", &db.url)
        .env("TERM", "xterm")
        .env_remove("CACHE_SYNC_CONFIG")
        .env_remove("CACHE_SYNC_LOG_FORMAT")
        .env_remove("REDIS_URL");
    command.output().expect("run cache-sync under script")
}

/// What a progress bar draws: its title followed by the bar's opening bracket.
fn has_bar(text: &str, title: &str) -> bool {
    text.contains(&format!("{title} ["))
}

async fn progress_bars_are_drawn_on_a_terminal_and_never_into_a_pipe_or_json(backend: Backend) {
    let db = TestDb::on(backend).await;
    let load = [
        "fixtures", "load", "--stocks", "300", "--etfs", "60", "--days", "2",
    ];

    let shown = in_a_terminal(&db, &load);
    let screen = String::from_utf8_lossy(&shown.stdout);
    assert_eq!(shown.status.code(), Some(0), "{screen}");
    assert!(
        has_bar(&screen, "fixtures"),
        "a bar on the terminal: {screen:?}"
    );
    assert!(
        screen.contains("generating the synthetic market"),
        "{screen:?}"
    );
    assert!(screen.contains("Loaded the synthetic market"), "{screen:?}");

    let shown = in_a_terminal(&db, &["run"]);
    let screen = String::from_utf8_lossy(&shown.stdout);
    assert_eq!(shown.status.code(), Some(0), "{screen}");
    assert!(has_bar(&screen, "run"), "a bar on the terminal: {screen:?}");
    assert!(screen.contains("%"), "{screen:?}");

    // JSON output on a terminal: no bar, and the screen is the JSON report alone.
    let shown = in_a_terminal(&db, &["--format", "json", "run"]);
    let screen = String::from_utf8_lossy(&shown.stdout);
    assert_eq!(shown.status.code(), Some(0), "{screen}");
    assert!(!has_bar(&screen, "run"), "{screen:?}");
    let report: serde_json::Value = serde_json::from_str(screen.trim())
        .unwrap_or_else(|e| panic!("only JSON on the screen ({e}): {screen:?}"));
    assert_eq!(report["status"], "completed");

    // Into pipes: nothing but the report, no bar and no terminal control sequences.
    let piped = cache_sync_cli(&db, &["run"]);
    assert_eq!(piped.status.code(), Some(0), "{}", describe(&piped));
    for stream in [&piped.stdout, &piped.stderr] {
        let text = String::from_utf8_lossy(stream);
        assert!(!has_bar(&text, "run"), "{}", describe(&piped));
        assert!(!text.contains('\u{1b}'), "{}", describe(&piped));
    }
}

on_both_stores!(progress_bars_are_drawn_on_a_terminal_and_never_into_a_pipe_or_json);
