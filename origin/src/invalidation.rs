//! Every way the caches learn of a change ends here: a write through this API, a change
//! another application made in the store (its notices), an admin's or the edge's
//! invalidation, a settings save, and the announcements of the other origin instances.
//! What a change makes stale is decided once, in `shared::invalidation`.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use shared::invalidation::{Changed, LiveScope, Thread};
use shared::WorkspaceId;

use crate::cache::events::Event;
use crate::cache::generations::{Bump, Generations};
use crate::cache::redis::RedisCache;
use crate::config::Config;
use crate::edge_push::EdgePush;
use crate::error::{Error, Result};
use crate::live;
use crate::state::AppState;
use crate::store::{Change, Notice};

const RETRY_AFTER: Duration = Duration::from_millis(500);
/// How long a claim on a store notice is kept: far longer than any instance takes to hear it.
const NOTICE_CLAIM: Duration = Duration::from_secs(60);

/// Runs a write of `ws` and the invalidation of what it changed to the end in a task of
/// their own, whatever becomes of the request: its client may leave, or its deadline
/// fire, after the store committed, and a change committed but never bumped would be
/// served from every layer until its TTL. The write is noted in Redis as this instance's
/// while it runs, so that should the process die between its COMMIT and its bump,
/// another instance moves the workspace on (`register`).
pub async fn to_the_end<T, W>(
    state: &Arc<AppState>,
    ws: &WorkspaceId,
    write: impl FnOnce(Arc<AppState>, WorkspaceId) -> W,
) -> Result<T>
where
    T: Send + 'static,
    W: Future<Output = Result<T>> + Send + 'static,
{
    let intent = state.cache.redis().cloned().map(|redis| {
        let key = state.cache.keys().intents(&state.live.instance.to_string());
        (redis, key, ws.as_str().to_owned())
    });
    let work = write(state.clone(), ws.clone());
    detached(async move {
        if let Some((redis, key, ws)) = &intent {
            let _ = redis.count(key, ws, 1).await;
        }
        let done = work.await;
        if let Some((redis, key, ws)) = &intent {
            let _ = redis.count(key, ws, -1).await;
        }
        done
    })
    .await
}

/// `work` in a task of its own, which goes on when the caller is dropped.
async fn detached<T: Send + 'static>(
    work: impl Future<Output = Result<T>> + Send + 'static,
) -> Result<T> {
    tokio::spawn(work)
        .await
        .unwrap_or_else(|e| Err(Error::Internal(format!("write task: {e}"))))
}

/// Makes every key `change` covers unreachable, on every instance, before it returns
/// (see `Bump` for what was acknowledged), and queues it for the edge. When Redis cannot
/// take the bump or its announcement, the other instances would go on reading their
/// copies of the old generations (for the whole outage): the store's change channel
/// tells them instead (each moves the workspace on), before the write is answered.
pub async fn changed(state: &AppState, ws: &WorkspaceId, change: &Changed) -> Bump {
    state.cache.stats().delete();
    let bump = state.cache.generations().bump(ws, change).await;
    if !bump.announced && state.cache.redis().is_some() {
        if let Err(e) = state.store.announce_workspace(ws).await {
            tracing::warn!(workspace = %ws, error = %e, "neither Redis nor the store could announce a change");
            if bump.shared {
                // Past `max_age`, every copy read before the bump has expired, and the
                // next read of another instance finds the bump in Redis.
                tokio::time::sleep(state.config.generation_max_age).await;
            }
        }
    }
    // The members watching the workspace hear of it (in the background: the write does
    // not wait) once every layer shows it: with an edge, when the edge took the change.
    match &state.edge {
        Some(edge) => edge.queue(ws, change).await,
        None => state.announcer.announce(ws, change.live()),
    }
    bump
}

