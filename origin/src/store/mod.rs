//! Postgres access as plain async functions, one module per concern. Every query takes
//! the workspace and filters on it: there is no query here that can read across tenants.

pub mod changes;
pub mod contacts;
pub mod filters;
pub mod seed;
pub mod settings;
pub mod writes;

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;

use crate::config::Config;

/// Connects lazily: the origin starts, and serves what it has cached, while Postgres is down.
pub fn pool(config: &Config) -> Result<PgPool, sqlx::Error> {
    pool_at(config, &config.database_url)
}

/// A pool to `url` with the configured limits (the read replica's too).
pub fn pool_at(config: &Config, url: &str) -> Result<PgPool, sqlx::Error> {
    let options: PgConnectOptions = url.parse()?;
    Ok(pool_options(config).connect_lazy_with(options.options([("statement_timeout", "5000")])))
}

fn pool_options(config: &Config) -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(config.db_max_connections)
        .acquire_timeout(config.db_acquire_timeout)
        .idle_timeout(Some(Duration::from_secs(300)))
}

/// Runs the migrations of `migrations/`, embedded in the binary.
pub async fn migrate(pool: &PgPool) -> Result<(), sqlx::migrate::MigrateError> {
    sqlx::migrate!("../migrations").run(pool).await
}
