//! Generation counters: the O(1) invalidation. Each workspace has one Redis hash of
//! counters (workspace-wide, counts, several per board) that keys are built on; bumping
//! one makes every key built on it unreachable at once, in L1 and L2 alike.
//!
//! Each instance mirrors the fields of the hashes its reads use (HMGET, never the whole
//! hash: made-up board ids in invalidations may grow a hash, and cost nobody's reads
//! but the reads of those ids). A bump elsewhere is announced on pub/sub
//! and drops the mirror; `max_age` bounds how long a mirror is trusted should a message
//! be lost. While Redis is down the mirror is the authority: bumps apply locally and are
//! replayed to Redis when it answers again, so no instance keeps reading data older than
//! a write it acknowledged.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use shared::invalidation::Changed;
use shared::keys::{GenerationScope, Generations as KeyGens, KeySpace, Scopes};
use shared::{BoardId, WorkspaceId};

use super::acks::Acks;
use super::edits::{EditLog, LOG_KEEP, LOG_LEN};
use super::entry::Rows;
use super::events::Event;
use super::redis::{RedisCache, RedisFailure};
use super::topology::Layout;
use crate::FastHash;

/// Marks a generation an instance made up while it could not reach Redis. Redis's values
/// (an epoch in µs plus bumps) never come near it, so no key filled on a made-up value,
/// in L1 or in an L2 write Redis ran late, is met again once Redis answers; each made-up
/// value is otherwise random, so no two instances make up the same one.
const LOCAL: u64 = 1 << 63;

/// A generation no instance used and Redis will never hand out (see `LOCAL`).
fn made_up() -> u64 {
    LOCAL | (super::random_id() >> 1)
}

/// Whether Redis handed out `value` (not made up here during an outage).
fn from_redis(value: u64) -> bool {
    value & LOCAL == 0
}

/// How long after Redis lost a workspace's counters the keys built on the counters before
/// may stand in for their refills (see `Mirror::before`): long enough for the keys read
/// often to be refilled, and a bound on how long a stand-in is served should a write's
/// announcement have been lost along with the hash.
const STAND_IN_FOR: Duration = Duration::from_secs(10);

/// The hash field holding when Redis created the hash (`redis.rs`, `epoch!`): it changes
/// only when Redis lost the hash, which moves every counter without a write.
const EPOCH: &str = "epoch";

/// Fields of one workspace a mirror refreshes together; past this, a refresh fetches
/// only what the read in hand needs and the mirror starts over with those.
const MAX_MIRRORED: usize = 1024;

/// A mirror's counters by field name; every read looks several up, hence the fast hasher.
type Fields = HashMap<String, u64, FastHash>;

struct Mirror {
    /// The fields read so far (a counter Redis lacks is held as its hash's epoch).
    fields: Fields,
    /// `None` until Redis has been read for this workspace.
    fetched: Option<Instant>,
    /// Moved by this instance where Redis could not see it (during an outage), so it may
    /// be ahead of Redis without Redis having lost anything.
    moved_here: bool,
    /// The highest workspace counter Redis handed this instance: a move made after an
    /// outage goes past it, should Redis have lost bumps meanwhile (a failover).
    seen: u64,
    /// The fields before they last moved without a write (Redis lost its hash: its epoch
    /// changed), and when. Such a move makes every key of the workspace miss at once; L1's
    /// values under the keys before it stand in, marked stale, for refills slower than a
    /// moment, so readers do not all queue behind them (`before_each`). A counter that grew
    /// is a write, even unannounced: nothing from before it stands in.
    before: Option<(Fields, Instant)>,
    /// An announcement made this mirror forget its fields: they are moving for a write,
    /// and nothing built on them may stand in for what the write changed.
    announced: bool,
}

impl Mirror {
    fn empty() -> Self {
        Self {
            fields: Fields::default(),
            fetched: None,
            moved_here: false,
            seen: 0,
            before: None,
            announced: false,
        }
    }

    /// The fields are moving for no write this instance heard of: keep them as `before`.
    fn keep_before(&mut self) {
        self.before = (!self.announced).then(|| (self.fields.clone(), Instant::now()));
    }

    /// The fields move for a write: nothing from before it may stand in.
    fn written(&mut self) {
        self.before = None;
    }
}

pub struct Generations {
    keys: KeySpace,
    /// `None`: this instance's counters are the only ones.
    redis: Option<Arc<RedisCache>>,
    max_age: Duration,
    mirrors: RwLock<HashMap<WorkspaceId, Mirror, FastHash>>,
    pending: Mutex<HashSet<(WorkspaceId, GenerationScope)>>,
    /// When this instance last heard each workspace change (see `changed_at`).
    changed: Mutex<Changes>,
    /// Counts `forget`s: a Redis read that started before one may return generations
    /// older than the announcement, so it must not be stored as the mirror.
    forgets: AtomicU64,
    /// Counts this instance's bumps, for the same reason (see `store_mirror`).
    bumps: AtomicU64,
    /// Workspaces whose expired mirror one read is refreshing; the others meanwhile use
    /// the expired copy instead of queueing on Redis (which, were Redis down, would add
    /// its timeout to every read once a second).
    refreshing: Mutex<HashSet<WorkspaceId>>,
    acks: Acks,
    edits: EditLog,
    /// Instances listed as running (`invalidation::register`), 0 until known.
    listeners: AtomicU64,
}

/// What a mirror refresh notes as it sends its Redis read (see `store_mirror`).
struct ReadStart {
    forgets: u64,
    bumps: u64,
    sent: Instant,
}

/// Clears a workspace's refreshing mark however the refreshing read ends (a cancelled
/// request included).
struct Refreshing<'a> {
    set: &'a Mutex<HashSet<WorkspaceId>>,
    ws: WorkspaceId,
}

impl Drop for Refreshing<'_> {
    fn drop(&mut self) {
        let mut set = self.set.lock().unwrap_or_else(|p| p.into_inner());
        set.remove(&self.ws);
    }
}

