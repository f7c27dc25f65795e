//! Live changes (API.md "Live changes"): what changed in a workspace, named (scope and
//! id) and never carried, for its members' event streams. Every change the instances act
//! on (`crate::invalidation::changed`) is numbered in the workspace's sequence in Redis and
//! announced on the instances' channel in the same script, so every instance streams
//! every change to its own connections under the same ids, and a client that reconnects
//! to any instance names the last id it saw and gets what followed from that instance's
//! bounded buffer, or one `workspace` change when the buffer no longer reaches back to
//! it. Without Redis an instance numbers and streams its own changes. A connection that
//! falls `CHANNEL_BOUND` changes behind is dropped (its browser reconnects and resumes):
//! no client makes memory grow. Connections per workspace are capped.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::Serialize;
use shared::invalidation::LiveScope;
use shared::keys::KeySpace;
use shared::{UserId, WorkspaceId};
use tokio::sync::broadcast;

use crate::cache::entry::now_ms;
use crate::cache::redis::RedisCache;
use crate::error::{Error, Result};

/// Changes a connection may fall behind by before it is dropped.
const CHANNEL_BOUND: usize = 64;
/// How long a ticket opens a stream (API.md).
pub const TICKET_TTL: Duration = Duration::from_secs(60);

type Ticket = (WorkspaceId, UserId, u64, Instant);
/// How long a workspace without connections keeps its buffer, for clients reconnecting.
const IDLE: Duration = Duration::from_secs(300);

/// One change as streamed: its id in the workspace's sequence (`None` when it could not
/// be numbered: no client can resume from it), and the event's `data`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub id: Option<u64>,
    pub data: String,
}

#[derive(Serialize)]
struct NoteData {
    scope: LiveScope,
    id: Option<i64>,
    at: i64,
}

/// The `data` of each change named in `items`, made now.
pub fn note_data(items: &[(LiveScope, Option<i64>)]) -> Vec<String> {
    let at = now_ms();
    items
        .iter()
        .map(|(scope, id)| {
            let data = NoteData {
                scope: *scope,
                id: *id,
                at,
            };
            serde_json::to_string(&data).unwrap_or_default()
        })
        .collect()
}

struct Hub {
    sender: broadcast::Sender<Arc<Note>>,
    /// The last changes, in the order they arrived.
    recent: VecDeque<Arc<Note>>,
    connections: usize,
    /// Connections per member, so that one member's tabs or scripts cannot take the
    /// workspace's whole cap.
    per_user: HashMap<UserId, usize>,
    idle_since: Instant,
}

/// What a new connection starts with: the changes it missed, then the live ones.
pub struct Subscription {
    pub missed: Vec<Arc<Note>>,
    pub receiver: broadcast::Receiver<Arc<Note>>,
    pub connection: Connection,
}

/// Counts a connection against its workspace's cap until dropped.
pub struct Connection {
    live: Arc<Live>,
    ws: WorkspaceId,
    user: UserId,
}

impl Drop for Connection {
    fn drop(&mut self) {
        if let Some(hub) = self.live.hubs().get_mut(&self.ws) {
            hub.connections -= 1;
            if let Some(n) = hub.per_user.get_mut(&self.user) {
                *n -= 1;
                if *n == 0 {
                    hub.per_user.remove(&self.user);
                }
            }
            if hub.connections == 0 {
                hub.idle_since = Instant::now();
            }
        }
        metrics::gauge!("edgecache_live_connections").decrement(1.0);
    }
}

/// Announces changes to the members watching a workspace, on every instance, in the
/// background (see `Live::announce`): what both a write and the edge's outbox need.
#[derive(Clone)]
pub struct Announcer {
    live: Arc<Live>,
    redis: Option<Arc<RedisCache>>,
    keys: KeySpace,
}

impl Announcer {
    pub fn new(live: Arc<Live>, redis: Option<Arc<RedisCache>>, keys: KeySpace) -> Self {
        Self { live, redis, keys }
    }

