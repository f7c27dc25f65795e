//! The edge worker: answers contact lists and counts from Workers KV and asks the origin
//! on a miss. `runtime` is the thin wasm glue (the fetch event, KV, requests to the
//! origin), `config` the worker's settings, `handlers` what each route does with them,
//! and `generations` the Durable Object that holds each workspace's generations; the
//! decisions (access, routes, freshness, the origin's replies, the answers, metrics) are
//! plain Rust modules tested natively.

pub mod access;
pub mod copies;
pub mod fail;
pub mod freshness;
pub mod hot;
pub mod metrics;
pub mod origin_reply;
pub mod reply;
pub mod route;
pub mod rows;

#[cfg(target_arch = "wasm32")]
mod config;
#[cfg(target_arch = "wasm32")]
mod generations;
#[cfg(target_arch = "wasm32")]
mod handlers;
#[cfg(target_arch = "wasm32")]
mod runtime;
