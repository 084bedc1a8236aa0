//! # tickstock-cache-sync
//!
//! TickStock's Phase 2.5: computes the universe catalog from `symbols` and `ohlcv_daily`, diffs it
//! against `cache_entries` by content hash, and applies only the deltas.
//!
//! Layout:
//! - [`domain`]: pure rules (catalog, hashing, diff, reasons, replay); no I/O.
//! - [`fixtures`]: the deterministic synthetic market used by tests, demos and benchmarks.
//! - [`store`]: the database adapters behind one trait.
//! - [`job`]: the only module that knows the order of operations (load, compute, plan, apply).
//! - [`report`]: text and JSON rendering of plans and runs.
//! - [`commands`], [`config`], [`telemetry`]: the command line (`main.rs` only parses and calls).
//! - [`bench`]: the benchmark command.

// Module files are `foo.rs` beside a `foo/` folder, never `foo/mod.rs`.
#![warn(clippy::mod_module_files)]

pub mod bench;
pub mod commands;
pub mod config;
pub mod demo;
pub mod domain;
pub mod fixtures;
pub mod fixtures_loader;
pub mod history;
pub mod http;
pub mod job;
pub mod progress;
pub mod publish;
pub mod report;
pub mod store;
pub mod telemetry;
