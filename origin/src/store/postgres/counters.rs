//! `origin counters check` on Postgres. Counters and contacts are read in one
//! REPEATABLE READ snapshot: every writer changes both in one transaction, so the
//! snapshot sees them agree unless they really drifted, and the check needs no lock
//! while writers go on. A repair in that snapshot fails with a serialization error if a
//! writer touched the same counters meanwhile, and is tried again.

use shared::WorkspaceId;
use sqlx::{PgPool, Postgres};

use super::super::counters::{bucket_of, drift, rebuild_query, recount_query, stored_query, Drift};
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
    let stored = stored_query::<Postgres>(ws)
        .build()
        .fetch_all(&mut *tx)
        .await?;
    let actual = recount_query::<Postgres>(ws, D)
        .build()
        .fetch_all(&mut *tx)
        .await?;
    let found = drift(
        stored.iter().map(bucket_of).collect::<Result<_>>()?,
        actual.iter().map(bucket_of).collect::<Result<_>>()?,
    );
    if repair && !found.is_empty() {
        sqlx::query("DELETE FROM contact_counters WHERE $1::text IS NULL OR workspace_id = $1")
            .bind(ws.map(WorkspaceId::as_str))
            .execute(&mut *tx)
            .await?;
        rebuild_query::<Postgres>(ws, D)
            .build()
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(found)
}
