//! Generated workspaces: `origin seed` and the demo workspace of a first start. The store
//! writes them with its change trigger quiet, so the caches learn of each workspace here.

use shared::WorkspaceId;

use crate::config::Config;
use crate::error::Result;
use crate::invalidation;
use crate::store::{Seeded, Store};

/// The workspace a first start fills, so the panel has something to show.
pub const DEMO_WORKSPACE: &str = "15213";

/// Adds `contacts` generated contacts on `boards` new boards to `ws`, then tells the
/// running origins and the edge that it changed.
pub async fn seed(
    config: &Config,
    store: &dyn Store,
    ws: &WorkspaceId,
    contacts: u32,
    boards: u32,
) -> Result<Seeded> {
    let seeded = store.seed(ws, contacts, boards).await?;
    invalidation::changed_elsewhere(config, ws).await;
    Ok(seeded)
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
    if let Err(e) = seed(config, store, &ws, contacts, 4).await {
        tracing::error!(error = %e, "demo seeding failed");
    }
}
