//! Generated workspaces: `origin seed` and the demo workspace of a first start. The store
//! writes them with its change trigger quiet, so the caches learn of each workspace here.

use shared::WorkspaceId;

use crate::config::Config;
use crate::error::Result;
use crate::invalidation;
use crate::store::{Seeded, SeededHistory, Store};

/// The workspace a first start fills, so the panel has something to show.
pub const DEMO_WORKSPACE: &str = "15213";

/// The demo workspace's message history: a hundred conversations, the first of them ten
/// thousand messages long.
pub const DEMO_HISTORY: History = History {
    conversations: 100,
    messages: 20_000,
};

/// How much message history a seeded workspace gets (see `Store::seed_messages`).
#[derive(Debug, Clone, Copy)]
pub struct History {
    pub conversations: u32,
    pub messages: u64,
}

/// Adds `contacts` generated contacts on `boards` new boards to `ws`, and `history`,
/// then tells the running origins and the edge that it changed.
pub async fn seed(
    config: &Config,
    store: &dyn Store,
    ws: &WorkspaceId,
    contacts: u32,
    boards: u32,
    history: History,
) -> Result<(Seeded, SeededHistory)> {
    let seeded = store.seed(ws, contacts, boards).await?;
    let messages = store
        .seed_messages(ws, history.conversations, history.messages)
        .await?;
    invalidation::changed_elsewhere(config, ws).await;
    Ok((seeded, messages))
}

/// On a first start (an empty store), `SEED_DEMO_CONTACTS` contacts in the demo workspace.
pub async fn seed_demo(config: &Config, store: &dyn Store) {
    let contacts = config.seed_demo_contacts;
    if contacts == 0 || !matches!(store.is_empty().await, Ok(true)) {
        return;
    }
    let Ok(ws) = WorkspaceId::parse(DEMO_WORKSPACE) else {
        return;
    };
    tracing::info!(contacts, "first start: seeding demo workspace {ws}");
    if let Err(e) = seed(config, store, &ws, contacts, 4, DEMO_HISTORY).await {
        tracing::error!(error = %e, "demo seeding failed");
    }
}
