//! Contact writes. Each runs in a transaction that tells the change trigger to stay
//! quiet (the caller invalidates synchronously, before it answers) and returns the
//! boards it touched, which are what the caller invalidates.

use std::future::Future;
use std::time::Duration;

use shared::messages::{Conversation, Message};
use shared::model::Contact;
use shared::{BoardId, ContactId, ConversationId, MessageId, WorkspaceId};
use sqlx::{PgPool, Postgres, Transaction};

use super::super::contacts::{contact_before_update, insert_query, update_query, ContactRow};
use super::super::fields::ContactFields;
use super::super::filters::Dialect;
use super::super::messages::{
    check_author, delete_query, edit_query, post_in_transaction, sender_query, start_query, Author,
    ConversationRow, MessageRow, NewMessage, Posted,
};
use crate::cache::random_id;
use crate::error::{Error, Result};

/// How often a write that Postgres ended to break a deadlock or a serialization conflict
/// is tried in all; past that it is a 503 with `Retry-After`.
const TRIES: u32 = 5;

/// Runs `write` (one transaction) again when Postgres rolled it back for a deadlock
/// (40P01: two writers of a workspace lock its counter rows in opposite orders) or a
/// serialization failure (40001), after a growing, jittered pause: both are transient,
/// and the transaction left nothing behind.
pub async fn retried<T, F, Fut>(mut write: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    for tried in 1.. {
        match write().await {
            Err(e) if is_conflict(&e) && tried < TRIES => {
                let base = 10u64 << tried;
                let jitter = random_id() % base;
                tokio::time::sleep(Duration::from_millis(base + jitter)).await;
            }
            Err(e) if is_conflict(&e) => {
                tracing::warn!(error = %e, tried, "write conflicted every time");
                return Err(Error::Unavailable("the database (write conflicts)"));
            }
            done => return done,
        }
    }
    unreachable!("the loop returns")
}

fn is_conflict(e: &Error) -> bool {
    let Error::Database(e) = e else { return false };
    e.as_database_error()
        .and_then(|d| d.code())
        .is_some_and(|code| code == "40P01" || code == "40001")
}

async fn quiet_tx(db: &PgPool) -> Result<Transaction<'static, Postgres>> {
    let mut tx = db.begin().await?;
    sqlx::query("SELECT set_config('edgecache.skip_notify', 'on', true)")
        .execute(&mut *tx)
        .await?;
    Ok(tx)
}

pub async fn create(db: &PgPool, ws: &WorkspaceId, f: &ContactFields) -> Result<Contact> {
    let mut qb = insert_query::<Postgres>(ws, f)?;
    let mut tx = quiet_tx(db).await?;
    let row: ContactRow = qb
        .build_query_as()
        .fetch_one(&mut *tx)
        .await
        .map_err(Error::reference)?;
    tx.commit().await?;
    Ok(row.into())
}

pub async fn update(
    db: &PgPool,
    ws: &WorkspaceId,
    id: ContactId,
    f: &ContactFields,
) -> Result<(Contact, Contact)> {
    let mut tx = quiet_tx(db).await?;
    let old: Option<ContactRow> = sqlx::query_as(&contact_before_update(Dialect::Postgres))
        .bind(ws.as_str())
        .bind(id.0)
        .fetch_optional(&mut *tx)
        .await?;
    let old: Contact = old.ok_or(Error::NotFound("contact"))?.into();
    f.check_move(old.board_id)?;
    let row: ContactRow = update_query::<Postgres>(ws, id, f, Dialect::Postgres)
        .build_query_as()
        .fetch_one(&mut *tx)
        .await
        .map_err(Error::reference)?;
    tx.commit().await?;
    Ok((old, row.into()))
}

pub async fn delete(db: &PgPool, ws: &WorkspaceId, id: ContactId) -> Result<BoardId> {
    let mut tx = quiet_tx(db).await?;
    let board: Option<i64> = sqlx::query_scalar(
        "DELETE FROM contacts WHERE workspace_id = $1 AND id = $2 RETURNING board_id",
    )
    .bind(ws.as_str())
    .bind(id.0)
    .fetch_optional(&mut *tx)
    .await?;
    tx.commit().await?;
    board.map(BoardId).ok_or(Error::NotFound("contact"))
}

pub async fn start_conversation(
    db: &PgPool,
    ws: &WorkspaceId,
    contact: ContactId,
) -> Result<Conversation> {
    let mut tx = quiet_tx(db).await?;
    let row: Option<ConversationRow> = start_query::<Postgres>(ws, contact.0)
        .build_query_as()
        .fetch_optional(&mut *tx)
        .await?;
    tx.commit().await?;
    row.map(Into::into).ok_or(Error::NotFound("contact"))
}

