//! Every change the origin acknowledges or learns reaches the edge: each is queued in a
//! Redis stream (the outbox, shared by the instances) and sent to the worker's
//! `/internal/changes` with the internal key, then acknowledged. A send that fails stays
//! in the stream and is tried again with backoff, by this instance or, should it die, by
//! another (`stream_take` claims entries left unacknowledged). While Redis is down,
//! changes wait in this instance's memory and go to the stream when it answers; without
//! Redis they are sent from memory (an instance that stops then loses what it holds).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use shared::invalidation::{Changed, Edit, Push, Thread};
use shared::{BoardId, ConversationId, WorkspaceId};
use tokio::sync::{Mutex, Notify};

use crate::cache::entry::now_ms;
use crate::cache::random_id;
use crate::cache::redis::RedisCache;
use crate::live::Announcer;

const GROUP: &str = "edge";
/// Changes kept in memory while Redis is down; past this, the oldest are folded into one
/// workspace-wide change per workspace, which covers them.
const MEMORY_MAX: usize = 10_000;
/// Entries taken at once; a batch's changes are folded per workspace before they are sent.
const BATCH: usize = 1000;
/// Consumers (instances) idle this long with nothing pending are removed from the group.
const CONSUMER_IDLE: Duration = Duration::from_secs(3600);
/// How often the group's consumers are looked over.
const PRUNE_EVERY: Duration = Duration::from_secs(600);
/// How often the stream is polled for entries other instances left behind.
const POLL: Duration = Duration::from_millis(250);
const SEND_TIMEOUT: Duration = Duration::from_secs(2);
/// The longest pause between tries while the edge is away: one small POST at most this
/// often, and an edge that comes back hears of the backlog within it.
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// How often, while the outbox is drained, the edge is told so: it serves KV hits only
/// while told within `EDGE_CONFIRMED_MAX_AGE_MS` (1 s), so an edge this origin cannot
/// reach stops serving what may predate a write within that, and reads through instead.
const CONFIRM_EVERY: Duration = Duration::from_millis(250);

pub struct EdgePush {
    url: String,
    drained_url: String,
    key: String,
    stream: String,
    consumer: String,
    http: reqwest::Client,
    redis: Option<Arc<RedisCache>>,
    memory: Mutex<VecDeque<String>>,
    wake: Notify,
    /// What the panel shows: changes waiting, how long the last one took to reach the
    /// edge (`u64::MAX`: none yet), and whether the edge refuses or cannot be reached.
    depth: AtomicU64,
    last_lag_ms: AtomicU64,
    failing: AtomicBool,
    /// When the edge last took a drained mark.
    confirmed: std::sync::Mutex<Option<tokio::time::Instant>>,
    /// Without Redis, the outbox lives as long as the process (see `incarnation_key`).
    started_ms: u64,
    /// Tells the event streams of a change once the edge took it (a process that only
    /// queues, like `origin seed`, has none: the instance that delivers announces).
    announcer: Option<Announcer>,
}

impl EdgePush {
    pub fn new(url: &str, key: &str, stream: String, redis: Option<Arc<RedisCache>>) -> Self {
        let url = format!("{}/internal/changes", url.trim_end_matches('/'));
        Self {
            drained_url: format!("{url}/drained"),
            url,
            key: key.to_owned(),
            stream,
            consumer: format!("{:016x}", random_id()),
            http: reqwest::Client::new(),
            redis,
            memory: Mutex::default(),
            wake: Notify::new(),
            depth: AtomicU64::new(0),
            last_lag_ms: AtomicU64::new(u64::MAX),
            failing: AtomicBool::new(false),
            confirmed: std::sync::Mutex::default(),
            started_ms: now(),
            announcer: None,
        }
    }

    /// Announces each change to the event streams once the edge has it, so a client
    /// that rereads on the event gets past the edge's older entry.
    pub fn announcing(mut self, announcer: Announcer) -> Self {
        self.announcer = Some(announcer);
        self
    }

