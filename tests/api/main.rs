//! Integration tests against real services: PostgreSQL (a database per test), SQLite (a file per
//! test) and Redis (a channel prefix per test). One binary, one module per feature; store-facing
//! tests run on both stores through `helpers::on_both_stores!`.

mod atomicity;
mod banding;
mod compaction;
mod demo;
mod dialect;
mod drift;
mod embedded;
mod events;
mod fixtures;
mod guards;
mod handback;
mod hardening;
mod helpers;
mod history;
mod hostile;
mod http;
mod instances;
mod job_records;
mod listener;
mod operator;
mod pipeline;
mod plan;
mod prices;
mod pubsub;
mod redis_budget;
mod renames;
mod run;
mod shapes;
mod store;