/// What a bump did, for the invalidation report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bump {
    pub generation: u64,
    /// Whether Redis took the bump (else it is queued and replayed).
    pub shared: bool,
    /// Whether the other instances were told through Redis (else the caller tells them
    /// another way: `invalidation::changed`).
    pub announced: bool,
    /// Instances that received the announcement (on a Cluster, at least those listed as
    /// running).
    pub notified: u64,
    /// Instances that applied it before the bump returned (all of them but the slow).
    pub acknowledged: u64,
}

impl Generations {
    pub fn new(keys: KeySpace, max_age: Duration, redis: Option<Arc<RedisCache>>) -> Self {
        Self {
            keys,
            redis,
            max_age,
            mirrors: RwLock::default(),
            pending: Mutex::default(),
            changed: Mutex::default(),
            forgets: AtomicU64::new(0),
            bumps: AtomicU64::new(0),
            refreshing: Mutex::default(),
            acks: Acks::default(),
            edits: EditLog::default(),
            listeners: AtomicU64::new(0),
        }
    }

    pub fn set_listeners(&self, listed: u64) {
        self.listeners.store(listed, Ordering::Release);
    }

    /// How many acknowledgements a bump announced to `notified` subscribers waits for:
    /// on a Cluster, PUBLISH counts only the receiving node's subscribers, so the
    /// instances listed as running count too.
    fn expected_acks(&self, redis: &RedisCache, notified: u64) -> u64 {
        match redis.layout() {
            Layout::Cluster(_) => notified.max(self.listeners.load(Ordering::Acquire)),
            _ => notified,
        }
    }

    fn mark_changed(&self, ws: &WorkspaceId) {
        let mut changed = self.changed.lock().unwrap_or_else(|p| p.into_inner());
        changed.mark(ws);
    }

    /// When this instance last heard `ws` change: a bump here, an announcement, or new
    /// values (or a first read) from Redis, at the latest its start. Every generation a
    /// key is built on was seen after the write it counts committed, so a fill that reads
    /// a copy holding what the primary had written by then reads that write.
    pub fn changed_at(&self, ws: &WorkspaceId) -> Instant {
        let changed = self.changed.lock().unwrap_or_else(|p| p.into_inner());
        changed.at(ws)
    }

    /// The fields a refresh for `scopes` reads: those the mirror already holds, so it stays
    /// whole, and those `scopes` need.
    fn to_fetch(&self, ws: &WorkspaceId, scopes: &[GenerationScope]) -> Vec<String> {
        let needed = needed_fields(scopes);
        let mirrors = self.mirrors.read().unwrap_or_else(|p| p.into_inner());
        let held = mirrors
            .get(ws)
            .map(|m| &m.fields)
            .filter(|f| f.len() + needed.len() <= MAX_MIRRORED);
        let Some(held) = held else {
            return needed;
        };
        let mut fields: Vec<String> = held.keys().cloned().collect();
        fields.extend(needed.into_iter().filter(|f| !held.contains_key(f)));
        fields
    }

    /// Stores what a Redis read that `began` returned as the mirror, unless an
    /// announcement was heard since it began (it may predate the bump announced). Both
    /// checks are made under the mirror's lock, which `forget` and `set_local` also take,
    /// so neither can land between a check and the store. When this instance bumped
    /// meanwhile, each field keeps the larger value (counters only grow); otherwise
    /// Redis's values replace the mirror's, as the authority they are. The mirror's age
    /// counts from when the read was sent: one fetched before an announcement then
    /// expires within `max_age` of it, however slow Redis was to answer. A mirror that
    /// learns new values this way (its announcement was lost, or came while pub/sub was
    /// down) marks the workspace changed, so fills read the primary. False, with nothing
    /// stored, when a bump of `ws` that Redis refused is queued: this instance's values
    /// stay the authority (`add_missing`). A bump queues before it moves the mirror, so
    /// one that Redis refuses after this check moves the stored mirror on.
    fn store_mirror(&self, ws: &WorkspaceId, mut fields: Fields, began: &ReadStart) -> bool {
        let mut mirrors = self.mirrors.write().unwrap_or_else(|p| p.into_inner());
        if self.has_pending(ws) {
            return false;
        }
        if self.forgets.load(Ordering::Acquire) != began.forgets {
            return true;
        }
        let mut before = None;
        if let Some(old) = mirrors.get_mut(ws) {
            let bumped = self.bumps.load(Ordering::Acquire) != began.bumps;
            if bumped {
                // Made-up values never win over Redis's (see `LOCAL`).
                for (field, value) in old.fields.iter().filter(|(_, v)| from_redis(**v)) {
                    if let Some(merged) = fields.get_mut(field) {
                        *merged = (*merged).max(*value);
                    }
                }
                old.written();
            }
            if old
                .fields
                .iter()
                .any(|(f, v)| fields.get(f).is_some_and(|n| n != v))
            {
                self.mark_changed(ws);
                let lost = old
                    .fields
                    .get(EPOCH)
                    .is_some_and(|was| fields.get(EPOCH).is_some_and(|now| now != was));
                if !bumped && lost {
                    old.keep_before();
                } else {
                    old.written();
                }
            }
            before = old
                .before
                .take()
                .filter(|(_, at)| at.elapsed() < STAND_IN_FOR);
            let workspace = GenerationScope::Workspace.field();
            if old.fields.get(&workspace) != fields.get(&workspace) {
                self.edits.clear_workspace(ws);
            }
        } else {
            self.mark_changed(ws);
        }
        let from_here = fields
            .get(&GenerationScope::Workspace.field())
            .copied()
            .filter(|v| from_redis(*v))
            .unwrap_or(0);
        let seen = mirrors.get(ws).map_or(0, |m| m.seen).max(from_here);
        mirrors.insert(
            ws.clone(),
            Mirror {
                fields,
                fetched: Some(began.sent),
                moved_here: false,
                seen,
                before,
                announced: false,
            },
        );
        true
    }

    fn read_start(&self) -> ReadStart {
        ReadStart {
            forgets: self.forgets.load(Ordering::Acquire),
            bumps: self.bumps.load(Ordering::Acquire),
            sent: Instant::now(),
        }
    }