    /// The edge took (or refused for good) these changes: the members may hear of them.
    fn delivered<'a>(&self, pushes: impl IntoIterator<Item = &'a String>) {
        let Some(announcer) = &self.announcer else {
            return;
        };
        for push in pushes {
            if let Ok((ws, change)) = Push::parse(push) {
                announcer.announce(&ws, change.live());
            }
        }
    }

    /// The outbox as this instance last saw it, for the admin status and the panel.
    pub fn report(&self) -> Value {
        let lag = self.last_lag_ms.load(Ordering::Relaxed);
        json!({
            "outboxDepth": self.depth.load(Ordering::Relaxed),
            "lastLagMs": (lag != u64::MAX).then_some(lag),
            "edgeReachable": !self.failing.load(Ordering::Relaxed),
        })
    }

    fn set_depth(&self, depth: usize) {
        self.depth.store(depth as u64, Ordering::Relaxed);
        metrics::gauge!("edgecache_edge_outbox_depth").set(depth as f64);
    }

    /// The stream's length as the outbox's depth.
    async fn measure_depth(&self, redis: &RedisCache) {
        if let Ok(depth) = redis.stream_len(&self.stream).await {
            self.set_depth(usize::try_from(depth).unwrap_or(usize::MAX));
        }
    }

    /// Queues `change` for the edge; returns at once.
    pub async fn queue(&self, ws: &WorkspaceId, change: &Changed) {
        let push = encode(ws, change);
        let stored = match &self.redis {
            Some(r) => r.stream_add(&self.stream, &push).await.is_ok(),
            None => false,
        };
        if !stored {
            let mut memory = self.memory.lock().await;
            memory.push_back(push);
            if memory.len() > MEMORY_MAX {
                fold(&mut memory);
            }
        }
        self.wake.notify_one();
    }

    /// Sends queued changes until the process ends.
    pub async fn run(self: Arc<Self>) {
        let mut backoff = POLL;
        let mut pruned = tokio::time::Instant::now() - PRUNE_EVERY;
        if let Some(r) = &self.redis {
            self.make_group(r).await;
        }
        loop {
            if let Some(r) = self
                .redis
                .as_deref()
                .filter(|_| pruned.elapsed() >= PRUNE_EVERY)
            {
                pruned = tokio::time::Instant::now();
                let _ = r
                    .stream_prune_consumers(&self.stream, GROUP, &self.consumer, CONSUMER_IDLE)
                    .await;
            }
            let delivered = self.round().await;
            backoff = if delivered {
                POLL
            } else {
                (backoff * 2).min(MAX_BACKOFF)
            };
            let _ = tokio::time::timeout(backoff, self.wake.notified()).await;
        }
    }

    /// One pass: memory to the stream (or straight to the edge without Redis), then the
    /// stream's entries to the edge. False when the edge refused or could not be reached.
    async fn round(&self) -> bool {
        let held: Vec<String> = self.memory.lock().await.drain(..).collect();
        let Some(redis) = &self.redis else {
            let checked = now();
            let sent = self.send_all(held).await;
            if sent && self.confirm_due() && self.memory.lock().await.is_empty() {
                self.confirm_drained(checked, self.started_ms).await;
            }
            return sent;
        };
        for (i, push) in held.iter().enumerate() {
            if redis.stream_add(&self.stream, push).await.is_err() {
                self.requeue(&held[i..]).await;
                return true;
            }
        }
        let idle = SEND_TIMEOUT * 2;
        let Ok(entries) = redis
            .stream_take(&self.stream, GROUP, &self.consumer, idle, BATCH)
            .await
        else {
            // Redis down, or restarted without the stream: the group is made again (a
            // no-op when it exists) and the next round reads it.
            self.make_group(redis).await;
            return true;
        };
        self.measure_depth(redis).await;
        let taken = entries.len();
        let folded = fold_batch(entries);
        let compacts = folded.iter().map(|f| f.pushes.len()).sum::<usize>() < taken;
        for (i, group) in folded.iter().enumerate() {
            if !self.send_group(redis, group).await {
                // The edge is away: what this batch folded replaces what it took, so a
                // long outage leaves one entry per change kind and workspace, not one per
                // change; nothing is dropped.
                if compacts {
                    self.compact(redis, &folded[i..]).await;
                    self.measure_depth(redis).await;
                }
                return false;
            }
            self.done(redis, &group.ids).await;
            self.delivered(&group.pushes);
        }
        // Entries leave the stream only once the edge took them, and every write is in
        // the stream before it is acknowledged: with nothing waiting in memory for Redis,
        // the edge has every change acknowledged before the oldest entry was queued.
        // Asked at most every `CONFIRM_EVERY`: a busy outbox runs many rounds a second.
        let asked = now();
        if !self.confirm_due() || !self.memory.lock().await.is_empty() {
            return true;
        }
        if let Ok((before, redis_now)) = redis.drained_before(&self.stream).await {
            let incarnation = redis.incarnation(&self.incarnation_key()).await;
            if let (true, Ok(incarnation)) = (before > 0, incarnation) {
                // On this instance's clock, as asked (never later than the truth).
                let checked = asked.saturating_sub(redis_now.saturating_sub(before));
                self.confirm_drained(checked, incarnation).await;
            }
        }
        true
    }

    /// Names the outbox's life: it goes with the stream (a Redis restart, a flush), or is
    /// removed when the group had to be made again (the stream was lost alone), and comes
    /// back with a later time, which tells the edge that changes may have been lost.
    fn incarnation_key(&self) -> String {
        format!("{}:incarnation", self.stream)
    }

    async fn make_group(&self, redis: &RedisCache) {
        if let Ok(true) = redis.stream_group(&self.stream, GROUP).await {
            let _ = redis.del(&self.incarnation_key()).await;
        }
    }

    /// Whether the edge last took a drained mark `CONFIRM_EVERY` ago or more.
    fn confirm_due(&self) -> bool {
        let confirmed = self.confirmed.lock().unwrap_or_else(|p| p.into_inner());
        confirmed.is_none_or(|at| at.elapsed() >= CONFIRM_EVERY)
    }

    /// Tells the edge the outbox was drained when `checked`, with the outbox's
    /// `incarnation` (callers ask `confirm_due` first).
    async fn confirm_drained(&self, checked: u64, incarnation: u64) {
        let sent = tokio::time::Instant::now();
        let taken = self
            .http
            .post(&self.drained_url)
            .header("X-Internal-Key", &self.key)
            .json(&json!({"checkedAtMs": checked, "incarnation": incarnation}))
            .timeout(SEND_TIMEOUT)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if taken {
            let mut confirmed = self.confirmed.lock().unwrap_or_else(|p| p.into_inner());
            *confirmed = Some(sent);
        }
    }

    /// Where entries the edge refused as malformed go (`{outbox}:dead`), for an operator.
    fn dead_letters(&self) -> String {
        format!("{}:dead", self.stream)
    }

    /// Sends one workspace's folded changes: taken once the edge took (or refused for
    /// good) each of them; a refused one goes to the dead letters, the others are sent.
    async fn send_group(&self, redis: &RedisCache, group: &Folded) -> bool {
        for push in &group.pushes {
            match self.send(push).await {
                Sent::Taken => {}
                Sent::Refused => {
                    let _ = redis.stream_add(&self.dead_letters(), push).await;
                    metrics::counter!("edgecache_edge_outbox_dead_letters_total").increment(1);
                }
                Sent::Failed => return false,
            }
        }
        true
    }

    /// Acknowledges and deletes entries the edge took, noting how long the oldest waited.
    async fn done(&self, redis: &RedisCache, ids: &[String]) {
        let queued_ms = ids
            .iter()
            .filter_map(|id| id.split('-').next()?.parse::<u64>().ok())
            .min();
        if let Some(queued_ms) = queued_ms {
            let lag_ms = now().saturating_sub(queued_ms);
            self.last_lag_ms.store(lag_ms, Ordering::Relaxed);
            metrics::histogram!("edgecache_edge_propagation_seconds")
                .record(lag_ms as f64 / 1000.0);
        }
        let _ = redis.stream_done(&self.stream, GROUP, ids).await;
    }

    /// Appends the folded changes and only then removes the entries they fold: a failure
    /// between the two sends a change twice, never loses one.
    async fn compact(&self, redis: &RedisCache, groups: &[Folded]) {
        for group in groups {
            for push in &group.pushes {
                if redis.stream_add_folded(&self.stream, push).await.is_err() {
                    return;
                }
            }
            let _ = redis.stream_done(&self.stream, GROUP, &group.ids).await;
        }
    }

    /// Without Redis: sends from memory, keeping what the edge did not take.
    async fn send_all(&self, held: Vec<String>) -> bool {
        for (i, push) in held.iter().enumerate() {
            match self.send(push).await {
                Sent::Taken => self.delivered([push]),
                Sent::Refused => {
                    self.delivered([push]);
                    metrics::counter!("edgecache_edge_outbox_dead_letters_total").increment(1);
                }
                Sent::Failed => {
                    self.requeue(&held[i..]).await;
                    return false;
                }
            }
        }
        self.set_depth(self.memory.lock().await.len());
        true
    }

    /// Puts changes not yet passed on back in front of those queued since, in order.
    async fn requeue(&self, unsent: &[String]) {
        let mut memory = self.memory.lock().await;
        for (i, push) in unsent.iter().enumerate() {
            memory.insert(i, push.clone());
        }
    }

    /// Whether the edge took the change, refused it as malformed (which no retry mends),
    /// or could not take it now. An in-place edit the edge refuses goes again as its board
    /// changed whole: a worker from before edits were pushed takes that, and it covers
    /// everything the edit reached.
    async fn send(&self, push: &str) -> Sent {
        let sent = self.post(push).await;
        match (sent, as_board_change(push)) {
            (Sent::Refused, Some(board)) => self.post(&board).await,
            _ => sent,
        }
    }

    async fn post(&self, push: &str) -> Sent {
        let sent = self
            .http
            .post(&self.url)
            .header("X-Internal-Key", &self.key)
            .header("content-type", "application/json")
            .body(push.to_owned())
            .timeout(SEND_TIMEOUT)
            .send()
            .await;
        let sent = match sent {
            Ok(r) if r.status().is_success() => Sent::Taken,
            Ok(r) if r.status() == reqwest::StatusCode::BAD_REQUEST => {
                tracing::error!(%push, "the edge refused a change as malformed");
                Sent::Refused
            }
            Ok(r) => {
                tracing::warn!(status = %r.status(), "the edge refused a change; will retry");
                Sent::Failed
            }
            Err(e) => {
                tracing::warn!(error = %e, "the edge is unreachable; will retry");
                Sent::Failed
            }
        };
        self.failing
            .store(matches!(sent, Sent::Failed), Ordering::Relaxed);
        sent
    }
}

