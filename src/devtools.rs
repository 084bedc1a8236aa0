//! Development tools, apart from the product: the deterministic synthetic market (`market`),
//! writing it into a store (`loader`), the narrated walkthrough (`demo`), the benchmark
//! (`bench`) and the turnover of the banded universes night after night (`turnover`). They use
//! the job and the store like any caller; nothing in `job`, `store`, `http` or `history` depends
//! on them.

pub mod bench;
pub mod demo;
pub mod loader;
pub mod market;
pub mod turnover;
