//! The read path: L1 (moka, this instance) → L2 (Redis, all instances) → Postgres.
//! A miss fills the layers above it; concurrent misses of one key cost one database
//! read, in this instance (a per-key lock) and across instances (a short Redis lock that
//! the others wait on). A value past its TTL is served as stale when Postgres is down,
//! and when refreshing it takes longer than the stale-if-slow deadline (Postgres slow, or
//! queued behind another refresh of the key), so a slow database costs a bounded wait.

pub mod acks;
pub mod edits;
pub mod entry;
pub mod events;
pub mod flight;
pub mod generations;
pub mod memory;
pub mod redis;
pub mod stats;
pub mod topology;
pub mod traffic;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use shared::cursor::Cursor;
use shared::keys::{GenerationScope, Generations as KeyGens, KeySpace};
use shared::messages::{ConversationQuery, MessageQuery};
use shared::model::{CacheStatus, ContactPage, Source};
use shared::query::ContactListQuery;
use shared::{BoardId, UserId, WorkspaceId};

use self::entry::{now_ms, Entry, Rows};
use self::flight::{FillWaits, KeyLocks};
use self::generations::Generations;
use self::memory::Memory;
use self::redis::RedisCache;
use self::stats::Stats;
use self::traffic::Traffic;
use crate::error::{Error, Result};
use tokio::sync::futures::Notified;
use tokio::sync::{Notify, OwnedMutexGuard};

