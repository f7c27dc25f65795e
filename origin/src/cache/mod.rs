//! The read path: L1 (moka, this instance) → L2 (Redis, all instances) → Postgres.
//! A miss fills the layers above it; concurrent misses of one key cost one database
//! read, in this instance (a per-key lock) and across instances (a short Redis lock that
//! the others wait on). A value past its TTL is served as stale when Postgres is down,
//! and when refreshing it takes longer than the stale-if-slow deadline (Postgres slow, or
//! queued behind another refresh of the key), so a slow database costs a bounded wait.
//! After Redis lost a workspace's counters, every key of it misses at once: what L1 held
//! under the keys before stands in, marked stale, for refills slower than a moment.

pub mod acks;
pub mod edits;
pub mod entry;
pub mod events;
mod fill;
pub mod flight;
pub mod generations;
mod kinds;
pub mod memory;
pub mod redis;
pub mod stats;
pub mod topology;
pub mod traffic;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use self::kinds::PageKeyParts;
use shared::keys::KeySpace;
use shared::model::{CacheStatus, Source};
use shared::{BoardId, WorkspaceId};

use self::entry::{now_ms, Entry};
use self::fill::{Fill, FillLock};
use self::flight::{FillWaits, KeyLocks};
use self::generations::Generations;
use self::memory::Memory;
use self::redis::RedisCache;
use self::stats::Stats;
use self::traffic::Traffic;
use crate::error::{Error, Result};
use tokio::sync::futures::Notified;
use tokio::sync::Notify;

/// How long another instance's fill may hold a key before this one reads the database too.
const FILL_LOCK_TTL: Duration = Duration::from_secs(2);
/// How often a read waiting on another instance's fill looks at Redis itself, in case the
/// release announcement is lost (a subscription reconnecting): the announcement wakes it.
const FILL_POLL: Duration = Duration::from_millis(50);
/// How long a read waits for its refill before a stand-in answers it (see `Begun`): a
/// refill costs a few milliseconds unless every key is refilling at once.
const STAND_IN_WAIT: Duration = Duration::from_millis(50);

/// Which cache layers a read may use (the performance test switches them one by one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layers {
    pub memory: bool,
    pub redis: bool,
}

impl Layers {
    pub const ALL: Self = Self {
        memory: true,
        redis: true,
    };
}

/// What a cached page of a board is checked against besides its key: the board's `Rows`
/// generation when the read started (see `edits.rs`).
#[derive(Debug, Clone)]
pub struct RowsBasis<'a> {
    pub ws: &'a WorkspaceId,
    pub board: BoardId,
    pub seq: u64,
}

/// When a read began, and the value that stands in should its refill be slow: what L1
/// held fresh for it before Redis lost its workspace's counters (see
/// `Generations::before_each`). Such a loss makes every key miss at once, and the refills
/// queue behind each other; the stand-in answers, marked stale, meanwhile.
struct Begun {
    at: Instant,
    stand_in: Option<Arc<Entry>>,
}

/// A value that may answer a read marked stale, from when on.
struct Fallback {
    entry: Arc<Entry>,
    source: Source,
    from: Instant,
}

/// A value and where it came from.
#[derive(Debug, Clone)]
pub struct Answer {
    pub entry: Arc<Entry>,
    pub source: Source,
    pub status: CacheStatus,
}

/// The layers and what keys them. Callers say what they read (counts for a user, a page
/// of a board); the generations and keys of a read are built here and nowhere else.
pub struct Cache {
    memory: Memory,
    redis: Option<Arc<RedisCache>>,
    generations: Generations,
    stats: Arc<Stats>,
    traffic: Traffic,
    keys: KeySpace,
    locks: KeyLocks,
    fill_waits: FillWaits,
    grace: Duration,
    stale_if_slow: Duration,
}

impl Cache {
    pub fn new(
        memory: Memory,
        redis: Option<Arc<RedisCache>>,
        keys: KeySpace,
        generation_max_age: Duration,
        grace: Duration,
        stale_if_slow: Duration,
    ) -> Self {
        Self {
            memory,
            generations: Generations::new(keys.clone(), generation_max_age, redis.clone()),
            redis,
            stats: Arc::default(),
            traffic: Traffic::default(),
            keys,
            locks: KeyLocks::default(),
            fill_waits: FillWaits::default(),
            grace,
            stale_if_slow,
        }
    }

    fn observe(&self, source: Source, started: Instant) {
        let secs = started.elapsed().as_secs_f64();
        stats::layer_metrics(source).read_duration.record(secs);
        self.traffic.latency(source, secs * 1000.0);
    }

