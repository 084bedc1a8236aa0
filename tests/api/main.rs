//! Integration tests against a real PostgreSQL (one database per test). One binary, one module
//! per feature.

mod helpers;
mod plan;