/// `ws` changed whole where no origin of this process saw it (seeding and counter repairs
/// keep the store's change trigger quiet): the origins sharing `config`'s Redis drop what
/// they cached of it, and the edge is told through the outbox they send from. Without
/// Redis there is no running origin to tell.
pub async fn changed_elsewhere(config: &Config, ws: &WorkspaceId) {
    let Some(url) = &config.redis_url else { return };
    let Ok(redis) = RedisCache::new(url, config.redis_timeout) else {
        return;
    };
    let redis = Arc::new(redis);
    let keys = config.key_space.clone();
    Generations::new(keys, config.generation_max_age, Some(redis.clone()))
        .bump(ws, &Changed::Workspace)
        .await;
    if let (Some(edge), Some(key)) = (&config.edge_url, &config.edge_push_key) {
        EdgePush::new(edge, &key.0, config.key_space.edge_outbox(), Some(redis))
            .queue(ws, &Changed::Workspace)
            .await;
    }
}

/// A workspace's settings were saved: every instance reloads them, and what was cached
/// under the old ones (other TTLs, features) is dropped.
pub async fn settings_changed(state: &AppState, ws: &WorkspaceId) {
    if let Some(redis) = state.cache.redis() {
        let _ = redis
            .publish(
                &state.cache.keys().channel(),
                &Event::Settings(ws.clone()).encode(),
            )
            .await;
    }
    state
        .announcer
        .announce(ws, vec![(LiveScope::Settings, None)]);
    changed(state, ws, &Changed::Workspace).await;
}

/// Writes made to the store by other applications reach the caches here: each changed
/// board as a contact write, each conversation as its messages' change, by the one
/// instance that claims the notice; after a gap in the notices, every workspace this
/// instance caches as changed whole.
pub async fn follow_store(state: Arc<AppState>) {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let follow = state.store.follow_changes(tx);
    let apply = async {
        while let Some(Notice { change, tx }) = rx.recv().await {
            match change {
                Change::Board(ws, board) => {
                    if claimed(&state, &ws, &format!("b{board}"), tx).await {
                        changed(&state, &ws, &Changed::Boards(vec![board])).await;
                    }
                }
                Change::Conversation(ws, id, thread) => {
                    if claimed(&state, &ws, &format!("c{id}{thread:?}"), tx).await {
                        changed(&state, &ws, &Changed::Conversation(id, thread)).await;
                        // Another writer's message (its words are not known here), or
                        // conversation (moved to another contact: hits name theirs).
                        if thread != Thread::Edited {
                            changed(&state, &ws, &Changed::Said(None)).await;
                        }
                    }
                }
                // Sent by an instance whose bump or announcement Redis did not take:
                // the workspace moves on here (in Redis if it answers this instance),
                // without another announcement (its writer queued it for the edge).
                Change::Workspace(ws) => {
                    state.cache.stats().delete();
                    state
                        .cache
                        .generations()
                        .bump(&ws, &Changed::Workspace)
                        .await;
                }
                Change::Unknown => {
                    tokio::spawn(catch_up_until_done(state.clone()));
                }
            }
        }
    };
    tokio::join!(follow, apply);
}

/// The field of a workspace's generation hash holding the store's count of outside
/// changes as last acted on (see `catch_up`).
const OUTSIDE_SEEN: &str = "pg";

/// Catches up on the changes other applications made while no instance may have heard
/// them (every origin down, or this one starting or reconnecting its listener): each
/// workspace whose count of outside changes in the store is past the one Redis last saw
/// acted on moves on whole, then the count is recorded. Run before an instance serves and
/// each time its listener connects. An error when the store or Redis cannot be asked.
pub async fn catch_up(state: &AppState) -> std::result::Result<usize, String> {
    let Some(redis) = state.cache.redis() else {
        return Err("no Redis to compare with".into());
    };
    let counted = state
        .store
        .outside_changes()
        .await
        .map_err(|e| e.to_string())?;
    let mut moved = 0;
    for (ws, count) in counted {
        let key = state.cache.keys().generations(&ws);
        let seen = redis
            .hget(&key, OUTSIDE_SEEN)
            .await
            .map_err(|e| e.to_string())?;
        if seen.unwrap_or(0) < count {
            changed(state, &ws, &Changed::Workspace).await;
            redis
                .raise(&key, OUTSIDE_SEEN, count)
                .await
                .map_err(|e| e.to_string())?;
            moved += 1;
        }
    }
    Ok(moved)
}