/// An in-place edit's push as a change of its whole board; `None` for any other push.
fn as_board_change(push: &str) -> Option<String> {
    match Push::parse(push) {
        Ok((ws, Changed::Edited(e))) => Some(encode(&ws, &Changed::Boards(vec![e.board]))),
        _ => None,
    }
}

/// The wall clock in ms.
fn now() -> u64 {
    u64::try_from(now_ms()).unwrap_or(0)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sent {
    Taken,
    Refused,
    Failed,
}

/// One workspace's changes of a batch, folded, and the entries they came from.
#[derive(Debug, PartialEq, Eq)]
struct Folded {
    pushes: Vec<String>,
    ids: Vec<String>,
}

/// In-place edits of one board a folded batch sends one by one; past it, the board whole.
const EDITS_PER_BOARD: usize = 8;

/// Folds a batch per workspace: bumps commute and repeat harmlessly, so a workspace-wide
/// change covers all of that workspace's others, its boards' changes become one change
/// of all of them, an in-place edit is sent as one (the edge drops only what it reached)
/// unless its board changed whole, and each conversation's change kind is sent once. An entry that does
/// not parse keeps its own group, sent as it is (the edge refuses it, and it is
/// dead-lettered).
fn fold_batch(entries: Vec<(String, String)>) -> Vec<Folded> {
    #[derive(Default)]
    struct Workspace {
        whole: bool,
        boards: Vec<i64>,
        /// In-place edits, one per contact: what several edits of it reached, together.
        edits: Vec<Edit>,
        conversations: Vec<(i64, Thread)>,
        /// Word buckets of new messages; `None` inside: every search.
        said: Option<Option<Vec<u16>>>,
        ids: Vec<String>,
    }
    let mut workspaces: Vec<(WorkspaceId, Workspace)> = Vec::new();
    let mut out = Vec::new();
    for (id, push) in entries {
        let Ok((ws, change)) = Push::parse(&push) else {
            out.push(Folded {
                pushes: vec![push],
                ids: vec![id],
            });
            continue;
        };
        let at = match workspaces.iter().position(|(w, _)| *w == ws) {
            Some(at) => at,
            None => {
                workspaces.push((ws, Workspace::default()));
                workspaces.len() - 1
            }
        };
        let w = &mut workspaces[at].1;
        w.ids.push(id);
        match change {
            Changed::Workspace => w.whole = true,
            Changed::Conversation(c, thread) => {
                if !w.conversations.contains(&(c.0, thread)) {
                    w.conversations.push((c.0, thread));
                }
            }
            Changed::Edited(e) => match w
                .edits
                .iter_mut()
                .find(|held| (held.board, held.contact) == (e.board, e.contact))
            {
                Some(held) => {
                    held.views.extend(e.views);
                    held.views.sort_unstable_by_key(|f| f.as_str());
                    held.views.dedup();
                    held.orders.extend(e.orders);
                    held.orders.sort_unstable_by_key(|o| o.as_str());
                    held.orders.dedup();
                    held.searched |= e.searched;
                }
                None => w.edits.push(e),
            },
            Changed::Said(buckets) => {
                w.said = Some(match (w.said.take(), buckets) {
                    (Some(None), _) | (_, None) => None,
                    (Some(Some(mut all)), Some(more)) => {
                        all.extend(more);
                        all.sort_unstable();
                        all.dedup();
                        Some(all)
                    }
                    (None, Some(more)) => Some(more),
                });
            }
            other => w
                .boards
                .extend(other.boards().unwrap_or_default().iter().map(|b| b.0)),
        }
    }
    for (ws, mut w) in workspaces {
        // Many edits of one board are sent as a change of the board: what the outbox
        // holds while the edge is away stays bounded by boards, not by contacts.
        for e in &w.edits {
            let of_board = w.edits.iter().filter(|o| o.board == e.board).count();
            if of_board > EDITS_PER_BOARD && !w.boards.contains(&e.board.0) {
                w.boards.push(e.board.0);
            }
        }
        let push = |change: &Changed| encode(&ws, change);
        let pushes =
            if w.whole {
                vec![push(&Changed::Workspace)]
            } else {
                w.boards.sort_unstable();
                w.boards.dedup();
                let boards = (!w.boards.is_empty()).then(|| {
                    push(&Changed::Boards(
                        w.boards.iter().map(|b| BoardId(*b)).collect(),
                    ))
                });
                let edits = w
                    .edits
                    .iter()
                    .filter(|e| !w.boards.contains(&e.board.0))
                    .map(|e| push(&Changed::Edited(e.clone())));
                boards
                    .into_iter()
                    .chain(edits)
                    .chain(w.conversations.iter().map(|(c, thread)| {
                        push(&Changed::Conversation(ConversationId(*c), *thread))
                    }))
                    .chain(w.said.take().map(|said| push(&Changed::Said(said))))
                    .collect()
            };
        out.push(Folded { pushes, ids: w.ids });
    }
    out
}

/// A change as the body of a push to the edge, and an entry of the outbox.
fn encode(ws: &WorkspaceId, change: &Changed) -> String {
    serde_json::to_string(&Push::new(ws, change)).unwrap_or_default()
}

/// Replaces the queued changes by one workspace-wide change per workspace they name:
/// coarser, never lost.
fn fold(memory: &mut VecDeque<String>) {
    let mut workspaces: Vec<String> = memory
        .drain(..)
        .filter_map(|p| Push::parse(&p).ok())
        .map(|(ws, _)| ws.as_str().to_owned())
        .collect();
    workspaces.sort();
    workspaces.dedup();
    for ws in workspaces {
        if let Ok(ws) = WorkspaceId::parse(&ws) {
            memory.push_back(encode(&ws, &Changed::Workspace));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(n: usize, ws: &str, change: &Changed) -> (String, String) {
        let ws = WorkspaceId::parse(ws).expect("valid");
        (format!("{n}-0"), encode(&ws, change))
    }

    fn parsed(pushes: &[String]) -> Vec<(WorkspaceId, Changed)> {
        pushes
            .iter()
            .map(|p| Push::parse(p).expect("a push"))
            .collect()
    }

    #[test]
    fn a_batch_folds_per_workspace_and_keeps_every_change() {
        let (a, b) = ("15213", "15214");
        let entries = vec![
            entry(1, a, &Changed::Boards(vec![BoardId(2)])),
            entry(
                2,
                a,
                &Changed::Conversation(ConversationId(7), Thread::Appended),
            ),
            entry(3, b, &Changed::Boards(vec![BoardId(9)])),
            entry(4, a, &Changed::Boards(vec![BoardId(1), BoardId(2)])),
            entry(
                5,
                a,
                &Changed::Conversation(ConversationId(7), Thread::Appended),
            ),
            entry(
                6,
                a,
                &Changed::Conversation(ConversationId(7), Thread::Edited),
            ),
            (String::from("7-0"), String::from("not a push")),
        ];
        let folded = fold_batch(entries);
        assert_eq!(folded.len(), 3);
        let ws_a = WorkspaceId::parse(a).expect("valid");
        let of_a = folded
            .iter()
            .find(|f| f.ids.contains(&"1-0".to_owned()))
            .expect("a");
        assert_eq!(of_a.ids, ["1-0", "2-0", "4-0", "5-0", "6-0"]);
        assert_eq!(
            parsed(&of_a.pushes),
            [
                (ws_a.clone(), Changed::Boards(vec![BoardId(1), BoardId(2)])),
                (
                    ws_a.clone(),
                    Changed::Conversation(ConversationId(7), Thread::Appended)
                ),
                (
                    ws_a,
                    Changed::Conversation(ConversationId(7), Thread::Edited)
                ),
            ]
        );
        let malformed = folded
            .iter()
            .find(|f| f.ids == ["7-0"])
            .expect("kept apart");
        assert_eq!(malformed.pushes, ["not a push"]);
    }

    #[test]
    fn an_edit_is_sent_as_one_per_contact_unless_its_board_changed_whole_or_often() {
        use shared::query::{Filter, SortBy};
        let edit = |board, contact, views: Vec<Filter>, orders: Vec<SortBy>| {
            Changed::Edited(Edit {
                board: BoardId(board),
                contact,
                views,
                orders,
                searched: false,
            })
        };
        let entries = vec![
            entry(
                1,
                "15213",
                &edit(1, 5, vec![], vec![SortBy::LastActivityAt]),
            ),
            entry(
                2,
                "15213",
                &edit(1, 5, vec![Filter::Favorites], vec![SortBy::UpdatedAt]),
            ),
            entry(3, "15213", &edit(1, 6, vec![], vec![])),
            entry(4, "15213", &edit(2, 7, vec![], vec![])),
            entry(5, "15213", &Changed::Boards(vec![BoardId(2)])),
        ];
        // More edits of board 3 than are sent one by one: board 3 is sent whole.
        let many = (0..=EDITS_PER_BOARD as i64)
            .map(|n| entry(6, "15213", &edit(3, 100 + n, vec![], vec![])));
        let folded = fold_batch(entries.into_iter().chain(many).collect());
        let ws = WorkspaceId::parse("15213").expect("valid");
        assert_eq!(
            parsed(&folded[0].pushes),
            [
                (ws.clone(), Changed::Boards(vec![BoardId(2), BoardId(3)])),
                (
                    ws.clone(),
                    edit(
                        1,
                        5,
                        vec![Filter::Favorites],
                        vec![SortBy::LastActivityAt, SortBy::UpdatedAt]
                    )
                ),
                (ws, edit(1, 6, vec![], vec![])),
            ]
        );
    }

    #[test]
    fn a_refused_edit_is_sent_again_as_its_board() {
        let ws = WorkspaceId::parse("15213").expect("valid");
        let edit = Changed::Edited(Edit {
            board: BoardId(3),
            contact: 9,
            views: vec![],
            orders: vec![],
            searched: false,
        });
        let board = as_board_change(&encode(&ws, &edit)).expect("an edit");
        assert_eq!(
            Push::parse(&board).expect("a push"),
            (ws.clone(), Changed::Boards(vec![BoardId(3)]))
        );
        assert_eq!(as_board_change(&board), None);
        assert_eq!(as_board_change("not a push"), None);
    }

    #[test]
    fn a_workspace_wide_change_covers_the_workspaces_others() {
        let entries = vec![
            entry(1, "15213", &Changed::Boards(vec![BoardId(2)])),
            entry(2, "15213", &Changed::Workspace),
            entry(
                3,
                "15213",
                &Changed::Conversation(ConversationId(7), Thread::Started),
            ),
        ];
        let folded = fold_batch(entries);
        assert_eq!(folded.len(), 1);
        assert_eq!(folded[0].ids.len(), 3);
        let ws = WorkspaceId::parse("15213").expect("valid");
        assert_eq!(parsed(&folded[0].pushes), [(ws, Changed::Workspace)]);
    }
}
