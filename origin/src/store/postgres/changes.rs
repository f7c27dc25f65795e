//! Writes made straight to Postgres by any other application reach the caches through
//! the contacts trigger's NOTIFY: each notice bumps the board and the counts of its
//! workspace. Notices sent while the listener was disconnected are lost, so after a
//! reconnect every workspace this instance caches is invalidated once.

use std::time::Duration;

use shared::{BoardId, WorkspaceId};
use sqlx::postgres::{PgListener, PgPoolOptions};
use sqlx::PgPool;
use tokio::sync::mpsc::UnboundedSender;

use super::super::Change;

pub const CHANNEL: &str = "edgecache_contacts";
const RETRY_AFTER: Duration = Duration::from_millis(500);

fn parse(payload: &str) -> Option<(WorkspaceId, BoardId)> {
    let (ws, board) = payload.rsplit_once(':')?;
    Some((WorkspaceId::parse(ws).ok()?, BoardId::parse(board).ok()?))
}

/// Runs until the request pool is closed (the process ends, or a test finishes), then
/// closes its own connection so that nothing holds the database open.
pub async fn listen(db: &PgPool, changes: UnboundedSender<Change>) {
    // LISTEN holds its connection for good: a pool of its own keeps it from taking one
    // of the request pool's.
    let options = db.connect_options().as_ref().clone();
    let own = PgPoolOptions::new()
        .max_connections(1)
        .connect_lazy_with(options);
    tokio::select! {
        () = db.close_event() => {}
        () = follow(&own, &changes) => {}
    }
    own.close().await;
}

async fn follow(own: &PgPool, changes: &UnboundedSender<Change>) {
    let mut first = true;
    loop {
        match PgListener::connect_with(own).await {
            Ok(mut listener) => {
                if listener.listen(CHANNEL).await.is_ok() {
                    if !first && changes.send(Change::Unknown).is_err() {
                        return;
                    }
                    while let Ok(Some(notice)) = listener.try_recv().await {
                        if let Some((ws, board)) = parse(notice.payload()) {
                            if changes.send(Change::Board(ws, board)).is_err() {
                                return;
                            }
                        }
                    }
                    tracing::warn!("lost the Postgres change listener; reconnecting");
                }
            }
            Err(e) => tracing::debug!(error = %e, "cannot listen for Postgres changes yet"),
        }
        first = false;
        tokio::time::sleep(RETRY_AFTER).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notices_name_a_workspace_and_a_board() {
        assert_eq!(
            parse("15213:7"),
            Some((WorkspaceId::parse("15213").expect("valid"), BoardId(7)))
        );
        for bad in ["", "15213", "15213:x", ":7", "a b:7"] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }
}
