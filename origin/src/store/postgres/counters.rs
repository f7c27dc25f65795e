//! `origin counters check` on Postgres. Counters and contacts are read in one
//! REPEATABLE READ snapshot: every writer changes both in one transaction, so the
//! snapshot sees them agree unless they really drifted, and the check needs no lock
//! while writers go on. A repair in that snapshot fails with a serialization error if a
//! writer touched the same counters meanwhile, and is tried again.

use shared::WorkspaceId;
use sqlx::{PgPool, Postgres};

use super::super::counters::{check_in_transaction, Drift};
use super::D;
use crate::error::{Error, Result};

const TRIES: usize = 5;

pub async fn check(db: &PgPool, ws: Option<&WorkspaceId>, repair: bool) -> Result<Vec<Drift>> {
    let mut tries = 0;
    loop {
        tries += 1;
        match check_once(db, ws, repair).await {
            Err(Error::Database(e)) if tries < TRIES && is_conflict(&e) => continue,
            done => return done,
        }
    }
}

/// A concurrent writer won: a serialization failure, or its new counter row first.
fn is_conflict(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .and_then(|d| d.code())
        .is_some_and(|c| c == "40001" || c == "23505")
}

async fn check_once(db: &PgPool, ws: Option<&WorkspaceId>, repair: bool) -> Result<Vec<Drift>> {
    let mut tx = db.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        .execute(&mut *tx)
        .await?;
    sqlx::query("SELECT set_config('statement_timeout', '0', true)")
        .execute(&mut *tx)
        .await?;
    let found = check_in_transaction!(tx, Postgres, D, ws, repair);
    tx.commit().await?;
    Ok(found)
}