    fn hit(&self, entry: Arc<Entry>, source: Source, started: Instant) -> Answer {
        self.stats.hit(source);
        self.observe(source, started);
        Answer {
            entry,
            source,
            status: CacheStatus::Hit,
        }
    }

    /// `e`, unless it is a page that an edit logged since it was cached touched: that
    /// one is as unreachable as a key of an old generation (never served, not even stale).
    async fn current(&self, e: Arc<Entry>, rows: Option<&RowsBasis<'_>>) -> Option<Arc<Entry>> {
        if let Some(known) = Self::known_current(&e, rows) {
            return known.then_some(e);
        }
        let (Some(basis), Some(r)) = (rows, &e.rows) else {
            return None;
        };
        // Boxed: the log's Redis read is rare, and its state would otherwise weigh on
        // every read's future.
        let unchanged =
            Box::pin(
                self.generations
                    .rows_unchanged(basis.ws, basis.board, r, basis.seq),
            )
            .await;
        unchanged.then_some(e)
    }

    /// Whether `e` is current without reading the edit log; `None` when it takes the log.
    fn known_current(e: &Entry, rows: Option<&RowsBasis<'_>>) -> Option<bool> {
        match (rows, &e.rows) {
            (None, _) => Some(true),
            (Some(_), None) => Some(false),
            (Some(basis), Some(r)) if r.seq == basis.seq => Some(true),
            _ => None,
        }
    }

    /// The entry L1 holds under `key` if it is fresh and current: a hit that needs nothing
    /// else checked.
    fn memory_fresh(
        &self,
        key: &str,
        rows: Option<&RowsBasis<'_>>,
        now_ms: i64,
    ) -> Option<Arc<Entry>> {
        let e = self.memory.get(key)?;
        (e.is_fresh(now_ms) && Self::known_current(&e, rows) == Some(true)).then_some(e)
    }

    async fn memory_entry(&self, key: &str, rows: Option<&RowsBasis<'_>>) -> Option<Arc<Entry>> {
        let e = self.memory.get(key)?;
        self.current(e, rows).await
    }

    async fn redis_entry(
        &self,
        redis: &RedisCache,
        key: &str,
        rows: Option<&RowsBasis<'_>>,
    ) -> Option<Arc<Entry>> {
        let e = match redis.get(key).await {
            Ok(Some(raw)) => Arc::new(Entry::decode(&raw)?),
            Ok(None) => return None,
            Err(_) => {
                self.stats.error();
                return None;
            }
        };
        self.current(e, rows).await
    }

    /// Waits while another instance fills `key`; `None` once its lock is gone without a
    /// value. `announced` was taken from `released` before the lock was found held.
    async fn wait_for_fill(
        &self,
        redis: &RedisCache,
        key: &str,
        lock: &str,
        rows: Option<&RowsBasis<'_>>,
        released: &Notify,
        announced: Notified<'_>,
    ) -> Option<Arc<Entry>> {
        let deadline = Instant::now() + FILL_LOCK_TTL;
        let mut announced = std::pin::pin!(announced);
        while Instant::now() < deadline {
            let look = (Instant::now() + FILL_POLL).min(deadline);
            let _ = tokio::time::timeout_at(look.into(), announced.as_mut()).await;
            announced.set(released.notified());
            if let Some(e) = self
                .redis_entry(redis, key, rows)
                .await
                .filter(|e| e.is_fresh(now_ms()))
            {
                return Some(e);
            }
            if !redis.exists(lock).await.unwrap_or(false) {
                return None;
            }
        }
        None
    }

    /// Another instance released `key`'s fill lock: reads waiting on it look again.
    pub fn fill_released(&self, key: &str) {
        self.fill_waits.released(key);
    }

    /// Reads `key` through the allowed layers, computing it from the database on a miss.
    /// A page read gives its `rows` basis: cached pages are checked against it, and the
    /// page it fills records it. What `stand_in` finds for the key answers, marked stale,
    /// for a slow refill; it is looked for only past a plain L1 hit.
    pub async fn read_through<F, Fut>(
        &self,
        key: String,
        ttl_secs: u32,
        layers: Layers,
        rows: Option<&RowsBasis<'_>>,
        stand_in: impl FnOnce(&str) -> Option<Arc<Entry>>,
        compute: F,
    ) -> Result<Answer>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<String>> + Send + 'static,
    {
        let started = Instant::now();
        if layers.memory {
            if let Some(e) = self.memory_fresh(&key, rows, now_ms()) {
                return Ok(self.hit(e, Source::Memory, started));
            }
        }
        // Everything past a plain L1 hit, boxed: its state (locks, Redis, the fill) would
        // otherwise be part of every read's future, which the HTTP stack moves around.
        let begun = Begun {
            at: started,
            stand_in: stand_in(&key),
        };
        Box::pin(self.read_slow(key, ttl_secs, layers, rows, compute, begun)).await
    }