pub async fn post_message(
    db: &PgPool,
    ws: &WorkspaceId,
    conversation: ConversationId,
    m: &NewMessage,
) -> Result<Posted> {
    let mut tx = quiet_tx(db).await?;
    let posted = post_in_transaction!(tx, Postgres, Dialect::Postgres, ws, conversation, m);
    tx.commit().await?;
    Ok(posted)
}

pub async fn edit_message(
    db: &PgPool,
    ws: &WorkspaceId,
    conversation: ConversationId,
    id: MessageId,
    body: &str,
    by: &Author,
) -> Result<Message> {
    let mut tx = quiet_tx(db).await?;
    check_sender(&mut tx, ws, conversation, id, by).await?;
    let row: Option<MessageRow> =
        edit_query::<Postgres>(ws, conversation, id, (body, &by.user), Dialect::Postgres)
            .build_query_as()
            .fetch_optional(&mut *tx)
            .await?;
    tx.commit().await?;
    row.map(Into::into).ok_or(Error::NotFound("message"))
}

pub async fn delete_message(
    db: &PgPool,
    ws: &WorkspaceId,
    conversation: ConversationId,
    id: MessageId,
    by: &Author,
) -> Result<()> {
    let mut tx = quiet_tx(db).await?;
    check_sender(&mut tx, ws, conversation, id, by).await?;
    let deleted: Option<i64> =
        delete_query::<Postgres>(ws, conversation, id, &by.user, Dialect::Postgres)
            .build_query_scalar()
            .fetch_optional(&mut *tx)
            .await?;
    tx.commit().await?;
    deleted.map(drop).ok_or(Error::NotFound("message"))
}

/// Locks the message and checks that `by` may change it.
async fn check_sender(
    tx: &mut sqlx::PgConnection,
    ws: &WorkspaceId,
    conversation: ConversationId,
    id: MessageId,
    by: &Author,
) -> Result<()> {
    let mut query = sender_query::<Postgres>(ws, conversation, id);
    query.push(" FOR UPDATE");
    let found = query.build_query_as().fetch_optional(tx).await?;
    check_author(found, by)
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;
    use std::error::Error as StdError;
    use std::fmt;

    use sqlx::error::{DatabaseError, ErrorKind};

    use super::*;

    /// What Postgres answers a transaction it rolled back, by SQLSTATE.
    #[derive(Debug)]
    struct Rolled(&'static str);

    impl fmt::Display for Rolled {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "rolled back ({})", self.0)
        }
    }

    impl StdError for Rolled {}

    impl DatabaseError for Rolled {
        fn message(&self) -> &str {
            "rolled back"
        }
        fn code(&self) -> Option<Cow<'_, str>> {
            Some(Cow::Borrowed(self.0))
        }
        fn as_error(&self) -> &(dyn StdError + Send + Sync + 'static) {
            self
        }
        fn as_error_mut(&mut self) -> &mut (dyn StdError + Send + Sync + 'static) {
            self
        }
        fn into_error(self: Box<Self>) -> Box<dyn StdError + Send + Sync + 'static> {
            self
        }
        fn kind(&self) -> ErrorKind {
            ErrorKind::Other
        }
    }

    fn rolled(code: &'static str) -> Error {
        Error::Database(sqlx::Error::Database(Box::new(Rolled(code))))
    }

    /// Fails with `code` `failures` times, then succeeds; the tries made.
    async fn tries(code: &'static str, failures: u32) -> (Result<()>, u32) {
        let mut tried = 0;
        let done = retried(|| {
            tried += 1;
            let fail = tried <= failures;
            async move {
                if fail {
                    Err(rolled(code))
                } else {
                    Ok(())
                }
            }
        })
        .await;
        (done, tried)
    }

    #[tokio::test]
    async fn deadlocks_and_serialization_failures_are_tried_again() {
        for code in ["40P01", "40001"] {
            let (done, tried) = tries(code, 2).await;
            assert!(done.is_ok(), "{code}");
            assert_eq!(tried, 3, "{code}");
        }
    }

    #[tokio::test]
    async fn a_lasting_conflict_is_a_503_and_other_errors_are_not_retried() {
        let (done, tried) = tries("40P01", TRIES).await;
        assert_eq!(tried, TRIES);
        let e = done.expect_err("gave up");
        assert!(matches!(e, Error::Unavailable(_)), "{e}");
        let (done, tried) = tries("23505", 1).await;
        assert_eq!(tried, 1, "a unique violation is the caller's");
        assert!(matches!(done, Err(Error::Database(_))));
    }
}