/// How long another instance's fill may hold a key before this one reads the database too.
const FILL_LOCK_TTL: Duration = Duration::from_secs(2);
/// How often a read waiting on another instance's fill looks at Redis itself, in case the
/// release announcement is lost (a subscription reconnecting): the announcement wakes it.
const FILL_POLL: Duration = Duration::from_millis(50);

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
    fn memory_fresh(&self, key: &str, rows: Option<&RowsBasis<'_>>) -> Option<Arc<Entry>> {
        let e = self.memory.get(key)?;
        (e.is_fresh(now_ms()) && Self::known_current(&e, rows) == Some(true)).then_some(e)
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
    /// page it fills records it.
    pub async fn read_through<F, Fut>(
        &self,
        key: String,
        ttl_secs: u32,
        layers: Layers,
        rows: Option<&RowsBasis<'_>>,
        compute: F,
    ) -> Result<Answer>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<String>> + Send + 'static,
    {
        let started = Instant::now();
        if layers.memory {
            if let Some(e) = self.memory_fresh(&key, rows) {
                return Ok(self.hit(e, Source::Memory, started));
            }
        }
        // Everything past a plain L1 hit, boxed: its state (locks, Redis, the fill) would
        // otherwise be part of every read's future, which the HTTP stack moves around.
        Box::pin(self.read_slow(key, ttl_secs, layers, rows, compute, started)).await
    }

    async fn read_slow<F, Fut>(
        &self,
        key: String,
        ttl_secs: u32,
        layers: Layers,
        rows: Option<&RowsBasis<'_>>,
        compute: F,
        started: Instant,
    ) -> Result<Answer>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<String>> + Send + 'static,
    {
        let deadline = started + self.stale_if_slow;
        let mut stale = None;
        let local_flight = if layers.memory {
            if let Some(e) = self.memory_entry(&key, rows).await {
                if e.is_fresh(now_ms()) {
                    return Ok(self.hit(e, Source::Memory, started));
                }
                stale = Some((e, Source::Memory));
            }
            let Some(guard) = until(&stale, deadline, self.locks.lock(&key)).await else {
                return self.serve_stale(stale);
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
                match until(&stale, deadline, wait).await {
                    Some(Some(e)) => {
                        if layers.memory {
                            self.memory.insert(key, e.clone());
                        }
                        return Ok(self.hit(e, Source::RedisCache, started));
                    }
                    Some(None) => {}
                    None => return self.serve_stale(stale),
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
        let Some(computed) = until(&stale, deadline, refresh).await else {
            return self.serve_stale(stale);
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
            Err(e) if e.is_outage() && stale.is_some() => self.serve_stale(stale),
            Err(e) => Err(e),
        }
    }

    /// The value past its TTL that stands in for one the database cannot give in time.
    /// Called with `stale` set (`until` has no deadline without it); a timeout otherwise.
    fn serve_stale(&self, stale: Option<(Arc<Entry>, Source)>) -> Result<Answer> {
        let (entry, source) = stale.ok_or(Error::Timeout)?;
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

    /// The counts `user` sees, through the cache (`ttl`) or from `compute` (`None`).
    pub async fn counts<F, Fut>(
        &self,
        ws: &WorkspaceId,
        user: &UserId,
        ttl: Option<u32>,
        compute: F,
    ) -> Result<Answer>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<String>> + Send + 'static,
    {
        let key = |gens| self.keys.counts(ws, gens, user);
        self.read(ws, &[GenerationScope::Counts], None, ttl, key, compute)
            .await
    }

    /// A page of `board`, through the cache (`ttl`) or from `compute` (`None`).
    pub async fn page<F, Fut>(
        &self,
        ws: &WorkspaceId,
        board: BoardId,
        q: &ContactListQuery,
        ttl: Option<u32>,
        compute: F,
    ) -> Result<Answer>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<String>> + Send + 'static,
    {
        let scopes = GenerationScope::of_page(board, q);
        let key = |gens| self.keys.contacts(ws, board, gens, q);
        self.read(ws, &scopes, Some(board), ttl, key, compute).await
    }

    /// A page of a conversation's messages, through the cache (`ttl`) or from `compute`
    /// (`None`). Only the head page depends on what was appended.
    pub async fn messages<F, Fut>(
        &self,
        ws: &WorkspaceId,
        q: &MessageQuery,
        ttl: Option<u32>,
        compute: F,
    ) -> Result<Answer>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<String>> + Send + 'static,
    {
        let scopes = GenerationScope::of_messages(q);
        let key = |gens| self.keys.messages(ws, gens, q);
        self.read(ws, &scopes, None, ttl, key, compute).await
    }

    /// A page of the workspace's conversation list, through the cache (`ttl`) or from
    /// `compute` (`None`).
    pub async fn conversations<F, Fut>(
        &self,
        ws: &WorkspaceId,
        q: &ConversationQuery,
        ttl: Option<u32>,
        compute: F,
    ) -> Result<Answer>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<String>> + Send + 'static,
    {
        let key = |gens| self.keys.conversations(ws, gens, q);
        let scopes = [GenerationScope::Conversations];
        self.read(ws, &scopes, None, ttl, key, compute).await
    }

    /// The key the counts of `user` are cached under now.
    pub async fn counts_key(&self, ws: &WorkspaceId, user: &UserId) -> String {
        let gens = self
            .generations
            .current(ws, &[GenerationScope::Counts])
            .await;
        self.keys.counts(ws, gens, user)
    }

    /// The key a page of `board` is cached under now.
    pub async fn page_key(&self, ws: &WorkspaceId, board: BoardId, q: &ContactListQuery) -> String {
        let gens = self
            .generations
            .current(ws, &GenerationScope::of_page(board, q))
            .await;
        self.keys.contacts(ws, board, gens, q)
    }

    /// Reads a key of `ws` depending on `scopes` (and, for a page, on its `board`'s rows)
    /// through every layer, or straight from the database when `ttl` is `None` (caching
    /// off for this workspace, feature or request).
    async fn read<F, Fut>(
        &self,
        ws: &WorkspaceId,
        scopes: &[GenerationScope],
        board: Option<BoardId>,
        ttl: Option<u32>,
        key: impl FnOnce(KeyGens) -> String,
        compute: F,
    ) -> Result<Answer>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<String>> + Send + 'static,
    {
        let Some(ttl) = ttl else {
            self.stats.db_query();
            self.traffic.read(ws, false);
            let started = Instant::now();
            let body = compute().await?;
            self.observe(Source::Database, started);
            return Ok(Answer {
                entry: Arc::new(Entry::new(body, 0, None)),
                source: Source::Database,
                status: CacheStatus::Bypass,
            });
        };
        let (gens, rows) = self.basis(ws, scopes, board).await;
        let answer = self
            .read_through(key(gens), ttl, Layers::ALL, rows.as_ref(), compute)
            .await;
        if let Ok(a) = &answer {
            let hit = matches!(a.status, CacheStatus::Hit | CacheStatus::Stale);
            self.traffic.read(ws, hit);
        }
        answer
    }

    /// What a read of `ws` depending on `scopes` (and, for a page, on its `board`'s rows)
    /// is keyed and checked by now.
    async fn basis<'a>(
        &self,
        ws: &'a WorkspaceId,
        scopes: &[GenerationScope],
        board: Option<BoardId>,
    ) -> (KeyGens, Option<RowsBasis<'a>>) {
        let gens = self.generations.current(ws, scopes).await;
        let rows = match board {
            Some(board) => Some(RowsBasis {
                ws,
                board,
                seq: self
                    .generations
                    .current(ws, &[GenerationScope::Rows(board)])
                    .await
                    .scope,
            }),
            None => None,
        };
        (gens, rows)
    }

    /// `user`'s counts if L1 holds them fresh and current under generations this instance
    /// knows now, else `None` (nothing counted): the whole of an L1 hit, without waiting
    /// on anything, for the HTTP layer's hit path.
    pub fn counts_in_memory(&self, ws: &WorkspaceId, user: &UserId) -> Option<Answer> {
        let started = Instant::now();
        let gens = self.generations.known(ws, &[GenerationScope::Counts])?;
        let key = self.keys.counts(ws, gens, user);
        self.in_memory(ws, &key, None, started)
    }

    /// As `counts_in_memory`, for a page of `board`; `tail` is `contacts_tail(q)`, which
    /// a caller that sees `q` again may keep.
    pub fn page_in_memory(
        &self,
        ws: &WorkspaceId,
        board: BoardId,
        q: &ContactListQuery,
        tail: &str,
    ) -> Option<Answer> {
        let started = Instant::now();
        let [gens, rows] = self.generations.known_each(
            ws,
            [
                &GenerationScope::of_page(board, q),
                &[GenerationScope::Rows(board)],
            ],
        )?;
        let rows = RowsBasis {
            ws,
            board,
            seq: rows.scope,
        };
        let key = self.keys.contacts_with_tail(ws, board, gens, tail);
        self.in_memory(ws, &key, Some(&rows), started)
    }

    /// Where page `q.page` of an offset list starts when this instance holds the page
    /// before it fresh under the generations it knows now: that page's `next_cursor`.
    /// Read from there, a refill costs what page 1 costs instead of skipping every row
    /// before it (the refills that follow a workspace's invalidation are mostly pages 2,
    /// 3, … of lists whose earlier pages were just refilled). That page's boundary is as
    /// current as its key: whatever adds, removes or reorders the list's rows bumps a
    /// generation of the key, and an in-place edit its `Rows` log records moves no row.
    pub fn continuation(
        &self,
        ws: &WorkspaceId,
        board: BoardId,
        q: &ContactListQuery,
    ) -> Option<Cursor> {
        if q.after.is_some() || q.page < 2 {
            return None;
        }
        let before = ContactListQuery {
            page: q.page - 1,
            ..q.clone()
        };
        let gens = self
            .generations
            .known(ws, &GenerationScope::of_page(board, &before))?;
        let e = self
            .memory
            .get(&self.keys.contacts(ws, board, gens, &before))?;
        if !e.is_fresh(now_ms()) {
            return None;
        }
        let next = ContactPage::next_cursor_in(&e.body())?;
        let after = Cursor::decode(&next, &q.binding(ws, board))
            .ok()
            .filter(|c| c.page == q.page)?;
        self.stats.page_read_on();
        Some(after)
    }

    fn in_memory(
        &self,
        ws: &WorkspaceId,
        key: &str,
        rows: Option<&RowsBasis<'_>>,
        started: Instant,
    ) -> Option<Answer> {
        let e = self.memory_fresh(key, rows)?;
        self.traffic.read(ws, true);
        Some(self.hit(e, Source::Memory, started))
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

/// `work`, or `None` once `deadline` passes, but only while a stale value could stand in:
/// without one, waiting is the only way to an answer (the request timeout still bounds it).
async fn until<S, T>(
    stale: &Option<S>,
    deadline: Instant,
    work: impl Future<Output = T>,
) -> Option<T> {
    if stale.is_none() {
        return Some(work.await);
    }
    tokio::time::timeout_at(deadline.into(), work).await.ok()
}

/// What a fill needs once the read that started it may be gone: owned handles to the
/// layers, and the locks the read held on the key (released when the fill ends).
struct Fill {
    memory: Option<Memory>,
    redis: Option<Arc<RedisCache>>,
    stats: Arc<Stats>,
    /// How long Redis keeps the value: its TTL and the stale grace.
    keep: Duration,
    /// For a page, the board's `Rows` generation its read started at.
    rows: Option<u64>,
    /// The cross-instance fill lock, when this read took it.
    _lock: Option<FillLock>,
    _local_flight: Option<OwnedMutexGuard<()>>,
}

impl Fill {
    async fn run(
        self,
        key: String,
        ttl_secs: u32,
        compute: impl Future<Output = Result<String>>,
    ) -> Result<Arc<Entry>> {
        let entry = compute.await.map(|body| {
            let rows = self
                .rows
                .and_then(|seq| Some(Rows::new(seq, ContactPage::ids_in(&body)?)));
            Arc::new(Entry::new(body, ttl_secs, rows))
        });
        if let Ok(entry) = &entry {
            if let Some(m) = &self.memory {
                m.insert(key.clone(), entry.clone());
            }
            if let Some(r) = &self.redis {
                if r.set(&key, &entry.encode(), self.keep).await.is_err() {
                    self.stats.error();
                }
            }
            self.stats.set();
        }
        entry
    }
}

/// A cross-instance fill lock this read took, and its token in it. Released when dropped,
/// however the fill ends (a failed or panicking query included), by compare-and-delete,
/// so a lock that expired and went to another instance is left alone; the release is
/// announced, waking the other instances' reads that wait on it.
struct FillLock {
    redis: Arc<RedisCache>,
    lock: String,
    owner: String,
    channel: String,
    announcement: String,
}

impl Drop for FillLock {
    fn drop(&mut self) {
        let redis = self.redis.clone();
        let [lock, owner, channel, announcement] = [
            &mut self.lock,
            &mut self.owner,
            &mut self.channel,
            &mut self.announcement,
        ]
        .map(std::mem::take);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let _ = redis.release(&lock, &owner, &channel, &announcement).await;
            });
        }
    }
}