    /// `current` if this instance knows it without asking Redis (its mirror is fresh, or
    /// it has no Redis), else `None`.
    pub fn known(&self, ws: &WorkspaceId, scopes: &[GenerationScope]) -> Option<KeyGens> {
        self.known_each(ws, [Scopes::Listed(scopes)])
            .map(|[gens]| gens)
    }

    /// `known` for each of several sets of scopes, from one look at the mirror (a page
    /// hit needs its key's and its rows' generations): this runs on every read, so the
    /// mirror is read in place, not copied. Without Redis a missing counter is 0, since
    /// this instance's counters are the only ones; with Redis the mirror must be fresh
    /// and hold every counter asked for.
    pub fn known_each<const N: usize>(
        &self,
        ws: &WorkspaceId,
        scopes: [Scopes<'_>; N],
    ) -> Option<[KeyGens; N]> {
        let mirrors = self.mirrors.read().unwrap_or_else(|p| p.into_inner());
        let m = mirrors.get(ws);
        if self.redis.is_none() {
            return Some(scopes.map(|s| {
                m.map(|m| KeyGens::from_fields_of(&m.fields, s))
                    .unwrap_or_default()
            }));
        }
        let m = m.filter(|m| m.fetched.is_some_and(|t| t.elapsed() < self.max_age))?;
        each_known(&m.fields, scopes)
    }

    /// `known_each` for the fields `ws` had before Redis lost its hash, while keys built
    /// on them may stand in (see `Mirror::before`).
    pub fn before_each<const N: usize>(
        &self,
        ws: &WorkspaceId,
        scopes: [Scopes<'_>; N],
    ) -> Option<[KeyGens; N]> {
        let mirrors = self.mirrors.read().unwrap_or_else(|p| p.into_inner());
        let (fields, at) = mirrors.get(ws)?.before.as_ref()?;
        (at.elapsed() < STAND_IN_FOR).then(|| each_known(fields, scopes))?
    }

    /// The generations a key of `ws` depending on `scopes` is built on.
    pub async fn current(&self, ws: &WorkspaceId, scopes: &[GenerationScope]) -> KeyGens {
        if let Some(gens) = self.known(ws, scopes) {
            return gens;
        }
        match self.redis.as_deref() {
            // Boxed: the Redis read is once a second at most, and its state would
            // otherwise weigh on every read's future.
            Some(redis) => Box::pin(self.refresh(redis, ws, scopes)).await,
            None => KeyGens::default(),
        }
    }

    /// The mirror of `ws` expired or was forgotten: reads Redis (one read at a time per
    /// workspace; the others use the expired mirror meanwhile).
    async fn refresh(
        &self,
        redis: &RedisCache,
        ws: &WorkspaceId,
        scopes: &[GenerationScope],
    ) -> KeyGens {
        let refreshing = self.mark_refreshing(ws);
        if refreshing.is_none() {
            if let Some(gens) = self.read_expired(ws, scopes) {
                return gens;
            }
        }
        self.replay_pending().await;
        let began = self.read_start();
        let wanted = self.to_fetch(ws, scopes);
        match redis.generations(&self.keys.generations(ws), &wanted).await {
            Ok(values) => {
                let mut fields: Fields = wanted.into_iter().zip(values).collect();
                if self.has_pending(ws) {
                    return self.add_missing(ws, fields, scopes);
                }
                if let Some(seen) = self.moved_here(ws) {
                    // Moved on here during an outage: Redis's values may predate a change
                    // this instance heard of, so the workspace moves on in Redis first.
                    match self.move_past(redis, ws, seen).await {
                        Ok(moved) => {
                            fields.insert(GenerationScope::Workspace.field(), moved);
                            self.settle(ws);
                        }
                        Err(_) => {
                            return self
                                .read_expired(ws, scopes)
                                .unwrap_or_else(|| self.distrust(ws, scopes))
                        }
                    }
                } else if let Some(seen) = self.went_back(ws, &fields, &began) {
                    if !self.advance(redis, ws, seen, &mut fields).await {
                        return self.distrust(ws, scopes);
                    }
                }
                let gens = KeyGens::from_fields(&fields, scopes);
                if self.store_mirror(ws, fields.clone(), &began) {
                    gens
                } else {
                    self.add_missing(ws, fields, scopes)
                }
            }
            Err(_) => self
                .read_expired(ws, scopes)
                .unwrap_or_else(|| self.distrust(ws, scopes)),
        }
    }

    /// The workspace counter this instance saw, when Redis now answers a lower value for
    /// any counter the mirror holds: counters only grow, so Redis lost bumps (a failover
    /// to a replica that missed them, a hash restored from an old snapshot). `None` when
    /// nothing went back, when this instance bumped or heard of a bump since the read
    /// `began`, or holds a read sent after it (the mirror may then be ahead of this read
    /// without Redis having lost anything), or when the mirror moved here during an
    /// outage (Redis never saw those values; a distrusted copy is simply replaced, and
    /// bumps kept here are replayed by `replay_pending`).
    fn went_back(&self, ws: &WorkspaceId, fields: &Fields, began: &ReadStart) -> Option<u64> {
        // Under the lock that `set_local` and `forget` take after counting: a bump or a
        // newer read whose values are in the mirror here is counted, or newer than `began`.
        let mirrors = self.mirrors.read().unwrap_or_else(|p| p.into_inner());
        let since = (
            self.bumps.load(Ordering::Acquire),
            self.forgets.load(Ordering::Acquire),
        );
        if since != (began.bumps, began.forgets) {
            return None;
        }
        let old = mirrors
            .get(ws)
            .filter(|m| !m.moved_here && m.fetched.is_none_or(|t| t <= began.sent))?;
        let workspace = GenerationScope::Workspace.field();
        let seen = old.seen;
        let lost = old
            .fields
            .iter()
            .filter(|(_, v)| from_redis(**v))
            .any(|(f, v)| fields.get(f).is_some_and(|now| now < v));
        let moved_on = fields.get(&workspace).is_some_and(|now| *now > seen);
        (lost && !moved_on).then_some(seen)
    }

    /// Moves the workspace counter in Redis past `seen`, so that every key built on
    /// counters Redis has lost is unreachable (the counters below it may count through
    /// the same values again), and tells the other instances. False when Redis did not
    /// take it (the caller moves on locally, as in an outage).
    async fn advance(
        &self,
        redis: &RedisCache,
        ws: &WorkspaceId,
        seen: u64,
        fields: &mut Fields,
    ) -> bool {
        self.edits.clear_workspace(ws);
        self.mark_changed(ws);
        let Ok(moved) = self.move_past(redis, ws, seen).await else {
            return false;
        };
        tracing::warn!(workspace = %ws, seen, moved, "generation counters went back in Redis; workspace moved past them");
        fields.insert(GenerationScope::Workspace.field(), moved);
        true
    }

    /// Moves `ws`'s workspace counter in Redis past both its value and `seen`, and tells
    /// the other instances; the new value.
    async fn move_past(
        &self,
        redis: &RedisCache,
        ws: &WorkspaceId,
        seen: u64,
    ) -> Result<u64, RedisFailure> {
        let moved = redis.advance(&self.keys.generations(ws), seen).await?;
        let announcement = Event::Generation(ws.clone(), None).encode();
        let _ = redis.publish(&self.keys.channel(), &announcement).await;
        Ok(moved)
    }

    /// Whether a page of `board` cached with `rows` is still right at the board's `Rows`
    /// generation `now` (see `edits.rs`).
    pub async fn rows_unchanged(
        &self,
        ws: &WorkspaceId,
        board: BoardId,
        rows: &Rows,
        now: u64,
    ) -> bool {
        self.edits
            .unchanged(self.redis.as_deref(), &self.keys, ws, board, rows, now)
            .await
    }

    /// This instance's bumps of `ws` wait to be replayed, so its mirror stays the
    /// authority; Redis only adds the fields it lacked.
    fn add_missing(&self, ws: &WorkspaceId, fields: Fields, scopes: &[GenerationScope]) -> KeyGens {
        self.mark_changed(ws);
        let mut mirrors = self.mirrors.write().unwrap_or_else(|p| p.into_inner());
        let m = mirrors.entry(ws.clone()).or_insert_with(Mirror::empty);
        for (field, value) in fields {
            m.fields.entry(field).or_insert(value);
        }
        KeyGens::from_fields(&m.fields, scopes)
    }

    /// Redis cannot be asked, and the mirror is known to be outdated (an announcement made
    /// this instance forget it) or was never read: rather than trust it, the workspace's
    /// generation moves on locally, so nothing this instance cached under the old one is
    /// served, and the workspace counts as changed (fills read the primary). The moved
    /// mirror is then this instance's authority until Redis answers, like a mirror that
    /// merely expired during the outage (nothing says that one is outdated). A mirror
    /// lacking a field the read needs is treated the same way (the field counts from 0).
    fn distrust(&self, ws: &WorkspaceId, scopes: &[GenerationScope]) -> KeyGens {
        self.mark_changed(ws);
        let mut mirrors = self.mirrors.write().unwrap_or_else(|p| p.into_inner());
        let m = mirrors.entry(ws.clone()).or_insert_with(Mirror::empty);
        // What it held may predate a write it missed: nothing of it stands in. What is
        // filled on the made-up values comes after any write it could have heard of.
        m.written();
        m.announced = false;
        for field in needed_fields(scopes).into_iter().filter(|f| f != EPOCH) {
            m.fields.entry(field).or_insert(0);
        }
        m.fields
            .insert(GenerationScope::Workspace.field(), made_up());
        m.fetched = Some(Instant::now());
        m.moved_here = true;
        KeyGens::from_fields(&m.fields, scopes)
    }

    /// Makes this read the one refreshing `ws`; `None` when another read already is.
    fn mark_refreshing(&self, ws: &WorkspaceId) -> Option<Refreshing<'_>> {
        let mut set = self.refreshing.lock().unwrap_or_else(|p| p.into_inner());
        set.insert(ws.clone()).then(|| Refreshing {
            set: &self.refreshing,
            ws: ws.clone(),
        })
    }

    /// An expired (but not forgotten) mirror's generations, if it holds each of `scopes`.
    fn read_expired(&self, ws: &WorkspaceId, scopes: &[GenerationScope]) -> Option<KeyGens> {
        let mirrors = self.mirrors.read().unwrap_or_else(|p| p.into_inner());
        let m = mirrors.get(ws).filter(|m| m.fetched.is_some())?;
        KeyGens::from_known(&m.fields, Scopes::Listed(scopes))
    }

    /// Whether bumps wait for Redis.
    pub fn any_pending(&self) -> bool {
        let pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        !pending.is_empty()
    }

    fn has_pending(&self, ws: &WorkspaceId) -> bool {
        let pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        pending.iter().any(|(w, _)| w == ws)
    }

    /// Bumps what `change` makes stale, together (one Redis step, one announcement), in
    /// Redis when it answers, else locally with a replay queued; an edit is logged with
    /// its board's new `Rows`. The bump reports the first scope's new generation.
    pub async fn bump(&self, ws: &WorkspaceId, change: &Changed) -> Bump {
        let redis = self.redis.as_deref();
        self.mark_changed(ws);
        let scopes = change.scopes();
        let edit = match change {
            Changed::Edited(e) => Some((e.board, e.contact)),
            _ => None,
        };
        if let Some(redis) = redis {
            let fields: Vec<String> = scopes.iter().map(|s| s.field()).collect();
            let log = edit.map(|(b, _)| self.keys.edits(ws, b));
            let logged = log
                .as_deref()
                .zip(edit)
                .map(|(log, (_, contact))| (log, LOG_LEN, LOG_KEEP, contact));
            let key = self.keys.generations(ws);
            match redis.hincr_all(&key, &fields, logged).await {
                Ok(values) => {
                    for (scope, value) in scopes.iter().zip(&values) {
                        self.set_local(ws, *scope, *value);
                    }
                    if let (Some((board, contact)), Some(seq)) = (edit, values.first()) {
                        self.edits.record(ws, board, *seq, contact);
                    }
                    let pending = self.acks.register();
                    let announcement = Event::Generation(ws.clone(), Some(pending.id));
                    let announced = redis
                        .publish(&self.keys.channel(), &announcement.encode())
                        .await;
                    let notified = announced
                        .as_ref()
                        .map_or(0, |n| self.expected_acks(redis, *n));
                    let acknowledged = pending.wait(notified, self.max_age).await;
                    return Bump {
                        generation: values.first().copied().unwrap_or_default(),
                        shared: true,
                        announced: announced.is_ok(),
                        notified,
                        acknowledged,
                    };
                }
                // The write is acknowledged on this bump alone: the other instances read
                // the old generations until the replay reaches Redis.
                Err(e) => {
                    tracing::warn!(workspace = %ws, error = %e, "generation bump kept locally until Redis takes it")
                }
            }
            let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            pending.extend(scopes.iter().map(|s| (ws.clone(), *s)));
        }
        let generations: Vec<u64> = scopes.iter().map(|s| self.bump_local(ws, *s)).collect();
        // Without Redis this instance's counters are the only ones, so its log is whole.
        // During an outage they are not (another instance may count the same numbers),
        // so the edit is not logged and pages of the board are refilled.
        if let (None, Some((board, contact)), Some(seq)) = (redis, edit, generations.first()) {
            self.edits.record(ws, board, *seq, contact);
        }
        Bump {
            generation: generations.first().copied().unwrap_or_default(),
            shared: false,
            announced: false,
            notified: 0,
            acknowledged: 0,
        }
    }

    fn set_local(&self, ws: &WorkspaceId, scope: GenerationScope, value: u64) {
        self.bumps.fetch_add(1, Ordering::AcqRel);
        let mut mirrors = self.mirrors.write().unwrap_or_else(|p| p.into_inner());
        if let Some(m) = mirrors.get_mut(ws) {
            m.written();
            if scope == GenerationScope::Workspace {
                m.seen = m.seen.max(value);
            }
            let field = m.fields.entry(scope.field()).or_default();
            *field = (*field).max(value);
        }
    }

    /// Without Redis, counts on; with Redis down, makes a value up (see `LOCAL`): another
    /// instance may count this one's values meanwhile.
    fn bump_local(&self, ws: &WorkspaceId, scope: GenerationScope) -> u64 {
        let mut mirrors = self.mirrors.write().unwrap_or_else(|p| p.into_inner());
        let m = mirrors.entry(ws.clone()).or_insert_with(Mirror::empty);
        m.moved_here = true;
        m.written();
        let field = m.fields.entry(scope.field()).or_default();
        *field = match self.redis {
            Some(_) => made_up(),
            None => *field + 1,
        };
        *field
    }

    /// `ws` moved on in Redis past what this instance made up: its mirror is Redis's
    /// again (read anew should this read's copy not be stored).
    fn settle(&self, ws: &WorkspaceId) {
        let mut mirrors = self.mirrors.write().unwrap_or_else(|p| p.into_inner());
        if let Some(m) = mirrors.get_mut(ws) {
            m.moved_here = false;
            m.fetched = None;
        }
    }

    /// When this instance moved `ws` on where Redis could not see it, the highest
    /// workspace counter Redis had handed it.
    fn moved_here(&self, ws: &WorkspaceId) -> Option<u64> {
        let mirrors = self.mirrors.read().unwrap_or_else(|p| p.into_inner());
        mirrors.get(ws).filter(|m| m.moved_here).map(|m| m.seen)
    }

    /// Sends bumps made while Redis was down. Several bumps of a scope during the outage
    /// would reach Redis as one, so each such workspace moves on whole: its workspace
    /// counter goes past Redis's (and the last value this instance had from Redis), to a
    /// value nobody used. Each is removed only once Redis took it. Reads
    /// call it, and so does a background task (`invalidation::replay`), so an idle
    /// instance's queued bumps still reach the others once Redis is back.
    pub async fn replay_pending(&self) {
        let Some(redis) = self.redis.as_deref() else {
            return;
        };
        let queued: HashSet<WorkspaceId> = {
            let pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            pending.iter().map(|(ws, _)| ws.clone()).collect()
        };
        for ws in queued {
            let seen = {
                let mirrors = self.mirrors.read().unwrap_or_else(|p| p.into_inner());
                mirrors.get(&ws).map_or(0, |m| m.seen)
            };
            if self.move_past(redis, &ws, seen).await.is_err() {
                return;
            }
            // Still queued until now, so reads kept this instance's copy meanwhile.
            let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            pending.retain(|(w, _)| *w != ws);
            drop(pending);
            self.forget(&ws);
        }
    }

    /// Another instance applied announcement `id` (see `acks.rs`).
    pub fn acked(&self, id: u64) {
        self.acks.received(id);
    }

    /// Another instance bumped `ws`: the next read asks Redis.
    pub fn forget(&self, ws: &WorkspaceId) {
        self.mark_changed(ws);
        let mut mirrors = self.mirrors.write().unwrap_or_else(|p| p.into_inner());
        self.forgets.fetch_add(1, Ordering::AcqRel);
        if let Some(m) = mirrors.get_mut(ws) {
            m.fetched = None;
            m.announced = true;
            m.written();
        }
    }

    /// Announcements may have been missed (pub/sub reconnected): distrust every mirror.
    pub fn forget_all(&self) {
        self.forgets.fetch_add(1, Ordering::AcqRel);
        self.edits.clear();
        for ws in self.known_workspaces() {
            self.mark_changed(&ws);
        }
        let mut mirrors = self.mirrors.write().unwrap_or_else(|p| p.into_inner());
        for m in mirrors.values_mut() {
            m.fetched = None;
        }
    }

    /// The workspaces this instance has cached anything for.
    pub fn known_workspaces(&self) -> Vec<WorkspaceId> {
        let mirrors = self.mirrors.read().unwrap_or_else(|p| p.into_inner());
        mirrors.keys().cloned().collect()
    }
}

/// When workspaces last changed, bounded: past `MAX_CHANGES` workspaces the map starts
/// over and every workspace counts as changed when the latest of them did (a fill may
/// then check the replica needlessly, never skip a check it needs). Every workspace
/// counts as changed when the process started: it cannot know what changed before.
struct Changes {
    at: HashMap<WorkspaceId, Instant, FastHash>,
    floor: Instant,
}

impl Default for Changes {
    fn default() -> Self {
        Self {
            at: HashMap::default(),
            floor: Instant::now(),
        }
    }
}

const MAX_CHANGES: usize = 4096;

impl Changes {
    fn mark(&mut self, ws: &WorkspaceId) {
        let now = Instant::now();
        if self.at.len() >= MAX_CHANGES && !self.at.contains_key(ws) {
            self.floor = self.at.values().copied().fold(self.floor, Instant::max);
            self.at.clear();
        }
        self.at.insert(ws.clone(), now);
    }

