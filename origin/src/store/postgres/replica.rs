//! How far the read replica has replayed the primary's WAL, so that a fill reads it only
//! once it holds every change this instance has heard of for the workspace.
//!
//! A change is heard of (bumped here, announced, or seen in Redis) after its COMMIT, so
//! the primary's WAL position read after that moment covers it; the replica holds the
//! change once its replay position reaches that one. Both positions are asked for only
//! when a fill needs them, one query at a time, and kept: the primary's with when its
//! query was sent, the replica's as the highest it reported (replay only moves forward).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use sqlx::PgPool;
use tokio::sync::Mutex;

/// Primary positions kept: enough for the fills in flight to find one read after their
/// change without asking again.
const KEPT: usize = 32;

/// The primary's WAL write position (on the primary, past every committed transaction:
/// commits wait for their WAL to be written), or how far a standby has replayed; a
/// server that is no standby (a promoted replica) holds what it wrote.
const POSITION: &str =
    "SELECT pg_wal_lsn_diff(COALESCE(pg_last_wal_replay_lsn(), pg_current_wal_lsn()), '0/0')::int8";

pub(super) struct Replica {
    pub(super) pool: PgPool,
    /// Recent primary positions, each with when its query was sent, oldest first.
    written: Mutex<VecDeque<(Instant, u64)>>,
    /// The highest replay position the replica has reported.
    replayed: AtomicU64,
    /// One replay query at a time; the others wait and reuse its answer.
    asking: Mutex<()>,
}

impl Replica {
    pub(super) fn new(pool: PgPool) -> Self {
        Self {
            pool,
            written: Mutex::default(),
            replayed: AtomicU64::new(0),
            asking: Mutex::default(),
        }
    }

    /// Whether the replica holds every change made before `changed`; `false` when either
    /// server cannot say (the fill then reads the primary).
    pub(super) async fn holds(&self, primary: &PgPool, changed: Instant) -> bool {
        let Some(target) = self.written_after(primary, changed).await else {
            return false;
        };
        if self.replayed.load(Ordering::Acquire) >= target {
            return true;
        }
        let _one = self.asking.lock().await;
        if self.replayed.load(Ordering::Acquire) >= target {
            return true;
        }
        match position(&self.pool).await {
            Some(replayed) => {
                self.replayed.fetch_max(replayed, Ordering::AcqRel);
                replayed >= target
            }
            None => false,
        }
    }

    /// The first kept primary position read after `changed`, else a new one.
    async fn written_after(&self, primary: &PgPool, changed: Instant) -> Option<u64> {
        let mut written = self.written.lock().await;
        if let Some((_, lsn)) = written.iter().find(|(sent, _)| *sent >= changed) {
            return Some(*lsn);
        }
        let sent = Instant::now();
        let lsn = position(primary).await?;
        if written.len() == KEPT {
            written.pop_front();
        }
        written.push_back((sent, lsn));
        Some(lsn)
    }
}

async fn position(db: &PgPool) -> Option<u64> {
    let lsn: i64 = sqlx::query_scalar(POSITION).fetch_one(db).await.ok()?;
    u64::try_from(lsn).ok()
}
