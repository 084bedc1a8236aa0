//! # tickstock-cache-sync
//!
//! TickStock's Phase 2.5: computes the universe catalog from `symbols` and `ohlcv_daily`, diffs it
//! against `cache_entries` by content hash, and applies only the deltas, each logged as an event.
//!
//! ## Map
//!
//! One line per module: what it owns, and (→) the modules it uses. The arrows only point up this
//! list, so there is no cycle; `main.rs` calls `cli`, `config`, `memory` and `telemetry`. A test checks
//! that this list is the crate's module tree and that the arrows are its `crate::` paths.
//!
//! - [`domain`] (→ none): the pure rules — catalog, canonical hashing, diff, member reasons,
//!   replay, guard rails, invariants, event payloads and live notices. No I/O, no clock.
//! - [`report`] (→ domain): the stable JSON shapes of plans and runs, the outcome a run record
//!   stores, and the run vocabulary (`RunStatus`, `Trigger`).
//! - [`store`] (→ domain, report): the database — small role traits and the one SQL
//!   implementation shared by PostgreSQL and the embedded SQLite file.
//! - [`history`] (→ domain, store): the audit log read back — replay, show, history, verify.
//! - [`publish`] (→ domain, store): Redis — the outbox relay, run notices, Phase 2's signal.
//! - [`job`] (→ domain, history, publish, report, store): the order of operations of a run and a
//!   plan, and Phase 2.5's lifecycle around a run (notices, progress, relay).
//! - [`http`] (→ domain, history, job, publish, report, store): the axum API for the admin UI.
//! - [`config`] (→ domain): the one clap `Config` (flags and environment variables).
//! - [`telemetry`] (→ config): the log subscriber.
//! - [`memory`] (→ none): how the process takes memory from the kernel.
//! - [`devtools`] (→ config, domain, history, http, job, publish, report, store): the synthetic
//!   market, writing it, the demo and the benchmark; nothing above depends on them.
//! - [`cli`] (→ config, devtools, domain, history, http, job, publish, report, store): dispatch,
//!   one file per command group, text rendering, progress bars, exit codes.

// Module files are `foo.rs` beside a `foo/` folder, never `foo/mod.rs`.
#![warn(clippy::mod_module_files)]

pub mod cli;
pub mod config;
pub mod devtools;
pub mod domain;
pub mod history;
pub mod http;
pub mod job;
pub mod memory;
pub mod publish;
pub mod report;
pub mod store;
pub mod telemetry;

#[cfg(test)]
mod map {
    //! The crate map above against the tree: the modules it lists are the ones declared here
    //! and present under `src/`, and each module's arrows are the crate's modules it names.

    use std::collections::{BTreeMap, BTreeSet};
    use std::path::{Path, PathBuf};

    fn src() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
    }

    fn lib_rs() -> String {
        std::fs::read_to_string(src().join("lib.rs")).expect("src/lib.rs")
    }

    /// `module -> arrows` as the map lists them.
    fn mapped() -> BTreeMap<String, BTreeSet<String>> {
        let text = lib_rs();
        let mut out = BTreeMap::new();
        for line in text.lines().filter_map(|l| l.strip_prefix("//! - [`")) {
            let (name, rest) = line.split_once("`]").expect("a module name");
            let arrows = rest
                .split_once("(→ ")
                .and_then(|(_, r)| r.split_once(')'))
                .expect("(→ …) after the name")
                .0;
            let arrows = arrows
                .split(", ")
                .filter(|a| *a != "none")
                .map(str::to_owned)
                .collect();
            out.insert(name.to_owned(), arrows);
        }
        out
    }

    /// Every `.rs` file of a module: `name.rs` and everything under `name/`.
    fn files_of(name: &str) -> Vec<PathBuf> {
        let mut files = vec![src().join(format!("{name}.rs"))];
        let mut dirs = vec![src().join(name)];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    dirs.push(path);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    files.push(path);
                }
            }
        }
        files
    }

    /// The crate's top-level modules a file names through `crate::…` paths.
    fn named_modules(text: &str, modules: &BTreeSet<String>) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        let mut rest = text;
        while let Some(at) = rest.find("crate::") {
            rest = &rest[at + "crate::".len()..];
            let names: Vec<&str> = match rest.strip_prefix('{') {
                // `crate::{a, b::c}`: the first segment of each item of the group.
                Some(group) => group
                    .split('}')
                    .next()
                    .unwrap_or_default()
                    .split(',')
                    .map(|item| item.trim().split("::").next().unwrap_or_default())
                    .collect(),
                None => vec![rest
                    .split(|c: char| !(c.is_alphanumeric() || c == '_'))
                    .next()
                    .unwrap_or_default()],
            };
            out.extend(
                names
                    .into_iter()
                    .filter(|n| modules.contains(*n))
                    .map(str::to_owned),
            );
        }
        out
    }

    #[test]
    fn the_map_lists_exactly_the_modules_declared_and_present() {
        let listed: BTreeSet<String> = mapped().into_keys().collect();
        let text = lib_rs();
        let declared: BTreeSet<String> = text
            .lines()
            .filter_map(|l| l.strip_prefix("pub mod "))
            .map(|l| l.trim_end_matches(';').to_owned())
            .collect();
        let present: BTreeSet<String> = std::fs::read_dir(src())
            .expect("src/")
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                let module = name.strip_suffix(".rs")?.to_owned();
                (module != "lib" && module != "main").then_some(module)
            })
            .collect();
        assert_eq!(listed, declared, "the map and lib.rs's `pub mod` lines");
        assert_eq!(listed, present, "the map and the files in src/");
    }

    #[test]
    fn each_module_uses_exactly_the_modules_its_arrows_name() {
        let map = mapped();
        let modules: BTreeSet<String> = map.keys().cloned().collect();
        for (module, arrows) in &map {
            let mut used = BTreeSet::new();
            for file in files_of(module) {
                let text = std::fs::read_to_string(&file).expect("a source file");
                used.extend(named_modules(&text, &modules));
            }
            used.remove(module);
            assert_eq!(&used, arrows, "the arrows of {module}");
        }
    }
}
