//! `origin counters check` on Postgres. Counters and contacts are read in one
//! REPEATABLE READ snapshot: every writer changes both in one transaction, so the
//! snapshot sees them agree unless they really drifted, and the check needs no lock
//! while writers go on. A repair in that snapshot fails with a serialization error if a
//! writer touched the same counters meanwhile, and is tried again.
//!
//! And the folds of the counters' shards (migration `counter_folds`).

use shared::WorkspaceId;
use sqlx::{PgPool, Postgres};

use super::super::counters::{check_in_transaction, Drift};
use super::D;
use crate::error::{Error, Result};

const TRIES: usize = 5;

/// Shard rows one fold moves, in one transaction: short enough that the writers it may
/// make wait (on the shard-0 rows it adds to) hardly notice.
const FOLD_BATCH: i32 = 1000;

/// Batches of each table one call folds at most. Writes leave far fewer shard rows
/// between two calls; a backlog (after the migration, or an instance that was down) is
/// folded over the next calls rather than in one burst beside the writers.
const FOLD_BATCHES: usize = 5;

/// Folds shard rows a batch at a time, clock counters first; how many it moved. Rows a
/// writer holds are skipped, and a batch that waited too long on one ends that table's
/// fold: the next call goes on.
pub async fn fold(db: &PgPool) -> Result<u64> {
    let mut moved = 0i64;
    for function in ["contact_clock_counters_fold", "contact_counters_fold"] {
        for _ in 0..FOLD_BATCHES {
            let batch = sqlx::query_scalar::<_, i64>(&format!("SELECT {function}($1)"))
                .bind(FOLD_BATCH)
                .fetch_one(db)
                .await;
            let n = match batch {
                Ok(n) => n,
                Err(e) if has_code(&e, &[LOCK_NOT_AVAILABLE]) => break,
                Err(e) => return Err(e.into()),
            };
            moved += n;
            if n < i64::from(FOLD_BATCH) {
                break;
            }
        }
    }
    Ok(u64::try_from(moved).unwrap_or(0))
}

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
    has_code(e, &["40001", "23505"])
}

/// Postgres's code for a lock not taken within `lock_timeout`.
const LOCK_NOT_AVAILABLE: &str = "55P03";

/// Whether `e` is a Postgres error with one of `codes` (SQLSTATE).
fn has_code(e: &sqlx::Error, codes: &[&str]) -> bool {
    e.as_database_error()
        .and_then(|d| d.code())
        .is_some_and(|c| codes.contains(&c.as_ref()))
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
