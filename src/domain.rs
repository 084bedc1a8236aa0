//! The pure core: catalog rules, canonical encoding and hashing, diff, reasons, replay. Nothing
//! here does I/O or reads the clock; every function takes plain values and returns plain values.

pub mod catalog;
pub mod columns;
pub mod config;
pub mod diff;
pub mod events;
pub mod fingerprint;
pub mod guard;
pub mod invariants;
pub mod log_form;
pub mod market;
pub mod members;
pub mod notices;
pub mod reasons;
pub mod renames;
pub mod replay;
pub mod securities;
pub mod types;