    pub fn announce(&self, ws: &WorkspaceId, items: Vec<(LiveScope, Option<i64>)>) {
        let this = self.clone();
        let ws = ws.clone();
        tokio::spawn(async move {
            let (sequence, channel) = (this.keys.live_sequence(&ws), this.keys.channel());
            this.live
                .announce(this.redis.as_deref(), &sequence, &channel, &ws, &items)
                .await;
        });
    }
}

pub struct Live {
    hubs: Mutex<HashMap<WorkspaceId, Hub>>,
    /// Changes kept per workspace for clients that reconnect.
    buffer: usize,
    max_connections: usize,
    max_per_user: usize,
    /// The sequence of an instance without Redis.
    local: AtomicU64,
    /// Tickets of an instance without Redis (or while it is down): who, for which
    /// workspace, until when.
    /// Tickets held here while Redis cannot: who, until when their stream may last (s
    /// since the epoch), and until when the ticket may be redeemed.
    tickets: Mutex<HashMap<String, Ticket>>,
    /// Tells this instance's announcements from the others' on the channel.
    pub instance: u64,
}

impl Live {
    /// `max_connections` streams per workspace, `max_per_user` of them per member.
    pub fn new(buffer: usize, (max_connections, max_per_user): (usize, usize)) -> Self {
        Self {
            hubs: Mutex::default(),
            buffer,
            max_connections,
            max_per_user,
            local: AtomicU64::new(0),
            tickets: Mutex::default(),
            instance: crate::cache::random_id(),
        }
    }

