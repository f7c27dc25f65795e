//! Coherence between origin instances: every instance subscribes to the namespace's
//! channel and drops its mirror of a workspace's generations (and its settings) when
//! another instance announces a change. After a reconnect, messages may have been
//! missed, so every mirror is distrusted once.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use shared::WorkspaceId;

use crate::state::AppState;

const RETRY_AFTER: Duration = Duration::from_millis(500);

/// A change announced on the channel.
#[derive(Debug, PartialEq, Eq)]
pub enum Event {
    Generation(WorkspaceId),
    Settings(WorkspaceId),
}

impl Event {
    pub fn encode(&self) -> String {
        match self {
            Self::Generation(ws) => format!("gen:{ws}"),
            Self::Settings(ws) => format!("settings:{ws}"),
        }
    }

    pub fn decode(raw: &str) -> Option<Self> {
        let (kind, ws) = raw.split_once(':')?;
        let ws = WorkspaceId::parse(ws).ok()?;
        match kind {
            "gen" => Some(Self::Generation(ws)),
            "settings" => Some(Self::Settings(ws)),
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
                        apply(&state, Event::decode(&payload));
                    }
                    tracing::warn!("invalidation subscription dropped; reconnecting");
                }
            }
            Err(e) => tracing::debug!(error = %e, "cannot subscribe to invalidations yet"),
        }
        tokio::time::sleep(RETRY_AFTER).await;
    }
}

fn apply(state: &AppState, event: Option<Event>) {
    match event {
        Some(Event::Generation(ws)) => state.cache.generations.forget(&ws),
        Some(Event::Settings(ws)) => state.settings.forget(&ws),
        None => tracing::warn!("ignored an unreadable invalidation message"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_survive_encoding_and_garbage_is_ignored() {
        let ws = WorkspaceId::parse("15213").expect("valid");
        for e in [Event::Generation(ws.clone()), Event::Settings(ws)] {
            assert_eq!(Event::decode(&e.encode()), Some(e));
        }
        for raw in ["", "gen", "gen:", "gen:a b", "other:1"] {
            assert_eq!(Event::decode(raw), None, "{raw:?}");
        }
    }
}
