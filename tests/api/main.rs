//! Integration tests against real services: PostgreSQL (a database per test), SQLite (a file per
//! test) and Redis (a channel prefix per test). One binary, one module per feature; store-facing
//! tests run on both stores through `helpers::on_both_stores!`.

mod atomicity;
mod demo;
mod drift;
mod embedded;
mod events;
mod guards;
mod handback;
mod helpers;
mod history;
mod hostile;
mod http;
mod operator;
mod plan;
mod pubsub;
mod run;
mod store;
