//! Writes made straight to Postgres by any other application reach the caches through
//! the triggers' NOTIFY: each notice names a board or a conversation of a workspace, and
//! the transaction that changed it. Notices sent while the listener was not connected are
//! lost, so each time it connects (the first time included) the caches catch up on what
//! the store counted meanwhile (`invalidation::catch_up`).

use std::time::Duration;

use shared::invalidation::Thread;
use shared::{BoardId, ConversationId, WorkspaceId};
use sqlx::postgres::{PgListener, PgPoolOptions};
use sqlx::PgPool;
use tokio::sync::mpsc::UnboundedSender;

use super::super::{Change, Notice};
use crate::error::Result;

pub const CHANNEL: &str = "edgecache_contacts";
const RETRY_AFTER: Duration = Duration::from_millis(500);

/// `{workspace}:{board}:{transaction}` from the contacts' trigger,
/// `{workspace}:c{conversation}{kind}:{transaction}` from the conversations' and messages'
/// (kind `s`tarted, `a`ppended or `e`dited); without the transaction as sent before it
/// was added. `{workspace}:*` from an instance that changed the workspace while Redis
/// could not take its bump.
fn parse(payload: &str) -> Option<Notice> {
    let mut parts = payload.split(':');
    let (ws, what) = (parts.next()?, parts.next()?);
    let tx = parts.next().map(str::parse).transpose().ok()?;
    if parts.next().is_some() {
        return None;
    }
    Some(Notice {
        change: change(ws, what)?,
        tx,
    })
}

fn change(ws: &str, what: &str) -> Option<Change> {
    let ws = WorkspaceId::parse(ws).ok()?;
    if what == "*" {
        return Some(Change::Workspace(ws));
    }
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

/// Each workspace's count of changes made by writers other than the API
/// (`migrations/*_workspace_changes.sql`).
pub async fn outside_changes(db: &PgPool) -> Result<Vec<(WorkspaceId, u64)>> {
    let rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT workspace_id, seq FROM workspace_changes")
            .fetch_all(db)
            .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(ws, seq)| Some((WorkspaceId::parse(&ws).ok()?, u64::try_from(seq).ok()?)))
        .collect())
}

/// Sends `{ws}:*` on the channel the origins listen to.
pub async fn announce_workspace(db: &PgPool, ws: &WorkspaceId) -> Result<()> {
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(CHANNEL)
        .bind(format!("{ws}:*"))
        .execute(db)
        .await?;
    Ok(())
}

/// Runs until the request pool is closed (the process ends, or a test finishes), then
/// closes its own connection so that nothing holds the database open.
pub async fn listen(db: &PgPool, changes: UnboundedSender<Notice>) {
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

async fn follow(own: &PgPool, changes: &UnboundedSender<Notice>) {
    loop {
        match PgListener::connect_with(own).await {
            Ok(mut listener) => {
                if listener.listen(CHANNEL).await.is_ok() {
                    let gap = Notice {
                        change: Change::Unknown,
                        tx: None,
                    };
                    if changes.send(gap).is_err() {
                        return;
                    }
                    while let Ok(Some(notice)) = listener.try_recv().await {
                        if let Some(notice) = parse(notice.payload()) {
                            if changes.send(notice).is_err() {
                                return;
                            }
                        }
                    }
                    tracing::warn!("lost the Postgres change listener; reconnecting");
                }
            }
            Err(e) => tracing::debug!(error = %e, "cannot listen for Postgres changes yet"),
        }
        tokio::time::sleep(RETRY_AFTER).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notices_name_a_workspace_a_board_or_conversation_and_a_transaction() {
        let ws = WorkspaceId::parse("15213").expect("valid");
        let of = |p| parse(p).map(|n| (n.change, n.tx));
        let board = Change::Board(ws.clone(), BoardId(7));
        assert_eq!(of("15213:7:881"), Some((board.clone(), Some(881))));
        assert_eq!(of("15213:7"), Some((board, None)), "as sent before");
        let appended = Change::Conversation(ws.clone(), ConversationId(9), Thread::Appended);
        assert_eq!(of("15213:c9a:12"), Some((appended, Some(12))));
        let edited = Change::Conversation(ws.clone(), ConversationId(12), Thread::Edited);
        assert_eq!(of("15213:c12e"), Some((edited, None)));
        assert_eq!(of("15213:*"), Some((Change::Workspace(ws), None)));
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
            "15213:7:x",
            "15213:7:1:2",
        ] {
            assert!(parse(bad).is_none(), "{bad:?}");
        }
    }
}
