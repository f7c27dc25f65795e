//! The origin's HTTP API against real Postgres (a fresh database per test) and real
//! Redis (a fresh key namespace per test), and the store contract against Postgres and
//! SQLite. One binary, so it links once.

mod auth;
mod contract;
mod cursors;
mod degrade;
mod edits;
mod embedded;
mod helpers;
mod history;
mod history_contract;
mod hits;
mod input;
mod invalidation;
mod isolation;
mod isolation_routes;
mod live;
mod monitoring;
mod reads;
mod redis_layouts;
mod replica;
mod servers;
