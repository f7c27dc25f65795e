//! The edge worker: answers contact lists and counts from Workers KV and asks the origin
//! on a miss. `runtime` is the thin wasm glue (KV, fetch, the event handler) and
//! `generations` the Durable Object that holds each workspace's generations; the
//! decisions (access, routes, freshness, the origin's replies, the answers, metrics) are
//! plain Rust modules tested natively.

pub mod access;
pub mod fail;
pub mod freshness;
pub mod metrics;
pub mod origin_reply;
pub mod reply;
pub mod route;

#[cfg(target_arch = "wasm32")]
mod generations;
#[cfg(target_arch = "wasm32")]
mod runtime;
