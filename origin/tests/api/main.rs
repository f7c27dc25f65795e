//! The origin's HTTP API against real Postgres (a fresh database per test) and real
//! Redis (a fresh key namespace per test). One binary, so it links once.

mod auth;
mod degrade;
mod helpers;
mod input;
mod invalidation;
mod reads;
