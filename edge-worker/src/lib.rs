//! The edge worker: answers contact lists and counts from Workers KV and asks the origin
//! on a miss. `runtime` is the thin wasm glue; the decisions (routes, freshness, replies,
//! metrics) are plain Rust modules tested natively.

pub mod freshness;
pub mod metrics;
pub mod reply;
pub mod route;

#[cfg(target_arch = "wasm32")]
mod runtime;