/// `catch_up` in a task of its own (notices keep flowing meanwhile), tried again every
/// `RETRY_AFTER` until the store and Redis answer; after the first failure, every
/// workspace this instance caches moves on (what it holds may predate a lost notice).
async fn catch_up_until_done(state: Arc<AppState>) {
    let mut first = true;
    while let Err(e) = catch_up(&state).await {
        if first {
            tracing::warn!(error = %e, "cannot tell yet what changed while not listening; every cached workspace moves on");
            for ws in state.cache.generations().known_workspaces() {
                changed(&state, &ws, &Changed::Workspace).await;
            }
            first = false;
        }
        if state.cache.redis().is_none() {
            return;
        }
        tokio::time::sleep(RETRY_AFTER).await;
    }
}

/// Whether this instance acts on the notice of `what` changed by transaction `tx`: the
/// first instance to claim it in Redis does, for all (the generations, the edge's outbox
/// and the event streams are shared). Without Redis, or a transaction id, or when the claim
/// cannot be made, every instance acts: a change acted on twice costs a second bump, one
/// that nobody acted on would leave stale answers.
async fn claimed(state: &AppState, ws: &WorkspaceId, what: &str, tx: Option<u64>) -> bool {
    let (Some(redis), Some(tx)) = (state.cache.redis(), tx) else {
        return true;
    };
    let key = state.cache.keys().notice(ws, what, tx);
    redis
        .try_lock(&key, "1", NOTICE_CLAIM)
        .await
        .unwrap_or(true)
}

/// Replays bumps queued while Redis was down as soon as it answers again, whether or not
/// this instance serves any read meanwhile.
pub async fn replay(state: Arc<AppState>) {
    if state.cache.redis().is_none() {
        return;
    }
    let mut every = tokio::time::interval(RETRY_AFTER);
    loop {
        every.tick().await;
        if state.cache.generations().any_pending() {
            state.cache.generations().replay_pending().await;
        }
    }
}

/// Coherence between origin instances: every instance subscribes to the namespace's
/// channel and drops its mirror of a workspace's generations (and its settings) when
/// another instance announces a change. After a reconnect, messages may have been
/// missed, so every mirror is distrusted once; the cache's own connections are brought
/// back first (the subscription answering says Redis does), so that the reads which
/// refresh those mirrors find Redis rather than an outage.
/// Runs until the process ends, reconnecting whenever the subscription drops.
pub async fn listen(state: Arc<AppState>) {
    let Some(redis) = state.cache.redis() else {
        return;
    };
    let channel = state.cache.keys().channel();
    let (cache, settings) = (&state.cache, &state.settings);
    let distrust = move || async move {
        redis.revive().await;
        cache.generations().forget_all();
        settings.forget_all();
    };
    let on_message = |payload: String| apply(&state, redis, &channel, Event::decode(&payload));
    follow(redis, &channel, distrust, on_message).await;
}

/// How long an instance's entry in the registry of running instances lasts unless it is
/// renewed (every `RETRY_AFTER`).
const LISTED_FOR: Duration = Duration::from_secs(3);

/// Keeps this instance listed among the running ones, notes how many are listed (on a
/// Redis Cluster a write waits for that many acknowledgements, since PUBLISH there counts
/// only one node's subscribers), and moves on the workspaces that an instance which left
/// the list was writing: a write it committed may have lost its invalidation with it.
pub async fn register(state: Arc<AppState>) {
    let Some(redis) = state.cache.redis() else {
        return;
    };
    let (keys, me) = (state.cache.keys(), state.live.instance.to_string());
    let mut every = tokio::time::interval(RETRY_AFTER);
    loop {
        every.tick().await;
        let Ok((listed, gone)) = redis.register(&keys.instances(), &me, LISTED_FOR).await else {
            continue;
        };
        state.cache.generations().set_listeners(listed);
        for instance in gone {
            let Ok(writing) = redis.take_fields(&keys.intents(&instance)).await else {
                continue;
            };
            for ws in writing.iter().filter_map(|w| WorkspaceId::parse(w).ok()) {
                tracing::warn!(workspace = %ws, instance, "an instance left while writing; its workspace moves on");
                changed(&state, &ws, &Changed::Workspace).await;
            }
        }
    }
}

