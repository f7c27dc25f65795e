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
use std::time::{Duration, Instant};

use sqlx::PgPool;
use tokio::sync::Mutex;

/// Primary positions kept: enough for the fills in flight to find one read after their
/// change without asking again.
const KEPT: usize = 32;

/// The primary's WAL write position: past every committed transaction (a commit waits
/// for its WAL to be written, with `synchronous_commit` on, the default).
const WRITTEN: &str = "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::int8";

/// How far a standby has replayed; NULL on a server that is no standby (a promoted
/// replica is not the primary's copy any more, so it is not read).
const REPLAYED: &str = "SELECT CASE WHEN pg_is_in_recovery() \
    THEN pg_wal_lsn_diff(pg_last_wal_replay_lsn(), '0/0')::int8 END";

/// A position query slower than this counts as unanswered: the fill reads the primary.
const ASK_TIMEOUT: Duration = Duration::from_millis(200);

/// After the replica failed to answer, how long fills read the primary without asking it.
const RETRY_AFTER: Duration = Duration::from_secs(1);

pub(super) struct Replica {
    pub(super) pool: PgPool,
    /// Recent primary positions, each with when its query was sent, oldest first.
    written: Mutex<VecDeque<(Instant, u64)>>,
    /// The highest replay position the replica has reported.
    replayed: AtomicU64,
    /// One replay query at a time; the others wait and reuse its answer.
    asking: Mutex<()>,
    /// Until when the replica counts as unreachable.
    unreachable_until: std::sync::Mutex<Option<Instant>>,
}

impl Replica {
    pub(super) fn new(pool: PgPool) -> Self {
        Self {
            pool,
            written: Mutex::default(),
            replayed: AtomicU64::new(0),
            asking: Mutex::default(),
            unreachable_until: std::sync::Mutex::default(),
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
        let unreachable = || {
            let until = self
                .unreachable_until
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            until.is_some_and(|t| Instant::now() < t)
        };
        if unreachable() {
            return false;
        }
        match position(&self.pool, REPLAYED).await {
            Some(replayed) => {
                self.replayed.fetch_max(replayed, Ordering::AcqRel);
                replayed >= target
            }
            None => {
                let mut until = self
                    .unreachable_until
                    .lock()
                    .unwrap_or_else(|p| p.into_inner());
                *until = Some(Instant::now() + RETRY_AFTER);
                false
            }
        }
    }

    /// The first kept primary position read after `changed`, else a new one.
    async fn written_after(&self, primary: &PgPool, changed: Instant) -> Option<u64> {
        let mut written = self.written.lock().await;
        if let Some((_, lsn)) = written.iter().find(|(sent, _)| *sent >= changed) {
            return Some(*lsn);
        }
        let sent = Instant::now();
        let lsn = position(primary, WRITTEN).await?;
        if written.len() == KEPT {
            written.pop_front();
        }
        written.push_back((sent, lsn));
        Some(lsn)
    }
}

async fn position(db: &PgPool, query: &str) -> Option<u64> {
    let asked = sqlx::query_scalar::<_, Option<i64>>(query).fetch_one(db);
    let lsn = tokio::time::timeout(ASK_TIMEOUT, asked)
        .await
        .ok()?
        .ok()??;
    u64::try_from(lsn).ok()
}
