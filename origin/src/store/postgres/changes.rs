//! Writes made straight to Postgres by any other application reach the caches through
//! the contacts trigger's NOTIFY: each notice bumps the board and the counts of its
//! workspace. Notices sent while the listener was disconnected are lost, so after a
//! reconnect every workspace this instance caches is invalidated once.

use std::time::Duration;

use shared::invalidation::Thread;
use shared::{BoardId, ConversationId, WorkspaceId};
use sqlx::postgres::{PgListener, PgPoolOptions};
use sqlx::PgPool;
use tokio::sync::mpsc::UnboundedSender;

use super::super::Change;

pub const CHANNEL: &str = "edgecache_contacts";
const RETRY_AFTER: Duration = Duration::from_millis(500);

/// `{workspace}:{board}` from the contacts' trigger, `{workspace}:c{conversation}{kind}`
/// from the conversations' and messages' (kind `s`tarted, `a`ppended or `e`dited).
fn parse(payload: &str) -> Option<Change> {
    let (ws, what) = payload.rsplit_once(':')?;
    let ws = WorkspaceId::parse(ws).ok()?;
    let Some(conversation) = what.strip_prefix('c') else {
        return Some(Change::Board(ws, BoardId::parse(what).ok()?));
    };
    let (id, kind) = conversation.split_at_checked(conversation.len().checked_sub(1)?)?;
    let thread = match kind {
        "s" => Thread::Started,
        "a" => Thread::Appended,
        "e" => Thread::Edited,
        _ => return None,
    };
    Some(Change::Conversation(
        ws,
        ConversationId::parse(id).ok()?,
        thread,
    ))
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
                        if let Some(change) = parse(notice.payload()) {
                            if changes.send(change).is_err() {
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
    fn notices_name_a_workspace_and_a_board_or_conversation() {
        let ws = WorkspaceId::parse("15213").expect("valid");
        assert_eq!(
            parse("15213:7"),
            Some(Change::Board(ws.clone(), BoardId(7)))
        );
        assert_eq!(
            parse("15213:c9a"),
            Some(Change::Conversation(
                ws.clone(),
                ConversationId(9),
                Thread::Appended
            ))
        );
        assert_eq!(
            parse("15213:c12e"),
            Some(Change::Conversation(ws, ConversationId(12), Thread::Edited))
        );
        for bad in [
            "",
            "15213",
            "15213:x",
            ":7",
            "a b:7",
            "15213:c",
            "15213:c9",
            "15213:cxa",
            "15213:c9z",
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }
}