    fn hubs(&self) -> MutexGuard<'_, HashMap<WorkspaceId, Hub>> {
        self.hubs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `user`'s connection to `ws`'s changes, after the change `last` if the client saw
    /// one.
    pub fn subscribe(
        self: &Arc<Self>,
        (ws, user): (&WorkspaceId, &UserId),
        last: Option<u64>,
    ) -> Result<Subscription> {
        let mut hubs = self.hubs();
        let hub = match hubs.entry(ws.clone()) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => e.insert(Hub {
                sender: broadcast::channel(CHANNEL_BOUND).0,
                recent: VecDeque::new(),
                connections: 0,
                per_user: HashMap::new(),
                idle_since: Instant::now(),
            }),
        };
        let mine = hub.per_user.get(user).copied().unwrap_or(0);
        if hub.connections >= self.max_connections || mine >= self.max_per_user {
            return Err(Error::RateLimited(5));
        }
        hub.connections += 1;
        *hub.per_user.entry(user.clone()).or_default() += 1;
        metrics::gauge!("edgecache_live_connections").increment(1.0);
        let missed = last
            .map(|last| missed_since(&hub.recent, last))
            .unwrap_or_default();
        Ok(Subscription {
            missed,
            receiver: hub.sender.subscribe(),
            connection: Connection {
                live: self.clone(),
                ws: ws.clone(),
                user: user.clone(),
            },
        })
    }

    /// Streams changes of `ws` to this instance's connections and keeps them for resuming.
    pub fn deliver(&self, ws: &WorkspaceId, notes: Vec<Note>) {
        let mut hubs = self.hubs();
        let Some(hub) = hubs.get_mut(ws) else {
            return;
        };
        for note in notes {
            let note = Arc::new(note);
            if hub.recent.len() == self.buffer {
                hub.recent.pop_front();
            }
            hub.recent.push_back(note.clone());
            let _ = hub.sender.send(note);
        }
    }

    /// Numbers `items` in `ws`'s sequence, streams them to this instance's connections
    /// and announces them to the other instances on `channel`. Without Redis they are
    /// numbered here; while it fails they go unnumbered, to this instance's clients only.
    pub async fn announce(
        &self,
        redis: Option<&RedisCache>,
        sequence: &str,
        channel: &str,
        ws: &WorkspaceId,
        items: &[(LiveScope, Option<i64>)],
    ) {
        let data = note_data(items);
        let count = data.len() as u64;
        let last = match redis {
            None => Some(self.local.fetch_add(count, Ordering::Relaxed) + count),
            Some(redis) => {
                let payload = serde_json::to_string(&data).unwrap_or_default();
                let prefix = format!("live:{ws}:{}:", self.instance);
                redis
                    .announce(sequence, channel, &prefix, data.len(), &payload)
                    .await
                    .ok()
            }
        };
        self.deliver(ws, numbered(last.map(|l| l + 1 - count), data));
    }

    /// Forgets the buffers of workspaces nobody has watched for `IDLE`, and expired tickets.
    pub fn prune(&self) {
        self.hubs()
            .retain(|_, hub| hub.connections > 0 || hub.idle_since.elapsed() < IDLE);
        let now = Instant::now();
        self.local_tickets()
            .retain(|_, (_, _, _, until)| *until > now);
    }

    fn local_tickets(&self) -> MutexGuard<'_, HashMap<String, Ticket>> {
        self.tickets.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A single-use ticket for `user` to open `ws`'s stream within `TICKET_TTL`; the
    /// stream ends `expires` (seconds since the epoch), when the user's token does.
    pub async fn ticket(
        &self,
        redis: Option<&RedisCache>,
        keys: &KeySpace,
        (ws, user): (&WorkspaceId, &UserId),
        expires: u64,
    ) -> String {
        let ticket = format!(
            "{:016x}{:016x}",
            crate::cache::random_id(),
            crate::cache::random_id()
        );
        let held = match redis {
            Some(r) => r
                .set(
                    &keys.live_ticket(&ticket),
                    &format!("{ws} {user} {expires}"),
                    TICKET_TTL,
                )
                .await
                .is_ok(),
            None => false,
        };
        if !held {
            let until = Instant::now() + TICKET_TTL;
            self.local_tickets()
                .insert(ticket.clone(), (ws.clone(), user.clone(), expires, until));
        }
        ticket
    }

    /// Who a ticket was issued to and when their stream ends, once: a second use, an
    /// unknown or expired ticket is `None`.
    pub async fn redeem(
        &self,
        redis: Option<&RedisCache>,
        keys: &KeySpace,
        ticket: &str,
    ) -> Option<(WorkspaceId, UserId, u64)> {
        if let Some((ws, user, expires, until)) = self.local_tickets().remove(ticket) {
            return (until > Instant::now()).then_some((ws, user, expires));
        }
        let held = redis?.take(&keys.live_ticket(ticket)).await.ok()??;
        let mut parts = held.splitn(3, ' ');
        let (ws, user) = (parts.next()?, parts.next()?);
        let expires = parts.next()?.parse().ok()?;
        Some((
            WorkspaceId::parse(ws).ok()?,
            UserId::parse(user).ok()?,
            expires,
        ))
    }
}

/// Notes for `data`, numbered from `first` on (or unnumbered).
pub fn numbered(first: Option<u64>, data: Vec<String>) -> Vec<Note> {
    data.into_iter()
        .zip(0..)
        .map(|(data, n)| Note {
            id: first.map(|f| f + n),
            data,
        })
        .collect()
}

