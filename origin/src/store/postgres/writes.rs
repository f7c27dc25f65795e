//! Contact writes. Each runs in a transaction that tells the change trigger to stay
//! quiet (the caller invalidates synchronously, before it answers) and returns the
//! boards it touched, which are what the caller invalidates.

use shared::messages::{Conversation, Message};
use shared::model::Contact;
use shared::{BoardId, ContactId, ConversationId, MessageId, WorkspaceId};
use sqlx::{PgPool, Postgres, Transaction};

use super::super::contacts::{contact_before_update, insert_query, update_query, ContactRow};
use super::super::fields::ContactFields;
use super::super::filters::Dialect;
use super::super::messages::{
    delete_query, edit_query, post_in_transaction, start_query, ConversationRow, MessageRow,
    NewMessage, Posted,
};
use crate::error::{Error, Result};

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
) -> Result<Message> {
    let mut tx = quiet_tx(db).await?;
    let row: Option<MessageRow> =
        edit_query::<Postgres>(ws, conversation, id, body, Dialect::Postgres)
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
) -> Result<()> {
    let mut tx = quiet_tx(db).await?;
    let deleted: Option<i64> = delete_query::<Postgres>(ws, conversation, id)
        .build_query_scalar()
        .fetch_optional(&mut *tx)
        .await?;
    tx.commit().await?;
    deleted.map(drop).ok_or(Error::NotFound("message"))
}
