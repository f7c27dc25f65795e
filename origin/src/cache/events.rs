//! Coherence between origin instances: every instance subscribes to the namespace's
//! channel and drops its mirror of a workspace's generations (and its settings) when
//! another instance announces a change. After a reconnect, messages may have been
//! missed, so every mirror is distrusted once.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use shared::WorkspaceId;

use super::redis::RedisCache;
use crate::state::AppState;

const RETRY_AFTER: Duration = Duration::from_millis(500);

/// A change announced on the channel.
#[derive(Debug, PartialEq, Eq)]
pub enum Event {
    /// A workspace's generations changed; with an id, the announcer waits for acks.
    Generation(WorkspaceId, Option<u64>),
    Settings(WorkspaceId),
    /// An instance has applied the announcement of this id.
    Ack(u64),
}

impl Event {
    pub fn encode(&self) -> String {
        match self {
            Self::Generation(ws, None) => format!("gen:{ws}"),
            Self::Generation(ws, Some(id)) => format!("gen:{ws}:{id}"),
            Self::Settings(ws) => format!("settings:{ws}"),
            Self::Ack(id) => format!("ack:{id}"),
        }
    }

    pub fn decode(raw: &str) -> Option<Self> {
        let (kind, rest) = raw.split_once(':')?;
        let ws = |w: &str| WorkspaceId::parse(w).ok();
        match kind {
            "gen" => Some(match rest.split_once(':') {
                Some((w, id)) => Self::Generation(ws(w)?, Some(id.parse().ok()?)),
                None => Self::Generation(ws(rest)?, None),
            }),
            "settings" => Some(Self::Settings(ws(rest)?)),
            "ack" => rest.parse().ok().map(Self::Ack),
            _ => None,
        }
    }
}

/// Runs until the process ends, reconnecting whenever the subscription drops.
pub async fn listen(state: Arc<AppState>) {
    let Some(redis) = &state.cache.redis else {
        return;
    };
    let channel = state.cache.keys.channel();
    loop {
        let client = redis.pubsub_client().await;
        match async { client?.get_async_pubsub().await }.await {
            Ok(mut pubsub) => {
                if pubsub.subscribe(&channel).await.is_ok() {
                    state.cache.generations.forget_all();
                    state.settings.forget_all();
                    let mut messages = pubsub.on_message();
                    while let Some(msg) = messages.next().await {
                        let Ok(payload) = msg.get_payload::<String>() else {
                            continue;
                        };
                        apply(&state, redis, &channel, Event::decode(&payload));
                    }
                    tracing::warn!("invalidation subscription dropped; reconnecting");
                }
            }
            Err(e) => tracing::debug!(error = %e, "cannot subscribe to invalidations yet"),
        }
        tokio::time::sleep(RETRY_AFTER).await;
    }
}

fn apply(state: &AppState, redis: &Arc<RedisCache>, channel: &str, event: Option<Event>) {
    match event {
        Some(Event::Generation(ws, ack)) => {
            state.cache.generations.forget(&ws);
            if let Some(id) = ack {
                let (redis, channel) = (redis.clone(), channel.to_owned());
                tokio::spawn(async move {
                    let _ = redis.publish(&channel, &Event::Ack(id).encode()).await;
                });
            }
        }
        Some(Event::Settings(ws)) => state.settings.forget(&ws),
        Some(Event::Ack(id)) => state.cache.generations.acked(id),
        None => tracing::warn!("ignored an unreadable invalidation message"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_survive_encoding_and_garbage_is_ignored() {
        let ws = WorkspaceId::parse("15213").expect("valid");
        for e in [
            Event::Generation(ws.clone(), None),
            Event::Generation(ws.clone(), Some(u64::MAX)),
            Event::Settings(ws),
            Event::Ack(7),
        ] {
            assert_eq!(Event::decode(&e.encode()), Some(e));
        }
        for raw in [
            "", "gen", "gen:", "gen:a b", "gen:1:x", "ack:", "ack:-1", "other:1",
        ] {
            assert_eq!(Event::decode(raw), None, "{raw:?}");
        }
    }
}