/// The changes after `last` in `recent`, or one `workspace` change when `last` is no
/// longer (or was never) in it: what happened since cannot be told change by change.
fn missed_since(recent: &VecDeque<Arc<Note>>, last: u64) -> Vec<Arc<Note>> {
    match recent.iter().position(|n| n.id == Some(last)) {
        Some(at) => recent.iter().skip(at + 1).cloned().collect(),
        None => {
            let data = note_data(&[(LiveScope::Workspace, None)]);
            let newest = recent.iter().rev().find_map(|n| n.id);
            numbered(newest, data).into_iter().map(Arc::new).collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ws() -> WorkspaceId {
        WorkspaceId::parse("15213").expect("ws")
    }

    fn reader() -> UserId {
        UserId::parse("user_3").expect("user")
    }

    fn notes(first: u64, n: usize) -> Vec<Note> {
        let items = vec![(LiveScope::Counts, None); n];
        numbered(Some(first), note_data(&items))
    }

    fn ids(notes: &[Arc<Note>]) -> Vec<Option<u64>> {
        notes.iter().map(|n| n.id).collect()
    }

    #[tokio::test]
    async fn a_reconnecting_client_gets_what_it_missed_or_one_workspace_change() {
        let live = Arc::new(Live::new(4, (10, 10)));
        let first = live.subscribe((&ws(), &reader()), None).expect("subscribe");
        live.deliver(&ws(), notes(1, 6));
        let resumed = live.subscribe((&ws(), &reader()), Some(4)).expect("resume");
        assert_eq!(ids(&resumed.missed), [Some(5), Some(6)]);
        let too_old = live.subscribe((&ws(), &reader()), Some(1)).expect("resume");
        assert_eq!(ids(&too_old.missed), [Some(6)]);
        assert!(too_old.missed[0].data.contains(r#""scope":"workspace""#));
        assert!(live
            .subscribe((&ws(), &reader()), Some(6))
            .expect("current")
            .missed
            .is_empty());
        drop(first);
    }

    #[tokio::test]
    async fn connections_are_capped_per_workspace_and_released_when_dropped() {
        let live = Arc::new(Live::new(4, (2, 10)));
        let a = live.subscribe((&ws(), &reader()), None).expect("first");
        let _b = live.subscribe((&ws(), &reader()), None).expect("second");
        assert!(matches!(
            live.subscribe((&ws(), &reader()), None),
            Err(Error::RateLimited(_))
        ));
        let other = WorkspaceId::parse("15214").expect("ws");
        assert!(
            live.subscribe((&other, &reader()), None).is_ok(),
            "another workspace's cap"
        );
        drop(a);
        assert!(live.subscribe((&ws(), &reader()), None).is_ok());
    }

    #[tokio::test]
    async fn one_member_cannot_take_the_workspaces_streams() {
        let live = Arc::new(Live::new(4, (10, 2)));
        let greedy = (&ws(), &reader());
        let a = live.subscribe(greedy, None).expect("first");
        let _b = live.subscribe(greedy, None).expect("second");
        assert!(matches!(
            live.subscribe(greedy, None),
            Err(Error::RateLimited(_))
        ));
        let other = UserId::parse("user_4").expect("user");
        assert!(
            live.subscribe((&ws(), &other), None).is_ok(),
            "another member's share"
        );
        drop(a);
        assert!(
            live.subscribe(greedy, None).is_ok(),
            "released when dropped"
        );
    }

    #[tokio::test]
    async fn a_client_that_falls_behind_is_told_it_lagged() {
        let live = Arc::new(Live::new(4, (10, 10)));
        let mut slow = live.subscribe((&ws(), &reader()), None).expect("subscribe");
        live.deliver(&ws(), notes(1, CHANNEL_BOUND + 1));
        assert!(matches!(
            slow.receiver.recv().await,
            Err(broadcast::error::RecvError::Lagged(_))
        ));
    }

    #[tokio::test]
    async fn tickets_open_one_stream_once() {
        let live = Live::new(4, (10, 10));
        let user = UserId::parse("u1").expect("user");
        let keys = KeySpace::new("t").expect("namespace");
        let ticket = live
            .ticket(None, &keys, (&ws(), &user), 4_000_000_000)
            .await;
        assert_eq!(
            live.redeem(None, &keys, &ticket).await,
            Some((ws(), user, 4_000_000_000))
        );
        assert_eq!(live.redeem(None, &keys, &ticket).await, None);
        assert_eq!(live.redeem(None, &keys, "made-up").await, None);
    }
}