    fn at(&self, ws: &WorkspaceId) -> Instant {
        self.at.get(ws).copied().unwrap_or(self.floor)
    }
}

/// The generations of keys on each of `scopes`, if `fields` holds every counter they need.
fn each_known<const N: usize>(fields: &Fields, scopes: [Scopes<'_>; N]) -> Option<[KeyGens; N]> {
    let mut known = [KeyGens::default(); N];
    for (gens, scopes) in known.iter_mut().zip(scopes) {
        *gens = KeyGens::from_known(fields, scopes)?;
    }
    Some(known)
}

/// The fields a refresh for a key depending on `scopes` reads: those it is built on, and
/// the hash's epoch (`EPOCH`).
fn needed_fields(scopes: &[GenerationScope]) -> Vec<String> {
    let mut fields = vec![GenerationScope::Workspace.field(), EPOCH.to_owned()];
    for field in scopes.iter().map(|s| s.field()) {
        if !fields.contains(&field) {
            fields.push(field);
        }
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ws() -> WorkspaceId {
        WorkspaceId::parse("15213").expect("valid")
    }

    fn gens() -> Generations {
        Generations::new(
            KeySpace::new("t").expect("valid"),
            Duration::from_secs(1),
            None,
        )
    }

    #[tokio::test]
    async fn without_redis_a_bump_changes_only_its_own_scope() {
        let g = gens();
        let board = [GenerationScope::Board(BoardId(1))];
        let other = [GenerationScope::Board(BoardId(2))];
        let before = (
            g.current(&ws(), &board).await,
            g.current(&ws(), &other).await,
        );
        g.bump(&ws(), &Changed::Boards(vec![BoardId(1)])).await;
        assert_ne!(g.current(&ws(), &board).await, before.0);
        assert_eq!(g.current(&ws(), &other).await, before.1);
    }

    #[tokio::test]
    async fn a_workspace_bump_changes_every_scope() {
        let g = gens();
        let counts = [GenerationScope::Counts];
        let before = g.current(&ws(), &counts).await;
        g.bump(&ws(), &Changed::Workspace).await;
        assert_ne!(g.current(&ws(), &counts).await, before);
    }

    fn redis_url() -> String {
        std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
    }

    fn redis() -> Arc<RedisCache> {
        Arc::new(RedisCache::new(&redis_url(), Duration::from_secs(2)).expect("client"))
    }

    /// A key space of this test's own on the shared Redis, its workspace's hash empty.
    async fn fresh_keys(redis: &RedisCache, name: &str) -> KeySpace {
        let keys = KeySpace::new(&format!("{name}{}", std::process::id())).expect("valid");
        redis.del(&keys.generations(&ws())).await.expect("redis");
        keys
    }

    /// Real Redis (`REDIS_URL`): a hash grown by fields nobody reads (made-up board ids)
    /// costs a read nothing; the mirror holds the fields reads asked for, and they are right.
    #[tokio::test]
    async fn a_mirror_reads_only_the_fields_its_keys_need() {
        let redis = redis();
        let keys = fresh_keys(&redis, "gens").await;
        let key = keys.generations(&ws());
        let junk: Vec<String> = (1000..6000).map(|b| format!("b{b}")).collect();
        redis.hincr_all(&key, &junk, None).await.expect("redis");
        let counted = ["ws".to_owned(), "counts".to_owned(), "b7".to_owned()];
        for _ in 0..3 {
            redis
                .hincr_all(&key, &counted[1..], None)
                .await
                .expect("redis");
        }
        let ws_gen = redis
            .hincr_all(&key, &counted[..1], None)
            .await
            .expect("redis")[0];
        let epoch = ws_gen - 1;
        let g = Generations::new(keys, Duration::from_secs(60), Some(redis.clone()));

        for (scope, value) in [
            (GenerationScope::Counts, epoch + 3),
            (GenerationScope::Board(BoardId(7)), epoch + 3),
            (GenerationScope::Board(BoardId(8)), epoch),
        ] {
            let gens = g.current(&ws(), &[scope]).await;
            assert_eq!((gens.workspace, gens.scope), (ws_gen, value), "{scope:?}");
        }
        let mut held: Vec<String> = {
            let mirrors = g.mirrors.read().expect("lock");
            mirrors[&ws()].fields.keys().cloned().collect()
        };
        held.sort();
        assert_eq!(held, ["b7", "b8", "counts", "epoch", "ws"]);
        redis.del(&key).await.expect("redis");
    }

    /// Real Redis: whatever Redis loses of a workspace's hash (a restart, an eviction, a
    /// FLUSHALL), the generations after the loss are above every one before it, so no
    /// key built before it is met again, in this instance or another.
    #[tokio::test]
    async fn a_lost_hash_comes_back_above_every_generation_it_had() {
        let redis = redis();
        let keys = fresh_keys(&redis, "lost").await;
        let scopes = [GenerationScope::Counts];
        let g = Generations::new(keys.clone(), Duration::ZERO, Some(redis.clone()));
        for _ in 0..5 {
            g.bump(&ws(), &Changed::Workspace).await;
            g.bump(&ws(), &Changed::Boards(vec![BoardId(1)])).await;
        }
        let before = g.current(&ws(), &scopes).await;
        let board_before = g
            .current(&ws(), &[GenerationScope::Board(BoardId(1))])
            .await;

        redis.del(&keys.generations(&ws())).await.expect("redis");
        let other = Generations::new(keys.clone(), Duration::ZERO, Some(redis.clone()));
        for gens in [&g, &other] {
            let after = gens.current(&ws(), &scopes).await;
            assert!(
                after.workspace > before.workspace,
                "{after:?} after {before:?}"
            );
        }
        g.bump(&ws(), &Changed::Boards(vec![BoardId(1)])).await;
        let board_after = other
            .current(&ws(), &[GenerationScope::Board(BoardId(1))])
            .await;
        assert!(board_after.workspace > board_before.workspace);
        assert!(
            board_after.scope > board_before.scope,
            "a bump after the loss"
        );
        redis.del(&keys.generations(&ws())).await.expect("redis");
    }

    /// Real Redis: a hash that went back (a failover to a replica that missed the last
    /// bumps) is moved past what this instance saw, for every instance.
    #[tokio::test]
    async fn a_hash_that_went_back_is_moved_past_what_was_seen() {
        let redis = redis();
        let keys = fresh_keys(&redis, "back").await;
        let key = keys.generations(&ws());
        let scopes = [GenerationScope::Counts];
        let g = Generations::new(keys.clone(), Duration::ZERO, Some(redis.clone()));
        let replica = g.current(&ws(), &scopes).await;
        for _ in 0..3 {
            g.bump(&ws(), &Changed::Workspace).await;
        }
        let seen = g.current(&ws(), &scopes).await;
        let client = redis::Client::open(redis_url()).expect("client");
        let mut conn = client
            .get_multiplexed_async_connection()
            .await
            .expect("redis");
        redis::cmd("HSET")
            .arg(&key)
            .arg("ws")
            .arg(replica.workspace)
            .arg("counts")
            .arg(replica.scope)
            .query_async::<()>(&mut conn)
            .await
            .expect("redis");
        let after = g.current(&ws(), &scopes).await;
        assert!(after.workspace > seen.workspace, "{after:?} after {seen:?}");
        let shared = redis
            .generations(&key, &["ws".to_owned()])
            .await
            .expect("redis");
        assert_eq!(
            shared[0], after.workspace,
            "moved in Redis, for every instance"
        );
        redis.del(&key).await.expect("redis");
    }

    /// The refresh/announcement window: an announcement heard after a Redis read was sent
    /// keeps that read from becoming the mirror, and a mirror's age counts from when its
    /// read was sent.
    #[tokio::test]
    async fn a_read_older_than_an_announcement_or_the_max_age_is_not_trusted() {
        let redis = Arc::new(
            RedisCache::new("redis://127.0.0.1:1", Duration::from_millis(50)).expect("lazy"),
        );
        let g = Generations::new(
            KeySpace::new("t").expect("valid"),
            Duration::from_secs(1),
            Some(redis),
        );
        let read: Fields = [("ws".to_owned(), 1), ("counts".to_owned(), 1)]
            .into_iter()
            .collect();
        let scopes = [GenerationScope::Counts];

        let began = g.read_start();
        g.forget(&ws());
        g.store_mirror(&ws(), read.clone(), &began);
        assert_eq!(
            g.known(&ws(), &scopes),
            None,
            "announced after the read was sent"
        );

        let mut began = g.read_start();
        began.sent -= Duration::from_secs(1);
        g.store_mirror(&ws(), read.clone(), &began);
        assert_eq!(g.known(&ws(), &scopes), None, "sent a max age ago");

        g.store_mirror(&ws(), read, &g.read_start());
        assert!(g.known(&ws(), &scopes).is_some());
    }

    /// Only a counter lower than a read sent earlier saw is a loss: a read that a later
    /// read, a bump or an announcement overtook is merely older.
    #[tokio::test]
    async fn a_read_overtaken_by_a_newer_one_is_not_taken_for_a_loss() {
        let down = Arc::new(
            RedisCache::new("redis://127.0.0.1:1", Duration::from_millis(50)).expect("lazy"),
        );
        let g = Generations::new(
            KeySpace::new("t").expect("valid"),
            Duration::from_secs(1),
            Some(down),
        );
        let read = |ws: u64, counts: u64| -> Fields {
            [("ws".to_owned(), ws), ("counts".to_owned(), counts)]
                .into_iter()
                .collect()
        };
        let older = g.read_start();
        tokio::time::sleep(Duration::from_millis(2)).await;
        g.store_mirror(&ws(), read(5, 7), &g.read_start());
        assert_eq!(
            g.went_back(&ws(), &read(5, 6), &older),
            None,
            "sent before the mirror's read"
        );
        assert_eq!(
            g.went_back(&ws(), &read(5, 6), &g.read_start()),
            Some(5),
            "a loss"
        );
        assert_eq!(
            g.went_back(&ws(), &read(6, 6), &g.read_start()),
            None,
            "moved on already"
        );
        let before_forget = g.read_start();
        g.forget(&ws());
        assert_eq!(
            g.went_back(&ws(), &read(5, 6), &before_forget),
            None,
            "announced since"
        );
    }

    /// Real Redis: the counters before a move no write caused (Redis lost the hash) are
    /// kept for keys built on them to stand in; a write leaves nothing from before it.
    #[tokio::test]
    async fn counters_before_a_loss_are_kept_and_counters_before_a_write_are_not() {
        let redis = redis();
        let keys = fresh_keys(&redis, "before").await;
        let g = Generations::new(keys.clone(), Duration::from_secs(60), Some(redis.clone()));
        let counts = [GenerationScope::Counts];
        let scopes = || [Scopes::Listed(&counts)];
        let start = g.current(&ws(), &counts).await;
        assert_eq!(g.before_each(&ws(), scopes()), None, "nothing moved");

        redis.del(&keys.generations(&ws())).await.expect("redis");
        g.forget_all();
        let lost = g.current(&ws(), &counts).await;
        assert_ne!(lost, start);
        assert_eq!(g.before_each(&ws(), scopes()), Some([start]), "a loss");

        let other = Generations::new(keys.clone(), Duration::from_secs(60), Some(redis.clone()));
        other.bump(&ws(), &Changed::Workspace).await;
        g.forget(&ws());
        assert_ne!(g.current(&ws(), &counts).await, lost);
        assert_eq!(g.before_each(&ws(), scopes()), None, "another's write");

        let lose = || async {
            redis.del(&keys.generations(&ws())).await.expect("redis");
            g.forget_all();
            g.current(&ws(), &counts).await;
            assert!(g.before_each(&ws(), scopes()).is_some(), "a loss");
        };
        lose().await;
        other.bump(&ws(), &Changed::Workspace).await;
        g.forget_all();
        g.current(&ws(), &counts).await;
        assert_eq!(
            g.before_each(&ws(), scopes()),
            None,
            "another's write, its announcement lost"
        );
        lose().await;
        g.bump(&ws(), &Changed::Workspace).await;
        assert_eq!(g.before_each(&ws(), scopes()), None, "a write here");
        redis.del(&keys.generations(&ws())).await.expect("redis");
    }

    #[tokio::test]
    async fn during_an_outage_an_expired_mirror_is_used_and_a_forgotten_one_is_not() {
        let down = RedisCache::new("redis://127.0.0.1:1", Duration::from_millis(50))
            .expect("a lazy client");
        let keys = KeySpace::new("t").expect("valid");
        let g = Generations::new(keys, Duration::ZERO, Some(Arc::new(down)));
        let board = &[GenerationScope::Board(BoardId(3))];
        let read = [("ws".to_owned(), 0), ("b3".to_owned(), 5)];
        g.store_mirror(&ws(), read.into_iter().collect(), &g.read_start());
        let expired = g.current(&ws(), board).await;
        assert_eq!((expired.workspace, expired.scope), (0, 5));
        let unread = &[GenerationScope::Board(BoardId(4))];
        let unread = g.current(&ws(), unread).await;
        assert_ne!(
            unread.workspace, expired.workspace,
            "a counter never read is not taken for 0"
        );

        let before_forget = Instant::now();
        g.forget(&ws());
        let distrusted = g.current(&ws(), board).await;
        assert_eq!(distrusted.scope, 5);
        assert_ne!(distrusted.workspace, expired.workspace);
        assert!(g.changed_at(&ws()) >= before_forget);
        let again = g.current(&ws(), board).await;
        assert_eq!(
            again, distrusted,
            "moved once, then this instance's authority"
        );
    }

    #[test]
    fn every_workspace_counts_as_changed_at_the_start_and_past_the_bound_when_the_latest_did() {
        let mut changes = Changes::default();
        let quiet = WorkspaceId::parse("1").expect("valid");
        let started = changes.at(&quiet);
        for n in 0..=MAX_CHANGES {
            changes.mark(&WorkspaceId::parse(&format!("w{n}")).expect("valid"));
        }
        assert!(changes.at.len() < MAX_CHANGES);
        let floor = changes.at(&quiet);
        assert!(
            floor > started,
            "a workspace no longer listed counts as changed"
        );
        let last = WorkspaceId::parse(&format!("w{MAX_CHANGES}")).expect("valid");
        assert!(changes.at(&last) >= floor);
    }

    #[tokio::test]
    async fn values_made_up_in_an_outage_are_never_redis_values_nor_another_instances() {
        let down = || {
            let redis = RedisCache::new("redis://127.0.0.1:1", Duration::from_millis(50))
                .expect("a lazy client");
            Generations::new(
                KeySpace::new("t").expect("valid"),
                Duration::ZERO,
                Some(Arc::new(redis)),
            )
        };
        let (a, b) = (down(), down());
        let scope = &[GenerationScope::Counts];
        let (ga, gb) = (a.current(&ws(), scope).await, b.current(&ws(), scope).await);
        assert!(!from_redis(ga.workspace) && !from_redis(gb.workspace));
        assert_ne!(ga.workspace, gb.workspace);
        let bumped = a.bump(&ws(), &Changed::Boards(vec![BoardId(3)])).await;
        assert!(!bumped.shared && !from_redis(bumped.generation));

        // A Redis read that was out when the bump was refused does not undo it.
        let read: Fields = [("ws".to_owned(), 5), ("b3".to_owned(), 5)]
            .into_iter()
            .collect();
        assert!(!a.store_mirror(&ws(), read, &a.read_start()));
        let mirrors = a.mirrors.read().expect("lock");
        assert_eq!(mirrors[&ws()].fields["b3"], bumped.generation);
    }

    /// Real Redis: an instance that moved a workspace on during an outage moves it on in
    /// Redis before it trusts Redis's values, which may predate a change it heard of.
    #[tokio::test]
    async fn a_workspace_moved_on_during_an_outage_moves_on_in_redis_first() {
        let redis = redis();
        let keys = fresh_keys(&redis, "moved").await;
        let g = Generations::new(keys.clone(), Duration::from_secs(60), Some(redis.clone()));
        let scope = &[GenerationScope::Counts];
        let before = g.current(&ws(), scope).await;
        g.bump_local(&ws(), GenerationScope::Workspace);
        g.forget(&ws());
        let after = g.current(&ws(), scope).await;
        assert!(from_redis(after.workspace));
        assert!(after.workspace > before.workspace, "moved on in Redis");
        let in_redis = redis
            .generations(&keys.generations(&ws()), &["ws".to_owned()])
            .await
            .expect("read");
        assert_eq!(in_redis, vec![after.workspace]);
        assert_eq!(g.moved_here(&ws()), None);
        assert_eq!(
            g.current(&ws(), scope).await,
            after,
            "then Redis's values are kept"
        );
    }
}