/// Releases of fill locks, which wake this instance's reads waiting on another
/// instance's fill. They have a channel of their own: there is one per fill, and on the
/// coherence channel they would queue ahead of the generation announcements whose acks
/// a write waits for (a write answered without an ack leaves that instance on the old
/// generations until the announcement arrives).
pub async fn follow_fills(state: Arc<AppState>) {
    let Some(redis) = state.cache.redis() else {
        return;
    };
    let on_release = |key: String| state.cache.fill_released(&key);
    follow(
        redis,
        &state.cache.keys().fills_channel(),
        || async {},
        on_release,
    )
    .await;
}

/// Hands every message of `channel` to `on_message` until the process ends, subscribing
/// again whenever the subscription drops; `on_subscribed` runs on every (re)subscription,
/// since messages may have been missed while there was none.
async fn follow<S: Future<Output = ()>>(
    redis: &RedisCache,
    channel: &str,
    mut on_subscribed: impl FnMut() -> S,
    mut on_message: impl FnMut(String),
) {
    loop {
        let client = redis.pubsub_client().await;
        match async { client?.get_async_pubsub().await }.await {
            Ok(mut pubsub) => {
                if pubsub.subscribe(channel).await.is_ok() {
                    on_subscribed().await;
                    let mut messages = pubsub.on_message();
                    while let Some(msg) = messages.next().await {
                        if let Ok(payload) = msg.get_payload::<String>() {
                            on_message(payload);
                        }
                    }
                    tracing::warn!(channel, "subscription dropped; reconnecting");
                }
            }
            Err(e) => tracing::debug!(error = %e, channel, "cannot subscribe yet"),
        }
        tokio::time::sleep(RETRY_AFTER).await;
    }
}

fn apply(state: &AppState, redis: &Arc<RedisCache>, channel: &str, event: Option<Event>) {
    match event {
        Some(Event::Generation(ws, ack)) => {
            state.cache.generations().forget(&ws);
            if let Some(id) = ack {
                let (redis, channel) = (redis.clone(), channel.to_owned());
                tokio::spawn(async move {
                    let _ = redis.publish(&channel, &Event::Ack(id).encode()).await;
                });
            }
        }
        Some(Event::Settings(ws)) => state.settings.forget(&ws),
        Some(Event::Ack(id)) => state.cache.generations().acked(id),
        Some(Event::Live {
            ws,
            instance,
            first,
            data,
        }) => {
            if instance != state.live.instance {
                let data: Vec<String> = serde_json::from_str(&data).unwrap_or_default();
                state.live.deliver(&ws, live::numbered(Some(first), data));
            }
        }
        None => tracing::warn!("ignored an unreadable invalidation message"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A write whose request is dropped once it started (the client left, the deadline
    /// fired) still runs to the end: its invalidation is never lost with the request.
    #[tokio::test]
    async fn a_write_outlives_its_dropped_request() {
        let (started_tx, started) = tokio::sync::oneshot::channel();
        let (done_tx, done) = tokio::sync::oneshot::channel();
        let (go_tx, go) = tokio::sync::oneshot::channel::<()>();
        let request = tokio::spawn(detached(async move {
            let _ = started_tx.send(());
            let _ = go.await;
            let _ = done_tx.send("invalidated");
            Ok(())
        }));
        started.await.expect("the write started");
        request.abort();
        assert!(request.await.expect_err("dropped").is_cancelled());
        go_tx.send(()).expect("the write is still running");
        assert_eq!(done.await, Ok("invalidated"));
    }
}
