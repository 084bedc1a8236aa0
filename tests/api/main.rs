//! Integration tests against a real PostgreSQL (one database per test). One binary, one module
//! per feature.

mod atomicity;
mod demo;
mod embedded;
mod events;
mod guards;
mod handback;
mod helpers;
mod history;
mod http;
mod plan;
mod run;