    async fn read_slow<F, Fut>(
        &self,
        key: String,
        ttl_secs: u32,
        layers: Layers,
        rows: Option<&RowsBasis<'_>>,
        compute: F,
        begun: Begun,
    ) -> Result<Answer>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<String>> + Send + 'static,
    {
        let started = begun.at;
        let mut stale = None;
        let local_flight = if layers.memory {
            if let Some(e) = self.memory_entry(&key, rows).await {
                if e.is_fresh(now_ms()) {
                    return Ok(self.hit(e, Source::Memory, started));
                }
                stale = Some((e, Source::Memory));
            }
            let fallback = self.fallback(&stale, &begun);
            let Some(guard) = until(&fallback, self.locks.lock(&key)).await else {
                return self.serve_stale(fallback);
            };
            if let Some(e) = self.memory_entry(&key, rows).await {
                if e.is_fresh(now_ms()) {
                    return Ok(self.hit(e, Source::Memory, started));
                }
                stale = Some((e, Source::Memory));
            }
            Some(guard)
        } else {
            None
        };

        let redis = self.redis.as_ref().filter(|_| layers.redis);
        let mut held_lock = None;
        if let Some(r) = redis {
            if let Some(e) = self.redis_entry(r, &key, rows).await {
                if e.is_fresh(now_ms()) {
                    if layers.memory {
                        self.memory.insert(key, e.clone());
                    }
                    return Ok(self.hit(e, Source::RedisCache, started));
                }
                stale = stale.or(Some((e, Source::RedisCache)));
            }
            let lock = self.keys.fill_lock(&key);
            let owner = format!("{:016x}", random_id());
            let released = self.fill_waits.watch(&key);
            let announced = released.notified();
            if r.try_lock(&lock, &owner, FILL_LOCK_TTL)
                .await
                .unwrap_or(false)
            {
                held_lock = Some(FillLock {
                    redis: r.clone(),
                    lock,
                    owner,
                    channel: self.keys.fills_channel(),
                    announcement: key.clone(),
                });
            } else if r.is_up() {
                let wait = self.wait_for_fill(r, &key, &lock, rows, &released, announced);
                let fallback = self.fallback(&stale, &begun);
                match until(&fallback, wait).await {
                    Some(Some(e)) => {
                        if layers.memory {
                            self.memory.insert(key, e.clone());
                        }
                        return Ok(self.hit(e, Source::RedisCache, started));
                    }
                    Some(None) => {}
                    None => return self.serve_stale(fallback),
                }
            }
        }

        self.stats.miss();
        self.stats.db_query();
        let fill = Fill {
            memory: layers.memory.then(|| self.memory.clone()),
            redis: redis.cloned(),
            stats: self.stats.clone(),
            keep: Duration::from_secs(u64::from(ttl_secs)) + self.grace,
            rows: rows.map(|r| r.seq),
            _lock: held_lock,
            _local_flight: local_flight,
        };
        // The query and the fill run in a task of their own: a read that stops waiting
        // at the stale-if-slow deadline leaves them to finish and fill every layer, and
        // keeps the key's locks held until then, so no second query starts meanwhile.
        let refresh = tokio::spawn(fill.run(key, ttl_secs, compute()));
        let fallback = self.fallback(&stale, &begun);
        let Some(computed) = until(&fallback, refresh).await else {
            return self.serve_stale(fallback);
        };
        match computed.unwrap_or_else(|e| Err(Error::Internal(format!("fill task: {e}")))) {
            Ok(entry) => {
                self.observe(Source::Database, started);
                Ok(Answer {
                    entry,
                    source: Source::Database,
                    status: CacheStatus::Miss,
                })
            }
            Err(e) if e.is_outage() && fallback.is_some() => self.serve_stale(fallback),
            Err(e) => Err(e),
        }
    }

    /// What may answer a read instead of its refill, and from when: the key's value past
    /// its TTL after the stale-if-slow deadline, else a stand-in (see `Begun`) after
    /// `STAND_IN_WAIT`.
    fn fallback(&self, stale: &Option<(Arc<Entry>, Source)>, begun: &Begun) -> Option<Fallback> {
        match (stale, &begun.stand_in) {
            (Some((e, source)), _) => Some(Fallback {
                entry: e.clone(),
                source: *source,
                from: begun.at + self.stale_if_slow,
            }),
            (None, Some(e)) => Some(Fallback {
                entry: e.clone(),
                source: Source::Memory,
                from: begun.at + STAND_IN_WAIT,
            }),
            (None, None) => None,
        }
    }

    /// The value that stands in for one the database cannot give in time. Called with a
    /// fallback (`until` has no deadline without one); a timeout otherwise.
    fn serve_stale(&self, fallback: Option<Fallback>) -> Result<Answer> {
        let Fallback { entry, source, .. } = fallback.ok_or(Error::Timeout)?;
        self.stats.stale();
        Ok(Answer {
            entry,
            source,
            status: CacheStatus::Stale,
        })
    }

    pub fn redis(&self) -> Option<&Arc<RedisCache>> {
        self.redis.as_ref()
    }

    pub fn generations(&self) -> &Generations {
        &self.generations
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    pub fn traffic(&self) -> &Traffic {
        &self.traffic
    }

    pub fn memory(&self) -> &Memory {
        &self.memory
    }

    pub fn keys(&self) -> &KeySpace {
        &self.keys
    }

    /// Drops one key from both layers (the performance test's cold start).
    pub async fn remove(&self, key: &str) {
        self.memory.remove(key);
        if let Some(r) = &self.redis {
            let _ = r.del(key).await;
        }
        self.stats.delete();
    }
}

/// A random id (an announcement, a fill lock's holder); from the clock when the system
/// has no randomness, which still differs from one call to the next in practice.
pub(crate) fn random_id() -> u64 {
    let mut bytes = [0u8; 8];
    if getrandom::fill(&mut bytes).is_err() {
        bytes = now_ms().to_le_bytes();
    }
    u64::from_le_bytes(bytes)
}

/// `work`, or `None` once the fallback's time comes, but only while there is a fallback:
/// without one, waiting is the only way to an answer (the request timeout still bounds it).
async fn until<T>(fallback: &Option<Fallback>, work: impl Future<Output = T>) -> Option<T> {
    match fallback {
        Some(f) => tokio::time::timeout_at(f.from.into(), work).await.ok(),
        None => Some(work.await),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::UserId;
    use tokio::sync::oneshot;

    /// Real Redis (`REDIS_URL`): when Redis loses a workspace's counters, every key of it
    /// misses at once. A read whose refill is slow is answered, marked stale, by what L1
    /// held before the loss, and the refill it started still lands.
    #[tokio::test]
    async fn after_a_loss_the_value_before_it_stands_in_for_a_slow_refill() {
        let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
        let redis = Arc::new(RedisCache::new(&url, Duration::from_secs(2)).expect("client"));
        let keys = KeySpace::new(&format!("standin{}", std::process::id())).expect("valid");
        let ws = WorkspaceId::parse("77").expect("valid");
        let user = UserId::parse("u1").expect("valid");
        let hash = keys.generations(&ws);
        redis.del(&hash).await.expect("redis");
        let minute = Duration::from_secs(60);
        let memory = Memory::new(1 << 20, minute);
        let cache = Cache::new(memory, Some(redis.clone()), keys, minute, minute, minute);
        let answered = |body: &'static str| {
            cache.counts(
                &ws,
                &user,
                Some(300),
                move || async move { Ok(body.to_owned()) },
            )
        };
        let first = answered("before").await.expect("read");
        assert_eq!(first.status, CacheStatus::Miss);

        redis.del(&hash).await.expect("redis");
        cache.generations().forget_all();
        let (release, released) = oneshot::channel::<()>();
        let slow = cache
            .counts(&ws, &user, Some(300), move || async move {
                let _ = released.await;
                Ok("after".to_owned())
            })
            .await
            .expect("read");
        assert_eq!(
            (slow.status, slow.entry.body()),
            (CacheStatus::Stale, "before".to_owned())
        );

        release.send(()).expect("the refill is still running");
        let mut refilled = None;
        for _ in 0..100 {
            let a = answered("a second refill").await.expect("read");
            if a.status == CacheStatus::Hit {
                refilled = Some(a.entry.body());
                break;
            }
        }
        assert_eq!(refilled.as_deref(), Some("after"));
        redis.del(&hash).await.expect("redis");
    }
}
